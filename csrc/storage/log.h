/*
 * log.h: the durable log of one node, synchronous. A data directory holds
 *
 *   LOCK      flock()ed while a process has the directory open; holds that process's pid
 *   meta      format version, term and vote (replaced atomically)
 *   log/      segment files named by the index of their first record (20 digits)
 *
 * (byte layouts in docs/storage-format.md). Opening recovers from a crash: a torn tail is cut away
 * and reported in the info message; any other damage fails the open with a message naming the file
 * and byte offset. Opening reads only the footer of each sealed segment and scans the open (last)
 * one, so start time does not grow with the log; entries are read on demand through a bounded block
 * cache.
 *
 * Writes are buffered: hr_log_append() encodes into memory (it writes to the file only when
 * a segment fills up), hr_log_sync() writes and fdatasync()s. A write-path failure (ENOSPC,
 * EIO, EROFS...) puts every file back as it was at the last successful sync and makes the
 * log refuse writes until hr_log_retry().
 *
 * This layer knows nothing of libuv or of the node: group.h runs it on the threadpool.
 *
 * Threading: a struct hr_log is used by one thread at a time (any thread); it does not
 * lock. Errors: 0 or a negative HR_E* (../core/error.h); the human message of the last
 * failure is hr_log_errmsg().
 */
#ifndef HR_STORAGE_LOG_H
#define HR_STORAGE_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/error.h"

/* The version of the meta file this code writes (the only one it reads so far). Segment
 * headers carry their own version (docs/storage-format.md: 2, and 1 is still read). */
#define HR_LOG_FORMAT_VERSION 1

struct hr_log;

/* One record. For hr_log_append() data is borrowed for the call. */
struct hr_log_entry {
    uint64_t term;
    uint64_t index;
    uint64_t time_ms;
    uint8_t type;
    uint32_t len;
    const unsigned char *data;
};

struct hr_fs;

struct hr_log_options {
    uint64_t segment_size; /* roll over to a new segment past this many bytes (8 MiB) */
    size_t cache_bytes;    /* read cache budget (4 MiB) */
    uint64_t prealloc_bytes; /* extend the open segment with zeros this much at a time, so
                              * that a sync writes data, not the file's size (1 MiB; 0:
                              * off; log.c, prealloc) */
    struct hr_fs *fs;      /* the file system (fs.h), borrowed for the log's life; NULL
                            * (the default): the real one */
};

void hr_log_options_default(struct hr_log_options *o);

/* Open (creating if needed) the data directory dir and lock it. On success *out is the log
 * and info holds what recovery did ("" if nothing). On failure: HR_EBUSY (locked by another
 * open, message names the pid), HR_ECORRUPT (message names file and offset), HR_EIO,
 * HR_ENOSPACE, HR_ENOMEM; the message is in err. o may be NULL (defaults). */
int hr_log_open(const char *dir, const struct hr_log_options *o, struct hr_log **out,
                char *err, size_t errlen, char *info, size_t infolen);
/* Close the files and release the lock. Unsynced appends are dropped (as a crash would). */
void hr_log_close(struct hr_log *l);

/* Buffer entries. Indexes must follow the last one (any index >= 1 if the log is empty),
 * terms must not decrease. HR_EINVAL on a bad sequence (nothing appended). */
int hr_log_append(struct hr_log *l, const struct hr_log_entry *e, size_t n);
/* Write what is buffered and make it durable. */
int hr_log_sync(struct hr_log *l);
/* Drop every entry at index >= from (conflict repair). Syncs first; durable on return. If
 * from <= first index the log becomes empty and the next append may start anywhere. A
 * durable intent (log/TRUNCATE) is written first: a crash comes back with the truncation
 * done (open completes it) or not begun. On failure the log refuses writes; if the
 * truncation had begun, memory already is the truncated log and hr_log_retry (or the next
 * open) completes it on disk. */
int hr_log_truncate(struct hr_log *l, uint64_t from);
/* Drop whole sealed segments whose entries are all below `below` (after a snapshot). The
 * first index afterwards may still be < below. Durable on return. */
int hr_log_compact(struct hr_log *l, uint64_t below);

/* Entries lo..hi (inclusive, within first..last). *out is one malloc'd block holding the
 * array and the payloads: the caller free()s it. Checksums are verified on the way. */
int hr_log_read(struct hr_log *l, uint64_t lo, uint64_t hi, struct hr_log_entry **out,
                size_t *n);

/* first > last when the log is empty. */
uint64_t hr_log_first_index(const struct hr_log *l);
uint64_t hr_log_last_index(const struct hr_log *l);
uint64_t hr_log_last_term(const struct hr_log *l);

/* Before a node starts from the newest snapshot (snap_index, snap_term; 0: none): make the
 * log continue it (reconcile.c says why this is safe). A log that ends before snap_index, or
 * holds another term there, is emptied durably and the next append may start at
 * snap_index + 1; the entry at snap_index is read and checked whatever the caller keeps of
 * the log. What was done is added to info. HR_ECORRUPT (message in err) if the log starts
 * after snap_index + 1: entries in between are missing. */
int hr_log_reconcile(struct hr_log *l, uint64_t snap_index, uint64_t snap_term, char *info,
                     size_t infolen, char *err, size_t errlen);

/* Term and vote: replaced atomically and durable on return. */
int hr_log_set_meta(struct hr_log *l, uint64_t term, uint64_t vote);
void hr_log_meta(const struct hr_log *l, uint64_t *term, uint64_t *vote);

/* The message of the last failure (a static buffer inside l). */
const char *hr_log_errmsg(const struct hr_log *l);
/* After a write-path failure: allow writes again (0), or the original error if the log
 * could not be put back in a known state (then only reopening helps). A truncation that
 * failed after it had begun is completed first; if that fails, its error is returned and
 * the log still refuses writes. */
int hr_log_retry(struct hr_log *l);

/* Counters since open. */
struct hr_log_stats {
    uint64_t syncs;    /* fdatasync calls on segments */
    uint64_t appends;  /* entries appended */
    uint64_t bytes;    /* bytes written */
    uint64_t cache_hits, cache_misses;
};
void hr_log_stats(const struct hr_log *l, struct hr_log_stats *s);

/* Names for the node ids that inspect prints (the vote, a snapshot's voters). Storage keeps
 * only the numeric id (FNV-1a 64 of the id string, csrc/transport hr_tcp_node_id); a
 * caller that knows candidate id strings passes them with their ids, and an id that
 * matches one is printed by name. Borrowed for the call. */
struct hr_inspect_names {
    const uint64_t *ids;
    const char *const *names;
    size_t n;
};

/* hr_storage_inspect's result for a path that is not a data directory at all (missing,
 * not a directory, or holding none of meta, log/, snapshots/): not damage. */
#define HR_INSPECT_NOT_DATA_DIR 1

/* Offline check of a data directory on fs (NULL: the real file system). It does not take
 * the lock (it says if it is held); it prints the metadata, each segment with its index
 * range, snapshots, and verifies every checksum. names may be NULL (ids then print in
 * hex). Returns 0 if the directory is sound (a torn
 * tail, which open would repair, counts as sound and is reported), HR_INSPECT_NOT_DATA_DIR
 * if dir is not a data directory, HR_ECORRUPT or HR_EIO if it is damaged. */
int hr_storage_inspect(struct hr_fs *fs, const char *dir, const struct hr_inspect_names *names,
                       FILE *out);

#endif
