/*
 * snap.c: taking snapshots in the simulator (see sim.h): the threshold check on each node's
 * own timer, snapshots on demand, and what follows once one is durable (the core learns of
 * it, the disk drops the log before the entries kept for followers a little behind).
 *
 * One snapshot is written at a time per node, as the production node forks one child at a
 * time: a check that finds a write in progress waits for the next interval.
 */
#include "internal.h"

#include <inttypes.h>

void hr__snap_start(struct hr_sim *s, struct hr__simnode *sn)
{
    if (s->o.snap.snapshot_threshold > 0) {
        hr__sim_push_node_ev(s, sn, HR__EV_SNAP_CHECK, 0, s->now + s->o.snap.snapshot_interval_ms);
    }
}

/* The index of sn's newest snapshot: durable, being written, or installed by its core. */
static hr_index_t newest(const struct hr__simnode *sn)
{
    hr_index_t i = sn->disk.snap.index;
    if (sn->disk.pend.index > i) {
        i = sn->disk.pend.index;
    }
    hr_index_t core = hr_raft_snapshot_index(hr_node_raft(sn->node));
    return core > i ? core : i;
}

int hr__snap_take(struct hr_sim *s, struct hr__simnode *sn, hr_index_t *index)
{
    if (sn->disk.pend.index != 0) {
        return HR_EBUSY;
    }
    struct hr_raft *r = hr_node_raft(sn->node);
    hr_index_t applied = hr_node_applied(sn->node);
    hr_index_t last = newest(sn);
    if (applied <= last) {
        if (last == 0) {
            return HR_EINVAL; /* nothing applied yet */
        }
        *index = last;
        return 0;
    }
    hr_term_t term = hr_raft_term_at(r, applied);
    if (term == 0 || s->hooks.snapshot == NULL) {
        return HR_EINVAL;
    }
    struct hr_blob *data = NULL;
    if (s->hooks.snapshot(s->hooks.ctx, sn->id, &data) != 0) {
        hr_blob_release(data);
        hr__sim_stop(s, HR__STOP_HOOK,
                     "snapshot hook failed on node %" PRIu64 " at index %" PRIu64, sn->id,
                     applied);
        return HR__STOP_HOOK;
    }
    if (data == NULL && (data = hr_blob_new(NULL, 0)) == NULL) {
        hr__sim_stop(s, HR_ENOMEM, "out of memory");
        return HR_ENOMEM;
    }
    if (hr__check_snapshot(s->check, sn->id, applied, term, data) != 0) {
        hr_blob_release(data);
        hr__sim_check_failed(s);
        return HR__STOP_INVARIANT;
    }
    int rc = hr__disk_snap_begin(&sn->disk, applied, term, data);
    hr_blob_release(data);
    if (rc != 0) {
        hr__sim_disk_failed(s, sn, rc, "a snapshot write");
        return HR_EINVAL; /* nothing is being written */
    }
    hr_time_t due = s->now + hr_prng_range(&s->disk_prng, s->o.snap.snapshot_latency_min_ms,
                                           s->o.snap.snapshot_latency_max_ms);
    hr__sim_push_node_ev(s, sn, HR__EV_SNAP_DONE, 0, due);
    *index = applied;
    return 0;
}

void hr__snap_check(struct hr_sim *s, struct hr__simnode *sn)
{
    if (sn->disk.pend.index == 0 &&
        hr_node_applied(sn->node) >= newest(sn) + s->o.snap.snapshot_threshold) {
        hr_index_t index;
        /* A failure stops the simulation (the hook's or the checker's message); a refusal
         * (nothing to snapshot) waits for the next check. */
        (void)hr__snap_take(s, sn, &index);
    }
    if (s->stop_code == 0) {
        hr__sim_push_node_ev(s, sn, HR__EV_SNAP_CHECK, 0, s->now + s->o.snap.snapshot_interval_ms);
    }
}

void hr__snap_done(struct hr_sim *s, struct hr__simnode *sn)
{
    hr_index_t index = sn->disk.pend.index;
    hr_term_t term = sn->disk.pend.term;
    bool taken;
    int rc = hr__disk_snap_done(&sn->disk, &taken);
    if (rc != 0) {
        hr__sim_disk_failed(s, sn, rc, "a snapshot write");
        return;
    }
    if (!taken) {
        return; /* a snapshot installed from the leader overtook it */
    }
    s->snap_stats.taken++;
    uint64_t trailing = s->o.snap.trailing_logs;
    hr_index_t keep_from = index + 1 > trailing ? index + 1 - trailing : 1;
    if (index > hr_raft_snapshot_index(hr_node_raft(sn->node))) {
        rc = hr_node_snapshot_taken(sn->node, index, keep_from);
        if (rc != 0) {
            hr__sim_stop(s, HR__STOP_INVARIANT,
                         "snapshot: node %" PRIu64 " refused its durable snapshot through index "
                         "%" PRIu64 ": %s",
                         sn->id, index, hr_strerror(rc));
            return;
        }
    }
    rc = hr__disk_compact(&sn->disk, keep_from);
    if (rc != 0) {
        hr__sim_disk_failed(s, sn, rc, "a compaction");
    }
    if (s->hooks.snapshot_done != NULL) {
        s->hooks.snapshot_done(s->hooks.ctx, sn->id, index, term, false);
    }
    hr__sim_after_input(s, sn);
}
