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

#include "../core/hist.h"
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
    /* Without join: the initial voters, this node included, the bootstrap configuration of
     * an empty data dir (with their addresses). With join: addresses to dial (e.g. the
     * existing members; may be empty), not a configuration. */
    const struct hr_runtime_peer *peers;
    size_t n_peers;
    /* Start an empty data dir with an empty configuration: the node waits until a leader
     * adds it (it never campaigns before). listen is required unless peers names this
     * node. A data dir that has a log or a snapshot uses its own configuration either way. */
    bool join;
    /* Timeouts, batching, prevote...: id, voters and seed are filled in by the runtime. */
    struct hr_config raft;
    /* Entries kept before a snapshot's index for followers a little behind (0: none). */
    uint32_t trailing_logs;
    /* And at most this many payload bytes of them (0: no byte cap): big entries would make
     * trailing_logs alone keep gigabytes in memory. */
    uint64_t trailing_logs_bytes;
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
    /* Optional, in place of apply: the same entries, a run of n >= 1 at a time (a ready
     * batch's, as struct hr_fsm's apply gets them). hr_runtime_applied() is the run's last index for the whole
     * call: a snapshot taken from inside it passes the index the FSM has reached
     * (hr_runtime_snapshot_point). */
    void (*apply_batch)(void *ctx, const struct hr_entry *e, size_t n);
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
    /* A read asked with hr_runtime_read_index: status 0, the FSM has applied up to index
     * and the read may be served now (from inside the callback: the next apply may come
     * right after it); HR_ENOTLEADER / HR_ETIMEOUT: the read failed (never serve it);
     * HR_ESHUTDOWN: the node holding it went (shutdown, storage failure). Once per read,
     * after the applies of the same batch. time_ms (status 0): the leader's clock when it
     * fixed the read index (the clock entries are stamped with), 0 unknown. May be NULL
     * when no reads are asked. */
    void (*read)(void *ctx, uint64_t read_ctx, hr_index_t index, hr_time_t time_ms,
                 int status);
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

/*
 * Membership (leader only, as hr_raft_add / hr_raft_remove; raft.h "Membership"). A
 * server's address in a configuration is its name, one 0 byte, then its network address
 * ("node-4\0127.0.0.1:9004"), and its core id is hr_tcp_node_id(name): every node learns
 * the names and addresses of the others from its log and snapshots, and dials them. 0 and
 * the index of the config entry appended (0 when none was, e.g. a promotion armed);
 * HR_ENOTLEADER, HR_EBUSY, HR_EINVAL (as raft.h; also: a name that hashes like another
 * known server's, or a bad address), HR_ESHUTDOWN, HR_ENOSPACE.
 */
int hr_runtime_add(struct hr_runtime *rt, const char *name, const char *addr, bool voter,
                   hr_index_t *index);
int hr_runtime_remove(struct hr_runtime *rt, const char *name, hr_index_t *index);
/* A linearizable read (hr_raft_read_index): its answer comes through cb.read. ctx is the
 * caller's, unique among its reads in flight. 0; HR_ENOTLEADER at once when no leader is
 * known; HR_ESHUTDOWN, HR_ENOSPACE, HR_ENOMEM. */
int hr_runtime_read_index(struct hr_runtime *rt, uint64_t ctx);
/* Leadership transfer to name (NULL: the most up-to-date voter), hr_raft_transfer: 0,
 * HR_ENOTLEADER, HR_EBUSY, HR_EINVAL (unknown name, itself, a learner, no other voter),
 * HR_ESHUTDOWN. The new leader shows through cb.state. */
int hr_runtime_transfer(struct hr_runtime *rt, const char *name);
/* The name of the transfer's target while one is under way, else NULL. */
const char *hr_runtime_transferee(const struct hr_runtime *rt);

/* One server of the configuration (hr_runtime_configuration). Strings are borrowed until
 * the next call into the runtime or the next loop turn. */
struct hr_runtime_server {
    hr_id_t id;
    const char *name; /* NULL if the configuration does not carry it (see runtime.c) */
    const char *addr;
    bool voter;
    hr_index_t match; /* the leader's view; 0 elsewhere */
    bool caught_up;   /* the leader's view (close enough to promote); false elsewhere */
};
/* The configuration the node uses now: up to max servers into out (the count in *n), the
 * index of its entry (0: bootstrap), whether it is known committed, and the learner whose
 * promotion the leader waits for (0: none). 0, or HR_ESHUTDOWN when there is no node
 * (not started, storage failed, shutting down). */
int hr_runtime_configuration(struct hr_runtime *rt, struct hr_runtime_server *out, size_t max,
                             size_t *n, hr_index_t *index, bool *committed,
                             hr_id_t *promoting);
/* Whether this node knows it is out of the cluster (hr_raft_removed: a configuration it
 * used held it, the committed one does not; never a node waiting to join). The node logs
 * it once when it happens. */
bool hr_runtime_removed(const struct hr_runtime *rt);

/* Views. The raft is NULL before start, while the storage is failed and during
 * shutdown. */
struct hr_raft *hr_runtime_raft(struct hr_runtime *rt);
struct hr_node *hr_runtime_node(struct hr_runtime *rt);
/* The name of a numeric id (NULL if unknown), and its address: from the peers option and
 * every configuration the node has used. */
const char *hr_runtime_name_of(const struct hr_runtime *rt, hr_id_t id);
const char *hr_runtime_addr_of(const struct hr_runtime *rt, hr_id_t id);
const char *hr_runtime_name(const struct hr_runtime *rt);
/* The peers option (as given). */
size_t hr_runtime_peer_count(const struct hr_runtime *rt);
const struct hr_runtime_peer *hr_runtime_peer(const struct hr_runtime *rt, size_t i);
/* Whether the transport has an authenticated outbound connection to server id up. */
bool hr_runtime_peer_connected(const struct hr_runtime *rt, hr_id_t id);
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
    uint64_t bytes_received;  /* bytes of the chunks received */
};

/* Counters and histograms of the runtime for the metrics endpoint (docs/metrics.md).
 * Plain fields bumped on the loop thread where the event happens: no allocation, no lock
 * (histograms: core/hist.h). */
struct hr_runtime_metrics {
    uint64_t became[HR_LEADER + 1]; /* role changes by the role entered (enum hr_role) */
    uint64_t leader_changes;        /* a leader learned for a new term, or another one */
    struct hr_hist commit_us;       /* leader: a command's propose to its commit (µs) */
    struct hr_hist apply_us;        /* the apply callback's duration per entry (µs) */
    struct hr_hist snapshot_us;     /* taking a snapshot: snapshot_point to taken (µs) */
    struct hr_hist snapshot_bytes;  /* the file size of each snapshot taken */
};

struct hr_runtime_stats {
    struct hr_runtime_snap_stats snap;
    struct hr_node_stats node;   /* summed over rebuilds */
    struct hr_tcp_stats tcp;
    struct hr_group_stats group; /* storage rounds (one fsync each), batches, entries */
    uint64_t storage_failures, storage_recoveries;
    struct hr_runtime_metrics m;
};
void hr_runtime_stats(const struct hr_runtime *rt, struct hr_runtime_stats *s);
/* ---- snapshots ----
 * Taking one: the embedding asks for the point (the applied index and its term), writes
 * the FSM's state into a file (hr_runtime_snapshot_tmp_path; its framing is
 * storage/snapshot.h's, the configuration that of hr_runtime_snapshot_conf), fdatasyncs it,
 * and hands it over: hr_runtime_snapshot_taken renames it into place and syncs the
 * directory (on the loop thread), tells the core, compacts the log (on the storage
 * thread) and removes the previous snapshot. */
/* The point at `applied`, the last index the FSM has applied (0: hr_runtime_applied(),
 * which an apply_batch call has already moved to the end of its run). HR_EINVAL if there is
 * nothing new to snapshot (nothing applied since the current one), applied is beyond what
 * was handed to the FSM, or there is no node. */
int hr_runtime_snapshot_point(struct hr_runtime *rt, hr_index_t applied, hr_index_t *index,
                              hr_term_t *term);
/* data_dir/snapshots/<name>.tmp for (index, term) into buf; an old file of that name is
 * removed (the writer creates it exclusively). */
void hr_runtime_snapshot_tmp_path(struct hr_runtime *rt, hr_index_t index, hr_term_t term,
                                  char *buf, size_t len);
/* The configuration in effect at index (hr_raft_snapshot_conf: encoded, borrowed until the
 * next call into the runtime; NULL if there is no node) and in *conf_index the index of
 * its entry: what the snapshot file through index holds. */
const struct hr_blob *hr_runtime_snapshot_conf(struct hr_runtime *rt, hr_index_t index,
                                               hr_index_t *conf_index);
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
