/*
 * intent.c: the truncation intent, log/TRUNCATE (docs/storage-format.md, "Truncation intent").
 *
 * Why. Cutting a suffix of the log is not atomic on disk. ftruncate to an offset inside a
 * page zeroes the rest of that page, and a crash before the fdatasync can bring back the
 * old size with that page zeroed (from the truncated file) and the later pages as they
 * were, one of them holding a sync-marked record: damage before a valid mark, which the
 * last segment's scan must call corruption (docs/storage-format.md, "Recovery rules"). ext4 in
 * data=ordered mode does exactly that when the zeroed block reaches the disk before the
 * size change commits; the simulated file system's page-subset crash (csrc/sim/simfs.h)
 * does it too. A truncation (the leader said those entries are wrong) may come back done
 * or not done, but it must never stop the node from starting.
 *
 * How. Before anything is cut, hr_log_truncate makes "every entry from index F is being
 * dropped: segments named F or later go, segment S is cut at offset O" durable in
 * log/TRUNCATE (written to TRUNCATE.tmp, fsynced, renamed, log/ fsynced: the file is whole
 * or absent). Then it cuts, then it removes the intent and fsyncs log/ before returning.
 * The completion below is idempotent, so the open that finds an intent (or hr_log_retry
 * after a failed truncation) runs it again from the start, whatever part of it had
 * reached the disk, and the scan that follows sees the cut segment as the truncation left
 * it. Bytes before O are the same in the old and in the cut file, so no mix of their
 * pages can damage them.
 *
 * Never stale. An intent on disk means a truncation has not returned (or failed and was
 * not retried): its removal is durable before hr_log_truncate returns success, and a log
 * whose truncation failed refuses every write until hr_log_retry completed it. So no entry
 * appended after a completed truncation can have been acknowledged while its intent was
 * still on disk, and completing an intent never cuts an acknowledged entry. The price is
 * paid by truncations only (two more fsyncs of log/ and one of the intent; truncation is
 * rare: conflict repair after a leader change, and the reset after an installed snapshot);
 * appends and syncs do not touch the intent, and open pays one failed open().
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl.h"

static void intent_path(const char *logdir, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", logdir, name);
}

static void encode(unsigned char *b, const struct hr__intent *t)
{
    memcpy(b, HR__INTENT_MAGIC, 4);
    hr__put32(b + 4, HR__INTENT_VERSION);
    hr__put64(b + 8, t->from);
    hr__put64(b + 16, t->seg);
    hr__put64(b + 24, t->off);
    hr__put32(b + 32, hr__crc32c(0, b, 32));
    hr__put32(b + 36, 0);
}

int hr__intent_read(struct hr_fs *fs, const char *logdir, struct hr__intent *t, bool *exists,
                    char *err, size_t errlen)
{
    char path[4200];
    intent_path(logdir, HR__INTENT_NAME, path, sizeof path);
    memset(t, 0, sizeof *t);
    /* Renamed into place only once synced: a damaged intent is corruption, not a crash. */
    static const struct hr__small_file layout = {
        HR__INTENT_MAGIC, "truncation intent", HR__INTENT_VERSION, HR__INTENT_SIZE, 32};
    unsigned char b[HR__INTENT_SIZE];
    int rc = hr__small_file_read(fs, path, "log/" HR__INTENT_NAME, &layout, b, exists, err,
                                 errlen);
    if (rc != 0 || !*exists) {
        return rc;
    }
    t->from = hr__get64(b + 8);
    t->seg = hr__get64(b + 16);
    t->off = hr__get64(b + 24);
    if (t->from == 0 || (t->seg != 0 && (t->seg >= t->from || t->off < HR__SEG_HEADER_SIZE))) {
        snprintf(err, errlen,
                 "log/%s: impossible truncation (from %" PRIu64 ", segment %" PRIu64
                 ", offset %" PRIu64 ")",
                 HR__INTENT_NAME, t->from, t->seg, t->off);
        return HR_ECORRUPT;
    }
    return 0;
}

int hr__intent_write(struct hr_fs *fs, const char *logdir, int dir_fd,
                     const struct hr__intent *t, bool *renamed, char *err, size_t errlen)
{
    char tmp[4200], path[4200];
    intent_path(logdir, HR__INTENT_TMP, tmp, sizeof tmp);
    intent_path(logdir, HR__INTENT_NAME, path, sizeof path);
    unsigned char b[HR__INTENT_SIZE];
    encode(b, t);
    const char *what;
    int r = hr__io_replace(fs, tmp, path, b, sizeof b, dir_fd, logdir, renamed, &what);
    if (r == 0) {
        return 0;
    }
    snprintf(err, errlen, "log/%s: %s: %s", *renamed ? HR__INTENT_NAME : HR__INTENT_TMP,
             what, strerror(-r));
    return hr__errno_code(-r);
}

/* Remove every segment named t->from or later, newest first (a crash in the middle leaves
 * a shorter log, and the intent is still there to finish the job). */
static int drop_segments(struct hr_fs *fs, const char *logdir, int dir_fd,
                         uint64_t from, size_t *removed, char *err, size_t errlen)
{
    uint64_t *v = NULL;
    size_t n = 0;
    int rc = hr__seg_list(fs, logdir, &v, &n, NULL, NULL, err, errlen);
    if (rc != 0) {
        return rc;
    }
    int r = 0;
    for (size_t i = n; i-- > 0 && v[i] >= from;) {
        char name[32], path[4200];
        hr__seg_name(name, sizeof name, v[i]);
        snprintf(path, sizeof path, "%s/%s", logdir, name);
        if ((r = hr_fs_unlink(fs, path)) < 0 && r != -ENOENT) {
            snprintf(err, errlen, "log/%s: unlink: %s", name, strerror(-r));
            break;
        }
        r = 0;
        (*removed)++;
    }
    free(v);
    /* The removals are durable before the kept segment is cut: otherwise a crash (once
     * the intent is gone) could bring newer segments back behind a shortened one. */
    if (r == 0 && *removed > 0 && (r = hr_fs_sync(fs, dir_fd, false)) < 0) {
        snprintf(err, errlen, "log/: fsync: %s", strerror(-r));
    }
    return r < 0 ? hr__errno_code(-r) : 0;
}

int hr__intent_complete(struct hr_fs *fs, const char *logdir, int dir_fd,
                        const struct hr__intent *t, size_t *removed, char *err, size_t errlen)
{
    *removed = 0;
    int rc = drop_segments(fs, logdir, dir_fd, t->from, removed, err, errlen);
    if (rc != 0) {
        return rc;
    }
    int r;
    if (t->seg != 0) {
        char name[32], path[4200];
        hr__seg_name(name, sizeof name, t->seg);
        snprintf(path, sizeof path, "%s/%s", logdir, name);
        int h = hr_fs_open(fs, path, HR_FS_RDWR);
        if (h < 0) {
            /* It held entry from - 1, durably, and nothing removes a segment while an
             * intent is there (compaction refuses a failed log). */
            snprintf(err, errlen, "log/%s: the segment to cut at offset %" PRIu64 ": %s",
                     name, t->off, strerror(-h));
            return h == -ENOENT ? HR_ECORRUPT : hr__errno_code(-h);
        }
        uint64_t size;
        if ((r = hr_fs_size(fs, h, &size)) < 0) {
            snprintf(err, errlen, "log/%s: %s", name, strerror(-r));
            hr_fs_close(fs, h);
            return hr__errno_code(-r);
        }
        if (size < t->off) {
            /* It was durable up to past the cut before the intent was written: cutting
             * never leaves it shorter. Extending it with zeros would hide that. */
            snprintf(err, errlen, "log/%s: %" PRIu64 " bytes, shorter than the cut at offset "
                     "%" PRIu64 " of log/%s", name, size, t->off, HR__INTENT_NAME);
            hr_fs_close(fs, h);
            return HR_ECORRUPT;
        }
        const char *what = "ftruncate";
        r = size > t->off ? hr_fs_truncate(fs, h, t->off) : 0;
        if (r == 0) {
            what = "fdatasync";
            r = hr_fs_sync(fs, h, true);
        }
        hr_fs_close(fs, h);
        if (r < 0) {
            snprintf(err, errlen, "log/%s: cut at offset %" PRIu64 ": %s: %s", name, t->off,
                     what, strerror(-r));
            return hr__errno_code(-r);
        }
    }
    char path[4200];
    intent_path(logdir, HR__INTENT_NAME, path, sizeof path);
    const char *what = "unlink";
    r = hr_fs_unlink(fs, path);
    if (r == 0 || r == -ENOENT) {
        what = "fsync log/";
        r = hr_fs_sync(fs, dir_fd, false);
    }
    if (r < 0) {
        snprintf(err, errlen, "log/%s: remove: %s: %s", HR__INTENT_NAME, what, strerror(-r));
        return hr__errno_code(-r);
    }
    return 0;
}
