/*
 * client_binding.h: the process-tooling part of the Lua module `helios.core`
 * (csrc/lua/client_binding.c): a blocking socket client that speaks our frames (the
 * control socket's client, helios.client).
 * luaopen_helios_core calls hr__lua_open_client once, with the module table at the top of
 * the stack.
 * Threading: the thread that owns the lua_State. Every call blocks at most its timeout.
 */
#ifndef HR_LUA_CLIENT_BINDING_H
#define HR_LUA_CLIENT_BINDING_H

#include <lua.h>

/* Add sock_connect, sock_listen, sock_poll and frame_encode to the table at the top of
 * the stack (left there). Returns 0. */
int hr__lua_open_client(lua_State *L);

/* Push fd (owned from now on) as a socket object of client_binding.c. */
void hr__lua_push_sock(lua_State *L, int fd);

#endif
