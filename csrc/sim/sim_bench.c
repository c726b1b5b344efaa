/*
 * sim_bench.c: how fast the simulator runs (`make bench`, built as build/sim_bench).
 *
 * Runs a 5-node and a 3-node cluster for a fixed stretch of virtual time from a fixed seed,
 * with a steady proposal load on the leader and random faults (crashes and restarts, 5%
 * message loss, 1..30 ms delays, duplicates), and prints simulated node-events per second
 * of wall time and the virtual/wall time ratio. The randomized safety search is only as
 * good as this speed.
 *
 * Usage: sim_bench [virtual_seconds] [seed] [model|real]
 * (the third argument picks the storage the nodes run on: the simulator's model of a disk,
 * the default, or the production storage over a simulated file system; csrc/sim/disk.h).
 */
/* clock_gettime(CLOCK_MONOTONIC) is POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/prng.h"
#include "sim.h"

static int apply_nothing(void *ctx, hr_id_t id, const struct hr_entry *e)
{
    (void)ctx;
    (void)id;
    (void)e;
    return 0;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(uint32_t n, hr_time_t virtual_ms, uint64_t seed, int storage)
{
    struct hr_sim_options o;
    hr_sim_options_defaults(&o);
    o.storage = storage;
    /* Real storage: the simulated file system copies a whole file at each sync and scans a
     * directory's names at each lookup, so both small segments (many files) and large ones
     * (big copies) cost; 16 and 64 KiB ran fastest of 4, 16, 64 and 256 KiB over 600 virtual seconds. */
    o.segment_size = 64 << 10;
    o.n = n;
    o.seed = seed;
    o.net.drop = 0.05;
    o.net.duplicate = 0.01;
    o.net.delay_min_ms = 1;
    o.net.delay_max_ms = 30;
    o.net.reorder = true;
    struct hr_sim_hooks hooks = {.ctx = NULL, .apply = apply_nothing};
    char err[256];
    struct hr_sim *s = hr_sim_new(&o, &hooks, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "sim_bench: %s\n", err);
        return 1;
    }
    /* The fault schedule has its own stream so it does not perturb the simulator's. */
    struct hr_prng p;
    hr_prng_seed(&p, seed ^ 0xbe9c4ULL);
    hr_time_t down_until[HR_MAX_NODES + 1] = {0};
    uint64_t proposals = 0;
    int rc = 0;
    double t0 = wall_seconds();
    for (hr_time_t t = 5; t <= virtual_ms; t += 5) {
        rc = hr_sim_run_until(s, t);
        if (rc < 0) {
            break;
        }
        /* Steady load: one command every 5 virtual ms on whichever node leads. */
        for (hr_id_t id = 1; id <= n; id++) {
            struct hr_raft *r = hr_sim_raft(s, id);
            if (r != NULL && hr_raft_role(r) == HR_LEADER) {
                char cmd[32];
                int len = snprintf(cmd, sizeof(cmd), "set k%" PRIu64 " v", proposals++ % 1000);
                hr_index_t index;
                hr_term_t term;
                hr_sim_propose(s, id, HR_ENTRY_COMMAND, cmd, (size_t)len, &index, &term);
                break;
            }
        }
        /* Faults: every 100 ms, maybe crash one node (at most a minority down at once);
         * crashed nodes come back after up to a second. */
        if (t % 100 == 0) {
            uint32_t down = 0;
            for (hr_id_t id = 1; id <= n; id++) {
                down += !hr_sim_alive(s, id);
            }
            hr_id_t victim = hr_prng_range(&p, 1, n);
            if (hr_prng_range(&p, 0, 99) < 5 && hr_sim_alive(s, victim) && down < (n - 1) / 2) {
                hr_sim_crash(s, victim);
                down_until[victim] = t + hr_prng_range(&p, 100, 1000);
            }
            for (hr_id_t id = 1; id <= n; id++) {
                if (!hr_sim_alive(s, id) && t >= down_until[id]) {
                    hr_sim_restart(s, id);
                }
            }
        }
    }
    if (rc >= 0) {
        rc = hr_sim_check(s);
    }
    double elapsed = wall_seconds() - t0;
    if (rc < 0) {
        fprintf(stderr, "sim_bench: %u nodes, seed %" PRIu64 ": %s\n", n, seed, hr_sim_error(s));
        hr_sim_free(s);
        return 1;
    }
    hr_index_t commit = 0;
    for (hr_id_t id = 1; id <= n; id++) {
        struct hr_raft *r = hr_sim_raft(s, id);
        if (r != NULL && hr_raft_commit_index(r) > commit) {
            commit = hr_raft_commit_index(r);
        }
    }
    printf("sim (%s storage): %u nodes: %.0f events/s, %.0fx real time (%" PRIu64 " events, %" PRIu64
           " entries committed in %.0f virtual s, %.2f s wall)\n",
           storage == HR_SIM_STORAGE_REAL ? "real" : "model", n,
           (double)hr_sim_events(s) / elapsed, (double)virtual_ms / 1000.0 / elapsed,
           hr_sim_events(s), commit, (double)virtual_ms / 1000.0, elapsed);
    hr_sim_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    hr_time_t seconds = argc > 1 ? strtoull(argv[1], NULL, 10) : 600;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 42;
    const char *kind = argc > 3 ? argv[3] : "model";
    int storage = strcmp(kind, "real") == 0 ? HR_SIM_STORAGE_REAL : HR_SIM_STORAGE_MODEL;
    if (seconds == 0 || (storage == HR_SIM_STORAGE_MODEL && strcmp(kind, "model") != 0)) {
        fprintf(stderr, "Usage: sim_bench [virtual_seconds] [seed] [model|real]\n");
        return 2;
    }
    int bad = bench(5, seconds * 1000, seed, storage);
    bad |= bench(3, seconds * 1000, seed, storage);
    return bad;
}
