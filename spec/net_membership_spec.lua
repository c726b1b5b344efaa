-- spec/net_membership_spec.lua: membership changes, reads and transfers of the production
-- node through its binding (core.node_new's methods add_peer, remove_peer, configuration,
-- read_index and the read hook, transfer, transferee, the join option, status().removed),
-- with networked nodes in one process on the real loop (real TCP on 127.0.0.1, real data
-- dirs). The Lua API above it (node:add_peer, node:read...) has its own specs.
--
-- Three nodes come from raft.new; the node that joins is a bare core.node_new with its own
-- hooks, so that the spec sees exactly what the binding hands up.

local raft = require("helios.raft")
local core = require("helios.core")
local kv = require("helios.fsm.kv")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local nh = require("spec.helpers.node")

local format = string.format
local tmpdir, rmrf, wait_for = nh.tmpdir, nh.rmrf, nh.wait_for
local stop_cluster, run_scenario, leader_of = nh.stop_all, nh.run_scenario, nh.leader_of

local FAST = { election_timeout_ms = 150, heartbeat_timeout_ms = 30 }
local SECRET = "test secret"

local function counting_fsm()
    local f = { n = 0, log = {} }
    function f:apply(cmd, index)
        self.n = self.n + 1
        self.log[#self.log + 1] = { index, cmd }
        return index
    end
    function f:snapshot() return "" end
    function f:restore() end
    return f
end

local function start_node(c, id, dir, extra, fsm)
    c.fsms[id] = fsm or counting_fsm()
    local opts = { id = id, peers = c.peers, data_dir = dir .. "/" .. id, fsm = c.fsms[id],
                   secret = SECRET }
    for k, v in each(FAST) do opts[k] = v end
    for k, v in each(extra or {}) do opts[k] = v end
    c.nodes[id] = raft.new(opts)
    assert(c.nodes[id]:start())
end

local function new_cluster(n, dir, extra, new_fsm)
    local c = { ids = {}, nodes = {}, fsms = {}, peers = {} }
    for i = 1, n do
        local id = "node-" .. i
        c.ids[i] = id
        c.peers[id] = "127.0.0.1:" .. core.free_port()
    end
    for _, id in ipairs(c.ids) do start_node(c, id, dir, extra, new_fsm and new_fsm()) end
    return c
end

local function core_of(node)
    return node._backend._core
end

-- A bare node that joins: it records what its hooks receive.
local function joiner(dir, name, peers, data_dir)
    local j = { applied = {}, reads = {}, states = {}, name = name,
                addr = "127.0.0.1:" .. core.free_port() }
    local hooks = {
        apply = function(index, _, etype, cmd)
            if etype == "command" then j.applied[#j.applied + 1] = { index, cmd } end
            j.last_applied = index
        end,
        state = function(role, term, leader)
            j.states[#j.states + 1] = { role, term, leader }
        end,
        restore = function(index)
            j.restored = index
            j.last_applied = index
        end,
        read = function(ctx, code, index)
            j.reads[ctx] = { code = code, index = index, applied = j.last_applied or 0 }
        end,
    }
    j.node = core.node_new({ id = name, listen = j.addr, peers = peers, join = true,
                             data_dir = data_dir or dir .. "/" .. name, secret = SECRET,
                             config = FAST },
                           hooks)
    return j
end

local function conf_has(conf, name, voter)
    for _, s in ipairs(conf and conf.servers or {}) do
        if s.id == name then return voter == nil or s.voter == voter, s end
    end
    return false
end

-- A new leader refuses changes (busy) until an entry of its term has committed.
local function add_peer(cn, ...)
    local index, code, msg
    local args = { ... }
    assert(wait_for(function()
        index, code, msg = cn:add_peer(unpack(args))
        return code ~= "busy"
    end, 5000), "add_peer: still busy")
    return index, code, msg
end

local function wait_leader(c)
    assert(wait_for(function() return leader_of(c) ~= nil end, 5000), "no leader elected")
    return leader_of(c)
end

-- Apply cmd on whichever node leads now: with 150 ms election timeouts a loaded machine
-- (ASan, CI) may change leaders in the middle of a batch of writes, and a write that was
-- refused with not_leader is tried again on the new leader.
local function apply_on_leader(c, cmd)
    local index, code, detail
    assert(wait_for(function()
        local leader = leader_of(c)
        if leader == nil then return false end
        index, code, detail = c.nodes[leader]:apply(cmd)
        return index ~= nil or code ~= "not_leader"
    end, 10000), "no leader took " .. cmd)
    assert(index, format("apply %s: %s %s", cmd, tostring(code), tostring(detail)))
    return index
end

describe("production node membership (binding)", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() rmrf(dir) end)

    -- A cluster of n nodes (new_cluster's extra) and node-4 waiting to join, not started;
    -- both are stopped when the test ends, also when it fails.
    local function cluster_and_joiner(n, extra)
        local c = new_cluster(n, dir, extra)
        local j = joiner(dir, "node-4", c.peers)
        finally(function()
            if j.node:status() then j.node:shutdown() end
            stop_cluster(c)
        end)
        return c, j
    end

    it("shows the bootstrap configuration with addresses", function()
        local c = new_cluster(3, dir)
        finally(function() stop_cluster(c) end)
        assert(run_scenario(c, 10000, function()
            local leader = wait_leader(c)
            for _, id in ipairs(c.ids) do
                local conf = core_of(c.nodes[id]):configuration()
                assert.are.equal(0, conf.index)
                assert.is_true(conf.committed)
                assert.are.equal(3, #conf.servers)
                for _, s in ipairs(conf.servers) do
                    assert.are.equal(c.peers[s.id], s.addr)
                    assert.is_true(s.voter)
                end
            end
            local conf = core_of(c.nodes[leader]):configuration()
            local _, me = conf_has(conf, leader)
            assert.is_true(me.caught_up)
            assert.is_nil(core_of(c.nodes[leader]):status().removed)
            -- On a follower: not_leader, naming the leader.
            local follower = c.ids[1] == leader and c.ids[2] or c.ids[1]
            assert(wait_for(function()
                return core_of(c.nodes[follower]):status().leader == leader
            end, 5000))
            local idx, code, msg = core_of(c.nodes[follower]):add_peer("node-9", "127.0.0.1:1")
            assert.is_nil(idx)
            assert.are.equal("not_leader", code)
            assert.truthy(msg:find(leader, 1, true), msg)
            local _, bad = core_of(c.nodes[leader]):add_peer("node-9", "not an address")
            assert.are.equal("invalid", bad)
            -- Transfers: an unknown target is invalid; with none, the core picks a voter
            -- and it takes over.
            local lc = core_of(c.nodes[leader])
            local _, tcode = lc:transfer("node-9")
            assert.are.equal("invalid", tcode)
            local _, fcode = core_of(c.nodes[follower]):transfer()
            assert.are.equal("not_leader", fcode)
            assert(lc:transfer())
            assert.is_string(lc:transferee())
            assert(wait_for(function()
                local now = leader_of(c)
                return now ~= nil and now ~= leader
            end, 5000), "nobody took over")
            assert(wait_for(function() return lc:transferee() == nil end, 5000))
        end))
    end)

    it("adds a node started with join, serves read_index on it, transfers to it, "
       .. "removes another", function()
        local c, j = cluster_and_joiner(3)
        assert(j.node:start())
        local ok, err = run_scenario(c, 30000, function()
            local leader = wait_leader(c)
            local lc = core_of(c.nodes[leader])
            for i = 1, 20 do assert(c.nodes[leader]:apply("cmd" .. i)) end
            -- Waiting: no configuration of its own, never campaigns.
            local jconf = j.node:configuration()
            assert.are.equal(0, #jconf.servers)
            assert.are.equal("follower", (j.node:state()))
            assert.is_nil(j.node:status().removed)

            local index, code, msg = add_peer(lc, "node-4", j.addr)
            assert(index, format("add_peer: %s %s", tostring(code), tostring(msg)))
            assert(index > 0)
            -- A learner first, promoted once caught up; every node learns its address.
            assert(wait_for(function()
                local conf = lc:configuration()
                return conf_has(conf, "node-4", true) and conf.committed
                    and conf.promoting == nil
            end, 10000), "node-4 was not promoted")
            assert(wait_for(function()
                return conf_has(j.node:configuration(), "node-4", true)
            end, 5000))
            local _, s4 = conf_has(j.node:configuration(), "node-4")
            assert.are.equal(j.addr, s4.addr)
            for _, id in ipairs(c.ids) do
                assert(wait_for(function()
                    return conf_has(core_of(c.nodes[id]):configuration(), "node-4", true)
                end, 5000), id .. " does not know node-4")
            end
            -- The joiner got every command.
            assert(wait_for(function() return #j.applied >= 20 end, 5000))
            assert.are.same({ 1 + 0, "cmd1" }, { j.applied[1][1] > 0 and 1 or 0, j.applied[1][2] })

            -- A read on the joiner (a follower): it asks the leader for the read index and
            -- is answered once it has applied that far; a write acknowledged before it
            -- is covered.
            local wi = assert(c.nodes[leader]:apply("before-read"))
            assert(j.node:read_index(1))
            assert(wait_for(function() return j.reads[1] ~= nil end, 5000), "no read answer")
            assert.is_nil(j.reads[1].code)
            assert(j.reads[1].index >= wi, "read index below an acknowledged write")
            assert(j.reads[1].applied >= j.reads[1].index)

            -- Transfer leadership to the joiner, then read there as the leader.
            assert(lc:transfer("node-4"))
            assert(wait_for(function()
                local role = j.node:state()
                return role == "leader"
            end, 5000), "node-4 did not take over")
            assert(wait_for(function() return lc:transferee() == nil end, 5000))
            assert(wait_for(function()
                local idx = j.node:propose("on-node-4")
                return idx ~= nil
            end, 5000))
            assert(j.node:read_index(2))
            assert(wait_for(function() return j.reads[2] ~= nil end, 5000))
            assert.is_nil(j.reads[2].code)

            -- Remove the old leader: it learns it is out once the removal commits.
            local ri, rcode, rmsg = j.node:remove_peer(leader)
            assert(ri, format("remove_peer: %s %s", tostring(rcode), tostring(rmsg)))
            assert(wait_for(function()
                local conf = j.node:configuration()
                return not conf_has(conf, leader) and conf.committed
            end, 5000))
            assert.are.equal(3, #j.node:configuration().servers)
            -- The others keep committing.
            local pi = j.node:propose("after-remove")
            assert(pi)
        end)
        assert(ok, err)
    end)

    it("a removed follower learns that it is out: status().removed, a log line, no "
       .. "campaigns; the others go on", function()
        local c = new_cluster(3, dir)
        local logs = {}
        for _, id in ipairs(c.ids) do
            c.nodes[id]:on("log", function(_, msg) logs[#logs + 1] = id .. ": " .. msg end)
        end
        finally(function() stop_cluster(c) end)
        local ok, err = run_scenario(c, 15000, function()
            local leader = wait_leader(c)
            local victim = leader == "node-3" and "node-2" or "node-3"
            for i = 1, 5 do assert(c.nodes[leader]:apply("x" .. i)) end
            local lc = core_of(c.nodes[leader])
            local index
            assert(wait_for(function()
                index = lc:remove_peer(victim)
                return index ~= nil
            end, 5000), "remove_peer stayed busy")
            local vc = core_of(c.nodes[victim])
            assert(wait_for(function() return vc:status().removed == true end, 5000),
                   "the removed node never learned it")
            local said = 0
            for _, l in ipairs(logs) do
                if l:find(victim .. ": membership: " .. victim .. " is no longer", 1, true) then
                    said = said + 1
                end
            end
            assert.are.equal(1, said, table.concat(logs, "\n"))
            assert.is_nil(lc:status().removed)
            local term = vc:status().term
            for i = 6, 10 do assert(c.nodes[leader]:apply("y" .. i)) end
            raft.sleep(500) -- several election timeouts: it must not campaign
            assert.are.equal(term, vc:status().term)
            assert.are.equal("follower", vc:status().role)
        end)
        assert(ok, err)
    end)

    it("fails reads with not_leader where no leader is known, and shutdown at stop",
       function()
        local c, j = cluster_and_joiner(1)
        assert(j.node:start())
        assert(run_scenario(c, 10000, function()
            local _, code = j.node:read_index(7)
            assert.are.equal("not_leader", code)
            local leader = wait_leader(c)
            assert(add_peer(core_of(c.nodes[leader]), "node-4", j.addr, false))
            assert(wait_for(function()
                return conf_has(j.node:configuration(), "node-4", false)
            end, 5000))
            -- A learner's read goes to the leader too.
            assert(j.node:read_index(8))
            assert(wait_for(function() return j.reads[8] ~= nil end, 5000))
            assert.is_nil(j.reads[8].code)
            -- Stays a learner (voter = false).
            raft.sleep(300)
            assert(conf_has(core_of(c.nodes[leader]):configuration(), "node-4", false))
            -- A read in flight when the node stops is failed with shutdown (asked and
            -- stopped in one turn: the leader's answer cannot have come yet).
            assert(j.node:read_index(9))
            j.node:shutdown()
            assert(wait_for(function() return j.reads[9] ~= nil end, 5000))
            assert.are.equal("shutdown", j.reads[9].code)
        end))
    end)

    it("never serves a read on a node cut off from the majority", function()
        local c, j = cluster_and_joiner(3)
        assert(j.node:start())
        local ok, err = run_scenario(c, 20000, function()
            local leader = wait_leader(c)
            assert(add_peer(core_of(c.nodes[leader]), "node-4", j.addr))
            assert(wait_for(function()
                return conf_has(j.node:configuration(), "node-4", true)
            end, 5000), "node-4 not promoted")
            assert(j.node:read_index(1))
            assert(wait_for(function() return j.reads[1] ~= nil end, 5000))
            assert.is_nil(j.reads[1].code)
            -- The leader and one more go: node-4 and the last one are 2 of 4 voters, a
            -- minority. Reads asked now (while node-4 may still believe in the old leader)
            -- fail; none is served. (One raft.new node stays up: the loop runs while one
            -- does.)
            local other
            for _, id in ipairs(c.ids) do
                if id ~= leader then other = id break end
            end
            c.nodes[leader]:shutdown()
            c.nodes[other]:shutdown()
            local asked = {}
            for ctx = 2, 6 do
                if j.node:read_index(ctx) then asked[#asked + 1] = ctx end
                raft.sleep(100)
            end
            for _, ctx in ipairs(asked) do
                assert(wait_for(function() return j.reads[ctx] ~= nil end, 5000),
                       "read " .. ctx .. " never answered")
                assert.is_not_nil(j.reads[ctx].code, "read " .. ctx .. " was served")
            end
            local _, code = j.node:read_index(7)
            if code == nil then
                assert(wait_for(function() return j.reads[7] ~= nil end, 5000))
                code = j.reads[7].code
            end
            assert.truthy(code == "not_leader" or code == "timeout", tostring(code))
        end)
        assert(ok, err)
    end)

    it("keeps the configuration in snapshots: a server added before the compaction point "
       .. "learns the cluster from the snapshot, a restart after compaction keeps it",
       function()
        local SNAP = { snapshot_interval_ms = 50, snapshot_threshold = 50, trailing_logs = 10 }
        local c, j = cluster_and_joiner(3, SNAP)
        local ok, err = run_scenario(c, 30000, function()
            local leader = wait_leader(c)
            local lc = core_of(c.nodes[leader])
            -- Added while it is down: the add entry is compacted into the leader's snapshot
            -- before node-4 hears anything.
            assert(add_peer(lc, "node-4", j.addr))
            for i = 1, 150 do apply_on_leader(c, "cmd" .. i) end
            assert(wait_for(function()
                return lc:status().first_index > 20 and lc:status().snapshot_index > 20
            end, 10000), "the leader did not compact its log")
            assert(j.node:start())
            assert(wait_for(function() return j.restored ~= nil end, 10000),
                   "node-4 did not install a snapshot")
            assert(j.node:stats().snapshots_installed >= 1)
            -- Its configuration comes from the snapshot: every server, with addresses.
            assert(wait_for(function()
                return conf_has(j.node:configuration(), "node-4", true)
            end, 10000), "node-4 not promoted")
            local conf = j.node:configuration()
            assert.are.equal(4, #conf.servers)
            for _, sv in ipairs(conf.servers) do
                assert.are.equal(sv.id == "node-4" and j.addr or c.peers[sv.id], sv.addr)
            end

            -- Compact past the promotion on a follower, then restart it with the original
            -- peers option: the configuration is the snapshot's, not the bootstrap one.
            local f = c.ids[1] == leader and c.ids[2] or c.ids[1]
            local fc = core_of(c.nodes[f])
            local promoted = lc:configuration().index
            for i = 1, 150 do apply_on_leader(c, "more" .. i) end
            assert(wait_for(function()
                return fc:status().first_index > promoted + 1
            end, 10000), "the follower did not compact past the promotion")
            local done = false
            c.nodes[f]:shutdown(function() done = true end)
            assert(wait_for(function() return done end, 5000))
            start_node(c, f, dir, SNAP)
            fc = core_of(c.nodes[f])
            local fconf = fc:configuration()
            assert.are.equal(4, #fconf.servers)
            assert(conf_has(fconf, "node-4", true))
            local _, s4 = conf_has(fconf, "node-4")
            assert.are.equal(j.addr, s4.addr)
            assert(fconf.index > 0)
        end)
        assert(ok, err)
    end)
end)

describe("core.recover", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() rmrf(dir) end)

    -- Write n commands on a 3-node cluster (with extra options), stop it; returns the
    -- cluster and the leader's final state: { [key] = value } and its last index.
    local function write_and_stop(n, extra)
        local c = new_cluster(3, dir, extra, kv.new)
        local want, last
        local ok, err = run_scenario(c, 30000, function()
            local leader = wait_leader(c)
            for i = 1, n do assert(c.nodes[leader]:apply(format("set k%d v%d", i, i))) end
            -- Every node has applied everything (the survivor must hold every entry).
            local target = core_of(c.nodes[leader]):status().commit_index
            for _, id in ipairs(c.ids) do
                assert(wait_for(function()
                    local st = core_of(c.nodes[id]):status()
                    return st.applied_index >= target
                        and (extra == nil or st.snapshot_index > 0)
                end, 5000))
            end
            want, last = {}, core_of(c.nodes[leader]):status().last_index
            for i = 1, n do want["k" .. i] = "v" .. i end
        end)
        assert(ok, err)
        stop_cluster(c)
        return c, want, last
    end

    -- core.recover once the stopped nodes' storage is closed: a node reports its shutdown
    -- before the last of its files is (the loop closes them on later turns).
    local function recover(...)
        local res, code, msg
        for _ = 1, 100 do
            res, code, msg = core.recover(...)
            if code ~= "busy" then break end
            local t = raft.after(20, function() raft.stop() end)
            raft.run()
            t:stop()
        end
        return res, code, msg
    end

    local function check_recovered(c, want, last, extra)
        local id = "node-1"
        -- Restarted alone with the original peers option: the log's configuration wins.
        start_node(c, id, dir, extra, kv.new())
        local ok, err = run_scenario({ ids = { id }, nodes = c.nodes }, 30000, function()
            local cn = core_of(c.nodes[id])
            assert(wait_for(function() return (cn:state()) == "leader" end, 5000),
                   "the recovered node did not elect itself")
            local conf = cn:configuration()
            assert.are.equal(1, #conf.servers)
            assert.are.equal(id, conf.servers[1].id)
            assert.are.equal(c.peers[id], conf.servers[1].addr)
            assert(wait_for(function() return conf.committed or cn:configuration().committed end,
                            5000))
            assert(cn:status().commit_index > last)
            -- Every entry kept: the state is the one before, and it takes new writes.
            for k, v in each(want) do assert.are.equal(v, c.fsms[id]:get(k)) end
            local after_index = assert(c.nodes[id]:apply("set after recover"))
            assert.are.equal("recover", c.fsms[id]:get("after"))
            -- Grow back: a new server under a lost one's name, at another address (the
            -- recovered node's peers option still gives the old one: the configuration
            -- wins), with an empty data dir.
            local j = joiner(dir, "node-2", { [id] = c.peers[id] }, dir .. "/new-node-2")
            assert(j.node:start())
            local jok, jerr = pcall(function()
                assert(cn:add_peer("node-2", j.addr))
                -- Caught up: it has the write, from the log or, if the leader compacted
                -- past it meanwhile (snapshots every 50 entries with SNAP), in a snapshot.
                assert(wait_for(function()
                    return (j.last_applied or 0) >= after_index
                end, 10000), "the new node-2 did not catch up")
                local got
                for _, a in ipairs(j.applied) do
                    if a[1] == after_index then got = a[2] end
                end
                if got == nil then
                    assert(j.restored and j.restored >= after_index,
                           "the write is neither applied nor in a restored snapshot")
                else
                    assert.are.equal("set after recover", got)
                end
                assert(wait_for(function()
                    return conf_has(cn:configuration(), "node-2", true)
                end, 5000), "the new node-2 was not promoted")
            end)
            j.node:shutdown()
            assert(wait_for(function() return j.node:status() == nil end, 5000))
            assert(jok, jerr)
        end)
        assert(ok, err)
    end

    it("makes a node of a lost 3-node cluster a one-node cluster, keeping every entry",
       function()
        local c, want, last = write_and_stop(40)
        -- The bootstrap configuration is not in the log: no address to be found there.
        local res, code, msg = recover(dir .. "/node-1", "node-1")
        assert.is_nil(res)
        assert.are.equal("invalid", code)
        assert.matches("no address", msg)
        res, code, msg = recover(dir .. "/node-1", "node-1", c.peers["node-1"])
        assert(res, format("%s %s", tostring(code), tostring(msg)))
        assert.are.equal(last + 1, res.index)
        assert.are.equal(last, res.entries)
        assert.are.equal(0, res.snapshot_index)
        -- helios inspect shows the configuration the log now ends with.
        local _, report = core.storage_inspect(dir .. "/node-1")
        assert.matches(format("configuration: the log's newest, index %d: node%%-1 %s\n",
                              res.index, c.peers["node-1"]:gsub("%p", "%%%0")), report)
        local _, before = core.storage_inspect(dir .. "/node-2")
        assert.matches("configuration: none in the log", before)
        finally(function() stop_cluster(c) end)
        check_recovered(c, want, last)
    end)

    it("recovers a data dir whose log was compacted behind a snapshot", function()
        local SNAP = { snapshot_interval_ms = 50, snapshot_threshold = 50, trailing_logs = 10 }
        local c, want, last = write_and_stop(150, SNAP)
        local res, code, msg = recover(dir .. "/node-1", "node-1", c.peers["node-1"])
        assert(res, format("%s %s", tostring(code), tostring(msg)))
        assert(res.snapshot_index > 0)
        assert.are.equal(last + 1, res.index)
        finally(function() stop_cluster(c) end)
        check_recovered(c, want, last, SNAP)
    end)

    it("refuses a data dir in use, an empty one, and a bad address", function()
        local c = new_cluster(1, dir)
        finally(function() stop_cluster(c) end)
        local res, code = core.recover(dir .. "/node-1", "node-1")
        assert.is_nil(res)
        assert.are.equal("busy", code)
        stop_cluster(c)
        res, code = recover(dir .. "/empty", "node-1", "127.0.0.1:1")
        assert.is_nil(res)
        assert.are.equal("invalid", code)
        res, code = recover(dir .. "/node-1", "node-1", "nowhere")
        assert.is_nil(res)
        assert.are.equal("invalid", code)
    end)
end)

describe("snapshot files", function()
    local tk = require("helios.testkit")
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() rmrf(dir) end)

    local function inspect()
        local _, report = core.storage_inspect(dir)
        return report
    end

    it("are written in format version 2 with the configuration; version 1 is still read",
       function()
        local st = assert(tk.storage_open(dir))
        st:close()
        assert(tk.snap_write(dir, 5, 2, { 1, 2, 3 }, "payload"))
        local report = inspect()
        assert.matches("index 5 term 2, configuration of index 0 %(", report)
        assert.matches("checksum ok", report)
        -- The same point in version 1, which a data dir of an older build holds.
        os.execute("rm -f " .. dir .. "/snapshots/*")
        local f = assert(io.open(dir .. "/snapshots/" .. format("%020d-%020d.snap", 6, 2), "wb"))
        f:write(tk.snap_file_v1(6, 2, { 1, 2, 3 }, "payload"))
        f:close()
        report = inspect()
        assert.matches("index 6 term 2, 3 voters %(", report)
        assert.matches("checksum ok", report)
        -- Both encodings differ (the reader tells them apart by the version field).
        assert.are_not.equal(tk.snap_file(6, 2, { 1, 2, 3 }, "p"),
                             tk.snap_file_v1(6, 2, { 1, 2, 3 }, "p"))
    end)
end)
