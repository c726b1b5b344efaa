/*
 * signal_binding.c: SIGTERM, SIGINT and SIGHUP as polled flags, so `helios node` can shut
 * down cleanly and reopen its log file (docs/logging.md).
 *
 *   local core = require("helios.core")
 *   core.signal_catch("TERM")  core.signal_catch("INT")
 *   core.signal_ignore("PIPE")           -- writes to a closed socket fail with EPIPE
 *   raft.every(50, function()
 *       local sig = core.signal_take()   -- "TERM", "INT", "HUP" or nil; clears it
 *       if sig then node:shutdown() end
 *   end)
 *
 * Why polling rather than uv_signal: the handler must not depend on which loop (or whether
 * any loop) runs; a flag read by a timer works with every loop, and 50 ms of latency on a
 * shutdown request does not matter. The handler only writes a sig_atomic_t, which is all a
 * signal handler may safely do.
 */
#define _GNU_SOURCE /* sigaction under -std=c11 */
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include <lauxlib.h>

#include "os.h"
#include "signal_binding.h"

/* One flag per catchable signal: a SIGHUP (reopen the log file) arriving just after a
 * SIGTERM must not overwrite the request to stop. */
static volatile sig_atomic_t pending_term, pending_int, pending_hup;

static void on_signal(int sig)
{
    if (sig == SIGTERM) {
        pending_term = 1;
    } else if (sig == SIGINT) {
        pending_int = 1;
    } else if (sig == SIGHUP) {
        pending_hup = 1;
    }
}

/* The signals that may be caught: those that ask a process to stop or reload. */
static bool catchable(int sig)
{
    return sig == SIGTERM || sig == SIGINT || sig == SIGHUP;
}

static int check_sig(lua_State *L, int idx)
{
    int sig = hr__lua_signal_number(luaL_checkstring(L, idx));
    if (!catchable(sig)) {
        return luaL_error(L, "Usage: signal_catch(\"TERM\" | \"INT\" | \"HUP\")");
    }
    return sig;
}

static int l_catch(lua_State *L)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: a signal must not fail a blocking read or write somewhere with EINTR. */
    sa.sa_flags = SA_RESTART;
    if (sigaction(check_sig(L, 1), &sa, NULL) < 0) {
        return luaL_error(L, "signal_catch: sigaction failed");
    }
    return 0;
}

/* SIGPIPE: a peer that closes its socket while we write to it must be an EPIPE error on
 * that socket, not the death of the process (libuv writes with plain write()). */
static int l_ignore(lua_State *L)
{
    if (hr__lua_signal_number(luaL_checkstring(L, 1)) != SIGPIPE) {
        return luaL_error(L, "Usage: signal_ignore(\"PIPE\")");
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* The stop requests first (TERM, then INT), then HUP; each is cleared as it is taken, so
 * a caller that loops until nil sees every kind that arrived. */
static int l_take(lua_State *L)
{
    int sig = 0;
    if (pending_term) {
        pending_term = 0;
        sig = SIGTERM;
    } else if (pending_int) {
        pending_int = 0;
        sig = SIGINT;
    } else if (pending_hup) {
        pending_hup = 0;
        sig = SIGHUP;
    }
    if (sig != 0) {
        lua_pushstring(L, hr__lua_signal_name(sig));
    } else {
        lua_pushnil(L);
    }
    return 1;
}

int hr__lua_open_signal(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"signal_catch", l_catch},
                                      {"signal_take", l_take},
                                      {"signal_ignore", l_ignore},
                                      {NULL, NULL}};
    luaL_register(L, NULL, funcs);
    return 0;
}
