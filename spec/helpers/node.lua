--- spec/helpers/node.lua: shared pieces of the specs that run networked nodes (raft.new) in
-- one process on the real loop (spec/node_cluster_spec.lua, spec/snapshot_node_spec.lua).
--
-- A cluster here is any table with `ids` (a list of node ids) and `nodes` (id -> node); each
-- spec builds its own, with the FSMs and options it needs.
--
--   local nh = require("spec.helpers.node")
--   local dir = nh.tmpdir()                    -- remove with nh.rmrf(dir); nh.ls(dir)
--   assert(nh.run_scenario(c, 10000, function() ... end))
--   nh.stop_all(c)                             -- in a finally: also when the scenario failed

local raft = require("helios.raft")
local core = require("helios.core")
local shell = require("helios.util.shell")

local assert, ipairs, os = assert, ipairs, os
local format = string.format

local M = {}

--- A fresh empty directory (a temporary name made into a directory).
function M.tmpdir()
    local d = os.tmpname()
    os.remove(d)
    assert(os.execute("mkdir -p " .. shell.quote(d)))
    return d
end

--- rm -rf d.
function M.rmrf(d)
    os.execute("rm -rf " .. shell.quote(d))
end

--- The names in directory dir (none if it does not exist), as `ls` lists them.
function M.ls(dir)
    local names = {}
    local p = io.popen(format("ls %s 2>/dev/null", shell.quote(dir)))
    for line in p:lines() do names[#names + 1] = line end
    p:close()
    return names
end

--- Whether node exists and runs (started, not shut down).
function M.running(node)
    return node ~= nil and node._backend._state == "running"
end

--- Shut down every running node of c and run the loop (at most 5 s) until they are closed.
function M.stop_all(c)
    local any = false
    for _, id in ipairs(c.ids) do
        if M.running(c.nodes[id]) then
            c.nodes[id]:shutdown()
            any = true
        end
    end
    if any then
        local t = raft.after(5000, function() raft.stop() end)
        raft.run()
        t:stop()
    end
end

--- Run body() in a coroutine on the loop, at most timeout_ms; when it returns, shut c's
-- nodes down so that raft.run returns. Returns raft.run's values.
function M.run_scenario(c, timeout_ms, body)
    raft.spawn(function()
        body()
        for _, id in ipairs(c.ids) do
            if M.running(c.nodes[id]) then c.nodes[id]:shutdown() end
        end
    end)
    local deadline = raft.after(timeout_ms, function()
        core.fail(format("scenario deadline of %d ms passed", timeout_ms))
    end)
    local ok, err = raft.run()
    deadline:stop()
    return ok, err
end

--- Inside a coroutine: poll pred() every 10 ms; true once it holds, false after ms.
function M.wait_for(pred, ms)
    local deadline = raft.now() + ms
    while not pred() do
        if raft.now() > deadline then return false end
        raft.sleep(10)
    end
    return true
end

--- The id of the running node of c that believes it leads, highest term first; nil if none.
function M.leader_of(c)
    local best, best_term
    for _, id in ipairs(c.ids) do
        local node = c.nodes[id]
        if M.running(node) then
            local term, is_leader = node:state()
            if is_leader and (not best_term or term > best_term) then
                best, best_term = id, term
            end
        end
    end
    return best
end

return M
