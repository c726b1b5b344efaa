--- spec/bench/redis.lua: ATLAS on its Redis-protocol port against redis-server, both
-- measured with redis-benchmark in the same run, both durable before they answer.
--
--   luajit spec/bench/redis.lua              (make bench runs it; from the repository root)
--   HELIOS_BENCH_SECONDS=5 luajit spec/bench/redis.lua
--
-- Method: a 3-node cluster of `helios node` processes on loopback (helios.testing, no
-- proxies in the path, fsm = helios.atlas.fsm, fsync on as in production: a SET is answered
-- once its entry is durable on a majority and applied on the leader; a GET is a
-- linearizable read on the leader), and one redis-server in a temporary directory with
-- `--appendonly yes --appendfsync always --save ''` (each write is in the append-only file
-- and fsynced before the reply, as Redis's strongest setting; one machine, no replica).
-- For each of -c 1, 16, 64, 256 clients and -P 1 and 16 (pipelined requests per client),
-- `redis-benchmark -t set -q --csv` and `-t get` run against the leader's client port, then
-- against redis-server. -n is set per run from a short probe so that each run takes about
-- HELIOS_BENCH_SECONDS (default 3). The table shows requests per second and the median
-- latency of each, and the ratio helios / redis.
--
-- redis-benchmark (Debian: redis-tools) and redis-server (Debian: redis-server) are only
-- needed here; without them this prints what to install and exits 0.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local core = require("helios.core")
local testing = require("helios.testing")
local process = require("helios.util.process")
local shell = require("helios.util.shell")

local format, floor, ceil, max, min = string.format, math.floor, math.ceil, math.max, math.min

local SECONDS = tonumber(os.getenv("HELIOS_BENCH_SECONDS") or "") or 3
local CLIENTS = { 1, 16, 64, 256 }
local PIPELINES = { 1, 16 }
local TESTS = { "set", "get" }
local RUN_LIMIT_S = 120 -- one redis-benchmark run is cut off after this (timeout)

local function have(cmd)
    local r = os.execute("command -v " .. cmd .. " >/dev/null 2>&1")
    return r == 0 or r == true
end

local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1"))
    local out = p:read("*a")
    local ok, how, code = p:close()
    if type(ok) == "number" then code = ok end -- LuaJIT without 5.2 compat: the status
    return out, (ok == true or code == 0) and 0 or (code or 1)
end

if not have("redis-benchmark") then
    print("redis benchmark: skipped: redis-benchmark is not installed (Debian/Ubuntu: "
        .. "apt-get install redis-tools; it also brings redis-cli)")
    os.exit(0)
end
local with_redis = have("redis-server")

-- One redis-benchmark run: requests per second and p50 ms, or nil and the output; "inf"
-- (and the output) when the run was too short for redis-benchmark's clock.
local function bench(port, test, clients, pipeline, n)
    local cmd = format("timeout %d redis-benchmark -h 127.0.0.1 -p %d -t %s -c %d -P %d -n %d "
        .. "--csv", RUN_LIMIT_S, port, test, clients, pipeline, n)
    local out, code = sh(cmd)
    if code == 0 and out:find('"' .. test:upper() .. '","inf"', 1, true) then
        return "inf", out
    end
    -- "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
    local rps, p50 = out:match('"' .. test:upper()
        .. '","([%d%.]+)","[%d%.]+","[%d%.]+","([%d%.]+)"')
    if code ~= 0 or not rps then return nil, format("%s: exit %s\n%s", cmd, code, out) end
    return tonumber(rps), tonumber(p50)
end

-- A probe sized for the in-flight requests, then a run of about SECONDS.
local function measure(port, test, clients, pipeline)
    local probe_n = max(200, clients * pipeline * 4)
    local rps, p50 = bench(port, test, clients, pipeline, probe_n)
    while rps == "inf" and probe_n < 1000000 do -- (a fast server: a longer probe)
        probe_n = probe_n * 10
        rps, p50 = bench(port, test, clients, pipeline, probe_n)
    end
    if rps == "inf" then rps = nil end
    if not rps then return nil, p50 end
    local n = min(5000000, max(probe_n, ceil(rps * SECONDS)))
    return bench(port, test, clients, pipeline, n)
end

-- redis-server in a temporary directory on a free port; its pid, port and directory.
local function start_redis()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. shell.quote(dir)))
    local port = assert(core.free_port())
    local pid, code, detail = core.proc_spawn({ "redis-server", "--port", tostring(port),
        "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", "always",
        "--save", "", "--daemonize", "no" },
        { stdout = dir .. "/redis.log", stderr = "stdout", die_with_parent = true })
    if not pid then error(format("cannot start redis-server: %s %s", code, detail)) end
    local deadline = core.clock_ms() + 10000
    while true do
        local out = sh(format("redis-cli -p %d ping", port))
        if out:match("PONG") then break end
        if core.proc_wait(pid, 0) or core.clock_ms() > deadline then
            local f = io.open(dir .. "/redis.log")
            error("redis-server did not start:\n" .. (f and f:read("*a") or ""))
        end
        core.sleep_ms(50)
    end
    return pid, port, dir
end

local cl = testing.cluster{ n = 3, proxies = false, fsm = "helios.atlas.fsm", client = true,
                            config = { election_timeout_ms = 500, heartbeat_timeout_ms = 100 } }
local redis_pid, redis_dir
local ok, err = pcall(function()
    local leader = cl:leader(15000)
    local hport = tonumber(cl:client_address(leader):match(":(%d+)$"))
    local rport
    if with_redis then redis_pid, rport, redis_dir = start_redis() end
    print(format("redis benchmark: redis-benchmark -t set,get (3-byte values) against a 3-node "
        .. "ATLAS cluster on loopback (fsync on, leader %s, port %d)%s, ~%d s per run",
        leader, hport, with_redis and format(" and redis-server %s (appendfsync always, "
            .. "port %d)", (sh("redis-server --version"):match("v=([%d%.]+)") or "?"), rport)
            or "", SECONDS))
    if not with_redis then
        print("  (redis-server is not installed: Debian/Ubuntu: apt-get install redis-server; "
            .. "helios only)")
    end
    print(format("%-4s %5s %4s %14s %9s %14s %9s %8s", "test", "-c", "-P", "helios req/s",
        "p50 ms", "redis req/s", "p50 ms", "ratio"))
    for _, pipeline in ipairs(PIPELINES) do
        for _, clients in ipairs(CLIENTS) do
            for _, test in ipairs(TESTS) do
                local h, hp50 = measure(hport, test, clients, pipeline)
                if not h then error(hp50, 0) end
                local r, rp50
                if with_redis then
                    r, rp50 = measure(rport, test, clients, pipeline)
                    if not r then error(rp50, 0) end
                end
                print(format("%-4s %5d %4d %14s %9.3f %14s %9s %8s", test:upper(), clients,
                    pipeline, format("%d", floor(h + 0.5)), hp50,
                    r and format("%d", floor(r + 0.5)) or "-",
                    rp50 and format("%.3f", rp50) or "-",
                    r and format("%.2f", h / r) or "-"))
            end
        end
    end
    local st = cl:client():node(leader):stats() or {}
    print(format("leader: %s entries written, %s fsyncs over the whole run",
        tostring(st.entries_written or "?"),
        tostring(st.fsyncs or "?")))
end)
if not ok then
    io.stderr:write(tostring(err), "\n", cl:logs(20), "\n")
end
cl:stop()
if redis_pid then
    process.stop(redis_pid, "TERM", 5000)
end
if redis_dir then os.execute("rm -rf " .. shell.quote(redis_dir)) end
os.exit(ok and 0 or 1)
