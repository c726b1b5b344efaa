--- spec/helpers/storage_util.lua: shared pieces of the storage specs (spec/storage_*).
--
-- Temporary data directories, raw file surgery (cut, overwrite, append) to fake crashes
-- and corruption, entry generators whose bytes are a pure function of the index, and
-- running a luajit child process with the same module paths as the spec.
--
--   local su = require("spec.helpers.storage_util")
--   local dir = su.tmpdir()            -- remove with su.rmdir(dir) in a finally
--   st:append(su.entries(1, 100, 1))   -- entries 1..100 of term 1
--   su.check_entries(st, 1, 100)       -- raises unless the bytes are right

local io, os, string, table = io, os, string, table
local assert, error, format, tostring = assert, error, string.format, tostring

local M = {}

--- A fresh empty directory under /tmp.
function M.tmpdir()
    local p = assert(io.popen("mktemp -d /tmp/helios-storage.XXXXXX"))
    local dir = p:read("*l")
    p:close()
    assert(dir and #dir > 0, "mktemp failed")
    return dir
end

--- rm -rf dir (only paths made by tmpdir).
function M.rmdir(dir)
    assert(dir:match("^/tmp/helios%-storage%."), "refusing to remove " .. tostring(dir))
    os.execute("rm -rf '" .. dir .. "'")
end

--- The payload of entry index: deterministic, varied in length (0..300 bytes).
function M.payload(index)
    local n = (index * 37) % 301
    return string.rep(string.char(65 + index % 26), n) .. (n > 0 and tostring(index) or "")
end

--- A list of entries lo..hi of the given term, payloads from M.payload.
function M.entries(lo, hi, term)
    local t = {}
    for i = lo, hi do
        t[#t + 1] = { index = i, term = term or 1, type = 1, time_ms = i * 10,
                      data = M.payload(i) }
    end
    return t
end

--- Raise unless st holds lo..hi with the bytes of M.payload.
function M.check_entries(st, lo, hi)
    if hi < lo then return end
    local es, code, msg = st:entries(lo, hi)
    if not es then error(format("entries(%d, %d): %s %s", lo, hi, code, msg), 2) end
    assert(#es == hi - lo + 1, "count")
    for k, e in ipairs(es) do
        local i = lo + k - 1
        if e.index ~= i or e.data ~= M.payload(i) or e.time_ms ~= i * 10 then
            error(format("entry %d: wrong content (index %s, %d bytes)", i, tostring(e.index),
                         #e.data), 2)
        end
    end
end

--- The whole of the file at path (raises if it cannot be opened). Other specs use it too.
function M.read_file(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

function M.write_file(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
end

--- Names of the segment files of dir, sorted.
function M.segments(dir)
    local p = assert(io.popen("ls '" .. dir .. "/log' 2>/dev/null"))
    local t = {}
    for l in p:lines() do
        if l:match("^%d+$") then t[#t + 1] = l end
    end
    p:close()
    table.sort(t)
    return t
end

--- Path of the segment n of dir (1 = oldest, -1 = newest).
function M.segment_path(dir, n)
    local s = M.segments(dir)
    if n < 0 then n = #s + 1 + n end
    return dir .. "/log/" .. assert(s[n], "no segment " .. n)
end

--- Flip one bit of the byte at offset (0-based) in path.
function M.flip(path, offset)
    local s = M.read_file(path)
    local b = s:byte(offset + 1)
    M.write_file(path, s:sub(1, offset) .. string.char(bit.bxor(b, 1)) .. s:sub(offset + 2))
end

--- The package paths of this process, for child processes.
function M.child_env()
    return format("LUA_PATH='%s' LUA_CPATH='%s'", package.path, package.cpath)
end

--- Run a luajit script with args; returns exit status and output (stdout+stderr).
function M.run_luajit(script, ...)
    local args = { ... }
    for i = 1, #args do args[i] = "'" .. tostring(args[i]) .. "'" end
    local p = assert(io.popen(M.child_env() .. " luajit " .. script .. " " ..
                              table.concat(args, " ") .. " 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("exit=(%d+)%s*$"))
    return code, out:gsub("exit=%d+%s*$", "")
end

local function u32(s, off) -- little-endian, off 0-based
    local a, b, c, d = s:byte(off + 1, off + 4)
    return a + b * 256 + c * 65536 + d * 16777216
end

--- The records of a segment file, parsed the way FORMAT.md lays them out (no checksum
-- check): list of { offset, len, index, size }, the footer excluded.
function M.records(path)
    local s = M.read_file(path)
    local t, off = {}, 24
    while off + 36 <= #s do
        local len = u32(s, off + 4)
        if s:byte(off + 33) == 0xFF or off + 36 + len > #s then break end
        t[#t + 1] = { offset = off, len = len, index = u32(s, off + 16), size = 36 + len }
        off = off + 36 + len
    end
    return t
end

return M
