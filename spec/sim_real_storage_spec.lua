-- sim_real_storage_spec.lua: the randomized fault schedules of random_spec.lua, run on the
-- PRODUCTION storage (csrc/storage: segments, meta, snapshot files, hr_log_reconcile) over
-- one crashing in-memory file system per node (csrc/sim/simfs.h, csrc/sim/disk_real.c)
-- instead of the simulator's model of a disk. On top of the schedule's crashes, crash
-- points cut storage steps in their middle (a write, an fsync, a rename, a directory sync
-- of a batch, a snapshot install or write, a compaction), and a crash keeps a random part
-- of the unsynced writes, torn or not, by the seed. The simulator stops if a node's storage
-- refuses to open after a crash (nothing else damaged it), and checks after every step that
-- nothing acknowledged was lost: durability where messages leave, log matching, leader
-- completeness, state machine safety; then everything heals and a final command must reach
-- every node (and with snapshots, the same FSM state everywhere).
--
--   HELIOS_SEEDS=2000 busted --lua=luajit spec/sim_real_storage_spec.lua   -- more seeds
--   HELIOS_SEED=17 busted --lua=luajit spec/sim_real_storage_spec.lua      -- replay one
--
-- "pages" (a crash keeps any subset of a file's unsynced 4 KiB pages) could in principle
-- catch a crash in the middle of a truncate, which the storage does not make durable as an
-- intent yet; 3000 seeds of it found no refused open (HELIOS_STORAGE_FAULTS=pages), so it is
-- in the rotation: a failure of a "pages" seed with "refused to open" may be that.

local cl = require("spec.helpers.cluster")
local fsm = require("spec.helpers.fsm")
local prng = require("spec.helpers.prng")
local schedule = require("spec.helpers.schedule")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local SEEDS = tonumber(os.getenv("HELIOS_SEEDS") or "") or 500
local ONE = tonumber(os.getenv("HELIOS_SEED") or "")
local DURATION = tonumber(os.getenv("HELIOS_SIM_MS") or "") or 4000

-- What a crash keeps of the unsynced writes, by seed (HELIOS_STORAGE_FAULTS: one of them
-- for every seed).
local FAULTS = { "none", "unsynced", "torn", "pages" }
if os.getenv("HELIOS_STORAGE_FAULTS") then FAULTS = { os.getenv("HELIOS_STORAGE_FAULTS") } end

local CONFIGS = {
    { name = "default config", config = {} },
    { name = "bare Raft", config = { prevote = false, check_quorum = false,
                                     max_entries_per_append = 1 } },
    { name = "snapshots", config = { snapshot_threshold = 8, trailing_logs = 3,
                                     snapshot_interval_ms = 20 },
      snapshot_chunk_bytes = 32, make = function(id) return fsm.store(id, 12) end },
}

local function add(total, t)
    for k, v in each(t) do
        total[k] = (total[k] or 0) + v
    end
end

local function run_seed(seed, variant, total)
    local c, reg = cl.new{ n = seed % 2 == 1 and 3 or 5, seed = seed, config = variant.config,
                           make = variant.make, snapshot_chunk_bytes = variant.snapshot_chunk_bytes,
                           -- slow disks now and then, so that crashes catch batches in flight
                           disk_latency_ms = seed % 4 == 0 and { 1, 30 } or nil,
                           storage = "real", storage_crash = 0.1,
                           storage_faults = FAULTS[seed % #FAULTS + 1],
                           segment_size = 1024 }
    schedule.random(c, prng.new(seed), { duration_ms = DURATION })
    cl.settle(c, "final", 20000)
    if variant.make then
        cl.same_state(c, reg)
        add(total, c:snapshot_stats())
    end
    add(total, c:storage_stats())
end

describe("randomized fault schedules on the production storage", function()
    for _, variant in ipairs(CONFIGS) do
        local first, last = 1, SEEDS
        if ONE then first, last = ONE, ONE end
        it(("keep every invariant, restart every node and stay live over %d seeds (%s)")
           :format(last - first + 1, variant.name), function()
            local total = {}
            cl.sweep(first, last, variant.name, function(seed)
                run_seed(seed, variant, total)
            end)
            if last - first + 1 >= 20 then
                -- Proof that the run did what it claims: steps cut by crash points, crashes
                -- with batches in flight, torn writes, and restarts that had to repair.
                for _, k in ipairs({ "crash_points", "in_flight", "torn", "repaired" }) do
                    assert((total[k] or 0) > 0, ("storage faults were not exercised: %s = %d")
                                                :format(k, total[k] or 0))
                end
                if variant.make then
                    assert(total.reconciled > 0 and total.installed > 0 and total.taken > 0,
                           ("snapshots were not exercised on storage: %d reconciled, %d "
                            .. "installed, %d taken"):format(total.reconciled,
                                                             total.installed or 0,
                                                             total.taken or 0))
                end
            end
        end)
    end
end)
