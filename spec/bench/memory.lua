--- spec/bench/memory.lua: fill a RESP server with many keys and read a process's resident
-- memory (tools/bench_compare.lua); require("spec.bench.memory") from the repository root.
--
--   local memory = require("spec.bench.memory")
--   memory.fill({ "127.0.0.1:7001", ... }, 1000000)   -- 16-byte keys, 100-byte values,
--                                             -- MSET batches to the leader
--   memory.wait_keys({ "127.0.0.1:7001", ... }, 1000000, 60000)   -- DBSIZE on each
--   memory.rss_kb(pid)                        -- VmRSS of /proc/<pid>/status
--
-- The same fill for an ATLAS node and for redis-server, so that their memory holds the
-- same data: keys "mem:" and 12 digits (16 bytes), values of value_bytes (default 100),
-- each its own (its key's number, then padding: LuaJIT keeps one copy of equal strings, so
-- one value for every key would hide most of the values' memory), BATCH keys per MSET,
-- WINDOW MSETs in flight on one connection (pipelined).

local core = require("helios.core")
local client = require("helios.client")
local proc = require("spec.bench.proc")

local format, tostring, ipairs, type = string.format, tostring, ipairs, type
local clock_ms = core.clock_ms

local M = {}

M.BATCH = 1000
M.WINDOW = 8

--- The key of number i: 16 bytes.
function M.key(i) return format("mem:%012d", i) end

--- The value of key i: value_bytes (at least 12), distinct for every i.
function M.value(i, value_bytes)
    return format("%012d", i) .. string.rep("v", value_bytes - 12)
end

-- The argv of the MSET of keys first .. first + BATCH - 1 (fewer at the end).
local function batch(first, n, value_bytes)
    local argv = { "MSET" }
    local last = first + M.BATCH < n and first + M.BATCH or n
    for i = first, last - 1 do
        argv[#argv + 1] = M.key(i)
        argv[#argv + 1] = M.value(i, value_bytes)
    end
    argv.n = #argv
    return argv
end

-- Send the batches starting at firsts to addr, WINDOW in flight; the ones not answered
-- OK (an election under way, a node gone) are returned to be sent again.
local function send_batches(addr, firsts, n, value_bytes, deadline)
    local c, code, detail = client.connect(addr, 5000)
    if not c then return firsts, format("%s %s", tostring(code), tostring(detail)) end
    local failed, inflight, next_i, why = {}, {}, 1, nil
    while next_i <= #firsts or #inflight > 0 do
        proc.check()
        if not c.sock then -- the connection is gone: what is in flight with it, and the rest
            for _, f in ipairs(inflight) do failed[#failed + 1] = f end
            for i = next_i, #firsts do failed[#failed + 1] = firsts[i] end
            break
        end
        if next_i <= #firsts and #inflight < M.WINDOW then
            if c:send(batch(firsts[next_i], n, value_bytes)) then
                inflight[#inflight + 1] = firsts[next_i]
            else
                failed[#failed + 1] = firsts[next_i]
            end
            next_i = next_i + 1
        else
            local left = deadline - clock_ms()
            local r, rcode, rdetail = c:receive(left > 0 and left or 0)
            local first = table.remove(inflight, 1)
            if type(r) ~= "table" or r.ok ~= "OK" then
                failed[#failed + 1] = first
                why = why or format("%s %s %s", tostring(r and (r.err or r)), tostring(rcode),
                    tostring(rdetail))
                if r == nil then c:close() end -- broken, or no answer in time
            end
        end
    end
    c:close()
    return failed, why
end

--- Write keys 0 .. n-1 through the RESP server at addr, or through the leader of the
-- ATLAS nodes at addrs (a list), with pipelined MSETs. A batch not answered OK (the
-- leader changed under load: CLUSTERDOWN, MOVED, a closed connection) is sent again to
-- the leader of then: an MSET of the same keys and values may be applied twice. Raises
-- after timeout_ms (default 120000).
-- @treturn number the milliseconds it took
-- @treturn number the batches sent again
function M.fill(addrs, n, value_bytes, timeout_ms)
    if type(addrs) == "string" then addrs = { addrs } end
    local deadline = clock_ms() + (timeout_ms or 120000)
    value_bytes = math.max(value_bytes or 100, 12)
    local t0 = clock_ms()
    local firsts = {}
    for first = 0, n - 1, M.BATCH do firsts[#firsts + 1] = first end
    local resent, why = 0, nil
    local cc = #addrs > 1 and client.cluster(addrs, { timeout_ms = 5000 })
    while #firsts > 0 do
        if clock_ms() > deadline then
            if cc then cc:close() end
            error(format("fill: %d batches not written within the timeout (the last failure: "
                .. "%s)", #firsts, tostring(why)), 0)
        end
        local addr = addrs[1]
        if cc then addr = cc:leader(5000) or addrs[1] end
        local failed, fwhy = send_batches(addr, firsts, n, value_bytes, deadline)
        if #failed > 0 then
            resent, why = resent + #failed, fwhy
            if cc then cc.leader_addr = nil end
            proc.sleep(100)
        end
        firsts = failed
    end
    if cc then cc:close() end
    return clock_ms() - t0, resent
end

--- Wait until DBSIZE is at least n on each address (raises after timeout_ms).
function M.wait_keys(addrs, n, timeout_ms)
    local deadline = clock_ms() + timeout_ms
    for _, a in ipairs(addrs) do
        while true do
            local c = client.connect(a, 2000)
            local size = c and c:call("DBSIZE")
            if c then c:close() end
            if type(size) == "number" and size >= n then break end
            if clock_ms() > deadline then
                error(format("%s holds %s keys, not %d, after %d ms", a, tostring(size), n,
                    timeout_ms), 0)
            end
            proc.sleep(100)
        end
    end
end

--- The resident set size of pid in KiB, or nil.
function M.rss_kb(pid)
    local f = io.open("/proc/" .. tostring(pid) .. "/status")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return tonumber(s:match("VmRSS:%s*(%d+)"))
end

return M
