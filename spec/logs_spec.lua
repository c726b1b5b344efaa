-- logs_spec.lua: the structured lines of helios.nodelog (docs/logging.md): the text and
-- JSON forms of a line (JSON checked with a strict decoder), levels, what a node's events
-- become (role, term, leader changes; commits at most once a second; classified messages;
-- repeats summarized), the log options of the cluster file, and a real `helios node` that
-- reopens its log file on SIGHUP.

local nodelog = require("helios.nodelog")
local json = require("spec.helpers.json_strict")
local clusterfile = require("helios.clusterfile")
local su = require("spec.helpers.storage_util")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

-- A logger writing into a list, on a fake clock, with a fixed term and role.
local function fixture(opts)
    local fx = { lines = {}, now = 0, term = 3, role = "leader" }
    local o = { node_id = "node-1", write = function(l) fx.lines[#fx.lines + 1] = l end,
                now = function() return fx.now end,
                wall = function() return 1764567600123 + fx.now end,
                state = function() return fx.term, fx.role end, repeat_ms = 10000 }
    for k, v in each(opts or {}) do o[k] = v end
    fx.logger = assert(nodelog.logger(o))
    return fx
end

-- A fake node: the events observe() subscribes to, fired by hand.
local function fake_node()
    local n = { handlers = {} }
    function n:on(ev, fn)
        self.handlers[ev] = self.handlers[ev] or {}
        table.insert(self.handlers[ev], fn)
    end
    function n:fire(ev, ...)
        for _, fn in ipairs(self.handlers[ev] or {}) do fn(...) end
    end
    return n
end

local function decode_all(lines)
    local out = {}
    for i, l in ipairs(lines) do
        local ok, v = pcall(json.decode, l)
        assert(ok, ("line %d is not JSON: %s\n%s"):format(i, tostring(v), l))
        out[i] = v
    end
    return out
end

local function find_event(recs, name, pred)
    for _, r in ipairs(recs) do
        if r.event == name and (not pred or pred(r)) then return r end
    end
    return nil
end

describe("the strict JSON decoder of these specs", function()
    it("refuses what is not JSON", function()
        for _, bad in ipairs({ '{"a":1,}', "{'a':1}", '{"a":"x\ny"}', '{"a":01}', '[1,]',
                               '{"a":1}{', '"\\x"', '{"a":1,"a":2}', '"\255"', 'nul',
                               '{"a":.5}', '"\\ud800"' }) do
            assert.has_error(function() json.decode(bad) end, nil, bad)
        end
        assert.are.same({ a = { 1, 2.5, n = 2 }, b = "é\n" },
                        json.decode('{"a":[1,2.5],"b":"\\u00e9\\n"}'))
    end)
end)

describe("helios.nodelog lines", function()
    it("writes a text line: time, level, node, term, role, event, message, fields", function()
        local fx = fixture()
        fx.logger:log("info", "role_change", "candidate -> leader in term 3",
                      { from = "candidate", to = "leader" })
        fx.logger:log("warn", "peer_refused", "a \"quoted\" reason\nand a second line",
                      { peer = "node-3", reason = "wrong secret (maybe)" })
        assert.are.equal(2, #fx.lines)
        assert.are.equal("2025-12-01T05:40:00.123Z INFO  node-1 term=3 leader role_change: "
            .. "candidate -> leader in term 3 from=candidate to=leader", fx.lines[1])
        -- one line per event: the newline is escaped; values with spaces are quoted
        assert.are.equal("2025-12-01T05:40:00.123Z WARN  node-1 term=3 leader peer_refused: "
            .. "a \"quoted\" reason\\nand a second line peer=node-3 "
            .. "reason=\"wrong secret (maybe)\"", fx.lines[2])
    end)

    it("writes a JSON line: one object, valid JSON, strings escaped", function()
        local fx = fixture{ format = "json" }
        local nasty = "quote \" backslash \\ tab \t newline \n bell \7 bad \255 é"
        fx.logger:log("error", "storage_error", nasty, { code = "io", index = 42,
            ratio = 0.5, list = { "a", "b" }, empty = {}, ok = true, term = 9 })
        assert.are.equal(1, #fx.lines)
        assert.is_nil(fx.lines[1]:find("\n", 1, true))
        local r = json.decode(fx.lines[1])
        assert.matches(TIME, r.time)
        assert.are.equal("2025-12-01T05:40:00.123Z", r.time)
        assert.are.same({ "error", "node-1", 3, "leader", "storage_error" },
                        { r.level, r.node, r.term, r.role, r.event })
        -- the message survives the round trip but for the invalid byte (U+FFFD)
        assert.are.equal(nasty:gsub("\255", "\239\191\189"), r.msg)
        assert.are.same({ "io", 42, 0.5, true }, { r.code, r.index, r.ratio, r.ok })
        assert.are.same({ "a", "b", n = 2 }, r.list)
        assert.are.same({ n = 0 }, r.empty)
        -- a field named like a fixed key does not overwrite it
        assert.are.equal(9, r.field_term)
    end)

    it("filters by level", function()
        for _, case in ipairs({ { "debug", 4 }, { "info", 3 }, { "warn", 2 }, { "error", 1 } }) do
            local fx = fixture{ level = case[1], format = "json" }
            for _, lvl in ipairs({ "debug", "info", "warn", "error" }) do
                fx.logger:log(lvl, "e_" .. lvl, "a " .. lvl .. " line")
            end
            assert.are.equal(case[2], #fx.lines, case[1])
            local recs = decode_all(fx.lines)
            assert.are.equal("error", recs[#recs].level)
            assert.are.equal(case[1], recs[1].level)
        end
        assert.is_nil((nodelog.logger{ level = "loud" }))
        assert.matches("log_level: must be", select(2, nodelog.logger{ level = "loud" }))
        assert.matches("log_format: must be", select(2, nodelog.logger{ format = "xml" }))
    end)

    it("summarizes repeats as lines with the count in their fields", function()
        local fx = fixture{ format = "json", repeat_ms = 2000 }
        local refused = "transport: from node-3 (127.0.0.1:%d): handshake refused: "
            .. "authentication failed (wrong cluster secret?)"
        local node = fake_node()
        local obs = nodelog.observe(node, fx.logger, { now = function() return fx.now end })
        for i = 1, 30 do
            node:fire("log", 1, refused:format(40000 + i))
            fx.now = fx.now + 100
            obs.flush()
        end
        obs.close()
        local recs = decode_all(fx.lines)
        local refusals = {}
        for _, r in ipairs(recs) do
            if r.event == "peer_refused" then refusals[#refusals + 1] = r end
        end
        -- the first at once, then one summary per 2 s window (the last at close)
        assert.are.equal(3, #refusals, table.concat(fx.lines, "\n"))
        assert.are.same({ "warn", "node-3", "127.0.0.1:40001", "in" },
                        { refusals[1].level, refusals[1].peer, refusals[1].addr,
                          refusals[1].direction })
        assert.are.equal("authentication failed (wrong cluster secret?)", refusals[1].reason)
        assert.are.equal(19, refusals[2].repeats)
        assert.are.equal(2, refusals[2].window_s)
        assert.matches("%[19 more in the last 2 s%]$", refusals[2].msg)
        assert.are.equal(10, refusals[3].repeats)
    end)
end)

describe("helios.nodelog.observe", function()
    it("logs role, term and leader changes from the node's state and leader events", function()
        local fx = fixture{ format = "json" }
        fx.logger.state = nil -- observe() keeps the term and role itself
        local node = fake_node()
        nodelog.observe(node, fx.logger, { now = function() return fx.now end })
        node:fire("state", "follower", 0)
        node:fire("state", "candidate", 1)
        node:fire("state", "leader", 1)
        node:fire("leader", "node-1", 1)
        node:fire("state", "follower", 2)
        node:fire("leader", "node-2", 2)
        node:fire("leader", nil, 2)
        local recs = decode_all(fx.lines)
        local function events(name)
            local list = {}
            for _, r in ipairs(recs) do
                if r.event == name then list[#list + 1] = r end
            end
            return list
        end
        local roles = events("role_change")
        assert.are.same({ "none", "follower", "candidate", "leader" },
                        { roles[1].from, roles[2].from, roles[3].from, roles[4].from })
        assert.are.same({ "follower", "candidate", "leader", "follower" },
                        { roles[1].to, roles[2].to, roles[3].to, roles[4].to })
        -- each line carries the term and role after the change
        assert.are.same({ 2, "follower" }, { roles[4].term, roles[4].role })
        local terms = events("term_change")
        assert.are.equal(2, #terms)
        assert.are.same({ 0, 1, 1, 2 }, { terms[1].from, terms[1].to, terms[2].from, terms[2].to })
        local leaders = events("leader_change")
        assert.are.equal(3, #leaders)
        assert.are.same({ "node-1", "node-2" }, { leaders[1].leader, leaders[2].leader })
        assert.are.equal("node-1", leaders[2].previous)
        assert.are.equal("warn", leaders[3].level)
        assert.is_nil(leaders[3].leader)
    end)

    it("summarizes commits at most once a second", function()
        local fx = fixture{ format = "json" }
        local node = fake_node()
        local obs = nodelog.observe(node, fx.logger, { now = function() return fx.now end })
        -- a lone commit in a quiet cluster shows at once
        node:fire("apply", 1, 1, "x")
        -- then 250 commits in 2.5 s, flushed every 50 ms
        for i = 2, 251 do
            fx.now = fx.now + 10
            node:fire("apply", i, 1, "x")
            if i % 5 == 0 then obs.flush() end
        end
        obs.close()
        local recs = decode_all(fx.lines)
        local commits, covered, last_t = {}, 0, nil
        for _, r in ipairs(recs) do
            if r.event == "commits" then
                commits[#commits + 1] = r
                covered = covered + r.entries
                assert.are.equal(r.last - r.first + 1, r.entries)
            end
        end
        assert.are.equal(251, covered)
        assert.are.same({ 1, 1 }, { commits[1].first, commits[1].last })
        -- 1 at once, then one per second over 2.5 s, then the rest at close
        assert.is_true(#commits <= 4, #commits .. " commit lines")
        for i = 2, #commits - 1 do
            local t = commits[i].time
            assert.is_true(last_t == nil or t > last_t)
            last_t = t
        end
    end)

    it("classifies the node's messages: refusals, snapshots transfers, storage errors", function()
        local fx = fixture{ format = "json", level = "debug" }
        local node = fake_node()
        local obs = nodelog.observe(node, fx.logger, { now = function() return fx.now end })
        node:fire("log", 1, "transport: to node-2 (127.0.0.1:9002): handshake refused by the "
            .. "peer: cluster id mismatch: dialer in 'a', listener in 'b'")
        node:fire("log", 0, "snapshot: sending index 120 (term 2, 4096 bytes) to node-4")
        node:fire("log", 0, "snapshot: sent index 120 (term 2, 4096 bytes) to node-4")
        node:fire("log", 0, "snapshot: received index 120 (term 2, 4096 bytes) from node-1")
        node:fire("log", 0, "transport: connected to node-2 (127.0.0.1:9002)")
        node:fire("log", 0, "snapshot of index 7 taken", "snapshot_taken", { index = 7 })
        node:fire("error", "no_space", "storage: segment 3: No space left on device")
        node:fire("error", nil, "storage: recovered")
        obs.close()
        local recs = decode_all(fx.lines)
        local r = find_event(recs, "peer_refused")
        assert.are.same({ "node-2", "127.0.0.1:9002", "out" }, { r.peer, r.addr, r.direction })
        assert.are.equal("cluster id mismatch: dialer in 'a', listener in 'b'", r.reason)
        for _, name in ipairs({ "install_snapshot_started", "install_snapshot_sent" }) do
            r = find_event(recs, name)
            assert.are.same({ 120, 2, 4096, "node-4" }, { r.index, r.snapshot_term, r.bytes,
                                                          r.peer }, name)
        end
        r = find_event(recs, "install_snapshot_received")
        assert.are.same({ 120, "node-1" }, { r.index, r.leader })
        assert.are.equal("debug", find_event(recs, "peer_connected").level)
        assert.are.equal(7, find_event(recs, "snapshot_taken").index)
        r = find_event(recs, "storage_error")
        assert.are.same({ "error", "no_space" }, { r.level, r.code })
        assert.is_table(find_event(recs, "storage_recovered"))
    end)
end)

describe("the log options of a cluster file", function()
    local dir
    before_each(function() dir = su.tmpdir() end)
    after_each(function() su.rmdir(dir) end)

    local function load(extra)
        local conf = { nodes = { ["node-1"] = "127.0.0.1:9001" }, secret = "s" }
        for k, v in each(extra) do conf[k] = v end
        local path = dir .. "/cluster.lua"
        assert(clusterfile.write(path, conf))
        return clusterfile.load(path)
    end

    it("checks them and gives each node its own file", function()
        local conf = assert(load{ log_level = "debug", log_format = "json",
                                  log_file = "logs/{id}.log" })
        assert.are.same({ level = "debug", format = "json", file = dir .. "/logs/node-1.log" },
                        clusterfile.node_log(conf, "node-1"))
        -- not options of raft.new
        local opts = assert(clusterfile.node_options(conf, "node-1"))
        assert.is_nil(opts.log_level)
        assert.is_nil(opts.log_file)
        local _, msg = load{ log_level = "verbose" }
        assert.matches("cluster%.lua: log_level: must be \"debug\", \"info\", \"warn\" or "
            .. "\"error\" %(got \"verbose\"", msg)
        _, msg = load{ log_format = "xml" }
        assert.matches("log_format: must be \"text\" or \"json\"", msg)
        assert.are.same({ level = "info", format = "text" },
                        clusterfile.node_log(assert(load{}), "node-1"))
    end)
end)

describe("helios node and SIGHUP", function()
    it("reopens its log file: after a rename, new lines go to a new file at the path", function()
        local testing = require("helios.testing")
        local cl = testing.cluster{ n = 1, proxies = false,
                                    config = { log_file = "./{id}-events.log",
                                               log_format = "json" } }
        finally(function() cl:stop() end)
        local path = cl:dir() .. "/node-1-events.log"
        local function has(file, event)
            local f = io.open(file, "rb")
            if not f then return nil end
            local text = f:read("*a")
            f:close()
            for l in text:gmatch("[^\n]+") do
                local r = json.decode(l)
                if r.event == event then return r end
            end
            return nil
        end
        cl:leader(15000)
        cl:wait(function() return has(path, "leader_change") end, 10000, "a leader_change line")
        assert(os.rename(path, path .. ".1"))
        require("helios.core").proc_kill(cl:pid("node-1"), "HUP")
        cl:wait(function() return has(path, "log_reopened") end, 10000,
                "the log_reopened line in a new file at " .. path)
        -- the node lives on and logs its commits in the new file only
        assert(cl:client():apply("SET after hup", 5000))
        cl:wait(function() return has(path, "commits") end, 10000, "commits in the new file")
        assert.is_true(cl:running("node-1"))
        assert.is_nil(has(path .. ".1", "log_reopened"))
        assert.is_nil(has(path, "node_started"))
        assert.is_table(has(path .. ".1", "node_started"))
        -- every line of both files is a JSON object of the node
        for _, file in ipairs({ path, path .. ".1" }) do
            for l in su.read_file(file):gmatch("[^\n]+") do
                assert.are.equal("node-1", json.decode(l).node)
            end
        end
    end)
end)
