--- helios.client.resp: a Redis-protocol (RESP2) connection, on the loop or blocking: what
-- helios.client's RESP clients are built on (client.connect("host:port"), client.cluster),
-- and enough to talk to redis-server itself.
--
--   local resp = require("helios.client.resp")
--   local conn, code, detail = resp.connect("127.0.0.1:6379",
--       { password = "secret", timeout_ms = 2000 })      -- AUTH first when a password is given
--   conn:call("SET", "k", "v")             --> { ok = "OK" }
--   conn:call({ "GET", "k" })              --> "v"  (an argv table works too)
--   conn:call("GET", "nope")               --> false (a null reply)
--   conn:call("INCR", "k")                 --> nil, "ERR", "value is not an integer or out of range"
--   conn:command({ "GET", "k" }, 100)      -- call with its own timeout_ms
--   -- pipelining: send never waits, receive returns the replies in order
--   conn:send({ "INCR", "n" })  conn:send({ "INCR", "n" })
--   conn:receive()  conn:receive(1000)     --> 1, 2 (error replies as { err = "..." })
--   conn:owed()                            -- replies sent for and not yet received
--   conn:close()
--
-- Reply values (csrc/lua/client_binding.c, the same as core.resp_listen's): a bulk string is
-- a Lua string, a null bulk or array false, an integer a number, a status "+X" { ok = "X" },
-- an error "-X" { err = "X" }, an array a table with field n. call and command turn an
-- error reply into nil, its first word (the code: "ERR", "MOVED", "WRONGTYPE", ...), the
-- rest. A failure of the connection is nil and "refused", "timeout", "closed", "io",
-- "protocol" (the server sent what is not RESP2) or "too_large" (a reply over
-- opts.max_bytes, 64 MiB by default), and a detail; after any of them but "timeout" the
-- connection is closed (every later call: nil, "closed"). After a call's "timeout" its
-- reply may still come: the next call reads it first and drops it.
--
-- Waits (connect, call, command, receive) yield when called in a coroutine on the loop
-- (loop.spawn, raft.spawn) and block the process otherwise, as helios.client's control
-- client does. send never waits: what the kernel does not take at once stays queued in
-- the socket, and receive writes it while it waits for replies (one wait for both: the
-- loop allows one waiter per descriptor).
local core = require("helios.core")
local loop = require("helios.loop")
local sock_util = require("helios.util.sock")

local format, type, tostring, tonumber, select, error = string.format, type, tostring,
    tonumber, select, error
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local setmetatable, each, ipairs = setmetatable, pairs, ipairs
local clock_ms = core.clock_ms
local encode = core.resp_command

local M = {}

M.DEFAULT_TIMEOUT_MS = 5000
M.DEFAULT_MAX_BYTES = 64 * 1024 * 1024

local check_ms = sock_util.check_ms
M._check_ms = check_ms

--- An error reply's value as call returns it: its first word and the rest.
function M.split_error(msg)
    local code, rest = msg:match("^(%S+)%s*(.*)$")
    if not code then return "ERR", msg end
    return code, rest
end

-- Connect: yields in a coroutine on the loop, blocks otherwise.
local connect_sock = sock_util.connect

-- The argv of call's arguments: a table as it is, or the name and the rest.
local function argv_of(usage, first, ...)
    if type(first) == "table" then return first end
    local n = select("#", ...)
    if type(first) ~= "string" then error("Usage: " .. usage, 3) end
    local argv = { first, ... }
    for i = 2, n + 1 do
        local v = argv[i]
        if type(v) ~= "string" and type(v) ~= "number" then
            error(format("Usage: %s: argument %d is a %s, not a string or a number", usage,
                i, type(v)), 3)
        end
    end
    argv.n = n + 1
    return argv
end
M._argv_of = argv_of

local Conn = {}
Conn.__index = Conn
Conn.__name = "helios.client.resp.conn"

function Conn:__tostring()
    return format("helios.client.resp.conn(%s%s)", self.addr, self.sock and "" or ", closed")
end

--- Connect to a RESP2 server at addr ("host:port"), and AUTH when opts.password is given.
-- Yields when called in a coroutine on the loop, blocks otherwise.
-- @tparam string addr
-- @tparam[opt] table opts { password, timeout_ms (connect and each call: default 5000),
--   max_bytes (of one reply: default 64 MiB) }
-- @return a connection, or nil, code, detail (a refused AUTH: nil, "WRONGPASS", ...)
function M.connect(addr, opts)
    if type(addr) ~= "string" or (opts ~= nil and type(opts) ~= "table") then
        error("Usage: resp.connect(addr[, { password, timeout_ms, max_bytes }])", 2)
    end
    opts = opts or {}
    local timeout_ms = check_ms(opts.timeout_ms, "resp.connect(addr, { timeout_ms })",
        M.DEFAULT_TIMEOUT_MS)
    if opts.password ~= nil and type(opts.password) ~= "string" then
        error("Usage: resp.connect(addr, { password }): password must be a string", 2)
    end
    local sock, code, detail = connect_sock(addr, timeout_ms)
    if not sock then return nil, code, detail end
    local conn = setmetatable({ addr = addr, sock = sock, timeout_ms = timeout_ms,
        max_bytes = opts.max_bytes or M.DEFAULT_MAX_BYTES, sent = 0, got = 0,
        flushing = false }, Conn)
    if opts.password then
        local ok, acode, adetail = conn:command({ "AUTH", opts.password }, timeout_ms)
        if not ok then
            conn:close()
            return nil, acode, adetail
        end
    end
    return conn
end

-- The connection broke: close it, remember why, return nil, code, detail.
local function broken(self, code, detail)
    if self.sock then self.sock:close() end
    self.sock = nil
    self.why = format("%s: %s", code, tostring(detail))
    return nil, code, detail
end

local function closed(self)
    return nil, "closed", "the connection is closed" .. (self.why and " (" .. self.why .. ")" or "")
end

--- Queue a command (an argv table of strings and numbers) and write what the kernel takes
-- now; never waits. Its reply comes from a later receive, in order.
-- @return true, or nil, code, detail (the connection is closed)
function Conn:send(argv)
    if type(argv) ~= "table" then error("Usage: conn:send(argv)", 2) end
    if not self.sock then return closed(self) end
    local bytes = encode(argv)
    local ok, code, detail = self.sock:try_send_raw(bytes)
    if not ok and code ~= "again" then return broken(self, code, detail) end
    self.flushing = not ok
    self.sent = self.sent + 1
    return true
end

--- The next reply, in the order the commands were sent: the raw value (an error reply is
-- { err = "..." }), or nil, code, detail. Writes what send left queued while it waits.
-- Yields when called in a coroutine on the loop, blocks otherwise. A timeout keeps what
-- arrived of the reply: the next receive goes on from there.
function Conn:receive(timeout_ms)
    timeout_ms = check_ms(timeout_ms, "conn:receive([timeout_ms])", self.timeout_ms)
    if not self.sock then return closed(self) end
    if self.got >= self.sent then
        return nil, "io", "conn:receive: no reply is owed (send first)"
    end
    local sock = self.sock
    local deadline = clock_ms() + timeout_ms
    -- The first look is at what was read already, without a read(): right after a command
    -- its reply cannot be in the kernel yet, and that read would only say EAGAIN.
    local buffered_only = true
    while true do
        if self.flushing then
            local ok, code, detail = sock:try_flush()
            if ok then
                self.flushing = false
            elseif code ~= "again" then
                return broken(self, code, detail)
            end
        end
        local v, code, detail = sock:try_recv_reply(self.max_bytes, buffered_only)
        buffered_only = false
        if v ~= nil then
            self.got = self.got + 1
            return v
        end
        if code ~= "again" then return broken(self, code, detail) end
        local left = deadline - clock_ms()
        if left <= 0 then return nil, "timeout", "no reply within the timeout" end
        local ok, wcode, wdetail = loop.wait_sock(sock, self.flushing and "rw" or "r", left)
        if not ok and wcode ~= "timeout" then return broken(self, wcode, wdetail) end
    end
end

--- Replies owed: commands sent whose replies were not received yet.
function Conn:owed()
    return self.sent - self.got
end

-- A reply as call returns it.
local function result(v)
    if type(v) == "table" and v.err ~= nil then
        local code, rest = M.split_error(v.err)
        return nil, code, rest
    end
    return v
end

--- Send argv and wait for its reply, for at most timeout_ms (default: the connection's).
-- Replies owed to earlier commands (a call that timed out, sends not received) are read
-- first and dropped. Yields when called in a coroutine on the loop, blocks otherwise.
-- @return the reply value (false for a null), or nil, code, detail: an error reply's first
--   word and the rest, or a failure of the connection; a 4th value true when the failure
--   came after the command was handed to the kernel (the server may have run it)
function Conn:command(argv, timeout_ms)
    if type(argv) ~= "table" then error("Usage: conn:command(argv[, timeout_ms])", 2) end
    timeout_ms = check_ms(timeout_ms, "conn:command(argv[, timeout_ms])", self.timeout_ms)
    local deadline = clock_ms() + timeout_ms
    local ok, code, detail = self:send(argv)
    if not ok then return nil, code, detail, false end
    local mine = self.sent
    while true do
        local left = deadline - clock_ms()
        local v
        v, code, detail = self:receive(left > 0 and left or 0)
        if v == nil then return nil, code, detail, true end
        if self.got == mine then return result(v) end
    end
end

--- call(name, ...) or call(argv): command with the connection's timeout.
function Conn:call(...)
    return self:command(argv_of("conn:call(name, ...) or conn:call(argv)", ...))
end

--- Close the connection (replies owed are lost).
function Conn:close()
    if self.sock then self.sock:close() end
    self.sock = nil
end

--- Whether the connection is still open: an idle one is checked for the end of the stream
-- (the server went away since the last reply) without waiting, so that a command is not
-- sent into a connection that can only fail after it was sent.
function Conn:alive()
    if not self.sock then return false end
    if self:owed() > 0 then return true end
    local v, code, detail = self.sock:try_recv_reply(self.max_bytes)
    if v ~= nil then
        broken(self, "protocol", "a reply to no command")
        return false
    end
    if code ~= "again" then
        broken(self, code, detail)
        return false
    end
    return true
end

-- ---------------------------------------------------------------------------------------
-- The commands every RESP client has (a connection, a cluster client, a session), built on
-- its call.

local Commands = {}

--- SET k v [PX ttl_ms] [NX|XX]: true, false (NX or XX said no), or nil, code, detail.
function Commands:set(k, v, ttl_ms, flags)
    if (ttl_ms ~= nil and (type(ttl_ms) ~= "number" or ttl_ms <= 0 or ttl_ms % 1 ~= 0))
        or (flags ~= nil and type(flags) ~= "table") then
        error("Usage: c:set(key, value[, ttl_ms[, { nx = true } | { xx = true }]]): ttl_ms "
            .. "is a positive integer", 2)
    end
    local argv = { "SET", k, v }
    if ttl_ms then argv[4], argv[5] = "PX", ttl_ms end
    if flags and flags.nx then argv[#argv + 1] = "NX" end
    if flags and flags.xx then argv[#argv + 1] = "XX" end
    local r, code, detail = self:call(argv)
    if r == nil then return nil, code, detail end
    return r ~= false
end

--- GET k: the value, false if there is none, or nil, code, detail.
function Commands:get(k)
    return self:call({ "GET", k })
end

--- DEL k: the number of keys deleted (0 or 1), or nil, code, detail.
function Commands:delete(k)
    return self:call({ "DEL", k })
end

--- INCR k, or INCRBY k by: the new value, or nil, code, detail.
function Commands:incr(k, by)
    if by == nil then return self:call({ "INCR", k }) end
    return self:call({ "INCRBY", k, by })
end

for name, fn in each(Commands) do Conn[name] = fn end
M.Commands = Commands

-- ---------------------------------------------------------------------------------------
-- A client of a cluster of ATLAS nodes (docs/atlas.md): the leader, followed.

--- The write commands: sent at most once outside a session (a retry could apply one twice).
M.WRITES = {
    SET = true, DEL = true, INCR = true, INCRBY = true, DECR = true, DECRBY = true,
    EXPIRE = true, PEXPIRE = true, MSET = true, PERSIST = true, ["ATLAS.CALL"] = true,
    ["ATLAS.CAS"] = true, ["ATLAS.SESSION"] = true, ["ATLAS.NUMBERED"] = true,
}
--- The writes a session numbers (ATLAS.NUMBERED); DECR and DECRBY go as INCRBY.
M.NUMBERED = {
    SET = true, DEL = true, INCR = true, INCRBY = true, EXPIRE = true, PEXPIRE = true,
    MSET = true, ["ATLAS.CALL"] = true, ["ATLAS.CAS"] = true,
}

-- Failures of a connection (as opposed to error replies).
local SOCKET = { refused = true, closed = true, io = true, timeout = true, protocol = true }

local Cluster = {}
Cluster.__index = Cluster
Cluster.__name = "helios.client.resp.cluster"
for name, fn in each(Commands) do Cluster[name] = fn end

function Cluster:__tostring()
    return format("helios.client.resp.cluster(%d nodes, leader %s)", #self.addrs,
        tostring(self.leader_addr))
end

--- A client of the nodes at addrs: a list of "host:port", or a table id -> "host:port".
-- @tparam[opt] table opts { timeout_ms (of each call, retries included: default 5000),
--   attempt_ms (the longest one node is waited for: default 2000), password, max_bytes }
function M.cluster(addrs, opts)
    if type(addrs) ~= "table" or (opts ~= nil and type(opts) ~= "table") then
        error("Usage: client.cluster(addrs[, opts]): addrs is a list of \"host:port\" or a "
            .. "table id -> \"host:port\"", 2)
    end
    opts = opts or {}
    local list = {}
    if #addrs > 0 then
        for i = 1, #addrs do list[i] = addrs[i] end
    else
        local ids = {}
        for id in each(addrs) do ids[#ids + 1] = tostring(id) end
        table.sort(ids)
        for i, id in ipairs(ids) do list[i] = addrs[id] end
    end
    for _, a in ipairs(list) do
        if type(a) ~= "string" then error("Usage: client.cluster(addrs): an address is not a string", 2) end
    end
    if #list == 0 then error("Usage: client.cluster(addrs): no address", 2) end
    return setmetatable({
        addrs = list, conns = {}, rr = 0,
        timeout_ms = check_ms(opts.timeout_ms, "client.cluster(addrs, { timeout_ms })",
            M.DEFAULT_TIMEOUT_MS),
        attempt_ms = check_ms(opts.attempt_ms, "client.cluster(addrs, { attempt_ms })", 2000),
        password = opts.password, max_bytes = opts.max_bytes,
    }, Cluster)
end

-- An address learned from a MOVED reply joins the ones asked in turn.
local function learn(self, addr)
    for _, a in ipairs(self.addrs) do
        if a == addr then return end
    end
    self.addrs[#self.addrs + 1] = addr
end

local function drop(self, addr)
    local c = self.conns[addr]
    if c then c:close() end
    self.conns[addr] = nil
end

-- A live connection to addr (cached), or nil, code, detail.
local function conn_to(self, addr, timeout_ms)
    local c = self.conns[addr]
    if c and c:owed() == 0 and c:alive() then return c end
    drop(self, addr)
    local code, detail
    c, code, detail = M.connect(addr, { password = self.password, timeout_ms = timeout_ms,
        max_bytes = self.max_bytes })
    self.conns[addr] = c
    return c, code, detail
end

-- Run argv on the leader until it answers or timeout_ms passes. retry_sent: the command
-- may be sent again after it may have arrived (a read, a numbered write); otherwise a
-- failure once it was sent is nil, "unknown", detail.
local function run(self, argv, retry_sent)
    local deadline = clock_ms() + self.timeout_ms
    local code, detail = "timeout", "no node answered"
    local backoff, moves = 10, 0
    while true do
        local left = deadline - clock_ms()
        if left <= 0 then
            return nil, "timeout", format("no answer within %d ms (the last: %s %s)",
                self.timeout_ms, tostring(code), tostring(detail))
        end
        local addr = self.leader_addr
        if not addr then
            self.rr = self.rr % #self.addrs + 1
            addr = self.addrs[self.rr]
        end
        local attempt = left < self.attempt_ms and left or self.attempt_ms
        local c, v, sent
        c, code, detail = conn_to(self, addr, attempt)
        local wait = true
        if c then
            -- (Read the clock once: the connect may have used up what was left.)
            local remaining = deadline - clock_ms()
            if remaining < 0 then remaining = 0 end
            v, code, detail, sent = c:command(argv, remaining < attempt and remaining
                or attempt)
            if v ~= nil then
                self.leader_addr = addr
                return v
            end
            if code == "MOVED" then
                local to = detail:match("^%S+%s+(%S+)$")
                if to then learn(self, to) end
                self.leader_addr = to
                moves = moves + 1
                wait = moves > 1 -- follow one redirect at once; a loop of them waits
            elseif code == "CLUSTERDOWN" or code == "TRYAGAIN" then
                self.leader_addr = nil
            elseif code == "TIMEOUT" and retry_sent then
                self.leader_addr = nil
            elseif code == "TIMEOUT" then
                return nil, "unknown", "TIMEOUT " .. tostring(detail)
            elseif SOCKET[code] then
                drop(self, addr)
                self.leader_addr = nil
                if sent and not retry_sent then
                    return nil, "unknown", format("%s after the write was sent to %s: %s",
                        code, addr, tostring(detail))
                end
            else
                return nil, code, detail -- ERR, WRONGTYPE, SESSIONEXPIRED, "too_large", ...
            end
        elseif SOCKET[code] then
            self.leader_addr = nil
        else
            return nil, code, detail -- AUTH refused
        end
        if code ~= "MOVED" then moves = 0 end
        if wait then
            left = deadline - clock_ms()
            if left > 0 then loop.wait(backoff < left and backoff or left) end
            backoff = backoff < 100 and backoff * 2 or backoff
        end
    end
end

--- Run a command on the leader: cc:call(name, ...) or cc:call(argv). Follows MOVED;
-- CLUSTERDOWN, TRYAGAIN and failures of a node before the command was sent go to the
-- next node after a short pause, until opts.timeout_ms; reads are retried even after
-- they were sent, writes (M.WRITES) are not: nil, "unknown", detail (they may have been
-- applied; a session's writes are retried safely). Yields when called in a coroutine on
-- the loop, blocks otherwise.
-- @return the reply value, or nil, code, detail (an error reply's code, "timeout",
--   "unknown", ...)
function Cluster:call(...)
    local argv = argv_of("cc:call(name, ...) or cc:call(argv)", ...)
    local name = tostring(argv[1]):upper()
    local v, code, detail = run(self, argv, not M.WRITES[name])
    if v == nil then return nil, code, detail end
    return result(v)
end

--- The client address of the node that leads: asked of the nodes (INFO's
-- leader_client_addr), or the last MOVED; waits up to timeout_ms (default the client's)
-- for one. Yields when called in a coroutine on the loop, blocks otherwise.
-- @return "host:port", or nil, "timeout", detail
function Cluster:leader(timeout_ms)
    timeout_ms = check_ms(timeout_ms, "cc:leader([timeout_ms])", self.timeout_ms)
    local deadline = clock_ms() + timeout_ms
    while true do
        for i = 1, #self.addrs do
            local addr = self.addrs[i]
            local left = deadline - clock_ms()
            local per = left < self.attempt_ms and left or self.attempt_ms
            local c = per > 0 and conn_to(self, addr, per)
            local info = c and c:command({ "INFO" }, per)
            if type(info) == "string" then
                local leader = ("\n" .. info):match("\nleader_client_addr:([^\r\n]*)")
                if leader and leader ~= "" then
                    learn(self, leader)
                    self.leader_addr = leader
                    return leader
                end
            elseif c and info == nil then
                drop(self, addr)
            end
        end
        if self.leader_addr then return self.leader_addr end
        local left = deadline - clock_ms()
        if left <= 0 then return nil, "timeout", "no node knows a leader" end
        loop.wait(left < 20 and left or 20)
    end
end

local Session = {}
Session.__index = Session
Session.__name = "helios.client.resp.session"
for name, fn in each(Commands) do Session[name] = fn end

function Session:__tostring()
    return format("helios.client.resp.session(%s, seq %d)", tostring(self.id), self.seq)
end

--- Register a session (ATLAS.SESSION): its writes are applied exactly once, however often
-- they are retried. Yields when called in a coroutine on the loop, blocks otherwise.
-- @return a session, or nil, code, detail
function Cluster:session()
    -- Registering twice would only leave an idle session to expire: retry freely.
    local sid, code, detail = run(self, { "ATLAS.SESSION" }, true)
    if sid == nil then return nil, code, detail end
    local r
    r, code, detail = result(sid)
    if r == nil then return nil, code, detail end
    if type(r) ~= "number" then
        return nil, "protocol", "ATLAS.SESSION answered " .. tostring(r) .. ", not an id"
    end
    return setmetatable({ cluster = self, id = r, seq = 0 }, Session)
end

--- s:call(name, ...) or s:call(argv): a write (M.NUMBERED; DECR and DECRBY go as INCRBY)
-- is sent as ATLAS.NUMBERED id seq name ..., with the next seq, and retried with that same
-- seq across leader changes and timeouts until the client's timeout_ms: the server applies
-- it once and answers a retry with the first result. Anything else is cc:call. One call
-- at a time per session. Yields when called in a coroutine on the loop, blocks otherwise.
function Session:call(...)
    local argv = argv_of("s:call(name, ...) or s:call(argv)", ...)
    local name = tostring(argv[1]):upper()
    local n = argv.n or #argv
    if name == "DECR" or name == "DECRBY" then
        local by = name == "DECR" and 1 or tonumber(argv[3])
        if n ~= (name == "DECR" and 2 or 3) or not by then
            return nil, "ERR", format("wrong number of arguments or not an integer for '%s'",
                name:lower())
        end
        argv, name, n = { "INCRBY", argv[2], -by, n = 3 }, "INCRBY", 3
    end
    if not M.NUMBERED[name] then return self.cluster:call(argv) end
    self.seq = self.seq + 1
    local numbered = { "ATLAS.NUMBERED", self.id, self.seq, n = n + 3 }
    for i = 1, n do numbered[i + 3] = argv[i] end
    self.last = numbered
    local v, code, detail = run(self.cluster, numbered, true)
    if v == nil then return nil, code, detail end
    return result(v)
end

--- Send the last write again with its sequence number (after it failed with "timeout":
-- its outcome is unknown): its first result, applied at most once.
function Session:retry()
    if not self.last then error("Usage: s:retry(): no write was sent", 2) end
    local v, code, detail = run(self.cluster, self.last, true)
    if v == nil then return nil, code, detail end
    return result(v)
end

--- Close every connection (the client may be used again: it reconnects).
function Cluster:close()
    for addr in each(self.conns) do drop(self, addr) end
end

M.Cluster, M.Session = Cluster, Session
return M
