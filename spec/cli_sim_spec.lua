-- cli_sim_spec.lua: `helios sim --fsm MODULE` runs a user's state machine in the simulator
-- under faults drawn from the seed and prints the story and the checks; and the "leader"
-- event fires only once a leader is known.

local cli = require("helios.cli")
local sim = require("helios.sim")
local raft = require("helios.raft")
local core = require("helios.core")
local nh = require("spec.helpers.node")
local su = require("spec.helpers.storage_util")

-- Run `helios sim ...` in this process; returns status, stdout, stderr.
local function helios_sim(...)
    local outs, errs = {}, {}
    local code = cli.main({ "sim", ... }, function(s) outs[#outs + 1] = s end,
        function(s) errs[#errs + 1] = s end)
    return code, table.concat(outs), table.concat(errs)
end

-- A small FSM module: a counter; its commands are numbers to add.
local COUNTER = [[
local Counter = {}
Counter.__index = Counter
function Counter.new() return setmetatable({ value = 0 }, Counter) end
function Counter:apply(command) self.value = self.value + tonumber(command); return self.value end
function Counter:snapshot() return tostring(self.value) end
function Counter:restore(data) self.value = tonumber(data) end
Counter.sim_commands = function(i) if i <= 25 then return tostring(i) end end
return Counter
]]

describe("helios sim --fsm", function()
    local dir
    before_each(function() dir = nh.tmpdir() end)
    after_each(function() nh.rmrf(dir) end)

    it("runs the module's commands under every fault, then checks the invariants and the "
        .. "replicas", function()
        su.write_file(dir .. "/spec_counter.lua", COUNTER)
        local code, out, err = helios_sim("--fsm", "spec_counter", "--nodes", "5", "--seed", "7",
            "--lua-path", dir)
        assert.are.equal(0, code, out .. err)
        assert.matches("helios sim: 5 nodes (n1 n2 n3 n4 n5), seed 7, fsm spec_counter, faults "
            .. "crash,partition,drop,delay,duplicate,reorder, 25 commands", out, 1, true)
        assert.matches("crashes", out, 1, true)
        assert.matches("restarts", out, 1, true)
        assert.matches("the network partitions", out, 1, true)
        assert.matches("committed #%d+ +term %d+ +25 +%-> %d+", out)
        assert.matches("invariants held: election safety", out, 1, true)
        assert.matches("replicas agree: every node's fsm:snapshot() is the same", out, 1, true)
        -- Every command that committed was applied once, in order, everywhere: the final
        -- total is the sum of the committed ones (an unknown outcome may or may not count).
        assert.are.equal("", err)
        -- The same seed replays the same story.
        local code2, out2 = helios_sim("--fsm", "spec_counter", "--nodes", "5", "--seed", "7",
            "--lua-path", dir)
        assert.are.equal(0, code2)
        assert.are.equal(out, out2)
    end)

    it("takes a .lua file and --commands FILE, and a fault list", function()
        su.write_file(dir .. "/counter.lua", COUNTER)
        su.write_file(dir .. "/cmds", "5\n# a comment\n\n7\n")
        local code, out = helios_sim("--fsm", dir .. "/counter.lua", "--commands", dir .. "/cmds",
            "--faults", "none", "--seed", "3")
        assert.are.equal(0, code, out)
        assert.matches("faults none, 2 commands", out, 1, true)
        assert.matches("committed #%d+ +term 1 +5 +%-> 5\n", out)
        assert.matches("committed #%d+ +term 1 +7 +%-> 12\n", out)
    end)

    it("fails a state machine whose replicas diverge, with the replay command", function()
        su.write_file(dir .. "/clocky.lua", [[
local M = { sim_commands = { "a", "b" } }
M.__index = M
local made = 0
function M.new() made = made + 1; return setmetatable({ n = made }, M) end
function M:apply() return self.n end            -- each replica answers its own number
function M:snapshot() return tostring(self.n) end
function M:restore() end
return M]])
        local code, out, err = helios_sim("--fsm", dir .. "/clocky.lua", "--faults", "none")
        assert.are.equal(1, code, out)
        assert.matches("helios sim: replicas diverge: n2's fsm:snapshot() differs from n1's",
            err, 1, true)
        assert.matches("replay: helios sim --fsm " .. dir .. "/clocky.lua --nodes 3 --seed 1 "
            .. "--faults none\n", err, 1, true)
    end)

    it("reports an FSM error as the command's result, with the FSM's line", function()
        -- An error raised by apply is a result (README, "When apply raises"): the run goes
        -- on, every replica agrees, and the story names the FSM's line.
        su.write_file(dir .. "/boom.lua", [[
return { sim_commands = { "x", "boom", "y" },
         new = function() return { apply = function(_, c)
             if c == "boom" then error("boom!") end end } end }]])
        local code, out = helios_sim("--fsm", dir .. "/boom.lua", "--faults", "none")
        assert.are.equal(0, code)
        assert.matches("committed, apply raised: boom %-> fsm_error: fsm apply at index %d+ "
            .. "%(term %d+%) failed: [^\n]*boom%.lua:3: boom!", out)
        assert.not_matches("lua/helios/", out, 1, true)
        assert.matches("1 command(s) raised in apply", out, 1, true)
        assert.matches("committed #%d+ +term %d+ +y ", out)
    end)

    it("says what is missing: a module, its commands, a known fault", function()
        local code, _, err = helios_sim("--fsm", "spec_no_such_module")
        assert.are.equal(1, code)
        assert.matches('helios sim: --fsm: module "spec_no_such_module" not found', err, 1, true)
        su.write_file(dir .. "/nocmd.lua", "return { new = function() return {} end }")
        code, _, err = helios_sim("--fsm", dir .. "/nocmd.lua")
        assert.are.equal(1, code)
        assert.matches("the module has no sim_commands", err, 1, true)
        code, _, err = helios_sim("--faults", "crash,meteor")
        assert.are.equal(2, code)
        assert.matches("--faults: unknown fault 'meteor'", err, 1, true)
    end)
end)

describe("sim.cluster option errors", function()
    it("quote the value as written", function()
        local ok, err = pcall(sim.cluster, { n = 3, config = { election_timeout_ms = "300" } })
        assert.is_false(ok)
        assert.are.equal('config: election_timeout_ms must be a positive integer (got "300", '
            .. 'a string)', err)
        ok, err = pcall(sim.cluster, { n = 3, config = { prevote = "no" } })
        assert.is_false(ok)
        assert.are.equal('config: prevote must be a boolean (got "no", a string)', err)
    end)
end)

describe("the leader event", function()
    it("fires first with the first leader in the simulator, never (nil, 0)", function()
        local c = sim.cluster{ n = 3, seed = 5 }
        local events = {}
        for _, id in ipairs(c:ids()) do
            c:node(id):on("leader", function(leader, term)
                events[#events + 1] = { id = id, leader = leader, term = term }
            end)
        end
        assert(c:run_until(function() return c:leader() end, 5000))
        c:run_for(200)
        assert.is_true(#events >= 3)
        local first = {}
        for _, e in ipairs(events) do
            if not first[e.id] then
                first[e.id] = e
                assert.is_string(e.leader, "first leader event of " .. e.id .. " without a leader")
                assert.is_true(e.term >= 1)
            end
        end
    end)

    it("fires first with the first leader on a networked node", function()
        local root = nh.tmpdir()
        finally(function() nh.rmrf(root) end)
        local node = raft.new{ id = "node-1", data_dir = root .. "/node-1", secret = "s",
                               peers = { ["node-1"] = "127.0.0.1:" .. core.free_port() },
                               fsm = { apply = function() end } }
        local events = {}
        node:on("leader", function(leader, term) events[#events + 1] = { leader, term } end)
        assert(node:start())
        raft.spawn(function()
            local deadline = raft.now() + 10000
            repeat raft.sleep(10) until #events > 0 or raft.now() > deadline
            node:shutdown()
        end)
        assert(raft.run())
        assert.are.same({ "node-1", 1 }, events[1])
    end)
end)
