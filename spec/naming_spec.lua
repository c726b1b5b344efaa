-- naming_spec.lua: one name per concept across the Lua API and helios.core: one version
-- string (core.version, which `helios --version`, helios.version and the CLI module show),
-- metatable names of the form "helios.core.<class>" for helios.core's objects and
-- "helios.<module>.<class>" for Lua classes, and the option heartbeat_timeout_ms named so
-- from the Lua table down to the core's check of it.

local core = require("helios.core")
local tk = require("helios.testkit")

describe("one version string", function()
    it("is core.version, a release number, printed by `helios --version`", function()
        assert.matches("^%d+%.%d+%.%d+", core.version)
        local printed = {}
        local code = require("helios.cli").main({ "--version" },
            function(s) printed[#printed + 1] = s end)
        assert.are.equal(0, code)
        assert.are.equal("helios " .. core.version .. "\n", table.concat(printed))
        assert.are.equal(core.version, require("helios.cli").version)
        assert.are.equal(core.version, require("helios").version)
    end)
end)

describe("metatable names", function()
    it("are helios.core.<class> for helios.core's objects, the simulator's too", function()
        local s = core.sim_new({ n = 3, seed = 1 })
        assert.are.equal("helios.core.sim", getmetatable(s).__name)
        assert.matches("^helios%.core%.sim: 3 nodes, seed 1", tostring(s))
    end)

    it("are helios.<module>.<class>, with __tostring, for helios.sim's cluster", function()
        local c = require("helios.sim").cluster({ n = 3, seed = 1 })
        local mt = getmetatable(c)
        assert.are.equal("helios.sim.cluster", mt.__name)
        assert.matches("^helios%.sim%.cluster: 3 nodes", tostring(c))
    end)
end)

describe("heartbeat_timeout_ms", function()
    it("is the name the core's validation uses for the option", function()
        local ok, err = pcall(core.sim_new, { n = 3, seed = 1,
            config = { election_timeout_ms = 100, heartbeat_timeout_ms = 100 } })
        assert.is_false(ok)
        assert.matches("heartbeat_timeout_ms must be less than election_timeout_ms", err, 1, true)
    end)
end)

describe("signal names", function()
    it("are one table: proc_kill and proc_wait, signal_catch and signal_take agree", function()
        local pid = assert(core.proc_spawn({ "sleep", "30" }, { die_with_parent = true }))
        assert.is_true(core.proc_kill(pid, "SIGUSR1"))
        local how, name = core.proc_wait(pid, 5000)
        assert.are.equal("signaled", how)
        assert.are.equal("USR1", name)
        assert.has_error(function() core.proc_kill(pid, "NOSUCH") end)

        assert.has_error(function() core.signal_catch("KILL") end)
        core.signal_catch("SIGHUP")
        assert.is_nil(core.signal_take())
        assert.is_true(core.proc_kill(tk.getpid(), "HUP"))
        assert.are.equal("HUP", core.signal_take())
        assert.is_nil(core.signal_take())
    end)
end)
