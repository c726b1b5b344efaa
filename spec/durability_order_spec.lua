-- durability_order_spec.lua: the rules about durability before counting or answering hold.
--
-- A leader counts its own entries towards commit only once they are durable on its disk,
-- and a node answers votes and appends only once the write they depend on is durable
-- (docs/architecture.md, the ready loop's ordering rules). The randomized spec
-- (random_spec.lua) runs disks (1-5 ms) faster than a network round trip, so a leader's own
-- write is always durable before a follower's acknowledgement and these rules are never
-- put to the test: a core that counts the leader's entries before they are on its disk, or
-- answers votes and appends before the write they depend on is durable, passes thousands
-- of its seeds. Here the disks are slower than the network (1-80 ms), and the seeds pinned
-- below catch each of those mutations.

local cl = require("spec.helpers.cluster")
local prng = require("spec.helpers.prng")
local schedule = require("spec.helpers.schedule")
local SLOW_SEEDS = tonumber(os.getenv("HELIOS_SEEDS") or "") or 200
local PINNED = { 25, 147, 615, 705, 839, 953 }

describe("random faults over disks slower than the network", function()
    for _, variant in ipairs({
        { name = "default config", config = {} },
        { name = "bare Raft", config = { prevote = false, check_quorum = false,
                                         max_entries_per_append = 1 } },
    }) do
        it("keep every invariant (" .. variant.name .. ")", function()
            local seeds = {}
            for s = 1, SLOW_SEEDS do seeds[#seeds + 1] = s end
            for _, s in ipairs(PINNED) do if s > SLOW_SEEDS then seeds[#seeds + 1] = s end end
            local failures = {}
            for _, seed in ipairs(seeds) do
                local ok, err = pcall(function()
                    local c = cl.new{ n = seed % 2 == 1 and 3 or 5, seed = seed,
                                       config = variant.config, disk_latency_ms = { 1, 80 } }
                    schedule.random(c, prng.new(seed), { duration_ms = 4000 })
                    cl.settle(c, "final", 20000)
                end)
                if not ok then
                    failures[#failures + 1] = ("seed %d: %s"):format(seed, tostring(err):sub(1, 400))
                end
            end
            assert(#failures == 0, ("%d seeds failed (%s):\n  %s"):format(#failures, variant.name,
                   table.concat(failures, "\n  ", 1, math.min(#failures, 5))))
        end)
    end
end)
