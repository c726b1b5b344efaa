-- spec/module_split_spec.lua: the product module helios.core carries no test machinery.
-- The TCP proxy, the raw transport and storage bindings, the simulated and the
-- fault-injecting file systems, the storage benchmark, listening sockets and the pid are
-- helios.testkit's (csrc/testkit); helios.core keeps what a user runs (the node, the
-- simulator, the loop, the control socket, the socket client, process spawning for
-- `helios cluster`, storage_inspect for `helios inspect`). Nothing under lua/helios but
-- helios.testing loads helios.testkit.

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
local TEST_ONLY = {
    "proxy_main",
    "storage_open", "storage_bench",
    "snap_file", "snap_write", "snap_recv", "snap_find", "snap_prune",
    "simfs_new", "fault_fs_new",
    "wire_encode", "wire_decode", "wire_frame", "wire_handshake", "raw_connect", "node_id",
    "sock_listen", "sock_poll", "frame_encode", "getpid", "resp_parse", "resp_encode",
    "linearize_check",
}
-- Shapes of test-only names, so that one added later under a new name is caught too.
local TEST_ONLY_PATTERNS = { "^proxy_", "^simfs", "^wire_", "^raw_", "fault", "bench",
                             "throughput", "^snap_", "^storage_open", "^sock_listen",
                             "^sock_poll", "accept", "^frame_",
                             "^linearize" }

-- The field names of a module as a plain luajit (not busted, whose helper loads modules)
-- sees them after require, one per line, sorted.
local function fields_of(module)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(("package.cpath = %q\n"):format(package.cpath),
            ("local m = require(%q)\n"):format(module),
            "local t = {}\n",
            "local each = pairs for k in each(m) do t[#t + 1] = tostring(k) end\n",
            "table.sort(t)\n",
            "io.write(table.concat(t, '\\n'))\n")
    f:close()
    local p = assert(io.popen("luajit '" .. script .. "' 2>&1"))
    local out = p:read("*a")
    local ok = p:close()
    os.remove(script)
    assert(ok == true or ok == 0, "luajit: require " .. module .. ": " .. out)
    local set = {}
    for name in out:gmatch("[^\n]+") do set[name] = true end
    return set, out
end

-- Run src in a plain luajit (the build's cpath, lua/ on the path): what it wrote, or an
-- error with its output if it failed.
local function run_lua(src)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(("package.path = %q\n"):format(package.path),
            ("package.cpath = %q\n"):format(package.cpath), src)
    f:close()
    local p = assert(io.popen("luajit '" .. script .. "' 2>&1"))
    local out = p:read("*a")
    local ok = p:close()
    os.remove(script)
    assert(ok == true or ok == 0, "luajit: " .. out)
    return out
end

-- Names in the set that look test-only.
local function test_only_in(set)
    local hit = {}
    for name in each(set) do
        for _, pat in ipairs(TEST_ONLY_PATTERNS) do
            if name:match(pat) then hit[name] = true end
        end
    end
    for _, name in ipairs(TEST_ONLY) do
        if set[name] then hit[name] = true end
    end
    local found = {}
    for name in each(hit) do found[#found + 1] = name end
    table.sort(found)
    return found
end

-- Files under dir (recursively) with the .lua suffix.
local function lua_files(dir)
    local out = {}
    local p = assert(io.popen("find '" .. dir .. "' -name '*.lua' | sort"))
    for line in p:lines() do out[#out + 1] = line end
    p:close()
    return out
end

-- The files of lua/helios that require helios.testkit but may not.
local function testkit_users(dir)
    local bad = {}
    for _, f in ipairs(lua_files(dir)) do
        local allowed = f:match("/helios/testing%.lua$") or f:match("/helios/testing/")
        local fh = assert(io.open(f))
        local src = fh:read("*a")
        fh:close()
        -- require "helios.testkit", require("helios.testkit"), require 'helios.testkit'
        if not allowed and src:find("require%s*%(?%s*[\"']helios%.testkit[\"']") then
            bad[#bad + 1] = f
        end
    end
    return bad
end

describe("helios.core, the product module", function()
    it("exposes no test-only function in a plain luajit", function()
        local core, listing = fields_of("helios.core")
        assert.is_true(core.node_new and core.sim_new and core.version and true, listing)
        assert.are.same({}, test_only_in(core))
    end)

    it("keeps what the CLI and helios.client use: storage_inspect, process spawning, the "
       .. "socket client", function()
        local core = fields_of("helios.core")
        for _, name in ipairs{ "storage_inspect", "proc_spawn", "proc_kill", "proc_wait",
                                "free_port", "sock_connect", "sock_connect_start",
                                "poll_fd" } do
            assert.is_true(core[name], name)
        end
    end)

    it("has no fault hook on its node class", function()
        require("helios.core")
        local mt = debug.getregistry()["helios.core.node"]
        assert.is_table(mt)
        for name in each(mt.__index) do
            assert.is_nil(name:match("fault"), name)
        end
        -- nor on the Lua node class (helios.raft's, or helios.node's once it has its own)
        for _, mod in ipairs{ "helios.raft", "helios.node" } do
            local ok, m = pcall(require, mod)
            local class = ok and type(m) == "table" and (m.node_class or m.class)
            if type(class) == "table" then
                for name in each(class) do assert.is_nil(name:match("fault"), name) end
            end
        end
    end)
end)

describe("helios.testkit, the test module", function()
    it("has every test-only function, under helios.testkit.* metatables", function()
        local tk = fields_of("helios.testkit")
        for _, name in ipairs(TEST_ONLY) do
            assert.is_true(tk[name], name)
        end
        local testkit = require("helios.testkit")
        local path = os.tmpname()
        os.remove(path)
        local l = assert(testkit.sock_listen(path))
        finally(function() l:close(); os.remove(path) end)
        for _, obj in ipairs{ testkit.simfs_new(1), testkit.fault_fs_new(), l } do
            local name = getmetatable(obj).__name
            assert.matches("^helios%.testkit%.", name)
        end
    end)

    -- A listener of the testkit accepts sockets of helios.core's class (one metatable,
    -- registered by whichever module is loaded first: csrc/lua/client_binding.h), also
    -- when the socket is made before helios.core is loaded. In a plain luajit.
    for _, core_first in ipairs{ false, true } do
        local when = core_first and "before" or "after"
        it("accepts helios.core sockets, helios.core loaded " .. when .. " them", function()
            local out = run_lua(([[
                local core = %s and require("helios.core")
                local tk = require("helios.testkit")
                local l, port = assert(tk.sock_listen("127.0.0.1:0"))
                local raw = assert(tk.raw_connect("127.0.0.1:" .. port, 2000))
                local s = assert(l:accept(2000))
                assert(raw:send(tk.frame_encode("by hand")))
                assert(s:recv_frame(2000) == "by hand")
                core = require("helios.core")
                local c = assert(core.sock_connect("127.0.0.1:" .. port, 2000))
                local s2 = assert(l:accept(2000))
                assert(getmetatable(s) == getmetatable(c), "two socket classes")
                assert(getmetatable(s2) == getmetatable(c), "two socket classes")
                assert(getmetatable(s).__name == "helios.core.sock", getmetatable(s).__name)
                assert(getmetatable(s).__index.accept == nil, "accept on a socket")
                assert(#tk.sock_poll({ c, s2 }, 0) == 0, "readable before any frame")
                assert(s2:send_frame("to the client", 2000))
                local ready = tk.sock_poll({ s2, c }, 2000)
                assert(#ready == 1 and ready[1] == 2, "sock_poll: " .. #ready)
                assert(c:recv_frame(2000) == "to the client")
                assert(tk.frame_encode("x") == tk.wire_frame("x"), "two frame formats")
                -- the pid is this process's: the shell's parent
                local p = io.popen("echo $PPID")
                local ppid = tonumber(p:read("*l"))
                p:close()
                assert(tk.getpid() == ppid, tk.getpid() .. " ~= " .. tostring(ppid))
                c:close(); s:close(); s2:close(); raw:close(); l:close()
                io.write("ok")
            ]]):format(tostring(core_first)))
            assert.are.equal("ok", out)
        end)
    end

    it("is loaded by nothing under lua/helios but helios.testing", function()
        assert.are.same({}, testkit_users("lua/helios"))
    end)

    it("the scan would see a product module that loads it", function()
        -- The check above can fail: a fake lua/helios with such a module is flagged.
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p '" .. dir .. "/helios/testing'") == 0)
        finally(function() os.execute("rm -rf '" .. dir .. "'") end)
        local function put(name, src)
            local f = assert(io.open(dir .. "/helios/" .. name, "w"))
            f:write(src)
            f:close()
        end
        put("testing.lua", 'local tk = require("helios.testkit")\n')
        put("testing/more.lua", 'local tk = require("helios.testkit")\n')
        put("raft.lua", 'local tk = require("helios.testkit")\n')
        assert.are.same({ dir .. "/helios/raft.lua" }, testkit_users(dir .. "/helios"))
        -- and a field list with a test-only name
        assert.are.same({ "proxy_main", "storage_open" },
                        test_only_in({ node_new = true, proxy_main = true, storage_open = true }))
    end)
end)
