/*
 * linearize_binding.c: linearize.h's checker for Lua, one register (one key) per call.
 * lua/helios/testing/linearize.lua is the interface to use: it reads history files, pairs
 * invocations with completions, splits per key and maps values to integers.
 *
 *   local tk = require("helios.testkit")
 *   local r = tk.linearize_check({
 *       { f = "write", a = 1, call = 0, ret = 10 },
 *       { f = "read", a = 1, call = 5, ret = 12 },
 *       { f = "cas", a = 1, b = 2, call = 3, info = true },  -- unknown outcome
 *   }, { init = 0, max_steps = 1e8, max_states = 1e6 })
 *   --> { verdict = "ok" | "fail" | "unknown", steps =, states =, dropped =, bounded =,
 *   --    why = "max_steps" | "max_states" (unknown only),
 *   --    stuck =, value =, pending = { ... }, last = { ... } (fail; unknown: where the
 *   --    search had got furthest, when it had got stuck at all) }
 *
 * Ops: f "read" (a: the value observed), "write" (a: written), "cas" (a: expected, b: new);
 * a, b integers (nil is 0); call, ret numbers (ret >= call; ignored with info = true).
 * stuck, pending and last are 1-based positions in the ops array (linearize.h says what
 * they mean). Malformed ops raise; out of memory returns nil, "no_memory".
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "../core/error.h"
#include "linearize.h"
#include "testkit.h"

static lua_Integer opt_int_field(lua_State *L, int t, const char *name, lua_Integer def)
{
    lua_getfield(L, t, name);
    lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

static void push_positions(lua_State *L, const size_t *pos, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)pos[i] + 1);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

static int l_check(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t n = lua_objlen(L, 1);
    struct hr_lin_limits lim = { 0, 0 };
    int64_t init = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        init = opt_int_field(L, 2, "init", 0);
        lua_Integer steps = opt_int_field(L, 2, "max_steps", 0);
        lua_Integer states = opt_int_field(L, 2, "max_states", 0);
        luaL_argcheck(L, steps >= 0 && states >= 0, 2, "limits must be >= 0");
        lim.max_steps = (uint64_t)steps;
        lim.max_states = (size_t)states;
    }
    /* A userdata, so that a raise below while reading the ops frees it with the stack. */
    struct hr_lin_op *ops = lua_newuserdata(L, (n ? n : 1) * sizeof *ops);
    static const char *const fs[] = { "read", "write", "cas", NULL };
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (int)i + 1);
        int t = lua_gettop(L);
        if (!lua_istable(L, t)) {
            return luaL_error(L, "linearize_check: op %d is not a table", (int)i + 1);
        }
        struct hr_lin_op *op = &ops[i];
        memset(op, 0, sizeof *op);
        lua_getfield(L, t, "f");
        const char *f = lua_tostring(L, -1);
        int fi = -1;
        for (int j = 0; f != NULL && fs[j] != NULL; j++) {
            if (strcmp(f, fs[j]) == 0) {
                fi = j;
            }
        }
        if (fi < 0) {
            return luaL_error(L, "linearize_check: op %d: f must be read, write or cas",
                              (int)i + 1);
        }
        lua_pop(L, 1);
        op->f = (uint8_t)fi;
        op->a = opt_int_field(L, t, "a", 0);
        op->b = opt_int_field(L, t, "b", 0);
        lua_getfield(L, t, "info");
        op->info = (uint8_t)lua_toboolean(L, -1);
        lua_getfield(L, t, "call");
        lua_getfield(L, t, "ret");
        if (!lua_isnumber(L, -2) || (!op->info && !lua_isnumber(L, -1))) {
            return luaL_error(L, "linearize_check: op %d: call and ret must be numbers",
                              (int)i + 1);
        }
        op->call = lua_tonumber(L, -2);
        op->ret = op->info ? op->call : lua_tonumber(L, -1);
        lua_settop(L, t - 1);
    }
    struct hr_lin_result r;
    int rc = hr_lin_check(ops, n, init, &lim, &r);
    if (rc == HR_EINVAL) {
        hr_lin_result_free(&r);
        return luaL_error(L, "linearize_check: an op has a NaN time or completes before its "
                             "invocation");
    }
    if (rc != 0) {
        hr_lin_result_free(&r);
        lua_pushnil(L);
        lua_pushstring(L, hr_err_name(rc));
        return 2;
    }
    static const char *const verdicts[] = { "ok", "fail", "unknown" };
    lua_createtable(L, 0, 10);
    lua_pushstring(L, verdicts[r.verdict]);
    lua_setfield(L, -2, "verdict");
    lua_pushnumber(L, (lua_Number)r.steps);
    lua_setfield(L, -2, "steps");
    lua_pushnumber(L, (lua_Number)r.states);
    lua_setfield(L, -2, "states");
    lua_pushnumber(L, (lua_Number)r.dropped);
    lua_setfield(L, -2, "dropped");
    lua_pushnumber(L, (lua_Number)r.bounded);
    lua_setfield(L, -2, "bounded");
    if (r.why != NULL) {
        lua_pushstring(L, r.why);
        lua_setfield(L, -2, "why");
    }
    if (r.npending > 0) { /* a failure, or where a search that gave up had got to */
        lua_pushinteger(L, (lua_Integer)r.stuck + 1);
        lua_setfield(L, -2, "stuck");
        lua_pushinteger(L, (lua_Integer)r.value);
        lua_setfield(L, -2, "value");
        push_positions(L, r.pending, r.npending);
        lua_setfield(L, -2, "pending");
        push_positions(L, r.last, r.nlast);
        lua_setfield(L, -2, "last");
    }
    hr_lin_result_free(&r);
    return 1;
}

void hr__tk_open_linearize(lua_State *L)
{
    lua_pushcfunction(L, l_check);
    lua_setfield(L, -2, "linearize_check");
}
