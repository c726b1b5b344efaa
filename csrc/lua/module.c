/*
 * module.c: luaopen_helios_core, the entry point of the C module `helios.core`.
 *
 *   local core = require("helios.core")
 *   core.version                 --> "0.1.0-dev"
 *   core.roles                   --> { "follower", "precandidate", "candidate", "leader" }
 *   local s = core.sim_new{ n = 3, seed = 1, config = {...}, apply = fn, start = fn,
 *                           state = fn }
 *
 * Opening is idempotent per lua_State: busted clears package.loaded between spec files
 * and requires the module again, and a second metatable or module table would make
 * userdata created before it look foreign. The first table is cached in the registry and
 * returned on every later open.
 */
#include <string.h>

#include "binding.h"
#include "storage_binding.h"
#include "transport_binding.h"
#include "client_binding.h"
#include "proxy.h"
#include "signal_binding.h"
#include "loop.h"
#include "mpack.h"
#include "node_binding.h"
#include "control.h"
#include "fork_snapshot.h"

#define MODULE_KEY "helios.core.module"

int hr__lua_push_fail(lua_State *L, const char *code, const char *detail)
{
    lua_pushnil(L);
    lua_pushstring(L, code);
    lua_pushstring(L, detail);
    return 3;
}

int hr__lua_push_errno(lua_State *L, const char *what, int e)
{
    lua_pushnil(L);
    lua_pushstring(L, "io");
    lua_pushfstring(L, "%s: %s", what, strerror(e));
    return 3;
}

void hr__lua_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                       lua_CFunction gc, lua_CFunction tostring)
{
    /* luaopen_helios_core runs once per lua_State (it caches its table), so a metatable is
     * created once; if another copy of the module made it, reuse it as it is. */
    if (luaL_newmetatable(L, name)) {
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        if (tostring != NULL) {
            lua_pushcfunction(L, tostring);
            lua_setfield(L, -2, "__tostring");
        }
    }
    lua_pop(L, 1);
}

static void push_string_list(lua_State *L, const char *(*name)(int), int first, int last)
{
    lua_createtable(L, last - first + 1, 0);
    for (int i = first; i <= last; i++) {
        lua_pushstring(L, name(i));
        lua_rawseti(L, -2, i - first + 1);
    }
}

int luaopen_helios_core(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
    if (lua_istable(L, -1)) {
        return 1;
    }
    lua_pop(L, 1);

    lua_newtable(L);
    lua_pushliteral(L, HR_VERSION);
    lua_setfield(L, -2, "version");
    /* Role names indexed by enum hr_role + 1; entry type names by enum hr_entry_type. */
    push_string_list(L, hr_role_name, HR_FOLLOWER, HR_LEADER);
    lua_setfield(L, -2, "roles");
    push_string_list(L, hr__lua_entry_type_name, HR_ENTRY_COMMAND, HR_ENTRY_CONFIG);
    lua_setfield(L, -2, "entry_types");
    lua_pushinteger(L, HR_MAX_NODES);
    lua_setfield(L, -2, "max_nodes");

    hr__lua_open_sim(L);
    lua_setfield(L, -2, "sim_new");

    hr__lua_open_storage(L);
    hr__lua_open_transport(L);
    hr__lua_open_client(L);
    hr__lua_open_proxy(L);
    hr__lua_open_signal(L);
    hr__lua_open_loop(L);
    hr__lua_open_mpack(L);
    hr__lua_open_node(L);
    hr__lua_open_control(L);
    hr__lua_open_fork_snapshot(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
    return 1;
}
