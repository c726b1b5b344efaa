-- read_sim_spec.lua: linearizable reads (ReadIndex, csrc/core/read.c) and leadership
-- transfer (csrc/core/transfer.c) in the simulator. The invariant checker (csrc/sim/check.c)
-- verifies every read served: its FSM must have applied every entry applied anywhere (and so
-- possibly acknowledged) before the read began; a core that answers reads without
-- confirming its leadership (config unsafe_read_no_confirm) is caught by it.
--
--   HELIOS_SEED=7 busted spec/read_sim_spec.lua   -- replay one seed

local sim = require("helios.sim")
local prng = require("spec.helpers.prng")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local SEED = tonumber(os.getenv("HELIOS_SEED") or "") or 11

-- An FSM holding the last command applied.
local function fsm()
    return { v = nil, apply = function(self, cmd) self.v = cmd; return cmd end }
end

local function get(f) return f.v end

local function cluster(config, seed)
    return sim.cluster{ n = 3, seed = seed or SEED, fsm = fsm, config = config }
end

local function await(c, start, timeout_ms)
    local res
    start(function(...) res = { n = select("#", ...), ... } end)
    local ok = c:run_until(function() return res ~= nil end, timeout_ms or 5000)
    assert(ok, "no answer within the time (seed " .. c:seed() .. ")")
    return unpack(res, 1, res.n)
end

local function elect(c)
    assert(c:run_until(function() return c:leader() ~= nil end, 5000))
    local index = c:apply("v1")
    assert(index, "apply failed")
    return c:leader()
end

-- Cut the leader off alone and let the others elect a new leader and commit "v2" there.
local function depose(c, old)
    local others = {}
    for _, id in ipairs(c:ids()) do
        if id ~= old then others[#others + 1] = id end
    end
    c:partition({ old }, others)
    assert(c:run_until(function()
        local l = c:leader()
        return l ~= nil and l ~= old
    end, 5000))
    assert(c:apply("v2"), "the majority could not commit")
    return others
end

-- Spawn n4 and add it as a learner (voter = false) through the leader; wait until it has
-- the last write applied.
local function add_learner(c, leader)
    c:spawn("n4")
    local ok, code = await(c, function(cb)
        c:node(leader):add_peer("n4", "4", { voter = false }, cb)
    end)
    assert(ok, "add_peer n4: " .. tostring(code) .. " (seed " .. c:seed() .. ")")
    assert.same({ "n4" }, c:configuration(leader).learners)
    local index = assert(c:apply("after n4"))
    assert(c:run_until(function()
        return c:node("n4"):status().applied_index >= index
    end, 5000), "n4 did not catch up (seed " .. c:seed() .. ")")
end

describe("sim reads", function()
    it("serves a read on the leader and a read on a follower with every acknowledged write", function()
        for seed = SEED, SEED + 9 do
            local c = cluster(nil, seed)
            local leader = elect(c)
            for k = 1, 5 do
                assert(c:apply("w" .. k))
                for _, id in ipairs(c:ids()) do
                    local v, code = await(c, function(cb) c:node(id):read(get, cb) end)
                    assert.are.equal("w" .. k, v, ("seed %d: %s read %s (%s)"):format(
                        seed, id, tostring(v), tostring(code)))
                end
            end
            -- Reads issued together on the leader share rounds and all see the last write.
            local got = 0
            for _ = 1, 10 do
                c:node(leader):read(get, function(v) assert.are.equal("w5", v); got = got + 1 end)
            end
            assert.is_true(c:run_until(function() return got == 10 end, 5000))
            c:close()
        end
    end)

    it("serves a read on a learner with every acknowledged write", function()
        for seed = SEED, SEED + 4 do
            local c = cluster(nil, seed)
            local leader = elect(c)
            add_learner(c, leader)
            for k = 1, 5 do
                assert(c:apply("l" .. k))
                -- The learner asks the leader for a read index and serves once it applied
                -- that far: it sees the write acknowledged just before, never older data.
                local v, code = await(c, function(cb) c:node("n4"):read(get, cb) end)
                assert.are.equal("l" .. k, v, ("seed %d: learner read %s (%s)"):format(
                    seed, tostring(v), tostring(code)))
            end
            -- Cut off from the leader, it fails the read (no old data), while read_stale
            -- answers from its local state at once.
            c:disconnect("n4")
            assert(c:apply("l6"))
            local v, code = await(c, function(cb) c:node("n4"):read(get, 300, cb) end)
            assert.is_nil(v)
            assert.is_truthy(code == "timeout" or code == "not_leader", tostring(code))
            assert.are.equal("l5", c:node("n4"):read_stale(get))
            c:close()
        end
    end)

    it("a leader cut off from the voters never counts learners' answers to confirm a read", function()
        -- Two learners stay with the old leader: with their answers counted it would have
        -- three of five servers and serve old data; only voters confirm leadership
        -- (csrc/core/read.c, check_round), so its read fails.
        for seed = SEED, SEED + 4 do
            local c = cluster({ check_quorum = false }, seed)
            local leader = elect(c)
            for _, id in ipairs({ "n4", "n5" }) do
                c:spawn(id)
                local ok, code = await(c, function(cb)
                    c:node(leader):add_peer(id, id, { voter = false }, cb)
                end)
                assert(ok, ("add_peer %s: %s (seed %d)"):format(id, tostring(code), seed))
            end
            local voters = {}
            for _, id in ipairs({ "n1", "n2", "n3" }) do
                if id ~= leader then voters[#voters + 1] = id end
            end
            c:partition({ leader, "n4", "n5" }, voters)
            assert(c:run_until(function()
                local l = c:leader()
                return l ~= nil and l ~= leader
            end, 5000), "the voters elected no leader (seed " .. seed .. ")")
            assert(c:apply("v2"), "the voters could not commit (seed " .. seed .. ")")
            local v, code = await(c, function(cb) c:node(leader):read(get, 1000, cb) end)
            assert.is_nil(v, ("seed %d: the cut-off leader read %s"):format(seed, tostring(v)))
            assert.is_truthy(code == "timeout" or code == "not_leader", tostring(code))
            assert.is_true(c:check())
            c:close()
        end
    end)

    it("a leader in a minority partition never serves old data from read; read_stale may", function()
        -- With CheckQuorum it steps down (not_leader); without, it still believes it leads
        -- and its read round never completes (timeout); with lease reads its lease runs out.
        local configs = { {}, { check_quorum = false }, { read_lease = true } }
        for seed = SEED, SEED + 11 do
            local c = cluster(configs[seed % 3 + 1], seed)
            local old = elect(c)
            depose(c, old)
            local v, code = await(c, function(cb) c:node(old):read(get, cb) end)
            assert.is_nil(v)
            assert.is_truthy(code == "timeout" or code == "not_leader", tostring(code))
            assert.are.equal("v1", c:node(old):read_stale(get))
            c:close()
        end
    end)

    it("the checker catches a core that answers reads without confirming its leadership", function()
        -- Without CheckQuorum the old leader goes on believing it leads, cut off.
        local c = cluster({ unsafe_read_no_confirm = true, check_quorum = false })
        local old = elect(c)
        depose(c, old)
        local ok, err = pcall(function()
            await(c, function(cb) c:node(old):read(get, cb) end)
        end)
        assert.is_false(ok)
        assert.matches("linearizable read", tostring(err))
    end)

    it("refuses read_lease without check_quorum", function()
        local ok, err = pcall(sim.cluster, { n = 3, config = { read_lease = true,
                                                                check_quorum = false } })
        assert.is_false(ok)
        assert.matches("read_lease needs check_quorum", tostring(err))
    end)

    it("fails reads on a node with no leader with not_leader", function()
        local c = cluster()
        local v, code = await(c, function(cb) c:node("n1"):read(get, cb) end)
        assert.is_nil(v)
        assert.are.equal("not_leader", code)
    end)
end)

describe("sim leadership transfer", function()
    it("hands over under load, and to a lagging node", function()
        for seed = SEED, SEED + 4 do
            local c = cluster(nil, seed)
            local leader = elect(c)
            local target
            for _, id in ipairs(c:ids()) do
                if id ~= leader then target = id end
            end
            -- The target lags: cut off while entries commit.
            c:disconnect(target)
            local pending = 0
            for k = 1, 20 do
                c:node(leader):apply("x" .. k, 5000, function() pending = pending - 1 end)
                pending = pending + 1
            end
            assert.is_true(c:run_until(function() return pending == 0 end, 5000))
            c:connect(target)
            -- Under load: proposals keep coming until the transfer starts.
            for k = 1, 5 do
                c:node(leader):apply("y" .. k, 5000, function() end)
            end
            local new = await(c, function(cb) c:node(leader):transfer_leadership(target, cb) end)
            assert.are.equal(target, new, "seed " .. seed)
            assert.are.equal(target, c:leader())
            -- The old leader refuses proposals: still transferring, or already deposed.
            local code = select(2, c:node(leader):propose("z"))
            assert.is_truthy(code == "busy" or code == "not_leader", tostring(code))
            assert.truthy(c:apply("after"))
            local v = await(c, function(cb) c:node(target):read(get, cb) end)
            assert.are.equal("after", v)
            c:close()
        end
    end)

    it("refuses proposals while transferring, and gives up after an election timeout", function()
        local c = cluster()
        local leader = elect(c)
        local target = leader == "n1" and "n2" or "n1"
        c:crash(target)
        local res
        c:node(leader):transfer_leadership(target, function(...) res = { ... } end)
        local _, code = c:node(leader):propose("p")
        assert.are.equal("busy", code)
        assert.is_true(c:run_until(function() return res ~= nil end, 5000))
        assert.is_nil(res[1])
        assert.are.equal("timeout", res[2])
        assert.are.equal(leader, c:leader())
        assert.truthy(c:node(leader):propose("p"))
    end)

    it("never hands leadership to a learner", function()
        for seed = SEED, SEED + 4 do
            local c = cluster(nil, seed)
            local leader = elect(c)
            add_learner(c, leader)
            -- Named: refused at once, and the leader goes on.
            local new, code = await(c, function(cb)
                c:node(leader):transfer_leadership("n4", cb)
            end)
            assert.is_nil(new)
            assert.are.equal("invalid", code)
            assert.are.equal(leader, c:leader())
            assert.truthy(c:apply("still " .. leader))
            -- Unnamed, with the learner the most up to date of the followers (the other
            -- voters are cut off while it takes an entry): a voter is chosen, and the
            -- learner stays a learner that never leads.
            for round = 1, 3 do
                leader = c:leader()
                local cut = {}
                for _, id in ipairs({ "n1", "n2", "n3" }) do
                    if id ~= leader then cut[#cut + 1] = id end
                end
                for _, id in ipairs(cut) do c:disconnect(id) end
                c:node(leader):apply("ahead " .. round, 3000, function() end)
                c:run_for(30)
                assert.are.equal(c:node(leader):status().last_index,
                                 c:node("n4"):status().last_index)
                for _, id in ipairs(cut) do c:connect(id) end
                local res
                c:node(leader):transfer_leadership(function(...) res = { ... } end)
                -- The target the core picked (the learner is n4, number 4, in the sim).
                local target = c._sim:transferee(tonumber((leader:gsub("n", ""))))
                assert(target ~= 0 and target ~= 4, ("seed %d round %d: transfer to %d"):format(
                    seed, round, target))
                assert(c:run_until(function() return res ~= nil end, 5000))
                -- (It may time out: the voter it picked lost messages while cut off, and
                -- catching up takes the leader's stall detection, an election timeout.)
                new = res[1]
                assert.is_truthy(new ~= "n4" and (new ~= nil or res[2] == "timeout"),
                                 tostring(res[2]))
                assert(c:run_until(function()
                    local l = c:leader()
                    return l ~= nil and l ~= "n4"
                end, 5000), "no voter leads (seed " .. seed .. ")")
                assert.are_not.equal("n4", c:leader())
                assert.is_false(c:configuration("n4").voter)
            end
            c:close()
        end
    end)

    it("picks the most up-to-date voter when no id is given", function()
        local c = cluster()
        local leader = elect(c)
        local new = await(c, function(cb) c:node(leader):transfer_leadership(cb) end)
        assert.is_not_nil(new)
        assert.are_not.equal(leader, new)
        assert.are.equal(new, c:leader())
    end)
end)

describe("sim reads and transfers under random faults", function()
    -- Writes, reads (linearizable and stale), transfers and membership changes (spawned
    -- nodes added as voters or learners, voters removed) on random nodes, with message
    -- loss, partitions, crashes and restarts. The checker verifies every read served; a
    -- read that returns must also return the value of a write acknowledged before it began
    -- or a later one (every write is unique, so "later" is its position in apply order).
    local N_SEEDS = tonumber(os.getenv("HELIOS_READ_SEEDS") or "") or 200
    it(("keeps every invariant over %d seeds"):format(N_SEEDS), function()
        local served, transferred, changed = 0, 0, 0
        for seed = SEED, SEED + N_SEEDS - 1 do
            local rnd = prng.new(seed)
            local n = rnd:chance(0.5) and 3 or 5
            local config = ({ {}, { read_lease = true }, { check_quorum = false } })[seed % 3 + 1]
            local c = sim.cluster{ n = n, seed = seed, fsm = fsm, config = config }
            c:set_network{ drop = 0.05, delay_ms = { 1, 20 } }
            local ids = c:ids()
            local order, acked = {}, 0 -- order[cmd] = its position once acknowledged
            local k = 0
            for _ = 1, 60 do
                local id = rnd:pick(ids)
                local r = rnd:float()
                if r < 0.35 then
                    k = k + 1
                    local cmd = "w" .. k
                    c:node(id):apply(cmd, 2000, function(index)
                        if index then
                            acked = acked + 1
                            order[cmd] = index
                        end
                    end)
                elseif r < 0.7 and c:alive(id) then
                    local floor = 0
                    for _, index in each(order) do
                        if index > floor then floor = index end
                    end
                    c:node(id):read(function(f) return f.v, f end, 2000, function(v)
                        if v ~= nil then
                            served = served + 1
                            local at = order[v]
                            assert(at == nil or at >= floor or floor == 0,
                                   ("seed %d: read on %s returned %s (index %s), older than "
                                    .. "index %d acknowledged before it began"):format(
                                       seed, id, v, tostring(at), floor))
                        end
                    end)
                elseif r < 0.75 and c:alive(id) then
                    c:node(id):transfer_leadership(rnd:chance(0.5) and rnd:pick(ids) or nil,
                        function(new) if new then transferred = transferred + 1 end end)
                elseif r < 0.79 and c:leader() then
                    -- Membership changes in the same schedule: a read round or a transfer
                    -- under way while the configuration moves (the core refuses a change
                    -- during a transfer; a round counts the voters it has when it checks).
                    local leader = c:leader()
                    local conf = c:configuration(leader)
                    if #ids < 7 and rnd:chance(0.5) then
                        local new = "n" .. (#ids + 1)
                        c:spawn(new)
                        ids[#ids + 1] = new
                        c:node(leader):add_peer(new, new, { voter = rnd:chance(0.8) },
                            function(ok) if ok then changed = changed + 1 end end)
                    elseif #conf.voters > 3 then
                        c:node(leader):remove_peer(rnd:pick(conf.voters),
                            function(ok) if ok then changed = changed + 1 end end)
                    end
                elseif r < 0.82 then
                    local a = rnd:sample(ids, math.floor(n / 2))
                    local rest = {}
                    for _, x in ipairs(ids) do
                        local inside = false
                        for _, y in ipairs(a) do inside = inside or x == y end
                        if not inside then rest[#rest + 1] = x end
                    end
                    c:partition(a, rest)
                elseif r < 0.9 then
                    c:heal()
                elseif r < 0.95 and c:alive(id) then
                    c:crash(id)
                elseif not c:alive(id) then
                    c:restart(id)
                end
                c:run_for(rnd:int(1, 200))
            end
            c:heal()
            for _, id in ipairs(ids) do
                if not c:alive(id) then c:restart(id) end
            end
            c:run_for(3000)
            assert.are.equal(0, c:check() and 0 or 1)
            c:close()
        end
        assert.is_true(served > 100, "reads served: " .. served)
        assert.is_true(transferred > 0, "transfers: " .. transferred)
        assert.is_true(changed > 0, "membership changes: " .. changed)
    end)
end)
