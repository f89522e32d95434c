# WSP: build the C provider, run the integration tests, the demo and the benchmarks.
#
#   make              build/libcwsp.a and build/libcwsp.so
#   make check        every C integration test, then swift test
#   make check-asan   the C tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make check-tsan   the C tests under ThreadSanitizer
#   make check-swift-tsan  the Swift tests under ThreadSanitizer
#   make fuzz         the handshake decoder under libFuzzer (FUZZ_SECONDS, default 30)
#   make demo         a server and clients showing accept, reject and defer
#   make bench        connections per second and event-driven ping-pong round trips per
#                     second, each against raw sockets, pinned to one CPU
#   make bench-swift  the Swift benchmarks (Benchmarks/, a separate package with SwiftNIO):
#                     the C provider, the Swift sync and async APIs and SwiftNIO, pinned
#   make install      headers, libcwsp.a, libcwsp.so (soname libcwsp.so.0) and wsp.pc under
#                     $(DESTDIR)$(PREFIX), PREFIX defaulting to /usr/local; `make uninstall`
#                     removes them. Then: cc prog.c $(pkg-config --cflags --libs wsp)
#                     (libraries after the sources: the toolchain links --as-needed)
#   make check-exports  the shared library exports only the WSP_EXPORT names of include/,
#                     and its soname is libcwsp.so.0
#   make check-install  install into a temporary prefix, build and run examples/demo.c
#                     against it through pkg-config (static and shared), uninstall
#   make mutate       mutation testing of Sources/CWSP against the C suite (Tests/mutate/run;
#                     MUTATE_FILES, MUTATE_SAMPLE, MUTATE_SEED, MUTATE_BUDGET, MUTATE_JOBS);
#                     `make mutate-sample` is the bounded run CI does (docs/MUTATION.md)

CC ?= cc
BUILD ?= build
OPT ?= -O2 -g
SAN ?=
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CPPFLAGS_ALL = -D_GNU_SOURCE -Iinclude -ISources/CWSP
CFLAGS_ALL = -std=c11 $(WARN) $(OPT) $(SAN) -pthread
SONAME = libcwsp.so.0
SOVERSION = 0.1.0

LIB_SRCS := $(wildcard Sources/CWSP/*.c)
LIB_OBJS := $(LIB_SRCS:Sources/CWSP/%.c=$(BUILD)/obj/%.o)
HEADERS := $(wildcard include/*.h include/wsp/*.h Sources/CWSP/*.h)
TEST_SRCS := $(filter-out Tests/c/header-check.c,$(wildcard Tests/c/*.c))
TEST_OBJS := $(TEST_SRCS:Tests/c/%.c=$(BUILD)/test-obj/%.o)

.PHONY: all check check-c check-swift check-swift-tsan check-asan check-tsan fuzz demo bench bench-swift clean \
	install uninstall check-exports check-install mutate mutate-sample

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

$(BUILD)/test-obj/%.o: Tests/c/%.c $(HEADERS) Tests/c/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -ITests/c $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/wsp-tests: $(TEST_OBJS) $(BUILD)/libcwsp.a
	$(CC) $(SAN) -pthread -o $@ $(TEST_OBJS) $(BUILD)/libcwsp.a

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

check-swift:
	swift build --build-tests -Xswiftc -warnings-as-errors
	swift test --skip-build

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

FUZZ_SECONDS ?= 30
FUZZ_CC = /opt/swift/usr/bin/clang
fuzz:
	@mkdir -p $(BUILD)/fuzz-corpus
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -ISources/CWSP Tests/fuzz/fuzz-handshake.c Sources/CWSP/handshake.c -o $(BUILD)/fuzz-handshake
	$(BUILD)/fuzz-handshake -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz-corpus Tests/fuzz/corpus/handshake

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

install: all
	install -d $(DESTDIR)$(INCLUDEDIR)/wsp $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/wsp.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(SUB_HEADERS) $(DESTDIR)$(INCLUDEDIR)/wsp/
	install -m 644 $(BUILD)/libcwsp.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libcwsp.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libcwsp.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcwsp.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@VERSION@|$(WSP_VERSION)|' wsp.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/wsp.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/wsp.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/wsp.h $(SUB_HEADERS:include/%=$(DESTDIR)$(INCLUDEDIR)/%)
	rm -f $(DESTDIR)$(LIBDIR)/libcwsp.a $(DESTDIR)$(LIBDIR)/libcwsp.so.$(SOVERSION) \
	    $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libcwsp.so $(DESTDIR)$(PKGCONFIGDIR)/wsp.pc
	rmdir $(DESTDIR)$(INCLUDEDIR)/wsp 2>/dev/null || true

check-exports: $(BUILD)/libcwsp.so
	Tests/install/check-exports.sh $(BUILD)/libcwsp.so $(SONAME)

check-install: all
	MAKE="$(MAKE)" Tests/install/run.sh

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
	    Tests/mutate/run

bench-swift:
	cd Benchmarks && swift build -c release
	taskset -c 0 Benchmarks/.build/release/wsp-bench

clean:
	rm -rf build
