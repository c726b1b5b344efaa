--- spec/bench/profile.lua: where a leader's time goes at 64 clients (`make profile`).
--
--   luajit spec/bench/profile.lua                  (from the repository root)
--   HELIOS_PROFILE_CLIENTS=16 HELIOS_PROFILE_SECONDS=10 luajit spec/bench/profile.lua
--   HELIOS_PROFILE_NODE=follower luajit spec/bench/profile.lua   (perf and strace a follower)
--
-- Method: three `helios node` processes on loopback (fsync on, default timings, no
-- proxies), loaded by spec/bench/load.lua's closed-loop generator on the leader's control
-- socket (one 100-byte apply in flight per client), as spec/bench/cluster.lua. After a
-- warm-up long enough for LuaJIT to compile its traces, two measured phases of the same
-- length:
--   1. `perf record -g` of the leader: the CPU by library (kernel, LuaJIT, libc, the
--      module's C code, libuv) and the hottest symbols;
--   2. `strace -c -f` of the leader: system calls per commit, by call. ptrace slows the
--      process a lot, so this phase's commits/s mean nothing; the calls per commit do.
-- Each phase also gives commits/s, fsyncs/s and entries per fsync on the leader and the
-- followers, and the nodes' CPU per commit. perf and strace come from Debian's linux-perf
-- and strace; a phase whose tool is missing says so and is skipped. Files are kept in
-- build/profile/ (perf.data: `perf report -i build/profile/perf.data`).

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local testing = require("helios.testing")
local load = require("spec.bench.load")
local nodestats = require("spec.bench.nodestats")
local proc = require("spec.bench.proc")

local format = string.format

local CLIENTS = tonumber(os.getenv("HELIOS_PROFILE_CLIENTS") or "") or 64
local SECONDS = tonumber(os.getenv("HELIOS_PROFILE_SECONDS") or "") or 5
local TARGET = os.getenv("HELIOS_PROFILE_NODE") or "leader"
assert(TARGET == "leader" or TARGET == "follower",
       "HELIOS_PROFILE_NODE: leader or follower, got " .. TARGET)
local WARMUP_S = 8 -- LuaJIT stops writing new traces after some seconds of load
local DIR = "build/profile"
local COMMAND_BYTES = 100

local function run_load(sock, seconds)
    return load.run(sock, CLIENTS, seconds, 0, load.apply_requests("p", COMMAND_BYTES))
end

-- One measured phase: the load for SECONDS with `tool` (argv builder, or nil) attached to
-- the leader's pid; returns the load's result and the nodes' counters over the phase.
local function phase(cl, target, sock, tool)
    local client = cl:client()
    local before = nodestats.take(cl, client)
    local gen_before = nodestats.cpu_ms("self")
    local pid = tool and proc.spawn(tool(cl:pid(target)), { log = DIR .. "/tool.log" })
    if pid then proc.sleep(300) end -- attached before the load starts
    local r = run_load(sock, SECONDS)
    if pid then
        -- perf and strace write their summaries when interrupted.
        proc.stop(pid, "INT", 20000)
    end
    local d = nodestats.diff(before, nodestats.take(cl, client))
    r.generator_cpu = nodestats.cpu_ms("self") - gen_before
    return r, d
end

local function counters_line(r, d, leader)
    local fol_e, fol_f, cpu = 0, 0, 0
    for id, x in each(d) do
        cpu = cpu + x.cpu
        if id ~= leader then fol_e, fol_f = fol_e + x.entries, fol_f + x.fsyncs end
    end
    local l = d[leader]
    local per = 1000 / math.max(r.ok, 1)
    return format("%d commits/s, p50 %.2f ms, p99 %.2f ms; leader %d fsyncs/s, %.1f entries "
        .. "per fsync (followers %.1f); nodes' CPU %.0f us per commit (leader %.0f us), "
        .. "load generator %.0f us", math.floor(r.per_s + 0.5), r.p50, r.p99,
        l.fsyncs / SECONDS, l.entries / math.max(l.fsyncs, 1), fol_e / math.max(fol_f, 1),
        cpu * per, l.cpu * per, r.generator_cpu * per)
end

-- perf report's table (--sort KEY): "share% name" lines, the top n.
local function perf_top(key, n)
    local out = proc.run({ "perf", "report", "-i", DIR .. "/perf.data", "--stdio",
        "--no-children", "--sort", key, "-g", "none", "--percent-limit", "0.5" },
        { timeout_ms = 120000 })
    local lines = {}
    for line in out:gmatch("[^\n]+") do
        local pct, name = line:match("^%s*([%d.]+)%%%s+(.-)%s*$")
        if pct and #lines < n then lines[#lines + 1] = format("%6.1f%%  %s", tonumber(pct), name) end
    end
    return lines
end

-- strace -c's table: calls per commit, by call, the top n.
local function strace_top(commits, n)
    local f = io.open(DIR .. "/strace.txt")
    local s = f and f:read("*a") or ""
    if f then f:close() end
    local rows, total = {}, 0
    for line in s:gmatch("[^\n]+") do
        -- % time, seconds, usecs/call, calls, [errors], syscall
        local calls, name = line:match("^%s*[%d.]+%s+[%d.]+%s+%d+%s+(%d+)%s+%d*%s*([%w_]+)%s*$")
        if calls and name ~= "total" then
            rows[#rows + 1] = { name = name, calls = tonumber(calls) }
            total = total + tonumber(calls)
        end
    end
    table.sort(rows, function(a, b) return a.calls > b.calls end)
    local lines = {}
    for i = 1, math.min(n, #rows) do
        lines[i] = format("%8.2f  %s", rows[i].calls / math.max(commits, 1), rows[i].name)
    end
    return total / math.max(commits, 1), lines
end

proc.catch_signals()
os.execute("mkdir -p " .. DIR)
local cl = testing.cluster{ n = 3, proxies = false, config = {} }
local ok, err = pcall(function()
    local leader = cl:leader(15000)
    local sock = cl:socket(leader)
    local target = leader
    if TARGET == "follower" then
        for _, id in ipairs(cl:ids()) do
            if id ~= leader then target = id break end
        end
    end
    print(format("profile: 3 node processes on loopback, fsync on, default timings, %d clients "
        .. "on the leader's control socket (%s), %d-byte applies, %d s per phase after %d s "
        .. "of warm-up", CLIENTS, leader, COMMAND_BYTES, SECONDS, WARMUP_S))
    run_load(sock, WARMUP_S)

    local r, d = phase(cl, target, sock, proc.have("perf") and function(pid)
        return { "perf", "record", "-F", "997", "-g", "-p", tostring(pid), "-o",
                 DIR .. "/perf.data" }
    end)
    print(format("\nphase 1 (perf record -g of the %s, %s): %s", TARGET, target,
                 counters_line(r, d, leader)))
    if proc.have("perf") then
        print(TARGET .. " CPU by library (self time):")
        for _, l in ipairs(perf_top("dso", 8)) do print("  " .. l) end
        print("hottest symbols:")
        for _, l in ipairs(perf_top("sym", 15)) do print("  " .. l) end
    else
        print("perf not found (apt-get install linux-perf): no profile")
    end

    if proc.have("strace") then
        r, d = phase(cl, target, sock, function(pid)
            return { "strace", "-c", "-f", "-p", tostring(pid), "-o", DIR .. "/strace.txt" }
        end)
        print(format("\nphase 2 (strace -c -f of the %s; ptrace slows it): %s", TARGET,
                     counters_line(r, d, leader)))
        local per, lines = strace_top(r.ok, 10)
        print(format("%s system calls per commit: %.2f, by call:", TARGET, per))
        for _, l in ipairs(lines) do print("  " .. l) end
    else
        print("strace not found (apt-get install strace): no system call counts")
    end
end)
cl:stop()
if not ok then
    io.stderr:write("profile: ", tostring(err), "\n")
    os.exit(1)
end
