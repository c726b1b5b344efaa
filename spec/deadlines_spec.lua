-- deadlines_spec.lua: helios.util.deadlines, the one timer behind the deadlines of the
-- writes and reads a networked node waits on (lua/helios/raft.lua). Runs on the real loop
-- with short timeouts; every wait ends by a deadline (loop.after stops the loop).

local deadlines = require("helios.util.deadlines")
local loop = require("helios.loop")

-- Run the loop until stop() or limit_ms.
local function run_for(limit_ms, body)
    local guard = loop.after(limit_ms, function() loop.stop() end)
    body()
    assert(loop.run())
    guard:stop()
end

local function item(log, name)
    return { name = name, deadline = 0, done = false,
             expire = function(owner, it) log[#log + 1] = { owner, it.name, loop.now() } end }
end

describe("helios.util.deadlines", function()
    it("expires items in deadline order, across timeouts, and not the done ones", function()
        local log, owner = {}, {}
        local d = deadlines.new(owner)
        local t0
        run_for(2000, function()
            t0 = loop.now()
            local a, b, c, e = item(log, "a40"), item(log, "b10"), item(log, "c40"),
                               item(log, "e10")
            d:add(40, a)
            d:add(10, b)        -- a shorter timeout after a longer one: the timer re-arms
            d:add(40, c)
            d:add(10, e)
            e.done = true       -- finished in time: never expires
            loop.after(100, function() loop.stop() end)
        end)
        assert.equal(3, #log)
        assert.same({ "b10", "a40", "c40" }, { log[1][2], log[2][2], log[3][2] })
        assert.equal(owner, log[1][1])
        assert.is_true(log[1][3] - t0 >= 10, "b expired early")
        assert.is_true(log[2][3] - t0 >= 40, "a expired early")
    end)

    it("takes deadlines added by an expiry, and clear() forgets every one", function()
        local log = {}
        local d = deadlines.new("o")
        run_for(2000, function()
            local first = item(log, "first")
            local expire = first.expire
            first.expire = function(o, it)
                expire(o, it)
                d:add(5, item(log, "second"))   -- from inside an expiry
            end
            d:add(5, first)
            d:add(30, item(log, "cleared"))
            loop.after(20, function() d:clear() end)
            loop.after(60, function() loop.stop() end)
        end)
        assert.same({ "first", "second" }, { log[1] and log[1][2], log[2] and log[2][2] })
        assert.equal(2, #log) -- "cleared" never expired
    end)
end)
