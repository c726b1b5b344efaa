/*
 * disk.h: one simulated disk. It keeps a durable image (hard state, snapshot and log) and a
 * FIFO of written batches that are not yet durable. Batches become durable strictly in
 * order; a crash keeps a random prefix of the pending ones (whole batches, then maybe part
 * of the next one's entries, as a torn write) and loses the rest. A batch may instead
 * install a snapshot received from the leader (all or nothing: the real storage renames a
 * complete file): the snapshot replaces the old one and the whole log goes, the log then
 * continuing after the snapshot's index.
 *
 * A snapshot the node takes itself is written beside the log, one at a time: it becomes
 * durable when its own latency passes (hr__disk_snap_done), a crash before that loses it,
 * and the previous snapshot stays until then. The log before a durable snapshot is dropped
 * by hr__disk_compact (the entries the node keeps for followers a little behind stay).
 * Private to csrc/sim.
 *
 * The disk holds its own blob references on every entry it keeps. A flipped bit is modelled
 * by a mark on the durable record (the payload blob is shared with other nodes' disks, so
 * its bytes stay as they are): recovery treats a marked record as the real storage treats a
 * bad checksum.
 *
 * Two implementations sit behind this API, chosen per simulation (hr_sim_options.storage):
 *  - the model (disk.c): an image of hard state, snapshot and log in memory. It repairs
 *    its own log at recovery and installs a snapshot and resets the log in one step, so it
 *    cannot find bugs in csrc/storage; it stays because it is fast (build/sim_bench, the
 *    seed sweeps of the core's specs), because its faults are exact (hr__disk_corrupt
 *    marks a record, so "corrupt before the tail refuses to open" holds regardless of
 *    sync marks) and because unsafe_install_keeps_log breaks it on purpose;
 *  - real storage (disk_real.c): the production code of csrc/storage (segments, meta,
 *    snapshot files, hr_log_reconcile) over one crashing in-memory file system per node
 *    (simfs.h). Batches queue here as in the model; at completion they run the real
 *    operations, and crashes may land inside them (crash points).
 * In real mode d->hs, d->snap and d->pend mirror what the files hold; d->log / d->n / d->off
 * hold only what the last recovery read for the node's start (hr__disk_entries). Callers
 * use hr__disk_last, hr__disk_records and hr__disk_entries rather than those fields.
 */
#ifndef HR_SIM_DISK_H
#define HR_SIM_DISK_H

#include "../core/prng.h"
#include "../core/raft.h"

struct hr__disk_real; /* disk_real.c */

/* Real storage's settings (see struct hr_sim_options). */
struct hr__disk_real_options {
    uint64_t seed;          /* the simulated file system's PRNG */
    unsigned flags;         /* HR_SIMFS_* crash flags (simfs.h) */
    double crash_point;     /* probability that a storage step has a crash point armed */
    uint64_t segment_size;  /* hr_log_options.segment_size */
    uint64_t trailing_logs; /* entries before the snapshot read at recovery (runtime.c) */
    uint64_t trailing_logs_bytes; /* of those, at most this many bytes kept (0: no cap) */
    const hr_id_t *voters;  /* snapshot file headers; borrowed for the disk's life */
    size_t n_voters;
};

/* hr__disk_complete / snap_begin / snap_done / compact results besides 0 and HR_E*. */
enum {
    HR__DISK_ORDER = 1,   /* complete: the batch is not the oldest pending one */
    HR__DISK_CRASHED = 2, /* real storage: a crash point hit inside the step; crash the node */
};

/* A snapshot: the last entry it covers and its bytes (a reference held by the disk). */
struct hr__disk_snap {
    hr_index_t index; /* 0: none */
    hr_term_t term;
    struct hr_blob *data;
};

struct hr__disk_batch {
    uint64_t seq;
    bool has_hs;
    struct hr_hard_state hs;
    hr_index_t truncate;
    struct hr_entry *entries;
    size_t n;
    struct hr__disk_snap install; /* index != 0: this batch installs a snapshot */
    hr_time_t due;
};

struct hr__disk {
    struct hr_hard_state hs; /* durable */
    struct hr_entry *log;    /* durable; log[i] has index off + i + 1 */
    bool *bad;               /* bad[i]: a bit of log[i]'s record flipped */
    size_t n, cap;
    hr_index_t off; /* entries before the log (compacted, or covered by an installed
                     * snapshot) */
    struct hr__disk_snap snap; /* durable */
    struct hr__disk_snap pend; /* a snapshot being written (index 0: none) */
    struct hr__disk_batch *q;  /* pending, oldest at head */
    size_t head, count, qcap;
    bool keep_after_install; /* hr_sim_options.unsafe_install_keeps_log */
    struct hr__disk_real *real; /* NULL: the model */
};

/* Switch d (zeroed, nothing written yet) to real storage. 0 or HR_ENOMEM. */
int hr__disk_real_init(struct hr__disk *d, const struct hr__disk_real_options *o);
hr_index_t hr__disk_real_last(const struct hr__disk *d);
void hr__disk_real_set_crash(struct hr__disk *d, double crash_point);
/* Add this disk's counters to out (struct hr_sim_storage_stats's fields, in order). */
void hr__disk_real_stats(const struct hr__disk *d, uint64_t out[7]);

/* The index of the last durable log record (the snapshot's when the log is empty). */
static inline hr_index_t hr__disk_last(const struct hr__disk *d)
{
    return d->real != NULL ? hr__disk_real_last(d) : d->off + d->n;
}
/* The range of indexes of the durable log records (what hr__disk_corrupt may hit): false
 * if there is none. */
bool hr__disk_records(struct hr__disk *d, hr_index_t *lo, hr_index_t *hi);
/* The entries the last hr__disk_recover read for the node's start (owned by d). */
const struct hr_entry *hr__disk_entries(const struct hr__disk *d, size_t *n);
/* The message of the last failure of a step (real storage). */
const char *hr__disk_errmsg(const struct hr__disk *d);

/* Queue a batch (entries are copied, blobs retained) due no earlier than `due` and no
 * earlier than the batch before it. Returns 0 or HR_ENOMEM; *due_out is the time the batch
 * will be durable. */
int hr__disk_write(struct hr__disk *d, uint64_t seq, const struct hr_hard_state *hs,
                   hr_index_t truncate, const struct hr_entry *entries, size_t n, hr_time_t due,
                   hr_time_t *due_out);
/* Queue the installation of a snapshot (data retained), in order with the writes. */
int hr__disk_install(struct hr__disk *d, uint64_t seq, hr_index_t index, hr_term_t term,
                     struct hr_blob *data, hr_time_t due, hr_time_t *due_out);
/* Make the oldest pending batch durable; it must be `seq` (HR__DISK_ORDER if it is not).
 * *installed: the batch installed a snapshot (now d->snap). 0, HR__DISK_CRASHED (the batch
 * is gone, not durable) or a negative HR_E* (hr__disk_errmsg). */
int hr__disk_complete(struct hr__disk *d, uint64_t seq, bool *installed);
/* Start writing a snapshot the node took (data retained); none may be in progress. 0,
 * HR__DISK_CRASHED (nothing in progress) or a negative HR_E*. */
int hr__disk_snap_begin(struct hr__disk *d, hr_index_t index, hr_term_t term,
                        struct hr_blob *data);
/* The snapshot being written is durable: it replaces the current one if it is newer (an
 * installed one may have overtaken it). *taken: true if it did. 0, HR__DISK_CRASHED or a
 * negative HR_E*. */
int hr__disk_snap_done(struct hr__disk *d, bool *taken);
/* Drop the durable log records before keep_from (real storage: whole segments, never the
 * snapshot's own entry, as csrc/node/runtime_snapshot.c; then older snapshot files go).
 * 0, HR__DISK_CRASHED or a negative HR_E*. */
int hr__disk_compact(struct hr__disk *d, hr_index_t keep_from);
/* Lose what a crash loses, drawing from p (a snapshot being written is lost). Afterwards
 * nothing is pending. */
void hr__disk_crash(struct hr__disk *d, struct hr_prng *p);
/* Flip a bit in the durable record at index (within hr__disk_records). 0 or HR_EINVAL. */
int hr__disk_corrupt(struct hr__disk *d, hr_index_t index);
/* What the storage does on open (docs/storage-format.md): a bad last record is a torn tail,
 * cut off (msg says so); a bad record before it stops the open: HR_ECORRUPT, msg names the
 * index. 0 otherwise (msg empty). Then a log that does not reach the snapshot, or holds
 * another entry at the snapshot's index (its newer writes were lost while the snapshot
 * made it), is dropped: the node starts from the snapshot alone. Real storage: what
 * hr_runtime_start does (hr_log_open, hr_snap_find, hr_log_reconcile, the entries from
 * max(first, S + 1 - trailing_logs)); msg holds its info, or the error. */
int hr__disk_recover(struct hr__disk *d, char *msg, size_t len);
void hr__disk_free(struct hr__disk *d);

/* disk_real.c's side of the functions above, called by disk.c only when d->real is set.
 * apply: run batch b's operations (arm: maybe arm a crash point first). crash_begin: the
 * crash happens during the next operations (keep > 0: batches about to be applied raw);
 * crash_end: crash and reboot the file system, forget the open log and writer. */
int hr__disk_real_apply(struct hr__disk *d, const struct hr__disk_batch *b, bool arm);
void hr__disk_real_crash_begin(struct hr__disk *d, struct hr_prng *p, size_t keep);
void hr__disk_real_crash_end(struct hr__disk *d);
int hr__disk_real_snap_begin(struct hr__disk *d);
int hr__disk_real_snap_done(struct hr__disk *d, bool *taken);
int hr__disk_real_compact(struct hr__disk *d, hr_index_t keep_from);
int hr__disk_real_corrupt(struct hr__disk *d, hr_index_t index);
bool hr__disk_real_records(struct hr__disk *d, hr_index_t *lo, hr_index_t *hi);
int hr__disk_real_recover(struct hr__disk *d, char *msg, size_t len);
const char *hr__disk_real_errmsg(const struct hr__disk *d);
void hr__disk_real_free(struct hr__disk *d);
/* Shared with disk.c: drop the entries of the durable image (model) or of the last
 * recovery (real), and the snapshot references. */
void hr__disk_clear_log(struct hr__disk *d);

#endif
