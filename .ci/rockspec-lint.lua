-- .ci/rockspec-lint.lua: the rockspec must build what the Makefile builds.
--
--   luajit .ci/rockspec-lint.lua rockspec/helios-raft-scm-1.rockspec   (from the repo root)
--
-- The Makefile globs $(SRC_DIRS)/*.c (minus *_bench.c, *_fuzz.c), csrc/testkit and lua/helios;
-- the rockspec lists them by hand. A file added to the tree but not to the rockspec would
-- build with make and break the installed rock, so this fails loudly, naming the lines to add.

local path = assert(arg[1], "Usage: luajit .ci/rockspec-lint.lua ROCKSPEC")

local env = {}
local chunk = assert(loadfile(path))
setfenv(chunk, env)
chunk()

local function ls(pattern)
    local out = {}
    local p = assert(io.popen("ls -1 " .. pattern .. " 2>/dev/null"))
    for line in p:lines() do out[#out + 1] = line end
    p:close()
    return out
end

local function set(list)
    local s = {}
    for _, v in ipairs(list) do s[v] = true end
    return s
end

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

local modules = env.build and env.build.modules or {}
local core = modules["helios.core"]
if type(core) ~= "table" or type(core.sources) ~= "table" then
    problem("build.modules[\"helios.core\"].sources is missing")
    core = { sources = {} }
end

-- C sources: the tree and the rockspec must agree both ways.
local want = {}
-- The Makefile passes its SRC_DIRS, so the two lists of directories cannot drift apart.
local dirs = os.getenv("HELIOS_SRC_DIRS") or "csrc/core csrc/storage csrc/transport csrc/node csrc/sim csrc/lua"
local globs = {}
for d in dirs:gmatch("%S+") do globs[#globs + 1] = d .. "/*.c" end
for _, f in ipairs(ls(table.concat(globs, " "))) do
    if not f:match("_bench%.c$") and not f:match("_fuzz%.c$") then want[#want + 1] = f end
end
local listed = set(core.sources)
for _, f in ipairs(want) do
    if not listed[f] then problem("C source not in the rockspec: add %q to helios.core sources", f) end
end
local present = set(want)
for _, f in ipairs(core.sources) do
    if not present[f] then problem("rockspec lists %s, which is not in the tree", f) end
end

-- The test module helios.testkit: csrc/testkit/*.c and its own copy of everything below
-- csrc/lua and of the binding helpers (the Makefile's TESTKIT_SRCS, passed in by
-- `make rock-check`; the same rule here when run by hand).
local testkit = modules["helios.testkit"]
if type(testkit) ~= "table" or type(testkit.sources) ~= "table" then
    problem("build.modules[\"helios.testkit\"].sources is missing")
    testkit = { sources = {} }
end
local tk_want = {}
local tk_env = os.getenv("HELIOS_TESTKIT_SRCS")
if tk_env then
    for f in tk_env:gmatch("%S+") do tk_want[#tk_want + 1] = f end
else
    for _, f in ipairs(ls("csrc/testkit/*.c")) do tk_want[#tk_want + 1] = f end
    for _, f in ipairs(want) do
        if not f:match("^csrc/lua/") then tk_want[#tk_want + 1] = f end
    end
    for _, f in ipairs{ "csrc/lua/support.c", "csrc/lua/config.c", "csrc/lua/fs_binding.c",
                        "csrc/lua/client_binding.c", "csrc/lua/os.c",
                        "csrc/lua/resp_reply.c" } do
        tk_want[#tk_want + 1] = f
    end
end
local tk_listed = set(testkit.sources)
for _, f in ipairs(tk_want) do
    if not tk_listed[f] then
        problem("C source not in the rockspec: add %q to helios.testkit sources", f)
    end
end
local tk_present = set(tk_want)
for _, f in ipairs(testkit.sources) do
    if not tk_present[f] then
        problem("rockspec lists %s in helios.testkit, which does not build it", f)
    end
end

-- Lua modules: every lua/helios/*.lua is a module helios.<name> pointing at its file.
local n_lua = 0
for _, f in ipairs(ls("lua/helios/*.lua")) do
    local base = f:match("([^/]+)%.lua$")
    local name = base == "init" and "helios" or "helios." .. base
    n_lua = n_lua + 1
    if modules[name] ~= f then
        problem("Lua module missing: add [%q] = %q to build.modules", name, f)
    end
end
for name, f in pairs(modules) do
    if type(f) == "string" and not io.open(f) then
        problem("rockspec module %s points at %s, which is not in the tree", name, f)
    end
end

local bin = env.build and env.build.install and env.build.install.bin or {}
if bin.helios ~= "bin/helios" or not io.open("bin/helios") then
    problem("build.install.bin.helios must be \"bin/helios\" (and the file must exist)")
end

if #problems > 0 then
    for _, p in ipairs(problems) do io.stderr:write("rockspec: ", p, "\n") end
    os.exit(1)
end
print(("rockspec: ok (%d C sources, %d of helios.testkit, %d Lua modules)")
    :format(#want, #tk_want, n_lua))
