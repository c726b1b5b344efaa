# Helios Raft: build, test and CI entry points. `make help` lists the targets.
#
# The C Lua module helios.core is build/helios/core.so, from every $(SRC_DIRS)/*.c except
# *_bench.c and *_fuzz.c. The test module helios.testkit (csrc/testkit: proxy, raw
# bindings, fault-injecting file system, benchmarks) is build/helios/testkit.so.
# busted finds both through .busted (cpath "build/?.so"). Both source lists are checked
# against the rockspec's by `make rock-check`. `make check-layers` (run by `make test`)
# fails on an #include that points up the layers (tools/check-layers.lua).

SHELL := /bin/bash
.DEFAULT_GOAL := build

ifeq ($(origin CC),default)
CC := gcc
endif

LUAJIT_INC ?= /usr/include/luajit-2.1
CPPFLAGS += -I$(LUAJIT_INC) -Icsrc
# The project's flags; a CFLAGS from the command line or environment is added after them.
HR_CFLAGS := -std=c11 -O2 -g -fPIC -Wall -Wextra -Werror
# No -lluajit: the module's Lua symbols resolve against the luajit executable that loads it.
# libuv: csrc/storage runs fsyncs on libuv's threadpool (group commit).
LDLIBS += -luv -lm
# csrc/transport: msgpack-c for the wire codec, OpenSSL's libcrypto for the handshake's
# HMAC-SHA256 and nonces.
LDLIBS += -lmsgpackc -lcrypto
# Header dependencies: each object records the headers it includes, so editing one rebuilds
# exactly the objects that include it.
DEPFLAGS = -MMD -MP

# -fno-sanitize-recover: UBSan aborts on the first report instead of logging and going on,
# so a report is a failing run, not a line lost in the output.
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRC_DIRS := csrc/core csrc/storage csrc/transport csrc/node csrc/sim csrc/lua
SRCS := $(filter-out %_bench.c %_fuzz.c,$(wildcard $(addsuffix /*.c,$(SRC_DIRS))))
OBJS := $(SRCS:%.c=build/obj/%.o)
ASAN_OBJS := $(SRCS:%.c=build-asan/obj/%.o)

# helios.testkit links its own copy of everything below csrc/lua and of the binding
# files it shares with helios.core (support.c, config.c, fs_binding.c, client_binding.c
# and its clock, os.c): Lua loads each module with RTLD_LOCAL, so one cannot call the
# other's functions. They share only layouts: csrc/lua/fs_binding.h's, through which a
# file system made by the testkit reaches a node (the function pointers in it point into
# testkit.so), and the socket class of client_binding.c, which both register
# (csrc/lua/client_binding.h): the testkit's listeners accept helios.core sockets.
TESTKIT_SRCS := $(wildcard csrc/testkit/*.c) $(filter-out csrc/lua/%,$(SRCS)) \
	csrc/lua/support.c csrc/lua/config.c csrc/lua/fs_binding.c \
	csrc/lua/client_binding.c csrc/lua/os.c csrc/lua/resp_reply.c
TESTKIT_OBJS := $(TESTKIT_SRCS:%.c=build/obj/%.o)
TESTKIT_ASAN_OBJS := $(TESTKIT_SRCS:%.c=build-asan/obj/%.o)

# The benchmark is a plain executable: everything but the Lua binding.
BENCH_SRCS := csrc/sim/sim_bench.c $(filter-out csrc/lua/%,$(SRCS))
BENCH_OBJS := $(BENCH_SRCS:%.c=build/obj/%.o)

BUSTED ?= busted
# Seeds for the randomized schedule spec under the sanitizers (slow: ~10x), see spec/.
ASAN_SEEDS ?= 100

.PHONY: help deps build test test-asan bench bench-compare profile rock-check check check-layers demo clean fuzz-check torture

help:
	@echo "make deps        install missing Debian packages (as root; else prints the apt-get line)"
	@echo "make build       build/helios/core.so and build/helios/testkit.so"
	@echo "make test        deps + build + layer check + busted specs, then 'N passed, N failed'"
	@echo "make check-layers  fail on an #include that points up the layers of csrc/"
	@echo "make test-asan   the specs against an ASan+UBSan build (build-asan/)"
	@echo "make bench       the benchmarks: simulator, storage, cluster, reads, snapshots, and"
	@echo "                 ATLAS vs redis-server with redis-benchmark (needs redis-tools and"
	@echo "                 redis-server, else that part says what to install), and the"
	@echo "                 linearizability checker on 200k-op histories"
	@echo "make bench-compare  Helios next to etcd (3 members) and redis-server (appendfsync"
	@echo "                 always) in one run, one Markdown table: writes at 1/16/64/256"
	@echo "                 clients, reads, failover, memory for 1M keys (~3 min; installs"
	@echo "                 etcd, Go, redis as root: docs/benchmarks.md)"
	@echo "make profile     where a leader's time goes at 64 clients: perf record and strace -c"
	@echo "                 of the leader, fsyncs/s, entries per fsync (docs/benchmarks.md)"
	@echo "make torture     one long Jepsen-style run: SECONDS=60 SEED= MODE=control|resp KINDS="
	@echo "                 (a 5-node ATLAS cluster, 10 clients, faults; exit 1 if not valid)"
	@echo "make rock-check  install the rock into a temporary tree and use it from there"
	@echo "make check       everything CI runs: test, test-asan, rock-check, fuzz-check, summed counts"
	@echo "make fuzz-check  the libFuzzer targets for FUZZ_SECONDS (60) in all, as a test runner"
	@echo "make demo        a local 3-node ATLAS cluster (redis-cli -p 10001..10003), data under"
	@echo "                 ./data: bin/helios cluster --nodes 3"
	@echo "                 (other ports: HELIOS_BASE_PORT=9101, more options: ARGS='...')"
	@echo "make clean       remove build outputs"

deps:
	@.ci/deps

build: build/helios/core.so build/helios/testkit.so
	@:

# The layers of csrc/ and who may include whom: tools/check-layers.lua's banner.
check-layers:
	@luajit tools/check-layers.lua csrc

# A shared object may keep undefined symbols (the Lua API comes from the executable), so a
# missing hr_* function would only show when luajit loads the module: catch it here.
define check_undefined
	@if nm -u $@ | grep -E ' hr_' >/dev/null; then \
		echo "$@: undefined project symbols (a source file missing or not built?):" >&2; \
		nm -u $@ | grep -E ' hr_' >&2; rm -f $@; exit 1; fi
endef

build/helios/core.so: $(OBJS)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $(OBJS) $(LDLIBS)
	$(check_undefined)

build/helios/testkit.so: $(TESTKIT_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $(TESTKIT_OBJS) $(LDLIBS)
	$(check_undefined)

build/obj/%.o: %.c Makefile
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(HR_CFLAGS) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

build-asan/helios/core.so: $(ASAN_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared $(ASAN_FLAGS) -o $@ $(ASAN_OBJS) $(LDLIBS)
	$(check_undefined)

build-asan/helios/testkit.so: $(TESTKIT_ASAN_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared $(ASAN_FLAGS) -o $@ $(TESTKIT_ASAN_OBJS) $(LDLIBS)
	$(check_undefined)

build-asan/obj/%.o: %.c Makefile
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(HR_CFLAGS) $(CFLAGS) $(ASAN_FLAGS) $(DEPFLAGS) -c -o $@ $<

build/sim_bench: $(BENCH_OBJS)
	$(CC) -o $@ $(BENCH_OBJS) $(LDLIBS)

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d) $(BENCH_OBJS:.o=.d) \
	$(TESTKIT_OBJS:.o=.d) $(TESTKIT_ASAN_OBJS:.o=.d)

# hr-step, the core's golden-test driver (csrc/testkit/step/step.c says how to use it): a
# plain executable over csrc/core alone, run by spec/core_golden_spec.lua on spec/golden/*.txt.
# A test tool, so not in the rock. `make build` builds it for the specs; the sanitizer build
# (build-asan/hr-step) is the one the spec runs under `make test-asan`.
STEP_SRCS := $(wildcard csrc/testkit/step/*.c) $(wildcard csrc/core/*.c)
build: build/hr-step
test-asan: build-asan/hr-step

build/hr-step: $(STEP_SRCS:%.c=build/obj/%.o)
	$(CC) -o $@ $^

build-asan/hr-step: $(STEP_SRCS:%.c=build-asan/obj/%.o)
	$(CC) $(ASAN_FLAGS) -o $@ $^

-include $(STEP_SRCS:%.c=build/obj/%.d) $(STEP_SRCS:%.c=build-asan/obj/%.d)

# Each runner writes its counts to $(HELIOS_RESULTS)/NAME.counts when `make check` sets it.
test:
	@.ci/deps
	@$(MAKE) --no-print-directory build check-layers
	@.ci/busted-run test $(BUSTED) -o TAP

# The module is built with the sanitizers but luajit is not, so the ASan runtime must be
# the first library in the process: LD_PRELOAD it. busted runs directly under luajit
# (--ignore-lua) so the preloaded process is the one that loads the module; the "asan" task
# of .busted points cpath at build-asan/.
# Leak checking is off by default (`make test-asan ASAN_LEAKS=1` turns it on). busted exits
# with os.exit(code, true), which closes the Lua state and runs every __gc, so most specs
# report nothing; a few still do, and those are ours: a loop whose handles are still open at
# lua_close is kept rather than freed under them (csrc/lua/loop.c, loop_free), and a node
# created but never started keeps its runtime.
ASAN_LEAKS ?= 0
test-asan:
	@.ci/deps
	@$(MAKE) --no-print-directory build-asan/helios/core.so build-asan/helios/testkit.so
	@LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
	ASAN_OPTIONS=detect_leaks=$(ASAN_LEAKS):abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	HELIOS_SEEDS=$(ASAN_SEEDS) \
	.ci/busted-run test-asan luajit "$$(command -v $(BUSTED))" --ignore-lua --run=asan -o TAP

bench:
	@$(MAKE) --no-print-directory build/sim_bench build
	build/sim_bench
	luajit -e 'package.cpath = "build/?.so;" .. package.cpath' spec/bench/storage.lua
	luajit spec/bench/cluster.lua
	luajit spec/bench/reads.lua
	luajit spec/bench/snapshot.lua
	luajit spec/bench/redis.lua
	luajit spec/bench/linearize.lua

# Helios next to etcd and redis-server, measured in one run, printed as one Markdown table
# (tools/bench_compare.lua; docs/benchmarks.md). Not part of `make check`: it takes minutes
# and needs etcd and Go. Packages missing and not root: .ci/deps --bench prints the apt-get
# line and the run goes on without them (their cells stay "-"). The driver keeps to its own
# time budget (HELIOS_COMPARE_BUDGET_S, 600 s) and stops every process it starts; timeout is
# the last resort (--foreground: Ctrl-C still reaches the driver, which cleans up).
bench-compare:
	@.ci/deps --bench || echo "bench-compare: going on without them (their cells stay empty)" >&2
	@$(MAKE) --no-print-directory build
	timeout --foreground --kill-after=30 900 luajit tools/bench_compare.lua

# Where a leader's CPU and system calls go at 64 clients (spec/bench/profile.lua;
# docs/benchmarks.md, "Profile"). perf and strace come with .ci/deps --bench.
profile:
	@.ci/deps --bench || echo "profile: going on without them" >&2
	@$(MAKE) --no-print-directory build
	luajit spec/bench/profile.lua

# One long torture run (docs/testing.md, "Torture runs"): make torture SECONDS=300 SEED=7
SECONDS ?= 60
SEED ?=
MODE ?= control
KINDS ?=
torture: build
	luajit tools/torture.lua "$(SECONDS)" "$(SEED)" "$(MODE)" "$(KINDS)"

rock-check:
	@.ci/deps
	@HELIOS_SRC_DIRS="$(SRC_DIRS)" HELIOS_TESTKIT_SRCS="$(sort $(TESTKIT_SRCS))" .ci/rock-check

# What CI runs (.ci/run). Every runner runs even if an earlier one failed; the last line is
# the sum over all of them.
check:
	@rm -rf build/results
	@rc=0; \
	for t in test test-asan rock-check fuzz-check; do \
		echo "== make $$t"; \
		HELIOS_RESULTS=$(CURDIR)/build/results $(MAKE) --no-print-directory $$t || rc=1; \
	done; \
	echo "== summary"; \
	.ci/sum-results build/results test test-asan rock-check fuzz-check || rc=1; \
	exit $$rc

# Other ports: `make demo HELIOS_BASE_PORT=9101` (helios cluster reads it from the
# environment; make exports a variable given on its command line), or any option of
# `helios cluster` in ARGS, which come last and so win: `make demo ARGS='--base-port 9101'`.
demo:
	@.ci/deps
	@$(MAKE) --no-print-directory build
	bin/helios cluster --nodes 3 --data ./data $(ARGS)

# libFuzzer targets (csrc/transport/fuzz/*_fuzz.c) for the frame decoder, the handshake
# parser, the RESP request parser and the RESP reply reader, with ASan and UBSan. `make fuzz` runs each for its
# share of FUZZ_SECONDS on the committed corpus (csrc/transport/fuzz/corpus/NAME, read only); what it discovers goes to
# build-fuzz/corpus-NAME, and a crash to build-fuzz/crash-*, which fails the target.
# `make fuzz-corpus` regenerates the committed seeds (corpus_gen.c).
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_NAMES := frame handshake resp reply
FUZZ_LIB := csrc/core/blob.c csrc/core/msg.c csrc/core/crc32c.c csrc/core/error.c \
	csrc/transport/frame.c csrc/transport/codec.c csrc/transport/unpack.c \
	csrc/transport/hs_codec.c csrc/transport/handshake.c csrc/transport/resp.c

build-fuzz/%_fuzz: csrc/transport/fuzz/%_fuzz.c $(FUZZ_LIB) csrc/transport/fuzz/fuzz_common.h Makefile
	@mkdir -p $(@D)
	$(FUZZ_CC) -Icsrc $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LIB) -lmsgpackc -lcrypto

.PHONY: fuzz fuzz-corpus
# fuzz as a runner of `make check`: each target that runs its time without a finding is a
# pass, each that finds a crash, leak or timeout a failure (its log is printed).
fuzz-check:
	@mkdir -p $${HELIOS_RESULTS:-build/results}; passed=0; failed=0; \
	for t in $(FUZZ_NAMES); do \
		if $(MAKE) --no-print-directory fuzz FUZZ_NAMES=$$t \
			FUZZ_SECONDS=$$(( $(FUZZ_SECONDS) / $(words $(FUZZ_NAMES)) )); then \
			passed=$$((passed + 1)); else failed=$$((failed + 1)); fi; \
	done; \
	echo "$$passed $$failed 0" > $${HELIOS_RESULTS:-build/results}/fuzz-check.counts; \
	echo "fuzz-check: $$passed passed, $$failed failed"; \
	[ $$failed -eq 0 ]

fuzz: $(FUZZ_NAMES:%=build-fuzz/%_fuzz)
	@secs=$$(( $(FUZZ_SECONDS) / $(words $(FUZZ_NAMES)) )); [ $$secs -gt 0 ] || secs=1; \
	for t in $(FUZZ_NAMES); do \
		mkdir -p build-fuzz/corpus-$$t; \
		echo "== fuzz $$t for $$secs s"; \
		build-fuzz/$${t}_fuzz -max_total_time=$$secs -max_len=65536 -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/ \
			build-fuzz/corpus-$$t csrc/transport/fuzz/corpus/$$t 2>build-fuzz/$$t.log || \
			{ tail -60 build-fuzz/$$t.log; exit 1; }; \
		grep -E "^stat::(number_of_executed_units|average_exec_per_sec)|^#[0-9]+.*DONE" \
			build-fuzz/$$t.log || true; \
	done

fuzz-corpus:
	@mkdir -p build-fuzz csrc/transport/fuzz/corpus/frame csrc/transport/fuzz/corpus/handshake
	$(CC) $(CPPFLAGS) $(HR_CFLAGS) -o build-fuzz/corpus_gen csrc/transport/fuzz/corpus_gen.c \
		$(FUZZ_LIB) -lmsgpackc -lcrypto
	build-fuzz/corpus_gen csrc/transport/fuzz/corpus

# Also what an in-place `luarocks make` leaves behind (objects next to sources, ./helios/).
clean:
	rm -rf build build-asan build-fuzz
	rm -f $(wildcard csrc/*/*.o) helios/core.so helios/testkit.so
	@rmdir helios 2>/dev/null || true
