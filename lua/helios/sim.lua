--- helios.sim: a whole Raft cluster in one process, on virtual time.
--
-- N nodes run the real node code (csrc/node over csrc/core) on a simulated network and
-- simulated disks; everything random comes from one seed, so a run replays exactly from
-- its seed. A node's disk is, by default, the production storage (csrc/storage: segments,
-- meta, snapshot files, the restart's reconciliation) over a crashing in-memory file
-- system; storage = "model" (or $HELIOS_SIM_STORAGE=model) picks the faster model of a
-- disk instead (csrc/sim/disk.h says what each is good for). Invariants (election safety, log matching, leader completeness, state machine
-- safety) are checked after every simulated step; a violation, or an error raised by an
-- observer or by an FSM's snapshot or restore, is raised by the call that ran the time
-- (run_for, run_until, apply, step) with the seed and the replay command. An error raised
-- by fsm:apply is the entry's result instead (fsm_error, see below).
--
--   local sim = require("helios.sim")
--   local c = sim.cluster{ n = 3, seed = 42, fsm = function(id) return MyFSM.new() end,
--                          config = { election_timeout_ms = 150 } }
--   assert(c:run_until(function() return c:leader() end, 5000))
--   local index, term, result = c:apply("set x 1", 1000)
--   c:crash(c:leader())
--
-- Node ids are "n1".."nN" (the C simulator numbers them 1..N; this module converts).
--
-- Snapshots are off unless config.snapshot_threshold is set (existing runs keep their
-- speed and their exact replay): then every config.snapshot_interval_ms (default 100 ms of
-- virtual time, not the production 300000: runs are short) a node whose FSM applied
-- snapshot_threshold entries since its last snapshot takes one (fsm:snapshot() -> bytes;
-- an FSM with snapshot_slices = true in slices, fsm:snapshot(w, yield), as a networked node
-- takes it: each yield() lets 1 to 3 ms of virtual time pass, with the entries applied in
-- it; docs/fork-snapshot.md, "In slices"), writes it to its simulated disk
-- (snapshot_latency_ms, default {5, 20}; a crash meanwhile loses it and the previous one
-- stays), and once it is durable drops its log before the config.trailing_logs (default
-- 10240) entries it keeps for followers a little behind.
-- config.snapshot_threshold_bytes (checked as entries are applied, staggered over the
-- initial voters as on networked nodes: docs/architecture.md, "Snapshots") and
-- config.trailing_logs_bytes add the byte limits of raft.new; both are off by default here.
-- node:snapshot() takes one at any time, with or without a threshold. A restarted node's
-- fresh FSM is restored from its snapshot (fsm:restore(bytes)) before the log after it
-- is applied. A follower that needs compacted entries gets the leader's snapshot in chunks
-- of snapshot_chunk_bytes (default 1024; config.snapshot_chunk_bytes as for raft.new, or
-- the cluster option, which wins) over the simulated network, with its faults.
-- node:on("snapshot", fn(index, term)) fires when a node's snapshot becomes durable, taken
-- by itself or installed from the leader. The invariant checker also checks snapshots:
-- each covers the committed entry at its index, and every snapshot of the same (index,
-- term) has the same bytes (FSMs must be deterministic, snapshots included).
--
-- FSM errors are results, as on a networked node (see helios.node): an fsm:apply that
-- raises (or returns what a client could not receive) answers its caller nil,
-- "fsm_error", "fsm apply at index I (term T) failed: ...", is logged once on the node
-- ("log" event, level 2), counted (c:stats(id).fsm_errors) and the node applies the next
-- entry. config.on_fsm_error = "stop" halts the node there instead: it is crashed at the
-- end of the current event ("error" event with code "fsm_error"; status().fsm_error names
-- the entry while it is down), and a restart replays the entry and halts again.

local core = require("helios.core")
local node_mod = require("helios.node")

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local type, error, format, tostring, tonumber, each, ipairs, setmetatable, select =
    type, error, string.format, tostring, tonumber, pairs, ipairs, setmetatable, select
local floor, huge, getenv, sort = math.floor, math.huge, os.getenv, table.sort
local unpack = unpack or table.unpack

local M = {}

local cluster = { __name = "helios.sim.cluster" }
cluster.__index = cluster

local CLUSTER_OPTIONS = {
    n = true, seed = true, fsm = true, config = true, network = true, disk_latency_ms = true,
    snapshot_latency_ms = true, snapshot_chunk_bytes = true, unsafe_install_keeps_log = true,
    storage = true, storage_crash = true, storage_faults = true, segment_size = true,
}

local USAGE = "Usage: sim.cluster{ n = N, seed = S, fsm = function(id) ... end, "
    .. "config = {...}, network = {...}, disk_latency_ms = {min, max}, "
    .. "snapshot_latency_ms = {min, max}, snapshot_chunk_bytes = B }"

-- An FSM for clusters created without one: applies nothing, returns nil, holds no state.
local null_fsm = {
    apply = function() return nil end,
    snapshot = function() return "" end,
    restore = function() end,
}

-- Raise a simulation failure: the message, then the seed and how to replay it.
local function fail(c, msg)
    local seed = format("%.0f", c._seed)
    error(format("%s\nsimulation seed %s; replay: HELIOS_SEED=%s", tostring(msg), seed, seed),
          0)
end

local function check_ms(ms, usage)
    if type(ms) ~= "number" or ms < 0 or ms ~= floor(ms) then
        error(format("Usage: %s: milliseconds must be a non-negative integer (got %s)",
                     usage, tostring(ms)), 3)
    end
end

-- The C id of an id, or raise "unknown node 'zz'".
local function num(c, id, level)
    local i = c._num[id]
    if not i then
        error(format("unknown node '%s'", tostring(id)), (level or 2) + 1)
    end
    return i
end

-- Waiters: c._waiters[id][index] is a list of { term, cb, deadline } (a list: after a
-- truncation, one node can hand out the same index twice, in different terms).

-- Complete the waiters of node id at index: those of `term` get (index, term, result),
-- the others learn that their entry was overwritten. With code (fsm_error), those of
-- `term` get (nil, code, detail) instead.
local function complete(c, id, index, term, result, code, detail)
    local list = c._waiters[id][index]
    if not list then
        return
    end
    c._waiters[id][index] = nil
    c._n_waiters = c._n_waiters - #list
    for _, w in ipairs(list) do
        if w.term == term and code then
            w.cb(nil, code, detail)
        elseif w.term == term then
            w.cb(index, term, result)
        else
            w.cb(nil, "not_leader", format("index %d was overwritten", index))
        end
    end
end

-- Fail every waiter of node id for which pick(w, index) is true with (nil, code,
-- detail(index)), in index order (deterministic).
local function fail_waiters(c, id, pick, code, detail)
    local ws = c._waiters[id]
    local indexes = {}
    for index in each(ws) do
        indexes[#indexes + 1] = index
    end
    sort(indexes)
    for _, index in ipairs(indexes) do
        local list, keep, failed = ws[index], {}, {}
        for _, w in ipairs(list) do
            if pick(w, index) then
                failed[#failed + 1] = w
            else
                keep[#keep + 1] = w
            end
        end
        ws[index] = #keep > 0 and keep or nil
        c._n_waiters = c._n_waiters - #failed
        for _, w in ipairs(failed) do
            w.cb(nil, code, detail(index))
        end
    end
end

-- The hooks the C simulator calls (with C ids); see csrc/lua/sim_hooks.c.
local function make_hooks(c, fsm_factory)
    local ids = c._ids

    -- on_fsm_error = "stop": node id halts at this entry (the apply hook returns true; the
    -- simulator crashes it once the event is done). Its waiters learn why now.
    local function halt(id, index, term, msg, tb)
        local full = node_mod.fsm_stop_message(id, msg)
        c._halted[id] = full
        complete(c, id, index, term, nil, "fsm_error", full)
        fail_waiters(c, id, function() return true end, "shutdown", function() return full end)
        c._nodes[id]:_emit("error", "fsm_error", full .. tb)
        return true
    end

    local function start(i)
        local id = ids[i]
        local fsm = null_fsm
        if fsm_factory then
            fsm = fsm_factory(id)
            if type(fsm) ~= "table" or type(fsm.apply) ~= "function" then
                error(format("fsm(%q) must return a table with an apply method (got %s)",
                             id, type(fsm)), 0)
            end
        end
        c._fsm[id] = fsm
        c._slicing[id] = nil -- (a snapshot in slices of the FSM before a crash is gone)
        c._applied[id] = {}
        c._last_state[id] = nil
        c._fsm_errors[id] = 0
        c._halted[id] = nil
    end

    local function apply(i, index, term, etype, cmd, time_ms)
        local id = ids[i]
        if etype ~= "command" then
            -- A waiter at this index was promised a command: it was overwritten.
            complete(c, id, index, -1)
            return
        end
        if c._halted[id] then
            return true -- entries after the one that halted it, in the same event
        end
        local ok, result, tb = node_mod.apply_entry(c._fsm[id], cmd, index, term, time_ms)
        local node = c._nodes[id]
        if not ok then
            c._fsm_errors[id] = c._fsm_errors[id] + 1
            if c._on_fsm_error == "stop" then
                return halt(id, index, term, result, tb)
            end
            node:_emit("log", 2, format("%s (on %s: answered fsm_error, the next entry goes "
                                        .. "on)%s", result, id, tb))
        end
        local applied = c._applied[id]
        applied[#applied + 1] = { index, cmd }
        node:_emit("apply", index, term, cmd)
        if ok then
            complete(c, id, index, term, result)
        else
            complete(c, id, index, term, nil, "fsm_error", result)
        end
    end

    local function state(i, role, term, leader_num)
        local id = ids[i]
        local leader = leader_num > 0 and ids[leader_num] or nil
        if role == "leader" then
            -- A transfer ends when a node of a later term leads (c:transfer_leadership).
            for k, t in each(c._transfers) do
                if term > t.term then
                    c._transfers[k] = nil
                    t.cb(id)
                end
            end
        end
        local last = c._last_state[id]
        c._last_state[id] = { role = role, term = term, leader = leader }
        local node = c._nodes[id]
        if not last or last.role ~= role or last.term ~= term then
            node:_emit("state", role, term)
        end
        -- A node starts knowing no leader: the first "leader" event is the first leader it
        -- learns of, never (nil, 0) at boot.
        if (last and last.leader) ~= leader then
            node:_emit("leader", leader, term)
        end
    end

    -- A slice of an FSM's snapshot in slices: the bytes once it returned, or false.
    local function slice(id, co)
        local resumed, bytes = coroutine.resume(co, true)
        if not resumed then error(bytes, 0) end
        if coroutine.status(co) == "suspended" then return false end
        c._slicing[id] = nil
        return bytes
    end

    -- The FSM's state as bytes (next: nil). An FSM with snapshot_slices = true is run as a
    -- networked node runs it: fsm:snapshot(w, yield) in a coroutine, one slice per call;
    -- false says more slices are to come (next: true), applying entries in between.
    local function snapshot(i, next)
        local id = ids[i]
        if next then
            return slice(id, assert(c._slicing[id], "sim: no snapshot in slices to go on with"))
        end
        local fsm = c._fsm[id]
        if type(fsm.snapshot) ~= "function" then
            error(format("the fsm of %s has no snapshot method: snapshots need "
                         .. "fsm:snapshot() -> bytes and fsm:restore(bytes)", id), 0)
        end
        if fsm.snapshot_slices == true then
            local co = coroutine.create(function()
                local parts = {}
                local w = { write = function(_, a, b)
                    parts[#parts + 1] = a
                    parts[#parts + 1] = b
                end }
                local bytes = fsm:snapshot(w, coroutine.yield)
                if bytes ~= nil then parts[#parts + 1] = bytes end
                return table.concat(parts)
            end)
            c._slicing[id] = co
            return slice(id, co)
        end
        local bytes = fsm:snapshot()
        if type(bytes) ~= "string" then
            error(format("fsm:snapshot() on %s must return a string (got %s)", id,
                         type(bytes)), 0)
        end
        return bytes
    end

    -- The FSM takes a snapshot's state: on a restart (a fresh FSM) or from the leader.
    local function restore(i, index, term, bytes)
        local id = ids[i]
        local fsm = c._fsm[id]
        if type(fsm.restore) ~= "function" then
            error(format("the fsm of %s has no restore method: snapshots need "
                         .. "fsm:snapshot() -> bytes and fsm:restore(bytes)", id), 0)
        end
        fsm:restore(bytes, { index = index, term = term })
        c._applied[id] = {}
        -- Entries the snapshot covers are never applied one by one here: whoever waits for
        -- one on this node cannot learn its result.
        fail_waiters(c, id, function(_, wi) return wi <= index end, "timeout",
                     function(wi) return format("index %d was covered by a snapshot from "
                                                .. "the leader on %s (outcome unknown)", wi,
                                                id) end)
    end

    local function snapshot_done(i, index, term)
        c._nodes[ids[i]]:_emit("snapshot", index, term)
    end

    -- A read the core answered (csrc/core/read.c): serve it from the FSM now, or fail it.
    -- time_ms: the leader's virtual clock when it fixed the read index (nil: unknown).
    local function read(i, ctx, index, code, time_ms)
        local r = c._reads[ctx]
        if not r then
            return -- timed out here already
        end
        c._reads[ctx] = nil
        if code then
            return r.cb(nil, code, format("read on %s: %s", ids[i], code))
        end
        local res = { pcall(r.fn, c._fsm[ids[i]], { time_ms = time_ms }) }
        if not res[1] then
            return r.cb(nil, "read_error", tostring(res[2]))
        end
        r.cb(unpack(res, 2, table.maxn(res)))
    end

    return apply, state, start, snapshot, restore, snapshot_done, read
end

--- Create a cluster.
-- @tparam table opts n (1..64), seed (default: $HELIOS_SEED, else 1), fsm (function(id)
--   returning an FSM table; called again on every restart), config (raft.new options,
--   snapshot_threshold, snapshot_interval_ms, trailing_logs and on_fsm_error included: see
--   the module comment), network (initial set_network), disk_latency_ms ({min, max}),
--   snapshot_latency_ms ({min, max}: a snapshot write until durable), snapshot_chunk_bytes
--   (InstallSnapshot chunk size), unsafe_install_keeps_log (test only: a broken disk that
--   keeps the log after an installed snapshot's index, for the checker's own specs),
--   storage ("real", the default unless $HELIOS_SIM_STORAGE says "model": the production
--   storage, csrc/storage, over a crashing in-memory file system per node; "model": an
--   in-memory model of a disk, faster), and for real storage: storage_crash (probability
--   that a storage step is cut by a crash in its middle, 0 by default), storage_faults
--   ("none", "unsynced", "torn" or "pages": what a crash keeps of unsynced writes) and
--   segment_size (bytes, 16 KiB by default: small, so segments seal and compact)
-- @return the cluster
function M.cluster(opts)
    if type(opts) ~= "table" then
        error(USAGE, 2)
    end
    for k in each(opts) do
        if not CLUSTER_OPTIONS[k] then
            error(format("sim.cluster: unknown option '%s'", tostring(k)), 2)
        end
    end
    local n = opts.n
    if type(n) ~= "number" or n < 1 or n > core.max_nodes or n ~= floor(n) then
        error(format("%s: n must be an integer in [1, %d]", USAGE, core.max_nodes), 2)
    end
    if opts.fsm ~= nil and type(opts.fsm) ~= "function" then
        error(USAGE .. ": fsm must be a function(id) returning an FSM", 2)
    end
    local seed = opts.seed
    if seed == nil then
        seed = tonumber(getenv("HELIOS_SEED") or "") or 1
    end

    local on_fsm_error = node_mod.check_on_fsm_error(type(opts.config) == "table"
                                                 and opts.config.on_fsm_error or nil,
                                                 "sim.cluster: config")
    local c = setmetatable({
        _seed = seed, _ids = {}, _num = {}, _nodes = {}, _fsm = {}, _slicing = {}, _applied = {},
        _waiters = {}, _n_waiters = 0, _last_state = {}, _fsm_errors = {}, _halted = {},
        _changes = {},
        _on_fsm_error = on_fsm_error,
    }, cluster)
    for i = 1, n do
        local id = "n" .. i
        c._ids[i], c._num[id] = id, i
        c._nodes[id] = node_mod.wrap(c, id)
        c._waiters[id] = {}
    end
    c._reads, c._transfers = {}, {}
    c._election_ms = type(opts.config) == "table" and opts.config.election_timeout_ms or 150
    local apply, state, start, snapshot, restore, snapshot_done, read = make_hooks(c, opts.fsm)
    -- Bad options raise from C without a position: re-raise at the caller's line.
    local ok, s = pcall(core.sim_new, {
        n = n, seed = seed, config = opts.config, network = opts.network,
        disk_latency_ms = opts.disk_latency_ms, snapshot_latency_ms = opts.snapshot_latency_ms,
        snapshot_chunk_bytes = opts.snapshot_chunk_bytes,
        unsafe_install_keeps_log = opts.unsafe_install_keeps_log,
        storage = opts.storage or getenv("HELIOS_SIM_STORAGE"), storage_crash = opts.storage_crash,
        storage_faults = opts.storage_faults, segment_size = opts.segment_size,
        apply = apply, state = state, start = start, snapshot = snapshot, restore = restore,
        snapshot_done = snapshot_done, read = read,
    })
    if not ok then
        error(s, 2)
    end
    c._sim = s
    return c
end

function cluster:__tostring()
    return format("helios.sim.cluster: %d nodes, seed %.0f, t=%.0f ms", #self._ids,
                  self._seed, self._sim:now())
end

-- Raise if a failure stopped the simulation (hooks may fail inside any C call).
local function check_stopped(c)
    local err = c._sim:error()
    if err then
        fail(c, err)
    end
end

-- Membership changes in flight (node:add_peer, node:remove_peer): each { id (the leader
-- asked), peer (its number), want ("voter", "learner" or "absent"), deadline, cb }, done
-- once that node's configuration is committed and has the peer as wanted.
local function settle_changes(c)
    local list = c._changes
    if #list == 0 then
        return
    end
    local s, now, keep, done = c._sim, c._sim:now(), {}, {}
    for _, ch in ipairs(list) do
        local conf = s:configuration(c._num[ch.id])
        local result
        if conf then
            local have = "absent"
            for _, sv in ipairs(conf.servers) do
                if sv.id == ch.peer then
                    have = sv.voter and "voter" or "learner"
                end
            end
            if conf.committed and have == ch.want then
                result = { true }
            elseif s:state(c._num[ch.id]) ~= "leader" then
                local _, _, leader = c:_node_state(ch.id)
                result = { nil, "not_leader", leader }
            end
        else
            result = { nil, "shutdown", ch.id .. " crashed before the change completed" }
        end
        if not result and ch.deadline <= now then
            result = { nil, "timeout", format("the change on %s did not complete in time",
                                              ch.id) }
        end
        if result then
            done[#done + 1] = { ch.cb, result }
        else
            keep[#keep + 1] = ch
        end
    end
    c._changes = keep
    for _, d in ipairs(done) do
        d[1](d[2][1], d[2][2], d[2][3])
    end
end

-- Fail the pending reads for which pred(read) holds with code and detail(read), in
-- context order (deterministic); each is off the list before its callback runs.
local function fail_reads(c, pred, code, detail)
    local gone = {}
    for ctx, r in each(c._reads) do
        if pred(r) then
            gone[#gone + 1] = ctx
        end
    end
    sort(gone)
    for _, ctx in ipairs(gone) do
        local r = c._reads[ctx]
        c._reads[ctx] = nil
        r.cb(nil, code, detail(r))
    end
end

-- Fail the waiters whose deadline has passed.
local function expire(c)
    settle_changes(c)
    local now = c._sim:now()
    -- Reads, then transfers.
    fail_reads(c, function(r) return r.deadline <= now end, "timeout",
               function(r) return format("read on %s not served in time", r.id) end)
    for k, t in each(c._transfers) do
        if t.deadline <= now then
            c._transfers[k] = nil
            t.cb(nil, "timeout", format("no new leader within %d ms", c._election_ms))
        end
    end
    if c._n_waiters == 0 then
        return
    end
    for _, id in ipairs(c._ids) do
        fail_waiters(c, id, function(w) return w.deadline <= now end, "timeout",
                     function(index) return format("index %d not applied on %s in time",
                                                   index, id) end)
    end
end

-- The earliest waiter deadline, or huge.
local function next_deadline(c)
    local d = huge
    for _, r in each(c._reads) do
        if r.deadline < d then
            d = r.deadline
        end
    end
    for _, t in each(c._transfers) do
        if t.deadline < d then
            d = t.deadline
        end
    end
    if c._n_waiters > 0 then
        for _, ws in each(c._waiters) do
            for _, list in each(ws) do
                for _, w in ipairs(list) do
                    if w.deadline < d then
                        d = w.deadline
                    end
                end
            end
        end
    end
    return d
end

-- Run virtual time up to `target`, stopping at waiter deadlines to time them out.
local function advance(c, target)
    local s = c._sim
    repeat
        local stop, now = next_deadline(c), s:now()
        if stop > target then
            stop = target
        end
        if #c._changes > 0 and stop > now + 1 then
            stop = now + 1 -- membership changes are settled every virtual millisecond
        end
        if stop < now then
            stop = now
        end
        local ok, err = s:run_until(stop)
        if not ok then
            fail(c, err)
        end
        expire(c)
    until s:now() >= target
end

--- The node ids, { "n1", ..., "nN" }.
function cluster:ids()
    local t = {}
    for i, id in ipairs(self._ids) do
        t[i] = id
    end
    return t
end

--- The node object of id (the node API of helios.node, as for helios.raft).
function cluster:node(id)
    num(self, id)
    return self._nodes[id]
end

--- Virtual milliseconds since the start.
function cluster:now()
    return self._sim:now()
end

--- The seed the cluster runs from.
function cluster:seed()
    return self._seed
end

--- Events run since the start.
function cluster:events()
    return self._sim:events()
end

--- Requests sent since the start (AppendEntries, RequestVote, PreVote, InstallSnapshot,
-- TimeoutNow).
function cluster:rpc_count()
    return self._sim:rpc_count()
end

--- Encoded bytes of every message sent since the start.
function cluster:rpc_bytes()
    return self._sim:rpc_bytes()
end

--- The snapshot node id's disk holds durably (also while the node is crashed: what a
-- restart starts from).
-- @treturn number index, term, size (bytes); or nil if it has none
function cluster:snapshot_info(id)
    return self._sim:snapshot_info(num(self, id))
end

--- Snapshot counters since the start, over every node: taken (snapshots that became
-- durable), installed (snapshots from a leader that became durable), offers (InstallSnapshot
-- offers of the cores that started or resumed a stream), chunks and chunk_bytes (chunk
-- messages sent and the snapshot bytes in them; chunks count in rpc_count too), delivered
-- (whole snapshots handed to a receiving core).
function cluster:snapshot_stats()
    return self._sim:snapshot_stats()
end

--- Real storage's fault counters since the start (all 0 with the model): crash_points
-- (storage steps cut by a crash in their middle), in_flight (crashes that caught written
-- batches in flight), reboots, files_reverted (files a crash changed), torn (writes kept in
-- part), repaired (restarts whose open or reconciliation repaired something), reconciled
-- (restarts that emptied the log to continue the snapshot).
function cluster:storage_stats()
    return self._sim:storage_stats()
end

--- Run one simulator event. Returns true if one ran, false if nothing is scheduled.
function cluster:step()
    local ran, err = self._sim:step()
    if ran == nil then
        fail(self, err)
    end
    expire(self)
    return ran
end

--- Run ms virtual milliseconds.
function cluster:run_for(ms)
    check_ms(ms, "c:run_for(ms)")
    advance(self, self._sim:now() + ms)
end

--- Run until pred() is true (checked now and after every virtual millisecond), at most
-- timeout_ms. Returns true, or false on timeout.
function cluster:run_until(pred, timeout_ms)
    if type(pred) ~= "function" then
        error("Usage: c:run_until(pred, timeout_ms): pred must be a function", 2)
    end
    timeout_ms = timeout_ms or 10000
    check_ms(timeout_ms, "c:run_until(pred, timeout_ms)")
    if pred() then
        return true
    end
    local deadline = self._sim:now() + timeout_ms
    while self._sim:now() < deadline do
        advance(self, self._sim:now() + 1)
        if pred() then
            return true
        end
    end
    return false
end

--- The id of the live node that believes it leads, the highest term first; nil if none.
function cluster:leader()
    local s, best, best_term = self._sim, nil, -1
    for i, id in ipairs(self._ids) do
        local role, term = s:state(i)
        if role == "leader" and term > best_term then
            best, best_term = id, term
        end
    end
    return best
end

--- Propose cmd through the current leader and run virtual time until that leader applied
-- it. Returns index, term, result (what the leader's fsm:apply returned), or nil, code,
-- detail: "not_leader" (no leader now, or the entry was overwritten by another term),
-- "timeout", "shutdown" (the leader crashed meanwhile), "fsm_error" (committed and
-- applied, but fsm:apply raised: see the module comment). timeout_ms: virtual ms, a
-- fraction rounded up.
function cluster:apply(cmd, timeout_ms)
    node_mod.check_command(cmd, "c:apply(cmd[, timeout_ms])")
    timeout_ms = node_mod.check_timeout(timeout_ms, "c:apply(cmd[, timeout_ms])")
    local leader = self:leader()
    if not leader then
        return nil, "not_leader", nil
    end
    local index, term, detail = self:_propose(leader, cmd)
    if not index then
        return nil, term, detail
    end
    local done
    self:_wait(leader, index, term, timeout_ms, function(...)
        done = { n = select("#", ...), ... }
    end)
    while not done do
        advance(self, self._sim:now() + 1)
    end
    return unpack(done, 1, done.n)
end

local function fault(c, method, id, name)
    local i = num(c, id, 3)
    local ok, _, msg = c._sim[method](c._sim, i)
    if not ok then
        error(format("c:%s('%s'): %s", name, id, msg), 3)
    end
    check_stopped(c)
end

--- Hold up node id's process for ms virtual milliseconds (a long callback, a busy
-- machine, a SIGSTOP) while the others run on: what is sent to it waits. When it runs again
-- it takes in what waited, then judges its timeouts, as a real node does.
--   c:stall("n2", 400); c:run_for(500)
function cluster:stall(id, ms)
    local i = num(self, id, 2)
    if type(ms) ~= "number" or ms < 0 or ms % 1 ~= 0 then
        error("Usage: c:stall(id, ms) (ms a non-negative integer)", 2)
    end
    local ok, _, msg = self._sim:stall(i, ms)
    if not ok then error(format("c:stall('%s'): %s", id, msg), 2) end
    check_stopped(self)
end

--- Cut node id off the network (it keeps running).
function cluster:disconnect(id)
    fault(self, "disconnect", id, "disconnect")
end

--- Connect node id to the network again.
function cluster:connect(id)
    fault(self, "connect", id, "connect")
end

--- Whether node id is connected to the network.
function cluster:connected(id)
    return self._sim:connected(num(self, id))
end

--- Whether node id is running (not crashed).
function cluster:alive(id)
    return self._sim:alive(num(self, id))
end

--- Crash node id: it loses what its disk had not synced; its pending apply callbacks get
-- nil, "shutdown".
function cluster:crash(id)
    fault(self, "crash", id, "crash")
    fail_waiters(self, id, function() return true end, "shutdown",
                 function() return id .. " crashed" end)
    fail_reads(self, function(r) return r.id == id end, "shutdown",
               function() return id .. " crashed" end)
end

--- Restart a crashed node: a fresh FSM (opts.fsm(id) again) over what its disk kept.
-- Its storage recovery runs first, as the real storage's does: a corrupt last record (see
-- c:corrupt) is cut off as a torn tail; a corrupt record before it stops the start.
-- @treturn[1] true, and what recovery said ("" when the disk was clean)
-- @treturn[2] nil, "corrupt", a message naming the record: the node stays down
-- @treturn[3] nil, "crashed", a message (real storage with storage_crash: a crash point hit
--   the recovery itself; the node stays down and may be restarted again)
function cluster:restart(id)
    local i = num(self, id)
    local ok, code, msg = self._sim:restart(i)
    if not ok and code == "corrupt" then
        check_stopped(self)
        return nil, "corrupt", msg
    end
    if not ok and code == "io" then
        -- Real storage with storage_crash: the restart itself crashed (still down).
        check_stopped(self)
        return nil, "crashed", msg
    end
    if not ok then
        error(format("c:restart('%s'): %s", id, msg), 2)
    end
    check_stopped(self)
    return true, code
end

--- Flip a bit in a durable log record of node id's disk (a fault of the medium). The node
-- notices when it next starts (c:restart).
-- @tparam string id
-- @tparam[opt] number index the record's index; a random durable one if nil
-- @treturn number the index of the record hit
-- @usage c:crash("n2"); c:corrupt("n2", 3); local ok, code, msg = c:restart("n2")
function cluster:corrupt(id, index)
    local i = num(self, id)
    local hit, _, msg = self._sim:corrupt(i, index)
    if not hit then
        error(format("c:corrupt('%s'): %s", id, msg), 2)
    end
    return hit
end

--- Test hook for a late duplicate: keep a copy of the first message `from` sends to `to`
-- of type `kind` (a message type name: "append_resp", ...) whose reject flag is `reject`,
-- from now on (an earlier capture is dropped). c:captured() shows it (type, from, to, term,
-- reject, prev_index, index, hint_index, hint_term, last_index, seq, n_entries; ids as
-- numbers) or nil; c:redeliver(delay_ms) delivers a copy again after delay_ms (default 0)
-- whatever the network's loss, unless the link is cut.
-- @usage c:capture("n3", "n1", "append_resp", true) ... c:redeliver()
function cluster:capture(from, to, kind, reject)
    local ok, _, msg = self._sim:capture(num(self, from), num(self, to), kind, reject and true)
    if not ok then
        error("c:capture: " .. tostring(msg), 2)
    end
end

function cluster:captured()
    return self._sim:captured()
end

function cluster:redeliver(delay_ms)
    local ok, _, msg = self._sim:redeliver(delay_ms or 0)
    if not ok then
        error("c:redeliver: nothing captured (" .. tostring(msg) .. ")", 2)
    end
end

--- Partition the network: nodes talk only within their group. Ids not listed form one
-- more group together.
-- @usage c:partition({ "n1", "n2" }, { "n3", "n4", "n5" })
function cluster:partition(...)
    local groups = { ... }
    local group = {}
    for g, list in ipairs(groups) do
        if type(list) ~= "table" then
            error("Usage: c:partition({ id, ... }, { id, ... }, ...)", 2)
        end
        for _, id in ipairs(list) do
            local i = num(self, id)
            if group[i] then
                error(format("c:partition: node '%s' is in two groups", id), 2)
            end
            group[i] = g
        end
    end
    for i = 1, #self._ids do
        group[i] = group[i] or #groups + 1
    end
    local ok, _, msg = self._sim:partition(group)
    if not ok then
        error("c:partition: " .. tostring(msg), 2)
    end
end

--- One network again, every node connected.
function cluster:heal()
    self._sim:heal()
end

--- Describe the whole network; fields not given take their defaults (reliable):
-- drop, duplicate (probabilities), delay_ms = {min, max}, reorder (boolean).
--- Real storage: the probability that a storage step is cut by a crash in its middle, from
-- now on (the storage_crash option; no effect with the model).
function cluster:set_storage_crash(p)
    if type(p) ~= "number" or not (p >= 0 and p <= 1) then
        error("Usage: c:set_storage_crash(p) with p in [0, 1]", 2)
    end
    self._sim:set_storage_crash(p)
end

function cluster:set_network(net)
    if type(net) ~= "table" then
        error("Usage: c:set_network{ drop = p, duplicate = p, delay_ms = {min, max}, "
              .. "reorder = bool }", 2)
    end
    local ok, err = pcall(self._sim.set_network, self._sim, net)
    if not ok then
        error(err, 2)
    end
end

--- Check every invariant over the whole state now; raises on a broken one.
function cluster:check()
    local ok, err = self._sim:check()
    if not ok then
        fail(self, err)
    end
    return true
end

--- The commands applied by the current incarnation of id's FSM: a list of
-- { index, command } (no-op and config entries are not listed). A restore (a restart from
-- a snapshot, or one installed from the leader) starts the list again: it holds only what
-- was applied after the snapshot's index.
function cluster:applied(id)
    num(self, id)
    local t = {}
    for i, e in ipairs(self._applied[id]) do
        t[i] = e
    end
    return t
end

--- The counters of node id (see node:stats()); nil while it is crashed.
function cluster:stats(id)
    return self:_stats(self._ids[num(self, id)])
end

--- Free the simulator now rather than at garbage collection.
function cluster:close()
    self._sim:close()
end

--- A new node with an empty disk, in no configuration: it waits for a leader to add it
-- (node:add_peer(id, addr): in the simulator an address is opaque, by convention the
-- node's number, and messages are routed by id). id must be the next one, "n" .. (#ids + 1).
function cluster:spawn(id)
    local k = #self._ids + 1
    if id ~= "n" .. k then
        error(format("Usage: c:spawn(id): the next node is 'n%d' (got %s)", k, tostring(id)), 2)
    end
    self._ids[k], self._num[id] = id, k
    self._nodes[id] = node_mod.wrap(self, id)
    self._waiters[id] = {}
    local ok, _, msg = self._sim:spawn(k)
    check_stopped(self)
    if not ok then
        error(format("c:spawn('%s'): %s", id, msg), 2)
    end
    return self._nodes[id]
end

--- The configuration node id uses now (membership, csrc/core/membership.c): { index (of
-- its config entry; 0: the bootstrap one), committed, voters = { ids }, learners = { ids },
-- voter (whether id itself is one), promoting (the learner its leader waits to promote,
-- or nil) }; nil while the node is crashed.
function cluster:configuration(id)
    local raw = self._sim:configuration(num(self, id))
    if not raw then
        return nil
    end
    local t = { index = raw.index, committed = raw.committed, voter = raw.voter,
                voters = {}, learners = {},
                promoting = raw.promoting > 0 and self._ids[raw.promoting] or nil }
    for _, sv in ipairs(raw.servers) do
        local list = sv.voter and t.voters or t.learners
        list[#list + 1] = self._ids[sv.id] or tostring(sv.id)
    end
    return t
end

function cluster:_change(id, peer, timeout_ms, cb, want, call)
    local p = self._num[peer]
    if not p then
        error(format("unknown node '%s' (c:spawn it first)", tostring(peer)), 3)
    end
    local index, code, msg = call(p)
    check_stopped(self)
    if not index then
        if code == "not_leader" then
            local _, _, leader = self:_node_state(id)
            return cb(nil, code, leader)
        end
        return cb(nil, code, msg)
    end
    local ch = { id = id, peer = p, want = want, deadline = self._sim:now() + timeout_ms,
                 cb = cb }
    self._changes[#self._changes + 1] = ch
end

function cluster:_add_peer(id, peer, addr, voter, timeout_ms, cb)
    local i = self._num[id]
    self:_change(id, peer, timeout_ms, cb, voter and "voter" or "learner", function(p)
        return self._sim:add(i, p, addr, voter)
    end)
end

function cluster:_remove_peer(id, peer, timeout_ms, cb)
    local i = self._num[id]
    self:_change(id, peer, timeout_ms, cb, "absent", function(p)
        return self._sim:remove(i, p)
    end)
end

-- The node backend (the contract of helios.node): these serve the node objects of
-- node_mod.wrap.

function cluster:_node_state(id)
    local role, term, leader = self._sim:state(self._num[id])
    if not role then
        return nil
    end
    return role, term, leader > 0 and self._ids[leader] or nil
end

function cluster:_propose(id, cmd)
    local s = self._sim
    local index, term, msg = s:propose(self._num[id], cmd)
    check_stopped(self)
    if index then
        return index, term
    end
    local code = term
    if code == "not_leader" then
        local _, _, leader = self:_node_state(id)
        return nil, code, leader
    end
    return nil, code, msg
end

function cluster:_wait(id, index, term, timeout_ms, cb)
    local ws = self._waiters[id]
    local list = ws[index] or {}
    ws[index] = list
    list[#list + 1] = { term = term, cb = cb, deadline = self._sim:now() + timeout_ms }
    self._n_waiters = self._n_waiters + 1
end

function cluster:_status(id)
    local raw = self._sim:status(self._num[id])
    if not raw then
        return nil
    end
    local ids = self._ids
    raw.id = id
    raw.leader = raw.leader > 0 and ids[raw.leader] or nil
    raw.vote = raw.vote > 0 and ids[raw.vote] or nil
    for _, p in ipairs(raw.progress) do
        p.id = ids[p.id]
    end
    return raw
end

function cluster:_stats(id)
    local st = self._sim:stats(self._num[id])
    if st then
        st.fsm_errors = self._fsm_errors[id]
    end
    return st
end

function cluster:_fsm_stopped_message(id)
    return self._halted[id]
end

function cluster:_snapshot(id)
    local index, code, msg = self._sim:snapshot(self._num[id])
    check_stopped(self)
    if index then
        return index
    end
    return nil, code, msg
end

-- node:read on a simulated node: the read's context from the core, then cb(fn(fsm, ctx))
-- (ctx.time_ms: the leader's virtual clock at the read index) once the core confirmed it and the FSM applied up to its index, or cb(nil, code, detail):
-- "not_leader", "timeout" (also after timeout_ms of virtual time), "shutdown".
function cluster:_read(id, fn, timeout_ms, cb)
    local ctx, code, msg = self._sim:read(self._num[id])
    check_stopped(self)
    if not ctx then
        return cb(nil, code, msg)
    end
    self._reads[ctx] = { id = id, fn = fn, cb = cb, deadline = self._sim:now() + timeout_ms }
end

function cluster:_read_stale(id, fn)
    if not self._sim:state(self._num[id]) then
        return nil, "shutdown", id .. " is crashed"
    end
    return fn(self._fsm[id])
end

-- node:transfer_leadership: cb(new leader id) once a node of a later term leads, or
-- cb(nil, code, detail): "not_leader", "busy", "invalid", "timeout" (no new leader within
-- an election timeout: the old leader takes proposals again).
function cluster:_transfer(id, target, cb)
    local s = self._sim
    local role, term = s:state(self._num[id])
    if role ~= "leader" then
        local _, _, leader = self:_node_state(id)
        return cb(nil, "not_leader", leader)
    end
    local ok, code, msg = s:transfer(self._num[id], target and num(self, target, 3) or 0)
    check_stopped(self)
    if not ok then
        return cb(nil, code, msg)
    end
    self._transfers[#self._transfers + 1] = {
        term = term, cb = cb, deadline = s:now() + self._election_ms + 1 }
end

-- The servers of node id's configuration (voters, learners); every node while it is down.
function cluster:_voters(id)
    local conf = self:configuration(id)
    if not conf then
        return self._ids, {}
    end
    return conf.voters, conf.learners
end

return M
