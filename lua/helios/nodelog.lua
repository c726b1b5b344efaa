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
--
-- Structured logs (docs/logging.md): a logger writes one line per event, with the time
-- (RFC 3339 UTC, ms), level, node id, term, role, event name, message and the event's
-- fields, as text for people or as JSON lines for machines, to stderr or a file that
-- reopen() opens again at its path (SIGHUP: logrotate moved it). observe() turns a node's
-- events into such lines: role, term and leader changes (derived from its "state" and
-- "leader" events), commits (summarized), and the "log" and "error" events, classified by
-- classify() when they carry no event name of their own. Repeats go through the limiter.
--
--   local logger = nodelog.logger{ node_id = "node-1", level = "info", format = "json",
--                                  file = "/var/log/helios/node-1.log" }
--   local obs = nodelog.observe(node, logger)   -- obs:flush() each second, obs:close()
--   logger:reopen()                             -- on SIGHUP

local format, concat, sort, byte, char = string.format, table.concat, table.sort, string.byte,
    string.char
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each, ipairs, type, tostring, setmetatable, error = pairs, ipairs, type, tostring,
    setmetatable, error
local floor, huge = math.floor, math.huge
local io_open, os_date = io.open, os.date

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

-- The summary of s's repeats: emit(line, rec) where rec (when the messages came with one)
-- is a copy of the last repeat's with msg and fields.repeats, fields.window_s added.
local function summary(self, s, now)
    local secs = floor((now - s.since) / 1000 + 0.5)
    secs = secs < 1 and 1 or secs
    local tail = format(" [%d more in the last %d s]", s.count, secs)
    local rec = s.rec
    if rec then
        local fields = {}
        for k, v in each(rec.fields or {}) do fields[k] = v end
        fields.repeats, fields.window_s = s.count, secs
        rec = { level = rec.level, event = rec.event, msg = rec.msg .. tail, fields = fields }
    end
    self.emit(s.last .. tail, rec)
end

--- Print level, msg now, or count it as a repeat of a message printed less than
-- repeat_ms ago. rec (optional) travels with the line to emit(line, rec): the structured
-- form of the same message (see M.logger).
function Limiter:log(level, msg, rec)
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
        self.emit(line, rec)
        local other = "(messages of other kinds)"
        self.seen[k] = { since = self.now(), count = 0, last = overflow and other or line,
                         rec = rec and (overflow and { level = rec.level, event = "repeats",
                                                       msg = other } or rec) }
        self.n = self.n + 1
    else
        s.count = s.count + 1
        if not overflow then s.last, s.rec = line, rec end
    end
end

--- Print the summaries of windows that have closed (every window with force): a message
-- that was repeated starts a new window, so its repeats go on being counted; one that was
-- not is forgotten, and prints at once when it comes again.
function Limiter:flush(force)
    local now = self.now()
    for k, s in each(self.seen) do
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

-- ---------------------------------------------------------------------------------------
-- Structured lines.

--- Level names and their numbers (the numbers of the node's "log" event: 0 info, 1 warn,
-- 2 error; debug is below).
M.LEVELS = { debug = -1, info = 0, warn = 1, error = 2 }
M.LEVEL_NAMES = { [-1] = "debug", [0] = "info", [1] = "warn", [2] = "error" }
--- The formats of a logger.
M.FORMATS = { text = true, json = true }

local function level_name(level)
    return M.LEVEL_NAMES[level] or (level and level > 2 and "error" or "debug")
end

-- The wall clock in ms (the time of a line; the limiter's windows use the monotonic one).
local wall_ms
do
    local ok, ffi = pcall(require, "ffi")
    if ok then
        pcall(ffi.cdef, "struct helios_nodelog_timeval { long tv_sec; long tv_usec; };"
                        .. "int gettimeofday(struct helios_nodelog_timeval *, void *);")
        local tv = ffi.new("struct helios_nodelog_timeval")
        wall_ms = function()
            ffi.C.gettimeofday(tv, nil)
            return tonumber(tv.tv_sec) * 1000 + floor(tonumber(tv.tv_usec) / 1000)
        end
    else
        wall_ms = function() return os.time() * 1000 end
    end
end
M.wall_ms = wall_ms

--- ms since the epoch as RFC 3339 in UTC with milliseconds: "2026-12-01T05:40:00.123Z".
function M.timestamp(ms)
    local s = floor(ms / 1000)
    return format("%s.%03dZ", os_date("!%Y-%m-%dT%H:%M:%S", s), floor(ms - s * 1000))
end

-- JSON (RFC 8259): strings escaped (quote, backslash, every control character; bytes that
-- are not valid UTF-8 become U+FFFD, so a line is always valid JSON); numbers that are
-- integers as integers, other finite ones with 17 digits, NaN and infinities as null;
-- a table with keys 1..n only (or none) as an array, others as an object with sorted
-- string keys.
local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
              ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function utf8_clean(s)
    if not s:find("[\128-\255]") then return s end
    local out, i, n = {}, 1, #s
    while i <= n do
        local c = byte(s, i)
        local len = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2
            or (c >= 0xE0 and c <= 0xEF) and 3 or (c >= 0xF0 and c <= 0xF4) and 4 or 0
        local ok = len > 0 and i + len - 1 <= n
        for j = i + 1, ok and i + len - 1 or 0 do
            local cc = byte(s, j)
            if cc < 0x80 or cc > 0xBF then ok = false end
        end
        if ok and len == 3 then
            local c2 = byte(s, i + 1)
            if (c == 0xE0 and c2 < 0xA0) or (c == 0xED and c2 > 0x9F) then ok = false end
        elseif ok and len == 4 then
            local c2 = byte(s, i + 1)
            if (c == 0xF0 and c2 < 0x90) or (c == 0xF4 and c2 > 0x8F) then ok = false end
        end
        if ok then
            out[#out + 1] = s:sub(i, i + len - 1)
            i = i + len
        else
            out[#out + 1] = "\239\191\189"
            i = i + 1
        end
    end
    return concat(out)
end

local function json_string(s)
    s = utf8_clean(s):gsub('[%c"\\]', function(c)
        return ESC[c] or format("\\u%04x", byte(c))
    end)
    return '"' .. s .. '"'
end

local function json_encode(v, out, depth)
    local t = type(v)
    if t == "string" then
        out[#out + 1] = json_string(v)
    elseif t == "number" then
        if v ~= v or v == huge or v == -huge then
            out[#out + 1] = "null"
        elseif v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
            out[#out + 1] = format("%d", v)
        else
            out[#out + 1] = format("%.17g", v)
        end
    elseif t == "boolean" then
        out[#out + 1] = tostring(v)
    elseif t == "table" and depth < 16 then
        local n, keys = #v, {}
        for k in each(v) do keys[#keys + 1] = k end
        if #keys == n then -- (an empty table: an empty list, as fields hold lists)
            out[#out + 1] = "["
            for i = 1, n do
                if i > 1 then out[#out + 1] = "," end
                json_encode(v[i], out, depth + 1)
            end
            out[#out + 1] = "]"
        else
            for i, k in ipairs(keys) do keys[i] = tostring(k) end
            sort(keys)
            out[#out + 1] = "{"
            for i, k in ipairs(keys) do
                if i > 1 then out[#out + 1] = "," end
                out[#out + 1] = json_string(k)
                out[#out + 1] = ":"
                local x = v[k]
                if x == nil then x = v[tonumber(k)] end
                json_encode(x, out, depth + 1)
            end
            out[#out + 1] = "}"
        end
    elseif t == "nil" then
        out[#out + 1] = "null"
    else
        out[#out + 1] = json_string(tostring(v))
    end
end

--- v as JSON text (see above).
function M.json(v)
    local out = {}
    json_encode(v, out, 0)
    return concat(out)
end

-- The keys every line has; an event's fields with these names are renamed field_<name>.
local RESERVED = { time = true, level = true, node = true, term = true, role = true,
                   event = true, msg = true }

--- A record as one JSON line (no newline): time, level, node, term, role, event, msg and
-- the fields, all at the top level of one object.
function M.format_json(rec)
    local obj = {}
    for k, v in each(rec.fields or {}) do
        obj[RESERVED[k] and "field_" .. k or k] = v
    end
    obj.time, obj.level, obj.node = M.timestamp(rec.time_ms), level_name(rec.level), rec.node
    obj.term, obj.role, obj.event, obj.msg = rec.term or 0, rec.role or "-", rec.event,
        rec.msg
    -- The fixed keys first, in this order, then the fields sorted: easier to read.
    local out = {}
    for _, k in ipairs({ "time", "level", "node", "term", "role", "event", "msg" }) do
        out[#out + 1] = json_string(k) .. ":" .. M.json(obj[k])
        obj[k] = nil
    end
    local rest = M.json(obj)
    if rest ~= "{}" and rest ~= "[]" then
        out[#out + 1] = rest:sub(2, -2)
    end
    return "{" .. concat(out, ",") .. "}"
end

-- A value of a text line: bare when it is a simple word, else quoted as JSON quotes.
local function text_value(v)
    if type(v) == "table" then
        local parts = {}
        for i = 1, #v do parts[i] = tostring(v[i]) end
        v = concat(parts, ",")
    end
    v = tostring(v)
    if v ~= "" and not v:find('[%s%c"=\\]') then return v end
    return json_string(v)
end

-- One line: control characters of a message (a traceback's newlines) as escapes.
local function one_line(s)
    return (s:gsub("%c", function(c) return ESC[c] or format("\\x%02x", byte(c)) end))
end

--- A record as one text line (no newline), for people:
--   2026-12-01T05:40:00.123Z INFO  node-1 term=3 leader role_change: follower -> leader ...
--   ... key=value key="a value"
function M.format_text(rec)
    local keys = {}
    for k in each(rec.fields or {}) do keys[#keys + 1] = tostring(k) end
    sort(keys)
    local parts = { format("%s %-5s %s term=%s %s %s: %s", M.timestamp(rec.time_ms),
        level_name(rec.level):upper(), tostring(rec.node), tostring(rec.term or 0),
        tostring(rec.role or "-"), tostring(rec.event), one_line(tostring(rec.msg))) }
    for _, k in ipairs(keys) do
        parts[#parts + 1] = format("%s=%s", k, text_value(rec.fields[k]))
    end
    return concat(parts, " ")
end

-- ---------------------------------------------------------------------------------------
-- What the node's free-text "log" and "error" events are, as events.

-- Patterns of the messages of csrc/transport and csrc/node (their form is kept stable for
-- this: csrc/transport/handshake.c, tcp_conn.c, tcp_peer.c, csrc/node/runtime_snapshot.c).
local CLASSES = {
    { "^transport: from (.-) %(([^()]-)%): handshake refused: (.*)$", "peer_refused",
      function(p, a, r) return { peer = p, addr = a, direction = "in", reason = r } end },
    { "^transport: to (.-) %(([^()]-)%): handshake refused by the peer: (.*)$",
      "peer_refused",
      function(p, a, r) return { peer = p, addr = a, direction = "out", reason = r } end },
    { "^transport: (%S+) %(([^()]-)%) unreachable", "peer_unreachable",
      function(p, a) return { peer = p, addr = a } end },
    { "^transport: connected to (%S+) %(([^()]-)%)", "peer_connected",
      function(p, a) return { peer = p, addr = a } end, -1 },
    { "^transport: (%a+) (.-) %(([^()]-)%): accepted$", "peer_accepted",
      function(d, p, a) return { peer = p, addr = a, direction = d == "to" and "out" or "in" } end,
      -1 },
    { "^transport: (%a+) (.-) %(([^()]-)%): closed: (.*)$", "peer_closed",
      function(d, p, a, r)
          return { peer = p, addr = a, direction = d == "to" and "out" or "in", reason = r }
      end },
    { "^snapshot: sending index (%d+) %(term (%d+), (%d+) bytes%) to (%S+)$",
      "install_snapshot_started", function(i, t, b, p)
          return { index = tonumber(i), snapshot_term = tonumber(t), bytes = tonumber(b),
                   peer = p }
      end },
    { "^snapshot: sent index (%d+) %(term (%d+), (%d+) bytes%) to (%S+)$",
      "install_snapshot_sent", function(i, t, b, p)
          return { index = tonumber(i), snapshot_term = tonumber(t), bytes = tonumber(b),
                   peer = p }
      end },
    { "^snapshot: received index (%d+) %(term (%d+), (%d+) bytes%) from (%S+)$",
      "install_snapshot_received", function(i, t, b, p)
          return { index = tonumber(i), snapshot_term = tonumber(t), bytes = tonumber(b),
                   leader = p }
      end },
    { "^snapshot: ", "snapshot_error" },
    { "^membership: ", "membership" },
    { "^recovery: ", "recovery" },
    { "^transport: ", "transport" },
}

--- The event of a free-text log message: name, fields and level (the level given, or
-- the one the kind of message has: debug for routine connection notices).
function M.classify(level, msg)
    for _, c in ipairs(CLASSES) do
        local caps = { msg:match(c[1]) }
        if caps[1] ~= nil then
            local fields = c[3] and c[3](unpack(caps)) or nil
            local lvl = level
            if c[4] and level == 0 then lvl = c[4] end
            return c[2], fields, lvl
        end
    end
    if msg:find("^fsm apply at index") then return "fsm_error", nil, level end
    return "message", nil, level
end

-- ---------------------------------------------------------------------------------------
-- The logger.

local Logger = {}
Logger.__index = Logger
Logger.__name = "helios.nodelog.logger"

function Logger:__tostring()
    return format("helios.nodelog.logger(%s, %s, %s, %s)", tostring(self.node_id),
        level_name(self.min_level), self.format, self.path or "stderr")
end

--- What is wrong with logger options (level, format, file), or nil.
function M.options_problem(o)
    if o.level ~= nil and M.LEVELS[o.level] == nil then
        return format("log_level: must be \"debug\", \"info\", \"warn\" or \"error\" (got %s)",
            require("helios.node").describe_value(o.level))
    end
    if o.format ~= nil and not M.FORMATS[o.format] then
        return format("log_format: must be \"text\" or \"json\" (got %s)",
            require("helios.node").describe_value(o.format))
    end
    if o.file ~= nil and (type(o.file) ~= "string" or o.file == "") then
        return format("log_file: must be a path (got %s)",
            require("helios.node").describe_value(o.file))
    end
    return nil
end

--- A logger. opts: node_id, level ("info"), format ("text"), file (a path, appended to;
-- default: write to stream), stream (default io.stderr), write (function(line): instead
-- of a file or stream, for tests), state (function() -> term, role: what each line says),
-- repeat_ms, now (monotonic ms, for the repeat windows), wall (ms since the epoch).
-- @return the logger, or nil and a message (a bad option, a file that cannot be opened)
function M.logger(opts)
    opts = opts or {}
    local problem = M.options_problem(opts)
    if problem then return nil, problem end
    local self = setmetatable({
        node_id = opts.node_id or "-", min_level = M.LEVELS[opts.level or "info"],
        format = opts.format or "text", path = opts.file, stream = opts.stream or io.stderr,
        write_fn = opts.write, state = opts.state, wall = opts.wall or wall_ms,
    }, Logger)
    self.limiter = M.limiter{ repeat_ms = opts.repeat_ms, now = opts.now,
        emit = function(_, rec) self:_write(rec) end }
    if self.path then
        local ok, err = self:reopen()
        if not ok then return nil, err end
    end
    return self
end

--- Open the file again at its path (after logrotate moved it away): later lines go to
-- the new file. Returns true, or nil and why (the old file is kept then).
function Logger:reopen()
    if not self.path then return true end
    local f, err = io_open(self.path, "a")
    if not f then return nil, format("log_file: %s", tostring(err)) end
    f:setvbuf("line")
    if self.file then self.file:close() end
    self.file = f
    return true
end

function Logger:_write(rec)
    rec.time_ms = rec.time_ms or self.wall()
    rec.node = rec.node or self.node_id
    if rec.term == nil and self.state then
        rec.term, rec.role = self.state()
    end
    local line = self.format == "json" and M.format_json(rec) or M.format_text(rec)
    if self.write_fn then
        self.write_fn(line)
    else
        local out = self.file or self.stream
        out:write(line, "\n")
        if out ~= self.file then out:flush() end
    end
end

--- Whether a line of this level would be written.
function Logger:enabled(level)
    return level >= self.min_level
end

--- Log an event: level (a number of M.LEVELS or a name), name, message, fields (a table
-- of strings, numbers, booleans, lists). Below the logger's level: dropped. Repeats of the
-- same message go through the limiter (first at once, then a summary per window).
function Logger:log(level, event, msg, fields)
    if type(level) == "string" then level = M.LEVELS[level] or 2 end
    if level < self.min_level then return end
    msg = tostring(msg)
    local rec = { level = level, event = event, msg = msg, fields = fields }
    -- The term and role of the time of the event, not of its summary's.
    if self.state then rec.term, rec.role = self.state() end
    self.limiter:log(level, event .. "\0" .. msg, rec)
end

--- Write an event now, past the limiter (summaries, lifecycle lines).
function Logger:write(level, event, msg, fields)
    if type(level) == "string" then level = M.LEVELS[level] or 2 end
    if level < self.min_level then return end
    self:_write({ level = level, event = event, msg = tostring(msg), fields = fields })
end

--- Print the repeat summaries that are due.
function Logger:flush() self.limiter:flush() end

--- Print every pending summary and close the file.
function Logger:close()
    self.limiter:close()
    if self.file then
        self.file:close()
        self.file = nil
    end
end

-- ---------------------------------------------------------------------------------------
-- A node's events as lines.

local COMMIT_LOG_MS = 1000

--- Log node's events with logger (see the module comment); returns an observer with
-- flush() (call it every second or so: summaries, commits due) and close(). opts: ignore
-- (error codes the caller reports itself: still logged, at the level given), commit_ms
-- (commits are summarized at most once per this many ms; default 1000), now (monotonic
-- ms).
function M.observe(node, logger, opts)
    opts = opts or {}
    local now = opts.now or require("helios.core").clock_ms
    local commit_ms = opts.commit_ms or COMMIT_LOG_MS
    local cur = { role = nil, term = 0, leader = nil }
    if not logger.state then
        logger.state = function() return cur.term, cur.role or "-" end
    end
    local obs = { logger = logger }
    -- Commits: a range per commit_ms; a lone commit in a quiet cluster shows at once.
    local first, last, last_term, logged_at = nil, nil, nil, -math.huge
    function obs.flush_commits()
        if first then
            local n = last - first + 1
            local msg = n == 1 and format("committed #%d (term %d)", first, last_term)
                or format("committed #%d..#%d (%d entries, term %d)", first, last, n, last_term)
            logger:write(0, "commits", msg, { first = first, last = last, entries = n })
            first = nil
            logged_at = now()
        end
    end
    node:on("state", function(role, term)
        local was_role, was_term = cur.role, cur.term
        cur.role, cur.term = role, term
        if was_term ~= term then
            logger:write(0, "term_change", format("term %d -> %d", was_term, term),
                { from = was_term, to = term })
        end
        if was_role ~= role then
            logger:write(0, "role_change", format("%s -> %s in term %d", was_role or "none",
                role, term), { from = was_role or "none", to = role })
        end
    end)
    node:on("leader", function(leader, term)
        local was = cur.leader
        cur.leader = leader
        if leader then
            logger:write(0, "leader_change", format("leader is %s (term %d)", leader, term),
                { leader = leader, previous = was })
        else
            logger:write(1, "leader_change", format("no leader known (term %d; was %s)", term,
                tostring(was)), { previous = was })
        end
    end)
    node:on("apply", function(index, term)
        first = first or index
        last, last_term = index, term
        if now() - logged_at >= commit_ms then obs.flush_commits() end
    end)
    node:on("log", function(level, msg, event, fields)
        msg = tostring(msg)
        local lvl = level
        if event == nil then event, fields, lvl = M.classify(level, msg) end
        logger:log(lvl, event, msg, fields)
    end)
    local ignore = opts.ignore or {}
    node:on("error", function(code, msg)
        obs.flush_commits()
        if code and ignore[code] then
            return
        elseif code == "fsm_error" then
            logger:log(2, "fsm_error", tostring(msg), { code = code })
        elseif code then
            logger:log(2, "storage_error", tostring(msg), { code = code })
        else
            logger:log(0, "storage_recovered", tostring(msg))
        end
    end)
    function obs.flush()
        if first and now() - logged_at >= commit_ms then obs.flush_commits() end
        logger:flush()
    end
    function obs.close()
        obs.flush_commits()
        logger:close()
    end
    return obs
end

return M
