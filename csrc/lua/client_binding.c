/*
 * client_binding.c: blocking sockets that speak our frames, for helios.client,
 * helios.testing and `helios cluster` (child processes: proc_binding.c). Nothing here runs
 * a loop: every call blocks the caller for at most its timeout, which is what a test or a
 * command-line client wants.
 *
 *   local core = require("helios.core")
 *   local s, code, detail = core.sock_connect("./data/node-1/control.sock", 1000)
 *                                          -- or "127.0.0.1:9001" (TCP)
 *   s:send_frame(payload, 1000)            -- true, or nil, code, detail
 *   local payload, code = s:recv_frame(1000)   -- codes: "timeout", "closed",
 *                                          -- "bad_checksum", "too_large", "io"
 *   s:send_raw(bytes, 1000)  s:read_line(1000)  s:close()
 *   core.sock_poll({ s1, s2, ... }, 1000)  -- positions of the readable ones ({} on timeout)
 *   local l, port = core.sock_listen(path or "127.0.0.1:0")  local s = l:accept(1000)
 *                                          -- fake servers and fake nodes in specs
 *   core.frame_encode(payload)             -- the bytes send_frame would write
 *
 * Frames: 4-byte big-endian payload length, 4-byte big-endian CRC32C of the payload, then
 * the payload (the control socket and the peer transport).
 */
#define _GNU_SOURCE /* getaddrinfo, prctl, pipe2, kill under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "../core/crc32c.h"
#include "binding.h"
#include "client_binding.h"

extern char **environ;

#define SOCK_MT "helios.core.sock"
#define FRAME_HEADER 8
#define DEFAULT_MAX_FRAME (64u << 20)

struct lsock {
    int fd;         /* -1 once closed */
    int listening;  /* a listener from sock_listen: accept only */
};

/* ---- time and waiting ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passes: 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
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

static int64_t check_timeout(lua_State *L, int idx)
{
    lua_Number ms = luaL_optnumber(L, idx, 5000);
    if (ms < 0) {
        luaL_error(L, "Usage: timeout_ms must be a non-negative number");
    }
    return now_ms() + (int64_t)ms;
}

static struct lsock *push_sock(lua_State *L, int fd, int listening);

void hr__lua_push_sock(lua_State *L, int fd)
{
    push_sock(L, fd, 0);
}

static struct lsock *push_sock(lua_State *L, int fd, int listening)
{
    struct lsock *s = lua_newuserdata(L, sizeof *s);
    s->fd = fd;
    s->listening = listening;
    luaL_getmetatable(L, SOCK_MT);
    lua_setmetatable(L, -2);
    return s;
}

static struct lsock *check_open(lua_State *L)
{
    struct lsock *s = luaL_checkudata(L, 1, SOCK_MT);
    if (s->fd < 0) {
        luaL_error(L, "Usage: the socket is closed");
    }
    return s;
}

/* ---- connect ---- */

/* Split "host:port" (the last colon); 0 if addr is not of that form. */
static int split_hostport(const char *addr, char *host, size_t hostlen, char *port,
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

/* Finish a non-blocking connect: 0, or fills code/detail. */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t salen, int64_t deadline,
                      const char **code, int *err)
{
    if (connect(fd, sa, salen) == 0) {
        return 0;
    }
    if (errno != EINPROGRESS && errno != EAGAIN) {
        *code = (errno == ECONNREFUSED || errno == ENOENT) ? "refused" : "io";
        *err = errno;
        return -1;
    }
    int r = wait_fd(fd, POLLOUT, deadline);
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

/* A non-blocking unix socket and the address of path; -1 with nil, code, message pushed
 * (the 3 values the caller returns) when the path is too long or socket() fails. */
static int unix_socket(lua_State *L, const char *path, struct sockaddr_un *sun)
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

static int l_connect(lua_State *L)
{
    const char *addr = luaL_checkstring(L, 1);
    int64_t deadline = check_timeout(L, 2);
    char host[256], port[16];
    const char *code = "io";
    int err = 0;

    if (split_hostport(addr, host, sizeof host, port, sizeof port)) {
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
        int rc = connect_fd(fd, res->ai_addr, res->ai_addrlen, deadline, &code, &err);
        freeaddrinfo(res);
        if (rc < 0) {
            close(fd);
            lua_pushnil(L);
            lua_pushstring(L, code);
            lua_pushfstring(L, "connect %s: %s", addr, strerror(err));
            return 3;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
        push_sock(L, fd, 0);
        return 1;
    }

    struct sockaddr_un sun;
    int fd = unix_socket(L, addr, &sun);
    if (fd < 0) {
        return 3;
    }
    if (connect_fd(fd, (struct sockaddr *)&sun, sizeof sun, deadline, &code, &err) < 0) {
        close(fd);
        lua_pushnil(L);
        lua_pushstring(L, code);
        lua_pushfstring(L, "connect %s: %s", addr, strerror(err));
        return 3;
    }
    push_sock(L, fd, 0);
    return 1;
}

/* A listener on a unix path or a "host:port" (port 0: any free port, returned second). */
static int l_listen(lua_State *L)
{
    const char *addr = luaL_checkstring(L, 1);
    char host[256], port[16];
    if (split_hostport(addr, host, sizeof host, port, sizeof port)) {
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
        if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
            return hr__lua_push_fail(L, "io", "listen: the host must be an IPv4 address");
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            return hr__lua_push_errno(L, "socket", errno);
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        socklen_t len = sizeof sin;
        if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 64) < 0 ||
            getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
            int e = errno;
            close(fd);
            return hr__lua_push_errno(L, addr, e);
        }
        push_sock(L, fd, 1);
        lua_pushinteger(L, ntohs(sin.sin_port));
        return 2;
    }
    struct sockaddr_un sun;
    int fd = unix_socket(L, addr, &sun);
    if (fd < 0) {
        return 3;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, 16) < 0) {
        int e = errno;
        close(fd);
        return hr__lua_push_errno(L, addr, e);
    }
    push_sock(L, fd, 1);
    return 1;
}

static int l_accept(lua_State *L)
{
    struct lsock *s = check_open(L);
    int64_t deadline = check_timeout(L, 2);
    if (!s->listening) {
        return luaL_error(L, "Usage: accept() is for a listener from sock_listen");
    }
    for (;;) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            push_sock(L, fd, 0);
            return 1;
        }
        if (errno != EAGAIN && errno != EINTR) {
            return hr__lua_push_errno(L, "accept", errno);
        }
        int r = wait_fd(s->fd, POLLIN, deadline);
        if (r == 0) {
            return hr__lua_push_fail(L, "timeout", "no connection");
        }
        if (r < 0) {
            return hr__lua_push_errno(L, "poll", errno);
        }
    }
}

/* ---- sending and receiving ---- */

/* Write all of buf: 0, or -1 with *code ("timeout", "closed", "io") and errno in *err. */
static int write_all(int fd, const char *buf, size_t len, int64_t deadline, const char **code,
                     int *err)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK) {
            w = write(fd, buf + off, len - off);
        }
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && errno != EAGAIN) {
            *err = errno;
            *code = (errno == EPIPE || errno == ECONNRESET) ? "closed" : "io";
            return -1;
        }
        int r = wait_fd(fd, POLLOUT, deadline);
        if (r <= 0) {
            *err = r == 0 ? ETIMEDOUT : errno;
            *code = r == 0 ? "timeout" : "io";
            return -1;
        }
    }
    return 0;
}

/* Read exactly len bytes: 0, or -1 as write_all ("closed" at EOF). *got counts bytes read. */
static int read_all(int fd, char *buf, size_t len, int64_t deadline, size_t *got,
                    const char **code, int *err)
{
    while (*got < len) {
        ssize_t r = read(fd, buf + *got, len - *got);
        if (r > 0) {
            *got += (size_t)r;
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
        if (errno != EAGAIN) {
            *err = errno;
            *code = errno == ECONNRESET ? "closed" : "io";
            return -1;
        }
        int w = wait_fd(fd, POLLIN, deadline);
        if (w <= 0) {
            *err = w == 0 ? ETIMEDOUT : errno;
            *code = w == 0 ? "timeout" : "io";
            return -1;
        }
    }
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
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

static int send_fail(lua_State *L, struct lsock *s, const char *code, int err)
{
    /* A partial frame desynchronizes the stream: the socket is unusable after it. */
    close_sock(s);
    lua_pushnil(L);
    lua_pushstring(L, code);
    lua_pushstring(L, err ? strerror(err) : "connection closed by the peer");
    return 3;
}

static int l_send_frame(lua_State *L)
{
    struct lsock *s = check_open(L);
    size_t len;
    const char *payload = luaL_checklstring(L, 2, &len);
    int64_t deadline = check_timeout(L, 3);
    if (len > 0xffffffffu) {
        return hr__lua_push_fail(L, "too_large", "a frame carries at most 4 GiB");
    }
    unsigned char h[FRAME_HEADER];
    put_be32(h, (uint32_t)len);
    put_be32(h + 4, hr_crc32c(0, payload, len));
    const char *code = "io";
    int err = 0;
    if (write_all(s->fd, (const char *)h, sizeof h, deadline, &code, &err) < 0 ||
        write_all(s->fd, payload, len, deadline, &code, &err) < 0) {
        return send_fail(L, s, code, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_send_raw(lua_State *L)
{
    struct lsock *s = check_open(L);
    size_t len;
    const char *bytes = luaL_checklstring(L, 2, &len);
    int64_t deadline = check_timeout(L, 3);
    const char *code = "io";
    int err = 0;
    if (write_all(s->fd, bytes, len, deadline, &code, &err) < 0) {
        return send_fail(L, s, code, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_recv_frame(lua_State *L)
{
    struct lsock *s = check_open(L);
    int64_t deadline = check_timeout(L, 2);
    lua_Number max = luaL_optnumber(L, 3, DEFAULT_MAX_FRAME);
    unsigned char h[FRAME_HEADER];
    size_t got = 0;
    const char *code = "io";
    int err = 0;
    if (read_all(s->fd, (char *)h, sizeof h, deadline, &got, &code, &err) < 0) {
        if (got == 0 && strcmp(code, "timeout") == 0) {
            return hr__lua_push_fail(L, "timeout", "no frame within the timeout");
        }
        return send_fail(L, s, code, err);
    }
    uint32_t len = get_be32(h), crc = get_be32(h + 4);
    if ((lua_Number)len > max) {
        close_sock(s);
        lua_pushnil(L);
        lua_pushstring(L, "too_large");
        lua_pushfstring(L, "frame of %d bytes (the limit is %d)", (int)len, (int)max);
        return 3;
    }
    char *buf = malloc(len ? len : 1);
    if (!buf) {
        return luaL_error(L, "recv_frame: out of memory");
    }
    got = 0;
    if (read_all(s->fd, buf, len, deadline, &got, &code, &err) < 0) {
        free(buf);
        return send_fail(L, s, code, err);
    }
    if (hr_crc32c(0, buf, len) != crc) {
        free(buf);
        close_sock(s);
        return hr__lua_push_fail(L, "bad_checksum", "frame checksum mismatch");
    }
    lua_pushlstring(L, buf, len);
    free(buf);
    return 1;
}

/* One line without its "\n"; byte by byte, since lines are only used on control pipes. */
static int l_read_line(lua_State *L)
{
    struct lsock *s = check_open(L);
    int64_t deadline = check_timeout(L, 2);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (;;) {
        char c;
        size_t got = 0;
        const char *code = "io";
        int err = 0;
        if (read_all(s->fd, &c, 1, deadline, &got, &code, &err) < 0) {
            return hr__lua_push_fail(L, code, err ? strerror(err) : "end of stream");
        }
        if (c == '\n') {
            break;
        }
        luaL_addchar(&b, c);
    }
    luaL_pushresult(&b);
    return 1;
}

/* Wait until at least one socket of the list is readable: returns the list of their
 * positions (empty on timeout). Lets one process drive many connections (the benchmark). */
static int l_poll(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t deadline = check_timeout(L, 2);
    int n = (int)lua_objlen(L, 1);
    struct pollfd *p = lua_newuserdata(L, sizeof *p * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        struct lsock *s = luaL_checkudata(L, -1, SOCK_MT);
        p[i].fd = s->fd;
        p[i].events = POLLIN;
        p[i].revents = 0;
        lua_pop(L, 1);
    }
    int r;
    for (;;) {
        int64_t left = deadline - now_ms();
        r = poll(p, (nfds_t)n, (int)(left < 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : left));
        if (r >= 0 || errno != EINTR) {
            break;
        }
    }
    if (r < 0) {
        return hr__lua_push_errno(L, "poll", errno);
    }
    lua_createtable(L, r, 0);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (p[i].revents) {
            lua_pushinteger(L, i + 1);
            lua_rawseti(L, -2, ++k);
        }
    }
    return 1;
}

static int l_close(lua_State *L)
{
    struct lsock *s = luaL_checkudata(L, 1, SOCK_MT);
    close_sock(s);
    return 0;
}

static int l_fileno(lua_State *L)
{
    struct lsock *s = luaL_checkudata(L, 1, SOCK_MT);
    lua_pushinteger(L, s->fd);
    return 1;
}

static int l_tostring(lua_State *L)
{
    struct lsock *s = luaL_checkudata(L, 1, SOCK_MT);
    lua_pushfstring(L, "helios.core.sock(fd %d%s)", s->fd, s->listening ? ", listening" : "");
    return 1;
}

static int l_frame_encode(lua_State *L)
{
    size_t len;
    const char *payload = luaL_checklstring(L, 1, &len);
    unsigned char h[FRAME_HEADER];
    put_be32(h, (uint32_t)len);
    put_be32(h + 4, hr_crc32c(0, payload, len));
    lua_pushlstring(L, (const char *)h, sizeof h);
    lua_pushvalue(L, 1);
    lua_concat(L, 2);
    return 1;
}

int hr__lua_open_client(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "send_frame", l_send_frame }, { "send_raw", l_send_raw },
        { "recv_frame", l_recv_frame }, { "read_line", l_read_line },
        { "accept", l_accept },         { "close", l_close },
        { "fileno", l_fileno },         { NULL, NULL },
    };
    hr__lua_new_class(L, SOCK_MT, methods, l_close, l_tostring);

    static const luaL_Reg funcs[] = {
        { "sock_connect", l_connect },   { "sock_listen", l_listen },
        { "sock_poll", l_poll },
        { "frame_encode", l_frame_encode },
        { NULL, NULL },
    };
    for (const luaL_Reg *f = funcs; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    return 0;
}
