--- spec/helpers/cluster.lua: simulated clusters for specs, waits with deadlines, and seed
-- reporting.
--
--   local cl = require("spec.helpers.cluster")
--   it("elects a leader", function()
--       cl.with_seed(cl.seed(7), function(seed)
--           local c, fsms = cl.new{ n = 3, seed = seed }
--           local leader = cl.wait_leader(c)
--           ...
--       end)
--   end)
--
-- A failing body is re-raised with "seed=N, replay: HELIOS_SEED=N busted --lua=luajit
-- spec/<file>" appended; `HELIOS_SEED=N` makes cl.seed() return N everywhere.

local sim = require("helios.sim")
local fsm = require("spec.helpers.fsm")

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each, ipairs, type, tostring, tonumber = pairs, ipairs, type, tostring, tonumber
local error, xpcall, format, concat = error, xpcall, string.format, table.concat
local getenv = os.getenv

local M = {}

--- The timing every spec assumes unless it says otherwise.
M.config = { election_timeout_ms = 150, heartbeat_timeout_ms = 50 }

--- A network with no faults: what `settle` restores.
M.reliable = { drop = 0, duplicate = 0, delay_ms = { 1, 5 }, reorder = false }

--- The seed to use: $HELIOS_SEED if set, else `default`.
function M.seed(default)
    return tonumber(getenv("HELIOS_SEED") or "") or default
end

--- The replay line printed for a failing seed.
function M.replay(seed, file)
    return format("seed=%d, replay: HELIOS_SEED=%d busted --lua=luajit %s", seed, seed,
                  file or "spec/")
end

local function spec_file(level)
    local info = debug.getinfo(level, "S")
    local src = info and info.short_src or "spec/"
    src = src:gsub("^%./", "")
    return src
end

--- Run fn(seed); if it raises, re-raise with the seed and the replay command appended. The
-- error keeps its kind (a luassert failure stays a failure).
function M.with_seed(seed, fn)
    local file = spec_file(3)
    local line = M.replay(seed, file)
    local ok, err = xpcall(function() return fn(seed) end, function(e)
        if type(e) == "table" and e.message ~= nil then
            e.message = tostring(e.message) .. "\n" .. line
            return e
        end
        return tostring(e) .. "\n" .. debug.traceback("", 2) .. "\n" .. line
    end)
    if not ok then
        error(err, 0)
    end
end

--- Run fn(seed) for every seed from first to last, keep going past failures, and fail once
-- at the end listing the first ten failed seeds with their replay commands. `name` says
-- which configuration ran. Used by the specs that sweep many random schedules.
function M.sweep(first, last, name, fn)
    local file = spec_file(3)
    local failures = {}
    for seed = first, last do
        local ok, err = pcall(fn, seed)
        if not ok then
            failures[#failures + 1] = ("seed %d: %s\n    %s"):format(
                seed, tostring(err):sub(1, 600), M.replay(seed, file))
        end
    end
    assert(#failures == 0, ("%d of %d seeds failed (%s):\n  %s"):format(
        #failures, last - first + 1, name,
        table.concat(failures, "\n  ", 1, math.min(#failures, 10))))
end

local function merge(into, from)
    for k, v in each(from or {}) do into[k] = v end
    return into
end

--- Build a cluster. opts: n (3), seed (M.seed(1)), config (merged over M.config), network,
-- disk_latency_ms, snapshot_latency_ms, snapshot_chunk_bytes, unsafe_install_keeps_log,
-- make (FSM constructor for the registry). Returns the cluster and the FSM registry.
function M.new(opts)
    opts = opts or {}
    local reg = fsm.registry(opts.make)
    local c = sim.cluster{
        n = opts.n or 3,
        seed = opts.seed or M.seed(1),
        fsm = reg.factory,
        config = merge(merge({}, M.config), opts.config),
        network = opts.network,
        disk_latency_ms = opts.disk_latency_ms,
        snapshot_latency_ms = opts.snapshot_latency_ms,
        snapshot_chunk_bytes = opts.snapshot_chunk_bytes,
        unsafe_install_keeps_log = opts.unsafe_install_keeps_log,
        storage = opts.storage, storage_crash = opts.storage_crash,
        storage_faults = opts.storage_faults, segment_size = opts.segment_size,
    }
    return c, reg
end

--- One line per node: what a failing assertion prints about the cluster.
function M.dump(c)
    local out = { format("t=%d ms", c:now()) }
    for _, id in ipairs(c:ids()) do
        if not c:alive(id) then
            out[#out + 1] = id .. ": crashed"
        else
            local s = c:node(id):status()
            out[#out + 1] = format(
                "%s: %s term=%s leader=%s commit=%s applied=%s first=%s last=%s snap=%s%s",
                id, tostring(s.role), tostring(s.term), tostring(s.leader),
                tostring(s.commit_index), tostring(s.applied_index), tostring(s.first_index),
                tostring(s.last_index), tostring(s.snapshot_index),
                c:connected(id) and "" or " (disconnected)")
        end
    end
    return concat(out, "\n  ")
end

--- Ids of the live nodes that are connected (or all live ones if `any`).
function M.up(c, any)
    local out = {}
    for _, id in ipairs(c:ids()) do
        if c:alive(id) and (any or c:connected(id)) then out[#out + 1] = id end
    end
    return out
end

--- The live nodes whose role is "leader", as a list of ids.
function M.leaders(c)
    local out = {}
    for _, id in ipairs(c:ids()) do
        if c:alive(id) and c:node(id):status().role == "leader" then out[#out + 1] = id end
    end
    return out
end

--- The leader among `ids` (one that those nodes' majority can reach), or nil.
function M.leader_among(c, ids)
    local best, best_term
    for _, id in ipairs(ids) do
        if c:alive(id) then
            local s = c:node(id):status()
            if s.role == "leader" and (not best_term or s.term > best_term) then
                best, best_term = id, s.term
            end
        end
    end
    return best, best_term
end

--- Run until a leader exists (among `ids` if given); returns its id or fails with a dump.
function M.wait_leader(c, timeout_ms, ids)
    local found
    local ok = c:run_until(function()
        if ids then found = M.leader_among(c, ids) else found = c:leader() end
        return found ~= nil
    end, timeout_ms or 5000)
    if not ok then
        error("no leader within " .. tostring(timeout_ms or 5000) .. " ms\n  " .. M.dump(c), 2)
    end
    return found
end

--- Run until every listed live node (default: all live ones) has applied index; true or
-- false.
function M.wait_applied(c, index, timeout_ms, ids)
    return c:run_until(function()
        for _, id in ipairs(ids or c:ids()) do
            if c:alive(id) and c:node(id):status().applied_index < index then return false end
        end
        return true
    end, timeout_ms or 5000)
end

--- Commit cmd through the cluster, retrying (as cmd#k) while there is no leader or a
-- leader change loses it. Returns index, the command that committed, result; fails after
-- timeout_ms of virtual time.
function M.commit(c, cmd, timeout_ms)
    local deadline = c:now() + (timeout_ms or 10000)
    local attempt, name = 0, cmd
    while c:now() < deadline do
        if c:leader() then
            local index, term, result = c:apply(name, 1000)
            if index then return index, name, result, term end
            attempt = attempt + 1
            name = cmd .. "#" .. attempt
        else
            c:run_for(20)
        end
    end
    error(format("could not commit %q within %d ms\n  %s", cmd, timeout_ms or 10000,
                 M.dump(c)), 2)
end

--- The commands node id applied in its current incarnation, in order.
function M.commands(c, id)
    local out = {}
    for i, e in ipairs(c:applied(id)) do out[i] = e.command or e[2] end
    return out
end

--- index -> command for what node id applied in its current incarnation.
function M.applied_map(c, id)
    local out = {}
    for _, e in ipairs(c:applied(id)) do out[e.index or e[1]] = e.command or e[2] end
    return out
end

--- A node's sent-message counter for a message type ("append", "vote", ...), read from
-- node:stats(). Fails naming the shape it found when there is no such counter.
function M.sent(node, kind)
    local st = node:stats()
    local t = st.msgs_sent_by_type
    if type(t) == "table" then
        local v = t[kind] or t[kind:upper()] or t["msg_" .. kind]
        if type(v) == "number" then return v end
    end
    local keys = {}
    for k in each(st) do keys[#keys + 1] = tostring(k) end
    error("no sent-message counter for " .. kind .. " in node:stats() (keys: "
          .. concat(keys, ", ") .. ")", 2)
end

--- Fail unless every live node's FSM (from the registry) serializes to the same bytes
-- (fsm:snapshot()): after settle, every node applied the same commands.
function M.same_state(c, reg)
    local want, first
    for _, id in ipairs(c:ids()) do
        if c:alive(id) then
            local got = reg.current[id]:snapshot()
            if want == nil then
                want, first = got, id
            elseif got ~= want then
                error(format("FSM state of %s differs from %s's\n  %s", id, first, M.dump(c)),
                      2)
            end
        end
    end
    return want
end

--- Heal everything (network, disconnects, crashes), then require liveness: a leader and a
-- committed final command applied by every node. Returns the final index.
function M.settle(c, tag, timeout_ms)
    c:heal()
    c:set_network(M.reliable)
    c:set_storage_crash(0) -- real storage: no more crash points, or a node may stay down
    for _, id in ipairs(c:ids()) do
        if not c:alive(id) then c:restart(id) end
        if not c:connected(id) then c:connect(id) end
    end
    M.wait_leader(c, timeout_ms or 10000)
    local index = M.commit(c, tag or "final", timeout_ms or 10000)
    if not M.wait_applied(c, index, timeout_ms or 10000) then
        error("final command not applied everywhere\n  " .. M.dump(c), 2)
    end
    c:check()
    return index
end

return M
