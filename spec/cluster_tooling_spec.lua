-- cluster_tooling_spec.lua: the pieces helios.testing and `helios cluster` stand on, without
-- a node: the framed socket client against a fake control server, helios.client's protocol
-- (ids, stale answers, errors), the TCP proxy's cut and heal, child processes, and the KV
-- state machine.

local core = require("helios.core")
local tk = require("helios.testkit")
local client = require("helios.client")
local kv = require("helios.fsm.kv")

local function tmpname()
    local p = os.tmpname()
    os.remove(p)
    return p
end

local function proxy_argv()
    return { "luajit", "-e", ("package.path = %q; package.cpath = %q; "
        .. "require('helios.testkit').proxy_main()"):format(package.path, package.cpath) }
end

-- A fake server's listening socket on a fresh path, for every `it` of the calling describe.
local function with_listener()
    local fx = {}
    before_each(function()
        fx.path = tmpname()
        fx.listener = assert(tk.sock_listen(fx.path))
    end)
    after_each(function()
        fx.listener:close()
        os.remove(fx.path)
    end)
    return fx
end

describe("framed socket client", function()
    local fx = with_listener()

    it("sends and receives frames with a CRC32C", function()
        local c = assert(core.sock_connect(fx.path, 1000))
        local s = assert(fx.listener:accept(1000))
        assert(c:send_frame("hello", 1000))
        assert.are.equal("hello", s:recv_frame(1000))
        assert(s:send_frame(string.rep("x", 100000), 1000))
        assert.are.equal(100000, #c:recv_frame(1000))
        c:close()
        s:close()
    end)

    it("times out without losing the stream, refuses a bad checksum", function()
        local c = assert(core.sock_connect(fx.path, 1000))
        local s = assert(fx.listener:accept(1000))
        local t0 = core.clock_ms()
        local v, code = c:recv_frame(100)
        assert.is_nil(v)
        assert.are.equal("timeout", code)
        assert.is_true(core.clock_ms() - t0 >= 90)
        assert(s:send_frame("after the timeout", 1000))
        assert.are.equal("after the timeout", c:recv_frame(1000))
        -- same length and payload, wrong checksum
        assert(s:send_raw("\0\0\0\5\0\0\0\0hello", 1000))
        v, code = c:recv_frame(1000)
        assert.is_nil(v)
        assert.are.equal("bad_checksum", code)
        s:close()
    end)

    it("reports a refused connection and a closed peer", function()
        local v, code = core.sock_connect(fx.path .. ".missing", 500)
        assert.is_nil(v)
        assert.are.equal("refused", code)
        local c = assert(core.sock_connect(fx.path, 1000))
        local s = assert(fx.listener:accept(1000))
        s:close()
        v, code = c:recv_frame(1000)
        assert.is_nil(v)
        assert.are.equal("closed", code)
    end)

    it("refuses a frame over the size limit", function()
        local c = assert(core.sock_connect(fx.path, 1000))
        local s = assert(fx.listener:accept(1000))
        assert(s:send_raw("\127\255\255\255\0\0\0\0", 1000))
        local v, code = c:recv_frame(1000, 1024)
        assert.is_nil(v)
        assert.are.equal("too_large", code)
    end)
end)

describe("helios.client protocol", function()
    local fx = with_listener()

    it("status, apply, errors, and answers to earlier requests are skipped", function()
        local c = assert(client.connect(fx.path, 1000))
        local s = assert(fx.listener:accept(1000))
        -- The request is written before any answer is read: send, answer, then read.
        local sock = c.sock
        local real_recv = sock.recv_frame
        local answers = {}
        local pending = false
        local function serve()
            local req = core.mp_decode(assert(s:recv_frame(1000)))
            answers[#answers + 1] = req
            if req.op == "status" then
                assert(s:send_frame(core.mp_encode({ id = req.id - 1, ok = true })))  -- stale
                assert(s:send_frame(core.mp_encode({ id = req.id, ok = true,
                                                     status = { role = "leader", term = 3 } })))
            elseif req.op == "apply" then
                if req.cmd == "set a 1" then
                    assert(s:send_frame(core.mp_encode({ id = req.id, ok = true, index = 7,
                                                         term = 3, result = "OK" })))
                else
                    assert(s:send_frame(core.mp_encode({ id = req.id, ok = false,
                                                         code = "not_leader",
                                                         detail = "node-2 127.0.0.1:9002" })))
                end
            end
        end
        -- Wrap the socket so the fake server answers as soon as the client has sent.
        c.sock = setmetatable({}, { __index = function(_, k)
            if k == "recv_frame" then
                return function(_, ...)
                    if pending then serve() end
                    pending = false
                    return real_recv(sock, ...)
                end
            elseif k == "send_frame" then
                pending = true
            end
            local f = sock[k]
            return function(_, ...) return f(sock, ...) end
        end })
        local st = assert(c:status())
        assert.are.equal("leader", st.role)
        local index, term, result = c:apply("set a 1", 1000)
        assert.are.same({ 7, 3, "OK" }, { index, term, result })
        assert.are.equal(1000, answers[2].timeout_ms)
        local v, code, detail = c:apply("set b 2", 1000)
        assert.is_nil(v)
        assert.are.equal("not_leader", code)
        assert.are.equal("node-2 127.0.0.1:9002", detail)
        assert.has_error(function() c:apply(42) end)
        c:close()
        s:close()
    end)
end)

describe("TCP proxy", function()
    local pid, pin, pout
    local function cmd(line)
        assert(pin:send_raw(line .. "\n", 1000))
        return assert(pout:read_line(2000))
    end
    before_each(function()
        pid, pin, pout = core.proc_spawn(proxy_argv(), { stdin = "pipe", stdout_pipe = true,
                                                          die_with_parent = true })
        assert(pid, pin)
    end)
    after_each(function()
        pcall(cmd, "quit")
        if not core.proc_wait(pid, 2000) then
            core.proc_kill(pid, "KILL")
            core.proc_wait(pid, 2000)
        end
    end)

    it("forwards, cuts both directions of a pair, refuses while cut, heals", function()
        assert.are.equal("ok", cmd("ping"))
        local target, tport = assert(tk.sock_listen("127.0.0.1:0"))
        local ab = tonumber(cmd("link a b 127.0.0.1:" .. tport):match("^ok (%d+)$"))
        local ba = tonumber(cmd("link b a 127.0.0.1:" .. tport):match("^ok (%d+)$"))
        assert.is_truthy(ab and ba and ab ~= ba)

        local c = assert(core.sock_connect("127.0.0.1:" .. ab, 1000))
        local s = assert(target:accept(1000))
        assert(c:send_frame("a to b", 1000))
        assert.are.equal("a to b", s:recv_frame(1000))
        assert(s:send_frame("b to a", 1000))
        assert.are.equal("b to a", c:recv_frame(1000))

        assert.are.equal("ok 2", cmd("cut b a"))
        local v, code = c:recv_frame(1000)
        assert.is_nil(v)
        assert.are.equal("closed", code)
        -- a new connection is accepted and closed at once; nothing reaches the target
        local c2 = core.sock_connect("127.0.0.1:" .. ab, 1000)
        if c2 then
            v, code = c2:recv_frame(1000)
            assert.are.equal("closed", code)
        end
        v, code = target:accept(200)
        assert.are.equal("timeout", code)

        assert.are.equal("ok", cmd("heal"))
        local c3 = assert(core.sock_connect("127.0.0.1:" .. ba, 1000))
        assert(c3:send_frame("healed", 1000))
        assert.are.equal("healed", assert(target:accept(1000)):recv_frame(1000))
        assert.matches("^err unknown command", cmd("bogus"))
        target:close()
    end)

    it("cuts one direction of a pair (cut1): the other still forwards", function()
        local target, tport = assert(tk.sock_listen("127.0.0.1:0"))
        local ab = tonumber(cmd("link a b 127.0.0.1:" .. tport):match("^ok (%d+)$"))
        local ba = tonumber(cmd("link b a 127.0.0.1:" .. tport):match("^ok (%d+)$"))
        local c = assert(core.sock_connect("127.0.0.1:" .. ab, 1000))
        assert(target:accept(1000))
        assert.are.equal("ok 1", cmd("cut1 a b"))
        local v, code = c:recv_frame(1000)
        assert.is_nil(v)
        assert.are.equal("closed", code)
        -- b -> a still forwards
        local c2 = assert(core.sock_connect("127.0.0.1:" .. ba, 1000))
        assert(c2:send_frame("b to a", 1000))
        assert.are.equal("b to a", assert(target:accept(1000)):recv_frame(1000))
        assert.are.equal("ok 0", cmd("cut1 a nobody"))
        assert.are.equal("ok", cmd("heal"))
        target:close()
    end)

    it("exits at the end of its stdin", function()
        pin:close()
        assert.are.equal("exited", (core.proc_wait(pid, 2000)))
    end)
end)

describe("child processes", function()
    it("spawn with environment and log file, stop, continue, kill, reap", function()
        local log = tmpname()
        local pid = assert(core.proc_spawn({ "sh", "-c", "echo $HELIOS_X; echo err >&2; exit 3" },
            { stdout = log, stderr = "stdout", env = { HELIOS_X = "hello" } }))
        assert.are.same({ "exited", 3 }, { core.proc_wait(pid, 5000) })
        local f = assert(io.open(log))
        assert.are.equal("hello\nerr\n", f:read("*a"))
        f:close()
        os.remove(log)

        pid = assert(core.proc_spawn({ "sleep", "30" }, {}))
        assert(core.proc_kill(pid, "STOP"))
        assert(core.proc_kill(pid, "CONT"))
        assert.are.equal("timeout", select(2, core.proc_wait(pid, 0)))
        assert(core.proc_kill(pid, "KILL"))
        assert.are.same({ "signaled", "KILL" }, { core.proc_wait(pid, 5000) })
        assert.are.equal("no_such_process", select(2, core.proc_kill(pid, "TERM")))
    end)

    it("gives a child no fd of ours but its stdio", function()
        -- A file Lua opened (io.open sets no CLOEXEC) and the loop's own descriptors: the
        -- child closes them before exec, so it holds none of them, not even until then.
        local mine_path = tmpname()
        local mine = assert(io.open(mine_path, "w"))
        local log = tmpname()
        local pid = assert(core.proc_spawn({ "ls", "/proc/self/fd" }, { stdout = log }))
        assert.are.same({ "exited", 0 }, { core.proc_wait(pid, 5000) })
        mine:close()
        os.remove(mine_path)
        local f = assert(io.open(log))
        local fds = {}
        for fd in f:read("*a"):gmatch("%d+") do fds[#fds + 1] = tonumber(fd) end
        f:close()
        os.remove(log)
        -- 0-2, and the one ls opens to read the directory.
        assert.is_true(#fds <= 4, "the child had fds " .. table.concat(fds, " "))
    end)

    it("passes numeric argv elements intact even when the GC runs during spawn", function()
        -- A number in argv is converted to a string that nothing referenced once popped;
        -- building a large env allocates enough for the GC to collect it before exec.
        local env = {}
        for i = 1, 10000 do env["HELIOS_PAD_" .. i] = ("x"):rep(i % 31 + 1) end
        collectgarbage("setpause", 1)
        collectgarbage("setstepmul", 10000)
        local ok, err = pcall(function()
            for round = 1, 5 do
                local log = tmpname()
                local pid = assert(core.proc_spawn({ "echo", 123456789, 987654321 + round },
                    { stdout = log, env = env }))
                assert.are.same({ "exited", 0 }, { core.proc_wait(pid, 5000) })
                local f = assert(io.open(log))
                local out = f:read("*a")
                f:close()
                os.remove(log)
                assert.are.equal("123456789 " .. (987654321 + round) .. "\n", out)
            end
        end)
        collectgarbage("setpause", 200)
        collectgarbage("setstepmul", 200)
        assert(ok, err)
    end)

    it("finds free loopback ports", function()
        local p = assert(core.free_port())
        local l = assert(tk.sock_listen("127.0.0.1:" .. p))
        l:close()
    end)
end)

describe("helios.fsm.kv", function()
    it("applies set, get, del, incr and refuses malformed commands", function()
        local s = kv.new()
        assert.are.equal("OK", s:apply("set greeting hello world", 1))
        assert.are.equal("hello world", s:apply("get greeting", 2))
        assert.are.equal(1, s:apply("incr n", 3))
        assert.are.equal(6, s:apply("incr n 5", 4))
        assert.are.equal(1, s:apply("del n", 5))
        assert.are.equal(0, s:apply("del n", 6))
        assert.is_nil(s:apply("get n", 7))
        assert.matches("^ERR", s:apply("set onlykey", 8))
        assert.matches("^ERR", s:apply("incr greeting", 9))
        assert.matches("^ERR unknown", s:apply("frobnicate x", 10))
        assert.are.equal("hello world", s:get("greeting"))
    end)

    it("restores exactly what it snapshotted, binary values included", function()
        local s = kv.new()
        s:apply("set a 1", 1)
        s:apply("set b \0\1\2 with: colons 12:", 2)
        s:apply("incr c 41", 3)
        local snap = s:snapshot()
        local r = kv.new()
        r:restore(snap)
        assert.are.same(s:keys(), r:keys())
        for _, k in ipairs(s:keys()) do assert.are.equal(s:get(k), r:get(k)) end
        assert.are.equal(snap, r:snapshot())
        assert.has_error(function() r:restore("garbage") end)
    end)
end)
