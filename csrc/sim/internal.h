/*
 * internal.h: the simulator's state, shared by sim.c (lifecycle, events, faults), net.c
 * (the simulated network), snap.c (taking snapshots) and xfer.c (InstallSnapshot streams).
 * Private to csrc/sim.
 */
#ifndef HR_SIM_INTERNAL_H
#define HR_SIM_INTERNAL_H

#include "../core/prng.h"
#include "check.h"
#include "disk.h"
#include "queue.h"
#include "sim.h"

/* Why the simulation stopped: an invariant broke; a hook (the embedding's code) failed. */
#define HR__STOP_INVARIANT HR_ECORRUPT
#define HR__STOP_HOOK HR_EIO

enum {
    HR__EV_DELIVER = 1,
    HR__EV_DURABLE,
    HR__EV_TICK,
    HR__EV_FLUSH,
    HR__EV_SNAP_CHECK, /* time to check the snapshot threshold */
    HR__EV_SNAP_DONE,  /* the snapshot being written is durable */
    HR__EV_SNAP_SLICE, /* the next slice of a snapshot the FSM takes in slices */
};

/* One scheduled event. Events of an older incarnation of their node are ignored. */
struct hr__ev {
    int kind;
    hr_id_t node;      /* DELIVER: the receiver */
    uint64_t inc;      /* all but DELIVER: the node's incarnation */
    uint64_t aux;      /* DURABLE: the batch seq; TICK: the tick generation */
    struct hr_msg msg; /* DELIVER: a deep copy, owned by the event */
    struct hr__ev *next_free;
};

struct hr__simnode {
    struct hr_sim *sim;
    hr_id_t id;
    struct hr_node *node; /* NULL while crashed */
    bool alive, connected;
    uint32_t group;
    uint64_t inc, restarts;
    bool tick_pending;
    hr_time_t tick_at;
    uint64_t tick_gen;
    bool flush_pending; /* proposals wait in the core for a FLUSH event (group commit) */
    hr_time_t stalled_until; /* hr_sim_stall: its events wait until then (sim.c) */
    struct hr__disk disk;
    hr_index_t disk_last; /* the log's last index once every pending batch is durable */
    char note[256];       /* what the last start's recovery said (hr_sim_node_note) */
    bool halt;            /* crash this node once the event is done (sim.c: run_halts): its
                           * apply hook asked, or a crash point hit its storage */
    bool corrupted;       /* hr_sim_corrupt hit its disk: a refused open is expected */
    bool spawned;         /* hr_sim_spawn made it: it starts in no configuration (its own
                           * comes from the log or a snapshot) */
    /* InstallSnapshot streams of this incarnation, indexed by peer id - 1: those it sends
     * and those it assembles (xfer.c). */
    struct hr__xfer_out *xout;
    struct hr__xfer_in *xin;
    uint64_t applied_bytes; /* payload applied since its last snapshot (snapshot_threshold_bytes) */
    bool snap_soon;         /* a byte-triggered SNAP_CHECK is queued */
    /* A snapshot the FSM takes in slices (index 0: none): the entry it covers, and the
     * configuration in effect there, fixed at its first slice (snap.c). */
    struct {
        hr_index_t index, conf_index;
        hr_term_t term;
        struct hr_blob *conf;
    } slicing;
};

struct hr_sim {
    struct hr_sim_options o;
    struct hr_sim_hooks hooks;
    uint32_t n;      /* nodes so far: ids 1..n (hr_sim_spawn adds one) */
    uint32_t n_boot; /* the first nodes, voters of the bootstrap configuration */
    hr_id_t *voters; /* their ids */
    struct hr__simnode *nodes; /* nodes[id - 1], HR_MAX_NODES of them */
    struct hr__queue q;
    struct hr__ev *free_evs;
    hr_time_t now;
    struct hr_prng net_prng, disk_prng;
    hr_time_t *link_last; /* link_last[(from - 1) * HR_MAX_NODES + to - 1]: last delivery */
    uint64_t rpc_count, rpc_bytes, events;
    uint64_t read_ctx; /* the last read context handed out (hr_sim_read) */
    struct hr_sim_snapshot_stats snap_stats;
    struct hr__check *check;
    /* hr_sim_capture: the first message on the armed link that fits, kept for
     * hr_sim_redeliver. */
    struct {
        bool armed, held;
        hr_id_t from, to;
        uint8_t type;
        bool reject;
        struct hr_msg msg;
    } capture;
    int stop_code;
    uint32_t halts; /* nodes with halt set: crashed once the current call is done */
    char err[640];
};

struct hr__ev *hr__sim_ev_new(struct hr_sim *s);
void hr__sim_ev_free(struct hr_sim *s, struct hr__ev *ev);
/* Stop the simulation with code and a message (the first stop wins). */
void hr__sim_stop(struct hr_sim *s, int code, const char *fmt, ...);

/* Schedule an event of node sn's current incarnation at `at`. */
void hr__sim_push_node_ev(struct hr_sim *s, struct hr__simnode *sn, int kind, uint64_t aux,
                          hr_time_t at);
/* After an input to sn: the incremental checks, then its next tick. */
void hr__sim_after_input(struct hr_sim *s, struct hr__simnode *sn);
/* The checker found a violation: stop with its message. */
void hr__sim_check_failed(struct hr_sim *s);
/* A storage step of sn failed with rc (disk.h): a crash point crashes the node once the
 * event is done; anything else stops the simulation (what: the step). */
void hr__sim_disk_failed(struct hr_sim *s, struct hr__simnode *sn, int rc, const char *what);

/* net.c: struct hr_network's send, with ctx = the sending struct hr__simnode. */
void hr__net_send(void *ctx, const struct hr_msg *m);
/* Put a message of the simulator's own (snapshot chunks and acknowledgements) on the
 * network from m->from, with the faults of any message; counted like the nodes' ones. */
void hr__net_post(struct hr_sim *s, const struct hr_msg *m);
/* May a message from `from` reach `to` now? */
bool hr__net_open(const struct hr_sim *s, hr_id_t from, hr_id_t to);

/* xfer.c: InstallSnapshot streams. */
struct hr__xfer_out; /* a stream sn sends to one peer */
struct hr__xfer_in;  /* a stream sn assembles from one peer */
/* Allocate sn's stream tables (n peers). 0 or HR_ENOMEM. */
int hr__xfer_init(struct hr__simnode *sn, uint32_t n);
/* Forget sn's streams (a crash: they were in memory). */
void hr__xfer_reset(struct hr__simnode *sn);
void hr__xfer_free(struct hr__simnode *sn);
/* The core of sn sent an offer (a SNAPSHOT message without bytes): stream sn's durable
 * snapshot if it is the one offered, resuming where the receiver's last acknowledgement
 * said it was. */
void hr__xfer_offer(struct hr__simnode *sn, const struct hr_msg *m);
/* A chunk (SNAPSHOT) or an acknowledgement (SNAPSHOT_RESP) arrived at the live node sn. */
void hr__xfer_deliver(struct hr__simnode *sn, const struct hr_msg *m);

/* snap.c: taking snapshots. */
/* A snapshot as the simulator stores and streams it: the configuration in effect at its
 * index (raft.h, hr_raft_snapshot_conf) framed ahead of the FSM's bytes, so that it
 * survives on the production storage (a snapshot file's payload) and travels with
 * InstallSnapshot: u64 conf index, u32 conf length, the conf, the FSM bytes (little-endian).
 * frame: 0 and a new blob in *out, or HR_ENOMEM. unframe: 0 and new blobs in *conf (NULL
 * if empty) and *fsm, or HR_ECORRUPT. */
int hr__snap_frame(const struct hr_blob *conf, hr_index_t conf_index, const struct hr_blob *fsm,
                   struct hr_blob **out);
int hr__snap_unframe(const struct hr_blob *framed, struct hr_blob **conf, hr_index_t *conf_index,
                     struct hr_blob **fsm);
/* Schedule sn's first threshold check (when the policy has a threshold). */
void hr__snap_start(struct hr_sim *s, struct hr__simnode *sn);
/* Run a SNAP_CHECK or SNAP_DONE event of the live node sn. A SNAP_CHECK with by_bytes
 * (aux 1) is the one hr__snap_applied queued: it does not schedule the next periodic check. */
void hr__snap_check(struct hr_sim *s, struct hr__simnode *sn, bool by_bytes);
/* sn's FSM applied an entry of `bytes` payload: count it, and queue a check past
 * snapshot_threshold_bytes (not from inside the apply: the node's code is on the stack). */
void hr__snap_applied(struct hr_sim *s, struct hr__simnode *sn, size_t bytes);
void hr__snap_done(struct hr_sim *s, struct hr__simnode *sn);
/* Run a SNAP_SLICE event of the live node sn: the next slice of its snapshot. */
void hr__snap_slice(struct hr_sim *s, struct hr__simnode *sn);
/* Forget sn's snapshot in slices, if any (a crash; the simulation's end). */
void hr__snap_reset(struct hr__simnode *sn);
/* Take a snapshot of sn's FSM now (see hr_sim_snapshot). */
int hr__snap_take(struct hr_sim *s, struct hr__simnode *sn, hr_index_t *index);

#endif
