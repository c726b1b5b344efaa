/*
 * mpack.c: core.mp_encode / core.mp_decode on msgpack-c (see mpack.h).
 *
 * Encoding runs in two passes: the first walks the value and raises on anything it cannot
 * encode (while nothing is allocated yet, so a raise leaks nothing), the second packs
 * without raising. Decoding validates the bytes with a small scanner before msgpack-c
 * sees them: msgpack-c allocates a container's element array from its declared size, so
 * a 5-byte frame declaring 2^32 elements would ask for ~100 GB; the scanner refuses any
 * size the remaining input cannot hold.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <msgpack.h>

#include "mpack.h"

/* ---- encoding ---- */

/* Whether the table at idx is a non-empty sequence 1..n; *n is its length. */
static bool is_array(lua_State *L, int idx, size_t *n)
{
    size_t count = 0;
    lua_Number max = 0;
    bool ok = true;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (ok && lua_type(L, -1) == LUA_TNUMBER) {
            lua_Number k = lua_tonumber(L, -1);
            if (k >= 1 && k == floor(k) && k <= 4294967295.0) {
                if (k > max) {
                    max = k;
                }
                continue;
            }
        }
        ok = false;
    }
    *n = count;
    return ok && count > 0 && (lua_Number)count == max;
}

static void check_value(lua_State *L, int idx, int depth, const char *path);

static void check_key(lua_State *L, int idx, const char *path)
{
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING || t == LUA_TBOOLEAN) {
        return;
    }
    if (t == LUA_TNUMBER && !isnan(lua_tonumber(L, idx))) {
        return;
    }
    luaL_error(L, "mp_encode: cannot encode a %s key (in %s)", luaL_typename(L, idx), path);
}

static void check_value(lua_State *L, int idx, int depth, const char *path)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
    case LUA_TNUMBER:
    case LUA_TSTRING:
        return;
    case LUA_TTABLE:
        break;
    default:
        luaL_error(L, "mp_encode: cannot encode a %s value (at %s)", luaL_typename(L, idx), path);
    }
    if (depth > HR_MP_MAX_DEPTH) {
        luaL_error(L, "mp_encode: nesting deeper than %d levels (a cycle?) at %s",
                   HR_MP_MAX_DEPTH, path);
    }
    luaL_checkstack(L, 4, "mp_encode");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int v = lua_gettop(L);
        check_key(L, v - 1, path);
        if (lua_type(L, v) == LUA_TTABLE || lua_type(L, v) > LUA_TSTRING ||
            lua_type(L, v) == LUA_TLIGHTUSERDATA) {
            const char *sub;
            if (lua_type(L, v - 1) == LUA_TSTRING) {
                sub = lua_pushfstring(L, "%s.%s", path, lua_tostring(L, v - 1));
            } else {
                lua_pushvalue(L, v - 1); /* tostring must not change the key */
                sub = lua_pushfstring(L, "%s[%s]", path,
                                      lua_type(L, v - 1) == LUA_TBOOLEAN
                                          ? (lua_toboolean(L, v - 1) ? "true" : "false")
                                          : lua_tostring(L, -1));
            }
            check_value(L, v, depth + 1, sub);
        }
        lua_settop(L, v - 1);
    }
}

struct packer {
    msgpack_sbuffer buf;
    msgpack_packer pk;
    bool nomem;
};

static void pack_number(struct packer *p, lua_Number d)
{
    int rc;
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        rc = msgpack_pack_int64(&p->pk, (int64_t)d);
    } else if (d == floor(d) && d >= 0 && d < 18446744073709551616.0) {
        rc = msgpack_pack_uint64(&p->pk, (uint64_t)d);
    } else {
        rc = msgpack_pack_double(&p->pk, d);
    }
    p->nomem |= rc != 0;
}

/* Never raises: check_value has vetted the value, and the stack was grown up front. */
static void pack_value(lua_State *L, int idx, struct packer *p)
{
    int rc = 0;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        rc = msgpack_pack_nil(&p->pk);
        break;
    case LUA_TBOOLEAN:
        rc = lua_toboolean(L, idx) ? msgpack_pack_true(&p->pk) : msgpack_pack_false(&p->pk);
        break;
    case LUA_TNUMBER:
        pack_number(p, lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        rc = msgpack_pack_str_with_body(&p->pk, s, len);
        break;
    }
    case LUA_TTABLE: {
        size_t n;
        if (is_array(L, idx, &n)) {
            rc = msgpack_pack_array(&p->pk, n);
            for (size_t i = 1; i <= n && rc == 0; i++) {
                lua_rawgeti(L, idx, (int)i);
                pack_value(L, lua_gettop(L), p);
                lua_pop(L, 1);
            }
        } else {
            rc = msgpack_pack_map(&p->pk, n);
            lua_pushnil(L);
            while (lua_next(L, idx) != 0) {
                int v = lua_gettop(L);
                pack_value(L, v - 1, p);
                pack_value(L, v, p);
                lua_pop(L, 1);
            }
        }
        break;
    }
    default:
        break;
    }
    p->nomem |= rc != 0;
}

void hr__mp_encode(lua_State *L, int idx, char **out, size_t *len)
{
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    int top = lua_gettop(L);
    /* Each level of pack_value uses at most 3 slots. */
    luaL_checkstack(L, 3 * HR_MP_MAX_DEPTH + 8, "mp_encode");
    check_value(L, idx, 1, "value");
    lua_settop(L, top);
    struct packer p;
    msgpack_sbuffer_init(&p.buf);
    msgpack_packer_init(&p.pk, &p.buf, msgpack_sbuffer_write);
    p.nomem = false;
    pack_value(L, idx, &p);
    lua_settop(L, top);
    if (p.nomem) {
        msgpack_sbuffer_destroy(&p.buf);
        luaL_error(L, "mp_encode: out of memory");
    }
    *len = p.buf.size;
    *out = msgpack_sbuffer_release(&p.buf);
}

void hr__mp_encode_append(lua_State *L, int idx, char **buf, size_t *len, size_t *cap)
{
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    int top = lua_gettop(L);
    luaL_checkstack(L, 3 * HR_MP_MAX_DEPTH + 8, "mp_encode");
    check_value(L, idx, 1, "value"); /* raises before the buffer is touched */
    lua_settop(L, top);
    /* The caller's buffer becomes the sbuffer (msgpack's write callback reallocs it as it
     * grows): the encoding lands where it will be written from, with no copy. */
    struct packer p;
    p.buf.data = *buf;
    p.buf.size = *len;
    p.buf.alloc = *cap;
    msgpack_packer_init(&p.pk, &p.buf, msgpack_sbuffer_write);
    p.nomem = false;
    pack_value(L, idx, &p);
    lua_settop(L, top);
    *buf = p.buf.data;
    *cap = p.buf.alloc;
    if (p.nomem) {
        luaL_error(L, "mp_encode: out of memory"); /* *len unchanged: nothing appended */
    }
    *len = p.buf.size;
}

/* ---- validation ---- */

struct scan {
    const unsigned char *p;
    size_t len, pos;
    char *err;
    size_t errlen;
};

static int scan_fail(struct scan *s, const char *what)
{
    snprintf(s->err, s->errlen, "msgpack: %s at byte %zu", what, s->pos);
    return -1;
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Read an n-byte big-endian size field. */
static int take_size(struct scan *s, int n, uint64_t *out)
{
    if (s->len - s->pos < (size_t)n) {
        return scan_fail(s, "truncated header");
    }
    *out = be(s->p + s->pos, n);
    s->pos += (size_t)n;
    return 0;
}

static int skip(struct scan *s, uint64_t n)
{
    if (s->len - s->pos < n) {
        return scan_fail(s, "truncated value");
    }
    s->pos += (size_t)n;
    return 0;
}

static int scan_value(struct scan *s, int depth, bool key);

static int scan_container(struct scan *s, int depth, uint64_t n, bool map)
{
    if (depth > HR_MP_MAX_DEPTH) {
        return scan_fail(s, "nesting too deep");
    }
    /* Every element takes at least one byte. */
    if (n > (s->len - s->pos) / (map ? 2 : 1)) {
        return scan_fail(s, "container larger than the input");
    }
    for (uint64_t i = 0; i < n; i++) {
        if (map && scan_value(s, depth + 1, true) != 0) {
            return -1;
        }
        if (scan_value(s, depth + 1, false) != 0) {
            return -1;
        }
    }
    return 0;
}

static int scan_value(struct scan *s, int depth, bool key)
{
    if (s->pos >= s->len) {
        return scan_fail(s, "truncated input");
    }
    unsigned char c = s->p[s->pos++];
    uint64_t n;
    if (c <= 0x7f || c >= 0xe0) {
        return 0;
    }
    if (c >= 0x80 && c <= 0x8f) {
        return scan_container(s, depth, c & 0x0f, true);
    }
    if (c >= 0x90 && c <= 0x9f) {
        return scan_container(s, depth, c & 0x0f, false);
    }
    if (c >= 0xa0 && c <= 0xbf) {
        return skip(s, c & 0x1f);
    }
    switch (c) {
    case 0xc0:
        if (key) {
            s->pos--;
            return scan_fail(s, "nil map key");
        }
        return 0;
    case 0xc2:
    case 0xc3:
        return 0;
    case 0xc4:
    case 0xd9:
        return take_size(s, 1, &n) != 0 ? -1 : skip(s, n);
    case 0xc5:
    case 0xda:
        return take_size(s, 2, &n) != 0 ? -1 : skip(s, n);
    case 0xc6:
    case 0xdb:
        return take_size(s, 4, &n) != 0 ? -1 : skip(s, n);
    case 0xca:
    case 0xcb: {
        int w = c == 0xca ? 4 : 8;
        if (s->len - s->pos < (size_t)w) {
            return scan_fail(s, "truncated float");
        }
        if (key) {
            uint64_t bits = be(s->p + s->pos, w);
            bool nan = w == 4 ? ((bits >> 23 & 0xff) == 0xff && (bits & 0x7fffff) != 0)
                              : ((bits >> 52 & 0x7ff) == 0x7ff && (bits & 0xfffffffffffffULL) != 0);
            if (nan) {
                return scan_fail(s, "NaN map key");
            }
        }
        s->pos += (size_t)w;
        return 0;
    }
    case 0xcc:
    case 0xd0:
        return skip(s, 1);
    case 0xcd:
    case 0xd1:
        return skip(s, 2);
    case 0xce:
    case 0xd2:
        return skip(s, 4);
    case 0xcf:
    case 0xd3:
        return skip(s, 8);
    case 0xdc:
        return take_size(s, 2, &n) != 0 ? -1 : scan_container(s, depth, n, false);
    case 0xdd:
        return take_size(s, 4, &n) != 0 ? -1 : scan_container(s, depth, n, false);
    case 0xde:
        return take_size(s, 2, &n) != 0 ? -1 : scan_container(s, depth, n, true);
    case 0xdf:
        return take_size(s, 4, &n) != 0 ? -1 : scan_container(s, depth, n, true);
    default:
        /* 0xc1 (never used) and the ext types (0xc7-0xc9, 0xd4-0xd8). */
        s->pos--;
        return scan_fail(s, "unsupported type byte");
    }
}

int hr__mp_validate(const char *buf, size_t len, char *err, size_t errlen)
{
    struct scan s = {(const unsigned char *)buf, len, 0, err, errlen};
    if (len == 0) {
        snprintf(err, errlen, "msgpack: empty input");
        return -1;
    }
    if (scan_value(&s, 1, false) != 0) {
        return -1;
    }
    if (s.pos != len) {
        return scan_fail(&s, "trailing bytes after the value");
    }
    return 0;
}

/* ---- decoding ---- */

static void push_object(lua_State *L, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        lua_pushboolean(L, o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        lua_pushnumber(L, (lua_Number)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        lua_pushnumber(L, (lua_Number)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        lua_pushnumber(L, (lua_Number)o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        lua_pushlstring(L, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        lua_pushlstring(L, o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        luaL_checkstack(L, 4, "mp_decode");
        lua_createtable(L, (int)o->via.array.size, 0);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            push_object(L, &o->via.array.ptr[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    case MSGPACK_OBJECT_MAP:
        luaL_checkstack(L, 4, "mp_decode");
        lua_createtable(L, 0, (int)o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            push_object(L, &o->via.map.ptr[i].key);
            push_object(L, &o->via.map.ptr[i].val);
            lua_rawset(L, -3);
        }
        break;
    default: /* nil (ext was refused by the scanner) */
        lua_pushnil(L);
        break;
    }
}

void hr__mp_push(lua_State *L, const char *buf, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = msgpack_unpack_next(&u, buf, len, &off);
    if (rc != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u);
        luaL_error(L, "mp_decode: %s", rc == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory"
                                                                         : "malformed input");
    }
    /* A raise below (out of memory) would leak the zone: push into a protected table
     * first is not worth it for an out-of-memory path that leaks a few KB. */
    push_object(L, &u.data);
    msgpack_unpacked_destroy(&u);
}

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    char *buf;
    size_t len;
    hr__mp_encode(L, 1, &buf, &len);
    lua_pushlstring(L, buf, len);
    free(buf);
    return 1;
}

/* Raises what mp_encode would raise for the value at 1, encodes nothing. */
static int check_only(lua_State *L)
{
    luaL_checkstack(L, 3 * HR_MP_MAX_DEPTH + 8, "mp_encode");
    check_value(L, 1, 1, "value");
    return 0;
}

/* mp_check(v) -> true | nil, why: whether mp_encode(v) would succeed, without building the
 * bytes (the node checks every FSM result a client may have to receive). */
static int l_check(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    lua_pushcfunction(L, check_only);
    lua_insert(L, 1);
    if (lua_pcall(L, 1, 0, 0) != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_decode(lua_State *L)
{
    size_t len;
    const char *buf = luaL_checklstring(L, 1, &len);
    char err[128];
    if (hr__mp_validate(buf, len, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    hr__mp_push(L, buf, len);
    return 1;
}

int hr__lua_open_mpack(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"mp_encode", l_encode}, {"mp_decode", l_decode}, {"mp_check", l_check}, {NULL, NULL}};
    luaL_register(L, NULL, funcs);
    return 0;
}
