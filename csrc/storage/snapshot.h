/*
 * snapshot.h: snapshot files of a data directory (byte layout in docs/storage-format.md).
 *
 *   data_dir/snapshots/<index, 20 digits>-<term, 20 digits>.snap
 *
 * Each file holds a header (magic, format version, the last index and term the snapshot
 * covers, the cluster configuration in effect at that index: the core's hr_conf_encode
 * bytes, with every server's address, and the index of the entry that made it), the FSM's
 * payload and a trailer (the
 * payload's size and the CRC32C of everything before it). A file is written under a
 * temporary name, synced, renamed and its directory synced, so a name ending in .snap is
 * always a whole file unless the disk damaged it; open skips (and reports) a damaged one.
 *
 *   struct hr_snap_writer *w;
 *   hr_snap_writer_open_conf(NULL, dir, index, term, conf, conf_len, conf_index, &w, err,
 *                            sizeof err);
 *   hr_snap_writer_write(w, bytes, len);         // any number of times
 *   hr_snap_writer_finish(w, &size, err, sizeof err);   // durable under its final name
 *
 * A receiver (InstallSnapshot) takes a snapshot file's bytes in order, at increasing
 * offsets, into <name>.recv; after a lost chunk it continues from hr_snap_recv_size(); its
 * finish checks the whole file, syncs and renames it (the atomic switch).
 *
 * File system: every function that touches files takes a struct hr_fs * first (fs.h);
 * NULL is the real file system. Writers and receivers keep theirs until freed.
 *
 * Threading: no shared state; each object is used by one thread at a time (writers and
 * receivers may move between threads, e.g. a finish on the libuv threadpool). Errors: 0
 * or a negative HR_E* with a message in err.
 */
#ifndef HR_STORAGE_SNAPSHOT_H
#define HR_STORAGE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/error.h"
#include "../core/raft.h"

struct hr_fs;

/* Version 2 holds the configuration (with addresses); version 1, voter ids only, is still
 * read (docs/storage-format.md). */
#define HR_SNAP_FORMAT_VERSION 2
#define HR_SNAP_MAX_VOTERS 64
/* The largest configuration hr_conf_encode makes (raft.h: count, then per server id, flags,
 * address length and address). */
#define HR_SNAP_MAX_CONF (5 + HR_MAX_NODES * (11 + HR_MAX_ADDR))

#define HR_SNAP_MAX_HEADER_V1 (32 + 8 * HR_SNAP_MAX_VOTERS + 8)
#define HR_SNAP_MAX_HEADER (32 + 8 + HR_SNAP_MAX_CONF + 8)
#define HR_SNAP_TRAILER_SIZE 20

/* What a snapshot file's header and trailer say. */
struct hr_snap_info {
    uint64_t index, term;
    uint32_t version;
    /* Version 1: the voters. */
    uint32_t n_voters;
    uint64_t voters[HR_SNAP_MAX_VOTERS];
    /* Version 2: the configuration's entry index, and where its bytes are in the file
     * (hr_snap_read_conf reads them). */
    uint64_t conf_index;
    uint32_t conf_len;
    uint64_t conf_offset;
    uint64_t payload_offset; /* where the payload starts in the file */
    uint64_t payload_size;
    uint64_t file_size;      /* header + payload + trailer */
};

/* "<dir>/snapshots" into buf. */
void hr_snap_dir(const char *data_dir, char *buf, size_t len);
/* The file name of (index, term), without directory. */
void hr_snap_name(char *buf, size_t len, uint64_t index, uint64_t term);
/* Parse a final file name; false if name is not one. */
bool hr_snap_parse_name(const char *name, uint64_t *index, uint64_t *term);
/* The path of (index, term) in data_dir. */
void hr_snap_path(const char *data_dir, uint64_t index, uint64_t term, char *buf, size_t len);

/* ---- framing, for writers elsewhere (a forked child writing through its own fd) ----
 * A file is header | payload | trailer. The header's bytes go into h (HR_SNAP_MAX_HEADER
 * bytes); returns its length. The trailer (HR_SNAP_TRAILER_SIZE bytes) takes the payload's
 * size and crc = the CRC32C (hr_crc32c) of the header and payload, continued. */
size_t hr_snap_header(unsigned char *h, uint64_t index, uint64_t term, const void *conf,
                      uint32_t conf_len, uint64_t conf_index);
/* The header of format version 1 (voter ids; HR_SNAP_MAX_HEADER_V1 bytes at most): for
 * tests of the reader's compatibility with files written before version 2. */
size_t hr_snap_header_v1(unsigned char *h, uint64_t index, uint64_t term,
                         const uint64_t *voters, uint32_t n_voters);
void hr_snap_trailer(unsigned char *t, uint64_t payload_size, uint32_t crc);
/* A whole file written and fdatasynced at tmp_path by someone else: check its header
 * names (index, term), rename it to its final name in data_dir/snapshots and fsync the
 * directory. The checksum is not re-read (the writer computed it as it wrote). */
int hr_snap_commit(struct hr_fs *fs, const char *data_dir, const char *tmp_path,
                   uint64_t index, uint64_t term, struct hr_snap_info *info, char *err,
                   size_t errlen);

/* ---- writing a local snapshot ---- */
struct hr_snap_writer;
/* Create snapshots/ if needed and start <name>.snap.tmp (an older one is replaced), with the
 * configuration conf (hr_conf_encode's bytes; conf_len 0: none) made by the entry at
 * conf_index. */
int hr_snap_writer_open_conf(struct hr_fs *fs, const char *data_dir, uint64_t index,
                             uint64_t term, const void *conf, size_t conf_len,
                             uint64_t conf_index, struct hr_snap_writer **out, char *err,
                             size_t errlen);
/* The same with a configuration of these voters without addresses (conf_index 0), for
 * embeddings whose membership never changes (the simulator's real-storage disk). */
int hr_snap_writer_open(struct hr_fs *fs, const char *data_dir, uint64_t index, uint64_t term,
                        const uint64_t *voters, size_t n_voters, struct hr_snap_writer **out,
                        char *err, size_t errlen);
int hr_snap_writer_write(struct hr_snap_writer *w, const void *data, size_t len);
/* Header, checksum, fsync, rename to the final name, fsync the directory; frees w. On
 * failure the temporary file is removed. *file_size: the size of the file. */
int hr_snap_writer_finish(struct hr_snap_writer *w, uint64_t *file_size, char *err,
                          size_t errlen);
/* Remove the temporary file and free w. */
void hr_snap_writer_abort(struct hr_snap_writer *w);
/* The message of a failed write. */
const char *hr_snap_writer_errmsg(const struct hr_snap_writer *w);

/* ---- reading ---- */
/* Read and check the header of a file open as handle fd of fs (size: the file's size).
 * HR_ECORRUPT. */
int hr_snap_read_header(struct hr_fs *fs, int fd, uint64_t size, struct hr_snap_info *info,
                        char *err, size_t errlen);
/* The configuration bytes of the file at path whose header said info (version 2; checked
 * against the header's checksum again): 0 and a malloc'd copy in *conf (the caller frees
 * it; NULL when conf_len is 0). A version 1 file has none: *conf = NULL (use
 * info->voters). */
int hr_snap_read_conf(struct hr_fs *fs, const char *path, const struct hr_snap_info *info,
                      uint8_t **conf, char *err, size_t errlen);
/* Header and whole-file checksum of path. */
int hr_snap_verify(struct hr_fs *fs, const char *path, struct hr_snap_info *info, char *err,
                   size_t errlen);
/* The newest valid snapshot of data_dir: 0 and *found = false if there is none. Newer
 * damaged files and leftover temporary files are skipped and described in info (never
 * deleted: a damaged file may be the only copy someone needs to inspect). */
int hr_snap_find(struct hr_fs *fs, const char *data_dir, struct hr_snap_info *out,
                 bool *found, char *info, size_t infolen, char *err, size_t errlen);
/* Remove every snapshot file of data_dir older than (index, term), and stale temporary
 * files of received snapshots. Best effort: returns the number removed. */
int hr_snap_prune(struct hr_fs *fs, const char *data_dir, uint64_t index, uint64_t term);

/* ---- receiving (InstallSnapshot) ---- */
struct hr_snap_recv;
/* Start receiving the snapshot (index, term) into <name>.recv (replacing any old one). */
int hr_snap_recv_open(struct hr_fs *fs, const char *data_dir, uint64_t index, uint64_t term,
                      struct hr_snap_recv **out, char *err, size_t errlen);
uint64_t hr_snap_recv_index(const struct hr_snap_recv *r);
uint64_t hr_snap_recv_term(const struct hr_snap_recv *r);
/* The bytes held (the next offset it takes). */
uint64_t hr_snap_recv_size(const struct hr_snap_recv *r);
/* Write len bytes at offset, which must be hr_snap_recv_size() (HR_EINVAL otherwise). */
int hr_snap_recv_write(struct hr_snap_recv *r, uint64_t offset, const void *data, size_t len,
                       char *err, size_t errlen);
/* Check the file (header for index and term, checksum), fsync, rename to the final name,
 * fsync the directory. Blocks on the disk: run it off the loop thread. The receiver stays
 * allocated (free it with hr_snap_recv_free); on failure its file is removed. */
int hr_snap_recv_finish(struct hr_snap_recv *r, struct hr_snap_info *info, char *err,
                        size_t errlen);
/* Free r, removing its temporary file unless it was finished. */
void hr_snap_recv_free(struct hr_snap_recv *r);

struct hr_inspect_names; /* log.h */
/* List the snapshot files of data_dir and check each (for helios inspect; names as there,
 * may be NULL). Returns 0 if every .snap is sound, HR_ECORRUPT otherwise. */
int hr_snap_inspect(struct hr_fs *fs, const char *data_dir, const struct hr_inspect_names *names, FILE *out);

#endif
