--- helios.util.process: waiting for and stopping child processes (core.proc_spawn).
--
--   local process = require("helios.util.process")
--   local how, what = process.wait(pid, 1000)      -- "exited", status | "signaled", name
--                                                  -- | nil (still running)
--   local how, what = process.stop(pid, "TERM", 5000)  -- signal, wait, then KILL
--   process.stop_all({ pid1, pid2 }, "TERM", 5000)   -- the same for many, in parallel
--
-- Both wait the way every blocking call of helios does: they yield when called in a
-- coroutine on the loop (helios.loop) and block otherwise.

local require, ipairs = require, ipairs

local M = {}

--- How often a wait inside a coroutine on the loop looks at the process, in ms.
M.POLL_MS = 10

--- How long process.stop waits after SIGKILL, in ms.
M.KILL_WAIT_MS = 5000

local core_mod
local function core()
    core_mod = core_mod or require("helios.core")
    return core_mod
end

--- Wait up to timeout_ms (0: just look) for pid to exit and reap it: yields when called in
-- a coroutine on the loop, blocks otherwise.
-- @return "exited", status | "signaled", signal name; or nil, "timeout" (it still runs),
--   nil, "no_child"
function M.wait(pid, timeout_ms)
    local loop = require("helios.loop")
    if timeout_ms <= 0 or not loop.on_loop() then
        return core().proc_wait(pid, timeout_ms > 0 and timeout_ms or 0)
    end
    local deadline = core().clock_ms() + timeout_ms
    while true do
        local how, what = core().proc_wait(pid, 0)
        if how or what ~= "timeout" then return how, what end
        local left = deadline - core().clock_ms()
        if left <= 0 then return nil, "timeout" end
        loop.wait(left < M.POLL_MS and left or M.POLL_MS)
    end
end

--- Stop several processes at once: send each sig (default "TERM"; a stopped process is
-- continued first, so that it can act on it; false: send nothing, the processes were
-- already asked to exit another way), give them grace_ms together to exit, then
-- SIGKILL those left and wait for them. Yields when called in a coroutine on the loop,
-- blocks otherwise.
-- @tparam table pids list of pids
-- @treturn table results[i] = { how, what } for pids[i]: "exited", status |
--   "signaled", name; or nil, code if it outlived KILL (or was no child of ours)
function M.stop_all(pids, sig, grace_ms)
    if sig == nil then sig = "TERM" end
    local c = core()
    for _, pid in ipairs(pids) do
        if sig ~= "KILL" then c.proc_kill(pid, "CONT") end
        if sig then c.proc_kill(pid, sig) end
    end
    local results = {}
    local deadline = c.clock_ms() + grace_ms
    for i, pid in ipairs(pids) do
        local left = deadline - c.clock_ms()
        local how, what = M.wait(pid, left > 0 and left or 0)
        if not how and what == "timeout" and sig ~= "KILL" then
            c.proc_kill(pid, "KILL")
            how, what = M.wait(pid, M.KILL_WAIT_MS)
        end
        results[i] = { how, what }
    end
    return results
end

--- Stop one process: process.stop_all({ pid }, sig, grace_ms).
-- @return how it ended ("exited", status | "signaled", name), or nil, code
function M.stop(pid, sig, grace_ms)
    local r = M.stop_all({ pid }, sig, grace_ms)[1]
    return r[1], r[2]
end

return M
