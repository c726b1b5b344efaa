-- spec/simfs_spec.lua: what the simulated file system (csrc/sim/simfs.h) guarantees, and
-- what a crash takes away: file bytes only once the file was synced, names only once
-- their directory was; by flag, a prefix of the unsynced writes, a torn one, or any subset
-- of unsynced pages. The storage specs over it (storage_simfs_spec.lua) rely on exactly
-- this, so it is pinned down operation by operation here.

local tk = require("helios.testkit")

-- A file system with one durably named, empty file "d/f" (open as handle h, read-write).
local function with_file(seed, flags)
    local fs = tk.simfs_new(seed or 1, flags)
    assert(fs:mkdir("d"))
    local root = assert(fs:open(".", "d"))
    assert(fs:sync(root))
    local h = assert(fs:open("d/f", "rwc"))
    local d = assert(fs:open("d", "d"))
    assert(fs:sync(d))
    return fs, h, d
end

local function content(fs, path)
    local s = fs:read(path)
    return s
end

describe("simulated file system", function()
    it("reads what was written, sized and listed like a POSIX file system", function()
        local fs, h = with_file()
        assert(fs:pwrite(h, 0, "hello"))
        assert(fs:pwrite(h, 8, "!"))
        assert.are.equal("hello\0\0\0!", fs:pread(h, 0, 100))
        assert.are.equal("lo", fs:pread(h, 3, 2))
        assert.are.equal("", fs:pread(h, 50, 4))
        assert.are.equal(9, fs:size(h))
        assert(fs:truncate(h, 2))
        assert.are.equal("he", content(fs, "d/f"))
        assert(fs:open("d/b", "rwc"))
        assert(fs:open("d/a", "rwc"))
        assert.are.same({ "a", "b", "f" }, fs:list("d"))
        local _, code = fs:open("d/missing", "r")
        assert.are.equal("not_found", code)
        _, code = fs:open("nodir/x", "rwc")
        assert.are.equal("not_found", code)
        _, code = fs:mkdir("d")
        assert.are.equal("exists", code)
        _, code = fs:unlink("d")
        assert.are.equal("is_directory", code)
        _, code = fs:open("d/f", "d")
        assert.are.equal("not_directory", code)
        assert(fs:rename("d/a", "d/f")) -- replaces
        assert.are.same({ "b", "f" }, fs:list("d"))
        assert.are.equal("", content(fs, "d/f"))
        assert(fs:unlink("d/b"))
        assert.are.same({ "f" }, fs:list("d"))
        local rh = assert(fs:open("d/f", "r"))
        _, code = fs:pwrite(rh, 0, "x")
        assert.are.equal("bad_handle", code)
    end)

    it("keeps a file's bytes across a crash only once the file was synced", function()
        local fs, h = with_file()
        assert(fs:pwrite(h, 0, "synced"))
        assert(fs:sync(h, true)) -- fdatasync: bytes and size
        assert(fs:pwrite(h, 6, "+lost"))
        assert(fs:truncate(h, 3)) -- unsynced too
        fs:reboot()
        assert.are.equal("synced", content(fs, "d/f"))
    end)

    it("keeps a new name only once its directory was synced, whatever the file's syncs", function()
        local fs, _, d = with_file()
        local h = assert(fs:open("d/new", "rwc"))
        assert(fs:pwrite(h, 0, "data"))
        assert(fs:sync(h, false)) -- fsync of the file: not its name
        fs:reboot()
        assert.are.same({ "f" }, fs:list("d"))
        h = assert(fs:open("d/new", "rwc"))
        assert(fs:pwrite(h, 0, "data"))
        assert(fs:sync(h, true))
        d = assert(fs:open("d", "d"))
        assert(fs:sync(d))
        fs:reboot()
        assert.are.same({ "f", "new" }, fs:list("d"))
        assert.are.equal("data", content(fs, "d/new"))
    end)

    it("loses a rename or an unlink its directory was not synced after", function()
        local fs, h, d = with_file()
        assert(fs:pwrite(h, 0, "v1"))
        assert(fs:sync(h))
        local t = assert(fs:open("d/t", "rwct"))
        assert(fs:pwrite(t, 0, "v2"))
        assert(fs:sync(t))
        assert(fs:sync(d))
        assert(fs:rename("d/t", "d/f"))
        assert.are.equal("v2", content(fs, "d/f"))
        fs:reboot()
        assert.are.equal("v1", content(fs, "d/f")) -- the old file is back
        assert.are.equal("v2", content(fs, "d/t"))
        d = assert(fs:open("d", "d"))
        assert(fs:rename("d/t", "d/f"))
        assert(fs:sync(d))
        assert(fs:unlink("d/f"))
        fs:reboot()
        assert.are.equal("v2", content(fs, "d/f")) -- the unlink was lost
        assert.are.same({ "f" }, fs:list("d"))
    end)

    it("loses a new directory, and all under it, until its parent is synced", function()
        local fs = tk.simfs_new(1)
        assert(fs:mkdir("x"))
        assert(fs:mkdir("x/y"))
        local h = assert(fs:open("x/y/f", "rwc"))
        assert(fs:pwrite(h, 0, "deep"))
        assert(fs:sync(h))
        assert(fs:sync(assert(fs:open("x/y", "d"))))
        assert(fs:sync(assert(fs:open("x", "d"))))
        fs:reboot()
        assert.are.same({}, fs:list("."))
        assert(fs:mkdir("x"))
        assert(fs:sync(assert(fs:open(".", "d"))))
        fs:reboot()
        assert.are.same({ "x" }, fs:list("."))
    end)

    it("crashes at the n-th mutating operation: it and every later one fail with EIO", function()
        local fs, h = with_file()
        local base = fs:op_count()
        assert.is_true(base > 0)
        fs:crash_at(base + 3)
        assert(fs:pwrite(h, 0, "a"))           -- base + 1
        assert(fs:sync(h))                     -- base + 2
        local _, code = fs:pwrite(h, 1, "b")   -- base + 3: the crash
        assert.are.equal("io", code)
        assert.is_true(fs:crashed())
        for _, op in ipairs{
            function() return fs:sync(h) end,
            function() return fs:truncate(h, 0) end,
            function() return fs:mkdir("e") end,
            function() return fs:unlink("d/f") end,
            function() return fs:rename("d/f", "d/g") end,
            function() return fs:open("d/new", "rwc") end,
        } do
            local ok, c = op()
            assert.is_nil(ok)
            assert.are.equal("io", c)
        end
        assert.are.equal(base + 3, fs:op_count()) -- nothing counted after the crash
        assert.are.equal("ab", fs:pread(h, 0, 10)) -- reads still work: the code unwinds
        assert(fs:close(h))
        fs:reboot()
        assert.is_false(fs:crashed())
        assert.are.equal("a", content(fs, "d/f"))
        h = assert(fs:open("d/f", "rw"))
        assert(fs:pwrite(h, 1, "c")) -- a rebooted file system takes writes again
    end)

    it("closes the crashed process's handles and releases its locks at the reboot", function()
        local fs, h = with_file()
        assert(fs:lock(h, "ex"))
        local h2 = assert(fs:open("d/f", "rw"))
        local _, code = fs:lock(h2, "ex")
        assert.are.equal("locked", code) -- another handle, even in this process
        _, code = fs:lock(h2, "sh")
        assert.are.equal("locked", code)
        assert(fs:lock(h, "un"))
        assert(fs:lock(h2, "sh"))
        assert(fs:lock(h, "sh"))
        _, code = fs:lock(h, "ex")
        assert.are.equal("locked", code)
        assert(fs:close(h2))
        assert(fs:lock(h, "ex")) -- closing h2 released its lock
        fs:reboot()
        _, code = fs:pread(h, 0, 1)
        assert.are.equal("bad_handle", code)
        local h3 = assert(fs:open("d/f", "rw"))
        assert.is_true(h3 > h and h3 > h2) -- numbers are not reused
        assert(fs:lock(h3, "ex")) -- the dead process's lock is gone
    end)

    it("keeps a random prefix of the unsynced writes with keep_unsynced", function()
        local writes = { "aaaa", "bbbb", "cccc", "dddd" }
        local full = table.concat(writes)
        local seen = {}
        for seed = 1, 200 do
            local fs, h = with_file(seed, { keep_unsynced = true })
            assert(fs:pwrite(h, 0, "base"))
            assert(fs:sync(h))
            for i, w in ipairs(writes) do assert(fs:pwrite(h, 4 * i, w)) end
            fs:reboot()
            local got = content(fs, "d/f")
            assert.are.equal("base", got:sub(1, 4))
            local kept = got:sub(5)
            assert.are.equal(0, #kept % 4, "whole writes only: " .. kept)
            assert.are.equal(full:sub(1, #kept), kept)
            seen[#kept / 4] = true
        end
        for k = 0, 4 do assert.is_true(seen[k], "never kept " .. k .. " writes") end
    end)

    it("tears a write at any byte with torn", function()
        local torn, lengths = 0, {}
        for seed = 1, 300 do
            local fs, h = with_file(seed, { torn = true })
            assert(fs:pwrite(h, 0, "0123456789"))
            assert(fs:pwrite(h, 10, "abcdefghij"))
            fs:reboot()
            local got = content(fs, "d/f")
            assert.are.equal(("0123456789abcdefghij"):sub(1, #got), got) -- a prefix
            lengths[#got] = true
            if #got % 10 ~= 0 then torn = torn + 1 end
        end
        assert.is_true(torn > 0)
        assert.is_true(lengths[0] and lengths[10] and lengths[20])
        assert.is_true(tk.simfs_new(1, { torn = true }):stats().torn == 0)
    end)

    it("keeps any subset of the unsynced 4 KiB pages with pages", function()
        local later_without_earlier = 0
        local P = 4096
        for seed = 1, 100 do
            local fs, h = with_file(seed, { pages = true })
            assert(fs:pwrite(h, 0, ("o"):rep(3 * P)))
            assert(fs:sync(h))
            assert(fs:pwrite(h, 0, ("n"):rep(4 * P))) -- three pages rewritten, one added
            fs:reboot()
            local got = content(fs, "d/f")
            assert.is_true(#got == 3 * P or #got == 4 * P)
            local pages = {}
            for p = 0, #got / P - 1 do
                local pg = got:sub(p * P + 1, (p + 1) * P)
                assert.is_true(pg == ("o"):rep(P) or pg == ("n"):rep(P) or
                               (p == 3 and pg == ("\0"):rep(P)), "page " .. p)
                pages[p] = pg:sub(1, 1)
            end
            if pages[0] == "o" and pages[1] == "n" then
                later_without_earlier = later_without_earlier + 1
            end
        end
        assert.is_true(later_without_earlier > 0)
    end)

    it("replays a crash from its seed", function()
        local function run(seed)
            local fs, h = with_file(seed, { torn = true, pages = true })
            for i = 0, 9 do assert(fs:pwrite(h, i * 1000, ("%d"):format(i):rep(1500))) end
            fs:reboot()
            return content(fs, "d/f")
        end
        assert.are.equal(run(5), run(5))
        local differ = false
        for seed = 6, 20 do differ = differ or run(seed) ~= run(5) end
        assert.is_true(differ)
    end)
end)
