/*
 * tcp_internal.h: what the files of the TCP transport share (not for other layers).
 *
 *   tcp.c        struct hr_tcp: create, start (listen, accept), close, stats, ids
 *   tcp_conn.c   one connection: reading frames, driving the handshake, writing, closing
 *   tcp_peer.c   peers: outbound connections, backoff, the bounded send queue
 *
 * Handle lifetimes: every libuv handle is counted in t->live_handles from init to its
 * close callback; hr_tcp_close's done callback runs, and the transport is freed, when that
 * count drops to zero. A connection owns two handles (socket and handshake timer) and is
 * freed when both have closed; pending writes complete (UV_ECANCELED) before that.
 *
 * Threading: the loop's thread only.
 */
#ifndef HR_TRANSPORT_TCP_INTERNAL_H
#define HR_TRANSPORT_TCP_INTERNAL_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "frame.h"
#include "handshake.h"
#include "transport.h"

#define HR__HANDSHAKE_MS 5000
/* Inbound connections still in their handshake beyond this are refused at accept, so a
 * flood of idle sockets cannot pin unbounded memory before anyone authenticated. */
#define HR__MAX_HANDSHAKING 256
/* A write gathers at most this many frames, and bulk frames only up to HR__WRITE_BYTES, so
 * a control frame queued during a write waits for at most about that many bytes. */
#define HR__WRITE_FRAMES 64
#define HR__WRITE_BYTES ((size_t)1 << 20)
/* Control frames (heartbeats, votes, responses) are never dropped for bulk, but a peer that
 * reads nothing for long would queue them forever: beyond this many the oldest go. */
#define HR__MAX_CONTROL 4096

struct hr__frame {
    struct hr__frame *next;
    bool bulk; /* AppendEntries with entries: what a full queue drops first */
    uint8_t type; /* the message's HR_MSG_* (0: a handshake frame), for the stats */
    size_t len;
    char *data; /* malloc'd (from a msgpack_sbuffer) */
};

struct hr__fifo {
    struct hr__frame *head, *tail;
    size_t n;
};

enum hr__conn_state { HR__CONNECTING, HR__HANDSHAKE, HR__OPEN };

struct hr__peer;

struct hr__conn {
    struct hr_tcp *t;
    struct hr__conn *next_in; /* t->inbound, while open */
    struct hr__peer *peer;    /* outbound: the peer it dials; NULL inbound (or removed) */
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect + handshake deadline */
    uv_connect_t connect_req;
    int handles; /* of tcp and timer, not yet closed */
    int state;
    bool closing;
    bool writing;  /* a queue write is in flight (outbound, open) */
    bool refusing; /* a REFUSE frame is being written; close when it is */
    struct hr_hs hs;
    struct hr_frame_reader rd;
    hr_id_t peer_id; /* authenticated (inbound) */
    /* The other end's "host:port" for log messages: the peer's configured address
     * (outbound) or where the connection came from (inbound, hr__conn_accepted). */
    char addr[64];
};

struct hr__peer {
    struct hr_tcp *t;
    struct hr__peer *next;
    hr_id_t id;
    char *name, *addr;
    struct sockaddr_storage sa;
    struct hr__conn *conn;
    uv_timer_t retry;
    uint32_t backoff_ms;
    bool down_logged; /* a failure was logged since the last success: log no more */
    struct hr__fifo control, bulk;
    size_t queued_bytes;
};

struct hr_tcp {
    uv_loop_t *loop;
    char *name, *cluster, *listen;
    void *secret;
    size_t secret_len;
    hr_id_t id;
    size_t max_frame, max_queue;
    uint32_t reconnect_min, reconnect_max, handshake_ms;
    struct hr_hs_config hs_cfg;
    struct hr_tcp_callbacks cb;
    struct hr_tcp_stats stats;
    uv_tcp_t listener;
    bool listening, started, closing;
    struct hr__peer *peers;
    struct hr__conn *inbound;
    size_t handshaking; /* inbound connections not yet authenticated */
    uint64_t live_handles;
    uint64_t rng;
    void (*done)(void *arg);
    void *done_arg;
};

/* tcp.c */
void hr__tcp_log(struct hr_tcp *t, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hr__tcp_handle_closed(uv_handle_t *h); /* close callback of handles whose data is t */
/* One handle fewer: at zero, after hr_tcp_close, run done and free t. */
void hr__tcp_release(struct hr_tcp *t);
uint64_t hr__tcp_random(struct hr_tcp *t);
/* Count a lost message of type (HR_MSG_*) for reason (enum hr_tcp_fail). */
void hr__tcp_failed(struct hr_tcp *t, int reason, int type);

/* tcp_conn.c */
struct hr__conn *hr__conn_new(struct hr_tcp *t, struct hr__peer *peer);
/* An inbound connection was accepted into c->tcp: note where it comes from. */
void hr__conn_accepted(struct hr__conn *c);
/* Start the handshake's reading (and, for a dialer, its HELLO). */
int hr__conn_begin(struct hr__conn *c);
void hr__conn_close(struct hr__conn *c, const char *why);
void hr__conn_pump(struct hr__conn *c);

/* tcp_peer.c */
struct hr__peer *hr__peer_find(struct hr_tcp *t, hr_id_t id);
void hr__peer_connect(struct hr__peer *p);
/* The peer's outbound connection went away: retry after the backoff. */
void hr__peer_lost(struct hr__peer *p);
/* The peer's outbound connection authenticated. */
void hr__peer_up(struct hr__peer *p);
void hr__peer_close(struct hr__peer *p);
void hr__frame_free(struct hr__frame *f);
struct hr__frame *hr__fifo_pop(struct hr__fifo *q);

#endif
