-- cluster_snapshot_spec.lua: snapshots and compaction in a real 3-node cluster, one process
-- per node on loopback (helios.testing): snapshots under load, a SIGKILLed follower that
-- missed a compacted range rejoins through InstallSnapshot, and the data dirs stay bounded.
--
-- Every wait has a deadline; a failing spec shows the nodes' logs and the cluster is
-- stopped also when it fails.

local testing = require("helios.testing")

local format = string.format

local function du(path)
    local p = io.popen(format("du -sb '%s' 2>/dev/null", path))
    local n = tonumber((p:read("*l") or ""):match("^(%d+)"))
    p:close()
    return n or 0
end

-- Overwrite `keys` keys with values of `size` bytes, n times: the log grows by n entries,
-- the FSM's state stays keys * size.
local function churn(cl, from, n, keys, size)
    local cc = cl:client()
    local pad = string.rep("x", size)
    local last
    for i = from, from + n - 1 do
        local index, code, detail = cc:apply(format("set k%d %d%s", i % keys, i, pad), 10000)
        assert(index, format("apply %d: %s %s", i, tostring(code), tostring(detail)))
        last = index
    end
    return last
end

describe("a 3-node cluster with snapshots (processes)", function()
    it("snapshots under load, rejoins a killed follower through InstallSnapshot, and "
       .. "keeps the data dirs bounded", function()
        local N, KEYS, SIZE = 1400, 8, 32 * 1024
        testing.with_cluster({ n = 3, fsm = "helios.fsm.kv",
                               config = { snapshot_interval_ms = 100, snapshot_threshold = 200,
                                          trailing_logs = 50,
                                          snapshot_chunk_bytes = 64 * 1024 } }, function(cl)
            local leader = cl:leader()
            churn(cl, 1, 100, KEYS, SIZE)
            local follower = leader == "node-1" and "node-2" or "node-1"
            local fst = assert(cl:status(follower))
            cl:kill(follower, "KILL")

            local last = churn(cl, 101, N - 100, KEYS, SIZE)
            leader = cl:leader()
            local lst = cl:wait(function()
                local st = cl:status(leader)
                return st and st.first_index > fst.last_index + 1 and st
            end, 10000, "the leader to compact past the follower's log")
            assert(lst.snapshot_index > fst.last_index)

            cl:start(follower)
            cl:wait_applied(last, 20000)
            local stats = cl:client():node(follower):stats()
            assert(stats.snapshots.installed >= 1, "the follower did not install a snapshot")
            assert(stats.snapshots.chunks_received > 1, "the snapshot did not come in chunks")
            local st = assert(cl:status(follower))
            assert(st.snapshot_index >= lst.snapshot_index)

            -- On demand through the control socket.
            local r = assert(cl:client():node(follower):call("snapshot"))
            assert(r.index >= st.snapshot_index)

            -- Every node answers the same for every key (reads go through the log).
            local cc = cl:client()
            for k = 0, KEYS - 1 do
                local index, _, value = cc:apply(format("get k%d", k), 10000)
                assert(index and value and #value > SIZE, "key k" .. k)
            end

            -- Bounded: without compaction each log would hold every entry.
            local uncompacted = N * (36 + SIZE)
            for _, id in ipairs(cl:ids()) do
                local size = du(cl:data_dir(id))
                assert(size < uncompacted / 2,
                       format("%s: %d bytes on disk, %d without compaction", id, size,
                              uncompacted))
            end
        end)
    end)
end)
