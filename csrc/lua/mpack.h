/*
 * mpack.h: Lua values <-> msgpack, on msgpack-c.
 *
 *   local bytes = core.mp_encode({ id = 1, op = "status" })   -- raises on what cannot be
 *                                                              -- encoded (functions, cycles)
 *   local value, err = core.mp_decode(bytes)                  -- nil, err on bad input
 *   local ok, why = core.mp_check(v)        -- true, or nil and what mp_encode would raise
 *
 * Maps <-> tables; a table whose keys are exactly 1..n (n > 0) is an array; an empty table
 * is an empty map. Strings are raw bytes (encoded as str; str and bin decode to strings).
 * Integral numbers in the int64 range are integers, others floats. Nesting is limited to
 * HR_MP_MAX_DEPTH levels both ways. Decoding validates the whole input first (one value,
 * no trailing bytes, container sizes that fit the input, no nil or NaN map keys, no ext
 * types), so hostile bytes never reach Lua half-built.
 *
 * Threading: the thread that owns the lua_State.
 */
#ifndef HR_LUA_MPACK_H
#define HR_LUA_MPACK_H

#include <stddef.h>

#include <lua.h>

#define HR_MP_MAX_DEPTH 32

/* Encode the value at idx into a malloc'd buffer (*out, *len; the caller frees it).
 * Raises a Lua error naming the offending value's path on what cannot be encoded. */
void hr__mp_encode(lua_State *L, int idx, char **out, size_t *len);
/* Append the encoding of the value at idx to the malloc'd buffer *buf (*len bytes used of
 * *cap; either may be NULL/0 at first): it may be realloc'd, so *buf and *cap change. Raises
 * as hr__mp_encode does, with *len unchanged (nothing appended). */
void hr__mp_encode_append(lua_State *L, int idx, char **buf, size_t *len, size_t *cap);
/* Check that buf holds exactly one valid msgpack value within the limits above, without
 * touching Lua. 0, or -1 with a message in err. */
int hr__mp_validate(const char *buf, size_t len, char *err, size_t errlen);
/* Push the value buf holds (call hr__mp_validate first: this assumes valid input). May
 * raise only on out-of-memory. */
void hr__mp_push(lua_State *L, const char *buf, size_t len);

/* Add mp_encode, mp_decode and mp_check to the module table at the top of the stack. Returns 0. */
int hr__lua_open_mpack(lua_State *L);

#endif
