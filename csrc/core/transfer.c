/*
 * transfer.c: leadership transfer (thesis §3.10).
 *
 * The leader stops taking proposals (hr_raft_propose returns HR_EBUSY), so that the
 * target can catch up with a log that no longer grows; replicates to the target as usual;
 * and once the target's match is the leader's last index, sends it TIMEOUT_NOW. The target
 * starts an election at once, in the next term, without PreVote and with VOTE.transfer set,
 * which makes voters skip the leader-lease check (raft.c, hr_raft_step).
 *
 * Why skipping both is safe: PreVote and the lease check protect liveness only (a node cut
 * off must not disturb a healthy leader); safety rests on one vote per term and the §5.4.1
 * log check, which the transfer's election keeps. Here the disturbance is what the leader
 * asked for: TIMEOUT_NOW comes only from the leader of the target's current term, which
 * stopped appending. The one thing that did rest on the lease is lease reads: a leader that
 * sent TIMEOUT_NOW stops serving them for the rest of its term (read.c).
 *
 * If the target has not taken over within an election timeout (it crashed, is cut off or
 * lost the election), the transfer is abandoned and the leader takes proposals again. A
 * late TIMEOUT_NOW may still make the target campaign: that is an ordinary election.
 */
#include "raft_impl.h"

static int send_timeout_now(struct hr_raft *r, struct hr__progress *pr)
{
    struct hr_msg m = {.type = HR_MSG_TIMEOUT_NOW, .to = pr->id, .term = r->term};
    r->transfer_sent = true;
    r->lease_off = true;
    r->lease_until = 0;
    return hr__send(r, &m, false);
}

int hr_raft_transfer(struct hr_raft *r, hr_id_t target)
{
    if (r->role != HR_LEADER) {
        return HR_ENOTLEADER;
    }
    if (r->transfer_target != 0) {
        return HR_EBUSY;
    }
    struct hr__progress *pr = NULL;
    if (target == 0) {
        /* The most up-to-date voter: the shortest catch-up, the likeliest to win. */
        for (size_t i = 0; i < r->n_peers; i++) {
            if (i != r->self && r->peers[i].voter &&
                (pr == NULL || r->peers[i].match > pr->match)) {
                pr = &r->peers[i];
            }
        }
    } else if (target != r->cfg.id) {
        pr = hr__peer(r, target);
        if (pr != NULL && !pr->voter) {
            pr = NULL; /* a learner cannot win an election */
        }
    }
    if (pr == NULL) {
        return HR_EINVAL;
    }
    r->transfer_target = pr->id;
    r->transfer_deadline = r->now + r->cfg.election_timeout_ms;
    r->transfer_sent = false;
    /* No lease from here on: the target's election will not wait for one to run out. */
    r->lease_off = true;
    r->lease_until = 0;
    pr->want_send = true;
    hr__transfer_progress(r, pr);
    return 0;
}

hr_id_t hr_raft_transferee(const struct hr_raft *r)
{
    return r->role == HR_LEADER ? r->transfer_target : 0;
}

void hr__transfer_progress(struct hr_raft *r, struct hr__progress *pr)
{
    if (r->transfer_target == pr->id && !r->transfer_sent &&
        pr->match == hr__log_last(&r->log)) {
        (void)send_timeout_now(r, pr);
    }
}

void hr__transfer_tick(struct hr_raft *r)
{
    if (r->role != HR_LEADER) {
        r->transfer_target = 0;
        return;
    }
    if (r->transfer_target != 0 && r->now >= r->transfer_deadline) {
        r->transfer_target = 0; /* abandoned: proposals are welcome again */
        r->transfer_sent = false;
    }
}

int hr__handle_timeout_now(struct hr_raft *r, const struct hr_msg *m)
{
    /* Only the leader of our term may hand over (the step checked the term), and only to a
     * server that may campaign (a learner's or a removed server's election is refused). */
    if (r->role == HR_LEADER || m->from != r->leader || !hr__conf_may_campaign(r)) {
        return 0;
    }
    r->campaign_transfer = true;
    hr__campaign(r, false);
    r->campaign_transfer = false;
    return 0;
}
