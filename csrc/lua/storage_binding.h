/*
 * storage_binding.h: the durable-storage part of the Lua module `helios.core`
 * (csrc/lua/storage_binding.c). luaopen_helios_core calls hr__lua_open_storage once,
 * with the module table at the top of the stack.
 * Threading: the thread that owns the lua_State.
 */
#ifndef HR_LUA_STORAGE_BINDING_H
#define HR_LUA_STORAGE_BINDING_H

#include <lua.h>

/* Add storage_open, storage_inspect and storage_bench to the table at the top of the
 * stack (left there). Returns 0. */
int hr__lua_open_storage(lua_State *L);

#endif
