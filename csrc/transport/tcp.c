/* tcp.c: the TCP transport's lifecycle: create, listen and accept, close, stats. */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11; strdup */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "tcp_internal.h"

hr_id_t hr_tcp_node_id(const char *name)
{
    /* FNV-1a, 64 bits. */
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= UINT64_C(1099511628211);
    }
    return h == 0 ? 1 : h;
}

void hr__tcp_log(struct hr_tcp *t, int level, const char *fmt, ...)
{
    if (t->cb.log == NULL) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    t->cb.log(t->cb.ctx, level, msg);
}

/* xorshift64*: only for backoff jitter, which needs spread, not secrecy. */
uint64_t hr__tcp_random(struct hr_tcp *t)
{
    t->rng ^= t->rng >> 12;
    t->rng ^= t->rng << 25;
    t->rng ^= t->rng >> 27;
    return t->rng * UINT64_C(2685821657736338717);
}

int hr_tcp_parse_addr(const char *addr, struct sockaddr_storage *sa)
{
    char host[256];
    const char *colon = addr == NULL ? NULL : strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof(host)) {
        return HR_EINVAL;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == 0 || *end != 0 || port < 0 || port > 65535) {
        return HR_EINVAL;
    }
    size_t n = (size_t)(colon - addr);
    memcpy(host, addr, n);
    host[n] = 0;
    memset(sa, 0, sizeof(*sa));
    if (host[0] == '[' && host[n - 1] == ']') {
        host[n - 1] = 0;
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)sa) == 0 ? 0 : HR_EINVAL;
    }
    /* Numeric addresses only (no resolver on the loop), but "localhost" is common enough in
     * cluster files to be worth the exception. */
    const char *ip = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    return uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)sa) == 0 ? 0 : HR_EINVAL;
}

/* The handshake's membership check: a dialer must be one of the configured peers (the
 * core would drop its messages anyway; refusing it says why, on both sides). */
static bool known_peer(void *ctx, const char *name)
{
    struct hr__peer *p = hr__peer_find(ctx, hr_tcp_node_id(name));
    return p != NULL && strcmp(p->name, name) == 0;
}

static void free_tcp(struct hr_tcp *t)
{
    free(t->name);
    free(t->cluster);
    free(t->listen);
    free(t->secret);
    free(t);
}

struct hr_tcp *hr_tcp_new(uv_loop_t *loop, const struct hr_tcp_config *config,
                          const struct hr_tcp_callbacks *cb, char *err, size_t errlen)
{
    const struct hr_tcp_config *c = config;
    struct sockaddr_storage sa;
    if (c->node_name == NULL || c->node_name[0] == 0 || strlen(c->node_name) > HR_HS_MAX_NAME) {
        snprintf(err, errlen, "transport: node_name must be 1 to %d bytes", HR_HS_MAX_NAME);
        return NULL;
    }
    if (c->cluster_id == NULL || strlen(c->cluster_id) > HR_HS_MAX_NAME) {
        snprintf(err, errlen, "transport: cluster_id must be at most %d bytes", HR_HS_MAX_NAME);
        return NULL;
    }
    if (c->secret == NULL || c->secret_len == 0 || c->secret_len > 4096) {
        snprintf(err, errlen, "transport: secret must be 1 to 4096 bytes");
        return NULL;
    }
    if (c->node_id != 0 && c->node_id != hr_tcp_node_id(c->node_name)) {
        snprintf(err, errlen, "transport: node_id is not hr_tcp_node_id(node_name)");
        return NULL;
    }
    if (c->listen != NULL && hr_tcp_parse_addr(c->listen, &sa) != 0) {
        snprintf(err, errlen, "transport: listen address '%s' must be host:port with a numeric "
                 "IPv4 host, [IPv6] or localhost (host names are not resolved)", c->listen);
        return NULL;
    }
    struct hr_tcp *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        goto nomem;
    }
    t->loop = loop;
    t->name = strdup(c->node_name);
    t->cluster = strdup(c->cluster_id);
    t->listen = c->listen != NULL ? strdup(c->listen) : NULL;
    t->secret = malloc(c->secret_len);
    if (t->name == NULL || t->cluster == NULL || t->secret == NULL ||
        (c->listen != NULL && t->listen == NULL)) {
        free_tcp(t);
        goto nomem;
    }
    memcpy(t->secret, c->secret, c->secret_len);
    t->secret_len = c->secret_len;
    t->id = hr_tcp_node_id(c->node_name);
    t->max_frame = c->max_frame_bytes ? c->max_frame_bytes : HR_FRAME_MAX_DEFAULT;
    t->max_queue = c->max_queue_bytes ? c->max_queue_bytes : (size_t)64 << 20;
    t->reconnect_min = c->reconnect_min_ms ? c->reconnect_min_ms : 50;
    t->reconnect_max = c->reconnect_max_ms ? c->reconnect_max_ms : 2000;
    if (t->reconnect_max < t->reconnect_min) {
        t->reconnect_max = t->reconnect_min;
    }
    t->handshake_ms = c->handshake_timeout_ms ? c->handshake_timeout_ms : HR__HANDSHAKE_MS;
    t->hs_cfg = (struct hr_hs_config){.name = t->name,
                                      .cluster = t->cluster,
                                      .secret = t->secret,
                                      .secret_len = t->secret_len,
                                      .known = known_peer,
                                      .known_ctx = t};
    if (cb != NULL) {
        t->cb = *cb;
    }
    if (RAND_bytes((unsigned char *)&t->rng, sizeof(t->rng)) != 1 || t->rng == 0) {
        t->rng = uv_hrtime() | 1;
    }
    return t;
nomem:
    snprintf(err, errlen, "transport: out of memory");
    return NULL;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct hr_tcp *t = server->data;
    if (t->closing) {
        return;
    }
    if (status < 0) {
        hr__tcp_log(t, 1, "transport: accept: %s", uv_strerror(status));
        return;
    }
    struct hr__conn *c = hr__conn_new(t, NULL);
    if (c == NULL) {
        hr__tcp_log(t, 2, "transport: accept: out of memory");
        return;
    }
    c->next_in = t->inbound;
    t->inbound = c;
    t->handshaking++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        hr__conn_close(c, NULL);
        return;
    }
    hr__conn_accepted(c);
    if (t->handshaking > HR__MAX_HANDSHAKING) {
        hr__conn_close(c, "too many connections in their handshake");
        return;
    }
    int rc = hr__conn_begin(c);
    if (rc != 0) {
        hr__conn_close(c, uv_strerror(rc));
    }
}

int hr_tcp_start(struct hr_tcp *t, char *err, size_t errlen)
{
    if (t->started || t->closing) {
        snprintf(err, errlen, "transport: already started");
        return HR_EINVAL;
    }
    if (t->listen != NULL) {
        struct sockaddr_storage sa;
        hr_tcp_parse_addr(t->listen, &sa); /* checked in hr_tcp_new */
        int rc = uv_tcp_init(t->loop, &t->listener);
        if (rc != 0) {
            snprintf(err, errlen, "listen %s: %s", t->listen, uv_strerror(rc));
            return rc;
        }
        t->live_handles++;
        t->listening = true;
        t->listener.data = t;
        rc = uv_tcp_bind(&t->listener, (const struct sockaddr *)&sa, 0);
        if (rc == 0) {
            rc = uv_listen((uv_stream_t *)&t->listener, 128, on_connection);
        }
        if (rc != 0) {
            snprintf(err, errlen, "listen %s: %s", t->listen, uv_strerror(rc));
            uv_close((uv_handle_t *)&t->listener, hr__tcp_handle_closed);
            t->listening = false;
            return rc;
        }
    }
    t->started = true;
    for (struct hr__peer *p = t->peers; p != NULL; p = p->next) {
        hr__peer_connect(p);
    }
    return 0;
}

void hr__tcp_release(struct hr_tcp *t)
{
    t->live_handles--;
    if (t->closing && t->live_handles == 0) {
        void (*done)(void *) = t->done;
        void *arg = t->done_arg;
        free_tcp(t);
        if (done != NULL) {
            done(arg);
        }
    }
}

void hr__tcp_handle_closed(uv_handle_t *h)
{
    hr__tcp_release(h->data);
}

void hr_tcp_close(struct hr_tcp *t, void (*done)(void *arg), void *arg)
{
    if (t->closing) {
        return;
    }
    t->closing = true;
    t->done = done;
    t->done_arg = arg;
    /* One extra count for the duration of this function: with nothing open at all, the
     * release below is what runs done and frees t. */
    t->live_handles++;
    if (t->listening) {
        t->listening = false;
        uv_close((uv_handle_t *)&t->listener, hr__tcp_handle_closed);
    }
    while (t->inbound != NULL) {
        hr__conn_close(t->inbound, NULL); /* unlinks it */
    }
    while (t->peers != NULL) {
        struct hr__peer *p = t->peers;
        t->peers = p->next;
        hr__peer_close(p);
    }
    hr__tcp_release(t);
}

const struct hr_tcp_stats *hr_tcp_stats(const struct hr_tcp *t)
{
    return &t->stats;
}

bool hr_tcp_connected(const struct hr_tcp *t, hr_id_t id)
{
    for (const struct hr__peer *p = t->peers; p != NULL; p = p->next) {
        if (p->id == id) {
            return p->conn != NULL && p->conn->state == HR__OPEN && !p->conn->closing;
        }
    }
    return false;
}

void hr__tcp_failed(struct hr_tcp *t, int reason, int type)
{
    if (reason >= 0 && reason < HR_TCP_FAIL_COUNT && type >= 0 && type < HR_MSG_TYPE_COUNT) {
        t->stats.failed[reason][type]++;
    }
}

const char *hr_tcp_fail_name(int reason)
{
    static const char *const names[HR_TCP_FAIL_COUNT] = {
        [HR_TCP_FAIL_QUEUE_FULL] = "queue_full",
        [HR_TCP_FAIL_WRITE] = "write_error",
        [HR_TCP_FAIL_NO_CONNECTION] = "no_connection",
        [HR_TCP_FAIL_UNKNOWN_PEER] = "unknown_peer",
        [HR_TCP_FAIL_ENCODE] = "encode_error",
    };
    return reason >= 0 && reason < HR_TCP_FAIL_COUNT ? names[reason] : "unknown";
}
