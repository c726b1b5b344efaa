-- stall_sim_spec.lua: a node held up longer than an election timeout (a long callback, a
-- busy or descheduled machine, a SIGSTOP; c:stall on helios.sim) does not disturb a
-- healthy leader: when it runs again it takes in the messages that waited for it before
-- it judges its timeouts (csrc/node/node.h, csrc/node/runtime.c); and when every node is
-- held up at once, a deadline found long past waits one heartbeat interval more
-- (csrc/core/raft.c, "late"). A bulk load on a busy machine holds up every node's loop
-- like this, again and again.

local cl = require("spec.helpers.cluster")

-- Per node: term, role, state changes, elections.
local function snapshot(c)
    local t = {}
    for _, id in ipairs(c:ids()) do
        local st, stats = c:node(id):status(), c:node(id):stats()
        t[id] = { term = st.term, role = st.role, state_changes = stats.state_changes,
                  elections = stats.elections }
    end
    return t
end

local function others(c, id)
    local t = {}
    for _, o in ipairs(c:ids()) do if o ~= id then t[#t + 1] = o end end
    return t
end

describe("a node held up past its election timeout", function()
    it("a follower takes in its leader's heartbeats before its election timer fires", function()
        cl.with_seed(cl.seed(1501), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local leader = cl.wait_leader(c, 3000)
            c:run_for(500)
            local before = snapshot(c)
            for _, f in ipairs(others(c, leader)) do
                -- Several election timeouts (at most 300 ms each); the leader goes on
                -- sending heartbeats and entries to it meanwhile.
                c:stall(f, 1000)
                assert.is_truthy(c:apply("set during-stall " .. f, 3000))
                c:run_for(1500)
                assert.are.same(before, snapshot(c), f .. "\n  " .. cl.dump(c))
            end
            assert.are.same({ leader }, cl.leaders(c))
        end)
    end)
end)

describe("every node held up at once past the election timeout", function()
    -- The same work (a bulk load's applies, a collector pause at the same heap size) holds
    -- up every replica together: no heartbeat is sent or read meanwhile. When they run
    -- again, a deadline found missed by more than a heartbeat interval waits one more
    -- interval, in which the leader's heartbeats and its followers' answers get through
    -- (csrc/core/raft.c, "late"), instead of a CheckQuorum step-down or an election.
    it("keeps its leader", function()
        cl.with_seed(cl.seed(1502), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local leader = cl.wait_leader(c, 3000)
            c:run_for(500)
            local before = snapshot(c)
            for round = 1, 5 do
                for _, id in ipairs(c:ids()) do c:stall(id, 400 + 100 * round) end
                c:run_for(1500)
                assert.is_truthy(c:apply("set after-stall " .. round, 3000))
                assert.are.same(before, snapshot(c), "round " .. round .. "\n  " .. cl.dump(c))
            end
            assert.are.same({ leader }, cl.leaders(c))
        end)
    end)
end)
