/*
 * client_binding.c: sockets that speak our frames, for helios.client and `helios cluster`
 * (the pipes of child processes: proc_binding.c). Nothing here runs the loop. Every
 * operation comes in two forms: a step that never blocks (try_*: it returns nil, "again"
 * when it would, and the socket keeps the partial frame or line and the unsent bytes), and
 * a blocking form that polls between steps for at most its timeout. helios.client drives
 * the steps and waits for the descriptor through the loop (core.watch_fd, loop.c) inside a
 * coroutine on it, so a call there yields instead of stalling every node and timer of the
 * process; outside one it uses the blocking forms (or core.poll_fd).
 *
 *   local core = require("helios.core")
 *   local s, code, detail = core.sock_connect("./data/node-1/control.sock", 1000)
 *                                          -- or "127.0.0.1:9001" (TCP)
 *   local s, pending = core.sock_connect_start(addr)   -- pending: wait writable, then
 *                                          -- s:finish_connect() -> true | nil, code, detail
 *                                          -- nil, "again": the listen backlog is full,
 *                                          -- start again later (sock_connect retries)
 *   s:send_frame(payload, 1000)            -- true, or nil, code, detail
 *   local payload, code = s:recv_frame(1000)   -- codes: "timeout", "closed",
 *                                          -- "bad_checksum", "too_large", "io"
 *   s:try_send_frame(payload)  s:try_flush()  s:try_recv_frame()  s:try_read_line()
 *                                          -- the steps: nil, "again" when they would block
 *   s:send_raw(bytes, 1000)  s:read_line(1000)  s:fileno()  s:close()
 *   local v, code = s:recv_reply(1000)     -- one RESP2 reply (below); codes: "timeout",
 *                                          -- "closed", "protocol", "too_large", "io"
 *   s:try_recv_reply([max_bytes])          -- its step: nil, "again" when it would block
 *   s:try_recv_frame(max, true)  s:try_recv_reply(max, true)   -- only what was read
 *                                          -- already: no read() (see recv_step)
 *   local bytes = core.resp_command({ "SET", "k", 42 })  -- a command as redis-cli sends it
 *   local bytes = core.frames({ p1, p2 })  -- payloads framed back to back: one send_raw
 *                                          -- pipelines them (helios.client's c:pipeline)
 *   core.poll_fd(fd, "r" | "w", 1000)      -- true | nil, "timeout" | nil, "io", detail
 *
 * The server side that specs need (listeners whose accept returns these sockets, a poll
 * over many of them, frame_encode) is helios.testkit's: csrc/testkit/sock_listen.c, which
 * links its own copy of this file (client_binding.h says how the two copies share the
 * class).
 *
 * Frames: 4-byte big-endian payload length, 4-byte big-endian CRC32C of the payload, then
 * the payload (the control socket and the peer transport; docs/wire-protocol.md).
 *
 * Replies: what a Redis-protocol server (redis-server, or our client port: resp_server.c)
 * answers, read with csrc/transport/resp.h's reply reader (helios.client.resp is built on
 * these steps). The values are those of resp_server.c's replies: a bulk string is a Lua
 * string, a null bulk or null array false, an integer a number (exact up to 2^53), a status
 * "+X" { ok = "X" }, an error "-X" { err = "X" }, an array a table of its elements with
 * field n (its length; a null element is false, so there are no holes). max_bytes (default
 * 64 MiB) bounds one reply: a header that announces more (a bulk string, or an array of
 * more elements than could fit) fails at once with "too_large", as do arrays nested more
 * than 32 deep; bytes that are not RESP2 fail with "protocol"; either closes the socket.
 * A socket reads frames, lines or replies, not a mix.
 */
#define _GNU_SOURCE /* getaddrinfo under -std=c11 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <lauxlib.h>

#include "../core/crc32c.h"
#include "../transport/resp.h"
#include "binding.h"
#include "client_binding.h"
#include "os.h"

#define FRAME_HEADER 8
#define DEFAULT_MAX_FRAME (64u << 20)

/* The layout behind HR__LUA_SOCK_MT. Both copies of this file (helios.core's and
 * helios.testkit's) are compiled from this one definition: see client_binding.h. */
struct lsock {
    int fd; /* -1 once closed; non-blocking */
    /* Bytes read that do not make a whole frame or line yet, and bytes queued that the
     * kernel has not taken yet (from woff to wlen): owned, freed by close. */
    char *rbuf, *wbuf;
    size_t rlen, rcap, wlen, woff, wcap;
    /* The progress of the reply at the head of rbuf: made by the first try_recv_reply,
     * owned, freed by close. */
    struct hr_resp_reader *reply;
    /* Told once, before the descriptor is closed (core.watch_sock's watcher: sock_watch.c). */
    struct hr__lua_sock_hook hook;
};

/* ---- time and waiting ---- */

static int64_t now_ms(void)
{
    return (int64_t)hr__lua_clock_ms();
}

int hr__lua_wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0) {
            left = 0;
        }
        struct pollfd p = { .fd = fd, .events = events };
        int r = poll(&p, 1, (int)(left > 0x7fffffff ? 0x7fffffff : left));
        if (r > 0) {
            return 1;
        }
        if (r == 0 && now_ms() >= deadline) {
            return 0;
        }
        if (r < 0 && errno != EINTR) {
            return -1;
        }
    }
}

int64_t hr__lua_check_deadline(lua_State *L, int idx)
{
    lua_Number ms = luaL_optnumber(L, idx, 5000);
    if (ms < 0) {
        luaL_error(L, "Usage: timeout_ms must be a non-negative number");
    }
    return now_ms() + (int64_t)ms;
}

static void close_sock(struct lsock *s);

void hr__lua_push_sock(lua_State *L, int fd)
{
    struct lsock *s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    s->fd = fd;
    luaL_getmetatable(L, HR__LUA_SOCK_MT);
    lua_setmetatable(L, -2);
}

struct hr__lua_sock_hook *hr__lua_sock_hook(lua_State *L, int idx, int *fd)
{
    struct lsock *s = luaL_checkudata(L, idx, HR__LUA_SOCK_MT);
    *fd = s->fd;
    return &s->hook;
}

int hr__lua_check_sock(lua_State *L, int idx, int *buffered)
{
    struct lsock *s = luaL_checkudata(L, idx, HR__LUA_SOCK_MT);
    *buffered = s->rlen > 0;
    return s->fd;
}

static struct lsock *check_open(lua_State *L)
{
    struct lsock *s = luaL_checkudata(L, 1, HR__LUA_SOCK_MT);
    if (s->fd < 0) {
        luaL_error(L, "Usage: the socket is closed");
    }
    return s;
}

/* ---- connect ---- */

int hr__lua_split_hostport(const char *addr, char *host, size_t hostlen, char *port,
                           size_t portlen)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || strchr(addr, '/') || (size_t)(colon - addr) >= hostlen) {
        return 0;
    }
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) >= portlen || strspn(p, "0123456789") != strlen(p)) {
        return 0;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    strcpy(port, p);
    return 1;
}

/* Longest pause between two tries of a connect the server's backlog refused (ms). */
#define CONNECT_RETRY_MAX_MS 16

/* Finish a non-blocking connect: 0, or fills code/detail. With nowait: 1 when it goes on
 * (wait writable, then s:finish_connect()), or -1 with code "again" for the caller to try
 * again later.
 *
 * EAGAIN is not EINPROGRESS. A unix stream socket whose server's listen backlog is full
 * refuses a non-blocking connect at once with EAGAIN (TCP would retransmit the SYN), and
 * the socket stays unconnected: it polls writable at once, SO_ERROR says 0, and the first
 * send fails with ENOTCONN. So EAGAIN is tried again (after a pause that doubles, up to
 * CONNECT_RETRY_MAX_MS) until the deadline, once the server has accepted some of its
 * backlog; on TCP it means no local port was free, which a pause may also cure. */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t salen, int64_t deadline,
                      int nowait, const char **code, int *err)
{
    int pause_ms = 1;
    for (;;) {
        if (connect(fd, sa, salen) == 0) {
            return 0;
        }
        if (errno == EAGAIN && nowait) {
            *code = "again";
            *err = errno;
            return -1;
        }
        if (errno == EAGAIN) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                *code = "timeout";
                *err = EAGAIN;
                return -1;
            }
            (void)poll(NULL, 0, (int)(left < pause_ms ? left : pause_ms));
            pause_ms = pause_ms * 2 > CONNECT_RETRY_MAX_MS ? CONNECT_RETRY_MAX_MS : pause_ms * 2;
            continue;
        }
        if (errno != EINPROGRESS) {
            *code = (errno == ECONNREFUSED || errno == ENOENT) ? "refused" : "io";
            *err = errno;
            return -1;
        }
        break;
    }
    if (nowait) {
        return 1; /* the caller waits for writable, then s:finish_connect() */
    }
    int r = hr__lua_wait_fd(fd, POLLOUT, deadline);
    if (r == 0) {
        *code = "timeout";
        *err = ETIMEDOUT;
        return -1;
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
        *err = r < 0 ? errno : (soerr ? soerr : errno);
        *code = *err == ECONNREFUSED ? "refused" : "io";
        return -1;
    }
    return 0;
}

int hr__lua_unix_socket(lua_State *L, const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path) {
        hr__lua_push_fail(L, "io", "socket path too long (the limit is 107 bytes)");
        return -1;
    }
    strcpy(sun->sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        hr__lua_push_errno(L, "socket", errno);
    }
    return fd;
}

/* A failed connect: close fd and return nil, code, "connect ADDR: reason". */
static int connect_failed(lua_State *L, int fd, const char *addr, const char *code, int err,
                          bool unix_sock)
{
    close(fd);
    lua_pushnil(L);
    lua_pushstring(L, code);
    if (err == EAGAIN) { /* (see connect_fd) */
        bool timeout = strcmp(code, "timeout") == 0;
        lua_pushfstring(L, "connect %s: %s", addr, unix_sock
                        ? (timeout ? "the server's listen backlog stayed full until the timeout"
                                   : "the server's listen backlog is full (try again)")
                        : (timeout ? "no local port was free until the timeout"
                                   : "no local port is free (try again)"));
    } else {
        lua_pushfstring(L, "connect %s: %s", addr, strerror(err));
    }
    return 3;
}

/* Push the socket and, for a connect that goes on (nowait), true: "pending". */
static int connected(lua_State *L, int fd, int rc)
{
    hr__lua_push_sock(L, fd);
    lua_pushboolean(L, rc == 1);
    return 2;
}

static int connect_common(lua_State *L, int nowait)
{
    const char *addr = luaL_checkstring(L, 1);
    int64_t deadline = nowait ? 0 : hr__lua_check_deadline(L, 2);
    char host[256], port[16];
    const char *code = "io";
    int err = 0;

    if (hr__lua_split_hostport(addr, host, sizeof host, port, sizeof port)) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(host, port, &hints, &res);
        if (gai != 0) {
            return hr__lua_push_fail(L, "io", gai_strerror(gai));
        }
        int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            freeaddrinfo(res);
            return hr__lua_push_errno(L, "socket", errno);
        }
        int rc = connect_fd(fd, res->ai_addr, res->ai_addrlen, deadline, nowait, &code, &err);
        freeaddrinfo(res);
        if (rc < 0) {
            return connect_failed(L, fd, addr, code, err, false);
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
        return connected(L, fd, rc);
    }

    struct sockaddr_un sun;
    int fd = hr__lua_unix_socket(L, addr, &sun);
    if (fd < 0) {
        return 3;
    }
    int rc = connect_fd(fd, (struct sockaddr *)&sun, sizeof sun, deadline, nowait, &code, &err);
    if (rc < 0) {
        return connect_failed(L, fd, addr, code, err, true);
    }
    return connected(L, fd, rc);
}

/* core.sock_connect(addr[, timeout_ms]) -> sock | nil, code, detail (blocks) */
static int l_connect(lua_State *L)
{
    int n = connect_common(L, 0);
    if (n == 2) {
        lua_pop(L, 1); /* never pending */
        return 1;
    }
    return n;
}

/* core.sock_connect_start(addr) -> sock, pending | nil, code, detail: pending = true until
 * the socket is writable, then s:finish_connect() says how it went. Code "again": the
 * server's listen backlog is full (see connect_fd); the caller starts again later. */
static int l_connect_start(lua_State *L)
{
    return connect_common(L, 1);
}

/* s:finish_connect() -> true | nil, code, detail (the socket is closed) */
static int l_finish_connect(lua_State *L)
{
    struct lsock *s = check_open(L);
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
        soerr = errno;
    }
    if (soerr != 0) {
        close_sock(s);
        lua_pushnil(L);
        lua_pushstring(L, soerr == ECONNREFUSED || soerr == ENOENT ? "refused" : "io");
        lua_pushfstring(L, "connect: %s", strerror(soerr));
        return 3;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- sending and receiving ----
 *
 * The descriptor is non-blocking and the socket keeps what is half done: bytes read that
 * do not make a whole frame (or line) yet, and bytes queued that the kernel did not take
 * yet. So a step that would block returns "again" and loses nothing: helios.client waits
 * for the descriptor through the loop (core.watch_fd) inside a coroutine on it, or through
 * poll() here (the blocking forms) outside one, and calls the step again. */

/* Make room for more bytes at the end of buf: 0, or -1 out of memory. */
static int reserve(char **buf, size_t *cap, size_t len, size_t more)
{
    if (*cap - len >= more) {
        return 0;
    }
    size_t ncap = *cap ? *cap : 4096;
    while (ncap - len < more) {
        ncap *= 2;
    }
    char *n = realloc(*buf, ncap);
    if (n == NULL) {
        return -1;
    }
    *buf = n;
    *cap = ncap;
    return 0;
}

/* Read what the kernel has into s->rbuf: 0 would block (or got some), -1 with *code at the
 * end of the stream or on an error. */
static int fill(struct lsock *s, const char **code, int *err)
{
    for (;;) {
        if (reserve(&s->rbuf, &s->rcap, s->rlen, 65536) < 0) {
            *code = "io";
            *err = ENOMEM;
            return -1;
        }
        size_t room = s->rcap - s->rlen;
        ssize_t r = read(s->fd, s->rbuf + s->rlen, room);
        if (r > 0) {
            s->rlen += (size_t)r;
            if (s->rlen >= 1u << 20) {
                return 0; /* enough for one step: the caller consumes first */
            }
            if ((size_t)r < room) {
                /* Short: the kernel had no more. Reading again would only cost a system
                 * call that says EAGAIN (what came since is read by the next step). */
                return 0;
            }
            continue;
        }
        if (r == 0) {
            *code = "closed";
            *err = 0;
            return -1;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        *err = errno;
        *code = errno == ECONNRESET ? "closed" : "io";
        return -1;
    }
}

/* Write what s->wbuf holds: 1 all written, 0 would block, -1 with *code. */
static int flush(struct lsock *s, const char **code, int *err)
{
    while (s->woff < s->wlen) {
        ssize_t w = send(s->fd, s->wbuf + s->woff, s->wlen - s->woff, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK) {
            w = write(s->fd, s->wbuf + s->woff, s->wlen - s->woff);
        }
        if (w > 0) {
            s->woff += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        *err = w < 0 ? errno : EIO;
        *code = (*err == EPIPE || *err == ECONNRESET) ? "closed" : "io";
        return -1;
    }
    s->woff = s->wlen = 0;
    return 1;
}

static int queue(struct lsock *s, const void *bytes, size_t len)
{
    if (s->woff > 0 && s->woff == s->wlen) {
        s->woff = s->wlen = 0;
    }
    if (reserve(&s->wbuf, &s->wcap, s->wlen, len) < 0) {
        return -1;
    }
    memcpy(s->wbuf + s->wlen, bytes, len);
    s->wlen += len;
    return 0;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void close_sock(struct lsock *s)
{
    if (s->hook.before_close != NULL) {
        void (*fn)(void *) = s->hook.before_close;
        s->hook.before_close = NULL;
        fn(s->hook.arg);
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    free(s->rbuf);
    free(s->wbuf);
    free(s->reply);
    s->reply = NULL;
    s->rbuf = s->wbuf = NULL;
    s->rlen = s->rcap = s->wlen = s->woff = s->wcap = 0;
}

static int sock_fail(lua_State *L, struct lsock *s, const char *code, int err)
{
    /* A partial frame desynchronizes the stream: the socket is unusable after it. */
    close_sock(s);
    lua_pushnil(L);
    lua_pushstring(L, code);
    lua_pushstring(L, err ? strerror(err) : "connection closed by the peer");
    return 3;
}

static int push_again(lua_State *L)
{
    lua_pushnil(L);
    lua_pushliteral(L, "again");
    return 2;
}

/* What the blocking forms do when a step would block: wait for events until the
 * deadline. Returns 0 to step again, or the number of values pushed (the failure). */
static int block_on(lua_State *L, struct lsock *s, short events, int64_t deadline,
                    const char *what)
{
    int r = hr__lua_wait_fd(s->fd, events, deadline);
    if (r == 0) {
        return hr__lua_push_fail(L, "timeout", what);
    }
    if (r < 0) {
        return hr__lua_push_errno(L, "poll", errno);
    }
    return 0;
}

/* Write what the socket holds: true, or nil, "again" (the rest waits in the socket), or
 * nil, code, detail (the socket is closed). */
static int flush_result(lua_State *L, struct lsock *s)
{
    const char *code = "io";
    int err = 0;
    int r = flush(s, &code, &err);
    if (r < 0) {
        return sock_fail(L, s, code, err);
    }
    if (r == 0) {
        return push_again(L);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Queue bytes and write what the kernel takes: as flush_result (s:try_flush() goes on). */
static int send_step(lua_State *L, struct lsock *s, const void *h, size_t hlen,
                     const void *bytes, size_t len)
{
    if ((hlen && queue(s, h, hlen) < 0) || queue(s, bytes, len) < 0) {
        return luaL_error(L, "send: out of memory");
    }
    return flush_result(L, s);
}

/* The blocking form: after a step that returned "again", flush until done or the
 * deadline (a timeout closes the socket: the peer would see a partial frame). */
static int send_finish(lua_State *L, struct lsock *s, int nret, int64_t deadline)
{
    while (nret == 2 && lua_isnil(L, -2)) {
        lua_pop(L, 2);
        int r = hr__lua_wait_fd(s->fd, POLLOUT, deadline);
        if (r <= 0) {
            return sock_fail(L, s, r == 0 ? "timeout" : "io", r == 0 ? ETIMEDOUT : errno);
        }
        nret = flush_result(L, s);
    }
    return nret;
}

static int frame_send_step(lua_State *L, struct lsock *s, int idx)
{
    size_t len;
    const char *payload = luaL_checklstring(L, idx, &len);
    if (len > 0xffffffffu) {
        return hr__lua_push_fail(L, "too_large", "a frame carries at most 4 GiB");
    }
    unsigned char h[FRAME_HEADER];
    put_be32(h, (uint32_t)len);
    put_be32(h + 4, hr_crc32c(0, payload, len));
    return send_step(L, s, h, sizeof h, payload, len);
}

/* s:send_frame(payload[, timeout_ms]) -> true | nil, code, detail (blocks) */
static int l_send_frame(lua_State *L)
{
    struct lsock *s = check_open(L);
    int64_t deadline = hr__lua_check_deadline(L, 3);
    return send_finish(L, s, frame_send_step(L, s, 2), deadline);
}

/* s:try_send_frame(payload) -> true | nil, "again" | nil, code, detail */
static int l_try_send_frame(lua_State *L)
{
    return frame_send_step(L, check_open(L), 2);
}

static int l_send_raw(lua_State *L)
{
    struct lsock *s = check_open(L);
    size_t len;
    const char *bytes = luaL_checklstring(L, 2, &len);
    int64_t deadline = hr__lua_check_deadline(L, 3);
    return send_finish(L, s, send_step(L, s, NULL, 0, bytes, len), deadline);
}

static int l_try_send_raw(lua_State *L)
{
    struct lsock *s = check_open(L);
    size_t len;
    const char *bytes = luaL_checklstring(L, 2, &len);
    return send_step(L, s, NULL, 0, bytes, len);
}

/* s:try_flush() -> true (nothing left) | nil, "again" | nil, code, detail */
static int l_try_flush(lua_State *L)
{
    return flush_result(L, check_open(L));
}

/* Take one whole frame from s->rbuf: 1 pushed the payload, 0 none yet, or the failure
 * pushed (too_large, bad_checksum: the socket is closed) as a negative count. */
static int take_frame(lua_State *L, struct lsock *s, lua_Number max)
{
    if (s->rlen < FRAME_HEADER) {
        return 0;
    }
    const unsigned char *h = (const unsigned char *)s->rbuf;
    uint32_t len = get_be32(h), crc = get_be32(h + 4);
    if ((lua_Number)len > max) {
        close_sock(s);
        lua_pushnil(L);
        lua_pushstring(L, "too_large");
        lua_pushfstring(L, "frame of %f bytes (the limit is %f)", (lua_Number)len, max);
        return -3;
    }
    if (s->rlen - FRAME_HEADER < len) {
        return 0;
    }
    const char *payload = s->rbuf + FRAME_HEADER;
    if (hr_crc32c(0, payload, len) != crc) {
        close_sock(s);
        return -hr__lua_push_fail(L, "bad_checksum", "frame checksum mismatch");
    }
    lua_pushlstring(L, payload, len);
    size_t used = FRAME_HEADER + (size_t)len;
    memmove(s->rbuf, s->rbuf + used, s->rlen - used);
    s->rlen -= used;
    return 1;
}

/* One line without its "\n" from s->rbuf: 1 pushed, 0 none yet. */
static int take_line(lua_State *L, struct lsock *s, lua_Number max)
{
    (void)max;
    char *nl = s->rlen ? memchr(s->rbuf, '\n', s->rlen) : NULL;
    if (nl == NULL) {
        return 0;
    }
    size_t used = (size_t)(nl - s->rbuf) + 1;
    lua_pushlstring(L, s->rbuf, used - 1);
    memmove(s->rbuf, s->rbuf + used, s->rlen - used);
    s->rlen -= used;
    return 1;
}

/* Push the value at buf[*off] of a reply the reader accepted (so the walk cannot fail),
 * with its elements if it is an array: recursion as deep as the reader's max_depth. */
static void push_reply_value(lua_State *L, const char *buf, size_t len, size_t *off)
{
    struct hr_resp_item it;
    luaL_checkstack(L, 3, "resp reply: nested too deep");
    if (hr_resp_next_item(buf, len, off, &it) != 0) {
        luaL_error(L, "resp reply: the reader accepted what is not a reply (a bug)");
    }
    switch (it.type) {
    case '+':
    case '-':
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, it.s, it.len);
        lua_setfield(L, -2, it.type == '+' ? "ok" : "err");
        return;
    case ':':
        lua_pushnumber(L, (lua_Number)it.n);
        return;
    case '$':
        if (it.null) {
            lua_pushboolean(L, 0);
        } else {
            lua_pushlstring(L, it.s, it.len);
        }
        return;
    default: /* '*' */
        if (it.null) {
            lua_pushboolean(L, 0);
            return;
        }
        lua_createtable(L, it.n > INT_MAX ? INT_MAX : (int)it.n, 1);
        for (long long i = 1; i <= it.n; i++) {
            push_reply_value(L, buf, len, off);
            lua_rawseti(L, -2, (int)i);
        }
        lua_pushnumber(L, (lua_Number)it.n);
        lua_setfield(L, -2, "n");
        return;
    }
}

static int reply_too_large(lua_State *L, struct lsock *s, lua_Number max)
{
    close_sock(s);
    lua_pushnil(L);
    lua_pushstring(L, "too_large");
    lua_pushfstring(L, "a reply of more than %f bytes (the limit)", max);
    return -3;
}

/* Take one whole reply from s->rbuf: as take_frame (failures: protocol, too_large). */
static int take_reply(lua_State *L, struct lsock *s, lua_Number max)
{
    if (s->rlen == 0) {
        return 0;
    }
    struct hr_resp_reader *r = s->reply;
    if (r == NULL) {
        r = malloc(sizeof *r);
        if (r == NULL) {
            luaL_error(L, "recv_reply: out of memory");
        }
        struct hr_resp_reply_limits lim = {
            .max_depth = HR_RESP_REPLY_DEPTH_DEFAULT,
            .max_elems = HR_RESP_REPLY_ELEMS_DEFAULT,
            .max_bulk = HR_RESP_MAX_BULK_DEFAULT,
            .max_line = HR_RESP_MAX_INLINE_DEFAULT,
        };
        hr_resp_reader_init(r, &lim);
        s->reply = r;
    }
    /* max bounds what a header may announce, so that "$999999999" fails before its bytes
     * come; an array of n elements takes at least 3 n bytes ("+\r\n" each). */
    size_t cap = max >= (lua_Number)HR_RESP_MAX_BULK_DEFAULT ? HR_RESP_MAX_BULK_DEFAULT
                                                              : (size_t)max;
    r->lim.max_bulk = cap;
    r->lim.max_elems = cap / 3 < HR_RESP_REPLY_ELEMS_DEFAULT ? cap / 3
                                                             : HR_RESP_REPLY_ELEMS_DEFAULT;
    size_t used = 0;
    int rc = hr_resp_read_reply(r, s->rbuf, s->rlen, &used);
    if (rc == HR_RESP_ERROR) {
        const char *code = r->limit ? "too_large" : "protocol";
        lua_pushnil(L);
        lua_pushstring(L, code);
        lua_pushfstring(L, "resp reply: %s", r->err);
        close_sock(s); /* after the push: the message is in the reader */
        return -3;
    }
    if (rc == HR_RESP_MORE) {
        /* Everything buffered belongs to this reply, which is not whole yet. */
        if ((lua_Number)s->rlen > max ||
            (r->bulk >= 0 && (lua_Number)r->pos + (lua_Number)r->bulk + 2 > max)) {
            return reply_too_large(L, s, max);
        }
        return 0;
    }
    if ((lua_Number)used > max) {
        return reply_too_large(L, s, max);
    }
    size_t off = 0;
    push_reply_value(L, s->rbuf, used, &off);
    memmove(s->rbuf, s->rbuf + used, s->rlen - used);
    s->rlen -= used;
    return 1;
}

typedef int (*take_fn)(lua_State *L, struct lsock *s, lua_Number max);

/* One receiving step: what is buffered, else (unless buffered_only) read what the kernel
 * has and try again. Returns the values pushed: the item, or nil, "again", or nil, code,
 * detail. */
static int recv_step(lua_State *L, struct lsock *s, take_fn take, lua_Number max,
                     int buffered_only)
{
    int r = take(L, s, max);
    if (r != 0) {
        return r < 0 ? -r : r;
    }
    if (buffered_only) {
        return push_again(L);
    }
    const char *code = "io";
    int err = 0;
    int f = fill(s, &code, &err);
    r = take(L, s, max);
    if (r != 0) {
        return r < 0 ? -r : r;
    }
    if (f < 0) {
        /* The end of the stream between two frames is "closed" as well. */
        return sock_fail(L, s, code, err);
    }
    return push_again(L);
}

/* The blocking form of a receiving step: poll until an item or the deadline. A timeout
 * keeps what was read of a partial item: the next call goes on from there. */
static int recv_blocking(lua_State *L, struct lsock *s, take_fn take, lua_Number max,
                         int64_t deadline, const char *what)
{
    for (;;) {
        int n = recv_step(L, s, take, max, 0);
        if (!(n == 2 && lua_isnil(L, -2) && s->fd >= 0)) {
            return n;
        }
        lua_pop(L, 2);
        n = block_on(L, s, POLLIN, deadline, what);
        if (n != 0) {
            return n;
        }
    }
}

/* s:recv_frame([timeout_ms[, max_bytes]]) -> payload | nil, code, detail (blocks) */
static int l_recv_frame(lua_State *L)
{
    struct lsock *s = check_open(L);
    int64_t deadline = hr__lua_check_deadline(L, 2);
    lua_Number max = luaL_optnumber(L, 3, DEFAULT_MAX_FRAME);
    return recv_blocking(L, s, take_frame, max, deadline, "no frame within the timeout");
}

/* s:try_recv_frame([max_bytes[, buffered_only]]) -> payload | nil, "again" | nil, code,
 * detail. buffered_only: look at what was read already, do not read (a caller that just
 * sent a request knows its answer cannot be there yet, and waits for the descriptor). */
static int l_try_recv_frame(lua_State *L)
{
    struct lsock *s = check_open(L);
    return recv_step(L, s, take_frame, luaL_optnumber(L, 2, DEFAULT_MAX_FRAME),
                     lua_toboolean(L, 3));
}

static lua_Number check_max_bytes(lua_State *L, int idx)
{
    lua_Number max = luaL_optnumber(L, idx, DEFAULT_MAX_FRAME);
    if (!(max >= 0)) {
        luaL_error(L, "Usage: max_bytes must be a non-negative number");
    }
    return max;
}

/* s:recv_reply([timeout_ms[, max_bytes]]) -> value | nil, code, detail (blocks) */
static int l_recv_reply(lua_State *L)
{
    struct lsock *s = check_open(L);
    int64_t deadline = hr__lua_check_deadline(L, 2);
    lua_Number max = check_max_bytes(L, 3);
    return recv_blocking(L, s, take_reply, max, deadline, "no reply within the timeout");
}

/* s:try_recv_reply([max_bytes[, buffered_only]]) -> value | nil, "again" | nil, code,
 * detail (buffered_only: as try_recv_frame's) */
static int l_try_recv_reply(lua_State *L)
{
    struct lsock *s = check_open(L);
    return recv_step(L, s, take_reply, check_max_bytes(L, 2), lua_toboolean(L, 3));
}

/* core.resp_command(argv) -> the bytes of the command: an array of bulk strings, one per
 * element 1..(argv.n or #argv), each a string or a number (an integral one written as an
 * integer: "42", not "42.0" or "4.2e+01"). */
static int l_resp_command(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "n");
    lua_Number n = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : (lua_Number)lua_objlen(L, 1);
    lua_pop(L, 1);
    if (!(n >= 0 && n <= INT_MAX) || n != (lua_Number)(int)n) {
        return luaL_error(L, "Usage: core.resp_command(argv): argv.n must be a count");
    }
    size_t argc = (size_t)n;
    /* A command of a few arguments (the common case: one per request) makes no garbage
     * but its bytes: the arrays are on the stack, the anchor table made only for numbers. */
    const char *argv_small[16];
    size_t lens_small[16];
    const char **argv = argv_small;
    size_t *lens = lens_small;
    if (argc > 16) {
        argv = lua_newuserdata(L, argc * sizeof *argv);
        lens = lua_newuserdata(L, argc * sizeof *lens);
    }
    int anchor = 0; /* a table that keeps the strings made from numbers alive */
    for (size_t i = 0; i < argc; i++) {
        lua_rawgeti(L, 1, (int)i + 1);
        int t = lua_type(L, -1);
        if (t == LUA_TNUMBER) {
            lua_Number d = lua_tonumber(L, -1);
            char tmp[40];
            if (d == (lua_Number)(long long)d && d > -9.2e18 && d < 9.2e18) {
                snprintf(tmp, sizeof tmp, "%lld", (long long)d);
            } else {
                snprintf(tmp, sizeof tmp, "%.17g", d);
            }
            lua_pop(L, 1);
            if (anchor == 0) {
                lua_createtable(L, 0, 0);
                anchor = lua_gettop(L);
            }
            lua_pushstring(L, tmp);
            lua_pushvalue(L, -1);
            lua_rawseti(L, anchor, (int)i + 1);
        } else if (t != LUA_TSTRING) {
            return luaL_error(L, "Usage: core.resp_command(argv): argv[%d] is a %s, not a "
                                 "string or a number", (int)i + 1, lua_typename(L, t));
        }
        /* The string stays alive: argv or the anchor table holds it. */
        argv[i] = lua_tolstring(L, -1, &lens[i]);
        lua_pop(L, 1);
    }
    struct hr_resp_buf b = {0};
    if (hr_resp_put_command(&b, argc, argv, lens) != 0) {
        hr_resp_buf_free(&b);
        return luaL_error(L, "core.resp_command: out of memory");
    }
    lua_pushlstring(L, b.data, b.len);
    hr_resp_buf_free(&b);
    return 1;
}

/* One line without its "\n" (control pipes of helper processes). */
static int l_read_line(lua_State *L)
{
    struct lsock *s = check_open(L);
    int64_t deadline = hr__lua_check_deadline(L, 2);
    return recv_blocking(L, s, take_line, 0, deadline, "no line within the timeout");
}

static int l_try_read_line(lua_State *L)
{
    return recv_step(L, check_open(L), take_line, 0, 0);
}

/* core.poll_fd(fd, "r" | "w" | "rw"[, timeout_ms]) -> true | nil, "timeout" | nil, "io",
 * detail: the blocking wait of helios.loop.wait_fd outside a coroutine on the loop. */
static int l_poll_fd(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    const char *ev = luaL_checkstring(L, 2);
    int64_t deadline = hr__lua_check_deadline(L, 3);
    short events = (short)((strchr(ev, 'r') ? POLLIN : 0) | (strchr(ev, 'w') ? POLLOUT : 0));
    if (events == 0) {
        return luaL_error(L, "Usage: core.poll_fd(fd, events[, timeout_ms]): events is "
                             "\"r\", \"w\" or \"rw\"");
    }
    int r = hr__lua_wait_fd(fd, events, deadline);
    if (r == 0) {
        return hr__lua_push_fail(L, "timeout", "not ready within the timeout");
    }
    if (r < 0) {
        return hr__lua_push_errno(L, "poll", errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_close(lua_State *L)
{
    struct lsock *s = luaL_checkudata(L, 1, HR__LUA_SOCK_MT);
    close_sock(s);
    return 0;
}

static int l_fileno(lua_State *L)
{
    struct lsock *s = luaL_checkudata(L, 1, HR__LUA_SOCK_MT);
    lua_pushinteger(L, s->fd);
    return 1;
}

static int l_tostring(lua_State *L)
{
    struct lsock *s = luaL_checkudata(L, 1, HR__LUA_SOCK_MT);
    lua_pushfstring(L, HR__LUA_SOCK_MT "(fd %d)", s->fd);
    return 1;
}

void hr__lua_open_sock_class(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "send_frame", l_send_frame },
        { "send_raw", l_send_raw },
        { "recv_frame", l_recv_frame },
        { "read_line", l_read_line },
        { "try_send_frame", l_try_send_frame },
        { "try_send_raw", l_try_send_raw },
        { "try_flush", l_try_flush },
        { "try_recv_frame", l_try_recv_frame },
        { "try_read_line", l_try_read_line },
        { "recv_reply", l_recv_reply },
        { "try_recv_reply", l_try_recv_reply },
        { "finish_connect", l_finish_connect },
        { "close", l_close },
        { "fileno", l_fileno },
        { NULL, NULL },
    };
    hr__lua_new_class(L, HR__LUA_SOCK_MT, methods, l_close, l_tostring);
}

/* core.frames({ p1, p2, ... }) -> bytes: each payload framed (docs/wire-protocol.md), one
 * after the other: requests that go out with one write (helios.client's pipelining). */
static int l_frames(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)lua_objlen(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        size_t len;
        const char *payload = lua_tolstring(L, -1, &len);
        if (payload == NULL || lua_type(L, -1) != LUA_TSTRING) {
            return luaL_error(L, "Usage: core.frames({ payload, ... }): payload %d is not a "
                                 "string", i);
        }
        if (len > 0xffffffffu) {
            return luaL_error(L, "core.frames: a frame carries at most 4 GiB");
        }
        lua_pop(L, 1); /* (the table keeps the string: the buffer owns the stack top) */
        unsigned char h[FRAME_HEADER];
        put_be32(h, (uint32_t)len);
        put_be32(h + 4, hr_crc32c(0, payload, len));
        luaL_addlstring(&b, (const char *)h, sizeof h);
        luaL_addlstring(&b, payload, len);
    }
    luaL_pushresult(&b);
    return 1;
}

int hr__lua_open_client(lua_State *L)
{
    hr__lua_open_sock_class(L);
    static const luaL_Reg funcs[] = {
        { "sock_connect", l_connect },
        { "sock_connect_start", l_connect_start },
        { "poll_fd", l_poll_fd },
        { "resp_command", l_resp_command },
        { "frames", l_frames },
        { NULL, NULL },
    };
    luaL_register(L, NULL, funcs);
    return 0;
}
