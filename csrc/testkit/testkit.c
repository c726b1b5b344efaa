/*
 * testkit.c: luaopen_helios_testkit, the entry point of the C module `helios.testkit`
 * (testkit.h lists what it holds).
 *
 *   local tk = require("helios.testkit")
 *   tk.getpid()                  -- this process's id (unique names for temporary files)
 *
 * Opening is idempotent per lua_State, as helios.core's (csrc/lua/module.c): busted
 * clears package.loaded between spec files and requires the module again, and a second
 * module table would hand out functions whose objects look foreign to the first. The
 * first table is cached in the registry and returned on every later open.
 */
#define _POSIX_C_SOURCE 200809L /* getpid under -std=c11 */
#include <unistd.h>

#include <lauxlib.h>

#include "../lua/resp_server.h"
#include "testkit.h"

#define MODULE_KEY "helios.testkit.module"

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

int luaopen_helios_testkit(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
    if (lua_istable(L, -1)) {
        return 1;
    }
    lua_pop(L, 1);

    lua_newtable(L);
    hr__tk_open_proxy(L);
    hr__tk_open_transport(L);
    hr__tk_open_storage(L);
    hr__tk_open_simfs(L);
    hr__resp_open_codec(L);
    hr__tk_open_fault_fs(L);
    hr__tk_open_sock_listen(L);
    hr__tk_open_linearize(L);
    lua_pushcfunction(L, l_getpid);
    lua_setfield(L, -2, "getpid");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
    return 1;
}
