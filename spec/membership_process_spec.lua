-- membership_process_spec.lua: membership changes, leadership transfer and disaster
-- recovery on real node processes (helios.testing): a node started with --join is added
-- to a running cluster and another removed; the leader hands over to a chosen node, which
-- then commits; a leader cut off from the majority never answers a read with old data; a
-- cluster that lost 2 of its 3 nodes for good is recovered from the survivor (`helios
-- recover`) and grown back to 3, keeping every committed entry.
--
-- Every wait has a deadline (cl:wait, cl:leader); a failing spec shows the nodes' logs.

local testing = require("helios.testing")
local core = require("helios.core")
local cli = require("helios.cli")

local with_cluster = testing.with_cluster

local pc = require("spec.helpers.process_cluster")
local commit, assert_all = pc.commit, pc.assert_all

-- The leader's status once its committed configuration has exactly these voters (and
-- no learner).
local function wait_voters(cl, voters, timeout_ms)
    local want = {}
    for _, v in ipairs(voters) do want[v] = true end
    return cl:wait(function()
        local leader, st = cl:leader(0, true)
        local conf = st and st.configuration
        if not conf or not conf.committed or #conf.learners > 0
            or #conf.voters ~= #voters then
            return false
        end
        for _, v in ipairs(conf.voters) do
            if not want[v] then return false end
        end
        return leader
    end, timeout_ms or 15000, "the voters " .. table.concat(voters, ", "))
end

local function run_cli(argv)
    local out, err = {}, {}
    local code = cli.main(argv, function(s) out[#out + 1] = s end,
        function(s) err[#err + 1] = s end)
    return code, table.concat(out), table.concat(err)
end

describe("membership on node processes", function()
    it("adds a --join node to a running cluster and removes another", function()
        with_cluster({ n = 3 }, function(cl)
            local leader = cl:leader(10000)
            local last, kv = commit(cl, "a", 10)
            local id, addr = cl:add_node()
            cl:start(id)
            -- The joining node waits, in no configuration: it never leads nor votes.
            cl:wait(function() return cl:status(id) end, 10000, id .. " to answer")
            assert.are.equal(0, #(cl:status(id).configuration or { voters = {} }).voters)

            local ok, code, detail = cl:client():add_peer(id, addr, { timeout_ms = 15000 })
            assert(ok, ("add_peer: %s %s"):format(tostring(code), tostring(detail)))
            wait_voters(cl, { "node-1", "node-2", "node-3", id })
            cl:wait_applied(last, 10000, { id })
            last = commit(cl, "b", 5, kv)
            -- A linearizable read on the new node sees every write acknowledged before it.
            local c4 = assert(cl:client():node(id))
            local found, value = c4:read("b5", { timeout_ms = 5000 })
            assert(found, value)
            assert.are.equal(kv.b5, value)
            found, value = c4:read("a1", { stale = true })
            assert.is_true(found)
            assert.are.equal(kv.a1, value)
            cl:wait_applied(last, 10000, { id })

            -- Remove a follower (not the leader, nor the new node) through the CLI.
            leader = cl:leader(10000)
            local gone
            for _, o in ipairs({ "node-1", "node-2", "node-3" }) do
                if o ~= leader then gone = o break end
            end
            local status, out, err = run_cli({ "peer", "remove", gone, "--socket",
                                               cl:socket(leader), "--timeout-ms", "15000" })
            assert.are.equal(0, status, out .. err)
            local voters = {}
            for _, o in ipairs(cl:ids()) do if o ~= gone then voters[#voters + 1] = o end end
            wait_voters(cl, voters)
            -- The removed node learns it is out and says so; the others go on without it.
            cl:wait(function()
                local st = cl:status(gone)
                return st and st.role == "removed"
            end, 15000, gone .. " to learn it was removed")
            cl:wait(function()
                local f = io.open(cl:log_path(gone))
                local text = f and f:read("*a") or ""
                if f then f:close() end
                return text:find("is no longer in the cluster's configuration", 1, true)
            end, 5000, gone .. " to log that it was removed")
            local term = cl:status(gone).term
            last = commit(cl, "c", 5, kv)
            cl:wait_applied(last, 10000, voters)
            assert_all(cl, kv)
            -- It never raised the others' term, and stays out.
            local _, st = cl:leader(10000)
            assert.is_true(st.term >= term)
            local gst = cl:status(gone)
            assert.are.equal("removed", gst.role)
            assert.are.equal(term, gst.term)

            status, out = run_cli({ "peer", "list", "--socket", cl:socket(id) })
            assert.are.equal(0, status, out)
            assert.matches(id, out, 1, true)
            assert.is_nil(out:find(gone .. " ", 1, true), out)
        end)
    end)

    it("transfers leadership to a chosen node, which then commits", function()
        with_cluster({ n = 3 }, function(cl)
            local leader, st = cl:leader(10000)
            local last, kv = commit(cl, "t", 10)
            cl:wait_applied(last, 10000)
            local target
            for _, o in ipairs(cl:ids()) do if o ~= leader then target = o break end end
            local status, out, err = run_cli({ "transfer", target, "--socket",
                                               cl:socket(target) })
            assert.are.equal(0, status, out .. err)
            assert.matches(target .. " leads now", out, 1, true)
            local now, nst = cl:leader(10000)
            assert.are.equal(target, now)
            assert.is_true(nst.term > st.term)
            last = commit(cl, "u", 5, kv)
            local after = cl:status(target)
            assert.are.equal("leader", after.role)
            assert.is_true(after.commit_index >= last)
            cl:wait_applied(last, 10000)
            assert_all(cl, kv)
        end)
    end)

    it("never answers a read with old data from a leader cut off from the majority",
       function()
        with_cluster({ n = 3 }, function(cl)
            local old = cl:leader(10000)
            local cc = cl:client()
            assert(cc:apply("set k old", 10000))
            cl:wait_applied((select(2, cl:leader(10000))).commit_index, 10000)
            local c = assert(cc:node(old))
            cl:isolate(old)
            -- The majority elects another leader and overwrites k.
            local new = cl:wait(function()
                local l = cl:leader(0, true)
                return l ~= old and l
            end, 15000, "a leader on the majority side")
            local nc = assert(cc:node(new))
            assert(nc:apply("set k new", 10000))
            -- The old leader may still believe it leads for a while: a read there must
            -- fail, never return "old"; a stale read may.
            local deadline = core.clock_ms() + 1500
            local failures = 0
            repeat
                local found, value, detail = c:read("k", { timeout_ms = 500 })
                assert.is_nil(found, "read on the cut-off leader returned " .. tostring(value))
                assert.is_true(value == "timeout" or value == "not_leader",
                               tostring(value) .. " " .. tostring(detail))
                failures = failures + 1
            until core.clock_ms() > deadline
            assert.is_true(failures > 0)
            local found, value = c:read("k", { stale = true })
            assert.is_true(found)
            assert.are.equal("old", value)
            -- Healed, it catches up and a read there sees the new value.
            cl:heal()
            cl:wait(function()
                local ok, v = c:read("k", { timeout_ms = 1000 })
                return ok and v == "new"
            end, 15000, old .. " to read the new value")
        end)
    end)

    it("recovers from losing 2 of 3 nodes and grows back to 3, keeping every entry",
       function()
        with_cluster({ n = 3 }, function(cl)
            cl:leader(10000)
            local last, kv = commit(cl, "r", 20)
            cl:wait_applied(last, 10000)
            -- node-2 and node-3 are lost for good; node-1 survives, stopped.
            cl:kill("node-2", "KILL")
            cl:kill("node-3", "KILL")
            cl:kill("node-1", "TERM")
            local status, out, err = run_cli({ "recover", "--data", cl:data_dir("node-1"),
                                               "--id", "node-1", "--listen",
                                               cl:address("node-1") })
            assert.are.equal(0, status, out .. err)
            cl:start("node-1")
            local leader = cl:leader(10000)
            assert.are.equal("node-1", leader)
            cl:wait_applied(last, 10000, { "node-1" })
            last = commit(cl, "s", 5, kv)

            local grown = { "node-1" }
            for _ = 1, 2 do
                local id, addr = cl:add_node()
                cl:start(id)
                cl:wait(function() return cl:status(id) end, 10000, id .. " to answer")
                local ok, code, detail = cl:client():add_peer(id, addr, { timeout_ms = 15000 })
                assert(ok, ("add_peer %s: %s %s"):format(id, tostring(code), tostring(detail)))
                grown[#grown + 1] = id
                wait_voters(cl, grown)
            end
            cl:wait_applied(last, 15000, grown)
            -- The new nodes hold everything: without the survivor they elect a leader
            -- and every committed value is still there.
            cl:kill("node-1", "KILL")
            local now = cl:leader(15000)
            assert.are_not.equal("node-1", now)
            assert_all(cl, kv)
        end)
    end)
end)
