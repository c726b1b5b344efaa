--- spec/helpers/storage_try_open.lua: open a data dir from a second process and say how it
-- went: prints "ok" (exit 0) or "<code> <message>" (exit 3).
--   luajit spec/helpers/storage_try_open.lua ./data
local tk = require("helios.testkit")
local st, code, msg = tk.storage_open(assert(arg[1], "Usage: storage_try_open.lua <dir>"))
if not st then
    print(code .. " " .. msg)
    os.exit(3)
end
st:close()
print("ok")
os.exit(0)
