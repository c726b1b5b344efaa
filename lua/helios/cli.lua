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
-- Commands: `sim` (a simulated cluster on virtual time). `node`, `cluster` and `console`
-- arrive with the networked node; usage lists only what exists.

local format, concat = string.format, table.concat
local floor = math.floor
local error, ipairs, pairs, pcall, require = error, ipairs, pairs, pcall, require
local setmetatable, tonumber, tostring, type = setmetatable, tonumber, tostring, type
local io = io

local M = {}

M.version = "scm-1"

local USAGE = [[
Usage: helios <command> [options]

Commands:
  sim [--nodes N] [--seed N]   run a simulated cluster on virtual time: election, commits,
                               the leader's crash, failover, and the old leader rejoining
  help                         show this text

Options:
  -h, --help                   show this text ("helios <command> --help" for a command's)
  --version                    print the version
]]

local SIM_USAGE = [[
Usage: helios sim [--nodes N] [--seed N]

Runs a Helios Raft cluster inside this process on virtual time (helios.sim) and narrates it:
a leader is elected, entries commit, the leader crashes, another takes over, more entries
commit, and the old leader restarts and catches up. Every Raft invariant is checked after
every simulated step.

Options:
  --nodes N    cluster size, 3 to 64 (default 3)
  --seed N     seed of every random choice (default 1): the same seed replays the same run
  -h, --help   show this text
]]

-- Options of `helios sim`: name -> { default, min, max }.
local SIM_OPTIONS = {
    nodes = { default = 3, min = 3, max = 64 },
    seed = { default = 1, min = 0, max = 2 ^ 53 },
}

-- How long (virtual ms) the demo waits for an election or a catch-up before giving up.
local WAIT_MS = 10000

--- Parse `--name value` / `--name=value` integer options.
-- @treturn table|nil options, or nil and a message
local function parse_options(argv, first, spec)
    local opts = {}
    for name, o in pairs(spec) do opts[name] = o.default end
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
            local o = name and spec[name]
            if not o then
                if a:sub(1, 1) == "-" then return nil, format("unknown option '%s'", a) end
                return nil, format("unexpected argument '%s'", a)
            end
            if value == nil then return nil, format("--%s needs a value", name) end
            local n = value:match("^%d+$") and tonumber(value)
            if not n or n < o.min or n > o.max then
                return nil, format("--%s expects an integer from %d to %.0f, got '%s'", name,
                    o.min, o.max, value)
            end
            opts[name] = n
            i = i + 1
        end
    end
    return opts
end

-- The demo's state machine: a running total. Every replica must agree on every total, which
-- makes a divergence visible in the output, not only in the invariant checks.
local Total = {}
Total.__index = Total
Total.__name = "helios.cli.Total"

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

    c:run_for(500)
    c:check()
    say("final state:")
    for _, id in ipairs(c:ids()) do
        local st = c:node(id):status()
        out(format("             %-4s %-9s term %-3d commit #%-4d applied #%-4d total = %d\n", id,
            tostring(st.role), tonumber(st.term), tonumber(st.commit_index),
            tonumber(st.applied_index), fsms[id] and fsms[id].total or 0))
    end
    out("invariants held: election safety, log matching, leader completeness, "
        .. "state machine safety\n")
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
        local ok, e = pcall(run_sim, sim, opts, out)
        if not ok then
            err(format("helios sim: %s\nreplay: helios sim --nodes %d --seed %d\n", tostring(e),
                opts.nodes, opts.seed))
            return 1
        end
        return 0
    end

    local what = command:sub(1, 1) == "-" and "option" or "command"
    err(format("helios: unknown %s '%s' (see 'helios --help')\n", what, command))
    return 2
end

return M
