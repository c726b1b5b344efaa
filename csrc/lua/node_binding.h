/*
 * node_binding.h: the networked node (csrc/node/runtime.h) seen from Lua, the low layer
 * under lua/helios/raft.lua's raft.new.
 *
 *   local n = core.node_new({ id = "node-1", data_dir = "...", listen = "127.0.0.1:9001",
 *                             secret = "s", cluster_id = "helios",
 *                             peers = { ["node-1"] = "127.0.0.1:9001", ... },
 *                             config = { election_timeout_ms = 150, ... },
 *                             fs = <file system>,    -- optional, see fs_binding.h
 *                             join = false },        -- true: wait to be added (runtime.h)
 *                           { apply = function(index, term, type, cmd, time_ms) end,
 *                             state = function(role, term, leader_name) end,
 *                             error = function(code, msg) end,      -- code nil: recovered
 *                             log = function(level, msg) end,
 *                             restore = function(index, term) end,
 *                             read = function(ctx, code, index, time_ms) end,
 *                             -- optional, in place of apply: the committed entries a run
 *                             -- at a time, t[5i+1 .. 5i+5] apply's arguments for the
 *                             -- i-th (from 0); at most 256 a call
 *                             apply_batch = function(t, n) end })
 *   n:start()                    --> true | nil, code, msg (then the node is closed)
 *   n:propose(cmd)               --> index, term | nil, code ("not_leader"...), msg
 *   n:state()                    --> role, term, leader_name | nil while failed/closed
 *   n:status()  n:stats()        --> raw tables (raft.lua shapes them)
 *   n:snapshot_point([applied])  --> index, term | nil: where a snapshot of the FSM at
 *                                    applied (default: the last index handed to it)
 *                                    would stand; nil if nothing new was applied
 *   n:metrics()                  --> the raw metrics table (node_metrics.c)
 *   n:shutdown(function() end)   -- the callback runs from the loop once all is closed
 *
 * Membership, reads, transfers (node_membership.c; leader only where the core says so):
 *   n:add_peer(name, addr[, voter = true]) --> index | nil, code, msg
 *   n:remove_peer(name)          --> index | nil, code, msg
 *   n:configuration()            --> nil | { index, committed, promoting = name|nil,
 *                                    servers = { { id, addr, voter, match, caught_up } } }
 *   n:read_index(ctx)            --> true | nil, code, msg; the read hook answers it:
 *                                    read(ctx, nil, index, time_ms) once the FSM has
 *                                    applied up to index (serve the read inside the hook;
 *                                    time_ms: the leader's clock when it fixed the index,
 *                                    nil unknown), or read(ctx, "not_leader" | "timeout" |
 *                                    "shutdown", index)
 *   n:transfer([name])           --> true | nil, code, msg;  n:transferee() --> name | nil
 *   n:status().removed           true once the node knows it is out of the configuration
 *   core.recover(data_dir, name[, addr]) --> { index, term, entries, snapshot_index }
 *                                    | nil, code, msg (offline disaster recovery)
 *
 * Hooks run from loop callbacks through hr__loop_call (loop.h): protected; an error stops
 * the loop and core.run returns it. After an apply hook fails the node delivers no more
 * entries (the FSM stays at a consistent prefix); the node itself keeps running.
 * Threading: the loop's thread.
 */
#ifndef HR_LUA_NODE_BINDING_H
#define HR_LUA_NODE_BINDING_H

#include <stdbool.h>

#include <lauxlib.h>
#include <lua.h>

struct hr_runtime;
struct hr_runtime_stats;

/* Add node_new and recover to the module table at the top of the stack. Returns 0. */
int hr__lua_open_node(lua_State *L);

/* node_binding.c: the runtime of the node userdata at idx (raises if it is not one), NULL
 * once shut down or closing. */
struct hr_runtime *hr__lua_node_runtime(lua_State *L, int idx);

/* node_membership.c */
extern const luaL_Reg hr__lua_node_membership_methods[];
/* Push the configuration table (n:configuration()); false, nothing pushed, when the
 * runtime has no node. */
bool hr__lua_push_configuration(lua_State *L, struct hr_runtime *rt);
/* core.recover */
int hr__lua_recover(lua_State *L);

/* node_metrics.c: n:metrics() (the raw counters, gauges and histograms for
 * lua/helios/metrics.lua), and core.process_memory() added to the module table at the top
 * of the stack. */
extern const luaL_Reg hr__lua_node_metrics_methods[];
void hr__lua_open_node_metrics(lua_State *L);
/* Push the snapshot counters of s as a table: the "snapshots" field of n:metrics() and of
 * n:stats() (taken, installed, transfers, chunks_sent, bytes_sent, chunks_received,
 * bytes_received, resumes). */
void hr__lua_push_snapshot_counts(lua_State *L, const struct hr_runtime_stats *s);

#endif
