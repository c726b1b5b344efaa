--- helios.testing.linearize: is a history of register operations linearizable?
--
--   local lin = require("helios.testing.linearize")
--   local history = assert(lin.load("history.jsonl"))   -- one JSON record a line
--   local r = lin.check(history)                          -- or lin.check(history, opts)
--   if not r.valid then
--       print(lin.describe(r))                            -- the ops the search was stuck on
--       lin.render_html(r, "timeline.html")               -- a picture of the history there
--   end
--
-- A record (docs/testing.md, "History files", is the reference):
--   { "process": 3, "type": "invoke", "f": "cas", "key": "k1", "value": [1, 2], "time": 1.5 }
-- type "invoke", then one of "ok", "fail" (did not take effect), "info" (unknown outcome)
-- for the same process; f "read" | "write" | "cas"; value: read: what it returned (on the
-- completion, null when the key is unset); write: the value; cas: [expected, new]. time:
-- any monotonic clock shared by all processes (one unit for the whole file).
--
-- The search is C (csrc/testkit/linearize.c, through helios.testkit's linearize_check),
-- one key at a time: keys are independent registers.

local tk = require("helios.testkit")

local format, concat, sort = string.format, table.concat, table.sort
local byte, sub, char, find = string.byte, string.sub, string.char, string.find
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local type, tostring, tonumber, each, ipairs, error, next = type, tostring, tonumber, pairs,
    ipairs, error, next
local floor, huge, max, min = math.floor, math.huge, math.max, math.min

local M = {}

---------------------------------------------------------------------------------------------
-- JSON, just what a record needs: objects, arrays, strings, numbers, true, false, null.

local function json_error(s, i, what)
    error(format("JSON: %s at column %d", what, i), 0)
end

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
              r = "\r", t = "\t" }

local function utf8(cp)
    if cp < 0x80 then return char(cp) end
    if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local parse_value

local function skip(s, i)
    local c = byte(s, i)
    if c ~= 32 and c ~= 9 and c ~= 13 and c ~= 10 then return i end
    return find(s, "[^ \t\r\n]", i) or #s + 1
end

local function parse_string(s, i)
    local k = find(s, '["\\]', i + 1)
    if k and byte(s, k) == 34 then return sub(s, i + 1, k - 1), k + 1 end -- no escapes
    local out, j = {}, i + 1
    while true do
        k = find(s, '["\\]', j)
        if not k then json_error(s, i, "unterminated string") end
        out[#out + 1] = sub(s, j, k - 1)
        if byte(s, k) == 34 then return concat(out), k + 1 end
        local e = sub(s, k + 1, k + 1)
        if e == "u" then
            local cp = tonumber(sub(s, k + 2, k + 5), 16)
            if not cp then json_error(s, k, "bad \\u escape") end
            out[#out + 1] = utf8(cp)
            j = k + 6
        elseif ESC[e] then
            out[#out + 1] = ESC[e]
            j = k + 2
        else
            json_error(s, k, "bad escape")
        end
    end
end

-- Bytes: { [ " , : } ] t f n
local LBRACE, LBRACKET, QUOTE, COMMA, COLON, RBRACE, RBRACKET = 123, 91, 34, 44, 58, 125, 93

function parse_value(s, i)
    i = skip(s, i)
    local c = byte(s, i)
    if c == LBRACE then
        local t = {}
        i = skip(s, i + 1)
        if byte(s, i) == RBRACE then return t, i + 1 end
        while true do
            if byte(s, i) ~= QUOTE then json_error(s, i, "expected a key") end
            local k
            k, i = parse_string(s, i)
            i = skip(s, i)
            if byte(s, i) ~= COLON then json_error(s, i, "expected ':'") end
            t[k], i = parse_value(s, i + 1)
            i = skip(s, i)
            c = byte(s, i)
            if c == RBRACE then return t, i + 1 end
            if c ~= COMMA then json_error(s, i, "expected ',' or '}'") end
            i = skip(s, i + 1)
        end
    elseif c == LBRACKET then
        -- null elements stay holes: n keeps the length ([null, 1] is a cas from unset).
        local t, n = {}, 0
        i = skip(s, i + 1)
        if byte(s, i) == RBRACKET then return t, i + 1 end
        while true do
            n = n + 1
            t[n], i = parse_value(s, i)
            i = skip(s, i)
            c = byte(s, i)
            if c == RBRACKET then t.n = n return t, i + 1 end
            if c ~= COMMA then json_error(s, i, "expected ',' or ']'") end
            i = i + 1
        end
    elseif c == QUOTE then
        return parse_string(s, i)
    elseif sub(s, i, i + 3) == "true" then
        return true, i + 4
    elseif sub(s, i, i + 4) == "false" then
        return false, i + 5
    elseif sub(s, i, i + 3) == "null" then
        return nil, i + 4
    end
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    local v = num and tonumber(num)
    if not v then json_error(s, i, "unexpected character") end
    return v, i + #num
end

--- Decode one JSON text (a history line). Raises "JSON: ... at column N" on bad input.
function M.decode(line)
    local v, i = parse_value(line, 1)
    if skip(line, i) <= #line then json_error(line, i, "trailing characters") end
    return v
end

local function encode_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        if c == '"' then return '\\"' end
        if c == "\\" then return "\\\\" end
        return format("\\u%04x", byte(c))
    end) .. '"'
end

-- A record's fields first, in this order; other keys after them, sorted.
local RECORD_KEYS = { "process", "type", "f", "key", "value", "time" }
local RECORD_KEY, RECORD_JSON = {}, {}
for _, k in ipairs(RECORD_KEYS) do RECORD_KEY[k] = true RECORD_JSON[k] = '"' .. k .. '":' end

local function encode(v)
    local t = type(v)
    if v == nil then return "null" end
    if t == "boolean" then return tostring(v) end
    if t == "number" then
        if v ~= v or v == huge or v == -huge then error("JSON: cannot encode " .. v, 0) end
        if v == floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
        return format("%.17g", v)
    end
    if t == "string" then return encode_string(v) end
    if t == "table" then
        local n = v.n or #v
        if n > 0 or next(v) == nil then
            local out = {}
            for i = 1, n do out[i] = encode(v[i]) end
            return "[" .. concat(out, ",") .. "]"
        end
        local keys, out = nil, {}
        for k in each(v) do
            if not RECORD_KEY[k] then keys = keys or {} keys[#keys + 1] = k end
        end
        for _, k in ipairs(RECORD_KEYS) do
            if v[k] ~= nil then out[#out + 1] = RECORD_JSON[k] .. encode(v[k]) end
        end
        if keys then
            sort(keys)
            for _, k in ipairs(keys) do
                out[#out + 1] = encode_string(k) .. ":" .. encode(v[k])
            end
        end
        return "{" .. concat(out, ",") .. "}"
    end
    error("JSON: cannot encode a " .. t, 0)
end

--- One record as a JSON line (no newline): process, type, f, key, value, time, then any
-- other keys sorted. What a workload writes.
-- @usage f:write(lin.encode{ process = 1, type = "invoke", f = "write", key = "k",
--                            value = 3, time = clock() }, "\n")
function M.encode(record)
    return encode(record)
end

---------------------------------------------------------------------------------------------
-- History files and pairing.

local TYPES = { invoke = true, ok = true, fail = true, info = true }
local FS = { read = true, write = true, cas = true }

local function check_record(r)
    if type(r) ~= "table" then return "not an object" end
    if r.process == nil then return "no process" end
    if not TYPES[r.type] then return "type must be invoke, ok, fail or info" end
    if not FS[r.f] then return "f must be read, write or cas" end
    if r.key == nil then return "no key" end
    if type(r.time) ~= "number" or r.time ~= r.time then return "time must be a number" end
    if r.f == "cas" and r.type == "invoke" and (type(r.value) ~= "table"
            or (r.value.n or 2) ~= 2) then
        return "a cas's value must be [expected, new]"
    end
    return nil
end

--- Read a history file: one JSON record a line (blank lines skipped).
-- @treturn table|nil the records in file order, or nil, "invalid", "FILE:LINE: why"
-- (or nil, "io", message when the file cannot be read)
function M.load(path)
    local f, err = io.open(path, "r")
    if not f then return nil, "io", err end
    local out, n = {}, 0
    for line in f:lines() do
        n = n + 1
        if find(line, "%S") then
            local ok, r = pcall(M.decode, line)
            local why = ok and check_record(r) or (not ok and r)
            if why then
                f:close()
                return nil, "invalid", format("%s:%d: %s", path, n, why)
            end
            r.line = n
            out[#out + 1] = r
        end
    end
    f:close()
    return out
end

--- Pair each invocation with its process's next completion.
-- @tparam table history records (as M.load returns, or built in memory)
-- @treturn table ops in invocation order: { index, process, f, key, value, type = "ok" |
-- "fail" | "info", call, ret (nil for info) }; value as the record has it (a read's is the
-- value it returned); the list has paired = true (M.check takes it as is). An invocation
-- never completed counts as info. Raises on a
-- completion without an invocation, or an invocation while its process has one pending.
function M.pair(history)
    local ops, pending = {}, {}
    for i, r in ipairs(history) do
        local why = check_record(r)
        if why then error(format("linearize.pair: record %d: %s", i, why), 2) end
        local p = r.process
        if r.type == "invoke" then
            if pending[p] then
                error(format("linearize.pair: record %d: process %s invokes while its op of "
                             .. "record %d is pending (after an info, go on as a new process "
                             .. "or as the same: the op stays open)", i, tostring(p),
                             pending[p].record), 2)
            end
            local op = { index = #ops + 1, process = p, f = r.f, key = r.key,
                         value = r.f ~= "read" and r.value or nil, call = r.time,
                         type = "info", record = r.line or i }
            ops[#ops + 1] = op
            pending[p] = op
        else
            local op = pending[p]
            if not op then
                error(format("linearize.pair: record %d: %s of process %s without an "
                             .. "invocation", i, r.type, tostring(p)), 2)
            end
            if op.f ~= r.f or op.key ~= r.key then
                error(format("linearize.pair: record %d: completes %s %s but process %s "
                             .. "invoked %s %s", i, r.f, tostring(r.key), tostring(p),
                             op.f, tostring(op.key)), 2)
            end
            pending[p] = nil
            op.type = r.type
            if r.type ~= "info" then
                if r.time < op.call then
                    error(format("linearize.pair: record %d: completes before its "
                                 .. "invocation", i), 2)
                end
                op.ret = r.time
                if op.f == "read" then op.value = r.value end
            end
        end
    end
    ops.paired = true
    return ops
end

---------------------------------------------------------------------------------------------
-- Checking.

local function value_key(v)
    if v == nil then return "nil" end
    return type(v) .. ":" .. tostring(v)
end

local function show(v)
    if v == nil then return "nil" end
    if type(v) == "string" then return format("%q", v) end
    return tostring(v)
end

--- A short text for an op: "cas 1->2", "read 3", "write 4".
function M.label(op)
    if op.f == "cas" then
        local v = op.value or {}
        return format("cas %s->%s", show(v[1]), show(v[2]))
    end
    if op.f == "read" and op.type ~= "ok" then return "read ?" end
    return op.f .. " " .. show(op.value)
end

local function op_line(op)
    return format("%-24s process %-6s %-5s invoked %s, %s", M.label(op), tostring(op.process),
                  op.type, tostring(op.call),
                  op.ret and ("completed " .. tostring(op.ret)) or "never completed")
end

-- One key's ops -> the checker's result for it.
local function check_key(key, kops, opts)
    local ids, vals = {}, {}
    local nextid = 0
    local function intern(v)
        local k = value_key(v)
        local id = ids[k]
        if not id then
            nextid = nextid + 1
            id = nextid
            ids[k] = id
            vals[id] = v
        end
        return id
    end
    ids["nil"] = 0
    local init = intern(opts.init)
    local cops, map = {}, {}
    for _, op in ipairs(kops) do
        if op.type ~= "fail" then
            local c = { f = op.f, call = op.call, ret = op.ret, info = op.type == "info" }
            if op.f == "cas" then
                c.a, c.b = intern(op.value[1]), intern(op.value[2])
            else
                c.a = intern(op.value)
            end
            cops[#cops + 1] = c
            map[#cops] = op
        end
    end
    local r, code = tk.linearize_check(cops, { init = init, max_steps = opts.max_steps,
                                               max_states = opts.max_states })
    if not r then error("linearize.check: " .. code, 3) end
    local res = { key = key, verdict = r.verdict, ops = #kops, checked = #cops,
                  steps = r.steps, states = r.states, dropped = r.dropped,
                  bounded = r.bounded, why = r.why }
    if r.stuck then
        local f = { key = key, op = map[r.stuck], value = vals[r.value], pending = {},
                    last = {} }
        local seen, window = {}, {}
        local function add(op)
            if not seen[op] then seen[op] = true window[#window + 1] = op end
        end
        for i, pos in ipairs(r.pending) do f.pending[i] = map[pos] add(map[pos]) end
        for i, pos in ipairs(r.last) do f.last[i] = map[pos] add(map[pos]) end
        sort(window, function(a, b) return a.call < b.call or (a.call == b.call
                                                               and a.index < b.index) end)
        f.window = window
        if r.verdict == "fail" then res.failure = f else res.furthest = f end
    end
    return res
end

--- Check a history: per key, is there an order of its operations, each placed between its
-- invocation and its completion (an info op anywhere after its invocation, or nowhere),
-- that a register starting at opts.init (nil) accepts?
-- @tparam table history records (M.load) or ops (M.pair's, with ops.paired = true)
-- @tparam[opt] table opts { init = value, max_steps = N, max_states = N } (limits per key,
-- linearize.h's defaults), keys = { ... } (only those)
-- @treturn table { valid = bool, verdict = "ok" | "fail" | "unknown", keys = { [key] =
-- { verdict, ops, checked, steps, states, dropped, bounded, why, failure, furthest } },
-- failure = the first failing key's (sorted by key), furthest = on "unknown", the first
-- key's that gave up (the same shape: where the search had got to), ops = the paired ops,
-- counts = { ok, fail, info } }.
-- A failure: { key, op = the op the search could not place, value = the register's value on
-- the path that went furthest, pending = the ops it could have placed there, last = the
-- last ops placed on that path (up to 4 writes or cas and 4 reads), window = all of them by
-- invocation }.
function M.check(history, opts)
    opts = opts or {}
    local ops = history.paired and history or M.pair(history)
    local bykey, keys, counts = {}, {}, { ok = 0, fail = 0, info = 0 }
    for _, op in ipairs(ops) do
        counts[op.type] = counts[op.type] + 1
        local k = op.key
        if not bykey[k] then bykey[k] = {} keys[#keys + 1] = k end
        bykey[k][#bykey[k] + 1] = op
    end
    sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local result = { valid = true, verdict = "ok", keys = {}, ops = ops, counts = counts }
    local only
    if opts.keys then
        only = {}
        for _, k in ipairs(opts.keys) do only[k] = true end
    end
    for _, k in ipairs(keys) do
        if not only or only[k] then
            local r = check_key(k, bykey[k], opts)
            result.keys[k] = r
            if r.verdict == "fail" then
                result.verdict = "fail"
                result.failure = result.failure or r.failure
            elseif r.verdict == "unknown" and result.verdict == "ok" then
                result.verdict = "unknown"
                result.furthest = result.furthest or r.furthest
            end
        end
    end
    result.valid = result.verdict == "ok"
    return result
end

--- A human summary of a result: the verdict per key and, for a failure, its window.
function M.describe(result)
    local out = { format("linearizable: %s (%d ok, %d fail, %d info)", result.verdict,
                         result.counts.ok, result.counts.fail, result.counts.info) }
    local keys = {}
    for k in each(result.keys) do keys[#keys + 1] = k end
    sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
        local r = result.keys[k]
        out[#out + 1] = format("  key %s: %s, %d ops, %d steps, %d states%s", show(k),
                               r.verdict, r.ops, r.steps, r.states,
                               r.why and (" (gave up: " .. r.why .. ")") or "")
    end
    local f = result.failure or (result.verdict ~= "fail" and result.furthest)
    if f then
        out[#out + 1] = format("key %s: %s %s of process %s (invoked %s, %s): on the path "
                               .. "that got furthest the register held %s.", show(f.key),
                               result.failure and "no order places"
                                   or "gave up; the search had got no further than",
                               M.label(f.op), tostring(f.op.process), tostring(f.op.call),
                               f.op.ret and "completed " .. tostring(f.op.ret)
                                   or "outcome unknown", show(f.value))
        out[#out + 1] = "the last ops placed on that path (up to 4 writes or cas, 4 reads), oldest first:"
        for _, op in ipairs(f.last) do out[#out + 1] = "  " .. op_line(op) end
        out[#out + 1] = "the ops that could not be ordered (invoked before it completed):"
        for _, op in ipairs(f.pending) do out[#out + 1] = "  " .. op_line(op) end
    end
    return concat(out, "\n")
end

---------------------------------------------------------------------------------------------
-- The timeline picture.

local function esc(s)
    return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                         ['"'] = "&quot;" }))
end

--- An HTML page (one file, inline SVG, no script) showing the failing key's history
-- around the failure: one lane per process, a bar per op from invocation to completion
-- (an info op fades out to the right edge), the window's ops outlined in red, the op that
-- could not be placed filled red. Hovering a bar shows the op.
-- @tparam table result M.check's with a failure (or, verdict "unknown", a furthest point)
-- @tparam[opt] string path write the page there too
-- @tparam[opt] table opts { margin = fraction of the window's span shown either side (1),
-- width = pixels (1200) }
-- @treturn string the page
function M.render_html(result, path, opts)
    opts = opts or {}
    local f = result.failure or result.furthest
    if not f then error("Usage: linearize.render_html(result[, path[, opts]]): no failure", 2) end
    local title = format("%s: key %s", result.failure and "Not linearizable"
                         or "Gave up (linearizability unknown)", show(f.key))
    local t0, t1 = huge, -huge
    for _, op in ipairs(f.window) do
        t0 = min(t0, op.call)
        t1 = max(t1, op.ret or op.call)
    end
    local span = max(t1 - t0, 1e-9)
    local margin = span * (opts.margin or 1)
    local lo, hi = t0 - margin, t1 + margin
    local inwin = {}
    for _, op in ipairs(f.window) do inwin[op] = true end
    local shown, lanes, lane_of = {}, {}, {}
    for _, op in ipairs(result.ops) do
        if op.key == f.key and op.call <= hi and (op.ret or huge) >= lo then
            shown[#shown + 1] = op
            if not lane_of[op.process] then
                lanes[#lanes + 1] = op.process
                lane_of[op.process] = true
            end
        end
    end
    sort(lanes, function(a, b)
        if type(a) == type(b) and type(a) == "number" then return a < b end
        return tostring(a) < tostring(b)
    end)
    for i, p in ipairs(lanes) do lane_of[p] = i end
    local W, left, lane_h = opts.width or 1200, 110, 34
    local H = 40 + #lanes * lane_h + 30
    local function x(t) return left + (min(max(t, lo), hi) - lo) / (hi - lo) * (W - left - 20) end
    local svg = { format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
                         .. 'font-family="monospace" font-size="11">', W, H),
                  '<defs><linearGradient id="fade"><stop offset="0" stop-color="#f0a030"/>'
                  .. '<stop offset="1" stop-color="#f0a030" stop-opacity="0"/>'
                  .. '</linearGradient></defs>' }
    for i, p in ipairs(lanes) do
        local y = 30 + (i - 1) * lane_h
        svg[#svg + 1] = format('<text x="4" y="%d">process %s</text>', y + 20, esc(p))
        svg[#svg + 1] = format('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ddd"/>', left,
                               y + lane_h - 2, W - 20, y + lane_h - 2)
    end
    for _, op in ipairs(shown) do
        local y = 30 + (lane_of[op.process] - 1) * lane_h + 6
        local x0 = x(op.call)
        local x1 = op.ret and x(op.ret) or (W - 20)
        local fill = op.type == "ok" and "#6fa8dc" or op.type == "fail" and "#ccc"
            or "url(#fade)"
        if op == f.op then fill = "#e06666" end
        local stroke = inwin[op] and ' stroke="#c00" stroke-width="2"' or ' stroke="#555"'
        svg[#svg + 1] = format('<g><title>%s</title><rect x="%.1f" y="%d" width="%.1f" '
                               .. 'height="20" rx="3" fill="%s"%s/><text x="%.1f" y="%d">%s'
                               .. '</text></g>', esc(op_line(op)), x0, y, max(x1 - x0, 2),
                               fill, stroke, x0 + 3, y + 14, esc(M.label(op)))
    end
    svg[#svg + 1] = format('<text x="%d" y="%d">time %s</text><text x="%d" y="%d" '
                           .. 'text-anchor="end">%s</text>', left, H - 8, esc(lo), W - 20,
                           H - 8, esc(hi))
    svg[#svg + 1] = "</svg>"
    local text = M.describe(result)
    local page = concat({
        "<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
        format("<title>%s</title>", esc(title)),
        "<style>body{font-family:sans-serif;margin:16px} pre{background:#f6f6f6;padding:8px}"
        .. "</style></head><body>",
        format("<h2>%s</h2>", esc(title)),
        "<p>One lane per process; a bar from an op's invocation to its completion. Blue: ok, "
        .. "grey: failed (no effect), fading orange: unknown outcome (info). Red outline: "
        .. "the ops that cannot be ordered; filled red: the op no order could place. "
        .. "Hover a bar for its times.</p>",
        concat(svg, "\n"),
        "<pre>" .. esc(text) .. "</pre>",
        "</body></html>", "" }, "\n")
    if path then
        local out = assert(io.open(path, "w"))
        out:write(page)
        out:close()
    end
    return page
end

return M
