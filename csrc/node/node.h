/*
 * node.h: one Raft node, the ready loop. It ties the consensus core to a storage, a
 * network and an FSM (the three interfaces below), and is the one place that orders their
 * effects:
 *
 *  1. Term and vote are persisted before the node answers a RequestVote or AppendEntries:
 *     every message the core marks "after persist" waits until the batch it came with, and
 *     every batch before it, is durable.
 *  2. A follower acknowledges entries only once they are durable (same mechanism).
 *  3. The leader sends AppendEntries before its own write is durable (thesis §10.2.1) but
 *     counts itself towards a quorum only after it (hr_raft_persisted on completion).
 *  4. Committed entries reach the FSM in index order, once each per FSM instance.
 *
 * The production node (libuv, runtime.c) and the simulator (csrc/sim) run this same code with
 * different storage and network implementations.
 *
 * Threading: a node and its callbacks run on one thread (the loop's, or the simulator's).
 * Callbacks may call back into the node (an FSM apply may propose); the node finishes the
 * batch in hand first and then drains the new output.
 */
#ifndef HR_NODE_H
#define HR_NODE_H

#include "../core/raft.h"

struct hr_node;

/* Durable storage. write() queues one batch: set the hard state (hs may be NULL), drop the
 * entries at index >= truncate (0: none), append entries. The storage makes batches durable
 * in the order of seq and calls hr_node_persisted(node, seq) for each, never from inside
 * write(). Entries are borrowed for the call: retain the blobs kept. Returns 0 or HR_E*. */
struct hr_storage {
    void *ctx;
    int (*write)(void *ctx, uint64_t seq, const struct hr_hard_state *hs, hr_index_t truncate,
                 const struct hr_entry *entries, size_t n);
    /* Queue the installation of a snapshot received from the leader, in seq order with the
     * writes: make the snapshot through (index, term) durable (data: its bytes, retained by
     * the storage if kept; NULL when the storage already holds them from a chunked
     * transfer), then drop the whole log, which continues at index + 1. Completion as for
     * write(). NULL: the storage cannot install snapshots (the node then fails). */
    int (*install)(void *ctx, uint64_t seq, hr_index_t index, hr_term_t term,
                   struct hr_blob *data);
};

/* The network as the node sees it. send() is best effort and never calls back into the
 * node; m is borrowed (hr_msg_copy to keep it). Implemented by the TCP transport
 * (csrc/transport, struct hr_tcp: hr_tcp_send, wrapped by the runtime) and by the
 * simulator's network (csrc/sim/net.c). Not named "transport": that is csrc/transport. */
struct hr_network {
    void *ctx;
    void (*send)(void *ctx, const struct hr_msg *m);
};

/* The state machine and observers. apply() receives each committed entry once, in order
 * (no-op and config entries too: the FSM layer skips what it does not apply), a ready
 * batch's entries in one call (n >= 1): an FSM across a language boundary (Lua) pays for
 * the crossing once per batch, not once per entry. hr_node_applied() is the batch's last
 * index for the whole call: what the FSM itself has applied so far is its own to know (a
 * snapshot taken from inside the call must ask it). state() is called when role, term or
 * leader change. Either may be NULL. */
struct hr_fsm {
    void *ctx;
    void (*apply)(void *ctx, const struct hr_entry *e, size_t n);
    void (*state)(void *ctx, int role, hr_term_t term, hr_id_t leader);
    /* Replace the FSM's state with the snapshot through (index, term) that the leader sent
     * (data as in struct hr_storage's install). Entries after index follow through apply.
     * May be NULL only where snapshots never travel. */
    void (*restore)(void *ctx, hr_index_t index, hr_term_t term, struct hr_blob *data);
    /* A read asked with hr_node_read_index may be served now (status 0: the FSM has applied
     * up to the read index, `index`; time_ms: the leader's clock when it fixed the index,
     * 0 unknown: struct hr_read_state), or has failed (status HR_ENOTLEADER / HR_ETIMEOUT:
     * do not serve it). Called once per read, after the applies of the same batch. May be
     * NULL when the node takes no reads. */
    void (*read)(void *ctx, uint64_t read_ctx, hr_index_t index, hr_time_t time_ms, int status);
};

struct hr_node_stats {
    uint64_t batches; /* storage batches written (each one an fsync) */
    uint64_t entries_written;
    uint64_t msgs_sent[HR_MSG_TYPE_COUNT];
    uint64_t bytes_sent; /* hr_msg_wire_size of every message sent */
    uint64_t msgs_received;
    uint64_t state_changes;
    uint64_t elections; /* times this node became a candidate */
    uint64_t applied;
    uint64_t snapshots_installed; /* snapshots received from a leader */
};

/* Create a node. config and st as for hr_raft_new() (st->applied: what the FSM already
 * holds); storage, net and fsm are copied (their ctx pointers are borrowed and must
 * outlive the node). NULL on error (message in err). */
struct hr_node *hr_node_new(const struct hr_config *config, const struct hr_raft_state *st,
                            hr_time_t now, const struct hr_storage *storage,
                            const struct hr_network *net, const struct hr_fsm *fsm,
                            char *err, size_t errlen);
/* Free the node; batches still in storage are forgotten (a crash, as far as the node can
 * tell). */
void hr_node_free(struct hr_node *n);

/*
 * Inputs. Each takes the caller's clock, and the node moves the core's clock to it first
 * (a heartbeat must reset the election timer from the time it was taken in, and an entry
 * is stamped with the time it was proposed). Only hr_node_tick acts on timeouts (an
 * election, CheckQuorum, a heartbeat due): a node that was held up longer than an election
 * timeout must take in the messages that waited for it before it judges whether its
 * leader or its followers went quiet; the caller ticks once those are in (runtime.c).
 * receive, tick and persisted drain the core's output before they return.
 */
int hr_node_receive(struct hr_node *n, const struct hr_msg *m, hr_time_t now);
void hr_node_tick(struct hr_node *n, hr_time_t now);
void hr_node_persisted(struct hr_node *n, uint64_t seq, hr_time_t now);
/* Append a command (leader only): 0 and its index and term, or HR_E*. Its output stays in
 * the core until hr_node_flush() or the next input, so that the proposals of one turn of the
 * caller's loop go out as one storage batch and one AppendEntries per follower: the caller
 * flushes once per turn. */
int hr_node_propose(struct hr_node *n, uint8_t type, const void *data, size_t len, hr_time_t now,
                    hr_index_t *index, hr_term_t *term);
void hr_node_flush(struct hr_node *n);
/* Membership changes (leader only), as hr_raft_add / hr_raft_remove; output as for
 * hr_node_propose (flush). */
int hr_node_add(struct hr_node *n, hr_id_t id, const void *addr, size_t addr_len, bool voter,
                hr_time_t now, hr_index_t *index);
int hr_node_remove(struct hr_node *n, hr_id_t id, hr_time_t now, hr_index_t *index);
/* A linearizable read (hr_raft_read_index), answered through fsm->read once the FSM may
 * serve it; output waits for hr_node_flush like a proposal's. 0 or HR_E* (not_leader at
 * once when no leader is known). */
int hr_node_read_index(struct hr_node *n, uint64_t ctx, hr_time_t now);
/* Leadership transfer (hr_raft_transfer); output waits for hr_node_flush. */
int hr_node_transfer(struct hr_node *n, hr_id_t target, hr_time_t now);

/* The embedding made a snapshot of the FSM through `index` durable: see
 * hr_raft_snapshot_taken (keep_from: the first entry to keep for followers a little
 * behind). */
int hr_node_snapshot_taken(struct hr_node *n, hr_index_t index, hr_index_t keep_from);

hr_time_t hr_node_next_deadline(const struct hr_node *n);
struct hr_raft *hr_node_raft(struct hr_node *n);
const struct hr_node_stats *hr_node_stats(const struct hr_node *n);
/* The last index handed to fsm->apply. */
hr_index_t hr_node_applied(const struct hr_node *n);

#endif
