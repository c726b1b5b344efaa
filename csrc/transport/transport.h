/*
 * transport.h: the TCP transport between Raft nodes, on libuv.
 *
 * Each node listens on one address and dials every peer it has to send to: a connection
 * carries messages one way, from the dialer to the listener, so a node's answers travel on
 * its own outbound connection. Every connection starts with a versioned handshake that
 * carries the protocol version, the cluster id and both node ids, and in which both sides
 * prove knowledge of the cluster secret (challenge and response, HMAC-SHA256); a peer that
 * cannot, names another cluster or is not one of the configured peers is refused, and both
 * sides log it with the other's address and the reason. After it, each frame is one
 * msgpack-encoded hr_msg (codec.h) with a CRC32C of its payload.
 *
 * A malformed, truncated, oversized or unexpected frame closes that connection and bumps a
 * counter; the node keeps running. Outbound connections reconnect with exponential backoff.
 * Each peer has a bounded send queue: when a slow peer lets it fill, the oldest queued
 * AppendEntries that carries entries is dropped first (Raft retransmits), never a heartbeat
 * or a vote, so small control messages are never stuck behind a large transfer.
 *
 * Threading: everything runs on the loop's thread; callbacks are called from the loop.
 * Ownership: the transport copies what it is given (config strings, messages to send).
 */
#ifndef HR_TRANSPORT_H
#define HR_TRANSPORT_H

#include <uv.h>

#include "../core/raft.h"

#define HR_PROTOCOL_VERSION 1

struct hr_tcp;

struct hr_tcp_config {
    const char *node_name;   /* this node's id as configured ("node-1") */
    hr_id_t node_id;         /* the core's numeric id for it (hr_tcp_node_id) */
    const char *cluster_id;  /* peers naming another cluster are refused */
    const void *secret;      /* the cluster secret; may not be empty */
    size_t secret_len;
    const char *listen;      /* "host:port" to listen on; NULL: do not listen */
    size_t max_frame_bytes;  /* larger frames close the connection; 0: 64 MiB */
    size_t max_queue_bytes;  /* per peer; 0: 64 MiB */
    uint32_t reconnect_min_ms, reconnect_max_ms; /* 0: 50 and 2000 */
    /* Added by the implementation (zero keeps the default): a connection that has not
     * completed its connect and handshake within this is closed. 0: 5000. */
    uint32_t handshake_timeout_ms;
};

struct hr_tcp_callbacks {
    void *ctx;
    /* A message arrived from an authenticated peer; m is borrowed for the call. */
    void (*recv)(void *ctx, const struct hr_msg *m);
    /* Something an operator should know (a refused peer, a bad frame): level 0 info,
     * 1 warning, 2 error. A message about a connection names the peer and its address,
     * "transport: from node-3 (127.0.0.1:40312): handshake refused: <reason>"; one per
     * event, so a peer that retries repeats it: the receiver rate-limits. May be NULL. */
    void (*log)(void *ctx, int level, const char *msg);
};

/* Why a message was lost (hr_tcp_stats.failed). */
enum hr_tcp_fail {
    HR_TCP_FAIL_QUEUE_FULL = 0, /* dropped from a full send queue (see the top comment) */
    HR_TCP_FAIL_WRITE,          /* the connection failed with it in a write */
    HR_TCP_FAIL_NO_CONNECTION,  /* queued while the peer had no open connection (it may
                                 * still go out once one is: counted when queued) */
    HR_TCP_FAIL_UNKNOWN_PEER,   /* addressed to a node that is not a peer */
    HR_TCP_FAIL_ENCODE,         /* could not be encoded (out of memory) */
    HR_TCP_FAIL_COUNT
};
/* "queue_full", "write_error", "no_connection", "unknown_peer", "encode_error". */
const char *hr_tcp_fail_name(int reason);

struct hr_tcp_stats {
    uint64_t frames_sent, frames_received;
    uint64_t bytes_sent, bytes_received;
    uint64_t connects, disconnects;   /* outbound connections made and lost */
    uint64_t accepted;                /* inbound connections that passed the handshake */
    uint64_t auth_failures;           /* handshakes refused (secret, cluster, version, node id) */
    uint64_t bad_frames;              /* malformed, truncated, oversized or unexpected */
    uint64_t queue_drops;             /* messages dropped because a send queue was full */
    uint64_t connect_failures;        /* outbound attempts closed before the handshake ended */
    /* By message type (HR_MSG_*, index 0 unused): frames written to a socket, messages
     * received from authenticated peers, and messages lost by reason (enum hr_tcp_fail). */
    uint64_t sent_by_type[HR_MSG_TYPE_COUNT], received_by_type[HR_MSG_TYPE_COUNT];
    uint64_t failed[HR_TCP_FAIL_COUNT][HR_MSG_TYPE_COUNT];
};

/* The numeric id the core uses for a configured node id: FNV-1a 64 of the name (never 0),
 * the same on every node, so ids need no coordination. */
hr_id_t hr_tcp_node_id(const char *name);

/* Parse "host:port" as the transport does for listen and peer addresses (a numeric IPv4
 * host, [IPv6] or localhost; host names are not resolved) into *sa. 0 or HR_EINVAL. */
int hr_tcp_parse_addr(const char *addr, struct sockaddr_storage *sa);

/* Create a transport on loop (borrowed: it must outlive the transport). NULL on error with
 * a message in err. Nothing listens or connects before hr_tcp_start. */
struct hr_tcp *hr_tcp_new(uv_loop_t *loop, const struct hr_tcp_config *config,
                          const struct hr_tcp_callbacks *cb, char *err, size_t errlen);
/* Bind and listen (if configured). 0, or a negative HR_E* / libuv code with a message in
 * err ("listen 127.0.0.1:9001: address already in use"). */
int hr_tcp_start(struct hr_tcp *t, char *err, size_t errlen);
/* Peers messages may be sent to. The address is copied. 0 or HR_EINVAL. */
int hr_tcp_add_peer(struct hr_tcp *t, hr_id_t id, const char *name, const char *addr);
int hr_tcp_remove_peer(struct hr_tcp *t, hr_id_t id);
/* Queue m for its peer (m->to); best effort, never calls back. Fits struct hr_network's
 * send (node.h) with t as ctx. */
void hr_tcp_send(void *t, const struct hr_msg *m);
/* Close every handle; done(arg) runs once they are all closed, and then the transport is
 * freed. */
void hr_tcp_close(struct hr_tcp *t, void (*done)(void *arg), void *arg);
const struct hr_tcp_stats *hr_tcp_stats(const struct hr_tcp *t);
/* Whether an authenticated outbound connection to peer id is up. */
bool hr_tcp_connected(const struct hr_tcp *t, hr_id_t id);

#endif
