/*
 * net.c: the simulated network. Loss, duplication and latency are drawn from the network's
 * own PRNG stream; with reorder off, each directed link delivers in send order. Partitions
 * and disconnects are checked when a message is sent and again when it arrives.
 *
 * A core's InstallSnapshot offer does not travel itself: it goes to the sender's stream
 * (xfer.c), which puts the snapshot's chunks on the network instead.
 */
#include "internal.h"

#include <inttypes.h>

bool hr__net_open(const struct hr_sim *s, hr_id_t from, hr_id_t to)
{
    const struct hr__simnode *a = &s->nodes[from - 1];
    const struct hr__simnode *b = &s->nodes[to - 1];
    return b->alive && a->connected && b->connected && a->group == b->group;
}

static bool is_request(int type)
{
    return type == HR_MSG_APPEND || type == HR_MSG_VOTE || type == HR_MSG_PREVOTE ||
           type == HR_MSG_SNAPSHOT || type == HR_MSG_TIMEOUT_NOW ||
           type == HR_MSG_READ_INDEX;
}

static void schedule_at(struct hr_sim *s, const struct hr_msg *m, hr_time_t at)
{
    struct hr__ev *ev = hr__sim_ev_new(s);
    if (ev == NULL || hr_msg_copy(&ev->msg, m) != 0) {
        hr__sim_ev_free(s, ev);
        hr__sim_stop(s, HR_ENOMEM, "network: out of memory");
        return;
    }
    ev->kind = HR__EV_DELIVER;
    ev->node = m->to;
    if (hr__queue_push(&s->q, at, ev) != 0) {
        hr__sim_ev_free(s, ev);
        hr__sim_stop(s, HR_ENOMEM, "network: out of memory");
    }
}

static void schedule(struct hr_sim *s, const struct hr_msg *m)
{
    const struct hr_sim_net *net = &s->o.net;
    hr_time_t at = s->now + hr_prng_range(&s->net_prng, net->delay_min_ms, net->delay_max_ms);
    if (!net->reorder) {
        hr_time_t *last = &s->link_last[(m->from - 1) * HR_MAX_NODES + (m->to - 1)];
        if (at < *last) {
            at = *last;
        }
        *last = at;
    }
    schedule_at(s, m, at);
}

int hr_sim_capture(struct hr_sim *s, hr_id_t from, hr_id_t to, uint8_t type, bool reject)
{
    if (from < 1 || from > s->n || to < 1 || to > s->n || type == 0 ||
        type >= HR_MSG_TYPE_COUNT) {
        return HR_EINVAL;
    }
    hr_msg_release(&s->capture.msg);
    s->capture.held = false;
    s->capture.armed = true;
    s->capture.from = from;
    s->capture.to = to;
    s->capture.type = type;
    s->capture.reject = reject;
    return 0;
}

const struct hr_msg *hr_sim_captured(const struct hr_sim *s)
{
    return s->capture.held ? &s->capture.msg : NULL;
}

int hr_sim_redeliver(struct hr_sim *s, uint32_t delay_ms)
{
    if (!s->capture.held) {
        return HR_EINVAL;
    }
    if (hr__net_open(s, s->capture.msg.from, s->capture.msg.to)) {
        schedule_at(s, &s->capture.msg, s->now + delay_ms);
    }
    return 0;
}

static void maybe_capture(struct hr_sim *s, const struct hr_msg *m)
{
    if (!s->capture.armed || m->from != s->capture.from || m->to != s->capture.to ||
        m->type != s->capture.type || m->reject != s->capture.reject) {
        return;
    }
    if (hr_msg_copy(&s->capture.msg, m) != 0) {
        hr__sim_stop(s, HR_ENOMEM, "network: out of memory");
        return;
    }
    s->capture.armed = false;
    s->capture.held = true;
}

/* The ordering rules of node.h, checked where they matter: when a message that speaks for
 * durable state leaves its node, the node's simulated disk must already hold that state.
 * (A crash would otherwise expose the lie only in the rare schedule that crashes the node
 * at exactly that moment.) */
static bool durable_enough(struct hr_sim *s, struct hr__simnode *sn, const struct hr_msg *m)
{
    const struct hr__disk *d = &sn->disk;
    switch (m->type) {
    case HR_MSG_APPEND_RESP:
        /* "My log matches yours up to index": those entries (or a snapshot covering
         * them) are on disk. */
        if (!m->reject && m->index > hr__disk_last(d) && m->index > d->snap.index) {
            hr__sim_stop(s, HR__STOP_INVARIANT,
                         "durability: node %" PRIu64 " acknowledged index %" PRIu64
                         " to node %" PRIu64 " with only %" PRIu64 " on its disk",
                         sn->id, m->index, m->to, hr__disk_last(d));
            return false;
        }
        return true;
    case HR_MSG_VOTE_RESP:
    case HR_MSG_VOTE:
        /* A granted vote, or a candidate's request (it voted for itself): the vote is on
         * disk, or a restart could vote again in the same term. A later term on disk will
         * do too: the node can never vote in this term again. (One input can carry a node
         * through two terms: the tick that starts an election, then a message of a higher
         * term; both go out with the batch that persists the later one.) */
        if (m->type == HR_MSG_VOTE_RESP && m->reject) {
            return true;
        }
        hr_id_t voted = m->type == HR_MSG_VOTE ? m->from : m->to;
        if (d->hs.term < m->term || (d->hs.term == m->term && d->hs.vote != voted)) {
            hr__sim_stop(s, HR__STOP_INVARIANT,
                         "durability: node %" PRIu64 " sent a %s of term %" PRIu64
                         " for node %" PRIu64 " with term %" PRIu64 ", vote %" PRIu64
                         " on its disk",
                         sn->id, hr_msg_type_name(m->type), m->term, voted, d->hs.term,
                         d->hs.vote);
            return false;
        }
        return true;
    default:
        return true;
    }
}

void hr__net_send(void *ctx, const struct hr_msg *m)
{
    struct hr__simnode *sn = ctx;
    struct hr_sim *s = sn->sim;
    if (m->from != sn->id || !durable_enough(s, sn, m)) {
        return;
    }
    if (m->type == HR_MSG_SNAPSHOT) {
        hr__xfer_offer(sn, m);
        return;
    }
    hr__net_post(s, m);
}

void hr__net_post(struct hr_sim *s, const struct hr_msg *m)
{
    if (is_request(m->type)) {
        s->rpc_count++;
    }
    s->rpc_bytes += hr_msg_wire_size(m);
    if (m->to < 1 || m->to > s->n || m->from < 1 || m->from > s->n ||
        !hr__net_open(s, m->from, m->to)) {
        return;
    }
    maybe_capture(s, m);
    const struct hr_sim_net *net = &s->o.net;
    if (net->drop > 0 && hr_prng_unit(&s->net_prng) < net->drop) {
        return;
    }
    schedule(s, m);
    if (net->duplicate > 0 && hr_prng_unit(&s->net_prng) < net->duplicate) {
        schedule(s, m);
    }
}
