/*
 * lock.c: one process per data directory. flock() rather than fcntl() locks because a
 * flock belongs to the open file description: a second open in the same process conflicts
 * too (fcntl locks would silently succeed there), and the kernel drops it when the process
 * dies, even by SIGKILL, so a crash never leaves a stale lock. The file holds the pid of
 * the holder so the refusal can name it. (struct hr_fs's lock has these semantics, fs.h.)
 */
#define _GNU_SOURCE /* getpid under -std=c11 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "impl.h"

static long read_pid(struct hr_fs *fs, int h)
{
    char buf[32];
    ssize_t r = hr_fs_pread(fs, h, buf, sizeof buf - 1, 0);
    if (r <= 0) {
        return 0;
    }
    buf[r] = '\0';
    return strtol(buf, NULL, 10);
}

int hr__lock_dir(struct hr_fs *fs, const char *dir, int *out, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int h = hr_fs_open(fs, path, HR_FS_RDWR | HR_FS_CREATE);
    if (h < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-h));
        return hr__errno_code(-h);
    }
    int r = hr_fs_lock(fs, h, HR_FS_LOCK_EX);
    if (r < 0) {
        if (r == -EWOULDBLOCK) {
            long holder = read_pid(fs, h);
            /* flock conflicts within one process too (see above): then the pid in the
             * file is ours, and naming it would send the operator hunting for a process
             * that is the one they started. */
            if (holder == (long)getpid()) {
                snprintf(err, errlen, "data dir %s is already open in this process "
                                      "(another node or storage handle of this process "
                                      "uses it)", dir);
            } else {
                snprintf(err, errlen, "data dir %s is locked by pid %ld", dir, holder);
            }
            hr_fs_close(fs, h);
            return HR_EBUSY;
        }
        snprintf(err, errlen, "%s: flock: %s", path, strerror(-r));
        hr_fs_close(fs, h);
        return HR_EIO;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    /* The pid is a courtesy for the error message: failing to write it is not fatal. */
    if (hr_fs_truncate(fs, h, 0) == 0) {
        (void)hr_fs_pwrite(fs, h, pid, (size_t)n, 0);
    }
    *out = h;
    return 0;
}

int hr__lock_probe(struct hr_fs *fs, const char *dir, long *pid, bool *held)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    *pid = 0;
    *held = false;
    int h = hr_fs_open(fs, path, HR_FS_READ);
    if (h < 0) {
        return h == -ENOENT ? 0 : HR_EIO;
    }
    *pid = read_pid(fs, h);
    int r = hr_fs_lock(fs, h, HR_FS_LOCK_SH);
    if (r < 0) {
        *held = (r == -EWOULDBLOCK);
    } else {
        hr_fs_lock(fs, h, HR_FS_UNLOCK);
    }
    hr_fs_close(fs, h);
    return 0;
}
