/*
 * log.c: struct hr_log, the segment log of one data directory (log.h, docs/storage-format.md).
 *
 * State kept in memory per segment is what finding a record needs: first index, count,
 * the offset of every 32nd record (sparse) and the sizes. Records themselves are read on
 * demand through the cache.
 *
 * Write path and failure. Appends go to a buffer that belongs to the last segment and
 * starts at its file_end. After every successful sync (and truncate/compact) a checkpoint
 * records the shape of the log; a failed write, sync or segment roll-over puts the files
 * back to that checkpoint (unlink segments created since, ftruncate the last one) and
 * the log refuses writes until hr_log_retry(). So a failure never leaves a half-written
 * batch that a later successful sync would make durable behind the caller's back.
 *
 * Truncation (conflict repair, and the reset after an installed snapshot) writes a durable
 * intent, log/TRUNCATE, before it cuts anything, and removes it durably before it returns;
 * open completes an intent it finds before scanning (intent.c says why a cut needs it).
 *
 * Sync marks (docs/storage-format.md, "Recovery rules"). Each sync writes one contiguous run after
 * the checkpoint, and the next run starts only after this one's fdatasync returned (or after a
 * rollback to the checkpoint). The first record of a run in a version 2 segment carries
 * HR__REC_SYNC_MARK, so a marked record proves that the bytes before it were durable. For that to
 * hold from the first sync on, a new segment's header is synced before any record is written into
 * it (write_header), and open syncs what it found in the last segment before appending after it.
 */
#define _GNU_SOURCE /* strdup under -std=c11 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl.h"
#include "../core/array.h"

struct seg {
    uint64_t first;
    uint64_t count;
    uint64_t last_term;
    int fd;
    uint32_t version; /* of the header: only version 2 records carry sync marks */
    bool sealed;
    off_t size;      /* end of the last record (footer excluded), buffered bytes included */
    off_t file_end;  /* bytes in the file (footer and trailer included if sealed) */
    off_t alloc_end; /* the file's size: file_end, then the zeros written ahead of it
                      * (preallocation: see prealloc()); never less than file_end */
    uint64_t *sparse;
    size_t n_sparse, cap_sparse;
};

struct checkpoint {
    size_t n;
    uint64_t count, last_term, next_index, log_last_term;
    off_t size, file_end;
    size_t n_sparse;
    bool sealed;
};

struct hr_log {
    struct hr_fs *fs;      /* every file operation goes through it (fs.h) */
    char *dir;
    char *logdir;
    int lock_fd;
    int dir_fd;
    struct seg *segs;
    size_t n, cap;
    uint64_t next_index;   /* last index + 1 (or where an empty log starts) */
    uint64_t last_term;
    unsigned char *wbuf;
    size_t wlen, wcap;
    bool need_datasync, dir_dirty;
    struct checkpoint ck;
    int failed;            /* refuse writes until retry */
    int broken;            /* could not roll back: refuse until reopened */
    struct hr__intent intent; /* a truncation that failed after its intent was renamed */
    bool intent_pending;   /* into place: hr_log_retry completes it (intent.c) */
    struct hr__meta meta;
    struct hr_log_options opt;
    struct hr__cache *cache;
    struct hr_log_stats stats;
    char err[768];
};

#define SET_ERR(l, ...) snprintf((l)->err, sizeof (l)->err, __VA_ARGS__)

void hr_log_options_default(struct hr_log_options *o)
{
    o->segment_size = 8u << 20;
    o->cache_bytes = 4u << 20;
    o->prealloc_bytes = 1u << 20;
    o->fs = NULL;
}

static struct seg *last_seg(struct hr_log *l)
{
    return l->n > 0 ? &l->segs[l->n - 1] : NULL;
}

static void seg_path(const struct hr_log *l, uint64_t first, char *buf, size_t len)
{
    char name[32];
    hr__seg_name(name, sizeof name, first);
    snprintf(buf, len, "%s/%s", l->logdir, name);
}

/* "log/00000000000000000001": how messages name a segment. */
static void seg_label(uint64_t first, char *buf, size_t len)
{
    char name[32];
    hr__seg_name(name, sizeof name, first);
    snprintf(buf, len, "log/%s", name);
}

static int sparse_push(struct seg *s, uint64_t off)
{
    if (s->n_sparse == s->cap_sparse) {
        size_t nc = s->cap_sparse ? s->cap_sparse * 2 : 64;
        uint64_t *p = realloc(s->sparse, nc * sizeof *p);
        if (p == NULL) {
            return HR_ENOMEM;
        }
        s->sparse = p;
        s->cap_sparse = nc;
    }
    s->sparse[s->n_sparse++] = off;
    return 0;
}

static int segs_reserve(struct hr_log *l)
{
    struct seg *p = hr_array_grow(l->segs, &l->cap, l->n + 1, sizeof *p, 16);
    if (p == NULL) {
        return HR_ENOMEM;
    }
    l->segs = p;
    return 0;
}

static void seg_close(struct hr_log *l, struct seg *s)
{
    if (s->fd >= 0) {
        hr_fs_close(l->fs, s->fd);
    }
    free(s->sparse);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

static void checkpoint(struct hr_log *l)
{
    struct seg *s = last_seg(l);
    memset(&l->ck, 0, sizeof l->ck);
    l->ck.n = l->n;
    l->ck.next_index = l->next_index;
    l->ck.log_last_term = l->last_term;
    if (s != NULL) {
        l->ck.count = s->count;
        l->ck.last_term = s->last_term;
        l->ck.size = s->size;
        l->ck.file_end = s->file_end;
        l->ck.n_sparse = s->n_sparse;
        l->ck.sealed = s->sealed;
    }
}

/* Remove the newest segment's file (and forget it). 0 or a negative errno. */
static int drop_last_file(struct hr_log *l)
{
    char path[4200];
    struct seg *s = last_seg(l);
    seg_path(l, s->first, path, sizeof path);
    hr__cache_drop(l->cache, s->first);
    seg_close(l, s);
    l->n--;
    l->dir_dirty = true;
    int r = hr_fs_unlink(l->fs, path);
    return r == -ENOENT ? 0 : r;
}

/* A write-path failure: put the files back to the checkpoint, refuse writes. The message
 * of the failure is already in l->err. */
static int fail(struct hr_log *l, int rc)
{
    int brc = 0;
    l->wlen = 0;
    while (l->n > l->ck.n) {
        if (drop_last_file(l) != 0) {
            brc = rc;
        }
    }
    /* The removals durable before the last segment is cut: when the rollback undoes a
     * roll-over, that cut removes the synced footer of a segment that is the last one
     * only once the new segment's name is gone (a compaction's fsync of log/ may have
     * made that name durable), and a sealed-looking segment with a damaged footer that
     * is not the last fails the open. */
    if (l->dir_dirty) {
        if (hr_fs_sync(l->fs, l->dir_fd, false) < 0) {
            brc = rc;
        }
        l->dir_dirty = false;
    }
    struct seg *s = last_seg(l);
    if (s != NULL && l->n == l->ck.n) {
        if (s->file_end != l->ck.file_end) {
            if (hr_fs_truncate(l->fs, s->fd, (uint64_t)l->ck.file_end) < 0 ||
                hr_fs_sync(l->fs, s->fd, true) < 0) {
                brc = rc;
            }
        }
        s->count = l->ck.count;
        s->last_term = l->ck.last_term;
        s->size = l->ck.size;
        if (s->file_end != l->ck.file_end) {
            s->alloc_end = l->ck.file_end; /* cut above, zeros ahead included */
        }
        s->file_end = l->ck.file_end;
        s->n_sparse = l->ck.n_sparse;
        s->sealed = l->ck.sealed;
    }
    if (l->dir_dirty && hr_fs_sync(l->fs, l->dir_fd, false) < 0) {
        brc = rc;
    }
    l->dir_dirty = false;
    l->need_datasync = false;
    l->next_index = l->ck.next_index;
    l->last_term = l->ck.log_last_term;
    hr__cache_drop(l->cache, 0);
    l->failed = rc;
    if (brc != 0) {
        l->broken = brc;
        size_t used = strlen(l->err);
        snprintf(l->err + used, sizeof l->err - used,
                 " (and undoing the partial write failed: reopen the data dir)");
    }
    return rc;
}

static int refuse(struct hr_log *l)
{
    if (l->broken) {
        return l->broken;
    }
    if (l->failed) {
        /* Keep the original message: it says what went wrong. */
        return l->failed;
    }
    return 0;
}

static int sync_fd(struct hr_log *l, int fd, bool data, const char *what)
{
    int r = hr_fs_sync(l->fs, fd, data);
    if (r < 0) {
        int e = -r;
        SET_ERR(l, "%s: %s: %s", what, data ? "fdatasync" : "fsync", strerror(e));
        return fail(l, hr__errno_code(e));
    }
    return 0;
}

/* fdatasync segment s: sync_fd with the segment's name, which is formatted only for a
 * failure's message (this runs once per group-commit round). */
static int sync_seg(struct hr_log *l, const struct seg *s)
{
    int r = hr_fs_sync(l->fs, s->fd, true);
    if (r < 0) {
        int e = -r;
        char lab[64];
        seg_label(s->first, lab, sizeof lab);
        SET_ERR(l, "%s: fdatasync: %s", lab, strerror(e));
        return fail(l, hr__errno_code(e));
    }
    return 0;
}

/* Write and sync the header of a segment created by roll(). It is made durable before any
 * record is written after it: the first record's sync mark then vouches for every byte
 * before it, and open can call a bad header with records after it corruption
 * (docs/storage-format.md, "Recovery rules"). One more fdatasync per segment. */
static int write_header(struct hr_log *l, struct seg *s)
{
    unsigned char h[HR__SEG_HEADER_SIZE];
    char lab[64];
    hr__seg_encode_header(h, s->first);
    seg_label(s->first, lab, sizeof lab);
    int r = hr_fs_pwrite(l->fs, s->fd, h, sizeof h, 0);
    if (r < 0) {
        int e = -r;
        SET_ERR(l, "%s: write header: %s", lab, strerror(e));
        return fail(l, hr__errno_code(e));
    }
    s->file_end = HR__SEG_HEADER_SIZE;
    if (s->alloc_end < s->file_end) {
        s->alloc_end = s->file_end;
    }
    l->stats.bytes += HR__SEG_HEADER_SIZE;
    int rc = sync_fd(l, s->fd, true, lab);
    if (rc == 0) {
        l->stats.syncs++;
    }
    return rc;
}

/*
 * Preallocation. A write past the end of a file makes the fdatasync that follows write the
 * inode (the new size) and the block allocation too, not only the data: on ext4 that is
 * more I/O to wait for, and on this project's benchmark machines it cost about a third of
 * the CPU time and of the latency of each group-commit round (docs/storage-format.md,
 * "Preallocation"). So the open segment is extended with zeros ahead of the records,
 * prealloc_bytes at a time: the sync after an extension pays for the metadata once, and
 * the syncs of the records later written over those zeros only write data.
 *
 * Zeros after the last record are not damage: open keeps them as room to write
 * (hr__scan.zero_tail) and close gives them back. The bytes between file_end and
 * alloc_end are always zeros written here: every path that forgets records cuts the file
 * (fail(), a truncation, open), so no stale record can sit in the preallocated space and
 * look like one written after a sync mark.
 *
 * A failure here is not a failure of the write: the records are written, and the next
 * flush tries again (alloc_end stays where it was, which only means zeros written twice).
 */
static void prealloc(struct hr_log *l, struct seg *s)
{
    static const unsigned char zeros[65536];
    uint64_t chunk = l->opt.prealloc_bytes;
    if (chunk == 0 || s->sealed || s->file_end < s->alloc_end) {
        return;
    }
    uint64_t from = (uint64_t)s->file_end;
    uint64_t to = (from / chunk + 1) * chunk;
    /* A segment rolls over near segment_size: no zeros past where its records can end. */
    if (to > l->opt.segment_size) {
        to = l->opt.segment_size;
    }
    while (from < to) {
        size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
        if (hr_fs_pwrite(l->fs, s->fd, zeros, n, from) < 0) {
            return;
        }
        from += n;
        s->alloc_end = (off_t)from;
    }
}

static int flush(struct hr_log *l)
{
    struct seg *s = last_seg(l);
    if (l->wlen == 0) {
        return 0;
    }
    int rc;
    if (s->file_end == 0 && (rc = write_header(l, s)) != 0) {
        return rc;
    }
    int r = hr_fs_pwrite(l->fs, s->fd, l->wbuf, l->wlen, (uint64_t)s->file_end);
    if (r < 0) {
        int e = -r;
        char lab[64];
        seg_label(s->first, lab, sizeof lab);
        SET_ERR(l, "%s: write at offset %lld: %s", lab, (long long)s->file_end, strerror(e));
        s->file_end += 1; /* unknown how much landed: make fail() truncate */
        return fail(l, hr__errno_code(e));
    }
    s->file_end += (off_t)l->wlen;
    if (s->alloc_end < s->file_end) {
        s->alloc_end = s->file_end;
    }
    l->stats.bytes += l->wlen;
    l->wlen = 0;
    prealloc(l, s);
    return 0;
}

static int wbuf_reserve(struct hr_log *l, size_t more)
{
    unsigned char *p = hr_array_grow(l->wbuf, &l->wcap, l->wlen + more, 1, 65536);
    if (p == NULL) {
        return HR_ENOMEM;
    }
    l->wbuf = p;
    return 0;
}

/* Seal the last segment (footer + trailer, durable) and start a new one at `first`. The
 * footer lets the next open skip scanning this segment. It is synced before the new file
 * exists, so every segment but the last is always sealed on disk. */
static int roll(struct hr_log *l, uint64_t first)
{
    struct seg *s = last_seg(l);
    char lab[64];
    if (s != NULL && !s->sealed) {
        int rc = flush(l);
        if (rc != 0) {
            return rc;
        }
        seg_label(s->first, lab, sizeof lab);
        /* The trailer must end the file: give the preallocated zeros back first (the
         * footer's sync below makes the new size durable with it). */
        if (s->alloc_end > s->file_end) {
            int r = hr_fs_truncate(l->fs, s->fd, (uint64_t)s->file_end);
            if (r < 0) {
                SET_ERR(l, "%s: cut preallocated space: %s", lab, strerror(-r));
                return fail(l, hr__errno_code(-r));
            }
            s->alloc_end = s->file_end;
        }
        size_t flen;
        unsigned char *f = hr__seg_encode_footer(s->first, s->count, s->last_term, s->sparse,
                                                 s->n_sparse, s->size, &flen);
        if (f == NULL) {
            SET_ERR(l, "out of memory");
            return fail(l, HR_ENOMEM);
        }
        int r = hr_fs_pwrite(l->fs, s->fd, f, flen, (uint64_t)s->file_end);
        if (r < 0) {
            int e = -r;
            free(f);
            SET_ERR(l, "%s: write footer: %s", lab, strerror(e));
            s->file_end += 1;
            return fail(l, hr__errno_code(e));
        }
        free(f);
        s->file_end += (off_t)flen;
        s->alloc_end = s->file_end;
        s->sealed = true;
        l->stats.bytes += flen;
        rc = sync_fd(l, s->fd, true, lab);
        if (rc != 0) {
            return rc;
        }
        l->stats.syncs++;
        l->need_datasync = false;
    }
    int rc = segs_reserve(l);
    if (rc != 0) {
        SET_ERR(l, "out of memory");
        return fail(l, rc);
    }
    char path[4200];
    seg_path(l, first, path, sizeof path);
    /* O_TRUNC: a file of that name can only be the leftover of a rolled-back write. */
    int fd = hr_fs_open(l->fs, path, HR_FS_RDWR | HR_FS_CREATE | HR_FS_TRUNC);
    if (fd < 0) {
        int e = -fd;
        seg_label(first, lab, sizeof lab);
        SET_ERR(l, "%s: create: %s", lab, strerror(e));
        return fail(l, hr__errno_code(e));
    }
    struct seg *n = &l->segs[l->n++];
    memset(n, 0, sizeof *n);
    n->fd = fd;
    n->first = first;
    n->version = HR__SEG_VERSION;
    n->size = HR__SEG_HEADER_SIZE;
    n->file_end = 0;
    l->dir_dirty = true;
    l->need_datasync = true;
    if (l->next_index != first) {
        l->next_index = first;
    }
    /* file_end 0: flush() writes and syncs the header before the first records. */
    return 0;
}

int hr_log_append(struct hr_log *l, const struct hr_log_entry *e, size_t n)
{
    int rc = refuse(l);
    if (rc != 0) {
        return rc;
    }
    uint64_t expect = l->n == 0 ? (n > 0 ? e[0].index : 0) : l->next_index;
    uint64_t term = l->last_term;
    for (size_t i = 0; i < n; i++) {
        if (e[i].index != expect + i || e[i].index == 0) {
            SET_ERR(l, "append: entry %zu has index %" PRIu64 ", expected %" PRIu64, i,
                    e[i].index, expect + i);
            return HR_EINVAL;
        }
        if (e[i].term < term) {
            SET_ERR(l, "append: entry %" PRIu64 " has term %" PRIu64 " < previous %" PRIu64,
                    e[i].index, e[i].term, term);
            return HR_EINVAL;
        }
        if (e[i].len > HR__MAX_PAYLOAD || e[i].type == HR__REC_FOOTER) {
            SET_ERR(l, "append: entry %" PRIu64 ": payload too large or bad type",
                    e[i].index);
            return HR_EINVAL;
        }
        term = e[i].term;
    }
    for (size_t i = 0; i < n; i++) {
        size_t rec = HR__REC_HEADER_SIZE + e[i].len;
        struct seg *s = last_seg(l);
        if (s == NULL || s->sealed ||
            (s->count > 0 && (uint64_t)s->size + rec > l->opt.segment_size)) {
            rc = roll(l, e[i].index);
            if (rc != 0) {
                return rc;
            }
            s = last_seg(l);
        }
        if (wbuf_reserve(l, rec) != 0 ||
            (s->count % HR__SPARSE_STRIDE == 0 && sparse_push(s, (uint64_t)s->size) != 0)) {
            SET_ERR(l, "out of memory");
            return fail(l, HR_ENOMEM);
        }
        /* The first record of this sync's run in s: s is new since the checkpoint (its
         * header is synced), or this record starts where the checkpoint (the last sync,
         * truncate or open, all durable) left s. */
        bool first_of_run = s->count == 0 || (l->n == l->ck.n && s->size == l->ck.size);
        hr__rec_encode(l->wbuf + l->wlen, &e[i],
                       s->version >= 2 && first_of_run ? HR__REC_SYNC_MARK : 0);
        l->wlen += rec;
        s->size += (off_t)rec;
        s->count++;
        s->last_term = e[i].term;
        l->next_index = e[i].index + 1;
        l->last_term = e[i].term;
        l->need_datasync = true;
        l->stats.appends++;
        /* Bound the buffer: a large batch is written as it goes (still synced once). */
        if (l->wlen >= (1u << 20) && (rc = flush(l)) != 0) {
            return rc;
        }
    }
    return 0;
}

int hr_log_sync(struct hr_log *l)
{
    int rc = refuse(l);
    if (rc != 0) {
        return rc;
    }
    if ((rc = flush(l)) != 0) {
        return rc;
    }
    struct seg *s = last_seg(l);
    if (l->need_datasync && s != NULL) {
        if ((rc = sync_seg(l, s)) != 0) {
            return rc;
        }
        l->stats.syncs++;
    }
    /* A created or removed segment is durable only once its directory is. */
    if (l->dir_dirty && (rc = sync_fd(l, l->dir_fd, false, "log/")) != 0) {
        return rc;
    }
    l->need_datasync = l->dir_dirty = false;
    checkpoint(l);
    return 0;
}

/* Read the record header at off of segment s (through the cache). */
static int read_header(struct hr_log *l, const struct seg *s, off_t off, unsigned char *h)
{
    return hr__cache_read(l->cache, s->first, l->fs, s->fd, off, h, HR__REC_HEADER_SIZE,
                          s->file_end, &l->stats.cache_hits, &l->stats.cache_misses);
}

/* Offset of record idx in s: from the nearest remembered offset, walk the headers. */
static int locate(struct hr_log *l, const struct seg *s, uint64_t idx, off_t *off)
{
    uint64_t k = (idx - s->first) / HR__SPARSE_STRIDE;
    off_t o = (off_t)s->sparse[k];
    unsigned char h[HR__REC_HEADER_SIZE];
    for (uint64_t i = s->first + k * HR__SPARSE_STRIDE; i < idx; i++) {
        int rc = read_header(l, s, o, h);
        if (rc != 0) {
            return rc;
        }
        o += HR__REC_HEADER_SIZE + (off_t)hr__get32(h + 4);
    }
    *off = o;
    return 0;
}

static size_t find_seg(const struct hr_log *l, uint64_t idx)
{
    size_t lo = 0, hi = l->n;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (l->segs[mid].first <= idx) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* After truncate changed the segments in memory: the log's tail and the rollback
 * checkpoint follow the truncated log, so a later failure (fail() puts the files back to
 * the checkpoint) neither "restores" cut records by extending the file with zeros nor
 * leaves next_index pointing into removed segments. */
static void truncate_settle(struct hr_log *l, uint64_t from)
{
    struct seg *s = last_seg(l);
    l->next_index = s != NULL ? s->first + s->count : from;
    l->last_term = 0;
    for (size_t i = l->n; i-- > 0;) {
        if (l->segs[i].count > 0) {
            l->last_term = l->segs[i].last_term;
            break;
        }
    }
    checkpoint(l);
}

int hr_log_truncate(struct hr_log *l, uint64_t from)
{
    int rc = hr_log_sync(l);
    if (rc != 0) {
        return rc;
    }
    from = from == 0 ? 1 : from;
    /* An empty log may still hold an empty segment (a crash left its header and nothing
     * after it): truncating from its first index drops it, or the log stays pinned there
     * and a reset (snapshot installed) could never append past it. */
    if (l->n == 0 || (from >= l->next_index && from > l->segs[0].first)) {
        return 0;
    }
    /* Read what the cut needs before changing anything: a read error leaves the log as it
     * was. */
    size_t keep = l->n;
    while (keep > 0 && l->segs[keep - 1].first >= from) {
        keep--;
    }
    struct seg *s = keep > 0 ? &l->segs[keep - 1] : NULL;
    bool cut = s != NULL && from < s->first + s->count;
    off_t off = 0;
    unsigned char h[HR__REC_HEADER_SIZE];
    if (cut) {
        char lab[64];
        seg_label(s->first, lab, sizeof lab);
        off_t prev;
        /* from > s->first here (a segment starting at from was not kept), so from - 1 is
         * in s and its term is the new last term. */
        if ((rc = locate(l, s, from, &off)) != 0 || (rc = locate(l, s, from - 1, &prev)) != 0 ||
            (rc = read_header(l, s, prev, h)) != 0) {
            SET_ERR(l, "%s: truncate: cannot read record %" PRIu64, lab, from);
            return rc;
        }
    }
    /* The intent first (intent.c): once it is on disk, a crash anywhere below comes back
     * with the truncation done, never with a half-cut segment that fails the open. */
    struct hr__intent t = {from, cut ? s->first : 0, cut ? (uint64_t)off : 0};
    bool renamed;
    rc = hr__intent_write(l->fs, l->logdir, l->dir_fd, &t, &renamed, l->err,
                          sizeof l->err);
    if (rc != 0 && !renamed) {
        l->failed = rc; /* nothing was changed; retry lets writes go on */
        return rc;
    }
    /* From here memory is the truncated log, whatever the files say until the intent is
     * completed: by hr__intent_complete below, by hr_log_retry after a failure (the log
     * refuses writes until then, so nothing after `from` is acknowledged while the intent
     * may be on disk), or by the next open. */
    while (l->n > keep) {
        struct seg *d = last_seg(l);
        hr__cache_drop(l->cache, d->first);
        seg_close(l, d);
        l->n--;
    }
    if (cut) {
        s->count = from - s->first;
        s->n_sparse = (s->count + HR__SPARSE_STRIDE - 1) / HR__SPARSE_STRIDE;
        s->size = s->file_end = s->alloc_end = off; /* the intent cuts the file there */
        s->sealed = false;
        s->last_term = hr__get64(h + 8);
        hr__cache_drop(l->cache, s->first);
    }
    l->dir_dirty = l->need_datasync = false;
    truncate_settle(l, from);
    size_t removed;
    if (rc == 0) {
        rc = hr__intent_complete(l->fs, l->logdir, l->dir_fd, &t, &removed, l->err,
                                 sizeof l->err);
    }
    if (rc != 0) {
        l->intent = t;
        l->intent_pending = true;
        l->failed = rc;
        return rc;
    }
    return 0;
}

int hr_log_compact(struct hr_log *l, uint64_t below)
{
    int rc = refuse(l);
    if (rc != 0) {
        return rc;
    }
    size_t k = 0;
    /* Oldest first: a crash in the middle leaves a log that starts later, never a hole.
     * The last segment stays: it is where appends go. */
    while (k + 1 < l->n && l->segs[k].sealed && l->segs[k].first + l->segs[k].count <= below) {
        char path[4200];
        seg_path(l, l->segs[k].first, path, sizeof path);
        int r = hr_fs_unlink(l->fs, path);
        if (r < 0 && r != -ENOENT) {
            SET_ERR(l, "compact: unlink %.200s: %s", path, strerror(-r));
            break;
        }
        hr__cache_drop(l->cache, l->segs[k].first);
        seg_close(l, &l->segs[k]);
        k++;
    }
    if (k > 0) {
        memmove(l->segs, l->segs + k, (l->n - k) * sizeof *l->segs);
        l->n -= k;
        l->ck.n -= k;
        int r = hr_fs_sync(l->fs, l->dir_fd, false);
        if (r < 0) {
            SET_ERR(l, "log/: fsync: %s", strerror(-r));
            return hr__errno_code(-r);
        }
    }
    return 0;
}

int hr_log_read(struct hr_log *l, uint64_t lo, uint64_t hi, struct hr_log_entry **out,
                size_t *n)
{
    *out = NULL;
    *n = 0;
    if (lo > hi || l->n == 0 || lo < l->segs[0].first || hi >= l->next_index) {
        SET_ERR(l, "read: range %" PRIu64 "..%" PRIu64 " outside %" PRIu64 "..%" PRIu64, lo,
                hi, hr_log_first_index(l), hr_log_last_index(l));
        return HR_EINVAL;
    }
    int rc;
    if (l->wlen > 0 && !l->broken && (rc = flush(l)) != 0) {
        return rc;
    }
    size_t cnt = (size_t)(hi - lo + 1);
    struct hr_log_entry *ents = calloc(cnt, sizeof *ents);
    unsigned char *pay = NULL;
    size_t plen = 0, pcap = 0;
    if (ents == NULL) {
        return HR_ENOMEM;
    }
    size_t got = 0;
    uint64_t idx = lo;
    rc = 0;
    while (idx <= hi) {
        const struct seg *s = &l->segs[find_seg(l, idx)];
        char lab[64];
        seg_label(s->first, lab, sizeof lab);
        off_t off;
        if ((rc = locate(l, s, idx, &off)) != 0) {
            SET_ERR(l, "%s: cannot read record %" PRIu64, lab, idx);
            goto out;
        }
        uint64_t end = s->first + s->count;
        for (; idx <= hi && idx < end; idx++) {
            unsigned char h[HR__REC_HEADER_SIZE];
            if ((rc = read_header(l, s, off, h)) != 0) {
                SET_ERR(l, "%s: record at offset %lld: cannot read", lab, (long long)off);
                goto out;
            }
            uint32_t len = hr__get32(h + 4);
            if (len > HR__MAX_PAYLOAD || off + HR__REC_HEADER_SIZE + (off_t)len > s->size) {
                SET_ERR(l, "%s: record at offset %lld: bad length", lab, (long long)off);
                rc = HR_ECORRUPT;
                goto out;
            }
            unsigned char *p = hr_array_grow(pay, &pcap, plen + len, 1, 4096);
            if (p == NULL) {
                rc = HR_ENOMEM;
                goto out;
            }
            pay = p;
            if ((rc = hr__cache_read(l->cache, s->first, l->fs, s->fd, off + HR__REC_HEADER_SIZE,
                                     pay + plen, len, s->file_end, &l->stats.cache_hits,
                                     &l->stats.cache_misses)) != 0) {
                SET_ERR(l, "%s: record at offset %lld: cannot read", lab, (long long)off);
                goto out;
            }
            uint32_t crc = hr__crc32c(0, h + 4, HR__REC_HEADER_SIZE - 4);
            if (hr__crc32c(crc, pay + plen, len) != hr__get32(h) || hr__get64(h + 16) != idx) {
                SET_ERR(l, "%s: record at offset %lld: bad checksum", lab, (long long)off);
                rc = HR_ECORRUPT;
                goto out;
            }
            struct hr_log_entry *e = &ents[got++];
            e->term = hr__get64(h + 8);
            e->index = idx;
            e->time_ms = hr__get64(h + 24);
            e->type = h[32];
            e->len = len;
            e->data = (const unsigned char *)(uintptr_t)plen; /* fixed up below */
            plen += len;
            off += HR__REC_HEADER_SIZE + (off_t)len;
        }
    }
    /* One block: the array, then the payloads. */
    struct hr_log_entry *blk = malloc(cnt * sizeof *blk + plen + 1);
    if (blk == NULL) {
        rc = HR_ENOMEM;
        goto out;
    }
    unsigned char *pb = (unsigned char *)(blk + cnt);
    if (plen > 0) {
        memcpy(pb, pay, plen);
    }
    for (size_t i = 0; i < cnt; i++) {
        blk[i] = ents[i];
        blk[i].data = pb + (uintptr_t)ents[i].data;
    }
    *out = blk;
    *n = cnt;
out:
    free(ents);
    free(pay);
    return rc;
}

uint64_t hr_log_first_index(const struct hr_log *l)
{
    return l->n > 0 ? l->segs[0].first : l->next_index;
}

uint64_t hr_log_last_index(const struct hr_log *l)
{
    return l->next_index - 1;
}

uint64_t hr_log_last_term(const struct hr_log *l)
{
    return l->last_term;
}

int hr_log_set_meta(struct hr_log *l, uint64_t term, uint64_t vote)
{
    int rc = refuse(l);
    if (rc != 0) {
        return rc;
    }
    struct hr__meta m = l->meta;
    m.term = term;
    m.vote = vote;
    rc = hr__meta_write(l->fs, l->dir, &m, l->err, sizeof l->err);
    if (rc != 0) {
        l->failed = rc;
        return rc;
    }
    l->meta = m;
    return 0;
}

void hr_log_meta(const struct hr_log *l, uint64_t *term, uint64_t *vote)
{
    *term = l->meta.term;
    *vote = l->meta.vote;
}

const char *hr_log_errmsg(const struct hr_log *l)
{
    return l->err;
}

int hr_log_retry(struct hr_log *l)
{
    if (l->broken) {
        return l->broken;
    }
    if (l->intent_pending) {
        /* Memory already is the truncated log: make the files agree before any write. */
        size_t removed;
        int rc = hr__intent_complete(l->fs, l->logdir, l->dir_fd, &l->intent,
                                     &removed, l->err, sizeof l->err);
        if (rc != 0) {
            l->failed = rc;
            return rc;
        }
        l->intent_pending = false;
    }
    l->failed = 0;
    return 0;
}

void hr_log_stats(const struct hr_log *l, struct hr_log_stats *s)
{
    *s = l->stats;
}

void hr_log_close(struct hr_log *l)
{
    if (l == NULL) {
        return;
    }
    /* Give the preallocated zeros back, so that a cleanly closed log is as long as its
     * records (best effort: zeros left behind are room for the next open). */
    struct seg *s = last_seg(l);
    if (s != NULL && !l->broken && s->fd >= 0 && s->alloc_end > s->file_end) {
        (void)hr_fs_truncate(l->fs, s->fd, (uint64_t)s->file_end);
    }
    for (size_t i = 0; i < l->n; i++) {
        seg_close(l, &l->segs[i]);
    }
    free(l->segs);
    free(l->wbuf);
    hr__cache_free(l->cache);
    if (l->dir_fd >= 0) {
        hr_fs_close(l->fs, l->dir_fd);
    }
    if (l->lock_fd >= 0) {
        hr_fs_close(l->fs, l->lock_fd); /* releases the flock */
    }
    free(l->dir);
    free(l->logdir);
    free(l);
}

/* ---- open and recovery ---- */

void hr__add_info(char *info, size_t infolen, const char *fmt, ...)
{
    size_t used = strlen(info);
    if (used + 2 >= infolen) {
        return;
    }
    if (used > 0) {
        info[used++] = '\n';
        info[used] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(info + used, infolen - used, fmt, ap);
    va_end(ap);
}

/* mkdir, and make the new entry durable: fsync the parent of a directory we created.
 * Segments and meta fsync log/ and the data dir, but nothing else would ever fsync the
 * parent of a freshly created data dir, nor the data dir right after log/ is made. */
static int mkdir_p(struct hr_fs *fs, const char *path)
{
    int r = hr_fs_mkdir(fs, path);
    if (r < 0) {
        return r == -EEXIST ? 0 : r;
    }
    char parent[4200];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash == parent) {
        slash[1] = '\0';
    } else if (slash != NULL) {
        *slash = '\0';
    } else {
        snprintf(parent, sizeof parent, ".");
    }
    return hr_fs_sync_dir(fs, parent);
}

/* Load the segments of l->logdir. Every segment but the last is sealed: its footer is
 * read (a damaged footer falls back to a full, strict scan). The last is scanned and a
 * torn tail cut. Index continuity between segments is checked. */
static int load_segments(struct hr_log *l, char *err, size_t errlen, char *info,
                         size_t infolen)
{
    uint64_t *firsts = NULL;
    size_t nf = 0;
    int rc = hr__seg_list(l->fs, l->logdir, &firsts, &nf, NULL, NULL, err, errlen);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < nf; i++) {
        char path[4200], lab[64];
        seg_path(l, firsts[i], path, sizeof path);
        seg_label(firsts[i], lab, sizeof lab);
        bool is_last = (i + 1 == nf);
        int fd = hr_fs_open(l->fs, path, HR_FS_RDWR);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", lab, strerror(-fd));
            rc = hr__errno_code(-fd);
            goto out;
        }
        struct hr__scan sc;
        rc = is_last ? HR_ECORRUPT
                     : hr__seg_read_footer(l->fs, fd, lab, firsts[i], &sc, err, errlen);
        if (rc == HR_ENOMEM || rc == HR_EIO) {
            hr_fs_close(l->fs, fd);
            goto out;
        }
        if (rc != 0) {
            rc = hr__seg_scan(l->fs, fd, lab, is_last, firsts[i], true, &sc, err, errlen);
            if (rc != 0) {
                hr_fs_close(l->fs, fd);
                goto out;
            }
            if (!is_last && !sc.sealed) {
                hr__add_info(info, infolen, "%s: no footer (scanned; %" PRIu64 " records sound)",
                             lab, sc.count);
            }
        }
        if (sc.torn && sc.data_end == 0) {
            /* Created but its header never reached the disk: nothing was in it. */
            hr_fs_close(l->fs, fd);
            free(sc.sparse);
            int r = hr_fs_unlink(l->fs, path);
            if (r == 0) {
                r = hr_fs_sync(l->fs, l->dir_fd, false);
            }
            if (r < 0) {
                snprintf(err, errlen, "%s: remove empty segment: %s", lab, strerror(-r));
                rc = hr__errno_code(-r);
                goto out;
            }
            hr__add_info(info, infolen,
                         "%s: segment without a valid header or records (interrupted creation) "
                         "removed",
                         lab);
            continue;
        }
        if (sc.torn && sc.zero_tail) {
            /* Zeros after the last record: this log's preallocated space (or unsynced
             * writes that left nothing), kept as room for the next records. */
            hr__add_info(info, infolen,
                         "%s: %lld bytes of zeros after the last record (preallocated) kept "
                         "for appends; log ends at index %" PRIu64,
                         lab, (long long)(sc.file_size - sc.data_end),
                         sc.first + sc.count - 1);
        } else if (sc.torn) {
            int r = hr_fs_truncate(l->fs, fd, (uint64_t)sc.data_end);
            if (r == 0) {
                r = hr_fs_sync(l->fs, fd, true);
            }
            if (r < 0) {
                snprintf(err, errlen, "%s: truncate torn tail: %s", lab, strerror(-r));
                rc = hr__errno_code(-r);
                hr_fs_close(l->fs, fd);
                free(sc.sparse);
                goto out;
            }
            hr__add_info(info, infolen,
                         "%s: torn tail at offset %lld (%lld bytes) truncated; log ends at "
                         "index %" PRIu64,
                         lab, (long long)sc.data_end, (long long)(sc.file_size - sc.data_end),
                         sc.first + sc.count - 1);
        }
        if (l->n > 0) {
            struct seg *p = last_seg(l);
            if (p->first + p->count != sc.first) {
                snprintf(err, errlen,
                         "%s: starts at index %" PRIu64 " but the previous segment ends at "
                         "%" PRIu64 " (gap)",
                         lab, sc.first, p->first + p->count - 1);
                rc = HR_ECORRUPT;
                hr_fs_close(l->fs, fd);
                free(sc.sparse);
                goto out;
            }
        }
        if ((rc = segs_reserve(l)) != 0) {
            hr_fs_close(l->fs, fd);
            free(sc.sparse);
            goto out;
        }
        struct seg *s = &l->segs[l->n++];
        memset(s, 0, sizeof *s);
        s->first = sc.first;
        s->count = sc.count;
        s->last_term = sc.last_term;
        s->fd = fd;
        s->version = sc.version;
        /* A last segment without footer stays open for appends. A non-last one without
         * footer (older writer, damaged footer) is read-only: treat it as sealed. */
        s->sealed = sc.sealed || !is_last;
        s->size = sc.data_end;
        s->file_end = sc.torn ? sc.data_end : sc.end;
        s->alloc_end = sc.torn && !sc.zero_tail ? sc.data_end : sc.file_size;
        s->sparse = sc.sparse;
        s->n_sparse = s->cap_sparse = sc.n_sparse;
        if (s->count > 0) {
            l->last_term = s->last_term;
        }
        l->next_index = s->first + s->count;
    }
    rc = 0;
out:
    free(firsts);
    return rc;
}

/* A truncation the last process did not finish (intent.c): complete it before the scan,
 * so the last segment is scanned as the truncation left it. */
static int finish_truncation(struct hr_log *l, char *err, size_t errlen, char *info,
                             size_t infolen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/%s", l->logdir, HR__INTENT_TMP);
    if (hr_fs_unlink(l->fs, tmp) == 0) {
        hr__add_info(info, infolen, "log/%s: interrupted intent discarded (no truncation had "
                     "begun)", HR__INTENT_TMP);
    }
    struct hr__intent t;
    bool exists;
    int rc = hr__intent_read(l->fs, l->logdir, &t, &exists, err, errlen);
    if (rc != 0 || !exists) {
        return rc;
    }
    size_t removed;
    if ((rc = hr__intent_complete(l->fs, l->logdir, l->dir_fd, &t, &removed, err,
                                  errlen)) != 0) {
        return rc;
    }
    char cutmsg[96] = "";
    if (t.seg != 0) {
        char lab[64];
        seg_label(t.seg, lab, sizeof lab);
        snprintf(cutmsg, sizeof cutmsg, ", %s cut at offset %" PRIu64, lab, t.off);
    }
    hr__add_info(info, infolen, "log/%s: interrupted truncation from index %" PRIu64
                 " completed (%zu segments removed%s)", HR__INTENT_NAME, t.from, removed,
                 cutmsg);
    return 0;
}

int hr_log_open(const char *dir, const struct hr_log_options *o, struct hr_log **out,
                char *err, size_t errlen, char *info, size_t infolen)
{
    *out = NULL;
    if (infolen > 0) {
        info[0] = '\0';
    }
    struct hr_log *l = calloc(1, sizeof *l);
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return HR_ENOMEM;
    }
    l->lock_fd = l->dir_fd = -1;
    l->next_index = 1;
    if (o != NULL) {
        l->opt = *o;
    } else {
        hr_log_options_default(&l->opt);
    }
    l->fs = hr_fs_or_posix(l->opt.fs);
    size_t dl = strlen(dir);
    l->dir = strdup(dir);
    l->logdir = malloc(dl + 5);
    l->cache = hr__cache_new(l->opt.cache_bytes);
    int rc = HR_ENOMEM;
    if (l->dir == NULL || l->logdir == NULL || l->cache == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(l->logdir, dl + 5, "%s/log", dir);
    int r = mkdir_p(l->fs, dir);
    if (r == 0) {
        r = mkdir_p(l->fs, l->logdir);
    }
    if (r < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(-r));
        rc = hr__errno_code(-r);
        goto fail;
    }
    if ((rc = hr__lock_dir(l->fs, dir, &l->lock_fd, err, errlen)) != 0) {
        goto fail;
    }
    bool exists;
    if ((rc = hr__meta_read(l->fs, dir, &l->meta, &exists, err, errlen)) != 0) {
        goto fail;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/meta.tmp", dir);
    if (hr_fs_unlink(l->fs, tmp) == 0) {
        hr__add_info(info, infolen, "meta.tmp: interrupted replace discarded (meta kept)");
    }
    l->dir_fd = hr_fs_open(l->fs, l->logdir, HR_FS_DIR);
    if (l->dir_fd < 0) {
        snprintf(err, errlen, "%s: %s", l->logdir, strerror(-l->dir_fd));
        rc = hr__errno_code(-l->dir_fd);
        goto fail;
    }
    if ((rc = finish_truncation(l, err, errlen, info, infolen)) != 0 ||
        (rc = load_segments(l, err, errlen, info, infolen)) != 0) {
        goto fail;
    }
    /* What the scan read may still be only in the page cache (the last writer was killed
     * before its fdatasync): make it durable, with its directory entry, before appending
     * after it, so the next sync mark vouches only for durable bytes. */
    int sr;
    if (l->n > 0 && ((sr = hr_fs_sync(l->fs, last_seg(l)->fd, true)) < 0 ||
                     (sr = hr_fs_sync(l->fs, l->dir_fd, false)) < 0)) {
        char lab[64];
        seg_label(last_seg(l)->first, lab, sizeof lab);
        snprintf(err, errlen, "%s: sync on open: %s", lab, strerror(-sr));
        rc = hr__errno_code(-sr);
        goto fail;
    }
    checkpoint(l);
    *out = l;
    return 0;
fail:
    hr_log_close(l);
    return rc;
}
