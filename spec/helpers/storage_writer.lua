--- spec/helpers/storage_writer.lua: the writer process of spec/storage_crash_spec.lua.
-- Appends batches of entries (payloads from storage_util.payload) to the log in dir and,
-- after each sync returns, appends the last durable index to ackfile: an acknowledgement,
-- written only once the entries are durable. Runs until killed.
--   luajit spec/helpers/storage_writer.lua <dir> <ackfile> <seed>
local tk = require("helios.testkit")
local su = require("spec.helpers.storage_util")
local prng = require("spec.helpers.prng")

local dir, ackfile, seed = arg[1], arg[2], tonumber(arg[3])
assert(dir and ackfile and seed, "Usage: storage_writer.lua <dir> <ackfile> <seed>")
local rng = prng.new(seed)
local st = assert(tk.storage_open(dir, { segment_size = 16384 }))
local ack = assert(io.open(ackfile, "a"))
ack:setvbuf("no")
-- The writer before us may have been killed halfway through a line: end it, so that its
-- digits (a prefix: never more than it acknowledged) are not glued to ours.
ack:write("\n")
while true do
    local last = st:last_index()
    local n = rng:int(1, 20)
    assert(st:append(su.entries(last + 1, last + n, 1)))
    assert(st:sync())
    ack:write(tostring(last + n) .. "\n") -- one write(2): a kill leaves all of it or none
end
