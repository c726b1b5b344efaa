-- spec/storage_fault_spec.lua: write errors. ENOSPC, EIO and EROFS come back as
-- ENOSPACE / EIO with a message; the files are put back as they were at the last sync;
-- the log refuses writes until retry(); freeing space lets it go on.
--
-- Two sources of errors: a real 1 MiB tmpfs filled to the brim (mounted if this machine
-- lets us: we need root and a kernel that allows it; otherwise that test is marked
-- pending and says why), and helios.testkit's fault-injecting file system
-- (tk.fault_fs_new, opened as the log's fs), which works everywhere.

local core = require("helios.core")
local tk = require("helios.testkit")
local su = require("spec.helpers.storage_util")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local SMALL = { segment_size = 4096 }

-- The options of a log over a fresh fault-injecting file system, and that file system.
local function faulty(opts)
    local fs = tk.fault_fs_new()
    local o = { fs = fs }
    for k, v in each(opts or {}) do o[k] = v end
    return o, fs
end

local function reopen_check(dir, last)
    local st = assert(tk.storage_open(dir, SMALL))
    assert.are.equal(last, st:last_index())
    su.check_entries(st, 1, last)
    st:close()
    local ok, report = core.storage_inspect(dir)
    assert.is_true(ok, report)
end

describe("storage write errors (injected fault)", function()
    local dir
    before_each(function() dir = su.tmpdir() end)
    after_each(function() su.rmdir(dir) end)

    it("ENOSPC on write: reported, rolled back, refused until retry", function()
        local o, fs = faulty(SMALL)
        local st = assert(tk.storage_open(dir, o))
        assert(st:append(su.entries(1, 50)))
        assert(st:sync())
        fs:fail("write", 1, "no_space")
        assert(st:append(su.entries(51, 60)))
        local ok, code, msg = st:sync()
        assert.is_nil(ok)
        assert.are.equal("no_space", code)
        assert.matches("No space left on device", msg, 1, true)
        assert.are.equal(50, st:last_index())
        -- refused until retry, with the original message
        ok, code, msg = st:append(su.entries(51, 51))
        assert.are.equal("no_space", code)
        assert.matches("No space left", msg, 1, true)
        assert.is_true(st:retry())
        assert(st:append(su.entries(51, 60)))
        assert(st:sync())
        st:close()
        reopen_check(dir, 60)
    end)

    it("a failure while rolling over segments removes the new segments", function()
        -- The first, second, ... write of a batch that spans many segments fails: by the
        -- third, segments were already sealed and created.
        for skip = 0, 3 do
            su.rmdir(dir)
            dir = su.tmpdir()
            local o, fs = faulty(SMALL)
            local st = assert(tk.storage_open(dir, o))
            assert(st:append(su.entries(1, 40)))
            assert(st:sync())
            local before = su.segments(dir)
            fs:fail("write", 1, "no_space", skip)
            local ok, code = st:append(su.entries(41, 400))
            if ok then ok, code = st:sync() end
            assert.are.equal("no_space", code)
            assert.are.equal(1, fs:stats().writes_failed)
            assert.are.same(before, su.segments(dir))
            st:close()
            reopen_check(dir, 40)
        end
    end)

    it("EIO on fdatasync: reported as EIO, the batch is undone", function()
        local o, fs = faulty(SMALL)
        local st = assert(tk.storage_open(dir, o))
        assert(st:append(su.entries(1, 10)))
        assert(st:sync())
        fs:fail("sync", 1, "io")
        assert(st:append(su.entries(11, 20)))
        local ok, code, msg = st:sync()
        assert.is_nil(ok)
        assert.are.equal("io", code)
        assert.matches("fdatasync: Input/output error", msg, 1, true)
        st:close()
        reopen_check(dir, 10)
    end)

    it("EROFS is reported as EIO", function()
        local o, fs = faulty(SMALL)
        local st = assert(tk.storage_open(dir, o))
        fs:fail("write", 1, "read_only")
        assert(st:append(su.entries(1, 3)))
        local ok, code, msg = st:sync()
        assert.are.equal("io", code)
        assert.matches("Read-only file system", msg, 1, true)
        st:close()
    end)

    it("a failed meta write keeps the old term and vote", function()
        local o, fs = faulty()
        local st = assert(tk.storage_open(dir, o))
        assert(st:set_meta(4, 2))
        fs:fail("sync", 1, "io")
        local ok, code = st:set_meta(5, 3)
        assert.are.equal("io", code)
        assert.are.same({ 4, 2 }, { st:meta() })
        st:close()
        st = assert(tk.storage_open(dir))
        assert.are.same({ 4, 2 }, { st:meta() })
        st:close()
    end)
end)

describe("storage write errors (1 MiB tmpfs)", function()
    local dir, mounted, why
    before_each(function()
        dir = su.tmpdir()
        local p = io.popen("mount -t tmpfs -o size=1m tmpfs '" .. dir .. "' 2>&1; echo rc=$?")
        local out = p:read("*a")
        p:close()
        mounted = out:match("rc=0") ~= nil
        why = out:gsub("rc=%d+%s*$", "")
    end)
    after_each(function()
        if mounted then os.execute("umount '" .. dir .. "'") end
        su.rmdir(dir)
    end)

    it("fills the disk: ENOSPACE, nothing acknowledged is lost, freeing space resumes", function()
        if not mounted then
            pending("tmpfs not mountable here (" .. why .. "): covered by the injected fault")
            return
        end
        print("\nstorage_fault_spec: using a real 1 MiB tmpfs at " .. dir)
        su.write_file(dir .. "/filler", string.rep("f", 600 * 1024))
        local st = assert(tk.storage_open(dir .. "/data"))
        local last, code, msg = 0, nil, nil
        while true do
            local ok
            ok, code, msg = st:append(su.entries(last + 1, last + 50))
            if ok then ok, code, msg = st:sync() end
            if not ok then break end
            last = last + 50
        end
        assert.are.equal("no_space", code, msg)
        assert.matches("No space left on device", msg, 1, true)
        assert.is_true(last > 0)
        assert.are.equal(last, st:last_index())
        su.check_entries(st, 1, last)
        local ok, report = core.storage_inspect(dir .. "/data")
        assert.is_true(ok, report)
        -- still full: retry fails again, cleanly
        assert(st:retry())
        ok, code = st:append(su.entries(last + 1, last + 2000))
        if ok then ok, code = st:sync() end
        assert.are.equal("no_space", code)
        -- free space: the same open log goes on after retry
        os.remove(dir .. "/filler")
        assert(st:retry())
        assert(st:append(su.entries(last + 1, last + 100)))
        assert(st:sync())
        st:close()
        reopen_check(dir .. "/data", last + 100)
    end)
end)

-- A failure inside truncate (the conflict repair of a follower) must leave the open log
-- consistent with its files: the retry path of the node rebuilds from this very log object
-- without reopening it.
describe("storage truncate failures", function()
    local dir
    before_each(function() dir = su.tmpdir() end)
    after_each(function() su.rmdir(dir) end)

    local function after_failure(st)
        assert.is_true(st:retry())
        assert.is_nil(io.open(dir .. "/log/TRUNCATE"))
        local last = st:last_index()
        su.check_entries(st, 1, last)
        assert(st:append(su.entries(last + 1, last + 5)))
        assert(st:sync())
        su.check_entries(st, 1, last + 5)
        st:close()
        reopen_check(dir, last + 5)
    end

    -- Every write and sync a truncation does, failed in turn: before its intent
    -- (log/TRUNCATE) is renamed into place nothing has changed; after, the truncation is
    -- under way and retry (or the next open) completes it. Either way the log is whole.
    local shapes = {
        { "cutting the last segment", 10, 6 },
        { "cutting across segments", 200, 30 },
        { "emptying the log (reset)", 40, 1 },
    }
    for _, shape in ipairs(shapes) do
        local what, n, from = shape[1], shape[2], shape[3]
        for _, kind in ipairs{ "sync", "write" } do
            it(("a failed %s at each step of %s"):format(kind, what), function()
                local steps = 0
                for skip = 0, 20 do
                    for _, how in ipairs{ "retry", "reopen" } do
                        su.rmdir(dir)
                        dir = su.tmpdir()
                        local o, fs = faulty(SMALL)
                        local st = assert(tk.storage_open(dir, o))
                        assert(st:append(su.entries(1, n)))
                        assert(st:sync())
                        fs:fail(kind, 1, "io", skip)
                        local ok, code = st:truncate(from)
                        if ok then
                            st:close()
                            assert.is_true(skip > 0)
                            goto done
                        end
                        assert.are.equal("io", code)
                        -- refused until retry
                        assert.is_nil(st:append(su.entries(st:last_index() + 1,
                                                           st:last_index() + 1)))
                        -- the intent is renamed once its fsync (the first sync) succeeded
                        local begun = kind == "sync" and skip >= 1
                        if how == "retry" then
                            assert.is_true(st:retry())
                            assert.are.equal(begun and from - 1 or n, st:last_index())
                            after_failure(st)
                        else
                            st:close()
                            local left = io.open(dir .. "/log/TRUNCATE")
                            if left then left:close() end
                            local st2, info = assert(tk.storage_open(dir, SMALL))
                            local last = st2:last_index()
                            assert.are.equal(begun and from - 1 or n, last)
                            -- an intent the failure left is completed by the open
                            if left then
                                assert.is_true(begun)
                                assert.matches("interrupted truncation from index " .. from,
                                               info, 1, true)
                            end
                            st2:close()
                            reopen_check(dir, last)
                        end
                    end
                    steps = steps + 1
                end
                ::done::
                -- the steps: intent fsync, its rename's log/ fsync, removals' log/ fsync,
                -- the cut's fdatasync, the intent's removal's log/ fsync (as they apply)
                assert.is_true(steps >= (kind == "sync" and 3 or 1))
            end)
        end
    end

    it("an empty log pinned by a header-only segment can still be reset", function()
        -- A crash while the first write of a new segment was landing leaves its header and
        -- a torn record: open cuts the record and keeps an empty segment that starts at 5.
        local st = assert(tk.storage_open(dir, SMALL))
        assert(st:append(su.entries(5, 7)))
        assert(st:sync())
        st:close()
        local seg = su.segment_path(dir, 1)
        su.write_file(seg, su.read_file(seg):sub(1, 24 + 10))
        st = assert(tk.storage_open(dir, SMALL))
        assert.are.equal(4, st:last_index())
        -- A snapshot through 19 was installed: the log is emptied and goes on at 20.
        assert(st:truncate(st:first_index()))
        assert(st:append(su.entries(20, 22)))
        assert(st:sync())
        st:close()
        st = assert(tk.storage_open(dir, SMALL))
        assert.are.equal(20, st:first_index())
        assert.are.equal(22, st:last_index())
        su.check_entries(st, 20, 22)
        st:close()
    end)
end)
