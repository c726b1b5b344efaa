/*
 * meta.c: term and vote. A vote must survive a crash (a node that forgets it may vote
 * twice in a term), and the file must never be seen half-written, so it is replaced, never
 * overwritten: write meta.tmp, fsync it, rename over meta, fsync the directory (the rename
 * is only durable once the directory is). A leftover meta.tmp is an interrupted replace:
 * the old meta is still whole and wins.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "impl.h"

int hr__meta_read(struct hr_fs *fs, const char *dir, struct hr__meta *m, bool *exists,
                  char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/meta", dir);
    memset(m, 0, sizeof *m);
    m->version = HR_LOG_FORMAT_VERSION;
    *exists = false;
    int h = hr_fs_open(fs, path, HR_FS_READ);
    if (h < 0) {
        if (h == -ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "%s: %s", path, strerror(-h));
        return HR_EIO;
    }
    unsigned char b[HR__META_SIZE + 1];
    ssize_t r = hr_fs_pread(fs, h, b, sizeof b, 0);
    hr_fs_close(fs, h);
    if (r < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror((int)-r));
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

int hr__meta_write(struct hr_fs *fs, const char *dir, const struct hr__meta *m,
                   char *err, size_t errlen)
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

    const char *what;
    bool renamed;
    int r = hr__io_replace(fs, tmp, path, b, sizeof b, -1, dir, &renamed, &what);
    if (r == 0) {
        return 0;
    }
    snprintf(err, errlen, "%s: %s: %s", renamed ? path : tmp, what, strerror(-r));
    return hr__errno_code(-r);
}
