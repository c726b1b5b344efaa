-- spec/transport_node_spec.lua: a running node (helios.testing: real node processes on
-- loopback) against hostile peers on its transport port: a wrong secret, a wrong cluster
-- id, garbage bytes, malformed frames after a good handshake and a spoofed sender. Each is
-- refused, closes only its own connection and bumps a counter of node:stats()
-- (auth_failures, bad_frames), and the cluster keeps committing. The cluster has a fourth
-- node that never runs: the hostile peer that knows the secret poses as it, since a name
-- outside the cluster is refused at the handshake.

local testing = require("helios.testing")
local tk = require("helios.testkit")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local format = string.format

local SECRET = "transport-spec-secret"
local CLUSTER = "transport-spec"

local function stats(cl, id)
    local node = assert(cl:client():node(id))
    return assert(node:stats(2000))
end

local function commit(cl, key)
    local index, code, detail = cl:client():apply(format("set %s v", key), 10000)
    assert(index, format("apply %s: %s %s", key, tostring(code), tostring(detail)))
    return index
end

-- The connection was closed by the node: recv sees the end of the stream.
local function assert_closed(conn)
    for _ = 1, 50 do
        local data, code = conn:recv(4096, 200)
        if data == nil and code == "closed" then return end
        assert(data ~= nil or code == "timeout", "unexpected " .. tostring(code))
    end
    error("the node did not close the connection")
end

local function handshake(conn, opts)
    local o = { cluster_id = CLUSTER, node_name = "node-4", secret = SECRET,
                peer_name = "node-1" }
    for k, v in each(opts or {}) do o[k] = v end
    return tk.wire_handshake(conn, o)
end

describe("transport against hostile peers", function()
    local cl
    setup(function()
        cl = testing.cluster{ n = 4, secret = SECRET, cluster_id = CLUSTER, start = false }
        for i = 1, 3 do cl:start("node-" .. i) end
        cl:leader(15000)
    end)
    teardown(function()
        if cl then cl:stop() end
    end)

    it("refuses a peer with the wrong secret, counts it and stays healthy", function()
        local before = stats(cl, "node-1").auth_failures
        local conn = assert(tk.raw_connect(cl:address("node-1"), 2000))
        local ok, code, detail = handshake(conn, { secret = "not the secret" })
        assert.is_nil(ok)
        assert.are.equal("auth", code)
        assert.matches("authentication failed", detail)
        assert_closed(conn)
        conn:close()
        cl:wait(function() return stats(cl, "node-1").auth_failures > before end, 5000,
                "auth_failures to grow")
        commit(cl, "after-wrong-secret")
    end)

    it("refuses a peer that names another cluster or another node", function()
        local conn = assert(tk.raw_connect(cl:address("node-1"), 2000))
        local ok, code, detail = handshake(conn, { cluster_id = "elsewhere" })
        assert.is_nil(ok)
        assert.are.equal("auth", code)
        assert.matches("cluster id mismatch", detail)
        conn:close()
        conn = assert(tk.raw_connect(cl:address("node-1"), 2000))
        ok, code, detail = handshake(conn, { peer_name = "node-2" })
        assert.is_nil(ok)
        assert.matches("this is 'node%-1'", detail)
        conn:close()
    end)

    it("refuses a peer that proves the secret under a name outside the cluster", function()
        local before = stats(cl, "node-1").auth_failures
        local conn = assert(tk.raw_connect(cl:address("node-1"), 2000))
        local ok, code, detail = handshake(conn, { node_name = "intruder" })
        assert.is_nil(ok)
        assert.are.equal("auth", code)
        assert.matches("unknown node id 'intruder'", detail, 1, true)
        conn:close()
        cl:wait(function() return stats(cl, "node-1").auth_failures > before end, 5000,
                "auth_failures to grow")
    end)

    it("accepts the right secret", function()
        local conn = assert(tk.raw_connect(cl:address("node-1"), 2000))
        assert.is_true(handshake(conn))
        conn:close()
    end)

    it("closes a connection that sends garbage and counts a bad frame", function()
        local before = stats(cl, "node-1").bad_frames
        local conn = assert(tk.raw_connect(cl:address("node-1"), 2000))
        -- A length, then "GET " where the CRC should be: a complete frame whose CRC is wrong.
        assert(conn:send("\0\0\0\4GET /xyz"))
        assert_closed(conn)
        conn:close()
        cl:wait(function() return stats(cl, "node-1").bad_frames > before end, 5000,
                "bad_frames to grow")
        commit(cl, "after-garbage")
    end)

    it("closes an authenticated connection on a malformed, oversized or spoofed frame",
       function()
        local intruder = tk.node_id("node-4")
        local node1 = tk.node_id("node-1")
        local frames = {
            malformed = tk.wire_frame("\147\1\2\3"),
            corrupt = (function()
                local f = tk.wire_encode{ type = "vote", from = intruder, to = node1, term = 1 }
                return f:sub(1, -2) .. string.char((f:byte(-1) + 1) % 256)
            end)(),
            oversized = "\127\255\255\255\0\0\0\0",
            spoofed = tk.wire_encode{ type = "append", from = tk.node_id("node-2"),
                                        to = node1, term = 1 },
            misaddressed = tk.wire_encode{ type = "append", from = intruder,
                                             to = tk.node_id("node-3"), term = 1 },
        }
        for what, frame in each(frames) do
            local before = stats(cl, "node-1").bad_frames
            local conn = assert(tk.raw_connect(cl:address("node-1"), 2000))
            assert.is_true(handshake(conn))
            assert(conn:send(frame))
            assert_closed(conn)
            conn:close()
            cl:wait(function() return stats(cl, "node-1").bad_frames > before end, 5000,
                    what .. ": bad_frames to grow")
        end
        commit(cl, "after-bad-frames")
        local l = cl:leader(5000)
        assert.is_string(l)
    end)
end)
