--- helios.util.shell: quoting for the POSIX shell (os.execute, io.popen).
--
--   os.execute("rm -rf " .. shell.quote(dir))

local tostring = tostring

local M = {}

--- s (converted with tostring) as one shell word: in single quotes, each ' written '\''.
function M.quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

return M
