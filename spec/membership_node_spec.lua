-- membership_node_spec.lua: the node API of membership, reads and transfers on networked
-- nodes (raft.new) in one process on the real loop: add_peer before start forms a
-- cluster (and is refused on a node that has a log); in a coroutine on the loop,
-- node:add_peer / remove_peer / read / transfer_leadership block and return their outcome;
-- a node made with join = true is added; status() shows the configuration.
--
-- Every wait has a deadline (wait_for, run_scenario).

local raft = require("helios.raft")
local core = require("helios.core")
local kv = require("helios.fsm.kv")
local nh = require("spec.helpers.node")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local tmpdir, rmrf, wait_for = nh.tmpdir, nh.rmrf, nh.wait_for
local FAST = { election_timeout_ms = 150, heartbeat_timeout_ms = 30 }
local SECRET = "membership spec secret"

local function new_node(c, id, peers, extra)
    local opts = { id = id, peers = peers, data_dir = c.dir .. "/" .. id, fsm = kv.new(),
                   secret = SECRET }
    for k, v in each(FAST) do opts[k] = v end
    for k, v in each(extra or {}) do opts[k] = v end
    c.fsms[id] = opts.fsm
    c.nodes[id] = raft.new(opts)
    if not c.addrs[id] then c.ids[#c.ids + 1] = id end
    c.addrs[id] = opts.listen or peers[id]
    return c.nodes[id]
end

local function new_cluster(dir)
    return { dir = dir, ids = {}, nodes = {}, fsms = {}, addrs = {} }
end

local function wait_leader(c, ms)
    local leader
    assert(wait_for(function()
        leader = nh.leader_of(c)
        return leader ~= nil
    end, ms or 5000), "no leader")
    return leader, c.nodes[leader]
end

local function sorted(t)
    local s = {}
    for _, v in ipairs(t) do s[#s + 1] = v end
    table.sort(s)
    return table.concat(s, ",")
end

describe("membership on networked nodes (raft.new)", function()
    local dir, c
    before_each(function()
        dir = tmpdir()
        c = new_cluster(dir)
    end)
    after_each(function()
        nh.stop_all(c)
        rmrf(dir)
    end)

    it("forms a cluster by add_peer before start; refuses that on a node with a log", function()
        local addrs = {}
        for i = 1, 3 do addrs["node-" .. i] = "127.0.0.1:" .. core.free_port() end
        for i = 1, 3 do
            local id = "node-" .. i
            local node = new_node(c, id, { [id] = addrs[id] })
            for j = 1, 3 do
                local other = "node-" .. j
                if other ~= id then
                    assert.is_true(node:add_peer(other, addrs[other]))
                end
            end
            assert.are.equal("node-1,node-2,node-3", sorted(node:status().peers
                and (function() local t = {} for k in each(node:status().peers) do
                    t[#t + 1] = k end return t end)()))
        end
        for _, id in ipairs(c.ids) do assert(c.nodes[id]:start()) end
        local ok, err = nh.run_scenario(c, 20000, function()
            local _, leader = wait_leader(c)
            local index, term = leader:apply("set k v", 3000)
            assert(index, term)
            local conf = leader:configuration()
            assert.are.equal("node-1,node-2,node-3", sorted(conf.voters))
            assert.are.equal(0, #conf.learners)
        end)
        assert(ok, err)
        -- Once the node has a log, add_peer before start says so (and changes nothing).
        local again = new_node(c, "node-1", { ["node-1"] = addrs["node-1"] })
        local r, code, detail = again:add_peer("node-9", "127.0.0.1:1")
        assert.is_nil(r)
        assert.are.equal("invalid", code)
        assert.matches("already has a log", detail, 1, true)
        again:shutdown()
    end)

    it("blocks on add_peer, read, transfer_leadership and remove_peer in a coroutine", function()
        local peers = {}
        for i = 1, 3 do peers["node-" .. i] = "127.0.0.1:" .. core.free_port() end
        for i = 1, 3 do assert(new_node(c, "node-" .. i, peers):start()) end
        local ok, err = nh.run_scenario(c, 40000, function()
            local lid, leader = wait_leader(c)
            for i = 1, 20 do assert(leader:apply("set k" .. i .. " v" .. i, 3000)) end

            -- Reads: on the leader, and on a follower (asks the leader for its read index):
            -- every write acknowledged before the read is seen.
            assert.are.equal("v20", leader:read(function(fsm) return fsm:get("k20") end, 3000))
            local fid
            for _, id in ipairs(c.ids) do if id ~= lid then fid = id break end end
            local follower = c.nodes[fid]
            assert(leader:apply("set fresh yes", 3000))
            assert.are.equal("yes", follower:read(function(fsm) return fsm:get("fresh") end, 3000))
            -- read_stale runs at once on local state; fn's error is read_error.
            assert.are.equal("v1", follower:read_stale(function(fsm) return fsm:get("k1") end))
            local r, code, detail = leader:read(function() error("boom") end, 3000)
            assert.is_nil(r)
            assert.are.equal("read_error", code)
            assert.matches("boom", detail, 1, true)
            -- The callback form still works on a networked node.
            local got
            leader:read(function(fsm) return fsm:get("k2") end, 3000, function(v) got = v end)
            assert(wait_for(function() return got ~= nil end, 3000))
            assert.are.equal("v2", got)

            -- A node made with join = true waits in no configuration until added.
            local jaddr = "127.0.0.1:" .. core.free_port()
            local joiner = new_node(c, "node-4", peers, { join = true, listen = jaddr })
            assert(joiner:start())
            assert.are.equal(0, #(joiner:configuration() or { voters = {} }).voters)
            r, code, detail = follower:add_peer("node-4", jaddr, { timeout_ms = 5000 })
            assert.is_nil(r)
            assert.are.equal("not_leader", code)
            assert.matches(lid, detail, 1, true)
            local added
            assert(wait_for(function()
                r, code, detail = leader:add_peer("node-4", jaddr, { timeout_ms = 10000 })
                if r == nil and code == "busy" then return false end
                added = true
                return true
            end, 5000))
            assert(added and r, tostring(code) .. " " .. tostring(detail))
            local st = leader:status()
            assert.are.equal("node-1,node-2,node-3,node-4", sorted(st.configuration.voters))
            assert.is_true(st.configuration.committed)
            assert.are.equal(jaddr, st.peers["node-4"].addr)
            assert.is_true(st.peers["node-4"].voter)
            assert(wait_for(function()
                return leader:status().peers["node-4"].caught_up
            end, 5000), "node-4 never caught up")
            assert.are.equal("v20", joiner:read(function(fsm) return fsm:get("k20") end, 3000))

            -- Transfer to node-4 (the newest voter): it leads, and commits.
            local new_leader, tcode, tdetail = leader:transfer_leadership("node-4")
            assert.are.equal("node-4", new_leader, tostring(tcode) .. " " .. tostring(tdetail))
            assert(wait_for(function() return nh.leader_of(c) == "node-4" end, 3000))
            local index = assert(joiner:apply("set after transfer", 3000))
            assert.is_true(index > 0)
            -- The old leader is not the leader any more.
            r, code = leader:transfer_leadership()
            assert.is_nil(r)
            assert.are.equal("not_leader", code)

            -- Remove the old leader from the new one: it learns it is out.
            assert.is_true(joiner:remove_peer(lid, { timeout_ms = 10000 }))
            assert(wait_for(function() return leader:status().role == "removed" end, 5000),
                   lid .. " never learned it was removed")
            assert.is_true(leader:status().removed)
            assert(joiner:apply("set without " .. lid, 3000))
            assert.are.equal(3, #joiner:configuration().voters)
            -- With no target the leader picks the most up-to-date voter.
            local picked = joiner:transfer_leadership()
            assert.is_string(picked)
            assert.are_not.equal("node-4", picked)
            assert.are_not.equal(lid, picked)
        end)
        assert(ok, err)
    end)
end)
