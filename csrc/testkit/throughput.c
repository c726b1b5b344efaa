/*
 * throughput.c: see throughput.h. The baseline is what one writer that syncs every
 * entry gets from this disk; group commit is worth it when N proposers get far more
 * durable appends per second than that, with fsyncs per second near the baseline.
 */
#define _GNU_SOURCE /* uv.h, fdatasync under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../storage/group.h"
#include "throughput.h"

struct bench {
    struct hr_group *g;
    uv_idle_t *idle;     /* runs due rounds (inline and per-turn modes) */
    bool per_turn;
    uint64_t started;    /* rounds hr_group_run_due() started */
    uint64_t next_index, next_seq, submitted, done, target, last_done_seq;
    unsigned char *payload;
    size_t size;
    int status;
    char order_err[128];
};

static int submit(struct bench *b)
{
    struct hr_log_entry e = {
        .term = 1, .index = b->next_index, .time_ms = 0, .type = 1,
        .len = (uint32_t)b->size, .data = b->payload,
    };
    int rc = hr_group_write(b->g, ++b->next_seq, NULL, 0, &e, 1);
    if (rc == 0) {
        b->next_index++;
        b->submitted++;
    }
    return rc;
}

static void run_due_cb(uv_idle_t *h);

static void durable(void *arg, uint64_t seq, int status)
{
    struct bench *b = arg;
    /* group.h promises completions in seq order: the bench checks it on every one. */
    if (seq != b->last_done_seq + 1 && b->status == 0) {
        b->status = HR_EINVAL;
        snprintf(b->order_err, sizeof b->order_err, "completion of seq %llu after %llu",
                 (unsigned long long)seq, (unsigned long long)b->last_done_seq);
    }
    b->last_done_seq = seq;
    if (status != 0) {
        b->status = status;
        return;
    }
    b->done++;
    /* Each completion frees one proposer, which proposes again at once. */
    if (b->status == 0 && b->submitted < b->target) {
        b->status = submit(b);
        if (b->per_turn) {
            uv_idle_start(b->idle, run_due_cb); /* the next round waits for it */
        }
    }
}

static double baseline(const char *dir, size_t size, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/baseline", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char *buf = calloc(1, size + 1);
    uint64_t t0 = uv_hrtime(), n = 0;
    off_t off = 0;
    /* Up to half a second or 2000 syncs, whichever comes first. */
    while (n < 2000 && uv_hrtime() - t0 < 500000000ull) {
        if (buf == NULL || pwrite(fd, buf, size, off) != (ssize_t)size || fdatasync(fd) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            free(buf);
            return -1;
        }
        off += (off_t)size;
        n++;
    }
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    close(fd);
    unlink(path);
    free(buf);
    return (double)n / secs;
}

/* Inline and per-turn mode: once per loop turn, the round this turn's completions queued.
 * An active idle handle keeps the poll from blocking while one waits; it stops once
 * nothing is left (per-turn: until a completion queues more). */
static void run_due_cb(uv_idle_t *h)
{
    struct bench *b = h->data;
    if (hr_group_due(b->g)) {
        b->started++;
    }
    hr_group_run_due(b->g);
    if (!hr_group_due(b->g)) {
        uv_idle_stop(h);
    }
}

int hr_storage_bench(const char *dir, unsigned writers, uint64_t entries, size_t entry_size,
                     enum hr_storage_bench_mode mode, struct hr_storage_bench_result *r,
                     char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    char info[256];
    struct hr_log *log;
    int rc = hr_log_open(dir, NULL, &log, err, errlen, info, sizeof info);
    if (rc != 0) {
        return rc;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct bench b = {.next_index = hr_log_last_index(log) + 1, .target = entries,
                      .size = entry_size};
    b.payload = malloc(entry_size + 1);
    b.g = hr_group_new(&loop, log, durable, &b);
    if (b.payload == NULL || b.g == NULL) {
        rc = HR_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    memset(b.payload, 'x', entry_size);
    uv_idle_t idle;
    uv_idle_init(&loop, &idle);
    idle.data = &b;
    b.idle = &idle;
    b.per_turn = mode == HR_BENCH_PER_TURN;
    hr_group_set_inline(b.g, mode == HR_BENCH_INLINE);
    hr_group_set_per_turn(b.g, b.per_turn);
    struct hr_log_stats s0, s1;
    hr_log_stats(log, &s0);
    uint64_t t0 = uv_hrtime();
    for (unsigned i = 0; i < writers && b.submitted < entries && b.status == 0; i++) {
        b.status = submit(&b);
    }
    if (b.per_turn && b.status == 0 && !hr_group_due(b.g)) {
        b.status = HR_EINVAL; /* the first batch started a round by itself */
        snprintf(b.order_err, sizeof b.order_err, "per-turn: a round started on a write");
    }
    if (mode != HR_BENCH_THREADPOOL) {
        uv_idle_start(&idle, run_due_cb);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&idle, NULL);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    hr_log_stats(log, &s1);
    struct hr_group_stats gs;
    hr_group_stats(b.g, &gs);
    if (b.status == 0 && b.per_turn && gs.rounds != b.started) {
        b.status = HR_EINVAL;
        snprintf(b.order_err, sizeof b.order_err,
                 "per-turn: %llu rounds, %llu of them started by hr_group_run_due",
                 (unsigned long long)gs.rounds, (unsigned long long)b.started);
    }
    if (b.status != 0) {
        rc = b.status;
        snprintf(err, errlen, "%s", b.order_err[0] ? b.order_err : hr_group_errmsg(b.g));
        goto out;
    }
    r->appends = b.done;
    r->fsyncs = s1.syncs - s0.syncs;
    r->rounds = gs.rounds;
    r->seconds = secs;
    r->appends_per_s = (double)b.done / secs;
    r->fsyncs_per_s = (double)r->fsyncs / secs;
    r->baseline_fsyncs_per_s = baseline(dir, entry_size, err, errlen);
    if (r->baseline_fsyncs_per_s < 0) {
        rc = HR_EIO;
    }
out:
    if (b.g != NULL) {
        hr_group_close(b.g, NULL, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(b.payload);
    hr_log_close(log);
    return rc;
}
