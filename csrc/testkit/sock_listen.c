/*
 * sock_listen.c: the server side of framed sockets, for fake servers and fake nodes in
 * specs, and a poll over many sockets for the cluster benchmark (spec/bench/cluster.lua).
 * A product program only ever connects (core.sock_connect, csrc/lua/client_binding.c), so
 * this lives in helios.testkit.
 *
 *   local tk = require("helios.testkit")
 *   local l, port = tk.sock_listen("127.0.0.1:0")   -- port 0: any free port (returned);
 *   local l = tk.sock_listen(path)                  -- or a unix socket path
 *                                          -- nil, code, detail on failure ("io")
 *   local s = l:accept(1000)               -- a socket, or nil, "timeout" | "io", detail
 *   local s = l:try_accept()               -- the step: nil, "again" when none is waiting
 *   l:fileno()  l:close()                  -- close leaves a unix socket's file in place
 *   tk.sock_poll({ s1, s2, ... }, 1000)    -- positions of the readable ones ({} on timeout)
 *   tk.frame_encode(payload)               -- the bytes s:send_frame(payload) writes
 *
 * A listener is a "helios.testkit.listener". What accept returns is a socket of
 * helios.core's class ("helios.core.sock": send_frame, recv_frame, try_* ...): this module
 * links its own copy of csrc/lua/client_binding.c and both register that class, as
 * client_binding.h explains, so it works with helios.core's functions (loop.await,
 * helios.client's steps) and core.sock_connect's sockets work with sock_poll.
 * Threading: the thread that owns the lua_State; accept and sock_poll block up to their
 * timeout.
 */
#define _GNU_SOURCE /* accept4 under -std=c11 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <lauxlib.h>

#include "../core/crc32c.h"
#include "../lua/binding.h"
#include "../lua/client_binding.h"
#include "../lua/os.h"
#include "testkit.h"

#define LISTENER_MT "helios.testkit.listener"

struct listener {
    int fd; /* -1 once closed; non-blocking */
};

static struct listener *check_open(lua_State *L)
{
    struct listener *l = luaL_checkudata(L, 1, LISTENER_MT);
    if (l->fd < 0) {
        luaL_error(L, "Usage: the listener is closed");
    }
    return l;
}

static void push_listener(lua_State *L, int fd)
{
    struct listener *l = lua_newuserdata(L, sizeof *l);
    l->fd = fd;
    luaL_getmetatable(L, LISTENER_MT);
    lua_setmetatable(L, -2);
}

/* bind + listen, or close fd and push the failure: 0, or the number of values pushed. */
static int bind_listen(lua_State *L, int fd, const struct sockaddr *sa, socklen_t len, int backlog,
                       const char *addr)
{
    if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return hr__lua_push_errno(L, addr, e);
    }
    return 0;
}

/* tk.sock_listen(addr) -> listener[, port] | nil, code, detail */
static int l_listen(lua_State *L)
{
    const char *addr = luaL_checkstring(L, 1);
    char host[256], port[16];
    if (hr__lua_split_hostport(addr, host, sizeof host, port, sizeof port)) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
        if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
            return hr__lua_push_fail(L, "io", "listen: the host must be an IPv4 address");
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            return hr__lua_push_errno(L, "socket", errno);
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int n = bind_listen(L, fd, (struct sockaddr *)&sin, sizeof sin, 64, addr);
        if (n != 0) {
            return n;
        }
        socklen_t len = sizeof sin;
        if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
            int e = errno;
            close(fd);
            return hr__lua_push_errno(L, addr, e);
        }
        push_listener(L, fd);
        lua_pushinteger(L, ntohs(sin.sin_port));
        return 2;
    }
    struct sockaddr_un sun;
    int fd = hr__lua_unix_socket(L, addr, &sun);
    if (fd < 0) {
        return 3;
    }
    int n = bind_listen(L, fd, (struct sockaddr *)&sun, sizeof sun, 16, addr);
    if (n != 0) {
        return n;
    }
    push_listener(L, fd);
    return 1;
}

/* One accept: 1 pushed a socket, 0 none is waiting, -1 failed (errno). */
static int accept_step(lua_State *L, struct listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            hr__lua_push_sock(L, fd);
            return 1;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

/* l:try_accept() -> sock | nil, "again" | nil, code, detail */
static int l_try_accept(lua_State *L)
{
    int r = accept_step(L, check_open(L));
    if (r > 0) {
        return 1;
    }
    if (r == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "again");
        return 2;
    }
    return hr__lua_push_errno(L, "accept", errno);
}

/* l:accept([timeout_ms]) -> sock | nil, "timeout" | "io", detail (blocks) */
static int l_accept(lua_State *L)
{
    struct listener *l = check_open(L);
    int64_t deadline = hr__lua_check_deadline(L, 2);
    for (;;) {
        int a = accept_step(L, l);
        if (a > 0) {
            return 1;
        }
        if (a < 0) {
            return hr__lua_push_errno(L, "accept", errno);
        }
        int r = hr__lua_wait_fd(l->fd, POLLIN, deadline);
        if (r == 0) {
            return hr__lua_push_fail(L, "timeout", "no connection");
        }
        if (r < 0) {
            return hr__lua_push_errno(L, "poll", errno);
        }
    }
}

static int l_fileno(lua_State *L)
{
    struct listener *l = luaL_checkudata(L, 1, LISTENER_MT);
    lua_pushinteger(L, l->fd);
    return 1;
}

static int l_close(lua_State *L)
{
    struct listener *l = luaL_checkudata(L, 1, LISTENER_MT);
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    struct listener *l = luaL_checkudata(L, 1, LISTENER_MT);
    lua_pushfstring(L, LISTENER_MT "(fd %d)", l->fd);
    return 1;
}

/* tk.sock_poll(socks[, timeout_ms]) -> the positions in socks of the sockets that are
 * readable or hold bytes read already ({} on timeout), or nil, "io", detail. Lets one
 * process drive many connections (the benchmark). */
static int l_poll(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t deadline = hr__lua_check_deadline(L, 2);
    int n = (int)lua_objlen(L, 1);
    struct pollfd *p = lua_newuserdata(L, sizeof *p * (size_t)(n > 0 ? n : 1));
    char *buffered = lua_newuserdata(L, (size_t)(n > 0 ? n : 1));
    int any_buffered = 0;
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        int b = 0;
        p[i].fd = hr__lua_check_sock(L, -1, &b);
        p[i].events = POLLIN;
        p[i].revents = 0;
        buffered[i] = (char)b;
        any_buffered |= b;
        lua_pop(L, 1);
    }
    int r;
    for (;;) {
        int64_t left = any_buffered ? 0 : deadline - (int64_t)hr__lua_clock_ms();
        r = poll(p, (nfds_t)n, (int)(left < 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : left));
        if (r >= 0 || errno != EINTR) {
            break;
        }
    }
    if (r < 0) {
        return hr__lua_push_errno(L, "poll", errno);
    }
    lua_newtable(L);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (p[i].revents || buffered[i]) {
            lua_pushinteger(L, i + 1);
            lua_rawseti(L, -2, ++k);
        }
    }
    return 1;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* tk.frame_encode(payload): the frame s:send_frame(payload) writes, header and payload
 * (docs/wire-protocol.md), for specs that write frames by hand. */
static int l_frame_encode(lua_State *L)
{
    size_t len;
    const char *payload = luaL_checklstring(L, 1, &len);
    if (len > 0xffffffffu) {
        return luaL_error(L, "Usage: a frame carries at most 4 GiB");
    }
    unsigned char h[8];
    put_be32(h, (uint32_t)len);
    put_be32(h + 4, hr_crc32c(0, payload, len));
    lua_pushlstring(L, (const char *)h, sizeof h);
    lua_pushvalue(L, 1);
    lua_concat(L, 2);
    return 1;
}

void hr__tk_open_sock_listen(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"accept", l_accept}, {"try_accept", l_try_accept},
        {"fileno", l_fileno}, {"close", l_close},
        {NULL, NULL},
    };
    hr__lua_new_class(L, LISTENER_MT, methods, l_close, l_tostring);
    /* The class of the sockets accept returns, unless helios.core registered it first. */
    hr__lua_open_sock_class(L);

    static const luaL_Reg funcs[] = {
        {"sock_listen", l_listen},
        {"sock_poll", l_poll},
        {"frame_encode", l_frame_encode},
        {NULL, NULL},
    };
    luaL_register(L, NULL, funcs);
}
