-- The RESP2 reply reader (csrc/transport/resp.c) through the socket class
-- (csrc/lua/client_binding.c): s:try_recv_reply([max_bytes]), s:recv_reply([timeout_ms[,
-- max_bytes]]), and core.resp_command(argv). The server side is a helios.testkit listener
-- whose accepted socket writes raw bytes; tk.resp_encode makes replies from Lua values.
local core = require("helios.core")
local tk = require("helios.testkit")

-- A connected pair: c reads replies, srv writes bytes.
local function pair()
    local l, port = assert(tk.sock_listen("127.0.0.1:0"))
    local c = assert(core.sock_connect("127.0.0.1:" .. port, 1000))
    local srv = assert(l:accept(1000))
    l:close()
    return c, srv
end

-- Read every reply of bytes (sent at once) until "again" after the last one.
local function replies_of(bytes, max)
    local c, srv = pair()
    assert(srv:send_raw(bytes, 1000))
    local out = {}
    while true do
        local v, code, detail = c:recv_reply(200, max)
        if v == nil then
            c:close(); srv:close()
            if code == "timeout" then return out end
            return out, code, detail
        end
        out[#out + 1] = v
    end
end

local function reply_of(bytes, max)
    local c, srv = pair()
    assert(srv:send_raw(bytes, 1000))
    local v, code, detail = c:recv_reply(1000, max)
    c:close(); srv:close()
    return v, code, detail
end

describe("resp reply reader", function()
    it("maps the five types, nulls and nested arrays to Lua values", function()
        assert.equal("hello", reply_of("$5\r\nhello\r\n"))
        assert.equal("", reply_of("$0\r\n\r\n"))
        assert.equal("a\r\nb\0c", reply_of("$6\r\na\r\nb\0c\r\n"))
        assert.equal(false, reply_of("$-1\r\n"))
        assert.equal(false, reply_of("*-1\r\n"))
        assert.equal(42, reply_of(":42\r\n"))
        assert.equal(-7, reply_of(":-7\r\n"))
        assert.equal(9007199254740992, reply_of(":9007199254740992\r\n"))
        assert.same({ ok = "OK" }, reply_of("+OK\r\n"))
        assert.same({ ok = "" }, reply_of("+\r\n"))
        assert.same({ err = "MOVED 0 127.0.0.1:7001" }, reply_of("-MOVED 0 127.0.0.1:7001\r\n"))
        assert.same({ n = 0 }, reply_of("*0\r\n"))
        local v = reply_of("*4\r\n$1\r\na\r\n$-1\r\n*2\r\n:1\r\n*0\r\n+x\r\n")
        assert.same({ n = 4, "a", false, { n = 2, 1, { n = 0 } }, { ok = "x" } }, v)
    end)

    it("reads back what the reply encoder writes", function()
        local values = {
            "v", 0, -12345678901, { ok = "PONG" }, { err = "ERR no" },
            { "a", 1, { "b", { ok = "c" }, { err = "d" } } },
        }
        for _, val in ipairs(values) do
            local got = reply_of(tk.resp_encode(val))
            assert.equal(tk.resp_encode(val), tk.resp_encode(got))
        end
    end)

    it("reads pipelined replies in order, and nothing more", function()
        local got = replies_of("+OK\r\n:1\r\n$1\r\nx\r\n*1\r\n$1\r\ny\r\n-ERR e\r\n")
        assert.same({ { ok = "OK" }, 1, "x", { n = 1, "y" }, { err = "ERR e" } }, got)
    end)

    it("waits for the whole reply, a byte at a time, at every split point", function()
        local whole = "*3\r\n$5\r\nhel\r\n\r\n*2\r\n:-12\r\n$-1\r\n-ERR a b\r\n"
        local expect = { n = 3, "hel\r\n", { n = 2, -12, false }, { err = "ERR a b" } }
        local c, srv = pair()
        for i = 1, #whole do
            assert(srv:send_raw(whole:sub(i, i), 1000))
            assert(core.poll_fd(c:fileno(), "r", 1000))
            local v, code = c:try_recv_reply()
            if i < #whole then
                assert.same({ nil, "again" }, { v, code }, "after byte " .. i)
            else
                assert.same(expect, v)
            end
        end
        -- The same with a timeout in between: the partial reply is kept.
        assert(srv:send_raw(whole:sub(1, 20), 1000))
        assert.same({ nil, "timeout", "no reply within the timeout" }, { c:recv_reply(20) })
        assert(srv:send_raw(whole:sub(21), 1000))
        assert.same(expect, c:recv_reply(1000))
        c:close(); srv:close()
    end)

    it("fails malformed bytes with \"protocol\" and closes the socket", function()
        local cases = {
            { "?x\r\n", "unknown reply type byte 0x3f" },
            { "%1\r\n", "unknown reply type byte 0x25" }, -- RESP3 map
            { ":12a\r\n", "an integer reply that is not a number" },
            { ":\r\n", "an integer reply that is not a number" },
            { ":+1\r\n", "an integer reply that is not a number" },
            { ":-0\r\n", "an integer reply that is not a number" },
            { ":007\r\n", "an integer reply that is not a number" },
            { "$x\r\n", "invalid bulk length" },
            { "$-2\r\n", "invalid bulk length -2" },
            { "*-5\r\n", "invalid array length -5" },
            { "$3\r\nabcd\r\n", "a bulk string of 3 bytes not followed by CRLF" },
            { "+OK\rX", "a reply line with a CR not followed by LF" },
            { "+O\nK\r\n", "a reply line with a LF before its CR" },
            { "*2\r\n:1\r\n!\r\n", "unknown reply type byte 0x21" },
        }
        for _, case in ipairs(cases) do
            local c, srv = pair()
            assert(srv:send_raw(case[1], 1000))
            local v, code, detail = c:recv_reply(1000)
            assert.same({ nil, "protocol", "resp reply: " .. case[2] }, { v, code, detail },
                ("%q"):format(case[1]))
            assert.equal(-1, c:fileno(), "closed after " .. ("%q"):format(case[1]))
            srv:close()
        end
    end)

    it("is \"closed\" when the stream ends, between replies or inside one", function()
        local c, srv = pair()
        assert(srv:send_raw("+OK\r\n$5\r\nab", 1000))
        srv:close()
        assert.same({ ok = "OK" }, c:recv_reply(1000))
        local v, code = c:recv_reply(1000)
        assert.same({ nil, "closed" }, { v, code })
        c:close()
    end)

    it("enforces max_bytes as soon as a header announces too much", function()
        local c, srv = pair()
        -- The bulk string's bytes never come: its header alone breaks the limit.
        assert(srv:send_raw("$101\r\n", 1000))
        local v, code = c:recv_reply(1000, 100)
        assert.same({ nil, "too_large" }, { v, code })
        srv:close()
        local function code_of(bytes, max)
            local _, code = reply_of(bytes, max)
            return code
        end
        assert.equal("x", reply_of("$1\r\nx\r\n", 7))
        assert.equal("too_large", code_of("$1\r\nx\r\n", 6))
        -- An array that could not fit: 34 elements take at least 102 bytes.
        assert.equal("too_large", code_of("*34\r\n", 100))
        -- Many small lines add up.
        assert.equal("too_large", code_of("*20\r\n" .. (":1\r\n"):rep(20), 50))
        assert.equal(20, reply_of("*20\r\n" .. (":1\r\n"):rep(20), 85).n)
    end)

    it("allows arrays nested 32 deep, not 33", function()
        local function nested(depth)
            return ("*1\r\n"):rep(depth) .. ":7\r\n"
        end
        local v = assert(reply_of(nested(32)))
        for _ = 1, 32 do v = v[1] end
        assert.equal(7, v)
        local _, code, detail = reply_of(nested(33))
        assert.equal("too_large", code)
        assert.equal("resp reply: arrays nested more than 32 deep", detail)
    end)

    it("validates its arguments", function()
        local c, srv = pair()
        assert.has_error(function() c:try_recv_reply(-1) end)
        c:close(); srv:close()
        assert.has_error(function() c:try_recv_reply() end, "Usage: the socket is closed")
    end)
end)

describe("core.resp_command", function()
    it("encodes a command as an array of bulk strings", function()
        assert.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n",
            core.resp_command({ "SET", "k", "a\r\nb" }))
        assert.equal("*0\r\n", core.resp_command({}))
        assert.equal("*4\r\n$4\r\nINCR\r\n$2\r\n42\r\n$2\r\n-1\r\n$3\r\n1.5\r\n",
            core.resp_command({ "INCR", 42, -1, 1.5 }))
        assert.equal("$16\r\n1000000000000000\r\n",
            core.resp_command({ 1e15 }):match("\r\n(.*)$"))
        -- What the server's parser reads back.
        local reqs = tk.resp_parse(core.resp_command({ "ECHO", "" }) ..
            core.resp_command({ n = 2, "GET", "x" }))
        assert.same({ { "ECHO", "" }, { "GET", "x" } }, reqs)
        -- More arguments than the 16 the encoder keeps on the C stack, numbers among them.
        local many = { "MSET" }
        for i = 1, 20 do many[#many + 1] = i % 2 == 0 and i or ("k" .. i) end
        local back = tk.resp_parse(core.resp_command(many))[1]
        assert.equal(21, #back)
        for i = 1, #many do assert.equal(tostring(many[i]), back[i]) end
    end)

    it("refuses what is not a string or a number", function()
        assert.has_error(function() core.resp_command({ "SET", true }) end,
            "Usage: core.resp_command(argv): argv[2] is a boolean, not a string or a number")
        assert.has_error(function() core.resp_command({ n = 2, "GET" }) end)
        assert.has_error(function() core.resp_command("GET") end)
    end)
end)
