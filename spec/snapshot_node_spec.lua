-- spec/snapshot_node_spec.lua: snapshots, log compaction and InstallSnapshot of networked
-- nodes (raft.new) in one process, on the real loop: real TCP on 127.0.0.1, real data dirs,
-- forked snapshot writers.
--
-- Each `it` runs the loop itself (raft.run) with its scenario in a coroutine and a
-- deadline, and shuts every node down in `finally`, also when the scenario fails.

local raft = require("helios.raft")
local core = require("helios.core")
local kv = require("helios.fsm.kv")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local nh = require("spec.helpers.node")

local format = string.format
local tmpdir, rmrf, wait_for = nh.tmpdir, nh.rmrf, nh.wait_for

-- ---- helpers (the shared ones are spec/helpers/node.lua) ----

local su = require("spec.helpers.storage_util")
local read_file, write_file = su.read_file, su.write_file

local ls = nh.ls

-- Every option a test may want: fast timers, frequent snapshot checks.
local BASE = { election_timeout_ms = 150, heartbeat_timeout_ms = 30, snapshot_interval_ms = 50,
               snapshot_threshold = 50, trailing_logs = 10 }

local Cluster = {}
Cluster.__index = Cluster

local function new_cluster(n, dir, extra)
    local c = setmetatable({ ids = {}, nodes = {}, fsms = {}, peers = {}, dir = dir,
                             extra = extra or {}, snapshots = {} }, Cluster)
    for i = 1, n do
        local id = "node-" .. i
        c.ids[i] = id
        c.peers[id] = "127.0.0.1:" .. core.free_port()
    end
    for _, id in ipairs(c.ids) do c:start(id) end
    return c
end

function Cluster:start(id, fsm)
    self.fsms[id] = fsm or kv.new()
    local opts = { id = id, peers = self.peers, data_dir = self.dir .. "/" .. id,
                   fsm = self.fsms[id], secret = "test secret" }
    for k, v in each(BASE) do opts[k] = v end
    for k, v in each(self.extra) do opts[k] = v end
    local node = raft.new(opts)
    self.nodes[id] = node
    self.snapshots[id] = {}
    -- Each event with what status() said meanwhile (it must already show the snapshot).
    node:on("snapshot", function(index, term)
        local l = self.snapshots[id]
        l[#l + 1] = { index, term, node:status().snapshot_index }
    end)
    local ok, code, detail = node:start()
    assert(ok, format("start %s: %s %s", id, tostring(code), tostring(detail)))
    return node
end

function Cluster:running(id)
    return nh.running(self.nodes[id])
end

Cluster.stop = nh.stop_all

-- Shut id down and wait (inside a coroutine) until its data dir is released.
function Cluster:shutdown(id)
    local done = false
    self.nodes[id]:shutdown(function() done = true end)
    while not done do raft.sleep(5) end
end

Cluster.leader = nh.leader_of

function Cluster:wait_leader()
    assert(wait_for(function() return self:leader() ~= nil end, 5000), "no leader elected")
    return self:leader()
end

-- Apply n "set" commands starting at key number from, through the leader.
function Cluster:load(from, n)
    local id = self:wait_leader()
    for i = from, from + n - 1 do
        local index, code = self.nodes[id]:apply(format("set k%d v%d", i, i), 3000)
        if not index and code == "not_leader" then
            id = self:wait_leader()
            assert(self.nodes[id]:apply(format("set k%d v%d", i, i), 3000))
        else
            assert(index, code)
        end
    end
    return id
end

-- Wait until every running node applied what the leader applied; true if they did.
function Cluster:converge(ms)
    return wait_for(function()
        local l = self:leader()
        if not l then return false end
        local want = self.nodes[l]:status().applied_index
        for _, id in ipairs(self.ids) do
            if self:running(id) and self.nodes[id]:status().applied_index < want then
                return false
            end
        end
        return true
    end, ms or 5000)
end

-- Whether every running node is less than its snapshot_threshold behind what it applied:
-- what the automatic snapshots promise once no more entries come (each check, every
-- snapshot_interval_ms, takes one when a threshold was applied since the last).
function Cluster:snapshots_settled()
    local threshold = self.extra.snapshot_threshold or BASE.snapshot_threshold
    for _, id in ipairs(self.ids) do
        if self:running(id) then
            local st = self.nodes[id]:status()
            if st.applied_index - st.snapshot_index >= threshold then
                return false
            end
        end
    end
    return true
end

function Cluster:run(timeout_ms, body)
    local ok, err = nh.run_scenario(self, timeout_ms, body)
    assert(ok, err)
end

local function snap_dir(c, id)
    return c.dir .. "/" .. id .. "/snapshots"
end

-- ---- specs ----

describe("snapshots of networked nodes", function()
    local dir, c
    before_each(function() dir = tmpdir() end)
    after_each(function()
        if c then c:stop() end
        c = nil
        rmrf(dir)
    end)

    it("snapshot under load, compact, and keep every node's FSM state identical", function()
        c = new_cluster(3, dir)
        c:run(20000, function()
            -- Load until every node has taken two snapshots itself. How many entries that
            -- needs depends on the apply rate: a node looks every snapshot_interval_ms
            -- whether snapshot_threshold entries were applied since its last snapshot, and
            -- up to 175 entries were seen to apply between two looks here, so a node's
            -- first snapshot can be past index 200, or past 250 and its only one for 300
            -- entries. A follower that fell behind the leader's compacted log is sent the
            -- leader's snapshot instead of taking one. Once every node has settled, another
            -- snapshot_threshold of entries makes each take (or install) one more.
            local n, more = 300, BASE.snapshot_threshold
            local l = c:load(1, n)
            local deadline = raft.now() + 10000
            while true do
                assert(c:converge(), "nodes did not converge")
                assert(wait_for(function() return c:snapshots_settled() end, 3000),
                       "not every node snapshotted what it applied")
                local short
                for _, id in ipairs(c.ids) do
                    if c.nodes[id]:stats().snapshots.taken < 2 then short = id end
                end
                if not short then break end
                assert(raft.now() < deadline, format("%s took %d snapshots after %d entries",
                       short, c.nodes[short]:stats().snapshots.taken, n))
                l = c:load(n + 1, more)
                n = n + more
            end
            local want = c.fsms[l]:snapshot()
            for _, id in ipairs(c.ids) do
                local st = c.nodes[id]:status()
                local ss = c.nodes[id]:stats().snapshots
                local events = c.snapshots[id]
                local seen = {}
                for i, e in ipairs(events) do seen[i] = e[1] end
                local what = format("snapshot observers on %s saw %s; taken %d, installed %d, "
                                    .. "current %d", id, table.concat(seen, " "), ss.taken,
                                    ss.installed, st.snapshot_index)
                assert.equal(want, c.fsms[id]:snapshot())
                assert(st.snapshot_size > 0)
                assert(st.first_index > 1, "log not compacted on " .. id)
                assert(ss.taken >= 2, what)
                -- Every snapshot, taken or installed, fired the observers once, in order,
                -- when status() already showed it; the last one is the current snapshot.
                assert(#events == ss.taken + ss.installed, what)
                for i, e in ipairs(events) do
                    assert(e[3] == e[1], what)
                    assert(i == 1 or e[1] > events[i - 1][1], what)
                end
                assert(events[#events][1] == st.snapshot_index, what)
                -- Only the newest snapshot file stays.
                local files = {}
                for _, f in ipairs(ls(snap_dir(c, id))) do
                    if f:match("%.snap$") then files[#files + 1] = f end
                end
                assert.equal(1, #files, table.concat(files, " "))
            end
            -- On demand: a snapshot of what is applied now (once the automatic one that may
            -- still be being written is done: meanwhile the answer is nil, "busy").
            local idx, code
            assert(wait_for(function()
                idx, code = c.nodes[l]:snapshot()
                return idx ~= nil or code ~= "busy"
            end, 3000), "a snapshot stayed busy")
            assert.equal(c.nodes[l]:status().applied_index, idx)
            assert(wait_for(function()
                return c.nodes[l]:status().snapshot_index == idx
            end, 3000))
            -- Nothing applied since: the current snapshot's index, nothing written.
            assert.equal(idx, c.nodes[l]:snapshot())
        end)
    end)

    it("brings back a follower that missed a compacted range through chunked InstallSnapshot",
       function()
        c = new_cluster(3, dir, { snapshot_chunk_bytes = 700 })
        c:run(20000, function()
            local l = c:load(1, 50)
            assert(c:converge())
            local f = l == "node-1" and "node-2" or "node-1"
            c:shutdown(f)
            l = c:load(51, 400)
            assert(wait_for(function()
                return c.nodes[l]:status().first_index > c.nodes[l]:status().commit_index - 100
            end, 3000), "leader did not compact")
            c:start(f)
            assert(c:converge(8000), "the follower did not catch up")
            assert.equal(c.fsms[l]:snapshot(), c.fsms[f]:snapshot())
            local fs, ls_ = c.nodes[f]:stats().snapshots, c.nodes[l]:stats().snapshots
            assert(fs.installed >= 1, "no snapshot installed")
            assert(fs.chunks_received > 3, "not chunked: " .. fs.chunks_received)
            assert(ls_.chunks_sent > 3)
            assert(#c.snapshots[f] >= 1) -- the observer fired for the installed one
            -- The installed snapshot is durable and current: a restart needs no transfer.
            local si = c.nodes[f]:status().snapshot_index
            assert(si > 50)
            c:shutdown(f)
            c:start(f)
            assert.equal(si, c.nodes[f]:status().snapshot_index)
            assert(c:converge(5000))
            assert.equal(c.fsms[l]:snapshot(), c.fsms[f]:snapshot())
        end)
    end)

    it("restarts from the snapshot plus the log tail, reading only the tail", function()
        c = new_cluster(3, dir, { snapshot_threshold = 100000, trailing_logs = 5 })
        local before, si
        c:run(20000, function()
            local l = c:load(1, 120)
            assert(c:converge())
            for _, id in ipairs(c.ids) do
                assert(c.nodes[id]:snapshot())
            end
            assert(wait_for(function()
                for _, id in ipairs(c.ids) do
                    if c.nodes[id]:status().snapshot_index == 0 then return false end
                end
                return true
            end, 3000))
            si = c.nodes["node-1"]:status().snapshot_index
            c:load(121, 30)
            assert(c:converge())
            before = c.fsms[l]:snapshot()
        end)
        c:stop()
        c:run(20000, function()
            for _, id in ipairs(c.ids) do c:start(id) end
            local info = c.nodes["node-1"]._backend._core:recovery_info()
            local from = tonumber(info:match("log read from index (%d+)"))
            assert(from, info)
            assert.equal(si + 1 - 5, from)
            -- The FSM came back from snapshot + tail before any new entry.
            assert(wait_for(function()
                return c.fsms["node-1"]:snapshot() == before
            end, 3000), "state after restart differs")
            c:load(151, 5)
            assert(c:converge())
        end)
    end)

    it("keeps the previous snapshot usable when the snapshot writer dies", function()
        -- Three nodes: raft.run returns once the last running node shuts down.
        c = new_cluster(3, dir, { snapshot_threshold = 100000 })
        c:run(20000, function()
            c:load(1, 40)
            assert.is_number(c.nodes["node-1"]:snapshot())
            assert(wait_for(function() return c.nodes["node-1"]:status().snapshot_index > 0 end,
                            3000))
            local first = c.nodes["node-1"]:status().snapshot_index
            c:load(41, 20)
            assert(c:converge())
            -- A writer that hangs in the child, killed mid-way (as a crash would).
            local fsm = c.fsms["node-1"]
            local orig = fsm.snapshot
            fsm.snapshot = function(self, w)
                w:write("partial")
                local t = os.clock()
                while os.clock() - t < 30 do end
                return orig(self)
            end
            assert.is_number(c.nodes["node-1"]:snapshot())
            local job = c.nodes["node-1"]._backend._snapshotting
            assert(job and job.handle and job.handle:running())
            raft.sleep(50)
            job.handle:kill()
            assert(wait_for(function() return not c.nodes["node-1"]._backend._snapshotting end,
                            5000))
            fsm.snapshot = orig
            assert.equal(first, c.nodes["node-1"]:status().snapshot_index)
            local files = ls(snap_dir(c, "node-1"))
            assert.equal(1, #files, table.concat(files, " ")) -- no .tmp left behind
            local want = fsm:snapshot()
            c:shutdown("node-1")
            c:start("node-1")
            assert(wait_for(function() return c.fsms["node-1"]:snapshot() == want end, 3000))
            assert.equal(first, c.nodes["node-1"]:status().snapshot_index)
        end)
    end)

    it("falls back to the previous snapshot when the newest file is corrupt", function()
        c = new_cluster(3, dir, { snapshot_threshold = 100000, trailing_logs = 100000 })
        local sdir = snap_dir({ dir = dir }, "node-1")
        c:run(20000, function()
            c:load(1, 30)
            c.nodes["node-1"]:snapshot()
            assert(wait_for(function() return c.nodes["node-1"]:status().snapshot_index > 0 end,
                            3000))
            local old = ls(sdir)[1]
            local old_bytes = read_file(sdir .. "/" .. old)
            c:load(31, 30)
            assert(c:converge())
            c.nodes["node-1"]:snapshot()
            assert(wait_for(function()
                return c.nodes["node-1"]:status().snapshot_index > 40
            end, 3000))
            local want = c.fsms["node-1"]:snapshot()
            c:shutdown("node-1")
            -- Put the older snapshot back beside the newer one, then damage the newer.
            write_file(sdir .. "/" .. old, old_bytes)
            local files = ls(sdir)
            assert.equal(2, #files)
            local newest = sdir .. "/" .. files[2]
            local b = read_file(newest)
            local mid = math.floor(#b / 2)
            write_file(newest, b:sub(1, mid - 1) .. string.char((b:byte(mid) + 1) % 256)
                               .. b:sub(mid + 1))
            c:start("node-1")
            local info = c.nodes["node-1"]._backend._core:recovery_info()
            assert.matches(files[2] .. ": bad checksum", info, 1, true)
            assert.equal(tonumber(old:sub(1, 20)), c.nodes["node-1"]:status().snapshot_index)
            assert(wait_for(function() return c.fsms["node-1"]:snapshot() == want end, 3000),
                   "state after falling back differs")
            -- The damaged file is kept for inspection, never deleted silently.
            assert(read_file(newest))
        end)
    end)
end)

-- Memory is bounded by bytes, not only by entry counts: snapshot_threshold_bytes starts a
-- snapshot from the apply path, trailing_logs_bytes caps what compaction keeps.
describe("snapshots bounded by bytes", function()
    local dir, c
    before_each(function() dir = tmpdir() end)
    after_each(function()
        if c then c:stop() end
        c = nil
        rmrf(dir)
    end)

    local VALUE = string.rep("v", 16 * 1024)
    local ENTRY = #format("set k%d %s", 100, VALUE) -- the payload of an entry below
    -- Counts that never trigger, and a check that never comes within the test.
    local BYTES = { snapshot_threshold = 1000000, snapshot_interval_ms = 600000,
                    trailing_logs = 10240, snapshot_threshold_bytes = 200 * 1024,
                    trailing_logs_bytes = 64 * 1024 }

    local function load_big(cl, from, n)
        local id = cl:wait_leader()
        for i = from, from + n - 1 do
            local index, code = cl.nodes[id]:apply(format("set k%d %s", 100 + i, VALUE), 3000)
            if not index and code == "not_leader" then
                id = cl:wait_leader()
                assert(cl.nodes[id]:apply(format("set k%d %s", 100 + i, VALUE), 3000))
            else
                assert(index, code)
            end
        end
        return id
    end

    it("snapshots by bytes applied, keeps a byte-capped tail, and catches a follower up "
       .. "through InstallSnapshot", function()
        c = new_cluster(3, dir, BYTES)
        c:run(30000, function()
            local l = load_big(c, 1, 5)
            assert(c:converge())
            local st = c.nodes[l]:status()
            -- Each entry's payload is counted while it is held.
            assert(st.log_bytes >= 5 * ENTRY, "log_bytes " .. st.log_bytes)
            assert(st.log_bytes < (st.last_index - st.first_index + 1) * (ENTRY + 64))
            local f = l == "node-1" and "node-2" or "node-1"
            c:shutdown(f)
            -- 60 entries of 16 KiB: about 1 MiB, 5 snapshot_threshold_bytes.
            l = load_big(c, 6, 60)
            assert(wait_for(function()
                local s = c.nodes[l]:status()
                return c.nodes[l]:stats().snapshots.taken >= 2 and s.snapshot_index > 40
            end, 5000), "no snapshot by bytes")
            st = c.nodes[l]:status()
            -- trailing_logs (10240) would keep the whole log; 64 KiB keep 3 entries of
            -- 16 KiB before the snapshot's index.
            local held = st.snapshot_index - st.first_index + 1
            assert(st.first_index > 1 and held <= math.floor(64 * 1024 / ENTRY),
                   format("kept %d entries through the snapshot (first %d, snapshot %d)", held,
                          st.first_index, st.snapshot_index))
            assert(st.log_bytes <= (st.last_index - st.first_index + 1) * (ENTRY + 64))
            -- The follower is far behind the leader's first entry: it gets the snapshot.
            c:start(f)
            assert(c:converge(10000), "the follower did not catch up")
            assert.equal(c.fsms[l]:snapshot(), c.fsms[f]:snapshot())
            assert(c.nodes[f]:stats().snapshots.installed >= 1, "no snapshot installed")
        end)
    end)

    it("staggers the byte trigger: the nodes do not all fork a snapshot at the same entry",
       function()
        c = new_cluster(3, dir, BYTES)
        c:run(30000, function()
            -- 1 KiB entries: node-1 snapshots after 200 KiB of them, node-2 and node-3 after
            -- 1/12 and 2/12 more (about 17 entries each), whatever the loop turns add.
            local small = string.rep("s", 1024)
            local id = c:wait_leader()
            for i = 1, 260 do
                local cmd = format("set s%d %s", i, small)
                local index, code = c.nodes[id]:apply(cmd, 3000)
                if not index and code == "not_leader" then
                    id = c:wait_leader()
                    index, code = c.nodes[id]:apply(cmd, 3000)
                end
                assert(index, code)
            end
            assert(wait_for(function()
                for _, nid in ipairs(c.ids) do
                    if #c.snapshots[nid] == 0 then return false end
                end
                return true
            end, 5000), "a node took no snapshot by bytes")
            local first = {}
            for i, nid in ipairs(c.ids) do first[i] = c.snapshots[nid][1][1] end
            local seen = table.concat(first, ", ")
            assert(first[2] - first[1] >= 8 and first[3] - first[2] >= 8, seen)
        end)
    end)

    it("restarts holding no more trailing bytes than compaction keeps", function()
        c = new_cluster(1, dir, BYTES)
        local id, si = c.ids[1], nil
        -- (The scenario ends with the node shut down. Restarting it inside would not do:
        -- the loop stops once its last node is down, so the rest of the body never ran.)
        c:run(30000, function()
            load_big(c, 1, 30)
            assert(wait_for(function()
                return c.nodes[id]:status().snapshot_index > 20
            end, 5000), "no snapshot by bytes")
            si = c.nodes[id]:status().snapshot_index
        end)
        assert.is_false(c:running(id))
        c:start(id) -- recovery runs in start: its outcome shows at once
        local st = c.nodes[id]:status()
        assert.equal(si, st.snapshot_index)
        -- The restart read from snapshot_index + 1 - trailing_logs (all of the log still on
        -- disk) but keeps only 64 KiB of entries up to the snapshot's index.
        assert(st.first_index > si - math.floor(64 * 1024 / ENTRY),
               format("first %d, snapshot %d", st.first_index, si))
        assert(st.log_bytes <= (st.last_index - st.first_index + 1) * (ENTRY + 64))
    end)
end)
