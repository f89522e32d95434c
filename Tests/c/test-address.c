/* lpWSPAddressToString and lpWSPStringToAddress. */
#include <net/if.h>
#include <string.h>

#include "support.h"

static void round_trip(const char *text, int af) {
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    CHECK_EQ(T.lpWSPStringToAddress(text, af, NULL, (struct sockaddr *)&ss, &len, &err), 0);
    CHECK_EQ(len, af == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                 : (int)sizeof(struct sockaddr_in));
    CHECK_EQ(ss.ss_family, af);
    char out[80];
    DWORD olen = sizeof out;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&ss, (DWORD)len, NULL, out, &olen, &err),
             0);
    if (strcmp(out, text) != 0) {
        fprintf(stderr, "round trip of \"%s\" gave \"%s\"\n", text, out);
        CHECK(0);
    }
    CHECK_EQ(olen, strlen(text) + 1);
}

TEST(address_strings_round_trip) {
    start();
    round_trip("127.0.0.1:80", AF_INET);
    round_trip("1.2.3.4", AF_INET);
    round_trip("255.255.255.255:65535", AF_INET);
    round_trip("[::1]:8080", AF_INET6);
    round_trip("::1", AF_INET6);
    round_trip("[fe80::1%3]:22", AF_INET6);
    round_trip("fe80::1%3", AF_INET6); /* a scope without a port: no brackets */
    /* A scope number is decimal, leading zeros and all (not octal). */
    struct sockaddr_storage zs;
    int zlen = sizeof zs, zerr = 0;
    CHECK_EQ(T.lpWSPStringToAddress("fe80::1%010", AF_INET6, NULL, (struct sockaddr *)&zs, &zlen,
                                    &zerr),
             0);
    CHECK_EQ(((struct sockaddr_in6 *)&zs)->sin6_scope_id, 10);
    /* Without brackets, starting with a letter (one above '[' in ASCII, as all lower-case
     * hex digits are): no port to look for. */
    round_trip("fe80::1", AF_INET6);
    round_trip("abcd:ef01::2", AF_INET6);
    /* Parsed fields. */
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    CHECK_EQ(T.lpWSPStringToAddress("127.0.0.1:80", AF_INET, NULL, (struct sockaddr *)&ss, &len,
                                    &err),
             0);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    CHECK_EQ(ntohs(in->sin_port), 80);
    CHECK_EQ(ntohl(in->sin_addr.s_addr), 0x7f000001);
    len = sizeof ss;
    CHECK_EQ(T.lpWSPStringToAddress("[::1]:8080", AF_INET6, NULL, (struct sockaddr *)&ss, &len,
                                    &err),
             0);
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    CHECK_EQ(ntohs(in6->sin6_port), 8080);
    CHECK_MEM(&in6->sin6_addr, &in6addr_loopback, 16);
    /* "[::1]" without a port is fine too. */
    len = sizeof ss;
    CHECK_EQ(T.lpWSPStringToAddress("[::1]", AF_INET6, NULL, (struct sockaddr *)&ss, &len, &err),
             0);
    CHECK_EQ(in6->sin6_port, 0);
    /* The protocol info's family wins over the argument. */
    WSAPROTOCOL_INFO info;
    memset(&info, 0, sizeof info);
    info.iAddressFamily = AF_INET6;
    len = sizeof ss;
    CHECK_EQ(T.lpWSPStringToAddress("::1", AF_INET, &info, (struct sockaddr *)&ss, &len, &err), 0);
    CHECK_EQ(ss.ss_family, AF_INET6);
}

static void bad(const char *text, int af) {
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    if (T.lpWSPStringToAddress(text, af, NULL, (struct sockaddr *)&ss, &len, &err) !=
        SOCKET_ERROR) {
        fprintf(stderr, "\"%s\" parsed\n", text);
        CHECK(0);
    }
    CHECK_EQ(err, WSAEINVAL);
}

TEST(address_bad_strings_are_einval) {
    start();
    bad("1.2.3.4:99999", AF_INET);
    bad("1.2.3.4:", AF_INET);
    bad("1.2.3.4:8x", AF_INET);
    bad("1.2.3.4:1/", AF_INET); /* '/' is just below the digits, as ':' is just above */
    bad("1.2.3.4:1:", AF_INET);
    bad("1.2.3.4:-1", AF_INET);
    bad("1.2.3", AF_INET);
    bad("x", AF_INET);
    bad("", AF_INET);
    bad("[::1", AF_INET6);
    bad("[::1]x", AF_INET6);
    bad("[::1];80", AF_INET6); /* only a colon brings a port (';' is just above ':') */
    bad("[::1]:99999", AF_INET6);
    bad("x", AF_INET6);
    bad("::1", AF_INET);
    bad("1.2.3.4", AF_INET6);
    bad("1.2.3.4", AF_UNIX);
    bad("::1", AF_UNIX); /* a family of neither kind, whatever the string */
    bad("::1", AF_UNSPEC);
    bad("::1", AF_INET + 1);
    bad("::1", AF_PACKET);
    char longer[300];
    memset(longer, '1', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    bad(longer, AF_INET);
}

TEST(address_small_buffers_are_efault_with_the_size_needed) {
    start();
    struct sockaddr_in in;
    int len = sizeof in - 1, err = 0;
    CHECK_EQ(T.lpWSPStringToAddress("1.2.3.4:5", AF_INET, NULL, (struct sockaddr *)&in, &len,
                                    &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(len, sizeof in);
    struct sockaddr_in6 in6;
    len = sizeof in;
    err = 0;
    CHECK_EQ(T.lpWSPStringToAddress("::1", AF_INET6, NULL, (struct sockaddr *)&in6, &len, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(len, sizeof in6);
    /* AddressToString: "1.2.3.4:5" needs 10 bytes with its terminator. */
    len = sizeof in;
    CHECK_EQ(T.lpWSPStringToAddress("1.2.3.4:5", AF_INET, NULL, (struct sockaddr *)&in, &len,
                                    &err),
             0);
    char out[16];
    DWORD olen = 9;
    err = 0;
    memset(out, 'Q', sizeof out);
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&in, sizeof in, NULL, out, &olen, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(olen, 10);
    CHECK_EQ(out[0], 'Q'); /* nothing written */
    olen = 0;
    err = 0;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&in, sizeof in, NULL, NULL, &olen, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(olen, 10);
    olen = 10;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&in, sizeof in, NULL, out, &olen, &err), 0);
    CHECK_EQ(strcmp(out, "1.2.3.4:5"), 0);
    /* A short address, and an unknown family. */
    olen = sizeof out;
    err = 0;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&in, sizeof in - 4, NULL, out, &olen, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    /* Families other than the two, numbered below, between and above theirs. */
    static const sa_family_t others[] = {AF_UNSPEC, AF_UNIX, AF_INET + 1, AF_PACKET};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        struct sockaddr_storage un;
        memset(&un, 0, sizeof un);
        un.ss_family = others[i];
        olen = sizeof out;
        err = 0;
        CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&un, sizeof un, NULL, out, &olen, &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAEINVAL);
        /* A length that holds the family and no more: the family is read, and is none. */
        err = 0;
        CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&un, sizeof(sa_family_t), NULL, out,
                                        &olen, &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAEINVAL);
        /* One too short for the family: no family to read, the length is the fault. */
        err = 0;
        CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&un, sizeof(sa_family_t) - 1, NULL,
                                        out, &olen, &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAEFAULT);
    }
}

/* The longest forms: an IPv6 address written out in full with an IPv4 tail, the largest
 * scope and the largest port (64 characters) is an address; one character more (a leading
 * zero in the scope) is not. The longest form an address prints as fits too. */
TEST(address_longest_forms) {
    start();
    const char *longest = "[0000:0000:0000:0000:0000:ffff:255.255.255.255%4294967295]:65535";
    CHECK_EQ(strlen(longest), 64);
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    CHECK_EQ(T.lpWSPStringToAddress(longest, AF_INET6, NULL, (struct sockaddr *)&ss, &len, &err),
             0);
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    CHECK_EQ(ntohs(in6->sin6_port), 65535);
    CHECK_EQ(in6->sin6_scope_id, 4294967295u);
    const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 255, 255, 255, 255};
    CHECK_MEM(&in6->sin6_addr, mapped, 16);
    char out[80];
    DWORD olen = sizeof out;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&ss, (DWORD)len, NULL, out, &olen, &err),
             0);
    CHECK_EQ(strcmp(out, "[::ffff:255.255.255.255%4294967295]:65535"), 0);
    bad("[0000:0000:0000:0000:0000:ffff:255.255.255.255%04294967295]:65535", AF_INET6);
    /* The longest an address prints as: eight full groups, scope and port. */
    round_trip("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535", AF_INET6);
}

/* Null pointers and the port's upper bound. */
TEST(address_null_pointers_are_efault_and_ports_stop_at_65535) {
    start();
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(80),
                             .sin_addr.s_addr = htonl(0x01020304)};
    char out[32];
    int err = 0;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&in, sizeof in, NULL, out, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    int len = sizeof in;
    err = 0;
    CHECK_EQ(T.lpWSPStringToAddress("1.2.3.4:80", AF_INET, NULL, NULL, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    err = 0;
    CHECK_EQ(T.lpWSPStringToAddress("1.2.3.4:80", AF_INET, NULL, (struct sockaddr *)&in, NULL,
                                    &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    err = 0;
    CHECK_EQ(T.lpWSPStringToAddress(NULL, AF_INET, NULL, (struct sockaddr *)&in, &len, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    bad("1.2.3.4:65536", AF_INET);
    bad("[::1]:65536", AF_INET6);
    /* 2^32 + 80: a number that would wrap around to port 80 in 32 bits is too long a port. */
    bad("1.2.3.4:4294967376", AF_INET);
    bad("[::1]:4294967376", AF_INET6);
    round_trip("[::1]:65535", AF_INET6);
}

/* An address in a buffer longer than its family's (a sockaddr_storage, as callers commonly
 * pass) is read as its family's length: only a shorter one is WSAEFAULT. */
TEST(address_in_a_larger_buffer_is_read_as_its_family) {
    start();
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(80);
    in->sin_addr.s_addr = htonl(0x7f000001);
    char out[80];
    DWORD olen = sizeof out;
    int err = 0;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&ss, sizeof ss, NULL, out, &olen, &err), 0);
    CHECK_EQ(strcmp(out, "127.0.0.1:80"), 0);
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(22);
    in6->sin6_addr = in6addr_loopback;
    olen = sizeof out;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&ss, sizeof ss, NULL, out, &olen, &err), 0);
    CHECK_EQ(strcmp(out, "[::1]:22"), 0);
}

/* A scope that is neither a number nor an interface's name makes no address. */
TEST(address_with_an_unknown_interface_scope_is_einval) {
    start();
    bad("fe80::1%no-such-interface", AF_INET6);
    bad("[fe80::1%no-such-interface]:22", AF_INET6);
    bad("[fe80::1%]:22", AF_INET6);
    bad("fe80::1%0x1", AF_INET6); /* a scope number is decimal: no hexadecimal */
}

/* A scope naming an interface gives that interface's index (the loopback's name is "lo" on
 * Linux); the address itself is parsed as without one. */
TEST(address_with_an_interface_name_scope_takes_its_index) {
    start();
    unsigned lo = if_nametoindex("lo");
    CHECK(lo != 0);
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    CHECK_EQ(T.lpWSPStringToAddress("[fe80::1%lo]:22", AF_INET6, NULL, (struct sockaddr *)&ss,
                                    &len, &err),
             0);
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    CHECK_EQ(in6->sin6_scope_id, lo);
    CHECK_EQ(ntohs(in6->sin6_port), 22);
    struct in6_addr want;
    CHECK_EQ(inet_pton(AF_INET6, "fe80::1", &want), 1);
    CHECK_MEM(&in6->sin6_addr, &want, 16);
}

/* No buffer is WSAEFAULT whatever length comes with it (the length needed is reported). */
TEST(address_to_string_without_a_buffer_but_a_large_length_is_efault) {
    start();
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    CHECK_EQ(T.lpWSPStringToAddress("1.2.3.4:5", AF_INET, NULL, (struct sockaddr *)&ss, &len,
                                    &err),
             0);
    DWORD olen = 1000;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&ss, (DWORD)len, NULL, NULL, &olen, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(olen, 10);
}
