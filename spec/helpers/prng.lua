--- spec/helpers/prng.lua: a small seeded PRNG for test schedules.
--
-- Independent of math.random (which busted reseeds), so a schedule is a pure function of
-- its seed and replays exactly.
--
--   local prng = require("spec.helpers.prng")
--   local rng = prng.new(42)
--   rng:int(1, 6); rng:float(); rng:chance(0.1); rng:pick({ "a", "b" })

local floor = math.floor
local setmetatable = setmetatable

local M = {}

local MOD = 2147483647 -- 2^31 - 1: Park-Miller's multiplicative generator, exact in doubles

local Prng = {}
Prng.__index = Prng

--- A generator seeded from any non-negative integer.
-- @tparam number seed
function M.new(seed)
    -- Spread nearby seeds apart: Park-Miller's first outputs are close for close states.
    local s = (floor(seed) * 2654435761 + 12345) % (MOD - 1) + 1
    local rng = setmetatable({ s = s }, Prng)
    for _ = 1, 3 do rng:next() end
    return rng
end

--- The next raw value in [1, 2^31 - 2].
function Prng:next()
    self.s = (self.s * 16807) % MOD
    return self.s
end

--- A float in [0, 1).
function Prng:float()
    return (self:next() - 1) / (MOD - 1)
end

--- An integer in [lo, hi].
function Prng:int(lo, hi)
    return lo + floor(self:float() * (hi - lo + 1))
end

--- true with probability p.
function Prng:chance(p)
    return self:float() < p
end

--- A random element of a non-empty list.
function Prng:pick(list)
    return list[self:int(1, #list)]
end

--- A random subset of list with exactly k elements (order randomized).
function Prng:sample(list, k)
    local copy = {}
    for i = 1, #list do copy[i] = list[i] end
    for i = #copy, 2, -1 do
        local j = self:int(1, i)
        copy[i], copy[j] = copy[j], copy[i]
    end
    local out = {}
    for i = 1, k do out[i] = copy[i] end
    return out
end

return M
