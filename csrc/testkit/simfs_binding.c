/*
 * simfs_binding.c: the simulated file system (csrc/sim/simfs.h) for specs, so they can
 * run the production storage over files that lose what was not synced when they crash.
 *
 *   local tk = require("helios.testkit")
 *   local fs = tk.simfs_new(seed[, { keep_unsynced = true, torn = true, pages = true }])
 *   tk.storage_open("n1", { fs = fs })        -- and the snapshot functions' { fs = fs },
 *                                             -- core.storage_inspect(dir, { fs = fs })
 *   fs:op_count()        -- mutating operations so far (the crash points, from 1)
 *   fs:crash_at(n)       -- crash at mutating operation n (0: never)
 *   fs:crash()           -- crash now; fs:crashed() says if it has
 *   fs:reboot()          -- apply the crash: lose the unsynced, close every handle
 *   fs:set_flags{ ... }  -- the crash flags, as simfs_new's
 *   fs:read(path)        -- a file's current bytes, or nil, code, message
 *   fs:list(path)        -- sorted names, or nil, code, message
 *   fs:stats()           -- { ops, reboots, files_reverted, names_reverted, torn }
 *
 * The file operations themselves (struct hr_fs, csrc/storage/fs.h), to pin down what the
 * simulated file system guarantees; each returns its result or nil, code, message, the
 * code naming the errno:
 *   "io" (EIO), "not_found" (ENOENT), "exists" (EEXIST), "bad_handle" (EBADF),
 *   "is_directory" (EISDIR), "not_directory" (ENOTDIR), "locked" (EWOULDBLOCK: another
 *   handle holds a conflicting lock), "invalid" (EINVAL), "busy" (EBUSY), "other".
 *   fs:open(path, mode)  -- handle; mode "r", "rw", "rwc" (create), "rwct" (and
 *                        -- truncate) or "d" (a directory, to sync it)
 *   fs:close(h)  fs:pread(h, off, len)  fs:pwrite(h, off, bytes)  fs:sync(h[, data_only])
 *   fs:truncate(h, size)  fs:size(h)  fs:rename(from, to)  fs:unlink(path)
 *   fs:mkdir(path)  fs:lock(h, "ex" | "sh" | "un")
 *
 * A log opened over a simfs keeps it alive (a reference count on the C side, so the order
 * in which the garbage collector finalizes them does not matter; csrc/lua/fs_binding.h).
 * Threading: one thread at a time (the simulated file system's rule): not for a node.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../sim/simfs.h"
#include "../lua/binding.h"
#include "../lua/fs_binding.h"
#include "testkit.h"

#define SIMFS_MT "helios.testkit.simfs"

/* The box of fs_binding.h and the simulated file system it holds. */
struct lsimfs {
    struct hr_lua_fs box; /* first: the userdata points at it */
    struct hr_simfs *sim;
};

static struct lsimfs *check_simfs(lua_State *L, int idx)
{
    struct hr_lua_fs **u = luaL_checkudata(L, idx, SIMFS_MT);
    if (*u == NULL) {
        luaL_error(L, "simfs: used after collection");
    }
    return (struct lsimfs *)*u;
}

static void free_lsimfs(struct hr_lua_fs *box)
{
    struct lsimfs *f = (struct lsimfs *)box;
    hr_simfs_free(f->sim);
    free(f);
}

static unsigned read_flags(lua_State *L, int idx)
{
    static const struct {
        const char *name;
        unsigned flag;
    } names[] = {{"keep_unsynced", HR_SIMFS_KEEP_UNSYNCED},
                 {"torn", HR_SIMFS_TORN},
                 {"pages", HR_SIMFS_PAGES}};
    unsigned flags = 0;
    if (!lua_istable(L, idx)) {
        return 0;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lua_getfield(L, idx, names[i].name);
        if (lua_toboolean(L, -1)) {
            flags |= names[i].flag;
        }
        lua_pop(L, 1);
    }
    return flags;
}

static int l_new(lua_State *L)
{
    uint64_t seed = hr__lua_check_uint(L, 1, "seed", 0, 9007199254740992ULL);
    unsigned flags = read_flags(L, 2);
    struct hr_lua_fs **u = lua_newuserdata(L, sizeof *u);
    *u = NULL;
    luaL_getmetatable(L, SIMFS_MT);
    lua_setmetatable(L, -2);
    struct lsimfs *f = calloc(1, sizeof *f);
    if (f == NULL || (f->sim = hr_simfs_new(seed, flags)) == NULL) {
        free(f);
        return luaL_error(L, "simfs_new: out of memory");
    }
    f->box.fs = hr_simfs_fs(f->sim);
    f->box.refs = 1;
    f->box.free = free_lsimfs;
    *u = &f->box;
    return 1;
}

static int l_gc(lua_State *L)
{
    struct hr_lua_fs **u = luaL_checkudata(L, 1, SIMFS_MT);
    hr__lua_fs_unref(*u);
    *u = NULL;
    return 0;
}

static int l_op_count(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hr_simfs_op_count(check_simfs(L, 1)->sim));
    return 1;
}

static int l_crash_at(lua_State *L)
{
    struct lsimfs *r = check_simfs(L, 1);
    hr_simfs_crash_at(r->sim, hr__lua_check_uint(L, 2, "crash_at", 0, 9007199254740992ULL));
    return 0;
}

static int l_crash(lua_State *L)
{
    hr_simfs_crash(check_simfs(L, 1)->sim);
    return 0;
}

static int l_crashed(lua_State *L)
{
    lua_pushboolean(L, hr_simfs_crashed(check_simfs(L, 1)->sim));
    return 1;
}

static int l_reboot(lua_State *L)
{
    hr_simfs_reboot(check_simfs(L, 1)->sim);
    return 0;
}

static int l_set_flags(lua_State *L)
{
    struct lsimfs *r = check_simfs(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    hr_simfs_set_flags(r->sim, read_flags(L, 2));
    return 0;
}

static int l_read(lua_State *L)
{
    struct hr_fs *fs = hr_simfs_fs(check_simfs(L, 1)->sim);
    const char *path = luaL_checkstring(L, 2);
    int h = hr_fs_open(fs, path, HR_FS_READ);
    if (h < 0) {
        return hr__lua_push_errno(L, path, -h);
    }
    uint64_t size;
    hr_fs_size(fs, h, &size);
    char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL) {
        hr_fs_close(fs, h);
        return luaL_error(L, "simfs read: out of memory");
    }
    ssize_t n = hr_fs_pread(fs, h, buf, (size_t)size, 0);
    hr_fs_close(fs, h);
    lua_pushlstring(L, buf, n > 0 ? (size_t)n : 0);
    free(buf);
    return 1;
}

static int push_name(void *arg, const char *name)
{
    lua_State *L = arg;
    lua_pushstring(L, name);
    lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
    return 0;
}

static int l_list(lua_State *L)
{
    struct hr_fs *fs = hr_simfs_fs(check_simfs(L, 1)->sim);
    const char *path = luaL_checkstring(L, 2);
    lua_newtable(L);
    int rc = hr_fs_list(fs, path, push_name, L);
    if (rc < 0) {
        return hr__lua_push_errno(L, path, -rc);
    }
    return 1;
}

static const char *errno_name(int e)
{
    switch (e) {
    case EIO:
        return "io";
    case ENOENT:
        return "not_found";
    case EEXIST:
        return "exists";
    case EBADF:
        return "bad_handle";
    case EISDIR:
        return "is_directory";
    case ENOTDIR:
        return "not_directory";
    case EWOULDBLOCK:
        return "locked";
    case EINVAL:
        return "invalid";
    case EBUSY:
        return "busy";
    default:
        return "other";
    }
}

/* 0 or a count: push it (true for 0 unless as_number); a negative errno: nil, code (the
 * banner's list), message. */
static int push_rc(lua_State *L, long long rc, bool as_number)
{
    if (rc < 0) {
        return hr__lua_push_fail(L, errno_name((int)-rc), strerror((int)-rc));
    }
    if (as_number) {
        lua_pushnumber(L, (lua_Number)rc);
    } else {
        lua_pushboolean(L, 1);
    }
    return 1;
}

static struct hr_fs *check_fs(lua_State *L)
{
    return hr_simfs_fs(check_simfs(L, 1)->sim);
}

static int check_h(lua_State *L, int idx)
{
    return (int)hr__lua_check_uint(L, idx, "handle", 0, INT32_MAX);
}

static int l_fopen(lua_State *L)
{
    static const char *const modes[] = {"r", "rw", "rwc", "rwct", "d", NULL};
    static const int flags[] = {HR_FS_READ, HR_FS_RDWR, HR_FS_RDWR | HR_FS_CREATE,
                                HR_FS_RDWR | HR_FS_CREATE | HR_FS_TRUNC, HR_FS_DIR};
    struct hr_fs *fs = check_fs(L);
    const char *path = luaL_checkstring(L, 2);
    int m = luaL_checkoption(L, 3, "r", modes);
    return push_rc(L, hr_fs_open(fs, path, flags[m]), true);
}

static int l_fclose(lua_State *L)
{
    return push_rc(L, hr_fs_close(check_fs(L), check_h(L, 2)), false);
}

static int l_fpread(lua_State *L)
{
    struct hr_fs *fs = check_fs(L);
    int h = check_h(L, 2);
    uint64_t off = hr__lua_check_uint(L, 3, "offset", 0, 1ULL << 40);
    size_t len = (size_t)hr__lua_check_uint(L, 4, "length", 0, 1u << 26);
    char *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        return luaL_error(L, "pread: out of memory");
    }
    ssize_t r = hr_fs_pread(fs, h, buf, len, off);
    if (r >= 0) {
        lua_pushlstring(L, buf, (size_t)r);
    }
    free(buf);
    return r >= 0 ? 1 : push_rc(L, r, false);
}

static int l_fpwrite(lua_State *L)
{
    struct hr_fs *fs = check_fs(L);
    int h = check_h(L, 2);
    uint64_t off = hr__lua_check_uint(L, 3, "offset", 0, 1ULL << 40);
    size_t len;
    const char *data = luaL_checklstring(L, 4, &len);
    return push_rc(L, hr_fs_pwrite(fs, h, data, len, off), false);
}

static int l_fsync(lua_State *L)
{
    return push_rc(L, hr_fs_sync(check_fs(L), check_h(L, 2), lua_toboolean(L, 3)), false);
}

static int l_ftruncate(lua_State *L)
{
    uint64_t size = hr__lua_check_uint(L, 3, "size", 0, 1ULL << 40);
    return push_rc(L, hr_fs_truncate(check_fs(L), check_h(L, 2), size), false);
}

static int l_fsize(lua_State *L)
{
    uint64_t size = 0;
    int rc = hr_fs_size(check_fs(L), check_h(L, 2), &size);
    return push_rc(L, rc < 0 ? rc : (long long)size, true);
}

static int l_frename(lua_State *L)
{
    struct hr_fs *fs = check_fs(L);
    return push_rc(L, hr_fs_rename(fs, luaL_checkstring(L, 2), luaL_checkstring(L, 3)), false);
}

static int l_funlink(lua_State *L)
{
    return push_rc(L, hr_fs_unlink(check_fs(L), luaL_checkstring(L, 2)), false);
}

static int l_fmkdir(lua_State *L)
{
    return push_rc(L, hr_fs_mkdir(check_fs(L), luaL_checkstring(L, 2)), false);
}

static int l_flock(lua_State *L)
{
    static const char *const hows[] = {"ex", "sh", "un", NULL};
    static const int v[] = {HR_FS_LOCK_EX, HR_FS_LOCK_SH, HR_FS_UNLOCK};
    struct hr_fs *fs = check_fs(L);
    int h = check_h(L, 2);
    return push_rc(L, hr_fs_lock(fs, h, v[luaL_checkoption(L, 3, NULL, hows)]), false);
}

static int l_stats(lua_State *L)
{
    struct hr_simfs_stats st;
    hr_simfs_stats(check_simfs(L, 1)->sim, &st);
    lua_createtable(L, 0, 5);
    hr__lua_set_number(L, "ops", (double)st.ops);
    hr__lua_set_number(L, "reboots", (double)st.reboots);
    hr__lua_set_number(L, "files_reverted", (double)st.files_reverted);
    hr__lua_set_number(L, "names_reverted", (double)st.names_reverted);
    hr__lua_set_number(L, "torn", (double)st.torn);
    return 1;
}

static const luaL_Reg methods[] = {
    {"op_count", l_op_count}, {"crash_at", l_crash_at}, {"crash", l_crash},
    {"crashed", l_crashed},   {"reboot", l_reboot},     {"set_flags", l_set_flags},
    {"read", l_read},         {"list", l_list},         {"stats", l_stats},
    {"open", l_fopen},        {"close", l_fclose},      {"pread", l_fpread},
    {"pwrite", l_fpwrite},    {"sync", l_fsync},        {"truncate", l_ftruncate},
    {"size", l_fsize},        {"rename", l_frename},    {"unlink", l_funlink},
    {"mkdir", l_fmkdir},      {"lock", l_flock},        {NULL, NULL},
};

void hr__tk_open_simfs(lua_State *L)
{
    hr__lua_new_class(L, SIMFS_MT, methods, l_gc, NULL);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "simfs_new");
}
