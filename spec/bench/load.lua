--- spec/bench/load.lua: the closed-loop load generator of the cluster benchmarks
-- (spec/bench/cluster.lua, spec/bench/reads.lua, tools/bench_compare.lua), which run from
-- the repository root and load it as require("spec.bench.load").
--
-- n clients, each with one request in flight at a time: a new request is sent as soon as
-- the previous one is answered. Latency is from sending a request to receiving its answer.
-- Only requests sent after the warm-up and answered before the end count.
--
-- M.run: n connections to one node's control socket, raw frames multiplexed with poll()
-- in this one process, so the generator never waits on one connection while another has
-- its answer ready.
-- M.run_clients: n coroutines on helios.loop, each with a connection of helios.client (a
-- RESP port, a control socket, or any object whose calls yield on the loop): what an
-- application built on helios.client does, the client library's own cost included.

local core = require("helios.core")
local tk = require("helios.testkit")
local loop = require("helios.loop")

local format, tostring, ipairs = string.format, tostring, ipairs
local encode, decode = core.mp_encode, core.mp_decode
local clock_ms = core.clock_ms

local M = {}

local function percentile(sorted, p)
    if #sorted == 0 then return 0 end
    local i = math.max(1, math.min(#sorted, math.ceil(p * #sorted)))
    return sorted[i]
end

--- The `make` of M.run for writes: client i's request seq applies a command of exactly
-- `bytes` bytes, "set <tag><i>-<seq> " padded with x.
function M.apply_requests(tag, bytes)
    return function(i, seq)
        local head = format("set %s%d-%d ", tag, i, seq)
        return { op = "apply", cmd = head .. string.rep("x", bytes - #head),
                 timeout_ms = 10000 }
    end
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

-- Failures after which a connection is gone: its client stops.
local BROKEN = { closed = true, io = true, refused = true, protocol = true,
                 too_large = true }

--- Closed-loop load of n clients for `seconds` after `warmup_ms`: client i is
-- connect(i) (called here, before the clock starts; e.g. helios.client.connect(addr)),
-- and runs request(conn, i, seq) in a coroutine on helios.loop, one at a time, until the
-- end. request returns a true value, or nil, code, detail (counted as an error; a broken
-- connection, "closed", "io", ..., ends that client). Runs helios.loop until every client
-- is done (at most warm-up + seconds + limit_ms, default 15000, then it raises).
-- @treturn table as M.run's
function M.run_clients(n, seconds, warmup_ms, connect, request, limit_ms)
    local conns = {}
    for i = 1, n do
        local c, code, detail = connect(i)
        if not c then
            for j = 1, i - 1 do conns[j]:close() end
            error(format("client %d: connect: %s %s", i, tostring(code), tostring(detail)), 0)
        end
        conns[i] = c
    end
    local lat, done_ok, errors, first_error = {}, 0, 0, nil
    local measure_from = clock_ms() + warmup_ms
    local stop_at = measure_from + seconds * 1000
    local running = n
    local function client(i)
        local conn, seq = conns[i], 0
        while true do
            local t0 = clock_ms()
            if t0 >= stop_at then break end
            seq = seq + 1
            local ok, code, detail = request(conn, i, seq)
            local t1 = clock_ms()
            local counted = t0 >= measure_from and t1 <= stop_at
            if ok and counted then
                done_ok = done_ok + 1
                lat[#lat + 1] = t1 - t0
            elseif not ok then
                if counted or BROKEN[code] then
                    errors = errors + 1
                    first_error = first_error or format("%s %s", tostring(code),
                                                        tostring(detail))
                end
                if BROKEN[code] then break end
            end
        end
        running = running - 1
        if running == 0 then loop.stop() end
    end
    for i = 1, n do loop.spawn(client, i) end
    local cutoff = false
    local timer = loop.after(warmup_ms + seconds * 1000 + (limit_ms or 15000), function()
        cutoff = true
        loop.stop()
    end)
    local ok, err = loop.run()
    timer:stop()
    for i = 1, n do conns[i]:close() end
    if not ok then error(err, 0) end
    if cutoff then
        error(format("%d of %d clients still waiting for an answer after the end", running, n),
              0)
    end
    table.sort(lat)
    return { ok = done_ok, per_s = done_ok / seconds, p50 = percentile(lat, 0.5),
             p99 = percentile(lat, 0.99), errors = errors, first_error = first_error }
end

return M
