--- spec/bench/reads.lua: linearizable reads per second of a real 3-node cluster on
-- loopback at 64 concurrent readers, by ReadIndex and by lease (read_lease = true), next
-- to commit throughput at 64 proposers, and etcd's linearizable and serializable reads at
-- 64 clients when etcd is installed.
--
--   luajit spec/bench/reads.lua              (make bench runs it; from the repository root)
--   HELIOS_BENCH_SECONDS=10 luajit spec/bench/reads.lua
--
-- Method: three `helios node` processes (helios.testing, no proxies, helios.fsm.kv, fsync
-- on), this process as the load generator, as in spec/bench/cluster.lua. Each reader is
-- one connection to the leader's control socket with one "read" request in flight at a
-- time (closed loop): the leader confirms its leadership (ReadIndex: one heartbeat round
-- shared by the reads that arrive together; lease: none while the lease holds), waits
-- until it has applied up to its commit index and answers fsm:get(key). Commits: 64
-- proposers sending "apply" the same way. The cluster runs twice: without and with
-- read_lease (and check_quorum, which the lease needs).
--
-- etcd, if `etcd` is on the PATH: a 3-member cluster on loopback (spec/bench/etcd.lua),
-- measured with 64 clients by our generator, spec/bench/etcd_load.go (built here with
-- Debian's golang-go and golang-etcd-server-dev), on its leader; then the ratios
-- Helios / etcd. Without etcd or the generator the line says etcd was not measured.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local core = require("helios.core")
local testing = require("helios.testing")
local load = require("spec.bench.load")

local format, floor = string.format, math.floor

local SECONDS = tonumber(os.getenv("HELIOS_BENCH_SECONDS") or "") or 5
local WARMUP_MS = 500
local CLIENTS = 64
local KEYS = 1000

-- Closed-loop load of n connections to socket_path, each with one request from
-- make(i, seq) in flight (spec/bench/load.lua).
local function run_load(socket_path, n, make)
    return load.run(socket_path, n, SECONDS, WARMUP_MS, make)
end

local results = {} -- what -> requests per second, for the ratios to etcd

local function row(what, r)
    results[what] = r.per_s
    print(format("%-34s %12s %10.2f %10.2f %8d%s", what, format("%d", floor(r.per_s + 0.5)),
        r.p50, r.p99, r.errors, r.first_error and ("  (first: " .. r.first_error .. ")") or ""))
end

local function bench_cluster(lease)
    local config = { election_timeout_ms = 500, heartbeat_timeout_ms = 100 }
    if lease then config.read_lease, config.check_quorum = true, true end
    local cl = testing.cluster{ n = 3, proxies = false, config = config }
    local ok, err = pcall(function()
        local leader = cl:leader(15000)
        local sock = cl:socket(leader)
        local cc = cl:client()
        for k = 1, KEYS, 50 do assert(cc:apply(format("set k%d v%d", k, k), 5000)) end
        if not lease then
            row(format("commits, %d proposers", CLIENTS), run_load(sock, CLIENTS, function(i, s)
                return { op = "apply", cmd = format("set b%d-%d %s", i, s, string.rep("x", 80)),
                         timeout_ms = 10000 }
            end))
        end
        row(format("reads, %s, %d readers", lease and "lease" or "ReadIndex", CLIENTS),
            run_load(sock, CLIENTS, function(i, s)
                return { op = "read", key = format("k%d", (i * 7 + s) % KEYS + 1),
                         timeout_ms = 10000 }
            end))
        if not lease then
            row(format("reads, stale (local), %d readers", CLIENTS),
                run_load(sock, CLIENTS, function(i, s)
                    return { op = "read", key = format("k%d", (i * 7 + s) % KEYS + 1),
                             stale = true }
                end))
        end
    end)
    if not ok then io.stderr:write(tostring(err), "\n", cl:logs(20), "\n") end
    cl:stop()
    return ok
end

-- etcd, when installed: our Go generator does the load (spec/bench/etcd.lua).
local function bench_etcd()
    local etcd = require("spec.bench.etcd")
    local proc = require("spec.bench.proc")
    local gen, why = etcd.generator()
    if not proc.have("etcd") or not proc.have("etcdctl") or not gen then
        print(format("etcd: not measured (%s)", not proc.have("etcd")
            and "etcd is not installed: Debian's etcd-server"
            or not proc.have("etcdctl") and "etcdctl is not installed: Debian's etcd-client"
            or why))
        return true
    end
    local ec = etcd.cluster()
    local etcd_rate = {}
    local ok, err = pcall(function()
        local ep = ec:endpoint(ec:leader())
        for _, c in ipairs({ { "get-lin", "linearizable" }, { "get-ser", "serializable" } }) do
            local r = etcd.load(gen, ep, c[1], CLIENTS, SECONDS)
            etcd_rate[c[2]] = r.per_s
            print(format("etcd reads, %s, %d clients: %d requests/s", c[2], CLIENTS,
                floor(r.per_s + 0.5)))
        end
    end)
    ec:stop()
    if not ok then
        print("etcd: not measured: " .. tostring(err))
        return false
    end
    local function ratio(what, ours_key, theirs)
        local a, b = results[ours_key], etcd_rate[theirs]
        if a and b and b > 0 then
            print(format("ratio %-28s %6.2fx  (Helios %d/s, etcd %s %d/s)", what, a / b,
                floor(a + 0.5), theirs, floor(b + 0.5)))
        end
    end
    ratio("ReadIndex / etcd linearizable", format("reads, ReadIndex, %d readers", CLIENTS),
          "linearizable")
    ratio("lease / etcd linearizable", format("reads, lease, %d readers", CLIENTS),
          "linearizable")
    ratio("stale / etcd serializable", format("reads, stale (local), %d readers", CLIENTS),
          "serializable")
    return true
end

print(format("read benchmark: 3 node processes on loopback, fsync on, %d s per run", SECONDS))
print(format("%-34s %12s %10s %10s %8s", "", "per second", "p50 ms", "p99 ms", "errors"))
local ok = bench_cluster(false)
ok = bench_cluster(true) and ok
ok = select(2, pcall(bench_etcd)) ~= false and ok
os.exit(ok and 0 or 1)
