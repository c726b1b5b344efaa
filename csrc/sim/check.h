/*
 * check.h: the simulator's invariant checker (Raft paper Figure 3), incremental so it can
 * run after every simulated step. It remembers, across the whole run and every incarnation
 * of every node:
 *
 *   - the leader of each term                       (election safety)
 *   - (index, term) -> payload hash and prev term   (log matching)
 *   - index -> the entry known committed there      (leader completeness)
 *   - index -> the entry applied there              (state machine safety)
 *   - index -> the term and bytes of the snapshots taken there (snapshot safety: a
 *     snapshot covers the committed entry at its index, and deterministic FSMs give the
 *     same bytes for the same (index, term), so a restored FSM is the one snapshotted)
 *
 *   - term -> the vote each node was last seen holding (membership: a new leader holds the
 *     votes of a majority of the voters of its own configuration, so a learner's vote
 *     never elected anyone)
 *
 * and per node incarnation its last applied and last seen commit index. Membership rules
 * (csrc/core/membership.c) are checked too: a non-voter campaigns only while its
 * configuration is uncommitted, a server that knows it was removed stays a follower, a
 * leader whose removal committed has stepped down, a
 * config entry changes at most one voter, and a leader writes one only after its previous
 * configuration and an entry of its term committed. Election safety (one leader per term)
 * is checked over the whole run, so it holds across configuration changes. The first
 * violation is kept as a message and makes every later call return -1. Private to csrc/sim.
 *
 * Entries a node compacted away count as held when the node's snapshot covers them and
 * that snapshot's (index, term) is the committed entry there. Log matching reaches across
 * a snapshot boundary: an entry whose previous one is compacted is checked against the
 * boundary's term (or the term committed there), and whenever a node's boundary changes
 * (a snapshot taken or installed) or it starts again (a log loaded from disk) its log is
 * checked against it: the boundary is an entry some log held, the log agrees with it and
 * has no hole after it, the entries that follow the boundary or a compacted entry are
 * checked as appends, and no other live node committed a different term at its index. A restore (from the disk on
 * a restart, or installed from the leader) moves the node's applied index to the
 * snapshot's; in-order apply continues from there.
 *
 * The checker borrows the cores it is attached to; the simulator detaches a node before
 * freeing it.
 */
#ifndef HR_SIM_CHECK_H
#define HR_SIM_CHECK_H

#include "../node/node.h"

struct hr__check;

struct hr__check *hr__check_new(uint32_t n);
void hr__check_free(struct hr__check *c);

/* Node id (1..n) started a new incarnation with this node; detach: it crashed. */
void hr__check_attach(struct hr__check *c, hr_id_t id, struct hr_node *node);
void hr__check_detach(struct hr__check *c, hr_id_t id);

/* Each returns 0, or -1 after recording a violation (see hr__check_error). */
/* Node id's core appended these entries (the storage write path; its log holds them). */
int hr__check_append(struct hr__check *c, hr_id_t id, const struct hr_entry *e, size_t n);
/* Node id applies e to its FSM. */
int hr__check_apply(struct hr__check *c, hr_id_t id, const struct hr_entry *e);
/* Node id took a snapshot of its FSM through (index, term), with these bytes. */
int hr__check_snapshot(struct hr__check *c, hr_id_t id, hr_index_t index, hr_term_t term,
                       const struct hr_blob *data);
/* Node id's FSM is restored from the snapshot through (index, term) with these bytes:
 * installed from the leader (attached node), or on a restart before the node is created
 * (`starting`: only the bytes are checked; hr__check_attach sets the applied index). */
int hr__check_restore(struct hr__check *c, hr_id_t id, hr_index_t index, hr_term_t term,
                      const struct hr_blob *data, bool starting);
/* Node id took an input: its role, term and commit index may have changed. */
int hr__check_node(struct hr__check *c, hr_id_t id);
/* Everything, over the whole logs of every attached node (not incremental). */
int hr__check_full(struct hr__check *c);

/* Linearizable reads: read ctx (a small number, the simulator's counter) began now (the
 * simulator's clock); every entry applied anywhere by now may have been acknowledged to a
 * client, so a read that starts now must be served from an FSM that has applied at least
 * that far. */
int hr__check_read_begin(struct hr__check *c, uint64_t ctx, hr_time_t now);
/* Node id serves read ctx from its FSM, which has applied up to `applied`, at time now;
 * time_ms is the leader's clock the read is judged at (0: unknown). Every node runs on the
 * simulator's one clock, so a known time must lie between the read's start and now: the
 * moment the read takes effect (csrc/core/read.c). */
int hr__check_read_served(struct hr__check *c, hr_id_t id, uint64_t ctx, hr_index_t applied,
                          hr_time_t time_ms, hr_time_t now);

const char *hr__check_error(const struct hr__check *c);

#endif
