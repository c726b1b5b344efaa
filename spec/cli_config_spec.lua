-- cli_config_spec.lua: `helios node` refuses a bad cluster file with a message that names
-- the file and the field, before it touches the network or a data directory; and
-- helios.clusterfile writes what it reads.

local cli = require("helios.cli")
local clusterfile = require("helios.clusterfile")

local dir
local function write(name, text)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
end

-- Run `helios node --config path --id id` in this process; returns status, stderr.
local function node(path, id)
    local errs = {}
    local code = cli.main({ "node", "--config", path, "--id", id or "node-1" },
        function() end, function(s) errs[#errs + 1] = s end)
    return code, table.concat(errs)
end

local GOOD = [[
return {
  nodes = { ["node-1"] = "127.0.0.1:9001", ["node-2"] = "127.0.0.1:9002",
            ["node-3"] = "127.0.0.1:9003" },
  secret = "s3cret",
  %s
}
]]

local function with(extra) return GOOD:format(extra) end

describe("helios node: cluster file errors", function()
    before_each(function()
        local p = assert(io.popen("mktemp -d /tmp/helios-cli.XXXXXX"))
        dir = p:read("*l")
        p:close()
    end)
    after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

    local cases = {
        { "a bad address", [[return { secret = "s",
            nodes = { ["node-1"] = "127.0.0.1:9001", ["node-2"] = "localhost" } }]],
          'cluster.lua: nodes["node-2"]: address must be host:port' },
        { "a port out of range", [[return { secret = "s",
            nodes = { ["node-1"] = "127.0.0.1:70000" } }]],
          'cluster.lua: nodes["node-1"]: address must be host:port' },
        { "no nodes", [[return { secret = "s" }]], "cluster.lua: nodes: must be a table" },
        { "a bad node id", [[return { secret = "s", nodes = { "127.0.0.1:1" } }]],
          "cluster.lua: nodes: 1 is not a valid node id" },
        { "two nodes on one address", [[return { secret = "s",
            nodes = { ["node-1"] = "127.0.0.1:9001", ["node-2"] = "127.0.0.1:9001" } }]],
          "is also node" },
        { "no secret", [[return { nodes = { ["node-1"] = "127.0.0.1:9001" } }]],
          "cluster.lua: secret: missing" },
        { "both secrets", with('secret_file = "x"'), "cluster.lua: secret, secret_file:" },
        { "a missing secret file", [[return { secret_file = "nope.txt",
            nodes = { ["node-1"] = "127.0.0.1:9001" } }]], "cluster.lua: secret_file: " },
        { "a bad fsm", with('fsm = "no.such.module"'),
          'cluster.lua: fsm: module "no.such.module" not found (looked in ' },
        { "a table option", with("election_timeout_ms = {}"),
          "cluster.lua: election_timeout_ms: must be a number, boolean or string" },
        { "a data_dir of the wrong type", with("data_dir = 5"), "cluster.lua: data_dir: " },
        { "a syntax error", "return { nodes = ", "cluster.lua:1:" },
        { "not a table", "return 42", "cluster.lua: must return a table" },
        { "a runtime error", "error('boom')", "cluster.lua: " },
    }
    for _, case in ipairs(cases) do
        it("names the file and the field: " .. case[1], function()
            local path = write("cluster.lua", case[2])
            local code, err = node(path)
            assert.are.equal(1, code)
            assert.matches(case[3], err, 1, true)
            assert.matches(dir .. "/cluster.lua", err, 1, true)
            assert.not_matches("lua/helios/", err, 1, true) -- never an internal path
        end)
    end

    -- The whole of stderr, %s being the cluster file's path: one clean line each.
    local exact = {
        { "a number written as a string", with('election_timeout_ms = "300"'),
          'helios node: %s: election_timeout_ms: must be a positive integer (got "300", '
          .. 'a string)' },
        { "a boolean written as a string", with('prevote = "false"'),
          'helios node: %s: prevote: must be a boolean (got "false", a string)' },
        { "zero", with("heartbeat_timeout_ms = 0"),
          "helios node: %s: heartbeat_timeout_ms: must be a positive integer (got 0)" },
        { "a heartbeat slower than the election timeout",
          with("heartbeat_timeout_ms = 500, election_timeout_ms = 300"),
          "helios node: %s: heartbeat_timeout_ms: must be less than election_timeout_ms "
          .. "(got 500)" },
        { "a limit of the core", with("max_entries_per_append = 100000"),
          "helios node: %s: max_entries_per_append: must be at most 65536 (got 100000)" },
        { "a misspelt option", with("electon_timeout_ms = 300"),
          "helios node: %s: electon_timeout_ms: unknown option" },
        { "a host name", [[return { secret = "s",
            nodes = { ["node-1"] = "nosuchhost.invalid:19530" } }]],
          'helios node: %s: nodes["node-1"]: address must have a numeric IPv4 host, [IPv6] '
          .. 'or localhost (host names are not resolved) (got "nosuchhost.invalid:19530", '
          .. 'a string)' },
        { "an address without a port", [[return { secret = "s",
            nodes = { ["node-1"] = "127.0.0.1:9001", ["node-2"] = "localhost" } }]],
          'helios node: %s: nodes["node-2"]: address must be host:port (got "localhost", '
          .. 'a string)' },
        { "a port out of range", [[return { secret = "s",
            nodes = { ["node-1"] = "127.0.0.1:70000" } }]],
          'helios node: %s: nodes["node-1"]: address must be host:port with a port from 1 '
          .. 'to 65535 (got "127.0.0.1:70000", a string)' },
        { "an address that is a number", [[return { secret = "s",
            nodes = { ["node-1"] = 9001 } }]],
          'helios node: %s: nodes["node-1"]: address must be a string "host:port" (got 9001)' },
        { "a cluster_id that is a number", with("cluster_id = 7"),
          "helios node: %s: cluster_id: must be a non-empty string (got 7)" },
        { "an uncreatable data_dir", with('data_dir = "/proc/helios-nope"'),
          "helios node: %s: data_dir: cannot create /proc/helios-nope/node-1 (mkdir "
          .. "/proc/helios-nope: No such file or directory)" },
        { "a data_dir under a file", with('data_dir = "cluster.lua/data"'),
          "helios node: %s: data_dir: cannot create DIR/cluster.lua/data/node-1 (mkdir "
          .. "DIR/cluster.lua/data: Not a directory)" },
        { "a client port of a node the file does not have",
          with('client_listen = { ["node-4"] = "127.0.0.1:7004" }'),
          'helios node: %s: client_listen: "node-4" is not a node of nodes (node-1, node-2, '
          .. 'node-3)' },
        { "a client address without a port", with('client_listen = { ["node-1"] = "x" }'),
          'helios node: %s: client_listen["node-1"]: address must be host:port (got "x", '
          .. 'a string)' },
        { "a client port that is a node's", with('client_listen = { ["node-2"] = '
          .. '"127.0.0.1:9001" }'),
          'helios node: %s: client_listen["node-2"]: address 127.0.0.1:9001 is also node '
          .. "node-1's" },
        { "two nodes on one client port", with('client_listen = { ["node-1"] = '
          .. '"127.0.0.1:7001", ["node-2"] = "127.0.0.1:7001" }'),
          'is also client_listen[' },
        { "client_listen that is not a table", with('client_listen = "127.0.0.1:7001"'),
          'helios node: %s: client_listen: must be a table of id = "host:port" (got '
          .. '"127.0.0.1:7001", a string)' },
        { "a client_password that is a number", with("client_password = 7"),
          "helios node: %s: client_password: must be a non-empty string (got 7)" },
        { "atlas_modules that is a string", with('atlas_modules = "bank"'),
          'helios node: %s: atlas_modules: must be a list of module names (got "bank", '
          .. 'a string)' },
        { "a bad module name", with('atlas_modules = { "bank", "no/slash" }'),
          'helios node: %s: atlas_modules[2]: must be a module name such as "bank" (got '
          .. '"no/slash", a string)' },
        { "a missing module", with('fsm = "helios.atlas.fsm", atlas_modules = { "nope" }'),
          'helios node: %s: atlas_modules[1]: module "nope" not found (looked in DIR/, then '
          .. 'LUA_PATH; see --lua-path)' },
        { "a module that fails", with('fsm = "helios.atlas.fsm", atlas_modules = { "bad" }'),
          'helios node: %s: atlas_modules[1]: module "bad" cannot be loaded: DIR/bad.lua:1: '
          .. 'broken module' },
    }
    for _, case in ipairs(exact) do
        it("says exactly what is wrong: " .. case[1], function()
            write("bad.lua", 'error("broken module")')
            local path = write("cluster.lua", case[2])
            local code, err = node(path)
            assert.are.equal(1, code)
            local want = case[3]:format(path):gsub("DIR", dir)
            if case[3]:match("^helios node: ") then
                assert.are.equal(want .. "\n", err)
            else
                assert.matches(want, err, 1, true)
            end
        end)
    end

    it("looks the fsm module up in the cluster file's directory, then --lua-path", function()
        -- Modules whose new() fails with a message saying where they were found: the
        -- node stops there, before anything starts.
        write("bank.lua", 'return { new = function() error("bank from the cluster dir", 0) end }')
        os.execute("mkdir '" .. dir .. "/lib'")
        write("lib/bank.lua", 'return { new = function() error("bank from lib", 0) end }')
        write("lib/ledger.lua", 'return { new = function() error("ledger from lib", 0) end }')
        local path = write("cluster.lua", with('fsm = "bank"'))
        local saved = package.path
        local code, err = node(path) -- the spec runs in the checkout, not in dir
        assert.are.equal(1, code)
        assert.are.equal(('helios node: %s: fsm: "bank".new() failed: bank from the cluster '
            .. 'dir\n'):format(path), err)
        assert.are.equal(saved, package.path)

        local errs = {}
        code = cli.main({ "node", "--config", path, "--id", "node-1", "--lua-path", dir .. "/lib" },
            function() end, function(s) errs[#errs + 1] = s end)
        assert.are.equal(1, code)
        assert.matches("bank from the cluster dir", table.concat(errs), 1, true)

        path = write("cluster.lua", with('fsm = "ledger"'))
        code, err = node(path)
        assert.are.equal(1, code)
        assert.are.equal(('helios node: %s: fsm: module "ledger" not found (looked in %s/, '
            .. 'then LUA_PATH; see --lua-path)\n'):format(path, dir), err)
        errs = {}
        code = cli.main({ "node", "--config", path, "--id", "node-1",
                          "--lua-path", dir .. "/lib/?.lua" },
            function() end, function(s) errs[#errs + 1] = s end)
        assert.are.equal(1, code)
        assert.are.equal(('helios node: %s: fsm: "ledger".new() failed: ledger from lib\n')
            :format(path), table.concat(errs))
        assert.are.equal(saved, package.path)
    end)

    it("refuses damaged data and says where to look and what to do", function()
        local tk = require("helios.testkit")
        local su = require("spec.helpers.storage_util")
        local data = dir .. "/data/node-1"
        os.execute("mkdir -p '" .. data .. "'")
        local st = assert(tk.storage_open(data))
        assert(st:set_meta(2, 1))
        -- Two syncs: damage in the first is in synced data (the second sync's first record
        -- vouches for it), not an unsynced tail that a restart cuts (docs/storage-format.md).
        assert(st:append(su.entries(1, 10, 2)))
        assert(st:sync())
        assert(st:append(su.entries(11, 20, 2)))
        assert(st:sync())
        st:close()
        su.flip(su.segment_path(data, 1), 24 + 36 + 1) -- the first record; valid ones follow
        local path = write("cluster.lua", with('data_dir = "data"'))
        local code, err = node(path)
        assert.are.equal(1, code)
        assert.are.equal(data .. "/log/00000000000000000001: record at offset 24: bad checksum",
            err:match("^helios node: ([^\n]*)\n"))
        assert.are.equal("helios node: node-1 refuses to start on damaged data; `helios inspect "
            .. data .. "` shows what is wrong, and the README section \"When a node's data is "
            .. "damaged\" says what to do\n", err:match("\n(.*)$"))
        -- The section it points to exists.
        assert.matches("\n### When a node's data is damaged\n", su.read_file("README.md"), 1,
            true)
    end)

    it("names the nodes of the file for an unknown --id", function()
        local path = write("cluster.lua", with(""))
        local code, err = node(path, "node-9")
        assert.are.equal(1, code)
        assert.matches('nodes: no node "node-9" (the file has node-1, node-2, node-3)', err,
            1, true)
    end)

    it("refuses a bad --client-listen", function()
        local path = write("cluster.lua", with('fsm = "helios.atlas.fsm"'))
        local errs = {}
        local code = cli.main({ "node", "--config", path, "--id", "node-1",
                                "--client-listen", "127.0.0.1" },
            function() end, function(s) errs[#errs + 1] = s end)
        assert.are.equal(1, code)
        assert.are.equal('helios node: --client-listen: address must be host:port (got '
            .. '"127.0.0.1", a string)\n', table.concat(errs))
    end)

    it("refuses missing options with a usage error", function()
        local errs = {}
        assert.are.equal(2, cli.main({ "node", "--id", "x" }, function() end,
            function(s) errs[#errs + 1] = s end))
        assert.matches("--config FILE and --id ID are required", table.concat(errs), 1, true)
        assert.are.equal(2, cli.main({ "cluster", "--nodes", "99" }, function() end,
            function() end))
    end)

    it("reads the secret from secret_file and resolves paths against the file", function()
        write("secret.txt", "from-file\n")
        local path = write("cluster.lua", [[return { secret_file = "secret.txt",
            data_dir = "data", election_timeout_ms = 400,
            nodes = { ["node-1"] = "127.0.0.1:9001", ["node-2"] = "127.0.0.1:9002" } }]])
        local conf = assert(clusterfile.load(path))
        assert.are.equal("from-file", conf.secret)
        assert.are.equal(dir .. "/data", conf.data_dir)
        local opts = assert(clusterfile.node_options(conf, "node-2", path))
        assert.are.equal("127.0.0.1:9002", opts.listen)
        assert.are.equal(dir .. "/data/node-2", opts.data_dir)
        assert.are.equal(dir .. "/data/node-2/control.sock", opts.control)
        assert.are.equal(400, opts.election_timeout_ms)
        assert.are.equal("127.0.0.1:9001", opts.peers["node-1"])
        assert.is_nil(opts.secret_file)
    end)

    it("gives raft.new each node's client port and every node's (ATLAS)", function()
        local path = write("cluster.lua", with([[fsm = "helios.atlas.fsm",
            client_listen = { ["node-1"] = "127.0.0.1:7001", ["node-2"] = "127.0.0.1:7002" },
            client_password = "pw", atlas_modules = { "bank" }]]))
        local conf = assert(clusterfile.load(path))
        local opts = assert(clusterfile.node_options(conf, "node-2", path))
        assert.are.equal("127.0.0.1:7002", opts.client_listen)
        assert.are.same({ ["node-1"] = "127.0.0.1:7001", ["node-2"] = "127.0.0.1:7002" },
                        opts.client_peers)
        assert.are.equal("pw", opts.client_password)
        assert.is_nil(opts.atlas_modules) -- the CLI's, not raft.new's
        -- a node without a client port in the file: none, but it knows the others'
        opts = assert(clusterfile.node_options(conf, "node-3", path))
        assert.is_nil(opts.client_listen)
        assert.are.equal("127.0.0.1:7001", opts.client_peers["node-1"])
        -- one that joins with --listen and --client-listen
        opts = assert(clusterfile.node_options(conf, "node-4", path, "127.0.0.1:9004",
                                               "127.0.0.1:7004"))
        assert.are.equal("127.0.0.1:7004", opts.client_listen)
        assert.are.equal("127.0.0.1:7004", opts.client_peers["node-4"])
        local _, err = clusterfile.node_options(conf, "node-4", path, "127.0.0.1:9004", "x:y")
        assert.matches("--client-listen: address must be", err, 1, true)
        -- no client_listen anywhere: no client options
        conf = assert(clusterfile.load(write("plain.lua", with(""))))
        opts = assert(clusterfile.node_options(conf, "node-1", path))
        assert.is_nil(opts.client_listen)
        assert.is_nil(opts.client_peers)
    end)

    it("writes a file it reads back the same, readable only by its owner", function()
        local conf = { cluster_id = "c", secret = "s \"q\"\n", data_dir = dir,
                       fsm = "helios.atlas.fsm", atlas_modules = { "bank", "audit.log" },
                       client_password = "pw",
                       client_listen = { ["node-1"] = "127.0.0.1:7001",
                                         ["node-2"] = "127.0.0.1:7002" },
                       heartbeat_timeout_ms = 40, prevote = false,
                       nodes = { ["node-1"] = "127.0.0.1:9001", ["node-2"] = "127.0.0.1:9002" } }
        local path = dir .. "/written.lua"
        assert(clusterfile.write(path, conf))
        local back = assert(clusterfile.load(path))
        assert.are.same(conf, back)
        local p = io.popen("stat -c %a '" .. path .. "'")
        assert.are.equal("600", p:read("*l"))
        p:close()
    end)
end)
