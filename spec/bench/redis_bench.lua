--- spec/bench/redis_bench.lua: redis-benchmark runs and a durable redis-server, for the
-- benchmarks that put Helios's RESP port next to Redis (spec/bench/redis.lua,
-- tools/bench_compare.lua); require("spec.bench.redis_bench") from the repository root.
--
--   local rb = require("spec.bench.redis_bench")
--   local srv = rb.start_server()             -- appendfsync always, temporary directory
--   local r = rb.measure(srv.port, "set", 64, { seconds = 3, value_bytes = 100,
--                        keyspace = 1000000 })  -- { rps, avg, p50, p95, p99, max } (ms),
--                                               -- requests (the probes' too)
--   srv:stop()                                -- the process and its directory
--   rb.parse_csv(output, "set")               -- the parsing alone (pure)
--
-- Needs redis-benchmark (Debian: redis-tools) and, for start_server, redis-server.

local core = require("helios.core")
local proc = require("spec.bench.proc")
local shell = require("helios.util.shell")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local format, tostring, tonumber = string.format, tostring, tonumber
local ceil, max, min = math.ceil, math.max, math.min
local clock_ms = core.clock_ms

local M = {}

--- One redis-benchmark run is cut off after this (ms).
M.RUN_LIMIT_MS = 120000

-- The columns of `redis-benchmark --csv` (redis 6.2 and later), after the test's name.
local COLUMNS = { "rps", "avg", "min", "p50", "p95", "p99", "max" }

--- The figures of test ("set", "get", ...) in the output of `redis-benchmark --csv`:
-- { rps = requests per second, avg, min, p50, p95, p99, max = latencies in ms }; or nil,
-- "inf" (the run was too short for redis-benchmark's clock), or nil, "missing".
function M.parse_csv(out, test)
    local name = '"' .. test:upper() .. '"'
    for line in (out or ""):gmatch("[^\r\n]+") do
        if line:sub(1, #name + 1) == name .. "," then
            local r, i = {}, 0
            for field in line:sub(#name + 2):gmatch('"([^"]*)"') do
                i = i + 1
                if COLUMNS[i] then r[COLUMNS[i]] = field end
            end
            if r.rps == "inf" then return nil, "inf" end
            for k, v in each(r) do r[k] = tonumber(v) end
            if r.rps then return r end
        end
    end
    return nil, "missing"
end

--- The argv of one run: opts.pipeline (-P, default 1), opts.value_bytes (-d),
-- opts.keyspace (-r: keys "key:" and 12 digits, random in [0, keyspace)).
function M.argv(port, test, clients, n, opts)
    opts = opts or {}
    local argv = { "redis-benchmark", "-h", "127.0.0.1", "-p", tostring(port), "-t", test,
                   "-c", tostring(clients), "-P", tostring(opts.pipeline or 1),
                   "-n", tostring(n), "--csv" }
    if opts.value_bytes then argv[#argv + 1] = "-d"; argv[#argv + 1] = tostring(opts.value_bytes) end
    if opts.keyspace then argv[#argv + 1] = "-r"; argv[#argv + 1] = tostring(opts.keyspace) end
    return argv
end

--- One redis-benchmark run of n requests: parse_csv's table, or nil, "inf", output, or
-- nil, a reason with the output.
function M.run(port, test, clients, n, opts)
    local argv = M.argv(port, test, clients, n, opts)
    local out, how, what = proc.run(argv, { timeout_ms = M.RUN_LIMIT_MS })
    local r, why = M.parse_csv(out, test)
    if r and how == "exited" and what == 0 then return r end
    if why == "inf" and how == "exited" and what == 0 then return nil, "inf", out end
    return nil, format("%s: %s %s\n%s", table.concat(argv, " "), how, tostring(what), out)
end

--- A short probe sized for the requests in flight, then a run of about opts.seconds
-- (default 3) at the probe's rate: parse_csv's table of the run, with requests (those of
-- the probes too: what the server answered in all), or nil, a reason.
function M.measure(port, test, clients, opts)
    opts = opts or {}
    local seconds = opts.seconds or 3
    local probe_n = max(200, clients * (opts.pipeline or 1) * 4)
    local sent = probe_n -- requests of every run, for r.requests
    local r, why, out = M.run(port, test, clients, probe_n, opts)
    while not r and why == "inf" and probe_n < 1000000 do -- a fast server: a longer probe
        probe_n = probe_n * 10
        sent = sent + probe_n
        r, why, out = M.run(port, test, clients, probe_n, opts)
    end
    if not r then return nil, why == "inf" and ("too fast to measure:\n" .. out) or why end
    local n = min(5000000, max(probe_n, ceil(r.rps * seconds)))
    r, why, out = M.run(port, test, clients, n, opts)
    if not r then return nil, why == "inf" and ("too fast to measure:\n" .. out) or why end
    r.requests = sent + n -- the probes' and the run's: what the server answered in all
    return r
end

local function read_file(path)
    local f = io.open(path)
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

--- A redis-server as durable as Redis gets: `--appendonly yes --appendfsync always
-- --save ''` (every write in the append-only file and fsynced before the reply), in a new
-- temporary directory, on a free loopback port; waits until it answers (raises after
-- 10 s). Returns { pid, port, dir, version, stop = function(self) }.
function M.start_server(opts)
    local dir = proc.tempdir(opts and opts.tmpdir)
    local port = assert(core.free_port())
    local srv = { port = port, dir = dir }
    function srv.stop(self)
        if self.pid then proc.stop(self.pid, "TERM", 5000) end
        self.pid = nil
        if self.dir then os.execute("rm -rf " .. shell.quote(self.dir)) end
        self.dir = nil
    end
    local ok, err = pcall(function()
        srv.pid = proc.spawn({ "redis-server", "--port", tostring(port), "--bind", "127.0.0.1",
            "--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--daemonize", "no" }, { log = dir .. "/redis.log" })
        local deadline = clock_ms() + 10000
        while true do
            local out = proc.run({ "redis-cli", "-p", tostring(port), "ping" },
                                 { timeout_ms = 5000 })
            if out:match("PONG") then break end
            if core.proc_wait(srv.pid, 0) or clock_ms() > deadline then
                error("redis-server did not start:\n" .. read_file(dir .. "/redis.log"), 0)
            end
            proc.sleep(50)
        end
        srv.version = proc.first_line({ "redis-server", "--version" }):match("v=([%d%.]+)")
    end)
    if not ok then
        srv:stop()
        error(err, 0)
    end
    return srv
end

return M
