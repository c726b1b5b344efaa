-- spec/snapshot_slices_spec.lua: snapshots a networked node takes in its own process, in
-- slices between which it goes on applying entries (fsm.snapshot_slices, as the ATLAS store
-- does; docs/fork-snapshot.md, "In slices"), on the real loop with a one-node cluster
-- (real TCP listener, real data dir, core.snapshot_file).

local raft = require("helios.raft")
local atlas = require("helios.atlas")
local core = require("helios.core")
local nh = require("spec.helpers.node")

local tmpdir, rmrf, wait_for = nh.tmpdir, nh.rmrf, nh.wait_for
local format = string.format
local E = atlas.encode

local KEYS = 20000

local ls = nh.ls

-- A one-node cluster over fsm, with no automatic snapshot.
local function solo(dir, fsm, port)
    local addr = "127.0.0.1:" .. (port or core.free_port())
    local node = raft.new({ id = "solo", peers = { solo = addr }, data_dir = dir .. "/solo",
                            fsm = fsm, secret = "snapshot slices spec",
                            election_timeout_ms = 150, heartbeat_timeout_ms = 30,
                            snapshot_interval_ms = 3600000, snapshot_threshold = 1000000000 })
    assert(node:start())
    return node, addr:match(":(%d+)$")
end

-- Wait for the node to lead, then fill the store with KEYS keys (MSET, 500 a command).
local function fill(node)
    assert(wait_for(function() local _, leads = node:state(); return leads end, 5000),
           "the node never led")
    for first = 1, KEYS, 500 do
        local kv = {}
        for i = first, first + 499 do
            kv[#kv + 1] = "k" .. i
            kv[#kv + 1] = "v" .. i
        end
        assert(node:apply(E.mset(kv), 5000))
    end
end

describe("sliced snapshots", function()
    local dir, c
    before_each(function() dir = tmpdir() end)
    after_each(function()
        if c then nh.stop_all(c) end
        c = nil
        rmrf(dir)
    end)

    it("write the state as of their index while the node applies entries between slices",
       function()
        local f = atlas.fsm()
        local node, port = solo(dir, f)
        c = { ids = { "solo" }, nodes = { solo = node } }
        local expected, index, during, taken
        node:on("snapshot", function(i) if i == index then taken = true end end)
        assert(nh.run_scenario(c, 30000, function()
            fill(node)
            -- Writers that overwrite, delete and add keys all through the snapshot.
            local writing, n, writers = true, 0, 4
            for w = 1, writers do
                raft.spawn(function()
                    local i = w
                    while writing do
                        i = i + 4
                        local k = "k" .. (i * 7919 % (KEYS + 5000) + 1)
                        local cmd = i % 3 == 0 and E.del(k) or E.set(k, "w" .. i, i % 5 == 0
                                                                and 100000 or nil)
                        assert(node:apply(cmd, 5000))
                        n = n + 1
                    end
                    writers = writers - 1
                end)
            end
            assert(wait_for(function() return n > 200 end, 5000))
            index = assert(node:snapshot())
            -- Nothing was applied since the first slice: the store as it is now is what
            -- the file must hold, written all at once for the comparison.
            expected = f:snapshot()
            assert.is_table(f.snap, "the snapshot was not taken in slices")
            assert(wait_for(function() return taken end, 20000), "the snapshot never ended")
            during = node:status().applied_index - index
            writing = false
            assert(wait_for(function() return writers == 0 end, 5000), "writers still running")
            assert.is_nil(f.snap)
        end))
        assert.is_true(during > 0, "no entry was applied while the snapshot was written")
        -- A restart restores exactly that state, then replays the entries after it.
        local g = atlas.fsm()
        local restored
        local FSM = getmetatable(g)
        g.restore = function(self, bytes)
            restored = bytes
            return FSM.restore(self, bytes)
        end
        local want = f:snapshot()
        node = solo(dir, g, port)
        c = { ids = { "solo" }, nodes = { solo = node } }
        assert(nh.run_scenario(c, 10000, function()
            assert(wait_for(function() return g:snapshot() == want end, 5000),
                   "the restarted node does not hold what was applied")
        end))
        assert.is_true(restored == expected, format("the snapshot of index %d is not the "
            .. "state at that index (%d entries were applied while it was written)", index,
            during))
    end)

    it("are given up at shutdown: the FSM keeps nothing, no file is left", function()
        local f = atlas.fsm()
        local node = solo(dir, f)
        c = { ids = { "solo" }, nodes = { solo = node } }
        assert(nh.run_scenario(c, 20000, function()
            fill(node)
            assert(node:snapshot())
            assert.is_table(f.snap)
        end))
        assert.is_nil(f.snap)
        assert.is_nil(node._backend._snapshotting)
        assert.are.same({}, ls(dir .. "/solo/snapshots"))
    end)

    it("fail cleanly when the FSM raises between slices, and the next one is taken", function()
        local fsm = { snapshot_slices = true, n = 0, fail = true }
        function fsm:apply() self.n = self.n + 1 end
        function fsm:snapshot(w, yield)
            w:write("n=")
            assert(yield() == true)
            if self.fail then error("snapshot failed on purpose") end
            w:write(self.n)
        end
        function fsm:restore(bytes) self.n = tonumber(bytes:match("n=(%d+)")) end
        local node = solo(dir, fsm)
        c = { ids = { "solo" }, nodes = { solo = node } }
        local logged
        node:on("log", function(level, msg)
            if level >= 2 and msg:find("snapshot failed on purpose", 1, true) then logged = true end
        end)
        assert(nh.run_scenario(c, 20000, function()
            assert(wait_for(function() local _, leads = node:state(); return leads end, 5000))
            assert(node:apply("x", 5000))
            assert(node:snapshot())
            assert(wait_for(function() return logged end, 5000), "no snapshot_error logged")
            assert.is_nil(node._backend._snapshotting)
            assert.equal(0, node:status().snapshot_index)
            assert.are.same({}, ls(dir .. "/solo/snapshots"))
            fsm.fail = false
            local index = assert(node:snapshot())
            assert(wait_for(function() return node:status().snapshot_index == index end, 5000))
        end))
    end)
end)
