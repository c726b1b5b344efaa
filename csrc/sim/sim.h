/*
 * sim.h: a whole cluster in one process, on virtual time.
 *
 * N nodes (ids 1..N; Lua calls them "n1".."nN") run the real node code (csrc/node) over a
 * simulated network and simulated disks, driven by one event queue ordered by virtual time.
 * Everything random (network faults, disk latency, election timeouts) comes from PRNGs
 * derived from the one seed, so a run is replayed exactly from its seed and the same
 * sequence of calls.
 *
 * The network: per-message latency drawn from [delay_min, delay_max]; loss, duplication;
 * with reorder off each link delivers in send order. Partitions and disconnects are checked
 * both when a message is sent and when it would be delivered.
 *
 * The disk (csrc/sim/disk.h): by default the production storage over a crashing in-memory
 * file system (options storage, storage_faults, storage_crash); or a model of one. Each write
 * batch becomes durable after a random latency; a crash loses what was not synced (the
 * model keeps a random prefix of it, whole batches then part of the next one's entries;
 * real storage runs a random prefix of the pending batches with the crash landing among
 * their file operations, and the file system's flags decide what unsynced bytes survive). It also holds one durable
 * snapshot (index, term, bytes): writing a new one takes its own latency, a crash meanwhile
 * loses it and leaves the previous one, which is dropped only once the new one is durable.
 *
 * Snapshots (off unless snapshot_threshold or snapshot_threshold_bytes > 0, or on demand with
 * hr_sim_snapshot): every snapshot_interval_ms a node whose FSM applied snapshot_threshold
 * entries since its last snapshot takes one through the snapshot hook, and so does one
 * that applied more than snapshot_threshold_bytes of payload (checked on apply, the
 * snapshot taken in an event of its own at the same virtual time); once durable the node's
 * core learns of it (hr_node_snapshot_taken, keeping trailing_logs entries and at most
 * trailing_logs_bytes of them) and the disk drops the log before those. A restarted node restores its FSM from the disk's snapshot (the restore hook) and
 * replays the log after it. InstallSnapshot is modelled on the production protocol: the
 * core's offer (a SNAPSHOT message without bytes) makes the sender stream its durable
 * snapshot in chunks of snapshot_chunk_bytes through the simulated network (lost,
 * duplicated, delayed, reordered like any message); the receiver assembles them in order,
 * feeds each chunk to its core (term and leader checks), acknowledges the bytes it holds
 * with a SNAPSHOT_RESP (the sender resumes from there) and, once whole, hands its core the
 * final message with done set and every byte.
 *
 * Invariants (Raft paper Figure 3) are checked after every step: election safety, log
 * matching, leader completeness, state machine safety, and in-order apply. A violation stops
 * the simulation; hr_sim_error() says what broke.
 *
 * Threading: one thread; hooks are called from inside hr_sim_* calls.
 */
#ifndef HR_SIM_H
#define HR_SIM_H

#include "../node/node.h"

struct hr_sim;

struct hr_sim_net {
    double drop;          /* probability that a message is lost */
    double duplicate;     /* probability that a message is delivered twice */
    uint32_t delay_min_ms, delay_max_ms;
    bool reorder;         /* false: each link delivers in send order */
};

/* Callbacks into the embedding (the Lua binding). ctx is passed back. */
struct hr_sim_hooks {
    void *ctx;
    /* A committed entry reached node id's FSM. Returns 0; negative stops the simulation
     * with that error (the hook itself failed; the embedding keeps the message); positive
     * halts node id (its FSM refused to go on: on_fsm_error = "stop", API in
     * lua/helios/sim.lua): it is crashed as soon as the event being run is done, and may
     * be restarted like any crashed node. Entries applied meanwhile reach the hook too. */
    int (*apply)(void *ctx, hr_id_t id, const struct hr_entry *e);
    /* Node id's role, term or leader changed. May be NULL. */
    void (*state)(void *ctx, hr_id_t id, int role, hr_term_t term, hr_id_t leader);
    /* Node id is starting (at creation and on every restart) with an empty FSM. May be
     * NULL. */
    void (*start)(void *ctx, hr_id_t id);
    /* Serialize node id's FSM as of now (next false): 0 and a new blob in *out (the
     * simulator takes the reference), or non-zero to stop the simulation. NULL: no
     * snapshots can be taken. An FSM that takes its snapshots in slices, as a networked
     * node runs them (docs/fork-snapshot.md, "In slices"), returns 0 with *out NULL after
     * the first slice: the simulator then calls again with next true, 1 to 3 ms of virtual
     * time later, applying entries in between, until the bytes come (still of the state
     * as of the first call). A crash gives the snapshot up: the restarted node's FSM is a
     * new one. */
    int (*snapshot)(void *ctx, hr_id_t id, bool next, struct hr_blob **out);
    /* Replace node id's FSM state with the snapshot through (index, term): on a restart
     * (the FSM is the fresh one of start) and when the leader installs one. Non-zero stops
     * the simulation. NULL: snapshots cannot be restored (a restore then stops the
     * simulation). */
    int (*restore)(void *ctx, hr_id_t id, hr_index_t index, hr_term_t term,
                   const struct hr_blob *data);
    /* A snapshot of node id through (index, term) became durable: one it took itself, or
     * (installed) one its leader sent. May be NULL. */
    void (*snapshot_done)(void *ctx, hr_id_t id, hr_index_t index, hr_term_t term,
                          bool installed);
    /* Read read_ctx (hr_sim_read) on node id may be served now from its FSM (status 0: it
     * has applied up to the read index `index`; time_ms: the leader's virtual clock when it
     * fixed the index, 0 unknown), or failed (status HR_ENOTLEADER, HR_ETIMEOUT). May be
     * NULL. */
    void (*read)(void *ctx, hr_id_t id, uint64_t read_ctx, hr_index_t index, hr_time_t time_ms,
                 int status);
};

/* Snapshot policy and the cost of taking and sending one. */
/* Each field is named after the Lua option that sets it (csrc/lua/config.c,
 * csrc/lua/sim_binding.c; docs/lua-api.md), window excepted (not an option). */
struct hr_sim_snapshot {
    uint64_t snapshot_threshold;   /* applied entries since the last snapshot; 0: no
                                    * automatic ones */
    uint32_t snapshot_interval_ms; /* how often the threshold is checked */
    uint64_t trailing_logs;        /* entries kept before the snapshot for followers a little
                                    * behind */
    uint32_t snapshot_chunk_bytes; /* InstallSnapshot chunk size */
    uint64_t snapshot_threshold_bytes; /* also: payload bytes applied since the last
                                        * snapshot, checked on apply; 0: none (the default,
                                        * so that existing runs replay exactly) */
    uint64_t trailing_logs_bytes;      /* and at most these bytes of trailing entries kept;
                                        * 0: no byte cap */
    uint32_t window;               /* chunks in flight per transfer */
    /* snapshot_latency_ms = {min, max}: latency of a snapshot write until durable */
    uint32_t snapshot_latency_min_ms, snapshot_latency_max_ms;
};

struct hr_sim_options {
    uint32_t n;
    uint64_t seed;
    struct hr_config config;   /* id, voters and seed are set per node by the simulator */
    struct hr_sim_net net;
    /* disk_latency_ms = {min, max}: latency of a write batch until durable */
    uint32_t disk_latency_min_ms, disk_latency_max_ms;
    struct hr_sim_snapshot snap;
    /* Test only, to show that the checker catches what it breaks: a disk that installs a
     * snapshot keeps the log entries after its index instead of dropping the whole log, so
     * a node restarted before they are overwritten holds a tail that followed another
     * entry at the snapshot's index (csrc/sim/check.c checks the log across the boundary). */
    bool unsafe_install_keeps_log;
    /* Which storage the nodes run on (csrc/sim/disk.h): the production code of
     * csrc/storage over one crashing in-memory file system per node (HR_SIM_STORAGE_REAL,
     * the default, csrc/sim/simfs.h) or a model of a disk (HR_SIM_STORAGE_MODEL: about
     * twice as fast, build/sim_bench's default). */
    int storage;
    /* Real storage only. storage_faults: the file systems' crash flags (HR_SIMFS_*: what of
     * the unsynced writes a crash keeps). storage_crash: the probability that a storage
     * step (a batch, a snapshot write, a compaction) crashes the node in its middle, at
     * one of its next few file operations. segment_size: the log's segment size (small,
     * so that segments seal and compaction drops some). unsafe_install_keeps_log is
     * refused with it (it breaks the model only). A node that refuses to open its storage after a crash, without
     * hr_sim_corrupt having touched it, stops the simulation. */
    unsigned storage_faults;
    double storage_crash;
    uint64_t segment_size;
};

enum { HR_SIM_STORAGE_MODEL = 0, HR_SIM_STORAGE_REAL = 1 };

void hr_sim_options_defaults(struct hr_sim_options *o);

/* NULL on error, with a message in err. */
struct hr_sim *hr_sim_new(const struct hr_sim_options *o, const struct hr_sim_hooks *hooks,
                          char *err, size_t errlen);
void hr_sim_free(struct hr_sim *s);

/* Run one event. 1: ran one; 0: nothing is scheduled; negative: the simulation has stopped
 * (an invariant broke or a hook failed: see hr_sim_error). */
int hr_sim_step(struct hr_sim *s);
/* Run every event due up to and including `until`, then set the clock to `until`. 0 or
 * negative as hr_sim_step. */
int hr_sim_run_until(struct hr_sim *s, hr_time_t until);
hr_time_t hr_sim_now(const struct hr_sim *s);
/* The message of the failure that stopped the simulation, or NULL. */
const char *hr_sim_error(const struct hr_sim *s);
/* Check every invariant over the whole state now (hr_sim_step checks incrementally).
 * 0 or negative, as hr_sim_step. */
int hr_sim_check(struct hr_sim *s);

uint32_t hr_sim_size(const struct hr_sim *s);
bool hr_sim_alive(const struct hr_sim *s, hr_id_t id);
bool hr_sim_connected(const struct hr_sim *s, hr_id_t id);
/* The node's core, or NULL while the node is crashed. */
struct hr_raft *hr_sim_raft(struct hr_sim *s, hr_id_t id);
struct hr_node *hr_sim_node(struct hr_sim *s, hr_id_t id);

/* Faults. All return 0 or HR_EINVAL for an unknown id or a state that does not allow it. */
int hr_sim_crash(struct hr_sim *s, hr_id_t id);
/* Restart a crashed node from what its disk kept. Its storage recovery runs first: a torn
 * or corrupt last record is cut off (hr_sim_node_note says so); a corrupt record before the
 * tail makes the start fail with HR_ECORRUPT and the node stays down, while the simulation
 * goes on (the note names the record). Real storage: HR_EIO if a crash point hit the
 * recovery itself (the node stays down; the note says where). */
int hr_sim_restart(struct hr_sim *s, hr_id_t id);
/* Flip a bit in the durable log record at `index` of node id's disk (0: a random one), as
 * a fault of the medium. It shows when the node next starts. 0, or HR_EINVAL (no such
 * record); *index_out is the record hit. */
int hr_sim_corrupt(struct hr_sim *s, hr_id_t id, hr_index_t index, hr_index_t *index_out);
/* What node id's last start had to say about its disk ("" if nothing). */
const char *hr_sim_node_note(const struct hr_sim *s, hr_id_t id);
/* Hold up node id's process for ms (a long callback, a busy or descheduled machine, a
 * SIGSTOP): nothing addressed to it runs meanwhile, while the others go on. When it runs
 * again, over two virtual milliseconds, it does what the production runtime does after a
 * stall (csrc/node/runtime.c, tick_cb): a leader ticks first (heartbeats out), then the
 * messages and completions that waited go in, in their order, and only then does a
 * follower or candidate tick (judge its election timer). 0 or HR_EINVAL. */
int hr_sim_stall(struct hr_sim *s, hr_id_t id, uint32_t ms);
int hr_sim_disconnect(struct hr_sim *s, hr_id_t id);
int hr_sim_connect(struct hr_sim *s, hr_id_t id);
/* group[i] is the partition of node i+1; nodes talk only within their group. */
int hr_sim_partition(struct hr_sim *s, const uint32_t *group, size_t n);
void hr_sim_heal(struct hr_sim *s); /* one group again, and every node connected */
void hr_sim_set_network(struct hr_sim *s, const struct hr_sim_net *net);
/* Change storage_crash (real storage; p within [0, 1]). */
void hr_sim_set_storage_crash(struct hr_sim *s, double p);

/* Membership. spawn: a new node, id n + 1 (ids stay dense, at most HR_MAX_NODES), alive,
 * connected, with an empty disk and in no configuration: it waits for a leader to add it
 * (its address in a configuration is, by convention, its id in decimal; the simulated
 * network routes by id). 0 or HR_EINVAL. add / remove: on node id (alive), as
 * hr_raft_add / hr_raft_remove (raft.h), the output going out as a proposal's does. */
int hr_sim_spawn(struct hr_sim *s, hr_id_t id);
int hr_sim_add(struct hr_sim *s, hr_id_t id, hr_id_t peer, const void *addr, size_t addr_len,
               bool voter, hr_index_t *index);
int hr_sim_remove(struct hr_sim *s, hr_id_t id, hr_id_t peer, hr_index_t *index);

/* Propose on node id (which must be alive): hr_node_propose's result. */
int hr_sim_propose(struct hr_sim *s, hr_id_t id, uint8_t type, const void *data, size_t len,
                   hr_index_t *index, hr_term_t *term);

/* A linearizable read on node id (alive): 0 and its context in *ctx (the simulator's
 * counter), answered later through hooks.read; the checker verifies that a read served
 * reflects every entry applied anywhere before it began. HR_ENOTLEADER at once if the node
 * knows no leader. */
int hr_sim_read(struct hr_sim *s, hr_id_t id, uint64_t *ctx);
/* Leadership transfer on node id (its leader) to target (0: the most up-to-date voter):
 * hr_raft_transfer's result. */
int hr_sim_transfer(struct hr_sim *s, hr_id_t id, hr_id_t target);

/* Take a snapshot of node id's FSM now (it must be alive): 0 and the index it covers; the
 * write completes later. If nothing was applied since the last snapshot, 0 and that one's
 * index (nothing is written). HR_EBUSY: a snapshot write is in progress; HR_EINVAL: no such
 * node, crashed, nothing applied yet, or no snapshot hook; negative stop codes as
 * hr_sim_step if the hook failed. */
int hr_sim_snapshot(struct hr_sim *s, hr_id_t id, hr_index_t *index);

/* Node id's durable snapshot (also while it is crashed): false if it has none. */
bool hr_sim_snapshot_info(const struct hr_sim *s, hr_id_t id, hr_index_t *index, hr_term_t *term,
                          size_t *size);

struct hr_sim_snapshot_stats {
    uint64_t taken;       /* snapshots taken that became durable */
    uint64_t installed;   /* snapshots installed from a leader that became durable */
    uint64_t offers;      /* SNAPSHOT offers of the cores that started or resumed a stream */
    uint64_t chunks;      /* InstallSnapshot chunk messages sent */
    uint64_t chunk_bytes; /* snapshot bytes in them */
    uint64_t delivered;   /* whole snapshots handed to a receiving core (done set) */
};
void hr_sim_snapshot_stats(const struct hr_sim *s, struct hr_sim_snapshot_stats *out);

/* Real storage: proof that the faults happened (all 0 with the model). */
struct hr_sim_storage_stats {
    uint64_t crash_points;  /* storage steps cut by a crash point (the node then crashed) */
    uint64_t in_flight;     /* crashes that caught written batches in flight */
    uint64_t reboots;       /* file system reboots (crashes) */
    uint64_t files_reverted; /* files a reboot changed (unsynced bytes lost or kept) */
    uint64_t torn;          /* writes a reboot kept in part */
    uint64_t repaired;      /* restarts whose open or reconciliation repaired something */
    uint64_t reconciled;    /* restarts that emptied the log to continue the snapshot */
};
void hr_sim_storage_stats(const struct hr_sim *s, struct hr_sim_storage_stats *out);

/* Test hooks for a message the network delivers twice, long apart (a duplicate that
 * overtook nothing and arrives late): hr_sim_capture arms a capture of the first message
 * node `from` sends to `to` of that type (and, for responses, reject flag) from now on, and
 * drops any held one; hr_sim_redeliver puts a copy of the held message on the network
 * again, delivered after delay_ms whatever the network's faults (but not across a cut
 * link). hr_sim_captured is the held message or NULL. 0 or HR_EINVAL (unknown ids, or
 * nothing held). */
int hr_sim_capture(struct hr_sim *s, hr_id_t from, hr_id_t to, uint8_t type, bool reject);
const struct hr_msg *hr_sim_captured(const struct hr_sim *s);
int hr_sim_redeliver(struct hr_sim *s, uint32_t delay_ms);

/* Requests sent (APPEND, VOTE, PREVOTE, SNAPSHOT chunks, TIMEOUT_NOW) and wire bytes of
 * all messages, since the start (a core's snapshot offer is not sent itself: its chunks
 * are). */
uint64_t hr_sim_rpc_count(const struct hr_sim *s);
uint64_t hr_sim_rpc_bytes(const struct hr_sim *s);
/* Events run since the start (the speed figure of `make bench`). */
uint64_t hr_sim_events(const struct hr_sim *s);

#endif
