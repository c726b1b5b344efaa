-- spec/storage_recovery_spec.lua: opening a data dir after a crash. A torn tail (the last
-- record cut short, or followed only by zeros or garbage that holds no valid record) is
-- cut away and reported, and so is damage inside the last sync's run of records even when
-- valid records follow it (a crash keeps any subset of unsynced pages: docs/storage-format.md,
-- "Recovery rules"); damage anywhere else stops the open with the file and offset.
-- Torn tails are made at random points from fixed seeds (printed on failure).

local core = require("helios.core")
local tk = require("helios.testkit")
local su = require("spec.helpers.storage_util")
local prng = require("spec.helpers.prng")

local SMALL = { segment_size = 4096 }
local N = 300

local function fill(dir, n)
    local st = assert(tk.storage_open(dir, SMALL))
    assert(st:set_meta(3, 1))
    assert(st:append(su.entries(1, n or N, 3)))
    assert(st:sync())
    st:close()
end

-- One segment written by two syncs: entries 1..20, then 21..40. Returns its path and its
-- records (su.records).
local ONE_SEGMENT = { segment_size = 1048576 }
local function two_syncs(dir)
    local st = assert(tk.storage_open(dir, ONE_SEGMENT))
    assert(st:set_meta(3, 1))
    assert(st:append(su.entries(1, 20, 3)))
    assert(st:sync())
    assert(st:append(su.entries(21, 40, 3)))
    assert(st:sync())
    st:close()
    local path = su.segment_path(dir, -1)
    assert.are.equal(1, #su.segments(dir))
    return path, su.records(path)
end

-- Overwrite bytes from, from + 1, ... of the file at path with zeros (a page that never
-- reached the disk reads back as zeros).
local function zero(path, from, n)
    local data = su.read_file(path)
    su.write_file(path, data:sub(1, from) .. string.rep("\0", n) .. data:sub(from + n + 1))
end

local function open_fails(dir, pattern)
    local st, code, msg = tk.storage_open(dir, SMALL)
    assert.is_nil(st)
    assert.are.equal("corrupt", code)
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
            local st, info = tk.storage_open(dir, SMALL)
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
            st = assert(tk.storage_open(dir, SMALL))
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
        local st, info = assert(tk.storage_open(dir, SMALL))
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
        local st, info = assert(tk.storage_open(dir, SMALL))
        assert.matches("torn tail at offset " .. r.offset, info, 1, true)
        assert.are.equal(r.index - 1, st:last_index())
        st:close()
    end)

    it("refuses a bad checksum before a later sync's records, naming file and offset",
       function()
        local path, recs = two_syncs(dir)
        local r = recs[2]
        su.flip(path, r.offset + 20) -- inside the index field
        open_fails(dir, path:match("log/%d+") .. ": record at offset " .. r.offset ..
                        ": bad checksum")
    end)

    it("refuses a record cut short when a later sync's record follows it", function()
        local path, recs = two_syncs(dir)
        local r = recs[1]
        local data = su.read_file(path)
        -- grow the first record's length: it now reaches over the next ones
        local len = r.len + 100000
        local b = string.char(len % 256, math.floor(len / 256) % 256,
                              math.floor(len / 65536) % 256, 0)
        su.write_file(path, data:sub(1, r.offset + 4) .. b .. data:sub(r.offset + 9))
        open_fails(dir, ": record at offset " .. r.offset .. ": record extends past the end")
    end)

    it("marks the first record each sync writes, and only that one", function()
        local path, recs = two_syncs(dir)
        assert.are.equal(2, su.segment_version(path))
        for _, r in ipairs(recs) do
            local want = (r.index == 1 or r.index == 21) and su.SYNC_MARK or 0
            assert.are.equal(want, r.flags, "record " .. r.index)
        end
        -- one sync over several segments (roll-overs), then a truncation: the first record
        -- of each segment and the first one written after the truncation are marked
        local st = assert(tk.storage_open(dir, SMALL))
        assert(st:append(su.entries(41, 140, 3)))
        assert(st:sync())
        assert(st:truncate(130))
        assert(st:append(su.entries(130, 135, 3)))
        assert(st:sync())
        st:close()
        local segs = su.segments(dir)
        assert.is_true(#segs > 3)
        for k = 2, #segs do
            local p = su.segment_path(dir, k)
            assert.are.equal(2, su.segment_version(p))
            for i, r in ipairs(su.records(p)) do
                local want = (i == 1 or r.index == 130) and su.SYNC_MARK or 0
                assert.are.equal(want, r.flags, "record " .. r.index .. " of " .. p)
            end
        end
    end)

    it("marks one record for a sync written in several pieces (a large batch)", function()
        local st = assert(tk.storage_open(dir, { segment_size = 16 * 1048576 }))
        assert(st:append(su.entries(1, 8000, 3))) -- > 1 MiB: written as it is appended
        assert(st:sync())
        st:close()
        local path = su.segment_path(dir, -1)
        local recs = su.records(path)
        assert.are.equal(8000, #recs)
        assert.is_true(recs[#recs].offset > 1048576)
        for _, r in ipairs(recs) do
            assert.are.equal(r.index == 1 and su.SYNC_MARK or 0, r.flags, "record " .. r.index)
        end
    end)

    for _, damage in ipairs({ "bit flip", "zeroed page" }) do
        it("cuts damage inside the last sync's run though valid records follow (" .. damage ..
           ")", function()
            local path, recs = two_syncs(dir)
            local name = path:match("log/%d+")
            local r = recs[30]
            if damage == "bit flip" then
                su.flip(path, r.offset + 36 + math.floor(r.len / 2))
            else
                zero(path, r.offset, recs[34].offset - r.offset)
            end
            local size = #su.read_file(path)
            local st, info = tk.storage_open(dir, SMALL)
            assert(st, info)
            assert.matches(name .. ": torn tail at offset " .. r.offset .. " (" ..
                           (size - r.offset) .. " bytes) truncated; log ends at index 29",
                           info, 1, true)
            assert.are.equal(29, st:last_index())
            su.check_entries(st, 1, 29) -- all of the first sync, and 21..29 of the second
            assert(st:append(su.entries(30, 50, 3)))
            assert(st:sync())
            st:close()
            st = assert(tk.storage_open(dir, SMALL))
            assert.are.equal(50, st:last_index())
            su.check_entries(st, 1, 50)
            st:close()
            assert.is_true((core.storage_inspect(dir)))
        end)

        it("refuses damage inside an earlier sync's run when a later mark follows (" ..
           damage .. ")", function()
            local path, recs = two_syncs(dir)
            local r = recs[10]
            if damage == "bit flip" then
                su.flip(path, r.offset + 36 + math.floor(r.len / 2))
            else
                zero(path, r.offset, recs[14].offset - r.offset)
            end
            open_fails(dir, path:match("log/%d+") .. ": record at offset " .. r.offset .. ": ")
            local ok, report = core.storage_inspect(dir)
            assert.is_false(ok)
            assert.matches("record at offset " .. r.offset, report, 1, true)
        end)
    end

    it("cuts a new segment's first sync back to its header when its first page was lost",
       function()
        local st = assert(tk.storage_open(dir, ONE_SEGMENT))
        assert(st:append(su.entries(1, 40, 3)))
        assert(st:sync())
        st:close()
        local path = su.segment_path(dir, -1)
        local recs = su.records(path)
        assert.is_true(recs[#recs].offset > 4096)
        zero(path, 24, 4096 - 24) -- the header was synced on its own, before any record
        local st2, info = tk.storage_open(dir, SMALL)
        assert(st2, info)
        assert.matches("torn tail at offset 24", info, 1, true)
        assert.are.equal(0, st2:last_index())
        st2:close()
    end)

    it("refuses a damaged segment header when records follow it", function()
        local path = two_syncs(dir)
        su.flip(path, 10)
        open_fails(dir, path:match("log/%d+") .. ": offset 0: bad segment header")
    end)

    it("reads a version 1 segment with the old rule, and keeps writing it as version 1",
       function()
        local path, recs = two_syncs(dir)
        su.rewrite_as_v1(path)
        assert.are.equal(1, su.segment_version(path))
        -- undamaged, it opens and reads, and what is appended to it stays version 1
        local st = assert(tk.storage_open(dir, ONE_SEGMENT))
        su.check_entries(st, 1, 40)
        assert(st:append(su.entries(41, 45, 3)))
        assert(st:sync())
        st:close()
        assert.are.equal(1, su.segment_version(path))
        recs = su.records(path)
        assert.are.equal(45, #recs)
        for _, r in ipairs(recs) do assert.are.equal(0, r.flags, "record " .. r.index) end
        assert.is_true((core.storage_inspect(dir)))
        -- damage with a valid record after it is corruption, wherever it is
        local data = su.read_file(path)
        su.flip(path, recs[30].offset + 36 + 1)
        open_fails(dir, path:match("log/%d+") .. ": record at offset " .. recs[30].offset ..
                        ": bad checksum")
        -- damage in the very last record is still a torn tail
        su.write_file(path, data)
        su.flip(path, recs[45].offset + 36 + 1)
        local st2, info = tk.storage_open(dir, SMALL)
        assert(st2, info)
        assert.matches("torn tail at offset " .. recs[45].offset, info, 1, true)
        assert.are.equal(44, st2:last_index())
        st2:close()
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
        local st, info = assert(tk.storage_open(dir, SMALL))
        assert.matches("meta.tmp", info, 1, true)
        assert.are.same({ 3, 1 }, { st:meta() })
        st:close()
        su.flip(dir .. "/meta", 10)
        open_fails(dir, "/meta: bad checksum")
    end)
end)
