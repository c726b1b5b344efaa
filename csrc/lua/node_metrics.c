/*
 * node_metrics.c: n:metrics() of core.node_new's nodes: every counter, gauge and histogram
 * of the runtime (csrc/node/runtime.h hr_runtime_stats: the node's, the transport's, the
 * storage group's and the runtime's own) as one raw table, and core.process_memory().
 * lua/helios/metrics.lua names them, adds the Lua side's and renders the Prometheus text
 * (docs/metrics.md lists every metric).
 *
 *   n:metrics() --> nil (shut down) | {
 *     role, term, leader, commit_index, applied_index, first_index, last_index, log_bytes,
 *     snapshot_index, snapshot_size,
 *     elections, became = { follower =, precandidate =, candidate =, leader = },
 *     leader_changes,
 *     peers = { [name] = { connected = bool, match = n (leader only) } },
 *     rpc_sent = { [type] = n }, rpc_received = { [type] = n },
 *     rpc_failed = { [reason] = { [type] = n } },          -- only non-zero ones
 *     transport = { bytes_sent, bytes_received, connects, disconnects, connect_failures,
 *                   accepted, auth_failures, bad_frames, queue_drops },
 *     storage = { fsyncs, batches, entries, failures, recoveries },
 *     snapshots = { taken, installed, transfers, chunks_sent, bytes_sent,
 *                   chunks_received, bytes_received, resumes },
 *     hist = { commit =, apply =, fsync =, snapshot_duration = (seconds),
 *              entries_per_fsync =, snapshot_size = (bytes) },
 *   }
 *   core.process_memory() --> resident bytes (0 if unknown)
 *
 * A histogram is { le = { bound, ... }, counts = { n, ... }, sum =, count = }: counts are
 * per bucket, not cumulative, with one more than le (the last is above every bound).
 * Nothing here runs on the hot path: it copies what the layers count.
 *
 * Threading: the loop's thread.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../core/hist.h"
#include "../node/runtime.h"
#include "binding.h"
#include "node_binding.h"

/* div: the unit of the layer's counts in the unit shown (1e6: microseconds as seconds);
 * dividing, not multiplying by 1e-6, gives the double nearest each decimal figure. */
static void push_hist(lua_State *L, const struct hr_hist *h, const uint64_t *le, size_t n,
                      double div)
{
    lua_createtable(L, 0, 4);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushnumber(L, (lua_Number)le[i] / div);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "le");
    lua_createtable(L, (int)n + 1, 0);
    for (size_t i = 0; i <= n; i++) {
        lua_pushnumber(L, (lua_Number)h->counts[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "counts");
    hr__lua_set_number(L, "sum", (double)h->sum / div);
    hr__lua_set_number(L, "count", (double)h->count);
}

/* { [type name] = n } of an array indexed by message type. */
static void push_by_type(lua_State *L, const uint64_t *v)
{
    lua_createtable(L, 0, HR_MSG_TYPE_COUNT);
    for (int t = 1; t < HR_MSG_TYPE_COUNT; t++) {
        hr__lua_set_number(L, hr_msg_type_name(t), (double)v[t]);
    }
}

static void push_peers(lua_State *L, struct hr_runtime *rt, struct hr_raft *r)
{
    struct hr_runtime_server sv[HR_MAX_NODES];
    size_t n = 0;
    hr_index_t index;
    bool committed;
    hr_id_t promoting;
    lua_newtable(L);
    if (hr_runtime_configuration(rt, sv, HR_MAX_NODES, &n, &index, &committed, &promoting) != 0) {
        return;
    }
    bool leader = r != NULL && hr_raft_role(r) == HR_LEADER;
    const char *self = hr_runtime_name(rt);
    for (size_t i = 0; i < n; i++) {
        if (sv[i].name == NULL || strcmp(sv[i].name, self) == 0) {
            continue;
        }
        lua_createtable(L, 0, 2);
        lua_pushboolean(L, hr_runtime_peer_connected(rt, sv[i].id));
        lua_setfield(L, -2, "connected");
        if (leader) {
            hr__lua_set_number(L, "match", (double)sv[i].match);
        }
        lua_setfield(L, -2, sv[i].name);
    }
}

void hr__lua_push_snapshot_counts(lua_State *L, const struct hr_runtime_stats *s)
{
    const struct hr__lua_number snap[] = {
        {"taken", s->snap.taken},
        {"installed", s->node.snapshots_installed},
        {"transfers", s->snap.transfers},
        {"chunks_sent", s->snap.chunks_sent},
        {"bytes_sent", s->snap.bytes_sent},
        {"chunks_received", s->snap.chunks_received},
        {"bytes_received", s->snap.bytes_received},
        {"resumes", s->snap.resumes},
    };
    hr__lua_push_numbers(L, snap, HR__LUA_COUNT(snap));
}

static int l_metrics(lua_State *L)
{
    struct hr_runtime *rt = hr__lua_node_runtime(L, 1);
    if (rt == NULL) {
        lua_pushnil(L);
        return 1;
    }
    struct hr_runtime_stats s;
    hr_runtime_stats(rt, &s);
    struct hr_raft *r = hr_runtime_raft(rt);
    lua_createtable(L, 0, 32);
    lua_pushstring(L, r != NULL ? hr_role_name(hr_raft_role(r)) : "failed");
    lua_setfield(L, -2, "role");
    if (r != NULL) {
        hr__lua_set_number(L, "term", (double)hr_raft_term(r));
        const char *leader = hr_runtime_name_of(rt, hr_raft_leader(r));
        if (leader != NULL) {
            lua_pushstring(L, leader);
            lua_setfield(L, -2, "leader");
        }
        hr__lua_set_number(L, "commit_index", (double)hr_raft_commit_index(r));
        hr__lua_set_number(L, "first_index", (double)hr_raft_first_index(r));
        hr__lua_set_number(L, "last_index", (double)hr_raft_last_index(r));
        hr__lua_set_number(L, "log_bytes", (double)hr_raft_log_bytes(r));
    }
    hr__lua_set_number(L, "applied_index", (double)hr_runtime_applied(rt));
    hr_index_t sindex;
    hr_term_t sterm;
    uint64_t ssize;
    hr_runtime_snapshot(rt, &sindex, &sterm, &ssize);
    hr__lua_set_number(L, "snapshot_index", (double)sindex);
    hr__lua_set_number(L, "snapshot_size", (double)ssize);
    hr__lua_set_number(L, "elections", (double)s.node.elections);
    hr__lua_set_number(L, "leader_changes", (double)s.m.leader_changes);
    lua_createtable(L, 0, HR_LEADER + 1);
    for (int role = 0; role <= HR_LEADER; role++) {
        hr__lua_set_number(L, hr_role_name(role), (double)s.m.became[role]);
    }
    lua_setfield(L, -2, "became");
    push_peers(L, rt, r);
    lua_setfield(L, -2, "peers");

    push_by_type(L, s.tcp.sent_by_type);
    lua_setfield(L, -2, "rpc_sent");
    push_by_type(L, s.tcp.received_by_type);
    lua_setfield(L, -2, "rpc_received");
    lua_newtable(L);
    for (int why = 0; why < HR_TCP_FAIL_COUNT; why++) {
        lua_newtable(L);
        for (int t = 0; t < HR_MSG_TYPE_COUNT; t++) {
            if (s.tcp.failed[why][t] != 0) {
                hr__lua_set_number(L, hr_msg_type_name(t), (double)s.tcp.failed[why][t]);
            }
        }
        lua_setfield(L, -2, hr_tcp_fail_name(why));
    }
    lua_setfield(L, -2, "rpc_failed");

    const struct hr__lua_number tcp[] = {
        {"bytes_sent", s.tcp.bytes_sent},   {"bytes_received", s.tcp.bytes_received},
        {"connects", s.tcp.connects},       {"disconnects", s.tcp.disconnects},
        {"connect_failures", s.tcp.connect_failures},
        {"accepted", s.tcp.accepted},       {"auth_failures", s.tcp.auth_failures},
        {"bad_frames", s.tcp.bad_frames},   {"queue_drops", s.tcp.queue_drops},
    };
    hr__lua_push_numbers(L, tcp, HR__LUA_COUNT(tcp));
    lua_setfield(L, -2, "transport");
    const struct hr__lua_number storage[] = {
        {"fsyncs", s.group.rounds},         {"batches", s.group.batches},
        {"entries", s.group.entries},       {"failures", s.storage_failures},
        {"recoveries", s.storage_recoveries},
    };
    hr__lua_push_numbers(L, storage, HR__LUA_COUNT(storage));
    lua_setfield(L, -2, "storage");
    hr__lua_push_snapshot_counts(L, &s);
    lua_setfield(L, -2, "snapshots");

    const double us = 1e6; /* the layers count microseconds; Prometheus wants seconds */
    lua_createtable(L, 0, 6);
    push_hist(L, &s.m.commit_us, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N, us);
    lua_setfield(L, -2, "commit");
    push_hist(L, &s.m.apply_us, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N, us);
    lua_setfield(L, -2, "apply");
    push_hist(L, &s.group.sync_us, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N, us);
    lua_setfield(L, -2, "fsync");
    push_hist(L, &s.group.entries_per_sync, HR_HIST_COUNT, HR_HIST_COUNT_N, 1);
    lua_setfield(L, -2, "entries_per_fsync");
    push_hist(L, &s.m.snapshot_us, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N, us);
    lua_setfield(L, -2, "snapshot_duration");
    push_hist(L, &s.m.snapshot_bytes, HR_HIST_BYTES, HR_HIST_BYTES_N, 1);
    lua_setfield(L, -2, "snapshot_size");
    lua_setfield(L, -2, "hist");
    return 1;
}

/* core.process_memory() -> the resident set size in bytes: /proc/self/statm's second
 * field (pages), else getrusage's peak (the best a system without /proc offers), else 0. */
static int l_process_memory(lua_State *L)
{
    double rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, resident;
    if (f != NULL && fscanf(f, "%lu %lu", &size, &resident) == 2) {
        long page = sysconf(_SC_PAGESIZE);
        rss = (double)resident * (double)(page > 0 ? page : 4096);
    } else {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) {
            rss = (double)ru.ru_maxrss * 1024.0; /* Linux reports KiB */
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    lua_pushnumber(L, (lua_Number)rss);
    return 1;
}

const luaL_Reg hr__lua_node_metrics_methods[] = {
    {"metrics", l_metrics},
    {NULL, NULL},
};

void hr__lua_open_node_metrics(lua_State *L)
{
    lua_pushcfunction(L, l_process_memory);
    lua_setfield(L, -2, "process_memory");
}
