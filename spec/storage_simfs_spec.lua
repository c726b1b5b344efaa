-- spec/storage_simfs_spec.lua: the production storage (csrc/storage: segments, meta, the
-- snapshot writer and receiver, recovery on open) over the simulated file system
-- (csrc/sim/simfs.h), crashed at random mutating operations. Each seed runs a random
-- workload of one node's data directory (appends synced in batches or left unsynced,
-- truncations, compactions after snapshots, term and vote, snapshots written locally or
-- received, the log emptied after a received one, clean reopens), crashes at a random
-- operation, reboots the file system (what was not synced may be lost, by its flags) and
-- reopens. After every crash:
--   - the open succeeds (the node restarts);
--   - every acknowledged entry (its sync, or the truncate that synced it, returned
--     success) is there with its term and bytes, unless a durable snapshot covers it or a
--     truncate that was under way may have cut it; every entry there is one that was
--     written at that index and not durably cut since;
--   - term and vote are the last durably set, or the ones being set at the crash;
--   - the newest durable snapshot is found (or a newer one that was being written), with
--     the bytes that were written.
-- Then every operation of a few small workloads is a crash point in turn, and every
-- operation of a truncation (inside the last segment, across segments, the reset), over
-- crashes that keep any subset of the unsynced pages: it comes back done or not begun.
--
--   HELIOS_SEEDS=50000 busted spec/storage_simfs_spec.lua   -- more seeds (ASan: fewer)
--   HELIOS_SEED=17 busted spec/storage_simfs_spec.lua      -- replay one seed
--   HELIOS_SIMFS_PAGES=1 ...   -- every seed also crashes keeping any subset of unsynced
--                                4 KiB pages (by default a third of the seeds do; 0: none)

local core = require("helios.core")
local tk = require("helios.testkit")
local prng = require("spec.helpers.prng")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local SEEDS = tonumber(os.getenv("HELIOS_SEEDS") or "") or 3000
local ONE = tonumber(os.getenv("HELIOS_SEED") or "")
local PAGES = os.getenv("HELIOS_SIMFS_PAGES") -- nil: a share of the seeds, "1": all, "0": none
local DIR = "n1"
local FILE = "spec/storage_simfs_spec.lua"

-- The crash flags of a seed: strict (only what was synced), prefixes of unsynced changes,
-- torn writes, and over those any subset of the unsynced pages (a third of the seeds, or
-- as HELIOS_SIMFS_PAGES says).
local function flags_of(seed)
    local k = seed % 4
    local pages = PAGES == "1" or (PAGES ~= "0" and seed % 3 == 0)
    return { keep_unsynced = k == 1 or k == 3, torn = k >= 2, pages = pages }
end

local function flags_name(f)
    local t = {}
    for _, k in ipairs{ "keep_unsynced", "torn", "pages" } do
        if f[k] then t[#t + 1] = k end
    end
    return #t > 0 and table.concat(t, "+") or "strict"
end

local function val(term, data) return term .. ":" .. data end

local function snap_key(index, term) return index .. "/" .. term end

local function snap_path(index, term)
    return ("%s/snapshots/%020d-%020d.snap"):format(DIR, index, term)
end

local function newer(a, b) -- snapshot a newer than b (b may be nil)
    return b == nil or a.index > b.index or (a.index == b.index and a.term > b.term)
end

-- One node's storage and what the workload knows about it.
local Node = {}
Node.__index = Node

local function open_log(fs, seg)
    return tk.storage_open(DIR, { fs = fs, segment_size = seg, cache_bytes = 131072 })
end

local function new_node(seed, flags)
    local rng = prng.new(seed)
    local n = setmetatable({
        seed = seed, rng = rng, flags = flags,
        fs = tk.simfs_new(seed, flags),
        seg = ({ 300, 1024, 4096, 65536 })[rng:int(1, 4)],
        acked = {},      -- index -> value: durable (acknowledged)
        history = {},    -- index -> set of values that may be found there
        pending = {},    -- appended, not yet synced
        cut_from = nil,  -- a truncate from here was under way at the crash
        meta = { 0, 0 }, meta_try = nil,
        snap = nil,      -- the newest durable snapshot {index, term}
        snaps = {},      -- key -> file bytes of every snapshot attempted
        term = 1,
        crashes = 0, checks = 0, snaps_written = 0, snaps_received = 0,
    }, Node)
    local st, info = open_log(n.fs, n.seg)
    assert(st, info)
    n.st = st
    return n
end

function Node:fail(msg)
    error(("seed %d (%s): %s\n  replay: HELIOS_SEED=%d %sbusted %s"):format(
        self.seed, flags_name(self.flags), msg, self.seed,
        PAGES and ("HELIOS_SIMFS_PAGES=" .. PAGES .. " ") or "", FILE), 0)
end

-- An operation failed: only a crash may make it fail.
function Node:failed(what, code, msg)
    if not self.fs:crashed() then
        self:fail(("%s failed without a crash: %s %s"):format(what, tostring(code), tostring(msg)))
    end
    return false
end

function Node:append(sync)
    local rng = self.rng
    if rng:chance(0.1) then self.term = self.term + 1 end
    local batch = {}
    local at = self:first_free()
    for k = 1, rng:int(1, 6) do
        local len = rng:chance(0.1) and rng:int(3000, 9000) or rng:int(0, 200)
        -- a tag tells apart two writes at one index in one term
        local data = ("%d-%d-%d-"):format(self.seed, at + k - 1, rng:int(0, 999999))
                     .. ("z"):rep(len)
        batch[k] = { index = at + k - 1, term = self.term, data = data }
    end
    for _, e in ipairs(batch) do
        local v = val(e.term, e.data)
        self.history[e.index] = self.history[e.index] or {}
        self.history[e.index][v] = true
    end
    local ok, code, msg = self.st:append(batch)
    if not ok then return self:failed("append", code, msg) end
    for _, e in ipairs(batch) do self.pending[#self.pending + 1] = e end
    if sync then return self:sync() end
    return true
end

function Node:acknowledge()
    for _, e in ipairs(self.pending) do self.acked[e.index] = val(e.term, e.data) end
    self.pending = {}
end

function Node:sync()
    local ok, code, msg = self.st:sync()
    if not ok then return self:failed("sync", code, msg) end
    self:acknowledge()
    return true
end

function Node:truncate()
    local st = self.st
    local lo = math.max(st:first_index(), (self.snap_hi or 0) + 1)
    if lo > st:last_index() then return true end
    local from = self.rng:int(lo, st:last_index())
    self.cut_from = from
    local ok, code, msg = st:truncate(from)
    if not ok then return self:failed("truncate", code, msg) end
    self.cut_from = nil
    self:acknowledge() -- truncate syncs first
    for i, _ in each(self.acked) do
        if i >= from then self.acked[i] = nil end
    end
    for i, _ in each(self.history) do
        if i >= from then self.history[i] = nil end
    end
    return true
end

function Node:set_meta()
    local term = math.max(self.meta[1], self.term) + self.rng:int(0, 1)
    local vote = self.rng:int(0, 5)
    self.meta_try = { term, vote }
    local ok, code, msg = self.st:set_meta(term, vote)
    if not ok then return self:failed("set_meta", code, msg) end
    self.meta, self.meta_try = { term, vote }, nil
    self.term = math.max(self.term, term)
    return true
end

-- The state a snapshot holds is a function of its index and term (the committed prefix it
-- covers), so a file rewritten under the same name holds the same bytes.
function Node:payload(index, term)
    local r = prng.new(self.seed * 7919 + index * 31 + term)
    local len = r:chance(0.2) and r:int(4000, 12000) or r:int(0, 300)
    return ("snap-%d-%d-%d-"):format(self.seed, index, term) .. ("p"):rep(len)
end

-- A snapshot the node takes itself: at an acknowledged index, with its term; then older
-- snapshots are pruned and the log compacted below it, keeping a few trailing entries.
function Node:local_snapshot()
    local lo = (self.snap and self.snap.index or 0) + 1
    local cands = {}
    for i, _ in each(self.acked) do
        if i >= lo then cands[#cands + 1] = i end
    end
    if #cands == 0 then return true end
    table.sort(cands)
    local index = cands[self.rng:int(1, #cands)]
    local term = tonumber(self.acked[index]:match("^(%d+):"))
    local payload = self:payload(index, term)
    local voters = { 1, 2, 3 }
    local key = snap_key(index, term)
    self.snaps[key] = tk.snap_file(index, term, voters, payload)
    self.snap_hi = math.max(self.snap_hi or 0, index)
    local size, code, msg = tk.snap_write(DIR, index, term, voters, payload,
                                            { fs = self.fs, chunk = self.rng:int(100, 5000) })
    if not size then return self:failed("snap_write", code, msg) end
    local s = { index = index, term = term }
    if newer(s, self.snap) then self.snap = s end
    self.snaps_written = self.snaps_written + 1
    tk.snap_prune(DIR, self.snap.index, self.snap.term, { fs = self.fs })
    if self.fs:crashed() then return false end
    local below = math.max(1, self.snap.index + 1 - self.rng:int(0, 5))
    local ok, c2, m2 = self.st:compact(below)
    if not ok then return self:failed("compact", c2, m2) end
    return true
end

-- A snapshot received from a leader (InstallSnapshot): the file through the receiver,
-- then the log emptied (it continues after the snapshot).
function Node:receive_snapshot()
    local lo = (self.snap and self.snap.index or 0) + 1
    local index = self.rng:int(lo, math.max(lo, self:first_free() + 7))
    self.term = self.term + self.rng:int(0, 1)
    local term = self.term
    local payload = self:payload(index, term)
    local bytes = tk.snap_file(index, term, { 1, 2, 3 }, payload)
    self.snaps[snap_key(index, term)] = bytes
    self.snap_hi = math.max(self.snap_hi or 0, index)
    local ok, code, msg = tk.snap_recv(DIR, index, term, bytes,
                                         { fs = self.fs, chunk = self.rng:int(64, 4096) })
    if not ok then return self:failed("snap_recv", code, msg) end
    local s = { index = index, term = term }
    if newer(s, self.snap) then self.snap = s end
    self.snaps_received = self.snaps_received + 1
    return self:reset(index)
end

-- Empty the log (what hr_group_reset does after an installed snapshot); the next append
-- goes right after the snapshot.
function Node:reset(index)
    local st = self.st
    self.cut_from = st:first_index()
    local ok, code, msg = st:truncate(st:first_index())
    if not ok then return self:failed("reset", code, msg) end
    self.cut_from = nil
    self.acked, self.history, self.pending = {}, {}, {}
    if st:last_index() >= st:first_index() then
        self:fail("the log is not empty after a reset")
    end
    return true
end

-- Where the next append goes: after the last entry; an empty log (emptied for a snapshot,
-- cut, or compacted down to an empty segment) goes on after the snapshot, as a node does,
-- unless an empty segment pins where it starts.
function Node:first_free()
    local st = self.st
    local first, last = st:first_index(), st:last_index()
    if last >= first then return last + 1 end
    return math.max(self.snap and self.snap.index + 1 or 1, first)
end

function Node:reopen()
    self.st:close()
    local st, code, msg = open_log(self.fs, self.seg)
    if not st then return self:failed("reopen", code, msg) end
    self.st = st
    self.pending = {} -- dropped by close, as a crash would
    return true
end

-- One random step; false once the file system has crashed.
function Node:step()
    local r = self.rng:int(1, 100)
    if r <= 40 then return self:append(true)
    elseif r <= 55 then return self:append(false)
    elseif r <= 62 then return self:sync()
    elseif r <= 68 then return self:truncate()
    elseif r <= 74 then return self:set_meta()
    elseif r <= 83 then return self:local_snapshot()
    elseif r <= 89 then return self:receive_snapshot()
    elseif r <= 94 then
        local st = self.st
        local ok, code, msg = st:compact(self.snap and self.snap.index + 1 or 1)
        if not ok then return self:failed("compact", code, msg) end
        return true
    else return self:reopen()
    end
end

-- Reboot the file system and check what the node finds (the list at the top).
function Node:recover()
    self.st:close() -- the crashed process's files: closing them writes nothing
    self.fs:reboot()
    self.crashes = self.crashes + 1
    local st, info, msg = open_log(self.fs, self.seg)
    if not st then self:fail(("open after the crash failed: %s %s"):format(info, msg)) end
    self.st = st
    local sound, report = core.storage_inspect(DIR, nil, { fs = self.fs })
    if not sound then self:fail("inspect after the open:\n" .. report) end
    local found, notes = tk.snap_find(DIR, { fs = self.fs })
    if found == nil then self:fail("snap_find: " .. tostring(notes)) end
    if self.snap then
        if not found then
            self:fail(("snapshot %d/%d was durable but none is found (%s)"):format(
                self.snap.index, self.snap.term, notes))
        end
        if newer(self.snap, found) then
            self:fail(("found snapshot %d/%d, older than the durable %d/%d"):format(
                found.index, found.term, self.snap.index, self.snap.term))
        end
    end
    if found then
        local want = self.snaps[snap_key(found.index, found.term)]
        if not want then
            self:fail(("found snapshot %d/%d was never written"):format(found.index, found.term))
        end
        if self.fs:read(snap_path(found.index, found.term)) ~= want then
            self:fail(("snapshot %d/%d: not the bytes written"):format(found.index, found.term))
        end
    end
    local covered = found and found.index or 0
    local mt, mv = st:meta()
    local try = self.meta_try
    if not ((mt == self.meta[1] and mv == self.meta[2]) or
            (try and mt == try[1] and mv == try[2])) then
        self:fail(("meta term %d vote %d; durable was %d/%d"):format(mt, mv, self.meta[1],
                                                                    self.meta[2]))
    end
    -- The log.
    local first, last = st:first_index(), st:last_index()
    local present = {}
    if last >= first then
        local es, code, msg = st:entries(first, last)
        if not es then self:fail(("read %d..%d: %s %s"):format(first, last, code, msg)) end
        for _, e in ipairs(es) do
            local v = val(e.term, e.data)
            if not (self.history[e.index] and self.history[e.index][v]) then
                self:fail(("entry %d (term %d) was never written there, or was cut durably")
                          :format(e.index, e.term))
            end
            present[e.index] = v
        end
    end
    for i, v in each(self.acked) do
        if present[i] == nil then
            if i > covered and not (self.cut_from and i >= self.cut_from) then
                self:fail(("acknowledged entry %d is gone (log %d..%d, snapshot %d; %s)")
                          :format(i, first, last, covered, info))
            end
        elseif present[i] ~= v then
            self:fail(("acknowledged entry %d changed (term %s, was %s)"):format(
                i, present[i]:match("^%d+"), v:match("^%d+")))
        end
    end
    self.checks = self.checks + 1
    -- Restart reconciliation: the log must agree with the newest snapshot.
    if found then
        local ok, code, msg = st:reconcile(found.index, found.term)
        if not ok then self:fail(("reconcile: %s %s"):format(code, msg)) end
        local f2, l2 = st:first_index(), st:last_index()
        if l2 >= f2 and l2 < found.index then
            self:fail(("after reconciling, the log %d..%d ends before snapshot %d"):format(
                f2, l2, found.index))
        end
        if l2 >= f2 and found.index >= f2 then
            local e = st:entries(found.index, found.index)
            if e[1].term ~= found.term then
                self:fail(("after reconciling, term %d at the snapshot's index %d, not %d")
                          :format(e[1].term, found.index, found.term))
            end
        end
    end
    -- What is there now is durable (the reboot made it so): the new baseline.
    self.acked, self.history, self.pending = {}, {}, {}
    first, last = st:first_index(), st:last_index()
    if last >= first then
        for _, e in ipairs(assert(st:entries(first, last))) do
            local v = val(e.term, e.data)
            self.acked[e.index] = v
            self.history[e.index] = { [v] = true }
            self.term = math.max(self.term, e.term)
        end
    end
    self.cut_from, self.meta_try = nil, nil
    self.meta = { mt, mv }
    self.snap = found or nil
    self.snap_hi = found and found.index or 0
    self.term = math.max(self.term, mt, found and found.term or 0)
end

-- Run `cycles` crash cycles: each crashes at a random operation within the next `span`
-- mutating operations (or, if the workload gets there first, after `steps` steps).
local function run_seed(seed, flags, cycles, span, steps)
    local n = new_node(seed, flags)
    for _ = 1, cycles do
        n.fs:crash_at(n.fs:op_count() + n.rng:int(1, span))
        for _ = 1, steps do
            if not n:step() then break end
        end
        if not n.fs:crashed() then n.fs:crash() end
        n:recover()
    end
    n.st:close()
    return n
end

-- One workload of `steps` steps crashed at operation k (0: never) then recovered.
local function run_walk(seed, flags, steps, k)
    local n = new_node(seed, flags)
    if k > 0 then n.fs:crash_at(k) end
    for _ = 1, steps do
        if not n:step() then break end
    end
    local ops = n.fs:op_count()
    if not n.fs:crashed() then n.fs:crash() end
    n:recover()
    n.st:close()
    return ops
end

-- A log of synced batches (a sync mark every few records, over several 4 KiB pages), then
-- a truncation crashed at its k-th operation (0: not crashed) and the open after it.
-- `shape`: "cut" (inside the last segment), "across" (inside an earlier, sealed segment,
-- later segments removed) or "reset" (from the first index: the log emptied).
local function truncation_case(seed, shape, k)
    local flags = { keep_unsynced = seed % 2 == 1, pages = true }
    local fs = tk.simfs_new(seed, flags)
    local seg = shape == "cut" and 65536 or 4096
    local st = assert(open_log(fs, seg))
    local rng = prng.new(seed)
    local vals, n = {}, 0
    for _ = 1, 12 do
        local batch = {}
        for j = 1, rng:int(1, 4) do
            local data = ("%d-%d-"):format(seed, n + j) .. ("y"):rep(rng:int(100, 700))
            batch[j] = { index = n + j, term = 1, data = data }
            vals[n + j] = data
        end
        assert(st:append(batch))
        assert(st:sync())
        n = n + #batch
    end
    local from = shape == "reset" and 1 or rng:int(2, math.max(2, math.floor(n / 3)))
    local before = fs:op_count()
    if k > 0 then fs:crash_at(before + k) end
    local ok = st:truncate(from)
    local ops = fs:op_count() - before
    st:close()
    fs:crash() -- a power cut right after the truncate returned, if it did
    fs:reboot()
    local intent = fs:read(DIR .. "/log/TRUNCATE") ~= nil
    local where = ("seed %d, %s from %d of 1..%d, crash at operation %d of the truncate")
                  :format(seed, shape, from, n, k)
    local sound, report = core.storage_inspect(DIR, nil, { fs = fs })
    if not sound then error(where .. ": inspect before the open:\n" .. report, 0) end
    if intent and not report:find("TRUNCATE: truncation from index " .. from, 1, true) then
        error(where .. ": inspect does not report the pending truncation:\n" .. report, 0)
    end
    local st2, info, msg = open_log(fs, seg)
    if not st2 then error(("%s: open failed: %s %s"):format(where, info, msg), 0) end
    local last = st2:last_index()
    if (ok or intent) and last ~= from - 1 then
        error(("%s: log ends at %d, the truncation (%s) should be done"):format(
            where, last, ok and "returned" or "its intent was on disk"), 0)
    end
    if intent and not info:find("interrupted truncation from index " .. from, 1, true) then
        error(where .. ": the open does not say it completed the truncation: " .. info, 0)
    end
    if last ~= from - 1 and last ~= n then
        error(("%s: log ends at %d: neither done nor not begun"):format(where, last), 0)
    end
    if last >= st2:first_index() then
        for _, e in ipairs(assert(st2:entries(st2:first_index(), last))) do
            if e.data ~= vals[e.index] then error(where .. ": entry " .. e.index .. " changed", 0) end
        end
    end
    if fs:read(DIR .. "/log/TRUNCATE") then error(where .. ": the intent is left", 0) end
    st2:close()
    return ops
end

describe("storage over the simulated file system", function()
    it("keeps what was acknowledged across crashes at random operations", function()
        local first, last = 1, SEEDS
        if ONE then first, last = ONE, ONE end
        local tot = { checks = 0, written = 0, received = 0, reverted = 0,
                      torn = 0, names = 0 }
        for seed = first, last do
            local flags = flags_of(seed)
            local n = run_seed(seed, flags, 4, 150, 60)
            local s = n.fs:stats()
            tot.checks = tot.checks + n.checks
            tot.written = tot.written + n.snaps_written
            tot.received = tot.received + n.snaps_received
            tot.reverted = tot.reverted + s.files_reverted
            tot.names = tot.names + s.names_reverted
            tot.torn = tot.torn + s.torn
        end
        print(("\nstorage_simfs_spec: seeds %d..%d, %d crashes checked, %d snapshots written,"
               .. " %d received; reboots reverted %d files, %d directories, tore %d writes")
              :format(first, last, tot.checks, tot.written, tot.received, tot.reverted,
                      tot.names, tot.torn))
        -- proof the run exercised what it claims to
        assert.is_true(tot.checks >= (last - first + 1) * 4)
        if not ONE then
            assert.is_true(tot.written > 0 and tot.received > 0 and tot.reverted > 0)
            assert.is_true(tot.names > 0 and tot.torn > 0)
        end
    end)

    it("recovers from a crash at every operation of small workloads", function()
        local points = 0
        for _, seed in ipairs{ 7, 8, 9, 10, 11, 12, 13, 14 } do
            local flags = flags_of(seed)
            local total = run_walk(seed, flags, 30, 0)
            for k = 1, total do
                run_walk(seed, flags, 30, k)
                points = points + 1
            end
        end
        print(("storage_simfs_spec: %d crash points walked"):format(points))
        assert.is_true(points > 100)
    end)

    -- ftruncate inside a page zeroes the rest of it, and a crash before the fdatasync may
    -- keep that page with the old size and the old later pages, a sync-marked record among
    -- them: damage before a valid mark, which the last segment's scan calls corruption.
    -- log/TRUNCATE (intent.c) makes the open finish the truncation instead.
    it("finds a truncation crashed at any of its operations done or not begun", function()
        local points = 0
        for seed = 1, 40 do
            for _, shape in ipairs{ "cut", "across", "reset" } do
                local total = truncation_case(seed, shape, 0)
                for k = 1, total do
                    truncation_case(seed, shape, k)
                    points = points + 1
                end
            end
        end
        print(("storage_simfs_spec: %d truncation crash points"):format(points))
        assert.is_true(points > 500)
    end)
end)
