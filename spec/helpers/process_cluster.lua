--- spec/helpers/process_cluster.lua: shared pieces of the specs that run a cluster of node
-- processes (helios.testing): spec/cluster_three_spec.lua, spec/membership_process_spec.lua.
--
--   local pc = require("spec.helpers.process_cluster")
--   local last, kv = pc.commit(cl, "a", 10)   -- cl from testing.with_cluster
--   pc.assert_all(cl, kv)

local core = require("helios.core")
-- busted gives its assert (assert.are.equal) to spec files only, not to modules they require.
local assert = require("luassert")

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each, tostring = pairs, tostring

local M = {}

--- Commit n "set" commands with keys prefix..i through the cluster client (into: a key ->
-- value map to add to); returns the index of the last one and the key -> value map.
function M.commit(cl, prefix, n, into)
    local cc = cl:client()
    local last
    into = into or {}
    for i = 1, n do
        local key, value = ("%s%d"):format(prefix, i), ("v%d-%d"):format(i, core.clock_ms())
        local index, code, result = cc:apply(("set %s %s"):format(key, value), 10000)
        assert(index, ("apply %s: %s %s"):format(key, tostring(code), tostring(result)))
        assert.are.equal("OK", result)
        into[key] = value
        last = index
    end
    return last, into
end

--- Every committed key still has its value, read through the log on whichever node leads.
function M.assert_all(cl, kv)
    local cc = cl:client()
    for key, value in each(kv) do
        local index, code, got = cc:apply("get " .. key, 10000)
        assert(index, ("get %s: %s %s"):format(key, tostring(code), tostring(got)))
        assert.are.equal(value, got, "lost committed key " .. key)
    end
end

return M
