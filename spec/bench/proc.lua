--- spec/bench/proc.lua: the child processes of the benchmarks, bounded in time and
-- reaped, also when the benchmark is interrupted (require("spec.bench.proc"), from the
-- repository root).
--
--   local proc = require("spec.bench.proc")
--   proc.catch_signals()                     -- SIGINT/SIGTERM become errors at the next wait
--   local out, how, what = proc.run({ "redis-benchmark", ... }, { timeout_ms = 60000 })
--   local pid = proc.spawn({ "etcd", ... }, { log = dir .. "/e1.log" })
--   proc.stop(pid)                           -- TERM, then KILL after a grace time
--   proc.sleep(100)  proc.check()            -- a wait that an interrupt cuts short
--
-- Every process is started with PR_SET_PDEATHSIG (die_with_parent): should the benchmark
-- itself be killed outright, its children go with it. Output goes to a file, never to a
-- pipe that could fill up.

local core = require("helios.core")
local process = require("helios.util.process")
local shell = require("helios.util.shell")

local format, tostring, error = string.format, tostring, error
local clock_ms = core.clock_ms

local M = {}

local catching = false

--- Catch SIGINT and SIGTERM: from then on every wait of this module (and proc.check())
-- raises "interrupted by SIGINT" once one arrived, so the caller's cleanup runs.
function M.catch_signals()
    core.signal_catch("INT")
    core.signal_catch("TERM")
    catching = true
end

--- The signal that interrupted the run ("INT", "TERM"), once one arrived: every later
-- check raises again, so that a caller that catches one stage's error still stops.
M.interrupted = nil

--- Raise if SIGINT or SIGTERM arrived (after proc.catch_signals()).
function M.check()
    if not catching then return end
    local sig = core.signal_take()
    if sig == "INT" or sig == "TERM" then M.interrupted = M.interrupted or sig end
    if M.interrupted then error("interrupted by SIG" .. M.interrupted, 0) end
end

--- Wait ms milliseconds in slices, raising on an interrupt.
function M.sleep(ms)
    local deadline = clock_ms() + ms
    while true do
        M.check()
        local left = deadline - clock_ms()
        if left <= 0 then return end
        core.sleep_ms(left < 50 and left or 50)
    end
end

--- Start argv in the background, its output (stdout and stderr) to opts.log (default
-- /dev/null), dying with this process.
-- @return the pid (raises when it cannot be started)
function M.spawn(argv, opts)
    opts = opts or {}
    local pid, code, detail = core.proc_spawn(argv, { stdout = opts.log or "/dev/null",
        stderr = "stdout", die_with_parent = true, env = opts.env, cwd = opts.cwd })
    if not pid then
        error(format("cannot start %s: %s %s", argv[1], tostring(code), tostring(detail)), 0)
    end
    return pid
end

--- Stop pid: SIGTERM (or sig), then SIGKILL after grace_ms (default 5000); reaps it.
function M.stop(pid, sig, grace_ms)
    return process.stop(pid, sig or "TERM", grace_ms or 5000)
end

--- Wait up to timeout_ms for pid to exit, in slices (an interrupt raises).
-- @return "exited", status | "signaled", name; or nil, "timeout"
function M.wait(pid, timeout_ms)
    local deadline = clock_ms() + timeout_ms
    while true do
        M.check()
        local left = deadline - clock_ms()
        local how, what = core.proc_wait(pid, left < 100 and (left > 0 and left or 0) or 100)
        if how or what ~= "timeout" then return how, what end
        if left <= 0 then return nil, "timeout" end
    end
end

local function read_file(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

--- Run argv to its end, for at most opts.timeout_ms (default 60000; then SIGKILL): its
-- output (stdout and stderr together) and how it ended. An interrupt kills it and raises.
-- @treturn string output
-- @treturn string "exited" | "signaled" | "timeout"
-- @return the exit status or the signal's name
function M.run(argv, opts)
    opts = opts or {}
    local out = os.tmpname()
    local pid = M.spawn(argv, { log = out, env = opts.env, cwd = opts.cwd })
    local ok, how, what = pcall(M.wait, pid, opts.timeout_ms or 60000)
    if not ok or not how then
        M.stop(pid, "KILL")
        if not ok then
            os.remove(out)
            error(how, 0)
        end
        how, what = "timeout", opts.timeout_ms or 60000
    end
    local text = read_file(out)
    os.remove(out)
    return text, how, what
end

--- A new directory only its owner can open, under base (default: where os.tmpname()
-- points, /tmp), for one benchmark process's data; its path.
function M.tempdir(base)
    local name = os.tmpname()
    os.remove(name)
    local dir = base and (base .. "/" .. name:match("[^/]+$")) or name
    assert(os.execute("mkdir -m 700 " .. shell.quote(dir)))
    return dir
end

local clk_tck

--- The CPU time (s, user and system, all threads) process pid has used so far; nil once it
-- is gone.
function M.cpu_seconds(pid)
    local f = pid and io.open("/proc/" .. tostring(pid) .. "/stat")
    if not f then return nil end
    local line = f:read("*l") or ""
    f:close()
    -- After the command's name, which may hold spaces: state, ppid, ..., utime (12th),
    -- stime (13th), in clock ticks.
    local fields = {}
    for x in (line:match("%) (.*)$") or ""):gmatch("%S+") do fields[#fields + 1] = x end
    local utime, stime = tonumber(fields[12]), tonumber(fields[13])
    if not (utime and stime) then return nil end
    clk_tck = clk_tck or tonumber(M.first_line({ "getconf", "CLK_TCK" })) or 100
    return (utime + stime) / clk_tck
end

--- Whether a command is on the PATH.
function M.have(cmd)
    local r = os.execute("command -v " .. cmd .. " >/dev/null 2>&1")
    return r == 0 or r == true
end

--- The first line of a command's output ("" if it cannot run), for versions.
function M.first_line(argv)
    local ok, out = pcall(M.run, argv, { timeout_ms = 10000 })
    return ok and (out:match("^[^\n]*") or "") or ""
end

return M
