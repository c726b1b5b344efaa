--- helios.util.sock: what helios.client's control client and helios.client.resp's RESP
-- connection share: opening a helios.core socket (a unix path or "host:port"), and the
-- check of a timeout_ms argument.
--
--   local sock_util = require("helios.util.sock")
--   local sock, code, detail = sock_util.connect(addr, timeout_ms)
--   timeout_ms = sock_util.check_ms(timeout_ms, "c:call(...)", default)

local format, type, tostring, error = string.format, type, tostring, error
local huge = math.huge

local core = require("helios.core")
local loop = require("helios.loop")

local M = {}

--- Raise a Usage error, naming usage and blaming the caller of the function that checks,
-- unless ms is nil or a non-negative finite number; ms, or default when nil.
function M.check_ms(ms, usage, default)
    if ms == nil then return default end
    if type(ms) ~= "number" or not (ms >= 0) or ms == huge then
        error(format("Usage: %s: timeout_ms must be a non-negative number of milliseconds "
            .. "(got %s)", usage, tostring(ms)), 3)
    end
    return ms
end

-- Longest pause between two tries of a connect that found the listen backlog full (ms).
local RETRY_MAX_MS = 16

--- Connect to addr (core.sock_connect's): yields in a coroutine on the loop (waiting for
-- the socket through it), blocks otherwise. A socket, or nil, code, detail. A unix socket
-- whose server's listen backlog is full refuses a connect at once ("again"), where TCP
-- would wait (on TCP "again" means no local port was free): it is tried again, after
-- pauses that double, until timeout_ms.
function M.connect(addr, timeout_ms)
    if not loop.on_loop() then return core.sock_connect(addr, timeout_ms) end
    local deadline = core.clock_ms() + (timeout_ms or 5000)
    local pause = 1
    local sock, pending, detail = core.sock_connect_start(addr)
    while not sock and pending == "again" do
        local left = deadline - core.clock_ms()
        if left <= 0 then
            return nil, "timeout", format("connect %s: %s", addr, addr:find("^[^/]*:%d+$")
                and "no local port was free until the timeout"
                or "the server's listen backlog stayed full until the timeout")
        end
        loop.sleep(left < pause and left or pause)
        pause = pause * 2 > RETRY_MAX_MS and RETRY_MAX_MS or pause * 2
        sock, pending, detail = core.sock_connect_start(addr)
    end
    if not sock then return nil, pending, detail end
    if pending then
        local left = deadline - core.clock_ms()
        local ok, code, wdetail = loop.wait_sock(sock, "w", left > 0 and left or 0)
        if not ok then
            sock:close()
            return nil, code, format("connect %s: %s", addr,
                code == "timeout" and "Connection timed out" or tostring(wdetail))
        end
        local done, fcode, fdetail = sock:finish_connect()
        if not done then
            return nil, fcode, format("connect %s: %s", addr,
                (tostring(fdetail):gsub("^connect: ", "")))
        end
    end
    return sock
end

return M
