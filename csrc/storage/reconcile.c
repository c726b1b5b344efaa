/*
 * reconcile.c: make the log on disk agree with the newest snapshot before a node starts
 * (hr_log_reconcile in log.h; the rules are in docs/storage-format.md, "Recovery").
 *
 * Why the two can disagree. The snapshot and the log are separate files, made durable by
 * separate steps, and nothing ties those steps into one atomic write:
 *
 *  - A snapshot received from the leader is renamed into place and its directory synced
 *    before the log is emptied, in a later storage batch. A crash (or a clean shutdown) in
 *    between leaves the new snapshot beside the old log, which may end before the
 *    snapshot's index or hold another entry there.
 *  - A node snapshots its FSM at its applied index, and a follower applies committed
 *    entries before its own write of them is durable (they are committed by the others'
 *    acknowledgements). A crash right after the snapshot becomes durable leaves a snapshot
 *    past the end of the durable log.
 *
 * We let both happen and reconcile here instead of ordering the writes (holding a snapshot
 * back until the log has caught up, or writing the install and the reset as one record),
 * because the reconciliation is needed anyway for the first case and costs nothing at run
 * time. Reconciling covers every crash point: the install and the reset act as a pair, since
 * whatever a crash leaves between them, the restart turns into "snapshot plus a log that
 * continues it".
 *
 * Why discarding the log is safe. A snapshot holds only committed state: a node snapshots
 * what it applied, and a leader sends only what it committed. Let S be its index.
 *  - An entry the log holds at an index i <= S either is the committed entry at i, which
 *    the snapshot already contains, or differs from it, and then it can never be committed:
 *    at most one entry is ever committed at an index (State Machine Safety).
 *  - When the log holds another term at S, its entries after S follow an entry that differs
 *    from the committed one at S, so by Log Matching no committed log contains them and
 *    none of them can ever be committed either.
 * So the discarded entries hold nothing committed that the snapshot lacks, and nothing that
 * could become committed later: an acknowledgement the node gave for them can never count
 * towards committing them. The leader finds the shorter log by its usual consistency check
 * and sends what follows the snapshot.
 *
 * A log that starts exactly at S + 1 is kept: it only starts there after it was emptied for
 * this snapshot (the reset that follows an install), so it continues the snapshot.
 * Compaction never drops the entry at S (csrc/node/runtime_snapshot.c), so in every other
 * case, whatever trailing_logs says, the entry at S is read and its term checked here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl.h"

/* Empty the log durably (hr_log_truncate from its first index drops every segment, an
 * empty pinned one too, and syncs log/), and say why in info. */
static int discard(struct hr_log *l, char *info, size_t infolen, char *err, size_t errlen,
                   const char *why)
{
    uint64_t first = hr_log_first_index(l), last = hr_log_last_index(l);
    int rc = hr_log_truncate(l, first);
    if (rc != 0) {
        snprintf(err, errlen, "reconcile: discarding the log: %s", hr_log_errmsg(l));
        return rc;
    }
    if (first <= last) {
        hr__add_info(info, infolen, "log: %s: entries %" PRIu64 "..%" PRIu64
                     " discarded, the log continues after the snapshot", why, first, last);
    } else {
        hr__add_info(info, infolen, "log: %s: emptied, the log continues after the snapshot",
                     why);
    }
    return 0;
}

int hr_log_reconcile(struct hr_log *l, uint64_t snap_index, uint64_t snap_term, char *info,
                     size_t infolen, char *err, size_t errlen)
{
    if (snap_index == 0) {
        return 0;
    }
    uint64_t first = hr_log_first_index(l), last = hr_log_last_index(l);
    char why[160];
    if (first > last) {
        /* Empty, but it may be pinned to start elsewhere (a segment header left with no
         * record): the next append, at snap_index + 1, must be taken. */
        if (first == snap_index + 1) {
            return 0;
        }
        snprintf(why, sizeof why, "empty log pinned at index %" PRIu64 ", snapshot at %" PRIu64,
                 first, snap_index);
        return discard(l, info, infolen, err, errlen, why);
    }
    if (first > snap_index + 1) {
        /* Entries between the snapshot and the log are gone: the newest snapshot was
         * damaged and an older one is all there is. Starting would lose them silently. */
        snprintf(err, errlen, "recover: the log starts at index %" PRIu64
                 " but the snapshot ends at %" PRIu64 " (entries in between are missing: "
                 "a newer snapshot was damaged?)", first, snap_index);
        return HR_ECORRUPT;
    }
    if (last < snap_index) {
        snprintf(why, sizeof why, "it ends at index %" PRIu64 ", before the snapshot at %"
                 PRIu64, last, snap_index);
        return discard(l, info, infolen, err, errlen, why);
    }
    if (first == snap_index + 1) {
        return 0;
    }
    struct hr_log_entry *e;
    size_t n;
    int rc = hr_log_read(l, snap_index, snap_index, &e, &n);
    if (rc != 0) {
        snprintf(err, errlen, "recover: %s", hr_log_errmsg(l));
        return rc;
    }
    uint64_t term = n == 1 ? e[0].term : 0;
    free(e);
    if (term == snap_term) {
        return 0;
    }
    snprintf(why, sizeof why, "it holds term %" PRIu64 " at index %" PRIu64
             " where the snapshot has term %" PRIu64, term, snap_index, snap_term);
    return discard(l, info, infolen, err, errlen, why);
}
