/*
 * raft.c: inputs, role transitions and the output batch of the consensus core.
 * Votes live in election.c, log replication and commit in replication.c.
 */
#include "raft_impl.h"
#include "array.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers shared by the core's files ---- */

struct hr__progress *hr__peer(struct hr_raft *r, hr_id_t id)
{
    for (size_t i = 0; i < r->n_peers; i++) {
        if (r->peers[i].id == id) {
            return &r->peers[i];
        }
    }
    return NULL;
}

/* A majority of the voters (learners and a removed leader do not count). */
size_t hr__quorum(const struct hr_raft *r)
{
    return r->n_voters / 2 + 1;
}

static int msgvec_push(struct hr__msgvec *v, const struct hr_msg *m)
{
    struct hr_msg *nv = hr_array_grow(v->v, &v->cap, v->len + 1, sizeof(*nv), 16);
    if (nv == NULL) {
        return HR_ENOMEM;
    }
    v->v = nv;
    v->v[v->len++] = *m;
    return 0;
}

static void msgvec_clear(struct hr__msgvec *v)
{
    for (size_t i = 0; i < v->len; i++) {
        hr_msg_release(&v->v[i]);
    }
    v->len = 0;
}

static void msgvec_free(struct hr__msgvec *v)
{
    msgvec_clear(v);
    free(v->v);
    v->v = NULL;
    v->cap = 0;
}

/* Queue m (ownership moves to the core) for the next batch. after_persist: the message
 * speaks for state that must be on disk before anyone hears of it. */
int hr__send(struct hr_raft *r, struct hr_msg *m, bool after_persist)
{
    m->from = r->cfg.id;
    int rv = msgvec_push(after_persist ? &r->msgs_after : &r->msgs, m);
    if (rv != 0) {
        hr_msg_release(m);
    }
    return rv;
}

void hr__reset_election_timer(struct hr_raft *r)
{
    /* §5.2: randomized in [E, 2E) so that split votes are rare and resolve quickly. */
    uint64_t e = r->cfg.election_timeout_ms;
    r->election_deadline = r->now + e + hr_prng_next(&r->prng) % e;
    r->election_grace = false;
}

static void set_role(struct hr_raft *r, int role, hr_id_t leader)
{
    int old_role = r->role;
    hr_id_t old_leader = r->leader;
    r->role = role;
    r->leader = leader;
    if (old_role != role || old_leader != leader) {
        r->soft_changed = true;
        if (old_role == HR_LEADER || role == HR_LEADER) {
            r->transfer_target = 0;
            r->transfer_sent = false;
        }
        hr__read_role_changed(r, old_role, old_leader);
    }
}

/* ---- role transitions (Figure 4) ---- */

void hr__become_follower(struct hr_raft *r, hr_term_t term, hr_id_t leader)
{
    assert(term >= r->term);
    if (term > r->term) {
        r->term = term;
        r->vote = 0;
        r->soft_changed = true;
    }
    set_role(r, HR_FOLLOWER, leader);
    r->promote = 0;
    if (leader != 0) {
        r->leader_contact = r->now;
    }
    hr__reset_election_timer(r);
}

void hr__become_precandidate(struct hr_raft *r)
{
    /* Thesis §9.6: a pre-candidate keeps its term; it only asks whether it could win. */
    set_role(r, HR_PRECANDIDATE, 0);
    hr__reset_election_timer(r);
}

void hr__become_candidate(struct hr_raft *r)
{
    r->term++;
    r->vote = r->cfg.id;
    r->soft_changed = true;
    set_role(r, HR_CANDIDATE, 0);
    hr__reset_election_timer(r);
}

void hr__become_leader(struct hr_raft *r)
{
    hr__conf_leave_tick(r); /* not leading yet: drops a former term's leaving slots */
    set_role(r, HR_LEADER, r->cfg.id);
    for (size_t i = 0; i < r->n_peers; i++) {
        hr__progress_reset(r, &r->peers[i]);
        r->peers[i].recent_active = true;
        r->peers[i].last_contact = r->now; /* the age counts from the start of this term */
    }
    r->heartbeat_deadline = r->now + r->cfg.heartbeat_timeout_ms;
    r->quorum_deadline = r->now + r->cfg.election_timeout_ms;
    r->quorum_grace = false;
    r->promote = 0;
    /* Membership changes wait until this entry commits (membership.c). */
    r->term_start = hr__log_last(&r->log) + 1;
    /* §5.4.2 / §8: a leader cannot count replicas of entries from earlier terms, so it
     * commits a no-op of its own term at once; that also commits everything before it. */
    hr__append_local(r, HR_ENTRY_NOOP, NULL);
}

/* ---- lifecycle ---- */

/* The part of the recovered log that agrees with the snapshot: all of it, or none when it
 * ends before the snapshot or disagrees with it at the snapshot's index. A crash between
 * installing a snapshot and dropping the old log leaves such a log; the snapshot, which
 * holds only committed state, wins. */
static size_t usable_entries(const struct hr_raft_state *st)
{
    if (st->snapshot_index == 0 || st->n_entries == 0) {
        return st->n_entries;
    }
    hr_index_t first = st->entries[0].index;
    hr_index_t last = first + st->n_entries - 1;
    if (first > st->snapshot_index + 1 || last < st->snapshot_index) {
        return 0;
    }
    if (first <= st->snapshot_index &&
        st->entries[st->snapshot_index - first].term != st->snapshot_term) {
        return 0;
    }
    return st->n_entries;
}

/* The starting state comes from disk: validate it, don't assert it. */
static int validate_state(const struct hr_raft_state *st, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const struct hr_entry *e = &st->entries[i];
        if (e->index == 0 || e->index != st->entries[0].index + i || e->term == 0 ||
            (i > 0 && e->term < st->entries[i - 1].term)) {
            snprintf(err, errlen, "log: entry %zu (index %llu, term %llu) breaks the log's order",
                     i, (unsigned long long)e->index, (unsigned long long)e->term);
            return HR_ECORRUPT;
        }
    }
    hr_index_t last = n > 0 ? st->entries[n - 1].index : st->snapshot_index;
    if (last < st->snapshot_index) {
        last = st->snapshot_index;
    }
    if (st->applied < st->snapshot_index || st->applied > last) {
        snprintf(err, errlen, "state: applied index %llu is outside [%llu, %llu]",
                 (unsigned long long)st->applied, (unsigned long long)st->snapshot_index,
                 (unsigned long long)last);
        return HR_EINVAL;
    }
    return 0;
}

struct hr_raft *hr_raft_new(const struct hr_config *c, const struct hr_raft_state *st,
                            hr_time_t now, char *err, size_t errlen)
{
    size_t n_entries = usable_entries(st);
    if (hr_config_validate(c, err, errlen) != 0 ||
        validate_state(st, n_entries, err, errlen) != 0) {
        return NULL;
    }
    struct hr_raft *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->cfg = *c;
    hr_prng_seed(&r->prng, c->seed ^ (c->id * 0x9e3779b97f4a7c15ULL));
    r->term = st->hs.term;
    r->vote = st->hs.vote;
    r->emitted_hs = st->hs;
    hr_term_t last_term =
        st->n_entries > 0 ? st->entries[st->n_entries - 1].term : st->snapshot_term;
    if (last_term > r->term) {
        /* A crash kept the entries of a batch but not its new term (the log and the
         * metadata are separate files). Take the entries' term with no vote: a vote cast in
         * that term would have waited for the same batch, so nobody ever heard of it. The
         * first output batch persists the corrected term. */
        r->term = last_term;
        r->vote = 0;
    }
    if (n_entries > 0) {
        /* The term before the first entry is known only when it is the snapshot's. */
        hr_index_t before = st->entries[0].index - 1;
        hr__log_init(&r->log, before, before == st->snapshot_index ? st->snapshot_term : 0);
    } else {
        hr__log_init(&r->log, st->snapshot_index, st->snapshot_term);
    }
    r->snap_index = st->snapshot_index;
    r->snap_term = st->snapshot_term;
    r->role = HR_FOLLOWER;
    /* The configuration: storage's (or the bootstrap one), then the log's config entries
     * after it, each taking effect as it is appended. */
    int crv = hr__conf_init(r, st->conf, st->conf_index, err, errlen);
    r->cfg.voters = NULL; /* the caller's: copied into the configuration */
    r->cfg.n_voters = 0;
    if (crv != 0) {
        hr_raft_free(r);
        return NULL;
    }
    for (size_t i = 0; i < n_entries; i++) {
        if (hr__log_append(&r->log, &st->entries[i]) != 0 ||
            hr__conf_appended(r, &st->entries[i]) != 0) {
            goto oom;
        }
    }
    /* What storage gave us is durable by definition, and what the FSM has is committed. */
    r->persisted = hr__log_last(&r->log);
    r->unstable = r->persisted + 1;
    r->commit = st->applied;
    r->handed = st->applied;
    r->now = now;
    r->started = now;
    r->soft_changed = true;
    hr__reset_election_timer(r);
    return r;

oom:
    hr_raft_free(r);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

static void release_batch(struct hr_raft *r)
{
    msgvec_clear(&r->out_msgs);
    msgvec_clear(&r->out_after);
    free(r->out_entries);
    free(r->out_committed);
    r->out_entries = NULL;
    r->out_committed = NULL;
    hr_blob_release(r->out_install_data);
    r->out_install_data = NULL;
    hr_blob_release(r->out_install_conf);
    r->out_install_conf = NULL;
}

void hr_raft_free(struct hr_raft *r)
{
    if (r == NULL) {
        return;
    }
    release_batch(r);
    msgvec_free(&r->out_msgs);
    msgvec_free(&r->out_after);
    msgvec_free(&r->msgs);
    msgvec_free(&r->msgs_after);
    for (size_t i = 0; i < HR_MAX_NODES + 1; i++) {
        free(r->peers[i].inflight_last);
    }
    hr__conf_free(r);
    hr_blob_release(r->install_data);
    hr__read_free(r);
    hr__log_free(&r->log);
    free(r);
}

/* ---- inputs ---- */

/* Any server but ourselves: a leader may be one we do not know of yet (a new server hears
 * of the configuration only from the leader's log), and the answers of a server that left
 * are ignored where they would count (hr__peer finds no slot). */
static bool valid_sender(const struct hr_raft *r, const struct hr_msg *m)
{
    return m->from != 0 && m->from != r->cfg.id;
}

int hr_raft_step(struct hr_raft *r, const struct hr_msg *m)
{
    if (m->type == 0 || m->type >= HR_MSG_TYPE_COUNT || m->to != r->cfg.id || !valid_sender(r, m) ||
        m->term == 0) {
        return HR_EPROTO;
    }

    if (r->role == HR_LEADER) {
        const struct hr__progress *pr = hr__peer(r, m->from);
        bool vote_req = m->type == HR_MSG_VOTE || m->type == HR_MSG_PREVOTE;
        bool answer = m->type == HR_MSG_APPEND_RESP || m->type == HR_MSG_SNAPSHOT_RESP;
        if (vote_req && pr == NULL) {
            /* A removed server that has not learnt it is out (membership.c, "Leaving
             * slots"): replicate to it until it has. */
            hr__conf_outsider(r, m->from);
        } else if (answer && m->term > r->term && (pr == NULL || pr->leaving)) {
            /* A server that left (and may have raised its term alone, without PreVote)
             * never raises the term of those that remain: as if the answer were lost. */
            return 0;
        }
    }

    if (m->term > r->term) {
        bool vote_req = m->type == HR_MSG_VOTE || m->type == HR_MSG_PREVOTE;
        /* A VOTE sent on the leader's TIMEOUT_NOW skips it (transfer.c says why). */
        bool transfer = m->type == HR_MSG_VOTE && m->transfer;
        if (vote_req && !transfer && hr__in_lease(r) &&
            (m->type == HR_MSG_PREVOTE || r->cfg.check_quorum)) {
            /* §4.2.3: a server that hears from a current leader within the minimum
             * election timeout neither updates its term nor grants a vote, so a server
             * that was cut off cannot depose a healthy leader when it returns. */
            struct hr_msg resp = {.type = m->type == HR_MSG_VOTE ? HR_MSG_VOTE_RESP
                                                                 : HR_MSG_PREVOTE_RESP,
                                  .to = m->from,
                                  .term = r->term,
                                  .reject = true};
            return hr__send(r, &resp, true);
        }
        if (m->type == HR_MSG_PREVOTE || (m->type == HR_MSG_PREVOTE_RESP && !m->reject)) {
            /* A pre-vote and its grant carry the term the candidate would take; neither
             * changes anyone's term (thesis §9.6). */
        } else {
            bool from_leader = m->type == HR_MSG_APPEND || m->type == HR_MSG_SNAPSHOT;
            hr__become_follower(r, m->term, from_leader ? m->from : 0);
        }
    } else if (m->term < r->term) {
        if (m->type == HR_MSG_APPEND && (r->cfg.check_quorum || r->cfg.prevote)) {
            /* A leader cut off for a while still thinks it leads. With PreVote or
             * CheckQuorum nobody would raise its term, so answer: our term makes it step
             * down (etcd's fix for the same deadlock). */
            struct hr_msg resp = {.type = HR_MSG_APPEND_RESP,
                                  .to = m->from,
                                  .term = r->term,
                                  .reject = true,
                                  .index = m->prev_index,
                                  .seq = m->seq};
            return hr__send(r, &resp, true);
        }
        if (m->type == HR_MSG_PREVOTE) {
            struct hr_msg resp = {
                .type = HR_MSG_PREVOTE_RESP, .to = m->from, .term = r->term, .reject = true};
            return hr__send(r, &resp, true);
        }
        return 0; /* stale: ignore */
    }

    switch (m->type) {
    case HR_MSG_APPEND:
    case HR_MSG_SNAPSHOT:
        if (r->role == HR_LEADER) {
            /* Two leaders in one term would break election safety: the sender is broken. */
            return HR_EPROTO;
        }
        /* The leader of our term: follow it, and its messages keep elections away. */
        if (r->role != HR_FOLLOWER || r->leader != m->from) {
            hr__become_follower(r, r->term, m->from);
        }
        r->leader_contact = r->now;
        hr__reset_election_timer(r);
        return m->type == HR_MSG_APPEND ? hr__handle_append(r, m) : hr__handle_snapshot(r, m);
    case HR_MSG_APPEND_RESP:
        if (r->role == HR_LEADER) {
            hr__handle_append_resp(r, m);
            hr__read_ack(r, m->from, m->seq);
        }
        return 0;
    case HR_MSG_READ_INDEX:
        return hr__handle_read_index(r, m);
    case HR_MSG_READ_INDEX_RESP:
        hr__handle_read_index_resp(r, m);
        return 0;
    case HR_MSG_TIMEOUT_NOW:
        return hr__handle_timeout_now(r, m);
    case HR_MSG_VOTE:
    case HR_MSG_PREVOTE:
        return hr__handle_vote(r, m);
    case HR_MSG_VOTE_RESP:
    case HR_MSG_PREVOTE_RESP:
        hr__handle_vote_resp(r, m);
        return 0;
    default:
        return 0; /* SNAPSHOT_RESP is the node layer's flow control */
    }
}

void hr_raft_set_clock(struct hr_raft *r, hr_time_t now)
{
    if (now > r->now) {
        r->now = now;
    }
}

/* A deadline that a tick finds passed by more than a heartbeat interval was missed while
 * this node's own loop was held up (a long apply, a collector pause, a stopped process):
 * meanwhile it could neither hear its peers nor be heard, and their messages may still wait
 * unread, while the peers, held up by the same work, may not have sent any. So such a
 * deadline is judged one heartbeat interval later, once: by then the messages of that
 * interval are in. This is liveness only: a lease counts from the rounds its followers
 * confirmed (read.c), never from these deadlines. True if the deadline was moved. */
static bool late(struct hr_raft *r, hr_time_t *deadline, bool *grace)
{
    if (*grace || r->now - *deadline <= r->cfg.heartbeat_timeout_ms) {
        *grace = false;
        return false;
    }
    *grace = true;
    *deadline = r->now + r->cfg.heartbeat_timeout_ms;
    return true;
}

void hr_raft_tick(struct hr_raft *r, hr_time_t now)
{
    if (now > r->now) {
        r->now = now;
    }
    hr__conf_leave_tick(r);
    hr__read_tick(r);
    hr__transfer_tick(r);
    if (r->role == HR_LEADER) {
        if (r->cfg.check_quorum && r->now >= r->quorum_deadline &&
            !late(r, &r->quorum_deadline, &r->quorum_grace)) {
            /* §6.2 CheckQuorum: a leader that has not heard from a majority within an
             * election timeout steps down, so clients stop waiting on it. */
            size_t active = r->peers[r->self].voter ? 1 : 0;
            for (size_t i = 0; i < r->n_peers; i++) {
                if (i != r->self && r->peers[i].voter && r->peers[i].recent_active) {
                    active++;
                }
                r->peers[i].recent_active = false;
            }
            r->quorum_deadline = r->now + r->cfg.election_timeout_ms;
            if (active < hr__quorum(r)) {
                hr__become_follower(r, r->term, 0);
                return;
            }
        }
        if (r->now >= r->heartbeat_deadline) {
            r->heartbeat_deadline = r->now + r->cfg.heartbeat_timeout_ms;
            hr__heartbeat(r);
        }
        return;
    }
    if (r->now >= r->election_deadline && !late(r, &r->election_deadline, &r->election_grace)) {
        if (!hr__conf_may_campaign(r)) {
            /* A learner, a new server or a removed one does not campaign (membership.c):
             * it waits for a leader to send it the log. */
            if (r->role != HR_FOLLOWER) {
                hr__become_follower(r, r->term, 0);
            } else {
                hr__reset_election_timer(r);
            }
            return;
        }
        hr__campaign(r, r->cfg.prevote);
    }
}

int hr_raft_propose(struct hr_raft *r, uint8_t type, const void *data, size_t len,
                    hr_index_t *index, hr_term_t *term)
{
    if (r->role != HR_LEADER) {
        return HR_ENOTLEADER;
    }
    if (r->transfer_target != 0) {
        return HR_EBUSY; /* handing leadership over: the target must catch up (transfer.c) */
    }
    if (len > UINT32_MAX) {
        return HR_ETOOLARGE;
    }
    struct hr_blob *b = NULL;
    if (len > 0) {
        b = hr_blob_new(data, len);
        if (b == NULL) {
            return HR_ENOMEM;
        }
    }
    int rv = hr__append_local(r, type, b);
    hr_blob_release(b);
    if (rv != 0) {
        return rv;
    }
    if (index != NULL) {
        *index = hr__log_last(&r->log);
    }
    if (term != NULL) {
        *term = r->term;
    }
    return 0;
}

void hr_raft_persisted(struct hr_raft *r, hr_index_t index, hr_term_t term)
{
    /* A batch written before a truncation may complete after it: only an ack for the
     * entry still in our log at that index counts. */
    if (index <= r->persisted || hr__log_term(&r->log, index) != term) {
        return;
    }
    r->persisted = index;
    if (r->role == HR_LEADER) {
        hr__maybe_commit(r);
    }
}

/* ---- output ---- */

bool hr_raft_has_ready(const struct hr_raft *r)
{
    if (r->term != r->emitted_hs.term || r->vote != r->emitted_hs.vote || r->truncate != 0 ||
        r->unstable <= hr__log_last(&r->log) || r->msgs.len > 0 || r->msgs_after.len > 0 ||
        r->handed < r->commit || r->soft_changed || r->install || hr__read_has_ready(r)) {
        return true;
    }
    if (r->role == HR_LEADER) {
        for (size_t i = 0; i < r->n_peers; i++) {
            if (r->peers[i].want_send) {
                return true;
            }
        }
    }
    return false;
}

static struct hr_entry *copy_entries(const struct hr__log *l, hr_index_t from, hr_index_t to,
                                     size_t *n)
{
    *n = 0;
    if (from > to) {
        return NULL;
    }
    size_t count = to - from + 1;
    struct hr_entry *v = malloc(count * sizeof(*v));
    if (v == NULL) {
        return NULL;
    }
    memcpy(v, hr__log_get(l, from), count * sizeof(*v));
    *n = count;
    return v;
}

void hr_raft_ready(struct hr_raft *r, struct hr_ready *rd)
{
    memset(rd, 0, sizeof(*rd));
    if (r->role == HR_LEADER) {
        hr__flush_appends(r);
    }

    if (r->term != r->emitted_hs.term || r->vote != r->emitted_hs.vote) {
        rd->has_hard_state = true;
        rd->hs.term = r->term;
        rd->hs.vote = r->vote;
        r->emitted_hs = rd->hs;
    }

    if (r->install) {
        rd->has_snapshot = true;
        rd->snapshot.index = r->snap_index;
        rd->snapshot.term = r->snap_term;
        rd->snapshot.data = r->install_data;
        r->out_install_data = r->install_data; /* released in advance() */
        r->install_data = NULL;
        rd->snapshot.conf = hr_blob_retain(r->base.blob);
        rd->snapshot.conf_index = r->base.index;
        r->out_install_conf = rd->snapshot.conf;
        r->install = false;
    }

    /* The batch holds struct copies with blob references of their own: the log may grow
     * or shrink (an FSM apply can propose, a message can truncate) while the caller works
     * through the batch. */
    rd->truncate = r->truncate;
    hr_index_t last = hr__log_last(&r->log);
    rd->entries = copy_entries(&r->log, r->unstable, last, &rd->n_entries);
    for (size_t i = 0; i < rd->n_entries; i++) {
        hr_blob_retain(rd->entries[i].data);
    }
    r->out_entries = rd->entries;
    if (rd->n_entries == 0 && r->unstable <= last) {
        /* out of memory: hand out nothing; the entries go with the next batch */
        rd->truncate = 0;
    } else {
        r->truncate = 0;
        r->unstable = last + 1;
    }

    hr_index_t to = r->commit;
    rd->committed = copy_entries(&r->log, r->handed + 1, to, &rd->n_committed);
    for (size_t i = 0; i < rd->n_committed; i++) {
        hr_blob_retain(rd->committed[i].data);
    }
    r->out_committed = rd->committed;
    if (rd->n_committed > 0) {
        r->handed = to;
    }

    /* Swap the queues out so that messages produced while the caller handles this batch
     * go to the next one. */
    struct hr__msgvec t = r->out_msgs;
    r->out_msgs = r->msgs;
    r->msgs = t;
    t = r->out_after;
    r->out_after = r->msgs_after;
    r->msgs_after = t;
    rd->msgs = r->out_msgs.v;
    rd->n_msgs = r->out_msgs.len;
    rd->msgs_after_persist = r->out_after.v;
    rd->n_msgs_after_persist = r->out_after.len;

    hr__read_ready(r, rd);

    rd->soft_changed = r->soft_changed;
    rd->role = r->role;
    rd->term = r->term;
    rd->leader = r->leader;
    r->soft_changed = false;
}

void hr_raft_advance(struct hr_raft *r, struct hr_ready *rd)
{
    for (size_t i = 0; i < rd->n_entries; i++) {
        hr_blob_release(rd->entries[i].data);
    }
    for (size_t i = 0; i < rd->n_committed; i++) {
        hr_blob_release(rd->committed[i].data);
    }
    release_batch(r);
    hr__read_advance(r);
    memset(rd, 0, sizeof(*rd));
}

hr_time_t hr_raft_next_deadline(const struct hr_raft *r)
{
    if (r->role == HR_LEADER) {
        hr_time_t t = r->heartbeat_deadline;
        if (r->cfg.check_quorum && r->quorum_deadline < t) {
            t = r->quorum_deadline;
        }
        if (r->transfer_target != 0 && r->transfer_deadline < t) {
            t = r->transfer_deadline;
        }
        return hr__read_next_deadline(r, t);
    }
    return hr__read_next_deadline(r, r->election_deadline);
}

/* ---- views ---- */

hr_id_t hr_raft_id(const struct hr_raft *r)
{
    return r->cfg.id;
}

int hr_raft_role(const struct hr_raft *r)
{
    return r->role;
}

hr_term_t hr_raft_term(const struct hr_raft *r)
{
    return r->term;
}

hr_id_t hr_raft_vote(const struct hr_raft *r)
{
    return r->vote;
}

hr_id_t hr_raft_leader(const struct hr_raft *r)
{
    return r->leader;
}

hr_index_t hr_raft_commit_index(const struct hr_raft *r)
{
    return r->commit;
}

hr_index_t hr_raft_first_index(const struct hr_raft *r)
{
    return r->log.first;
}

hr_index_t hr_raft_last_index(const struct hr_raft *r)
{
    return hr__log_last(&r->log);
}

const struct hr_entry *hr_raft_entry(const struct hr_raft *r, hr_index_t index)
{
    return hr__log_get(&r->log, index);
}

hr_term_t hr_raft_term_at(const struct hr_raft *r, hr_index_t index)
{
    if (index != 0 && index == r->snap_index) {
        return r->snap_term;
    }
    return hr__log_term(&r->log, index);
}

size_t hr_raft_progress(const struct hr_raft *r, struct hr_progress_info *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_peers && n < max; i++) {
        const struct hr__progress *pr = &r->peers[i];
        out[n].id = pr->id;
        out[n].match = i == r->self ? r->persisted : pr->match;
        out[n].next = i == r->self ? hr__log_last(&r->log) + 1 : pr->next;
        out[n].replicating = pr->replicating;
        out[n].snapshotting = pr->snapshot != 0;
        out[n].inflight = pr->inflight;
        out[n].member = pr->member;
        out[n].voter = pr->voter;
        out[n].leaving = pr->leaving;
        out[n].contact_known = r->role == HR_LEADER && i != r->self;
        out[n].contact_age = 0;
        if (out[n].contact_known && r->now > pr->last_contact) {
            out[n].contact_age = r->now - pr->last_contact;
        }
        n++;
    }
    return n;
}
