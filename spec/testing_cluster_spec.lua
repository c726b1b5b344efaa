-- testing_cluster_spec.lua: helios.testing.cluster's own options, on a cluster that starts
-- no process (start = false): where its directory goes, and that stop removes it.

local testing = require("helios.testing")
local tk = require("helios.testkit")

local function exists(path)
    local f = io.open(path)
    if f then f:close() end
    return f ~= nil
end

describe("helios.testing.cluster", function()
    local base, cl
    before_each(function()
        base = os.tmpname()
        os.remove(base)
        assert(os.execute("mkdir -m 700 " .. base))
    end)
    after_each(function()
        if cl then cl:stop() end
        cl = nil
        os.execute("rm -rf " .. base)
    end)

    it("makes its directory under tmpdir, and stop removes it", function()
        cl = testing.cluster{ n = 2, proxies = false, start = false, tmpdir = base }
        local dir = cl:dir()
        assert.are.equal(base .. "/", dir:sub(1, #base + 1))
        assert.matches("^helios%-test%-" .. tk.getpid() .. "%-%d+$", dir:sub(#base + 2))
        assert.is_true(exists(cl:config_path("node-1")))
        cl:stop()
        cl = nil
        assert.is_false(exists(dir))
    end)

    it("says where it could not make its directory", function()
        assert.has_error(function()
            testing.cluster{ n = 1, proxies = false, start = false, tmpdir = base .. "/none" }
        end, "helios.testing: cannot create a temporary directory under " .. base .. "/none")
    end)
end)
