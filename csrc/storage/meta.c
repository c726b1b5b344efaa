/*
 * meta.c: term and vote. A vote must survive a crash (a node that forgets it may vote
 * twice in a term), and the file must never be seen half-written, so it is replaced, never
 * overwritten: write meta.tmp, fsync it, rename over meta, fsync the directory (the rename
 * is only durable once the directory is). A leftover meta.tmp is an interrupted replace:
 * the old meta is still whole and wins.
 */
#define _GNU_SOURCE /* pread, fdatasync, flock, O_CLOEXEC under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "impl.h"

int hr__meta_read(const char *dir, struct hr__meta *m, bool *exists, char *err,
                  size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/meta", dir);
    memset(m, 0, sizeof *m);
    m->version = HR_LOG_FORMAT_VERSION;
    *exists = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return HR_EIO;
    }
    unsigned char b[HR__META_SIZE + 1];
    ssize_t r = pread(fd, b, sizeof b, 0);
    int e = errno;
    close(fd);
    if (r < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return HR_EIO;
    }
    if (r != HR__META_SIZE || memcmp(b, HR__META_MAGIC, 4) != 0) {
        snprintf(err, errlen, "%s: not a meta file (size %zd)", path, r);
        return HR_ECORRUPT;
    }
    if (hr__get32(b + 24) != hr__crc32c(0, b, 24)) {
        snprintf(err, errlen, "%s: bad checksum", path);
        return HR_ECORRUPT;
    }
    m->version = hr__get32(b + 4);
    if (m->version != HR_LOG_FORMAT_VERSION) {
        snprintf(err, errlen, "%s: format version %u, this build reads %u", path, m->version,
                 HR_LOG_FORMAT_VERSION);
        return HR_ECORRUPT;
    }
    m->term = hr__get64(b + 8);
    m->vote = hr__get64(b + 16);
    *exists = true;
    return 0;
}

int hr__meta_write(const char *dir, const struct hr__meta *m, struct hr__io *io, char *err,
                   size_t errlen)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/meta.tmp", dir);
    snprintf(path, sizeof path, "%s/meta", dir);
    unsigned char b[HR__META_SIZE];
    memcpy(b, HR__META_MAGIC, 4);
    hr__put32(b + 4, HR_LOG_FORMAT_VERSION);
    hr__put64(b + 8, m->term);
    hr__put64(b + 16, m->vote);
    hr__put32(b + 24, hr__crc32c(0, b, 24));

    const char *what = "open";
    int dfd = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        goto fail;
    }
    what = "write";
    if (hr__io_pwrite(io, fd, b, sizeof b, 0) < 0) {
        goto fail;
    }
    what = "fsync";
    if (hr__io_sync(io, fd, false) < 0) {
        goto fail;
    }
    close(fd);
    fd = -1;
    what = "rename";
    if (rename(tmp, path) < 0) {
        goto fail;
    }
    what = "fsync dir";
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || hr__io_sync(io, dfd, false) < 0) {
        goto fail;
    }
    close(dfd);
    return 0;
fail: {
    int e = errno;
    if (fd >= 0) {
        close(fd);
    }
    if (dfd >= 0) {
        close(dfd);
    }
    unlink(tmp);
    snprintf(err, errlen, "%s: %s: %s", tmp, what, strerror(e));
    return hr__errno_code(e);
}
}
