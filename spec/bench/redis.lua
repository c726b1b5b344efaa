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

local testing = require("helios.testing")
local proc = require("spec.bench.proc")
local rb = require("spec.bench.redis_bench")

local format, floor = string.format, math.floor

local SECONDS = tonumber(os.getenv("HELIOS_BENCH_SECONDS") or "") or 3
local CLIENTS = { 1, 16, 64, 256 }
local PIPELINES = { 1, 16 }
local TESTS = { "set", "get" }

if not proc.have("redis-benchmark") then
    print("redis benchmark: skipped: redis-benchmark is not installed (Debian/Ubuntu: "
        .. "apt-get install redis-tools; it also brings redis-cli)")
    os.exit(0)
end
local with_redis = proc.have("redis-server")

-- requests per second and p50 ms of one measured run, or nil and why.
local function measure(port, test, clients, pipeline)
    local r, why = rb.measure(port, test, clients, { pipeline = pipeline, seconds = SECONDS })
    if not r then return nil, why end
    return r.rps, r.p50
end

local cl = testing.cluster{ n = 3, proxies = false, fsm = "helios.atlas.fsm", client = true,
                            config = { election_timeout_ms = 500, heartbeat_timeout_ms = 100 } }
local srv
local ok, err = pcall(function()
    local leader = cl:leader(15000)
    local hport = tonumber(cl:client_address(leader):match(":(%d+)$"))
    local rport
    if with_redis then
        srv = rb.start_server()
        rport = srv.port
    end
    print(format("redis benchmark: redis-benchmark -t set,get (3-byte values) against a 3-node "
        .. "ATLAS cluster on loopback (fsync on, leader %s, port %d)%s, ~%d s per run",
        leader, hport, with_redis and format(" and redis-server %s (appendfsync always, "
            .. "port %d)", srv.version or "?", rport)
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
if srv then srv:stop() end
os.exit(ok and 0 or 1)
