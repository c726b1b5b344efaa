--- helios.raft: one Raft node.
--
--   local raft = require("helios.raft")
--   local node = raft.new{ id = "node-1", listen = "127.0.0.1:9001", data_dir = "./data/1",
--                          peers = { ["node-1"] = "127.0.0.1:9001", ... }, fsm = my_fsm,
--                          secret = "cluster secret" }
--   node:start()
--   raft.spawn(function()
--       local index, term, result = node:apply("cmd", 1000)  -- blocks this coroutine
--   end)
--   raft.run()   -- until every node has shut down (or raft.stop())
--
-- `raft.new{...}` is the networked node (csrc/node/runtime.c: durable storage, TCP
-- transport, timers on the libuv loop of helios.core). Its node object is the same class
-- as the simulator's nodes (helios.sim): the node class here has the documented API (state,
-- propose, apply, status, stats, on) over a backend that does the work:
--
--   local node = raft.wrap(backend, "n1")
--   local term, is_leader = node:state()
--   local index, term = node:propose("cmd")        -- or nil, "not_leader", leader_id
--   node:apply("cmd", 1000, function(index, term, result) end)  -- or (nil, code, detail)
--   node:on("leader", function(leader_id, term) end)
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
-- The backend interface (every method takes the node id first):
--   backend:_node_state(id)            -> role, term, leader_id (nil while down)
--   backend:_propose(id, cmd)          -> index, term | nil, code, detail
--   backend:_wait(id, index, term, timeout_ms, cb)
--                                      -- cb(index, term, result) once applied, or
--                                      -- cb(nil, code, detail)
--   backend:_status(id)                -> a raw status table (see raft.shape_status), or nil
--   backend:_stats(id)                 -> counters table, or nil while down
--   backend:_voters(id)                -> list of voter ids
--   optional: backend:_addr_of(id), backend:_start(id), backend:_shutdown(id, cb),
--   backend:_snapshot(id) -> index | nil, code, detail (node:snapshot), and
--   backend._blocking = true when apply may block a coroutine (the real loop runs it)

local type, error, format, pairs, ipairs, tostring = type, error, string.format, pairs, ipairs, tostring
local setmetatable, floor, ceil, huge = setmetatable, math.floor, math.ceil, math.huge
local tremove, sort = table.remove, table.sort
local select, pcall, xpcall, require, tonumber = select, pcall, xpcall, require, tonumber
local running, yield, isyieldable = coroutine.running, coroutine.yield, coroutine.isyieldable
local co_create, co_resume, traceback = coroutine.create, coroutine.resume, debug.traceback
local io_open = io.open
local unpack = unpack or table.unpack

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
-- note starting "recovery: ").
M.EVENTS = { state = true, leader = true, apply = true, snapshot = true, error = true,
             log = true }

--- Timeout of node:apply and c:apply when none is given, in milliseconds.
M.DEFAULT_APPLY_TIMEOUT_MS = 5000

--- Values of the option on_fsm_error: what a node does when fsm:apply raises.
-- "continue" (the default): answer the entry with fsm_error and apply the next one.
-- "stop": stop the node at that entry (networked node: it shuts down; simulated node: it
-- is crashed), and again at every restart until the FSM is fixed or the option changed.
M.ON_FSM_ERROR = { continue = true, stop = true }


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

--- Raise a Usage error unless v is nil or a value of raft.ON_FSM_ERROR; return the value.
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

--- Shape a raw status into the documented status table.
-- raw: { role, term, leader (id or nil), vote, commit_index, first_index, last_index,
-- applied_index, snapshot_index, snapshot_term, snapshot_size, progress = { [i] = {id,
-- match, next, replicating, snapshotting, inflight} } } with ids already in the API's form,
-- or nil while the node is down (role "shutdown", zeros).
-- @tparam string id the node's id
-- @tparam table voters list of voter ids (the configuration)
-- @treturn table id, role, term, leader, vote, commit_index, applied_index, first_index,
--   last_index, snapshot_index, snapshot_term, snapshot_size (bytes; 0 without a snapshot),
--   peers = { [id] = {addr, match, next, voter} }
function M.shape_status(id, raw, voters, addr_of)
    addr_of = addr_of or function(x) return x end
    local st = {
        id = id, role = "shutdown", term = 0, leader = nil, vote = nil,
        commit_index = 0, applied_index = 0, first_index = 0, last_index = 0,
        snapshot_index = 0, snapshot_term = 0, snapshot_size = 0, peers = {},
    }
    local progress = {}
    if raw then
        st.role, st.term, st.leader, st.vote = raw.role, raw.term, raw.leader, raw.vote
        st.commit_index, st.applied_index = raw.commit_index, raw.applied_index
        st.first_index, st.last_index = raw.first_index, raw.last_index
        st.snapshot_index = raw.snapshot_index or 0
        st.snapshot_term = raw.snapshot_term or 0
        st.snapshot_size = raw.snapshot_size or 0
        st.storage_error = raw.storage_error
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
            snapshotting = p and p.snapshotting or nil,
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

-- Run start(cb) and block the running coroutine until cb is called; return cb's
-- arguments. cb may also be called before start returns.
local function block(start)
    local co = running()
    local result, yielded = nil, false
    start(function(...)
        if yielded then
            M._resume(co, ...)
        else
            result = { n = select("#", ...), ... }
        end
    end)
    if result then
        return unpack(result, 1, result.n)
    end
    yielded = true
    return yield()
end

--- Propose cmd and return (or call back) once this node has applied it.
-- Inside a coroutine on the loop of a networked node (raft.spawn), the call blocks the
-- coroutine and returns the values; otherwise it takes a trailing callback that receives
-- them. The values are index, term, result (what fsm:apply returned), or nil, code,
-- detail: "not_leader" (not the leader, detail = leader id and address if known; or the
-- entry was overwritten by another leader), "timeout" (the entry may still commit later),
-- "shutdown" (the node went down), "too_large", "no_space" (the node's storage failed),
-- "fsm_error" (the entry was committed and applied, and fsm:apply raised or returned what
-- a client cannot receive: detail "fsm apply at index I (term T) failed: ..."; whatever
-- the command changed before it raised stays changed, the same on every replica; do not
-- retry it as if it had not happened).
-- A failed proposal completes at once.
-- @tparam string cmd
-- @tparam[opt] number timeout_ms default raft.DEFAULT_APPLY_TIMEOUT_MS; a fraction is
--   rounded up to the next millisecond
-- @tparam[opt] function callback required outside a coroutine
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
        return block(function(cb)
            local index, term, detail = backend:_propose(id, cmd)
            if not index then
                return cb(nil, term, detail)
            end
            backend:_wait(id, index, term, timeout_ms, cb)
        end)
    end
    if type(callback) ~= "function" then
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

--- The documented status table (role "shutdown" and zeros while the node is down). A node
-- that on_fsm_error = "stop" stopped has fsm_error: the message naming the entry.
function node_class:status()
    local b = self._backend
    local addr_of = b._addr_of and function(x) return b:_addr_of(x) end
    local st = M.shape_status(self.id, b:_status(self.id), b:_voters(self.id), addr_of)
    st.fsm_error = b._fsm_stopped_message and b:_fsm_stopped_message(self.id) or nil
    return st
end

--- Start the node (networked nodes): open and lock the data dir, recover, listen, and
-- take part in the cluster once raft.run() runs the loop.
-- @return true, or nil, code, detail ("busy": the data dir is locked by another process,
--   detail names its pid, or by another node of this process, detail says so; "io",
--   "corrupt": damaged data, detail names the file and offset (README, "When a node's
--   data is damaged"); "inval" ...); the node is then closed.
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
-- @return or nil, code, detail: "busy" (a snapshot is being written), "inval" (nothing
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

--- Register an observer of an event of raft.EVENTS: "state" (role, term), "leader"
-- (leader_id, term), "apply" (index, term, cmd), "snapshot" (index, term: a snapshot became
-- durable, taken by this node or installed from the leader), "error" (code, message),
-- "log" (level, message). Returns fn (a handle for node:off).
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

-- ---------------------------------------------------------------------------------------
-- The loop: one libuv loop per Lua state (helios.core), shared by every node, timer and
-- control socket of the process.

local core_mod
local function core()
    core_mod = core_mod or require("helios.core")
    return core_mod
end

-- Nodes started and not yet shut down: raft.run() returns when the count drops to 0.
local live_nodes = 0

--- Resume co with the arguments; an error inside it stops raft.run() (which returns it)
-- instead of unwinding into whatever loop callback resumed it.
function M._resume(co, ...)
    local ok, err = co_resume(co, ...)
    if not ok then
        core().fail(traceback(co, tostring(err)))
    end
end

-- Call fn(...) for a loop callback that must not fail the caller (observers, apply
-- callbacks): an error stops raft.run() with its traceback.
local function protect(fn, ...)
    local ok, err = xpcall(fn, traceback, ...)
    if not ok then
        core().fail(tostring(err))
    end
end

--- Run the loop until every started node has shut down, or raft.stop().
-- @return true, or nil and the first error a Lua callback (FSM, observer, timer, spawned
--   coroutine) raised; the nodes keep their state and raft.run() may be called again.
function M.run()
    if core().running() then
        error("Usage: raft.run(): the loop is already running (called from a callback?)", 2)
    end
    local ok, err = core().run("default")
    if not ok then
        return nil, err
    end
    return true
end

--- Make raft.run() return at the end of the current loop turn.
function M.stop()
    core().stop()
end

--- The loop's clock, in milliseconds (monotonic; its origin is arbitrary).
function M.now()
    return core().now()
end

local function check_ms(ms, usage, positive)
    if type(ms) ~= "number" or ms < 0 or ms ~= floor(ms) or (positive and ms == 0) then
        error(format("Usage: %s: ms must be a %s integer (got %s)", usage,
                     positive and "positive" or "non-negative", tostring(ms)), 3)
    end
end

--- Call fn once after ms milliseconds. Returns a timer with :stop().
function M.after(ms, fn)
    check_ms(ms, "raft.after(ms, fn)")
    if type(fn) ~= "function" then
        error("Usage: raft.after(ms, fn): fn must be a function", 2)
    end
    return core().timer(ms, 0, fn)
end

--- Call fn every ms milliseconds (first after ms). Returns a timer with :stop().
function M.every(ms, fn)
    check_ms(ms, "raft.every(ms, fn)", true)
    if type(fn) ~= "function" then
        error("Usage: raft.every(ms, fn): fn must be a function", 2)
    end
    return core().timer(ms, ms, fn)
end

--- Run fn(...) in a new coroutine on the loop (it starts at the next loop turn); blocking
-- calls (node:apply, raft.sleep) work inside. An error in it makes raft.run() return
-- nil and the error. Returns the coroutine.
function M.spawn(fn, ...)
    if type(fn) ~= "function" then
        error("Usage: raft.spawn(fn, ...): fn must be a function", 2)
    end
    local co = co_create(fn)
    local args = { n = select("#", ...), ... }
    core().timer(0, 0, function()
        M._resume(co, unpack(args, 1, args.n))
    end)
    return co
end

--- Inside a coroutine on the loop: let the loop run for ms milliseconds, then resume.
function M.sleep(ms)
    check_ms(ms, "raft.sleep(ms)")
    if not isyieldable() then
        error("Usage: raft.sleep(ms): only inside a coroutine on the loop (raft.spawn)", 2)
    end
    local co = running()
    core().timer(ms, 0, function() M._resume(co) end)
    yield()
end

-- ---------------------------------------------------------------------------------------
-- raft.new: the networked node, a backend of the node class.

--- Commands larger than this are refused with "too_large" (they must fit a frame).
M.MAX_COMMAND_BYTES = 16 * 1024 * 1024

-- Options of raft.new and how to check them: "posint", "nonneg", "bool", or a function.
local INT_OPTIONS = {
    heartbeat_timeout_ms = "posint", election_timeout_ms = "posint",
    snapshot_interval_ms = "posint", snapshot_threshold = "posint", trailing_logs = "nonneg",
    snapshot_chunk_bytes = "posint",
    max_entries_per_append = "posint", max_append_bytes = "posint", max_inflight = "posint",
    prevote = "bool", check_quorum = "bool",
}
-- Those the core reads (the others belong to later issues: accepted, not used yet).
local CORE_OPTIONS = {
    heartbeat_timeout_ms = true, election_timeout_ms = true, max_entries_per_append = true,
    max_append_bytes = true, max_inflight = true, prevote = true, check_quorum = true,
}
-- fs: the file system of the data dir, for tests only: a fault-injecting one of
-- helios.testkit (fault_fs_new), checked by core.node_new; absent: the real one.
local OTHER_OPTIONS = {
    id = true, listen = true, data_dir = true, peers = true, fsm = true, secret = true,
    secret_file = true, control = true, cluster_id = true, on_fsm_error = true, fs = true,
}

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

-- An option error: raised as a table by the checks below, caught by raft.new, which raises
-- "raft.new: <field>: <what is wrong>" at its caller's level (never a position in here).
local function option_error(field, msg)
    error({ option_error = format("%s: %s", field, msg) }, 0)
end

local function bad(field, what, got)
    option_error(field, format("must be %s%s", what,
                               got ~= nil and format(" (got %s)", M.describe_value(got)) or ""))
end

--- What is wrong with a node address, or nil if it is one: "host:port" with a port in
-- 1..65535 and a host that is a numeric IPv4 address, a bracketed IPv6 address or
-- localhost. Host names are not resolved (the transport connects from its event loop,
-- which has no resolver), so "db1.example:9001" is refused here rather than at start.
-- @treturn string|nil e.g. "must be host:port"
function M.address_problem(addr)
    if type(addr) ~= "string" then
        return "must be a string \"host:port\""
    end
    local host, port = addr:match("^(.+):(%d+)$")
    if not host then
        return "must be host:port"
    end
    port = tonumber(port)
    if port < 1 or port > 65535 then
        return "must be host:port with a port from 1 to 65535"
    end
    if host == "localhost" or host:match("^%[[%x:.]*:[%x:.]*%]$") then
        return nil
    end
    local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if a and tonumber(a) <= 255 and tonumber(b) <= 255 and tonumber(c) <= 255
        and tonumber(d) <= 255 then
        return nil
    end
    return "must have a numeric IPv4 host, [IPv6] or localhost (host names are not resolved)"
end

local function read_secret_file(path)
    local f, err = io_open(path, "rb")
    if not f then
        option_error("secret_file", tostring(err))
    end
    local s = f:read("*a")
    f:close()
    s = s:gsub("\r?\n$", "")
    if s == "" then
        option_error("secret_file", format("%s is empty", path))
    end
    return s
end

-- Check every option (errors name the field: see option_error) and return the table for
-- core.node_new.
local function check_options(o)
    for k in pairs(o) do
        if not INT_OPTIONS[k] and not OTHER_OPTIONS[k] then
            option_error(type(k) == "string" and k or format("[%s]", tostring(k)),
                         "unknown option")
        end
    end
    for k, kind in pairs(INT_OPTIONS) do
        local v = o[k]
        if v ~= nil then
            if kind == "bool" then
                if type(v) ~= "boolean" then bad(k, "a boolean", v) end
            elseif type(v) ~= "number" or v ~= floor(v) or v < 0 or v > 2 ^ 31
                or (kind == "posint" and v == 0) then
                bad(k, kind == "posint" and "a positive integer" or "a non-negative integer", v)
            end
        end
    end
    if type(o.id) ~= "string" or o.id == "" then bad("id", "a non-empty string", o.id) end
    if type(o.data_dir) ~= "string" or o.data_dir == "" then
        bad("data_dir", "a non-empty string (a directory path)", o.data_dir)
    end
    if type(o.peers) ~= "table" then bad("peers", "a table { [id] = \"host:port\" }", o.peers) end
    local n = 0
    for pid, addr in pairs(o.peers) do
        if type(pid) ~= "string" or pid == "" then
            bad("peers", "keyed by node ids (non-empty strings)", pid)
        end
        local problem = M.address_problem(addr)
        if problem then
            option_error(format("peers[%q]", pid), format("address %s (got %s)", problem,
                                                          M.describe_value(addr)))
        end
        n = n + 1
    end
    if n == 0 then bad("peers", "a non-empty table { [id] = \"host:port\" }") end
    if o.peers[o.id] == nil then bad("peers", format("a table that includes this node (%q)", o.id)) end
    local problem = o.listen ~= nil and M.address_problem(o.listen)
    if problem then
        option_error("listen", format("address %s (got %s)", problem, M.describe_value(o.listen)))
    end
    local fsm = o.fsm
    if type(fsm) ~= "table" or type(fsm.apply) ~= "function" then
        bad("fsm", "a table with an apply method (and snapshot, restore)", fsm)
    end
    for _, m in ipairs({ "snapshot", "restore" }) do
        if fsm[m] ~= nil and type(fsm[m]) ~= "function" then bad("fsm." .. m, "a function", fsm[m]) end
    end
    local secret = o.secret
    if secret ~= nil and o.secret_file ~= nil then
        option_error("secret, secret_file", "give one of them, not both")
    end
    if o.secret_file ~= nil then
        if type(o.secret_file) ~= "string" then bad("secret_file", "a path", o.secret_file) end
        secret = read_secret_file(o.secret_file)
    end
    if type(secret) ~= "string" or secret == "" then
        -- Never the value itself: it is the cluster's secret.
        bad("secret", "a non-empty string (or give secret_file)" .. (secret == nil and ""
            or format(" (got %s)", secret == "" and "an empty string" or "a " .. type(secret))))
    end
    if o.control ~= nil and (type(o.control) ~= "string" or o.control == "") then
        bad("control", "a socket path", o.control)
    end
    if o.cluster_id ~= nil and (type(o.cluster_id) ~= "string" or o.cluster_id == "") then
        bad("cluster_id", "a non-empty string", o.cluster_id)
    end
    if o.on_fsm_error ~= nil and not M.ON_FSM_ERROR[o.on_fsm_error] then
        bad("on_fsm_error", "\"continue\" or \"stop\"", o.on_fsm_error)
    end
    local config = {}
    for k in pairs(CORE_OPTIONS) do
        config[k] = o[k]
    end
    local peers = {}
    for pid, addr in pairs(o.peers) do
        peers[pid] = addr
    end
    return {
        id = o.id, data_dir = o.data_dir, listen = o.listen or o.peers[o.id], peers = peers,
        secret = secret, cluster_id = o.cluster_id, config = config,
        trailing_logs = o.trailing_logs, snapshot_chunk_bytes = o.snapshot_chunk_bytes,
        fs = o.fs,
    }
end

local net = { __name = "helios.raft.net_backend" }
net.__index = net
net._blocking = true

-- Waiters: b._waiters[index] is a list of { term, cb, timer }.

-- Complete the waiters of index: those of `term` get (index, term, result), or (nil,
-- code, detail) when code is given (fsm_error); the others learn that their entry was
-- overwritten.
local function complete(b, index, term, result, code, detail)
    local list = b._waiters[index]
    if not list then
        return
    end
    b._waiters[index] = nil
    for _, w in ipairs(list) do
        w.timer:stop()
        if w.term == term and code then
            protect(w.cb, nil, code, detail)
        elseif w.term == term then
            protect(w.cb, index, term, result)
        else
            protect(w.cb, nil, "not_leader", format("index %d was overwritten by another leader",
                                                    index))
        end
    end
end

local function fail_all(b, code, detail)
    local indexes = {}
    for index in pairs(b._waiters) do
        indexes[#indexes + 1] = index
    end
    sort(indexes)
    for _, index in ipairs(indexes) do
        local list = b._waiters[index]
        b._waiters[index] = nil
        for _, w in ipairs(list) do
            w.timer:stop()
            protect(w.cb, nil, code, detail)
        end
    end
end

-- on_fsm_error = "stop": the node stops at entry (index, term). Its waiters learn why;
-- entries the runtime delivers after this one in the same turn are not applied (the
-- apply hook drops them), no snapshot is taken any more (the runtime counts those entries
-- as applied, the FSM does not hold them), and the node shuts down from the next loop
-- turn (not from inside the runtime's apply callback).
local function stop_on_fsm_error(b, index, term, msg, tb)
    local full = M.fsm_stop_message(b._id, msg)
    b._fsm_stopped = full
    complete(b, index, term, nil, "fsm_error", full)
    protect(b._node._emit, b._node, "error", "fsm_error", full .. tb)
    core().timer(0, 0, function()
        b:_shutdown()
    end)
end

local function make_hooks(b)
    local function apply(index, term, etype, cmd, time_ms)
        if etype ~= "command" then
            complete(b, index, -1) -- a waiter here was promised a command: overwritten
            return
        end
        if b._fsm_stopped then
            return
        end
        local ok, result, tb = M.apply_entry(b._fsm, cmd, index, term, time_ms)
        local node = b._node
        if not ok then
            b._fsm_errors = b._fsm_errors + 1
            if b._on_fsm_error == "stop" then
                return stop_on_fsm_error(b, index, term, result, tb)
            end
            protect(node._emit, node, "log", 2, format("%s (on %s: answered fsm_error, the "
                                                      .. "next entry goes on)%s", result,
                                                      b._id, tb))
        end
        if #node._observers.apply > 0 then
            protect(node._emit, node, "apply", index, term, cmd)
        end
        if ok then
            complete(b, index, term, result)
        else
            complete(b, index, term, nil, "fsm_error", result)
        end
    end

    local function state(role, term, leader)
        local last = b._last
        b._last = { role = role, term = term, leader = leader }
        local node = b._node
        if not last or last.role ~= role or last.term ~= term then
            protect(node._emit, node, "state", role, term)
        end
        -- A node starts knowing no leader: the first "leader" event is the first leader it
        -- learns of, never (nil, 0) at start.
        if (last and last.leader) ~= leader then
            protect(node._emit, node, "leader", leader, term)
        end
    end

    local function on_error(cname, msg)
        b._storage_error = cname and msg or nil
        protect(b._node._emit, b._node, "error", cname, msg)
    end

    local function log(level, msg)
        protect(b._node._emit, b._node, "log", level, msg)
    end

    -- A snapshot from the leader was installed: the FSM takes its state. If it cannot,
    -- the FSM's state is unknown: the node stops (whatever on_fsm_error says) rather than
    -- go on leading or voting with a state machine that applies nothing.
    local function restore(index, term)
        if b._fsm_stopped then
            return
        end
        local payload, code, detail = b._core:snapshot_read()
        local ok, err = payload ~= nil, format("cannot read it: %s %s", tostring(code),
                                               tostring(detail))
        if ok then
            ok, err = xpcall(b._fsm.restore, traceback, b._fsm, payload)
        end
        payload = nil -- luacheck: ignore (let the collector have it before observers run)
        if not ok then
            b._fsm_stopped = format("fsm restore of the snapshot through index %d (term %d) "
                                    .. "failed: %s. %s stopped; fix the FSM's restore and "
                                    .. "restart it", index, term, tostring(err), b._id)
            fail_all(b, "shutdown", b._fsm_stopped)
            protect(b._node._emit, b._node, "error", "fsm_error", b._fsm_stopped)
            core().timer(0, 0, function() b:_shutdown() end)
            return
        end
        protect(b._node._emit, b._node, "snapshot", index, term)
    end

    return { apply = apply, state = state, error = on_error, log = log, restore = restore }
end

-- Snapshots of a networked node. The FSM's state is serialized into a file by a forked
-- child (core.snapshot_fork: the child works on a copy-on-write image of the Lua state
-- while this process goes on serving heartbeats and commands), or in this process for an
-- FSM that says fsm.snapshot_fork = false. The file is framed (header, checksum, trailer)
-- by the C side's framer, then handed to the runtime, which renames it into place, tells
-- the core and compacts the log.

-- The function the writer runs (in the child): header, payload, trailer.
local function snapshot_body(fsm, framer)
    return function(w)
        w:write(framer:header())
        local writer = { write = function(_, ...)
            framer:feed(...)
            w:write(...)
        end }
        local bytes = fsm:snapshot(writer)
        if type(bytes) == "string" then
            framer:feed(bytes)
            w:write(bytes)
        elseif bytes ~= nil then
            error(format("fsm:snapshot() must return a string or nil (writer form), got %s",
                         type(bytes)))
        end
        w:write(framer:trailer())
    end
end

local function snapshot_done(b, index, term, tmp, ok, err)
    b._snapshotting = nil
    if ok then
        local taken, code, detail = b._core:snapshot_taken(index, term, tmp)
        if taken then
            protect(b._node._emit, b._node, "snapshot", index, term)
            return
        end
        if taken == nil then
            err = format("%s: %s", tostring(code), tostring(detail))
        else
            return -- superseded by an installed snapshot
        end
    else
        os.remove(tmp)
    end
    protect(b._node._emit, b._node, "log", 2, format("snapshot at index %d failed: %s",
                                                     index, tostring(err)))
end

-- Start a snapshot of what is applied. Returns its index, or the current snapshot's if
-- nothing new was applied; nil, code, detail on failure.
local function take_snapshot(b)
    if b._state ~= "running" or b._fsm_stopped then
        return nil, "shutdown", format("node %s is not running", b._id)
    end
    if b._snapshotting then
        return nil, "busy", format("a snapshot of index %d is being written",
                                   b._snapshotting.index)
    end
    local fsm = b._fsm
    if type(fsm.snapshot) ~= "function" then
        return nil, "inval", "the FSM has no snapshot method"
    end
    local index, term = b._core:snapshot_point()
    if not index then
        local st = b._core:status()
        if st and st.snapshot_index > 0 then
            return st.snapshot_index
        end
        return nil, "inval", "nothing applied yet"
    end
    local tmp = b._core:snapshot_tmp_path(index, term)
    local body = snapshot_body(fsm, b._core:snapshot_framer(index, term))
    local c = core()
    if fsm.snapshot_fork == false then
        local ok, err = c.snapshot_sync(tmp, body)
        snapshot_done(b, index, term, tmp, ok, err)
        return index
    end
    local job = { index = index }
    b._snapshotting = job
    local handle, code, detail = c.snapshot_fork(tmp, body, function(ok, err)
        if b._snapshotting == job then
            snapshot_done(b, index, term, tmp, ok, err)
        else
            os.remove(tmp)
        end
    end)
    if not handle then
        b._snapshotting = nil
        os.remove(tmp)
        return nil, code, detail
    end
    job.handle = handle
    return index
end

-- The automatic trigger: every snapshot_interval_ms, a snapshot if snapshot_threshold
-- entries were applied since the last one.
local function check_snapshot(b)
    if b._state ~= "running" or b._snapshotting or b._fsm_stopped then
        return
    end
    local index = b._core:snapshot_point()
    local st = index and b._core:status()
    if st and index - st.snapshot_index >= b._snapshot_threshold then
        take_snapshot(b)
    end
end

--- Create a networked node (not started: see node:start()). Options (README.md,
-- "Configuration"); every bad option raises "raft.new: <field>: <what is wrong> (got
-- <value as written>)" at the caller's line.
-- @tparam table opts id, listen (default peers[id]), data_dir, peers ({ [id] = addr },
--   this node included: the initial voters, used on first boot), fsm (apply, snapshot,
--   restore), secret or secret_file, control (optional: a unix socket path for the
--   control protocol), cluster_id (optional, default "helios"), on_fsm_error ("continue",
--   the default, or "stop": see the module comment), and the timeouts and limits of
--   README.md.
-- @return the node
function M.new(opts)
    if type(opts) ~= "table" then
        error("Usage: raft.new{ id = ..., listen = ..., data_dir = ..., peers = {...}, "
              .. "fsm = ..., secret = ... }", 2)
    end
    local checked, copts = pcall(check_options, opts)
    if not checked then
        if type(copts) == "table" and copts.option_error then
            error("raft.new: " .. copts.option_error, 2)
        end
        error(copts, 0)
    end
    local ids = {}
    for pid in pairs(copts.peers) do
        ids[#ids + 1] = pid
    end
    sort(ids)
    local b = setmetatable({
        _id = opts.id, _peers = copts.peers, _ids = ids, _fsm = opts.fsm, _waiters = {},
        _state = "new", _control_path = opts.control,
        _snapshot_interval_ms = opts.snapshot_interval_ms or 300000,
        _snapshot_threshold = opts.snapshot_threshold or 10000,
        _on_fsm_error = opts.on_fsm_error or "continue", _fsm_errors = 0,
    }, net)
    local node = M.wrap(b, opts.id)
    b._node = node
    local ok, cn = pcall(core().node_new, copts, make_hooks(b))
    if not ok then
        local msg = tostring(cn):gsub("^node_new: ", ""):gsub("^config: ", "")
        -- The core's checks say "<field> must ...": the same form as the checks above.
        local field = msg:match("^([%w_]+) must ")
        if field then
            msg = msg:gsub("^([%w_]+) must ", "%1: must ")
            if opts[field] ~= nil and not msg:find("(got ", 1, true) then
                msg = format("%s (got %s)", msg, M.describe_value(opts[field]))
            end
        end
        error("raft.new: " .. msg, 2)
    end
    b._core = cn
    return node
end

function net:_addr_of(id)
    return self._peers[id]
end

function net:_voters()
    return self._ids
end

function net:_node_state()
    if self._state ~= "running" then
        return nil
    end
    return self._core:state()
end

function net:_propose(_, cmd)
    if self._state ~= "running" then
        return nil, "shutdown", format("node %s is %s", self._id,
                                        self._state == "new" and "not started" or "shut down")
    end
    if self._fsm_stopped then
        return nil, "shutdown", self._fsm_stopped
    end
    if #cmd > M.MAX_COMMAND_BYTES then
        return nil, "too_large", format("command of %d bytes (at most %d)", #cmd,
                                        M.MAX_COMMAND_BYTES)
    end
    local index, term, detail = self._core:propose(cmd)
    if index then
        return index, term
    end
    local code = term
    if code == "not_leader" then
        local _, _, leader = self._core:state()
        if leader then
            return nil, code, format("%s at %s", leader, self._peers[leader])
        end
        return nil, code, nil
    end
    return nil, code, detail
end

function net:_wait(_, index, term, timeout_ms, cb)
    local list = self._waiters[index] or {}
    self._waiters[index] = list
    local w = { term = term, cb = cb }
    w.timer = core().timer(timeout_ms, 0, function()
        for i, x in ipairs(list) do
            if x == w then
                tremove(list, i)
                break
            end
        end
        if #list == 0 and self._waiters[index] == list then
            self._waiters[index] = nil
        end
        protect(cb, nil, "timeout", format("index %d not applied on %s within %d ms (it may "
                                           .. "still commit)", index, self._id, timeout_ms))
    end)
    list[#list + 1] = w
end

function net:_status()
    if self._state ~= "running" then
        return nil
    end
    return self._core:status()
end

function net:_snapshot()
    return take_snapshot(self)
end

function net:_stats()
    if self._state ~= "running" then
        return nil
    end
    local st = self._core:stats()
    st.fsm_errors = self._fsm_errors
    return st
end

function net:_fsm_stopped_message()
    return self._fsm_stopped
end

function net:_start()
    if self._state ~= "new" then
        error(format("Usage: node:start(): node %s was already started", self._id), 3)
    end
    local ok, code, detail = self._core:start()
    if not ok then
        self._state = "closed"
        return nil, code, detail
    end
    self._state = "running"
    live_nodes = live_nodes + 1
    -- What recovery did (a torn tail cut, a log reconciled with the snapshot, an interrupted
    -- truncation completed, the snapshot and log range read): one "log" event per note.
    for note in self._core:recovery_info():gmatch("[^\n]+") do
        protect(self._node._emit, self._node, "log", 0, "recovery: " .. note)
    end
    -- The newest snapshot first; the log after it follows through apply.
    local payload, sindex = self._core:snapshot_read()
    if payload then
        local rok, rerr = pcall(self._fsm.restore, self._fsm, payload)
        payload = nil -- luacheck: ignore
        if not rok then
            self:_shutdown()
            return nil, "corrupt", format("restore from the snapshot of index %d: %s",
                                          sindex, tostring(rerr))
        end
    end
    self._snapshot_timer = core().timer(self._snapshot_interval_ms, self._snapshot_interval_ms,
                                        function() check_snapshot(self) end)
    if self._control_path then
        local control = require("helios.control")
        local server, ccode, cdetail = control.serve(self._node, self._control_path)
        if not server then
            self:_shutdown()
            return nil, ccode, cdetail
        end
        self._control = server
    end
    return true
end

function net:_shutdown(_, cb)
    if self._state ~= "running" then
        if self._state == "new" then
            self._state = "closed"
            self._core:shutdown()
        end
        return false
    end
    self._state = "closing"
    if self._snapshot_timer then
        self._snapshot_timer:stop()
        self._snapshot_timer = nil
    end
    local job = self._snapshotting
    if job and job.handle and job.handle:running() then
        job.handle:kill() -- its done callback removes the file
    end
    if self._control then
        self._control:close()
        self._control = nil
    end
    fail_all(self, "shutdown", format("node %s shut down", self._id))
    self._core:shutdown(function()
        self._state = "closed"
        live_nodes = live_nodes - 1
        if live_nodes == 0 then
            core().stop()
        end
        if cb then
            protect(cb)
        end
    end)
    return true
end

return M
