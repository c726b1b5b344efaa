-- metrics_spec.lua: the metrics endpoint (docs/metrics.md). helios.metrics renders the
-- text format 0.0.4; a 3-node cluster of networked nodes in this process (raft.new with
-- metrics_listen) is scraped over HTTP with a raw socket, and every scrape is checked by
-- the strict parser of spec/helpers/http.lua and by `promtool check metrics` (Debian's
-- prometheus package); the counters must move when an election is forced, a snapshot is
-- taken and a peer is cut off. The HTTP server (csrc/lua/metrics_http.c) is driven with
-- bad requests: unknown paths, other methods, garbage, oversized and slow heads.
--
-- Every wait has a deadline (nh.wait_for, nh.run_scenario).

local raft = require("helios.raft")
local core = require("helios.core")
local kv = require("helios.fsm.kv")
local metrics = require("helios.metrics")
local nh = require("spec.helpers.node")
local http = require("spec.helpers.http")
local shell = require("helios.util.shell")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local format = string.format
local tmpdir, rmrf, wait_for = nh.tmpdir, nh.rmrf, nh.wait_for
local SECRET = "metrics spec secret"
local NO_CONN = { type = "append", reason = "no_connection" }

local function promtool_check(text)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    local p = assert(io.popen("promtool check metrics < " .. shell.quote(path)
                              .. " 2>&1; echo \"rc=$?\""))
    local out = p:read("*a")
    p:close()
    os.remove(path)
    return out:match("rc=0%s*$") ~= nil, out
end

describe("helios.metrics rendering", function()
    it("writes HELP, TYPE, escaped labels, histograms with cumulative buckets and +Inf", function()
        local fams = {
            a_total = { name = "a_total", type = "counter", help = "back\\slash\nnewline",
                        samples = { { labels = { path = "q\"uote\\\n", b = "x" }, value = 3 } } },
            g = { name = "g", type = "gauge", help = "a gauge",
                  samples = { { labels = {}, value = 0.25 } } },
            h_seconds = { name = "h_seconds", type = "histogram", help = "h",
                          samples = { { labels = {}, buckets = { { le = 0.5, count = 1 },
                              { le = 1, count = 3 }, { le = math.huge, count = 4 } },
                              sum = 2.75, count = 4 } } },
        }
        local text = metrics.render(fams)
        assert.are.equal(table.concat({
            "# HELP a_total back\\\\slash\\nnewline",
            "# TYPE a_total counter",
            "a_total{b=\"x\",path=\"q\\\"uote\\\\\\n\"} 3",
            "# HELP g a gauge",
            "# TYPE g gauge",
            "g 0.25",
            "# HELP h_seconds h",
            "# TYPE h_seconds histogram",
            "h_seconds_bucket{le=\"0.5\"} 1",
            "h_seconds_bucket{le=\"1\"} 3",
            "h_seconds_bucket{le=\"+Inf\"} 4",
            "h_seconds_sum 2.75",
            "h_seconds_count 4",
            "" }, "\n"), text)
        local parsed = http.parse_prometheus(text)
        assert.are.equal("q\"uote\\\n", parsed.a_total.samples[1].labels.path)
        local ok, out = promtool_check(text)
        assert(ok, out)
        -- promtool can fail (the check has teeth): a broken label, a counter's name.
        assert.is_false(promtool_check(
            "# HELP x_total x\n# TYPE x_total counter\nx_total{a=\"b} 1\n"))
        assert.is_false(promtool_check("# HELP x x\n# TYPE x counter\nx 1\n"))
        assert.are.equal("5e-05", metrics.number(0.00005))
        assert.are.equal("+Inf", metrics.number(math.huge))
        assert.are.equal("12345678901", metrics.number(12345678901))
    end)

    it("the strict parser refuses what the format does not allow", function()
        local head = "# HELP x_total x\n# TYPE x_total counter\n"
        local hhead = "# HELP h h\n# TYPE h histogram\n"
        local bad = {
            ["no newline at the end"] = head .. "x_total 1",
            ["no HELP/TYPE"] = "y 1\n",
            ["series twice"] = head .. "x_total 1\nx_total 2\n",
            ["negative counter"] = head .. "x_total -1\n",
            ["counter without _total"] = "# HELP x x\n# TYPE x counter\nx 1\n",
            ["bad escape"] = head .. "x_total{a=\"\\t\"} 1\n",
            ["unterminated label"] = head .. "x_total{a=\"b} 1\n",
            ["bad value"] = head .. "x_total one\n",
            ["le not ascending"] = hhead .. "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
                .. "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            ["not cumulative"] = hhead .. "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                .. "h_sum 1\nh_count 1\n",
            ["no +Inf"] = hhead .. "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
            ["count differs"] = hhead .. "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n",
            ["split family"] = head .. "x_total{a=\"1\"} 1\n# HELP g g\n# TYPE g gauge\ng 1\n"
                .. "x_total{a=\"2\"} 1\n",
            ["empty line"] = head .. "\nx_total 1\n",
        }
        for what, text in each(bad) do
            local ok = pcall(http.parse_prometheus, text)
            assert(not ok, "the parser took: " .. what)
        end
        assert(http.parse_prometheus(head .. "x_total{a=\"1\"} 1\nx_total{a=\"2\"} 1e3\n"))
    end)
end)

-- A 3-node cluster with the endpoint on every node (port 0: any).
local function new_cluster(dir)
    local c = { dir = dir, ids = {}, nodes = {}, addrs = {} }
    local peers = {}
    for i = 1, 3 do
        local id = "node-" .. i
        c.ids[i] = id
        peers[id] = "127.0.0.1:" .. core.free_port()
    end
    c.make = function(id)
        -- trailing_logs = 0: a snapshot compacts the whole log, so that a follower that
        -- missed entries before it needs an InstallSnapshot.
        c.nodes[id] = raft.new({ id = id, peers = peers, data_dir = dir .. "/" .. id,
                                 fsm = kv.new(), secret = SECRET, election_timeout_ms = 150,
                                 heartbeat_timeout_ms = 30, metrics_listen = "127.0.0.1:0",
                                 trailing_logs = 0 })
        return c.nodes[id]
    end
    for _, id in ipairs(c.ids) do c.make(id) end
    return c
end

describe("the metrics endpoint of networked nodes", function()
    local dir, c
    before_each(function()
        dir = tmpdir()
        c = new_cluster(dir)
    end)
    after_each(function()
        nh.stop_all(c)
        rmrf(dir)
    end)

    it("serves valid Prometheus text whose counters follow elections, snapshots, a lost peer",
       function()
        for _, id in ipairs(c.ids) do assert(c.nodes[id]:start()) end
        local texts = {}
        local function scrape(id)
            local raw = assert(http.get(c.nodes[id]:metrics_address(), "/metrics", 5000))
            local res = http.parse_response(raw)
            assert.are.equal(200, res.status)
            assert.are.equal("text/plain; version=0.0.4; charset=utf-8",
                             res.headers["content-type"])
            assert.are.equal("close", res.headers["connection"])
            texts[#texts + 1] = res.body
            return http.parse_prometheus(res.body)
        end
        local v = http.value
        local ok, err = nh.run_scenario(c, 60000, function()
            local leader
            assert(wait_for(function() leader = nh.leader_of(c) return leader ~= nil end, 5000))
            for i = 1, 20 do assert(c.nodes[leader]:apply(format("set k%d v%d", i, i), 3000)) end
            -- The leader may apply before its own write is durable (a quorum of followers
            -- suffices, docs/architecture.md): its last fsync can still be under way.
            local m
            assert(wait_for(function()
                m = scrape(leader)
                return v(m, "helios_fsync_entries_sum") >= 20
            end, 5000))
            assert.are.equal(1, v(m, "helios_role", { role = "leader" }))
            assert.are.equal(0, v(m, "helios_role", { role = "follower" }))
            assert.are.equal(1, v(m, "helios_node_info", { id = leader }))
            assert(v(m, "helios_commit_latency_seconds_count") >= 20)
            assert(v(m, "helios_apply_latency_seconds_count") >= 20)
            assert(v(m, "helios_fsync_duration_seconds_count") > 0)
            assert(v(m, "helios_commit_index") >= 21)
            assert(v(m, "helios_last_index") >= v(m, "helios_commit_index"))
            assert(v(m, "helios_rpc_sent_total", { type = "append" }) > 0)
            assert(v(m, "helios_rpc_received_total", { type = "append_resp" }) > 0)
            assert(v(m, "helios_transport_sent_bytes_total") > 0)
            assert(v(m, "process_resident_memory_bytes") > 1e6)
            assert(v(m, "helios_lua_heap_bytes") > 1e4)
            assert(v(m, "helios_state_changes_total", { to = "leader" }) >= 1)
            for _, id in ipairs(c.ids) do
                if id ~= leader then
                    assert(v(m, "helios_peer_match_index", { peer = id }))
                    assert.are.equal(1, v(m, "helios_peer_connected", { peer = id }))
                    local fm = scrape(id)
                    assert.are.equal(1, v(fm, "helios_role", { role = "follower" }))
                    assert(v(fm, "helios_rpc_received_total", { type = "append" }) > 0)
                    assert(v(fm, "helios_applied_index") >= 1)
                    -- A follower knows no match indexes.
                    assert.is_nil(v(fm, "helios_peer_match_index", { peer = leader }))
                end
            end

            -- A forced election: leadership moves to another node.
            local before = {}
            for _, id in ipairs(c.ids) do before[id] = scrape(id) end
            assert(c.nodes[leader]:transfer_leadership())
            local new
            assert(wait_for(function()
                new = nh.leader_of(c)
                return new ~= nil and new ~= leader
            end, 5000))
            local after = scrape(new)
            assert(v(after, "helios_elections_total") > v(before[new], "helios_elections_total"))
            assert(v(after, "helios_state_changes_total", { to = "leader" })
                   > v(before[new], "helios_state_changes_total", { to = "leader" }))
            assert(v(after, "helios_term") > v(before[new], "helios_term"))
            assert(wait_for(function()
                local o = scrape(leader)
                local b = before[leader]
                return v(o, "helios_leader_changes_total") > v(b, "helios_leader_changes_total")
                    and v(o, "helios_state_changes_total", { to = "follower" })
                        > v(before[leader], "helios_state_changes_total", { to = "follower" })
            end, 5000))
            assert(v(after, "helios_rpc_sent_total", { type = "timeout_now" }) == 0)
            assert(v(scrape(leader), "helios_rpc_sent_total", { type = "timeout_now" }) >= 1)
            leader = new

            -- A snapshot.
            local s0 = scrape(leader)
            assert.are.equal(0, v(s0, "helios_snapshots_total"))
            assert(c.nodes[leader]:snapshot())
            local s1
            assert(wait_for(function()
                s1 = scrape(leader)
                return v(s1, "helios_snapshots_total") == 1
            end, 5000))
            assert.are.equal(1, v(s1, "helios_snapshot_duration_seconds_count"))
            assert.are.equal(1, v(s1, "helios_snapshot_size_bytes_count"))
            assert(v(s1, "helios_snapshot_file_bytes") > 0)
            assert(v(s1, "helios_snapshot_index") > 0)

            -- A peer cut off: shut a follower down; the leader's failures and lag move,
            -- and the entries sent to it are dropped, not kept for a peer it cannot reach
            -- (docs/wire-protocol.md, "Send queues").
            local gone
            for _, id in ipairs(c.ids) do if id ~= leader then gone = id end end
            local l0 = scrape(leader)
            c.nodes[gone]:shutdown()
            assert(wait_for(function() return not nh.running(c.nodes[gone]) end, 5000))
            for i = 1, 10 do assert(c.nodes[leader]:apply(format("set cut%d x", i), 3000)) end
            local l1
            assert(wait_for(function()
                l1 = scrape(leader)
                return v(l1, "helios_peer_connected", { peer = gone }) == 0
                    and v(l1, "helios_rpc_failures_total", NO_CONN)
                        > v(l0, "helios_rpc_failures_total", NO_CONN)
                    and v(l1, "helios_transport_queue_drops_total")
                        > v(l0, "helios_transport_queue_drops_total")
            end, 5000))
            assert(v(l1, "helios_peer_replication_lag_entries", { peer = gone }) >= 10)
            assert.are.equal(0, v(l0, "helios_peer_replication_lag_entries", { peer = gone }))
            local function lost(m)
                return v(m, "helios_transport_disconnects_total")
                    + v(m, "helios_transport_connect_failures_total")
            end
            assert(lost(l1) > lost(l0))
            -- InstallSnapshot: a snapshot past what the cut-off follower has, then it comes
            -- back with an empty data dir (a replaced disk) and must get it from the leader.
            -- Not with its old log: AppendEntries queued during a connection attempt may
            -- still go out on reconnection, before the snapshot's chunks, so a restarted
            -- follower could catch up from those and need no snapshot at all. An empty log
            -- continues none of them.
            local t0 = scrape(leader)
            assert(c.nodes[leader]:snapshot())
            assert(wait_for(function()
                return v(scrape(leader), "helios_snapshots_total")
                    == v(t0, "helios_snapshots_total") + 1
            end, 5000))
            rmrf(c.dir .. "/" .. gone)
            assert(c.make(gone):start())
            local back
            assert(wait_for(function()
                back = scrape(gone)
                return v(back, "helios_snapshots_installed_total") >= 1
            end, 20000), "the follower did not install the leader's snapshot")
            assert.are.equal(v(back, "helios_snapshots_installed_total"),
                             v(back, "helios_snapshot_transfers_total", { direction = "received" }))
            assert(v(back, "helios_snapshot_chunks_total", { direction = "received" }) >= 1)
            assert(v(back, "helios_snapshot_transfer_bytes_total", { direction = "received" }) > 0)
            local t1 = scrape(leader)
            assert(v(t1, "helios_snapshot_transfers_total", { direction = "sent" }) >= 1)
            assert(v(t1, "helios_rpc_sent_total", { type = "snapshot" }) >= 1)
            assert(v(back, "helios_rpc_received_total", { type = "snapshot" }) >= 1)
            -- node:metrics() is the same table the endpoint rendered.
            local fams = c.nodes[leader]:metrics()
            assert.are.equal("gauge", fams.helios_term.type)
            assert.are.equal(v(t1, "helios_term"), fams.helios_term.samples[1].value)
        end)
        assert(ok, err)
        assert(#texts > 10)
        -- promtool on a few scrapes (after the loop: it blocks).
        for _, i in ipairs({ 1, 2, #texts }) do
            local pok, out = promtool_check(texts[i])
            assert(pok, out .. "\n" .. texts[i])
        end
    end)

    it("answers 404, 405, 400, 431, 505 and HEAD, and a slow client blocks no one", function()
        for _, id in ipairs(c.ids) do assert(c.nodes[id]:start()) end
        local ok, err = nh.run_scenario(c, 20000, function()
            local addr = c.nodes["node-1"]:metrics_address()
            assert.matches("^127%.0%.0%.1:%d+$", addr)
            local function ask(req, head)
                return http.parse_response(assert(http.exchange(addr, req, 5000)), head)
            end
            -- A slow client holds a connection open with half a head meanwhile.
            local slow = assert(http.connect(addr))
            assert(http.send(slow, "GET /metrics HTTP/1.1\r\nHo"))
            assert.are.equal(404, ask("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status)
            assert.are.equal(404, ask("GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n").status)
            local r = ask("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert.are.equal(405, r.status)
            assert.are.equal("GET, HEAD", r.headers["allow"])
            assert.are.equal(405, ask("DELETE /metrics HTTP/1.0\r\n\r\n").status)
            for _, garbage in ipairs({
                "hello\r\n\r\n",
                "GET\r\n\r\n",
                "GET /metrics\r\n\r\n",
                "GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /metrics HTTP/1.1 extra\r\nHost: x\r\n\r\n",
                "GET /metrics HTTP/1.1\r\n\r\n",                     -- 1.1 without Host
                "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                "GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
                "GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
                "GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\1b\r\n\r\n",
                "GET /metrics HTTP/1.1\r\nHost: \0x\r\n\r\n",
                "\255\254\253\r\n\r\n",
            }) do
                local res = ask(garbage)
                assert.are.equal(400, res.status, format("%q", garbage))
            end
            assert.are.equal(505, ask("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n").status)
            -- Oversized: answered at 8192 bytes, before the client has sent all of it.
            local big = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " .. string.rep("a", 20000)
            local s = assert(http.connect(addr))
            http.send(s, big) -- may fail half-way once the server has closed
            local raw = http.read_all(s, 5000)
            http.close(s)
            assert.are.equal(431, http.parse_response(raw).status)
            -- HEAD: the headers of the page, no body; a query string is ignored; HTTP/1.0.
            local h = ask("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", true)
            assert.are.equal(200, h.status)
            assert(tonumber(h.headers["content-length"]) > 1000)
            local g = ask("GET /metrics?x=1 HTTP/1.0\r\n\r\n")
            assert.are.equal(200, g.status)
            assert(http.parse_prometheus(g.body))
            -- Bare LF line ends are taken (RFC 9112 §2.2).
            assert.are.equal(200, ask("GET /metrics HTTP/1.1\nHost: x\n\n").status)
            -- The slow client still waits; finishing its head gets it its page.
            assert(http.send(slow, "st: x\r\n\r\n"))
            local sres = http.parse_response(assert(http.read_all(slow, 5000)))
            http.close(slow)
            assert.are.equal(200, sres.status)
        end)
        assert(ok, err)
    end)
end)

describe("core.metrics_listen", function()
    it("times out silent clients (408), caps connections (503), answers 500 for a failing handler",
       function()
        local calls = 0
        local srv = assert(core.metrics_listen("127.0.0.1:0", function()
            calls = calls + 1
            if calls == 1 then error("render failed") end
            return "# HELP x_total x\n# TYPE x_total counter\nx_total 1\n"
        end, { timeout_ms = 200, max_conns = 2 }))
        local addr = srv:address()
        local results = {}
        raft.spawn(function()
            local req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
            results.failing = http.parse_response(assert(http.exchange(addr, req)))
            results.good = http.parse_response(assert(http.exchange(addr, req)))
            local a = assert(http.connect(addr))
            local b = assert(http.connect(addr))
            -- Both slots taken by silent clients: the third is refused at once.
            results.third = http.parse_response(assert(http.exchange(addr, req)))
            local t0 = core.clock_ms()
            results.silent = http.parse_response(assert(http.read_all(a, 5000)))
            results.waited = core.clock_ms() - t0
            http.close(a)
            http.close(b)
            srv:close()
            raft.stop()
        end)
        local deadline = raft.after(10000, function() core.fail("deadline") end)
        local ok, err = raft.run()
        deadline:stop()
        assert(ok, err)
        assert.are.equal(500, results.failing.status)
        assert.matches("render failed", results.failing.body)
        assert.are.equal(200, results.good.status)
        assert.are.equal("x_total 1\n", results.good.body:match("x_total 1\n$"))
        assert.are.equal(503, results.third.status)
        assert.are.equal(408, results.silent.status)
        assert(results.waited < 2000, results.waited)
    end)

    it("answers every mutated request with a status or a close, and keeps serving (seeded)",
       function()
        local seed = tonumber(os.getenv("HELIOS_SEED") or "") or 20261201
        local rng = require("spec.helpers.prng").new(seed)
        local srv = assert(core.metrics_listen("127.0.0.1:0", function()
            return "# HELP x_total x\n# TYPE x_total counter\nx_total 1\n"
        end, { timeout_ms = 100, max_request = 512 }))
        local addr = srv:address()
        local base = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
        local statuses, problem = {}, nil
        raft.spawn(function()
            for i = 1, 150 do
                local b = { base:byte(1, -1) }
                for _ = 1, rng:int(1, 4) do
                    local op, at = rng:int(1, 3), rng:int(1, #b)
                    if op == 1 then b[at] = rng:int(0, 255)
                    elseif op == 2 then table.remove(b, at)
                    else table.insert(b, at, rng:int(0, 255)) end
                end
                local req = string.char(unpack(b))
                local raw, err = http.exchange(addr, req, 3000)
                local okp, res = pcall(http.parse_response, raw or "")
                if raw and raw ~= "" and not okp then
                    problem = format("request %d %q: unparsable answer %q", i, req, raw)
                    break
                end
                if not raw and err and not err:find("errno 104") then
                    problem = format("request %d %q: %s", i, req, err)
                    break
                end
                local st = okp and res.status or "closed"
                statuses[st] = (statuses[st] or 0) + 1
            end
            -- Still serving.
            local res = http.parse_response(assert(http.get(addr, "/metrics")))
            if res.status ~= 200 then problem = "not serving after the mutations" end
            srv:close()
            raft.stop()
        end)
        local deadline = raft.after(60000, function() core.fail("deadline") end)
        local ok, err = raft.run()
        deadline:stop()
        assert(ok, err)
        assert(problem == nil, format("seed %d: %s", seed, tostring(problem)))
        for st in each(statuses) do
            local known = { [200] = 1, [400] = 1, [404] = 1, [405] = 1, [408] = 1, [505] = 1,
                            closed = 1 }
            assert(known[st],
                   format("seed %d: status %s", seed, tostring(st)))
        end
        assert(statuses[400] and statuses[400] > 10, format("seed %d", seed))
        if os.getenv("HELIOS_VERBOSE") then for k, n in each(statuses) do print(k, n) end end
    end)

    it("refuses a bad address and options", function()
        local srv, code = core.metrics_listen("nowhere", function() return "" end)
        assert.is_nil(srv)
        assert.are.equal("invalid", code)
        assert.has_error(function()
            core.metrics_listen("127.0.0.1:0", function() return "" end, { max_request = 0 })
        end)
        local ok, e = pcall(raft.new, { id = "a", peers = { a = "127.0.0.1:1" },
                                         data_dir = "/tmp/x", fsm = kv.new(), secret = "s",
                                         metrics_listen = "bad" })
        assert.is_false(ok)
        assert.matches("metrics_listen: address", e)
    end)
end)

describe("helios cluster", function()
    local su = require("spec.helpers.storage_util")
    local dir
    before_each(function() dir = su.tmpdir() end)
    after_each(function() su.rmdir(dir) end)

    it("turns the endpoint on for every node and prints the URLs, which curl scrapes", function()
        local p = assert(io.popen(("%s timeout -s INT 60 bin/helios cluster --nodes 3 --data %s "
            .. "--base-port 0 --run-for 3 2>&1; echo \"exit=$?\""):format(su.child_env(),
            shell.quote(dir .. "/data"))))
        local urls, scraped, lines = {}, {}, {}
        for line in p:lines() do
            lines[#lines + 1] = line
            local id, url = line:match("metrics of (node%-%d): (http://127%.0%.0%.1:%d+/metrics)")
            if id then urls[id] = url end
            if line:find("running for 3 s", 1, true) then
                -- Every node is up: scrape each with curl (the loop of this process is idle).
                for nid, u in each(urls) do
                    -- (Without the sanitizer's preload of `make test-asan`: curl hangs in it.)
                    local c = assert(io.popen("env -u LD_PRELOAD curl -sS -i --max-time 5 "
                                              .. shell.quote(u)))
                    scraped[nid] = c:read("*a")
                    c:close()
                end
            end
        end
        p:close()
        local out = table.concat(lines, "\n")
        assert.matches("exit=0", out)
        for i = 1, 3 do
            local id = "node-" .. i
            assert(urls[id], "no URL for " .. id .. ":\n" .. out)
            local res = http.parse_response(scraped[id] or "")
            assert.are.equal(200, res.status)
            local fams = http.parse_prometheus(res.body)
            assert.are.equal(1, http.value(fams, "helios_node_info", { id = id }))
            local ok, pout = promtool_check(res.body)
            assert(ok, pout)
        end
        local conf = assert(require("helios.clusterfile").load(dir .. "/data/cluster.lua"))
        assert.are.equal(urls["node-2"], "http://" .. conf.metrics_listen["node-2"] .. "/metrics")
    end)
end)

describe("the cluster file's metrics_listen", function()
    local cf = require("helios.clusterfile")
    local function check(extra)
        local conf = { nodes = { a = "127.0.0.1:9001" }, secret = "s" }
        for k, v in each(extra) do conf[k] = v end
        return cf.check(conf, "c.lua")
    end
    it("is a table of id = address (port 0 allowed), handed to raft.new of that node", function()
        local conf = assert(check({ metrics_listen = { a = "127.0.0.1:0" } }))
        assert.are.equal("127.0.0.1:0", assert(cf.node_options(conf, "a")).metrics_listen)
        local _, err = check({ metrics_listen = "127.0.0.1:9100" })
        assert.matches("c.lua: metrics_listen: must be a table", err)
        _, err = check({ metrics_listen = { a = "nowhere" } })
        assert.matches("metrics_listen%[\"a\"%]: address", err)
        local conf2 = assert(check({}))
        assert.is_nil(cf.node_options(conf2, "a").metrics_listen)
    end)
end)
