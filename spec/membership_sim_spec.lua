-- membership_sim_spec.lua: membership changes in the simulator (csrc/core/membership.c):
-- c:spawn, node:add_peer and node:remove_peer under load, crashes, partitions and message
-- loss, with the invariant checker (csrc/sim/check.c) watching every step, including its
-- membership rules: no two leaders of a term across configuration changes, a leader holds
-- the votes of a majority of the voters of its configuration (a learner's vote never
-- counts), only voters campaign, a node that knows it was removed stays a follower, a
-- removed leader steps down once its removal commits, consecutive configurations differ by
-- one voter, and a leader starts a change only after an entry of its term and the previous
-- configuration committed. A removed node must learn that it is out (status role
-- "removed"; the leader's "leaving slots", csrc/core/membership.c) and then never
-- campaign; a joining node must never show as removed. The nodes run the production
-- storage, so configurations survive crashes through the log and snapshots.
--
--   HELIOS_SEED=17 busted --lua=luajit spec/membership_sim_spec.lua   -- replay one seed
--   HELIOS_SEEDS=1000 ...     -- more seeds (12 grow-and-shrink, 300 random by default)

local cl = require("spec.helpers.cluster")
local fsm = require("spec.helpers.fsm")
local prng = require("spec.helpers.prng")
local schedule = require("spec.helpers.schedule")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local SEEDS = tonumber(os.getenv("HELIOS_SEEDS") or "") or 12
local RANDOM_SEEDS = tonumber(os.getenv("HELIOS_SEEDS") or "") or 300
local ONE = tonumber(os.getenv("HELIOS_SEED") or "")

local function contains(list, x)
    for _, v in ipairs(list) do
        if v == x then return true end
    end
    return false
end

-- Whether the current leader's configuration is committed and has id as `want` ("voter",
-- "learner" or "absent").
local function satisfied(c, id, want)
    local leader = c:leader()
    local conf = leader and c:configuration(leader)
    if not conf or not conf.committed then
        return false
    end
    if want == "voter" then return contains(conf.voters, id) end
    if want == "learner" then return contains(conf.learners, id) end
    return not contains(conf.voters, id) and not contains(conf.learners, id)
end

-- Load and faults while virtual time runs: a proposal on the leader every few ms and, with
-- `crashes`, a crash of one node at a time, restarted a little later. tick() is called
-- every virtual millisecond (from run_until predicates).
-- With `partitions`, now and then a random minority of the nodes is cut off from the rest
-- for a while, then healed.
local function background(c, rng, opts)
    local bg = { n = 0, next_crash = c:now() + rng:int(200, 500), down = nil, up_at = 0,
                 next_cut = c:now() + rng:int(300, 800), heal_at = nil, crashed_at = {} }
    function bg.tick()
        if c:now() % 2 == 0 then
            local leader = c:leader()
            if leader then
                bg.n = bg.n + 1
                c:node(leader):propose(("set k%d v%d"):format(bg.n % 17, bg.n))
            end
        end
        if opts.partitions then
            if bg.heal_at and c:now() >= bg.heal_at then
                c:heal()
                bg.heal_at = nil
                bg.next_cut = c:now() + rng:int(300, 900)
            elseif not bg.heal_at and c:now() >= bg.next_cut then
                local ids = c:ids()
                local cut = rng:sample(ids, rng:int(1, math.floor((#ids - 1) / 2)))
                local rest = {}
                for _, id in ipairs(ids) do
                    if not contains(cut, id) then rest[#rest + 1] = id end
                end
                c:partition(cut, rest)
                bg.heal_at = c:now() + rng:int(100, 400)
            end
        end
        if not opts.crashes then
            return
        end
        if bg.down and c:now() >= bg.up_at then
            c:restart(bg.down)
            bg.down = nil
            bg.next_crash = c:now() + rng:int(200, 600)
        elseif not bg.down and c:now() >= bg.next_crash then
            local alive = {}
            for _, id in ipairs(c:ids()) do
                if c:alive(id) then alive[#alive + 1] = id end
            end
            bg.down = rng:pick(alive)
            c:crash(bg.down)
            bg.crashed_at[bg.down] = c:now()
            bg.up_at = c:now() + rng:int(50, 300)
        end
    end
    function bg.stop()
        if bg.down then
            c:restart(bg.down)
            bg.down = nil
        end
        if bg.heal_at then
            c:heal()
            bg.heal_at = nil
        end
    end
    return bg
end

-- Ask the leader of the moment for the change until its configuration has it committed,
-- retrying on busy, not_leader and timeout (a lost answer: the change may have committed).
local function change(c, bg, what, id, opts, timeout_ms)
    local want = what == "remove" and "absent" or
                 ((opts and opts.voter == false) and "learner" or "voter")
    local deadline = c:now() + (timeout_ms or 30000)
    local res
    local tick = bg.tick
    if what == "add" then
        -- A joining node never shows as "removed", not even while it holds a snapshot older
        -- than the entry that adds it (whose configuration leaves it out).
        tick = function()
            bg.tick()
            assert(not c:alive(id) or c:node(id):status().role ~= "removed",
                   id .. " shows as removed while it joins\n  " .. cl.dump(c))
        end
    end
    while not satisfied(c, id, want) do
        assert(c:now() < deadline, ("%s %s did not complete\n  %s"):format(what, id, cl.dump(c)))
        local leader = c:leader()
        if leader then
            res = nil
            local cb = function(...) res = { ... } end
            if what == "add" then
                c:node(leader):add_peer(id, id:sub(2), opts or {}, cb)
            else
                c:node(leader):remove_peer(id, cb)
            end
            c:run_until(function() tick(); return res ~= nil end, 6000)
        end
        c:run_until(function() tick(); return satisfied(c, id, want) end, 50)
    end
end

-- Heal, restart what is down, and require that the members commit a final command and
-- agree on the FSM state. Nodes outside the configuration (removed) are not asked to.
local function settle(c, reg, members)
    c:heal()
    c:set_network(cl.reliable)
    for _, id in ipairs(c:ids()) do
        if not c:alive(id) then c:restart(id) end
    end
    cl.wait_leader(c, 10000, members)
    local index = cl.commit(c, "final", 10000)
    assert(cl.wait_applied(c, index, 10000, members), "final command not applied\n  " .. cl.dump(c))
    local want
    for _, id in ipairs(members) do
        local got = reg.current[id]:snapshot()
        want = want or got
        assert(got == want, "FSM state of " .. id .. " differs\n  " .. cl.dump(c))
    end
    c:check()
end

-- Wait until node id knows it is out of the cluster (status role "removed").
local function learns_removed(c, id, timeout_ms, tick)
    local ok = c:run_until(function()
        if tick then tick() end
        return c:alive(id) and c:node(id):status().role == "removed"
    end, timeout_ms or 10000)
    if not ok and os.getenv("MDEBUG") then
        for _, x in ipairs(c:ids()) do
            local conf = c:alive(x) and c:configuration(x)
            if conf then
                print(x, conf.index, conf.committed, table.concat(conf.voters, ","),
                      table.concat(conf.learners, ","), conf.voter)
                local st = c:stats(x)
                print("  prevotes", st.msgs_sent_by_type.prevote, "votes", st.msgs_sent_by_type.vote)
            end
        end
    end
    assert(ok, id .. " never learnt it was removed\n  " .. cl.dump(c))
end

-- Wait until node id is out for good: it knows it was removed or, if `unsure` (it crashed
-- since its removal: restarted from a snapshot taken after it, it cannot tell that it was
-- ever a member, csrc/core/membership.c, hr_raft_removed), it is a follower and no voter
-- of its configuration (stays_quiet then checks that it never campaigns).
local function settles_out(c, id, unsure, timeout_ms)
    local function asks()
        local by = c:stats(id).msgs_sent_by_type
        return by.prevote + by.vote
    end
    local deadline = c:now() + (timeout_ms or 10000)
    local ok = false
    while not ok and c:now() < deadline do
        local before = asks()
        ok = c:run_until(function() return c:node(id):status().role == "removed" end, 1000)
        -- (Unsure: a node whose removal it does not know committed may campaign, counting
        -- on the votes of its configuration, csrc/core/membership.c; its vote request
        -- reaching the leader makes the leader tell it. Wait for that, or for quiet.)
        ok = ok or (unsure and asks() == before and c:node(id):status().role == "follower"
                    and not c:configuration(id).voter)
    end
    if not ok and os.getenv("MDEBUG") then
        local conf = c:configuration(id)
        print(id, "conf", conf.index, conf.committed, table.concat(conf.voters, ","),
              table.concat(conf.learners, ","), "unsure", unsure)
        local st = c:stats(id)
        print("  prevotes", st.msgs_sent_by_type.prevote, "votes", st.msgs_sent_by_type.vote)
    end
    assert(ok, id .. " is not out for good\n  " .. cl.dump(c))
end

-- A removed node that knows it (or is out for good, see settles_out) stops campaigning:
-- over ms, it sends no (pre-)vote request and its term stays.
local function stays_quiet(c, id, ms, tick, unsure)
    local function asks()
        local by = c:stats(id).msgs_sent_by_type
        return by.prevote + by.vote
    end
    local role = c:node(id):status().role
    local term, before = c:node(id):status().term, asks()
    c:run_until(function() if tick then tick() end; return false end, ms)
    assert.equal(before, asks(), id .. " campaigned after it was out for good")
    assert.equal(term, c:node(id):status().term)
    assert.equal(role, c:node(id):status().role)
    assert(role == "removed" or (unsure and role == "follower"), role)
end

local LOSSY = { drop = 0.05, duplicate = 0.02, delay_ms = { 1, 15 }, reorder = true }

local function new(seed, extra)
    local opts = { n = 3, seed = seed, network = LOSSY,
                   config = { snapshot_threshold = 40, trailing_logs = 10,
                              snapshot_interval_ms = 50 },
                   snapshot_chunk_bytes = 64, make = function(id) return fsm.store(id, 8) end }
    for k, v in each(extra or {}) do opts[k] = v end
    return cl.new(opts)
end

describe("membership changes in the simulator", function()
    it("grow 3 -> 5 -> 7 and shrink 7 -> 3 under load, crashes, partitions and message loss",
       function()
        local first, last = 1, SEEDS
        if ONE then first, last = ONE, ONE end
        cl.sweep(first, last, "grow and shrink", function(seed)
            local c, reg = new(seed)
            local bg = background(c, prng.new(seed), { crashes = true, partitions = true })
            cl.wait_leader(c, 5000)
            local function load(ms)
                c:run_until(function() bg.tick(); return false end, ms)
            end
            load(300)
            for k = 4, 7 do
                local id = "n" .. k
                c:spawn(id)
                change(c, bg, "add", id)
                load(300)
            end
            -- (With the faults going on: a partition and a crash may leave no quorum.)
            assert(c:run_until(function() bg.tick(); return c:leader() ~= nil end, 10000),
                   "no leader\n  " .. cl.dump(c))
            local conf = c:configuration(c:leader())
            assert.same({ "n1", "n2", "n3", "n4", "n5", "n6", "n7" }, conf.voters)
            -- Shrink: away with the first four, whoever leads.
            local removed_at = {}
            for k = 1, 4 do
                removed_at["n" .. k] = c:now()
                change(c, bg, "remove", "n" .. k)
                load(300)
            end
            local members = { "n5", "n6", "n7" }
            local gone = { "n1", "n2", "n3", "n4" }
            bg.stop()
            conf = c:configuration(cl.wait_leader(c, 5000, members))
            assert.same(members, conf.voters)
            assert.same({}, conf.learners)
            assert(bg.n > 200, "the load did not run: " .. bg.n .. " proposals")
            settle(c, reg, members)
            -- Every removed node learns that it is out (from the leader's leaving slot, or,
            -- if that expired while it was down or cut off, once its vote request reaches
            -- a leader), and from then on it never campaigns.
            local unsure = {}
            for _, id in ipairs(gone) do
                unsure[id] = (bg.crashed_at[id] or -1) >= removed_at[id]
                settles_out(c, id, unsure[id])
            end
            for _, id in ipairs(gone) do
                stays_quiet(c, id, 1000, nil, unsure[id])
            end
            -- Configurations survive a restart of every member (log and snapshot).
            for _, id in ipairs(members) do
                c:crash(id)
                c:restart(id)
                -- (A crash may lose a batch that was not durable yet, a config entry
                -- included: the node then catches up again.)
                assert(c:run_until(function()
                    local conf = c:configuration(id)
                    return table.concat(conf.voters, ",") == "n5,n6,n7"
                end, 5000), id .. " restarted without its configuration\n  " .. cl.dump(c))
            end
            settle(c, reg, members)
            -- A removed node restarted stays out: it knows it still if a configuration
            -- with itself is left in its log (else, restarted from a snapshot taken after
            -- its removal, it cannot tell and shows as a follower), and never campaigns.
            -- (A crash may also lose its removal entry, if not yet durable: it then
            -- campaigns, and its first vote request that reaches the leader makes the
            -- leader tell it again.)
            c:crash("n1")
            c:restart("n1")
            settles_out(c, "n1", true)
            stays_quiet(c, "n1", 2000, nil, true)
        end)
    end)

    it("random membership changes mixed into random fault schedules", function()
        local first, last = 1, RANDOM_SEEDS
        if ONE then first, last = ONE, ONE end
        local changes = 0
        cl.sweep(first, last, "random changes", function(seed)
            local rng = prng.new(seed)
            local c, reg = new(seed, { network = cl.reliable })
            -- Every node exists from the start (partitions take them all); n4 to n6 begin
            -- outside the configuration.
            c:spawn("n4")
            c:spawn("n5")
            c:spawn("n6")
            for _ = 1, 8 do
                schedule.random(c, rng, { duration_ms = 400 })
                local leader = c:leader()
                if leader then
                    local conf = c:configuration(leader)
                    local id = rng:pick(c:ids())
                    local cb = function(ok) if ok then changes = changes + 1 end end
                    if contains(conf.voters, id) or contains(conf.learners, id) then
                        c:node(leader):remove_peer(id, cb)
                    else
                        c:node(leader):add_peer(id, id:sub(2), { voter = rng:chance(0.7) }, cb)
                    end
                end
            end
            -- Heal; the members are those of the configuration the new leader commits.
            c:heal()
            c:set_network(cl.reliable)
            c:set_storage_crash(0)
            for _, id in ipairs(c:ids()) do
                if not c:alive(id) then c:restart(id) end
            end
            local leader = cl.wait_leader(c, 10000)
            cl.commit(c, "members")
            leader = cl.wait_leader(c, 10000)
            local conf = c:configuration(leader)
            local members = {}
            for _, id in ipairs(conf.voters) do members[#members + 1] = id end
            for _, id in ipairs(conf.learners) do members[#members + 1] = id end
            settle(c, reg, members)
        end)
        if os.getenv("MDEBUG") then print("changes", changes) end
        assert(changes > RANDOM_SEEDS / 2, "few changes completed: " .. changes)
    end)

    it("removes the leader: it steps down and never campaigns again", function()
        cl.with_seed(cl.seed(3), function(seed)
            local c, reg = new(seed, { network = cl.reliable })
            local bg = background(c, prng.new(seed), {})
            local old = cl.wait_leader(c, 5000)
            cl.commit(c, "before")
            change(c, bg, "remove", old)
            local term = c:node(old):status().term
            cl.wait_leader(c, 5000)
            assert.are_not.equal(old, c:leader())
            c:run_until(function() bg.tick(); return false end, 3000)
            local st = c:node(old):status()
            -- It knows it is out: its removal committed before it stepped down.
            assert.equal("removed", st.role)
            assert.equal(term, st.term) -- it never started an election
            assert.is_false(c:configuration(old).voter)
            local members = {}
            for _, id in ipairs(c:ids()) do
                if id ~= old then members[#members + 1] = id end
            end
            settle(c, reg, members)
        end)
    end)

    it("a removed node cut off from the others never raises their term, and learns it is out once back",
       function()
        cl.with_seed(cl.seed(5), function(seed)
            local c, reg = new(seed, { network = cl.reliable })
            local bg = background(c, prng.new(seed), {})
            local leader = cl.wait_leader(c, 5000)
            local victim
            for _, id in ipairs(c:ids()) do
                if id ~= leader then victim = id end
            end
            -- Cut off before its removal: it never learns of it and keeps its old
            -- configuration, in which it is a voter.
            c:disconnect(victim)
            change(c, bg, "remove", victim)
            assert.is_true(c:configuration(victim).voter)
            local members = {}
            for _, id in ipairs(c:ids()) do
                if id ~= victim then members[#members + 1] = id end
            end
            local terms = {}
            for _, id in ipairs(members) do terms[id] = c:node(id):status().term end
            -- Long enough for the leader to give up telling it (its leaving slot expires).
            c:run_until(function() bg.tick(); return false end, 2000)
            assert.are_not.equal("removed", c:node(victim):status().role)
            -- Back on the network: its (pre-)votes must not disturb the others, and the
            -- first one that reaches the leader makes the leader tell it that it is out.
            c:connect(victim)
            learns_removed(c, victim, 5000, bg.tick)
            c:run_until(function() bg.tick(); return false end, 3000)
            for _, id in ipairs(members) do
                assert.equal(terms[id], c:node(id):status().term, id .. "'s term moved\n  "
                             .. cl.dump(c))
            end
            assert.equal(leader, c:leader())
            -- It knows, and never campaigns again.
            stays_quiet(c, victim, 2000, bg.tick)
            settle(c, reg, members)
        end)
    end)

    it("a node far behind catches up through InstallSnapshot and only then votes", function()
        cl.with_seed(cl.seed(7), function(seed)
            local c, reg = new(seed, { network = cl.reliable })
            cl.wait_leader(c, 5000)
            for i = 1, 300 do
                cl.commit(c, "set a" .. (i % 11) .. " " .. i)
            end
            local leader = c:leader()
            assert(c:node(leader):status().first_index > 1, "the leader's log was not compacted")
            c:spawn("n4")
            -- Watch the leader's view every millisecond: n4 may become a voter only once
            -- its match is within the leader's catch-up window of the leader's last index.
            local promoted_at
            local bg = background(c, prng.new(seed), {})
            local tick = bg.tick
            bg.tick = function()
                tick()
                -- Never "removed" while it joins, not even holding a snapshot older than
                -- the entry that adds it (whose configuration leaves it out).
                local role = c:node("n4"):status().role
                assert(role ~= "removed", "n4 shows as removed while joining\n  " .. cl.dump(c))
                local l = c:leader()
                local conf = l and c:configuration(l)
                if not promoted_at and conf and contains(conf.voters, "n4") then
                    local st = c:node(l):status()
                promoted_at = { match = st.peers.n4.match, last = st.last_index }
                end
            end
            local installed = c:snapshot_stats().installed
            change(c, bg, "add", "n4")
            assert(c:snapshot_stats().installed > installed, "n4 was not sent a snapshot")
            assert(promoted_at, "never saw n4 promoted")
            -- Default window: max_inflight (8) * max_entries_per_append (100) entries.
            assert(promoted_at.match > 0 and promoted_at.last - promoted_at.match <= 800,
                   ("promoted at match %d with the leader at %d"):format(promoted_at.match,
                                                                       promoted_at.last))
            -- A voter now: with the leader down, the other three of the four voters are a
            -- bare majority, so no one is elected, nor anything committed, without n4.
            c:crash(c:leader())
            cl.wait_leader(c, 5000)
            local before = c:node("n4"):status().last_index
            local index = cl.commit(c, "with n4")
            assert(index > before)
            -- Restarting n4 brings its configuration back from its snapshot and log.
            c:crash("n4")
            c:restart("n4")
            assert.is_true(c:configuration("n4").voter)
            settle(c, reg, { "n1", "n2", "n3", "n4" })
        end)
    end)

    it("one change at a time: a second one is refused while the first is in progress",
       function()
        cl.with_seed(cl.seed(13), function(seed)
            local c, reg = new(seed, { network = cl.reliable })
            local leader = cl.wait_leader(c, 5000)
            cl.commit(c, "before")
            c:spawn("n4")
            c:spawn("n5")
            local first, second
            c:node(leader):add_peer("n4", "4", function(...) first = { ... } end)
            c:node(leader):add_peer("n5", "5", function(...) second = { ... } end)
            assert.same({ nil, "busy" }, { second[1], second[2] })
            assert(c:run_until(function() return first ~= nil end, 5000))
            assert.is_true(first[1])
            local bg = background(c, prng.new(seed), {})
            change(c, bg, "add", "n5")
            settle(c, reg, { "n1", "n2", "n3", "n4", "n5" })
        end)
    end)

    it("the checker catches a leader elected with a learner's vote", function()
        cl.with_seed(cl.seed(11), function(seed)
            local c = new(seed, { network = cl.reliable,
                                  config = { unsafe_count_learner_votes = true } })
            local bg = background(c, prng.new(seed), {})
            local leader = cl.wait_leader(c, 5000)
            c:spawn("n4")
            c:spawn("n5")
            change(c, bg, "add", "n4", { voter = false })
            change(c, bg, "add", "n5", { voter = false })
            local st = c:node(c:leader()):status()
            assert.is_false(st.peers.n4.voter)
            assert.is_true(st.peers[leader].voter)
            assert.same({ "n4", "n5" }, c:configuration(leader).learners)
            -- The other two voters go down: only the learners' votes can elect anyone.
            for _, id in ipairs({ "n1", "n2", "n3" }) do
                if id ~= leader then c:crash(id) end
            end
            local ok, err = pcall(c.run_for, c, 5000)
            assert.is_false(ok, "the checker did not catch it")
            assert.matches("membership: node %S+ leads term %d+ with the votes of 1 of the 3 voters",
                           tostring(err))
        end)
    end)
end)
