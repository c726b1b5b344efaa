-- spec/bench/storage.lua: the storage figures of `make bench`.
--
--   luajit spec/bench/storage.lua [scratch_dir]
--
-- 1. Durable appends and fsyncs per second with 100-byte entries, for one writer and for 64
--    concurrent proposers (group commit), next to what this disk does with a plain
--    write + fdatasync loop measured in the same run, as a ratio.
-- 2. Restart: the time to open a data dir holding a 1 GB log (HELIOS_BENCH_LOG_MB to
--    change the size) and to read an entry from its middle, which shows that opening does
--    not read the log.
-- Figures, not assertions: nothing here fails on a slow machine.
local tk = require("helios.testkit")

local format = string.format

local scratch = arg[1] or os.getenv("TMPDIR") or "/tmp"
local root = assert(io.popen("mktemp -d " .. scratch .. "/helios-bench.XXXXXX")):read("*l")
local function cleanup()
    os.execute("rm -rf '" .. root .. "'")
end

-- A monotonic wall clock through LuaJIT's FFI: os.clock is CPU time, os.time whole seconds.
local ffi = require("ffi")
ffi.cdef [[
    struct hr_bench_timespec { long tv_sec; long tv_nsec; };
    int clock_gettime(int clk, struct hr_bench_timespec *ts);
]]
local ts = ffi.new("struct hr_bench_timespec")
local CLOCK_MONOTONIC = 1
local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1e3 + tonumber(ts.tv_nsec) / 1e6
end

local function wall(fn)
    local t0 = now_ms()
    local a, b = fn()
    return now_ms() - t0, a, b
end

local ok, err = pcall(function()
    print("storage: durable appends, 100-byte entries, fsync on (this machine's disk)")
    for _, case in ipairs({ { 1, 3000 }, { 64, 40000 } }) do
        local writers, n = case[1], case[2]
        local r = assert(tk.storage_bench(format("%s/w%d", root, writers), writers, n, 100))
        print(format("  %2d proposer%s %9.0f appends/s %7.0f fsyncs/s  %5.1f appends/fsync"
                     .. "  | disk: %6.0f fdatasync/s  -> %.2fx the disk's fsync rate",
                     writers, writers == 1 and ": " or "s:", r.appends_per_s, r.fsyncs_per_s,
                     r.appends / math.max(r.fsyncs, 1), r.baseline_fsyncs_per_s,
                     r.appends_per_s / r.baseline_fsyncs_per_s))
    end

    local mb = tonumber(os.getenv("HELIOS_BENCH_LOG_MB") or "1024")
    local size, per = 4000, 256
    local total = math.floor(mb * 1024 * 1024 / size)
    local dir = root .. "/big"
    local payload = string.rep("x", size)
    local st = assert(tk.storage_open(dir))
    local write_ms = wall(function()
        local index = 1
        while index <= total do
            local batch = {}
            for i = 1, math.min(per, total - index + 1) do
                batch[i] = { index = index, term = 1, type = 1, data = payload, time_ms = 0 }
                index = index + 1
            end
            assert(st:append(batch))
        end
        assert(st:sync())
    end)
    st:close()
    local open_ms, st2 = wall(function() return assert(tk.storage_open(dir)) end)
    local mid = math.floor(total / 2)
    local read_ms, got = wall(function() return st2:entries(mid, mid) end)
    assert(got[1] and got[1].index == mid and #got[1].data == size, "read back the middle entry")
    print(format("storage: restart with a %d MB log (%d entries of %d bytes, written in %.1f s):"
                 .. " open %.1f ms, first read of a middle entry %.2f ms, last index %d",
                 mb, total, size, write_ms / 1000, open_ms, read_ms, st2:last_index()))
    st2:close()
end)
cleanup()
if not ok then
    io.stderr:write("storage bench failed: ", tostring(err), "\n")
    os.exit(1)
end
