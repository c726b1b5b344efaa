--- helios.console.readline: GNU readline (libreadline.so.8, Debian's libreadline8) through
-- LuaJIT's FFI, in its callback form, so the caller polls the terminal itself and sees
-- Ctrl-C between two keys (docs/console.md).
--
--   local rl = require("helios.console.readline").load()   -- nil, why if unavailable
--   rl.history_load(path)
--   rl.start("node-1> ", function(line) ... end)           -- line nil: Ctrl-D
--   rl.feed()                          -- stdin is readable: read one key
--   rl.clear()                         -- Ctrl-C: drop the line, new prompt
--   rl.stop()                          -- the terminal as it was (before running a chunk)
--   rl.set_completer(function(text) return { "status(", ... } end)
--   rl.history_add(line)  rl.history_save(path)

local ffi_ok, ffi = pcall(require, "ffi")

local M = {}

local DEFS = [[
typedef void helios_rl_vcpfunc_t(char *);
typedef char **helios_rl_completion_func_t(const char *, int, int);
void rl_callback_handler_install(const char *prompt, helios_rl_vcpfunc_t *lhandler);
void rl_callback_read_char(void);
void rl_callback_handler_remove(void);
void add_history(const char *);
int read_history(const char *);
int write_history(const char *);
int history_truncate_file(const char *, int);
extern helios_rl_completion_func_t *rl_attempted_completion_function;
extern int rl_attempted_completion_over;
extern int rl_completion_append_character;
extern const char *rl_readline_name;
extern const char *rl_basic_word_break_characters;
extern int rl_catch_signals;
extern int rl_catch_sigwinch;
void rl_replace_line(const char *, int);
int rl_crlf(void);
int rl_on_new_line(void);
void rl_redisplay(void);
void *malloc(size_t);
void free(void *);
char *strdup(const char *);
]]

-- Characters that end a word for completion: everything but a Lua name and its path.
local BREAK = " \t\n\"\\'`@$><=;|&{}()[]+-*/%^~#,"

local loaded

--- Load readline. Returns the module's functions, or nil and why.
function M.load()
    if loaded then return loaded end
    if not ffi_ok then return nil, "no FFI (not LuaJIT)" end
    if os.getenv("HELIOS_NO_READLINE") then return nil, "HELIOS_NO_READLINE is set" end
    local ok, lib = pcall(ffi.load, "libreadline.so.8")
    if not ok then
        ok, lib = pcall(ffi.load, "readline")
        if not ok then return nil, tostring(lib) end
    end
    ok = pcall(ffi.cdef, DEFS)
    if not ok then return nil, "cannot declare readline's functions" end
    local C = ffi.C
    local rl = {}
    lib.rl_readline_name = "helios"
    -- The console polls Ctrl-C itself (helios.core.signal_catch): readline must not
    -- install its own handlers.
    lib.rl_catch_signals = 0
    lib.rl_catch_sigwinch = 0
    local brk = ffi.new("char[?]", #BREAK + 1, BREAK)
    rl._brk = brk -- anchored: readline keeps the pointer
    lib.rl_basic_word_break_characters = brk

    local handler_cb, on_line
    handler_cb = ffi.cast("helios_rl_vcpfunc_t *", function(p)
        local line
        if p ~= nil then
            line = ffi.string(p)
            C.free(p)
        end
        if on_line then on_line(line) end
    end)
    rl._handler = handler_cb
    local installed = false

    function rl.start(prompt, fn)
        on_line = fn
        lib.rl_callback_handler_install(prompt, handler_cb)
        installed = true
    end

    function rl.feed()
        lib.rl_callback_read_char()
    end
    -- A C function that calls back into Lua (the line handler, the completer) must not be
    -- called from compiled code (LuaJIT's FFI rule for callbacks).
    jit.off(rl.feed)

    function rl.stop()
        if installed then
            lib.rl_callback_handler_remove()
            installed = false
        end
    end

    function rl.clear(prompt)
        lib.rl_replace_line("", 0)
        lib.rl_crlf()
        if prompt then
            lib.rl_callback_handler_remove()
            lib.rl_callback_handler_install(prompt, handler_cb)
        end
    end

    -- Text printed while a line is being typed: over the prompt's line, then the prompt
    -- and what was typed drawn again below it.
    function rl.print_above(text, write)
        write("\r\027[K" .. text)
        lib.rl_on_new_line()
        lib.rl_redisplay()
    end

    function rl.history_add(line) lib.add_history(line) end
    function rl.history_load(path) lib.read_history(path) end
    function rl.history_save(path, keep)
        lib.write_history(path)
        lib.history_truncate_file(path, keep or 1000)
    end

    local completer
    local complete_cb = ffi.cast("helios_rl_completion_func_t *", function(text)
        lib.rl_attempted_completion_over = 1
        lib.rl_completion_append_character = 0
        if not completer then return nil end
        local ok2, list = pcall(completer, ffi.string(text))
        if not ok2 or type(list) ~= "table" or #list == 0 then return nil end
        -- [0] the common prefix (what replaces the word), then the matches, then NULL;
        -- readline frees them all.
        local common = list[1]
        for i = 2, #list do
            local n = 0
            while n < #common and common:byte(n + 1) == list[i]:byte(n + 1) do n = n + 1 end
            common = common:sub(1, n)
        end
        local arr = ffi.cast("char **", C.malloc(ffi.sizeof("char *") * (#list + 2)))
        arr[0] = C.strdup(common)
        if #list == 1 then
            arr[1] = nil
        else
            for i, s in ipairs(list) do arr[i] = C.strdup(s) end
            arr[#list + 1] = nil
        end
        return arr
    end)
    rl._complete = complete_cb
    lib.rl_attempted_completion_function = complete_cb
    function rl.set_completer(fn) completer = fn end

    loaded = rl
    return rl
end

return M
