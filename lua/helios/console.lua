--- helios.console: the node side of the interactive console (docs/console.md).
--
--   local console = require("helios.console")
--   console.render(1, "a", { b = { 1, 2 } })   -- '1\n"a"\n{ b = { 1, 2 } }'
--   local env = console.env(node)              -- a session: helpers, then _G
--   console.complete(env, "node:sta")          -- { "node:start(", "node:state(", ... }
--   console.eval(node, env, code, function(resp) ... end)   -- on the loop
--
-- The control socket (lua/helios/control.lua) serves the ops "eval", "complete" and
-- "cancel" with it: one session (environment) per connection, so what a console assigns
-- stays for its next chunks and two consoles never see each other's variables.
--
-- A chunk runs in a coroutine on the node's loop: a call that waits (node:apply, the
-- helpers set/get/del, sleep, transfer, ...) yields it and the node goes on serving. A
-- cancelled chunk that waits is abandoned: its answer ("cancelled") goes out at once and
-- it is stopped where it next runs (a count hook raises in it), its later results are
-- dropped. A chunk that keeps the CPU (a loop that never waits) blocks the loop, so no
-- request is read meanwhile: a count hook (every HOOK_COUNT VM instructions) looks at the
-- connection without reading it (conn:peek(), csrc/lua/control.c) for a "cancel" request,
-- or its close, and raises in the chunk. The chunk's own functions run with the JIT off
-- (LuaJIT does not call hooks in compiled code); a compiled library loop or a C call that
-- never returns cannot be stopped that way.

local loop = require("helios.loop")

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local type, tostring, each, ipairs, select, pcall, xpcall, error = type, tostring, pairs,
    ipairs, select, pcall, xpcall, error
local setmetatable, getmetatable, rawget, next = setmetatable, getmetatable, rawget, next
local format, rep, concat, sort, floor = string.format, string.rep, table.concat, table.sort,
    math.floor
local running, co_create, co_status = coroutine.running, coroutine.create, coroutine.status
local unpack = unpack or table.unpack

local M = {}

--- VM instructions between two looks for a cancel request while a chunk runs.
M.HOOK_COUNT = 10000
--- Applied entries kept for log(n).
M.LOG_KEEP = 1000
--- A command longer than this (bytes) is kept for log(n) as a note of its size only: the
-- ring would otherwise hold the last LOG_KEEP commands whole, 100 MB of Lua heap for 1000
-- MSETs of 1000 keys (docs/benchmarks.md, "Memory").
M.LOG_CMD_BYTES = 4096
--- A rendered table shows at most this many fields; a rendering at most MAX_DEPTH deep.
M.MAX_ITEMS = 1000
M.MAX_DEPTH = 16
--- Width under which a table is rendered on one line.
M.INLINE_WIDTH = 72

-- The chunks running now: coroutine -> { cancelled, conn, id, output, on_cancel }.
local running_evals = {}

local CANCEL = setmetatable({}, { __tostring = function() return "cancelled" end })

-- ---------------------------------------------------------------------------------------
-- The pretty printer

local function quote(s)
    return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
        if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
        elseif c == "\n" then return "\\n" elseif c == "\t" then return "\\t"
        elseif c == "\r" then return "\\r" end
        local b = c:byte()
        if b >= 128 then return c end -- UTF-8 text stays readable
        return format("\\%03d", b)
    end) .. '"'
end
M.quote = quote

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
    repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local function is_name(k)
    return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[k]
end

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then
        return (TYPE_ORDER[ta] or 9) < (TYPE_ORDER[tb] or 9)
            or ((TYPE_ORDER[ta] or 9) == (TYPE_ORDER[tb] or 9) and ta < tb)
    end
    if ta == "number" or ta == "string" then return a < b end
    if ta == "boolean" then return (not a) and b end
    return tostring(a) < tostring(b)
end

local function scalar(v)
    local t = type(v)
    if t == "string" then return quote(v) end
    if t == "number" then
        if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
        return tostring(v)
    end
    return tostring(v)
end

local render_value

local function render_table(t, indent, path, depth)
    if path[t] then return "<cycle: " .. tostring(t) .. ">" end
    local mt = getmetatable(t)
    if type(mt) == "table" and rawget(mt, "__tostring") then
        local ok, s = pcall(tostring, t)
        if ok then return s end
    end
    if next(t) == nil then return "{}" end
    if depth >= M.MAX_DEPTH then return "{...}" end
    path[t] = true
    -- The sequence part in order, then the other keys sorted.
    local n = 0
    while rawget(t, n + 1) ~= nil do n = n + 1 end
    local keys = {}
    for k in each(t) do
        if not (type(k) == "number" and k >= 1 and k <= n and k == floor(k)) then
            keys[#keys + 1] = k
        end
    end
    sort(keys, key_less)
    local items, total, more = {}, 0, 0
    local inner = indent .. "  "
    local function add(text)
        if #items >= M.MAX_ITEMS then more = more + 1 return end
        items[#items + 1] = text
        total = total + #text + 2
    end
    for i = 1, n do add(render_value(rawget(t, i), inner, path, depth + 1)) end
    for _, k in ipairs(keys) do
        local ks = is_name(k) and k or "[" .. render_value(k, inner, path, depth + 1) .. "]"
        add(ks .. " = " .. render_value(rawget(t, k), inner, path, depth + 1))
    end
    path[t] = nil
    if more > 0 then items[#items + 1] = format("... (%d more)", more) end
    local multiline = false
    for _, s in ipairs(items) do
        if s:find("\n", 1, true) then multiline = true break end
    end
    if not multiline and total + #indent < M.INLINE_WIDTH then
        return "{ " .. concat(items, ", ") .. " }"
    end
    return "{\n" .. inner .. concat(items, ",\n" .. inner) .. ",\n" .. indent .. "}"
end

function render_value(v, indent, path, depth)
    if type(v) == "table" then return render_table(v, indent, path, depth) end
    return scalar(v)
end

--- The text of values as the console prints them: one line (or block) per value, tables
-- indented with sorted keys, strings quoted, a table met again inside itself as
-- <cycle: table: 0x...>. No value: "".
function M.render(...)
    local out = {}
    for i = 1, select("#", ...) do
        out[i] = render_value((select(i, ...)), "", {}, 0)
    end
    return concat(out, "\n")
end

-- ---------------------------------------------------------------------------------------
-- Completion

local function fields(v, want_fn, out, seen)
    seen = seen or {}
    local depth = 0
    while v ~= nil and depth < 8 and not seen[v] do
        depth = depth + 1
        if type(v) == "table" then
            seen[v] = true
            for k, x in each(v) do
                if is_name(k) and (not want_fn or type(x) == "function") then
                    out[k] = out[k] or type(x)
                end
            end
        end
        local mt = getmetatable(v)
        local idx = type(mt) == "table" and rawget(mt, "__index") or nil
        if type(idx) ~= "table" then break end
        v = idx
    end
    if type(v) == "string" then -- a string's methods
        for k, x in each(string) do
            if not want_fn or type(x) == "function" then out[k] = out[k] or type(x) end
        end
    end
end

--- Completions of prefix (a name, or a path "a.b.c", "obj:meth") in env: the candidates
-- that start with it, sorted, functions with "(" appended.
function M.complete(env, prefix)
    if type(prefix) ~= "string" then return {} end
    local path, word = prefix:match("^(.-)([%w_]*)$")
    local names, base, sep = {}, nil, nil
    if path == "" then
        fields(env, false, names)
        local mt = getmetatable(env)
        local helpers = mt and mt.helpers
        if helpers then fields(helpers, false, names) end
        fields(_G, false, names)
        for k in each(KEYWORDS) do names[k] = names[k] or "keyword" end
    else
        sep = path:sub(-1)
        local chain = path:sub(1, -2)
        if (sep ~= "." and sep ~= ":") or not chain:match("^[%a_][%w_]*$")
            and not chain:match("^[%a_][%w_]*[%.%w_]*[%w_]$") then
            return {}
        end
        local v = env
        for part in chain:gmatch("[^%.]+") do
            if not is_name(part) then return {} end
            local ok, x = pcall(function() return v[part] end)
            if not ok or x == nil then return {} end
            v = x
        end
        base = v
        fields(base, sep == ":", names)
    end
    local out = {}
    for k, kind in each(names) do
        if k:sub(1, #word) == word then
            out[#out + 1] = path .. k .. (kind == "function" and "(" or "")
        end
    end
    sort(out)
    return out
end

-- ---------------------------------------------------------------------------------------
-- Sessions and helpers

-- Applied entries of each node, for log(n): a ring of { index, term, cmd }.
local recorders = setmetatable({}, { __mode = "k" })

--- Start keeping the last LOG_KEEP entries node applies (control.serve does it when the
-- node starts, so log(n) sees them from there).
function M.record(node)
    if recorders[node] then return end
    -- A ring of LOG_KEEP slots in three arrays: no table per applied entry (this runs for
    -- every entry on every node that serves a console).
    local r = { n = 0, index = {}, term = {}, cmd = {} }
    recorders[node] = r
    local indexes, terms, cmds = r.index, r.term, r.cmd
    node:on("apply", function(index, term, cmd)
        local n = r.n + 1
        r.n = n
        if type(cmd) == "string" and #cmd > M.LOG_CMD_BYTES then
            cmd = format("(%d bytes, not kept: longer than %d)", #cmd, M.LOG_CMD_BYTES)
        end
        local slot = (n - 1) % M.LOG_KEEP + 1
        indexes[slot], terms[slot], cmds[slot] = index, term, cmd
    end)
end

local function decode_cmd(cmd)
    if type(cmd) ~= "string" then return cmd end
    local b = cmd:byte(1)
    -- A msgpack map or array (ATLAS commands are msgpack): show it decoded.
    if b and (b >= 0x80 and b <= 0x9f or b == 0xdc or b == 0xdd or b == 0xde or b == 0xdf) then
        local ok, v = pcall(require("helios.core").mp_decode, cmd)
        if ok and v ~= nil then return v end
    end
    return cmd
end

local function is_atlas(fsm)
    local mt = getmetatable(fsm)
    return type(mt) == "table" and rawget(mt, "__name") == "helios.atlas.fsm"
end

local function fsm_of(node)
    local b = node._backend
    return b and b._fsm
end

-- A failure of a node call, as an error the console prints: "code: detail".
local function check(v, code, detail, ...)
    M.check_cancel()
    if v == nil and (code ~= nil or detail ~= nil) then
        error(format("%s%s", tostring(code), detail and ": " .. tostring(detail) or ""), 0)
    end
    return v, code, detail, ...
end

local HELP = [[
helpers (docs/console.md):
  status()             node:status()
  peers()              leader, configuration and peers (match, caught_up)
  stats()              node:stats() counters
  metrics()            node:metrics() (when the node has it)
  log([n])             the last n entries this node applied (default 10), decoded
  set(k, v[, ttl_ms])  write a key (ATLAS store, or the kv FSM's "set k v")
  get(k)               read it (linearizable, on the leader)
  del(k)               delete it
  atlas                the ATLAS store over this node (when its FSM is an atlas.fsm())
  add_peer(id, addr[, opts])  remove_peer(id)  transfer([id])  snapshot()
  sleep(ms)            wait, the node goes on
  node, fsm            the node and its state machine
A chunk's leading `local x = ...` stays for the session; `=expr` is not needed:
an expression prints its value. Ctrl-C cancels a running chunk, Ctrl-D detaches.]]

-- The helpers of one node (shared by its sessions).
local helper_sets = setmetatable({}, { __mode = "k" })

local function helpers_for(node)
    local h = helper_sets[node]
    if h then return h end
    h = {}
    helper_sets[node] = h
    local fsm = fsm_of(node)
    h.node, h.fsm = node, fsm
    function h.status() return node:status() end
    function h.peers()
        local st = node:status()
        return { leader = st.leader, configuration = st.configuration, peers = st.peers }
    end
    function h.stats() return node:stats() end
    function h.metrics()
        if type(node.metrics) ~= "function" then
            return "metrics: this node has no node:metrics() (a build without metrics)"
        end
        return node:metrics()
    end
    function h.log(n)
        n = n or 10
        if type(n) ~= "number" or n < 0 then error("Usage: log([n])", 2) end
        local r = recorders[node]
        if not r or r.n == 0 then return {} end
        local out = {}
        local first = r.n - math.min(n, r.n, M.LOG_KEEP) + 1
        for i = first, r.n do
            local slot = (i - 1) % M.LOG_KEEP + 1
            out[#out + 1] = { index = r.index[slot], term = r.term[slot],
                              cmd = decode_cmd(r.cmd[slot]) }
        end
        return out
    end
    if is_atlas(fsm) then
        h.atlas = require("helios.atlas").new(node, { purge_interval_ms = false })
        local store = h.atlas
        function h.set(k, v, ttl) return check(store:set(k, v, ttl)) end
        function h.get(k) return (check(store:get(k))) end
        function h.del(k) return (check(store:delete(k))) end
    else
        local function kv_only()
            if type(fsm) ~= "table" or type(fsm.get) ~= "function" then
                error("set/get/del: this node's FSM is neither an atlas.fsm() nor "
                      .. "helios.fsm.kv: use node:apply(cmd) and node:read(fn)", 3)
            end
        end
        function h.set(k, v)
            kv_only()
            local _, _, result = check(node:apply(format("set %s %s", tostring(k),
                                                         tostring(v))))
            return result
        end
        function h.get(k)
            kv_only()
            return (check(node:read(function(f) return f:get(k) end)))
        end
        function h.del(k)
            kv_only()
            local _, _, result = check(node:apply("del " .. tostring(k)))
            return result
        end
    end
    function h.add_peer(id, addr, opts) return check(node:add_peer(id, addr, opts)) end
    function h.remove_peer(id, opts) return check(node:remove_peer(id, opts)) end
    function h.transfer(id) return check(node:transfer_leadership(id)) end
    function h.snapshot() return check(node:snapshot()) end
    function h.sleep(ms)
        loop.sleep(ms)
        M.check_cancel()
    end
    -- print() inside a chunk writes to the console that runs it.
    function h.print(...)
        local e = running_evals[running()]
        if not e then return print(...) end
        local parts = {}
        for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
        e.output[#e.output + 1] = concat(parts, "\t") .. "\n"
    end
    function h.help() return HELP end
    return h
end

--- A new session over node: assignments go to it; names not assigned come from the
-- helpers, then _G.
function M.env(node)
    local h = helpers_for(node)
    local env
    env = setmetatable({}, {
        helpers = h,
        __index = function(_, k)
            local v = h[k]
            if v ~= nil then return v end
            return _G[k]
        end,
    })
    return env
end

-- ---------------------------------------------------------------------------------------
-- Running chunks

local n_running = 0
--- Extra checks for a pending cancel (the REPL on `helios node`'s terminal polls its
-- Ctrl-C through one): fn() -> true to cancel every running chunk.
M.interrupt_checks = {}

local function frames_cancel(bytes, id)
    local decode = require("helios.core").mp_decode
    local off = 1
    while #bytes - off + 1 >= 8 do
        local b1, b2, b3, b4 = bytes:byte(off, off + 3)
        local len = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
        if #bytes - off + 1 < 8 + len then break end
        local ok, req = pcall(decode, bytes:sub(off + 8, off + 7 + len))
        if ok and type(req) == "table" and req.op == "cancel" and req.target == id then
            return true
        end
        off = off + 8 + len
    end
    return false
end

-- Raise only in the chunk's own code: raised inside a library function (loop.block
-- between arming a wake-up and yielding, say), it would leave a wake-up behind for a dead
-- coroutine, and resuming that fails the loop.
local function in_chunk()
    local info = debug.getinfo(3, "S")
    return info ~= nil and info.source == "=console"
end

local function hook()
    local e = running_evals[running()]
    if not e then return end
    if not e.cancelled then
        for _, check_fn in ipairs(M.interrupt_checks) do
            if check_fn() then e.cancelled = true end
        end
        if not e.cancelled and e.conn then
            local bytes, closed = e.conn:peek()
            if closed or (bytes and frames_cancel(bytes, e.id)) then e.cancelled = true end
        end
        if e.cancelled and e.on_cancel then e.on_cancel() end
    end
    if e.cancelled and in_chunk() then error(CANCEL, 0) end
end

local function hook_on()
    n_running = n_running + 1
    if n_running == 1 then debug.sethook(hook, "", M.HOOK_COUNT) end
end

local function hook_off()
    n_running = n_running - 1
    if n_running == 0 then debug.sethook() end
end

-- A leading `local a, b = ...` or `local function f` becomes a session variable.
local function session_locals(code)
    local s = code:gsub("^(%s*)local%s+function%s", "%1function ", 1)
    if s ~= code then return s end
    local lead, names, rest = code:match("^(%s*)local%s+([%a_][%w_%s,]*)(=.*)$")
    if lead and not names:find("[%a_][%w_]*%s+[%a_]") then return lead .. names .. rest end
    return code
end
M._session_locals = session_locals

local function short_traceback(msg)
    local tb = debug.traceback(msg, 3)
    -- Keep the chunk's own frames: the console's and the loop's say nothing useful.
    local out = {}
    for line in tb:gmatch("[^\n]+") do
        if line:find("%[C%]: in function 'xpcall'") then break end
        if not line:find("helios/console%.lua") then out[#out + 1] = line end
        if #out >= 12 then break end
    end
    if out[#out] == "stack traceback:" then out[#out] = nil end
    return concat(out, "\n")
end

--- Run code (chunk text) in env on the loop; done(resp) gets exactly one answer:
-- { ok = true, results = text, output = what print wrote } or { ok = false,
-- code = "syntax" | "error" | "cancelled", detail, output }. opts: conn (a control
-- connection to watch for a cancel of request id, or its close), id.
-- Returns a handle with :cancel().
function M.eval(env, code, done, opts)
    opts = opts or {}
    local fn, err = loadstring(session_locals(code), "=console")
    if not fn then
        done({ ok = false, code = "syntax", detail = err })
        return { cancel = function() end }
    end
    jit.off(fn, true)
    setfenv(fn, env)
    local e = { conn = opts.conn, id = opts.id, output = {} }
    local answered = false
    local function answer(resp)
        if answered then return end
        answered = true
        if #e.output > 0 then resp.output = concat(e.output) end
        done(resp)
    end
    e.on_cancel = function()
        answer({ ok = false, code = "cancelled", detail = "cancelled" })
    end
    local co
    local function body()
        local function pack(...) return { n = select("#", ...), ... } end
        local r = pack(xpcall(fn, function(msg)
            if msg == CANCEL then return msg end
            return short_traceback(tostring(msg))
        end))
        if e.cancelled or (r[1] == false and r[2] == CANCEL) then
            return e.on_cancel()
        end
        if not r[1] then
            return answer({ ok = false, code = "error", detail = tostring(r[2]) })
        end
        local ok, text = pcall(M.render, unpack(r, 2, r.n))
        answer({ ok = true, results = ok and text
                 or ("<cannot render: " .. tostring(text) .. ">") })
    end
    co = loop.spawn(function()
        -- A cancel raised by the hook outside the chunk's own xpcall ends here too.
        local ok, perr = pcall(body)
        running_evals[co] = nil
        hook_off()
        if not ok then
            if perr == CANCEL then e.on_cancel()
            else answer({ ok = false, code = "error", detail = tostring(perr) }) end
        end
    end)
    running_evals[co] = e
    hook_on()
    local handle = {}
    function handle.cancel()
        if answered then return end
        e.cancelled = true
        e.on_cancel()
    end
    return handle
end

--- Whether the running chunk was cancelled (helpers that waited stop there).
function M.check_cancel()
    local e = running_evals[running()]
    if e and e.cancelled then error(CANCEL, 0) end
end

return M
