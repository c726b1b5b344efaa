-- helios.client over RESP2: helios.client.resp's connection (call, pipelining, AUTH)
-- against the real redis-server, blocking; and helios.client's RESP clients against fake
-- ATLAS nodes served by helios.resp on this process's loop (the client runs in a coroutine
-- on the same loop, so it must yield for the fakes to answer at all): MOVED, CLUSTERDOWN,
-- TRYAGAIN, nodes down, writes never sent twice, sessions retried with the same number,
-- the leader's address.
--
-- No fixed sleep synchronizes anything: waits are on conditions with deadlines. The fakes'
-- misbehaviour is scripted per request (fc.hook), not timed.
local core = require("helios.core")
local loop = require("helios.loop")
local resp = require("helios.resp")
local client = require("helios.client")
local rclient = require("helios.client.resp")

local format = string.format

local on_loop = require("spec.helpers.on_loop")

-- ---------------------------------------------------------------------------------------
-- The real redis-server.

local function have(cmd)
    return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == 0
end

-- Start redis-server on a free port (extra args appended); wait until it answers PING.
local function start_redis(extra)
    local port = assert(core.free_port())
    local dir = os.tmpname()
    os.remove(dir)
    assert(core.mkdir_p(dir, tonumber("755", 8)))
    local argv = { "redis-server", "--port", tostring(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", dir }
    for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
    local pid = assert(core.proc_spawn(argv, { stdout = dir .. "/redis.log",
        stderr = "stdout", die_with_parent = true }))
    local addr = "127.0.0.1:" .. port
    local deadline = core.clock_ms() + 10000
    while true do
        local s = core.sock_connect(addr, 200)
        if s then
            s:send_raw(core.resp_command({ "PING" }), 1000)
            local v = s:recv_reply(1000)
            s:close()
            -- With requirepass PING answers NOAUTH: the server is up all the same.
            if type(v) == "table" then break end
        end
        if core.clock_ms() > deadline then
            core.proc_kill(pid, "KILL")
            core.proc_wait(pid, 2000)
            error("redis-server did not answer PING within 10 s")
        end
        core.poll_fd(-1, "r", 10) -- the pause between two attempts to connect
    end
    return {
        addr = addr,
        stop = function()
            core.proc_kill(pid, "KILL")
            core.proc_wait(pid, 5000)
            os.execute("rm -rf '" .. dir .. "'")
        end,
    }
end

local describe_redis = have("redis-server") and describe or pending

describe_redis("helios.client.resp against redis-server", function()
    local redis
    setup(function() redis = start_redis() end)
    teardown(function() if redis then redis.stop() end end)

    it("calls commands and maps the replies", function()
        local c = assert(rclient.connect(redis.addr, { timeout_ms = 2000 }))
        assert.same({ ok = "OK" }, c:call("SET", "k", "v"))
        assert.equal("v", c:call({ "GET", "k" }))
        assert.equal(false, c:call("GET", "missing"))
        assert.equal(1, c:call("DEL", "k"))
        assert.equal(5, c:call("INCRBY", "n", 5))
        assert.same({ nil, "ERR", "value is not an integer or out of range" },
            { c:call("INCRBY", "n", "x") })
        assert.same({ nil, "WRONGTYPE" }, { (function()
            c:call("RPUSH", "list", "a")
            local v, code = c:call("GET", "list")
            return v, code
        end)() })
        assert.same({ n = 3, "a", "b", "c" }, (function()
            c:call("RPUSH", "l2", "a", "b", "c")
            return c:call("LRANGE", "l2", 0, -1)
        end)())
        assert.same({ ok = "PONG" }, c:call("PING"))
        -- Binary-safe, and large.
        local big = ("\0\r\n" .. ("x"):rep(100)):rep(10000)
        c:call("SET", "big", big)
        assert.equal(big, c:call("GET", "big"))
        c:close()
        assert.same({ nil, "closed" }, { (function()
            local v, code = c:call("PING"); return v, code end)() })
    end)

    it("has the convenience commands of helios.client", function()
        local c = assert(client.connect(redis.addr))
        assert.is_true(c:set("a", "1"))
        assert.is_false(c:set("a", "2", nil, { nx = true }))
        assert.equal("1", c:get("a"))
        assert.is_true(c:set("a", "3", 100000, { xx = true }))
        assert.is_true(c:call("PTTL", "a") > 0)
        assert.equal(4, c:incr("a"))
        assert.equal(14, c:incr("a", 10))
        assert.equal(1, c:delete("a"))
        assert.equal(false, c:get("a"))
        assert.is_false(c:set("a", "x", nil, { xx = true }))
        c:close()
    end)

    it("pipelines: send never waits, receive returns the replies in order", function()
        local c = assert(rclient.connect(redis.addr))
        c:call("DEL", "p")
        -- Far more than the socket buffers hold: send must queue, receive must flush.
        local value = ("v"):rep(64 * 1024)
        for i = 1, 200 do
            assert(c:send({ "SET", "p" .. i, value }))
            assert(c:send({ "INCR", "p" }))
        end
        assert.equal(400, c:owed())
        for i = 1, 200 do
            assert.same({ ok = "OK" }, c:receive(5000))
            assert.equal(i, c:receive(5000))
        end
        assert.equal(0, c:owed())
        assert.same({ nil, "io" }, { (function()
            local v, code = c:receive(0); return v, code end)() })
        -- An error reply is a value in the pipeline.
        c:send({ "INCR", "p1" })
        assert.same({ err = "ERR value is not an integer or out of range" }, c:receive())
        -- A call after a timed-out one gets its own reply, not the late one.
        c:send({ "BLPOP", "nothing", "0.3" })
        assert.same({ nil, "timeout" }, { (function()
            local v, code = c:receive(10); return v, code end)() })
        assert.equal("value", (function()
            c:call("SET", "after", "value"); return c:call("GET", "after") end)())
        c:close()
    end)

    it("yields on the loop while the server takes its time", function()
        on_loop(10000, function()
            local ticks = 0
            local timer = loop.every(10, function() ticks = ticks + 1 end)
            local c = assert(rclient.connect(redis.addr))
            assert.same({ ok = "PONG" }, c:call("PING"))
            local v = c:call("BLPOP", "nothing", "0.3") -- answers false after 300 ms
            timer:stop()
            assert.equal(false, v)
            assert(ticks >= 5, format("%d ticks during a 300 ms call", ticks))
            c:close()
        end)
    end)

    it("AUTHs with a password", function()
        local secured = start_redis({ "--requirepass", "s3cret" })
        local ok, err = pcall(function()
            local c = assert(rclient.connect(secured.addr, { password = "s3cret" }))
            assert.same({ ok = "PONG" }, c:call("PING"))
            c:close()
            local bad, code = rclient.connect(secured.addr, { password = "wrong" })
            assert.is_nil(bad)
            assert.equal("WRONGPASS", code)
            local none = assert(rclient.connect(secured.addr))
            assert.same({ nil, "NOAUTH" }, { (function()
                local v, c2 = none:call("GET", "x"); return v, c2 end)() })
            none:close()
        end)
        secured.stop()
        assert(ok, err)
    end)

    it("fails cleanly when nothing listens", function()
        local port = assert(core.free_port())
        local c, code = rclient.connect("127.0.0.1:" .. port, { timeout_ms = 1000 })
        assert.is_nil(c)
        assert.equal("refused", code)
    end)
end)

-- ---------------------------------------------------------------------------------------
-- Fake ATLAS nodes.

-- n nodes on this loop sharing one store; fc.leader is the index of the leading node (nil:
-- an election). A node that does not lead answers -MOVED 0 <leader's address> (or
-- -CLUSTERDOWN). fc.hook(i, argv, conn), when set, may script a request: return
--   { reply = v }  answer v instead
--   "hang"         never answer
--   "apply_hang"   run the command, never answer
--   "apply_crash"  run the command, then close node i (its connections drop)
local function fake_cluster(n, opts)
    opts = opts or {}
    local fc = { nodes = {}, leader = 1, store = {}, applied = 0, results = {},
        sessions = {}, next_sid = 100, hung = {}, requests = {} }

    local function exec(argv)
        local name = argv[1]:upper()
        if name == "GET" then return fc.store[argv[2]] end
        fc.applied = fc.applied + 1
        if name == "SET" then
            fc.store[argv[2]] = argv[3]
            return true
        elseif name == "DEL" then
            local had = fc.store[argv[2]] ~= nil
            fc.store[argv[2]] = nil
            return had and 1 or 0
        elseif name == "INCR" or name == "INCRBY" then
            local v = tonumber(fc.store[argv[2]] or "0")
            if not v then return resp.err("ERR value is not an integer or out of range") end
            v = v + (name == "INCR" and 1 or tonumber(argv[3]))
            fc.store[argv[2]] = tostring(v)
            return v
        elseif name == "ATLAS.SESSION" then
            fc.next_sid = fc.next_sid + 1
            fc.sessions[fc.next_sid] = true
            return fc.next_sid
        elseif name == "ATLAS.NUMBERED" then
            local sid, seq = tonumber(argv[2]), tonumber(argv[3])
            if not fc.sessions[sid] then return resp.err("SESSIONEXPIRED unknown session") end
            local key = sid .. ":" .. seq
            if fc.results[key] == nil then
                fc.applied = fc.applied - 1 -- the numbered command counts, not the wrapper
                local inner = { unpack(argv, 4) }
                local r = exec(inner)
                fc.results[key] = r == nil and false or r
            end
            return fc.results[key]
        end
        return resp.err("ERR unknown_command: " .. name)
    end

    local function handler(i)
        return function(conn, argv)
            fc.requests[#fc.requests + 1] = { node = i, argv = argv }
            if argv[1]:upper() == "INFO" then
                local l = fc.leader and fc.nodes[fc.leader].addr or ""
                return "# Replication\r\nrole:" .. (fc.leader == i and "leader" or "follower")
                    .. "\r\nleader_client_addr:" .. l .. "\r\n"
            end
            if fc.leader == nil then return resp.err("CLUSTERDOWN no leader elected") end
            if fc.leader ~= i then return resp.err("MOVED 0 " .. fc.nodes[fc.leader].addr) end
            local act = fc.hook and fc.hook(i, argv, conn)
            if type(act) == "table" then return act.reply end
            if act == "hang" or act == "apply_hang" or act == "apply_crash" then
                if act ~= "hang" then exec(argv) end
                fc.hung[#fc.hung + 1] = conn:defer()
                if act == "apply_crash" then loop.after(0, function() fc.crash(i) end) end
                return
            end
            return exec(argv)
        end
    end

    local names = { "GET", "SET", "DEL", "INCR", "INCRBY", "ATLAS.SESSION", "ATLAS.NUMBERED",
        "INFO" }
    for i = 1, n do
        local commands = {}
        for _, name in ipairs(names) do commands[name] = { arity = -1, fn = handler(i) } end
        local srv = assert(resp.serve("127.0.0.1:0", { commands = commands,
            password = opts.password }))
        fc.nodes[i] = { srv = srv, addr = srv:address() }
    end

    function fc.crash(i)
        if fc.nodes[i].srv then fc.nodes[i].srv:close() end
        fc.nodes[i].srv = nil
    end

    function fc.addrs()
        local t = {}
        for i = 1, n do t[i] = fc.nodes[i].addr end
        return t
    end

    function fc.close()
        for i = 1, n do fc.crash(i) end
    end

    -- Requests node i got for a command name.
    function fc.count(i, name)
        local k = 0
        for _, r in ipairs(fc.requests) do
            if r.node == i and r.argv[1]:upper() == name then k = k + 1 end
        end
        return k
    end
    return fc
end

describe("helios.client over RESP, against fake ATLAS nodes", function()
    local fc
    after_each(function()
        if fc then fc.close() end
        fc = nil
    end)

    it("connects to one node: call, the convenience commands, pipelining", function()
        fc = fake_cluster(1)
        on_loop(10000, function()
            local c = assert(client.connect(fc.nodes[1].addr))
            assert.is_true(c:set("k", "v"))
            assert.equal("v", c:get("k"))
            assert.equal(false, c:get("nope"))
            assert.equal(1, c:incr("n"))
            assert.equal(11, c:incr("n", 10))
            assert.same({ nil, "ERR", "value is not an integer or out of range" },
                { c:incr("k") })
            assert.equal(1, c:delete("k"))
            assert.equal(0, c:delete("k"))
            for _ = 1, 100 do assert(c:send({ "INCR", "p" })) end
            for i = 1, 100 do assert.equal(i, c:receive()) end
            c:close()
        end)
    end)

    it("follows MOVED to the leader and stays there", function()
        fc = fake_cluster(3)
        fc.leader = 3
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs())
            assert.same({ ok = "OK" }, cc:call("SET", "k", "v"))
            assert.equal(fc.nodes[3].addr, cc.leader_addr)
            assert.equal("v", cc:get("k"))
            assert.equal(1, fc.count(1, "SET")) -- asked first, answered MOVED
            assert.equal(1, fc.count(3, "SET"))
            assert.equal(1, fc.count(3, "GET")) -- straight to the leader
            assert.equal(0, fc.count(1, "GET") + fc.count(2, "GET"))
            -- A new leader: the next call is redirected once.
            fc.leader = 2
            assert.equal(2, (function() cc:incr("n"); return cc:incr("n") end)())
            assert.equal(fc.nodes[2].addr, cc.leader_addr)
            assert.equal(fc.nodes[2].addr, cc:leader())
            cc:close()
        end)
    end)

    it("takes a table id -> address, and learns a leader it was not given", function()
        fc = fake_cluster(3)
        fc.leader = 3
        on_loop(10000, function()
            -- Only node-1 is known: MOVED names node 3.
            local cc = client.cluster({ ["node-1"] = fc.nodes[1].addr })
            assert.is_true(cc:set("k", "v"))
            assert.equal(fc.nodes[3].addr, cc.leader_addr)
            cc:close()
        end)
    end)

    it("waits out CLUSTERDOWN and TRYAGAIN, trying the nodes in turn", function()
        fc = fake_cluster(3)
        fc.leader = nil
        -- CLUSTERDOWN until the client has asked three times, then node 2 leads and
        -- answers TRYAGAIN once.
        local tried_again = false
        fc.hook = function()
            if not tried_again then
                tried_again = true
                return { reply = resp.err("TRYAGAIN leadership transfer under way") }
            end
        end
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs(), { timeout_ms = 5000 })
            -- The election ends after three CLUSTERDOWN answers.
            local t = loop.every(1, function()
                local downs = 0
                for _, r in ipairs(fc.requests) do
                    if r.argv[1] == "SET" then downs = downs + 1 end
                end
                if downs >= 3 and fc.leader == nil then fc.leader = 2 end
            end)
            assert.is_true(cc:set("k", "v"))
            t:stop()
            assert.is_true(tried_again)
            assert.equal("v", fc.store.k)
            assert.equal(1, fc.applied)
            -- Every node was asked during the election.
            for i = 1, 3 do assert(fc.count(i, "SET") >= 1, "node " .. i .. " asked") end
            cc:close()
        end)
    end)

    it("skips a node that refuses connections", function()
        fc = fake_cluster(2)
        fc.leader = 2
        local dead = "127.0.0.1:" .. assert(core.free_port())
        on_loop(10000, function()
            local cc = client.cluster({ dead, fc.nodes[1].addr, fc.nodes[2].addr })
            assert.is_true(cc:set("k", "v"))
            assert.equal("v", cc:get("k"))
            cc:close()
        end)
    end)

    it("gives up with \"timeout\" at its timeout_ms", function()
        fc = fake_cluster(2)
        fc.leader = nil
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs(), { timeout_ms = 300 })
            local t0 = core.clock_ms()
            local v, code, detail = cc:get("k")
            local took = core.clock_ms() - t0
            assert.is_nil(v)
            assert.equal("timeout", code)
            assert.matches("CLUSTERDOWN", detail)
            assert(took >= 300 and took < 2000, format("took %.0f ms", took))
            cc:close()
        end)
    end)

    it("returns error replies that are not about the leader at once", function()
        fc = fake_cluster(2)
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs())
            cc:set("k", "text")
            assert.same({ nil, "ERR", "value is not an integer or out of range" },
                { cc:incr("k") })
            assert.equal(1, fc.count(1, "INCR"))
            cc:close()
        end)
    end)

    it("never sends a write twice outside a session: \"unknown\"", function()
        fc = fake_cluster(2)
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs(), { timeout_ms = 3000, attempt_ms = 200 })
            -- The leader applies, and then never answers.
            fc.hook = function(_, argv)
                if argv[1] == "INCR" then fc.hook = nil; return "apply_hang" end
            end
            local v, code, detail = cc:incr("n")
            assert.is_nil(v)
            assert.equal("unknown", code, detail)
            assert.equal(1, fc.count(1, "INCR") + fc.count(2, "INCR"))
            assert.equal("1", fc.store.n)
            -- The leader applies and crashes before it answers: node 2 takes over.
            fc.hook = function(i, argv)
                if argv[1] == "INCR" then
                    fc.hook = nil
                    fc.leader = i == 1 and 2 or 1
                    return "apply_crash"
                end
            end
            v, code, detail = cc:incr("n")
            assert.is_nil(v)
            assert.equal("unknown", code, detail)
            assert.equal("2", fc.store.n)
            -- The client goes on with the new leader.
            assert.equal(3, cc:incr("n"))
            cc:close()
        end)
    end)

    it("retries a read after the node did not answer", function()
        fc = fake_cluster(2)
        fc.store.k = "v"
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs(), { timeout_ms = 3000, attempt_ms = 200 })
            fc.hook = function(_, argv)
                if argv[1] == "GET" then fc.hook = nil; return "hang" end
            end
            assert.equal("v", cc:get("k"))
            assert.equal(2, fc.count(1, "GET"))
            cc:close()
        end)
    end)

    it("does not send into a connection the server closed since", function()
        fc = fake_cluster(2)
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs(), { attempt_ms = 1000 })
            assert.equal(1, cc:incr("n"))
            local conn = cc.conns[fc.nodes[1].addr]
            fc.crash(1)
            fc.leader = 2
            -- Wait until the end of the stream reached the client's socket.
            assert(loop.wait_sock(conn.sock, "r", 5000))
            -- A write: safe to send to the next node, since node 1 never got it.
            assert.equal(2, cc:incr("n"))
            cc:close()
        end)
    end)

    it("runs a session's writes exactly once across crashes and timeouts", function()
        fc = fake_cluster(3)
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs(), { timeout_ms = 5000, attempt_ms = 200 })
            local s = assert(cc:session())
            assert.equal(101, s.id)
            assert.equal(1, s:call("INCR", "n"))
            -- The leader applies the next one and crashes before it answers; node 2 leads
            -- and answers the retry (same sid, same seq) with the first result.
            fc.hook = function(_, argv)
                if argv[1] == "ATLAS.NUMBERED" then
                    fc.hook = nil
                    fc.leader = 2
                    return "apply_crash"
                end
            end
            assert.equal(2, s:incr("n"))
            assert.equal("2", fc.store.n)
            -- Applied, then no answer until the attempt times out: retried, once applied.
            fc.hook = function(_, argv)
                if argv[1] == "ATLAS.NUMBERED" then fc.hook = nil; return "apply_hang" end
            end
            assert.equal(3, s:call("INCR", "n"))
            assert.equal("3", fc.store.n)
            assert.equal(3, s.seq)
            -- Every numbered request carried the session id; seq 2 and 3 were sent again
            -- (to a follower that redirected, maybe, and to the leader).
            local seqs = {}
            for _, r in ipairs(fc.requests) do
                if r.argv[1] == "ATLAS.NUMBERED" then
                    assert.equal("101", r.argv[2])
                    local q = tonumber(r.argv[3])
                    seqs[q] = (seqs[q] or 0) + 1
                end
            end
            assert.equal(1, seqs[1])
            assert(seqs[2] >= 2 and seqs[3] >= 2, "seq 2 and 3 retried")
            assert.equal(3, #seqs)
            -- DECR goes numbered as INCRBY; reads are not numbered.
            assert.equal(2, s:call("DECR", "n"))
            assert.equal("2", s:get("n"))
            assert.equal(4, s.seq)
            assert.is_true(s:set("k", "v"))
            assert.equal(1, s:delete("k"))
            -- An unknown session.
            s.id = 999
            assert.same({ nil, "SESSIONEXPIRED" }, { (function()
                local v, code = s:incr("n"); return v, code end)() })
            cc:close()
        end)
    end)

    it("finds the leader's client address", function()
        fc = fake_cluster(3)
        fc.leader = 2
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs())
            assert.equal(fc.nodes[2].addr, cc:leader())
            fc.leader = nil
            cc.leader_addr = nil
            local v, code = cc:leader(100)
            assert.same({ nil, "timeout" }, { v, code })
            cc:close()
        end)
    end)

    it("AUTHs every connection with the cluster's password", function()
        fc = fake_cluster(2, { password = "pw" })
        fc.leader = 2
        on_loop(10000, function()
            local cc = client.cluster(fc.addrs(), { password = "pw" })
            assert.is_true(cc:set("k", "v"))
            local bad = client.cluster(fc.addrs(), { password = "nope" })
            assert.same({ nil, "WRONGPASS" }, { (function()
                local v, code = bad:get("k"); return v, code end)() })
            local c = assert(client.connect(fc.nodes[2].addr, { password = "pw" }))
            assert.equal("v", c:get("k"))
            c:close()
            cc:close()
        end)
    end)

    it("keeps the control-socket forms apart", function()
        assert.is_true(client.is_resp_address("127.0.0.1:7001"))
        assert.is_true(client.is_resp_address("localhost:7001"))
        assert.is_false(client.is_resp_address("./data/node-1/control.sock"))
        assert.is_false(client.is_resp_address("/tmp/x:1"))
        assert.has_error(function()
            client.cluster({ a = "127.0.0.1:7001", b = "./data/control.sock" })
        end)
    end)
end)
