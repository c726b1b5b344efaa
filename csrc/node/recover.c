/*
 * recover.c: disaster recovery of a data dir (recover.h).
 *
 * The steps, each durable before the next:
 *   1. open and lock the data dir; find the newest snapshot and make the log continue it
 *      (the same reconciliation a start does, csrc/storage/reconcile.c);
 *   2. term and vote become (T + 1, nobody), T the highest term in the data dir: the new
 *      entry's term is one no lost server can have used for another entry at its index;
 *   3. append the CONFIG entry, sync.
 * A crash between 2 and 3 leaves a data dir with a higher term and its old configuration:
 * running recover again finishes the job. A crash after 3 leaves the recovered dir.
 */
#define _GNU_SOURCE /* clock_gettime; uv.h (transport.h) needs the POSIX types under -std=c11 */
#include "recover.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../storage/log.h"
#include "../storage/snapshot.h"
#include "../transport/transport.h"

#define SCAN_CHUNK 1024 /* entries read at a time when looking for a configuration */

/* In the encoded configuration b, the address of id: name NUL host:port (the production
 * node's form, runtime.h "Membership"); false if id is absent or its bytes are not so. */
static bool addr_in_conf(struct hr_blob *b, hr_id_t id, char *addr, size_t len, bool *found)
{
    struct hr_server *sv = malloc(HR_MAX_NODES * sizeof *sv);
    size_t n = 0;
    bool ok = false;
    *found = false;
    if (sv != NULL && hr_conf_decode(b, sv, HR_MAX_NODES, &n) == 0) {
        *found = true; /* a configuration, with or without this server */
        for (size_t i = 0; i < n && !ok; i++) {
            const uint8_t *z = sv[i].addr_len > 0 ? memchr(sv[i].addr, 0, sv[i].addr_len) : NULL;
            if (sv[i].id == id && z != NULL) {
                size_t al = sv[i].addr_len - (size_t)(z + 1 - sv[i].addr);
                if (al > 0 && al < len) {
                    memcpy(addr, z + 1, al);
                    addr[al] = 0;
                    ok = true;
                }
            }
        }
    }
    free(sv);
    return ok;
}

/* The address the newest configuration of the data dir gives for id. */
static int find_addr(struct hr_fs *fs, struct hr_log *log, const char *data_dir,
                     const struct hr_snap_info *snap, hr_id_t id, char *addr, size_t len, char *err,
                     size_t errlen)
{
    uint64_t first = hr_log_first_index(log), last = hr_log_last_index(log);
    bool found = false;
    while (first <= last && !found) {
        uint64_t lo = last + 1 - first > SCAN_CHUNK ? last + 1 - SCAN_CHUNK : first;
        struct hr_log_entry *e;
        size_t n;
        int rc = hr_log_read(log, lo, last, &e, &n);
        if (rc != 0) {
            snprintf(err, errlen, "recover: %s", hr_log_errmsg(log));
            return rc;
        }
        for (size_t i = n; i-- > 0 && !found;) {
            if (e[i].type != HR_ENTRY_CONFIG) {
                continue;
            }
            struct hr_blob *b = hr_blob_new(e[i].data, e[i].len);
            bool ok = b != NULL && addr_in_conf(b, id, addr, len, &found);
            hr_blob_release(b);
            if (ok) {
                free(e);
                return 0;
            }
        }
        free(e);
        last = lo - 1;
    }
    if (!found && snap != NULL) {
        char path[4200];
        uint8_t *bytes = NULL;
        hr_snap_path(data_dir, snap->index, snap->term, path, sizeof path);
        if (hr_snap_read_conf(fs, path, snap, &bytes, err, errlen) == 0 && bytes != NULL) {
            struct hr_blob *b = hr_blob_new(bytes, snap->conf_len);
            bool ok = b != NULL && addr_in_conf(b, id, addr, len, &found);
            hr_blob_release(b);
            free(bytes);
            if (ok) {
                return 0;
            }
        }
    }
    snprintf(err, errlen,
             "recover: the data dir's configuration gives no address for this "
             "node: pass one");
    return HR_EINVAL;
}

static int recover_locked(struct hr_fs *fs, struct hr_log *log, const char *data_dir,
                          const char *name, const char *addr, struct hr_recover_result *res,
                          char *err, size_t errlen)
{
    char msg[512], info[1024] = "";
    struct hr_snap_info si;
    bool found = false;
    int rc = hr_snap_find(fs, data_dir, &si, &found, info, sizeof info, msg, sizeof msg);
    if (rc != 0) {
        snprintf(err, errlen, "recover: %s", msg);
        return rc;
    }
    uint64_t snap_index = found ? si.index : 0, snap_term = found ? si.term : 0;
    rc = hr_log_reconcile(log, snap_index, snap_term, info, sizeof info, msg, sizeof msg);
    if (rc != 0) {
        snprintf(err, errlen, "recover: %s", msg);
        return rc;
    }
    uint64_t first = hr_log_first_index(log), last = hr_log_last_index(log);
    bool empty = first > last;
    if (empty && !found) {
        snprintf(err, errlen, "recover: %s holds no log and no snapshot: nothing to recover",
                 data_dir);
        return HR_EINVAL;
    }
    hr_id_t id = hr_tcp_node_id(name);
    char found_addr[HR_MAX_ADDR];
    if (addr == NULL) {
        rc = find_addr(fs, log, data_dir, found ? &si : NULL, id, found_addr, sizeof found_addr,
                       err, errlen);
        if (rc != 0) {
            return rc;
        }
        addr = found_addr;
    }
    size_t nl = strlen(name), al = strlen(addr);
    if (nl + 1 + al > HR_MAX_ADDR) {
        snprintf(err, errlen, "recover: name and address too long");
        return HR_EINVAL;
    }
    uint8_t bytes[HR_MAX_ADDR];
    memcpy(bytes, name, nl + 1);
    memcpy(bytes + nl + 1, addr, al);
    struct hr_server me = {.id = id, .voter = true, .addr = bytes, .addr_len = nl + 1 + al};
    struct hr_blob *conf;
    rc = hr_conf_encode(&me, 1, &conf);
    if (rc != 0) {
        snprintf(err, errlen, "recover: %s", hr_strerror(rc));
        return rc;
    }

    uint64_t term, vote;
    hr_log_meta(log, &term, &vote);
    uint64_t last_term = empty ? snap_term : hr_log_last_term(log);
    uint64_t index = empty ? snap_index + 1 : last + 1;
    uint64_t new_term = (term > last_term ? term : last_term) + 1;
    rc = hr_log_set_meta(log, new_term, 0);
    if (rc == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct hr_log_entry e = {.term = new_term,
                                 .index = index,
                                 .time_ms =
                                     (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
                                 .type = HR_ENTRY_CONFIG,
                                 .len = (uint32_t)conf->len,
                                 .data = conf->data};
        rc = hr_log_append(log, &e, 1);
        if (rc == 0) {
            rc = hr_log_sync(log);
        }
    }
    hr_blob_release(conf);
    if (rc != 0) {
        snprintf(err, errlen, "recover: %s", hr_log_errmsg(log));
        return rc;
    }
    res->index = index;
    res->term = new_term;
    res->entries = empty ? 0 : last - first + 1;
    res->snapshot_index = snap_index;
    return 0;
}

int hr_node_recover(struct hr_fs *fs, const char *data_dir, const char *name, const char *addr,
                    struct hr_recover_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (name == NULL || name[0] == '\0') {
        snprintf(err, errlen, "recover: a node id is required");
        return HR_EINVAL;
    }
    struct sockaddr_storage sa;
    if (addr != NULL && hr_tcp_parse_addr(addr, &sa) != 0) {
        snprintf(err, errlen, "recover: bad address '%s' (host:port)", addr);
        return HR_EINVAL;
    }
    struct hr_log_options lo;
    hr_log_options_default(&lo);
    lo.fs = fs;
    struct hr_log *log;
    char msg[512], info[1024];
    int rc = hr_log_open(data_dir, &lo, &log, msg, sizeof msg, info, sizeof info);
    if (rc != 0) {
        snprintf(err, errlen, "recover: %s", msg);
        return rc;
    }
    rc = recover_locked(fs, log, data_dir, name, addr, res, err, errlen);
    hr_log_close(log);
    return rc;
}
