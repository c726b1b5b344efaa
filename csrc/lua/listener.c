/*
 * listener.c: the plumbing the listening servers share (see listener.h).
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "../core/array.h"
#include "../transport/transport.h"
#include "binding.h"
#include "listener.h"
#include "loop.h"

/* A refused connection is told why, then kept this long at most for the client to close
 * first (see hr__listener_refuse): helios.client's default timeout, enough for a client
 * that sends its first request soon after it connects. */
#define REFUSE_LINGER_MS 5000
/* At most this many refused connections are kept while they are told why; beyond, a flood:
 * closed at once, without a word (each holds a descriptor while it lingers). */
#define MAX_REFUSALS 256

/* A connection refused for max_clients, while it is told why. */
struct hr__refusal {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer;
    uv_write_t write;
    uv_shutdown_t shutdown;
    struct hr__listener *l;
    struct hr__refusal *next;
    int handles;  /* h and timer, not yet closed */
    bool listed;  /* in l->refusals */
    bool closing;
    char sink[256]; /* what the client sends: read and dropped */
};

void hr__listener_init(struct hr__listener *l, struct hr__lloop *lp, int handles,
                       const struct hr__listener_ops *ops)
{
    l->lp = lp;
    l->handler_ref = LUA_NOREF;
    l->pending = handles;
    l->closing = false;
    l->conns = NULL;
    l->n_conns = 0;
    l->ops = ops;
    l->max_clients = 0;
    l->refused = 0;
    l->refusals = NULL;
    l->n_refusals = 0;
    l->dirty = NULL;
    if (ops->flush_dirty != NULL) {
        l->pending += 2;
        uv_check_init(hr__loop_uv(lp), &l->check);
        uv_idle_init(hr__loop_uv(lp), &l->idle);
        l->check.data = l->idle.data = l;
    }
    hr__loop_retain(lp);
}

static void on_idle(uv_idle_t *h)
{
    (void)h; /* its being active is what counts: see "Writes once per loop turn" */
}

/* The check phase: write what the connections were answered in this loop turn. */
static void on_check(uv_check_t *h)
{
    struct hr__listener *l = h->data;
    while (l->dirty != NULL) {
        struct hr__listener_conn *c = l->dirty;
        l->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = false;
        l->ops->flush_dirty(c);
    }
    uv_check_stop(h);
    uv_idle_stop(&l->idle);
}

void hr__listener_mark_dirty(struct hr__listener *l, struct hr__listener_conn *c)
{
    if (c->dirty) {
        return;
    }
    c->dirty = true;
    c->dirty_next = l->dirty;
    l->dirty = c;
    if (!uv_is_active((uv_handle_t *)&l->check)) {
        uv_check_start(&l->check, on_check);
        uv_idle_start(&l->idle, on_idle);
    }
}

int hr__listener_backlog(void)
{
    static int backlog = 0;
    if (backlog == 0) {
        backlog = HR__LISTEN_BACKLOG;
        FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
        int max = 0;
        if (f != NULL) {
            if (fscanf(f, "%d", &max) == 1 && max > 0 && max < backlog) {
                backlog = max;
            }
            fclose(f);
        }
    }
    return backlog;
}

bool hr__listener_full(const struct hr__listener *l)
{
    return l->max_clients != 0 && l->n_conns >= l->max_clients;
}

size_t hr__listener_opt_max_clients(lua_State *L, int idx, const char *what)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        return HR__DEFAULT_MAX_CLIENTS;
    }
    lua_getfield(L, idx, "max_clients");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return HR__DEFAULT_MAX_CLIENTS;
    }
    lua_Number v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 1) || v > HR__MAX_MAX_CLIENTS ||
        v != (lua_Number)(size_t)v) {
        luaL_error(L, "%s: max_clients must be an integer from 1 to %d", what,
                   HR__MAX_MAX_CLIENTS);
    }
    lua_pop(L, 1);
    return (size_t)v;
}

/* ---- refused connections ---- */

static void refusal_closed(uv_handle_t *h)
{
    struct hr__refusal *r = h->data;
    struct hr__listener *l = r->l;
    if (--r->handles == 0) {
        free(r);
    }
    hr__listener_unref(l);
}

static void refusal_close(struct hr__refusal *r)
{
    if (r->closing) {
        return;
    }
    r->closing = true;
    struct hr__listener *l = r->l;
    if (r->listed) {
        for (struct hr__refusal **p = &l->refusals; *p != NULL; p = &(*p)->next) {
            if (*p == r) {
                *p = r->next;
                l->n_refusals--;
                break;
            }
        }
        r->listed = false;
    }
    /* A write or shutdown still queued is cancelled (its callback does nothing). */
    uv_close(&r->h.handle, refusal_closed);
    uv_close((uv_handle_t *)&r->timer, refusal_closed);
}

static void refusal_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct hr__refusal *r = h->data;
    *buf = uv_buf_init(r->sink, sizeof r->sink);
}

static void refusal_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0) { /* the client closed (or the socket failed): done */
        refusal_close(stream->data);
    }
}

static void refusal_timer(uv_timer_t *t)
{
    refusal_close(t->data);
}

static void refusal_written(uv_write_t *req, int status)
{
    (void)req;
    (void)status;
}

static void refusal_shut(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

void hr__listener_refuse(struct hr__listener *l, const char *msg, size_t len)
{
    uv_stream_t *server = &l->h.stream;
    struct hr__refusal *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return; /* libuv keeps the connection and stops accepting until memory is back */
    }
    r->l = l;
    if (l->h.handle.type == UV_NAMED_PIPE) {
        uv_pipe_init(server->loop, &r->h.pipe, 0);
    } else {
        uv_tcp_init(server->loop, &r->h.tcp);
    }
    uv_timer_init(server->loop, &r->timer);
    r->h.handle.data = r->timer.data = r;
    r->handles = 2;
    l->pending += 2;
    l->refused++;
    if (uv_accept(server, &r->h.stream) != 0 || l->n_refusals >= MAX_REFUSALS) {
        refusal_close(r);
        return;
    }
    r->next = l->refusals;
    l->refusals = r;
    l->n_refusals++;
    r->listed = true;
    if (msg != NULL && len > 0) {
        uv_buf_t b = uv_buf_init((char *)msg, (unsigned)len);
        if (uv_write(&r->write, &r->h.stream, &b, 1, refusal_written) != 0) {
            refusal_close(r);
            return;
        }
    }
    /* After the write; the client reads msg, then end of file. */
    if (uv_shutdown(&r->shutdown, &r->h.stream, refusal_shut) != 0 ||
        uv_read_start(&r->h.stream, refusal_alloc, refusal_read) != 0) {
        refusal_close(r);
        return;
    }
    uv_timer_start(&r->timer, refusal_timer, REFUSE_LINGER_MS, 0);
}

void hr__listener_add_conn(struct hr__listener *l, struct hr__listener_conn *c)
{
    c->next = l->conns;
    c->dirty_next = NULL;
    c->dirty = false;
    l->conns = c;
    l->n_conns++;
}

void hr__listener_remove_conn(struct hr__listener *l, struct hr__listener_conn *c)
{
    if (c->dirty) {
        for (struct hr__listener_conn **p = &l->dirty; *p != NULL; p = &(*p)->dirty_next) {
            if (*p == c) {
                *p = c->dirty_next;
                break;
            }
        }
        c->dirty = false;
        c->dirty_next = NULL;
    }
    for (struct hr__listener_conn **p = &l->conns; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            l->n_conns--;
            return;
        }
    }
}

void hr__listener_unref(struct hr__listener *l)
{
    if (--l->pending == 0) {
        struct hr__lloop *lp = l->lp;
        if (l->ops->release != NULL) {
            l->ops->release(l);
        } else {
            free(l);
        }
        hr__loop_release(lp);
    }
}

void hr__listener_closed(uv_handle_t *h)
{
    hr__listener_unref(h->data);
}

void hr__listener_close(struct hr__listener *l)
{
    if (l->closing) {
        return;
    }
    l->closing = true;
    while (l->conns != NULL) {
        l->ops->close_conn(l->conns);
    }
    while (l->refusals != NULL) {
        refusal_close(l->refusals);
    }
    if (l->ops->flush_dirty != NULL) {
        uv_close((uv_handle_t *)&l->check, hr__listener_closed);
        uv_close((uv_handle_t *)&l->idle, hr__listener_closed);
    }
    if (l->ops->close_rest != NULL) {
        l->ops->close_rest(l);
    }
    hr__loop_unref(l->lp, l->handler_ref);
    l->handler_ref = LUA_NOREF;
    uv_close(&l->h.handle, hr__listener_closed);
}

void *hr__listener_alloc(lua_State *L, const char *mt, size_t size, const char *what,
                         struct hr__listener_ud **ud)
{
    struct hr__listener_ud *u = lua_newuserdata(L, sizeof *u);
    u->l = NULL;
    luaL_getmetatable(L, mt);
    lua_setmetatable(L, -2);
    void *s = calloc(1, size);
    if (s == NULL) {
        luaL_error(L, "%s: out of memory", what);
    }
    *ud = u;
    return s;
}

int hr__listener_ready(lua_State *L, struct hr__listener_ud *u, struct hr__listener *l,
                       int handler_idx)
{
    lua_pushvalue(L, handler_idx);
    l->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    u->l = l;
    return 1;
}

/* The methods below have the metatable's name as their upvalue. */
static struct hr__listener_ud *check_ud(lua_State *L)
{
    return luaL_checkudata(L, 1, lua_tostring(L, lua_upvalueindex(1)));
}

static int l_close(lua_State *L)
{
    struct hr__listener_ud *u = check_ud(L);
    if (u->l != NULL) {
        struct hr__listener *l = u->l;
        u->l = NULL;
        hr__listener_close(l);
    }
    return 0;
}

static int l_gc(lua_State *L)
{
    struct hr__listener_ud *u = check_ud(L);
    if (u->l != NULL && !hr__loop_dead(u->l->lp)) {
        struct hr__listener *l = u->l;
        u->l = NULL;
        hr__listener_close(l);
    }
    return 0;
}

static int l_address(lua_State *L)
{
    struct hr__listener_ud *u = check_ud(L);
    struct sockaddr_storage sa;
    int n = sizeof sa;
    char host[64];
    if (u->l == NULL || uv_tcp_getsockname(&u->l->h.tcp, (struct sockaddr *)&sa, &n) != 0) {
        lua_pushnil(L);
        return 1;
    }
    if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
        uv_ip6_name(a, host, sizeof host);
        lua_pushfstring(L, "[%s]:%d", host, (int)ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&sa;
        uv_ip4_name(a, host, sizeof host);
        lua_pushfstring(L, "%s:%d", host, (int)ntohs(a->sin_port));
    }
    return 1;
}

static int l_clients(lua_State *L)
{
    struct hr__listener_ud *u = check_ud(L);
    struct hr__listener *l = u->l;
    if (l == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 3);
    hr__lua_set_number(L, "clients", (double)l->n_conns);
    hr__lua_set_number(L, "refused", (double)l->refused);
    if (l->max_clients != 0) {
        hr__lua_set_number(L, "max_clients", (double)l->max_clients);
    }
    return 1;
}

static void set_method(lua_State *L, const char *mt, const char *name, lua_CFunction f)
{
    lua_pushstring(L, mt);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, name);
}

void hr__listener_new_class(lua_State *L, const char *mt, bool tcp, const luaL_Reg *extra)
{
    if (luaL_newmetatable(L, mt)) { /* else made by another copy of the module: keep it */
        lua_pushstring(L, mt);
        lua_setfield(L, -2, "__name");
        lua_newtable(L);
        set_method(L, mt, "close", l_close);
        set_method(L, mt, "clients", l_clients);
        if (tcp) {
            set_method(L, mt, "address", l_address);
        }
        if (extra != NULL) {
            luaL_register(L, NULL, extra);
        }
        lua_setfield(L, -2, "__index");
        set_method(L, mt, "__gc", l_gc);
    }
    lua_pop(L, 1);
}

int hr__listener_tcp_addr(lua_State *L, const char *what, const char *addr,
                          struct sockaddr_storage *sa)
{
    if (hr_tcp_parse_addr(addr, sa) == 0) {
        return 0;
    }
    lua_pushnil(L);
    lua_pushliteral(L, "invalid");
    lua_pushfstring(L, "%s listen address '%s' must be host:port with a numeric IPv4 host, "
                       "[IPv6] or localhost", what, addr);
    return 3;
}

int hr__listener_tcp_listen(lua_State *L, struct hr__listener *l, const char *what,
                            const char *addr, const struct sockaddr_storage *sa,
                            uv_connection_cb cb)
{
    uv_tcp_init(hr__loop_uv(l->lp), &l->h.tcp);
    l->h.tcp.data = l;
    int rc = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)sa, 0);
    if (rc == 0) {
        rc = uv_listen(&l->h.stream, hr__listener_backlog(), cb);
    }
    if (rc == 0) {
        return 0;
    }
    hr__listener_close(l);
    lua_pushnil(L);
    lua_pushstring(L, rc == UV_EADDRINUSE ? "busy" : "io");
    lua_pushfstring(L, "%s listen %s: %s", what, addr, uv_strerror(rc));
    return 3;
}

void hr__listener_read_buf(char **buf, size_t *cap, size_t len, size_t want, uv_buf_t *out)
{
    char *p = hr_array_grow(*buf, cap, len + want, 1, 4096);
    if (p == NULL) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *buf = p;
    *out = uv_buf_init(p + len, (unsigned)(*cap - len));
}
