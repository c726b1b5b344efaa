/*
 * queue.h: the simulator's event queue, a binary min-heap ordered by (time, insertion
 * order). The insertion order breaks ties, so two events due at the same virtual time always
 * run in the order they were scheduled and a run replays exactly. Private to csrc/sim.
 *
 * The queue stores pointers it does not own: whoever pops an item owns its event.
 */
#ifndef HR_SIM_QUEUE_H
#define HR_SIM_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/raft.h"

struct hr__qitem {
    hr_time_t time;
    uint64_t seq;
    void *ev;
};

struct hr__queue {
    struct hr__qitem *items;
    size_t n, cap;
    uint64_t next_seq;
};

/* 0 or HR_ENOMEM. */
int hr__queue_push(struct hr__queue *q, hr_time_t time, void *ev);
/* The earliest item, or NULL when empty. */
const struct hr__qitem *hr__queue_peek(const struct hr__queue *q);
bool hr__queue_pop(struct hr__queue *q, struct hr__qitem *out);
/* Frees the heap only; the caller frees the events (pop them first). */
void hr__queue_free(struct hr__queue *q);

#endif
