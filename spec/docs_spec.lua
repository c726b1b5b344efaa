-- docs_spec.lua: the documentation matches the tree where that is cheap to check.
--
--   - every path in the README's layout block and in the first column of the layer table of
--     docs/architecture.md exists;
--   - every error code of csrc/core/error.h is listed in docs/lua-api.md;
--   - every relative link of README.md and docs/*.md points at a file that exists, and at a
--     heading of it when it names one;
--   - every option raft.new accepts is listed in docs/lua-api.md. The options are found by
--     asking raft.new itself, not by parsing its source: each identifier that appears in
--     lua/helios/*.lua is passed as an option, and the ones raft.new does not refuse as
--     "unknown option" are the options it accepts;
--   - the README's apt-get line names exactly the packages .ci/deps installs.

local read = require("spec.helpers.storage_util").read_file
local shell_quote = require("helios.util.shell").quote

local function exists(path)
    local r = os.execute("test -e " .. shell_quote(path))
    return r == 0 or r == true
end

-- Paths the layout names that other parts of the same change create (the test module, the
-- split Lua modules): listed here so that a tree without them fails by name.
local PLANNED = {
    "csrc/testkit", "csrc/testkit/step", "lua/helios/loop.lua", "lua/helios/node.lua",
    "lua/helios/util", "lua/helios/util/address.lua", "lua/helios/util/process.lua",
    "lua/helios/util/shell.lua", "spec/golden", "spec/core_golden_spec.lua",
}

local TOP = { "lua/", "csrc/", "spec/", "docs/", "bin/", "rockspec/", ".ci/" }

local function is_top(tok)
    for _, p in ipairs(TOP) do
        if tok:sub(1, #p) == p then return true end
    end
    return false
end

-- The paths of the README's layout block: each entry's path (the first word of a line that
-- does not start with a space), and the files and directories its description names
-- ("raft.lua", "fsm/kv.lua", "fuzz/"), relative to that entry unless they start at the top.
local function layout_paths(readme)
    local section = readme:match("\n## Layout\n(.-)\n## ")
    assert(section, "README.md has no '## Layout' section")
    local block = section:match("```\n(.-)\n```")
    assert(block, "README.md's layout section has no code block")
    local paths, base = {}, nil
    for line in (block .. "\n"):gmatch("([^\n]*)\n") do
        local rest = line
        if line:match("^%S") then
            base = line:match("^(%S+)")
            paths[#paths + 1] = base
            rest = line:sub(#base + 1)
        end
        for tok in rest:gmatch("[%w_%.%-/]+") do
            tok = tok:gsub("[%.,;:]+$", "")
            local named = tok:match("%.lua$") or tok:match("%.h$") or tok:match("%.c$")
                or (tok:match("/$") and tok:match("^[%w_%-]+/$"))
                or tok:match("^[%w_%-]+/[%w_%-/%.]+$")
            if named and not tok:match("^build") then
                if is_top(tok) then
                    paths[#paths + 1] = tok
                elseif base and base:match("/$") then
                    paths[#paths + 1] = base .. tok
                end
            end
        end
    end
    return paths
end

-- The first column of the layer table (under "## Layers", up to the next heading) of
-- docs/architecture.md, and the file column of its table of Lua modules (under "### The Lua
-- modules": "| `helios.raft` | `lua/helios/raft.lua` | ...").
local function layer_paths(arch)
    local section = arch:match("\n## Layers\n(.-)\n#")
    assert(section, "docs/architecture.md has no '## Layers' section")
    local paths = {}
    for path in section:gmatch("\n| `([^`]+)` |") do
        paths[#paths + 1] = path
    end
    local modules = arch:match("\n### The Lua modules\n(.-)\n#")
    assert(modules, "docs/architecture.md has no '### The Lua modules' section")
    for files in modules:gmatch("\n| `helios[^|]*| ([^|]+) |") do
        for path in files:gmatch("`([^`]+)`") do
            paths[#paths + 1] = path
        end
    end
    return paths
end

describe("docs", function()
    describe("paths", function()
        local readme = read("README.md")
        local arch = read("docs/architecture.md")

        it("the README's layout block names at least its layers", function()
            local paths = layout_paths(readme)
            assert.is_true(#paths >= 12, "found only " .. #paths .. " paths")
        end)

        for _, path in ipairs(layout_paths(readme)) do
            it("README layout: " .. path .. " exists", function()
                assert.is_true(exists(path), path .. " is named in README.md's layout but "
                    .. "is not in the tree")
            end)
        end

        it("docs/architecture.md's layer table has rows", function()
            assert.is_true(#layer_paths(arch) >= 20)
        end)

        for _, path in ipairs(layer_paths(arch)) do
            it("architecture.md layer: " .. path .. " exists", function()
                assert.is_true(exists(path), path .. " is in docs/architecture.md's layer "
                    .. "table but not in the tree")
            end)
        end

        for _, path in ipairs(PLANNED) do
            it("planned path " .. path .. " exists", function()
                assert.is_true(exists(path), path .. " is described by the docs but not in "
                    .. "the tree")
            end)
        end

        it("every document docs/README.md links to exists", function()
            local index = read("docs/README.md")
            local n = 0
            for target in index:gmatch("%]%(([%w_%-%.]+%.md)%)") do
                n = n + 1
                assert.is_true(exists("docs/" .. target), "docs/" .. target)
            end
            assert.is_true(n >= 6)
        end)
    end)

    describe("links", function()
        -- GitHub's anchor of a heading: lower case, punctuation dropped, spaces to "-".
        local function anchors(text)
            local set = {}
            for heading in text:gmatch("\n#+ ([^\n]+)") do
                local a = heading:lower():gsub("[^%w_%- ]", ""):gsub(" ", "-")
                set[a] = true
            end
            return set
        end

        local files = { "README.md" }
        local p = io.popen("ls docs/*.md")
        for f in p:lines() do files[#files + 1] = f end
        p:close()

        for _, file in ipairs(files) do
            it("every relative link of " .. file .. " resolves", function()
                local text = read(file)
                local dir = file:match("^(.*)/") or "."
                local bad = {}
                for target in text:gmatch("%]%(([^)%s]+)%)") do
                    if not target:match("^%a+://") then
                        local path, frag = target:match("^([^#]*)#?(.*)$")
                        local full = path == "" and file or (dir .. "/" .. path)
                        if not exists(full) then
                            bad[#bad + 1] = target .. " (no such file)"
                        elseif frag ~= "" and full:match("%.md$")
                            and not anchors("\n" .. read(full))[frag] then
                            bad[#bad + 1] = target .. " (no such heading)"
                        end
                    end
                end
                assert.are.same({}, bad)
            end)
        end
    end)

    describe("docs/lua-api.md", function()
        local api = read("docs/lua-api.md")

        it("lists every error code of csrc/core/error.h", function()
            local codes = {}
            for code in read("csrc/core/error.h"):gmatch("X%(%u+, %-%d+, \"([%w_]+)\"") do
                codes[#codes + 1] = code
            end
            assert.is_true(#codes >= 11, "error.h's table was not found")
            local missing = {}
            for _, code in ipairs(codes) do
                if not api:find("`" .. code .. "`", 1, true) then
                    missing[#missing + 1] = code
                end
            end
            assert.are.same({}, missing)
        end)

        it("lists every option raft.new accepts", function()
            local raft = require("helios.raft")
            local dir = os.tmpname()
            local function refused_as_unknown(key)
                local opts = { id = "n1", peers = { n1 = "127.0.0.1:19999" }, data_dir = dir,
                               fsm = { apply = function() end }, secret = "s" }
                opts[key] = {}
                local ok, res = pcall(raft.new, opts)
                if ok then
                    res:shutdown() -- never started: this only frees it
                    return false
                end
                return tostring(res):find(key .. ": unknown option", 1, true) ~= nil
            end
            assert.is_true(refused_as_unknown("surely_not_an_option"),
                "raft.new no longer says 'unknown option': this spec needs updating")

            local seen, accepted = {}, {}
            local p = io.popen("find lua/helios -name '*.lua'")
            for file in p:lines() do
                for word in read(file):gmatch("[%a_][%w_]*") do
                    if not seen[word] then
                        seen[word] = true
                        if not refused_as_unknown(word) then
                            accepted[#accepted + 1] = word
                        end
                    end
                end
            end
            p:close()
            os.remove(dir)
            table.sort(accepted)
            assert.is_true(#accepted >= 15 and #accepted <= 60,
                "unexpected option count " .. #accepted .. ": " .. table.concat(accepted, " "))
            local missing = {}
            for _, name in ipairs(accepted) do
                if not api:find("`" .. name .. "`", 1, true) then
                    missing[#missing + 1] = name
                end
            end
            assert.are.same({}, missing)
        end)
    end)

    it("the README's apt-get line is the package list of .ci/deps", function()
        local p = assert(io.popen("bash .ci/deps --print"))
        local want = p:read("*l")
        p:close()
        local line = read("README.md"):match("\nsudo apt%-get install %-y ([^\n]+)\n")
        assert.is_not_nil(line, "no `sudo apt-get install -y ...` line in README.md")
        assert.are.equal(want, line)
    end)
end)
