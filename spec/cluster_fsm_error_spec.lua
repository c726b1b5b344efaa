-- cluster_fsm_error_spec.lua: FSM errors in a real cluster of `helios node` processes
-- (helios.testing) over spec.helpers.faulty_fsm: a raising apply is answered fsm_error
-- through the control socket and helios.client, no node exits, the replicas stay
-- identical (their snapshots at the same index hold the same FSM bytes) and later commands
-- apply; a result no client can receive is fsm_error, applied once; on_fsm_error = "stop"
-- makes the node exit (status 3) naming the entry, and a restart exits again saying which
-- entry and what to do.
--
-- Every wait has a deadline; a failing spec shows the nodes' logs, and every cluster is
-- stopped (processes, proxies, temp dir) also when it fails.

local testing = require("helios.testing")
local client = require("helios.client")
local clusterfile = require("helios.clusterfile")
local core = require("helios.core")
local cli = require("helios.cli")

local format = string.format
local FSM = "spec.helpers.faulty_fsm"

local function read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

-- Wait for node id's process to exit; returns how and the status.
local function wait_exit(cl, id, ms)
    local pid = cl:pid(id)
    local how, what
    cl:wait(function()
        how, what = core.proc_wait(pid, 0)
        return how ~= nil and how ~= "timeout"
    end, ms, id .. " to exit")
    cl._procs[id] = nil -- reaped here: the cluster must not wait for it again
    return how, what
end

describe("FSM errors in a cluster of processes", function()
    it("answers a raising apply with fsm_error; every replica goes on, identical", function()
        testing.with_cluster({ n = 3, fsm = FSM }, function(cl)
            cl:leader(10000)
            local cc = cl:client()
            assert(cc:apply("set a 1", 10000))

            local index, code, detail = cc:apply("boom x", 10000)

            assert.is_nil(index)
            assert.are.equal("fsm_error", code)
            local at, term = detail:match("^fsm apply at index (%d+) %(term (%d+)%) failed: ")
            assert.is_string(at, detail)
            assert.matches("boom at x", detail, 1, true)
            -- later commands apply and see what the raising one changed
            local i2, _, v = cc:apply("incr x", 10000)
            assert(i2, v)
            assert.are.equal(tonumber(at) + 1, i2)
            assert.are.equal(2, v)
            cl:wait_applied(i2, 10000)
            for _, id in ipairs(cl:ids()) do
                assert.is_true(cl:running(id), id .. " exited")
                local c = assert(client.connect(cl:socket(id), 2000))
                local st = assert(c:stats(2000))
                assert.are.equal(1, st.fsm_errors, id)
                -- identical replicas: a snapshot of each at the same index, the same bytes
                assert(c:call("snapshot", nil, 2000))
                c:close()
            end
            local want
            for _, id in ipairs(cl:ids()) do
                local path
                cl:wait(function()
                    local p = io.popen(format("ls '%s/snapshots/' 2>/dev/null",
                                              cl:data_dir(id)))
                    for name in p:lines() do
                        -- <index>-<term>.snap, zero-padded (docs/storage-format.md)
                        local si = name:match("^(%d+)%-%d+%.snap$")
                        if si and tonumber(si) == i2 then path = name end
                    end
                    p:close()
                    return path
                end, 10000, id .. "'s snapshot")
                local bytes = read(cl:data_dir(id) .. "/snapshots/" .. path)
                -- The FSM's bytes: the header (version 2) holds the configuration with the
                -- addresses as each node knows them (here the proxies of its own links),
                -- which may differ (docs/storage-format.md, "Snapshot file").
                assert.are.equal(2, bytes:byte(5) + 256 * bytes:byte(6), "snapshot format")
                local c = bytes:byte(25) + 256 * bytes:byte(26) + 65536 * bytes:byte(27)
                local payload = bytes:sub(48 + c + 1, #bytes - 20)
                assert.matches("x", payload, 1, true) -- the FSM's state, not the frame
                want = want or payload
                assert.are.equal(want, payload, id .. "'s state differs")
            end
            -- logged once per node, in its log
            for _, id in ipairs(cl:ids()) do
                local log = read(cl:log_path(id))
                local _, n = log:gsub(format("fsm apply at index %s %%(term %s%%) failed", at,
                                             term), "")
                assert.are.equal(1, n, id .. ":\n" .. log)
            end
        end)
    end)

    it("answers a result no client can receive with fsm_error, applied once", function()
        testing.with_cluster({ n = 3, fsm = FSM }, function(cl)
            cl:leader(10000)
            local cc = cl:client()
            local index, code, detail = cc:apply("fn y", 10000)
            assert.is_nil(index)
            assert.are.equal("fsm_error", code)
            assert.matches("^fsm apply at index %d+ %(term %d+%) failed: its result cannot "
                           .. "be sent to a client", detail)
            local i, _, v = cc:apply("incr y", 10000)
            assert(i, v)
            assert.are.equal(2, v)            -- the fn command applied exactly once
        end)
    end)

    it("stops the node with on_fsm_error = \"stop\"; a restart names the entry again",
       function()
        testing.with_cluster({ n = 1, fsm = FSM, config = { on_fsm_error = "stop" } },
                             function(cl)
            local id = cl:leader(10000)
            local cc = cl:client()
            assert(cc:apply("set a 1", 10000))
            local index, code, detail = cc:apply("boom x", 10000)
            assert.is_nil(index)
            assert.are.equal("fsm_error", code)
            local where = detail:match("^fsm apply at index %d+ %(term %d+%)")
            assert.is_string(where, detail)

            local how, status = wait_exit(cl, id, 10000)
            assert.are.same({ "exited", cli.EXIT_FSM_STOPPED }, { how, status })
            local log = read(cl:log_path(id))
            assert.matches("helios node: " .. where, log, 1, true)
            assert.matches("on_fsm_error = \"stop\": node-1 stopped at this entry", log, 1, true)

            -- The restart replays the entry and exits again, saying which and what to do.
            local before = #log
            cl:start(id)
            how, status = wait_exit(cl, id, 10000)
            assert.are.same({ "exited", cli.EXIT_FSM_STOPPED }, { how, status })
            local again = read(cl:log_path(id)):sub(before + 1)
            assert.matches("helios node: " .. where, again, 1, true)
            assert.matches("fix the FSM's apply, or set on_fsm_error = \"continue\"", again,
                           1, true)

            -- Doing what it says: with "continue" the node starts and goes past the entry.
            local file = cl:config_path(id)
            local conf = assert(clusterfile.load(file))
            conf.on_fsm_error = "continue"
            assert(clusterfile.write(file, conf))
            cl:start(id)
            cl:leader(10000)
            local i, _, v = cl:client():apply("incr x", 10000)
            assert(i, v)
            assert.are.equal(2, v)
        end)
    end)

    it("stops the leader of three with on_fsm_error = \"stop\"", function()
        testing.with_cluster({ n = 3, fsm = FSM, config = { on_fsm_error = "stop" } },
                             function(cl)
            local leader = cl:leader(10000)
            local cc = cl:client()
            local index, code, detail = cc:apply("boom x", 10000)
            assert.is_nil(index)
            assert.are.equal("fsm_error", code, tostring(detail))
            local how, status = wait_exit(cl, leader, 10000)
            assert.are.same({ "exited", cli.EXIT_FSM_STOPPED }, { how, status })
            assert.matches("on_fsm_error = \"stop\": " .. leader .. " stopped at this entry",
                           read(cl:log_path(leader)), 1, true)
        end)
    end)
end)
