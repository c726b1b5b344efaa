-- luajit_iter_spec.lua: our Lua never iterates with the bytecode LuaJIT specialises for
-- pairs (ISNEXT/ITERN). Debian's LuaJIT 2.1 (git 2022-03-20) has a JIT bug there: once such a
-- loop nested in another is blacklisted and despecialised, the outer loop can end early,
-- so a table walk silently skips keys (docs/lua-api.md, "Iterating tables"). The parser
-- emits ISNEXT only when the iterator is a variable named pairs or next, so the code
-- iterates with `each` (pairs under another name), and this spec checks every chunk's
-- bytecode for the two instructions.

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
local jutil = require("jit.util")
local bcnames = require("jit.vmdef").bcnames

local function opname(ins)
    local op = ins % 256
    return bcnames:sub(op * 6 + 1, op * 6 + 6):gsub(" +$", "")
end

-- The lines of the pairs loops (an ISNEXT, which ITERN follows) in fn and every function
-- nested in it.
local function specialised_loops(fn, out)
    out = out or {}
    local info = jutil.funcinfo(fn)
    for pc = 1, info.bytecodes or 0 do
        local ins = jutil.funcbc(fn, pc)
        if not ins then break end
        local name = opname(ins)
        if name == "ISNEXT" then
            out[#out + 1] = info.source:gsub("^[@=]", "") .. ":" .. (jutil.funcinfo(fn, pc).currentline or "?")
        end
    end
    if info.children then
        local i = -1
        while true do
            local k = jutil.funck(fn, i)
            if type(k) ~= "proto" and type(k) ~= "function" then
                if k == nil then break end
            else
                specialised_loops(k, out)
            end
            i = i - 1
        end
    end
    return out
end

local function lua_files()
    local files = {}
    local p = io.popen("find lua tools spec -name '*.lua' | sort")
    for f in p:lines() do files[#files + 1] = f end
    p:close()
    files[#files + 1] = "bin/helios"
    return files
end

describe("table iteration in our Lua", function()
    it("finds a pairs loop when there is one (the check is not vacuous)", function()
        local fn = assert(loadstring("local t = {} local function f() for k in pairs(t) do end end",
                                     "=probe"))
        assert.are.same({ "probe:1" }, specialised_loops(fn))
        local plain = assert(loadstring("local each = pairs for k in each({}) do end", "=plain"))
        assert.are.same({}, specialised_loops(plain))
    end)

    it("never uses the specialised pairs/next bytecode, in any module, tool or spec", function()
        local found = {}
        for _, f in ipairs(lua_files()) do
            local fn, err = loadfile(f)
            assert(fn, err)
            for _, where in ipairs(specialised_loops(fn)) do found[#found + 1] = where end
        end
        assert.are.same({}, found)
    end)

    -- The shape of the LuaJIT bug: an inner walk in an outer one, both hot, after a call to
    -- a vararg function (whose return leaves the trace for the interpreter). Run in a
    -- fresh luajit, since the JIT's counters and traces depend on what ran before.
    local function nested_walk(iter)
        return (([[
local each = pairs
local inner = { 1, 2, 3, 4, 5 }
local outer = { a = inner, b = inner, c = inner, d = inner, e = inner }
local function leave(...) for _ = 1, 100 do end end
for i = 1, 100000 do
    leave()
    local c = 0
    for _, v in ITER(outer) do
        for _ in ITER(v) do end
        c = c + 1
    end
    if c ~= 5 then print(("iteration %d saw %d keys of 5"):format(i, c)) os.exit(1) end
end
print("ok")]]):gsub("ITER", iter))
    end

    local function run(code)
        local path = os.tmpname()
        local f = assert(io.open(path, "w"))
        f:write(code)
        f:close()
        local p = io.popen("luajit " .. path .. " 2>&1")
        local out = p:read("*a")
        p:close()
        os.remove(path)
        return out
    end

    it("walks every key of a table in nested loops that the JIT compiles and blacklists", function()
        -- With pairs (ITERN) Debian's LuaJIT fails this within 100,000 iterations; with
        -- each (ITERC) it must not. The ITERN run is reported, not asserted: a fixed
        -- LuaJIT passes it.
        local specialised = run(nested_walk("pairs"))
        if not specialised:find("^ok") then
            print("# this LuaJIT has the ITERN bug: " .. (specialised:gsub("\n$", "")))
        end
        assert.are.equal("ok\n", run(nested_walk("each")))
    end)

    it("docs/lua-api.md's example runs as written and is not specialised", function()
        local doc = assert(io.open("docs/lua-api.md")):read("*a")
        local section = assert(doc:match("\n### Iterating tables\n(.-)\n##"), "no section")
        local code = assert(section:match("```lua\n(.-)```"), "no example")
        local fn = assert(loadstring(code .. "\nreturn fsm", "=example"))
        assert.are.same({}, specialised_loops(fn))
        local fsm = fn()
        fsm.state = { a = 1, b = 2, c = 3 }
        assert.are.equal("3", fsm:snapshot())
    end)
end)
