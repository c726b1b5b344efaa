-- persistence_spec.lua: crash and restart (a crash loses unsynced writes) never loses a
-- committed entry: after recovery every node applies everything committed before.

local cl = require("spec.helpers.cluster")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

-- Every node holds each committed (index -> command) and all agree entry for entry.
local function assert_keeps(c, committed)
    local reference = c:applied(c:ids()[1])
    for _, id in ipairs(c:ids()) do
        local map = cl.applied_map(c, id)
        for index, cmd in each(committed) do
            assert.are.equal(cmd, map[index], ("%s at index %d\n  %s"):format(id, index, cl.dump(c)))
        end
        assert.are.same(reference, c:applied(id), id)
    end
end

describe("persistence", function()
    it("keeps every committed entry when each node crashes and restarts in turn", function()
        cl.with_seed(cl.seed(301), function(seed)
            local c = cl.new{ n = 5, seed = seed }
            cl.wait_leader(c)
            local committed, k = {}, 0
            local function commit_some(count)
                for _ = 1, count do
                    k = k + 1
                    local index, cmd = cl.commit(c, "cmd" .. k)
                    committed[index] = cmd
                end
            end
            commit_some(5)
            for _, id in ipairs(c:ids()) do
                c:crash(id)
                commit_some(2)
                c:restart(id)
                commit_some(1)
            end
            local final = cl.settle(c, "final")
            assert.is_true(final > 1)
            assert_keeps(c, committed)
        end)
    end)

    it("keeps every committed entry when the leader crashes repeatedly", function()
        cl.with_seed(cl.seed(302), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local committed = {}
            for round = 1, 5 do
                local leader = cl.wait_leader(c)
                local index, cmd = cl.commit(c, "r" .. round)
                committed[index] = cmd
                c:crash(leader)
                c:run_for(50)
                c:restart(leader)
            end
            cl.settle(c, "final")
            assert_keeps(c, committed)
        end)
    end)

    it("keeps every committed entry when every node crashes at once", function()
        cl.with_seed(cl.seed(303), function(seed)
            local c = cl.new{ n = 5, seed = seed }
            cl.wait_leader(c)
            local committed = {}
            for i = 1, 5 do
                local index, cmd = cl.commit(c, "cmd" .. i)
                committed[index] = cmd
            end
            -- Uncommitted proposals in flight at the crash may go either way.
            c:node(c:leader()):propose("in-flight")
            c:run_for(1)

            for _, id in ipairs(c:ids()) do c:crash(id) end
            c:run_for(500)
            for _, id in ipairs(c:ids()) do c:restart(id) end

            cl.settle(c, "after")
            assert_keeps(c, committed)
        end)
    end)

    it("keeps every committed entry over repeated whole-cluster crashes", function()
        cl.with_seed(cl.seed(304), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local committed = {}
            for round = 1, 5 do
                cl.wait_leader(c)
                local index, cmd = cl.commit(c, "r" .. round)
                committed[index] = cmd
                for _, id in ipairs(c:ids()) do c:crash(id) end
                for _, id in ipairs(c:ids()) do c:restart(id) end
            end
            cl.settle(c, "final")
            assert_keeps(c, committed)
        end)
    end)
end)
