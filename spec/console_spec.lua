-- spec/console_spec.lua: the console's pretty printer, completion, session locals and the
-- client's chunk rules, in-process (helios.console, helios.console.repl; docs/console.md).

local console = require("helios.console")
local repl = require("helios.console.repl")

describe("console.render", function()
    it("prints scalars readably", function()
        assert.are.equal("", console.render())
        assert.are.equal("nil", console.render(nil))
        assert.are.equal("1\nnil\n3", console.render(1, nil, 3))
        assert.are.equal("42", console.render(42))
        assert.are.equal("-7", console.render(-7))
        assert.are.equal("0.5", console.render(0.5))
        assert.are.equal("true", console.render(true))
        assert.are.equal('"a\\"b\\\\c\\n\\t\\000"', console.render('a"b\\c\n\t\0'))
        assert.are.equal('"héllo"', console.render("héllo"))
    end)

    it("sorts keys, lists the sequence first and quotes keys that are not names", function()
        assert.are.equal("{}", console.render({}))
        assert.are.equal('{ 1, 2, 3 }', console.render({ 1, 2, 3 }))
        assert.are.equal('{ "x", a = 1, b = 2, ["end"] = 0, ["not a name"] = true }',
                         console.render({ "x", b = 2, a = 1, ["not a name"] = true,
                                          ["end"] = 0 }))
        assert.are.equal('{ [5] = "five", [10] = "ten", k = "v" }',
                         console.render({ [10] = "ten", [5] = "five", k = "v" }))
    end)

    it("indents what does not fit on a line", function()
        local t = { name = string.rep("n", 40), nested = { deep = { list = { 1, 2 } },
                    long = string.rep("l", 70) } }
        assert.are.equal(table.concat({
            "{",
            '  name = "' .. string.rep("n", 40) .. '",',
            "  nested = {",
            "    deep = { list = { 1, 2 } },",
            '    long = "' .. string.rep("l", 70) .. '",',
            "  },",
            "}",
        }, "\n"), console.render(t))
    end)

    it("marks cycles and prints a table met twice (not a cycle) twice", function()
        local t = { name = "t" }
        t.self = t
        local out = console.render(t)
        assert.are.equal('{ name = "t", self = <cycle: ' .. tostring(t) .. "> }", out)
        local shared = { 1 }
        assert.are.equal("{ a = { 1 }, b = { 1 } }", console.render({ a = shared, b = shared }))
    end)

    it("uses __tostring and shows functions by address", function()
        local obj = setmetatable({}, { __tostring = function() return "<obj>" end })
        assert.are.equal("<obj>", console.render(obj))
        assert.truthy(console.render(print):match("^builtin: ") or
                      console.render(print):match("^function: "))
    end)

    it("caps the depth and the number of fields", function()
        local deep = {}
        local cur = deep
        for _ = 1, 40 do cur.next = {} cur = cur.next end
        assert.truthy(console.render(deep):find("{...}", 1, true))
        local many = {}
        for i = 1, console.MAX_ITEMS + 5 do many["k" .. i] = i end
        assert.truthy(console.render(many):find("... (5 more)", 1, true))
    end)
end)

describe("console.complete", function()
    local node = { id = "n1", status = function() end, stats = function() end,
                   on = function() end }
    local env
    before_each(function()
        env = setmetatable({ mine = { alpha = 1, beta = function() end },
                             obj = setmetatable({ field = 1 },
                                                { __index = { method = function() end } }) },
                           { __index = _G, helpers = { status = function() end,
                                                       stats = function() end,
                                                       node = node } })
    end)

    it("completes globals, helpers and keywords", function()
        assert.are.same({ "stats(", "status(" }, console.complete(env, "stat"))
        assert.are.same({ "mine" }, console.complete(env, "mi"))
        assert.are.same({ "string" }, console.complete(env, "strin"))
        assert.are.same({ "while" }, console.complete(env, "whil"))
    end)

    it("completes fields of a dotted path and methods after a colon", function()
        assert.are.same({ "mine.alpha", "mine.beta(" }, console.complete(env, "mine."))
        assert.are.same({ "string.format(" }, console.complete(env, "string.for"))
        assert.are.same({ "obj.field", "obj.method(" }, console.complete(env, "obj."))
        assert.are.same({ "obj:method(" }, console.complete(env, "obj:"))
        assert.are.same({}, console.complete(env, "nothing.here"))
        assert.are.same({}, console.complete(env, "mine.alpha.x"))
        assert.are.same({}, console.complete(env, "1+"))
    end)
end)

describe("session locals", function()
    it("turn a chunk's leading local into a session variable", function()
        local f = console._session_locals
        assert.are.equal("x = 1", f("local x = 1"))
        assert.are.equal("a, b = 1, 2", f("local a, b = 1, 2"))
        assert.are.equal("function g() end", f("local function g() end"))
        assert.are.equal("local x", f("local x"))
        assert.are.equal("do local x = 1 end", f("do local x = 1 end"))
    end)
end)

describe("the client's chunks", function()
    it("prints expressions, runs statements, waits for unfinished chunks", function()
        assert.are.equal("return 1 + 1", repl.chunk("1 + 1"))
        assert.are.equal("return status()", repl.chunk("=status()"))
        assert.are.equal("x = 1", repl.chunk("x = 1"))
        assert.are.same({ nil, "more" }, { repl.chunk("function f()") })
        assert.are.same({ nil, "more" }, { repl.chunk("t = {") })
        assert.are.same({ nil, "more" }, { repl.chunk("s = [[") })
        assert.are.equal("x = = 1", repl.chunk("x = = 1")) -- the node reports it
    end)
end)

describe("log(n)", function()
    it("keeps short commands whole and only the size of long ones", function()
        local apply
        local node = { id = "n1", status = function() end, stats = function() end,
                       on = function(_, what, fn) if what == "apply" then apply = fn end end }
        console.record(node)
        local env = console.env(node)
        local mp = require("helios.core").mp_encode
        local long = mp({ op = "mset", kv = { "k", string.rep("v", console.LOG_CMD_BYTES) } })
        apply(1, 1, mp({ op = "set", "k", "v" }))
        apply(2, 1, long)
        local got = env.log(2)
        assert.are.same({ op = "set", "k", "v" }, got[1].cmd)
        assert.are.equal(2, got[2].index)
        assert.are.equal(string.format("(%d bytes, not kept: longer than %d)", #long,
            console.LOG_CMD_BYTES), got[2].cmd)
    end)
end)
