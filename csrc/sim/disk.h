/*
 * disk.h: one simulated disk. It keeps a durable image (hard state and log) and a FIFO of
 * written batches that are not yet durable. Batches become durable strictly in order; a
 * crash keeps a random prefix of the pending ones (whole batches, then maybe part of the
 * next one's entries, as a torn write) and loses the rest. Private to csrc/sim.
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

struct hr__disk_batch {
    uint64_t seq;
    bool has_hs;
    struct hr_hard_state hs;
    hr_index_t truncate;
    struct hr_entry *entries;
    size_t n;
    hr_time_t due;
};

struct hr__disk {
    struct hr_hard_state hs; /* durable */
    struct hr_entry *log;    /* durable; log[i - 1] has index i */
    bool *bad;               /* bad[i - 1]: a bit of record i flipped */
    size_t n, cap;
    struct hr__disk_batch *q; /* pending, oldest at head */
    size_t head, count, qcap;
};

/* Queue a batch (entries are copied, blobs retained) due no earlier than `due` and no
 * earlier than the batch before it. Returns 0 or HR_ENOMEM; *due_out is the time the batch
 * will be durable. */
int hr__disk_write(struct hr__disk *d, uint64_t seq, const struct hr_hard_state *hs,
                   hr_index_t truncate, const struct hr_entry *entries, size_t n, hr_time_t due,
                   hr_time_t *due_out);
/* Make the oldest pending batch durable; it must be `seq`. false if it is not. */
bool hr__disk_complete(struct hr__disk *d, uint64_t seq);
/* Lose what a crash loses, drawing from p. Afterwards nothing is pending. */
void hr__disk_crash(struct hr__disk *d, struct hr_prng *p);
/* Flip a bit in the durable record at index (1..n). 0 or HR_EINVAL. */
int hr__disk_corrupt(struct hr__disk *d, hr_index_t index);
/* What the storage does on open (csrc/storage/FORMAT.md): a bad last record is a torn tail,
 * cut off (msg says so); a bad record before it stops the open: HR_ECORRUPT, msg names the
 * index. 0 otherwise (msg empty). */
int hr__disk_recover(struct hr__disk *d, char *msg, size_t len);
void hr__disk_free(struct hr__disk *d);

#endif
