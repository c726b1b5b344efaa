-- churn_spec.lua: nodes crash, restart, disconnect and reconnect while three clients keep
-- committing commands (MIT 6.824's churn tests). At the end every node holds every command
-- a client was told had committed, at the index it was told.

local cl = require("spec.helpers.cluster")
local prng = require("spec.helpers.prng")
local schedule = require("spec.helpers.schedule")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local function churn(seed, n, unreliable)
    local c = cl.new{ n = n, seed = seed }
    cl.wait_leader(c)
    local acked = schedule.churn(c, prng.new(seed), { duration_ms = 20000,
                                                       unreliable = unreliable })
    local final = cl.settle(c, "final", 20000)

    local count = 0
    for _ in each(acked) do count = count + 1 end
    assert.is_true(count >= 10, "only " .. count .. " commands committed under churn")
    local reference = c:applied(c:ids()[1])
    for _, id in ipairs(c:ids()) do
        local map = cl.applied_map(c, id)
        for index, cmd in each(acked) do
            assert.are.equal(cmd, map[index], ("%s at index %d"):format(id, index))
        end
        assert.are.same(reference, c:applied(id), id)
        assert.are.equal("final", map[final] and map[final]:match("^final"))
    end
end

describe("churn", function()
    it("keeps every acknowledged command on 5 nodes over a reliable network", function()
        cl.with_seed(cl.seed(901), function(seed) churn(seed, 5, false) end)
    end)

    it("keeps every acknowledged command on 5 nodes over an unreliable network", function()
        cl.with_seed(cl.seed(902), function(seed) churn(seed, 5, true) end)
    end)

    it("keeps every acknowledged command on 3 nodes over an unreliable network", function()
        cl.with_seed(cl.seed(903), function(seed) churn(seed, 3, true) end)
    end)
end)
