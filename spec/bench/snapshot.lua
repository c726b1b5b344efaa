-- spec/bench/snapshot.lua: the snapshot figures of `make bench`.
--
--   luajit spec/bench/snapshot.lua [keys]
--
-- An in-process 3-node cluster (raft.new: real TCP on loopback, real data dirs, one loop)
-- whose leader's FSM (helios.fsm.kv) holds `keys` (1,000,000) ATLAS-sized entries: short
-- string keys and values in one Lua table.
-- 1. Time to snapshot them (forked writer: fork time, time until the file is durable), and
--    the longest gap between messages a follower received from the leader meanwhile
--    (heartbeats every 30 ms); the same with the in-process writer (snapshot_fork = false),
--    which shows the stall the fork avoids.
-- 2. Time to restore them (read the file, fsm:restore).
-- 3. InstallSnapshot throughput on loopback: a follower that missed the compacted range
--    restarts and receives the snapshot in 256 KiB chunks.
-- Figures, not assertions.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local raft = require("helios.raft")
local core = require("helios.core")
local kv = require("helios.fsm.kv")

local format = string.format
local KEYS = tonumber(arg[1] or os.getenv("HELIOS_BENCH_KEYS") or "1000000")

local ffi = require("ffi")
ffi.cdef [[
    struct hr_snapbench_timespec { long tv_sec; long tv_nsec; };
    int clock_gettime(int clk, struct hr_snapbench_timespec *ts);
]]
local ts = ffi.new("struct hr_snapbench_timespec")
local function now_ms()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1e3 + tonumber(ts.tv_nsec) / 1e6
end

local root = assert(io.popen("mktemp -d /tmp/helios-snapbench.XXXXXX")):read("*l")

local ids, peers, nodes, fsms = { "node-1", "node-2", "node-3" }, {}, {}, {}
for _, id in ipairs(ids) do peers[id] = "127.0.0.1:" .. core.free_port() end

local function start(id, fsm)
    fsms[id] = fsm or kv.new()
    nodes[id] = raft.new{ id = id, peers = peers, data_dir = root .. "/" .. id, fsm = fsms[id],
                          secret = "bench", election_timeout_ms = 300,
                          heartbeat_timeout_ms = 30, snapshot_threshold = 1e9,
                          snapshot_interval_ms = 3600000, trailing_logs = 10 }
    assert(nodes[id]:start())
    return nodes[id]
end

local function leader()
    for _, id in ipairs(ids) do
        local n = nodes[id]
        if n._backend._state == "running" and select(2, n:state()) then return id end
    end
end

local function wait(pred, ms)
    local deadline = raft.now() + ms
    while not pred() do
        if raft.now() > deadline then error("bench: timed out") end
        raft.sleep(5)
    end
end

-- The longest interval between messages received by follower id while fn() runs.
local function watch_gaps(id)
    local last_count, last_t, max_gap = nil, now_ms(), 0
    local timer = raft.every(1, function()
        local st = nodes[id]:stats()
        local t = now_ms()
        if st and st.msgs_received ~= last_count then
            if last_count then max_gap = math.max(max_gap, t - last_t) end
            last_count, last_t = st.msgs_received, t
        end
    end)
    return function()
        timer:stop()
        return math.max(max_gap, now_ms() - last_t)
    end
end

local function fill(fsm, n)
    local data = {}
    for i = 1, n do
        data[format("user:%07d", i)] = format("v%07d", i)
    end
    fsm.data, fsm.nkeys = data, n
end

local results = {}

local function snapshot_once(lid, follower, forked)
    fsms[lid].snapshot_fork = forked
    local done_t
    local fn = nodes[lid]:on("snapshot", function() done_t = now_ms() end)
    assert(nodes[lid]:apply(format("set marker %s", tostring(forked))))
    local gaps = watch_gaps(follower)
    raft.sleep(200) -- a baseline of ordinary heartbeats first
    local t0 = now_ms()
    assert(nodes[lid]:snapshot())
    local job = nodes[lid]._backend._snapshotting
    wait(function() return done_t ~= nil end, 120000)
    raft.sleep(100)
    local gap = gaps()
    nodes[lid]:off("snapshot", fn)
    return done_t - t0, gap, job and job.handle and job.handle:fork_ms() or 0
end

raft.spawn(function()
    for _, id in ipairs(ids) do start(id) end
    wait(function() return leader() end, 5000)
    local lid = leader()
    local follower, lagger
    for _, id in ipairs(ids) do
        if id ~= lid then
            if follower then lagger = id else follower = id end
        end
    end
    for i = 1, 20 do assert(nodes[lid]:apply("set warm " .. i)) end
    local t_fill = now_ms()
    fill(fsms[lid], KEYS)
    results.fill_ms = now_ms() - t_fill
    -- The lagging follower misses what the snapshot compacts.
    local stopped = false
    nodes[lagger]:shutdown(function() stopped = true end)
    wait(function() return stopped end, 5000)
    for i = 1, 50 do assert(nodes[lid]:apply("set gone " .. i)) end

    results.sync_ms, results.sync_gap = snapshot_once(lid, follower, false)
    results.fork_ms, results.fork_gap, results.fork_only_ms = snapshot_once(lid, follower, true)
    results.size = nodes[lid]:status().snapshot_size
    results.elections = nodes[follower]:stats().elections

    local t0 = now_ms()
    local payload = assert(nodes[lid]._backend._core:snapshot_read())
    results.read_ms = now_ms() - t0
    local f = kv.new()
    t0 = now_ms()
    f:restore(payload)
    results.restore_ms = now_ms() - t0
    assert(f.count == KEYS + 2, "restored " .. f.count)
    payload, f = nil, nil
    collectgarbage()

    -- InstallSnapshot: the lagging follower comes back.
    local lf = kv.new()
    local t_restore
    local orig = lf.restore
    lf.restore = function(self, bytes)
        t_restore = now_ms()
        return orig(self, bytes)
    end
    t0 = now_ms()
    start(lagger, lf)
    wait(function() return t_restore ~= nil end, 120000)
    results.xfer_ms = t_restore - t0
    local st = nodes[lid]:stats().snapshots
    results.chunks, results.resumes = st.chunks_sent, st.resumes
    wait(function() return nodes[lagger]:status().applied_index >= nodes[lid]:status().applied_index end, 60000)
    assert(lf.count == KEYS + 2)
    for _, id in ipairs(ids) do nodes[id]:shutdown() end
end)

local ok, err = raft.run()
os.execute("rm -rf '" .. root .. "'")
if not ok then
    io.stderr:write("snapshot bench failed: ", tostring(err), "\n")
    os.exit(1)
end
local mb = results.size / 1048576
print(format("snapshot: %d ATLAS-sized keys (kv FSM), file %.1f MB (filling the table: %.0f ms)",
             KEYS, mb, results.fill_ms))
print(format("  forked writer:     %6.0f ms until durable (fork %.1f ms); longest gap between "
             .. "messages at a follower: %.0f ms", results.fork_ms, results.fork_only_ms,
             results.fork_gap))
print(format("  in-process writer: %6.0f ms until durable; longest gap at a follower: %.0f ms "
             .. "(the stall the fork avoids)", results.sync_ms, results.sync_gap))
print(format("  follower elections during both: %d", results.elections))
print(format("restore: %.0f ms (read %.0f ms + fsm:restore %.0f ms)",
             results.read_ms + results.restore_ms, results.read_ms, results.restore_ms))
print(format("InstallSnapshot on loopback: %.1f MB in %.0f ms = %.0f MB/s (%d chunks sent, "
             .. "%d resumes)", mb, results.xfer_ms, mb / (results.xfer_ms / 1000),
             results.chunks, results.resumes))
