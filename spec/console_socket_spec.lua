-- spec/console_socket_spec.lua: the control socket a console attaches to is mode 0600 and
-- owned by the node's user; a second console on the same node works while the first is
-- attached (and busy), each with its own session; the "eval", "complete" and "cancel" ops
-- through the protocol (docs/wire-protocol.md, docs/console.md).

local testing = require("helios.testing")
local client = require("helios.client")
local cli = require("helios.cli")
local core = require("helios.core")
local tmux = require("spec.helpers.tmux")

local function sh(cmd)
    local p = io.popen(cmd)
    local out = p:read("*a")
    p:close()
    return (out:gsub("%s+$", ""))
end

local function console_argv(sock)
    local argv = cli.helios_command()
    argv[#argv + 1] = "console"
    argv[#argv + 1] = sock
    return argv
end

describe("the console's control socket", function()
    local cl, id, sock

    setup(function()
        cl = testing.cluster({ n = 1 })
        id = cl:leader(15000)
        sock = cl:socket(id)
    end)

    teardown(function()
        if cl then cl:stop() end
    end)

    it("is a socket of mode 0600 owned by the node's user", function()
        assert.are.equal("socket 600 " .. sh("id -u"),
                         sh("stat -c '%F %a %u' " .. sock))
    end)

    it("serves a second console while the first is attached and busy", function()
        local env = { LUA_PATH = package.path, LUA_CPATH = package.cpath,
                      HELIOS_INHERIT_PATHS = "1",
                      HELIOS_HISTORY = cl:dir() .. "/history-socket" }
        local first = tmux.start(console_argv(sock), env)
        finally(tmux.kill_all)
        first:wait("connected to " .. id)
        first:line("mine = 'first'")
        first:line("sleep(3000) return 'first done'")
        first:wait("return 'first done'\n")

        -- The second console (a terminal too) runs while the first waits.
        local second = tmux.start(console_argv(sock), env)
        second:wait("connected to " .. id)
        second:line("mine")       -- its own session: nothing of the first's
        second:wait("> mine\nnil\n")
        second:line("status().role")
        second:wait('"leader"')
        -- ... and it was not the first one's turn yet.
        assert.are.equal(0, first:count('"first done"'))
        second:key("C-d")
        second:wait("EXIT:0")

        first:wait('"first done"')
        first:line("mine")
        first:wait('"first"')
        first:key("C-d")
        first:wait("EXIT:0")
    end)

    it("cancels a CPU-bound chunk through the protocol and goes on", function()
        local c = assert(client.connect(sock))
        finally(function() c:close() end)
        local enc, dec = core.mp_encode, core.mp_decode
        assert(c.sock:send_frame(enc({ id = 1, op = "eval", code = "while true do end" }), 5000))
        -- The chunk holds the loop: nothing answers until the hook sees the cancel.
        assert.is_nil((c.sock:recv_frame(300)))
        assert(c.sock:send_frame(enc({ id = 2, op = "cancel", target = 1 }), 5000))
        local got = {}
        while not (got[1] and got[2]) do
            local payload = assert(c.sock:recv_frame(10000))
            local r = dec(payload)
            got[r.id] = r
        end
        assert.are.same({ id = 1, ok = false, code = "cancelled", detail = "cancelled" }, got[1])
        assert.is_true(got[2].ok)
        local r = assert(c:call("eval", { code = "return 1 + 1" }))
        assert.are.equal("2", r.results)
        local cands = assert(c:call("complete", { prefix = "stat" })).candidates
        assert.are.same({ "stats(", "status(" }, cands)
        -- Bad requests.
        local _, code = c:call("eval", { code = 7 })
        assert.are.equal("bad_request", code)
        _, code = c:call("cancel", {})
        assert.are.equal("bad_request", code)
    end)

    it("abandons a chunk whose console went away", function()
        local c = assert(client.connect(sock))
        assert(c.sock:send_frame(core.mp_encode({ id = 1, op = "eval",
            code = "gone = 0 while true do gone = gone + 1 end" }), 5000))
        -- A window for the chunk to be under way in the node (closing earlier must end the
        -- same way: nothing is asserted about the timing).
        core.sleep_ms(200)
        c:close()
        -- The node serves again (the hook saw the connection close).
        local c2 = assert(client.connect(sock, 10000))
        finally(function() c2:close() end)
        local st = assert(c2:status(10000))
        assert.are.equal(id, st.id)
    end)
end)
