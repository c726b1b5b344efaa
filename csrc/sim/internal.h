/*
 * internal.h: the simulator's state, shared by sim.c (lifecycle, events, faults) and net.c
 * (the simulated network). Private to csrc/sim.
 */
#ifndef HR_SIM_INTERNAL_H
#define HR_SIM_INTERNAL_H

#include "../core/prng.h"
#include "check.h"
#include "disk.h"
#include "queue.h"
#include "sim.h"

enum { HR__EV_DELIVER = 1, HR__EV_DURABLE, HR__EV_TICK, HR__EV_FLUSH };

/* One scheduled event. Events of an older incarnation of their node are ignored. */
struct hr__ev {
    int kind;
    hr_id_t node;      /* DELIVER: the receiver */
    uint64_t inc;      /* DURABLE, TICK, FLUSH: the node's incarnation */
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
    struct hr__disk disk;
    hr_index_t disk_last; /* the log's last index once every pending batch is durable */
    char note[256];       /* what the last start's recovery said (hr_sim_node_note) */
};

struct hr_sim {
    struct hr_sim_options o;
    struct hr_sim_hooks hooks;
    uint32_t n;
    hr_id_t *voters;
    struct hr__simnode *nodes; /* nodes[id - 1] */
    struct hr__queue q;
    struct hr__ev *free_evs;
    hr_time_t now;
    struct hr_prng net_prng, disk_prng;
    hr_time_t *link_last; /* link_last[(from - 1) * n + to - 1]: last delivery time */
    uint64_t rpc_count, rpc_bytes, events;
    struct hr__check *check;
    int stop_code;
    char err[640];
};

struct hr__ev *hr__sim_ev_new(struct hr_sim *s);
void hr__sim_ev_free(struct hr_sim *s, struct hr__ev *ev);
/* Stop the simulation with code and a message (the first stop wins). */
void hr__sim_stop(struct hr_sim *s, int code, const char *fmt, ...);

/* net.c: the transport's send, with ctx = the sending struct hr__simnode. */
void hr__net_send(void *ctx, const struct hr_msg *m);
/* May a message from `from` reach `to` now? */
bool hr__net_open(const struct hr_sim *s, hr_id_t from, hr_id_t to);

#endif
