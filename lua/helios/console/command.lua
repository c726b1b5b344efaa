--- helios.console.command: `helios console [SOCKET | --data DIR --id ID]` (docs/console.md).

local format = string.format

local M = {}

M.USAGE = [[
Usage: helios console SOCKET
       helios console --data DIR --id ID

Attaches an interactive Lua console to a running node through its control socket (SOCKET,
or the one of node ID of the cluster in DIR: DIR/cluster.lua's paths, else
DIR/ID/control.sock). Code runs inside the node, on its loop: status(), peers(), get(k),
set(k, v), transfer(id), help() ... (docs/console.md). Line editing, history
($HELIOS_HISTORY, default ~/.helios_history) and Tab completion with GNU readline;
Ctrl-C cancels the running chunk (or clears the line), Ctrl-D detaches (the node goes on).

When stdin is not a terminal, its lines are run as a script: each chunk's result printed,
exit status 1 if any chunk failed.

Options:
  --data DIR   the cluster's directory (as `helios cluster --data DIR`)
  --id ID      the node to attach to (with --data)
  -h, --help   show this text
]]

--- The socket that --data DIR --id ID name.
function M.socket_of(dir, id)
    local clusterfile = require("helios.clusterfile")
    local conf = clusterfile.load(dir .. "/cluster.lua")
    if conf then
        local _, control = clusterfile.node_paths(conf, id)
        return control
    end
    return dir .. "/" .. id .. "/control.sock"
end

function M.run(argv, out, err)
    local socket, data, id
    local i = 2
    while argv[i] do
        local a = argv[i]
        if a == "-h" or a == "--help" then
            out(M.USAGE)
            return 0
        elseif a == "--data" or a == "--id" then
            local v = argv[i + 1]
            if not v then
                err(format("helios console: %s needs a value (see 'helios console --help')\n", a))
                return 2
            end
            if a == "--data" then data = v else id = v end
            i = i + 2
        elseif a:match("^%-%-data=") then
            data = a:match("=(.*)")
            i = i + 1
        elseif a:match("^%-%-id=") then
            id = a:match("=(.*)")
            i = i + 1
        elseif a:sub(1, 1) == "-" or socket then
            err(format("helios console: unexpected %s (see 'helios console --help')\n", a))
            return 2
        else
            socket = a
            i = i + 1
        end
    end
    if socket and (data or id) or not socket and not id then
        err("helios console: give SOCKET, or --data DIR --id ID (see 'helios console --help')\n")
        return 2
    end
    if not socket then socket = M.socket_of(data or "./data", id) end
    return require("helios.console.repl").run({ socket = socket })
end

return M
