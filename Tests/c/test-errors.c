/* The errno -> WSA table (errors.c) and the names and meanings of the WSA codes.
 *
 * Most entries of the errno table are reached only by failures a test cannot cause on
 * loopback (a network that goes down, a host unreachable); the table is the documented
 * mapping, so it is checked entry by entry here, and the failures a test can cause are
 * checked end to end where they happen (descriptor exhaustion in test-startup.c, time-outs in
 * test-transfer.c and test-cdata.c). */
#include <errno.h>

#include "internal.h"
#include "support.h"

struct mapping {
    int errno_value;
    int wsa;
};

TEST(errors_errno_maps_to_its_wsa_code) {
    static const struct mapping map[] = {
        {0, 0},
        {EINTR, WSAEINTR},
        {EBADF, WSAENOTSOCK},
        {EACCES, WSAEACCES},
        {EPERM, WSAEACCES},
        {EFAULT, WSAEFAULT},
        {EINVAL, WSAEINVAL},
        {EMFILE, WSAEMFILE},
        {ENFILE, WSAEMFILE},
        {EAGAIN, WSAEWOULDBLOCK},
        {EINPROGRESS, WSAEINPROGRESS},
        {EALREADY, WSAEALREADY},
        {ENOTSOCK, WSAENOTSOCK},
        {EDESTADDRREQ, WSAEDESTADDRREQ},
        {EMSGSIZE, WSAEMSGSIZE},
        {EPROTOTYPE, WSAEPROTOTYPE},
        {ENOPROTOOPT, WSAENOPROTOOPT},
        {EPROTONOSUPPORT, WSAEPROTONOSUPPORT},
        {ESOCKTNOSUPPORT, WSAESOCKTNOSUPPORT},
        {EOPNOTSUPP, WSAEOPNOTSUPP},
        {EPFNOSUPPORT, WSAEPFNOSUPPORT},
        {EAFNOSUPPORT, WSAEAFNOSUPPORT},
        {EADDRINUSE, WSAEADDRINUSE},
        {EADDRNOTAVAIL, WSAEADDRNOTAVAIL},
        {ENETDOWN, WSAENETDOWN},
        {ENETUNREACH, WSAENETUNREACH},
        {ENETRESET, WSAENETRESET},
        {ECONNABORTED, WSAECONNABORTED},
        {ECONNRESET, WSAECONNRESET},
        {EPIPE, WSAESHUTDOWN},
        {ENOBUFS, WSAENOBUFS},
        {ENOMEM, WSAENOBUFS},
        {EISCONN, WSAEISCONN},
        {ENOTCONN, WSAENOTCONN},
        {ESHUTDOWN, WSAESHUTDOWN},
        {ETIMEDOUT, WSAETIMEDOUT},
        {ECONNREFUSED, WSAECONNREFUSED},
        {EHOSTUNREACH, WSAEHOSTUNREACH},
        {EHOSTDOWN, WSAEHOSTUNREACH},
        {ENOENT, WSAEINVAL}, /* anything else */
        {EIO, WSAEINVAL},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        int got = wsp_wsa_from_errno(map[i].errno_value);
        if (got != map[i].wsa)
            fprintf(stderr, "errno %d: %s, not %s\n", map[i].errno_value, WSPErrorName(got),
                    WSPErrorName(map[i].wsa));
        CHECK_EQ(got, map[i].wsa);
    }
    /* Running out of a resource: descriptors are WSAEMFILE, anything else is memory. */
    CHECK_EQ(wsp_wsa_resource_error(EMFILE), WSAEMFILE);
    CHECK_EQ(wsp_wsa_resource_error(ENFILE), WSAEMFILE);
    CHECK_EQ(wsp_wsa_resource_error(ENOMEM), WSA_NOT_ENOUGH_MEMORY);
    CHECK_EQ(wsp_wsa_resource_error(ENOBUFS), WSA_NOT_ENOUGH_MEMORY);
}

struct named {
    int code;
    const char *name;
};

#define NAMED(code) {code, #code}

TEST(errors_every_code_has_its_own_name_and_a_meaning) {
    static const struct named codes[] = {
        {0, "NO_ERROR"},
        NAMED(WSA_INVALID_HANDLE),
        NAMED(WSA_NOT_ENOUGH_MEMORY),
        NAMED(WSA_INVALID_PARAMETER),
        NAMED(WSA_OPERATION_ABORTED),
        NAMED(WSA_IO_INCOMPLETE),
        NAMED(WSA_IO_PENDING),
        NAMED(WSAEINTR),
        NAMED(WSAEBADF),
        NAMED(WSAEACCES),
        NAMED(WSAEFAULT),
        NAMED(WSAEINVAL),
        NAMED(WSAEMFILE),
        NAMED(WSAEWOULDBLOCK),
        NAMED(WSAEINPROGRESS),
        NAMED(WSAEALREADY),
        NAMED(WSAENOTSOCK),
        NAMED(WSAEDESTADDRREQ),
        NAMED(WSAEMSGSIZE),
        NAMED(WSAEPROTOTYPE),
        NAMED(WSAENOPROTOOPT),
        NAMED(WSAEPROTONOSUPPORT),
        NAMED(WSAESOCKTNOSUPPORT),
        NAMED(WSAEOPNOTSUPP),
        NAMED(WSAEPFNOSUPPORT),
        NAMED(WSAEAFNOSUPPORT),
        NAMED(WSAEADDRINUSE),
        NAMED(WSAEADDRNOTAVAIL),
        NAMED(WSAENETDOWN),
        NAMED(WSAENETUNREACH),
        NAMED(WSAENETRESET),
        NAMED(WSAECONNABORTED),
        NAMED(WSAECONNRESET),
        NAMED(WSAENOBUFS),
        NAMED(WSAEISCONN),
        NAMED(WSAENOTCONN),
        NAMED(WSAESHUTDOWN),
        NAMED(WSAETIMEDOUT),
        NAMED(WSAECONNREFUSED),
        NAMED(WSAEHOSTUNREACH),
        NAMED(WSAEPROCLIM),
        NAMED(WSASYSNOTREADY),
        NAMED(WSAVERNOTSUPPORTED),
        NAMED(WSANOTINITIALISED),
        NAMED(WSAEDISCON),
        NAMED(WSATRY_AGAIN),
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *name = WSPErrorName(codes[i].code), *meaning = WSPErrorString(codes[i].code);
        if (strcmp(name, codes[i].name) != 0)
            fprintf(stderr, "%d is named %s, not %s\n", codes[i].code, name, codes[i].name);
        CHECK_EQ(strcmp(name, codes[i].name), 0);
        /* A meaning of its own: words, not the name, not the text for unknown codes. */
        CHECK(meaning != NULL && strlen(meaning) > 5);
        CHECK(strcmp(meaning, name) != 0);
        CHECK(strcmp(meaning, "unknown error") != 0);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(meaning, WSPErrorString(codes[j].code)) != 0);
    }
    CHECK_EQ(strcmp(WSPErrorName(-1), "WSA_UNKNOWN"), 0);
    CHECK_EQ(strcmp(WSPErrorString(-1), "unknown error"), 0);
}
