--- helios.raft: one networked Raft node, raft.new.
--
--   local raft = require("helios.raft")
--   local node = raft.new{ id = "node-1", listen = "127.0.0.1:9001", data_dir = "./data/1",
--                          peers = { ["node-1"] = "127.0.0.1:9001", ... }, fsm = my_fsm,
--                          secret = "cluster secret" }
--   node:start()
--   raft.spawn(function()
--       local index, term, result = node:apply("cmd", 1000)  -- yields this coroutine
--   end)
--   raft.run()   -- until every node has shut down (or raft.stop())
--
-- `raft.new{...}` is the networked node (csrc/node/runtime.c: durable storage, TCP
-- transport, timers on the libuv loop of helios.core): a backend of the node class of
-- helios.node, which has the node API and the backend contract (docs/lua-api.md,
-- docs/architecture.md). The loop is helios.loop; this module re-exports its functions
-- (raft.run, stop, now, after, every, spawn, sleep) and the names of helios.node
-- (raft.wrap, raft.ROLES, raft.EVENTS, raft.apply_entry, ...), so that code written
-- against helios.raft alone keeps working.

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local type, error, format, each, ipairs, tostring = type, error, string.format, pairs,
    ipairs, tostring
local setmetatable, getmetatable, floor = setmetatable, getmetatable, math.floor
local tremove, sort = table.remove, table.sort
local pcall, xpcall, require, select = pcall, xpcall, require, select
local unpack = unpack
local traceback = debug.traceback
local io_open = io.open

local node_mod = require("helios.node")
local loop = require("helios.loop")
local address = require("helios.util.address")
local deadlines = require("helios.util.deadlines")

local M = {}

-- The public names of helios.node and helios.loop, as helios.raft has always had them.
for _, name in ipairs({ "ROLES", "EVENTS", "DEFAULT_APPLY_TIMEOUT_MS", "ON_FSM_ERROR",
                        "check_command", "check_timeout", "apply_entry", "fsm_stop_message",
                        "check_on_fsm_error", "observers", "emit", "shape_status",
                        "node_class", "wrap", "describe_value" }) do
    M[name] = node_mod[name]
end
for _, name in ipairs({ "run", "stop", "now", "after", "every", "spawn", "sleep",
                        "_resume" }) do
    M[name] = loop[name]
end

--- What is wrong with a node address, or nil (helios.util.address).
M.address_problem = address.problem

local protect = loop.protect

local core_mod
local function core()
    core_mod = core_mod or require("helios.core")
    return core_mod
end

-- Nodes started and not yet shut down: raft.run() returns when the count drops to 0.
local live_nodes = 0

-- ---------------------------------------------------------------------------------------
-- raft.new: the networked node, a backend of the node class.

--- Commands larger than this are refused with "too_large" (they must fit a frame).
M.MAX_COMMAND_BYTES = 16 * 1024 * 1024

-- Options of raft.new and how to check them: "posint", "nonneg", "bool", or a function.
local INT_OPTIONS = {
    heartbeat_timeout_ms = "posint", election_timeout_ms = "posint",
    snapshot_interval_ms = "posint", snapshot_threshold = "posint", trailing_logs = "nonneg",
    snapshot_chunk_bytes = "posint", snapshot_threshold_bytes = "posint",
    trailing_logs_bytes = "posint",
    max_entries_per_append = "posint", max_append_bytes = "posint", max_inflight = "posint",
    prevote = "bool", check_quorum = "bool", read_lease = "bool", join = "bool",
    -- For tests only: a leader serves reads without confirming it still leads (the
    -- deposed leader's stale read that the torture spec must catch, docs/testing.md).
    unsafe_read_no_confirm = "bool",
}
-- Those the core reads (the others are read here, by raft.lua: snapshots, limits).
local CORE_OPTIONS = {
    heartbeat_timeout_ms = true, election_timeout_ms = true, max_entries_per_append = true,
    max_append_bytes = true, max_inflight = true, prevote = true, check_quorum = true,
    read_lease = true, unsafe_read_no_confirm = true,
}
-- fs: the file system of the data dir, for tests only: a fault-injecting one of
-- helios.testkit (fault_fs_new), checked by core.node_new; absent: the real one.
local OTHER_OPTIONS = {
    id = true, listen = true, data_dir = true, peers = true, fsm = true, secret = true,
    secret_file = true, control = true, cluster_id = true, on_fsm_error = true, fs = true,
    client_listen = true, client_password = true, client_peers = true, client_forward = true,
    metrics_listen = true, max_clients = true,
}
--- The most connections max_clients may allow (the listeners' bound: csrc/lua/listener.h).
M.MAX_MAX_CLIENTS = 1000000

-- An option error: raised as a table by the checks below, caught by raft.new, which raises
-- "raft.new: <field>: <what is wrong>" at its caller's level (never a position in here).
local function option_error(field, msg)
    error({ option_error = format("%s: %s", field, msg) }, 0)
end

local function bad(field, what, got)
    option_error(field, format("must be %s%s", what,
                               got ~= nil and format(" (got %s)", node_mod.describe_value(got)) or ""))
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

-- What is wrong with a client port address ("host:port", port 0: any), or nil.
local function client_address_problem(addr)
    if type(addr) == "string" then
        local host = addr:match("^(.+):0$")
        if host then return address.problem(host .. ":1") end
    end
    return address.problem(addr)
end

-- The options of the Redis-protocol client port (helios.atlas.server, docs/atlas.md).
-- The FSM is recognized by its class name, so that this module loads without ATLAS.
local function check_client_options(o)
    local listen = o.client_listen
    if listen ~= nil then
        local problem = client_address_problem(listen)
        if problem then
            option_error("client_listen", format("address %s (got %s)", problem,
                                                 node_mod.describe_value(listen)))
        end
        local mt = getmetatable(o.fsm)
        if type(mt) ~= "table" or mt.__name ~= "helios.atlas.fsm" then
            option_error("client_listen", "needs fsm = atlas.fsm()")
        end
    end
    local pw = o.client_password
    if pw ~= nil and (type(pw) ~= "string" or pw == "") then
        -- Never the value itself: it is a password.
        bad("client_password", "a non-empty string")
    end
    if o.client_forward ~= nil and type(o.client_forward) ~= "boolean" then
        bad("client_forward", "a boolean", o.client_forward)
    end
    local peers = o.client_peers
    if peers ~= nil then
        if type(peers) ~= "table" then
            bad("client_peers", "a table { [id] = \"host:port\" }", peers)
        end
        for pid, addr in each(peers) do
            if type(pid) ~= "string" or pid == "" then
                bad("client_peers", "keyed by node ids (non-empty strings)", pid)
            end
            local problem = address.problem(addr)
            if problem then
                option_error(format("client_peers[%q]", pid), format("address %s (got %s)",
                    problem, node_mod.describe_value(addr)))
            end
        end
    end
end

-- Check every option (errors name the field: see option_error) and return the table for
-- core.node_new.
local function check_options(o)
    for k in each(o) do
        if not INT_OPTIONS[k] and not OTHER_OPTIONS[k] then
            option_error(type(k) == "string" and k or format("[%s]", tostring(k)),
                         "unknown option")
        end
    end
    for k, kind in each(INT_OPTIONS) do
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
    -- join: the node starts in no configuration and waits to be added (node:add_peer on
    -- the leader); peers are then only addresses to dial, and may leave this node out.
    local join = o.join == true
    if join and o.peers == nil then o = setmetatable({ peers = {} }, { __index = o }) end
    if type(o.peers) ~= "table" then bad("peers", "a table { [id] = \"host:port\" }", o.peers) end
    local n = 0
    for pid, addr in each(o.peers) do
        if type(pid) ~= "string" or pid == "" then
            bad("peers", "keyed by node ids (non-empty strings)", pid)
        end
        local problem = address.problem(addr)
        if problem then
            option_error(format("peers[%q]", pid), format("address %s (got %s)", problem,
                                                          node_mod.describe_value(addr)))
        end
        n = n + 1
    end
    if n == 0 and not join then bad("peers", "a non-empty table { [id] = \"host:port\" }") end
    if o.peers[o.id] == nil and not join then
        bad("peers", format("a table that includes this node (%q)", o.id))
    end
    if o.peers[o.id] == nil and o.listen == nil then
        bad("listen", format("an address: peers has none for this node (%q)", o.id))
    end
    local problem = o.listen ~= nil and address.problem(o.listen)
    if problem then
        option_error("listen", format("address %s (got %s)", problem, node_mod.describe_value(o.listen)))
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
    if o.on_fsm_error ~= nil and not node_mod.ON_FSM_ERROR[o.on_fsm_error] then
        bad("on_fsm_error", "\"continue\" or \"stop\"", o.on_fsm_error)
    end
    check_client_options(o)
    local mc = o.max_clients
    if mc ~= nil and (type(mc) ~= "number" or mc ~= floor(mc) or mc < 1
                      or mc > M.MAX_MAX_CLIENTS) then
        bad("max_clients", format("an integer from 1 to %d", M.MAX_MAX_CLIENTS), mc)
    end
    if o.metrics_listen ~= nil then
        local mproblem = client_address_problem(o.metrics_listen)
        if mproblem then
            option_error("metrics_listen", format("address %s (got %s)", mproblem,
                                                  node_mod.describe_value(o.metrics_listen)))
        end
    end
    local config = {}
    for k in each(CORE_OPTIONS) do
        config[k] = o[k]
    end
    local peers = {}
    for pid, addr in each(o.peers) do
        peers[pid] = addr
    end
    return {
        id = o.id, data_dir = o.data_dir, listen = o.listen or o.peers[o.id], peers = peers,
        secret = secret, cluster_id = o.cluster_id, config = config,
        trailing_logs = o.trailing_logs, trailing_logs_bytes = o.trailing_logs_bytes,
        snapshot_chunk_bytes = o.snapshot_chunk_bytes,
        fs = o.fs, join = join or nil,
    }
end

local net = { __name = "helios.raft.backend" }
net.__index = net

function net:__tostring()
    return format("helios.raft.backend(%s, %s)", tostring(self._id), tostring(self._state))
end
net._blocking = true

-- Waiters: b._waiters[index] is one waiter { term, cb } or, when several wait on the same
-- index, a list of them (a waiter is the common case: no list per write).

local function waiter_list(x)
    if x.cb then return { x } end
    return x
end

-- Complete the waiters of index: those of `term` get (index, term, result), or (nil,
-- code, detail) when code is given (fsm_error); the others learn that their entry was
-- overwritten.
local function complete(b, index, term, result, code, detail)
    local x = b._waiters[index]
    if not x then
        return
    end
    b._waiters[index] = nil
    if x.cb then
        x.done = true
        if x.term == term and code then
            return protect(x.cb, nil, code, detail)
        elseif x.term == term then
            return protect(x.cb, index, term, result)
        end
        return protect(x.cb, nil, "not_leader", format("index %d was overwritten by another "
                                                      .. "leader", index))
    end
    for _, w in ipairs(x) do
        w.done = true
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
    for index in each(b._waiters) do
        indexes[#indexes + 1] = index
    end
    sort(indexes)
    for _, index in ipairs(indexes) do
        local list = waiter_list(b._waiters[index])
        b._waiters[index] = nil
        for _, w in ipairs(list) do
            w.done = true
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
    local full = node_mod.fsm_stop_message(b._id, msg)
    b._fsm_stopped = full
    complete(b, index, term, nil, "fsm_error", full)
    protect(b._node._emit, b._node, "error", "fsm_error", full .. tb)
    core().timer(0, 0, function()
        b:_shutdown()
    end)
end

-- A structured "log" event: (level, message, event name, fields) (docs/logging.md; an
-- observer that takes two arguments sees the message as before).
local function log_event(b, level, name, fields, fmt, ...)
    protect(b._node._emit, b._node, "log", level, format(fmt, ...), name, fields)
end

local function sorted_keys(set)
    local list = {}
    for k in each(set) do list[#list + 1] = k end
    sort(list)
    return list
end

-- The members of the configuration in use as { [id] = "voter" | "learner" }, or nil.
local function members(b)
    local conf = b:_configuration()
    if not conf then return nil end
    local m = {}
    for _, sv in ipairs(conf.servers or {}) do
        m[sv.id] = sv.voter and "voter" or "learner"
    end
    return m, conf
end

-- Log a membership_change when the configuration's members differ from those last seen
-- (checked where one can change for this node: a configuration entry applied, a snapshot
-- installed). quiet: only remember them (at start).
local function membership_diff(b, quiet)
    local now, conf = members(b)
    if not now then return end
    local was = b._members
    b._members = now
    if quiet or not was then return end
    local added, removed, changed = {}, {}, {}
    for id, kind in each(now) do
        if not was[id] then added[#added + 1] = id
        elseif was[id] ~= kind then changed[#changed + 1] = id end
    end
    for id in each(was) do
        if not now[id] then removed[#removed + 1] = id end
    end
    if #added + #removed + #changed == 0 then return end
    sort(added)
    sort(removed)
    sort(changed)
    local voters, learners = {}, {}
    for _, id in ipairs(sorted_keys(now)) do
        local list = now[id] == "voter" and voters or learners
        list[#list + 1] = id
    end
    local parts = {}
    if #added > 0 then parts[#parts + 1] = "added " .. table.concat(added, ", ") end
    if #removed > 0 then parts[#parts + 1] = "removed " .. table.concat(removed, ", ") end
    if #changed > 0 then parts[#parts + 1] = "promoted " .. table.concat(changed, ", ") end
    log_event(b, 0, "membership_change", {
        index = conf.index, committed = conf.committed == true, voters = voters,
        learners = learners, added = added, removed = removed, promoted = changed,
    }, "configuration of index %d: %s (voters %s%s)", conf.index, table.concat(parts, "; "),
        table.concat(voters, ", "), #learners > 0 and "; learners " .. table.concat(learners,
        ", ") or "")
end

-- Logging must never stop a node: a failure here is itself a log line.
local function check_membership(b, quiet)
    local ok, err = pcall(membership_diff, b, quiet)
    if not ok then
        log_event(b, 2, "message", nil, "membership_change: %s", tostring(err))
    end
end

-- The byte trigger of automatic snapshots (defined with take_snapshot, below).
local snapshot_by_bytes, snapshot_in_slices

local function make_hooks(b)
    local function apply(index, term, etype, cmd, time_ms)
        if etype ~= "command" then
            if not b._fsm_stopped then b._applied_index = index end
            complete(b, index, -1) -- a waiter here was promised a command: overwritten
            if etype == "config" then check_membership(b) end
            return
        end
        -- A counter and a comparison per entry: the snapshot itself starts from the next
        -- loop turn (not inside the runtime's apply callback), once, whatever arrives
        -- meanwhile.
        local applied_bytes = b._applied_bytes + #cmd
        b._applied_bytes = applied_bytes
        if applied_bytes > b._snapshot_threshold_bytes and not b._snapshot_soon
                and not b._snapshotting then
            snapshot_by_bytes(b)
        end
        if b._fsm_stopped then
            return
        end
        local ok, result, tb = node_mod.apply_entry(b._fsm, cmd, index, term, time_ms)
        b._applied_index = index
        local node = b._node
        if not ok then
            b._fsm_errors = b._fsm_errors + 1
            if b._on_fsm_error == "stop" then
                return stop_on_fsm_error(b, index, term, result, tb)
            end
            log_event(b, 2, "fsm_error", { index = index, entry_term = term },
                      "%s (on %s: answered fsm_error, the next entry goes on)%s", result,
                      b._id, tb)
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
        -- A transfer ends when this node learns of a leader of a later term (the target,
        -- or whoever won instead): node:transfer_leadership returns that leader.
        if leader and #b._transfers > 0 then
            -- Off the list before any callback runs: a callback resumes a coroutine that
            -- may go on to shut the node down (which fails what is still listed).
            local keep, done = {}, {}
            for _, t in ipairs(b._transfers) do
                if term > t.term then
                    t.timer:stop()
                    done[#done + 1] = t
                else
                    keep[#keep + 1] = t
                end
            end
            b._transfers = keep
            for _, t in ipairs(done) do
                protect(t.cb, leader)
            end
        end
        if #b._changes > 0 then
            b:_settle_changes()
        end
    end

    -- The core answered a read (csrc/core/read.c): code nil means this node has applied
    -- through index (the runtime calls this after the applies of its batch), so fn(fsm, ctx)
    -- sees every write acknowledged before the read began; ctx.time_ms is the leader's clock
    -- when it fixed the index (nil: unknown); else the read failed.
    local function read(ctx, code, index, time_ms)
        local r = b._reads[ctx]
        if not r then
            return -- timed out here already
        end
        b._reads[ctx] = nil
        r.done = true
        if code then
            return protect(r.cb, nil, code, format("read on %s: %s", b._id, code))
        end
        if b._fsm_stopped then
            return protect(r.cb, nil, "shutdown", b._fsm_stopped)
        end
        local res = { n = 0 }
        local function collect(ok, ...)
            res.n = select("#", ...)
            for i = 1, res.n do res[i] = select(i, ...) end
            return ok
        end
        if not collect(pcall(r.fn, b._fsm, { time_ms = time_ms })) then
            return protect(r.cb, nil, "read_error", format("read at index %d on %s failed: %s",
                                                           index or 0, b._id, tostring(res[1])))
        end
        protect(r.cb, unpack(res, 1, res.n))
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
        b._applied_bytes = 0 -- what the FSM applied is in the installed snapshot now
        b._applied_index = index
        local st = b._core:status()
        log_event(b, 0, "snapshot_installed", { index = index, snapshot_term = term,
            bytes = st and st.snapshot_size or nil },
            "installed the leader's snapshot of index %d (term %d)", index, term)
        check_membership(b)
        protect(b._node._emit, b._node, "snapshot", index, term)
    end

    -- The runtime hands over a run of committed entries at once: one call from C per run
    -- (not per entry), and a loop the JIT can compile. t: 5 slots per entry, apply's
    -- arguments. The runtime counts the whole run as applied from the start of the call,
    -- so snapshot points name b._applied_index, what the FSM has reached.
    local function apply_batch(t, n)
        for i = 1, 5 * n, 5 do
            apply(t[i], t[i + 1], t[i + 2], t[i + 3], t[i + 4])
        end
    end

    return { apply = apply, apply_batch = apply_batch, state = state, error = on_error,
             log = log, restore = restore, read = read }
end

-- Snapshots of a networked node. The FSM's state is serialized into a file by a forked
-- child (core.snapshot_fork: the child works on a copy-on-write image of the Lua state
-- while this process goes on serving heartbeats and commands); in this process, in slices
-- between which the loop runs and entries are applied, for an FSM that says
-- fsm.snapshot_slices = true (core.snapshot_file; the FSM keeps what it writes as of the
-- call); or in this process at once for one that says fsm.snapshot_fork = false
-- (docs/fork-snapshot.md). The file is framed (header, checksum, trailer) by the C side's
-- framer, then handed to the runtime, which renames it into place, tells the core and
-- compacts the log.

-- The function the writer runs: header, payload, trailer. yield (the sliced path only) is
-- handed to fsm:snapshot, which calls it between slices.
local function snapshot_body(fsm, framer)
    return function(w, yield)
        w:write(framer:header())
        local writer = { write = function(_, ...)
            framer:feed(...)
            w:write(...)
        end }
        local bytes = fsm:snapshot(writer, yield)
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
    -- Entries applied while this one was written may be past the byte threshold already.
    if b._applied_bytes > b._snapshot_threshold_bytes and not b._snapshot_soon then
        snapshot_by_bytes(b)
    end
    if ok then
        local taken, code, detail = b._core:snapshot_taken(index, term, tmp)
        if taken then
            local st = b._core:status()
            local ms = b._snapshot_started and core().clock_ms() - b._snapshot_started
            log_event(b, 0, "snapshot_taken", { index = index, snapshot_term = term,
                bytes = st and st.snapshot_size or nil, ms = ms and floor(ms) or nil },
                "snapshot of index %d (term %d) taken", index, term)
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
    log_event(b, 2, "snapshot_error", { index = index }, "snapshot at index %d failed: %s",
              index, tostring(err))
end

-- The end of a snapshot job's file (forked or in slices): handed on if the job is still the
-- node's, removed if it was given up or superseded.
local function job_finished(b, job, index, term, tmp)
    return function(ok, err)
        if b._snapshotting == job then
            snapshot_done(b, index, term, tmp, ok, err)
        else
            os.remove(tmp)
        end
    end
end

-- The sliced path: body runs in a coroutine, one slice per loop turn; fsm:snapshot's yield()
-- returns true to go on, false when the node gave the snapshot up (shutdown), after which
-- the FSM returns. The file's fdatasync runs off the loop (core.snapshot_file).
snapshot_in_slices = function(b, index, term, tmp, body)
    local f, code, detail = core().snapshot_file(tmp)
    if not f then
        return nil, code, detail
    end
    local job = { index = index }
    local co = coroutine.create(function()
        return xpcall(body, traceback, f, coroutine.yield)
    end)
    local finished = job_finished(b, job, index, term, tmp)
    local function step()
        if coroutine.status(co) == "dead" then
            return -- finished, failed or given up already
        end
        local go_on = b._snapshotting == job
        local resumed, ok, err = coroutine.resume(co, go_on)
        if coroutine.status(co) == "suspended" then
            if go_on then
                -- 1 ms, not 0: libuv runs a timer due now that a timer callback started in
                -- the same pass, so with 0 every slice would run in one loop turn.
                core().timer(1, 0, step)
                return
            end
            -- An FSM that goes on after being told to stop is left where it is.
            ok, err = false, "fsm:snapshot() did not return when told to stop"
        elseif not resumed then
            ok, err = false, ok
        end
        if not ok or not go_on then
            f:abort()
            finished(false, err)
            return
        end
        local queued, qcode, qdetail = f:finish(finished)
        if not queued then
            finished(false, format("%s: %s", tostring(qcode), tostring(qdetail)))
        end
    end
    -- Shutdown: the FSM is told to stop (its state must not keep a half-taken snapshot)
    -- and the file removed; once the file is being synced, its done callback removes it.
    job.cancel = function()
        b._snapshotting = nil
        step()
    end
    b._snapshotting = job
    step() -- the first slice runs now: the FSM takes its state as of this point
    return index
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
        return nil, "invalid", "the FSM has no snapshot method"
    end
    local index, term = b._core:snapshot_point(b._applied_index)
    if not index then
        local st = b._core:status()
        if st and st.snapshot_index > 0 then
            return st.snapshot_index
        end
        return nil, "invalid", "nothing applied yet"
    end
    local tmp = b._core:snapshot_tmp_path(index, term)
    b._snapshot_started = core().clock_ms()
    -- The bytes since the last snapshot start again from this one (also if it fails: the
    -- next try then waits for another snapshot_threshold_bytes, or the interval check).
    b._applied_bytes = 0
    local body = snapshot_body(fsm, b._core:snapshot_framer(index, term))
    local c = core()
    if fsm.snapshot_slices == true then
        return snapshot_in_slices(b, index, term, tmp, body)
    end
    if fsm.snapshot_fork == false then
        local ok, err = c.snapshot_sync(tmp, body)
        snapshot_done(b, index, term, tmp, ok, err)
        return index
    end
    local job = { index = index }
    b._snapshotting = job
    local handle, code, detail = c.snapshot_fork(tmp, body,
                                                 job_finished(b, job, index, term, tmp))
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
    local index = b._core:snapshot_point(b._applied_index)
    local st = index and b._core:status()
    if st and index - st.snapshot_index >= b._snapshot_threshold then
        take_snapshot(b)
    end
end

-- The other automatic trigger: the apply hook saw more than snapshot_threshold_bytes of
-- commands applied since the last snapshot. Memory is bounded by the bytes of the log, not
-- its entry count, and a count checked every few minutes lets big entries pile up
-- (docs/architecture.md, "Snapshots"). One timer per snapshot, none per entry.
snapshot_by_bytes = function(b)
    b._snapshot_soon = true
    core().timer(0, 0, function()
        b._snapshot_soon = false
        if b._state == "running" and not b._snapshotting and not b._fsm_stopped
                and b._applied_bytes > b._snapshot_threshold_bytes then
            take_snapshot(b)
        end
    end)
end

--- node:client_address(): the bound "host:port" of the node's Redis-protocol port (the
-- option client_listen), or nil when it has none or is not running.
local function client_address(node)
    local srv = node._backend._client_server
    return srv and srv:address() or nil
end

--- node:metrics_address(): the bound "host:port" of the node's metrics endpoint (the
-- option metrics_listen), or nil when it has none or is not running.
local function metrics_address(node)
    local srv = node._backend._metrics_server
    return srv and srv:address() or nil
end

--- node:metrics(): the node's metric families (helios.metrics: keyed by name, what the
-- endpoint renders; docs/metrics.md), or nil when it is not running.
local function node_metrics(node)
    local b = node._backend
    if b._state ~= "running" then
        return nil
    end
    local raw = b._core:metrics()
    if not raw then
        return nil
    end
    local c = core()
    return require("helios.metrics").families(raw, {
        id = b._id, version = c.version, fsm_errors = b._fsm_errors,
        lua_heap_bytes = collectgarbage("count") * 1024, resident_bytes = c.process_memory(),
        listeners = {
            control = b._control and b._control:clients(),
            client = b._client_server and b._client_server:clients(),
        },
    })
end

--- Create a networked node (not started: see node:start()). Options (docs/lua-api.md,
-- README.md "Configuration"); every bad option raises "raft.new: <field>: <what is wrong> (got
-- <value as written>)" at the caller's line.
-- @tparam table opts id, listen (default peers[id]), data_dir, peers ({ [id] = addr },
--   this node included: the initial voters, used on first boot), fsm (apply, snapshot,
--   restore), secret or secret_file, control (optional: a unix socket path for the
--   control protocol), cluster_id (optional, default "helios"), on_fsm_error ("continue",
--   the default, or "stop": see helios.node), and the timeouts and limits of
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
    for pid in each(copts.peers) do
        ids[#ids + 1] = pid
    end
    sort(ids)
    local threshold_bytes = opts.snapshot_threshold_bytes or 64 * 1024 * 1024
    local rank = 0
    for i, pid in ipairs(ids) do
        if pid == opts.id then rank = i - 1 end
    end
    local b = setmetatable({
        _id = opts.id, _peers = copts.peers, _ids = ids, _fsm = opts.fsm, _waiters = {},
        _state = "new", _control_path = opts.control, _max_clients = opts.max_clients,
        _snapshot_interval_ms = opts.snapshot_interval_ms or 300000,
        _snapshot_threshold = opts.snapshot_threshold or 10000,
        -- Staggered: the i-th of n initial voters (by id) waits (i - 1) / (4n) of the
        -- threshold longer. Every replica applies the same bytes, so equal thresholds
        -- would fork every node's snapshot in the same moment (docs/architecture.md,
        -- "Snapshots").
        _snapshot_threshold_bytes = threshold_bytes
            + floor(threshold_bytes * rank / (4 * math.max(#ids, 1))),
        _applied_bytes = 0, _snapshot_soon = false,
        _on_fsm_error = opts.on_fsm_error or "continue", _fsm_errors = 0,
        _copts = copts, _changes = {}, _reads = {}, _read_ctx = 0, _transfers = {},
        _retries = {},
        _election_ms = opts.election_timeout_ms or 150,
    }, net)
    -- One loop timer for the deadlines of every write and read waiting on this node.
    b._deadlines = deadlines.new(b)
    if opts.client_listen ~= nil then
        local peers = {}
        for pid, addr in each(opts.client_peers or {}) do peers[pid] = addr end
        b._client = { listen = opts.client_listen, password = opts.client_password,
                      peers = peers, forward = opts.client_forward ~= false,
                      max_clients = opts.max_clients }
    end
    local node = node_mod.wrap(b, opts.id)
    node.client_address = client_address
    node.metrics = node_metrics
    node.metrics_address = metrics_address
    b._metrics_listen = opts.metrics_listen
    b._node = node
    b._hooks = make_hooks(b)
    local ok, cn = pcall(core().node_new, copts, b._hooks)
    if not ok then
        local msg = tostring(cn):gsub("^node_new: ", ""):gsub("^config: ", "")
        -- The core's checks say "<field> must ...": the same form as the checks above.
        local field = msg:match("^([%w_]+) must ")
        if field then
            msg = msg:gsub("^([%w_]+) must ", "%1: must ")
            if opts[field] ~= nil and not msg:find("(got ", 1, true) then
                msg = format("%s (got %s)", msg, node_mod.describe_value(opts[field]))
            end
        end
        error("raft.new: " .. msg, 2)
    end
    b._core = cn
    return node
end

-- The configuration the core uses (n:configuration(): servers with names, addresses,
-- voter, match, caught_up), or nil before start, after shutdown, or from a binding
-- without membership.
function net:_configuration()
    if self._state ~= "running" or not self._core.configuration then
        return nil
    end
    return self._core:configuration()
end

function net:_addr_of(id)
    local conf = self:_configuration()
    for _, sv in ipairs(conf and conf.servers or {}) do
        if sv.id == id then
            return sv.addr
        end
    end
    return self._peers[id]
end

-- Voters and learners of the configuration in use; before start (or from a binding
-- without membership) the bootstrap peers, or none with join.
function net:_voters()
    local conf = self:_configuration()
    if not conf then
        if self._copts.join then
            return {}, {}
        end
        return self._ids, {}
    end
    local voters, learners = {}, {}
    for _, sv in ipairs(conf.servers or {}) do
        local list = sv.voter and voters or learners
        list[#list + 1] = sv.id
    end
    sort(voters)
    sort(learners)
    return voters, learners
end

-- ---------------------------------------------------------------------------------------
-- Membership, reads and transfers (csrc/core/membership.c, read.c, transfer.c).

-- Whether the data dir holds a log or a snapshot (core.storage_inspect reads it without
-- changing it; a node that never started has none of meta, log/, snapshots/).
local function has_log(dir)
    local _, report, verdict = core().storage_inspect(dir, {})
    if verdict == "not_data_dir" then
        return false
    end
    report = report or ""
    return report:find("\nlog: index ") ~= nil or report:find("\nsnapshots: %d") ~= nil
        or report:find("ERROR") ~= nil
end

-- add_peer before start: the server joins the bootstrap configuration, which the core
-- gets from peers on an empty data dir (so the node is made again with the new peers:
-- nothing is open before start). Returns nothing once the node has started (add_peer
-- then goes to the core).
function net:_bootstrap_peer(_, peer, addr, voter)
    if self._state ~= "new" then
        return
    end
    local copts = self._copts
    local problem = address.problem(addr)
    if problem then
        return nil, "invalid", format("add_peer(%q, %q): address %s", peer, addr, problem)
    end
    if copts.fs == nil and has_log(copts.data_dir) then
        return nil, "invalid", format("%s already has a log in %s: add_peer before "
            .. "node:start() only forms a new cluster's first configuration; to change the "
            .. "members of a running cluster, call node:add_peer on its leader once started",
            self._id, copts.data_dir)
    end
    if not voter then
        return nil, "invalid", format("add_peer(%q) before start: the first configuration "
            .. "has voters only; add learners on the leader once the cluster runs", peer)
    end
    -- (A joining node's peers are only addresses to dial: the same remaking gives it one
    -- more, and no configuration.)
    copts.peers[peer] = addr
    local made, cn = pcall(core().node_new, copts, self._hooks)
    if not made then
        copts.peers[peer] = nil
        return nil, "invalid", tostring(cn)
    end
    self._core:shutdown()
    self._core = cn
    self._peers = copts.peers
    if not self._ids_set then
        self._ids_set = {}
        for _, id in ipairs(self._ids) do self._ids_set[id] = true end
    end
    if not self._ids_set[peer] then
        self._ids_set[peer] = true
        self._ids[#self._ids + 1] = peer
        sort(self._ids)
    end
    return true
end

-- The detail of a not_leader answer: the leader's id and address, when known.
function net:_leader_detail()
    local _, _, leader = self._core:state()
    if leader then
        return format("%s at %s", leader, tostring(self:_addr_of(leader)))
    end
    return nil
end

-- Pending membership changes complete on what the configuration shows: true once a
-- committed configuration has the peer as asked (the core promotes a learner itself), or
-- not_leader once this node stops leading. Checked from the state hook and by a short
-- timer while changes are pending (a promotion or a commit changes no role).
local CHANGE_POLL_MS = 10

function net:_settle_changes()
    local list = self._changes
    if #list == 0 then
        return
    end
    local conf = self:_configuration()
    local role = self._state == "running" and self._core:state() or nil
    local keep, done = {}, {}
    for _, ch in ipairs(list) do
        local result
        if conf then
            local have = "absent"
            for _, sv in ipairs(conf.servers or {}) do
                if sv.id == ch.peer then
                    have = sv.voter and "voter" or "learner"
                end
            end
            if conf.committed and have == ch.want then
                result = { true, n = 1 }
            elseif role ~= "leader" then
                result = { nil, "not_leader", self:_leader_detail(), n = 3 }
            end
        else
            result = { nil, "shutdown", format("node %s shut down before the change completed",
                                               self._id), n = 3 }
        end
        if result then
            ch.timer:stop()
            done[#done + 1] = { ch.cb, result }
        else
            keep[#keep + 1] = ch
        end
    end
    self._changes = keep
    if #keep == 0 and self._change_timer then
        self._change_timer:stop()
        self._change_timer = nil
    end
    for _, d in ipairs(done) do
        protect(d[1], unpack(d[2], 1, d[2].n))
    end
end

function net:_change(peer, want, timeout_ms, cb, call)
    if self._state ~= "running" then
        return cb(nil, "shutdown", format("node %s is %s", self._id,
                                          self._state == "new" and "not started" or "shut down"))
    end
    if not self._core.add_peer then
        return cb(nil, "invalid", "this build's node binding has no membership changes")
    end
    local index, code, detail = call()
    if not index and code == "busy" and timeout_ms > 0 then
        -- Busy passes by itself (the change under way completes, or the new leader commits
        -- an entry of its term): try again until the timeout, then answer busy.
        local deadline = core().clock_ms() + timeout_ms
        local retry
        retry = core().timer(CHANGE_POLL_MS, CHANGE_POLL_MS, function()
            if self._retries[retry] == nil then
                return retry:stop() -- failed by the shutdown already
            end
            local left = deadline - core().clock_ms()
            local i2, c2, d2 = call()
            if i2 or c2 ~= "busy" or left <= CHANGE_POLL_MS then
                retry:stop()
                self._retries[retry] = nil
                if not i2 and c2 == "busy" then
                    return protect(cb, nil, c2, d2)
                end
                left = left > 0 and math.ceil(left) or 0
                return self:_change(peer, want, left, cb, function() return i2, c2, d2 end)
            end
        end)
        self._retries[retry] = cb
        return
    end
    if not index then
        if code == "not_leader" then
            detail = self:_leader_detail() or detail
        end
        return cb(nil, code, detail)
    end
    local ch = { peer = peer, want = want, cb = cb }
    ch.timer = core().timer(timeout_ms, 0, function()
        for i, x in ipairs(self._changes) do
            if x == ch then
                tremove(self._changes, i)
                break
            end
        end
        protect(cb, nil, "timeout", format("the change of %s (config entry %d) did not "
                                           .. "complete on %s within %d ms", peer, index,
                                           self._id, timeout_ms))
    end)
    self._changes[#self._changes + 1] = ch
    if not self._change_timer then
        self._change_timer = core().timer(CHANGE_POLL_MS, CHANGE_POLL_MS, function()
            self:_settle_changes()
        end)
    end
    self:_settle_changes()
end

function net:_add_peer(_, peer, addr, voter, timeout_ms, cb)
    local problem = address.problem(addr)
    if problem then
        return cb(nil, "invalid", format("add_peer(%q, %q): address %s", peer, addr, problem))
    end
    self:_change(peer, voter and "voter" or "learner", timeout_ms, cb, function()
        return self._core:add_peer(peer, addr, voter)
    end)
end

function net:_remove_peer(_, peer, timeout_ms, cb)
    self:_change(peer, "absent", timeout_ms, cb, function()
        return self._core:remove_peer(peer)
    end)
end

-- A read's deadline passed (b._deadlines).
local function read_expired(b, r)
    if b._reads[r.ctx] == r then
        b._reads[r.ctx] = nil
        protect(r.cb, nil, "timeout", format("read on %s not served within %d ms", b._id,
                                             r.timeout_ms))
    end
end

function net:_read(_, fn, timeout_ms, cb)
    if self._state ~= "running" or self._fsm_stopped then
        return cb(nil, "shutdown", self._fsm_stopped or format("node %s is not running",
                                                                self._id))
    end
    if not self._core.read_index then
        return cb(nil, "invalid", "this build's node binding has no reads")
    end
    -- Contexts are this node's own: any positive integer the core hands back to the read
    -- hook (csrc/core/read.c batches the reads of one heartbeat round).
    self._read_ctx = self._read_ctx + 1
    local ctx = self._read_ctx
    -- Listed first: should the core answer at once, the hook finds the read.
    local r = { fn = fn, cb = cb, expire = read_expired, ctx = ctx, timeout_ms = timeout_ms,
                deadline = 0, done = false }
    self._reads[ctx] = r
    local ok, code, detail = self._core:read_index(ctx)
    if not ok then
        self._reads[ctx] = nil
        if code == "not_leader" then
            detail = self:_leader_detail() or detail
        end
        return cb(nil, code, detail)
    end
    if self._reads[ctx] ~= r then
        return -- answered already
    end
    self._deadlines:add(timeout_ms, r)
end

function net:_read_stale(_, fn)
    if self._state ~= "running" then
        return nil, "shutdown", format("node %s is not running", self._id)
    end
    return fn(self._fsm)
end

-- How long past the core's own limit (an election timeout, csrc/core/transfer.c) a
-- transfer waits for the new leader to be heard of: its first heartbeat must arrive.
local TRANSFER_MARGIN_MS = 200

function net:_transfer(_, target, cb)
    if self._state ~= "running" then
        return cb(nil, "shutdown", format("node %s is not running", self._id))
    end
    if not self._core.transfer then
        return cb(nil, "invalid", "this build's node binding has no leadership transfer")
    end
    local role, term = self._core:state()
    if role ~= "leader" then
        return cb(nil, "not_leader", self:_leader_detail())
    end
    local ok, code, detail = self._core:transfer(target)
    if not ok then
        return cb(nil, code, detail)
    end
    local t = { term = term, cb = cb }
    local wait = self._election_ms + TRANSFER_MARGIN_MS
    t.timer = core().timer(wait, 0, function()
        for i, x in ipairs(self._transfers) do
            if x == t then
                tremove(self._transfers, i)
                protect(cb, nil, "timeout", format("no new leader within %d ms (%s leads on)",
                                                   wait, self._id))
                return
            end
        end
    end)
    self._transfers[#self._transfers + 1] = t
end

-- Fail every pending change, read and transfer (the node shuts down).
local function fail_pending(b, detail)
    local changes, reads, transfers = b._changes, b._reads, b._transfers
    b._changes, b._reads, b._transfers = {}, {}, {}
    if b._change_timer then
        b._change_timer:stop()
        b._change_timer = nil
    end
    local ctxs = {}
    for ctx in each(reads) do ctxs[#ctxs + 1] = ctx end
    sort(ctxs)
    for _, ctx in ipairs(ctxs) do
        reads[ctx].done = true
        protect(reads[ctx].cb, nil, "shutdown", detail)
    end
    local retries = b._retries
    b._retries = {}
    for timer, cb in each(retries) do
        timer:stop()
        protect(cb, nil, "shutdown", detail)
    end
    for _, list in ipairs({ changes, transfers }) do
        for _, x in ipairs(list) do
            x.timer:stop()
            protect(x.cb, nil, "shutdown", detail)
        end
    end
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

-- A write's deadline passed (b._deadlines): its waiter leaves the index's waiters.
local function wait_expired(b, w)
    local x = b._waiters[w.index]
    if x == w then
        b._waiters[w.index] = nil
    elseif x and not x.cb then
        for i, y in ipairs(x) do
            if y == w then
                tremove(x, i)
                break
            end
        end
        if #x == 0 then b._waiters[w.index] = nil end
    end
    protect(w.cb, nil, "timeout", format("index %d not applied on %s within %d ms (it may "
                                         .. "still commit)", w.index, b._id, w.timeout_ms))
end

function net:_wait(_, index, term, timeout_ms, cb)
    -- (Every field from the start: a field added later can make the table grow.)
    local w = { term = term, cb = cb, index = index, timeout_ms = timeout_ms,
                expire = wait_expired, deadline = 0, done = false }
    local x = self._waiters[index]
    if x == nil then
        self._waiters[index] = w
    elseif x.cb then
        self._waiters[index] = { x, w }
    else
        x[#x + 1] = w
    end
    self._deadlines:add(timeout_ms, w)
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
        log_event(self, 0, "recovery", nil, "recovery: %s", note)
    end
    check_membership(self, true)
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
        local server, ccode, cdetail = control.serve(self._node, self._control_path,
                                                     { max_clients = self._max_clients })
        if not server then
            self:_shutdown()
            return nil, ccode, cdetail
        end
        self._control = server
    end
    if self._client then
        -- The ATLAS commands on a Redis-protocol port (docs/atlas.md): loaded only here,
        -- so that a node without the port never loads ATLAS.
        local server, ccode, cdetail = require("helios.atlas.server").start(self._node,
                                                                            self._client)
        if not server then
            self:_shutdown()
            return nil, ccode, cdetail
        end
        self._client_server = server
    end
    if self._metrics_listen then
        -- The metrics endpoint (docs/metrics.md): rendered on each scrape, on this loop.
        local node = self._node
        local server, mcode, mdetail = core().metrics_listen(self._metrics_listen, function()
            local fams = node:metrics()
            return fams and require("helios.metrics").render(fams) or ""
        end)
        if not server then
            self:_shutdown()
            return nil, mcode, mdetail
        end
        self._metrics_server = server
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
    elseif job and job.cancel then
        job.cancel()
    end
    if self._control then
        self._control:close()
        self._control = nil
    end
    if self._client_server then
        self._client_server:close()
        self._client_server = nil
    end
    if self._metrics_server then
        self._metrics_server:close()
        self._metrics_server = nil
    end
    fail_all(self, "shutdown", format("node %s shut down", self._id))
    fail_pending(self, format("node %s shut down", self._id))
    self._deadlines:clear()
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
