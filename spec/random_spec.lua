-- random_spec.lua: the randomized schedule search. Each seed runs a few thousand virtual
-- milliseconds of random faults (crash and restart storms, loss, long delays, duplicates,
-- partitions, disconnects) with proposals flowing, on 3 nodes for odd seeds and 5 for even
-- ones; the simulator checks the invariants after every step. Then everything heals and a
-- leader must commit a final command on every node (liveness). Every seed runs three times:
-- with the default config, with bare Raft (no PreVote, no CheckQuorum, one entry per
-- AppendEntries), which exposes vote and commit bugs the defaults mask, and with snapshots
-- (a small threshold, few trailing entries and small InstallSnapshot chunks, so compaction,
-- transfers and restarts from a snapshot happen all the time, over a store FSM whose state
-- must be the same on every node at the end).
--
--   HELIOS_SEEDS=5000 busted --lua=luajit spec/random_spec.lua   -- more seeds
--   HELIOS_SEED=17 busted --lua=luajit spec/random_spec.lua      -- replay one seed
--   HELIOS_SIM_MS=4000 ...                                       -- virtual ms per seed

local cl = require("spec.helpers.cluster")
local fsm = require("spec.helpers.fsm")
local prng = require("spec.helpers.prng")
local schedule = require("spec.helpers.schedule")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local SEEDS = tonumber(os.getenv("HELIOS_SEEDS") or "") or 500
local ONE = tonumber(os.getenv("HELIOS_SEED") or "")
local DURATION = tonumber(os.getenv("HELIOS_SIM_MS") or "") or 4000

local CONFIGS = {
    { name = "default config", config = {} },
    { name = "bare Raft", config = { prevote = false, check_quorum = false,
                                     max_entries_per_append = 1 } },
    { name = "snapshots", config = { snapshot_threshold = 8, trailing_logs = 3,
                                     snapshot_interval_ms = 20 },
      snapshot_chunk_bytes = 32, make = function(id) return fsm.store(id, 12) end },
}

-- Totals over the seeds of a configuration with snapshots: proof that the run exercised
-- what it claims to.
local function add_stats(total, c)
    for k, v in each(c:snapshot_stats()) do
        total[k] = (total[k] or 0) + v
    end
end

local function run_seed(seed, variant, total)
    local c, reg = cl.new{ n = seed % 2 == 1 and 3 or 5, seed = seed, config = variant.config,
                           make = variant.make,
                           snapshot_chunk_bytes = variant.snapshot_chunk_bytes }
    schedule.random(c, prng.new(seed), { duration_ms = DURATION })
    cl.settle(c, "final", 20000)
    if variant.make then
        cl.same_state(c, reg)
        add_stats(total, c)
    end
end

describe("randomized fault schedules", function()
    for _, variant in ipairs(CONFIGS) do
        local first, last = 1, SEEDS
        if ONE then first, last = ONE, ONE end
        it(("keep every invariant and stay live over %d seeds (%s)")
           :format(last - first + 1, variant.name), function()
            local total = {}
            cl.sweep(first, last, variant.name, function(seed)
                run_seed(seed, variant, total)
            end)
            if variant.make and last - first + 1 >= 20 then
                assert(total.taken > 0 and total.installed > 0 and total.chunks > total.delivered,
                       ("snapshots were not exercised: %d taken, %d installed, %d chunks, %d "
                        .. "delivered"):format(total.taken or 0, total.installed or 0,
                                               total.chunks or 0, total.delivered or 0))
            end
        end)
    end
end)
