-- spec/restart_reconcile_spec.lua: a node restarts from a snapshot and a log on disk that
-- disagrees with it (csrc/storage/reconcile.c), on a real node (raft.new, a real data dir).
--
-- The three shapes a crash can leave (docs/storage-format.md, "Recovery"):
--   1. the log ends before the snapshot's index S (a follower snapshotted what it applied
--      before its own write of it was durable);
--   2. the log holds another term at S (a received snapshot was made durable, the crash came
--      before the log was emptied);
--   3. shape 2 with trailing_logs = 0, where the restart used to read from S + 1 only and
--      splice the stale entries after the snapshot.
-- Each time the node must start, take writes, and after a second restart still hold every
-- acknowledged write and nothing of the stale log.
--
-- The data dir is made by a real node (entries, then a snapshot), then its log is rewritten
-- into the shape with the storage binding while no node holds the dir.

local raft = require("helios.raft")
local core = require("helios.core")
local tk = require("helios.testkit")
local kv = require("helios.fsm.kv")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local nh = require("spec.helpers.node")

local format = string.format
local wait_for = nh.wait_for

local BASE = { election_timeout_ms = 150, heartbeat_timeout_ms = 30,
               snapshot_threshold = 1000000 }

-- One single-node cluster on dir: c.node, c.fsm after c:start().
local function new_single(dir)
    local c = { ids = { "n1" }, nodes = {}, dir = dir, port = core.free_port() }
    function c:start(extra)
        self.fsm = kv.new()
        local opts = { id = "n1", peers = { n1 = "127.0.0.1:" .. self.port },
                       data_dir = self.dir .. "/n1", fsm = self.fsm, secret = "s" }
        for k, v in each(BASE) do opts[k] = v end
        for k, v in each(extra or {}) do opts[k] = v end
        self.node = raft.new(opts)
        self.nodes.n1 = self.node
        local ok, code, detail = self.node:start()
        assert(ok, format("start: %s %s", tostring(code), tostring(detail)))
        assert(wait_for(function()
            local _, leader = self.node:state()
            return leader
        end, 5000), "the single node did not become leader")
    end
    -- Inside a coroutine: apply "set <prefix><i> v<i>" for i = lo..hi; the last index.
    function c:load(prefix, lo, hi)
        local last
        for i = lo, hi do
            local index, code, detail = self.node:apply(format("set %s%d v%d", prefix, i, i),
                                                        3000)
            assert(index, format("apply %s%d: %s %s", prefix, i, tostring(code),
                                 tostring(detail)))
            last = index
        end
        return last
    end
    -- Run body in a coroutine on the loop, the node shut down after it.
    function c:run(body)
        local ok, err = nh.run_scenario(self, 20000, body)
        assert(ok, err)
    end
    return c
end

-- Make a data dir with a snapshot at S in term 2: keys a1..a3 in term 1, a restart,
-- keys b1..b20 in term 2, a snapshot, then c1..c5 after it. Returns S and its term.
local function make_data(c)
    c:run(function()
        c:start()
        c:load("a", 1, 3)
    end)
    local s, sterm
    c:run(function()
        c:start()
        c:load("b", 1, 20)
        local index = assert(c.node:snapshot())
        assert(wait_for(function() return c.node:status().snapshot_index == index end, 5000))
        local st = c.node:status()
        s, sterm = st.snapshot_index, st.snapshot_term
        c:load("c", 1, 5)
    end)
    assert(sterm >= 2, "the snapshot should be in the second term")
    return s, sterm
end

-- Rewrite the log of c's data dir with f(st) while no node holds it.
local function with_log(c, f)
    local st = assert(tk.storage_open(c.dir .. "/n1"))
    f(st)
    st:close()
end

-- Restart, take writes d1..d5, restart again: every acknowledged write is there, no key of
-- the stale log, and the recovery info says what was discarded. Returns that info.
local function check_restarts(c, extra, stale_prefix)
    local info, last
    c:run(function()
        c:start(extra)
        info = c.node._backend._core:recovery_info()
        last = c:load("d", 1, 5)
    end)
    c:run(function()
        c:start(extra)
        assert(wait_for(function() return c.node:status().applied_index >= last end, 5000),
               "the second restart did not apply up to the acknowledged writes")
        for i = 1, 20 do assert.equal("v" .. i, c.fsm:get("b" .. i), "b" .. i) end
        for i = 1, 5 do assert.equal("v" .. i, c.fsm:get("d" .. i), "d" .. i) end
        for _, key in ipairs(c.fsm:keys()) do
            assert(not key:match("^" .. stale_prefix), "stale entry applied: " .. key)
        end
        -- And it still takes writes.
        c:load("e", 1, 2)
    end)
    return info
end

describe("a restart reconciles the log with the newest snapshot", function()
    local dir, c
    before_each(function()
        dir = nh.tmpdir()
        c = new_single(dir)
    end)
    after_each(function()
        nh.stop_all(c)
        nh.rmrf(dir)
    end)

    it("discards a log that ends before the snapshot's index", function()
        local s = make_data(c)
        with_log(c, function(st)
            assert(st:truncate(s - 2))
            assert.equal(s - 3, st:last_index())
        end)
        local info = check_restarts(c, nil, "stale")
        assert.matches(format("it ends at index %d, before the snapshot at %d", s - 3, s), info,
                       1, true)
    end)

    local function stale_at_snapshot(st, s)
        -- Entries 4.. are term 2; from index 4 on, write a stale term-1 history that goes
        -- past the snapshot's index.
        assert(st:truncate(4))
        local es = {}
        for i = 4, s + 3 do
            es[#es + 1] = { index = i, term = 1, type = 1, time_ms = i,
                            data = format("set stale%d x", i) }
        end
        assert(st:append(es))
        assert(st:sync())
    end

    it("discards a log that holds another term at the snapshot's index", function()
        local s, sterm = make_data(c)
        with_log(c, function(st) stale_at_snapshot(st, s) end)
        local info = check_restarts(c, nil, "stale")
        assert.matches(format("it holds term 1 at index %d where the snapshot has term %d", s,
                              sterm), info, 1, true)
    end)

    it("checks the entry at the snapshot's index with trailing_logs = 0", function()
        local s = make_data(c)
        with_log(c, function(st) stale_at_snapshot(st, s) end)
        local info = check_restarts(c, { trailing_logs = 0 }, "stale")
        assert.matches("discarded", info, 1, true)
    end)

    it("keeps a log that continues the snapshot", function()
        local s = make_data(c)
        local info = check_restarts(c, { trailing_logs = 0 }, "stale")
        assert.is_nil(info:find("discarded", 1, true), info)
        -- c1..c5 came after the snapshot and survive.
        c:run(function()
            c:start()
            assert(s > 0)
            -- Leading is not having applied: wait until the log is replayed.
            local last = c.node:status().last_index
            assert(wait_for(function() return c.node:status().applied_index >= last end, 5000),
                   "the restart did not replay its log")
            for i = 1, 5 do assert.equal("v" .. i, c.fsm:get("c" .. i)) end
        end)
    end)
end)
