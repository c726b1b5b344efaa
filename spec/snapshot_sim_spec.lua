-- snapshot_sim_spec.lua: snapshots, log compaction and InstallSnapshot in the simulator.
-- Every cluster runs a store FSM (spec/helpers/fsm.lua) whose snapshot() bytes are its whole
-- state, so "same state" is a comparison of strings; the simulator's checker also compares
-- the bytes of every snapshot of the same (index, term) across nodes.
--
--   HELIOS_SEED=7 busted --lua=luajit spec/snapshot_sim_spec.lua   -- replay one seed

local cl = require("spec.helpers.cluster")
local fsm = require("spec.helpers.fsm")
local prng = require("spec.helpers.prng")
local schedule = require("spec.helpers.schedule")
local node_mod = require("helios.node")
local sim = require("helios.sim")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local format = string.format

-- Snapshots every 20 applied entries, 5 kept for followers a little behind.
local SNAP = { snapshot_threshold = 20, trailing_logs = 5, snapshot_interval_ms = 50 }

local function merge(a, b)
    local t = {}
    for k, v in each(a or {}) do t[k] = v end
    for k, v in each(b or {}) do t[k] = v end
    return t
end

local function new(opts)
    opts = opts or {}
    return cl.new{
        n = opts.n or 3, seed = opts.seed, config = merge(SNAP, opts.config),
        make = function(id) return fsm.store(id) end, network = opts.network,
        snapshot_latency_ms = opts.snapshot_latency_ms,
        snapshot_chunk_bytes = opts.snapshot_chunk_bytes,
    }
end

local function status(c, id)
    return c:node(id):status()
end

-- Commit `count` set commands with values of `width` bytes; returns the last index.
local function load(c, from, count, width)
    local index
    for i = from, from + count - 1 do
        index = cl.commit(c, format("set k%d %s", i % 40, string.rep(string.char(97 + i % 26),
                                                                    width or 8)))
    end
    return index
end

local function other(c, id)
    for _, x in ipairs(c:ids()) do
        if x ~= id then return x end
    end
end

describe("snapshots in the simulator", function()
    for _, n in ipairs({ 3, 5 }) do
        it(("keep every invariant while compacting under load and faults (%d nodes)"):format(n),
           function()
            cl.with_seed(cl.seed(100 + n), function(seed)
                local c, reg = new{ n = n, seed = seed, snapshot_chunk_bytes = 64 }
                cl.wait_leader(c)
                load(c, 1, 30)
                schedule.random(c, prng.new(seed), { duration_ms = 3000 })
                local final = cl.settle(c, "final", 20000)
                local last = load(c, 100, 25)
                assert.is_true(cl.wait_applied(c, last, 5000), cl.dump(c))
                c:check()
                local st = c:snapshot_stats()
                assert.is_true(st.taken >= n, format("only %d snapshots taken", st.taken))
                local compacted = 0
                for _, id in ipairs(c:ids()) do
                    local s = status(c, id)
                    assert.is_true(s.applied_index > final)
                    if s.first_index > 1 then compacted = compacted + 1 end
                    if s.snapshot_index > 0 then
                        assert.is_true(s.snapshot_size > 0)
                        assert.is_true(s.first_index <= s.snapshot_index + 1)
                    end
                end
                assert.is_true(compacted >= 1, "no node compacted its log\n  " .. cl.dump(c))
                cl.same_state(c, reg)
            end)
        end)
    end

    it("bounds the log: compaction drops entries before the trailing ones", function()
        cl.with_seed(cl.seed(11), function(seed)
            local c = new{ seed = seed }
            cl.wait_leader(c)
            local last = load(c, 1, 120)
            assert.is_true(cl.wait_applied(c, last, 5000))
            c:run_for(300) -- a few threshold checks and snapshot writes
            for _, id in ipairs(c:ids()) do
                local s = status(c, id)
                assert.is_true(s.snapshot_index >= last - SNAP.snapshot_threshold,
                               cl.dump(c))
                -- The core keeps trailing_logs entries before its snapshot.
                assert.are.equal(s.snapshot_index + 1 - SNAP.trailing_logs, s.first_index)
            end
            c:check()
        end)
    end)

    local function catch_up(seed, faults, config)
        local c, reg = new{ seed = seed, snapshot_chunk_bytes = 256, config = config }
        local leader = cl.wait_leader(c)
        local f = other(c, leader)
        local installed = {}
        c:node(f):on("snapshot", function(index, term)
            installed[#installed + 1] = { index, term }
        end)
        c:disconnect(f)
        local behind = status(c, f).last_index
        local last = load(c, 1, 150, 40)
        assert.is_true(cl.wait_applied(c, last, 5000, { leader }))
        -- The leader compacts past everything the follower holds.
        assert.is_true(c:run_until(function()
            local s = status(c, leader)
            return s.first_index > behind + 1 and s.snapshot_index > 0
        end, 5000), cl.dump(c))
        local before = c:snapshot_stats()
        if faults then c:set_network(faults) end
        c:connect(f)
        local ok = c:run_until(function()
            return status(c, f).applied_index >= last
        end, 30000)
        assert.is_true(ok, "follower did not catch up\n  " .. cl.dump(c))
        c:set_network(cl.reliable)
        local after = c:snapshot_stats()
        assert.is_true(after.delivered > before.delivered, "no snapshot was handed over")
        assert.is_true(after.chunks > before.chunks, "no InstallSnapshot chunk was sent")
        -- The snapshot event fires once the installed snapshot is durable.
        assert.is_true(c:run_until(function() return #installed > 0 end, 2000))
        local fs = status(c, f)
        assert.is_true(fs.snapshot_index > behind, cl.dump(c))
        assert.is_true(c:stats(f).snapshots_installed >= 1)
        -- The follower's FSM was restored from the leader's snapshot, then applied the rest.
        local restored = reg.current[f].restored
        assert.is_true(type(restored) == "number" and restored > behind)
        assert.are.equal(reg.current[leader]:snapshot(), reg.current[f]:snapshot())
        for _, e in ipairs(c:applied(f)) do
            assert.is_true(e[1] > restored)
        end
        c:check()
        return c, after.chunks - before.chunks, fs.snapshot_size
    end

    it("lets a follower cut off during compaction catch up through InstallSnapshot", function()
        cl.with_seed(cl.seed(21), function(seed)
            local _, chunks, size = catch_up(seed)
            assert.is_true(size > 256, "the snapshot fits one chunk: make it bigger")
            assert.is_true(chunks >= math.ceil(size / 256))
        end)
    end)

    -- Counts that never trigger (nor compact) within the run: only the byte limits act.
    local BYTES = { snapshot_threshold = 1000000, snapshot_interval_ms = 1000000,
                    trailing_logs = 10240, snapshot_threshold_bytes = 1000,
                    trailing_logs_bytes = 200 }

    it("snapshots by bytes on apply and keeps a byte-capped tail", function()
        cl.with_seed(cl.seed(41), function(seed)
            local c = new{ seed = seed, config = BYTES }
            cl.wait_leader(c)
            -- 60 entries of about 48 bytes: about 3 snapshot_threshold_bytes.
            local last = load(c, 1, 60, 40)
            assert.is_true(cl.wait_applied(c, last, 5000))
            c:run_for(100) -- the snapshot writes (5 to 20 ms), not a threshold check (1000 s)
            local entry = #format("set k%d %s", 10, string.rep("a", 40))
            for _, id in ipairs(c:ids()) do
                local s = status(c, id)
                assert.is_true(s.snapshot_index >= last - math.ceil(1000 / entry) - 1,
                               cl.dump(c))
                -- trailing_logs (10240) would keep every entry: 200 bytes keep 4.
                local held = s.snapshot_index + 1 - s.first_index
                assert.is_true(s.first_index > 1 and held <= math.floor(200 / entry),
                               format("%s kept %d entries before %d", id, held,
                                      s.snapshot_index))
                assert.is_true(s.log_bytes > 0 and s.log_bytes <= entry * (s.last_index
                               - s.first_index + 1), tostring(s.log_bytes))
            end
            -- A restart reads the log from the snapshot back to trailing_logs (10240)
            -- entries, and keeps of those up to its index no more than 200 bytes either,
            -- as a networked node's recovery does.
            for _, id in ipairs(c:ids()) do
                c:crash(id)
                c:restart(id)
                local s = status(c, id)
                local held = s.snapshot_index + 1 - s.first_index
                assert.is_true(s.snapshot_index > 0 and held <= math.floor(200 / entry),
                               format("%s kept %d entries before %d after a restart", id, held,
                                      s.snapshot_index))
            end
            cl.wait_leader(c)
            c:check()
        end)
    end)

    it("staggers the byte threshold over the initial voters, as networked nodes do",
       function()
        cl.with_seed(cl.seed(43), function(seed)
            -- 1200 bytes, waited for 0, 1/12 and 2/12 of it longer by n1, n2 and n3.
            local config = {}
            for k, v in each(BYTES) do config[k] = v end
            config.snapshot_threshold_bytes, config.trailing_logs_bytes = 1200, 100000
            local c = new{ seed = seed, config = config }
            local first = {}
            for _, id in ipairs(c:ids()) do
                c:node(id):on("snapshot", function(index)
                    first[id] = first[id] or index
                end)
            end
            cl.wait_leader(c)
            local last = load(c, 1, 40, 40)
            assert.is_true(cl.wait_applied(c, last, 5000))
            c:run_for(100)
            assert.is_number(first.n1, cl.dump(c))
            assert.is_true(first.n1 < first.n2 and first.n2 < first.n3,
                           format("first snapshots at %s, %s, %s", tostring(first.n1),
                                  tostring(first.n2), tostring(first.n3)))
            c:check()
        end)
    end)

    it("catches a follower far behind a byte-capped log up through InstallSnapshot", function()
        cl.with_seed(cl.seed(42), function(seed)
            catch_up(seed, nil, BYTES)
        end)
    end)

    it("catches up through InstallSnapshot with lost, duplicated and reordered chunks",
       function()
        for _, seed in ipairs({ cl.seed(31), cl.seed(32), cl.seed(33) }) do
            cl.with_seed(seed, function()
                local _, chunks, size = catch_up(seed, {
                    drop = 0.3, duplicate = 0.3, delay_ms = { 1, 20 }, reorder = true })
                -- Losses were made up for: more chunks went out than the snapshot has.
                assert.is_true(chunks > math.ceil(size / 256),
                               format("%d chunks for %d bytes", chunks, size))
            end)
        end
    end)

    it("keeps the previous snapshot when a crash interrupts a snapshot write", function()
        cl.with_seed(cl.seed(41), function(seed)
            -- No threshold: only the snapshots this spec asks for, each taking 300 ms.
            local c, reg = cl.new{ seed = seed, config = { trailing_logs = 2 },
                                   make = function(id) return fsm.store(id) end,
                                   snapshot_latency_ms = { 300, 300 } }
            local leader = cl.wait_leader(c)
            local x = other(c, leader)
            local events = {}
            c:node(x):on("snapshot", function(index) events[#events + 1] = index end)
            local a = load(c, 1, 10)
            assert.is_true(cl.wait_applied(c, a, 5000))
            local first = c:node(x):snapshot()
            assert.is_true(c:run_until(function() return c:snapshot_info(x) == first end, 1000))
            local b = load(c, 11, 10)
            assert.is_true(cl.wait_applied(c, b, 5000))
            local second = c:node(x):snapshot()
            assert.is_true(second > first)
            local again, code = c:node(x):snapshot()
            assert.are.same({ nil, "busy" }, { again, code })
            c:run_for(100) -- the write takes 300 ms
            c:crash(x)
            assert.are.equal(first, (c:snapshot_info(x)))
            assert.are.same({ first }, events)
            assert.is_true(c:restart(x))
            local last = load(c, 21, 5)
            assert.is_true(cl.wait_applied(c, last, 5000))
            -- Restored from the previous snapshot, then the log after it.
            assert.are.equal(first, reg.current[x].restored)
            assert.are.equal(reg.current[leader]:snapshot(), reg.current[x]:snapshot())
            c:check()
        end)
    end)

    it("restarts from snapshot plus log tail with the same FSM state", function()
        cl.with_seed(cl.seed(51), function(seed)
            local c, reg = new{ seed = seed }
            local leader = cl.wait_leader(c)
            local x = other(c, leader)
            local last = load(c, 1, 47)
            assert.is_true(cl.wait_applied(c, last, 5000))
            assert.is_true(c:run_until(function()
                local index = c:snapshot_info(x)
                return index ~= nil and index >= 20 and index < last
            end, 2000), cl.dump(c))
            c:run_for(200)
            local snap = c:snapshot_info(x)
            assert.is_true(snap < last, "no log tail after the snapshot")
            local before = reg.current[x]:snapshot()
            c:crash(x)
            assert.is_true(c:restart(x))
            assert.is_true(cl.wait_applied(c, last, 5000, { x }))
            local fresh = reg.current[x]
            assert.are.equal(snap, fresh.restored)
            assert.are.equal(before, fresh:snapshot())
            -- c:applied lists what this incarnation applied after its snapshot.
            for _, e in ipairs(c:applied(x)) do
                assert.is_true(e[1] > snap)
            end
            -- The whole cluster down and up again: every node from its own snapshot.
            for _, id in ipairs(c:ids()) do c:crash(id) end
            for _, id in ipairs(c:ids()) do assert.is_true(c:restart(id)) end
            local final = cl.settle(c, "final", 10000)
            assert.is_true(final > last)
            for _, id in ipairs(c:ids()) do
                assert.is_truthy(reg.current[id].restored, id .. " was not restored")
            end
            cl.same_state(c, reg)
            c:check()
        end)
    end)

    it("takes snapshots on demand and reports them in status and events", function()
        cl.with_seed(cl.seed(61), function(seed)
            local c = cl.new{ seed = seed, make = function(id) return fsm.store(id) end }
            local leader = cl.wait_leader(c)
            local node = c:node(leader)
            local seen = {}
            node:on("snapshot", function(index, term) seen[#seen + 1] = { index, term } end)
            local last = load(c, 1, 12)
            local index = node:snapshot()
            assert.are.equal(last, index)
            local again, code = node:snapshot()
            assert.are.same({ nil, "busy" }, { again, code })
            assert.is_true(c:run_until(function() return #seen > 0 end, 1000))
            local s = node:status()
            assert.are.equal(index, seen[1][1])
            assert.are.equal(s.term, seen[1][2])
            assert.are.equal(index, s.snapshot_index)
            assert.is_true(s.snapshot_size > 0)
            -- Nothing new applied: the same snapshot's index, nothing written.
            assert.are.equal(index, node:snapshot())
            c:run_for(100)
            assert.are.equal(1, #seen)
            -- Without a threshold nothing is compacted automatically on the others.
            for _, id in ipairs(c:ids()) do
                if id ~= leader then assert.are.equal(0, status(c, id).snapshot_index) end
            end
            c:crash(leader)
            local none, why = node:snapshot()
            assert.are.same({ nil, "shutdown" }, { none, why })
            c:check()
        end)
    end)

    it("raises a usage error for node:snapshot() on a backend without snapshots", function()
        local node = node_mod.wrap({}, "x")
        assert.has_error(function() node:snapshot() end)
        local ok, err = pcall(node.snapshot, node)
        assert.is_false(ok)
        assert.matches("Usage: node:snapshot%(%)", err)
    end)

    it("accepts the snapshot options in config and checks them", function()
        assert.has_error(function()
            sim.cluster{ n = 3, config = { snapshot_threshold = 0 } }
        end)
        assert.has_error(function()
            sim.cluster{ n = 3, config = { trailing_logs = -1 } }
        end)
        assert.has_error(function()
            sim.cluster{ n = 3, config = { snapshot_threshold_bytes = 0 } }
        end, "config: snapshot_threshold_bytes must be a positive integer (got 0)")
        assert.has_error(function()
            sim.cluster{ n = 3, config = { trailing_logs_bytes = 1.5 } }
        end, "config: trailing_logs_bytes must be a positive integer (got 1.5)")
        assert.has_error(function()
            sim.cluster{ n = 3, snapshot_chunk_bytes = 0 }
        end)
        assert.has_error(function()
            sim.cluster{ n = 3, config = { snapshot_chunk_bytes = 0 } }
        end)
        -- One options table serves raft.new and sim.cluster.
        sim.cluster{ n = 3, config = { snapshot_chunk_bytes = 100, snapshot_threshold = 10,
                                       snapshot_interval_ms = 1000, trailing_logs = 0,
                                       snapshot_threshold_bytes = 1048576,
                                       trailing_logs_bytes = 65536 } }:close()
        local c = sim.cluster{ n = 1, config = { snapshot_threshold = 5, trailing_logs = 0,
                                                 snapshot_interval_ms = 10 } }
        assert.is_true(c:run_until(function() return c:leader() end, 2000))
        for i = 1, 12 do assert(c:apply("x" .. i, 1000)) end
        c:run_for(100)
        local s = c:node("n1"):status()
        assert.is_true(s.snapshot_index >= 10, tostring(s.snapshot_index))
        assert.are.equal(s.snapshot_index + 1, s.first_index)
        c:check()
    end)

    describe("the invariant checker", function()
        -- Every live node snapshots at the same applied index (no threshold: on demand).
        local function snapshot_all(c)
            for _, id in ipairs(c:ids()) do
                if c:alive(id) then c:node(id):snapshot() end
            end
        end

        it("catches snapshots whose bytes differ for the same (index, term)", function()
            cl.with_seed(cl.seed(71), function(seed)
                local c = cl.new{ seed = seed, make = function(id)
                    local s = fsm.store(id)
                    -- Not deterministic: the node's id leaks into the state.
                    function s:snapshot() return id .. fsm.store(id).snapshot(self) end
                    return s
                end }
                cl.wait_leader(c)
                local last = load(c, 1, 10)
                assert.is_true(cl.wait_applied(c, last, 5000))
                local ok, err = pcall(snapshot_all, c)
                assert.is_false(ok, "the checker missed it")
                assert.matches("snapshot: node %d+ took a snapshot through %(index %d+, term %d+%) "
                               .. "of %d+ bytes that differ", tostring(err))
                assert.matches("replay: HELIOS_SEED=", tostring(err))
            end)
        end)

        it("catches a restore that loses state", function()
            cl.with_seed(cl.seed(81), function(seed)
                local c = cl.new{ seed = seed, config = { trailing_logs = 5 }, make = function(id)
                    local s = fsm.store(id)
                    function s:restore() self.restored = true end -- ignores the bytes
                    return s
                end }
                local leader = cl.wait_leader(c)
                local f = other(c, leader)
                c:disconnect(f)
                local last = load(c, 1, 30)
                assert.is_true(cl.wait_applied(c, last, 5000, { leader }))
                c:node(leader):snapshot()
                c:run_for(100)
                c:connect(f)
                assert.is_true(cl.wait_applied(c, last, 5000))
                assert.is_true(c:stats(f).snapshots_installed >= 1)
                last = load(c, 100, 5)
                assert.is_true(cl.wait_applied(c, last, 5000))
                local ok, err = pcall(snapshot_all, c)
                assert.is_false(ok, "the broken restore went unnoticed")
                assert.matches("snapshot: node %d+ took a snapshot .* that differ", tostring(err))
            end)
        end)
    end)
end)
