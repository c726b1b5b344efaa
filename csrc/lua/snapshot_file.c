/*
 * snapshot_file.c: core.snapshot_file (see snapshot_file.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <uv.h>

#include "binding.h"
#include "loop.h"
#include "snapshot_file.h"
#include "snapshot_writer.h"

#define FILE_MT "helios.core.snapshot_file"
#define USAGE "Usage: core.snapshot_file(path)"

struct sfile {
    struct hr__snap_writer w; /* w.fd: the file, -1 once finished or aborted */
    bool finishing;           /* finish was called: the file is the fdatasync's */
};

/* The fdatasync on the threadpool. Not in the userdata: the collector may free that (at
 * lua_close) while the request is still queued. */
struct sync_job {
    uv_fs_t req;
    struct hr__lloop *lp;
    int fd;
    int done_ref;
    uint64_t bytes;
    int err;            /* 0, or the errno of the fdatasync or of the close */
    const char *failed; /* what failed */
};

static int push_done(lua_State *L, void *arg)
{
    struct sync_job *job = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, job->done_ref);
    lua_pushboolean(L, job->err == 0);
    if (job->err == 0) {
        lua_pushnil(L);
    } else {
        lua_pushfstring(L, "snapshot %s: %s", job->failed, strerror(job->err));
    }
    lua_pushnumber(L, (lua_Number)job->bytes);
    return 3;
}

static void on_synced(uv_fs_t *req)
{
    struct sync_job *job = req->data;
    if (req->result < 0) {
        job->err = (int)-req->result;
        job->failed = "fdatasync";
    }
    uv_fs_req_cleanup(req);
    if (close(job->fd) != 0 && errno != EINTR && job->err == 0) {
        job->err = errno;
        job->failed = "close";
    }
    struct hr__lloop *lp = job->lp;
    if (!hr__loop_dead(lp)) {
        (void)hr__loop_call(lp, push_done, job, "snapshot_file done");
    }
    hr__loop_unref(lp, job->done_ref);
    free(job);
    hr__loop_release(lp);
}

static struct sfile *check_file(lua_State *L)
{
    return luaL_checkudata(L, 1, FILE_MT);
}

static void close_file(struct sfile *f)
{
    if (f->w.fd >= 0) {
        (void)close(f->w.fd);
    }
    hr__snap_writer_close(&f->w);
}

/* f:write(s, ...) -> f */
static int l_write(lua_State *L)
{
    struct sfile *f = check_file(L);
    hr__snap_writer_args(L, &f->w, 2);
    lua_settop(L, 1);
    return 1;
}

/* f:bytes() -> the bytes written so far (buffered ones included) */
static int l_bytes(lua_State *L)
{
    struct sfile *f = check_file(L);
    lua_pushnumber(L, (lua_Number)(f->w.bytes + f->w.len));
    return 1;
}

/* f:finish(done) -> true | nil, "io", detail */
static int l_finish(lua_State *L)
{
    struct sfile *f = check_file(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (f->w.fd < 0) {
        return luaL_error(L, "Usage: f:finish(done): the file was finished or aborted");
    }
    int e = hr__snap_writer_drain(&f->w);
    if (e != 0) {
        close_file(f);
        return hr__lua_push_errno(L, "snapshot write", e);
    }
    struct hr__lloop *lp = hr__loop_get(L);
    struct sync_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        close_file(f);
        return hr__lua_push_fail(L, "io", "snapshot finish: out of memory");
    }
    job->fd = f->w.fd;
    job->bytes = f->w.bytes;
    job->lp = lp;
    job->req.data = job;
    int rc = uv_fs_fdatasync(hr__loop_uv(lp), &job->req, job->fd, on_synced);
    if (rc < 0) {
        free(job);
        close_file(f);
        return hr__lua_push_fail(L, "io", uv_strerror(rc));
    }
    lua_pushvalue(L, 2);
    job->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    hr__loop_retain(lp);
    f->w.fd = -1; /* the job's now */
    f->finishing = true;
    hr__snap_writer_close(&f->w);
    lua_pushboolean(L, 1);
    return 1;
}

/* f:abort() -> whether it closed the file (false once finished) */
static int l_abort(lua_State *L)
{
    struct sfile *f = check_file(L);
    bool open = f->w.fd >= 0;
    close_file(f);
    lua_pushboolean(L, open);
    return 1;
}

static int l_gc(lua_State *L)
{
    close_file(check_file(L));
    return 0;
}

static int l_tostring(lua_State *L)
{
    struct sfile *f = check_file(L);
    const char *state = f->w.fd >= 0 ? "open" : f->finishing ? "finished" : "aborted";
    lua_pushfstring(L, "helios.core.snapshot_file(%s, %f bytes)", state,
                    (lua_Number)(f->w.bytes + f->w.len));
    return 1;
}

/* core.snapshot_file(path) -> f | nil, "io", detail */
static int l_snapshot_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct sfile *f = lua_newuserdata(L, sizeof *f);
    hr__snap_writer_init(&f->w);
    f->finishing = false;
    luaL_getmetatable(L, FILE_MT);
    lua_setmetatable(L, -2);
    int fd = hr__snap_open_tmp(path);
    if (fd < 0) {
        int e = errno;
        lua_pushfstring(L, "open %s", path);
        return hr__lua_push_errno(L, lua_tostring(L, -1), e);
    }
    f->w.fd = fd;
    return 1;
}

void hr__lua_open_snapshot_file(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"write", l_write}, {"bytes", l_bytes}, {"finish", l_finish}, {"abort", l_abort},
        {NULL, NULL},
    };
    hr__lua_new_class(L, FILE_MT, methods, l_gc, l_tostring);
    lua_pushcfunction(L, l_snapshot_file);
    lua_setfield(L, -2, "snapshot_file");
}
