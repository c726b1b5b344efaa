-- fsm_error_spec.lua: FSM errors in the simulator are results, not crashes. A command whose
-- fsm:apply raises (or returns what a client could not receive) is answered
-- nil, "fsm_error", "<index and term>: ..." on every replica alike, logged once per node,
-- counted, and the next entries apply; on_fsm_error = "stop" halts the node at that entry
-- instead, and a restart replays it and halts again. Also: apply timeouts of 0, 1, 2999,
-- 3000 and fractions.

local cl = require("spec.helpers.cluster")
local faulty = require("spec.helpers.faulty_fsm")

local format = string.format

-- A cluster of faulty kv FSMs (registry current[id]) recording each node's log and error
-- events.
local function new(seed, extra)
    local c, reg = cl.new{ n = 3, seed = seed, config = extra,
                           make = function() return faulty.new() end }
    local events = { log = {}, error = {} }
    for _, id in ipairs(c:ids()) do
        events.log[id], events.error[id] = {}, {}
        c:node(id):on("log", function(level, msg)
            local l = events.log[id]
            l[#l + 1] = { level = level, msg = msg }
        end)
        c:node(id):on("error", function(code, msg)
            local l = events.error[id]
            l[#l + 1] = { code = code, msg = msg }
        end)
    end
    return c, reg, events
end

local function same_everywhere(c, reg)
    local want
    for _, id in ipairs(c:ids()) do
        local got = reg.current[id]:snapshot()
        want = want or got
        assert.are.equal(want, got, id .. "'s FSM differs")
    end
end

describe("fsm errors in the simulator", function()
    it("answers a raising apply with fsm_error on every replica and goes on", function()
        cl.with_seed(cl.seed(4101), function(seed)
            local c, reg, events = new(seed)
            cl.wait_leader(c)
            assert(c:apply("set a 1", 1000))
            local leader = c:leader()
            local term = c:node(leader):state()
            local index = c:node(leader):status().last_index + 1

            local i, code, detail = c:apply("boom x", 1000)

            assert.is_nil(i)
            assert.are.equal("fsm_error", code)
            assert.matches(format("fsm apply at index %d (term %d) failed: ", index, term),
                           detail, 1, true)
            assert.matches("boom at x", detail, 1, true)
            -- later commands apply, on the same leader, and see what the raising one did
            local i2, _, v = c:apply("incr x", 1000)
            assert.are.equal(index + 1, i2)
            assert.are.equal(2, v)
            assert.is_true(cl.wait_applied(c, i2, 2000))
            same_everywhere(c, reg)
            for _, id in ipairs(c:ids()) do
                assert.is_true(c:alive(id))
                assert.are.equal(1, c:stats(id).fsm_errors, id)
                assert.are.equal(1, #events.log[id], id .. ": logged once")
                assert.are.equal(2, events.log[id][1].level)
                assert.matches(format("at index %d (term %d)", index, term),
                               events.log[id][1].msg, 1, true)
                assert.are.equal(0, #events.error[id])
            end
            -- a restarted replica replays the raising entry the same way
            local follower = c:ids()[1] == leader and c:ids()[2] or c:ids()[1]
            c:crash(follower)
            c:restart(follower)
            local i3 = cl.commit(c, "set b 2")
            assert.is_true(cl.wait_applied(c, i3, 3000))
            same_everywhere(c, reg)
            assert.are.equal("2", reg.current[follower]:get("x"))
            assert.are.equal(1, c:stats(follower).fsm_errors)
            c:check()
        end)
    end)

    it("answers a result no client can receive with fsm_error; the command applied once",
       function()
        cl.with_seed(cl.seed(4102), function(seed)
            local c, reg = new(seed)
            cl.wait_leader(c)
            local i, code, detail = c:apply("fn y", 1000)
            assert.is_nil(i)
            assert.are.equal("fsm_error", code)
            assert.matches("fsm apply at index %d+ %(term %d+%) failed: its result cannot be "
                           .. "sent to a client %(cannot encode a function", detail)
            assert.matches("the command was applied", detail, 1, true)
            local i2, _, v = c:apply("incr y", 1000)
            assert.are.equal(2, v)
            assert.is_true(cl.wait_applied(c, i2, 2000))
            same_everywhere(c, reg)
            for _, id in ipairs(c:ids()) do
                assert.are.equal(1, c:stats(id).fsm_errors, id)
            end
            -- tables with functions or cycles inside are refused the same way
            local cyc = {}
            cyc.self = cyc
            for _, bad in ipairs({ { f = print }, cyc }) do
                reg.current[c:leader()].apply = function() return bad end
                i, code = c:apply("anything", 1000)
                assert.is_nil(i)
                assert.are.equal("fsm_error", code)
            end
            c:check()
        end)
    end)

    it("halts the replicas that apply the entry with on_fsm_error = \"stop\"; a restart "
       .. "halts again", function()
        cl.with_seed(cl.seed(4103), function(seed)
            local c, reg, events = new(seed, { on_fsm_error = "stop" })
            local leader = cl.wait_leader(c)
            assert(c:apply("set a 1", 1000))
            local term = c:node(leader):state()
            local index = c:node(leader):status().last_index + 1

            local i, code, detail = c:apply("boom x", 1000)

            assert.is_nil(i)
            assert.are.equal("fsm_error", code)
            local where = format("fsm apply at index %d (term %d) failed: ", index, term)
            assert.matches(where, detail, 1, true)
            assert.matches("on_fsm_error = \"stop\": " .. leader .. " stopped at this entry",
                           detail, 1, true)
            assert.is_false(c:alive(leader))
            local st = c:node(leader):status()
            assert.are.equal("shutdown", st.role)
            assert.matches(where, st.fsm_error, 1, true)
            assert.matches("fix the FSM's apply, or set on_fsm_error = \"continue\"",
                           st.fsm_error, 1, true)
            assert.are.equal(1, #events.error[leader])
            assert.are.equal("fsm_error", events.error[leader][1].code)
            assert.matches("boom at x", events.error[leader][1].msg, 1, true)
            -- The leader's state stopped before the entry (the raise left x = 1 in it, a
            -- fresh FSM at restart replays from the log).
            -- The others apply the entry once they learn it committed, and halt too.
            assert.is_true(c:run_until(function()
                local down = 0
                for _, id in ipairs(c:ids()) do
                    if not c:alive(id) then down = down + 1 end
                end
                return down >= 2
            end, 5000), cl.dump(c))

            -- A restart replays the entry and halts at it again, saying so.
            c:restart(leader)
            assert.is_nil(c:node(leader):status().fsm_error)
            for _, id in ipairs(c:ids()) do
                if not c:alive(id) then c:restart(id) end
            end
            assert.is_true(c:run_until(function() return not c:alive(leader) end, 5000),
                           cl.dump(c))
            assert.matches(where, c:node(leader):status().fsm_error, 1, true)
            assert.are.equal(2, #events.error[leader])
            assert.are.equal(events.error[leader][1].msg, events.error[leader][2].msg)
            c:check()
        end)
    end)

    it("rejects an on_fsm_error that is neither continue nor stop", function()
        assert.has_error(function()
            cl.new{ n = 3, config = { on_fsm_error = "ignore" } }
        end, 'sim.cluster: config: on_fsm_error: must be "continue" or "stop" '
            .. '(got "ignore", a string)')
    end)

    it("takes apply timeouts of 0, 1, 2999, 3000 and fractions (rounded up)", function()
        cl.with_seed(cl.seed(4104), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            cl.wait_leader(c)
            for _, ms in ipairs({ 0, 0.5, 1, 2999, 2999.5, 3000 }) do
                local leader = c:leader()
                local t0 = c:now()
                local i, code = c:apply("set k " .. ms, ms)
                if ms >= 2999 then
                    assert(i, format("timeout %s: %s", ms, tostring(code)))
                    assert.is_true(c:now() - t0 <= ms)
                else
                    -- A commit takes a round trip of a few virtual ms: these time out.
                    assert.is_nil(i)
                    assert.are.equal("timeout", code)
                    -- (c:apply runs time a virtual millisecond at a time)
                    assert.is_true(c:now() - t0 <= math.ceil(ms) + 1,
                                   format("%s: waited %d", ms, c:now() - t0))
                end
                -- node:apply with a callback: the same rule
                local got
                c:node(leader):apply("set n " .. ms, ms, function(...) got = { ... } end)
                assert.is_true(c:run_until(function() return got ~= nil end, 4000))
                if ms >= 2999 then
                    assert.is_number(got[1])
                else
                    assert.are.equal("timeout", got[2])
                end
            end
            for _, bad in ipairs({ -1, 0 / 0, math.huge, "10" }) do
                assert.has_error(function() c:apply("x", bad) end)
                assert.has_error(function() c:node(c:leader()):apply("x", bad, print) end)
            end
            c:check()
        end)
    end)
end)
