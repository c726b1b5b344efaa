--- spec/helpers/schedule.lua: random fault schedules for simulator specs.
--
-- Each schedule drives a helios.sim cluster through faults chosen by a seeded PRNG
-- (spec/helpers/prng.lua), with client proposals flowing, so a run is a pure function of the
-- seed. Invariants are checked by the simulator after every step: a violation raises out of
-- whichever c:run_for the schedule was in.
--
--   local schedule = require("spec.helpers.schedule")
--   schedule.random(c, prng.new(seed), { duration_ms = 3000 })
--   schedule.figure8(c, prng.new(seed), { iterations = 100, unreliable = true })
--   local acked = schedule.churn(c, prng.new(seed), { duration_ms = 4000 })
--   schedule.old_terms(c, prng.new(seed), { duration_ms = 3000 })

local ipairs, format = ipairs, string.format

local M = {}

local function ids_where(c, pred)
    local out = {}
    for _, id in ipairs(c:ids()) do
        if pred(id) then out[#out + 1] = id end
    end
    return out
end

local function alive(c) return ids_where(c, function(id) return c:alive(id) end) end
local function crashed(c) return ids_where(c, function(id) return not c:alive(id) end) end

--- A lossy network drawn from rng: loss, duplicates, delays up to `max_delay_ms`, reorder.
function M.bad_network(rng, max_delay_ms)
    return {
        drop = rng:float() * 0.3,
        duplicate = rng:float() * 0.1,
        delay_ms = { 1, rng:pick({ 5, 20, 60, max_delay_ms or 200 }) },
        reorder = rng:chance(0.5),
    }
end

local function propose_on_leader(c, tag)
    local id = c:leader()
    if id then
        -- Refusals (not_leader) are part of the game: the cluster is being hit.
        c:node(id):propose(tag)
    end
end

--- Random faults for duration_ms of virtual time: crash and restart (storms included),
-- disconnects, partitions, loss, long delays, duplicates, reordering; proposals on the
-- leader all along. Returns a count of each action taken.
function M.random(c, rng, opts)
    opts = opts or {}
    local stop = c:now() + (opts.duration_ms or 3000)
    local ids = c:ids()
    local n = #ids
    local counts = { crash = 0, restart = 0, disconnect = 0, connect = 0, partition = 0,
                     heal = 0, network = 0, propose = 0 }
    local k = 0
    while c:now() < stop do
        -- A fault on about one step in four; the steps between let the cluster progress.
        local r = rng:chance(0.25) and rng:float() or 1
        if r < 0.10 then
            local up = alive(c)
            if #up > 0 then c:crash(rng:pick(up)); counts.crash = counts.crash + 1 end
        elseif r < 0.13 then
            -- A storm: several nodes at once, a majority possibly.
            for _, id in ipairs(rng:sample(alive(c), rng:int(0, #alive(c)))) do
                c:crash(id); counts.crash = counts.crash + 1
            end
        elseif r < 0.30 then
            local down = crashed(c)
            if #down > 0 then c:restart(rng:pick(down)); counts.restart = counts.restart + 1 end
        elseif r < 0.38 then
            c:disconnect(rng:pick(ids)); counts.disconnect = counts.disconnect + 1
        elseif r < 0.48 then
            c:connect(rng:pick(ids)); counts.connect = counts.connect + 1
        elseif r < 0.55 then
            local order = rng:sample(ids, n)
            local cut = rng:int(1, n - 1)
            local a, b = {}, {}
            for i = 1, n do
                if i <= cut then a[#a + 1] = order[i] else b[#b + 1] = order[i] end
            end
            c:partition(a, b); counts.partition = counts.partition + 1
        elseif r < 0.62 then
            c:heal(); counts.heal = counts.heal + 1
        elseif r < 0.72 then
            c:set_network(M.bad_network(rng, opts.max_delay_ms)); counts.network = counts.network + 1
        elseif r < 0.78 then
            c:set_network({ drop = 0, duplicate = 0, delay_ms = { 1, 5 }, reorder = false })
            counts.network = counts.network + 1
        end
        for _ = 1, rng:int(0, 2) do
            k = k + 1
            propose_on_leader(c, format("r%d", k))
            counts.propose = counts.propose + 1
        end
        c:run_for(rng:int(1, 50))
    end
    return counts
end

--- The Figure 8 schedule of the Raft paper, as MIT 6.824's Figure8 tests run it: propose on
-- whoever leads, wait a short (or now and then a long) random time, cut the leader off
-- (crash, or disconnect when opts.disconnect), and bring a random node back whenever fewer
-- than a majority are up. opts.unreliable adds loss, long delays and reordering. Returns
-- how many leaders were cut off.
function M.figure8(c, rng, opts)
    opts = opts or {}
    local ids = c:ids()
    local n = #ids
    local majority = math.floor(n / 2) + 1
    -- Unreliable: 10% loss, reordering, and now and then a spell of long delays (longer
    -- than an election timeout, so elections fail while it lasts).
    local lossy = { drop = 0.1, duplicate = 0.02, delay_ms = { 1, 25 }, reorder = true }
    local slow = { drop = 0.1, duplicate = 0.02, delay_ms = { 1, 300 }, reorder = true }
    if opts.unreliable then c:set_network(lossy) end
    local function up(id)
        if opts.disconnect then return c:connected(id) end
        return c:alive(id)
    end
    local function down(id)
        if opts.disconnect then c:disconnect(id) else c:crash(id) end
    end
    local function back(id)
        if opts.disconnect then c:connect(id) else c:restart(id) end
    end
    local nup, cut = n, 0
    for it = 1, opts.iterations or 100 do
        local leader
        for _, id in ipairs(ids) do
            if c:alive(id) then
                local ok = c:node(id):propose(format("f%d-%d", it, rng:int(0, 1e6)))
                if ok and up(id) then leader = id end
            end
        end
        if opts.unreliable then
            if rng:chance(0.02) then
                c:set_network(slow)
            elseif rng:chance(0.1) then
                c:set_network(lossy)
            end
        end
        if rng:chance(0.1) then
            c:run_for(rng:int(0, 500))
        else
            c:run_for(rng:int(0, 13))
        end
        if leader and up(leader) then
            down(leader)
            nup = nup - 1
            cut = cut + 1
        end
        if nup < majority then
            local s = rng:pick(ids)
            if not up(s) then
                back(s)
                nup = nup + 1
            end
        end
    end
    return cut
end

--- An adversary for the commit rule of §5.4.2 (Figure 8): random, but shaped so that
-- leaders live for a few milliseconds at the moments that matter. On every leader, at
-- random: cut it off the moment it leads (its no-op reaches nobody), or propose one entry
-- and cut it off as soon as it reached a minority, or as soon as the leader's commit index
-- moves, or after a random short while, or leave it be for a while. A cut puts the leader
-- in a partition with every follower whose last entry is of the leader's term (if they
-- are a minority; else alone), which is also what rejoins the previous minority to the
-- rest; now and then it is a crash instead. Crashed nodes come back so that a majority
-- stays up. Use with short election timeouts, one entry per AppendEntries and one in
-- flight (each old entry is re-replicated on its own, ahead of the new leader's no-op).
-- opts: duration_ms (3000), crash (probability a cut is a crash, 0.05). Returns how
-- many leaders were cut off.
function M.old_terms(c, rng, opts)
    opts = opts or {}
    local ids = c:ids()
    local majority = math.floor(#ids / 2) + 1
    local stop = c:now() + (opts.duration_ms or 3000)
    local crash = opts.crash or 0.05
    local isolated, seen, k, cuts = nil, {}, 0, 0
    local function status(id) return c:node(id):status() end
    local function holders(i)
        local m = 0
        for _, id in ipairs(ids) do
            if c:alive(id) and status(id).last_index >= i then m = m + 1 end
        end
        return m
    end
    local function cut(leader)
        cuts = cuts + 1
        if rng:chance(crash) then
            c:crash(leader)
            return
        end
        local t = status(leader).term
        local group = { leader }
        for _, id in ipairs(ids) do
            if id ~= leader and c:alive(id) and status(id).last_term == t then
                group[#group + 1] = id
            end
        end
        if #group >= majority then group = { leader } end
        c:partition(group, {})
        isolated = leader
    end
    -- The leader of the highest term outside the cut-off minority.
    local function current()
        local best, best_term
        for _, id in ipairs(ids) do
            if id ~= isolated and c:alive(id) then
                local st = status(id)
                if st.role == "leader" and (not best_term or st.term > best_term) then
                    best, best_term = id, st.term
                end
            end
        end
        return best
    end
    while c:now() < stop do
        local leader = current()
        if not leader then
            c:run_until(function() return current() ~= nil end, rng:int(1, 50))
        else
            local term = status(leader).term
            local fresh = not seen[term]
            seen[term] = true
            if fresh and rng:chance(0.25) then
                cut(leader)
            else
                k = k + 1
                local i = c:node(leader):propose(format("o%d", k))
                local r = rng:float()
                if i and r < 0.35 then
                    c:run_until(function() return not c:alive(leader) or holders(i) >= 2 end, 50)
                    if c:alive(leader) and holders(i) < majority then cut(leader) end
                elseif r < 0.7 then
                    local ci = status(leader).commit_index
                    c:run_until(function()
                        return not c:alive(leader) or status(leader).commit_index > ci
                    end, 50)
                    if c:alive(leader) then cut(leader) end
                elseif r < 0.85 then
                    c:run_for(rng:int(0, 20))
                    if c:alive(leader) then cut(leader) end
                else
                    c:run_for(rng:int(0, 30))
                end
            end
        end
        local down = {}
        for _, id in ipairs(ids) do
            if not c:alive(id) then down[#down + 1] = id end
        end
        if #down > 0 and (#ids - #down < majority or rng:chance(0.2)) then
            c:restart(rng:pick(down))
        end
    end
    return cuts
end

--- Churn, as 6.824's churn tests: three clients keep applying commands through whoever
-- leads while nodes crash, restart, disconnect and reconnect. Returns the acknowledged
-- commands as index -> command (what every node must hold at the end).
function M.churn(c, rng, opts)
    opts = opts or {}
    local ids = c:ids()
    if opts.unreliable then
        c:set_network({ drop = 0.1, duplicate = 0.02, delay_ms = { 1, 60 }, reorder = true })
    end
    local acked, pending, seq = {}, {}, 0
    local stop = c:now() + (opts.duration_ms or 4000)
    local function clients()
        for client = 1, 3 do
            local p = pending[client]
            -- A request whose leader crashed may never answer: give up on it after a while
            -- (a late success still counts).
            if not p or c:now() - p > 1500 then
                local id = c:leader()
                if id then
                    seq = seq + 1
                    local cmd = format("c%d-%d", client, seq)
                    pending[client] = c:now()
                    c:node(id):apply(cmd, 1000, function(index)
                        if index then acked[index] = cmd end
                        pending[client] = nil
                    end)
                end
            end
        end
    end
    -- At most a minority out (crashed or cut off) at once, so that commits keep flowing
    -- while leaders and followers churn.
    local minority = math.floor((#ids - 1) / 2)
    local function out()
        return #ids_where(c, function(id) return not c:alive(id) or not c:connected(id) end)
    end
    while c:now() < stop do
        local r = rng:float()
        if r < 0.2 then
            local victim = rng:chance(0.5) and c:leader() or rng:pick(ids)
            if victim and out() < minority then c:disconnect(victim) end
        elseif r < 0.45 then
            c:connect(rng:pick(ids))
        elseif r < 0.6 then
            local up = alive(c)
            -- Half the crashes hit the leader, so leadership churns too.
            local victim = rng:chance(0.5) and c:leader() or (#up > 0 and rng:pick(up))
            if victim and out() < minority then c:crash(victim) end
        elseif r < 0.85 then
            local down = crashed(c)
            if #down > 0 then c:restart(rng:pick(down)) end
        end
        -- A few steps of client traffic per fault, ~0.7 election timeouts in all.
        for _ = 1, 5 do
            clients()
            c:run_for(rng:int(10, 30))
        end
    end
    return acked
end

return M
