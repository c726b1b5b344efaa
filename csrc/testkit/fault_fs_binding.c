/*
 * fault_fs_binding.c: the fault-injecting file system (fault_fs.h) as a Lua object, the
 * one seam for storage faults: pass it as the `fs` option of raft.new / core.node_new
 * or of tk.storage_open (and the snapshot functions), then tell it what to fail.
 *
 *   local tk = require("helios.testkit")
 *   local fs = tk.fault_fs_new()           -- over the real file system
 *   local node = raft.new{ ..., fs = fs }  -- or core.node_new({ ..., fs = fs }, hooks),
 *                                          -- tk.storage_open(dir, { fs = fs })
 *   fs:fail("write", count[, code[, skip]])   -- after `skip` (0) more writes succeed,
 *   fs:fail("sync", count[, code[, skip]])    -- the next `count` fail with code
 *   fs:clear()                             -- no more failures (both kinds)
 *   fs:stats()  --> { writes, syncs, writes_failed, syncs_failed, writes_pending,
 *               --     syncs_pending }
 *
 * Codes: "no_space" (ENOSPC, the default), "io" (EIO), "read_only" (EROFS). The storage
 * reports them as its own codes ("no_space", "io"; a read-only disk is "io").
 * What counts as a write or a sync, and the partial write a failing write leaves: see
 * fault_fs.h. fail() replaces what is pending for that kind; count 0 cancels it.
 *
 * Lifetime: fs_binding.h. The object's box is reference-counted; a node or log opened over
 * it keeps it until closed. Threading: fail/clear/stats may be called while a node's
 * storage round runs on the threadpool (the counters are under a mutex).
 */
#include <errno.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "../lua/binding.h"
#include "../lua/fs_binding.h"
#include "fault_fs.h"
#include "testkit.h"

#define FAULT_FS_MT "helios.testkit.fault_fs"

struct lfault {
    struct hr_lua_fs box; /* first: the userdata points at it (fs_binding.h) */
    struct hr_fault_fs *ff;
};

static void free_lfault(struct hr_lua_fs *box)
{
    struct lfault *f = (struct lfault *)box;
    hr_fault_fs_free(f->ff);
    free(f);
}

static struct lfault *check_fault(lua_State *L)
{
    struct hr_lua_fs **u = luaL_checkudata(L, 1, FAULT_FS_MT);
    if (*u == NULL) {
        luaL_error(L, "fault_fs: used after collection");
    }
    return (struct lfault *)*u;
}

static int l_new(lua_State *L)
{
    struct hr_lua_fs **u = lua_newuserdata(L, sizeof *u);
    *u = NULL;
    luaL_getmetatable(L, FAULT_FS_MT);
    lua_setmetatable(L, -2);
    struct lfault *f = calloc(1, sizeof *f);
    if (f == NULL || (f->ff = hr_fault_fs_new(NULL)) == NULL) {
        free(f);
        return luaL_error(L, "fault_fs_new: out of memory");
    }
    f->box.fs = hr_fault_fs_fs(f->ff);
    f->box.refs = 1;
    f->box.free = free_lfault;
    *u = &f->box;
    return 1;
}

static int l_fail(lua_State *L)
{
    static const char *const ops[] = {"write", "sync", NULL};
    static const char *const codes[] = {"no_space", "io", "read_only", NULL};
    static const int errnos[] = {ENOSPC, EIO, EROFS};
    struct lfault *f = check_fault(L);
    int op = luaL_checkoption(L, 2, NULL, ops);
    unsigned count = (unsigned)hr__lua_check_uint(L, 3, "count", 0, UINT32_MAX);
    int code = luaL_checkoption(L, 4, "no_space", codes);
    unsigned skip =
        lua_isnoneornil(L, 5) ? 0 : (unsigned)hr__lua_check_uint(L, 5, "skip", 0, UINT32_MAX);
    hr_fault_fs_fail(f->ff, op == 0 ? HR_FAULT_WRITE : HR_FAULT_SYNC, skip, count, errnos[code]);
    return 0;
}

static int l_clear(lua_State *L)
{
    struct lfault *f = check_fault(L);
    hr_fault_fs_fail(f->ff, HR_FAULT_WRITE, 0, 0, 0);
    hr_fault_fs_fail(f->ff, HR_FAULT_SYNC, 0, 0, 0);
    return 0;
}

static int l_stats(lua_State *L)
{
    struct hr_fault_fs_stats st;
    hr_fault_fs_stats(check_fault(L)->ff, &st);
    lua_createtable(L, 0, 6);
    hr__lua_set_number(L, "writes", (double)st.writes);
    hr__lua_set_number(L, "syncs", (double)st.syncs);
    hr__lua_set_number(L, "writes_failed", (double)st.writes_failed);
    hr__lua_set_number(L, "syncs_failed", (double)st.syncs_failed);
    hr__lua_set_number(L, "writes_pending", st.writes_pending);
    hr__lua_set_number(L, "syncs_pending", st.syncs_pending);
    return 1;
}

static int l_gc(lua_State *L)
{
    struct hr_lua_fs **u = luaL_checkudata(L, 1, FAULT_FS_MT);
    hr__lua_fs_unref(*u);
    *u = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lua_pushfstring(L, "%s (%p)", FAULT_FS_MT, lua_touserdata(L, 1));
    return 1;
}

void hr__tk_open_fault_fs(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"fail", l_fail}, {"clear", l_clear}, {"stats", l_stats}, {NULL, NULL},
    };
    hr__lua_new_class(L, FAULT_FS_MT, methods, l_gc, l_tostring);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "fault_fs_new");
}
