/*
 * proxy.c: one loopback TCP proxy per directed link between nodes, driven by lines on
 * stdin, so helios.testing can partition a cluster of real processes.
 *
 *   luajit -e 'require("helios.testkit").proxy_main()'  -- then, on its stdin:
 *   link node-1 node-2 127.0.0.1:9002   -> "ok 41234": node-1 dials 127.0.0.1:41234 to
 *                                          reach node-2 (the proxy forwards the bytes)
 *   cut node-1 node-2                   -> "ok 2": both directions closed, new connections
 *                                          accepted and closed at once (refused)
 *   cut1 node-1 node-2                  -> "ok 1": only the link node-1 -> node-2 (what
 *                                          node-1 dials to reach node-2): a one-way cut
 *   heal                                -> "ok": every link forwards again
 *   ping                                -> "ok"
 *   quit (or the end of stdin)          -> "ok", every socket closed, proxy_main returns
 *
 * Why a process of its own with a private loop: the test process blocks in busted and in
 * blocking clients, and must not have to run a loop for the cluster's traffic to flow. A
 * connection carries one node's messages to another (transport.h), so the link of a
 * connection is known from the port it arrives on: one listener per directed link.
 * Bytes are forwarded unchanged; a side that closes or fails closes both.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <uv.h>

#include "testkit.h"

#define MAX_NAME 64
/* A side whose peer has this much unwritten stops reading until it drains (back-pressure
 * instead of buffering a slow node's traffic without bound). */
#define HIGH_WATER (4u << 20)

struct link;

struct pair {
    uv_tcp_t side[2];          /* 0: accepted from the dialing node, 1: to the target */
    uv_connect_t connect;
    struct link *link;
    struct pair *next;
    int open_handles;          /* freed when both handles are closed */
    int closing;
    int connected;
    int paused[2];             /* side stopped reading for back-pressure */
};

struct link {
    char from[MAX_NAME], to[MAX_NAME];
    struct sockaddr_in target;
    uv_tcp_t listener;
    int cut;
    struct pair *pairs;
    struct link *next;
};

struct proxy {
    uv_loop_t loop;
    uv_pipe_t in;
    char line[1024];
    size_t line_len;
    struct link *links;
    int quitting;
};

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n > sizeof buf - 2) {
        n = (int)sizeof buf - 2;
    }
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(1, buf + off, (size_t)(n - off));
        if (w <= 0) {
            return; /* the controller went away: nothing to tell */
        }
        off += (int)w;
    }
}

/* ---- pairs ---- */

static void on_pair_closed(uv_handle_t *h)
{
    struct pair *p = h->data;
    if (--p->open_handles == 0) {
        free(p);
    }
}

static void close_pair(struct pair *p)
{
    if (p->closing) {
        return;
    }
    p->closing = 1;
    struct pair **pp = &p->link->pairs;
    while (*pp && *pp != p) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = p->next;
    }
    for (int i = 0; i < 2; i++) {
        if (!uv_is_closing((uv_handle_t *)&p->side[i])) {
            uv_close((uv_handle_t *)&p->side[i], on_pair_closed);
        }
    }
}

struct wreq {
    uv_write_t req;
    struct pair *pair;
    int from;      /* the side the bytes were read from */
    char *base;
};

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct pair *p = w->pair;
    int from = w->from;
    free(w->base);
    free(w);
    if (p->closing) {
        return;
    }
    if (status < 0) {
        close_pair(p);
        return;
    }
    uv_stream_t *to = (uv_stream_t *)&p->side[1 - from];
    if (p->paused[from] && to->write_queue_size < HIGH_WATER / 2) {
        p->paused[from] = 0;
        uv_read_start((uv_stream_t *)&p->side[from], on_alloc, on_read);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pair *p = s->data;
    int from = s == (uv_stream_t *)&p->side[0] ? 0 : 1;
    if (nread <= 0 || p->closing) {
        free(buf->base);
        if (nread < 0 && !p->closing) {
            close_pair(p);
        }
        return;
    }
    uv_stream_t *to = (uv_stream_t *)&p->side[1 - from];
    struct wreq *w = malloc(sizeof *w);
    if (!w) {
        free(buf->base);
        close_pair(p);
        return;
    }
    w->pair = p;
    w->from = from;
    w->base = buf->base;
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    if (uv_write(&w->req, to, &out, 1, on_written) < 0) {
        free(w->base);
        free(w);
        close_pair(p);
        return;
    }
    if (to->write_queue_size > HIGH_WATER) {
        p->paused[from] = 1;
        uv_read_stop(s);
    }
}

static void on_connected(uv_connect_t *req, int status)
{
    struct pair *p = req->data;
    if (p->closing) {
        return;
    }
    if (status < 0) {
        close_pair(p);
        return;
    }
    p->connected = 1;
    uv_tcp_nodelay(&p->side[1], 1);
    for (int i = 0; i < 2; i++) {
        uv_read_start((uv_stream_t *)&p->side[i], on_alloc, on_read);
    }
}

static void on_refused_closed(uv_handle_t *h)
{
    free(h);
}

static void on_accept(uv_stream_t *server, int status)
{
    struct link *l = server->data;
    if (status < 0) {
        return;
    }
    if (l->cut) {
        /* Accept and close at once: the dialer sees its connection fail, as with a cut cable
         * it would see a timeout; either way nothing gets through. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (!t) {
            return;
        }
        uv_tcp_init(server->loop, t);
        if (uv_accept(server, (uv_stream_t *)t) == 0) {
            uv_close((uv_handle_t *)t, on_refused_closed);
        } else {
            uv_close((uv_handle_t *)t, on_refused_closed);
        }
        return;
    }
    struct pair *p = calloc(1, sizeof *p);
    if (!p) {
        return;
    }
    p->link = l;
    for (int i = 0; i < 2; i++) {
        uv_tcp_init(server->loop, &p->side[i]);
        p->side[i].data = p;
    }
    p->open_handles = 2;
    p->next = l->pairs;
    l->pairs = p;
    if (uv_accept(server, (uv_stream_t *)&p->side[0]) < 0) {
        close_pair(p);
        return;
    }
    uv_tcp_nodelay(&p->side[0], 1);
    p->connect.data = p;
    if (uv_tcp_connect(&p->connect, &p->side[1], (struct sockaddr *)&l->target,
                       on_connected) < 0) {
        close_pair(p);
    }
}

/* ---- commands ---- */

static struct link *find_link(struct proxy *x, const char *from, const char *to)
{
    for (struct link *l = x->links; l; l = l->next) {
        if (strcmp(l->from, from) == 0 && strcmp(l->to, to) == 0) {
            return l;
        }
    }
    return NULL;
}

static void cut_link(struct link *l)
{
    l->cut = 1;
    while (l->pairs) {
        close_pair(l->pairs);
    }
}

static void cmd_link(struct proxy *x, const char *from, const char *to, const char *addr)
{
    char host[64];
    int port = 0;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon - addr >= (long)sizeof host || sscanf(colon + 1, "%d", &port) != 1) {
        reply("err bad address '%s' (want host:port)", addr);
        return;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (strlen(from) >= MAX_NAME || strlen(to) >= MAX_NAME) {
        reply("err node name too long");
        return;
    }
    if (find_link(x, from, to)) {
        reply("err link %s %s exists", from, to);
        return;
    }
    struct link *l = calloc(1, sizeof *l);
    if (!l) {
        reply("err out of memory");
        return;
    }
    strcpy(l->from, from);
    strcpy(l->to, to);
    int rc = uv_ip4_addr(host, port, &l->target);
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    uv_tcp_init(&x->loop, &l->listener);
    l->listener.data = l;
    if (rc == 0) {
        rc = uv_tcp_bind(&l->listener, (struct sockaddr *)&any, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&l->listener, 64, on_accept);
    }
    struct sockaddr_in bound;
    int len = sizeof bound;
    if (rc == 0) {
        rc = uv_tcp_getsockname(&l->listener, (struct sockaddr *)&bound, &len);
    }
    l->next = x->links;
    x->links = l; /* even on failure: the handle is closed with the others at quit */
    if (rc < 0) {
        l->cut = 1;
        reply("err %s", uv_strerror(rc));
        return;
    }
    reply("ok %d", ntohs(bound.sin_port));
}

static void on_link_closed(uv_handle_t *h)
{
    free(h->data);
}

static void quit(struct proxy *x)
{
    if (x->quitting) {
        return;
    }
    x->quitting = 1;
    for (struct link *l = x->links; l; l = l->next) {
        cut_link(l);
    }
    struct link *l = x->links;
    while (l) {
        struct link *next = l->next;
        uv_close((uv_handle_t *)&l->listener, on_link_closed);
        l = next;
    }
    x->links = NULL;
    if (!uv_is_closing((uv_handle_t *)&x->in)) {
        uv_close((uv_handle_t *)&x->in, NULL);
    }
}

static void run_command(struct proxy *x, char *line)
{
    char a[MAX_NAME * 2], b[MAX_NAME * 2], c[MAX_NAME * 2], verb[16];
    a[0] = b[0] = c[0] = verb[0] = '\0';
    int n = sscanf(line, "%15s %127s %127s %127s", verb, a, b, c);
    if (n <= 0) {
        return;
    }
    if (strcmp(verb, "link") == 0 && n == 4) {
        cmd_link(x, a, b, c);
    } else if (strcmp(verb, "cut") == 0 && n == 3) {
        int k = 0;
        struct link *l1 = find_link(x, a, b), *l2 = find_link(x, b, a);
        if (l1) { cut_link(l1); k++; }
        if (l2) { cut_link(l2); k++; }
        reply("ok %d", k);
    } else if (strcmp(verb, "cut1") == 0 && n == 3) {
        struct link *l1 = find_link(x, a, b);
        if (l1) {
            cut_link(l1);
        }
        reply("ok %d", l1 ? 1 : 0);
    } else if (strcmp(verb, "heal") == 0) {
        for (struct link *l = x->links; l; l = l->next) {
            l->cut = 0;
        }
        reply("ok");
    } else if (strcmp(verb, "ping") == 0) {
        reply("ok");
    } else if (strcmp(verb, "quit") == 0) {
        reply("ok");
        quit(x);
    } else {
        reply("err unknown command '%s' (link FROM TO HOST:PORT | cut A B | cut1 A B | heal | ping | "
              "quit)", verb);
    }
}

static void on_stdin(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct proxy *x = s->data;
    if (nread < 0) {
        free(buf->base);
        quit(x);
        return;
    }
    for (ssize_t i = 0; i < nread && !x->quitting; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            x->line[x->line_len] = '\0';
            x->line_len = 0;
            run_command(x, x->line);
        } else if (x->line_len < sizeof x->line - 1) {
            x->line[x->line_len++] = ch;
        }
    }
    free(buf->base);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static int l_proxy_main(lua_State *L)
{
    struct proxy *x = calloc(1, sizeof *x);
    if (!x) {
        return luaL_error(L, "proxy_main: out of memory");
    }
    /* A node that closes its end while we forward to it is an error on that pair only. */
    signal(SIGPIPE, SIG_IGN);
    int rc = uv_loop_init(&x->loop);
    if (rc == 0) {
        rc = uv_pipe_init(&x->loop, &x->in, 0);
    }
    if (rc == 0) {
        rc = uv_pipe_open(&x->in, 0);
    }
    x->in.data = x;
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&x->in, on_alloc, on_stdin);
    }
    if (rc == 0) {
        uv_run(&x->loop, UV_RUN_DEFAULT);
    }
    uv_walk(&x->loop, close_any, NULL);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    uv_loop_close(&x->loop);
    free(x);
    if (rc < 0) {
        return luaL_error(L, "proxy_main: stdin: %s", uv_strerror(rc));
    }
    return 0;
}

void hr__tk_open_proxy(lua_State *L)
{
    lua_pushcfunction(L, l_proxy_main);
    lua_setfield(L, -2, "proxy_main");
}
