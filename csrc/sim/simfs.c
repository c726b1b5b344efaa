/*
 * simfs.c: the simulated file system (simfs.h): paths, handles, crash points and the
 * struct hr_fs operations over the data of simfs_store.c. A crash is applied by
 * simfs_crash.c.
 */
#include "simfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "simfs_impl.h"

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
        struct hr__simfs_dent *d = hr__simfs_dents_find(&s->ino[cur]->cur_e, comp);
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

/* The inode path names, or HR__SIMFS_NO_INODE (with the walk's error in *err). */
static uint32_t lookup(struct hr_simfs *s, const char *path, uint32_t *dir, char *name, int *err)
{
    *err = walk(s, path, dir, name, 256);
    if (*err != 0) {
        return HR__SIMFS_NO_INODE;
    }
    if (name[0] == '\0') {
        return *dir; /* the root */
    }
    struct hr__simfs_dent *d = hr__simfs_dents_find(&s->ino[*dir]->cur_e, name);
    if (d == NULL) {
        *err = -ENOENT;
        return HR__SIMFS_NO_INODE;
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

/* ---- handles ---- */

static struct hr_simfs *from_fs(struct hr_fs *fs)
{
    return (struct hr_simfs *)fs;
}

static struct hr__simfs_handle *get_handle(struct hr_simfs *s, int h)
{
    if (h < 0 || (size_t)h >= s->nh || !s->h[h].open) {
        return NULL;
    }
    return &s->h[h];
}

static void unlock(struct hr_simfs *s, struct hr__simfs_handle *h)
{
    struct hr__simfs_inode *n = s->ino[h->ino];
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
        if (ino == HR__SIMFS_NO_INODE) {
            return err;
        }
        if (!s->ino[ino]->dir) {
            return -ENOTDIR;
        }
    } else if (ino == HR__SIMFS_NO_INODE) {
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
        ino = hr__simfs_inode_new(s, false);
        hr__simfs_dents_set(&s->ino[dir]->cur_e, name, ino);
        hr__simfs_journal(s, dir, name, ino, NULL);
    } else if (s->ino[ino]->dir) {
        return -EISDIR;
    } else if (flags & HR_FS_TRUNC) {
        int rc = mutate(s, NULL);
        if (rc != 0) {
            return rc;
        }
        struct hr__simfs_inode *n = s->ino[ino];
        n->cur.len = 0;
        hr__simfs_record(s, n, 0, NULL, 0);
    }
    HR__SIMFS_GROW(s->h, s->nh, s->caph);
    struct hr__simfs_handle *h = &s->h[s->nh];
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
    struct hr__simfs_handle *h = get_handle(s, hn);
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
    struct hr__simfs_handle *h = get_handle(s, hn);
    if (h == NULL) {
        return -EBADF;
    }
    if (h->dir) {
        return -EISDIR;
    }
    struct hr__simfs_bytes *b = &s->ino[h->ino]->cur;
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
    struct hr__simfs_handle *h = get_handle(s, hn);
    if (h == NULL || !h->rw) {
        return -EBADF;
    }
    bool now;
    int rc = mutate(s, &now);
    if (rc != 0 && !now) {
        return rc;
    }
    /* The write the crash happens in may still reach the disk, in part (by the flags). */
    struct hr__simfs_inode *n = s->ino[h->ino];
    hr__simfs_bytes_write(&n->cur, off, buf, len);
    hr__simfs_record(s, n, off, buf, len);
    return rc;
}

static int fs_sync(struct hr_fs *fs, int hn, bool data_only)
{
    (void)data_only; /* data and size either way; names need the directory's sync */
    struct hr_simfs *s = from_fs(fs);
    struct hr__simfs_handle *h = get_handle(s, hn);
    if (h == NULL) {
        return -EBADF;
    }
    int rc = mutate(s, NULL);
    if (rc != 0) {
        return rc;
    }
    struct hr__simfs_inode *n = s->ino[h->ino];
    if (h->dir) {
        hr__simfs_dents_copy(&n->dur_e, &n->cur_e);
        hr__simfs_journal_drop_dir(s, h->ino);
    } else {
        hr__simfs_bytes_copy(&n->dur, &n->cur);
        hr__simfs_ops_clear(n);
    }
    return 0;
}

static int fs_truncate(struct hr_fs *fs, int hn, uint64_t size)
{
    struct hr_simfs *s = from_fs(fs);
    struct hr__simfs_handle *h = get_handle(s, hn);
    if (h == NULL || !h->rw) {
        return -EBADF;
    }
    int rc = mutate(s, NULL);
    if (rc != 0) {
        return rc;
    }
    struct hr__simfs_inode *n = s->ino[h->ino];
    hr__simfs_bytes_resize(&n->cur, (size_t)size);
    hr__simfs_record(s, n, size, NULL, 0);
    return 0;
}

static int fs_size(struct hr_fs *fs, int hn, uint64_t *size)
{
    struct hr_simfs *s = from_fs(fs);
    struct hr__simfs_handle *h = get_handle(s, hn);
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
    if (ino == HR__SIMFS_NO_INODE) {
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
    struct hr__simfs_dent *t = hr__simfs_dents_find(&s->ino[tdir]->cur_e, tname);
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
    hr__simfs_dents_set(&s->ino[tdir]->cur_e, tname, ino);
    hr__simfs_dents_remove(&s->ino[fdir]->cur_e, fname);
    if (fdir == tdir) {
        hr__simfs_journal(s, tdir, tname, ino, fname);
    } else {
        hr__simfs_journal(s, tdir, tname, ino, NULL);
        hr__simfs_journal(s, fdir, fname, HR__SIMFS_NO_INODE, NULL);
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
    if (ino == HR__SIMFS_NO_INODE) {
        return err;
    }
    if (s->ino[ino]->dir) {
        return -EISDIR;
    }
    int rc = mutate(s, NULL);
    if (rc != 0) {
        return rc;
    }
    hr__simfs_dents_remove(&s->ino[dir]->cur_e, name);
    hr__simfs_journal(s, dir, name, HR__SIMFS_NO_INODE, NULL);
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
    if (name[0] == '\0' || hr__simfs_dents_find(&s->ino[dir]->cur_e, name) != NULL) {
        return -EEXIST;
    }
    int rc = mutate(s, NULL);
    if (rc != 0) {
        return rc;
    }
    uint32_t ino = hr__simfs_inode_new(s, true);
    hr__simfs_dents_set(&s->ino[dir]->cur_e, name, ino);
    hr__simfs_journal(s, dir, name, ino, NULL);
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
    if (ino == HR__SIMFS_NO_INODE) {
        return err;
    }
    struct hr__simfs_inode *n = s->ino[ino];
    if (!n->dir) {
        return -ENOTDIR;
    }
    /* A copy, sorted: cb may change the directory, and the order must replay. */
    size_t cnt = n->cur_e.n;
    char **names = hr__simfs_xrealloc(NULL, (cnt > 0 ? cnt : 1) * sizeof *names);
    for (size_t i = 0; i < cnt; i++) {
        names[i] = hr__simfs_xstrdup(n->cur_e.v[i].name);
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
    struct hr__simfs_handle *h = get_handle(s, hn);
    if (h == NULL) {
        return -EBADF;
    }
    struct hr__simfs_inode *n = s->ino[h->ino];
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
    hr__simfs_inode_new(s, true); /* the root, inode 0 */
    return s;
}

void hr_simfs_free(struct hr_simfs *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nino; i++) {
        hr__simfs_inode_free(s->ino[i]);
    }
    free(s->ino);
    free(s->h);
    hr__simfs_journal_clear(s);
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
