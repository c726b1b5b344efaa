-- spec/storage_prealloc_spec.lua: the open segment is extended with zeros ahead of its
-- records (csrc/storage/log.c, prealloc; docs/storage-format.md, "Preallocation"), so that
-- a group-commit sync writes data and not the file's new size. The zeros must never be
-- mistaken for records or damage, never be served by the read cache after records were
-- written over them, and never end a sealed segment.

local core = require("helios.core")
local tk = require("helios.testkit")
local su = require("spec.helpers.storage_util")

local MiB = 1048576

local function file_size(path)
    return #su.read_file(path)
end

describe("storage preallocation", function()
    local dir
    before_each(function() dir = su.tmpdir() end)
    after_each(function() su.rmdir(dir) end)

    it("extends the open segment with zeros while open and gives them back at close",
       function()
        local st = assert(tk.storage_open(dir))
        assert(st:append(su.entries(1, 50, 1)))
        assert(st:sync())
        local path = su.segment_path(dir, -1)
        local data = su.read_file(path)
        assert.are.equal(MiB, #data)
        -- everything after the last record is zeros
        local recs = su.records(path)
        local last = recs[50]
        assert.are.equal(50, last.index)
        assert.is_nil(data:sub(last.offset + last.size + 1):find("[^%z]"))
        st:close()
        assert.are.equal(last.offset + last.size, file_size(path))
        st = assert(tk.storage_open(dir))
        su.check_entries(st, 1, 50)
        st:close()
    end)

    it("writes only the records with prealloc_bytes = 0", function()
        local st = assert(tk.storage_open(dir, { prealloc_bytes = 0 }))
        assert(st:append(su.entries(1, 50, 1)))
        assert(st:sync())
        local path = su.segment_path(dir, -1)
        local recs = su.records(path)
        assert.are.equal(recs[50].offset + recs[50].size, file_size(path))
        st:close()
    end)

    it("reopens a log left with its zeros (a crash) and appends over them", function()
        local st = assert(tk.storage_open(dir))
        assert(st:append(su.entries(1, 40, 1)))
        assert(st:sync())
        -- a copy of the data dir taken while the log is open is what a crash leaves
        local copy = su.tmpdir()
        os.execute("cp -r '" .. dir .. "/.' '" .. copy .. "'")
        st:close()
        local st2, info = tk.storage_open(copy)
        assert(st2, info)
        assert.matches("of zeros after the last record (preallocated) kept for appends; "
            .. "log ends at index 40", info, 1, true)
        assert.is_nil(info:find("torn tail", 1, true))
        su.check_entries(st2, 1, 40)
        assert(st2:append(su.entries(41, 90, 2)))
        assert(st2:sync())
        su.check_entries(st2, 1, 90)
        st2:close()
        st2 = assert(tk.storage_open(copy))
        assert.are.equal(90, st2:last_index())
        su.check_entries(st2, 1, 90)
        st2:close()
        assert.is_true((core.storage_inspect(copy)))
        su.rmdir(copy)
    end)

    it("still cuts a torn record in front of the zeros", function()
        local st = assert(tk.storage_open(dir))
        assert(st:append(su.entries(1, 30, 1)))
        assert(st:sync())
        local copy = su.tmpdir()
        os.execute("cp -r '" .. dir .. "/.' '" .. copy .. "'")
        st:close()
        local path = su.segment_path(copy, -1)
        local r = su.records(path)[30]
        su.flip(path, r.offset + 36 + math.floor(r.len / 2))
        local st2, info = tk.storage_open(copy)
        assert(st2, info)
        assert.matches("torn tail at offset " .. r.offset, info, 1, true)
        assert.are.equal(29, st2:last_index())
        st2:close()
        su.rmdir(copy)
    end)

    it("never serves cached zeros after records were written over them", function()
        -- Each read caches the 64 KiB block around the log's end; the next records land in
        -- that block, where the file held zeros when it was cached.
        local st = assert(tk.storage_open(dir))
        for k = 0, 19 do
            assert(st:append(su.entries(k * 10 + 1, k * 10 + 10, 1)))
            assert(st:sync())
            su.check_entries(st, k * 10 + 1, k * 10 + 10)
            su.check_entries(st, 1, k * 10 + 10)
        end
        st:close()
    end)

    it("seals segments without zeros and crosses chunk boundaries", function()
        -- 64 KiB chunks, 200 KiB segments: several extensions per segment, and roll-overs
        local opts = { prealloc_bytes = 65536, segment_size = 200 * 1024 }
        local st = assert(tk.storage_open(dir, opts))
        for k = 0, 39 do
            assert(st:append(su.entries(k * 100 + 1, k * 100 + 100, 1)))
            assert(st:sync())
        end
        su.check_entries(st, 1, 4000)
        local segs = su.segments(dir)
        assert.is_true(#segs >= 3)
        for i = 1, #segs - 1 do
            -- a sealed segment ends with its trailer, not with zeros
            local data = su.read_file(dir .. "/log/" .. segs[i])
            assert.is_nil(data:sub(-16):find("^%z+$"))
        end
        st:close()
        st = assert(tk.storage_open(dir, opts))
        su.check_entries(st, 1, 4000)
        st:close()
        assert.is_true((core.storage_inspect(dir)))
    end)

    it("truncates into the zeros' segment and appends again", function()
        local st = assert(tk.storage_open(dir))
        assert(st:append(su.entries(1, 100, 1)))
        assert(st:sync())
        assert(st:truncate(61))
        assert.are.equal(60, st:last_index())
        assert(st:append(su.entries(61, 120, 2)))
        assert(st:sync())
        su.check_entries(st, 1, 120)
        st:close()
        st = assert(tk.storage_open(dir))
        su.check_entries(st, 1, 120)
        assert.are.equal(2, st:entries(61, 61)[1].term)
        st:close()
    end)
end)
