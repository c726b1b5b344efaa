--- helios: the package table, loading its modules on first use.
--
--   local helios = require("helios")
--   local c = helios.sim.cluster{ n = 3, seed = 1 }   -- same as require("helios.sim")
--   print(helios.version)
--
-- Each field is the module of the same name (helios.raft, helios.node, helios.loop,
-- helios.sim, helios.client, ...), required when first read, so that `require("helios")`
-- stays cheap and loads no C until it is needed. The helpers under helios.util are
-- required by their full names (require("helios.util.address")).

local require, rawset, setmetatable, type = require, rawset, setmetatable, type

local M = {}

return setmetatable(M, {
    __index = function(t, key)
        local value
        if key == "version" then
            value = require("helios.core").version
        elseif type(key) == "string" and key:match("^[%w_]+$") then
            value = require("helios." .. key)
        end
        if value ~= nil then
            rawset(t, key, value)
        end
        return value
    end,
})
