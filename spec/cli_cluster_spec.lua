-- cli_cluster_spec.lua: the README's main command, `helios cluster --nodes 3` (what
-- `make demo` runs), in its bounded mode: three node processes on loopback, a leader, the
-- first commands committed, and every node stopped at the end. A temporary data dir and
-- free ports stand in for ./data and 9001..9003 so it can run next to a demo. Then what a
-- new user runs into: a port already taken (the run stops at once, says which node, which
-- address and why, and stops the nodes it started), and a reused cluster file asked for
-- other ports or another size (refused, with the ways to proceed).

local su = require("spec.helpers.storage_util")
local core = require("helios.core")
local tk = require("helios.testkit")
local clusterfile = require("helios.clusterfile")

-- A base port with base..base+n-1 all free now (ports from core.free_port, below the
-- ephemeral range).
local function free_base(n)
    for _ = 1, 100 do
        local base = assert(core.free_port())
        local ok = true
        for p = base, base + n - 1 do
            local l = p <= 65535 and tk.sock_listen("127.0.0.1:" .. p)
            if l then l:close() else ok = false end
        end
        if ok then return base end
    end
    error("no run of free ports")
end

describe("helios cluster (the README's main command)", function()
    local dir
    before_each(function() dir = su.tmpdir() end)
    after_each(function() su.rmdir(dir) end)

    -- `timeout`: a run that does not stop by itself fails the spec instead of hanging it.
    local function run_env(env, ...)
        local p = assert(io.popen(("%s %s timeout -s INT 60 bin/helios cluster %s 2>&1; "
            .. "echo \"exit=$?\""):format(su.child_env(), env, table.concat({ ... }, " "))))
        local out = p:read("*a")
        p:close()
        return tonumber(out:match("exit=(%d+)%s*$")), out
    end
    local function run(...) return run_env("", ...) end

    it("starts 3 nodes, shows the leader and the commits, stops them all", function()
        local code, out = run("--nodes 3", "--data", dir .. "/data", "--base-port 0",
            "--run-for 2")
        assert.are.equal(0, code, out)
        assert.matches("started node%-1 on 127%.0%.0%.1:%d+, Redis clients on 127%.0%.0%.1:%d+",
            out)
        assert.matches("node%-%d leads %(term %d+%): redis%-cli %-p %d+", out)
        -- ATLAS writes, shown as the Redis commands they are
        assert.matches("committed #%d+ in term %d+: SET greeting hello%s+%-> OK", out)
        assert.matches("committed #%d+ in term %d+: INCR visits%s+%-> 2", out)
        -- the line to try names the leader's client port
        local leader = out:match("(node%-%d) leads")
        local port = out:match("try: redis%-cli %-p (%d+)")
        assert.is_truthy(port, out)
        local conf = assert(clusterfile.load(dir .. "/data/cluster.lua"))
        assert.are.equal("helios.atlas.fsm", conf.fsm)
        assert.are.equal("127.0.0.1:" .. port, conf.client_listen[leader])
        for i = 1, 3 do
            assert.matches(("node%%-%d stopped %%(exited 0%%)"):format(i), out)
        end
        -- the cluster file and each node's data and log are where the help says
        assert.is_truthy(io.open(dir .. "/data/cluster.lua"))
        assert.is_truthy(io.open(dir .. "/data/node-1.log"))

        -- a second run reuses the file and the data: the counter goes on
        code, out = run("--nodes 3", "--data", dir .. "/data", "--run-for 1")
        assert.are.equal(0, code, out)
        assert.matches("reusing", out, 1, true)
        assert.matches("INCR visits%s+%-> 4", out)
    end)

    it("stops with the node, its address and the reason when a port is taken", function()
        local base = free_base(3)
        local taken = ("127.0.0.1:%d"):format(base + 1)
        local squatter = assert(tk.sock_listen(taken))
        finally(function() squatter:close() end)
        local t0 = core.clock_ms()
        local code, out = run("--nodes 3", "--data", dir .. "/data", "--base-port", base,
            "--run-for 30")
        assert.are.equal(1, code, out)
        assert.is_true(core.clock_ms() - t0 < 25000, "it should stop at once:\n" .. out)
        assert.matches("helios cluster: node%-2 %(" .. taken:gsub("%p", "%%%0")
            .. "%) failed to start: [^\n]*address already in use", out)
        assert.matches("another process listens on " .. taken, out, 1, true)
        assert.matches("--base-port", out, 1, true)
        -- the nodes it started are stopped: their ports are free again
        assert.matches("node%-1 stopped", out)
        assert.matches("node%-3 stopped", out)
        assert.not_matches("leads", out)
        for _, port in ipairs({ base, base + 2 }) do
            local l = assert(tk.sock_listen("127.0.0.1:" .. port))
            l:close()
        end
    end)

    it("refuses another --base-port or --nodes for an existing cluster file, never replaces it",
       function()
        local base = free_base(3)
        local data = dir .. "/data"
        os.execute("mkdir -p " .. data)
        local conf = { cluster_id = "local", fsm = "helios.fsm.kv", data_dir = data,
                       secret = "s", nodes = {} }
        for i = 1, 3 do conf.nodes["node-" .. i] = ("127.0.0.1:%d"):format(base + i - 1) end
        assert(clusterfile.write(data .. "/cluster.lua", conf))

        local other = base + 100
        local code, out = run("--data", data, "--base-port", other, "--run-for 1")
        assert.are.equal(1, code, out)
        assert.matches(("--base-port %d would move them to 127.0.0.1:%d..%d"):format(other,
            other, other + 2), out, 1, true)
        assert.matches(("node-1 127.0.0.1:%d"):format(base), out, 1, true)
        assert.matches("drop --base-port", out, 1, true)
        assert.matches("remove " .. data, out, 1, true)
        assert.matches("edit the addresses in " .. data .. "/cluster.lua", out, 1, true)

        -- the same through the environment (make demo HELIOS_BASE_PORT=...)
        code, out = run_env("HELIOS_BASE_PORT=" .. other, "--data", data, "--run-for 1")
        assert.are.equal(1, code, out)
        assert.matches("HELIOS_BASE_PORT=" .. other .. " would move them", out, 1, true)
        assert.matches("unset HELIOS_BASE_PORT", out, 1, true)

        -- a base port whose client ports (base + 1000 ..) would pass 65535
        code, out = run("--data", dir .. "/other", "--base-port 65000", "--run-for 1")
        assert.are.equal(1, code, out)
        assert.matches("the Redis client ports would be 66000..66002, past 65535: give a base "
            .. "port up to 64533", out, 1, true)

        code, out = run("--nodes 5", "--data", data, "--run-for 1")
        assert.are.equal(1, code, out)
        assert.matches("describes 3 nodes, not the 5 of --nodes", out, 1, true)
        -- nothing was started
        assert.is_nil(io.open(data .. "/node-1.log"))

        -- an edit gone wrong is reported, and the file is left as it is, not replaced
        su.write_file(data .. "/cluster.lua", "return {\n")
        code, out = run("--data", data, "--run-for 1")
        assert.are.equal(1, code, out)
        assert.matches(data .. "/cluster.lua:", out, 1, true)
        assert.are.equal("return {\n", su.read_file(data .. "/cluster.lua"))
    end)

    it("make demo passes ARGS through to helios cluster", function()
        local p = assert(io.popen("make -s -n demo ARGS='--base-port 9101 --run-for 5' 2>&1"))
        local out = p:read("*a")
        p:close()
        assert.matches("bin/helios cluster --nodes 3 --data ./data --base-port 9101 "
            .. "--run-for 5", out, 1, true)
    end)
end)
