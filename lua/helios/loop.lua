--- helios.loop: the event loop of the process and the coroutines that run on it.
--
--   local loop = require("helios.loop")
--   loop.every(1000, function() print("tick", loop.now()) end)   -- a timer, :stop()
--   loop.spawn(function()
--       loop.sleep(100)                      -- this coroutine waits, the loop goes on
--       local st = client.connect(path):status()   -- yields too (helios.client)
--   end)
--   loop.run()                               -- until loop.stop() (or every node shut down)
--
-- One libuv loop per Lua state (helios.core, csrc/lua/loop.c) serves every node, timer,
-- control socket and client of the process. helios.raft re-exports run, stop, now, after,
-- every, spawn and sleep as raft.run, raft.stop, ... (docs/lua-api.md).
--
-- One concurrency model: code runs as coroutines on the loop, and a call that has to wait
-- (a socket answer, a process exit, a pause between two polls) yields the coroutine it
-- runs in when that coroutine runs on the loop (loop.spawn), so timers and nodes go on;
-- called anywhere else (a script, a busted test outside the loop) the same call blocks.
-- loop.wait_fd and loop.wait are the two waits every such call is built on.

local type, error, format, tostring, select = type, error, string.format, tostring, select
local floor, xpcall, require, setmetatable = math.floor, xpcall, require, setmetatable
local running, yield, isyieldable = coroutine.running, coroutine.yield, coroutine.isyieldable
local co_create, co_resume = coroutine.create, coroutine.resume
local traceback = debug.traceback
local unpack = unpack or table.unpack

local M = {}

local core_mod
local function core()
    core_mod = core_mod or require("helios.core")
    return core_mod
end

-- The coroutines loop.spawn made (weak: a finished one is collected): the ones a wait may
-- yield, since only the loop resumes them.
local on_loop = setmetatable({}, { __mode = "k" })

--- Resume co with the arguments; an error inside it stops loop.run() (which returns it)
-- instead of unwinding into whatever loop callback resumed it.
function M._resume(co, ...)
    local ok, err = co_resume(co, ...)
    if not ok then
        core().fail(traceback(co, tostring(err)))
    end
end

--- Call fn(...) for a loop callback that must not fail its caller (observers, apply
-- callbacks): an error stops loop.run() with its traceback.
function M.protect(fn, ...)
    local ok, err = xpcall(fn, traceback, ...)
    if not ok then
        core().fail(tostring(err))
    end
end

--- Run the loop until loop.stop() (helios.raft stops it when the last started node has
-- shut down) or until nothing is left to wait for.
-- @return true, or nil and the first error a Lua callback (FSM, observer, timer, spawned
--   coroutine) raised; the nodes keep their state and loop.run() may be called again.
function M.run()
    if core().running() then
        error("Usage: loop.run(): the loop is already running (called from a callback?)", 2)
    end
    local ok, err = core().run("default")
    if not ok then
        return nil, err
    end
    return true
end

--- Make loop.run() return at the end of the current loop turn.
function M.stop()
    core().stop()
end

--- The loop's clock, in milliseconds (monotonic; its origin is arbitrary).
function M.now()
    return core().now()
end

local function check_ms(ms, usage, positive)
    if type(ms) ~= "number" or ms < 0 or ms ~= floor(ms) or (positive and ms == 0) then
        error(format("Usage: %s: ms must be a %s integer (got %s)", usage,
                     positive and "positive" or "non-negative", tostring(ms)), 3)
    end
end

--- Call fn once after ms milliseconds. Returns a timer with :stop().
function M.after(ms, fn)
    check_ms(ms, "loop.after(ms, fn)")
    if type(fn) ~= "function" then
        error("Usage: loop.after(ms, fn): fn must be a function", 2)
    end
    return core().timer(ms, 0, fn)
end

--- Call fn every ms milliseconds (first after ms). Returns a timer with :stop().
function M.every(ms, fn)
    check_ms(ms, "loop.every(ms, fn)", true)
    if type(fn) ~= "function" then
        error("Usage: loop.every(ms, fn): fn must be a function", 2)
    end
    return core().timer(ms, ms, fn)
end

--- Run fn(...) in a new coroutine on the loop (it starts at the next loop turn); waiting
-- calls (node:apply, loop.sleep, helios.client, helios.testing) yield inside it. An error
-- in it makes loop.run() return nil and the error. Returns the coroutine.
function M.spawn(fn, ...)
    if type(fn) ~= "function" then
        error("Usage: loop.spawn(fn, ...): fn must be a function", 2)
    end
    local co = co_create(fn)
    on_loop[co] = true
    local args = { n = select("#", ...), ... }
    core().timer(0, 0, function()
        M._resume(co, unpack(args, 1, args.n))
    end)
    return co
end

--- Whether the running code is a coroutine on the loop (made by loop.spawn and resumed by
-- the loop): where a wait yields instead of blocking.
function M.on_loop()
    local co = running()
    return co ~= nil and on_loop[co] == true
        and core().running()
end

--- Inside a coroutine on the loop: let the loop run for ms milliseconds, then resume.
function M.sleep(ms)
    check_ms(ms, "loop.sleep(ms)")
    if not isyieldable() then
        error("Usage: loop.sleep(ms): only inside a coroutine on the loop (loop.spawn)", 2)
    end
    local co = running()
    core().timer(ms, 0, function() M._resume(co) end)
    yield()
end

--- Wait ms milliseconds (a fraction is rounded up): yields when called in a coroutine on
-- the loop (loop.sleep), blocks otherwise (the whole process sleeps).
function M.wait(ms)
    if type(ms) ~= "number" or not (ms >= 0) then
        error(format("Usage: loop.wait(ms): ms must be a non-negative number (got %s)",
                     tostring(ms)), 2)
    end
    if M.on_loop() then
        local co = running()
        core().timer(math.ceil(ms), 0, function() M._resume(co) end)
        yield()
    else
        core().sleep_ms(ms)
    end
end

-- In a coroutine on the loop: watch(target, events, timeout_ms, fn) (core.watch_fd or
-- core.watch_sock) calls fn once from the loop; yield until it does.
local function wait_on_loop(watch, target, events, timeout_ms)
    local co = running()
    local ok, code, detail = watch(target, events, timeout_ms, function(...)
        M._resume(co, ...)
    end)
    if not ok then
        return nil, code, detail
    end
    return yield()
end

--- Wait until the descriptor fd is ready ("r": readable, "w": writable, "rw": either) or
-- timeout_ms passes: yields when called in a coroutine on the loop (core.watch_fd), blocks
-- otherwise (poll()). One wait per descriptor at a time.
-- @return true; or nil, "timeout"; or nil, "io", detail
function M.wait_fd(fd, events, timeout_ms)
    if M.on_loop() then return wait_on_loop(core().watch_fd, fd, events, timeout_ms) end
    return core().poll_fd(fd, events, timeout_ms)
end

--- Wait until the helios.core socket sock is ready ("r", "w", "rw") or timeout_ms passes,
-- as wait_fd, but with the socket's own watcher (core.watch_sock): the watch stays in the
-- loop between waits, so a socket waited on again and again (a client's request, answer,
-- request...) costs no system call per wait. One wait per socket at a time.
-- @return true; or nil, "timeout"; or nil, "io", detail ("closed" when sock was closed)
function M.wait_sock(sock, events, timeout_ms)
    if M.on_loop() then return wait_on_loop(core().watch_sock, sock, events, timeout_ms) end
    return core().poll_fd(sock:fileno(), events, timeout_ms)
end

local sock_mt -- the class of helios.core's sockets, once looked up

local function is_sock(obj)
    sock_mt = sock_mt or debug.getregistry()["helios.core.sock"]
    return sock_mt ~= nil and getmetatable(obj) == sock_mt
end

--- Call step(obj) until it returns anything but nil, "again", waiting up to timeout_ms in
-- all for events ("r" or "w") on obj:fileno() between two calls (loop.wait_fd): yields when
-- called in a coroutine on the loop, blocks otherwise. The non-blocking steps of sockets
-- (s:try_recv_frame, s:try_flush, ...: csrc/lua/client_binding.c; a test listener's
-- l:try_accept: csrc/testkit/sock_listen.c) become waiting calls this way.
-- wait_first: wait for the descriptor before the first call too (the caller just found
-- step would block, e.g. with a look at what was read already).
-- @return what step returned; or nil, "timeout", what (default "not ready within the
--   timeout"); or nil, "io", detail
function M.await(obj, step, events, timeout_ms, what, wait_first)
    local clock_ms = core().clock_ms
    local deadline = clock_ms() + timeout_ms
    local waited = not wait_first
    while true do
        if waited then
            local v, code, detail = step(obj)
            if v or code ~= "again" then return v, code, detail end
        end
        waited = true
        local left = deadline - clock_ms()
        if left <= 0 then return nil, "timeout", what or "not ready within the timeout" end
        local ok, wcode, wdetail
        if is_sock(obj) then
            ok, wcode, wdetail = M.wait_sock(obj, events, left)
        else
            ok, wcode, wdetail = M.wait_fd(obj:fileno(), events, left)
        end
        if not ok and wcode ~= "timeout" then return nil, wcode, wdetail end
    end
end

--- Run start(cb) and block the running coroutine until cb is called; return cb's
-- arguments. cb may also be called before start returns. For the node's waits
-- (node:apply), whose completion comes from the loop.
function M.block(start)
    local co = running()
    local result, yielded = nil, false
    start(function(...)
        if yielded then
            M._resume(co, ...)
        else
            result = { n = select("#", ...), ... }
        end
    end)
    if result then
        return unpack(result, 1, result.n)
    end
    yielded = true
    return yield()
end

return M
