--- helios.fsm.kv: a small replicated key-value state machine, for the demo and the tests.
--
-- Commands are plain strings, so they can be typed, logged and compared as they are:
--
--   set KEY VALUE     -> "OK"            VALUE is the rest of the command (any bytes)
--   get KEY           -> the value, or nil
--   del KEY           -> 1 if the key existed, else 0
--   incr KEY [N]      -> the new integer value (a missing key counts as 0; N defaults to 1)
--
-- KEY is one word (no spaces). Anything else returns "ERR <reason>" and changes nothing:
-- a command in the log must never stop a replica from applying the next one.
--
--   local kv = require("helios.fsm.kv")
--   local store = kv.new()
--   local node = raft.new{ ..., fsm = store }
--   node:apply("set greeting hello")          -- index, term, "OK"
--   store:get("greeting")                     -- "hello": this replica's applied state
--
-- A cluster file names it as `fsm = "helios.fsm.kv"` (`helios node` calls new()).

local format, concat, sort = string.format, table.concat, table.sort
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each, tonumber, tostring, setmetatable, type = pairs, tonumber, tostring,
    setmetatable, type

local M = {}

local KV = {}
KV.__index = KV
KV.__name = "helios.fsm.kv.store"

function KV:__tostring()
    return format("helios.fsm.kv.store(%d keys, applied #%d)", self.count, self.applied)
end

--- A new, empty store.
-- @treturn table an FSM (apply, snapshot, restore) with get(key) and keys()
function M.new()
    return setmetatable({ data = {}, count = 0, applied = 0 }, KV)
end

local function put(self, key, value)
    if self.data[key] == nil then self.count = self.count + 1 end
    self.data[key] = value
end

--- Apply one command (see the module comment); returns its result.
function KV:apply(command, index)
    if index then self.applied = index end
    if type(command) ~= "string" then return "ERR command must be a string" end
    local op, rest = command:match("^(%a+) ?(.*)$")
    if op == "set" then
        local key, value = rest:match("^(%S+) (.*)$")
        if not key then return "ERR usage: set KEY VALUE" end
        put(self, key, value)
        return "OK"
    elseif op == "get" then
        if not rest:match("^%S+$") then return "ERR usage: get KEY" end
        return self.data[rest]
    elseif op == "del" then
        if not rest:match("^%S+$") then return "ERR usage: del KEY" end
        if self.data[rest] == nil then return 0 end
        self.data[rest] = nil
        self.count = self.count - 1
        return 1
    elseif op == "incr" then
        local key, n = rest:match("^(%S+) ?(%-?%d*)$")
        if not key then return "ERR usage: incr KEY [N]" end
        local current = tonumber(self.data[key] or "0")
        if not current then return "ERR value is not an integer" end
        local value = current + (tonumber(n) or 1)
        put(self, key, tostring(value))
        return value
    end
    return format("ERR unknown command '%s'", tostring(op or command:sub(1, 20)))
end

--- The value of key, or nil (this replica's applied state, which may lag the leader's).
function KV:get(key)
    return self.data[key]
end

--- The keys, sorted.
function KV:keys()
    local keys = {}
    for k in each(self.data) do keys[#keys + 1] = k end
    sort(keys)
    return keys
end

--- The whole store as bytes: "<applied>\n" then "<#key>:<key><#value>:<value>" per key,
-- keys sorted so that equal stores give equal snapshots.
function KV:snapshot()
    local parts = { format("%d\n", self.applied) }
    for _, k in ipairs(self:keys()) do
        local v = self.data[k]
        parts[#parts + 1] = format("%d:%s%d:%s", #k, k, #v, v)
    end
    return concat(parts)
end

--- Replace the store with a snapshot's content; raises on malformed bytes.
function KV:restore(bytes)
    local applied, pos = bytes:match("^(%d+)\n()")
    if not applied then error("helios.fsm.kv: restore: malformed snapshot header", 2) end
    local data, count = {}, 0
    local n = #bytes
    while pos <= n do
        local parts = {}
        for i = 1, 2 do
            local len, start = bytes:match("^(%d+):()", pos)
            if not len then error("helios.fsm.kv: restore: malformed snapshot", 2) end
            parts[i] = bytes:sub(start, start + tonumber(len) - 1)
            pos = start + tonumber(len)
        end
        data[parts[1]] = parts[2]
        count = count + 1
    end
    self.data, self.count, self.applied = data, count, tonumber(applied)
end

return M
