-- spec/node_cluster_spec.lua: networked nodes (raft.new) in one process, on the real loop:
-- real TCP on 127.0.0.1 (ports picked at run time), real data dirs in a temp dir.
--
-- busted has no async: each `it` runs the loop itself (raft.run) with its scenario in a
-- coroutine (raft.spawn) and a deadline timer, and shuts every node down in `finally`,
-- also when the scenario fails.

local raft = require("helios.raft")
local core = require("helios.core")
local tk = require("helios.testkit")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local nh = require("spec.helpers.node")

local format = string.format
local tmpdir, rmrf, wait_for = nh.tmpdir, nh.rmrf, nh.wait_for
local stop_cluster, run_scenario, leader_of = nh.stop_all, nh.run_scenario, nh.leader_of

-- ---- helpers (the shared ones are spec/helpers/node.lua) ----

-- An FSM that records what it applied and answers "r<index>:<cmd>".
local function recording_fsm()
    local f = { log = {} }
    function f:apply(cmd, index, entry)
        assert(type(entry.time_ms) == "number" and entry.time_ms > 0)
        self.log[#self.log + 1] = { index, cmd }
        return format("r%d:%s", index, cmd)
    end
    function f:snapshot() return "" end
    function f:restore() end
    return f
end

local FAST = { election_timeout_ms = 150, heartbeat_timeout_ms = 30 }

-- n nodes "node-1".."node-N" with data under dir; ports are fresh unless given.
local function new_cluster(n, dir, ports, extra)
    local c = { ids = {}, nodes = {}, fsms = {}, peers = {}, ports = ports or {} }
    for i = 1, n do
        local id = "node-" .. i
        c.ids[i] = id
        c.ports[i] = c.ports[i] or core.free_port()
        c.peers[id] = "127.0.0.1:" .. c.ports[i]
    end
    for i, id in ipairs(c.ids) do
        c.fsms[id] = recording_fsm()
        local opts = { id = id, peers = c.peers, data_dir = dir .. "/" .. id, fsm = c.fsms[id],
                       secret = "test secret" }
        for k, v in each(FAST) do opts[k] = v end
        local ex = extra
        if type(ex) == "function" then ex = ex(id) end -- options of this node alone
        for k, v in each(ex or {}) do opts[k] = v end
        c.nodes[id] = raft.new(opts)
        assert(c.nodes[id]:start())
    end
    return c
end

local function wait_leader(c, ms)
    assert(wait_for(function() return leader_of(c) ~= nil end, ms or 5000), "no leader elected")
    return leader_of(c)
end

local function applied_index(fsm, index)
    for _, e in ipairs(fsm.log) do
        if e[1] == index then return e[2] end
    end
    return nil
end

-- ---- specs ----

describe("raft.new: a 3-node cluster in one process", function()
    local dir, c
    before_each(function() dir = tmpdir() end)
    after_each(function() rmrf(dir) end)

    it("elects exactly one leader", function()
        c = new_cluster(3, dir)
        finally(function() stop_cluster(c) end)
        local ok, err = run_scenario(c, 10000, function()
            local id = wait_leader(c)
            local term = c.nodes[id]:state()
            for _, other in ipairs(c.ids) do
                local t, is_leader = c.nodes[other]:state()
                assert(not (is_leader and t == term and other ~= id), "two leaders in a term")
            end
            local st = c.nodes[id]:status()
            assert.equal("leader", st.role)
            assert.equal(id, st.leader)
            assert.equal(c.peers["node-2"], st.peers["node-2"].addr)
        end)
        assert(ok, err)
    end)

    it("applies from a coroutine, returns the FSM's result, and replicates to every node", function()
        c = new_cluster(3, dir)
        finally(function() stop_cluster(c) end)
        local ok, err = run_scenario(c, 10000, function()
            local id = wait_leader(c)
            local index, term, result = c.nodes[id]:apply("hello", 3000)
            assert(index, term)
            assert.equal(format("r%d:hello", index), result)
            assert(wait_for(function()
                for _, other in ipairs(c.ids) do
                    if applied_index(c.fsms[other], index) ~= "hello" then return false end
                end
                return true
            end, 3000), "not applied everywhere")
            local stats = c.nodes[id]:stats()
            assert(stats.fsyncs > 0 and stats.transport.frames_sent > 0)
        end)
        assert(ok, err)
    end)

    it("refuses apply on a follower with not_leader naming the leader", function()
        c = new_cluster(3, dir)
        finally(function() stop_cluster(c) end)
        local ok, err = run_scenario(c, 10000, function()
            local id = wait_leader(c)
            -- Followers learn the leader from its first heartbeat.
            local follower
            assert(wait_for(function()
                for _, other in ipairs(c.ids) do
                    if other ~= id and c.nodes[other]:status().leader == id then
                        follower = other
                        return true
                    end
                end
            end, 3000))
            local index, code, detail = c.nodes[follower]:apply("x", 1000)
            assert.is_nil(index)
            assert.equal("not_leader", code)
            assert.matches(id, detail, 1, true)
            assert.matches(c.peers[id], detail, 1, true)
            -- propose outside apply, same answer
            local i2, code2 = c.nodes[follower]:propose("y")
            assert.is_nil(i2)
            assert.equal("not_leader", code2)
        end)
        assert(ok, err)
    end)

    it("elects a new leader when the leader shuts down, losing nothing committed", function()
        c = new_cluster(3, dir)
        finally(function() stop_cluster(c) end)
        local ok, err = run_scenario(c, 15000, function()
            local old = wait_leader(c)
            local committed = {}
            for i = 1, 5 do
                local index, _, result = c.nodes[old]:apply("cmd" .. i, 3000)
                assert(index, result)
                committed[index] = "cmd" .. i
            end
            local closed = false
            c.nodes[old]:shutdown(function() closed = true end)
            -- Once shutting down, the node refuses with "shutdown".
            local late, code = c.nodes[old]:apply("late", 1000)
            assert.is_nil(late)
            assert.equal("shutdown", code)
            local new
            assert(wait_for(function()
                new = leader_of(c)
                return new ~= nil and new ~= old
            end, 5000), "no new leader")
            local index, _, result = c.nodes[new]:apply("after", 3000)
            assert(index, result)
            for i, cmd in each(committed) do
                assert.equal(cmd, applied_index(c.fsms[new], i))
            end
            assert(wait_for(function() return closed end, 3000))
        end)
        assert(ok, err)
    end)

    it("keeps all state across a restart of every node (the FSM replays)", function()
        c = new_cluster(3, dir)
        finally(function() stop_cluster(c) end)
        local expect = {}
        local ok, err = run_scenario(c, 10000, function()
            local id = wait_leader(c)
            for i = 1, 10 do
                local index = assert(c.nodes[id]:apply("v" .. i, 3000))
                expect[index] = "v" .. i
            end
        end)
        assert(ok, err)
        -- raft.run returned: every node is closed and its data dir unlocked.
        local c2 = new_cluster(3, dir, c.ports)
        finally(function() stop_cluster(c2) end)
        ok, err = run_scenario(c2, 10000, function()
            wait_leader(c2)
            assert(wait_for(function()
                for _, id in ipairs(c2.ids) do
                    for index, cmd in each(expect) do
                        if applied_index(c2.fsms[id], index) ~= cmd then return false end
                    end
                end
                return true
            end, 5000), "state lost across the restart")
        end)
        assert(ok, err)
    end)
    it("a follower whose disk fails drops out, the others commit on, and it catches up", function()
        -- A follower runs its storage rounds on its loop (docs/architecture.md, "Follower
        -- rounds on the loop"): a failed round there must fail the node the same way.
        local fss = {}
        c = new_cluster(3, dir, nil, function(id)
            fss[id] = tk.fault_fs_new()
            return { fs = fss[id] }
        end)
        finally(function() stop_cluster(c) end)
        local ok, err = run_scenario(c, 30000, function()
            local leader = wait_leader(c)
            local fid
            for _, id in ipairs(c.ids) do
                if id ~= leader then fid = id break end
            end
            local ln, fnode = c.nodes[leader], c.nodes[fid]
            local events = {}
            fnode:on("error", function(code) events[#events + 1] = code or "recovered" end)
            assert(ln:apply("before", 2000))
            fss[fid]:fail("write", 1000000, "no_space")
            local last
            for i = 1, 5 do last = assert(ln:apply("during-" .. i, 2000)) end
            assert(wait_for(function() return #events > 0 end, 5000), "no error event")
            assert.equal("no_space", events[1])
            assert.equal("failed", fnode:status().role)
            assert.is_nil(applied_index(c.fsms[fid], last))
            fss[fid]:clear()
            assert(wait_for(function() return events[#events] == "recovered" end, 10000),
                   "the follower did not recover")
            assert(wait_for(function() return applied_index(c.fsms[fid], last) ~= nil end,
                            10000), "the follower did not catch up")
            assert.equal("during-5", applied_index(c.fsms[fid], last))
            assert.equal(1, fnode:stats().storage.failures)
            assert.equal(leader, leader_of(c))
        end)
        assert(ok, err)
    end)
end)

describe("raft.new: peers that go away", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() rmrf(dir) end)

    -- A write to a connection the peer has reset raises SIGPIPE (libuv writes with plain
    -- write()), whose default action ends the process silently: it once took a whole spec
    -- file with it, its buffered output lost. The scenario runs in a child started by
    -- core.proc_spawn, where SIGPIPE has its default action again.
    it("a leader writing to followers that shut down does not kill the process (SIGPIPE)",
       function()
        local out = dir .. "/out.txt"
        local pid = assert(core.proc_spawn({ "luajit", "spec/helpers/peer_reset.lua", "5", dir },
            { stdout = out, stderr = "stdout", die_with_parent = true,
              env = { LUA_PATH = package.path, LUA_CPATH = package.cpath } }))
        local how, status = core.proc_wait(pid, 120000)
        if how == nil then core.proc_kill(pid, "KILL") core.proc_wait(pid, 5000) end
        local f = io.open(out, "rb")
        local text = f and f:read("*a") or ""
        if f then f:close() end
        assert.are.same({ "exited", 0 }, { how, status }, text)
        assert.matches("sigpipe ignored\n", text)
        assert.matches("survived\n", text)
    end)
end)

describe("raft.new: one node", function()
    local dir, c
    before_each(function() dir = tmpdir() end)
    after_each(function() rmrf(dir) end)

    it("refuses a second node on the same data dir, naming the holder's pid", function()
        c = new_cluster(1, dir)
        finally(function() stop_cluster(c) end)
        local other = raft.new{ id = "node-1", peers = { ["node-1"] = "127.0.0.1:" .. core.free_port() },
                                data_dir = dir .. "/node-1", fsm = recording_fsm(), secret = "s" }
        local ok, code, detail = other:start()
        assert.is_nil(ok)
        assert.equal("busy", code)
        -- Not "locked by pid <this very process>": that would send the operator hunting.
        assert.matches("is already open in this process", detail, 1, true)
    end)

    -- One node over spec.helpers.faulty_fsm on dir/node-1, with the given on_fsm_error;
    -- records its log and error events.
    local function faulty_node(port, on_fsm_error)
        local faulty = require("spec.helpers.faulty_fsm")
        local fsm = faulty.new()
        local node = raft.new{ id = "node-1", peers = { ["node-1"] = "127.0.0.1:" .. port },
                               data_dir = dir .. "/node-1", fsm = fsm, secret = "s",
                               election_timeout_ms = 150, heartbeat_timeout_ms = 30,
                               on_fsm_error = on_fsm_error }
        local events = { log = {}, error = {} }
        node:on("log", function(level, msg)
            if level >= 2 then events.log[#events.log + 1] = msg end
        end)
        node:on("error", function(code, msg) events.error[#events.error + 1] = { code, msg } end)
        assert(node:start())
        return node, fsm, events, { ids = { "node-1" }, nodes = { ["node-1"] = node } }
    end

    it("answers a raising FSM with fsm_error, goes on, and a second raft.run works", function()
        local node, fsm, events, cc = faulty_node(core.free_port())
        c = cc
        finally(function() stop_cluster(c) end)
        local deadline = raft.after(10000, function() core.fail("deadline") end)
        raft.spawn(function()
            wait_leader(c)
            local i, code, detail = node:apply("boom x", 2000)
            assert.is_nil(i)
            assert.equal("fsm_error", code)
            assert.matches("fsm apply at index %d+ %(term %d+%) failed: .*boom at x", detail)
            i, code, detail = node:apply("fn y", 2000)
            assert.is_nil(i)
            assert.equal("fsm_error", code)
            assert.matches("cannot be sent to a client", detail, 1, true)
            raft.stop()
        end)
        local ok, err = raft.run()
        assert(ok, err)
        -- The loop stopped between commands: the node goes on where it was.
        raft.spawn(function()
            local i, _, v = node:apply("incr x", 2000)
            assert(i, v)
            assert.equal(2, v)
            assert.equal(2, node:stats().fsm_errors)
            assert.equal(2, #events.log)
            assert.equal(0, #events.error)
            assert.equal("1", fsm:get("y"))
            node:shutdown()
        end)
        ok, err = raft.run()
        deadline:stop()
        assert(ok, err)
    end)

    it("stops at the entry with on_fsm_error = \"stop\"; a restart stops there again",
       function()
        local port = core.free_port()
        local node, _, events, cc = faulty_node(port, "stop")
        c = cc
        finally(function() stop_cluster(c) end)
        local detail
        local ok, err = run_scenario(c, 10000, function()
            wait_leader(c)
            local i, code
            i, code, detail = node:apply("boom x", 2000)
            assert.is_nil(i)
            assert.equal("fsm_error", code)
            assert(wait_for(function() return not nh.running(node) end, 2000), "still running")
        end)
        assert(ok, err)
        local where = detail:match("^fsm apply at index %d+ %(term %d+%)")
        assert.is_string(where, detail)
        assert.matches("on_fsm_error = \"stop\": node-1 stopped at this entry", detail, 1, true)
        assert.equal(1, #events.error)
        assert.equal("fsm_error", events.error[1][1])
        assert.matches(where, events.error[1][2], 1, true)
        assert.equal("shutdown", node:status().role)
        assert.matches(where, node:status().fsm_error, 1, true)

        -- A restart replays the entry: it stops again, naming the same entry.
        node, _, events, c = faulty_node(port, "stop")
        ok, err = run_scenario(c, 10000, function()
            assert(wait_for(function() return not nh.running(node) end, 5000), "still running")
        end)
        assert(ok, err)
        assert.equal(1, #events.error)
        assert.matches(where, events.error[1][2], 1, true)
        assert.matches("fix the FSM's apply, or set on_fsm_error = \"continue\"",
                       events.error[1][2], 1, true)

        -- What the message says to do works: with "continue" the node goes past it.
        local fsm
        node, fsm, events, c = faulty_node(port, "continue")
        ok, err = run_scenario(c, 10000, function()
            wait_leader(c)
            local i, _, v = node:apply("incr x", 2000)
            assert(i, v)
            assert.equal(2, v)
            assert.equal(1, #events.log)
            assert.equal("2", fsm:get("x"))
        end)
        assert(ok, err)
    end)

    it("refuses an unknown on_fsm_error", function()
        assert.has_error(function()
            raft.new{ id = "n", peers = { n = "127.0.0.1:1" }, data_dir = dir, secret = "s",
                      fsm = recording_fsm(), on_fsm_error = "panic" }
        end, 'raft.new: on_fsm_error: must be "continue" or "stop" (got "panic", a string)')
    end)

    it("takes as fs only a file system of helios.testkit", function()
        for _, v in ipairs{ {}, "posix", io.stdout } do
            local ok, err = pcall(raft.new, { id = "n", peers = { n = "127.0.0.1:1" },
                                              data_dir = dir, secret = "s",
                                              fsm = recording_fsm(), fs = v })
            assert.is_false(ok)
            assert.matches("^raft.new: fs: must be a file system of helios.testkit %(got ", err)
        end
        -- (a fault_fs_new() one is taken: the ENOSPC test below runs a node over it)
    end)

    it("serves status and apply on a control socket of mode 0600", function()
        local sock = dir .. "/control.sock"
        c = new_cluster(1, dir, nil, { control = sock })
        finally(function() stop_cluster(c) end)
        local out = dir .. "/client.out"
        local script = [[
            local client = require("helios.client")
            local cl = assert(client.connect(arg[1], 5000))
            local st = assert(cl:status())
            local f = io.open(arg[2], "w")
            f:write(st.id, " ", st.role, "\n")
            local index, term, result = cl:apply("via-control", 5000)
            f:write(tostring(index), " ", tostring(result), "\n")
            f:close()
        ]]
        local ok, err = run_scenario(c, 15000, function()
            wait_leader(c)
            local mode = io.popen(format("stat -c %%a '%s'", sock)):read("*l")
            assert.equal("600", mode)
            local file = dir .. "/client.lua"
            local f = assert(io.open(file, "w"))
            f:write("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n",
                    "package.cpath = '" .. (package.cpath:match("^[^;]*") or "build/?.so")
                    .. ";build/?.so;' .. package.cpath\n", script)
            f:close()
            local pid = core.proc_spawn({ "luajit", file, sock, out }, {})
            local status
            assert(wait_for(function()
                local what, st = core.proc_wait(pid, 0)
                if what then status = st end
                return what ~= nil
            end, 10000), "client did not finish")
            assert.equal(0, status)
        end)
        assert(ok, err)
        local f = assert(io.open(out))
        assert.equal("node-1 leader", f:read("*l"))
        local line = f:read("*l")
        f:close()
        assert.matches("^%d+ r%d+:via%-control$", line)
    end)

    it("steps down and refuses writes with no_space on ENOSPC, and recovers", function()
        -- Storage faults come from the file system the node runs over (helios.testkit).
        local fs = tk.fault_fs_new()
        c = new_cluster(1, dir, nil, { fs = fs })
        finally(function() stop_cluster(c) end)
        local node = c.nodes["node-1"]
        local events = {}
        node:on("error", function(code, msg) events[#events + 1] = { code or "recovered", msg } end)
        local ok, err = run_scenario(c, 15000, function()
            wait_leader(c)
            assert(node:apply("before", 2000))
            fs:fail("write", 1000000, "no_space")
            local index, code = node:apply("during", 2000)
            assert.is_nil(index)
            assert(code == "not_leader" or code == "timeout", code)
            assert(wait_for(function() return #events > 0 end, 2000), "no error event")
            assert.equal("no_space", events[1][1])
            local term, is_leader = node:state()
            assert.is_false(is_leader)
            local p1, p2 = node:propose("x")
            assert.is_nil(p1)
            assert.equal("no_space", p2)
            assert.equal("failed", node:status().role)
            fs:clear()
            assert(wait_for(function() return leader_of(c) ~= nil end, 5000), "no recovery")
            assert.equal("recovered", events[#events][1])
            local i2, _, result = node:apply("after", 2000)
            assert(i2, result)
            assert.equal("before", c.fsms["node-1"].log[1][2])
            assert.equal(1, node:stats().storage.failures)
            assert.is_true(fs:stats().writes_failed > 0)
        end)
        assert(ok, err)
    end)

end)
