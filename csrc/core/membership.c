/*
 * membership.c: cluster configurations (Raft thesis chapter 4): their encoding, which one
 * a server uses, and the leader's single-server changes.
 *
 * Why single-server changes and not joint consensus. Thesis §4.1: "Raft restricts the
 * types of changes that are allowed: only one server can be added or removed from the
 * cluster at a time. More complex changes in membership are implemented as a series of
 * single-server changes." Adding or removing one voter makes every majority of the old
 * configuration overlap every majority of the new one, so no moment exists at which two
 * disjoint majorities could each elect a leader or commit, and a server can switch to the
 * new configuration as soon as it appends it, with no intermediate C_old,new state to
 * store, replicate, snapshot and count two majorities over (§4.3 calls joint consensus
 * the more complex approach, needed only for arbitrary changes in one step). What the
 * embedding needs (add a peer, remove a peer, promote a learner) is one server at a time.
 *
 * The one known hole of the single-server algorithm (Ongaro, raft-dev, "bug in
 * single-server membership changes", 2015, and the errata of the thesis): a leader that
 * has just been elected may hold an uncommitted configuration of a deposed leader's term
 * that a later leader overwrites; if it appends a change on top of it, two configurations
 * that differ by two servers can both be in use and elect two leaders in one term. The fix
 * is the thesis' own: "a leader may not append a new configuration entry until it has
 * committed an entry from its current term". Here: no change until this leader's no-op
 * (term_start) has committed, and none while an earlier config entry is uncommitted
 * (§4.1: "a leader ... will not begin a new configuration change until the previous one
 * has committed"). hr_raft_add/remove answer HR_EBUSY meanwhile.
 *
 * "The new configuration takes effect on each server as soon as it is added to that
 * server's log" (§4.1): config entries are applied when appended (hr__conf_appended), on
 * followers as on the leader, and a truncated one is rolled back to the newest left in the
 * log, or to base, the one in effect at the snapshot (storage keeps it with the snapshot).
 *
 * Learners (§4.2.1, "new servers join the cluster as non-voting members") receive the log
 * but are not counted for commit or elections, so a new, empty server cannot stall commits
 * while it catches up; the leader promotes it once caught up (hr_raft_add in raft.h
 * defines that). A learner still answers vote requests: it may be a voter already in a
 * newer configuration it has not received, and its grant may be the one a candidate that
 * knows of the promotion needs; each candidate counts grants only from the voters of its
 * own configuration (tally in election.c).
 *
 * Removed servers (§4.2.2, §4.2.3): a leader that is not in the configuration it leads
 * with keeps replicating but does not count itself, and steps down once that
 * configuration commits. A server that is not a voter does not campaign (hr_raft_tick),
 * except while its own removal is not known committed (hr__conf_may_campaign says why);
 * one that does not know yet that it was removed is kept from disrupting by PreVote and by
 * the lease check of hr_raft_step (a server that heard from a leader within an election
 * timeout ignores vote requests).
 *
 * Leaving slots. The configuration that removes a server takes effect on the leader when
 * appended, so a leader that dropped the server's progress slot right then would never
 * send it that entry, nor the commit index that covers it: the removed server would stay
 * in its old configuration, a voter in its own eyes, and ask for (pre-)votes forever,
 * never able to tell an operator (status "removed") or itself that it is out. So the
 * leader keeps such a slot, marked leaving (neither member nor voter: it counts for
 * nothing, not commit, not CheckQuorum, not reads, not elections), and replicates to it
 * as to a learner until the server has accepted a message that carried a commit index
 * covering the removing entry: it then holds that configuration and knows it committed
 * (hr_raft_removed), and the slot goes. A server that never answers (crashed, cut off)
 * must not cost the leader forever: the slot also goes LEAVE_TIMEOUTS election timeouts
 * after it was made (counted again from each advance of its match, so that a long catch-up
 * by snapshot can finish). If the server comes back later, it campaigns (it still sees
 * itself as a voter); its vote request reaching the leader gives it a leaving slot again
 * (hr__conf_outsider), so it learns then. Answers from a leaving slot never raise the
 * leader's term (hr_raft_step): a removed server cut off without PreVote may have a higher
 * term, and it must not disturb the servers that remain. Only the leader keeps such slots;
 * a node that stops leading drops them at its next tick (a new leader starts over as
 * above, through the removed server's vote requests).
 */
#include "raft_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONF_VERSION 1

/* How long a leaving slot lives without progress, in election timeouts ("Leaving slots"
 * above): long enough for a slow follower to take the entry and the next commit index,
 * short enough that a dead one is soon forgotten. */
#define LEAVE_TIMEOUTS 4

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint64_t get(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

int hr_conf_encode(const struct hr_server *servers, size_t n, struct hr_blob **out)
{
    *out = NULL;
    if (n > HR_MAX_NODES) {
        return HR_EINVAL;
    }
    size_t len = 5;
    for (size_t i = 0; i < n; i++) {
        if (servers[i].id == 0 || servers[i].addr_len > HR_MAX_ADDR) {
            return HR_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (servers[j].id == servers[i].id) {
                return HR_EINVAL;
            }
        }
        len += 11 + servers[i].addr_len;
    }
    unsigned char *buf = malloc(len);
    if (buf == NULL) {
        return HR_ENOMEM;
    }
    unsigned char *p = buf;
    p[0] = CONF_VERSION;
    put32(p + 1, (uint32_t)n);
    p += 5;
    for (size_t i = 0; i < n; i++) {
        put64(p, servers[i].id);
        p[8] = servers[i].voter ? 1 : 0;
        put16(p + 9, (uint16_t)servers[i].addr_len);
        if (servers[i].addr_len > 0) {
            memcpy(p + 11, servers[i].addr, servers[i].addr_len);
        }
        p += 11 + servers[i].addr_len;
    }
    *out = hr_blob_new(buf, len);
    free(buf);
    return *out != NULL ? 0 : HR_ENOMEM;
}

int hr_conf_decode(const struct hr_blob *b, struct hr_server *out, size_t max, size_t *n)
{
    *n = 0;
    if (b == NULL) {
        return 0;
    }
    const unsigned char *p = b->data, *end = b->data + b->len;
    if (b->len < 5 || p[0] != CONF_VERSION) {
        return HR_ECORRUPT;
    }
    uint64_t count = get(p + 1, 4);
    if (count > HR_MAX_NODES || count > max) {
        return HR_ECORRUPT;
    }
    p += 5;
    for (size_t i = 0; i < count; i++) {
        if (end - p < 11) {
            return HR_ECORRUPT;
        }
        struct hr_server s = {.id = get(p, 8), .voter = (p[8] & 1) != 0};
        s.addr_len = (size_t)get(p + 9, 2);
        if (s.id == 0 || (p[8] & ~1u) != 0 || s.addr_len > HR_MAX_ADDR ||
            (size_t)(end - p) < 11 + s.addr_len) {
            return HR_ECORRUPT;
        }
        s.addr = s.addr_len > 0 ? p + 11 : NULL;
        for (size_t j = 0; j < i; j++) {
            if (out[j].id == s.id) {
                return HR_ECORRUPT;
            }
        }
        out[i] = s;
        p += 11 + s.addr_len;
    }
    if (p != end) {
        return HR_ECORRUPT;
    }
    *n = (size_t)count;
    return 0;
}

/* ---- the configuration in use ---- */

/* Make c the configuration encoded in blob (a reference is taken), made by entry index. */
static int conf_set(struct hr__conf *c, struct hr_blob *blob, hr_index_t index)
{
    struct hr__conf t;
    if (hr_conf_decode(blob, t.s, HR_MAX_NODES, &t.n) != 0) {
        return HR_ECORRUPT;
    }
    hr_blob_retain(blob);
    hr_blob_release(c->blob);
    memcpy(c->s, t.s, t.n * sizeof(t.s[0]));
    c->n = t.n;
    c->blob = blob;
    c->index = index;
    return 0;
}

static void conf_clear(struct hr__conf *c)
{
    hr_blob_release(c->blob);
    memset(c, 0, sizeof(*c));
}

/* Rebuild the progress slots from r->conf: servers that stay keep theirs, new ones start
 * afresh (probing from our last entry, as a new leader starts everyone), gone ones are
 * dropped. Our own slot stays whether or not we are in the configuration. */
static int rebuild_peers(struct hr_raft *r)
{
    struct hr__progress nw[HR_MAX_NODES + 1];
    bool taken[HR_MAX_NODES + 1] = {false};
    size_t n = 0, self = SIZE_MAX, voters = 0;
    memset(nw, 0, sizeof(nw));
    for (size_t k = 0; k <= r->conf.n; k++) {
        /* k == conf.n: our own slot, if the configuration does not name us */
        hr_id_t id = k < r->conf.n ? r->conf.s[k].id : r->cfg.id;
        if (k == r->conf.n && self != SIZE_MAX) {
            break;
        }
        struct hr__progress *pr = &nw[n];
        size_t old = SIZE_MAX;
        for (size_t i = 0; i < r->n_peers; i++) {
            if (!taken[i] && r->peers[i].id == id) {
                old = i;
                break;
            }
        }
        if (old != SIZE_MAX) {
            *pr = r->peers[old];
            taken[old] = true;
        } else {
            pr->id = id;
            pr->sent_seq = r->seq_floor;
            pr->inflight_last = calloc(r->cfg.max_inflight, sizeof(*pr->inflight_last));
            if (pr->inflight_last == NULL) {
                for (size_t i = 0; i < n; i++) {
                    bool fresh = true;
                    for (size_t j = 0; j < r->n_peers; j++) {
                        fresh = fresh && r->peers[j].inflight_last != nw[i].inflight_last;
                    }
                    if (fresh) {
                        free(nw[i].inflight_last);
                    }
                }
                return HR_ENOMEM;
            }
            if (r->role == HR_LEADER) {
                hr__progress_reset(r, pr);
                pr->recent_active = true;
                pr->last_contact = r->now;
            }
        }
        pr->member = k < r->conf.n;
        pr->voter = pr->member && r->conf.s[k].voter;
        pr->leaving = false;
        voters += pr->voter;
        if (id == r->cfg.id) {
            self = n;
        }
        n++;
    }
    /* A leader keeps the servers that left as leaving slots ("Leaving slots" above), after
     * the members and its own slot, so that dropping one never moves those. */
    for (size_t i = 0; i < r->n_peers && r->role == HR_LEADER && n < HR_MAX_NODES + 1; i++) {
        const struct hr__progress *old = &r->peers[i];
        if (taken[i] || old->id == r->cfg.id || !(old->member || old->leaving)) {
            continue;
        }
        struct hr__progress *pr = &nw[n++];
        *pr = *old;
        taken[i] = true;
        if (!old->leaving) {
            pr->leaving = true;
            pr->leave_index = r->conf.index;
            pr->leave_seq = 0;
            pr->leave_until = r->now + (hr_time_t)LEAVE_TIMEOUTS * r->cfg.election_timeout_ms;
        }
        pr->member = false;
        pr->voter = false;
    }
    for (size_t i = 0; i < r->n_peers; i++) {
        if (!taken[i]) {
            free(r->peers[i].inflight_last);
            if (r->peers[i].sent_seq > r->seq_floor) {
                r->seq_floor = r->peers[i].sent_seq;
            }
        }
    }
    memset(r->peers, 0, sizeof(r->peers));
    memcpy(r->peers, nw, n * sizeof(nw[0]));
    r->n_peers = n;
    r->self = self;
    r->n_voters = voters;
    r->was_member = r->was_member || r->peers[self].member;
    return 0;
}

/* The configuration in effect at index (>= base.index): the newest config entry of the
 * log at or before it and after base, or base. */
static const struct hr_entry *conf_entry_at(const struct hr_raft *r, hr_index_t index)
{
    hr_index_t last = hr__log_last(&r->log);
    if (index > last) {
        index = last;
    }
    for (hr_index_t i = index; i >= r->log.first && i > r->base.index; i--) {
        const struct hr_entry *e = hr__log_get(&r->log, i);
        if (e->type == HR_ENTRY_CONFIG) {
            return e;
        }
    }
    return NULL;
}

/* Use the configuration in effect at index (see conf_entry_at). A config entry that does
 * not decode (only a broken leader makes one) is skipped, by every server alike. */
static int use_conf_at(struct hr_raft *r, hr_index_t index)
{
    for (;;) {
        const struct hr_entry *e = conf_entry_at(r, index);
        if (e == NULL) {
            int rv = conf_set(&r->conf, r->base.blob, r->base.index);
            return rv != 0 ? rv : rebuild_peers(r);
        }
        if (conf_set(&r->conf, e->data, e->index) == 0) {
            return rebuild_peers(r);
        }
        index = e->index - 1;
    }
}

int hr__conf_init(struct hr_raft *r, struct hr_blob *conf, hr_index_t conf_index, char *err,
                  size_t errlen)
{
    struct hr_blob *b = NULL;
    int rv;
    if (conf != NULL) {
        rv = conf_set(&r->base, conf, conf_index);
        if (rv != 0) {
            snprintf(err, errlen, "state: the stored configuration (index %llu) is corrupt",
                     (unsigned long long)conf_index);
            return rv;
        }
    } else {
        struct hr_server s[HR_MAX_NODES];
        for (size_t i = 0; i < r->cfg.n_voters; i++) {
            s[i] = (struct hr_server){.id = r->cfg.voters[i], .voter = true};
        }
        rv = hr_conf_encode(s, r->cfg.n_voters, &b);
        if (rv == 0) {
            rv = conf_set(&r->base, b, 0);
            hr_blob_release(b);
        }
    }
    if (rv == 0) {
        rv = conf_set(&r->conf, r->base.blob, r->base.index);
    }
    if (rv == 0) {
        rv = rebuild_peers(r);
    }
    if (rv != 0) {
        snprintf(err, errlen, "out of memory");
    }
    return rv;
}

void hr__conf_free(struct hr_raft *r)
{
    conf_clear(&r->conf);
    conf_clear(&r->base);
}

int hr__conf_appended(struct hr_raft *r, const struct hr_entry *e)
{
    if (e->type != HR_ENTRY_CONFIG || e->index <= r->base.index) {
        return 0; /* an entry before the stored configuration (kept for followers) */
    }
    if (conf_set(&r->conf, e->data, e->index) != 0) {
        return 0; /* does not decode: skipped everywhere (use_conf_at) */
    }
    return rebuild_peers(r);
}

int hr__conf_truncated(struct hr_raft *r, hr_index_t from)
{
    if (r->conf.index < from) {
        return 0;
    }
    return use_conf_at(r, from - 1);
}

int hr__conf_snapshot(struct hr_raft *r, hr_index_t index, struct hr_blob *conf,
                      hr_index_t conf_index, bool install)
{
    if (!install) {
        /* Taken by this node: the entries up to index may be compacted away. */
        const struct hr_entry *e = conf_entry_at(r, index);
        return e == NULL ? 0 : conf_set(&r->base, e->data, e->index);
    }
    /* Installed: the log is gone, the snapshot's configuration is all there is. A leader
     * that sent none: keep ours (its membership never changes). */
    int rv;
    if (conf != NULL) {
        rv = conf_set(&r->base, conf, conf_index);
    } else {
        rv = conf_set(&r->base, r->conf.blob, r->conf.index < index ? r->conf.index : index);
    }
    if (rv != 0) {
        return rv;
    }
    rv = conf_set(&r->conf, r->base.blob, r->base.index);
    return rv != 0 ? rv : rebuild_peers(r);
}

/* ---- leaving slots ---- */

static void drop_slot(struct hr_raft *r, size_t i)
{
    free(r->peers[i].inflight_last);
    if (r->peers[i].sent_seq > r->seq_floor) {
        r->seq_floor = r->peers[i].sent_seq;
    }
    memmove(&r->peers[i], &r->peers[i + 1], (r->n_peers - i - 1) * sizeof(r->peers[0]));
    r->n_peers--;
    memset(&r->peers[r->n_peers], 0, sizeof(r->peers[0]));
    if (r->self > i) {
        r->self--;
    }
}

void hr__conf_leave_sent(struct hr_raft *r, struct hr__progress *pr, const struct hr_msg *m)
{
    (void)r;
    /* Any APPEND sent from here on carries a commit index at least this high. */
    if (pr->leaving && pr->leave_seq == 0 && m->commit >= pr->leave_index) {
        pr->leave_seq = m->seq;
    }
}

void hr__conf_leave_acked(struct hr_raft *r, struct hr__progress *pr, const struct hr_msg *m,
                          bool progressed)
{
    if (!pr->leaving) {
        return;
    }
    if (progressed) {
        /* catching up: give it the time that takes */
        pr->leave_until = r->now + (hr_time_t)LEAVE_TIMEOUTS * r->cfg.election_timeout_ms;
    }
    /* An accepted answer at index >= leave_index to an APPEND sent at or after leave_seq:
     * the server then set its commit index to min(that commit, index) >= leave_index
     * (replication.c), so it knows the configuration without it committed. seq 0 answers
     * an install, after which the server's commit index is at least m->index. */
    bool knows = m->index >= pr->leave_index &&
                 (m->seq == 0 || (pr->leave_seq != 0 && m->seq >= pr->leave_seq));
    if (knows) {
        drop_slot(r, (size_t)(pr - r->peers));
    }
}

void hr__conf_leave_tick(struct hr_raft *r)
{
    for (size_t i = r->n_peers; i-- > 0;) {
        const struct hr__progress *pr = &r->peers[i];
        if (pr->leaving && (r->role != HR_LEADER || r->now >= pr->leave_until)) {
            drop_slot(r, i);
        }
    }
}

void hr__conf_outsider(struct hr_raft *r, hr_id_t id)
{
    if (r->role != HR_LEADER || id == 0 || id == r->cfg.id || r->n_peers == HR_MAX_NODES + 1 ||
        hr__peer(r, id) != NULL) {
        return;
    }
    struct hr__progress *pr = &r->peers[r->n_peers];
    memset(pr, 0, sizeof(*pr));
    pr->inflight_last = calloc(r->cfg.max_inflight, sizeof(*pr->inflight_last));
    if (pr->inflight_last == NULL) {
        return; /* it asks again */
    }
    pr->id = id;
    pr->sent_seq = r->seq_floor;
    hr__progress_reset(r, pr);
    pr->recent_active = true;
    pr->last_contact = r->now;
    pr->leaving = true;
    pr->leave_index = r->conf.index;
    pr->leave_until = r->now + (hr_time_t)LEAVE_TIMEOUTS * r->cfg.election_timeout_ms;
    r->n_peers++;
}

/* ---- the leader's changes ---- */

/* §4.1 and the fix of the single-server algorithm (top of this file); and no change while
 * leadership is being handed over (transfer.c), which would move the target's quorum. */
static bool change_allowed(const struct hr_raft *r)
{
    return r->conf.index <= r->commit && r->commit >= r->term_start && r->transfer_target == 0;
}

/* See hr_raft_add in raft.h: the definition of "caught up". */
static bool caught_up(const struct hr_raft *r, const struct hr__progress *pr)
{
    hr_index_t last = hr__log_last(&r->log);
    uint64_t window = (uint64_t)r->cfg.max_inflight * r->cfg.max_entries_per_append;
    /* It holds something (an empty log matches any leader's at index 0 and can look
     * "replicating" after a bare heartbeat) and nothing it lacks has been compacted away
     * (that would take a snapshot transfer first). */
    if (!pr->replicating || pr->snapshot != 0 || pr->match == 0 || pr->match < r->snap_index) {
        return false;
    }
    if (pr->match >= last) {
        return true;
    }
    return last - pr->match <= window && r->now < pr->progress_time + r->cfg.election_timeout_ms;
}

static int propose_conf(struct hr_raft *r, const struct hr_server *s, size_t n, hr_index_t *index)
{
    struct hr_blob *b;
    int rv = hr_conf_encode(s, n, &b);
    if (rv != 0) {
        return rv;
    }
    rv = hr__append_local(r, HR_ENTRY_CONFIG, b);
    hr_blob_release(b);
    if (rv == 0 && index != NULL) {
        *index = hr__log_last(&r->log);
    }
    return rv;
}

static const struct hr_server *find(const struct hr__conf *c, hr_id_t id, size_t *at)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->s[i].id == id) {
            *at = i;
            return &c->s[i];
        }
    }
    return NULL;
}

int hr_raft_add(struct hr_raft *r, hr_id_t id, const void *addr, size_t addr_len, bool voter,
                hr_index_t *index)
{
    if (index != NULL) {
        *index = 0;
    }
    if (r->role != HR_LEADER) {
        return HR_ENOTLEADER;
    }
    size_t at;
    const struct hr_server *have = find(&r->conf, id, &at);
    if (id == 0 || addr_len > HR_MAX_ADDR || (have != NULL && (have->voter || !voter))) {
        return HR_EINVAL;
    }
    if (!change_allowed(r) || r->promote != 0) {
        return HR_EBUSY;
    }
    if (have != NULL) {
        /* A learner already: promote it once it has caught up. */
        r->promote = id;
        hr__conf_maybe_promote(r);
        return 0;
    }
    struct hr_server s[HR_MAX_NODES];
    if (r->conf.n == HR_MAX_NODES) {
        return HR_EINVAL;
    }
    memcpy(s, r->conf.s, r->conf.n * sizeof(s[0]));
    s[r->conf.n] = (struct hr_server){.id = id, .voter = false, .addr = addr, .addr_len = addr_len};
    int rv = propose_conf(r, s, r->conf.n + 1, index);
    if (rv == 0 && voter) {
        r->promote = id;
    }
    return rv;
}

int hr_raft_remove(struct hr_raft *r, hr_id_t id, hr_index_t *index)
{
    if (index != NULL) {
        *index = 0;
    }
    if (r->role != HR_LEADER) {
        return HR_ENOTLEADER;
    }
    size_t at;
    const struct hr_server *have = find(&r->conf, id, &at);
    if (have == NULL || (have->voter && r->n_voters == 1)) {
        return HR_EINVAL;
    }
    if (!change_allowed(r) || (r->promote != 0 && r->promote != id)) {
        return HR_EBUSY;
    }
    struct hr_server s[HR_MAX_NODES];
    size_t n = 0;
    for (size_t i = 0; i < r->conf.n; i++) {
        if (i != at) {
            s[n++] = r->conf.s[i];
        }
    }
    int rv = propose_conf(r, s, n, index);
    if (rv == 0 && r->promote == id) {
        r->promote = 0;
    }
    return rv;
}

void hr__conf_maybe_promote(struct hr_raft *r)
{
    if (r->role != HR_LEADER || r->promote == 0 || !change_allowed(r)) {
        return;
    }
    size_t at;
    const struct hr_server *have = find(&r->conf, r->promote, &at);
    struct hr__progress *pr = hr__peer(r, r->promote);
    if (have == NULL || have->voter || pr == NULL) {
        r->promote = 0; /* removed meanwhile (by a configuration of an earlier leader) */
        return;
    }
    if (!caught_up(r, pr)) {
        return;
    }
    struct hr_server s[HR_MAX_NODES];
    memcpy(s, r->conf.s, r->conf.n * sizeof(s[0]));
    s[at].voter = true;
    if (propose_conf(r, s, r->conf.n, NULL) == 0) {
        r->promote = 0;
    }
}

void hr__conf_after_commit(struct hr_raft *r)
{
    if (r->role != HR_LEADER) {
        return;
    }
    if (r->conf.index <= r->commit && !r->peers[r->self].voter) {
        /* §4.2.2: the configuration that removed us committed; leading it is over. The
         * remaining voters elect a leader among themselves once their timers run out. */
        hr__become_follower(r, r->term, 0);
        return;
    }
    hr__conf_maybe_promote(r);
}

/* Whether this server may start an election: it is a voter of its configuration, or its
 * configuration is not known to be committed and it was a voter of the one before (its
 * removal or demotion is in progress). Without the second case a change could deadlock:
 * a leader removes itself with C_new = {B} and crashes before B has the entry; the
 * removed server A has the most up-to-date log, so B (still in C_old = {A, B}) cannot win
 * without A's vote, and A, no longer a voter of C_new, would never campaign. A campaigns
 * and counts only the votes of C_new's voters (as any candidate counts its own
 * configuration's), which is safe for the usual reason: every majority of C_new overlaps
 * every majority of C_old. Once it wins and C_new commits, it steps down like any removed
 * leader (hr__conf_after_commit). A new server that is not yet a voter, or a removed one
 * that knows its removal committed, never campaigns. */
bool hr__conf_may_campaign(const struct hr_raft *r)
{
    if (r->peers[r->self].voter) {
        return true;
    }
    if (r->conf.index <= r->commit || r->conf.index <= r->base.index) {
        return false;
    }
    const struct hr_entry *e = conf_entry_at(r, r->conf.index - 1);
    struct hr_server s[HR_MAX_NODES];
    size_t n;
    if (hr_conf_decode(e != NULL ? e->data : r->base.blob, s, HR_MAX_NODES, &n) != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i].id == r->cfg.id) {
            return s[i].voter;
        }
    }
    return false;
}

bool hr_raft_may_campaign(const struct hr_raft *r)
{
    return hr__conf_may_campaign(r);
}

/* ---- views ---- */

size_t hr_raft_configuration(const struct hr_raft *r, struct hr_server *out, size_t max,
                             hr_index_t *index)
{
    size_t n = r->conf.n < max ? r->conf.n : max;
    memcpy(out, r->conf.s, n * sizeof(out[0]));
    if (index != NULL) {
        *index = r->conf.index;
    }
    return r->conf.n;
}

const struct hr_blob *hr_raft_snapshot_conf(const struct hr_raft *r, hr_index_t index,
                                            hr_index_t *conf_index)
{
    const struct hr_entry *e = conf_entry_at(r, index);
    if (e == NULL) {
        *conf_index = r->base.index;
        return r->base.blob;
    }
    *conf_index = e->index;
    return e->data;
}

bool hr_raft_removed(const struct hr_raft *r)
{
    /* A new server that was never in a configuration was not removed from one: it holds
     * the empty configuration while it waits to be added, and, if it is sent a snapshot
     * older than the entry that adds it, that snapshot's configuration (without it) until
     * the entries after the snapshot arrive; a crash may bring it back to that state.
     * Hence was_member: a configuration this core used (from storage or the log) held us.
     * And index 0, the bootstrap configuration: nobody was removed from it. The price: a
     * removed server that restarts with its snapshot's configuration (without it) and no
     * configuration with it left in its log cannot tell that it was ever a member: it
     * shows as a follower, which never campaigns (not a voter of a committed
     * configuration) and so never disturbs anyone. Claiming "removed" for a server being
     * added would be worse. */
    if (r->peers[r->self].member || r->conf.n == 0 || !r->was_member) {
        return false;
    }
    if (r->conf.index <= r->commit) {
        return r->conf.index > 0;
    }
    /* The newest configuration is not known committed, but the one in effect at the commit
     * index may already leave us out (we were removed, then heard of later changes whose
     * commit we missed). We are out for good if none of the configurations from that one
     * to the newest holds us: one of them could add us back (and a later one remove us
     * again, its commit unknown: then we may still be needed to elect, see
     * hr__conf_may_campaign). */
    const struct hr_entry *e = conf_entry_at(r, r->commit);
    if ((e != NULL ? e->index : r->base.index) == 0) {
        return false;
    }
    for (hr_index_t i = e != NULL ? e->index : r->base.index; i < r->conf.index; i++) {
        const struct hr_entry *x = i > r->base.index ? hr__log_get(&r->log, i) : NULL;
        const struct hr_blob *b;
        if (x != NULL && x->type == HR_ENTRY_CONFIG) {
            b = x->data;
        } else if (x == NULL && i == r->base.index) {
            b = r->base.blob;
        } else {
            continue;
        }
        struct hr_server s[HR_MAX_NODES];
        size_t n;
        if (hr_conf_decode(b, s, HR_MAX_NODES, &n) != 0) {
            continue; /* skipped everywhere (use_conf_at) */
        }
        if (n == 0) {
            return false;
        }
        for (size_t k = 0; k < n; k++) {
            if (s[k].id == r->cfg.id) {
                return false;
            }
        }
    }
    return true;
}

bool hr_raft_is_voter(const struct hr_raft *r)
{
    return r->peers[r->self].voter;
}

hr_id_t hr_raft_promoting(const struct hr_raft *r)
{
    return r->promote;
}
