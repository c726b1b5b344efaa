/*
 * read.c: linearizable reads by ReadIndex (thesis §6.4), and lease reads (§6.4.1).
 *
 * A read must see every write acknowledged before it began. Serving from local state is not
 * enough: a leader cut off from the majority may have been replaced, and a follower may lag.
 * So the leader
 *
 *   1. waits until it has committed an entry of its own term (its no-op): before that its
 *      commit index may be behind entries its predecessors committed (Figure 8);
 *   2. records its commit index as the read index;
 *   3. confirms that it still leads: a quorum answers an AppendEntries it sent after step 2
 *      (the `seq` each APPEND_RESP echoes says which message it answers, replication.c);
 *   4. reports the read (hr_ready.reads): the caller serves it once its FSM has applied up
 *      to the read index.
 *
 * Reads that arrive while a round is out wait for the next one, and all of them share it:
 * one heartbeat round confirms any number of reads. A follower asks the leader for an index
 * (READ_INDEX, answered by READ_INDEX_RESP once the leader's round confirms it) and serves
 * locally once it has applied that far. A read not confirmed within an election timeout
 * fails with HR_ETIMEOUT; a leader that steps down, or a follower whose leader changes,
 * fails its reads with HR_ENOTLEADER. Nothing is ever answered from a state that was not
 * confirmed: a deposed leader in a minority never completes a round.
 *
 * Lease reads (config read_lease, with check_quorum): followers refuse to vote for anyone
 * within an election timeout E (un-randomized: hr__in_lease) of hearing from their leader.
 * A round the leader started at time S and a quorum answered thus means that no other
 * leader can be elected before S + E on the followers' clocks. The leader takes the lease to
 * end at S + E * 9/10 on its own clock: this assumes that the clocks' rates differ by less
 * than 10% over an election timeout (no bound on their offsets is needed; only durations
 * are compared, each on one clock). Within the lease it answers reads at once. With lease
 * reads on, the leader starts a round at each heartbeat interval to keep the lease fresh.
 * A leadership transfer makes voters skip that refusal (transfer.c), so a leader that sent
 * TIMEOUT_NOW serves no lease read for the rest of its term. A follower that crashes and
 * restarts forgets when it heard from its leader: with read_lease on, a node refuses votes
 * for an election timeout after it starts (election.c, hr__in_lease). Like any lease this
 * also assumes that a node's clock does not jump forward (the caller's clock is monotonic).
 *
 * With the read index the leader records its clock (r->now, the clock it stamps entries
 * with): the read's time, reported with its answer (hr_read_state.time_ms) and sent to a
 * follower in READ_INDEX_RESP. It lies between the read's start and its answer, as the
 * index does, so an FSM whose answers depend on time (TTLs) judges a read against it and
 * gives the same answer on every replica; judging by the newest applied stamp instead would
 * show a key as live long after its TTL passed, as long as nothing else was written. Lease
 * reads and unsafe_read_no_confirm take the time when they take the index.
 *
 * A read the leader holds for a follower and cannot confirm in time is answered with a
 * rejection: the follower reports HR_ENOTLEADER for it (READ_INDEX_RESP has no timeout
 * code), or HR_ETIMEOUT if its own election timeout for the read ran out first.
 */
#include "raft_impl.h"
#include "array.h"

#include <stdlib.h>

static bool committed_in_term(const struct hr_raft *r)
{
    return hr_raft_term_at(r, r->commit) == r->term;
}

static int push_out(struct hr_raft *r, uint64_t ctx, hr_index_t index, hr_time_t time_ms,
                    int status)
{
    struct hr_read_state *v = hr_array_grow(r->reads_out, &r->cap_reads_out, r->n_reads_out + 1,
                                            sizeof(*v), 8);
    if (v == NULL) {
        return HR_ENOMEM;
    }
    r->reads_out = v;
    v[r->n_reads_out++] =
        (struct hr_read_state){.ctx = ctx, .index = index, .status = status, .time_ms = time_ms};
    return 0;
}

/* Answer one read: locally through the ready batch, or to the follower that asked. The
 * leader's clock at the read index goes with a success (struct hr_read_state.time_ms). */
static void answer(struct hr_raft *r, const struct hr__read *rd, hr_index_t index,
                   hr_time_t time_ms, int status)
{
    if (status != 0) {
        time_ms = 0;
    }
    if (rd->from == 0) {
        /* out of memory: it times out upstream */
        (void)push_out(r, rd->ctx, index, time_ms, status);
        return;
    }
    struct hr_msg m = {.type = HR_MSG_READ_INDEX_RESP,
                       .to = rd->from,
                       .term = r->term,
                       .seq = rd->ctx,
                       .index = status == 0 ? index : 0,
                       .time_ms = time_ms,
                       .reject = status != 0};
    (void)hr__send(r, &m, false);
}

/* Answer and drop every pending read for which pick() is true. */
static void answer_if(struct hr_raft *r, bool (*pick)(const struct hr_raft *, const struct hr__read *),
                      int status)
{
    size_t keep = 0;
    for (size_t i = 0; i < r->n_reads; i++) {
        struct hr__read rd = r->reads[i];
        if (pick(r, &rd)) {
            answer(r, &rd, rd.index, rd.time_ms, status);
        } else {
            r->reads[keep++] = rd;
        }
    }
    r->n_reads = keep;
}

static bool any_read(const struct hr_raft *r, const struct hr__read *rd)
{
    (void)r;
    (void)rd;
    return true;
}

static bool expired(const struct hr_raft *r, const struct hr__read *rd)
{
    return rd->deadline <= r->now;
}

static bool confirmed(const struct hr_raft *r, const struct hr__read *rd)
{
    return rd->round != 0 && rd->round <= r->last_round && rd->round != r->round;
}

static bool indexed_unconfirmed(const struct hr_raft *r, const struct hr__read *rd)
{
    (void)r;
    return rd->index != 0 && rd->round == 0;
}

static bool in_lease(const struct hr_raft *r)
{
    return r->cfg.read_lease && r->cfg.check_quorum && !r->lease_off &&
           r->now < r->lease_until;
}

static void check_round(struct hr_raft *r);

static void start_round(struct hr_raft *r)
{
    r->round = ++r->last_round;
    r->round_start = r->now;
    for (size_t i = 0; i < r->n_peers; i++) {
        r->peers[i].round_seq = r->peers[i].sent_seq;
        r->peers[i].round_ack = i == r->self;
        if (i != r->self) {
            /* Every follower gets a message with a later seq at the next batch. */
            r->peers[i].heartbeat = true;
            r->peers[i].want_send = true;
        }
    }
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].index != 0 && r->reads[i].round == 0) {
            r->reads[i].round = r->round;
        }
    }
    check_round(r); /* a single voter is its own quorum */
}

/* Leader: give waiting reads their index once an entry of this term is committed; answer
 * them at once within a lease, else start a round if none is out. */
static void progress(struct hr_raft *r)
{
    if (r->role != HR_LEADER) {
        return;
    }
    if (committed_in_term(r)) {
        for (size_t i = 0; i < r->n_reads; i++) {
            if (r->reads[i].index == 0) {
                /* The read takes effect now, with what is committed now: its time is the
                 * leader's clock now (the clock entries are stamped with), the same moment
                 * on every replica that serves it. */
                r->reads[i].index = r->commit;
                r->reads[i].time_ms = r->now;
            }
        }
    }
    if (in_lease(r)) {
        answer_if(r, indexed_unconfirmed, 0);
        return;
    }
    if (r->round != 0) {
        return;
    }
    for (size_t i = 0; i < r->n_reads; i++) {
        if (indexed_unconfirmed(r, &r->reads[i])) {
            start_round(r);
            return;
        }
    }
}

static void check_round(struct hr_raft *r)
{
    if (r->round == 0) {
        return;
    }
    size_t acks = 0;
    for (size_t i = 0; i < r->n_peers; i++) {
        /* Voters only: a learner's answer says nothing about who else may lead. With
         * single-server changes any majority of the configuration in use overlaps a
         * majority of the one before it, so a change during the round is harmless. */
        acks += r->peers[i].round_ack && r->peers[i].voter;
    }
    if (acks < hr__quorum(r)) {
        return;
    }
    if (r->cfg.read_lease && !r->lease_off) {
        hr_time_t until = r->round_start + (hr_time_t)r->cfg.election_timeout_ms * 9 / 10;
        if (until > r->lease_until) {
            r->lease_until = until;
        }
    }
    r->round = 0; /* confirmed() now holds for its reads */
    answer_if(r, confirmed, 0);
    progress(r); /* reads that arrived meanwhile: the next round */
}

int hr_raft_read_index(struct hr_raft *r, uint64_t ctx)
{
    if (r->role != HR_LEADER && r->leader == 0) {
        return HR_ENOTLEADER;
    }
    if (r->role == HR_LEADER && r->cfg.unsafe_read_no_confirm) {
        return push_out(r, ctx, r->commit, r->now, 0);
    }
    struct hr__read *v = hr_array_grow(r->reads, &r->cap_reads, r->n_reads + 1, sizeof(*v), 8);
    if (v == NULL) {
        return HR_ENOMEM;
    }
    r->reads = v;
    v[r->n_reads++] = (struct hr__read){
        .ctx = ctx, .deadline = r->now + r->cfg.election_timeout_ms};
    if (r->role == HR_LEADER) {
        progress(r);
        return 0;
    }
    /* A follower (or a candidate that still knows no other leader: it has none, above). */
    struct hr_msg m = {.type = HR_MSG_READ_INDEX, .to = r->leader, .term = r->term, .seq = ctx};
    int rv = hr__send(r, &m, false);
    if (rv != 0) {
        r->n_reads--;
    }
    return rv;
}

int hr__handle_read_index(struct hr_raft *r, const struct hr_msg *m)
{
    struct hr__read rd = {.ctx = m->seq, .from = m->from, .deadline = r->now + r->cfg.election_timeout_ms};
    if (r->role != HR_LEADER) {
        answer(r, &rd, 0, 0, HR_ENOTLEADER);
        return 0;
    }
    if (r->cfg.unsafe_read_no_confirm) {
        answer(r, &rd, r->commit, r->now, 0);
        return 0;
    }
    struct hr__read *v = hr_array_grow(r->reads, &r->cap_reads, r->n_reads + 1, sizeof(*v), 8);
    if (v == NULL) {
        return HR_ENOMEM;
    }
    r->reads = v;
    v[r->n_reads++] = rd;
    progress(r);
    return 0;
}

void hr__handle_read_index_resp(struct hr_raft *r, const struct hr_msg *m)
{
    if (r->role == HR_LEADER || m->from != r->leader) {
        return; /* from a leader we no longer follow: its reads were failed on the change */
    }
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].ctx == m->seq && r->reads[i].from == 0) {
            struct hr__read rd = r->reads[i];
            r->reads[i] = r->reads[--r->n_reads];
            answer(r, &rd, m->index, m->time_ms, m->reject ? HR_ENOTLEADER : 0);
            return;
        }
    }
    /* a duplicate, or an answer to a read that timed out: nothing waits for it */
}

void hr__read_ack(struct hr_raft *r, hr_id_t from, uint64_t seq)
{
    if (r->round == 0 || seq == 0) {
        return;
    }
    for (size_t i = 0; i < r->n_peers; i++) {
        if (r->peers[i].id == from) {
            if (seq > r->peers[i].round_seq) {
                r->peers[i].round_ack = true;
                check_round(r);
            }
            return;
        }
    }
}

void hr__read_commit_moved(struct hr_raft *r)
{
    progress(r);
}

void hr__read_role_changed(struct hr_raft *r, int old_role, hr_id_t old_leader)
{
    if (old_role == HR_LEADER || r->role == HR_LEADER || old_leader != r->leader) {
        /* A leader that steps down cannot confirm anything any more; a follower's reads
         * were asked of a leader it no longer follows. */
        answer_if(r, any_read, HR_ENOTLEADER);
        r->round = 0;
        r->lease_until = 0;
        r->lease_off = false;
    }
}

void hr__read_tick(struct hr_raft *r)
{
    answer_if(r, expired, HR_ETIMEOUT);
    if (r->role == HR_LEADER && r->cfg.read_lease && r->cfg.check_quorum && !r->lease_off &&
        r->round == 0 && r->now >= r->round_start + r->cfg.heartbeat_timeout_ms) {
        start_round(r); /* keep the lease fresh for reads to come */
    }
}

hr_time_t hr__read_next_deadline(const struct hr_raft *r, hr_time_t t)
{
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].deadline < t) {
            t = r->reads[i].deadline;
        }
    }
    return t;
}

bool hr__read_has_ready(const struct hr_raft *r)
{
    return r->n_reads_out > 0;
}

void hr__read_ready(struct hr_raft *r, struct hr_ready *rd)
{
    struct hr_read_state *t = r->out_reads;
    size_t cap = r->cap_out_reads;
    r->out_reads = r->reads_out;
    r->cap_out_reads = r->cap_reads_out;
    r->n_out_reads = r->n_reads_out;
    r->reads_out = t;
    r->cap_reads_out = cap;
    r->n_reads_out = 0;
    rd->reads = r->out_reads;
    rd->n_reads = r->n_out_reads;
}

void hr__read_advance(struct hr_raft *r)
{
    r->n_out_reads = 0;
}

void hr__read_free(struct hr_raft *r)
{
    free(r->reads);
    free(r->reads_out);
    free(r->out_reads);
}
