/*
 * inspect.c: hr_storage_inspect, the offline check behind `helios inspect <data_dir>`.
 * It opens every file read-only and takes no lock (an operator may point it at a live
 * node's directory: it says so), scans every segment in full, verifies every checksum
 * (records, footers, meta, snapshot files) and the index continuity between segments,
 * and prints what it finds. It never repairs anything: a torn tail is reported as what open
 * would cut, and a pending truncation (log/TRUNCATE, intent.c) as what open would complete:
 * the segments it removes are not checked, the one it cuts only up to the cut.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "impl.h"
#include "snapshot.h"

/* Names in log/ that are not segments: shown, but for hidden files and the truncation
 * intent (reported on its own). */
static void print_other(void *arg, const char *name)
{
    if (strcmp(name, HR__INTENT_TMP) == 0) {
        fprintf(arg, "log/%s: an intent never renamed into place (open discards it)\n",
                name);
    } else if (name[0] != '.' && strcmp(name, HR__INTENT_NAME) != 0) {
        fprintf(arg, "log/%s: not a segment (ignored)\n", name);
    }
}

void hr__inspect_print_id(FILE *out, const struct hr_inspect_names *names, uint64_t id)
{
    for (size_t i = 0; names != NULL && i < names->n; i++) {
        if (names->ids[i] == id) {
            fputs(names->names[i], out);
            return;
        }
    }
    /* Hex, not decimal: the id is a hash (docs/storage-format.md), and 16 hex digits read
     * as one. */
    fprintf(out, "0x%016" PRIx64, id);
}

void hr__inspect_print_conf(FILE *out, const struct hr_inspect_names *names,
                            const struct hr_blob *b)
{
    struct hr_server *sv = malloc(HR_MAX_NODES * sizeof *sv);
    size_t n = 0;
    if (sv == NULL || hr_conf_decode(b, sv, HR_MAX_NODES, &n) != 0) {
        fputs("undecodable", out);
        n = 0;
    } else if (n == 0) {
        fputs("empty", out);
    }
    for (size_t k = 0; k < n; k++) {
        if (k > 0) {
            fputs(", ", out);
        }
        /* The production node's addresses are `<id> NUL <host:port>` (runtime.h). */
        const uint8_t *z = sv[k].addr_len > 0 ? memchr(sv[k].addr, 0, sv[k].addr_len) : NULL;
        if (z != NULL) {
            size_t nl = (size_t)(z - sv[k].addr);
            fprintf(out, "%.*s %.*s", (int)nl, (const char *)sv[k].addr,
                    (int)(sv[k].addr_len - nl - 1), (const char *)z + 1);
        } else {
            hr__inspect_print_id(out, names, sv[k].id);
        }
        if (!sv[k].voter) {
            fputs(" learner", out);
        }
    }
    free(sv);
}

/* The newest config record (type 3) of a segment's valid records, which end at data_end:
 * its index and a copy of its payload into *conf (replacing the one held). Record headers
 * only are read, plus that payload; their checksums were verified by the scan. */
static void newest_conf(struct hr_fs *fs, int fd, off_t data_end, uint64_t *conf_index,
                        struct hr_blob **conf)
{
    off_t off = HR__SEG_HEADER_SIZE, at = -1;
    uint32_t at_len = 0;
    uint64_t at_index = 0;
    unsigned char h[HR__REC_HEADER_SIZE];
    while (off + HR__REC_HEADER_SIZE <= data_end) {
        if (hr_fs_pread(fs, fd, h, sizeof h, off) != (ssize_t)sizeof h) {
            return;
        }
        uint32_t len = hr__get32(h + 4);
        if (h[32] == HR_ENTRY_CONFIG) {
            at = off + HR__REC_HEADER_SIZE;
            at_len = len;
            at_index = hr__get64(h + 16);
        }
        off += HR__REC_HEADER_SIZE + (off_t)len;
    }
    if (at < 0) {
        return;
    }
    unsigned char *buf = malloc(at_len > 0 ? at_len : 1);
    if (buf == NULL || hr_fs_pread(fs, fd, buf, at_len, at) != (ssize_t)at_len) {
        free(buf);
        return;
    }
    struct hr_blob *b = hr_blob_new(buf, at_len);
    free(buf);
    if (b != NULL) {
        hr_blob_release(*conf);
        *conf = b;
        *conf_index = at_index;
    }
}

/* Whether path exists on fs, as a directory (1), as something else (0), or not (-1, with
 * *e the errno). */
static int kind_of(struct hr_fs *fs, const char *path, int *e)
{
    int h = hr_fs_open(fs, path, HR_FS_DIR);
    if (h >= 0) {
        hr_fs_close(fs, h);
        return 1;
    }
    if (h == -ENOTDIR) {
        return 0;
    }
    *e = -h;
    return -1;
}

/* Say why dir is not a data directory, or return false if it is one (or damaged). A data
 * directory that was ever opened has log/ (the open makes it); one that lost log/ but
 * holds meta or snapshots is damaged, not foreign. */
static bool not_data_dir(struct hr_fs *fs, const char *dir, FILE *out)
{
    char path[4200];
    int e = 0;
    int k = kind_of(fs, dir, &e);
    const char *why = NULL;
    if (k < 0) {
        why = e == ENOENT ? "it does not exist" : strerror(e);
    } else if (k == 0) {
        why = "it is not a directory";
    } else {
        snprintf(path, sizeof path, "%s/log", dir);
        bool has_log = kind_of(fs, path, &e) >= 0;
        snprintf(path, sizeof path, "%s/meta", dir);
        bool has_meta = kind_of(fs, path, &e) >= 0;
        snprintf(path, sizeof path, "%s/snapshots", dir);
        bool has_snaps = kind_of(fs, path, &e) >= 0;
        if (has_log || has_meta || has_snaps) {
            return false;
        }
        why = "it holds none of meta, log/, snapshots/ (no node has stored anything here)";
    }
    fprintf(out, "status: not a data directory: %s\n", why);
    return true;
}

int hr_storage_inspect(struct hr_fs *fs, const char *dir, const struct hr_inspect_names *names,
                       FILE *out)
{
    fs = hr_fs_or_posix(fs);
    char err[768], path[4200];
    int status = 0;
    fprintf(out, "data dir: %s\n", dir);
    if (not_data_dir(fs, dir, out)) {
        return HR_INSPECT_NOT_DATA_DIR;
    }
    fprintf(out, "format: meta version %d, segment version %d (this build; reads segment "
                 "versions %d to %d)\n",
            HR_LOG_FORMAT_VERSION, HR__SEG_VERSION, HR__SEG_VERSION_MIN, HR__SEG_VERSION);

    long pid;
    bool held;
    if (hr__lock_probe(fs, dir, &pid, &held) == 0) {
        if (held) {
            fprintf(out, "lock: held by pid %ld (a node is running: files may change "
                         "while we read)\n", pid);
        } else {
            fprintf(out, "lock: free\n");
        }
    }

    struct hr__meta m;
    bool exists;
    int rc = hr__meta_read(fs, dir, &m, &exists, err, sizeof err);
    if (rc != 0) {
        fprintf(out, "meta: ERROR %s\n", err);
        status = rc;
    } else if (!exists) {
        fprintf(out, "meta: none (no term or vote recorded yet)\n");
    } else if (m.vote == 0) {
        fprintf(out, "meta: term %" PRIu64 ", no vote (checksum ok)\n", m.term);
    } else {
        fprintf(out, "meta: term %" PRIu64 ", vote ", m.term);
        hr__inspect_print_id(out, names, m.vote);
        fprintf(out, " (checksum ok)\n");
    }

    snprintf(path, sizeof path, "%s/log", dir);
    uint64_t *v = NULL;
    size_t n = 0;
    char lerr[sizeof path + 256];
    lerr[0] = '\0';
    rc = hr__seg_list(fs, path, &v, &n, print_other, out, lerr, sizeof lerr);
    if (rc != 0 && lerr[0] != '\0') { /* log/ cannot be opened */
        int e = errno;
        fprintf(out, "log: ERROR %s\n", lerr);
        fprintf(out, "status: DAMAGED\n");
        return e == ENOENT ? HR_ECORRUPT : HR_EIO;
    }
    if (rc != 0) {
        return rc;
    }

    /* A pending truncation (intent.c): the next open completes it before it scans, so the
     * segments are checked as it will leave them. */
    struct hr__intent t;
    bool pending;
    snprintf(path, sizeof path, "%s/log", dir);
    rc = hr__intent_read(fs, path, &t, &pending, err, sizeof err);
    if (rc != 0) {
        fprintf(out, "log/%s: ERROR %s\n", HR__INTENT_NAME, err);
        status = rc;
        pending = false;
    } else if (pending && t.seg != 0) {
        char name[32];
        hr__seg_name(name, sizeof name, t.seg);
        fprintf(out, "log/%s: truncation from index %" PRIu64 " under way (log/%s cut at "
                     "offset %" PRIu64 "): the next open completes it\n",
                HR__INTENT_NAME, t.from, name, t.off);
    } else if (pending) {
        fprintf(out, "log/%s: truncation from index %" PRIu64 " under way: the next open "
                     "completes it\n",
                HR__INTENT_NAME, t.from);
    }

    if (pending && t.seg != 0) {
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            found = found || v[i] == t.seg;
        }
        if (!found) {
            char name[32];
            hr__seg_name(name, sizeof name, t.seg);
            fprintf(out, "log/%s: ERROR the segment it cuts, log/%s, is missing\n",
                    HR__INTENT_NAME, name);
            status = HR_ECORRUPT;
        }
    }

    fprintf(out, "segments: %zu\n", n);
    uint64_t records = 0, next = 0, lo = 0;
    size_t gone = 0;
    uint64_t conf_index = 0;
    struct hr_blob *conf = NULL;
    for (size_t i = 0; i < n; i++) {
        char name[32], lab[64];
        hr__seg_name(name, sizeof name, v[i]);
        snprintf(lab, sizeof lab, "log/%s", name);
        snprintf(path, sizeof path, "%s/log/%s", dir, name);
        if (pending && v[i] >= t.from) {
            fprintf(out, "  %s: removed by the pending truncation (not checked)\n", lab);
            gone++;
            continue;
        }
        bool is_last = (i + 1 == n) || (pending && v[i + 1] >= t.from);
        off_t limit = pending && t.seg == v[i] ? (off_t)t.off : -1;
        int fd = hr_fs_open(fs, path, HR_FS_READ);
        if (fd < 0) {
            fprintf(out, "  %s: ERROR %s\n", lab, strerror(-fd));
            status = HR_EIO;
            continue;
        }
        struct hr__scan sc;
        rc = hr__seg_scan_upto(fs, fd, lab, is_last, v[i], false, limit, &sc, err,
                               sizeof err);
        if (rc == 0 && sc.sealed) {
            struct hr__scan f;
            if (hr__seg_read_footer(fs, fd, lab, v[i], &f, err, sizeof err) != 0 ||
                f.count != sc.count) {
                snprintf(err, sizeof err, "%s: footer does not match the records", lab);
                rc = HR_ECORRUPT;
            }
            free(f.sparse);
        }
        if (rc == 0) {
            newest_conf(fs, fd, sc.data_end, &conf_index, &conf);
        }
        hr_fs_close(fs, fd);
        if (rc != 0) {
            fprintf(out, "  %s: ERROR %s\n", lab, err);
            status = rc;
            continue;
        }
        free(sc.sparse);
        if (sc.torn && sc.data_end == 0) {
            fprintf(out, "  %s: empty, no header (open removes it)\n", lab);
            continue;
        }
        if (sc.count > 0) {
            fprintf(out, "  %s: index %" PRIu64 "..%" PRIu64 ", %" PRIu64
                         " records, %lld bytes, %s, version %u\n",
                    lab, sc.first, sc.first + sc.count - 1, sc.count, (long long)sc.file_size,
                    sc.sealed ? "sealed" : "open", sc.version);
        } else {
            fprintf(out, "  %s: no records, %lld bytes, %s, version %u\n", lab,
                    (long long)sc.file_size, sc.sealed ? "sealed" : "open", sc.version);
        }
        if (limit >= 0) {
            fprintf(out, "  %s: the pending truncation cuts it at offset %lld\n", lab,
                    (long long)limit);
        }
        if (sc.torn && sc.zero_tail) {
            fprintf(out, "  %s: %lld bytes of zeros after the last record (preallocated "
                         "space)\n",
                    lab, (long long)(sc.file_size - sc.data_end));
        } else if (sc.torn) {
            /* Version 2: damage behind the last sync mark, maybe with records after it. */
            fprintf(out, "  %s: torn tail at offset %lld (%lld bytes): the next open cuts "
                         "it\n",
                    lab, (long long)sc.data_end, (long long)(sc.file_size - sc.data_end));
        }
        if (next != 0 && sc.first != next) {
            fprintf(out, "  %s: ERROR starts at index %" PRIu64 ", expected %" PRIu64
                         " (gap)\n",
                    lab, sc.first, next);
            status = HR_ECORRUPT;
        }
        if (i == 0) {
            lo = sc.first;
        }
        next = sc.first + sc.count;
        records += sc.count;
    }
    free(v);
    if (n > gone && next == 0) {
        fprintf(out, "log: no readable segment\n");
    } else if (n > gone) {
        fprintf(out, "log: index %" PRIu64 "..%" PRIu64 " (%" PRIu64 " entries)\n", lo,
                next - 1, records);
    } else {
        fprintf(out, "log: empty\n");
    }
    if (conf != NULL) {
        fprintf(out, "configuration: the log's newest, index %" PRIu64 ": ", conf_index);
        hr__inspect_print_conf(out, names, conf);
        fputc('\n', out);
        hr_blob_release(conf);
    } else if (n > gone) {
        fprintf(out, "configuration: none in the log (the snapshot's, else the peers "
                     "option's)\n");
    }
    int src = hr_snap_inspect(fs, dir, names, out);
    if (src != 0 && status == 0) {
        status = src;
    }
    fprintf(out, "checksums: %" PRIu64 " records verified\n", records);
    fprintf(out, "status: %s\n", status == 0 ? "sound" : "DAMAGED");
    return status;
}
