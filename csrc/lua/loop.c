/*
 * loop.c: the uv loop of a lua_State, core.run/stop/now/timer, and protected calls from
 * loop callbacks into Lua (see loop.h).
 *
 * Callbacks run on a Lua thread of their own (lua_newthread, anchored in the registry):
 * libuv calls us back from inside uv_run with no Lua frame of ours at hand, and the thread
 * that called core.run may be a coroutine that must not be re-entered. lua_cpcall makes
 * even pushing the arguments (which allocates) protected, so a memory error cannot
 * longjmp through libuv's frames.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11; sigaction */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "binding.h"
#include "loop.h"

#define LOOP_KEY "helios.core.loop"
#define LOOP_MT "helios.core.loop"
#define TIMER_MT "helios.core.timer"

struct hr__lloop {
    uv_loop_t loop;
    lua_State *cbL; /* the callback thread */
    int users;      /* the registry box + every C object that points here */
    bool dead;      /* the box was finalized (lua_close): no new work */
    bool running;
    char *error; /* first failure of a callback since the last core.run returned */
    int cpcall_ref, protected_ref, traceback_ref; /* see "cached" below */
};

struct loop_box {
    struct hr__lloop *lp;
};

static void loop_free(struct hr__lloop *lp)
{
    /* Handles still open (objects the collector never finalized) keep the loop: leaking
     * it at exit is better than closing memory that a later close callback would use. */
    if (uv_loop_close(&lp->loop) != 0) {
        return;
    }
    free(lp->error);
    free(lp);
}

void hr__loop_retain(struct hr__lloop *lp)
{
    lp->users++;
}

void hr__loop_release(struct hr__lloop *lp)
{
    if (--lp->users == 0 && lp->dead) {
        loop_free(lp);
    }
}

bool hr__loop_dead(const struct hr__lloop *lp)
{
    return lp->dead;
}

struct uv_loop_s *hr__loop_uv(struct hr__lloop *lp)
{
    return &lp->loop;
}

static int loop_gc(lua_State *L)
{
    struct loop_box *b = lua_touserdata(L, 1);
    if (b->lp != NULL) {
        struct hr__lloop *lp = b->lp;
        b->lp = NULL;
        lp->dead = true;
        lp->cbL = NULL; /* collected with the state */
        hr__loop_release(lp);
    }
    return 0;
}

/* The functions every call from the loop goes through are cached in the registry: made
 * per call (lua_cpcall makes a C function object each time, and so did pushing the
 * traceback handler) they were two objects for the collector per applied entry, per
 * request of the RESP port, per timer. (Not on the callback thread's stack: a call may
 * come while a callback runs on it, where the stack's indexes are that frame's.) */

struct cpcall_ctx {
    lua_CFunction fn;
    void *ud;
};

/* lua_cpcall's contract, from a cached function: fn runs with ud at index 1. */
static int cpcall_tramp(lua_State *L)
{
    struct cpcall_ctx *c = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_pushlightuserdata(L, c->ud);
    return c->fn(L);
}

static int protected_call(lua_State *L);

/* libuv writes to sockets with plain write(): once a peer has reset a connection (a node
 * of this process or another that shut down with bytes unread), the next write raises
 * SIGPIPE, whose default action ends the process without a word. Every stream of the
 * loop (transport, control socket, RESP and metrics servers) handles EPIPE as an error of
 * that connection, so the signal is ignored, unless the program installed a handler of
 * its own. (The helios CLI does the same with core.signal_ignore.) Children started by
 * core.proc_spawn get the default back before exec. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
        old.sa_handler == SIG_DFL) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGPIPE, &sa, NULL);
    }
}

struct hr__lloop *hr__loop_get(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
    if (lua_isuserdata(L, -1)) {
        struct loop_box *b = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (b->lp == NULL) {
            luaL_error(L, "helios.core: the loop is closed");
        }
        return b->lp;
    }
    lua_pop(L, 1);

    struct loop_box *b = lua_newuserdata(L, sizeof *b);
    b->lp = NULL;
    if (luaL_newmetatable(L, LOOP_MT)) {
        lua_pushliteral(L, LOOP_MT);
        lua_setfield(L, -2, "__name");
        lua_pushcfunction(L, loop_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    /* The callback thread is anchored in the box's environment: it lives as long as the
     * loop does. */
    lua_createtable(L, 1, 0);
    lua_State *cbL = lua_newthread(L);
    lua_rawseti(L, -2, 1);
    lua_setfenv(L, -2);

    struct hr__lloop *lp = calloc(1, sizeof *lp);
    if (lp == NULL) {
        luaL_error(L, "helios.core: out of memory");
    }
    int rc = uv_loop_init(&lp->loop);
    if (rc != 0) {
        free(lp);
        luaL_error(L, "helios.core: uv_loop_init: %s", uv_strerror(rc));
    }
    ignore_sigpipe();
    lp->cbL = cbL;
    lp->users = 1;
    lua_pushcfunction(L, cpcall_tramp);
    lp->cpcall_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, protected_call);
    lp->protected_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, hr__lsim_traceback);
    lp->traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    b->lp = lp;
    lua_setfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
    return lp;
}

int hr__loop_cpcall(struct hr__lloop *lp, lua_CFunction fn, void *ud)
{
    if (lp->dead || lp->cbL == NULL) {
        return LUA_ERRRUN;
    }
    lua_State *L = lp->cbL;
    int top = lua_gettop(L);
    struct cpcall_ctx c = {fn, ud};
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->cpcall_ref);
    lua_pushlightuserdata(L, &c);
    int rc = lua_pcall(L, 1, 0, 0);
    lua_settop(L, top);
    return rc;
}

void hr__loop_unref(struct hr__lloop *lp, int ref)
{
    if (lp->cbL != NULL && ref != LUA_NOREF) {
        luaL_unref(lp->cbL, LUA_REGISTRYINDEX, ref);
    }
}

void hr__loop_fail(struct hr__lloop *lp, const char *msg)
{
    if (lp->error == NULL) {
        size_t len = strlen(msg);
        lp->error = malloc(len + 1);
        if (lp->error != NULL) {
            memcpy(lp->error, msg, len + 1);
        }
    }
    uv_stop(&lp->loop);
}

struct call_ctx {
    int (*push)(lua_State *L, void *arg);
    void *arg;
};

/* (ctx, traceback): push the function and its arguments, call it under the traceback. */
static int protected_call(lua_State *L)
{
    struct call_ctx *c = lua_touserdata(L, 1);
    int handler = 2;
    lua_settop(L, handler);
    int nargs = c->push(L, c->arg);
    if (lua_pcall(L, nargs, 0, handler) != 0) {
        lua_error(L);
    }
    return 0;
}

static void report_fail(void *ctx, const char *msg)
{
    hr__loop_fail(ctx, msg);
}

static int call(struct hr__lloop *lp, int (*push)(lua_State *L, void *arg), void *arg,
                const char *what, void (*describe)(void *arg, char *buf, size_t len))
{
    if (lp->dead || lp->cbL == NULL) {
        return -1;
    }
    lua_State *L = lp->cbL;
    int top = lua_gettop(L);
    struct call_ctx c = {push, arg};
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->protected_ref);
    lua_pushlightuserdata(L, &c);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->traceback_ref);
    int rc = lua_pcall(L, 2, 0, 0);
    if (rc != 0) {
        char buf[256];
        if (describe != NULL) {
            describe(arg, buf, sizeof buf);
            what = buf;
        }
        hr__lua_report_error(L, rc, what, ": ", report_fail, lp);
    }
    lua_settop(L, top);
    return rc == 0 ? 0 : -1;
}

int hr__loop_call(struct hr__lloop *lp, int (*push)(lua_State *L, void *arg), void *arg,
                  const char *what)
{
    return call(lp, push, arg, what, NULL);
}

int hr__loop_call_described(struct hr__lloop *lp, int (*push)(lua_State *L, void *arg), void *arg,
                            void (*describe)(void *arg, char *buf, size_t len))
{
    return call(lp, push, arg, NULL, describe);
}

/* core.run([mode]) -> true, alive | nil, err */
static int l_run(lua_State *L)
{
    static const char *const modes[] = {"default", "once", "nowait", NULL};
    static const uv_run_mode uv_modes[] = {UV_RUN_DEFAULT, UV_RUN_ONCE, UV_RUN_NOWAIT};
    int mode = luaL_checkoption(L, 1, "default", modes);
    struct hr__lloop *lp = hr__loop_get(L);
    if (lp->running) {
        return luaL_error(L, "Usage: core.run(mode): the loop is already running (a loop "
                             "callback cannot run the loop)");
    }
    lp->running = true;
    int alive = uv_run(&lp->loop, uv_modes[mode]);
    lp->running = false;
    if (lp->error != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, lp->error);
        free(lp->error);
        lp->error = NULL;
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_pushboolean(L, alive != 0);
    return 2;
}

static int l_stop(lua_State *L)
{
    uv_stop(&hr__loop_get(L)->loop);
    return 0;
}

/* core.fail(msg): record msg as the loop's failure (if it is the first) and stop the loop,
 * for Lua code that catches an error where no C caller would see it (a coroutine resumed
 * from a callback). */
static int l_fail(lua_State *L)
{
    hr__loop_fail(hr__loop_get(L), luaL_checkstring(L, 1));
    return 0;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)uv_now(&hr__loop_get(L)->loop));
    return 1;
}

static int l_running(lua_State *L)
{
    lua_pushboolean(L, hr__loop_get(L)->running);
    return 1;
}

/* Timers. The handle lives in malloc'd memory (libuv owns it until its close callback);
 * the userdata points at it. While armed, the registry holds the function and the
 * userdata, so a timer nobody references still fires. */
struct timer_h {
    uv_timer_t t;
    struct hr__lloop *lp;
    int fn_ref, self_ref; /* LUA_NOREF while disarmed */
    bool repeat;
};

struct timer_ud {
    struct timer_h *h;
};

static void disarm(struct timer_h *h)
{
    if (h->fn_ref == LUA_NOREF) {
        return;
    }
    uv_timer_stop(&h->t);
    lua_State *L = h->lp->cbL;
    if (L != NULL) {
        luaL_unref(L, LUA_REGISTRYINDEX, h->fn_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, h->self_ref);
    }
    h->fn_ref = h->self_ref = LUA_NOREF;
}

static int push_timer_fn(lua_State *L, void *arg)
{
    struct timer_h *h = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn_ref);
    return 0;
}

static void timer_cb(uv_timer_t *t)
{
    struct timer_h *h = t->data;
    if (h->fn_ref == LUA_NOREF) {
        return;
    }
    /* A one-shot timer is disarmed after its call; the function stays referenced until
     * then (hr__loop_call pushes it from the registry). */
    hr__loop_call(h->lp, push_timer_fn, h, "timer callback");
    if (!h->repeat) {
        disarm(h);
    }
}

static void timer_closed(uv_handle_t *handle)
{
    struct timer_h *h = handle->data;
    struct hr__lloop *lp = h->lp;
    free(h);
    hr__loop_release(lp);
}

static struct timer_ud *check_timer(lua_State *L)
{
    return luaL_checkudata(L, 1, TIMER_MT);
}

static int l_timer_stop(lua_State *L)
{
    struct timer_ud *u = check_timer(L);
    if (u->h != NULL) {
        disarm(u->h);
    }
    return 0;
}

static int l_timer_active(lua_State *L)
{
    struct timer_ud *u = check_timer(L);
    lua_pushboolean(L, u->h != NULL && u->h->fn_ref != LUA_NOREF);
    return 1;
}

static int l_timer_gc(lua_State *L)
{
    struct timer_ud *u = check_timer(L);
    struct timer_h *h = u->h;
    u->h = NULL;
    if (h != NULL) {
        if (h->lp->dead) {
            return 0; /* the loop is gone with the state: leave the handle */
        }
        disarm(h);
        uv_close((uv_handle_t *)&h->t, timer_closed);
    }
    return 0;
}

static int l_timer_tostring(lua_State *L)
{
    struct timer_ud *u = check_timer(L);
    lua_pushfstring(L, "helios.core.timer (%s)",
                    u->h != NULL && u->h->fn_ref != LUA_NOREF ? "armed" : "stopped");
    return 1;
}

static uint64_t check_ms(lua_State *L, int idx, const char *name)
{
    lua_Number v = luaL_checknumber(L, idx);
    if (v < 0 || v != (lua_Number)(uint64_t)v || v > 9007199254740992.0) {
        luaL_error(L, "Usage: core.timer(ms, repeat_ms, fn): %s must be a non-negative integer",
                   name);
    }
    return (uint64_t)v;
}

/* core.timer(ms, repeat_ms, fn) -> timer */
static int l_timer(lua_State *L)
{
    uint64_t ms = check_ms(L, 1, "ms");
    uint64_t repeat = lua_isnoneornil(L, 2) ? 0 : check_ms(L, 2, "repeat_ms");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    struct hr__lloop *lp = hr__loop_get(L);

    struct timer_ud *u = lua_newuserdata(L, sizeof *u);
    u->h = NULL;
    luaL_getmetatable(L, TIMER_MT);
    lua_setmetatable(L, -2);
    struct timer_h *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return luaL_error(L, "core.timer: out of memory");
    }
    uv_timer_init(&lp->loop, &h->t);
    h->t.data = h;
    h->lp = lp;
    h->repeat = repeat > 0;
    hr__loop_retain(lp);
    u->h = h;
    lua_pushvalue(L, 3);
    h->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    h->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* libuv counts a timer from the loop's cached time, which only a running loop
     * refreshes: a timer armed between two runs (a deadline before raft.run()) would
     * count from the end of the previous run and could fire at once. */
    if (!lp->running) {
        uv_update_time(&lp->loop);
    }
    uv_timer_start(&h->t, timer_cb, ms, repeat);
    return 1;
}


/* Waiting for a descriptor: core.watch_fd(fd, events, timeout_ms, fn) calls fn once, from
 * the loop, with true when fd is ready for events ("r", "w" or "rw"), nil, "timeout" when
 * timeout_ms passed first, or nil, "io", detail. helios.loop.wait_fd resumes a coroutine
 * from fn: that is how a blocking Lua call (helios.client) yields to the loop instead of
 * blocking it. One wait per descriptor at a time (libuv allows one poll handle per fd).
 *
 * Both handles are stopped and closed before fn runs: fn may close fd, and a new socket
 * may get the same number and be watched at once; closing the poll handle removes fd from
 * the loop's epoll set now, so the new watch is not disturbed by this one. */
struct fd_wait {
    uv_poll_t poll;
    uv_timer_t timer;
    struct hr__lloop *lp;
    int fn_ref;
    int open; /* handles not yet closed */
    int status; /* 0 ready, 1 timeout, < 0 a libuv error */
};

static void fd_wait_closed(uv_handle_t *handle)
{
    struct fd_wait *w = handle->data;
    if (--w->open == 0) {
        struct hr__lloop *lp = w->lp;
        free(w);
        hr__loop_release(lp);
    }
}

static int push_fd_wait(lua_State *L, void *arg)
{
    struct fd_wait *w = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->fn_ref);
    if (w->status == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    if (w->status == 1) {
        lua_pushliteral(L, "timeout");
        lua_pushliteral(L, "not ready within the timeout");
    } else {
        lua_pushliteral(L, "io");
        lua_pushstring(L, uv_strerror(w->status));
    }
    return 3;
}

static void fd_wait_done(struct fd_wait *w, int status)
{
    if (w->fn_ref == LUA_NOREF) {
        return;
    }
    w->status = status;
    uv_poll_stop(&w->poll);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->poll, fd_wait_closed);
    uv_close((uv_handle_t *)&w->timer, fd_wait_closed);
    if (!w->lp->dead) {
        hr__loop_call(w->lp, push_fd_wait, w, "fd wait callback");
        hr__loop_unref(w->lp, w->fn_ref);
    }
    w->fn_ref = LUA_NOREF;
}

static void fd_wait_poll_cb(uv_poll_t *p, int status, int events)
{
    (void)events;
    fd_wait_done(p->data, status < 0 ? status : 0);
}

static void fd_wait_timer_cb(uv_timer_t *t)
{
    fd_wait_done(t->data, 1);
}

uint64_t hr__loop_timeout_ms(lua_Number ms)
{
    /* A fraction of a millisecond is waited in full: never less than asked. */
    if (ms > 9007199254740992.0) {
        return (uint64_t)9007199254740992.0;
    }
    if (!(ms > 0)) {
        return 0;
    }
    uint64_t whole = (uint64_t)ms;
    return whole + ((lua_Number)whole < ms);
}

/* core.watch_fd(fd, events, timeout_ms, fn) */
static int l_watch_fd(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    const char *ev = luaL_checkstring(L, 2);
    lua_Number tms = luaL_checknumber(L, 3);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    uint64_t ms = hr__loop_timeout_ms(tms);
    int events = (strchr(ev, 'r') ? UV_READABLE : 0) | (strchr(ev, 'w') ? UV_WRITABLE : 0);
    if (fd < 0 || events == 0) {
        return luaL_error(L, "Usage: core.watch_fd(fd, events, timeout_ms, fn): events is "
                             "\"r\", \"w\" or \"rw\"");
    }
    struct hr__lloop *lp = hr__loop_get(L);
    struct fd_wait *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return luaL_error(L, "core.watch_fd: out of memory");
    }
    int rc = uv_poll_init(&lp->loop, &w->poll, fd);
    if (rc != 0) {
        free(w);
        return hr__lua_push_fail(L, "io", uv_strerror(rc));
    }
    uv_timer_init(&lp->loop, &w->timer);
    w->poll.data = w->timer.data = w;
    w->lp = lp;
    w->open = 2;
    hr__loop_retain(lp);
    lua_pushvalue(L, 4);
    w->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!lp->running) {
        uv_update_time(&lp->loop);
    }
    rc = uv_poll_start(&w->poll, events, fd_wait_poll_cb);
    if (rc != 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, w->fn_ref);
        w->fn_ref = LUA_NOREF;
        uv_close((uv_handle_t *)&w->poll, fd_wait_closed);
        uv_close((uv_handle_t *)&w->timer, fd_wait_closed);
        return hr__lua_push_fail(L, "io", uv_strerror(rc));
    }
    uv_timer_start(&w->timer, fd_wait_timer_cb, ms, 0);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg timer_methods[] = {
    {"stop", l_timer_stop},
    {"active", l_timer_active},
    {NULL, NULL},
};

static const luaL_Reg functions[] = {
    {"run", l_run},
    {"stop", l_stop},
    {"now", l_now},
    {"running", l_running},
    {"fail", l_fail},
    {"timer", l_timer},
    {"watch_fd", l_watch_fd},
    {NULL, NULL},
};

int hr__lua_open_loop(lua_State *L)
{
    hr__lua_new_class(L, TIMER_MT, timer_methods, l_timer_gc, l_timer_tostring);
    luaL_register(L, NULL, functions);
    return 0;
}
