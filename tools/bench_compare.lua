--- tools/bench_compare.lua: `make bench-compare`: Helios next to etcd and redis-server,
-- measured in one run on this machine, printed as one Markdown table
-- (docs/benchmarks.md says what each figure is and how to read it).
--
--   luajit tools/bench_compare.lua           (from the repository root, after make build)
--   HELIOS_BENCH_SECONDS=3 luajit tools/bench_compare.lua     -- seconds per level (5)
--   HELIOS_BENCH_ROUNDS=1 luajit tools/bench_compare.lua      -- rounds of writes (3)
--   HELIOS_COMPARE_BUDGET_S=600 HELIOS_COMPARE_KEYS=1000000 luajit tools/bench_compare.lua
--
-- The three systems are started once and measured in turn, level by level, so that the
-- figures of a row are taken seconds apart (the load of a shared machine moves):
--   Helios: 3 `helios node` processes (ATLAS, fsync on, the default 150 ms election
--     timeout), written to by redis-benchmark and by spec/bench/load.lua on helios.client;
--   etcd: 3 members (spec/bench/etcd.lua), driven by our Go generator
--     (spec/bench/etcd_load.go);
--   redis-server with appendfsync always, driven by redis-benchmark.
-- Writes at 1, 16, 64, 256 clients, in HELIOS_BENCH_ROUNDS rounds of all four levels (3 by
-- default): each cell is the run of median rate (the disk's fsync latency on a VM moves by
-- tens of percent from one minute to the next; docs/benchmarks.md, "Rounds"). The Helios
-- leader's fsync counters are summed over the 64-client runs of our generator.
-- Reads at 64; 5 failovers each, alternating
-- (spec/bench/failover.lua for Helios). Then they are stopped, and a new Helios cluster and
-- a new redis-server are filled with the same keys for their resident memory
-- (spec/bench/memory.lua). Last, the three systems start again with their data on a tmpfs
-- (HELIOS_BENCH_TMPFS, default /dev/shm) for one round of writes at 1 and 64 clients.
-- Every process is stopped at the end, also on an error, SIGINT or SIGTERM
-- (spec/bench/proc.lua turns those into errors at the next wait), and dies with this
-- process should it be killed outright. A system whose step fails (a tool missing, a
-- timeout) is measured no further: "-" in its cells and a note under the table, exit
-- status 1. Steps are skipped once the time budget (HELIOS_COMPARE_BUDGET_S, default
-- 600 s) is used up.

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
local shell = require("helios.util.shell")

local format, tostring, ipairs = string.format, tostring, ipairs
local clock_ms = core.clock_ms
local traceback = debug.traceback

local SECONDS = tonumber(os.getenv("HELIOS_BENCH_SECONDS") or "") or 5
local ROUNDS = tonumber(os.getenv("HELIOS_BENCH_ROUNDS") or "") or 3
local BUDGET_S = tonumber(os.getenv("HELIOS_COMPARE_BUDGET_S") or "") or 600
local KEYS = tonumber(os.getenv("HELIOS_COMPARE_KEYS") or "") or 1000000
local LEVELS = tbl.LEVELS
local WARMUP_MS = 500
local FAILOVERS = 5
local READ_CLIENTS = 64
-- The last stage runs each system again with its data on a RAM file system, where an fsync
-- costs next to nothing: what is left is the software's own cost per write
-- (docs/benchmarks.md, "Without the disk").
local TMPFS = os.getenv("HELIOS_BENCH_TMPFS") or "/dev/shm"
local TMPFS_LEVELS = { 1, 64 }
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
                  failover = { helios = {}, etcd = {} }, memory = { keys = KEYS }, fsync = {} }
results.tmpfs_levels, results.tmpfs = TMPFS_LEVELS, {}
for _, c in ipairs(LEVELS) do
    results.writes[c] = { runs = { helios_rb = {}, helios = {}, etcd = {}, redis = {} } }
end
for _, c in ipairs(TMPFS_LEVELS) do
    results.tmpfs[c] = { runs = { helios_rb = {}, helios = {}, etcd = {}, redis = {} } }
end
local fsync_sum = { fsyncs = 0, entries = 0, ms = 0 }
-- CPU per write at READ_CLIENTS, per round: µs of the server's processes per write answered.
local cpu_runs = { helios_rb = {}, helios = {}, etcd = {}, redis = {} }
local notes, failed = {}, false

-- Raise once the time budget is used up (checked between the steps of a stage).
local function budget()
    proc.check()
    if clock_ms() > deadline then
        error(format("the time budget of %d s was used up (HELIOS_COMPARE_BUDGET_S)", BUDGET_S),
            0)
    end
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

local function log_rate(what, c, r, tag)
    log("%-34s %4d clients: %s/s, p50 %.2f ms, p99 %.2f ms%s%s%s%s", what, c, tbl.int(r.per_s),
        r.p50, r.p99, (r.errors or 0) > 0 and format(", %d errors", r.errors) or "",
        r.cpu and format(" (generator: %.0f%% of a core)", r.cpu * 100) or "",
        r.server_us and format(" (server: %.0f µs of CPU a write)", r.server_us) or "",
        tag or "")
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

-- tmpdir: where the cluster's data goes (nil: $TMPDIR, else /tmp).
local function helios_cluster(tmpdir)
    return testing.cluster{ n = 3, proxies = false, fsm = "helios.atlas.fsm", client = true,
                            config = HELIOS_CONFIG, tmpdir = tmpdir }
end

local function storage_counters(st)
    st = st or {}
    local s = st.storage or {}
    return { entries = st.entries_written or s.entries, fsyncs = st.fsyncs or s.rounds,
             batches = st.batches or s.batches }
end

-- The systems compared, each started once and measured level by level, next to the others:
-- a row's figures are taken seconds apart, not minutes, on a machine whose load moves.
local sys = {}      -- name -> what its steps need; nil once it failed (its cells stay "-")
local stops = {}    -- what to stop at the end, in order

-- Run one step of system `name` (skipped once that system failed); its failure becomes a
-- note and ends that system's steps. An interrupt stops the whole run.
local function step(name, what, fn)
    if proc.interrupted or not sys[name] then return end
    local ok, err = xpcall(function()
        budget()
        fn(sys[name])
    end, traceback)
    if ok then return end
    if proc.interrupted then error(err, 0) end
    failed = true
    local msg = tostring(err)
    notes[#notes + 1] = format("%s: %s failed, so the rest of %s was not measured: %s", name,
        what, name, msg:match("^[^\n]*"))
    io.stderr:write(name, ": ", what, ": ", msg, "\n")
    sys[name] = nil
end

local function start_helios(h, tmpdir)
    h.cl = helios_cluster(tmpdir)
    stops[#stops + 1] = function() h.cl:stop() end
    h.leader = h.cl:leader(15000)
    h.addr = h.cl:client_address(h.leader)
    h.port = tonumber(h.addr:match(":(%d+)$"))
    h.rb = proc.have("redis-benchmark")
    if not h.rb then
        notes[#notes + 1] = "redis-benchmark is not installed (Debian: redis-tools)"
    end
    assert(client.connect(h.addr)):call("SET", "read-key", VALUE)
    log("helios: 3 nodes, leader %s, RESP port %d", h.leader, h.port)
end

local leader_changes = 0

-- Point the Helios steps at the current leader: a leader change is part of the result (a
-- note under the table counts them), not the end of Helios's measurements.
local function follow_leader(h)
    local leader = h.cl:leader(15000)
    if leader ~= h.leader then
        leader_changes = leader_changes + 1
        log("helios: the leader is now %s (was %s)", leader, h.leader)
        h.leader = leader
        h.addr = h.cl:client_address(leader)
        h.port = tonumber(h.addr:match(":(%d+)$"))
    end
end

local function start_etcd(e, tmpdir)
    if not proc.have("etcd") then error("etcd is not installed (Debian: etcd-server)", 0) end
    if not proc.have("etcdctl") then error("etcdctl is not installed (Debian: etcd-client)", 0) end
    local gen, why = etcd.generator()
    if not gen then error(why, 0) end
    e.gen = gen
    results.labels.etcd = "etcd " .. (proc.first_line({ "etcd", "--version" })
        :match("([%d%.]+)") or "?")
    e.ec = etcd.cluster{ tmpdir = tmpdir }
    stops[#stops + 1] = function() e.ec:stop() end
    e.ep = e.ec:endpoint(e.ec:leader())
    log("etcd: 3 members, leader at %s", e.ep)
end

local function need_redis()
    if not proc.have("redis-server") then
        error("redis-server is not installed (Debian: redis-server)", 0)
    end
    if not proc.have("redis-benchmark") then
        error("redis-benchmark is not installed (Debian: redis-tools)", 0)
    end
end

local function start_redis(r, tmpdir)
    need_redis()
    r.srv = rb.start_server{ tmpdir = tmpdir }
    stops[#stops + 1] = function() r.srv:stop() end
    results.labels.redis = "redis-server " .. (r.srv.version or "?")
    log("redis-server %s: appendfsync always, port %d", r.srv.version or "?", r.srv.port)
end

local function etcd_rate(r)
    return { per_s = r.per_s, p50 = r.p50_ms, p99 = r.p99_ms, errors = r.errors }
end

local function rb_rate(port, c)
    local r, why = rb.measure(port, "set", c, { seconds = SECONDS, value_bytes = 100,
                                                keyspace = 1000000 })
    if not r then error(tostring(why), 0) end
    return { per_s = r.rps, p50 = r.p50, p99 = r.p99, requests = r.requests }
end

-- The CPU seconds (user and system) processes pids have used so far, together.
local function cpu_of(pids)
    local sum = 0
    for _, pid in ipairs(pids) do sum = sum + (proc.cpu_seconds(pid) or 0) end
    return sum
end

-- Run fn() (which returns a rate) and, when `into` is a list, add to it the CPU the server's
-- processes pids used per write answered (µs): redis-benchmark's writes are counted
-- (requests, its probes included); our generators count from their warm-up on, at the
-- rate they measured after it.
local function with_cpu(pids, into, fn)
    if not into then return fn() end
    local before = cpu_of(pids)
    local r = fn()
    local writes = r.requests or r.per_s * (SECONDS + WARMUP_MS / 1000)
    if writes > 0 then
        r.server_us = (cpu_of(pids) - before) * 1e6 / writes
        into[#into + 1] = r.server_us
    end
    return r
end

local function helios_pids(h)
    local pids = {}
    for _, id in ipairs(h.cl:ids()) do pids[#pids + 1] = h.cl:pid(id) end
    return pids
end

-- One Helios run of the writes that fails (a leader change under load makes redis-benchmark
-- exit on MOVED or CLUSTERDOWN) costs its cell in this round, not the rest of Helios: a
-- note says so, and the next step follows the new leader.
local function helios_run(what, c, round, fn)
    local ok, err = pcall(fn)
    if ok then return end
    if proc.interrupted then error(err, 0) end
    local msg = tostring(err):match("^[^\n]*")
    notes[#notes + 1] = format("helios: %s at %d clients, round %d, failed: %s", what, c, round,
        msg)
    log("helios: %s at %d clients failed: %s", what, c, msg)
end

-- Writes at `c` clients, round `round`: each system in turn. on_tmpfs: the last stage's
-- (results.tmpfs, one round, no fsync counters).
local function writes(c, round, on_tmpfs)
    local w = (on_tmpfs and results.tmpfs or results.writes)[c].runs
    local tag = on_tmpfs and " (data on tmpfs)"
        or ROUNDS > 1 and format(" (round %d of %d)", round, ROUNDS) or ""
    local cpu = c == READ_CLIENTS and not on_tmpfs and cpu_runs or {}
    step("helios", format("redis-benchmark at %d clients", c), function(h)
        if not h.rb then return end
        follow_leader(h)
        helios_run("redis-benchmark", c, round, function()
            w.helios_rb[round] = with_cpu(helios_pids(h), cpu.helios_rb,
                function() return rb_rate(h.port, c) end)
            log_rate("helios SET, redis-benchmark", c, w.helios_rb[round], tag)
        end)
    end)
    step("helios", format("our generator at %d clients", c), function(h)
        follow_leader(h)
        local stats = h.cl:client():node(h.leader)
        local before, t0
        if c == READ_CLIENTS and not on_tmpfs then
            before, t0 = storage_counters(stats:stats()), clock_ms()
        end
        w.helios[round] = with_cpu(helios_pids(h), cpu.helios,
            function() return rate(helios_load(h.addr, c, set_request)) end)
        log_rate("helios SET, helios.client", c, w.helios[round], tag)
        if before then
            local after, t1 = storage_counters(stats:stats()), clock_ms()
            if before.fsyncs and after.fsyncs and after.fsyncs > before.fsyncs then
                fsync_sum.fsyncs = fsync_sum.fsyncs + after.fsyncs - before.fsyncs
                fsync_sum.entries = fsync_sum.entries + after.entries - before.entries
                fsync_sum.ms = fsync_sum.ms + t1 - t0
                log("helios leader at %d clients: %.1f entries per fsync, %s fsyncs/s", c,
                    (after.entries - before.entries) / (after.fsyncs - before.fsyncs),
                    tbl.int((after.fsyncs - before.fsyncs) / ((t1 - t0) / 1000)))
            end
        end
    end)
    step("etcd", format("put at %d clients", c), function(e)
        w.etcd[round] = with_cpu({ e.ec:pid(1), e.ec:pid(2), e.ec:pid(3) }, cpu.etcd,
            function() return etcd_rate(etcd.load(e.gen, e.ep, "put", c, SECONDS)) end)
        log_rate("etcd put", c, w.etcd[round], tag)
    end)
    step("redis", format("redis-benchmark at %d clients", c), function(r)
        w.redis[round] = with_cpu({ r.srv.pid }, cpu.redis,
            function() return rb_rate(r.srv.port, c) end)
        log_rate("redis-server SET, redis-benchmark", c, w.redis[round], tag)
    end)
end

-- Each cell of the writes: the run of median rate over the rounds (compare_table.lua).
local function settle_writes()
    for _, set in ipairs({ { results.writes, LEVELS }, { results.tmpfs, TMPFS_LEVELS } }) do
        for _, c in ipairs(set[2]) do
            local w = set[1][c]
            for _, name in ipairs({ "helios_rb", "helios", "etcd", "redis" }) do
                w[name] = tbl.median_run(w.runs[name])
            end
        end
    end
    results.cpu = { clients = READ_CLIENTS }
    for _, name in ipairs({ "helios_rb", "helios", "etcd", "redis" }) do
        results.cpu[name] = tbl.median(cpu_runs[name])
    end
    if fsync_sum.fsyncs > 0 then
        results.fsync = { clients = READ_CLIENTS,
            fsyncs_per_s = fsync_sum.fsyncs / (fsync_sum.ms / 1000),
            entries_per_fsync = fsync_sum.entries / fsync_sum.fsyncs }
    end
end

local function reads()
    local rd = results.reads
    step("helios", "linearizable reads", function(h)
        follow_leader(h)
        rd.helios_lin = rate(helios_load(h.addr, READ_CLIENTS, get_request))
        log_rate("helios GET, linearizable", READ_CLIENTS, rd.helios_lin)
    end)
    step("etcd", "linearizable reads", function(e)
        rd.etcd_lin = etcd_rate(etcd.load(e.gen, e.ep, "get-lin", READ_CLIENTS, SECONDS))
        log_rate("etcd get, linearizable", READ_CLIENTS, rd.etcd_lin)
    end)
    step("helios", "stale reads", function(h)
        follow_leader(h)
        rd.helios_stale = rate(helios_load(h.addr, READ_CLIENTS, get_request,
            function(c) return c:call("READONLY") end))
        log_rate("helios GET, READONLY (stale)", READ_CLIENTS, rd.helios_stale)
    end)
    step("etcd", "serializable reads", function(e)
        rd.etcd_ser = etcd_rate(etcd.load(e.gen, e.ep, "get-ser", READ_CLIENTS, SECONDS))
        log_rate("etcd get, serializable", READ_CLIENTS, rd.etcd_ser)
    end)
end

local function failovers()
    for i = 1, FAILOVERS do
        step("helios", "a failover", function(h)
            local ms, tries = failover.helios(h.cl, 10000)
            results.failover.helios[i] = ms
            log("helios failover %d: %.0f ms (%d attempts)", i, ms, tries)
        end)
        step("etcd", "a failover", function(e)
            local r = etcd.failover(e.gen, e.ec, 15000)
            results.failover.etcd[i] = r.recovered_ms
            log("etcd failover %d: %.0f ms (%d attempts)", i, r.recovered_ms, r.tries or 0)
        end)
    end
end

-- The memory of a node holding KEYS keys, next to redis-server's: a new cluster and a new
-- redis-server, so that nothing else the run wrote is in them.
local function memory_helios(h)
    h.cl = helios_cluster()
    stops[#stops + 1] = function() h.cl:stop() end
    local leader = h.cl:leader(15000)
    local addrs = {}
    for _, id in ipairs(h.cl:ids()) do addrs[#addrs + 1] = h.cl:client_address(id) end
    local empty = memory.rss_kb(h.cl:pid(leader))
    local ms, resent = memory.fill(addrs, KEYS, 100, 180000)
    if resent > 0 then
        log("helios: %d MSET batches sent again (the leader changed during the fill)", resent)
    end
    memory.wait_keys(addrs, KEYS, 120000)
    leader = h.cl:leader(15000)
    results.memory.helios_leader_kb = memory.rss_kb(h.cl:pid(leader))
    results.memory.helios_followers_kb = {}
    for _, id in ipairs(h.cl:ids()) do
        if id ~= leader then
            local f = results.memory.helios_followers_kb
            f[#f + 1] = memory.rss_kb(h.cl:pid(id))
        end
    end
    log("helios: %s keys written in %.1f s; leader RSS %s (%s before)", tbl.int(KEYS),
        ms / 1000, tbl.mb(results.memory.helios_leader_kb), tbl.mb(empty))
end

local function memory_redis(r)
    need_redis()
    r.srv = rb.start_server()
    stops[#stops + 1] = function() r.srv:stop() end
    results.labels.redis = results.labels.redis or ("redis-server " .. (r.srv.version or "?"))
    local empty = memory.rss_kb(r.srv.pid)
    local addr = "127.0.0.1:" .. r.srv.port
    local ms = memory.fill(addr, KEYS, 100, 180000)
    memory.wait_keys({ addr }, KEYS, 60000)
    results.memory.redis_kb = memory.rss_kb(r.srv.pid)
    log("redis-server: %s keys written in %.1f s; RSS %s (%s before)", tbl.int(KEYS),
        ms / 1000, tbl.mb(results.memory.redis_kb), tbl.mb(empty))
end

-- Whether dir is a RAM file system (tmpfs) we can write to: nil, or why not.
local function not_tmpfs(dir)
    local kind = sh_line("stat -f -c %T " .. shell.quote(dir))
    if kind ~= "tmpfs" then
        return format("%s is not a tmpfs (%s)", dir, kind == "" and "missing" or kind)
    end
    local probe = dir .. "/helios-bench-probe-" .. tostring(clock_ms())
    local f = io.open(probe, "w")
    if not f then return format("%s is not writable", dir) end
    f:close()
    os.remove(probe)
    return nil
end

-- The systems again, each with its data on a tmpfs: one round at TMPFS_LEVELS. Only those
-- still measured (`alive`) start again.
local function without_disk(alive)
    local why = not_tmpfs(TMPFS)
    if why then
        notes[#notes + 1] = "the rows with the data on tmpfs were not measured: " .. why
            .. " (HELIOS_BENCH_TMPFS names another)"
        return
    end
    log("== the data on tmpfs (%s)", TMPFS)
    for _, name in ipairs({ "helios", "etcd", "redis" }) do
        if alive[name] then sys[name] = {} end
    end
    step("helios", "starting the cluster on tmpfs", function(h) start_helios(h, TMPFS) end)
    step("etcd", "starting the cluster on tmpfs", function(e) start_etcd(e, TMPFS) end)
    step("redis", "starting redis-server on tmpfs", function(r) start_redis(r, TMPFS) end)
    for _, c in ipairs(TMPFS_LEVELS) do writes(c, 1, true) end
end

-- Stop everything started so far, newest first.
local function stop_all()
    for i = #stops, 1, -1 do
        local ok, err = pcall(stops[i])
        if not ok then io.stderr:write("bench-compare: stopping: ", tostring(err), "\n") end
    end
    stops = {}
end

local load_before = loadavg()
local machine = format("%s cores, %s, Linux %s", sh_line("nproc"), cpu_model(),
    sh_line("uname -r"))
local date = os.date("!%Y-%m-%d %H:%M UTC")
log("bench-compare: %s; %s; %d s per level; load average %s", machine, date, SECONDS,
    load_before)

local ok, err = xpcall(function()
    sys.helios, sys.etcd, sys.redis = {}, {}, {}
    step("helios", "starting the cluster", start_helios)
    step("etcd", "starting the cluster", start_etcd)
    step("redis", "starting redis-server", start_redis)
    for round = 1, ROUNDS do
        for _, c in ipairs(LEVELS) do writes(c, round) end
    end
    reads()
    failovers()
    stop_all()
    local alive = { helios = sys.helios ~= nil, etcd = sys.etcd ~= nil, redis = sys.redis ~= nil }
    sys.helios, sys.redis = {}, {}
    log("== memory")
    step("helios", "the memory fill", memory_helios)
    step("redis", "the memory fill", memory_redis)
    stop_all()
    without_disk(alive)
end, traceback)
stop_all()
settle_writes() -- (also after a failure: the rounds that ran still make their cells)
if leader_changes > 0 then
    notes[#notes + 1] = format("helios: the leader changed %d time(s) under load, before the "
        .. "failover stage", leader_changes)
end
if proc.interrupted then
    io.stderr:write("bench-compare: interrupted by SIG", proc.interrupted,
        "; every process it started is stopped\n")
    os.exit(130)
end
if not ok then
    io.stderr:write("bench-compare: ", tostring(err), "\n")
    failed = true
    notes[#notes + 1] = "the run stopped early: " .. tostring(err):match("^[^\n]*")
end

print(format("Machine: %s. Run: %s, %d s per level after a %d ms warm-up%s, load average "
    .. "%s before and %s after (1, 5, 15 min), %.0f s in all.", machine, date, SECONDS,
    WARMUP_MS, ROUNDS > 1 and format(" (writes: the run of median rate of %d rounds)", ROUNDS)
    or "", load_before, loadavg(), (clock_ms() - started) / 1000))
print()
print(tbl.render(results))
for _, n in ipairs(notes) do print("\n- " .. n) end
os.exit(failed and 1 or 0)
