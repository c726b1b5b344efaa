-- cli_membership_spec.lua: the command line of membership and recovery without a running
-- cluster: `helios peer`, `helios transfer`, `helios recover` and `helios node --join`
-- refuse bad arguments with a usage error (status 2), say what is wrong when no node
-- answers (status 1), and `helios recover` rewrites a stopped node's data dir (a spec of
-- its own runs it on a real cluster: membership_process_spec.lua).

local cli = require("helios.cli")
local core = require("helios.core")
local raft = require("helios.raft")
local kv = require("helios.fsm.kv")
local nh = require("spec.helpers.node")

local function run(argv)
    local out, err = {}, {}
    local code = cli.main(argv, function(s) out[#out + 1] = s end,
        function(s) err[#err + 1] = s end)
    return code, table.concat(out), table.concat(err)
end

describe("helios peer, transfer, recover: arguments", function()
    it("lists the commands in the usage text", function()
        local code, out = run({ "--help" })
        assert.are.equal(0, code)
        for _, c in ipairs({ "peer add|remove|list", "transfer [ID]", "recover --data DIR" }) do
            assert.matches(c, out, 1, true)
        end
        for _, argv in ipairs({ { "peer", "--help" }, { "transfer", "-h" },
                                { "recover", "--help" } }) do
            code, out = run(argv)
            assert.are.equal(0, code)
            assert.matches("Usage: helios", out, 1, true)
        end
    end)

    local cases = {
        { { "peer" }, "expects add, remove or list" },
        { { "peer", "grow" }, "expects add, remove or list" },
        { { "peer", "add", "node-4" }, "add ID ADDR" },
        { { "peer", "add", "node-4", "localhost" }, "ADDR" },
        { { "peer", "remove" }, "remove ID" },
        { { "peer", "remove", "a", "b" }, "remove ID" },
        { { "peer", "list", "x" }, "list" },
        { { "peer", "remove", "a", "--learner" }, "--learner is for peer add" },
        { { "peer", "list", "--config", "a", "--socket", "b" }, "not both" },
        { { "peer", "list", "--learner=yes" }, "takes no value" },
        { { "transfer", "a", "b" }, "at most one node id" },
        { { "recover" }, "--data DIR and --id ID are required" },
        { { "recover", "--data", "d" }, "--data DIR and --id ID are required" },
        { { "recover", "--data", "d", "--id", "n", "--listen", "nowhere" }, "--listen" },
        { { "node", "--config", "c.lua", "--id", "n", "--listen", "127.0.0.1:1" }, "--join" },
    }
    for _, case in ipairs(cases) do
        it("refuses: helios " .. table.concat(case[1], " "), function()
            local code, _, err = run(case[1])
            assert.are.equal(2, code, err)
            assert.matches(case[2], err, 1, true)
        end)
    end

    it("says so when no node answers", function()
        local dir = nh.tmpdir()
        finally(function() nh.rmrf(dir) end)
        local code, _, err = run({ "peer", "add", "node-4", "127.0.0.1:9004", "--socket",
                                   dir .. "/node-1/control.sock", "--timeout-ms", "300" })
        assert.are.equal(1, code)
        assert.matches("helios peer: add node-4: ", err, 1, true)
        code, _, err = run({ "peer", "list", "--socket", dir .. "/node-1/control.sock" })
        assert.are.equal(1, code)
        assert.matches("no node answered", err, 1, true)
        code, _, err = run({ "peer", "list", "--config", dir .. "/missing.lua" })
        assert.are.equal(1, code)
        assert.matches("missing.lua", err, 1, true)
    end)
end)

describe("helios recover", function()
    it("makes a stopped node the only voter, keeping its entries", function()
        local dir = nh.tmpdir()
        finally(function() nh.rmrf(dir) end)
        local addr = "127.0.0.1:" .. core.free_port()
        local peers = { ["node-1"] = addr, ["node-2"] = "127.0.0.1:" .. core.free_port() }
        local function make(id)
            return raft.new{ id = id, peers = peers, data_dir = dir .. "/" .. id, fsm = kv.new(),
                             secret = "s", election_timeout_ms = 100, heartbeat_timeout_ms = 20 }
        end
        -- A 2-node cluster commits some entries; then node-2 is lost for good.
        local c = { ids = { "node-1", "node-2" }, nodes = { ["node-1"] = make("node-1"),
                                                           ["node-2"] = make("node-2") } }
        assert(c.nodes["node-1"]:start())
        assert(c.nodes["node-2"]:start())
        local last
        assert(nh.run_scenario(c, 10000, function()
            local leader
            assert(nh.wait_for(function()
                leader = nh.leader_of(c)
                return leader
            end, 5000))
            for i = 1, 5 do
                last = assert(c.nodes[leader]:apply("set k" .. i .. " v" .. i, 3000))
            end
        end))
        -- node-1 alone never commits again.
        c = { ids = { "node-1" }, nodes = { ["node-1"] = make("node-1") } }
        assert(c.nodes["node-1"]:start())
        assert(nh.run_scenario(c, 5000, function()
            raft.sleep(300)
            assert.is_false(select(2, c.nodes["node-1"]:state()))
        end))
        -- Without an address: the cluster never changed members, so its log has none.
        local code, _, err = run({ "recover", "--data", dir .. "/node-1", "--id", "node-1" })
        assert.are.equal(1, code)
        assert.matches("--listen ADDR", err, 1, true)
        local out
        code, out, err = run({ "recover", "--data", dir .. "/node-1", "--id", "node-1",
                               "--listen", addr })
        assert.are.equal(0, code, err)
        assert.matches("node-1 (at " .. addr .. ") is now the only voter", out, 1, true)
        -- Restarted with its usual options, it is a one-node cluster: it leads, has every
        -- entry and commits new ones.
        c.nodes["node-1"] = make("node-1")
        assert(c.nodes["node-1"]:start())
        assert(nh.run_scenario(c, 10000, function()
            local node = c.nodes["node-1"]
            assert(nh.wait_for(function() return select(2, node:state()) end, 5000))
            local index, term, result = node:apply("set k v", 3000)
            assert(index, term)
            assert.are.equal("OK", result)
            assert.is_true(index > last)
            for i = 1, 5 do
                assert.are.equal("v" .. i, node:read_stale(function(f) return f:get("k" .. i) end))
            end
            local conf = node:configuration()
            assert.are.same({ "node-1" }, conf.voters)
        end))
    end)
end)
