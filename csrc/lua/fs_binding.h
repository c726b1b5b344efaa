/*
 * fs_binding.h: the one seam through which a test puts faults under the product, a file
 * system (struct hr_fs, csrc/storage/fs.h) handed to helios.core as a Lua value.
 *
 *   local tk = require("helios.testkit")
 *   local fs = tk.fault_fs_new()                   -- or tk.simfs_new(seed)
 *   local n = core.node_new({ ..., fs = fs }, hooks)   -- raft.new{ ..., fs = fs }
 *   core.storage_inspect(dir, { fs = fs })
 *   fs:fail("write", 1, "no_space")                -- the node's next write fails
 *
 * The product never creates such a file system: helios.testkit does (csrc/testkit), and
 * helios.core only calls through it. An "fs" option that is absent means the real file
 * system (hr_fs_posix()).
 *
 * Across two shared objects: the userdata's function pointers (struct hr_fs_ops, and
 * free below) point into the module that made it (testkit.so); helios.core only calls
 * through them, so the two modules share no symbol, only this layout. The userdata is
 * recognised by its metatable, looked up by name in the registry (HR_LUA_FS_CLASSES):
 * a metatable of that name exists only if the module that makes such objects was loaded.
 *
 * Layout: the userdata of every class in HR_LUA_FS_CLASSES is one pointer,
 * `struct hr_lua_fs *`, to a reference-counted box.
 *
 * Ownership and lifetime: the box is created with refs = 1, owned by its Lua object (whose
 * __gc drops it). Whoever keeps using box->fs after the call that received it (a node, a
 * raw storage log) takes a reference (hr__lua_fs_ref) and drops it (hr__lua_fs_unref)
 * only once nothing opened over the file system can touch it any more (the log is
 * closed, the runtime freed). The last unref calls box->free. The count, not the Lua
 * object, keeps the file system alive, so the order in which the garbage collector
 * finalizes a node and its file system (at lua_close, both at once) does not matter.
 * A node also keeps the Lua object itself (in its environment), so a test can still
 * steer the file system it passed without holding on to it.
 *
 * Threading: refs is touched only on the thread that owns the lua_State. The file system
 * itself may be called from other threads (a node's storage rounds run on the libuv
 * threadpool): an implementation that is steered from Lua while in use must lock (the
 * fault file system does; the simulated one is for single-threaded raw storage only).
 */
#ifndef HR_LUA_FS_BINDING_H
#define HR_LUA_FS_BINDING_H

#include <lua.h>

struct hr_fs;

struct hr_lua_fs {
    struct hr_fs *fs;                      /* calls go through fs->ops */
    unsigned refs;
    void (*free)(struct hr_lua_fs *self);  /* frees the box and the file system */
};

/* Metatable names of the userdata classes that hold a struct hr_lua_fs * (helios.testkit's
 * fault-injecting and simulated file systems). */
#define HR_LUA_FS_CLASSES {"helios.testkit.fault_fs", "helios.testkit.simfs"}

/* The box of the value at idx if it is one of HR_LUA_FS_CLASSES, else NULL. */
struct hr_lua_fs *hr__lua_to_fs(lua_State *L, int idx);
/* The "fs" field of the options table at idx: NULL if idx is not a table or the field is
 * nil (the real file system); raises "<what>: fs must be a file system of
 * helios.testkit" on anything else. Borrowed: take a reference to keep it. */
struct hr_lua_fs *hr__lua_opt_fs(lua_State *L, int idx, const char *what);
/* The file system of a box, NULL for NULL (which csrc/storage reads as POSIX). */
struct hr_fs *hr__lua_fs_of(struct hr_lua_fs *box);
void hr__lua_fs_ref(struct hr_lua_fs *box);   /* NULL: nothing */
void hr__lua_fs_unref(struct hr_lua_fs *box); /* NULL: nothing */

#endif
