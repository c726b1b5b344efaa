/*
 * fault_fs.h: a file system (struct hr_fs, csrc/storage/fs.h) that fails writes or syncs on
 * request, the one way tests inject storage faults into a node or a raw storage log: it
 * forwards every operation to an inner file system (the real one) except the writes or
 * syncs it was told to fail. A disk that fills up or goes read-only is hard to arrange in a
 * test; this makes "the next write fails with ENOSPC" a call.
 *
 *   struct hr_fault_fs *ff = hr_fault_fs_new(NULL);          // over hr_fs_posix()
 *   opts.fs = hr_fault_fs_fs(ff);                            // log, runtime, snapshots
 *   hr_fault_fs_fail(ff, HR_FAULT_WRITE, 0, 1, ENOSPC);      // the next pwrite fails
 *
 * What fails: after `skip` more operations of the kind that succeed, the next `count` fail
 * with -err. A failing pwrite first writes the first half of its bytes (as a filling disk
 * does: whatever rolls back must cope with a partial write), then returns the error; a
 * failing sync syncs nothing. Every pwrite and every sync counts, whatever file it is for
 * (segments, meta, the intent, snapshot files, directories, the lock file's pid).
 *
 * Ownership: the caller owns ff and frees it after everything opened over it is closed;
 * the inner file system is borrowed and must outlive ff.
 * Threading: any thread. The counters are under a mutex, so a test may arm faults from the
 * loop thread while a node's storage round runs on the threadpool; an operation already
 * past the check is not affected.
 */
#ifndef HR_TESTKIT_FAULT_FS_H
#define HR_TESTKIT_FAULT_FS_H

#include <stdint.h>

struct hr_fs;
struct hr_fault_fs;

enum { HR_FAULT_WRITE = 0, HR_FAULT_SYNC = 1 };

/* NULL inner: the real file system. NULL if out of memory. */
struct hr_fault_fs *hr_fault_fs_new(struct hr_fs *inner);
void hr_fault_fs_free(struct hr_fault_fs *ff);
/* The file system to open logs and snapshots over. */
struct hr_fs *hr_fault_fs_fs(struct hr_fault_fs *ff);
/* Replace the pending faults of kind op (HR_FAULT_WRITE: pwrite; HR_FAULT_SYNC: sync of a
 * file or directory): skip succeed, then count fail with -err (ENOSPC, EIO, EROFS...).
 * count 0 cancels them. */
void hr_fault_fs_fail(struct hr_fault_fs *ff, int op, unsigned skip, unsigned count, int err);

struct hr_fault_fs_stats {
    uint64_t writes, syncs;               /* operations seen, failed ones included */
    uint64_t writes_failed, syncs_failed; /* failed on request */
    unsigned writes_pending, syncs_pending; /* failures still to come (skip not counted) */
};
void hr_fault_fs_stats(struct hr_fault_fs *ff, struct hr_fault_fs_stats *s);

#endif
