/*
 * resp_reply.c: Lua values as RESP2 replies (the mapping is at the top of resp_server.c),
 * for the client port's server; the limits options shared with it; and tk.resp_encode /
 * tk.resp_parse, the binding of the encoder and parser (csrc/transport/resp.h) that
 * spec/resp_parser_spec.lua drives, registered by helios.testkit only (the file is built
 * into both modules, as client_binding.c is).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "../transport/resp.h"
#include "binding.h"
#include "resp_server.h"

#define MAX_DEPTH 32

static int encode_table(lua_State *L, int idx, struct hr_resp_buf *b, int depth)
{
    lua_getfield(L, idx, "err");
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        lua_pop(L, 1);
        return hr_resp_put_error(b, s, n);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "ok");
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        lua_pop(L, 1);
        return hr_resp_put_simple(b, s, n);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "null_array");
    bool null_array = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (null_array) {
        return hr_resp_put_null_array(b);
    }
    if (depth >= MAX_DEPTH) {
        return -2;
    }
    lua_getfield(L, idx, "n");
    lua_Number len = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : (lua_Number)lua_objlen(L, idx);
    lua_pop(L, 1);
    if (!(len >= 0 && len <= INT_MAX) || len != floor(len)) {
        return -2; /* t.n is a count of elements or nothing */
    }
    size_t n = (size_t)len;
    if (hr_resp_put_array(b, n) != 0) {
        return -1;
    }
    if (!lua_checkstack(L, 4)) {
        return -1;
    }
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        int rc = hr__resp_encode_lua(L, lua_gettop(L), b, depth + 1);
        lua_pop(L, 1);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int hr__resp_encode_lua(lua_State *L, int idx, struct hr_resp_buf *b, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL:
        return hr_resp_put_null_bulk(b);
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? hr_resp_put_simple(b, "OK", 2) : hr_resp_put_null_bulk(b);
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (d == floor(d) && fabs(d) < 9.2e18) {
            return hr_resp_put_int(b, (long long)d);
        }
        char tmp[40];
        int n = snprintf(tmp, sizeof tmp, "%.17g", d);
        return hr_resp_put_bulk(b, tmp, (size_t)n);
    }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return hr_resp_put_bulk(b, s, n);
    }
    case LUA_TTABLE:
        return encode_table(L, idx, b, depth);
    default:
        return -2;
    }
}

const char *hr__resp_encode_error(int rc)
{
    return rc == -1 ? "resp reply: out of memory"
                    : "resp reply: a function, userdata or thread, arrays nested more than "
                      "32 deep or a bad count n, has no RESP form";
}

size_t hr__resp_opt_size(lua_State *L, int idx, const char *key, size_t def, size_t max)
{
    if (lua_isnoneornil(L, idx)) {
        return def;
    }
    lua_getfield(L, idx, key);
    size_t v = def;
    if (!lua_isnil(L, -1)) {
        v = (size_t)hr__lua_check_uint(L, -1, key, 1, max);
    }
    lua_pop(L, 1);
    return v;
}

void hr__resp_read_limits(lua_State *L, int idx, struct hr_resp_limits *lim)
{
    if (!lua_isnoneornil(L, idx)) {
        luaL_checktype(L, idx, LUA_TTABLE);
    }
    lim->max_args = hr__resp_opt_size(L, idx, "max_args", HR_RESP_MAX_ARGS_DEFAULT, (size_t)1 << 30);
    lim->max_bulk = hr__resp_opt_size(L, idx, "max_bulk", HR_RESP_MAX_BULK_DEFAULT, (size_t)1 << 40);
    lim->max_inline = hr__resp_opt_size(L, idx, "max_inline", HR_RESP_MAX_INLINE_DEFAULT, (size_t)1 << 30);
}

/* tk.resp_encode(reply) -> bytes */
static int l_encode(lua_State *L)
{
    struct hr_resp_buf b = {0};
    lua_settop(L, 1);
    int rc = hr__resp_encode_lua(L, 1, &b, 0);
    if (rc != 0) {
        hr_resp_buf_free(&b);
        return luaL_error(L, "%s", hr__resp_encode_error(rc));
    }
    lua_pushlstring(L, b.data != NULL ? b.data : "", b.len);
    hr_resp_buf_free(&b);
    return 1;
}

/* tk.resp_parse(bytes[, limits]) -> { argv, ... }, rest | nil, err: every complete
 * request (empty ones as {}), and the bytes of an incomplete last one. */
static int l_parse(lua_State *L)
{
    size_t len;
    const char *in = luaL_checklstring(L, 1, &len);
    struct hr_resp_limits lim;
    hr__resp_read_limits(L, 2, &lim);
    char *buf = lua_newuserdata(L, len + 1); /* a copy: inline words unescape in place */
    memcpy(buf, in, len);
    struct hr_resp_parser p;
    hr_resp_parser_init(&p, &lim);
    lua_newtable(L);
    int nreq = 0;
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        int rc = hr_resp_parse(&p, buf + off, len - off, &used);
        if (rc == HR_RESP_ERROR) {
            lua_pushnil(L);
            lua_pushstring(L, p.err);
            hr_resp_parser_free(&p);
            return 2;
        }
        if (rc == HR_RESP_MORE) {
            break;
        }
        lua_createtable(L, (int)p.argc, 0);
        for (size_t i = 0; i < p.argc; i++) {
            lua_pushlstring(L, buf + off + p.args[i].off, p.args[i].len);
            lua_rawseti(L, -2, (int)i + 1);
        }
        lua_rawseti(L, -2, ++nreq);
        off += used;
    }
    hr_resp_parser_free(&p);
    lua_pushlstring(L, buf + off, len - off);
    return 2;
}

void hr__resp_open_codec(lua_State *L)
{
    lua_pushcfunction(L, l_encode);
    lua_setfield(L, -2, "resp_encode");
    lua_pushcfunction(L, l_parse);
    lua_setfield(L, -2, "resp_parse");
}
