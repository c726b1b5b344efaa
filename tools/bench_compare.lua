--- tools/bench_compare.lua: `make bench-compare`: Helios next to etcd and redis-server,
-- measured in one run on this machine, printed as one Markdown table
-- (docs/benchmarks.md says what each figure is and how to read it).
--
--   luajit tools/bench_compare.lua           (from the repository root, after make build)
--   HELIOS_BENCH_SECONDS=3 luajit tools/bench_compare.lua     -- seconds per level (5)
--   HELIOS_COMPARE_BUDGET_S=600 HELIOS_COMPARE_KEYS=1000000 luajit tools/bench_compare.lua
--
-- Stages, each with its own processes, stopped at its end (also on an error, SIGINT or
-- SIGTERM: spec/bench/proc.lua turns those into errors at the next wait, and every child
-- dies with this process should it be killed outright):
--   1. Helios: 3 `helios node` processes (ATLAS, fsync on, the default 150 ms election
--      timeout), writes by redis-benchmark and by spec/bench/load.lua on helios.client at
--      1, 16, 64, 256 clients; the leader's fsync counters over the 64-client run;
--      linearizable and READONLY reads at 64; 5 failovers (spec/bench/failover.lua).
--   2. etcd: 3 members (spec/bench/etcd.lua), our Go generator (spec/bench/etcd_load.go):
--      puts at the same counts, linearizable and serializable gets at 64, 5 failovers.
--   3. redis-server with appendfsync always, redis-benchmark at the same counts.
--   4. memory: a new Helios cluster and a new redis-server, each filled with the same keys
--      (spec/bench/memory.lua), and their resident memory.
-- A stage that fails (a tool missing, a timeout) leaves "-" in its cells and a note under
-- the table; the exit status is then 1. Every stage is skipped once the time budget
-- (HELIOS_COMPARE_BUDGET_S, default 600 s) is used up.

package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local core = require("helios.core")
local testing = require("helios.testing")
local client = require("helios.client")
local load = require("spec.bench.load")
local proc = require("spec.bench.proc")
local rb = require("spec.bench.redis_bench")
local etcd = require("spec.bench.etcd")
local failover = require("spec.bench.failover")
local memory = require("spec.bench.memory")
local tbl = require("spec.bench.compare_table")

local format, tostring, ipairs = string.format, tostring, ipairs
local clock_ms = core.clock_ms
local traceback = debug.traceback

local SECONDS = tonumber(os.getenv("HELIOS_BENCH_SECONDS") or "") or 5
local BUDGET_S = tonumber(os.getenv("HELIOS_COMPARE_BUDGET_S") or "") or 600
local KEYS = tonumber(os.getenv("HELIOS_COMPARE_KEYS") or "") or 1000000
local LEVELS = tbl.LEVELS
local WARMUP_MS = 500
local FAILOVERS = 5
local READ_CLIENTS = 64
local VALUE = string.rep("v", 100)
-- The node's defaults (docs/lua-api.md): helios.testing's own are slower, for tests.
local HELIOS_CONFIG = { election_timeout_ms = 150, heartbeat_timeout_ms = 50 }

proc.catch_signals()
local started = clock_ms()
local deadline = started + BUDGET_S * 1000

local function log(fmt, ...)
    io.stderr:write(format("[%5.1f s] ", (clock_ms() - started) / 1000), format(fmt, ...), "\n")
end

local results = { levels = LEVELS, writes = {}, reads = {}, labels = {},
                  failover = { helios = {}, etcd = {} }, memory = {}, fsync = {} }
for _, c in ipairs(LEVELS) do results.writes[c] = {} end
local notes, failed = {}, false

-- Raise once the time budget is used up (checked between the steps of a stage).
local function budget()
    proc.check()
    if clock_ms() > deadline then
        error(format("the time budget of %d s was used up (HELIOS_COMPARE_BUDGET_S)", BUDGET_S),
            0)
    end
end

-- Run a stage; its failure becomes a note (an interrupt stops the whole run).
local function stage(name, fn)
    if proc.interrupted then return end
    local ok, err = xpcall(function()
        budget()
        log("== %s", name)
        fn()
    end, traceback)
    if not ok and proc.interrupted then return end
    if not ok then
        failed = true
        local msg = tostring(err)
        notes[#notes + 1] = format("%s: not (fully) measured: %s", name,
            msg:match("^[^\n]*"))
        io.stderr:write(name, ": ", msg, "\n")
    end
end

-- body(resource) with resource = start(); stop(resource) always, then the error if any.
local function with(start, stop, body)
    local r = start()
    local ok, err = xpcall(body, traceback, r)
    local sok, serr = pcall(stop, r)
    if not ok then error(err, 0) end
    if not sok then error(serr, 0) end
end

local function sh_line(cmd)
    local p = io.popen(cmd .. " 2>/dev/null")
    local s = p and p:read("*l") or ""
    if p then p:close() end
    return s or ""
end

local function loadavg()
    local f = io.open("/proc/loadavg")
    local s = f and f:read("*l") or ""
    if f then f:close() end
    return s:match("^(%S+ %S+ %S+)") or "?"
end

local function cpu_model()
    local f = io.open("/proc/cpuinfo")
    if not f then return "?" end
    local s = f:read("*a")
    f:close()
    return (s:match("model name%s*:%s*([^\n]+)") or "?"):gsub("%s+", " ")
end

local function rate(r)
    return { per_s = r.per_s, p50 = r.p50, p99 = r.p99, errors = r.errors, cpu = r.cpu }
end

local function log_rate(what, c, r)
    log("%-34s %4d clients: %s/s, p50 %.2f ms, p99 %.2f ms%s%s", what, c, tbl.int(r.per_s),
        r.p50, r.p99, (r.errors or 0) > 0 and format(", %d errors", r.errors) or "",
        r.cpu and format(" (generator: %.0f%% of a core)", r.cpu * 100) or "")
end

-- One closed-loop run of our generator on helios.client: `clients` RESP connections to
-- addr, each running request(conn) in a loop.
local function helios_load(addr, clients, request, setup)
    budget()
    local cpu0, wall0 = os.clock(), clock_ms()
    local r = load.run_clients(clients, SECONDS, WARMUP_MS, function()
        local c, code, detail = client.connect(addr, { timeout_ms = 10000 })
        if c and setup then
            local ok, scode, sdetail = setup(c)
            if not ok then return nil, scode, sdetail end
        end
        return c, code, detail
    end, request)
    -- The generator shares the cores with the servers: near 100% of one, it is the limit.
    r.cpu = (os.clock() - cpu0) / ((clock_ms() - wall0) / 1000)
    return r
end

local function set_request(conn)
    return conn:command({ "SET", format("key:%012d", math.random(0, 999999)), VALUE })
end

local function get_request(conn)
    return conn:command({ "GET", "read-key" })
end

local function helios_cluster()
    return testing.cluster{ n = 3, proxies = false, fsm = "helios.atlas.fsm", client = true,
                            config = HELIOS_CONFIG }
end

local function stop_cluster(cl) cl:stop() end

local function storage_counters(st)
    st = st or {}
    local s = st.storage or {}
    return { entries = st.entries_written or s.entries, fsyncs = st.fsyncs or s.rounds,
             batches = st.batches or s.batches }
end

-- 1. Helios
local function bench_helios()
    with(helios_cluster, stop_cluster, function(cl)
        local leader = cl:leader(15000)
        local addr = cl:client_address(leader)
        local port = tonumber(addr:match(":(%d+)$"))
        log("helios: leader %s, RESP port %d", leader, port)
        if proc.have("redis-benchmark") then
            for _, c in ipairs(LEVELS) do
                budget()
                local r, why = rb.measure(port, "set", c, { seconds = SECONDS,
                    value_bytes = 100, keyspace = 1000000 })
                if not r then error("redis-benchmark on Helios: " .. tostring(why), 0) end
                results.writes[c].helios_rb = { per_s = r.rps, p50 = r.p50, p99 = r.p99 }
                log_rate("helios SET, redis-benchmark", c, results.writes[c].helios_rb)
            end
        else
            notes[#notes + 1] = "redis-benchmark is not installed (Debian: redis-tools)"
        end
        local stats = cl:client():node(leader)
        for _, c in ipairs(LEVELS) do
            local before, t0
            if c == READ_CLIENTS then
                before, t0 = storage_counters(stats:stats()), clock_ms()
            end
            local r = helios_load(addr, c, set_request)
            results.writes[c].helios = rate(r)
            log_rate("helios SET, helios.client", c, r)
            if before then
                local after, t1 = storage_counters(stats:stats()), clock_ms()
                if before.fsyncs and after.fsyncs and after.fsyncs > before.fsyncs then
                    local fsyncs = after.fsyncs - before.fsyncs
                    results.fsync = { clients = c, fsyncs_per_s = fsyncs / ((t1 - t0) / 1000),
                        entries_per_fsync = (after.entries - before.entries) / fsyncs,
                        batches = after.batches and before.batches
                            and after.batches - before.batches }
                    log("helios leader at %d clients: %.1f entries per fsync, %s fsyncs/s", c,
                        results.fsync.entries_per_fsync, tbl.int(results.fsync.fsyncs_per_s))
                end
            end
        end
        assert(client.connect(addr)):call("SET", "read-key", VALUE)
        results.reads.helios_lin = rate(helios_load(addr, READ_CLIENTS, get_request))
        log_rate("helios GET, linearizable", READ_CLIENTS, results.reads.helios_lin)
        results.reads.helios_stale = rate(helios_load(addr, READ_CLIENTS, get_request,
            function(c) return c:call("READONLY") end))
        log_rate("helios GET, READONLY (stale)", READ_CLIENTS, results.reads.helios_stale)
        for i = 1, FAILOVERS do
            budget()
            local ms, tries = failover.helios(cl, 10000)
            results.failover.helios[i] = ms
            log("helios failover %d: %.0f ms (%d attempts)", i, ms, tries)
        end
    end)
end

-- 2. etcd
local function bench_etcd()
    if not proc.have("etcd") then error("etcd is not installed (Debian: etcd-server)", 0) end
    if not proc.have("etcdctl") then error("etcdctl is not installed (Debian: etcd-client)", 0) end
    local gen, why = etcd.generator()
    if not gen then error(why, 0) end
    results.labels.etcd = "etcd " .. (proc.first_line({ "etcd", "--version" })
        :match("([%d%.]+)") or "?")
    local function norm(r)
        return { per_s = r.per_s, p50 = r.p50_ms, p99 = r.p99_ms, errors = r.errors }
    end
    with(etcd.cluster, function(ec) ec:stop() end, function(ec)
        local l = ec:leader()
        log("etcd: leader e%d at %s", l, ec:endpoint(l))
        for _, c in ipairs(LEVELS) do
            budget()
            results.writes[c].etcd = norm(etcd.load(gen, ec:endpoint(l), "put", c, SECONDS))
            log_rate("etcd put", c, results.writes[c].etcd)
        end
        budget()
        results.reads.etcd_lin = norm(etcd.load(gen, ec:endpoint(l), "get-lin", READ_CLIENTS,
                                                SECONDS))
        log_rate("etcd get, linearizable", READ_CLIENTS, results.reads.etcd_lin)
        budget()
        results.reads.etcd_ser = norm(etcd.load(gen, ec:endpoint(l), "get-ser", READ_CLIENTS,
                                                SECONDS))
        log_rate("etcd get, serializable", READ_CLIENTS, results.reads.etcd_ser)
        for i = 1, FAILOVERS do
            budget()
            local r = etcd.failover(gen, ec, 15000)
            results.failover.etcd[i] = r.recovered_ms
            log("etcd failover %d: %.0f ms (%d attempts)", i, r.recovered_ms, r.tries or 0)
        end
    end)
end

local function need_redis()
    if not proc.have("redis-server") then
        error("redis-server is not installed (Debian: redis-server)", 0)
    end
    if not proc.have("redis-benchmark") then
        error("redis-benchmark is not installed (Debian: redis-tools)", 0)
    end
end

-- 3. redis-server
local function bench_redis()
    need_redis()
    with(rb.start_server, function(s) s:stop() end, function(srv)
        results.labels.redis = "redis-server " .. (srv.version or "?")
        for _, c in ipairs(LEVELS) do
            budget()
            local r, why = rb.measure(srv.port, "set", c, { seconds = SECONDS,
                value_bytes = 100, keyspace = 1000000 })
            if not r then error("redis-benchmark on redis-server: " .. tostring(why), 0) end
            results.writes[c].redis = { per_s = r.rps, p50 = r.p50, p99 = r.p99 }
            log_rate("redis-server SET, redis-benchmark", c, results.writes[c].redis)
        end
    end)
end

-- 4. memory
local function bench_memory()
    results.memory.keys = KEYS
    with(helios_cluster, stop_cluster, function(cl)
        local leader = cl:leader(15000)
        local addrs = {}
        for _, id in ipairs(cl:ids()) do addrs[#addrs + 1] = cl:client_address(id) end
        local empty = memory.rss_kb(cl:pid(leader))
        budget()
        local ms, resent = memory.fill(addrs, KEYS, 100, 180000)
        if resent > 0 then
            log("helios: %d MSET batches sent again (the leader changed during the fill)",
                resent)
        end
        memory.wait_keys(addrs, KEYS, 120000)
        results.memory.helios_leader_kb = memory.rss_kb(cl:pid(leader))
        results.memory.helios_followers_kb = {}
        for _, id in ipairs(cl:ids()) do
            if id ~= leader then
                local f = results.memory.helios_followers_kb
                f[#f + 1] = memory.rss_kb(cl:pid(id))
            end
        end
        log("helios: %s keys written in %.1f s; leader RSS %s (%s before)", tbl.int(KEYS),
            ms / 1000, tbl.mb(results.memory.helios_leader_kb), tbl.mb(empty))
    end)
    need_redis()
    budget()
    with(rb.start_server, function(s) s:stop() end, function(srv)
        results.labels.redis = results.labels.redis or ("redis-server " .. (srv.version or "?"))
        local empty = memory.rss_kb(srv.pid)
        local addr = "127.0.0.1:" .. srv.port
        local ms = memory.fill(addr, KEYS, 100, 180000)
        memory.wait_keys({ addr }, KEYS, 60000)
        results.memory.redis_kb = memory.rss_kb(srv.pid)
        log("redis-server: %s keys written in %.1f s; RSS %s (%s before)", tbl.int(KEYS),
            ms / 1000, tbl.mb(results.memory.redis_kb), tbl.mb(empty))
    end)
end

local load_before = loadavg()
local machine = format("%s cores, %s, Linux %s", sh_line("nproc"), cpu_model(),
    sh_line("uname -r"))
local date = os.date("!%Y-%m-%d %H:%M UTC")
log("bench-compare: %s; %s; %d s per level; load average %s", machine, date, SECONDS,
    load_before)

stage("helios", bench_helios)
stage("etcd", bench_etcd)
stage("redis-server", bench_redis)
stage("memory", bench_memory)

if proc.interrupted then
    io.stderr:write("bench-compare: interrupted by SIG", proc.interrupted,
        "; every process it started is stopped\n")
    os.exit(130)
end

print(format("Machine: %s. Run: %s, %d s per level after a %d ms warm-up, load average "
    .. "%s before and %s after (1, 5, 15 min), %.0f s in all.", machine, date, SECONDS,
    WARMUP_MS, load_before, loadavg(), (clock_ms() - started) / 1000))
print()
print(tbl.render(results))
for _, n in ipairs(notes) do print("\n- " .. n) end
os.exit(failed and 1 or 0)
