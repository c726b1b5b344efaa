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
 * Threading: no state; safe from any thread (not from a signal handler).
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

#endif
