/*
 * disk_real.c: the simulated disk run by the production storage (see disk.h): each node's
 * data directory lives in its own crashing in-memory file system (simfs.h), and the steps
 * the simulator schedules run what csrc/node and csrc/storage run in production:
 *
 *   write batch    hr_log_set_meta (if it carries a hard state), hr_log_truncate,
 *                  hr_log_append, hr_log_sync: the order of csrc/storage/group.c's work_cb
 *                  for a round of one batch;
 *   install        the snapshot file through hr_snap_writer (tmp, sync, rename, directory
 *                  sync), hr_snap_prune as hr__rt_install does, THEN the log emptied as a
 *                  separate step (hr_group_reset's hr_log_truncate(first)): a crash in
 *                  between leaves what production leaves, and the restart reconciles;
 *   local snapshot hr_snap_writer_open + write at begin, hr_snap_writer_finish at done;
 *   compaction     hr_log_compact never past the snapshot's own entry
 *                  (csrc/node/runtime_snapshot.c), then hr_snap_prune;
 *   restart        hr_runtime_start's sequence: hr_log_open, hr_snap_find, the payload
 *                  read back from the file, hr_log_reconcile, recover()'s entries.
 *
 * Crash points: with probability crash_point a step arms hr_simfs_crash_at a few
 * operations ahead, so the crash lands inside it (a write, an fsync, a rename, a directory
 * sync); the step then fails and the simulator crashes the node once the event is done. A
 * crash also runs a random prefix of the batches still pending with the crash point among
 * their operations (they were in flight), then reboots the file system: its flags decide
 * what unsynced bytes survive.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../node/node_storage.h"
#include "../storage/log.h"
#include "../storage/snapshot.h"
#include "disk.h"
#include "simfs.h"
#include "../core/array.h"

#define DATA_DIR "data"
#define LOG_DIR DATA_DIR "/log"

struct hr__disk_real {
    struct hr_simfs *fs;
    struct hr_log *log;         /* NULL while the node is down */
    struct hr_snap_writer *w;   /* the local snapshot being written */
    struct hr__disk_real_options o;
    struct hr_prng prng;        /* crash points */
    hr_index_t last;            /* the log's last index when it was last open */
    bool empty;                 /* and whether it was empty */
    uint64_t crash_points, in_flight, repaired, reconciled;
    uint64_t starts;
    char err[768];
};

int hr__disk_real_init(struct hr__disk *d, const struct hr__disk_real_options *o)
{
    struct hr__disk_real *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return HR_ENOMEM;
    }
    r->fs = hr_simfs_new(o->seed, o->flags);
    if (r->fs == NULL) {
        free(r);
        return HR_ENOMEM;
    }
    r->o = *o;
    hr_prng_seed(&r->prng, o->seed ^ 0x63726173ULL);
    d->real = r;
    return 0;
}

hr_index_t hr__disk_real_last(const struct hr__disk *d)
{
    const struct hr__disk_real *r = d->real;
    hr_index_t last = r->log != NULL ? hr_log_last_index(r->log) : r->last;
    /* An emptied log may start anywhere: it continues the snapshot, as the model's does. */
    bool empty = r->log != NULL ? hr_log_first_index(r->log) > last : r->empty;
    return empty && d->snap.index > last ? d->snap.index : last;
}

void hr__disk_real_stats(const struct hr__disk *d, uint64_t out[7])
{
    const struct hr__disk_real *r = d->real;
    struct hr_simfs_stats st;
    hr_simfs_stats(r->fs, &st);
    out[0] += r->crash_points;
    out[1] += r->in_flight;
    out[2] += st.reboots;
    out[3] += st.files_reverted;
    out[4] += st.torn;
    out[5] += r->repaired;
    out[6] += r->reconciled;
}

void hr__disk_real_set_crash(struct hr__disk *d, double crash_point)
{
    d->real->o.crash_point = crash_point;
}

const char *hr__disk_real_errmsg(const struct hr__disk *d)
{
    return d->real->err;
}

/* Maybe arm a crash point within the next few mutating operations of the step. */
static void arm(struct hr__disk_real *r)
{
    if (r->o.crash_point > 0 && hr_prng_unit(&r->prng) < r->o.crash_point) {
        hr_simfs_crash_at(r->fs, hr_simfs_op_count(r->fs) + hr_prng_range(&r->prng, 1, 8));
    }
}

/* After a step: a crash point that did not hit is forgotten; one that did turns the
 * failure into HR__DISK_CRASHED. Any other failure is a finding: the message says it. */
static int step_end(struct hr__disk_real *r, int rc, const char *what, const char *msg)
{
    if (hr_simfs_crashed(r->fs)) {
        r->crash_points++;
        return HR__DISK_CRASHED;
    }
    hr_simfs_crash_at(r->fs, 0);
    if (r->log != NULL) {
        r->last = hr_log_last_index(r->log);
        r->empty = hr_log_first_index(r->log) > r->last;
    }
    if (rc != 0) {
        snprintf(r->err, sizeof r->err, "%s: %s", what, msg);
    }
    return rc;
}

static int write_batch(struct hr__disk_real *r, const struct hr__disk_batch *b)
{
    struct hr_log *l = r->log;
    int rc = 0;
    if (b->has_hs) {
        rc = hr_log_set_meta(l, b->hs.term, b->hs.vote);
    }
    if (rc == 0 && b->truncate != 0) {
        rc = hr_log_truncate(l, b->truncate);
    }
    if (rc == 0 && b->n > 0) {
        struct hr_log_entry stack[64];
        struct hr_log_entry *e = b->n <= 64 ? stack : malloc(b->n * sizeof *e);
        if (e == NULL) {
            return HR_ENOMEM;
        }
        for (size_t i = 0; i < b->n; i++) {
            const struct hr_entry *x = &b->entries[i];
            e[i].term = x->term;
            e[i].index = x->index;
            e[i].time_ms = x->time_ms;
            e[i].type = x->type;
            e[i].len = (uint32_t)hr_blob_len(x->data);
            e[i].data = x->data != NULL ? x->data->data : NULL;
        }
        rc = hr_log_append(l, e, b->n);
        if (e != stack) {
            free(e);
        }
    }
    if (rc == 0) {
        rc = hr_log_sync(l);
    }
    return rc;
}

/* Write a whole snapshot file (writer, then finish: durable under its final name). */
static int write_snap(struct hr__disk_real *r, hr_index_t index, hr_term_t term,
                      const struct hr_blob *data)
{
    struct hr_snap_writer *w;
    int rc = hr_snap_writer_open(hr_simfs_fs(r->fs), DATA_DIR, index, term, r->o.voters,
                                 r->o.n_voters, &w, r->err, sizeof r->err);
    if (rc != 0) {
        return rc;
    }
    if (hr_blob_len(data) > 0 && (rc = hr_snap_writer_write(w, data->data, data->len)) != 0) {
        snprintf(r->err, sizeof r->err, "%s", hr_snap_writer_errmsg(w));
        hr_snap_writer_abort(w);
        return rc;
    }
    uint64_t size;
    return hr_snap_writer_finish(w, &size, r->err, sizeof r->err);
}

int hr__disk_real_apply(struct hr__disk *d, const struct hr__disk_batch *b, bool armed)
{
    struct hr__disk_real *r = d->real;
    if (r->log == NULL || hr_simfs_crashed(r->fs)) {
        return HR__DISK_CRASHED;
    }
    if (armed) {
        arm(r);
    }
    int rc;
    if (b->install.index != 0) {
        rc = write_snap(r, b->install.index, b->install.term, b->install.data);
        if (rc != 0) {
            char msg[768];
            snprintf(msg, sizeof msg, "%s", r->err);
            return step_end(r, rc, "install", msg);
        }
        hr_snap_prune(hr_simfs_fs(r->fs), DATA_DIR, b->install.index, b->install.term);
        /* A separate step, as in production (node_storage.c: hr_group_reset). */
        rc = hr_log_truncate(r->log, hr_log_first_index(r->log));
    } else {
        rc = write_batch(r, b);
    }
    rc = step_end(r, rc, "storage", hr_log_errmsg(r->log));
    if (rc == 0 && b->has_hs && b->install.index == 0) {
        d->hs = b->hs;
    }
    return rc;
}

void hr__disk_real_crash_begin(struct hr__disk *d, struct hr_prng *p, size_t keep)
{
    struct hr__disk_real *r = d->real;
    if (keep > 0 && !hr_simfs_crashed(r->fs)) {
        r->in_flight++;
        /* A batch takes a handful of operations (meta: 4, a sync: 2 or more): the crash
         * lands somewhere in the first `keep`, or after them. */
        hr_simfs_crash_at(r->fs, hr_simfs_op_count(r->fs) + hr_prng_range(p, 1, 6 * keep + 1));
    }
}

void hr__disk_real_crash_end(struct hr__disk *d)
{
    struct hr__disk_real *r = d->real;
    hr_simfs_crash(r->fs);
    if (r->w != NULL) {
        hr_snap_writer_abort(r->w); /* frees it; its unlink fails like every write now */
        r->w = NULL;
    }
    if (r->log != NULL) {
        r->last = hr_log_last_index(r->log);
        r->empty = hr_log_first_index(r->log) > r->last;
        hr_log_close(r->log); /* writes nothing: unsynced appends are dropped */
        r->log = NULL;
    }
    hr_simfs_reboot(r->fs);
}

int hr__disk_real_snap_begin(struct hr__disk *d)
{
    struct hr__disk_real *r = d->real;
    if (r->log == NULL) {
        return HR__DISK_CRASHED;
    }
    arm(r);
    int rc = hr_snap_writer_open(hr_simfs_fs(r->fs), DATA_DIR, d->pend.index, d->pend.term,
                                 r->o.voters, r->o.n_voters, &r->w, r->err, sizeof r->err);
    if (rc == 0 && hr_blob_len(d->pend.data) > 0) {
        rc = hr_snap_writer_write(r->w, d->pend.data->data, d->pend.data->len);
        if (rc != 0) {
            snprintf(r->err, sizeof r->err, "%s", hr_snap_writer_errmsg(r->w));
        }
    }
    if (rc != 0 && r->w != NULL) {
        hr_snap_writer_abort(r->w);
        r->w = NULL;
    }
    char msg[768];
    snprintf(msg, sizeof msg, "%s", r->err);
    return step_end(r, rc, "snapshot", msg);
}

int hr__disk_real_snap_done(struct hr__disk *d, bool *taken)
{
    struct hr__disk_real *r = d->real;
    *taken = false;
    if (r->w == NULL) {
        return 0;
    }
    struct hr_snap_writer *w = r->w;
    r->w = NULL;
    if (d->pend.index <= d->snap.index) {
        hr_snap_writer_abort(w); /* an installed snapshot overtook it */
        return step_end(r, 0, "snapshot", "");
    }
    arm(r);
    uint64_t size;
    int rc = hr_snap_writer_finish(w, &size, r->err, sizeof r->err);
    char msg[768];
    snprintf(msg, sizeof msg, "%s", r->err);
    rc = step_end(r, rc, "snapshot", msg);
    *taken = rc == 0;
    return rc;
}

int hr__disk_real_compact(struct hr__disk *d, hr_index_t keep_from)
{
    struct hr__disk_real *r = d->real;
    if (r->log == NULL) {
        return HR__DISK_CRASHED;
    }
    arm(r);
    /* Keep the snapshot's own entry: a restart checks its term (reconcile.c). */
    hr_index_t below = keep_from < d->snap.index ? keep_from : d->snap.index;
    int rc = below > 1 ? hr_log_compact(r->log, below) : 0;
    if (rc == 0) {
        hr_snap_prune(hr_simfs_fs(r->fs), DATA_DIR, d->snap.index, d->snap.term);
    }
    return step_end(r, rc, "compact", hr_log_errmsg(r->log));
}

/* ---- records in the segment files (docs/storage-format.md), for hr_sim_corrupt ---- */

#define SEG_HEADER 24
#define REC_HEADER 36

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

struct seg_list {
    char (*names)[32];
    size_t n, cap;
};

static int add_seg(void *arg, const char *name)
{
    struct seg_list *s = arg;
    if (strlen(name) != 20 || strspn(name, "0123456789") != 20) {
        return 0;
    }
    char(*v)[32] = hr_array_grow(s->names, &s->cap, s->n + 1, sizeof *v, 8);
    if (v == NULL) {
        return HR_ENOMEM;
    }
    s->names = v;
    snprintf(s->names[s->n++], 32, "%s", name);
    return 0;
}

/* Walk every record of every segment: the range of indexes found, and the file and offset
 * of `want` (0: none wanted). Records are walked by their lengths, without checking the
 * checksums: this finds where a record is, it does not judge it. */
static void scan(struct hr__disk_real *r, hr_index_t want, hr_index_t *lo, hr_index_t *hi,
                 char *path, size_t pathlen, uint64_t *off)
{
    struct hr_fs *fs = hr_simfs_fs(r->fs);
    struct seg_list s = {NULL, 0, 0};
    *lo = UINT64_MAX;
    *hi = 0;
    *off = 0;
    hr_fs_list(fs, LOG_DIR, add_seg, &s);
    for (size_t i = 0; i < s.n; i++) {
        char p[64];
        snprintf(p, sizeof p, LOG_DIR "/%s", s.names[i]);
        int h = hr_fs_open(fs, p, HR_FS_READ);
        uint64_t size;
        if (h < 0) {
            continue;
        }
        if (hr_fs_size(fs, h, &size) == 0) {
            uint64_t at = SEG_HEADER;
            unsigned char hdr[REC_HEADER];
            while (at + REC_HEADER <= size &&
                   hr_fs_pread(fs, h, hdr, REC_HEADER, at) == REC_HEADER) {
                uint64_t len = hdr[4] | (uint64_t)hdr[5] << 8 | (uint64_t)hdr[6] << 16 |
                               (uint64_t)hdr[7] << 24;
                if (hdr[32] == 0xFF || at + REC_HEADER + len > size) {
                    break;
                }
                hr_index_t index = le64(hdr + 16);
                *lo = index < *lo ? index : *lo;
                *hi = index > *hi ? index : *hi;
                if (index == want) {
                    snprintf(path, pathlen, "%s", p);
                    *off = at;
                }
                at += REC_HEADER + len;
            }
        }
        hr_fs_close(fs, h);
    }
    free(s.names);
}

bool hr__disk_real_records(struct hr__disk *d, hr_index_t *lo, hr_index_t *hi)
{
    char path[64];
    uint64_t off;
    scan(d->real, 0, lo, hi, path, sizeof path, &off);
    return *lo <= *hi;
}

int hr__disk_real_corrupt(struct hr__disk *d, hr_index_t index)
{
    struct hr__disk_real *r = d->real;
    struct hr_fs *fs = hr_simfs_fs(r->fs);
    char path[64];
    uint64_t off;
    hr_index_t lo, hi;
    scan(r, index, &lo, &hi, path, sizeof path, &off);
    if (off == 0 || hr_simfs_crashed(r->fs)) {
        return HR_EINVAL;
    }
    /* A bit of the record's term: the record's checksum no longer matches. Synced: a
     * fault of the medium is durable. */
    int h = hr_fs_open(fs, path, HR_FS_RDWR);
    if (h < 0) {
        return HR_EINVAL;
    }
    unsigned char c;
    int rc = HR_EINVAL;
    if (hr_fs_pread(fs, h, &c, 1, off + 8) == 1) {
        c ^= 1;
        if (hr_fs_pwrite(fs, h, &c, 1, off + 8) == 0 && hr_fs_sync(fs, h, true) == 0) {
            rc = 0;
        }
    }
    hr_fs_close(fs, h);
    return rc;
}

/* ---- restart ---- */

static int read_payload(struct hr__disk_real *r, const struct hr_snap_info *si,
                        struct hr_blob **out)
{
    struct hr_fs *fs = hr_simfs_fs(r->fs);
    char path[256];
    hr_snap_path(DATA_DIR, si->index, si->term, path, sizeof path);
    int h = hr_fs_open(fs, path, HR_FS_READ);
    if (h < 0) {
        snprintf(r->err, sizeof r->err, "snapshot %.200s: open failed", path);
        return HR_EIO;
    }
    size_t size = (size_t)si->payload_size;
    unsigned char *buf = malloc(size > 0 ? size : 1);
    int rc = 0;
    if (buf == NULL) {
        rc = HR_ENOMEM;
    } else if (size > 0 && hr_fs_pread(fs, h, buf, size, si->payload_offset) != (ssize_t)size) {
        snprintf(r->err, sizeof r->err, "snapshot %.200s: short read", path);
        rc = HR_EIO;
    }
    hr_fs_close(fs, h);
    if (rc == 0 && (*out = hr_blob_new(buf, size)) == NULL) {
        rc = HR_ENOMEM;
    }
    free(buf);
    return rc;
}

/* recover() of csrc/node/runtime.c: the entries from max(first, S + 1 - trailing_logs), of
 * those up to S no more than trailing_logs_bytes (when set). */
static int read_entries(struct hr__disk *d, char *msg, size_t len)
{
    struct hr__disk_real *r = d->real;
    uint64_t first = hr_log_first_index(r->log), last = hr_log_last_index(r->log);
    hr_index_t s = d->snap.index;
    d->off = s;
    if (first > last) {
        return 0;
    }
    if (s == 0 && first != 1) {
        snprintf(msg, len, "recover: the log starts at index %" PRIu64
                 " but there is no snapshot", first);
        return HR_ECORRUPT;
    }
    uint64_t lo = first;
    if (s != 0) {
        uint64_t keep = s + 1 > r->o.trailing_logs ? s + 1 - r->o.trailing_logs : 1;
        lo = keep > lo ? keep : lo;
        if (lo > last) {
            return 0;
        }
    }
    struct hr_log_entry *le;
    size_t n;
    int rc = hr_log_read(r->log, lo, last, &le, &n);
    if (rc != 0) {
        snprintf(msg, len, "recover: %s", hr_log_errmsg(r->log));
        return rc;
    }
    size_t skip = 0;
    if (s != 0 && r->o.trailing_logs_bytes > 0) {
        skip = hr_node_storage_trailing_skip(le, n, s, r->o.trailing_logs_bytes);
    }
    n -= skip;
    struct hr_entry *e = realloc(d->log, (n > 0 ? n : 1) * sizeof *e);
    if (e == NULL) {
        free(le);
        snprintf(msg, len, "recover: out of memory");
        return HR_ENOMEM;
    }
    d->log = e;
    d->cap = n > 0 ? n : 1;
    for (size_t i = 0; i < n; i++) {
        const struct hr_log_entry *src = &le[skip + i];
        e[i].term = src->term;
        e[i].index = src->index;
        e[i].time_ms = src->time_ms;
        e[i].type = src->type;
        e[i].data = src->len > 0 ? hr_blob_new(src->data, src->len) : NULL;
        if (src->len > 0 && e[i].data == NULL) {
            d->n = i;
            free(le);
            snprintf(msg, len, "recover: out of memory");
            return HR_ENOMEM;
        }
    }
    d->n = n;
    d->off = lo - 1 + skip;
    free(le);
    return 0;
}

static int recover(struct hr__disk *d, char *msg, size_t len);

/* A restart may crash too, in the middle of what the open repairs (a torn tail cut, a
 * reconciled log emptied): the next restart must still open what that left. Not the first
 * start: the simulation begins with every node up. */
int hr__disk_real_recover(struct hr__disk *d, char *msg, size_t len)
{
    struct hr__disk_real *r = d->real;
    if (r->starts++ > 0) {
        arm(r);
    }
    int rc = recover(d, msg, len);
    if (!hr_simfs_crashed(r->fs)) {
        hr_simfs_crash_at(r->fs, 0);
        return rc;
    }
    r->crash_points++;
    char why[512];
    snprintf(why, sizeof why, "%s", rc != 0 ? msg : "");
    snprintf(msg, len, "crashed while starting%s%s", why[0] ? ": " : "", why);
    if (r->log != NULL) {
        hr_log_close(r->log);
        r->log = NULL;
    }
    hr_simfs_reboot(r->fs);
    hr__disk_clear_log(d);
    return HR__DISK_CRASHED;
}

static int recover(struct hr__disk *d, char *msg, size_t len)
{
    struct hr__disk_real *r = d->real;
    struct hr_fs *fs = hr_simfs_fs(r->fs);
    hr__disk_clear_log(d);
    struct hr_blob *old = d->snap.data;
    memset(&d->snap, 0, sizeof d->snap);
    hr_blob_release(old);
    if (r->log != NULL) {
        hr_log_close(r->log);
        r->log = NULL;
    }
    struct hr_log_options lo;
    hr_log_options_default(&lo);
    lo.fs = fs;
    lo.segment_size = r->o.segment_size;
    lo.cache_bytes = 64 << 10;
    char err[512] = "";
    msg[0] = '\0';
    int rc = hr_log_open(DATA_DIR, &lo, &r->log, err, sizeof err, msg, len);
    if (rc != 0) {
        r->log = NULL;
        snprintf(msg, len, "%s", err);
        return rc;
    }
    struct hr_snap_info si;
    bool found;
    size_t used = strlen(msg);
    rc = hr_snap_find(fs, DATA_DIR, &si, &found, msg + used, len - used, err, sizeof err);
    if (rc == 0 && found) {
        rc = read_payload(r, &si, &d->snap.data);
        if (rc != 0) {
            snprintf(err, sizeof err, "%.500s", r->err);
        } else {
            d->snap.index = si.index;
            d->snap.term = si.term;
        }
    }
    if (rc == 0) {
        used = strlen(msg);
        rc = hr_log_reconcile(r->log, d->snap.index, d->snap.term, msg + used, len - used,
                              err, sizeof err);
    }
    if (rc == 0) {
        uint64_t term, vote;
        hr_log_meta(r->log, &term, &vote);
        d->hs.term = term;
        d->hs.vote = vote;
        rc = read_entries(d, err, sizeof err);
    }
    if (rc != 0) {
        snprintf(msg, len, "%s", err);
        hr_log_close(r->log);
        r->log = NULL;
        return rc;
    }
    r->last = hr_log_last_index(r->log);
    r->empty = hr_log_first_index(r->log) > r->last;
    r->repaired += msg[0] != '\0';
    r->reconciled += strstr(msg, "continues after the snapshot") != NULL;
    return 0;
}

void hr__disk_real_free(struct hr__disk *d)
{
    struct hr__disk_real *r = d->real;
    if (r->w != NULL) {
        hr_snap_writer_abort(r->w);
    }
    if (r->log != NULL) {
        hr_log_close(r->log);
    }
    hr_simfs_free(r->fs);
    free(r);
    d->real = NULL;
}
