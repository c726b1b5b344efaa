--- spec/bench/linearize.lua: how long the linearizability checker takes on large histories
-- (helios.testing.linearize, csrc/testkit/linearize.c). Prints figures, asserts nothing
-- about time.
--
--   luajit spec/bench/linearize.lua                 (make bench runs it; from the root)
--   HELIOS_BENCH_OPS=300000 luajit spec/bench/linearize.lua
--
-- Method: linearizable histories generated from a seed (spec/helpers/linearize_gen.lua): 10
-- processes, one op at a time each, 50% reads, 30% writes, 20% cas, 1% of ops with an
-- unknown outcome (info: half never take effect, some take effect after the client gave
-- up), over a few keys. One history has a value of its own for every write, one draws
-- values from 1..5 (so most writes collide, the harder case for the search). Each is
-- written as a JSON-lines file, loaded back, paired and checked; the figures are the times
-- of each stage, the search's steps and stored configurations, and the peak RSS. Then two of
-- them with one read in the middle of key "a" made to return a value nobody wrote: a failing
-- history makes the search try every order of everything before the failure.

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local lin = require("helios.testing.linearize")
local gen = require("spec.helpers.linearize_gen")

local NOPS = tonumber(os.getenv("HELIOS_BENCH_OPS")) or 200000
local clock = os.clock

local function peak_rss_mb()
    local f = io.open("/proc/self/status")
    if not f then return 0 end
    local s = f:read("*a")
    f:close()
    return (tonumber(s:match("VmHWM:%s*(%d+)")) or 0) / 1024
end

local function run(name, o)
    local t = clock()
    local recs = gen.history(o)
    if o.bad then
        -- the middle ok read of key "a" returns a value nobody wrote
        local reads = {}
        for _, r in ipairs(recs) do
            if r.type == "ok" and r.f == "read" and r.key == "a" then reads[#reads + 1] = r end
        end
        reads[math.floor(#reads / 2)].value = "never written"
    end
    local t_gen = clock() - t
    local path = os.tmpname()
    t = clock()
    local f = assert(io.open(path, "w"))
    for _, r in ipairs(recs) do
        r.op = nil
        f:write(lin.encode(r), "\n")
    end
    f:close()
    local t_write = clock() - t
    t = clock()
    local loaded = assert(lin.load(path))
    local t_load = clock() - t
    os.remove(path)
    t = clock()
    local ops = lin.pair(loaded)
    local t_pair = clock() - t
    t = clock()
    local r = lin.check(ops)
    local t_check = clock() - t
    local steps, states = 0, 0
    for _, k in each(r.keys) do
        steps, states = steps + k.steps, math.max(states, k.states)
    end
    print(("%-34s %7d ops (%d ok, %d fail, %d info) %-8s check %.2f s (pair %.2f s), "
           .. "load %.2f s, write %.2f s, gen %.2f s; %d steps, <= %d states a key")
          :format(name, #ops, r.counts.ok, r.counts.fail, r.counts.info, r.verdict, t_check,
                  t_pair, t_load, t_write, t_gen, steps, states))
    if r.failure then
        print(("  fails where it should: %s of process %s"):format(lin.label(r.failure.op),
                                                               r.failure.op.process))
    end
    recs, loaded, ops, r = nil, nil, nil, nil
    collectgarbage()
    collectgarbage()
end

print(("linearizability checker, %d-op histories of 10 processes (CPU seconds)"):format(NOPS))
run("5 keys, unique values", { seed = 1, processes = 10, ops = NOPS,
                               keys = { "a", "b", "c", "d", "e" }, info = 0.01 })
run("5 keys, values 1..5", { seed = 2, processes = 10, ops = NOPS,
                             keys = { "a", "b", "c", "d", "e" }, values = 5, info = 0.01 })
run("1 key, values 1..5", { seed = 3, processes = 10, ops = NOPS, keys = { "a" }, values = 5,
                            info = 0.01 })
run("5 keys, unique values, one wrong read", { seed = 1, processes = 10, ops = NOPS,
    keys = { "a", "b", "c", "d", "e" }, info = 0.01, bad = true })
run("5 keys, values 1..5, one wrong read", { seed = 2, processes = 10, ops = NOPS,
    keys = { "a", "b", "c", "d", "e" }, values = 5, info = 0.01, bad = true })
print(("peak RSS %.0f MB"):format(peak_rss_mb()))
