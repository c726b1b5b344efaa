-- atlas_process_spec.lua: ATLAS served by a 3-node cluster of `helios node` processes
-- (helios.testing, fsm = helios.atlas.fsm, a Redis-protocol port per node), driven by the
-- real redis-cli and redis-benchmark:
--   - the commands through the leader and through a follower (redis-cli -c follows a
--     MOVED; a follower that forwards answers itself), and every replica ends equal;
--   - garbage on one connection: -ERR, that connection closed, the others served on;
--   - a key with a TTL judged expired at the same log entry on every replica (a user
--     command of an atlas_modules module records each replica's own judgement, which the
--     spec reads back from every replica through its control socket);
--   - redis-benchmark against the leader: exit status 0, its keys on every replica;
--   - a session's INCRs through helios.client while the leader is SIGKILLed: each applied
--     once (answers 1..N, every replica at N);
--   - a node whose cluster file loads other atlas_modules than the cluster's log records
--     refuses to go on: a message naming both sets, exit status 4.
-- Every wait has a deadline; the cluster is stopped in finally.

local core = require("helios.core")
local testing = require("helios.testing")
local atlas = require("helios.atlas")
local cli = require("helios.cli")
local clusterfile = require("helios.clusterfile")
local su = require("spec.helpers.storage_util")
local shell = require("helios.util.shell")

local E = atlas.encode
local format, concat = string.format, table.concat

-- A user command module the nodes load from their cluster file's directory: "probe"
-- writes, into each replica's own state, whether that replica sees key args[1] at this
-- entry; "sum" is what the mismatch spec registers.
local PROBE = [[
local atlas = require("helios.atlas")
atlas.command("probe", function(store, args, entry)
    store:set("seen:" .. args[2], store:exists(args[1]) and "1" or "0")
    return entry.index
end)
return true
]]

local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("exit=(%d+)%s*$"))
    return (out:gsub("exit=%d+%s*$", "")), code
end

local function port_of(addr) return tonumber(addr:match(":(%d+)$")) end

-- redis-cli against a port (every argument quoted); its output without the last newline.
local function redis(port, ...)
    local args = {}
    for i, a in ipairs({ ... }) do args[i] = shell.quote(a) end
    local out, code = sh(format("timeout 20 redis-cli -c -p %d %s", port, concat(args, " ")))
    assert.are.equal(0, code, out)
    return (out:gsub("\n$", ""))
end

-- A raw connection to a client port: send bytes, read lines with a deadline.
local function raw(addr)
    local s = assert(core.sock_connect(addr, 2000))
    local c = {}
    function c.send(bytes)
        local ok, code, detail = s:try_send_raw(bytes)
        assert(ok or code == "again", detail)
        local deadline = core.clock_ms() + 5000
        while true do
            local done, fc = s:try_flush()
            if done or fc ~= "again" then break end
            assert(core.clock_ms() < deadline, "send: deadline")
            core.poll_fd(s:fileno(), "w", 50)
        end
    end
    function c.line()
        local deadline = core.clock_ms() + 5000
        while true do
            local l, code = s:try_read_line()
            if l then return (l:gsub("\r$", "")) end
            if code ~= "again" then return nil, code end
            assert(core.clock_ms() < deadline, "no reply line within 5 s")
            core.poll_fd(s:fileno(), "r", 50)
        end
    end
    function c.close() s:close() end
    return c
end

-- The cluster's nodes' ids other than id.
local function others(cl, id)
    local out = {}
    for _, o in ipairs(cl:ids()) do if o ~= id then out[#out + 1] = o end end
    return out
end

-- A stale read of key on node id through its control socket (this replica's own state).
local function local_get(cl, id, key)
    local c = assert(cl:client():node(id))
    local ok, v, detail = c:read(key, { stale = true, timeout_ms = 2000 })
    if not ok then error(format("read %s on %s: %s %s", key, id, tostring(v), detail)) end
    return v
end

local function have(cmd)
    local r = os.execute("command -v " .. cmd .. " >/dev/null 2>&1")
    return r == 0 or r == true
end

describe("ATLAS on a cluster of processes, through redis-cli", function()
    if not (have("redis-cli") and have("redis-benchmark")) then
        pending("redis-cli or redis-benchmark is not installed (apt-get install redis-tools)")
        return
    end
    local cl
    before_each(function()
        cl = testing.cluster{ n = 3, fsm = "helios.atlas.fsm", client = true,
                              atlas_modules = { "probe" }, start = false }
        su.write_file(cl:dir() .. "/probe.lua", PROBE)
        for _, id in ipairs(cl:ids()) do cl:start(id) end
    end)
    after_each(function() if cl then cl:stop() end end)

    it("serves SET/GET/DEL/INCR/EXPIRE/TTL/MGET/MSET/KEYS/INFO/DBSIZE on the leader and a "
       .. "follower, survives garbage, expires a key at the same entry everywhere", function()
        local ok, err = pcall(function()
            local leader = cl:leader(15000)
            local follower = others(cl, leader)[1]
            local lp, fp = port_of(cl:client_address(leader)), port_of(cl:client_address(follower))
            -- every node's port answers
            for _, id in ipairs(cl:ids()) do
                cl:wait(function()
                    local out, code = sh(format("timeout 5 redis-cli -p %d PING",
                        port_of(cl:client_address(id))))
                    return code == 0 and out:match("PONG")
                end, 10000, id .. "'s client port")
            end

            -- through the leader
            assert.are.equal("OK", redis(lp, "SET", "greeting", "hello"))
            assert.are.equal("hello", redis(lp, "GET", "greeting"))
            assert.are.equal("1", redis(lp, "INCR", "visits"))
            assert.are.equal("2", redis(lp, "INCR", "visits"))
            assert.are.equal("OK", redis(lp, "MSET", "a", "1", "b", "2"))
            -- a null bulk prints as an empty line
            assert.are.equal("1\n2\n", redis(lp, "MGET", "a", "b", "nope"))
            assert.are.equal("1", redis(lp, "EXPIRE", "a", "100"))
            local ttl = tonumber(redis(lp, "TTL", "a"))
            assert.is_true(ttl ~= nil and ttl > 90 and ttl <= 100, tostring(ttl))
            assert.are.equal("-1", redis(lp, "TTL", "b"))
            assert.are.equal("-2", redis(lp, "TTL", "nope"))
            assert.are.equal("1", redis(lp, "DEL", "b"))
            assert.are.equal("", redis(lp, "GET", "b"))
            local keys = {}
            for k in redis(lp, "KEYS", "*"):gmatch("[^\n]+") do keys[#keys + 1] = k end
            table.sort(keys)
            assert.are.same({ "a", "greeting", "visits" }, keys)
            assert.are.equal("3", redis(lp, "DBSIZE"))
            assert.matches("role:", redis(lp, "INFO"), 1, true)

            -- through a follower: writes reach the leader (forwarded, or MOVED that
            -- redis-cli -c follows), reads are linearizable there too
            assert.are.equal("OK", redis(fp, "SET", "from-follower", "yes"))
            assert.are.equal("yes", redis(fp, "GET", "from-follower"))
            assert.are.equal("3", redis(fp, "INCR", "visits"))
            assert.are.equal("3", redis(lp, "GET", "visits"))
            assert.are.equal("4", redis(fp, "DBSIZE"))

            -- garbage: an error, that connection closed; another connection goes on
            local good = raw(cl:client_address(leader))
            for _, junk in ipairs({ "*abc\r\n", "*1\r\n$-3\r\n", "*2\r\n+OK\r\n" }) do
                local bad = raw(cl:client_address(leader))
                bad.send(junk)
                assert.matches("^%-ERR", assert(bad.line()))
                local l, code = bad.line()
                assert.is_nil(l)
                assert.are.equal("closed", code)
                bad.close()
            end
            local bad = raw(cl:client_address(follower))
            bad.send("\0\255garbage*\r\n*abc\r\n")
            assert.matches("^%-ERR", assert(bad.line()))
            bad.close()
            good.send("*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n")
            assert.are.equal("$5", good.line())
            assert.are.equal("hello", good.line())
            good.close()
            assert.are.equal("hello", redis(lp, "GET", "greeting"))

            -- a TTL: each probe entry records, on each replica, whether that replica still
            -- sees the key at that entry; every replica must have judged every entry alike
            local cc = cl:client()
            -- (a TTL long enough for the first probes under load, probes for twice as long)
            assert(cc:apply(E.set("t", "v", 1000), 5000))
            local probes = 0
            local t0 = core.clock_ms()
            while core.clock_ms() - t0 < 2000 do
                probes = probes + 1
                local index, code, detail = cc:apply(E.call("probe", { "t", probes }), 5000)
                assert(index, tostring(code) .. " " .. tostring(detail))
                core.sleep_ms(25)
            end
            local last = assert(cc:apply(E.set("probes:done", "1"), 5000))
            cl:wait_applied(last, 10000)
            local judged = {}
            for _, id in ipairs(cl:ids()) do
                local seq = {}
                for i = 1, probes do seq[i] = local_get(cl, id, "seen:" .. i) or "?" end
                judged[id] = concat(seq)
            end
            local ref = judged[leader]
            assert.matches("^1+0+$", ref) -- seen, then expired for good
            for _, id in ipairs(cl:ids()) do assert.are.equal(ref, judged[id], id) end
            for _, id in ipairs(cl:ids()) do
                assert.is_nil(local_get(cl, id, "t"), id)
                assert.are.equal("yes", local_get(cl, id, "from-follower"), id)
            end
        end)
        if not ok then error(tostring(err) .. "\n" .. cl:logs(30), 0) end
    end)

    it("takes redis-benchmark on the leader; its keys are on every replica", function()
        local ok, err = pcall(function()
            local leader = cl:leader(15000)
            local lp = port_of(cl:client_address(leader))
            cl:wait(function()
                local out, code = sh(format("timeout 5 redis-cli -p %d PING", lp))
                return code == 0 and out:match("PONG")
            end, 10000, "the leader's client port")
            local out, code = sh(format("timeout 120 redis-benchmark -p %d -t set,get -n 2000 "
                .. "-r 100 -q", lp))
            assert.are.equal(0, code, out)
            assert.matches("SET: [%d%.]+ requests per second", out)
            assert.matches("GET: [%d%.]+ requests per second", out)
            local keys = {}
            for k in redis(lp, "KEYS", "key:*"):gmatch("[^\n]+") do keys[#keys + 1] = k end
            assert.is_true(#keys > 10 and #keys <= 100, #keys .. " keys")
            local last = assert(cl:client():apply(E.set("bench:done", "1"), 5000))
            cl:wait_applied(last, 10000)
            for _, id in ipairs(cl:ids()) do
                for i = 1, #keys, 7 do
                    -- redis-benchmark's 3-byte value
                    assert.are.equal(redis(lp, "GET", keys[i]), local_get(cl, id, keys[i]),
                                     id .. " " .. keys[i])
                    assert.are.equal(3, #local_get(cl, id, keys[i]))
                end
            end
        end)
        if not ok then error(tostring(err) .. "\n" .. cl:logs(30), 0) end
    end)
end)

describe("exactly-once writes over the RESP port across a leader crash", function()
    -- A session's INCRs run in one coroutine on the loop while another SIGKILLs the leader
    -- after a few of them: the write in flight then is retried, with its sequence number,
    -- on whichever node leads next. Whether the crash hit a write before or after it
    -- committed, each INCR must be applied once: the answers are 1, 2, ..., N with no gap
    -- and no repeat, and every replica ends at N. (Where the kill lands depends on the
    -- processes' timing: most runs catch a write on the wire; spec/atlas_sim_spec.lua
    -- crashes a leader after a numbered write committed and before its answer, every run.)
    it("applies each numbered INCR once, its answers 1..N in order", function()
        local loop = require("helios.loop")
        local client = require("helios.client")
        local cl = testing.cluster{ n = 3, fsm = "helios.atlas.fsm", client = true }
        local ok, err = pcall(function()
            local leader = cl:leader(15000)
            local addrs = {}
            for _, id in ipairs(cl:ids()) do addrs[id] = cl:client_address(id) end
            local cc = client.cluster(addrs, { timeout_ms = 20000, attempt_ms = 1000 })
            local N, KILL_AFTER = 60, 15
            local answers, failure, done = {}, nil, false
            local killed = false
            loop.spawn(function()
                local s, code, detail = cc:session()
                if not s then failure = format("session: %s %s", tostring(code), tostring(detail))
                else
                    for i = 1, N do
                        local v, c, d = s:call("INCR", "hits")
                        if v == nil then
                            failure = format("INCR #%d: %s %s", i, tostring(c), tostring(d))
                            break
                        end
                        answers[#answers + 1] = v
                    end
                end
                done = true
            end)
            loop.spawn(function()
                -- The kill lands while the other coroutine's next INCR is on the wire
                -- (each one waits for a commit: an fsync on two nodes).
                while #answers < KILL_AFTER and not done do loop.sleep(1) end
                cl:kill(leader, "KILL")
                killed = true
            end)
            loop.spawn(function()
                while not (done and killed) do loop.sleep(10) end
                loop.stop()
            end)
            local deadline = loop.after(60000, loop.stop)
            assert(loop.run())
            deadline:stop()
            assert(done and killed, "the INCRs did not finish within 60 s")
            assert.is_nil(failure)
            assert.are.equal(N, #answers)
            for i = 1, N do assert.are.equal(i, answers[i], "answer " .. i) end
            cl:start(leader)
            for _, id in ipairs(cl:ids()) do
                cl:wait(function()
                    local c = cl:client():node(id)
                    if not c then return false end
                    local rok, v = c:read("hits", { stale = true, timeout_ms = 1000 })
                    return rok and v == tostring(N)
                end, 20000, id .. " applies hits = " .. N)
            end
            cc:close()
        end)
        cl:stop()
        if not ok then error(tostring(err) .. "\n" .. cl:logs(30), 0) end
    end)
end)

describe("atlas_modules on a cluster of processes", function()
    it("stops a node that loads other modules than the log records, with exit status 4",
       function()
        local cl = testing.cluster{ n = 3, fsm = "helios.atlas.fsm", atlas_modules = { "probe" },
                                    start = false }
        finally(function() cl:stop() end)
        local ok, err = pcall(function()
            su.write_file(cl:dir() .. "/probe.lua", PROBE)
            su.write_file(cl:dir() .. "/extra.lua", "return true\n")
            cl:start("node-1")
            cl:start("node-2")
            cl:leader(15000)
            local index = assert(cl:client():apply(E.call("probe", { "x", 1 }), 5000))
            -- node-3's file: another set
            local path = cl:config_path("node-3")
            local conf = assert(loadfile(path))()
            conf.atlas_modules = { "probe", "extra" }
            assert(clusterfile.write(path, conf))
            cl:start("node-3")
            cl:wait(function() return not cl:running("node-3") end, 20000,
                    "node-3 to refuse and exit")
            local log = su.read_file(cl:log_path("node-3"))
            assert.matches("this node loaded extra, probe, but the cluster's log records probe",
                           log, 1, true)
            assert.matches("helios node: " .. path .. ": atlas_modules: ", log, 1, true)
            -- the exit status, as cl:running recorded it
            assert.matches(format("node%%-3%%.log %%(not running: exited %d%%)",
                cli.EXIT_MODULES_MISMATCH), cl:logs(1))
            -- the others go on; node-3 with the right set catches up
            assert(cl:client():apply(E.set("after", "1"), 5000))
            conf.atlas_modules = { "probe" }
            assert(clusterfile.write(path, conf))
            cl:start("node-3")
            local last = assert(cl:client():apply(E.set("after2", "1"), 5000))
            cl:wait_applied(last, 15000)
            assert.is_true(last > index)
            assert.is_true(cl:running("node-3"))
        end)
        if not ok then error(tostring(err) .. "\n" .. cl:logs(30), 0) end
    end)
end)
