-- readme_spec.lua: the README's examples run as written.
--
-- Every ```lua block of README.md right after the line
--   <!-- runs as written: spec/readme_spec.lua runs every block marked like this -->
-- is run in a fresh luajit with this run's package paths (so `make test-asan` runs them
-- against the sanitizer build too) and must exit 0.

local su = require("spec.helpers.storage_util")

local MARK = "<!-- runs as written: spec/readme_spec.lua runs every block marked like this -->"

local read = su.read_file

local function marked_blocks(readme)
    local blocks, from = {}, 1
    while true do
        local s, e = readme:find(MARK, from, true)
        if not s then break end
        local block = readme:match("^\n```lua\n(.-)\n```", e + 1)
        assert(block, "a runs-as-written mark not followed by a ```lua block at byte " .. s)
        local heading = readme:sub(1, s):match(".*\n(#+ [^\n]*)") or "?"
        blocks[#blocks + 1] = { code = block, heading = heading }
        from = e + 1
    end
    return blocks
end

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function run(code)
    local script = os.tmpname()
    local f = assert(io.open(script, "wb"))
    f:write(code, "\n")
    f:close()
    local cmd = ("LUA_PATH=%s LUA_CPATH=%s timeout 120 luajit %s 2>&1; echo \"exit=$?\""):format(
        shell_quote(package.path), shell_quote(package.cpath), shell_quote(script))
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    os.remove(script)
    return tonumber(out:match("exit=(%d+)%s*$")), out
end

describe("README", function()
    local blocks = marked_blocks(read("README.md"))

    it("marks its examples (the helios.sim one, helios.raft, snapshots)", function()
        assert.is_true(#blocks >= 3, "found " .. #blocks .. " marked examples")
    end)

    for i, b in ipairs(blocks) do
        it(("example %d (under '%s') runs as written"):format(i, b.heading), function()
            local status, out = run(b.code)
            assert.are.equal(0, status, "the README example failed:\n" .. out)
        end)
    end
end)
