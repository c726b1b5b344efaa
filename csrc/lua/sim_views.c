/*
 * sim_views.c: read-only views of a simulated node as Lua tables (sim:status, sim:stats),
 * and the Lua names of entry types.
 *
 * Role and message type names come from the core (hr_role_name, hr_msg_type_name): the
 * Lua API exposes them as they are, so specs and observers compare against those.
 *
 * node_binding.c's node:status, node:stats and apply hook use the same pieces (entry
 * arguments, progress rows, messages sent by type), so both bindings show them alike.
 */
#include "binding.h"

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

int hr__lua_push_entry(lua_State *L, const struct hr_entry *e)
{
    lua_pushnumber(L, (lua_Number)e->index);
    lua_pushnumber(L, (lua_Number)e->term);
    lua_pushstring(L, hr__lua_entry_type_name(e->type));
    lua_pushlstring(L, e->data != NULL ? (const char *)e->data->data : "", hr_blob_len(e->data));
    lua_pushnumber(L, (lua_Number)e->time_ms);
    return 5;
}

void hr__lua_set_progress(lua_State *L, const struct hr_raft *r,
                          void (*set_id)(lua_State *L, void *ctx, hr_id_t id), void *ctx)
{
    struct hr_progress_info pr[HR_MAX_NODES];
    size_t np = hr_raft_progress(r, pr, HR_MAX_NODES);
    if (np > HR_MAX_NODES) {
        np = HR_MAX_NODES;
    }
    lua_createtable(L, (int)np, 0);
    for (size_t i = 0; i < np; i++) {
        lua_createtable(L, 0, 5);
        set_id(L, ctx, pr[i].id);
        hr__lua_set_number(L, "match", pr[i].match);
        hr__lua_set_number(L, "next", pr[i].next);
        lua_pushboolean(L, pr[i].replicating);
        lua_setfield(L, -2, "replicating");
        lua_pushboolean(L, pr[i].snapshotting);
        lua_setfield(L, -2, "snapshotting");
        hr__lua_set_number(L, "inflight", pr[i].inflight);
        if (pr[i].leaving) {
            /* a server that left, told until it knows (csrc/core/membership.c) */
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "leaving");
        }
        if (pr[i].contact_known) {
            hr__lua_set_number(L, "last_contact_ms", (double)pr[i].contact_age);
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "progress");
}

void hr__lua_set_msgs_sent(lua_State *L, const uint64_t msgs_sent[HR_MSG_TYPE_COUNT])
{
    uint64_t total = 0;
    lua_createtable(L, 0, HR_MSG_TYPE_COUNT);
    for (int t = 1; t < HR_MSG_TYPE_COUNT; t++) {
        hr__lua_set_number(L, hr_msg_type_name(t), msgs_sent[t]);
        total += msgs_sent[t];
    }
    lua_setfield(L, -2, "msgs_sent_by_type");
    hr__lua_set_number(L, "msgs_sent", total);
}

/* A sim's node ids are numbers. */
static void set_id_number(lua_State *L, void *ctx, hr_id_t id)
{
    (void)ctx;
    hr__lua_set_number(L, "id", id);
}

void hr__lsim_push_status(lua_State *L, struct hr__lsim *s, hr_id_t id)
{
    struct hr_raft *r = hr_sim_raft(s->sim, id);
    struct hr_node *n = hr_sim_node(s->sim, id);
    if (r == NULL || n == NULL) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 16);
    hr__lua_set_number(L, "id", id);
    /* A node that knows it is out of the cluster (hr_raft_removed) shows as "removed"
     * whatever its core role (a follower that never campaigns again). */
    bool removed = hr_raft_removed(r);
    lua_pushstring(L, removed ? "removed" : hr_role_name(hr_raft_role(r)));
    lua_setfield(L, -2, "role");
    lua_pushboolean(L, removed);
    lua_setfield(L, -2, "removed");
    hr__lua_set_number(L, "term", hr_raft_term(r));
    hr__lua_set_number(L, "leader", hr_raft_leader(r));
    hr__lua_set_number(L, "vote", hr_raft_vote(r));
    hr__lua_set_number(L, "commit_index", hr_raft_commit_index(r));
    hr__lua_set_number(L, "first_index", hr_raft_first_index(r));
    hr__lua_set_number(L, "last_index", hr_raft_last_index(r));
    hr__lua_set_number(L, "log_bytes", hr_raft_log_bytes(r));
    hr__lua_set_number(L, "last_term", hr_raft_term_at(r, hr_raft_last_index(r)));
    hr__lua_set_number(L, "applied_index", hr_node_applied(n));
    /* The snapshot the node's disk holds durably (what a restart starts from). */
    hr_index_t si = 0;
    hr_term_t st = 0;
    size_t size = 0;
    hr_sim_snapshot_info(s->sim, id, &si, &st, &size);
    hr__lua_set_number(L, "snapshot_index", si);
    hr__lua_set_number(L, "snapshot_term", st);
    hr__lua_set_number(L, "snapshot_size", size);
    hr__lua_set_progress(L, r, set_id_number, NULL);
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
    hr__lua_set_number(L, "batches", st->batches);
    hr__lua_set_number(L, "fsyncs", st->batches); /* each storage batch is one fsync */
    hr__lua_set_number(L, "entries_written", st->entries_written);
    hr__lua_set_number(L, "bytes_sent", st->bytes_sent);
    hr__lua_set_number(L, "msgs_received", st->msgs_received);
    hr__lua_set_number(L, "state_changes", st->state_changes);
    hr__lua_set_number(L, "elections", st->elections);
    hr__lua_set_number(L, "applied", st->applied);
    hr__lua_set_number(L, "snapshots_installed", st->snapshots_installed);
    hr__lua_set_msgs_sent(L, st->msgs_sent);
}
