--- spec/helpers/fsm.lua: recording state machines for simulator specs.
--
-- A recorder keeps every command it applied, with its index and the leader's time stamp,
-- and answers "ok:<command>" so a client can check that the result it got back is the one
-- its own command produced. A registry hands the simulator a factory (called again for a
-- node's restart) and remembers every incarnation per node.
--
--   local fsm = require("spec.helpers.fsm")
--   local reg = fsm.registry()
--   local c = sim.cluster{ n = 3, seed = 1, fsm = reg.factory }
--   reg.current.n1.log   -- { { index =, command =, time_ms = }, ... }
--
-- A store is a deterministic FSM with real state, for snapshot specs: "set k v" and
-- "del k" edit a table, every command is counted and folded into a running hash, and the
-- last few commands are kept; snapshot() serializes all of it and restore() reads it back,
-- so two stores that applied the same commands have equal snapshot() bytes.
--
--   local reg = fsm.registry(fsm.store)
--   reg.current.n1:snapshot() == reg.current.n2:snapshot()   -- same state
--   reg.current.n1.restored                                  -- the index it restored, or nil

local setmetatable, error, tostring, tonumber = setmetatable, error, tostring, tonumber
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each, ipairs, sort, concat, tremove = pairs, ipairs, table.sort, table.concat,
    table.remove
local byte, sub, find = string.byte, string.sub, string.find

local M = {}

local Recorder = {}
Recorder.__index = Recorder
Recorder.__name = "spec.recorder"

--- A new empty recorder for node id.
function M.recorder(id)
    return setmetatable({ id = id, log = {}, by_index = {} }, Recorder)
end

function Recorder:apply(command, index, entry)
    local prev = self.log[#self.log]
    self.log[#self.log + 1] = { index = index, command = command,
                                time_ms = entry and entry.time_ms }
    self.by_index[index] = command
    -- The simulator checks in-order apply too; recording the order lets specs say it.
    if prev and index <= prev.index then
        self.out_of_order = (self.out_of_order or 0) + 1
    end
    return "ok:" .. tostring(command)
end

function Recorder:snapshot()
    return ""
end

function Recorder:restore()
end

--- A recorder that raises `message` when it applies `trigger`.
function M.failing(id, trigger, message)
    local r = M.recorder(id)
    function r:apply(command, index, entry)
        if command == trigger then
            error(message, 0)
        end
        return Recorder.apply(self, command, index, entry)
    end
    return r
end

local Store = {}
Store.__index = Store
Store.__name = "spec.store"

--- A new empty store for node id, remembering its last `keep` commands (default 16).
function M.store(id, keep)
    return setmetatable({ id = id, n = 0, hash = 0, kv = {}, recent = {}, keep = keep or 16 },
                        Store)
end

function Store:apply(command)
    self.n = self.n + 1
    local h = self.hash
    for i = 1, #command do
        h = (h * 31 + byte(command, i)) % 2147483647
    end
    self.hash = h
    local k, v = command:match("^set (%S+) (.*)$")
    if k then
        self.kv[k] = v
    else
        local d = command:match("^del (%S+)$")
        if d then self.kv[d] = nil end
    end
    local recent = self.recent
    recent[#recent + 1] = command
    if #recent > self.keep then
        tremove(recent, 1)
    end
    return "ok:" .. command
end

function Store:get(k)
    return self.kv[k]
end

-- Length-prefixed fields: "<len>:<bytes>" each.
local function put(out, s)
    s = tostring(s)
    out[#out + 1] = #s .. ":" .. s
end

function Store:snapshot()
    local out = {}
    put(out, self.n)
    put(out, self.hash)
    local keys = {}
    for k in each(self.kv) do keys[#keys + 1] = k end
    sort(keys)
    put(out, #keys)
    for _, k in ipairs(keys) do
        put(out, k)
        put(out, self.kv[k])
    end
    put(out, #self.recent)
    for _, c in ipairs(self.recent) do put(out, c) end
    return concat(out)
end

function Store:restore(bytes, info)
    local pos = 1
    local function get()
        local colon = find(bytes, ":", pos, true)
        if not colon then error("store: truncated snapshot", 0) end
        local len = tonumber(sub(bytes, pos, colon - 1))
        local s = sub(bytes, colon + 1, colon + len)
        if #s ~= len then error("store: truncated snapshot", 0) end
        pos = colon + len + 1
        return s
    end
    self.n = tonumber(get())
    self.hash = tonumber(get())
    self.kv = {}
    for _ = 1, tonumber(get()) do
        local k = get()
        self.kv[k] = get()
    end
    self.recent = {}
    for i = 1, tonumber(get()) do self.recent[i] = get() end
    if pos ~= #bytes + 1 then error("store: trailing bytes in snapshot", 0) end
    self.restored = info and info.index or true
    self.restores = (self.restores or 0) + 1
end

--- A registry of recorders: `factory(id)` for sim.cluster, `current[id]` the live
-- incarnation, `history[id]` every incarnation in order.
-- @tparam[opt] function make(id) builds one FSM; default M.recorder
function M.registry(make)
    make = make or M.recorder
    local reg = { current = {}, history = {} }
    function reg.factory(id)
        local f = make(id)
        reg.current[id] = f
        local h = reg.history[id] or {}
        h[#h + 1] = f
        reg.history[id] = h
        return f
    end
    return reg
end

return M
