-- spec/control_socket_spec.lua: core.control_listen's handling of what is already at the
-- socket path: a live socket is refused with EBUSY and left in place, including one the
-- caller may not connect to (EACCES: another user's node), while a stale one is replaced.
-- And its backlog: 64 clients that connect while the node is not accepting all get in.

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

describe("control socket backlog", function()
    it("takes 64 clients that connect while the node is busy", function()
        local dir = tmpdir()
        local path = dir .. "/control.sock"
        local code = ("package.path = %q; package.cpath = %q; local core = require('helios.core'); "
            .. "local s = assert(core.control_listen(%q, function(req, reply) "
            .. "reply({ id = req.id, ok = true }) end)); io.write('listening\\n'); "
            .. "io.stdout:flush(); core.run()"):format(package.path, package.cpath, path)
        local pid, _, out = assert(core.proc_spawn({ "luajit", "-e", code },
            { stdout_pipe = true, die_with_parent = true }))
        finally(function()
            core.proc_kill(pid, "KILL")
            core.proc_wait(pid, 5000)
            out:close()
            os.execute("rm -rf " .. dir)
        end)
        assert.are.equal("listening", out:read_line(10000))
        -- Stopped, the server accepts nothing: every connect waits in the backlog (a unix
        -- socket refuses one at once when the backlog is full).
        core.proc_kill(pid, "STOP")
        local socks = {}
        for i = 1, 64 do
            socks[i] = core.sock_connect(path, 2000)
        end
        core.proc_kill(pid, "CONT")
        local answered = 0
        for i = 1, 64 do
            local s = socks[i]
            if s and s:send_frame(core.mp_encode({ id = i, op = "ping" }), 2000) then
                local payload = s:recv_frame(5000)
                local resp = payload and core.mp_decode(payload)
                if resp and resp.ok and resp.id == i then answered = answered + 1 end
            end
            if s then s:close() end
        end
        assert.are.equal(64, answered)
    end)
end)
