-- spec/apply_batch_spec.lua: a networked node hands its committed entries to Lua a run at a
-- time (core.node_new's apply_batch hook; docs/architecture.md, "The commit path"), on the
-- real loop with a one-node cluster (real TCP listener, real data dir). What the FSM sees
-- through helios.raft is covered by the node and ATLAS specs; this one looks at the hook.

local raft = require("helios.raft")
local core = require("helios.core")
local nh = require("spec.helpers.node")

local tmpdir, rmrf, wait_for = nh.tmpdir, nh.rmrf, nh.wait_for

local FAST = { election_timeout_ms = 150, heartbeat_timeout_ms = 30 }
local N = 50

-- A one-node cluster over hooks; run body(node) in a coroutine, then shut it down.
local function with_solo(dir, hooks, body)
    local addr = "127.0.0.1:" .. core.free_port()
    local node = core.node_new({ id = "solo", listen = addr, peers = { solo = addr },
                                 data_dir = dir .. "/solo", secret = "apply batch spec",
                                 config = FAST }, hooks)
    assert(node:start())
    local failure, down = nil, false
    local function stop() down = true; raft.stop() end
    raft.spawn(function()
        local ok, err = pcall(body, node)
        if not ok then failure = err end
        node:shutdown(stop)
    end)
    local deadline = raft.after(20000, function() core.fail("scenario deadline passed") end)
    local ok, err = raft.run()
    deadline:stop()
    if not down then -- (the loop stopped early: still close the node, its port and dir)
        node:shutdown(stop)
        raft.run()
    end
    assert(ok, err)
    assert(failure == nil, failure)
end

-- Propose until the node leads (it elects itself), then N commands in one loop turn.
local function propose_all(node)
    assert(wait_for(function() return node:propose("first") ~= nil end, 5000),
           "the node never led")
    for i = 1, N do assert(node:propose("cmd" .. i)) end
end

describe("apply_batch", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() rmrf(dir) end)

    it("gets the committed entries in runs, in order, instead of apply", function()
        local runs, seen = {}, {}
        with_solo(dir, {
            apply = function() error("apply was called although apply_batch was given") end,
            apply_batch = function(t, n)
                assert.are.equal(5 * n, #t)
                runs[#runs + 1] = n
                for i = 1, 5 * n, 5 do
                    seen[#seen + 1] = { index = t[i], term = t[i + 1], type = t[i + 2],
                                        cmd = t[i + 3], time_ms = t[i + 4] }
                end
            end,
        }, function(node)
            propose_all(node)
            assert(wait_for(function()
                return #seen > 0 and seen[#seen].cmd == "cmd" .. N
            end, 5000), "not all applied")
        end)
        -- Every index once, in order; the commands in the order proposed.
        local cmds = {}
        for i, e in ipairs(seen) do
            assert.are.equal(i, e.index)
            assert.is_true(e.term >= 1 and e.time_ms > 0)
            if e.type == "command" then cmds[#cmds + 1] = e.cmd end
        end
        assert.are.equal("first", cmds[1])
        for i = 1, N do assert.are.equal("cmd" .. i, cmds[i + 1]) end
        -- The N proposals of one turn are written by one round and committed together.
        local longest = 0
        for _, n in ipairs(runs) do longest = math.max(longest, n) end
        assert.is_true(longest >= N, "runs: " .. table.concat(runs, ","))
    end)

    it("takes a snapshot point at the index the FSM reached, not the run's end", function()
        local node_ref, checked = nil, false
        with_solo(dir, {
            apply_batch = function(t, n)
                if n < 2 or checked then return end
                checked = true
                -- Inside a run, the runtime already counts all of it as applied: the hook
                -- names where its FSM is.
                local first, last = t[1], t[5 * (n - 1) + 1]
                assert.are.equal(last, (node_ref:snapshot_point()))
                assert.are.equal(first, (node_ref:snapshot_point(first)))
                assert.is_nil(node_ref:snapshot_point(last + 1))
            end,
        }, function(node)
            node_ref = node
            propose_all(node)
            assert(wait_for(function() return checked end, 5000), "no run of two or more")
        end)
    end)
end)
