/*
 * linearize.c: the register checker of linearize.h.
 *
 * The search (Wing and Gong; Lowe's refinements, as docs/testing.md describes them): the
 * ops' invocations and completions are one list of events in time order (an info op has
 * no completion: it never forces anything). Walking the list from its head, each
 * invocation is a candidate: an op is linearized when the model accepts it in the current
 * value and the resulting configuration (set of linearized ops, value) was never seen
 * before; it is then lifted out of the list (both its events) and the walk restarts from
 * the head. Reaching a completion means that op had to be linearized by now and none of
 * the orders tried allowed it: undo the last linearization (put its events back) and try
 * the next candidate after it. The list empties of completed ops: linearizable. The stack
 * empties at a completion: not linearizable.
 *
 * Lowe's just-in-time linearization is the walk itself: an op is placed only when a
 * completion forces the question, and the memo of configurations (fingerprints, see
 * linearize.h) makes each (set, value) explored once, whatever order reached it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "linearize.h"

#define DEFAULT_MAX_STEPS 1000000000ULL
#define DEFAULT_MAX_STATES ((size_t)1 << 22)

struct event {
    double t;
    uint32_t op;  /* index into the kept ops */
    uint8_t ret;  /* 0: invocation, 1: completion */
};

struct slot {
    uint64_t h1, h2;
    int64_t v;
};

struct memo {
    struct slot *slots;
    uint8_t *used;
    size_t cap, count, max;
};

struct seen {
    int64_t v;
    double ret;
};

struct frame {
    uint32_t op;
    int64_t prev; /* the value before op */
};

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t slot_hash(uint64_t h1, uint64_t h2, int64_t v)
{
    uint64_t s = h1 ^ (h2 >> 1) ^ ((uint64_t)v * 0xD6E8FEB86659FD93ULL);
    return splitmix(&s);
}

static int memo_grow(struct memo *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    struct slot *slots = malloc(cap * sizeof *slots);
    uint8_t *used = calloc(cap, 1);
    if (slots == NULL || used == NULL) {
        free(slots);
        free(used);
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i]) {
            continue;
        }
        struct slot *s = &m->slots[i];
        size_t j = slot_hash(s->h1, s->h2, s->v) & (cap - 1);
        while (used[j]) {
            j = (j + 1) & (cap - 1);
        }
        used[j] = 1;
        slots[j] = *s;
    }
    free(m->slots);
    free(m->used);
    m->slots = slots;
    m->used = used;
    m->cap = cap;
    return 0;
}

/* 1: added, 0: already there, HR_ENOMEM, or 2: full (max reached). */
static int memo_add(struct memo *m, uint64_t h1, uint64_t h2, int64_t v)
{
    if (m->count + 1 > m->cap / 4 * 3) {
        if (m->count >= m->max) {
            return 2;
        }
        int rc = memo_grow(m);
        if (rc != 0) {
            return rc;
        }
    }
    size_t j = slot_hash(h1, h2, v) & (m->cap - 1);
    while (m->used[j]) {
        struct slot *s = &m->slots[j];
        if (s->h1 == h1 && s->h2 == h2 && s->v == v) {
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (m->count >= m->max) {
        return 2;
    }
    m->used[j] = 1;
    m->slots[j] = (struct slot){ h1, h2, v };
    m->count++;
    return 1;
}

static int cmp_event(const void *pa, const void *pb)
{
    const struct event *a = pa, *b = pb;
    if (a->t != b->t) {
        return a->t < b->t ? -1 : 1;
    }
    /* At equal times an invocation goes first: the two ops count as concurrent, the
     * permissive reading of clocks that cannot order them. */
    if (a->ret != b->ret) {
        return a->ret ? 1 : -1;
    }
    return a->op < b->op ? -1 : a->op > b->op;
}

static int cmp_i64(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return a < b ? -1 : a > b;
}

static int observed(const int64_t *vals, size_t n, int64_t v)
{
    return bsearch(&v, vals, n, sizeof v, cmp_i64) != NULL;
}

/* The model: 1 when op applies to value v, with *out the value after it. */
static int step(const struct hr_lin_op *op, int64_t v, int64_t *out)
{
    switch (op->f) {
    case HR_LIN_READ:
        *out = v;
        return op->a == v;
    case HR_LIN_WRITE:
        *out = op->a;
        return 1;
    default:
        *out = op->b;
        return op->a == v;
    }
}

/* The search's working set, freed in one place. */
struct search {
    const struct hr_lin_op *ops; /* the input */
    uint32_t *kept;              /* kept op -> input index */
    struct hr_lin_op *kops;      /* kept ops, as the search sees them (select_ops) */
    int64_t *prod;               /* values written, sorted */
    struct seen *seen;           /* values seen by completed ops, and when */
    size_t m;                    /* kept ops */
    struct event *ev;            /* events in time order; list nodes are their indices */
    size_t nev;
    int32_t *next, *prev;        /* the list, with head nev and tail nev + 1 */
    int32_t *call_ev, *ret_ev;   /* kept op -> its events (ret_ev -1: info) */
    uint64_t *z1, *z2;           /* kept op -> its Zobrist keys */
    struct frame *stack;
    int64_t *obs;
    struct memo memo;
};

static void search_free(struct search *s)
{
    free(s->kept);
    free(s->kops);
    free(s->prod);
    free(s->seen);
    free(s->ev);
    free(s->next);
    free(s->prev);
    free(s->call_ev);
    free(s->ret_ev);
    free(s->z1);
    free(s->z2);
    free(s->stack);
    free(s->obs);
    free(s->memo.slots);
    free(s->memo.used);
}

static void unlink_ev(struct search *s, int32_t e)
{
    s->next[s->prev[e]] = s->next[e];
    s->prev[s->next[e]] = s->prev[e];
}

/* Dancing links: events come back in the reverse order of their removal, so their old
 * neighbours are exactly where they were. */
static void relink_ev(struct search *s, int32_t e)
{
    s->next[s->prev[e]] = e;
    s->prev[s->next[e]] = e;
}

static void lift(struct search *s, uint32_t k)
{
    unlink_ev(s, s->call_ev[k]);
    if (s->ret_ev[k] >= 0) {
        unlink_ev(s, s->ret_ev[k]);
    }
}

static void unlift(struct search *s, uint32_t k)
{
    if (s->ret_ev[k] >= 0) {
        relink_ev(s, s->ret_ev[k]);
    }
    relink_ev(s, s->call_ev[k]);
}

static int cmp_seen(const void *pa, const void *pb)
{
    const struct seen *a = pa, *b = pb;
    if (a->v != b->v) {
        return a->v < b->v ? -1 : 1;
    }
    return a->ret < b->ret ? -1 : a->ret > b->ret;
}

/* The earliest completion of a completed op that saw v (a read of v, a cas expecting v),
 * or NAN if none did. */
static double first_seen(const struct seen *seen, size_t n, int64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seen[mid].v < v) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && seen[lo].v == v ? seen[lo].ret : NAN;
}

static size_t count_i64(const int64_t *vals, size_t n, int64_t v)
{
    const int64_t *p = bsearch(&v, vals, n, sizeof v, cmp_i64);
    if (p == NULL) {
        return 0;
    }
    const int64_t *a = p, *b = p;
    while (a > vals && a[-1] == v) {
        a--;
    }
    while (b + 1 < vals + n && b[1] == v) {
        b++;
    }
    return (size_t)(b - a) + 1;
}

/* Two rules that keep info ops (which stay candidates to the end of the history) few,
 * both exact: they remove no linearization that matters and add none.
 * - An info write or cas whose value nobody observes (no read returned it, no cas expected
 *   it) is left out: after it the register holds a value only a write can follow, as if it
 *   had not happened.
 * - An info write or cas of a value that nothing else writes (nor is the initial value),
 *   which a completed read or cas did observe, did take effect, before the first such
 *   observer completed: it is given that completion as its own, and becomes an ordinary
 *   op. Workloads that write each value once (docs/testing.md) turn almost every timeout
 *   into one of these two cases. */
static int select_ops(struct search *s, size_t n, int64_t init, struct hr_lin_result *out)
{
    size_t nobs = 0, nprod = 0, nseen = 0;
    s->obs = malloc((n ? n : 1) * sizeof *s->obs);
    s->prod = malloc((n ? n : 1) * sizeof *s->prod);
    s->seen = malloc((n ? n : 1) * sizeof *s->seen);
    s->kept = malloc((n ? n : 1) * sizeof *s->kept);
    s->kops = malloc((n ? n : 1) * sizeof *s->kops);
    if (!s->obs || !s->prod || !s->seen || !s->kept || !s->kops) {
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct hr_lin_op *op = &s->ops[i];
        if (op->f > HR_LIN_CAS || isnan(op->call) || (!op->info && !(op->ret >= op->call))) {
            return HR_EINVAL;
        }
        if ((op->f == HR_LIN_READ && !op->info) || op->f == HR_LIN_CAS) {
            s->obs[nobs++] = op->a;
        }
        if ((op->f == HR_LIN_READ || op->f == HR_LIN_CAS) && !op->info) {
            s->seen[nseen++] = (struct seen){ op->a, op->ret };
        }
        if (op->f != HR_LIN_READ) {
            s->prod[nprod++] = op->f == HR_LIN_CAS ? op->b : op->a;
        }
    }
    qsort(s->obs, nobs, sizeof *s->obs, cmp_i64);
    qsort(s->prod, nprod, sizeof *s->prod, cmp_i64);
    qsort(s->seen, nseen, sizeof *s->seen, cmp_seen);
    for (size_t i = 0; i < n; i++) {
        struct hr_lin_op op = s->ops[i];
        if (op.info && op.f == HR_LIN_READ) {
            out->dropped++; /* a read of unknown outcome constrains nothing */
            continue;
        }
        int64_t v = op.f == HR_LIN_CAS ? op.b : op.a;
        if (op.info && !observed(s->obs, nobs, v)) {
            out->dropped++;
            continue;
        }
        if (op.info && v != init && count_i64(s->prod, nprod, v) == 1) {
            double t = first_seen(s->seen, nseen, v);
            /* before op's invocation: impossible, which the search will say */
            if (!isnan(t) && t >= op.call) {
                op.info = 0;
                op.ret = t;
                out->bounded++;
            }
        }
        s->kops[s->m] = op;
        s->kept[s->m++] = (uint32_t)i;
    }
    return 0;
}

static int build(struct search *s)
{
    size_t m = s->m, nev = 0;
    s->ev = malloc((2 * m + 1) * sizeof *s->ev);
    s->next = malloc((2 * m + 2) * sizeof *s->next);
    s->prev = malloc((2 * m + 2) * sizeof *s->prev);
    s->call_ev = malloc((m + 1) * sizeof *s->call_ev);
    s->ret_ev = malloc((m + 1) * sizeof *s->ret_ev);
    s->z1 = malloc((m + 1) * sizeof *s->z1);
    s->z2 = malloc((m + 1) * sizeof *s->z2);
    s->stack = malloc((m + 1) * sizeof *s->stack);
    if (!s->ev || !s->next || !s->prev || !s->call_ev || !s->ret_ev || !s->z1 || !s->z2 ||
        !s->stack) {
        return HR_ENOMEM;
    }
    uint64_t seed = 0x243F6A8885A308D3ULL; /* fixed: runs are reproducible */
    for (uint32_t k = 0; k < m; k++) {
        const struct hr_lin_op *op = &s->kops[k];
        s->ev[nev++] = (struct event){ op->call, k, 0 };
        if (!op->info) {
            s->ev[nev++] = (struct event){ op->ret, k, 1 };
        }
        s->ret_ev[k] = -1;
        s->z1[k] = splitmix(&seed);
        s->z2[k] = splitmix(&seed);
    }
    qsort(s->ev, nev, sizeof *s->ev, cmp_event);
    s->nev = nev;
    int32_t head = (int32_t)nev, tail = (int32_t)nev + 1;
    for (int32_t e = 0; e < (int32_t)nev; e++) {
        s->next[e] = e + 1 == (int32_t)nev ? tail : e + 1;
        s->prev[e] = e == 0 ? head : e - 1;
        if (s->ev[e].ret) {
            s->ret_ev[s->ev[e].op] = e;
        } else {
            s->call_ev[s->ev[e].op] = e;
        }
    }
    s->next[head] = nev ? 0 : tail;
    s->prev[tail] = nev ? (int32_t)nev - 1 : head;
    return 0;
}

/* The search got stuck at the completion event e: keep it if it is the furthest yet. */
static int note_stuck(struct search *s, int32_t e, int64_t v, size_t depth, int32_t *deepest,
                      struct hr_lin_result *out)
{
    if (e <= *deepest) {
        return 0;
    }
    *deepest = e;
    uint32_t k = s->ev[e].op;
    out->stuck = s->kept[k];
    out->value = v;
    if (out->pending == NULL) {
        out->pending = malloc(HR_LIN_WINDOW * sizeof *out->pending);
        out->last = malloc(HR_LIN_LAST * sizeof *out->last);
        if (out->pending == NULL || out->last == NULL) {
            return HR_ENOMEM;
        }
    }
    out->npending = 0;
    out->pending[out->npending++] = s->kept[k];
    for (int32_t x = s->next[(int32_t)s->nev]; x != e && out->npending < HR_LIN_WINDOW;
         x = s->next[x]) {
        if (!s->ev[x].ret && s->ev[x].op != k) {
            out->pending[out->npending++] = s->kept[s->ev[x].op];
        }
    }
    /* The last writes and cas, which led to v, and the last reads, which saw it: half the
     * room each, from at most 64 ops back (this runs at every new furthest point), newest
     * first, then turned oldest first. */
    size_t reads = 0, writes = 0;
    out->nlast = 0;
    for (size_t i = depth; i > 0 && depth - i < 64 && out->nlast < HR_LIN_LAST; i--) {
        size_t op = s->kept[s->stack[i - 1].op];
        size_t *count = s->ops[op].f == HR_LIN_READ ? &reads : &writes;
        if (*count < HR_LIN_LAST / 2) {
            (*count)++;
            out->last[out->nlast++] = op;
        }
    }
    for (size_t i = 0; i < out->nlast / 2; i++) {
        size_t t = out->last[i];
        out->last[i] = out->last[out->nlast - 1 - i];
        out->last[out->nlast - 1 - i] = t;
    }
    return 0;
}

static int search_run(struct search *s, int64_t init, uint64_t max_steps,
                      struct hr_lin_result *out)
{
    size_t required = 0, depth = 0;
    for (size_t k = 0; k < s->m; k++) {
        required += s->ret_ev[k] >= 0;
    }
    const int32_t head = (int32_t)s->nev;
    int32_t deepest = -1;
    int64_t v = init;
    uint64_t h1 = 0, h2 = 0;
    int32_t e = s->next[head];
    while (required > 0) {
        if (++out->steps > max_steps) {
            out->verdict = HR_LIN_UNKNOWN;
            out->why = "max_steps";
            return 0;
        }
        /* required > 0: a completion is still in the list, so the walk meets one before
         * the tail. */
        if (!s->ev[e].ret) {
            uint32_t k = s->ev[e].op;
            int64_t nv;
            if (step(&s->kops[k], v, &nv)) {
                int rc = memo_add(&s->memo, h1 ^ s->z1[k], h2 ^ s->z2[k], nv);
                if (rc == 2) {
                    out->verdict = HR_LIN_UNKNOWN;
                    out->why = "max_states";
                    return 0;
                }
                if (rc < 0) {
                    return rc;
                }
                if (rc == 1) {
                    s->stack[depth++] = (struct frame){ k, v };
                    h1 ^= s->z1[k];
                    h2 ^= s->z2[k];
                    v = nv;
                    lift(s, k);
                    required -= s->ret_ev[k] >= 0;
                    e = s->next[head];
                    continue;
                }
            }
            e = s->next[e];
            continue;
        }
        int rc = note_stuck(s, e, v, depth, &deepest, out);
        if (rc != 0) {
            return rc;
        }
        if (depth == 0) {
            out->verdict = HR_LIN_FAIL;
            return 0;
        }
        struct frame f = s->stack[--depth];
        v = f.prev;
        h1 ^= s->z1[f.op];
        h2 ^= s->z2[f.op];
        unlift(s, f.op);
        required += s->ret_ev[f.op] >= 0;
        e = s->next[s->call_ev[f.op]];
    }
    out->verdict = HR_LIN_OK;
    return 0;
}

int hr_lin_check(const struct hr_lin_op *ops, size_t n, int64_t init,
                 const struct hr_lin_limits *limits, struct hr_lin_result *out)
{
    memset(out, 0, sizeof *out);
    if (n >= INT32_MAX / 2) {
        return HR_EINVAL;
    }
    struct search s;
    memset(&s, 0, sizeof s);
    s.ops = ops;
    s.memo.max = limits && limits->max_states ? limits->max_states : DEFAULT_MAX_STATES;
    uint64_t max_steps = limits && limits->max_steps ? limits->max_steps : DEFAULT_MAX_STEPS;
    int rc = select_ops(&s, n, init, out);
    if (rc == 0) {
        rc = build(&s);
    }
    if (rc == 0) {
        rc = search_run(&s, init, max_steps, out);
    }
    out->states = s.memo.count;
    search_free(&s);
    return rc;
}

void hr_lin_result_free(struct hr_lin_result *r)
{
    free(r->pending);
    free(r->last);
    r->pending = NULL;
    r->last = NULL;
    r->npending = r->nlast = 0;
}
