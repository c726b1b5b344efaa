-- figure8_spec.lua: the Figure 8 scenario of the Raft paper (§5.4.2), run as MIT 6.824's
-- Figure8 and Figure8Unreliable tests run it: leaders keep being cut off right after
-- proposing, on reliable and unreliable networks. The simulator checks the invariants after
-- every step; at the end everything heals and a final command must commit everywhere.

local cl = require("spec.helpers.cluster")
local prng = require("spec.helpers.prng")
local schedule = require("spec.helpers.schedule")

local BARE = { prevote = false, check_quorum = false, max_entries_per_append = 1 }

-- One scenario per network and fault kind; only these settings differ between them.
local CASES = {
    { name = "leaders crashing on a reliable network", seed = 801 },
    { name = "leaders crashing under bare Raft", seed = 802, config = BARE },
    { name = "leaders cut off on an unreliable network", seed = 803, unreliable = true,
      disconnect = true },
    { name = "leaders crashing on an unreliable network", seed = 804, unreliable = true },
}

describe("figure 8", function()
    for _, case in ipairs(CASES) do
        it("keeps every invariant with " .. case.name, function()
            cl.with_seed(cl.seed(case.seed), function(seed)
                local c = cl.new{ n = 5, seed = seed, config = case.config }
                cl.wait_leader(c)
                local cut = schedule.figure8(c, prng.new(seed), {
                    iterations = 1000, unreliable = case.unreliable, disconnect = case.disconnect })
                assert.is_true(cut >= 20, "only " .. cut .. " leaders cut off")
                cl.settle(c, "final", case.unreliable and 20000 or nil)
            end)
        end)
    end
end)
