/*
 * segment.c: the byte layout of segment files (docs/storage-format.md) and the scan that
 * decides, on open, what a file holds: how many valid records, whether it was sealed, and whether a
 * torn tail follows them, and the listing of a log directory's segments (open and inspect
 * both read it).
 *
 * The recovery rule lives here. A crash can keep any subset of the pages written since
 * the last fdatasync: the last write may come back cut short, zeroed or garbled anywhere,
 * with whole valid records after a broken one. What was synced before it cannot. So the
 * writer marks the first record of every sync's run (HR__REC_SYNC_MARK; log.c starts a run
 * only once the previous fdatasync returned): a valid marked record at offset M proves
 * every byte before M was durable. In the last segment of version 2, damage is the unsynced
 * suffix (cut away on open) unless a valid marked record follows it; then it is damage to
 * synced data, corruption. Version 1 segments carry no marks: there damage is a torn tail
 * only if no valid record at all follows it. Sealed segments are strict: any damage is
 * corruption. Corruption fails the open with the file name and offset.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl.h"
#include "../core/array.h"

void hr__seg_name(char *buf, size_t len, uint64_t first)
{
    snprintf(buf, len, "%020" PRIu64, first);
}

bool hr__seg_parse_name(const char *name, uint64_t *first)
{
    if (strlen(name) != 20) {
        return false;
    }
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *first = v;
    return v > 0;
}

void hr__seg_encode_header(unsigned char *p, uint64_t first)
{
    memcpy(p, HR__SEG_MAGIC, 4);
    hr__put32(p + 4, HR__SEG_VERSION);
    hr__put64(p + 8, first);
    hr__put32(p + 16, hr__crc32c(0, p, 16));
    hr__put32(p + 20, 0);
}

static void rec_header(unsigned char *p, uint32_t len, uint64_t term, uint64_t index,
                       uint64_t time_ms, uint8_t type, uint8_t flags)
{
    hr__put32(p + 4, len);
    hr__put64(p + 8, term);
    hr__put64(p + 16, index);
    hr__put64(p + 24, time_ms);
    p[32] = type;
    p[33] = flags;
    p[34] = p[35] = 0;
}

void hr__rec_encode(unsigned char *p, const struct hr_log_entry *e, uint8_t flags)
{
    rec_header(p, e->len, e->term, e->index, e->time_ms, e->type, flags);
    if (e->len > 0) {
        memcpy(p + HR__REC_HEADER_SIZE, e->data, e->len);
    }
    hr__put32(p, hr__crc32c(0, p + 4, HR__REC_HEADER_SIZE - 4 + (size_t)e->len));
}

unsigned char *hr__seg_encode_footer(uint64_t first, uint64_t count, uint64_t last_term,
                                     const uint64_t *sparse, size_t n_sparse, off_t data_end,
                                     size_t *len)
{
    size_t plen = 16 + 8 * n_sparse;
    size_t total = HR__REC_HEADER_SIZE + plen + HR__TRAILER_SIZE;
    unsigned char *b = malloc(total);
    if (b == NULL) {
        return NULL;
    }
    /* The footer reuses the record layout: its checksum and length are checked the same
     * way, and its index field is the segment's last index. */
    rec_header(b, (uint32_t)plen, last_term, first + count - 1, 0, HR__REC_FOOTER, 0);
    unsigned char *p = b + HR__REC_HEADER_SIZE;
    hr__put32(p, HR__SPARSE_STRIDE);
    hr__put32(p + 4, (uint32_t)n_sparse);
    hr__put64(p + 8, count);
    for (size_t i = 0; i < n_sparse; i++) {
        hr__put64(p + 16 + 8 * i, sparse[i]);
    }
    hr__put32(b, hr__crc32c(0, b + 4, HR__REC_HEADER_SIZE - 4 + plen));
    unsigned char *t = b + HR__REC_HEADER_SIZE + plen;
    hr__put64(t, (uint64_t)data_end);
    memcpy(t + 8, HR__TRAILER_MAGIC, 8);
    *len = total;
    return b;
}

/* Is there a whole record with a valid checksum, numbered at or after `expect`, starting
 * anywhere in buf[from, size)? marked: only records with the sync mark count. The cheap
 * index, flag and length tests come before the CRC. */
static bool valid_record_after(const unsigned char *buf, size_t from, size_t size,
                               uint64_t expect, bool marked)
{
    for (size_t q = from; q + HR__REC_HEADER_SIZE <= size; q++) {
        uint32_t len = hr__get32(buf + q + 4);
        uint64_t idx = hr__get64(buf + q + 16);
        if (idx < expect || idx - expect > size / HR__REC_HEADER_SIZE + 1) {
            continue;
        }
        if (marked && (buf[q + 33] & HR__REC_SYNC_MARK) == 0) {
            continue;
        }
        if (len > HR__MAX_PAYLOAD || q + HR__REC_HEADER_SIZE + (size_t)len > size) {
            continue;
        }
        if (hr__get32(buf + q) ==
            hr__crc32c(0, buf + q + 4, HR__REC_HEADER_SIZE - 4 + (size_t)len)) {
            return true;
        }
    }
    return false;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

static int read_all(struct hr_fs *fs, int h, unsigned char **out, size_t *size,
                    const char *name, char *err, size_t errlen)
{
    uint64_t fsize;
    int rc = hr_fs_size(fs, h, &fsize);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", name, strerror(-rc));
        return HR_EIO;
    }
    size_t n = (size_t)fsize;
    unsigned char *b = malloc(n > 0 ? n : 1);
    if (b == NULL) {
        snprintf(err, errlen, "%s: out of memory reading %zu bytes", name, n);
        return HR_ENOMEM;
    }
    ssize_t r = hr_fs_pread(fs, h, b, n, 0);
    if (r < 0 || (size_t)r != n) {
        snprintf(err, errlen, "%s: read at offset %zd: %s", name, r < 0 ? (ssize_t)0 : r,
                 r < 0 ? strerror((int)-r) : "unexpected end of file");
        free(b);
        return HR_EIO;
    }
    *out = b;
    *size = n;
    return 0;
}

static int push_sparse(struct hr__scan *s, size_t *cap, uint64_t off)
{
    uint64_t *p = hr_array_grow(s->sparse, cap, s->n_sparse + 1, sizeof *p, 64);
    if (p == NULL) {
        return HR_ENOMEM;
    }
    s->sparse = p;
    s->sparse[s->n_sparse++] = off;
    return 0;
}

int hr__seg_scan(struct hr_fs *fs, int h, const char *name, bool allow_torn,
                 uint64_t expect_first, bool want_sparse, struct hr__scan *s, char *err,
                 size_t errlen)
{
    return hr__seg_scan_upto(fs, h, name, allow_torn, expect_first, want_sparse, -1, s, err,
                             errlen);
}

int hr__seg_scan_upto(struct hr_fs *fs, int h, const char *name, bool allow_torn,
                      uint64_t expect_first, bool want_sparse, off_t limit, struct hr__scan *s,
                      char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    unsigned char *b;
    size_t size;
    int rc = read_all(fs, h, &b, &size, name, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (limit >= 0) {
        if ((off_t)size < limit) {
            snprintf(err, errlen, "%s: %zu bytes, shorter than the cut at offset %lld of the "
                     "pending truncation", name, size, (long long)limit);
            free(b);
            return HR_ECORRUPT;
        }
        size = (size_t)limit;
    }
    s->file_size = (off_t)size;
    size_t cap = 0;
    const char *why = NULL;
    size_t pos = 0;

    /* A segment is created, then its header written: a crash in between leaves a short or
     * zeroed file, which holds nothing and is a torn tail as a whole. */
    if (size < HR__SEG_HEADER_SIZE || memcmp(b, HR__SEG_MAGIC, 4) != 0 ||
        hr__get32(b + 16) != hr__crc32c(0, b, 16)) {
        /* Records only follow a written header (log.c syncs a new segment's header
         * before it writes records into it): if none follows, none was ever acknowledged
         * and the file is an interrupted creation. The version is unknown here, so any
         * valid record counts. */
        if (allow_torn && !valid_record_after(b, 0, size, expect_first, false)) {
            s->torn = true;
            s->first = expect_first;
            goto done;
        }
        why = size < HR__SEG_HEADER_SIZE ? "segment header cut short" : "bad segment header";
        goto corrupt;
    }
    s->version = hr__get32(b + 4);
    if (s->version < HR__SEG_VERSION_MIN || s->version > HR__SEG_VERSION) {
        snprintf(err, errlen, "%s: format version %u, this build reads %u to %u", name,
                 s->version, HR__SEG_VERSION_MIN, HR__SEG_VERSION);
        rc = HR_ECORRUPT;
        goto out;
    }
    s->first = hr__get64(b + 8);
    if (expect_first != 0 && s->first != expect_first) {
        snprintf(err, errlen, "%s: header says first index %" PRIu64 ", name says %" PRIu64,
                 name, s->first, expect_first);
        rc = HR_ECORRUPT;
        goto out;
    }
    pos = HR__SEG_HEADER_SIZE;
    uint64_t expect = s->first;
    while (pos < size) {
        if (size - pos < HR__REC_HEADER_SIZE) {
            why = "record header cut short";
            goto damaged;
        }
        const unsigned char *p = b + pos;
        uint32_t len = hr__get32(p + 4);
        if (len > HR__MAX_PAYLOAD || pos + HR__REC_HEADER_SIZE + (size_t)len > size) {
            why = "record extends past the end of the file";
            goto damaged;
        }
        size_t end = pos + HR__REC_HEADER_SIZE + len;
        if (hr__get32(p) != hr__crc32c(0, p + 4, HR__REC_HEADER_SIZE - 4 + (size_t)len)) {
            why = "bad checksum";
            goto damaged;
        }
        uint64_t idx = hr__get64(p + 16);
        if (p[32] == HR__REC_FOOTER) {
            if (idx != expect - 1 || s->count == 0 || size - end != HR__TRAILER_SIZE ||
                hr__get64(b + end) != pos || memcmp(b + end + 8, HR__TRAILER_MAGIC, 8) != 0) {
                why = "bad footer";
                goto damaged;
            }
            s->sealed = true;
            s->data_end = (off_t)pos;
            s->end = (off_t)size;
            goto done;
        }
        if (idx != expect) {
            snprintf(err, errlen,
                     "%s: record at offset %zu: index %" PRIu64 ", expected %" PRIu64, name,
                     pos, idx, expect);
            rc = HR_ECORRUPT;
            goto out;
        }
        if (want_sparse && s->count % HR__SPARSE_STRIDE == 0) {
            if (push_sparse(s, &cap, pos) != 0) {
                snprintf(err, errlen, "%s: out of memory", name);
                rc = HR_ENOMEM;
                goto out;
            }
        }
        s->count++;
        s->last_term = hr__get64(p + 8);
        expect++;
        pos = end;
    }
    s->data_end = s->end = (off_t)pos;
    goto done;

damaged:
    /* Nothing but zeros to the end: the space log.c preallocates ahead of its writes (or
     * unsynced writes that never reached the disk). No record can hide in it. */
    if (allow_torn && all_zero(b + pos, size - pos)) {
        s->torn = true;
        s->zero_tail = true;
        s->data_end = s->end = (off_t)pos;
        goto done;
    }
    /* Version 2: only a later sync's mark proves this damage hit synced bytes (an unmarked
     * record after it may be a later page of the same unsynced write). */
    if (allow_torn &&
        !valid_record_after(b, pos + 1, size, s->first + s->count, s->version >= 2)) {
        s->torn = true;
        s->data_end = s->end = (off_t)pos;
        goto done;
    }
corrupt:
    snprintf(err, errlen, "%s: record at offset %zu: %s", name, pos, why);
    if (pos == 0) {
        snprintf(err, errlen, "%s: offset 0: %s", name, why);
    }
    rc = HR_ECORRUPT;
    goto out;
done:
    rc = 0;
out:
    free(b);
    if (rc != 0) {
        free(s->sparse);
        s->sparse = NULL;
        s->n_sparse = 0;
    }
    return rc;
}

int hr__seg_read_footer(struct hr_fs *fs, int h, const char *name, uint64_t expect_first,
                        struct hr__scan *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    unsigned char hdr[HR__SEG_HEADER_SIZE], tr[HR__TRAILER_SIZE], rh[HR__REC_HEADER_SIZE];
    uint64_t fsize;
    int rc = hr_fs_size(fs, h, &fsize);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", name, strerror(-rc));
        return HR_EIO;
    }
    off_t size = (off_t)fsize;
    snprintf(err, errlen, "%s: no valid footer", name);
    if (size < HR__SEG_HEADER_SIZE + HR__REC_HEADER_SIZE + HR__TRAILER_SIZE ||
        hr_fs_pread(fs, h, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
        hr_fs_pread(fs, h, tr, sizeof tr, (uint64_t)(size - HR__TRAILER_SIZE)) !=
            (ssize_t)sizeof tr) {
        return HR_ECORRUPT;
    }
    if (memcmp(hdr, HR__SEG_MAGIC, 4) != 0 || hr__get32(hdr + 16) != hr__crc32c(0, hdr, 16) ||
        hr__get32(hdr + 4) < HR__SEG_VERSION_MIN || hr__get32(hdr + 4) > HR__SEG_VERSION ||
        hr__get64(hdr + 8) != expect_first ||
        memcmp(tr + 8, HR__TRAILER_MAGIC, 8) != 0) {
        return HR_ECORRUPT;
    }
    uint64_t foff = hr__get64(tr);
    if (foff < HR__SEG_HEADER_SIZE ||
        foff > (uint64_t)size - HR__TRAILER_SIZE - HR__REC_HEADER_SIZE ||
        hr_fs_pread(fs, h, rh, sizeof rh, foff) != (ssize_t)sizeof rh) {
        return HR_ECORRUPT;
    }
    uint32_t plen = hr__get32(rh + 4);
    if (rh[32] != HR__REC_FOOTER || plen < 16 ||
        foff + HR__REC_HEADER_SIZE + plen + HR__TRAILER_SIZE != (uint64_t)size) {
        return HR_ECORRUPT;
    }
    unsigned char *p = malloc(plen);
    if (p == NULL) {
        return HR_ENOMEM;
    }
    if (hr_fs_pread(fs, h, p, plen, foff + HR__REC_HEADER_SIZE) != (ssize_t)plen) {
        free(p);
        return HR_ECORRUPT;
    }
    uint32_t crc = hr__crc32c(0, rh + 4, HR__REC_HEADER_SIZE - 4);
    crc = hr__crc32c(crc, p, plen);
    uint32_t n_sparse = hr__get32(p + 4);
    uint64_t count = hr__get64(p + 8);
    if (crc != hr__get32(rh) || hr__get32(p) != HR__SPARSE_STRIDE ||
        plen != 16 + 8 * (uint64_t)n_sparse || count == 0 ||
        n_sparse != (count + HR__SPARSE_STRIDE - 1) / HR__SPARSE_STRIDE ||
        hr__get64(rh + 16) != expect_first + count - 1) {
        free(p);
        return HR_ECORRUPT;
    }
    s->sparse = malloc(n_sparse * sizeof *s->sparse);
    if (s->sparse == NULL) {
        free(p);
        return HR_ENOMEM;
    }
    for (uint32_t i = 0; i < n_sparse; i++) {
        s->sparse[i] = hr__get64(p + 16 + 8 * i);
    }
    free(p);
    s->n_sparse = n_sparse;
    s->first = expect_first;
    s->version = hr__get32(hdr + 4);
    s->count = count;
    s->last_term = hr__get64(rh + 8);
    s->data_end = (off_t)foff;
    s->end = size;
    s->file_size = size;
    s->sealed = true;
    err[0] = '\0';
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct list_ctx {
    uint64_t *v;
    size_t cnt, cap;
    void (*other)(void *arg, const char *name);
    void *arg;
};

static int list_one(void *arg, const char *name)
{
    struct list_ctx *c = arg;
    uint64_t first;
    if (!hr__seg_parse_name(name, &first)) {
        if (c->other != NULL) {
            c->other(c->arg, name);
        }
        return 0;
    }
    uint64_t *p = hr_array_grow(c->v, &c->cap, c->cnt + 1, sizeof *p, 16);
    if (p == NULL) {
        return -ENOMEM; /* a list callback's stop value is returned as is */
    }
    c->v = p;
    c->v[c->cnt++] = first;
    return 0;
}

int hr__seg_list(struct hr_fs *fs, const char *logdir, uint64_t **out, size_t *n,
                 void (*other)(void *arg, const char *name), void *arg, char *err,
                 size_t errlen)
{
    struct list_ctx c = {NULL, 0, 0, other, arg};
    int rc = hr_fs_list(fs, logdir, list_one, &c);
    if (rc == -ENOMEM) {
        free(c.v);
        return HR_ENOMEM;
    }
    if (rc < 0) {
        free(c.v);
        snprintf(err, errlen, "%s: %s", logdir, strerror(-rc));
        errno = -rc;
        return hr__errno_code(-rc);
    }
    if (c.cnt > 1) {
        qsort(c.v, c.cnt, sizeof *c.v, cmp_u64);
    }
    *out = c.v;
    *n = c.cnt;
    return 0;
}
