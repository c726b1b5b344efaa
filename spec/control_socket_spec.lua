-- spec/control_socket_spec.lua: core.control_listen's handling of what is already at the
-- socket path: a live socket is refused with EBUSY and left in place, including one the
-- caller may not connect to (EACCES: another user's node), while a stale one is replaced.

local core = require("helios.core")
local tk = require("helios.testkit")

local function tmpdir()
    local d = os.tmpname()
    os.remove(d)
    -- World-writable, so that an unprivileged child could unlink what is in it.
    assert(os.execute("mkdir -m 777 " .. d) == 0)
    return d
end

local function exists(path)
    local p = io.popen("test -S " .. path .. " && echo yes || echo no")
    local r = p:read("*l")
    p:close()
    return r == "yes"
end

-- Run control_listen(path) in a child process (unprivileged when we are root, since root
-- connects whatever the mode) and return the code it got, or "listening".
local function listen_in_child(path)
    local code = ("package.path = %q; package.cpath = %q; local core = require('helios.core'); "
        .. "local s, c = core.control_listen(%q, function() end); "
        .. "io.write(tostring(c or 'listening'), '\\n'); if s then s:close() end")
        :format(package.path, package.cpath, path)
    local argv = { "luajit", "-e", code }
    local id = io.popen("id -u")
    local uid = id:read("*l")
    id:close()
    if uid == "0" then
        argv = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 "luajit", "-e", code }
    end
    local pid, _, out = assert(core.proc_spawn(argv, { stdout_pipe = true }))
    local line = out:read_line(10000)
    out:close()
    core.proc_wait(pid, 5000)
    return line
end

describe("control socket path", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() os.execute("rm -rf " .. dir) end)

    it("refuses a live socket and replaces a stale one", function()
        local path = dir .. "/control.sock"
        local l = assert(tk.sock_listen(path))
        local s, code = core.control_listen(path, function() end)
        assert.is_nil(s)
        assert.are.equal("busy", code)
        l:close() -- the file stays: now stale
        assert.is_true(exists(path))
        s = assert(core.control_listen(path, function() end))
        s:close()
    end)

    it("does not remove a live socket it is not allowed to connect to", function()
        local path = dir .. "/control.sock"
        local l = assert(tk.sock_listen(path))
        assert(os.execute("chmod 000 " .. path) == 0)
        assert.are.equal("busy", listen_in_child(path))
        assert.is_true(exists(path), "the live socket was unlinked")
        l:close()
    end)
end)
