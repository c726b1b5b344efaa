/*
 * inspect.c: hr_storage_inspect, the offline check behind `helios inspect <data_dir>`.
 * It opens every file read-only and takes no lock (an operator may point it at a live
 * node's directory: it says so), scans every segment in full, verifies every checksum
 * (records, footers, meta, snapshot files) and the index continuity between segments,
 * and prints what it finds. It never repairs anything: a torn tail is reported as what open would cut.
 */
#define _GNU_SOURCE /* O_CLOEXEC under -std=c11 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "impl.h"
#include "snapshot.h"

int hr_storage_inspect(const char *dir, FILE *out)
{
    char err[768], path[4200];
    int status = 0;
    fprintf(out, "data dir: %s\n", dir);
    fprintf(out, "format: version %d (this build)\n", HR_LOG_FORMAT_VERSION);

    long pid;
    bool held;
    if (hr__lock_probe(dir, &pid, &held) == 0) {
        if (held) {
            fprintf(out, "lock: held by pid %ld (a node is running: files may change "
                         "while we read)\n", pid);
        } else {
            fprintf(out, "lock: free\n");
        }
    }

    struct hr__meta m;
    bool exists;
    int rc = hr__meta_read(dir, &m, &exists, err, sizeof err);
    if (rc != 0) {
        fprintf(out, "meta: ERROR %s\n", err);
        status = rc;
    } else if (!exists) {
        fprintf(out, "meta: none (no term or vote recorded yet)\n");
    } else {
        fprintf(out, "meta: term %" PRIu64 ", vote %" PRIu64 " (checksum ok)\n", m.term,
                m.vote);
    }

    snprintf(path, sizeof path, "%s/log", dir);
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(out, "log: ERROR %s: %s\n", path, strerror(errno));
        fprintf(out, "status: CORRUPT\n");
        return errno == ENOENT ? HR_ECORRUPT : HR_EIO;
    }
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t first;
        if (!hr__seg_parse_name(de->d_name, &first)) {
            if (de->d_name[0] != '.') {
                fprintf(out, "log/%s: not a segment (ignored)\n", de->d_name);
            }
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *p = realloc(v, cap * sizeof *v);
            if (p == NULL) {
                free(v);
                closedir(d);
                return HR_ENOMEM;
            }
            v = p;
        }
        v[n++] = first;
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) { /* insertion sort: few segments */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }

    fprintf(out, "segments: %zu\n", n);
    uint64_t records = 0, next = 0, lo = 0;
    for (size_t i = 0; i < n; i++) {
        char name[32], lab[64];
        hr__seg_name(name, sizeof name, v[i]);
        snprintf(lab, sizeof lab, "log/%s", name);
        snprintf(path, sizeof path, "%s/log/%s", dir, name);
        bool is_last = (i + 1 == n);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(out, "  %s: ERROR %s\n", lab, strerror(errno));
            status = HR_EIO;
            continue;
        }
        struct hr__scan sc;
        rc = hr__seg_scan(fd, lab, is_last, v[i], false, &sc, err, sizeof err);
        if (rc == 0 && sc.sealed) {
            struct hr__scan f;
            if (hr__seg_read_footer(fd, lab, v[i], &f, err, sizeof err) != 0 ||
                f.count != sc.count) {
                snprintf(err, sizeof err, "%s: footer does not match the records", lab);
                rc = HR_ECORRUPT;
            }
            free(f.sparse);
        }
        close(fd);
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
                         " records, %lld bytes, %s\n",
                    lab, sc.first, sc.first + sc.count - 1, sc.count, (long long)sc.file_size,
                    sc.sealed ? "sealed" : "open");
        } else {
            fprintf(out, "  %s: no records, %lld bytes, %s\n", lab, (long long)sc.file_size,
                    sc.sealed ? "sealed" : "open");
        }
        if (sc.torn) {
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
    if (n > 0) {
        fprintf(out, "log: index %" PRIu64 "..%" PRIu64 " (%" PRIu64 " entries)\n", lo,
                next - 1, records);
    } else {
        fprintf(out, "log: empty\n");
    }
    int src = hr_snap_inspect(dir, out);
    if (src != 0 && status == 0) {
        status = src;
    }
    fprintf(out, "checksums: %" PRIu64 " records verified\n", records);
    fprintf(out, "status: %s\n", status == 0 ? "sound" : "CORRUPT");
    return status;
}
