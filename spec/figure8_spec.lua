-- figure8_spec.lua: the Figure 8 scenario of the Raft paper (§5.4.2), run as MIT 6.824's
-- Figure8 and Figure8Unreliable tests run it: leaders keep being cut off right after
-- proposing, on reliable and unreliable networks. The simulator checks the invariants after
-- every step; at the end everything heals and a final command must commit everywhere.

local cl = require("spec.helpers.cluster")
local prng = require("spec.helpers.prng")
local schedule = require("spec.helpers.schedule")

describe("figure 8", function()
    it("keeps every invariant with leaders crashing on a reliable network", function()
        cl.with_seed(cl.seed(801), function(seed)
            local c = cl.new{ n = 5, seed = seed }
            cl.wait_leader(c)
            local cut = schedule.figure8(c, prng.new(seed), { iterations = 1000 })
            assert.is_true(cut >= 20, "only " .. cut .. " leaders cut off")
            cl.settle(c, "final")
        end)
    end)

    it("keeps every invariant with leaders crashing under bare Raft", function()
        cl.with_seed(cl.seed(802), function(seed)
            local c = cl.new{ n = 5, seed = seed, config = {
                prevote = false, check_quorum = false, max_entries_per_append = 1 } }
            cl.wait_leader(c)
            local cut = schedule.figure8(c, prng.new(seed), { iterations = 1000 })
            assert.is_true(cut >= 20, "only " .. cut .. " leaders cut off")
            cl.settle(c, "final")
        end)
    end)

    it("keeps every invariant with leaders cut off on an unreliable network", function()
        cl.with_seed(cl.seed(803), function(seed)
            local c = cl.new{ n = 5, seed = seed }
            cl.wait_leader(c)
            local cut = schedule.figure8(c, prng.new(seed), { iterations = 1000, unreliable = true,
                                                  disconnect = true })
            assert.is_true(cut >= 20, "only " .. cut .. " leaders cut off")
            cl.settle(c, "final", 20000)
        end)
    end)

    it("keeps every invariant with leaders crashing on an unreliable network", function()
        cl.with_seed(cl.seed(804), function(seed)
            local c = cl.new{ n = 5, seed = seed }
            cl.wait_leader(c)
            local cut = schedule.figure8(c, prng.new(seed), { iterations = 1000, unreliable = true })
            assert.is_true(cut >= 20, "only " .. cut .. " leaders cut off")
            cl.settle(c, "final", 20000)
        end)
    end)
end)
