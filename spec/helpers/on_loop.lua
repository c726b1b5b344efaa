--- spec/helpers/on_loop.lua: run a spec's scenario in a coroutine on the loop.
--
--   local on_loop = require("spec.helpers.on_loop")
--   on_loop(10000, function() ... loop.sleep(10) ... end)
--
-- The body runs in a coroutine (loop.spawn), so helios.client calls and waits inside it
-- yield to the loop. on_loop returns once the body returns; it fails the test with the
-- body's error and traceback, or when the body has not finished within limit_ms.

local loop = require("helios.loop")

return function(limit_ms, body)
    local failure, finished
    local guard = loop.after(limit_ms, function()
        failure = failure or string.format("the scenario did not finish within %d ms", limit_ms)
        loop.stop()
    end)
    loop.spawn(function()
        local ok, err = xpcall(body, debug.traceback)
        if not ok then failure = err end
        finished = true
        loop.stop()
    end)
    local ok, err = loop.run()
    guard:stop()
    assert(ok, err)
    assert(finished and not failure, failure)
end
