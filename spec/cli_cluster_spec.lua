-- cli_cluster_spec.lua: the README's main command, `helios cluster --nodes 3` (what
-- `make demo` runs), in its bounded mode: three node processes on loopback, a leader, the
-- first commands committed, and every node stopped at the end. A temporary data dir and
-- free ports stand in for ./data and 9001..9003 so it can run next to a demo.

local su = require("spec.helpers.storage_util")

describe("helios cluster (the README's main command)", function()
    local dir
    before_each(function() dir = su.tmpdir() end)
    after_each(function() su.rmdir(dir) end)

    local function run(...)
        local p = assert(io.popen(("%s bin/helios cluster %s 2>&1; echo \"exit=$?\""):format(
            su.child_env(), table.concat({ ... }, " "))))
        local out = p:read("*a")
        p:close()
        return tonumber(out:match("exit=(%d+)%s*$")), out
    end

    it("starts 3 nodes, shows the leader and the commits, stops them all", function()
        local code, out = run("--nodes 3", "--data", dir .. "/data", "--base-port 0",
            "--run-for 2")
        assert.are.equal(0, code, out)
        assert.matches("started node%-1 on 127%.0%.0%.1:%d+", out)
        assert.matches("node%-%d leads %(term %d+%)", out)
        assert.matches("committed #%d+ in term %d+: set greeting hello%s+%-> OK", out)
        assert.matches("committed #%d+ in term %d+: incr visits%s+%-> 2", out)
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
        assert.matches("incr visits%s+%-> 4", out)
    end)
end)
