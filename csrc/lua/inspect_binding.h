/*
 * inspect_binding.h: core.storage_inspect, the offline check of a data directory behind
 * `helios inspect` (lua/helios/cli.lua), part of the Lua module `helios.core`
 * (csrc/lua/inspect_binding.c). luaopen_helios_core calls hr__lua_open_inspect once, with
 * the module table at the top of the stack.
 * Threading: the thread that owns the lua_State; the call blocks while it reads the files.
 */
#ifndef HR_LUA_INSPECT_BINDING_H
#define HR_LUA_INSPECT_BINDING_H

#include <lua.h>

/* Add storage_inspect to the table at the top of the stack (left there). Returns 0. */
int hr__lua_open_inspect(lua_State *L);

#endif
