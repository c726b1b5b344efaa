--- helios.atlas.forward: a follower's link to the leader's Redis-protocol port, over
-- which the ATLAS port (helios.atlas.server) forwards writes (docs/atlas.md, "Writes on a
-- follower: forwarding and MOVED").
--
--   local forward = require("helios.atlas.forward")
--   local f = forward.new(node, { password = "...",      -- password: AUTH on the link
--                                 reply_timeout_ms = 10000 })
--   f:send("127.0.0.1:7001", { "SET", "k", "v" }, function(reply) ... end)
--   f:close()                                           -- fails what it still owes
--
-- One connection per leader address, made by the first write sent there. Its first
-- requests are AUTH (with the password, if any) and ATLAS.FORWARDED; the forwarded writes
-- follow, pipelined in the order they came, and each reply (the socket's reply reader,
-- csrc/transport/resp.c) is relayed to its request's answer, in order. When the leader
-- changes, the old link takes no more requests and closes once its replies are in. A link
-- that breaks fails what it owes: -TIMEOUT for a request it had sent (the write may have
-- committed), -TRYAGAIN for one it had not. Everything runs on the loop: the link is a
-- coroutine (helios.loop) that waits on its socket; send never blocks.

local core = require("helios.core")
local loop = require("helios.loop")

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local type, each, ipairs, tostring, pcall = type, pairs, ipairs, tostring, pcall
local setmetatable = setmetatable
local format = string.format

local M = {}

local function err(msg) return { err = msg } end

--- How long the link's coroutine waits on its socket at most before it looks at its own
-- state again, while replies are owed (a request may have been queued while the kernel's
-- buffer was full) and while none are, ms.
M.LINK_POLL_MS = 20
M.LINK_IDLE_MS = 200
--- How long a connection to the leader's port may take, ms.
M.CONNECT_TIMEOUT_MS = 2000
--- A link whose oldest request has had no reply for this long is dropped (its requests
-- get -TIMEOUT), ms, unless forward.new{ reply_timeout_ms }. The leader answers a write
-- within its own timeout (helios.atlas.server's, 5 s by default); this is for a leader
-- that stopped answering at all.
M.DEFAULT_REPLY_TIMEOUT_MS = 10000

-- The requests a link sent and owes replies for, oldest first: { answer, sent at }.
local function fifo() return { head = 1, tail = 0 } end
local function fifo_n(q) return q.tail - q.head + 1 end
local function fifo_push(q, v)
    q.tail = q.tail + 1
    q[q.tail] = v
end
local function fifo_pop(q)
    if q.head > q.tail then return nil end
    local v = q[q.head]
    q[q.head] = nil
    q.head = q.head + 1
    return v
end

local Link = {}
Link.__index = Link

local function link_fail(link, sent_reply, unsent_reply)
    local inflight, unsent = link.inflight, link.unsent
    link.inflight, link.unsent = fifo(), {}
    for i = inflight.head, inflight.tail do pcall(inflight[i][1], sent_reply) end
    for _, u in ipairs(unsent) do pcall(u.answer, unsent_reply) end
end

-- The link is done: fail what it owes, and let its coroutine close the socket.
function Link:kill(why_sent, why_unsent)
    self.dead = true
    link_fail(self, err("TIMEOUT forwarded write's outcome unknown: " .. why_sent),
              err("TRYAGAIN " .. why_unsent))
end

-- Queue bytes on the socket; false when the socket failed.
function Link:_write(bytes)
    local ok, code, detail = self.sock:try_send_raw(bytes)
    if ok then
        self.wpending = false
    elseif code == "again" then
        self.wpending = true
    else
        self:kill("the link to the leader broke: " .. tostring(detail or code),
                  "the link to the leader broke: " .. tostring(detail or code))
        return false
    end
    return true
end

function Link:push(argv, answer)
    if not self.ready then
        self.unsent[#self.unsent + 1] = { argv = argv, answer = answer }
        return
    end
    fifo_push(self.inflight, { answer, core.clock_ms() })
    self:_write(self.encode(argv))
end

-- The coroutine of a link: connect, handshake, then relay replies until it dies.
local function link_run(link)
    local f = link.forwarder
    local sock, pending, cdetail = core.sock_connect_start(link.addr)
    local detail
    if not sock then
        detail = tostring(cdetail or pending)
    elseif pending then
        local ok, code, d = loop.wait_sock(sock, "w", M.CONNECT_TIMEOUT_MS)
        if ok then
            ok, code, d = sock:finish_connect()
        end
        if not ok then
            sock:close()
            sock, detail = nil, tostring(d or code)
        end
    end
    if not sock then
        return link:kill("connect: " .. detail, format("cannot reach the leader's client port "
                         .. "%s: %s", link.addr, detail))
    end
    if link.dead then return sock:close() end
    link.sock = sock
    link.encode = core.resp_command
    -- The handshake's replies are the link's own; the queued requests follow at once.
    local now = core.clock_ms()
    if f.password then
        fifo_push(link.inflight, { function(r)
            if type(r) == "table" and r.err then
                link.auth_error, link.retiring = r.err, true -- the next write: a new link
            end
        end, now })
        link:_write(link.encode({ "AUTH", f.password }))
    end
    fifo_push(link.inflight, { function(r)
        -- Not an ATLAS port (or AUTH failed, above): no more writes over this link.
        if type(r) == "table" and r.err then link.retiring = true end
    end, now })
    link:_write(link.encode({ "ATLAS.FORWARDED" }))
    link.ready = true
    local unsent = link.unsent
    link.unsent = {}
    for _, u in ipairs(unsent) do link:push(u.argv, u.answer) end
    while not link.dead do
        local owed = fifo_n(link.inflight)
        if link.retiring and owed == 0 then break end
        local oldest = link.inflight[link.inflight.head]
        if oldest and core.clock_ms() - oldest[2] > f.reply_timeout_ms then
            link:kill(format("no reply from %s within %d ms", link.addr, f.reply_timeout_ms),
                      "the link to the leader was dropped")
            break
        end
        local events = link.wpending and "rw" or "r"
        local ok, code, d = loop.wait_sock(sock, events,
                                           owed > 0 and M.LINK_POLL_MS or M.LINK_IDLE_MS)
        if not ok and code ~= "timeout" then
            link:kill(tostring(d or code), tostring(d or code))
            break
        end
        if link.dead then break end
        if link.wpending then
            local fok, fcode, fd = sock:try_flush()
            if fok then
                link.wpending = false
            elseif fcode ~= "again" then
                link:kill(tostring(fd or fcode), tostring(fd or fcode))
                break
            end
        end
        while not link.dead do
            local v, rcode, rd = sock:try_recv_reply()
            if v == nil then
                if rcode ~= "again" then
                    link:kill("the leader closed the link: " .. tostring(rd or rcode),
                              "the leader closed the link")
                end
                break
            end
            local e = fifo_pop(link.inflight)
            if e then
                if link.auth_error and type(v) == "table" and v.err
                    and v.err:match("^NOAUTH") then
                    v = err("ERR the leader refused the forwarding link's AUTH: "
                            .. link.auth_error)
                end
                pcall(e[1], v)
            end
        end
    end
    link.dead = true
    sock:close()
    link_fail(link, err("TIMEOUT forwarded write's outcome unknown: the link closed"),
              err("TRYAGAIN the link to the leader closed"))
end

local Forwarder = {}
Forwarder.__index = Forwarder
Forwarder.__name = "helios.atlas.forward"

function Forwarder:__tostring()
    local link = self.link
    return format("helios.atlas.forward(%s -> %s)", tostring(self.node.id),
                  tostring(link and not link.dead and link.addr or "none"))
end

--- A follower's forwarder: forwarder:send(addr, argv, answer) relays one write (argv: the
-- request's words) to the leader's client port at addr and calls answer(reply) once, with
-- the reply as a value of core.resp_listen's; forwarder:close(). opts.password: for AUTH.
function M.new(node, opts)
    opts = opts or {}
    return setmetatable({ node = node, password = opts.password, link = nil, links = {},
                          reply_timeout_ms = opts.reply_timeout_ms
                              or M.DEFAULT_REPLY_TIMEOUT_MS }, Forwarder)
end

--- Forward argv to addr; answer(reply) is called once (maybe before send returns).
function Forwarder:send(addr, argv, answer)
    if self.closed then return answer(err("TRYAGAIN the node is shutting down")) end
    local link = self.link
    if link and (link.addr ~= addr or link.dead or link.retiring) then
        link.retiring = true -- it closes once its replies are in
        link = nil
    end
    if not link then
        link = setmetatable({ forwarder = self, addr = addr, inflight = fifo(), unsent = {} },
                            Link)
        self.link = link
        self.links[link] = true
        loop.spawn(function()
            local ok, e = pcall(link_run, link)
            if not ok then
                local why = "forwarding failed: " .. tostring(e)
                link:kill(why, why)
                if link.sock then link.sock:close() end
            end
            self.links[link] = nil
        end)
    end
    link:push(argv, answer)
end

--- Close the links: what they had sent gets -TIMEOUT, what they had not -TRYAGAIN.
function Forwarder:close()
    self.closed = true
    self.link = nil
    for link in each(self.links) do link:kill("the node shut down", "the node shut down") end
end

return M
