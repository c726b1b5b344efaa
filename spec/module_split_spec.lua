-- spec/module_split_spec.lua: the product module helios.core carries no test machinery.
-- The TCP proxy, the raw transport and storage bindings, the simulated and the
-- fault-injecting file systems and the storage benchmark are helios.testkit's
-- (csrc/testkit); helios.core keeps what a user runs (the node, the simulator, the loop,
-- the control socket, process spawning for `helios cluster`, storage_inspect for
-- `helios inspect`). Nothing under lua/helios but helios.testing loads helios.testkit.

local TEST_ONLY = {
    "proxy_main",
    "storage_open", "storage_bench",
    "snap_file", "snap_write", "snap_recv", "snap_find", "snap_prune",
    "simfs_new", "fault_fs_new",
    "wire_encode", "wire_decode", "wire_frame", "wire_handshake", "raw_connect", "node_id",
}
-- Shapes of test-only names, so that one added later under a new name is caught too.
local TEST_ONLY_PATTERNS = { "^proxy_", "^simfs", "^wire_", "^raw_", "fault", "bench",
                             "throughput", "^snap_", "^storage_open" }

-- The field names of a module as a plain luajit (not busted, whose helper loads modules)
-- sees them after require, one per line, sorted.
local function fields_of(module)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(("package.cpath = %q\n"):format(package.cpath),
            ("local m = require(%q)\n"):format(module),
            "local t = {}\n",
            "for k in pairs(m) do t[#t + 1] = tostring(k) end\n",
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

-- Names in the set that look test-only.
local function test_only_in(set)
    local hit = {}
    for name in pairs(set) do
        for _, pat in ipairs(TEST_ONLY_PATTERNS) do
            if name:match(pat) then hit[name] = true end
        end
    end
    for _, name in ipairs(TEST_ONLY) do
        if set[name] then hit[name] = true end
    end
    local found = {}
    for name in pairs(hit) do found[#found + 1] = name end
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

    it("keeps what the CLI uses: storage_inspect and process spawning", function()
        local core = fields_of("helios.core")
        for _, name in ipairs{ "storage_inspect", "proc_spawn", "proc_kill", "proc_wait",
                                "free_port" } do
            assert.is_true(core[name], name)
        end
    end)

    it("has no fault hook on its node class", function()
        require("helios.core")
        local mt = debug.getregistry()["helios.core.node"]
        assert.is_table(mt)
        for name in pairs(mt.__index) do
            assert.is_nil(name:match("fault"), name)
        end
        -- nor on the Lua node class (helios.raft's, or helios.node's once it has its own)
        for _, mod in ipairs{ "helios.raft", "helios.node" } do
            local ok, m = pcall(require, mod)
            local class = ok and type(m) == "table" and (m.node_class or m.class)
            if type(class) == "table" then
                for name in pairs(class) do assert.is_nil(name:match("fault"), name) end
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
        for _, obj in ipairs{ testkit.simfs_new(1), testkit.fault_fs_new() } do
            local name = getmetatable(obj).__name
            assert.matches("^helios%.testkit%.", name)
        end
    end)

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
