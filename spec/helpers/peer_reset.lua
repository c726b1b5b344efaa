-- spec/helpers/peer_reset.lua: a child process of spec/node_cluster_spec.lua, started by
-- core.proc_spawn (so SIGPIPE has its default action, whatever the test process has).
--
--   luajit spec/helpers/peer_reset.lua ROUNDS DIR
--
-- Each round: three raft.new nodes; the leader is given large writes, and its followers shut
-- down one by one while they arrive, so that the leader writes to connections the peers
-- have reset. Prints "sigpipe ignored" or "sigpipe default" once the loop exists, then
-- "survived" at the end; a SIGPIPE that kills the process ends it before that line.

local raft = require("helios.raft")
local core = require("helios.core")
local nh = require("spec.helpers.node")

local rounds, base = tonumber(arg[1]), arg[2]

local function sigpipe_ignored()
    for line in io.lines("/proc/self/status") do
        local mask = line:match("^SigIgn:%s*(%x+)")
        if mask then
            -- SIGPIPE is signal 13: bit 12 of the mask, the lowest bit of its fourth hex
            -- digit from the right.
            return tonumber(mask:sub(-4, -4), 16) % 2 == 1
        end
    end
    return false
end

local function fsm()
    return { apply = function() return "" end, snapshot = function() return "" end,
             restore = function() end }
end

for r = 1, rounds do
    local dir = base .. "/round-" .. r
    assert(core.mkdir_p(dir, tonumber("755", 8)))
    local c = { ids = {}, nodes = {}, peers = {} }
    for i = 1, 3 do
        c.ids[i] = "node-" .. i
        c.peers[c.ids[i]] = "127.0.0.1:" .. core.free_port()
    end
    for _, id in ipairs(c.ids) do
        c.nodes[id] = raft.new({ id = id, peers = c.peers, data_dir = dir .. "/" .. id,
                                 fsm = fsm(), secret = "s", election_timeout_ms = 150,
                                 heartbeat_timeout_ms = 5 })
        assert(c.nodes[id]:start())
    end
    if r == 1 then print(sigpipe_ignored() and "sigpipe ignored" or "sigpipe default") end
    local ok, err = nh.run_scenario(c, 20000, function()
        assert(nh.wait_for(function() return nh.leader_of(c) ~= nil end, 5000), "no leader")
        local leader = nh.leader_of(c)
        local big = string.rep("x", 20000)
        for _ = 1, 50 do
            raft.spawn(function() c.nodes[leader]:apply(big, 1000) end)
        end
        for _, id in ipairs(c.ids) do
            if id ~= leader then
                c.nodes[id]:shutdown()
                raft.sleep(3)
            end
        end
        raft.sleep(20)
    end)
    nh.stop_all(c)
    assert(ok, err)
end
print("survived")
io.stdout:flush()
