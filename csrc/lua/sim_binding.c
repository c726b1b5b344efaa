/*
 * sim_binding.c: the "helios.core.sim" userdata, a struct hr_sim seen from Lua.
 *
 *   local s = core.sim_new{ n = 3, seed = 42, config = { election_timeout_ms = 150,
 *                                                        snapshot_threshold = 20 },
 *                           network = { drop = 0.1 }, disk_latency_ms = { 1, 5 },
 *                           snapshot_latency_ms = { 5, 20 }, snapshot_chunk_bytes = 1024,
 *                           storage = "real", storage_crash = 0.1, storage_faults = "torn",
 *                           segment_size = 16384,
 *                           apply = function(id, index, term, type, cmd, time_ms) end,
 *                           state = function(id, role, term, leader) end,
 *                           start = function(id) end,
 *                           snapshot = function(id, next) return bytes end, -- or false
 *                               -- after a slice (next: true for the slices after the first)
 *                           restore = function(id, index, term, bytes) end,
 *                           snapshot_done = function(id, index, term, installed) end }
 *   s:run_until(1000)  --> true, or nil and the message of what stopped the simulation
 *
 * Node ids are the C ids 1..n here; lua/helios/sim.lua names them "n1".."nN". This is the
 * low-level layer: expected failures come back as values (nil, message or nil, code,
 * message) and sim.lua turns them into its documented Lua API; argument errors raise.
 *
 * Hooks run while the simulator is inside a step. They may propose (the node supports
 * re-entrant proposals) but not run, step, crash, restart or close the sim: those would
 * free or re-enter state that C frames below the hook are still using. They raise instead.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sim/simfs.h"
#include "binding.h"

static struct hr__lsim *check_sim(lua_State *L)
{
    struct hr__lsim *s = luaL_checkudata(L, 1, HR_LUA_SIM_MT);
    if (s->sim == NULL) {
        luaL_error(L, "sim: already closed");
    }
    return s;
}

static void refuse_in_hook(lua_State *L, struct hr__lsim *s, const char *method)
{
    if (s->in_hook > 0) {
        luaL_error(L,
                   "sim:%s called from inside a hook (fsm apply, observer or fsm "
                   "constructor); only propose is allowed there",
                   method);
    }
}

static hr_id_t check_id(lua_State *L, struct hr__lsim *s, int idx)
{
    return (hr_id_t)hr__lua_check_uint(L, idx, "node id", 1, s->n);
}

/* The message of whatever stopped the simulation: a hook failure first (the simulator
 * only knows that a hook returned non-zero), else the simulator's own. */
static const char *stop_message(struct hr__lsim *s)
{
    if (s->hook_err != NULL) {
        return s->hook_err;
    }
    const char *e = hr_sim_error(s->sim);
    return e;
}

/* After a run: true, or nil and the message. rc as hr_sim_step. */
static int push_run_result(lua_State *L, struct hr__lsim *s, int rc, bool ran)
{
    const char *e = stop_message(s);
    if (rc < 0 || e != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, e != NULL ? e : "sim: the simulation stopped");
        return 2;
    }
    lua_pushboolean(L, ran);
    return 1;
}

static int l_step(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    refuse_in_hook(L, s, "step");
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = hr_sim_step(s->sim);
    hr__lsim_leave(s, L, &saved);
    return push_run_result(L, s, rc, rc == 1);
}

static int l_run_until(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    refuse_in_hook(L, s, "run_until");
    hr_time_t until = hr__lua_check_uint(L, 2, "sim:run_until: time", 0, (1ULL << 53));
    if (until < hr_sim_now(s->sim)) {
        until = hr_sim_now(s->sim); /* time does not go back */
    }
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = hr_sim_run_until(s->sim, until);
    hr__lsim_leave(s, L, &saved);
    return push_run_result(L, s, rc, true);
}

static int l_check(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = hr_sim_check(s->sim);
    hr__lsim_leave(s, L, &saved);
    return push_run_result(L, s, rc, true);
}

static int l_error(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    const char *e = stop_message(s);
    if (e == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, e);
    }
    return 1;
}

static int push_fault_result(lua_State *L, int rc, const char *what)
{
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, hr_err_name(rc));
    lua_pushfstring(L, "%s: %s", what, hr_strerror(rc));
    return 3;
}

/* crash, restart, disconnect, connect: all (sim, id) -> true or nil, code, message. */
static int fault(lua_State *L, int (*fn)(struct hr_sim *, hr_id_t), const char *name, bool hooks)
{
    struct hr__lsim *s = check_sim(L);
    if (hooks) {
        refuse_in_hook(L, s, name);
    }
    hr_id_t id = check_id(L, s, 2);
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = fn(s->sim, id);
    hr__lsim_leave(s, L, &saved);
    return push_fault_result(L, rc, name);
}

static int l_crash(lua_State *L)
{
    return fault(L, hr_sim_crash, "crash", true);
}

/* (sim, id) -> true, note | nil, code, message. A disk whose log is corrupt before its last
 * record refuses to start: the node stays down and the message names the record. */
static int l_restart(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    int n = fault(L, hr_sim_restart, "restart", true);
    const char *note = hr_sim_node_note(s->sim, check_id(L, s, 2));
    if (lua_toboolean(L, -n)) {
        lua_pushstring(L, note);
        return n + 1;
    }
    if (note[0] != '\0') {
        lua_pop(L, 1);
        lua_pushstring(L, note);
    }
    return n;
}

/* (sim, id[, index]) -> index | nil, code, message: flip a bit in a durable log record. */
static int l_corrupt(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr_id_t id = check_id(L, s, 2);
    lua_Number want = luaL_optnumber(L, 3, 0);
    if (want < 0 || want != (lua_Number)(hr_index_t)want) {
        return luaL_argerror(L, 3, "index must be a non-negative integer");
    }
    hr_index_t index = 0;
    int rc = hr_sim_corrupt(s->sim, id, (hr_index_t)want, &index);
    if (rc != 0) {
        return push_fault_result(L, rc, "corrupt");
    }
    lua_pushnumber(L, (lua_Number)index);
    return 1;
}

/* (sim, id, ms) -> true | nil, code, message: hr_sim_stall. */
static int l_stall(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr_id_t id = check_id(L, s, 2);
    lua_Number ms = luaL_checknumber(L, 3);
    if (ms < 0 || ms > UINT32_MAX || ms != (lua_Number)(uint32_t)ms) {
        return luaL_argerror(L, 3, "ms must be a non-negative integer");
    }
    return push_fault_result(L, hr_sim_stall(s->sim, id, (uint32_t)ms), "stall");
}

static int l_disconnect(lua_State *L)
{
    return fault(L, hr_sim_disconnect, "disconnect", false);
}

static int l_connect(lua_State *L)
{
    return fault(L, hr_sim_connect, "connect", false);
}

/* capture(from, to, type_name, reject) -> true | nil, code, message: hr_sim_capture. */
static int l_capture(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr_id_t from = check_id(L, s, 2), to = check_id(L, s, 3);
    const char *name = luaL_checkstring(L, 4);
    uint8_t type = 0;
    for (int t = 1; t < HR_MSG_TYPE_COUNT; t++) {
        if (strcmp(name, hr_msg_type_name(t)) == 0) {
            type = (uint8_t)t;
        }
    }
    if (type == 0) {
        return luaL_argerror(L, 4, "unknown message type");
    }
    return push_fault_result(L, hr_sim_capture(s->sim, from, to, type, lua_toboolean(L, 5)),
                             "capture");
}

/* captured() -> the held message's header fields as a table, or nil. */
static int l_captured(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    const struct hr_msg *m = hr_sim_captured(s->sim);
    if (m == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 12);
    lua_pushstring(L, hr_msg_type_name(m->type));
    lua_setfield(L, -2, "type");
    lua_pushboolean(L, m->reject);
    lua_setfield(L, -2, "reject");
#define F(x) hr__lua_set_number(L, #x, (double)m->x)
    F(from);
    F(to);
    F(term);
    F(prev_index);
    F(index);
    F(hint_index);
    F(hint_term);
    F(last_index);
    F(seq);
    F(n_entries);
#undef F
    return 1;
}

/* redeliver(delay_ms) -> true | nil, code, message: hr_sim_redeliver. */
static int l_redeliver(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    uint32_t delay = (uint32_t)hr__lua_check_uint(L, 2, "sim:redeliver: delay_ms", 0, 1000000);
    return push_fault_result(L, hr_sim_redeliver(s->sim, delay), "redeliver");
}

/* partition({ g1, g2, ..., gn }): the group number of each node, in id order. */
static int l_partition(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    uint32_t group[HR_MAX_NODES];
    for (uint32_t i = 0; i < s->n; i++) {
        lua_rawgeti(L, 2, (int)i + 1);
        group[i] = (uint32_t)hr__lua_check_uint(L, -1, "sim:partition: group", 0, UINT32_MAX);
        lua_pop(L, 1);
    }
    int rc = hr_sim_partition(s->sim, group, s->n);
    return push_fault_result(L, rc, "partition");
}

static int l_heal(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr_sim_heal(s->sim);
    return 0;
}

/* set_network{ drop, duplicate, delay_ms = {min, max}, reorder }: the whole network; fields
 * not given take their defaults (so set_network{} is the reliable network again). */
static int l_set_network(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    struct hr_sim_options o;
    hr_sim_options_defaults(&o);
    hr__lua_read_net(L, 2, "network", &o.net);
    hr_sim_set_network(s->sim, &o.net);
    return 0;
}

/* set_storage_crash(p): the probability of a crash point per storage step from now on. */
static int l_set_storage_crash(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    double p = luaL_checknumber(L, 2);
    if (!(p >= 0 && p <= 1)) {
        return luaL_error(L, "set_storage_crash: the probability must be within [0, 1]");
    }
    hr_sim_set_storage_crash(s->sim, p);
    return 0;
}

/* propose(id, command) -> index, term or nil, code, message. */
static int l_propose(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr_id_t id = check_id(L, s, 2);
    if (lua_type(L, 3) != LUA_TSTRING) {
        return luaL_error(L,
                          "Usage: sim:propose(id, command): command must be a string "
                          "(got %s)",
                          luaL_typename(L, 3));
    }
    size_t len;
    const char *cmd = lua_tolstring(L, 3, &len);
    if (!hr_sim_alive(s->sim, id)) {
        return hr__lua_push_fail(L, hr_err_name(HR_ESHUTDOWN), "propose: the node is crashed");
    }
    hr_index_t index = 0;
    hr_term_t term = 0;
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = hr_sim_propose(s->sim, id, HR_ENTRY_COMMAND, cmd, len, &index, &term);
    hr__lsim_leave(s, L, &saved);
    if (rc != 0) {
        return push_fault_result(L, rc, "propose");
    }
    lua_pushnumber(L, (lua_Number)index);
    lua_pushnumber(L, (lua_Number)term);
    return 2;
}

/* spawn(id): a new node, id = size() + 1, in no configuration (hr_sim_spawn). Its start
 * hook runs. */
static int l_spawn(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    refuse_in_hook(L, s, "spawn");
    hr_id_t id = (hr_id_t)hr__lua_check_uint(L, 2, "node id", 1, HR_MAX_NODES);
    if (id != (hr_id_t)s->n + 1) {
        return luaL_error(L, "sim:spawn: the next node id is %d", (int)s->n + 1);
    }
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = hr_sim_spawn(s->sim, id);
    hr__lsim_leave(s, L, &saved);
    if (rc == 0) {
        s->n++;
    }
    return push_fault_result(L, rc, "spawn");
}

/* add(id, peer, addr, voter) / remove(id, peer) on node id -> index (of the config entry;
 * 0 if none was appended) or nil, code, message (hr_raft_add / hr_raft_remove). */
static int membership(lua_State *L, bool add)
{
    struct hr__lsim *s = check_sim(L);
    hr_id_t id = check_id(L, s, 2);
    hr_id_t peer = (hr_id_t)hr__lua_check_uint(L, 3, "peer id", 1, HR_MAX_NODES);
    size_t len = 0;
    const char *addr = add ? luaL_checklstring(L, 4, &len) : NULL;
    bool voter = add && lua_toboolean(L, 5);
    if (!hr_sim_alive(s->sim, id)) {
        return hr__lua_push_fail(L, hr_err_name(HR_ESHUTDOWN), "the node is crashed");
    }
    hr_index_t index = 0;
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = add ? hr_sim_add(s->sim, id, peer, addr, len, voter, &index)
                 : hr_sim_remove(s->sim, id, peer, &index);
    hr__lsim_leave(s, L, &saved);
    if (rc != 0) {
        return push_fault_result(L, rc, add ? "add_peer" : "remove_peer");
    }
    lua_pushnumber(L, (lua_Number)index);
    return 1;
}

static int l_add(lua_State *L)
{
    return membership(L, true);
}

static int l_remove(lua_State *L)
{
    return membership(L, false);
}

/* configuration(id) -> { index, committed, promoting, voter (this node), servers = {
 * { id, voter, addr }, ... } }, or nil while the node is crashed. */
static int l_configuration(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    struct hr_raft *r = hr_sim_raft(s->sim, check_id(L, s, 2));
    if (r == NULL) {
        lua_pushnil(L);
        return 1;
    }
    struct hr_server sv[HR_MAX_NODES];
    hr_index_t index;
    size_t n = hr_raft_configuration(r, sv, HR_MAX_NODES, &index);
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, (lua_Number)index);
    lua_setfield(L, -2, "index");
    lua_pushboolean(L, index <= hr_raft_commit_index(r));
    lua_setfield(L, -2, "committed");
    lua_pushnumber(L, (lua_Number)hr_raft_promoting(r));
    lua_setfield(L, -2, "promoting");
    lua_pushboolean(L, hr_raft_is_voter(r));
    lua_setfield(L, -2, "voter");
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushnumber(L, (lua_Number)sv[i].id);
        lua_setfield(L, -2, "id");
        lua_pushboolean(L, sv[i].voter);
        lua_setfield(L, -2, "voter");
        lua_pushlstring(L, (const char *)sv[i].addr, sv[i].addr_len);
        lua_setfield(L, -2, "addr");
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "servers");
    return 1;
}

/* read(id) -> ctx | nil, code, message: a linearizable read on node id, answered through
 * the read hook (hr_sim_read). */
static int l_read(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr_id_t id = check_id(L, s, 2);
    if (!hr_sim_alive(s->sim, id)) {
        return hr__lua_push_fail(L, hr_err_name(HR_ESHUTDOWN), "read: the node is crashed");
    }
    uint64_t ctx = 0;
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = hr_sim_read(s->sim, id, &ctx);
    hr__lsim_leave(s, L, &saved);
    if (rc != 0) {
        return push_fault_result(L, rc, "read");
    }
    lua_pushnumber(L, (lua_Number)ctx);
    return 1;
}

/* transfer(id, target or 0) -> true | nil, code, message (hr_sim_transfer). */
static int l_transfer(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr_id_t id = check_id(L, s, 2);
    hr_id_t target = lua_isnoneornil(L, 3) || lua_tonumber(L, 3) == 0 ? 0 : check_id(L, s, 3);
    if (!hr_sim_alive(s->sim, id)) {
        return hr__lua_push_fail(L, hr_err_name(HR_ESHUTDOWN), "transfer: the node is crashed");
    }
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = hr_sim_transfer(s->sim, id, target);
    hr__lsim_leave(s, L, &saved);
    return push_fault_result(L, rc, "transfer");
}

/* transferee(id) -> the target of node id's transfer under way, or 0. */
static int l_transferee(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr_id_t id = check_id(L, s, 2);
    struct hr_raft *r = hr_sim_raft(s->sim, id);
    lua_pushnumber(L, r != NULL ? (lua_Number)hr_raft_transferee(r) : 0);
    return 1;
}

/* snapshot(id) -> index | nil, code, message: take a snapshot of node id's FSM now (the
 * write completes later; see hr_sim_snapshot). */
static int l_snapshot(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    refuse_in_hook(L, s, "snapshot");
    hr_id_t id = check_id(L, s, 2);
    if (!hr_sim_alive(s->sim, id)) {
        return hr__lua_push_fail(L, hr_err_name(HR_ESHUTDOWN), "snapshot: the node is crashed");
    }
    hr_index_t index = 0;
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, 1, &saved);
    int rc = hr_sim_snapshot(s->sim, id, &index);
    hr__lsim_leave(s, L, &saved);
    if (rc == HR_EBUSY) {
        return hr__lua_push_fail(L, hr_err_name(rc), "snapshot: a snapshot is being written");
    }
    if (rc == HR_EINVAL) {
        return hr__lua_push_fail(L, hr_err_name(rc), "snapshot: nothing applied yet");
    }
    if (rc != 0) {
        return push_fault_result(L, rc, "snapshot");
    }
    lua_pushnumber(L, (lua_Number)index);
    return 1;
}

/* snapshot_info(id) -> index, term, size of node id's durable snapshot, or nil. */
static int l_snapshot_info(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr_index_t index;
    hr_term_t term;
    size_t size;
    if (!hr_sim_snapshot_info(s->sim, check_id(L, s, 2), &index, &term, &size)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, (lua_Number)index);
    lua_pushnumber(L, (lua_Number)term);
    lua_pushnumber(L, (lua_Number)size);
    return 3;
}

/* snapshot_stats() -> { taken, installed, offers, chunks, chunk_bytes, delivered }. */
static int l_snapshot_stats(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    struct hr_sim_snapshot_stats st;
    hr_sim_snapshot_stats(s->sim, &st);
    const struct hr__lua_number f[] = {
        {"taken", st.taken},   {"installed", st.installed},     {"offers", st.offers},
        {"chunks", st.chunks}, {"chunk_bytes", st.chunk_bytes}, {"delivered", st.delivered}};
    hr__lua_push_numbers(L, f, HR__LUA_COUNT(f));
    return 1;
}

static int l_storage_stats(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    struct hr_sim_storage_stats st;
    hr_sim_storage_stats(s->sim, &st);
    const struct hr__lua_number f[] = {
        {"crash_points", st.crash_points}, {"in_flight", st.in_flight},
        {"reboots", st.reboots},           {"files_reverted", st.files_reverted},
        {"torn", st.torn},                 {"repaired", st.repaired},
        {"reconciled", st.reconciled}};
    hr__lua_push_numbers(L, f, HR__LUA_COUNT(f));
    return 1;
}

static int l_alive(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    lua_pushboolean(L, hr_sim_alive(s->sim, check_id(L, s, 2)));
    return 1;
}

static int l_connected(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    lua_pushboolean(L, hr_sim_connected(s->sim, check_id(L, s, 2)));
    return 1;
}

/* state(id) -> role, term, leader (0: none), or nil while the node is crashed. The cheap
 * view for polling (c:leader() runs after every virtual millisecond of run_until). */
static int l_state(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    struct hr_raft *r = hr_sim_raft(s->sim, check_id(L, s, 2));
    if (r == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, hr_role_name(hr_raft_role(r)));
    lua_pushnumber(L, (lua_Number)hr_raft_term(r));
    lua_pushnumber(L, (lua_Number)hr_raft_leader(r));
    return 3;
}

static int l_status(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr__lsim_push_status(L, s, check_id(L, s, 2));
    return 1;
}

static int l_stats(lua_State *L)
{
    struct hr__lsim *s = check_sim(L);
    hr__lsim_push_stats(L, s, check_id(L, s, 2));
    return 1;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hr_sim_now(check_sim(L)->sim));
    return 1;
}

static int l_size(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)check_sim(L)->n);
    return 1;
}

static int l_seed(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)check_sim(L)->seed);
    return 1;
}

static int l_rpc_count(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hr_sim_rpc_count(check_sim(L)->sim));
    return 1;
}

static int l_rpc_bytes(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hr_sim_rpc_bytes(check_sim(L)->sim));
    return 1;
}

static int l_events(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hr_sim_events(check_sim(L)->sim));
    return 1;
}

static void release(struct hr__lsim *s)
{
    if (s->sim != NULL) {
        hr_sim_free(s->sim);
        s->sim = NULL;
    }
    free(s->hook_err);
    s->hook_err = NULL;
}

static int l_close(lua_State *L)
{
    struct hr__lsim *s = luaL_checkudata(L, 1, HR_LUA_SIM_MT);
    refuse_in_hook(L, s, "close");
    release(s);
    return 0;
}

static int l_gc(lua_State *L)
{
    release(luaL_checkudata(L, 1, HR_LUA_SIM_MT));
    return 0;
}

static int l_tostring(lua_State *L)
{
    struct hr__lsim *s = luaL_checkudata(L, 1, HR_LUA_SIM_MT);
    char buf[128];
    if (s->sim == NULL) {
        snprintf(buf, sizeof buf, HR_LUA_SIM_MT " (closed)");
    } else {
        snprintf(buf, sizeof buf,
                 HR_LUA_SIM_MT ": %" PRIu32 " nodes, seed %" PRIu64 ", t=%" PRIu64 " ms", s->n,
                 s->seed, (uint64_t)hr_sim_now(s->sim));
    }
    lua_pushstring(L, buf);
    return 1;
}

/* Read an optional hook function from opts (at index 1) into hooks table slot. */
static void read_hook(lua_State *L, int hooks, const char *name, int slot)
{
    lua_getfield(L, 1, name);
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1)) {
        luaL_error(L, "sim_new: %s must be a function (got %s)", name, luaL_typename(L, -1));
    }
    lua_rawseti(L, hooks, slot);
}

static int l_sim_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    struct hr_sim_options o;
    hr_sim_options_defaults(&o);

    lua_getfield(L, 1, "n");
    o.n = (uint32_t)hr__lua_check_uint(L, -1, "sim: n", 1, HR_MAX_NODES);
    lua_getfield(L, 1, "seed");
    if (!lua_isnil(L, -1)) {
        o.seed = hr__lua_check_uint(L, -1, "sim: seed", 0, (1ULL << 53));
    }
    lua_getfield(L, 1, "config");
    hr__lua_read_sim_config(L, -1, &o.config, &o.snap);
    lua_getfield(L, 1, "network");
    if (!lua_isnil(L, -1)) {
        hr__lua_read_net(L, -1, "network", &o.net);
    }
    lua_getfield(L, 1, "disk_latency_ms");
    if (!lua_isnil(L, -1)) {
        hr__lua_read_range(L, -1, "disk_latency_ms", &o.disk_latency_min_ms,
                           &o.disk_latency_max_ms);
    }
    lua_getfield(L, 1, "snapshot_latency_ms");
    if (!lua_isnil(L, -1)) {
        hr__lua_read_range(L, -1, "snapshot_latency_ms", &o.snap.snapshot_latency_min_ms,
                           &o.snap.snapshot_latency_max_ms);
    }
    lua_getfield(L, 1, "snapshot_chunk_bytes");
    if (!lua_isnil(L, -1)) {
        o.snap.snapshot_chunk_bytes =
            (uint32_t)hr__lua_check_uint(L, -1, "sim: snapshot_chunk_bytes", 1, UINT32_MAX);
    }
    lua_getfield(L, 1, "unsafe_install_keeps_log");
    o.unsafe_install_keeps_log = lua_toboolean(L, -1);
    lua_getfield(L, 1, "storage");
    if (!lua_isnil(L, -1)) {
        static const char *const kinds[] = {"model", "real", NULL};
        o.storage = luaL_checkoption(L, -1, NULL, kinds) == 0 ? HR_SIM_STORAGE_MODEL
                                                               : HR_SIM_STORAGE_REAL;
    }
    lua_getfield(L, 1, "storage_crash");
    if (!lua_isnil(L, -1)) {
        o.storage_crash = luaL_checknumber(L, -1);
    }
    lua_getfield(L, 1, "storage_faults");
    if (!lua_isnil(L, -1)) {
        /* What a crash keeps of the unsynced writes (simfs.h); each adds to the one
         * before. "pages" can refuse opens after a crash inside a truncate (a known gap
         * of csrc/storage until truncation is made durable as an intent). */
        static const char *const faults[] = {"none", "unsynced", "torn", "pages", NULL};
        static const unsigned flags[] = {
            0, HR_SIMFS_KEEP_UNSYNCED, HR_SIMFS_KEEP_UNSYNCED | HR_SIMFS_TORN,
            HR_SIMFS_KEEP_UNSYNCED | HR_SIMFS_TORN | HR_SIMFS_PAGES};
        o.storage_faults = flags[luaL_checkoption(L, -1, NULL, faults)];
    }
    lua_getfield(L, 1, "segment_size");
    if (!lua_isnil(L, -1)) {
        o.segment_size = hr__lua_check_uint(L, -1, "sim: segment_size", 256, UINT32_MAX);
    }
    lua_settop(L, 1);

    struct hr__lsim *s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    int ud = lua_gettop(L);
    luaL_getmetatable(L, HR_LUA_SIM_MT);
    lua_setmetatable(L, ud);

    lua_createtable(L, HR__HOOK_COUNT, 0);
    int hooks = lua_gettop(L);
    read_hook(L, hooks, "apply", HR__HOOK_APPLY);
    read_hook(L, hooks, "state", HR__HOOK_STATE);
    read_hook(L, hooks, "start", HR__HOOK_START);
    read_hook(L, hooks, "snapshot", HR__HOOK_SNAPSHOT);
    read_hook(L, hooks, "restore", HR__HOOK_RESTORE);
    read_hook(L, hooks, "snapshot_done", HR__HOOK_SNAPSHOT_DONE);
    read_hook(L, hooks, "read", HR__HOOK_READ);
    lua_pushcfunction(L, hr__lsim_traceback);
    lua_rawseti(L, hooks, HR__HOOK_TRACEBACK);
    lua_pushcfunction(L, hr__lsim_trampoline);
    lua_rawseti(L, hooks, HR__HOOK_TRAMPOLINE);
    lua_setfenv(L, ud);

    s->n = o.n;
    s->seed = o.seed;
    struct hr_sim_hooks h = hr__lsim_hooks_template;
    h.ctx = s;
    char err[256] = "";
    struct hr__lsim_frame saved;
    hr__lsim_enter(L, s, ud, &saved);
    s->sim = hr_sim_new(&o, &h, err, sizeof err);
    hr__lsim_leave(s, L, &saved);
    if (s->hook_err != NULL) {
        /* A node's FSM constructor failed: no half-built cluster. */
        lua_pushstring(L, s->hook_err);
        release(s);
        return lua_error(L);
    }
    if (s->sim == NULL) {
        return luaL_error(L, "sim_new: %s", err[0] != '\0' ? err : "failed");
    }
    lua_settop(L, ud);
    return 1;
}

static const luaL_Reg methods[] = {
    {"step", l_step},
    {"run_until", l_run_until},
    {"check", l_check},
    {"error", l_error},
    {"crash", l_crash},
    {"spawn", l_spawn},
    {"add", l_add},
    {"remove", l_remove},
    {"configuration", l_configuration},
    {"restart", l_restart},
    {"corrupt", l_corrupt},
    {"stall", l_stall},
    {"disconnect", l_disconnect},
    {"connect", l_connect},
    {"partition", l_partition},
    {"capture", l_capture},
    {"captured", l_captured},
    {"redeliver", l_redeliver},
    {"heal", l_heal},
    {"set_network", l_set_network},
    {"set_storage_crash", l_set_storage_crash},
    {"propose", l_propose},
    {"read", l_read},
    {"transfer", l_transfer},
    {"transferee", l_transferee},
    {"snapshot", l_snapshot},
    {"snapshot_info", l_snapshot_info},
    {"snapshot_stats", l_snapshot_stats},
    {"storage_stats", l_storage_stats},
    {"alive", l_alive},
    {"connected", l_connected},
    {"state", l_state},
    {"status", l_status},
    {"stats", l_stats},
    {"now", l_now},
    {"size", l_size},
    {"seed", l_seed},
    {"rpc_count", l_rpc_count},
    {"rpc_bytes", l_rpc_bytes},
    {"events", l_events},
    {"close", l_close},
    {NULL, NULL},
};

void hr__lua_open_sim(lua_State *L)
{
    hr__lua_new_class(L, HR_LUA_SIM_MT, methods, l_gc, l_tostring);
    lua_pushcfunction(L, l_sim_new);
}
