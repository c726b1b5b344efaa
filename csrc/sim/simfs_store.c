/*
 * simfs_store.c: the data of the simulated file system (simfs_impl.h): byte buffers,
 * directory entries, inodes, and the unsynced changes a crash may keep a prefix of.
 */
#include <stdlib.h>
#include <string.h>

#include "simfs_impl.h"

void *hr__simfs_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n > 0 ? n : 1);
    if (q == NULL) {
        abort(); /* see simfs_impl.h */
    }
    return q;
}

char *hr__simfs_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(hr__simfs_xrealloc(NULL, n), s, n);
}

/* ---- bytes and entries ---- */

void hr__simfs_bytes_resize(struct hr__simfs_bytes *b, size_t len)
{
    if (len > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < len) {
            nc *= 2;
        }
        b->p = hr__simfs_xrealloc(b->p, nc);
        b->cap = nc;
    }
    if (len > b->len) {
        memset(b->p + b->len, 0, len - b->len);
    }
    b->len = len;
}

void hr__simfs_bytes_write(struct hr__simfs_bytes *b, uint64_t off, const void *data, size_t len)
{
    if (off + len > b->len) {
        hr__simfs_bytes_resize(b, (size_t)(off + len));
    }
    if (len > 0) {
        memcpy(b->p + off, data, len);
    }
}

void hr__simfs_bytes_copy(struct hr__simfs_bytes *to, const struct hr__simfs_bytes *from)
{
    to->len = 0;
    hr__simfs_bytes_resize(to, from->len);
    if (from->len > 0) {
        memcpy(to->p, from->p, from->len);
    }
}

bool hr__simfs_bytes_equal(const struct hr__simfs_bytes *a, const struct hr__simfs_bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

struct hr__simfs_dent *hr__simfs_dents_find(struct hr__simfs_dents *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->v[i].name, name) == 0) {
            return &d->v[i];
        }
    }
    return NULL;
}

void hr__simfs_dents_set(struct hr__simfs_dents *d, const char *name, uint32_t ino)
{
    struct hr__simfs_dent *e = hr__simfs_dents_find(d, name);
    if (e != NULL) {
        e->ino = ino;
        return;
    }
    HR__SIMFS_GROW(d->v, d->n, d->cap);
    d->v[d->n].name = hr__simfs_xstrdup(name);
    d->v[d->n].ino = ino;
    d->n++;
}

void hr__simfs_dents_remove(struct hr__simfs_dents *d, const char *name)
{
    struct hr__simfs_dent *e = hr__simfs_dents_find(d, name);
    if (e != NULL) {
        free(e->name);
        *e = d->v[--d->n];
    }
}

void hr__simfs_dents_clear(struct hr__simfs_dents *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].name);
    }
    d->n = 0;
}

void hr__simfs_dents_copy(struct hr__simfs_dents *to, const struct hr__simfs_dents *from)
{
    hr__simfs_dents_clear(to);
    for (size_t i = 0; i < from->n; i++) {
        hr__simfs_dents_set(to, from->v[i].name, from->v[i].ino);
    }
}

bool hr__simfs_dents_equal(const struct hr__simfs_dents *a, const struct hr__simfs_dents *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        struct hr__simfs_dent *e = hr__simfs_dents_find((struct hr__simfs_dents *)b, a->v[i].name);
        if (e == NULL || e->ino != a->v[i].ino) {
            return false;
        }
    }
    return true;
}

/* ---- inodes ---- */

void hr__simfs_ops_clear(struct hr__simfs_inode *n)
{
    for (size_t i = 0; i < n->nops; i++) {
        free(n->ops[i].data);
    }
    n->nops = 0;
}

void hr__simfs_inode_free(struct hr__simfs_inode *n)
{
    if (n == NULL) {
        return;
    }
    free(n->cur.p);
    free(n->dur.p);
    hr__simfs_ops_clear(n);
    free(n->ops);
    hr__simfs_dents_clear(&n->cur_e);
    hr__simfs_dents_clear(&n->dur_e);
    free(n->cur_e.v);
    free(n->dur_e.v);
    free(n);
}

uint32_t hr__simfs_inode_new(struct hr_simfs *s, bool dir)
{
    struct hr__simfs_inode *n = hr__simfs_xrealloc(NULL, sizeof *n);
    memset(n, 0, sizeof *n);
    n->dir = dir;
    HR__SIMFS_GROW(s->ino, s->nino, s->capino);
    s->ino[s->nino] = n;
    return (uint32_t)s->nino++;
}

void hr__simfs_journal(struct hr_simfs *s, uint32_t dir, const char *name, uint32_t ino,
                       const char *gone)
{
    HR__SIMFS_GROW(s->j, s->nj, s->capj);
    s->j[s->nj].dir = dir;
    s->j[s->nj].name = hr__simfs_xstrdup(name);
    s->j[s->nj].ino = ino;
    s->j[s->nj].gone = gone != NULL ? hr__simfs_xstrdup(gone) : NULL;
    s->nj++;
}

void hr__simfs_jop_apply(struct hr__simfs_dents *d, const struct hr__simfs_jop *o)
{
    if (o->ino == HR__SIMFS_NO_INODE) {
        hr__simfs_dents_remove(d, o->name);
    } else {
        hr__simfs_dents_set(d, o->name, o->ino);
    }
    if (o->gone != NULL) {
        hr__simfs_dents_remove(d, o->gone);
    }
}

void hr__simfs_journal_clear(struct hr_simfs *s)
{
    for (size_t i = 0; i < s->nj; i++) {
        free(s->j[i].name);
        free(s->j[i].gone);
    }
    s->nj = 0;
}

/* A synced directory: its changes leave the journal (they are durable now). */
void hr__simfs_journal_drop_dir(struct hr_simfs *s, uint32_t dir)
{
    size_t k = 0;
    for (size_t i = 0; i < s->nj; i++) {
        if (s->j[i].dir == dir) {
            free(s->j[i].name);
            free(s->j[i].gone);
        } else {
            s->j[k++] = s->j[i];
        }
    }
    s->nj = k;
}

void hr__simfs_record(struct hr_simfs *s, struct hr__simfs_inode *n, uint64_t off, const void *data,
                      size_t len)
{
    (void)s; /* kept whatever the flags: they may change before the crash */
    HR__SIMFS_GROW(n->ops, n->nops, n->capops);
    struct hr__simfs_wop *o = &n->ops[n->nops++];
    o->off = off;
    o->len = len;
    o->data = NULL;
    if (data != NULL) {
        o->data = hr__simfs_xrealloc(NULL, len);
        memcpy(o->data, data, len);
    }
}
