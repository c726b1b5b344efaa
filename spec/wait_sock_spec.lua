-- wait_sock_spec.lua: loop.wait_sock, the wait of helios.core's sockets on the loop
-- (csrc/lua/sock_watch.c). Its watcher stays in the loop between waits, so it must report
-- each readiness once to whoever waits, report timeouts, and let go of the descriptor
-- when the socket closes, whoever closes it: a waiter then hears "closed", and a new
-- socket that gets the same descriptor number is watched normally.

local loop = require("helios.loop")
local core = require("helios.core")
local tk = require("helios.testkit")
local on_loop = require("spec.helpers.on_loop")

-- A connected pair: our client socket and the listener's end of it.
local function pair(listener, port)
    local c = assert(core.sock_connect("127.0.0.1:" .. port, 5000))
    local s = assert(listener:accept(5000))
    return c, s
end

describe("loop.wait_sock", function()
    local listener, port
    before_each(function() listener, port = assert(tk.sock_listen("127.0.0.1:0")) end)
    after_each(function() listener:close() end)

    it("reports each answer of a request-answer exchange, over and over", function()
        local c, s = pair(listener, port)
        on_loop(10000, function()
            for i = 1, 200 do
                assert(c:try_send_frame("q" .. i))
                assert.are.equal("q" .. i, s:recv_frame(5000))
                assert(s:send_frame("a" .. i, 5000))
                assert.is_true(loop.wait_sock(c, "r", 5000))
                assert.are.equal("a" .. i, (c:try_recv_frame()))
            end
        end)
        c:close()
        s:close()
    end)

    it("times out when nothing comes, and the next wait still works", function()
        local c, s = pair(listener, port)
        on_loop(10000, function()
            local ok, code = loop.wait_sock(c, "r", 30)
            assert.is_nil(ok)
            assert.are.equal("timeout", code)
            assert(s:send_frame("late", 5000))
            assert.is_true(loop.wait_sock(c, "r", 5000))
            assert.are.equal("late", (c:try_recv_frame()))
        end)
        c:close()
        s:close()
    end)

    it("refuses a second waiter on the same socket", function()
        local c, s = pair(listener, port)
        on_loop(10000, function()
            local waiting, second = false, nil
            loop.spawn(function()
                waiting = true -- (it runs on until wait_sock yields: waiting from then on)
                second = { loop.wait_sock(c, "r", 5000) }
            end)
            local deadline = core.clock_ms() + 5000
            while not waiting and core.clock_ms() < deadline do loop.sleep(1) end
            assert.is_true(waiting)
            assert.is_nil(loop.wait_sock(c, "r", 10))
            assert(s:send_frame("x", 5000))
            while not second and core.clock_ms() < deadline do loop.sleep(5) end
            assert.are.same({ true }, second)
        end)
        c:close()
        s:close()
    end)

    it("wakes a waiter with closed when another coroutine closes the socket", function()
        local c, s = pair(listener, port)
        on_loop(10000, function()
            loop.after(20, function() c:close() end)
            local ok, code, detail = loop.wait_sock(c, "r", 5000)
            assert.is_nil(ok)
            assert.are.equal("io", code)
            assert.are.equal("closed", detail)
            -- and a closed socket is refused at once
            assert.are.same({ nil, "io", "closed" }, { loop.wait_sock(c, "r", 10) })
        end)
        s:close()
    end)

    it("lets go of the descriptor at close: a new socket on the same number is watched", function()
        on_loop(10000, function()
            for _ = 1, 20 do
                local c, s = pair(listener, port)
                assert(s:send_frame("hi", 5000))
                assert.is_true(loop.wait_sock(c, "r", 5000))
                assert.are.equal("hi", (c:try_recv_frame()))
                local fd = c:fileno()
                c:close()
                s:close()
                -- The next socket usually gets fd's number back: its own waits must work.
                local c2, s2 = pair(listener, port)
                assert(s2:send_frame("again", 5000))
                assert.is_true(loop.wait_sock(c2, "r", 5000), "fd " .. fd)
                assert.are.equal("again", (c2:try_recv_frame()))
                c2:close()
                s2:close()
            end
        end)
    end)

    it("waits by poll() off the loop", function()
        local c, s = pair(listener, port)
        assert(s:send_frame("off", 5000))
        assert.is_true(loop.wait_sock(c, "r", 5000))
        assert.are.equal("off", (c:try_recv_frame()))
        c:close()
        s:close()
    end)
end)
