/*
 * io.c: the system calls of the write path, with a fault-injection hook so specs can make
 * the next N writes or syncs fail with ENOSPC or EIO where no small filesystem can be
 * mounted. Short writes are retried; EINTR is retried.
 */
#define _GNU_SOURCE /* pread, fdatasync, flock, O_CLOEXEC under -std=c11 */
#include <errno.h>
#include <unistd.h>

#include "impl.h"

int hr__errno_code(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return HR_ENOSPACE;
    case ENOMEM:
        return HR_ENOMEM;
    default:
        /* EIO, EROFS, EBADF...: the device or filesystem will not take the write. */
        return HR_EIO;
    }
}

ssize_t hr__io_pwrite(struct hr__io *io, int fd, const void *buf, size_t len, off_t off)
{
    if (io != NULL && io->fail_writes > 0) {
        io->fail_writes--;
        /* Write part of it first, as a filling disk does: rollback must cope. */
        if (len > 1) {
            ssize_t r = pwrite(fd, buf, len / 2, off);
            (void)r;
        }
        errno = io->write_errno;
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        done += (size_t)r;
    }
    return (ssize_t)done;
}

int hr__io_sync(struct hr__io *io, int fd, bool data_only)
{
    if (io != NULL && io->fail_syncs > 0) {
        io->fail_syncs--;
        errno = io->sync_errno;
        return -1;
    }
    int r;
    do {
        r = data_only ? fdatasync(fd) : fsync(fd);
    } while (r < 0 && errno == EINTR);
    return r;
}
