/*
 * signal_binding.c: SIGTERM and SIGINT as polled flags, so `helios node` can shut down
 * cleanly.
 *
 *   local core = require("helios.core")
 *   core.signal_catch("TERM")  core.signal_catch("INT")
 *   core.signal_ignore("PIPE")           -- writes to a closed socket fail with EPIPE
 *   raft.every(50, function()
 *       local sig = core.signal_take()   -- "TERM", "INT" or nil; clears it
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
#include <string.h>

#include <lauxlib.h>

#include "signal_binding.h"

static volatile sig_atomic_t pending;

static void on_signal(int sig)
{
    pending = sig;
}

static int check_sig(lua_State *L, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    if (strncmp(name, "SIG", 3) == 0) {
        name += 3;
    }
    if (strcmp(name, "TERM") == 0) return SIGTERM;
    if (strcmp(name, "INT") == 0) return SIGINT;
    if (strcmp(name, "HUP") == 0) return SIGHUP;
    return luaL_error(L, "Usage: signal_catch(\"TERM\" | \"INT\" | \"HUP\")");
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
    const char *name = luaL_checkstring(L, 1);
    if (strcmp(name, "PIPE") != 0 && strcmp(name, "SIGPIPE") != 0) {
        return luaL_error(L, "Usage: signal_ignore(\"PIPE\")");
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int l_take(lua_State *L)
{
    int sig = pending;
    pending = 0;
    switch (sig) {
    case SIGTERM: lua_pushliteral(L, "TERM"); break;
    case SIGINT: lua_pushliteral(L, "INT"); break;
    case SIGHUP: lua_pushliteral(L, "HUP"); break;
    default: lua_pushnil(L); break;
    }
    return 1;
}

int hr__lua_open_signal(lua_State *L)
{
    lua_pushcfunction(L, l_catch);
    lua_setfield(L, -2, "signal_catch");
    lua_pushcfunction(L, l_take);
    lua_setfield(L, -2, "signal_take");
    lua_pushcfunction(L, l_ignore);
    lua_setfield(L, -2, "signal_ignore");
    return 0;
}
