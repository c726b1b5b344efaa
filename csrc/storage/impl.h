/*
 * impl.h: internals shared by the files of csrc/storage (not for other layers).
 *
 *   fs_posix.c struct hr_fs over the real file system (fs.h); every file operation of
 *              csrc/storage goes through a struct hr_fs
 *   io.c       errno to HR_E* codes, atomic replace of a small file
 *   lock.c     the data directory lock
 *   meta.c     the meta file
 *   intent.c   the truncation intent (log/TRUNCATE): written before a cut, completed on
 *              open
 *   segment.c  record and segment encoding, scanning a segment with recovery rules,
 *              listing the segments of a log directory
 *   cache.c    the bounded read cache
 *   log.c      struct hr_log: segments, append, sync, truncate, compact, read
 *   inspect.c  hr_storage_inspect
 *
 * Threading: as log.h (one thread at a time).
 */
#ifndef HR_STORAGE_IMPL_H
#define HR_STORAGE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/crc32c.h"
#include "../core/raft.h"
#include "fs.h"
#include "log.h"

/* ---- byte layout (docs/storage-format.md) ---- */
#define HR__SEG_MAGIC "HRSG"
#define HR__SEG_HEADER_SIZE 24       /* magic, version, first index, crc, reserved */
#define HR__REC_HEADER_SIZE 36       /* crc, len, term, index, time_ms, type, 3 reserved */
#define HR__REC_FOOTER 0xFF          /* record type of a sealed segment's footer */
/* Segment format versions (docs/storage-format.md, "Header"): new segments are written as
 * version 2, whose records carry the sync mark; version 1 segments (no marks) are still
 * read, with the older recovery rule, and appended to as version 1. */
#define HR__SEG_VERSION 2
#define HR__SEG_VERSION_MIN 1
/* Record flags (byte 33, under the record's checksum). SYNC_MARK: the first record a sync
 * wrote into this segment, so every byte before it was durable when it was written. */
#define HR__REC_SYNC_MARK 0x01
#define HR__TRAILER_SIZE 16          /* footer offset, magic */
#define HR__TRAILER_MAGIC "HRSEALED"
#define HR__SPARSE_STRIDE 32         /* one remembered offset per 32 records */
#define HR__MAX_PAYLOAD (64u << 20)  /* larger lengths are garbage, not records */
#define HR__META_MAGIC "HRMT"
#define HR__META_SIZE 28

/* CRC32C lives in csrc/core/crc32c.c: the transport checksums frames with it too. */
#define hr__crc32c hr_crc32c

/* Little-endian fixed-width integers, unaligned. */
static inline void hr__put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void hr__put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t hr__get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t hr__get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Map an errno of a failed file operation (the negated return of a struct hr_fs op) to
 * HR_ENOSPACE / HR_EIO. */
int hr__errno_code(int e);

/* log.c: append a printf-formatted line to the recovery notes in info (infolen bytes,
 * NUL-terminated), newline-separated; what does not fit is dropped. */
void hr__add_info(char *info, size_t infolen, const char *fmt, ...);

/* lock.c: lock dir/LOCK; *h is the held handle of fs. HR_EBUSY names the holder's pid. */
int hr__lock_dir(struct hr_fs *fs, const char *dir, int *h, char *err, size_t errlen);
/* Print a node id as its name when names has it, else as 16 hex digits (inspect.c). */
void hr__inspect_print_id(FILE *out, const struct hr_inspect_names *names, uint64_t id);
/* A configuration (raft.h hr_conf_encode's bytes) on one line: "node-1 127.0.0.1:9001,
 * node-4 127.0.0.1:9004 learner"; a server without the production node's `<id> NUL
 * <host:port>` address shows by id. */
void hr__inspect_print_conf(FILE *out, const struct hr_inspect_names *names,
                            const struct hr_blob *b);
/* The pid written in dir/LOCK and whether a process holds the lock (for inspect). */
int hr__lock_probe(struct hr_fs *fs, const char *dir, long *pid, bool *held);

/* meta.c */
struct hr__meta {
    uint32_t version;
    uint64_t term, vote;
};
/* The layout of a small fixed-size file (meta, the truncation intent): magic in bytes 0-3,
 * version in 4-7, a CRC32C of bytes [0, crc_off) at crc_off. */
struct hr__small_file {
    const char *magic;
    const char *what; /* for messages: "meta file" */
    uint32_t version; /* the one this build reads */
    size_t size;      /* at most 64 */
    size_t crc_off;
};
/* meta.c: read the file path of layout f into b (f->size bytes). 0 with *exists false if
 * there is none; HR_EIO; HR_ECORRUPT (wrong size or magic, bad checksum, other version)
 * with a message in err that starts with label. */
int hr__small_file_read(struct hr_fs *fs, const char *path, const char *label,
                        const struct hr__small_file *f, unsigned char *b, bool *exists,
                        char *err, size_t errlen);
/* HR_ECORRUPT / HR_EIO with message; *exists = false and zero meta if there is none. */
int hr__meta_read(struct hr_fs *fs, const char *dir, struct hr__meta *m, bool *exists,
                  char *err, size_t errlen);
/* Atomic replace: meta.tmp, fsync, rename, fsync dir. */
int hr__meta_write(struct hr_fs *fs, const char *dir, const struct hr__meta *m,
                   char *err, size_t errlen);

/* intent.c: log/TRUNCATE (docs/storage-format.md, "Truncation intent"). */
#define HR__INTENT_NAME "TRUNCATE"
#define HR__INTENT_TMP "TRUNCATE.tmp"
#define HR__INTENT_MAGIC "HRTR"
#define HR__INTENT_VERSION 1
#define HR__INTENT_SIZE 40
struct hr__intent {
    uint64_t from; /* every entry at index >= from is dropped: segments named from or later */
    uint64_t seg;  /* and the segment named seg (< from) is cut at offset off; 0: none is */
    uint64_t off;
};
/* Read logdir/TRUNCATE: *exists false if there is none; HR_ECORRUPT (damaged: it is only
 * renamed into place once synced) or HR_EIO with the message in err. */
int hr__intent_read(struct hr_fs *fs, const char *logdir, struct hr__intent *t, bool *exists,
                    char *err, size_t errlen);
/* Make t durable as logdir/TRUNCATE: TRUNCATE.tmp, fsync, rename, fsync logdir (dir_fd, a
 * handle of it). On failure *renamed says whether the intent may be on disk (then it must
 * be completed before anything is acknowledged). */
int hr__intent_write(struct hr_fs *fs, const char *logdir, int dir_fd,
                     const struct hr__intent *t, bool *renamed, char *err, size_t errlen);
/* Carry out t and remove it, durably: segments named t->from or later are removed (newest
 * first, then logdir is fsynced), segment t->seg is cut at t->off and fdatasynced, the
 * intent is unlinked and logdir fsynced. Idempotent: run it again after any failure or
 * crash. *removed: how many segment files were removed. */
int hr__intent_complete(struct hr_fs *fs, const char *logdir, int dir_fd,
                        const struct hr__intent *t, size_t *removed, char *err, size_t errlen);

/* io.c */
/* Replace path atomically by the len bytes at b (meta, the truncation intent): write tmp,
 * fsync it, rename it over path, fsync the directory (the open handle dir_h, or dir opened
 * for it when dir_h < 0). 0, or a negative errno with *what naming the step that failed;
 * *renamed: the rename was done (path holds the new bytes, only the directory's sync may
 * be missing). tmp is removed on a failure before the rename. */
int hr__io_replace(struct hr_fs *fs, const char *tmp, const char *path,
                   const void *b, size_t len, int dir_h, const char *dir, bool *renamed,
                   const char **what);

/* segment.c */
void hr__seg_name(char *buf, size_t len, uint64_t first);
/* Parse a segment file name; false if it is not one. */
bool hr__seg_parse_name(const char *name, uint64_t *first);
/* The segments of logdir by first index, ascending, in *out (malloc'd, *n of them); other
 * (if not NULL) is called with every name that is not a segment's. HR_ENOMEM, or, when
 * logdir cannot be listed, hr__errno_code(e) with errno set to e and the reason in err
 * (err is written in that case only). */
int hr__seg_list(struct hr_fs *fs, const char *logdir, uint64_t **out, size_t *n,
                 void (*other)(void *arg, const char *name), void *arg, char *err,
                 size_t errlen);
/* A version HR__SEG_VERSION header. */
void hr__seg_encode_header(unsigned char *p, uint64_t first);
/* Encode one record at p (HR__REC_HEADER_SIZE + e->len bytes); flags: HR__REC_* or 0. */
void hr__rec_encode(unsigned char *p, const struct hr_log_entry *e, uint8_t flags);

/* The result of scanning a segment file from its header on. */
struct hr__scan {
    uint64_t first;      /* from the header */
    uint32_t version;    /* from the header (0 if it is damaged) */
    uint64_t count;      /* valid records */
    uint64_t last_term;
    off_t end;           /* offset after the last valid record (or footer+trailer if sealed) */
    off_t data_end;      /* offset after the last valid record */
    bool sealed;         /* a valid footer and trailer follow the records */
    bool torn;           /* a torn tail starts at data_end (only with allow_torn) */
    bool zero_tail;      /* ...and it is nothing but zeros to the end of the file: the
                          * writer's preallocated space (log.c), or lost unsynced writes */
    off_t file_size;
    uint64_t *sparse;    /* malloc'd: offset of record k*STRIDE, k < n_sparse */
    size_t n_sparse;
};
/* Scan handle h of fs (file `name` for messages). allow_torn: this is the last segment,
 * where a torn tail is cut (reported through s->torn) instead of failing: in a version 2
 * segment, damage that no valid sync-marked record follows (the unsynced part of the last
 * write); in a version 1 segment, damage that no valid record follows. expect_first: the
 * index the segment must start with (0: any). want_sparse: fill s->sparse. HR_ECORRUPT
 * names the file and offset. */
int hr__seg_scan(struct hr_fs *fs, int h, const char *name, bool allow_torn,
                 uint64_t expect_first, bool want_sparse, struct hr__scan *s, char *err,
                 size_t errlen);
/* The same as if the file ended at limit (the cut of a pending truncation, for inspect;
 * -1: no limit); HR_ECORRUPT if it is shorter. */
int hr__seg_scan_upto(struct hr_fs *fs, int h, const char *name, bool allow_torn,
                      uint64_t expect_first, bool want_sparse, off_t limit, struct hr__scan *s,
                      char *err, size_t errlen);
/* Read a sealed segment's footer instead of scanning: fills s like hr__seg_scan. Returns
 * HR_ECORRUPT if there is no valid footer (the caller then scans). */
int hr__seg_read_footer(struct hr_fs *fs, int h, const char *name, uint64_t expect_first,
                        struct hr__scan *s, char *err, size_t errlen);
/* Encode the footer record plus trailer for a segment whose records end at data_end:
 * returns a malloc'd buffer of *len bytes (NULL on out-of-memory). */
unsigned char *hr__seg_encode_footer(uint64_t first, uint64_t count, uint64_t last_term,
                                     const uint64_t *sparse, size_t n_sparse, off_t data_end,
                                     size_t *len);

/* cache.c: a bounded LRU of fixed-size blocks of segment files. Key: (segment first
 * index, block number). */
#define HR__CACHE_BLOCK 65536
struct hr__cache;
struct hr__cache *hr__cache_new(size_t bytes);
void hr__cache_free(struct hr__cache *c);
/* Read len bytes at off of segment `seg` (handle h of fs) into buf, through the cache.
 * limit: where the bytes the log wrote end (the file may go on with preallocated zeros,
 * which are never cached). Reads past limit or the end of the file are an error
 * (HR_ECORRUPT: the caller knows the size). */
int hr__cache_read(struct hr__cache *c, uint64_t seg, struct hr_fs *fs, int h, off_t off,
                   void *buf, size_t len, off_t limit, uint64_t *hits, uint64_t *misses);
/* Forget every block of segment seg (or all segments if seg == 0). */
void hr__cache_drop(struct hr__cache *c, uint64_t seg);

#endif
