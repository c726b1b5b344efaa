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
--     metrics_listen = { ["node-1"] = "127.0.0.1:9101" },  -- optional: the Prometheus
--                                              -- endpoint of each node listed (port 0: any;
--                                              -- docs/metrics.md)
--     election_timeout_ms = 300,               -- any other field: an option of raft.new
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
--   cf.write(path, conf)                       -- the inverse of load, mode 0600

local format, concat, sort = string.format, table.concat, table.sort
local pairs, ipairs, type, tostring, tonumber, pcall, setmetatable, loadfile, setfenv =
    pairs, ipairs, type, tostring, tonumber, pcall, setmetatable, loadfile, setfenv
local io, os = io, os

local M = {}

--- Fields of the cluster file that are not options of raft.new.
M.FIELDS = { cluster_id = true, nodes = true, fsm = true, data_dir = true, secret = true,
             secret_file = true, control = true, log_repeat_ms = true, metrics_listen = true }

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
    for id, addr in pairs(conf.nodes) do
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
    if conf.control ~= nil and type(conf.control) ~= "string" then
        return fail("control: must be a path (default <data_dir>/<id>/control.sock; got %s)",
            describe(conf.control))
    end
    if conf.metrics_listen ~= nil then
        if type(conf.metrics_listen) ~= "table" then
            return fail("metrics_listen: must be a table of id = \"host:port\" (got %s)",
                describe(conf.metrics_listen))
        end
        for id, addr in pairs(conf.metrics_listen) do
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
    for k, v in pairs(conf) do
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
    for id in pairs(conf.nodes) do ids[#ids + 1] = id end
    sort(ids)
    return ids
end

--- The node's data directory and control socket path.
function M.node_paths(conf, id)
    local dir = conf.data_dir .. "/" .. id
    return dir, conf.control and conf.control:gsub("{id}", id) or dir .. "/control.sock"
end

--- The options of raft.new for node id (fsm still a module name: the caller makes it).
-- @return opts, or nil and a message
-- listen (optional): the address of a node the file does not list (one that joins a
-- running cluster: helios node --join --listen ADDR).
function M.node_options(conf, id, file, listen)
    if not conf.nodes[id] and listen == nil then
        return nil, format("%s: nodes: no node %q (the file has %s)", file or "cluster file",
            tostring(id), concat(M.ids(conf), ", "))
    end
    local dir, control = M.node_paths(conf, id)
    local opts = { id = id, listen = listen or conf.nodes[id], data_dir = dir, control = control,
                   peers = {}, secret = conf.secret, cluster_id = conf.cluster_id }
    for pid, addr in pairs(conf.nodes) do opts.peers[pid] = addr end
    for k, v in pairs(conf) do
        if not M.FIELDS[k] then opts[k] = v end
    end
    opts.metrics_listen = conf.metrics_listen and conf.metrics_listen[id] or nil
    return opts
end

local function lua_value(v)
    if type(v) == "string" then return format("%q", v) end
    return tostring(v)
end

--- Write conf as a cluster file (mode 0600: it holds the secret).
function M.write(path, conf)
    local lines = { "-- Helios Raft cluster file (helios node --config " .. path .. ")",
                    "return {" }
    local keys = {}
    for k in pairs(conf) do
        if k ~= "nodes" and k ~= "metrics_listen" then keys[#keys + 1] = k end
    end
    sort(keys)
    for _, k in ipairs(keys) do
        lines[#lines + 1] = format("  %s = %s,", k, lua_value(conf[k]))
    end
    if conf.metrics_listen then
        lines[#lines + 1] = "  metrics_listen = {"
        local mids = {}
        for id in pairs(conf.metrics_listen) do mids[#mids + 1] = id end
        sort(mids)
        for _, id in ipairs(mids) do
            lines[#lines + 1] = format("    [%q] = %q,", id, conf.metrics_listen[id])
        end
        lines[#lines + 1] = "  },"
    end
    lines[#lines + 1] = "  nodes = {"
    for _, id in ipairs(M.ids(conf)) do
        lines[#lines + 1] = format("    [%q] = %q,", id, conf.nodes[id])
    end
    lines[#lines + 1] = "  },"
    lines[#lines + 1] = "}"
    local f, err = io.open(path, "wb")
    if not f then return nil, err end
    f:write(concat(lines, "\n"), "\n")
    f:close()
    os.execute("chmod 600 " .. shell.quote(path))
    return true
end

return M
