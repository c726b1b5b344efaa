/*
 * fault_fs.c: the fault-injecting file system (fault_fs.h). Every operation but pwrite and
 * sync is the inner one's unchanged.
 */
#define _GNU_SOURCE /* pthread mutexes and ssize_t under -std=c11 */
#include <pthread.h>
#include <stdlib.h>

#include "../storage/fs.h"
#include "fault_fs.h"

struct rule {
    unsigned skip, count;
    int err;
};

struct hr_fault_fs {
    struct hr_fs fs; /* first: the ops receive &ff->fs */
    struct hr_fs *inner;
    pthread_mutex_t mu;
    struct rule rules[2]; /* by HR_FAULT_WRITE / HR_FAULT_SYNC */
    struct hr_fault_fs_stats st;
};

static struct hr_fault_fs *ff_of(struct hr_fs *fs)
{
    return (struct hr_fault_fs *)fs;
}

/* Count an operation of kind op; its errno (> 0) if it is to fail, else 0. */
static int take(struct hr_fault_fs *ff, int op)
{
    pthread_mutex_lock(&ff->mu);
    struct rule *r = &ff->rules[op];
    int e = 0;
    if (r->count > 0 && r->skip > 0) {
        r->skip--;
    } else if (r->count > 0) {
        r->count--;
        e = r->err;
    }
    if (op == HR_FAULT_WRITE) {
        ff->st.writes++;
        ff->st.writes_failed += e != 0;
    } else {
        ff->st.syncs++;
        ff->st.syncs_failed += e != 0;
    }
    pthread_mutex_unlock(&ff->mu);
    return e;
}

static int f_open(struct hr_fs *fs, const char *path, int flags)
{
    return hr_fs_open(ff_of(fs)->inner, path, flags);
}

static int f_close(struct hr_fs *fs, int h)
{
    return hr_fs_close(ff_of(fs)->inner, h);
}

static ssize_t f_pread(struct hr_fs *fs, int h, void *buf, size_t len, uint64_t off)
{
    return hr_fs_pread(ff_of(fs)->inner, h, buf, len, off);
}

static int f_pwrite(struct hr_fs *fs, int h, const void *buf, size_t len, uint64_t off)
{
    struct hr_fault_fs *ff = ff_of(fs);
    int e = take(ff, HR_FAULT_WRITE);
    if (e != 0) {
        if (len > 1) {
            (void)hr_fs_pwrite(ff->inner, h, buf, len / 2, off);
        }
        return -e;
    }
    return hr_fs_pwrite(ff->inner, h, buf, len, off);
}

static int f_sync(struct hr_fs *fs, int h, bool data_only)
{
    struct hr_fault_fs *ff = ff_of(fs);
    int e = take(ff, HR_FAULT_SYNC);
    return e != 0 ? -e : hr_fs_sync(ff->inner, h, data_only);
}

static int f_truncate(struct hr_fs *fs, int h, uint64_t size)
{
    return hr_fs_truncate(ff_of(fs)->inner, h, size);
}

static int f_size(struct hr_fs *fs, int h, uint64_t *size)
{
    return hr_fs_size(ff_of(fs)->inner, h, size);
}

static int f_rename(struct hr_fs *fs, const char *from, const char *to)
{
    return hr_fs_rename(ff_of(fs)->inner, from, to);
}

static int f_unlink(struct hr_fs *fs, const char *path)
{
    return hr_fs_unlink(ff_of(fs)->inner, path);
}

static int f_mkdir(struct hr_fs *fs, const char *path)
{
    return hr_fs_mkdir(ff_of(fs)->inner, path);
}

static int f_list(struct hr_fs *fs, const char *dir, int (*cb)(void *arg, const char *name),
                  void *arg)
{
    return hr_fs_list(ff_of(fs)->inner, dir, cb, arg);
}

static int f_lock(struct hr_fs *fs, int h, int how)
{
    return hr_fs_lock(ff_of(fs)->inner, h, how);
}

static const struct hr_fs_ops fault_ops = {
    .open = f_open,       .close = f_close,   .pread = f_pread,   .pwrite = f_pwrite,
    .sync = f_sync,       .truncate = f_truncate, .size = f_size, .rename = f_rename,
    .unlink = f_unlink,   .mkdir = f_mkdir,   .list = f_list,     .lock = f_lock,
};

struct hr_fault_fs *hr_fault_fs_new(struct hr_fs *inner)
{
    struct hr_fault_fs *ff = calloc(1, sizeof *ff);
    if (ff == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&ff->mu, NULL) != 0) {
        free(ff);
        return NULL;
    }
    ff->fs.ops = &fault_ops;
    ff->inner = hr_fs_or_posix(inner);
    return ff;
}

void hr_fault_fs_free(struct hr_fault_fs *ff)
{
    if (ff != NULL) {
        pthread_mutex_destroy(&ff->mu);
        free(ff);
    }
}

struct hr_fs *hr_fault_fs_fs(struct hr_fault_fs *ff)
{
    return &ff->fs;
}

void hr_fault_fs_fail(struct hr_fault_fs *ff, int op, unsigned skip, unsigned count, int err)
{
    pthread_mutex_lock(&ff->mu);
    ff->rules[op == HR_FAULT_SYNC] = (struct rule){.skip = skip, .count = count, .err = err};
    pthread_mutex_unlock(&ff->mu);
}

void hr_fault_fs_stats(struct hr_fault_fs *ff, struct hr_fault_fs_stats *s)
{
    pthread_mutex_lock(&ff->mu);
    *s = ff->st;
    s->writes_pending = ff->rules[HR_FAULT_WRITE].count;
    s->syncs_pending = ff->rules[HR_FAULT_SYNC].count;
    pthread_mutex_unlock(&ff->mu);
}
