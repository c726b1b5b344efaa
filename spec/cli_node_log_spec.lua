-- cli_node_log_spec.lua: `helios node` logs what its node reports. A node that cannot join
-- (the wrong cluster secret, another cluster id, an id the others do not have) is refused
-- at every handshake: both sides log it with the peer's address and the reason, and a peer
-- that keeps retrying fills neither log: its repeats are summarized (helios.nodelog), a
-- few lines, not one per try. Real node processes (helios.testing), no proxies, so each
-- node sees the others' own addresses.

local testing = require("helios.testing")
local clusterfile = require("helios.clusterfile")
local core = require("helios.core")
local su = require("spec.helpers.storage_util")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local REPEAT_MS = 2000
local read = su.read_file

local function esc(s) return (s:gsub("%p", "%%%0")) end

local function lines_matching(text, pattern)
    local found = {}
    for l in text:gmatch("[^\n]+") do
        if l:find(pattern) then found[#found + 1] = l end
    end
    return found
end

local function edit(cl, id, change)
    local path = cl:config_path(id)
    local conf = assert(clusterfile.load(path))
    change(conf)
    assert(clusterfile.write(path, conf))
end

-- A cluster of 3 where node-3's file (or the others') is edited before anything starts.
local function start(change)
    local cl = testing.cluster{ n = 3, proxies = false, start = false, cluster_id = "test",
                                config = { log_repeat_ms = REPEAT_MS } }
    local ok, err = pcall(function()
        change(cl)
        for _, id in ipairs(cl:ids()) do cl:start(id) end
        cl:leader(15000)
    end)
    if not ok then
        cl:stop()
        error(err, 0)
    end
    return cl
end

-- Wait until each log (node id -> patterns) has a line matching every pattern.
local function wait_logged(cl, want, what)
    cl:wait(function()
        for id, patterns in each(want) do
            local text = read(cl:log_path(id))
            for _, p in ipairs(patterns) do
                if not text:find(p) then return false end
            end
        end
        return true
    end, 15000, what)
end

local FROM = "from node%%-%d %%(127%%.0%%.0%%.1:%%d+%%): handshake refused: "
local function to(cl, n)
    return ("to node%%-%d %%(%s%%): handshake refused by the peer: "):format(n,
        esc(cl:address("node-" .. n)))
end

describe("helios node that cannot join", function()
    it("with the wrong secret: both sides log the refusal, repeats are summarized", function()
        local t0 = core.clock_ms()
        local cl = start(function(c)
            edit(c, "node-3", function(conf) conf.secret = "not the cluster's secret" end)
        end)
        finally(function() cl:stop() end)
        local why = esc("authentication failed (wrong cluster secret?)")
        wait_logged(cl, {
            -- node-1 refuses node-3's connections, and node-3 refuses node-1's
            ["node-1"] = { FROM:format(3) .. why, to(cl, 3) .. why },
            ["node-3"] = { FROM:format(1) .. why, to(cl, 1) .. why },
        }, "both sides to log the refusals")

        -- node-3 retries with backoff; after a window its repeats show as a summary line
        cl:wait(function()
            return read(cl:log_path("node-1")):find("node%-3 .* %[%d+ more in the last %d+ s%]")
        end, 15000, "a summary of node-3's repeated refusals in node-1's log")
        local text = read(cl:log_path("node-1"))
        local elapsed = core.clock_ms() - t0
        -- read after the log: it counts at least every refusal the log shows
        local stats = assert(assert(cl:client():node("node-1")):stats(2000))
        local refused = lines_matching(text, "node%-3 .*" .. why)
        -- per direction: the first line, then at most one summary per window
        local bound = 2 * (1 + math.ceil(elapsed / REPEAT_MS))
        assert.is_true(#refused <= bound, ("%d lines in %d ms (at most %d):\n%s"):format(
            #refused, elapsed, bound, table.concat(refused, "\n")))
        assert.is_true(stats.auth_failures > #refused, ("%d refusals, %d lines"):format(
            stats.auth_failures, #refused))
        assert.is_nil(read(cl:log_path("node-3")):find("leader is", 1, true))
        -- each refusal is one line of the event peer_refused, a warning, with the peer and
        -- why as fields (docs/logging.md)
        for _, l in ipairs(refused) do
            if l:find("handshake refused: ", 1, true) then
                assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z WARN  node%-1 term=%d+ %S+ "
                    .. "peer_refused: transport: ", l)
                assert.matches(" peer=node%-3 ", l)
                assert.matches(" reason=\"authentication failed %(wrong cluster secret%?%)\"", l)
            end
        end
    end)

    it("with another cluster id: both sides name both ids", function()
        local cl = start(function(c)
            edit(c, "node-3", function(conf) conf.cluster_id = "elsewhere" end)
        end)
        finally(function() cl:stop() end)
        local dialer3 = esc("cluster id mismatch: dialer in 'elsewhere', listener in 'test'")
        local dialer1 = esc("cluster id mismatch: dialer in 'test', listener in 'elsewhere'")
        wait_logged(cl, {
            ["node-1"] = { FROM:format(3) .. dialer3, to(cl, 3) .. dialer1 },
            ["node-3"] = { FROM:format(1) .. dialer1, to(cl, 1) .. dialer3 },
        }, "both sides to log the cluster id mismatch")
    end)

    it("with an id the others do not have: refused as an unknown node id", function()
        -- node-1 and node-2 form a cluster of two; node-3's file names all three
        local cl = start(function(c)
            for _, id in ipairs({ "node-1", "node-2" }) do
                edit(c, id, function(conf) conf.nodes["node-3"] = nil end)
            end
        end)
        finally(function() cl:stop() end)
        local why = esc("unknown node id 'node-3' (not in this node's cluster)")
        wait_logged(cl, {
            ["node-1"] = { FROM:format(3) .. why },
            ["node-2"] = { FROM:format(3) .. why },
            ["node-3"] = { to(cl, 1) .. why, to(cl, 2) .. why },
        }, "both sides to log the unknown node id")
    end)
end)
