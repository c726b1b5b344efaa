-- nodelog_spec.lua: helios.nodelog, what `helios node` prints of its node's log and error
-- events: the first occurrence at once, repeats of the same message from the same peer
-- counted and summarized once per window, on a fake clock.

local nodelog = require("helios.nodelog")

local function fixture(repeat_ms)
    local fx = { now = 0, lines = {} }
    fx.lim = nodelog.limiter{ repeat_ms = repeat_ms or 10000,
                              now = function() return fx.now end,
                              emit = function(line) fx.lines[#fx.lines + 1] = line end }
    return fx
end

local REFUSED = "transport: from node-3 (127.0.0.1:%d): handshake refused: "
    .. "authentication failed (wrong cluster secret?)"

describe("helios.nodelog", function()
    it("prints the first refusal, then one summary per window for a peer retrying", function()
        local fx = fixture(10000)
        -- every 100 ms for 25 s, each attempt from a new ephemeral port
        for i = 1, 250 do
            fx.lim:log(1, REFUSED:format(40000 + i))
            fx.now = fx.now + 100
            fx.lim:flush()
        end
        assert.are.equal(3, #fx.lines, table.concat(fx.lines, "\n"))
        assert.are.equal("warning: " .. REFUSED:format(40001), fx.lines[1])
        assert.matches("^warning: transport: from node%-3 %(127%.0%.0%.1:%d+%): handshake "
            .. "refused: .* %[99 more in the last 10 s%]$", fx.lines[2])
        assert.matches("%[100 more in the last 10 s%]$", fx.lines[3])
        -- the rest comes out at close
        fx.lim:close()
        assert.matches("%[50 more in the last 5 s%]$", fx.lines[4])
        assert.are.equal(4, #fx.lines)
    end)

    it("keeps peers, reasons and levels apart", function()
        local fx = fixture(10000)
        fx.lim:log(1, REFUSED:format(40001))
        fx.lim:log(1, "transport: from node-2 (127.0.0.1:40002): handshake refused: "
            .. "authentication failed (wrong cluster secret?)")
        fx.lim:log(1, "transport: from node-3 (127.0.0.1:40003): handshake refused: "
            .. "cluster id mismatch: dialer in 'a', listener in 'b'")
        fx.lim:log(2, REFUSED:format(40004))
        fx.lim:log(1, REFUSED:format(40005))
        assert.are.equal(4, #fx.lines)
        assert.matches("^error: ", fx.lines[4])
    end)

    it("prints a message again at once when it was not repeated in its window", function()
        local fx = fixture(1000)
        fx.lim:log(0, "transport: to node-2 (127.0.0.1:9002): connected")
        fx.now = 1500
        fx.lim:flush()
        fx.lim:log(0, "transport: to node-2 (127.0.0.1:9002): connected")
        assert.are.same({ "transport: to node-2 (127.0.0.1:9002): connected",
                          "transport: to node-2 (127.0.0.1:9002): connected" }, fx.lines)
    end)

    it("bounds what it tracks: a flood of distinct messages is counted together", function()
        local fx = fixture(10000)
        for i = 1, nodelog.MAX_KEYS + 50 do fx.lim:log(1, "distinct " .. i) end
        assert.are.equal(nodelog.MAX_KEYS + 1, #fx.lines)
        fx.lim:close()
        assert.matches("^%(messages of other kinds%) %[49 more", fx.lines[#fx.lines])
    end)

    it("turns node errors into lines: a storage failure and its recovery", function()
        local handlers, lines = {}, {}
        local node = { on = function(_, ev, fn) handlers[ev] = fn end }
        local lim = nodelog.attach(node, function(l) lines[#lines + 1] = l end)
        handlers.error("no_space", "storage: segment 3: No space left on device")
        handlers.error(nil, "storage: recovered")
        handlers.log(1, "transport: from node-2 (127.0.0.1:4000): closed: dropped a bad "
            .. "frame: bad checksum")
        lim:close()
        assert.are.same({ "error: storage: segment 3: No space left on device (no_space)",
                          "storage: recovered",
                          "warning: transport: from node-2 (127.0.0.1:4000): closed: dropped "
                              .. "a bad frame: bad checksum" }, lines)
    end)
end)
