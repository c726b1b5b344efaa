--- spec/bench/nodestats.lua: what the benchmarks read off a cluster's node processes
-- (require("spec.bench.nodestats") from the repository root): CPU used, from /proc, and
-- the storage counters of the node's stats (fsyncs, entries written).
--
--   local nodestats = require("spec.bench.nodestats")
--   local before = nodestats.take(cl, cl:client())
--   ... load ...
--   local d = nodestats.diff(before, nodestats.take(cl, cl:client()))  -- per id

local proc = require("spec.bench.proc")

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
local M = {}

--- CPU time (user + system, ms) process pid has used so far (0 if unreadable).
function M.cpu_ms(pid)
    return (proc.cpu_seconds(pid) or 0) * 1000
end

--- Per node of testing cluster cl: { cpu = ms, fsyncs =, entries = } so far.
function M.take(cl, client)
    local t = {}
    for _, id in ipairs(cl:ids()) do
        local c = client:node(id)
        local st = c and c:stats() or {}
        t[id] = { cpu = M.cpu_ms(cl:pid(id)), fsyncs = st.fsyncs or 0,
                  entries = st.entries_written or 0 }
    end
    return t
end

--- after - before, per node and field.
function M.diff(before, after)
    local d = {}
    for id, a in each(after) do
        local b = before[id] or {}
        d[id] = { cpu = a.cpu - (b.cpu or 0), fsyncs = a.fsyncs - (b.fsyncs or 0),
                  entries = a.entries - (b.entries or 0) }
    end
    return d
end

return M
