/* check.c: see check.h. */
#include "check.h"
#include "../core/array.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Log matching: what the first node to append (index, term) appended. */
struct lm_slot {
    hr_index_t index; /* 0: empty */
    hr_term_t term;
    uint64_t hash;
    hr_term_t prev;
    hr_id_t by;
};

struct committed {
    hr_term_t term; /* 0: not known committed */
    uint64_t hash;
    /* The term of the node that first saw it committed: at least the term in which it was
     * committed, so only leaders of later terms are bound to hold it (a stale leader of an
     * older term may legitimately lack it). */
    hr_term_t commit_term;
    hr_id_t by;
};

struct applied {
    hr_term_t term; /* 0: not applied anywhere yet */
    uint64_t hash;
    hr_id_t by;
};

/* The snapshots taken at an index (by any node): their term and bytes. */
struct snaprec {
    hr_term_t term; /* 0: none taken there yet */
    uint64_t hash;
    size_t len;
    hr_id_t by;
};

struct cnode {
    struct hr_node *node; /* NULL while crashed */
    struct hr_raft *r;
    hr_index_t last_applied, last_commit;
    hr_term_t leader_term; /* the term in which it was last checked as a new leader */
    /* The snapshot boundary (index, term) its log was last checked against (boundary()):
     * a new one (a snapshot taken or installed) or a new incarnation checks it again. */
    hr_index_t bnd_index;
    hr_term_t bnd_term;
    bool bnd_checked;
};

struct hr__check {
    uint32_t n;
    struct cnode *nodes; /* nodes[id - 1] */
    struct lm_slot *lm;
    size_t lm_cap, lm_n;
    hr_id_t *leaders; /* leaders[term] */
    size_t leaders_cap;
    struct committed *com; /* com[index] */
    size_t com_cap;
    hr_index_t com_max;
    struct applied *app; /* app[index] */
    size_t app_cap;
    struct snaprec *snaps; /* snaps[index] */
    size_t snaps_cap;
    /* votes[term][id - 1]: the vote node id was last seen to hold in that term (a vote
     * lost with a crash before it was durable is replaced by the next one, as the node
     * may cast it again). */
    hr_id_t (*votes)[HR_MAX_NODES];
    size_t votes_cap;
    hr_index_t max_applied; /* the highest index any node applied (or restored) */
    hr_index_t *read_floor; /* read_floor[ctx]: max_applied when read ctx began */
    hr_time_t *read_start;  /* read_start[ctx]: when read ctx began */
    size_t read_cap, start_cap;
    bool failed;
    char err[512];
};

static int fail(struct hr__check *c, const char *fmt, ...)
{
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof(c->err), fmt, ap);
        va_end(ap);
        c->failed = true;
    }
    return -1;
}

/* FNV-1a over 64-bit little-endian words (then the tail bytes): the checker hashes every
 * entry several times per node, and a word at a time is several times faster than the
 * byte-wise original while just as good for telling commands apart. */
static uint64_t fnv1a(uint64_t h, const unsigned char *b, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h ^= w;
        h *= 0x100000001b3ULL;
        h ^= h >> 32;
    }
    for (; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The identity of an entry's content: type, leader timestamp and payload. */
static uint64_t entry_hash(const struct hr_entry *e)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ e->type;
    h *= 0x100000001b3ULL;
    h ^= e->time_ms;
    h *= 0x100000001b3ULL;
    h ^= h >> 32;
    if (e->data != NULL) {
        h = fnv1a(h, e->data->data, e->data->len);
    }
    return h;
}

/* Grow a zero-filled array so that index `need` is valid. */
static void *grow(void *v, size_t *cap, size_t need, size_t elem)
{
    size_t old = *cap;
    unsigned char *nv = hr_array_grow(v, cap, need + 1, elem, 256);
    if (nv == NULL) {
        abort(); /* a checker that cannot remember cannot check */
    }
    memset(nv + old * elem, 0, (*cap - old) * elem);
    return nv;
}

static size_t lm_slot_of(hr_index_t index, hr_term_t term, size_t cap)
{
    uint64_t x = index * 0x9e3779b97f4a7c15ULL ^ (term + 0x632be59bd9b4e019ULL);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return (size_t)x & (cap - 1);
}

static struct lm_slot *lm_find(struct hr__check *c, hr_index_t index, hr_term_t term)
{
    if (c->lm_n * 2 >= c->lm_cap) {
        size_t ncap = c->lm_cap == 0 ? 1024 : c->lm_cap * 2;
        struct lm_slot *nv = calloc(ncap, sizeof(*nv));
        if (nv == NULL) {
            abort();
        }
        for (size_t i = 0; i < c->lm_cap; i++) {
            struct lm_slot *s = &c->lm[i];
            if (s->index != 0) {
                size_t j = lm_slot_of(s->index, s->term, ncap);
                while (nv[j].index != 0) {
                    j = (j + 1) & (ncap - 1);
                }
                nv[j] = *s;
            }
        }
        free(c->lm);
        c->lm = nv;
        c->lm_cap = ncap;
    }
    size_t j = lm_slot_of(index, term, c->lm_cap);
    while (c->lm[j].index != 0 && (c->lm[j].index != index || c->lm[j].term != term)) {
        j = (j + 1) & (c->lm_cap - 1);
    }
    return &c->lm[j];
}

/* Log matching (§5.3): two logs that hold an entry with the same index and term hold the
 * same command there and agree on every entry before it. Checking the content and the
 * previous entry's term of each (index, term) against the first node that had it gives the
 * whole-prefix property by induction. */
static int lm_put(struct hr__check *c, hr_id_t id, const struct hr_entry *e, hr_term_t prev)
{
    uint64_t h = entry_hash(e);
    struct lm_slot *s = lm_find(c, e->index, e->term);
    if (s->index == 0) {
        s->index = e->index;
        s->term = e->term;
        s->hash = h;
        s->prev = prev;
        s->by = id;
        c->lm_n++;
        return 0;
    }
    if (s->hash != h) {
        return fail(c,
                    "log matching: node %" PRIu64 " has (index %" PRIu64 ", term %" PRIu64
                    ") with a different command than node %" PRIu64,
                    id, e->index, e->term, s->by);
    }
    if (s->prev != prev) {
        return fail(c,
                    "log matching: node %" PRIu64 " has (index %" PRIu64 ", term %" PRIu64
                    ") with prev term %" PRIu64 " but node %" PRIu64
                    " has it with prev term %" PRIu64,
                    id, e->index, e->term, prev, s->by, s->prev);
    }
    return 0;
}

static uint64_t blob_hash(const struct hr_blob *b)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ hr_blob_len(b);
    h *= 0x100000001b3ULL;
    return b != NULL ? fnv1a(h, b->data, b->len) : h;
}

/* The term of r's entry at index i as far as the checker can vouch for it: its log's, its
 * snapshot boundary's, or, for an index compacted away (always committed: a node compacts
 * only what its snapshot covers), the term committed there. 0: unknown (or i = 0). */
static hr_term_t known_term(const struct hr__check *c, struct hr_raft *r, hr_index_t i)
{
    if (i == 0) {
        return 0;
    }
    hr_term_t t = hr_raft_term_at(r, i);
    if (t == 0 && i < hr_raft_first_index(r) && i < c->com_cap) {
        t = c->com[i].term;
    }
    return t;
}

/* Does r hold (index, term) with this content? A compacted index counts as held when r's
 * snapshot covers it and is the committed entry at the snapshot's index. */
static bool holds(const struct hr__check *c, struct hr_raft *r, hr_index_t index, hr_term_t term,
                  uint64_t hash)
{
    if (index < hr_raft_first_index(r)) {
        hr_index_t si = hr_raft_snapshot_index(r);
        if (si < index) {
            return false;
        }
        return si >= c->com_cap || c->com[si].term == 0 ||
               c->com[si].term == hr_raft_snapshot_term(r);
    }
    const struct hr_entry *e = hr_raft_entry(r, index);
    return e != NULL && e->term == term && entry_hash(e) == hash;
}

static int lacks(struct hr__check *c, hr_id_t id, hr_term_t t, hr_index_t i)
{
    const struct committed *k = &c->com[i];
    return fail(c,
                "leader completeness: node %" PRIu64 ", leader of term %" PRIu64
                ", lacks (index %" PRIu64 ", term %" PRIu64 ") committed by term %" PRIu64
                " (seen on node %" PRIu64 ")",
                id, t, i, k->term, k->commit_term, k->by);
}

/* §5.4: a leader of term T holds every entry committed before T. With log matching checked
 * on every append, the newest such entry being present proves the whole prefix, unless
 * `full` asks to look at each one. */
static int leader_complete(struct hr__check *c, hr_id_t id, struct hr_raft *r, hr_term_t t,
                           bool full)
{
    for (hr_index_t i = c->com_max; i >= 1; i--) {
        const struct committed *k = &c->com[i];
        if (k->term == 0 || k->commit_term >= t) {
            continue;
        }
        if (!holds(c, r, i, k->term, k->hash)) {
            return lacks(c, id, t, i);
        }
        if (!full) {
            break;
        }
    }
    return 0;
}

struct hr__check *hr__check_new(uint32_t n)
{
    struct hr__check *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->nodes = calloc(n, sizeof(*c->nodes));
    if (c->nodes == NULL) {
        free(c);
        return NULL;
    }
    c->n = n;
    return c;
}

void hr__check_free(struct hr__check *c)
{
    if (c == NULL) {
        return;
    }
    free(c->nodes);
    free(c->lm);
    free(c->leaders);
    free(c->com);
    free(c->app);
    free(c->snaps);
    free(c->votes);
    free(c->read_floor);
    free(c->read_start);
    free(c);
}

void hr__check_attach(struct hr__check *c, hr_id_t id, struct hr_node *node)
{
    struct cnode *cn = &c->nodes[id - 1];
    memset(cn, 0, sizeof(*cn));
    cn->node = node;
    cn->r = hr_node_raft(node);
    cn->last_applied = hr_node_applied(node);
    cn->last_commit = hr_raft_commit_index(cn->r);
}

void hr__check_detach(struct hr__check *c, hr_id_t id)
{
    memset(&c->nodes[id - 1], 0, sizeof(c->nodes[id - 1]));
}

/* The voters of an encoded configuration as a bit set (bit id - 1); false if corrupt. */
static bool voter_set(const struct hr_blob *conf, uint64_t *set)
{
    struct hr_server s[HR_MAX_NODES];
    size_t n;
    *set = 0;
    if (hr_conf_decode(conf, s, HR_MAX_NODES, &n) != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i].voter && s[i].id <= HR_MAX_NODES) {
            *set |= 1ULL << (s[i].id - 1);
        }
    }
    return true;
}

/* A config entry e that node id's core (r) writes (csrc/core/membership.c): it differs
 * from the configuration before it by at most one voter (single-server changes), and a
 * leader writing one of its own term had committed the previous configuration and an
 * entry of its term (the fix to the single-server algorithm). */
static int check_config_entry(struct hr__check *c, hr_id_t id, struct hr_raft *r,
                              const struct hr_entry *e)
{
    if (e->index <= hr_raft_snapshot_index(r) + 1 && e->index > 1) {
        return 0; /* what came before is compacted away here */
    }
    hr_index_t prev_index;
    const struct hr_blob *prev = hr_raft_snapshot_conf(r, e->index - 1, &prev_index);
    uint64_t a, b;
    if (!voter_set(e->data, &b)) {
        return fail(c, "membership: node %" PRIu64 " wrote config entry %" PRIu64
                    " that does not decode", id, e->index);
    }
    /* A = 0: a spawned node, which never knew the configuration before its first one. */
    if (voter_set(prev, &a) && a != 0 && __builtin_popcountll(a ^ b) > 1) {
        return fail(c, "membership: config entry %" PRIu64 " (term %" PRIu64 ", node %" PRIu64
                    ") changes %d voters at once after the configuration of entry %" PRIu64,
                    e->index, e->term, id, __builtin_popcountll(a ^ b), prev_index);
    }
    hr_term_t term = hr_raft_term(r);
    if (hr_raft_role(r) != HR_LEADER || e->term != term) {
        return 0;
    }
    hr_index_t commit = hr_raft_commit_index(r);
    hr_index_t start = e->index;
    while (start > 1 && hr_raft_term_at(r, start - 1) == term) {
        start--;
    }
    if (prev_index > commit || (start == e->index || commit < start)) {
        return fail(c, "membership: leader %" PRIu64 " of term %" PRIu64 " wrote config entry "
                    "%" PRIu64 " with commit index %" PRIu64 " (previous configuration at %"
                    PRIu64 ", first entry of its term at %" PRIu64 ")",
                    id, term, e->index, commit, prev_index, start);
    }
    return 0;
}

int hr__check_append(struct hr__check *c, hr_id_t id, const struct hr_entry *e, size_t n)
{
    if (c->failed) {
        return -1;
    }
    struct hr_raft *r = c->nodes[id - 1].r;
    for (size_t j = 0; j < n; j++) {
        if (r != NULL && e[j].type == HR_ENTRY_CONFIG && check_config_entry(c, id, r, &e[j]) != 0) {
            return -1;
        }
        /* The first one's previous entry may be compacted away: its term is then the
         * snapshot boundary's or the committed one (known_term), which log matching
         * binds just the same. */
        hr_term_t prev = j > 0 ? e[j - 1].term : known_term(c, r, e[0].index - 1);
        if (prev == 0 && e[j].index > 1) {
            continue; /* compacted and not known committed: nothing to compare with */
        }
        if (lm_put(c, id, &e[j], prev) != 0) {
            return -1;
        }
    }
    return 0;
}

int hr__check_apply(struct hr__check *c, hr_id_t id, const struct hr_entry *e)
{
    if (c->failed) {
        return -1;
    }
    struct cnode *cn = &c->nodes[id - 1];
    if (e->index != cn->last_applied + 1) {
        return fail(c,
                    "apply order: node %" PRIu64 " applied index %" PRIu64 " after index %" PRIu64,
                    id, e->index, cn->last_applied);
    }
    cn->last_applied = e->index;
    if (e->index > c->max_applied) {
        c->max_applied = e->index;
    }
    hr_index_t commit = hr_raft_commit_index(cn->r);
    if (e->index > commit) {
        return fail(
            c, "apply: node %" PRIu64 " applied index %" PRIu64 " beyond its commit index %" PRIu64,
            id, e->index, commit);
    }
    uint64_t h = entry_hash(e);
    c->app = grow(c->app, &c->app_cap, e->index, sizeof(*c->app));
    struct applied *a = &c->app[e->index];
    if (a->term == 0) {
        a->term = e->term;
        a->hash = h;
        a->by = id;
    } else if (a->term != e->term || a->hash != h) {
        return fail(c,
                    "state machine safety: node %" PRIu64 " applied (index %" PRIu64
                    ", term %" PRIu64 ") but node %" PRIu64 " applied (index %" PRIu64
                    ", term %" PRIu64 ")%s",
                    id, e->index, e->term, a->by, e->index, a->term,
                    a->term == e->term ? " with a different command" : "");
    }
    if (e->index < c->com_cap) {
        const struct committed *k = &c->com[e->index];
        if (k->term != 0 && (k->term != e->term || k->hash != h)) {
            return fail(c,
                        "state machine safety: node %" PRIu64 " applied (index %" PRIu64
                        ", term %" PRIu64 ") but (index %" PRIu64 ", term %" PRIu64
                        ") is committed (seen on node %" PRIu64 ")",
                        id, e->index, e->term, e->index, k->term, k->by);
        }
    }
    return 0;
}

/* Node id (in term t) sees index i committed. */
static int record_commit(struct hr__check *c, hr_id_t id, struct hr_raft *r, hr_index_t i,
                         hr_term_t t)
{
    const struct hr_entry *e = hr_raft_entry(r, i);
    if (e == NULL) {
        /* Compacted, or covered by a snapshot installed from the leader: its snapshot's
         * (index, term) must be the committed entry there. */
        if (i == hr_raft_snapshot_index(r) && i < c->com_cap && c->com[i].term != 0 &&
            c->com[i].term != hr_raft_snapshot_term(r)) {
            return fail(c,
                        "leader completeness: node %" PRIu64 " committed up to its snapshot "
                        "(index %" PRIu64 ", term %" PRIu64 ") but node %" PRIu64
                        " committed (index %" PRIu64 ", term %" PRIu64 ")",
                        id, i, hr_raft_snapshot_term(r), c->com[i].by, i, c->com[i].term);
        }
        return 0;
    }
    uint64_t h = entry_hash(e);
    c->com = grow(c->com, &c->com_cap, i, sizeof(*c->com));
    struct committed *k = &c->com[i];
    if (k->term != 0) {
        if (k->term != e->term || k->hash != h) {
            return fail(c,
                        "leader completeness: node %" PRIu64 " committed (index %" PRIu64
                        ", term %" PRIu64 ") but node %" PRIu64 " committed (index %" PRIu64
                        ", term %" PRIu64 ")%s",
                        id, i, e->term, k->by, i, k->term,
                        k->term == e->term ? " with a different command" : "");
        }
        return 0;
    }
    k->term = e->term;
    k->hash = h;
    k->commit_term = t;
    k->by = id;
    if (i > c->com_max) {
        c->com_max = i;
    }
    if (i < c->app_cap && c->app[i].term != 0 &&
        (c->app[i].term != e->term || c->app[i].hash != h)) {
        return fail(c,
                    "state machine safety: node %" PRIu64 " applied (index %" PRIu64
                    ", term %" PRIu64 ") but node %" PRIu64 " committed (index %" PRIu64
                    ", term %" PRIu64 ")",
                    c->app[i].by, i, c->app[i].term, id, i, e->term);
    }
    if (i < c->snaps_cap && c->snaps[i].term != 0 && c->snaps[i].term != e->term) {
        return fail(c,
                    "snapshot: node %" PRIu64 " took a snapshot through (index %" PRIu64
                    ", term %" PRIu64 ") but node %" PRIu64 " committed (index %" PRIu64
                    ", term %" PRIu64 ")",
                    c->snaps[i].by, i, c->snaps[i].term, id, i, e->term);
    }
    /* A new commit binds every current leader of a later term. */
    for (uint32_t j = 0; j < c->n; j++) {
        struct cnode *o = &c->nodes[j];
        if (o->r == NULL || hr_raft_role(o->r) != HR_LEADER) {
            continue;
        }
        hr_term_t ot = hr_raft_term(o->r);
        if (ot > t && !holds(c, o->r, i, e->term, h)) {
            return lacks(c, j + 1, ot, i);
        }
    }
    return 0;
}

/* A snapshot through (index, term) with bytes `data` from node id: it must be the
 * committed entry there, and every snapshot of (index, term) must have the same bytes.
 * `what` says where it came from, for the message. */
static int snap_put(struct hr__check *c, hr_id_t id, hr_index_t index, hr_term_t term,
                    const struct hr_blob *data, const char *what, bool record)
{
    if (index < c->com_cap && c->com[index].term != 0 && c->com[index].term != term) {
        return fail(c,
                    "snapshot: node %" PRIu64 " %s a snapshot through (index %" PRIu64
                    ", term %" PRIu64 ") but (index %" PRIu64 ", term %" PRIu64
                    ") is committed (seen on node %" PRIu64 ")",
                    id, what, index, term, index, c->com[index].term, c->com[index].by);
    }
    uint64_t h = blob_hash(data);
    c->snaps = grow(c->snaps, &c->snaps_cap, index, sizeof(*c->snaps));
    struct snaprec *sr = &c->snaps[index];
    if (sr->term == 0) {
        if (!record) {
            return fail(c,
                        "snapshot: node %" PRIu64 " %s a snapshot through (index %" PRIu64
                        ", term %" PRIu64 ") that no node took",
                        id, what, index, term);
        }
        sr->term = term;
        sr->hash = h;
        sr->len = hr_blob_len(data);
        sr->by = id;
        return 0;
    }
    if (sr->term != term) {
        return fail(c,
                    "snapshot: node %" PRIu64 " %s a snapshot through (index %" PRIu64
                    ", term %" PRIu64 ") but node %" PRIu64 " took one through (index %" PRIu64
                    ", term %" PRIu64 ")",
                    id, what, index, term, sr->by, index, sr->term);
    }
    if (sr->hash != h || sr->len != hr_blob_len(data)) {
        return fail(c,
                    "snapshot: node %" PRIu64 " %s a snapshot through (index %" PRIu64
                    ", term %" PRIu64 ") of %zu bytes that differ from the %zu bytes node %" PRIu64
                    " took there (an FSM that is not deterministic, or a restore or transfer "
                    "that lost state)",
                    id, what, index, term, hr_blob_len(data), sr->len, sr->by);
    }
    return 0;
}

int hr__check_snapshot(struct hr__check *c, hr_id_t id, hr_index_t index, hr_term_t term,
                       const struct hr_blob *data)
{
    if (c->failed) {
        return -1;
    }
    const struct cnode *cn = &c->nodes[id - 1];
    if (cn->node != NULL) {
        hr_index_t applied = hr_node_applied(cn->node);
        if (index > applied || index > hr_raft_commit_index(cn->r)) {
            return fail(c,
                        "snapshot: node %" PRIu64 " took a snapshot through index %" PRIu64
                        " beyond its applied index %" PRIu64,
                        id, index, applied);
        }
    }
    return snap_put(c, id, index, term, data, "took", true);
}

int hr__check_restore(struct hr__check *c, hr_id_t id, hr_index_t index, hr_term_t term,
                      const struct hr_blob *data, bool starting)
{
    if (c->failed) {
        return -1;
    }
    if (snap_put(c, id, index, term, data, starting ? "restarted from" : "installed", false) !=
        0) {
        return -1;
    }
    if (starting) {
        return 0;
    }
    struct cnode *cn = &c->nodes[id - 1];
    if (index < cn->last_applied) {
        return fail(c,
                    "restore: node %" PRIu64 " installed a snapshot through index %" PRIu64
                    " below its applied index %" PRIu64 " (its FSM would go back)",
                    id, index, cn->last_applied);
    }
    cn->last_applied = index;
    if (index > c->max_applied) {
        c->max_applied = index;
    }
    return 0;
}

int hr__check_read_begin(struct hr__check *c, uint64_t ctx, hr_time_t now)
{
    if (c->failed) {
        return -1;
    }
    hr_time_t *t = hr_array_grow(c->read_start, &c->start_cap, (size_t)ctx + 1, sizeof(*t), 64);
    if (t == NULL) {
        return fail(c, "read: out of memory");
    }
    c->read_start = t;
    hr_index_t *v = hr_array_grow(c->read_floor, &c->read_cap, (size_t)ctx + 1, sizeof(*v), 64);
    if (v == NULL) {
        return fail(c, "read: out of memory");
    }
    c->read_floor = v;
    v[ctx] = c->max_applied;
    t[ctx] = now;
    return 0;
}

int hr__check_read_served(struct hr__check *c, hr_id_t id, uint64_t ctx, hr_index_t applied,
                          hr_time_t time_ms, hr_time_t now)
{
    if (c->failed) {
        return -1;
    }
    if (ctx < c->read_cap && ctx < c->start_cap && time_ms != 0 &&
        (time_ms < c->read_start[ctx] || time_ms > now)) {
        return fail(c,
                    "linearizable read: node %" PRIu64 " served read %" PRIu64
                    " at leader time %" PRIu64 ", outside the read's span [%" PRIu64
                    ", %" PRIu64 "]",
                    id, ctx, time_ms, c->read_start[ctx], now);
    }
    if (ctx < c->read_cap && applied < c->read_floor[ctx]) {
        return fail(c,
                    "linearizable read: node %" PRIu64 " served read %" PRIu64
                    " from its FSM at applied index %" PRIu64 ", but index %" PRIu64
                    " was applied (and may have been acknowledged) before the read began",
                    id, ctx, applied, c->read_floor[ctx]);
    }
    return 0;
}

/* Log matching across node id's snapshot boundary (S, T), checked when the node gets a
 * new boundary (a snapshot taken or installed) and for each new incarnation (a log loaded
 * from disk, after its snapshot): the appends checked one by one (hr__check_append) never
 * see a log that was installed, kept across an install or loaded. Here:
 *   - (S, T) is an entry some node's log held (an install names a real entry);
 *   - the log agrees with its own boundary: if it still holds S, with term T there, and it
 *     has no hole after it;
 *   - the log's first entry and the one after S are checked as appends (the previous
 *     entry's term being the boundary's, or the committed one), so a suffix that followed
 *     a different entry at S in another log is caught (the entries after them were
 *     checked against them as they were appended);
 *   - every other live log that holds S as committed holds it with term T. */
static int boundary(struct hr__check *c, hr_id_t id, struct cnode *cn)
{
    struct hr_raft *r = cn->r;
    hr_index_t si = hr_raft_snapshot_index(r);
    hr_term_t st = hr_raft_snapshot_term(r);
    if (cn->bnd_checked && cn->bnd_index == si && cn->bnd_term == st) {
        return 0;
    }
    cn->bnd_checked = true;
    cn->bnd_index = si;
    cn->bnd_term = st;
    hr_index_t first = hr_raft_first_index(r), last = hr_raft_last_index(r);
    if (si > 0) {
        if (lm_find(c, si, st)->index == 0) {
            return fail(c,
                        "log matching: node %" PRIu64 "'s log starts after a snapshot through "
                        "(index %" PRIu64 ", term %" PRIu64 ") that no node's log held",
                        id, si, st);
        }
        if (first > si + 1) {
            return fail(c,
                        "log: node %" PRIu64 "'s log starts at %" PRIu64
                        ", after a hole behind its snapshot through index %" PRIu64,
                        id, first, si);
        }
        if (si >= first && si <= last && hr_raft_entry(r, si)->term != st) {
            return fail(c,
                        "log matching: node %" PRIu64 " holds (index %" PRIu64 ", term %" PRIu64
                        ") but its snapshot is through (index %" PRIu64 ", term %" PRIu64 ")",
                        id, si, hr_raft_entry(r, si)->term, si, st);
        }
        for (uint32_t k = 0; k < c->n; k++) {
            struct hr_raft *o = c->nodes[k].r;
            if (o == NULL || o == r || hr_raft_commit_index(o) < si) {
                continue;
            }
            hr_term_t ot = known_term(c, o, si);
            if (ot != 0 && ot != st) {
                return fail(c,
                            "log matching: node %" PRIu64 "'s snapshot is through (index %" PRIu64
                            ", term %" PRIu64 ") but node %" PRIu64 " committed (index %" PRIu64
                            ", term %" PRIu64 ")",
                            id, si, st, (uint64_t)k + 1, si, ot);
            }
        }
    }
    hr_index_t at[2] = {first, si + 1};
    for (int j = 0; j < 2; j++) {
        hr_index_t i = at[j];
        if (i < first || i > last || i == 0 || (j == 1 && i == first)) {
            continue;
        }
        hr_term_t prev = known_term(c, r, i - 1);
        if ((prev != 0 || i == 1) && lm_put(c, id, hr_raft_entry(r, i), prev) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Votes and roles against the configuration (csrc/core/membership.c): a server that is
 * not a voter of its configuration campaigns only while that configuration is uncommitted
 * (its own removal in progress), and one that knows it was removed (hr_raft_removed) is a
 * follower for good; a new leader holds the votes of a majority of the voters of its configuration
 * (so a learner's vote was never what elected it); a leader whose removal committed has
 * stepped down. */
static int membership(struct hr__check *c, hr_id_t id, struct cnode *cn, struct hr_raft *r)
{
    hr_term_t term = hr_raft_term(r);
    hr_id_t vote = hr_raft_vote(r);
    if (vote != 0 && term > 0) {
        size_t old = c->votes_cap;
        hr_id_t(*nv)[HR_MAX_NODES] = hr_array_grow(c->votes, &c->votes_cap, term + 1,
                                                   sizeof(*c->votes), 64);
        if (nv == NULL) {
            abort();
        }
        memset(nv + old, 0, (c->votes_cap - old) * sizeof(*nv));
        c->votes = nv;
        c->votes[term][id - 1] = vote;
    }
    int role = hr_raft_role(r);
    bool voter = hr_raft_is_voter(r);
    struct hr_server s[HR_MAX_NODES];
    hr_index_t conf_index;
    size_t n = hr_raft_configuration(r, s, HR_MAX_NODES, &conf_index);
    if (role != HR_FOLLOWER && hr_raft_removed(r)) {
        /* Its configuration, or the one at its commit index, is committed without it:
         * nothing may make it campaign or lead again (a removed server that knows it is
         * out must not disturb the cluster). */
        return fail(c, "membership: node %" PRIu64 " is a %s in term %" PRIu64
                    " but knows it was removed (configuration of entry %" PRIu64 ")", id,
                    hr_role_name(role), term, conf_index);
    }
    if ((role == HR_CANDIDATE || role == HR_PRECANDIDATE) && !voter &&
        conf_index <= hr_raft_commit_index(r)) {
        return fail(c, "membership: node %" PRIu64 " is a %s in term %" PRIu64
                    " but not a voter of its committed configuration (entry %" PRIu64 ")", id,
                    hr_role_name(role), term, conf_index);
    }
    if (role != HR_LEADER) {
        return 0;
    }
    if (conf_index <= hr_raft_commit_index(r) && !voter) {
        return fail(c, "membership: node %" PRIu64 " still leads term %" PRIu64 " after the "
                    "configuration of entry %" PRIu64 " that removed it committed",
                    id, term, conf_index);
    }
    if (cn->leader_term == term) {
        return 0; /* checked when it was first seen leading this term */
    }
    size_t voters = 0, granted = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s[i].voter) {
            continue;
        }
        voters++;
        if (s[i].id <= HR_MAX_NODES && term < c->votes_cap &&
            c->votes[term][s[i].id - 1] == id) {
            granted++;
        }
    }
    if (granted < voters / 2 + 1) {
        return fail(c, "membership: node %" PRIu64 " leads term %" PRIu64 " with the votes of %zu "
                    "of the %zu voters of its configuration (entry %" PRIu64 "): someone else's "
                    "vote (a learner's?) was counted",
                    id, term, granted, voters, conf_index);
    }
    return 0;
}

int hr__check_node(struct hr__check *c, hr_id_t id)
{
    if (c->failed) {
        return -1;
    }
    struct cnode *cn = &c->nodes[id - 1];
    struct hr_raft *r = cn->r;
    if (r == NULL) {
        return 0;
    }
    if (boundary(c, id, cn) != 0) {
        return -1;
    }
    hr_term_t term = hr_raft_term(r);
    if (membership(c, id, cn, r) != 0) {
        return -1;
    }
    if (hr_raft_role(r) == HR_LEADER) {
        /* §5.2 election safety: at most one leader per term, over the whole run. */
        c->leaders = grow(c->leaders, &c->leaders_cap, term, sizeof(*c->leaders));
        if (c->leaders[term] == 0) {
            c->leaders[term] = id;
        } else if (c->leaders[term] != id) {
            return fail(c,
                        "election safety: nodes %" PRIu64 " and %" PRIu64
                        " were both leaders of term %" PRIu64,
                        c->leaders[term], id, term);
        }
        if (cn->leader_term != term) {
            cn->leader_term = term;
            if (leader_complete(c, id, r, term, false) != 0) {
                return -1;
            }
        }
    }
    hr_index_t commit = hr_raft_commit_index(r);
    hr_index_t last = hr_raft_last_index(r);
    if (commit > last) {
        return fail(c,
                    "commit: node %" PRIu64 " has commit index %" PRIu64
                    " beyond its last index %" PRIu64,
                    id, commit, last);
    }
    if (commit < cn->last_commit) {
        return fail(
            c, "commit: node %" PRIu64 "'s commit index went back from %" PRIu64 " to %" PRIu64, id,
            cn->last_commit, commit);
    }
    for (hr_index_t i = cn->last_commit + 1; i <= commit; i++) {
        if (record_commit(c, id, r, i, term) != 0) {
            return -1;
        }
    }
    cn->last_commit = commit;
    hr_index_t applied = hr_node_applied(cn->node);
    if (applied > commit) {
        return fail(
            c, "apply: node %" PRIu64 " applied up to %" PRIu64 " beyond its commit index %" PRIu64,
            id, applied, commit);
    }
    return 0;
}

/* Pairwise log matching over two whole logs: find the newest index where they hold the
 * same term; everything up to it must be identical. */
static int match_pair(struct hr__check *c, hr_id_t ia, struct hr_raft *a, hr_id_t ib,
                      struct hr_raft *b)
{
    hr_index_t first = hr_raft_first_index(a);
    if (hr_raft_first_index(b) > first) {
        first = hr_raft_first_index(b);
    }
    hr_index_t m = hr_raft_last_index(a);
    if (hr_raft_last_index(b) < m) {
        m = hr_raft_last_index(b);
    }
    hr_index_t top = 0;
    for (hr_index_t i = m; i >= first && i > 0; i--) {
        if (hr_raft_term_at(a, i) == hr_raft_term_at(b, i)) {
            top = i;
            break;
        }
    }
    /* The entry before the later of the two first indexes is the snapshot boundary (or a
     * compacted, committed entry) of one log: it is bound by log matching too. */
    hr_index_t before = first - 1;
    if (top > 0 && before > 0) {
        hr_term_t ta = known_term(c, a, before), tb = known_term(c, b, before);
        if (ta != 0 && tb != 0 && ta != tb) {
            return fail(c,
                        "log matching: nodes %" PRIu64 " and %" PRIu64 " both hold (index %" PRIu64
                        ", term %" PRIu64 ") but differ at index %" PRIu64 " (terms %" PRIu64
                        " and %" PRIu64 ", a snapshot boundary)",
                        ia, ib, top, hr_raft_term_at(a, top), before, ta, tb);
        }
    }
    for (hr_index_t j = first; j <= top && j > 0; j++) {
        const struct hr_entry *ea = hr_raft_entry(a, j);
        const struct hr_entry *eb = hr_raft_entry(b, j);
        if (ea->term != eb->term || entry_hash(ea) != entry_hash(eb)) {
            return fail(c,
                        "log matching: nodes %" PRIu64 " and %" PRIu64 " both hold (index %" PRIu64
                        ", term %" PRIu64 ") but differ at index %" PRIu64 " (terms %" PRIu64
                        " and %" PRIu64 ")",
                        ia, ib, top, hr_raft_term_at(a, top), j, ea->term, eb->term);
        }
    }
    return 0;
}

int hr__check_full(struct hr__check *c)
{
    if (c->failed) {
        return -1;
    }
    for (uint32_t k = 0; k < c->n; k++) {
        hr_id_t id = k + 1;
        struct cnode *cn = &c->nodes[k];
        struct hr_raft *r = cn->r;
        if (r == NULL) {
            continue;
        }
        if (hr__check_node(c, id) != 0) {
            return -1;
        }
        hr_index_t first = hr_raft_first_index(r), last = hr_raft_last_index(r);
        hr_index_t commit = hr_raft_commit_index(r);
        hr_index_t si = hr_raft_snapshot_index(r);
        if (si > 0 && si < c->com_cap && c->com[si].term != 0 &&
            c->com[si].term != hr_raft_snapshot_term(r)) {
            return fail(c,
                        "snapshot: node %" PRIu64 " holds a snapshot through (index %" PRIu64
                        ", term %" PRIu64 ") but (index %" PRIu64 ", term %" PRIu64
                        ") is committed (seen on node %" PRIu64 ")",
                        id, si, hr_raft_snapshot_term(r), si, c->com[si].term, c->com[si].by);
        }
        for (hr_index_t i = first; i <= last && i > 0; i++) {
            const struct hr_entry *e = hr_raft_entry(r, i);
            if (e == NULL || e->index != i) {
                return fail(c,
                            "log: node %" PRIu64 " has no entry at index %" PRIu64
                            " within [%" PRIu64 ", %" PRIu64 "]",
                            id, i, first, last);
            }
            hr_term_t prev = known_term(c, r, i - 1);
            if ((prev != 0 || i == 1) && lm_put(c, id, e, prev) != 0) {
                return -1;
            }
            if (i <= commit && i < c->com_cap && c->com[i].term != 0 &&
                (c->com[i].term != e->term || c->com[i].hash != entry_hash(e))) {
                return fail(c,
                            "leader completeness: node %" PRIu64 " committed (index %" PRIu64
                            ", term %" PRIu64 ") but node %" PRIu64 " committed (index %" PRIu64
                            ", term %" PRIu64 ")",
                            id, i, e->term, c->com[i].by, i, c->com[i].term);
            }
        }
        if (hr_raft_role(r) == HR_LEADER && leader_complete(c, id, r, hr_raft_term(r), true) != 0) {
            return -1;
        }
        for (uint32_t k2 = k + 1; k2 < c->n; k2++) {
            if (c->nodes[k2].r != NULL && match_pair(c, id, r, k2 + 1, c->nodes[k2].r) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

const char *hr__check_error(const struct hr__check *c)
{
    return c->failed ? c->err : NULL;
}
