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
--       max_clients = 10000,           -- beyond: "-ERR max number of clients reached"
--   })
--   srv:address()   srv:close()   srv:clients()
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

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local type, each, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
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
    ["ATLAS.CAS"] = true, ["ATLAS.SESSION"] = true, ["ATLAS.NUMBERED"] = true,
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
local function set_reply(r) if r then return OK end return false end

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
    -- (state, argv and reply: start_write's, made here so that the table needs no growing)
    return { bytes = encode.set(argv[2], argv[3], ttl, (nx or xx) and { nx = nx, xx = xx }),
             shape = set_reply, state = false, argv = false, reply = false }
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

-- ATLAS.CAS key expected new: store:cas (an expected value, never "absent": SET NX is that).
parse["ATLAS.CAS"] = function(argv)
    return { bytes = encode.cas(argv[2], argv[3], argv[4]), shape = bool_int }
end

parse["ATLAS.SESSION"] = function()
    return { bytes = encode.register(), shape = int_reply }
end

-- Arity of the writes (redis-server's form), for ATLAS.NUMBERED's inner command too.
local ARITY = {
    SET = -3, DEL = -2, INCR = 2, DECR = 2, INCRBY = 3, DECRBY = 3, EXPIRE = -3,
    PEXPIRE = -3, PERSIST = 2, MSET = -3, ["ATLAS.CALL"] = -2, ["ATLAS.CAS"] = 4,
    ["ATLAS.SESSION"] = 1,
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
            .. "DECR, DECRBY, EXPIRE, PEXPIRE, PERSIST, MSET, ATLAS.CALL, ATLAS.CAS), not '%s'",
            argv[4]))
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
-- state.seq = { kind ("r"/"w") and n of the running ones, the waiting ones in ops: OPS
-- slots each (kind, start, reply, a, b, c) from head to tail }. A request costs its reply
-- (below) and nothing else here: at tens of thousands of requests a second the tables and
-- closures per request were most of the collector's work.
local OPS = 6

-- start(reply, a, b, c), answering through reply: a failure of ours is the answer.
local function run(start, reply, a, b, c)
    local ok, e = pcall(start, reply, a, b, c)
    if not ok then reply(err("ERR internal error: " .. tostring(e))) end
end

local function pump(q)
    if q.pumping then return end
    q.pumping = true
    local ops = q.ops
    while q.head <= q.tail do
        local h = q.head
        local kind = ops[h]
        if q.n > 0 and q.kind ~= kind then break end
        local start, reply, a, b, c = ops[h + 1], ops[h + 2], ops[h + 3], ops[h + 4], ops[h + 5]
        for i = h, h + OPS - 1 do ops[i] = nil end
        q.head = h + OPS
        q.kind, q.n = kind, q.n + 1
        run(start, reply, a, b, c)
    end
    if q.head > q.tail then q.head, q.tail = 1, 0 end
    q.pumping = false
end

-- A request's reply: reply(r) answers it (once: later calls do nothing) and lets the
-- connection's waiting requests run. A table called through its metatable's __call: a
-- closure here cost three objects per request (the function and an upvalue for each of
-- answer and q), and one made per request keeps LuaJIT from compiling the function that
-- makes it.
local Reply = {}
Reply.__call = function(self, r)
    local a = self.answer
    if a == nil then return end -- answered already
    self.answer = nil
    a(r)
    local q = self.q
    q.n = q.n - 1
    if q.n == 0 then pump(q) end
end

-- Run start(reply, a, b, c) in the connection's order; reply(r) answers the request
-- (once).
local function sequence(conn, state, kind, start, a, b, c)
    local q = state.seq
    if not q then
        q = { n = 0, ops = {}, head = 1, tail = 0 }
        state.seq = q
    end
    local reply = setmetatable({ answer = conn:defer(), q = q }, Reply)
    if q.head > q.tail and not q.pumping and (q.n == 0 or q.kind == kind) then
        q.kind, q.n = kind, q.n + 1 -- nothing waits before it: runs now
        return run(start, reply, a, b, c)
    end
    local ops, t = q.ops, q.tail
    ops[t + 1], ops[t + 2], ops[t + 3], ops[t + 4], ops[t + 5], ops[t + 6] =
        kind, start, reply, a, b, c
    q.tail = t + OPS
    pump(q)
end

-- A write's outcome: node:apply calls the request's own table w (parse's, carrying
-- bytes, shape, state, argv and reply) through __call, so a write makes no closure.
local Write = {}
Write.__call = function(w, index, code, result)
    local reply = w.reply
    if not index then
        -- not_leader: never appended, or overwritten by another leader's entry: the write
        -- did not happen, so the leader may take it.
        if code == "not_leader" then
            return not_leader(w.state.ctx, w.state, w.argv, reply)
        end
        return reply(write_error(code, result))
    end
    if type(result) == "table" and result.err then
        return reply(fsm_error(result.err, result.msg, w))
    end
    safely(reply, w.shape, result)
end

-- (On a follower, node:apply answers not_leader at once, through the same path.)
local function start_write(reply, state, argv, w)
    local ctx = state.ctx
    w.state, w.argv, w.reply = state, argv, reply
    ctx.node:apply(w.bytes, ctx.timeout_ms, setmetatable(w, Write))
end

local function write(ctx, conn, state, argv, w)
    state.ctx = ctx -- (for start_write, which is one function for every request)
    sequence(conn, state, "w", start_write, state, argv, w)
end

-- Linearizable reads share node:read calls: the reads a loop turn starts (from every
-- connection) go into one batch, read at the start of the next turn (a zero timer: no
-- wait, as nothing blocks in between) by one node:read, which evaluates them all at its
-- read index and answers each. So a read costs a slot in a list here, not a node:read
-- of its own (its table, closures, deadline and result table). Safe: every read of a
-- batch began before the batch's node:read, so its index covers whatever was
-- acknowledged before any of them began.
-- ctx.batch = { n, then (eval, arg, reply) per read }; eval(fsm, now, arg) -> the reply.

local function read_batch(ctx, batch)
    local n = batch.n
    local ok, e = pcall(ctx.node.read, ctx.node, function(fsm, rctx)
        local now = rctx and rctx.time_ms
        for i = 1, n, 3 do
            local ok, v = pcall(batch[i], fsm, now, batch[i + 1])
            if not ok then v = err("ERR internal error: " .. tostring(v)) end
            batch[i + 1] = v -- (the argument's slot takes the reply)
        end
        return true
    end, ctx.timeout_ms, function(done, code, detail)
        if done == nil and code ~= nil then
            local e = read_error(code, detail)
            for i = 1, n, 3 do batch[i + 2](e) end
            return
        end
        for i = 1, n, 3 do batch[i + 2](batch[i + 1]) end
    end)
    if not ok then -- (from a timer: raising would stop the node's loop)
        e = err("ERR internal error: " .. tostring(e))
        for i = 1, n, 3 do batch[i + 2](e) end
    end
end

local function the_fsm(f) return f end

local function start_read(reply, state, eval, arg)
    local ctx = state.ctx
    if state.readonly then -- this replica's state, at once (now: its newest stamp)
        local f, code, detail = ctx.node:read_stale(the_fsm)
        if f == nil and code ~= nil then return reply(read_error(code, detail)) end
        return safely(reply, eval, f, nil, arg)
    end
    local batch = ctx.batch
    if batch == nil then
        batch = { n = 0 }
        ctx.batch = batch
        core.timer(0, 0, function()
            ctx.batch = nil
            read_batch(ctx, batch)
        end)
    end
    local n = batch.n
    batch[n + 1], batch[n + 2], batch[n + 3] = eval, arg, reply
    batch.n = n + 3
end

-- A read: eval(fsm, now, arg) -> the reply, at a read index (or this replica's state).
local function read(ctx, conn, state, eval, arg)
    state.ctx = ctx
    sequence(conn, state, "r", start_read, state, eval, arg)
end

-- The reads' evaluations: eval(fsm, now, arg) -> the reply (see read_batch).
local function get_eval(f, now, key) return f:get(key, now) or false end
local function mget_eval(f, now, keys)
    local vs = f:mget(keys, now)
    local out = { n = #keys }
    for i = 1, #keys do out[i] = vs[i] or false end
    return out
end
local function exists_eval(f, now, keys)
    local vs, n = f:mget(keys, now), 0
    for i = 1, #keys do if vs[i] ~= nil then n = n + 1 end end
    return n
end
local function pttl_eval(f, now, key) return f:ttl(key, now) end
local function ttl_eval(f, now, key)
    local ms = f:ttl(key, now)
    if ms < 0 then return ms end
    return floor((ms + 500) / 1000) -- as Redis rounds
end
local function dbsize_eval(f, now) return (f:count(now)) end
local function key_eval(f, now, key)
    if f:get(key, now) ~= nil then return { key } end
    return {}
end
local function keys_eval(f, now, prefix) return f:keys(prefix, nil, now) end

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
        for id, p in each(st.peers) do
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

    for name, p in each(parse) do
        def(name, ARITY[name], function(conn, argv, state)
            local w, e = p(argv)
            if not w then return e end
            return write(ctx, conn, state, argv, w)
        end)
    end

    def("GET", 2, function(conn, argv, state)
        return read(ctx, conn, state, get_eval, argv[2])
    end)
    def("MGET", -2, function(conn, argv, state)
        local keys = {}
        for i = 2, #argv do keys[i - 1] = argv[i] end
        return read(ctx, conn, state, mget_eval, keys)
    end)
    def("EXISTS", -2, function(conn, argv, state)
        local keys = {}
        for i = 2, #argv do keys[i - 1] = argv[i] end
        return read(ctx, conn, state, exists_eval, keys)
    end)
    def("PTTL", 2, function(conn, argv, state)
        return read(ctx, conn, state, pttl_eval, argv[2])
    end)
    def("TTL", 2, function(conn, argv, state)
        return read(ctx, conn, state, ttl_eval, argv[2])
    end)
    def("DBSIZE", 1, function(conn, _, state)
        return read(ctx, conn, state, dbsize_eval)
    end)
    def("KEYS", 2, function(conn, argv, state)
        local prefix, e = prefix_of(argv[2])
        if e == "exact" then
            return read(ctx, conn, state, key_eval, argv[2])
        end
        if not prefix then return e end
        return read(ctx, conn, state, keys_eval, prefix)
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
            return read(ctx, conn, state, function(f, now)
                return step(f:keys(prefix, nil, now), 1)
            end)
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

--- The port's connections: { clients = open, refused = turned away for max_clients since
-- start, max_clients = } (nil once closed).
function Server:clients()
    return self._srv and self._srv:clients() or nil
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
-- forward, timeout_ms, max_clients (see the module comment). Returns the server (server:address(),
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
    local s, code, detail = resp.serve(opts.listen, { password = opts.password, commands = cmds,
                                                      max_clients = opts.max_clients })
    if not s then
        store:close()
        forwarder:close()
        return nil, code, detail
    end
    srv = s
    return setmetatable({ _srv = s, _forwarder = forwarder, store = store, ctx = ctx }, Server)
end

return M
