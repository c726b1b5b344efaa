--- helios.testing.nemesis: a fault schedule driven by a seed, on a helios.testing cluster
-- (docs/testing.md, "Torture runs").
--
--   local nemesis = require("helios.testing.nemesis")
--   local n = nemesis.new(cl, { seed = 7, kinds = { "kill", "partition_half", ... } })
--   n:step()            -- undoes the fault in place (if any), then applies the next one
--   n:heal()            -- undoes everything: every node running, every link forwarding
--   n:run(ms, opts)     -- steps every opts.interval_ms (1500) for ms, then heals
--   n:log()             -- the schedule so far, one line per fault and heal
--
-- The kinds (nemesis.KINDS; every one by default):
--   kill            SIGKILL a random node; restarted at the next step (same data dir)
--   kill_leader     SIGKILL the leader; restarted at the next step
--   pause_leader    SIGSTOP the leader for the step (long enough to lose leadership at the
--                   test clusters' election timeouts), SIGCONT at the next step
--   partition_half  a random split of the nodes into two halves
--   partition_leader the leader alone on one side
--   bridge          two halves that one node (the bridge) sees both of
--   oneway          the leader cannot dial the others; they still reach it
--   transfer        leadership handed to a random follower (nothing to undo)
--   rejoin          a follower removed from the configuration, killed, its data dir wiped,
--                   started again with join = true and added back (cl:rejoin)
--   kill_all        SIGKILL every node; all restarted at the next step
--
-- Every call waits (yields on the loop when called in a coroutine: run it with loop.spawn
-- beside the workload's clients). A fault that cannot be applied now (no leader known,
-- say) is logged as skipped. The random choices come from the seed only; what they hit
-- (which node leads) depends on the run.

local core = require("helios.core")
local loop = require("helios.loop")

local format, concat = string.format, table.concat
local ipairs, pcall, tostring, setmetatable = ipairs, pcall, tostring, setmetatable

local M = {}

M.KINDS = { "kill", "kill_leader", "pause_leader", "partition_half", "partition_leader",
            "bridge", "oneway", "transfer", "rejoin", "kill_all" }

-- Park and Miller's minimal standard generator: the same sequence on every platform.
local function prng(seed)
    local x = seed % 2147483647
    if x <= 0 then x = x + 2147483646 end
    return function(n) -- 1..n
        x = (x * 48271) % 2147483647
        return x % n + 1
    end
end

local Nemesis = {}
Nemesis.__index = Nemesis

--- A nemesis over cluster cl. opts: seed (default 1), kinds (a list of names of
-- nemesis.KINDS), leader_wait_ms (how long a fault that needs the leader waits, 3000),
-- print (a function given each log line as it happens).
function M.new(cl, opts)
    opts = opts or {}
    -- The schedule's generator works on integers: a fraction would draw no kind at all.
    if opts.seed ~= nil and (type(opts.seed) ~= "number" or opts.seed % 1 ~= 0) then
        error("nemesis: seed must be an integer, got " .. tostring(opts.seed), 2)
    end
    local self = setmetatable({ cl = cl, seed = opts.seed or 1, kinds = opts.kinds or M.KINDS,
        leader_wait_ms = opts.leader_wait_ms or 3000, print = opts.print, _log = {},
        _undo = {}, _t0 = core.clock_ms(), counts = {} }, Nemesis)
    self.rand = prng(self.seed)
    for _, k in ipairs(self.kinds) do
        if not Nemesis["f_" .. k] then error("nemesis: unknown kind " .. tostring(k), 2) end
    end
    return self
end

function Nemesis:say(fmt, ...)
    local line = format("%8.1f s  " .. fmt, (core.clock_ms() - self._t0) / 1000, ...)
    self._log[#self._log + 1] = line
    if self.print then self.print(line) end
end

--- The schedule so far, one line per event.
function Nemesis:log() return concat(self._log, "\n") end

local function shuffled(self, list)
    local t = {}
    for i, v in ipairs(list) do t[i] = v end
    for i = #t, 2, -1 do
        local j = self.rand(i)
        t[i], t[j] = t[j], t[i]
    end
    return t
end

function Nemesis:members()
    local ids = {}
    for _, id in ipairs(self.cl:ids()) do
        if not self._removed or self._removed ~= id then ids[#ids + 1] = id end
    end
    return ids
end

function Nemesis:leader()
    return self.cl:leader(self.leader_wait_ms, true)
end

function Nemesis:others(id)
    local t = {}
    for _, o in ipairs(self:members()) do if o ~= id then t[#t + 1] = o end end
    return t
end

function Nemesis:on_undo(fn) self._undo[#self._undo + 1] = fn end

-- ---- the faults: each applies itself and registers its undo --------------------------

function Nemesis:f_kill()
    local ids = self:members()
    local id = ids[self.rand(#ids)]
    if not self.cl:running(id) then return "skipped (not running)" end
    self.cl:kill(id, "KILL")
    self:on_undo(function() if not self.cl:running(id) then self.cl:start(id) end end)
    return id
end

function Nemesis:f_kill_leader()
    local l = self:leader()
    if not l then return "skipped (no leader)" end
    self.cl:kill(l, "KILL")
    self:on_undo(function() if not self.cl:running(l) then self.cl:start(l) end end)
    return l
end

function Nemesis:f_pause_leader()
    local l = self:leader()
    if not l then return "skipped (no leader)" end
    self.cl:pause(l)
    self:on_undo(function() self.cl:resume(l) end)
    return l
end

function Nemesis:cut(a, b)
    self.cl:partition(a, b)
    self:on_undo(function() self.cl:heal() end)
    return concat(a, ",") .. " | " .. concat(b, ",")
end

function Nemesis:f_partition_half()
    local ids = shuffled(self, self:members())
    local a, b = {}, {}
    for i, id in ipairs(ids) do
        if i <= math.floor(#ids / 2) then a[#a + 1] = id else b[#b + 1] = id end
    end
    return self:cut(a, b)
end

function Nemesis:f_partition_leader()
    local l = self:leader()
    if not l then return "skipped (no leader)" end
    return self:cut({ l }, self:others(l))
end

function Nemesis:f_bridge()
    local ids = shuffled(self, self:members())
    if #ids < 3 then return "skipped (fewer than 3 nodes)" end
    local bridge = table.remove(ids, 1)
    local a, b = {}, {}
    for i, id in ipairs(ids) do
        if i <= math.floor(#ids / 2) then a[#a + 1] = id else b[#b + 1] = id end
    end
    return self:cut(a, b) .. " bridged by " .. bridge
end

function Nemesis:f_oneway()
    local l = self:leader()
    if not l then return "skipped (no leader)" end
    self.cl:partition_oneway({ l }, self:others(l))
    self:on_undo(function() self.cl:heal() end)
    return l .. " -/-> " .. concat(self:others(l), ",")
end

function Nemesis:f_transfer()
    local l = self:leader()
    if not l then return "skipped (no leader)" end
    local o = self:others(l)
    local to = o[self.rand(#o)]
    local ok, code = self.cl:client():transfer(to, 3000)
    return format("%s -> %s: %s", l, to, ok and tostring(ok) or tostring(code))
end

function Nemesis:f_rejoin()
    local l = self:leader()
    if not l then return "skipped (no leader)" end
    local o = self:others(l)
    local id = o[self.rand(#o)]
    local ok, code, detail = self.cl:client():remove_peer(id, { timeout_ms = 5000 })
    if not ok then
        return format("skipped (remove_peer %s: %s %s)", id, tostring(code), tostring(detail))
    end
    self._removed = id
    self.cl:kill(id, "KILL")
    self:on_undo(function()
        self.cl:rejoin(id)
        local addr = self.cl:address(id)
        local added, acode
        for _ = 1, 10 do
            self.cl:wait(function() return self.cl:status(id) end, 10000, id .. " to answer")
            added, acode = self.cl:client():add_peer(id, addr, { timeout_ms = 5000 })
            if added then break end
            loop.wait(300)
        end
        self._removed = nil
        self:say("  %s added back: %s", id, added and "ok" or tostring(acode))
    end)
    return id .. " removed, wiped"
end

function Nemesis:f_kill_all()
    local killed = {}
    for _, id in ipairs(self:members()) do
        if self.cl:running(id) then
            self.cl:kill(id, "KILL")
            killed[#killed + 1] = id
        end
    end
    self:on_undo(function()
        for _, id in ipairs(killed) do
            if not self.cl:running(id) then self.cl:start(id) end
        end
    end)
    return concat(killed, ",")
end

--- Undo the faults in place (latest first): every node started or resumed, links healed.
function Nemesis:undo()
    local undo = self._undo
    self._undo = {}
    for i = #undo, 1, -1 do
        local ok, e = pcall(undo[i])
        if not ok then self:say("  undo failed: %s", tostring(e)) end
    end
end

--- Undo what is in place, then apply the next fault of the schedule. Returns its kind.
function Nemesis:step()
    if #self._undo > 0 then
        self:undo()
        self:say("heal")
    end
    local kind = self.kinds[self.rand(#self.kinds)]
    local ok, what = pcall(Nemesis["f_" .. kind], self)
    self.counts[kind] = (self.counts[kind] or 0) + 1
    self:say("%-16s %s", kind, ok and tostring(what) or ("failed: " .. tostring(what)))
    return kind
end

--- Undo everything: every node running (and resumed), every link forwarding.
function Nemesis:heal()
    self:undo()
    for _, id in ipairs(self.cl:ids()) do
        if not self.cl:running(id) and id ~= self._removed then
            pcall(self.cl.start, self.cl, id)
        end
        if self.cl:running(id) then self.cl:resume(id) end
    end
    pcall(self.cl.heal, self.cl)
    self:say("heal (all)")
end

--- Step every opts.interval_ms (default 1500; opts.quiet_ms, default 500, between a heal
-- and the next fault so that clients make progress) until ms have passed or
-- self.stopped is set, then heal. Call in a coroutine on the loop.
function Nemesis:run(ms, opts)
    opts = opts or {}
    local deadline = core.clock_ms() + ms
    while not self.stopped and core.clock_ms() < deadline do
        self:step()
        loop.wait(opts.interval_ms or 1500)
        if #self._undo > 0 then
            self:undo()
            self:say("heal")
        end
        loop.wait(opts.quiet_ms or 500)
    end
    self:heal()
end

return M
