--- helios.nodelog: what `helios node` prints of a node's "log" and "error" events, with
-- repeats summarized.
--
-- A peer with the wrong secret is refused at every reconnect, a few times a second at
-- first; printing each refusal would bury everything else. So the first occurrence of a
-- message is printed at once, and repeats of it within the next `repeat_ms` are counted
-- and printed as one summary line when that window closes:
--
--   warning: transport: from node-3 (127.0.0.1:40312): handshake refused: authentication
--            failed (wrong cluster secret?)
--   warning: transport: from node-3 (127.0.0.1:40388): handshake refused: ... [7 more in
--            the last 10 s]
--
-- Two messages are repeats when they are equal but for the port of an address in
-- parentheses (an inbound connection's port is new at each attempt): so repeats are
-- grouped per peer and per reason.
--
--   local nodelog = require("helios.nodelog")
--   local reports = nodelog.attach(node, function(line) io.stderr:write(line, "\n") end,
--                                  { repeat_ms = 10000 })
--   raft.every(1000, function() reports:flush() end)   -- prints the summaries that are due
--   reports:close()                                    -- at shutdown: prints what is left

local format = string.format
local pairs, type, tostring, setmetatable, error = pairs, type, tostring, setmetatable, error
local floor = math.floor

local M = {}

--- Repeats of one message are summarized over this many ms unless told otherwise.
M.REPEAT_MS = 10000
--- At most this many distinct messages are tracked at once; beyond, messages are counted
-- together ("other messages"), so a flood of distinct ones cannot grow the table.
M.MAX_KEYS = 256

local LEVELS = { [0] = "", [1] = "warning: ", [2] = "error: " }

--- The grouping key of a message: the message without the ports of "(host:port)".
function M.key(level, msg)
    return tostring(level) .. "\0" .. msg:gsub("(%([^()]-):%d+%)", "%1)")
end

local Limiter = {}
Limiter.__index = Limiter
Limiter.__name = "helios.nodelog.limiter"

function Limiter:__tostring()
    return format("helios.nodelog.limiter(%d ms, %d tracked)", self.repeat_ms, self.n)
end

--- A limiter that passes lines to emit(line).
-- @tparam table opts emit (function(line), required), repeat_ms (default REPEAT_MS),
--   now (function() -> ms, default core.clock_ms)
function M.limiter(opts)
    if type(opts) ~= "table" or type(opts.emit) ~= "function" then
        error("Usage: nodelog.limiter{ emit = function(line) end[, repeat_ms = ms] }", 2)
    end
    local repeat_ms = opts.repeat_ms or M.REPEAT_MS
    if type(repeat_ms) ~= "number" or repeat_ms < 0 then
        error("Usage: nodelog.limiter{ repeat_ms = a non-negative number of ms }", 2)
    end
    return setmetatable({ emit = opts.emit, repeat_ms = repeat_ms,
                          now = opts.now or require("helios.core").clock_ms,
                          seen = {}, n = 0 }, Limiter)
end

local function summary(self, s, now)
    local secs = floor((now - s.since) / 1000 + 0.5)
    self.emit(format("%s [%d more in the last %d s]", s.last, s.count, secs < 1 and 1 or secs))
end

--- Print level, msg now, or count it as a repeat of a message printed less than
-- repeat_ms ago.
function Limiter:log(level, msg)
    msg = tostring(msg)
    local line = (LEVELS[level] or LEVELS[2]) .. msg
    local k = M.key(level, msg)
    local s = self.seen[k]
    local overflow = s == nil and self.n >= M.MAX_KEYS
    if overflow then
        k = "\0overflow"
        s = self.seen[k]
    end
    if s == nil then
        self.emit(line)
        self.seen[k] = { since = self.now(), count = 0,
                         last = overflow and "(messages of other kinds)" or line }
        self.n = self.n + 1
    else
        s.count = s.count + 1
        if not overflow then s.last = line end
    end
end

--- Print the summaries of windows that have closed (every window with force): a message
-- that was repeated starts a new window, so its repeats go on being counted; one that was
-- not is forgotten, and prints at once when it comes again.
function Limiter:flush(force)
    local now = self.now()
    for k, s in pairs(self.seen) do
        if force or now - s.since >= self.repeat_ms then
            if s.count > 0 then summary(self, s, now) end
            if s.count > 0 and not force then
                s.since, s.count = now, 0
            else
                self.seen[k] = nil
                self.n = self.n - 1
            end
        end
    end
end

--- Print every pending summary and forget everything.
function Limiter:close()
    self:flush(true)
end

--- Subscribe to node's "log" and "error" events; lines go to out(line) through a limiter,
-- which is returned (call its flush() every second or so, and close() at shutdown).
-- @tparam table node a networked node (helios.raft)
-- @tparam function out receives each line
-- @tparam[opt] table opts repeat_ms; ignore (a set of error codes the caller reports itself)
function M.attach(node, out, opts)
    local lim = M.limiter{ emit = out, repeat_ms = opts and opts.repeat_ms }
    local ignore = opts and opts.ignore or {}
    node:on("log", function(level, msg) lim:log(level, msg) end)
    node:on("error", function(code, msg)
        if code and ignore[code] then
            return
        elseif code then
            lim:log(2, format("%s (%s)", tostring(msg), tostring(code)))
        else
            lim:log(0, tostring(msg))
        end
    end)
    return lim
end

return M
