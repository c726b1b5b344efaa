-- spec/helpers/http.lua: a raw-socket HTTP client for specs whose server runs on the same
-- loop (the metrics endpoint, csrc/lua/metrics_http.c), and a strict parser of the
-- Prometheus text format 0.0.4, so that a spec's check has teeth of its own next to
-- `promtool check metrics`.
--
--   local http = require("spec.helpers.http")
--   -- in a coroutine on the loop (raft.spawn): waits yield, the servers keep running
--   local raw = http.exchange("127.0.0.1:9100", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
--   local res = http.parse_response(raw)    -- { status, reason, headers, body } or raises
--   local fams = http.parse_prometheus(res.body)   -- raises "line N: what is wrong"
--
-- The socket is plain FFI (non-blocking), waits go through helios.loop.wait_fd.

local ffi = require("ffi")
local loop = require("helios.loop")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local bit = require("bit")

local format, sub, find = string.format, string.sub, string.find
local concat, sort = table.concat, table.sort

pcall(ffi.cdef, [[
int socket(int domain, int type, int protocol);
int connect(int fd, const void *addr, unsigned int len);
long send(int fd, const void *buf, size_t len, int flags);
long recv(int fd, void *buf, size_t len, int flags);
int close(int fd);
int shutdown(int fd, int how);
int getsockopt(int fd, int level, int name, void *val, unsigned int *len);
struct hr_spec_sockaddr_in { uint16_t family; uint16_t port; uint32_t addr; char zero[8]; };
]])

local C = ffi.C
local AF_INET, SOCK_STREAM, SOCK_NONBLOCK = 2, 1, 2048
local EINPROGRESS, EAGAIN, EINTR = 115, 11, 4
local MSG_NOSIGNAL = 0x4000

local M = {}

local function sockaddr(addr)
    local host, port = addr:match("^([%d%.]+):(%d+)$")
    assert(host, "http helper: IPv4 host:port only, got " .. tostring(addr))
    local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    local sa = ffi.new("struct hr_spec_sockaddr_in")
    sa.family = AF_INET
    local p = tonumber(port)
    sa.port = bit.bor(bit.lshift(bit.band(p, 0xff), 8), bit.rshift(p, 8))
    sa.addr = tonumber(a) + tonumber(b) * 256 + tonumber(c) * 65536 + tonumber(d) * 16777216
    return sa
end

--- Connect (in a coroutine on the loop): an open socket object, or nil, message.
function M.connect(addr, timeout_ms)
    local fd = C.socket(AF_INET, SOCK_STREAM + SOCK_NONBLOCK, 0)
    if fd < 0 then return nil, "socket: errno " .. ffi.errno() end
    local sa = sockaddr(addr)
    if C.connect(fd, sa, ffi.sizeof(sa)) ~= 0 then
        if ffi.errno() ~= EINPROGRESS then
            C.close(fd)
            return nil, "connect: errno " .. ffi.errno()
        end
        local ok, code = loop.wait_fd(fd, "w", timeout_ms or 5000)
        local err, len = ffi.new("int[1]"), ffi.new("unsigned int[1]", 4)
        C.getsockopt(fd, 1 --[[SOL_SOCKET]], 4 --[[SO_ERROR]], err, len)
        if not ok or err[0] ~= 0 then
            C.close(fd)
            return nil, "connect: " .. tostring(code or ("errno " .. err[0]))
        end
    end
    return { fd = fd }
end

--- Send all of bytes; true or nil, message.
function M.send(s, bytes, timeout_ms)
    local off = 0
    while off < #bytes do
        local n = C.send(s.fd, ffi.cast("const char *", bytes) + off, #bytes - off, MSG_NOSIGNAL)
        if n < 0 then
            local e = ffi.errno()
            if e == EAGAIN then
                local ok, code = loop.wait_fd(s.fd, "w", timeout_ms or 5000)
                if not ok then return nil, "send: " .. tostring(code) end
            elseif e ~= EINTR then
                return nil, "send: errno " .. e
            end
        else
            off = off + tonumber(n)
        end
    end
    return true
end

--- Read until the peer closes (or max bytes): the bytes, or nil, message, bytes so far.
function M.read_all(s, timeout_ms, max)
    local parts, total = {}, 0
    local buf = ffi.new("char[?]", 65536)
    while true do
        local n = C.recv(s.fd, buf, 65536, 0)
        if n > 0 then
            parts[#parts + 1] = ffi.string(buf, n)
            total = total + tonumber(n)
            if max and total >= max then return concat(parts) end
        elseif n == 0 then
            return concat(parts)
        else
            local e = ffi.errno()
            if e == EAGAIN then
                local ok, code, detail = loop.wait_fd(s.fd, "r", timeout_ms or 5000)
                if not ok then
                    return nil, "recv: " .. tostring(code) .. " " .. tostring(detail), concat(parts)
                end
            elseif e ~= EINTR then
                return nil, "recv: errno " .. e, concat(parts)
            end
        end
    end
end

function M.close(s)
    if s.fd >= 0 then
        C.close(s.fd)
        s.fd = -1
    end
end

--- Connect, send request (raw bytes), read the answer until the server closes.
function M.exchange(addr, request, timeout_ms)
    local s, err = M.connect(addr, timeout_ms)
    if not s then return nil, err end
    local ok, serr = M.send(s, request, timeout_ms)
    if not ok then
        M.close(s)
        return nil, serr
    end
    local raw, rerr = M.read_all(s, timeout_ms)
    M.close(s)
    return raw, rerr
end

--- A GET of path with the headers a scraper sends.
function M.get(addr, path, timeout_ms)
    return M.exchange(addr, format("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/plain\r\n"
                                   .. "User-Agent: helios-spec\r\n\r\n", path, addr), timeout_ms)
end

--- Parse a whole HTTP/1.1 answer strictly: status line, CRLF header lines, and a body of
-- exactly Content-Length bytes (head_only: a HEAD's answer, no body). Raises on anything
-- else.
function M.parse_response(raw, head_only)
    assert(type(raw) == "string", "no answer")
    local head_end = find(raw, "\r\n\r\n", 1, true)
    assert(head_end, "answer without the end of its head: " .. format("%q", raw:sub(1, 200)))
    local head, body = sub(raw, 1, head_end - 1), sub(raw, head_end + 4)
    local lines = {}
    for line in (head .. "\r\n"):gmatch("(.-)\r\n") do lines[#lines + 1] = line end
    local status, reason = lines[1]:match("^HTTP/1%.1 (%d%d%d) ([^\r\n]+)$")
    assert(status, "bad status line " .. format("%q", lines[1]))
    local headers = {}
    for i = 2, #lines do
        local k, v = lines[i]:match("^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
        assert(k, "bad header line " .. format("%q", lines[i]))
        k = k:lower()
        assert(headers[k] == nil, "header given twice: " .. k)
        headers[k] = v
    end
    local len = tonumber(headers["content-length"])
    assert(len, "no Content-Length")
    if head_only then
        assert(body == "", "a HEAD answer with a body")
    else
        assert(#body == len, format("Content-Length %d, body of %d bytes", len, #body))
    end
    return { status = tonumber(status), reason = reason, headers = headers, body = body }
end

-- ---------------------------------------------------------------------------------------
-- The strict Prometheus text parser.

local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }
local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"

-- A sample value: Go's ParseFloat forms that the format allows.
local function parse_value(s)
    if s == "+Inf" or s == "Inf" then return math.huge end
    if s == "-Inf" then return -math.huge end
    if s == "NaN" then return 0 / 0 end
    if not s:match("^[+-]?%d+%.?%d*$") and not s:match("^[+-]?%d*%.%d+$")
        and not s:match("^[+-]?%d+%.?%d*[eE][+-]?%d+$")
        and not s:match("^[+-]?%d*%.%d+[eE][+-]?%d+$") then
        return nil
    end
    return tonumber(s)
end

-- Labels "{a="x",b="y"}" from position i of line: the table, a canonical key, the position
-- after the closing brace.
local function parse_labels(line, i, fail)
    local labels, names = {}, {}
    i = i + 1
    if sub(line, i, i) == "}" then return labels, "", i + 1 end
    while true do
        local name = line:match("^([a-zA-Z_][a-zA-Z0-9_]*)", i)
        if not name then fail("bad label name") end
        if name:sub(1, 2) == "__" then fail("reserved label name " .. name) end
        if labels[name] then fail("label " .. name .. " twice") end
        i = i + #name
        if sub(line, i, i + 1) ~= "=\"" then fail("expected =\" after label " .. name) end
        i = i + 2
        local val = {}
        while true do
            local ch = sub(line, i, i)
            if ch == "" then fail("unterminated label value") end
            if ch == "\"" then break end
            if ch == "\\" then
                local nx = sub(line, i + 1, i + 1)
                if nx == "\\" then val[#val + 1] = "\\"
                elseif nx == "\"" then val[#val + 1] = "\""
                elseif nx == "n" then val[#val + 1] = "\n"
                else fail("bad escape \\" .. nx .. " in a label value") end
                i = i + 2
            else
                val[#val + 1] = ch
                i = i + 1
            end
        end
        labels[name] = concat(val)
        names[#names + 1] = name
        i = i + 1
        local ch = sub(line, i, i)
        if ch == "}" then
            i = i + 1
            break
        elseif ch == "," then
            i = i + 1
        else
            fail("expected , or } after a label value")
        end
    end
    sort(names)
    local key = {}
    for _, n in ipairs(names) do key[#key + 1] = n .. "=" .. format("%q", labels[n]) end
    return labels, concat(key, ","), i
end

--- Parse text strictly; returns { [family name] = { type, help, samples = { { name,
-- labels, value } } } }. Raises "metrics line N: ..." on: a line not in the format, a
-- family without HELP and TYPE before its samples, HELP or TYPE twice, families split
-- across the text, a series twice, a counter whose name lacks _total or whose value is
-- negative, a sample name that does not belong to its family's type, histogram buckets
-- out of order or not cumulative, no +Inf bucket, _count different from the +Inf bucket,
-- or text not ending in a newline.
function M.parse_prometheus(text)
    assert(type(text) == "string" and text ~= "", "empty metrics text")
    assert(sub(text, -1) == "\n", "metrics text does not end with a newline")
    local fams, seen_series, done = {}, {}, {}
    local current
    local lineno = 0
    local function fail(msg)
        error(format("metrics line %d: %s", lineno, msg), 0)
    end
    local function family_of(name)
        local f = fams[name]
        if not f then
            f = { name = name, samples = {}, series = {} }
            fams[name] = f
        end
        return f
    end
    local function enter(f)
        if current ~= f then
            if done[f.name] then fail("family " .. f.name .. " is split") end
            if current then done[current.name] = true end
            current = f
        end
    end
    for line in text:gmatch("(.-)\n") do
        lineno = lineno + 1
        if line == "" then fail("empty line") end
        if line:find("[%z\1-\8\11-\31\127]") then fail("control byte") end
        if sub(line, 1, 1) == "#" then
            local kind, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
            if kind == "HELP" then
                if not name:match(NAME) then fail("bad metric name in HELP") end
                local f = family_of(name)
                enter(f)
                if f.help then fail("HELP twice for " .. name) end
                if #f.samples > 0 then fail("HELP after samples of " .. name) end
                if rest:gsub("\\[\\n]", ""):find("\\") then fail("bad escape in HELP") end
                f.help = rest
            elseif kind == "TYPE" then
                if not name:match(NAME) then fail("bad metric name in TYPE") end
                if not TYPES[rest] then fail("bad type " .. tostring(rest)) end
                local f = family_of(name)
                enter(f)
                if f.type then fail("TYPE twice for " .. name) end
                if #f.samples > 0 then fail("TYPE after samples of " .. name) end
                f.type = rest
            else
                fail("a comment that is neither HELP nor TYPE")
            end
        else
            local name = line:match("^([a-zA-Z_:][a-zA-Z0-9_:]*)")
            if not name then fail("bad sample name") end
            local i = #name + 1
            local labels, key = {}, ""
            if sub(line, i, i) == "{" then
                labels, key, i = parse_labels(line, i, fail)
            end
            if sub(line, i, i) ~= " " then fail("expected a space before the value") end
            local fields = {}
            for w in sub(line, i + 1):gmatch("%S+") do fields[#fields + 1] = w end
            if sub(line, i + 1, i + 1) == " " or #fields < 1 or #fields > 2 then
                fail("expected a value and an optional timestamp")
            end
            local value = parse_value(fields[1])
            if value == nil then fail("bad value " .. fields[1]) end
            if fields[2] and not fields[2]:match("^%-?%d+$") then fail("bad timestamp") end
            -- Which family: the name itself, or a histogram's base for its suffixes.
            local fam = fams[name]
            local suffix
            if not fam or not fam.type then
                for _, sfx in ipairs({ "_bucket", "_sum", "_count" }) do
                    local base = name:match("^(.*)" .. sfx .. "$")
                    if base and fams[base] and (fams[base].type == "histogram"
                                                or fams[base].type == "summary") then
                        fam, suffix = fams[base], sfx
                        break
                    end
                end
            end
            if not fam or not fam.type or not fam.help then
                fail("sample " .. name .. " without HELP and TYPE before it")
            end
            enter(fam)
            local series = name .. "{" .. key .. "}"
            if seen_series[series] then fail("series twice: " .. series) end
            seen_series[series] = true
            if fam.type == "counter" then
                if suffix or not name:match("_total$") then
                    fail("counter " .. name .. " without _total")
                end
                if value < 0 or value ~= value then
                    fail("counter " .. name .. " negative or NaN")
                end
            elseif fam.type == "gauge" then
                if suffix then fail("gauge sample with a histogram suffix") end
            elseif fam.type == "histogram" then
                if not suffix then fail("histogram sample " .. name .. " without a suffix") end
                if suffix == "_bucket" then
                    if labels.le == nil then fail("bucket without le") end
                    if parse_value(labels.le) == nil then fail("bad le " .. labels.le) end
                elseif labels.le ~= nil then
                    fail(suffix .. " with an le label")
                end
                if value < 0 or value ~= value then fail("histogram " .. name .. " negative") end
            end
            fam.samples[#fam.samples + 1] = { name = name, labels = labels, value = value,
                                              key = key, suffix = suffix, line = lineno }
        end
    end
    -- Histograms: per series (labels but le), buckets ascending and cumulative, +Inf last,
    -- _count equal to it, _sum present.
    for name, f in each(fams) do
        if not f.type or not f.help then
            error(format("metrics: family %s lacks HELP or TYPE", name), 0)
        end
        if f.type == "histogram" then
            local groups = {}
            for _, s in ipairs(f.samples) do
                local rest = {}
                for k, v in each(s.labels) do
                    if k ~= "le" then rest[#rest + 1] = k .. "=" .. v end
                end
                sort(rest)
                local g = concat(rest, ",")
                groups[g] = groups[g] or { buckets = {} }
                if s.suffix == "_bucket" then
                    local b = groups[g].buckets
                    b[#b + 1] = { le = parse_value(s.labels.le), count = s.value, line = s.line }
                else
                    groups[g][s.suffix] = s.value
                end
            end
            for g, grp in each(groups) do
                local b = grp.buckets
                local where = format("histogram %s{%s}", name, g)
                if #b == 0 then error(where .. ": no buckets", 0) end
                for k = 2, #b do
                    if not (b[k].le > b[k - 1].le) then
                        error(format("metrics line %d: %s: le not ascending", b[k].line, where), 0)
                    end
                    if b[k].count < b[k - 1].count then
                        error(format("metrics line %d: %s: buckets not cumulative", b[k].line,
                                     where), 0)
                    end
                end
                if b[#b].le ~= math.huge then error(where .. ": no +Inf bucket", 0) end
                if grp._count == nil or grp._sum == nil then
                    error(where .. ": no _count or _sum", 0)
                end
                if grp._count ~= b[#b].count then
                    error(where .. ": _count differs from the +Inf bucket", 0)
                end
            end
        end
    end
    return fams
end

--- The value of one series of parsed families: name (a sample name), labels (a table;
-- all must match), or nil.
function M.value(fams, name, labels)
    local base = fams[name] and name
        or name:match("^(.*)_bucket$") or name:match("^(.*)_sum$") or name:match("^(.*)_count$")
    local f = base and fams[base]
    if not f then return nil end
    for _, s in ipairs(f.samples) do
        if s.name == name then
            local ok = true
            for k, v in each(labels or {}) do
                if s.labels[k] ~= v then ok = false end
            end
            if ok then return s.value end
        end
    end
    return nil
end


return M
