--- helios.resp: the commands of a Redis-protocol (RESP2) client port, over the server of
-- helios.core (core.resp_listen, csrc/lua/resp_server.c).
--
--   local resp = require("helios.resp")
--   local server, code, detail = resp.serve("127.0.0.1:6379", {
--       password = "secret",          -- optional: AUTH as redis-server's requirepass
--       commands = {                  -- names are case-insensitive
--           GET = { arity = 2, fn = function(conn, argv, state) return value end },
--           SET = { arity = -3, fn = function(conn, argv, state)
--               local answer = conn:defer()            -- answer later, in request order
--               node:apply(..., function(...) answer(resp.OK) end)
--           end },
--       },
--       -- max_args, max_bulk, max_inline, max_output, max_pending, max_clients (beyond
--       -- it a client reads "-ERR max number of clients reached"): core.resp_listen's
--   })
--   server:address()  server:close()  server:clients()
--
-- A command's fn(conn, argv, state) gets the connection (conn:defer(), conn:close(),
-- conn:id()), argv (argv[1] is the name as sent) and a table private to the connection
-- (state.authed, state.db; commands may keep more there). It returns the reply: a string
-- (bulk), nil (null bulk), an integer, true ("+OK"), resp.ok(s), resp.err(s), an array
-- table (core.resp_listen's reply values), or calls conn:defer() and answers later. An
-- error it raises is sent as "-ERR <message>".
--
-- Arity is redis-server's: n means exactly n words with the name, -n at least n.
-- Built in: PING, ECHO, AUTH, SELECT (0 only), QUIT, COMMAND (COMMAND, COMMAND DOCS,
-- COMMAND COUNT: enough for redis-cli, which asks at startup); commands given in opts
-- replace them, except AUTH.
local core = require("helios.core")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local M = {}

M.OK = true
M.null_array = { null_array = true }

--- A simple string reply ("+s").
function M.ok(s) return { ok = s or "OK" } end

--- An error reply: msg as sent, its first word the code ("ERR ...", "MOVED ...").
function M.err(msg) return { err = msg } end

local function wrong_arity(name)
    return M.err(("ERR wrong number of arguments for '%s' command"):format(name:lower()))
end

-- redis-server's words: the name as sent, then the arguments quoted while under 128 bytes.
local function unknown(argv)
    local args = {}
    local len = 0
    for i = 2, #argv do
        if len >= 128 then break end
        local a = "'" .. argv[i]:sub(1, 128 - len) .. "' "
        args[#args + 1] = a
        len = len + #a - 3
    end
    return M.err(("ERR unknown command '%s', with args beginning with: %s")
        :format(argv[1]:sub(1, 128), table.concat(args)))
end

local function builtins(password, count)
    local cmds = {}
    cmds.PING = { arity = -1, fn = function(_, argv)
        if #argv > 2 then return wrong_arity("ping") end
        if argv[2] then return argv[2] end
        return M.ok("PONG")
    end }
    cmds.ECHO = { arity = 2, fn = function(_, argv) return argv[2] end }
    cmds.QUIT = { arity = -1, fn = function(conn)
        conn:close() -- after this reply
        return M.OK
    end }
    cmds.SELECT = { arity = 2, fn = function(_, argv, state)
        local n = argv[2]
        if not n:match("^%-?%d+$") then
            return M.err("ERR value is not an integer or out of range")
        end
        if tonumber(n) ~= 0 then return M.err("ERR DB index is out of range") end
        state.db = 0
        return M.OK
    end }
    cmds.COMMAND = { arity = -1, fn = function(_, argv)
        local sub = argv[2] and argv[2]:upper()
        if sub == "COUNT" then return count() end
        return {} -- COMMAND, COMMAND DOCS, COMMAND INFO ...: redis-cli copes with none
    end }
    cmds.AUTH = { arity = -2, fn = function(_, argv, state)
        if #argv > 3 then return M.err("ERR syntax error") end
        if password == nil then
            return M.err("ERR AUTH <password> called without any password configured for " ..
                "the default user. Are you sure your configuration is correct?")
        end
        local user, pass = "default", argv[2]
        if #argv == 3 then user, pass = argv[2], argv[3] end
        if user == "default" and pass == password then
            state.authed = true
            return M.OK
        end
        state.authed = false
        return M.err("WRONGPASS invalid username-password pair or user is disabled.")
    end }
    return cmds
end

-- Commands a client may send before AUTH, as redis-server allows.
local BEFORE_AUTH = { AUTH = true, QUIT = true }

--- The handler for core.resp_listen: argv -> command table lookup, arity, AUTH.
function M.handler(opts)
    opts = opts or {}
    local password = opts.password
    assert(password == nil or type(password) == "string", "resp: password must be a string")
    local cmds
    local function count()
        local n = 0
        for _ in each(cmds) do n = n + 1 end
        return n
    end
    cmds = builtins(password, count)
    for name, c in each(opts.commands or {}) do
        assert(type(name) == "string", "resp: command names are strings")
        assert(type(c) == "table" and type(c.fn) == "function" and type(c.arity) == "number"
            and c.arity ~= 0, "resp: command " .. name .. " needs { arity = n ~= 0, fn = function }")
        local up = name:upper()
        assert(up ~= "AUTH", "resp: AUTH is built in")
        cmds[up] = c
    end
    -- Per-connection state, dropped with the connection's userdata (it does not refer
    -- back to the connection, so the weak key can go).
    local states = setmetatable({}, { __mode = "k" })
    return function(conn, argv)
        local state = states[conn]
        if state == nil then
            state = { authed = password == nil, db = 0 }
            states[conn] = state
        end
        -- (Names come upper-case from most clients: no new string for those.)
        local name = argv[1]
        local c = cmds[name]
        if c == nil then
            name = name:upper()
            c = cmds[name]
            if c == nil then return unknown(argv) end
        end
        if not state.authed and not BEFORE_AUTH[name] then
            return M.err("NOAUTH Authentication required.")
        end
        local n = #argv
        if (c.arity > 0 and n ~= c.arity) or (c.arity < 0 and n < -c.arity) then
            return wrong_arity(argv[1])
        end
        return c.fn(conn, argv, state)
    end
end

--- Listen on addr ("host:port"; port 0: any) and serve opts.commands:
-- a server (server:address(), server:close()) or nil, code, detail.
function M.serve(addr, opts)
    opts = opts or {}
    local limits = {
        max_args = opts.max_args, max_bulk = opts.max_bulk, max_inline = opts.max_inline,
        max_output = opts.max_output, max_pending = opts.max_pending,
        max_clients = opts.max_clients,
    }
    return core.resp_listen(addr, M.handler(opts), limits)
end

return M
