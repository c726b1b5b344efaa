-- spec/storage_group_spec.lua: group commit on the libuv threadpool, in inline mode
-- (rounds on the loop's thread, as a follower runs them) and in per-turn mode (on the
-- threadpool, started once per loop turn, as a leader's), through the C benchmark
-- tk.storage_bench (N proposers, each with one batch in flight; it checks that
-- completions arrive in seq order and fails otherwise).

local tk = require("helios.testkit")
local su = require("spec.helpers.storage_util")

describe("storage group commit", function()
    local dir
    before_each(function() dir = su.tmpdir() end)
    after_each(function() su.rmdir(dir) end)

    it("makes many concurrent appends durable with far fewer fsyncs", function()
        local r = assert(tk.storage_bench(dir .. "/d", 64, 3000, 100))
        assert.are.equal(3000, r.appends)
        print(("\nstorage_group_spec: 64 proposers: %.0f appends/s, %.0f fsyncs/s, " ..
               "%.1f appends per fsync; disk baseline %.0f fsyncs/s")
              :format(r.appends_per_s, r.fsyncs_per_s, r.appends / r.fsyncs,
                      r.baseline_fsyncs_per_s))
        assert.is_true(r.appends / r.fsyncs >= 8, "group commit did not group")
        local st = assert(tk.storage_open(dir .. "/d"))
        assert.are.equal(3000, st:last_index())
        assert.are.equal(string.rep("x", 100), st:entries(3000, 3000)[1].data)
        st:close()
    end)

    it("with one proposer, one fsync per append", function()
        local r = assert(tk.storage_bench(dir .. "/d", 1, 200, 100))
        assert.are.equal(200, r.appends)
        -- one per append, and one for the header of the segment the first append creates
        -- (synced on its own before any record: docs/storage-format.md, "Write path guarantees")
        assert.are.equal(201, r.fsyncs)
    end)

    -- Inline: on the loop's thread, as a follower's. Per turn: on the threadpool, but
    -- started once per loop turn, as a leader's; the bench fails if a write or a
    -- completion started a round by itself (it counts the rounds run_due started against
    -- the group's). Both must group as well, completions still in order.
    for _, mode in ipairs({ "inline", "per_turn" }) do
        it("groups as well in " .. mode .. " mode, completions still in order", function()
            local r = assert(tk.storage_bench(dir .. "/d", 64, 3000, 100, mode))
            assert.are.equal(3000, r.appends)
            -- Every completion of a round proposes again at once, so the next round takes
            -- all 64: far fewer fsyncs than appends.
            assert.is_true(r.appends / r.fsyncs >= 8, mode .. " rounds did not group")
            local st = assert(tk.storage_open(dir .. "/d"))
            assert.are.equal(3000, st:last_index())
            st:close()
            local one = assert(tk.storage_bench(dir .. "/e", 1, 200, 100, mode))
            assert.are.equal(201, one.fsyncs)
        end)
    end

    it("takes true for inline mode and refuses an unknown mode", function()
        local one = assert(tk.storage_bench(dir .. "/e", 1, 20, 100, true))
        assert.are.equal(21, one.fsyncs)
        assert.has_error(function() tk.storage_bench(dir .. "/f", 1, 1, 1, "yes") end)
    end)
end)
