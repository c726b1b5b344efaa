/* disk.c: see disk.h. */
#include "disk.h"
#include "../core/array.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct hr__disk_batch *batch_at(struct hr__disk *d, size_t i)
{
    return &d->q[(d->head + i) % d->qcap];
}

static void snap_clear(struct hr__disk_snap *sn)
{
    hr_blob_release(sn->data);
    memset(sn, 0, sizeof(*sn));
}

static void release_batch(struct hr__disk_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        hr_blob_release(b->entries[i].data);
    }
    free(b->entries);
    b->entries = NULL;
    b->n = 0;
    snap_clear(&b->install);
}

static void log_truncate(struct hr__disk *d, hr_index_t from)
{
    while (d->n > 0 && d->off + d->n >= from) {
        hr_blob_release(d->log[d->n - 1].data);
        d->n--;
    }
}

static void log_append(struct hr__disk *d, const struct hr_entry *e)
{
    /* An entry the snapshot already covers: written before a compaction that overtook the
     * write (the core had applied it before it was durable here). */
    if (e->index <= d->off) {
        return;
    }
    /* The simulator checks contiguity when the batch is written; an entry that does not
     * extend the log here would mean that check failed and the run already stopped. */
    if (e->index > d->off + d->n + 1) {
        return;
    }
    log_truncate(d, e->index);
    if (d->n == d->cap) {
        size_t cap = d->cap == 0 ? 64 : d->cap * 2;
        struct hr_entry *v = realloc(d->log, cap * sizeof(*v));
        bool *bad = v == NULL ? NULL : realloc(d->bad, cap * sizeof(*bad));
        if (bad == NULL) {
            abort(); /* the simulator cannot model a lost durable write */
        }
        d->log = v;
        d->bad = bad;
        d->cap = cap;
    }
    d->bad[d->n] = false;
    d->log[d->n] = *e;
    hr_blob_retain(e->data);
    d->n++;
}

/* The snapshot replaces the current one and the whole log goes. */
static void install(struct hr__disk *d, const struct hr__disk_snap *sn)
{
    snap_clear(&d->snap);
    d->snap = *sn;
    hr_blob_retain(d->snap.data);
    if (d->keep_after_install && d->off < sn->index && d->off + d->n > sn->index) {
        /* The test-only broken disk: drop what the snapshot covers, keep the rest. */
        size_t drop = (size_t)(sn->index - d->off);
        for (size_t i = 0; i < drop; i++) {
            hr_blob_release(d->log[i].data);
        }
        memmove(d->log, d->log + drop, (d->n - drop) * sizeof(*d->log));
        memmove(d->bad, d->bad + drop, (d->n - drop) * sizeof(*d->bad));
        d->n -= drop;
        d->off = sn->index;
        return;
    }
    d->off = 0;
    log_truncate(d, 1);
    d->off = sn->index;
}

/* Apply the first `entries` entries of b (and its hard state if `hs`) to the image. */
static void apply_batch(struct hr__disk *d, const struct hr__disk_batch *b, size_t entries, bool hs)
{
    if (b->install.index != 0) {
        install(d, &b->install);
        return;
    }
    if (hs && b->has_hs) {
        d->hs = b->hs;
    }
    if (b->truncate != 0) {
        log_truncate(d, b->truncate);
    }
    for (size_t i = 0; i < entries && i < b->n; i++) {
        log_append(d, &b->entries[i]);
    }
}

/* Make room for one more pending batch. */
static int reserve(struct hr__disk *d)
{
    struct hr__disk_batch *v =
        hr_ring_reserve(d->q, &d->head, d->count, &d->qcap, sizeof(*v), 8);
    if (v == NULL) {
        return HR_ENOMEM;
    }
    d->q = v;
    return 0;
}

/* Queue b, due no earlier than the batch before it. */
static void enqueue(struct hr__disk *d, struct hr__disk_batch *b, hr_time_t due,
                    hr_time_t *due_out)
{
    /* In-order durability: a batch is never durable before the one written ahead of it. */
    if (d->count > 0 && batch_at(d, d->count - 1)->due > due) {
        due = batch_at(d, d->count - 1)->due;
    }
    b->due = due;
    *batch_at(d, d->count) = *b;
    d->count++;
    *due_out = due;
}

int hr__disk_write(struct hr__disk *d, uint64_t seq, const struct hr_hard_state *hs,
                   hr_index_t truncate, const struct hr_entry *entries, size_t n, hr_time_t due,
                   hr_time_t *due_out)
{
    if (reserve(d) != 0) {
        return HR_ENOMEM;
    }
    struct hr__disk_batch b;
    memset(&b, 0, sizeof(b));
    if (n > 0) {
        b.entries = malloc(n * sizeof(*b.entries));
        if (b.entries == NULL) {
            return HR_ENOMEM;
        }
        memcpy(b.entries, entries, n * sizeof(*b.entries));
        for (size_t i = 0; i < n; i++) {
            hr_blob_retain(b.entries[i].data);
        }
        b.n = n;
    }
    b.seq = seq;
    if (hs != NULL) {
        b.has_hs = true;
        b.hs = *hs;
    }
    b.truncate = truncate;
    enqueue(d, &b, due, due_out);
    return 0;
}

int hr__disk_install(struct hr__disk *d, uint64_t seq, hr_index_t index, hr_term_t term,
                     struct hr_blob *data, hr_time_t due, hr_time_t *due_out)
{
    if (index == 0) {
        return HR_EINVAL;
    }
    if (reserve(d) != 0) {
        return HR_ENOMEM;
    }
    struct hr__disk_batch b;
    memset(&b, 0, sizeof(b));
    b.seq = seq;
    b.install.index = index;
    b.install.term = term;
    b.install.data = hr_blob_retain(data);
    enqueue(d, &b, due, due_out);
    return 0;
}

int hr__disk_complete(struct hr__disk *d, uint64_t seq, bool *installed)
{
    *installed = false;
    if (d->count == 0 || batch_at(d, 0)->seq != seq) {
        return HR__DISK_ORDER;
    }
    struct hr__disk_batch *b = batch_at(d, 0);
    int rc = 0;
    if (d->real != NULL) {
        rc = hr__disk_real_apply(d, b, true);
        if (rc == 0 && b->install.index != 0) {
            snap_clear(&d->snap);
            d->snap = b->install;
            hr_blob_retain(d->snap.data);
        }
    } else {
        apply_batch(d, b, b->n, true);
    }
    *installed = rc == 0 && b->install.index != 0;
    release_batch(b);
    d->head = (d->head + 1) % d->qcap;
    d->count--;
    return rc;
}

int hr__disk_snap_begin(struct hr__disk *d, hr_index_t index, hr_term_t term,
                        struct hr_blob *data)
{
    snap_clear(&d->pend);
    d->pend.index = index;
    d->pend.term = term;
    d->pend.data = hr_blob_retain(data);
    if (d->real != NULL) {
        int rc = hr__disk_real_snap_begin(d);
        if (rc != 0) {
            snap_clear(&d->pend);
        }
        return rc;
    }
    return 0;
}

int hr__disk_snap_done(struct hr__disk *d, bool *taken)
{
    *taken = false;
    if (d->pend.index == 0) {
        return 0;
    }
    if (d->real != NULL) {
        int rc = hr__disk_real_snap_done(d, taken);
        if (rc != 0 || !*taken) {
            snap_clear(&d->pend);
            return rc;
        }
    } else if (d->pend.index <= d->snap.index) {
        snap_clear(&d->pend);
        return 0;
    }
    /* The new file is renamed over the old one: the previous snapshot goes only now. */
    snap_clear(&d->snap);
    d->snap = d->pend;
    memset(&d->pend, 0, sizeof(d->pend));
    *taken = true;
    return 0;
}

int hr__disk_compact(struct hr__disk *d, hr_index_t keep_from)
{
    if (d->real != NULL) {
        return hr__disk_real_compact(d, keep_from);
    }
    if (keep_from <= d->off + 1) {
        return 0;
    }
    size_t drop = (size_t)(keep_from - 1 - d->off);
    if (drop > d->n) {
        drop = d->n;
    }
    for (size_t i = 0; i < drop; i++) {
        hr_blob_release(d->log[i].data);
    }
    memmove(d->log, d->log + drop, (d->n - drop) * sizeof(*d->log));
    memmove(d->bad, d->bad + drop, (d->n - drop) * sizeof(*d->bad));
    d->n -= drop;
    d->off += drop;
    if (d->n == 0) {
        /* Writes still in flight below keep_from are covered by the snapshot. */
        d->off = keep_from - 1;
    }
    return 0;
}

/* Real storage: the first `keep` pending batches were in flight when the power went: they
 * run, and the crash point lands among their operations (or right after them), so the
 * file system's flags decide what of them survives. */
static void crash_real(struct hr__disk *d, struct hr_prng *p)
{
    size_t keep = (size_t)hr_prng_range(p, 0, d->count);
    hr__disk_real_crash_begin(d, p, keep);
    for (size_t i = 0; i < d->count; i++) {
        struct hr__disk_batch *b = batch_at(d, i);
        if (i < keep && hr__disk_real_apply(d, b, false) != 0) {
            keep = i;
        }
        release_batch(b);
    }
    hr__disk_real_crash_end(d);
    d->head = 0;
    d->count = 0;
}

void hr__disk_crash(struct hr__disk *d, struct hr_prng *p)
{
    snap_clear(&d->pend);
    if (d->real != NULL) {
        crash_real(d, p);
        return;
    }
    size_t keep = (size_t)hr_prng_range(p, 0, d->count);
    for (size_t i = 0; i < d->count; i++) {
        struct hr__disk_batch *b = batch_at(d, i);
        if (i < keep) {
            apply_batch(d, b, b->n, true);
        } else if (i == keep && b->install.index == 0) {
            /* The torn write: part of the entries made it. The metadata file is replaced
             * atomically, so the hard state is all or nothing, and independent of the
             * entries (the core starts from entries newer than the stored term). */
            size_t part = (size_t)hr_prng_range(p, 0, b->n);
            bool hs = (hr_prng_next(p) & 1) != 0;
            if (part > 0 || hs) {
                apply_batch(d, b, part, hs);
            }
        }
        release_batch(b);
    }
    d->head = 0;
    d->count = 0;
}

int hr__disk_corrupt(struct hr__disk *d, hr_index_t index)
{
    if (d->real != NULL) {
        return hr__disk_real_corrupt(d, index);
    }
    if (index <= d->off || index > d->off + d->n) {
        return HR_EINVAL;
    }
    d->bad[index - d->off - 1] = true;
    return 0;
}

bool hr__disk_records(struct hr__disk *d, hr_index_t *lo, hr_index_t *hi)
{
    if (d->real != NULL) {
        return hr__disk_real_records(d, lo, hi);
    }
    *lo = d->off + 1;
    *hi = d->off + d->n;
    return d->n > 0;
}

const struct hr_entry *hr__disk_entries(const struct hr__disk *d, size_t *n)
{
    *n = d->n;
    return d->log;
}

const char *hr__disk_errmsg(const struct hr__disk *d)
{
    return d->real != NULL ? hr__disk_real_errmsg(d) : "";
}

void hr__disk_clear_log(struct hr__disk *d)
{
    d->off = 0;
    log_truncate(d, 1);
}

int hr__disk_recover(struct hr__disk *d, char *msg, size_t len)
{
    msg[0] = '\0';
    if (d->real != NULL) {
        return hr__disk_real_recover(d, msg, len);
    }
    for (size_t i = 0; i < d->n; i++) {
        if (!d->bad[i]) {
            continue;
        }
        hr_index_t index = d->off + i + 1;
        if (i + 1 < d->n) {
            snprintf(msg, len,
                     "log: record of index %" PRIu64 ": bad checksum (not the last record)",
                     index);
            return HR_ECORRUPT;
        }
        snprintf(msg, len, "log: record of index %" PRIu64 ": bad checksum at the tail: cut off",
                 index);
        log_truncate(d, index);
    }
    hr_index_t si = d->snap.index;
    if (si > 0 && (d->off > si || d->off + d->n < si ||
                   (d->off < si && d->log[si - d->off - 1].term != d->snap.term))) {
        log_truncate(d, 1);
        d->off = si;
    }
    return 0;
}

void hr__disk_free(struct hr__disk *d)
{
    if (d->real != NULL) {
        hr__disk_real_free(d);
    }
    for (size_t i = 0; i < d->count; i++) {
        release_batch(batch_at(d, i));
    }
    free(d->q);
    snap_clear(&d->snap);
    snap_clear(&d->pend);
    d->off = 0;
    log_truncate(d, 1);
    free(d->log);
    free(d->bad);
    memset(d, 0, sizeof(*d));
}
