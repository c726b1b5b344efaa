/*
 * control.h: the control socket server (csrc/lua/control.c) on the loop of helios.core.
 *
 *   local srv, code, msg = core.control_listen("/path/control.sock", function(req, reply)
 *       reply({ id = req.id, ok = true })     -- reply(tbl) -> true, or false if the
 *   end, { max_clients = 10000 })             -- connection is gone; may be called later
 *   srv:close()                               -- stops listening, closes connections,
 *                                             -- removes the socket file
 *   srv:clients()                             -- { clients =, refused =, max_clients = }
 *
 * Connections: the listen backlog is listener.c's (511, or somaxconn when lower). A client
 * beyond max_clients (default 10000) open connections is accepted and gets one frame,
 * { ok = false, code = "busy", detail = "max number of clients reached ..." } (no id: it
 * answers no request), then end of file (listener.h, "Admission").
 *
 * A unix socket created with mode 0600. A live socket at the path (one that accepts a
 * connection) makes control_listen fail with "busy"; a stale one is removed; any other
 * file there is left alone and refused. Frames: 4-byte big-endian payload length, 4-byte
 * big-endian CRC32C of the payload, the payload (one msgpack map). A frame that is too
 * large (HR_CONTROL_MAX_FRAME), fails its checksum, is not valid msgpack or not a map
 * closes that connection; the server goes on. Each request is decoded to a Lua table and
 * passed to the handler (a protected loop call: an error stops core.run, see loop.h).
 * Threading: the loop's thread.
 */
#ifndef HR_LUA_CONTROL_H
#define HR_LUA_CONTROL_H

#include <lua.h>

#define HR_CONTROL_MAX_FRAME (16u * 1024 * 1024)

/* Add control_listen to the module table at the top of the stack. Returns 0. */
int hr__lua_open_control(lua_State *L);

#endif
