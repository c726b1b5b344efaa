--- spec/bench/etcd.lua: a 3-member etcd cluster on loopback and our load generator for it
-- (spec/bench/etcd_load.go), for the benchmarks that compare Helios with etcd
-- (tools/bench_compare.lua, spec/bench/reads.lua); require("spec.bench.etcd") from the
-- repository root.
--
--   local etcd = require("spec.bench.etcd")
--   local gen = assert(etcd.generator())       -- builds build/etcd_load (offline)
--   local ec = etcd.cluster()                  -- 3 members, default timing; waits healthy
--   local i = ec:leader()                      -- 1..3
--   local r = etcd.load(gen, ec:endpoint(i), "put", 64, 3)   -- etcd.parse's table
--   local f = etcd.failover(gen, ec, 5000)     -- SIGKILL the leader: { recovered_ms, ... }
--   ec:stop()                                  -- every member, and the directory
--
-- Needs etcd (Debian: etcd-server), etcdctl (etcd-client), and to build the generator go
-- (golang-go) with Debian's etcd client sources (golang-etcd-server-dev), which it builds
-- from without a network: GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off.

local core = require("helios.core")
local proc = require("spec.bench.proc")
local shell = require("helios.util.shell")

local format, tostring, tonumber, ipairs, concat = string.format, tostring, tonumber, ipairs,
    table.concat
local clock_ms = core.clock_ms

local M = {}

--- Debian's etcd client sources, which the generator is built from.
M.GOPATH = "/usr/share/gocode"
M.SOURCE = "spec/bench/etcd_load.go"
M.BINARY = "build/etcd_load"

--- The fields of the generator's line ("etcd_load op=put clients=64 ... p99_ms=4.2"): a
-- table of them (numbers as numbers), or nil, a reason with the output.
function M.parse(out)
    for line in (out or ""):gmatch("[^\n]+") do
        if line:match("^etcd_load ") then
            local r = {}
            for k, v in line:gmatch('([%w_]+)=("[^"]*")') do r[k] = v:sub(2, -2) end
            for k, v in (line:gsub('[%w_]+="[^"]*"', "")):gmatch("([%w_]+)=(%S+)") do
                r[k] = tonumber(v) or v
            end
            return r
        end
    end
    return nil, "no result line in:\n" .. tostring(out)
end

--- Build the generator (go build is cached in build/gocache: fast after the first time).
-- @return its path, or nil, why (go or the etcd client sources missing, a failed build)
function M.generator()
    if not proc.have("go") then return nil, "go is not installed (Debian: golang-go)" end
    local f = io.open(M.GOPATH .. "/src/go.etcd.io/etcd/clientv3/client.go")
    if not f then
        return nil, "the etcd client sources are not installed (Debian: golang-etcd-server-dev)"
    end
    f:close()
    os.execute("mkdir -p build")
    local cwd = proc.first_line({ "pwd" })
    local out, how, what = proc.run({ "go", "build", "-o", M.BINARY, M.SOURCE },
        { timeout_ms = 300000, env = { GOPATH = M.GOPATH, GO111MODULE = "off", GOFLAGS = "",
                                       GOPROXY = "off", GOCACHE = cwd .. "/build/gocache" } })
    if how ~= "exited" or what ~= 0 then
        return nil, format("go build %s: %s %s\n%s", M.SOURCE, how, tostring(what), out)
    end
    return M.BINARY
end

local Cluster = {}
Cluster.__index = Cluster

local function member_argv(self, i)
    local m = self.members[i]
    return { self.etcd, "--name", m.name, "--data-dir", self.dir .. "/" .. m.name,
        "--listen-client-urls", "http://" .. m.client,
        "--advertise-client-urls", "http://" .. m.client,
        "--listen-peer-urls", "http://" .. m.peer,
        "--initial-advertise-peer-urls", "http://" .. m.peer,
        "--initial-cluster", self.initial, "--initial-cluster-state", "new",
        "--initial-cluster-token", "helios-bench" }
end

--- Start a 3-member cluster in a new temporary directory (etcd's default timing: 100 ms
-- heartbeats, 1000 ms election timeout; fsync on, as always in etcd), and wait until every
-- member is healthy. opts.etcd: the binary (default "etcd" on the PATH); opts.tmpdir: where
-- the directory is made (default: where os.tmpname() points, /tmp).
function M.cluster(opts)
    opts = opts or {}
    local self = setmetatable({ etcd = opts.etcd or "etcd", members = {} }, Cluster)
    self.dir = proc.tempdir(opts.tmpdir)
    local initial = {}
    for i = 1, 3 do
        self.members[i] = { name = "e" .. i,
            client = format("127.0.0.1:%d", assert(core.free_port())),
            peer = format("127.0.0.1:%d", assert(core.free_port())) }
        initial[i] = format("e%d=http://%s", i, self.members[i].peer)
    end
    self.initial = concat(initial, ",")
    local ok, err = pcall(function()
        for i = 1, 3 do self:start(i) end
        self:wait_healthy(30000)
    end)
    if not ok then
        self:stop()
        error(err, 0)
    end
    return self
end

--- Start member i (again: its data directory is reused, the cluster flags ignored).
function Cluster:start(i)
    local m = self.members[i]
    m.pid = proc.spawn(member_argv(self, i), { log = self.dir .. "/" .. m.name .. ".log" })
end

function Cluster:endpoint(i) return self.members[i].client end
function Cluster:pid(i) return self.members[i].pid end

--- The client addresses, comma-separated: all members, or all but member `except`.
function Cluster:endpoints(except)
    local eps = {}
    for i, m in ipairs(self.members) do
        if i ~= except then eps[#eps + 1] = m.client end
    end
    return concat(eps, ",")
end

local function etcdctl(args, timeout_ms)
    local argv = { "etcdctl", "--command-timeout=2s" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local out, how, what = proc.run(argv, { timeout_ms = timeout_ms or 10000,
                                            env = { ETCDCTL_API = "3" } })
    return out, how == "exited" and what == 0
end

--- Wait until every member answers healthy (raises after timeout_ms).
function Cluster:wait_healthy(timeout_ms)
    local deadline = clock_ms() + timeout_ms
    while true do
        local out, ok = etcdctl({ "--endpoints=" .. self:endpoints(), "endpoint", "health" })
        if ok then return true end
        for i, m in ipairs(self.members) do
            if m.pid and core.proc_wait(m.pid, 0) then
                m.pid = nil
                error(format("etcd member %d exited:\n%s", i, self:log_tail(i)), 0)
            end
        end
        if clock_ms() > deadline then
            error(format("etcd not healthy within %d ms:\n%s", timeout_ms, out), 0)
        end
        proc.sleep(100)
    end
end

--- The member that leads (1..3): asks each for its status; waits up to timeout_ms
-- (default 10000) for one that says so, then raises.
function Cluster:leader(timeout_ms)
    local deadline = clock_ms() + (timeout_ms or 10000)
    while true do
        for i, m in ipairs(self.members) do
            if m.pid then
                -- simple: "addr, id, version, db size, is leader, is learner, term, ..."
                local out = etcdctl({ "--endpoints=" .. m.client, "endpoint", "status",
                                      "-w", "simple" })
                local fields = {}
                for fld in out:gmatch("([^,\n]+)") do fields[#fields + 1] = fld:match("^%s*(.-)%s*$") end
                if fields[5] == "true" then return i end
            end
        end
        if clock_ms() > deadline then error("no etcd leader within the timeout", 0) end
        proc.sleep(50)
    end
end

--- The last lines of member i's log.
function Cluster:log_tail(i, lines)
    local f = io.open(self.dir .. "/" .. self.members[i].name .. ".log")
    if not f then return "" end
    local all = {}
    for l in f:lines() do
        all[#all + 1] = l
        if #all > (lines or 15) then table.remove(all, 1) end
    end
    f:close()
    return concat(all, "\n")
end

--- Stop every member (TERM, KILL after 5 s) and remove the directory.
function Cluster:stop()
    for _, m in ipairs(self.members) do
        if m.pid then proc.stop(m.pid, "TERM", 5000) end
        m.pid = nil
    end
    if self.dir and not os.getenv("HELIOS_KEEP_TMP") then
        os.execute("rm -rf " .. shell.quote(self.dir))
    end
    self.dir = nil
end

--- One closed-loop run of the generator: op "put", "get-lin" or "get-ser" at `clients`
-- for `seconds` (after a 500 ms warm-up) against endpoints: etcd.parse's table
-- ({ per_s, p50_ms, p99_ms, ok, errors, ... }), or raises.
function M.load(gen, endpoints, op, clients, seconds, value_bytes)
    local argv = { gen, "-endpoints", endpoints, "-op", op, "-clients", tostring(clients),
                   "-seconds", tostring(seconds), "-value-bytes", tostring(value_bytes or 100),
                   "-max", format("%ds", seconds + 60) }
    local out, how, what = proc.run(argv, { timeout_ms = (seconds + 70) * 1000 })
    local r, why = M.parse(out)
    if not r or how ~= "exited" or what ~= 0 then
        error(format("%s: %s %s: %s", concat(argv, " "), how, tostring(what), why or out), 0)
    end
    return r
end

--- SIGKILL the leader and time until a put succeeds through the other members (the
-- generator's failover op: a put every 5 ms, each attempt bounded by 100 ms); then start
-- the killed member again and wait until the cluster is healthy. { recovered_ms, tries }.
function M.failover(gen, ec, timeout_ms)
    local l = ec:leader()
    local pid = ec:pid(l)
    local out, how, what = proc.run({ gen, "-endpoints", ec:endpoints(l), "-op", "failover",
        "-kill-pid", tostring(pid), "-max", format("%dms", timeout_ms) },
        { timeout_ms = timeout_ms + 10000 })
    -- Reap the member the generator killed (or kill it: it may not have got to it).
    proc.stop(pid, "KILL")
    ec.members[l].pid = nil
    local r, why = M.parse(out)
    ec:start(l)
    ec:wait_healthy(30000)
    if not r or how ~= "exited" or what ~= 0 then
        error(format("etcd failover: %s %s: %s", how, tostring(what), why or out), 0)
    end
    return r
end

return M
