/*
 * runtime.c: the production node on libuv (see runtime.h).
 *
 * Storage sequence numbers. The node numbers its storage batches 1, 2, ... and the group
 * requires increasing numbers for its whole life. A node rebuilt after a storage failure
 * starts again from 1, so the runtime maps node batch s to group batch seq_base + s, and
 * moves seq_base past everything queued so far at each failure: completions of an earlier
 * incarnation (or of the probe) are then recognized and never reach the new node.
 *
 * Threading: the loop's thread (runtime.h).
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include "runtime_impl.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static char *dup_str(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

hr_time_t hr_runtime_now(const struct hr_runtime *rt)
{
    return (hr_time_t)((int64_t)uv_now(rt->loop) + rt->clock_offset);
}

static hr_time_t ns_now(void *arg)
{
    return hr_runtime_now(arg);
}

/* ---- the node's collaborators ---- */

static int rt_write(void *ctx, uint64_t seq, const struct hr_hard_state *hs, hr_index_t truncate,
                    const struct hr_entry *entries, size_t n)
{
    struct hr_runtime *rt = ctx;
    uint64_t g = rt->seq_base + seq;
    assert(g > rt->gseq);
    int rc = rt->inner.write(rt->inner.ctx, g, hs, truncate, entries, n);
    if (rc == 0) {
        rt->gseq = g;
        if (hs != NULL) {
            rt->hs = *hs;
        }
    }
    return rc;
}

/* A run of committed entries. Those of our own commands are committed now: the node
 * applies in the drain that advanced the commit index, so this is the commit's time
 * (docs/metrics.md). The embedding gets the run in one apply_batch call, whose time goes
 * to apply_us as the run's mean, once per entry, so the histogram still counts entries;
 * or, without apply_batch, one apply call per entry, each timed. */
static void rt_apply(void *ctx, const struct hr_entry *e, size_t n)
{
    struct hr_runtime *rt = ctx;
    size_t skip = 0;
    while (skip < n && e[skip].index <= rt->applied) {
        skip++; /* applied before this node was rebuilt after a storage failure */
    }
    if (skip == n) {
        return;
    }
    e += skip;
    n -= skip;
    uint64_t t0 = uv_hrtime();
    for (size_t i = 0; i < n; i++) {
        struct hr__rt_proposed *p = &rt->proposed[e[i].index % HR__RT_PROPOSED];
        if (p->index == e[i].index && p->term == e[i].term) {
            hr_hist_observe(&rt->metrics.commit_us, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N,
                            (t0 - p->ns) / 1000);
            p->index = 0;
        }
    }
    rt->applied = e[n - 1].index;
    if (rt->cb.apply_batch != NULL) {
        rt->cb.apply_batch(rt->cb.ctx, e, n);
        uint64_t mean_us = (uv_hrtime() - t0) / 1000 / n;
        for (size_t i = 0; i < n; i++) {
            hr_hist_observe(&rt->metrics.apply_us, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N,
                            mean_us);
        }
        return;
    }
    for (size_t i = 0; rt->cb.apply != NULL && i < n; i++) {
        uint64_t t = uv_hrtime();
        rt->cb.apply(rt->cb.ctx, &e[i]);
        hr_hist_observe(&rt->metrics.apply_us, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N,
                        (uv_hrtime() - t) / 1000);
    }
}

void hr__rt_note_state(struct hr_runtime *rt, int role, hr_term_t term, hr_id_t leader)
{
    if (role != rt->last_role && role >= 0 && role <= HR_LEADER) {
        rt->metrics.became[role]++;
    }
    rt->last_role = role;
    if (leader != 0 && (leader != rt->last_leader || term != rt->last_leader_term)) {
        rt->metrics.leader_changes++;
        rt->last_leader = leader;
        rt->last_leader_term = term;
    }
}

static void rt_state(void *ctx, int role, hr_term_t term, hr_id_t leader)
{
    struct hr_runtime *rt = ctx;
    hr__rt_note_state(rt, role, term, leader);
    if (rt->group != NULL) {
        /* A leader's rounds stay on the threadpool: its loop goes on sending, heartbeating
         * and serving while its own entries sync (thesis §10.2.1). Any other role has
         * nothing to do meanwhile but wait for its round. Either way a round starts only
         * from prepare_cb, once per loop turn (per-turn mode, set at creation). */
        hr_group_set_inline(rt->group, role != HR_LEADER);
    }
    if (rt->cb.state != NULL) {
        rt->cb.state(rt->cb.ctx, role, term, hr_runtime_name_of(rt, leader));
    }
}

static void rt_recv(void *ctx, const struct hr_msg *m)
{
    struct hr_runtime *rt = ctx;
    if (rt->node != NULL && !rt->closing && !hr__rt_recv_snapshot(rt, m)) {
        hr_node_receive(rt->node, m, hr_runtime_now(rt));
    }
}

static void rt_log(void *ctx, int level, const char *msg)
{
    struct hr_runtime *rt = ctx;
    if (rt->cb.log != NULL) {
        rt->cb.log(rt->cb.ctx, level, msg);
    }
}

void hr__rt_log(struct hr_runtime *rt, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt_log(rt, level, msg);
}

/* ---- timers ---- */

/* A follower's (or candidate's) tick waits for check_cb, after this turn's poll for input.
 * libuv runs timers before it polls, so a loop that was held up (a long callback, a busy
 * machine, a stopped process) would otherwise judge its election timer before reading
 * what waited in its sockets, and campaign with its leader's heartbeat unread. The poll
 * does not block meanwhile: prepare_cb re-arms the timer at the past-due deadline (delay
 * 0). A leader ticks at once: its heartbeats must not wait behind the work of the poll
 * (answers that commit entries, applies, client requests), or its followers go quiet
 * after each stall; its CheckQuorum sees the answers taken in before this turn. */
static void tick_cb(uv_timer_t *t)
{
    struct hr_runtime *rt = t->data;
    if (rt->node != NULL && !rt->closing &&
        hr_raft_role(hr_node_raft(rt->node)) == HR_LEADER) {
        hr_node_tick(rt->node, hr_runtime_now(rt));
        return;
    }
    rt->tick_due = true;
}

static void check_cb(uv_check_t *c)
{
    struct hr_runtime *rt = c->data;
    if (!rt->tick_due) {
        return;
    }
    rt->tick_due = false;
    if (rt->node != NULL && !rt->closing) {
        hr_node_tick(rt->node, hr_runtime_now(rt));
    }
}

/* Once per loop turn, before the loop blocks: send this turn's proposals as one batch, start
 * the storage round that this turn's input queued (csrc/storage/group.h: on a follower it
 * runs here, inline, and the answers it holds go out once it is durable; a leader's goes
 * to the threadpool, per turn), and re-arm the tick timer at the core's next deadline
 * (every input may have moved it). */
static void prepare_cb(uv_prepare_t *p)
{
    struct hr_runtime *rt = p->data;
    if (rt->closing) {
        return;
    }
    if (rt->node == NULL) {
        hr_group_run_due(rt->group); /* the probe of a failed disk (retry_cb) */
        return;
    }
    hr_node_flush(rt->node);
    /* After the flush, so the round holds all this turn queued. Its completions send what
     * they held and apply what they commit; a failed round drops the node. */
    hr_group_run_due(rt->group);
    if (rt->node == NULL || rt->closing) {
        return;
    }
    hr_node_flush(rt->node); /* what the completions proposed */
    if (rt->node == NULL) {
        return;
    }
    /* Once per turn (not per message): accept the handshakes of servers a configuration
     * entry of this turn added. Sends to a server nobody knew yet sync at once
     * (hr__rt_send). */
    hr__rt_sync_conf(rt);
    hr_time_t now = hr_runtime_now(rt);
    hr_time_t d = hr_node_next_deadline(rt->node);
    uint64_t delay = d > now ? d - now : 0;
    if (delay > 1000) {
        delay = 1000; /* nothing due: look again in a second */
    }
    if (hr_group_due(rt->group)) {
        delay = 0; /* a round waits for the next turn: the poll must not block */
    }
    uv_timer_start(&rt->tick, tick_cb, delay, 0);
}

/* ---- building the node from what is durable ---- */

static void free_entries(struct hr_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hr_blob_release(e[i].data);
    }
    free(e);
}

/* Read term and vote, and the entries the core needs: those after the snapshot, and the
 * trailing ones before it (the storage worker must be idle). With a snapshot, the log's
 * older entries are not read at all: start time depends on trailing_logs, not on history.
 * Of those read before the snapshot, the core gets no more than trailing_logs_bytes. */
static int recover(struct hr_runtime *rt, struct hr_raft_state *st, struct hr_entry **out,
                   char *err, size_t errlen)
{
    uint64_t term, vote;
    hr_log_meta(rt->log, &term, &vote);
    memset(st, 0, sizeof *st);
    st->hs.term = term;
    st->hs.vote = vote;
    st->snapshot_index = rt->snap.index;
    st->snapshot_term = rt->snap.term;
    *out = NULL;
    uint64_t first = hr_log_first_index(rt->log), last = hr_log_last_index(rt->log);
    if (first > last) {
        return 0;
    }
    if (rt->snap.index == 0 && first != 1) {
        /* Only compaction after a snapshot drops a prefix. */
        snprintf(err, errlen, "recover: the log starts at index %" PRIu64
                 " but there is no snapshot", first);
        return HR_ECORRUPT;
    }
    uint64_t lo = first;
    if (rt->snap.index != 0) {
        uint64_t keep = rt->snap.index + 1 > rt->trailing_logs
                            ? rt->snap.index + 1 - rt->trailing_logs : 1;
        lo = keep > lo ? keep : lo;
        if (lo > last) {
            char more[160];
            snprintf(more, sizeof more, "snapshot: index %" PRIu64 ", log replay: none",
                     rt->snap.index);
            snprintf(rt->info + strlen(rt->info), sizeof rt->info - strlen(rt->info), "%s%s",
                     rt->info[0] ? "\n" : "", more);
            return 0;
        }
    }
    struct hr_log_entry *le;
    size_t n;
    int rc = hr_log_read(rt->log, lo, last, &le, &n);
    if (rc != 0) {
        snprintf(err, errlen, "recover: %s", hr_log_errmsg(rt->log));
        return rc;
    }
    if (rt->snap.index != 0) {
        char more[160];
        snprintf(more, sizeof more, "snapshot: index %" PRIu64 ", log read from index %"
                 PRIu64 " to %" PRIu64 " (%zu entries)", rt->snap.index, lo, last, n);
        snprintf(rt->info + strlen(rt->info), sizeof rt->info - strlen(rt->info), "%s%s",
                 rt->info[0] ? "\n" : "", more);
    }
    /* Of the entries up to the snapshot's index, the core keeps no more bytes than a
     * compaction would (trailing_logs_bytes): skip the older ones. */
    size_t skip = 0;
    if (rt->snap.index != 0) {
        skip = hr_node_storage_trailing_skip(le, n, rt->snap.index, rt->trailing_logs_bytes);
    }
    n -= skip;
    struct hr_entry *e = calloc(n > 0 ? n : 1, sizeof *e);
    if (e == NULL) {
        free(le);
        snprintf(err, errlen, "recover: out of memory");
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct hr_log_entry *src = &le[skip + i];
        e[i].term = src->term;
        e[i].index = src->index;
        e[i].time_ms = src->time_ms;
        e[i].type = src->type;
        if (src->len > 0) {
            e[i].data = hr_blob_new(src->data, src->len);
            if (e[i].data == NULL) {
                free(le);
                free_entries(e, n);
                snprintf(err, errlen, "recover: out of memory");
                return HR_ENOMEM;
            }
        }
    }
    free(le);
    st->entries = e;
    st->n_entries = n;
    *out = e;
    return 0;
}

static int build_node(struct hr_runtime *rt, char *err, size_t errlen)
{
    struct hr_raft_state st;
    struct hr_entry *entries;
    int rc = recover(rt, &st, &entries, err, errlen);
    if (rc != 0) {
        return rc;
    }
    hr_index_t last = st.n_entries > 0 ? entries[st.n_entries - 1].index : 0;
    if (last < rt->snap.index) {
        last = rt->snap.index;
    }
    if (rt->applied < rt->snap.index) {
        rt->applied = rt->snap.index; /* the embedding restores the FSM from it */
    }
    /* The followers may have committed entries, and this node applied them, before its own
     * write of them was durable (§10.2.1: the leader counts itself only once it is, but two
     * followers are a quorum without it); a failed write then lost them here. The FSM
     * cannot un-apply, so the core starts from the durable log and rt_apply skips what the
     * FSM already holds when those entries come back from the new leader: committed
     * entries are the same everywhere (State Machine Safety), so nothing is applied twice
     * and nothing differs. */
    st.applied = rt->applied <= last ? rt->applied : last;
    struct hr_config c = rt->raft;
    c.id = rt->id;
    c.seed = uv_hrtime() ^ rt->id ^ (uint64_t)rt->gseq;
    /* The configuration to start from: the snapshot's (its file holds the one in effect at
     * its index); else the bootstrap one, the peers option with their addresses (used by
     * the core only until the log's config entries say otherwise); with join, none: the
     * node waits to be added. */
    struct hr_blob *boot = NULL;
    if (rt->snap.index != 0 && rt->snap_conf != NULL) {
        st.conf = rt->snap_conf;
        st.conf_index = rt->snap_conf_index;
    } else if (!rt->join) {
        rc = hr__rt_bootstrap_conf(rt, &boot);
        if (rc != 0) {
            free_entries(entries, st.n_entries);
            snprintf(err, errlen, "bootstrap configuration: %s", hr_strerror(rc));
            return rc;
        }
        st.conf = boot;
        st.conf_index = 0;
    }
    c.voters = rt->join ? NULL : rt->ids;
    c.n_voters = rt->join ? 0 : rt->n_peers;
    struct hr_fsm fsm = {.ctx = rt,
                         .apply = rt_apply,
                         .state = rt_state,
                         .restore = hr__rt_restore,
                         .read = hr__rt_read};
    struct hr_node *node = hr_node_new(&c, &st, hr_runtime_now(rt), &rt->storage,
                                       &rt->net, &fsm, err, errlen);
    free_entries(entries, st.n_entries);
    hr_blob_release(boot);
    if (node == NULL) {
        return HR_EINVAL;
    }
    rt->hs = st.hs;
    rt->seq_base = rt->gseq;
    rt->node = node;
    rt->ns.node = node;
    hr__rt_sync_conf(rt);
    uv_timer_start(&rt->tick, tick_cb, 0, 0);
    return 0;
}

static void add_stats(struct hr_node_stats *acc, const struct hr_node_stats *s)
{
    acc->batches += s->batches;
    acc->entries_written += s->entries_written;
    for (int i = 0; i < HR_MSG_TYPE_COUNT; i++) {
        acc->msgs_sent[i] += s->msgs_sent[i];
    }
    acc->bytes_sent += s->bytes_sent;
    acc->msgs_received += s->msgs_received;
    acc->state_changes += s->state_changes;
    acc->elections += s->elections;
    acc->applied += s->applied;
    acc->snapshots_installed += s->snapshots_installed;
}

static void drop_node(struct hr_runtime *rt)
{
    if (rt->node != NULL) {
        add_stats(&rt->past, hr_node_stats(rt->node));
        hr_node_free(rt->node);
        rt->node = NULL;
        rt->ns.node = NULL;
    }
    hr__rt_fail_reads(rt);
    /* Whatever the dropped node still has queued belongs to it (see the top comment). */
    rt->seq_base = rt->gseq;
}

/* ---- storage failure and recovery ---- */

static void retry_cb(uv_timer_t *t);

static void on_storage_error(void *arg, uint64_t seq, int status, const char *msg)
{
    struct hr_runtime *rt = arg;
    (void)seq;
    if (rt->closing || rt->failed != 0) {
        return;
    }
    /* Called from the group's completion, with no frame of the node below us: the node
     * can be freed here. Dropping it is the simplest correct step-down: a leader stops
     * sending heartbeats at once, the followers elect another, and nothing the failed
     * write touched is ever acknowledged. */
    hr_term_t term = rt->node != NULL ? hr_raft_term(hr_node_raft(rt->node)) : rt->hs.term;
    bool was_leader = rt->node != NULL && hr_raft_role(hr_node_raft(rt->node)) == HR_LEADER;
    drop_node(rt);
    rt->failed = status;
    rt->storage_failures++;
    snprintf(rt->errmsg, sizeof rt->errmsg, "storage: %s",
             msg != NULL && msg[0] != '\0' ? msg : hr_strerror(status));
    uv_timer_stop(&rt->tick);
    uv_timer_start(&rt->retry, retry_cb, 1000, 1000);
    if (was_leader) {
        hr__rt_note_state(rt, HR_FOLLOWER, term, 0);
    }
    if (was_leader && rt->cb.state != NULL) {
        rt->cb.state(rt->cb.ctx, HR_FOLLOWER, term, NULL);
    }
    if (rt->cb.error != NULL) {
        rt->cb.error(rt->cb.ctx, status, rt->errmsg);
    }
}

static void probe_done(struct hr_runtime *rt, int status)
{
    rt->probing = false;
    if (status != 0) {
        snprintf(rt->errmsg, sizeof rt->errmsg, "storage: %s", hr_group_errmsg(rt->group));
        return; /* still failed: the retry timer tries again */
    }
    /* The probe round just ended and nothing else is queued (there is no node), so the
     * worker is idle and the log may be read here. */
    char err[512];
    int rc = build_node(rt, err, sizeof err);
    if (rc != 0) {
        snprintf(rt->errmsg, sizeof rt->errmsg, "storage: %s", err);
        uv_timer_stop(&rt->retry);
        if (rt->cb.error != NULL) {
            rt->cb.error(rt->cb.ctx, rc, rt->errmsg);
        }
        return;
    }
    uv_timer_stop(&rt->retry);
    rt->failed = 0;
    rt->storage_recoveries++;
    snprintf(rt->errmsg, sizeof rt->errmsg, "storage: recovered");
    if (rt->cb.error != NULL) {
        rt->cb.error(rt->cb.ctx, 0, rt->errmsg);
    }
}

static void on_durable(void *arg, uint64_t gseq, int status)
{
    struct hr_runtime *rt = arg;
    if (rt->closing) {
        return;
    }
    if (rt->probing && gseq == rt->probe_seq) {
        probe_done(rt, status);
        return;
    }
    if (rt->node == NULL || gseq <= rt->seq_base) {
        return; /* a batch of a dropped node */
    }
    hr_node_storage_durable(&rt->ns, gseq - rt->seq_base, status);
}

/* While failed, every second: let the log take writes again and prove it with a write of
 * term and vote (a real write: a sync of nothing would succeed on a full disk). */
static void retry_cb(uv_timer_t *t)
{
    struct hr_runtime *rt = t->data;
    if (rt->probing || rt->closing || rt->failed == 0) {
        return;
    }
    hr_group_retry(rt->group);
    struct hr_group_meta meta = {rt->hs.term, rt->hs.vote};
    rt->probe_seq = ++rt->gseq;
    rt->probing = true;
    if (hr_group_write(rt->group, rt->probe_seq, &meta, 0, NULL, 0) != 0) {
        rt->probing = false;
    }
}

/* ---- life cycle ---- */

static int check_config(const struct hr_runtime_config *c, char *err, size_t errlen)
{
    if (c->name == NULL || c->name[0] == '\0') {
        snprintf(err, errlen, "id is required");
        return HR_EINVAL;
    }
    if (c->data_dir == NULL || c->data_dir[0] == '\0') {
        snprintf(err, errlen, "data_dir is required");
        return HR_EINVAL;
    }
    if (c->secret == NULL || c->secret_len == 0) {
        snprintf(err, errlen, "secret must not be empty");
        return HR_EINVAL;
    }
    if ((c->n_peers == 0 && !c->join) || c->n_peers > HR_MAX_NODES) {
        snprintf(err, errlen, "peers must name 1 to %d nodes", HR_MAX_NODES);
        return HR_EINVAL;
    }
    bool self = false;
    for (size_t i = 0; i < c->n_peers; i++) {
        const struct hr_runtime_peer *p = &c->peers[i];
        if (p->name == NULL || p->name[0] == '\0' || p->addr == NULL || p->addr[0] == '\0') {
            snprintf(err, errlen, "peers: every peer needs an id and an address");
            return HR_EINVAL;
        }
        self |= strcmp(p->name, c->name) == 0;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->peers[j].name, p->name) == 0) {
                snprintf(err, errlen, "peers: '%s' is listed twice", p->name);
                return HR_EINVAL;
            }
            if (hr_tcp_node_id(c->peers[j].name) == hr_tcp_node_id(p->name)) {
                snprintf(err, errlen, "peers: ids '%s' and '%s' hash alike; rename one",
                         c->peers[j].name, p->name);
                return HR_EINVAL;
            }
        }
    }
    if (!self && !c->join) {
        snprintf(err, errlen, "peers must include this node ('%s')", c->name);
        return HR_EINVAL;
    }
    if (!self && (c->listen == NULL || c->listen[0] == '\0')) {
        snprintf(err, errlen, "listen is required when peers does not include this node");
        return HR_EINVAL;
    }
    return 0;
}

static void free_runtime(struct hr_runtime *rt)
{
    for (size_t i = 0; i < rt->n_peers; i++) {
        free((char *)rt->peers[i].name);
        free((char *)rt->peers[i].addr);
    }
    free(rt->peers);
    free(rt->ids);
    for (size_t i = 0; i < rt->n_known; i++) {
        free(rt->known[i].name);
        free(rt->known[i].addr);
    }
    free(rt->known);
    free(rt->reads);
    hr_blob_release(rt->snap_conf);
    free(rt->name);
    free(rt->data_dir);
    free(rt->listen);
    free(rt->cluster_id);
    free(rt->secret);
    free(rt);
}

struct hr_runtime *hr_runtime_new(uv_loop_t *loop, const struct hr_runtime_config *config,
                                  const struct hr_runtime_callbacks *cb, char *err, size_t errlen)
{
    if (check_config(config, err, errlen) != 0) {
        return NULL;
    }
    struct hr_config probe = config->raft;
    probe.id = 1;
    hr_id_t one = 1;
    probe.voters = &one;
    probe.n_voters = 1;
    if (hr_config_validate(&probe, err, errlen) != 0) {
        return NULL;
    }
    struct hr_runtime *rt = calloc(1, sizeof *rt);
    if (rt == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rt->loop = loop;
    if (cb != NULL) {
        rt->cb = *cb;
    }
    rt->raft = config->raft;
    rt->trailing_logs = config->trailing_logs;
    rt->trailing_logs_bytes = config->trailing_logs_bytes ? config->trailing_logs_bytes
                                                          : UINT64_MAX;
    rt->chunk_bytes = config->snapshot_chunk_bytes ? config->snapshot_chunk_bytes : 256u << 10;
    for (size_t i = 0; i < HR_MAX_NODES; i++) {
        rt->xfers[i].fd = -1;
    }
    rt->name = dup_str(config->name);
    rt->data_dir = dup_str(config->data_dir);
    rt->fs = config->fs;
    rt->cluster_id = dup_str(config->cluster_id != NULL ? config->cluster_id : "helios");
    bool ok_listen = true;
    rt->secret = malloc(config->secret_len);
    rt->join = config->join;
    rt->id = hr_tcp_node_id(config->name);
    rt->peers = calloc(config->n_peers > 0 ? config->n_peers : 1, sizeof *rt->peers);
    rt->ids = calloc(config->n_peers > 0 ? config->n_peers : 1, sizeof *rt->ids);
    if (config->listen != NULL) {
        rt->listen = dup_str(config->listen);
        ok_listen = rt->listen != NULL;
    }
    bool ok = ok_listen && rt->name && rt->data_dir && rt->cluster_id && rt->secret &&
              rt->peers && rt->ids;
    for (size_t i = 0; ok && i < config->n_peers; i++) {
        rt->peers[i].name = dup_str(config->peers[i].name);
        rt->peers[i].addr = dup_str(config->peers[i].addr);
        rt->n_peers = i + 1;
        ok = rt->peers[i].name != NULL && rt->peers[i].addr != NULL;
        rt->ids[i] = hr_tcp_node_id(config->peers[i].name);
        if (ok && strcmp(config->peers[i].name, config->name) == 0 && rt->listen == NULL) {
            rt->listen = dup_str(config->peers[i].addr);
            ok = rt->listen != NULL;
        }
        ok = ok && hr__rt_add_known(rt, rt->ids[i], rt->peers[i].name, rt->peers[i].addr) == 0;
        if (ok) {
            rt->known[rt->n_known - 1].pinned = true;
        }
    }
    if (!ok) {
        free_runtime(rt);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(rt->secret, config->secret, config->secret_len);
    rt->secret_len = config->secret_len;

    uv_update_time(loop);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    rt->clock_offset = wall - (int64_t)uv_now(loop);

    uv_timer_init(loop, &rt->tick);
    uv_timer_init(loop, &rt->retry);
    uv_prepare_init(loop, &rt->prepare);
    uv_check_init(loop, &rt->tick_check);
    rt->tick.data = rt->retry.data = rt->prepare.data = rt->tick_check.data = rt;
    /* The flush and the tick's check must not keep the loop alive by themselves. */
    uv_unref((uv_handle_t *)&rt->prepare);
    uv_unref((uv_handle_t *)&rt->tick_check);
    rt->net.send = hr__rt_send;
    rt->net.ctx = rt;
    rt->last_role = HR_FOLLOWER; /* every node starts as one */
    return rt;
}

int hr_runtime_start(struct hr_runtime *rt, char *err, size_t errlen)
{
    if (rt->started || rt->closing) {
        snprintf(err, errlen, "start: already started");
        return HR_EINVAL;
    }
    rt->started = true;
    char msg[512];
    struct hr_log_options lo;
    hr_log_options_default(&lo);
    lo.fs = rt->fs;
    int rc = hr_log_open(rt->data_dir, &lo, &rt->log, msg, sizeof msg, rt->info, sizeof rt->info);
    if (rc != 0) {
        snprintf(err, errlen, "start: %s", msg);
        return rc;
    }
    struct hr_snap_info si;
    bool found;
    /* The info message goes on after the log's (hr_snap_find appends). */
    rc = hr_snap_find(rt->fs, rt->data_dir, &si, &found, rt->info, sizeof rt->info, msg, sizeof msg);
    if (rc != 0) {
        snprintf(err, errlen, "start: %s", msg);
        return rc;
    }
    if (found) {
        rt->snap.index = si.index;
        rt->snap.term = si.term;
        rt->snap.size = si.file_size;
        rc = hr__rt_load_snap_conf(rt, si.index, si.term, msg, sizeof msg);
        if (rc != 0) {
            snprintf(err, errlen, "start: %s", msg);
            return rc;
        }
    }
    /* Before anything reads the log: it must continue the snapshot (a crash between
     * installing a snapshot and emptying the log, or a snapshot taken past the durable log,
     * leaves one that does not; csrc/storage/reconcile.c). */
    rc = hr_log_reconcile(rt->log, rt->snap.index, rt->snap.term, rt->info, sizeof rt->info,
                          msg, sizeof msg);
    if (rc != 0) {
        snprintf(err, errlen, "start: %s", msg);
        return rc;
    }
    rt->group = hr_group_new(rt->loop, rt->log, on_durable, rt);
    if (rt->group == NULL) {
        snprintf(err, errlen, "start: out of memory");
        return HR_ENOMEM;
    }
    hr_group_set_inline(rt->group, true); /* a node starts as a follower (rt_state) */
    hr_group_set_per_turn(rt->group, true);
    rt->ns.group = rt->group;
    rt->ns.on_error = on_storage_error;
    rt->ns.error_arg = rt;
    rt->ns.now = ns_now;
    rt->ns.now_arg = rt;
    hr_node_storage_init(&rt->ns, &rt->inner);
    rt->storage.ctx = rt;
    rt->storage.write = rt_write;
    rt->storage.install = hr__rt_install;

    struct hr_tcp_config tc = {
        .node_name = rt->name,
        .node_id = rt->id,
        .cluster_id = rt->cluster_id,
        .secret = rt->secret,
        .secret_len = rt->secret_len,
        .listen = rt->listen,
    };
    struct hr_tcp_callbacks tcb = {.ctx = rt, .recv = rt_recv, .log = rt_log};
    rt->tcp = hr_tcp_new(rt->loop, &tc, &tcb, msg, sizeof msg);
    if (rt->tcp == NULL) {
        snprintf(err, errlen, "start: %s", msg); /* msg says "transport: ..." */
        return HR_EINVAL;
    }
    rc = hr_tcp_start(rt->tcp, msg, sizeof msg);
    if (rc != 0) {
        snprintf(err, errlen, "start: %s", msg);
        return rc < 0 && rc >= HR_EPROTO ? rc : HR_EIO;
    }
    for (size_t i = 0; i < rt->n_known; i++) {
        const struct hr__rt_server *k = &rt->known[i];
        if (k->id != rt->id) {
            rc = hr_tcp_add_peer(rt->tcp, k->id, k->name, k->addr);
            if (rc != 0) {
                snprintf(err, errlen, "start: peer '%s': bad address '%s'", k->name, k->addr);
                return HR_EINVAL;
            }
        }
    }

    rc = build_node(rt, msg, sizeof msg);
    if (rc != 0) {
        snprintf(err, errlen, "start: %s", msg);
        return rc;
    }
    uv_prepare_start(&rt->prepare, prepare_cb);
    uv_check_start(&rt->tick_check, check_cb);
    return 0;
}

int hr_runtime_propose(struct hr_runtime *rt, const void *data, size_t len, hr_index_t *index,
                       hr_term_t *term)
{
    if (rt->closing || !rt->started) {
        return HR_ESHUTDOWN;
    }
    if (rt->failed != 0) {
        return HR_ENOSPACE;
    }
    if (rt->node == NULL) {
        return HR_ESHUTDOWN;
    }
    if (len > UINT32_MAX) {
        return HR_ETOOLARGE;
    }
    int rc = hr_node_propose(rt->node, HR_ENTRY_COMMAND, data, len, hr_runtime_now(rt), index,
                             term);
    if (rc == 0) {
        struct hr__rt_proposed *p = &rt->proposed[*index % HR__RT_PROPOSED];
        p->index = *index;
        p->term = *term;
        p->ns = uv_hrtime();
    }
    return rc;
}

void hr__rt_close_step(struct hr_runtime *rt)
{
    if (--rt->closes_pending > 0) {
        return;
    }
    void (*done)(void *) = rt->done;
    void *arg = rt->done_arg;
    free_runtime(rt);
    if (done != NULL) {
        done(arg);
    }
}

static void handle_closed(uv_handle_t *h)
{
    hr__rt_close_step(h->data);
}

static void tcp_closed(void *arg)
{
    hr__rt_close_step(arg);
}

static void group_closed(void *arg)
{
    struct hr_runtime *rt = arg;
    hr_log_close(rt->log); /* releases the data-dir lock */
    rt->log = NULL;
    hr__rt_close_step(rt);
}

/* From a loop callback, so that no frame of the node or of the caller's callbacks is
 * below us when the node is freed. */
static void teardown_cb(uv_timer_t *t)
{
    struct hr_runtime *rt = t->data;
    drop_node(rt);
    uv_timer_stop(&rt->retry);
    uv_prepare_stop(&rt->prepare);
    uv_check_stop(&rt->tick_check);
    rt->closes_pending = 1; /* held until every close below is started */
    hr__rt_snapshot_close(rt);
    if (rt->tcp != NULL) {
        rt->closes_pending++;
        hr_tcp_close(rt->tcp, tcp_closed, rt);
        rt->tcp = NULL;
    }
    if (rt->group != NULL) {
        rt->closes_pending++;
        hr_group_close(rt->group, group_closed, rt);
        rt->group = NULL;
    } else if (rt->log != NULL) {
        hr_log_close(rt->log);
        rt->log = NULL;
    }
    rt->closes_pending += 4;
    uv_close((uv_handle_t *)&rt->tick, handle_closed);
    uv_close((uv_handle_t *)&rt->retry, handle_closed);
    uv_close((uv_handle_t *)&rt->prepare, handle_closed);
    uv_close((uv_handle_t *)&rt->tick_check, handle_closed);
    hr__rt_close_step(rt);
}

void hr_runtime_shutdown(struct hr_runtime *rt, void (*done)(void *arg), void *arg)
{
    assert(!rt->closing);
    rt->closing = true;
    rt->done = done;
    rt->done_arg = arg;
    uv_timer_stop(&rt->retry);
    uv_timer_start(&rt->tick, teardown_cb, 0, 0);
}

struct hr_raft *hr_runtime_raft(struct hr_runtime *rt)
{
    return rt->node != NULL ? hr_node_raft(rt->node) : NULL;
}

struct hr_node *hr_runtime_node(struct hr_runtime *rt)
{
    return rt->node;
}

const char *hr_runtime_name(const struct hr_runtime *rt)
{
    return rt->name;
}

size_t hr_runtime_peer_count(const struct hr_runtime *rt)
{
    return rt->n_peers;
}

const struct hr_runtime_peer *hr_runtime_peer(const struct hr_runtime *rt, size_t i)
{
    return i < rt->n_peers ? &rt->peers[i] : NULL;
}

bool hr_runtime_peer_connected(const struct hr_runtime *rt, hr_id_t id)
{
    return rt->tcp != NULL && hr_tcp_connected(rt->tcp, id);
}

int hr_runtime_failed(const struct hr_runtime *rt)
{
    return rt->failed;
}

const char *hr_runtime_errmsg(const struct hr_runtime *rt)
{
    return rt->errmsg;
}

const char *hr_runtime_recovery_info(const struct hr_runtime *rt)
{
    return rt->info;
}

hr_index_t hr_runtime_applied(const struct hr_runtime *rt)
{
    return rt->applied;
}

void hr_runtime_stats(const struct hr_runtime *rt, struct hr_runtime_stats *s)
{
    memset(s, 0, sizeof *s);
    s->node = rt->past;
    if (rt->node != NULL) {
        add_stats(&s->node, hr_node_stats(rt->node));
    }
    if (rt->tcp != NULL) {
        s->tcp = *hr_tcp_stats(rt->tcp);
    }
    if (rt->group != NULL) {
        hr_group_stats(rt->group, &s->group);
    }
    s->snap = rt->snap_stats;
    s->storage_failures = rt->storage_failures;
    s->storage_recoveries = rt->storage_recoveries;
    s->m = rt->metrics;
}
