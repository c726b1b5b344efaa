-- readme_spec.lua: the README's examples run as written.
--
-- Every ```lua or ```sh block of README.md right after the line
--   <!-- runs as written: spec/readme_spec.lua runs every block marked like this -->
-- is run with this run's package paths (so `make test-asan` runs them against the sanitizer
-- build too) and must exit 0: a lua block in a fresh luajit, a sh block by bash -e in an
-- empty temporary directory with the checkout's bin/ (the `helios` command) on the PATH.

local su = require("spec.helpers.storage_util")

local MARK = "<!-- runs as written: spec/readme_spec.lua runs every block marked like this -->"

local read = su.read_file

local function marked_blocks(readme)
    local blocks, from = {}, 1
    while true do
        local s, e = readme:find(MARK, from, true)
        if not s then break end
        local lang, block = readme:match("^\n```(%a+)\n(.-)\n```", e + 1)
        assert(block and (lang == "lua" or lang == "sh"),
            "a runs-as-written mark not followed by a ```lua or ```sh block at byte " .. s)
        local heading = readme:sub(1, s):match(".*\n(#+ [^\n]*)") or "?"
        blocks[#blocks + 1] = { code = block, heading = heading, lang = lang }
        from = e + 1
    end
    return blocks
end

local shell_quote = require("helios.util.shell").quote

-- A package path with its relative templates made absolute (a sh block runs elsewhere).
local function absolute(path)
    local cwd = os.getenv("PWD")
    return (path:gsub("[^;]+", function(t)
        return t:sub(1, 1) == "/" and t or cwd .. "/" .. t
    end))
end

local function run(code, lang)
    local script = os.tmpname()
    local f = assert(io.open(script, "wb"))
    f:write(code, "\n")
    f:close()
    local cmd = ("LUA_PATH=%s LUA_CPATH=%s timeout 120 luajit %s 2>&1; echo \"exit=$?\""):format(
        shell_quote(package.path), shell_quote(package.cpath), shell_quote(script))
    local tmp
    if lang == "sh" then
        tmp = os.tmpname()
        os.remove(tmp)
        assert(os.execute("mkdir " .. shell_quote(tmp)))
        -- HELIOS_INHERIT_PATHS: bin/helios keeps these paths (the ASan build under
        -- `make test-asan`) instead of the checkout's build/.
        cmd = ("cd %s && PATH=%s:\"$PATH\" HELIOS_INHERIT_PATHS=1 LUA_PATH=%s LUA_CPATH=%s "
            .. "timeout 120 bash -e %s 2>&1; echo \"exit=$?\""):format(shell_quote(tmp),
            shell_quote(os.getenv("PWD") .. "/bin"), shell_quote(absolute(package.path)),
            shell_quote(absolute(package.cpath)), shell_quote(script))
    end
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    os.remove(script)
    if tmp then os.execute("rm -rf " .. shell_quote(tmp)) end
    return tonumber(out:match("exit=(%d+)%s*$")), out
end

describe("README", function()
    local blocks = marked_blocks(read("README.md"))

    it("marks its examples (the helios.sim one, helios.raft, snapshots)", function()
        assert.is_true(#blocks >= 3, "found " .. #blocks .. " marked examples")
    end)

    for i, b in ipairs(blocks) do
        it(("example %d (under '%s') runs as written"):format(i, b.heading), function()
            local status, out = run(b.code, b.lang)
            assert.are.equal(0, status, "the README example failed:\n" .. out)
        end)
    end
end)
