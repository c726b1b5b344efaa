/*
 * resp_server.c: the Redis-protocol (RESP2) client port: a libuv TCP server whose requests
 * go to a Lua handler (the commands are lua/helios/resp.lua's). Replies are encoded from
 * Lua values by resp_reply.c, which also has the binding of the parser and encoder
 * (csrc/transport/resp.h) for specs.
 *
 *   local srv, code, detail = core.resp_listen("127.0.0.1:6379", function(conn, argv)
 *       return reply                    -- answered now, or:
 *       -- local answer = conn:defer()  -- answer(reply) later, once (true | false)
 *   end, { max_args =, max_bulk =, max_inline =, max_output =, max_pending =,
 *          max_clients = })
 *   srv:address()   --> "127.0.0.1:6379" (the bound port when 0 was asked)   srv:close()
 *   srv:clients()   --> { clients =, refused =, max_clients = } (listener.h)
 *   conn:close()    -- finish the replies owed so far, then close; read nothing more
 *   conn:id()       -- a number unique per server
 *   core.resp_encode(reply) --> bytes
 *   core.resp_parse(bytes[, limits]) --> { argv, ... }, rest | nil, "Protocol error: ..."
 *
 * Replies as Lua values: a string is a bulk string, nil or false a null bulk, true "+OK",
 * an integral number an integer (another number a bulk string of it), { ok = s } a simple
 * string, { err = s } an error ("-s"), { null_array = true } a null array, any other table
 * an array of its elements 1..(t.n or #t), nested at most 32 deep.
 *
 * Order. Every request gets a slot in its connection's queue when it is read; a reply
 * fills its slot, and the filled slots at the head of the queue are written. So a client
 * that pipelines gets its replies in request order even when a later request is answered
 * first (a deferred write waits for the log, a read does not).
 *
 * Writes. The replies a connection owes are written together, with one write: those of
 * the requests of one read when they answer at once, and deferred answers at the end of
 * the loop turn they were given in (the listener's dirty list: listener.h, "Writes once
 * per loop turn"). A write per answer cost a system call and a TCP segment per reply:
 * with many requests pipelined per connection and answered by the same batch of entries,
 * most of the time.
 *
 * Errors. A malformed request gets "-ERR Protocol error: ...", after the replies owed
 * before it, and then the connection is closed, as redis-server does. A handler that
 * raises answers "-ERR <message>"; the connection and the process go on (the handler runs
 * in a protected call of its own, not through hr__loop_call, which would stop the loop).
 *
 * Bounds. A connection stops reading while max_pending requests are unanswered or while
 * more than max_output bytes of replies are queued for a client that does not read them
 * (it resumes once they drain), so a client costs at most about that much memory beyond
 * one request (which the parser's limits bound).
 *
 * Admission. The listen backlog is listener.c's (511, or somaxconn when lower). A client
 * beyond max_clients (default 10000, as redis-server's maxclients) open connections reads
 * "-ERR max number of clients reached", as redis-server answers, then end of file.
 *
 * Lifetimes as in control.c: server and connections are malloc'd, libuv owns their handles
 * until the close callbacks; the Lua userdata of a connection and of a deferred answer
 * hold pointers that are cleared when what they point at goes, so a late answer returns
 * false instead of touching freed memory.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <uv.h>

#include "../core/array.h"
#include "../transport/resp.h"
#include "binding.h"
#include "listener.h"
#include "loop.h"
#include "resp_server.h"

#define SERVER_MT "helios.core.resp_server"
#define CONN_MT "helios.core.resp_conn"
#define SLOT_MT "helios.core.resp_slot"
#define CURRENT_KEY "helios.core.resp_current"
/* What a client beyond max_clients reads before end of file: redis-server's words for
 * it, which clients look for. */
#define MAX_CLIENTS_REPLY "-ERR max number of clients reached\r\n"
#define DEFAULT_MAX_OUTPUT ((size_t)64 << 20)
#define DEFAULT_MAX_PENDING 1024
/* Replies made while reading a connection's requests are written once this many bytes
 * are ready, so that max_output bounds what a long pipeline of large replies holds. */
#define FLUSH_BYTES ((size_t)64 << 10)
/* Replies up to this many bytes are gathered for their write on the stack. */
#define STACK_GATHER ((size_t)16 << 10)

struct server;
struct conn;

struct slot {
    struct slot *next;
    struct slot_ud *ud; /* a deferred answer's userdata, or NULL */
    bool filled;
    struct hr_resp_buf out;
};

struct slot_ud {
    struct slot *s;
    struct conn *c;
};

struct conn {
    struct hr__listener_conn link; /* first: in the server's list */
    uv_tcp_t tcp;
    uv_shutdown_t shutdown;
    struct server *srv;
    struct conn_ud *ud;
    int ud_ref;
    double id;
    char *buf;
    size_t len, cap;
    struct hr_resp_parser parser;
    struct slot *head, *tail;
    size_t pending;   /* slots in the queue */
    struct slot *spare; /* written slots kept for the next requests, with their buffers */
    size_t n_spare;
    size_t unflushed; /* reply bytes made in this process() call and not yet written */
    bool reading, closing, quit; /* quit: close once the queue is empty */
    bool in_process;
};

struct conn_ud {
    struct conn *c;
};

struct server {
    struct hr__listener l; /* first: the listening socket, handler, close, dirty list */
    struct hr_resp_limits lim;
    size_t max_output, max_pending;
    double next_id;
};

/* ---- connections ---- */

/* Slots kept per connection, and the reply bytes a kept slot's buffer may hold: a
 * connection's requests reuse them, so that a request and its reply cost no malloc once a
 * connection has warmed up (about one pipeline's worth of slots is live at a time). */
#define SPARE_SLOTS 64
#define SPARE_BUF_BYTES ((size_t)4 << 10)

/* A written slot: kept for reuse, or freed. */
static void release_slot(struct conn *c, struct slot *s)
{
    if (c->n_spare < SPARE_SLOTS && s->out.cap <= SPARE_BUF_BYTES) {
        s->out.len = 0;
        s->next = c->spare;
        c->spare = s;
        c->n_spare++;
        return;
    }
    hr_resp_buf_free(&s->out);
    free(s);
}

static void free_slots(struct conn *c)
{
    while (c->spare != NULL) {
        struct slot *s = c->spare;
        c->spare = s->next;
        hr_resp_buf_free(&s->out);
        free(s);
    }
    c->n_spare = 0;
    while (c->head != NULL) {
        struct slot *s = c->head;
        c->head = s->next;
        if (s->ud != NULL) {
            s->ud->s = NULL;
            s->ud->c = NULL;
        }
        hr_resp_buf_free(&s->out);
        free(s);
    }
    c->tail = NULL;
    c->pending = 0;
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct server *s = c->srv;
    free_slots(c);
    hr_resp_parser_free(&c->parser);
    free(c->buf);
    free(c);
    hr__listener_unref(&s->l);
}

static void conn_shut(uv_shutdown_t *req, int status)
{
    (void)status;
    uv_close((uv_handle_t *)req->handle, conn_closed);
}

static void conn_close(struct conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    struct server *s = c->srv;
    hr__listener_remove_conn(&s->l, &c->link); /* (and off the dirty list) */
    /* Deferred answers may still be called: they find no slot. */
    for (struct slot *sl = c->head; sl != NULL; sl = sl->next) {
        if (sl->ud != NULL) {
            sl->ud->s = NULL;
            sl->ud->c = NULL;
            sl->ud = NULL;
        }
    }
    if (c->ud != NULL) {
        c->ud->c = NULL;
        c->ud = NULL;
    }
    hr__loop_unref(s->l.lp, c->ud_ref);
    c->ud_ref = LUA_NOREF;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, conn_shut) != 0) {
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
}

struct write_req {
    uv_write_t req;
    struct conn *c;
    size_t len;
    char data[];
};

static void process(struct conn *c);
static void update_reading(struct conn *c);

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = w->c;
    free(w);
    if (status == UV_ECANCELED) {
        return; /* the handle is being closed; c may be going */
    }
    if (c->closing) {
        return;
    }
    if (status != 0) {
        conn_close(c);
        return;
    }
    update_reading(c);
    process(c);
}

/* Write the filled slots at the head of the queue, in order, as one write. */
static void flush(struct conn *c)
{
    size_t total = 0;
    for (struct slot *s = c->head; s != NULL && s->filled; s = s->next) {
        total += s->out.len;
    }
    if (total > 0) {
        /* Gathered on the stack when small (the common case: no allocation), else in the
         * write request itself. */
        char small[STACK_GATHER];
        struct write_req *w = NULL;
        char *data = small;
        if (total > sizeof small) {
            w = malloc(sizeof *w + total);
            if (w == NULL) {
                conn_close(c);
                return;
            }
            data = w->data;
        }
        size_t off = 0;
        while (c->head != NULL && c->head->filled) {
            struct slot *s = c->head;
            if (s->out.len > 0) { /* an empty request's slot has no bytes */
                memcpy(data + off, s->out.data, s->out.len);
            }
            off += s->out.len;
            c->head = s->next;
            c->pending--;
            release_slot(c, s);
        }
        if (c->head == NULL) {
            c->tail = NULL;
        }
        /* Tried at once: a queued uv_write costs an epoll_ctl to watch for writability
         * and another to stop, about as much as the write itself; only what the kernel
         * does not take now is queued (uv_try_write says UV_EAGAIN while an earlier
         * write is queued, so the order holds). */
        uv_buf_t b = uv_buf_init(data, (unsigned)total);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            free(w);
            conn_close(c);
            return;
        }
        size_t done = n > 0 ? (size_t)n : 0;
        if (done < total) {
            size_t rest = total - done;
            if (w == NULL) {
                w = malloc(sizeof *w + rest);
                if (w == NULL) {
                    conn_close(c);
                    return;
                }
                memcpy(w->data, data + done, rest);
                done = 0;
            }
            w->c = c;
            w->len = rest;
            b = uv_buf_init(w->data + done, (unsigned)rest);
            if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
                free(w);
                conn_close(c);
                return;
            }
        } else {
            free(w);
        }
    } else {
        while (c->head != NULL && c->head->filled) { /* empty replies: none are made */
            struct slot *s = c->head;
            c->head = s->next;
            c->pending--;
            release_slot(c, s);
        }
        if (c->head == NULL) {
            c->tail = NULL;
        }
    }
    if (c->quit && c->head == NULL) {
        conn_close(c); /* uv_shutdown: after the writes queued above */
    }
}

/* Reply bytes libuv holds because the kernel would not take them: the client is behind. */
static size_t queued_output(const struct conn *c)
{
    return c->tcp.write_queue_size;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Read while the client is owed little: see "Bounds" above. */
static void update_reading(struct conn *c)
{
    bool want = !c->closing && !c->quit && c->pending < c->srv->max_pending &&
                queued_output(c) <= c->srv->max_output;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
            c->reading = true;
        }
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static struct slot *new_slot(struct conn *c)
{
    struct slot *s = c->spare;
    if (s != NULL) {
        c->spare = s->next;
        c->n_spare--;
        struct hr_resp_buf out = s->out; /* (len 0: its allocation is what is kept) */
        memset(s, 0, sizeof *s);
        s->out = out;
    } else {
        s = calloc(1, sizeof *s);
    }
    if (s == NULL) {
        return NULL;
    }
    if (c->tail != NULL) {
        c->tail->next = s;
    } else {
        c->head = s;
    }
    c->tail = s;
    c->pending++;
    return s;
}

/* Fill s with an error reply (no Lua: used where Lua failed). */
static void fill_error(struct conn *c, struct slot *s, const char *msg)
{
    (void)c;
    s->out.len = 0;
    if (hr_resp_put_error(&s->out, msg, strlen(msg)) != 0) {
        s->out.len = 0;
    }
    s->filled = true;
}

struct call {
    struct conn *c;
    struct slot *slot;
    const char *req;
};

/* Protected (lua_cpcall): call the handler with (conn, argv) and encode what it returns
 * into the slot, unless it deferred the answer. A handler error becomes "-ERR <msg>". */
static int call_handler(lua_State *L)
{
    struct call *k = lua_touserdata(L, 1);
    struct conn *c = k->c;
    struct hr_resp_parser *p = &c->parser;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->srv->l.handler_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ud_ref);
    lua_createtable(L, (int)p->argc, 0);
    for (size_t i = 0; i < p->argc; i++) {
        lua_pushlstring(L, k->req + p->args[i].off, p->args[i].len);
        lua_rawseti(L, -2, (int)i + 1);
    }
    /* The slot conn:defer() takes; saved and restored, as an answer given in one handler
     * may run another connection's handlers. */
    lua_getfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
    lua_insert(L, 1);
    lua_pushlightuserdata(L, k->slot);
    lua_setfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
    int rc = lua_pcall(L, 2, 1, 0);
    lua_pushvalue(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
    struct slot *s = k->slot;
    if (c->closing || s->filled) {
        return 0; /* closed meanwhile, or deferred and answered already */
    }
    if (rc == 0 && s->ud != NULL) {
        return 0; /* deferred: answered later */
    }
    if (rc != 0) {
        if (s->ud != NULL) { /* deferred, then raised: the error is the answer */
            s->ud->s = NULL;
            s->ud->c = NULL;
            s->ud = NULL;
        }
        size_t n;
        const char *e = lua_tolstring(L, -1, &n);
        if (e == NULL) {
            e = "error object is not a string";
        }
        lua_pushfstring(L, "ERR %s", e);
        e = lua_tolstring(L, -1, &n);
        hr_resp_put_error(&s->out, e, n);
        s->filled = true;
        return 0;
    }
    int erc = hr__resp_encode_lua(L, lua_gettop(L), &s->out, 0);
    if (erc != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "ERR %s", hr__resp_encode_error(erc));
        s->out.len = 0;
        hr_resp_put_error(&s->out, msg, strlen(msg));
    }
    s->filled = true;
    return 0;
}

/* Handle every complete request in the buffer, as far as the bounds allow. */
static void process(struct conn *c)
{
    if (c->in_process) {
        return; /* a write completed inside a handler: the outer call goes on */
    }
    c->in_process = true;
    size_t off = 0;
    /* The bounds hold for requests already read too: a pipeline of requests with large
     * replies waits in the buffer while the client does not read what it was sent. */
    while (!c->closing && !c->quit && c->pending < c->srv->max_pending &&
           queued_output(c) <= c->srv->max_output && off < c->len) {
        size_t used = 0;
        int rc = hr_resp_parse(&c->parser, c->buf + off, c->len - off, &used);
        if (rc == HR_RESP_MORE) {
            break;
        }
        struct slot *s = new_slot(c);
        if (s == NULL) {
            conn_close(c);
            break;
        }
        if (rc == HR_RESP_ERROR) {
            char msg[128];
            snprintf(msg, sizeof msg, "ERR %s", c->parser.err);
            fill_error(c, s, msg);
            c->quit = true;
            break;
        }
        const char *req = c->buf + off;
        off += used;
        if (c->parser.argc == 0) {
            s->filled = true; /* no command, no reply: the slot goes with the next flush */
        } else {
            struct call k = {c, s, req};
            if (hr__loop_cpcall(c->srv->l.lp, call_handler, &k) != 0 && !c->closing && !s->filled &&
                s->ud == NULL) {
                fill_error(c, s, "ERR out of memory");
            }
        }
        c->unflushed += s->out.len;
        if (!c->closing && c->unflushed >= FLUSH_BYTES) {
            c->unflushed = 0;
            flush(c);
        }
    }
    c->in_process = false;
    c->unflushed = 0;
    if (c->closing) {
        return; /* the buffer stays ours until conn_closed */
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    flush(c);
    update_reading(c);
}

/* Bytes read per read call at least: a pipelined burst of requests, typically. */
#define READ_BYTES ((size_t)16 << 10)

/* Reads land in the connection's buffer, behind the requests not handled yet: no buffer
 * per read, no copy. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    hr__listener_read_buf(&c->buf, &c->cap, c->len, READ_BYTES, buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf; /* c->buf + c->len (on_alloc) */
    struct conn *c = stream->data;
    if (nread < 0) {
        conn_close(c); /* gone, mid-request or not: its unanswered slots are dropped */
        return;
    }
    if (nread > 0 && !c->closing && !c->quit) {
        c->len += (size_t)nread;
    }
    process(c);
}

/* Protected: make the connection's userdata and anchor it. */
static int make_conn_ud(lua_State *L)
{
    struct conn *c = lua_touserdata(L, 1);
    struct conn_ud *u = lua_newuserdata(L, sizeof *u);
    u->c = c;
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
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
        hr__listener_refuse(&s->l, MAX_CLIENTS_REPLY, sizeof MAX_CLIENTS_REPLY - 1);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        hr__listener_refuse(&s->l, NULL, 0); /* off the backlog, or libuv stops accepting */
        return;
    }
    c->srv = s;
    c->ud_ref = LUA_NOREF;
    c->id = ++s->next_id;
    hr_resp_parser_init(&c->parser, &s->lim);
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    s->l.pending++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        hr__loop_cpcall(s->l.lp, make_conn_ud, c) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    hr__listener_add_conn(&s->l, &c->link);
    update_reading(c);
}

/* The check phase (listener.h, "Writes once per loop turn"): write what c was answered in
 * this loop turn, then go on with the requests it has buffered (a connection stops at
 * max_pending unanswered). */
static void flush_dirty(struct hr__listener_conn *lc)
{
    struct conn *c = (struct conn *)lc;
    flush(c);
    if (!c->closing) {
        update_reading(c);
        process(c);
    }
}

/* conn:defer() -> answer: answer(reply) fills this request's slot (once; true, or false
 * when the connection is gone or it was answered). Only while the handler runs. */
static int l_answer(lua_State *L)
{
    struct slot_ud *u = luaL_checkudata(L, lua_upvalueindex(1), SLOT_MT);
    struct slot *s = u->s;
    struct conn *c = u->c;
    if (s == NULL || c == NULL || c->closing || s->filled) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_settop(L, 1);
    s->out.len = 0; /* (its buffer may be a reused slot's) */
    int rc = hr__resp_encode_lua(L, 1, &s->out, 0);
    if (rc != 0) {
        s->out.len = 0;
        return luaL_error(L, "%s", hr__resp_encode_error(rc));
    }
    s->filled = true;
    s->ud = NULL;
    u->s = NULL;
    u->c = NULL;
    if (!c->in_process) { /* (in process(): it flushes when done) */
        hr__listener_mark_dirty(&c->srv->l, &c->link);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static struct conn *check_conn(lua_State *L)
{
    struct conn_ud *u = luaL_checkudata(L, 1, CONN_MT);
    return u->c;
}

static int l_defer(lua_State *L)
{
    struct conn *c = check_conn(L);
    lua_getfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
    struct slot *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (c == NULL || s == NULL || s->filled || s->ud != NULL) {
        return luaL_error(L, "conn:defer: only once, from the handler of a live connection");
    }
    struct slot_ud *u = lua_newuserdata(L, sizeof *u);
    u->s = s;
    u->c = c;
    luaL_getmetatable(L, SLOT_MT);
    lua_setmetatable(L, -2);
    s->ud = u;
    lua_pushcclosure(L, l_answer, 1);
    return 1;
}

static int l_conn_close(lua_State *L)
{
    struct conn *c = check_conn(L);
    if (c != NULL && !c->quit) {
        c->quit = true;
        update_reading(c);
        if (!c->in_process) {
            flush(c);
        }
    }
    return 0;
}

static int l_conn_id(lua_State *L)
{
    struct conn *c = check_conn(L);
    if (c == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushnumber(L, c->id);
    }
    return 1;
}

/* ---- the server ---- */

static void close_conn(struct hr__listener_conn *c)
{
    conn_close((struct conn *)c);
}

static const struct hr__listener_ops ops = {close_conn, NULL, NULL, flush_dirty};

/* core.resp_listen(addr, handler[, opts]) -> server | nil, code, detail */
static int l_listen(lua_State *L)
{
    const char *addr = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    struct hr_resp_limits lim;
    hr__resp_read_limits(L, 3, &lim);
    size_t max_output = hr__resp_opt_size(L, 3, "max_output", DEFAULT_MAX_OUTPUT, (size_t)1 << 40);
    size_t max_pending = hr__resp_opt_size(L, 3, "max_pending", DEFAULT_MAX_PENDING, (size_t)1 << 30);
    size_t max_clients = hr__listener_opt_max_clients(L, 3, "resp_listen");
    struct sockaddr_storage sa;
    if (hr__listener_tcp_addr(L, "resp", addr, &sa) != 0) {
        return 3;
    }
    struct hr__lloop *lp = hr__loop_get(L);
    struct hr__listener_ud *u;
    struct server *s = hr__listener_alloc(L, SERVER_MT, sizeof *s, "resp_listen", &u);
    s->lim = lim;
    s->max_output = max_output;
    s->max_pending = max_pending;
    hr__listener_init(&s->l, lp, 1, &ops); /* the listener (and its check and idle) */
    s->l.max_clients = max_clients;
    if (hr__listener_tcp_listen(L, &s->l, "resp", addr, &sa, on_connection) != 0) {
        return 3;
    }
    return hr__listener_ready(L, u, &s->l, 2);
}


static const luaL_Reg conn_methods[] = {
    {"defer", l_defer},
    {"close", l_conn_close},
    {"id", l_conn_id},
    {NULL, NULL},
};

static const luaL_Reg no_methods[] = {
    {NULL, NULL},
};

int hr__lua_open_resp(lua_State *L)
{
    hr__listener_new_class(L, SERVER_MT, true, NULL);
    hr__lua_new_class(L, CONN_MT, conn_methods, NULL, NULL);
    hr__lua_new_class(L, SLOT_MT, no_methods, NULL, NULL); /* one per deferred answer */
    lua_pushcfunction(L, l_listen);
    lua_setfield(L, -2, "resp_listen");
    return 0;
}
