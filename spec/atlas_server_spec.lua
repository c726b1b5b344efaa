-- atlas_server_spec.lua: the ATLAS commands on the Redis-protocol port of networked nodes
-- (raft.new{ client_listen = ... }, helios.atlas.server), three nodes in this process on
-- loopback, driven by a raw RESP client over a socket (inside coroutines on the loop) and
-- by the real redis-cli (run in the background while the loop serves it).
--
-- Every wait has a deadline (wait_for, run_scenario); ports come from core.free_port().

local raft = require("helios.raft")
local atlas = require("helios.atlas")
local core = require("helios.core")
local loop = require("helios.loop")
local nh = require("spec.helpers.node")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local tmpdir, rmrf, wait_for = nh.tmpdir, nh.rmrf, nh.wait_for
local SECRET = "atlas server spec secret"
local DEADLINE_MS = 5000

atlas.command("spec_server_swap", function(store, args)
    local a, b = store:get(args[1]), store:get(args[2])
    if a == nil or b == nil then error("both keys must exist") end
    store:set(args[1], b)
    store:set(args[2], a)
    return { "swapped", 2, true, false }
end)
atlas.command("spec_server_half", function(store, args)
    store:set(args[1], "touched")        -- undone: the command raises after it
    error("half done")
end)

-- ---- a RESP client inside a coroutine on the loop ---------------------------------------

local Client = {}
Client.__index = Client

local function connect(addr)
    local s = assert(core.sock_connect(addr, 1000))
    return setmetatable({ s = s }, Client)
end

local encode = core.resp_command

function Client:send_raw(bytes)
    local ok, code, detail = self.s:try_send_raw(bytes)
    assert(ok or code == "again", detail)
    assert(loop.await(self.s, function(s) return s:try_flush() end, "w", DEADLINE_MS))
end

-- One reply (the socket's reply reader, csrc/transport/resp.c): bulk -> string,
-- null -> false, integer -> number, "+X" -> { ok = X }, "-X" -> { err = X },
-- array -> { n = N, ... }.
function Client:reply()
    local v, code, detail = loop.await(self.s, function(s)
        local r, c, d = s:try_recv_reply()
        if r == false then return { null = true } end -- (await stops on a true value)
        return r, c, d
    end, "r", DEADLINE_MS, "no reply")
    assert(v ~= nil, tostring(code) .. ": " .. tostring(detail))
    if type(v) == "table" and v.null then return false end
    return v
end

function Client:call(...)
    self:send_raw(encode({ ... }))
    return self:reply()
end

function Client:close() self.s:close() end

-- ---- the cluster ---------------------------------------------------------------------

local function new_cluster(dir, opts)
    opts = opts or {}
    local c = { ids = {}, nodes = {}, peers = {}, client = {}, dir = dir }
    for i = 1, 3 do
        local id = "node-" .. i
        c.ids[i] = id
        c.peers[id] = "127.0.0.1:" .. core.free_port()
        c.client[id] = "127.0.0.1:" .. core.free_port()
    end
    for _, id in ipairs(c.ids) do
        local o = { id = id, peers = c.peers, data_dir = dir .. "/" .. id, secret = SECRET,
                    fsm = atlas.fsm(), election_timeout_ms = 150, heartbeat_timeout_ms = 30,
                    client_listen = c.client[id], client_peers = c.client }
        for k, v in each(opts) do o[k] = v end
        c.nodes[id] = raft.new(o)
        assert(c.nodes[id]:start())
    end
    return c
end

local function leader(c)
    local lid
    assert(wait_for(function()
        lid = nh.leader_of(c)
        if not lid then return false end
        -- every node knows it (MOVED and forwarding need the leader's id)
        for _, id in ipairs(c.ids) do
            if c.nodes[id]:status().leader ~= lid then return false end
        end
        return true
    end, DEADLINE_MS), "no leader")
    local fid = c.ids[1] == lid and c.ids[2] or c.ids[1]
    return lid, fid
end

-- redis-cli in the background; its output and exit status land in files, read once the
-- status file appears (the loop serves the port meanwhile).
local have_cli = os.execute("command -v redis-cli >/dev/null 2>&1")
have_cli = have_cli == 0 or have_cli == true
local cli_seq = 0
local function cli(dir, addr, args, stdin)
    cli_seq = cli_seq + 1
    local out, rc = ("%s/cli%d.out"):format(dir, cli_seq), ("%s/cli%d.rc"):format(dir, cli_seq)
    local host, port = addr:match("^(.*):(%d+)$")
    local input = "< /dev/null"
    if stdin then
        local name = ("%s/cli%d.in"):format(dir, cli_seq)
        local f = io.open(name, "wb"); f:write(stdin); f:close()
        input = "< " .. name
    end
    os.execute(("(timeout 10 redis-cli -h %s -p %s %s %s > %s 2>&1; echo $? > %s.tmp; "
                .. "mv %s.tmp %s) &"):format(host, port, args, input, out, rc, rc, rc))
    assert(wait_for(function()
        local f = io.open(rc)
        if f then f:close() end
        return f ~= nil
    end, 15000), "redis-cli did not finish")
    local f = io.open(out); local text = f:read("*a"); f:close()
    f = io.open(rc); local status = tonumber(f:read("*a")); f:close()
    return text, status
end

local function info_field(text, field)
    return text:match("\r?\n" .. field:gsub("%-", "%%-") .. ":([^\r\n]*)")
end

describe("atlas on the RESP port", function()
    local dir, c
    before_each(function() dir = tmpdir() end)
    after_each(function()
        if c then nh.stop_all(c) end
        c = nil
        rmrf(dir)
    end)

    it("serves every command with Redis's replies", function()
        c = new_cluster(dir, { client_forward = false })
        local ok, err = nh.run_scenario(c, 60000, function()
            local lid = leader(c)
            local k = connect(c.client[lid])
            assert.same({ ok = "PONG" }, k:call("PING"))
            -- SET and its options
            assert.same({ ok = "OK" }, k:call("SET", "a", "1"))
            assert.equal("1", k:call("GET", "a"))
            assert.equal(false, k:call("GET", "nope"))
            assert.equal(false, k:call("SET", "a", "2", "NX"))
            assert.same({ ok = "OK" }, k:call("SET", "b", "2", "NX"))
            assert.equal(false, k:call("SET", "c", "3", "XX"))
            assert.same({ ok = "OK" }, k:call("set", "b", "22", "xx"))
            assert.equal("22", k:call("GET", "b"))
            assert.same({ ok = "OK" }, k:call("SET", "ex", "v", "EX", "100"))
            -- (bounds loose enough for a loaded machine)
            local t = k:call("TTL", "ex")
            assert.is_true(t >= 90 and t <= 100, tostring(t))
            t = k:call("PTTL", "ex")
            assert.is_true(t > 90000 and t <= 100000, tostring(t))
            assert.same({ ok = "OK" }, k:call("SET", "px", "v", "PX", "1500"))
            t = k:call("PTTL", "px")
            assert.is_true(t > 0 and t <= 1500, tostring(t))
            assert.equal(-1, k:call("TTL", "a"))
            assert.equal(-2, k:call("TTL", "nope"))
            assert.equal(-2, k:call("PTTL", "nope"))
            assert.same({ err = "ERR syntax error" }, k:call("SET", "a", "1", "NX", "XX"))
            assert.same({ err = "ERR syntax error" }, k:call("SET", "a", "1", "EX", "1", "PX", "5"))
            assert.same({ err = "ERR syntax error" }, k:call("SET", "a", "1", "EX"))
            assert.same({ err = "ERR value is not an integer or out of range" },
                        k:call("SET", "a", "1", "EX", "soon"))
            assert.same({ err = "ERR invalid expire time in 'set' command" },
                        k:call("SET", "a", "1", "EX", "0"))
            -- the TTL'd key expires (the log's time moves on with the leader's writes)
            assert(wait_for(function()
                k:call("INCR", "clock")
                return k:call("GET", "px") == false
            end, DEADLINE_MS), "px never expired")
            -- DEL, EXISTS
            assert.same({ ok = "OK" }, k:call("MSET", "d1", "x", "d2", "y", "d3", "z"))
            assert.equal(3, k:call("EXISTS", "d1", "d2", "d3", "nope"))
            assert.equal(2, k:call("EXISTS", "d1", "d1"))
            assert.equal(2, k:call("DEL", "d1", "d2", "nope", "d1"))
            assert.equal(1, k:call("EXISTS", "d1", "d2", "d3"))
            -- counters
            assert.equal(1, k:call("INCR", "n"))
            assert.equal(11, k:call("INCRBY", "n", "10"))
            assert.equal(10, k:call("DECR", "n"))
            assert.equal(-5, k:call("DECRBY", "n", "15"))
            assert.equal("-5", k:call("GET", "n"))
            assert.same({ err = "ERR value is not an integer or out of range" },
                        k:call("INCR", "a") and k:call("INCRBY", "b2", "x"))
            k:call("SET", "word", "hello")
            assert.same({ err = "ERR value is not an integer or out of range" },
                        k:call("INCR", "word"))
            k:call("SET", "big", "9007199254740000")
            assert.same({ err = "ERR increment or decrement would overflow" },
                        k:call("INCRBY", "big", "1000"))
            -- EXPIRE, PEXPIRE
            assert.equal(1, k:call("EXPIRE", "a", "50"))
            t = k:call("TTL", "a")
            assert.is_true(t >= 40 and t <= 50, tostring(t))
            assert.equal(1, k:call("PEXPIRE", "a", "100000"))
            t = k:call("PTTL", "a")
            assert.is_true(t > 90000 and t <= 100000, tostring(t))
            assert.equal(0, k:call("EXPIRE", "nope", "10"))
            assert.equal(1, k:call("PERSIST", "a"))
            assert.equal(-1, k:call("TTL", "a"))
            assert.equal(0, k:call("PERSIST", "a"))             -- no TTL to remove
            assert.equal(0, k:call("PERSIST", "nope"))
            assert.equal(1, k:call("PEXPIRE", "a", "100000"))
            assert.equal(1, k:call("EXPIRE", "a", "-1"))       -- in the past: deleted
            assert.equal(false, k:call("GET", "a"))
            -- MGET, MSET
            assert.same({ ok = "OK" }, k:call("MSET", "u:1", "ann", "u:2", "bob", "u:3", "cy"))
            assert.same({ n = 3, "ann", false, "cy" }, k:call("MGET", "u:1", "nope", "u:3"))
            assert.same({ err = "ERR wrong number of arguments for 'mset' command" },
                        k:call("MSET", "u:1", "x", "u:2"))
            assert.equal("ann", k:call("GET", "u:1"))            -- nothing of it applied
            -- KEYS, SCAN, DBSIZE
            assert.same({ n = 3, "u:1", "u:2", "u:3" }, k:call("KEYS", "u:*"))
            assert.same({ n = 1, "u:2" }, k:call("KEYS", "u:2"))
            assert.same({ n = 0 }, k:call("KEYS", "zz*"))
            local all = k:call("KEYS", "*")
            assert.equal(k:call("DBSIZE"), all.n)
            assert.matches("^ERR only prefix patterns are supported",
                           k:call("KEYS", "u:?").err)
            assert.matches("^ERR only prefix patterns are supported",
                           k:call("KEYS", "*:1").err)
            for i = 1, 25 do k:call("SET", ("s:%02d"):format(i), "v") end
            local seen, cursor, steps = {}, "0", 0
            repeat
                local r = k:call("SCAN", cursor, "MATCH", "s:*", "COUNT", "7")
                cursor = r[1]
                for _, key in ipairs(r[2]) do
                    assert.is_nil(seen[key], key)
                    seen[key] = true
                end
                steps = steps + 1
            until cursor == "0"
            local n = 0
            for key in each(seen) do n = n + 1; assert.matches("^s:", key) end
            assert.equal(25, n)
            assert.is_true(steps >= 4, tostring(steps))
            assert.same({ err = "ERR invalid cursor" }, k:call("SCAN", "12345678"))
            assert.same({ err = "ERR syntax error" }, k:call("SCAN", "0", "MATCH"))
            assert.matches("^ERR only prefix", k:call("SCAN", "0", "MATCH", "?x").err)
            local before = k:call("DBSIZE")
            k:call("SET", "one-more", "v")
            assert.equal(before + 1, k:call("DBSIZE"))
            -- ATLAS.CALL: a user command, its reply mapping, one that raises
            k:call("SET", "x", "1")
            k:call("SET", "y", "2")
            assert.same({ n = 4, "swapped", 2, 1, false },
                        k:call("ATLAS.CALL", "spec_server_swap", "x", "y"))
            assert.equal("2", k:call("GET", "x"))
            assert.matches("^ERR command_error: .*both keys must exist",
                           k:call("ATLAS.CALL", "spec_server_swap", "x", "nope").err)
            local r = k:call("ATLAS.CALL", "spec_server_half", "x")
            assert.matches("^ERR command_error: .*half done", r.err)
            assert.equal("2", k:call("GET", "x"))                 -- changed nothing
            assert.same({ err = "ERR unknown_command: no_such_thing" },
                        k:call("ATLAS.CALL", "no_such_thing"))
            -- sessions: a retry answers the first result
            local sid = k:call("ATLAS.SESSION")
            assert.equal("number", type(sid))
            assert.equal(5, k:call("ATLAS.NUMBERED", sid, 1, "INCRBY", "visits", "5"))
            assert.equal(5, k:call("ATLAS.NUMBERED", sid, 1, "INCRBY", "visits", "5"))
            assert.equal("5", k:call("GET", "visits"))
            assert.same({ ok = "OK" }, k:call("ATLAS.NUMBERED", sid, 2, "SET", "sx", "1", "NX"))
            assert.equal(false, k:call("ATLAS.NUMBERED", sid, 3, "SET", "sx", "2", "NX"))
            assert.same({ ok = "OK" }, k:call("ATLAS.NUMBERED", sid, 2, "SET", "sx", "1", "NX"))
            assert.equal(1, k:call("ATLAS.NUMBERED", sid, 4, "DEL", "sx"))
            assert.equal(1, k:call("ATLAS.NUMBERED", sid, 4, "DEL", "sx"))
            assert.same({ n = 4, "swapped", 2, 1, false },
                        k:call("ATLAS.NUMBERED", sid, 5, "ATLAS.CALL", "spec_server_swap", "x",
                               "y"))
            assert.same({ n = 4, "swapped", 2, 1, false },
                        k:call("ATLAS.NUMBERED", sid, 5, "ATLAS.CALL", "spec_server_swap", "x",
                               "y"))
            assert.equal("1", k:call("GET", "x"))                 -- swapped once only (twice: "2")
            -- ATLAS.CAS: 1 when the value was the expected one (and set), else 0
            assert.equal(1, k:call("ATLAS.NUMBERED", sid, 6, "ATLAS.CAS", "x", "1", "c1"))
            assert.equal(1, k:call("ATLAS.NUMBERED", sid, 6, "ATLAS.CAS", "x", "1", "c1"))
            assert.equal(0, k:call("ATLAS.CAS", "x", "1", "c2"))
            assert.equal(0, k:call("ATLAS.CAS", "never-set", "1", "c2"))
            assert.equal("c1", k:call("GET", "x"))
            assert.equal(1, k:call("ATLAS.CAS", "x", "c1", "1"))
            assert.matches("^SESSIONEXPIRED ", k:call("ATLAS.NUMBERED", 999999, 1, "INCR", "q").err)
            assert.matches("^ERR ATLAS.NUMBERED numbers a write",
                           k:call("ATLAS.NUMBERED", sid, 7, "GET", "x").err)
            assert.same({ err = "ERR wrong number of arguments for 'incr' command" },
                        k:call("ATLAS.NUMBERED", sid, 7, "INCR"))
            -- errors: the connection goes on
            assert.same({ err = "ERR wrong number of arguments for 'get' command" },
                        k:call("GET"))
            assert.same({ err = "ERR wrong number of arguments for 'incrby' command" },
                        k:call("INCRBY", "n"))
            assert.matches("^ERR unknown command 'FLUSHALL'", k:call("FLUSHALL").err)
            assert.equal("1", k:call("GET", "x"))
            -- pipelined: replies in request order, writes and reads mixed
            local batch = {}
            for i = 1, 50 do
                batch[#batch + 1] = encode({ "SET", "p" .. i, tostring(i) })
                batch[#batch + 1] = encode({ "GET", "p" .. i })
                batch[#batch + 1] = encode({ "INCR", "pc" })
            end
            k:send_raw(table.concat(batch))
            for i = 1, 50 do
                assert.same({ ok = "OK" }, k:reply())
                assert.equal(tostring(i), k:reply())
                assert.equal(i, k:reply())
            end
            -- INFO
            local info = k:call("INFO")
            assert.equal("master", info_field(info, "role"))
            assert.equal("leader", info_field(info, "raft_role"))
            assert.equal(lid, info_field(info, "node_id"))
            assert.equal(lid, info_field(info, "leader_id"))
            assert.equal(c.client[lid], info_field(info, "leader_client_addr"))
            assert.equal("node-1,node-2,node-3", info_field(info, "members"))
            assert.equal("node-1,node-2,node-3", info_field(info, "voters"))
            assert.equal("", info_field(info, "learners"))
            assert.is_true(tonumber(info_field(info, "term")) >= 1)
            assert.is_true(tonumber(info_field(info, "commit_index")) >= 100)
            assert.is_true(tonumber(info_field(info, "applied_index")) >= 100)
            local keys, expires = info:match("db0:keys=(%d+),expires=(%d+)")
            assert.equal(k:call("DBSIZE"), tonumber(keys))
            assert.is_true(tonumber(expires) >= 1)              -- "ex" has a TTL
            local raft_only = k:call("INFO", "raft")
            assert.matches("^# Raft\r\n", raft_only)
            assert.is_nil(raft_only:find("# Keyspace", 1, true))
            assert.equal("", k:call("INFO", "nosuchsection"))
            k:close()
        end)
        assert(ok, err)
    end)

    it("serves the reads of many connections, sent together, with one node:read", function()
        c = new_cluster(dir, { client_forward = false })
        local ok, err = nh.run_scenario(c, 30000, function()
            local lid = leader(c)
            local node = c.nodes[lid]
            local conns = {}
            for i = 1, 8 do
                conns[i] = connect(c.client[lid])
                assert.same({ ok = "OK" }, conns[i]:call("SET", "r" .. i, "v" .. i))
            end
            local reads, read = 0, node.read
            node.read = function(...)
                reads = reads + 1
                return read(...)
            end
            -- All sent before the loop polls: the server reads them in one loop turn.
            for i = 1, 8 do conns[i]:send_raw(encode({ "GET", "r" .. i })) end
            for i = 1, 8 do assert.equal("v" .. i, conns[i]:reply()) end
            node.read = nil
            assert.equal(1, reads)
            -- Each read still follows its connection's writes (read your writes).
            for i = 1, 8 do
                conns[i]:send_raw(encode({ "SET", "r" .. i, "w" .. i })
                                  .. encode({ "GET", "r" .. i }))
            end
            for i = 1, 8 do
                assert.same({ ok = "OK" }, conns[i]:reply())
                assert.equal("w" .. i, conns[i]:reply())
            end
            for i = 1, 8 do conns[i]:close() end
        end)
        assert(ok, err)
    end)

    it("answers MOVED on a follower with forwarding off; READONLY reads there", function()
        c = new_cluster(dir, { client_forward = false })
        local ok, err = nh.run_scenario(c, 30000, function()
            local lid, fid = leader(c)
            local l, f = connect(c.client[lid]), connect(c.client[fid])
            assert.same({ ok = "OK" }, l:call("SET", "k", "v1"))
            assert.same({ err = "MOVED 0 " .. c.client[lid] }, f:call("SET", "k", "v2"))
            assert.same({ err = "MOVED 0 " .. c.client[lid] }, f:call("INCR", "n"))
            assert.same({ err = "MOVED 0 " .. c.client[lid] }, f:call("ATLAS.SESSION"))
            -- linearizable reads on the follower see the acknowledged write at once
            assert.equal("v1", f:call("GET", "k"))
            local info = f:call("INFO", "replication")
            assert.equal("slave", info_field(info, "role"))
            local mh, mp = c.client[lid]:match("^(.*):(%d+)$")
            assert.equal(mh, info_field(info, "master_host"))
            assert.equal(mp, info_field(info, "master_port"))
            info = f:call("INFO", "raft")
            assert.equal("follower", info_field(info, "raft_role"))
            assert.equal(c.client[lid], info_field(info, "leader_client_addr"))
            -- READONLY: stale local reads, answered at once from this replica's state
            assert.same({ ok = "OK" }, f:call("READONLY"))
            assert(wait_for(function() return f:call("GET", "k") == "v1" end, DEADLINE_MS))
            -- a replica that is behind answers from its own state: cut the follower off
            -- by shutting the leader's other follower down? No: compare with its state
            local stale = c.nodes[fid]:read_stale(function(fsm) return fsm:get("k") end)
            assert.equal(stale or false, f:call("GET", "k"))
            assert.same({ err = "MOVED 0 " .. c.client[lid] }, f:call("SET", "k", "v3"))
            assert.same({ ok = "OK" }, f:call("READWRITE"))
            assert.equal("v1", f:call("GET", "k"))
            l:close()
            f:close()
        end)
        assert(ok, err)
    end)

    it("serves stale reads under READONLY while no leader is known", function()
        c = new_cluster(dir, { client_forward = false })
        local ok, err = nh.run_scenario(c, 30000, function()
            local lid, fid = leader(c)
            local l = connect(c.client[lid])
            assert.same({ ok = "OK" }, l:call("SET", "k", "v1"))
            assert(wait_for(function()
                return c.nodes[fid]:read_stale(function(fsm) return fsm:get("k") end) == "v1"
            end, DEADLINE_MS))
            l:close()
            -- the two others down: the follower is alone, no leader, no quorum
            for _, id in ipairs(c.ids) do
                if id ~= fid then c.nodes[id]:shutdown() end
            end
            local f = connect(c.client[fid])
            assert(wait_for(function() return c.nodes[fid]:status().leader == nil end,
                            DEADLINE_MS), "the follower still knows a leader")
            assert.matches("^CLUSTERDOWN ", f:call("SET", "k", "v2").err)
            local r = f:call("GET", "k")                 -- linearizable: cannot be served
            assert.is_table(r)
            assert.matches("^[A-Z]+ ", r.err)
            assert.same({ ok = "OK" }, f:call("READONLY"))
            assert.equal("v1", f:call("GET", "k"))
            assert.same({ n = 1, "k" }, f:call("KEYS", "*"))
            assert.equal(1, f:call("DBSIZE"))
            f:close()
        end)
        assert(ok, err)
    end)

    it("forwards a follower's writes to the leader, in order, with AUTH", function()
        c = new_cluster(dir, { client_password = "pw" })
        local ok, err = nh.run_scenario(c, 60000, function()
            local lid, fid = leader(c)
            local f = connect(c.client[fid])
            assert.same({ ok = "OK" }, f:call("AUTH", "pw"))
            assert.same({ ok = "OK" }, f:call("SET", "k", "v1"))
            assert.equal("v1", f:call("GET", "k"))              -- linearizable, here
            assert.equal(false, f:call("SET", "k", "v2", "NX"))
            assert.equal(3, f:call("INCRBY", "n", "3"))
            assert.same({ ok = "OK" }, f:call("MSET", "a", "1", "b", "2"))
            assert.equal(2, f:call("DEL", "a", "b"))
            assert.same({ n = 4, "swapped", 2, 1, false },
                        f:call("ATLAS.CALL", "spec_server_swap", "k", "n"))
            assert.matches("^ERR command_error: .*both keys", f:call("ATLAS.CALL",
                           "spec_server_swap", "k", "nope").err)
            assert.same({ err = "ERR value is not an integer or out of range" },
                        f:call("INCR", "n"))                    -- "n" holds "v1" now
            local sid = f:call("ATLAS.SESSION")
            assert.equal("number", type(sid))
            assert.equal(7, f:call("ATLAS.NUMBERED", sid, 1, "INCRBY", "once", "7"))
            -- the retry through the leader itself: the first result, applied once
            local l = connect(c.client[lid])
            assert.same({ ok = "OK" }, l:call("AUTH", "pw"))
            assert.equal(7, l:call("ATLAS.NUMBERED", sid, 1, "INCRBY", "once", "7"))
            assert.equal(7, f:call("ATLAS.NUMBERED", sid, 1, "INCRBY", "once", "7"))
            assert.equal("7", f:call("GET", "once"))
            -- pipelined through the follower: forwarded writes and local reads in order
            local batch = {}
            for i = 1, 40 do
                batch[#batch + 1] = encode({ "SET", "p" .. i, tostring(i) })
                batch[#batch + 1] = encode({ "GET", "p" .. i })
                batch[#batch + 1] = encode({ "INCR", "pc" })
                batch[#batch + 1] = encode({ "NOSUCH" })
            end
            f:send_raw(table.concat(batch))
            for i = 1, 40 do
                assert.same({ ok = "OK" }, f:reply())
                assert.equal(tostring(i), f:reply())
                assert.equal(i, f:reply())
                assert.matches("^ERR unknown command", f:reply().err)
            end
            -- a forwarding link whose AUTH the leader refuses says so; the next link is new
            local fwd = c.nodes[fid]._backend._client_server._forwarder
            fwd.password = "wrong"
            fwd.link.retiring = true
            assert.matches("^ERR the leader refused the forwarding link's AUTH: WRONGPASS",
                           f:call("SET", "k", "v1").err)
            fwd.password = "pw"
            assert.same({ ok = "OK" }, f:call("SET", "k", "v1"))
            -- a connection that says it is a forwarding link is never forwarded again
            local g = connect(c.client[fid])
            assert.same({ ok = "OK" }, g:call("AUTH", "pw"))
            assert.same({ ok = "OK" }, g:call("ATLAS.FORWARDED"))
            assert.same({ err = "MOVED 0 " .. c.client[lid] }, g:call("SET", "k", "v3"))
            -- the leader goes: the follower forwards to the next one
            for _, x in ipairs({ f, g, l }) do x:close() end
            c.nodes[lid]:shutdown()
            local nl
            assert(wait_for(function()
                nl = nh.leader_of(c)
                return nl ~= nil and nl ~= lid
            end, DEADLINE_MS), "no new leader")
            local other
            for _, id in ipairs(c.ids) do
                if id ~= lid and id ~= nl then other = id end
            end
            assert(wait_for(function()
                return c.nodes[other]:status().leader == nl
            end, DEADLINE_MS))
            local h = connect(c.client[other])
            assert.same({ ok = "OK" }, h:call("AUTH", "pw"))
            assert.same({ ok = "OK" }, h:call("SET", "after", "failover"))
            assert.equal("failover", h:call("GET", "after"))
            h:close()
        end)
        assert(ok, err)
    end)

    it("answers CLUSTERDOWN when the leader's client address is unknown, TRYAGAIN when "
       .. "it cannot be reached, TIMEOUT when the link breaks after sending", function()
        c = new_cluster(dir, {})
        local ok, err = nh.run_scenario(c, 30000, function()
            local lid, fid = leader(c)
            -- this follower does not know where the leader's port is
            local saved = c.client[lid]
            c.nodes[fid]._backend._client_server.ctx.peers[lid] = nil
            local f = connect(c.client[fid])
            assert.matches("^CLUSTERDOWN the leader %(" .. lid:gsub("%-", "%%-") .. "%) has no "
                           .. "known client address", f:call("SET", "k", "v").err)
            -- a leader's port that cannot be reached: never sent, safe to retry
            c.nodes[fid]._backend._client_server.ctx.peers[lid] = "127.0.0.1:" .. core.free_port()
            assert.matches("^TRYAGAIN cannot reach the leader's client port",
                           f:call("SET", "k", "v").err)
            -- a link that breaks after sending: the write's outcome is unknown
            local answers = {}
            local fake = assert(require("helios.resp").serve("127.0.0.1:0", { commands = {
                ["ATLAS.FORWARDED"] = { arity = 1, fn = function() return true end },
                SET = { arity = -3, fn = function(conn)
                    answers[#answers + 1] = conn:defer()                -- never answered
                end },
            } }))
            c.nodes[fid]._backend._client_server.ctx.peers[lid] = fake:address()
            f:send_raw(encode({ "SET", "k", "lost" }))
            assert(wait_for(function() return #answers == 1 end, DEADLINE_MS))
            fake:close()
            assert.matches("^TIMEOUT forwarded write's outcome unknown", f:reply().err)
            -- a leader that stops answering: the link is dropped after reply_timeout_ms
            local mute = assert(require("helios.resp").serve("127.0.0.1:0", { commands = {
                ["ATLAS.FORWARDED"] = { arity = 1, fn = function() return true end },
                SET = { arity = -3, fn = function(conn)
                    answers[#answers + 1] = conn:defer()                -- never answered
                end },
            } }))
            local fwd = c.nodes[fid]._backend._client_server._forwarder
            fwd.reply_timeout_ms = 300
            c.nodes[fid]._backend._client_server.ctx.peers[lid] = mute:address()
            assert.matches("^TIMEOUT forwarded write's outcome unknown: no reply from .* "
                           .. "within 300 ms", f:call("SET", "k", "muted").err)
            mute:close()
            c.nodes[fid]._backend._client_server.ctx.peers[lid] = saved
            assert.same({ ok = "OK" }, f:call("SET", "k", "v"))
            f:close()
        end)
        assert(ok, err)
    end)

    it("asks for AUTH with client_password", function()
        c = new_cluster(dir, { client_forward = false, client_password = "pw" })
        local ok, err = nh.run_scenario(c, 30000, function()
            local lid = leader(c)
            local k = connect(c.client[lid])
            assert.same({ err = "NOAUTH Authentication required." }, k:call("SET", "a", "1"))
            assert.matches("^WRONGPASS", k:call("AUTH", "nope").err)
            assert.same({ ok = "OK" }, k:call("AUTH", "pw"))
            assert.same({ ok = "OK" }, k:call("SET", "a", "1"))
            assert.equal("1", k:call("GET", "a"))
            k:close()
        end)
        assert(ok, err)
    end)

    it("refuses bad client options", function()
        local base = { id = "n1", peers = { n1 = "127.0.0.1:1" }, data_dir = dir .. "/n1",
                       secret = "s", fsm = atlas.fsm() }
        local function try(extra)
            local o = {}
            for k, v in each(base) do o[k] = v end
            for k, v in each(extra) do o[k] = v end
            local good, e = pcall(raft.new, o)
            assert.is_false(good)
            return e
        end
        assert.matches("raft.new: client_listen: needs fsm = atlas.fsm%(%)",
                       try({ client_listen = "127.0.0.1:0", fsm = require("helios.fsm.kv").new() }))
        assert.matches("raft.new: client_listen: address must be host:port",
                       try({ client_listen = "nohost" }))
        assert.matches("raft.new: client_password: must be a non%-empty string",
                       try({ client_listen = "127.0.0.1:0", client_password = "" }))
        assert.matches("raft.new: client_forward: must be a boolean",
                       try({ client_listen = "127.0.0.1:0", client_forward = "yes" }))
        assert.matches('raft.new: client_peers%["n1"%]: address',
                       try({ client_listen = "127.0.0.1:0", client_peers = { n1 = "x" } }))
        -- port 0: any; node:client_address() says which, nil once shut down
        local o = {}
        for k, v in each(base) do o[k] = v end
        o.peers = { n1 = "127.0.0.1:" .. core.free_port() }
        o.client_listen = "127.0.0.1:0"
        local node = raft.new(o)
        assert.is_nil(node:client_address())
        assert(node:start())
        local addr = node:client_address()
        assert.matches("^127%.0%.0%.1:%d+$", addr)
        assert.is_nil(addr:match(":0$"))
        -- one purge timer per node, however many stores wrap it
        local p = node._atlas_purger
        assert.is_table(p)
        local store = atlas.new(node)
        assert.equal(p, node._atlas_purger)
        assert.equal(2, p.n)
        store:close()
        assert.equal(p, node._atlas_purger)
        c = { ids = { "n1" }, nodes = { n1 = node } }
        nh.stop_all(c)
        assert.is_nil(node:client_address())
        assert.is_nil(node._atlas_purger)
        -- a port in use: start fails and the node is closed
        local busy = assert(require("helios.resp").serve("127.0.0.1:0", {}))
        o.data_dir = dir .. "/n1b"
        o.client_listen = busy:address()
        local node2 = raft.new(o)
        local started, code = node2:start()
        assert.is_nil(started)
        assert.equal("busy", code)
        busy:close()
        local t = raft.after(5000, function() raft.stop() end)
        raft.run() -- until node2 has closed
        t:stop()
    end)

    it("serves helios.client's RESP cluster client, sessions across a leader change", function()
        c = new_cluster(dir, { client_password = "pw", client_forward = false })
        local ok, err = nh.run_scenario(c, 60000, function()
            local lid = leader(c)
            local addrs = {}
            for i, id in ipairs(c.ids) do addrs[i] = c.client[id] end
            local cc = require("helios.client").cluster(addrs, { password = "pw",
                                                               timeout_ms = 10000 })
            assert.equal(c.client[lid], cc:leader())
            assert.same({ ok = "OK" }, cc:call("SET", "k", "v"))  -- MOVED followed as needed
            assert.equal("v", cc:call("GET", "k"))
            local s = assert(cc:session())
            assert.equal(4, s:call("INCRBY", "once", "4"))
            assert.equal(4, s:retry())                           -- the first result
            -- the leader goes: the session's next write reaches the new one, once
            c.nodes[lid]:shutdown()
            assert.equal(5, s:call("INCR", "once"))
            assert.equal(5, s:retry())
            assert.equal("5", cc:call("GET", "once"))
            cc:close()
        end)
        assert(ok, err)
    end)

    it("proposes the fsm's modules record from the leader's timer until one is applied", function()
        local fsm = atlas.fsm()
        local asked = 0
        -- (helios.atlas.fsm's modules check: bytes while the applied state has no record)
        fsm.modules_pending = function(self)
            asked = asked + 1
            if self:get("spec:modules") then return nil end
            return atlas.encode.incr("spec:modules")
        end
        local peers = { n1 = "127.0.0.1:" .. core.free_port() }
        local node = raft.new{ id = "n1", peers = peers, data_dir = dir .. "/n1", secret = SECRET,
                               fsm = fsm, client_listen = "127.0.0.1:0",
                               election_timeout_ms = 150, heartbeat_timeout_ms = 30 }
        assert(node:start())
        c = { ids = { "n1" }, nodes = { n1 = node } }
        local ok, err = nh.run_scenario(c, 20000, function()
            assert(wait_for(function() return fsm:get("spec:modules") ~= nil end, DEADLINE_MS),
                   "no modules record")
            local before = asked
            assert(wait_for(function() return asked >= before + 3 end, DEADLINE_MS))
            -- proposed while none was applied, and never again once one was
            assert.equal("1", fsm:get("spec:modules"))
        end)
        assert(ok, err)
    end)

    if not have_cli then
        pending("redis-cli is not installed (apt-get install redis-tools)")
        return
    end

    it("serves redis-cli: commands, --scan, INFO, AUTH, MOVED with -c", function()
        c = new_cluster(dir, { client_password = "pw", client_forward = false })
        local ok, err = nh.run_scenario(c, 60000, function()
            local lid, fid = leader(c)
            local a = "-a pw --no-auth-warning"
            assert.equal("OK\n", (cli(dir, c.client[lid], a .. " SET greeting hello")))
            assert.equal("hello\n", (cli(dir, c.client[lid], a .. " GET greeting")))
            assert.matches("NOAUTH", (cli(dir, c.client[lid], "GET greeting")))
            local input = {}
            for i = 1, 30 do input[#input + 1] = ("SET user:%02d v%d"):format(i, i) end
            input[#input + 1] = "SET other x"
            local out = cli(dir, c.client[lid], a, table.concat(input, "\n") .. "\n")
            local _, oks = out:gsub("OK", "")
            assert.equal(31, oks)
            out = cli(dir, c.client[fid], a .. " --scan --pattern 'user:*'")
            local got = {}
            for key in out:gmatch("[^\n]+") do got[#got + 1] = key end
            table.sort(got)
            assert.equal(30, #got)
            assert.equal("user:01", got[1])
            assert.equal("user:30", got[30])
            out = cli(dir, c.client[fid], a .. " --scan")
            local _, lines = out:gsub("\n", "")
            assert.equal(32, lines)
            assert.equal("32\n", (cli(dir, c.client[lid], a .. " DBSIZE")))
            out = cli(dir, c.client[fid], a .. " INFO raft")
            assert.matches("raft_role:follower", out)
            assert.matches("leader_client_addr:" .. c.client[lid]:gsub("%.", "%%."), out)
            -- a write on a follower: MOVED, which redis-cli -c follows to the leader
            assert.matches("MOVED 0 " .. c.client[lid]:gsub("%.", "%%."),
                           (cli(dir, c.client[fid], a .. " SET via follower")))
            assert.equal("OK\n", (cli(dir, c.client[fid], a .. " -c SET via follower")))
            assert.equal("follower\n", (cli(dir, c.client[lid], a .. " GET via")))
            -- forwarding on: the follower takes the write itself
            c.nodes[fid]._backend._client_server.ctx.forward = true
            assert.equal("OK\n", (cli(dir, c.client[fid], a .. " SET via forwarded")))
            assert.equal("forwarded\n", (cli(dir, c.client[lid], a .. " GET via")))
        end)
        assert(ok, err)
    end)
end)
