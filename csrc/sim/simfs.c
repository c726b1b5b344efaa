/*
 * simfs.c: the simulated file system (simfs.h).
 *
 * Inodes live in one table (the root is inode 0) and are only freed at a reboot, when the
 * ones no longer reachable from the root are collected: until then an unlinked file may
 * still be open, or still durably named. A file keeps its current bytes, its durable
 * bytes and, when the flags want a prefix of them at a crash, the list of its unsynced
 * writes and truncates. A directory keeps its current and durable entries; the namespace
 * changes not yet synced are also kept in one journal, in order, for the same reason.
 *
 * Out of memory aborts: like disk.c, the simulator cannot model a lost durable write, and
 * a test process that runs out of memory has nothing to report anyway.
 */
#include "simfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/prng.h"

#define NO_INODE UINT32_MAX

struct bytes {
    unsigned char *p;
    size_t len, cap;
};

/* An unsynced change of a file's bytes: a write (data) or a truncate (data NULL). */
struct wop {
    uint64_t off; /* truncate: the new size */
    size_t len;
    unsigned char *data;
};

struct dent {
    char *name;
    uint32_t ino;
};

struct dents {
    struct dent *v;
    size_t n, cap;
};

struct inode {
    bool dir;
    bool mark;
    struct bytes cur, dur;
    struct wop *ops;
    size_t nops, capops;
    struct dents cur_e, dur_e;
    unsigned lock_ex, lock_sh;
};

/* An unsynced namespace change of one directory: name -> ino (ino NO_INODE: name
 * removed), and for a rename within the directory the old name removed with it. */
struct jop {
    uint32_t dir;
    char *name;
    uint32_t ino;
    char *gone;
};

struct handle {
    uint32_t ino;
    bool open, dir, rw;
    int lock; /* 0, HR_FS_LOCK_EX or HR_FS_LOCK_SH */
};

struct hr_simfs {
    struct hr_fs fs; /* first: the ops get a struct hr_fs * */
    struct hr_prng rng;
    unsigned flags;
    struct inode **ino;
    size_t nino, capino;
    struct handle *h;
    size_t nh, caph;
    struct jop *j;
    size_t nj, capj;
    uint64_t ops, crash_at;
    bool crashed;
    struct hr_simfs_stats st;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n > 0 ? n : 1);
    if (q == NULL) {
        abort(); /* see the top of the file */
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

#define GROW(v, n, cap)                                                                            \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 8;                                                           \
            (v) = xrealloc((v), (cap) * sizeof *(v));                                              \
        }                                                                                          \
    } while (0)

/* ---- bytes and entries ---- */

static void bytes_resize(struct bytes *b, size_t len)
{
    if (len > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < len) {
            nc *= 2;
        }
        b->p = xrealloc(b->p, nc);
        b->cap = nc;
    }
    if (len > b->len) {
        memset(b->p + b->len, 0, len - b->len);
    }
    b->len = len;
}

static void bytes_write(struct bytes *b, uint64_t off, const void *data, size_t len)
{
    if (off + len > b->len) {
        bytes_resize(b, (size_t)(off + len));
    }
    if (len > 0) {
        memcpy(b->p + off, data, len);
    }
}

static void bytes_copy(struct bytes *to, const struct bytes *from)
{
    to->len = 0;
    bytes_resize(to, from->len);
    if (from->len > 0) {
        memcpy(to->p, from->p, from->len);
    }
}

static bool bytes_equal(const struct bytes *a, const struct bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static struct dent *dents_find(struct dents *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->v[i].name, name) == 0) {
            return &d->v[i];
        }
    }
    return NULL;
}

static void dents_set(struct dents *d, const char *name, uint32_t ino)
{
    struct dent *e = dents_find(d, name);
    if (e != NULL) {
        e->ino = ino;
        return;
    }
    GROW(d->v, d->n, d->cap);
    d->v[d->n].name = xstrdup(name);
    d->v[d->n].ino = ino;
    d->n++;
}

static void dents_remove(struct dents *d, const char *name)
{
    struct dent *e = dents_find(d, name);
    if (e != NULL) {
        free(e->name);
        *e = d->v[--d->n];
    }
}

static void dents_clear(struct dents *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].name);
    }
    d->n = 0;
}

static void dents_copy(struct dents *to, const struct dents *from)
{
    dents_clear(to);
    for (size_t i = 0; i < from->n; i++) {
        dents_set(to, from->v[i].name, from->v[i].ino);
    }
}

static bool dents_equal(const struct dents *a, const struct dents *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        struct dent *e = dents_find((struct dents *)b, a->v[i].name);
        if (e == NULL || e->ino != a->v[i].ino) {
            return false;
        }
    }
    return true;
}

/* ---- inodes ---- */

static void ops_clear(struct inode *n)
{
    for (size_t i = 0; i < n->nops; i++) {
        free(n->ops[i].data);
    }
    n->nops = 0;
}

static void inode_free(struct inode *n)
{
    if (n == NULL) {
        return;
    }
    free(n->cur.p);
    free(n->dur.p);
    ops_clear(n);
    free(n->ops);
    dents_clear(&n->cur_e);
    dents_clear(&n->dur_e);
    free(n->cur_e.v);
    free(n->dur_e.v);
    free(n);
}

static uint32_t inode_new(struct hr_simfs *s, bool dir)
{
    struct inode *n = xrealloc(NULL, sizeof *n);
    memset(n, 0, sizeof *n);
    n->dir = dir;
    GROW(s->ino, s->nino, s->capino);
    s->ino[s->nino] = n;
    return (uint32_t)s->nino++;
}

/* ---- paths ---- */

/* Split path into the directory holding its last component (*dir) and that component
 * (name, "" for the root itself). -ENOENT / -ENOTDIR if a directory on the way is
 * missing. */
static int walk(struct hr_simfs *s, const char *path, uint32_t *dir, char *name, size_t namelen)
{
    uint32_t cur = 0;
    const char *p = path;
    name[0] = '\0';
    for (;;) {
        while (*p == '/') {
            p++;
        }
        const char *e = p;
        while (*e != '\0' && *e != '/') {
            e++;
        }
        size_t len = (size_t)(e - p);
        const char *rest = e;
        while (*rest == '/') {
            rest++;
        }
        if (len == 1 && p[0] == '.') {
            if (*rest == '\0') {
                break;
            }
            p = rest;
            continue;
        }
        if (len == 0) {
            break;
        }
        if (len >= namelen || (len == 2 && p[0] == '.' && p[1] == '.')) {
            return -EINVAL;
        }
        if (*rest == '\0') {
            memcpy(name, p, len);
            name[len] = '\0';
            break;
        }
        char comp[256];
        memcpy(comp, p, len);
        comp[len] = '\0';
        struct dent *d = dents_find(&s->ino[cur]->cur_e, comp);
        if (d == NULL) {
            return -ENOENT;
        }
        if (!s->ino[d->ino]->dir) {
            return -ENOTDIR;
        }
        cur = d->ino;
        p = rest;
    }
    *dir = cur;
    return 0;
}

/* The inode path names, or NO_INODE (with the walk's error in *err). */
static uint32_t lookup(struct hr_simfs *s, const char *path, uint32_t *dir, char *name, int *err)
{
    *err = walk(s, path, dir, name, 256);
    if (*err != 0) {
        return NO_INODE;
    }
    if (name[0] == '\0') {
        return *dir; /* the root */
    }
    struct dent *d = dents_find(&s->ino[*dir]->cur_e, name);
    if (d == NULL) {
        *err = -ENOENT;
        return NO_INODE;
    }
    return d->ino;
}

/* ---- crash points ---- */

/* Called by every mutating operation before it acts: 0 to go on, -EIO when the process
 * has crashed (*now: this is the operation the crash happens at). */
static int mutate(struct hr_simfs *s, bool *now)
{
    if (now != NULL) {
        *now = false;
    }
    if (s->crashed) {
        return -EIO;
    }
    s->ops++;
    if (s->crash_at != 0 && s->ops >= s->crash_at) {
        s->crashed = true;
        if (now != NULL) {
            *now = true;
        }
        return -EIO;
    }
    return 0;
}

static void journal(struct hr_simfs *s, uint32_t dir, const char *name, uint32_t ino,
                    const char *gone)
{
    GROW(s->j, s->nj, s->capj);
    s->j[s->nj].dir = dir;
    s->j[s->nj].name = xstrdup(name);
    s->j[s->nj].ino = ino;
    s->j[s->nj].gone = gone != NULL ? xstrdup(gone) : NULL;
    s->nj++;
}

static void jop_apply(struct dents *d, const struct jop *o)
{
    if (o->ino == NO_INODE) {
        dents_remove(d, o->name);
    } else {
        dents_set(d, o->name, o->ino);
    }
    if (o->gone != NULL) {
        dents_remove(d, o->gone);
    }
}

static void journal_clear(struct hr_simfs *s)
{
    for (size_t i = 0; i < s->nj; i++) {
        free(s->j[i].name);
        free(s->j[i].gone);
    }
    s->nj = 0;
}

/* A synced directory: its changes leave the journal (they are durable now). */
static void journal_drop_dir(struct hr_simfs *s, uint32_t dir)
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

static bool keeps_unsynced(const struct hr_simfs *s)
{
    return (s->flags & (HR_SIMFS_KEEP_UNSYNCED | HR_SIMFS_TORN)) != 0;
}

static void record(struct hr_simfs *s, struct inode *n, uint64_t off, const void *data, size_t len)
{
    (void)s; /* kept whatever the flags: they may change before the crash */
    GROW(n->ops, n->nops, n->capops);
    struct wop *o = &n->ops[n->nops++];
    o->off = off;
    o->len = len;
    o->data = NULL;
    if (data != NULL) {
        o->data = xrealloc(NULL, len);
        memcpy(o->data, data, len);
    }
}

/* ---- handles ---- */

static struct hr_simfs *from_fs(struct hr_fs *fs)
{
    return (struct hr_simfs *)fs;
}

static struct handle *get_handle(struct hr_simfs *s, int h)
{
    if (h < 0 || (size_t)h >= s->nh || !s->h[h].open) {
        return NULL;
    }
    return &s->h[h];
}

static void unlock(struct hr_simfs *s, struct handle *h)
{
    struct inode *n = s->ino[h->ino];
    if (h->lock == HR_FS_LOCK_EX) {
        n->lock_ex--;
    } else if (h->lock == HR_FS_LOCK_SH) {
        n->lock_sh--;
    }
    h->lock = 0;
}

static int fs_open(struct hr_fs *fs, const char *path, int flags)
{
    struct hr_simfs *s = from_fs(fs);
    uint32_t dir;
    char name[256];
    int err;
    uint32_t ino = lookup(s, path, &dir, name, &err);
    if (flags & HR_FS_DIR) {
        if (ino == NO_INODE) {
            return err;
        }
        if (!s->ino[ino]->dir) {
            return -ENOTDIR;
        }
    } else if (ino == NO_INODE) {
        if (err != -ENOENT || !(flags & HR_FS_CREATE) || name[0] == '\0') {
            return err;
        }
        if (walk(s, path, &dir, name, sizeof name) != 0) {
            return -ENOENT;
        }
        int rc = mutate(s, NULL);
        if (rc != 0) {
            return rc;
        }
        ino = inode_new(s, false);
        dents_set(&s->ino[dir]->cur_e, name, ino);
        journal(s, dir, name, ino, NULL);
    } else if (s->ino[ino]->dir) {
        return -EISDIR;
    } else if (flags & HR_FS_TRUNC) {
        int rc = mutate(s, NULL);
        if (rc != 0) {
            return rc;
        }
        struct inode *n = s->ino[ino];
        n->cur.len = 0;
        record(s, n, 0, NULL, 0);
    }
    GROW(s->h, s->nh, s->caph);
    struct handle *h = &s->h[s->nh];
    h->ino = ino;
    h->open = true;
    h->dir = s->ino[ino]->dir;
    h->rw = (flags & HR_FS_RDWR) != 0 && !h->dir;
    h->lock = 0;
    return (int)s->nh++;
}

static int fs_close(struct hr_fs *fs, int hn)
{
    struct hr_simfs *s = from_fs(fs);
    struct handle *h = get_handle(s, hn);
    if (h == NULL) {
        return -EBADF;
    }
    unlock(s, h);
    h->open = false;
    return 0;
}

static ssize_t fs_pread(struct hr_fs *fs, int hn, void *buf, size_t len, uint64_t off)
{
    struct hr_simfs *s = from_fs(fs);
    struct handle *h = get_handle(s, hn);
    if (h == NULL) {
        return -EBADF;
    }
    if (h->dir) {
        return -EISDIR;
    }
    struct bytes *b = &s->ino[h->ino]->cur;
    if (off >= b->len) {
        return 0;
    }
    size_t n = b->len - (size_t)off < len ? b->len - (size_t)off : len;
    memcpy(buf, b->p + off, n);
    return (ssize_t)n;
}

static int fs_pwrite(struct hr_fs *fs, int hn, const void *buf, size_t len, uint64_t off)
{
    struct hr_simfs *s = from_fs(fs);
    struct handle *h = get_handle(s, hn);
    if (h == NULL || !h->rw) {
        return -EBADF;
    }
    bool now;
    int rc = mutate(s, &now);
    if (rc != 0 && !now) {
        return rc;
    }
    /* The write the crash happens in may still reach the disk, in part (by the flags). */
    struct inode *n = s->ino[h->ino];
    bytes_write(&n->cur, off, buf, len);
    record(s, n, off, buf, len);
    return rc;
}

static int fs_sync(struct hr_fs *fs, int hn, bool data_only)
{
    (void)data_only; /* data and size either way; names need the directory's sync */
    struct hr_simfs *s = from_fs(fs);
    struct handle *h = get_handle(s, hn);
    if (h == NULL) {
        return -EBADF;
    }
    int rc = mutate(s, NULL);
    if (rc != 0) {
        return rc;
    }
    struct inode *n = s->ino[h->ino];
    if (h->dir) {
        dents_copy(&n->dur_e, &n->cur_e);
        journal_drop_dir(s, h->ino);
    } else {
        bytes_copy(&n->dur, &n->cur);
        ops_clear(n);
    }
    return 0;
}

static int fs_truncate(struct hr_fs *fs, int hn, uint64_t size)
{
    struct hr_simfs *s = from_fs(fs);
    struct handle *h = get_handle(s, hn);
    if (h == NULL || !h->rw) {
        return -EBADF;
    }
    int rc = mutate(s, NULL);
    if (rc != 0) {
        return rc;
    }
    struct inode *n = s->ino[h->ino];
    bytes_resize(&n->cur, (size_t)size);
    record(s, n, size, NULL, 0);
    return 0;
}

static int fs_size(struct hr_fs *fs, int hn, uint64_t *size)
{
    struct hr_simfs *s = from_fs(fs);
    struct handle *h = get_handle(s, hn);
    if (h == NULL) {
        return -EBADF;
    }
    *size = h->dir ? 4096 : s->ino[h->ino]->cur.len;
    return 0;
}

static int fs_rename(struct hr_fs *fs, const char *from, const char *to)
{
    struct hr_simfs *s = from_fs(fs);
    uint32_t fdir, tdir;
    char fname[256], tname[256];
    int err;
    uint32_t ino = lookup(s, from, &fdir, fname, &err);
    if (ino == NO_INODE) {
        return err;
    }
    if (fname[0] == '\0') {
        return -EBUSY; /* the root */
    }
    if ((err = walk(s, to, &tdir, tname, sizeof tname)) != 0) {
        return err;
    }
    if (tname[0] == '\0') {
        return -EBUSY;
    }
    struct dent *t = dents_find(&s->ino[tdir]->cur_e, tname);
    if (t != NULL && s->ino[t->ino]->dir != s->ino[ino]->dir) {
        return s->ino[t->ino]->dir ? -EISDIR : -ENOTDIR;
    }
    int rc = mutate(s, NULL);
    if (rc != 0) {
        return rc;
    }
    if (fdir == tdir && strcmp(fname, tname) == 0) {
        return 0;
    }
    dents_set(&s->ino[tdir]->cur_e, tname, ino);
    dents_remove(&s->ino[fdir]->cur_e, fname);
    if (fdir == tdir) {
        journal(s, tdir, tname, ino, fname);
    } else {
        journal(s, tdir, tname, ino, NULL);
        journal(s, fdir, fname, NO_INODE, NULL);
    }
    return 0;
}

static int fs_unlink(struct hr_fs *fs, const char *path)
{
    struct hr_simfs *s = from_fs(fs);
    uint32_t dir;
    char name[256];
    int err;
    uint32_t ino = lookup(s, path, &dir, name, &err);
    if (ino == NO_INODE) {
        return err;
    }
    if (s->ino[ino]->dir) {
        return -EISDIR;
    }
    int rc = mutate(s, NULL);
    if (rc != 0) {
        return rc;
    }
    dents_remove(&s->ino[dir]->cur_e, name);
    journal(s, dir, name, NO_INODE, NULL);
    return 0;
}

static int fs_mkdir(struct hr_fs *fs, const char *path)
{
    struct hr_simfs *s = from_fs(fs);
    uint32_t dir;
    char name[256];
    int err = walk(s, path, &dir, name, sizeof name);
    if (err != 0) {
        return err;
    }
    if (name[0] == '\0' || dents_find(&s->ino[dir]->cur_e, name) != NULL) {
        return -EEXIST;
    }
    int rc = mutate(s, NULL);
    if (rc != 0) {
        return rc;
    }
    uint32_t ino = inode_new(s, true);
    dents_set(&s->ino[dir]->cur_e, name, ino);
    journal(s, dir, name, ino, NULL);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fs_list(struct hr_fs *fs, const char *path, int (*cb)(void *arg, const char *name),
                   void *arg)
{
    struct hr_simfs *s = from_fs(fs);
    uint32_t dir;
    char name[256];
    int err;
    uint32_t ino = lookup(s, path, &dir, name, &err);
    if (ino == NO_INODE) {
        return err;
    }
    struct inode *n = s->ino[ino];
    if (!n->dir) {
        return -ENOTDIR;
    }
    /* A copy, sorted: cb may change the directory, and the order must replay. */
    size_t cnt = n->cur_e.n;
    char **names = xrealloc(NULL, (cnt > 0 ? cnt : 1) * sizeof *names);
    for (size_t i = 0; i < cnt; i++) {
        names[i] = xstrdup(n->cur_e.v[i].name);
    }
    qsort(names, cnt, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (rc == 0) {
            rc = cb(arg, names[i]);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int fs_lock(struct hr_fs *fs, int hn, int how)
{
    struct hr_simfs *s = from_fs(fs);
    struct handle *h = get_handle(s, hn);
    if (h == NULL) {
        return -EBADF;
    }
    struct inode *n = s->ino[h->ino];
    unsigned ex = n->lock_ex - (h->lock == HR_FS_LOCK_EX);
    unsigned sh = n->lock_sh - (h->lock == HR_FS_LOCK_SH);
    if ((how == HR_FS_LOCK_EX && (ex > 0 || sh > 0)) || (how == HR_FS_LOCK_SH && ex > 0)) {
        return -EWOULDBLOCK;
    }
    unlock(s, h);
    if (how == HR_FS_LOCK_EX) {
        n->lock_ex++;
        h->lock = how;
    } else if (how == HR_FS_LOCK_SH) {
        n->lock_sh++;
        h->lock = how;
    }
    return 0;
}

static const struct hr_fs_ops simfs_ops = {
    fs_open, fs_close,  fs_pread,  fs_pwrite, fs_sync, fs_truncate,
    fs_size, fs_rename, fs_unlink, fs_mkdir,  fs_list, fs_lock,
};

/* ---- crash ---- */

/* The content a file has after the crash (simfs.h, the flags). */
static void crash_file(struct hr_simfs *s, struct inode *n)
{
    struct bytes cand = {NULL, 0, 0};
    bytes_copy(&cand, &n->dur);
    if (keeps_unsynced(s)) {
        size_t keep = (size_t)hr_prng_range(&s->rng, 0, n->nops);
        for (size_t i = 0; i < keep; i++) {
            const struct wop *o = &n->ops[i];
            if (o->data == NULL) {
                bytes_resize(&cand, (size_t)o->off);
            } else {
                bytes_write(&cand, o->off, o->data, o->len);
            }
        }
        if ((s->flags & HR_SIMFS_TORN) && keep < n->nops && n->ops[keep].data != NULL &&
            n->ops[keep].len > 0) {
            const struct wop *o = &n->ops[keep];
            size_t part = (size_t)hr_prng_range(&s->rng, 0, o->len - 1);
            if (part > 0) {
                bytes_write(&cand, o->off, o->data, part);
                s->st.torn++;
            }
        }
    } else {
        bytes_copy(&cand, &n->cur);
    }
    if (s->flags & HR_SIMFS_PAGES) {
        /* Page by page from the durable content or from the candidate. Without a prefix
         * mode the candidate is every write. */
        size_t size = hr_prng_range(&s->rng, 0, 1) ? cand.len : n->dur.len;
        struct bytes out = {NULL, 0, 0};
        bytes_resize(&out, size);
        for (size_t pg = 0; pg * HR_SIMFS_PAGE < size; pg++) {
            const struct bytes *src = hr_prng_range(&s->rng, 0, 1) ? &cand : &n->dur;
            size_t lo = pg * HR_SIMFS_PAGE;
            size_t hi = lo + HR_SIMFS_PAGE < size ? lo + HR_SIMFS_PAGE : size;
            for (size_t i = lo; i < hi; i++) {
                out.p[i] = i < src->len ? src->p[i] : 0;
            }
        }
        free(cand.p);
        cand = out;
    } else if (!keeps_unsynced(s)) {
        bytes_copy(&cand, &n->dur);
    }
    if (!bytes_equal(&cand, &n->cur)) {
        s->st.files_reverted++;
    }
    free(n->cur.p);
    n->cur = cand;
    bytes_copy(&n->dur, &n->cur);
    ops_clear(n);
}

static void mark(struct hr_simfs *s, uint32_t ino)
{
    struct inode *n = s->ino[ino];
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
    size_t keep = keeps_unsynced(s) ? (size_t)hr_prng_range(&s->rng, 0, s->nj) : 0;
    for (size_t i = 0; i < keep; i++) {
        struct inode *d = s->ino[s->j[i].dir];
        if (d != NULL) {
            jop_apply(&d->dur_e, &s->j[i]);
        }
    }
    journal_clear(s);
    for (size_t i = 0; i < s->nino; i++) {
        struct inode *n = s->ino[i];
        if (n != NULL && n->dir) {
            if (!dents_equal(&n->cur_e, &n->dur_e)) {
                s->st.names_reverted++;
            }
            dents_copy(&n->cur_e, &n->dur_e);
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
        struct inode *n = s->ino[i];
        if (n == NULL) {
            continue;
        }
        if (!n->mark) {
            inode_free(n);
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

/* ---- the rest of the API ---- */

struct hr_simfs *hr_simfs_new(uint64_t seed, unsigned flags)
{
    struct hr_simfs *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->fs.ops = &simfs_ops;
    hr_prng_seed(&s->rng, seed);
    s->flags = flags;
    inode_new(s, true); /* the root, inode 0 */
    return s;
}

void hr_simfs_free(struct hr_simfs *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nino; i++) {
        inode_free(s->ino[i]);
    }
    free(s->ino);
    free(s->h);
    journal_clear(s);
    free(s->j);
    free(s);
}

struct hr_fs *hr_simfs_fs(struct hr_simfs *s)
{
    return &s->fs;
}

void hr_simfs_set_flags(struct hr_simfs *s, unsigned flags)
{
    s->flags = flags;
}

uint64_t hr_simfs_op_count(const struct hr_simfs *s)
{
    return s->ops;
}

void hr_simfs_crash_at(struct hr_simfs *s, uint64_t n)
{
    s->crash_at = n;
    if (n != 0 && n <= s->ops) {
        s->crashed = true;
    }
}

void hr_simfs_crash(struct hr_simfs *s)
{
    s->crashed = true;
}

bool hr_simfs_crashed(const struct hr_simfs *s)
{
    return s->crashed;
}

void hr_simfs_stats(const struct hr_simfs *s, struct hr_simfs_stats *out)
{
    *out = s->st;
    out->ops = s->ops;
}
