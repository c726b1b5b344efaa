-- atlas_modules_spec.lua: the atlas_modules check of the ATLAS state machine
-- (helios.atlas.fsm, docs/atlas.md "Modules"): the log records one module set, every
-- replica compares it with its own when it applies the record and when it restores a
-- snapshot, and a node whose set differs is told (on_modules_mismatch) while the state
-- stays the same on every replica. On its own, then on a simulated cluster (a node with
-- another set, live and after catching up from a snapshot). The process-level refusal
-- (`helios node` exits) is in spec/atlas_process_spec.lua.
--
--   HELIOS_SEED=7 busted spec/atlas_modules_spec.lua   -- replay one seed

local sim = require("helios.sim")
local atlas = require("helios.atlas")
local core = require("helios.core")
local cl = require("spec.helpers.cluster")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
local E = atlas.encode

local function entry(i, t) return { index = i, term = 1, time_ms = t or 0 } end

describe("atlas.fsm modules", function()
    it("records the first set, compares it, and tells a node whose set differs", function()
        local said = {}
        local a = atlas.fsm{ modules = { "bank", "audit" } }
        local b = atlas.fsm{ modules = { "audit", "bank", "bank" } } -- order, repeats: same set
        local c = atlas.fsm{ modules = { "bank" },
                             on_modules_mismatch = function(msg) said[#said + 1] = msg end }
        local d = atlas.fsm() -- nil: no modules
        -- nothing recorded yet: each would propose its own set
        local cmd = a:modules_pending()
        assert.is_string(cmd)
        assert.are.same({ op = "modules", names = { "audit", "bank" } }, core.mp_decode(cmd))
        assert.are.same({ op = "modules", names = {} }, core.mp_decode(d:modules_pending()))
        -- every replica applies the same log: a's record first, then d's (which came later)
        for _, f in ipairs({ a, b, c, d }) do
            assert.is_true(f:apply(cmd, 1, entry(1)))
            assert.is_false(f:apply(E.modules({}), 2, entry(2))) -- the first record stays
            assert.is_nil(f:modules_pending())
            assert.are.same({ "audit", "bank" }, (f:modules_record()))
        end
        assert.is_nil(select(2, a:modules_record()))
        assert.is_nil(select(2, b:modules_record()))
        assert.are.equal(1, #said)
        assert.matches("this node loaded bank, but the cluster's log records audit, bank",
                       said[1], 1, true)
        assert.matches("atlas_modules", said[1], 1, true)
        assert.are.equal(said[1], select(2, c:modules_record()))
        -- no callback: the mismatch is only recorded
        assert.matches("this node loaded none", select(2, d:modules_record()), 1, true)
        -- the state is the same on every replica, whatever each loaded
        assert.are.equal(a:snapshot(), c:snapshot())
        assert.are.equal(a:snapshot(), d:snapshot())
        -- told once, not per later record
        c:apply(E.modules({ "x" }), 3, entry(3))
        assert.are.equal(1, #said)
        -- malformed records change nothing
        local f = atlas.fsm()
        assert.are.equal("invalid", f:apply(E.raw({ op = "modules" }), 1, entry(1)).err)
        assert.are.equal("invalid", f:apply(E.raw({ op = "modules", names = { 1 } }), 2,
                                            entry(2)).err)
        assert.is_string(f:modules_pending())
    end)

    it("carries the record in snapshots and compares it on restore", function()
        local a = atlas.fsm{ modules = { "bank" } }
        a:apply(a:modules_pending(), 1, entry(1))
        a:apply(E.set("k", "v"), 2, entry(2))
        local snap = a:snapshot()
        local said
        local same = atlas.fsm{ modules = { "bank" },
                                on_modules_mismatch = function(m) said = m end }
        same:restore(snap)
        assert.is_nil(said)
        assert.are.same({ "bank" }, (same:modules_record()))
        assert.is_nil(same:modules_pending())
        local other = atlas.fsm{ modules = { "bank", "extra" },
                                 on_modules_mismatch = function(m) said = m end }
        other:restore(snap)
        assert.matches("loaded bank, extra, but the cluster's log records bank", said, 1, true)
        assert.are.equal(snap, other:snapshot()) -- the state as every replica has it
        -- a snapshot made before any record restores to "no record yet"
        local empty = atlas.fsm{ modules = { "bank" } }
        empty:restore(atlas.fsm():snapshot())
        assert.is_nil((empty:modules_record()))
        assert.is_string(empty:modules_pending())
        -- a callback that raises does not make apply raise
        local bad = atlas.fsm{ modules = { "x" },
                               on_modules_mismatch = function() error("boom") end }
        assert.is_true(bad:apply(E.modules({ "y" }), 1, entry(1)))
    end)

    it("refuses malformed options", function()
        assert.has_error(function() atlas.fsm{ modules = "bank" } end,
                         "atlas.fsm: modules must be a list of module names")
        assert.has_error(function() atlas.fsm{ modules = { 1 } } end,
                         "atlas.fsm: modules must be a list of module names")
        assert.has_error(function() atlas.fsm{ on_modules_mismatch = true } end,
                         "atlas.fsm: on_modules_mismatch must be a function")
    end)
end)

describe("atlas modules on helios.sim", function()
    -- n3 loads another set; every node's FSM reports to told[id].
    local function cluster(seed, fsms, told, extra)
        local config = {}
        for k, v in each(cl.config) do config[k] = v end
        for k, v in each(extra or {}) do config[k] = v end
        return sim.cluster{ n = 3, seed = seed, config = config, fsm = function(id)
            local f = atlas.fsm{
                modules = id == "n3" and { "bank", "extra" } or { "bank" },
                on_modules_mismatch = function(msg)
                    told[id] = msg
                    told[id .. ":applied"] = fsms[id].applied -- where the FSM stood
                end,
            }
            fsms[id] = f
            return f
        end }
    end

    local function wait_leader(c, not_id)
        local leader
        assert(c:run_until(function()
            leader = c:leader()
            return leader ~= nil and leader ~= not_id
        end, 5000), "no leader")
        return leader
    end

    -- What the leader's timer does (helios.atlas): propose the record while there is none.
    local function propose_record(c, fsms)
        local leader = wait_leader(c)
        return leader, assert(c:node(leader):propose(assert(fsms[leader]:modules_pending())))
    end

    it("tells the node whose set differs, at the record's index, and no other", function()
        cl.with_seed(cl.seed(1301), function(seed)
            local fsms, told = {}, {}
            local c = cluster(seed, fsms, told)
            -- a leader with the cluster's set: n3 must not lead (it would record its own)
            local leader = wait_leader(c)
            if leader == "n3" then
                c:partition({ "n3" }, { "n1", "n2" })
                leader = wait_leader(c, "n3")
                c:heal()
            end
            local index = assert(c:node(leader):propose(fsms[leader]:modules_pending()))
            assert(c:run_until(function()
                return told["n3"] ~= nil and fsms["n3"].applied >= index
            end, 5000), "n3 was not told")
            assert.are.equal(index, fsms["n3"].applied)
            assert.matches("loaded bank, extra, but the cluster's log records bank",
                           told["n3"], 1, true)
            assert(c:run_until(function()
                return fsms["n1"].applied >= index and fsms["n2"].applied >= index
            end, 5000))
            assert.is_nil(told["n1"])
            assert.is_nil(told["n2"])
            for _, id in ipairs(c:ids()) do
                assert.are.same({ "bank" }, (fsms[id]:modules_record()), id)
                assert.is_nil(fsms[id]:modules_pending(), id)
            end
            c:check()
        end)
    end)

    it("tells a node that catches up from a snapshot carrying the record", function()
        cl.with_seed(cl.seed(1302), function(seed)
            local fsms, told = {}, {}
            local c = cluster(seed, fsms, told, { snapshot_threshold = 3, trailing_logs = 0 })
            wait_leader(c)
            -- n3 is down while the record and more entries commit and compact
            c:crash("n3")
            local leader, index = propose_record(c, fsms)
            for i = 1, 12 do assert(c:apply(E.set("k" .. i, "v"))) end
            c:run_for(500)
            assert.is_nil(told["n1"])
            assert.is_nil(told["n2"])
            c:restart("n3")
            assert(c:run_until(function()
                return told["n3"] ~= nil and c:snapshot_stats().installed > 0
            end, 5000), "n3 was not told")
            assert.matches("loaded bank, extra", told["n3"], 1, true)
            -- from the snapshot (restore), not from applying the record's entry
            assert.is_true(told["n3:applied"] > index)
            assert.are.same({ "bank" }, (fsms["n3"]:modules_record()))
            assert.is_nil(told[leader])
            c:check()
        end)
    end)
end)
