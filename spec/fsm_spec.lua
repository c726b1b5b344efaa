-- fsm_spec.lua: Lua state machines under the simulator: an error raised in apply is the
-- entry's result (fsm_error naming the index, the same on every node; fsm_error_spec.lua
-- has the rest), and entry.time_ms is the leader's stamp, the same on every node.

local cl = require("spec.helpers.cluster")
local fsm = require("spec.helpers.fsm")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

describe("fsm", function()
    it("answers an error raised by apply with fsm_error and the index, on every node", function()
        cl.with_seed(cl.seed(401), function(seed)
            local c, reg = cl.new{ n = 3, seed = seed, make = function(id)
                return fsm.failing(id, "boom", "kaboom in apply")
            end }
            cl.wait_leader(c)
            for i = 1, 10 do cl.commit(c, "cmd" .. i) end
            local index, term = c:node(c:leader()):propose("boom")
            assert.is_number(index)
            assert.is_true(index >= 10)
            local got
            c:node(c:leader()):apply("after", 1000, function(...) got = { ... } end)

            c:run_for(1000) -- an FSM error no longer stops the simulation

            assert.is_number(got[1], tostring(got[2]))
            for _, id in ipairs(c:ids()) do
                local r = reg.current[id]
                assert.is_nil(r.by_index[index], id)          -- it raised before recording
                assert.are.equal("after", r.by_index[got[1]], id) -- and went on
                assert.are.equal(1, c:stats(id).fsm_errors, id)
            end
            local i2, code, detail = c:apply("boom", 1000)
            assert.is_nil(i2)
            assert.are.equal("fsm_error", code)
            assert.matches("kaboom in apply", detail, 1, true)
            assert.matches("%(term %d+%)", detail)
            assert.is_number(term)
        end)
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
            for index, w in each(window) do
                assert.is_true(stamps[index] >= w[1] and stamps[index] <= w[2],
                               ("stamp %d of index %d outside [%d, %d]")
                               :format(stamps[index], index, w[1], w[2]))
            end
        end)
    end)
end)
