-- spec/console_tty_spec.lua: `helios console` in a real pseudo-terminal (tmux on a private
-- server) against a 3-node cluster of processes: a multi-line function, status(), Tab
-- completion, a write and a read, a leadership transfer, an error the REPL survives, Ctrl-C
-- on a waiting and on a CPU-bound chunk, history across sessions, Ctrl-D detaching, and the
-- node serving after it all (docs/console.md).

local testing = require("helios.testing")
local cli = require("helios.cli")
local tk = require("helios.testkit")
local core = require("helios.core")
local tmux = require("spec.helpers.tmux")
local shell = require("helios.util.shell")

local function read_file(path)
    local f = io.open(path)
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

local function console_argv(sock)
    local argv = cli.helios_command()
    argv[#argv + 1] = "console"
    argv[#argv + 1] = sock
    return argv
end

describe("helios console on a terminal", function()
    it("edits, completes, runs, cancels and detaches; the node goes on", function()
        -- The CPU-bound chunk below holds the leader's loop (no heartbeats) until Ctrl-C
        -- reaches it through tmux, which on a loaded machine can take longer than the
        -- test clusters' 300 ms election timeout: a new leader would fail the transfer.
        testing.with_cluster({ n = 3, config = { election_timeout_ms = 2000,
                                                 heartbeat_timeout_ms = 200 } }, function(cl)
            local leader = cl:leader(15000)
            local hist = cl:dir() .. "/history-" .. tk.getpid()
            local env = { HELIOS_HISTORY = hist, LUA_PATH = package.path,
                          LUA_CPATH = package.cpath, HELIOS_INHERIT_PATHS = "1" }
            local t = tmux.start(console_argv(cl:socket(leader)), env)
            finally(tmux.kill_all)
            t:wait("connected to " .. leader)

            -- A multi-line function: the unfinished chunk asks for more.
            t:line("function twice(x)")
            t:wait("... ")
            t:line("  return x * 2")
            t:line("end")
            t:line("twice(21)")
            t:wait("\n42\n")

            t:line("status().role")
            t:wait('"leader"')

            -- Tab completes the session's own function, "(" included.
            t:type("twi")
            t:key("Tab")
            t:wait("> twice(")
            t:line("500)")
            t:wait("\n1000\n")

            -- A write and a (linearizable) read through the helpers.
            t:line('set("console-key", "console-value")')
            t:wait('"OK"')
            t:line('get("console-key")')
            t:wait('"console-value"')

            -- An error: its message, then the REPL goes on.
            t:line('error("deliberate " .. "failure")')
            t:wait("error: deliberate failure")
            t:line("6 * 7 + 1000")
            t:wait("\n1042\n")

            -- Ctrl-C abandons a chunk that waits ...
            t:line("sleep(60000)")
            t:wait("sleep(60000)\n") -- the chunk runs
            core.sleep_ms(200) -- a window for the chunk to get under way (not a wait)
            t:key("C-c")
            t:wait("cancelled")
            -- ... and stops one that keeps the CPU (the node's count hook).
            t:line("n = 0 while true do n = n + 1 end")
            core.sleep_ms(200) -- a window for the chunk to get under way (not a wait)
            t:key("C-c")
            t:wait("cancelled", 15000, 2)
            t:line("n > 0")
            t:wait("\ntrue\n")

            -- Ctrl-C on a half-typed line clears it.
            t:type("this is not lua")
            t:wait("> this is not lua")
            local prompts = t:count(leader .. "> ")
            t:key("C-c")
            t:wait(leader .. "> ", 15000, prompts + 1)
            t:line("'still' .. ' here'")
            t:wait('"still here"')
            assert.is_nil(t:screen():find("syntax error", 1, true))

            -- Hand leadership over: the node now follows.
            local target = leader == "node-1" and "node-2" or "node-1"
            t:line(string.format('transfer("%s")', target))
            t:wait(string.format('\n"%s"\n', target))
            t:line("status().role")
            t:wait('"follower"')

            -- Ctrl-D detaches; the console exits 0.
            t:key("C-d")
            t:wait("EXIT:0")

            -- History was kept in the file.
            local h = read_file(hist) or ""
            assert.truthy(h:find("twice(21)", 1, true), h)

            -- The node still serves: a write through the cluster, read back on that node.
            local cc = cl:client()
            assert(cc:apply("set after detach", 10000))
            local c = assert(require("helios.client").connect(cl:socket(leader)))
            cl:wait(function()
                local ok, v = c:read("after", { stale = true })
                return ok and v == "detach"
            end, 10000, "the write applied on " .. leader)
            c:close()

            -- A new session reads the same history (Up recalls the last line).
            local t2 = tmux.start(console_argv(cl:socket(leader)), env)
            t2:wait("connected to " .. leader)
            t2:key("Up")
            t2:wait("> status().role")
            t2:key("Enter")
            t2:wait('"follower"')
            t2:key("C-d")
            t2:wait("EXIT:0")
        end)
    end)

    it("opens on helios cluster's terminal, on the leader; Ctrl-C is the console's", function()
        local dir = os.tmpname()
        os.remove(dir)
        finally(function()
            tmux.kill_all()
            os.execute("rm -rf " .. shell.quote(dir))
        end)
        local argv = cli.helios_command()
        for _, a in ipairs({ "cluster", "--data", dir, "--base-port", "0" }) do
            argv[#argv + 1] = a
        end
        local t = tmux.start(argv, { LUA_PATH = package.path, LUA_CPATH = package.cpath,
                                     HELIOS_INHERIT_PATHS = "1",
                                     HELIOS_HISTORY = dir .. ".history" })
        local screen = t:wait("console on node-", 30000)
        local leader = screen:match("console on (node%-%d)")
        t:wait(leader .. "> ")
        t:line("status().role")
        t:wait('"leader"')
        -- Ctrl-C cancels the chunk; the nodes (their own process group) do not get it.
        t:line("sleep(60000)")
        t:wait("sleep(60000)\n")
        core.sleep_ms(200) -- a window for the chunk to get under way (not a wait)
        t:key("C-c")
        t:wait("cancelled")
        t:line("status().role")
        t:wait('"leader"', 15000, 2)
        assert.is_nil(t:screen():find("stopping every node", 1, true))
        -- Ctrl-D detaches the console; then Ctrl-C stops the cluster, as without one.
        t:key("C-d")
        t:wait("console detached")
        t:key("C-c")
        t:wait("stopping every node (SIGINT)")
        t:wait("EXIT:0", 30000)
        os.remove(dir .. ".history")
    end)

    it("opens on helios node's terminal; Ctrl-C stops a CPU-bound chunk in the node", function()
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. shell.quote(dir)) == 0)
        finally(function()
            tmux.kill_all()
            os.execute("rm -rf " .. shell.quote(dir))
        end)
        local file = dir .. "/cluster.lua"
        assert(require("helios.clusterfile").write(file, {
            cluster_id = "console", fsm = "helios.fsm.kv", data_dir = dir,
            secret = "console-spec-secret",
            nodes = { ["node-1"] = "127.0.0.1:" .. assert(core.free_port()) } }))
        local argv = cli.helios_command()
        for _, a in ipairs({ "node", "--config", file, "--id", "node-1" }) do
            argv[#argv + 1] = a
        end
        local t = tmux.start(argv, { LUA_PATH = package.path, LUA_CPATH = package.cpath,
                                     HELIOS_INHERIT_PATHS = "1",
                                     HELIOS_HISTORY = dir .. "/history" })
        t:wait("connected to node-1", 30000)
        -- The node's own log lines print above the prompt.
        t:wait("role_change: follower -> leader", 30000)
        t:line("status().role")
        t:wait('"leader"')
        -- Tab completes in the node's own process too.
        t:type("snapsh")
        t:key("Tab")
        t:wait("> snapshot(")
        t:line(")")
        t:wait("snapshot()\n")
        t:line("spins = 0 while true do spins = spins + 1 end")
        core.sleep_ms(200) -- a window for the chunk to get under way (not a wait)
        t:key("C-c")
        t:wait("cancelled")
        t:line("spins > 0")
        t:wait("\ntrue\n")
        t:key("C-d")
        t:wait("console detached")
        t:key("C-c")
        t:wait("SIGINT: shutting down")
        t:wait("EXIT:0", 30000)
    end)
end)
