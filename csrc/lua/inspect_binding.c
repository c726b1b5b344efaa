/*
 * inspect_binding.c: core.storage_inspect (csrc/storage/log.h, hr_storage_inspect).
 *
 *   local ok, report, verdict = core.storage_inspect("./data"[, names[, opts]])
 *       -- ok: true if the directory is sound; report: the text `helios inspect` prints;
 *       -- verdict: "sound", "damaged" or "not_data_dir". names lists node id strings:
 *       -- an id the storage holds (the vote, a snapshot's voters) that matches one's hash
 *       -- is printed by name. opts.fs: a file system of helios.testkit (fs_binding.h),
 *       -- for specs; (dir, opts) is accepted too when opts has an fs.
 */
#define _GNU_SOURCE /* open_memstream under -std=c11 */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "../storage/log.h"
#include "../transport/transport.h"
#include "fs_binding.h"
#include "inspect_binding.h"

static int l_inspect(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    /* Candidate id strings: each is hashed as the transport does (hr_tcp_node_id), so an
     * id the storage holds is printed by name when it matches. The strings stay on the
     * Lua stack (the table at 2) for the call. */
    enum { MAX_NAMES = 256 };
    uint64_t ids[MAX_NAMES];
    const char *strs[MAX_NAMES];
    struct hr_inspect_names names = {ids, strs, 0};
    /* (dir, opts) is accepted too: a table with an fs field is the options, not names. */
    int opts = 3;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "fs");
        if (!lua_isnil(L, -1)) {
            opts = 2;
        }
        lua_pop(L, 1);
    }
    if (opts == 3 && !lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        for (int i = 1; names.n < MAX_NAMES; i++) {
            lua_rawgeti(L, 2, i);
            const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            lua_pop(L, 1); /* a string: still referenced by the table */
            if (s == NULL) {
                break;
            }
            strs[names.n] = s;
            ids[names.n] = hr_tcp_node_id(s);
            names.n++;
        }
    }
    /* Borrowed for the call: the options table keeps the object alive. */
    struct hr_fs *fs = hr__lua_fs_of(hr__lua_opt_fs(L, opts, "storage_inspect"));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        return luaL_error(L, "storage_inspect: out of memory");
    }
    int rc = hr_storage_inspect(fs, dir, &names, f);
    fclose(f);
    lua_pushboolean(L, rc == 0);
    lua_pushlstring(L, buf, len);
    free(buf);
    lua_pushstring(L, rc == 0 ? "sound" : rc == HR_INSPECT_NOT_DATA_DIR ? "not_data_dir" : "damaged");
    return 3;
}

int hr__lua_open_inspect(lua_State *L)
{
    lua_pushcfunction(L, l_inspect);
    lua_setfield(L, -2, "storage_inspect");
    return 0;
}
