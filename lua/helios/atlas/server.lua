--- helios.atlas.server: the ATLAS store on a Redis-protocol (RESP2) client port
-- (docs/atlas.md, "The Redis-protocol port"). raft.new{ client_listen = ... } starts one
-- per node (lua/helios/raft.lua); it can also be started by hand:
--
--   local server = require("helios.atlas.server")
--   local srv, code, detail = server.start(node, {
--       listen = "127.0.0.1:6379",     -- port 0: any (srv:address() says which)
--       password = "secret",           -- optional: AUTH, as redis-server's requirepass
--       peers = { ["node-1"] = "127.0.0.1:6379", ... },  -- every node's client address
--       forward = true,                -- followers forward writes to the leader's port
--   })
--   srv:address()   srv:close()
--
-- server.commands(store, opts) is the command table for helios.resp alone (no listener).
--
-- Everything runs on the node's loop: a command answers at once or through conn:defer()
-- (so pipelined replies stay in request order) from a callback of the store or of the
-- forwarding link; nothing here blocks.
--
-- Reads (GET, MGET, EXISTS, TTL, PTTL, KEYS, SCAN, DBSIZE) are linearizable (node:read,
-- on the leader or a follower) unless the connection said READONLY: then they read this
-- replica's state at once (stale, as Redis Cluster's replicas). Writes go to the leader's
-- log; on a follower they are forwarded to the leader's client port (forward = true and
-- the leader's address known), or answered "-MOVED 0 <leader's client address>" (forward
-- off, or the request came over a forwarding link), or "-CLUSTERDOWN ..." (no leader
-- known).

local core = require("helios.core")
local resp = require("helios.resp")
local atlas = require("helios.atlas")
local fsm_mod = require("helios.atlas.fsm")
local forward = require("helios.atlas.forward")

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local pcall, select, unpack, setmetatable = pcall, select, unpack, setmetatable
local format, concat, floor, sort = string.format, table.concat, math.floor, table.sort
local encode = fsm_mod.encode


local M = {}

--- Timeout of a write or a linearizable read on the port, ms (unless opts.timeout_ms).
M.DEFAULT_TIMEOUT_MS = 5000
--- SCAN's keys per step when no COUNT is given (Redis's default).
M.DEFAULT_SCAN_COUNT = 10
--- SCAN cursors kept per server (the oldest is forgotten beyond this: "ERR invalid cursor").
M.MAX_SCAN_CURSORS = 1024

--- The write commands: what a follower forwards and what a client must not blindly retry
-- outside a session.
M.WRITES = {
    SET = true, DEL = true, INCR = true, INCRBY = true, DECR = true, DECRBY = true,
    EXPIRE = true, PEXPIRE = true, PERSIST = true, MSET = true, ["ATLAS.CALL"] = true,
    ["ATLAS.SESSION"] = true, ["ATLAS.NUMBERED"] = true,
}

local OK = resp.OK
local err = resp.err
local NOT_INT = err("ERR value is not an integer or out of range")
local SYNTAX = err("ERR syntax error")
local MAX_INT = 2 ^ 53

local function wrong_arity(name)
    return err(format("ERR wrong number of arguments for '%s' command", name:lower()))
end

-- A decimal integer as Redis takes one (no sign '+', no spaces), within ±2^53.
local function int(s)
    if type(s) ~= "string" or not s:match("^%-?%d+$") or #s > 20 then return nil end
    local n = tonumber(s)
    if not n or n <= -MAX_INT or n >= MAX_INT then return nil end
    return n
end

-- ---- replies -----------------------------------------------------------------------

-- A user command's result as a reply (Redis's mapping of a Lua script's values): a string
-- is a bulk string, a number an integer (a fraction: a bulk string of it), true the
-- integer 1, false and nil a null bulk, { ok = s } a status, { err = s } an error, any
-- other table an array of its elements 1..(t.n or #t), mapped the same way.
local function user_value(v, depth)
    local t = type(v)
    if t == "string" or t == "number" then return v end
    if t == "boolean" then return v and 1 or false end
    if t ~= "table" then return false end
    if type(v.ok) == "string" then return { ok = v.ok } end
    if type(v.err) == "string" then return { err = v.err } end
    if depth >= 16 then return err("ERR reply nested too deep") end
    local n = tonumber(v.n) or #v
    local out = { n = n }
    for i = 1, n do out[i] = user_value(v[i], depth + 1) end
    return out
end

-- An FSM failure ({ err = code, msg = detail }) as an error reply; w: the write.
local function fsm_error(code, msg, w)
    msg = tostring(msg)
    if code == "invalid" then
        if msg:find("not an integer", 1, true) then return NOT_INT end
        if msg:find("integer range", 1, true) then
            return err("ERR increment or decrement would overflow")
        end
        return err("ERR " .. msg)
    elseif code == "command_error" then
        return err("ERR command_error: " .. msg)
    elseif code == "unknown_command" then
        return err("ERR unknown_command: " .. tostring(w and w.call or msg))
    elseif code == "session_expired" then
        return err("SESSIONEXPIRED " .. msg)
    end
    return err(format("ERR %s: %s", tostring(code), msg))
end

-- A node's failure of a write (node:apply's code other than not_leader) as an error reply.
local function write_error(code, detail)
    detail = tostring(detail or code)
    if code == "timeout" then return err("TIMEOUT " .. detail) end
    if code == "busy" or code == "shutdown" then return err("TRYAGAIN " .. detail) end
    if code == "fsm_error" then return err("ERR fsm_error: " .. detail) end
    return err(format("ERR %s: %s", tostring(code), detail))
end

-- A read's failure as an error reply.
local function read_error(code, detail)
    detail = tostring(detail or code)
    if code == "not_leader" then
        return err("CLUSTERDOWN no leader known to serve the read: " .. detail)
    end
    if code == "timeout" or code == "busy" or code == "shutdown" then
        return err("TRYAGAIN " .. detail)
    end
    return err(format("ERR %s: %s", tostring(code), detail))
end

-- ---- the writes: argv -> { bytes, shape, call } or nil, error reply --------------------

local function ok_reply() return OK end
local function int_reply(r) return r end
local function bool_int(r) return r and 1 or 0 end

local parse = {}

function parse.SET(argv)
    local ttl, nx, xx, timed
    local i = 4
    while i <= #argv do
        local o = argv[i]:upper()
        if o == "NX" and not xx then
            nx = true
        elseif o == "XX" and not nx then
            xx = true
        elseif (o == "EX" or o == "PX") and not timed and argv[i + 1] then
            local n = int(argv[i + 1])
            if not n then return nil, NOT_INT end
            if n <= 0 or (o == "EX" and n * 1000 >= MAX_INT) then
                return nil, err("ERR invalid expire time in 'set' command")
            end
            ttl, timed = o == "EX" and n * 1000 or n, true
            i = i + 1
        else
            return nil, SYNTAX
        end
        i = i + 1
    end
    return { bytes = encode.set(argv[2], argv[3], ttl, { nx = nx, xx = xx }),
             shape = function(r) if r then return OK end return false end }
end

function parse.DEL(argv)
    return { bytes = encode.del(unpack(argv, 2)), shape = int_reply }
end

local function incr_by(argv, by)
    return { bytes = encode.incr(argv[2], by), shape = int_reply }
end
function parse.INCR(argv) return incr_by(argv, 1) end
function parse.DECR(argv) return incr_by(argv, -1) end
function parse.INCRBY(argv)
    local by = int(argv[3])
    if not by then return nil, NOT_INT end
    return incr_by(argv, by)
end
function parse.DECRBY(argv)
    local by = int(argv[3])
    if not by then return nil, NOT_INT end
    return incr_by(argv, -by)
end

local function expire(argv, scale)
    if #argv > 3 then return nil, err("ERR Unsupported option " .. argv[4]) end
    local n = int(argv[3])
    if not n then return nil, NOT_INT end
    if n <= 0 then -- as Redis: a TTL in the past deletes the key
        return { bytes = encode.del(argv[2]), shape = int_reply }
    end
    if n * scale >= MAX_INT then
        return nil, err(format("ERR invalid expire time in '%s' command", argv[1]:lower()))
    end
    return { bytes = encode.expire(argv[2], n * scale), shape = bool_int }
end
function parse.PERSIST(argv)
    return { bytes = encode.persist(argv[2]), shape = bool_int }
end
function parse.EXPIRE(argv) return expire(argv, 1000) end
function parse.PEXPIRE(argv) return expire(argv, 1) end

function parse.MSET(argv)
    if #argv % 2 ~= 1 then return nil, wrong_arity(argv[1]) end
    local kv = {}
    for i = 2, #argv do kv[i - 1] = argv[i] end
    return { bytes = encode.mset(kv), shape = ok_reply }
end

parse["ATLAS.CALL"] = function(argv)
    local args = {}
    for i = 3, #argv do args[i - 2] = argv[i] end
    return { bytes = encode.call(argv[2], args), call = argv[2],
             shape = function(r) return user_value(type(r) == "table" and r.v, 0) end }
end

parse["ATLAS.SESSION"] = function()
    return { bytes = encode.register(), shape = int_reply }
end

-- Arity of the writes (redis-server's form), for ATLAS.NUMBERED's inner command too.
local ARITY = {
    SET = -3, DEL = -2, INCR = 2, DECR = 2, INCRBY = 3, DECRBY = 3, EXPIRE = -3,
    PEXPIRE = -3, PERSIST = 2, MSET = -3, ["ATLAS.CALL"] = -2, ["ATLAS.SESSION"] = 1,
    ["ATLAS.NUMBERED"] = -4,
}

local function arity_ok(arity, n)
    return (arity > 0 and n == arity) or (arity < 0 and n >= -arity)
end

parse["ATLAS.NUMBERED"] = function(argv)
    local sid, seq = int(argv[2]), int(argv[3])
    if not sid or not seq then return nil, NOT_INT end
    if seq < 1 then return nil, err("ERR the sequence number must be a positive integer") end
    local name = argv[4]:upper()
    local inner = {}
    for i = 4, #argv do inner[i - 3] = argv[i] end
    if not parse[name] or name == "ATLAS.SESSION" or name == "ATLAS.NUMBERED" then
        return nil, err(format("ERR ATLAS.NUMBERED numbers a write (SET, DEL, INCR, INCRBY, "
            .. "DECR, DECRBY, EXPIRE, PEXPIRE, PERSIST, MSET, ATLAS.CALL), not '%s'", argv[4]))
    end
    if not arity_ok(ARITY[name], #inner) then return nil, wrong_arity(argv[4]) end
    local w, e = parse[name](inner)
    if not w then return nil, e end
    -- No acknowledgement: a client may retry any of its last MAX_SESSION_RESULTS writes
    -- (the store keeps that many results per session).
    w.bytes = fsm_mod.numbered(w.bytes, sid, seq)
    return w
end

-- ---- key patterns ------------------------------------------------------------------

-- "prefix*" or "*" -> the prefix; anything else -> nil, an error reply.
local function prefix_of(pattern)
    local prefix = pattern:match("^(.*)%*$")
    if prefix and not prefix:find("[%*%?%[%]\\]") then return prefix end
    if not pattern:find("[%*%?%[%]\\]") then return nil, "exact" end
    return nil, err("ERR only prefix patterns are supported: 'prefix*' or '*' (got '"
                    .. pattern:sub(1, 128) .. "')")
end

-- ---- the server --------------------------------------------------------------------

-- ctx: { node, store, peers, forward, timeout_ms, forwarder, cursors }.

local function leader_of(ctx)
    local b = ctx.node._backend
    local role, _, leader = b:_node_state(ctx.node.id)
    return leader, role
end

-- This node does not lead: forward the write, or say where the leader is.
local function not_leader(ctx, state, argv, answer)
    local leader = leader_of(ctx)
    if leader == nil then
        return answer(err("CLUSTERDOWN no leader known (an election is under way): try again"))
    end
    if leader == ctx.node.id then
        return answer(err("TRYAGAIN leadership is changing: try again"))
    end
    local addr = ctx.peers[leader]
    if addr == nil then
        return answer(err(format("CLUSTERDOWN the leader (%s) has no known client address",
                                 leader)))
    end
    if ctx.forward and not state.forwarded and ctx.forwarder then
        return ctx.forwarder:send(addr, argv, answer)
    end
    return answer(err("MOVED 0 " .. addr))
end

-- Answer through answer(reply), never raising into the loop: a failure of ours is the reply.
local function safely(answer, fn, ...)
    local ok, reply = pcall(fn, ...)
    if not ok then reply = err("ERR internal error: " .. tostring(reply)) end
    answer(reply)
end

-- Order on one connection. Pipelined requests are answered in order by helios.resp, but
-- they also run in order: a read waits for the writes sent before it on the connection
-- (read your writes, as on redis-server), and a write for the reads before it (so that
-- they cannot see it). Runs of reads, or of writes, go together: writes are proposed
-- (or forwarded) in order, so the log keeps their order.
-- state.seq = { kind ("r"/"w") and n of the running ones, ops[head..tail] waiting }.
local function pump(q)
    if q.pumping then return end
    q.pumping = true
    while q.head <= q.tail do
        local op = q.ops[q.head]
        if q.n > 0 and q.kind ~= op.kind then break end
        q.ops[q.head] = nil
        q.head = q.head + 1
        q.kind, q.n = op.kind, q.n + 1
        op.start()
    end
    if q.head > q.tail then q.head, q.tail = 1, 0 end
    q.pumping = false
end

-- Run start(reply) in the connection's order; reply(r) answers the request (once).
local function sequence(conn, state, kind, start)
    local answer = conn:defer()
    local q = state.seq
    if not q then
        q = { n = 0, ops = {}, head = 1, tail = 0 }
        state.seq = q
    end
    local replied = false
    local function reply(r)
        if replied then return end
        replied = true
        answer(r)
        q.n = q.n - 1
        if q.n == 0 then pump(q) end
    end
    q.tail = q.tail + 1
    q.ops[q.tail] = { kind = kind, start = function()
        local ok, e = pcall(start, reply)
        if not ok then reply(err("ERR internal error: " .. tostring(e))) end
    end }
    pump(q)
end

local function write(ctx, conn, state, argv, w)
    sequence(conn, state, "w", function(reply)
        local node = ctx.node
        local _, is_leader = node:state()
        if not is_leader then return not_leader(ctx, state, argv, reply) end
        node:apply(w.bytes, ctx.timeout_ms, function(index, code, result)
            if not index then
                -- not_leader: never appended, or overwritten by another leader's entry:
                -- the write did not happen, so the leader may take it.
                if code == "not_leader" then return not_leader(ctx, state, argv, reply) end
                return reply(write_error(code, result))
            end
            if type(result) == "table" and result.err then
                return reply(fsm_error(result.err, result.msg, w))
            end
            safely(reply, w.shape, result)
        end)
    end)
end

local STALE = { stale = true }

-- A read through store:<method>(args..., opts, callback); shape(values) -> the reply.
local function read(ctx, conn, state, shape, method, ...)
    local store = ctx.store
    local args = { n = select("#", ...) + 2, ... }
    sequence(conn, state, "r", function(reply)
        args[args.n - 1] = state.readonly and STALE or nil
        args[args.n] = function(v, code, detail)
            if v == nil and code ~= nil then return reply(read_error(code, detail)) end
            safely(reply, shape, v, code)
        end
        store[method](store, unpack(args, 1, args.n))
    end)
end

local function identity(v) return v end

-- A new cursor for the rest of a SCAN (state { keys, pos }); the oldest is forgotten past
-- MAX_SCAN_CURSORS (c.list[c.first..c.last] holds the live ones in order).
local function scan_cursor(ctx, state)
    local c = ctx.cursors
    c.next = c.next % (MAX_INT - 1) + 1
    local id = c.next
    c.last = c.last + 1
    c.list[c.last] = id
    c.by_id[id] = state
    if c.last - c.first + 1 > M.MAX_SCAN_CURSORS then
        c.by_id[c.list[c.first]] = nil
        c.list[c.first] = nil
        c.first = c.first + 1
    end
    return id
end

local function info_text(ctx, section)
    local node = ctx.node
    local st = node:status()
    local leader = st.leader
    local leader_addr = leader and ctx.peers[leader] or ""
    local is_leader = st.role == "leader"
    local want = section and section:lower() or "default"
    local all = want == "default" or want == "all" or want == "everything"
    local out = {}
    local function sec(name, lines)
        if not all and want ~= name:lower() then return end
        if #out > 0 then out[#out + 1] = "" end
        out[#out + 1] = "# " .. name
        for _, l in ipairs(lines) do out[#out + 1] = l end
    end
    local conf = st.configuration or {}
    local voters, learners = conf.voters or {}, conf.learners or {}
    if not st.configuration then
        for id, p in pairs(st.peers) do
            local list = p.voter and voters or learners
            list[#list + 1] = id
        end
        sort(voters)
        sort(learners)
    end
    local members = {}
    for _, id in ipairs(voters) do members[#members + 1] = id end
    for _, id in ipairs(learners) do members[#members + 1] = id end
    sort(members)
    local port = tostring(ctx.address and ctx.address() or ""):match(":(%d+)$")
    sec("Server", {
        "redis_version:7.0.0", -- the protocol and command level clients may check

        "redis_mode:standalone",
        "helios_version:" .. tostring(core.version),
        "tcp_port:" .. tostring(port or ""),
    })
    local repl = { "role:" .. (is_leader and "master" or "slave") }
    if is_leader then
        repl[#repl + 1] = "connected_slaves:" .. math.max(#members - 1, 0)
    else
        local mh, mp = leader_addr:match("^(.*):(%d+)$")
        repl[#repl + 1] = "master_host:" .. (mh or "")
        repl[#repl + 1] = "master_port:" .. (mp or "")
        repl[#repl + 1] = "master_link_status:" .. (leader and "up" or "down")
    end
    sec("Replication", repl)
    sec("Raft", {
        "raft_role:" .. tostring(st.role),
        "node_id:" .. tostring(node.id),
        "leader_id:" .. tostring(leader or ""),
        "leader_client_addr:" .. leader_addr,
        "term:" .. tostring(st.term),
        "commit_index:" .. tostring(st.commit_index),
        "applied_index:" .. tostring(st.applied_index),
        "members:" .. concat(members, ","),
        "voters:" .. concat(voters, ","),
        "learners:" .. concat(learners, ","),
    })
    local keys, expires = node:read_stale(function(f) return f:count() end)
    if type(keys) ~= "number" then keys, expires = 0, 0 end
    sec("Keyspace", { format("db0:keys=%d,expires=%d,avg_ttl=0", keys, expires or 0) })
    if #out == 0 then return "" end
    return concat(out, "\r\n") .. "\r\n"
end

--- The command table over store (an atlas store of a networked node), for helios.resp.
-- opts: peers ({ [id] = client address }), forward (default true; needs opts.forwarder),
-- forwarder (an object with :send(addr, argv, answer)), timeout_ms, address (a function
-- returning this port's address, for INFO).
function M.commands(store, opts)
    opts = opts or {}
    local ctx = {
        node = store.node, store = store, peers = opts.peers or {},
        forward = opts.forward ~= false, forwarder = opts.forwarder,
        timeout_ms = opts.timeout_ms or M.DEFAULT_TIMEOUT_MS, address = opts.address,
        cursors = { next = 0, list = {}, first = 1, last = 0, by_id = {} },
    }
    local cmds = {}
    local function def(name, arity, fn) cmds[name] = { arity = arity, fn = fn } end

    for name, p in pairs(parse) do
        def(name, ARITY[name], function(conn, argv, state)
            local w, e = p(argv)
            if not w then return e end
            return write(ctx, conn, state, argv, w)
        end)
    end

    def("GET", 2, function(conn, argv, state)
        return read(ctx, conn, state, function(v) return v or false end, "get", argv[2])
    end)
    def("MGET", -2, function(conn, argv, state)
        local keys = {}
        for i = 2, #argv do keys[i - 1] = argv[i] end
        return read(ctx, conn, state, function(vs)
            local out = { n = #keys }
            for i = 1, #keys do out[i] = vs[i] or false end
            return out
        end, "mget", keys)
    end)
    def("EXISTS", -2, function(conn, argv, state)
        local keys = {}
        for i = 2, #argv do keys[i - 1] = argv[i] end
        return read(ctx, conn, state, function(vs)
            local n = 0
            for i = 1, #keys do if vs[i] ~= nil then n = n + 1 end end
            return n
        end, "mget", keys)
    end)
    def("PTTL", 2, function(conn, argv, state)
        return read(ctx, conn, state, identity, "ttl", argv[2])
    end)
    def("TTL", 2, function(conn, argv, state)
        return read(ctx, conn, state, function(ms)
            if ms < 0 then return ms end
            return floor((ms + 500) / 1000) -- as Redis rounds
        end, "ttl", argv[2])
    end)
    def("DBSIZE", 1, function(conn, _, state)
        return read(ctx, conn, state, identity, "count")
    end)
    def("KEYS", 2, function(conn, argv, state)
        local prefix, e = prefix_of(argv[2])
        if e == "exact" then
            return read(ctx, conn, state, function(v)
                if v ~= nil then return { argv[2] } end
                return {}
            end, "get", argv[2])
        end
        if not prefix then return e end
        return read(ctx, conn, state, identity, "keys", prefix, nil)
    end)
    -- SCAN: cursor 0 takes the matching keys (sorted, a linearizable or stale read) and
    -- every later cursor names a position in that list, kept by the server: a key present
    -- for the whole iteration is returned once; one added or removed meanwhile may or may
    -- not be (Redis's guarantee). Cursors are numbers, as redis-cli --scan expects.
    def("SCAN", -2, function(conn, argv, state)
        local cursor = int(argv[2])
        if not cursor or cursor < 0 then return err("ERR invalid cursor") end
        local prefix, exact, count, none = "", nil, M.DEFAULT_SCAN_COUNT, false
        for i = 3, #argv, 2 do
            local o, v = argv[i]:upper(), argv[i + 1]
            if v == nil then return SYNTAX end
            if o == "MATCH" then
                local p, e = prefix_of(v)
                if e == "exact" then
                    prefix, exact = v, v
                elseif not p then
                    return e
                else
                    prefix, exact = p, nil
                end
            elseif o == "COUNT" then
                count = int(v)
                if not count then return NOT_INT end
                if count < 1 then return SYNTAX end
            elseif o == "TYPE" then
                none = v:lower() ~= "string" -- every value is a string
            else
                return SYNTAX
            end
        end
        local function step(keys, pos)
            local out, last = {}, pos + count - 1
            for j = pos, math.min(last, #keys) do
                local k = keys[j]
                if not none and k:sub(1, #prefix) == prefix and (not exact or k == exact) then
                    out[#out + 1] = k
                end
            end
            if last >= #keys then return { "0", out } end
            return { format("%d", scan_cursor(ctx, { keys = keys, pos = last + 1 })), out }
        end
        if cursor == 0 then
            return read(ctx, conn, state, function(keys) return step(keys, 1) end, "keys",
                        prefix, nil)
        end
        local c = ctx.cursors.by_id[cursor]
        if not c then return err("ERR invalid cursor") end
        return step(c.keys, c.pos)
    end)
    def("INFO", -1, function(_, argv)
        if #argv <= 2 then return info_text(ctx, argv[2]) end
        local parts = {}
        for i = 2, #argv do
            local t = info_text(ctx, argv[i])
            if t ~= "" then parts[#parts + 1] = t end
        end
        return concat(parts, "\r\n")
    end)
    def("READONLY", 1, function(_, _, state)
        state.readonly = true
        return OK
    end)
    def("READWRITE", 1, function(_, _, state)
        state.readonly = false
        return OK
    end)
    -- The first command of a follower's forwarding link: this connection's writes are
    -- never forwarded again (a node that does not lead answers MOVED or CLUSTERDOWN).
    def("ATLAS.FORWARDED", 1, function(_, _, state)
        state.forwarded = true
        return OK
    end)
    -- CONFIG GET: the two parameters redis-benchmark asks for at startup (every write is
    -- in the Raft log, synced, before it is acknowledged: "appendonly yes", no RDB
    -- "save" schedule); any other parameter matches nothing.
    def("CONFIG", -2, function(_, argv)
        if argv[2]:upper() == "GET" then
            local out = {}
            for i = 3, #argv do
                local p = argv[i]:lower()
                if p == "save" then out[#out + 1], out[#out + 2] = "save", "" end
                if p == "appendonly" then out[#out + 1], out[#out + 2] = "appendonly", "yes" end
            end
            return out
        end
        return err("ERR CONFIG " .. argv[2] .. " is not supported")
    end)
    return cmds, ctx
end

local Server = {}
Server.__index = Server
Server.__name = "helios.atlas.server"

function Server:__tostring()
    return format("helios.atlas.server(%s, %s)", tostring(self.store.node.id),
                  tostring(self:address() or "closed"))
end

--- The bound "host:port" (nil once closed).
function Server:address()
    return self._srv and self._srv:address() or nil
end

--- Close the port, its connections, the forwarding link and the store it made.
function Server:close()
    if not self._srv then return end
    self._srv:close()
    self._srv = nil
    if self._forwarder then self._forwarder:close() end
    self.store:close()
end

--- Start the port of node (its fsm an atlas.fsm()): opts listen, password, peers,
-- forward, timeout_ms (see the module comment). Returns the server (server:address(),
-- server:close(): also closes the forwarding link and the store it made), or nil, code,
-- detail (core.resp_listen's: "busy" when the address is in use, "invalid", "io").
function M.start(node, opts)
    opts = opts or {}
    local store = atlas.new(node, { timeout_ms = opts.timeout_ms })
    local srv
    -- (Made even with forward off: it connects nothing until a write is forwarded.)
    local forwarder = forward.new(node, { password = opts.password })
    local cmds, ctx = M.commands(store, {
        peers = opts.peers, forward = opts.forward, forwarder = forwarder,
        timeout_ms = opts.timeout_ms, address = function() return srv and srv:address() end,
    })
    local s, code, detail = resp.serve(opts.listen, { password = opts.password, commands = cmds })
    if not s then
        store:close()
        forwarder:close()
        return nil, code, detail
    end
    srv = s
    return setmetatable({ _srv = s, _forwarder = forwarder, store = store, ctx = ctx }, Server)
end

return M
