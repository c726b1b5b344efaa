-- core_golden_spec.lua: the consensus core one message at a time, against golden files.
--
-- Each spec/golden/*.txt is a script for build/hr-step (csrc/testkit/step/step.c documents
-- it), a driver that steps one hr_raft and prints every message it sends and every change
-- of its state, with the expected output written under each command, as etcd raft's
-- testdata/*.txt files are. This spec runs every script and fails on any difference,
-- printing a diff. After an intended change to the core's behaviour, regenerate them:
--
--   HELIOS_GOLDEN_REWRITE=1 busted spec/core_golden_spec.lua   (or: build/hr-step -w FILE)
--
-- and read `git diff spec/golden` before committing it: it is the change in behaviour.
-- A new scenario: write the commands (no "----" needed), rewrite, and check the output.
-- Under `make test-asan` the driver built with the sanitizers runs instead.

local DIR = "spec/golden"
local ASAN = package.cpath:find("build%-asan/") ~= nil
local DRIVER = ASAN and "build-asan/hr-step" or "build/hr-step"
local REWRITE = os.getenv("HELIOS_GOLDEN_REWRITE") == "1"

local su = require("spec.helpers.storage_util")
local read, write = su.read_file, su.write_file

local function shell(cmd)
    local p = assert(io.popen(cmd .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    return out
end

-- Run the driver on a script: its regenerated text, its exit status and its stderr.
local function run(path)
    local out, err = os.tmpname(), os.tmpname()
    local status = shell(("%s '%s' >'%s' 2>'%s'; echo $?"):format(DRIVER, path, out, err))
    local actual, errors = read(out), read(err)
    os.remove(out)
    os.remove(err)
    return actual, tonumber(status:match("(%d+)%s*$")), errors
end

local function diff(path, actual)
    local tmp = os.tmpname()
    write(tmp, actual)
    local d = shell(("diff -u '%s' '%s'"):format(path, tmp))
    os.remove(tmp)
    return d
end

local function scripts()
    local list = {}
    local p = assert(io.popen("ls -1 " .. DIR .. "/*.txt 2>/dev/null"))
    for line in p:lines() do list[#list + 1] = line end
    p:close()
    return list
end

describe("core golden files", function()
    it("has a driver to run them", function()
        local f = io.open(DRIVER, "rb")
        assert(f, DRIVER .. " is missing: `make build` builds it")
        f:close()
        assert.is_true(#scripts() >= 5, "expected the scripts in " .. DIR)
    end)

    for _, path in ipairs(scripts()) do
        it(path:match("([^/]+)%.txt$"), function()
            local actual, status, errors = run(path)
            assert(status == 0, ("%s: hr-step exited with status %s:\n%s"):format(
                path, tostring(status), errors))
            if REWRITE then
                write(path, actual)
                return
            end
            local expected = read(path)
            if actual ~= expected then
                assert.is_true(false, ("%s: the core's behaviour differs from the golden "
                    .. "file (- expected, + actual):\n%s\nIf the change is intended, regenerate "
                    .. "with HELIOS_GOLDEN_REWRITE=1 busted spec/core_golden_spec.lua and review "
                    .. "`git diff %s`."):format(path, diff(path, actual), DIR))
            end
        end)
    end

    -- The golden files can fail: the Figure 8 script, run against a core whose commit rule
    -- is switched off (hr_config.unsafe_commit_old_terms), no longer matches.
    it("notices a core that commits an old term's entry by counting replicas", function()
        local src = read(DIR .. "/figure8.txt")
        local broken, n = src:gsub("(\nconfig [^\n]-max_entries=1)\n",
                                   "%1 unsafe_commit_old_terms=true\n", 1)
        assert.are.equal(1, n)
        local tmp = os.tmpname()
        write(tmp, broken)
        local actual, status, errors = run(tmp)
        os.remove(tmp)
        assert(status == 0, errors)
        assert.are_not.equal(broken, actual)
        -- The first scenario (the rule on) now commits entry 2 at its first acknowledgement.
        local first = actual:sub(1, assert(actual:find("---- Without the rule", 1, true)))
        assert.is_truthy(first:find("\ncommit: 1 %-> 2\n"), first)
    end)

    it("fails a script with an unknown command or a malformed message", function()
        local tmp = os.tmpname()
        write(tmp, "config id=1 voters=1,2,3\n\nfrobnicate\n\ndeliver 2->1 vote_resp term=x\n")
        local actual, status, errors = run(tmp)
        os.remove(tmp)
        assert.are.equal(2, status)
        assert.is_truthy(actual:find("error: unknown command frobnicate", 1, true), actual)
        assert.is_truthy(actual:find("error: deliver: bad field term=x", 1, true), actual)
        assert.is_truthy(errors:find(":3: unknown command frobnicate", 1, true), errors)
    end)
end)
