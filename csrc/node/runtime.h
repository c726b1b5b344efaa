/*
 * runtime.h: the production node. One struct hr_node (node.h) on a libuv loop, with durable
 * storage (storage/log.h, group commit on the threadpool through storage/node_storage.h), the
 * TCP transport (transport/transport.h), a timer armed at the core's next deadline and a
 * per-loop-turn flush.
 *
 *   struct hr_runtime *rt = hr_runtime_new(loop, &config, &callbacks, err, sizeof err);
 *   hr_runtime_start(rt, err, sizeof err);      // lock + recover the data dir, listen
 *   hr_runtime_propose(rt, cmd, len, &index, &term);
 *   hr_runtime_shutdown(rt, done, arg);         // done(arg) once everything is closed
 *
 * Batching: a proposal only feeds the core; a uv_prepare handle flushes the node once per
 * loop turn, before the loop blocks, so the proposals of one turn go out as one storage
 * batch (one fsync) and one AppendEntries per follower.
 *
 * Clock: the node's clock is uv_now() of the loop shifted to the Unix epoch once at start
 * (monotonic, but comparable across nodes to the accuracy of their wall clocks), so that
 * entry stamps (entry.time_ms) mean the same on every replica.
 *
 * Storage failure (ENOSPC, EIO, a read-only disk): the runtime drops its node (a leader
 * thereby stops leading: it no longer sends heartbeats, and the others elect another),
 * refuses proposals with HR_ENOSPACE and reports through cb.error. Every second it retries
 * the storage with a probe write of the hard state; once that succeeds it rebuilds the node
 * from what is durable, with applied = what the FSM already holds, and reports recovery
 * with cb.error(ctx, 0, message).
 *
 * Snapshots (runtime_snapshot.c): the current snapshot is restored by the embedding after
 * start (hr_runtime_snapshot_path) and the log after it replayed; a follower whose entries
 * the leader compacted gets the snapshot file in chunks (window of 4, resumed from the
 * receiver's offset after a loss), written to a temporary file and renamed when whole.
 *
 * Threading: the loop's thread only. Callbacks (apply, state, error) are called from loop
 * callbacks, never from inside hr_runtime_* calls, so the caller may call any hr_runtime_*
 * function from them (shutdown is deferred to a later loop turn for that reason).
 * Ownership: the loop is borrowed and must outlive the runtime; config strings are copied.
 */
#ifndef HR_NODE_RUNTIME_H
#define HR_NODE_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include "../storage/group.h"
#include "../storage/log.h"
#include "../transport/transport.h"
#include "node.h"

struct hr_runtime;

struct hr_runtime_peer {
    const char *name; /* configured id, "node-1" */
    const char *addr; /* "host:port" */
};

struct hr_runtime_config {
    const char *name;       /* this node's id; must be one of peers */
    const char *data_dir;
    const char *listen;     /* NULL: this node's address in peers */
    const char *cluster_id; /* NULL: "helios" */
    const void *secret;
    size_t secret_len;
    const struct hr_runtime_peer *peers; /* the initial voters, this node included */
    size_t n_peers;
    /* Timeouts, batching, prevote...: id, voters and seed are filled in by the runtime. */
    struct hr_config raft;
    /* Entries kept before a snapshot's index for followers a little behind (0: none). */
    uint32_t trailing_logs;
    /* The size of an InstallSnapshot chunk (0: 256 KiB). */
    uint32_t snapshot_chunk_bytes;
    /* The file system of the data dir's log and snapshot files (storage/fs.h); NULL: the
     * real one. Borrowed: it must outlive the runtime (until shutdown's done). Tests pass a
     * fault-injecting one (csrc/testkit) to make writes or syncs fail. */
    struct hr_fs *fs;
};

struct hr_runtime_callbacks {
    void *ctx;
    /* Each committed entry, once, in order (no-ops too: the caller skips them). */
    void (*apply)(void *ctx, const struct hr_entry *e);
    /* Role, term or leader changed; leader is the configured name or NULL. */
    void (*state)(void *ctx, int role, hr_term_t term, const char *leader);
    /* code < 0: a failure (storage: HR_ENOSPACE, HR_EIO...); code 0: recovered. */
    void (*error)(void *ctx, int code, const char *msg);
    /* Operator messages of the transport (refused peers, bad frames); may be NULL. */
    void (*log)(void *ctx, int level, const char *msg);
    /* A snapshot from the leader was installed: replace the FSM's state with the current
     * snapshot's payload (hr_runtime_snapshot_path); entries after index follow through
     * apply. Required where snapshots may travel (any cluster of more than one node). */
    void (*restore)(void *ctx, hr_index_t index, hr_term_t term);
};

/* Validate config and create the runtime; nothing is opened yet. NULL with a message in
 * err on a bad config or out of memory. */
struct hr_runtime *hr_runtime_new(uv_loop_t *loop, const struct hr_runtime_config *config,
                                  const struct hr_runtime_callbacks *cb, char *err,
                                  size_t errlen);
/* Open and lock the data dir (HR_EBUSY naming the holder's pid if another process or
 * node holds it), recover term, vote and entries, listen and dial peers, start timers.
 * On failure everything opened is closed again and the runtime may only be shut down. */
int hr_runtime_start(struct hr_runtime *rt, char *err, size_t errlen);
/* Append a command (leader only): 0 and its index and term; HR_ENOTLEADER,
 * HR_ENOSPACE (storage failed), HR_ESHUTDOWN (not started or shutting down). */
int hr_runtime_propose(struct hr_runtime *rt, const void *data, size_t len, hr_index_t *index,
                       hr_term_t *term);
/* Stop timers, close the transport and the storage (a storage round in flight finishes
 * first), release the lock, free rt, then call done(arg) from a loop callback. Safe from
 * inside the runtime's own callbacks. Call once; rt is invalid afterwards. */
void hr_runtime_shutdown(struct hr_runtime *rt, void (*done)(void *arg), void *arg);

/* Views. The raft is NULL before start, while the storage is failed and during
 * shutdown. */
struct hr_raft *hr_runtime_raft(struct hr_runtime *rt);
struct hr_node *hr_runtime_node(struct hr_runtime *rt);
/* The configured name of a numeric id (NULL if unknown), and its address. */
const char *hr_runtime_name_of(const struct hr_runtime *rt, hr_id_t id);
const char *hr_runtime_addr_of(const struct hr_runtime *rt, hr_id_t id);
const char *hr_runtime_name(const struct hr_runtime *rt);
size_t hr_runtime_peer_count(const struct hr_runtime *rt);
const struct hr_runtime_peer *hr_runtime_peer(const struct hr_runtime *rt, size_t i);
/* 0, or the HR_E* of the storage failure that stopped writes. */
int hr_runtime_failed(const struct hr_runtime *rt);
const char *hr_runtime_errmsg(const struct hr_runtime *rt);
/* What crash recovery did when the data dir was opened ("" if nothing). */
const char *hr_runtime_recovery_info(const struct hr_runtime *rt);
/* The last index given to the FSM (it survives node rebuilds). */
hr_index_t hr_runtime_applied(const struct hr_runtime *rt);
/* The node's clock now (see the clock paragraph above). */
hr_time_t hr_runtime_now(const struct hr_runtime *rt);

/* Snapshots: local ones taken, chunks of InstallSnapshot sent and received. Installed
 * ones are node.snapshots_installed. */
struct hr_runtime_snap_stats {
    uint64_t taken;
    uint64_t transfers;       /* transfers started to followers */
    uint64_t chunks_sent, bytes_sent;
    uint64_t resumes;         /* a lost chunk made a sender go back to the receiver's offset */
    uint64_t chunks_received;
};

struct hr_runtime_stats {
    struct hr_runtime_snap_stats snap;
    struct hr_node_stats node;   /* summed over rebuilds */
    struct hr_tcp_stats tcp;
    struct hr_group_stats group; /* storage rounds (one fsync each), batches, entries */
    uint64_t storage_failures, storage_recoveries;
};
void hr_runtime_stats(const struct hr_runtime *rt, struct hr_runtime_stats *s);
/* ---- snapshots ----
 * Taking one: the embedding asks for the point (the applied index and its term), writes
 * the FSM's state into a file (hr_runtime_snapshot_tmp_path; its framing is
 * storage/snapshot.h's, the voters those of hr_runtime_snapshot_voters), fdatasyncs it,
 * and hands it over: hr_runtime_snapshot_taken renames it into place and syncs the
 * directory (on the loop thread), tells the core, compacts the log (on the storage
 * thread) and removes the previous snapshot. */
/* HR_EINVAL if there is nothing new to snapshot (nothing applied since the current one)
 * or no node. */
int hr_runtime_snapshot_point(struct hr_runtime *rt, hr_index_t *index, hr_term_t *term);
/* data_dir/snapshots/<name>.tmp for (index, term) into buf; an old file of that name is
 * removed (the writer creates it exclusively). */
void hr_runtime_snapshot_tmp_path(struct hr_runtime *rt, hr_index_t index, hr_term_t term,
                                  char *buf, size_t len);
const hr_id_t *hr_runtime_snapshot_voters(const struct hr_runtime *rt, size_t *n);
/* The file at tmp_path holds the snapshot through (index, term), fdatasynced. 0; 1 if it
 * is not newer than the current snapshot (one was installed meanwhile: the file is
 * dropped); or an HR_E* with a message in err (the file is removed). */
int hr_runtime_snapshot_taken(struct hr_runtime *rt, hr_index_t index, hr_term_t term,
                              const char *tmp_path, char *err, size_t errlen);
/* The current snapshot (index 0 if none) and the path of its file. */
void hr_runtime_snapshot(const struct hr_runtime *rt, hr_index_t *index, hr_term_t *term,
                         uint64_t *size);
void hr_runtime_snapshot_path(const struct hr_runtime *rt, char *buf, size_t len);

#endif
