/*
 * fs_posix.c: struct hr_fs over the real file system (fs.h). Handles are file
 * descriptors, opened O_CLOEXEC so that a spawned program never inherits (and keeps alive)
 * a segment or the data directory's lock. A forked snapshot child, which does not exec,
 * closes them itself before its parent goes on (csrc/lua/fork_snapshot.c). EINTR is retried;
 * short reads and writes are continued, so a caller sees all of its bytes or an error.
 */
#define _GNU_SOURCE /* pread, fdatasync, flock, O_CLOEXEC, O_DIRECTORY under -std=c11 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

static int p_open(struct hr_fs *fs, const char *path, int flags)
{
    (void)fs;
    int f;
    if (flags & HR_FS_DIR) {
        f = O_RDONLY | O_DIRECTORY;
    } else {
        f = (flags & HR_FS_RDWR) ? O_RDWR : O_RDONLY;
        f |= (flags & HR_FS_CREATE) ? O_CREAT : 0;
        f |= (flags & HR_FS_TRUNC) ? O_TRUNC : 0;
    }
    int fd;
    do {
        fd = open(path, f | O_CLOEXEC, 0644);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int p_close(struct hr_fs *fs, int h)
{
    (void)fs;
    /* Not retried on EINTR: on Linux the descriptor is gone either way. */
    return close(h) < 0 ? -errno : 0;
}

static ssize_t p_pread(struct hr_fs *fs, int h, void *buf, size_t len, uint64_t off)
{
    (void)fs;
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(h, (char *)buf + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -errno;
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int p_pwrite(struct hr_fs *fs, int h, const void *buf, size_t len, uint64_t off)
{
    (void)fs;
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(h, (const char *)buf + done, len - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        done += (size_t)r;
    }
    return 0;
}

static int p_sync(struct hr_fs *fs, int h, bool data_only)
{
    (void)fs;
    int r;
    do {
        r = data_only ? fdatasync(h) : fsync(h);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

static int p_truncate(struct hr_fs *fs, int h, uint64_t size)
{
    (void)fs;
    int r;
    do {
        r = ftruncate(h, (off_t)size);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

static int p_size(struct hr_fs *fs, int h, uint64_t *size)
{
    (void)fs;
    struct stat st;
    if (fstat(h, &st) < 0) {
        return -errno;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

static int p_rename(struct hr_fs *fs, const char *from, const char *to)
{
    (void)fs;
    return rename(from, to) < 0 ? -errno : 0;
}

static int p_unlink(struct hr_fs *fs, const char *path)
{
    (void)fs;
    return unlink(path) < 0 ? -errno : 0;
}

static int p_mkdir(struct hr_fs *fs, const char *path)
{
    (void)fs;
    return mkdir(path, 0755) < 0 ? -errno : 0;
}

static int p_list(struct hr_fs *fs, const char *dir, int (*cb)(void *arg, const char *name),
                  void *arg)
{
    (void)fs;
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -errno;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        rc = cb(arg, de->d_name);
    }
    closedir(d);
    return rc;
}

static int p_lock(struct hr_fs *fs, int h, int how)
{
    (void)fs;
    int op = how == HR_FS_LOCK_EX   ? LOCK_EX | LOCK_NB
             : how == HR_FS_LOCK_SH ? LOCK_SH | LOCK_NB
                                    : LOCK_UN;
    int r;
    do {
        r = flock(h, op);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

static const struct hr_fs_ops posix_ops = {
    p_open, p_close,  p_pread,  p_pwrite, p_sync, p_truncate,
    p_size, p_rename, p_unlink, p_mkdir,  p_list, p_lock,
};

/* Immutable: the ops table is const and the struct holds nothing else. */
static struct hr_fs posix_fs = {&posix_ops};

struct hr_fs *hr_fs_posix(void)
{
    return &posix_fs;
}

int hr_fs_sync_dir(struct hr_fs *fs, const char *path)
{
    fs = hr_fs_or_posix(fs);
    int h = hr_fs_open(fs, path, HR_FS_DIR);
    if (h < 0) {
        return h;
    }
    int r = hr_fs_sync(fs, h, false);
    hr_fs_close(fs, h);
    return r;
}
