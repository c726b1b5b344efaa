--- helios.cli: the `helios` command line.
--
-- bin/helios is a thin launcher around this module; tests can call it directly and capture
-- what it prints:
--
--   local cli = require("helios.cli")
--   local code = cli.main({ "sim", "--nodes", "3", "--seed", "7" })   -- 0 on success
--   local lines = {}
--   cli.main({ "sim" }, function(s) lines[#lines + 1] = s end)        -- capture stdout
--
-- Commands: `cluster` (a local cluster of node processes), `node` (one node of a cluster
-- file), `inspect` (a data directory, offline), `sim` (a simulated cluster on virtual
-- time). Usage lists only the commands that exist.

local format, concat = string.format, table.concat
local floor = math.floor
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local error, ipairs, each, pcall, require = error, ipairs, pairs, pcall, require
local loadfile, setfenv = loadfile, setfenv
local setmetatable, tonumber, tostring, type = setmetatable, tonumber, tostring, type
local io = io

local M = {}

M.version = require("helios.core").version

--- Exit status of `helios node` stopped by on_fsm_error = "stop" (a supervisor can tell it
-- from a crash: restarting replays the same entry).
M.EXIT_FSM_STOPPED = 3
--- Exit status of `helios node` refused by the atlas_modules check: its cluster file loads
-- other modules than the ones the cluster's log records (docs/atlas.md, "Modules").
M.EXIT_MODULES_MISMATCH = 4

local USAGE = [[
Usage: helios <command> [options]

Commands:
  cluster [--nodes N]          a local cluster of node processes on loopback, data under
                               ./data: shows who leads and what commits; Ctrl-C stops it
  node --config FILE --id ID   run one node of a cluster file
  inspect DATA_DIR             check a node's data directory offline (exit 1 if damaged,
                               3 if it is not a data directory)
  peer add|remove|list         change or show a running cluster's members (through a
                               node's control socket)
  status [--data DIR | SOCKET...]  a table of every node of a running cluster: role, term,
                               commit, applied, lag, last contact (control sockets)
  console SOCKET | --data DIR --id ID
                               an interactive Lua console inside a running node
  transfer [ID]                hand a running cluster's leadership to ID (or the most
                               up-to-date voter)
  recover --data DIR --id ID   disaster recovery, offline: make that node the only voter
  sim [--nodes N] [--seed N]   run a simulated cluster on virtual time: election, commits,
                               the leader's crash, failover, and the old leader rejoining
  sim --fsm MODULE [--faults L]  run your state machine in the simulator under faults
  help                         show this text

Options:
  -h, --help                   show this text ("helios <command> --help" for a command's)
  --version                    print the version
]]

local SIM_USAGE = [[
Usage: helios sim [--nodes N] [--seed N]
       helios sim --fsm MODULE [--nodes N] [--seed N] [--faults LIST] [--commands FILE]

Runs a Helios Raft cluster inside this process on virtual time (helios.sim) and narrates it.
Every Raft invariant is checked after every simulated step.

Without --fsm (or --faults): a scripted story with a built-in state machine (a running
total): a leader is elected, entries commit, the leader crashes, another takes over, more
entries commit, and the old leader restarts and catches up.

With --fsm MODULE: your state machine (a module whose new() returns it, as in a cluster
file) under faults drawn from the seed: it proposes the module's sim_commands (a list of
command strings, or a function(i) returning the i-th command, nil to stop) or the lines of
--commands FILE, one at a time, while nodes crash and restart and the network partitions,
loses, delays, duplicates and reorders messages; at most a minority is ever cut off, so the
cluster must keep committing. At the end every fault is healed, every node catches up, the
invariants are checked once more and, if the FSM has snapshot(), every replica's snapshot
must be the same bytes. MODULE is looked up in the current directory, then --lua-path,
then LUA_PATH; a path ending in .lua is loaded as a file.

Options:
  --nodes N          cluster size, 3 to 64 (default 3)
  --seed N           seed of every random choice (default 1): the same seed replays the run
  --fsm MODULE       run your state machine (see above)
  --faults LIST      comma-separated: crash, partition, drop, delay, duplicate, reorder, or
                     all (the default with --fsm) or none
  --commands FILE    the commands to propose, one a line (# comments and blank lines skipped)
  --count N          how many commands to take from a sim_commands function (default 30)
  --lua-path PATH    where else to look for MODULE (directories or Lua path templates)
  -h, --help         show this text

Exit status 0 if every check held, 1 if not (with the command that replays the run).
]]

-- Options of `helios sim`: name -> { default, min, max } (kind "string": any text).
local SIM_OPTIONS = {
    nodes = { default = 3, min = 3, max = 64 },
    seed = { default = 1, min = 0, max = 2 ^ 53 },
    fsm = { kind = "string" },
    faults = { kind = "string" },
    commands = { kind = "string" },
    count = { default = 30, min = 1, max = 100000 },
    ["lua-path"] = { kind = "string" },
}

-- Fault kinds of `helios sim --faults`, in the order they are listed.
local SIM_FAULTS = { "crash", "partition", "drop", "delay", "duplicate", "reorder" }

-- How long (virtual ms) the demo waits for an election or a catch-up before giving up.
local WAIT_MS = 10000

--- Parse `--name value` / `--name=value` integer options.
-- @treturn table|nil options, or nil and a message
local function parse_options(argv, first, spec)
    local opts = { given = {} } -- given[name]: on the command line, not a default
    for name, o in each(spec) do
        if type(o) == "table" then opts[name] = o.default end
    end
    local i = first
    while argv[i] ~= nil do
        local a = argv[i]
        if a == "-h" or a == "--help" then
            opts.help = true
            i = i + 1
        else
            local name, value = a:match("^%-%-([%w_-]+)=(.*)$")
            if not name then
                name = a:match("^%-%-([%w_-]+)$")
                value = argv[i + 1]
                i = i + 1
            end
            local o = name and type(spec[name]) == "table" and spec[name]
            if not o then
                if a:sub(1, 1) == "-" then return nil, format("unknown option '%s'", a) end
                if not spec[1] then return nil, format("unexpected argument '%s'", a) end
                -- Positional arguments, where the command takes some (spec[1] = true); i
                -- already moved past a (as past the name of an option).
                opts[#opts + 1] = a
                goto continue
            end
            if o.kind == "flag" then
                if a:find("=", 1, true) then return nil, format("--%s takes no value", name) end
                opts[name] = true
                opts.given[name] = true
                goto continue
            end
            if value == nil then return nil, format("--%s needs a value", name) end
            opts.given[name] = true
            if o.kind == "string" then
                opts[name] = value
                i = i + 1
                goto continue
            end
            local n = value:match("^%d+$") and tonumber(value)
            if not n or n < o.min or n > o.max then
                return nil, format("--%s expects an integer from %d to %.0f, got '%s'", name,
                    o.min, o.max, value)
            end
            opts[name] = n
            i = i + 1
        end
        ::continue::
    end
    return opts
end

-- The demo's state machine: a running total. Every replica must agree on every total, which
-- makes a divergence visible in the output, not only in the invariant checks.
local Total = {}
Total.__index = Total
Total.__name = "helios.cli.total"

function Total:__tostring()
    return format("helios.cli.total(%d after %d commands)", self.total, self.count)
end

local function new_total()
    return setmetatable({ total = 0, count = 0 }, Total)
end

function Total:apply(command)
    local n = tonumber(command:match("^add (%-?%d+)$"))
    if n then
        self.total = self.total + n
        self.count = self.count + 1
    end
    return self.total
end

function Total:snapshot()
    return format("%d %d", self.total, self.count)
end

function Total:restore(data)
    local total, count = data:match("^(%-?%d+) (%d+)$")
    self.total, self.count = tonumber(total), tonumber(count)
end

-- The end of a simulated run: half a second more, the invariants, then one line per node
-- (with `extra(id)` appended when given).
local function final_state(c, say, out, extra)
    c:run_for(500)
    c:check()
    say("final state:")
    for _, id in ipairs(c:ids()) do
        local st = c:node(id):status()
        local applied = tonumber(st.applied_index)
        out(format("             %-4s %-9s term %-3d commit #%-4d applied #%s\n", id,
            tostring(st.role), tonumber(st.term), tonumber(st.commit_index),
            extra and format("%-4d%s", applied, extra(id)) or tostring(applied)))
    end
end

--- Run the failover demo; raises on failure with a message for the user.
local function run_sim(sim, opts, out)
    local fsms = {} -- node id -> its current FSM (a restart gets a fresh one)
    local c = sim.cluster{
        n = opts.nodes,
        seed = opts.seed,
        fsm = function(id)
            fsms[id] = new_total()
            return fsms[id]
        end,
    }

    local function say(fmt, ...)
        out(format("[%6d ms] ", floor(tonumber(c:now()))) .. format(fmt, ...) .. "\n")
    end
    local function term_of(id)
        local term = c:node(id):state()
        return tonumber(term)
    end
    local function wait(what, cond)
        if not c:run_until(cond, WAIT_MS) then
            error(format("%s did not happen within %d ms of virtual time", what, WAIT_MS), 0)
        end
    end

    local adds = 0
    local function commit(k)
        for _ = 1, k do
            adds = adds + 1
            local cmd = format("add %d", adds)
            local index, term, result = c:apply(cmd, WAIT_MS)
            if not index then
                error(format("apply '%s' failed: %s %s", cmd, tostring(term), tostring(result)),
                    0)
            end
            say("committed #%-3d %-8s term %-2d total = %s", index, cmd, term, tostring(result))
        end
    end

    out(format("helios sim: %d nodes (%s), seed %d, virtual time\n", opts.nodes,
        concat(c:ids(), " "), opts.seed))

    wait("an election", function() return c:leader() end)
    local leader = c:leader()
    say("%s is elected leader (term %d)", leader, term_of(leader))
    commit(3)

    local old = leader
    c:crash(old)
    say("%s crashes (it was the leader)", old)
    local crashed_at = tonumber(c:now())
    wait("a new election", function()
        local l = c:leader()
        return l ~= nil and l ~= old
    end)
    leader = c:leader()
    say("%s is elected leader (term %d), %d ms after the crash", leader, term_of(leader),
        tonumber(c:now()) - crashed_at)
    commit(3)

    c:restart(old)
    say("%s restarts with an empty state machine; its log survived on its simulated disk", old)
    local target = tonumber(c:node(leader):status().commit_index)
    wait(old .. " catching up", function()
        return tonumber(c:node(old):status().applied_index) >= target
    end)
    local fsm = fsms[old]
    say("%s caught up: applied through #%d, %d commands re-applied, total = %d", old, target,
        fsm.count, fsm.total)

    final_state(c, say, out, function(id)
        return format(" total = %d", fsms[id] and fsms[id].total or 0)
    end)
    out("invariants held: election safety, log matching, leader completeness, "
        .. "state machine safety\n")
end

-- ---------------------------------------------------------------------------------------
-- helios sim --fsm: a user's state machine under faults

-- A small deterministic generator for the fault schedule (an LCG: every value exact in a
-- double), so the schedule replays from --seed and leaves math.random alone.
local function lcg(seed)
    local state = seed % 4294967296
    return function(n)
        state = (1664525 * state + 1013904223) % 4294967296
        return floor(state / 65536) % n + 1
    end
end

--- Parse --faults: a set, or nil and a message.
local function parse_faults(text)
    local set = {}
    for item in text:gmatch("[^,%s]+") do
        if item == "all" then
            for _, f in ipairs(SIM_FAULTS) do set[f] = true end
        elseif item ~= "none" then
            local known = false
            for _, f in ipairs(SIM_FAULTS) do known = known or f == item end
            if not known then
                return nil, format("--faults: unknown fault '%s' (known: %s, all, none)", item,
                    concat(SIM_FAULTS, ", "))
            end
            set[item] = true
        end
    end
    return set
end

--- Load the FSM module of `helios sim --fsm`: the module, or nil and a message.
local function load_sim_fsm(name, lua_path)
    local mod, loaded, lerr
    if name:match("%.lua$") then
        local chunk, cerr = loadfile(name)
        if not chunk then return nil, format("--fsm %s: %s", name, tostring(cerr)) end
        loaded, mod = pcall(chunk)
        if not loaded then return nil, format("--fsm %s: %s", name, tostring(mod)) end
    else
        package.path = M.fsm_search_path("./x", lua_path, package.path)
        if not (package.loaded[name] or package.searchpath(name, package.path)
                or package.searchpath(name, package.cpath)) then
            return nil, format("--fsm: module %q not found (looked in the current directory, "
                .. "then %sLUA_PATH; see --lua-path)", name,
                lua_path and ("--lua-path " .. lua_path .. ", ") or "")
        end
        loaded, lerr = pcall(require, name)
        if not loaded then
            return nil, format("--fsm: module %q cannot be loaded: %s", name, tostring(lerr))
        end
        mod = lerr
    end
    if type(mod) ~= "table" or type(mod.new) ~= "function" then
        return nil, format("--fsm %s: the module must return a table with a new() function "
            .. "(got %s)", name, require("helios.node").describe_value(mod))
    end
    return mod
end

--- The commands to propose: a list of strings, or nil and a message.
local function sim_commands(mod, name, opts)
    local list = {}
    if opts.commands then
        local f, ferr = io.open(opts.commands)
        if not f then return nil, "--commands: " .. tostring(ferr) end
        for line in f:lines() do
            if line:match("%S") and not line:match("^%s*#") then list[#list + 1] = line end
        end
        f:close()
    elseif mod == nil then
        for i = 1, 12 do list[i] = format("add %d", i) end
    elseif type(mod.sim_commands) == "table" then
        for i, c in ipairs(mod.sim_commands) do
            if type(c) ~= "string" then
                return nil, format("--fsm %s: sim_commands[%d] must be a string (got %s)", name,
                    i, require("helios.node").describe_value(c))
            end
            list[i] = c
        end
    elseif type(mod.sim_commands) == "function" then
        for i = 1, opts.count do
            local ok, c = pcall(mod.sim_commands, i)
            if not ok then
                return nil, format("--fsm %s: sim_commands(%d) failed: %s", name, i, tostring(c))
            end
            if c == nil then break end
            if type(c) ~= "string" then
                return nil, format("--fsm %s: sim_commands(%d) must return a string or nil "
                    .. "(got %s)", name, i, require("helios.node").describe_value(c))
            end
            list[i] = c
        end
    else
        return nil, format("--fsm %s: the module has no sim_commands (a list of commands, or a "
            .. "function(i) returning the i-th); give --commands FILE", name)
    end
    if #list == 0 then return nil, "no commands to propose" end
    return list
end

--- Run a state machine under faults; raises on failure with a message for the user.
local function run_fault_sim(sim, opts, out, mod, commands, faults)
    local n = opts.nodes
    local minority = floor((n - 1) / 2) -- what may be cut off while a majority goes on
    local fsms = {}
    local c = sim.cluster{
        n = n,
        seed = opts.seed,
        fsm = function(id)
            local fsm = mod and mod.new() or new_total()
            fsms[id] = fsm
            return fsm
        end,
    }
    local rand = lcg(opts.seed)
    local function say(fmt, ...)
        out(format("[%6d ms] ", floor(tonumber(c:now()))) .. format(fmt, ...) .. "\n")
    end
    local names = {}
    for _, f in ipairs(SIM_FAULTS) do if faults[f] then names[#names + 1] = f end end
    out(format("helios sim: %d nodes (%s), seed %d, fsm %s, faults %s, %d commands\n", n,
        concat(c:ids(), " "), opts.seed, opts.fsm or "(built-in running total)",
        #names > 0 and concat(names, ",") or "none", #commands))

    if faults.drop or faults.delay or faults.duplicate or faults.reorder then
        local net = { drop = faults.drop and 0.05 or 0, duplicate = faults.duplicate and 0.02 or 0,
                      delay_ms = faults.delay and { 1, 40 } or nil, reorder = faults.reorder }
        c:set_network(net)
        local what = {}
        if faults.drop then what[#what + 1] = "5% of messages lost" end
        if faults.delay then what[#what + 1] = "delays of 1..40 ms" end
        if faults.duplicate then what[#what + 1] = "2% duplicated" end
        if faults.reorder then what[#what + 1] = "reordered" end
        say("network: %s", concat(what, ", "))
    end

    local crashed, cut = {}, {} -- id -> true: crashed nodes; the partitioned minority
    local function count(t) local k = 0 for _ in each(t) do k = k + 1 end return k end
    local function out_of_majority()
        local k = count(crashed)
        for id in each(cut) do if not crashed[id] then k = k + 1 end end
        return k
    end
    local function pick(list) return list[rand(#list)] end
    local leader_seen, term_seen
    local function note_leader()
        local l = c:leader()
        if l and (l ~= leader_seen or c:node(l):state() ~= term_seen) then
            leader_seen, term_seen = l, c:node(l):state()
            say("%s is elected leader (term %d)", l, term_seen)
        end
        return l
    end
    local function wait_leader()
        if not c:run_until(note_leader, WAIT_MS) then
            error(format("no leader within %d ms of virtual time although a majority is up "
                .. "and connected", WAIT_MS), 0)
        end
    end

    local function inject()
        local actions = {}
        local alive = {}
        for _, id in ipairs(c:ids()) do if not crashed[id] then alive[#alive + 1] = id end end
        if faults.crash and out_of_majority() < minority then actions[#actions + 1] = "crash" end
        if faults.crash and count(crashed) > 0 then actions[#actions + 1] = "restart" end
        if faults.partition and count(cut) == 0 and out_of_majority() < minority then
            actions[#actions + 1] = "partition"
        end
        if faults.partition and count(cut) > 0 then actions[#actions + 1] = "heal" end
        if #actions == 0 then return end
        local action = pick(actions)
        local leader = c:leader()
        if action == "crash" then
            local id = (leader and not cut[leader] and rand(2) == 1) and leader or pick(alive)
            if cut[id] then id = pick(alive) end
            if cut[id] then return end
            c:crash(id)
            crashed[id] = true
            say("%s crashes%s", id, id == leader and " (it was the leader)" or "")
        elseif action == "restart" then
            local list = {}
            for _, id in ipairs(c:ids()) do if crashed[id] then list[#list + 1] = id end end
            local id = pick(list)
            assert(c:restart(id))
            crashed[id] = nil
            say("%s restarts with a fresh state machine; its log survived on its simulated "
                .. "disk", id)
        elseif action == "partition" then
            local size = rand(minority - out_of_majority())
            local group, rest = {}, {}
            local candidates = {}
            for _, id in ipairs(c:ids()) do if not crashed[id] then candidates[#candidates + 1] = id end end
            if leader and rand(2) == 1 then group[1] = leader; cut[leader] = true end
            while #group < size do
                local id = pick(candidates)
                if not cut[id] then group[#group + 1] = id; cut[id] = true end
            end
            for _, id in ipairs(c:ids()) do if not cut[id] then rest[#rest + 1] = id end end
            c:partition(group, rest)
            say("the network partitions: {%s} | {%s}", concat(group, " "), concat(rest, " "))
        else
            c:heal()
            cut = {}
            say("the partition heals")
        end
    end

    wait_leader()
    local unknown, raised = 0, 0
    for i, cmd in ipairs(commands) do
        if i > 1 and rand(100) <= 40 then inject() end
        local index, term, result
        for _ = 1, 5 do
            wait_leader()
            index, term, result = c:apply(cmd, 3000)
            note_leader()
            -- Not appended, or overwritten by another leader: it did not commit, so
            -- proposing it again cannot apply it twice.
            if index or term ~= "not_leader" then break end
        end
        if index then
            say("committed #%-4d term %-3d %-24s -> %s", index, term, cmd, tostring(result))
        elseif term == "fsm_error" then
            -- Committed and applied everywhere: the FSM's error is the command's result
            -- (README, "When apply raises"), the same on every replica.
            raised = raised + 1
            say("committed, apply raised: %s -> fsm_error: %s", cmd, tostring(result))
        else
            unknown = unknown + 1
            say("not committed: %s -> %s (%s); outcome unknown, not proposed again", cmd,
                tostring(term), tostring(result))
        end
    end

    say("healing every fault: the network, the partition, the crashed nodes")
    c:set_network{}
    c:heal()
    for _, id in ipairs(c:ids()) do
        if crashed[id] then assert(c:restart(id)); crashed[id] = nil end
    end
    wait_leader()
    -- A no-op of the current term is committed with every new leader; wait until every node
    -- applied what the leader has committed.
    local leader = c:leader()
    local target = tonumber(c:node(leader):status().commit_index)
    if not c:run_until(function()
        for _, id in ipairs(c:ids()) do
            if tonumber(c:node(id):status().applied_index) < target then return false end
        end
        return true
    end, WAIT_MS) then
        error(format("the nodes did not all apply #%d within %d ms of virtual time", target,
            WAIT_MS), 0)
    end
    final_state(c, say, out)
    out("invariants held: election safety, log matching, leader completeness, "
        .. "state machine safety\n")
    local first_id = c:ids()[1]
    if type(fsms[first_id].snapshot) == "function" then
        local want = fsms[first_id]:snapshot()
        for _, id in ipairs(c:ids()) do
            local got = fsms[id]:snapshot()
            if got ~= want then
                error(format("replicas diverge: %s's fsm:snapshot() differs from %s's (the FSM "
                    .. "must be deterministic: same commands, same state)", id, first_id), 0)
            end
        end
        out(format("replicas agree: every node's fsm:snapshot() is the same %d bytes\n",
            type(want) == "string" and #want or 0))
    end
    if unknown > 0 then
        out(format("%d command(s) had an unknown outcome (a timeout under faults); that is "
            .. "allowed, a lost committed entry is not\n", unknown))
    end
    if raised > 0 then
        out(format("%d command(s) raised in apply: their result is fsm_error, the same on "
            .. "every replica\n", raised))
    end
end

-- ---------------------------------------------------------------------------------------
-- helios inspect

local INSPECT_USAGE = [[
Usage: helios inspect <data_dir> [--config FILE]

Reads a node's data directory without changing it (the node may be stopped or running):
prints the metadata (term, vote), every segment with its index range, the snapshots, and
verifies every checksum.

Node ids (the vote, a snapshot's voters) are stored as a 64-bit hash of the id string;
they are printed by name when one of the cluster's ids matches: those of FILE, of the
cluster.lua next to the data directory (the layout of `helios cluster`), and the data
directory's own name (<data_dir>/<id>). Otherwise they are printed in hex.

Exit status: 0 if the directory is sound, 1 if it is damaged (the report names the file
and offset; see "When a node's data is damaged" in the README), 2 for a usage error, 3 if
the path is not a data directory at all (missing, empty, or not a node's).

Options:
  --config FILE   a cluster file whose node ids name the ids in the report
  -h, --help      show this text
]]

-- The node ids of a cluster file, without the checks of clusterfile.load (inspect needs
-- only the names, not the secret): a list, or nil and a message.
local function cluster_ids(file)
    local chunk, lerr = loadfile(file)
    if not chunk then return nil, tostring(lerr) end
    setfenv(chunk, setmetatable({}, { __index = _G }))
    local ok, conf = pcall(chunk)
    if not ok then return nil, format("%s: %s", file, tostring(conf)) end
    if type(conf) ~= "table" or type(conf.nodes) ~= "table" then
        return nil, format("%s: nodes: must be a table of id = \"host:port\"", file)
    end
    local ids = {}
    for id in each(conf.nodes) do
        if type(id) == "string" then ids[#ids + 1] = id end
    end
    table.sort(ids)
    return ids
end

local function run_inspect(argv, out, err)
    local dir, config
    local i = 2
    while argv[i] ~= nil do
        local a = argv[i]
        if a == "-h" or a == "--help" then
            out(INSPECT_USAGE)
            return 0
        elseif a == "--config" or a:match("^%-%-config=") then
            config = a:match("^%-%-config=(.*)$") or argv[i + 1]
            i = i + (a == "--config" and 1 or 0)
        elseif a:sub(1, 1) == "-" or dir ~= nil then
            dir = nil
            break
        else
            dir = a
        end
        i = i + 1
    end
    if dir == nil or (config == nil and argv[i] ~= nil) then
        err("helios inspect: expects one data directory (see 'helios inspect --help')\n")
        return 2
    end
    local names = {}
    local function add(list)
        for _, id in ipairs(list or {}) do names[#names + 1] = id end
    end
    if config then
        local ids, cerr = cluster_ids(config)
        if not ids then
            err(format("helios inspect: --config %s\n", cerr))
            return 2
        end
        add(ids)
    end
    local trimmed = dir:gsub("/+$", "")
    local parent, base = trimmed:match("^(.*)/([^/]+)$")
    if not base then parent, base = ".", trimmed end
    names[#names + 1] = base
    local beside = (parent == "" and "" or parent) .. "/cluster.lua"
    local f = not config and io.open(beside)
    if f then
        f:close()
        add((cluster_ids(beside)))
    end
    local core = require("helios.core")
    local ok, report, verdict = core.storage_inspect(dir, names)
    out(report)
    if report ~= "" and report:sub(-1) ~= "\n" then out("\n") end
    local vote = report:match("\nmeta: term %d+, vote (0x%x+) ")
    if vote then
        out(format("note: the vote %s is a node id as stored (the FNV-1a 64 hash of the id "
            .. "string); --config FILE prints it by name\n", vote))
    end
    if verdict == "not_data_dir" then return 3 end
    return ok and 0 or 1
end

-- ---------------------------------------------------------------------------------------
-- helios node

local NODE_USAGE = [[
Usage: helios node --config FILE --id ID [--lua-path PATH] [--join] [--listen ADDR]
                   [--client-listen ADDR] [--max-clients N] [--log-level LEVEL]
                   [--log-format FORMAT] [--log-file PATH]

Runs one node of the cluster that FILE describes, until SIGTERM or SIGINT (Ctrl-C), which
shut it down cleanly. Its data is under <data_dir>/<ID> (a second node on the same data dir
is refused while the first runs), and its control socket is <data_dir>/<ID>/control.sock
(helios.client). Logs one line per event (docs/logging.md): role, term and leader changes,
membership changes, snapshots taken and installed, InstallSnapshot transfers, commits
(summarized once a second), and what the node reports: errors, refused peers (their address
and why: the secret, the cluster id, the node id), dropped frames, storage errors. A message
that repeats (a peer retrying) is printed once, then summarized once per log_repeat_ms (a
field of the file; default 10000). Lines go to stderr, or to log_file, which SIGHUP reopens
at its path (logrotate); log_level and log_format ("text" or "json": one JSON object a
line) say which and how.

An error raised by the state machine's apply is answered to the client as fsm_error and
logged, and the node goes on. With on_fsm_error = "stop" in the cluster file the node
stops there instead and exits with status 3, naming the entry (index, term) and what to
do; a restart replays that entry and stops again until the FSM is fixed.

With fsm = "helios.atlas.fsm" the node keeps ATLAS, the replicated key-value store, and
with client_listen it serves it to Redis clients (redis-cli) on that port. The modules of
atlas_modules are loaded first (their atlas.command calls register the user commands).
The cluster's log records the module set once; a node whose set differs stops with a
message saying both sets and exits with status 4.

The cluster file is Lua returning a table:

  return {
    cluster_id = "demo",
    nodes = { ["node-1"] = "127.0.0.1:9001", ["node-2"] = "127.0.0.1:9002",
              ["node-3"] = "127.0.0.1:9003" },
    fsm = "helios.fsm.kv",          -- a module whose new() returns the state machine,
                                    -- looked up in the cluster file's directory first
    data_dir = "./data",            -- relative to the cluster file's directory
    secret = "...",                 -- or secret_file = "path"
    election_timeout_ms = 300,      -- other fields: options of raft.new
    max_clients = 10000,            -- connections each of the control socket and the
                                    -- Redis-protocol port takes; beyond, a clear refusal
    -- ATLAS: fsm = "helios.atlas.fsm", then optionally
    client_listen = { ["node-1"] = "127.0.0.1:7001", ... },  -- Redis-protocol ports
    client_password = "...",        -- AUTH on those ports
    atlas_modules = { "bank" },     -- modules of user commands, looked up as fsm is
  }

Options:
  --config FILE     the cluster file
  --id ID           which of its nodes to run
  --lua-path PATH   where else to look for the fsm module (and what it requires): a
                    directory, or Lua path templates ("dir/?.lua;..."), ';'-separated;
                    searched after the cluster file's directory, before LUA_PATH
  --join            start with an empty data dir in no configuration and wait to be
                    added (`helios peer add ID ADDR` on the running cluster); the file's
                    nodes are then only addresses to dial. Ignored once the node has a log
  --listen ADDR     the address to listen on when the file does not list ID (with --join)
  --client-listen ADDR  the node's Redis-protocol port when client_listen of the file
                    does not give one (a node that joins; ATLAS only)
  --max-clients N   open connections the control socket and the Redis-protocol port each
                    take (the file's max_clients; default 10000): a client beyond is
                    told "max number of clients reached" and closed
  --log-level LEVEL debug, info (the default), warn or error: the file's log_level
  --log-format FORMAT  text (the default) or json: the file's log_format
  --log-file PATH   where the lines go instead of stderr ({id}: the node's id): the
                    file's log_file
  -h, --help        show this text

A damaged data directory is refused at start: see "When a node's data is damaged" in the
README, and `helios inspect <data_dir>/<ID>` for what is wrong.
]]

local NODE_OPTIONS = {
    config = { kind = "string" },
    id = { kind = "string" },
    ["lua-path"] = { kind = "string" },
    join = { kind = "flag" },
    listen = { kind = "string" },
    ["client-listen"] = { kind = "string" },
    ["max-clients"] = { min = 1, max = 1000000 },
    ["log-level"] = { kind = "string" },
    ["log-format"] = { kind = "string" },
    ["log-file"] = { kind = "string" },
}

-- Where the README tells an operator what to do about a data dir the node refuses.
M.DAMAGED_HELP = 'the README section "When a node\'s data is damaged"'

--- The package.path to load a cluster file's fsm with: the cluster file's directory first,
-- then --lua-path (directories or templates, ';'-separated), then base (LUA_PATH).
function M.fsm_search_path(config_file, lua_path, base)
    local clusterfile = require("helios.clusterfile")
    local dir = clusterfile.resolve(".", config_file:match("^(.*)/[^/]*$") or ".")
    local parts = { dir .. "/?.lua", dir .. "/?/init.lua" }
    for item in (lua_path or ""):gmatch("[^;]+") do
        if item:find("?", 1, true) then
            parts[#parts + 1] = item
        else
            item = item:gsub("/+$", "")
            parts[#parts + 1] = item .. "/?.lua"
            parts[#parts + 1] = item .. "/?/init.lua"
        end
    end
    return concat(parts, ";") .. ";" .. (base or package.path)
end

--- Load the fsm module of a cluster file (see fsm_search_path); package.path is left
-- extended so that what the module requires later is found the same way.
-- @return the module, or nil and a message naming the file and the field
local function raft_describe(v)
    return require("helios.node").describe_value(v)
end

local function load_fsm_module(name, config_file, lua_path)
    package.path = M.fsm_search_path(config_file, lua_path, package.path)
    local found = package.loaded[name] or package.searchpath(name, package.path)
        or package.searchpath(name, package.cpath)
    if not found then
        local dir = require("helios.clusterfile").resolve(".",
            config_file:match("^(.*)/[^/]*$") or ".")
        return nil, format("%s: fsm: module %q not found (looked in %s/, then %sLUA_PATH; "
            .. "see --lua-path)", config_file, name, dir,
            lua_path and ("--lua-path " .. lua_path .. ", ") or "")
    end
    local loaded, mod = pcall(require, name)
    if not loaded then
        return nil, format("%s: fsm: module %q cannot be loaded: %s", config_file, name,
            tostring(mod))
    end
    if type(mod) ~= "table" or type(mod.new) ~= "function" then
        return nil, format("%s: fsm: module %q has no new() function", config_file, name)
    end
    return mod
end

--- Load the modules of atlas_modules (after load_fsm_module: the same search path); each
-- registers its user commands (atlas.command) as it loads.
-- @return true, or nil and a message naming the file and the field
local function load_atlas_modules(conf, config_file, lua_path)
    for i, name in ipairs(conf.atlas_modules or {}) do
        if not (package.loaded[name] or package.searchpath(name, package.path)
                or package.searchpath(name, package.cpath)) then
            local dir = require("helios.clusterfile").resolve(".",
                config_file:match("^(.*)/[^/]*$") or ".")
            return nil, format("%s: atlas_modules[%d]: module %q not found (looked in %s/, "
                .. "then %sLUA_PATH; see --lua-path)", config_file, i, name, dir,
                lua_path and ("--lua-path " .. lua_path .. ", ") or "")
        end
        local loaded, merr = pcall(require, name)
        if not loaded then
            return nil, format("%s: atlas_modules[%d]: module %q cannot be loaded: %s",
                config_file, i, name, tostring(merr))
        end
    end
    return true
end

--- Run one node; returns the exit status.
--- The console on `helios node`'s terminal (docs/console.md): a session over the node's
-- own control socket, in a coroutine on the loop; nothing when stdin is not a terminal.
-- redirect(write) routes the node's log lines (write nil: back to plain). Returns
-- console() (the session while attached, else nil) and deferred_sig() (a signal the
-- console's Ctrl-C check took that was not Ctrl-C).
function M.node_console(socket, redirect, node)
    local repl = require("helios.console.repl")
    local session, deferred
    local function get() return session end
    local function take()
        local s = deferred
        deferred = nil
        return s
    end
    if not (socket and repl.isatty(0) and repl.isatty(1)) then return get, take end
    local core = require("helios.core")
    -- A chunk that keeps the CPU blocks the loop (and the 50 ms signal timer): the
    -- console's count hook asks here whether Ctrl-C came.
    local checks = require("helios.console").interrupt_checks
    checks[#checks + 1] = function()
        local sig = core.signal_take()
        if sig == "INT" then return true end
        if sig then deferred = sig end
        return false
    end
    require("helios.loop").spawn(function()
        local console_mod = require("helios.console")
        local env = console_mod.env(node)
        local s, code, detail = repl.session({ socket = socket, complete = function(text)
            return console_mod.complete(env, text)
        end })
        if not s then
            io.stderr:write(format("helios node: no console: %s: %s\n", tostring(code),
                                   tostring(detail)))
            return
        end
        session = s
        redirect(function(text) s:say(text) end)
        while not s:step(repl.POLL_MS) do end
        s:close()
        session = nil
        redirect(nil)
        io.stderr:write("console detached; the node goes on (SIGTERM or Ctrl-C stops it)\n")
    end)
    return get, take
end

local function run_node(opts, out, err)
    local clusterfile = require("helios.clusterfile")
    local conf, msg = clusterfile.load(opts.config)
    if not conf then
        err("helios node: " .. msg .. "\n")
        return 1
    end
    local nopts
    nopts, msg = clusterfile.node_options(conf, opts.id, opts.config, opts.listen,
        opts["client-listen"])
    if not nopts then
        err("helios node: " .. msg .. (opts.join and " (or give --listen ADDR)" or "") .. "\n")
        return 1
    end
    if opts.join then
        nopts.join = true
    end
    if opts["max-clients"] then
        nopts.max_clients = opts["max-clients"]
    end
    -- Every connection is a descriptor: room for max_clients on the control socket and on
    -- the RESP port, and the rest (peers, segments, snapshots). Past the limit, libuv
    -- closes new connections before max_clients could refuse them with a reason; a limit
    -- below one server's max_clients is worth a warning.
    local max_clients = nopts.max_clients or 10000
    local soft = require("helios.core").raise_nofile(2 * max_clients + 256)
    if soft and soft < max_clients + 256 then
        err(format("helios node: warning: the open-file limit is %d (ulimit -n), too low for "
            .. "max_clients %d: connections beyond it are closed without the max_clients "
            .. "refusal\n", soft, max_clients))
    end
    local fsm_mod
    fsm_mod, msg = load_fsm_module(conf.fsm, opts.config, opts["lua-path"])
    if not fsm_mod then
        err("helios node: " .. msg .. "\n")
        return 1
    end
    -- ATLAS: the user commands' modules before the state machine, which gets their names
    -- (checked against the set the log records) and what to do on a difference: stop.
    local fsm_opts, modules_refused, on_refused
    if conf.atlas_modules or conf.fsm == "helios.atlas.fsm" then
        local loaded
        loaded, msg = load_atlas_modules(conf, opts.config, opts["lua-path"])
        if not loaded then
            err("helios node: " .. msg .. "\n")
            return 1
        end
        fsm_opts = { modules = conf.atlas_modules or {}, on_modules_mismatch = function(m)
            if modules_refused then return end
            modules_refused = m
            if on_refused then on_refused() end
        end }
    end
    local made_fsm, fsm = pcall(fsm_mod.new, fsm_opts)
    if not made_fsm or type(fsm) ~= "table" then
        err(format("helios node: %s: fsm: %q.new() %s\n", opts.config, conf.fsm, made_fsm
            and format("returned %s, not a state machine table", raft_describe(fsm))
            or "failed: " .. tostring(fsm)))
        return 1
    end
    nopts.fsm = fsm

    local core = require("helios.core")
    local raft = require("helios.raft")
    local nodelog = require("helios.nodelog")
    local id = opts.id
    -- A client or peer that goes away while we write to it is an error on its socket, not
    -- a reason to die.
    core.signal_ignore("PIPE")
    -- The lines of this node (docs/logging.md): the file's log_* fields, or the flags.
    local lopts = clusterfile.node_log(conf, id)
    lopts.level = opts["log-level"] or lopts.level
    lopts.format = opts["log-format"] or lopts.format
    if opts["log-file"] then lopts.file = opts["log-file"]:gsub("{id}", id) end
    local logger
    logger, msg = nodelog.logger{ node_id = id, level = lopts.level, format = lopts.format,
        file = lopts.file, repeat_ms = conf.log_repeat_ms,
        write = not lopts.file and function(line) err(line .. "\n") end or nil }
    if not logger then
        err(format("helios node: %s: %s\n", opts.config, msg))
        return 1
    end
    -- A line of this command itself (start, stop, signals), at once.
    local function log(event, fmt, ...)
        logger:write(0, event, format(fmt, ...))
    end

    -- Every option is checked (raft.new) before anything is created on disk.
    local ok, node = pcall(raft.new, nopts)
    if not ok then
        logger:close()
        -- "raft.new: <field>: <what>": the fields are the cluster file's too.
        err(format("helios node: %s: %s\n", opts.config,
            (tostring(node):gsub("^raft%.new: ", ""))))
        return 1
    end
    local made, merr = core.mkdir_p(nopts.data_dir, tonumber("700", 8))
    if not made then
        node:shutdown()
        logger:close()
        err(format("helios node: %s: data_dir: cannot create %s (%s)\n", opts.config,
            nopts.data_dir, merr))
        return 1
    end
    -- Role, term, leader and membership changes, snapshots, commits (summarized), refused
    -- peers, bad frames, storage errors (repeats summarized): helios.nodelog. An FSM stop
    -- is printed once, at exit (below).
    local reports = nodelog.observe(node, logger, { ignore = { fsm_error = true } })
    local flush_commits = reports.flush_commits
    local fsm_stop
    node:on("error", function(code, msg)
        if code == "fsm_error" then fsm_stop = msg end
    end)

    local started, serr, sdetail = node:start()
    if started == nil and (serr or sdetail) then
        local text = tostring(sdetail or serr):gsub("^start: ", "")
        -- Storage names files relative to the data dir: name the data dir too.
        if text:match("^log/") or text:match("^snapshots/") or text:match("^meta") then
            text = nopts.data_dir .. "/" .. text
        end
        reports.close()
        err(format("helios node: %s\n", text))
        if serr == "corrupt" then
            err(format("helios node: %s refuses to start on damaged data; `helios inspect %s` "
                .. "shows what is wrong, and %s says what to do\n", id, nopts.data_dir,
                M.DAMAGED_HELP))
        end
        return 1
    end
    log("node_started", "listening on %s, data in %s, control socket %s", nopts.listen,
        nopts.data_dir, nopts.control)
    -- An ATLAS node: a store over it runs the leader's timer that purges expired keys and
    -- proposes the atlas_modules record (helios.atlas), with or without a client port.
    local store
    if type(fsm.modules_pending) == "function" and type(fsm.expired_keys) == "function" then
        store = require("helios.atlas").new(node)
    end
    local client_addr = node.client_address and node:client_address()
    if client_addr then
        log("client_listen", "serving ATLAS to Redis clients on %s (redis-cli -p %s)",
            client_addr,
            client_addr:match(":(%d+)$"))
    end

    core.signal_catch("TERM")
    core.signal_catch("INT")
    core.signal_catch("HUP")
    local plain_err = err
    local console, deferred_sig = M.node_console(nopts.control, function(write)
        err = write or plain_err -- the node's lines, printed above the prompt
    end, node)
    local stopping = false
    local timer
    -- The atlas_modules check failed (while applying the record, or restoring a snapshot,
    -- maybe during start): stop at once, from the loop rather than inside the FSM's apply.
    on_refused = function()
        require("helios.loop").after(0, function()
            if stopping then return end
            stopping = true
            flush_commits()
            logger:write(2, "modules_mismatch", format("refusing to go on: %s",
                modules_refused))
            if timer then timer:stop() end
            if store then store:close() end
            node:shutdown()
        end)
    end
    if modules_refused then on_refused() end
    timer = raft.every(50, function()
        reports.flush()
        local sig = deferred_sig() or core.signal_take()
        while sig == "HUP" do
            -- logrotate moved the file away: later lines go to a new one at the path
            local reopened, rerr = logger:reopen()
            if reopened then
                log("log_reopened", "SIGHUP: log file reopened")
            else
                logger:write(2, "log_reopen_failed", format("SIGHUP: %s (writing on to the "
                    .. "file already open)", rerr))
            end
            sig = core.signal_take()
        end
        if sig == "INT" and console() then
            console():interrupt()
            sig = nil
        end
        if sig and not stopping then
            stopping = true
            flush_commits()
            log("shutdown", "SIG%s: shutting down", sig)
            timer:stop()
            if store then store:close() end
            node:shutdown()
        end
    end)
    local rok, rerr = raft.run()
    flush_commits()
    if rok and not modules_refused and not fsm_stop then
        log("stopped", "stopped")
    end
    reports.close()
    if not rok then
        err(format("helios node: %s\n", tostring(rerr)))
        return 1
    end
    if modules_refused then
        err(format("helios node: %s: %s\n", opts.config, modules_refused))
        return M.EXIT_MODULES_MISMATCH
    end
    if fsm_stop then
        err(format("helios node: %s\n", fsm_stop))
        return M.EXIT_FSM_STOPPED
    end
    return 0
end

-- ---------------------------------------------------------------------------------------
-- helios cluster

local CLUSTER_USAGE = [[
Usage: helios cluster [--nodes N] [--data DIR] [--base-port PORT] [--run-for SECONDS]

Starts a local cluster on loopback that keeps ATLAS, the replicated key-value store, and
serves it to Redis clients: writes DIR/cluster.lua (or reuses the one there, with its
data), starts one `helios node` process per node (logs in DIR/<id>.log), waits until every
node is up (if one fails to start, e.g. its port is taken, it says which and why, stops the
others and exits 1), waits for a leader and shows it with the redis-cli line to try on it,
writes a few keys and shows what commits, then keeps printing leader changes and commits
until Ctrl-C (or SIGTERM), which stops every node cleanly. Try `kill -9` on the leader's
pid from another terminal and watch the failover.

Each node has two ports: one for its peers (Raft) and one for Redis clients (RESP2:
redis-cli, redis-benchmark, client libraries); a follower forwards writes to the leader.
Every node also serves its metrics (Prometheus text, docs/metrics.md) on a free loopback
port (metrics_listen in the cluster file): the URLs are printed as the nodes start.

On a terminal, a Lua console attached to the leader reads your input meanwhile
(docs/console.md): Ctrl-C cancels its running chunk or clears its line, Ctrl-D detaches it
(then Ctrl-C stops every node).

A reused cluster file keeps its nodes and addresses: a --nodes or --base-port that differs
from it is refused (remove DIR for a new cluster, or edit the file).

Options:
  --nodes N           cluster size, 1 to 9 (default 3, or what DIR/cluster.lua has)
  --data DIR          where the cluster file and the nodes' data go (default ./data)
  --base-port PORT    node i listens for peers on PORT+i-1 and for Redis clients on
                      PORT+1000+i-1 (default $HELIOS_BASE_PORT, else 9001: peers on
                      9001.., clients on 10001..; 0: free ports)
  --run-for SECONDS   stop by itself after that long (default 0: until Ctrl-C)
  -h, --help          show this text
]]

--- The client (RESP) port of node i is its peer port plus this (helios cluster).
M.CLIENT_PORT_OFFSET = 1000

local CLUSTER_OPTIONS = {
    nodes = { default = 3, min = 1, max = 9 },
    data = { kind = "string", default = "./data" },
    ["base-port"] = { default = 9001, min = 0, max = 65535 },
    ["run-for"] = { default = 0, min = 0, max = 2 ^ 31 },
}

--- The command that runs `helios` again: this script under luajit.
function M.helios_command()
    local script = M.executable
    if not script then
        local path = package.searchpath("helios.cli", package.path)
        local root = path and path:match("^(.-)/?lua/helios/cli%.lua$")
        if root == "" then root = "." end
        local f = root and io.open(root .. "/bin/helios")
        if f then
            f:close()
            script = root .. "/bin/helios"
        end
    end
    if script then return { "luajit", script } end
    return { "helios" }
end

--- Start `helios node` for id of the cluster file; returns pid or nil, code, detail.
-- new_group: in a process group of its own (the terminal's Ctrl-C does not reach it).
function M.spawn_node(file, id, logfile, extra_env, new_group)
    local core = require("helios.core")
    local argv = M.helios_command()
    for _, a in ipairs({ "node", "--config", file, "--id", id }) do argv[#argv + 1] = a end
    local env = { LUA_PATH = package.path, LUA_CPATH = package.cpath,
                  HELIOS_INHERIT_PATHS = "1" }
    for k, v in each(extra_env or {}) do env[k] = v end
    return core.proc_spawn(argv, { stdout = logfile, stderr = "stdout", env = env,
                                   die_with_parent = true, new_group = new_group })
end

local function random_secret()
    local f = io.open("/dev/urandom", "rb")
    local bytes = f and f:read(24) or tostring(os.time()) .. tostring(os.clock())
    if f then f:close() end
    return (bytes:gsub(".", function(c) return format("%02x", c:byte()) end))
end

local function read_tail(path, lines)
    local f = io.open(path)
    if not f then return "" end
    local all = {}
    for l in f:lines() do
        all[#all + 1] = l
        if #all > lines then table.remove(all, 1) end
    end
    f:close()
    return concat(all, "\n")
end

-- The cluster file is reused as it is (its data was written by those nodes at those
-- addresses): a --nodes or --base-port that asks for something else is refused rather than
-- ignored. Returns nil, or the message.
local function check_reuse(conf, file, data, opts)
    local clusterfile = require("helios.clusterfile")
    local ids = clusterfile.ids(conf)
    local function ways(flag)
        return format("To proceed: %s to run the cluster %s describes; or remove %s (the "
            .. "cluster's data goes with it) to start a new one%s.",
            flag == "HELIOS_BASE_PORT" and "unset HELIOS_BASE_PORT" or "drop " .. flag, file,
            data, flag == "--nodes" and "" or format("; or edit the addresses in %s", file))
    end
    if opts.given.nodes and opts.nodes ~= #ids then
        return format("%s describes %d nodes, not the %d of --nodes. %s", file, #ids,
            opts.nodes, ways("--nodes"))
    end
    local base, from = opts["base-port"], opts.base_port_from
    if from then
        local addrs, moved = {}, base == 0
        for i, id in ipairs(ids) do
            addrs[#addrs + 1] = format("%s %s", id, conf.nodes[id])
            if conf.nodes[id] ~= format("127.0.0.1:%d", base + i - 1) then moved = true end
        end
        if moved then
            return format("%s has the nodes at %s; %s%s%d would %s. %s", file,
                concat(addrs, ", "), from, from == "--base-port" and " " or "=", base,
                base == 0 and "pick free ports instead"
                    or format("move them to 127.0.0.1:%d..%d", base, base + #ids - 1),
                ways(from))
        end
    end
    return nil
end

-- The reason node id did not start, from the last "helios node:" line of its log (what
-- run_node prints before it exits 1), or its last line.
local function start_failure(logfile)
    local tail = read_tail(logfile, 20)
    local reason
    for l in tail:gmatch("[^\n]+") do
        reason = l:match("^helios node: (.*)$") or reason
    end
    return reason or tail:match("([^\n]*)$")
end

-- `helios cluster`. Its waits (loop.wait, helios.client, helios.util.process) yield when
-- it runs in a coroutine on the loop and block otherwise (the command line).
local function run_cluster(opts, out, err)
    local core = require("helios.core")
    local loop = require("helios.loop")
    local process = require("helios.util.process")
    local client = require("helios.client")
    local clusterfile = require("helios.clusterfile")
    local t0 = core.clock_ms()
    local console -- the REPL on the leader, when stdin is a terminal (docs/console.md)
    local function say(fmt, ...)
        local line = format("[%7.3f s] ", (core.clock_ms() - t0) / 1000) .. format(fmt, ...)
            .. "\n"
        if console then console:say(line) else out(line) end
    end

    -- A long-running narration: each line as it happens, also into a pipe or a file.
    io.stdout:setvbuf("line")
    local data = clusterfile.resolve(".", opts.data)
    local quoted = require("helios.util.shell").quote(data)
    os.execute("mkdir -p " .. quoted .. " && chmod 700 " .. quoted)
    local file = data .. "/cluster.lua"
    local conf, lerr = clusterfile.load(file)
    local exists = io.open(file)
    if exists then exists:close() end
    if not conf and exists then
        -- An edited file with a mistake: say so, never replace it (its data is the cluster's).
        err(format("helios cluster: %s\n", tostring(lerr)))
        return 1
    elseif conf then
        local refusal = check_reuse(conf, file, data, opts)
        if refusal then
            err("helios cluster: " .. refusal .. "\n")
            return 1
        end
        say("reusing %s and the data under %s", file, data)
    else
        conf = { cluster_id = "local", fsm = "helios.atlas.fsm", data_dir = data,
                 secret = random_secret(), nodes = {}, client_listen = {},
                 metrics_listen = {} }
        local base = opts["base-port"]
        if base > 0 and base + M.CLIENT_PORT_OFFSET + opts.nodes - 1 > 65535 then
            err(format("helios cluster: %s %d: the Redis client ports would be %d..%d, past "
                .. "65535: give a base port up to %d\n", opts.base_port_from or "--base-port",
                base, base + M.CLIENT_PORT_OFFSET, base + M.CLIENT_PORT_OFFSET + opts.nodes - 1,
                65535 - M.CLIENT_PORT_OFFSET - opts.nodes + 1))
            return 1
        end
        for i = 1, opts.nodes do
            local id = format("node-%d", i)
            local port = base > 0 and base + i - 1 or core.free_port()
            conf.nodes[id] = format("127.0.0.1:%d", port)
            port = base > 0 and base + M.CLIENT_PORT_OFFSET + i - 1 or core.free_port()
            conf.client_listen[id] = format("127.0.0.1:%d", port)
            -- Every node's metrics endpoint on loopback too (docs/metrics.md).
            conf.metrics_listen[id] = format("127.0.0.1:%d", core.free_port())
        end
        local ok, werr = clusterfile.write(file, conf)
        if not ok then
            err(format("helios cluster: %s: %s\n", file, tostring(werr)))
            return 1
        end
        conf = assert(clusterfile.load(file))
    end
    local ids = clusterfile.ids(conf)

    core.signal_catch("INT")
    core.signal_catch("TERM")
    local repl = require("helios.console.repl")
    local with_console = repl.isatty(0) and repl.isatty(1)
    local procs, sockets = {}, {}
    local function stop_all(why)
        say("stopping every node (%s)", why)
        local running, pids = {}, {}
        for _, id in ipairs(ids) do
            if procs[id] then
                running[#running + 1], pids[#pids + 1] = id, procs[id]
                procs[id] = nil
            end
        end
        for i, r in ipairs(process.stop_all(pids, "TERM", 5000)) do
            say("%s stopped (%s %s)", running[i], tostring(r[1]), tostring(r[2]))
        end
    end

    for _, id in ipairs(ids) do
        local _, control = clusterfile.node_paths(conf, id)
        sockets[id] = control
        -- With the console on the terminal, Ctrl-C is the console's: the nodes must not get
        -- it (this process stops them itself).
        local pid, code, detail = M.spawn_node(file, id, data .. "/" .. id .. ".log", nil,
                                               with_console)
        if not pid then
            err(format("helios cluster: cannot start %s: %s %s\n", id, tostring(code),
                tostring(detail)))
            stop_all("a node failed to start")
            return 1
        end
        procs[id] = pid
        local client_at = conf.client_listen and conf.client_listen[id]
        say("started %s on %s%s (pid %d, log %s/%s.log)", id, conf.nodes[id],
            client_at and ", Redis clients on " .. client_at or "", pid, data, id)
        local murl = conf.metrics_listen and conf.metrics_listen[id]
        if murl then say("metrics of %s: http://%s/metrics", id, murl) end
    end

    -- Every node must come up (answer on its control socket): one that exits first (its
    -- port taken, its data dir locked, a bad file) stops the whole cluster, with its reason.
    local up = {}
    local cc = client.cluster(sockets, { timeout_ms = 1000 })
    local up_by = core.clock_ms() + 15000
    while true do
        local waiting, failed, how, what = 0, nil, nil, nil
        for _, id in ipairs(ids) do
            if not up[id] then
                how, what = core.proc_wait(procs[id], 0)
                if how then
                    procs[id] = nil
                    failed = id
                    break
                end
                up[id] = cc:status(id, 200) ~= nil
                if not up[id] then waiting = waiting + 1 end
            end
        end
        if failed or (waiting > 0 and core.clock_ms() >= up_by) then
            local id = failed
            if not id then
                for _, i in ipairs(ids) do if not up[i] then id = i break end end
            end
            local logfile = format("%s/%s.log", data, id)
            local reason = "it did not answer on its control socket within 15 s"
            if failed then
                reason = format("%s (%s)", start_failure(logfile), how == "exited"
                    and format("exit status %s", tostring(what))
                    or format("killed by SIG%s", tostring(what)))
            end
            err(format("helios cluster: %s (%s) failed to start: %s; see %s\n", id,
                conf.nodes[id], reason, logfile))
            if reason:find("address already in use", 1, true) then
                err(format("helios cluster: another process listens on %s. Stop it, or run "
                    .. "the cluster on other ports: remove %s (or edit the addresses in %s) "
                    .. "and give --base-port PORT (make demo: HELIOS_BASE_PORT=PORT or "
                    .. "ARGS='--base-port PORT').\n", conf.nodes[id], data, file))
            end
            cc:close()
            stop_all(id .. " failed to start")
            return 1
        end
        if waiting == 0 then break end
        loop.wait(50)
    end

    -- Wait for a leader, but give up at once if the nodes die (a bad config, a port in
    -- use): their logs say why.
    local leader, st
    local deadline = core.clock_ms() + 15000
    while core.clock_ms() < deadline do
        leader, st = cc:leader(0)
        if leader then break end
        local dead = 0
        for _, id in ipairs(ids) do
            if procs[id] and core.proc_wait(procs[id], 0) then procs[id] = nil end
            if not procs[id] then dead = dead + 1 end
        end
        if dead > #ids / 2 then break end
        loop.wait(50)
    end
    if not leader then
        for _, id in ipairs(ids) do
            err(format("--- %s/%s.log (last lines):\n%s\n", data, id,
                read_tail(data .. "/" .. id .. ".log", 10)))
        end
        err("helios cluster: no leader (the logs above say why)\n")
        stop_all("no leader")
        return 1
    end
    -- The redis-cli line to try on node id (the leader's port: writes go there).
    local function redis_cli(id)
        local addr = conf.client_listen and conf.client_listen[id]
        return addr and format("redis-cli -p %s", addr:match(":(%d+)$"))
    end
    say("%s leads (term %d)%s", leader, st.term,
        redis_cli(leader) and ": " .. redis_cli(leader) or "")

    -- What commits: ATLAS writes (the commands a Redis client sends, encoded as the
    -- state machine's commands, through the control socket), or helios.fsm.kv's strings
    -- for a cluster file of an earlier version.
    local commands
    if conf.fsm == "helios.atlas.fsm" then
        local E = require("helios.atlas.fsm").encode
        commands = { { "SET greeting hello", E.set("greeting", "hello") },
                     { "INCR visits", E.incr("visits") }, { "INCR visits", E.incr("visits") } }
    else
        commands = { { "set greeting hello" }, { "incr visits" }, { "incr visits" } }
    end
    local function shown(result)
        if result == true then return "OK" end
        if type(result) == "table" and result.err then
            return format("(error) %s %s", tostring(result.err), tostring(result.msg))
        end
        return tostring(result)
    end
    for _, c in ipairs(commands) do
        local index, term, result = cc:apply(c[2] or c[1], 5000)
        if not index then
            err(format("helios cluster: apply %q failed: %s %s\n", c[1], tostring(term),
                tostring(result)))
            stop_all("apply failed")
            return 1
        end
        say("committed #%d in term %d: %-20s -> %s", index, term, c[1], shown(result))
    end
    local commit = 0
    for _, id in ipairs(ids) do
        local s = cc:status(id)
        if s then
            local client_at = conf.client_listen and conf.client_listen[id]
            local applied = format("#%d", s.applied_index)
            say("%-7s %-9s term %-3d commit #%-4d applied %s", id, s.role, s.term,
                s.commit_index, client_at and format("%-6s Redis clients on %s", applied,
                    client_at) or applied)
            if s.commit_index > commit then commit = s.commit_index end
        end
    end
    if redis_cli(leader) then
        say("try: %s GET greeting   (%s, the leader; a follower's port forwards writes "
            .. "to it)", redis_cli(leader), leader)
    end

    if opts["run-for"] > 0 then
        say("running for %d s (--run-for)", opts["run-for"])
    else
        say("running; Ctrl-C stops every node")
    end
    local stop_at = opts["run-for"] > 0 and core.clock_ms() + opts["run-for"] * 1000 or nil
    if with_console then
        local cerr
        console, cerr = repl.session({ socket = sockets[leader] })
        if console then
            say("console on %s (Ctrl-D detaches it; then Ctrl-C stops every node)", leader)
        else
            say("no console on %s: %s", leader, tostring(cerr))
        end
    end
    local exited = {}
    local pending_sig
    while true do
        local sig = pending_sig or core.signal_take()
        pending_sig = nil
        if sig == "INT" and console then
            console:interrupt()
            sig = nil
        end
        if sig then
            if console then console:close() console = nil end
            stop_all("SIG" .. sig)
            break
        end
        if stop_at and core.clock_ms() >= stop_at then
            stop_all("--run-for elapsed")
            break
        end
        for _, id in ipairs(ids) do
            if procs[id] and not exited[id] then
                local how, what = core.proc_wait(procs[id], 0)
                if how then
                    exited[id] = true
                    procs[id] = nil
                    say("%s exited (%s %s); see %s/%s.log", id, how, tostring(what), data, id)
                end
            end
        end
        local alive = 0
        for _, id in ipairs(ids) do if procs[id] then alive = alive + 1 end end
        if alive == 0 then
            if console then console:close() console = nil end
            say("every node has exited")
            cc:close()
            return 1
        end
        local now_leader, now_st = cc:leader(0)
        if now_leader and (now_leader ~= leader or now_st.term ~= st.term) then
            say("%s leads (term %d)%s", now_leader, now_st.term,
                redis_cli(now_leader) and ": " .. redis_cli(now_leader) or "")
        end
        if now_leader then
            leader, st = now_leader, now_st
            if now_st.commit_index > commit then
                say("commit index #%d (on %s)", now_st.commit_index, now_leader)
                commit = now_st.commit_index
            end
        end
        if console then
            local until_ms = core.clock_ms() + 200
            repeat
                if console:step(until_ms - core.clock_ms()) then
                    console:close()
                    console = nil
                    say("console detached; Ctrl-C stops every node")
                else
                    local sig2 = core.signal_take()
                    if sig2 == "INT" then
                        console:interrupt()
                    elseif sig2 then
                        pending_sig = sig2
                    end
                end
            until not console or pending_sig or core.clock_ms() >= until_ms
        else
            loop.wait(200)
        end
    end
    if console then console:close() end
    cc:close()
    return 0
end

-- ---------------------------------------------------------------------------------------
-- helios peer, helios transfer: a running cluster's members, through control sockets

local PEER_USAGE = [[
Usage: helios peer add ID ADDR [--learner] [--config FILE | --socket PATH] [--timeout-ms N]
       helios peer remove ID [--config FILE | --socket PATH] [--timeout-ms N]
       helios peer list [--config FILE | --socket PATH]
       helios transfer [ID] [--config FILE | --socket PATH] [--timeout-ms N]

Changes or shows the members of a running cluster through the nodes' control sockets: the
request goes to whichever node leads (a follower answers with the leader's id, and the
command asks that one).

  peer add ID ADDR   ID (listening on ADDR, host:port) joins as a learner, receives the log
                     or a snapshot, and is promoted to voter once it has caught up; with
                     --learner it stays a learner. Start the new node first with
                     `helios node --join` (an empty data dir; it waits to be added).
  peer remove ID     ID leaves the configuration (a leader that removes itself steps
                     down); once it learns it is out, it says so and stops campaigning.
  peer list          every server of the configuration: address, voter or learner, the
                     leader's match index for it and whether it has caught up.
  transfer [ID]      the leader hands leadership to ID (default: the most up-to-date
                     voter) and the command prints the new leader.

Where the sockets are: --config FILE, a cluster file (every node's <data_dir>/<ID>/
control.sock); --socket PATH, one node's socket (a leader it names is looked for next to
it, <dir>/<leader>/control.sock); neither: ./data/cluster.lua (the layout of `helios
cluster`).

Options:
  --config FILE      a cluster file
  --socket PATH      a node's control socket
  --learner          peer add: the server stays a learner (never votes)
  --timeout-ms N     how long to wait for the change to commit (default 10000)
  -h, --help         show this text

Exit status: 0 done, 1 failed (the reason is printed: not_leader with no leader reachable,
busy: another change is in progress, timeout: it may still complete), 2 usage error.
]]

local PEER_OPTIONS = {
    true, -- positional arguments
    config = { kind = "string" },
    socket = { kind = "string" },
    learner = { kind = "flag" },
    ["timeout-ms"] = { default = 10000, min = 0, max = 2 ^ 31 },
}

-- A client of the cluster the options name (client.cluster), or nil and a message.
local function peer_client(opts)
    local client = require("helios.client")
    local clusterfile = require("helios.clusterfile")
    local sockets, socket_of = {}, nil
    if opts.socket then
        local id = opts.socket:match("([^/]+)/[^/]+$") or "node"
        sockets[id] = opts.socket
        local base = opts.socket:match("^(.*)/[^/]+/[^/]+$")
        local name = opts.socket:match("/([^/]+)$")
        socket_of = base and function(other) return base .. "/" .. other .. "/" .. name end
    else
        local file = opts.config or "./data/cluster.lua"
        local conf, msg = clusterfile.load(file)
        if not conf then
            return nil, opts.config and msg or format("%s (give --config FILE or --socket PATH)",
                msg)
        end
        for _, id in ipairs(clusterfile.ids(conf)) do
            local _, control = clusterfile.node_paths(conf, id)
            sockets[id] = control
        end
        socket_of = function(other)
            local _, control = clusterfile.node_paths(conf, other)
            return control
        end
    end
    return client.cluster(sockets, { timeout_ms = 1000, socket_of = socket_of })
end

-- The configuration as a leader (or, with none reachable, any node) sees it.
local function peer_list(cc, out, err)
    local ids = {}
    for _, id in ipairs(cc.ids) do ids[#ids + 1] = id end
    local leader = cc:leader(2000)
    local from = leader or ids[1]
    local view, code, detail
    for _, id in ipairs(leader and { leader } or ids) do
        local c = cc:node(id)
        if c then
            view, code, detail = c:peers()
            if view then from = id break end
        end
    end
    if not view then
        err(format("helios peer list: no node answered (%s %s)\n", tostring(code),
            tostring(detail)))
        return 1
    end
    local conf = view.configuration or {}
    out(format("configuration at index %s (%s), as %s (%s, term %s) sees it%s\n",
        tostring(conf.index or "?"), conf.committed and "committed" or "not committed yet",
        from, tostring(view.role), tostring(view.term),
        view.leader and view.leader ~= from and format("; leader %s", view.leader) or ""))
    local rows = {}
    for id, p in each(view.peers or {}) do rows[#rows + 1] = { id = id, p = p } end
    table.sort(rows, function(a, b) return a.id < b.id end)
    out(format("  %-12s %-22s %-8s %-8s %s\n", "ID", "ADDRESS", "ROLE", "MATCH", "CAUGHT UP"))
    for _, r in ipairs(rows) do
        local p = r.p
        out(format("  %-12s %-22s %-8s %-8s %s\n", r.id, tostring(p.addr),
            p.voter and "voter" or "learner", tostring(p.match),
            r.id == from and "(self)" or (view.role == "leader" and (p.caught_up and "yes" or "no")
                or "-")))
    end
    if conf.promoting then out(format("  promoting %s to voter once it has caught up\n",
        conf.promoting)) end
    return 0
end

local function run_peer(argv, out, err)
    local command = argv[1]
    local opts, msg = parse_options(argv, 2, PEER_OPTIONS)
    local usage_err = function(m)
        err(format("helios %s: %s (see 'helios %s --help')\n", command, m, command))
        return 2
    end
    if not opts then return usage_err(msg) end
    if opts.help then
        out(PEER_USAGE)
        return 0
    end
    if opts.config and opts.socket then return usage_err("give --config or --socket, not both") end
    local action, a1, a2
    if command == "transfer" then
        action, a1 = "transfer", opts[1]
        if opts[2] then return usage_err("expects at most one node id") end
    else
        action, a1, a2 = opts[1], opts[2], opts[3]
        local want = ({ add = 2, remove = 1, list = 0 })[action]
        if not want then return usage_err("expects add, remove or list") end
        if (want >= 1 and not a1) or (want == 2 and not a2) or opts[want + 2] then
            return usage_err(({ "remove ID", "add ID ADDR", [0] = "list" })[want]
                .. " (no other arguments)")
        end
        if opts.learner and action ~= "add" then return usage_err("--learner is for peer add") end
        if action == "add" then
            local problem = require("helios.util.address").problem(a2)
            if problem then return usage_err(format("ADDR %s (got '%s')", problem, a2)) end
        end
    end
    local cc, cerr = peer_client(opts)
    if not cc then
        err(format("helios %s: %s\n", command, cerr))
        return 1
    end
    local function finish(code)
        cc:close()
        return code
    end
    if action == "list" then return finish(peer_list(cc, out, err)) end
    local t = opts["timeout-ms"]
    local ok, code, detail
    if action == "add" then
        ok, code, detail = cc:add_peer(a1, a2, { voter = not opts.learner, timeout_ms = t })
    elseif action == "remove" then
        ok, code, detail = cc:remove_peer(a1, { timeout_ms = t })
    else
        ok, code, detail = cc:transfer(a1, t)
    end
    if not ok then
        err(format("helios %s: %s%s: %s%s\n", command, action == "transfer" and "" or action .. " ",
            a1 or "", tostring(code), detail and (": " .. tostring(detail)) or ""))
        return finish(1)
    end
    if action == "add" then
        out(format("%s (%s) is a %s of the cluster (committed)\n", a1, a2,
            opts.learner and "learner" or "voter"))
    elseif action == "remove" then
        out(format("%s is no longer in the cluster's configuration (committed)\n", a1))
    else
        out(format("%s leads now\n", tostring(ok)))
    end
    return finish(0)
end

-- ---------------------------------------------------------------------------------------
-- helios recover: disaster recovery, offline

local RECOVER_USAGE = [[
Usage: helios recover --data DIR --id ID [--listen ADDR | --config FILE]

Disaster recovery, when a majority of the cluster is lost for good: run it on a STOPPED
node's data directory (DIR, e.g. ./data/node-1). It appends to the log one configuration
entry that makes ID (listening on ADDR) the only voter, keeping every entry the node has,
and makes it durable. Restarted, the node is a one-node cluster: it elects itself and
commits everything in its log (entries the lost majority may have committed beyond it are
gone with them). Grow it back with `helios node --join` on new nodes and `helios peer add`.

Never run it while the rest of the old cluster may come back: two clusters would then
accept writes under the same name. Keep the lost nodes' data dirs away from it.

Options:
  --data DIR      the node's data directory
  --id ID         the node's id
  --listen ADDR   its address (host:port); or
  --config FILE   a cluster file that lists ID with its address; with neither, the
                  address of ID in the newest configuration of its log or snapshot (a
                  cluster that never changed members has none there: give one)
  -h, --help      show this text

Exit status: 0 recovered, 1 failed (e.g. the node is running: its data dir is locked),
2 usage error.
]]

local RECOVER_OPTIONS = {
    data = { kind = "string" },
    id = { kind = "string" },
    listen = { kind = "string" },
    config = { kind = "string" },
}

local function run_recover(argv, out, err)
    local opts, msg = parse_options(argv, 2, RECOVER_OPTIONS)
    local function usage_err(m)
        err(format("helios recover: %s (see 'helios recover --help')\n", m))
        return 2
    end
    if not opts then return usage_err(msg) end
    if opts.help then
        out(RECOVER_USAGE)
        return 0
    end
    if not opts.data or not opts.id then return usage_err("--data DIR and --id ID are required") end
    local addr = opts.listen
    if not addr and opts.config then
        local conf, cerr = require("helios.clusterfile").load(opts.config)
        if not conf then
            err("helios recover: " .. cerr .. "\n")
            return 1
        end
        addr = conf.nodes[opts.id]
        if not addr then
            return usage_err(format("%s does not list %s: give --listen ADDR", opts.config, opts.id))
        end
    end
    local problem = addr and require("helios.util.address").problem(addr)
    if problem then return usage_err(format("--listen: address %s (got '%s')", problem, addr)) end
    local core = require("helios.core")
    if not core.recover then
        err("helios recover: this build has no core.recover\n")
        return 1
    end
    -- Without an address, core.recover takes the node's from the newest configuration in
    -- its log or snapshot (a cluster that never changed members has none there).
    local r, code, detail = core.recover(opts.data, opts.id, addr)
    if not r then
        err(format("helios recover: %s: %s %s\n", opts.data, tostring(code), tostring(detail or "")))
        if code == "invalid" and not addr then
            err("helios recover: give the node's address: --listen ADDR, or --config FILE that "
                .. "lists it\n")
        end
        return 1
    end
    addr = addr or "its address"
    out(format("recovered %s: %s (at %s) is now the only voter, by a configuration entry at "
        .. "index %s (term %s); %s entries kept. Start the node: it elects itself and commits "
        .. "them; then add nodes with `helios node --join` and `helios peer add`.\n", opts.data,
        opts.id, addr, tostring(r.index), tostring(r.term), tostring(r.entries)))
    return 0
end

-- ---------------------------------------------------------------------------------------
-- helios status

local STATUS_USAGE = [[
Usage: helios status [--data DIR | --config FILE | SOCKET...] [--timeout-ms N]

Prints one table of every node of a running cluster, from node:status() through the
nodes' control sockets:

  ID      ROLE      TERM  COMMIT  APPLIED  LAG  CONTACT  CONTROL
  node-1  follower     3    1042     1042    0     12ms  ok
  node-2  leader       3    1042     1042    0        -  ok
  node-3  -            -       -        -    -    840ms  unreachable (refused)

LAG is how far the node's applied index is behind: the leader's last index minus it when
the leader answers, else its own commit index minus it. CONTACT is how long ago the leader
last heard from the node (from the leader's status().peers; "-" for the leader itself or
when no leader answers). A node whose control socket does not answer shows as unreachable.

Where the sockets are: SOCKET... (control socket paths); --config FILE, a cluster file
(every node's <data_dir>/<ID>/control.sock); --data DIR, the data directory of `helios
cluster` (DIR/cluster.lua), else every DIR/*/control.sock; neither: --data ./data. Nodes the
leader's configuration names beyond those are looked for next to them
(<dir>/<ID>/control.sock).

Options:
  --data DIR        a data directory
  --config FILE     a cluster file
  --timeout-ms N    how long to wait for each node (default 1000)
  -h, --help        show this text

Exit status: 0 at least one node answered, 1 none did, 2 usage error.
]]

local STATUS_OPTIONS = {
    true, -- positional arguments: sockets
    data = { kind = "string" },
    config = { kind = "string" },
    ["timeout-ms"] = { default = 1000, min = 1, max = 600000 },
}

-- The paths matching a glob(3) pattern (the control sockets under a data dir), sorted;
-- none where the FFI is missing.
local function glob_paths(pattern)
    local ok, ffi = pcall(require, "ffi")
    if not ok then return {} end
    pcall(ffi.cdef, [[
        struct helios_cli_glob { size_t pathc; char **pathv; };
        int glob(const char *pattern, int flags, void *errfunc, void *pglob);
        void globfree(void *pglob);
    ]])
    -- glob_t is larger than the two fields read here: room for the whole of it.
    local buf = ffi.new("uint8_t[?]", 512)
    local g = ffi.cast("struct helios_cli_glob *", buf)
    local paths = {}
    if ffi.C.glob(pattern, 0, nil, buf) == 0 then
        for i = 0, tonumber(g.pathc) - 1 do paths[#paths + 1] = ffi.string(g.pathv[i]) end
    end
    ffi.C.globfree(buf)
    table.sort(paths)
    return paths
end

-- The sockets to ask: { {id, path}, ... } and a function(id) -> the path of a node only
-- the leader's configuration names; or nil and a message.
local function status_sockets(opts)
    local clusterfile = require("helios.clusterfile")
    local list = {}
    local file = opts.config
    if not file and #opts == 0 then
        local dir = opts.data or "./data"
        local f = io.open(dir .. "/cluster.lua")
        if f then
            f:close()
            file = dir .. "/cluster.lua"
        else
            for _, path in ipairs(glob_paths(dir .. "/*/control.sock")) do
                list[#list + 1] = { path:match("([^/]+)/[^/]+$"), path }
            end
            if #list == 0 then
                return nil, format("no cluster.lua and no */control.sock in %s (give --data "
                    .. "DIR, --config FILE or SOCKET...)", dir)
            end
        end
    end
    if file then
        local conf, msg = clusterfile.load(file)
        if not conf then return nil, msg end
        for _, id in ipairs(clusterfile.ids(conf)) do
            local _, control = clusterfile.node_paths(conf, id)
            list[#list + 1] = { id, control }
        end
        return list, function(id)
            local _, control = clusterfile.node_paths(conf, id)
            return control
        end
    end
    for _, path in ipairs(opts) do
        list[#list + 1] = { path:match("([^/]+)/[^/]+$") or path, path }
    end
    local sample = list[1][2]
    local base, name = sample:match("^(.*)/[^/]+/([^/]+)$")
    return list, base and function(id) return base .. "/" .. id .. "/" .. name end
end

local function run_status(argv, out, err)
    local opts, msg = parse_options(argv, 2, STATUS_OPTIONS)
    if not opts then
        err(format("helios status: %s (see 'helios status --help')\n", msg))
        return 2
    end
    if opts.help then
        out(STATUS_USAGE)
        return 0
    end
    if (opts.data and opts.config) or ((opts.data or opts.config) and #opts > 0) then
        err("helios status: give one of --data DIR, --config FILE or SOCKET... (see "
            .. "'helios status --help')\n")
        return 2
    end
    local list, socket_of = status_sockets(opts)
    if not list then
        err(format("helios status: %s\n", socket_of))
        return 1
    end
    local client = require("helios.client")
    local timeout = opts["timeout-ms"]
    local rows, by_id = {}, {}
    local function ask(id, path)
        local row = { id = id, path = path }
        local c, code, detail = client.connect(path, timeout)
        local st
        if c then
            st, code, detail = c:status(timeout)
            c:close()
        end
        if st then
            row.st = st
            row.id = st.id or id
        else
            -- The code only ("refused", "timeout", ...): the table stays one screen wide.
            row.problem = tostring(code)
            row.detail = detail
        end
        if not by_id[row.id] then
            rows[#rows + 1] = row
            by_id[row.id] = row
        end
        return row
    end
    for _, item in ipairs(list) do ask(item[1], item[2]) end
    -- The leader: the highest term among the nodes that say they lead.
    local leader
    for _, r in ipairs(rows) do
        if r.st and r.st.role == "leader" and (not leader or r.st.term > leader.st.term) then
            leader = r
        end
    end
    -- Members only the leader's configuration names (joined since the file was written).
    if leader and socket_of then
        local extra = {}
        for pid in each(leader.st.peers or {}) do
            if not by_id[pid] then extra[#extra + 1] = pid end
        end
        table.sort(extra)
        for _, pid in ipairs(extra) do ask(pid, socket_of(pid)) end
    end
    table.sort(rows, function(a, b) return a.id < b.id end)
    local header = { "ID", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "CONTACT", "CONTROL" }
    local lines, answered = { header }, 0
    for _, r in ipairs(rows) do
        local st = r.st
        if st then
            answered = answered + 1
            local lag
            if leader then
                lag = math.max(0, (leader.st.last_index or 0) - (st.applied_index or 0))
            else
                lag = math.max(0, (st.commit_index or 0) - (st.applied_index or 0))
            end
            local p = leader and leader ~= r and leader.st.peers and leader.st.peers[r.id]
            local contact = p and p.last_contact_ms and format("%dms", p.last_contact_ms) or "-"
            local role = st.role
            if st.removed then role = "removed" end
            if leader and p and not p.voter then role = role .. " (learner)" end
            lines[#lines + 1] = { r.id, role, tostring(st.term), tostring(st.commit_index),
                tostring(st.applied_index), tostring(lag), contact,
                st.storage_error and "ok, storage failed" or "ok" }
        else
            local p = leader and leader.st.peers and leader.st.peers[r.id]
            local contact = p and p.last_contact_ms and format("%dms", p.last_contact_ms) or "-"
            lines[#lines + 1] = { r.id, "-", "-", "-", "-", "-", contact,
                "unreachable (" .. r.problem .. ")" }
        end
    end
    local widths = {}
    for _, l in ipairs(lines) do
        for i, cell in ipairs(l) do
            if i < #l then widths[i] = math.max(widths[i] or 0, #cell) end
        end
    end
    for _, l in ipairs(lines) do
        local cells = {}
        for i, cell in ipairs(l) do
            if i == #l then
                cells[i] = cell
            elseif i >= 3 and i <= 7 then
                cells[i] = string.rep(" ", widths[i] - #cell) .. cell
            else
                cells[i] = cell .. string.rep(" ", widths[i] - #cell)
            end
        end
        out(concat(cells, "  ") .. "\n")
    end
    if leader then
        out(format("leader %s, term %d; %d of %d nodes answered\n", leader.id, leader.st.term,
            answered, #rows))
    else
        out(format("no leader among the nodes that answered; %d of %d nodes answered\n",
            answered, #rows))
    end
    if answered == 0 then
        err("helios status: no node answered\n")
        return 1
    end
    return 0
end

local function stdout(s) io.stdout:write(s) end
local function stderr(s) io.stderr:write(s) end

--- Run the command line.
-- @tparam table argv the arguments (argv[1] is the command), as the global `arg`
-- @tparam[opt] function out receives what goes to stdout (default: io.stdout)
-- @tparam[opt] function err receives what goes to stderr (default: io.stderr)
-- @treturn number the exit status: 0 success, 1 failure, 2 usage error
-- @usage os.exit(require("helios.cli").main(arg))
function M.main(argv, out, err)
    if type(argv) ~= "table" then error("Usage: cli.main(argv[, out[, err]])", 2) end
    out, err = out or stdout, err or stderr
    local command = argv[1]

    if command == nil or command == "-h" or command == "--help" or command == "help" then
        out(USAGE)
        return 0
    elseif command == "--version" then
        out("helios " .. M.version .. "\n")
        return 0
    elseif command == "sim" then
        local opts, msg = parse_options(argv, 2, SIM_OPTIONS)
        if not opts then
            err(format("helios sim: %s (see 'helios sim --help')\n", msg))
            return 2
        end
        if opts.help then
            out(SIM_USAGE)
            return 0
        end
        local loaded, sim = pcall(require, "helios.sim")
        if not loaded then
            err(format("helios sim: cannot load helios.sim (in a checkout, run 'make build' "
                .. "first):\n%s\n", tostring(sim)))
            return 1
        end
        if not opts.fsm and not opts.faults and not opts.commands then
            local ok, e = pcall(run_sim, sim, opts, out)
            if not ok then
                err(format("helios sim: %s\nreplay: helios sim --nodes %d --seed %d\n",
                    tostring(e), opts.nodes, opts.seed))
                return 1
            end
            return 0
        end
        local faults, ferr = parse_faults(opts.faults or "all")
        if not faults then
            err(format("helios sim: %s (see 'helios sim --help')\n", ferr))
            return 2
        end
        local saved_path = package.path
        local mod, merr
        if opts.fsm then
            mod, merr = load_sim_fsm(opts.fsm, opts["lua-path"])
        end
        local commands, cerr
        if not merr then commands, cerr = sim_commands(mod, opts.fsm, opts) end
        if not commands then
            package.path = saved_path
            err(format("helios sim: %s\n", merr or cerr))
            return 1
        end
        local ok, e = pcall(run_fault_sim, sim, opts, out, mod, commands, faults)
        package.path = saved_path
        if not ok then
            local replay = { "helios sim" }
            if opts.fsm then replay[#replay + 1] = "--fsm " .. opts.fsm end
            replay[#replay + 1] = format("--nodes %d --seed %d --faults %s", opts.nodes,
                opts.seed, opts.faults or "all")
            if opts.commands then replay[#replay + 1] = "--commands " .. opts.commands end
            if opts["lua-path"] then replay[#replay + 1] = "--lua-path " .. opts["lua-path"] end
            -- The FSM's own error line says where; the frames of helios.sim that follow
            -- it would only show this module's insides.
            e = tostring(e):gsub("\nstack traceback:\n.-\n(simulation seed)", "\n%1")
                :gsub("\nsimulation seed %d+; replay: HELIOS_SEED=%d+$", "")
            err(format("helios sim: %s\nreplay: %s\n", e, concat(replay, " ")))
            return 1
        end
        return 0
    elseif command == "inspect" then
        return run_inspect(argv, out, err)
    elseif command == "peer" or command == "transfer" then
        return run_peer(argv, out, err)
    elseif command == "recover" then
        return run_recover(argv, out, err)
    elseif command == "status" then
        return run_status(argv, out, err)
    elseif command == "console" then
        return require("helios.console.command").run(argv, out, err)
    elseif command == "node" or command == "cluster" then
        local spec = command == "node" and NODE_OPTIONS or CLUSTER_OPTIONS
        local usage = command == "node" and NODE_USAGE or CLUSTER_USAGE
        local opts, msg = parse_options(argv, 2, spec)
        if not opts then
            err(format("helios %s: %s (see 'helios %s --help')\n", command, msg, command))
            return 2
        end
        if opts.help then
            out(usage)
            return 0
        end
        -- argv is the global `arg` when bin/helios runs: arg[0] is this script, which
        -- `helios cluster` runs again for each node.
        if type(argv[0]) == "string" and argv[0]:match("helios$") and not M.executable then
            M.executable = argv[0]
        end
        if command == "node" then
            if not opts.config or not opts.id then
                err("helios node: --config FILE and --id ID are required (see 'helios node "
                    .. "--help')\n")
                return 2
            end
            if opts.listen and not opts.join then
                err("helios node: --listen is for a node that joins (--join) and that the "
                    .. "cluster file does not list (see 'helios node --help')\n")
                return 2
            end
            -- run_node extends package.path for the fsm module; a caller in this process
            -- (a spec) gets its own back.
            local saved_path = package.path
            local code = run_node(opts, out, err)
            package.path = saved_path
            return code
        end
        if opts.given["base-port"] then
            opts.base_port_from = "--base-port"
        else
            local env = os.getenv("HELIOS_BASE_PORT")
            if env and env ~= "" then
                local n = env:match("^%d+$") and tonumber(env)
                if not n or n > 65535 then
                    err(format("helios cluster: HELIOS_BASE_PORT expects an integer from 0 to "
                        .. "65535, got '%s'\n", env))
                    return 2
                end
                opts["base-port"], opts.base_port_from = n, "HELIOS_BASE_PORT"
            end
        end
        return run_cluster(opts, out, err)
    end

    local what = command:sub(1, 1) == "-" and "option" or "command"
    err(format("helios: unknown %s '%s' (see 'helios --help')\n", what, command))
    return 2
end

return M
