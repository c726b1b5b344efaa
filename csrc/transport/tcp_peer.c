/*
 * tcp_peer.c: the peers a transport sends to: their outbound connections with jittered
 * exponential backoff, and their bounded send queues.
 *
 * The queue is two FIFOs of encoded frames. "Bulk" frames are AppendEntries that carry
 * entries; everything else (heartbeats, votes, responses, TimeoutNow) is "control". When a
 * peer's queued bytes exceed max_queue_bytes, the oldest bulk frames are dropped first:
 * Raft retransmits from the follower's progress, so losing them costs a retry, not
 * correctness. Control frames are small and always kept, up to HR__MAX_CONTROL of them
 * (stale heartbeats beyond that are worthless). Writes take control frames first
 * (tcp_conn.c), so a heartbeat never waits behind queued bulk frames, only behind the one
 * write in flight, whose bulk part is bounded by HR__WRITE_BYTES plus one AppendEntries,
 * itself bounded by max_entries_per_append and the leader's byte bound.
 *
 * A peer that cannot be reached gets no bulk frames queued at all: they are dropped when
 * the connection is lost and, until a new attempt begins, as they are sent. Queued, they
 * would only grow stale (a leader probes a silent follower every heartbeat, each probe up
 * to an AppendEntries' byte bound, so a long outage filled the queue to max_queue_bytes)
 * and go out all at once on reconnect, to be rejected. The leader sends again from the
 * follower's progress once it answers, as after any lost message.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11; strdup */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "tcp_internal.h"

void hr__frame_free(struct hr__frame *f)
{
    free(f->data);
    free(f);
}

struct hr__frame *hr__fifo_pop(struct hr__fifo *q)
{
    struct hr__frame *f = q->head;
    if (f != NULL) {
        q->head = f->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        q->n--;
        f->next = NULL;
    }
    return f;
}

static void fifo_push(struct hr__fifo *q, struct hr__frame *f)
{
    f->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = f;
    } else {
        q->head = f;
    }
    q->tail = f;
    q->n++;
}

static void fifo_clear(struct hr__fifo *q)
{
    struct hr__frame *f;
    while ((f = hr__fifo_pop(q)) != NULL) {
        hr__frame_free(f);
    }
}

struct hr__peer *hr__peer_find(struct hr_tcp *t, hr_id_t id)
{
    for (struct hr__peer *p = t->peers; p != NULL; p = p->next) {
        if (p->id == id) {
            return p;
        }
    }
    return NULL;
}

static void on_retry(uv_timer_t *timer)
{
    hr__peer_connect(timer->data);
}

void hr__peer_connect(struct hr__peer *p)
{
    struct hr_tcp *t = p->t;
    if (p->conn != NULL || t->closing || !t->started) {
        return;
    }
    struct hr__conn *c = hr__conn_new(t, p);
    if (c == NULL) {
        hr__peer_lost(p);
        return;
    }
    p->conn = c;
    int rc = hr__conn_begin(c);
    if (rc != 0) {
        hr__conn_close(c, uv_strerror(rc)); /* schedules the retry */
    }
}

/* Drop the bulk frames queued for p (see the top comment). */
static void drop_bulk(struct hr_tcp *t, struct hr__peer *p)
{
    struct hr__frame *f;
    while ((f = hr__fifo_pop(&p->bulk)) != NULL) {
        p->queued_bytes -= f->len;
        t->stats.queue_drops++;
        hr__frame_free(f);
    }
}

void hr__peer_lost(struct hr__peer *p)
{
    struct hr_tcp *t = p->t;
    drop_bulk(t, p);
    /* Full jitter on the upper half: peers that lost the same node do not all redial it in
     * the same millisecond. */
    uint32_t b = p->backoff_ms;
    uint64_t delay = b / 2 + hr__tcp_random(t) % (b / 2 + 1);
    p->backoff_ms = b >= t->reconnect_max / 2 ? t->reconnect_max : b * 2;
    if (!p->down_logged) {
        p->down_logged = true;
        hr__tcp_log(t, 1, "transport: %s (%s) unreachable, retrying with backoff", p->name,
                    p->addr);
    }
    uv_timer_start(&p->retry, on_retry, delay, 0);
}

void hr__peer_up(struct hr__peer *p)
{
    struct hr_tcp *t = p->t;
    t->stats.connects++;
    p->backoff_ms = t->reconnect_min;
    p->down_logged = false;
    hr__tcp_log(t, 0, "transport: connected to %s (%s)", p->name, p->addr);
}

static void on_peer_closed(uv_handle_t *h)
{
    struct hr__peer *p = h->data;
    struct hr_tcp *t = p->t;
    free(p->name);
    free(p->addr);
    free(p);
    hr__tcp_release(t);
}

/* The caller has unlinked p. */
void hr__peer_close(struct hr__peer *p)
{
    if (p->conn != NULL) {
        struct hr__conn *c = p->conn;
        c->peer = NULL; /* no reconnect; the connection closes on its own */
        p->conn = NULL;
        hr__conn_close(c, NULL);
    }
    fifo_clear(&p->control);
    fifo_clear(&p->bulk);
    uv_close((uv_handle_t *)&p->retry, on_peer_closed);
}

int hr_tcp_add_peer(struct hr_tcp *t, hr_id_t id, const char *name, const char *addr)
{
    struct sockaddr_storage sa;
    if (t->closing || id == 0 || id == t->id || name == NULL || name[0] == 0 ||
        strlen(name) > HR_HS_MAX_NAME || hr_tcp_node_id(name) != id ||
        hr_tcp_parse_addr(addr, &sa) != 0 || hr__peer_find(t, id) != NULL) {
        return HR_EINVAL;
    }
    struct hr__peer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return HR_ENOMEM;
    }
    p->name = strdup(name);
    p->addr = strdup(addr);
    if (p->name == NULL || p->addr == NULL) {
        free(p->name);
        free(p->addr);
        free(p);
        return HR_ENOMEM;
    }
    p->t = t;
    p->id = id;
    p->sa = sa;
    p->backoff_ms = t->reconnect_min;
    uv_timer_init(t->loop, &p->retry);
    p->retry.data = p;
    t->live_handles++;
    p->next = t->peers;
    t->peers = p;
    hr__peer_connect(p);
    return 0;
}

int hr_tcp_remove_peer(struct hr_tcp *t, hr_id_t id)
{
    for (struct hr__peer **pp = &t->peers; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            struct hr__peer *p = *pp;
            *pp = p->next;
            hr__peer_close(p);
            return 0;
        }
    }
    return HR_EINVAL;
}

/* Make room: the oldest bulk frames go first, then the oldest control frames beyond
 * HR__MAX_CONTROL. */
static void enforce_bounds(struct hr_tcp *t, struct hr__peer *p)
{
    while (p->queued_bytes > t->max_queue && p->bulk.n > 0) {
        struct hr__frame *f = hr__fifo_pop(&p->bulk);
        p->queued_bytes -= f->len;
        t->stats.queue_drops++;
        hr__tcp_failed(t, HR_TCP_FAIL_QUEUE_FULL, f->type);
        hr__frame_free(f);
    }
    while (p->control.n > HR__MAX_CONTROL) {
        struct hr__frame *f = hr__fifo_pop(&p->control);
        p->queued_bytes -= f->len;
        t->stats.queue_drops++;
        hr__tcp_failed(t, HR_TCP_FAIL_QUEUE_FULL, f->type);
        hr__frame_free(f);
    }
}

void hr_tcp_send(void *ctx, const struct hr_msg *m)
{
    struct hr_tcp *t = ctx;
    struct hr__peer *p = t->closing ? NULL : hr__peer_find(t, m->to);
    if (p == NULL) {
        if (!t->closing) {
            hr__tcp_failed(t, HR_TCP_FAIL_UNKNOWN_PEER, m->type);
        }
        return; /* unknown peer: best effort means dropped */
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    struct hr__frame *f = calloc(1, sizeof(*f));
    int rc = f == NULL ? HR_ENOMEM : hr_codec_encode(&sb, m);
    if (rc != 0) {
        free(f);
        msgpack_sbuffer_destroy(&sb);
        t->stats.queue_drops++;
        hr__tcp_failed(t, HR_TCP_FAIL_ENCODE, m->type);
        hr__tcp_log(t, 2, "transport: cannot encode a %s to %s: %s", hr_msg_type_name(m->type),
                    p->name, hr_strerror(rc));
        return;
    }
    f->len = sb.size;
    f->data = msgpack_sbuffer_release(&sb);
    f->type = m->type > 0 && m->type < HR_MSG_TYPE_COUNT ? (uint8_t)m->type : 0;
    /* Entries and snapshot chunks are the big frames; dropping one costs a retransmission
     * (Raft's, or the snapshot sender's resume from the receiver's offset). */
    f->bulk = (m->type == HR_MSG_APPEND && m->n_entries > 0) ||
              (m->type == HR_MSG_SNAPSHOT && m->snap_data != NULL);
    if (p->conn == NULL || p->conn->state != HR__OPEN) {
        hr__tcp_failed(t, HR_TCP_FAIL_NO_CONNECTION, f->type);
        if (f->bulk && p->conn == NULL) { /* between attempts: it would only grow stale */
            t->stats.queue_drops++;
            hr__frame_free(f);
            return;
        }
    }
    fifo_push(f->bulk ? &p->bulk : &p->control, f);
    p->queued_bytes += f->len;
    enforce_bounds(t, p);
    if (p->conn != NULL) {
        hr__conn_pump(p->conn);
    }
}
