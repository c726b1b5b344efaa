/*
 * node_binding.h: the networked node (csrc/node/runtime.h) seen from Lua, the low layer
 * under lua/helios/raft.lua's raft.new.
 *
 *   local n = core.node_new({ id = "node-1", data_dir = "...", listen = "127.0.0.1:9001",
 *                             secret = "s", cluster_id = "helios",
 *                             peers = { ["node-1"] = "127.0.0.1:9001", ... },
 *                             config = { election_timeout_ms = 150, ... },
 *                             fs = <file system> },  -- optional, see fs_binding.h
 *                           { apply = function(index, term, type, cmd, time_ms) end,
 *                             state = function(role, term, leader_name) end,
 *                             error = function(code, msg) end,      -- code nil: recovered
 *                             log = function(level, msg) end })
 *   n:start()                    --> true | nil, code, msg (then the node is closed)
 *   n:propose(cmd)               --> index, term | nil, code ("not_leader"...), msg
 *   n:state()                    --> role, term, leader_name | nil while failed/closed
 *   n:status()  n:stats()        --> raw tables (raft.lua shapes them)
 *   n:shutdown(function() end)   -- the callback runs from the loop once all is closed
 *
 * Hooks run from loop callbacks through hr__loop_call (loop.h): protected; an error stops
 * the loop and core.run returns it. After an apply hook fails the node delivers no more
 * entries (the FSM stays at a consistent prefix); the node itself keeps running.
 * Threading: the loop's thread.
 */
#ifndef HR_LUA_NODE_BINDING_H
#define HR_LUA_NODE_BINDING_H

#include <lua.h>

/* Add node_new to the module table at the top of the stack. Returns 0. */
int hr__lua_open_node(lua_State *L);

#endif
