/*
 * proxy.h: loopback TCP proxies that can cut links between nodes (csrc/lua/proxy.c), the
 * network faults of helios.testing, as part of the Lua module `helios.core`.
 * luaopen_helios_core calls hr__lua_open_proxy once, with the module table at the top of
 * the stack.
 * Threading: core.proxy_main runs a private libuv loop on the calling thread until "quit"
 * or the end of stdin; it is meant for a helper process of its own.
 */
#ifndef HR_LUA_PROXY_H
#define HR_LUA_PROXY_H

#include <lua.h>

/* Add proxy_main to the table at the top of the stack (left there). Returns 0. */
int hr__lua_open_proxy(lua_State *L);

#endif
