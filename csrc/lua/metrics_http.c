/*
 * metrics_http.c: a small HTTP/1.1 server on the node's libuv loop that serves one page,
 * the Prometheus text of lua/helios/metrics.lua (docs/metrics.md).
 *
 *   local srv, code, detail = core.metrics_listen("127.0.0.1:9100", function()
 *       return body                      -- a string: the page
 *   end, { max_request =, timeout_ms =, max_conns =, path = "/metrics" })
 *   srv:address()   --> "127.0.0.1:9100" (the bound port when 0 was asked)   srv:close()
 *
 * Answers (every one with Content-Length and "Connection: close"; once the answer is
 * written the server shuts its side down, discards what the client still sends, and
 * closes when the client does or the timer fires: see on_shutdown):
 *   GET or HEAD of path (a query string is ignored)  200, text/plain; version=0.0.4
 *   another method on path                           405, with "Allow: GET, HEAD"
 *   another path                                     404
 *   a malformed head (request line, header syntax,   400
 *     control bytes, folded lines, no Host in 1.1)
 *   a version other than HTTP/1.0 and HTTP/1.1       505
 *   a head longer than max_request bytes (8192)      431, at once
 *   no complete head within timeout_ms (10000)       408
 *   more than max_conns (64) connections open        503, without reading the request
 *     (beyond twice that many: closed at once)
 *   the handler raises or returns no string          500
 *
 * The listen backlog is listener.c's (511, or the kernel's somaxconn when lower).
 *
 * Cost of a bad client: a connection holds one buffer of max_request bytes, allocated at
 * accept; reads go straight into it (no allocation per read), and the timer closes it
 * after timeout_ms whether it sends slowly, sends nothing, or does not read its answer. So
 * at most max_conns * max_request bytes, and the loop never waits on a socket.
 *
 * The handler runs in a protected call of its own (not hr__loop_call, which would stop the
 * loop on an error): a failing render answers 500 and the node goes on.
 * Lifetimes as in resp_server.c: server and connections are malloc'd, libuv owns their
 * handles until the close callbacks.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <uv.h>

#include "binding.h"
#include "listener.h"
#include "loop.h"
#include "metrics_http.h"

#define SERVER_MT "helios.core.metrics_server"
#define DEFAULT_MAX_REQUEST 8192
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_CONNS 64
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct server;

struct conn {
    struct hr__listener_conn link; /* first: in the server's list */
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write;
    struct server *srv;
    int handles; /* tcp and timer, not yet closed */
    bool closing, answered;
    bool shut, eof; /* our FIN is out; the client's came */
    char *out;   /* the answer being written */
    size_t len, cap;
    char buf[];  /* cap bytes: the request head */
};

struct server {
    struct hr__listener l; /* first: the listening socket, handler, close (listener.h) */
    size_t max_conns, max_request;
    uint64_t timeout_ms;
    char path[256];
};

/* ---- connections ---- */

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0) {
        return;
    }
    struct server *s = c->srv;
    free(c->out);
    free(c);
    hr__listener_unref(&s->l);
}

static void conn_close(struct conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    hr__listener_remove_conn(&c->srv->l, &c->link);
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
}

/* After the answer, the connection is closed once the client has closed its side too
 * (or the timer fires): closing with unread bytes from it would send a reset, which may
 * destroy the answer before the client reads it (an oversized or pipelined request). */
static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    free(req);
    if (status == UV_ECANCELED) {
        return;
    }
    c->shut = true;
    if (status != 0 || c->eof) {
        conn_close(c);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED || c->closing) {
        return;
    }
    uv_shutdown_t *sh = status == 0 ? malloc(sizeof *sh) : NULL;
    if (sh != NULL) {
        sh->data = c;
        if (uv_shutdown(sh, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
            return; /* closed once the FIN is out (or by the timer) */
        }
        free(sh);
    }
    conn_close(c);
}

static const char *reason_of(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "HTTP Version Not Supported"; /* 505 */
    }
}

/* Write the answer (once) and stop reading; the timer now bounds the write. */
static void answer(struct conn *c, int code, const char *body, size_t len, bool head_only)
{
    if (c->answered || c->closing) {
        return;
    }
    c->answered = true; /* reading goes on, discarding (see on_shutdown) */
    c->len = 0;
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     code, reason_of(code),
                     code == 200 ? CONTENT_TYPE : "text/plain; charset=utf-8",
                     len, code == 405 ? "Allow: GET, HEAD\r\n" : "");
    size_t total = (size_t)n + (head_only ? 0 : len);
    c->out = malloc(total);
    if (c->out == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    if (!head_only && len > 0) {
        memcpy(c->out + n, body, len);
    }
    uv_buf_t b = uv_buf_init(c->out, (unsigned)total);
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_again(&c->timer);
}

static void answer_text(struct conn *c, int code, const char *text)
{
    answer(c, code, text, strlen(text), false);
}

/* Protected (hr__loop_cpcall): call the handler; the page or the error into k. */
struct call {
    struct server *s;
    char *body;
    size_t len;
    char err[256];
};

static int call_handler(lua_State *L)
{
    struct call *k = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, k->s->l.handler_ref);
    int rc = lua_pcall(L, 0, 1, 0);
    size_t n = 0;
    const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (rc != 0 || p == NULL) {
        const char *e = rc != 0 ? lua_tostring(L, -1) : "the handler returned no string";
        snprintf(k->err, sizeof k->err, "metrics: %s\n", e != NULL ? e : "(error object)");
        return 0;
    }
    k->body = malloc(n > 0 ? n : 1);
    if (k->body == NULL) {
        snprintf(k->err, sizeof k->err, "metrics: out of memory\n");
        return 0;
    }
    memcpy(k->body, p, n);
    k->len = n;
    return 0;
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* The next line of the head at *pos (ending in CRLF or a bare LF, RFC 9112 §2.2): its
 * start and length without the terminator; false at the end of the head. */
static bool next_line(const char *b, size_t end, size_t *pos, const char **line, size_t *len)
{
    size_t i = *pos;
    size_t j = i;
    while (j < end && b[j] != '\n') {
        j++;
    }
    if (j >= end) {
        return false;
    }
    *line = b + i;
    *len = j - i - (j > i && b[j - 1] == '\r' ? 1 : 0);
    *pos = j + 1;
    return true;
}

/* The head b[0, end) is complete: check it and answer. */
static void handle(struct conn *c, size_t end)
{
    const char *b = c->buf;
    size_t pos = 0, n;
    const char *line;
    if (!next_line(b, end, &pos, &line, &n)) {
        answer_text(c, 400, "bad request\n");
        return;
    }
    /* method SP target SP version, nothing else. */
    size_t m = 0;
    while (m < n && is_tchar((unsigned char)line[m])) {
        m++;
    }
    if (m == 0 || m >= n || line[m] != ' ') {
        answer_text(c, 400, "bad request line\n");
        return;
    }
    size_t t0 = m + 1, t = t0;
    while (t < n && (unsigned char)line[t] > ' ' && (unsigned char)line[t] < 0x7f) {
        t++;
    }
    if (t == t0 || t >= n || line[t] != ' ' || line[t0] != '/') {
        answer_text(c, 400, "bad request line\n");
        return;
    }
    const char *ver = line + t + 1;
    size_t vlen = n - t - 1;
    if (vlen != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' ||
        ver[6] != '.' || ver[7] < '0' || ver[7] > '9') {
        answer_text(c, 400, "bad request line\n");
        return;
    }
    if (memcmp(ver, "HTTP/1.1", 8) != 0 && memcmp(ver, "HTTP/1.0", 8) != 0) {
        answer_text(c, 505, "HTTP/1.0 or HTTP/1.1 only\n");
        return;
    }
    bool host = false;
    for (;;) {
        if (!next_line(b, end, &pos, &line, &n)) {
            answer_text(c, 400, "bad request\n");
            return;
        }
        if (n == 0) {
            break; /* the empty line that ends the head */
        }
        size_t k = 0;
        while (k < n && is_tchar((unsigned char)line[k])) {
            k++;
        }
        if (k == 0 || k >= n || line[k] != ':') {
            answer_text(c, 400, "bad header line\n"); /* folded lines too (RFC 9112 §5.2) */
            return;
        }
        for (size_t v = k + 1; v < n; v++) {
            unsigned char ch = (unsigned char)line[v];
            if ((ch < ' ' && ch != '\t') || ch == 0x7f) {
                answer_text(c, 400, "bad header value\n");
                return;
            }
        }
        if (k == 4 && strncasecmp(line, "host", 4) == 0) {
            if (host) {
                answer_text(c, 400, "more than one Host header\n");
                return;
            }
            host = true;
        }
    }
    if (!host && ver[7] == '1') {
        answer_text(c, 400, "HTTP/1.1 needs a Host header\n");
        return;
    }
    const char *target = b + t0;
    size_t plen = 0;
    while (t0 + plen < t && target[plen] != '?') {
        plen++;
    }
    struct server *s = c->srv;
    if (plen != strlen(s->path) || memcmp(target, s->path, plen) != 0) {
        answer_text(c, 404, "not found: the metrics are at GET /metrics\n");
        return;
    }
    bool get = m == 3 && memcmp(b, "GET", 3) == 0;
    bool head = m == 4 && memcmp(b, "HEAD", 4) == 0;
    if (!get && !head) {
        answer_text(c, 405, "method not allowed: GET or HEAD\n");
        return;
    }
    struct call k = {.s = s};
    if (s->l.handler_ref == LUA_NOREF || hr__loop_cpcall(s->l.lp, call_handler, &k) != 0) {
        snprintf(k.err, sizeof k.err, "metrics: the handler could not run\n");
    }
    if (k.body == NULL) {
        answer_text(c, 500, k.err);
        return;
    }
    answer(c, 200, k.body, k.len, head);
    free(k.body);
}

/* The end of the head (after its empty line) in buf[0, len), or 0. */
static size_t head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n') {
            if (i + 1 < len && buf[i + 1] == '\n') {
                return i + 2;
            }
            if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
                return i + 3;
            }
        }
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    buf->base = c->buf + c->len;
    buf->len = c->cap - c->len;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = stream->data;
    if (c->closing) {
        return;
    }
    if (nread < 0) {
        c->eof = true;
        if (!c->answered || c->shut || nread != UV_EOF) {
            conn_close(c); /* gone (before its head was complete: nobody to answer) */
        }
        return;
    }
    if (c->answered) {
        c->len = 0; /* what comes after the head is discarded */
        return;
    }
    if (nread == 0) {
        return;
    }
    size_t from = c->len > 3 ? c->len - 3 : 0; /* the terminator may straddle reads */
    c->len += (size_t)nread;
    if (memchr(c->buf + from, 0, c->len - from) != NULL) {
        answer_text(c, 400, "bad request: NUL byte\n");
        return;
    }
    size_t end = head_end(c->buf + from, c->len - from);
    if (end != 0) {
        handle(c, from + end);
    } else if (c->len >= c->cap) {
        answer_text(c, 431, "request head too large\n");
    }
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (!c->answered) {
        answer_text(c, 408, "request timeout\n");
    } else {
        conn_close(c); /* the client does not read its answer */
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct server *s = server->data;
    if (status != 0 || s->l.closing) {
        return;
    }
    bool full = s->l.n_conns >= s->max_conns;
    size_t cap = full ? 512 : s->max_request; /* a refused one only drains */
    struct conn *c = calloc(1, sizeof *c + cap);
    if (c == NULL) {
        hr__listener_refuse(&s->l, NULL, 0); /* off the backlog, or libuv stops accepting */
        return;
    }
    c->srv = s;
    c->cap = cap;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    s->l.pending++;
    hr__listener_add_conn(&s->l, &c->link);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, s->timeout_ms, s->timeout_ms);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    if (full && s->l.n_conns > 2 * s->max_conns) {
        conn_close(c); /* a flood: not even an answer */
    } else if (full) {
        answer_text(c, 503, "too many connections\n");
    }
}

/* ---- the server ---- */

static void close_conn(struct hr__listener_conn *c)
{
    conn_close((struct conn *)c);
}

static const struct hr__listener_ops ops = {close_conn, NULL, NULL, NULL};

/* Field key of the options table at idx: an integer in 1..max, or def when absent. */
static size_t opt_size(lua_State *L, int idx, const char *key, size_t def, size_t max)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        return def;
    }
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    lua_Number v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || v < 1 || v > (lua_Number)max || v != (size_t)v) {
        luaL_error(L, "metrics_listen: %s must be an integer from 1 to %d", key, (int)max);
    }
    lua_pop(L, 1);
    return (size_t)v;
}

/* core.metrics_listen(addr, handler[, opts]) -> server | nil, code, detail */
static int l_listen(lua_State *L)
{
    const char *addr = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    size_t max_request = opt_size(L, 3, "max_request", DEFAULT_MAX_REQUEST, 1 << 20);
    size_t timeout_ms = opt_size(L, 3, "timeout_ms", DEFAULT_TIMEOUT_MS, 3600000);
    size_t max_conns = opt_size(L, 3, "max_conns", DEFAULT_MAX_CONNS, 65536);
    const char *path = "/metrics";
    if (lua_type(L, 3) == LUA_TTABLE) {
        lua_getfield(L, 3, "path");
        if (!lua_isnil(L, -1)) {
            path = lua_tostring(L, -1);
            if (lua_type(L, -1) != LUA_TSTRING || path[0] != '/' || strlen(path) >= 256) {
                return luaL_error(L, "metrics_listen: path must be a string that starts with /");
            }
        }
    }
    struct sockaddr_storage sa;
    if (hr__listener_tcp_addr(L, "metrics", addr, &sa) != 0) {
        return 3;
    }
    struct hr__lloop *lp = hr__loop_get(L);
    struct hr__listener_ud *u;
    struct server *s = hr__listener_alloc(L, SERVER_MT, sizeof *s, "metrics_listen", &u);
    s->max_request = max_request;
    s->timeout_ms = timeout_ms;
    s->max_conns = max_conns;
    snprintf(s->path, sizeof s->path, "%s", path);
    hr__listener_init(&s->l, lp, 1, &ops);
    if (hr__listener_tcp_listen(L, &s->l, "metrics", addr, &sa, on_connection) != 0) {
        return 3;
    }
    return hr__listener_ready(L, u, &s->l, 2);
}

int hr__lua_open_metrics_http(lua_State *L)
{
    hr__listener_new_class(L, SERVER_MT, true, NULL);
    lua_pushcfunction(L, l_listen);
    lua_setfield(L, -2, "metrics_listen");
    return 0;
}
