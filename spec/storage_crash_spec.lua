-- spec/storage_crash_spec.lua: real processes killed with SIGKILL. A writer process
-- (spec/helpers/storage_writer.lua) appends and acknowledges each durable index; it is
-- killed at a random moment, many times; after each kill the log must reopen and hold
-- every acknowledged index with the right bytes. Moments come from a seeded PRNG
-- (HELIOS_CRASH_SEED, printed); rounds from HELIOS_CRASH_ROUNDS (default 40).

local core = require("helios.core")
local tk = require("helios.testkit")
local su = require("spec.helpers.storage_util")
local prng = require("spec.helpers.prng")

local function alive(pid)
    local f = io.open("/proc/" .. pid .. "/stat", "r")
    if not f then return false end
    local s = f:read("*a") or ""
    f:close()
    -- a zombie has released its files (and its lock) already
    return s:match("^%d+ %b() (%a)") ~= "Z"
end

local function last_ack(path)
    local f = io.open(path, "rb")
    if not f then return 0 end
    local s = f:read("*a")
    f:close()
    local last = 0
    for n in s:gmatch("(%d+)\n") do last = math.max(last, tonumber(n)) end
    return last
end

describe("storage crash test", function()
    it("keeps every acknowledged entry across SIGKILLs at random moments", function()
        local seed = tonumber(os.getenv("HELIOS_CRASH_SEED")) or 20240611
        local rounds = tonumber(os.getenv("HELIOS_CRASH_ROUNDS")) or 40
        print(("\nstorage_crash_spec: seed %d, %d rounds (HELIOS_CRASH_SEED=%d to replay)")
              :format(seed, rounds, seed))
        local rng = prng.new(seed)
        local dir = su.tmpdir()
        local ack = dir .. "/acks"
        local pid
        finally(function()
            if pid and alive(pid) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
            su.rmdir(dir)
        end)
        local kills_with_progress = 0
        local prev_acked = 0
        for round = 1, rounds do
            local p = assert(io.popen(su.child_env() .. " luajit spec/helpers/storage_writer.lua '" ..
                                      dir .. "/data' '" .. ack .. "' " .. (seed + round) ..
                                      " >>'" .. dir .. "/writer.log' 2>&1 & echo $!"))
            pid = tonumber(p:read("*l"))
            p:close()
            os.execute(("sleep %.3f"):format(rng:int(20, 150) / 1000))
            os.execute("kill -9 " .. pid)
            local deadline = os.time() + 10
            while alive(pid) do
                assert(os.time() < deadline, "writer " .. pid .. " did not die")
                os.execute("sleep 0.005")
            end
            pid = nil
            local acked = last_ack(ack)
            if acked > prev_acked then kills_with_progress = kills_with_progress + 1 end
            prev_acked = acked
            local st, info = tk.storage_open(dir .. "/data", { segment_size = 16384 })
            assert(st, ("round %d (seed %d): %s"):format(round, seed, tostring(info)))
            local last = st:last_index()
            assert(last >= acked, ("round %d (seed %d): acknowledged %d, log ends at %d")
                                  :format(round, seed, acked, last))
            su.check_entries(st, 1, last)
            st:close()
        end
        local ok, report = core.storage_inspect(dir .. "/data")
        assert.is_true(ok, report)
        print(("storage_crash_spec: %d kills, %d with new acknowledgements, %d entries acked, %d segments")
              :format(rounds, kills_with_progress, prev_acked, #su.segments(dir .. "/data")))
        assert.is_true(kills_with_progress > rounds / 2, "the writer rarely got to write")
    end)
end)
