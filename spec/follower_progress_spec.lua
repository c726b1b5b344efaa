-- follower_progress_spec.lua: a leader's record of each follower's progress (match, next,
-- probe / replicate / snapshot state: hr_progress_info) stays right through the corner
-- cases of log compaction and of a network that duplicates and delays messages.

local cl = require("spec.helpers.cluster")

local function progress_of(c, leader, id)
    return c:node(leader):status().peers[id]
end

describe("a leader's progress record of a follower", function()
    it("clears a replicating follower's snapshot state once it holds the snapshot", function()
        cl.with_seed(cl.seed(7001), function(seed)
            local c = cl.new{ n = 3, seed = seed,
                              network = { drop = 0, duplicate = 0, delay_ms = { 8, 10 },
                                          reorder = false },
                              config = { max_inflight = 1, max_entries_per_append = 1,
                                         snapshot_threshold = 1000000, trailing_logs = 2 } }
            local leader = cl.wait_leader(c)
            local lagging = leader == "n1" and "n2" or "n1"
            c:disconnect(lagging)
            for k = 1, 40 do cl.commit(c, "cmd" .. k) end
            c:connect(lagging)
            -- The follower is fed one entry per round trip: it is replicating, far behind.
            assert.is_true(c:run_until(function()
                local p = progress_of(c, leader, lagging)
                return p.replicating and p.match > 0
            end, 2000), cl.dump(c))
            local snap = assert(c:node(leader):snapshot())
            c:run_for(50)
            assert.is_true(c:run_until(function()
                return progress_of(c, leader, lagging).match >= snap
            end, 5000), "the follower never got the snapshot\n  " .. cl.dump(c))
            c:run_for(100)
            local p = progress_of(c, leader, lagging)
            assert.is_falsy(p.snapshotting, ("match %d, next %d: still waiting for a snapshot it holds")
                            :format(p.match, p.next))
            c:check()
        end)
    end)

    -- A new leader's first probe (at its last entry before its no-op) finds a follower
    -- whose log is short and is rejected; the follower then catches up one entry per round
    -- trip. When its match reaches the index that probe asked about, a late duplicate of
    -- the old rejection reads exactly like "the follower lost an entry it acknowledged"
    -- (same index, a shorter last index): it must not send the match back, nor the
    -- follower back to probing, nor (the entries being compacted meanwhile) to a snapshot.
    it("ignores a late duplicate of a rejection older than the success that set the match",
       function()
        cl.with_seed(cl.seed(7002), function(seed)
            local c = cl.new{ n = 3, seed = seed,
                              network = { drop = 0, duplicate = 0, delay_ms = { 2, 4 },
                                          reorder = false },
                              disk_latency_ms = { 1, 2 }, snapshot_latency_ms = { 1, 2 },
                              config = { max_inflight = 1, max_entries_per_append = 1,
                                         trailing_logs = 0 } }
            local a = cl.wait_leader(c)
            local rest = {}
            for _, id in ipairs(c:ids()) do if id ~= a then rest[#rest + 1] = id end end
            local b, f = rest[1], rest[2]
            c:disconnect(f)
            local last
            for k = 1, 6 do last = cl.commit(c, "cmd" .. k) end
            assert.is_true(cl.wait_applied(c, last, 2000, { a, b }), cl.dump(c))

            -- f comes back short; b, the more up to date of the two, takes over.
            c:capture(f, b, "append_resp", true)
            c:connect(f)
            c:partition({ a }, { b, f })
            assert.are.equal(b, cl.wait_leader(c, 5000, { b, f }))
            assert.is_true(c:run_until(function() return c:captured() ~= nil end, 1000),
                           "f never rejected b's probe\n  " .. cl.dump(c))
            local stale = c:captured()
            assert.is_true(stale.last_index < stale.index,
                           ("rejection at %d with last index %d: f was not short")
                           :format(stale.index, stale.last_index))
            assert.is_true(c:run_until(function()
                return progress_of(c, b, f).match == stale.index
            end, 2000), cl.dump(c))
            local p = progress_of(c, b, f)
            assert.is_true(p.replicating)

            -- From here on the network loses everything (the next acknowledgement too, so
            -- the match stays at the rejection's index), and b compacts its log.
            c:set_network({ drop = 1, duplicate = 0, delay_ms = { 2, 4 }, reorder = false })
            assert(c:node(b):snapshot())
            assert.is_true(c:run_until(function()
                return c:node(b):status().first_index > stale.last_index + 1
            end, 100), "b did not compact\n  " .. cl.dump(c))

            c:redeliver(0)
            local went_back = c:run_until(function()
                local q = progress_of(c, b, f)
                return q.match < stale.index or not q.replicating or q.snapshotting
            end, 40)
            local q = progress_of(c, b, f)
            assert.is_false(went_back, ("after the stale rejection: match %d (was %d), "
                            .. "replicating %s, snapshotting %s"):format(q.match, stale.index,
                            tostring(q.replicating), tostring(q.snapshotting)))
            c:heal()
            c:set_network(cl.reliable)
            cl.settle(c, "final")
        end)
    end)
end)
