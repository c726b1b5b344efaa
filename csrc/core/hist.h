/*
 * hist.h: a fixed-bucket histogram of counts, the one way the layers record distributions
 * for the metrics endpoint (docs/metrics.md): latencies in microseconds, sizes in bytes,
 * entries per fsync. An observation is a short scan of a constant table and three
 * increments: no allocation, no lock, no clock, so it may sit on any hot path (a header
 * only: nothing to link).
 *
 *   struct hr_hist h = {0};
 *   hr_hist_observe(&h, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N, elapsed_us);
 *
 * counts[i] is the number of observations v <= le[i] and > le[i - 1] (not cumulative: the
 * renderer sums them); counts[n] those above every bound (+Inf).
 *
 * Threading: none; the owner of the struct updates and reads it on one thread.
 */
#ifndef HR_CORE_HIST_H
#define HR_CORE_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HR_HIST_MAX 20

struct hr_hist {
    uint64_t counts[HR_HIST_MAX + 1];
    uint64_t sum;
    uint64_t count;
};

/* Latencies (µs): 50 µs to 10 s, about 2.5x apart. */
#define HR_HIST_LATENCY_N 18
static const uint64_t HR_HIST_LATENCY_US[HR_HIST_LATENCY_N] = {
    50,     100,    250,     500,     1000,    2500,    5000,    10000,   25000,
    50000,  100000, 250000,  500000,  1000000, 2500000, 5000000, 10000000, 30000000,
};

/* Counts (entries per fsync): powers of two up to 65536. */
#define HR_HIST_COUNT_N 17
static const uint64_t HR_HIST_COUNT[HR_HIST_COUNT_N] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
};

/* Sizes (bytes): 1 KiB to 16 GiB, powers of four. */
#define HR_HIST_BYTES_N 13
static const uint64_t HR_HIST_BYTES[HR_HIST_BYTES_N] = {
    1ull << 10, 1ull << 12, 1ull << 14, 1ull << 16, 1ull << 18, 1ull << 20, 1ull << 22,
    1ull << 24, 1ull << 26, 1ull << 28, 1ull << 30, 1ull << 32, 1ull << 34,
};

static inline void hr_hist_observe(struct hr_hist *h, const uint64_t *le, size_t n, uint64_t v)
{
    size_t i = 0;
    while (i < n && v > le[i]) {
        i++;
    }
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

#endif
