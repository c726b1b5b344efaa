-- cli_inspect_spec.lua: `helios inspect <data_dir>` prints the report of a data directory
-- and says with its exit status whether the directory is sound (0) or not (1).

local core = require("helios.core")
local su = require("spec.helpers.storage_util")

-- Run bin/helios with args in a child process; returns exit status, output.
local function helios(...)
    local args = {}
    for i, a in ipairs({ ... }) do args[i] = "'" .. a .. "'" end
    local p = assert(io.popen(("%s bin/helios %s 2>&1; echo \"exit=$?\""):format(
        su.child_env(), table.concat(args, " "))))
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("exit=(%d+)\n?$"))
    return code, out:gsub("exit=%d+\n?$", "")
end

describe("helios inspect", function()
    local dir
    before_each(function()
        dir = su.tmpdir()
        local st = assert(core.storage_open(dir, { segment_size = 16384 }))
        assert(st:set_meta(3, 1))
        assert(st:append(su.entries(1, 200, 3)))
        assert(st:sync())
        st:close()
    end)
    after_each(function() su.rmdir(dir) end)

    it("exits 0 on a sound directory and prints meta, segments and checksums", function()
        local code, out = helios("inspect", dir)
        assert.are.equal(0, code, out)
        assert.matches("meta: term 3, vote 1", out, 1, true)
        assert.matches("log/%d+: index 1%.%.%d+", out)
        assert.matches("log: index 1..200 (200 entries)", out, 1, true)
        assert.matches("snapshots:", out, 1, true)
        assert.matches("status: sound", out, 1, true)
    end)

    it("exits 1 on a flipped bit and names the segment and offset", function()
        su.flip(su.segment_path(dir, 1), 24 + 36 + 1)
        local code, out = helios("inspect", dir)
        assert.are.equal(1, code, out)
        assert.matches("record at offset 24: bad checksum", out, 1, true)
        assert.matches("status: CORRUPT", out, 1, true)
    end)

    -- A truncation that failed once its intent was renamed into place (the fsync of log/
    -- after the rename failed here, before anything was cut; a crash leaves the same):
    -- inspect reports it and checks the log as the next open will leave it. A damaged
    -- intent is corruption (it is renamed into place only once synced).
    it("reports a pending truncation, and a damaged intent", function()
        local st = assert(core.storage_open(dir, { segment_size = 16384 }))
        assert.is_true(#su.segments(dir) > 1)
        st:fault("sync", 1, "EIO", 1) -- the intent's fsync succeeds, log/'s fails
        assert.is_nil(st:truncate(50))
        st:close()
        local code, out = helios("inspect", dir)
        assert.are.equal(0, code, out)
        assert.matches("log/TRUNCATE: truncation from index 50 under way", out, 1, true)
        assert.matches("the next open completes it", out, 1, true)
        assert.matches("removed by the pending truncation", out, 1, true)
        assert.matches("log: index 1..49 (49 entries)", out, 1, true)
        assert.matches("status: sound", out, 1, true)
        su.flip(dir .. "/log/TRUNCATE", 9)
        code, out = helios("inspect", dir)
        assert.are.equal(1, code, out)
        assert.matches("log/TRUNCATE: ERROR log/TRUNCATE: bad checksum", out, 1, true)
        assert.matches("status: CORRUPT", out, 1, true)
        local ok, ecode, msg = core.storage_open(dir)
        assert.is_nil(ok)
        assert.are.equal("ECORRUPT", ecode)
        assert.matches("log/TRUNCATE: bad checksum", msg, 1, true)
    end)

    it("is a usage error without a directory", function()
        local code, out = helios("inspect")
        assert.are.equal(2, code, out)
        assert.matches("expects one data directory", out, 1, true)
    end)
end)
