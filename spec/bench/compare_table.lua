--- spec/bench/compare_table.lua: the one table `make bench-compare` prints
-- (tools/bench_compare.lua), as Markdown, so that it can be pasted into the README as it
-- is. Pure: no processes, no clock; spec/bench_compare_spec.lua checks it.
--
--   local tbl = require("spec.bench.compare_table")
--   print(tbl.render(results))   -- results: see M.render
--
-- docs/benchmarks.md says how to read the table.

local format, floor, concat, tostring, type, ipairs = string.format, math.floor, table.concat,
    tostring, type, ipairs

local M = {}

M.LEVELS = { 1, 16, 64, 256 }

--- n rounded to an integer, with thousands separated by commas: 12345.6 -> "12,346".
function M.int(n)
    local s = tostring(floor(n + 0.5))
    local sign, digits = s:match("^(-?)(%d+)$")
    if not digits then return s end
    digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
    return sign .. digits
end

--- Milliseconds, to two decimals below 10, one below 100, none above.
function M.ms(x)
    if x < 10 then return format("%.2f", x) end
    if x < 100 then return format("%.1f", x) end
    return M.int(x)
end

--- A rate with its latencies: "12,345/s · 0.41 / 2.10 ms" ({ per_s, p50, p99 }), or "-".
function M.rate(r)
    if type(r) ~= "table" or not r.per_s then return "-" end
    if not r.p50 then return M.int(r.per_s) .. "/s" end
    return format("%s/s · %s / %s ms", M.int(r.per_s), M.ms(r.p50), M.ms(r.p99))
end

--- a / b as "2.35x", or "-" when either is missing or b is 0.
function M.ratio(a, b)
    if type(a) ~= "number" or type(b) ~= "number" or b == 0 then return "-" end
    return format("%.2fx", a / b)
end

--- The ratio of two rates, with their p99s': "2.35x · p99 0.41x", or "-".
function M.rate_ratio(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then return "-" end
    local r = M.ratio(a.per_s, b.per_s)
    if r == "-" or not a.p99 or not b.p99 then return r end
    return r .. " · p99 " .. M.ratio(a.p99, b.p99)
end

--- The median of a list of numbers (the mean of the middle two for an even count), or nil.
function M.median(list)
    if type(list) ~= "table" or #list == 0 then return nil end
    local s = {}
    for i, v in ipairs(list) do s[i] = v end
    table.sort(s)
    local n = #s
    if n % 2 == 1 then return s[(n + 1) / 2] end
    return (s[n / 2] + s[n / 2 + 1]) / 2
end

--- Of the runs of one system at one level ({ per_s, p50, p99 } each; nil entries skipped),
-- the run of median rate (the lower middle one for an even count), latencies included, so
-- that a cell's three figures come from one run; nil when there is none.
function M.median_run(runs)
    local s = {}
    for i = 1, table.maxn(runs or {}) do
        if type(runs[i]) == "table" and runs[i].per_s then s[#s + 1] = runs[i] end
    end
    if #s == 0 then return nil end
    table.sort(s, function(a, b) return a.per_s < b.per_s end)
    return s[floor((#s + 1) / 2)]
end

--- Failover times (ms): "0.31 s (0.22–0.45, 5 runs)", or "-".
function M.failover(list)
    local m = M.median(list)
    if not m then return "-" end
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(list) do
        if v < lo then lo = v end
        if v > hi then hi = v end
    end
    return format("%.2f s (%.2f–%.2f, %d runs)", m / 1000, lo / 1000, hi / 1000, #list)
end

--- KiB as "379 MB" (MB = 10^6 bytes), or "-".
function M.mb(kb)
    if type(kb) ~= "number" then return "-" end
    return format("%s MB", M.int(kb * 1024 / 1e6))
end

local function row(cells)
    return "| " .. concat(cells, " | ") .. " |"
end

--- The Markdown table (a string, lines joined by "\n") of results:
--   writes[clients] = { helios_rb, helios, etcd, redis }: each { per_s, p50, p99 }
--     (helios_rb: redis-benchmark through Helios's RESP port; helios: our generator)
--   reads = { helios_lin, helios_stale, etcd_lin, etcd_ser }: each { per_s, p50, p99 }
--   failover = { helios = { ms, ... }, etcd = { ms, ... } }
--   memory = { keys, helios_leader_kb, helios_followers_kb = { kb, ... }, redis_kb }
--   fsync = { clients, entries_per_fsync, fsyncs_per_s }
--   cpu = { clients, helios_rb, helios, etcd, redis }: µs of CPU of the server's processes
--     per write at that level (helios: the three nodes; etcd: the three members)
--   tmpfs_levels = { 1, 64 }, tmpfs[clients] = as writes[clients]: the same systems with
--     their data on a tmpfs (rows only for the levels listed)
--   labels = { etcd = "etcd 3.4.23", redis = "redis-server 7.0.15" } (optional)
-- A missing figure is "-"; Helios / etcd compares our generators on both sides, Helios /
-- redis redis-benchmark on both sides.
function M.render(results)
    local labels = results.labels or {}
    local out = {}
    out[#out + 1] = row({ "Measure", "Clients", "Helios, redis-benchmark",
        "Helios, helios.client", labels.etcd or "etcd",
        (labels.redis or "redis-server") .. ", appendfsync always",
        "Helios / etcd", "Helios / redis" })
    out[#out + 1] = "|---|--:|--:|--:|--:|--:|--:|--:|"
    local writes = results.writes or {}
    for _, c in ipairs(results.levels or M.LEVELS) do
        local w = writes[c] or {}
        out[#out + 1] = row({ "writes/s · p50 / p99", tostring(c), M.rate(w.helios_rb),
            M.rate(w.helios), M.rate(w.etcd), M.rate(w.redis),
            M.rate_ratio(w.helios, w.etcd), M.rate_ratio(w.helios_rb, w.redis) })
    end
    local rd = results.reads or {}
    out[#out + 1] = row({ "linearizable reads/s · p50 / p99", "64", "",
        M.rate(rd.helios_lin), M.rate(rd.etcd_lin), "", M.rate_ratio(rd.helios_lin, rd.etcd_lin),
        "" })
    out[#out + 1] = row({ "stale reads/s (Helios: READONLY; etcd: serializable)", "64", "",
        M.rate(rd.helios_stale), M.rate(rd.etcd_ser), "",
        M.rate_ratio(rd.helios_stale, rd.etcd_ser), "" })
    local fo = results.failover or {}
    out[#out + 1] = row({ "failover: SIGKILL of the leader to the next write, median", "1", "",
        M.failover(fo.helios), M.failover(fo.etcd), "",
        M.ratio(M.median(fo.helios), M.median(fo.etcd)), "" })
    local mem = results.memory or {}
    local followers = {}
    for i, kb in ipairs(mem.helios_followers_kb or {}) do followers[i] = M.mb(kb) end
    local helios_mem = M.mb(mem.helios_leader_kb)
    if helios_mem ~= "-" then
        helios_mem = helios_mem .. " leader"
        if #followers > 0 then
            helios_mem = helios_mem .. " (followers " .. concat(followers, ", ") .. ")"
        end
    end
    out[#out + 1] = row({ format("RSS holding %s keys (16 B keys, 100 B values)",
        mem.keys and M.int(mem.keys) or "-"), "", "", helios_mem, "", M.mb(mem.redis_kb), "",
        M.ratio(mem.helios_leader_kb, mem.redis_kb) })
    local fs = results.fsync or {}
    out[#out + 1] = row({ "leader: entries per fsync · fsyncs/s", tostring(fs.clients or 64), "",
        fs.entries_per_fsync and format("%.1f · %s/s", fs.entries_per_fsync,
            M.int(fs.fsyncs_per_s or 0)) or "-", "", "", "", "" })
    local cpu = results.cpu or {}
    local function us(v) return type(v) == "number" and format("%.0f µs", v) or "-" end
    out[#out + 1] = row({ "CPU per write: the server's processes, user + system",
        tostring(cpu.clients or 64), us(cpu.helios_rb), us(cpu.helios), us(cpu.etcd),
        us(cpu.redis), M.ratio(cpu.helios, cpu.etcd), M.ratio(cpu.helios_rb, cpu.redis) })
    local tmpfs = results.tmpfs or {}
    for _, c in ipairs(results.tmpfs_levels or {}) do
        local w = tmpfs[c] or {}
        out[#out + 1] = row({ "writes/s with the data on tmpfs (fsync next to free) · p50 / p99",
            tostring(c), M.rate(w.helios_rb), M.rate(w.helios), M.rate(w.etcd), M.rate(w.redis),
            M.rate_ratio(w.helios, w.etcd), M.rate_ratio(w.helios_rb, w.redis) })
    end
    return concat(out, "\n")
end

return M
