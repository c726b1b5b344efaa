/*
 * proc_binding.h: child processes and loopback ports (csrc/lua/proc_binding.c), part of the
 * Lua module `helios.core` because `helios cluster` (lua/helios/cli.lua) starts its nodes
 * with them; helios.testing uses them too. luaopen_helios_core calls hr__lua_open_proc
 * once, with the module table at the top of the stack.
 * Threading: the thread that owns the lua_State. proc_wait and sleep_ms block the caller
 * for at most their timeout.
 */
#ifndef HR_LUA_PROC_BINDING_H
#define HR_LUA_PROC_BINDING_H

#include <lua.h>

/* Add proc_spawn, proc_kill, proc_wait, free_port, sleep_ms, clock_ms and mkdir_p to the
 * table at the top of the stack (left there). Returns 0. (A test's own pid is
 * helios.testkit's getpid.) */
int hr__lua_open_proc(lua_State *L);

#endif
