/*
 * signal_binding.h: catching SIGTERM and SIGINT for a clean shutdown, ignoring SIGPIPE
 * (csrc/lua/signal_binding.c), part of the Lua module `helios.core`. luaopen_helios_core
 * calls hr__lua_open_signal once, with the module table at the top of the stack.
 * Threading: the handler only stores the signal number; Lua polls it from the loop thread.
 */
#ifndef HR_LUA_SIGNAL_BINDING_H
#define HR_LUA_SIGNAL_BINDING_H

#include <lua.h>

/* Add signal_catch, signal_take and signal_ignore to the table at the top of the stack
 * (left there). Returns 0. */
int hr__lua_open_signal(lua_State *L);

#endif
