/*
 * client_binding.h: the process-tooling part of the Lua module `helios.core`
 * (csrc/lua/client_binding.c): a socket client that speaks our frames (the control socket's
 * client, helios.client: non-blocking steps, and blocking forms that poll between them).
 * luaopen_helios_core calls hr__lua_open_client once, with the module table at the top of
 * the stack.
 * Threading: the thread that owns the lua_State. A blocking form blocks at most its
 * timeout; the try_* steps never block.
 */
#ifndef HR_LUA_CLIENT_BINDING_H
#define HR_LUA_CLIENT_BINDING_H

#include <lua.h>

/* Add sock_connect, sock_connect_start, sock_listen, sock_poll, poll_fd and frame_encode
 * to the table at the top of the stack (left there). Returns 0. */
int hr__lua_open_client(lua_State *L);

/* Push fd (owned from now on) as a socket object of client_binding.c. */
void hr__lua_push_sock(lua_State *L, int fd);

#endif
