/*
 * snap.c: taking snapshots in the simulator (see sim.h): the threshold check on each node's
 * own timer, snapshots on demand, and what follows once one is durable (the core learns of
 * it, the disk drops the log before the entries kept for followers a little behind).
 *
 * One snapshot is taken and written at a time per node, as a networked node does: a check
 * that finds one in progress waits for the next interval. An FSM may take its snapshots in
 * slices (sim.h, the snapshot hook): the entries that come meanwhile are applied between
 * them, and the bytes are checked and written once the last slice gave them.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int hr__snap_frame(const struct hr_blob *conf, hr_index_t conf_index, const struct hr_blob *fsm,
                   struct hr_blob **out)
{
    size_t cl = hr_blob_len(conf), fl = hr_blob_len(fsm);
    unsigned char *buf = malloc(12 + cl + fl);
    if (buf == NULL) {
        return HR_ENOMEM;
    }
    for (int i = 0; i < 8; i++) {
        buf[i] = (unsigned char)(conf_index >> (8 * i));
    }
    for (int i = 0; i < 4; i++) {
        buf[8 + i] = (unsigned char)(cl >> (8 * i));
    }
    if (cl > 0) {
        memcpy(buf + 12, conf->data, cl);
    }
    if (fl > 0) {
        memcpy(buf + 12 + cl, fsm->data, fl);
    }
    *out = hr_blob_new(buf, 12 + cl + fl);
    free(buf);
    return *out != NULL ? 0 : HR_ENOMEM;
}

int hr__snap_unframe(const struct hr_blob *framed, struct hr_blob **conf, hr_index_t *conf_index,
                     struct hr_blob **fsm)
{
    *conf = *fsm = NULL;
    size_t len = hr_blob_len(framed);
    if (len < 12) {
        return HR_ECORRUPT;
    }
    uint64_t ci = 0, cl = 0;
    for (int i = 7; i >= 0; i--) {
        ci = (ci << 8) | framed->data[i];
    }
    for (int i = 3; i >= 0; i--) {
        cl = (cl << 8) | framed->data[8 + i];
    }
    if (cl > len - 12) {
        return HR_ECORRUPT;
    }
    *conf_index = ci;
    if (cl > 0 && (*conf = hr_blob_new(framed->data + 12, cl)) == NULL) {
        return HR_ENOMEM;
    }
    if ((*fsm = hr_blob_new(framed->data + 12 + cl, len - 12 - cl)) == NULL) {
        hr_blob_release(*conf);
        *conf = NULL;
        return HR_ENOMEM;
    }
    return 0;
}

void hr__snap_start(struct hr_sim *s, struct hr__simnode *sn)
{
    sn->applied_bytes = 0;
    sn->snap_soon = false;
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

void hr__snap_reset(struct hr__simnode *sn)
{
    hr_blob_release(sn->slicing.conf);
    memset(&sn->slicing, 0, sizeof sn->slicing);
}

/* The FSM's bytes (data, a reference this takes over) of sn's snapshot through (index,
 * term), with the configuration in effect there: check them, frame them and start
 * writing. 0, or what stopped the simulation. */
static int write_snapshot(struct hr_sim *s, struct hr__simnode *sn, hr_index_t index,
                          hr_term_t term, const struct hr_blob *conf, hr_index_t conf_index,
                          struct hr_blob *data)
{
    /* The checker compares FSM bytes: the configuration framed with them is the same on
     * every node at one index, except on a spawned node for indexes before the first
     * config entry it holds (it never knew the bootstrap configuration, which is not in
     * the log: see csrc/core/membership.c), where it is empty. */
    if (hr__check_snapshot(s->check, sn->id, index, term, data) != 0) {
        hr_blob_release(data);
        hr__sim_check_failed(s);
        return HR__STOP_INVARIANT;
    }
    struct hr_blob *framed = NULL;
    if (hr__snap_frame(conf, conf_index, data, &framed) != 0) {
        hr_blob_release(data);
        hr__sim_stop(s, HR_ENOMEM, "out of memory");
        return HR_ENOMEM;
    }
    hr_blob_release(data);
    int rc = hr__disk_snap_begin(&sn->disk, index, term, framed);
    hr_blob_release(framed);
    if (rc != 0) {
        hr__sim_disk_failed(s, sn, rc, "a snapshot write");
        return HR_EINVAL; /* nothing is being written */
    }
    hr_time_t due = s->now + hr_prng_range(&s->disk_prng, s->o.snap.snapshot_latency_min_ms,
                                           s->o.snap.snapshot_latency_max_ms);
    hr__sim_push_node_ev(s, sn, HR__EV_SNAP_DONE, 0, due);
    return 0;
}

/* The next slice of sn's snapshot in 1 to 3 ms: the entries that come meanwhile are
 * applied between two slices, as in a node's loop. */
static void next_slice(struct hr_sim *s, struct hr__simnode *sn)
{
    hr_time_t at = s->now + hr_prng_range(&s->disk_prng, 1, 3);
    hr__sim_push_node_ev(s, sn, HR__EV_SNAP_SLICE, 0, at);
}

int hr__snap_take(struct hr_sim *s, struct hr__simnode *sn, hr_index_t *index)
{
    if (sn->disk.pend.index != 0 || sn->slicing.index != 0) {
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
    if (s->hooks.snapshot(s->hooks.ctx, sn->id, false, &data) != 0) {
        hr_blob_release(data);
        hr__sim_stop(s, HR__STOP_HOOK,
                     "snapshot hook failed on node %" PRIu64 " at index %" PRIu64, sn->id,
                     applied);
        return HR__STOP_HOOK;
    }
    hr_index_t conf_index;
    const struct hr_blob *conf = hr_raft_snapshot_conf(r, applied, &conf_index);
    sn->applied_bytes = 0; /* the bytes since this snapshot count from here */
    *index = applied;
    if (data == NULL) {
        /* In slices: the configuration is fixed now, with the point, as a node's framer
         * is (a snapshot installed meanwhile may compact the log past it). */
        sn->slicing.index = applied;
        sn->slicing.term = term;
        sn->slicing.conf = hr_blob_retain((struct hr_blob *)conf);
        sn->slicing.conf_index = conf_index;
        next_slice(s, sn);
        return 0;
    }
    return write_snapshot(s, sn, applied, term, conf, conf_index, data);
}

void hr__snap_slice(struct hr_sim *s, struct hr__simnode *sn)
{
    hr_index_t index = sn->slicing.index;
    if (index == 0) {
        return;
    }
    struct hr_blob *data = NULL;
    if (s->hooks.snapshot(s->hooks.ctx, sn->id, true, &data) != 0) {
        hr_blob_release(data);
        hr__sim_stop(s, HR__STOP_HOOK,
                     "snapshot hook failed on node %" PRIu64 " (a slice of the snapshot at "
                     "index %" PRIu64 ")",
                     sn->id, index);
        return;
    }
    if (data == NULL) {
        next_slice(s, sn);
        return;
    }
    hr_term_t term = sn->slicing.term;
    hr_index_t conf_index = sn->slicing.conf_index;
    struct hr_blob *conf = sn->slicing.conf;
    sn->slicing.conf = NULL;
    hr__snap_reset(sn);
    if (index <= newest(sn)) {
        /* A snapshot installed from the leader overtook it. */
        hr_blob_release(data);
    } else {
        (void)write_snapshot(s, sn, index, term, conf, conf_index, data);
    }
    hr_blob_release(conf);
}

/* Past sn's byte threshold? Staggered as a networked node's is (lua/helios/raft.lua): the
 * i-th of the n initial voters waits (i - 1) / (4n) of it longer, so that replicas applying
 * the same bytes take their snapshots one after another rather than at the same entry. A
 * node spawned later has the plain threshold. */
static bool over_bytes(const struct hr_sim *s, const struct hr__simnode *sn)
{
    uint64_t t = s->o.snap.snapshot_threshold_bytes;
    if (t == 0) {
        return false;
    }
    uint64_t rank = !sn->spawned && sn->id <= s->n_boot ? sn->id - 1 : 0;
    return sn->applied_bytes > t + t * rank / (4 * (uint64_t)s->n_boot);
}

void hr__snap_applied(struct hr_sim *s, struct hr__simnode *sn, size_t bytes)
{
    sn->applied_bytes += bytes;
    if (over_bytes(s, sn) && !sn->snap_soon && sn->disk.pend.index == 0 &&
        sn->slicing.index == 0) {
        sn->snap_soon = true;
        hr__sim_push_node_ev(s, sn, HR__EV_SNAP_CHECK, 1, s->now);
    }
}

void hr__snap_check(struct hr_sim *s, struct hr__simnode *sn, bool by_bytes)
{
    bool due = over_bytes(s, sn);
    if (!by_bytes && s->o.snap.snapshot_threshold > 0 &&
        hr_node_applied(sn->node) >= newest(sn) + s->o.snap.snapshot_threshold) {
        due = true;
    }
    if (by_bytes) {
        sn->snap_soon = false;
    }
    if (sn->disk.pend.index == 0 && sn->slicing.index == 0 && due) {
        hr_index_t index;
        /* A failure stops the simulation (the hook's or the checker's message); a refusal
         * (nothing to snapshot) waits for the next check. */
        (void)hr__snap_take(s, sn, &index);
    }
    if (!by_bytes && s->stop_code == 0) {
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
    if (over_bytes(s, sn) && !sn->snap_soon) {
        /* Applied past the byte threshold while this one was being written. */
        sn->snap_soon = true;
        hr__sim_push_node_ev(s, sn, HR__EV_SNAP_CHECK, 1, s->now);
    }
    if (!taken) {
        return; /* a snapshot installed from the leader overtook it */
    }
    s->snap_stats.taken++;
    uint64_t trailing = s->o.snap.trailing_logs;
    hr_index_t keep_from = index + 1 > trailing ? index + 1 - trailing : 1;
    if (s->o.snap.trailing_logs_bytes > 0) {
        /* As the runtime does (csrc/node/runtime_snapshot.c): a byte cap as well. */
        keep_from = hr_raft_trailing_from(hr_node_raft(sn->node), index, trailing,
                                          s->o.snap.trailing_logs_bytes);
    }
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
