--- spec/bench/failover.lua: how long an ATLAS cluster takes to accept a write again after
-- its leader is SIGKILLed, as a client sees it (tools/bench_compare.lua);
-- require("spec.bench.failover") from the repository root.
--
--   local failover = require("spec.bench.failover")
--   local ms, tries = failover.helios(cl)     -- cl: helios.testing cluster, client = true
--
-- The client is the quick one a user who cares about failover would write on
-- helios.client: a connection to each node's RESP port, open before the kill; after it, a
-- SET to each surviving node in turn (each attempt bounded by ATTEMPT_MS), RETRY_MS
-- between rounds, until one answers OK. A follower answers at once (MOVED or CLUSTERDOWN),
-- so the time measured is the election plus one commit. Then the killed node is started
-- again and every node is waited for to apply the write, so that the next round starts
-- from a whole cluster.

local core = require("helios.core")
local client = require("helios.client")
local proc = require("spec.bench.proc")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local format, ipairs, tostring = string.format, ipairs, tostring
local clock_ms = core.clock_ms

local M = {}

M.ATTEMPT_MS = 100
M.RETRY_MS = 5

--- One failover of cl (a helios.testing cluster with client = true): SIGKILL its leader,
-- time until a SET succeeds through another node, start the node again and wait until
-- every node has applied that SET. Raises after timeout_ms (default 10000) without one.
-- @treturn number milliseconds from the kill to the OK
-- @treturn number attempts
function M.helios(cl, timeout_ms)
    timeout_ms = timeout_ms or 10000
    local leader = cl:leader(10000)
    local value = string.rep("v", 100)
    local conns, addrs = {}, {}
    for _, id in ipairs(cl:ids()) do
        if id ~= leader then addrs[#addrs + 1] = cl:client_address(id) end
    end
    local function close_all()
        for _, c in each(conns) do c:close() end
    end
    for _, a in ipairs(addrs) do conns[a] = assert(client.connect(a, 2000)) end
    local warm = assert(client.connect(cl:client_address(leader), 2000))
    local ok, code, detail = warm:call("SET", "failover", value)
    warm:close()
    if not ok then
        close_all()
        error(format("failover: the write before the kill failed: %s %s", tostring(code),
            tostring(detail)), 0)
    end
    local t0 = clock_ms()
    cl:kill(leader, "KILL")
    local tries, took = 0, nil
    while not took do
        for _, a in ipairs(addrs) do
            tries = tries + 1
            local c = conns[a]
            if not c or not c.sock then
                c = client.connect(a, M.ATTEMPT_MS)
                conns[a] = c or nil
            end
            if c and c:command({ "SET", "failover", value }, M.ATTEMPT_MS) then
                took = clock_ms() - t0
                break
            end
        end
        if not took then
            if clock_ms() - t0 > timeout_ms then
                close_all()
                error(format("failover: no write succeeded within %d ms of the kill\n%s",
                    timeout_ms, cl:logs(10)), 0)
            end
            proc.sleep(M.RETRY_MS)
        end
    end
    close_all()
    cl:start(leader)
    local _, st = cl:leader(10000)
    cl:wait_applied(st.commit_index, 30000)
    return took, tries
end

return M
