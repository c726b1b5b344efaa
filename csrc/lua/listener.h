/*
 * listener.h: what the listening servers of helios.core share (metrics_http.c,
 * resp_server.c, control.c): the listening handle and its close, the count of handles that
 * keeps the server allocated, the server's Lua userdata (close, __gc, address), and the
 * binding of a TCP listen address with its error codes. Each server keeps its protocol,
 * its connections and its limits in its own file.
 *
 * Use: a server struct has a struct hr__listener as its FIRST member (the handles' data
 * and the userdata point at it, and the server is reached by a cast), is made by
 * hr__listener_alloc and set up with hr__listener_init. Its connections have a struct
 * hr__listener_conn as their first member: the listener keeps the list of the open ones
 * and their count, and closes them (ops->close_conn) when it closes.
 *
 * Ownership: the server is malloc'd; libuv owns its handles until their close callbacks.
 * pending counts the handles not yet closed (the listening one, any other the server
 * adds, and one per connection: the server adds it at accept and calls
 * hr__listener_unref from the connection's last close callback); at zero the server is
 * freed and its use of the loop released (hr__loop_retain/release, loop.h). The Lua
 * userdata only points at the server; close and __gc clear that pointer.
 *
 * Admission. Every server listens with one backlog (hr__listener_backlog: 511, as
 * redis-server, or the kernel's somaxconn when lower), so that a burst of clients that
 * connect at once waits in the kernel instead of being refused. A server may bound its
 * connections (max_clients, hr__listener_full): the one beyond is accepted all the same,
 * told why in its own protocol (hr__listener_refuse) and closed, so that the client gets a
 * clear answer rather than a connect that hangs in a full backlog. Refused connections are
 * counted (refused) and kept apart from conns: they do not count toward n_conns.
 *
 * Writes once per loop turn. A server whose connections are answered outside their read
 * callback (a reply made when an entry commits) does not write each answer as it comes:
 * it appends it to the connection's output and marks the connection
 * (hr__listener_mark_dirty). A check handle, which runs after the poll phase whose
 * callbacks made the answers, then hands each marked connection to ops->flush_dirty once:
 * one write per connection per turn, however many answers it got. An idle handle is
 * active with it, so an answer made after this turn's check phase (the prepare phase
 * applies entries too) goes out at the next turn without waiting for an event.
 *
 * Threading: everything runs on the thread that owns the lua_State (the loop's thread).
 */
#ifndef HR_LUA_LISTENER_H
#define HR_LUA_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

/* The listen backlog asked for: redis-server's, which the kernel lowers to somaxconn. */
#define HR__LISTEN_BACKLOG 511
/* max_clients when not given: redis-server's maxclients. */
#define HR__DEFAULT_MAX_CLIENTS 10000
#define HR__MAX_MAX_CLIENTS 1000000

struct hr__lloop;
struct hr__listener;
struct hr__refusal;

typedef void (*hr__listener_fn)(struct hr__listener *l);

/* The first member of a server's connection. */
struct hr__listener_conn {
    struct hr__listener_conn *next;
    struct hr__listener_conn *dirty_next; /* in the server's dirty list (while dirty) */
    bool dirty;
};

/* What differs per server; a static const of each. */
struct hr__listener_ops {
    /* Close the connection c (which calls hr__listener_remove_conn). */
    void (*close_conn)(struct hr__listener_conn *c);
    hr__listener_fn close_rest; /* on close, after the connections: other handles; or NULL */
    hr__listener_fn release;    /* at pending 0: free the server (NULL: free(l)) */
    /* Write what the connection c was answered (NULL: the server has no dirty list). Once
     * per loop turn, in the check phase, for each connection marked since (see "Writes
     * once per loop turn" above). */
    void (*flush_dirty)(struct hr__listener_conn *c);
};

struct hr__listener {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;                   /* the listening handle; its data is the listener */
    struct hr__lloop *lp;
    int handler_ref;       /* the Lua handler; LUA_NOREF until listening and once closing */
    int pending;           /* handles not yet closed (see above) */
    bool closing;
    struct hr__listener_conn *conns; /* the open connections */
    size_t n_conns;
    const struct hr__listener_ops *ops;
    uv_check_t check;      /* with flush_dirty: flushes the dirty connections */
    uv_idle_t idle;        /* active with check: the poll does not block meanwhile */
    struct hr__listener_conn *dirty;
    size_t max_clients;            /* 0: no bound (the server's own, if any) */
    uint64_t refused;              /* connections refused for max_clients, since listen */
    struct hr__refusal *refusals;  /* refused ones being told why (listener.c) */
    size_t n_refusals;
};

/* The server's userdata; l is NULL until it listens and once it is closed. */
struct hr__listener_ud {
    struct hr__listener *l;
};

/* Set up l on lp (retained): handles is the count of handles the server will init, the
 * listening one included (the check and idle handles of a dirty list are the listener's:
 * not counted there). */
void hr__listener_init(struct hr__listener *l, struct hr__lloop *lp, int handles,
                       const struct hr__listener_ops *ops);
/* Mark c to be flushed (ops->flush_dirty) in this loop turn's check phase; marking a
 * marked connection does nothing. */
void hr__listener_mark_dirty(struct hr__listener *l, struct hr__listener_conn *c);
/* An accepted connection joins the list (n_conns counts it); one that closes leaves it,
 * and the dirty list (a second remove does nothing). */
void hr__listener_add_conn(struct hr__listener *l, struct hr__listener_conn *c);
void hr__listener_remove_conn(struct hr__listener *l, struct hr__listener_conn *c);
/* One of the server's handles (or connections) is closed. */
void hr__listener_unref(struct hr__listener *l);
/* A uv_close callback for the server's own handles (their data is the listener). */
void hr__listener_closed(uv_handle_t *h);
/* Close the server once: its connections, close_rest, drop the handler, close the
 * listening handle. Also what undoes a failed bind or listen (no connections then). */
void hr__listener_close(struct hr__listener *l);

/* The backlog every listening socket is given: HR__LISTEN_BACKLOG, or the kernel's
 * somaxconn (/proc/sys/net/core/somaxconn) when that is lower (read once). */
int hr__listener_backlog(void);
/* Whether one more connection would be beyond max_clients. */
bool hr__listener_full(const struct hr__listener *l);
/* From the connection callback, instead of accepting into a connection of the server:
 * accept the pending connection, write msg (len bytes, which must live as long as the
 * server; NULL: none), shut down our side, discard what the client sends until it closes
 * (or a few seconds pass), then close. Reading first keeps a client that sent a request
 * from losing msg to a reset. Counted in refused. Never fails to take the connection off
 * the backlog unless out of memory. */
void hr__listener_refuse(struct hr__listener *l, const char *msg, size_t len);
/* max_clients from field "max_clients" of the options table at idx (absent, or not a
 * table: HR__DEFAULT_MAX_CLIENTS); raises "<what>: max_clients must be ..." otherwise. */
size_t hr__listener_opt_max_clients(lua_State *L, int idx, const char *what);

/* Push a new userdata of metatable mt, pointing at no server yet (*ud), and return a
 * zeroed server of size bytes for it, to set up with hr__listener_init; raises
 * "<what>: out of memory". */
void *hr__listener_alloc(lua_State *L, const char *mt, size_t size, const char *what,
                         struct hr__listener_ud **ud);
/* The server listens: anchor the handler at handler_idx and point u at l. Returns 1 (the
 * userdata stays on the stack as the result). */
int hr__listener_ready(lua_State *L, struct hr__listener_ud *u, struct hr__listener *l,
                       int handler_idx);
/* Make the server userdata's metatable mt (once per lua_State, as hr__lua_new_class):
 * srv:close(), a __gc that closes too (but not once the loop is being finalized),
 * srv:clients() (nil once closed, or { clients = open connections, refused = refused for
 * max_clients since listen, max_clients = the bound or nil }), with tcp
 * srv:address() ("host:port" or "[host]:port" as bound, or nil), and the methods of extra
 * (NULL: none), which check their userdata themselves. */
void hr__listener_new_class(lua_State *L, const char *mt, bool tcp, const luaL_Reg *extra);

/* TCP. Parse addr (host:port, see hr_tcp_parse_addr) into sa: 0, or push nil, "invalid",
 * a message naming what ("metrics", "resp") and return 3. */
int hr__listener_tcp_addr(lua_State *L, const char *what, const char *addr,
                          struct sockaddr_storage *sa);
/* Init the listening handle as TCP, bind it to sa and listen (hr__listener_backlog): 0,
 * or close the server and push nil, "busy" (address in use) or "io", "<what> listen
 * <addr>: <why>" and return 3. */
int hr__listener_tcp_listen(lua_State *L, struct hr__listener *l, const char *what,
                            const char *addr, const struct sockaddr_storage *sa,
                            uv_connection_cb cb);

/* A connection's read buffer for libuv's alloc callback: grow *buf (capacity *cap, *len
 * bytes kept from earlier reads, such as a partial frame) so that at least `want` more
 * bytes fit, and point out at the free space behind what is kept. Reads then land in the
 * connection's buffer: no buffer per read, no copy. Out of memory: out is empty, which
 * libuv reports as UV_ENOBUFS, and the connection closes. */
void hr__listener_read_buf(char **buf, size_t *cap, size_t len, size_t want, uv_buf_t *out);

#endif
