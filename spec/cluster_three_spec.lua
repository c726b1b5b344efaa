-- cluster_three_spec.lua: a real 3-node cluster, one process per node on loopback
-- (helios.testing): election, replication, SIGKILL failover without losing a committed
-- entry, catch-up after a restart, a full stop and start with all state intact, SIGSTOP,
-- a partition through the TCP proxies, a clean SIGTERM, the data-dir lock.
--
-- Every wait has a deadline (cl:wait, cl:leader); a failing spec shows the nodes' logs,
-- and every cluster is stopped (processes, proxies, temp dir) also when a spec fails.

local testing = require("helios.testing")
local core = require("helios.core")
local cli = require("helios.cli")

local with_cluster = testing.with_cluster

local pc = require("spec.helpers.process_cluster")
local commit, assert_all = pc.commit, pc.assert_all

local function others(cl, id)
    local t = {}
    for _, o in ipairs(cl:ids()) do if o ~= id then t[#t + 1] = o end end
    return t
end

describe("3-node cluster of processes", function()
    it("elects one leader, replicates and applies on every node", function()
        with_cluster({ n = 3 }, function(cl)
            local leader, st = cl:leader(10000)
            local last = commit(cl, "k", 20)
            cl:wait_applied(last, 10000)
            local leaders = 0
            for _, id in ipairs(cl:ids()) do
                local s = assert(cl:status(id))
                assert.is_true(s.commit_index >= last)
                assert.is_true(s.term >= st.term)
                if s.role == "leader" then leaders = leaders + 1 end
                if id ~= leader then assert.are.equal(leader, s.leader) end
            end
            assert.are.equal(1, leaders)
        end)
    end)

    it("SIGKILL of the leader: a new leader soon, nothing committed lost, rejoin", function()
        with_cluster({ n = 3 }, function(cl)
            local old = cl:leader(10000)
            local _, kv = commit(cl, "a", 10)
            local t0 = core.clock_ms()
            cl:kill(old, "KILL")
            local new = cl:wait(function()
                local l = cl:leader(0, true)
                return l ~= old and l
            end, 5000, "a new leader after SIGKILL")
            local failover_ms = core.clock_ms() - t0
            assert.is_true(failover_ms < 5000)
            assert_all(cl, kv)
            local last = commit(cl, "b", 5, kv)
            -- the old leader restarts on its data dir and catches up
            cl:start(old)
            cl:wait_applied(last, 15000, { old })
            assert.are.equal(new, assert(cl:status(old)).leader)
            assert_all(cl, kv)
        end)
    end)

    it("stops every node (SIGTERM) and starts them again with all state intact", function()
        with_cluster({ n = 3 }, function(cl)
            cl:leader(10000)
            local last, kv = commit(cl, "p", 10)
            cl:wait_applied(last, 10000)
            for _, id in ipairs(cl:ids()) do
                local how, status = cl:kill(id, "TERM")
                assert.are.same({ "exited", 0 }, { how, status }, cl:logs(10))
            end
            for _, id in ipairs(cl:ids()) do cl:start(id) end
            cl:leader(15000)
            cl:wait_applied(last, 15000)
            for _, id in ipairs(cl:ids()) do
                assert.is_true(assert(cl:status(id)).commit_index >= last)
            end
            assert_all(cl, kv)
        end)
    end)

    it("pauses a follower and the leader (SIGSTOP) and resumes them", function()
        with_cluster({ n = 3 }, function(cl)
            local leader = cl:leader(10000)
            local follower = others(cl, leader)[1]
            cl:pause(follower)
            local last, kv = commit(cl, "f", 5)       -- a majority is enough
            cl:resume(follower)
            cl:wait_applied(last, 10000, { follower })

            cl:pause(leader)
            local new = cl:wait(function()
                local l = cl:leader(0, true)
                return l ~= leader and l
            end, 10000, "a leader while the old one is stopped")
            last = commit(cl, "g", 5, kv)
            cl:resume(leader)
            cl:wait(function()
                local s = cl:status(leader)
                return s and s.role ~= "leader" and s.applied_index >= last
            end, 10000, "the resumed leader to step down and catch up")
            assert.are.equal(new, (cl:leader(5000)))
            assert_all(cl, kv)
        end)
    end)

    it("cuts a node off through the proxy and heals it", function()
        with_cluster({ n = 3 }, function(cl)
            local leader = cl:leader(10000)
            local follower = others(cl, leader)[1]
            cl:isolate(follower)
            local last, kv = commit(cl, "c", 5)
            local s = assert(cl:status(follower))
            assert.is_true(s.applied_index < last)
            cl:heal()
            cl:wait_applied(last, 10000, { follower })

            -- the leader cut off: the others elect a new one, the old one steps down
            -- (CheckQuorum), and after the heal it follows
            cl:isolate(leader)
            local new = cl:wait(function()
                local best, best_term
                for _, id in ipairs(others(cl, leader)) do
                    local st = cl:status(id)
                    if st and st.role == "leader" and (not best_term or st.term > best_term) then
                        best, best_term = id, st.term
                    end
                end
                return best
            end, 10000, "a leader in the majority")
            last = commit(cl, "d", 5, kv)
            cl:wait(function()
                local st = cl:status(leader)
                return st and st.role ~= "leader"
            end, 10000, "the isolated leader to step down")
            cl:heal()
            cl:wait_applied(last, 10000, { leader })
            assert.are.equal(new, assert(cl:status(leader)).leader)
            assert_all(cl, kv)
        end)
    end)

    it("refuses a second node on a data dir in use, naming the holder", function()
        with_cluster({ n = 3 }, function(cl)
            cl:leader(10000)
            local log = cl:dir() .. "/second.log"
            local pid = assert(cli.spawn_node(cl:config_path("node-1"), "node-1", log))
            local how, status = core.proc_wait(pid, 10000)
            if not how then core.proc_kill(pid, "KILL") end
            assert.are.same({ "exited", 1 }, { how, status })
            local f = assert(io.open(log))
            local out = f:read("*a")
            f:close()
            assert.matches("locked by pid " .. cl:pid("node-1"), out, 1, true)
            assert.is_truthy(cl:status("node-1"))
        end)
    end)
end)
