-- cli_inspect_spec.lua: `helios inspect <data_dir>` prints the report of a data directory
-- and says with its exit status whether the directory is sound (0) or not (1).

local core = require("helios.core")
local tk = require("helios.testkit")
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
        local st = assert(tk.storage_open(dir, { segment_size = 16384 }))
        assert(st:set_meta(3, 1))
        assert(st:append(su.entries(1, 200, 3)))
        assert(st:sync())
        st:close()
    end)
    after_each(function() su.rmdir(dir) end)

    it("exits 0 on a sound directory and prints meta, segments and checksums", function()
        local code, out = helios("inspect", dir)
        assert.are.equal(0, code, out)
        assert.matches("meta: term 3, vote 0x0000000000000001 (checksum ok)", out, 1, true)
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
        assert.matches("status: DAMAGED", out, 1, true)
    end)

    it("calls a directory that lost log/ but holds meta damaged, not foreign", function()
        su.rmdir(dir .. "/log")
        local code, out = helios("inspect", dir)
        assert.are.equal(1, code, out)
        assert.matches("log: ERROR ", out, 1, true)
        assert.matches("status: DAMAGED", out, 1, true)
    end)

    it("exits 3 on a missing directory: not a data directory, not damage", function()
        local code, out = helios("inspect", dir .. "/nope")
        assert.are.equal(3, code, out)
        assert.are.equal("data dir: " .. dir .. "/nope\n"
            .. "status: not a data directory: it does not exist\n", out)
    end)

    it("exits 3 on an empty directory and on a file", function()
        local empty = dir .. "/empty"
        os.execute("mkdir '" .. empty .. "'")
        local code, out = helios("inspect", empty)
        assert.are.equal(3, code, out)
        assert.matches("status: not a data directory: it holds none of meta, log/, "
            .. "snapshots/ (no node has stored anything here)", out, 1, true)
        assert.not_matches("DAMAGED", out, 1, true)
        code, out = helios("inspect", dir .. "/meta")
        assert.are.equal(3, code, out)
        assert.matches("status: not a data directory: it is not a directory", out, 1, true)
    end)

    -- A truncation that failed once its intent was renamed into place (the fsync of log/
    -- after the rename failed here, before anything was cut; a crash leaves the same):
    -- inspect reports it and checks the log as the next open will leave it. A damaged
    -- intent is corruption (it is renamed into place only once synced).
    it("reports a pending truncation, and a damaged intent", function()
        local fs = tk.fault_fs_new()
        local st = assert(tk.storage_open(dir, { segment_size = 16384, fs = fs }))
        assert.is_true(#su.segments(dir) > 1)
        fs:fail("sync", 1, "io", 1) -- the intent's fsync succeeds, log/'s fails
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
        assert.matches("status: DAMAGED", out, 1, true)
        local ok, ecode, msg = tk.storage_open(dir)
        assert.is_nil(ok)
        assert.are.equal("corrupt", ecode)
        assert.matches("log/TRUNCATE: bad checksum", msg, 1, true)
    end)

    it("is a usage error without a directory, or with two", function()
        local code2, out2 = helios("inspect", dir, dir)
        assert.are.equal(2, code2, out2)
        local code, out = helios("inspect")
        assert.are.equal(2, code, out)
        assert.matches("expects one data directory", out, 1, true)
    end)
end)

describe("helios inspect: node ids", function()
    local raft = require("helios.raft")
    local nh = require("spec.helpers.node")
    local root

    -- A one-node cluster that elects itself, so its meta holds a vote for "node-1" (stored
    -- as the hash of the id), then stops. Its data dir is root/node-1. It waits for the
    -- first commit, not for leadership alone: a single node leads as soon as it votes for
    -- itself, before its term and vote are durable, and a shutdown drops what the disk has
    -- not taken yet, as a crash would (csrc/storage/group.h).
    before_each(function()
        root = nh.tmpdir()
        local node = raft.new{ id = "node-1", data_dir = root .. "/node-1", secret = "s",
                               peers = { ["node-1"] = "127.0.0.1:" .. core.free_port() },
                               fsm = { apply = function() end } }
        assert(node:start())
        raft.spawn(function()
            local deadline = raft.now() + 10000
            repeat raft.sleep(10) until node:status().commit_index > 0 or raft.now() > deadline
            node:shutdown()
        end)
        assert(raft.run())
        os.execute(("cp -r '%s/node-1' '%s/copy'"):format(root, root))
    end)
    after_each(function() nh.rmrf(root) end)

    it("names the vote after the data dir (<data_dir>/<id>) when the hash matches", function()
        local code, out = helios("inspect", root .. "/node-1")
        assert.are.equal(0, code, out)
        assert.matches("meta: term %d+, vote node%-1 %(checksum ok%)", out)
    end)

    it("prints an unknown vote in hex, and says how to name it", function()
        local code, out = helios("inspect", root .. "/copy")
        assert.are.equal(0, code, out)
        local hex = out:match("meta: term %d+, vote 0x(%x+) %(checksum ok%)")
        assert.are.equal(16, hex and #hex, out)
        assert.matches("--config FILE prints it by name", out, 1, true)
    end)

    it("names it from --config, or from the cluster.lua beside the data dir", function()
        local cf = root .. "/cluster.lua"
        su.write_file(cf, [[return { nodes = { ["node-1"] = "127.0.0.1:1",
                                               ["node-2"] = "127.0.0.1:2" } }]])
        local code, out = helios("inspect", root .. "/copy", "--config", cf)
        assert.are.equal(0, code, out)
        assert.matches("meta: term %d+, vote node%-1 ", out)
        code, out = helios("inspect", root .. "/copy")
        assert.are.equal(0, code, out)
        assert.matches("meta: term %d+, vote node%-1 ", out)
        code, out = helios("inspect", root .. "/copy", "--config", root .. "/none.lua")
        assert.are.equal(2, code, out)
        assert.matches("helios inspect: --config ", out, 1, true)
    end)
end)
