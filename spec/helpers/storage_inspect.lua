--- spec/helpers/storage_inspect.lua: a stand-in for `helios inspect <data_dir>` until the
-- CLI (lua/helios/cli.lua) wires it: prints the report, exit status 0 if sound, else 1.
--   luajit spec/helpers/storage_inspect.lua ./data
local core = require("helios.core")
local dir = assert(arg[1], "Usage: storage_inspect.lua <data_dir>")
local ok, report = core.storage_inspect(dir)
io.write(report)
os.exit(ok and 0 or 1)
