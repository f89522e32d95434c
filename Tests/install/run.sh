#!/usr/bin/env bash
# `make check-install`: WSP as a user installs it. Installs into a temporary prefix, checks
# the installed files, builds examples/demo.c against the installed headers and library
# through pkg-config and through CMake's find_package (statically and against the shared
# library), runs them, builds and runs examples/winsock-echo.c (a Winsock program) through
# pkg-config, runs the installed wspcat, uninstalls and checks that no file and no folder is
# left. Then the same install and uninstall staged under DESTDIR.
# Needs pkg-config and cmake (Debian/Ubuntu packages: pkg-config, cmake). Ends with one PASS
# or FAIL line.
set -uo pipefail
cd "$(dirname "$0")/../.."
MAKE=${MAKE:-make}
CC=${CC:-cc}
SOVERSION=$(sed -n 's/.*WSP_VERSION_STRING "\(.*\)"/\1/p' include/wsp/version.h)
SONAME=libcwsp.so.0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "check-install: FAIL: $*"
    exit 1
}
step() { echo "-- $*"; }
# Runs a command quietly; on failure shows its output and fails with the given reason.
quiet() { # reason, command...
    local why=$1
    shift
    "$@" >"$tmp/out.log" 2>&1 || {
        cat "$tmp/out.log"
        fail "$why"
    }
}

command -v pkg-config >/dev/null || fail "pkg-config is not installed (apt-get install pkg-config)"
command -v cmake >/dev/null || fail "cmake is not installed (apt-get install cmake)"
version=$(sed -n 's/.*WSP_VERSION_STRING "\(.*\)"/\1/p' include/wsp/version.h)

# The files an install must write, relative to the prefix, sorted.
expected_files() {
    {
        echo include/wsp.h
        for h in include/wsp/*.h; do echo "$h"; done
        printf '%s\n' lib/libcwsp.a lib/libcwsp.so.$SOVERSION lib/$SONAME lib/libcwsp.so \
            lib/pkgconfig/wsp.pc lib/cmake/wsp/wspConfig.cmake lib/cmake/wsp/wspConfigVersion.cmake \
            bin/wspcat share/man/man1/wspcat.1 share/bash-completion/completions/wspcat \
            share/zsh/site-functions/_wspcat share/fish/vendor_completions.d/wspcat.fish
    } | sort
}
files_under() { (cd "$1" && find . ! -type d | sed 's|^\./||' | sort); }

check_tree() { # root
    local root=$1
    diff <(expected_files) <(files_under "$root") >"$tmp/diff" ||
        { cat "$tmp/diff"; fail "installed files differ from the expected list (< expected, > found)"; }
    [ "$(readlink "$root/lib/libcwsp.so")" = "$SONAME" ] || fail "lib/libcwsp.so does not point to $SONAME"
    [ "$(readlink "$root/lib/$SONAME")" = "libcwsp.so.$SOVERSION" ] ||
        fail "lib/$SONAME does not point to libcwsp.so.$SOVERSION"
    readelf -d "$root/lib/libcwsp.so.$SOVERSION" | grep "(SONAME).*\[$SONAME\]" >/dev/null ||
        fail "installed library's soname is not $SONAME"
}

check_empty() { # prefix: gone, or empty
    [ -e "$1" ] || return 0
    local left
    left=$(cd "$1" && find . -mindepth 1 | sort)
    [ -z "$left" ] || { echo "$left"; fail "make uninstall left files or folders under $1"; }
}

check_demo_output() { # log, what
    for word in ACCEPT REJECT DEFER; do
        grep -q "$word" "$1" || { cat "$1"; fail "the $2 demo's output lacks \"$word\""; }
    done
    # The client that gave up: expired at the server or withdrawn, once.
    grep -Eq "withdrawn 1, expired 0|withdrawn 0, expired 1" "$1" ||
        { cat "$1"; fail "the $2 demo's output does not count one client that gave up"; }
}

# ---- 1. PREFIX: install, build against it, run, uninstall ---------------------------------

prefix=$tmp/prefix
step "make install PREFIX=$prefix"
quiet "make install" $MAKE --no-print-directory install PREFIX="$prefix"
check_tree "$prefix"

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion wsp)" = "$version" ] || fail "pkg-config --modversion wsp is not $version"
[ "$(pkg-config --variable=includedir wsp)" = "$prefix/include" ] || fail "wsp.pc's includedir is wrong"
grep -qx 'includedir=${prefix}/include' "$prefix/lib/pkgconfig/wsp.pc" &&
    grep -qx 'libdir=${prefix}/lib' "$prefix/lib/pkgconfig/wsp.pc" ||
    fail "wsp.pc does not name its folders relative to \${prefix}"
step "pkg-config --cflags --libs wsp: $(pkg-config --cflags --libs wsp)"

step "cc demo.c against the shared library"
quiet "building the demo against the shared library" \
    $CC -o "$tmp/demo-shared" examples/demo.c $(pkg-config --cflags --libs wsp)
readelf -d "$tmp/demo-shared" | grep "(NEEDED).*\[$SONAME\]" >/dev/null ||
    fail "the shared demo does not need $SONAME"
step "cc -static demo.c \$(pkg-config --static ...)"
quiet "building the demo statically" \
    $CC -static -o "$tmp/demo-static" examples/demo.c $(pkg-config --static --cflags --libs wsp)
readelf -d "$tmp/demo-static" 2>/dev/null | grep "NEEDED.*libcwsp" >/dev/null &&
    fail "the static demo still needs libcwsp.so"

step "run the shared demo (LD_LIBRARY_PATH=$prefix/lib)"
LD_LIBRARY_PATH=$prefix/lib ldd "$tmp/demo-shared" | grep "libcwsp.so.0 => $prefix/lib/" >/dev/null ||
    fail "the shared demo does not load libcwsp from $prefix/lib"
LD_LIBRARY_PATH=$prefix/lib timeout 60 "$tmp/demo-shared" >"$tmp/shared.log" 2>&1 ||
    { cat "$tmp/shared.log"; fail "the shared demo failed"; }
check_demo_output "$tmp/shared.log" shared
step "run the static demo"
timeout 60 "$tmp/demo-static" >"$tmp/static.log" 2>&1 ||
    { cat "$tmp/static.log"; fail "the static demo failed"; }
check_demo_output "$tmp/static.log" static

step "cc winsock-echo.c (a Winsock program: #include <wsp/winsock2.h>) through pkg-config, run it"
quiet "building the Winsock example against the shared library" \
    $CC -o "$tmp/winsock-shared" examples/winsock-echo.c $(pkg-config --cflags --libs wsp)
quiet "building the Winsock example statically" \
    $CC -static -o "$tmp/winsock-static" examples/winsock-echo.c $(pkg-config --static --cflags --libs wsp)
for w in shared static; do
    LD_LIBRARY_PATH=$prefix/lib timeout 60 "$tmp/winsock-$w" >"$tmp/winsock-$w.log" 2>&1 &&
        grep -q "echoed: hello, Winsock on Linux" "$tmp/winsock-$w.log" ||
        { cat "$tmp/winsock-$w.log"; fail "the $w Winsock example failed"; }
done

step "cmake: find_package(wsp) builds the demo, shared and static"
quiet "configuring the CMake consumer" \
    cmake -S Tests/install/cmake -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DWSP_DEMO="$PWD/examples/demo.c"
quiet "building the CMake consumer" cmake --build "$tmp/cmake"
LD_LIBRARY_PATH=$prefix/lib timeout 60 "$tmp/cmake/demo-shared" >"$tmp/cmake-shared.log" 2>&1 ||
    { cat "$tmp/cmake-shared.log"; fail "the CMake shared demo failed"; }
check_demo_output "$tmp/cmake-shared.log" "CMake shared"
timeout 60 "$tmp/cmake/demo-static" >"$tmp/cmake-static.log" 2>&1 ||
    { cat "$tmp/cmake-static.log"; fail "the CMake static demo failed"; }
check_demo_output "$tmp/cmake-static.log" "CMake static"
cat >"$tmp/too-new.cmake" <<EOF2
find_package(wsp 1.0 QUIET PATHS "$prefix" NO_DEFAULT_PATH)
if(wsp_FOUND)
  message(FATAL_ERROR "wsp 1.0 found")
endif()
EOF2
quiet "the CMake package accepts a request for version 1.0" cmake -P "$tmp/too-new.cmake"

step "the installed wspcat: version, manual page, completions"
[ "$("$prefix/bin/wspcat" --version)" = "wspcat $version" ] || fail "the installed wspcat --version is not $version"
readelf -d "$prefix/bin/wspcat" | grep "NEEDED.*libswiftCore" >/dev/null &&
    fail "the installed wspcat needs the Swift runtime's shared libraries"
grep -q "^.Nm wspcat" "$prefix/share/man/man1/wspcat.1" || fail "wspcat.1 is not a manual page of wspcat"
grep -q "connect" "$prefix/share/bash-completion/completions/wspcat" || fail "the bash completion lacks the subcommands"

step "make uninstall PREFIX=$prefix"
quiet "make uninstall" $MAKE --no-print-directory uninstall PREFIX="$prefix"
check_empty "$prefix"

# ---- 2. DESTDIR: a staged install keeps the final prefix in wsp.pc ------------------------

stage=$tmp/stage
step "make install DESTDIR=$stage PREFIX=/opt/wsp"
quiet "make install with DESTDIR" $MAKE --no-print-directory install DESTDIR="$stage" PREFIX=/opt/wsp
check_tree "$stage/opt/wsp"
grep -qx "prefix=/opt/wsp" "$stage/opt/wsp/lib/pkgconfig/wsp.pc" || fail "a staged wsp.pc does not name the final prefix"
PKG_CONFIG_PATH=$stage/opt/wsp/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage \
    quiet "building the demo against the staged install" \
    bash -c "$CC -o '$tmp/demo-staged' examples/demo.c \$(pkg-config --cflags --libs wsp)"
step "make uninstall DESTDIR=$stage PREFIX=/opt/wsp"
quiet "make uninstall with DESTDIR" $MAKE --no-print-directory uninstall DESTDIR="$stage" PREFIX=/opt/wsp
check_empty "$stage/opt/wsp"

echo "check-install: PASS (installed, built static and shared through pkg-config and CMake, ran, ran wspcat, uninstalled, no folder left)"
