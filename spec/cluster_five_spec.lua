-- cluster_five_spec.lua: a real 5-node cluster of processes (helios.testing): it survives
-- two failures at once, and a minority cut off by the proxies commits nothing while the
-- majority goes on; after the heal every node agrees.

local testing = require("helios.testing")

local function commit(cc, prefix, n)
    local last
    for i = 1, n do
        local index, code, detail = cc:apply(("set %s%d %d"):format(prefix, i, i), 10000)
        assert(index, ("apply: %s %s"):format(tostring(code), tostring(detail)))
        last = index
    end
    return last
end

describe("5-node cluster of processes", function()
    it("elects, replicates, and survives the leader and a follower killed at once", function()
        testing.with_cluster({ n = 5 }, function(cl)
            local leader = cl:leader(15000)
            local cc = cl:client()
            local last = commit(cc, "a", 10)
            cl:wait_applied(last, 10000)
            local victim
            for _, id in ipairs(cl:ids()) do
                if id ~= leader then victim = id break end
            end
            cl:kill(leader, "KILL")
            cl:kill(victim, "KILL")
            cl:wait(function()
                local l = cl:leader(0, true)
                return l and l ~= leader
            end, 10000, "a leader among the three survivors")
            last = commit(cc, "b", 10)
            for i = 1, 10 do
                local _, _, v = assert(cc:apply("get a" .. i, 10000))
                assert.are.equal(tostring(i), v)
            end
            cl:start(leader)
            cl:start(victim)
            cl:wait_applied(last, 15000)
        end)
    end)

    it("a cut-off minority commits nothing; the majority does; the heal converges", function()
        testing.with_cluster({ n = 5 }, function(cl)
            local leader = cl:leader(15000)
            local ids = cl:ids()
            -- the minority holds the leader and one more node
            local minority, majority = { leader }, {}
            for _, id in ipairs(ids) do
                if id ~= leader then
                    if #minority < 2 then minority[#minority + 1] = id
                    else majority[#majority + 1] = id end
                end
            end
            local cc = cl:client()
            local before = commit(cc, "x", 3)
            cl:partition(minority, majority)
            -- a direct apply on the old leader cannot commit
            local old = assert(cc:node(leader))
            local index, code = old:apply("set lost 1", 1500)
            assert.is_nil(index)
            assert.is_truthy(code == "timeout" or code == "not_leader", tostring(code))
            local new = cl:wait(function()
                for _, id in ipairs(majority) do
                    local st = cl:status(id)
                    if st and st.role == "leader" then return id end
                end
            end, 10000, "a leader in the majority")
            local majority_client = require("helios.client").cluster({
                [majority[1]] = cl:socket(majority[1]), [majority[2]] = cl:socket(majority[2]),
                [majority[3]] = cl:socket(majority[3]) })
            local last = commit(majority_client, "y", 5)
            majority_client:close()
            for _, id in ipairs(minority) do
                local st = assert(cl:status(id))
                assert.is_true(st.commit_index < last)
            end
            cl:heal()
            cl:wait_applied(last, 15000)
            assert.is_true(last > before)
            assert.are.equal(new, assert(cl:status(leader)).leader)
            -- the entry proposed on the cut-off leader was never committed
            local _, _, v = assert(cc:apply("get lost", 10000))
            assert.is_nil(v)
        end)
    end)
end)
