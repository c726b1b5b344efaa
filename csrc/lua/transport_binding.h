/*
 * transport_binding.h: the wire protocol from Lua (csrc/lua/transport_binding.c), for specs
 * and fuzz-like tests: encode and decode frames, a blocking raw TCP client, and the client
 * side of the peer handshake. luaopen_helios_core calls hr__lua_open_transport once, with
 * the module table at the top of the stack.
 * Threading: the thread that owns the lua_State.
 */
#ifndef HR_LUA_TRANSPORT_BINDING_H
#define HR_LUA_TRANSPORT_BINDING_H

#include <lua.h>

/* Add wire_encode, wire_decode, wire_frame, wire_handshake, raw_connect and node_id to the
 * table at the top of the stack (left there). Returns 0. */
int hr__lua_open_transport(lua_State *L);

#endif
