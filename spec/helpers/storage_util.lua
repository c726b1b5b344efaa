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

--- The records of a segment file, parsed the way docs/storage-format.md lays them out (no checksum
-- check): list of { offset, len, index, size, flags }, the footer excluded. flags is the
-- byte at offset 33 of the record (M.SYNC_MARK: the first record a sync wrote).
function M.records(path)
    local s = M.read_file(path)
    local t, off = {}, 24
    while off + 36 <= #s do
        local len = u32(s, off + 4)
        if s:byte(off + 33) == 0xFF or off + 36 + len > #s then break end
        t[#t + 1] = { offset = off, len = len, index = u32(s, off + 16), size = 36 + len,
                      flags = s:byte(off + 34) }
        off = off + 36 + len
    end
    return t
end

M.SYNC_MARK = 1

local crc_table
--- CRC32C (docs/storage-format.md: Castagnoli, reflected) of the string s, as a number 0 .. 2^32-1.
function M.crc32c(s)
    if not crc_table then
        crc_table = {}
        for i = 0, 255 do
            local c = i
            for _ = 1, 8 do
                c = bit.band(c, 1) ~= 0 and bit.bxor(bit.rshift(c, 1), 0x82F63B78)
                    or bit.rshift(c, 1)
            end
            crc_table[i] = c
        end
    end
    local c = bit.bnot(0)
    for i = 1, #s do
        c = bit.bxor(bit.rshift(c, 8), crc_table[bit.band(bit.bxor(c, s:byte(i)), 0xFF)])
    end
    return bit.bnot(c) % 4294967296
end

local function le32(v)
    return string.char(bit.band(v, 0xFF), bit.band(bit.rshift(v, 8), 0xFF),
                       bit.band(bit.rshift(v, 16), 0xFF), bit.band(bit.rshift(v, 24), 0xFF))
end

--- The segment format version in the header of the segment file at path.
function M.segment_version(path)
    return u32(M.read_file(path), 4)
end

--- Rewrite the segment at path as a version 1 writer would have left it: header version 1
-- and no record flags, every checksum made right again (a segment from an older build).
function M.rewrite_as_v1(path)
    local s = M.read_file(path)
    local hdr = s:sub(1, 4) .. le32(1) .. s:sub(9, 16)
    local parts = { hdr .. le32(M.crc32c(hdr)) .. s:sub(21, 24) }
    local pos = 24
    for _, r in ipairs(M.records(path)) do
        assert(r.offset == pos, "records are not contiguous")
        local body = s:sub(r.offset + 5, r.offset + 33) .. "\0" .. s:sub(r.offset + 35,
                                                                       r.offset + r.size)
        parts[#parts + 1] = le32(M.crc32c(body)) .. body
        pos = r.offset + r.size
    end
    parts[#parts + 1] = s:sub(pos + 1)
    M.write_file(path, table.concat(parts))
end

return M
