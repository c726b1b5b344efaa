-- atlas_node_spec.lua: ATLAS end to end on three networked nodes (atlas.open = raft.new +
-- start + atlas.new) in one process on loopback: the store API blocking in coroutines on
-- the loop, linearizable reads on a follower, stale reads, user commands, TTL expiry and
-- the leader's purge timer, reads judged at the leader's clock with no write since a TTL
-- passed, a snapshot written by the forked writer.
--
-- Every wait has a deadline (wait_for, run_scenario).

local atlas = require("helios.atlas")
local core = require("helios.core")
local nh = require("spec.helpers.node")

local tmpdir, rmrf, wait_for = nh.tmpdir, nh.rmrf, nh.wait_for
local SECRET = "atlas spec secret"

atlas.command("spec_node_swap", function(store, args)
    local a, b = store:get(args[1]), store:get(args[2])
    if a == nil or b == nil then error("both keys must exist") end
    store:set(args[1], b)
    store:set(args[2], a)
    return true
end)

local function open_cluster(dir, peers, purge_interval_ms)
    if purge_interval_ms == nil then purge_interval_ms = 50 end
    local c = { ids = {}, nodes = {}, stores = {} }
    if not peers then
        peers = {}
        for i = 1, 3 do peers["node-" .. i] = "127.0.0.1:" .. core.free_port() end
    end
    c.peers = peers
    for i = 1, 3 do
        local id = "node-" .. i
        local store = assert(atlas.open{ id = id, peers = peers, data_dir = dir .. "/" .. id,
                                         -- Three nodes share this process's loop: an
                                         -- fsync or a fork that stalls it past a short
                                         -- election timeout would elect a new leader
                                         -- in the middle of the spec's writes.
                                         secret = SECRET, election_timeout_ms = 1000,
                                         heartbeat_timeout_ms = 100, snapshot_threshold = 50,
                                         snapshot_interval_ms = 100,
                                         atlas = { timeout_ms = 3000,
                                                   purge_interval_ms = purge_interval_ms } })
        c.ids[i], c.nodes[id], c.stores[id] = id, store.node, store
    end
    return c
end

describe("atlas on networked nodes", function()
    local dir, c
    before_each(function() dir = tmpdir() end)
    after_each(function()
        if c then
            for _, id in ipairs(c.ids) do c.stores[id]:close() end
            nh.stop_all(c)
        end
        rmrf(dir)
    end)

    it("serves the store API end to end, purging expired keys on every replica", function()
        c = open_cluster(dir)
        local ok, err = nh.run_scenario(c, 40000, function()
            local lid
            assert(wait_for(function() lid = nh.leader_of(c) return lid ~= nil end, 5000))
            local s = c.stores[lid]
            local fid = c.ids[1] == lid and c.ids[2] or c.ids[1]
            local f = c.stores[fid]

            assert.is_true(s:set("greeting", "hello"))
            assert.is_false(s:set("greeting", "x", nil, { nx = true }))
            assert.is_true(s:set("greeting", "hi", nil, { xx = true }))
            assert.are.equal("hi", s:get("greeting"))
            assert.are.equal("hi", f:get("greeting"))          -- linearizable, on a follower
            assert(wait_for(function() return f:get("greeting", { stale = true }) == "hi" end,
                            3000))
            assert.are.equal(5, s:incr("n", 5))
            assert.are.equal(4, s:incr("n", -1))
            assert.is_true(s:cas("greeting", "hi", "hey"))
            assert.is_false(s:cas("greeting", "hi", "ho"))
            assert.is_true(s:mset({ ["u:1"] = "ann", ["u:2"] = "bob", ["u:3"] = "cy" }))
            assert.are.same({ "u:1", "u:2" }, s:keys("u:", 2))
            assert.are.same({ n = 3, "ann", nil, "cy" }, f:mget({ "u:1", "nope", "u:3" }))
            assert.is_true(s:exists("u:2"))
            assert.is_true(s:delete("u:2"))
            assert.is_false(f:exists("u:2"))
            assert.are.equal(-1, s:ttl("u:1"))
            assert.are.equal(-2, s:ttl("u:2"))
            assert.is_true(s:call("spec_node_swap", { "u:1", "u:3" }))
            assert.are.equal("ann", f:get("u:3"))
            local r, code, detail = s:call("spec_node_swap", { "u:1", "u:2" })
            assert.is_nil(r)
            assert.are.equal("command_error", code)
            assert.matches("both keys must exist", detail, 1, true)
            assert.are.equal("cy", s:get("u:1"))
            r, code = f:set("z", "1")
            assert.is_nil(r)
            assert.are.equal("not_leader", code)
            -- a session's writes are numbered; a retry answers the first result
            local sess = assert(s:session())
            assert.are.equal(2, sess:incr("visits", 2))
            assert.are.equal(2, sess:retry())
            assert.are.equal(2, sess:retry(s))
            assert.are.equal("2", f:get("visits"))
            assert.is_true(sess:set("visits", "10"))
            assert.are.equal("10", sess:get("visits"))

            -- TTL: gone for reads once the log's time passes it; then purged everywhere
            assert.is_true(s:set("short", "v", 300))
            assert.is_true(s:set("long", "v", 600000))
            local t = s:ttl("short")
            assert.is_true(t > 0 and t <= 300, tostring(t))
            assert.is_true(s:expire("long", false))
            assert(wait_for(function()
                s:incr("clock")                              -- moves the log's time on
                return s:get("short") == nil
            end, 5000), "the key never expired")
            assert(wait_for(function()
                for _, id in ipairs(c.ids) do
                    if c.stores[id].node:read_stale(function(fsm)
                        return fsm:held("short") ~= nil
                    end) then return false end
                end
                return true
            end, 5000), "not purged on every replica")
            assert.are.equal("v", f:get("long"))

            -- enough writes for a snapshot (the forked writer with w:write)
            local snapped = false
            s.node:on("snapshot", function() snapped = true end)
            for i = 1, 60 do assert(s:set("bulk:" .. i, ("x"):rep(i), 100000)) end
            assert(wait_for(function() return snapped end, 10000), "no snapshot")
        end)
        assert(ok, err)
    end)

    it("judges linearizable reads at the leader's clock when nothing is written", function()
        c = open_cluster(dir, nil, false) -- no purge timer: no write unless the spec writes
        local ok, err = nh.run_scenario(c, 40000, function()
            local lid
            assert(wait_for(function() lid = nh.leader_of(c) return lid ~= nil end, 5000))
            local s = c.stores[lid]
            local fid = c.ids[1] == lid and c.ids[2] or c.ids[1]
            local f = c.stores[fid]
            assert.is_true(s:set("short", "v", 300))
            assert.is_true(s:set("keep", "k"))
            assert.are.equal("v", f:get("short"))
            -- only the clocks move on: the leader's answers, then a follower's, drop the key
            assert(wait_for(function() return s:get("short") == nil end, 5000),
                   "a linearizable read on the leader still sees the key")
            assert.is_nil(f:get("short"))
            assert.is_false(f:exists("short"))
            assert.are.equal(-2, f:ttl("short"))
            assert.are.same({ "keep" }, f:keys())
            -- while the applied state, judged at its newest stamp, still holds it
            assert.are.equal("v", s:get("short", { stale = true }))
            assert.are.equal("v", f:get("short", { stale = true }))
            local t = f.node:read(function(_, ctx) return ctx.time_ms end, 3000)
            assert.is_number(t)
        end)
        assert(ok, err)
    end)

    it("restores the store, TTLs and sessions, from its snapshot after a restart", function()
        c = open_cluster(dir)
        local session
        local ok, err = nh.run_scenario(c, 40000, function()
            local lid
            assert(wait_for(function() lid = nh.leader_of(c) return lid ~= nil end, 5000))
            local s = c.stores[lid]
            local _, _, sid = s.node:apply(atlas.encode.register(), 3000)
            session = sid
            assert.are.equal(3, select(3, s.node:apply(
                atlas.numbered(atlas.encode.incr("once", 3), session, 1), 3000)))
            local snapped = 0
            for _, id in ipairs(c.ids) do
                c.nodes[id]:on("snapshot", function() snapped = snapped + 1 end)
            end
            for i = 1, 60 do assert(s:set("k:" .. i, "v" .. i, 600000)) end
            assert(wait_for(function() return snapped >= 3 end, 10000), "no snapshots")
        end)
        assert(ok, err)
        for _, id in ipairs(c.ids) do c.stores[id]:close() end
        nh.stop_all(c)
        c = open_cluster(dir, c.peers)
        ok, err = nh.run_scenario(c, 40000, function()
            local lid
            assert(wait_for(function() lid = nh.leader_of(c) return lid ~= nil end, 5000))
            local s = c.stores[lid]
            assert.are.equal("v60", s:get("k:60"))
            local t = s:ttl("k:1")
            assert.is_true(t > 500000 and t <= 600000, tostring(t))
            -- the retried write is answered from the session, not applied again
            assert.are.equal(3, select(3, s.node:apply(
                atlas.numbered(atlas.encode.incr("once", 3), session, 1), 3000)))
            assert.are.equal("3", s:get("once"))
        end)
        assert(ok, err)
    end)
end)
