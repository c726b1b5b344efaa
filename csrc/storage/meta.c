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

int hr__small_file_read(struct hr_fs *fs, const char *path, const char *label,
                        const struct hr__small_file *f, unsigned char *b, bool *exists,
                        char *err, size_t errlen)
{
    *exists = false;
    int h = hr_fs_open(fs, path, HR_FS_READ);
    if (h < 0) {
        if (h == -ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "%s: %s", label, strerror(-h));
        return HR_EIO;
    }
    unsigned char buf[65]; /* one byte more than the largest layout: a longer file shows */
    size_t want = f->size + 1 <= sizeof buf ? f->size + 1 : sizeof buf;
    ssize_t r = hr_fs_pread(fs, h, buf, want, 0);
    hr_fs_close(fs, h);
    if (r < 0) {
        snprintf(err, errlen, "%s: %s", label, strerror((int)-r));
        return HR_EIO;
    }
    if ((size_t)r != f->size || memcmp(buf, f->magic, 4) != 0) {
        snprintf(err, errlen, "%s: not a %s (size %zd)", label, f->what, r);
        return HR_ECORRUPT;
    }
    if (hr__get32(buf + f->crc_off) != hr__crc32c(0, buf, f->crc_off)) {
        snprintf(err, errlen, "%s: bad checksum", label);
        return HR_ECORRUPT;
    }
    if (hr__get32(buf + 4) != f->version) {
        snprintf(err, errlen, "%s: format version %u, this build reads %u", label,
                 hr__get32(buf + 4), f->version);
        return HR_ECORRUPT;
    }
    memcpy(b, buf, f->size);
    *exists = true;
    return 0;
}

int hr__meta_read(struct hr_fs *fs, const char *dir, struct hr__meta *m, bool *exists,
                  char *err, size_t errlen)
{
    static const struct hr__small_file layout = {
        HR__META_MAGIC, "meta file", HR_LOG_FORMAT_VERSION, HR__META_SIZE, 24};
    char path[4096];
    snprintf(path, sizeof path, "%s/meta", dir);
    memset(m, 0, sizeof *m);
    m->version = HR_LOG_FORMAT_VERSION;
    unsigned char b[HR__META_SIZE];
    int rc = hr__small_file_read(fs, path, path, &layout, b, exists, err, errlen);
    if (rc != 0 || !*exists) {
        return rc;
    }
    m->term = hr__get64(b + 8);
    m->vote = hr__get64(b + 16);
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
