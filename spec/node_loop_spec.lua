-- spec/node_loop_spec.lua: which modules load which (helios.sim never loads helios.raft),
-- the loop API of helios.raft (run, stop, spawn, sleep, after,
-- every, now), core.mp_encode/mp_decode, and raft.new's option checks. Every loop run has
-- a deadline timer.

local raft = require("helios.raft")
local core = require("helios.core")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local format = string.format

local function run_with_deadline(ms)
    local deadline = raft.after(ms, function() core.fail("deadline passed") end)
    local ok, err = raft.run()
    deadline:stop()
    return ok, err
end

describe("the Lua modules", function()
    -- Each module in a fresh luajit: what it loads is what a user of it gets.
    local function loaded_by(name)
        local code = format("package.path = %q; package.cpath = %q; require(%q); "
            .. "local t, each = {}, pairs for k in each(package.loaded) do "
            .. "if k:match('^helios') then t[#t + 1] = k end end table.sort(t) "
            .. "io.write(table.concat(t, ' '))", package.path, package.cpath, name)
        local p = assert(io.popen("luajit -e " .. require("helios.util.shell").quote(code)))
        local out = p:read("*a")
        p:close()
        return " " .. out .. " "
    end

    it("helios.sim and helios.node do not load the networked node", function()
        for _, name in ipairs({ "helios.sim", "helios.node" }) do
            local mods = loaded_by(name)
            assert.matches(" " .. name:gsub("%.", "%%.") .. " ", mods)
            assert.is_nil(mods:find(" helios.raft ", 1, true), name .. " loaded: " .. mods)
        end
    end)

    it("helios.raft keeps the loop's and the node's public names", function()
        local loop, node = require("helios.loop"), require("helios.node")
        for _, name in ipairs({ "run", "stop", "now", "after", "every", "spawn", "sleep" }) do
            assert.are.equal(loop[name], raft[name], name)
        end
        for _, name in ipairs({ "wrap", "ROLES", "EVENTS", "apply_entry", "shape_status",
                                "describe_value", "DEFAULT_APPLY_TIMEOUT_MS" }) do
            assert.are.equal(node[name], raft[name], name)
        end
        assert.is_function(raft.new)
    end)
end)

describe("helios.raft loop", function()
    it("runs timers, coroutines and sleep in order, and stops", function()
        local seen, ticks = {}, 0
        local every
        every = raft.every(5, function()
            seen[#seen + 1] = "tick"
            ticks = ticks + 1
            if ticks >= 3 then every:stop() end
        end)
        raft.spawn(function(a, b)
            seen[#seen + 1] = a .. b
            local t0 = raft.now()
            raft.sleep(30)
            assert(raft.now() - t0 >= 29)
            seen[#seen + 1] = "woke"
            raft.stop()
        end, "x", "y")
        assert(run_with_deadline(2000))
        assert.equal("xy", seen[1])
        assert.equal("woke", seen[#seen])
        assert.equal(3, ticks)
    end)

    it("counts a timer armed between two runs from then, not from the last run", function()
        raft.after(1, function() raft.stop() end)
        assert(run_with_deadline(1000))
        core.sleep_ms(300) -- the loop does not run: its cached clock goes stale
        local t0, fired = core.clock_ms(), nil
        raft.after(200, function()
            fired = core.clock_ms() - t0
            raft.stop()
        end)
        assert(run_with_deadline(2000))
        assert.is_true(fired >= 190, ("fired after %.0f ms"):format(fired))
    end)

    it("returns nil and the error (with a traceback) of a failing callback", function()
        raft.after(1, function() error("timer boom") end)
        local ok, err = run_with_deadline(2000)
        assert.is_nil(ok)
        assert.matches("timer boom", err, 1, true)
        assert.matches("traceback", err, 1, true)
        raft.spawn(function() raft.sleep(1); error("coroutine boom") end)
        ok, err = run_with_deadline(2000)
        assert.is_nil(ok)
        assert.matches("coroutine boom", err, 1, true)
    end)

    it("refuses misuse with Usage errors", function()
        assert.has_error(function() raft.sleep(10) end,
            "Usage: loop.sleep(ms): only inside a coroutine on the loop (loop.spawn)")
        assert.has_error(function() raft.every(0, function() end) end)
        assert.has_error(function() raft.after(-1, function() end) end)
        raft.after(0, function()
            local ok, err = pcall(raft.run)
            assert(not ok and err:find("already running", 1, true))
            raft.stop()
        end)
        assert(run_with_deadline(2000))
    end)
end)

describe("core.mp_encode / mp_decode", function()
    it("round-trips maps, arrays, strings with any bytes, numbers and booleans", function()
        local v = { id = 7, op = "apply", cmd = "\0\255bytes", list = { 1, 2.5, -3, "x" },
                    ok = true, no = false, nested = { a = { b = { c = {} } } } }
        local back = core.mp_decode(core.mp_encode(v))
        assert.same(v, back)
        assert.equal(2 ^ 40, core.mp_decode(core.mp_encode(2 ^ 40)))
    end)

    it("refuses what it cannot encode, naming where", function()
        assert.has_error(function() core.mp_encode({ f = print }) end,
            "mp_encode: cannot encode a function value (at value.f)")
        local cyc = {}
        cyc.self = cyc
        assert.has_error(function() core.mp_encode(cyc) end)
    end)

    it("rejects malformed, truncated, oversized and over-deep input", function()
        local cases = {
            "",                          -- empty
            "\x92\x01",                  -- truncated array
            "\xdd\xff\xff\xff\xff",      -- array claiming 2^32 elements
            "\x81\xc0\x01",              -- nil map key
            "\xc1",                      -- never-used byte
            "\xd4\x01\x02",              -- ext type
            "\x01\x02",                  -- trailing bytes
            string.rep("\x91", 40) .. "\x01", -- 40 levels deep
        }
        for _, bytes in ipairs(cases) do
            local v, err = core.mp_decode(bytes)
            assert.is_nil(v)
            assert.matches("^msgpack: ", err)
        end
    end)
end)

describe("raft.new option checks", function()
    local base
    before_each(function()
        base = { id = "a", peers = { a = "127.0.0.1:9" }, data_dir = "/nonexistent/x",
                 fsm = { apply = function() end }, secret = "s" }
    end)
    local function with(k, v)
        local o = {}
        for kk, vv in each(base) do o[kk] = vv end
        o[k] = v
        return o
    end

    it("names the field of a bad option", function()
        local cases = {
            { "election_timeout_ms", 0,
              "raft.new: election_timeout_ms: must be a positive integer (got 0)" },
            { "election_timeout_ms", "300",
              'raft.new: election_timeout_ms: must be a positive integer (got "300", a string)' },
            { "heartbeat_timeout_ms", 1.5,
              "raft.new: heartbeat_timeout_ms: must be a positive integer (got 1.5)" },
            { "prevote", "yes", 'raft.new: prevote: must be a boolean (got "yes", a string)' },
            { "snapshot_threshold_bytes", 0,
              "raft.new: snapshot_threshold_bytes: must be a positive integer (got 0)" },
            { "snapshot_threshold_bytes", "64M", "raft.new: snapshot_threshold_bytes: must be "
              .. 'a positive integer (got "64M", a string)' },
            { "trailing_logs_bytes", 0,
              "raft.new: trailing_logs_bytes: must be a positive integer (got 0)" },
            { "trailing_logs_bytes", -1,
              "raft.new: trailing_logs_bytes: must be a positive integer (got -1)" },
            { "id", 5, "raft.new: id: must be a non-empty string (got 5)" },
            { "data_dir", nil, "raft.new: data_dir: must be a non-empty string" },
            { "fsm", {}, "raft.new: fsm: must be a table with an apply method" },
            { "secret", nil, "raft.new: secret: must be a non-empty string" },
            { "secret", "", "raft.new: secret: must be a non-empty string (or give "
              .. "secret_file) (got an empty string)" },
            { "listen", "nope", 'raft.new: listen: address must be host:port (got "nope", a string)' },
            { "listen", "nosuchhost.invalid:19530", "raft.new: listen: address must have a "
              .. "numeric IPv4 host, [IPv6] or localhost (host names are not resolved) "
              .. '(got "nosuchhost.invalid:19530", a string)' },
            { "peers", { a = "127.0.0.1:9", b = "10.0.0.256:1" },
              'raft.new: peers["b"]: address must have a numeric IPv4 host' },
            { "peers", { b = "127.0.0.1:1" }, "raft.new: peers: must be a table that includes this node" },
            { "bogus", 1, "raft.new: bogus: unknown option" },
        }
        for _, case in ipairs(cases) do
            local ok, err = pcall(raft.new, with(case[1], case[2]))
            assert.is_false(ok)
            -- From a pcall: no position at all (never one inside raft.lua).
            assert.are.equal(case[3], err:sub(1, #case[3]))
        end
    end)

    it("raises at the caller's line, not inside raft.lua", function()
        local ok, err = pcall(function()
            local node = raft.new(with("election_timeout_ms", "300")) -- not a tail call
            return node
        end)
        assert.is_false(ok)
        assert.matches("^spec/node_loop_spec%.lua:%d+: raft%.new: election_timeout_ms: ", err)
    end)

    it("accepts numeric IPv4, [IPv6] and localhost addresses", function()
        local address = require("helios.util.address")
        for _, addr in ipairs({ "127.0.0.1:1", "[::1]:9001", "localhost:9001",
                                "[fe80::1:2]:65535" }) do
            assert.is_nil(address.problem(addr), addr)
            assert.is_true(address.valid(addr), addr)
        end
        for _, addr in ipairs({ "db1:9001", "1.2.3:9", "[::1]", "::1:9001x", "127.0.0.1:0" }) do
            assert.is_string(address.problem(addr), addr)
            assert.is_false(address.valid(addr), addr)
        end
        -- helios.raft keeps its public name, and cluster files use the same check.
        assert.are.equal(address.problem, raft.address_problem)
        assert.is_false(require("helios.clusterfile").valid_address("db1:9001"))
    end)

    it("passes the core's cross-field checks through with the raft.new prefix", function()
        local o = with("election_timeout_ms", 10)
        o.heartbeat_timeout_ms = 50
        local ok, err = pcall(raft.new, o)
        assert.is_false(ok)
        assert.matches("^.*raft%.new: ", err)
    end)

    it("reads the secret from secret_file", function()
        local path = os.tmpname()
        local f = assert(io.open(path, "w"))
        f:write("file secret\n")
        f:close()
        local o = with("secret", nil)
        o.secret_file = path
        local node = raft.new(o)
        assert.equal("a", node.id)
        node:shutdown() -- never started: its handles close at the next loop turn
        os.remove(path)
    end)
end)

describe("raft.new apply waiting", function()
    it("fails a waiting apply with timeout, and with shutdown when the node stops", function()
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute(format("mkdir -p '%s'", dir)))
        finally(function() os.execute(format("rm -rf '%s'", dir)) end)
        local port, other = core.free_port(), core.free_port()
        -- Two voters, one of them never started: the leader cannot commit anything.
        local node = raft.new{ id = "a", peers = { a = "127.0.0.1:" .. port, b = "127.0.0.1:" .. other },
                               data_dir = dir .. "/a", fsm = { apply = function() end }, secret = "s",
                               election_timeout_ms = 100, heartbeat_timeout_ms = 20 }
        assert(node:start())
        finally(function() if node:shutdown() then run_with_deadline(3000) end end)
        local results = {}
        raft.spawn(function()
            -- A lone node of two never wins an election; make a proposal fail anyway:
            results.propose = { node:apply("x", 100) }
            -- A callback-style wait outlives the shutdown below and gets "shutdown".
            node._backend:_wait("a", 99, 1, 10000, function(...) results.wait = { ... } end)
            local _, code = nil, nil
            node._backend:_wait("a", 98, 1, 50, function(...) _, code = ... end)
            local waited = 0
            while code == nil and waited < 2000 do -- the 50 ms timeout, with a deadline
                raft.sleep(10)
                waited = waited + 10
            end
            results.timeout = code
            node:shutdown()
        end)
        assert(run_with_deadline(5000))
        assert.equal("not_leader", results.propose[2])
        assert.equal("timeout", results.timeout)
        assert.same({ nil, "shutdown", "node a shut down" }, { results.wait[1], results.wait[2], results.wait[3] })
    end)
end)
