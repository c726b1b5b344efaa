-- spec/console_script_spec.lua: `helios console SOCKET < steps.lua`: stdin that is not a
-- terminal is run as a script, chunk by chunk (a chunk ends where it compiles), each
-- result printed; the exit status is 1 if any chunk failed (docs/console.md).

local testing = require("helios.testing")
local cli = require("helios.cli")
local shell = require("helios.util.shell")

local function read_file(path)
    local f = assert(io.open(path))
    local s = f:read("*a")
    f:close()
    return s
end

-- Run `helios console sock` with script on stdin: exit status, stdout, stderr.
local function console(dir, sock, script, args)
    local input, out, err = dir .. "/steps.lua", dir .. "/out.txt", dir .. "/err.txt"
    local f = assert(io.open(input, "w"))
    f:write(script)
    f:close()
    local words = {}
    for _, a in ipairs(cli.helios_command()) do words[#words + 1] = shell.quote(a) end
    words[#words + 1] = "console"
    for _, a in ipairs(args or { sock }) do words[#words + 1] = shell.quote(a) end
    local cmd = string.format("%s < %s > %s 2> %s; echo $?", table.concat(words, " "),
        shell.quote(input), shell.quote(out), shell.quote(err))
    local p = io.popen(cmd)
    local status = tonumber(p:read("*l"))
    p:close()
    return status, read_file(out), read_file(err)
end

describe("helios console with a script on stdin", function()
    local cl, leader, dir

    setup(function()
        cl = testing.cluster({ n = 1 })
        leader = cl:leader(15000)
        dir = cl:dir()
    end)

    teardown(function()
        if cl then cl:stop() end
    end)

    it("runs each chunk, prints its results and exits 0", function()
        local status, out, err = console(dir, cl:socket(leader), table.concat({
            "-- a comment alone is a chunk with nothing to print",
            "function double(x)",
            "    return x * 2",
            "end",
            "double(21)",
            "status().role",
            "set('script-key', 'a value')",
            "get('script-key')",
            "local kept = { b = { 1, 2 }, a = 'x' }",
            "kept",
            "print('printed', 7)",
            "1, nil, 'two'",
            "",
        }, "\n"))
        assert.are.equal("", err)
        assert.are.equal(0, status)
        assert.are.equal(table.concat({
            "42",
            '"leader"',
            '"OK"',
            '"a value"',
            '{ a = "x", b = { 1, 2 } }',
            "printed\t7",
            "1", "nil", '"two"',
            "",
        }, "\n"), out)
    end)

    it("goes on after a failing chunk and exits 1", function()
        local status, out, err = console(dir, cl:socket(leader), table.concat({
            "1 + 1",
            "error('first failure')",
            "local t = nil; return t.field",
            "2 + 2",
            "",
        }, "\n"))
        assert.are.equal(1, status)
        assert.are.equal("2\n4\n", out)
        assert.truthy(err:find("error: first failure", 1, true), err)
        assert.truthy(err:find("console:1: attempt to index", 1, true), err)
    end)

    it("says a chunk left unfinished at the end is a syntax error", function()
        local status, out, err = console(dir, cl:socket(leader), "3 + 3\nfunction broken()\n")
        assert.are.equal(1, status)
        assert.are.equal("6\n", out)
        assert.truthy(err:find("syntax error: the input ends inside a chunk", 1, true), err)
    end)

    it("finds the socket with --data DIR --id ID", function()
        local status, out = console(dir, nil, "node.id\n", { "--data", dir, "--id", leader })
        assert.are.equal(0, status)
        assert.are.equal(string.format("%q\n", leader), out)
    end)

    it("fails with a clear message when no node listens", function()
        local status, out, err = console(dir, dir .. "/nowhere.sock", "1\n")
        assert.are.equal(1, status)
        assert.are.equal("", out)
        assert.truthy(err:find("helios console: ", 1, true), err)
    end)
end)
