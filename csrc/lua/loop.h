/*
 * loop.h: the libuv loop of a lua_State, and the one way loop callbacks call into Lua.
 *
 *   local core = require("helios.core")
 *   local t = core.timer(100, 0, function() print("later") end)  -- t:stop()
 *   local ok, err = core.run("default")   -- "default" | "once" | "nowait"
 *   core.stop()   core.now()   core.running()
 *   core.fail(msg)   -- record a failure for core.run to return (first wins), stop the loop
 *   core.watch_fd(fd, "r" | "w" | "rw", timeout_ms, fn)  -- fn(true) once fd is ready,
 *                    -- fn(nil, "timeout") or fn(nil, "io", detail): once (helios.loop)
 *
 * Each lua_State gets one uv loop, created on first use and kept in the registry. Every Lua
 * function a loop callback runs goes through hr__loop_call(): protected, with a traceback,
 * on a dedicated Lua thread (so a callback never runs on the stack of a coroutine that
 * happens to have called core.run). A failure is recorded (the first one wins) and stops
 * the loop; core.run then returns nil and that message. Nothing here exits the process.
 *
 * Threading: everything runs on the thread that owns the lua_State (the loop's thread).
 * Ownership: the loop belongs to the lua_State; C objects that keep pointers to it
 * (timers, nodes, control servers) hold a use count (hr__loop_retain/release) so that the
 * struct outlives them even when the garbage collector finalizes the loop first.
 */
#ifndef HR_LUA_LOOP_H
#define HR_LUA_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

struct uv_loop_s;
struct hr__lloop;

/* The loop of L's global state, created on first use (raises on failure). */
struct hr__lloop *hr__loop_get(lua_State *L);
struct uv_loop_s *hr__loop_uv(struct hr__lloop *lp);
/* True once the loop is being finalized: do not start new work on it. */
bool hr__loop_dead(const struct hr__lloop *lp);

/* Keep lp allocated while a C object points at it. */
void hr__loop_retain(struct hr__lloop *lp);
void hr__loop_release(struct hr__lloop *lp);

/* Call Lua from a loop callback. push(L, arg) runs protected on the callback thread: it
 * pushes a function and its arguments and returns the number of arguments; the function
 * is then called (protected, with a traceback handler), its results dropped. On failure
 * the message ("<what>: <error and traceback>") is recorded and the loop stopped; returns
 * -1. Returns 0 on success. */
int hr__loop_call(struct hr__lloop *lp, int (*push)(lua_State *L, void *arg), void *arg,
                  const char *what);
/* As hr__loop_call, for calls made per log entry: the "<what>" is written by
 * describe(arg, buf, len) on failure only, not formatted for every call. */
int hr__loop_call_described(struct hr__lloop *lp, int (*push)(lua_State *L, void *arg), void *arg,
                            void (*describe)(void *arg, char *buf, size_t len));
/* lua_cpcall(fn, ud) on the callback thread, for C that only needs a protected Lua
 * context (making a userdata) and no function call; the stack is restored. 0 or the
 * lua_cpcall status (the error is discarded). */
int hr__loop_cpcall(struct hr__lloop *lp, lua_CFunction fn, void *ud);
/* A timeout in milliseconds for a libuv timer: a fraction is waited in full (never less
 * than asked), a negative or NaN one is 0, and it is capped at 2^53. */
uint64_t hr__loop_timeout_ms(lua_Number ms);
/* luaL_unref from the registry without a lua_State at hand (no-op once dead). */
void hr__loop_unref(struct hr__lloop *lp, int ref);
/* Record a failure (only the first is kept) and stop the loop. */
void hr__loop_fail(struct hr__lloop *lp, const char *msg);

/* Add run, stop, now, running, fail, timer and watch_fd to the module table at the top of
 * the stack. Returns 0. */
int hr__lua_open_loop(lua_State *L);
/* Add core.watch_sock (sock_watch.c) to the module table at the top of the stack. */
void hr__lua_open_sock_watch(lua_State *L);

#endif
