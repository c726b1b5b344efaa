-- listen_spec.lua: how the listeners take connections (csrc/lua/listener.c): a burst of
-- clients that connect at once all get in, and a client beyond max_clients gets a clear
-- refusal in its protocol instead of a hang, on the control socket and on the RESP port.
--
-- Two halves. In this process, servers and clients share the loop (helios.client yields):
-- more clients than the listen backlog holds connect from coroutines before the loop
-- accepts any, so some connects find a unix socket's backlog full (EAGAIN) and must try
-- again. Across processes, the server is a child stopped with SIGSTOP while the clients
-- connect, so every connection waits in the kernel's backlog until it is continued: the
-- worst case of a burst, made deterministic.
--
-- No fixed sleep: every wait has a deadline and a condition.

local raft = require("helios.raft")
local loop = require("helios.loop")
local core = require("helios.core")
local client = require("helios.client")
local resp_client = require("helios.client.resp")
local nh = require("spec.helpers.node")
local kv = require("helios.fsm.kv")

local format = string.format

local REFUSED = "max number of clients reached"

local tmpdir = nh.tmpdir

local on_loop = require("spec.helpers.on_loop")

-- Inside a coroutine on the loop: wait until pred() holds (true) or ms pass (false).
local function wait_until(pred, ms)
    local deadline = core.clock_ms() + ms
    while not pred() do
        if core.clock_ms() > deadline then return false end
        loop.sleep(5)
    end
    return true
end

-- How many clients this process can hold open next to their server's ends (two
-- descriptors each), up to want.
local function clients_we_can_open(want)
    local p = io.popen("ulimit -n")
    local limit = tonumber(p and p:read("*l") or "") or 1024
    if p then p:close() end
    return math.min(want, math.floor((limit - 64) / 2))
end

-- Close an in-process server and let the loop run its close callbacks (a few turns: a
-- connection is shut down before it is closed), so that nothing of it outlives the spec.
local function close_server(srv)
    srv:close()
    for _ = 1, 20 do core.run("nowait") end
end

-- A control server answering every request with ok.
local function control_server(path, opts)
    return assert(core.control_listen(path, function(req, reply)
        reply({ id = req.id, ok = true })
    end, opts))
end

-- A RESP server answering every command with +PONG.
local function resp_server(opts)
    return assert(core.resp_listen("127.0.0.1:0", function() return { ok = "PONG" } end, opts))
end

describe("listeners in this process (clients on the loop)", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() nh.rmrf(dir) end)

    it("more control clients than the backlog holds, connecting at once, all get in", function()
        local path = dir .. "/control.sock"
        local srv = control_server(path)
        finally(function() close_server(srv) end)
        -- Beyond 512 (a backlog of 511 holds 512), some connects find it full.
        local n = clients_we_can_open(600)
        local answered, failures, conns = 0, {}, {}
        on_loop(60000, function()
            local done = 0
            for i = 1, n do
                raft.spawn(function()
                    local c, code, detail = client.connect(path, 20000)
                    local ok
                    if c then ok, code, detail = c:ping(20000) end
                    if ok then
                        answered = answered + 1
                        conns[#conns + 1] = c
                    else
                        failures[#failures + 1] = format("%s %s", tostring(code), tostring(detail))
                    end
                    done = done + 1
                end)
            end
            assert(wait_until(function() return done == n end, 50000), "clients unfinished")
        end)
        assert.are.same({}, failures)
        assert.are.equal(n, answered)
        assert.are.equal(n, srv:clients().clients)
        assert.are.equal(0, srv:clients().refused)
        for _, c in ipairs(conns) do c:close() end
    end)

    it("the control client beyond max_clients gets nil, \"busy\", a clear detail", function()
        local path = dir .. "/control.sock"
        local srv = control_server(path, { max_clients = 3 })
        finally(function() close_server(srv) end)
        on_loop(20000, function()
            local cs = {}
            for i = 1, 3 do
                cs[i] = assert(client.connect(path, 5000))
                assert(cs[i]:ping(5000))
            end
            local extra = assert(client.connect(path, 5000)) -- the kernel accepts; the node refuses
            local ok, code, detail = extra:ping(5000)
            assert.is_nil(ok)
            assert.are.equal("busy", code)
            assert.matches(REFUSED, detail, 1, true)
            assert.matches("max_clients 3", detail, 1, true)
            assert.are.equal("closed", select(2, extra:ping(100)))
            assert.are.same({ clients = 3, refused = 1, max_clients = 3 }, srv:clients())
            -- One leaves: a new client gets in (once the server has seen the close).
            cs[1]:close()
            assert(wait_until(function() return srv:clients().clients == 2 end, 5000))
            local again = assert(client.connect(path, 5000))
            assert(again:ping(5000))
            for i = 2, 3 do cs[i]:close() end
            again:close()
        end)
    end)

    it("the RESP client beyond max_clients reads -ERR max number of clients reached", function()
        local srv = resp_server({ max_clients = 2 })
        finally(function() close_server(srv) end)
        local addr = srv:address()
        on_loop(20000, function()
            local a = assert(resp_client.connect(addr, { timeout_ms = 5000 }))
            local b = assert(resp_client.connect(addr, { timeout_ms = 5000 }))
            assert.are.same({ ok = "PONG" }, a:call("PING"))
            assert.are.same({ ok = "PONG" }, b:call("PING"))
            local c = assert(resp_client.connect(addr, { timeout_ms = 5000 }))
            local v, code, detail = c:call("PING")
            assert.is_nil(v)
            assert.are.equal("ERR", code)
            assert.are.equal(REFUSED, detail)
            -- Then end of file: the connection is closed.
            v, code = c:call("PING")
            assert.is_nil(v)
            assert.is_truthy(code == "closed" or code == "io", tostring(code))
            assert.are.same({ clients = 2, refused = 1, max_clients = 2 }, srv:clients())
            a:close()
            assert(wait_until(function() return srv:clients().clients == 1 end, 5000))
            local d = assert(resp_client.connect(addr, { timeout_ms = 5000 }))
            assert.are.same({ ok = "PONG" }, d:call("PING"))
            b:close()
            d:close()
        end)
    end)

    it("max_clients is checked: an integer from 1 to 1000000", function()
        local path = dir .. "/control.sock"
        for _, bad in ipairs({ 0, -1, 1.5, "10", 1000001 }) do
            assert.has_error(function() core.control_listen(path, function() end,
                { max_clients = bad }) end)
            assert.has_error(function() core.resp_listen("127.0.0.1:0", function() end,
                { max_clients = bad }) end)
            local ok, err = pcall(raft.new, { id = "n", peers = { n = "127.0.0.1:1" },
                data_dir = dir, secret = "s", fsm = kv.new(), max_clients = bad })
            assert.is_false(ok)
            assert.matches("raft.new: max_clients: must be an integer from 1 to 1000000", err,
                1, true)
        end
    end)

    it("a node counts its clients and the refused ones in its metrics", function()
        local port = core.free_port()
        local path = dir .. "/control.sock"
        local node = raft.new{ id = "n", peers = { n = "127.0.0.1:" .. port }, data_dir = dir .. "/n",
                               secret = "s", fsm = kv.new(), control = path, max_clients = 1 }
        local c = { ids = { "n" }, nodes = { n = node } }
        finally(function() nh.stop_all(c) end)
        assert(node:start())
        local ok, err = nh.run_scenario(c, 20000, function()
            local a = assert(client.connect(path, 5000))
            assert(a:ping(5000))
            local b = assert(client.connect(path, 5000))
            local v, code = b:ping(5000)
            assert.is_nil(v)
            assert.are.equal("busy", code)
            local fams = node:metrics()
            local function value(name)
                for _, s in ipairs(fams[name].samples) do
                    if s.labels.server == "control" then return s.value end
                end
            end
            assert.are.equal(1, value("helios_clients"))
            assert.are.equal(1, value("helios_clients_refused_total"))
            a:close()
        end)
        assert(ok, err)
    end)
end)

-- A child process serving a control socket at path and a RESP port, each with opts; it
-- prints the RESP address. Returns its pid and that address; cleanup in finally.
local function spawn_servers(path, opts)
    local code = ([[package.path = %q; package.cpath = %q
local core = require("helios.core")
local opts = %s
local c = assert(core.control_listen(%q, function(req, reply)
    reply({ id = req.id, ok = true }) end, opts))
local r = assert(core.resp_listen("127.0.0.1:0", function() return { ok = "PONG" } end, opts))
io.write(r:address(), "\n") io.stdout:flush()
core.run()]]):format(package.path, package.cpath,
        opts.max_clients and format("{ max_clients = %d }", opts.max_clients) or "{}", path)
    local pid, _, out = assert(core.proc_spawn({ "luajit", "-e", code },
        { stdout_pipe = true, die_with_parent = true }))
    finally(function()
        core.proc_kill(pid, "CONT")
        core.proc_kill(pid, "KILL")
        core.proc_wait(pid, 5000)
        out:close()
    end)
    local addr = out:read_line(10000)
    assert(addr and addr:match("^127%.0%.0%.1:%d+$"), "the child did not start: " .. tostring(addr))
    return pid, addr
end

-- Wait (at most timeout_ms) for every socket of socks to be readable, then read one frame
-- (or one RESP reply with resp) from each: the count of those read and what the first
-- failure was.
local function read_all(socks, timeout_ms, read)
    local got, first_failure = 0, nil
    for i, s in ipairs(socks) do
        local ok, code, detail = read(s, i, timeout_ms)
        if ok then got = got + 1 else first_failure = first_failure or
            format("client %d: %s %s", i, tostring(code), tostring(detail)) end
    end
    return got, first_failure
end

describe("listeners across processes (the server stopped while clients connect)", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() nh.rmrf(dir) end)

    it("256 control clients connecting at once to a busy node all get answers", function()
        local path = dir .. "/control.sock"
        local pid = spawn_servers(path, {})
        core.proc_kill(pid, "STOP") -- nothing is accepted: every connection waits in the backlog
        local socks = {}
        finally(function() for _, s in ipairs(socks) do s:close() end end)
        for i = 1, 256 do
            local s, pending, detail = core.sock_connect_start(path)
            assert(s, format("connect %d: %s %s", i, tostring(pending), tostring(detail)))
            socks[i] = s
        end
        for i, s in ipairs(socks) do
            assert(s:send_frame(core.mp_encode({ id = i, op = "ping" }), 5000))
        end
        core.proc_kill(pid, "CONT")
        local got, failure = read_all(socks, 10000, function(s, i, ms)
            local payload, code, detail = s:recv_frame(ms)
            if not payload then return nil, code, detail end
            local r = core.mp_decode(payload)
            return r.ok and r.id == i, r.code, r.detail
        end)
        assert.is_nil(failure)
        assert.are.equal(256, got)
    end)

    it("a control connect that finds the backlog full waits for room, until its timeout", function()
        local path = dir .. "/control.sock"
        local pid = spawn_servers(path, {})
        core.proc_kill(pid, "STOP")
        local socks = {}
        finally(function() for _, s in ipairs(socks) do s:close() end end)
        -- Fill the backlog (its size is the kernel's to bound: up to 511, or somaxconn).
        local code
        for _ = 1, clients_we_can_open(4096) do
            local s, pending = core.sock_connect_start(path)
            if not s then code = pending break end
            socks[#socks + 1] = s
        end
        assert.are.equal("again", code)
        assert.is_true(#socks >= 128, "a backlog of " .. #socks)
        -- The blocking connect waits (it used to return a socket that was not connected).
        local s, tcode, detail = core.sock_connect(path, 100)
        assert.is_nil(s)
        assert.are.equal("timeout", tcode)
        assert.matches("listen backlog", detail, 1, true)
        -- Once the node accepts, the same connect gets in, and every waiting one is served.
        core.proc_kill(pid, "CONT")
        local late = assert(core.sock_connect(path, 10000))
        socks[#socks + 1] = late
        for i, sock in ipairs(socks) do
            assert(sock:send_frame(core.mp_encode({ id = i, op = "ping" }), 5000))
        end
        local got, failure = read_all(socks, 10000, function(sock, i, ms)
            local payload, rcode, rdetail = sock:recv_frame(ms)
            if not payload then return nil, rcode, rdetail end
            return core.mp_decode(payload).id == i
        end)
        assert.is_nil(failure)
        assert.are.equal(#socks, got)
    end)

    it("256 RESP clients connecting at once to a busy node all get answers", function()
        local pid, addr = spawn_servers(dir .. "/control.sock", {})
        core.proc_kill(pid, "STOP")
        local socks = {}
        finally(function() for _, s in ipairs(socks) do s:close() end end)
        for i = 1, 256 do
            local s, pending, detail = core.sock_connect_start(addr)
            assert(s, format("connect %d: %s %s", i, tostring(pending), tostring(detail)))
            socks[i] = s
            if pending then
                assert(core.poll_fd(s:fileno(), "w", 5000))
                assert(s:finish_connect())
            end
        end
        for _, s in ipairs(socks) do
            assert(s:send_raw(core.resp_command({ "PING" }), 5000))
        end
        core.proc_kill(pid, "CONT")
        local got, failure = read_all(socks, 10000, function(s, _, ms)
            local v, code, detail = s:recv_reply(ms)
            if v == nil then return nil, code, detail end
            return type(v) == "table" and v.ok == "PONG", "reply", tostring(v and v.err)
        end)
        assert.is_nil(failure)
        assert.are.equal(256, got)
    end)

    it("beyond max_clients: a refusal on both servers, and a closed one lets a new one in", function()
        local path = dir .. "/control.sock"
        local _, addr = spawn_servers(path, { max_clients = 2 })
        local open = {}
        finally(function() for _, c in ipairs(open) do c:close() end end)
        local a, b = assert(client.connect(path, 5000)), assert(client.connect(path, 5000))
        open[#open + 1], open[#open + 2] = a, b
        assert(a:ping(5000))
        assert(b:ping(5000))
        local extra = assert(client.connect(path, 5000))
        local ok, code, detail = extra:ping(5000)
        assert.is_nil(ok)
        assert.are.equal("busy", code)
        assert.matches(REFUSED, detail, 1, true)
        local ra = assert(resp_client.connect(addr, { timeout_ms = 5000 }))
        local rb = assert(resp_client.connect(addr, { timeout_ms = 5000 }))
        open[#open + 1], open[#open + 2] = ra, rb
        assert.are.same({ ok = "PONG" }, ra:call("PING"))
        assert.are.same({ ok = "PONG" }, rb:call("PING"))
        local rextra = assert(resp_client.connect(addr, { timeout_ms = 5000 }))
        local v, rcode, rdetail = rextra:call("PING")
        assert.is_nil(v)
        assert.are.equal("ERR", rcode)
        assert.are.equal(REFUSED, rdetail)
        -- One of each leaves: a new client gets in, once the server has seen the close.
        a:close()
        ra:close()
        local function gets_in(try)
            local deadline = core.clock_ms() + 5000
            repeat
                local c, answer = try()
                if answer then open[#open + 1] = c return true end
                if c then c:close() end
                core.sleep_ms(5) -- a poll with a deadline: the server closes on its own time
            until core.clock_ms() > deadline
            return false
        end
        assert.is_true(gets_in(function()
            local c = assert(client.connect(path, 5000))
            return c, c:ping(5000)
        end))
        assert.is_true(gets_in(function()
            local c = assert(resp_client.connect(addr, { timeout_ms = 5000 }))
            local r = c:call("PING")
            return c, type(r) == "table" and r.ok == "PONG"
        end))
    end)
end)

describe("max_clients in the cluster file and on helios node's command line", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() nh.rmrf(dir) end)

    local function cluster_file(extra)
        local path = dir .. "/cluster.lua"
        local f = assert(io.open(path, "w"))
        f:write(format([[return { nodes = { ["node-1"] = "127.0.0.1:9001" }, secret = "s3cret", %s }]],
            extra))
        f:close()
        return path
    end

    -- `helios node` in this process: status, stderr.
    local function helios_node(...)
        local errs = {}
        local code = require("helios.cli").main({ "node", ... }, function() end,
            function(s) errs[#errs + 1] = s end)
        return code, table.concat(errs)
    end

    it("passes the file's max_clients to raft.new, which checks it", function()
        local clusterfile = require("helios.clusterfile")
        local conf = assert(clusterfile.load(cluster_file("max_clients = 20000")))
        assert.are.equal(20000, assert(clusterfile.node_options(conf, "node-1")).max_clients)
        local code, err = helios_node("--config", cluster_file("max_clients = 0"), "--id", "node-1")
        assert.are.equal(1, code)
        assert.matches("max_clients: must be an integer from 1 to 1000000 (got 0)", err, 1, true)
    end)

    -- The soft limit of open files of process pid (/proc/PID/limits), or nil.
    local function nofile(pid)
        local f = io.open("/proc/" .. pid .. "/limits")
        if not f then return nil end
        local text = f:read("*a")
        f:close()
        return tonumber(text:match("Max open files%s+(%d+)"))
    end

    it("raises helios node's open-file limit toward what max_clients needs", function()
        local cli = require("helios.cli")
        local _, hard = core.raise_nofile(0) -- asks for nothing: reads the limits
        local want = math.min(2 * 3000 + 256, hard)
        if hard < 1024 + 256 then
            pending("the hard open-file limit " .. hard .. " leaves nothing to raise")
            return
        end
        local file = dir .. "/cluster-nofile.lua"
        local f = assert(io.open(file, "w"))
        f:write(format([[return { nodes = { ["node-1"] = "127.0.0.1:%d" }, secret = "s3cret",
                                  data_dir = %q, max_clients = 3000 }]],
            assert(core.free_port()), dir .. "/data"))
        f:close()
        local argv = cli.helios_command()
        for _, a in ipairs({ "node", "--config", file, "--id", "node-1" }) do
            argv[#argv + 1] = a
        end
        for i, a in ipairs(argv) do argv[i] = require("helios.util.shell").quote(a) end
        -- Started with a soft limit of 1024, as many systems give a login shell.
        local pid = assert(core.proc_spawn({ "sh", "-c", "ulimit -Sn 1024 && exec "
                .. table.concat(argv, " ") }, { stdout = dir .. "/node.log", stderr = "stdout",
                env = { LUA_PATH = package.path, LUA_CPATH = package.cpath,
                        HELIOS_INHERIT_PATHS = "1" }, die_with_parent = true }))
        finally(function() require("helios.util.process").stop(pid, "TERM", 5000) end)
        local deadline, got = core.clock_ms() + 20000, nil
        repeat
            got = nofile(pid)
            if got == want then break end
            core.sleep_ms(20)
        until core.clock_ms() > deadline
        assert.are.equal(want, got, "the node's soft open-file limit")
    end)

    it("refuses a bad --max-clients with a usage error", function()
        for _, bad in ipairs({ "0", "abc", "1000001" }) do
            local code, err = helios_node("--config", cluster_file(""), "--id", "node-1",
                "--max-clients", bad)
            assert.are.equal(2, code)
            assert.matches("--max-clients expects an integer from 1 to 1000000", err, 1, true)
        end
    end)
end)
