-- spec/helper.lua: the busted helper (.busted `helper`), run once before any spec file.
--
-- busted insulates each spec file: modules a file requires are unloaded after it. Loading
-- the C module here, before any file runs, keeps one instance of helios.core for the whole
-- run, so every spec file shares it instead of re-opening it per file.
require("helios.core")
