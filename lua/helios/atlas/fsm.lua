--- helios.atlas.fsm: the state machine of ATLAS, the replicated key-value store
-- (docs/atlas.md). helios.atlas re-exports it as atlas.fsm().
--
-- Each write is one msgpack-encoded command table (helios.atlas.fsm.encode builds them):
--   { op = "set", k, v, ttl = ms, nx = true, xx = true }   -> true, or false (nx/xx unmet)
--   { op = "del", k1, k2, ... }                            -> how many of the keys existed
--   { op = "incr", k, by }                                 -> the new integer
--   { op = "cas", k, old, new }  (old nil: the key must be absent) -> true or false
--   { op = "expire", k, ttl }    (ttl false: persist)       -> true if the key exists
--     (with persist = true: true if the key had a TTL, which is now removed)
--   { op = "mset", kv = { k1, v1, k2, v2, ... } }          -> true (all or nothing)
--   { op = "purge", keys = { ... } }                       -> how many keys were dropped
--   { op = "register" }                                    -> a session id
--   { op = "call", name, args = { ... } }                  -> { v = fn's result }
--   { op = "modules", names = { sorted module names } }   -> true if it made the record
--                                                             (the first wins), else false
-- A write carrying s (a session id) and q (its sequence number, a positive integer; a
-- optional: results up to a are acknowledged and forgotten) is applied at most once: a
-- retry of (s, q) returns the cached first result (Raft dissertation §6.3).
-- A failure is the result { err = code, msg = detail }: "invalid" (a malformed command, a
-- value that is not an integer for incr), "session_expired", "command_error" (a user
-- command raised: its writes are undone), "unknown_command".
--
-- Time: every decision about expiry uses now = the largest entry.time_ms applied so far
-- (the leaders' stamps, monotone even when a new leader's clock is behind), never a local
-- clock, so every replica decides the same at the same index (a linearizable read uses the
-- leader's clock at its read index when that is later: see "reads" below). A key whose
-- expiry <= now is absent for every command; it is dropped from memory when a command
-- touches it or a purge entry names it (the leader proposes purges: helios.atlas).
--
-- Modules: user commands come from Lua modules every node loads (the cluster file's
-- atlas_modules). A node whose set differs from the others' would answer unknown_command
-- where they apply a write, and the replicas would part ways. So the state records the
-- set once (the first "modules" entry applied: the leader proposes FSM:modules_pending());
-- every replica compares it with its own set when it applies the record and when it
-- restores a snapshot (which carries it), and calls opts.on_modules_mismatch(msg) on a
-- difference: the node is to stop rather than apply on (helios node exits).

local core = require("helios.core")

local encode, decode = core.mp_encode, core.mp_decode
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local type, each, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local setmetatable, pcall, xpcall, error, select = setmetatable, pcall, xpcall, error, select
local setfenv, format, concat, sort = setfenv, string.format, table.concat, table.sort
local floor, ceil, huge, max = math.floor, math.ceil, math.huge, math.max
local byte = string.byte
local bit = require("bit")
local band, rshift, tobit = bit.band, bit.rshift, bit.tobit

local M = {}

--- Sessions idle longer than this (by entry time) expire, unless atlas.fsm{ session_timeout_ms }.
M.DEFAULT_SESSION_TIMEOUT_MS = 3600 * 1000
--- Results a session keeps before the oldest are forgotten (a retry of one then fails).
M.MAX_SESSION_RESULTS = 1024
--- Keys per frame of a snapshot.
M.SNAPSHOT_CHUNK_KEYS = 4096
local MAGIC = "ATLAS1\n"

-- The store is sharded: SHARDS tables of values and as many of expiries, a key's shard
-- picked by a hash of its bytes.
-- LuaJIT grows a table by rehashing all of it at once: one table of 524,288 keys stalled
-- its node 100 ms as it doubled, on every replica together (they apply the same entries):
-- longer than a heartbeat round, and under load enough for the followers to call an
-- election. A shard doubles with 1/SHARDS of the keys (the longest apply of 600,000 SETs
-- fell from 102 to 7 ms). The layout is no part of the state: snapshots list the keys
-- sorted. The last key's shard is kept: a write looks its key up, then stores it.
local SHARDS = 64
local last_key, last_shard = nil, 1
local function shard(key)
    if key == last_key then return last_shard end
    local n = #key
    local h = n
    -- (Beyond 256 bytes, 256 of them evenly spaced and the last 16: a key's cost bounded.)
    for i = 1, n, n <= 256 and 1 or ceil(n / 256) do h = tobit(h * 31 + byte(key, i)) end
    if n > 256 then
        for i = n - 15, n do h = tobit(h * 31 + byte(key, i)) end
    end
    last_key, last_shard = key, band(rshift(tobit(h * 40503), 10), SHARDS - 1) + 1
    return last_shard
end
local MAX_INT = 2 ^ 53

-- ---- user commands ------------------------------------------------------------------

local commands = {} -- name -> fn, shared by every FSM of the process (atlas.command)

-- What a user command may reach: no os, io, require, load*, debug, math.random.
local function safe_globals()
    local g = {}
    for _, name in ipairs({ "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
                            "tonumber", "tostring", "type", "unpack", "xpcall",
                            "setmetatable", "rawequal", "rawget", "rawset" }) do
        g[name] = _G[name]
    end
    -- Read-only views of copies: a command must not change what the next one sees.
    for _, lib in ipairs({ "string", "table", "math", "bit" }) do
        if _G[lib] then
            local copy = {}
            for k, v in each(_G[lib]) do copy[k] = v end
            if lib == "math" then copy.random, copy.randomseed = nil, nil end
            g[lib] = setmetatable({}, { __index = copy, __metatable = false,
                __newindex = function() error("atlas command: " .. lib .. " is read-only", 2) end })
        end
    end
    return g
end
local SAFE = safe_globals()
local SANDBOX = setmetatable({}, {
    __index = SAFE,
    __newindex = function(_, k)
        error(format("atlas command: cannot set global '%s' (commands must keep no state "
                     .. "outside the store)", tostring(k)), 2)
    end,
})

--- Register a user command: fn(store, args, entry) runs on every replica for
-- { op = "call", name, args }. Its global environment becomes the sandbox (no os, io,
-- require, math.random); upvalues are the caller's responsibility.
function M.command(name, fn)
    if type(name) ~= "string" or name == "" or type(fn) ~= "function" then
        error("Usage: atlas.command(name, fn): a non-empty name and a Lua function", 2)
    end
    if not pcall(setfenv, fn, SANDBOX) then
        error("atlas.command: fn must be a Lua function (its environment is sandboxed)", 2)
    end
    commands[name] = fn
end

--- The registered command names, sorted.
function M.command_names()
    local names = {}
    for name in each(commands) do names[#names + 1] = name end
    sort(names)
    return names
end

-- ---- the store ----------------------------------------------------------------------

local FSM = {}
FSM.__index = FSM
FSM.__name = "helios.atlas.fsm"

function FSM:__tostring()
    return format("helios.atlas.fsm(%d keys, applied #%d)", self.nkeys, self.applied)
end

-- A module set as one comparable string: the names sorted, without repeats.
local function module_set(names)
    local seen, out = {}, {}
    for _, name in ipairs(names) do
        if not seen[name] then seen[name], out[#out + 1] = true, name end
    end
    sort(out)
    return out
end

local function describe_set(names)
    if #names == 0 then return "none" end
    return concat(names, ", ")
end

--- A new, empty store. opts: session_timeout_ms (the same on every replica); modules (the
-- names of the modules of user commands this node loaded: compared with the set the log
-- records, nil = none); on_modules_mismatch (fn(msg), called when they differ).
function M.new(opts)
    opts = opts or {}
    local t = opts.session_timeout_ms or M.DEFAULT_SESSION_TIMEOUT_MS
    if type(t) ~= "number" or t <= 0 then
        error("atlas.fsm: session_timeout_ms must be a positive number", 2)
    end
    local mods = opts.modules or {}
    if type(mods) ~= "table" then
        error("atlas.fsm: modules must be a list of module names", 2)
    end
    for i = 1, #mods do
        if type(mods[i]) ~= "string" or mods[i] == "" then
            error("atlas.fsm: modules must be a list of module names", 2)
        end
    end
    local cb = opts.on_modules_mismatch
    if cb ~= nil and type(cb) ~= "function" then
        error("atlas.fsm: on_modules_mismatch must be a function", 2)
    end
    local self = setmetatable({ session_timeout_ms = t, own_modules = module_set(mods),
                                on_modules_mismatch = cb }, FSM)
    self:_reset()
    return self
end

function FSM:_reset()
    -- data[shard(key)]: key -> value; exp[shard(key)]: key -> expiry (ms), keys with a TTL
    self.data, self.exp = {}, {}
    for i = 1, SHARDS do self.data[i], self.exp[i] = {}, {} end
    -- nkeys: the keys held, expired ones not purged yet included (FSM:count() counts the
    -- live ones).
    self.nkeys, self.applied, self.now = 0, 0, 0
    self.sessions = {}                -- id -> { active, acked, results = { [seq] = bytes } }
    self.heap_e, self.heap_k = {}, {} -- min-heap of (expiry, key), lazily invalidated
    self.modules = nil                -- the module set the log recorded (sorted), or nil
    self.snap = nil                   -- a sliced snapshot's kept values (keep, below)
end

-- Compare the recorded module set with this node's; on a difference tell the owner (once
-- per FSM: the node is expected to stop).
local function check_modules(self)
    local rec = self.modules
    if rec == nil or self.modules_mismatch then return end
    if concat(rec, "\0") == concat(self.own_modules, "\0") then return end
    self.modules_mismatch = format("atlas_modules: this node loaded %s, but the cluster's "
        .. "log records %s: every node must load the same modules (the cluster file's "
        .. "atlas_modules) or their replicas would part ways", describe_set(self.own_modules),
        describe_set(rec))
    -- apply never raises: a callback that does is the owner's problem, not the state's.
    if self.on_modules_mismatch then pcall(self.on_modules_mismatch, self.modules_mismatch) end
end

-- The expiry heap: only the leader's purge proposals use it; never part of the state.
local function heap_push(self, e, k)
    local he, hk = self.heap_e, self.heap_k
    local i = #he + 1
    while i > 1 do
        local p = floor(i / 2)
        if he[p] <= e then break end
        he[i], hk[i] = he[p], hk[p]
        i = p
    end
    he[i], hk[i] = e, k
end

local function heap_pop(self)
    local he, hk = self.heap_e, self.heap_k
    local n = #he
    if n == 0 then return nil end
    local e0, k0 = he[1], hk[1]
    local e, k = he[n], hk[n]
    he[n], hk[n] = nil, nil
    n = n - 1
    if n > 0 then
        local i = 1
        while true do
            local c = 2 * i
            if c > n then break end
            if c < n and he[c + 1] < he[c] then c = c + 1 end
            if he[c] >= e then break end
            he[i], hk[i] = he[c], hk[c]
            i = c
        end
        he[i], hk[i] = e, k
    end
    return e0, k0
end

-- The value and the expiry (nil: none) held for key, expired or not (nothing for a key
-- that is not a string: reads take what a caller gives them).
local function held(self, key)
    if type(key) ~= "string" then return nil, nil end
    local i = shard(key)
    return self.data[i][key], self.exp[i][key]
end

-- Whether key is live at time now (present and not expired).
local function live(self, key, now)
    local v, e = held(self, key)
    return v ~= nil and (e == nil or e > now)
end

-- Rebuild the heap from exp: keys set again and again with a TTL leave stale entries.
local function heap_rebuild(self)
    self.heap_e, self.heap_k = {}, {}
    for i = 1, SHARDS do
        for k, e in each(self.exp[i]) do heap_push(self, e, k) end
    end
end

-- A sliced snapshot (FSM:snapshot with yield) writes the store as of its start while
-- later entries are applied: until it has taken a key's shard, the first change of the key
-- keeps its value and expiry of then (false: none) in self.snap.
local function keep(self, i, key)
    local kv = self.snap.v[i]
    if kv and kv[key] == nil then
        kv[key], self.snap.e[i][key] = self.data[i][key] or false, self.exp[i][key] or false
    end
end

local function put(self, key, value, expiry)
    local i = shard(key)
    if self.snap then keep(self, i, key) end
    local data = self.data[i]
    if data[key] == nil then self.nkeys = self.nkeys + 1 end
    data[key] = value
    self.exp[i][key] = expiry
    if expiry then
        heap_push(self, expiry, key)
        if #self.heap_e > 2 * self.nkeys + 1024 then heap_rebuild(self) end
    end
end

local function drop(self, key)
    local i = shard(key)
    if self.snap then keep(self, i, key) end
    local data = self.data[i]
    if data[key] ~= nil then
        self.nkeys = self.nkeys - 1
        data[key], self.exp[i][key] = nil, nil
    end
end

-- Drop key if it expired by now; whether it is live.
local function touch(self, key, now)
    local v, e = held(self, key)
    if v == nil then return false end
    if e ~= nil and e <= now then
        drop(self, key)
        return false
    end
    return true
end

local function fail(code, msg) return { err = code, msg = msg } end

local function is_key(k) return type(k) == "string" end
local function is_int(n)
    return type(n) == "number" and n == floor(n) and n > -MAX_INT and n < MAX_INT
end
local function check_ttl(ttl)
    return ttl == nil or ttl == false or (is_int(ttl) and ttl > 0)
end

-- ---- the writes (each validates before changing anything) ----------------------------

-- A writer: the FSM itself, or a user command's journaling view (below). Both give
-- get/set/del over the same primitives.
local ops = {}

function ops.set(self, c, now, w)
    if not is_key(c[1]) or type(c[2]) ~= "string" or not check_ttl(c.ttl) then
        return fail("invalid", "set: a string key and value, ttl a positive integer (ms)")
    end
    local exists = touch(self, c[1], now)
    if (c.nx and exists) or (c.xx and not exists) then return false end
    w(self, c[1], c[2], c.ttl and now + c.ttl or nil)
    return true
end

function ops.del(self, c, now, w)
    if #c == 0 then return fail("invalid", "del: one or more string keys") end
    for i = 1, #c do
        if not is_key(c[i]) then return fail("invalid", "del: one or more string keys") end
    end
    -- All keys in one entry: DEL k1 k2 of the RESP port is atomic (a key named twice
    -- counts once, as in Redis).
    local n = 0
    for i = 1, #c do
        if touch(self, c[i], now) then
            w(self, c[i], nil)
            n = n + 1
        end
    end
    return n
end

function ops.incr(self, c, now, w)
    local by = c[2] == nil and 1 or c[2]
    if not is_key(c[1]) or not is_int(by) then
        return fail("invalid", "incr: a string key and an integer step")
    end
    local cur = 0
    if touch(self, c[1], now) then
        local s = held(self, c[1])
        cur = s:match("^%-?%d+$") and tonumber(s)
        if not cur or not is_int(cur) then
            return fail("invalid", "incr: the value is not an integer")
        end
    end
    local v = cur + by
    if not is_int(v) then return fail("invalid", "incr: out of the integer range (2^53)") end
    -- INCR keeps the key's TTL (as Redis does).
    w(self, c[1], format("%d", v), (select(2, held(self, c[1]))))
    return v
end

function ops.cas(self, c, now, w)
    if not is_key(c[1]) or (c[2] ~= nil and type(c[2]) ~= "string")
        or type(c[3]) ~= "string" then
        return fail("invalid", "cas: a string key, expected (string or nil) and new value")
    end
    local cur = touch(self, c[1], now) and held(self, c[1]) or nil
    if cur ~= c[2] then return false end
    w(self, c[1], c[3], (select(2, held(self, c[1]))))
    return true
end

function ops.expire(self, c, now, w)
    if not is_key(c[1]) or not check_ttl(c.ttl) then
        return fail("invalid", "expire: a string key and ttl a positive integer (ms) or false")
    end
    if not touch(self, c[1], now) then return false end
    local value, expiry = held(self, c[1])
    local had_ttl = expiry ~= nil
    w(self, c[1], value, c.ttl and now + c.ttl or nil)
    -- persist (RESP's PERSIST): whether a TTL was removed, as Redis answers.
    if c.persist then return had_ttl end
    return true
end

function ops.mset(self, c, now, w)
    local kv = c.kv
    if type(kv) ~= "table" or #kv % 2 ~= 0 then
        return fail("invalid", "mset: kv = { key1, value1, ... }")
    end
    for i = 1, #kv do
        if type(kv[i]) ~= "string" then
            return fail("invalid", "mset: keys and values must be strings")
        end
    end
    for i = 1, #kv, 2 do w(self, kv[i], kv[i + 1], nil) end
    return true
end

local function direct(self, key, value, expiry)
    if value == nil then drop(self, key) else put(self, key, value, expiry) end
end

-- ---- user commands: a journaling view ------------------------------------------------

local View = {}
View.__index = View

local function view_write(v, key, value, expiry)
    local fsm = v._fsm
    if v._journal[key] == nil then
        v._journal[key] = { held(fsm, key) }
        v._order[#v._order + 1] = key
    end
    direct(fsm, key, value, expiry)
end

function View:get(key)
    if not is_key(key) then error("store:get(key): key must be a string", 2) end
    return live(self._fsm, key, self._now) and held(self._fsm, key) or nil
end
function View:exists(key) return live(self._fsm, key, self._now) end
function View:ttl(key)
    local f = self._fsm
    if not live(f, key, self._now) then return -2 end
    local _, e = held(f, key)
    return e and e - self._now or -1
end
local function view_op(name)
    return function(self, ...)
        local r = ops[name](self._fsm, { ... }, self._now, function(_, k, val, e)
            view_write(self, k, val, e)
        end)
        if type(r) == "table" and r.err then error(r.msg, 2) end
        return r
    end
end
View.del, View.incr = view_op("del"), view_op("incr")
View.delete = View.del
function View:set(key, value, ttl_ms)
    local r = ops.set(self._fsm, { key, value, ttl = ttl_ms }, self._now, function(_, k, val, e)
        view_write(self, k, val, e)
    end)
    if type(r) == "table" and r.err then error(r.msg, 2) end
    return r
end
function View:keys(prefix, limit) return self._fsm:keys(prefix, limit, self._now) end

local function handler(e) return tostring(e) end

function ops.call(self, c, now, _, entry)
    local fn = commands[c[1]]
    if not fn then return fail("unknown_command", format("no command '%s'", tostring(c[1]))) end
    local view = setmetatable({ _fsm = self, _now = now, _journal = {}, _order = {} }, View)
    local args = type(c.args) == "table" and c.args or {}
    local ok, result = xpcall(fn, handler, view, args,
                              { index = entry.index, term = entry.term, time_ms = now })
    if ok then
        local good, why = pcall(encode, { v = result })
        if good then return { v = result } end
        result = "its result cannot be encoded: " .. tostring(why)
    end
    -- Undo in reverse order of first change: each key back to its state before the call.
    for i = #view._order, 1, -1 do
        local key = view._order[i]
        local old = view._journal[key]
        direct(self, key, old[1], old[2])
    end
    return fail("command_error", result)
end

-- ---- purge and sessions ---------------------------------------------------------------

function ops.purge(self, c, now)
    if type(c.keys) ~= "table" then return fail("invalid", "purge: keys = { ... }") end
    local n = 0
    for _, key in ipairs(c.keys) do
        local _, e = held(self, key)
        if e ~= nil and e <= now then
            drop(self, key)
            n = n + 1
        end
    end
    self:_expire_sessions(now)
    return n
end

function FSM:_expire_sessions(now)
    local dead = {}
    for id, s in each(self.sessions) do
        if s.active + self.session_timeout_ms < now then dead[#dead + 1] = id end
    end
    for _, id in ipairs(dead) do self.sessions[id] = nil end
end

function ops.register(self, _, now, _, entry)
    self:_expire_sessions(now)
    self.sessions[entry.index] = { active = now, acked = 0, results = {}, n = 0 }
    return entry.index
end

-- The first record of the module set stays: a node with another set that proposes its own
-- later (it has not applied the first yet) stops when it applies the first.
function ops.modules(self, c)
    if type(c.names) ~= "table" then return fail("invalid", "modules: names = { ... }") end
    for i = 1, #c.names do
        if type(c.names[i]) ~= "string" then
            return fail("invalid", "modules: names must be strings")
        end
    end
    if self.modules ~= nil then return false end
    self.modules = module_set(c.names)
    check_modules(self)
    return true
end

--- The command that records this node's module set (for the leader to propose), while
-- the applied state has no record; nil once it has one.
function FSM:modules_pending()
    if self.modules ~= nil then return nil end
    return encode({ op = "modules", names = self.own_modules })
end

--- The recorded module set (a sorted list) or nil; and the mismatch message, if any.
function FSM:modules_record()
    return self.modules, self.modules_mismatch
end

local WRITES = { set = true, del = true, incr = true, cas = true, expire = true, mset = true,
                 call = true }

local function run(self, c, now, entry)
    local op = ops[c.op]
    if not op then return fail("invalid", format("unknown op '%s'", tostring(c.op))) end
    return op(self, c, now, direct, entry)
end

local function numbered(self, c, now, entry)
    local s = self.sessions[c.s]
    if s and s.active + self.session_timeout_ms < now then
        self.sessions[c.s], s = nil, nil
    end
    if not s then return fail("session_expired", format("no session %s", tostring(c.s))) end
    if not is_int(c.q) or c.q < 1 or not WRITES[c.op] then
        return fail("invalid", "a numbered write: q a positive integer, op a write")
    end
    s.active = now
    if is_int(c.a) and c.a > s.acked then
        for seq in each(s.results) do
            if seq <= c.a then s.results[seq], s.n = nil, s.n - 1 end
        end
        s.acked = c.a
    end
    local cached = s.results[c.q]
    if cached then return decode(cached).r end
    if c.q <= s.acked then
        return fail("invalid", format("sequence %d of session %s was acknowledged or forgotten",
                                      c.q, tostring(c.s)))
    end
    local result = run(self, c, now, entry)
    s.results[c.q], s.n = encode({ r = result }), s.n + 1
    if s.n > M.MAX_SESSION_RESULTS then
        local low = huge
        for seq in each(s.results) do if seq < low then low = seq end end
        s.results[low], s.n, s.acked = nil, s.n - 1, max(s.acked, low)
    end
    return result
end

--- Apply one command (msgpack bytes); never raises: a failure is { err, msg }.
function FSM:apply(bytes, index, entry)
    entry = entry or { index = index or self.applied + 1, term = 0, time_ms = self.now }
    if index then self.applied = index end
    if entry.time_ms and entry.time_ms > self.now then self.now = entry.time_ms end
    local now = self.now
    local ok, c = pcall(decode, bytes)
    if not ok or type(c) ~= "table" then
        return fail("invalid", "not an atlas command (msgpack of a table)")
    end
    if c.s ~= nil then return numbered(self, c, now, entry) end
    return run(self, c, now, entry)
end

-- ---- reads ---------------------------------------------------------------------------
-- Each takes an optional now: the time to judge expiry at, the leader's clock when it fixed
-- a linearizable read's index (node:read's ctx.time_ms), the same on every replica. Expiry
-- is judged at max(now, the newest applied stamp): a read never sees a key the applied
-- state already dropped, and a key whose TTL passed with no write since (no newer stamp)
-- reads as absent all the same. nil now (a stale read): the newest applied stamp.

-- The time a read judges expiry at.
local function read_time(self, now)
    if now ~= nil and now > self.now then return now end
    return self.now
end

function FSM:get(key, now)
    now = read_time(self, now)
    return live(self, key, now) and held(self, key) or nil
end
function FSM:exists(key, now) return live(self, key, read_time(self, now)) end
--- Remaining ms, -1 for a key without TTL, -2 for a missing key (as Redis's PTTL).
function FSM:ttl(key, now)
    now = read_time(self, now)
    if not live(self, key, now) then return -2 end
    local _, e = held(self, key)
    return e and e - now or -1
end
function FSM:mget(list, now)
    local out = { n = #list }
    for i, k in ipairs(list) do out[i] = self:get(k, now) end
    return out
end
--- Live keys starting with prefix (all: nil or ""), sorted, at most limit of them.
function FSM:keys(prefix, limit, now)
    now = read_time(self, now)
    prefix = prefix or ""
    local out, n = {}, #prefix
    for i = 1, SHARDS do
        for k in each(self.data[i]) do
            if (n == 0 or k:sub(1, n) == prefix) and live(self, k, now) then
                out[#out + 1] = k
            end
        end
    end
    sort(out)
    if limit and #out > limit then
        for i = #out, limit + 1, -1 do out[i] = nil end
    end
    return out
end
--- The number of keys held (expired ones not yet purged included).
function FSM:size() return self.nkeys end
--- The value and expiry (ms, nil: none) held for key, expired or not: what a read would
-- not show (for tests and tools; changes nothing).
function FSM:held(key) return held(self, key) end
--- Hold value for key with expiry (ms, nil: none) directly, as a restore does (for tests
-- that fill a store faster than commands would).
function FSM:_put(key, value, expiry) put(self, key, value, expiry) end
--- The live keys at now (default: the newest applied stamp) and how many of them have a
-- TTL: DBSIZE and INFO's keyspace line (expired keys not purged yet are not counted).
function FSM:count(now)
    -- (as every read: expiry judged at max(now, the newest applied stamp))
    if now == nil or now < self.now then now = self.now end
    local expired, expires = 0, 0
    for i = 1, SHARDS do
        for _, e in each(self.exp[i]) do
            if e <= now then expired = expired + 1 else expires = expires + 1 end
        end
    end
    return self.nkeys - expired, expires
end
function FSM:session(id) return self.sessions[id] end

--- Up to limit keys whose expiry <= now (for the leader's purge proposals); the heap keeps
-- them, so a purge that does not commit is proposed again.
function FSM:expired_keys(now, limit)
    local out, keep_e, keep_k = {}, {}, {}
    while #out < limit do
        local e, k = heap_pop(self)
        if e == nil then break end
        if e > now then
            heap_push(self, e, k)
            break
        end
        local v, ke = held(self, k)
        if ke == e and v ~= nil then -- else a stale heap entry
            out[#out + 1] = k
            keep_e[#keep_e + 1], keep_k[#keep_k + 1] = e, k
        end
    end
    for i = 1, #keep_e do heap_push(self, keep_e[i], keep_k[i]) end
    return out
end

-- ---- snapshot / restore -----------------------------------------------------------------

-- A frame to out: its length, then its bytes (two writes: no copy of a large frame).
local function frame(out, bytes) out(format("%08x", #bytes), bytes) end

-- The frames of shard i as the snapshot snap (nil: none in slices) sees it: its keys
-- sorted, in chunks of SNAPSHOT_CHUNK_KEYS as { k, v, expiry or false, ... }. Taking them
-- ends the keeping of the shard's old values.
local function shard_frames(d, x, snap, i)
    local kv, ke = snap and snap.v[i], snap and snap.e[i]
    local keys, n = {}, 0
    for k in each(d) do
        if not (kv and kv[k] ~= nil) then n = n + 1; keys[n] = k end
    end
    if kv then
        for k, v in each(kv) do
            if v then n = n + 1; keys[n] = k end
        end
        snap.v[i], snap.e[i] = nil, nil
    end
    sort(keys)
    local frames, chunk = {}, M.SNAPSHOT_CHUNK_KEYS
    for first = 1, n, chunk do
        local flat, j = {}, 0
        for idx = first, math.min(first + chunk - 1, n) do
            local k = keys[idx]
            local v, e
            if kv and kv[k] ~= nil then v, e = kv[k], ke[k] else v, e = d[k], x[k] end
            flat[j + 1], flat[j + 2], flat[j + 3] = k, v, e or false
            j = j + 3
        end
        frames[#frames + 1] = flat
    end
    return frames
end

-- The shards' frames in order; false if yield said to stop.
local function write_shards(data, exp, snap, out, yield)
    for i = 1, SHARDS do
        local frames = shard_frames(data[i], exp[i], snap, i)
        if yield and not yield() then return false end
        for f = 1, #frames do
            frame(out, encode(frames[f]))
            if yield and not yield() then return false end
        end
    end
    return true
end

--- The whole store as bytes (equal stores give equal bytes): "ATLAS1\n", then frames
-- "<8 hex digits: length><msgpack>": a header, then each shard's keys, sorted, in chunks
-- of SNAPSHOT_CHUNK_KEYS as { k, v, expiry or false, ... }. With a writer w (a networked
-- node's snapshot) the frames are written as they are made. With yield too, the node takes
-- the snapshot in slices (FSM.snapshot_slices): between two calls of yield() it applies
-- entries, and the store keeps what the snapshot has still to write as of this call;
-- yield() returning false means the node gave the snapshot up.
function FSM:snapshot(w, yield)
    if yield and self.snap then
        error("atlas: snapshot: another sliced snapshot is being taken", 2)
    end
    local parts = w and nil or {}
    local function out(a, b) -- one or two strings
        if w then
            if b then w:write(a, b) else w:write(a) end
        else
            parts[#parts + 1] = a
            parts[#parts + 1] = b
        end
    end
    local ids = {}
    for id in each(self.sessions) do ids[#ids + 1] = id end
    sort(ids)
    local sessions = {}
    for i, id in ipairs(ids) do
        local s = self.sessions[id]
        local seqs = {}
        for seq in each(s.results) do seqs[#seqs + 1] = seq end
        sort(seqs)
        local flat = {}
        for _, seq in ipairs(seqs) do
            flat[#flat + 1] = seq
            flat[#flat + 1] = s.results[seq]
        end
        sessions[i] = { id = id, active = s.active, acked = s.acked, results = flat }
    end
    out(MAGIC)
    frame(out, encode({ applied = self.applied, now = self.now, count = self.nkeys,
                        session_timeout_ms = self.session_timeout_ms, sessions = sessions,
                        modules = self.modules }))
    if not yield then
        write_shards(self.data, self.exp, nil, out, nil)
        if parts then return concat(parts) end
        return
    end
    local snap = { v = {}, e = {} }
    for i = 1, SHARDS do snap.v[i], snap.e[i] = {}, {} end
    self.snap = snap
    local ok, err = pcall(write_shards, self.data, self.exp, snap, out, yield)
    if self.snap == snap then self.snap = nil end
    if not ok then error(err, 0) end
    if parts then return concat(parts) end
end

--- Networked nodes take ATLAS snapshots in slices in their own process rather than in a
-- forked child (docs/fork-snapshot.md, "In slices"); false on an instance forks instead.
FSM.snapshot_slices = true

--- Replace the store with a snapshot's content; raises on malformed bytes.
function FSM:restore(bytes)
    if bytes:sub(1, #MAGIC) ~= MAGIC then error("atlas: restore: not an atlas snapshot", 2) end
    local pos = #MAGIC + 1
    local function next_frame()
        local len = tonumber(bytes:sub(pos, pos + 7), 16)
        if not len or pos + 7 + len > #bytes then error("atlas: restore: truncated snapshot", 3) end
        local s = bytes:sub(pos + 8, pos + 7 + len)
        pos = pos + 8 + len
        return decode(s)
    end
    local h = next_frame()
    self:_reset()
    self.applied, self.now = h.applied, h.now
    for _, s in ipairs(h.sessions or {}) do
        local results, n = {}, 0
        local flat = s.results or {}
        for i = 1, #flat, 2 do results[flat[i]], n = flat[i + 1], n + 1 end
        self.sessions[s.id] = { active = s.active, acked = s.acked, results = results, n = n }
    end
    while pos <= #bytes do
        local flat = next_frame()
        for i = 1, #flat, 3 do
            put(self, flat[i], flat[i + 1], flat[i + 2] or nil)
        end
    end
    if self.nkeys ~= h.count then error("atlas: restore: key count does not match", 2) end
    if type(h.modules) == "table" then
        self.modules = module_set(h.modules)
        check_modules(self)
    end
end

-- ---- building commands --------------------------------------------------------------

--- Encoders of the commands (bytes for node:apply): encode.set(k, v, ttl_ms, opts), ...
M.encode = {
    set = function(k, v, ttl, opts)
        return encode({ op = "set", k, v, ttl = ttl, nx = opts and opts.nx or nil,
                        xx = opts and opts.xx or nil })
    end,
    del = function(...) return encode({ op = "del", ... }) end,
    incr = function(k, by) return encode({ op = "incr", k, by }) end,
    cas = function(k, old, new) return encode({ op = "cas", k, old, new }) end,
    expire = function(k, ttl) return encode({ op = "expire", k, ttl = ttl or false }) end,
    persist = function(k) return encode({ op = "expire", k, ttl = false, persist = true }) end,
    mset = function(kv) return encode({ op = "mset", kv = kv }) end,
    purge = function(keys) return encode({ op = "purge", keys = keys }) end,
    register = function() return encode({ op = "register" }) end,
    call = function(name, args) return encode({ op = "call", name, args = args }) end,
    modules = function(names) return encode({ op = "modules", names = names }) end,
    raw = function(t) return encode(t) end,
}

--- The same command, numbered in session s with sequence q (ack: results up to it may be
-- forgotten). bytes: what an encoder above returned.
function M.numbered(bytes, s, q, ack)
    local c = decode(bytes)
    c.s, c.q, c.a = s, q, ack
    return encode(c)
end

return M
