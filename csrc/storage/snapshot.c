/*
 * snapshot.c: snapshot files (snapshot.h, docs/storage-format.md "Snapshot file").
 *
 * The payload's size and the checksum are in the trailer, not the header: a writer-based
 * FSM snapshot does not know its size until it ends, and a forked child writing through a
 * pipe-less file descriptor cannot go back. So a file is written strictly front to back,
 * the checksum computed on the way (hr_snap_frame_* does it for writers in other layers,
 * e.g. the Lua side of a forked snapshot). A reader checks header, trailer and the whole
 * checksum before it trusts a file (the same pass a receiver needs before it may trust
 * what came over the network).
 */
#define _GNU_SOURCE /* strdup under -std=c11 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "impl.h"
#include "../core/array.h"

#define MAGIC "HRSN"
#define TRAILER_MAGIC "HRSNTAIL"
#define FIXED_HEADER 32  /* magic, version, index, term, n voters (v1) or conf length (v2),
                          * reserved */
#define TRAILER_SIZE 20  /* payload size, crc32c, magic */
#define WBUF_SIZE (1u << 20)

static size_t header_size(uint32_t n_voters)
{
    return FIXED_HEADER + 8u * n_voters + 8; /* + header crc, reserved */
}

/* Version 2: the fixed part, conf_index, the configuration, header crc and reserved. */
static size_t header_size_v2(uint32_t conf_len)
{
    return FIXED_HEADER + 8u + conf_len + 8;
}

void hr_snap_dir(const char *data_dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/snapshots", data_dir);
}

void hr_snap_name(char *buf, size_t len, uint64_t index, uint64_t term)
{
    snprintf(buf, len, "%020" PRIu64 "-%020" PRIu64 ".snap", index, term);
}

bool hr_snap_parse_name(const char *name, uint64_t *index, uint64_t *term)
{
    if (strlen(name) != 46 || name[20] != '-' || strcmp(name + 41, ".snap") != 0) {
        return false;
    }
    uint64_t v[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const char *p = name + 21 * k;
        for (int i = 0; i < 20; i++) {
            if (p[i] < '0' || p[i] > '9') {
                return false;
            }
            v[k] = v[k] * 10 + (uint64_t)(p[i] - '0');
        }
    }
    *index = v[0];
    *term = v[1];
    return true;
}

void hr_snap_path(const char *data_dir, uint64_t index, uint64_t term, char *buf, size_t len)
{
    char name[64];
    hr_snap_name(name, sizeof name, index, term);
    snprintf(buf, len, "%s/snapshots/%s", data_dir, name);
}

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* r: the negative errno a struct hr_fs op returned. */
static int sys_err(char *err, size_t errlen, const char *what, const char *path, int r)
{
    return set_err(err, errlen, hr__errno_code(-r), "%s %s: %s", what, path, strerror(-r));
}

/* fsync dir (snapshots/) and then its parent (the data dir). snapshots/ is created on the
 * first snapshot, and nothing else fsyncs the data dir after that mkdir: without the
 * parent, a crash after the log was compacted for that first snapshot could lose the
 * directory entry of snapshots/, and the only copy of the compacted entries with it.
 * One more fsync per snapshot is cheap. */
static int sync_dir(struct hr_fs *fs, const char *dir)
{
    int r = hr_fs_sync_dir(fs, dir);
    if (r < 0) {
        return r;
    }
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash == NULL) {
        return hr_fs_sync_dir(fs, ".");
    }
    if (slash == parent) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    return hr_fs_sync_dir(fs, parent);
}

/* CRC32C of the first len bytes of handle h. */
static int checksum_file(struct hr_fs *fs, int h, uint64_t len, uint32_t *crc)
{
    unsigned char *buf = malloc(WBUF_SIZE);
    if (buf == NULL) {
        return HR_ENOMEM;
    }
    uint32_t c = 0;
    uint64_t off = 0;
    while (off < len) {
        size_t want = len - off < WBUF_SIZE ? (size_t)(len - off) : WBUF_SIZE;
        ssize_t r = hr_fs_pread(fs, h, buf, want, off);
        if (r <= 0) {
            free(buf);
            return r < 0 ? HR_EIO : HR_ECORRUPT;
        }
        c = hr__crc32c(c, buf, (size_t)r);
        off += (uint64_t)r;
    }
    free(buf);
    *crc = c;
    return 0;
}

size_t hr_snap_header_v1(unsigned char *h, uint64_t index, uint64_t term,
                         const uint64_t *voters, uint32_t n)
{
    memcpy(h, MAGIC, 4);
    hr__put32(h + 4, 1);
    hr__put64(h + 8, index);
    hr__put64(h + 16, term);
    hr__put32(h + 24, n);
    hr__put32(h + 28, 0);
    for (uint32_t i = 0; i < n; i++) {
        hr__put64(h + FIXED_HEADER + 8 * i, voters[i]);
    }
    size_t at = FIXED_HEADER + 8u * n;
    hr__put32(h + at, hr__crc32c(0, h, at));
    hr__put32(h + at + 4, 0);
    return at + 8;
}

size_t hr_snap_header(unsigned char *h, uint64_t index, uint64_t term, const void *conf,
                      uint32_t conf_len, uint64_t conf_index)
{
    memcpy(h, MAGIC, 4);
    hr__put32(h + 4, HR_SNAP_FORMAT_VERSION);
    hr__put64(h + 8, index);
    hr__put64(h + 16, term);
    hr__put32(h + 24, conf_len);
    hr__put32(h + 28, 0);
    hr__put64(h + FIXED_HEADER, conf_index);
    if (conf_len > 0) {
        memcpy(h + FIXED_HEADER + 8, conf, conf_len);
    }
    size_t at = FIXED_HEADER + 8u + conf_len;
    hr__put32(h + at, hr__crc32c(0, h, at));
    hr__put32(h + at + 4, 0);
    return at + 8;
}

/* Read the variable part of a version 2 header (after the fixed part h) into a malloc'd
 * *rest and check the header's checksum. */
static int read_v2_rest(struct hr_fs *fs, int fd, const unsigned char *h, uint32_t conf_len,
                        unsigned char **rest, char *err, size_t errlen)
{
    size_t len = header_size_v2(conf_len) - FIXED_HEADER;
    unsigned char *b = malloc(len);
    if (b == NULL) {
        return set_err(err, errlen, HR_ENOMEM, "out of memory");
    }
    ssize_t r = hr_fs_pread(fs, fd, b, len, FIXED_HEADER);
    if (r != (ssize_t)len) {
        free(b);
        return set_err(err, errlen, r < 0 ? HR_EIO : HR_ECORRUPT, "cannot read the header");
    }
    uint32_t crc = hr__crc32c(hr__crc32c(0, h, FIXED_HEADER), b, 8u + conf_len);
    if (hr__get32(b + 8 + conf_len) != crc) {
        free(b);
        return set_err(err, errlen, HR_ECORRUPT, "header: bad checksum");
    }
    *rest = b;
    return 0;
}

void hr_snap_trailer(unsigned char *t, uint64_t payload, uint32_t crc)
{
    hr__put64(t, payload);
    hr__put32(t + 8, hr__crc32c(crc, t, 8));
    memcpy(t + 12, TRAILER_MAGIC, 8);
}

int hr_snap_read_header(struct hr_fs *fs, int fd, uint64_t size, struct hr_snap_info *info,
                        char *err, size_t errlen)
{
    fs = hr_fs_or_posix(fs);
    unsigned char h[HR_SNAP_MAX_HEADER_V1];
    unsigned char t[TRAILER_SIZE];
    if (size < FIXED_HEADER + 8 + TRAILER_SIZE) {
        return set_err(err, errlen, HR_ECORRUPT, "file of %" PRIu64 " bytes is too short",
                       size);
    }
    ssize_t r = hr_fs_pread(fs, fd, h, FIXED_HEADER, 0);
    if (r != FIXED_HEADER) {
        return set_err(err, errlen, r < 0 ? HR_EIO : HR_ECORRUPT, "cannot read the header");
    }
    if (memcmp(h, MAGIC, 4) != 0) {
        return set_err(err, errlen, HR_ECORRUPT, "bad magic (not a snapshot file)");
    }
    uint32_t version = hr__get32(h + 4);
    if (version != 1 && version != 2) {
        return set_err(err, errlen, HR_ECORRUPT, "unknown format version %" PRIu32, version);
    }
    uint32_t n = hr__get32(h + 24);
    size_t hs;
    if (version == 2) {
        if (n > HR_SNAP_MAX_CONF) {
            return set_err(err, errlen, HR_ECORRUPT, "header: a configuration of %" PRIu32
                           " bytes", n);
        }
        hs = header_size_v2(n);
        if (size < hs + TRAILER_SIZE) {
            return set_err(err, errlen, HR_ECORRUPT, "file shorter than its header");
        }
        unsigned char *rest;
        int rc = read_v2_rest(fs, fd, h, n, &rest, err, errlen);
        if (rc != 0) {
            return rc;
        }
        memset(info, 0, sizeof *info);
        info->conf_index = hr__get64(rest);
        free(rest);
        info->conf_len = n;
        info->conf_offset = FIXED_HEADER + 8;
    } else {
        if (n > HR_SNAP_MAX_VOTERS) {
            return set_err(err, errlen, HR_ECORRUPT, "header: %" PRIu32 " voters", n);
        }
        hs = header_size(n);
        if (size < hs + TRAILER_SIZE) {
            return set_err(err, errlen, HR_ECORRUPT, "file shorter than its header");
        }
        r = hr_fs_pread(fs, fd, h + FIXED_HEADER, hs - FIXED_HEADER, FIXED_HEADER);
        if (r != (ssize_t)(hs - FIXED_HEADER)) {
            return set_err(err, errlen, r < 0 ? HR_EIO : HR_ECORRUPT, "cannot read the header");
        }
        size_t at = FIXED_HEADER + 8u * n;
        if (hr__get32(h + at) != hr__crc32c(0, h, at)) {
            return set_err(err, errlen, HR_ECORRUPT, "header: bad checksum");
        }
        memset(info, 0, sizeof *info);
        info->n_voters = n;
        for (uint32_t i = 0; i < n; i++) {
            info->voters[i] = hr__get64(h + FIXED_HEADER + 8 * i);
        }
    }
    info->version = version;
    info->index = hr__get64(h + 8);
    info->term = hr__get64(h + 16);
    info->payload_offset = hs;
    if (hr_fs_pread(fs, fd, t, TRAILER_SIZE, size - TRAILER_SIZE) != TRAILER_SIZE ||
        memcmp(t + 12, TRAILER_MAGIC, 8) != 0) {
        return set_err(err, errlen, HR_ECORRUPT, "no trailer (torn or truncated)");
    }
    info->payload_size = hr__get64(t);
    info->file_size = size;
    if (info->payload_size != size - hs - TRAILER_SIZE) {
        return set_err(err, errlen, HR_ECORRUPT,
                       "size: trailer says %" PRIu64 " payload bytes, file has %" PRIu64,
                       info->payload_size, size - hs - TRAILER_SIZE);
    }
    return 0;
}

/* Header, trailer and checksum of an open file. */
static int verify_fd(struct hr_fs *fs, int fd, struct hr_snap_info *info, char *err,
                     size_t errlen)
{
    uint64_t size;
    int rc = hr_fs_size(fs, fd, &size);
    if (rc < 0) {
        return set_err(err, errlen, HR_EIO, "stat: %s", strerror(-rc));
    }
    rc = hr_snap_read_header(fs, fd, size, info, err, errlen);
    if (rc != 0) {
        return rc;
    }
    unsigned char t[TRAILER_SIZE];
    uint64_t covered = info->file_size - TRAILER_SIZE + 8; /* up to the crc field */
    uint32_t crc;
    if (hr_fs_pread(fs, fd, t, TRAILER_SIZE, info->file_size - TRAILER_SIZE) != TRAILER_SIZE) {
        return set_err(err, errlen, HR_EIO, "cannot read the trailer");
    }
    if ((rc = checksum_file(fs, fd, covered, &crc)) != 0) {
        return set_err(err, errlen, rc, "cannot read the payload");
    }
    if (crc != hr__get32(t + 8)) {
        return set_err(err, errlen, HR_ECORRUPT, "bad checksum");
    }
    return 0;
}

int hr_snap_read_conf(struct hr_fs *fs, const char *path, const struct hr_snap_info *info,
                      uint8_t **conf, char *err, size_t errlen)
{
    *conf = NULL;
    if (info->version < 2 || info->conf_len == 0) {
        return 0;
    }
    fs = hr_fs_or_posix(fs);
    int fd = hr_fs_open(fs, path, HR_FS_READ);
    if (fd < 0) {
        return sys_err(err, errlen, "open", path, fd);
    }
    unsigned char h[FIXED_HEADER];
    unsigned char *rest = NULL;
    int rc = 0;
    if (hr_fs_pread(fs, fd, h, FIXED_HEADER, 0) != FIXED_HEADER ||
        hr__get32(h + 24) != info->conf_len) {
        rc = set_err(err, errlen, HR_ECORRUPT, "%s: the header changed", path);
    } else {
        rc = read_v2_rest(fs, fd, h, info->conf_len, &rest, err, errlen);
    }
    hr_fs_close(fs, fd);
    if (rc != 0) {
        return rc;
    }
    /* The configuration is the tail of rest's first part: move it to the front. */
    memmove(rest, rest + 8, info->conf_len);
    *conf = rest;
    return 0;
}

int hr_snap_verify(struct hr_fs *fs, const char *path, struct hr_snap_info *info, char *err,
                   size_t errlen)
{
    fs = hr_fs_or_posix(fs);
    int fd = hr_fs_open(fs, path, HR_FS_READ);
    if (fd < 0) {
        return sys_err(err, errlen, "open", path, fd);
    }
    int rc = verify_fd(fs, fd, info, err, errlen);
    hr_fs_close(fs, fd);
    return rc;
}

/* ---- writer ---- */

struct hr_snap_writer {
    struct hr_fs *fs;
    int fd;
    char *dir;   /* data_dir/snapshots */
    char *tmp, *final;
    uint64_t payload, off;
    uint32_t crc;
    unsigned char *buf;
    size_t blen;
    int failed;
    char err[512];
};

static void writer_free(struct hr_snap_writer *w, bool unlink_tmp)
{
    if (w->fd >= 0) {
        hr_fs_close(w->fs, w->fd);
    }
    if (unlink_tmp && w->tmp != NULL) {
        hr_fs_unlink(w->fs, w->tmp);
    }
    free(w->dir);
    free(w->tmp);
    free(w->final);
    free(w->buf);
    free(w);
}

static char *path_join(const char *a, const char *b, const char *suffix)
{
    size_t n = strlen(a) + strlen(b) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s/%s%s", a, b, suffix);
    }
    return p;
}

static int ensure_dir(struct hr_fs *fs, const char *dir, char *err, size_t errlen)
{
    int r = hr_fs_mkdir(fs, dir);
    if (r < 0 && r != -EEXIST) {
        return sys_err(err, errlen, "mkdir", dir, r);
    }
    return 0;
}

static int writer_flush(struct hr_snap_writer *w)
{
    if (w->blen == 0) {
        return 0;
    }
    int r = hr_fs_pwrite(w->fs, w->fd, w->buf, w->blen, w->off);
    if (r < 0) {
        w->failed = hr__errno_code(-r);
        snprintf(w->err, sizeof w->err, "write %s: %s", w->tmp, strerror(-r));
        return w->failed;
    }
    w->off += w->blen;
    w->blen = 0;
    return 0;
}

/* Buffer bytes of the file (header, payload or trailer) and checksum them. */
static int writer_put(struct hr_snap_writer *w, const void *data, size_t len)
{
    const unsigned char *p = data;
    w->crc = hr__crc32c(w->crc, p, len);
    while (len > 0) {
        size_t n = WBUF_SIZE - w->blen < len ? WBUF_SIZE - w->blen : len;
        memcpy(w->buf + w->blen, p, n);
        w->blen += n;
        p += n;
        len -= n;
        if (w->blen == WBUF_SIZE && writer_flush(w) != 0) {
            return w->failed;
        }
    }
    return 0;
}

/* Create dir/<name of index, term><suffix> for writing, making data_dir/snapshots if needed:
 * its directory, its path and the snapshot's final path are malloc'd into *dirp, *tmp and
 * *final (the caller frees them, also on failure), the handle goes to *fd (-1 on failure).
 * Shared by the writer (".tmp") and the receiver (".recv"). */
static int create_tmp(struct hr_fs *fs, const char *data_dir, uint64_t index, uint64_t term,
                      const char *suffix, char **dirp, char **tmp, char **final, int *fd,
                      char *err, size_t errlen)
{
    char name[64], dir[4096];
    *fd = -1;
    hr_snap_dir(data_dir, dir, sizeof dir);
    hr_snap_name(name, sizeof name, index, term);
    *dirp = strdup(dir);
    *tmp = path_join(dir, name, suffix);
    *final = path_join(dir, name, "");
    if (*dirp == NULL || *tmp == NULL || *final == NULL) {
        return set_err(err, errlen, HR_ENOMEM, "out of memory");
    }
    int rc = ensure_dir(fs, dir, err, errlen);
    if (rc != 0) {
        return rc;
    }
    int h = hr_fs_open(fs, *tmp, HR_FS_RDWR | HR_FS_CREATE | HR_FS_TRUNC);
    if (h < 0) {
        return sys_err(err, errlen, "create", *tmp, h);
    }
    *fd = h;
    return 0;
}

int hr_snap_writer_open(struct hr_fs *fs, const char *data_dir, uint64_t index, uint64_t term,
                        const uint64_t *voters, size_t n_voters, struct hr_snap_writer **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    struct hr_server sv[HR_MAX_NODES];
    if (n_voters > HR_MAX_NODES) {
        return set_err(err, errlen, HR_EINVAL, "snapshot: bad index, term or voters");
    }
    for (size_t i = 0; i < n_voters; i++) {
        sv[i] = (struct hr_server){.id = voters[i], .voter = true};
    }
    struct hr_blob *conf = NULL;
    if (n_voters > 0 && hr_conf_encode(sv, n_voters, &conf) != 0) {
        return set_err(err, errlen, HR_EINVAL, "snapshot: bad index, term or voters");
    }
    int rc = hr_snap_writer_open_conf(fs, data_dir, index, term,
                                      conf != NULL ? conf->data : NULL, hr_blob_len(conf), 0,
                                      out, err, errlen);
    hr_blob_release(conf);
    return rc;
}

int hr_snap_writer_open_conf(struct hr_fs *fs, const char *data_dir, uint64_t index,
                             uint64_t term, const void *conf, size_t conf_len,
                             uint64_t conf_index, struct hr_snap_writer **out, char *err,
                             size_t errlen)
{
    *out = NULL;
    if (conf_len > HR_SNAP_MAX_CONF || index == 0 || term == 0) {
        return set_err(err, errlen, HR_EINVAL, "snapshot: bad index, term or configuration");
    }
    struct hr_snap_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return set_err(err, errlen, HR_ENOMEM, "out of memory");
    }
    w->fd = -1;
    w->fs = hr_fs_or_posix(fs);
    w->buf = malloc(WBUF_SIZE);
    int rc = w->buf == NULL ? set_err(err, errlen, HR_ENOMEM, "out of memory")
                            : create_tmp(w->fs, data_dir, index, term, ".tmp", &w->dir, &w->tmp,
                                         &w->final, &w->fd, err, errlen);
    if (rc != 0) {
        writer_free(w, false);
        return rc;
    }
    unsigned char *h = malloc(header_size_v2((uint32_t)conf_len));
    if (h == NULL) {
        writer_free(w, true);
        return set_err(err, errlen, HR_ENOMEM, "out of memory");
    }
    size_t hs = hr_snap_header(h, index, term, conf, (uint32_t)conf_len, conf_index);
    writer_put(w, h, hs);
    free(h);
    *out = w;
    return 0;
}

int hr_snap_writer_write(struct hr_snap_writer *w, const void *data, size_t len)
{
    if (w->failed) {
        return w->failed;
    }
    w->payload += len;
    return writer_put(w, data, len);
}

const char *hr_snap_writer_errmsg(const struct hr_snap_writer *w)
{
    return w->err;
}

void hr_snap_writer_abort(struct hr_snap_writer *w)
{
    if (w != NULL) {
        writer_free(w, true);
    }
}

int hr_snap_writer_finish(struct hr_snap_writer *w, uint64_t *file_size, char *err,
                          size_t errlen)
{
    unsigned char t[TRAILER_SIZE];
    hr_snap_trailer(t, w->payload, w->crc);
    int rc = w->failed;
    if (rc == 0) {
        rc = writer_put(w, t, TRAILER_SIZE);
    }
    if (rc == 0) {
        rc = writer_flush(w);
    }
    int r = 0;
    if (rc != 0) {
        set_err(err, errlen, rc, "%s", w->err);
    } else if ((r = hr_fs_sync(w->fs, w->fd, false)) < 0) {
        rc = sys_err(err, errlen, "fsync", w->tmp, r);
    } else if ((r = hr_fs_rename(w->fs, w->tmp, w->final)) < 0) {
        rc = sys_err(err, errlen, "rename", w->tmp, r);
    } else if ((r = sync_dir(w->fs, w->dir)) < 0) {
        /* Renamed but maybe not durable: the caller must not drop the log for it. */
        rc = sys_err(err, errlen, "fsync", w->dir, r);
        hr_fs_unlink(w->fs, w->final);
    }
    if (rc == 0 && file_size != NULL) {
        *file_size = w->off;
    }
    writer_free(w, rc != 0);
    return rc;
}

int hr_snap_commit(struct hr_fs *fs, const char *data_dir, const char *tmp_path,
                   uint64_t index, uint64_t term, struct hr_snap_info *info, char *err,
                   size_t errlen)
{
    fs = hr_fs_or_posix(fs);
    char final[4200], dir[4096];
    hr_snap_path(data_dir, index, term, final, sizeof final);
    hr_snap_dir(data_dir, dir, sizeof dir);
    int fd = hr_fs_open(fs, tmp_path, HR_FS_READ);
    if (fd < 0) {
        return sys_err(err, errlen, "open", tmp_path, fd);
    }
    uint64_t size;
    int rc = hr_fs_size(fs, fd, &size) < 0 ? HR_EIO
                                            : hr_snap_read_header(fs, fd, size, info, err, errlen);
    hr_fs_close(fs, fd);
    if (rc == 0 && (info->index != index || info->term != term)) {
        rc = set_err(err, errlen, HR_ECORRUPT, "%s: not the snapshot of index %" PRIu64,
                     tmp_path, index);
    }
    if (rc != 0) {
        return rc;
    }
    int r = hr_fs_rename(fs, tmp_path, final);
    if (r < 0) {
        return sys_err(err, errlen, "rename", tmp_path, r);
    }
    if ((r = sync_dir(fs, dir)) < 0) {
        rc = sys_err(err, errlen, "fsync", dir, r);
        hr_fs_unlink(fs, final);
        return rc;
    }
    return 0;
}

/* ---- listing ---- */

struct snap_name {
    uint64_t index, term;
    char name[64];
};

static int cmp_newest_first(const void *a, const void *b)
{
    const struct snap_name *x = a, *y = b;
    if (x->index != y->index) {
        return x->index < y->index ? 1 : -1;
    }
    return x->term < y->term ? 1 : x->term > y->term ? -1 : 0;
}

static bool is_temp(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && strcmp(name + n - 4, ".tmp") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".recv") == 0);
}

struct list_ctx {
    struct snap_name *v;
    size_t cnt, cap;
    void (*tmp_cb)(void *arg, const char *name);
    void *arg;
};

static int list_one(void *arg, const char *name)
{
    struct list_ctx *c = arg;
    struct snap_name s;
    if (hr_snap_parse_name(name, &s.index, &s.term)) {
        struct snap_name *p = hr_array_grow(c->v, &c->cap, c->cnt + 1, sizeof *p, 8);
        if (p == NULL) {
            return -ENOMEM;
        }
        c->v = p;
        memcpy(s.name, name, 47); /* a parsed name is 46 characters */
        c->v[c->cnt++] = s;
    } else if (c->tmp_cb != NULL && is_temp(name)) {
        c->tmp_cb(c->arg, name);
    }
    return 0;
}

/* The .snap files of dir, newest first; temporary files reported through tmp_cb. */
static int list_snaps(struct hr_fs *fs, const char *dir, struct snap_name **out, size_t *n,
                      void (*tmp_cb)(void *arg, const char *name), void *arg)
{
    *out = NULL;
    *n = 0;
    struct list_ctx c = {NULL, 0, 0, tmp_cb, arg};
    int r = hr_fs_list(fs, dir, list_one, &c);
    if (r < 0) {
        free(c.v);
        return r == -ENOENT ? 0 : r == -ENOMEM ? HR_ENOMEM : HR_EIO;
    }
    if (c.cnt > 1) {
        qsort(c.v, c.cnt, sizeof *c.v, cmp_newest_first);
    }
    *out = c.v;
    *n = c.cnt;
    return 0;
}

struct find_ctx {
    char *info;
    size_t infolen;
};

static void report_tmp(void *arg, const char *name)
{
    struct find_ctx *c = arg;
    hr__add_info(c->info, c->infolen,
                 "snapshots/%s: unfinished snapshot (interrupted write or transfer) ignored", name);
}

int hr_snap_find(struct hr_fs *fs, const char *data_dir, struct hr_snap_info *out,
                 bool *found, char *info, size_t infolen, char *err, size_t errlen)
{
    fs = hr_fs_or_posix(fs);
    char dir[4096];
    hr_snap_dir(data_dir, dir, sizeof dir);
    *found = false;
    struct find_ctx fc = {info, infolen};
    struct snap_name *v;
    size_t n;
    int rc = list_snaps(fs, dir, &v, &n, report_tmp, &fc);
    if (rc != 0) {
        return set_err(err, errlen, rc, "%s: cannot list", dir);
    }
    for (size_t i = 0; i < n && !*found; i++) {
        char path[4200], why[256];
        snprintf(path, sizeof path, "%s/%s", dir, v[i].name);
        rc = hr_snap_verify(fs, path, out, why, sizeof why);
        if (rc == 0 && (out->index != v[i].index || out->term != v[i].term)) {
            snprintf(why, sizeof why, "header says index %" PRIu64 " term %" PRIu64,
                     out->index, out->term);
            rc = HR_ECORRUPT;
        }
        if (rc == HR_ENOMEM) {
            free(v);
            return set_err(err, errlen, rc, "out of memory");
        }
        if (rc != 0) {
            hr__add_info(info, infolen, "snapshots/%s: %s; skipped (kept for inspection)",
                         v[i].name, why);
            continue;
        }
        *found = true;
    }
    free(v);
    return 0;
}

struct prune_ctx {
    uint64_t index, term;
    char (*names)[64];
    size_t cnt, cap;
};

/* Unfinished files of older snapshots can never be finished any more. */
static int collect_stale_tmp(void *arg, const char *name)
{
    struct prune_ctx *c = arg;
    char base[64];
    uint64_t i, t;
    if (!is_temp(name) || strlen(name) < 46 || strlen(name) >= 64) {
        return 0;
    }
    snprintf(base, sizeof base, "%.46s", name);
    if (!hr_snap_parse_name(base, &i, &t) || !(i < c->index || (i == c->index && t < c->term))) {
        return 0;
    }
    char(*p)[64] = hr_array_grow(c->names, &c->cap, c->cnt + 1, sizeof *p, 8);
    if (p == NULL) {
        return -ENOMEM;
    }
    c->names = p;
    snprintf(c->names[c->cnt++], 64, "%s", name);
    return 0;
}

int hr_snap_prune(struct hr_fs *fs, const char *data_dir, uint64_t index, uint64_t term)
{
    fs = hr_fs_or_posix(fs);
    char dir[4096];
    hr_snap_dir(data_dir, dir, sizeof dir);
    struct snap_name *v;
    size_t n;
    if (list_snaps(fs, dir, &v, &n, NULL, NULL) != 0) {
        return 0;
    }
    int removed = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].index < index || (v[i].index == index && v[i].term < term)) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", dir, v[i].name);
            removed += hr_fs_unlink(fs, path) == 0;
        }
    }
    free(v);
    /* Collected first, removed after: the listing is not changed under its own feet. */
    struct prune_ctx c = {index, term, NULL, 0, 0};
    hr_fs_list(fs, dir, collect_stale_tmp, &c);
    for (size_t i = 0; i < c.cnt; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, c.names[i]);
        removed += hr_fs_unlink(fs, path) == 0;
    }
    free(c.names);
    if (removed > 0) {
        sync_dir(fs, dir);
    }
    return removed;
}

/* ---- receiver ---- */

struct hr_snap_recv {
    struct hr_fs *fs;
    int fd;
    char *dir, *tmp, *final;
    uint64_t index, term, size;
    bool finished;
};

int hr_snap_recv_open(struct hr_fs *fs, const char *data_dir, uint64_t index, uint64_t term,
                      struct hr_snap_recv **out, char *err, size_t errlen)
{
    *out = NULL;
    struct hr_snap_recv *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return set_err(err, errlen, HR_ENOMEM, "out of memory");
    }
    r->fd = -1;
    r->fs = hr_fs_or_posix(fs);
    int rc = create_tmp(r->fs, data_dir, index, term, ".recv", &r->dir, &r->tmp, &r->final,
                        &r->fd, err, errlen);
    if (rc != 0) {
        goto fail;
    }
    r->index = index;
    r->term = term;
    *out = r;
    return 0;
fail:
    free(r->dir);
    free(r->tmp);
    free(r->final);
    free(r);
    return rc;
}

uint64_t hr_snap_recv_index(const struct hr_snap_recv *r)
{
    return r->index;
}

uint64_t hr_snap_recv_term(const struct hr_snap_recv *r)
{
    return r->term;
}

uint64_t hr_snap_recv_size(const struct hr_snap_recv *r)
{
    return r->size;
}

int hr_snap_recv_write(struct hr_snap_recv *r, uint64_t offset, const void *data, size_t len,
                       char *err, size_t errlen)
{
    if (r->finished || offset != r->size) {
        return set_err(err, errlen, HR_EINVAL, "chunk at %" PRIu64 ", expected %" PRIu64,
                       offset, r->size);
    }
    int w = len > 0 ? hr_fs_pwrite(r->fs, r->fd, data, len, offset) : 0;
    if (w < 0) {
        /* Unknown how much landed: the file is cut back to what we acknowledge. */
        (void)hr_fs_truncate(r->fs, r->fd, r->size);
        return sys_err(err, errlen, "write", r->tmp, w);
    }
    r->size += len;
    return 0;
}

int hr_snap_recv_finish(struct hr_snap_recv *r, struct hr_snap_info *info, char *err,
                        size_t errlen)
{
    char why[256];
    int rc = verify_fd(r->fs, r->fd, info, why, sizeof why);
    if (rc == 0 && (info->index != r->index || info->term != r->term)) {
        snprintf(why, sizeof why, "header says index %" PRIu64 " term %" PRIu64, info->index,
                 info->term);
        rc = HR_ECORRUPT;
    }
    int e = 0;
    if (rc != 0) {
        set_err(err, errlen, rc, "received snapshot %s: %s", r->final, why);
    } else if ((e = hr_fs_sync(r->fs, r->fd, false)) < 0) {
        rc = sys_err(err, errlen, "fsync", r->tmp, e);
    } else if ((e = hr_fs_rename(r->fs, r->tmp, r->final)) < 0) {
        rc = sys_err(err, errlen, "rename", r->tmp, e);
    } else if ((e = sync_dir(r->fs, r->dir)) < 0) {
        rc = sys_err(err, errlen, "fsync", r->dir, e);
        hr_fs_unlink(r->fs, r->final);
    } else {
        r->finished = true;
    }
    if (rc != 0) {
        hr_fs_unlink(r->fs, r->tmp);
        r->size = 0;
    }
    return rc;
}

void hr_snap_recv_free(struct hr_snap_recv *r)
{
    if (r == NULL) {
        return;
    }
    if (r->fd >= 0) {
        hr_fs_close(r->fs, r->fd);
    }
    if (!r->finished) {
        hr_fs_unlink(r->fs, r->tmp);
    }
    free(r->dir);
    free(r->tmp);
    free(r->final);
    free(r);
}

/* ---- inspect ---- */

static void print_tmp(void *arg, const char *name)
{
    fprintf(arg, "  %s: unfinished (interrupted write or transfer; ignored by open)\n", name);
}

/* A version 2 file's configuration (hr__inspect_print_conf). */
static void print_conf(struct hr_fs *fs, const char *path, const struct hr_snap_info *info,
                       const struct hr_inspect_names *names, FILE *out)
{
    uint8_t *bytes;
    char why[256];
    if (hr_snap_read_conf(fs, path, info, &bytes, why, sizeof why) != 0) {
        fprintf(out, "unreadable: %s", why);
        return;
    }
    struct hr_blob *b = bytes != NULL ? hr_blob_new(bytes, info->conf_len) : NULL;
    free(bytes);
    if (info->conf_len > 0 && b == NULL) {
        fputs("out of memory", out);
        return;
    }
    hr__inspect_print_conf(out, names, b);
    hr_blob_release(b);
}

int hr_snap_inspect(struct hr_fs *fs, const char *data_dir, const struct hr_inspect_names *names,
                    FILE *out)
{
    fs = hr_fs_or_posix(fs);
    char dir[4096];
    hr_snap_dir(data_dir, dir, sizeof dir);
    struct snap_name *v;
    size_t n;
    int rc = list_snaps(fs, dir, &v, &n, print_tmp, out);
    if (rc != 0) {
        fprintf(out, "snapshots: cannot list %s\n", dir);
        return HR_EIO;
    }
    if (n == 0) {
        fprintf(out, "snapshots: none\n");
        free(v);
        return 0;
    }
    fprintf(out, "snapshots: %zu\n", n);
    int result = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4200], why[256];
        struct hr_snap_info info;
        snprintf(path, sizeof path, "%s/%s", dir, v[i].name);
        rc = hr_snap_verify(fs, path, &info, why, sizeof why);
        if (rc == 0 && (info.index != v[i].index || info.term != v[i].term)) {
            snprintf(why, sizeof why, "header says index %" PRIu64 " term %" PRIu64,
                     info.index, info.term);
            rc = HR_ECORRUPT;
        }
        if (rc != 0) {
            fprintf(out, "  %s: BAD: %s\n", v[i].name, why);
            result = HR_ECORRUPT;
            continue;
        }
        if (info.version < 2) {
            fprintf(out, "  %s: index %" PRIu64 " term %" PRIu64 ", %" PRIu32 " voters (",
                    v[i].name, info.index, info.term, info.n_voters);
            for (uint32_t k = 0; k < info.n_voters; k++) {
                if (k > 0) {
                    fputs(", ", out);
                }
                hr__inspect_print_id(out, names, info.voters[k]);
            }
        } else {
            fprintf(out, "  %s: index %" PRIu64 " term %" PRIu64 ", configuration of index %"
                    PRIu64 " (", v[i].name, info.index, info.term, info.conf_index);
            print_conf(fs, path, &info, names, out);
        }
        fprintf(out, "), payload %" PRIu64 " bytes, checksum ok%s\n", info.payload_size,
                i == 0 ? " (current)" : "");
    }
    free(v);
    return result;
}
