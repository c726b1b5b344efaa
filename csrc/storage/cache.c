/*
 * cache.c: the bounded read cache. Entries are read on demand (opening does not load the
 * log), and the reads a node makes cluster: followers catching up read forward through
 * recent segments. A small LRU of 64 KiB blocks serves them with a fixed memory budget.
 * Blocks of the open segment can be cached while the file is still growing, so each block
 * remembers how many bytes it holds and is read again when a caller needs more. A block
 * never holds bytes at or past the caller's `limit` (the end of what the log wrote): the
 * open segment is preallocated with zeros (log.c), and a block that cached those zeros
 * would go on serving them after records were written over them.
 * Blocks are few (budget / 64 KiB, 64 by default): a linear search is fast enough.
 */
#include <stdlib.h>
#include <string.h>

#include "impl.h"

struct block {
    uint64_t seg;   /* 0: empty slot */
    uint64_t no;
    uint64_t used;  /* LRU clock */
    size_t len;     /* valid bytes */
    unsigned char *data;
};

struct hr__cache {
    struct block *b;
    size_t n;
    uint64_t clock;
};

struct hr__cache *hr__cache_new(size_t bytes)
{
    struct hr__cache *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->n = bytes / HR__CACHE_BLOCK;
    if (c->n < 2) {
        c->n = 2;
    }
    c->b = calloc(c->n, sizeof *c->b);
    if (c->b == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void hr__cache_free(struct hr__cache *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        free(c->b[i].data);
    }
    free(c->b);
    free(c);
}

void hr__cache_drop(struct hr__cache *c, uint64_t seg)
{
    for (size_t i = 0; i < c->n; i++) {
        if (seg == 0 || c->b[i].seg == seg) {
            c->b[i].seg = 0;
        }
    }
}

static int load(struct block *b, struct hr_fs *fs, int h, uint64_t seg, uint64_t no,
                off_t limit)
{
    if (b->data == NULL && (b->data = malloc(HR__CACHE_BLOCK)) == NULL) {
        return HR_ENOMEM;
    }
    b->seg = 0;
    ssize_t r = hr_fs_pread(fs, h, b->data, HR__CACHE_BLOCK, no * HR__CACHE_BLOCK);
    if (r < 0) {
        return HR_EIO;
    }
    uint64_t start = no * HR__CACHE_BLOCK;
    if ((uint64_t)limit < start + (uint64_t)r) {
        r = (uint64_t)limit > start ? (ssize_t)((uint64_t)limit - start) : 0;
    }
    b->seg = seg;
    b->no = no;
    b->len = (size_t)r;
    return 0;
}

int hr__cache_read(struct hr__cache *c, uint64_t seg, struct hr_fs *fs, int h, off_t off,
                   void *buf, size_t len, off_t limit, uint64_t *hits, uint64_t *misses)
{
    unsigned char *out = buf;
    while (len > 0) {
        uint64_t no = (uint64_t)off / HR__CACHE_BLOCK;
        size_t in = (size_t)((uint64_t)off % HR__CACHE_BLOCK);
        size_t take = HR__CACHE_BLOCK - in < len ? HR__CACHE_BLOCK - in : len;
        struct block *b = NULL, *victim = &c->b[0];
        for (size_t i = 0; i < c->n; i++) {
            if (c->b[i].seg == seg && c->b[i].no == no) {
                b = &c->b[i];
                break;
            }
            if (c->b[i].seg == 0 || c->b[i].used < victim->used) {
                victim = &c->b[i];
            }
        }
        if (b != NULL && b->len >= in + take) {
            (*hits)++;
        } else {
            (*misses)++;
            if (b == NULL) {
                b = victim;
            }
            int rc = load(b, fs, h, seg, no, limit);
            if (rc != 0) {
                return rc;
            }
            if (b->len < in + take) {
                return HR_ECORRUPT;
            }
        }
        b->used = ++c->clock;
        memcpy(out, b->data + in, take);
        out += take;
        off += (off_t)take;
        len -= take;
    }
    return 0;
}
