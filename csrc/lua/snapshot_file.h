/*
 * snapshot_file.h: the file of a snapshot that is written in slices on the loop, part of
 * the Lua module `helios.core` (csrc/lua/snapshot_file.c). A node uses it for an FSM that
 * serializes itself in slices between which it goes on applying entries
 * (fsm.snapshot_slices: docs/fork-snapshot.md, "In slices").
 *
 *   local core = require("helios.core")
 *   local f, code, detail = core.snapshot_file(tmp_path)  -- nil, "io", detail
 *   f:write(s, ...)      -- strings and numbers, like file:write; raises on a write error
 *   f:bytes()            -- written so far
 *   f:finish(function(ok, err, bytes) end)  -- true, or nil, "io", detail (done not called)
 *   f:abort()            -- closes the file: true, or false once finish was called
 *
 * tmp_path is created as for core.snapshot_fork (O_CREAT | O_EXCL, mode 0600). Writes go
 * to the kernel's page cache from the loop's thread, in 1 MiB pieces; finish writes what is
 * buffered, then fdatasyncs on libuv's threadpool (never on the loop: tens of megabytes
 * take the disk hundreds of milliseconds), closes the file and calls done on the loop
 * (protected, as every loop callback). On any outcome the file stays for the caller to
 * rename or remove.
 *
 * Ownership: the file is the object's until finish, then the fdatasync's (which closes
 * it); a collected object closes a file it still holds. Threading: the loop's thread; the
 * fdatasync runs on the threadpool and touches only its own request.
 */
#ifndef HR_LUA_SNAPSHOT_FILE_H
#define HR_LUA_SNAPSHOT_FILE_H

#include <lua.h>

/* Add snapshot_file to the module table at the top of the stack (left there). */
void hr__lua_open_snapshot_file(lua_State *L);

#endif
