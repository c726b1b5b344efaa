-- readme_spec.lua: the README's example runs as written.
--
-- Extracts the first ```lua block under the "### Example" heading of README.md and runs it in
-- a fresh luajit with this run's package paths (so `make test-asan` runs it against the
-- sanitizer build too).

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

local function example_block(readme)
    local after = readme:match("\n### Example\n(.*)$")
    assert(after, "README.md has no '### Example' heading")
    local block = after:match("```lua\n(.-)\n```")
    assert(block, "no ```lua block under '### Example'")
    return block
end

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

describe("README", function()
    it("has an Example that runs as written", function()
        local code = example_block(read("README.md"))
        local script = os.tmpname()
        local f = assert(io.open(script, "wb"))
        f:write(code, "\n")
        f:close()

        local cmd = ("LUA_PATH=%s LUA_CPATH=%s luajit %s 2>&1; echo \"exit=$?\""):format(
            shell_quote(package.path), shell_quote(package.cpath), shell_quote(script))
        local p = assert(io.popen(cmd))
        local out = p:read("*a")
        p:close()
        os.remove(script)

        local status = tonumber(out:match("exit=(%d+)%s*$"))
        assert.are.equal(0, status, "the README example failed:\n" .. out)
    end)
end)
