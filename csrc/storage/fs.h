/*
 * fs.h: the file system under csrc/storage. Every file operation of the storage (segments,
 * meta, the lock, snapshot files, inspect) goes through a struct hr_fs, so the same code
 * runs over the real disk (hr_fs_posix(), fs_posix.c) or over a simulated one that loses
 * what was not synced when it "crashes" (csrc/sim/simfs.h), the way the simulator tests
 * recovery against the production code instead of a model of it.
 *
 * The interface is the small subset of POSIX the storage needs, with POSIX meaning:
 *
 *   open      a file (HR_FS_READ or HR_FS_RDWR, with HR_FS_CREATE / HR_FS_TRUNC) or a
 *             directory (HR_FS_DIR, only to sync it); returns a handle >= 0. A handle is
 *             an int so that it fits where the storage kept file descriptors; with
 *             hr_fs_posix() it is one.
 *   close     the handle (and any lock taken through it).
 *   pread     up to len bytes at off; fewer only at the end of the file (0: at or past it).
 *   pwrite    all len bytes at off (extending the file, a gap reads as zeros); a failure
 *             may leave any part of them written.
 *   sync      data_only: fdatasync (the file's bytes and size durable); else fsync. On a
 *             directory handle: the directory's entries (files created, renamed, removed
 *             in it) become durable. A file's name is durable only once its directory
 *             was synced after the name appeared, whatever was synced of the file.
 *   truncate  set the size (ftruncate).
 *   size      the size in bytes (fstat).
 *   rename    atomic replace of `to` by `from` (same file system).
 *   unlink    remove a file name.
 *   mkdir     make a directory (mode 0755); -EEXIST if the name exists.
 *   list      call cb(arg, name) for every name in a directory but "." and ".."; a
 *             non-zero return stops the listing and is returned. The order is
 *             unspecified; cb may change the directory (a name added or removed meanwhile
 *             may or may not be reported).
 *   lock      flock(2) without blocking: HR_FS_LOCK_EX, HR_FS_LOCK_SH or HR_FS_UNLOCK; a
 *             lock belongs to the open handle (a second handle conflicts, even in the
 *             same process) and goes with it on close or when the process dies;
 *             -EWOULDBLOCK if another handle holds a conflicting lock.
 *
 * Errors: every operation returns 0 (or a count / handle) on success and a negative errno
 * on failure (-ENOENT, -EIO, -ENOSPC...), never -1 with errno: callers map them with
 * hr__errno_code(-rc) and name them with strerror(-rc). Files are created with mode 0644.
 *
 * A NULL struct hr_fs * means hr_fs_posix() everywhere in csrc/storage, so production
 * callers never name a file system. This interface is also the one seam for storage faults
 * in tests: csrc/testkit/fault_fs.h wraps the POSIX one and fails the writes or syncs it
 * is told to (a node gets it through its config, see csrc/lua/fs_binding.h); the storage
 * itself has no fault hook. Ownership: whoever creates a file system owns it and
 * keeps it alive while any log, writer or receiver opened over it lives.
 * Threading: hr_fs_posix() is stateless and may be used from any thread at once; another
 * implementation says what it allows (the simulated one: one thread at a time).
 */
#ifndef HR_STORAGE_FS_H
#define HR_STORAGE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* open flags */
enum {
    HR_FS_READ = 0,   /* read only */
    HR_FS_RDWR = 1,   /* read and write */
    HR_FS_CREATE = 2, /* create the file if it does not exist */
    HR_FS_TRUNC = 4,  /* cut an existing file to 0 bytes */
    HR_FS_DIR = 8     /* open a directory (to sync it); other flags ignored */
};

/* lock modes */
enum { HR_FS_LOCK_EX = 1, HR_FS_LOCK_SH = 2, HR_FS_UNLOCK = 3 };

struct hr_fs;

struct hr_fs_ops {
    int (*open)(struct hr_fs *fs, const char *path, int flags);
    int (*close)(struct hr_fs *fs, int h);
    ssize_t (*pread)(struct hr_fs *fs, int h, void *buf, size_t len, uint64_t off);
    int (*pwrite)(struct hr_fs *fs, int h, const void *buf, size_t len, uint64_t off);
    int (*sync)(struct hr_fs *fs, int h, bool data_only);
    int (*truncate)(struct hr_fs *fs, int h, uint64_t size);
    int (*size)(struct hr_fs *fs, int h, uint64_t *size);
    int (*rename)(struct hr_fs *fs, const char *from, const char *to);
    int (*unlink)(struct hr_fs *fs, const char *path);
    int (*mkdir)(struct hr_fs *fs, const char *path);
    int (*list)(struct hr_fs *fs, const char *dir, int (*cb)(void *arg, const char *name),
                void *arg);
    int (*lock)(struct hr_fs *fs, int h, int how);
};

/* An implementation embeds this as its first member. */
struct hr_fs {
    const struct hr_fs_ops *ops;
};

/* The real file system (fs_posix.c): a shared, immutable instance. */
struct hr_fs *hr_fs_posix(void);

/* NULL means POSIX. */
static inline struct hr_fs *hr_fs_or_posix(struct hr_fs *fs)
{
    return fs != NULL ? fs : hr_fs_posix();
}

/* Shorthands; fs must not be NULL (resolve it with hr_fs_or_posix first). */
static inline int hr_fs_open(struct hr_fs *fs, const char *path, int flags)
{
    return fs->ops->open(fs, path, flags);
}
static inline int hr_fs_close(struct hr_fs *fs, int h)
{
    return fs->ops->close(fs, h);
}
static inline ssize_t hr_fs_pread(struct hr_fs *fs, int h, void *buf, size_t len, uint64_t off)
{
    return fs->ops->pread(fs, h, buf, len, off);
}
static inline int hr_fs_pwrite(struct hr_fs *fs, int h, const void *buf, size_t len, uint64_t off)
{
    return fs->ops->pwrite(fs, h, buf, len, off);
}
static inline int hr_fs_sync(struct hr_fs *fs, int h, bool data_only)
{
    return fs->ops->sync(fs, h, data_only);
}
static inline int hr_fs_truncate(struct hr_fs *fs, int h, uint64_t size)
{
    return fs->ops->truncate(fs, h, size);
}
static inline int hr_fs_size(struct hr_fs *fs, int h, uint64_t *size)
{
    return fs->ops->size(fs, h, size);
}
static inline int hr_fs_rename(struct hr_fs *fs, const char *from, const char *to)
{
    return fs->ops->rename(fs, from, to);
}
static inline int hr_fs_unlink(struct hr_fs *fs, const char *path)
{
    return fs->ops->unlink(fs, path);
}
static inline int hr_fs_mkdir(struct hr_fs *fs, const char *path)
{
    return fs->ops->mkdir(fs, path);
}
static inline int hr_fs_list(struct hr_fs *fs, const char *dir,
                             int (*cb)(void *arg, const char *name), void *arg)
{
    return fs->ops->list(fs, dir, cb, arg);
}
static inline int hr_fs_lock(struct hr_fs *fs, int h, int how)
{
    return fs->ops->lock(fs, h, how);
}

/* Open the directory path, sync it and close it. */
int hr_fs_sync_dir(struct hr_fs *fs, const char *path);

#endif
