-- cli_node_log_spec.lua: `helios node` logs what its node reports. A node started with the
-- wrong cluster secret cannot join: it and the others log each refused handshake with the
-- peer's address and the reason, on both sides, and a peer that keeps retrying fills
-- neither log: its repeats are summarized (helios.nodelog), a few lines, not one per try.
-- Real node processes (helios.testing), no proxies: each node sees the others' addresses.

local testing = require("helios.testing")
local clusterfile = require("helios.clusterfile")
local core = require("helios.core")

local REPEAT_MS = 2000

local function read(path)
    local f = assert(io.open(path))
    local s = f:read("*a")
    f:close()
    return s
end

local function lines_matching(text, pattern)
    local found = {}
    for l in text:gmatch("[^\n]+") do
        if l:find(pattern) then found[#found + 1] = l end
    end
    return found
end

local function esc(s) return (s:gsub("%p", "%%%0")) end

describe("helios node with the wrong cluster secret", function()
    it("is refused, both sides log the address and the reason, repeats are summarized",
       function()
        local cl = testing.cluster{ n = 3, proxies = false, start = false,
                                    config = { log_repeat_ms = REPEAT_MS } }
        finally(function() cl:stop() end)
        local path = cl:config_path("node-3")
        local conf = assert(clusterfile.load(path))
        conf.secret = "not the cluster's secret"
        assert(clusterfile.write(path, conf))
        local t0 = core.clock_ms()
        for _, id in ipairs(cl:ids()) do cl:start(id) end
        cl:leader(15000)

        local log1, log3 = cl:log_path("node-1"), cl:log_path("node-3")
        local a1, a3 = esc(cl:address("node-1")), esc(cl:address("node-3"))
        local secret = esc("authentication failed (wrong cluster secret?)")
        local want = {
            -- node-1 refuses node-3's connections, and node-3 refuses node-1's
            [log1] = { "from node%-3 %(127%.0%.0%.1:%d+%): handshake refused: " .. secret,
                       "to node%-3 %(" .. a3 .. "%): handshake refused by the peer: " .. secret },
            [log3] = { "from node%-1 %(127%.0%.0%.1:%d+%): handshake refused: " .. secret,
                       "to node%-1 %(" .. a1 .. "%): handshake refused by the peer: " .. secret },
        }
        cl:wait(function()
            for file, patterns in pairs(want) do
                local text = read(file)
                for _, p in ipairs(patterns) do
                    if not text:find(p) then return false end
                end
            end
            return true
        end, 15000, "both sides to log the refusals")

        -- node-3 retries with backoff; after a window its repeats show as a summary line
        cl:wait(function()
            return read(log1):find("node%-3 .* %[%d+ more in the last %d+ s%]") ~= nil
        end, 15000, "a summary of node-3's repeated refusals in node-1's log")
        local stats = assert(assert(cl:client():node("node-1")):stats(2000))
        local text = read(log1)
        local elapsed = core.clock_ms() - t0
        local refused = lines_matching(text, "node%-3 .*" .. secret)
        -- per direction: the first line, then at most one summary per window
        local bound = 2 * (1 + math.ceil(elapsed / REPEAT_MS))
        assert.is_true(#refused <= bound, ("%d lines in %d ms (at most %d):\n%s"):format(
            #refused, elapsed, bound, table.concat(refused, "\n")))
        assert.is_true(stats.auth_failures > #refused, ("%d refusals, %d lines"):format(
            stats.auth_failures, #refused))
        -- node-3 never got anywhere
        assert.is_nil(read(log3):find("leader is", 1, true))
    end)
end)
