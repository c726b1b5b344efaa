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
-- etcd, if `etcd` is on the PATH (or in $HELIOS_ETCD_BIN): a 3-member cluster on loopback,
-- measured with 64 clients by etcd's `benchmark range --consistency=l|s` if that tool is
-- there, else by spec/bench/etcd_reads.go (built here with Debian's golang-go and
-- golang-etcd-server-dev); then the ratios Helios / etcd. Without etcd or a load
-- generator the line says etcd was not measured.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local core = require("helios.core")
local testing = require("helios.testing")
local load = require("spec.bench.load")

local format, floor = string.format, math.floor
local clock_ms = core.clock_ms

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

-- etcd, when installed: its own benchmark tool does the load (Go clients, gRPC).
local function bench_etcd()
    local dir = os.getenv("HELIOS_ETCD_BIN")
    local function bin(name)
        local path = dir and (dir .. "/" .. name) or name
        local p = io.popen("command -v " .. path .. " 2>/dev/null")
        local found = p:read("*l")
        p:close()
        return found
    end
    local etcd, bench = bin("etcd"), bin("benchmark")
    local ours = false -- bench is spec/bench/etcd_reads.go's build, not etcd's tool
    if etcd and not bench and bin("go") then
        local clientv3 = "/usr/share/gocode/src/go.etcd.io/etcd/clientv3"
        local f = io.open(clientv3 .. "/client.go")
        if f then
            f:close()
            os.execute("mkdir -p build")
            if os.execute("GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$PWD/build/gocache "
                .. "go build -o build/etcd-reads spec/bench/etcd_reads.go") == 0 then
                bench, ours = "build/etcd-reads", true
            end
        end
    end
    if not etcd or not bench then
        print(format("etcd: not measured (%s not found; install etcd-server, and golang-go "
            .. "with golang-etcd-server-dev or etcd's benchmark tool in $HELIOS_ETCD_BIN)",
            not etcd and "etcd" or "a load generator"))
        return true
    end
    local tmp = os.tmpname()
    os.remove(tmp)
    os.execute("mkdir -p " .. tmp)
    local ports, cluster = {}, {}
    for i = 1, 3 do
        ports[i] = { client = core.free_port(), peer = core.free_port() }
        cluster[i] = format("e%d=http://127.0.0.1:%d", i, ports[i].peer)
    end
    local pids = {}
    for i = 1, 3 do
        local argv = { etcd, "--name", "e" .. i, "--data-dir", tmp .. "/e" .. i,
            "--listen-client-urls", format("http://127.0.0.1:%d", ports[i].client),
            "--advertise-client-urls", format("http://127.0.0.1:%d", ports[i].client),
            "--listen-peer-urls", format("http://127.0.0.1:%d", ports[i].peer),
            "--initial-advertise-peer-urls", format("http://127.0.0.1:%d", ports[i].peer),
            "--initial-cluster", table.concat(cluster, ","), "--initial-cluster-state", "new" }
        pids[i] = assert(core.proc_spawn(argv, { stdout = tmp .. "/e" .. i .. ".log",
                                                 stderr = "stdout", die_with_parent = true }))
    end
    local endpoints = {}
    for i = 1, 3 do endpoints[i] = format("127.0.0.1:%d", ports[i].client) end
    local ep = table.concat(endpoints, ",")
    -- Wait for a leader (etcdctl answers once the cluster serves requests) rather than for
    -- a fixed time.
    local deadline = clock_ms() + 30000
    local etcdctl = bin("etcdctl")
    while etcdctl and clock_ms() < deadline and os.execute(format(
        "ETCDCTL_API=3 %s --endpoints=%s endpoint health >/dev/null 2>&1", etcdctl, ep)) ~= 0 do
        core.sleep_ms(100)
    end
    if not ours then
        os.execute(format("%s --endpoints=%s put k v >/dev/null 2>&1", bench, ep))
    end
    local etcd_rate = {}
    for _, c in ipairs({ { "l", "linearizable" }, { "s", "serializable" } }) do
        local cmd = ours and format("%s --endpoints=%s --clients=%d --consistency=%s "
            .. "--seconds=%d 2>&1", bench, ep, CLIENTS, c[1], SECONDS)
            or format("%s --endpoints=%s --conns=%d --clients=%d range k --consistency=%s "
            .. "--total=%d 2>&1", bench, ep, CLIENTS, CLIENTS, c[1], 100000)
        local p = io.popen(cmd)
        local out = p:read("*a")
        p:close()
        etcd_rate[c[2]] = tonumber(out:match("Requests/sec:%s*([%d%.]+)") or "")
        print(format("etcd reads, %s, %d clients: %s requests/s", c[2], CLIENTS,
            etcd_rate[c[2]] and format("%d", floor(etcd_rate[c[2]] + 0.5)) or
            ("? (" .. out:gsub("%s+$", ""):sub(-200) .. ")")))
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
    for _, pid in ipairs(pids) do core.proc_kill(pid, "TERM") end
    for _, pid in ipairs(pids) do core.proc_wait(pid, 5000) end
    os.execute("rm -rf " .. tmp)
    return true
end

print(format("read benchmark: 3 node processes on loopback, fsync on, %d s per run", SECONDS))
print(format("%-34s %12s %10s %10s %8s", "", "per second", "p50 ms", "p99 ms", "errors"))
local ok = bench_cluster(false)
ok = bench_cluster(true) and ok
ok = select(2, pcall(bench_etcd)) ~= false and ok
os.exit(ok and 0 or 1)
