-- sim_disk_spec.lua: the simulated disk models the faults of the real one: a
-- flipped bit in a durable record is caught by recovery the way the storage's checksums
-- catch it, never applied. A bad last record is a torn tail and is cut off; a bad record
-- before it stops the node, which stays down while the others go on.
--
-- Each case runs on both storages of the simulator (csrc/sim/disk.h): the model, and the
-- production storage over a simulated file system, where the flipped bit is a real byte of
-- a segment file and the production checksums and recovery rules (FORMAT.md) judge it.
-- (The real storage tells a damaged record before the last sync from a torn unsynced tail
-- by its sync marks, not by position: these seeds corrupt records the rules call what the
-- model calls them.)

local cl = require("spec.helpers.cluster")

local STORAGES = {
    { name = "model", refused = "index 3", cut = "cut off" },
    { name = "real", refused = "record at offset %d+: bad checksum", cut = "torn tail at offset" },
}

for _, storage in ipairs(STORAGES) do
    describe(("simulated disk (%s storage)"):format(storage.name), function()
        it("refuses to start a node whose log has a flipped bit before its tail", function()
            cl.with_seed(cl.seed(901), function(seed)
                local c = cl.new{ n = 3, seed = seed, storage = storage.name }
                cl.wait_leader(c)
                for k = 1, 5 do cl.commit(c, "cmd" .. k) end
                assert.is_true(cl.wait_applied(c, c:node(c:leader()):status().commit_index))
                local victim = c:ids()[1] == c:leader() and c:ids()[2] or c:ids()[1]
                c:crash(victim)
                local hit = c:corrupt(victim, 3)
                assert.are.equal(3, hit)
                local ok, code, msg = c:restart(victim)
                assert.is_nil(ok)
                assert.are.equal("corrupt", code)
                assert.matches(storage.refused, msg)
                assert.is_false(c:alive(victim))
                -- the other two are a majority: the cluster keeps committing without it
                local index = cl.commit(c, "after")
                local others = {}
                for _, id in ipairs(c:ids()) do
                    if id ~= victim then others[#others + 1] = id end
                end
                assert.is_true(cl.wait_applied(c, index, 5000, others))
                c:check()
            end)
        end)

        it("cuts off a flipped bit in the last record as a torn tail, then catches up", function()
            cl.with_seed(cl.seed(902), function(seed)
                local c = cl.new{ n = 3, seed = seed, storage = storage.name }
                cl.wait_leader(c)
                for k = 1, 5 do cl.commit(c, "cmd" .. k) end
                local leader = c:leader()
                assert.is_true(cl.wait_applied(c, c:node(leader):status().commit_index))
                local victim = c:ids()[1] == leader and c:ids()[2] or c:ids()[1]
                local last = c:node(victim):status().last_index
                c:crash(victim)
                c:corrupt(victim, last)
                local ok, note = c:restart(victim)
                assert.is_true(ok)
                assert.matches(storage.cut, note)
                assert.is_true(c:node(victim):status().last_index < last)
                -- the leader repairs the cut tail and the node applies everything again
                local final = cl.settle(c, "final")
                assert.same(c:applied(leader), c:applied(victim))
                assert.is_true(final > last)
            end)
        end)

        it("keeps every invariant when crashes tear the last write of many nodes", function()
            cl.with_seed(cl.seed(903), function(seed)
                local c = cl.new{ n = 5, seed = seed, disk_latency_ms = { 5, 40 },
                                 storage = storage.name }
                cl.wait_leader(c)
                -- slow disks keep batches pending, so each crash tears or loses some
                for round = 1, 30 do
                    local leader = c:leader()
                    if leader then c:node(leader):propose("r" .. round) end
                    c:run_for(7)
                    local id = c:ids()[1 + round % 5]
                    if c:alive(id) then c:crash(id) end
                    c:run_for(13)
                    for _, other in ipairs(c:ids()) do
                        if not c:alive(other) and other ~= id then c:restart(other) end
                    end
                end
                cl.settle(c, "final")
            end)
        end)
    end)
end
