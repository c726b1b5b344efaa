-- replication_spec.lua: log replication on helios.sim (agreement, minority failures,
-- concurrent clients, discarding a stale leader's entries, fast repair, RPC efficiency).

local cl = require("spec.helpers.cluster")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local function other_than(c, ...)
    local skip = {}
    for _, id in ipairs({ ... }) do skip[id] = true end
    local out = {}
    for _, id in ipairs(c:ids()) do if not skip[id] then out[#out + 1] = id end end
    return out
end

-- Every listed node applied exactly `expected` (a list of { index =, command = }).
local function assert_applied(c, ids, expected)
    for _, id in ipairs(ids) do
        local got = {}
        for i, e in ipairs(c:applied(id)) do
            got[i] = { index = e.index or e[1], command = e.command or e[2] }
        end
        assert.are.same(expected, got, id .. "\n  " .. cl.dump(c))
    end
end

-- A fixed, quick network, so that counted messages depend on the protocol, not on luck.
local QUIET = { network = { drop = 0, duplicate = 0, delay_ms = { 2, 4 }, reorder = false },
                disk_latency_ms = { 1, 2 } }

describe("replication", function()
    it("applies the same commands in the same order on every node", function()
        cl.with_seed(cl.seed(201), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            cl.wait_leader(c)
            local expected = {}
            for i = 1, 10 do
                local cmd = "cmd" .. i
                local index, term, result = c:apply(cmd, 2000)
                assert.is_number(index, "apply " .. cmd .. ": " .. tostring(term))
                assert.is_number(term)
                assert.are.equal("ok:" .. cmd, result)
                if i == 1 then
                    assert.are.equal(2, index) -- index 1 is the new leader's no-op
                else
                    assert.is_true(index > expected[#expected].index)
                end
                expected[#expected + 1] = { index = index, command = cmd }
            end
            assert.is_true(cl.wait_applied(c, expected[#expected].index, 2000), cl.dump(c))
            assert_applied(c, c:ids(), expected)
        end)
    end)

    it("commits with a follower disconnected, and the follower catches up", function()
        cl.with_seed(cl.seed(202), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local leader = cl.wait_leader(c)
            local follower = other_than(c, leader)[1]
            c:disconnect(follower)

            local expected = {}
            for i = 1, 5 do
                local index = c:apply("cmd" .. i, 2000)
                assert.is_number(index, cl.dump(c))
                expected[i] = { index = index, command = "cmd" .. i }
            end
            assert.are.same({}, c:applied(follower))

            c:connect(follower)
            assert.is_true(cl.wait_applied(c, expected[5].index, 3000), cl.dump(c))
            assert_applied(c, c:ids(), expected)
        end)
    end)

    it("commits nothing without a majority, and commits again when it returns", function()
        cl.with_seed(cl.seed(203), function(seed)
            local c = cl.new{ n = 5, seed = seed }
            local leader = cl.wait_leader(c)
            local first, before = cl.commit(c, "before")
            assert.is_true(cl.wait_applied(c, first, 2000))
            local cut = other_than(c, leader)
            for i = 1, 3 do c:disconnect(cut[i]) end

            local index = c:node(leader):propose("orphan")
            assert.is_number(index)
            c:run_for(2000)
            for _, id in ipairs(c:ids()) do
                local s = c:node(id):status()
                assert.is_true(s.commit_index < index, id .. " committed without a majority\n  "
                               .. cl.dump(c))
                assert.are.same({ before }, cl.commands(c, id))
            end

            for i = 1, 3 do c:connect(cut[i]) end
            local after, after_cmd = cl.commit(c, "after", 5000)
            assert.is_true(cl.wait_applied(c, after, 3000), cl.dump(c))
            local reference = c:applied(c:ids()[1])
            for _, id in ipairs(c:ids()) do
                assert.are.same(reference, c:applied(id))
                local cmds = cl.commands(c, id)
                assert.are.equal(before, cmds[1])
                assert.are.equal(after_cmd, cmds[#cmds])
            end
        end)
    end)

    it("commits concurrent proposals from several clients, each exactly once", function()
        cl.with_seed(cl.seed(204), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local leader = cl.wait_leader(c)
            c:run_for(200)
            local node = c:node(leader)

            -- Five clients, each a coroutine sending four commands one after the other
            -- through node:apply's callback form, all in flight together.
            local results, done = {}, 0
            local function call(cmd)
                local co = coroutine.running()
                local sync, values = true, nil
                node:apply(cmd, 3000, function(...)
                    values = { ... }
                    if not sync then coroutine.resume(co) end
                end)
                sync = false
                if not values then coroutine.yield() end
                return values
            end
            for client = 1, 5 do
                local co = coroutine.create(function()
                    for k = 1, 4 do
                        local cmd = ("c%d-%d"):format(client, k)
                        results[cmd] = call(cmd)
                    end
                    done = done + 1
                end)
                assert(coroutine.resume(co))
            end
            assert.is_true(c:run_until(function() return done == 5 end, 5000), cl.dump(c))

            local by_index = {}
            for cmd, r in each(results) do
                local index, term, result = r[1], r[2], r[3]
                assert.is_number(index, cmd .. ": " .. tostring(term))
                assert.are.equal("ok:" .. cmd, result)
                assert.is_nil(by_index[index], "two commands at index " .. tostring(index))
                by_index[index] = cmd
            end
            local last = 0
            for index in each(by_index) do if index > last then last = index end end
            assert.is_true(cl.wait_applied(c, last, 2000))
            for _, id in ipairs(c:ids()) do
                local seen = {}
                for _, e in ipairs(c:applied(id)) do
                    local index, cmd = e.index or e[1], e.command or e[2]
                    assert.is_nil(seen[cmd], id .. " applied " .. cmd .. " twice")
                    seen[cmd] = true
                    assert.are.equal(by_index[index], cmd)
                end
                for cmd in each(results) do assert.is_true(seen[cmd], id .. " lacks " .. cmd) end
            end
        end)
    end)

    it("takes a table with __call as node:apply's callback, and refuses a plain table",
       function()
        cl.with_seed(cl.seed(205), function(seed)
            local c = cl.new{ n = 3, seed = seed }
            local node = c:node(cl.wait_leader(c))
            local request = setmetatable({ cmd = "callable" }, { __call = function(self, ...)
                self.values = { ... }
            end })
            node:apply(request.cmd, 3000, request)
            assert.is_true(c:run_until(function() return request.values ~= nil end, 5000),
                           cl.dump(c))
            assert.is_number(request.values[1])
            assert.are.equal("ok:callable", request.values[3])
            assert.has_error(function() node:apply("x", 3000, {}) end)
        end)
    end)

    it("discards a partitioned old leader's uncommitted entries when it rejoins", function()
        cl.with_seed(cl.seed(205), function(seed)
            local c = cl.new{ n = 5, seed = seed }
            cl.wait_leader(c)
            local a, a_cmd = cl.commit(c, "a")
            assert.is_true(cl.wait_applied(c, a, 2000))

            local old = cl.wait_leader(c)
            c:disconnect(old)
            for i = 1, 3 do
                assert.is_number(c:node(old):propose("lost" .. i))
            end
            local new = cl.wait_leader(c, 3000, cl.up(c))
            local b, b_cmd = cl.commit(c, "b")
            local d, d_cmd = cl.commit(c, "c")
            assert.are.equal(new, c:leader())

            c:connect(old)
            assert.is_true(cl.wait_applied(c, d, 3000), cl.dump(c))
            c:run_for(200)
            assert.are.equal("follower", c:node(old):status().role)
            local reference = c:applied(new)
            assert.are.same({ a_cmd, b_cmd, d_cmd }, cl.commands(c, new))
            for _, id in ipairs(c:ids()) do
                assert.are.same(reference, c:applied(id), id)
            end
            assert.are.equal(c:node(new):status().last_index, c:node(old):status().last_index)
            assert.is_true(b < d)
        end)
    end)

    it("repairs a follower with 60 conflicting entries in a few round trips", function()
        cl.with_seed(cl.seed(206), function(seed)
            local c = cl.new{ n = 3, seed = seed, network = QUIET.network,
                              disk_latency_ms = QUIET.disk_latency_ms }
            cl.wait_leader(c)
            local base = cl.commit(c, "base")
            assert.is_true(cl.wait_applied(c, base, 2000))

            local stale = cl.wait_leader(c)
            -- The cut-off leader still accepts 60 proposals (none can commit) ...
            c:disconnect(stale)
            local k0 = c:node(stale):status().last_index
            for i = 1, 60 do
                assert.is_number(c:node(stale):propose("stale" .. i))
            end
            -- ... while the others elect a leader and commit 60 different commands.
            local leader = cl.wait_leader(c, 3000, cl.up(c))
            local last
            for i = 1, 60 do last = cl.commit(c, "fresh" .. i) end
            assert.is_true(cl.wait_applied(c, last, 2000, cl.up(c)))
            local s = c:node(stale):status()
            assert.are.equal(k0 + 60, s.last_index, cl.dump(c))
            assert.is_true(s.commit_index <= k0)
            c:run_for(100)

            local rpc0, t0 = c:rpc_count(), c:now()
            c:connect(stale)
            assert.is_true(c:run_until(function()
                return c:node(stale):status().commit_index >= last
            end, 3000), cl.dump(c))
            local requests, elapsed = c:rpc_count() - rpc0, c:now() - t0

            assert.are.same(cl.commands(c, leader), cl.commands(c, stale))
            -- Walking back one entry per round trip would take ~60 AppendEntries to the stale
            -- node alone. Allow a handful of repair round trips on top of the heartbeats the
            -- leader owes both followers over the window, and a PreVote or two.
            local heartbeats = 2 * (math.floor(elapsed / 50) + 2)
            local bound = heartbeats + 8
            assert.is_true(requests <= bound, ("%d requests in %d ms to repair (bound %d)")
                           :format(requests, elapsed, bound))
        end)
    end)

    it("sends one AppendEntries round for a burst of 20 proposals, not one per entry", function()
        cl.with_seed(cl.seed(207), function(seed)
            local c = cl.new{ n = 3, seed = seed, network = QUIET.network,
                              disk_latency_ms = QUIET.disk_latency_ms }
            local leader = cl.wait_leader(c)
            cl.commit(c, "warm-up")
            c:run_for(200)
            local node = c:node(leader)

            local rpc0, t0 = c:rpc_count(), c:now()
            local last
            for i = 1, 20 do last = node:propose("burst" .. i) end
            assert.is_number(last)
            assert.is_true(c:run_until(function()
                for _, id in ipairs(c:ids()) do
                    if c:node(id):status().commit_index < last then return false end
                end
                return true
            end, 2000), cl.dump(c))
            local requests, elapsed = c:rpc_count() - rpc0, c:now() - t0

            -- One round carrying the entries and one carrying the new commit index to each
            -- follower, plus the heartbeats due in the window; one AppendEntries per entry
            -- per follower would be 40.
            local bound = 2 * 2 + 2 * (math.floor(elapsed / 50) + 1)
            assert.is_true(requests <= bound, ("%d requests in %d ms for 20 entries (bound %d)")
                           :format(requests, elapsed, bound))
        end)
    end)
end)
