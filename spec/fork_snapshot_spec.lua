-- spec/fork_snapshot_spec.lua: core.snapshot_fork and core.snapshot_sync (csrc/lua/
-- fork_snapshot.c): exact bytes in both forms, the parent's loop ticking while a child
-- serializes a 1,000,000-key table, errors and kills reaching done, other children of the
-- process left to their owners, and the parent's buffered stdout not written twice; and
-- core.snapshot_file (csrc/lua/snapshot_file.c), the file of a snapshot taken in slices.
-- Every loop run has a deadline.

local core = require("helios.core")
local su = require("spec.helpers.storage_util")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local format = string.format
local read = su.read_file

local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
end

local shell_quote = require("helios.util.shell").quote

-- Run the loop until pred() holds; fail after ms.
local function run_until(pred, ms)
    local timed_out = false
    local guard = core.timer(ms, 0, function() timed_out = true end)
    while not pred() and not timed_out do
        local ok, err = core.run("once")
        assert(ok, err)
    end
    guard:stop()
    assert(not timed_out, format("no result within %d ms", ms))
end

-- Start a fork snapshot and wait for done; returns ok, err, bytes, stats, handle.
local function fork_and_wait(path, fn, ms, opts)
    local r
    local h, code, detail = core.snapshot_fork(path, fn, function(...) r = { ... } end, opts)
    assert(h, tostring(code) .. ": " .. tostring(detail))
    run_until(function() return r ~= nil end, ms or 10000)
    return r[1], r[2], r[3], r[4], h
end

-- Bytes with every byte value, NULs included, longer than the writer's 1 MiB buffer.
local function binary(n)
    local parts = {}
    for i = 0, 255 do parts[#parts + 1] = string.char(i) end
    local unit = table.concat(parts)
    return string.rep(unit, math.ceil(n / #unit)):sub(1, n)
end

describe("core.snapshot_fork / snapshot_sync", function()
    local dir

    before_each(function()
        dir = assert(io.popen("LD_PRELOAD= mktemp -d /tmp/helios-fork-snap.XXXXXX")):read("*l")
    end)

    after_each(function()
        os.execute("LD_PRELOAD= rm -rf " .. shell_quote(dir)) -- no ASan in rm
        -- Close the handles of finished timers and snapshots now, not at exit with the loop
        -- gone (clean under `make test-asan ASAN_LEAKS=1`).
        collectgarbage()
        collectgarbage()
        core.run("nowait")
    end)

    it("sync: writes exactly the returned bytes, the writer's bytes, and both", function()
        local big = binary(3 * 1024 * 1024 + 17)
        local ok, err, n = core.snapshot_sync(dir .. "/a", function() return big end)
        assert.is_true(ok, err)
        assert.is_nil(err)
        assert.equal(#big, n)
        assert.equal(big, read(dir .. "/a"))

        ok, err, n = core.snapshot_sync(dir .. "/b", function(w)
            w:write("head:", 42, "\0")
            w:write(big):write(":tail")
        end)
        assert.is_true(ok, err)
        local want = "head:42\0" .. big .. ":tail"
        assert.equal(#want, n)
        assert.equal(want, read(dir .. "/b"))

        ok, err, n = core.snapshot_sync(dir .. "/c", function(w)
            w:write("written;")
            return "returned"
        end)
        assert.is_true(ok, err)
        assert.equal("written;returned", read(dir .. "/c"))

        ok, err, n = core.snapshot_sync(dir .. "/d", function() return "" end)
        assert.is_true(ok, err)
        assert.equal(0, n)
        assert.equal("", read(dir .. "/d"))
    end)

    it("sync: errors are returned, the temp file is left, a writer kept by fn is closed",
       function()
        local kept
        local ok, err, n = core.snapshot_sync(dir .. "/e", function(w)
            kept = w
            w:write("partial")
            error("boom in sync")
        end)
        assert.is_false(ok)
        assert.matches("boom in sync", err)
        assert.matches("stack traceback", err)
        assert.equal(0, n) -- still in the buffer: nothing reached the file
        assert.is_true(exists(dir .. "/e"))
        assert.has_error(function() kept:write("late") end)

        ok, err = core.snapshot_sync(dir .. "/e", function() return "x" end)
        assert.is_false(ok)
        assert.matches("File exists", err)

        ok, err = core.snapshot_sync(dir .. "/f", function() return {} end)
        assert.is_false(ok)
        assert.matches("must return a string or nil", err)

        assert.has_error(function() core.snapshot_sync(dir .. "/g", "x") end,
                         "Usage: core.snapshot_sync(path, fn): fn must be a function")
    end)

    it("fork: writes exactly the bytes fn returned, and via the writer", function()
        local big = binary(2 * 1024 * 1024 + 5)
        local ok, err, n, stats, h = fork_and_wait(dir .. "/a", function() return big end)
        assert.is_true(ok, err)
        assert.is_nil(err)
        assert.equal(#big, n)
        assert.equal(big, read(dir .. "/a"))
        assert.is_true(stats.pid > 0 and stats.pid == h:pid())
        assert.is_true(stats.fork_ms >= 0 and stats.serialize_ms >= 0)
        assert.is_number(stats.child_minflt)
        assert.is_false(h:running())
        assert.equal(stats.fork_ms, h:fork_ms())
        assert.is_false(h:kill()) -- reaped: never signals a pid that may be reused

        ok, err, n = fork_and_wait(dir .. "/b", function(w)
            for i = 1, 1000 do w:write(i, "\t", "v", i, "\n") end
            w:write(big)
            return "end"
        end)
        assert.is_true(ok, err)
        local parts = {}
        for i = 1, 1000 do parts[#parts + 1] = i .. "\tv" .. i .. "\n" end
        local want = table.concat(parts) .. big .. "end"
        assert.equal(#want, n)
        assert.equal(want, read(dir .. "/b"))
    end)

    it("fork: the child works on a copy; the parent's state is untouched", function()
        local state = { a = "1" }
        local ok, err = fork_and_wait(dir .. "/a", function()
            state.a = "changed in the child"
            return state.a
        end)
        assert.is_true(ok, err)
        assert.equal("changed in the child", read(dir .. "/a"))
        assert.equal("1", state.a)
    end)

    it("fork: the parent's loop keeps ticking while a 1,000,000-key table is written",
       function()
        local kv = {}
        for i = 1, 1000000 do kv[format("k%07d", i)] = format("v%07d", i) end
        local ticks_during, done = 0, false
        local ticker = core.timer(10, 10, function()
            if not done then ticks_during = ticks_during + 1 end
        end)
        local ok, err, n = fork_and_wait(dir .. "/kv", function(w)
            for k, v in each(kv) do w:write(k, "=", v, "\n") end
        end, 60000)
        done = true
        ticker:stop()
        assert.is_true(ok, err)
        assert.equal(1000000 * 18, n) -- "k0000001=v0000001\n"
        -- Ticks during the snapshot, not a timing bound: the parent was never blocked on it.
        assert.is_true(ticks_during >= 2, "ticks during the snapshot: " .. ticks_during)
    end)

    it("fork: an error raised in fn reaches done; the temp file is left", function()
        local ok, err, n = fork_and_wait(dir .. "/a", function(w)
            w:write("some")
            error("boom from the child")
        end)
        assert.is_false(ok)
        assert.matches("boom from the child", err)
        assert.matches("stack traceback", err)
        assert.equal(0, n)
        assert.is_true(exists(dir .. "/a"))

        ok, err = fork_and_wait(dir .. "/b", function() return 42 end)
        assert.is_false(ok)
        assert.matches("must return a string or nil", err)
    end)

    it("fork: kill() aborts the child and done gets false", function()
        local r
        local h = assert(core.snapshot_fork(dir .. "/a", function()
            core.sleep_ms(20000)
            return "never"
        end, function(...) r = { ... } end))
        assert.is_true(h:running())
        assert.matches("running", tostring(h))
        local t = core.timer(20, 0, function() assert.is_true(h:kill()) end)
        run_until(function() return r ~= nil end, 10000)
        t:stop()
        assert.is_false(r[1])
        assert.matches("killed by signal 9 %(KILL%) by handle:kill%(%)", r[2])
        assert.is_false(h:running())
    end)

    it("fork: leaves other children of the process to their owners", function()
        local pid = assert(core.proc_spawn({ "sleep", "0.05" }, {}))
        local p = assert(io.popen("sleep 0.05; echo from-popen"))
        -- Both exit while the snapshot child is still at work.
        local ok, err = fork_and_wait(dir .. "/a", function()
            core.sleep_ms(300)
            return "x"
        end)
        assert.is_true(ok, err)
        local how, code = core.proc_wait(pid, 5000)
        assert.equal("exited", how)
        assert.equal(0, code)
        assert.equal("from-popen\n", p:read("*a"))
        assert.is_true(p:close()) -- pclose's waitpid found its child: nobody reaped it
    end)

    -- A child still holding copies of the parent's fds would hold their flock()s too: a
    -- node of this process shut down just after a fork could not lock its data dir again
    -- (its restart refused with busy). snapshot_fork returns only once the child has
    -- closed what it inherited.
    it("fork: the child holds none of the parent's files once snapshot_fork returns",
       function()
        local tk = require("helios.testkit")
        local data = dir .. "/data"
        local go = dir .. "/go"
        for _ = 1, 20 do -- the child's closing raced the parent's next steps
            local st = assert(tk.storage_open(data))
            local r
            os.remove(go)
            -- The child stays until the parent has looked at it (at most 10 s).
            local h = assert(core.snapshot_fork(dir .. "/a", function()
                for _ = 1, 2000 do
                    if exists(go) then break end
                    core.sleep_ms(5)
                end
                return "x"
            end, function(...) r = { ... } end))
            st:close()
            local again, code, detail = tk.storage_open(data)
            assert(again, tostring(code) .. ": " .. tostring(detail))
            again:close()
            -- Only 0-2, the file and its status pipe are left in the child.
            local ls = assert(io.popen("LD_PRELOAD= ls /proc/" .. h:pid() .. "/fd"))
            local fds = {}
            for fd in ls:lines() do
                if tonumber(fd) > 2 then fds[#fds + 1] = fd end
            end
            ls:close()
            assert.equal(2, #fds, table.concat(fds, " "))
            assert(io.open(go, "wb")):close()
            run_until(function() return r ~= nil end, 10000)
            assert.is_true(r[1], r[2])
            os.remove(dir .. "/a")
        end
    end)

    it("fork: refuses an existing path and bad arguments", function()
        assert(io.open(dir .. "/a", "wb")):close()
        local called = false
        local h, code, detail = core.snapshot_fork(dir .. "/a", function() return "x" end,
                                                   function() called = true end)
        assert.is_nil(h)
        assert.equal("io", code)
        assert.matches("File exists", detail)
        core.run("nowait")
        assert.is_false(called)
        assert.has_error(function() core.snapshot_fork(dir .. "/b", "x", print) end,
                         "Usage: core.snapshot_fork(path, fn, done[, opts]): fn must be a function")
        assert.has_error(function() core.snapshot_fork(dir .. "/b", print) end,
                         "Usage: core.snapshot_fork(path, fn, done[, opts]): done must be a function")
    end)

    it("fork: the parent's buffered stdout is not written by the child", function()
        local script = dir .. "/s.lua"
        local f = assert(io.open(script, "wb"))
        f:write([[
            local core = require("helios.core")
            io.stdout:write("parent-buffered;") -- stdout is a pipe: fully buffered
            local h = assert(core.snapshot_fork(arg[1], function()
                io.stdout:write("child;")
                return "x"
            end, function(ok, err) io.stdout:write(ok and "done;" or err) end))
            assert(core.run())
        ]])
        f:close()
        local cmd = ("LUA_PATH=%s LUA_CPATH=%s luajit %s %s 2>&1"):format(
            shell_quote(package.path), shell_quote(package.cpath), shell_quote(script),
            shell_quote(dir .. "/out"))
        local p = assert(io.popen(cmd))
        local out = p:read("*a")
        p:close()
        -- The child's own buffered text dies with it (_exit); the parent's appears once.
        assert.equal("parent-buffered;done;", out)
    end)
end)

describe("core.snapshot_file", function()
    local dir

    before_each(function()
        dir = assert(io.popen("LD_PRELOAD= mktemp -d /tmp/helios-snap-file.XXXXXX")):read("*l")
    end)

    after_each(function()
        os.execute("LD_PRELOAD= rm -rf " .. shell_quote(dir))
        collectgarbage()
        collectgarbage()
        core.run("nowait")
    end)

    it("writes in pieces from the loop, then syncs off it and calls done", function()
        local path = dir .. "/s.tmp"
        local f = assert(core.snapshot_file(path))
        local big = binary(3 * 1024 * 1024 + 17)
        assert.equal(f, f:write("head;", 42, ";"))
        f:write(big)
        for i = 1, 1000 do f:write(i, ",") end
        local want = "head;42;" .. big
        for i = 1, 1000 do want = want .. i .. "," end
        assert.equal(#want, f:bytes())
        local r
        assert.is_true(f:finish(function(...) r = { ... } end))
        assert.is_nil(r) -- never before the sync has run on the threadpool
        assert.has_error(function() f:write("late") end)
        assert.has_error(function() f:finish(print) end,
                         "Usage: f:finish(done): the file was finished or aborted")
        assert.is_false(f:abort())
        run_until(function() return r ~= nil end, 10000)
        assert.are.same({ true, nil, #want }, { r[1], r[2], r[3] })
        assert.is_true(read(path) == want, "the file does not hold the bytes written")
        assert.matches("finished", tostring(f))
    end)

    it("aborts, refuses an existing path, and closes what the collector finds open", function()
        local f = assert(core.snapshot_file(dir .. "/a"))
        f:write("partial")
        assert.is_true(f:abort())
        assert.is_false(f:abort())
        assert.has_error(function() f:write("x") end)
        assert.is_true(exists(dir .. "/a")) -- the caller removes it
        local g, code, detail = core.snapshot_file(dir .. "/a")
        assert.is_nil(g)
        assert.equal("io", code)
        assert.matches("File exists", detail)
        -- An object dropped while open closes its file: no fd is left behind.
        local function fds()
            local p = io.popen("ls /proc/$PPID/fd | wc -l") -- the shell's parent: this process
            local n = tonumber(p:read("*l"))
            p:close()
            return n
        end
        collectgarbage()
        local before = fds()
        for i = 1, 50 do assert(core.snapshot_file(dir .. "/g" .. i)):write("x") end
        collectgarbage()
        collectgarbage()
        assert.is_true(fds() <= before, "open files were left behind")
    end)
end)
