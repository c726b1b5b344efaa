/*
 * simfs.h: an in-memory file system that crashes, for running the production storage
 * (csrc/storage: segments, meta, snapshot files, recovery) under simulation, the way
 * FoundationDB simulates its files, instead of a model of the disk (disk.h models one).
 * hr_simfs_fs() is a struct hr_fs (csrc/storage/fs.h): pass it as hr_log_options.fs and
 * as the fs argument of the snapshot functions.
 *
 * What it keeps. Every file has its current content (what reads see) and its durable
 * content; every directory its current and its durable entries.
 *   - sync of a file (fsync or fdatasync alike) makes its current bytes and size durable,
 *     not its name;
 *   - sync of a directory makes its current entries durable: a created, renamed or removed
 *     name survives a crash only once the directory holding it was synced after the
 *     change (a rename across directories needs both synced);
 *   - mkdir adds an entry to its parent like a create; the new directory's own entries
 *     start empty and durable.
 * A crash (hr_simfs_reboot) puts back the durable state and then, by the flags:
 *   HR_SIMFS_KEEP_UNSYNCED  unsynced changes may still have reached the disk, in order:
 *                           each file keeps a random prefix of its unsynced writes and
 *                           truncates, the namespace a random prefix of its unsynced
 *                           creates, renames and removals (one journal for all
 *                           directories, as a journalling file system commits);
 *   HR_SIMFS_TORN           as KEEP_UNSYNCED, and the first write a file does not keep
 *                           whole is kept cut at a random byte (a torn write);
 *   HR_SIMFS_PAGES          each 4 KiB page of a file independently comes from its durable
 *                           content or from what the writes (all of them, or the prefix
 *                           above) left, and the size is the durable one or the new one:
 *                           a later page may survive while an earlier one is lost.
 * With no flag a crash keeps exactly what was synced. Files no longer reachable from the
 * root after a crash are gone. Every random choice comes from the seed (csrc/core/prng.h),
 * so a run replays from it.
 *
 * Crash points. Mutating operations are counted from 1 (hr_simfs_op_count): a write,
 * a sync (file or directory), a truncate (ftruncate, or an open that truncates), a create
 * (an open that creates), rename, unlink, mkdir. hr_simfs_crash_at(n) makes the n-th
 * one the moment of the crash: it and every later mutating operation fail with EIO (a
 * write at that moment may still reach the disk in part, by the flags), as they do after
 * hr_simfs_crash(); reads and closes still work, so the code under test can unwind.
 * Then hr_simfs_reboot() applies the crash: the process is gone, every handle it had is
 * closed (a later use of one fails with EBADF; handle numbers are never reused), its
 * locks are released, and a new process may open the files. A test walks every crash
 * point by counting the operations of a run and replaying it with each n.
 *
 * Paths: components separated by '/', "" and "." are the root, ".." is not supported;
 * there are no permissions, links or special files. Locks follow flock(2) (fs.h).
 *
 * Ownership: the caller owns the struct hr_simfs and frees it after every user of its
 * hr_fs is gone. Threading: one thread at a time (the simulator's). Private to csrc/sim
 * and to the Lua test binding.
 */
#ifndef HR_SIM_SIMFS_H
#define HR_SIM_SIMFS_H

#include <stdbool.h>
#include <stdint.h>

#include "../storage/fs.h"

enum {
    HR_SIMFS_KEEP_UNSYNCED = 1,
    HR_SIMFS_TORN = 2,
    HR_SIMFS_PAGES = 4,
};

#define HR_SIMFS_PAGE 4096

struct hr_simfs;

/* A new, empty file system (just the root directory); NULL on out-of-memory. */
struct hr_simfs *hr_simfs_new(uint64_t seed, unsigned flags);
void hr_simfs_free(struct hr_simfs *s);
/* The file system interface of s (lives as long as s). */
struct hr_fs *hr_simfs_fs(struct hr_simfs *s);
/* Change the crash flags (they apply at the next reboot). */
void hr_simfs_set_flags(struct hr_simfs *s, unsigned flags);

/* Mutating operations so far (the crashing one included), over the life of s. */
uint64_t hr_simfs_op_count(const struct hr_simfs *s);
/* Crash at mutating operation number n (as hr_simfs_op_count counts; 0: never). */
void hr_simfs_crash_at(struct hr_simfs *s, uint64_t n);
/* Crash now: every later mutating operation fails with EIO until the reboot. */
void hr_simfs_crash(struct hr_simfs *s);
bool hr_simfs_crashed(const struct hr_simfs *s);
/* Lose what the crash loses (always: a reboot is a power cut, crashed or not), close every
 * handle, release every lock, clear the crash. */
void hr_simfs_reboot(struct hr_simfs *s);

struct hr_simfs_stats {
    uint64_t ops; /* mutating operations */
    uint64_t reboots;
    uint64_t files_reverted; /* files whose content a reboot changed */
    uint64_t names_reverted; /* directories whose entries a reboot changed */
    uint64_t torn;           /* writes kept in part */
};
void hr_simfs_stats(const struct hr_simfs *s, struct hr_simfs_stats *out);

#endif
