--- helios.clusterfile: read, check and write the cluster file of `helios node`.
--
-- A cluster file is Lua that returns a table:
--
--   return {
--     cluster_id = "demo",                     -- peers naming another cluster are refused
--     nodes = { ["node-1"] = "127.0.0.1:9001", -- every node: id = "host:port" it listens on
--               ["node-2"] = "127.0.0.1:9002",
--               ["node-3"] = "127.0.0.1:9003" },
--     fsm = "helios.fsm.kv",                   -- a module whose new() returns the FSM
--     data_dir = "./data",                     -- each node keeps <data_dir>/<id>
--     secret = "...",  -- or secret_file = "secret.txt" (one of the two; the file's content
--                      -- without its trailing newline)
--     log_repeat_ms = 10000,                   -- helios node: repeats of a log message are
--                                              -- summarized once per this many ms
--     log_level = "info",                      -- helios node: "debug", "info", "warn",
--     log_format = "text",                     -- "error"; "text" or "json" (one object a
--     log_file = "./logs/{id}.log",            -- line); a file ({id}: the node's id;
--                                              -- default stderr), reopened on SIGHUP
--                                              -- (docs/logging.md)
--     -- ATLAS (fsm = "helios.atlas.fsm", docs/atlas.md):
--     client_listen = { ["node-1"] = "127.0.0.1:7001",  -- each node's Redis-protocol (RESP2)
--                       ["node-2"] = "127.0.0.1:7002",  -- port for clients (redis-cli);
--                       ["node-3"] = "127.0.0.1:7003" },-- keys are node ids of nodes
--     client_password = "...",                 -- AUTH on those ports (as requirepass)
--     atlas_modules = { "bank" },              -- modules of user commands (atlas.command)
--                                              -- every node loads; the log records the set
--     metrics_listen = { ["node-1"] = "127.0.0.1:9101" },  -- optional: the Prometheus
--                                              -- endpoint of each node listed (port 0: any;
--                                              -- docs/metrics.md)
--     election_timeout_ms = 300,               -- any other field: an option of raft.new
--     max_clients = 20000,                     -- (such as this one: the connections the
--                                              -- control socket and the RESP port take)
--   }
--
-- Relative paths (data_dir, secret_file) are relative to the cluster file's directory, so
-- a node starts the same from any working directory.
--
--   local cf = require("helios.clusterfile")
--   local conf, err = cf.load("cluster.lua")   -- err: "cluster.lua: nodes[\"node-2\"]:
--                                              -- address must be host:port (got
--                                              -- \"localhost\", a string)"
--   local opts, err = cf.node_options(conf, "node-1")   -- the table for raft.new
--                       -- (client_listen = that node's address, client_peers = all of them)
--   cf.write(path, conf)                       -- the inverse of load, mode 0600

local format, concat, sort = string.format, table.concat, table.sort
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each, ipairs, type, tostring, tonumber, pcall, setmetatable, loadfile, setfenv =
    pairs, ipairs, type, tostring, tonumber, pcall, setmetatable, loadfile, setfenv
local io, os = io, os

local M = {}

--- Fields of the cluster file that are not options of raft.new.
M.FIELDS = { cluster_id = true, nodes = true, fsm = true, data_dir = true, secret = true,
             secret_file = true, control = true, log_repeat_ms = true, client_listen = true,
             atlas_modules = true, log_level = true, log_format = true, log_file = true,
             metrics_listen = true }

--- A node id: letters, digits, '-', '_' and '.', up to 64 bytes.
function M.valid_id(id)
    return type(id) == "string" and #id <= 64 and id:match("^[%w][%w_.%-]*$") ~= nil
end

local address = require("helios.util.address")
local shell = require("helios.util.shell")

--- Whether addr is "host:port" with a port in 1..65535 and a numeric IPv4 host, [IPv6] or
-- localhost (helios.util.address; address.problem says what is wrong otherwise).
M.valid_address = address.valid

local function describe(v)
    return require("helios.node").describe_value(v)
end

local function dirname(path)
    return path:match("^(.*)/[^/]*$") or "."
end

--- path made absolute against base (a directory), unless it already is.
function M.resolve(base, path)
    if path:sub(1, 1) == "/" then return path end
    if base == "." then
        local pwd = os.getenv("PWD")
        if pwd and pwd ~= "" then base = pwd end
    end
    path = path:gsub("^%./", "")
    if path == "." then return base end
    return base .. "/" .. path
end

--- Check a cluster table; conf is modified in place (defaults, resolved paths).
-- @tparam table conf what the file returned
-- @tparam string file the file's name, for messages
-- @return conf, or nil and "file: field: what is wrong"
function M.check(conf, file)
    local function fail(fmt, ...)
        return nil, file .. ": " .. format(fmt, ...)
    end
    if type(conf) ~= "table" then
        return fail("must return a table (got %s)", describe(conf))
    end
    if type(conf.nodes) ~= "table" then
        return fail("nodes: must be a table of id = \"host:port\" (got %s)", describe(conf.nodes))
    end
    local n = 0
    local seen = {}
    for id, addr in each(conf.nodes) do
        if not M.valid_id(id) then
            return fail("nodes: %s is not a valid node id (letters, digits, - _ .)",
                type(id) == "string" and format("%q", id) or tostring(id))
        end
        local problem = address.problem(addr)
        if problem then
            return fail("nodes[%q]: address %s (got %s)", id, problem, describe(addr))
        end
        if seen[addr] then
            return fail("nodes[%q]: address %s is also node %s's", id, addr, seen[addr])
        end
        seen[addr] = id
        n = n + 1
    end
    if n == 0 then return fail("nodes: at least one node is needed") end
    if conf.cluster_id == nil then conf.cluster_id = "helios" end
    if type(conf.cluster_id) ~= "string" or conf.cluster_id == "" then
        return fail("cluster_id: must be a non-empty string (got %s)", describe(conf.cluster_id))
    end
    if conf.fsm == nil then conf.fsm = "helios.fsm.kv" end
    if type(conf.fsm) ~= "string" or not conf.fsm:match("^[%w_.]+$") then
        return fail("fsm: must be a module name such as \"helios.fsm.kv\" (got %s)",
            describe(conf.fsm))
    end
    if conf.data_dir == nil then conf.data_dir = "./data" end
    if type(conf.data_dir) ~= "string" or conf.data_dir == "" then
        return fail("data_dir: must be a path (got %s)", describe(conf.data_dir))
    end
    conf.data_dir = M.resolve(dirname(file), conf.data_dir)
    if conf.secret ~= nil and conf.secret_file ~= nil then
        return fail("secret, secret_file: give one of them, not both")
    end
    if conf.secret_file ~= nil then
        if type(conf.secret_file) ~= "string" then
            return fail("secret_file: must be a path (got %s)", describe(conf.secret_file))
        end
        local path = M.resolve(dirname(file), conf.secret_file)
        local f, err = io.open(path, "rb")
        if not f then return fail("secret_file: %s", tostring(err)) end
        local s = f:read("*a") or ""
        f:close()
        conf.secret = s:gsub("\r?\n$", "")
        conf.secret_file = nil
        if conf.secret == "" then return fail("secret_file: %s is empty", path) end
    elseif conf.secret == nil then
        return fail("secret: missing (give secret = \"...\" or secret_file = \"path\")")
    elseif type(conf.secret) ~= "string" or conf.secret == "" then
        return fail("secret: must be a non-empty string")
    end
    if conf.log_repeat_ms ~= nil and (type(conf.log_repeat_ms) ~= "number"
        or conf.log_repeat_ms < 0 or conf.log_repeat_ms % 1 ~= 0) then
        return fail("log_repeat_ms: must be a non-negative integer (ms)")
    end
    local log_problem = require("helios.nodelog").options_problem{ level = conf.log_level,
        format = conf.log_format, file = conf.log_file }
    if log_problem then return fail("%s", log_problem) end
    if conf.log_file ~= nil then
        conf.log_file = M.resolve(dirname(file), conf.log_file)
    end
    if conf.client_listen ~= nil then
        if type(conf.client_listen) ~= "table" then
            return fail("client_listen: must be a table of id = \"host:port\" (got %s)",
                describe(conf.client_listen))
        end
        for id, addr in each(conf.client_listen) do
            if not conf.nodes[id] then
                return fail("client_listen: %s is not a node of nodes (%s)",
                    type(id) == "string" and format("%q", id) or tostring(id),
                    concat(M.ids(conf), ", "))
            end
            local problem = address.problem(addr)
            if problem then
                return fail("client_listen[%q]: address %s (got %s)", id, problem,
                    describe(addr))
            end
            if seen[addr] then
                return fail("client_listen[%q]: address %s is also %s's", id, addr,
                    seen[addr]:match("^client_listen") and seen[addr]
                        or "node " .. seen[addr])
            end
            seen[addr] = format("client_listen[%q]", id)
        end
    end
    if conf.client_password ~= nil and (type(conf.client_password) ~= "string"
        or conf.client_password == "") then
        return fail("client_password: must be a non-empty string (got %s)",
            describe(conf.client_password))
    end
    if conf.atlas_modules ~= nil then
        local mods = conf.atlas_modules
        local n_mods = 0
        if type(mods) == "table" then
            for _ in each(mods) do n_mods = n_mods + 1 end
        end
        if type(mods) ~= "table" or n_mods ~= #mods then
            return fail("atlas_modules: must be a list of module names (got %s)", describe(mods))
        end
        for i, name in ipairs(mods) do
            if type(name) ~= "string" or not name:match("^[%w_][%w_.]*$") then
                return fail("atlas_modules[%d]: must be a module name such as \"bank\" (got %s)",
                    i, describe(name))
            end
        end
    end
    if conf.control ~= nil and type(conf.control) ~= "string" then
        return fail("control: must be a path (default <data_dir>/<id>/control.sock; got %s)",
            describe(conf.control))
    end
    if conf.metrics_listen ~= nil then
        if type(conf.metrics_listen) ~= "table" then
            return fail("metrics_listen: must be a table of id = \"host:port\" (got %s)",
                describe(conf.metrics_listen))
        end
        for id, addr in each(conf.metrics_listen) do
            if not M.valid_id(id) then
                return fail("metrics_listen: %s is not a valid node id",
                    type(id) == "string" and format("%q", id) or tostring(id))
            end
            -- Port 0 (any) is allowed: node:metrics_address() tells the one bound.
            local host = type(addr) == "string" and addr:match("^(.+):0$")
            local problem = address.problem(host and host .. ":1" or addr)
            if problem then
                return fail("metrics_listen[%q]: address %s (got %s)", id, problem, describe(addr))
            end
        end
    end
    for k, v in each(conf) do
        if type(k) ~= "string" then return fail("[%s]: fields are named", tostring(k)) end
        if not M.FIELDS[k] and type(v) ~= "number" and type(v) ~= "boolean"
            and type(v) ~= "string" then
            return fail("%s: must be a number, boolean or string (got %s)", k, describe(v))
        end
    end
    return conf
end

--- Load and check a cluster file.
-- @return conf, or nil and a message naming the file and the field
function M.load(file)
    local chunk, err = loadfile(file)
    if not chunk then
        return nil, (tostring(err):gsub("^cannot open (.*)$", "%1"))
    end
    -- The file may use the standard library, and nothing it sets leaks into ours.
    setfenv(chunk, setmetatable({}, { __index = _G }))
    local ok, conf = pcall(chunk)
    if not ok then return nil, format("%s: %s", file, tostring(conf)) end
    return M.check(conf, file)
end

--- The sorted node ids of a checked conf.
function M.ids(conf)
    local ids = {}
    for id in each(conf.nodes) do ids[#ids + 1] = id end
    sort(ids)
    return ids
end

--- The node's data directory and control socket path.
function M.node_paths(conf, id)
    local dir = conf.data_dir .. "/" .. id
    return dir, conf.control and conf.control:gsub("{id}", id) or dir .. "/control.sock"
end

--- The logging of node id: { level, format, file } (file nil: stderr), from the file's
-- log_level, log_format and log_file ("{id}" in it is the node's id).
function M.node_log(conf, id)
    return { level = conf.log_level or "info", format = conf.log_format or "text",
             file = conf.log_file and (conf.log_file:gsub("{id}", id)) or nil }
end

--- The options of raft.new for node id (fsm still a module name: the caller makes it).
-- With client_listen in the file: client_listen = the node's own client address (if the
-- file gives one), client_peers = every node's.
-- @return opts, or nil and a message
-- listen (optional): the address of a node the file does not list (one that joins a
-- running cluster: helios node --join --listen ADDR); client_listen (optional): its client
-- address (--client-listen ADDR), which wins over the file's.
function M.node_options(conf, id, file, listen, client_listen)
    if not conf.nodes[id] and listen == nil then
        return nil, format("%s: nodes: no node %q (the file has %s)", file or "cluster file",
            tostring(id), concat(M.ids(conf), ", "))
    end
    local dir, control = M.node_paths(conf, id)
    local opts = { id = id, listen = listen or conf.nodes[id], data_dir = dir, control = control,
                   peers = {}, secret = conf.secret, cluster_id = conf.cluster_id }
    for pid, addr in each(conf.nodes) do opts.peers[pid] = addr end
    for k, v in each(conf) do
        if not M.FIELDS[k] then opts[k] = v end
    end
    if client_listen ~= nil then
        local problem = address.problem(client_listen)
        if problem then
            return nil, format("--client-listen: address %s (got %s)", problem,
                describe(client_listen))
        end
    end
    if conf.client_listen or client_listen then
        opts.client_peers = {}
        for pid, addr in each(conf.client_listen or {}) do opts.client_peers[pid] = addr end
        opts.client_listen = client_listen or opts.client_peers[id]
        opts.client_peers[id] = opts.client_listen
    end
    opts.metrics_listen = conf.metrics_listen and conf.metrics_listen[id] or nil
    return opts
end

local function lua_value(v)
    if type(v) == "string" then return format("%q", v) end
    if type(v) == "table" then -- atlas_modules: a list of strings
        local items = {}
        for i, x in ipairs(v) do items[i] = lua_value(x) end
        if #items == 0 then return "{}" end
        return "{ " .. concat(items, ", ") .. " }"
    end
    return tostring(v)
end

--- Write conf as a cluster file (mode 0600: it holds the secret).
function M.write(path, conf)
    local lines = { "-- Helios Raft cluster file (helios node --config " .. path .. ")",
                    "return {" }
    local keys = {}
    for k in each(conf) do
        if k ~= "nodes" and k ~= "client_listen" and k ~= "metrics_listen" then
            keys[#keys + 1] = k
        end
    end
    sort(keys)
    for _, k in ipairs(keys) do
        lines[#lines + 1] = format("  %s = %s,", k, lua_value(conf[k]))
    end
    -- Tables keyed by node id, in id order.
    for _, field in ipairs({ "nodes", "client_listen", "metrics_listen" }) do
        local t = conf[field]
        if t then
            lines[#lines + 1] = format("  %s = {", field)
            local ids = {}
            for id in each(t) do ids[#ids + 1] = id end
            sort(ids)
            for _, id in ipairs(ids) do
                lines[#lines + 1] = format("    [%q] = %q,", id, t[id])
            end
            lines[#lines + 1] = "  },"
        end
    end
    lines[#lines + 1] = "}"
    local f, err = io.open(path, "wb")
    if not f then return nil, err end
    f:write(concat(lines, "\n"), "\n")
    f:close()
    os.execute("chmod 600 " .. shell.quote(path))
    return true
end

return M
