--- helios.util.deadlines: many deadlines on one loop timer (helios.core's).
--
--   local deadlines = require("helios.util.deadlines")
--   local d = deadlines.new(owner)
--   local item = { expire = function(owner, item) ... end, deadline = 0, done = false }
--   d:add(timeout_ms, item)    -- item.expire(owner, item) timeout_ms from now...
--   item.done = true           -- ...unless it is marked done first
--   d:clear()                  -- forget them all, stop the timer
--
-- A networked node (lua/helios/raft.lua) gives every write and read it waits on a
-- deadline. A loop timer each (a libuv handle, its userdata, two registry references and
-- a closure) cost more than the rest of the request's Lua work under load, and thousands
-- were live at once for the collector to walk. Here the items wait in one FIFO per timeout
-- value: within a FIFO the deadlines come in arrival order (core.now() only grows), so its
-- head is its earliest, and one timer is armed for the earliest head. A finished item is
-- only marked done; done heads are dropped as items are added and when the timer fires
-- (writes and reads finish about in arrival order, so the FIFOs stay short).
-- Deadlines are counted as a libuv timer counts them: from the loop's time (core.now()).

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local ipairs, each, setmetatable = ipairs, pairs, setmetatable
local ceil, max = math.ceil, math.max

local core_mod
local function core()
    core_mod = core_mod or require("helios.core")
    return core_mod
end

local M = {}

local D = {}
D.__index = D

--- An empty set of deadlines; owner is the first argument of every item.expire.
function M.new(owner)
    return setmetatable({ owner = owner, fifos = {}, timer = nil, at = nil }, D)
end

-- Drop the done items at the head of q.
local function prune(q)
    local h = q.head
    while h <= q.tail and q[h].done do
        q[h] = nil
        h = h + 1
    end
    q.head = h
end

local fire

-- Arm the timer for the earliest pending deadline (none: no timer).
local function arm(self)
    local first
    for _, q in each(self.fifos) do
        prune(q)
        if q.head <= q.tail and (first == nil or q[q.head].deadline < first) then
            first = q[q.head].deadline
        end
    end
    if self.timer then
        self.timer:stop()
        self.timer = nil
    end
    if first then
        self.at = first
        self.timer = core().timer(max(ceil(first - core().now()), 0), 0, function()
            fire(self)
        end)
    end
end

fire = function(self)
    self.timer = nil
    local now, expired = core().now(), {}
    for ms, q in each(self.fifos) do
        while q.head <= q.tail and (q[q.head].done or q[q.head].deadline <= now) do
            local item = q[q.head]
            q[q.head] = nil
            q.head = q.head + 1
            if not item.done then
                item.done = true
                expired[#expired + 1] = item
            end
        end
        if q.head > q.tail then self.fifos[ms] = nil end
    end
    -- (After the walk: an expire callback may add deadlines, and so a FIFO.)
    for _, item in ipairs(expired) do item.expire(self.owner, item) end
    arm(self)
end

--- item.expire(owner, item) timeout_ms from now, unless item.done is set first. Sets
-- item.deadline (give the item its deadline and done fields when making it: a field added
-- later may make the table grow).
function D:add(timeout_ms, item)
    local q = self.fifos[timeout_ms]
    if not q then
        q = { head = 1, tail = 0 }
        self.fifos[timeout_ms] = q
    else
        prune(q)
    end
    item.deadline = core().now() + timeout_ms
    q.tail = q.tail + 1
    q[q.tail] = item
    if self.timer == nil or item.deadline < self.at then arm(self) end
end

--- Forget every deadline and stop the timer (the owner failed its items itself).
function D:clear()
    if self.timer then
        self.timer:stop()
        self.timer = nil
    end
    self.fifos = {}
end

return M
