/*
 * client_binding.h: the framed socket client of the Lua module `helios.core`
 * (csrc/lua/client_binding.c): what the control socket's client (helios.client) and
 * `helios cluster` use: non-blocking steps, and blocking forms that poll between them.
 * luaopen_helios_core calls hr__lua_open_client once, with the module table at the top of
 * the stack.
 *
 * Two copies, one class. helios.testkit links its own copy of client_binding.c (Lua loads
 * each C module with RTLD_LOCAL, so neither can call the other's functions): its listeners
 * (csrc/testkit/sock_listen.c) accept connections as sockets of this class, which the
 * specs then use with helios.core's functions and vice versa. Both copies register the
 * metatable HR__LUA_SOCK_MT through hr__lua_new_class, which keeps the first one made in
 * the lua_State, whichever module made it; the other module's sockets then run the first
 * module's methods. That is sound because both copies are compiled from this one file:
 * the same struct layout and the same methods. Keep it so: a method or field that only one
 * module had would make the class depend on which module was loaded first. (The methods'
 * code lives in the .so that made the metatable, which was loaded before any socket
 * existed; Lua finalizes newer userdata first, so a socket's __gc never outlives it.)
 *
 * Threading: the thread that owns the lua_State. A blocking form blocks at most its
 * timeout; the try_* steps never block.
 */
#ifndef HR_LUA_CLIENT_BINDING_H
#define HR_LUA_CLIENT_BINDING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include <lua.h>

/* The sockets' class, shared by helios.core and helios.testkit (see above). */
#define HR__LUA_SOCK_MT "helios.core.sock"

/* Add sock_connect, sock_connect_start and poll_fd to the table at the top of the stack
 * (left there), and register the socket class. Returns 0. */
int hr__lua_open_client(lua_State *L);

/* Register the socket class (HR__LUA_SOCK_MT) unless the lua_State has it already: before
 * hr__lua_push_sock in a module that does not call hr__lua_open_client (helios.testkit). */
void hr__lua_open_sock_class(lua_State *L);

/* Push fd (owned by the socket from now on: its close or __gc closes it) as a socket of
 * the class, which must be registered. fd must be non-blocking. */
void hr__lua_push_sock(lua_State *L, int fd);

/* The socket at stack index idx (raises a Lua error if it is not one): its descriptor (-1
 * once closed), and in *buffered whether it holds bytes already read (a try_* step may
 * return an item without the descriptor being readable). */
int hr__lua_check_sock(lua_State *L, int idx, int *buffered);

/* What a socket tells before its descriptor is closed (by close, by an error, or by its
 * __gc): before_close(arg), once, then the hook is cleared. One user at a time: the
 * watcher of core.watch_sock (sock_watch.c), which must let go of the descriptor while it
 * is still open. */
struct hr__lua_sock_hook {
    void (*before_close)(void *arg);
    void *arg;
};

/* The hook of the socket at stack index idx (raises a Lua error if it is not one), and its
 * descriptor in *fd (-1 once closed). */
struct hr__lua_sock_hook *hr__lua_sock_hook(lua_State *L, int idx, int *fd);

/* The deadline (hr__lua_clock_ms milliseconds) of an optional timeout_ms argument at idx:
 * 5000 ms if absent; raises "Usage: ..." if negative. */
int64_t hr__lua_check_deadline(lua_State *L, int idx);

/* Wait until fd is ready for events (POLLIN, POLLOUT) or the deadline passes: 1 ready,
 * 0 timeout, -1 error (errno). Retries on EINTR. */
int hr__lua_wait_fd(int fd, short events, int64_t deadline);

/* Split "host:port" at the last colon into host and port (NUL-terminated, within hostlen
 * and portlen bytes): 1, or 0 if addr is not of that form (a unix socket path). */
int hr__lua_split_hostport(const char *addr, char *host, size_t hostlen, char *port,
                           size_t portlen);

/* A non-blocking, close-on-exec unix stream socket and the address of path in *sun: the
 * descriptor (the caller owns it), or -1 with nil, code, detail pushed (the path is too
 * long, or socket() failed). */
int hr__lua_unix_socket(lua_State *L, const char *path, struct sockaddr_un *sun);

#endif
