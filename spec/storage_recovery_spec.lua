-- spec/storage_recovery_spec.lua: opening a data dir after a crash. A torn tail (the last
-- record cut short, or followed only by zeros or garbage that holds no valid record) is
-- cut away and reported; damage anywhere else stops the open with the file and offset.
-- Torn tails are made at random points from fixed seeds (printed on failure).

local core = require("helios.core")
local su = require("spec.helpers.storage_util")
local prng = require("spec.helpers.prng")

local SMALL = { segment_size = 4096 }
local N = 300

local function fill(dir, n)
    local st = assert(core.storage_open(dir, SMALL))
    assert(st:set_meta(3, 1))
    assert(st:append(su.entries(1, n or N, 3)))
    assert(st:sync())
    st:close()
end

local function open_fails(dir, pattern)
    local st, code, msg = core.storage_open(dir, SMALL)
    assert.is_nil(st)
    assert.are.equal("ECORRUPT", code)
    assert.matches(pattern, msg, 1, true)
    return msg
end

describe("storage recovery", function()
    local dir
    before_each(function() dir = su.tmpdir() end)
    after_each(function() su.rmdir(dir) end)

    for seed = 1, 40 do
        local tail = ({ "nothing", "zeros", "garbage" })[seed % 3 + 1]
        it("cuts a torn tail: cut at a random point + " .. tail .. " (seed " .. seed .. ")",
           function()
            local rng = prng.new(seed)
            fill(dir)
            local path = su.segment_path(dir, -1)
            local name = path:match("log/%d+")
            local recs = su.records(path)
            local data = su.read_file(path)
            -- a cut anywhere after the first record's start, before the end of the file
            local cut = rng:int(recs[1].offset, #data - 1)
            local extra = ""
            if tail == "zeros" then
                extra = string.rep("\0", rng:int(1, 600))
            elseif tail == "garbage" then
                local g = {}
                for i = 1, rng:int(1, 600) do g[i] = string.char(rng:int(0, 255)) end
                extra = table.concat(g)
            end
            su.write_file(path, data:sub(1, cut) .. extra)
            -- the surviving records are those that end at or before the cut
            local last, torn_at = recs[1].index - 1, nil
            for _, r in ipairs(recs) do
                if r.offset + r.size <= cut then last = r.index else torn_at = torn_at or r.offset end
            end
            local st, info = core.storage_open(dir, SMALL)
            assert(st, "seed " .. seed .. ": " .. tostring(info))
            assert.are.equal(last, st:last_index(), "seed " .. seed)
            if torn_at then
                assert.matches(name .. ": torn tail at offset " .. torn_at, info, 1, true)
            end
            su.check_entries(st, 1, last)
            -- the log goes on where it was cut, and keeps it
            assert(st:append(su.entries(last + 1, last + 20, 3)))
            assert(st:sync())
            st:close()
            st = assert(core.storage_open(dir, SMALL))
            assert.are.equal(last + 20, st:last_index())
            su.check_entries(st, 1, last + 20)
            st:close()
            assert.is_true((core.storage_inspect(dir)))
        end)
    end

    it("removes a last segment whose header never reached the disk", function()
        fill(dir)
        local path = su.segment_path(dir, -1)
        local first = tonumber(path:match("(%d+)$"))
        su.write_file(path, string.rep("\0", 10))
        local st, info = assert(core.storage_open(dir, SMALL))
        assert.matches("interrupted creation", info, 1, true)
        assert.are.equal(first - 1, st:last_index())
        st:close()
    end)

    it("treats a bad checksum in the very last record with nothing after as torn", function()
        fill(dir)
        local path = su.segment_path(dir, -1)
        local recs = su.records(path)
        local r = recs[#recs]
        su.flip(path, r.offset + 36 + math.floor(r.len / 2))
        local st, info = assert(core.storage_open(dir, SMALL))
        assert.matches("torn tail at offset " .. r.offset, info, 1, true)
        assert.are.equal(r.index - 1, st:last_index())
        st:close()
    end)

    it("refuses a bad checksum before the last record, naming file and offset", function()
        fill(dir)
        local path = su.segment_path(dir, -1)
        local recs = su.records(path)
        assert.is_true(#recs >= 3)
        local r = recs[2]
        su.flip(path, r.offset + 20) -- inside the index field
        open_fails(dir, path:match("log/%d+") .. ": record at offset " .. r.offset ..
                        ": bad checksum")
    end)

    it("refuses a record cut short when a valid record follows it", function()
        fill(dir)
        local path = su.segment_path(dir, -1)
        local recs = su.records(path)
        local r = recs[1]
        local data = su.read_file(path)
        -- grow the first record's length: it now reaches over the next ones
        local len = r.len + 100000
        local b = string.char(len % 256, math.floor(len / 256) % 256,
                              math.floor(len / 65536) % 256, 0)
        su.write_file(path, data:sub(1, r.offset + 4) .. b .. data:sub(r.offset + 9))
        open_fails(dir, ": record at offset " .. r.offset .. ": record extends past the end")
    end)

    it("refuses damage in a sealed segment whose footer is damaged too", function()
        fill(dir)
        local path = su.segment_path(dir, 1)
        local size = #su.read_file(path)
        su.flip(path, size - 3) -- trailer magic: open must scan the segment
        su.flip(path, 24 + 36 + 1) -- first record payload
        open_fails(dir, "log/00000000000000000001: record at offset 24: bad checksum")
    end)

    it("scans a sealed segment whose footer alone is damaged, and opens", function()
        fill(dir)
        local path = su.segment_path(dir, 1)
        local size = #su.read_file(path)
        su.flip(path, size - 20) -- inside the footer record
        -- the segment is then a sequence of valid records followed by a bad one that is
        -- not at the end of the log: that is corruption, and open says where
        open_fails(dir, "log/00000000000000000001: record at offset")
    end)

    it("refuses a gap between segments", function()
        fill(dir)
        os.remove(su.segment_path(dir, 2))
        open_fails(dir, "(gap)")
    end)

    it("refuses a segment whose header disagrees with its name", function()
        fill(dir)
        local p = su.segment_path(dir, -1)
        os.rename(p, dir .. "/log/00000000000000099999")
        open_fails(dir, "log/00000000000000099999: header says first index")
    end)

    it("refuses a meta file with a bad checksum, and ignores a leftover meta.tmp", function()
        fill(dir)
        su.write_file(dir .. "/meta.tmp", "half a meta")
        local st, info = assert(core.storage_open(dir, SMALL))
        assert.matches("meta.tmp", info, 1, true)
        assert.are.same({ 3, 1 }, { st:meta() })
        st:close()
        su.flip(dir .. "/meta", 10)
        open_fails(dir, "/meta: bad checksum")
    end)
end)
