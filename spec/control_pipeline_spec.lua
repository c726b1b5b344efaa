-- control_pipeline_spec.lua: pipelined requests on the control socket (helios.client's
-- c:pipeline and c:apply_many). A node of this process (one voter, spec.helpers.faulty_fsm)
-- serves its control socket on the loop the client's coroutine yields to. What must hold
-- however the node batches the work (the requests of one read proposed together, the
-- committed entries of a batch applied together, the answers of a loop turn written
-- together):
--   - each request gets its own answer, in request order, and the commands of one
--     pipeline take consecutive entries in that order;
--   - a command whose fsm:apply raises is answered fsm_error alone: the commands around
--     it in the same batch are applied and answered as usual, and see what it changed;
--   - a malformed or unknown request in a pipeline fails alone;
--   - reads of one turn, served by one node:read, each get their own key's value and see
--     every write acknowledged before they were sent;
--   - answers far larger than the socket's buffer (the kernel takes part of the turn's
--     bytes at once, the rest is queued) all arrive whole, in order.
-- Every wait has a deadline (the loop is stopped by a guard timer); nothing sleeps.

local raft = require("helios.raft")
local client = require("helios.client")
local core = require("helios.core")
local faulty = require("spec.helpers.faulty_fsm")

local format = string.format

local nh = require("spec.helpers.node")
local tmpdir = nh.tmpdir

-- Start a one-voter node with a control socket in dir, run body(c) in a coroutine on the
-- loop with a client connected to the leader's socket, then shut the node down.
local function with_node(dir, body)
    local port = assert(core.free_port())
    local addr = "127.0.0.1:" .. port
    local sock = dir .. "/control.sock"
    local node = raft.new{ id = "node-1", listen = addr, peers = { ["node-1"] = addr },
                           data_dir = dir .. "/node-1", fsm = faulty.new(), secret = "s",
                           control = sock, election_timeout_ms = 150,
                           heartbeat_timeout_ms = 30 }
    assert(node:start())
    local failure, finished
    local guard = raft.after(30000, function()
        failure = failure or "the scenario did not finish within 30 s"
        raft.stop()
    end)
    raft.spawn(function()
        local ok, err = xpcall(function()
            local cc = client.cluster({ ["node-1"] = sock })
            assert.are.equal("node-1", cc:leader(10000))
            cc:close()
            local c = assert(client.connect(sock, 5000))
            body(c)
            c:close()
        end, debug.traceback)
        if not ok then failure = err end
        finished = true
        node:shutdown()
    end)
    local ok, err = raft.run()
    guard:stop()
    assert(ok, err)
    assert(finished and not failure, failure)
end

describe("pipelined control requests", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() nh.rmrf(dir) end)

    it("answers every apply of a pipeline, in order, at consecutive entries", function()
        with_node(dir, function(c)
            local cmds = {}
            for i = 1, 300 do cmds[i] = "incr n" end
            local out, code, detail = c:apply_many(cmds, 10000)
            assert(out, format("apply_many: %s %s", tostring(code), tostring(detail)))
            assert.are.equal(300, #out)
            for i = 1, 300 do
                assert(out[i].ok, format("answer %d: %s %s", i, tostring(out[i].code),
                                         tostring(out[i].detail)))
                -- applied in request order: the i-th incr sees i - 1 before it
                assert.are.equal(i, out[i].result)
                assert.are.equal(out[1].index + i - 1, out[i].index)
            end
        end)
    end)

    it("answers a raising command fsm_error alone; its neighbours apply", function()
        with_node(dir, function(c)
            local cmds = {}
            for i = 1, 40 do cmds[i] = (i == 17 or i == 30) and "boom n" or "incr n" end
            local out = assert(c:apply_many(cmds, 10000))
            assert.are.equal(40, #out)
            for i = 1, 40 do
                if i == 17 or i == 30 then
                    assert.is_false(out[i].ok)
                    assert.are.equal("fsm_error", out[i].code)
                    assert.matches("boom at n", out[i].detail, 1, true)
                else
                    assert(out[i].ok, format("answer %d: %s %s", i, tostring(out[i].code),
                                             tostring(out[i].detail)))
                    -- every command before it incremented n, the raising ones included
                    assert.are.equal(i, out[i].result)
                end
            end
            -- and the node goes on
            local index, _, v = c:apply("incr n", 5000)
            assert(index, v)
            assert.are.equal(41, v)
        end)
    end)

    it("fails a malformed or unknown request alone", function()
        with_node(dir, function(c)
            -- (acknowledged first: a read in the same pipeline as a write may be served
            -- before that write commits, which is linearizable all the same)
            assert(c:apply("set a 1", 5000))
            local out = assert(c:pipeline({
                { op = "apply", cmd = "set b 2" },
                { op = "no_such_op" },
                { op = "apply", cmd = 42 },
                { op = "ping" },
                { op = "read", key = "a" },
            }, 10000))
            assert.are.equal(5, #out)
            assert.is_true(out[1].ok)
            assert.are.same({ false, "unknown_op" }, { out[2].ok, out[2].code })
            assert.are.same({ false, "bad_request" }, { out[3].ok, out[3].code })
            assert.is_true(out[4].ok)
            assert.are.same({ true, "1" }, { out[5].ok, out[5].value })
            assert.are.same({}, c:pipeline({}))
        end)
    end)

    it("answers each read of a pipeline with its own key's value, whatever its options", function()
        with_node(dir, function(c)
            local cmds = {}
            for i = 1, 50 do cmds[i] = format("set k%d v%d", i, i) end
            assert(c:apply_many(cmds, 10000))
            -- reads of one turn are served together, grouped by timeout: mix them
            local reqs = {}
            for i = 1, 60 do
                reqs[i] = { op = "read", key = "k" .. i,
                            timeout_ms = (i % 3 == 0) and 3000 or (i % 3 == 1) and 4000 or nil,
                            stale = (i % 7 == 0) or nil }
            end
            local out = assert(c:pipeline(reqs, 10000))
            for i = 1, 60 do
                assert(out[i].ok, format("read %d: %s %s", i, tostring(out[i].code),
                                         tostring(out[i].detail)))
                assert.are.equal(i <= 50 and ("v" .. i) or nil, out[i].value)
            end
            -- a write acknowledged before a read began is seen by it
            for round = 1, 5 do
                assert(c:apply("set fresh " .. round, 5000))
                local r = assert(c:pipeline({ { op = "read", key = "fresh" },
                                              { op = "read", key = "fresh", timeout_ms = 900 } }))
                assert.are.same({ tostring(round), tostring(round) }, { r[1].value, r[2].value })
            end
        end)
    end)

    it("delivers answers far larger than the socket buffer, whole and in order", function()
        with_node(dir, function(c)
            local big = {}
            for i = 1, 4 do
                big[i] = string.rep(string.char(64 + i), 300 * 1024 + i)
                assert(c:apply(format("set big%d %s", i, big[i]), 5000))
            end
            -- 24 answers of about 300 KB each in one turn: megabytes for a socket buffer
            -- of a few hundred KB, so most of it waits in a queued write.
            local reqs = {}
            for j = 1, 24 do reqs[j] = { op = "read", key = "big" .. ((j - 1) % 4 + 1) } end
            local out, code, detail = c:pipeline(reqs, 20000)
            assert(out, format("pipeline: %s %s", tostring(code), tostring(detail)))
            for j = 1, 24 do
                assert(out[j].ok, format("answer %d: %s", j, tostring(out[j].code)))
                assert(out[j].value == big[(j - 1) % 4 + 1], format("answer %d differs", j))
            end
            -- the connection is still in step: a plain call after it
            assert.is_true(c:ping(5000))
        end)
    end)
end)
