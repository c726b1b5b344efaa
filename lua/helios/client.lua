--- helios.client: talk to running nodes: through their control sockets (status, apply,
-- membership: the operator's view), or through an ATLAS RESP port (a "host:port" address:
-- the application's view, commands as redis-cli sends them).
--
-- One node:
--
--   local client = require("helios.client")
--   local c = assert(client.connect("./data/node-1/control.sock"))
--   local st = c:status()                 -- node:status() of that node
--   local index, term, result = c:apply("set k v", 2000)
--                                         -- or nil, code, detail: "not_leader" (detail
--                                         -- names the leader if known), "timeout",
--                                         -- "fsm_error" (applied, but the FSM raised), ...
--   c:stats()  c:ping()  c:shutdown()  c:close()
--   local answers = c:apply_many({ "set a 1", "set b 2" })   -- pipelined: one write, the
--                                         -- answers in order ({ ok, index, term, result }
--                                         -- or { ok = false, code, detail } each)
--   c:pipeline({ { op = "ping" }, { op = "status" } })   -- any requests, pipelined
--   c:add_peer("node-4", "127.0.0.1:9004"[, { voter = false, timeout_ms = N }])  -- true
--   c:remove_peer("node-2"[, { timeout_ms = N }])  c:peers()  c:transfer(["node-2"])
--   local ok, value = c:read("k"[, { stale = true, timeout_ms = N }])  -- fsm:get("k")
--
-- A whole cluster (what helios.testing's cl:client() returns): finds the leader and follows
-- "not_leader" answers, across node failures:
--
--   local cc = client.cluster{ ["node-1"] = "./data/node-1/control.sock", ... }
--   local index, term, result = cc:apply("incr hits", 5000)
--   local id, status = cc:leader(5000)    -- waits for a leader, nil on timeout
--   cc:status("node-2")  cc:close()
--   cc:add_peer(id, addr[, opts])  cc:remove_peer(id[, opts])  cc:transfer([id])
--                                         -- on whichever node leads
--
-- The wire: each frame is a 4-byte big-endian length, a 4-byte big-endian CRC32C of the
-- payload, then the payload, one msgpack map. Request {id, op, ...}; response {id, ok=true,
-- ...} or {id, ok=false, code, detail}. Failures of the socket itself come back as the
-- codes "refused", "timeout", "closed", "bad_checksum", "too_large" or "io".
--
-- Over RESP (an address "host:port": a node's client_listen port, or any Redis-protocol
-- server; helios.client.resp has the connection underneath and the reply values):
--
--   local c = assert(client.connect("127.0.0.1:7001"[, { password =, timeout_ms = }]))
--   c:call("SET", "k", "v")   c:call({ "GET", "k" })   -- the reply, or nil, code, detail:
--                                         -- an error reply's first word ("MOVED", "ERR",
--                                         -- ...) and the rest, or "refused", "timeout",
--                                         -- "closed", "io", "protocol", "too_large"
--   c:set(k, v[, ttl_ms[, { nx = true } | { xx = true }]])  -- true, or false (NX/XX: no)
--   c:get(k)  (false: no such key)  c:delete(k)  c:incr(k[, by])  c:close()
--   c:send(argv)  c:receive([timeout_ms])  -- pipelining
--
--   local cc = client.cluster({ "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003" },
--       { timeout_ms = 5000, password = "secret" })   -- or { [id] = "host:port" }
--   cc:call("INCR", "hits")               -- on the leader, following -MOVED; CLUSTERDOWN,
--                                         -- TRYAGAIN, a node down: the next one, until
--                                         -- timeout_ms; a write whose outcome is unknown:
--                                         -- nil, "unknown", detail (never sent twice)
--   cc:set / get / delete / incr          -- as c's
--   local s = cc:session()                -- ATLAS.SESSION: writes applied exactly once
--   s:call("INCR", "hits")                -- ATLAS.NUMBERED id seq INCR hits, retried with
--                                         -- the same seq across leader changes
--   cc:leader()                           -- the leader's client address
--
-- Every timeout_ms here is a non-negative number of milliseconds; fractions are fine (a
-- remaining time computed from core.clock_ms() is one): what goes on the wire is rounded
-- up to whole milliseconds. 0 means "do not wait": an answer must already be there.
--
-- Every call that waits (connect, call and what is built on it, cc:leader, cc:apply)
-- yields when called in a coroutine on the loop (raft.spawn, loop.spawn): the coroutine
-- waits for the socket through the loop while the process's nodes, timers and other
-- coroutines go on. Called anywhere else it blocks the process for at most its timeout.

local core = require("helios.core")
local loop = require("helios.loop")
local sock_util = require("helios.util.sock")

local format, find = string.format, string.find
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local error, each, ipairs, type, tostring, setmetatable = error, pairs, ipairs, type, tostring,
    setmetatable
local sort = table.sort
local ceil = math.ceil
local encode, decode = core.mp_encode, core.mp_decode
local clock_ms = core.clock_ms

local M = {}

--- Default time to wait for a connection or an answer, in ms.
M.DEFAULT_TIMEOUT_MS = 5000
--- Extra time to wait for an "apply" answer beyond the apply's own timeout: the node
-- answers "timeout" itself at timeout_ms, and that answer has to travel back.
M.APPLY_MARGIN_MS = 1000

-- Raise a Usage error unless ms is nil or a non-negative finite number; ms or the default.
local check_ms = sock_util.check_ms

local await = loop.await

-- helios.client.resp, loaded when a RESP address is first used.
local resp_mod
local function resp()
    resp_mod = resp_mod or require("helios.client.resp")
    return resp_mod
end

--- Whether addr is a "host:port" (a RESP port) rather than a control socket's path.
function M.is_resp_address(addr)
    return type(addr) == "string" and find(addr, "^[^/]*:%d+$") ~= nil
end

-- Connect to path: yields in a coroutine on the loop, blocks otherwise.
local connect = sock_util.connect

-- Send data with the socket's blocking method off the loop, or its try_ method and a wait
-- for room on it: yields in a coroutine on the loop, blocks otherwise. A send that times
-- out closes the socket (the node would see a partial frame), as the blocking one does.
local function send_with(sock, blocking, try, data, timeout_ms, what)
    if not loop.on_loop() then return blocking(sock, data, timeout_ms) end
    local ok, code, detail = try(sock, data)
    if code == "again" then
        ok, code, detail = await(sock, sock.try_flush, "w", timeout_ms,
                                 what .. " not sent within the timeout")
        if code == "timeout" then sock:close() end
    end
    return ok, code, detail
end

-- Send one frame.
local function send(sock, payload, timeout_ms)
    return send_with(sock, sock.send_frame, sock.try_send_frame, payload, timeout_ms, "frame")
end

-- Send bytes (frames, already made).
local function send_raw(sock, bytes, timeout_ms)
    return send_with(sock, sock.send_raw, sock.try_send_raw, bytes, timeout_ms, "frames")
end

-- Receive one frame: yields in a coroutine on the loop, blocks otherwise. A timeout keeps
-- what arrived of a frame: the next call goes on from there.
local function recv(sock, timeout_ms)
    if not loop.on_loop() then return sock:recv_frame(timeout_ms) end
    -- What was read already first, without a read(): right after a request, its answer
    -- cannot be in the kernel yet, and that read would only say EAGAIN.
    local v, code, detail = sock:try_recv_frame(nil, true)
    if v or code ~= "again" then return v, code, detail end
    return await(sock, sock.try_recv_frame, "r", timeout_ms, "no frame within the timeout",
                 true)
end

local Client = {}
Client.__index = Client
Client.__name = "helios.client.client"

function Client:__tostring()
    return format("helios.client.client(%s%s)", self.path, self.sock and "" or ", closed")
end

--- Connect to a node's control socket, or to a RESP port ("host:port": a RESP client,
-- helios.client.resp's connection). Yields when called in a coroutine on the loop, blocks
-- otherwise.
-- @tparam string path the control socket's path, or "host:port"
-- @tparam[opt] number|table timeout_ms default M.DEFAULT_TIMEOUT_MS; for a RESP port
--   also a table { timeout_ms, password, max_bytes }
-- @return a client, or nil, code, detail
function M.connect(path, timeout_ms)
    if M.is_resp_address(path) then
        local opts = timeout_ms
        if type(opts) ~= "table" then
            opts = { timeout_ms = check_ms(timeout_ms, "client.connect(addr[, timeout_ms])") }
        end
        return resp().connect(path, opts)
    end
    if type(path) ~= "string" then
        error("Usage: client.connect(path[, timeout_ms])", 2)
    end
    timeout_ms = check_ms(timeout_ms, "client.connect(path[, timeout_ms])", M.DEFAULT_TIMEOUT_MS)
    local sock, code, detail = connect(path, timeout_ms)
    if not sock then return nil, code, detail end
    return setmetatable({ path = path, sock = sock, next_id = 0, timeout_ms = timeout_ms },
                        Client)
end

-- The next answer on c's connection, waiting until deadline: the decoded response, or
-- nil, code, detail. A failure with no id answers no request: the node refused the
-- connection (code "busy": max_clients reached, helios.control) and closes it.
local function next_answer(c, deadline)
    local left = deadline - clock_ms()
    if left < 0 then left = 0 end
    local payload, code, detail = recv(c.sock, left)
    if not payload then
        if code ~= "timeout" then c.sock = nil end
        return nil, code, detail
    end
    local resp, err = decode(payload)
    if type(resp) ~= "table" then
        c:close()
        return nil, "io", "undecodable response: " .. tostring(err)
    end
    if resp.id == nil and resp.ok == false then
        c:close()
        return nil, resp.code or "protocol", resp.detail or "the connection was refused"
    end
    return resp
end

--- Send one request and wait for its answer. Yields when called in a coroutine on the
-- loop, blocks otherwise (so do status, stats, apply, ping and shutdown, built on it).
-- @tparam string op the operation ("status", "stats", "apply", "ping", "shutdown", ...)
-- @tparam[opt] table fields more request fields
-- @tparam[opt] number timeout_ms
-- @treturn table the response (ok = true), or nil, code, detail
function Client:call(op, fields, timeout_ms)
    if type(op) ~= "string" then error("Usage: c:call(op[, fields[, timeout_ms]])", 2) end
    timeout_ms = check_ms(timeout_ms, "c:call(op[, fields[, timeout_ms]])", self.timeout_ms)
    if not self.sock then return nil, "closed", "the client is closed" end
    self.next_id = self.next_id + 1
    local id = self.next_id
    local req = { id = id, op = op }
    for k, v in each(fields or {}) do req[k] = v end
    local ok, code, detail = send(self.sock, encode(req), timeout_ms)
    if not ok then
        self.sock = nil
        return nil, code, detail
    end
    local deadline = clock_ms() + timeout_ms
    while true do
        local resp
        resp, code, detail = next_answer(self, deadline)
        if not resp then return nil, code, detail end
        -- Answers to requests that timed out earlier may still arrive: skip them.
        if resp.id == id then
            if resp.ok then return resp end
            return nil, resp.code or "protocol", resp.detail or "an answer with neither ok nor a code"
        end
    end
end

--- Pipelining: send several requests at once (one write) and wait for every answer. The
-- node handles them in order and writes the answers of one loop turn together, so n
-- requests cost about one round trip instead of n. Yields when called in a coroutine on
-- the loop, blocks otherwise.
-- @tparam table reqs a list of requests { op = <string>, <more fields> } (as c:call's
--   op and fields)
-- @tparam[opt] number timeout_ms for all of them together
-- @treturn table the answers in request order: each a response table, { ok = true, ... }
--   or { ok = false, code = <string>, detail = <string> }; or nil, code, detail when the
--   socket failed or the time ran out (the answers that came are then not returned)
-- @usage local answers = c:pipeline({ { op = "ping" }, { op = "apply", cmd = "set k v" } })
function Client:pipeline(reqs, timeout_ms)
    if type(reqs) ~= "table" then error("Usage: c:pipeline(reqs[, timeout_ms])", 2) end
    timeout_ms = check_ms(timeout_ms, "c:pipeline(reqs[, timeout_ms])", self.timeout_ms)
    if not self.sock then return nil, "closed", "the client is closed" end
    local n = #reqs
    local out, payloads, pos = {}, {}, {}
    if n == 0 then return out end
    for i = 1, n do
        local r = reqs[i]
        if type(r) ~= "table" or type(r.op) ~= "string" then
            error(format("Usage: c:pipeline(reqs[, timeout_ms]): request %d needs an op", i), 2)
        end
        self.next_id = self.next_id + 1
        local req = { id = self.next_id }
        for k, v in each(r) do req[k] = v end
        req.id = self.next_id
        pos[self.next_id] = i
        payloads[i] = encode(req)
    end
    local ok, code, detail = send_raw(self.sock, core.frames(payloads), timeout_ms)
    if not ok then
        self.sock = nil
        return nil, code, detail
    end
    local deadline, left_to_answer = clock_ms() + timeout_ms, n
    while left_to_answer > 0 do
        local resp
        resp, code, detail = next_answer(self, deadline)
        if not resp then return nil, code, detail end
        local i = pos[resp.id] -- (answers to requests that timed out earlier: skipped)
        if i and out[i] == nil then
            if not resp.ok and resp.code == nil then
                resp.code, resp.detail = "protocol", "an answer with neither ok nor a code"
            end
            out[i] = resp
            left_to_answer = left_to_answer - 1
        end
    end
    return out
end

--- Pipelined applies: cmds (a list of strings) sent at once, each replicated through the
-- node (which must lead) as by c:apply. The node proposes the commands of one read
-- together, in order, so they take consecutive log entries when it leads throughout.
-- @tparam table cmds the commands
-- @tparam[opt] number timeout_ms of each apply (as c:apply's)
-- @treturn table in the order of cmds: { ok = true, index, term, result } or { ok = false,
--   code, detail } (as c:apply's failures: one command's failure, such as "fsm_error",
--   concerns that command alone); or nil, code, detail as c:pipeline
-- @usage for _, r in ipairs(assert(c:apply_many({ "set a 1", "set b 2" }))) do ... end
function Client:apply_many(cmds, timeout_ms)
    if type(cmds) ~= "table" then error("Usage: c:apply_many(cmds[, timeout_ms])", 2) end
    timeout_ms = ceil(check_ms(timeout_ms, "c:apply_many(cmds[, timeout_ms])", self.timeout_ms))
    local reqs = {}
    for i = 1, #cmds do
        if type(cmds[i]) ~= "string" then
            error(format("Usage: c:apply_many(cmds[, timeout_ms]): command %d is not a string",
                         i), 2)
        end
        reqs[i] = { op = "apply", cmd = cmds[i], timeout_ms = timeout_ms }
    end
    local out, code, detail = self:pipeline(reqs, timeout_ms + M.APPLY_MARGIN_MS)
    if not out then return nil, code, detail end
    for i = 1, #out do out[i].id = nil end
    return out
end

--- node:status() of the node. Yields when called in a coroutine on the loop, blocks
-- otherwise.
function Client:status(timeout_ms)
    local r, code, detail = self:call("status", nil, timeout_ms)
    if not r then return nil, code, detail end
    return r.status
end

--- node:stats() of the node. Yields when called in a coroutine on the loop, blocks
-- otherwise.
function Client:stats(timeout_ms)
    local r, code, detail = self:call("stats", nil, timeout_ms)
    if not r then return nil, code, detail end
    return r.stats
end

--- Replicate cmd through the node (which must lead) and wait until it is applied there.
-- Yields when called in a coroutine on the loop, blocks otherwise.
-- @treturn number index, term, result (what the FSM returned), or nil, code, detail;
--   "fsm_error": committed and applied, but the FSM raised (detail names the index and
--   term): do not send it again as if it had failed
function Client:apply(cmd, timeout_ms)
    if type(cmd) ~= "string" then error("Usage: c:apply(cmd[, timeout_ms])", 2) end
    -- The node wants whole milliseconds (control.lua); never wait less than asked.
    timeout_ms = ceil(check_ms(timeout_ms, "c:apply(cmd[, timeout_ms])", self.timeout_ms))
    local r, code, detail = self:call("apply", { cmd = cmd, timeout_ms = timeout_ms },
        timeout_ms + M.APPLY_MARGIN_MS)
    if not r then return nil, code, detail end
    return r.index, r.term, r.result
end

--- Ask the node for a sign of life: true, or nil, code, detail. Yields when called in a
-- coroutine on the loop, blocks otherwise.
function Client:ping(timeout_ms)
    local r, code, detail = self:call("ping", nil, timeout_ms)
    if not r then return nil, code, detail end
    return true
end

--- Ask the node to shut down cleanly (it answers first). Yields when called in a
-- coroutine on the loop, blocks otherwise.
function Client:shutdown(timeout_ms)
    local r, code, detail = self:call("shutdown", nil, timeout_ms)
    if not r then return nil, code, detail end
    return true
end

--- Add a server to the cluster (the node must lead): true once the configuration that has
-- it (as a voter, unless opts.voter == false) committed, or nil, code, detail
-- ("not_leader" names the leader, "busy", "invalid", "timeout", ...). Yields when called
-- in a coroutine on the loop, blocks otherwise.
function Client:add_peer(peer, addr, opts)
    if type(peer) ~= "string" or type(addr) ~= "string" or (opts ~= nil and type(opts) ~= "table") then
        error("Usage: c:add_peer(id, addr[, { voter = false, timeout_ms = N }])", 2)
    end
    opts = opts or {}
    local timeout_ms = ceil(check_ms(opts.timeout_ms, "c:add_peer", self.timeout_ms))
    local r, code, detail = self:call("peer_add", { peer = peer, addr = addr,
        voter = opts.voter ~= false, timeout_ms = timeout_ms }, timeout_ms + M.APPLY_MARGIN_MS)
    if not r then return nil, code, detail end
    return true
end

--- Remove a server from the cluster (the node must lead): as c:add_peer.
function Client:remove_peer(peer, opts)
    if type(peer) ~= "string" or (opts ~= nil and type(opts) ~= "table") then
        error("Usage: c:remove_peer(id[, { timeout_ms = N }])", 2)
    end
    local timeout_ms = ceil(check_ms(opts and opts.timeout_ms, "c:remove_peer", self.timeout_ms))
    local r, code, detail = self:call("peer_remove", { peer = peer, timeout_ms = timeout_ms },
        timeout_ms + M.APPLY_MARGIN_MS)
    if not r then return nil, code, detail end
    return true
end

--- The node's view of the configuration: a table { configuration = { index, committed,
-- voters, learners, promoting }, peers = status().peers, leader, role, term }, or nil,
-- code, detail. Yields when called in a coroutine on the loop, blocks otherwise.
function Client:peers(timeout_ms)
    local r, code, detail = self:call("peers", nil, timeout_ms)
    if not r then return nil, code, detail end
    r.id, r.ok = nil, nil
    return r
end

--- Read key from the node's FSM (one with a get method, such as helios.fsm.kv):
-- linearizable (node:read), or the node's local state with opts.stale. Returns true, the
-- value (nil if absent), or nil, code, detail ("not_leader", "timeout", ...). Yields when
-- called in a coroutine on the loop, blocks otherwise.
function Client:read(key, opts)
    if type(key) ~= "string" or (opts ~= nil and type(opts) ~= "table") then
        error("Usage: c:read(key[, { stale = true, timeout_ms = N }])", 2)
    end
    opts = opts or {}
    local timeout_ms = ceil(check_ms(opts.timeout_ms, "c:read", self.timeout_ms))
    local r, code, detail = self:call("read", { key = key, stale = opts.stale or nil,
        timeout_ms = timeout_ms }, timeout_ms + M.APPLY_MARGIN_MS)
    if not r then return nil, code, detail end
    return true, r.value
end

--- Hand leadership to peer (nil: the most up-to-date voter); the node must lead. Returns
-- the new leader's id, or nil, code, detail ("not_leader", "busy", "invalid", "timeout").
function Client:transfer(peer, timeout_ms)
    if peer ~= nil and type(peer) ~= "string" then
        error("Usage: c:transfer([id[, timeout_ms]])", 2)
    end
    local r, code, detail = self:call("transfer", { peer = peer }, timeout_ms)
    if not r then return nil, code, detail end
    return r.leader
end

function Client:close()
    if self.sock then self.sock:close() end
    self.sock = nil
end

-- ---------------------------------------------------------------------------------------
-- A client of a whole cluster.

local Cluster = {}
Cluster.__index = Cluster
Cluster.__name = "helios.client.cluster"

function Cluster:__tostring()
    return format("helios.client.cluster(%d nodes, leader %s)", #self.ids,
        tostring(self.leader_id))
end

-- A table of "host:port" addresses (a RESP cluster client) rather than socket paths.
local function resp_addresses(addrs)
    local any, all = false, true
    for _, a in each(addrs) do
        if M.is_resp_address(a) then any = true else all = false end
    end
    if any and not all then
        error("Usage: client.cluster(addrs): \"host:port\" addresses (RESP) and control "
            .. "socket paths mixed", 3)
    end
    return any
end

--- A client of several nodes, by id.
-- @tparam table sockets { [id] = control socket path }
-- @tparam[opt] table opts { timeout_ms = timeout of status calls and connects (default
--   1000), attempt_ms = the longest one apply waits on one node (default 3000),
--   socket_of = function(id) -> the control socket of a node not in sockets, or nil (a
--   "not_leader" answer may name one added to the cluster since) }
-- Of RESP ports: addrs a list of "host:port", or a table id -> "host:port": a RESP
-- cluster client (helios.client.resp's cluster: cc:call, cc:session, cc:leader, ...).
-- @tparam[opt] table opts { timeout_ms (default 5000), attempt_ms, password, max_bytes }
function M.cluster(sockets, opts)
    if type(sockets) ~= "table" then error("Usage: client.cluster{ [id] = path, ... }", 2) end
    if resp_addresses(sockets) then return resp().cluster(sockets, opts) end
    if opts ~= nil then
        check_ms(opts.timeout_ms, "client.cluster(sockets, { timeout_ms })")
        check_ms(opts.attempt_ms, "client.cluster(sockets, { attempt_ms })")
    end
    local ids = {}
    for id in each(sockets) do ids[#ids + 1] = id end
    sort(ids)
    return setmetatable({ sockets = sockets, ids = ids, conns = {},
                          timeout_ms = opts and opts.timeout_ms or 1000,
                          attempt_ms = opts and opts.attempt_ms or 3000,
                          socket_of = opts and opts.socket_of }, Cluster)
end

--- A connected client of one node (cached), or nil, code, detail. Connecting yields when
-- called in a coroutine on the loop, blocks otherwise.
function Cluster:node(id)
    local c = self.conns[id]
    if c and c.sock then return c end
    local path = self.sockets[id]
    if not path then return nil, "unknown_node", tostring(id) end
    local code, detail
    c, code, detail = M.connect(path, self.timeout_ms)
    self.conns[id] = c
    return c, code, detail
end

local function drop(self, id)
    local c = self.conns[id]
    if c then c:close() end
    self.conns[id] = nil
end

--- node:status() of one node, or nil, code, detail (its process down, ...). Yields when
-- called in a coroutine on the loop, blocks otherwise.
function Cluster:status(id, timeout_ms)
    local c, code, detail = self:node(id)
    if not c then return nil, code, detail end
    local st
    st, code, detail = c:status(timeout_ms or self.timeout_ms)
    if not st then drop(self, id) end
    return st, code, detail
end

--- The id of the node that leads now: every reachable node is asked (each for at most
-- timeout_ms of the client, 1000 by default), and the leader with the highest term that
-- confirms it leads is returned with its status; waits up to wait_ms (default: ask once),
-- asking again every 20 ms. Yields when called in a coroutine on the loop, blocks
-- otherwise.
-- @treturn string id, status table; or nil, "timeout"
function Cluster:leader(wait_ms, per_node_ms)
    wait_ms = check_ms(wait_ms, "cc:leader([wait_ms[, per_node_ms]])", 0)
    check_ms(per_node_ms, "cc:leader([wait_ms[, per_node_ms]])")
    local deadline = clock_ms() + wait_ms
    while true do
        local best, best_st, named
        for _, id in ipairs(self.ids) do
            local st = self:status(id, per_node_ms)
            if st and st.role == "leader" and (not best_st or st.term > best_st.term) then
                best, best_st = id, st
            elseif st and st.leader and not self.sockets[st.leader] then
                named = st.leader
            end
        end
        if best then
            self.leader_id = best
            return best, best_st
        end
        -- A follower names a leader this client was not given (one added since):
        -- opts.socket_of may know its socket; ask again at once.
        local path = named and self.socket_of and self.socket_of(named)
        if path then
            self.sockets[named] = path
            self.ids[#self.ids + 1] = named
            sort(self.ids)
            goto continue
        end
        if clock_ms() >= deadline then return nil, "timeout", "no leader" end
        loop.wait(20)
        ::continue::
    end
end

-- The node a not_leader detail names, if it is one of ours.
local function named_leader(self, detail)
    if type(detail) ~= "string" then return nil end
    for _, id in ipairs(self.ids) do
        if find(detail, id, 1, true) == 1 then return id end
    end
    for _, id in ipairs(self.ids) do
        if find(detail, id, 1, true) then return id end
    end
    -- A node this client was not given (one added to the cluster since): opts.socket_of
    -- may know where its control socket is.
    local other = detail:match("^([%w][%w_.%-]*) at ")
    local path = other and self.socket_of and self.socket_of(other)
    if path then
        self.sockets[other] = path
        self.ids[#self.ids + 1] = other
        sort(self.ids)
        return other
    end
end

-- Codes after which another node may do better.
local RETRY = { not_leader = true, refused = true, closed = true, io = true,
                shutdown = true, timeout = true }

-- Run call(c, left_ms) on whichever node leads, following "not_leader" answers (and
-- trying others when a node does not answer) until timeout_ms passes: call's outcome, or
-- nil, code, detail (the last failure). call's first result is nil on failure.
-- apply_rules = true is cc:apply's way: a "timeout" from one node is retried on another,
-- so one node gets at most attempt_ms, and no leader found means waiting for an election
-- rather than asking each node which leader it knows. Otherwise (membership changes,
-- transfers) a "timeout" is returned at once.
local function on_leader(self, timeout_ms, call, apply_rules)
    local deadline = clock_ms() + timeout_ms
    local code, detail = "timeout", "no leader within the timeout"
    while true do
        local left = deadline - clock_ms()
        if left <= 0 then return nil, code, detail end
        -- Ask every node, briefly: a node that hangs (SIGSTOP) costs 300 ms, not a whole
        -- attempt.
        local id = self.leader_id or self:leader(0, 300)
        if not id and not apply_rules then
            -- None of the nodes this client knows leads: one of them may name a leader it
            -- was not given (opts.socket_of finds its socket).
            for _, known in ipairs(self.ids) do
                local st = self.conns[known] and self:status(known, 300)
                if st and st.leader and st.leader ~= known then
                    id = named_leader(self, st.leader .. " at ")
                    if id then break end
                end
            end
        end
        if id then
            local c, ccode, cdetail = self:node(id)
            if c then
                local r1, r2, r3
                if apply_rules then
                    -- One node gets at most attempt_ms: a leader that hangs (SIGSTOP, a
                    -- dead disk) must not use up the whole budget. What is left is a
                    -- fraction of a millisecond (clock_ms is fractional): the node takes
                    -- whole ones, and rounding up keeps the deadline (c:apply does it too).
                    left = deadline - clock_ms()
                    if left <= 0 then
                        return nil, "timeout",
                            format("the timeout passed before %s was asked", id)
                    end
                    r1, r2, r3 = call(c, ceil(left < self.attempt_ms and left or self.attempt_ms))
                else
                    r1, r2, r3 = call(c, ceil(deadline - clock_ms()))
                end
                if r1 ~= nil then
                    self.leader_id = id
                    return r1, r2, r3
                end
                code, detail = r2, r3
                if not RETRY[code] or (code == "timeout" and not apply_rules) then
                    return nil, code, detail
                end
                if code ~= "not_leader" then drop(self, id) end
                self.leader_id = code == "not_leader" and named_leader(self, detail) or nil
                if self.leader_id == id then self.leader_id = nil end
            else
                code, detail = ccode, cdetail
                self.leader_id = nil
            end
        end
        -- no leader known: give an election time to happen instead of spinning
        if not self.leader_id then loop.wait(20) end
    end
end

--- Apply cmd through whichever node leads, following redirects, until timeout_ms passes.
-- An apply that timed out on a node that then lost leadership may still commit later:
-- callers that must not repeat a command should make it idempotent. "fsm_error" is
-- returned at once, never retried: the command was applied. Yields when called in a
-- coroutine on the loop, blocks otherwise.
-- @treturn number index, term, result; or nil, code, detail (the last failure)
function Cluster:apply(cmd, timeout_ms)
    if type(cmd) ~= "string" then error("Usage: cc:apply(cmd[, timeout_ms])", 2) end
    timeout_ms = check_ms(timeout_ms, "cc:apply(cmd[, timeout_ms])", M.DEFAULT_TIMEOUT_MS)
    return on_leader(self, timeout_ms, function(c, left)
        return c:apply(cmd, left)
    end, true)
end

--- c:add_peer on whichever node leads (following redirects) until opts.timeout_ms
-- (default DEFAULT_TIMEOUT_MS) passes. Yields when called in a coroutine on the loop,
-- blocks otherwise.
function Cluster:add_peer(peer, addr, opts)
    opts = opts or {}
    local timeout_ms = check_ms(opts.timeout_ms, "cc:add_peer", M.DEFAULT_TIMEOUT_MS)
    return on_leader(self, timeout_ms, function(c, left)
        return c:add_peer(peer, addr, { voter = opts.voter, timeout_ms = left })
    end)
end

--- c:remove_peer on whichever node leads, as cc:add_peer.
function Cluster:remove_peer(peer, opts)
    opts = opts or {}
    local timeout_ms = check_ms(opts.timeout_ms, "cc:remove_peer", M.DEFAULT_TIMEOUT_MS)
    return on_leader(self, timeout_ms, function(c, left)
        return c:remove_peer(peer, { timeout_ms = left })
    end)
end

--- c:transfer on whichever node leads: the new leader's id, or nil, code, detail.
function Cluster:transfer(peer, timeout_ms)
    timeout_ms = check_ms(timeout_ms, "cc:transfer", M.DEFAULT_TIMEOUT_MS)
    return on_leader(self, timeout_ms, function(c, left)
        return c:transfer(peer, left)
    end)
end

function Cluster:close()
    for id in each(self.conns) do drop(self, id) end
end

return M
