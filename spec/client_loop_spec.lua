-- client_loop_spec.lua: one concurrency model. helios.client (and the process waits of
-- helios.util.process) called inside raft.spawn yield to the loop: a raft.every timer on
-- the same loop keeps ticking during a call that takes hundreds of milliseconds, and a
-- node or a fake server served by the same loop can answer the call at all. A client that
-- blocked the process (poll(), sleep) would see no tick and no answer.
--
-- No fixed sleep synchronizes anything here: the fake server's 400 ms pause is the slow
-- answer under test; everything else waits on a condition with a deadline.

local raft = require("helios.raft")
local loop = require("helios.loop")
local core = require("helios.core")
local tk = require("helios.testkit")
local client = require("helios.client")
local process = require("helios.util.process")
local shell = require("helios.util.shell")
local kv = require("helios.fsm.kv")

local format = string.format
local shared_on_loop = require("spec.helpers.on_loop")

local function tmpdir()
    local d = os.tmpname()
    os.remove(d)
    assert(os.execute("mkdir -p " .. shell.quote(d)))
    return d
end

-- Run body(ticks) in a coroutine on the loop (spec/helpers/on_loop.lua) with a timer
-- ticking every 10 ms beside it: ticks() is how many times it has fired, which shows
-- that the loop went on turning while body waited.
local function on_loop(limit_ms, body)
    local ticks = 0
    local timer = raft.every(10, function() ticks = ticks + 1 end)
    local ok, err = pcall(shared_on_loop, limit_ms, function()
        body(function() return ticks end)
    end)
    timer:stop()
    if not ok then error(err, 0) end
end

-- Step a socket until done, waiting on the loop between steps (the fake server's side).
local function await(sock, step, events, timeout_ms)
    local v, code, detail = loop.await(sock, step, events, timeout_ms)
    assert(v or code ~= "timeout", "fake server: timed out")
    return v, code, detail
end

describe("helios.client inside raft.spawn", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() os.execute("rm -rf " .. shell.quote(dir)) end)

    it("yields while a slow server answers: the loop's timer keeps ticking", function()
        local path = dir .. "/slow.sock"
        local listener = assert(tk.sock_listen(path))
        -- A fake node on the same loop: it answers a status request after 400 ms.
        raft.spawn(function()
            local s = assert(await(listener, listener.try_accept, "r", 5000))
            local req = core.mp_decode(assert(await(s, s.try_recv_frame, "r", 5000)))
            raft.sleep(400)
            local ok, code = s:try_send_frame(core.mp_encode({ id = req.id, ok = true,
                status = { role = "leader", term = 7 } }))
            if not ok and code == "again" then ok = await(s, s.try_flush, "w", 5000) end
            assert(ok, code)
            s:close()
        end)
        on_loop(10000, function(ticks)
            local c = assert(client.connect(path, 2000))
            local t0, before = core.clock_ms(), ticks()
            local st, code, detail = c:status(3000)
            local took, during = core.clock_ms() - t0, ticks() - before
            c:close()
            assert(st, format("c:status: %s %s", tostring(code), tostring(detail)))
            assert.are.equal(7, st.term)
            assert(took >= 300, format("the call took %.0f ms (the server waits 400)", took))
            -- 400 ms of a 10 ms timer: about 40 ticks on an idle machine; a blocked loop
            -- gives none.
            assert(during >= 10, format("%d ticks during a %.0f ms call", during, took))
        end)
        listener:close()
    end)

    it("talks to a node of the same process: leader, apply, status", function()
        local port = assert(core.free_port())
        local addr = "127.0.0.1:" .. port
        local sock = dir .. "/control.sock"
        local node = raft.new{ id = "node-1", listen = addr, peers = { ["node-1"] = addr },
                               data_dir = dir .. "/node-1", fsm = kv.new(), secret = "s",
                               control = sock, election_timeout_ms = 150,
                               heartbeat_timeout_ms = 30 }
        assert(node:start())
        on_loop(20000, function(ticks)
            local cc = client.cluster({ ["node-1"] = sock })
            local before = ticks()
            -- cc:leader polls the node, which elects itself on this very loop: only a
            -- client that yields lets it.
            local id = cc:leader(10000)
            assert.are.equal("node-1", id)
            local index, term, result = cc:apply("set k v", 5000)
            assert(index, format("cc:apply: %s %s", tostring(term), tostring(result)))
            local st = assert(cc:status("node-1"))
            assert(st.applied_index >= index)
            assert(ticks() > before, "the timer never ticked")
            cc:close()
        end)
        node:shutdown()
        assert(raft.run())
    end)

    it("runs a helios.testing cluster from a coroutine on the loop", function()
        local testing = require("helios.testing")
        on_loop(60000, function(ticks)
            local cl = testing.cluster{ n = 3 }
            local ok, err = pcall(function()
                local before, t0 = ticks(), core.clock_ms()
                local leader = cl:leader(20000)
                local index = assert(cl:client():apply("set k v", 10000))
                cl:wait_applied(index, 10000)
                cl:kill(leader, "TERM")
                cl:wait(function() local l = cl:leader(0, true) return l ~= leader and l end,
                        20000, "a new leader")
                local took, during = core.clock_ms() - t0, ticks() - before
                -- Elections, an apply through the proxies, a clean stop: hundreds of ms in
                -- which a 10 ms timer ticks many times unless something blocked the loop.
                assert(during >= took / 100, format("%d ticks in %.0f ms", during, took))
            end)
            cl:stop()
            assert(ok, err)
        end)
    end)

    it("waits for a child process without stopping the loop", function()
        local pid = assert(core.proc_spawn({ "sh", "-c", "sleep 0.3" }, { die_with_parent = true }))
        on_loop(10000, function(ticks)
            local t0, before = core.clock_ms(), ticks()
            local how, what = process.wait(pid, 5000)
            local took, during = core.clock_ms() - t0, ticks() - before
            assert.are.same({ "exited", 0 }, { how, what })
            assert(took >= 200, format("the wait took %.0f ms", took))
            assert(during >= 5, format("%d ticks during a %.0f ms wait", during, took))
        end)
    end)
end)
