#!/usr/bin/env bash
# The shared library exports exactly the public API: every dynamic symbol it defines is a
# name that include/ declares with WSP_EXPORT (the provider's and the Winsock API's), every
# such name is exported, every name wsp/winsock2.h maps a POSIX name to is exported, and the
# soname is the versioned one.
#   Tests/install/check-exports.sh build/libcwsp.so libcwsp.so.0
set -euo pipefail
lib=$1
want_soname=$2
cd "$(dirname "$0")/../.."

# The declared name is the last identifier before the first "(" on a "WSP_EXPORT ..." line.
declared=$(grep -rh '^[[:space:]]*WSP_EXPORT[[:space:]]' include |
    sed -nE 's/^[[:space:]]*WSP_EXPORT[^(]*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\(.*/\1/p' |
    sort -u)
exported=$(nm -D --defined-only "$lib" | awk 'NF >= 3 {print $3}' | sort -u)
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')

status=0
report() { # title, names
    if [ -n "$2" ]; then
        echo "$1:"
        echo "$2" | sed 's/^/  /'
        status=1
    fi
}
report "exported by $lib but not declared with WSP_EXPORT in include/" \
    "$(comm -23 <(echo "$exported") <(echo "$declared"))"
report "declared with WSP_EXPORT in include/ but not exported by $lib" \
    "$(comm -13 <(echo "$exported") <(echo "$declared"))"
# wsp/winsock2.h maps POSIX names to its own (#define socket ws2_socket): each target must be
# an exported function (or a type the header defines), or a Winsock program would compile
# and then fail to link.
mapping='^#define[[:space:]]+[A-Za-z_]+[[:space:]]+(ws2_[A-Za-z0-9_]+)[[:space:]]*$'
renamed=$(sed -nE "s/$mapping/\\1/p" include/wsp/winsock2.h | sort -u)
types=$(sed -nE 's/^typedef struct (ws2_[A-Za-z0-9_]+).*/\1/p' include/wsp/winsock2.h | sort -u)
renamed=$(comm -23 <(echo "$renamed") <(echo "$types"))
report "mapped to by a #define in include/wsp/winsock2.h but not exported by $lib" \
    "$(comm -13 <(echo "$exported") <(echo "$renamed"))"
if [ -z "$renamed" ]; then
    echo "found no POSIX-name mappings in include/wsp/winsock2.h"
    status=1
fi
if [ -z "$declared" ]; then
    echo "found no WSP_EXPORT declarations in include/"
    status=1
fi
if [ "$soname" != "$want_soname" ]; then
    echo "soname of $lib is '${soname}', expected $want_soname"
    status=1
fi

if [ $status -eq 0 ]; then
    echo "check-exports: PASS ($(echo "$exported" | wc -l) exported symbols, all declared in include/; soname $soname)"
else
    echo "check-exports: FAIL"
fi
exit $status
