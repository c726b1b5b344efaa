/*
 * sim_views.c: read-only views of a simulated node as Lua tables (sim:status, sim:stats),
 * and the Lua names of roles, entry types and message types.
 *
 * The names are the Lua API's (lower case, stable): they are what specs and observers
 * compare against, so they are spelled here rather than borrowed from the core's debug
 * names.
 */
#include "binding.h"

const char *hr__lua_role_name(int role)
{
    static const char *const names[] = {
        [HR_FOLLOWER] = "follower",
        [HR_PRECANDIDATE] = "precandidate",
        [HR_CANDIDATE] = "candidate",
        [HR_LEADER] = "leader",
    };
    if (role < 0 || role > HR_LEADER) {
        return "unknown";
    }
    return names[role];
}

const char *hr__lua_entry_type_name(int type)
{
    switch (type) {
    case HR_ENTRY_COMMAND:
        return "command";
    case HR_ENTRY_NOOP:
        return "noop";
    case HR_ENTRY_CONFIG:
        return "config";
    }
    return "unknown";
}

static const char *msg_type_name(int type)
{
    static const char *const names[HR_MSG_TYPE_COUNT] = {
        [HR_MSG_APPEND] = "append",
        [HR_MSG_APPEND_RESP] = "append_resp",
        [HR_MSG_VOTE] = "vote",
        [HR_MSG_VOTE_RESP] = "vote_resp",
        [HR_MSG_PREVOTE] = "prevote",
        [HR_MSG_PREVOTE_RESP] = "prevote_resp",
        [HR_MSG_SNAPSHOT] = "snapshot",
        [HR_MSG_SNAPSHOT_RESP] = "snapshot_resp",
        [HR_MSG_TIMEOUT_NOW] = "timeout_now",
    };
    return type > 0 && type < HR_MSG_TYPE_COUNT ? names[type] : NULL;
}

static void set_number(lua_State *L, const char *key, uint64_t v)
{
    lua_pushnumber(L, (lua_Number)v);
    lua_setfield(L, -2, key);
}

void hr__lsim_push_status(lua_State *L, struct hr__lsim *s, hr_id_t id)
{
    struct hr_raft *r = hr_sim_raft(s->sim, id);
    struct hr_node *n = hr_sim_node(s->sim, id);
    if (r == NULL || n == NULL) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 15);
    set_number(L, "id", id);
    lua_pushstring(L, hr__lua_role_name(hr_raft_role(r)));
    lua_setfield(L, -2, "role");
    set_number(L, "term", hr_raft_term(r));
    set_number(L, "leader", hr_raft_leader(r));
    set_number(L, "vote", hr_raft_vote(r));
    set_number(L, "commit_index", hr_raft_commit_index(r));
    set_number(L, "first_index", hr_raft_first_index(r));
    set_number(L, "last_index", hr_raft_last_index(r));
    set_number(L, "applied_index", hr_node_applied(n));
    /* The snapshot the node's disk holds durably (what a restart starts from). */
    hr_index_t si = 0;
    hr_term_t st = 0;
    size_t size = 0;
    hr_sim_snapshot_info(s->sim, id, &si, &st, &size);
    set_number(L, "snapshot_index", si);
    set_number(L, "snapshot_term", st);
    set_number(L, "snapshot_size", size);

    struct hr_progress_info pr[HR_MAX_NODES];
    size_t np = hr_raft_progress(r, pr, HR_MAX_NODES);
    if (np > HR_MAX_NODES) {
        np = HR_MAX_NODES;
    }
    lua_createtable(L, (int)np, 0);
    for (size_t i = 0; i < np; i++) {
        lua_createtable(L, 0, 5);
        set_number(L, "id", pr[i].id);
        set_number(L, "match", pr[i].match);
        set_number(L, "next", pr[i].next);
        lua_pushboolean(L, pr[i].replicating);
        lua_setfield(L, -2, "replicating");
        lua_pushboolean(L, pr[i].snapshotting);
        lua_setfield(L, -2, "snapshotting");
        set_number(L, "inflight", pr[i].inflight);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "progress");
}

void hr__lsim_push_stats(lua_State *L, struct hr__lsim *s, hr_id_t id)
{
    struct hr_node *n = hr_sim_node(s->sim, id);
    if (n == NULL || hr_sim_raft(s->sim, id) == NULL) {
        lua_pushnil(L);
        return;
    }
    const struct hr_node_stats *st = hr_node_stats(n);
    lua_createtable(L, 0, 10);
    set_number(L, "batches", st->batches);
    set_number(L, "fsyncs", st->batches); /* each storage batch is one fsync */
    set_number(L, "entries_written", st->entries_written);
    set_number(L, "bytes_sent", st->bytes_sent);
    set_number(L, "msgs_received", st->msgs_received);
    set_number(L, "state_changes", st->state_changes);
    set_number(L, "elections", st->elections);
    set_number(L, "applied", st->applied);
    set_number(L, "snapshots_installed", st->snapshots_installed);
    uint64_t total = 0;
    lua_createtable(L, 0, HR_MSG_TYPE_COUNT);
    for (int t = 1; t < HR_MSG_TYPE_COUNT; t++) {
        set_number(L, msg_type_name(t), st->msgs_sent[t]);
        total += st->msgs_sent[t];
    }
    lua_setfield(L, -2, "msgs_sent_by_type");
    set_number(L, "msgs_sent", total);
}
