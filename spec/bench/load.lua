--- spec/bench/load.lua: the closed-loop load generator of the cluster benchmarks
-- (spec/bench/cluster.lua, spec/bench/reads.lua), which run from the repository root and
-- load it as require("spec.bench.load").
--
-- n connections to one node's control socket, each with one request in flight at a time:
-- a new request is sent as soon as the previous one is answered. Latency is from sending
-- a request to receiving its answer. The connections are multiplexed with poll() in this
-- one process, so the generator never waits on one connection while another has its
-- answer ready. Only requests sent after the warm-up and answered before the end count.

local core = require("helios.core")
local tk = require("helios.testkit")

local format, tostring, ipairs = string.format, tostring, ipairs
local encode, decode = core.mp_encode, core.mp_decode
local clock_ms = core.clock_ms

local M = {}

local function percentile(sorted, p)
    if #sorted == 0 then return 0 end
    local i = math.max(1, math.min(#sorted, math.ceil(p * #sorted)))
    return sorted[i]
end

--- Closed-loop load of n connections to socket_path for `seconds` after `warmup_ms`, each
-- with one request from make(i, seq) in flight (its id is set here).
-- @treturn table { ok = answers with ok, per_s, p50, p99 (ms), errors, first_error }
function M.run(socket_path, n, seconds, warmup_ms, make)
    local socks, sent_at, seq = {}, {}, {}
    for i = 1, n do
        socks[i] = assert(core.sock_connect(socket_path, 5000))
        seq[i] = 0
    end
    local lat, done_ok, errors, first_error = {}, 0, 0, nil
    local function send(i)
        seq[i] = seq[i] + 1
        sent_at[i] = clock_ms()
        local req = make(i, seq[i])
        req.id = seq[i]
        local sent, scode, sdetail = socks[i]:send_frame(encode(req), 5000)
        if not sent then
            error(format("client %d: send: %s %s", i, tostring(scode), tostring(sdetail)))
        end
    end
    local measure_from = clock_ms() + warmup_ms
    local stop_at = measure_from + seconds * 1000
    for i = 1, n do send(i) end
    local live = {}                 -- clients still running: positions in socks
    for i = 1, n do live[i] = i end
    while #live > 0 do
        local list = {}
        for k, i in ipairs(live) do list[k] = socks[i] end
        local ready = tk.sock_poll(list, 10000)
        if #ready == 0 then error("no answer from the leader within 10 s") end
        local now = clock_ms()
        local finished = {}
        for _, k in ipairs(ready) do
            local i = live[k]
            local payload, code, detail = socks[i]:recv_frame(5000)
            if not payload then error(format("client %d: %s %s", i, code, tostring(detail))) end
            local resp = decode(payload)
            if sent_at[i] >= measure_from and now <= stop_at then
                if resp.ok then
                    done_ok = done_ok + 1
                    lat[#lat + 1] = now - sent_at[i]
                else
                    errors = errors + 1
                    first_error = first_error or format("%s %s", tostring(resp.code),
                                                        tostring(resp.detail))
                end
            end
            if now < stop_at then send(i) else finished[i] = true end
        end
        local still = {}
        for _, i in ipairs(live) do if not finished[i] then still[#still + 1] = i end end
        live = still
    end
    for i = 1, n do socks[i]:close() end
    table.sort(lat)
    return { ok = done_ok, per_s = done_ok / seconds, p50 = percentile(lat, 0.5),
             p99 = percentile(lat, 0.99), errors = errors, first_error = first_error }
end

return M
