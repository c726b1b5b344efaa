--- helios.control: the control socket of a node (the server side; helios.client is the
-- client).
--
--   local control = require("helios.control")
--   local server, code, detail = control.serve(node, "/data/node-1/control.sock",
--                                              { max_clients = 10000 })
--   server:close()
--   server:clients()   -- { clients = open connections, refused =, max_clients = }
--
-- A client beyond max_clients open connections (default 10000) is accepted and gets one
-- frame, {ok = false, code = "busy", detail = "max number of clients reached ..."}, with
-- no id, then end of file: helios.client returns it as nil, "busy", detail.
--
-- raft.new{ control = path } does this itself when the node starts. The socket is a unix
-- socket with mode 0600; frames and messages are those of the control protocol:
-- requests {id = <int>, op = <string>, ...}, responses {id, ok = true, ...} or
-- {id, ok = false, code = <string>, detail = <string>}. Ops:
--   "ping"     -> {ok}
--   "status"   -> {ok, status = node:status()}
--   "stats"    -> {ok, stats = node:stats()}
--   "apply"    {cmd = <bytes>, timeout_ms} -> {ok, index, term, result}
--                                          or {ok = false, code = "not_leader" | ..., detail}
--              timeout_ms: a non-negative number of ms (a fraction is rounded up).
--              code "fsm_error": the entry was committed and applied but fsm:apply raised,
--              or its result could not be encoded (detail names the index and term):
--              retrying would apply the command again.
--   "snapshot" -> {ok, index}: node:snapshot() (the write completes later)
--                 or {ok = false, code = "busy" | "invalid" | ..., detail}
--   "shutdown" -> {ok}, then the node shuts down cleanly
--   "peer_add" {peer = <id>, addr = "host:port", voter = <bool, default true>, timeout_ms}
--              -> {ok} once the configuration with the peer as asked has committed
--              (node:add_peer, on the leader), or {ok = false, code, detail}:
--              "not_leader" (detail "<leader> at <addr>" when known), "busy", "invalid",
--              "timeout", "shutdown"
--   "peer_remove" {peer, timeout_ms} -> as peer_add (node:remove_peer)
--   "peers"    -> {ok, configuration = status().configuration, peers = status().peers,
--              leader = status().leader}: voters, learners, addresses, match, caught_up
--   "read"     {key = <string>, stale = <bool>, timeout_ms} -> {ok, value = fsm:get(key)}
--              for an FSM with a get method (helios.fsm.kv): a linearizable read
--              (node:read: ReadIndex, or the lease with read_lease), or with stale = true
--              the local state at once (node:read_stale); {ok = false, code, detail}:
--              "not_leader", "timeout", "shutdown", "invalid" (the FSM has no get)
--   "transfer" {peer = <id or absent>} -> {ok, leader = <the new leader's id>}
--              (node:transfer_leadership, on the leader) or {ok = false, code, detail}
--   "eval"     {code = <chunk text>} -> {ok, results = <text>, output = <what print wrote>}
--              or {ok = false, code = "syntax" | "error" | "cancelled", detail, output}:
--              the chunk runs in a coroutine on the node's loop in this connection's
--              console session (helios.console, docs/console.md); results rendered on the
--              node (tables indented, keys sorted, strings quoted, cycles marked; one
--              value a line)
--   "complete" {prefix} -> {ok, candidates = { ... }}: names of this connection's session
--              (helpers, globals, fields of a dotted or colon path) that start with prefix
--   "cancel"   {target = <the id of an eval on this connection>} -> {ok, cancelled =
--              <bool>}: the eval answers "cancelled" at once (if still running)
-- A request that is not well formed gets {ok = false, code = "bad_request", detail}; an
-- unknown op {ok = false, code = "unknown_op", detail}.

local type, format, tostring, pcall, floor, huge = type, string.format, tostring, pcall,
    math.floor, math.huge
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local setmetatable, each = setmetatable, pairs

local M = {}

local function fail(reply, id, code, detail)
    reply({ id = id, ok = false, code = code, detail = detail })
end

-- Send a response whose payload comes from the node (an FSM result may be anything):
-- if it cannot be encoded, say so instead of failing the loop.
local function send(reply, resp)
    local ok, err = pcall(reply, resp)
    if not ok then
        reply({ id = resp.id, ok = false, code = "bad_result", detail = tostring(err) })
    end
end

local ops = {}

function ops.ping(_, req, reply)
    reply({ id = req.id, ok = true })
end

function ops.status(node, req, reply)
    send(reply, { id = req.id, ok = true, status = node:status() })
end

function ops.stats(node, req, reply)
    send(reply, { id = req.id, ok = true, stats = node:stats() })
end

-- The outcome of an apply, as the answer to request id.
local function answer_apply(reply, id, index, term, result)
    if not index then
        return fail(reply, id, term, result)
    end
    -- The node checked that the result can be encoded (raft.apply_entry); should the
    -- answer still not go out, the entry is applied all the same: say so, never answer
    -- as if the command had failed before it committed.
    local ok, err = pcall(reply, { id = id, ok = true, index = index, term = term,
                                   result = result })
    if not ok then
        fail(reply, id, "fsm_error", format("fsm apply at index %d (term %d): the "
             .. "command was applied, but its result cannot be sent: %s", index, term,
             tostring(err)))
    end
end

-- node:apply with a callback, proposed from this handler: no coroutine, timer or closure
-- of the loop's per request (at tens of thousands of applies a second those were much of
-- the collector's work). The proposals of one loop turn still go out as one batch: the
-- node flushes them once per turn.
function ops.apply(node, req, reply)
    if type(req.cmd) ~= "string" then
        return fail(reply, req.id, "bad_request", "apply: cmd must be a string (bytes)")
    end
    local timeout = req.timeout_ms
    if timeout ~= nil and (type(timeout) ~= "number" or not (timeout >= 0) or timeout == huge) then
        return fail(reply, req.id, "bad_request",
                    "apply: timeout_ms must be a non-negative number of milliseconds")
    end
    local id = req.id
    node:apply(req.cmd, timeout, function(index, term, result)
        answer_apply(reply, id, index, term, result)
    end)
end

function ops.snapshot(node, req, reply)
    local index, code, detail = node:snapshot()
    if index then
        reply({ id = req.id, ok = true, index = index })
    else
        fail(reply, req.id, code, detail)
    end
end

local function check_timeout(req, reply, what)
    local timeout = req.timeout_ms
    if timeout ~= nil and (type(timeout) ~= "number" or not (timeout >= 0) or timeout == huge) then
        fail(reply, req.id, "bad_request",
             what .. ": timeout_ms must be a non-negative number of milliseconds")
        return false
    end
    return true
end

-- Run a blocking node call in a coroutine on the loop and answer with its outcome:
-- {ok, <name> = first value} or {ok = false, code, detail}.
local function answer(reply, id, name, call)
    require("helios.loop").spawn(function()
        local v, code, detail = call()
        if v == nil then
            return fail(reply, id, code or "unknown", detail)
        end
        local resp = { id = id, ok = true }
        if name then resp[name] = v end
        send(reply, resp)
    end)
end

ops["peer_add"] = function(node, req, reply)
    if type(req.peer) ~= "string" or req.peer == "" or type(req.addr) ~= "string" then
        return fail(reply, req.id, "bad_request", "peer_add: peer and addr must be strings")
    end
    if req.voter ~= nil and type(req.voter) ~= "boolean" then
        return fail(reply, req.id, "bad_request", "peer_add: voter must be a boolean")
    end
    if not check_timeout(req, reply, "peer_add") then return end
    answer(reply, req.id, nil, function()
        return node:add_peer(req.peer, req.addr, { voter = req.voter,
                                                   timeout_ms = req.timeout_ms })
    end)
end

ops["peer_remove"] = function(node, req, reply)
    if type(req.peer) ~= "string" or req.peer == "" then
        return fail(reply, req.id, "bad_request", "peer_remove: peer must be a string")
    end
    if not check_timeout(req, reply, "peer_remove") then return end
    answer(reply, req.id, nil, function()
        return node:remove_peer(req.peer, { timeout_ms = req.timeout_ms })
    end)
end

function ops.peers(node, req, reply)
    local st = node:status()
    send(reply, { id = req.id, ok = true, configuration = st.configuration, peers = st.peers,
                  leader = st.leader, role = st.role, term = st.term })
end

-- Linearizable reads share node:read calls, as the RESP port's do (lua/helios/atlas/
-- server.lua): the reads of one loop turn, from every connection, with the same timeout_ms
-- go into one batch, read at the start of the next turn (a zero timer) by one node:read
-- that looks every key up at its read index and answers each. A read then costs three
-- slots of a list here, not a node:read of its own (its table, two closures, a deadline,
-- a read context in the core). Safe: every read of a batch arrived before the batch's
-- node:read was called, so its read index covers whatever was acknowledged before any of
-- them arrived. pending_reads[node] = { [timeout_ms or false] = { n, then key, id, reply
-- per read } }.
local pending_reads = setmetatable({}, { __mode = "k" })

local function read_batch(node, timeout, b)
    local n, values, errs = b.n, {}, nil
    local function eval(fsm)
        if type(fsm.get) ~= "function" then
            return false -- (first: a nil value is a result, not a failure of node:read)
        end
        for i = 1, n, 3 do
            local ok, v = pcall(fsm.get, fsm, b[i])
            if ok then
                values[i] = v
            else
                errs = errs or {}
                errs[i] = tostring(v)
            end
        end
        return true
    end
    local function done(found, code, detail)
        for i = 1, n, 3 do
            local id, reply = b[i + 1], b[i + 2]
            if found == nil then
                fail(reply, id, code or "unknown", detail)
            elseif not found then
                fail(reply, id, "invalid", "read: the FSM has no get method")
            elseif errs and errs[i] then
                fail(reply, id, "read_error", format("read of %q on %s failed: %s", b[i],
                                                     tostring(node.id), errs[i]))
            else
                send(reply, { id = id, ok = true, value = values[i] })
            end
        end
    end
    local ok, err = pcall(node.read, node, eval, timeout, done)
    if not ok then -- (from a timer: raising would stop the node's loop)
        done(nil, "unknown", tostring(err))
    end
end

function ops.read(node, req, reply)
    if type(req.key) ~= "string" then
        return fail(reply, req.id, "bad_request", "read: key must be a string")
    end
    if req.stale ~= nil and type(req.stale) ~= "boolean" then
        return fail(reply, req.id, "bad_request", "read: stale must be a boolean")
    end
    if not check_timeout(req, reply, "read") then return end
    if req.stale then
        local found, value_or_code, detail = node:read_stale(function(fsm)
            if type(fsm.get) ~= "function" then
                return false
            end
            return true, fsm:get(req.key)
        end)
        if found == nil then
            return fail(reply, req.id, value_or_code or "unknown", detail)
        elseif not found then
            return fail(reply, req.id, "invalid", "read: the FSM has no get method")
        end
        return send(reply, { id = req.id, ok = true, value = value_or_code })
    end
    local batches = pending_reads[node]
    if not batches then
        batches = {}
        pending_reads[node] = batches
        require("helios.loop").after(0, function()
            pending_reads[node] = nil
            for timeout, b in each(batches) do
                read_batch(node, timeout or nil, b)
            end
        end)
    end
    local t = req.timeout_ms or false
    local b = batches[t]
    if not b then
        b = { n = 0 }
        batches[t] = b
    end
    local n = b.n
    b[n + 1], b[n + 2], b[n + 3] = req.key, req.id, reply
    b.n = n + 3
end

function ops.transfer(node, req, reply)
    if req.peer ~= nil and (type(req.peer) ~= "string" or req.peer == "") then
        return fail(reply, req.id, "bad_request", "transfer: peer must be a node id")
    end
    answer(reply, req.id, "leader", function()
        return node:transfer_leadership(req.peer)
    end)
end

-- Console sessions: one per connection (keyed by the connection, weakly).
local sessions = setmetatable({}, { __mode = "k" })

local function session(node, conn)
    local s = sessions[conn]
    if not s then
        s = { env = require("helios.console").env(node), evals = {} }
        sessions[conn] = s
    end
    return s
end

function ops.eval(node, req, reply, conn)
    if type(req.code) ~= "string" then
        return fail(reply, req.id, "bad_request", "eval: code must be a string")
    end
    local s = session(node, conn)
    local id = req.id
    local answered = false
    local handle = require("helios.console").eval(s.env, req.code, function(resp)
        answered = true
        s.evals[id] = nil
        resp.id = id
        send(reply, resp)
    end, { conn = conn, id = id })
    if not answered then s.evals[id] = handle end
end

function ops.complete(node, req, reply, conn)
    if type(req.prefix) ~= "string" then
        return fail(reply, req.id, "bad_request", "complete: prefix must be a string")
    end
    local s = session(node, conn)
    send(reply, { id = req.id, ok = true,
                  candidates = require("helios.console").complete(s.env, req.prefix) })
end

function ops.cancel(node, req, reply, conn)
    if type(req.target) ~= "number" then
        return fail(reply, req.id, "bad_request", "cancel: target must be a request id")
    end
    local s = session(node, conn)
    local h = s.evals[req.target]
    if h then h.cancel() end
    reply({ id = req.id, ok = true, cancelled = h ~= nil })
end

function ops.shutdown(node, req, reply)
    reply({ id = req.id, ok = true })
    -- From the next loop turn: the node's shutdown closes this server, and the reply is
    -- flushed before the connection closes.
    require("helios.loop").after(0, function() node:shutdown() end)
end

--- Serve the control protocol for node on a unix socket at path.
-- @tparam[opt] table opts { max_clients = open connections at most (default 10000) }
-- @return a server with :close(), or nil, code, detail ("busy": a live socket is there)
function M.serve(node, path, opts)
    if type(path) ~= "string" or path == "" then
        error("Usage: control.serve(node, path)", 2)
    end
    local core = require("helios.core")
    require("helios.console").record(node)
    return core.control_listen(path, function(req, reply, conn)
        local id = req.id
        if type(id) ~= "number" or id ~= floor(id) then
            return fail(reply, nil, "bad_request", "id must be an integer")
        end
        local op = ops[req.op]
        if type(req.op) ~= "string" or not op then
            return fail(reply, id, "unknown_op", format("unknown op %q", tostring(req.op)))
        end
        op(node, req, reply, conn)
    end, { max_clients = opts and opts.max_clients })
end

return M
