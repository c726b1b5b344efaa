--- helios.node: the node class and the backend contract, shared by the networked node
-- (helios.raft) and the simulator's nodes (helios.sim).
--
--   local node_mod = require("helios.node")
--   local node = node_mod.wrap(backend, "n1")
--   local term, is_leader = node:state()
--   local index, term = node:propose("cmd")        -- or nil, "not_leader", leader_id
--   node:apply("cmd", 1000, function(index, term, result) end)  -- or (nil, code, detail)
--   node:on("leader", function(leader_id, term) end)
--
-- The node class has the documented API (docs/lua-api.md: state, propose, apply, status,
-- stats, on, ...) over a backend that does the work. This module also holds what both
-- backends share: running fsm:apply for a committed entry (apply_entry), observers,
-- shaping a raw status (shape_status) and the checks of options and arguments.
--
-- FSM errors are results, not crashes: when fsm:apply raises for a committed entry (or
-- returns what a client could not receive: a function, a cycle), the caller of node:apply
-- gets nil, "fsm_error", "fsm apply at index I (term T) failed: <error>", the node logs it
-- once ("log" event, level 2), counts it (stats().fsm_errors) and applies the next entry.
-- Every replica applies the same entries in the same order, so every replica fails the
-- same way and they stay identical. With the option on_fsm_error = "stop" the node stops
-- at such an entry instead ("error" event with code "fsm_error", status().fsm_error); the
-- entry is committed, so a restart replays it and stops there again until the FSM is fixed
-- or the option is "continue". M.apply_entry is the one place both backends run fsm:apply.
--
-- The backend contract (every method takes the node id first):
--   backend:_node_state(id)            -> role, term, leader_id (nil while down)
--   backend:_propose(id, cmd)          -> index, term | nil, code, detail
--   backend:_wait(id, index, term, timeout_ms, cb)
--                                      -- cb(index, term, result) once applied, or
--                                      -- cb(nil, code, detail)
--   backend:_status(id)                -> a raw status table (see shape_status), or nil
--   backend:_stats(id)                 -> counters table, or nil while down
--   backend:_voters(id)                -> list of voter ids, and a second list: learners
--                                         (may be absent)
--   optional: backend:_addr_of(id), backend:_start(id), backend:_shutdown(id, cb),
--   backend:_snapshot(id) -> index | nil, code, detail (node:snapshot),
--   backend:_fsm_stopped_message(id) (status().fsm_error),
--   backend:_add_peer(id, peer, addr, voter, timeout_ms, cb) and
--   backend:_remove_peer(id, peer, timeout_ms, cb) (node:add_peer, node:remove_peer: cb
--   gets true once the change has committed, or nil, code, detail),
--   backend:_bootstrap_peer(id, peer, addr, voter) (add_peer before start: true, or nil,
--   code, detail; nothing once started), backend:_read(id, fn, timeout_ms, cb),
--   backend:_read_stale(id, fn), backend:_transfer(id, target_or_nil, cb) (cb(new leader
--   id) or cb(nil, code, detail)), backend:_configuration(id) -> { index, committed,
--   promoting, servers = { { id, addr, voter, match, caught_up } } } or nil, and
--   backend._blocking = true when apply may block a coroutine (the loop runs it: helios.raft)
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local type, error, format, each, ipairs, tostring = type, error, string.format, pairs,
    ipairs, tostring
local setmetatable, ceil, huge = setmetatable, math.ceil, math.huge
local tremove = table.remove
local xpcall, require = xpcall, require
local isyieldable, traceback = coroutine.isyieldable, debug.traceback

local M = {}

--- Role names, as node:status().role and the "state" observers see them.
M.ROLES = { FOLLOWER = "follower", PRECANDIDATE = "precandidate",
            CANDIDATE = "candidate", LEADER = "leader" }

--- Events accepted by node:on(event, fn).
-- "state" (role, term), "leader" (leader_id or nil, term), "apply" (index, term, cmd: also
-- for an entry whose fsm:apply raised), "snapshot" (index, term: a snapshot became durable,
-- taken or installed from the leader), "error" (code, message: for networked nodes a
-- storage failure, code nil once it recovered; "fsm_error" when on_fsm_error = "stop"
-- stops the node, the message naming the entry and what to do) and "log" (level, message:
-- events an operator should see, level 0 info, 1 warning, 2 error; an FSM error is logged
-- at level 2 with its traceback; node:start() logs what recovery did, at level 0, each
-- note starting "recovery: "). A networked node's "log" events may carry two more
-- arguments, an event name and a table of fields (snapshot_taken, snapshot_installed,
-- membership_change, fsm_error, recovery, ...: docs/logging.md); helios.nodelog classifies
-- those without (the runtime's messages).
M.EVENTS = { state = true, leader = true, apply = true, snapshot = true, error = true,
             log = true }

--- Timeout of node:apply and c:apply when none is given, in milliseconds.
M.DEFAULT_APPLY_TIMEOUT_MS = 5000

--- Values of the option on_fsm_error: what a node does when fsm:apply raises.
-- "continue" (the default): answer the entry with fsm_error and apply the next one.
-- "stop": stop the node at that entry (networked node: it shuts down; simulated node: it
-- is crashed), and again at every restart until the FSM is fixed or the option changed.
M.ON_FSM_ERROR = { continue = true, stop = true }

--- How a value shows in an error message: a string as the user wrote it, quoted, and said
-- to be a string (`"300", a string`), a number or boolean as is, other types by name.
function M.describe_value(v)
    local t = type(v)
    if t == "string" then
        return (format("%q, a string", v):gsub("\\\n", "\\n"))
    elseif t == "number" or t == "boolean" then
        return tostring(v)
    elseif t == "nil" then
        return "nothing"
    end
    return "a " .. t
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

--- Raise a Usage error unless ms is nil (the default) or a non-negative finite number.
-- A fraction of a millisecond is rounded up (a remaining time computed from a clock is
-- fractional; waiting a little longer is what a deadline means, never less).
-- @return the whole milliseconds, or the default
function M.check_timeout(ms, usage, default, level)
    if ms == nil then
        return default or M.DEFAULT_APPLY_TIMEOUT_MS
    end
    if type(ms) ~= "number" or not (ms >= 0) or ms == huge then
        error(format("Usage: %s: timeout_ms must be a non-negative number of milliseconds "
                     .. "(got %s)", usage, tostring(ms)), level or 3)
    end
    return ceil(ms)
end

local mp_check -- core.mp_check, loaded with helios.core

-- xpcall's handler for fsm:apply: the message alone (for the client) and with the
-- traceback (for the log).
local function fsm_handler(e)
    local msg = tostring(e)
    -- The frames below fsm.apply are the node's own: they say nothing about the FSM.
    local tb = traceback(msg, 2)
    local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
    return { message = msg, traceback = cut and tb:sub(1, cut - 1) or tb }
end

--- Run fsm:apply for one committed entry: the one place both backends call it.
-- An error it raises, or a result a client could not receive (mp_encode refuses it: a
-- function, a cycle, userdata), is a result of the entry, the same on every replica.
-- @return true, result; or false, message ("fsm apply at index I (term T) failed: ..."),
--   and the traceback ("\nstack traceback: ..." for the log; "" when nothing raised)
function M.apply_entry(fsm, cmd, index, term, time_ms)
    local ok, result = xpcall(fsm.apply, fsm_handler, fsm, cmd, index,
                              { index = index, term = term, time_ms = time_ms })
    if not ok then
        local msg = format("fsm apply at index %d (term %d) failed: %s", index, term,
                           result.message)
        return false, msg, result.traceback:sub(#result.message + 1)
    end
    local t = type(result)
    if t ~= "string" and t ~= "number" and t ~= "boolean" and t ~= "nil" then
        mp_check = mp_check or require("helios.core").mp_check
        local good, why = mp_check(result)
        if not good then
            local msg = format("fsm apply at index %d (term %d) failed: its result cannot be "
                               .. "sent to a client (%s); the command was applied", index, term,
                               (tostring(why):gsub("^mp_encode: ", "")
                                    :gsub("([ia][nt]) value", "%1 result")))
            return false, msg, ""
        end
    end
    return true, result
end

--- The message of a node that on_fsm_error = "stop" stopped at an entry: which entry, why,
-- and what to do.
function M.fsm_stop_message(id, msg)
    return format("%s; on_fsm_error = \"stop\": %s stopped at this entry. It is committed, so "
                  .. "every restart replays it and stops here again. To go on, fix the FSM's "
                  .. "apply, or set on_fsm_error = \"continue\" (the entry is then answered "
                  .. "with fsm_error and the node applies the next one)", msg, id)
end

--- Raise a Usage error unless v is nil or a value of ON_FSM_ERROR; return the value.
function M.check_on_fsm_error(v, where, level)
    if v == nil then
        return "continue"
    end
    if not M.ON_FSM_ERROR[v] then
        error(format("%s: on_fsm_error: must be \"continue\" or \"stop\" (got %s)", where,
                     M.describe_value(v)), level or 3)
    end
    return v
end

--- A new observer registry: one list of functions per event of EVENTS.
function M.observers()
    local o = {}
    for event in each(M.EVENTS) do
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

--- Shape a raw status into the documented status table.
-- raw: { role, term, leader (id or nil), vote, commit_index, first_index, last_index,
-- log_bytes, applied_index, snapshot_index, snapshot_term, snapshot_size, progress = { [i] = {id,
-- match, next, replicating, snapshotting, inflight} } } with ids already in the API's form,
-- or nil while the node is down (role "shutdown", zeros).
-- @tparam string id the node's id
-- @tparam table voters list of voter ids (the configuration)
-- @tparam[opt] function addr_of id -> address
-- @tparam[opt] table learners list of learner ids (peers with voter = false)
-- @treturn table id, role, term, leader, vote, commit_index, applied_index, first_index,
--   last_index, log_bytes (payload bytes of the entries held in memory; 0 where the backend
--   does not count them), snapshot_index, snapshot_term, snapshot_size (bytes; 0 without a
--   snapshot), peers = { [id] = {addr, match, next, voter} }
function M.shape_status(id, raw, voters, addr_of, learners)
    addr_of = addr_of or function(x) return x end
    local st = {
        id = id, role = "shutdown", term = 0, leader = nil, vote = nil,
        commit_index = 0, applied_index = 0, first_index = 0, last_index = 0, log_bytes = 0,
        snapshot_index = 0, snapshot_term = 0, snapshot_size = 0, peers = {},
    }
    local progress = {}
    if raw then
        st.role, st.term, st.leader, st.vote = raw.role, raw.term, raw.leader, raw.vote
        st.commit_index, st.applied_index = raw.commit_index, raw.applied_index
        st.first_index, st.last_index = raw.first_index, raw.last_index
        st.log_bytes = raw.log_bytes or 0
        st.snapshot_index = raw.snapshot_index or 0
        st.snapshot_term = raw.snapshot_term or 0
        st.snapshot_size = raw.snapshot_size or 0
        st.storage_error = raw.storage_error
        for _, p in ipairs(raw.progress or {}) do
            if p.id ~= nil then -- (a server whose name the node does not know yet)
                progress[p.id] = p
            end
        end
    end
    local all = {}
    for _, v in ipairs(voters) do all[#all + 1] = { v, true } end
    for _, v in ipairs(learners or {}) do all[#all + 1] = { v, false } end
    for _, pair in ipairs(all) do
        local v = pair[1]
        local p = progress[v]
        st.peers[v] = {
            addr = addr_of(v), voter = pair[2],
            match = p and p.match or 0, next = p and p.next or 0,
            replicating = p and p.replicating or nil, inflight = p and p.inflight or nil,
            snapshotting = p and p.snapshotting or nil,
            -- leader only: ms since this peer last answered (its status is the place to
            -- see how far behind a follower is in time; helios status shows it)
            last_contact_ms = p and p.last_contact_ms or nil,
        }
    end
    return st
end

--- The node class. Instances are made by wrap(backend, id).
local node_class = { __name = "helios.node.node" }
node_class.__index = node_class
M.node_class = node_class

--- A node object for id over backend (see the module comment for the contract).
function M.wrap(backend, id)
    return setmetatable({ id = id, _backend = backend, _observers = M.observers() },
                        node_class)
end

function node_class.__tostring(self)
    local role, term = self._backend:_node_state(self.id)
    return format("helios.node %s (%s, term %s)", self.id, role or "shutdown",
                  tostring(term or 0))
end

--- The node's term and whether it believes it leads.
-- @treturn number term (0 while the node is down)
-- @treturn boolean whether this node believes it is the leader
function node_class:state()
    local role, term = self._backend:_node_state(self.id)
    return term or 0, role == M.ROLES.LEADER
end

--- Append cmd to the leader's log and return at once; the outcome is seen by observers
-- and the FSM (node:apply waits for it).
-- @tparam string cmd
-- @treturn number index
-- @treturn number term
-- @return or nil, "not_leader", leader_id (nil if unknown); nil, "shutdown" while down
function node_class:propose(cmd)
    M.check_command(cmd, "node:propose(cmd)")
    return self._backend:_propose(self.id, cmd)
end

-- A callback: a function, or a table its metatable's __call makes callable (a request
-- object that carries its own state, where a closure per call would be garbage).
local function callable(f)
    if type(f) == "function" then return true end
    local mt = type(f) == "table" and getmetatable(f)
    return mt and type(mt.__call) == "function" or false
end

-- node:apply in a coroutine: block it until the outcome. (A function of its own: a closure
-- made in node:apply would leave it with upvalues to close on every return, which LuaJIT
-- does not compile: the callback form, one call per client request, ran interpreted.)
local function apply_blocking(backend, id, cmd, timeout_ms)
    return require("helios.loop").block(function(cb)
        local index, term, detail = backend:_propose(id, cmd)
        if not index then
            return cb(nil, term, detail)
        end
        backend:_wait(id, index, term, timeout_ms, cb)
    end)
end

--- Propose cmd and return (or call back) once this node has applied it.
-- Inside a coroutine on the loop of a networked node (loop.spawn, raft.spawn), the call
-- yields the coroutine until the outcome and returns the values; otherwise it takes a
-- trailing callback that receives them. The values are index, term, result (what fsm:apply returned), or nil, code,
-- detail: "not_leader" (not the leader, detail = leader id and address if known; or the
-- entry was overwritten by another leader), "timeout" (the entry may still commit later),
-- "shutdown" (the node went down), "too_large", "no_space" (the node's storage failed),
-- "fsm_error" (the entry was committed and applied, and fsm:apply raised or returned what
-- a client cannot receive: detail "fsm apply at index I (term T) failed: ..."; whatever
-- the command changed before it raised stays changed, the same on every replica; do not
-- retry it as if it had not happened).
-- A failed proposal completes at once.
-- @tparam string cmd
-- @tparam[opt] number timeout_ms default DEFAULT_APPLY_TIMEOUT_MS; a fraction is
--   rounded up to the next millisecond
-- @tparam[opt] function callback required outside a coroutine (or a table callable
--   through its metatable's __call)
-- @usage local index, term, result = node:apply("set x 1", 1000)
-- @usage node:apply("set x 1", 1000, function(index, term, result) ... end)
function node_class:apply(cmd, timeout_ms, callback)
    local usage = "node:apply(cmd[, timeout_ms][, callback])"
    if callback == nil and type(timeout_ms) == "function" then
        timeout_ms, callback = nil, timeout_ms
    end
    M.check_command(cmd, usage)
    timeout_ms = M.check_timeout(timeout_ms, usage)
    local backend, id = self._backend, self.id
    if callback == nil and backend._blocking and isyieldable() then
        return apply_blocking(backend, id, cmd, timeout_ms)
    end
    if not callable(callback) then
        error("Usage: " .. usage .. ": a callback is required outside a coroutine (in the "
              .. "simulator, apply completes while virtual time runs)", 2)
    end
    local index, term, detail = backend:_propose(id, cmd)
    if not index then
        callback(nil, term, detail)
        return
    end
    backend:_wait(id, index, term, timeout_ms, callback)
end

-- Run start(cb) and hand its outcome back: blocking the calling coroutine on a networked
-- node's loop (loop.block, as node:apply does) when no callback is given, else through
-- the callback. Returns what a blocked call returns (nothing with a callback).
local function run_op(backend, callback, usage, start)
    if callback == nil and backend._blocking and isyieldable() then
        return require("helios.loop").block(start)
    end
    if type(callback) ~= "function" then
        error("Usage: " .. usage .. ": a callback is required outside a coroutine on the "
              .. "loop (in the simulator, the operation completes while virtual time runs)", 3)
    end
    start(callback)
end

-- The options and callback of add_peer / remove_peer: opts, callback.
local function peer_args(opts, callback, usage)
    if callback == nil and type(opts) == "function" then
        opts, callback = nil, opts
    end
    if opts ~= nil and type(opts) ~= "table" then
        error("Usage: " .. usage .. ": opts must be a table", 3)
    end
    if callback ~= nil and type(callback) ~= "function" then
        error("Usage: " .. usage .. ": the callback must be a function", 3)
    end
    return opts or {}, callback
end

--- Add server id (at address addr) to the cluster, on the leader: it joins as a learner
-- and, unless opts.voter is false, the leader promotes it to voter once it has caught up
-- (csrc/core/membership.c). The outcome is true once the configuration that makes it what
-- was asked has committed, or nil, code, detail: "not_leader" (detail: the leader's id,
-- if known; also when leadership is lost before the change completes), "busy" (a change
-- is in progress, or the leader has not committed an entry of its term yet: try again;
-- a networked node tries again itself until the timeout),
-- "invalid" (already a voter, ...), "timeout" (opts.timeout_ms, virtual ms in the
-- simulator, default DEFAULT_APPLY_TIMEOUT_MS), "shutdown".
-- A networked node (helios.raft) called in a coroutine on the loop without a callback
-- blocks the coroutine and returns the outcome; otherwise a trailing callback gets it.
-- Before node:start() on a networked node whose data dir is empty, the server is added to
-- the bootstrap configuration instead (true at once, no callback needed); on one that
-- already has a log that is an error ("invalid") that says so.
-- @usage local ok, code, detail = node:add_peer("node-4", "127.0.0.1:9004")
-- @usage node:add_peer("n4", "4", function(ok, code) ... end)   -- the simulator
function node_class:add_peer(id, addr, opts, callback)
    local usage = "node:add_peer(id, addr[, { voter = false, timeout_ms = N }][, callback])"
    opts, callback = peer_args(opts, callback, usage)
    if type(id) ~= "string" or type(addr) ~= "string" then
        error("Usage: " .. usage .. ": id and addr must be strings", 2)
    end
    local timeout_ms = M.check_timeout(opts.timeout_ms, usage)
    local b, me = self._backend, self.id
    if not b._add_peer then
        error("Usage: " .. usage .. ": this node's backend has no membership changes", 2)
    end
    if b._bootstrap_peer then
        -- Not started yet: the bootstrap configuration (nil when the node has started).
        local r = { b:_bootstrap_peer(me, id, addr, opts.voter ~= false) }
        if r[1] ~= nil or r[2] ~= nil then
            if callback then
                return callback(r[1], r[2], r[3])
            end
            return r[1], r[2], r[3]
        end
    end
    return run_op(b, callback, usage, function(cb)
        b:_add_peer(me, id, addr, opts.voter ~= false, timeout_ms, cb)
    end)
end

--- Remove server id (a voter or a learner) from the cluster, on the leader; outcome as for
-- add_peer (blocking in a coroutine on a networked node's loop, else a trailing
-- callback). A leader that removes itself steps down once the change commits; a removed
-- server learns it is out (status().role == "removed") and stops campaigning.
function node_class:remove_peer(id, opts, callback)
    local usage = "node:remove_peer(id[, { timeout_ms = N }][, callback])"
    opts, callback = peer_args(opts, callback, usage)
    if type(id) ~= "string" then
        error("Usage: " .. usage .. ": id must be a string", 2)
    end
    local timeout_ms = M.check_timeout(opts.timeout_ms, usage)
    local b, me = self._backend, self.id
    if not b._remove_peer then
        error("Usage: " .. usage .. ": this node's backend has no membership changes", 2)
    end
    return run_op(b, callback, usage, function(cb)
        b:_remove_peer(me, id, timeout_ms, cb)
    end)
end

--- A linearizable read (ReadIndex, csrc/core/read.c): fn(fsm, ctx) runs once this node's
-- FSM has applied every write acknowledged before the call, and the outcome is fn's results,
-- or nil, code, detail: "not_leader", "timeout", "shutdown", "read_error" (fn raised).
-- ctx.time_ms is the leader's clock (the one it stamps entries with) when it fixed the
-- read's index (nil: unknown): judge state that depends on time (TTLs) against it, and every
-- replica answers alike. (fn's first result nil reads as a failure: return something else
-- first when nil is a value.) Blocks the calling coroutine on a networked node's loop without a callback,
-- else a trailing callback as for node:apply.
-- @usage local v = node:read(function(fsm) return fsm:get("k") end, 1000)
-- @usage node:read(function(fsm) return fsm:get("k") end, 1000, function(v) ... end)
function node_class:read(fn, timeout_ms, callback)
    local usage = "node:read(fn[, timeout_ms][, callback])"
    if callback == nil and type(timeout_ms) == "function" then
        timeout_ms, callback = nil, timeout_ms
    end
    if type(fn) ~= "function" or (callback ~= nil and type(callback) ~= "function") then
        error("Usage: " .. usage, 2)
    end
    timeout_ms = M.check_timeout(timeout_ms, usage)
    local b, me = self._backend, self.id
    if not b._read then
        error("node:read: not supported by this node's backend", 2)
    end
    return run_op(b, callback, usage, function(cb)
        b:_read(me, fn, timeout_ms, cb)
    end)
end

--- fn(fsm) on this node's local state at once: may be stale (a deposed leader, a lagging
-- follower). Returns fn's results (nil, "shutdown", detail while the node is down).
function node_class:read_stale(fn)
    if type(fn) ~= "function" then
        error("Usage: node:read_stale(fn)", 2)
    end
    if not self._backend._read_stale then
        error("node:read_stale: not supported by this node's backend", 2)
    end
    return self._backend:_read_stale(self.id, fn)
end

--- Hand leadership to target (nil: the most up-to-date voter). The outcome is the new
-- leader's id, or nil, code, detail: "not_leader", "busy" (a transfer is under way),
-- "invalid", "timeout" (the target did not take over within an election timeout; this
-- node leads on). Proposals get "busy" meanwhile. Blocks the calling coroutine on a
-- networked node's loop without a callback, else a trailing callback.
-- @usage local new_leader, code = node:transfer_leadership("node-2")
function node_class:transfer_leadership(target, callback)
    local usage = "node:transfer_leadership([id][, callback])"
    if callback == nil and type(target) == "function" then
        target, callback = nil, target
    end
    if (target ~= nil and type(target) ~= "string")
        or (callback ~= nil and type(callback) ~= "function") then
        error("Usage: " .. usage, 2)
    end
    local b, me = self._backend, self.id
    if not b._transfer then
        error("node:transfer_leadership: not supported by this node's backend", 2)
    end
    return run_op(b, callback, usage, function(cb)
        b:_transfer(me, target, cb)
    end)
end

--- The documented status table (role "shutdown" and zeros while the node is down). A node
-- that on_fsm_error = "stop" stopped has fsm_error: the message naming the entry.
-- A node that knows it is out of the configuration (the removal committed) shows role
-- "removed" (raw.removed), and st.configuration is the configuration it uses: { index (of
-- its config entry; 0: the bootstrap one), committed, voters = { ids }, learners = { ids },
-- promoting (the learner the leader waits to promote, or nil) }. Each peer of st.peers
-- has learner = true for a learner, and caught_up (the leader's view: within an election
-- timeout of its log; false on other nodes).
function node_class:status()
    local b = self._backend
    local addr_of = b._addr_of and function(x) return b:_addr_of(x) end
    local voters, learners = b:_voters(self.id)
    local raw = b:_status(self.id)
    local st = M.shape_status(self.id, raw, voters, addr_of, learners)
    if raw and raw.removed then
        st.role, st.removed = "removed", true
    end
    local conf = b._configuration and b:_configuration(self.id)
    if conf then
        st.configuration = { index = conf.index, committed = conf.committed,
                             promoting = conf.promoting, voters = {}, learners = {} }
        for _, sv in ipairs(conf.servers or {}) do
            local list = sv.voter and st.configuration.voters or st.configuration.learners
            list[#list + 1] = sv.id
            local p = st.peers[sv.id]
            if p then
                p.caught_up = sv.caught_up or false
                if sv.match and sv.match > p.match then
                    p.match = sv.match
                end
            end
        end
    end
    for _, p in each(st.peers) do
        p.learner = not p.voter or nil
    end
    st.fsm_error = b._fsm_stopped_message and b:_fsm_stopped_message(self.id) or nil
    return st
end

--- The configuration this node uses (st.configuration of node:status()), or nil while
-- the node is down or where the backend has none.
function node_class:configuration()
    return self:status().configuration
end

--- Start the node (networked nodes): open and lock the data dir, recover, listen, and
-- take part in the cluster once raft.run() runs the loop.
-- @return true, or nil, code, detail ("busy": the data dir is locked by another process,
--   detail names its pid, or by another node of this process, detail says so; "io",
--   "corrupt": damaged data, detail names the file and offset (README, "When a node's
--   data is damaged"); "invalid" ...); the node is then closed.
function node_class:start()
    if not self._backend._start then
        error("Usage: node:start(): this node is started by its cluster", 2)
    end
    return self._backend:_start(self.id)
end

--- Shut the node down: waiting applies fail with "shutdown", the control socket closes,
-- storage and transport close and the data-dir lock is released; then cb (optional) runs
-- from the loop. raft.run() returns once every started node has shut down.
-- @treturn boolean false if it was already shut down
function node_class:shutdown(cb)
    if not self._backend._shutdown then
        error("Usage: node:shutdown(): use the cluster's crash/close", 2)
    end
    if cb ~= nil and type(cb) ~= "function" then
        error("Usage: node:shutdown([callback])", 2)
    end
    return self._backend:_shutdown(self.id, cb)
end

--- Take a snapshot of the FSM now (besides the automatic ones of snapshot_threshold).
-- The write completes later: node:on("snapshot", fn) fires once it is durable.
-- @treturn number the index the snapshot covers (if nothing was applied since the last
--   snapshot, that one's index: nothing new is written)
-- @return or nil, code, detail: "busy" (a snapshot is being written), "invalid" (nothing
--   applied yet), "shutdown" (the node is down)
function node_class:snapshot()
    local b = self._backend
    if not b._snapshot then
        error("Usage: node:snapshot(): this node's backend does not take snapshots on "
              .. "demand yet (the simulator's nodes do)", 2)
    end
    return b:_snapshot(self.id)
end

--- Counters: batches/fsyncs, entries_written, msgs_sent (and msgs_sent_by_type),
-- bytes_sent, msgs_received, state_changes, elections, applied, fsm_errors (entries whose
-- fsm:apply raised or returned an unencodable result). Those of the current incarnation;
-- nil while the node is down.
function node_class:stats()
    return self._backend:_stats(self.id)
end

--- Register an observer of an event of EVENTS: "state" (role, term), "leader"
-- (leader_id, term), "apply" (index, term, cmd), "snapshot" (index, term: a snapshot became
-- durable, taken by this node or installed from the leader), "error" (code, message),
-- "log" (level, message[, event name, fields]). Returns fn (a handle for node:off).
function node_class:on(event, fn)
    if not M.EVENTS[event] or type(fn) ~= "function" then
        error(format("Usage: node:on(event, fn): event is one of state, leader, apply, "
                     .. "snapshot, error, log (got %s) and fn a function", tostring(event)), 2)
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
