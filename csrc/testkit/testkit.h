/*
 * testkit.h: internals shared by the files of the Lua module `helios.testkit`
 * (csrc/testkit), the test and benchmark machinery kept out of the product module
 * helios.core: specs, spec/helpers, spec/bench and lua/helios/testing.lua load it, nothing
 * else under lua/helios does (spec/module_split_spec.lua checks both).
 *
 *   testkit.c          luaopen_helios_testkit: the module table, once per lua_State;
 *                      getpid
 *   proxy.c            proxy_main: loopback TCP proxies that cut links (helios.testing)
 *   transport_binding.c  the wire protocol raw: wire_encode/decode/frame/handshake,
 *                      raw_connect, node_id
 *   storage_binding.c  the storage log raw: storage_open and the snapshot file functions
 *   throughput.c/.h    the storage benchmark (storage_bench)
 *   simfs_binding.c    simfs_new: the simulated file system (csrc/sim/simfs.h)
 *   fault_fs.c/.h      a struct hr_fs that fails writes or syncs on request
 *   fault_fs_binding.c fault_fs_new: that file system as a Lua object
 *   sock_listen.c      sock_listen (listeners for fake servers and nodes), sock_poll,
 *                      frame_encode
 *   linearize.c/.h     the linearizability checker of a register with cas (pure C)
 *   linearize_binding.c  linearize_check: that checker on one key's ops
 *
 * The module links its own copy of the layers below and of csrc/lua's support.c,
 * config.c, fs_binding.c, client_binding.c and os.c (Makefile, TESTKIT_SRCS): nothing is
 * shared with helios.core at run time but two layouts: fs_binding.h's, through which a
 * file system made here is passed to a node or to storage_inspect, and the socket class
 * of client_binding.c, which both modules register (client_binding.h): a listener here
 * accepts sockets that helios.core's functions take.
 *
 * Metatables are named "helios.testkit.<class>" (the sockets of sock_listen.c's accept are
 * helios.core's "helios.core.sock"). Expected failures return nil, code,
 * detail with lower-case codes (hr_err_name's, or those each file's banner lists).
 * Threading: the thread that owns the lua_State, unless a file says otherwise.
 */
#ifndef HR_TESTKIT_H
#define HR_TESTKIT_H

#include <lua.h>

/* The entry point (the one exported symbol without the hr_ prefix). */
int luaopen_helios_testkit(lua_State *L);

/* Each adds its functions (and registers its metatables) to the table at the top of the
 * stack, leaving it there. */
void hr__tk_open_proxy(lua_State *L);
void hr__tk_open_transport(lua_State *L);
void hr__tk_open_storage(lua_State *L);
void hr__tk_open_simfs(lua_State *L);
void hr__tk_open_fault_fs(lua_State *L);
void hr__tk_open_sock_listen(lua_State *L);
void hr__tk_open_linearize(lua_State *L);

#endif
