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
 * The disk: each write batch becomes durable after a random latency; a crash keeps a random
 * prefix of what was written but not yet synced (whole batches, then part of the next
 * one's entries: the torn last write) and loses the rest.
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
    /* A committed entry reached node id's FSM. Returning non-zero stops the simulation with
     * that error (e.g. the Lua FSM raised; the embedding keeps the message). */
    int (*apply)(void *ctx, hr_id_t id, const struct hr_entry *e);
    /* Node id's role, term or leader changed. May be NULL. */
    void (*state)(void *ctx, hr_id_t id, int role, hr_term_t term, hr_id_t leader);
    /* Node id is starting (at creation and on every restart) with an empty FSM. May be
     * NULL. */
    void (*start)(void *ctx, hr_id_t id);
};

struct hr_sim_options {
    uint32_t n;
    uint64_t seed;
    struct hr_config config;   /* id, voters and seed are set per node by the simulator */
    struct hr_sim_net net;
    uint32_t disk_min_ms, disk_max_ms; /* latency of a write batch until durable */
};

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
 * goes on (the note names the record). */
int hr_sim_restart(struct hr_sim *s, hr_id_t id);
/* Flip a bit in the durable log record at `index` of node id's disk (0: a random one), as
 * a fault of the medium. It shows when the node next starts. 0, or HR_EINVAL (no such
 * record); *index_out is the record hit. */
int hr_sim_corrupt(struct hr_sim *s, hr_id_t id, hr_index_t index, hr_index_t *index_out);
/* What node id's last start had to say about its disk ("" if nothing). */
const char *hr_sim_node_note(const struct hr_sim *s, hr_id_t id);
int hr_sim_disconnect(struct hr_sim *s, hr_id_t id);
int hr_sim_connect(struct hr_sim *s, hr_id_t id);
/* group[i] is the partition of node i+1; nodes talk only within their group. */
int hr_sim_partition(struct hr_sim *s, const uint32_t *group, size_t n);
void hr_sim_heal(struct hr_sim *s); /* one group again, and every node connected */
void hr_sim_set_network(struct hr_sim *s, const struct hr_sim_net *net);

/* Propose on node id (which must be alive): hr_node_propose's result. */
int hr_sim_propose(struct hr_sim *s, hr_id_t id, uint8_t type, const void *data, size_t len,
                   hr_index_t *index, hr_term_t *term);

/* Requests sent (APPEND, VOTE, PREVOTE, SNAPSHOT, TIMEOUT_NOW) and wire bytes of all
 * messages, since the start. */
uint64_t hr_sim_rpc_count(const struct hr_sim *s);
uint64_t hr_sim_rpc_bytes(const struct hr_sim *s);
/* Events run since the start (the speed figure of `make bench`). */
uint64_t hr_sim_events(const struct hr_sim *s);

#endif
