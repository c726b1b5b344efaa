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
 */
#ifndef HR_SIM_DISK_H
#define HR_SIM_DISK_H

#include "../core/prng.h"
#include "../core/raft.h"

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
};

/* The index of the last durable log record (the snapshot's when the log is empty). */
static inline hr_index_t hr__disk_last(const struct hr__disk *d)
{
    return d->off + d->n;
}

/* Queue a batch (entries are copied, blobs retained) due no earlier than `due` and no
 * earlier than the batch before it. Returns 0 or HR_ENOMEM; *due_out is the time the batch
 * will be durable. */
int hr__disk_write(struct hr__disk *d, uint64_t seq, const struct hr_hard_state *hs,
                   hr_index_t truncate, const struct hr_entry *entries, size_t n, hr_time_t due,
                   hr_time_t *due_out);
/* Queue the installation of a snapshot (data retained), in order with the writes. */
int hr__disk_install(struct hr__disk *d, uint64_t seq, hr_index_t index, hr_term_t term,
                     struct hr_blob *data, hr_time_t due, hr_time_t *due_out);
/* Make the oldest pending batch durable; it must be `seq`. false if it is not. *installed:
 * the batch installed a snapshot (now d->snap). */
bool hr__disk_complete(struct hr__disk *d, uint64_t seq, bool *installed);
/* Start writing a snapshot the node took (data retained); none may be in progress. */
void hr__disk_snap_begin(struct hr__disk *d, hr_index_t index, hr_term_t term,
                         struct hr_blob *data);
/* The snapshot being written is durable: it replaces the current one if it is newer (an
 * installed one may have overtaken it). true if it did. */
bool hr__disk_snap_done(struct hr__disk *d);
/* Drop the durable log records before keep_from. */
void hr__disk_compact(struct hr__disk *d, hr_index_t keep_from);
/* Lose what a crash loses, drawing from p (a snapshot being written is lost). Afterwards
 * nothing is pending. */
void hr__disk_crash(struct hr__disk *d, struct hr_prng *p);
/* Flip a bit in the durable record at index (off + 1 .. off + n). 0 or HR_EINVAL. */
int hr__disk_corrupt(struct hr__disk *d, hr_index_t index);
/* What the storage does on open (csrc/storage/FORMAT.md): a bad last record is a torn tail,
 * cut off (msg says so); a bad record before it stops the open: HR_ECORRUPT, msg names the
 * index. 0 otherwise (msg empty). Then a log that does not reach the snapshot, or holds
 * another entry at the snapshot's index (its newer writes were lost while the snapshot
 * made it), is dropped: the node starts from the snapshot alone. */
int hr__disk_recover(struct hr__disk *d, char *msg, size_t len);
void hr__disk_free(struct hr__disk *d);

#endif
