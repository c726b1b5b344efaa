/*
 * node.c: the ready loop (see node.h for the ordering rules it enforces).
 *
 * Every storage write gets a sequence number and a pending batch record. Messages the core
 * marks "after persist" are held on the newest pending batch and go out only when that batch
 * completes, so they can never overtake an earlier write that is not yet durable. The leader
 * counts its own entries towards a quorum (hr_raft_persisted) only when their batch completes.
 *
 * Threading: one thread, the caller's (see node.h).
 */
#include "node.h"
#include "../core/array.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A storage batch written but not yet durable, and what waits for it. */
struct batch {
    uint64_t seq;
    struct hr_msg *msgs; /* deep copies, sent when the batch is durable */
    size_t n_msgs, cap_msgs;
    bool has_entries;
    hr_index_t last_index;
    hr_term_t last_term;
};

struct hr_node {
    struct hr_raft *core;
    struct hr_storage storage;
    struct hr_network net;
    struct hr_fsm fsm;

    uint64_t next_seq;
    struct batch *ring; /* FIFO of pending batches, oldest at head */
    size_t head, count, cap;

    hr_index_t applied;
    /* Reads the core confirmed whose index the FSM has not reached yet (fsm.read). */
    struct hr_read_state *reads;
    size_t n_reads, cap_reads;
    hr_time_t clock; /* the last time the core was ticked */
    int role;
    bool draining;
    int failed; /* a storage or memory error stopped the node: 0 or HR_E* */
    struct hr_node_stats stats;
};

static struct batch *batch_at(struct hr_node *n, size_t i)
{
    return &n->ring[(n->head + i) % n->cap];
}

static struct batch *push_batch(struct hr_node *n)
{
    struct batch *v = hr_ring_reserve(n->ring, &n->head, n->count, &n->cap, sizeof(*v), 8);
    if (v == NULL) {
        return NULL;
    }
    n->ring = v;
    struct batch *b = batch_at(n, n->count);
    n->count++;
    memset(b, 0, sizeof(*b));
    return b;
}

static void batch_release(struct batch *b)
{
    for (size_t i = 0; i < b->n_msgs; i++) {
        hr_msg_release(&b->msgs[i]);
    }
    free(b->msgs);
    b->msgs = NULL;
    b->n_msgs = b->cap_msgs = 0;
}

static int batch_hold(struct batch *b, const struct hr_msg *m)
{
    struct hr_msg *v = hr_array_grow(b->msgs, &b->cap_msgs, b->n_msgs + 1, sizeof(*v), 4);
    if (v == NULL) {
        return HR_ENOMEM;
    }
    b->msgs = v;
    int rc = hr_msg_copy(&b->msgs[b->n_msgs], m);
    if (rc != 0) {
        return rc;
    }
    b->n_msgs++;
    return 0;
}

static void send_msg(struct hr_node *n, const struct hr_msg *m)
{
    if (m->type < HR_MSG_TYPE_COUNT) {
        n->stats.msgs_sent[m->type]++;
    }
    n->stats.bytes_sent += hr_msg_wire_size(m);
    n->net.send(n->net.ctx, m);
}

static void report_state(struct hr_node *n, const struct hr_ready *rd)
{
    n->stats.state_changes++;
    /* Soft state is coalesced per batch: a single-voter cluster goes from follower to
     * leader in one input without ever showing CANDIDATE; that is an election too. */
    if ((rd->role == HR_CANDIDATE && n->role != HR_CANDIDATE) ||
        (rd->role == HR_LEADER && n->role != HR_LEADER && n->role != HR_CANDIDATE)) {
        n->stats.elections++;
    }
    n->role = rd->role;
    if (n->fsm.state != NULL) {
        n->fsm.state(n->fsm.ctx, rd->role, rd->term, rd->leader);
    }
}

/* Queue one storage batch and the record of what waits for it. */
static struct batch *start_batch(struct hr_node *n)
{
    struct batch *b = push_batch(n);
    if (b != NULL) {
        b->seq = ++n->next_seq;
    }
    return b;
}

/* Serve what may be served: reads whose index the FSM reached, in the order confirmed. */
static void release_reads(struct hr_node *n)
{
    size_t keep = 0;
    for (size_t i = 0; i < n->n_reads; i++) {
        struct hr_read_state r = n->reads[i];
        if (r.index <= n->applied) {
            n->fsm.read(n->fsm.ctx, r.ctx, r.index, r.time_ms, 0);
        } else {
            n->reads[keep++] = r;
        }
    }
    n->n_reads = keep;
}

/* The batch's answered reads: failures at once, the others once applied that far (a
 * follower's read index can be ahead of what it has applied). */
static int handle_reads(struct hr_node *n, const struct hr_ready *rd)
{
    if (n->fsm.read == NULL) {
        return 0;
    }
    for (size_t i = 0; i < rd->n_reads; i++) {
        const struct hr_read_state *r = &rd->reads[i];
        if (r->status != 0) {
            n->fsm.read(n->fsm.ctx, r->ctx, r->index, 0, r->status);
            continue;
        }
        struct hr_read_state *v =
            hr_array_grow(n->reads, &n->cap_reads, n->n_reads + 1, sizeof(*v), 8);
        if (v == NULL) {
            return HR_ENOMEM;
        }
        n->reads = v;
        v[n->n_reads++] = *r;
    }
    release_reads(n);
    return 0;
}

/* One ready batch: persist, hold or send, report, install, apply. */
static int handle_ready(struct hr_node *n, struct hr_ready *rd)
{
    bool write = rd->has_hard_state || rd->truncate != 0 || rd->n_entries > 0;
    struct batch *hold = NULL;
    int rc;

    if (rd->has_snapshot) {
        /* The snapshot goes to storage ahead of the entries that follow it in this batch,
         * and whatever answers the leader waits for both. */
        if (n->storage.install == NULL) {
            return HR_EINVAL;
        }
        struct batch *b = start_batch(n);
        if (b == NULL) {
            return HR_ENOMEM;
        }
        rc = n->storage.install(n->storage.ctx, b->seq, rd->snapshot.index, rd->snapshot.term,
                                rd->snapshot.data);
        if (rc != 0) {
            n->count--;
            return rc;
        }
        n->stats.batches++;
        n->stats.snapshots_installed++;
        hold = b;
    }
    if (write) {
        struct batch *b = start_batch(n);
        if (b == NULL) {
            return HR_ENOMEM;
        }
        if (rd->n_entries > 0) {
            b->has_entries = true;
            b->last_index = rd->entries[rd->n_entries - 1].index;
            b->last_term = rd->entries[rd->n_entries - 1].term;
        }
        rc = n->storage.write(n->storage.ctx, b->seq, rd->has_hard_state ? &rd->hs : NULL,
                              rd->truncate, rd->entries, rd->n_entries);
        if (rc != 0) {
            n->count--;
            return rc;
        }
        n->stats.batches++;
        n->stats.entries_written += rd->n_entries;
        hold = b;
    } else if (hold == NULL && n->count > 0) {
        /* Nothing new to write, but an earlier write is still in flight: a vote or an
         * acknowledgement must not overtake it. */
        hold = batch_at(n, n->count - 1);
    }

    for (size_t i = 0; i < rd->n_msgs_after_persist; i++) {
        if (hold != NULL) {
            rc = batch_hold(hold, &rd->msgs_after_persist[i]);
            if (rc != 0) {
                return rc;
            }
        } else {
            send_msg(n, &rd->msgs_after_persist[i]);
        }
    }
    for (size_t i = 0; i < rd->n_msgs; i++) {
        send_msg(n, &rd->msgs[i]);
    }

    if (rd->soft_changed) {
        report_state(n, rd);
    }

    if (rd->has_snapshot) {
        /* The FSM takes the leader's state; the entries after it come through apply. */
        n->applied = rd->snapshot.index;
        if (n->fsm.restore != NULL) {
            n->fsm.restore(n->fsm.ctx, rd->snapshot.index, rd->snapshot.term,
                           rd->snapshot.data);
        }
    }

    if (rd->n_committed > 0) {
        assert(rd->committed[0].index == n->applied + 1 &&
               rd->committed[rd->n_committed - 1].index == n->applied + rd->n_committed);
        n->applied = rd->committed[rd->n_committed - 1].index;
        n->stats.applied += rd->n_committed;
        if (n->fsm.apply != NULL) {
            n->fsm.apply(n->fsm.ctx, rd->committed, rd->n_committed);
        }
    }
    return handle_reads(n, rd);
}

/* Drain the core's output until it has none. A nested input (an FSM apply that proposes)
 * only feeds the core; this loop picks up its output. */
static void drain(struct hr_node *n)
{
    if (n->draining) {
        return;
    }
    n->draining = true;
    while (n->failed == 0 && hr_raft_has_ready(n->core)) {
        struct hr_ready rd;
        hr_raft_ready(n->core, &rd);
        int rc = handle_ready(n, &rd);
        hr_raft_advance(n->core, &rd);
        if (rc != 0) {
            n->failed = rc;
        }
    }
    n->draining = false;
}

struct hr_node *hr_node_new(const struct hr_config *config, const struct hr_raft_state *st,
                            hr_time_t now, const struct hr_storage *storage,
                            const struct hr_network *net, const struct hr_fsm *fsm,
                            char *err, size_t errlen)
{
    if (storage == NULL || storage->write == NULL || net == NULL || net->send == NULL) {
        snprintf(err, errlen, "node: storage and network are required");
        return NULL;
    }
    struct hr_node *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        snprintf(err, errlen, "node: out of memory");
        return NULL;
    }
    n->core = hr_raft_new(config, st, now, err, errlen);
    if (n->core == NULL) {
        free(n);
        return NULL;
    }
    n->storage = *storage;
    n->net = *net;
    if (fsm != NULL) {
        n->fsm = *fsm;
    }
    n->role = hr_raft_role(n->core);
    n->clock = now;
    n->applied = st->applied;
    return n;
}

void hr_node_free(struct hr_node *n)
{
    if (n == NULL) {
        return;
    }
    for (size_t i = 0; i < n->count; i++) {
        batch_release(batch_at(n, i));
    }
    free(n->ring);
    free(n->reads);
    hr_raft_free(n->core);
    free(n);
}

/* Let the core see the time before it handles an input, without judging its timeouts
 * (see node.h): only hr_node_tick does that, after the inputs that were waiting. */
static void set_clock(struct hr_node *n, hr_time_t now)
{
    if (now > n->clock) {
        n->clock = now;
        hr_raft_set_clock(n->core, now);
    }
}

int hr_node_receive(struct hr_node *n, const struct hr_msg *m, hr_time_t now)
{
    if (n->failed != 0) {
        return n->failed;
    }
    set_clock(n, now);
    n->stats.msgs_received++;
    int rc = hr_raft_step(n->core, m);
    drain(n);
    return rc != 0 ? rc : n->failed;
}

void hr_node_tick(struct hr_node *n, hr_time_t now)
{
    if (n->failed != 0) {
        return;
    }
    n->clock = now > n->clock ? now : n->clock;
    hr_raft_tick(n->core, now);
    drain(n);
}

int hr_node_propose(struct hr_node *n, uint8_t type, const void *data, size_t len, hr_time_t now,
                    hr_index_t *index, hr_term_t *term)
{
    if (n->failed != 0) {
        return n->failed;
    }
    set_clock(n, now);
    return hr_raft_propose(n->core, type, data, len, index, term);
}

int hr_node_add(struct hr_node *n, hr_id_t id, const void *addr, size_t addr_len, bool voter,
                hr_time_t now, hr_index_t *index)
{
    if (n->failed != 0) {
        return n->failed;
    }
    set_clock(n, now);
    return hr_raft_add(n->core, id, addr, addr_len, voter, index);
}

int hr_node_remove(struct hr_node *n, hr_id_t id, hr_time_t now, hr_index_t *index)
{
    if (n->failed != 0) {
        return n->failed;
    }
    set_clock(n, now);
    return hr_raft_remove(n->core, id, index);
}

int hr_node_read_index(struct hr_node *n, uint64_t ctx, hr_time_t now)
{
    if (n->failed != 0) {
        return n->failed;
    }
    set_clock(n, now);
    return hr_raft_read_index(n->core, ctx);
}

int hr_node_transfer(struct hr_node *n, hr_id_t target, hr_time_t now)
{
    if (n->failed != 0) {
        return n->failed;
    }
    set_clock(n, now);
    return hr_raft_transfer(n->core, target);
}

void hr_node_flush(struct hr_node *n)
{
    drain(n);
}

void hr_node_persisted(struct hr_node *n, uint64_t seq, hr_time_t now)
{
    assert(n->count > 0 && batch_at(n, 0)->seq == seq);
    if (n->count == 0 || batch_at(n, 0)->seq != seq) {
        return;
    }
    set_clock(n, now);
    struct batch b = *batch_at(n, 0);
    n->head = (n->head + 1) % n->cap;
    n->count--;
    if (n->failed == 0) {
        for (size_t i = 0; i < b.n_msgs; i++) {
            send_msg(n, &b.msgs[i]);
        }
        /* §10.2.1: the leader's own write counts towards the quorum only now. */
        if (b.has_entries) {
            hr_raft_persisted(n->core, b.last_index, b.last_term);
        }
    }
    batch_release(&b);
    drain(n);
}

int hr_node_snapshot_taken(struct hr_node *n, hr_index_t index, hr_index_t keep_from)
{
    if (index > n->applied) {
        return HR_EINVAL;
    }
    int rc = hr_raft_snapshot_taken(n->core, index, keep_from);
    drain(n);
    return rc;
}

hr_time_t hr_node_next_deadline(const struct hr_node *n)
{
    return hr_raft_next_deadline(n->core);
}

struct hr_raft *hr_node_raft(struct hr_node *n)
{
    return n->core;
}

const struct hr_node_stats *hr_node_stats(const struct hr_node *n)
{
    return &n->stats;
}

hr_index_t hr_node_applied(const struct hr_node *n)
{
    return n->applied;
}
