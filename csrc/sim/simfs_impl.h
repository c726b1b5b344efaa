/*
 * simfs_impl.h: internals shared by the files of the simulated file system (simfs.h):
 *
 *   simfs_store.c  bytes, directory entries, inodes and the journal of unsynced changes
 *   simfs.c        paths, handles, crash points and the struct hr_fs operations
 *   simfs_crash.c  what a crash keeps (hr_simfs_reboot)
 *
 * Inodes live in one table (the root is inode 0) and are only freed at a reboot, when the
 * ones no longer reachable from the root are collected: until then an unlinked file may
 * still be open, or still durably named. A file keeps its current bytes, its durable
 * bytes and the list of its unsynced writes and truncates (a crash may keep a prefix of
 * them). A directory keeps its current and durable entries; the namespace changes not yet
 * synced are also kept in one journal, in order, for the same reason.
 *
 * Out of memory aborts: like disk.c, the simulator cannot model a lost durable write, and
 * a test process that runs out of memory has nothing to report anyway.
 * Threading: as simfs.h (one thread at a time). Private to these files.
 */
#ifndef HR_SIM_SIMFS_IMPL_H
#define HR_SIM_SIMFS_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/prng.h"
#include "simfs.h"

#define HR__SIMFS_NO_INODE UINT32_MAX

struct hr__simfs_bytes {
    unsigned char *p;
    size_t len, cap;
};

/* An unsynced change of a file's bytes: a write (data) or a truncate (data NULL). */
struct hr__simfs_wop {
    uint64_t off; /* truncate: the new size */
    size_t len;
    unsigned char *data;
};

struct hr__simfs_dent {
    char *name;
    uint32_t ino;
};

struct hr__simfs_dents {
    struct hr__simfs_dent *v;
    size_t n, cap;
};

struct hr__simfs_inode {
    bool dir;
    bool mark;
    struct hr__simfs_bytes cur, dur;
    struct hr__simfs_wop *ops;
    size_t nops, capops;
    struct hr__simfs_dents cur_e, dur_e;
    unsigned lock_ex, lock_sh;
};

/* An unsynced namespace change of one directory: name -> ino (ino HR__SIMFS_NO_INODE: name
 * removed), and for a rename within the directory the old name removed with it. */
struct hr__simfs_jop {
    uint32_t dir;
    char *name;
    uint32_t ino;
    char *gone;
};

struct hr__simfs_handle {
    uint32_t ino;
    bool open, dir, rw;
    int lock; /* 0, HR_FS_LOCK_EX or HR_FS_LOCK_SH */
};

struct hr_simfs {
    struct hr_fs fs; /* first: the ops get a struct hr_fs * */
    struct hr_prng rng;
    unsigned flags;
    struct hr__simfs_inode **ino;
    size_t nino, capino;
    struct hr__simfs_handle *h;
    size_t nh, caph;
    struct hr__simfs_jop *j;
    size_t nj, capj;
    uint64_t ops, crash_at;
    bool crashed;
    struct hr_simfs_stats st;
};

#define HR__SIMFS_GROW(v, n, cap)                                                                  \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 8;                                                           \
            (v) = hr__simfs_xrealloc((v), (cap) * sizeof *(v));                                    \
        }                                                                                          \
    } while (0)

/* simfs_store.c. Allocation aborts on out-of-memory (above). */
void *hr__simfs_xrealloc(void *p, size_t n);
char *hr__simfs_xstrdup(const char *s);
/* A file's bytes: resizing zero-fills what it adds; a write past the end extends. */
void hr__simfs_bytes_resize(struct hr__simfs_bytes *b, size_t len);
void hr__simfs_bytes_write(struct hr__simfs_bytes *b, uint64_t off, const void *data, size_t len);
void hr__simfs_bytes_copy(struct hr__simfs_bytes *to, const struct hr__simfs_bytes *from);
bool hr__simfs_bytes_equal(const struct hr__simfs_bytes *a, const struct hr__simfs_bytes *b);
/* A directory's entries (unordered). */
struct hr__simfs_dent *hr__simfs_dents_find(struct hr__simfs_dents *d, const char *name);
void hr__simfs_dents_set(struct hr__simfs_dents *d, const char *name, uint32_t ino);
void hr__simfs_dents_remove(struct hr__simfs_dents *d, const char *name);
void hr__simfs_dents_clear(struct hr__simfs_dents *d);
void hr__simfs_dents_copy(struct hr__simfs_dents *to, const struct hr__simfs_dents *from);
bool hr__simfs_dents_equal(const struct hr__simfs_dents *a, const struct hr__simfs_dents *b);
/* Forget a file's unsynced changes (it was synced, or a crash was applied). */
void hr__simfs_ops_clear(struct hr__simfs_inode *n);
void hr__simfs_inode_free(struct hr__simfs_inode *n);
/* A new inode in s's table; returns its number. */
uint32_t hr__simfs_inode_new(struct hr_simfs *s, bool dir);
/* The journal of unsynced namespace changes: name -> ino in dir (HR__SIMFS_NO_INODE:
 * removed), gone (if not NULL) removed with it; applied to entries by jop_apply; a synced
 * directory's changes leave it. */
void hr__simfs_journal(struct hr_simfs *s, uint32_t dir, const char *name, uint32_t ino,
                       const char *gone);
void hr__simfs_jop_apply(struct hr__simfs_dents *d, const struct hr__simfs_jop *o);
void hr__simfs_journal_clear(struct hr_simfs *s);
void hr__simfs_journal_drop_dir(struct hr_simfs *s, uint32_t dir);
/* Remember an unsynced write (data) or truncate (data NULL, off: the new size). */
void hr__simfs_record(struct hr_simfs *s, struct hr__simfs_inode *n, uint64_t off, const void *data,
                      size_t len);

/* Whether a crash may keep unsynced changes (a prefix of them). */
static inline bool hr__simfs_keeps_unsynced(const struct hr_simfs *s)
{
    return (s->flags & (HR_SIMFS_KEEP_UNSYNCED | HR_SIMFS_TORN)) != 0;
}

#endif
