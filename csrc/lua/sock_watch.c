/*
 * sock_watch.c: core.watch_sock(sock, events, timeout_ms, fn), the wait of helios.client's
 * sockets on the loop (helios.loop.wait_sock). As core.watch_fd (loop.c), fn is called
 * once, from the loop: fn(true) when the socket is ready for events ("r", "w" or "rw"),
 * fn(nil, "timeout") when timeout_ms passed first, fn(nil, "io", detail) on an error or
 * when the socket was closed meanwhile. One wait per socket at a time.
 *
 * Why not core.watch_fd: that one makes and closes a poll handle per wait, which costs an
 * ioctl and several epoll_ctl calls each time (the descriptor leaves the loop's epoll set
 * and comes back). A client that sends a request and waits for its answer, over and over,
 * paid more in those calls than in its reads and writes. Here each socket keeps one
 * watcher for its life: the poll stays started between waits, so the next wait for the
 * same events costs no system call; it is stopped only when it reports readiness that
 * nobody waits for (level-triggered, it would report it every turn).
 *
 * The watcher must let go of the descriptor before it is closed, or closing its handle
 * later would take a reused descriptor number out of the epoll set: the socket's hook
 * (client_binding.h) tells it, whoever closes the socket (close, an error, the collector).
 * The handles are then closed; a waiter gets nil, "io", "closed" from the next turn.
 *
 * Ownership: the watcher is the loop's (its handles); the socket only points at it through
 * its hook until the hook is called. Threading: the loop's thread.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <uv.h>

#include "binding.h"
#include "client_binding.h"
#include "loop.h"

struct sock_watch {
    uv_poll_t poll;
    uv_timer_t timer;
    struct hr__lloop *lp;
    int fn_ref;    /* the waiter's fn, LUA_NOREF when nobody waits */
    int events;    /* what the poll was started for (0: stopped) */
    int open;      /* handles not closed yet */
    bool detached; /* the socket closed: its handles are closing */
    bool calling;  /* inside the waiter's fn */
};

static void watch_closed(uv_handle_t *h)
{
    struct sock_watch *w = h->data;
    if (--w->open == 0) {
        struct hr__lloop *lp = w->lp;
        free(w);
        hr__loop_release(lp);
    }
}

struct call {
    int ref, status;
};

static int push_result(lua_State *L, void *arg)
{
    const struct call *c = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    switch (c->status) {
    case 0:
        lua_pushboolean(L, 1);
        return 1;
    case 1:
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        lua_pushliteral(L, "not ready within the timeout");
        return 3;
    case 2:
        lua_pushnil(L);
        lua_pushliteral(L, "io");
        lua_pushliteral(L, "closed");
        return 3;
    default:
        lua_pushnil(L);
        lua_pushliteral(L, "io");
        lua_pushstring(L, uv_strerror(c->status));
        return 3;
    }
}

static void timer_cb(uv_timer_t *t);

static void stop_poll(struct sock_watch *w)
{
    if (w->events != 0 && !w->detached) {
        uv_poll_stop(&w->poll);
    }
    w->events = 0;
}

/* Tell the waiter (status: 0 ready, 1 timeout, 2 closed, < 0 a libuv error). fn may wait
 * again (the poll then stays as it is) or close the socket. */
static void fire(struct sock_watch *w, int status)
{
    if (w->fn_ref == LUA_NOREF) {
        return;
    }
    uv_timer_stop(&w->timer);
    if (status != 0) {
        stop_poll(w); /* a timeout or an error: no readiness to keep watching for */
    }
    struct call c = {.ref = w->fn_ref, .status = status};
    w->fn_ref = LUA_NOREF; /* before fn runs: it may wait again */
    if (!hr__loop_dead(w->lp)) {
        w->calling = true;
        hr__loop_call(w->lp, push_result, &c, "socket wait callback");
        w->calling = false;
    }
    hr__loop_unref(w->lp, c.ref);
    if (w->detached && !uv_is_closing((uv_handle_t *)&w->timer)) {
        if (w->fn_ref != LUA_NOREF) {
            uv_timer_start(&w->timer, timer_cb, 0, 0); /* fn waited, then closed it */
        } else {
            uv_close((uv_handle_t *)&w->timer, watch_closed);
        }
    }
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct sock_watch *w = p->data;
    if (w->fn_ref == LUA_NOREF) {
        stop_poll(w); /* ready, but nobody waits: level-triggered, it would spin */
        return;
    }
    fire(w, status < 0 ? status : 0);
}

static void timer_cb(uv_timer_t *t)
{
    struct sock_watch *w = t->data;
    fire(w, w->detached ? 2 : 1);
}

/* The socket's hook: its descriptor is about to be closed. */
static void before_close(void *arg)
{
    struct sock_watch *w = arg;
    w->detached = true;
    w->events = 0;
    uv_close((uv_handle_t *)&w->poll, watch_closed); /* leaves the epoll set now */
    if (w->calling) {
        return; /* fire() ends what is left, once fn returns */
    }
    if (w->fn_ref != LUA_NOREF) {
        uv_timer_start(&w->timer, timer_cb, 0, 0); /* the waiter hears "closed" */
    } else {
        uv_close((uv_handle_t *)&w->timer, watch_closed);
    }
}

/* core.watch_sock(sock, events, timeout_ms, fn) -> true | nil, "io", detail */
static int l_watch_sock(lua_State *L)
{
    const char *usage = "Usage: core.watch_sock(sock, events, timeout_ms, fn): events is "
                        "\"r\", \"w\" or \"rw\"";
    int fd;
    struct hr__lua_sock_hook *hook = hr__lua_sock_hook(L, 1, &fd);
    const char *ev = luaL_checkstring(L, 2);
    lua_Number tms = luaL_checknumber(L, 3);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    int events = (strchr(ev, 'r') ? UV_READABLE : 0) | (strchr(ev, 'w') ? UV_WRITABLE : 0);
    if (events == 0) {
        return luaL_error(L, "%s", usage);
    }
    if (fd < 0) {
        return hr__lua_push_fail(L, "io", "closed");
    }
    uint64_t ms = hr__loop_timeout_ms(tms);
    struct hr__lloop *lp = hr__loop_get(L);
    struct sock_watch *w = hook->before_close == before_close ? hook->arg : NULL;
    if (w == NULL) {
        if (hook->before_close != NULL) {
            return hr__lua_push_fail(L, "io", "the socket is watched by something else");
        }
        w = calloc(1, sizeof *w);
        if (w == NULL) {
            return luaL_error(L, "core.watch_sock: out of memory");
        }
        int rc = uv_poll_init(hr__loop_uv(lp), &w->poll, fd);
        if (rc != 0) {
            free(w);
            return hr__lua_push_fail(L, "io", uv_strerror(rc));
        }
        uv_timer_init(hr__loop_uv(lp), &w->timer);
        w->poll.data = w->timer.data = w;
        w->lp = lp;
        w->fn_ref = LUA_NOREF;
        w->open = 2;
        hr__loop_retain(lp);
        hook->before_close = before_close;
        hook->arg = w;
    }
    if (w->fn_ref != LUA_NOREF) {
        return hr__lua_push_fail(L, "io", "the socket is waited on already");
    }
    if (w->events != events) {
        int rc = uv_poll_start(&w->poll, events, poll_cb);
        if (rc != 0) {
            return hr__lua_push_fail(L, "io", uv_strerror(rc));
        }
        w->events = events;
    }
    lua_pushvalue(L, 4);
    w->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    uv_update_time(hr__loop_uv(lp)); /* the timeout counts from now, also between runs */
    uv_timer_start(&w->timer, timer_cb, ms, 0);
    lua_pushboolean(L, 1);
    return 1;
}

void hr__lua_open_sock_watch(lua_State *L)
{
    lua_pushcfunction(L, l_watch_sock);
    lua_setfield(L, -2, "watch_sock");
}
