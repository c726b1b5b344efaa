--- helios.raft: one Raft node.
--
-- `raft.new{...}`, the networked node on libuv, comes with issue 4 and is deliberately not
-- defined yet (no stub: calling it fails loudly as an unknown field). What is here is the
-- part every kind of node shares, used today by the simulator's nodes (helios.sim) and
-- tomorrow by raft.new: the node class with the API of API.md (state, propose, apply,
-- status, stats, on), the observer registry, status shaping, argument checks and the
-- mapping from the C error names to the API's codes.
--
-- A node object is `raft.node_class` over a backend that does the work:
--
--   local node = raft.wrap(backend, "n1")
--   local term, is_leader = node:state()
--   local index, term = node:propose("cmd")        -- or nil, "not_leader", leader_id
--   node:apply("cmd", 1000, function(index, term, result) end)  -- or (nil, code, detail)
--   node:on("leader", function(leader_id, term) end)
--
-- The backend interface (every method takes the node id first):
--   backend:_node_state(id)            -> role, term, leader_id (nil while down)
--   backend:_propose(id, cmd)          -> index, term | nil, code, detail
--   backend:_wait(id, index, term, timeout_ms, cb)
--                                      -- cb(index, term, result) once applied, or
--                                      -- cb(nil, code, detail)
--   backend:_status(id)                -> a raw status table (see raft.shape_status), or nil
--   backend:_stats(id)                 -> counters table, or nil while down
--   backend:_voters(id)                -> list of voter ids

local type, error, format, pairs, ipairs, tostring = type, error, string.format, pairs, ipairs, tostring
local setmetatable, floor, tremove = setmetatable, math.floor, table.remove

local M = {}

--- Role names, as node:status().role and the "state" observers see them.
M.ROLES = { FOLLOWER = "follower", PRECANDIDATE = "precandidate",
            CANDIDATE = "candidate", LEADER = "leader" }

--- Events accepted by node:on(event, fn).
-- "state" (role, term), "leader" (leader_id or nil, term), "apply" (index, term, cmd),
-- "snapshot" (index, term; fires once snapshots exist).
M.EVENTS = { state = true, leader = true, apply = true, snapshot = true }

--- Timeout of node:apply and c:apply when none is given, in milliseconds.
M.DEFAULT_APPLY_TIMEOUT_MS = 5000

--- The API's failure codes for the C error names (error.h).
M.ERROR_CODES = {
    ENOTLEADER = "not_leader", ETIMEOUT = "timeout", ESHUTDOWN = "shutdown",
    ETOOLARGE = "too_large", ENOSPACE = "no_space",
}

--- The API code for a C error name ("ENOTLEADER" -> "not_leader").
-- @tparam string cname a name from hr_err_name
-- @treturn string
function M.code(cname)
    return M.ERROR_CODES[cname] or (cname:gsub("^E", "")):lower()
end

--- Raise a Usage error unless cmd is a string.
-- @param cmd the command
-- @tparam string usage e.g. "node:propose(cmd)"
-- @tparam[opt=3] number level error level
function M.check_command(cmd, usage, level)
    if type(cmd) ~= "string" then
        error(format("Usage: %s: the command must be a string (got %s)", usage, type(cmd)),
              level or 3)
    end
end

--- Raise a Usage error unless ms is nil (the default) or a non-negative integer.
-- @return ms or the default
function M.check_timeout(ms, usage, default, level)
    if ms == nil then
        return default or M.DEFAULT_APPLY_TIMEOUT_MS
    end
    if type(ms) ~= "number" or ms < 0 or ms ~= floor(ms) then
        error(format("Usage: %s: timeout_ms must be a non-negative integer (got %s)",
                     usage, tostring(ms)), level or 3)
    end
    return ms
end

--- A new observer registry: one list of functions per event of raft.EVENTS.
function M.observers()
    local o = {}
    for event in pairs(M.EVENTS) do
        o[event] = {}
    end
    return o
end

--- Call every observer of event with the arguments. Errors propagate to the caller (in the
-- simulator: they stop the simulation and are raised by the run call).
function M.emit(observers, event, ...)
    local list = observers[event]
    for i = 1, #list do
        list[i](...)
    end
end

--- Shape a raw status into the table of API.md.
-- raw: { role, term, leader (id or nil), vote, commit_index, first_index, last_index,
-- applied_index, progress = { [i] = {id, match, next, replicating, inflight} } } with ids
-- already in the API's form, or nil while the node is down (role "shutdown", zeros).
-- @tparam string id the node's id
-- @tparam table voters list of voter ids (the configuration)
-- @treturn table id, role, term, leader, vote, commit_index, applied_index, first_index,
--   last_index, snapshot_index, peers = { [id] = {addr, match, next, voter} }
function M.shape_status(id, raw, voters, addr_of)
    addr_of = addr_of or function(x) return x end
    local st = {
        id = id, role = "shutdown", term = 0, leader = nil, vote = nil,
        commit_index = 0, applied_index = 0, first_index = 0, last_index = 0,
        snapshot_index = 0, peers = {},
    }
    local progress = {}
    if raw then
        st.role, st.term, st.leader, st.vote = raw.role, raw.term, raw.leader, raw.vote
        st.commit_index, st.applied_index = raw.commit_index, raw.applied_index
        st.first_index, st.last_index = raw.first_index, raw.last_index
        st.snapshot_index = raw.snapshot_index or 0
        for _, p in ipairs(raw.progress or {}) do
            progress[p.id] = p
        end
    end
    for _, v in ipairs(voters) do
        local p = progress[v]
        st.peers[v] = {
            addr = addr_of(v), voter = true,
            match = p and p.match or 0, next = p and p.next or 0,
            replicating = p and p.replicating or nil, inflight = p and p.inflight or nil,
        }
    end
    return st
end

--- The node class. Instances are made by raft.wrap(backend, id).
local node_class = { __name = "helios.raft.node" }
node_class.__index = node_class
M.node_class = node_class

--- A node object for id over backend (see the module comment for the interface).
function M.wrap(backend, id)
    return setmetatable({ id = id, _backend = backend, _observers = M.observers() },
                        node_class)
end

function node_class.__tostring(self)
    local role, term = self._backend:_node_state(self.id)
    return format("helios.raft.node %s (%s, term %s)", self.id, role or "shutdown",
                  tostring(term or 0))
end

--- The seed's GetState.
-- @treturn number term (0 while the node is down)
-- @treturn boolean whether this node believes it is the leader
function node_class:state()
    local role, term = self._backend:_node_state(self.id)
    return term or 0, role == M.ROLES.LEADER
end

--- Append cmd to the leader's log and return at once (the seed's Start).
-- @tparam string cmd
-- @treturn number index
-- @treturn number term
-- @return or nil, "not_leader", leader_id (nil if unknown); nil, "shutdown" while down
function node_class:propose(cmd)
    M.check_command(cmd, "node:propose(cmd)")
    return self._backend:_propose(self.id, cmd)
end

--- Propose cmd and call back once this node has applied it.
-- The callback receives index, term, result (what fsm:apply returned), or nil, code,
-- detail: "not_leader" (not the leader, or the entry was overwritten by another leader),
-- "timeout", "shutdown" (the node went down). A failed proposal calls back at once.
-- @tparam string cmd
-- @tparam[opt] number timeout_ms default raft.DEFAULT_APPLY_TIMEOUT_MS
-- @tparam function callback
-- @usage node:apply("set x 1", 1000, function(index, term, result) ... end)
function node_class:apply(cmd, timeout_ms, callback)
    local usage = "node:apply(cmd[, timeout_ms], callback)"
    if callback == nil and type(timeout_ms) == "function" then
        timeout_ms, callback = nil, timeout_ms
    end
    M.check_command(cmd, usage)
    timeout_ms = M.check_timeout(timeout_ms, usage)
    if type(callback) ~= "function" then
        error("Usage: " .. usage .. ": a callback is required (in the simulator, apply "
              .. "completes while virtual time runs)", 2)
    end
    local index, term, detail = self._backend:_propose(self.id, cmd)
    if not index then
        callback(nil, term, detail)
        return
    end
    self._backend:_wait(self.id, index, term, timeout_ms, callback)
end

--- The status table of API.md (role "shutdown" and zeros while the node is down).
function node_class:status()
    return M.shape_status(self.id, self._backend:_status(self.id),
                          self._backend:_voters(self.id))
end

--- Counters: batches/fsyncs, entries_written, msgs_sent (and msgs_sent_by_type),
-- bytes_sent, msgs_received, state_changes, elections, applied. Those of the current
-- incarnation; nil while the node is down.
function node_class:stats()
    return self._backend:_stats(self.id)
end

--- Register an observer: "state" (role, term), "leader" (leader_id, term),
-- "apply" (index, term, cmd), "snapshot". Returns fn (a handle for node:off).
function node_class:on(event, fn)
    if not M.EVENTS[event] or type(fn) ~= "function" then
        error(format("Usage: node:on(event, fn): event is one of state, leader, apply, "
                     .. "snapshot (got %s) and fn a function", tostring(event)), 2)
    end
    local list = self._observers[event]
    list[#list + 1] = fn
    return fn
end

--- Remove an observer registered with node:on. Returns true if it was registered.
function node_class:off(event, fn)
    local list = self._observers[event]
    if not list then
        error("Usage: node:off(event, fn)", 2)
    end
    for i = #list, 1, -1 do
        if list[i] == fn then
            tremove(list, i)
            return true
        end
    end
    return false
end

--- Call the observers of event on this node (for backends).
function node_class:_emit(event, ...)
    if #self._observers[event] > 0 then
        M.emit(self._observers, event, ...)
    end
end

return M
