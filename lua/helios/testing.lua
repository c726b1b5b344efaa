--- helios.testing: real clusters of node processes on loopback, for busted specs.
--
--   local testing = require("helios.testing")
--   it("fails over", function()
--       local cl = testing.cluster{ n = 3, fsm = "helios.fsm.kv",
--                                   config = { election_timeout_ms = 300 } }
--       finally(function() cl:stop() end)            -- always, also when the spec fails
--       local leader = cl:leader(10000)              -- waits (raises on timeout)
--       local cc = cl:client()                       -- helios.client cluster client
--       assert(cc:apply("set k v", 5000))
--       cl:kill(leader, "KILL")                      -- or "TERM" (clean), "STOP", ...
--       cl:wait(function() local l = cl:leader(0, true) return l ~= leader and l end,
--               10000, "a new leader")
--       cl:start(leader)                             -- the same data dir: it catches up
--       cl:pause(id)  cl:resume(id)                  -- SIGSTOP / SIGCONT
--       cl:partition({ "node-1" }, { "node-2", "node-3" })  cl:heal()
--       cl:partition_oneway({ "node-1" }, { "node-2" })   -- node-1 cannot dial node-2
--       local id, addr = cl:add_node()               -- "node-4", outside the configuration
--       cl:start(id)                                 -- `helios node --join`: it waits
--       assert(cc:add_peer(id, addr, { timeout_ms = 10000 }))   -- on the leader
--   end)
--
-- or, with the nodes' logs appended to the error of a failing body:
--
--   testing.with_cluster({ n = 3 }, function(cl) ... end)
--
-- ATLAS with its Redis-protocol ports (client = true: each node gets a free loopback port,
-- the cluster file's client_listen; no proxy on those):
--
--   local cl = testing.cluster{ n = 3, fsm = "helios.atlas.fsm", client = true }
--   cl:client_address("node-1")                  -- "127.0.0.1:PORT" (redis-cli -p PORT)
--
-- Nodes are "node-1" .. "node-N", each a `helios node` process started from its own
-- cluster file in a temporary directory (data in <dir>/<id>, output in <dir>/<id>.log).
-- Ports are picked free at run time. Every link between two nodes goes through a loopback
-- TCP proxy (one per direction, in a helper process of its own: csrc/testkit/proxy.c), so
-- cl:partition cuts real TCP connections: node A's address for node B is the proxy of the
-- link A->B, which forwards to B's real listener.
-- Processes die with the test process (PR_SET_PDEATHSIG), even when busted is killed.
--
-- Every call that waits (testing.cluster, cl:start's callers, cl:kill, cl:wait, cl:leader,
-- cl:wait_applied, cl:partition, cl:heal, cl:stop, the client of cl:client()) yields when
-- called in a coroutine on the loop (raft.spawn, loop.spawn) and blocks otherwise.

local core = require("helios.core")
local tk = require("helios.testkit")
local loop = require("helios.loop")
local process = require("helios.util.process")
local shell = require("helios.util.shell")
local client = require("helios.client")
local clusterfile = require("helios.clusterfile")
local cli = require("helios.cli")

local format, concat = string.format, table.concat
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local error, ipairs, each, type, tostring, setmetatable, xpcall = error, ipairs, pairs, type,
    tostring, setmetatable, xpcall
local traceback = debug.traceback
local clock_ms = core.clock_ms

local M = {}

--- Timing of test clusters unless config says otherwise: slower than the defaults, since
-- a 2-core machine runs 5 nodes, fsyncs and the test itself at once.
M.DEFAULT_CONFIG = { election_timeout_ms = 300, heartbeat_timeout_ms = 60 }

--- How long cl:stop() and cl:kill(id, "TERM") give a node to exit before SIGKILL.
M.STOP_GRACE_MS = 5000

local Cluster = {}
Cluster.__index = Cluster
Cluster.__name = "helios.testing.cluster"

function Cluster:__tostring()
    return format("helios.testing.cluster(%d nodes in %s)", #self._ids, self._dir)
end

local function make_tempdir(base)
    base = base or os.getenv("TMPDIR") or "/tmp"
    for _ = 1, 100 do
        local dir = format("%s/helios-test-%d-%06d", base, tk.getpid(),
            math.random(0, 999999))
        local r = os.execute("mkdir -m 700 " .. shell.quote(dir) .. " 2>/dev/null")
        if r == 0 or r == true then return dir end
    end
    error("helios.testing: cannot create a temporary directory under " .. base)
end

-- The luajit command line that runs the proxy helper with our module paths.
local function proxy_argv()
    local code = format("package.path = %q; package.cpath = %q; "
        .. "require('helios.testkit').proxy_main()", package.path, package.cpath)
    return { "luajit", "-e", code }
end

-- One command to the proxy process and its answer (a line each way): yields in a
-- coroutine on the loop, blocks otherwise.
local function proxy_cmd(self, line)
    local pin, pout = self._proxy_in, self._proxy_out
    local ok, code, detail = pin:try_send_raw(line .. "\n")
    if code == "again" then
        ok, code, detail = loop.await(pin, pin.try_flush, "w", 5000, "proxy: not written")
    end
    if not ok then error(format("helios.testing: proxy: %s %s", code, detail), 3) end
    local reply, rcode = loop.await(pout, pout.try_read_line, "r", 5000, "proxy: no answer")
    if not reply then error(format("helios.testing: proxy: no answer (%s)", rcode), 3) end
    if not reply:match("^ok") then
        error(format("helios.testing: proxy: %s -> %s", line, reply), 3)
    end
    return reply
end

--- Start a cluster of real node processes.
-- @tparam table opts n (default 3), fsm (module name, default "helios.fsm.kv"),
--   config (options of raft.new for every node), proxies (default true),
--   cluster_id, secret, start (default true: start every node now), client (true: every
--   node serves Redis clients on a free port, cl:client_address(id); needs
--   fsm = "helios.atlas.fsm"), atlas_modules (the cluster file's list), tmpdir (where the
--   cluster's directory is made: its data, logs and sockets; default $TMPDIR, else /tmp)
-- @return the cluster (call cl:stop() when done)
function M.cluster(opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("Usage: testing.cluster{ n = 3, ... }", 2) end
    local n = opts.n or 3
    if type(n) ~= "number" or n < 1 or n > 64 or n % 1 ~= 0 then
        error("Usage: testing.cluster{ n = 1..64 }", 2)
    end
    local self = setmetatable({ _ids = {}, _procs = {}, _exits = {}, _real = {}, _files = {},
                                _sockets = {}, _confs = {},
                                _fsm = opts.fsm or "helios.fsm.kv" }, Cluster)
    math.randomseed(core.clock_ms() % 1e9 + tk.getpid())
    self._dir = make_tempdir(opts.tmpdir)
    local ok, err = xpcall(function()
        for i = 1, n do
            local id = format("node-%d", i)
            self._ids[i] = id
            self._real[id] = format("127.0.0.1:%d", assert(core.free_port()))
        end
        -- Proxies: A's address for B is the proxy of the link A->B.
        local views = {}
        for _, a in ipairs(self._ids) do views[a] = { [a] = self._real[a] } end
        if opts.proxies ~= false and n > 1 then
            local pid, pin, pout = core.proc_spawn(proxy_argv(),
                { stdin = "pipe", stdout_pipe = true, stderr = self._dir .. "/proxy.log",
                  die_with_parent = true })
            if not pid then error("helios.testing: cannot start the proxy: " .. tostring(pin)) end
            self._proxy_pid, self._proxy_in, self._proxy_out = pid, pin, pout
            for _, a in ipairs(self._ids) do
                for _, b in ipairs(self._ids) do
                    if a ~= b then
                        local reply = proxy_cmd(self, format("link %s %s %s", a, b,
                            self._real[b]))
                        views[a][b] = "127.0.0.1:" .. reply:match("^ok (%d+)")
                    end
                end
            end
        else
            for _, a in ipairs(self._ids) do
                for _, b in ipairs(self._ids) do views[a][b] = self._real[b] end
            end
        end
        local secret = opts.secret or format("test-secret-%d", math.random(1, 1e9))
        self._conf = { cluster_id = opts.cluster_id or "test", fsm = self._fsm,
                       data_dir = self._dir, secret = secret,
                       atlas_modules = opts.atlas_modules }
        if opts.client then
            self._conf.client_listen = {}
            for _, id in ipairs(self._ids) do
                self._conf.client_listen[id] = format("127.0.0.1:%d", assert(core.free_port()))
            end
        end
        for k, v in each(M.DEFAULT_CONFIG) do self._conf[k] = v end
        for k, v in each(opts.config or {}) do self._conf[k] = v end
        for _, id in ipairs(self._ids) do
            local conf = { nodes = views[id] }
            for k, v in each(self._conf) do conf[k] = v end
            self._confs[id] = conf
            local file = format("%s/cluster-%s.lua", self._dir, id)
            assert(clusterfile.write(file, conf))
            self._files[id] = file
            self._sockets[id] = format("%s/%s/control.sock", self._dir, id)
        end
        if opts.start ~= false then
            for _, id in ipairs(self._ids) do self:start(id) end
        end
    end, traceback)
    if not ok then
        self:stop()
        error(err, 0)
    end
    return self
end

--- The node ids, in order.
function Cluster:ids()
    local ids = {}
    for i, id in ipairs(self._ids) do ids[i] = id end
    return ids
end

--- The temporary directory; a node's data dir, log file, cluster file, control socket.
function Cluster:dir() return self._dir end
function Cluster:data_dir(id) return self._dir .. "/" .. id end
function Cluster:log_path(id) return self._dir .. "/" .. id .. ".log" end
function Cluster:config_path(id) return self._files[id] end
function Cluster:socket(id) return self._sockets[id] end
--- The address node id listens on (not the proxies').
function Cluster:address(id) return self._real[id] end
--- The address of node id's Redis-protocol port (testing.cluster{ client = true }), or nil.
function Cluster:client_address(id)
    return self._conf.client_listen and self._conf.client_listen[id]
end
function Cluster:pid(id) return self._procs[id] end

local function check_id(self, id, usage)
    if not self._files[id] then
        error(format("Usage: %s: unknown node %s (nodes: %s)", usage, tostring(id),
            concat(self._ids, ", ")), 3)
    end
end

--- Start node id (its process must not be running): same cluster file, same data dir.
function Cluster:start(id)
    check_id(self, id, "cl:start(id)")
    if self._procs[id] then
        error(format("cl:start(%s): the node is running (pid %d)", id, self._procs[id]), 2)
    end
    local f = io.open(self:log_path(id), "a")
    if f then
        f:write(format("---- %s: started by helios.testing\n", os.date("%H:%M:%S")))
        f:close()
    end
    local pid, code, detail = cli.spawn_node(self._files[id], id, self:log_path(id))
    if not pid then
        error(format("cl:start(%s): %s %s", id, tostring(code), tostring(detail)), 2)
    end
    self._procs[id] = pid
    return pid
end

--- A new node, outside the cluster's configuration: "node-<N+1>" with a free port and
-- its own cluster file that says join = true (`helios node` then starts it on an empty
-- data dir in no configuration, waiting to be added with add_peer on the leader) and
-- lists every node's real address (no proxy: cl:partition does not cut its links). Not
-- started: cl:start(id). Returns its id and the address to give add_peer.
function Cluster:add_node()
    local id = format("node-%d", #self._ids + 1)
    local addr = format("127.0.0.1:%d", assert(core.free_port()))
    self._ids[#self._ids + 1] = id
    self._real[id] = addr
    local conf = { nodes = {}, join = true }
    if self._conf.client_listen then
        self._conf.client_listen[id] = format("127.0.0.1:%d", assert(core.free_port()))
    end
    for k, v in each(self._conf) do conf[k] = v end
    for other, a in each(self._real) do conf.nodes[other] = a end
    local file = format("%s/cluster-%s.lua", self._dir, id)
    assert(clusterfile.write(file, conf))
    self._files[id] = file
    self._sockets[id] = format("%s/%s/control.sock", self._dir, id)
    if self._client then
        -- The cluster client knows its nodes from when it was made: a new one for all.
        self._client:close()
        self._client = nil
    end
    return id, addr
end

--- Start node id again as a new node: its data dir removed, its cluster file saying
-- join = true (it waits, in no configuration, to be added with add_peer on the leader,
-- at cl:address(id)). The process must not run, and the node should have been removed
-- from the configuration first. Its links keep going through the proxies.
function Cluster:rejoin(id)
    check_id(self, id, "cl:rejoin(id)")
    if self:running(id) then error(format("cl:rejoin(%s): the node is running", id), 2) end
    os.execute("rm -rf " .. shell.quote(self:data_dir(id)))
    local conf = self._confs[id] or {}
    conf.join = true
    assert(clusterfile.write(self._files[id], conf))
    return self:start(id)
end

--- Whether node id's process runs (reaps it if it has exited). Never waits.
function Cluster:running(id)
    local pid = self._procs[id]
    if not pid then return false end
    local how, what = core.proc_wait(pid, 0)
    if how then
        self._exits[id] = format("%s %s", how, tostring(what))
        self._procs[id] = nil
        if self._client then self._client:close() end
        return false
    end
    return true
end

--- Send a signal to node id: "KILL" (default) and "TERM"/"INT" wait until the process has
-- exited (TERM: up to STOP_GRACE_MS, then KILL: helios.util.process.stop); "STOP"/"CONT"
-- return at once. The wait yields when called in a coroutine on the loop, blocks otherwise.
-- @return how it ended ("exited", status | "signaled", name), for KILL/TERM/INT
function Cluster:kill(id, sig)
    check_id(self, id, "cl:kill(id[, signal])")
    sig = sig or "KILL"
    local pid = self._procs[id]
    if not pid then return nil, "not_running", id end
    if sig == "STOP" or sig == "CONT" then
        core.proc_kill(pid, sig)
        return true
    end
    local how, what = process.stop(pid, sig, sig == "KILL" and process.KILL_WAIT_MS
                                                or M.STOP_GRACE_MS)
    self._procs[id] = nil
    if self._client then self._client:close() end
    return how, what
end

--- SIGSTOP / SIGCONT node id.
function Cluster:pause(id) return self:kill(id, "STOP") end
function Cluster:resume(id) return self:kill(id, "CONT") end

--- Cut every link between a node of group a and a node of group b (both directions):
-- open connections are closed and new ones refused until cl:heal().
function Cluster:partition(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then
        error("Usage: cl:partition({ ids }, { ids })", 2)
    end
    if not self._proxy_pid then error("cl:partition: this cluster has no proxies", 2) end
    for _, x in ipairs(a) do
        check_id(self, x, "cl:partition")
        for _, y in ipairs(b) do
            check_id(self, y, "cl:partition")
            proxy_cmd(self, format("cut %s %s", x, y))
        end
    end
end

--- Cut only what each node of group a dials to reach each node of group b (the proxy of
-- the link a->b): b still reaches a. A one-way cut, as far as TCP allows: a node answers
-- on the connection it was dialed on, so b's messages to a and a's replies still flow.
function Cluster:partition_oneway(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then
        error("Usage: cl:partition_oneway({ ids }, { ids })", 2)
    end
    if not self._proxy_pid then error("cl:partition_oneway: this cluster has no proxies", 2) end
    for _, x in ipairs(a) do
        check_id(self, x, "cl:partition_oneway")
        for _, y in ipairs(b) do
            check_id(self, y, "cl:partition_oneway")
            proxy_cmd(self, format("cut1 %s %s", x, y))
        end
    end
end

--- Cut node id off from every other node.
function Cluster:isolate(id)
    local others = {}
    for _, o in ipairs(self._ids) do if o ~= id then others[#others + 1] = o end end
    self:partition({ id }, others)
end

--- Restore every link.
function Cluster:heal()
    if self._proxy_pid then proxy_cmd(self, "heal") end
end

--- A helios.client cluster client of every node's control socket (shared, cached).
function Cluster:client()
    if not self._client then
        self._client = client.cluster(self._sockets, { timeout_ms = 1000, attempt_ms = 1500 })
    end
    return self._client
end

--- node:status() of node id through its control socket, or nil, code, detail.
function Cluster:status(id, timeout_ms)
    check_id(self, id, "cl:status(id)")
    if not self._procs[id] then return nil, "not_running", id end
    return self:client():status(id, timeout_ms or 1000)
end

--- Wait until pred() returns a true value (polled every 20 ms) and return that value.
-- Raises "timed out after N ms waiting for <what>" with the nodes' recent logs. Yields
-- when called in a coroutine on the loop, blocks otherwise.
function Cluster:wait(pred, timeout_ms, what)
    if type(pred) ~= "function" then error("Usage: cl:wait(pred[, timeout_ms[, what]])", 2) end
    timeout_ms = timeout_ms or 10000
    local deadline = clock_ms() + timeout_ms
    while true do
        local v = pred()
        if v then return v end
        if clock_ms() >= deadline then
            error(format("timed out after %d ms waiting for %s\n%s", timeout_ms,
                what or "a condition", self:logs(15)), 2)
        end
        loop.wait(20)
    end
end

--- The node that leads now (the highest term among running nodes that say so) and its
-- status. Waits up to timeout_ms (default 10000) and raises then, or with quiet = true
-- returns nil. Yields when called in a coroutine on the loop, blocks otherwise.
function Cluster:leader(timeout_ms, quiet)
    timeout_ms = timeout_ms or 10000
    local deadline = clock_ms() + timeout_ms
    while true do
        local best, best_st
        for _, id in ipairs(self._ids) do
            if self:running(id) then
                local st = self:client():status(id, 500)
                if st and st.role == "leader" and (not best_st or st.term > best_st.term) then
                    best, best_st = id, st
                end
            end
        end
        if best then return best, best_st end
        if clock_ms() >= deadline then
            if quiet then return nil end
            error(format("no leader within %d ms\n%s", timeout_ms, self:logs(15)), 2)
        end
        loop.wait(20)
    end
end

--- Wait until every running node (or those in ids) has applied through index (cl:wait).
function Cluster:wait_applied(index, timeout_ms, ids)
    return self:wait(function()
        for _, id in ipairs(ids or self._ids) do
            if self._procs[id] then
                local st = self:status(id, 500)
                if not st or st.applied_index < index then return false end
            end
        end
        return true
    end, timeout_ms, format("every node to apply #%d", index))
end

--- The last lines of every node's log, as one string (for failure messages).
function Cluster:logs(lines)
    lines = lines or 30
    local parts = {}
    for _, id in ipairs(self._ids) do
        local all = {}
        local f = io.open(self:log_path(id))
        if f then
            for l in f:lines() do
                all[#all + 1] = l
                if #all > lines then table.remove(all, 1) end
            end
            f:close()
        end
        local pid = self._procs[id]
        parts[#parts + 1] = format("---- %s (%s):\n%s", self:log_path(id),
            self:running(id) and ("running, pid " .. pid)
                or ("not running: " .. (self._exits[id] or "stopped by the test")),
            concat(all, "\n"))
    end
    return concat(parts, "\n")
end

--- Stop everything: every node (SIGCONT, SIGTERM, SIGKILL after STOP_GRACE_MS), the proxy
-- process, and remove the temporary directory (kept if HELIOS_KEEP_TMP is set). Safe to
-- call twice and after a failed start. Yields when called in a coroutine on the loop,
-- blocks otherwise.
function Cluster:stop()
    if self._client then self._client:close() end
    local pids = {}
    for _, id in ipairs(self._ids) do
        if self._procs[id] then pids[#pids + 1] = self._procs[id] end
        self._procs[id] = nil
    end
    process.stop_all(pids, "TERM", M.STOP_GRACE_MS)
    if self._proxy_pid then
        pcall(proxy_cmd, self, "quit")
        process.stop(self._proxy_pid, false, 2000) -- "quit" asked it to exit

        self._proxy_in:close()
        self._proxy_out:close()
        self._proxy_pid = nil
    end
    if self._dir and not os.getenv("HELIOS_KEEP_TMP") then
        os.execute("rm -rf " .. shell.quote(self._dir))
    end
    self._stopped = true
end

--- Run body(cl) on a new cluster; always stops it. A failure is re-raised with the
-- nodes' recent logs appended.
function M.with_cluster(opts, body)
    local cl = M.cluster(opts)
    local logs
    local ok, err = xpcall(function() return body(cl) end, function(e)
        logs = cl:logs(40)
        return traceback(tostring(e), 2)
    end)
    cl:stop()
    if not ok then error(err .. "\n" .. logs, 0) end
end

return M
