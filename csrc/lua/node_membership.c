/*
 * node_membership.c: the membership, read and transfer methods of core.node_new's nodes,
 * and core.recover (node_binding.h lists them; csrc/node/runtime.h and recover.h say what
 * they do underneath).
 *
 * Every method takes the node first (checked as node_binding.c's userdata) and answers
 * nil, code, msg when the node is shut down or the runtime refuses.
 *
 * Threading: the loop's thread.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../node/recover.h"
#include "../node/runtime.h"
#include "binding.h"
#include "node_binding.h"

/* The configuration table of configuration() (runtime.h, hr_runtime_configuration):
 * false (nothing pushed) when there is no node. */
bool hr__lua_push_configuration(lua_State *L, struct hr_runtime *rt)
{
    struct hr_runtime_server sv[HR_MAX_NODES];
    size_t n;
    hr_index_t index;
    bool committed;
    hr_id_t promoting;
    if (hr_runtime_configuration(rt, sv, HR_MAX_NODES, &n, &index, &committed, &promoting) != 0) {
        return false;
    }
    lua_createtable(L, 0, 4);
    hr__lua_set_number(L, "index", index);
    lua_pushboolean(L, committed);
    lua_setfield(L, -2, "committed");
    const char *p = hr_runtime_name_of(rt, promoting);
    if (p != NULL) {
        lua_pushstring(L, p);
        lua_setfield(L, -2, "promoting");
    }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 5);
        if (sv[i].name != NULL) {
            lua_pushstring(L, sv[i].name);
        } else {
            /* A configuration without names (bare ids from an older version): the id
             * in hex, as helios inspect shows unknown ids. */
            char hex[24];
            snprintf(hex, sizeof hex, "%016" PRIx64, sv[i].id);
            lua_pushstring(L, hex);
        }
        lua_setfield(L, -2, "id");
        if (sv[i].addr != NULL) {
            lua_pushstring(L, sv[i].addr);
            lua_setfield(L, -2, "addr");
        }
        lua_pushboolean(L, sv[i].voter);
        lua_setfield(L, -2, "voter");
        hr__lua_set_number(L, "match", sv[i].match);
        lua_pushboolean(L, sv[i].caught_up);
        lua_setfield(L, -2, "caught_up");
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "servers");
    return true;
}

/* nil, code, msg for a failed call; not_leader names the leader when one is known. */
static int push_rc(lua_State *L, struct hr_runtime *rt, int rc)
{
    if (rc == HR_ENOTLEADER && rt != NULL) {
        struct hr_raft *r = hr_runtime_raft(rt);
        const char *leader = r != NULL ? hr_runtime_name_of(rt, hr_raft_leader(r)) : NULL;
        if (leader != NULL) {
            char msg[256];
            snprintf(msg, sizeof msg, "not the leader (the leader is %s)", leader);
            return hr__lua_push_fail(L, hr_err_name(rc), msg);
        }
    }
    if (rc == HR_ENOSPACE && rt != NULL) {
        return hr__lua_push_fail(L, hr_err_name(rc), hr_runtime_errmsg(rt));
    }
    return hr__lua_push_fail(L, hr_err_name(rc), hr_strerror(rc));
}

/* add_peer(name, addr[, voter = true]) -> index | nil, code, msg. index: the config entry
 * appended (0: none, a learner's promotion armed). */
static int l_add_peer(lua_State *L)
{
    const char *name = luaL_checkstring(L, 2);
    const char *addr = luaL_checkstring(L, 3);
    bool voter = lua_isnoneornil(L, 4) ? true : lua_toboolean(L, 4);
    struct hr_runtime *rt = hr__lua_node_runtime(L, 1);
    hr_index_t index = 0;
    int rc = rt != NULL ? hr_runtime_add(rt, name, addr, voter, &index) : HR_ESHUTDOWN;
    if (rc != 0) {
        return push_rc(L, rt, rc);
    }
    lua_pushnumber(L, (lua_Number)index);
    return 1;
}

/* remove_peer(name) -> index | nil, code, msg */
static int l_remove_peer(lua_State *L)
{
    const char *name = luaL_checkstring(L, 2);
    struct hr_runtime *rt = hr__lua_node_runtime(L, 1);
    hr_index_t index = 0;
    int rc = rt != NULL ? hr_runtime_remove(rt, name, &index) : HR_ESHUTDOWN;
    if (rc != 0) {
        return push_rc(L, rt, rc);
    }
    lua_pushnumber(L, (lua_Number)index);
    return 1;
}

/* configuration() -> nil (no node) | { index, committed, promoting, servers = {...} } */
static int l_configuration(lua_State *L)
{
    struct hr_runtime *rt = hr__lua_node_runtime(L, 1);
    if (rt == NULL || !hr__lua_push_configuration(L, rt)) {
        lua_pushnil(L);
    }
    return 1;
}

/* read_index(ctx) -> true | nil, code, msg. The answer comes through the read hook. */
static int l_read_index(lua_State *L)
{
    uint64_t ctx = hr__lua_check_uint(L, 2, "ctx", 1, (uint64_t)1 << 53);
    struct hr_runtime *rt = hr__lua_node_runtime(L, 1);
    int rc = rt != NULL ? hr_runtime_read_index(rt, ctx) : HR_ESHUTDOWN;
    if (rc != 0) {
        return push_rc(L, rt, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* transfer([name]) -> true | nil, code, msg */
static int l_transfer(lua_State *L)
{
    const char *name = luaL_optstring(L, 2, NULL);
    struct hr_runtime *rt = hr__lua_node_runtime(L, 1);
    int rc = rt != NULL ? hr_runtime_transfer(rt, name) : HR_ESHUTDOWN;
    if (rc != 0) {
        return push_rc(L, rt, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* transferee() -> name | nil */
static int l_transferee(lua_State *L)
{
    struct hr_runtime *rt = hr__lua_node_runtime(L, 1);
    const char *t = rt != NULL ? hr_runtime_transferee(rt) : NULL;
    if (t != NULL) {
        lua_pushstring(L, t);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

/* core.recover(data_dir, name[, addr]) -> { index, term, entries, snapshot_index } |
 * nil, code, msg. Offline disaster recovery (node/recover.h): the data dir must not be in
 * use by a running node. */
int hr__lua_recover(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    const char *name = luaL_checkstring(L, 2);
    const char *addr = luaL_optstring(L, 3, NULL);
    struct hr_recover_result res;
    char err[1024];
    int rc = hr_node_recover(NULL, dir, name, addr, &res, err, sizeof err);
    if (rc != 0) {
        return hr__lua_push_fail(L, hr_err_name(rc), err);
    }
    lua_createtable(L, 0, 4);
    hr__lua_set_number(L, "index", res.index);
    hr__lua_set_number(L, "term", res.term);
    hr__lua_set_number(L, "entries", res.entries);
    hr__lua_set_number(L, "snapshot_index", res.snapshot_index);
    return 1;
}

const luaL_Reg hr__lua_node_membership_methods[] = {
    {"add_peer", l_add_peer},
    {"remove_peer", l_remove_peer},
    {"configuration", l_configuration},
    {"read_index", l_read_index},
    {"transfer", l_transfer},
    {"transferee", l_transferee},
    {NULL, NULL},
};
