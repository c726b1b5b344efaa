/*
 * control.c: the control socket server (see control.h).
 *
 * Lifetimes. The server and each connection are malloc'd (libuv owns their handles until
 * the close callbacks). Lua sees the server as a userdata pointing at it, and each
 * connection as a userdata that reply closures keep: when the connection closes, that
 * userdata's pointer is cleared, so a late reply (an apply that completes after the client
 * left) returns false instead of touching freed memory. A connection is closed with
 * uv_shutdown first, so that a reply written just before (the "shutdown" op's) is flushed.
 *
 * Writes. A reply is encoded straight into its connection's output buffer (framed there:
 * no intermediate copy) and the connection is marked dirty; the check phase of the loop
 * turn writes each dirty connection's buffer with one system call (listener.h, "Writes
 * once per loop turn"). So the replies a connection is owed from one turn (the answers to
 * a pipelining client's applies, which one batch of committed entries completes together)
 * cost one write, not one each. The write is tried at once (uv_try_write): only what the
 * kernel does not take goes through a queued uv_write, since a queued write costs an
 * epoll_ctl each time to watch for writability and to stop watching.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <lauxlib.h>
#include <uv.h>

#include "../core/crc32c.h"
#include "../core/error.h"
#include "binding.h"
#include "control.h"
#include "listener.h"
#include "loop.h"
#include "mpack.h"
#include "../core/array.h"

#define SERVER_MT "helios.core.control_server"
#define CONN_MT "helios.core.control_conn"

struct server;

struct conn {
    struct hr__listener_conn link; /* first: in the server's list */
    uv_pipe_t pipe;
    uv_shutdown_t shutdown;
    struct server *srv;
    struct conn_ud *ud; /* NULL once the Lua side is detached */
    int ud_ref;
    int reply_ref;      /* the connection's reply function: one for all its requests */
    char *buf;
    size_t len, cap;
    char *out;               /* framed replies not yet written (see "Writes") */
    size_t olen, ocap;
    bool closing;
};

struct conn_ud {
    struct conn *c;
};

struct server {
    struct hr__listener l; /* first: the listening socket, handler, close, dirty list */
    char *path;
    char refusal[256]; /* the frame a client beyond max_clients gets (make_refusal) */
    size_t refusal_len;
};

/* Once every handle is closed (hr__listener_unref). */
static void server_free(struct hr__listener *l)
{
    struct server *s = (struct server *)l;
    free(s->path);
    free(s);
}

/* ---- connections ---- */

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct server *s = c->srv;
    free(c->buf);
    free(c->out);
    free(c);
    hr__listener_unref(&s->l);
}

static void conn_shut(uv_shutdown_t *req, int status)
{
    (void)status;
    uv_close((uv_handle_t *)req->handle, conn_closed);
}

struct write_req {
    uv_write_t req;
    char data[];
};

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write: the read side sees the connection go */
    free(req);
}

/* Buffers this large are not kept between turns (a status or eval reply can be big). */
#define KEEP_OUT_BYTES ((size_t)64 << 10)

/* Write the connection's buffered replies: what the kernel takes now, the rest queued.
 * -1 when the connection failed (the caller closes it). */
static int write_out(struct conn *c)
{
    if (c->olen == 0) {
        return 0;
    }
    uv_stream_t *st = (uv_stream_t *)&c->pipe;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)c->olen);
    /* UV_EAGAIN also while an earlier queued write is unfinished: order is kept. */
    int n = uv_try_write(st, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
        c->olen = 0;
        return -1;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    int rc = 0;
    if (done < c->olen) {
        size_t rest = c->olen - done;
        struct write_req *w = malloc(sizeof *w + rest);
        if (w == NULL) {
            rc = -1;
        } else {
            memcpy(w->data, c->out + done, rest);
            uv_buf_t r = uv_buf_init(w->data, (unsigned)rest);
            if (uv_write(&w->req, st, &r, 1, on_written) != 0) {
                free(w);
                rc = -1;
            }
        }
    }
    c->olen = 0;
    if (c->ocap > KEEP_OUT_BYTES) {
        free(c->out);
        c->out = NULL;
        c->ocap = 0;
    }
    return rc;
}

static void conn_close(struct conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    struct server *s = c->srv;
    hr__listener_remove_conn(&s->l, &c->link); /* (and off the dirty list) */
    /* Replies owed so far go out first (uv_shutdown below waits for queued writes). */
    write_out(c);
    if (c->ud != NULL) {
        c->ud->c = NULL;
        c->ud = NULL;
    }
    hr__loop_unref(s->l.lp, c->ud_ref);
    c->ud_ref = LUA_NOREF;
    hr__loop_unref(s->l.lp, c->reply_ref);
    c->reply_ref = LUA_NOREF;
    uv_read_stop((uv_stream_t *)&c->pipe);
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, conn_shut) != 0) {
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
    }
}

/* Bytes read per read call at least: a whole pipelined burst of requests, typically. */
#define READ_BYTES ((size_t)16 << 10)

/* Reads land in the connection's buffer, behind what is kept of the last one (a partial
 * frame): no buffer per read, no copy. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    hr__listener_read_buf(&c->buf, &c->cap, c->len, READ_BYTES, buf);
}

struct request {
    struct conn *c;
    const char *payload;
    size_t len;
};

/* Protected: handler(req, reply). */
static int l_reply(lua_State *L);

static int push_request(lua_State *L, void *arg)
{
    struct request *r = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->c->srv->l.handler_ref);
    hr__mp_push(L, r->payload, r->len);
    /* handler(req, reply, conn): conn names the connection (the console keeps one
     * environment per connection, docs/console.md) and has :peek(). */
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->c->reply_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->c->ud_ref);
    return 3;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Handle every complete frame in the buffer. A bad one closes the connection. */
static void process(struct conn *c)
{
    size_t off = 0;
    while (!c->closing && c->len - off >= 8) {
        const unsigned char *h = (const unsigned char *)c->buf + off;
        uint32_t len = be32(h), crc = be32(h + 4);
        if (len > HR_CONTROL_MAX_FRAME) {
            conn_close(c);
            return;
        }
        if (c->len - off - 8 < len) {
            break;
        }
        const char *payload = c->buf + off + 8;
        char err[128];
        unsigned char first = len > 0 ? (unsigned char)payload[0] : 0;
        bool is_map = (first & 0xf0) == 0x80 || first == 0xde || first == 0xdf;
        if (hr_crc32c(0, payload, len) != crc || !is_map ||
            hr__mp_validate(payload, len, err, sizeof err) != 0) {
            conn_close(c);
            return;
        }
        off += 8 + (size_t)len;
        struct request r = {c, payload, len};
        /* The handler may close this connection (or the server): the buffer stays ours
         * until conn_closed, which runs from a later loop callback. */
        hr__loop_call(c->srv->l.lp, push_request, &r, "control handler");
    }
    if (c->closing) {
        return;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf; /* c->buf + c->len (on_alloc) */
    struct conn *c = stream->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread > 0 && !c->closing) {
        c->len += (size_t)nread;
        process(c);
    }
}

/* The check phase (listener.h, "Writes once per loop turn"): what c was answered. */
static void flush_dirty(struct hr__listener_conn *lc)
{
    struct conn *c = (struct conn *)lc;
    if (write_out(c) != 0) {
        conn_close(c);
    }
}

/* reply(tbl) -> true | false (the connection is gone). Raises on what cannot be encoded,
 * having queued nothing. */
static int l_reply(lua_State *L)
{
    struct conn_ud *u = luaL_checkudata(L, lua_upvalueindex(1), CONN_MT);
    luaL_checktype(L, 1, LUA_TTABLE);
    struct conn *c = u->c;
    if (c == NULL || c->closing) {
        lua_pushboolean(L, 0);
        return 1;
    }
    /* The frame's header first (filled in once the payload's length and CRC are known),
     * then the payload encoded behind it. */
    size_t start = c->olen;
    char *p = hr_array_grow(c->out, &c->ocap, start + 8, 1, 4096);
    if (p == NULL) {
        return luaL_error(L, "control reply: out of memory");
    }
    c->out = p;
    size_t end = start + 8;
    hr__mp_encode_append(L, 1, &c->out, &end, &c->ocap);
    size_t len = end - start - 8;
    if (len > HR_CONTROL_MAX_FRAME) {
        return luaL_error(L, "control reply: %d bytes is more than a frame may hold", (int)len);
    }
    unsigned char *h = (unsigned char *)c->out + start;
    uint32_t crc = hr_crc32c(0, h + 8, len);
    for (int i = 0; i < 4; i++) {
        h[i] = (unsigned char)(len >> (24 - 8 * i));
        h[4 + i] = (unsigned char)(crc >> (24 - 8 * i));
    }
    c->olen = end;
    hr__listener_mark_dirty(&c->srv->l, &c->link);
    lua_pushboolean(L, 1);
    return 1;
}

/* conn:peek() -> bytes | nil, "closed". What the client has sent and the loop has not
 * handled yet (a partial frame kept from the last read, then what the socket holds),
 * without consuming it: the loop reads it as usual later. The console calls it from a
 * debug hook while a chunk keeps the loop busy, to see a "cancel" request
 * (lua/helios/console.lua). Never blocks. */
static int l_conn_peek(lua_State *L)
{
    struct conn_ud *u = luaL_checkudata(L, 1, CONN_MT);
    struct conn *c = u->c;
    if (c == NULL || c->closing) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    uv_os_fd_t fd;
    char tmp[16384];
    ssize_t n = -1;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0) {
        n = recv(fd, tmp, sizeof tmp, MSG_PEEK | MSG_DONTWAIT);
    }
    if (n == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, c->buf != NULL ? c->buf : "", c->len);
    if (n > 0) {
        luaL_addlstring(&b, tmp, (size_t)n);
    }
    luaL_pushresult(&b);
    return 1;
}

/* Protected: make the connection's userdata and its reply function, and anchor them. */
static int make_conn_ud(lua_State *L)
{
    struct conn *c = lua_touserdata(L, 1);
    struct conn_ud *u = lua_newuserdata(L, sizeof *u);
    u->c = c;
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_reply, 1);
    c->reply_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    c->ud = u;
    c->ud_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct server *s = server->data;
    if (status != 0 || s->l.closing) {
        return;
    }
    if (hr__listener_full(&s->l)) {
        hr__listener_refuse(&s->l, s->refusal, s->refusal_len);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        hr__listener_refuse(&s->l, NULL, 0); /* off the backlog, or libuv stops accepting */
        return;
    }
    c->srv = s;
    c->ud_ref = LUA_NOREF;
    c->reply_ref = LUA_NOREF;
    uv_pipe_init(server->loop, &c->pipe, 0);
    c->pipe.data = c;
    s->l.pending++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 ||
        hr__loop_cpcall(s->l.lp, make_conn_ud, c) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
        return;
    }
    hr__listener_add_conn(&s->l, &c->link);
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* ---- the server ---- */

static void close_conn(struct hr__listener_conn *c)
{
    conn_close((struct conn *)c);
}

/* On close (hr__listener_close), after the connections: the socket file (none after a
 * failed bind: the path may be another process's socket then). */
static void close_rest(struct hr__listener *l)
{
    struct server *s = (struct server *)l;
    if (s->path != NULL) {
        unlink(s->path);
    }
}

static const struct hr__listener_ops ops = {close_conn, close_rest, server_free, flush_dirty};

/* Is something accepting connections at path? */
static bool socket_live(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    /* Only ECONNREFUSED (nobody listening) or ENOENT (gone) prove the socket stale. Any
     * other failure, EACCES above all (a running node of another user, or a mode we may not
     * connect to), is someone else's live socket: unlinking it would hijack its path. */
    bool live = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ||
                (errno != ECONNREFUSED && errno != ENOENT);
    close(fd);
    return live;
}

static int fail(lua_State *L, const char *code, const char *fmt, const char *path, const char *why)
{
    lua_pushnil(L);
    lua_pushstring(L, code);
    lua_pushfstring(L, fmt, path, why);
    return 3;
}

/* Append a msgpack string of n < 256 bytes. */
static size_t put_str(unsigned char *p, const char *str, size_t n)
{
    size_t k = 0;
    if (n < 32) {
        p[k++] = (unsigned char)(0xa0 | n);
    } else {
        p[k++] = 0xd9;
        p[k++] = (unsigned char)n;
    }
    memcpy(p + k, str, n);
    return k + n;
}

/* The frame a client beyond max_clients gets, in s->refusal: a map { ok = false, code =
 * "busy", detail } written here (it cannot fail, unlike an encode through Lua). */
static void make_refusal(struct server *s, size_t max_clients)
{
    char detail[160];
    int dn = snprintf(detail, sizeof detail, "max number of clients reached (max_clients "
                      "%zu): the control socket takes no more connections until one closes",
                      max_clients);
    if (dn < 0 || (size_t)dn >= sizeof detail) {
        dn = (int)sizeof detail - 1;
    }
    unsigned char *f = (unsigned char *)s->refusal, *p = f + 8;
    size_t n = 0;
    p[n++] = 0x83; /* a map of 3 */
    n += put_str(p + n, "ok", 2);
    p[n++] = 0xc2; /* false */
    n += put_str(p + n, "code", 4);
    n += put_str(p + n, "busy", 4);
    n += put_str(p + n, "detail", 6);
    n += put_str(p + n, detail, (size_t)dn);
    uint32_t crc = hr_crc32c(0, p, n);
    for (int i = 0; i < 4; i++) {
        f[i] = (unsigned char)(n >> (24 - 8 * i));
        f[4 + i] = (unsigned char)(crc >> (24 - 8 * i));
    }
    s->refusal_len = 8 + n;
}

/* core.control_listen(path, handler[, { max_clients = }]) -> server | nil, code, msg */
static int l_listen(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    size_t max_clients = hr__listener_opt_max_clients(L, 3, "control_listen");
    struct hr__lloop *lp = hr__loop_get(L);
    struct sockaddr_un probe;
    if (strlen(path) >= sizeof probe.sun_path) {
        return fail(L, "invalid", "control socket %s: path too long%s", path, "");
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return fail(L, "busy", "control socket %s: %s", path,
                        "exists and is not a socket (not removed)");
        }
        if (socket_live(path)) {
            return fail(L, "busy", "control socket %s: %s", path,
                        "in use by a running node");
        }
        unlink(path); /* stale: left by a process that died */
    }

    struct hr__listener_ud *u;
    struct server *s = hr__listener_alloc(L, SERVER_MT, sizeof *s, "control_listen", &u);
    char *p = malloc(strlen(path) + 1);
    if (p == NULL) {
        free(s);
        return luaL_error(L, "control_listen: out of memory");
    }
    strcpy(p, path);
    s->path = p;
    hr__listener_init(&s->l, lp, 1, &ops); /* the listener (and its check and idle) */
    s->l.max_clients = max_clients;
    make_refusal(s, max_clients);
    uv_pipe_init(hr__loop_uv(lp), &s->l.h.pipe, 0);
    s->l.h.pipe.data = s;
    /* 0600 from the start, through the umask: a chmod after bind would leave a window with
     * the umask's mode, and would follow a symlink swapped in for the socket meanwhile. */
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(&s->l.h.pipe, path);
    umask(old);
    if (rc == 0) {
        /* A burst of clients connecting at once must not find the backlog full: a unix
         * socket refuses a connect then (EAGAIN), it does not wait (helios.util.sock
         * tries again). */
        rc = uv_listen(&s->l.h.stream, hr__listener_backlog(), on_connection);
    }
    if (rc != 0) {
        char *why = (char *)uv_strerror(rc);
        free(s->path);
        s->path = NULL;
        hr__listener_close(&s->l);
        return fail(L, "io", "control socket %s: %s", path, why);
    }
    return hr__listener_ready(L, u, &s->l, 2);
}

static int l_path(lua_State *L)
{
    struct hr__listener_ud *u = luaL_checkudata(L, 1, SERVER_MT);
    if (u->l == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, ((struct server *)u->l)->path);
    }
    return 1;
}

static const luaL_Reg server_methods[] = {
    {"path", l_path},
    {NULL, NULL},
};

int hr__lua_open_control(lua_State *L)
{
    hr__listener_new_class(L, SERVER_MT, false, server_methods);
    if (luaL_newmetatable(L, CONN_MT)) {
        lua_pushliteral(L, CONN_MT);
        lua_setfield(L, -2, "__name");
        lua_newtable(L);
        lua_pushcfunction(L, l_conn_peek);
        lua_setfield(L, -2, "peek");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_listen);
    lua_setfield(L, -2, "control_listen");
    return 0;
}
