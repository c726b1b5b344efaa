/*
 * snapshot_writer.c: the buffered writer of snapshot functions (see snapshot_writer.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "binding.h"
#include "snapshot_writer.h"

int hr__snap_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int hr__snap_open_tmp(const char *path)
{
    int fd;
    do {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

void hr__snap_writer_init(struct hr__snap_writer *w)
{
    w->fd = -1;
    w->buf = NULL;
    w->len = 0;
    w->bytes = 0;
}

struct hr__snap_writer *hr__snap_writer_push(lua_State *L)
{
    struct hr__snap_writer *w = lua_newuserdata(L, sizeof *w);
    hr__snap_writer_init(w);
    luaL_getmetatable(L, HR__SNAP_WRITER_MT);
    lua_setmetatable(L, -2);
    return w;
}

static void writer_raw(lua_State *L, struct hr__snap_writer *w, const char *p, size_t n)
{
    int e = hr__snap_write_all(w->fd, p, n);
    if (e != 0) {
        luaL_error(L, "snapshot write: %s", strerror(e));
    }
    w->bytes += n;
}

int hr__snap_writer_drain(struct hr__snap_writer *w)
{
    if (w->len == 0) {
        return 0;
    }
    int e = hr__snap_write_all(w->fd, w->buf, w->len);
    if (e == 0) {
        w->bytes += w->len;
        w->len = 0;
    }
    return e;
}

void hr__snap_writer_flush(lua_State *L, struct hr__snap_writer *w)
{
    if (w->len > 0) {
        size_t n = w->len;
        w->len = 0;
        writer_raw(L, w, w->buf, n);
    }
}

void hr__snap_writer_put(lua_State *L, struct hr__snap_writer *w, const char *p, size_t n)
{
    if (w->len + n > HR__SNAP_WRITER_BUF) {
        hr__snap_writer_flush(L, w);
    }
    if (n >= HR__SNAP_WRITER_BUF) {
        writer_raw(L, w, p, n);
        return;
    }
    if (w->buf == NULL) {
        w->buf = malloc(HR__SNAP_WRITER_BUF);
        if (w->buf == NULL) {
            luaL_error(L, "snapshot write: out of memory");
        }
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void hr__snap_writer_close(struct hr__snap_writer *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = 0;
    w->fd = -1;
}

void hr__snap_writer_args(lua_State *L, struct hr__snap_writer *w, int first)
{
    if (w->fd < 0) {
        luaL_error(L, "Usage: w:write(s, ...): the writer is closed (its snapshot has ended)");
    }
    int top = lua_gettop(L);
    for (int i = first; i <= top; i++) {
        if (lua_type(L, i) == LUA_TNUMBER) {
            /* Formatted here rather than through lua_tolstring, which would intern a new
             * string: in a forked child, new strings are what copies pages
             * (docs/fork-snapshot.md). */
            char num[64];
            int n = snprintf(num, sizeof num, "%.14g", (double)lua_tonumber(L, i));
            hr__snap_writer_put(L, w, num, (size_t)n);
            continue;
        }
        size_t n;
        const char *p = luaL_checklstring(L, i, &n);
        hr__snap_writer_put(L, w, p, n);
    }
}

/* w:write(s, ...) -> w. Strings (or numbers) in order, like file:write. */
static int l_writer_write(lua_State *L)
{
    hr__snap_writer_args(L, luaL_checkudata(L, 1, HR__SNAP_WRITER_MT), 2);
    lua_settop(L, 1);
    return 1;
}

static int l_writer_gc(lua_State *L)
{
    hr__snap_writer_close(luaL_checkudata(L, 1, HR__SNAP_WRITER_MT));
    return 0;
}

void hr__lua_open_snapshot_writer(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"write", l_writer_write},
        {NULL, NULL},
    };
    hr__lua_new_class(L, HR__SNAP_WRITER_MT, methods, l_writer_gc, NULL);
}
