/*
 * group.h: group commit for struct hr_log on a libuv loop.
 *
 * hr_group_write() queues one batch (term and vote, a truncation, entries). While a round
 * (write + fdatasync) runs on the libuv threadpool, new batches wait; when it ends they
 * all go into the next round together, so N proposers waiting on one disk cost about one
 * fsync per round, not one each. The loop thread never touches the disk, except in
 * inline mode (hr_group_set_inline): there the owner runs each round on the loop thread
 * with hr_group_run_due(), once per loop turn. That is for a node that has nothing to
 * overlap its fsync with (a follower answers only once its entries are durable): it saves
 * the two thread hand-offs of every round, which cost more than the work they move on a
 * machine where wake-ups are dear (docs/architecture.md, "Follower rounds on the loop").
 * Per-turn mode (hr_group_set_per_turn) keeps rounds on the threadpool but starts them
 * only from hr_group_run_due() too: a round that ends in the middle of a loop turn does
 * not start the next one with what was queued so far; the next round starts at the end
 * of the turn and takes the whole turn's batches. That is for a leader, which overlaps
 * its fsync with replication and must not block its loop on the disk: at most one round
 * starts per loop turn, and the rounds are fuller (docs/architecture.md, "Leader rounds
 * once per loop turn").
 *
 * Batches become durable in the order they were queued, and their completions are
 * reported in that order on the loop thread, always from a later loop iteration (inline:
 * from hr_group_run_due()), never from inside hr_group_write(). A failed round (ENOSPC,
 * EIO...) reports its status to every batch in it; the log then refuses writes, so later
 * rounds fail fast with the same status until hr_group_retry().
 *
 * Ownership: the group borrows the loop and the log; while the group exists only the
 * group uses the log (the worker thread does, or the loop thread in inline mode).
 * Entries passed to hr_group_write() are borrowed for the call: their bytes are copied on
 * the loop thread, so refcounted payloads that are not thread-safe (core/blob.h) never
 * reach the worker.
 * Threading: every function is called on the loop thread.
 */
#ifndef HR_STORAGE_GROUP_H
#define HR_STORAGE_GROUP_H

#include <stdbool.h>

#include "../core/hist.h"
#include "log.h"

/* uv.h is not included here: under -std=c11 it needs _GNU_SOURCE, which the
 * includer should not have to know. */
struct uv_loop_s;

/* status: 0 (durable) or a negative HR_E*; hr_group_errmsg() says more. */
typedef void (*hr_group_durable_cb)(void *arg, uint64_t seq, int status);

struct hr_group;

struct hr_group_meta {
    uint64_t term, vote;
};

struct hr_group *hr_group_new(struct uv_loop_s *loop, struct hr_log *log, hr_group_durable_cb cb,
                              void *arg);
/* Queue a batch: set term and vote (meta may be NULL), drop entries >= truncate (0:
 * none), append entries. seq must increase. 0, or HR_ENOMEM / HR_ESHUTDOWN (nothing
 * queued, no callback will come). */
int hr_group_write(struct hr_group *g, uint64_t seq, const struct hr_group_meta *meta,
                   uint64_t truncate, const struct hr_log_entry *e, size_t n);
/* Queue a batch that empties the log (a snapshot was installed: the log continues after
 * it, and the next append may start at any index), completed like a write. */
int hr_group_reset(struct hr_group *g, uint64_t seq);
/* Drop whole sealed segments below `below` (hr_log_compact) after the writes of the next
 * round, off the loop thread; no completion is reported. */
void hr_group_compact(struct hr_group *g, uint64_t below);
/* Inline mode on or off. Turned off, work already queued starts on the threadpool at
 * once (per-turn mode: at the next hr_group_run_due()); turned on, a round running on the
 * threadpool finishes there. */
void hr_group_set_inline(struct hr_group *g, bool on);
/* Per-turn mode on or off (see above; inline mode, when on, takes precedence). Turned off,
 * work already queued starts on the threadpool at once. */
void hr_group_set_per_turn(struct hr_group *g, bool on);
/* Inline or per-turn mode: whether a round is waiting for hr_group_run_due() (the owner
 * must not let its loop block while it is). */
bool hr_group_due(const struct hr_group *g);
/* Inline or per-turn mode: start the waiting round now. Inline, it runs on this (the
 * loop) thread: write, fdatasync, then report its batches; a completion may close the
 * group. Per-turn, it goes to the threadpool. No-op when nothing is due. */
void hr_group_run_due(struct hr_group *g);
/* Let writes go on after a failure (e.g. space was freed); takes effect at the next
 * round. */
void hr_group_retry(struct hr_group *g);
/* The message of the last failed round. */
const char *hr_group_errmsg(const struct hr_group *g);
/* Stop: batches not yet started are dropped without a callback (as a crash would); a
 * round in flight finishes first. done(arg) is called once the group is freed, which may
 * be before this returns; then the log may be closed. */
void hr_group_close(struct hr_group *g, void (*done)(void *arg), void *arg);

struct hr_group_stats {
    uint64_t rounds;   /* rounds run (each ends with one fdatasync if it wrote) */
    uint64_t batches;
    uint64_t entries;
    /* Of the rounds that synced: the fdatasync's duration (µs, HR_HIST_LATENCY_US, timed
     * on the worker around hr_log_sync only) and the entries the round wrote
     * (HR_HIST_COUNT). */
    struct hr_hist sync_us, entries_per_sync;
};
void hr_group_stats(const struct hr_group *g, struct hr_group_stats *s);

#endif
