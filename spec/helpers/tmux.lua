-- spec/helpers/tmux.lua: a program in a real pseudo-terminal (a tmux session on a private
-- server, `tmux -L <unique>`), keys typed into it and its screen read back, with deadlines.
--
--   local tmux = require("spec.helpers.tmux")
--   local t = tmux.start({ "luajit", "bin/helios", "console", sock }, { HELIOS_HISTORY = f })
--   finally(tmux.kill_all)                     -- every private server goes, with its program
--                                              -- (busted keeps one finally per test)
--   t:type("1 + 1") t:key("Enter")            -- literal text; tmux key names
--   t:wait("2", 10000)                         -- the screen shows it (count: how often)

local core = require("helios.core")
local tk = require("helios.testkit")
local shell = require("helios.util.shell")
-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs

local M = {}

local T = {}
T.__index = T

local function run(cmd)
    local p = io.popen(cmd .. " 2>&1")
    local out = p:read("*a")
    local ok = p:close()
    return ok == true or ok == 0, out
end

local seq = 0
local started = {}

--- Start argv in a new session of a private tmux server, with env added.
function M.start(argv, env, opts)
    opts = opts or {}
    seq = seq + 1
    local name = string.format("helios-spec-%d-%d-%d", tk.getpid(), seq, core.clock_ms() % 1e6)
    local words = { "env" }
    for k, v in each(env or {}) do words[#words + 1] = shell.quote(k .. "=" .. v) end
    for _, a in ipairs(argv) do words[#words + 1] = shell.quote(a) end
    -- After the program: its exit status on the screen, and time to read it.
    local cmd = table.concat(words, " ") .. "; echo EXIT:$?; sleep 600"
    local self = setmetatable({ name = name, base = "tmux -L " .. name .. " -f /dev/null" },
                              T)
    local ok, out = run(string.format("%s new-session -d -x %d -y %d -c %s %s", self.base,
        opts.width or 160, opts.height or 50, shell.quote(opts.cwd or "."), shell.quote(cmd)))
    assert(ok, "tmux new-session failed: " .. out)
    started[self] = true
    return self
end

--- Type text as it is (no key names).
function T:type(text)
    local ok, out = run(string.format("%s send-keys -t 0 -l %s", self.base, shell.quote(text)))
    assert(ok, "tmux send-keys: " .. out)
end

--- Press keys by tmux name: "Enter", "Tab", "C-c", "C-d".
function T:key(...)
    local names = {}
    for i, k in ipairs({ ... }) do names[i] = shell.quote(k) end
    local ok, out = run(string.format("%s send-keys -t 0 %s", self.base, table.concat(names, " ")))
    assert(ok, "tmux send-keys: " .. out)
end

--- Type a line and press Enter.
function T:line(text)
    self:type(text)
    self:key("Enter")
end

--- The screen and its scrollback, as text.
function T:screen()
    local _, out = run(string.format("%s capture-pane -p -J -S -1000 -t 0", self.base))
    return out
end

local function count(hay, needle)
    local n, i = 0, 1
    while true do
        local s, e = hay:find(needle, i, true)
        if not s then return n end
        n, i = n + 1, e + 1
    end
end

--- Wait until the screen shows text (plain) at least n times (default 1); raises with
-- the screen at the deadline.
function T:wait(text, timeout_ms, n)
    n = n or 1
    local deadline = core.clock_ms() + (timeout_ms or 15000)
    while true do
        local s = self:screen()
        if count(s, text) >= n then return s end
        if core.clock_ms() > deadline then
            error(string.format("the terminal did not show %q (%d times) within %d ms; "
                .. "screen:\n%s", text, n, timeout_ms or 15000, s), 2)
        end
        core.sleep_ms(50)
    end
end

--- How often the screen shows text now.
function T:count(text)
    return count(self:screen(), text)
end

local uid
--- Stop the private tmux server (and what runs in it), and remove its socket.
function T:kill()
    run(self.base .. " kill-server")
    if not uid then
        local p = io.popen("id -u")
        uid = p:read("*l")
        p:close()
    end
    os.remove(string.format("%s/tmux-%s/%s", os.getenv("TMUX_TMPDIR") or "/tmp", uid,
                            self.name))
end

--- Every session started here that is still running: kill them all (for one finally: busted
-- keeps only the last finally of a test).
function M.kill_all()
    for t in each(started) do
        t:kill()
        started[t] = nil
    end
end

return M
