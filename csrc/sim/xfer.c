/*
 * xfer.c: InstallSnapshot in the simulator, modelled on the production protocol (the
 * transport streams the snapshot file; the core only offers it).
 *
 * Sender: a core's offer (SNAPSHOT without bytes, for the snapshot it holds) starts or
 * resumes a stream of the sender's durable snapshot to that peer: chunks of chunk_bytes,
 * each a SNAPSHOT message with its offset and bytes, done on the last, at most `window`
 * chunks beyond what the receiver acknowledged. Each acknowledgement moves the window on.
 * A lost chunk shows as a gap: the receiver acknowledges the chunks after it with `reject`
 * set and the bytes it holds, and the sender goes back to there once (go-back-N, as the
 * production runtime resumes from the receiver's offset). A lost last chunk, or a lost
 * acknowledgement with nothing after it, waits for the core's next offer (its
 * retransmission timer). An offer for a snapshot the sender does not hold durably is
 * dropped: the core offers again.
 *
 * Receiver: per sending peer, one snapshot (index, term) being assembled, in order: a
 * duplicate is ignored, a chunk beyond a gap is dropped and answered with reject set. Every chunk also goes
 * to the receiving core (done cleared, no bytes) for its term and leader checks, which keep
 * its election timer quiet while a long transfer runs. Every chunk is acknowledged with a
 * SNAPSHOT_RESP carrying the bytes held (done once complete). Once the last chunk is in,
 * the core gets the final SNAPSHOT with done set and every byte; it installs it (storage
 * install, FSM restore) and answers the leader with an APPEND_RESP. The last chunk arriving
 * again for a complete snapshot (the leader heard nothing) hands it over again.
 *
 * Streams live in memory: a crash of either side forgets its half.
 */
#include "internal.h"
#include "../core/array.h"

#include <stdlib.h>
#include <string.h>

struct hr__xfer_out {
    hr_index_t index; /* the snapshot streamed (0: none) */
    hr_term_t term;
    struct hr_blob *data; /* the sender's durable snapshot (a reference) */
    hr_term_t msg_term;   /* the term of the offer being served */
    uint64_t next;        /* the next chunk to send */
    uint64_t acked;       /* bytes the receiver said it holds */
    uint64_t rewound;     /* the chunk last gone back to after a gap, + 1 (0: none) */
    bool complete;        /* the receiver said it holds all of them */
};

struct hr__xfer_in {
    hr_index_t index; /* the snapshot assembled (0: none) */
    hr_term_t term;
    unsigned char *buf;
    size_t held, cap;
    struct hr_blob *whole; /* once complete */
};

int hr__xfer_init(struct hr__simnode *sn, uint32_t n)
{
    sn->xout = calloc(n, sizeof(*sn->xout));
    sn->xin = calloc(n, sizeof(*sn->xin));
    return sn->xout != NULL && sn->xin != NULL ? 0 : HR_ENOMEM;
}

static void out_clear(struct hr__xfer_out *o)
{
    hr_blob_release(o->data);
    memset(o, 0, sizeof(*o));
}

static void in_clear(struct hr__xfer_in *in)
{
    free(in->buf);
    hr_blob_release(in->whole);
    memset(in, 0, sizeof(*in));
}

void hr__xfer_reset(struct hr__simnode *sn)
{
    if (sn->xout == NULL || sn->xin == NULL) {
        return;
    }
    for (uint32_t i = 0; i < sn->sim->n; i++) {
        out_clear(&sn->xout[i]);
        in_clear(&sn->xin[i]);
    }
}

void hr__xfer_free(struct hr__simnode *sn)
{
    if (sn->sim != NULL) {
        hr__xfer_reset(sn);
    }
    free(sn->xout);
    free(sn->xin);
    sn->xout = NULL;
    sn->xin = NULL;
}

static uint64_t n_chunks(const struct hr_sim *s, const struct hr__xfer_out *o)
{
    size_t size = hr_blob_len(o->data);
    uint64_t c = s->o.snap.snapshot_chunk_bytes;
    return size == 0 ? 1 : (size + c - 1) / c;
}

static void send_chunk(struct hr__simnode *sn, hr_id_t to, struct hr__xfer_out *o, uint64_t k)
{
    struct hr_sim *s = sn->sim;
    size_t size = hr_blob_len(o->data);
    uint64_t chunk = s->o.snap.snapshot_chunk_bytes;
    uint64_t off = k * chunk;
    size_t len = size - off < chunk ? size - off : chunk;
    struct hr_blob *part = hr_blob_new(len > 0 ? o->data->data + off : NULL, len);
    if (part == NULL) {
        hr__sim_stop(s, HR_ENOMEM, "network: out of memory");
        return;
    }
    struct hr_msg m;
    memset(&m, 0, sizeof(m));
    m.type = HR_MSG_SNAPSHOT;
    m.from = sn->id;
    m.to = to;
    m.term = o->msg_term;
    m.snap_index = o->index;
    m.snap_term = o->term;
    m.offset = off;
    m.done = k + 1 == n_chunks(s, o);
    m.snap_data = part;
    s->snap_stats.chunks++;
    s->snap_stats.chunk_bytes += len;
    hr__net_post(s, &m);
    hr_blob_release(part);
}

/* Send the chunks the window allows. */
static void pump(struct hr__simnode *sn, hr_id_t to, struct hr__xfer_out *o)
{
    struct hr_sim *s = sn->sim;
    uint64_t n = n_chunks(s, o);
    uint64_t limit = o->acked / s->o.snap.snapshot_chunk_bytes + s->o.snap.window;
    while (s->stop_code == 0 && o->next < n && o->next < limit) {
        send_chunk(sn, to, o, o->next);
        o->next++;
    }
}

void hr__xfer_offer(struct hr__simnode *sn, const struct hr_msg *m)
{
    struct hr_sim *s = sn->sim;
    const struct hr__disk_snap *snap = &sn->disk.snap;
    if (m->to < 1 || m->to > s->n || m->to == sn->id || snap->index == 0 ||
        snap->index != m->snap_index || snap->term != m->snap_term) {
        return;
    }
    s->snap_stats.offers++;
    struct hr__xfer_out *o = &sn->xout[m->to - 1];
    if (o->index != snap->index || o->term != snap->term || o->data != snap->data) {
        out_clear(o);
        o->index = snap->index;
        o->term = snap->term;
        o->data = hr_blob_retain(snap->data);
    }
    o->msg_term = m->term;
    if (o->complete) {
        /* The receiver holds every byte but its core's answer never came: the last chunk
         * makes it hand the snapshot over again. */
        o->next = n_chunks(s, o) - 1;
        send_chunk(sn, m->to, o, o->next);
        o->next++;
        return;
    }
    o->next = o->acked / s->o.snap.snapshot_chunk_bytes;
    pump(sn, m->to, o);
}

static void on_ack(struct hr__simnode *sn, const struct hr_msg *m)
{
    struct hr_sim *s = sn->sim;
    struct hr__xfer_out *o = &sn->xout[m->from - 1];
    if (o->index == 0 || o->index != m->snap_index || o->term != m->snap_term) {
        return;
    }
    size_t size = hr_blob_len(o->data);
    o->acked = m->offset < size ? m->offset : size;
    o->complete = m->done;
    if (o->complete) {
        return;
    }
    /* Stream on only for the term the offer was made in, and while this node leads it. */
    struct hr_raft *r = hr_node_raft(sn->node);
    if (hr_raft_role(r) != HR_LEADER || hr_raft_term(r) != o->msg_term) {
        return;
    }
    uint64_t first = o->acked / s->o.snap.snapshot_chunk_bytes;
    if (o->next < first) {
        o->next = first;
    }
    if (m->reject && o->rewound != first + 1) {
        /* A gap at `first`: send again from there, once per gap (the rest of the window
         * answers with the same gap). */
        o->next = first;
        o->rewound = first + 1;
    }
    pump(sn, m->from, o);
}

static void ack(struct hr__simnode *sn, hr_id_t to, hr_term_t term, hr_index_t index,
                hr_term_t snap_term, uint64_t held, bool done, bool gap)
{
    struct hr_msg a;
    memset(&a, 0, sizeof(a));
    a.type = HR_MSG_SNAPSHOT_RESP;
    a.from = sn->id;
    a.to = to;
    a.term = term;
    a.snap_index = index;
    a.snap_term = snap_term;
    a.offset = held;
    a.done = done;
    a.reject = gap;
    hr__net_post(sn->sim, &a);
}

static int append(struct hr__xfer_in *in, const struct hr_blob *b)
{
    size_t len = hr_blob_len(b);
    unsigned char *v = hr_array_grow(in->buf, &in->cap, in->held + len, 1, 1024);
    if (v == NULL) {
        return HR_ENOMEM;
    }
    in->buf = v;
    if (len > 0) {
        memcpy(in->buf + in->held, b->data, len);
    }
    in->held += len;
    return 0;
}

void hr__xfer_deliver(struct hr__simnode *sn, const struct hr_msg *m)
{
    struct hr_sim *s = sn->sim;
    if (m->from < 1 || m->from > s->n || m->from == sn->id) {
        return;
    }
    if (m->type == HR_MSG_SNAPSHOT_RESP) {
        on_ack(sn, m);
        return;
    }

    struct hr_msg feed = *m;
    feed.done = false;
    feed.snap_data = NULL;
    feed.conf = NULL;
    feed.entries = NULL;
    feed.n_entries = 0;
    hr_node_receive(sn->node, &feed, s->now);
    hr__sim_after_input(s, sn);
    if (s->stop_code != 0) {
        return;
    }

    struct hr__xfer_in *in = &sn->xin[m->from - 1];
    if (in->index != m->snap_index || in->term != m->snap_term) {
        if (m->offset != 0) {
            /* The middle of a snapshot this node holds nothing of (it restarted, or a newer
             * one replaced it): tell the sender to start over. */
            ack(sn, m->from, m->term, m->snap_index, m->snap_term, 0, false, true);
            return;
        }
        in_clear(in);
        in->index = m->snap_index;
        in->term = m->snap_term;
    }
    bool hand_over = false;
    if (in->whole != NULL) {
        hand_over = m->done;
    } else if (m->offset == in->held) {
        if (append(in, m->snap_data) != 0) {
            hr__sim_stop(s, HR_ENOMEM, "network: out of memory");
            return;
        }
        if (m->done) {
            in->whole = hr_blob_new(in->buf, in->held);
            if (in->whole == NULL) {
                hr__sim_stop(s, HR_ENOMEM, "network: out of memory");
                return;
            }
            free(in->buf);
            in->buf = NULL;
            in->cap = 0;
            hand_over = true;
        }
    }
    bool gap = in->whole == NULL && m->offset > in->held;
    ack(sn, m->from, m->term, in->index, in->term, in->held, in->whole != NULL, gap);
    if (!hand_over) {
        return;
    }
    struct hr_msg fin;
    memset(&fin, 0, sizeof(fin));
    fin.type = HR_MSG_SNAPSHOT;
    fin.from = m->from;
    fin.to = sn->id;
    fin.term = m->term;
    fin.snap_index = in->index;
    fin.snap_term = in->term;
    fin.done = true;
    fin.snap_data = in->whole;
    /* The configuration travels inside the snapshot's bytes (snap.c, hr__snap_frame); the
     * core takes it from the message, as it drops every config entry of its log. */
    struct hr_blob *fsm = NULL;
    if (hr__snap_unframe(in->whole, &fin.conf, &fin.conf_index, &fsm) != 0) {
        hr__sim_stop(s, HR__STOP_INVARIANT, "snapshot: node %llu received a snapshot "
                     "without its configuration", (unsigned long long)sn->id);
        return;
    }
    hr_blob_release(fsm);
    s->snap_stats.delivered++;
    hr_node_receive(sn->node, &fin, s->now);
    hr_blob_release(fin.conf);
    hr__sim_after_input(s, sn);
}
