-- fsm_spec.lua: Lua state machines under the simulator: an error raised in apply is
-- reported (node and index) instead of taking the process down, and entry.time_ms is the
-- leader's stamp, the same on every node.

local cl = require("spec.helpers.cluster")
local fsm = require("spec.helpers.fsm")

describe("fsm", function()
    it("reports an error raised by apply with the node and the index", function()
        cl.with_seed(cl.seed(401), function(seed)
            local c = cl.new{ n = 3, seed = seed, make = function(id)
                return fsm.failing(id, "boom", "kaboom in apply")
            end }
            cl.wait_leader(c)
            for i = 1, 10 do cl.commit(c, "cmd" .. i) end
            local index = c:node(c:leader()):propose("boom")
            assert.is_number(index)
            assert.is_true(index >= 10)

            local ok, err = pcall(c.run_for, c, 1000)

            assert.is_false(ok)
            err = tostring(err)
            assert.matches("kaboom in apply", err, 1, true)
            assert.matches("n[123]", err)
            assert.matches("%f[%d]" .. index .. "%f[%D]", err)
        end)
        -- The process is still here, and a fresh cluster still works.
        local c = cl.new{ n = 3, seed = 1 }
        cl.wait_leader(c)
        assert.is_number((cl.commit(c, "still alive")))
    end)

    it("gives apply the leader's time stamp, identical on every node and every replay", function()
        cl.with_seed(cl.seed(402), function(seed)
            local c, reg = cl.new{ n = 3, seed = seed }
            local leader = cl.wait_leader(c)
            local follower = c:ids()[1] == leader and c:ids()[2] or c:ids()[1]
            local window = {}
            for i = 1, 5 do
                c:run_for(137 * i)
                local before = c:now()
                local index = cl.commit(c, "t" .. i)
                window[index] = { before, c:now() }
            end
            -- A restarted follower replays the log long after the leader stamped it.
            c:crash(follower)
            c:run_for(1000)
            c:restart(follower)
            local last = cl.commit(c, "t6")
            assert.is_true(cl.wait_applied(c, last, 3000))

            local stamps
            for _, id in ipairs(c:ids()) do
                local mine = {}
                for _, e in ipairs(reg.current[id].log) do
                    assert.is_number(e.time_ms, id .. " index " .. e.index)
                    mine[e.index] = e.time_ms
                end
                if stamps then
                    assert.are.same(stamps, mine, id)
                else
                    stamps = mine
                end
            end
            for index, w in pairs(window) do
                assert.is_true(stamps[index] >= w[1] and stamps[index] <= w[2],
                               ("stamp %d of index %d outside [%d, %d]")
                               :format(stamps[index], index, w[1], w[2]))
            end
        end)
    end)
end)
