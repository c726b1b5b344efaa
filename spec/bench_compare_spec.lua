-- bench_compare_spec.lua: the parts of `make bench-compare` (tools/bench_compare.lua) that
-- need no etcd, no redis-server and no cluster, so that they cannot rot between two runs of
-- the benchmark: reading redis-benchmark's CSV and our etcd generator's line, the table,
-- and the closed-loop generator on helios.client's terms (with stand-in connections).
-- The Go generator is compiled when Go and Debian's etcd client sources are installed.
-- No figure is asserted: speed is for the benchmark, not for a test.

local rb = require("spec.bench.redis_bench")
local etcd = require("spec.bench.etcd")
local tbl = require("spec.bench.compare_table")
local load = require("spec.bench.load")
local proc = require("spec.bench.proc")
local loop = require("helios.loop")

describe("bench-compare: redis-benchmark's output", function()
    local CSV = table.concat({
        "WARNING: Could not fetch server CONFIG",
        '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
            .. '"p99_latency_ms","max_latency_ms"',
        '"SET","40000.00","0.064","0.024","0.055","0.119","0.199","1.831"',
        '"GET","51234.50","0.050","0.020","0.047","0.090","0.150","0.900"',
    }, "\n")

    it("gives the rate and the latencies of the test asked for", function()
        local r = assert(rb.parse_csv(CSV, "set"))
        assert.are.same({ rps = 40000, avg = 0.064, min = 0.024, p50 = 0.055, p95 = 0.119,
                          p99 = 0.199, max = 1.831 }, r)
        assert.are.equal(51234.5, rb.parse_csv(CSV, "GET").rps)
    end)

    it("says when a run was too short to measure, or the test is not there", function()
        assert.are.same({ nil, "inf" },
            { rb.parse_csv('"SET","inf","0.1","0.1","0.1","0.1","0.1","0.1"', "set") })
        assert.are.same({ nil, "missing" }, { rb.parse_csv(CSV, "incr") })
        assert.are.same({ nil, "missing" }, { rb.parse_csv(nil, "set") })
    end)

    it("asks for 100-byte values and random keys when told", function()
        local argv = table.concat(rb.argv(7001, "set", 64, 1000,
            { value_bytes = 100, keyspace = 1000000 }), " ")
        assert.are.equal("redis-benchmark -h 127.0.0.1 -p 7001 -t set -c 64 -P 1 -n 1000 --csv "
            .. "-d 100 -r 1000000", argv)
    end)
end)

describe("bench-compare: the etcd generator's line", function()
    it("is read into numbers and strings", function()
        local r = assert(etcd.parse("noise\netcd_load op=put clients=64 conns=4 ok=1234 "
            .. "errors=2 seconds=3.00 per_s=411.3 p50_ms=1.250 p99_ms=9.875 "
            .. 'first_error="rpc error: code = Unavailable desc = x=y"\n'))
        assert.are.same({ op = "put", clients = 64, conns = 4, ok = 1234, errors = 2,
                          seconds = 3, per_s = 411.3, p50_ms = 1.25, p99_ms = 9.875,
                          first_error = "rpc error: code = Unavailable desc = x=y" }, r)
    end)

    it("reads a failover", function()
        local r = assert(etcd.parse("etcd_load op=failover recovered_ms=1062.5 tries=17\n"))
        assert.are.equal(1062.5, r.recovered_ms)
        assert.are.equal(17, r.tries)
    end)

    it("is missing from a failed run's output", function()
        local r, why = etcd.parse("etcd_load: connect 127.0.0.1:1: context deadline exceeded")
        assert.is_nil(r)
        assert.matches("no result line", why)
    end)

    it("compiles, when Go and the etcd client sources are installed", function()
        local f = io.open(etcd.GOPATH .. "/src/go.etcd.io/etcd/clientv3/client.go")
        if f then f:close() end
        if not f or not proc.have("go") then
            pending("go (golang-go) or golang-etcd-server-dev is not installed")
            return
        end
        assert(etcd.generator())
    end)
end)

describe("bench-compare: the table", function()
    it("formats numbers for people", function()
        assert.are.equal("0", tbl.int(0.4))
        assert.are.equal("999", tbl.int(999))
        assert.are.equal("1,000", tbl.int(999.5))
        assert.are.equal("1,234,568", tbl.int(1234567.8))
        assert.are.equal("0.41", tbl.ms(0.4129))
        assert.are.equal("12.3", tbl.ms(12.34))
        assert.are.equal("1,235", tbl.ms(1234.5))
        assert.are.equal("12,346/s · 0.41 / 2.10 ms",
            tbl.rate({ per_s = 12345.6, p50 = 0.41, p99 = 2.1 }))
        assert.are.equal("-", tbl.rate(nil))
        assert.are.equal("2.50x", tbl.ratio(5, 2))
        assert.are.equal("-", tbl.ratio(5, 0))
        assert.are.equal("-", tbl.ratio(nil, 2))
        assert.are.equal("3.00x · p99 0.50x",
            tbl.rate_ratio({ per_s = 300, p99 = 1 }, { per_s = 100, p99 = 2 }))
        assert.are.equal("379 MB", tbl.mb(370117))
    end)

    it("takes the median of the failovers", function()
        assert.are.equal(3, tbl.median({ 5, 1, 3 }))
        assert.are.equal(2.5, tbl.median({ 4, 1, 3, 2 }))
        assert.is_nil(tbl.median({}))
        assert.are.equal("0.30 s (0.10–0.90, 5 runs)",
            tbl.failover({ 900, 100, 300, 200, 400 }))
    end)

    it("takes the run of median rate of a level's rounds, with its own latencies", function()
        local a = { per_s = 900, p50 = 1, p99 = 9 }
        local b = { per_s = 1000, p50 = 2, p99 = 8 }
        local c = { per_s = 1300, p50 = 3, p99 = 7 }
        assert.are.equal(b, tbl.median_run({ c, a, b }))
        assert.are.equal(a, tbl.median_run({ b, a }))  -- the lower middle of an even count
        assert.are.equal(c, tbl.median_run({ nil, c }))  -- a round that failed is skipped
        assert.is_nil(tbl.median_run({}))
        assert.is_nil(tbl.median_run(nil))
    end)

    it("is one Markdown table, with a dash for what was not measured", function()
        local text = tbl.render({
            writes = {
                [1] = { helios_rb = { per_s = 3000, p50 = 0.3, p99 = 1 },
                        helios = { per_s = 2000, p50 = 0.4, p99 = 1.2 },
                        etcd = { per_s = 500, p50 = 2, p99 = 6 },
                        redis = { per_s = 10000, p50 = 0.1, p99 = 0.5 } },
            },
            reads = { helios_lin = { per_s = 50000, p50 = 1, p99 = 4 },
                      etcd_lin = { per_s = 10000, p50 = 5, p99 = 20 } },
            failover = { helios = { 300, 200, 250 }, etcd = { 1000, 1100, 1200 } },
            memory = { keys = 1000000, helios_leader_kb = 400000,
                       helios_followers_kb = { 350000, 360000 }, redis_kb = 150000 },
            fsync = { clients = 64, entries_per_fsync = 31.25, fsyncs_per_s = 900 },
            cpu = { clients = 64, helios_rb = 70.4, helios = 66, etcd = 220, redis = 35 },
            tmpfs_levels = { 1, 64 },
            tmpfs = { [1] = { helios = { per_s = 4000, p50 = 0.2, p99 = 0.6 },
                              etcd = { per_s = 1000, p50 = 0.9, p99 = 2.4 } } },
            labels = { etcd = "etcd 3.4.23", redis = "redis-server 7.0.15" },
        })
        local lines = {}
        for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
        assert.are.equal(2 + 4 + 6 + 2, #lines)
        for _, l in ipairs(lines) do
            assert.matches("^|.*|$", l)
            local _, bars = l:gsub("|", "")
            assert.are.equal(9, bars, l)
        end
        assert.matches("etcd 3.4.23", lines[1], 1, true)
        assert.matches("redis-server 7.0.15, appendfsync always", lines[1], 1, true)
        assert.are.equal("| writes/s · p50 / p99 | 1 | 3,000/s · 0.30 / 1.00 ms | "
            .. "2,000/s · 0.40 / 1.20 ms | 500/s · 2.00 / 6.00 ms | 10,000/s · 0.10 / 0.50 ms | "
            .. "4.00x · p99 0.20x | 0.30x · p99 2.00x |", lines[3])
        assert.are.equal("| writes/s · p50 / p99 | 16 | - | - | - | - | - | - |", lines[4])
        assert.matches("| 5.00x · p99 0.20x |", lines[7], 1, true)
        assert.matches("| - | - |", lines[8], 1, true) -- no stale reads measured
        assert.matches("0.25 s (0.20–0.30, 3 runs) | 1.10 s (1.00–1.20, 3 runs) |  | 0.23x |",
            lines[9], 1, true)
        assert.matches("| RSS holding 1,000,000 keys", lines[10], 1, true)
        assert.matches("410 MB leader (followers 358 MB, 369 MB) |  | 154 MB |  | 2.67x |",
            lines[10], 1, true)
        assert.matches("| 31.3 · 900/s |", lines[11], 1, true)
        assert.are.equal("| CPU per write: the server's processes, user + system | 64 | 70 µs | "
            .. "66 µs | 220 µs | 35 µs | 0.30x | 2.01x |", lines[12])
        assert.are.equal("| writes/s with the data on tmpfs (fsync next to free) · p50 / p99 "
            .. "| 1 | - | 4,000/s · 0.20 / 0.60 ms | 1,000/s · 0.90 / 2.40 ms | - | "
            .. "4.00x · p99 0.25x | - |", lines[13])
        assert.matches("| 64 | - | - | - | - | - | - |", lines[14], 1, true)
    end)
end)

describe("bench-compare: the systems' directories", function()
    it("are made under the base asked for (the tmpfs stage), or where os.tmpname points",
    function()
        local base = proc.tempdir()
        local ok, err = pcall(function()
            local dir = proc.tempdir(base)
            assert.are.equal(base .. "/", dir:sub(1, #base + 1))
            assert.are.equal("drwx------", proc.first_line({ "stat", "-c", "%A", dir }))
            assert.are_not.equal(dir, proc.tempdir(base))
        end)
        os.execute("rm -rf " .. base)
        assert(ok, err)
    end)
end)

describe("bench-compare: the CPU of a process", function()
    it("is its user and system time so far, and nil once it is gone", function()
        local pid = require("helios.testkit").getpid()
        local before = assert(proc.cpu_seconds(pid))
        local t0, x = os.clock(), 0
        while os.clock() - t0 < 0.05 do x = x + 1 end
        assert.is_true(proc.cpu_seconds(pid) >= before + 0.03)
        local child = proc.spawn({ "true" })
        proc.wait(child, 5000)
        assert.is_nil(proc.cpu_seconds(child))
    end)
end)

describe("bench-compare: the closed-loop generator on client connections", function()
    -- A stand-in connection: request yields on the loop (as helios.client's calls do) and
    -- answers; client 2's connection is broken.
    local function fake(i)
        return { i = i, closed = false, close = function(self) self.closed = true end }
    end

    it("runs every client until the end, counts answers and errors", function()
        local conns, calls = {}, {}
        local r = load.run_clients(3, 0.05, 0, function(i)
            conns[i] = fake(i)
            return conns[i]
        end, function(conn, i)
            calls[i] = (calls[i] or 0) + 1
            loop.wait(1)
            if i == 2 then return nil, "closed", "the server went away" end
            return true
        end)
        assert.is_true(r.ok > 0)
        assert.are.equal(1, calls[2]) -- a broken connection ends its client
        assert.are.equal(1, r.errors)
        assert.are.equal("closed the server went away", r.first_error)
        assert.is_true(r.p99 >= r.p50)
        for i = 1, 3 do assert.is_true(conns[i].closed) end
    end)

    it("closes what it opened when a client cannot connect", function()
        local first = fake(1)
        assert.has_error(function()
            load.run_clients(2, 0.05, 0, function(i)
                if i == 1 then return first end
                return nil, "refused", "nobody listens"
            end, function() return true end)
        end, "client 2: connect: refused nobody listens")
        assert.is_true(first.closed)
    end)
end)
