/*
 * runtime_impl.h: the state of a struct hr_runtime, shared by the files of the production
 * node (not for other layers):
 *
 *   runtime.c             life cycle, storage, timers, the ready loop's collaborators
 *   runtime_membership.c  known servers (names, addresses), membership changes, reads,
 *                         transfers
 *   runtime_snapshot.c    snapshots: taking one, installing one, InstallSnapshot in chunks
 *
 * Threading: the loop's thread (runtime.h).
 */
#ifndef HR_NODE_RUNTIME_IMPL_H
#define HR_NODE_RUNTIME_IMPL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#endif
#include <uv.h>

#include "node_storage.h"
#include "../storage/snapshot.h"
#include "runtime.h"

/* An outgoing snapshot transfer (leader side): the file is read at offsets and sent in
 * chunks, at most `window` unacknowledged. The descriptor stays open, so a newer snapshot
 * may replace the file meanwhile (unlinked, still readable) without breaking the stream. */
struct hr__xfer {
    hr_id_t to; /* 0: slot free */
    int fd;
    hr_index_t index;
    hr_term_t term;
    uint64_t size;
    uint64_t next;    /* next offset to send */
    uint64_t acked;   /* bytes the receiver holds */
    uint64_t rewound; /* the offset of the last resume (one resume per lost chunk) */
    hr_time_t last_progress;
};

/* A server the runtime knows by name and address: the peers option's, and every server of
 * a configuration the core has used (runtime.c, sync_conf). */
struct hr__rt_server {
    hr_id_t id;
    char *name, *addr;
    bool pinned; /* the address is the peers option's: configurations do not change it */
};

/* Proposals remembered for the commit latency (a ring indexed by log index: a slot is
 * overwritten by a later proposal, and an entry whose slot holds another index is not
 * measured; so at most this many proposals in flight are). */
#define HR__RT_PROPOSED 1024
struct hr__rt_proposed {
    hr_index_t index;
    hr_term_t term;
    uint64_t ns; /* uv_hrtime() when proposed */
};

struct hr_runtime {
    uv_loop_t *loop;
    struct hr_runtime_callbacks cb;
    char *name, *data_dir, *listen, *cluster_id;
    struct hr_fs *fs; /* config.fs: NULL is the real file system */
    unsigned char *secret;
    size_t secret_len;
    struct hr_runtime_peer *peers; /* strings owned */
    hr_id_t *ids;
    size_t n_peers;
    hr_id_t id;
    bool join; /* start with an empty configuration (runtime.h, config.join) */
    /* Known servers (names and addresses for ids; each one but this node is a transport
     * peer). Grows only: see sync_conf in runtime.c for why servers that left stay. */
    struct hr__rt_server *known;
    size_t n_known, cap_known;
    bool removed_said; /* the log said that this node is out (once per time it happens) */
    /* Reads asked (hr_runtime_read_index) and not answered yet: failed with HR_ESHUTDOWN
     * when the node that holds them goes (storage failure, shutdown). */
    uint64_t *reads;
    size_t n_reads, cap_reads;
    /* The configuration in effect at the current snapshot's index (the snapshot file's,
     * hr_snap_read_conf; NULL: none known, e.g. a version 1 file) and its entry's index. */
    struct hr_blob *snap_conf;
    hr_index_t snap_conf_index;
    struct hr_config raft;
    int64_t clock_offset; /* node clock = uv_now + clock_offset */
    uint32_t trailing_logs;
    uint64_t trailing_logs_bytes; /* 0: no byte cap */
    uint32_t chunk_bytes;

    struct hr_log *log;
    struct hr_group *group;
    struct hr_node_storage ns;
    struct hr_storage inner;   /* the adapter's write */
    struct hr_storage storage; /* ours: shifts sequence numbers (see the top comment) */
    struct hr_network net; /* the node's: hr__rt_send over tcp */
    struct hr_tcp *tcp;
    struct hr_node *node;

    uv_timer_t tick, retry;
    uv_prepare_t prepare;
    /* A follower's tick timer only marks a tick due; this handle ticks after the loop's
     * poll for input (runtime.c, tick_cb). */
    uv_check_t tick_check;
    bool tick_due;

    uint64_t gseq;     /* the last group sequence number used */
    uint64_t seq_base; /* group seq = seq_base + node seq */
    struct hr_hard_state hs; /* the newest term and vote the node asked to persist */
    hr_index_t applied;
    bool started, closing;
    int failed;
    bool probing;
    uint64_t probe_seq;

    /* The current snapshot (index 0: none): the newest durable one, what the core knows. */
    struct {
        hr_index_t index;
        hr_term_t term;
        uint64_t size;
    } snap;
    struct hr__xfer xfers[HR_MAX_NODES];
    /* The incoming transfer (follower side): one at a time, from the leader. */
    struct hr_snap_recv *recv;
    bool recv_finishing;   /* its fsync + rename runs on the threadpool */
    hr_id_t recv_from;
    hr_term_t recv_term;
    int recv_rc;
    struct hr_snap_info recv_info;
    char recv_err[256];
    uv_work_t recv_work;

    struct hr_node_stats past; /* counters of earlier node incarnations */
    uint64_t storage_failures, storage_recoveries;
    struct hr_runtime_snap_stats snap_stats;
    struct hr_runtime_metrics metrics;
    int last_role;            /* the role of the last state callback (role changes) */
    hr_id_t last_leader;      /* the last leader known, and its term (leader changes) */
    hr_term_t last_leader_term;
    uint64_t snap_point_ns;   /* uv_hrtime() of the last hr_runtime_snapshot_point */
    struct hr__rt_proposed proposed[HR__RT_PROPOSED];
    char errmsg[768];
    char info[1024];

    int closes_pending;
    void (*done)(void *);
    void *done_arg;
};

/* runtime.c */
void hr__rt_log(struct hr_runtime *rt, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hr__rt_close_step(struct hr_runtime *rt);
/* Count a role or leader change for the metrics (from every state report). */
void hr__rt_note_state(struct hr_runtime *rt, int role, hr_term_t term, hr_id_t leader);

/* runtime_membership.c */
/* Make every server of the core's configuration known (names, addresses, transport
 * peers). */
void hr__rt_sync_conf(struct hr_runtime *rt);
/* Whether id is a known server. */
bool hr__rt_known(const struct hr_runtime *rt, hr_id_t id);
/* Know a server (a transport peer too, unless it is this node, once the transport
 * exists). 0 or HR_ENOMEM. */
int hr__rt_add_known(struct hr_runtime *rt, hr_id_t id, const char *name, const char *addr);
/* The bootstrap configuration of the peers option: every peer a voter, with its address. */
int hr__rt_bootstrap_conf(struct hr_runtime *rt, struct hr_blob **out);
/* fsm.read of the node; and failing every read in flight with HR_ESHUTDOWN. */
void hr__rt_read(void *ctx, uint64_t read_ctx, hr_index_t index, hr_time_t time_ms, int status);
void hr__rt_fail_reads(struct hr_runtime *rt);

/* runtime_snapshot.c */
/* struct hr_network's send for the node: snapshot offers start or resume a transfer. */
void hr__rt_send(void *ctx, const struct hr_msg *m);
/* A SNAPSHOT or SNAPSHOT_RESP from the network; false if m is another type. */
bool hr__rt_recv_snapshot(struct hr_runtime *rt, const struct hr_msg *m);
/* storage.install and fsm.restore of the node. */
int hr__rt_install(void *ctx, uint64_t seq, hr_index_t index, hr_term_t term,
                   struct hr_blob *data);
void hr__rt_restore(void *ctx, hr_index_t index, hr_term_t term, struct hr_blob *data);
/* Read the configuration of the snapshot file (index, term) into rt->snap_conf (a version 1
 * file's voters with the addresses the runtime knows). 0 or HR_E* with a message in err. */
int hr__rt_load_snap_conf(struct hr_runtime *rt, hr_index_t index, hr_term_t term,
                          char *err, size_t errlen);
/* Close transfers (shutdown, lost leadership); a finishing receiver holds a close step. */
void hr__rt_snapshot_close(struct hr_runtime *rt);

#endif
