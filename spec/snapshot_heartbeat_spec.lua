-- snapshot_heartbeat_spec.lua: a leader keeps heartbeating a follower while it streams it a
-- snapshot. A transfer can outlast an election timeout (a big snapshot, a slow link, a lost
-- chunk resumed only after a re-offer), and only the leader's heartbeats keep the follower
-- from campaigning in such a gap. Regression: the core once sent nothing but the offer to
-- a peer waiting for a snapshot.

local cl = require("spec.helpers.cluster")

-- A state machine whose snapshot is large (about 20 KB), so its transfer takes many chunks.
local Big = {}
Big.__index = Big
function Big.new() return setmetatable({ items = {} }, Big) end
function Big:apply(command) self.items[#self.items + 1] = command .. string.rep("x", 90) end
function Big:snapshot() return table.concat(self.items, "\n") end
function Big:restore(data)
    self.items = {}
    for line in data:gmatch("[^\n]+") do self.items[#self.items + 1] = line end
end

describe("snapshot transfer", function()
    it("goes on with heartbeats to the follower it streams a snapshot to", function()
        cl.with_seed(cl.seed(1301), function(seed)
            local c = cl.new{ n = 3, seed = seed, make = function() return Big.new() end,
                              snapshot_chunk_bytes = 64,
                              config = { snapshot_threshold = 50, trailing_logs = 5 } }
            local leader = cl.wait_leader(c)
            local lagging = leader == "n1" and "n2" or "n1"
            c:disconnect(lagging)
            for k = 1, 200 do cl.commit(c, "cmd" .. k) end
            c:run_for(300)
            assert.is_true(c:node(leader):status().first_index > 2, "the leader compacted")

            -- A slow link: four chunks per round trip of 40-80 ms, over 300 chunks.
            c:set_network{ delay_ms = { 20, 40 } }
            c:connect(lagging)
            local appends = cl.sent(c:node(leader), "append")
            c:run_for(1000)
            local snapshots = c:snapshot_stats()
            assert.are.equal(0, snapshots.delivered, "the transfer is still going on")
            assert.is_true(snapshots.chunks > 20, "chunks flow")
            -- No proposals meanwhile: every AppendEntries is a heartbeat, one per 50 ms to
            -- each of the two followers (20 would mean the one being streamed to gets none).
            local heartbeats = cl.sent(c:node(leader), "append") - appends
            assert.is_true(heartbeats >= 36, "heartbeats in 1 s: " .. heartbeats)

            local target = c:node(leader):status().commit_index
            assert.is_true(c:run_until(function()
                return c:node(lagging):status().applied_index >= target
            end, 20000), "the follower did not catch up\n  " .. cl.dump(c))
            assert.are.equal(leader, c:leader())
            c:check()
        end)
    end)
end)
