/*
 * simfs_binding.c: the simulated file system (csrc/sim/simfs.h) for specs, so they can
 * run the production storage over files that lose what was not synced when they crash.
 *
 *   local fs = core.simfs_new(seed[, { keep_unsynced = true, torn = true, pages = true }])
 *   core.storage_open("n1", { fs = fs })      -- and the snapshot functions' { fs = fs }
 *   fs:op_count()        -- mutating operations so far (the crash points, from 1)
 *   fs:crash_at(n)       -- crash at mutating operation n (0: never)
 *   fs:crash()           -- crash now; fs:crashed() says if it has
 *   fs:reboot()          -- apply the crash: lose the unsynced, close every handle
 *   fs:set_flags{ ... }  -- the crash flags, as simfs_new's
 *   fs:read(path)        -- a file's current bytes, or nil, code, message
 *   fs:list(path)        -- sorted names, or nil, code, message
 *   fs:stats()           -- { ops, reboots, files_reverted, names_reverted, torn }
 *
 * A log opened over a simfs keeps it alive (a reference count on the C side, so the order
 * in which the garbage collector finalizes them does not matter).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../sim/simfs.h"
#include "binding.h"
#include "storage_binding.h"

#define SIMFS_MT "helios.simfs"

struct lsimfs {
    struct hr__lua_fsref *ref;
};

static struct hr__lua_fsref *check_simfs(lua_State *L, int idx)
{
    struct lsimfs *u = luaL_checkudata(L, idx, SIMFS_MT);
    return u->ref;
}

void hr__lua_fs_unref(struct hr__lua_fsref *r)
{
    if (r != NULL && --r->refs == 0) {
        hr_simfs_free(r->sim);
        free(r);
    }
}

struct hr_fs *hr__lua_opt_fs(lua_State *L, int idx, struct hr__lua_fsref **ref)
{
    if (ref != NULL) {
        *ref = NULL;
    }
    if (!lua_istable(L, idx)) {
        return NULL;
    }
    lua_getfield(L, idx, "fs");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    struct lsimfs *u = luaL_checkudata(L, lua_gettop(L), SIMFS_MT);
    lua_pop(L, 1);
    if (ref != NULL) {
        u->ref->refs++;
        *ref = u->ref;
    }
    return hr_simfs_fs(u->ref->sim);
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
    struct lsimfs *u = lua_newuserdata(L, sizeof *u);
    u->ref = NULL;
    luaL_getmetatable(L, SIMFS_MT);
    lua_setmetatable(L, -2);
    struct hr__lua_fsref *r = calloc(1, sizeof *r);
    if (r == NULL || (r->sim = hr_simfs_new(seed, flags)) == NULL) {
        free(r);
        return luaL_error(L, "simfs_new: out of memory");
    }
    r->refs = 1;
    u->ref = r;
    return 1;
}

static int l_gc(lua_State *L)
{
    struct lsimfs *u = luaL_checkudata(L, 1, SIMFS_MT);
    hr__lua_fs_unref(u->ref);
    u->ref = NULL;
    return 0;
}

static int l_op_count(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hr_simfs_op_count(check_simfs(L, 1)->sim));
    return 1;
}

static int l_crash_at(lua_State *L)
{
    struct hr__lua_fsref *r = check_simfs(L, 1);
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
    struct hr__lua_fsref *r = check_simfs(L, 1);
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

static int l_stats(lua_State *L)
{
    struct hr_simfs_stats st;
    hr_simfs_stats(check_simfs(L, 1)->sim, &st);
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, (lua_Number)st.ops);
    lua_setfield(L, -2, "ops");
    lua_pushnumber(L, (lua_Number)st.reboots);
    lua_setfield(L, -2, "reboots");
    lua_pushnumber(L, (lua_Number)st.files_reverted);
    lua_setfield(L, -2, "files_reverted");
    lua_pushnumber(L, (lua_Number)st.names_reverted);
    lua_setfield(L, -2, "names_reverted");
    lua_pushnumber(L, (lua_Number)st.torn);
    lua_setfield(L, -2, "torn");
    return 1;
}

static const luaL_Reg methods[] = {
    {"op_count", l_op_count}, {"crash_at", l_crash_at},
    {"crash", l_crash},       {"crashed", l_crashed},
    {"reboot", l_reboot},     {"set_flags", l_set_flags},
    {"read", l_read},         {"list", l_list},
    {"stats", l_stats},       {NULL, NULL},
};

int hr__lua_open_simfs(lua_State *L)
{
    hr__lua_new_class(L, SIMFS_MT, methods, l_gc, NULL);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "simfs_new");
    return 0;
}
