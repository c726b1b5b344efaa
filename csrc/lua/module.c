/*
 * module.c: luaopen_helios_core, the entry point of the C module `helios.core`.
 *
 *   local core = require("helios.core")
 *   core.version                 --> "0.1.0-dev"
 *   core.roles                   --> { "follower", "precandidate", "candidate", "leader" }
 *   local s = core.sim_new{ n = 3, seed = 1, config = {...}, apply = fn, start = fn,
 *                           state = fn }
 *
 * What only tests and benchmarks use (the TCP proxy, raw transport and storage bindings,
 * the simulated and the fault-injecting file systems, the storage benchmark, listening
 * sockets) is the separate module helios.testkit (csrc/testkit), which nothing under
 * lua/helios but helios.testing loads; spec/module_split_spec.lua checks that none of it
 * is here.
 *
 * Opening is idempotent per lua_State: busted clears package.loaded between spec files
 * and requires the module again, and a second metatable or module table would make
 * userdata created before it look foreign. The first table is cached in the registry and
 * returned on every later open.
 */
#include "binding.h"
#include "client_binding.h"
#include "inspect_binding.h"
#include "proc_binding.h"
#include "signal_binding.h"
#include "loop.h"
#include "mpack.h"
#include "node_binding.h"
#include "control.h"
#include "resp_server.h"
#include "metrics_http.h"
#include "fork_snapshot.h"
#include "snapshot_file.h"

#define MODULE_KEY "helios.core.module"

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

    hr__lua_open_inspect(L);
    hr__lua_open_client(L);
    hr__lua_open_proc(L);
    hr__lua_open_signal(L);
    hr__lua_open_loop(L);
    hr__lua_open_sock_watch(L);
    hr__lua_open_mpack(L);
    hr__lua_open_node(L);
    hr__lua_open_control(L);
    hr__lua_open_resp(L);
    hr__lua_open_metrics_http(L);
    hr__lua_open_fork_snapshot(L);
    hr__lua_open_snapshot_file(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
    return 1;
}
