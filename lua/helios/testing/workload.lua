--- helios.testing.workload: concurrent register clients against an ATLAS cluster of
-- processes under a nemesis, every op recorded to a history file and checked afterwards
-- (docs/testing.md, "Torture runs").
--
--   local workload = require("helios.testing.workload")
--   local r = workload.run{ cluster = cl, nemesis = n, duration_ms = 30000,
--                           mode = "control" | "resp", clients = 10, keys = 5,
--                           dir = "/tmp/torture-7", seed = 7 }
--   print(workload.report(r))     -- r.valid, r.verdict, r.counts, r.problems, r.dir
--
-- cl: testing.cluster{ fsm = "helios.atlas.fsm", client = true (mode "resp") }. The run
-- takes over the loop (loop.run) until it ends: clients, the nemesis and a poller of the
-- nodes' applied entries are coroutines on it.
--
-- Every client has an ATLAS session, so a write retried across leader changes is applied
-- at most once (a write applied twice would make a correct cluster look wrong). Mode
-- "control": writes are numbered commands through helios.client's cluster client over the
-- control sockets, reads are `read` on a random node (linearizable on a follower too).
-- Mode "resp": SET / ATLAS.CAS / GET through helios.client's RESP cluster client.

local core = require("helios.core")
local loop = require("helios.loop")
local client = require("helios.client")
local lin = require("helios.testing.linearize")
local fsm_mod = require("helios.atlas.fsm")

local E = fsm_mod.encode
local format, concat = string.format, table.concat
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local ipairs, each, pcall, tostring, type = ipairs, pairs, pcall, tostring, type

local M = {}

-- The applied-entries recorder installed in every node through the console (eval): it
-- keeps "index term checksum" of each applied entry until fetched. Checksum: a 31-bit
-- polynomial hash of the command bytes (enough to tell commands apart; not a digest).
local RECORDER = [[
local r = rawget(_G, "__torture_applied")
if not r then
    r = { n = 0, t = {} }
    rawset(_G, "__torture_applied", r)
    node:on("apply", function(index, term, cmd)
        local h = #cmd
        for i = 1, #cmd do h = (h * 31 + cmd:byte(i)) % 2147483647 end
        r.n = r.n + 1
        r.t[r.n] = index .. ":" .. term .. ":" .. h
    end)
end
local out = table.concat(r.t, " ")
r.t, r.n = {}, 0
return out
]]

-- The ATLAS state of a node, as "key=value" pairs sorted by key (with the applied index).
local STATE = [[
local keys = fsm:keys(nil, nil)
local out = {}
for i, k in ipairs(keys) do out[i] = k .. "=" .. tostring(fsm:get(k)) end
return node:status().applied_index .. " " .. table.concat(out, " ")
]]

-- cl:pid, not cl:running: running reaps an exited node and then closes cl:client(), which
-- the nemesis may be waiting in, in another coroutine.
local function eval(cl, id, code)
    if not cl:pid(id) then return nil end
    local c = client.connect(cl:socket(id), 1000)
    if not c then return nil end
    local r = c:call("eval", { code = code }, 3000)
    c:close()
    if not r or not r.ok then return nil end
    -- The console renders a string quoted ("...").
    return (tostring(r.results):gsub('^"', ""):gsub('"%s*$', ""))
end

-- Fetch the applied entries each node recorded since the last fetch into seen[id].
local function poll_applied(cl, applied)
    for _, id in ipairs(cl:ids()) do
        local s = eval(cl, id, RECORDER)
        if s then
            local mine = applied[id] or {}
            applied[id] = mine
            for i, t, h in s:gmatch("(%d+):(%d+):(%d+)") do
                mine[tonumber(i)] = t .. ":" .. h
            end
        end
    end
end

-- ---- one client ------------------------------------------------------------------------

local function control_client(cl, opts)
    local cc = client.cluster((function()
        local s = {}
        for _, id in ipairs(cl:ids()) do s[id] = cl:socket(id) end
        return s
    end)(), { timeout_ms = 1000, attempt_ms = 1500 })
    local sid
    local deadline = core.clock_ms() + 60000
    while not sid and core.clock_ms() < deadline do
        local _, _, r = cc:apply(E.register(), 3000)
        if type(r) == "number" then sid = r else loop.wait(200) end
    end
    if not sid then error("workload: no session registered within 60 s") end
    local seq = 0
    local c = {}
    local function write(bytes)
        seq = seq + 1
        local idx, code, r = cc:apply(fsm_mod.numbered(bytes, sid, seq, seq - 1),
            opts.op_timeout_ms)
        if not idx then return nil, code end
        if type(r) == "table" and r.err then return nil, r.err end
        return r
    end
    function c.write(k, v)
        local r, code = write(E.set(k, v))
        if r == true then return "ok" end
        return "info", code
    end
    function c.cas(k, old, new)
        local r, code = write(E.cas(k, old, new))
        if r == true then return "ok" elseif r == false then return "fail" end
        return "info", code
    end
    function c.read(k)
        local ids = cl:ids()
        local id = ids[math.random(#ids)]
        local n, code = cc:node(id)
        if not n then return "fail", nil, code end
        local ok, v = n:read(k, { timeout_ms = opts.op_timeout_ms })
        if ok then return "ok", v end
        return "fail", nil, v
    end
    function c.close() cc:close() end
    return c
end

local function resp_client(cl, opts)
    local addrs = {}
    for _, id in ipairs(cl:ids()) do addrs[id] = cl:client_address(id) end
    local cc = client.cluster(addrs, { timeout_ms = opts.op_timeout_ms, attempt_ms = 1000 })
    local s
    local deadline = core.clock_ms() + 60000
    while not s and core.clock_ms() < deadline do
        s = cc:session()
        if not s then loop.wait(200) end
    end
    if not s then error("workload: no RESP session within 60 s") end
    local c = {}
    function c.write(k, v)
        local r, code = s:set(k, v)
        if r == true then return "ok" end
        return "info", code
    end
    function c.cas(k, old, new)
        local r, code = s:call("ATLAS.CAS", k, old, new)
        if r == 1 then return "ok" elseif r == 0 then return "fail" end
        return "info", code
    end
    function c.read(k)
        local v, code = s:get(k)
        if v == nil then return "fail", nil, code end
        return "ok", v or nil
    end
    function c.close() cc:close() end
    return c
end

-- ---- the run -----------------------------------------------------------------------------

--- The acknowledged writes (ok write or cas) of ops (linearize.pair's) that are not the
-- final value of their key (final: { [key] = value }) and that nothing may have
-- overwritten: no write or cas of that key of unknown outcome, none that completed after
-- it began. Returns a list of descriptions (empty: none lost).
function M.lost_writes(ops, final)
    local r, lost = { ops = ops }, {}
    -- Per key: whether some write or cas may have taken effect after a given one began: an
    -- info one, or one that completed later (the two latest completions, to skip itself).
    local info_w, late1, late2 = {}, {}, {}
    local function is_write(op) return op.f == "write" or op.f == "cas" end
    for _, op in ipairs(r.ops) do
        if is_write(op) then
            local k = op.key
            if op.type == "info" then info_w[k] = true
            elseif op.type == "ok" then
                if not late1[k] or op.ret > late1[k].ret then late1[k], late2[k] = op, late1[k]
                elseif not late2[k] or op.ret > late2[k].ret then late2[k] = op end
            end
        end
    end
    for _, op in ipairs(r.ops) do
        if op.type == "ok" and is_write(op) then
            local k = op.key
            local v = op.f == "write" and op.value or op.value[2]
            if final[k] ~= v then
                local other = late1[k] ~= op and late1[k] or late2[k]
                if not info_w[k] and not (other and other.ret > op.call) then
                    lost[#lost + 1] = format("acknowledged write %s of %s lost "
                        .. "(final value %s)", tostring(v), k, tostring(final[k]))
                end
            end
        end
    end
    return lost
end

--- Run the workload; see the head of this file. opts: cluster, nemesis (or nil: no
-- faults), duration_ms (10000), mode ("control"), clients (10), keys (5), op_timeout_ms
-- (2000), recover_ms (how long the healed cluster has to serve every key again, 30000),
-- dir (where the history and, on failure, the timeline and logs go), seed, interval_ms
-- and quiet_ms (the nemesis's), print (progress lines).
-- @return { seed, mode, valid, verdict, counts = { ok, fail, info }, schedule,
--   problems = { strings }, check = linearize's result, dir, history }
function M.run(opts)
    local cl = opts.cluster
    local mode = opts.mode or "control"
    local nclients = opts.clients or 10
    local nkeys = opts.keys or 5
    local dur = opts.duration_ms or 10000
    local say = opts.print or function() end
    opts.op_timeout_ms = opts.op_timeout_ms or 2000
    local dir = opts.dir or format("%s/helios-torture-%d", os.getenv("TMPDIR") or "/tmp",
                                   core.clock_ms())
    os.execute("mkdir -p '" .. dir .. "'")
    local hpath = dir .. "/history.jsonl"
    local hf = assert(io.open(hpath, "w"))
    math.randomseed(opts.seed or 1)
    local t0 = core.clock_ms()
    local keys = {}
    for i = 1, nkeys do keys[i] = "k" .. i end
    local applied, problems = {}, {}
    local state = { stop = false, running = 0 }
    local function rec(t)
        if io.type(hf) ~= "file" then return end -- a worker left over from a failed run
        t.time = core.clock_ms() - t0
        hf:write(lin.encode(t), "\n")
    end
    local result = { seed = opts.seed, mode = mode, dir = dir, history = hpath,
                     problems = problems }

    -- A client whose operation outlives every timeout of the client libraries by far is
    -- given up (its operation stays without a completion: unknown, as for a client that
    -- crashed) and replaced by a new process, so one hang does not silence a client for the
    -- rest of the run. How many, and which operations, is in result.hung.
    local hang_ms = opts.hang_ms or (2 * opts.op_timeout_ms + 8000)
    local workers, hung = {}, {}
    result.hung = hung
    local function op(w, f, ...)
        w.since = core.clock_ms()
        local a, b, c = f(...)
        w.since = nil
        return a, b, c
    end
    local worker
    worker = function(p)
        local w = { p = p }
        workers[#workers + 1] = w
        local c = (mode == "resp" and resp_client or control_client)(cl, opts)
        local last, counter = {}, 0
        while not state.stop and not w.abandoned do
            local k = keys[math.random(#keys)]
            local x = math.random(100)
            w.what = k
            if x <= 50 then
                rec({ process = p, type = "invoke", f = "read", key = k })
                local how, v, code = op(w, c.read, k)
                if w.abandoned then break end
                rec({ process = p, type = how, f = "read", key = k, value = v,
                      error = how ~= "ok" and code or nil })
                if how == "ok" and v ~= nil then last[k] = v end
            else
                counter = counter + 1
                local v = format("p%d-%d", p, counter)
                local how, code
                if x <= 80 or not last[k] then
                    rec({ process = p, type = "invoke", f = "write", key = k, value = v })
                    how, code = op(w, c.write, k, v)
                    if w.abandoned then break end
                    rec({ process = p, type = how, f = "write", key = k, error = code })
                else
                    rec({ process = p, type = "invoke", f = "cas", key = k,
                          value = { last[k], v } })
                    how, code = op(w, c.cas, k, last[k], v)
                    if w.abandoned then break end
                    rec({ process = p, type = how, f = "cas", key = k, error = code })
                end
                -- Only a value known to be there is expected by a later cas: one of unknown
                -- outcome, expected, could not be left out by the checker (docs/testing.md).
                if how == "ok" then last[k] = v end
            end
        end
        c.close()
        if not w.abandoned then state.running = state.running - 1 end
    end
    local function watchdog()
        local next_p = nclients
        while not state.checked do
            local now = core.clock_ms()
            for _, w in ipairs(workers) do
                if not w.abandoned and w.since and now - w.since > hang_ms then
                    w.abandoned = true
                    state.running = state.running - 1
                    hung[#hung + 1] = format("process %s, key %s, invoked at %.1f s", w.p,
                                             w.what, (w.since - t0) / 1000)
                    say("client hangs: " .. hung[#hung])
                    if not state.stop then
                        next_p = next_p + 1
                        state.running = state.running + 1
                        loop.spawn(worker, next_p)
                    end
                end
            end
            loop.wait(500)
        end
    end

    local main_err
    loop.spawn(function()
        local ok, e = pcall(function()
            for p = 1, nclients do
                state.running = state.running + 1
                loop.spawn(worker, p)
            end
            loop.spawn(watchdog)
            local poller_done = false
            loop.spawn(function()
                while not state.polled do
                    pcall(poll_applied, cl, applied)
                    loop.wait(1000)
                end
                poller_done = true
            end)
            if opts.nemesis then
                opts.nemesis:run(dur, { interval_ms = opts.interval_ms,
                                        quiet_ms = opts.quiet_ms })
            else
                loop.wait(dur)
            end
            say(format("faults over after %.1f s; healing", (core.clock_ms() - t0) / 1000))
            -- Recovery: a leader and every key readable within the bound.
            local rec_deadline = core.clock_ms() + (opts.recover_ms or 30000)
            local leader = cl:leader(opts.recover_ms or 30000, true)
            if not leader then
                problems[#problems + 1] = "no leader within the recovery bound"
            end
            state.stop = true
            while state.running > 0 and core.clock_ms() < rec_deadline + 10000 do
                loop.wait(50)
            end
            state.checked = true
            say(format("clients stopped at %.1f s; reading every key",
                       (core.clock_ms() - t0) / 1000))
            -- Every key, read once more (recorded: the checker sees them).
            local c = (mode == "resp" and resp_client or control_client)(cl, opts)
            for _, k in ipairs(keys) do
                local got
                while core.clock_ms() < rec_deadline do
                    rec({ process = "final", type = "invoke", f = "read", key = k })
                    local how, v = c.read(k)
                    rec({ process = "final", type = how, f = "read", key = k, value = v })
                    if how == "ok" then got = true break end
                    loop.wait(100)
                end
                if not got then
                    problems[#problems + 1] = "key " .. k .. " not readable after recovery"
                end
            end
            c.close()
            -- Every node applies the same last index, then compare what they applied.
            leader = cl:leader(5000, true)
            if leader then
                local st = cl:status(leader, 1000)
                local ok2 = st and pcall(cl.wait_applied, cl, st.commit_index, 15000)
                if not ok2 then
                    problems[#problems + 1] = "nodes did not all apply the leader's commit index"
                end
            end
            say(format("every node applied the commit index at %.1f s",
                       (core.clock_ms() - t0) / 1000))
            state.polled = true
            while not poller_done do loop.wait(20) end
            poll_applied(cl, applied)
            local states = {}
            for _, id in ipairs(cl:ids()) do
                states[id] = eval(cl, id, STATE)
            end
            result.states = states
        end)
        if not ok then main_err = tostring(e) end
        loop.stop()
    end)
    local ok, err = loop.run()
    -- A worker that raised stopped the loop with the others still in it: they must not
    -- run on in whatever uses the loop next (they would write to the closed history).
    state.stop = true
    hf:close()
    if not ok then error(err, 0) end
    if main_err then error(main_err, 0) end
    result.schedule = opts.nemesis and opts.nemesis:log() or "(no faults)"
    say(format("run over at %.1f s; checking", (core.clock_ms() - t0) / 1000))

    -- Same command at every index.
    local at, conflicts = {}, 0
    for id, mine in each(applied) do
        for i, v in each(mine) do
            local other = at[i]
            if not other then at[i] = { v = v, id = id }
            elseif other.v ~= v then
                conflicts = conflicts + 1
                if conflicts <= 5 then
                    problems[#problems + 1] = format("index %d: %s applied %s, %s applied %s",
                        i, other.id, other.v, id, v)
                end
            end
        end
    end
    local nidx = 0
    for _ in each(at) do nidx = nidx + 1 end
    result.applied_indexes = nidx
    -- The same ATLAS state everywhere.
    local first_id, first
    for _, id in ipairs(cl:ids()) do
        local s = result.states[id]
        if s then
            if not first then first_id, first = id, s
            elseif s ~= first then
                problems[#problems + 1] = format("ATLAS state differs: %s has [%s], %s has [%s]",
                    first_id, first, id, s)
            end
        end
    end

    -- Linearizability, and acknowledged writes present or overwritten.
    local history = assert(lin.load(hpath))
    local r = lin.check(history)
    result.check, result.counts, result.verdict = r, r.counts, r.verdict
    local final = {}
    for _, op in ipairs(r.ops) do
        if op.process == "final" and op.type == "ok" then final[op.key] = op.value end
    end
    for _, p in ipairs(M.lost_writes(r.ops, final)) do problems[#problems + 1] = p end
    say(format("checked at %.1f s", (core.clock_ms() - t0) / 1000))
    result.valid = r.valid and #problems == 0
    if not result.valid then
        if not r.valid then
            pcall(lin.render_html, r, dir .. "/timeline.html")
            local f = io.open(dir .. "/check.txt", "w")
            if f then f:write(lin.describe(r), "\n") f:close() end
        end
        for _, id in ipairs(cl:ids()) do
            os.execute(format("cp '%s' '%s/' 2>/dev/null", cl:log_path(id), dir))
        end
        local f = io.open(dir .. "/schedule.txt", "w")
        if f then f:write(result.schedule, "\n") f:close() end
    end
    return result
end

--- The result in words: seed, mode, schedule, counts, verdict, problems, where the files are.
function M.report(r)
    local out = {
        format("seed %s, mode %s", tostring(r.seed), r.mode),
        "fault schedule:", r.schedule,
        format("ops: %d ok, %d fail, %d info; %d log indexes compared across nodes",
               r.counts.ok, r.counts.fail, r.counts.info, r.applied_indexes or 0),
        format("verdict: %s (linearizable: %s)", r.valid and "valid" or "INVALID", r.verdict),
    }
    for _, p in ipairs(r.problems) do out[#out + 1] = "problem: " .. p end
    for _, h in ipairs(r.hung or {}) do
        out[#out + 1] = "a client hung (given up, its operation left unknown): " .. h
    end
    if not r.check.valid then out[#out + 1] = lin.describe(r.check) end
    if not r.valid then
        out[#out + 1] = "kept in " .. r.dir .. ": history.jsonl, timeline.html, check.txt, "
            .. "schedule.txt, the nodes' logs"
    end
    return concat(out, "\n")
end

return M
