-- election_spec.lua: leader election on helios.sim (initial election, stability,
-- re-election, rejoining without disturbance, elections under random minority cuts).

local cl = require("spec.helpers.cluster")
local prng = require("spec.helpers.prng")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

describe("election", function()
    it("elects exactly one leader, and every node agrees on it and its term", function()
        cl.with_seed(cl.seed(101), function(seed)
            local c = cl.new{ n = 5, seed = seed }
            local leader = cl.wait_leader(c, 3000)
            c:run_for(500) -- a few heartbeats: every follower has heard from the leader

            assert.are.same({ leader }, cl.leaders(c))
            local term = c:node(leader):status().term
            for _, id in ipairs(c:ids()) do
                local s = c:node(id):status()
                assert.are.equal(term, s.term, id .. "\n  " .. cl.dump(c))
                assert.are.equal(leader, s.leader, id .. "\n  " .. cl.dump(c))
                local t, is_leader = c:node(id):state()
                assert.are.equal(term, t)
                assert.are.equal(id == leader, is_leader)
            end
        end)
    end)

    it("holds no new election while nothing fails", function()
        cl.with_seed(cl.seed(102), function(seed)
            local c = cl.new{ n = 5, seed = seed }
            local leader = cl.wait_leader(c, 3000)
            c:run_for(500)
            local term = c:node(leader):status().term
            local elections = 0
            for _, id in ipairs(c:ids()) do elections = elections + c:node(id):stats().elections end

            c:run_for(5000)

            assert.are.same({ leader }, cl.leaders(c))
            local after = 0
            for _, id in ipairs(c:ids()) do
                assert.are.equal(term, c:node(id):status().term, id .. "\n  " .. cl.dump(c))
                after = after + c:node(id):stats().elections
            end
            assert.are.equal(elections, after)
        end)
    end)

    it("elects a new leader when the leader is cut off", function()
        cl.with_seed(cl.seed(103), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local old = cl.wait_leader(c, 3000)
            local old_term = c:node(old):status().term

            c:disconnect(old)
            local rest = cl.up(c)
            local new = cl.wait_leader(c, 3000, rest)

            assert.are_not.equal(old, new)
            local new_term = c:node(new):status().term
            assert.is_true(new_term > old_term)
            c:run_for(300)
            for _, id in ipairs(rest) do
                assert.are.equal(new, c:node(id):status().leader, cl.dump(c))
                assert.are.equal(new_term, c:node(id):status().term, cl.dump(c))
            end
        end)
    end)

    it("lets the old leader rejoin as a follower without disturbing the new leader", function()
        cl.with_seed(cl.seed(104), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local old = cl.wait_leader(c, 3000)
            c:disconnect(old)
            local new = cl.wait_leader(c, 3000, cl.up(c))
            c:run_for(1000) -- the old leader, alone, has stepped down (CheckQuorum)
            local term = c:node(new):status().term

            c:connect(old)
            c:run_for(2000)

            assert.are.same({ new }, cl.leaders(c))
            assert.are.equal(term, c:node(new):status().term, cl.dump(c))
            local s = c:node(old):status()
            assert.are.equal("follower", s.role)
            assert.are.equal(term, s.term)
            assert.are.equal(new, s.leader)
        end)
    end)

    it("lets a cut-off follower rejoin without raising the term (PreVote)", function()
        cl.with_seed(cl.seed(105), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local leader = cl.wait_leader(c, 3000)
            c:run_for(300)
            local term = c:node(leader):status().term
            local follower = c:ids()[1] == leader and c:ids()[2] or c:ids()[1]

            c:disconnect(follower)
            c:run_for(3000) -- many election timeouts alone
            c:connect(follower)
            c:run_for(1000)

            assert.are.same({ leader }, cl.leaders(c))
            for _, id in ipairs(c:ids()) do
                assert.are.equal(term, c:node(id):status().term, id .. "\n  " .. cl.dump(c))
            end
        end)
    end)

    it("always has a leader again after repeated random disconnects of a minority", function()
        cl.with_seed(cl.seed(106), function(seed)
            local rng = prng.new(seed)
            local c = cl.new{ n = 5, seed = seed }
            local ids = c:ids()
            local leader = cl.wait_leader(c, 3000)
            local terms = { [c:node(leader):status().term] = true }

            for _ = 1, 30 do
                -- A minority of one or two, holding the leader half of the time.
                local k = rng:int(1, 2)
                local cut = rng:sample(ids, k)
                if rng:chance(0.5) and leader then
                    cut[1] = leader
                    if cut[2] == leader then cut[2] = nil end
                end
                for _, id in ipairs(cut) do c:disconnect(id) end
                local majority = cl.up(c)
                leader = cl.wait_leader(c, 3000, majority)
                terms[c:node(leader):status().term] = true
                c:run_for(rng:int(50, 800))

                c:heal()
                leader = cl.wait_leader(c, 3000)
                c:run_for(rng:int(0, 300))
            end

            -- Healed: one leader that every node follows.
            c:run_for(1000)
            leader = cl.wait_leader(c, 3000)
            assert.are.same({ leader }, cl.leaders(c))
            for _, id in ipairs(ids) do
                assert.are.equal(leader, c:node(id):status().leader, cl.dump(c))
            end
            local n = 0
            for _ in each(terms) do n = n + 1 end
            assert.is_true(n >= 5, "only " .. n .. " leader terms in 30 rounds")
        end)
    end)
end)
