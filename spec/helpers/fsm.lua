--- spec/helpers/fsm.lua: recording state machines for simulator specs.
--
-- A recorder keeps every command it applied, with its index and the leader's time stamp,
-- and answers "ok:<command>" so a client can check that the result it got back is the one
-- its own command produced. A registry hands the simulator a factory (called again for a
-- node's restart) and remembers every incarnation per node.
--
--   local fsm = require("spec.helpers.fsm")
--   local reg = fsm.registry()
--   local c = sim.cluster{ n = 3, seed = 1, fsm = reg.factory }
--   reg.current.n1.log   -- { { index =, command =, time_ms = }, ... }

local setmetatable, error, tostring = setmetatable, error, tostring

local M = {}

local Recorder = {}
Recorder.__index = Recorder
Recorder.__name = "spec.recorder"

--- A new empty recorder for node id.
function M.recorder(id)
    return setmetatable({ id = id, log = {}, by_index = {} }, Recorder)
end

function Recorder:apply(command, index, entry)
    local prev = self.log[#self.log]
    self.log[#self.log + 1] = { index = index, command = command,
                                time_ms = entry and entry.time_ms }
    self.by_index[index] = command
    -- The simulator checks in-order apply too; recording the order lets specs say it.
    if prev and index <= prev.index then
        self.out_of_order = (self.out_of_order or 0) + 1
    end
    return "ok:" .. tostring(command)
end

function Recorder:snapshot()
    return ""
end

function Recorder:restore()
end

--- A recorder that raises `message` when it applies `trigger`.
function M.failing(id, trigger, message)
    local r = M.recorder(id)
    function r:apply(command, index, entry)
        if command == trigger then
            error(message, 0)
        end
        return Recorder.apply(self, command, index, entry)
    end
    return r
end

--- A registry of recorders: `factory(id)` for sim.cluster, `current[id]` the live
-- incarnation, `history[id]` every incarnation in order.
-- @tparam[opt] function make(id) builds one FSM; default M.recorder
function M.registry(make)
    make = make or M.recorder
    local reg = { current = {}, history = {} }
    function reg.factory(id)
        local f = make(id)
        reg.current[id] = f
        local h = reg.history[id] or {}
        h[#h + 1] = f
        reg.history[id] = h
        return f
    end
    return reg
end

return M
