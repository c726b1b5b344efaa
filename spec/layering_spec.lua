-- spec/layering_spec.lua: the include check of the C layers (tools/check-layers.lua, run
-- by `make test` and so by `make check`) passes on the tree and fails on an upward
-- include. The failing cases run the checker on a copy of csrc/ with one include added.

local function run(root)
    local p = assert(io.popen("luajit tools/check-layers.lua '" .. root .. "' 2>&1; echo rc=$?"))
    local out = p:read("*a")
    p:close()
    local rc = tonumber(out:match("rc=(%d+)%s*$"))
    return rc, (out:gsub("rc=%d+%s*$", ""))
end

-- A copy of csrc/ in a temporary directory, removed when the test ends.
local function copy_tree()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "' && cp -r csrc '" .. dir .. "/csrc'") == 0)
    finally(function() os.execute("rm -rf '" .. dir .. "'") end)
    return dir .. "/csrc"
end

local function append(path, line)
    local f = assert(io.open(path, "a"))
    f:write(line, "\n")
    f:close()
end

describe("the layers of csrc/", function()
    it("hold on this tree", function()
        local rc, out = run("csrc")
        assert.are.equal(0, rc, out)
        assert.matches("^layers: ok", out)
    end)

    it("a file of csrc/storage that includes csrc/node fails the check", function()
        local root = copy_tree()
        append(root .. "/storage/log.c", '#include "../node/node.h"')
        local rc, out = run(root)
        assert.are.equal(1, rc, out)
        assert.matches('storage/log.c:%d+: #include "../node/node.h": storage may include '
            .. "only core, storage, not node", out)
    end)

    it("so does a header, and an include spelled from the root (-Icsrc)", function()
        local root = copy_tree()
        append(root .. "/transport/transport.h", '#include "storage/log.h"')
        append(root .. "/core/raft.h", '#include "../sim/sim.h"')
        local rc, out = run(root)
        assert.are.equal(1, rc, out)
        assert.matches("transport may include only core, transport, not storage", out, 1, true)
        assert.matches("core may include only core, not sim", out, 1, true)
    end)

    it("another layer's internal header fails it, even from above", function()
        local root = copy_tree()
        append(root .. "/lua/module.c", '#include "../transport/tcp_internal.h"')
        append(root .. "/testkit/testkit.c", '#include "../core/raft_impl.h"')
        local rc, out = run(root)
        assert.are.equal(1, rc, out)
        assert.matches("lua/module.c:%d+: #include \"../transport/tcp_internal.h\": "
            .. "tcp_internal.h is internal to transport", out)
        assert.matches("raft_impl.h is internal to core", out, 1, true)
    end)

    it("an include outside the layers fails it", function()
        local root = copy_tree()
        append(root .. "/node/node.c", '#include "../../lua/helios/x.h"')
        local rc, out = run(root)
        assert.are.equal(1, rc, out)
        assert.matches("outside the layers", out, 1, true)
    end)
end)
