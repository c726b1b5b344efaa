-- The Redis-protocol client port: core.resp_listen (csrc/lua/resp_server.c) with the
-- commands of helios.resp, driven by raw sockets and by the real redis-cli.
-- The server runs on this process's loop: every wait below runs the loop ("nowait") and
-- polls the client socket, until a condition or a deadline.
local core = require("helios.core")
local resp = require("helios.resp")

local DEADLINE_MS = 5000

local function pump()
    core.run("nowait")
end

local function wait_for(cond, what)
    local deadline = core.clock_ms() + DEADLINE_MS
    while not cond() do
        if core.clock_ms() > deadline then error("timed out waiting for " .. what, 2) end
        pump()
        core.sleep_ms(1)
    end
end

-- A raw client: send bytes, read whole replies as their raw RESP text.
local Client = {}
Client.__index = Client

local function connect(srv)
    local s = assert(core.sock_connect(srv:address(), 1000))
    return setmetatable({ s = s }, Client)
end

function Client:send(bytes)
    local ok, code, detail = self.s:try_send_raw(bytes)
    assert(ok or code == "again", detail)
    wait_for(function()
        local done, c = self.s:try_flush()
        pump()
        return done or c ~= "again"
    end, "send")
end

-- One line with its "\n", or nil, "closed".
function Client:line()
    local deadline = core.clock_ms() + DEADLINE_MS
    while true do
        local l, code = self.s:try_read_line()
        if l then return l .. "\n" end
        if code ~= "again" then return nil, code end
        if core.clock_ms() > deadline then error("no reply line within the deadline", 2) end
        pump()
        core.poll_fd(self.s:fileno(), "r", 2)
    end
end

function Client:reply()
    local l, code = self:line()
    if not l then return nil, code end
    local t, n = l:sub(1, 1), tonumber(l:match("^.(%-?%d+)"))
    if t == "$" and n >= 0 then
        local body = ""
        while #body < n + 2 do body = body .. assert(self:line()) end
        return l .. body
    elseif t == "*" and n > 0 then
        local out = { l }
        for _ = 1, n do out[#out + 1] = assert(self:reply()) end
        return table.concat(out)
    end
    return l
end

-- The connection was closed by the server: reading finds the end of the stream.
function Client:closed()
    local l, code = self:line()
    return l == nil and code == "closed", l
end

function Client:close() self.s:close() end

local function cmd(...)
    local args = { ... }
    local out = { "*" .. #args .. "\r\n" }
    for _, a in ipairs(args) do out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n" end
    return table.concat(out)
end

describe("resp server", function()
    local srv, calls, answers, store

    -- A small store, and SLOW: answered by a timer, to check the order of replies.
    local function start(opts)
        opts = opts or {}
        calls, answers, store = {}, {}, {}
        opts.commands = opts.commands or {
            GET = { arity = 2, fn = function(_, argv) return store[argv[2]] end },
            SET = { arity = 3, fn = function(_, argv) store[argv[2]] = argv[3]; return resp.OK end },
            SLOW = { arity = 3, fn = function(conn, argv)
                calls[#calls + 1] = argv[2]
                local answer = conn:defer()
                answers[#answers + 1] = answer
                core.timer(tonumber(argv[3]), 0, function() answer(argv[2]) end)
            end },
            LATER = { arity = 2, fn = function(conn, argv)
                calls[#calls + 1] = argv[2]
                answers[#answers + 1] = conn:defer()
            end },
            BIG = { arity = 2, fn = function(_, argv)
                calls[#calls + 1] = argv[2]
                return ("x"):rep(1024 * 1024)
            end },
            BOOM = { arity = 1, fn = function() error("kaboom", 0) end },
            DEFERBOOM = { arity = 1, fn = function(conn)
                answers[#answers + 1] = conn:defer()
                error("deferred, then kaboom", 0)
            end },
            BAD = { arity = 1, fn = function() return print end },
        }
        srv = assert(resp.serve("127.0.0.1:0", opts))
    end

    after_each(function()
        if srv then srv:close() end
        srv = nil
        pump()
    end)

    it("listens on an ephemeral port and answers inline and array requests", function()
        start()
        assert.matches("^127%.0%.0%.1:%d+$", srv:address())
        assert.is_not.equal("127.0.0.1:0", srv:address())
        local c = connect(srv)
        c:send("PING\r\n")
        assert.equal("+PONG\r\n", c:reply())
        c:send(cmd("ping", "hi there"))
        assert.equal("$8\r\nhi there\r\n", c:reply())
        c:send(cmd("ECHO", "a\r\nb"))
        assert.equal("$4\r\na\r\nb\r\n", c:reply())
        c:send(cmd("SELECT", "0") .. cmd("SELECT", "1") .. cmd("COMMAND", "DOCS"))
        assert.equal("+OK\r\n", c:reply())
        assert.equal("-ERR DB index is out of range\r\n", c:reply())
        assert.equal("*0\r\n", c:reply())
        c:close()
    end)

    it("words unknown commands and wrong arity as Redis does", function()
        start()
        local c = connect(srv)
        c:send(cmd("FOO", "a", "b") .. cmd("get") .. cmd("Get", "k", "x") .. cmd("nope"))
        assert.equal("-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n", c:reply())
        assert.equal("-ERR wrong number of arguments for 'get' command\r\n", c:reply())
        assert.equal("-ERR wrong number of arguments for 'get' command\r\n", c:reply())
        assert.equal("-ERR unknown command 'nope', with args beginning with: \r\n", c:reply())
        c:close()
    end)

    it("answers pipelined requests in request order, even when answered out of order", function()
        start()
        local c = connect(srv)
        c:send(cmd("SLOW", "first", "60") .. cmd("SET", "k", "v") .. cmd("SLOW", "second", "1") ..
            "GET k\r\n" .. cmd("PING"))
        assert.equal("$5\r\nfirst\r\n", c:reply())
        assert.equal("+OK\r\n", c:reply())
        assert.equal("$6\r\nsecond\r\n", c:reply())
        assert.equal("$1\r\nv\r\n", c:reply())
        assert.equal("+PONG\r\n", c:reply())
        c:close()
    end)

    it("turns a handler error into -ERR and goes on", function()
        start()
        local c = connect(srv)
        c:send(cmd("BOOM") .. cmd("BAD") .. cmd("DEFERBOOM") .. cmd("PING"))
        assert.equal("-ERR kaboom\r\n", c:reply())
        assert.matches("^%-ERR resp reply: .*no RESP form\r\n$", c:reply())
        assert.equal("-ERR deferred, then kaboom\r\n", c:reply())
        assert.equal("+PONG\r\n", c:reply())
        assert.is_false(answers[1]("too late"))
        c:close()
    end)

    it("answers a malformed request with a protocol error and closes, after earlier replies", function()
        start()
        local c = connect(srv)
        c:send("PING\r\n" .. cmd("SLOW", "x", "20") .. "*1\r\n$-3\r\nPING\r\n")
        assert.equal("+PONG\r\n", c:reply())
        assert.equal("$1\r\nx\r\n", c:reply())
        assert.equal("-ERR Protocol error: invalid bulk length\r\n", c:reply())
        assert.is_true(c:closed())
        -- The server goes on, for this client's next connection and for others.
        local garbage = { "*abc\r\n", "*2\r\n+OK\r\n", "SET a \"b\n", "*1\r\n$999999999999\r\n" }
        for _, g in ipairs(garbage) do
            local d = connect(srv)
            d:send(g)
            assert.matches("^%-ERR Protocol error: ", (d:reply()))
            assert.is_true(d:closed())
        end
        -- Binary junk that is not an array is an inline command, as redis-server reads it.
        local e = connect(srv)
        e:send("\0\1\255 x\r\nPING\r\n")
        assert.matches("^%-ERR unknown command '\0\1\255', with args beginning with: 'x' \r\n$",
            (e:reply()))
        assert.equal("+PONG\r\n", e:reply())
        e:close()
    end)

    it("refuses oversized requests as configured", function()
        start({ max_bulk = 8, max_args = 3, max_inline = 32 })
        local c = connect(srv)
        c:send(cmd("ECHO", "123456789"))
        assert.equal("-ERR Protocol error: invalid bulk length\r\n", c:reply())
        assert.is_true(c:closed())
        c = connect(srv)
        c:send(("x"):rep(40))
        assert.equal("-ERR Protocol error: too big inline request\r\n", c:reply())
        assert.is_true(c:closed())
        c = connect(srv)
        c:send("*4\r\n")
        assert.equal("-ERR Protocol error: invalid multibulk length\r\n", c:reply())
        assert.is_true(c:closed())
    end)

    it("costs nothing when a client disconnects mid-request or before its answer", function()
        start()
        local c = connect(srv)
        c:send("*2\r\n$4\r\nSLOW\r\n$10\r\nab")
        c:close()
        local d = connect(srv)
        d:send(cmd("LATER", "pending"))
        wait_for(function() return #answers == 1 end, "the LATER call")
        d:close()
        -- The server notices the close; the late answer finds no connection.
        wait_for(function() return answers[1]("late") == false end, "the answer to be refused")
        assert.same({ "pending" }, calls) -- the partial SLOW was never run
        local e = connect(srv)
        e:send("PING\r\n")
        assert.equal("+PONG\r\n", e:reply())
        e:close()
    end)

    it("answers once per deferred request", function()
        start()
        local c = connect(srv)
        c:send(cmd("LATER", "a") .. cmd("PING"))
        wait_for(function() return #answers == 1 end, "the LATER call")
        assert.is_true(answers[1]({ "x", 2, { ok = "y" } }))
        assert.is_false(answers[1]("again"))
        assert.equal("*3\r\n$1\r\nx\r\n:2\r\n+y\r\n", c:reply())
        assert.equal("+PONG\r\n", c:reply())
        c:close()
    end)

    it("stops reading while max_pending requests are unanswered", function()
        start({ max_pending = 2 })
        local c = connect(srv)
        c:send(cmd("LATER", "1") .. cmd("LATER", "2") .. cmd("LATER", "3") .. cmd("LATER", "4"))
        wait_for(function() return #calls == 2 end, "two calls")
        for _ = 1, 20 do pump(); core.sleep_ms(1) end
        assert.same({ "1", "2" }, calls)
        answers[1]("one")
        assert.equal("$3\r\none\r\n", c:reply())
        wait_for(function() return #calls == 3 end, "the third call")
        answers[2]("two"); answers[3]("three")
        wait_for(function() return #calls == 4 end, "the fourth call")
        answers[4]("four")
        assert.equal("$3\r\ntwo\r\n", c:reply())
        assert.equal("$5\r\nthree\r\n", c:reply())
        assert.equal("$4\r\nfour\r\n", c:reply())
        c:close()
    end)

    it("stops answering while a client does not read more than max_output of replies", function()
        start({ max_output = 64 * 1024 })
        local c = connect(srv)
        local reqs = {}
        for i = 1, 64 do reqs[i] = cmd("BIG", tostring(i)) end
        c:send(table.concat(reqs))
        wait_for(function() return #calls > 0 end, "the first BIG")
        for _ = 1, 100 do pump(); core.sleep_ms(1) end
        -- 64 MiB of replies do not fit the socket buffers: the server waits for the client.
        assert.is_true(#calls < 64, "calls: " .. #calls)
        for _ = 1, 64 do
            local r = c:reply()
            assert.equal(1024 * 1024 + 12, #r)
        end
        assert.equal(64, #calls)
        c:close()
    end)

    it("requires AUTH when a password is set", function()
        start({ password = "s3cret" })
        local c = connect(srv)
        c:send(cmd("PING") .. cmd("AUTH", "wrong") .. cmd("PING") .. cmd("AUTH", "s3cret") ..
            cmd("PING") .. cmd("AUTH", "default", "s3cret") .. cmd("AUTH", "bob", "s3cret"))
        assert.equal("-NOAUTH Authentication required.\r\n", c:reply())
        assert.equal("-WRONGPASS invalid username-password pair or user is disabled.\r\n", c:reply())
        assert.equal("-NOAUTH Authentication required.\r\n", c:reply())
        assert.equal("+OK\r\n", c:reply())
        assert.equal("+PONG\r\n", c:reply())
        assert.equal("+OK\r\n", c:reply())
        assert.equal("-WRONGPASS invalid username-password pair or user is disabled.\r\n", c:reply())
        c:close()
        -- Authentication belongs to the connection.
        local d = connect(srv)
        d:send(cmd("PING"))
        assert.equal("-NOAUTH Authentication required.\r\n", d:reply())
        d:close()
    end)

    it("answers AUTH without a password as Redis does", function()
        start()
        local c = connect(srv)
        c:send(cmd("AUTH", "x"))
        assert.matches("^%-ERR AUTH <password> called without any password configured", c:reply())
        c:close()
    end)

    it("closes after QUIT's reply and runs nothing sent after it", function()
        start()
        local c = connect(srv)
        c:send(cmd("QUIT") .. cmd("SET", "k", "v"))
        assert.equal("+OK\r\n", c:reply())
        assert.is_true(c:closed())
        assert.is_nil(store.k)
    end)

    it("closes its connections when the server closes", function()
        start()
        local c = connect(srv)
        c:send("PING\r\n")
        assert.equal("+PONG\r\n", c:reply())
        srv:close()
        srv = nil
        assert.is_true(c:closed())
    end)

    it("reports an address in use", function()
        start()
        local again, code = core.resp_listen(srv:address(), function() end)
        assert.is_nil(again)
        assert.equal("busy", code)
        local bad, code2 = core.resp_listen("nohost", function() end)
        assert.is_nil(bad)
        assert.equal("invalid", code2)
    end)
end)

describe("resp server with redis-cli", function()
    local have = os.execute("command -v redis-cli >/dev/null 2>&1")
    have = have == 0 or have == true
    local srv, store, dir

    -- redis-cli runs in the background (this process's loop serves it meanwhile); its output
    -- and exit status land in files.
    local function cli(args, stdin)
        local n = (dir .. "/n")
        local seq = (tonumber((io.open(n) or { read = function() return "0" end }):read("*a")) or 0) + 1
        local f = io.open(n, "w"); f:write(seq); f:close()
        local out, rc = ("%s/out%d"):format(dir, seq), ("%s/rc%d"):format(dir, seq)
        local host, port = srv:address():match("^(.*):(%d+)$")
        local input = stdin and ("< " .. dir .. "/in" .. seq) or "< /dev/null"
        if stdin then
            local g = io.open(dir .. "/in" .. seq, "wb"); g:write(stdin); g:close()
        end
        os.execute(("(timeout 10 redis-cli -h %s -p %s %s %s > %s 2>&1; echo $? > %s.tmp; mv %s.tmp %s) &")
            :format(host, port, args, input, out, rc, rc, rc))
        local deadline = core.clock_ms() + 15000
        while not io.open(rc) do
            if core.clock_ms() > deadline then error("redis-cli did not finish") end
            core.run("nowait")
            core.sleep_ms(2)
        end
        local text = io.open(out):read("*a")
        return text, tonumber(io.open(rc):read("*a"))
    end

    before_each(function()
        if not have then return end
        store = {}
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. dir))
        srv = assert(resp.serve("127.0.0.1:0", {
            password = "pw",
            commands = {
                GET = { arity = 2, fn = function(_, argv) return store[argv[2]] end },
                SET = { arity = -3, fn = function(conn, argv)
                    local answer = conn:defer()
                    core.timer(1, 0, function()
                        store[argv[2]] = argv[3]
                        answer(resp.OK)
                    end)
                end },
                DEL = { arity = -2, fn = function(_, argv)
                    local n = 0
                    for i = 2, #argv do
                        if store[argv[i]] then n = n + 1; store[argv[i]] = nil end
                    end
                    return n
                end },
            },
        }))
    end)

    after_each(function()
        if srv then srv:close() end
        srv = nil
        core.run("nowait")
        if dir then os.execute("rm -rf " .. dir) end
    end)

    if not have then
        pending("redis-cli is not installed (apt-get install redis-tools)")
        return
    end

    it("serves redis-cli commands, with AUTH", function()
        local out = cli("PING")
        assert.matches("NOAUTH Authentication required", out)
        out = cli("-a wrong --no-auth-warning PING")
        assert.matches("WRONGPASS", out)
        assert.equal("PONG\n", (cli("-a pw --no-auth-warning PING")))
        assert.equal("OK\n", (cli("-a pw --no-auth-warning SET k 'hello world'")))
        assert.equal("hello world\n", (cli("-a pw --no-auth-warning GET k")))
        assert.equal("\n", (cli("-a pw --no-auth-warning GET missing")))
        assert.equal("1\n", (cli("-a pw --no-auth-warning DEL k nothing")))
        assert.matches("ERR unknown command 'FOO', with args beginning with: 'x'",
            (cli("-a pw --no-auth-warning FOO x")))
        assert.matches("ERR wrong number of arguments for 'get' command",
            (cli("-a pw --no-auth-warning GET")))
    end)

    it("runs redis-cli's commands from stdin, and --pipe's pipelined protocol", function()
        local out = cli("-a pw --no-auth-warning", "SET a 1\nGET a\nSELECT 0\nECHO x\n")
        assert.equal("OK\n1\nOK\nx\n", out)
        local lines = {}
        for i = 1, 500 do
            lines[#lines + 1] = cmd("AUTH", "pw") .. cmd("SET", "key" .. i, "v" .. i)
        end
        out = cli("--pipe", table.concat(lines))
        assert.matches("errors: 0, replies: 1000", out)
        for i = 1, 500 do assert.equal("v" .. i, store["key" .. i]) end
    end)

    it("goes on after garbage sent through redis-cli --pipe", function()
        local out = cli("--pipe", "*1\r\n$x\r\n")
        assert.matches("Protocol error", out)
        assert.equal("PONG\n", (cli("-a pw --no-auth-warning PING")))
    end)
end)
