/*
 * os.h: what several bindings of `helios.core` need from the operating system, kept in one
 * place: signal names (proc_binding.c, signal_binding.c, fork_snapshot.c) and a monotonic
 * clock in milliseconds (proc_binding.c, client_binding.c, fork_snapshot.c). helios.testkit
 * links its own copy, for its copy of client_binding.c.
 *
 * Signal names are the Lua API's: upper-case and without "SIG" ("TERM", "KILL"), as
 * core.proc_kill, core.proc_wait, core.signal_catch and core.signal_take take and return
 * them (docs/lua-api.md).
 *
 * Threading: no state; safe from any thread (not from a signal handler), and
 * hr__lua_close_fds also in a child between fork and exec.
 */
#ifndef HR_LUA_OS_H
#define HR_LUA_OS_H

/* The number of a signal named "TERM" or "SIGTERM", or 0 if it is not one the bindings
 * know (TERM KILL INT STOP CONT HUP QUIT USR1 USR2 ABRT SEGV BUS PIPE). */
int hr__lua_signal_number(const char *name);
/* The name of signal sig ("TERM"), or NULL if it is not one of those above. */
const char *hr__lua_signal_name(int sig);

/* Milliseconds of CLOCK_MONOTONIC, with a fractional part (latency measurements need
 * better than 1 ms). For deadlines and durations: it does not jump with the wall clock. */
double hr__lua_clock_ms(void);

/* Close every fd in [first, last] (first at least 3: stdio stays), CLOEXEC or not: for a
 * forked child, so that it holds no copy of the parent's descriptors (sockets, pipes, the
 * data dir's flock) for longer than it must. close_range, else one close per fd below the
 * open-file limit. */
void hr__lua_close_fds(int first, int last);

#endif
