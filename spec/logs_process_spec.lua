-- logs_process_spec.lua: the JSON logs of real `helios node` processes (docs/logging.md).
-- A 3-node cluster takes a snapshot, gets a fourth node (which needs the snapshot: the
-- leader keeps no log before it) and hands its leadership over: each node's log file must
-- hold the events of that, with their fields, and every line must be strict JSON with the
-- fixed keys.

local testing = require("helios.testing")
local json = require("spec.helpers.json_strict")

local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"
local LEVELS = { debug = true, info = true, warn = true, error = true }
local ROLES = { follower = true, precandidate = true, candidate = true, leader = true,
                ["-"] = true }

-- The decoded lines of node id's log file (strictly checked), in order.
local function events(cl, id)
    local f = io.open(cl:dir() .. "/" .. id .. "-events.log", "rb")
    if not f then return {} end
    local text = f:read("*a")
    f:close()
    local out = {}
    -- a line being written may be cut: only whole lines
    for l in text:gmatch("([^\n]*)\n") do
        local ok, r = pcall(json.decode, l)
        assert(ok, ("%s: not JSON (%s): %s"):format(id, tostring(r), l))
        assert.matches(TIME, r.time)
        assert.is_true(LEVELS[r.level], l)
        assert.are.equal(id, r.node, l)
        assert.are.equal("number", type(r.term), l)
        assert.is_true(ROLES[r.role], l)
        assert.are.equal("string", type(r.event), l)
        assert.are.equal("string", type(r.msg), l)
        out[#out + 1] = r
    end
    return out
end

-- ms since midnight of an RFC 3339 time of these lines
local function ms_of_day(time)
    local h, m, s, ms = time:match("T(%d%d):(%d%d):(%d%d)%.(%d%d%d)Z$")
    return ((tonumber(h) * 60 + tonumber(m)) * 60 + tonumber(s)) * 1000 + tonumber(ms)
end

local function find(list, name, pred)
    for _, r in ipairs(list) do
        if r.event == name and (not pred or pred(r)) then return r end
    end
    return nil
end

local function has(list, value)
    for _, x in ipairs(list or {}) do
        if x == value then return true end
    end
    return false
end

describe("helios node JSON logs", function()
    it("log a snapshot, InstallSnapshot, a membership change and a leader change", function()
        local cl = testing.cluster{ n = 3, config = {
            log_format = "json", log_file = "./{id}-events.log", trailing_logs = 0,
            snapshot_threshold = 1000000 } }
        finally(function() cl:stop() end)
        -- wait for an event in a node's log; returns the record
        local function wait_event(id, name, pred, what)
            return cl:wait(function() return find(events(cl, id), name, pred) end, 20000,
                           ("%s: %s"):format(id, what or name))
        end

        local l1 = cl:leader(15000)
        for i = 1, 5 do assert(cl:client():apply("SET k" .. i .. " v" .. i, 5000)) end

        -- a snapshot on the leader (the control socket's "snapshot": node:snapshot())
        local r = assert(assert(cl:client():node(l1)):call("snapshot", nil, 5000))
        local snap = wait_event(l1, "snapshot_taken", function(e) return e.index == r.index end)
        assert.are.equal("info", snap.level)
        assert.is_true(snap.bytes > 0)
        assert.are.equal("number", type(snap.snapshot_term))

        -- a fourth node joins: the leader has no log before its snapshot, so it sends that
        local n4, addr = cl:add_node()
        cl:start(n4)
        assert(cl:client():add_peer(n4, addr, { timeout_ms = 15000 }))
        local sent = wait_event(l1, "install_snapshot_sent", function(e) return e.peer == n4 end)
        assert.is_true(sent.index >= r.index)
        assert.is_true(sent.bytes > 0)
        local got = wait_event(n4, "install_snapshot_received",
                               function(e) return e.index == sent.index end)
        assert.are.same({ l1, sent.bytes }, { got.leader, got.bytes })
        wait_event(n4, "snapshot_installed", function(e) return e.index == sent.index end)
        for _, id in ipairs({ "node-1", "node-2", "node-3" }) do
            local m = wait_event(id, "membership_change",
                                 function(e) return has(e.added, n4) end, "node-4 added")
            assert.are.equal("number", type(m.index))
            assert.is_true(has(m.voters, id))
            -- a learner first, promoted once caught up; a node that sees both entries
            -- before it applies the first logs one change (the configuration then in use)
            wait_event(id, "membership_change", function(e)
                return has(e.voters, n4) and (has(e.promoted, n4) or has(e.added, n4))
            end, "node-4 a voter")
        end

        -- a leader change: the leadership goes to another of the first three
        local term0 = assert(cl:status(l1)).term
        local target = l1 == "node-1" and "node-2" or "node-1"
        assert.are.equal(target, (cl:client():transfer(target, 10000)))
        wait_event(l1, "role_change", function(e)
            return e.from == "leader" and e.to == "follower" and e.term > term0
        end, "stepped down")
        local up = wait_event(target, "role_change", function(e) return e.to == "leader" end,
                              "became leader")
        assert.are.equal("leader", up.role)
        assert.is_true(up.term > term0)
        wait_event(target, "term_change", function(e) return e.to == up.term end)
        for _, id in ipairs({ "node-1", "node-2", "node-3", n4 }) do
            if id ~= target then
                local lc = wait_event(id, "leader_change", function(e)
                    return e.leader == target and e.term == up.term
                end, "learned the new leader")
                assert.are.equal("follower", lc.role)
            end
        end
        -- a command after the change: every node logs it in a commits line (a node that
        -- got the snapshot applied no command before, and config entries are not commits)
        local idx = assert(cl:client():apply("SET after transfer", 5000))
        for _, id in ipairs({ "node-1", "node-2", "node-3", n4 }) do
            local c = wait_event(id, "commits", function(e) return e.last >= idx end,
                                 "a commits line through " .. idx)
            assert.are.equal(c.last - c.first + 1, c.entries)
            assert.are.equal("info", c.level)
        end
        -- at most one commits line a second (the clocks differ: the line's is the wall
        -- clock, the summary's the monotonic one; 50 ms of slack)
        for _, id in ipairs({ "node-1", "node-2", "node-3", n4 }) do
            local prev
            for _, e in ipairs(events(cl, id)) do
                if e.event == "commits" then
                    local t = ms_of_day(e.time)
                    if prev then
                        local gap = (t - prev) % 86400000
                        assert.is_true(gap >= 950, ("%s: commits lines %d ms apart"):format(id,
                                                                                        gap))
                    end
                    prev = t
                end
            end
        end
    end)
end)
