-- atlas_sim_spec.lua: ATLAS (helios.atlas) on a simulated cluster (helios.sim): the store
-- API with callbacks on virtual time, TTLs across a leader change (every replica's state
-- equal, a key expiring at the same log index on every replica), linearizable reads judged
-- at the leader's clock (a TTL that passed with no write since), a numbered write retried
-- across a leader crash applied exactly once, and snapshots taken in slices (as a
-- networked node takes them) under writes, crashes and lost messages, each equal to the
-- store at its index.
--
--   HELIOS_SEED=7 busted spec/atlas_sim_spec.lua   -- replay one seed

local sim = require("helios.sim")
local atlas = require("helios.atlas")
local cl = require("spec.helpers.cluster")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
local E = atlas.encode

local function cluster(seed, fsms, extra)
    local config = {}
    for k, v in each(cl.config) do config[k] = v end
    for k, v in each(extra or {}) do config[k] = v end
    return sim.cluster{ n = 3, seed = seed, config = config, fsm = function(id)
        local f = atlas.fsm({ session_timeout_ms = 60000 })
        fsms[id] = f
        return f
    end }
end

-- Start an operation with a callback; run virtual time until it answers; its values.
local function await(c, start, timeout_ms)
    local res
    start(function(...) res = { n = select("#", ...), ... } end)
    assert(c:run_until(function() return res ~= nil end, timeout_ms or 5000),
           "no answer in time")
    return unpack(res, 1, res.n)
end

local function wait_leader(c, not_id)
    local leader
    assert(c:run_until(function()
        leader = c:leader()
        return leader ~= nil and leader ~= not_id
    end, 5000), "no leader")
    return leader
end

-- Run until every replica applied what the leader did; then their snapshots are equal.
local function assert_converged(c, fsms)
    local leader = wait_leader(c)
    local index = assert(c:apply(E.incr("sync:counter")))
    assert(c:run_until(function()
        for _, id in ipairs(c:ids()) do
            if fsms[id].applied < index then return false end
        end
        return true
    end, 5000), "replicas did not catch up")
    local ref = fsms[leader]:snapshot()
    for _, id in ipairs(c:ids()) do
        assert.are.equal(ref, fsms[id]:snapshot(), id .. " differs from the leader")
    end
end

describe("atlas on helios.sim", function()
    it("serves the store API with callbacks", function()
        cl.with_seed(cl.seed(1201), function(seed)
            local fsms = {}
            local c = cluster(seed, fsms)
            local leader = wait_leader(c)
            local s = atlas.new(c:node(leader), { clock = function() return c:now() end })
            assert.is_true(await(c, function(cb) s:set("a", "1", cb) end))
            assert.is_false(await(c, function(cb) s:set("a", "2", nil, { nx = true }, cb) end))
            assert.is_true(await(c, function(cb) s:set("t", "x", 10000, cb) end))
            assert.are.equal("1", await(c, function(cb) s:get("a", cb) end))
            assert.are.equal("1", await(c, function(cb) s:get("a", { stale = true }, cb) end))
            assert.is_true(await(c, function(cb) s:exists("a", cb) end))
            local ttl = await(c, function(cb) s:ttl("t", cb) end)
            assert.is_true(ttl > 0 and ttl <= 10000, tostring(ttl))
            assert.are.equal(3, await(c, function(cb) s:incr("n", 3, cb) end))
            assert.is_true(await(c, function(cb) s:cas("a", "1", "one", cb) end))
            assert.is_true(await(c, function(cb) s:mset({ "k:1", "x", "k:2", "y" }, cb) end))
            assert.are.same({ "k:1", "k:2" }, await(c, function(cb) s:keys("k:", cb) end))
            assert.are.same({ n = 2, "one", "x" },
                            await(c, function(cb) s:mget({ "a", "k:1" }, cb) end))
            assert.is_true(await(c, function(cb) s:delete("k:1", cb) end))
            assert.is_false(await(c, function(cb) s:delete("k:1", cb) end))
            assert.is_true(await(c, function(cb) s:expire("a", 50, cb) end))
            assert.has_error(function() s:set(1, "x", function() end) end)
            assert.has_error(function() s:set("k", "x", -1, function() end) end)
            assert.has_error(function() s:get(nil, function() end) end)
            local v, code = await(c, function(cb) s:incr("k:2", cb) end)
            assert.is_nil(v)
            assert.are.equal("invalid", code)
            -- a follower's store refuses writes as its node does
            local follower = c:ids()[1] == leader and c:ids()[2] or c:ids()[1]
            local fs = atlas.new(c:node(follower))
            local ok, fcode = await(c, function(cb) fs:set("z", "1", cb) end)
            assert.is_nil(ok)
            assert.are.equal("not_leader", fcode)
            c:check()
        end)
    end)

    it("expires a key at the same index on every replica across a leader change", function()
        cl.with_seed(cl.seed(1202), function(seed)
            local fsms = {}
            local c = cluster(seed, fsms)
            local old = wait_leader(c)
            -- the first index at which each replica no longer sees "t"
            local gone = {}
            for _, id in ipairs(c:ids()) do
                c:node(id):on("apply", function(index)
                    if gone[id] == nil and fsms[id].applied >= 2 and not fsms[id]:exists("t")
                        and (fsms[id]:held("t_was_set")) then
                        gone[id] = index
                    end
                end)
            end
            local s = atlas.new(c:node(old), { clock = function() return c:now() end })
            assert.is_true(await(c, function(cb) s:set("t", "v", 300, cb) end))
            assert.is_true(await(c, function(cb) s:set("t_was_set", "1", cb) end))
            assert.is_true(await(c, function(cb) s:set("keep", "1", 60000, cb) end))
            -- depose the leader; the others elect one and write on
            local others = {}
            for _, id in ipairs(c:ids()) do if id ~= old then others[#others + 1] = id end end
            c:partition({ old }, others)
            local new = wait_leader(c, old)
            local s2 = atlas.new(c:node(new), { clock = function() return c:now() end })
            for i = 1, 5 do
                assert(await(c, function(cb) s2:incr("tick", cb) end))
                c:run_for(100)
            end
            -- the new leader purges what expired by its clock; the old leader cannot
            assert.are.equal(0, s:purge())
            assert.are.equal(1, s2:purge())
            assert.are.equal(0, s2:purge())                -- one purge in flight at a time
            c:run_for(200)
            assert.is_nil((fsms[new]:held("t")))  -- dropped, not only hidden
            assert.are.equal("1", (fsms[new]:held("keep")))
            c:heal()
            assert_converged(c, fsms)
            for _, id in ipairs(c:ids()) do
                assert.is_number(gone[id], id)
                assert.are.equal(gone[new], gone[id], id)
                assert.is_nil((fsms[id]:held("t")), id)
            end
            c:check()
        end)
    end)

    it("judges a linearizable read at the leader's clock, not the newest applied stamp",
       function()
        cl.with_seed(cl.seed(1204), function(seed)
            local fsms = {}
            local c = cluster(seed, fsms)
            local leader = wait_leader(c)
            local follower = c:ids()[1] == leader and c:ids()[2] or c:ids()[1]
            -- simulated nodes run no purge timer: nothing is written unless the spec writes
            local s, fs = atlas.new(c:node(leader)), atlas.new(c:node(follower))
            assert.is_true(await(c, function(cb) s:set("t", "v", 300, cb) end))
            assert.is_true(await(c, function(cb) s:set("keep", "k", cb) end))
            local expiry = select(2, fsms[leader]:held("t"))
            assert.are.equal("v", await(c, function(cb) fs:get("t", cb) end))
            assert.are.equal("v", await(c, function(cb) s:get("t", cb) end))
            -- the TTL passes with no write, no purge: every replica's newest stamp stays
            -- before the expiry, so the applied state alone still shows the key
            c:run_for(1000)
            local applied = fsms[leader].applied
            for _, id in ipairs(c:ids()) do
                assert.is_true(fsms[id].now < expiry, id)
                assert.are.equal("v", (fsms[id]:held("t")), id)
            end
            for _, st in ipairs({ s, fs }) do
                local where = st == s and "leader" or "follower"
                assert.is_nil(await(c, function(cb) st:get("t", cb) end), where)
                assert.is_false(await(c, function(cb) st:exists("t", cb) end), where)
                assert.are.equal(-2, await(c, function(cb) st:ttl("t", cb) end), where)
                assert.are.same({ "keep" }, await(c, function(cb) st:keys(cb) end), where)
                assert.are.same({ n = 2, nil, "k" },
                                await(c, function(cb) st:mget({ "t", "keep" }, cb) end), where)
                -- a stale read judges at the newest applied stamp: still there
                assert.are.equal("v", await(c, function(cb) st:get("t", { stale = true }, cb) end),
                                 where)
            end
            -- the reads wrote nothing
            assert.are.equal(applied, fsms[leader].applied)
            -- node:read hands fn the leader's clock at the read index; a stale read none
            local t0 = c:now()
            local ctx = await(c, function(cb)
                c:node(follower):read(function(_, x) return x end, 1000, cb)
            end)
            assert.is_number(ctx.time_ms)
            assert.is_true(ctx.time_ms >= t0 and ctx.time_ms <= c:now(), tostring(ctx.time_ms))
            assert.are.equal(0, select("#", c:node(leader):read_stale(function(_, ...)
                return ...
            end)))
            c:check()
        end)
    end)

    it("applies a numbered write retried across a leader crash exactly once", function()
        cl.with_seed(cl.seed(1203), function(seed)
            local fsms = {}
            -- snapshots often, keeping no log behind them: the restarted node catches up
            -- from the leader's snapshot (sessions included), which the simulator checks
            local c = cluster(seed, fsms, { snapshot_threshold = 3, trailing_logs = 0 })
            local leader = wait_leader(c)
            local _, _, session = c:apply(E.register())
            assert.is_number(session)
            local w = atlas.numbered(E.incr("counter", 7), session, 1)
            -- proposed on the leader, which crashes once a follower has applied it (the
            -- client never hears the answer)
            local index = assert(c:node(leader):propose(w))
            assert(c:run_until(function()
                for _, id in ipairs(c:ids()) do
                    if id ~= leader and fsms[id].applied >= index then return true end
                end
                return false
            end, 5000), "not committed")
            c:crash(leader)
            wait_leader(c, leader)
            -- the client retries the same (session, seq) on the new leader: the first result
            local i2, _, r2 = c:apply(w)
            assert.is_number(i2)
            assert.is_true(i2 > index)
            assert.are.equal(7, r2)
            local _, _, r3 = c:apply(w)
            assert.are.equal(7, r3)
            local _, _, r4 = c:apply(atlas.numbered(E.incr("counter", 1), session, 2))
            assert.are.equal(8, r4)
            for i = 1, 10 do assert(c:apply(E.incr("more:" .. i))) end
            c:run_for(500)
            c:restart(leader)
            assert_converged(c, fsms)
            for _, id in ipairs(c:ids()) do
                assert.are.equal("8", fsms[id]:get("counter"), id)
            end
            assert.is_true(c:snapshot_stats().installed > 0)
            -- a store restored from a snapshot answers a retry from the session's cache too
            local copy = atlas.fsm()
            copy:restore(fsms[leader]:snapshot())
            assert.are.equal(7, copy:apply(w, copy.applied + 1,
                                           { index = copy.applied + 1, term = 99, time_ms = 0 }))
            assert.are.equal("8", copy:get("counter"))
            c:check()
        end)
    end)

    it("retries a session's write on the new leader through the store API", function()
        cl.with_seed(cl.seed(1204), function(seed)
            local fsms = {}
            local c = cluster(seed, fsms)
            local leader = wait_leader(c)
            local s = atlas.new(c:node(leader))
            local sess = assert(await(c, function(cb) s:session(cb) end))
            assert.are.equal(1, await(c, function(cb) sess:incr("hits", cb) end))
            -- the next write commits, but the leader crashes before answering
            sess:incr("hits", 10, function() end)
            assert(c:run_until(function()
                for _, id in ipairs(c:ids()) do
                    if id ~= leader and fsms[id]:get("hits") == "11" then return true end
                end
                return false
            end, 5000), "not committed")
            c:crash(leader)
            local new = wait_leader(c, leader)
            local s2 = atlas.new(c:node(new))
            assert.are.equal(11, await(c, function(cb) sess:retry(s2, cb) end))
            assert.are.equal(11, await(c, function(cb) sess:retry(cb) end))
            assert.are.equal(12, await(c, function(cb) sess:incr("hits", cb) end))
            assert.are.equal("12", await(c, function(cb) sess:get("hits", cb) end))
            c:restart(leader)
            assert_converged(c, fsms)
            for _, id in ipairs(c:ids()) do
                assert.are.equal("12", fsms[id]:get("hits"), id)
            end
            c:check()
        end)
    end)

    -- The simulator runs an FSM with snapshot_slices = true as a node runs it: in slices,
    -- entries applied in between. Each sliced snapshot is compared with the bytes the
    -- store gave all at once as it began (what it must equal), and the nodes restore from
    -- them after crashes and from the leader's when they fall behind.
    it("takes snapshots in slices under writes, crashes and lost messages", function()
        for seed = cl.seed(1301), cl.seed(1301) + (os.getenv("HELIOS_SEED") and 0 or 5) do
            cl.with_seed(seed, function()
                local fsms = {}
                local st = { sliced = 0, slices = 0, wrong = 0, restored = 0 }
                local c = sim.cluster{ n = 3, seed = seed,
                    config = { election_timeout_ms = 150, heartbeat_timeout_ms = 50,
                               snapshot_threshold = 40, trailing_logs = 20 },
                    network = { drop = 0.02 },
                    fsm = function(id)
                        local f = atlas.fsm()
                        local snapshot, restore = f.snapshot, f.restore
                        function f:snapshot(w, yield)
                            if not yield then return snapshot(self, w) end
                            local want, got = snapshot(self), {}
                            local tee = { write = function(_, a, b)
                                got[#got + 1] = a
                                got[#got + 1] = b
                                w:write(a, b)
                            end }
                            snapshot(self, tee, function()
                                st.slices = st.slices + 1
                                return yield()
                            end)
                            st.sliced = st.sliced + 1
                            if table.concat(got) ~= want then st.wrong = st.wrong + 1 end
                        end
                        function f:restore(bytes, ...)
                            st.restored = st.restored + 1
                            return restore(self, bytes, ...)
                        end
                        fsms[id] = f
                        return f
                    end }
                local rnd = math.random
                math.randomseed(seed)
                local function key() return "k" .. rnd(1, 60) end
                local down
                for step = 1, 1500 do
                    local leader = c:leader()
                    if leader then
                        local r, cmd = rnd(), nil
                        if r < 0.45 then cmd = E.set(key(), tostring(rnd(1e6)))
                        elseif r < 0.6 then cmd = E.set(key(), "t", rnd(20, 400))
                        elseif r < 0.72 then cmd = E.del(key(), key())
                        elseif r < 0.82 then cmd = E.incr("n" .. rnd(1, 5), rnd(1, 9))
                        elseif r < 0.9 then cmd = E.expire(key(), rnd(20, 400))
                        else cmd = E.mset({ key(), "m", key(), "m" }) end
                        c:node(leader):apply(cmd, 1000, function() end)
                    end
                    if step % 200 == 0 then
                        if down then
                            c:restart(down)
                            down = nil
                        else
                            down = c:ids()[rnd(1, 3)]
                            c:crash(down)
                        end
                    end
                    c:run_for(rnd(1, 4))
                end
                if down then c:restart(down) end
                c:set_network({ drop = 0 })
                assert_converged(c, fsms)
                c:check()
                assert.are.equal(0, st.wrong, "sliced snapshots unequal to their store")
                assert.is_true(st.sliced >= 10, "sliced snapshots: " .. st.sliced)
                assert.is_true(st.slices > 20 * st.sliced, "slices: " .. st.slices)
                assert.is_true(st.restored >= 1, "restores: " .. st.restored)
                c:close()
            end)
        end
    end)
end)
