/*
 * simfs_crash.c: what a crash keeps (simfs.h): the durable state, and by the flags a
 * prefix of the unsynced changes, a torn write, a subset of the unsynced pages. Every
 * random choice is drawn from the file system's PRNG in a fixed order (inodes by number),
 * so a reboot replays from the seed.
 */
#include <stdlib.h>
#include <string.h>

#include "simfs_impl.h"

/* The content a file has after the crash (simfs.h, the flags). */
static void crash_file(struct hr_simfs *s, struct hr__simfs_inode *n)
{
    struct hr__simfs_bytes cand = {NULL, 0, 0};
    hr__simfs_bytes_copy(&cand, &n->dur);
    if (hr__simfs_keeps_unsynced(s)) {
        size_t keep = (size_t)hr_prng_range(&s->rng, 0, n->nops);
        for (size_t i = 0; i < keep; i++) {
            const struct hr__simfs_wop *o = &n->ops[i];
            if (o->data == NULL) {
                hr__simfs_bytes_resize(&cand, (size_t)o->off);
            } else {
                hr__simfs_bytes_write(&cand, o->off, o->data, o->len);
            }
        }
        if ((s->flags & HR_SIMFS_TORN) && keep < n->nops && n->ops[keep].data != NULL &&
            n->ops[keep].len > 0) {
            const struct hr__simfs_wop *o = &n->ops[keep];
            size_t part = (size_t)hr_prng_range(&s->rng, 0, o->len - 1);
            if (part > 0) {
                hr__simfs_bytes_write(&cand, o->off, o->data, part);
                s->st.torn++;
            }
        }
    } else {
        hr__simfs_bytes_copy(&cand, &n->cur);
    }
    if (s->flags & HR_SIMFS_PAGES) {
        /* Page by page from the durable content or from the candidate. Without a prefix
         * mode the candidate is every write. */
        size_t size = hr_prng_range(&s->rng, 0, 1) ? cand.len : n->dur.len;
        struct hr__simfs_bytes out = {NULL, 0, 0};
        hr__simfs_bytes_resize(&out, size);
        for (size_t pg = 0; pg * HR_SIMFS_PAGE < size; pg++) {
            const struct hr__simfs_bytes *src = hr_prng_range(&s->rng, 0, 1) ? &cand : &n->dur;
            size_t lo = pg * HR_SIMFS_PAGE;
            size_t hi = lo + HR_SIMFS_PAGE < size ? lo + HR_SIMFS_PAGE : size;
            for (size_t i = lo; i < hi; i++) {
                out.p[i] = i < src->len ? src->p[i] : 0;
            }
        }
        free(cand.p);
        cand = out;
    } else if (!hr__simfs_keeps_unsynced(s)) {
        hr__simfs_bytes_copy(&cand, &n->dur);
    }
    if (!hr__simfs_bytes_equal(&cand, &n->cur)) {
        s->st.files_reverted++;
    }
    free(n->cur.p);
    n->cur = cand;
    hr__simfs_bytes_copy(&n->dur, &n->cur);
    hr__simfs_ops_clear(n);
}

static void mark(struct hr_simfs *s, uint32_t ino)
{
    struct hr__simfs_inode *n = s->ino[ino];
    if (n == NULL || n->mark) {
        return;
    }
    n->mark = true;
    if (n->dir) {
        for (size_t i = 0; i < n->cur_e.n; i++) {
            mark(s, n->cur_e.v[i].ino);
        }
    }
}

void hr_simfs_reboot(struct hr_simfs *s)
{
    /* Names: the durable entries, plus a prefix of the journal if unsynced changes may
     * have been committed. */
    size_t keep = hr__simfs_keeps_unsynced(s) ? (size_t)hr_prng_range(&s->rng, 0, s->nj) : 0;
    for (size_t i = 0; i < keep; i++) {
        struct hr__simfs_inode *d = s->ino[s->j[i].dir];
        if (d != NULL) {
            hr__simfs_jop_apply(&d->dur_e, &s->j[i]);
        }
    }
    hr__simfs_journal_clear(s);
    for (size_t i = 0; i < s->nino; i++) {
        struct hr__simfs_inode *n = s->ino[i];
        if (n != NULL && n->dir) {
            if (!hr__simfs_dents_equal(&n->cur_e, &n->dur_e)) {
                s->st.names_reverted++;
            }
            hr__simfs_dents_copy(&n->cur_e, &n->dur_e);
        }
    }
    /* What no name reaches any more is gone. */
    for (size_t i = 0; i < s->nino; i++) {
        if (s->ino[i] != NULL) {
            s->ino[i]->mark = false;
        }
    }
    mark(s, 0);
    for (size_t i = 0; i < s->nino; i++) {
        struct hr__simfs_inode *n = s->ino[i];
        if (n == NULL) {
            continue;
        }
        if (!n->mark) {
            hr__simfs_inode_free(n);
            s->ino[i] = NULL;
            continue;
        }
        n->lock_ex = n->lock_sh = 0;
        if (!n->dir) {
            crash_file(s, n);
        }
    }
    /* The process is gone: so are its handles (numbers are not reused) and locks. */
    for (size_t i = 0; i < s->nh; i++) {
        s->h[i].open = false;
        s->h[i].lock = 0;
    }
    s->crashed = false;
    s->crash_at = 0;
    s->st.reboots++;
}
