--- helios.util.process: waiting for and stopping child processes (core.proc_spawn).
--
--   local process = require("helios.util.process")
--   local how, what = process.wait(pid, 1000)      -- "exited", status | "signaled", name
--                                                  -- | nil (still running)
--   local how, what = process.stop(pid, "TERM", 5000)  -- signal, wait, then KILL
--
-- Both wait the way every blocking call of helios does: they yield when called in a
-- coroutine on the loop (helios.loop) and block otherwise.

local require = require

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

--- Stop pid: send sig (default "TERM"; a stopped process is continued first, so that it
-- can act on it), wait up to grace_ms for it to exit, then SIGKILL and wait again. Yields
-- when called in a coroutine on the loop, blocks otherwise.
-- @return how it ended ("exited", status | "signaled", name), or nil if it outlived KILL
function M.stop(pid, sig, grace_ms)
    sig = sig or "TERM"
    local c = core()
    if sig ~= "KILL" then c.proc_kill(pid, "CONT") end
    c.proc_kill(pid, sig)
    local how, what = M.wait(pid, grace_ms)
    if not how and sig ~= "KILL" then
        c.proc_kill(pid, "KILL")
        how, what = M.wait(pid, M.KILL_WAIT_MS)
    end
    return how, what
end

return M
