/*
 * resp_server.h: the Redis-protocol client port of helios.core (core.resp_listen; the API
 * is at the top of resp_server.c, the commands in lua/helios/resp.lua).
 *
 * Threading: everything runs on the thread that owns the lua_State (the loop's thread).
 */
#ifndef HR_LUA_RESP_SERVER_H
#define HR_LUA_RESP_SERVER_H

#include <lua.h>

/* Add resp_listen, resp_encode and resp_parse to the module table at the top of the stack.
 * Returns 0. */
int hr__lua_open_resp(lua_State *L);

#endif
