--- spec/helpers/linearize_gen.lua: linearizable register histories from a seed, for the
-- checker's property test and its benchmark (helios.testing.linearize's record format).
--
--   local gen = require("spec.helpers.linearize_gen")
--   local history, ops = gen.history{ seed = 7, processes = 10, ops = 1000,
--       keys = { "a", "b" }, values = 5, info = 0.02 }
--
-- Each process runs one op at a time, with random think times and durations; each op takes
-- effect at a random instant inside its interval, and the register's answers follow the
-- order of those instants, so the history is linearizable by construction. values: N draws
-- written values from 1..N (collisions, harder), nil gives every write a value of its own.
-- info: the fraction of ops whose outcome the client does not learn (recorded as info);
-- half of those take effect (some after their completion record), half never do.

local prng = require("spec.helpers.prng")

local M = {}

function M.history(o)
    local rng = prng.new(o.seed)
    local nproc, nops, keys = o.processes or 10, o.ops or 1000, o.keys or { "k" }
    local info = o.info or 0
    local clock, counter = {}, 0
    for p = 1, nproc do clock[p] = rng:float() * 10 end
    local ops = {}
    for i = 1, nops do
        local p = (i - 1) % nproc + 1
        local call = clock[p] + rng:float() * 5
        local ret = call + 0.5 + rng:float() * 20
        clock[p] = ret
        local r = rng:float()
        local f = r < 0.5 and "read" or r < 0.8 and "write" or "cas"
        counter = counter + 1
        local function val() return o.values and rng:int(1, o.values) or counter end
        local op = { process = p, f = f, key = rng:pick(keys), call = call, ret = ret }
        if f == "write" then op.value = val() end
        if f == "cas" then op.value = { o.values and rng:int(1, o.values) or nil, val(), n = 2 } end
        op.at = call + rng:float() * (ret - call)
        if rng:chance(info) then
            op.type = "info"
            if rng:chance(0.5) then
                op.at = nil -- never takes effect
            elseif rng:chance(0.5) then
                op.at = ret + rng:float() * 50 -- takes effect after the client gave up
            end
        end
        ops[i] = op
    end
    -- A cas without a chosen expected value expects whatever its key held a little before.
    local order = {}
    for _, op in ipairs(ops) do if op.at then order[#order + 1] = op end end
    table.sort(order, function(a, b) return a.at < b.at end)
    local reg = {}
    for _, op in ipairs(order) do
        local cur = reg[op.key]
        if op.f == "read" then
            op.value = cur
        elseif op.f == "write" then
            reg[op.key] = op.value
        else
            if op.value[1] == nil and rng:chance(0.7) then op.value[1] = cur end
            if op.value[1] == cur then
                reg[op.key] = op.value[2]
            elseif op.type ~= "info" then
                op.type = "fail"
            end
        end
        op.type = op.type or "ok"
    end
    for _, op in ipairs(ops) do op.type = op.type or "info" end
    local recs = {}
    for _, op in ipairs(ops) do
        recs[#recs + 1] = { process = op.process, type = "invoke", f = op.f, key = op.key,
                            value = op.f ~= "read" and op.value or nil, time = op.call, op = op }
        recs[#recs + 1] = { process = op.process, type = op.type, f = op.f, key = op.key,
                            value = op.f == "read" and op.type == "ok" and op.value or nil,
                            time = op.ret, op = op }
    end
    -- By time; a process's records are already in order, and the sort is made stable.
    for i, r in ipairs(recs) do r.seq = i end
    table.sort(recs, function(a, b)
        if a.time ~= b.time then return a.time < b.time end
        return a.seq < b.seq
    end)
    for _, r in ipairs(recs) do r.seq = nil end
    return recs, ops
end

return M
