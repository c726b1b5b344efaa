/*
 * resp_server.h: the Redis-protocol client port of helios.core (core.resp_listen; the API
 * is at the top of resp_server.c, the commands in lua/helios/resp.lua) and the encoding of
 * Lua values as replies it shares with resp_reply.c.
 *
 * Threading: everything runs on the thread that owns the lua_State (the loop's thread).
 */
#ifndef HR_LUA_RESP_SERVER_H
#define HR_LUA_RESP_SERVER_H

#include <lua.h>

struct hr_resp_buf;
struct hr_resp_limits;

/* Add resp_listen to the module table at the top of the stack. Returns 0. */
int hr__lua_open_resp(lua_State *L);

/* resp_reply.c. Field key of the options table at idx (absent or nil: def), an integer in
 * 1..max; raises naming the field otherwise. */
size_t hr__resp_opt_size(lua_State *L, int idx, const char *key, size_t def, size_t max);
/* The parser's limits from the options table at idx (absent or nil: the defaults of
 * csrc/transport/resp.h): max_args, max_bulk, max_inline. Raises naming a bad field. */
void hr__resp_read_limits(lua_State *L, int idx, struct hr_resp_limits *lim);

/* resp_reply.c. The Lua value at idx as a reply, appended to b: 0, -1 when memory runs
 * out, -2 for a value with no RESP form (a function, userdata, thread, arrays nested more
 * than 32 deep). It does not raise (but for a Lua allocation failure), so that the caller
 * can free b; b stays the caller's either way. */
int hr__resp_encode_lua(lua_State *L, int idx, struct hr_resp_buf *b, int depth);
/* The message for a failed hr__resp_encode_lua (its return code). */
const char *hr__resp_encode_error(int rc);
/* Add resp_encode and resp_parse to the module table at the top of the stack (helios.testkit:
 * the specs' view of the codec). */
void hr__resp_open_codec(lua_State *L);

#endif
