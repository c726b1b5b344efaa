/*
 * transport_binding.c: the wire protocol from Lua, for specs and fuzz-like tests: encode
 * and decode frames, a blocking raw TCP client, and the client side of the peer handshake.
 *
 *   local tk = require("helios.testkit")
 *   local frame = tk.wire_encode{ type = "append", from = 1, to = 2, term = 3,
 *       prev_index = 10, prev_term = 2, commit = 9,
 *       entries = { { term = 3, index = 11, time_ms = 0, type = 1, data = "x" } } }
 *   local msg, code, detail = tk.wire_decode(frame)     -- nil, "corrupt", "frame: ..."
 *   tk.wire_frame(payload)                              -- any payload, correctly framed
 *   tk.node_id("node-1")                                -- the transport's numeric id
 *   local conn = tk.raw_connect("127.0.0.1:9001", 1000)  -- or nil, code, detail
 *   conn:send(bytes)                 -- true or nil, code, detail
 *   conn:recv(max, timeout_ms)       -- bytes, or nil, "timeout" | "closed" | code, detail
 *   tk.wire_handshake(conn, { cluster_id = "c", node_name = "x", secret = "s",
 *                               peer_name = "node-1" })   -- true, or nil, code, detail
 *   conn:close()
 *
 * Message fields are those of struct hr_msg (csrc/core/raft.h); `type` is a name
 * ("append", "vote", ...; a number is accepted too), entries carry a numeric type. Integers
 * above 2^53 (node ids are 64-bit hashes) travel as decimal strings both ways.
 * Expected failures return nil, code, detail; misuse raises "Usage: ...". Codes: those of
 * hr_err_name ("corrupt", "protocol", "invalid", ...), and "io", "timeout", "closed" (the
 * peer closed or reset the connection), "auth" (the handshake was refused).
 * Threading: the caller's; conn:send/recv and wire_handshake block up to their timeout.
 */
#define _GNU_SOURCE /* uv.h (via the transport's headers) needs the POSIX types */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "../transport/codec.h"
#include "../transport/handshake.h"
#include "../transport/transport.h"
#include "../lua/binding.h"
#include "testkit.h"

#define CONN_MT "helios.testkit.wire_conn"
#define EXACT_MAX 9007199254740992.0 /* 2^53 */

static void push_u64(lua_State *L, uint64_t v)
{
    if ((double)v <= EXACT_MAX) {
        lua_pushnumber(L, (lua_Number)v);
    } else {
        char buf[24];
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        lua_pushstring(L, buf);
    }
}

/* The field `name` of the table at idx as a uint64_t (0 when absent). */
static uint64_t get_u64(lua_State *L, int idx, const char *name)
{
    uint64_t v = 0;
    lua_getfield(L, idx, name);
    if (lua_type(L, -1) == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(L, -1);
        if (n < 0 || n > EXACT_MAX || n != (lua_Number)(uint64_t)n) {
            luaL_error(L, "Usage: wire_encode: %s must be a non-negative integer", name);
        }
        v = (uint64_t)n;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        char *end;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (*s < '0' || *s > '9' || *end != 0 || errno != 0) {
            luaL_error(L, "Usage: wire_encode: %s must be an integer or a decimal string", name);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "Usage: wire_encode: %s must be an integer", name);
    }
    lua_pop(L, 1);
    return v;
}

static int msg_type(lua_State *L, int idx)
{
    lua_getfield(L, idx, "type");
    int type = 0;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        type = (int)lua_tointeger(L, -1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        for (int t = 1; t < HR_MSG_TYPE_COUNT; t++) {
            if (strcmp(lua_tostring(L, -1), hr_msg_type_name(t)) == 0) {
                type = t;
            }
        }
    }
    lua_pop(L, 1);
    if (type <= 0 || type >= HR_MSG_TYPE_COUNT) {
        luaL_error(L, "Usage: wire_encode{type = \"append\" | \"vote\" | ...}: bad type");
    }
    return type;
}

/* Read msg.entries into m (blobs made here; the caller releases m, also on error, which
 * is why the count grows as entries are made). */
static void get_entries(lua_State *L, int idx, struct hr_msg *m)
{
    lua_getfield(L, idx, "entries");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    size_t n = lua_objlen(L, -1);
    if (n > HR_CODEC_MAX_ENTRIES) {
        luaL_error(L, "Usage: wire_encode: at most %d entries", HR_CODEC_MAX_ENTRIES);
    }
    m->entries = calloc(n ? n : 1, sizeof(*m->entries));
    if (m->entries == NULL) {
        luaL_error(L, "wire_encode: out of memory");
    }
    int t = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, t, (int)i + 1);
        int e = lua_gettop(L);
        luaL_checktype(L, e, LUA_TTABLE);
        struct hr_entry *en = &m->entries[i];
        en->term = get_u64(L, e, "term");
        en->index = get_u64(L, e, "index");
        en->time_ms = get_u64(L, e, "time_ms");
        uint64_t type = get_u64(L, e, "type");
        en->type = (uint8_t)(type ? type : HR_ENTRY_COMMAND);
        lua_getfield(L, e, "data");
        size_t len = 0;
        const char *data = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &len);
        if (len > 0 && (en->data = hr_blob_new(data, len)) == NULL) {
            luaL_error(L, "wire_encode: out of memory");
        }
        m->n_entries = (uint32_t)i + 1;
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

/* Runs under lua_cpcall-like protection: errors unwind through wire_encode's cleanup. */
struct encode_args {
    struct hr_msg m;
    msgpack_sbuffer sb;
};

static int encode_protected(lua_State *L)
{
    struct encode_args *a = lua_touserdata(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    struct hr_msg *m = &a->m;
    m->type = (uint8_t)msg_type(L, 2);
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
#define F(x) {#x, offsetof(struct hr_msg, x)}
        F(from),  F(to),         F(term),      F(prev_index), F(prev_term),       F(commit),
        F(index), F(hint_index), F(hint_term), F(last_index), F(cand_last_index), F(cand_last_term),
        F(snap_index), F(snap_term), F(offset), F(seq), F(time_ms),
#undef F
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        uint64_t v = get_u64(L, 2, fields[i].name);
        memcpy((char *)m + fields[i].off, &v, sizeof(v));
    }
    lua_getfield(L, 2, "reject");
    m->reject = lua_toboolean(L, -1);
    lua_getfield(L, 2, "done");
    m->done = lua_toboolean(L, -1);
    lua_getfield(L, 2, "transfer");
    m->transfer = lua_toboolean(L, -1);
    lua_getfield(L, 2, "snap_data");
    size_t len = 0;
    const char *data = lua_tolstring(L, -1, &len);
    if (data != NULL && len > 0) {
        m->snap_data = hr_blob_new(data, len);
        if (m->snap_data == NULL) {
            luaL_error(L, "wire_encode: out of memory");
        }
    }
    lua_pop(L, 4);
    get_entries(L, 2, m);
    int rc = hr_codec_encode(&a->sb, m);
    if (rc != 0) {
        luaL_error(L, "wire_encode: %s", hr_strerror(rc));
    }
    lua_pushlstring(L, a->sb.data, a->sb.size);
    return 1;
}

static int l_wire_encode(lua_State *L)
{
    struct encode_args a;
    memset(&a, 0, sizeof(a));
    msgpack_sbuffer_init(&a.sb);
    lua_pushcfunction(L, encode_protected);
    lua_pushlightuserdata(L, &a);
    lua_pushvalue(L, 1);
    int rc = lua_pcall(L, 2, 1, 0);
    hr_msg_release(&a.m);
    msgpack_sbuffer_destroy(&a.sb);
    if (rc != 0) {
        return lua_error(L);
    }
    return 1;
}

static void push_msg(lua_State *L, const struct hr_msg *m)
{
    lua_createtable(L, 0, 16);
    lua_pushstring(L, hr_msg_type_name(m->type));
    lua_setfield(L, -2, "type");
#define P(x) (push_u64(L, m->x), lua_setfield(L, -2, #x))
    P(from);
    P(to);
    P(term);
    P(prev_index);
    P(prev_term);
    P(commit);
    P(index);
    P(hint_index);
    P(hint_term);
    P(last_index);
    P(cand_last_index);
    P(cand_last_term);
    P(snap_index);
    P(snap_term);
    P(offset);
    P(seq);
    P(time_ms);
#undef P
    lua_pushboolean(L, m->reject);
    lua_setfield(L, -2, "reject");
    lua_pushboolean(L, m->done);
    lua_setfield(L, -2, "done");
    lua_pushboolean(L, m->transfer);
    lua_setfield(L, -2, "transfer");
    if (m->snap_data != NULL) {
        lua_pushlstring(L, (const char *)m->snap_data->data, m->snap_data->len);
        lua_setfield(L, -2, "snap_data");
    }
    lua_createtable(L, (int)m->n_entries, 0);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct hr_entry *e = &m->entries[i];
        lua_createtable(L, 0, 5);
        push_u64(L, e->term);
        lua_setfield(L, -2, "term");
        push_u64(L, e->index);
        lua_setfield(L, -2, "index");
        push_u64(L, e->time_ms);
        lua_setfield(L, -2, "time_ms");
        lua_pushinteger(L, e->type);
        lua_setfield(L, -2, "type");
        lua_pushlstring(L, e->data ? (const char *)e->data->data : "", hr_blob_len(e->data));
        lua_setfield(L, -2, "data");
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "entries");
}

/* wire_decode(frame[, max_frame_bytes]) */
static int l_wire_decode(lua_State *L)
{
    size_t len;
    const char *frame = luaL_checklstring(L, 1, &len);
    size_t max = (size_t)luaL_optnumber(L, 2, (lua_Number)HR_FRAME_MAX_DEFAULT);
    struct hr_msg m;
    char err[256];
    int rc = hr_codec_decode_frame(frame, len, max, &m, err, sizeof(err));
    if (rc != 0) {
        return hr__lua_push_fail(L, hr_err_name(rc), err);
    }
    /* push_msg only allocates Lua objects; a memory error there would leak m's blobs, which
     * a test helper can afford. */
    push_msg(L, &m);
    hr_msg_release(&m);
    return 1;
}

/* wire_frame(payload): a frame with a correct header around any payload (for tests that
 * must reach the decoder behind the CRC check). */
static int l_wire_frame(lua_State *L)
{
    size_t len;
    const char *payload = luaL_checklstring(L, 1, &len);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    size_t start;
    if (hr_frame_begin(&sb, &start) != 0 || msgpack_sbuffer_write(&sb, payload, len) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return luaL_error(L, "wire_frame: out of memory");
    }
    hr_frame_finish(&sb, start);
    lua_pushlstring(L, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 1;
}

static int l_node_id(lua_State *L)
{
    push_u64(L, hr_tcp_node_id(luaL_checkstring(L, 1)));
    return 1;
}

/* ---- the blocking raw client ---- */

struct conn {
    int fd;
};

static struct conn *check_conn(lua_State *L, int idx)
{
    struct conn *c = luaL_checkudata(L, idx, CONN_MT);
    if (c->fd < 0) {
        luaL_error(L, "wire conn: used after close");
    }
    return c;
}

static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int rc;
    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

static int l_raw_connect(lua_State *L)
{
    const char *addr = luaL_checkstring(L, 1);
    int timeout = (int)luaL_optinteger(L, 2, 5000);
    struct sockaddr_storage sa;
    if (hr_tcp_parse_addr(addr, &sa) != 0) {
        return luaL_error(L, "Usage: core.raw_connect(\"host:port\"[, timeout_ms])");
    }
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return hr__lua_push_fail(L, "io", strerror(errno));
    }
    socklen_t sl =
        sa.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int rc = connect(fd, (struct sockaddr *)&sa, sl);
    if (rc != 0 && errno == EINPROGRESS) {
        rc = wait_fd(fd, POLLOUT, timeout);
        if (rc == 0) {
            close(fd);
            return hr__lua_push_fail(L, "timeout", "connect timed out");
        }
        int soerr = 0;
        socklen_t n = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &n);
        errno = soerr;
        rc = soerr == 0 ? 0 : -1;
    }
    if (rc != 0) {
        const char *msg = strerror(errno);
        close(fd);
        return hr__lua_push_fail(L, "io", msg);
    }
    struct conn *c = lua_newuserdata(L, sizeof(*c));
    c->fd = fd;
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int send_all(int fd, const char *p, size_t n, const char **err)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT, 5000) == 0) {
                *err = "send timed out";
                return -1;
            }
            continue;
        }
        if (k < 0 && errno != EINTR) {
            *err = strerror(errno);
            return -1;
        }
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        }
    }
    return 0;
}

static int l_conn_send(lua_State *L)
{
    struct conn *c = check_conn(L, 1);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    const char *err;
    if (send_all(c->fd, p, n, &err) != 0) {
        return hr__lua_push_fail(L, "io", err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Read up to max bytes: 0 and *got, or a code ("timeout", "closed", "io"). */
static const char *read_some(int fd, char *buf, size_t max, int timeout_ms, size_t *got)
{
    for (;;) {
        ssize_t k = recv(fd, buf, max, 0);
        if (k > 0) {
            *got = (size_t)k;
            return NULL;
        }
        if (k == 0) {
            return "closed";
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return errno == ECONNRESET ? "closed" : "io";
        }
        if (wait_fd(fd, POLLIN, timeout_ms) == 0) {
            return "timeout";
        }
    }
}

static int l_conn_recv(lua_State *L)
{
    struct conn *c = check_conn(L, 1);
    size_t max = (size_t)luaL_optinteger(L, 2, 65536);
    int timeout = (int)luaL_optinteger(L, 3, 5000);
    if (max == 0 || max > (64u << 20)) {
        return luaL_error(L, "Usage: conn:recv([max_bytes[, timeout_ms]])");
    }
    char *buf = malloc(max);
    if (buf == NULL) {
        return luaL_error(L, "conn:recv: out of memory");
    }
    size_t got = 0;
    const char *code = read_some(c->fd, buf, max, timeout, &got);
    if (code != NULL) {
        free(buf);
        return hr__lua_push_fail(L, code, strcmp(code, "io") == 0 ? strerror(errno) : code);
    }
    lua_pushlstring(L, buf, got);
    free(buf);
    return 1;
}

static int l_conn_close(lua_State *L)
{
    struct conn *c = luaL_checkudata(L, 1, CONN_MT);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    return 0;
}

static int l_conn_tostring(lua_State *L)
{
    struct conn *c = luaL_checkudata(L, 1, CONN_MT);
    lua_pushfstring(L, "helios.testkit.wire_conn (%s)", c->fd >= 0 ? "open" : "closed");
    return 1;
}

/* One whole frame, read exactly (nothing beyond it is consumed). */
static const char *read_frame(int fd, char *buf, size_t *len, char *err, size_t errlen)
{
    size_t have = 0, want = HR_FRAME_HEADER;
    while (have < want) {
        size_t got;
        const char *code = read_some(fd, buf + have, want - have, 5000, &got);
        if (code != NULL) {
            snprintf(err, errlen, "handshake: %s", code);
            return code;
        }
        have += got;
        if (have == HR_FRAME_HEADER) {
            uint32_t plen = hr__be32(buf);
            if (plen > HR_HS_MAX_FRAME) {
                snprintf(err, errlen, "handshake: frame of %u bytes", plen);
                return "protocol";
            }
            want += plen;
        }
    }
    *len = have;
    return NULL;
}

static const char *opt_string(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    const char *s = lua_tostring(L, -1);
    if (s == NULL) {
        luaL_error(L,
                   "Usage: core.wire_handshake(conn, {cluster_id=, node_name=, secret=, "
                   "peer_name=}): %s missing",
                   name);
    }
    lua_pop(L, 1); /* the string stays referenced by the options table */
    return s;
}

static int l_wire_handshake(lua_State *L)
{
    struct conn *c = check_conn(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    struct hr_hs_config cfg = {
        .name = opt_string(L, 2, "node_name"),
        .cluster = opt_string(L, 2, "cluster_id"),
        .secret = opt_string(L, 2, "secret"),
    };
    cfg.secret_len = strlen(cfg.secret);
    const char *peer = opt_string(L, 2, "peer_name");
    struct hr_hs hs;
    hr_hs_client_init(&hs, &cfg, peer);
    char err[512], buf[HR_FRAME_HEADER + HR_HS_MAX_FRAME];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const char *code = NULL, *serr;
    int rc = hr_hs_start(&hs, &sb, err, sizeof(err));
    while (rc == HR_HS_MORE) {
        if (send_all(c->fd, sb.data, sb.size, &serr) != 0) {
            snprintf(err, sizeof(err), "handshake: %s", serr);
            code = "io";
            break;
        }
        sb.size = 0;
        size_t len;
        const void *payload;
        size_t plen;
        if ((code = read_frame(c->fd, buf, &len, err, sizeof(err))) != NULL) {
            break;
        }
        rc = hr_frame_check(buf, len, HR_HS_MAX_FRAME, &payload, &plen, err, sizeof(err));
        if (rc == 0) {
            rc = hr_hs_step(&hs, payload, plen, &sb, err, sizeof(err));
        }
    }
    msgpack_sbuffer_destroy(&sb);
    if (code == NULL && rc < 0) {
        code = hs.auth_failure ? "auth" : hr_err_name(rc);
    }
    if (code != NULL) {
        return hr__lua_push_fail(L, code, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

void hr__tk_open_transport(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"send", l_conn_send}, {"recv", l_conn_recv}, {"close", l_conn_close}, {NULL, NULL}};
    hr__lua_new_class(L, CONN_MT, methods, l_conn_close, l_conn_tostring);
    static const luaL_Reg fns[] = {{"wire_encode", l_wire_encode},
                                   {"wire_decode", l_wire_decode},
                                   {"wire_handshake", l_wire_handshake},
                                   {"raw_connect", l_raw_connect},
                                   {"wire_frame", l_wire_frame},
                                   {"node_id", l_node_id},
                                   {NULL, NULL}};
    luaL_register(L, NULL, fns);
}
