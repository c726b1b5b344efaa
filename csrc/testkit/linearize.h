/*
 * linearize.h: a linearizability checker for one register with read, write and
 * compare-and-set, the search of Wing and Gong with Lowe's memoization and just-in-time
 * linearization (docs/testing.md, "The linearizability checker"). A pure library: operations
 * in, verdict out; no I/O, no Lua. lua/helios/testing/linearize.lua splits a history per key,
 * pairs invocations with completions and maps values to integers before calling it
 * (through linearize_binding.c).
 *
 * The model: a register holding an int64 value (the caller's encoding; `init` at the start).
 *   read  a      ok when the register holds a; leaves it as it is
 *   write a      sets it to a
 *   cas   a, b   ok when it holds a; sets it to b
 * An operation either completed (it took effect exactly once, at some instant between
 * `call` and `ret`) or has an unknown outcome (`info`: it may have taken effect at any
 * instant after `call`, or never). Operations that did not take effect (a failed write, a
 * cas that returned false) and reads of unknown outcome constrain nothing: the caller
 * leaves them out.
 *
 * Memory: the search keeps a set of visited configurations (which operations are
 * linearized, and the register's value). A configuration is stored as a 128-bit
 * fingerprint of the set (two independent Zobrist hashes, updated incrementally) plus the
 * value, 24 bytes, rather than the set's bitset (n/8 bytes: 12 KB for 100k operations). Two
 * different sets collide with probability about 2^-128 per pair, which is negligible for
 * the at most `max_states` configurations a run may store; a collision could only make the
 * search skip a branch, never accept a non-linearizable history.
 *
 * Threading: none; every call is independent (reentrant).
 */
#ifndef HR_LINEARIZE_H
#define HR_LINEARIZE_H

#include <stddef.h>
#include <stdint.h>

enum hr_lin_f { HR_LIN_READ = 0, HR_LIN_WRITE = 1, HR_LIN_CAS = 2 };

enum hr_lin_verdict {
    HR_LIN_OK = 0,      /* linearizable */
    HR_LIN_FAIL = 1,    /* not linearizable: the result names where the search got stuck */
    HR_LIN_UNKNOWN = 2, /* gave up: max_steps or max_states reached */
};

struct hr_lin_op {
    double call;  /* invocation time */
    double ret;   /* completion time (>= call); ignored when info */
    int64_t a;    /* read: value observed; write: value written; cas: expected */
    int64_t b;    /* cas: new value; else unused */
    uint8_t f;    /* enum hr_lin_f */
    uint8_t info; /* 1: unknown outcome: completes at +infinity, may be left out */
};

struct hr_lin_limits {
    uint64_t max_steps; /* search steps (tries and backtracks) before giving up; 0: 1e9 */
    size_t max_states;  /* visited configurations kept (about 50 bytes each with the
                        * table's slack); 0: 1 << 22 (at most about 200 MB) */
};

/* The deepest point the search reached on a failing history (or, on UNKNOWN, where it had
 * got to when it gave up, if it had been stuck once: npending > 0): the op whose completion it
 * could not pass (every order of the ops before it was tried), the value the register
 * held on the way that went furthest, the ops that were candidates there, and the last
 * writes and cas of that path's linearization (which explain the value) with its last
 * reads. Indices into the input. */
struct hr_lin_result {
    int verdict;       /* enum hr_lin_verdict */
    uint64_t steps;    /* search steps taken */
    size_t states;     /* configurations stored */
    size_t dropped;    /* info ops left out up front: what they write is never observed */
    size_t bounded;    /* info ops made ordinary: observed, and their value's only writer */
    const char *why;   /* UNKNOWN: "max_steps" or "max_states"; else NULL (static) */
    size_t stuck;      /* FAIL: the op that could not be linearized */
    int64_t value;     /* FAIL: the register's value on the furthest path */
    size_t *pending;   /* FAIL: ops not linearized, invoked before stuck's completion */
    size_t npending;   /*       (stuck first; at most HR_LIN_WINDOW) */
    size_t *last;      /* FAIL: the last writes and cas linearized on that path and the
                        *       last reads (half each), oldest first */
    size_t nlast;      /*       (at most HR_LIN_LAST) */
};

#define HR_LIN_WINDOW 32
#define HR_LIN_LAST 8

/* Check ops[0..n) starting from the value init. Fills *out (which the caller releases with
 * hr_lin_result_free, also after an error). Returns 0, HR_EINVAL (a NaN time, a ret before
 * its call, an unknown f) or HR_ENOMEM. ops is only read, and not kept. */
int hr_lin_check(const struct hr_lin_op *ops, size_t n, int64_t init,
                 const struct hr_lin_limits *limits, struct hr_lin_result *out);

/* Frees what hr_lin_check allocated in *r (not r itself). */
void hr_lin_result_free(struct hr_lin_result *r);

#endif
