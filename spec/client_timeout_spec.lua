-- client_timeout_spec.lua: every public timeout of helios.client (and of helios.testing's
-- waits) against a real 3-node cluster, with 0, 1, 2999, 3000 and fractional values. A
-- remaining time computed from core.clock_ms() is fractional: cc:apply used to send it as
-- the node's timeout_ms and get "bad_request ... must be a non-negative integer" for every
-- timeout up to attempt_ms (3000). Long timeouts must succeed on a healthy cluster; short
-- ones may time out, but never fail otherwise.

local testing = require("helios.testing")
local client = require("helios.client")

local format = string.format

local VALUES = { 0, 0.5, 1, 2999, 2999.5, 3000 }

-- ok: the call's first value; short timeouts may answer "timeout" instead, nothing else.
local function check(ms, what, ok, code, detail)
    if ms >= 2999 then
        assert(ok, format("%s with %s ms: %s %s", what, ms, tostring(code), tostring(detail)))
    elseif not ok then
        assert.are.equal("timeout", code, format("%s with %s ms: %s %s", what, ms,
                                                 tostring(code), tostring(detail)))
    end
end

describe("helios.client timeouts", function()
    it("takes 0, 1, 2999, 3000 and fractions everywhere", function()
        testing.with_cluster({ n = 3 }, function(cl)
            local leader = cl:leader(10000)
            local sockets = {}
            for _, id in ipairs(cl:ids()) do sockets[id] = cl:socket(id) end
            for _, ms in ipairs(VALUES) do
                -- one node
                local c, code, detail = client.connect(cl:socket(leader), ms)
                check(ms, "client.connect", c, code, detail)
                c = c or assert(client.connect(cl:socket(leader), 5000))
                check(ms, "c:ping", c:ping(ms))
                check(ms, "c:status", c:status(ms))
                check(ms, "c:stats", c:stats(ms))
                check(ms, "c:call", c:call("ping", nil, ms))
                check(ms, "c:apply", c:apply("set one " .. ms, ms))
                -- the protocol itself takes a fractional timeout_ms
                check(ms, "apply op", c:call("apply", { cmd = "set op " .. ms, timeout_ms = ms },
                                             ms + 1000))
                c:close()

                -- a cluster client, with these as its own timeouts too
                local cc = client.cluster(sockets, { timeout_ms = ms, attempt_ms = ms })
                check(ms, "cc:status", cc:status(leader, ms))
                check(ms, "cc:leader", cc:leader(ms, ms))
                cc:close()
                cc = client.cluster(sockets)
                check(ms, "cc:apply", cc:apply("set many " .. ms, ms))
                cc:close()

                -- helios.testing's waits
                check(ms, "cl:status", cl:status(leader, ms))
                if ms >= 2999 then
                    assert.are.equal(leader, (cl:leader(ms)))
                    local index = assert(cl:client():apply("set w " .. ms, 5000))
                    cl:wait_applied(index, ms)
                else
                    local l = cl:leader(ms, true)
                    assert(l == nil or l == leader)
                end
                assert.is_true(cl:wait(function() return true end, ms))
                assert.has_error(function() cl:wait(function() return false end, ms) end)
            end
            for _, bad in ipairs({ -1, 0 / 0, math.huge, "5" }) do
                assert.has_error(function() client.connect(cl:socket(leader), bad) end)
                local c = assert(client.connect(cl:socket(leader), 5000))
                assert.has_error(function() c:apply("x", bad) end)
                assert.has_error(function() c:status(bad) end)
                c:close()
                assert.has_error(function() client.cluster(sockets):apply("x", bad) end)
                assert.has_error(function() client.cluster(sockets):leader(bad) end)
            end
        end)
    end)

    it("spends the whole budget of cc:apply across attempts, fractions and all", function()
        testing.with_cluster({ n = 3 }, function(cl)
            cl:leader(10000)
            local cc = cl:client()
            -- budgets below, at and above attempt_ms (1500 for cl:client()), and fractions
            for _, ms in ipairs({ 1499, 1499.5, 1500, 1500.5, 2999.5, 3000, 3000.25 }) do
                local index, code, detail = cc:apply("incr n", ms)
                assert(index, format("%s ms: %s %s", ms, tostring(code), tostring(detail)))
            end
        end)
    end)
end)
