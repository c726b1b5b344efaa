-- spec/bench/fork_snapshot.lua: what a snapshot of a large Lua state costs the node's loop,
-- with core.snapshot_fork (a forked child writes the copy-on-write image) and with
-- core.snapshot_sync (in-process). The figures of docs/fork-snapshot.md.
--
--   luajit -e 'package.cpath = "build/?.so;" .. package.cpath' spec/bench/fork_snapshot.lua \
--       [n_keys (1000000)] [scratch_dir ($TMPDIR or /tmp)]
--
-- A table of n_keys short string keys -> short string values (like a key-value FSM) is
-- serialized as "key=value\n" lines through the writer. A 10 ms timer ticks on the
-- parent's loop throughout; the stall is the longest gap between two ticks around the
-- snapshot minus the 10 ms period (fork's page-table copy is the one pause of the fork
-- path; the sync path blocks for the whole serialization). Each fork case runs with the
-- parent idle and with the parent overwriting 1,000 values per tick (100,000 writes/s),
-- whose first write to each page after the fork is a copy-on-write fault in the parent.
-- Then three serializers (one new string per key; a table.concat per 512 pairs with the
-- child's collector off and on), a baseline of the parent's writes without a snapshot, and
-- the sync path. Figures, not assertions.
local core = require("helios.core")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local format = string.format

local n_keys = tonumber(arg[1] or "1000000")
local scratch = arg[2] or os.getenv("TMPDIR") or "/tmp"
local root = assert(io.popen("mktemp -d " .. scratch .. "/helios-fork-bench.XXXXXX")):read("*l")

local function rss_mb()
    local f = io.open("/proc/self/status", "r")
    if not f then return 0 end
    local s = f:read("*a")
    f:close()
    return (tonumber(s:match("VmRSS:%s+(%d+)")) or 0) / 1024
end

local t0 = core.clock_ms()
local kv = {}
for i = 1, n_keys do kv[format("k%07d", i)] = format("v%07d", i) end
collectgarbage()
collectgarbage()
print(format("fork_snapshot: %d keys built in %.0f ms; Lua heap %.0f MB, process RSS %.0f MB",
             n_keys, core.clock_ms() - t0, collectgarbage("count") / 1024, rss_mb()))

-- No garbage: the writer copies the strings that exist into its C buffer.
local function serialize(w)
    for k, v in each(kv) do w:write(k, "=", v, "\n") end
end

-- One new string per key: garbage the child's collector would otherwise chase.
local function serialize_garbage(w)
    for k, v in each(kv) do w:write(format("%s=%s\n", k, v)) end
end

-- A string per 512 pairs: little garbage, but allocation that can drive a collector cycle.
local parts = {}
local function serialize_batched(w)
    local n = 0
    for k, v in each(kv) do
        parts[n + 1], parts[n + 2], parts[n + 3], parts[n + 4] = k, "=", v, "\n"
        n = n + 4
        if n == 2048 then
            w:write(table.concat(parts, "", 1, n))
            n = 0
        end
    end
    w:write(table.concat(parts, "", 1, n))
end

-- Minor page faults of this process so far (/proc/self/stat field 10): each first write to
-- a page shared with a child is one, as is each new page.
local function minflt()
    local f = io.open("/proc/self/stat", "r")
    local s = f:read("*a")
    f:close()
    local rest = s:match("%) (.*)$")
    local fields = {}
    for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
    return tonumber(fields[8])
end

local run_no = 0
local function next_path()
    run_no = run_no + 1
    return format("%s/snap.%d", root, run_no)
end

-- Tick every 10 ms, start the snapshot from a tick (as a node's timer would), keep ticking
-- until done plus two ticks; returns the longest gap around the snapshot and the result.
local function measure(start, writes_per_tick)
    local ticks, result, started_at, done_at = {}, nil, nil, nil
    local n_writes, wi = writes_per_tick or 0, 0
    local ticker
    ticker = core.timer(10, 10, function()
        local now = core.clock_ms()
        ticks[#ticks + 1] = now
        if #ticks == 5 then
            started_at = core.clock_ms()
            start(function(...)
                done_at = core.clock_ms()
                result = { ... }
            end)
        end
        if started_at and not done_at then
            for _ = 1, n_writes do
                wi = wi % n_keys + 1
                kv[format("k%07d", wi)] = format("w%07d", wi)
            end
        end
        if done_at and now > done_at + 25 then ticker:stop() end
    end)
    assert(core.run())
    local max_gap = 0
    for i = 2, #ticks do
        if ticks[i] >= started_at and ticks[i - 1] <= done_at + 10 then
            max_gap = math.max(max_gap, ticks[i] - ticks[i - 1])
        end
    end
    return max_gap, done_at - started_at, result
end

local function fork_case(label, opts, writes_per_tick, fn)
    local path = next_path()
    local handle
    local gap, ms, r = measure(function(done)
        handle = assert(core.snapshot_fork(path, fn or serialize, function(...) done(...) end,
                                           opts))
    end, writes_per_tick)
    local ok, err, bytes, st = r[1], r[2], r[3], r[4]
    assert(ok, err)
    os.remove(path)
    print(format("  fork %-30s done in %5.0f ms | fork() %5.1f ms | longest tick gap %5.1f ms"
                 .. " (stall %5.1f ms) | child: %5.0f ms serializing, %6.1f MB/s, %4.1f M keys/s,"
                 .. " %6.0f MB copied-or-new (minflt), maxrss %4.0f MB | parent minflt %6.0f MB",
                 label, ms, handle:fork_ms(), gap, math.max(gap - 10, 0), st.serialize_ms,
                 bytes / 1048576 / (st.serialize_ms / 1000), n_keys / 1e6 / (st.serialize_ms / 1000),
                 st.child_minflt * 4096 / 1048576, st.child_maxrss_kb / 1024,
                 st.parent_minflt * 4096 / 1048576))
    return bytes
end

local ok, err = pcall(function()
    local bytes
    for _ = 1, 3 do bytes = fork_case("(parent idle)", nil, 0) end
    for _ = 1, 3 do fork_case("(parent 100k writes/s)", nil, 1000) end
    fork_case("(format per key, child GC off)", nil, 0, serialize_garbage)
    collectgarbage()
    -- The parent's collector mid-cycle at the fork, as it is at a random moment in a node:
    -- with the child's collector on, the child finishes the cycle (marking every object).
    for _, gc in ipairs({ false, true }) do
        collectgarbage()
        collectgarbage("step", 0) -- starts a cycle: marking in progress
        fork_case(format("(batched, mid-cycle, child GC %s)", gc and "on" or "off"),
                  { child_gc = gc }, 0, serialize_batched)
    end
    collectgarbage()

    -- The same writes for as long, without a snapshot: the part of the gap that is theirs.
    for _ = 1, 2 do
        local f0 = minflt()
        local gap = measure(function(done)
            core.timer(150, 0, function() done(true) end)
        end, 1000)
        print(format("  none %-30s                | longest tick gap %5.1f ms (stall %5.1f ms)"
                     .. " | parent minflt %6.0f MB", "(parent 100k writes/s)", gap,
                     math.max(gap - 10, 0), (minflt() - f0) * 4096 / 1048576))
    end
    collectgarbage()

    for _ = 1, 2 do
        local path = next_path()
        local gap, ms, r = measure(function(done)
            done(core.snapshot_sync(path, serialize))
        end, 0)
        assert(r[1], r[2])
        os.remove(path)
        print(format("  sync %-30s done in %5.0f ms | longest tick gap %5.1f ms (stall %5.1f ms)"
                     .. " | %6.1f MB/s", "(in-process)", ms, gap, math.max(gap - 10, 0),
                     r[3] / 1048576 / (ms / 1000)))
    end
    print(format("  snapshot size %.1f MB (%d bytes)", bytes / 1048576, bytes))
end)
os.execute("rm -rf '" .. root .. "'")
assert(ok, err)
