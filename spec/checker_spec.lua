-- checker_spec.lua: the invariant checker can fail. A core broken on purpose (test-only
-- switches of hr_config) must be caught under a Figure 8 style schedule, and the very same
-- schedules with the switch off must raise nothing.
--
--   unsafe_commit_old_terms: a leader counts replicas of earlier-term entries towards
--     commit (the rule Figure 8 of the Raft paper shows to be wrong, §5.4.2);
--   unsafe_skip_log_check: votes are granted without the §5.4.1 up-to-date check.
--
-- And a simulated disk broken on purpose (the cluster option unsafe_install_keeps_log):
-- installing a snapshot keeps the log after its index, which followed another entry there.
-- No append ever shows that tail; the checker must see it across the snapshot boundary
-- when the node restarts from that disk.

local cl = require("spec.helpers.cluster")
local prng = require("spec.helpers.prng")
local schedule = require("spec.helpers.schedule")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local K = tonumber(os.getenv("HELIOS_CHECKER_SEEDS") or "") or 30
-- The random Figure 8 search (schedule.old_terms): fewer seeds, each a few thousand
-- virtual milliseconds; fewer still when HELIOS_SEEDS scales the random specs down (ASan).
local K8 = tonumber(os.getenv("HELIOS_F8_SEEDS") or "") or (os.getenv("HELIOS_SEEDS") and 8 or 16)
local ONE = tonumber(os.getenv("HELIOS_SEED") or "") -- replay one seed
local FILE = "spec/checker_spec.lua"

-- Bare Raft, one entry per AppendEntries and one in flight: the leader's no-op trails the
-- old-term entry it re-replicates, which is the window Figure 8 is about.
local BARE = { prevote = false, check_quorum = false, max_entries_per_append = 1,
               max_inflight = 1 }
local QUIET = { drop = 0, duplicate = 0, delay_ms = { 3, 6 }, reorder = false }

local function config(switch, on)
    local c = {}
    for k, v in each(BARE) do c[k] = v end
    c[switch] = on
    return c
end

local function others(c, skip)
    local out = {}
    for _, id in ipairs(c:ids()) do
        if not skip[id] then out[#out + 1] = id end
    end
    return out
end

-- Figure 8, scripted on 5 nodes. x leads term T and, cut off with y, appends "old" at k to
-- both. The other three elect z, which is isolated the moment it leads, holding only its
-- no-op at k (term T' > T). x or y then leads again with w1 and re-replicates "old" to w1;
-- the moment that leader's commit index reaches k (with the broken rule: before its own
-- no-op is on a majority) z, w1 and w2 are put together: z's log is more up to date than
-- theirs, it wins, and index k is overwritten.
local function figure8_script(c)
    cl.wait_leader(c)
    local base = cl.commit(c, "init")
    if not cl.wait_applied(c, base, 2000) then return "init" end
    local x = cl.wait_leader(c)
    local rest = others(c, { [x] = true })
    local y, m = rest[1], { rest[2], rest[3], rest[4] }

    c:partition({ x, y }, m)
    local k = c:node(x):propose("old")
    if not k then return "x lost its leadership" end
    if not c:run_until(function() return c:node(y):status().last_index >= k end, 1000) then
        return "y"
    end
    local z
    if not c:run_until(function() z = cl.leader_among(c, m); return z ~= nil end, 3000) then
        return "z"
    end
    local w = others(c, { [x] = true, [y] = true, [z] = true })
    c:partition({ x, y }, { z }, { w[1], w[2] })
    if c:node(z):status().last_index < k or c:node(w[1]):status().last_index >= k
       or c:node(w[2]):status().last_index >= k then
        return "z's no-op escaped"
    end

    c:partition({ x, y, w[1] }, { z }, { w[2] })
    local l2
    if not c:run_until(function() l2 = cl.leader_among(c, { x, y })
                          return l2 ~= nil and c:node(w[1]):status().term
                                               <= c:node(l2):status().term end, 3000) then
        return "l2"
    end
    if not c:run_until(function() return c:node(l2):status().commit_index >= k end, 3000) then
        return "commit"
    end
    c:partition({ x, y }, { z, w[1], w[2] })
    c:run_for(3000)
    cl.settle(c, "final")
    return "done"
end

-- A follower misses commits while cut off; then the leader is cut off and the stale
-- follower comes back: with votes granted blindly it can win and lose committed entries.
local function stale_vote_script(c, rng)
    for round = 1, 5 do
        local leader = cl.wait_leader(c, 5000)
        local followers = others(c, { [leader] = true })
        local stale = rng:pick(followers)
        c:disconnect(stale)
        for i = 1, 3 do cl.commit(c, ("r%d-%d"):format(round, i)) end
        c:run_for(rng:int(0, 400))
        c:disconnect(leader)
        c:connect(stale)
        c:run_for(1000)
        c:heal()
        c:run_for(rng:int(0, 200))
    end
    cl.settle(c, "final")
    return "done"
end

local function is_violation(err)
    err = tostring(err):lower()
    return err:find("replay: helios_seed=", 1, true) ~= nil
        and (err:find("leader completeness", 1, true) or err:find("state machine safety", 1, true)
             or err:find("log matching", 1, true) or err:find("election safety", 1, true))
end

-- Run attempt(seed) for seeds 1..k (K); returns the seeds whose run raised a violation,
-- the seeds that raised anything else, and how many ran.
local function search(switch, on, attempt, stop_at_first, k)
    local caught, other, ran = {}, {}, 0
    -- A replay (HELIOS_SEED) narrows the switch-off runs; the search for a catch always
    -- covers its k seeds.
    local first, last = 1, k or K
    if ONE and not on then first, last = ONE, ONE end
    for seed = first, last do
        ran = ran + 1
        local ok, err = pcall(attempt, seed, config(switch, on))
        if not ok then
            if is_violation(err) then
                caught[#caught + 1] = seed
                if stop_at_first then break end
            else
                other[#other + 1] = ("seed %d: %s\n    %s"):format(seed,
                    tostring(err):sub(1, 400), cl.replay(seed, FILE))
            end
        end
    end
    return caught, other, ran
end

local function figure8_attempt(seed, conf)
    local c = cl.new{ n = 5, seed = seed, config = conf, network = QUIET,
                      disk_latency_ms = { 1, 2 } }
    figure8_script(c)
    -- And the random Figure 8 schedule on the same cluster.
    schedule.figure8(c, prng.new(seed), { iterations = 100 })
    cl.settle(c, "final 2")
end

local function stale_vote_attempt(seed, conf)
    local c = cl.new{ n = 3, seed = seed, config = conf, network = QUIET,
                      disk_latency_ms = { 1, 2 } }
    stale_vote_script(c, prng.new(seed))
    schedule.figure8(c, prng.new(seed), { iterations = 100 })
    cl.settle(c, "final 2")
end

describe("the invariant checker", function()
    for _, case in ipairs({
        { switch = "unsafe_commit_old_terms", attempt = figure8_attempt },
        { switch = "unsafe_skip_log_check", attempt = stale_vote_attempt },
    }) do
        it("catches a core with " .. case.switch .. " within " .. K .. " seeds", function()
            local caught, other = search(case.switch, true, case.attempt, true)
            assert(#caught > 0, ("no violation in %d seeds; other errors:\n  %s")
                   :format(K, table.concat(other, "\n  ")))
        end)

        it("raises nothing on the same schedules with " .. case.switch .. " off", function()
            local caught, other, ran = search(case.switch, false, case.attempt, false)
            assert.are.equal(ONE and 1 or K, ran)
            assert(#caught == 0 and #other == 0, ("seeds %s violated (replay: HELIOS_SEED=N "
                   .. "busted --lua=luajit %s); errors:\n  %s")
                   :format(table.concat(caught, ","), FILE, table.concat(other, "\n  ")))
        end)
    end
end)

-- 5 nodes. x leads and, cut off with f, appends five entries that reach f only. The other
-- three elect b, which commits two entries (so its snapshot index S falls inside f's
-- stale tail) and compacts everything up to S. f rejoins, gets the snapshot (its entry at
-- S has another term: the whole log must go) and restarts as soon as the install is
-- durable, before b overwrites anything.
local function boundary_script(c)
    cl.wait_leader(c)
    local base = cl.commit(c, "init")
    if not cl.wait_applied(c, base, 2000) then return "init" end
    local x = cl.wait_leader(c)
    local rest = others(c, { [x] = true })
    local f, maj = rest[1], { rest[2], rest[3], rest[4] }
    c:partition({ x, f }, maj)
    local last = c:node(x):status().last_index
    for k = 1, 5 do
        if not c:node(x):propose("stale" .. k) then return "x lost its leadership" end
    end
    if not c:run_until(function() return c:node(f):status().last_index >= last + 5 end, 1000) then
        return "f"
    end
    local b = cl.wait_leader(c, 3000, maj)
    local s
    for k = 1, 2 do s = cl.commit(c, "new" .. k) end
    if s >= last + 5 or not cl.wait_applied(c, s, 2000, { b }) then return "b" end
    c:node(b):snapshot()
    if not c:run_until(function() return c:node(b):status().first_index == s + 1 end, 500) then
        return "compaction"
    end
    c:partition({ x }, others(c, { [x] = true }))
    if not c:run_until(function() return c:snapshot_info(f) == s end, 2000) then
        return "install"
    end
    c:crash(f)
    c:restart(f)
    c:run_for(100)
    cl.settle(c, "final")
    return "done"
end

-- Figure 8 found by a random search rather than a script: schedule.old_terms on 5 nodes with
-- short terms (40 ms election timeouts), bare Raft with one entry per AppendEntries and one
-- in flight, a quick network that reorders. Random fault schedules (schedule.random,
-- schedule.figure8) pass 60 seeds of a core with unsafe_commit_old_terms; this one catches
-- it in about one seed in four.
local function old_terms_attempt(seed, conf)
    conf.election_timeout_ms, conf.heartbeat_timeout_ms = 40, 10
    local c = cl.new{ n = 5, seed = seed, config = conf,
                      network = { drop = 0, duplicate = 0, delay_ms = { 1, 3 }, reorder = true },
                      disk_latency_ms = { 1, 2 } }
    local cuts = schedule.old_terms(c, prng.new(seed), { duration_ms = 3000 })
    assert(cuts >= 20, ("seed %d: only %d leaders cut off"):format(seed, cuts))
    cl.settle(c, "final", 20000)
end

describe("a random Figure 8 search", function()
    it("catches a core with unsafe_commit_old_terms within " .. K8 .. " seeds", function()
        local caught, other = search("unsafe_commit_old_terms", true, old_terms_attempt, true, K8)
        assert(#caught > 0, ("no violation in %d seeds; other errors:\n  %s")
               :format(K8, table.concat(other, "\n  ")))
    end)

    it("raises nothing on the same schedules with unsafe_commit_old_terms off", function()
        local caught, other, ran = search("unsafe_commit_old_terms", false, old_terms_attempt,
                                          false, K8)
        assert.are.equal(ONE and 1 or K8, ran)
        assert(#caught == 0 and #other == 0, ("seeds %s violated (replay: HELIOS_SEED=N "
               .. "busted --lua=luajit %s); errors:\n  %s")
               :format(table.concat(caught, ","), FILE, table.concat(other, "\n  ")))
    end)
end)

describe("the invariant checker across a snapshot boundary", function()
    local function attempt(seed, broken)
        local c = cl.new{ n = 5, seed = seed, network = QUIET, disk_latency_ms = { 1, 2 },
                          snapshot_latency_ms = { 1, 2 }, config = { trailing_logs = 0 },
                          unsafe_install_keeps_log = broken,
                          storage = "model" } -- the broken disk is the model's
        return boundary_script(c)
    end

    it("catches a log restored with a tail that does not follow its snapshot", function()
        local first, last = ONE or 1, ONE or K
        local caught, other = {}, {}
        for seed = first, last do
            local ok, err = pcall(attempt, seed, true)
            if ok then
                other[#other + 1] = ("seed %d: no violation (%s)"):format(seed, tostring(err))
            elseif is_violation(err) then
                caught[#caught + 1] = seed
            else
                other[#other + 1] = ("seed %d: %s\n    %s"):format(seed,
                    tostring(err):sub(1, 400), cl.replay(seed, FILE))
            end
        end
        -- The script drives every seed into the broken state: each must be caught.
        assert(#other == 0, ("%d of %d seeds not caught:\n  %s"):format(#other,
               last - first + 1, table.concat(other, "\n  ", 1, math.min(#other, 5))))
    end)

    it("raises nothing on the same script with a correct disk", function()
        local first, last = ONE or 1, ONE or K
        for seed = first, last do
            local ok, res = pcall(attempt, seed, false)
            assert(ok and res == "done", ("seed %d: %s\n    %s"):format(seed, tostring(res),
                   cl.replay(seed, FILE)))
        end
    end)
end)
