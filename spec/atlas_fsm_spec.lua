-- atlas_fsm_spec.lua: the ATLAS state machine on its own (helios.atlas.fsm): every command
-- and option, expiry judged by the entries' stamps only, purge only of keys still expired,
-- user commands (rollback, sandbox), exactly-once sessions, snapshot/restore.

local atlas = require("helios.atlas")
local core = require("helios.core")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
local E = atlas.encode

-- A store and an apply(bytes, time_ms) that numbers entries 1, 2, ...
local function fresh(opts)
    local f = atlas.fsm(opts)
    local index = 0
    local function apply(bytes, time_ms)
        index = index + 1
        return f:apply(bytes, index, { index = index, term = 1, time_ms = time_ms })
    end
    return f, apply
end

describe("atlas.fsm", function()
    it("set, get, delete, exists with nx and xx", function()
        local f, apply = fresh()
        assert.is_true(apply(E.set("a", "1"), 1000))
        assert.are.equal("1", f:get("a"))
        assert.is_false(apply(E.set("a", "2", nil, { nx = true }), 1000))
        assert.are.equal("1", f:get("a"))
        assert.is_false(apply(E.set("b", "2", nil, { xx = true }), 1000))
        assert.is_nil(f:get("b"))
        assert.is_true(apply(E.set("a", "3", nil, { xx = true }), 1000))
        assert.is_true(apply(E.set("b", "4", nil, { nx = true }), 1000))
        assert.are.equal("3", f:get("a"))
        assert.are.equal(1, apply(E.del("a"), 1000))
        assert.are.equal(0, apply(E.del("a"), 1000))
        assert.is_false(f:exists("a"))
        assert.is_true(f:exists("b"))
        -- any bytes as keys and values
        local k, v = "\0\255 key\n", "\0\1\2 value\255"
        assert.is_true(apply(E.set(k, v), 1000))
        assert.are.equal(v, f:get(k))
        assert.are.equal(2, f:size())
    end)

    it("incr, cas, mset, keys, mget; malformed commands change nothing", function()
        local f, apply = fresh()
        assert.are.equal(1, apply(E.incr("n"), 10))
        assert.are.equal(11, apply(E.incr("n", 10), 10))
        assert.are.equal(-1, apply(E.incr("n", -12), 10))
        apply(E.set("s", "abc"), 10)
        local r = apply(E.incr("s"), 10)
        assert.are.equal("invalid", r.err)
        assert.are.equal("abc", f:get("s"))
        assert.are.equal("invalid", apply(E.incr("n", 1.5), 10).err)
        assert.is_true(apply(E.cas("c", nil, "x"), 10))      -- absent expected
        assert.is_false(apply(E.cas("c", nil, "y"), 10))
        assert.is_false(apply(E.cas("c", "z", "y"), 10))
        assert.is_true(apply(E.cas("c", "x", "y"), 10))
        assert.are.equal("y", f:get("c"))
        assert.is_true(apply(E.mset({ "p:1", "a", "p:2", "b", "q:1", "c" }), 10))
        assert.are.same({ "p:1", "p:2" }, f:keys("p:"))
        assert.are.same({ "p:1" }, f:keys("p:", 1))
        assert.are.same({ n = 3, "a", nil, "c" }, f:mget({ "p:1", "zz", "q:1" }))
        -- mset is all or nothing: one bad value, nothing written
        assert.are.equal("invalid", apply(E.mset({ "m1", "x", "m2", 5 }), 10).err)
        assert.is_nil(f:get("m1"))
        assert.are.equal("invalid", apply("not msgpack \193", 10).err)
        assert.are.equal("invalid", apply(E.raw({ op = "nope" }), 10).err)
        assert.are.equal("invalid", apply(E.set("k", "v", -5), 10).err)
        assert.is_nil(f:get("k"))
    end)

    it("judges TTLs by the entries' stamps only, the newest stamp never going back", function()
        local f, apply = fresh()
        assert.is_true(apply(E.set("t", "v", 100), 1000))    -- expires at 1100
        assert.are.equal(100, f:ttl("t"))
        assert.are.equal(-1, (function() apply(E.set("p", "v"), 1000) return f:ttl("p") end)())
        assert.are.equal(-2, f:ttl("none"))
        apply(E.incr("other"), 1099)
        assert.are.equal("v", f:get("t"))                    -- by 1099: alive
        assert.are.equal(1, f:ttl("t"))
        apply(E.incr("other"), 1100)
        assert.is_nil(f:get("t"))                            -- by 1100: expired
        assert.are.equal(-2, f:ttl("t"))
        -- a later entry stamped earlier (a new leader's clock behind) does not revive it
        apply(E.incr("other"), 900)
        assert.is_nil(f:get("t"))
        assert.is_true(apply(E.set("t", "new", nil, { nx = true }), 900)) -- absent for nx
        -- expire sets, moves and removes a TTL; incr and cas keep it
        assert.is_true(apply(E.expire("t", 50), 1200))       -- at 1250
        assert.are.equal(2, apply(E.incr("c"), 1200) + 1)
        apply(E.set("c", "5", 30), 1200)
        assert.are.equal(6, apply(E.incr("c"), 1210))
        assert.are.equal(20, f:ttl("c"))
        assert.is_true(apply(E.cas("c", "6", "7"), 1210))
        assert.are.equal(20, f:ttl("c"))
        assert.is_true(apply(E.expire("t", false), 1210))
        assert.are.equal(-1, f:ttl("t"))
        assert.is_false(apply(E.expire("missing", 10), 1210))
        apply(E.incr("other"), 5000)
        assert.are.equal("new", f:get("t"))
        assert.is_nil(f:get("c"))
    end)

    it("judges a read at the time it is given, never before the newest stamp", function()
        local f, apply = fresh()
        assert.is_true(apply(E.set("t", "v", 100), 1000))    -- expires at 1100
        apply(E.set("p", "v"), 1010)
        -- a later time (a linearizable read's leader clock) with no entry stamped since
        assert.is_nil(f:get("t", 1100))
        assert.is_false(f:exists("t", 1100))
        assert.are.equal(-2, f:ttl("t", 1100))
        assert.are.equal(30, f:ttl("t", 1070))
        assert.are.same({ "p" }, f:keys(nil, nil, 1100))
        assert.are.same({ n = 2, nil, "v" }, f:mget({ "t", "p" }, 1100))
        -- no time, or an earlier one (a leader whose clock is behind): the newest stamp
        assert.are.equal("v", f:get("t"))
        assert.are.equal(90, f:ttl("t", 500))
        apply(E.incr("other"), 1100)
        assert.is_nil(f:get("t", 1050))
        assert.are.same({ "other", "p" }, f:keys(nil, nil, 900))
        -- reads change nothing: the key is still held until a command or purge drops it
        assert.are.equal("v", (f:held("t")))
    end)

    it("purges only keys still expired at the purge entry's stamp", function()
        local f, apply = fresh()
        apply(E.set("a", "1", 10), 100)   -- 110
        apply(E.set("b", "2", 10), 100)   -- 110
        apply(E.set("c", "3", 500), 100)  -- 600
        apply(E.set("d", "4"), 100)
        assert.are.same({ "a", "b" }, (function()
            local k = f:expired_keys(200, 10) table.sort(k) return k end)())
        -- b was set again (new TTL) between the leader's proposal and its commit
        apply(E.set("b", "2", 1000), 150)
        assert.are.equal(4, f:size())
        assert.are.equal(1, apply(E.purge({ "a", "b", "c", "d", "zz" }), 200))
        assert.are.equal(3, f:size())
        assert.are.equal("2", f:get("b"))
        assert.are.equal("3", f:get("c"))
        assert.are.same({}, f:expired_keys(300, 10))
        assert.are.same({ "c" }, f:expired_keys(600, 10))
        assert.are.same({ "c" }, f:expired_keys(600, 10))   -- kept until purged
        -- a key set again and again with a TTL does not grow the expiry index for ever
        for i = 1, 5000 do apply(E.set("again", "v", 1000 + i), 300) end
        assert.is_true(#f.heap_e < 2 * f:size() + 1100, tostring(#f.heap_e))
        assert.are.same({ "again", "b", "c" }, (function()
            local k = f:expired_keys(1e9, 10) table.sort(k) return k end)())
    end)

    it("runs user commands; a command that raises changes nothing", function()
        atlas.command("spec_transfer", function(store, args)
            local from = tonumber(store:get(args[1]) or "0")
            if from < args[3] then error("insufficient funds") end
            store:set(args[1], tostring(from - args[3]))
            store:incr(args[2], args[3])
            return { from = from - args[3] }
        end)
        atlas.command("spec_half_then_fail", function(store, args)
            store:set("acct:a", "999")
            store:delete("acct:b")
            store:set("fresh", "x", 10)
            error("boom after writes")
        end)
        local f, apply = fresh()
        apply(E.mset({ "acct:a", "100", "acct:b", "5" }), 10)
        apply(E.expire("acct:b", 1000), 10)
        assert.are.same({ v = { from = 70 } },
                        apply(E.call("spec_transfer", { "acct:a", "acct:b", 30 }), 20))
        assert.are.equal("35", f:get("acct:b"))
        local r = apply(E.call("spec_transfer", { "acct:a", "acct:b", 1000 }), 20)
        assert.are.equal("command_error", r.err)
        assert.matches("insufficient funds", r.msg)
        local before = f:snapshot()
        r = apply(E.call("spec_half_then_fail", {}), 20)
        assert.are.equal("command_error", r.err)
        assert.matches("boom after writes", r.msg)
        assert.are.equal("70", f:get("acct:a"))
        assert.are.equal("35", f:get("acct:b"))
        assert.are.equal(990, f:ttl("acct:b"))             -- its TTL restored too
        assert.is_nil(f:get("fresh"))
        -- the state is the same as before, up to the applied index
        f.applied = f.applied - 1
        assert.are.equal(before, f:snapshot())
        assert.are.equal("unknown_command", apply(E.call("no_such", {}), 20).err)
    end)

    it("runs user commands in a sandbox: no os, io, math.random, require, globals", function()
        local probes = {
            spec_os = function() return os.time() end,
            spec_io = function() return io.open("/etc/passwd") end,
            spec_random = function() return math.random() end,
            spec_require = function() return require("os") end,
            spec_global = function() leaked = 1 end, -- luacheck: ignore
            spec_load = function() return loadstring("return 1")() end,
            spec_lib = function() string.upper = string.lower end,
            spec_meta = function() return getmetatable("").__index end,
        }
        local f, apply = fresh()
        for name, fn in each(probes) do
            atlas.command(name, fn)
            local r = apply(E.call(name, {}), 1)
            assert.are.equal("command_error", r and r.err, name)
        end
        assert.is_nil(rawget(_G, "leaked"))
        atlas.command("spec_time", function(store, args, entry)
            return { entry.time_ms, math.floor(2.5), string.upper("x"), entry.index }
        end)
        assert.are.same({ v = { 77, 2, "X", 9 } }, apply(E.call("spec_time", {}), 77))
        assert.has_error(function() atlas.command("x", print) end)
        assert.are.equal(0, f:size())
    end)

    it("applies a numbered write once; sessions expire by entry time", function()
        local f, apply = fresh({ session_timeout_ms = 1000 })
        local s = apply(E.register(), 100)
        assert.is_number(s)
        local w1 = atlas.numbered(E.incr("n", 5), s, 1)
        assert.are.equal(5, apply(w1, 100))
        assert.are.equal(5, apply(w1, 150))                 -- retried: the first result
        assert.are.equal("5", f:get("n"))
        assert.are.equal(15, apply(atlas.numbered(E.incr("n", 10), s, 2), 200))
        assert.are.equal(5, apply(w1, 250))
        -- acknowledged results are forgotten; a retry of one is refused, not reapplied
        assert.are.equal(16, apply(atlas.numbered(E.incr("n", 1), s, 3, 2), 300))
        assert.are.equal("invalid", apply(w1, 300).err)
        assert.are.equal("16", f:get("n"))
        -- idle for longer than the timeout (by entry stamps): expired
        apply(E.incr("other"), 1299)
        assert.are.equal(16, apply(atlas.numbered(E.incr("n", 1), s, 3), 1299))
        assert.are.equal("session_expired", apply(atlas.numbered(E.incr("n", 1), s, 4), 2300).err)
        assert.are.equal("16", f:get("n"))
        assert.is_nil(f:session(s))
        -- a registration sweeps idle sessions
        local s2 = apply(E.register(), 2300)
        local s3 = apply(E.register(), 3400)
        assert.is_nil(f:session(s2))
        assert.is_table(f:session(s3))
        assert.are.equal("session_expired", apply(atlas.numbered(E.incr("n"), 12345, 1), 3400).err)
    end)

    it("snapshots and restores the whole store, TTLs and sessions included", function()
        local f, apply = fresh()
        local s = apply(E.register(), 100)
        apply(atlas.numbered(E.set("a", "1", 500), s, 1), 100)
        apply(E.set("b", "\0bin\255"), 100)
        apply(E.set("c", "3", 50), 100)
        local bytes = f:snapshot()
        local g = atlas.fsm()
        g:restore(bytes)
        assert.are.equal(bytes, g:snapshot())
        assert.are.equal(f.applied, g.applied)
        assert.are.equal(500, g:ttl("a"))
        assert.are.equal("\0bin\255", g:get("b"))
        assert.are.same({ "c" }, g:expired_keys(150, 10))   -- the expiry index rebuilt
        -- the session survives: the retry is answered from the cache, not reapplied
        assert.is_true(g:apply(atlas.numbered(E.set("a", "other"), s, 1), 6,
                               { index = 6, term = 1, time_ms = 120 }))
        assert.are.equal("1", g:get("a"))
        -- via a writer too (the forked snapshot of a networked node)
        local parts = {}
        f:snapshot({ write = function(_, ...)
            for _, p in ipairs({ ... }) do parts[#parts + 1] = p end
        end })
        assert.are.equal(bytes, table.concat(parts))
        assert.has_error(function() atlas.fsm():restore("garbage") end)
        assert.has_error(function() atlas.fsm():restore(bytes:sub(1, #bytes - 3)) end)
    end)

    -- A snapshot in slices (a networked node's, FSM.snapshot_slices) with writes applied
    -- between the slices: overwrites, deletes, new keys, TTLs set and removed, expiries,
    -- in shards taken and not yet taken. It must write the store as of its start.
    local function sliced(f, w, between)
        local co = coroutine.create(function() return f:snapshot(w, coroutine.yield) end)
        local slices = 0
        local ok, err = coroutine.resume(co)
        while coroutine.status(co) == "suspended" do
            slices = slices + 1
            between(slices)
            ok, err = coroutine.resume(co, true)
        end
        assert(ok, err)
        return slices
    end

    it("snapshots in slices the store as of the start, whatever is applied between", function()
        local f, apply = fresh()
        local s = apply(E.register(), 100)
        for i = 1, 20000 do
            apply(E.set("k" .. i, "v" .. i, i % 7 == 0 and 5000 + i or nil), 100)
        end
        apply(atlas.numbered(E.set("a", "1"), s, 1), 100)
        local before = f:snapshot() -- all at once: the reference
        local parts = {}
        local w = { write = function(_, ...)
            for _, p in ipairs({ ... }) do parts[#parts + 1] = p end
        end }
        local n = 0
        local slices = sliced(f, w, function()
            for _ = 1, 300 do
                n = n + 1
                local k = "k" .. (n * 7919 % 25000 + 1) -- hits old keys and new ones
                local op = n % 6
                if op == 0 then apply(E.del(k), 200)
                elseif op == 1 then apply(E.set(k, "new" .. n), 200)
                elseif op == 2 then apply(E.set(k, "ttl" .. n, 50), 200)
                elseif op == 3 then apply(E.persist(k), 200)
                elseif op == 4 then apply(E.incr("counter" .. n % 50, 1), 200)
                else apply(atlas.numbered(E.set("b" .. n, "x"), s, n + 1), 6000 + n) end
            end
        end)
        assert.is_true(slices > 64, "slices: " .. slices) -- at least one per shard
        assert.is_true(n > 20000)
        assert.is_true(before == table.concat(parts),
                       "the sliced snapshot is not the store as of its start")
        assert.is_nil(f.snap) -- nothing kept once done
        -- the writes between the slices are all in the store, and in the next snapshot
        local g = atlas.fsm()
        g:restore(f:snapshot())
        assert.are.equal(f.applied, g.applied)
        assert.is_true(f:snapshot() == g:snapshot(), "restored store differs")
        assert.is_true(before ~= f:snapshot(), "the writes between slices are missing")
    end)

    it("gives up a sliced snapshot when yield says so, and keeps nothing after", function()
        local f = atlas.fsm()
        for i = 1, 5000 do f:_put("k" .. i, "v") end
        local co = coroutine.create(function()
            return f:snapshot({ write = function() end }, coroutine.yield)
        end)
        assert.is_true(coroutine.resume(co))
        f:_put("k1", "w")
        assert.is_table(f.snap)
        assert.is_true(coroutine.resume(co, false))
        assert.are.equal("dead", coroutine.status(co))
        assert.is_nil(f.snap)
        -- a restore during a sliced snapshot: the snapshot goes on with the old tables
        local co2 = coroutine.create(function()
            return f:snapshot({ write = function() end }, coroutine.yield)
        end)
        assert.is_true(coroutine.resume(co2))
        local g = atlas.fsm()
        g:_put("x", "y")
        f:restore(g:snapshot())
        assert.is_nil(f.snap)
        f:_put("z", "1")
        while coroutine.status(co2) == "suspended" do assert.is_true(coroutine.resume(co2, true)) end
        assert.is_nil(f.snap)
    end)

    it("spreads keys over its shard tables, whatever their pattern", function()
        -- One table for every key stalls a node each time it doubles (fsm.lua, "sharded");
        -- the shards must share the keys about evenly, for prefixes, suffixes and long keys.
        for _, pattern in ipairs({ "key:%012d", "user:%d", "%d.json", "a/b/%d/c",
                                   string.rep("p", 40) .. "%d" .. string.rep("s", 20),
                                   string.rep("q", 300) .. "%d" }) do
            local f = atlas.fsm()
            for i = 1, 32000 do f:_put(pattern:format(i), "v") end
            local mean, lo, hi = 32000 / #f.data, math.huge, 0
            for _, t in ipairs(f.data) do
                local n = 0
                for _ in each(t) do n = n + 1 end
                lo, hi = math.min(lo, n), math.max(hi, n)
            end
            assert.is_true(#f.data >= 16, "shards: " .. #f.data)
            assert.is_true(lo > mean / 2 and hi < mean * 1.5,
                           pattern .. string.format(": %d to %d keys a shard", lo, hi))
        end
    end)

    it("snapshots a million keys (smoke check; prints the time)", function()
        local f = atlas.fsm()
        for i = 1, 1e6 do
            f:_put("key:" .. i, "value-" .. i, i % 3 == 0 and 1e12 + i or nil)
        end
        local t0 = os.clock()
        local bytes = f:snapshot()
        local t1 = os.clock()
        local g = atlas.fsm()
        g:restore(bytes)
        local t2 = os.clock()
        print(string.format("\natlas: 1e6 keys: snapshot %.2f s (%d bytes), restore %.2f s",
                            t1 - t0, #bytes, t2 - t1))
        assert.are.equal(1e6, g:size())
        assert.are.equal("value-999999", g:get("key:999999"))
        assert.are.equal(1e12 + 999999, select(2, g:held("key:999999")))
        assert.is_nil(select(2, g:held("key:1")))
    end)

    it("encodes commands as msgpack tables", function()
        local c = core.mp_decode(E.set("k", "v", 5, { nx = true }))
        assert.are.same({ op = "set", "k", "v", ttl = 5, nx = true }, c)
    end)
end)
