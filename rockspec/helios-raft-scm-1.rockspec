-- Helios Raft as a LuaRocks rock. From the repository root, offline, with Debian's packages:
--
--   luarocks --lua-version=5.1 make --tree=/tmp/helios rockspec/helios-raft-scm-1.rockspec
--
-- The C sources are listed by hand: a new csrc/{core,storage,transport,node,sim,lua}/*.c
-- file must be added to helios.core below, a new csrc/testkit/*.c file to helios.testkit
-- (which also lists every source below csrc/lua, and the binding helpers it shares: see
-- the Makefile's TESTKIT_SRCS). `make rock-check` (part of `make check`) fails and names
-- the file if the lists and the tree disagree (.ci/rockspec-lint.lua).

rockspec_format = "3.0"
package = "helios-raft"
-- LuaRocks' package version: "scm" (built from a source checkout), rockspec revision 1. The
-- software's version is core.version (HR_VERSION, csrc/lua/binding.h): `helios --version`.
version = "scm-1"

source = {
   -- No public repository yet: `luarocks make` builds from the checkout it runs in.
   url = "git+https://example.invalid/helios-raft.git",
}

description = {
   summary = "Raft consensus in C11, embedded in LuaJIT 2.1",
   detailed = [[
Helios Raft is a Raft consensus node whose algorithm, log and transport are C, and whose
state machines, tests and control are Lua. This version has the consensus core, a
deterministic cluster simulator on virtual time (helios.sim) and the Lua binding.]],
   license = "MIT",
   labels = { "raft", "consensus", "luajit", "simulation" },
}

dependencies = {
   "lua >= 5.1",
}

external_dependencies = {
   -- csrc/storage runs its fsyncs on libuv's threadpool (Debian: libuv1-dev).
   LIBUV = { header = "uv.h", library = "uv" },
   -- csrc/transport: the wire codec (Debian: libmsgpack-dev) and the handshake's
   -- HMAC-SHA256 (Debian: libssl-dev).
   MSGPACK = { header = "msgpack.h", library = "msgpackc" },
   OPENSSL = { header = "openssl/hmac.h", library = "crypto" },
}

build = {
   type = "builtin",
   modules = {
      ["helios.core"] = {
         sources = {
            "csrc/core/blob.c",
            "csrc/core/config.c",
            "csrc/core/crc32c.c",
            "csrc/core/election.c",
            "csrc/core/error.c",
            "csrc/core/log.c",
            "csrc/core/membership.c",
            "csrc/core/msg.c",
            "csrc/core/raft.c",
            "csrc/core/read.c",
            "csrc/core/replication.c",
            "csrc/core/snapshot.c",
            "csrc/core/transfer.c",
            "csrc/storage/cache.c",
            "csrc/storage/fs_posix.c",
            "csrc/storage/group.c",
            "csrc/storage/inspect.c",
            "csrc/storage/intent.c",
            "csrc/storage/io.c",
            "csrc/storage/lock.c",
            "csrc/storage/log.c",
            "csrc/storage/reconcile.c",
            "csrc/storage/meta.c",
            "csrc/node/node_storage.c",
            "csrc/storage/segment.c",
            "csrc/storage/snapshot.c",
            "csrc/transport/codec.c",
            "csrc/transport/frame.c",
            "csrc/transport/handshake.c",
            "csrc/transport/hs_codec.c",
            "csrc/transport/resp.c",
            "csrc/transport/tcp.c",
            "csrc/transport/tcp_conn.c",
            "csrc/transport/tcp_peer.c",
            "csrc/transport/unpack.c",
            "csrc/node/node.c",
            "csrc/node/recover.c",
            "csrc/node/runtime.c",
            "csrc/node/runtime_membership.c",
            "csrc/node/runtime_snapshot.c",
            "csrc/sim/check.c",
            "csrc/sim/disk.c",
            "csrc/sim/disk_real.c",
            "csrc/sim/net.c",
            "csrc/sim/queue.c",
            "csrc/sim/simfs.c",
            "csrc/sim/simfs_crash.c",
            "csrc/sim/simfs_store.c",
            "csrc/sim/sim.c",
            "csrc/sim/snap.c",
            "csrc/sim/xfer.c",
            "csrc/lua/client_binding.c",
            "csrc/lua/config.c",
            "csrc/lua/control.c",
            "csrc/lua/fork_snapshot.c",
            "csrc/lua/fs_binding.c",
            "csrc/lua/inspect_binding.c",
            "csrc/lua/listener.c",
            "csrc/lua/loop.c",
            "csrc/lua/metrics_http.c",
            "csrc/lua/module.c",
            "csrc/lua/mpack.c",
            "csrc/lua/node_binding.c",
            "csrc/lua/node_membership.c",
            "csrc/lua/node_metrics.c",
            "csrc/lua/resp_reply.c",
            "csrc/lua/resp_server.c",
            "csrc/lua/snapshot_file.c",
            "csrc/lua/snapshot_writer.c",
            "csrc/lua/os.c",
            "csrc/lua/proc_binding.c",
            "csrc/lua/signal_binding.c",
            "csrc/lua/sim_binding.c",
            "csrc/lua/sim_hooks.c",
            "csrc/lua/sim_views.c",
            "csrc/lua/sock_watch.c",
            "csrc/lua/support.c",
         },
         incdirs = { "csrc", "$(LIBUV_INCDIR)" },
         libdirs = { "$(LIBUV_LIBDIR)" },
         libraries = { "uv", "m", "msgpackc", "crypto" },
      },
      -- Tests and benchmarks only (csrc/testkit/testkit.h): nothing in the product loads it.
      -- It links its own copy of the layers below the binding and of the binding files it
      -- shares with helios.core (Lua loads C modules with RTLD_LOCAL, so it cannot call
      -- helios.core's): the Makefile's TESTKIT_SRCS.
      ["helios.testkit"] = {
         sources = {
            "csrc/testkit/fault_fs.c",
            "csrc/testkit/fault_fs_binding.c",
            "csrc/testkit/linearize.c",
            "csrc/testkit/linearize_binding.c",
            "csrc/testkit/proxy.c",
            "csrc/testkit/simfs_binding.c",
            "csrc/testkit/sock_listen.c",
            "csrc/testkit/storage_binding.c",
            "csrc/testkit/testkit.c",
            "csrc/testkit/throughput.c",
            "csrc/testkit/transport_binding.c",
            "csrc/core/blob.c",
            "csrc/core/config.c",
            "csrc/core/crc32c.c",
            "csrc/core/election.c",
            "csrc/core/error.c",
            "csrc/core/log.c",
            "csrc/core/membership.c",
            "csrc/core/msg.c",
            "csrc/core/raft.c",
            "csrc/core/read.c",
            "csrc/core/replication.c",
            "csrc/core/snapshot.c",
            "csrc/core/transfer.c",
            "csrc/storage/cache.c",
            "csrc/storage/fs_posix.c",
            "csrc/storage/group.c",
            "csrc/storage/inspect.c",
            "csrc/storage/intent.c",
            "csrc/storage/io.c",
            "csrc/storage/lock.c",
            "csrc/storage/log.c",
            "csrc/storage/reconcile.c",
            "csrc/storage/meta.c",
            "csrc/node/node_storage.c",
            "csrc/storage/segment.c",
            "csrc/storage/snapshot.c",
            "csrc/transport/codec.c",
            "csrc/transport/frame.c",
            "csrc/transport/handshake.c",
            "csrc/transport/hs_codec.c",
            "csrc/transport/resp.c",
            "csrc/transport/tcp.c",
            "csrc/transport/tcp_conn.c",
            "csrc/transport/tcp_peer.c",
            "csrc/transport/unpack.c",
            "csrc/node/node.c",
            "csrc/node/recover.c",
            "csrc/node/runtime.c",
            "csrc/node/runtime_membership.c",
            "csrc/node/runtime_snapshot.c",
            "csrc/sim/check.c",
            "csrc/sim/disk.c",
            "csrc/sim/disk_real.c",
            "csrc/sim/net.c",
            "csrc/sim/queue.c",
            "csrc/sim/simfs.c",
            "csrc/sim/simfs_crash.c",
            "csrc/sim/simfs_store.c",
            "csrc/sim/sim.c",
            "csrc/sim/snap.c",
            "csrc/sim/xfer.c",
            "csrc/lua/resp_reply.c",
            "csrc/lua/client_binding.c",
            "csrc/lua/config.c",
            "csrc/lua/fs_binding.c",
            "csrc/lua/os.c",
            "csrc/lua/support.c",
         },
         incdirs = { "csrc", "$(LIBUV_INCDIR)" },
         libdirs = { "$(LIBUV_LIBDIR)" },
         libraries = { "uv", "m", "msgpackc", "crypto" },
      },
      ["helios"] = "lua/helios/init.lua",
      ["helios.atlas"] = "lua/helios/atlas.lua",
      ["helios.atlas.fsm"] = "lua/helios/atlas/fsm.lua",
      ["helios.atlas.forward"] = "lua/helios/atlas/forward.lua",
      ["helios.atlas.server"] = "lua/helios/atlas/server.lua",
      ["helios.cli"] = "lua/helios/cli.lua",
      ["helios.client"] = "lua/helios/client.lua",
      ["helios.client.resp"] = "lua/helios/client/resp.lua",
      ["helios.clusterfile"] = "lua/helios/clusterfile.lua",
      ["helios.console"] = "lua/helios/console.lua",
      ["helios.console.command"] = "lua/helios/console/command.lua",
      ["helios.console.readline"] = "lua/helios/console/readline.lua",
      ["helios.console.repl"] = "lua/helios/console/repl.lua",
      ["helios.control"] = "lua/helios/control.lua",
      ["helios.fsm.kv"] = "lua/helios/fsm/kv.lua",
      ["helios.loop"] = "lua/helios/loop.lua",
      ["helios.metrics"] = "lua/helios/metrics.lua",
      ["helios.node"] = "lua/helios/node.lua",
      ["helios.nodelog"] = "lua/helios/nodelog.lua",
      ["helios.testing"] = "lua/helios/testing.lua",
      ["helios.testing.linearize"] = "lua/helios/testing/linearize.lua",
      ["helios.raft"] = "lua/helios/raft.lua",
      ["helios.resp"] = "lua/helios/resp.lua",
      ["helios.sim"] = "lua/helios/sim.lua",
      ["helios.util.address"] = "lua/helios/util/address.lua",
      ["helios.util.deadlines"] = "lua/helios/util/deadlines.lua",
      ["helios.util.process"] = "lua/helios/util/process.lua",
      ["helios.util.shell"] = "lua/helios/util/shell.lua",
      ["helios.util.sock"] = "lua/helios/util/sock.lua",
   },
   install = {
      bin = { helios = "bin/helios" },
   },
}

test = {
   -- Not type "busted": that would try to download busted; Debian's lua-busted is used.
   type = "command",
   command = "make test",
}
