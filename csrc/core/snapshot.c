/*
 * snapshot.c: log compaction and InstallSnapshot (Raft §7, thesis chapter 5).
 *
 * The core never holds snapshot bytes of its own. The node layer takes snapshots of the FSM
 * and tells the core (hr_raft_snapshot_taken), which then forgets the entries they cover.
 * A follower that needs a forgotten entry is offered the snapshot: the core emits a SNAPSHOT
 * message with no bytes and the node layer streams what it stored. On the follower the node
 * layer assembles the chunks and hands the core the final message only once the snapshot is
 * durable on its side; every chunk before it passes through the core for the usual term
 * and leader checks, which also keep the follower's election timer quiet during a long
 * transfer.
 */
#include "raft_impl.h"

int hr_raft_snapshot_taken(struct hr_raft *r, hr_index_t index, hr_index_t keep_from)
{
    hr_term_t term = hr__log_term(&r->log, index);
    if (index == 0 || index > r->handed || index < r->snap_index || term == 0) {
        return HR_EINVAL;
    }
    /* The configuration in effect at index goes with the snapshot (hr_raft_snapshot_conf)
     * and is what the log's config entries after it override. */
    int rv = hr__conf_snapshot(r, index, NULL, 0, false);
    if (rv != 0) {
        return rv;
    }
    r->snap_index = index;
    r->snap_term = term;
    /* Never forget what storage has not been handed yet, nor anything past the snapshot. */
    if (keep_from > index + 1) {
        keep_from = index + 1;
    }
    if (keep_from > r->unstable) {
        keep_from = r->unstable;
    }
    if (keep_from > r->log.first) {
        hr__log_compact(&r->log, keep_from);
    }
    return 0;
}

hr_index_t hr_raft_trailing_from(const struct hr_raft *r, hr_index_t index, uint64_t max_entries,
                                 uint64_t max_bytes)
{
    return hr__log_trailing_from(&r->log, index, max_entries, max_bytes);
}

uint64_t hr_raft_log_bytes(const struct hr_raft *r)
{
    return r->log.bytes;
}

hr_index_t hr_raft_snapshot_index(const struct hr_raft *r)
{
    return r->snap_index;
}

hr_term_t hr_raft_snapshot_term(const struct hr_raft *r)
{
    return r->snap_term;
}

bool hr__maybe_offer_snapshot(struct hr_raft *r, struct hr__progress *pr)
{
    /* Entries go out from pr->next only if we still hold it and know the term before it. */
    hr_index_t prev = pr->next - 1;
    if (pr->next >= r->log.first && (prev == 0 || hr__log_term(&r->log, prev) != 0)) {
        return false;
    }
    if (pr->snapshot != 0 && r->now < pr->snapshot_sent + r->cfg.election_timeout_ms) {
        return true; /* offered recently: the node layer is streaming it */
    }
    /* §7: "the leader uses a new RPC called InstallSnapshot to send snapshots to followers
     * that are too far behind". The newest snapshot: it covers every compacted entry. */
    struct hr_msg m = {.type = HR_MSG_SNAPSHOT,
                       .to = pr->id,
                       .term = r->term,
                       .snap_index = r->snap_index,
                       .snap_term = r->snap_term,
                       .conf = hr_blob_retain(r->base.blob),
                       .conf_index = r->base.index};
    if (hr__send(r, &m, false) == 0) {
        pr->snapshot = r->snap_index;
        pr->snapshot_sent = r->now;
    }
    return true;
}

int hr__handle_snapshot(struct hr_raft *r, const struct hr_msg *m)
{
    if (!m->done) {
        return 0; /* a chunk: the node layer keeps the bytes; the checks were all we do */
    }
    struct hr_msg resp = {.type = HR_MSG_APPEND_RESP, .to = m->from, .term = r->term};
    if (m->snap_index <= r->commit) {
        /* We already have all of it (a duplicate, or the log caught up meanwhile). */
        resp.index = r->commit;
    } else if (hr__log_term(&r->log, m->snap_index) == m->snap_term) {
        /* Figure 13, step 6: our log holds the snapshot's last entry: keep the entries
         * after it. Everything up to it is committed; the FSM gets it through apply. */
        r->commit = m->snap_index;
        resp.index = m->snap_index;
    } else {
        /* Figure 13, step 7: discard the entire log and take the snapshot's state. */
        hr__log_reset(&r->log, m->snap_index, m->snap_term);
        int rv = hr__conf_snapshot(r, m->snap_index, m->conf, m->conf_index, true);
        if (rv != 0) {
            return rv;
        }
        r->snap_index = m->snap_index;
        r->snap_term = m->snap_term;
        r->commit = m->snap_index;
        r->handed = m->snap_index;
        r->persisted = m->snap_index;
        r->unstable = m->snap_index + 1;
        r->truncate = 0; /* the install drops the whole log on disk */
        r->install = true;
        hr_blob_release(r->install_data);
        r->install_data = hr_blob_retain(m->snap_data);
        resp.index = m->snap_index;
    }
    resp.last_index = hr__log_last(&r->log);
    /* After persist: the leader counts us as holding the snapshot only once we do. */
    return hr__send(r, &resp, true);
}
