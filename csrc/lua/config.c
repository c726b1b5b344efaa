/*
 * config.c: Lua options tables into C structs (struct hr_config, struct hr_sim_snapshot,
 * struct hr_sim_net).
 *
 * The options are those of raft.new (docs/lua-api.md). Every bad value raises
 * an error that names the field ("config: election_timeout_ms must be a positive
 * integer"), and an unknown key raises too ("config: unknown option 'foo'"): a misspelt
 * option silently ignored is a test that does not test what it says.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "binding.h"

/* Raise msg without a position prefix: these errors describe the caller's options table,
 * and the Lua layer re-raises them at the caller's level. */
static void raise_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_error(L);
}

/* The snapshot policy: read into a struct hr_sim_snapshot by the simulator, ignored by
 * hr__lua_read_config (helios.raft reads them itself: the networked node's snapshot policy
 * runs in Lua, which forks the writer). */
static const char *const snapshot_options[] = {
    "snapshot_interval_ms",
    "snapshot_threshold",
    "trailing_logs",
    "snapshot_chunk_bytes",
    "snapshot_threshold_bytes",
    "trailing_logs_bytes",
    NULL,
};

/* Options of raft.new that the embedding sets itself: accepted so that one options table
 * serves both raft.new and sim.cluster, and ignored here. */
static const char *const ignored_options[] = {
    "secret",
    "listen",
    "data_dir",
    "peers",
    "id",
    "fsm",
    "on_fsm_error",
    NULL,
};

/* The value at idx as an error message shows it (pushed on the stack): a string quoted as
 * written and said to be one ("\"300\", a string"), a number as is, other types by name
 * (the same form as helios.raft's describe_value). */
static const char *describe(lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        return lua_pushfstring(L, "\"%s\", a string", lua_tostring(L, idx));
    case LUA_TNUMBER:
        lua_pushvalue(L, idx); /* tostring converts the copy, not the caller's value */
        return lua_tostring(L, -1);
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? "true" : "false";
    default:
        return lua_pushfstring(L, "a %s", luaL_typename(L, idx));
    }
}

uint64_t hr__lua_check_uint(lua_State *L, int idx, const char *what, uint64_t lo, uint64_t hi)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number d = lua_tonumber(L, idx);
        if (d == floor(d) && d >= (lua_Number)lo && d <= (lua_Number)hi) {
            return (uint64_t)d;
        }
        if (d == floor(d) && d > (lua_Number)hi) {
            raise_error(L, "%s must be at most %f", what, (lua_Number)hi);
        }
    }
    raise_error(L, "%s must be a %s integer (got %s)", what, lo > 0 ? "positive" : "non-negative",
                describe(L, idx));
    return 0;
}

static bool check_bool(lua_State *L, int idx, const char *what)
{
    if (!lua_isboolean(L, idx)) {
        raise_error(L, "%s must be a boolean (got %s)", what, describe(L, idx));
    }
    return lua_toboolean(L, idx);
}

static double check_probability(lua_State *L, int idx, const char *what)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number d = lua_tonumber(L, idx);
        if (d >= 0 && d <= 1) {
            return d;
        }
    }
    raise_error(L, "%s must be a number in [0, 1]", what);
    return 0;
}

/* "config: name", for messages. */
static const char *field(lua_State *L, const char *prefix, const char *name)
{
    return lua_pushfstring(L, "%s: %s", prefix, name);
}

static bool listed(const char *const *list, const char *key)
{
    for (const char *const *p = list; *p != NULL; p++) {
        if (strcmp(key, *p) == 0) {
            return true;
        }
    }
    return false;
}

/* A snapshot option into snap (NULL: ignore it). */
static void read_snapshot_field(lua_State *L, const char *key, int v, const char *what,
                                struct hr_sim_snapshot *snap)
{
    if (snap == NULL) {
        return;
    }
    if (strcmp(key, "snapshot_threshold") == 0) {
        snap->snapshot_threshold = hr__lua_check_uint(L, v, what, 1, (1ULL << 53));
    } else if (strcmp(key, "snapshot_interval_ms") == 0) {
        snap->snapshot_interval_ms =
            (uint32_t)hr__lua_check_uint(L, v, what, 1, UINT32_MAX / 2);
    } else if (strcmp(key, "snapshot_chunk_bytes") == 0) {
        snap->snapshot_chunk_bytes = (uint32_t)hr__lua_check_uint(L, v, what, 1, UINT32_MAX);
    } else if (strcmp(key, "snapshot_threshold_bytes") == 0) {
        snap->snapshot_threshold_bytes = hr__lua_check_uint(L, v, what, 1, (1ULL << 53));
    } else if (strcmp(key, "trailing_logs_bytes") == 0) {
        snap->trailing_logs_bytes = hr__lua_check_uint(L, v, what, 1, (1ULL << 53));
    } else {
        snap->trailing_logs = hr__lua_check_uint(L, v, what, 0, (1ULL << 53));
    }
}

static void read_config_field(lua_State *L, const char *key, int v, struct hr_config *c,
                              struct hr_sim_snapshot *snap)
{
    const char *what = field(L, "config", key);
    if (strcmp(key, "election_timeout_ms") == 0) {
        c->election_timeout_ms = (uint32_t)hr__lua_check_uint(L, v, what, 1, UINT32_MAX / 2);
    } else if (strcmp(key, "heartbeat_timeout_ms") == 0) {
        c->heartbeat_timeout_ms = (uint32_t)hr__lua_check_uint(L, v, what, 1, UINT32_MAX);
    } else if (strcmp(key, "max_entries_per_append") == 0) {
        c->max_entries_per_append =
            (uint32_t)hr__lua_check_uint(L, v, what, 1, HR_MAX_ENTRIES_PER_APPEND);
    } else if (strcmp(key, "max_append_bytes") == 0) {
        c->max_append_bytes = (uint32_t)hr__lua_check_uint(L, v, what, 1, UINT32_MAX);
    } else if (strcmp(key, "max_inflight") == 0) {
        c->max_inflight = (uint32_t)hr__lua_check_uint(L, v, what, 1, UINT32_MAX);
    } else if (strcmp(key, "prevote") == 0) {
        c->prevote = check_bool(L, v, what);
    } else if (strcmp(key, "check_quorum") == 0) {
        c->check_quorum = check_bool(L, v, what);
    } else if (strcmp(key, "read_lease") == 0) {
        c->read_lease = check_bool(L, v, what);
    } else if (strcmp(key, "unsafe_read_no_confirm") == 0) {
        c->unsafe_read_no_confirm = check_bool(L, v, what);
    } else if (strcmp(key, "unsafe_commit_old_terms") == 0) {
        c->unsafe_commit_old_terms = check_bool(L, v, what);
    } else if (strcmp(key, "unsafe_skip_log_check") == 0) {
        c->unsafe_skip_log_check = check_bool(L, v, what);
    } else if (strcmp(key, "unsafe_count_learner_votes") == 0) {
        c->unsafe_count_learner_votes = check_bool(L, v, what);
    } else if (listed(snapshot_options, key)) {
        read_snapshot_field(L, key, v, what, snap);
    } else if (!listed(ignored_options, key)) {
        raise_error(L, "config: unknown option '%s'", key);
    }
    lua_pop(L, 1); /* what */
}

static void read_config(lua_State *L, int idx, struct hr_config *c, struct hr_sim_snapshot *snap)
{
    if (lua_isnoneornil(L, idx)) {
        return;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            raise_error(L, "config: option names must be strings (got %s)", luaL_typename(L, -2));
        }
        read_config_field(L, lua_tostring(L, -2), lua_gettop(L), c, snap);
        lua_pop(L, 1);
    }
}

void hr__lua_read_config(lua_State *L, int idx, struct hr_config *c)
{
    read_config(L, idx, c, NULL);
}

void hr__lua_read_sim_config(lua_State *L, int idx, struct hr_config *c,
                             struct hr_sim_snapshot *snap)
{
    read_config(L, idx, c, snap);
}

void hr__lua_read_range(lua_State *L, int idx, const char *what, uint32_t *min, uint32_t *max)
{
    if (!lua_istable(L, idx)) {
        raise_error(L, "%s must be a {min, max} table", what);
    }
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_rawgeti(L, idx, 1);
    lua_rawgeti(L, idx, 2);
    const char *wmin = lua_pushfstring(L, "%s[1]", what);
    const char *wmax = lua_pushfstring(L, "%s[2]", what);
    int top = lua_gettop(L);
    uint64_t lo = hr__lua_check_uint(L, top - 3, wmin, 0, UINT32_MAX);
    uint64_t hi = hr__lua_check_uint(L, top - 2, wmax, 0, UINT32_MAX);
    if (lo > hi) {
        raise_error(L, "%s: min must not exceed max", what);
    }
    *min = (uint32_t)lo;
    *max = (uint32_t)hi;
    lua_pop(L, 4);
}

void hr__lua_read_net(lua_State *L, int idx, const char *what, struct hr_sim_net *net)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int v = lua_gettop(L);
        if (lua_type(L, -2) != LUA_TSTRING) {
            raise_error(L, "%s: option names must be strings", what);
        }
        const char *key = lua_tostring(L, -2);
        const char *name = field(L, what, key);
        if (strcmp(key, "drop") == 0) {
            net->drop = check_probability(L, v, name);
        } else if (strcmp(key, "duplicate") == 0) {
            net->duplicate = check_probability(L, v, name);
        } else if (strcmp(key, "delay_ms") == 0) {
            uint32_t lo, hi;
            hr__lua_read_range(L, v, name, &lo, &hi);
            net->delay_min_ms = lo;
            net->delay_max_ms = hi;
        } else if (strcmp(key, "reorder") == 0) {
            net->reorder = check_bool(L, v, name);
        } else {
            raise_error(L, "%s: unknown option '%s'", what, key);
        }
        lua_pop(L, 2); /* name, value */
    }
}
