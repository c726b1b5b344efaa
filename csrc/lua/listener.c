/*
 * listener.c: the plumbing the listening servers share (see listener.h).
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <netinet/in.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "../transport/transport.h"
#include "listener.h"
#include "loop.h"

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
    hr__loop_retain(lp);
}

void hr__listener_add_conn(struct hr__listener *l, struct hr__listener_conn *c)
{
    c->next = l->conns;
    l->conns = c;
    l->n_conns++;
}

void hr__listener_remove_conn(struct hr__listener *l, struct hr__listener_conn *c)
{
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
                            const char *addr, const struct sockaddr_storage *sa, int backlog,
                            uv_connection_cb cb)
{
    uv_tcp_init(hr__loop_uv(l->lp), &l->h.tcp);
    l->h.tcp.data = l;
    int rc = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)sa, 0);
    if (rc == 0) {
        rc = uv_listen(&l->h.stream, backlog, cb);
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
