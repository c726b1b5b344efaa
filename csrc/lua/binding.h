/*
 * binding.h: internals shared by the files of the Lua module `helios.core` (csrc/lua), the
 * part of Helios a user runs (docs/architecture.md; the Lua API: docs/lua-api.md).
 *
 * The files, by concern:
 *   module.c          luaopen_helios_core: the module table, constants
 *   support.c         the nil, code, detail failures and the metatable helper every
 *                     userdata class uses (helios.testkit links it and config.c too)
 *   config.c          Lua options tables into C structs, with errors that name the field
 *   loop.c/.h         the libuv loop of a lua_State, timers, protected calls into Lua
 *   node_binding.c/.h core.node_new: the networked node (csrc/node/runtime.h)
 *   sim_binding.c     core.sim_new: the "helios.core.sim" userdata (csrc/sim/sim.h)
 *   sim_hooks.c       the simulator's calls into Lua, always protected
 *   sim_views.c       status and stats tables, and the pieces of them node_binding.c shares
 *   control.c/.h      the control socket server of a node
 *   client_binding.c/.h  sockets that speak the frames, for clients and the CLI
 *                     (helios.testkit links a copy: its listeners accept these sockets)
 *   proc_binding.c/.h child processes, free ports, sleep and clock (`helios cluster`)
 *   inspect_binding.c/.h  core.storage_inspect (`helios inspect`)
 *   fs_binding.c/.h   the file system a node's storage uses: the fault-injection seam
 *   signal_binding.c/.h  SIGTERM, SIGINT, SIGHUP as polled flags; ignoring SIGPIPE
 *   fork_snapshot.c/.h  snapshots of the Lua state written by a forked child
 *   mpack.c/.h        msgpack encoding and decoding of Lua values
 *   os.c/.h           signal names and the monotonic clock the files above share
 * What only tests and benchmarks use (the TCP proxy, the raw transport, storage and
 * simulated file system bindings, fault injection, listening sockets, sock_poll, getpid) is
 * the separate module helios.testkit, in csrc/testkit.
 *
 * Threading: everything runs on the thread that owns the lua_State.
 */
#ifndef HR_LUA_BINDING_H
#define HR_LUA_BINDING_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "../sim/sim.h"

#define HR_VERSION "0.1.0-dev"
#define HR_LUA_SIM_MT "helios.core.sim"

/*
 * The userdata behind a sim. Its environment table (lua_setfenv) holds the Lua hook
 * functions, so that the garbage collector sees the cycle userdata -> hooks -> cluster ->
 * userdata and can collect it (a registry reference would pin it forever).
 */
struct hr__lsim {
    struct hr_sim *sim;
    uint64_t seed;
    uint32_t n;
    /* The lua_State and stack slot of the hooks table of the innermost binding call that
     * may run hooks (hooks may propose, which nests a call; each call saves and restores). */
    lua_State *L;
    int hooks_idx;
    int in_hook;    /* > 0 while a hook runs Lua code: run/step/crash/restart refuse */
    char *hook_err; /* the first hook failure (malloc'd), or NULL */
};

/* Saved binding-call context, for nesting (see hr__lsim_enter). */
struct hr__lsim_frame {
    lua_State *L;
    int hooks_idx;
};

/* config.c. Each raises a Lua error naming the field on bad input. The table is at idx. */
void hr__lua_read_config(lua_State *L, int idx, struct hr_config *c);
/* The same, and the snapshot options (snapshot_threshold, snapshot_interval_ms,
 * trailing_logs, snapshot_chunk_bytes, snapshot_threshold_bytes, trailing_logs_bytes) into snap, which hr__lua_read_config accepts and
 * ignores. */
void hr__lua_read_sim_config(lua_State *L, int idx, struct hr_config *c,
                             struct hr_sim_snapshot *snap);
/* Network description; fields that are absent keep their value in *net. */
void hr__lua_read_net(lua_State *L, int idx, const char *what, struct hr_sim_net *net);
/* A {min, max} pair of non-negative integers (milliseconds). */
void hr__lua_read_range(lua_State *L, int idx, const char *what, uint32_t *min, uint32_t *max);
/* An integer in [lo, hi] at stack index idx, or raise "<what> must be ...". */
uint64_t hr__lua_check_uint(lua_State *L, int idx, const char *what, uint64_t lo, uint64_t hi);

/* sim_hooks.c. The hooks table (the userdata's environment) is an array with these slots;
 * the C functions are stored there at creation so that a hook never allocates outside a
 * protected call. */
enum {
    HR__HOOK_APPLY = 1,         /* fn(id, index, term, type, command, time_ms) */
    HR__HOOK_STATE = 2,         /* fn(id, role, term, leader) */
    HR__HOOK_START = 3,         /* fn(id) */
    HR__HOOK_TRACEBACK = 4,     /* hr__lsim_traceback */
    HR__HOOK_TRAMPOLINE = 5,    /* hr__lsim_trampoline */
    HR__HOOK_SNAPSHOT = 6,      /* fn(id, next) -> bytes, or false: more slices to come */
    HR__HOOK_RESTORE = 7,       /* fn(id, index, term, bytes) */
    HR__HOOK_SNAPSHOT_DONE = 8, /* fn(id, index, term, installed) */
    HR__HOOK_READ = 9,          /* fn(id, ctx, index, code or nil) */
    HR__HOOK_COUNT = 9
};
int hr__lsim_traceback(lua_State *L);
int hr__lsim_trampoline(lua_State *L);
extern const struct hr_sim_hooks hr__lsim_hooks_template;
void hr__lsim_enter(lua_State *L, struct hr__lsim *s, int ud_idx, struct hr__lsim_frame *saved);
void hr__lsim_leave(struct hr__lsim *s, lua_State *L, const struct hr__lsim_frame *saved);
/* Record a failure message (only the first one is kept). */
void hr__lsim_set_error(struct hr__lsim *s, const char *msg);

/* sim_views.c: push a table, or nil while the node is crashed. */
void hr__lsim_push_status(lua_State *L, struct hr__lsim *s, hr_id_t id);
void hr__lsim_push_stats(lua_State *L, struct hr__lsim *s, hr_id_t id);
/* sim_views.c, shared with node_binding.c. Push an entry as a hook's arguments (index,
 * term, type name, command bytes, time_ms); returns how many (5). */
int hr__lua_push_entry(lua_State *L, const struct hr_entry *e);
/* Set "progress" on the table at the top: r's rows for its peers (empty unless it leads);
 * set_id sets each row's "id" (ids show as numbers in a sim, as names on a node). */
void hr__lua_set_progress(lua_State *L, const struct hr_raft *r,
                          void (*set_id)(lua_State *L, void *ctx, hr_id_t id), void *ctx);
/* Set "msgs_sent_by_type" (keyed by hr_msg_type_name) and "msgs_sent" (their sum) on the
 * table at the top. */
void hr__lua_set_msgs_sent(lua_State *L, const uint64_t msgs_sent[HR_MSG_TYPE_COUNT]);
const char *hr__lua_entry_type_name(int type);

/* module.c: the entry point (the one exported symbol without the hr_ prefix). */
int luaopen_helios_core(lua_State *L);
/* support.c (also linked into helios.testkit): an expected failure as Lua sees it: nil, code, detail (returns 3). */
int hr__lua_push_fail(lua_State *L, const char *code, const char *detail);
/* The same for a failed system call: nil, "io", "<what>: <strerror(e)>". */
int hr__lua_push_errno(lua_State *L, const char *what, int e);
/* support.c: the metatable `name` of a userdata class (__name, __index = methods and,
 * unless NULL, __gc and __tostring), made once per lua_State. Leaves the stack as it was.
 * A class without cleanup passes no __gc: the collector runs every __gc it finds, one
 * protected call per userdata, and keeps the userdata for one more cycle. */
void hr__lua_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                       lua_CFunction gc, lua_CFunction tostring);

/* t[key] = v on the table at the top (counters and figures of stats tables). The one
 * helper for it: stats tables are built with it or with hr__lua_push_numbers. */
static inline void hr__lua_set_number(lua_State *L, const char *key, double v)
{
    lua_pushnumber(L, (lua_Number)v);
    lua_setfield(L, -2, key);
}

/* One field of a table of numbers (a stats table written as data). */
struct hr__lua_number {
    const char *key;
    double value;
};

/* Push a new table holding key = value for each of the n fields. */
static inline void hr__lua_push_numbers(lua_State *L, const struct hr__lua_number *f, size_t n)
{
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        hr__lua_set_number(L, f[i].key, f[i].value);
    }
}

#define HR__LUA_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A protected call into Lua failed with status rc and its error value at the top of L:
 * call report(ctx, "<what><sep><error>"). Allocates with malloc, not on the Lua stack: it
 * runs outside any protected call, where a Lua allocation failure could not be caught.
 * Without memory for the prefix, report gets the bare error. */
static inline void hr__lua_report_error(lua_State *L, int rc, const char *what, const char *sep,
                                        void (*report)(void *ctx, const char *msg), void *ctx)
{
    const char *err = lua_tostring(L, -1);
    if (err == NULL) {
        err = rc == LUA_ERRMEM   ? "out of memory"
              : rc == LUA_ERRERR ? "error in the error handler"
                                 : "error object is not a string";
    }
    size_t len = strlen(what) + strlen(sep) + strlen(err) + 1;
    char *msg = malloc(len);
    if (msg != NULL) {
        snprintf(msg, len, "%s%s%s", what, sep, err);
        report(ctx, msg);
        free(msg);
    } else {
        report(ctx, err);
    }
}

/* sim_binding.c: registers the metatable and pushes the sim_new function. */
void hr__lua_open_sim(lua_State *L);

#endif
