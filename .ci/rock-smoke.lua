-- .ci/rock-smoke.lua: run by .ci/rock-check with only the installed rock tree on the paths.
--
--   LUA_PATH=<tree>/share/lua/5.1/?.lua LUA_CPATH=<tree>/lib/lua/5.1/?.so \
--     luajit .ci/rock-smoke.lua <tree>
--
-- Checks that helios.raft, helios.sim and helios.core load from <tree> and that a 3-node
-- simulated cluster elects a leader and commits an entry; and that the test module
-- helios.testkit, installed with it, loads and hands helios.core a file system.

local tree = assert(arg[1], "Usage: luajit rock-smoke.lua TREE")

local function from_tree(kind, name)
    local found = package.searchpath(name, kind == "c" and package.cpath or package.path)
    assert(found, name .. " not found on the tree's paths")
    assert(found:sub(1, #tree) == tree, name .. " loaded from " .. found .. ", not from " .. tree)
    return found
end

from_tree("lua", "helios.raft")
from_tree("lua", "helios.sim")
from_tree("c", "helios.core")

require("helios.raft")
local sim = require("helios.sim")

local function echo_fsm()
    return {
        apply = function(_, cmd) return cmd end,
        snapshot = function() return "" end,
        restore = function() end,
    }
end

local c = sim.cluster{ n = 3, seed = 7, fsm = echo_fsm }
assert(c:run_until(function() return c:leader() end, 5000), "no leader within 5 s")
local index, term, result = c:apply("hello", 2000)
assert(index, "apply failed: " .. tostring(term))
assert(result == "hello", "fsm returned " .. tostring(result))
c:check()
print(("ok: %s leads, committed #%d in term %d"):format(c:leader(), index, term))

from_tree("c", "helios.testkit")
local tk = require("helios.testkit")
local fs = tk.simfs_new(1)
local ok, report, verdict = require("helios.core").storage_inspect("nowhere", { fs = fs })
assert(not ok and verdict == "not_data_dir", "storage_inspect over a simfs: " .. tostring(report))
print("ok: helios.testkit loads, storage_inspect runs over its simfs")
