--- helios.console.repl: the client side of the console (docs/console.md): reads chunks
-- (from a terminal with readline, or a script from a pipe), runs each on the node through
-- the control socket's "eval" op and prints what comes back.
--
--   local repl = require("helios.console.repl")
--   local status = repl.run{ socket = "./data/node-1/control.sock" }   -- exit status
--
-- opts: socket (the control socket's path), tty (default: whether stdin is a terminal),
-- out, err (functions writing text; default stdout/stderr), interrupted (a function that
-- says whether Ctrl-C came; default helios.core's polled SIGINT), history (a path;
-- default $HELIOS_HISTORY or ~/.helios_history), complete (a function(text) -> candidates
-- for Tab, instead of the "complete" op).
-- Every wait goes through helios.loop: it yields in a coroutine on the loop (the REPL on
-- `helios cluster`'s terminal) and blocks anywhere else (`helios console`).

local core = require("helios.core")
local loop = require("helios.loop")

local format, type, tostring, concat = string.format, type, tostring, table.concat
local encode, decode = core.mp_encode, core.mp_decode

local M = {}

--- How often a wait looks for Ctrl-C, ms.
M.POLL_MS = 50
--- History lines kept in the file.
M.HISTORY_KEEP = 1000

--- What to send for the text of a chunk: "return <text>" when that compiles (an
-- expression prints its value), else the text; nil, "more" when the chunk is unfinished
-- (more lines may complete it).
function M.chunk(text)
    local expr = text:match("^%s*=(.*)$")
    if expr then text = expr end
    if loadstring("return " .. text) then return "return " .. text end
    local f, err = loadstring(text)
    if f then return text end
    if tostring(err):find("<eof>'?$") then return nil, "more" end
    return text -- a syntax error: the node says which
end

local function history_path()
    local p = os.getenv("HELIOS_HISTORY")
    if p and p ~= "" then return p end
    local home = os.getenv("HOME")
    return home and home .. "/.helios_history" or nil
end

-- A connection speaking the control protocol, with waits that poll for Ctrl-C.
local Conn = {}
Conn.__index = Conn

local function connect(path)
    local client = require("helios.client")
    local c, code, detail = client.connect(path, 5000)
    if not c then return nil, code, detail end
    return setmetatable({ c = c, sock = c.sock, next_id = 1000000 }, Conn)
end

local function recv(sock, ms)
    if loop.on_loop() then
        return loop.await(sock, sock.try_recv_frame, "r", ms, "no frame")
    end
    return sock:recv_frame(ms)
end

local function send(sock, payload)
    if loop.on_loop() then
        local ok, code, detail = sock:try_send_frame(payload)
        if code == "again" then
            ok, code, detail = loop.await(sock, sock.try_flush, "w", 5000, "not sent")
        end
        return ok, code, detail
    end
    return sock:send_frame(payload, 5000)
end

-- Send req and wait for its answer; interrupted() -> true sends a cancel for it.
function Conn:request(req, interrupted)
    self.next_id = self.next_id + 1
    req.id = self.next_id
    local ok, code, detail = send(self.sock, encode(req))
    if not ok then return nil, code, detail end
    local cancelled = false
    while true do
        local payload
        payload, code, detail = recv(self.sock, M.POLL_MS)
        if payload then
            local resp = decode(payload)
            if type(resp) == "table" and resp.id == req.id then return resp end
        elseif code ~= "timeout" then
            return nil, code, detail
        end
        if not cancelled and interrupted and interrupted() then
            cancelled = true
            self.next_id = self.next_id + 1
            send(self.sock, encode({ id = self.next_id, op = "cancel", target = req.id }))
        end
    end
end

-- Send req without waiting: its answer comes through poll.
function Conn:start(req)
    self.next_id = self.next_id + 1
    req.id = self.next_id
    self.pending = req.id
    return send(self.sock, encode(req))
end

-- The answer to the request start sent, if it comes within ms; nil, "timeout" if not.
function Conn:poll(ms)
    local deadline = core.clock_ms() + ms
    while true do
        local payload, code, detail = recv(self.sock, math.max(0, deadline - core.clock_ms()))
        if not payload then return nil, code, detail end
        local resp = decode(payload)
        if type(resp) == "table" and resp.id == self.pending then
            self.pending = nil
            return resp
        end
    end
end

function Conn:cancel(target)
    self.next_id = self.next_id + 1
    return send(self.sock, encode({ id = self.next_id, op = "cancel", target = target }))
end

function Conn:close()
    self.c:close()
end

-- Print an eval's answer; true when the chunk succeeded.
local function show(resp, out, err)
    if resp.output and resp.output ~= "" then out(resp.output) end
    if resp.ok then
        if resp.results and resp.results ~= "" then out(resp.results .. "\n") end
        return true
    end
    if resp.code == "cancelled" then
        err("cancelled\n")
    else
        err(format("%s%s\n", resp.code == "syntax" and "syntax error: " or "error: ",
                   tostring(resp.detail)))
    end
    return false
end

local function default_interrupted()
    return core.signal_take() == "INT"
end

-- Lines from a pipe or file: each chunk run in turn; the exit status says whether all ran.
local function run_script(conn, opts)
    local out, err = opts.out, opts.err
    local failed, buf = false, nil
    local read_line = opts.read_line or function() return io.stdin:read("*l") end
    while true do
        local line = read_line()
        if line == nil then break end
        buf = buf and buf .. "\n" .. line or line
        if buf:match("^%s*$") then
            buf = nil
        else
            local code, more = M.chunk(buf)
            if not more then
                buf = nil
                local resp, rcode, detail = conn:request({ op = "eval", code = code },
                                                         opts.interrupted)
                if not resp then
                    err(format("helios console: %s: %s\n", tostring(rcode), tostring(detail)))
                    return 1
                end
                if not show(resp, out, err) then failed = true end
                if resp.code == "cancelled" then return 1 end -- Ctrl-C stops the script
            end
        end
    end
    if buf then
        err(format("syntax error: the input ends inside a chunk: %s\n",
                   (select(2, loadstring(buf)))))
        failed = true
    end
    return failed and 1 or 0
end

-- The terminal: readline (or plain lines), history, completion, Ctrl-C and Ctrl-D, as a
-- session stepped by its owner (the loop of `helios console`, `helios cluster`'s poll
-- loop, a coroutine on `helios node`'s loop).
local Session = {}
Session.__index = Session

local function session_new(conn, opts)
    local self = setmetatable({ conn = conn, out = opts.out, err = opts.err, opts = opts },
                              Session)
    local st = conn:request({ op = "eval", code = "return node.id" })
    local name = st and st.ok and st.results and st.results:gsub('^"(.*)"$', "%1") or "helios"
    self.name = name
    self.prompt = name .. "> "
    self.prompt2 = string.rep(" ", #name > 3 and #name - 3 or 0) .. "... "
    local rl, why = require("helios.console.readline").load()
    self.rl = rl
    self.hist = opts.history or history_path()
    if not rl then
        self.err(format("helios console: no line editing (%s): plain line input, no history "
                        .. "or completion\n", tostring(why)))
    else
        if self.hist then rl.history_load(self.hist) end
        -- opts.complete: the REPL inside the node's own process (`helios node`) cannot
        -- wait for its own loop from inside readline: it completes in-process.
        rl.set_completer(opts.complete or function(text)
            local r = conn:request({ op = "complete", prefix = text })
            return r and r.ok and r.candidates or {}
        end)
    end
    self.out(format("connected to %s (%s): help() lists the helpers, Ctrl-D detaches\n",
                    name, opts.socket or "this node"))
    self:_prompt()
    return self
end

function Session:_prompt()
    self.reading = true
    local p = self.buf and self.prompt2 or self.prompt
    if self.rl then
        -- Called from inside readline (an FFI callback): no waiting here, step() runs
        -- the line once readline has returned.
        self.rl.start(p, function(line)
            self.rl.stop()
            self.reading = false
            self.typed = { line }
        end)
    else
        self.out(p)
    end
end

-- A chunk to run, or the end of input (line nil).
function Session:_line(line)
    if line == nil then
        self.out("\n")
        self.status = 0
        return
    end
    if line:match("%S") and self.rl then
        self.rl.history_add(line)
        if self.hist then self.rl.history_save(self.hist, M.HISTORY_KEEP) end
    end
    self.buf = self.buf and self.buf .. "\n" .. line or line
    if self.buf:match("^%s*$") then
        self.buf = nil
        return self:_prompt()
    end
    local code, more = M.chunk(self.buf)
    if more then return self:_prompt() end
    self.buf = nil
    self.cancel_sent = nil
    local ok, scode, detail = self.conn:start({ op = "eval", code = code })
    if not ok then return self:_lost(scode, detail) end
    self.waiting = self.conn.pending
end

function Session:_lost(code, detail)
    self.err(format("helios console: lost the node: %s: %s\n", tostring(code),
                    tostring(detail)))
    self.status = 1
end

--- Do what is ready within ms: read keys, or wait for the running chunk's answer.
-- Returns nil while the session goes on, else the exit status (0: Ctrl-D, 1: lost).
function Session:step(ms)
    if self.status then return self.status end
    ms = math.max(0, ms)
    if self.waiting then
        local resp, code, detail = self.conn:poll(ms)
        if resp then
            self.waiting = nil
            show(resp, self.out, self.err)
            self:_prompt()
        elseif code ~= "timeout" then
            self:_lost(code, detail)
        end
    elseif self.rl then
        local ready = loop.wait_fd(0, "r", ms)
        if ready then self.rl.feed() end
        local typed = self.typed
        if typed then
            self.typed = nil
            self:_line(typed[1])
        end
    else
        local ready = loop.wait_fd(0, "r", ms)
        if ready then
            self.reading = false
            self:_line(io.stdin:read("*l"))
        end
    end
    return self.status
end

--- Ctrl-C: cancel the running chunk, or drop the line being typed.
function Session:interrupt()
    if self.status then return end
    if self.waiting then
        if not self.cancel_sent then
            self.cancel_sent = true
            self.conn:cancel(self.waiting)
        end
        return
    end
    self.buf = nil
    if self.rl then
        self.rl.clear(self.prompt)
    else
        self.out("\n" .. self.prompt)
    end
end

--- Print text (whole lines) without garbling the line being typed.
function Session:say(text)
    if self.rl and self.reading and not self.status then
        self.rl.print_above(text, function(s) self.out(s) end)
    else
        self.out(text)
    end
end

--- Leave the terminal as it was.
function Session:close()
    if self.rl then self.rl.stop() end
    self.status = self.status or 0
end

--- A session on the terminal over a control connection to opts.socket (the REPL of
-- `helios cluster` and `helios node`): nil, code, detail if it cannot connect.
function M.session(opts)
    opts.out = opts.out or function(s) io.stdout:write(s) io.stdout:flush() end
    opts.err = opts.err or function(s) io.stderr:write(s) io.stderr:flush() end
    local conn, code, detail = connect(opts.socket)
    if not conn then return nil, code, detail end
    return session_new(conn, opts)
end

local function run_tty(conn, opts)
    local s = session_new(conn, opts)
    while true do
        local status = s:step(M.POLL_MS)
        if status then
            s:close()
            return status
        end
        if opts.interrupted() then
            s:interrupt()
        end
    end
end

--- Attach to the node at opts.socket; returns the exit status (0, or 1: could not connect,
-- lost the node, or in script mode a chunk failed).
function M.run(opts)
    opts = opts or {}
    opts.out = opts.out or function(s) io.stdout:write(s) io.stdout:flush() end
    opts.err = opts.err or function(s) io.stderr:write(s) io.stderr:flush() end
    local tty = opts.tty
    if tty == nil then tty = core.isatty and core.isatty(0) or M.isatty(0) end
    if not opts.interrupted then
        core.signal_catch("INT")
        opts.interrupted = default_interrupted
    end
    local conn, code, detail = connect(opts.socket)
    if not conn then
        opts.err(format("helios console: %s: %s\n", tostring(code), tostring(detail)))
        return 1
    end
    local status = (tty and run_tty or run_script)(conn, opts)
    conn:close()
    return status
end

--- Whether fd is a terminal.
function M.isatty(fd)
    local ok, ffi = pcall(require, "ffi")
    if not ok then return false end
    pcall(ffi.cdef, "int isatty(int);")
    return ffi.C.isatty(fd) == 1
end

return M
