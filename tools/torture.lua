-- tools/torture.lua: one long torture run (docs/testing.md, "Torture runs"): a 5-node
-- ATLAS cluster of `helios node` processes, 10 clients and the nemesis for SECONDS, then
-- the checks. Prints the seed, the fault schedule, the counts and the verdict; exit status
-- 0 when valid, 1 when not (the history, timeline and logs are kept: the path is printed).
--
--   make torture SECONDS=300 [SEED=7] [MODE=control|resp] [KINDS=kill,partition_half]
--   luajit tools/torture.lua SECONDS [SEED [MODE [KINDS]]]      (paths as .busted sets)

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local core = require("helios.core")
local testing = require("helios.testing")
local nemesis = require("helios.testing.nemesis")
local workload = require("helios.testing.workload")

local seconds = tonumber(arg[1]) or 60
local seed = tonumber(arg[2] ~= "" and arg[2] or nil) or math.floor(core.clock_ms()) % 100000
local mode = (arg[3] ~= "" and arg[3]) or "control"
local kinds
if arg[4] and arg[4] ~= "" then
    kinds = {}
    for k in arg[4]:gmatch("[^,]+") do kinds[#kinds + 1] = k end
end

print(string.format("torture: %d s, seed %d, mode %s", seconds, seed, mode))
local cl = testing.cluster{ n = 5, fsm = "helios.atlas.fsm", client = mode == "resp",
                            config = { election_timeout_ms = 500, heartbeat_timeout_ms = 100 } }
local ok, r = pcall(function()
    local n = nemesis.new(cl, { seed = seed, kinds = kinds, print = print })
    return workload.run{ cluster = cl, nemesis = n, duration_ms = seconds * 1000,
                         mode = mode, seed = seed, print = print,
                         dir = string.format("%s/helios-torture-%d", os.getenv("TMPDIR")
                                             or "/tmp", seed) }
end)
cl:stop()
if not ok then
    io.stderr:write("torture: ", tostring(r), "\n")
    os.exit(2)
end
print(workload.report(r))
if r.valid then os.execute("rm -rf '" .. r.dir .. "'") end
os.exit(r.valid and 0 or 1)
