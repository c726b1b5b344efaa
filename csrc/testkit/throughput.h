/*
 * throughput.h: the storage benchmark behind `make bench` (through helios.testkit's
 * storage_bench, spec/bench/storage.lua): N concurrent proposers on a uv loop, each keeping one single-entry
 * batch in flight through group commit, against an fdatasync loop on the same disk
 * measured in the same call. Runs its own loop; blocks the caller until done.
 */
#ifndef HR_TESTKIT_THROUGHPUT_H
#define HR_TESTKIT_THROUGHPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hr_storage_bench_result {
    uint64_t appends;          /* durable entries */
    uint64_t fsyncs;           /* fdatasync calls on the log */
    uint64_t rounds;           /* group-commit rounds */
    double seconds;
    double appends_per_s, fsyncs_per_s;
    double baseline_fsyncs_per_s; /* write(entry_size) + fdatasync, in a loop */
};

/* How the group runs its rounds (csrc/storage/group.h). */
enum hr_storage_bench_mode {
    HR_BENCH_THREADPOOL, /* on the threadpool, each started as soon as there is work */
    HR_BENCH_INLINE,     /* on the loop's thread, from an idle handle (as a follower's) */
    HR_BENCH_PER_TURN,   /* on the threadpool, started from an idle handle (as a leader's);
                          * the bench fails if a round starts any other way */
};

/* dir: a directory that does not exist yet or is empty (a log is created in dir/log,
 * the baseline file is dir/baseline). 0 or HR_E* with a message in err. */
int hr_storage_bench(const char *dir, unsigned writers, uint64_t entries, size_t entry_size,
                     enum hr_storage_bench_mode mode, struct hr_storage_bench_result *r,
                     char *err, size_t errlen);

#endif
