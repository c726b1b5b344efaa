-- spec/transport_codec_spec.lua: the wire codec of csrc/transport through tk.wire_encode
-- and tk.wire_decode: every message type round-trips; a flipped bit anywhere in a frame,
-- a truncated or oversized frame, and random garbage are refused with an error, never a
-- crash or a wrong message.
--
--   HELIOS_SEED=7 busted --lua=luajit spec/transport_codec_spec.lua   -- replay one seed

local tk = require("helios.testkit")
local prng = require("spec.helpers.prng")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local bit = require("bit")
local char, byte, format = string.char, string.byte, string.format
local concat = table.concat

local A, B = tk.node_id("node-a"), tk.node_id("node-b")
local SEED = tonumber(os.getenv("HELIOS_SEED") or "") or 20240611

-- One message of every type, with every field its type uses set.
local MESSAGES = {
    { type = "append", from = A, to = B, term = 7, prev_index = 41, prev_term = 6, commit = 40,
      entries = {
          { term = 6, index = 42, time_ms = 1700000000000, type = 1, data = "set x 1" },
          { term = 7, index = 43, time_ms = 1700000000001, type = 2, data = "" },
          { term = 7, index = 44, time_ms = 0, type = 3, data = ("\0\255"):rep(300) },
      } },
    { type = "append", from = A, to = B, term = 7, prev_index = 44, prev_term = 7, commit = 44,
      seq = 12 },
    { type = "append_resp", from = B, to = A, term = 7, index = 44, last_index = 44, seq = 12 },
    { type = "append_resp", from = B, to = A, term = 7, reject = true, index = 41,
      hint_index = 30, hint_term = 5, last_index = 39, seq = 11 },
    { type = "vote", from = A, to = B, term = 8, cand_last_index = 44, cand_last_term = 7 },
    { type = "vote_resp", from = B, to = A, term = 8 },
    { type = "prevote", from = A, to = B, term = 9, cand_last_index = 44, cand_last_term = 7 },
    { type = "prevote_resp", from = B, to = A, term = 9, reject = true },
    { type = "snapshot", from = A, to = B, term = 9, snap_index = 1000, snap_term = 8 },
    { type = "snapshot", from = A, to = B, term = 9, snap_index = 1000, snap_term = 8,
      offset = 65536, snap_data = "chunk\0bytes", done = true },
    { type = "snapshot_resp", from = B, to = A, term = 9, index = 1000 },
    { type = "timeout_now", from = A, to = B, term = 9 },
    { type = "vote", from = B, to = A, term = 10, cand_last_index = 44, cand_last_term = 9,
      transfer = true },
    { type = "read_index", from = B, to = A, term = 9, seq = 77 },
    { type = "read_index_resp", from = A, to = B, term = 9, index = 44, seq = 77,
      time_ms = 1700000000123 },
    { type = "read_index_resp", from = A, to = B, term = 9, index = 44, seq = 79 },
    { type = "read_index_resp", from = A, to = B, term = 9, reject = true, seq = 78 },
}

local FIELDS = { "from", "to", "term", "prev_index", "prev_term", "commit", "index",
                 "hint_index", "hint_term", "last_index", "cand_last_index", "cand_last_term",
                 "snap_index", "snap_term", "offset", "seq", "time_ms" }

local function assert_same(want, got)
    assert.are.equal(want.type, got.type)
    for _, f in ipairs(FIELDS) do
        assert.are.equal(want[f] or 0, got[f], f)
    end
    assert.are.equal(want.reject or false, got.reject)
    assert.are.equal(want.done or false, got.done)
    assert.are.equal(want.transfer or false, got.transfer)
    assert.are.equal(want.snap_data, got.snap_data)
    local entries = want.entries or {}
    assert.are.equal(#entries, #got.entries)
    for i, e in ipairs(entries) do
        local g = got.entries[i]
        assert.are.equal(e.term, g.term)
        assert.are.equal(e.index, g.index)
        assert.are.equal(e.time_ms, g.time_ms)
        assert.are.equal(e.type, g.type)
        assert.are.equal(e.data, g.data)
    end
end

local function flip_bit(s, pos, k)
    return s:sub(1, pos - 1) .. char(bit.bxor(byte(s, pos), bit.lshift(1, k))) .. s:sub(pos + 1)
end

-- A frame around an arbitrary payload, with a correct header (to reach the decoder).
local function be32(n)
    return char(bit.band(bit.rshift(n, 24), 255), bit.band(bit.rshift(n, 16), 255),
                bit.band(bit.rshift(n, 8), 255), bit.band(n, 255))
end

describe("transport codec", function()
    it("round-trips every message type", function()
        for _, m in ipairs(MESSAGES) do
            local frame = tk.wire_encode(m)
            local got, code, detail = tk.wire_decode(frame)
            assert(got, format("%s: %s %s", m.type, tostring(code), tostring(detail)))
            assert_same(m, got)
        end
    end)

    it("keeps 64-bit node ids exact (as decimal strings)", function()
        assert.are.equal("string", type(A)) -- FNV-1a 64 of a name is far above 2^53
        local got = assert(tk.wire_decode(tk.wire_encode(MESSAGES[6])))
        assert.are.equal(B, got.from)
        assert.are.equal(A, got.to)
    end)

    it("detects a flipped bit anywhere in a frame", function()
        for _, m in ipairs(MESSAGES) do
            local frame = tk.wire_encode(m)
            for pos = 1, #frame do
                for k = 0, 7 do
                    local got, code = tk.wire_decode(flip_bit(frame, pos, k))
                    assert(got == nil and type(code) == "string",
                           format("%s: bit %d of byte %d flipped went undetected", m.type, k, pos))
                end
            end
        end
    end)

    it("refuses truncated frames and trailing bytes", function()
        local frame = tk.wire_encode(MESSAGES[1])
        for n = 0, #frame - 1 do
            local got, code = tk.wire_decode(frame:sub(1, n))
            assert.is_nil(got)
            assert.are.equal("protocol", code)
        end
        local got, code = tk.wire_decode(frame .. "x")
        assert.is_nil(got)
        assert.are.equal("protocol", code)
    end)

    it("refuses a frame larger than the maximum before reading it", function()
        local frame = tk.wire_encode(MESSAGES[1])
        local got, code, detail = tk.wire_decode(frame, 16)
        assert.is_nil(got)
        assert.are.equal("too_large", code)
        assert.matches("exceeds the maximum", detail)
        got, code = tk.wire_decode(be32(0xffffffff) .. be32(0) .. "tiny")
        assert.is_nil(got)
        assert.are.equal("too_large", code)
    end)

    it("refuses well-framed payloads that are not valid messages", function()
        local cases = {
            ["not a map"] = "\147\1\2\3",
            ["unknown type"] = "\130\0\99\1\1",
            ["huge array claim"] = "\221\255\255\255\255",
            ["deep nesting"] = ("\145"):rep(100) .. "\0",
            ["negative term"] = "\132\0\1\1\1\2\2\3\255",
            ["reserved byte"] = "\193",
            ["empty"] = "",
            -- type append_resp (2) from 1 to 1 with a snapshot chunk (key 19): not allowed
            ["snapshot data in an append_resp"] = "\132\0\2\1\1\2\1\19\196\1x",
        }
        for what, payload in each(cases) do
            local got, code, detail = tk.wire_decode(tk.wire_frame(payload))
            assert(got == nil, what)
            assert(code == "protocol", format("%s: %s %s", what, tostring(code), tostring(detail)))
        end
    end)

    -- docs/wire-protocol.md: key 22 (time_ms) of read_index_resp is the leader's clock at
    -- the read index; absent (a sender without the field) decodes as 0, unknown.
    it("carries a read answer's leader time under key 22, absent meaning unknown", function()
        -- read_index_resp (11) from 1 to 2, term 9, index 44, seq 77, time_ms 1234
        local with = "\135\0\11\1\1\2\2\3\9\9\44\20\77\22\205\4\210"
        local got = assert(tk.wire_decode(tk.wire_frame(with)))
        assert.are.equal("read_index_resp", got.type)
        assert.are.equal(44, got.index)
        assert.are.equal(77, got.seq)
        assert.are.equal(1234, got.time_ms)
        local without = "\134\0\11\1\1\2\2\3\9\9\44\20\77"
        got = assert(tk.wire_decode(tk.wire_frame(without)))
        assert.are.equal(44, got.index)
        assert.are.equal(0, got.time_ms)
        -- the encoder writes exactly that map for the same message
        assert.are.equal(tk.wire_frame(with), tk.wire_encode({
            type = "read_index_resp", from = 1, to = 2, term = 9, index = 44, seq = 77,
            time_ms = 1234 }))
        -- and leaves the key out when the time is unknown, as an older sender does
        assert.are.equal(tk.wire_frame(without), tk.wire_encode({
            type = "read_index_resp", from = 1, to = 2, term = 9, index = 44, seq = 77 }))
    end)

    it("refuses entries that break the log's invariants", function()
        local m = {
            type = "append", from = A, to = B, term = 3, prev_index = 10, prev_term = 2,
            entries = { { term = 3, index = 12, type = 1, data = "gap" } },
        }
        local got, code, detail = tk.wire_decode(tk.wire_encode(m))
        assert.is_nil(got)
        assert.are.equal("protocol", code)
        assert.matches("consecutive", detail)
        m.entries = { { term = 4, index = 11, type = 1 } } -- beyond the message's term
        got, code = tk.wire_decode(tk.wire_encode(m))
        assert.is_nil(got)
        m.type = "vote"
        m.entries = { { term = 3, index = 11, type = 1 } }
        got, code, detail = tk.wire_decode(tk.wire_encode(m))
        assert.is_nil(got)
        assert.matches("entries in a message", detail)
    end)

    it("never crashes on random garbage or mutated frames (seed " .. SEED .. ")", function()
        local rng = prng.new(SEED)
        local frames = {}
        for i, m in ipairs(MESSAGES) do frames[i] = tk.wire_encode(m) end
        for round = 1, 3000 do
            local s
            local kind = rng:int(1, 3)
            if kind == 1 then -- pure garbage
                local t = {}
                for i = 1, rng:int(0, 64) do t[i] = char(rng:int(0, 255)) end
                s = concat(t)
            elseif kind == 2 then -- a valid header around garbage (reaches the CRC check)
                local t = {}
                for i = 1, rng:int(1, 64) do t[i] = char(rng:int(0, 255)) end
                s = be32(#t) .. be32(rng:int(0, 2147483646)) .. concat(t)
            else -- a real frame with a few bytes overwritten
                s = frames[rng:int(1, #frames)]
                for _ = 1, rng:int(1, 4) do
                    local pos = rng:int(1, #s)
                    s = s:sub(1, pos - 1) .. char(rng:int(0, 255)) .. s:sub(pos + 1)
                end
            end
            local ok, got, code = pcall(tk.wire_decode, s)
            assert(ok, format("seed %d round %d: raised %s", SEED, round, tostring(got)))
            assert(got ~= nil or type(code) == "string",
                   format("seed %d round %d: no error code", SEED, round))
        end
    end)
end)
