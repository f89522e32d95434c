# WSP: build the C provider, run the integration tests, the demo and the benchmarks.
#
#   make              build/libcwsp.a and build/libcwsp.so
#   make check        every C integration test (WSP's Winsock conformance suite,
#                     Tests/c/conformance, among them), then swift test
#   make check-asan   the C tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make check-tsan   the C tests under ThreadSanitizer
#   make check-swift-tsan  the Swift tests under ThreadSanitizer
#   make check-doc-snippets  the ```swift blocks of README.md and the DocC articles compile
#   make check-valgrind  the accept and connect-data C tests under valgrind's memcheck:
#                     uninitialised bytes sent, invalid accesses or definite leaks fail it
#   make fuzz         the handshake decoder under libFuzzer (FUZZ_SECONDS, default 30)
#   make fuzz-net     raw clients send valid, broken and hostile handshakes to a connect-data
#                     listener while good clients connect; ASan + UBSan (FUZZ_NET_SECONDS,
#                     default 20; FUZZ_NET_SEED repeats a run's byte streams)
#   make demo         a server and clients showing accept, reject and hold
#   make bench        connections per second and event-driven ping-pong round trips per
#                     second, each against raw sockets, pinned to one CPU
#   make bench-load   concurrent load: 64 and 512 client threads against a WSP connect-data
#                     server and a raw-socket server with the same accept threads, both CPUs
#                     and pinned; rate, latency percentiles, server CPU, wrong/lost outcomes
#   make bench-hold   held requests: connections per second holding vs accepting at once, and
#                     the fast clients' p50/p99 when one in ten needs a 100 ms decision
#   make bench-memory bytes and descriptors per idle socket (with and without an event
#                     registration), per queued request and per event object, against raw epoll
#   make bench-swift  the Swift benchmarks (Benchmarks/, a separate package with SwiftNIO):
#                     the C provider, the Swift sync and async APIs and SwiftNIO, pinned
#   make install      headers, libcwsp.a, libcwsp.so (soname libcwsp.so.0), wsp.pc, the CMake
#                     package (find_package(wsp)), and wspcat (release build) with its
#                     manual page and bash/zsh/fish completions, under $(DESTDIR)$(PREFIX),
#                     PREFIX defaulting to /usr/local; `make uninstall` removes them and the
#                     folders left empty. Then: cc prog.c $(pkg-config --cflags --libs wsp)
#                     (libraries after the sources: the toolchain links --as-needed)
#   make wspcat       build/wspcat/: the release wspcat, wspcat.1 and completion scripts
#   make docs         the DocC archive of the Swift module (build/WSP.doccarchive), with
#                     warnings as errors
#   make example-swift  examples/swift: an async admission server and its clients
#   make check-exports  the shared library exports only the WSP_EXPORT names of include/,
#                     and its soname is libcwsp.so.0
#   make check-install  install into a temporary prefix, build and run examples/demo.c
#                     against it through pkg-config (static and shared) and CMake, run the
#                     installed wspcat, uninstall (no file or folder left)
#   make check-layers  the provider's C files form layers that look only down: fails on a
#                     call from a file to one above it (the map: docs/ARCHITECTURE.md)
#   make check-repeat  the C suite and swift test REPEAT_RUNS times (default 20) while busy
#                     loops keep every CPU loaded: stops at the first failing run
#   make mutate       mutation testing of Sources/CWSP against the C suite (Tests/mutate/run;
#                     MUTATE_FILES, MUTATE_SAMPLE, MUTATE_SEED, MUTATE_BUDGET, MUTATE_JOBS;
#                     MUTATE_RESUME=1 goes on where the last sitting stopped);
#                     `make mutate-sample` is the bounded run CI does (docs/MUTATION.md)

CC ?= cc
BUILD ?= build
OPT ?= -O2 -g
SAN ?=
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CPPFLAGS_ALL = -D_GNU_SOURCE -Iinclude -ISources/CWSP
CFLAGS_ALL = -std=c11 $(WARN) $(OPT) $(SAN) -pthread
SONAME = libcwsp.so.0
# The shared library's file version is the release's (include/wsp/version.h).
SOVERSION = $(shell sed -n 's/.*WSP_VERSION_STRING "\(.*\)"/\1/p' include/wsp/version.h)

LIB_SRCS := $(wildcard Sources/CWSP/*.c)
LIB_OBJS := $(LIB_SRCS:Sources/CWSP/%.c=$(BUILD)/obj/%.o)
HEADERS := $(wildcard include/*.h include/wsp/*.h Sources/CWSP/*.h)
TEST_SRCS := $(filter-out Tests/c/header-check.c Tests/c/header-check-winsock.c,$(wildcard Tests/c/*.c)) \
	$(wildcard Tests/c/winsock/*.c) $(wildcard Tests/c/conformance/*.c)
TEST_OBJS := $(TEST_SRCS:Tests/c/%.c=$(BUILD)/test-obj/%.o)

.PHONY: all check check-c check-swift check-swift-tsan check-doc-snippets check-asan check-tsan \
	fuzz fuzz-net check-valgrind demo bench bench-load bench-memory bench-hold bench-swift clean wspcat docs \
	example-swift install uninstall check-exports check-install check-layers mutate mutate-sample \
	check-repeat

all: $(BUILD)/libcwsp.a $(BUILD)/libcwsp.so

$(BUILD)/obj/%.o: Sources/CWSP/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -DWSP_BUILDING_LIBRARY $(CFLAGS_ALL) -fPIC -fvisibility=hidden -c $< -o $@

$(BUILD)/libcwsp.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libcwsp.so: $(LIB_OBJS)
	$(CC) -shared $(SAN) -pthread -Wl,-soname,$(SONAME) -o $(BUILD)/libcwsp.so.$(SOVERSION) $^
	ln -sf libcwsp.so.$(SOVERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

# Every test header, so that a change to a shared helper rebuilds its users.
TEST_HEADERS := $(wildcard Tests/c/*.h Tests/c/*/*.h)
$(BUILD)/test-obj/%.o: Tests/c/%.c $(HEADERS) $(TEST_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -ITests/c $(CFLAGS_ALL) -c $< -o $@

# The test binary links a copy of the provider whose calls to the functions Tests/c/faults.h
# lists are renamed to the wrappers in Tests/c/faults.c, so that a test can make one of them
# fail and the provider's descriptors are counted; the tests' own calls are left alone (which
# -Wl,--wrap could not do). The event and message queue functions of Tests/c/leaks.syms are
# renamed too, wrapped by Tests/c/leaks.c to close what a test left open before the runner
# looks for leaks, and so are pthread_mutex_init and the destroys of mutexes and condition
# variables, to find a lock left unbalanced or never destroyed. Tests/mutate/run renames its
# objects with the same list.
$(BUILD)/faults.syms: Tests/c/faults.h Tests/c/leaks.syms
	@mkdir -p $(dir $@)
	{ grep -o 'X([a-z0-9_]*)' $< | sed 's/X(\(.*\))/\1 wsp_fault_\1/'; cat Tests/c/leaks.syms; } > $@

$(BUILD)/libcwsp-faults.a: $(BUILD)/libcwsp.a $(BUILD)/faults.syms
	objcopy --redefine-syms=$(BUILD)/faults.syms $< $@

$(BUILD)/wsp-tests: $(TEST_OBJS) $(BUILD)/libcwsp-faults.a
	$(CC) $(SAN) -pthread -o $@ $(TEST_OBJS) $(BUILD)/libcwsp-faults.a

# The public header compiles cleanly, on its own, as C99, C11 and C++.
$(BUILD)/header-check.stamp: $(HEADERS) Tests/c/header-check.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only Tests/c/header-check.c
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only Tests/c/header-check.c
	$(CXX) -x c++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only Tests/c/header-check.c
	@touch $@

# The C suite ends with "N passed, N failed"; its exit status is the suite's.
check-c: SHELL := /bin/bash
check-c: $(BUILD)/header-check.stamp $(BUILD)/wsp-tests
	$(BUILD)/wsp-tests $(TESTS) | tee $(BUILD)/c-tests.log; exit $${PIPESTATUS[0]}

# The suite under load, many times (scripts/check-repeat): what passes once on an idle machine
# but depends on timing fails here.
REPEAT_RUNS ?= 20
check-repeat:
	scripts/check-repeat $(REPEAT_RUNS)

check-swift:
	swift build --build-tests -Xswiftc -warnings-as-errors
	swift test --skip-build
	scripts/check-doc-snippets "$$(swift build --show-bin-path)/Modules"

# Every ```swift block of README.md and of the DocC articles compiles with `import WSP` alone
# (each document's blocks as one program; Tests/WSPTests/DocSnippetTests.swift runs them).
check-doc-snippets:
	swift build --target WSP
	scripts/check-doc-snippets "$$(swift build --show-bin-path)/Modules"

check: SHELL := /bin/bash
check: check-c check-swift
	@echo "C suite:"; tail -n 1 $(BUILD)/c-tests.log

# The Swift suite under ThreadSanitizer, in its own build folder (a fresh one: SwiftPM can
# trip over a sanitizer build folder left by an earlier run).
check-swift-tsan:
	rm -rf .build-tsan
	swift test --sanitize=thread --scratch-path .build-tsan

check-asan:
	$(MAKE) BUILD=build/asan SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" OPT="-O1 -g" SHELL=/bin/bash check-c

check-tsan:
	$(MAKE) BUILD=build/tsan SAN="-fsanitize=thread" OPT="-O1 -g" SHELL=/bin/bash check-c

# The accept and connect-data tests under valgrind's memcheck, on a plain -O1 -g build of its
# own: a byte the provider sends that nobody wrote ("Syscall param ... points to uninitialised
# byte(s)"), any other use of uninitialised memory, an invalid read or write, or a definite
# leak fails the test's process (--error-exitcode), hence the run. Forked test processes are
# followed (--trace-children for anything they exec). The tests are every one of the files
# below but edge_running_out_of_descriptors_pauses_and_resumes_the_listener: valgrind emulates
# RLIMIT_NOFILE itself and closes a descriptor the kernel hands out above the lowered limit,
# so the connection that test waits for is lost (an artifact of valgrind, not of WSP).
VALGRIND_BUILD = build/valgrind
VALGRIND_TEST_FILES = Tests/c/test-accept.c Tests/c/test-accept-plain.c Tests/c/test-accept-edge.c \
	Tests/c/test-hostile.c \
	Tests/c/test-cdata.c Tests/c/test-connect.c
VALGRIND_SKIP = edge_running_out_of_descriptors_pauses_and_resumes_the_listener
VALGRIND_TESTS = $(filter-out $(VALGRIND_SKIP),$(shell sed -n 's/^TEST[A-Z_]*.\([a-z0-9_]*\).*/\1/p' $(VALGRIND_TEST_FILES)))
VALGRIND_FLAGS = --tool=memcheck --quiet --trace-children=yes --error-exitcode=99 --track-origins=yes \
	--leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
check-valgrind: SHELL := /bin/bash
check-valgrind:
	$(MAKE) BUILD=$(VALGRIND_BUILD) OPT="-O1 -g" SAN= $(VALGRIND_BUILD)/wsp-tests
	valgrind $(VALGRIND_FLAGS) $(VALGRIND_BUILD)/wsp-tests $(VALGRIND_TESTS) \
	    | tee $(VALGRIND_BUILD)/valgrind.log; exit $${PIPESTATUS[0]}

FUZZ_SECONDS ?= 30
FUZZ_CC = /opt/swift/usr/bin/clang
fuzz:
	@mkdir -p $(BUILD)/fuzz-corpus
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -ISources/CWSP Tests/fuzz/fuzz-handshake.c Sources/CWSP/handshake.c -o $(BUILD)/fuzz-handshake
	$(BUILD)/fuzz-handshake -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz-corpus Tests/fuzz/corpus/handshake

# A bounded network fuzzer of the connect-data listener (Tests/fuzz-net/fuzz-net.c): raw
# clients send valid, broken and hostile handshakes while good WSP clients keep connecting.
# Built with AddressSanitizer + UndefinedBehaviorSanitizer against the library compiled with
# the same flags (the objects check-asan builds). FUZZ_NET_SEED repeats a run's byte streams.
FUZZ_NET_SECONDS ?= 20
fuzz-net:
	$(MAKE) BUILD=build/asan SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" OPT="-O1 -g" build/asan/fuzz-net
	FUZZ_NET_SECONDS=$(FUZZ_NET_SECONDS) build/asan/fuzz-net

$(BUILD)/fuzz-net: Tests/fuzz-net/fuzz-net.c $(BUILD)/libcwsp.a
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $< $(BUILD)/libcwsp.a -o $@

$(BUILD)/%: examples/%.c $(BUILD)/libcwsp.a
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $< $(BUILD)/libcwsp.a -o $@

demo: $(BUILD)/demo
	$(BUILD)/demo

$(BUILD)/bench: Benchmarks/c/bench.c $(BUILD)/libcwsp.a
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $< $(BUILD)/libcwsp.a -o $@

$(BUILD)/bench-events: Benchmarks/c/bench-events.c $(BUILD)/libcwsp.a
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $< $(BUILD)/libcwsp.a -o $@

bench: $(BUILD)/bench $(BUILD)/bench-events
	taskset -c 0 $(BUILD)/bench
	taskset -c 0 $(BUILD)/bench-events

# Concurrent load (Benchmarks/c/bench-load.c): client threads against a WSP connect-data
# server and a raw-socket server doing the same exchange, in one run; both CPUs, then pinned.
$(BUILD)/bench-load: Benchmarks/c/bench-load.c $(BUILD)/libcwsp.a
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $< $(BUILD)/libcwsp.a -o $@

# Memory and descriptors per socket, request and event object, against a raw epoll server.
$(BUILD)/bench-memory: Benchmarks/c/bench-memory.c $(BUILD)/libcwsp.a
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $< $(BUILD)/libcwsp.a -o $@

bench-memory: $(BUILD)/bench-memory
	$(BUILD)/bench-memory 9000

bench-load: $(BUILD)/bench-load
	$(BUILD)/bench-load 64 3 2
	$(BUILD)/bench-load 512 3 2
	taskset -c 0 $(BUILD)/bench-load 64 3 2
	taskset -c 0 $(BUILD)/bench-load 512 3 2

# Held requests (Benchmarks/c/bench-hold.c): what a hold costs in connections per second, and
# the fast clients' latency when one connection in ten needs a 100 ms decision (none, held,
# decided inside the condition function).
$(BUILD)/bench-hold: Benchmarks/c/bench-hold.c $(BUILD)/libcwsp.a
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $< $(BUILD)/libcwsp.a -o $@

bench-hold: $(BUILD)/bench-hold
	$(BUILD)/bench-hold 16 3
	taskset -c 0 $(BUILD)/bench-hold 16 3

# ---- installation ---------------------------------------------------------------------------
# The public headers are include/wsp.h and include/wsp/*.h (include/module.modulemap is for
# SwiftPM and stays behind). wsp.pc is made from wsp.pc.in with the version in
# include/wsp/version.h. uninstall removes the files install wrote and the include/wsp folder.

PREFIX ?= /usr/local
DESTDIR ?=
INCLUDEDIR ?= $(PREFIX)/include
LIBDIR ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
SUB_HEADERS := $(wildcard include/wsp/*.h)
WSP_VERSION := $(shell sed -n 's/.*WSP_VERSION_STRING "\(.*\)"/\1/p' include/wsp/version.h)

WSPCAT_DIR = $(BUILD)/wspcat
WSPCAT_FILES = $(WSPCAT_DIR)/wspcat $(WSPCAT_DIR)/wspcat.1 $(WSPCAT_DIR)/wspcat.bash \
	$(WSPCAT_DIR)/_wspcat $(WSPCAT_DIR)/wspcat.fish
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
CMAKEDIR ?= $(LIBDIR)/cmake/wsp
# wsp.pc and the CMake files name their folders relative to the prefix (or to themselves), so
# an installation can be staged or moved.
PC_INCLUDEDIR = $(patsubst $(PREFIX)%,$${prefix}%,$(INCLUDEDIR))
PC_LIBDIR = $(patsubst $(PREFIX)%,$${prefix}%,$(LIBDIR))
relative = $(shell realpath -m --relative-to=$(1) $(2))

install: all $(WSPCAT_FILES)
	install -d $(DESTDIR)$(INCLUDEDIR)/wsp $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 644 include/wsp.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(SUB_HEADERS) $(DESTDIR)$(INCLUDEDIR)/wsp/
	install -m 644 $(BUILD)/libcwsp.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libcwsp.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libcwsp.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcwsp.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' \
	    -e 's|@LIBDIR@|$(PC_LIBDIR)|' -e 's|@VERSION@|$(WSP_VERSION)|' \
	    wsp.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/wsp.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/wsp.pc
	for f in wspConfig wspConfigVersion; do \
	    sed -e 's|@CMAKE_TO_PREFIX@|$(call relative,$(CMAKEDIR),$(PREFIX))|' \
	        -e 's|@INCLUDE_REL@|$(call relative,$(PREFIX),$(INCLUDEDIR))|' \
	        -e 's|@LIB_REL@|$(call relative,$(PREFIX),$(LIBDIR))|' \
	        -e 's|@VERSION@|$(WSP_VERSION)|' -e 's|@SOVERSION@|$(SOVERSION)|' \
	        -e 's|@SONAME@|$(SONAME)|' cmake/$$f.cmake.in > $(DESTDIR)$(CMAKEDIR)/$$f.cmake \
	    && chmod 644 $(DESTDIR)$(CMAKEDIR)/$$f.cmake || exit 1; \
	done
	install -m 755 $(WSPCAT_DIR)/wspcat $(DESTDIR)$(BINDIR)/
	install -m 644 $(WSPCAT_DIR)/wspcat.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(WSPCAT_DIR)/wspcat.bash $(DESTDIR)$(BASHCOMPDIR)/wspcat
	install -m 644 $(WSPCAT_DIR)/_wspcat $(DESTDIR)$(ZSHCOMPDIR)/
	install -m 644 $(WSPCAT_DIR)/wspcat.fish $(DESTDIR)$(FISHCOMPDIR)/

# The folders install may have made, innermost first: uninstall removes those left empty.
INSTALL_DIRS = $(INCLUDEDIR)/wsp $(INCLUDEDIR) $(CMAKEDIR) $(LIBDIR)/cmake $(PKGCONFIGDIR) \
	$(LIBDIR) $(BINDIR) $(MANDIR)/man1 $(MANDIR) $(BASHCOMPDIR) $(dir $(BASHCOMPDIR)) \
	$(ZSHCOMPDIR) $(dir $(ZSHCOMPDIR)) $(FISHCOMPDIR) $(dir $(FISHCOMPDIR)) $(PREFIX)/share \
	$(PREFIX)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/wsp.h $(SUB_HEADERS:include/%=$(DESTDIR)$(INCLUDEDIR)/%)
	rm -f $(DESTDIR)$(LIBDIR)/libcwsp.a $(DESTDIR)$(LIBDIR)/libcwsp.so.$(SOVERSION) \
	    $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libcwsp.so $(DESTDIR)$(PKGCONFIGDIR)/wsp.pc
	rm -f $(DESTDIR)$(CMAKEDIR)/wspConfig.cmake $(DESTDIR)$(CMAKEDIR)/wspConfigVersion.cmake
	rm -f $(DESTDIR)$(BINDIR)/wspcat $(DESTDIR)$(MANDIR)/man1/wspcat.1 \
	    $(DESTDIR)$(BASHCOMPDIR)/wspcat $(DESTDIR)$(ZSHCOMPDIR)/_wspcat $(DESTDIR)$(FISHCOMPDIR)/wspcat.fish
	for d in $(INSTALL_DIRS); do rmdir $(DESTDIR)$$d 2>/dev/null || true; done

# ---- wspcat for installation ----------------------------------------------------------------
# The release build, with the Swift runtime linked in (--static-swift-stdlib: the installed
# binary needs no toolchain), its manual page (generated from the argument parser by
# swift-argument-parser's generate-manual) and its completion scripts.

SWIFT_SOURCES := Package.swift $(wildcard Sources/WSP/*.swift Sources/wspcat/*.swift)
MAN_DATE := $(shell git log -1 --format=%cs 2>/dev/null || date +%F)

wspcat: $(WSPCAT_FILES)

$(WSPCAT_DIR)/wspcat: $(SWIFT_SOURCES) $(LIB_SRCS) $(HEADERS)
	swift build -c release --product wspcat --static-swift-stdlib
	install -D -m 755 "$$(swift build -c release --show-bin-path)/wspcat" $@

# swift-argument-parser's generate-manual (what its GenerateManual plugin runs), run on the
# binary just built: the plugin would build wspcat a second time.
$(WSPCAT_DIR)/wspcat.1: $(WSPCAT_DIR)/wspcat
	swift build --product generate-manual
	"$$(swift build --show-bin-path)/generate-manual" $< --date $(MAN_DATE) -o $(WSPCAT_DIR)

$(WSPCAT_DIR)/wspcat.bash: $(WSPCAT_DIR)/wspcat
	$< --generate-completion-script bash > $@

$(WSPCAT_DIR)/_wspcat: $(WSPCAT_DIR)/wspcat
	$< --generate-completion-script zsh > $@

$(WSPCAT_DIR)/wspcat.fish: $(WSPCAT_DIR)/wspcat
	$< --generate-completion-script fish > $@

check-exports: $(BUILD)/libcwsp.so
	Tests/install/check-exports.sh $(BUILD)/libcwsp.so $(SONAME)

check-install: all
	MAKE="$(MAKE)" Tests/install/run.sh

# The layer map of docs/ARCHITECTURE.md against what each object file defines and uses (nm).
check-layers: $(LIB_OBJS)
	Tests/layers/check-layers --map docs/ARCHITECTURE.md $(LIB_OBJS)
	@# The check can fail: against the map upside down, it must.
	@! Tests/layers/check-layers --upside-down --map docs/ARCHITECTURE.md $(LIB_OBJS) >/dev/null

# ---- mutation testing -----------------------------------------------------------------------
# Tests/mutate/run installs universalmutator into build/mutate/venv, maps each line of
# Sources/CWSP to the tests that run it, and runs every mutant against those tests only.
# mutate-sample is CI's: 120 mutants drawn at random with a fixed seed (the draw changes only
# when the sources do; about half do not compile and cost a second each), at most 150 s of
# mutants after the coverage pass and the generation (about 90 s on an idle machine), failing
# when the score is below MUTATE_MIN_SCORE: a floor that catches a suite gone blind, not a
# target (docs/MUTATION.md has the measured score).
MUTATE_SAMPLE_SIZE ?= 120
mutate: $(BUILD)/header-check.stamp
	Tests/mutate/run

mutate-sample: $(BUILD)/header-check.stamp
	MUTATE_SAMPLE=$${MUTATE_SAMPLE:-$(MUTATE_SAMPLE_SIZE)} MUTATE_SEED=$${MUTATE_SEED:-1} \
	    MUTATE_BUDGET=$${MUTATE_BUDGET:-150} MUTATE_MIN_SCORE=$${MUTATE_MIN_SCORE:-50} \
	    MUTATE_ASAN=$${MUTATE_ASAN:-0} MUTATE_TSAN=$${MUTATE_TSAN:-0} \
	    Tests/mutate/run

bench-swift:
	cd Benchmarks && swift build -c release
	taskset -c 0 Benchmarks/.build/release/wsp-bench

# The Swift example (examples/swift): it fails when its story did not happen.
example-swift:
	swift build --product wsp-admission-example
	timeout 60 swift run --skip-build wsp-admission-example

# The DocC archive of the Swift module (swift-docc-plugin); a broken link or any other DocC
# warning fails it.
docs:
	swift package --allow-writing-to-directory $(BUILD) generate-documentation --target WSP \
	    --warnings-as-errors --output-path $(BUILD)/WSP.doccarchive

clean:
	rm -rf build

# ---- the Winsock 2 API (include/wsp/winsock2.h) ---------------------------------------------
# Its header compiles cleanly as C99, C11 and C++, with the default FD_SETSIZE and with a
# program's own; the C suite depends on it like the provider header's check.
WINSOCK_HEADER_CHECK = Tests/c/header-check-winsock.c
$(BUILD)/winsock-header-check.stamp: $(HEADERS) $(WINSOCK_HEADER_CHECK)
	@mkdir -p $(dir $@)
	for d in "" -DWSP_CHECK_FD_SETSIZE; do \
	    $(CC) -std=c99 -Wall -Wextra -Werror -pedantic $$d -Iinclude -fsyntax-only $(WINSOCK_HEADER_CHECK) && \
	    $(CC) -std=c11 -Wall -Wextra -Werror -pedantic $$d -Iinclude -fsyntax-only $(WINSOCK_HEADER_CHECK) && \
	    $(CXX) -x c++ -std=c++17 -Wall -Wextra -Werror -pedantic $$d -Iinclude -fsyntax-only $(WINSOCK_HEADER_CHECK) || exit 1; \
	done
	@touch $@

check-c: $(BUILD)/winsock-header-check.stamp

# The Winsock program tests share two headers of their own.
$(filter $(BUILD)/test-obj/winsock/%,$(TEST_OBJS)): $(wildcard Tests/c/winsock/*.h)
