/*
 * fork_snapshot.h: writing a snapshot of the Lua state to a file without stalling the
 * loop: a forked child serializes the copy-on-write image of the state while the parent's
 * loop goes on (csrc/lua/fork_snapshot.c), part of the Lua module `helios.core`. Design,
 * choices and measurements: docs/fork-snapshot.md.
 *
 *   local core = require("helios.core")
 *   -- fn(w) either returns the bytes (a string) or writes them with w:write(s, ...) and
 *   -- returns nil (both: the returned string goes after what was written).
 *   local h, code, detail = core.snapshot_fork(tmp_path, fn,
 *       function(ok, err, bytes, stats) end,        -- runs on the loop, protected
 *       { child_gc = false })                       -- optional
 *   h:pid()  h:kill()  h:running()  h:fork_ms()
 *   local ok, err, bytes = core.snapshot_sync(tmp_path, fn)   -- same contract, no fork
 *
 * tmp_path is created (O_CREAT | O_EXCL, mode 0600): it must not exist. On success it holds
 * exactly the bytes and is fdatasynced; the caller fsyncs the directory and renames it. On
 * failure it is left for the caller to remove. snapshot_fork returns nil, "io", detail
 * (and never calls done) when the file, the pipe or the fork cannot be made.
 *
 * Threading: the loop's thread. The child runs fn on a copy of the whole process (the
 * calling thread only), with default signal handlers and only fds 0-2 and the file open;
 * it never returns into the caller's Lua code and leaves with _exit. snapshot_fork returns
 * once the child has closed every other fd it inherited: a file the caller closes next
 * (a data dir's lock) is closed for good.
 */
#ifndef HR_LUA_FORK_SNAPSHOT_H
#define HR_LUA_FORK_SNAPSHOT_H

#include <lua.h>

/* Add snapshot_fork and snapshot_sync to the module table at the top of the stack (left
 * there). Returns 0. */
int hr__lua_open_fork_snapshot(lua_State *L);

#endif
