-- transport_backpressure_spec.lua: a follower that stops reading (SIGSTOP) fills the
-- leader's socket to it. The transport writes each batch of frames at once with one writev
-- and hands only what the socket did not take to a libuv write request
-- (csrc/transport/tcp_conn.c, hr__conn_pump): with the socket full, writes go out in part
-- or not at all, and the rest must follow in order once the follower reads again. The
-- other follower and the leader keep committing meanwhile, and the stopped one catches up
-- with every entry, in order.

local testing = require("helios.testing")
local pc = require("spec.helpers.process_cluster")

describe("transport under backpressure", function()
    it("a follower that stops reading catches up with every entry once resumed", function()
        -- No proxies: the leader writes straight into the stopped follower's socket.
        testing.with_cluster({ n = 3, proxies = false }, function(cl)
            local leader = cl:leader(10000)
            local follower
            for _, id in ipairs(cl:ids()) do
                if id ~= leader then follower = id break end
            end
            cl:pause(follower)
            -- 120 commands of 48 KiB: far more than loopback's socket buffers hold
            local cc = cl:client()
            local big = string.rep("x", 48 * 1024)
            local last
            for i = 1, 120 do
                local index, code, result = cc:apply(("set big%d %d%s"):format(i, i, big), 10000)
                assert(index, ("apply %d: %s %s"):format(i, tostring(code), tostring(result)))
                last = index
            end
            cl:resume(follower)
            cl:wait_applied(last, 30000, { follower })
            local _, kv = pc.commit(cl, "after", 3)
            pc.assert_all(cl, kv)
            -- The follower applied every index up to the last (wait_applied: its state
            -- machine takes them in order, node.c asserts it), and the values committed
            -- while it was stopped read back whole.
            for i = 1, 120, 17 do
                local _, _, v = cc:apply("get big" .. i, 10000)
                assert.are.equal(tostring(i) .. big, v)
            end
        end)
    end)
end)
