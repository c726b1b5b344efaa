/*
 * lock.c: one process per data directory. flock() rather than fcntl() locks because a
 * flock belongs to the open file description: a second open in the same process conflicts
 * too (fcntl locks would silently succeed there), and the kernel drops it when the process
 * dies, even by SIGKILL, so a crash never leaves a stale lock. The file holds the pid of
 * the holder so the refusal can name it.
 */
#define _GNU_SOURCE /* pread, fdatasync, flock, O_CLOEXEC under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "impl.h"

static long read_pid(int fd)
{
    char buf[32];
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    if (r <= 0) {
        return 0;
    }
    buf[r] = '\0';
    return strtol(buf, NULL, 10);
}

int hr__lock_dir(const char *dir, int *out, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return hr__errno_code(e);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            long holder = read_pid(fd);
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
            close(fd);
            return HR_EBUSY;
        }
        snprintf(err, errlen, "%s: flock: %s", path, strerror(e));
        close(fd);
        return HR_EIO;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    /* The pid is a courtesy for the error message: failing to write it is not fatal. */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n) {
        (void)0;
    }
    *out = fd;
    return 0;
}

int hr__lock_probe(const char *dir, long *pid, bool *held)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    *pid = 0;
    *held = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : HR_EIO;
    }
    *pid = read_pid(fd);
    if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
        *held = (errno == EWOULDBLOCK);
    } else {
        flock(fd, LOCK_UN);
    }
    close(fd);
    return 0;
}
