--- helios.util.address: node addresses, "host:port".
--
--   local address = require("helios.util.address")
--   address.problem("localhost")     -- "must be host:port"
--   address.valid("127.0.0.1:9001")  -- true
--
-- The one check raft.new (peers, listen) and cluster files (nodes) apply to an address.

local type, tonumber = type, tonumber

local M = {}

--- What is wrong with a node address, or nil if it is one: "host:port" with a port in
-- 1..65535 and a host that is a numeric IPv4 address, a bracketed IPv6 address or
-- localhost. Host names are not resolved (the transport connects from its event loop,
-- which has no resolver), so "db1.example:9001" is refused here rather than at start.
-- @treturn string|nil e.g. "must be host:port"
function M.problem(addr)
    if type(addr) ~= "string" then
        return "must be a string \"host:port\""
    end
    local host, port = addr:match("^(.+):(%d+)$")
    if not host then
        return "must be host:port"
    end
    port = tonumber(port)
    if port < 1 or port > 65535 then
        return "must be host:port with a port from 1 to 65535"
    end
    if host == "localhost" or host:match("^%[[%x:.]*:[%x:.]*%]$") then
        return nil
    end
    local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if a and tonumber(a) <= 255 and tonumber(b) <= 255 and tonumber(c) <= 255
        and tonumber(d) <= 255 then
        return nil
    end
    return "must have a numeric IPv4 host, [IPv6] or localhost (host names are not resolved)"
end

--- Whether addr is a node address (address.problem says what is wrong otherwise).
function M.valid(addr)
    return M.problem(addr) == nil
end

return M
