/*
 * tcp_conn.c: one TCP connection of the transport, inbound or outbound: connect, the
 * handshake, reading and checking frames, writing the peer's queue, closing.
 *
 * Connections carry Raft messages one way (dialer to listener), so an outbound connection
 * that receives anything after its handshake, or an inbound one whose message claims a
 * sender other than the authenticated peer, is a protocol violation: closed and counted.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "tcp_internal.h"

struct wr {
    uv_write_t req;
    struct hr__conn *c;
    bool queue; /* frames of the peer's queue (counted as sent), not handshake frames */
    size_t n;
    struct hr__frame *f[HR__WRITE_FRAMES];
    uv_buf_t bufs[HR__WRITE_FRAMES];
};

/* "to node-2 (10.0.0.2:9001)", "from node-3 (127.0.0.1:40312)": every message about a
 * connection names the node and the address, so an operator can tell a misconfigured peer
 * from a stranger. Inbound ports are ephemeral: a log reader that groups repeats drops
 * them (lua/helios/nodelog.lua). */
static const char *who(const struct hr__conn *c, char *buf, size_t len)
{
    const char *name = c->peer != NULL ? c->peer->name
                       : c->hs.peer[0] ? c->hs.peer
                                       : "an unidentified peer";
    snprintf(buf, len, "%s %s (%s)", c->peer != NULL ? "to" : "from", name,
             c->addr[0] ? c->addr : "address unknown");
    return buf;
}

void hr__conn_accepted(struct hr__conn *c)
{
    struct sockaddr_storage sa;
    int len = (int)sizeof(sa);
    char host[INET6_ADDRSTRLEN] = "";
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) != 0) {
        return;
    }
    if (sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&sa;
        uv_ip6_name(a, host, sizeof(host));
        snprintf(c->addr, sizeof(c->addr), "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    } else if (sa.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&sa;
        uv_ip4_name(a, host, sizeof(host));
        snprintf(c->addr, sizeof(c->addr), "%s:%u", host, (unsigned)ntohs(a->sin_port));
    }
}

static void on_close(uv_handle_t *h)
{
    struct hr__conn *c = h->data;
    struct hr_tcp *t = c->t;
    if (--c->handles == 0) {
        hr_frame_reader_free(&c->rd);
        free(c);
    }
    hr__tcp_release(t);
}

void hr__conn_close(struct hr__conn *c, const char *why)
{
    struct hr_tcp *t = c->t;
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->peer == NULL) {
        /* c->peer is also NULL for an outbound connection whose peer was removed
         * (hr__peer_close clears it first): only a connection found on t->inbound counts
         * in t->handshaking, else removing a peer mid-connect would decrement (and wrap)
         * the count and loosen the cap on unauthenticated inbound connections. */
        bool inbound = false;
        for (struct hr__conn **pp = &t->inbound; *pp != NULL; pp = &(*pp)->next_in) {
            if (*pp == c) {
                *pp = c->next_in;
                inbound = true;
                break;
            }
        }
        if (inbound && c->state != HR__OPEN) {
            t->handshaking--;
        }
    }
    if (why != NULL) {
        char w[HR_HS_MAX_NAME + 96];
        hr__tcp_log(t, 1, "transport: %s: closed: %s", who(c, w, sizeof(w)), why);
    }
    if (c->peer != NULL) {
        struct hr__peer *p = c->peer;
        if (c->state == HR__OPEN) {
            t->stats.disconnects++;
        } else {
            t->stats.connect_failures++;
        }
        p->conn = NULL;
        c->peer = NULL;
        if (!t->closing) {
            hr__peer_lost(p);
        }
    }
    uv_close((uv_handle_t *)&c->tcp, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
}

struct hr__conn *hr__conn_new(struct hr_tcp *t, struct hr__peer *peer)
{
    struct hr__conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    if (uv_tcp_init(t->loop, &c->tcp) != 0) {
        free(c);
        return NULL;
    }
    uv_timer_init(t->loop, &c->timer);
    c->t = t;
    c->peer = peer;
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    t->live_handles += 2;
    c->state = peer != NULL ? HR__CONNECTING : HR__HANDSHAKE;
    if (peer != NULL) {
        snprintf(c->addr, sizeof(c->addr), "%s", peer->addr);
    }
    hr_frame_reader_init(&c->rd, HR_HS_MAX_FRAME);
    return c;
}

static void on_write(uv_write_t *req, int status)
{
    struct wr *w = req->data;
    struct hr__conn *c = w->c;
    for (size_t i = 0; i < w->n; i++) {
        if (status == 0 && w->queue) {
            c->t->stats.frames_sent++;
            c->t->stats.bytes_sent += w->f[i]->len;
            c->t->stats.sent_by_type[w->f[i]->type]++;
        } else if (w->queue) {
            hr__tcp_failed(c->t, HR_TCP_FAIL_WRITE, w->f[i]->type);
        }
        hr__frame_free(w->f[i]);
    }
    if (w->queue) {
        c->writing = false;
    }
    free(w);
    if (c->closing) {
        return;
    }
    if (status < 0) {
        hr__conn_close(c, uv_strerror(status));
    } else if (c->refusing) {
        hr__conn_close(c, NULL);
    } else if (c->state == HR__OPEN) {
        hr__conn_pump(c);
    }
}

/* Write frames (ownership passes to the write), the first `skip` bytes of which are
 * already written; closes c on failure. */
static void write_frames(struct hr__conn *c, struct wr *w, size_t skip)
{
    w->c = c;
    w->req.data = w;
    size_t first = 0;
    for (size_t i = 0; i < w->n; i++) {
        w->bufs[i] = uv_buf_init(w->f[i]->data, (unsigned int)w->f[i]->len);
    }
    while (skip > 0 && skip >= w->bufs[first].len) {
        skip -= w->bufs[first++].len;
    }
    w->bufs[first].base += skip;
    w->bufs[first].len -= (unsigned int)skip;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs + first,
                      (unsigned int)(w->n - first), on_write);
    if (rc != 0) {
        for (size_t i = 0; i < w->n; i++) {
            if (w->queue) {
                hr__tcp_failed(c->t, HR_TCP_FAIL_WRITE, w->f[i]->type);
            }
            hr__frame_free(w->f[i]);
        }
        if (w->queue) {
            c->writing = false;
        }
        free(w);
        hr__conn_close(c, uv_strerror(rc));
    }
}

/* Send what the handshake produced (sb's buffer passes to the write). */
static void write_sbuffer(struct hr__conn *c, msgpack_sbuffer *sb)
{
    if (sb->size == 0) {
        msgpack_sbuffer_destroy(sb);
        return;
    }
    struct wr *w = calloc(1, sizeof(*w));
    struct hr__frame *f = calloc(1, sizeof(*f));
    if (w == NULL || f == NULL) {
        free(w);
        free(f);
        msgpack_sbuffer_destroy(sb);
        hr__conn_close(c, "out of memory");
        return;
    }
    f->len = sb->size;
    f->data = msgpack_sbuffer_release(sb);
    w->f[0] = f;
    w->n = 1;
    write_frames(c, w, 0);
}

/*
 * Write what the peer's queue holds. The frames are first written at once with one
 * writev (uv_try_write), which nearly always takes them all: the socket buffer has room
 * for many AppendEntries. Only what is left goes through uv_write. Why: a completed
 * uv_write costs more than its writev: libuv calls back only in a later loop iteration,
 * and re-registers the socket with epoll (one epoll_ctl) each time its write queue
 * drains, for every AppendEntries and every acknowledgement of the commit path
 * (docs/architecture.md, "The commit path").
 */
void hr__conn_pump(struct hr__conn *c)
{
    struct hr__peer *p = c->peer;
    for (;;) {
        if (c->writing || c->closing || c->state != HR__OPEN || p == NULL) {
            return;
        }
        if (p->control.n == 0 && p->bulk.n == 0) {
            return;
        }
        struct hr__frame *f[HR__WRITE_FRAMES];
        uv_buf_t bufs[HR__WRITE_FRAMES];
        size_t n = 0;
        /* Control frames first: a heartbeat queued behind bulk frames jumps ahead of
         * them. Bulk frames then fill the write up to HR__WRITE_BYTES, which bounds how
         * long the next control frame waits for this write to finish. */
        size_t bytes = 0;
        while (n < HR__WRITE_FRAMES && p->control.n > 0) {
            f[n] = hr__fifo_pop(&p->control);
            bytes += f[n++]->len;
        }
        while (n < HR__WRITE_FRAMES && p->bulk.n > 0 && bytes < HR__WRITE_BYTES) {
            f[n] = hr__fifo_pop(&p->bulk);
            bytes += f[n++]->len;
        }
        p->queued_bytes -= bytes;
        for (size_t i = 0; i < n; i++) {
            bufs[i] = uv_buf_init(f[i]->data, (unsigned int)f[i]->len);
        }
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned int)n);
        size_t done = r > 0 ? (size_t)r : 0; /* UV_EAGAIN or an error: uv_write tells */
        if (done == bytes) {
            for (size_t i = 0; i < n; i++) {
                c->t->stats.frames_sent++;
                c->t->stats.bytes_sent += f[i]->len;
                c->t->stats.sent_by_type[f[i]->type]++;
                hr__frame_free(f[i]);
            }
            continue; /* more may be queued than one write takes */
        }
        struct wr *w = calloc(1, sizeof(*w));
        if (w == NULL) {
            /* Out of memory with a frame half written: the stream cannot go on. */
            for (size_t i = 0; i < n; i++) {
                hr__tcp_failed(c->t, HR_TCP_FAIL_WRITE, f[i]->type);
                hr__frame_free(f[i]);
            }
            hr__conn_close(c, "out of memory");
            return;
        }
        memcpy(w->f, f, n * sizeof f[0]);
        w->n = n;
        w->queue = true;
        c->writing = true;
        write_frames(c, w, done);
        return;
    }
}

static void on_deadline(uv_timer_t *timer)
{
    struct hr__conn *c = timer->data;
    if (c->rd.len > c->rd.pos) {
        c->t->stats.bad_frames++; /* a frame begun and never finished: truncated */
    }
    hr__conn_close(c, c->state == HR__CONNECTING ? "connect timed out" : "handshake timed out");
}

static void established(struct hr__conn *c)
{
    struct hr_tcp *t = c->t;
    uv_timer_stop(&c->timer);
    c->state = HR__OPEN;
    c->rd.max = t->max_frame;
    if (c->peer != NULL) {
        hr__peer_up(c->peer);
        hr__conn_pump(c);
        return;
    }
    t->handshaking--;
    t->stats.accepted++;
    c->peer_id = hr_tcp_node_id(c->hs.peer);
    char w[HR_HS_MAX_NAME + 96];
    hr__tcp_log(t, 0, "transport: %s: accepted", who(c, w, sizeof(w)));
    /* A peer that restarted may leave its old connection half-open: the new one wins. */
    for (struct hr__conn *o = t->inbound; o != NULL;) {
        struct hr__conn *next = o->next_in;
        if (o != c && o->state == HR__OPEN && o->peer_id == c->peer_id) {
            hr__conn_close(o, "replaced by a new connection from the same node");
        }
        o = next;
    }
    /* It dialed us and passed the handshake: it is up and has us in its cluster. If our
     * own connection to it is waiting out a backoff (it refused us before it had us, as a
     * node that joins is refused until the others add it, or it was down), dial now:
     * the backoff can reach reconnect_max, and meanwhile everything we send it (votes
     * after a leadership transfer to us) only waits in the queue. */
    struct hr__peer *p = hr__peer_find(t, c->peer_id);
    if (p != NULL && p->conn == NULL && !t->closing) {
        uv_timer_stop(&p->retry);
        p->backoff_ms = t->reconnect_min;
        hr__peer_connect(p);
    }
}

static void on_hs_frame(struct hr__conn *c, const void *payload, size_t len)
{
    struct hr_tcp *t = c->t;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char err[256];
    int rc = hr_hs_step(&c->hs, payload, len, &sb, err, sizeof(err));
    bool refusing = rc < 0 && sb.size > 0;
    if (rc < 0) {
        if (c->hs.auth_failure) {
            t->stats.auth_failures++;
        } else {
            t->stats.bad_frames++;
        }
        char w[HR_HS_MAX_NAME + 96];
        hr__tcp_log(t, 1, "transport: %s: %s", who(c, w, sizeof(w)), err);
    }
    if (refusing) {
        /* Tell the dialer why, then close (the handshake timer still bounds this). */
        c->refusing = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    write_sbuffer(c, &sb);
    if (rc < 0 && !refusing) {
        hr__conn_close(c, NULL);
    } else if (rc == HR_HS_DONE && !c->closing) {
        established(c);
    }
}

static void on_msg_frame(struct hr__conn *c, const void *payload, size_t len)
{
    struct hr_tcp *t = c->t;
    struct hr_msg m;
    char err[256];
    const char *bad = NULL;
    if (c->peer != NULL) {
        bad = "a frame on an outbound connection";
    } else if (hr_codec_decode(payload, len, &m, err, sizeof(err)) != 0) {
        bad = err;
    } else if (m.from != c->peer_id) {
        hr_msg_release(&m);
        bad = "message sender is not the authenticated peer";
    } else if (m.to != t->id) {
        hr_msg_release(&m);
        bad = "message addressed to another node";
    }
    if (bad != NULL) {
        char why[300];
        snprintf(why, sizeof(why), "dropped a bad frame: %s", bad);
        t->stats.bad_frames++;
        hr__conn_close(c, why);
        return;
    }
    t->stats.frames_received++;
    if (m.type > 0 && m.type < HR_MSG_TYPE_COUNT) {
        t->stats.received_by_type[m.type]++;
    }
    if (t->cb.recv != NULL) {
        t->cb.recv(t->cb.ctx, &m);
    }
    hr_msg_release(&m);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct hr__conn *c = h->data;
    char *p;
    size_t n;
    (void)suggested;
    if (hr_frame_reader_space(&c->rd, &p, &n) != 0) {
        *buf = uv_buf_init(NULL, 0); /* the read callback gets UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(p, n > (1u << 30) ? 1u << 30 : (unsigned int)n);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct hr__conn *c = s->data;
    struct hr_tcp *t = c->t;
    (void)buf;
    if (c->closing || nread == 0) {
        return;
    }
    if (nread < 0) {
        if (c->rd.len > c->rd.pos) {
            t->stats.bad_frames++; /* the stream ended inside a frame: truncated */
        }
        hr__conn_close(c, nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
        return;
    }
    hr_frame_reader_commit(&c->rd, (size_t)nread);
    t->stats.bytes_received += (uint64_t)nread;
    for (;;) {
        const void *payload;
        size_t len;
        char err[256];
        int rc = hr_frame_reader_next(&c->rd, &payload, &len, err, sizeof(err));
        if (rc == 0) {
            return;
        }
        if (rc < 0) {
            char why[300];
            snprintf(why, sizeof(why), "dropped a bad frame: %s", err);
            t->stats.bad_frames++;
            hr__conn_close(c, why);
            return;
        }
        if (c->state == HR__OPEN) {
            on_msg_frame(c, payload, len);
        } else {
            on_hs_frame(c, payload, len);
        }
        /* A callback may have closed c, or the whole transport; c is still allocated
         * (it is freed from close callbacks, on a later loop iteration). */
        if (c->closing || c->refusing) {
            return;
        }
    }
}

static int start_reading(struct hr__conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 10);
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct hr__conn *c = req->data;
    if (c->closing) {
        return; /* UV_ECANCELED from hr__conn_close */
    }
    if (status < 0) {
        /* A peer that is down fails here at every retry: say so once (tcp_peer.c). */
        hr__conn_close(c, c->peer->down_logged ? NULL : uv_strerror(status));
        return;
    }
    c->state = HR__HANDSHAKE;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char err[256];
    hr_hs_client_init(&c->hs, &c->t->hs_cfg, c->peer->name);
    int rc = hr_hs_start(&c->hs, &sb, err, sizeof(err));
    if (rc == 0 && (rc = start_reading(c)) != 0) {
        snprintf(err, sizeof(err), "%s", uv_strerror(rc));
    }
    if (rc != 0) {
        msgpack_sbuffer_destroy(&sb);
        hr__conn_close(c, err);
        return;
    }
    write_sbuffer(c, &sb);
}

int hr__conn_begin(struct hr__conn *c)
{
    struct hr_tcp *t = c->t;
    uv_timer_start(&c->timer, on_deadline, t->handshake_ms, 0);
    if (c->peer == NULL) {
        hr_hs_server_init(&c->hs, &t->hs_cfg);
        return start_reading(c);
    }
    c->connect_req.data = c;
    return uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&c->peer->sa,
                          on_connect);
}
