-- json_strict.lua: a strict JSON (RFC 8259) decoder for specs that check JSON lines: one
-- value, nothing after it but whitespace; no trailing commas, no unescaped control
-- characters, no bad escapes, numbers by the grammar, strings valid UTF-8, no duplicate
-- keys. Raises "json: <what> at byte N" on anything else. Objects decode to tables, arrays
-- to tables with n set, null to the sentinel M.null.

local M = {}

M.null = setmetatable({}, { __tostring = function() return "null" end })

local byte, sub, char, find = string.byte, string.sub, string.char, string.find

local function fail(pos, what)
    error(("json: %s at byte %d"):format(what, pos), 0)
end

local function skip_ws(s, pos)
    return (find(s, "[^ \t\r\n]", pos)) or #s + 1
end

local function utf8_char(cp)
    if cp < 0x80 then return char(cp) end
    if cp < 0x800 then return char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
    if cp < 0x10000 then
        return char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
    end
    return char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
        0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

local function check_utf8(s, pos)
    local i, n = 1, #s
    while i <= n do
        local c = byte(s, i)
        local len = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2
            or (c >= 0xE0 and c <= 0xEF) and 3 or (c >= 0xF0 and c <= 0xF4) and 4 or nil
        if not len or i + len - 1 > n then fail(pos, "invalid UTF-8") end
        for j = i + 1, i + len - 1 do
            local cc = byte(s, j)
            if cc < 0x80 or cc > 0xBF then fail(pos, "invalid UTF-8") end
        end
        i = i + len
    end
end

local decode_value

local function decode_string(s, pos)
    -- pos at the opening quote
    local out, i = {}, pos + 1
    while true do
        local c = byte(s, i)
        if c == nil then fail(i, "unterminated string") end
        if c == 34 then break end
        if c < 0x20 then fail(i, "unescaped control character in a string") end
        if c == 92 then
            local e = sub(s, i + 1, i + 1)
            local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
                             n = "\n", r = "\r", t = "\t" }
            if simple[e] then
                out[#out + 1] = simple[e]
                i = i + 2
            elseif e == "u" then
                local hex = sub(s, i + 2, i + 5)
                if not hex:match("^%x%x%x%x$") then fail(i, "bad \\u escape") end
                local cp = tonumber(hex, 16)
                i = i + 6
                if cp >= 0xD800 and cp <= 0xDBFF then
                    local lo = sub(s, i, i + 5):match("^\\u(%x%x%x%x)$")
                    local lcp = lo and tonumber(lo, 16)
                    if not lcp or lcp < 0xDC00 or lcp > 0xDFFF then fail(i, "lone surrogate") end
                    cp = 0x10000 + (cp - 0xD800) * 0x400 + (lcp - 0xDC00)
                    i = i + 6
                elseif cp >= 0xDC00 and cp <= 0xDFFF then
                    fail(i, "lone surrogate")
                end
                out[#out + 1] = utf8_char(cp)
            else
                fail(i, "bad escape")
            end
        else
            local j = find(s, '[%z\1-\31"\\]', i) or #s + 1
            out[#out + 1] = sub(s, i, j - 1)
            i = j
        end
    end
    local str = table.concat(out)
    check_utf8(str, pos)
    return str, i + 1
end

local function decode_number(s, pos)
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not num or not (num:match("^-?0$") or num:match("^-?0[.eE]") or num:match("^-?[1-9]")) then
        fail(pos, "bad number")
    end
    -- the exact grammar: int frac? exp?
    local ok = num:match("^-?%d+$") or num:match("^-?%d+%.%d+$")
        or num:match("^-?%d+[eE][-+]?%d+$") or num:match("^-?%d+%.%d+[eE][-+]?%d+$")
    if not ok then fail(pos, "bad number") end
    return tonumber(num), pos + #num
end

function decode_value(s, pos, depth)
    if depth > 64 then fail(pos, "too deep") end
    pos = skip_ws(s, pos)
    local c = sub(s, pos, pos)
    if c == "{" then
        local obj = {}
        pos = skip_ws(s, pos + 1)
        if sub(s, pos, pos) == "}" then return obj, pos + 1 end
        while true do
            if sub(s, pos, pos) ~= '"' then fail(pos, "expected a key") end
            local k
            k, pos = decode_string(s, pos)
            if obj[k] ~= nil then fail(pos, "duplicate key " .. k) end
            pos = skip_ws(s, pos)
            if sub(s, pos, pos) ~= ":" then fail(pos, "expected ':'") end
            obj[k], pos = decode_value(s, pos + 1, depth + 1)
            pos = skip_ws(s, pos)
            local d = sub(s, pos, pos)
            if d == "}" then return obj, pos + 1 end
            if d ~= "," then fail(pos, "expected ',' or '}'") end
            pos = skip_ws(s, pos + 1)
        end
    elseif c == "[" then
        local arr = { n = 0 }
        pos = skip_ws(s, pos + 1)
        if sub(s, pos, pos) == "]" then return arr, pos + 1 end
        while true do
            arr.n = arr.n + 1
            arr[arr.n], pos = decode_value(s, pos, depth + 1)
            pos = skip_ws(s, pos)
            local d = sub(s, pos, pos)
            if d == "]" then return arr, pos + 1 end
            if d ~= "," then fail(pos, "expected ',' or ']'") end
            pos = pos + 1
        end
    elseif c == '"' then
        return decode_string(s, pos)
    elseif c == "-" or c:match("%d") then
        return decode_number(s, pos)
    elseif sub(s, pos, pos + 3) == "true" then
        return true, pos + 4
    elseif sub(s, pos, pos + 4) == "false" then
        return false, pos + 5
    elseif sub(s, pos, pos + 3) == "null" then
        return M.null, pos + 4
    end
    fail(pos, "unexpected " .. (c == "" and "end" or ("'" .. c .. "'")))
end

--- Decode s (one JSON text); raises on anything that is not strictly JSON.
function M.decode(s)
    local v, pos = decode_value(s, 1, 0)
    pos = skip_ws(s, pos)
    if pos <= #s then fail(pos, "trailing characters") end
    return v
end

return M
