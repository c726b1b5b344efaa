--- spec/bench/cluster.lua: commit throughput and latency of a real 3-node cluster on
-- loopback, with fsync on, at 1, 16, 64 and 256 concurrent proposers, 100-byte commands.
--
--   luajit spec/bench/cluster.lua            (make bench runs it; from the repository root)
--   HELIOS_BENCH_SECONDS=10 luajit spec/bench/cluster.lua
--
-- Method: three `helios node` processes (helios.testing, no proxies in the path, the
-- helios.fsm.kv state machine, durable storage with group commit as in production), and
-- this process as the load generator. Each proposer is one connection to the leader's
-- control socket with one "apply" request in flight at a time; a new request is sent as
-- soon as the previous one is answered (closed loop). Latency is from sending the request
-- to receiving the answer, which the leader sends once the entry is committed (durable on
-- a majority) and applied to its state machine. Proposers are multiplexed with poll() in
-- this one process, so the load generator never waits on one connection while another has
-- its answer ready. Each level runs for HELIOS_BENCH_SECONDS (default 5) after a short
-- warm-up. After each level: the leader's and the followers' entries per fsync (group
-- commit: docs/architecture.md, "The commit path") and the CPU time the three node
-- processes used per commit (from /proc; on a shared machine a steadier figure than
-- commits/s).

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local testing = require("helios.testing")
local load = require("spec.bench.load")
local nodestats = require("spec.bench.nodestats")

local format, floor = string.format, math.floor

local SECONDS = tonumber(os.getenv("HELIOS_BENCH_SECONDS") or "") or 5
local WARMUP_MS = 500
-- 256: the proposers connect at once, a burst the control socket's listen backlog takes
-- (csrc/lua/listener.c).
local LEVELS = { 1, 16, 64, 256 }
local COMMAND_BYTES = 100

-- One level: n proposers, each sending "apply" of a COMMAND_BYTES command, one in flight.
local function run_level(socket_path, n)
    return load.run(socket_path, n, SECONDS, WARMUP_MS,
                    load.apply_requests("b", COMMAND_BYTES))
end

local cl = testing.cluster{ n = 3, proxies = false,
                            config = { election_timeout_ms = 500, heartbeat_timeout_ms = 100 } }
local ok, err = pcall(function()
    local leader = cl:leader(15000)
    print(format("cluster benchmark: 3 node processes on loopback, fsync on, %d-byte commands, "
        .. "%d s per level; leader %s", COMMAND_BYTES, SECONDS, leader))
    print(format("%10s %14s %12s %12s %8s %16s %18s", "proposers", "commits/s", "p50 ms",
        "p99 ms", "errors", "entries/fsync", "node CPU/commit"))
    local client = cl:client()
    for _, n in ipairs(LEVELS) do
        local before = nodestats.take(cl, client)
        local r = run_level(cl:socket(leader), n)
        local after = nodestats.take(cl, client)
        local cpu, fol_e, fol_f = 0, 0, 0
        for _, id in ipairs(cl:ids()) do
            cpu = cpu + after[id].cpu - before[id].cpu
            if id ~= leader then
                fol_e = fol_e + after[id].entries - before[id].entries
                fol_f = fol_f + after[id].fsyncs - before[id].fsyncs
            end
        end
        -- Everything the leader wrote in the level (warm-up and drain included) per fsync,
        -- and the three processes' CPU per entry written.
        local entries = after[leader].entries - before[leader].entries
        local fsyncs = after[leader].fsyncs - before[leader].fsyncs
        print(format("%10d %14s %12.2f %12.2f %8d %7.1f ldr %5.1f fol %15s", n,
            format("%d", floor(r.per_s + 0.5)), r.p50, r.p99, r.errors,
            entries / math.max(fsyncs, 1), fol_e / math.max(fol_f, 1),
            format("%.0f us", cpu * 1000 / math.max(entries, 1))))
    end
    local c = assert(cl:client():node(leader))
    local st = c:stats() or {}
    local keys = {}
    for k, v in each(st) do
        if type(v) == "number" and (k:match("fsync") or k:match("round") or k:match("batch")
            or k:match("entries")) then keys[#keys + 1] = k end
    end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = format("%s %d", k, st[k]) end
    print("leader stats over the whole run: " .. table.concat(parts, ", "))
end)
if not ok then
    io.stderr:write(tostring(err), "\n", cl:logs(20), "\n")
end
cl:stop()
os.exit(ok and 0 or 1)
