/*
 * storage_binding.h: the durable-storage part of the Lua module `helios.core`
 * (csrc/lua/storage_binding.c). luaopen_helios_core calls hr__lua_open_storage once,
 * with the module table at the top of the stack.
 * Threading: the thread that owns the lua_State.
 */
#ifndef HR_LUA_STORAGE_BINDING_H
#define HR_LUA_STORAGE_BINDING_H

#include <lua.h>

/* Add storage_open, storage_inspect, storage_bench, the snapshot file functions and
 * simfs_new to the table at the top of the stack (left there). Returns 0. */
int hr__lua_open_storage(lua_State *L);

/* simfs_binding.c. A simulated file system shared by its Lua object and the logs opened
 * over it: freed when the last reference goes. */
struct hr_simfs;
struct hr_fs;
struct hr__lua_fsref {
    struct hr_simfs *sim;
    unsigned refs;
};
/* Add simfs_new (and its metatable) to the table at the top of the stack. */
int hr__lua_open_simfs(lua_State *L);
/* The file system named by the "fs" field of the options table at idx (a simfs), or NULL
 * (the real one) if idx is not a table or has none. If ref is not NULL, *ref takes a
 * reference (NULL for the real one) to drop with hr__lua_fs_unref. Raises on a bad fs. */
struct hr_fs *hr__lua_opt_fs(lua_State *L, int idx, struct hr__lua_fsref **ref);
void hr__lua_fs_unref(struct hr__lua_fsref *r);

#endif
