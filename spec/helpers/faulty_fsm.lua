--- spec/helpers/faulty_fsm.lua: helios.fsm.kv with commands that fail after changing the
-- state, for the FSM error specs. Deterministic: every replica fails the same way.
--
--   boom KEY   increments KEY, then raises "boom at KEY" (the increment stays)
--   fn KEY     increments KEY, then returns a function (no client can receive it)
--   anything else: helios.fsm.kv
--
-- A cluster file names it `fsm = "spec.helpers.faulty_fsm"` (the node processes find it
-- from the repository's root, where busted runs); in-process specs call new().

local kv = require("helios.fsm.kv")

local error = error

local M = {}

function M.new()
    local f = kv.new()
    local apply = f.apply
    function f:apply(cmd, index, entry)
        local key = cmd:match("^boom (%S+)$")
        if key then
            apply(self, "incr " .. key, index)
            error("boom at " .. key)
        end
        key = cmd:match("^fn (%S+)$")
        if key then
            apply(self, "incr " .. key, index)
            return function() end
        end
        return apply(self, cmd, index, entry)
    end
    return f
end

return M
