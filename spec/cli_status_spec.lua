-- cli_status_spec.lua: `helios status`, the one-screen table of a running cluster's nodes
-- (role, term, commit, applied, lag, last contact) read from node:status() through the
-- control sockets; a node whose socket does not answer shows as unreachable, and the exit
-- status says whether any answered. Real node processes (helios.testing).

local testing = require("helios.testing")
local cli = require("helios.cli")

-- Run `helios status ARGS...`: exit status, stdout, stderr.
local function status(...)
    local out, err = {}, {}
    local code = cli.main({ "status", ... }, function(s) out[#out + 1] = s end,
                          function(s) err[#err + 1] = s end)
    return code, table.concat(out), table.concat(err)
end

-- The rows of the table by node id: { role, term, commit, applied, lag, contact, control }.
local function rows(text)
    local lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.matches("^ID%s+ROLE%s+TERM%s+COMMIT%s+APPLIED%s+LAG%s+CONTACT%s+CONTROL$", lines[1])
    local t = {}
    for i = 2, #lines do
        local id, role, term, commit, applied, lag, contact, control =
            lines[i]:match("^(node%-%d+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(.+)$")
        if id then
            t[id] = { role = role, term = term, commit = commit, applied = applied, lag = lag,
                      contact = contact, control = control }
        end
    end
    return t
end

describe("helios status", function()
    it("shows every node of a running cluster, and a stopped one as unreachable", function()
        local cl = testing.cluster{ n = 3 }
        finally(function() cl:stop() end)
        local leader, st = cl:leader(15000)
        local index = assert(cl:client():apply("SET a 1", 5000))
        cl:wait_applied(index, 10000)

        -- every node answers; the three layouts of the sockets give the same table
        local code, out = status("--data", cl:dir())
        assert.are.equal(0, code, out)
        local t = rows(out)
        for _, id in ipairs(cl:ids()) do
            local r = t[id]
            assert.is_table(r, out)
            assert.are.equal("ok", r.control, out)
            assert.are.equal(id == leader and "leader" or "follower", r.role, out)
            assert.are.equal(tostring(st.term), r.term, out)
            assert.is_true(tonumber(r.applied) >= index, out)
            assert.is_true(tonumber(r.lag) >= 0, out)
            if id == leader then
                assert.are.equal("-", r.contact, out)
            else
                assert.matches("^%d+ms$", r.contact, out)
            end
        end
        assert.matches("leader " .. leader:gsub("%-", "%%-")
                       .. ", term %d+; 3 of 3 nodes answered", out)
        local code2, out2 = status("--config", cl:config_path("node-1"))
        assert.are.equal(0, code2)
        local code3, out3 = status(cl:socket("node-1"), cl:socket("node-2"), cl:socket("node-3"))
        assert.are.equal(0, code3)
        for _, o in ipairs({ out2, out3 }) do
            local t2 = rows(o)
            for _, id in ipairs(cl:ids()) do
                assert.are.equal(t[id].role, t2[id].role, o)
            end
        end

        -- one follower stopped: its row says unreachable, the others still answer
        local victim = leader == "node-3" and "node-2" or "node-3"
        cl:kill(victim)
        code, out = status("--data", cl:dir())
        assert.are.equal(0, code, out)
        t = rows(out)
        assert.matches("^unreachable %(", t[victim].control, out)
        assert.are.equal("-", t[victim].role)
        for _, id in ipairs(cl:ids()) do
            if id ~= victim then assert.are.equal("ok", t[id].control, out) end
        end
        assert.matches("2 of 3 nodes answered", out)
        -- the leader has not heard from it since: its last contact grows
        local first = tonumber(t[victim].contact:match("^(%d+)ms$"))
        assert.is_number(first, out)
        cl:wait(function()
            local _, o = status("--data", cl:dir())
            local c = rows(o)[victim].contact:match("^(%d+)ms$")
            return c and tonumber(c) > first
        end, 10000, "the stopped node's last contact to grow")

        -- nothing answers: exit status 1, every row unreachable
        for _, id in ipairs(cl:ids()) do
            if cl:running(id) then cl:kill(id) end
        end
        local err
        code, out, err = status("--data", cl:dir())
        assert.are.equal(1, code, out)
        assert.matches("no node answered", err)
        t = rows(out)
        for _, id in ipairs(cl:ids()) do
            assert.matches("^unreachable", t[id].control, out)
        end
    end)

    it("refuses bad usage and says where it looked", function()
        local code, _, err = status("--data", "/x", "--config", "/y")
        assert.are.equal(2, code)
        assert.matches("give one of", err)
        code, _, err = status("--data", "/nonexistent-helios-dir")
        assert.are.equal(1, code)
        assert.matches("no cluster%.lua and no %*/control%.sock in /nonexistent%-helios%-dir",
                       err)
        local c2, out = status("--help")
        assert.are.equal(0, c2)
        assert.matches("Usage: helios status", out)
    end)
end)
