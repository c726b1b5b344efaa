/*
 * group.c: group commit (group.h). One round at a time is in flight on the threadpool;
 * everything queued meanwhile forms the next round. Within a round the worker writes the
 * newest term and vote first (batches in a round are reported together, so only the last
 * one matters and one meta replace suffices), then applies each batch's truncation and
 * appends in order, then syncs once. In inline mode the same round runs on the loop
 * thread, from hr_group_run_due(), and nothing goes to the threadpool. In per-turn mode it
 * goes to the threadpool, but only from hr_group_run_due().
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "group.h"

struct batch {
    struct batch *next;
    uint64_t seq;
    bool has_meta;
    struct hr_group_meta meta;
    uint64_t truncate;
    bool reset; /* empty the log first (a snapshot was installed) */
    size_t n;
    struct hr_log_entry *e; /* points into the same allocation */
};

struct hr_group {
    uv_loop_t *loop;
    struct hr_log *log;
    hr_group_durable_cb cb;
    void *arg;
    uv_work_t work;
    struct batch *pending, *pending_tail;
    struct batch *round;    /* owned by the worker while busy */
    int round_status;
    uint64_t round_sync_ns; /* written by the worker, read after it (after_work_cb) */
    bool busy, retry, closing;
    bool inline_mode;       /* rounds run in hr_group_run_due(), on the loop thread */
    bool per_turn;          /* rounds start only from hr_group_run_due() */
    bool round_retry;       /* retry requested before this round: read by the worker */
    uint64_t compact, round_compact; /* drop segments below this (0: no compaction) */
    uint64_t last_seq;
    void (*done)(void *);
    void *done_arg;
    struct hr_group_stats stats;
    char errmsg[768];
};

struct hr_group *hr_group_new(struct uv_loop_s *loop, struct hr_log *log, hr_group_durable_cb cb,
                              void *arg)
{
    struct hr_group *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return NULL;
    }
    g->loop = loop;
    g->log = log;
    g->cb = cb;
    g->arg = arg;
    g->work.data = g;
    return g;
}

static void free_list(struct batch *b)
{
    while (b != NULL) {
        struct batch *next = b->next;
        free(b);
        b = next;
    }
}

/* On the threadpool: the only place the log is touched while the group exists. */
static void work_cb(uv_work_t *w)
{
    struct hr_group *g = w->data;
    struct hr_log *l = g->log;
    int rc = 0;
    if (g->round_retry) {
        hr_log_retry(l);
    }
    const struct batch *meta = NULL;
    for (const struct batch *b = g->round; b != NULL; b = b->next) {
        if (b->has_meta) {
            meta = b;
        }
    }
    if (meta != NULL) {
        rc = hr_log_set_meta(l, meta->meta.term, meta->meta.vote);
    }
    for (const struct batch *b = g->round; b != NULL && rc == 0; b = b->next) {
        /* Not only when entries are left: an empty log can still hold an empty segment
         * that pins where the next append must start (hr_log_truncate drops it). */
        if (b->reset) {
            rc = hr_log_truncate(l, hr_log_first_index(l));
        }
        if (rc == 0 && b->truncate != 0) {
            rc = hr_log_truncate(l, b->truncate);
        }
        if (rc == 0 && b->n > 0) {
            rc = hr_log_append(l, b->e, b->n);
        }
    }
    g->round_sync_ns = 0;
    if (rc == 0) {
        uint64_t t0 = uv_hrtime();
        rc = hr_log_sync(l);
        g->round_sync_ns = uv_hrtime() - t0;
    }
    if (rc != 0) {
        snprintf(g->errmsg, sizeof g->errmsg, "%s", hr_log_errmsg(l));
    } else if (g->round_compact != 0) {
        /* After the round's writes: the compacted range is covered by a durable snapshot,
         * and a failure here loses nothing (the segments stay until the next try). */
        hr_log_compact(l, g->round_compact);
    }
    g->round_status = rc;
}

static void kick(struct hr_group *g);

static void after_work_cb(uv_work_t *w, int status)
{
    struct hr_group *g = w->data;
    struct batch *round = g->round;
    int rc = status == 0 ? g->round_status : HR_ESHUTDOWN;
    g->round = NULL;
    g->stats.rounds++;
    if (rc == 0 && round != NULL) {
        uint64_t n = 0;
        for (const struct batch *b = round; b != NULL; b = b->next) {
            n += b->n;
        }
        hr_hist_observe(&g->stats.sync_us, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N,
                        g->round_sync_ns / 1000);
        hr_hist_observe(&g->stats.entries_per_sync, HR_HIST_COUNT, HR_HIST_COUNT_N, n);
    }
    /* Still busy while reporting: a callback that writes only queues. */
    for (struct batch *b = round; b != NULL; b = b->next) {
        if (!g->closing) {
            g->cb(g->arg, b->seq, rc);
        }
    }
    free_list(round);
    g->busy = false;
    if (g->closing) {
        free_list(g->pending);
        void (*done)(void *) = g->done;
        void *arg = g->done_arg;
        free(g);
        if (done != NULL) {
            done(arg);
        }
        return;
    }
    kick(g);
}

static void take_round(struct hr_group *g)
{
    g->round = g->pending;
    g->pending = g->pending_tail = NULL;
    g->busy = true;
    g->round_retry = g->retry;
    g->retry = false;
    g->round_compact = g->compact;
    g->compact = 0;
}

static bool has_work(const struct hr_group *g)
{
    return g->pending != NULL || g->compact != 0;
}

/* Start the next round on the threadpool if there is work and none is running. In inline
 * and per-turn mode the work waits for hr_group_run_due(). */
static void kick(struct hr_group *g)
{
    if (g->busy || g->inline_mode || g->per_turn || !has_work(g)) {
        return;
    }
    take_round(g);
    int rc = uv_queue_work(g->loop, &g->work, work_cb, after_work_cb);
    /* uv_queue_work fails only on a NULL work_cb: an invariant, not an input. */
    (void)rc;
}

void hr_group_set_inline(struct hr_group *g, bool on)
{
    if (g->inline_mode == on) {
        return;
    }
    g->inline_mode = on;
    kick(g); /* work left due by inline mode goes to the threadpool now */
}

void hr_group_set_per_turn(struct hr_group *g, bool on)
{
    g->per_turn = on;
    kick(g);
}

bool hr_group_due(const struct hr_group *g)
{
    return (g->inline_mode || g->per_turn) && !g->busy && !g->closing && has_work(g);
}

void hr_group_run_due(struct hr_group *g)
{
    if (!hr_group_due(g)) {
        return;
    }
    take_round(g);
    if (!g->inline_mode) {
        int rc = uv_queue_work(g->loop, &g->work, work_cb, after_work_cb);
        (void)rc; /* as in kick() */
        return;
    }
    work_cb(&g->work);
    /* May free g (a completion that closed the group): g is not touched after. */
    after_work_cb(&g->work, 0);
}

static int queue(struct hr_group *g, uint64_t seq, const struct hr_group_meta *meta,
                 uint64_t truncate, bool reset, const struct hr_log_entry *e, size_t n)
{
    if (g->closing) {
        return HR_ESHUTDOWN;
    }
    assert(g->stats.batches == 0 || seq > g->last_seq);
    size_t bytes = sizeof(struct batch) + n * sizeof(struct hr_log_entry);
    for (size_t i = 0; i < n; i++) {
        bytes += e[i].len;
    }
    struct batch *b = malloc(bytes);
    if (b == NULL) {
        return HR_ENOMEM;
    }
    memset(b, 0, sizeof *b);
    b->seq = seq;
    b->truncate = truncate;
    b->reset = reset;
    if (meta != NULL) {
        b->has_meta = true;
        b->meta = *meta;
    }
    b->n = n;
    b->e = (struct hr_log_entry *)(b + 1);
    unsigned char *p = (unsigned char *)(b->e + n);
    for (size_t i = 0; i < n; i++) {
        b->e[i] = e[i];
        if (e[i].len > 0) {
            memcpy(p, e[i].data, e[i].len);
        }
        b->e[i].data = p;
        p += e[i].len;
    }
    g->last_seq = seq;
    if (g->pending_tail != NULL) {
        g->pending_tail->next = b;
    } else {
        g->pending = b;
    }
    g->pending_tail = b;
    g->stats.batches++;
    g->stats.entries += n;
    /* Queued from the loop thread: the completion comes in a later iteration (or, inline,
     * from hr_group_run_due), never from inside this call. */
    kick(g);
    return 0;
}

int hr_group_write(struct hr_group *g, uint64_t seq, const struct hr_group_meta *meta,
                   uint64_t truncate, const struct hr_log_entry *e, size_t n)
{
    return queue(g, seq, meta, truncate, false, e, n);
}

int hr_group_reset(struct hr_group *g, uint64_t seq)
{
    return queue(g, seq, NULL, 0, true, NULL, 0);
}

void hr_group_compact(struct hr_group *g, uint64_t below)
{
    if (g->closing || below <= g->compact) {
        return;
    }
    g->compact = below;
    kick(g);
}

void hr_group_retry(struct hr_group *g)
{
    g->retry = true;
}

const char *hr_group_errmsg(const struct hr_group *g)
{
    return g->errmsg;
}

void hr_group_stats(const struct hr_group *g, struct hr_group_stats *s)
{
    *s = g->stats;
}

void hr_group_close(struct hr_group *g, void (*done)(void *arg), void *arg)
{
    g->closing = true;
    g->done = done;
    g->done_arg = arg;
    if (!g->busy) {
        free_list(g->pending);
        free(g);
        if (done != NULL) {
            done(arg);
        }
    }
}
