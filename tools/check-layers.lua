-- tools/check-layers.lua: fail on an #include that points up the layers of csrc/.
--
--   luajit tools/check-layers.lua [ROOT]      (ROOT: csrc; `make check-layers`, `make test`)
--
-- The C sources are layered, bottom up; a layer's files may include only these folders
-- (the first folder under ROOT names a file's layer, so csrc/transport/fuzz is transport):
--
--   core        core
--   storage     core, storage
--   transport   core, transport
--   node        core, storage, transport, node
--   sim         core, storage, transport, node, sim
--   lua         everything above (the product module helios.core)
--   testkit     everything (the test module helios.testkit)
--
-- and an internal header (a name ending in impl.h or internal.h: raft_impl.h,
-- tcp_internal.h, storage's impl.h, sim's internal.h) only from its own folder. Every
-- `#include "..."` of every .c and .h under ROOT is read; a quoted name is looked up next
-- to the including file, then under ROOT (the build's -Icsrc), lexically (the file need
-- not exist). <...> includes are system headers and not checked.
-- Prints one line per violation (file:line: what is wrong) and exits 1, or prints
-- "layers: ok (N files, M includes)".

local root = (arg[1] or "csrc"):gsub("/+$", "")

local ALLOWED = {
    core = { core = true },
    storage = { core = true, storage = true },
    transport = { core = true, transport = true },
    node = { core = true, storage = true, transport = true, node = true },
    sim = { core = true, storage = true, transport = true, node = true, sim = true },
    lua = { core = true, storage = true, transport = true, node = true, sim = true, lua = true },
    testkit = "any",
}
local ORDER = { "core", "storage", "transport", "node", "sim", "lua", "testkit" }

local function files_under(dir)
    local out = {}
    local p = assert(io.popen("find '" .. dir .. "' -type f \\( -name '*.c' -o -name '*.h' \\) | sort"))
    for line in p:lines() do out[#out + 1] = line end
    p:close()
    return out
end

local function exists(path)
    local f = io.open(path, "r")
    if f then f:close() end
    return f ~= nil
end

-- "a/b/../c" -> "a/c"; nil if it climbs above its start.
local function normalize(path)
    local parts = {}
    for part in path:gmatch("[^/]+") do
        if part == ".." then
            if #parts == 0 then return nil end
            parts[#parts] = nil
        elseif part ~= "." then
            parts[#parts + 1] = part
        end
    end
    return table.concat(parts, "/")
end

-- The path of f relative to root, split into its layer and the rest.
local function layer_of(rel)
    return rel:match("^([^/]+)/")
end

local function allowed_list(layer)
    local a = ALLOWED[layer]
    if a == "any" then return "anything" end
    local names = {}
    for _, l in ipairs(ORDER) do
        if a[l] then names[#names + 1] = l end
    end
    return table.concat(names, ", ")
end

local problems, n_files, n_includes = {}, 0, 0
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

local files = files_under(root)
if #files == 0 then
    io.stderr:write("check-layers: no .c or .h files under ", root, "\n")
    os.exit(2)
end
for _, file in ipairs(files) do
    n_files = n_files + 1
    local rel = file:sub(#root + 2)
    local layer = layer_of(rel)
    local dir = rel:match("^(.*)/[^/]*$") or ""
    if not layer or not ALLOWED[layer] then
        problem("%s: not in a known layer (%s)", file, table.concat(ORDER, ", "))
    else
        local lineno = 0
        for line in io.lines(file) do
            lineno = lineno + 1
            local inc = line:match('^%s*#%s*include%s*"([^"]+)"')
            if inc then
                n_includes = n_includes + 1
                -- Next to the file first (as the compiler looks), else under ROOT (-Icsrc).
                local target = normalize(dir .. "/" .. inc)
                if target == nil or not exists(root .. "/" .. target) then
                    local alt = normalize(inc)
                    if alt and exists(root .. "/" .. alt) then target = alt end
                end
                local tlayer = target and layer_of(target)
                local where = ("%s:%d: #include \"%s\""):format(file, lineno, inc)
                if not tlayer or not ALLOWED[tlayer] then
                    problem("%s: outside the layers of %s", where, root)
                else
                    local a = ALLOWED[layer]
                    if a ~= "any" and not a[tlayer] then
                        problem("%s: %s may include only %s, not %s", where, layer,
                                allowed_list(layer), tlayer)
                    end
                    local base = target:match("([^/]+)$")
                    if (base:match("impl%.h$") or base:match("internal%.h$")) and tlayer ~= layer then
                        problem("%s: %s is internal to %s", where, base, tlayer)
                    end
                end
            end
        end
    end
end

if #problems > 0 then
    for _, p in ipairs(problems) do io.stderr:write("check-layers: ", p, "\n") end
    io.stderr:write(("check-layers: %d violation(s); the layers are in tools/check-layers.lua\n")
        :format(#problems))
    os.exit(1)
end
print(("layers: ok (%d files, %d includes)"):format(n_files, n_includes))
