/*
 * node_binding.c: core.node_new, a struct hr_runtime as Lua userdata (see node_binding.h).
 *
 * The hooks table is the userdata's environment. A started node is pinned by a registry
 * reference to its userdata until its shutdown completes: the runtime calls back into it
 * from the loop, and a running node that nobody references must keep running.
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "../core/crc32c.h"
#include "../node/runtime.h"
#include "../storage/snapshot.h"
#include "binding.h"
#include "fs_binding.h"
#include "loop.h"
#include "node_binding.h"

#define NODE_MT "helios.core.node"

/* Slots of the environment table: the hooks, and the fs option's object (kept so that a
 * test can steer the file system it passed without holding on to it). */
enum {
    HOOK_APPLY = 1,
    HOOK_STATE,
    HOOK_ERROR,
    HOOK_LOG,
    HOOK_RESTORE,
    HOOK_READ,
    HOOK_APPLY_BATCH,
    HOOK_DONE,
    SLOT_FS
};

struct lnode {
    struct hr_runtime *rt; /* NULL once shut down */
    struct hr__lloop *lp;
    struct hr_lua_fs *fs;  /* the fs option (a reference, fs_binding.h), NULL: POSIX;
                            * dropped once the runtime is freed */
    int self_ref;          /* LUA_NOREF unless started and not yet closed */
    bool started, closing;
    bool fsm_failed;       /* a hook raised: deliver no more entries. The Lua hooks catch
                            * the FSM's own errors (helios.raft: apply_entry, fsm_error),
                            * so this is a bug in a hook, reported by raft.run() */
    char name[128];
};

static struct lnode *check_node(lua_State *L)
{
    return luaL_checkudata(L, 1, NODE_MT);
}

struct hr_runtime *hr__lua_node_runtime(lua_State *L, int idx)
{
    struct lnode *n = luaL_checkudata(L, idx, NODE_MT);
    return n->rt != NULL && !n->closing ? n->rt : NULL;
}

static struct lnode *check_open(lua_State *L, const char *method)
{
    struct lnode *n = check_node(L);
    if (n->rt == NULL || n->closing) {
        luaL_error(L, "node:%s: the node is shut down", method);
    }
    return n;
}

/* ---- hooks (called by the runtime from loop callbacks) ---- */

struct hook_args {
    struct lnode *n;
    int slot;
    const struct hr_entry *e;
    size_t n_entries; /* APPLY_BATCH: e[0 .. n_entries) */
    int role;
    hr_term_t term;
    const char *leader;
    int code;
    const char *msg;
    hr_index_t index;
    uint64_t read_ctx;
    hr_time_t time_ms; /* READ: the leader's clock at the read index, 0 unknown */
};

static int noop(lua_State *L)
{
    (void)L;
    return 0;
}

/* apply_batch(t, n): t a new table of n entries, 5 slots each (index, term, type, command,
 * time_ms: the apply hook's arguments), so that nothing of a batch outlives its call. */
static void push_batch(lua_State *L, const struct hr_entry *e, size_t n)
{
    lua_createtable(L, (int)(5 * n), 0);
    int t = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        int k = hr__lua_push_entry(L, &e[i]); /* the apply hook's arguments */
        for (int j = k; j >= 1; j--) {
            lua_rawseti(L, t, (int)(5 * i) + j);
        }
    }
    lua_pushinteger(L, (lua_Integer)n);
}

/* Push the hook of a->slot (from the pinned userdata's environment) and its arguments. */
static int push_hook(lua_State *L, void *arg)
{
    struct hook_args *a = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->n->self_ref);
    lua_getfenv(L, -1);
    lua_rawgeti(L, -1, a->slot);
    lua_replace(L, -3);
    lua_pop(L, 1);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        lua_pushcfunction(L, noop); /* no hook: call nothing, uniformly */
    }
    switch (a->slot) {
    case HOOK_APPLY:
        return hr__lua_push_entry(L, a->e);
    case HOOK_APPLY_BATCH:
        push_batch(L, a->e, a->n_entries);
        return 2;
    case HOOK_STATE:
        lua_pushstring(L, hr_role_name(a->role));
        lua_pushnumber(L, (lua_Number)a->term);
        if (a->leader != NULL) {
            lua_pushstring(L, a->leader);
        } else {
            lua_pushnil(L);
        }
        return 3;
    case HOOK_ERROR:
        if (a->code != 0) {
            lua_pushstring(L, hr_err_name(a->code));
        } else {
            lua_pushnil(L);
        }
        lua_pushstring(L, a->msg);
        return 2;
    case HOOK_LOG:
        lua_pushinteger(L, a->code);
        lua_pushstring(L, a->msg);
        return 2;
    case HOOK_RESTORE:
        lua_pushnumber(L, (lua_Number)a->index);
        lua_pushnumber(L, (lua_Number)a->term);
        return 2;
    case HOOK_READ:
        lua_pushnumber(L, (lua_Number)a->read_ctx);
        if (a->code != 0) {
            lua_pushstring(L, hr_err_name(a->code));
        } else {
            lua_pushnil(L);
        }
        lua_pushnumber(L, (lua_Number)a->index);
        if (a->time_ms != 0) {
            lua_pushnumber(L, (lua_Number)a->time_ms);
        } else {
            lua_pushnil(L);
        }
        return 4;
    default:
        return 0;
    }
}

static int call_hook(struct hook_args *a, const char *what)
{
    struct lnode *n = a->n;
    if (n->self_ref == LUA_NOREF) {
        return 0;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s on %s", what, n->name);
    return hr__loop_call(n->lp, push_hook, a, buf);
}

/* The apply hook's name in an error report, made only then (it runs once per entry). */
static void describe_apply(void *arg, char *buf, size_t len)
{
    struct hook_args *a = arg;
    snprintf(buf, len, "fsm apply at index %" PRIu64 " on %s", a->e->index, a->n->name);
}

static void on_apply(void *ctx, const struct hr_entry *e)
{
    struct lnode *n = ctx;
    if (n->fsm_failed || n->self_ref == LUA_NOREF) {
        return;
    }
    struct hook_args a = {.n = n, .slot = HOOK_APPLY, .e = e};
    if (hr__loop_call_described(n->lp, push_hook, &a, describe_apply) != 0) {
        n->fsm_failed = true;
    }
}

static void describe_apply_batch(void *arg, char *buf, size_t len)
{
    struct hook_args *a = arg;
    snprintf(buf, len, "fsm apply of indexes %" PRIu64 "..%" PRIu64 " on %s", a->e->index,
             a->e[a->n_entries - 1].index, a->n->name);
}

/* A run of committed entries, in calls of at most APPLY_BATCH_MAX: the table each call
 * builds stays small when a restart replays a long log. */
#define APPLY_BATCH_MAX 256

static void on_apply_batch(void *ctx, const struct hr_entry *e, size_t count)
{
    struct lnode *n = ctx;
    for (size_t at = 0; at < count; at += APPLY_BATCH_MAX) {
        if (n->fsm_failed || n->self_ref == LUA_NOREF) {
            return;
        }
        size_t k = count - at < APPLY_BATCH_MAX ? count - at : APPLY_BATCH_MAX;
        struct hook_args a = {.n = n, .slot = HOOK_APPLY_BATCH, .e = e + at, .n_entries = k};
        if (hr__loop_call_described(n->lp, push_hook, &a, describe_apply_batch) != 0) {
            n->fsm_failed = true;
        }
    }
}

static void on_state(void *ctx, int role, hr_term_t term, const char *leader)
{
    struct hook_args a = {.n = ctx, .slot = HOOK_STATE, .role = role, .term = term,
                          .leader = leader};
    call_hook(&a, "state observer");
}

static void on_error(void *ctx, int code, const char *msg)
{
    struct hook_args a = {.n = ctx, .slot = HOOK_ERROR, .code = code, .msg = msg};
    call_hook(&a, "error observer");
}

static void on_log(void *ctx, int level, const char *msg)
{
    struct hook_args a = {.n = ctx, .slot = HOOK_LOG, .code = level, .msg = msg};
    call_hook(&a, "log observer");
}

static void on_restore(void *ctx, hr_index_t index, hr_term_t term)
{
    struct lnode *n = ctx;
    struct hook_args a = {.n = n, .slot = HOOK_RESTORE, .index = index, .term = term};
    char what[64];
    snprintf(what, sizeof what, "fsm restore at index %" PRIu64, index);
    if (call_hook(&a, what) != 0) {
        n->fsm_failed = true; /* the FSM is in an unknown state: apply nothing more */
    }
}

/* read(ctx, code_or_nil, index, time_ms_or_nil): code nil means the read may be served now
 * (the FSM has applied up to index; time_ms: the leader's clock when it fixed the index,
 * nil unknown); the hook serves it (runs the read's function on the FSM) before
 * returning, since the next apply may follow at once. A hook error is reported like other
 * observers' and does not stop the node: the FSM was not changed. */
static void on_read(void *ctx, uint64_t read_ctx, hr_index_t index, hr_time_t time_ms, int status)
{
    struct hook_args a = {.n = ctx,
                          .slot = HOOK_READ,
                          .read_ctx = read_ctx,
                          .index = index,
                          .time_ms = time_ms,
                          .code = status};
    call_hook(&a, "read hook");
}

/* ---- node_new ---- */

static const char *opt_string(lua_State *L, int opts, const char *key, bool required)
{
    lua_getfield(L, opts, key);
    if (lua_isnil(L, -1) && !required) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        luaL_error(L, "node_new: %s must be a string (got %s)", key, luaL_typename(L, -1));
    }
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by opts */
    return s;
}

static int cmp_peer(const void *a, const void *b)
{
    return strcmp(((const struct hr_runtime_peer *)a)->name,
                  ((const struct hr_runtime_peer *)b)->name);
}

static int l_node_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    struct hr__lloop *lp = hr__loop_get(L);

    struct hr_runtime_config c;
    memset(&c, 0, sizeof c);
    hr_config_defaults(&c.raft);
    c.name = opt_string(L, 1, "id", true);
    c.data_dir = opt_string(L, 1, "data_dir", true);
    c.listen = opt_string(L, 1, "listen", false);
    c.cluster_id = opt_string(L, 1, "cluster_id", false);
    lua_getfield(L, 1, "secret");
    if (lua_type(L, -1) != LUA_TSTRING) {
        return luaL_error(L, "node_new: secret must be a string");
    }
    c.secret = lua_tolstring(L, -1, &c.secret_len);
    lua_pop(L, 1);
    lua_getfield(L, 1, "config");
    hr__lua_read_config(L, lua_gettop(L), &c.raft);
    lua_pop(L, 1);
    lua_getfield(L, 1, "trailing_logs");
    c.trailing_logs = lua_isnil(L, -1) ? 10240
                                       : (uint32_t)hr__lua_check_uint(L, -1, "trailing_logs", 0,
                                                                      UINT32_MAX);
    lua_pop(L, 1);
    lua_getfield(L, 1, "trailing_logs_bytes");
    c.trailing_logs_bytes = lua_isnil(L, -1) ? (uint64_t)16 << 20
                                             : hr__lua_check_uint(L, -1, "trailing_logs_bytes",
                                                                  1, (1ULL << 53));
    lua_pop(L, 1);
    lua_getfield(L, 1, "snapshot_chunk_bytes");
    c.snapshot_chunk_bytes =
        lua_isnil(L, -1) ? 0
                         : (uint32_t)hr__lua_check_uint(L, -1, "snapshot_chunk_bytes", 1,
                                                        (uint64_t)16 << 20);
    lua_pop(L, 1);
    struct hr_lua_fs *fs = hr__lua_opt_fs(L, 1, "node_new");
    c.fs = hr__lua_fs_of(fs);
    lua_getfield(L, 1, "join");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
        return luaL_error(L, "node_new: join must be a boolean");
    }
    c.join = lua_toboolean(L, -1);
    lua_pop(L, 1);

    struct hr_runtime_peer peers[HR_MAX_NODES];
    size_t np = 0;
    lua_getfield(L, 1, "peers");
    luaL_checktype(L, -1, LUA_TTABLE);
    int pt = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, pt) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
            return luaL_error(L, "node_new: peers must map ids to addresses (strings)");
        }
        if (np == HR_MAX_NODES) {
            return luaL_error(L, "node_new: peers: at most %d nodes", HR_MAX_NODES);
        }
        peers[np].name = lua_tostring(L, -2);
        peers[np].addr = lua_tostring(L, -1);
        np++;
        lua_pop(L, 1);
    }
    /* Sorted: the core's configuration order does not depend on table iteration. */
    qsort(peers, np, sizeof peers[0], cmp_peer);
    c.peers = peers;
    c.n_peers = np;

    struct lnode *n = lua_newuserdata(L, sizeof *n);
    memset(n, 0, sizeof *n);
    n->self_ref = LUA_NOREF;
    n->lp = lp;
    snprintf(n->name, sizeof n->name, "%s", c.name);
    int ud = lua_gettop(L);
    luaL_getmetatable(L, NODE_MT);
    lua_setmetatable(L, ud);

    lua_createtable(L, SLOT_FS, 0);
    static const char *const hook_names[] = {"apply", "state", "error", "log", "restore",
                                             "read", "apply_batch"};
    for (int i = 0; i < 7; i++) {
        lua_getfield(L, 2, hook_names[i]);
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1)) {
            return luaL_error(L, "node_new: hook %s must be a function", hook_names[i]);
        }
        lua_rawseti(L, -2, i + 1);
    }
    lua_getfield(L, 1, "fs");
    lua_rawseti(L, -2, SLOT_FS);
    lua_setfenv(L, ud);

    lua_getfield(L, 2, "apply_batch");
    bool batch = lua_isfunction(L, -1);
    lua_pop(L, 1);
    struct hr_runtime_callbacks cb = {.ctx = n,
                                      .apply = on_apply,
                                      .apply_batch = batch ? on_apply_batch : NULL,
                                      .state = on_state,
                                      .error = on_error,
                                      .log = on_log,
                                      .restore = on_restore,
                                      .read = on_read};
    char err[512];
    n->rt = hr_runtime_new(hr__loop_uv(lp), &c, &cb, err, sizeof err);
    if (n->rt == NULL) {
        return luaL_error(L, "node_new: %s", err);
    }
    n->fs = fs;
    hr__lua_fs_ref(fs);
    hr__loop_retain(lp);
    lua_settop(L, ud);
    return 1;
}

/* ---- methods ---- */

static void shutdown_done(void *arg)
{
    struct lnode *n = arg;
    n->rt = NULL;
    hr__lua_fs_unref(n->fs); /* the runtime, and its storage, are gone */
    n->fs = NULL;
    struct hook_args a = {.n = n, .slot = HOOK_DONE};
    call_hook(&a, "shutdown callback");
    struct hr__lloop *lp = n->lp;
    int ref = n->self_ref;
    n->self_ref = LUA_NOREF;
    if (ref != LUA_NOREF) {
        hr__loop_unref(lp, ref);
    }
    hr__loop_release(lp);
}

static void start_shutdown(struct lnode *n)
{
    n->closing = true;
    hr_runtime_shutdown(n->rt, shutdown_done, n);
}

static int l_start(lua_State *L)
{
    struct lnode *n = check_open(L, "start");
    if (n->started) {
        return luaL_error(L, "node:start: already started");
    }
    n->started = true;
    lua_pushvalue(L, 1);
    n->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    char err[768];
    int rc = hr_runtime_start(n->rt, err, sizeof err);
    if (rc != 0) {
        start_shutdown(n);
        return hr__lua_push_fail(L, hr_err_name(rc), err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_propose(lua_State *L)
{
    struct lnode *n = check_node(L);
    size_t len;
    const char *cmd = luaL_checklstring(L, 2, &len);
    int rc;
    hr_index_t index = 0;
    hr_term_t term = 0;
    if (n->rt == NULL || n->closing) {
        rc = HR_ESHUTDOWN;
    } else {
        rc = hr_runtime_propose(n->rt, cmd, len, &index, &term);
    }
    if (rc != 0) {
        return hr__lua_push_fail(L, hr_err_name(rc),
                                 rc == HR_ENOSPACE ? hr_runtime_errmsg(n->rt) : hr_strerror(rc));
    }
    lua_pushnumber(L, (lua_Number)index);
    lua_pushnumber(L, (lua_Number)term);
    return 2;
}

static int l_state(lua_State *L)
{
    struct lnode *n = check_node(L);
    struct hr_raft *r = n->rt != NULL && !n->closing ? hr_runtime_raft(n->rt) : NULL;
    if (r == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, hr_role_name(hr_raft_role(r)));
    lua_pushnumber(L, (lua_Number)hr_raft_term(r));
    const char *leader = hr_runtime_name_of(n->rt, hr_raft_leader(r));
    if (leader != NULL) {
        lua_pushstring(L, leader);
    } else {
        lua_pushnil(L);
    }
    return 3;
}

static void set_name(lua_State *L, struct hr_runtime *rt, const char *key, hr_id_t id)
{
    const char *s = hr_runtime_name_of(rt, id);
    if (s != NULL) {
        lua_pushstring(L, s);
        lua_setfield(L, -2, key);
    }
}

/* A node's peers show by name (none where the runtime does not know the id). */
static void set_id_name(lua_State *L, void *ctx, hr_id_t id)
{
    set_name(L, ctx, "id", id);
}

/* status() -> raw table (nil once shut down): role "failed" while storage is failed. */
static int l_status(lua_State *L)
{
    struct lnode *n = check_node(L);
    if (n->rt == NULL || n->closing) {
        lua_pushnil(L);
        return 1;
    }
    struct hr_runtime *rt = n->rt;
    struct hr_raft *r = hr_runtime_raft(rt);
    lua_createtable(L, 0, 16);
    lua_pushstring(L, hr_runtime_name(rt));
    lua_setfield(L, -2, "id");
    hr__lua_set_number(L, "applied_index", hr_runtime_applied(rt));
    hr_index_t si;
    hr_term_t st;
    uint64_t ssize;
    hr_runtime_snapshot(rt, &si, &st, &ssize);
    hr__lua_set_number(L, "snapshot_index", si);
    hr__lua_set_number(L, "snapshot_term", st);
    hr__lua_set_number(L, "snapshot_size", ssize);
    if (hr_runtime_failed(rt) != 0) {
        lua_pushstring(L, hr_runtime_errmsg(rt));
        lua_setfield(L, -2, "storage_error");
    }
    if (r == NULL) {
        lua_pushstring(L, n->started ? "failed" : "stopped");
        lua_setfield(L, -2, "role");
        hr__lua_set_number(L, "term", 0);
        hr__lua_set_number(L, "commit_index", 0);
        hr__lua_set_number(L, "first_index", 0);
        hr__lua_set_number(L, "last_index", 0);
        hr__lua_set_number(L, "log_bytes", 0);
        lua_newtable(L);
        lua_setfield(L, -2, "progress");
        return 1;
    }
    lua_pushstring(L, hr_role_name(hr_raft_role(r)));
    lua_setfield(L, -2, "role");
    hr__lua_set_number(L, "term", hr_raft_term(r));
    set_name(L, rt, "leader", hr_raft_leader(r));
    set_name(L, rt, "vote", hr_raft_vote(r));
    hr__lua_set_number(L, "commit_index", hr_raft_commit_index(r));
    hr__lua_set_number(L, "first_index", hr_raft_first_index(r));
    hr__lua_set_number(L, "last_index", hr_raft_last_index(r));
    hr__lua_set_number(L, "log_bytes", hr_raft_log_bytes(r));
    hr__lua_set_progress(L, r, set_id_name, rt);
    if (hr_runtime_removed(rt)) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "removed");
    }
    if (hr__lua_push_configuration(L, rt)) {
        lua_setfield(L, -2, "configuration");
    }
    return 1;
}

static int l_stats(lua_State *L)
{
    struct lnode *n = check_node(L);
    if (n->rt == NULL || n->closing) {
        lua_pushnil(L);
        return 1;
    }
    struct hr_runtime_stats s;
    hr_runtime_stats(n->rt, &s);
    lua_createtable(L, 0, 16);
    hr__lua_set_number(L, "batches", s.node.batches);
    hr__lua_set_number(L, "fsyncs", s.group.rounds); /* one fdatasync per group round */
    hr__lua_set_number(L, "entries_written", s.node.entries_written);
    hr__lua_set_number(L, "bytes_sent", s.node.bytes_sent);
    hr__lua_set_number(L, "msgs_received", s.node.msgs_received);
    hr__lua_set_number(L, "state_changes", s.node.state_changes);
    hr__lua_set_number(L, "elections", s.node.elections);
    hr__lua_set_number(L, "applied", s.node.applied);
    hr__lua_set_msgs_sent(L, s.node.msgs_sent);

    const struct hr__lua_number tcp[] = {
        {"frames_sent", s.tcp.frames_sent}, {"frames_received", s.tcp.frames_received},
        {"bytes_sent", s.tcp.bytes_sent},   {"bytes_received", s.tcp.bytes_received},
        {"connects", s.tcp.connects},       {"disconnects", s.tcp.disconnects},
        {"accepted", s.tcp.accepted},       {"auth_failures", s.tcp.auth_failures},
        {"bad_frames", s.tcp.bad_frames},   {"queue_drops", s.tcp.queue_drops},
        {"connect_failures", s.tcp.connect_failures},
    };
    hr__lua_push_numbers(L, tcp, HR__LUA_COUNT(tcp));
    lua_setfield(L, -2, "transport");
    /* Flat copies of the counters operators look for first. */
    hr__lua_set_number(L, "bad_frames", s.tcp.bad_frames);
    hr__lua_set_number(L, "auth_failures", s.tcp.auth_failures);

    const struct hr__lua_number storage[] = {
        {"rounds", s.group.rounds},         {"batches", s.group.batches},
        {"entries", s.group.entries},       {"failures", s.storage_failures},
        {"recoveries", s.storage_recoveries},
    };
    hr__lua_push_numbers(L, storage, HR__LUA_COUNT(storage));
    lua_setfield(L, -2, "storage");

    hr__lua_push_snapshot_counts(L, &s);
    lua_setfield(L, -2, "snapshots");
    hr__lua_set_number(L, "snapshots_taken", s.snap.taken);
    hr__lua_set_number(L, "snapshots_installed", s.node.snapshots_installed);
    hr__lua_set_number(L, "snapshot_chunks_sent", s.snap.chunks_sent);
    return 1;
}

static int l_shutdown(lua_State *L)
{
    struct lnode *n = check_node(L);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TFUNCTION);
    }
    if (n->rt == NULL || n->closing) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_getfenv(L, 1);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, HOOK_DONE);
    lua_pop(L, 1);
    if (n->self_ref == LUA_NOREF) {
        /* Never started: pin it until the runtime's handles are closed. */
        lua_pushvalue(L, 1);
        n->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    start_shutdown(n);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_recovery_info(lua_State *L)
{
    struct lnode *n = check_open(L, "recovery_info");
    lua_pushstring(L, hr_runtime_recovery_info(n->rt));
    return 1;
}

/* ---- snapshots ---- */

#define FRAMER_MT "helios.core.snapshot_framer"

/* Frames a snapshot file's payload (storage/snapshot.h): header, checksum, trailer. Plain
 * memory, no descriptors: usable in a forked child that writes through its own file. */
struct framer {
    uint32_t crc;
    uint64_t payload;
    size_t hlen;
    unsigned char header[]; /* hlen bytes */
};

/* snapshot_point([applied]) -> index, term | nil (nothing applied since the current
 * snapshot). applied: the last index the FSM has applied (an apply_batch hook knows it
 * better than the runtime while its batch runs); nil or 0: the runtime's applied index. */
static int l_snapshot_point(lua_State *L)
{
    struct lnode *n = check_node(L);
    hr_index_t applied = lua_isnoneornil(L, 2)
                             ? 0
                             : hr__lua_check_uint(L, 2, "snapshot_point(applied)", 0,
                                                  (uint64_t)1 << 53);
    hr_index_t index;
    hr_term_t term;
    if (n->rt == NULL || n->closing ||
        hr_runtime_snapshot_point(n->rt, applied, &index, &term) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, (lua_Number)index);
    lua_pushnumber(L, (lua_Number)term);
    return 2;
}

static uint64_t check_u64(lua_State *L, int idx, const char *what)
{
    return hr__lua_check_uint(L, idx, what, 1, (uint64_t)1 << 53);
}

/* snapshot_tmp_path(index, term) -> path (an old file there is removed) */
static int l_snapshot_tmp_path(lua_State *L)
{
    struct lnode *n = check_open(L, "snapshot_tmp_path");
    char path[4200];
    hr_runtime_snapshot_tmp_path(n->rt, check_u64(L, 2, "index"), check_u64(L, 3, "term"), path,
                                 sizeof path);
    lua_pushstring(L, path);
    return 1;
}

/* snapshot_framer(index, term) -> framer with header(), feed(s), trailer() */
static int l_snapshot_framer(lua_State *L)
{
    struct lnode *n = check_open(L, "snapshot_framer");
    uint64_t index = check_u64(L, 2, "index"), term = check_u64(L, 3, "term");
    /* The configuration in effect at index goes into the header (a follower that installs
     * the file takes it; a restart starts from it). */
    hr_index_t conf_index;
    const struct hr_blob *conf = hr_runtime_snapshot_conf(n->rt, index, &conf_index);
    size_t clen = hr_blob_len(conf);
    if (clen > HR_SNAP_MAX_CONF) {
        return luaL_error(L, "node:snapshot_framer: configuration too large");
    }
    struct framer *f = lua_newuserdata(L, sizeof *f + HR_SNAP_MAX_HEADER - HR_SNAP_MAX_CONF + clen);
    memset(f, 0, sizeof *f);
    f->hlen = hr_snap_header(f->header, index, term, conf != NULL ? conf->data : NULL,
                             (uint32_t)clen, conf_index);
    luaL_getmetatable(L, FRAMER_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int l_framer_header(lua_State *L)
{
    struct framer *f = luaL_checkudata(L, 1, FRAMER_MT);
    f->crc = hr_crc32c(0, f->header, f->hlen);
    f->payload = 0;
    lua_pushlstring(L, (const char *)f->header, f->hlen);
    return 1;
}

static int l_framer_feed(lua_State *L)
{
    struct framer *f = luaL_checkudata(L, 1, FRAMER_MT);
    int top = lua_gettop(L);
    for (int i = 2; i <= top; i++) {
        size_t len;
        const char *p = luaL_checklstring(L, i, &len);
        f->crc = hr_crc32c(f->crc, p, len);
        f->payload += len;
    }
    return 0;
}

static int l_framer_trailer(lua_State *L)
{
    struct framer *f = luaL_checkudata(L, 1, FRAMER_MT);
    unsigned char t[HR_SNAP_TRAILER_SIZE];
    hr_snap_trailer(t, f->payload, f->crc);
    lua_pushlstring(L, (const char *)t, sizeof t);
    return 1;
}

/* snapshot_taken(index, term, tmp_path) -> true | false (stale: dropped) | nil, code, msg */
static int l_snapshot_taken(lua_State *L)
{
    struct lnode *n = check_node(L);
    uint64_t index = check_u64(L, 2, "index"), term = check_u64(L, 3, "term");
    const char *path = luaL_checkstring(L, 4);
    if (n->rt == NULL || n->closing) {
        unlink(path);
        lua_pushboolean(L, 0);
        return 1;
    }
    char err[512];
    int rc = hr_runtime_snapshot_taken(n->rt, index, term, path, err, sizeof err);
    if (rc < 0) {
        return hr__lua_push_fail(L, hr_err_name(rc), err);
    }
    lua_pushboolean(L, rc == 0);
    return 1;
}

/* snapshot_read() -> payload, index, term | nil (no snapshot) | nil, code, msg. The file is
 * mapped, not read into a buffer: the payload exists once in memory, as the Lua string. */
static int l_snapshot_read(lua_State *L)
{
    struct lnode *n = check_open(L, "snapshot_read");
    hr_index_t index;
    hr_term_t term;
    uint64_t size;
    hr_runtime_snapshot(n->rt, &index, &term, &size);
    if (index == 0) {
        lua_pushnil(L);
        return 1;
    }
    char path[4200], err[4400];
    hr_runtime_snapshot_path(n->rt, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    struct hr_snap_info info;
    int rc = fd < 0 || fstat(fd, &st) < 0 ? HR_EIO : 0;
    if (rc != 0) {
        snprintf(err, sizeof err, "%s: %s", path, strerror(errno));
    } else {
        rc = hr_snap_read_header(NULL, fd, (uint64_t)st.st_size, &info, err, sizeof err);
    }
    void *map = MAP_FAILED;
    if (rc == 0 && st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            rc = HR_ENOMEM;
            snprintf(err, sizeof err, "%s: mmap: %s", path, strerror(errno));
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    if (rc != 0) {
        return hr__lua_push_fail(L, hr_err_name(rc), err);
    }
    madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
    lua_pushlstring(L, (const char *)map + info.payload_offset, (size_t)info.payload_size);
    munmap(map, (size_t)st.st_size);
    lua_pushnumber(L, (lua_Number)index);
    lua_pushnumber(L, (lua_Number)term);
    return 3;
}

static void release_fs(void *box)
{
    hr__lua_fs_unref(box);
}

static int l_gc(lua_State *L)
{
    struct lnode *n = check_node(L);
    /* A started node is pinned until shut down, so only a never-started one gets here
     * with a runtime: its timers still need closing on the loop. */
    if (n->rt != NULL && !n->closing && !hr__loop_dead(n->lp)) {
        n->closing = true;
        /* The node's userdata is being freed: the file system's reference goes with the
         * runtime, from the callback that says it is gone. */
        hr_runtime_shutdown(n->rt, release_fs, n->fs);
        n->fs = NULL;
        n->rt = NULL;
        hr__loop_release(n->lp);
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    struct lnode *n = check_node(L);
    lua_pushfstring(L, "helios.core.node %s (%s)", n->name,
                    n->rt == NULL ? "shut down" : n->closing ? "closing"
                                                  : n->started ? "running" : "new");
    return 1;
}

static const luaL_Reg methods[] = {
    {"start", l_start},
    {"propose", l_propose},
    {"state", l_state},
    {"status", l_status},
    {"stats", l_stats},
    {"shutdown", l_shutdown},
    {"recovery_info", l_recovery_info},
    {"snapshot_point", l_snapshot_point},
    {"snapshot_tmp_path", l_snapshot_tmp_path},
    {"snapshot_framer", l_snapshot_framer},
    {"snapshot_taken", l_snapshot_taken},
    {"snapshot_read", l_snapshot_read},
    {NULL, NULL},
};

static const luaL_Reg framer_methods[] = {
    {"header", l_framer_header},
    {"feed", l_framer_feed},
    {"trailer", l_framer_trailer},
    {NULL, NULL},
};

int hr__lua_open_node(lua_State *L)
{
    hr__lua_new_class(L, NODE_MT, methods, l_gc, l_tostring);
    /* The membership methods (node_membership.c) join the same method table. */
    luaL_getmetatable(L, NODE_MT);
    lua_getfield(L, -1, "__index");
    luaL_register(L, NULL, hr__lua_node_membership_methods);
    luaL_register(L, NULL, hr__lua_node_metrics_methods);
    lua_pop(L, 2);
    if (luaL_newmetatable(L, FRAMER_MT)) {
        lua_pushliteral(L, FRAMER_MT);
        lua_setfield(L, -2, "__name");
        lua_newtable(L);
        luaL_register(L, NULL, framer_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_node_new);
    lua_setfield(L, -2, "node_new");
    lua_pushcfunction(L, hr__lua_recover);
    lua_setfield(L, -2, "recover");
    hr__lua_open_node_metrics(L);
    return 0;
}
