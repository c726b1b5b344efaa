--- helios.control: the control socket of a node (the server side; helios.client is the
-- client).
--
--   local control = require("helios.control")
--   local server, code, detail = control.serve(node, "/data/node-1/control.sock")
--   server:close()
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
-- A request that is not well formed gets {ok = false, code = "bad_request", detail}; an
-- unknown op {ok = false, code = "unknown_op", detail}.

local type, format, tostring, pcall, floor, huge = type, string.format, tostring, pcall,
    math.floor, math.huge

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

function ops.apply(node, req, reply)
    local loop = require("helios.loop")
    if type(req.cmd) ~= "string" then
        return fail(reply, req.id, "bad_request", "apply: cmd must be a string (bytes)")
    end
    local timeout = req.timeout_ms
    if timeout ~= nil and (type(timeout) ~= "number" or not (timeout >= 0) or timeout == huge) then
        return fail(reply, req.id, "bad_request",
                    "apply: timeout_ms must be a non-negative number of milliseconds")
    end
    loop.spawn(function()
        local index, term, result = node:apply(req.cmd, timeout)
        if not index then
            return fail(reply, req.id, term, result)
        end
        -- The node checked that the result can be encoded (raft.apply_entry); should the
        -- answer still not go out, the entry is applied all the same: say so, never answer
        -- as if the command had failed before it committed.
        local ok, err = pcall(reply, { id = req.id, ok = true, index = index, term = term,
                                       result = result })
        if not ok then
            fail(reply, req.id, "fsm_error", format("fsm apply at index %d (term %d): the "
                 .. "command was applied, but its result cannot be sent: %s", index, term,
                 tostring(err)))
        end
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

function ops.shutdown(node, req, reply)
    reply({ id = req.id, ok = true })
    -- From the next loop turn: the node's shutdown closes this server, and the reply is
    -- flushed before the connection closes.
    require("helios.loop").after(0, function() node:shutdown() end)
end

--- Serve the control protocol for node on a unix socket at path.
-- @return a server with :close(), or nil, code, detail ("busy": a live socket is there)
function M.serve(node, path)
    if type(path) ~= "string" or path == "" then
        error("Usage: control.serve(node, path)", 2)
    end
    local core = require("helios.core")
    return core.control_listen(path, function(req, reply)
        local id = req.id
        if type(id) ~= "number" or id ~= floor(id) then
            return fail(reply, nil, "bad_request", "id must be an integer")
        end
        local op = ops[req.op]
        if type(req.op) ~= "string" or not op then
            return fail(reply, id, "unknown_op", format("unknown op %q", tostring(req.op)))
        end
        op(node, req, reply)
    end)
end

return M
