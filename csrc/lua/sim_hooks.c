/*
 * sim_hooks.c: the simulator's calls into Lua (struct hr_sim_hooks).
 *
 * The simulator calls these from inside hr_sim_step and friends, with C frames of the
 * simulator, the node and the core on the stack. A Lua error must never longjmp through
 * them (it would skip their cleanup and leave a node half-updated), so a hook does nothing
 * that can raise outside lua_pcall: it only fetches values that already exist (lua_rawgeti
 * on the hooks table, light userdata), and a C trampoline pushes the arguments (which
 * allocates) inside the protected call. Errors get a traceback from the message handler.
 * The first failure is recorded on the sim (hr__lsim_set_error); the apply hook then
 * returns non-zero so that the simulator stops, and the binding call that ran the step
 * reports it.
 *
 * The hooks table is the userdata's environment (see binding.h); every binding call that
 * may run hooks pushes it on its stack first (hr__lsim_enter), so a hook finds it at
 * s->L / s->hooks_idx.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

void hr__lsim_enter(lua_State *L, struct hr__lsim *s, int ud_idx, struct hr__lsim_frame *saved)
{
    saved->L = s->L;
    saved->hooks_idx = s->hooks_idx;
    lua_getfenv(L, ud_idx);
    s->L = L;
    s->hooks_idx = lua_gettop(L);
}

void hr__lsim_leave(struct hr__lsim *s, lua_State *L, const struct hr__lsim_frame *saved)
{
    (void)L;
    s->L = saved->L;
    s->hooks_idx = saved->hooks_idx;
}

void hr__lsim_set_error(struct hr__lsim *s, const char *msg)
{
    if (s->hook_err != NULL) {
        return;
    }
    size_t len = strlen(msg);
    s->hook_err = malloc(len + 1);
    if (s->hook_err != NULL) {
        memcpy(s->hook_err, msg, len + 1);
    }
}

/* Message handler: the error as a string, with a traceback of the Lua code that raised. */
int hr__lsim_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
            msg = lua_tostring(L, -1);
        } else {
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        }
    }
    /* debug.traceback rather than luaL_traceback: the rock builds against Lua 5.1's
     * headers, which do not have it, and must load in either interpreter. */
    lua_getglobal(L, "debug");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "traceback");
        if (lua_isfunction(L, -1)) {
            lua_pushstring(L, msg);
            lua_pushinteger(L, 2);
            lua_call(L, 2, 1);
            return 1;
        }
    }
    lua_pushstring(L, msg);
    return 1;
}

struct hook_call {
    int slot; /* HR__HOOK_APPLY ... */
    hr_id_t id;
    const struct hr_entry *e;
    int role;
    hr_term_t term;
    hr_id_t leader;
    hr_index_t index;         /* RESTORE, SNAPSHOT_DONE */
    const struct hr_blob *in; /* RESTORE: the snapshot's bytes */
    bool installed;           /* SNAPSHOT_DONE */
    uint64_t ctx;             /* READ */
    int status;               /* READ */
    hr_time_t time_ms;        /* READ: the leader's clock at the read index, 0 unknown */
    bool next;                /* SNAPSHOT: the next slice of the one started */
    bool pending;             /* SNAPSHOT: the hook returned false (more slices to come) */
    struct hr_blob *out;      /* SNAPSHOT: the bytes the hook returned */
    bool halt;                /* APPLY: the hook asked to halt the node */
};

/* Protected: (call, fn) -> fn(arguments of the call). */
int hr__lsim_trampoline(lua_State *L)
{
    const struct hook_call *c = lua_touserdata(L, 1);
    lua_pushvalue(L, 2);
    lua_pushnumber(L, (lua_Number)c->id);
    switch (c->slot) {
    case HR__HOOK_APPLY: {
        /* A true result asks to halt the node (on_fsm_error = "stop", sim.lua). */
        lua_call(L, 1 + hr__lua_push_entry(L, c->e), 1);
        struct hook_call *mc = lua_touserdata(L, 1);
        mc->halt = lua_toboolean(L, -1);
        break;
    }
    case HR__HOOK_STATE:
        lua_pushstring(L, hr_role_name(c->role));
        lua_pushnumber(L, (lua_Number)c->term);
        lua_pushnumber(L, (lua_Number)c->leader);
        lua_call(L, 4, 0);
        break;
    case HR__HOOK_SNAPSHOT: {
        lua_pushboolean(L, c->next);
        lua_call(L, 2, 1);
        struct hook_call *mc = lua_touserdata(L, 1);
        if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
            mc->pending = true; /* a slice done, more to come */
            break;
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            return luaL_error(L, "fsm:snapshot() must return a string (got %s)",
                              luaL_typename(L, -1));
        }
        size_t len;
        const char *bytes = lua_tolstring(L, -1, &len);
        mc->out = hr_blob_new(bytes, len);
        if (mc->out == NULL) {
            return luaL_error(L, "out of memory");
        }
        break;
    }
    case HR__HOOK_RESTORE:
        lua_pushnumber(L, (lua_Number)c->index);
        lua_pushnumber(L, (lua_Number)c->term);
        lua_pushlstring(L, c->in != NULL ? (const char *)c->in->data : "", hr_blob_len(c->in));
        lua_call(L, 4, 0);
        break;
    case HR__HOOK_SNAPSHOT_DONE:
        lua_pushnumber(L, (lua_Number)c->index);
        lua_pushnumber(L, (lua_Number)c->term);
        lua_pushboolean(L, c->installed);
        lua_call(L, 4, 0);
        break;
    case HR__HOOK_READ:
        lua_pushnumber(L, (lua_Number)c->ctx);
        lua_pushnumber(L, (lua_Number)c->index);
        if (c->status != 0) {
            lua_pushstring(L, hr_err_name(c->status));
        } else {
            lua_pushnil(L);
        }
        if (c->time_ms != 0) {
            lua_pushnumber(L, (lua_Number)c->time_ms);
        } else {
            lua_pushnil(L);
        }
        lua_call(L, 5, 0);
        break;
    default:
        lua_call(L, 1, 0);
        break;
    }
    return 0;
}

/* Call the Lua hook of c->slot if there is one. 0, or -1 with the error recorded (what
 * describes the call for the message). */
static void report_error(void *ctx, const char *msg)
{
    hr__lsim_set_error(ctx, msg);
}

static int call_hook(struct hr__lsim *s, struct hook_call *c, const char *what)
{
    lua_State *L = s->L;
    if (L == NULL) {
        /* A hook outside any binding call: the simulator's contract says this cannot
         * happen; refuse rather than touch a stale stack. */
        hr__lsim_set_error(s, "sim: hook called outside a binding call");
        return -1;
    }
    if (!lua_checkstack(L, 8)) {
        hr__lsim_set_error(s, "sim: Lua stack overflow in a hook");
        return -1;
    }
    int base = lua_gettop(L);
    lua_rawgeti(L, s->hooks_idx, c->slot);
    if (lua_isnil(L, -1)) {
        lua_settop(L, base);
        return 0;
    }
    lua_rawgeti(L, s->hooks_idx, HR__HOOK_TRACEBACK);
    lua_rawgeti(L, s->hooks_idx, HR__HOOK_TRAMPOLINE);
    lua_pushlightuserdata(L, c);
    lua_pushvalue(L, base + 1);
    s->in_hook++;
    int rc = lua_pcall(L, 2, 0, base + 2);
    s->in_hook--;
    if (rc != 0) {
        hr__lua_report_error(L, rc, what, " failed: ", report_error, s);
    }
    lua_settop(L, base);
    return rc == 0 ? 0 : -1;
}

static int apply_hook(void *ctx, hr_id_t id, const struct hr_entry *e)
{
    struct hr__lsim *s = ctx;
    if (s->hook_err != NULL) {
        return -1; /* an earlier hook failed: stop the simulation now */
    }
    struct hook_call c = {.slot = HR__HOOK_APPLY, .id = id, .e = e};
    char what[96];
    snprintf(what, sizeof what, "fsm apply on n%" PRIu64 " at index %" PRIu64, id, e->index);
    if (call_hook(s, &c, what) != 0) {
        return -1;
    }
    return c.halt ? 1 : 0;
}

static void state_hook(void *ctx, hr_id_t id, int role, hr_term_t term, hr_id_t leader)
{
    struct hr__lsim *s = ctx;
    if (s->hook_err != NULL) {
        return;
    }
    struct hook_call c = {
        .slot = HR__HOOK_STATE, .id = id, .role = role, .term = term, .leader = leader};
    char what[96];
    snprintf(what, sizeof what, "state observer on n%" PRIu64, id);
    call_hook(s, &c, what);
}

static void start_hook(void *ctx, hr_id_t id)
{
    struct hr__lsim *s = ctx;
    if (s->hook_err != NULL) {
        return;
    }
    struct hook_call c = {.slot = HR__HOOK_START, .id = id};
    char what[96];
    snprintf(what, sizeof what, "fsm start on n%" PRIu64, id);
    call_hook(s, &c, what);
}

static int snapshot_hook(void *ctx, hr_id_t id, bool next, struct hr_blob **out)
{
    struct hr__lsim *s = ctx;
    if (s->hook_err != NULL) {
        return -1;
    }
    struct hook_call c = {.slot = HR__HOOK_SNAPSHOT, .id = id, .next = next};
    char what[96];
    snprintf(what, sizeof what, "fsm snapshot on n%" PRIu64, id);
    if (call_hook(s, &c, what) != 0) {
        hr_blob_release(c.out);
        return -1;
    }
    if (c.pending) {
        *out = NULL;
        return 0;
    }
    if (c.out == NULL) {
        /* No hook registered: the sim cannot take snapshots of this FSM. */
        hr__lsim_set_error(s, "sim: no snapshot hook");
        return -1;
    }
    *out = c.out;
    return 0;
}

static int restore_hook(void *ctx, hr_id_t id, hr_index_t index, hr_term_t term,
                        const struct hr_blob *data)
{
    struct hr__lsim *s = ctx;
    if (s->hook_err != NULL) {
        return -1;
    }
    struct hook_call c = {.slot = HR__HOOK_RESTORE, .id = id, .index = index, .term = term,
                          .in = data};
    char what[128];
    snprintf(what, sizeof what, "fsm restore on n%" PRIu64 " (snapshot through index %" PRIu64 ")",
             id, index);
    return call_hook(s, &c, what);
}

static void snapshot_done_hook(void *ctx, hr_id_t id, hr_index_t index, hr_term_t term,
                               bool installed)
{
    struct hr__lsim *s = ctx;
    if (s->hook_err != NULL) {
        return;
    }
    struct hook_call c = {.slot = HR__HOOK_SNAPSHOT_DONE, .id = id, .index = index,
                          .term = term, .installed = installed};
    char what[96];
    snprintf(what, sizeof what, "snapshot observer on n%" PRIu64, id);
    call_hook(s, &c, what);
}

static void read_hook_fn(void *ctx, hr_id_t id, uint64_t read_ctx, hr_index_t index,
                         hr_time_t time_ms, int status)
{
    struct hr__lsim *s = ctx;
    if (s->hook_err != NULL) {
        return;
    }
    struct hook_call c = {.slot = HR__HOOK_READ, .id = id, .index = index, .ctx = read_ctx,
                          .status = status, .time_ms = time_ms};
    char what[96];
    snprintf(what, sizeof what, "read callback on n%" PRIu64, id);
    call_hook(s, &c, what);
}

const struct hr_sim_hooks hr__lsim_hooks_template = {
    .ctx = NULL,
    .apply = apply_hook,
    .state = state_hook,
    .start = start_hook,
    .snapshot = snapshot_hook,
    .restore = restore_hook,
    .snapshot_done = snapshot_done_hook,
    .read = read_hook_fn,
};
