-- The RESP2 request parser and reply encoder (csrc/transport/resp.c) through helios.core's
-- small binding: tk.resp_parse(bytes[, limits]) -> requests, rest | nil, err and
-- tk.resp_encode(reply) -> bytes.
local tk = require("helios.testkit")

local function parse(bytes, limits)
    return tk.resp_parse(bytes, limits)
end

describe("resp parser", function()
    it("reads arrays of bulk strings, binary-safe", function()
        local reqs, rest = parse("*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n*1\r\n$0\r\n\r\n")
        assert.same({ { "GET", "a\r\nb" }, { "" } }, reqs)
        assert.equal("", rest)
    end)

    it("reads inline commands with redis-cli quoting", function()
        local reqs = parse("PING\r\nSET k \"a b\\n\\x41\" 'it\\'s'\n  \r\nECHO   x\n")
        assert.same({ { "PING" }, { "SET", "k", "a b\nA", "it's" }, {}, { "ECHO", "x" } }, reqs)
    end)

    it("treats an empty array as no command", function()
        local reqs, rest = parse("*0\r\n*-1\r\n*1\r\n$1\r\nx\r\n")
        assert.same({ {}, {}, { "x" } }, reqs)
        assert.equal("", rest)
    end)

    it("keeps an incomplete request for later, at every split point", function()
        local whole = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\nPING\r\n"
        for i = 0, #whole - 1 do
            local reqs, rest = parse(whole:sub(1, i))
            assert.is_table(reqs, "split at " .. i)
            local again = parse(rest .. whole:sub(i + 1))
            local all = {}
            for _, r in ipairs(reqs) do all[#all + 1] = r end
            for _, r in ipairs(again) do all[#all + 1] = r end
            assert.same({ { "SET", "k", "value" }, { "PING" } }, all, "split at " .. i)
        end
    end)

    it("gives redis-server's protocol errors", function()
        local cases = {
            { "*2\r\n+GET\r\n", "Protocol error: expected '$', got '+'" },
            { "*x\r\n", "Protocol error: invalid multibulk length" },
            { "*1\r\n$-5\r\n", "Protocol error: invalid bulk length" },
            { "*1\r\n$01\r\n", "Protocol error: invalid bulk length" },
            { "SET k \"abc\n", "Protocol error: unbalanced quotes in request" },
            { "SET k \"abc\"x\n", "Protocol error: unbalanced quotes in request" },
        }
        for _, c in ipairs(cases) do
            local reqs, err = parse(c[1])
            assert.is_nil(reqs, c[1])
            assert.equal(c[2], err)
        end
    end)

    it("enforces its limits before buffering past them", function()
        local lim = { max_args = 3, max_bulk = 10, max_inline = 16 }
        assert.same({ nil, "Protocol error: invalid multibulk length" },
            { parse("*4\r\n", lim) })
        assert.same({ { { "a", "b", "c" } }, "" }, { parse("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", lim) })
        assert.same({ nil, "Protocol error: invalid bulk length" }, { parse("*1\r\n$11\r\n", lim) })
        assert.is_table(parse("*1\r\n$10\r\n0123456789\r\n", lim))
        -- No newline yet but already longer than an inline request may be:
        assert.same({ nil, "Protocol error: too big inline request" }, { parse(("x"):rep(17), lim) })
        assert.is_table(parse(("x"):rep(16), lim))
        assert.same({ nil, "Protocol error: too big mbulk count string" },
            { parse("*" .. ("1"):rep(17), lim) })
        assert.same({ nil, "Protocol error: too big bulk count string" },
            { parse("*1\r\n$" .. ("1"):rep(17), lim) })
        assert.same({ nil, "Protocol error: invalid multibulk length" }, { parse("a b c d\n", lim) })
    end)
end)

describe("resp encoder", function()
    it("encodes every reply type", function()
        local e = tk.resp_encode
        assert.equal("$5\r\nhello\r\n", e("hello"))
        assert.equal("$0\r\n\r\n", e(""))
        assert.equal("$-1\r\n", e(nil))
        assert.equal("$-1\r\n", e(false))
        assert.equal("+OK\r\n", e(true))
        assert.equal(":42\r\n", e(42))
        assert.equal(":-7\r\n", e(-7))
        assert.equal("$3\r\n1.5\r\n", e(1.5))
        assert.equal("+PONG\r\n", e({ ok = "PONG" }))
        assert.equal("-ERR bad  thing\r\n", e({ err = "ERR bad\r\nthing" }))
        assert.equal("*-1\r\n", e({ null_array = true }))
        assert.equal("*0\r\n", e({}))
        assert.equal("*3\r\n$1\r\na\r\n:1\r\n*2\r\n$-1\r\n$1\r\nb\r\n",
            e({ "a", 1, { n = 2, nil, "b" } }))
    end)

    it("refuses values with no RESP form", function()
        assert.has_error(function() tk.resp_encode(print) end)
        local deep = {}
        local t = deep
        for _ = 1, 40 do t[1] = {}; t = t[1] end
        assert.has_error(function() tk.resp_encode(deep) end)
        assert.has_error(function() tk.resp_encode({ n = -1 }) end)
        assert.has_error(function() tk.resp_encode({ n = 1.5 }) end)
    end)
end)
