/*
 * storage_binding.c: Lua access to the synchronous storage log (csrc/storage/log.h), for
 * specs, the crash test and the benchmark. (`helios inspect`'s core.storage_inspect is in
 * helios.core: csrc/lua/inspect_binding.c.)
 *
 *   local tk = require("helios.testkit")
 *   local st, info = tk.storage_open("./data", { segment_size = 1048576 })
 *                                    -- also cache_bytes, prealloc_bytes (0: off)
 *                                    -- or nil, code, message ("busy", "corrupt", ...)
 *                                    -- { fs = tk.simfs_new(seed) }: over a simulated
 *                                    -- file system (simfs_binding.c), { fs =
 *                                    -- tk.fault_fs_new() }: over one that fails writes or
 *                                    -- syncs on request (fault_fs_binding.c); as every
 *                                    -- function below that takes opts
 *   st:append{ { index = 1, term = 1, type = 1, data = "x", time_ms = 0 }, ... }
 *   st:sync()                        -- true or nil, code, message
 *   st:truncate(from_index)  st:compact(below_index)
 *   st:entries(lo, hi)               -- list of { index, term, type, data, time_ms }
 *   st:first_index()  st:last_index()  st:last_term()
 *   st:set_meta(term, vote)  st:meta() --> term, vote
 *   st:retry()  st:stats()  st:close()
 *   st:reconcile(snap_index, snap_term)  --> true, info
 *
 * Snapshot files (csrc/storage/snapshot.h), for specs of the storage over a simfs:
 *   tk.snap_file(index, term, voters, payload)   -- the bytes of that snapshot file
 *   tk.snap_file_v1(index, term, voters, payload) -- the same in format version 1
 *   tk.snap_write(dir, index, term, voters, payload[, opts])
 *       -- through hr_snap_writer in opts.chunk-byte writes (4096): file size, or nil,
 *       -- code, message
 *   tk.snap_recv(dir, index, term, file_bytes[, opts])
 *       -- through hr_snap_recv in opts.chunk-byte chunks: true, or nil, code, message
 *   tk.snap_find(dir[, opts])  -- { index, term, file_size, payload_size } or false;
 *                                -- then the info notes (or nil, code, message)
 *   tk.snap_prune(dir, index, term[, opts])  -- files removed
 *   local r = tk.storage_bench(dir, writers, entries, entry_size[, mode])
 *             -- mode: "threadpool" (the default), "inline" (the rounds run on the loop's
 *             -- thread, hr_group_set_inline; true says the same) or "per_turn" (on the
 *             -- threadpool, started once per loop turn, hr_group_set_per_turn)
 *             -- { appends, fsyncs, rounds, seconds, appends_per_s, fsyncs_per_s,
 *             --   baseline_fsyncs_per_s }
 *
 * Expected failures return nil, code (hr_err_name: "io", "no_space", "corrupt", "busy",
 * ...), message; misuse raises "Usage: ...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "../core/crc32c.h"
#include "../storage/log.h"
#include "../storage/snapshot.h"
#include "throughput.h"
#include "../lua/binding.h"
#include "../lua/fs_binding.h"
#include "testkit.h"

#define STORAGE_MT "helios.testkit.storage"

struct lstore {
    struct hr_log *log;
    struct hr_lua_fs *fs; /* the file system the log runs over, a reference (NULL: POSIX) */
    char dir[512];
};

static struct lstore *check_store(lua_State *L)
{
    struct lstore *s = luaL_checkudata(L, 1, STORAGE_MT);
    if (s->log == NULL) {
        luaL_error(L, "storage: used after close");
    }
    return s;
}

static int push_fail(lua_State *L, int rc, const char *msg)
{
    return hr__lua_push_fail(L, hr_err_name(rc), msg);
}

static int result(lua_State *L, struct lstore *s, int rc)
{
    if (rc != 0) {
        return push_fail(L, rc, hr_log_errmsg(s->log));
    }
    lua_pushboolean(L, 1);
    return 1;
}

static uint64_t check_u64(lua_State *L, int idx, const char *usage)
{
    if (lua_type(L, idx) != LUA_TNUMBER) {
        luaL_error(L, "Usage: %s", usage);
    }
    lua_Number v = lua_tonumber(L, idx);
    if (v < 0 || v > 9007199254740992.0 || v != (lua_Number)(uint64_t)v) {
        luaL_error(L, "Usage: %s (non-negative integer expected)", usage);
    }
    return (uint64_t)v;
}

static uint64_t field_u64(lua_State *L, int t, const char *name, uint64_t dflt)
{
    lua_getfield(L, t, name);
    uint64_t v = dflt;
    if (!lua_isnil(L, -1)) {
        v = check_u64(L, lua_gettop(L), "st:append{ {index=, term=, type=, data=, time_ms=} }");
    }
    lua_pop(L, 1);
    return v;
}

static int l_open(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    struct hr_log_options o;
    hr_log_options_default(&o);
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "segment_size");
        if (!lua_isnil(L, -1)) {
            o.segment_size = check_u64(L, -1, "tk.storage_open(dir[, {segment_size=}])");
        }
        lua_pop(L, 1);
        lua_getfield(L, 2, "cache_bytes");
        if (!lua_isnil(L, -1)) {
            o.cache_bytes = check_u64(L, -1, "tk.storage_open(dir[, {cache_bytes=}])");
        }
        lua_pop(L, 1);
        lua_getfield(L, 2, "prealloc_bytes");
        if (!lua_isnil(L, -1)) {
            o.prealloc_bytes = check_u64(L, -1, "tk.storage_open(dir[, {prealloc_bytes=}])");
        }
        lua_pop(L, 1);
    }
    struct lstore *s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    luaL_getmetatable(L, STORAGE_MT);
    lua_setmetatable(L, -2);
    s->fs = hr__lua_opt_fs(L, 2, "storage_open");
    hr__lua_fs_ref(s->fs);
    o.fs = hr__lua_fs_of(s->fs);
    char err[1024], info[2048];
    int rc = hr_log_open(dir, &o, &s->log, err, sizeof err, info, sizeof info);
    if (rc != 0) {
        hr__lua_fs_unref(s->fs);
        s->fs = NULL;
        return push_fail(L, rc, err);
    }
    lua_pushstring(L, info);
    return 2;
}

static int l_append(lua_State *L)
{
    struct lstore *s = check_store(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_objlen(L, 2);
    struct hr_log_entry *e = lua_newuserdata(L, (n > 0 ? n : 1) * sizeof *e);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (int)i + 1);
        int t = lua_gettop(L);
        luaL_argcheck(L, lua_istable(L, t), 2, "list of entry tables expected");
        e[i].index = field_u64(L, t, "index", 0);
        e[i].term = field_u64(L, t, "term", 0);
        e[i].type = (uint8_t)field_u64(L, t, "type", 1);
        e[i].time_ms = field_u64(L, t, "time_ms", 0);
        lua_getfield(L, t, "data");
        size_t len = 0;
        const char *d = lua_isnil(L, -1) ? "" : luaL_checklstring(L, -1, &len);
        /* The string stays referenced by the argument table until we return. */
        lua_pop(L, 1);
        e[i].data = (const unsigned char *)d;
        e[i].len = (uint32_t)len;
        lua_pop(L, 1);
    }
    return result(L, s, hr_log_append(s->log, e, n));
}

static int l_sync(lua_State *L)
{
    struct lstore *s = check_store(L);
    return result(L, s, hr_log_sync(s->log));
}

static int l_truncate(lua_State *L)
{
    struct lstore *s = check_store(L);
    return result(L, s, hr_log_truncate(s->log, check_u64(L, 2, "st:truncate(from_index)")));
}

static int l_compact(lua_State *L)
{
    struct lstore *s = check_store(L);
    return result(L, s, hr_log_compact(s->log, check_u64(L, 2, "st:compact(below_index)")));
}

static int l_entries(lua_State *L)
{
    struct lstore *s = check_store(L);
    uint64_t lo = check_u64(L, 2, "st:entries(lo, hi)");
    uint64_t hi = check_u64(L, 3, "st:entries(lo, hi)");
    struct hr_log_entry *e;
    size_t n;
    int rc = hr_log_read(s->log, lo, hi, &e, &n);
    if (rc != 0) {
        return push_fail(L, rc, hr_log_errmsg(s->log));
    }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 5);
        lua_pushnumber(L, (lua_Number)e[i].index);
        lua_setfield(L, -2, "index");
        lua_pushnumber(L, (lua_Number)e[i].term);
        lua_setfield(L, -2, "term");
        lua_pushnumber(L, e[i].type);
        lua_setfield(L, -2, "type");
        lua_pushnumber(L, (lua_Number)e[i].time_ms);
        lua_setfield(L, -2, "time_ms");
        lua_pushlstring(L, (const char *)e[i].data, e[i].len);
        lua_setfield(L, -2, "data");
        lua_rawseti(L, -2, (int)i + 1);
    }
    free(e);
    return 1;
}

static int l_first_index(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hr_log_first_index(check_store(L)->log));
    return 1;
}

static int l_last_index(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hr_log_last_index(check_store(L)->log));
    return 1;
}

static int l_last_term(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hr_log_last_term(check_store(L)->log));
    return 1;
}

static int l_set_meta(lua_State *L)
{
    struct lstore *s = check_store(L);
    uint64_t term = check_u64(L, 2, "st:set_meta(term, vote)");
    uint64_t vote = check_u64(L, 3, "st:set_meta(term, vote)");
    return result(L, s, hr_log_set_meta(s->log, term, vote));
}

static int l_meta(lua_State *L)
{
    uint64_t term, vote;
    hr_log_meta(check_store(L)->log, &term, &vote);
    lua_pushnumber(L, (lua_Number)term);
    lua_pushnumber(L, (lua_Number)vote);
    return 2;
}

static int l_retry(lua_State *L)
{
    struct lstore *s = check_store(L);
    return result(L, s, hr_log_retry(s->log));
}

static int l_stats(lua_State *L)
{
    struct hr_log_stats st;
    hr_log_stats(check_store(L)->log, &st);
    lua_createtable(L, 0, 5);
    hr__lua_set_number(L, "syncs", (double)st.syncs);
    hr__lua_set_number(L, "appends", (double)st.appends);
    hr__lua_set_number(L, "bytes", (double)st.bytes);
    hr__lua_set_number(L, "cache_hits", (double)st.cache_hits);
    hr__lua_set_number(L, "cache_misses", (double)st.cache_misses);
    return 1;
}

static int l_close(lua_State *L)
{
    struct lstore *s = luaL_checkudata(L, 1, STORAGE_MT);
    hr_log_close(s->log);
    s->log = NULL;
    hr__lua_fs_unref(s->fs); /* after the log: closing it uses the fs */
    s->fs = NULL;
    return 0;
}

/* st:reconcile(snap_index, snap_term) -> true, info or nil, code, message. */
static int l_reconcile(lua_State *L)
{
    struct lstore *s = check_store(L);
    uint64_t idx = check_u64(L, 2, "st:reconcile(snap_index, snap_term)");
    uint64_t term = check_u64(L, 3, "st:reconcile(snap_index, snap_term)");
    char info[2048] = "", err[1024] = "";
    int rc = hr_log_reconcile(s->log, idx, term, info, sizeof info, err, sizeof err);
    if (rc != 0) {
        return push_fail(L, rc, err);
    }
    lua_pushboolean(L, 1);
    lua_pushstring(L, info);
    return 2;
}

static int l_tostring(lua_State *L)
{
    struct lstore *s = luaL_checkudata(L, 1, STORAGE_MT);
    if (s->log == NULL) {
        lua_pushfstring(L, "helios.testkit.storage (closed) %s", s->dir);
    } else {
        lua_pushfstring(L, "helios.testkit.storage %s [%f..%f]", s->dir,
                        (lua_Number)hr_log_first_index(s->log),
                        (lua_Number)hr_log_last_index(s->log));
    }
    return 1;
}

static int l_bench(lua_State *L)
{
    const char *usage = "tk.storage_bench(dir, writers, entries, entry_size[, mode])";
    static const char *const modes[] = {"threadpool", "inline", "per_turn", NULL};
    const char *dir = luaL_checkstring(L, 1);
    uint64_t w = check_u64(L, 2, usage), n = check_u64(L, 3, usage), sz = check_u64(L, 4, usage);
    if (w == 0 || w > 100000 || sz > (1u << 20)) {
        return luaL_error(L, "Usage: %s", usage);
    }
    int mode = lua_isboolean(L, 5) ? (lua_toboolean(L, 5) ? HR_BENCH_INLINE : HR_BENCH_THREADPOOL)
                                   : luaL_checkoption(L, 5, "threadpool", modes);
    struct hr_storage_bench_result r;
    char err[1024];
    int rc = hr_storage_bench(dir, (unsigned)w, n, (size_t)sz, (enum hr_storage_bench_mode)mode,
                              &r, err, sizeof err);
    if (rc != 0) {
        return push_fail(L, rc, err);
    }
    lua_createtable(L, 0, 7);
    hr__lua_set_number(L, "appends", (double)r.appends);
    hr__lua_set_number(L, "fsyncs", (double)r.fsyncs);
    hr__lua_set_number(L, "rounds", (double)r.rounds);
    hr__lua_set_number(L, "seconds", r.seconds);
    hr__lua_set_number(L, "appends_per_s", r.appends_per_s);
    hr__lua_set_number(L, "fsyncs_per_s", r.fsyncs_per_s);
    hr__lua_set_number(L, "baseline_fsyncs_per_s", r.baseline_fsyncs_per_s);
    return 1;
}

/* ---- snapshot files ---- */

static size_t check_voters(lua_State *L, int idx, uint64_t *v)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t n = lua_objlen(L, idx);
    if (n > HR_SNAP_MAX_VOTERS) {
        luaL_error(L, "Usage: voters: at most %d", HR_SNAP_MAX_VOTERS);
    }
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        v[i] = check_u64(L, lua_gettop(L), "voters: a list of ids");
        lua_pop(L, 1);
    }
    return n;
}

static size_t opt_chunk(lua_State *L, int idx)
{
    size_t chunk = 4096;
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "chunk");
        if (!lua_isnil(L, -1)) {
            chunk = (size_t)check_u64(L, lua_gettop(L), "opts.chunk");
        }
        lua_pop(L, 1);
    }
    return chunk > 0 ? chunk : 1;
}

/* The bytes of a snapshot file: format version 2 with a configuration of the voters
 * without addresses (what hr_snap_writer_open writes), or version 1 (voter ids: the files
 * of data dirs written before version 2, which the node still reads). */
static int snap_file(lua_State *L, bool v1)
{
    const char *usage = v1 ? "tk.snap_file_v1(index, term, voters, payload)"
                           : "tk.snap_file(index, term, voters, payload)";
    uint64_t index = check_u64(L, 1, usage), term = check_u64(L, 2, usage);
    uint64_t voters[HR_SNAP_MAX_VOTERS];
    size_t nv = check_voters(L, 3, voters);
    size_t len;
    const char *payload = luaL_checklstring(L, 4, &len);
    unsigned char *h = malloc(HR_SNAP_MAX_HEADER), t[HR_SNAP_TRAILER_SIZE];
    if (h == NULL) {
        return luaL_error(L, "%s: out of memory", usage);
    }
    size_t hl;
    if (v1) {
        hl = hr_snap_header_v1(h, index, term, voters, (uint32_t)nv);
    } else {
        struct hr_server sv[HR_SNAP_MAX_VOTERS];
        for (size_t i = 0; i < nv; i++) {
            sv[i] = (struct hr_server){.id = voters[i], .voter = true};
        }
        struct hr_blob *conf = NULL;
        if (nv > 0 && hr_conf_encode(sv, nv, &conf) != 0) {
            free(h);
            return luaL_error(L, "%s: bad voters", usage);
        }
        hl = hr_snap_header(h, index, term, conf != NULL ? conf->data : NULL,
                            (uint32_t)hr_blob_len(conf), 0);
        hr_blob_release(conf);
    }
    uint32_t crc = hr_crc32c(hr_crc32c(0, h, hl), payload, len);
    hr_snap_trailer(t, len, crc);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, (const char *)h, hl);
    free(h);
    luaL_addlstring(&b, payload, len);
    luaL_addlstring(&b, (const char *)t, sizeof t);
    luaL_pushresult(&b);
    return 1;
}

static int l_snap_file(lua_State *L)
{
    return snap_file(L, false);
}

static int l_snap_file_v1(lua_State *L)
{
    return snap_file(L, true);
}

static int l_snap_write(lua_State *L)
{
    const char *usage = "tk.snap_write(dir, index, term, voters, payload[, opts])";
    const char *dir = luaL_checkstring(L, 1);
    uint64_t index = check_u64(L, 2, usage), term = check_u64(L, 3, usage);
    uint64_t voters[HR_SNAP_MAX_VOTERS];
    size_t nv = check_voters(L, 4, voters);
    size_t len;
    const char *payload = luaL_checklstring(L, 5, &len);
    struct hr_fs *fs = hr__lua_fs_of(hr__lua_opt_fs(L, 6, "snap_write"));
    size_t chunk = opt_chunk(L, 6);
    char err[1024];
    struct hr_snap_writer *w;
    int rc = hr_snap_writer_open(fs, dir, index, term, voters, nv, &w, err, sizeof err);
    if (rc != 0) {
        return push_fail(L, rc, err);
    }
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        if ((rc = hr_snap_writer_write(w, payload + off, n)) != 0) {
            /* finish reports it and removes the temporary file */
            break;
        }
    }
    uint64_t size;
    if ((rc = hr_snap_writer_finish(w, &size, err, sizeof err)) != 0) {
        return push_fail(L, rc, err);
    }
    lua_pushnumber(L, (lua_Number)size);
    return 1;
}

static int l_snap_recv(lua_State *L)
{
    const char *usage = "tk.snap_recv(dir, index, term, file_bytes[, opts])";
    const char *dir = luaL_checkstring(L, 1);
    uint64_t index = check_u64(L, 2, usage), term = check_u64(L, 3, usage);
    size_t len;
    const char *bytes = luaL_checklstring(L, 4, &len);
    struct hr_fs *fs = hr__lua_fs_of(hr__lua_opt_fs(L, 5, "snap_recv"));
    size_t chunk = opt_chunk(L, 5);
    char err[1024];
    struct hr_snap_recv *r;
    int rc = hr_snap_recv_open(fs, dir, index, term, &r, err, sizeof err);
    if (rc != 0) {
        return push_fail(L, rc, err);
    }
    for (size_t off = 0; rc == 0 && off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        rc = hr_snap_recv_write(r, off, bytes + off, n, err, sizeof err);
    }
    struct hr_snap_info info;
    if (rc == 0) {
        rc = hr_snap_recv_finish(r, &info, err, sizeof err);
    }
    hr_snap_recv_free(r);
    if (rc != 0) {
        return push_fail(L, rc, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_snap_find(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    struct hr_fs *fs = hr__lua_fs_of(hr__lua_opt_fs(L, 2, "snap_find"));
    struct hr_snap_info si;
    bool found;
    char err[1024], info[2048] = "";
    int rc = hr_snap_find(fs, dir, &si, &found, info, sizeof info, err, sizeof err);
    if (rc != 0) {
        return push_fail(L, rc, err);
    }
    if (!found) {
        lua_pushboolean(L, 0);
    } else {
        lua_createtable(L, 0, 4);
        lua_pushnumber(L, (lua_Number)si.index);
        lua_setfield(L, -2, "index");
        lua_pushnumber(L, (lua_Number)si.term);
        lua_setfield(L, -2, "term");
        lua_pushnumber(L, (lua_Number)si.file_size);
        lua_setfield(L, -2, "file_size");
        lua_pushnumber(L, (lua_Number)si.payload_size);
        lua_setfield(L, -2, "payload_size");
    }
    lua_pushstring(L, info);
    return 2;
}

static int l_snap_prune(lua_State *L)
{
    const char *usage = "tk.snap_prune(dir, index, term[, opts])";
    const char *dir = luaL_checkstring(L, 1);
    uint64_t index = check_u64(L, 2, usage), term = check_u64(L, 3, usage);
    lua_pushnumber(L, hr_snap_prune(hr__lua_fs_of(hr__lua_opt_fs(L, 4, "snap_prune")), dir, index, term));
    return 1;
}

static const luaL_Reg methods[] = {
    {"append", l_append},       {"sync", l_sync},         {"truncate", l_truncate},
    {"compact", l_compact},     {"entries", l_entries},   {"first_index", l_first_index},
    {"last_index", l_last_index}, {"last_term", l_last_term}, {"set_meta", l_set_meta},
    {"meta", l_meta},           {"retry", l_retry},
    {"stats", l_stats},         {"close", l_close},
    {"reconcile", l_reconcile},
    {NULL, NULL},
};

void hr__tk_open_storage(lua_State *L)
{
    hr__lua_new_class(L, STORAGE_MT, methods, l_close, l_tostring);
    lua_pushcfunction(L, l_open);
    lua_setfield(L, -2, "storage_open");
    lua_pushcfunction(L, l_bench);
    lua_setfield(L, -2, "storage_bench");
    static const luaL_Reg snap[] = {
        {"snap_file", l_snap_file}, {"snap_file_v1", l_snap_file_v1}, {"snap_write", l_snap_write}, {"snap_recv", l_snap_recv},
        {"snap_find", l_snap_find}, {"snap_prune", l_snap_prune}, {NULL, NULL},
    };
    for (const luaL_Reg *f = snap; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
}
