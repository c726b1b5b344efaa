/*
 * election.c: leader election (Raft §5.2, §5.4.1) with PreVote (thesis §9.6) and the
 * leader lease that CheckQuorum makes possible (thesis §4.2.3).
 */
#include "raft_impl.h"

/* A follower that heard from its leader less than an election timeout ago. A leader is
 * always in its own lease: while it holds a quorum (CheckQuorum), nobody needs a new one. */
bool hr__in_lease(const struct hr_raft *r)
{
    if (r->role == HR_LEADER) {
        return true;
    }
    if (r->cfg.read_lease && r->now < r->started + r->cfg.election_timeout_ms) {
        /* A node that just (re)started forgot when it last heard from its leader: it may
         * have acknowledged a lease round a moment before it crashed. With lease reads it
         * votes for nobody until an election timeout has passed (read.c;
         * spec/golden/read_lease_restart.txt). */
        return true;
    }
    return r->leader != 0 && r->now < r->leader_contact + r->cfg.election_timeout_ms;
}

static bool counts(const struct hr_raft *r, const struct hr__progress *pr)
{
    return pr->voter || (r->cfg.unsafe_count_learner_votes && pr->member);
}

static void tally_reset(struct hr_raft *r)
{
    for (size_t i = 0; i < r->n_peers; i++) {
        r->peers[i].vote = 0;
    }
    r->peers[r->self].vote = 1;
}

/* Count the votes; act once either side has a quorum. */
static void tally(struct hr_raft *r)
{
    size_t granted = 0, rejected = 0;
    for (size_t i = 0; i < r->n_peers; i++) {
        /* Only the voters of our configuration: a learner's grant never elects anyone
         * (membership.c says why learners answer at all). */
        if (!counts(r, &r->peers[i])) {
            continue;
        }
        granted += r->peers[i].vote == 1;
        rejected += r->peers[i].vote == -1;
    }
    if (granted >= hr__quorum(r)) {
        if (r->role == HR_PRECANDIDATE) {
            hr__campaign(r, false);
        } else {
            hr__become_leader(r);
        }
    } else if (rejected >= hr__quorum(r)) {
        hr__become_follower(r, r->term, 0);
    }
}

void hr__campaign(struct hr_raft *r, bool pre)
{
    if (pre) {
        hr__become_precandidate(r);
    } else {
        hr__become_candidate(r);
    }
    tally_reset(r);
    hr_index_t last = hr__log_last(&r->log);
    for (size_t i = 0; i < r->n_peers; i++) {
        if (i == r->self || !counts(r, &r->peers[i])) {
            continue;
        }
        /* Vote requests wait for the batch that persists our new term and self-vote: a
         * node that crashed after asking could otherwise vote again in the same term. */
        struct hr_msg m = {.type = pre ? HR_MSG_PREVOTE : HR_MSG_VOTE,
                           .to = r->peers[i].id,
                           .term = pre ? r->term + 1 : r->term,
                           .cand_last_index = last,
                           .cand_last_term = hr__log_term(&r->log, last),
                           .transfer = !pre && r->campaign_transfer};
        hr__send(r, &m, true);
    }
    tally(r); /* a single-node cluster wins at once */
}

int hr__handle_vote(struct hr_raft *r, const struct hr_msg *m)
{
    bool pre = m->type == HR_MSG_PREVOTE;
    bool can_vote;
    if (pre) {
        /* Granting a pre-vote promises nothing and records nothing. */
        can_vote = m->term > r->term;
    } else {
        /* §5.2: at most one vote per term, first come first served. */
        can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0);
    }
    /* §5.4.1: vote only for a candidate whose log is at least as up-to-date as ours:
     * a later last term wins; with equal last terms the longer log wins. This is what
     * guarantees that a leader holds every committed entry (Leader Completeness). */
    hr_index_t last = hr__log_last(&r->log);
    hr_term_t last_term = hr__log_term(&r->log, last);
    bool up_to_date = m->cand_last_term > last_term ||
                      (m->cand_last_term == last_term && m->cand_last_index >= last);
    if (r->cfg.unsafe_skip_log_check) {
        up_to_date = true;
    }
    bool grant = can_vote && up_to_date;
    if (grant && !pre) {
        r->vote = m->from;
        hr__reset_election_timer(r);
    }
    struct hr_msg resp = {.type = pre ? HR_MSG_PREVOTE_RESP : HR_MSG_VOTE_RESP,
                          .to = m->from,
                          /* a granted pre-vote answers in the candidate's future term */
                          .term = (pre && grant) ? m->term : r->term,
                          .reject = !grant};
    return hr__send(r, &resp, true);
}

void hr__handle_vote_resp(struct hr_raft *r, const struct hr_msg *m)
{
    bool pre = m->type == HR_MSG_PREVOTE_RESP;
    if (pre ? r->role != HR_PRECANDIDATE : r->role != HR_CANDIDATE) {
        return;
    }
    /* A pre-vote grant carries term + 1; a rejection carries the voter's term, which is
     * ours (a higher one already made us a follower). */
    if (pre && !m->reject && m->term != r->term + 1) {
        return;
    }
    struct hr__progress *pr = hr__peer(r, m->from);
    if (pr == NULL) {
        return;
    }
    pr->vote = m->reject ? -1 : 1;
    tally(r);
}
