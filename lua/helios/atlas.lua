--- helios.atlas: ATLAS, the replicated key-value store with TTLs, user commands in Lua and
-- exactly-once sessions (docs/atlas.md).
--
--   local atlas = require("helios.atlas")
--   local store = assert(atlas.open{ id = "node-1", peers = {...}, data_dir = "...",
--                                    secret = "..." })   -- raft.new + start + atlas.new
--   raft.spawn(function()
--       store:set("greeting", "hello", 60000)            -- true (a 60 s TTL)
--       store:get("greeting")                            -- "hello" (linearizable)
--       store:get("greeting", { stale = true })          -- this replica's state
--   end)
--
-- atlas.fsm() is the state machine (helios.atlas.fsm); atlas.new(node) wraps a node whose
-- FSM it is. Every write is one replicated command (msgpack); failures are nil, code,
-- detail as for node:apply (plus the FSM's codes: "invalid", "command_error",
-- "unknown_command", "session_expired"). A call yields in a coroutine on a networked
-- node's loop and takes a trailing callback elsewhere (simulated nodes), as node:apply.
--
-- Expiry is judged against the leaders' stamps in the log (entry.time_ms), never a local
-- clock; the leader proposes purge batches (store:purge, on a timer on networked nodes).

local fsm_mod = require("helios.atlas.fsm")

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local type, select, error, unpack, ipairs, each = type, select, error, unpack, ipairs, pairs
local setmetatable, tostring, tonumber = setmetatable, tostring, tonumber
local format = string.format

local M = {}

--- How often the leader looks for expired keys to purge (networked nodes), ms.
M.DEFAULT_PURGE_INTERVAL_MS = 100
--- Keys per purge command.
M.DEFAULT_PURGE_BATCH = 1000

M.command = fsm_mod.command
M.command_names = fsm_mod.command_names
M.encode = fsm_mod.encode
M.numbered = fsm_mod.numbered

--- A new, empty ATLAS state machine (opts: session_timeout_ms, the same on every node).
function M.fsm(opts)
    return fsm_mod.new(opts)
end

-- The leader's clock for purge proposals on a networked node: the wall clock in ms, as the
-- node stamps entries (csrc/node/runtime.c). Only which keys get proposed depends on it:
-- the purge entry itself drops a key only if it expired by that entry's stamp.
local wall_ms
do
    local ok, ffi = pcall(require, "ffi")
    if ok then
        pcall(ffi.cdef, "struct helios_atlas_timespec { long tv_sec; long tv_nsec; };"
                        .. "int clock_gettime(int, struct helios_atlas_timespec *);")
        local ts = ffi.new("struct helios_atlas_timespec")
        wall_ms = function()
            ffi.C.clock_gettime(0, ts) -- CLOCK_REALTIME
            return tonumber(ts.tv_sec) * 1000 + math.floor(tonumber(ts.tv_nsec) / 1e6)
        end
    else
        wall_ms = function() return os.time() * 1000 end
    end
end

local Store = {}
Store.__index = Store
Store.__name = "helios.atlas.store"

function Store:__tostring()
    return format("helios.atlas.store(%s)", tostring(self.node.id))
end

--- A store over node (its fsm must be an atlas.fsm()). opts: timeout_ms (of each call,
-- default node.DEFAULT_APPLY_TIMEOUT_MS), purge_interval_ms (networked nodes: default 100;
-- false: no timer, call store:purge() yourself), purge_batch (default 1000), clock (the
-- leader's clock in ms for purge proposals; default the wall clock; in the simulator
-- pass function() return c:now() end).
function M.new(node, opts)
    opts = opts or {}
    if type(node) ~= "table" or type(node.read_stale) ~= "function" then
        error("Usage: atlas.new(node[, opts]): a node of helios.raft or helios.sim", 2)
    end
    local self = setmetatable({ node = node, timeout_ms = opts.timeout_ms,
                                purge_batch = opts.purge_batch or M.DEFAULT_PURGE_BATCH,
                                clock = opts.clock or wall_ms }, Store)
    local interval = opts.purge_interval_ms
    if interval == nil and node._backend and node._backend._blocking then
        interval = M.DEFAULT_PURGE_INTERVAL_MS
    end
    if interval then
        -- One timer per node, however many stores wrap it (the RESP port's and the
        -- application's): the first store's interval makes it, the last close stops it.
        local p = node._atlas_purger
        if p == nil then
            p = { stores = {}, n = 0 }
            p.timer = require("helios.loop").every(interval, function() M._tick(node, p) end)
            node._atlas_purger = p
        end
        p.stores[self], p.n = true, p.n + 1
        self._purger = p
    end
    return self
end

-- Propose the node's module record (helios.atlas.fsm's atlas_modules check) while it
-- leads and the applied state has none; one proposal in flight at a time.
local function propose_modules(node)
    local f = node:read_stale(function(fsm) return fsm end)
    if type(f) ~= "table" or type(f.modules_pending) ~= "function" then return end
    if f.applied < (node._atlas_modules_index or 0) then return end
    local bytes = f:modules_pending()
    if bytes then
        local index = node:propose(bytes)
        if index then node._atlas_modules_index = index end
    end
end

-- The leader's timer: a purge through one open store of the node, and the modules record.
function M._tick(node, p)
    local _, is_leader = node:state()
    if not is_leader then return end
    for store in each(p.stores) do
        if not store.closed then
            store:purge()
            break
        end
    end
    propose_modules(node)
end

-- Pop a trailing callback off the arguments: callback, n (the count of the others).
local function trailing(...)
    local n = select("#", ...)
    local last = n > 0 and select(n, ...) or nil
    if type(last) == "function" then return last, n - 1 end
    return nil, n
end

local function check_open(self)
    if self.closed then error("atlas: the store is closed", 3) end
end

-- The outcome of node:apply as the store returns it.
local function write_outcome(unwrap, index, code, result)
    if not index then return nil, code, result end
    if type(result) == "table" and result.err then return nil, result.err, result.msg end
    if unwrap then return result.v end
    return result
end

local function write(self, bytes, callback, unwrap)
    check_open(self)
    if callback then
        self.node:apply(bytes, self.timeout_ms, function(i, t, r)
            callback(write_outcome(unwrap, i, t, r))
        end)
        return
    end
    return write_outcome(unwrap, self.node:apply(bytes, self.timeout_ms))
end

local function read_outcome(r, code, detail)
    if r == nil then return nil, code, detail end
    return unpack(r, 1, r.n)
end

-- fn(fsm, now) -> values; linearizable (node:read) unless opts.stale (node:read_stale).
-- now: the leader's clock when it fixed the read index (node:read's ctx.time_ms), so that
-- expiry is judged alike on every replica and a key whose TTL passed reads as absent even
-- when nothing was written since; nil on a stale read (the newest applied stamp).
local function read(self, opts, callback, fn)
    check_open(self)
    local wrapped = function(fsm, ctx) return { n = 1, fn(fsm, ctx and ctx.time_ms) } end
    if type(opts) == "table" and opts.stale then
        local r, code, detail = self.node:read_stale(wrapped)
        if callback then return callback(read_outcome(r, code, detail)) end
        return read_outcome(r, code, detail)
    end
    if callback then
        self.node:read(wrapped, self.timeout_ms, function(r, code, detail)
            callback(read_outcome(r, code, detail))
        end)
        return
    end
    return read_outcome(self.node:read(wrapped, self.timeout_ms))
end

local function check_key(key, usage)
    if type(key) ~= "string" then
        error(format("Usage: store:%s: key must be a string (got %s)", usage, type(key)), 3)
    end
end

local function opts_arg(v)
    if v ~= nil and type(v) ~= "table" then error("atlas: opts must be a table", 3) end
    return v
end

Store._write = write

--- set(key, value[, ttl_ms[, { nx = true | xx = true }]][, callback]) -> true, or false
-- when nx/xx was not met.
function Store:set(...)
    local cb, n = trailing(...)
    local key, value, ttl, opts = ...
    if n < 4 then opts = nil end
    if n < 3 then ttl = nil end
    check_key(key, "set(key, value[, ttl_ms[, opts]][, callback])")
    if type(value) ~= "string" then
        error("Usage: store:set(key, value[, ttl_ms[, opts]][, callback]): value must be a "
              .. "string", 2)
    end
    if ttl ~= nil and (type(ttl) ~= "number" or ttl <= 0 or ttl % 1 ~= 0) then
        error("Usage: store:set(key, value[, ttl_ms[, opts]][, callback]): ttl_ms must be a "
              .. "positive whole number of milliseconds", 2)
    end
    return self:_write(fsm_mod.encode.set(key, value, ttl, opts_arg(opts)), cb)
end

--- get(key[, { stale = true }][, callback]) -> value or nil.
function Store:get(key, ...)
    local cb, n = trailing(...)
    check_key(key, "get(key[, opts][, callback])")
    local opts = n > 0 and opts_arg((...)) or nil
    return read(self, opts, cb, function(f, now) return f:get(key, now) end)
end

--- exists(key[, opts][, callback]) -> boolean.
function Store:exists(key, ...)
    local cb, n = trailing(...)
    check_key(key, "exists(key[, opts][, callback])")
    local opts = n > 0 and opts_arg((...)) or nil
    return read(self, opts, cb, function(f, now) return f:exists(key, now) end)
end

--- ttl(key[, opts][, callback]) -> remaining ms; -1 no TTL; -2 no such key.
function Store:ttl(key, ...)
    local cb, n = trailing(...)
    check_key(key, "ttl(key[, opts][, callback])")
    local opts = n > 0 and opts_arg((...)) or nil
    return read(self, opts, cb, function(f, now) return f:ttl(key, now) end)
end

--- mget({ keys }[, opts][, callback]) -> { n = #keys, values or nil }.
function Store:mget(keys, ...)
    local cb, n = trailing(...)
    local opts = n > 0 and opts_arg((...)) or nil
    return read(self, opts, cb, function(f, now) return f:mget(keys, now) end)
end

--- keys([prefix[, limit[, opts]]][, callback]) -> the live keys with prefix, sorted.
function Store:keys(...)
    local cb, n = trailing(...)
    local prefix, limit, opts = ...
    if n < 3 then opts = nil end
    if n < 2 then limit = nil end
    if n < 1 then prefix = nil end
    return read(self, opts_arg(opts), cb,
                function(f, now) return f:keys(prefix, limit, now) end)
end

--- count([opts][, callback]) -> the live keys, and how many of them have a TTL.
function Store:count(...)
    local cb, n = trailing(...)
    local opts = n > 0 and opts_arg((...)) or nil
    local function fn(f, ...) return { f:count(...) } end
    local function shape(r, code, detail)
        if r == nil then return nil, code, detail end
        return r[1], r[2]
    end
    if cb then return read(self, opts, function(...) cb(shape(...)) end, fn) end
    return shape(read(self, opts, nil, fn))
end

--- delete(key[, callback]) -> true if the key existed, else false.
function Store:delete(key, cb)
    check_key(key, "delete(key[, callback])")
    local function shape(r, code, detail)
        if r == nil then return nil, code, detail end
        return r == 1
    end
    if cb then return self:_write(fsm_mod.encode.del(key), function(...) cb(shape(...)) end) end
    return shape(self:_write(fsm_mod.encode.del(key)))
end

--- incr(key[, by][, callback]) -> the new integer.
function Store:incr(key, ...)
    local cb, n = trailing(...)
    check_key(key, "incr(key[, by][, callback])")
    local by = n > 0 and (...) or nil
    return self:_write(fsm_mod.encode.incr(key, by), cb)
end

--- cas(key, expected, new[, callback]) -> true if the value was expected (nil: absent).
function Store:cas(key, expected, new, cb)
    check_key(key, "cas(key, expected, new[, callback])")
    return self:_write(fsm_mod.encode.cas(key, expected, new), cb)
end

--- expire(key, ttl_ms[, callback]) -> true if the key exists (ttl_ms false: no TTL).
function Store:expire(key, ttl, cb)
    check_key(key, "expire(key, ttl_ms[, callback])")
    return self:_write(fsm_mod.encode.expire(key, ttl), cb)
end

--- mset({ k1, v1, k2, v2, ... } or { k = v }[, callback]) -> true: all or nothing.
function Store:mset(kv, cb)
    if type(kv) ~= "table" then error("Usage: store:mset(kv[, callback])", 2) end
    local flat = kv
    if #kv == 0 then
        local keys = {}
        for k in each(kv) do keys[#keys + 1] = k end
        table.sort(keys)
        flat = {}
        for _, k in ipairs(keys) do flat[#flat + 1] = k; flat[#flat + 1] = kv[k] end
    end
    return self:_write(fsm_mod.encode.mset(flat), cb)
end

--- call(name, args[, callback]) -> what the user command returned.
function Store:call(name, args, cb)
    return self:_write(fsm_mod.encode.call(name, args), cb, true)
end

--- On the leader: propose one purge of up to purge_batch keys expired by the leader's
-- clock (none while the previous purge is not applied yet). Returns how many keys it
-- proposed (0 on a follower), or nil, code, detail from node:propose.
function Store:purge()
    if self.closed then return 0 end
    local _, is_leader = self.node:state()
    if not is_leader then return 0 end
    -- The purge in flight is the node's (any store of it may have proposed it).
    local node = self.node
    local now, batch, pending = self.clock(), self.purge_batch, node._atlas_purge_index or 0
    local keys = node:read_stale(function(f)
        if f.applied < pending then return {} end
        return f:expired_keys(now, batch)
    end)
    if type(keys) ~= "table" or #keys == 0 then return 0 end
    local index, code, detail = node:propose(fsm_mod.encode.purge(keys))
    if not index then return nil, code, detail end
    node._atlas_purge_index = index
    return #keys
end

--- Stop the purge timer (and shut the node down if atlas.open made it). Idempotent.
function Store:close(cb)
    if self.closed then return false end
    self.closed = true
    local p = self._purger
    if p and p.stores[self] then
        p.stores[self], p.n = nil, p.n - 1
        if p.n == 0 then
            p.timer:stop()
            if self.node._atlas_purger == p then self.node._atlas_purger = nil end
        end
    end
    if self._owns_node then return self.node:shutdown(cb) end
    if cb then cb() end
    return true
end

-- ---- sessions: numbered writes, applied at most once ----------------------------------

local Session = {}
Session.__index = Session
Session.__name = "helios.atlas.session"

function Session:__tostring()
    return format("helios.atlas.session(%s, seq %d)", tostring(self.id), self.seq)
end

-- Writes as on the store, numbered by Session:_write.
for _, name in ipairs({ "set", "delete", "incr", "cas", "expire", "mset", "call" }) do
    Session[name] = Store[name]
end

-- Reads go to the session's store (linearizable or stale as asked).
for _, name in ipairs({ "get", "exists", "ttl", "mget", "keys" }) do
    Session[name] = function(self, ...) return Store[name](self.store, ...) end
end

function Session:_write(bytes, callback, unwrap)
    self.seq = self.seq + 1
    -- Calls complete one at a time (a client waits for each), so every earlier result
    -- has reached it: the store may forget them.
    local numbered = fsm_mod.numbered(bytes, self.id, self.seq, self.seq - 1)
    self.pending = { bytes = numbered, unwrap = unwrap }
    return write(self.store, numbered, callback, unwrap)
end

--- Resend the last write with the same session and sequence number (after a timeout,
-- not_leader, shutdown: it may or may not have been applied): it is applied at most once
-- and the outcome is its first result. store (optional): go through another node's store
-- from now on (the new leader). Returns the outcome as the original call would (nil,
-- "invalid" if nothing was written yet).
function Session:retry(store, callback)
    if callback == nil and type(store) == "function" then store, callback = nil, store end
    if store then self.store = store end
    local p = self.pending
    if not p then
        if callback then return callback(nil, "invalid", "nothing to retry") end
        return nil, "invalid", "nothing to retry"
    end
    return write(self.store, p.bytes, callback, p.unwrap)
end

--- Register a session (one replicated command) and return it: a store whose writes are
-- numbered (set, delete, incr, cas, expire, mset, call, as on the store; reads as on the
-- store) and session:retry([store]) resends the last one. Or nil, code, detail.
function Store:session(callback)
    local function made(id, code, detail)
        if id == nil then return nil, code, detail end
        return setmetatable({ store = self, id = id, seq = 0 }, Session)
    end
    if callback then
        return self:_write(fsm_mod.encode.register(), function(...) callback(made(...)) end)
    end
    return made(self:_write(fsm_mod.encode.register()))
end

--- raft.new with fsm = atlas.fsm(), then node:start() and atlas.new. opts: raft.new's
-- options, plus atlas = { session_timeout_ms, timeout_ms, purge_interval_ms, ... }.
-- Returns the store (store.node is the node), or nil, code, detail from node:start().
function M.open(opts)
    if type(opts) ~= "table" then error("Usage: atlas.open{ raft.new options }", 2) end
    local o, extra = {}, opts.atlas or {}
    for k, v in each(opts) do
        if k ~= "atlas" then o[k] = v end
    end
    if o.fsm ~= nil then error("atlas.open: fsm: the store brings its own", 2) end
    o.fsm = M.fsm({ session_timeout_ms = extra.session_timeout_ms })
    local node = require("helios.raft").new(o)
    local ok, code, detail = node:start()
    if not ok then return nil, code, detail end
    local store = M.new(node, extra)
    store._owns_node = true
    return store
end

return M
