/* The rules the Winsock layer itself adds, checked one by one: start-up and its reference
 * count, WSANOTINITIALISED, the per-thread last error, fd_set and its macros, the choice of
 * a catalog entry, handles no provider made, the catalog and address strings, and what is
 * not offered. */
#include <wsp/winsock2.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "programs.h"
#include "faults.h"
#include "winsock_internal.h"

static void startup(void) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
}

/* A connected pair on 127.0.0.1 (the listener is closed again). */
static void connected_pair(SOCKET *client, SOCKET *server) {
    SOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SOCKET l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l != INVALID_SOCKET);
    CHECK_EQ(bind(l, (SOCKADDR *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 1), 0);
    int len = sizeof a;
    CHECK_EQ(getsockname(l, (SOCKADDR *)&a, &len), 0);
    *client = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(*client != INVALID_SOCKET);
    CHECK_EQ(connect(*client, (SOCKADDR *)&a, sizeof a), 0);
    *server = accept(l, NULL, NULL);
    CHECK(*server != INVALID_SOCKET);
    CHECK_EQ(closesocket(l), 0);
}

TEST(winsock_calls_before_startup_fail_with_wsanotinitialised) {
    fd_set set;
    DWORD len = 0;
    SOCKADDR_IN a;
    int alen = sizeof a;
    CHECK(socket(AF_INET, SOCK_STREAM, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    WSASetLastError(0);
    CHECK_EQ(closesocket((SOCKET)1), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    FD_ZERO(&set);
    FD_SET((SOCKET)1, &set);
    WSASetLastError(0);
    CHECK_EQ(select(0, &set, NULL, NULL, NULL), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    WSASetLastError(0);
    CHECK_EQ(WSAEnumProtocols(NULL, NULL, &len), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    WSASetLastError(0);
    CHECK_EQ(WSAStringToAddress("127.0.0.1", AF_INET, NULL, (SOCKADDR *)&a, &alen), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    WSASetLastError(0);
    CHECK_EQ(WSACleanup(), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
}

TEST(winsock_startup_negotiates_the_version) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(0, 9), &d), WSAVERNOTSUPPORTED);
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), NULL), WSAEFAULT);
    CHECK_EQ(WSAStartup(MAKEWORD(1, 1), &d), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(1, 1));
    CHECK_EQ(d.wHighVersion, MAKEWORD(2, 2));
    CHECK(strlen(d.szDescription) > 0 && strlen(d.szDescription) <= WSADESCRIPTION_LEN);
    CHECK(strcmp(d.szSystemStatus, "Running") == 0);
    CHECK_EQ(WSAStartup(MAKEWORD(3, 1), &d), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(2, 2));
    CHECK_EQ(WSAStartup(MAKEWORD(2, 0), &d), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(2, 0));
    /* Failed start-ups did not count: three cleanups end it. */
    CHECK_EQ(WSACleanup(), 0);
    CHECK_EQ(WSACleanup(), 0);
    CHECK_EQ(WSACleanup(), 0);
    CHECK_EQ(WSACleanup(), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
}

TEST(winsock_startup_is_reference_counted_and_the_last_cleanup_closes_sockets) {
    startup();
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(WSACleanup(), 0);
    /* One start-up still in force: the socket is still there. */
    SOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(s, (SOCKADDR *)&a, sizeof a), 0);
    int len = sizeof a;
    CHECK_EQ(getsockname(s, (SOCKADDR *)&a, &len), 0);
    CHECK_EQ(WSACleanup(), 0);
    CHECK_EQ(getsockname(s, (SOCKADDR *)&a, &len), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    /* Started again, the socket the program left open is gone. */
    startup();
    CHECK_EQ(closesocket(s), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(WSACleanup(), 0);
}

static void *other_thread_errors(void *arg) {
    (void)arg;
    int ok = WSAGetLastError() == 0;
    WSASetLastError(WSAEWOULDBLOCK);
    ok = ok && WSAGetLastError() == WSAEWOULDBLOCK;
    ok = ok && closesocket((SOCKET)12345) == SOCKET_ERROR && WSAGetLastError() == WSAENOTSOCK;
    return (void *)(long)(ok ? 0 : 1);
}

TEST(winsock_last_error_belongs_to_each_thread) {
    startup();
    WSASetLastError(WSAEINTR);
    CHECK_EQ(join_thread(start_thread(other_thread_errors, NULL)), 0);
    CHECK_EQ(WSAGetLastError(), WSAEINTR);
    /* A success leaves it alone. */
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEINTR);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

TEST(winsock_fd_set_macros) {
    fd_set set;
    FD_ZERO(&set);
    CHECK_EQ(set.fd_count, 0);
    FD_SET((SOCKET)7, &set);
    FD_SET((SOCKET)9, &set);
    FD_SET((SOCKET)7, &set); /* already there */
    FD_SET((SOCKET)11, &set);
    CHECK_EQ(set.fd_count, 3);
    CHECK_EQ(FD_ISSET((SOCKET)9, &set), TRUE); /* TRUE itself, as on Windows: ported code
                                                 * writes FD_ISSET(s, &set) == TRUE */
    CHECK(!FD_ISSET((SOCKET)8, &set));
    FD_CLR((SOCKET)7, &set);
    FD_CLR((SOCKET)8, &set); /* not there */
    CHECK_EQ(set.fd_count, 2);
    CHECK_EQ(set.fd_array[0], 9); /* the others keep their order */
    CHECK_EQ(set.fd_array[1], 11);
    CHECK(!FD_ISSET((SOCKET)7, &set));
    CHECK_EQ(__WSAFDIsSet((SOCKET)11, &set), TRUE);
    CHECK_EQ(__WSAFDIsSet((SOCKET)11, NULL), 0); /* no set holds nothing */
    /* FD_SETSIZE handles at most; more are left out, as on Windows. */
    CHECK_EQ(FD_SETSIZE, 64);
    FD_ZERO(&set);
    for (SOCKET s = 1; s <= FD_SETSIZE + 5; s++)
        FD_SET(s, &set);
    CHECK_EQ(set.fd_count, FD_SETSIZE);
    CHECK(FD_ISSET((SOCKET)FD_SETSIZE, &set));
    CHECK(!FD_ISSET((SOCKET)(FD_SETSIZE + 1), &set));
}

TEST(winsock_handles_no_provider_made_are_wsaenotsock) {
    startup();
    char b[4];
    CHECK_EQ(send((SOCKET)4242, b, 1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(s), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    fd_set set;
    FD_ZERO(&set);
    FD_SET((SOCKET)4242, &set);
    TIMEVAL zero = {0, 0};
    CHECK_EQ(select(0, &set, NULL, NULL, &zero), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    /* No handle at all: no provider to ask. */
    FD_ZERO(&set);
    CHECK_EQ(select(0, &set, NULL, NULL, &zero), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    CHECK_EQ(WSACleanup(), 0);
}

TEST(winsock_socket_picks_a_catalog_entry) {
    startup();
    CHECK(socket(AF_INET, SOCK_DGRAM, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAESOCKTNOSUPPORT);
    CHECK(socket(AF_INET, SOCK_STREAM, IPPROTO_UDP) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEPROTONOSUPPORT);
    CHECK(socket(AF_APPLETALK, SOCK_STREAM, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEAFNOSUPPORT);
    CHECK(WSASocket(FROM_PROTOCOL_INFO, SOCK_STREAM, 0, NULL, 0, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    WSAPROTOCOL_INFO bogus;
    memset(&bogus, 0, sizeof bogus);
    bogus.dwCatalogEntryId = 4711;
    CHECK(WSASocket(AF_INET, SOCK_STREAM, 0, &bogus, 0, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    SOCKET s6 = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK(s6 != INVALID_SOCKET);
    CHECK_EQ(closesocket(s6), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* The catalog's copy cannot be allocated: WSAENOBUFS, not an empty catalog. */
TEST(winsock_enum_protocols_without_memory_is_wsaenobufs) {
    startup();
    WSAPROTOCOL_INFO info[4];
    DWORD len = sizeof info;
    FAULT(malloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 4);
    CHECK_EQ(WSACleanup(), 0);
}

/* A filter no entry matches: the provider's sizing answer (no bytes) ends the enumeration.
 * Pins that no buffer is allocated and filled for nothing: the one allocation is the
 * catalog copy's start. */
TEST(winsock_enum_protocols_matching_nothing_allocates_nothing_for_the_answer) {
    startup();
    WSAPROTOCOL_INFO info[4];
    DWORD len = sizeof info;
    int udp_only[] = {IPPROTO_UDP, 0};
    FAULT(malloc, .nth = 1000, .this_thread = 1); /* counts, never fails */
    CHECK_EQ(WSAEnumProtocols(udp_only, info, &len), 0);
    CHECK_EQ(fault_calls(FAULT_malloc), 1);
    CHECK_EQ(len, 0);
    fault_clear();
    CHECK_EQ(WSACleanup(), 0);
}

TEST(winsock_enum_protocols) {
    startup();
    DWORD len = 0;
    CHECK_EQ(WSAEnumProtocols(NULL, NULL, &len), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOBUFS);
    CHECK_EQ(len, 4 * sizeof(WSAPROTOCOL_INFO));
    WSAPROTOCOL_INFO info[4];
    DWORD small = sizeof info[0];
    CHECK_EQ(WSAEnumProtocols(NULL, info, &small), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOBUFS);
    CHECK_EQ(small, len);
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 4);
    CHECK_EQ(info[0].dwCatalogEntryId, WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(info[1].dwCatalogEntryId, WSP_CATALOG_TCP_IPV6);
    CHECK_EQ(info[2].dwCatalogEntryId, WSP_CATALOG_CDATA_IPV4);
    CHECK_EQ(info[3].dwCatalogEntryId, WSP_CATALOG_CDATA_IPV6);
    CHECK(info[2].dwServiceFlags1 & XP1_CONNECT_DATA);
    int udp_only[] = {IPPROTO_UDP, 0};
    len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(udp_only, info, &len), 0);
    int tcp[] = {IPPROTO_TCP, 0};
    len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(tcp, info, &len), 4);
    /* An entry from the catalog makes a socket of that entry. */
    len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 4);
    SOCKET s = WSASocket(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info[3], 0,
                         WSA_FLAG_OVERLAPPED);
    CHECK(s != INVALID_SOCKET);
    SOCKADDR_STORAGE v4;
    memset(&v4, 0, sizeof v4);
    v4.ss_family = AF_INET;
    CHECK_EQ(bind(s, (SOCKADDR *)&v4, sizeof(SOCKADDR_IN6)), SOCKET_ERROR); /* an IPv6 socket */
    CHECK_EQ(WSAGetLastError(), WSAEAFNOSUPPORT);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

TEST(winsock_address_strings) {
    startup();
    SOCKADDR_STORAGE ss;
    int sslen = sizeof ss;
    CHECK_EQ(WSAStringToAddress("127.0.0.1:8080", AF_INET, NULL, (SOCKADDR *)&ss, &sslen), 0);
    SOCKADDR_IN *in = (SOCKADDR_IN *)&ss;
    CHECK_EQ(in->sin_family, AF_INET);
    CHECK_EQ(ntohs(in->sin_port), 8080);
    CHECK_EQ(in->sin_addr.s_addr, inet_addr("127.0.0.1"));
    char text[64];
    DWORD textlen = sizeof text;
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&ss, sizeof(SOCKADDR_IN), NULL, text, &textlen), 0);
    CHECK(strcmp(text, "127.0.0.1:8080") == 0);

    sslen = sizeof ss;
    CHECK_EQ(WSAStringToAddressA("[::1]:80", AF_INET6, NULL, (SOCKADDR *)&ss, &sslen), 0);
    CHECK_EQ(ss.ss_family, AF_INET6);
    textlen = sizeof text;
    CHECK_EQ(WSAAddressToStringA((SOCKADDR *)&ss, sizeof(SOCKADDR_IN6), NULL, text, &textlen), 0);
    CHECK(strcmp(text, "[::1]:80") == 0);
    /* Too small: the length needed, the terminating zero included. */
    textlen = 3;
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&ss, sizeof(SOCKADDR_IN6), NULL, text, &textlen),
             SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(textlen, strlen("[::1]:80") + 1);

    sslen = sizeof ss;
    CHECK_EQ(WSAStringToAddress("not an address", AF_INET, NULL, (SOCKADDR *)&ss, &sslen),
             SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    sslen = sizeof ss;
    CHECK_EQ(WSAStringToAddress("/tmp/x", AF_UNIX, NULL, (SOCKADDR *)&ss, &sslen), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL); /* no provider for the family */
    CHECK_EQ(WSACleanup(), 0);
}

TEST(winsock_ioctlsocket_carries_u_long_both_ways) {
    startup();
    SOCKET c, s;
    connected_pair(&c, &s);
    u_long nonblocking = 1;
    CHECK_EQ(ioctlsocket(s, FIONBIO, &nonblocking), 0);
    char buf[16];
    CHECK_EQ(recv(s, buf, sizeof buf, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEWOULDBLOCK);
    CHECK_EQ(send(c, "hello", 5, 0), 5);
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(s, &readable);
    CHECK_EQ(select(0, &readable, NULL, NULL, NULL), 1);
    CHECK(FD_ISSET(s, &readable));
    u_long pending = 0xdeadbeefUL;
    CHECK_EQ(ioctlsocket(s, FIONREAD, &pending), 0);
    CHECK_EQ(pending, 5);
    CHECK_EQ(ioctlsocket(s, FIONBIO, NULL), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(send(c, buf, -1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* sendto and recvfrom on a stream are send and recv: the address is ignored (Winsock's TCP),
 * the counts and errors are theirs. */
TEST(winsock_sendto_and_recvfrom_on_a_stream) {
    startup();
    SOCKET c, s;
    connected_pair(&c, &s);
    SOCKADDR_IN elsewhere;
    memset(&elsewhere, 0, sizeof elsewhere);
    elsewhere.sin_family = AF_INET;
    elsewhere.sin_port = htons(9);
    CHECK_EQ(sendto(c, "hello", 5, 0, (SOCKADDR *)&elsewhere, sizeof elsewhere), 5);
    char buf[16];
    SOCKADDR_IN from;
    memset(&from, 0x5a, sizeof from);
    int fromlen = sizeof from;
    int got = 0;
    while (got < 5) {
        int n = recvfrom(s, buf + got, (int)sizeof buf - got, 0, (SOCKADDR *)&from, &fromlen);
        CHECK(n > 0);
        got += n;
    }
    CHECK_EQ(got, 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(((unsigned char *)&from)[0], 0x5a); /* left as it was */
    CHECK_EQ(sendto(c, buf, -1, 0, NULL, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(recvfrom(s, buf, -1, 0, NULL, NULL), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(sendto(c, "x", 1, 0, NULL, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(recvfrom(s, buf, sizeof buf, 0, NULL, NULL), 0); /* the peer closed */
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

TEST(winsock_what_is_not_offered_fails_as_on_windows) {
    startup();
    SOCKET c, s;
    connected_pair(&c, &s);
    GUID acceptex = WSAID_ACCEPTEX;
    void *fn = NULL;
    DWORD bytes = 0;
    CHECK_EQ(WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &acceptex, sizeof acceptex, &fn,
                      sizeof fn, &bytes, NULL, NULL),
             SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    CHECK(fn == NULL);
    WSAOVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    char b[4];
    WSABUF wb = {sizeof b, b};
    DWORD got = 0, flags = 0;
    CHECK_EQ(WSARecv(s, &wb, 1, &got, &flags, &ov, NULL), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEOPNOTSUPP);
    /* Each call below is checked after the last error was cleared: several fail with the
     * same code, which a call that set none would otherwise seem to report. */
    WSASetLastError(0);
    CHECK_EQ(WSAGetOverlappedResult(s, &ov, &got, FALSE, &flags), FALSE);
    CHECK_EQ(WSAGetLastError(), WSAEOPNOTSUPP);
    WSAPROTOCOL_INFO dup;
    WSASetLastError(0);
    CHECK_EQ(WSADuplicateSocket(s, 1, &dup), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEOPNOTSUPP);
    WSASetLastError(0);
    CHECK(WSASocket(AF_INET, SOCK_STREAM, 0, NULL, SG_UNCONSTRAINED_GROUP, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    WSABUF data = {sizeof b, b};
    WSASetLastError(0);
    CHECK_EQ(WSASendDisconnect(c, &data), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEOPNOTSUPP);
    WSASetLastError(0);
    CHECK_EQ(WSARecvDisconnect(c, &data), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEOPNOTSUPP);
    SOCKADDR_IN a;
    int alen = sizeof a;
    CHECK_EQ(getpeername(c, (SOCKADDR *)&a, &alen), 0);
    WSASetLastError(0);
    CHECK(WSAJoinLeaf(c, (SOCKADDR *)&a, sizeof a, NULL, NULL, NULL, NULL, 0) ==
          INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEOPNOTSUPP);
    /* ... and leaves no handle behind: INVALID_SOCKET still names no socket, even to a call
     * the provider would refuse before looking at the handle. */
    WSASetLastError(0);
    CHECK_EQ(WSASend(INVALID_SOCKET, &wb, 1, &got, 0, &ov, NULL), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* Options go to the provider as the program named them: level, then option. */
TEST(winsock_socket_options_through_the_api) {
    startup();
    SOCKET c, s;
    connected_pair(&c, &s);
    DWORD type = 0;
    int len = sizeof type;
    CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_TYPE, (char *)&type, &len), 0);
    CHECK_EQ(type, SOCK_STREAM);
    CHECK_EQ(len, sizeof type);
    DWORD ms = 1234;
    CHECK_EQ(setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, (const char *)&ms, sizeof ms), 0);
    ms = 0;
    len = sizeof ms;
    CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_RCVTIMEO, (char *)&ms, &len), 0);
    CHECK_EQ(ms, 1234);
    CHECK_EQ(getsockopt(c, SOL_SOCKET, 0x7777, (char *)&ms, &len), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOPROTOOPT);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, (const char *)&ms, sizeof ms), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* Many handles, made and closed from several threads at once: every one is routed while it
 * lives (the route table grows past its first size) and none once it is closed. */
#define ROUTE_THREADS 4
#define ROUTE_SOCKETS 400

static void *make_and_close_sockets(void *arg) {
    (void)arg;
    SOCKET mine[ROUTE_SOCKETS];
    for (int i = 0; i < ROUTE_SOCKETS; i++) {
        mine[i] = socket(i % 2 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
        if (mine[i] == INVALID_SOCKET)
            return (void *)1L;
    }
    for (int i = 0; i < ROUTE_SOCKETS; i++) {
        u_long nonblocking = 1; /* a call that needs the route */
        if (ioctlsocket(mine[i], FIONBIO, &nonblocking) != 0 || closesocket(mine[i]) != 0)
            return (void *)2L;
    }
    for (int i = 0; i < ROUTE_SOCKETS; i++)
        if (closesocket(mine[i]) != SOCKET_ERROR || WSAGetLastError() != WSAENOTSOCK)
            return (void *)3L;
    return NULL;
}

TEST(winsock_routes_follow_many_handles_from_several_threads) {
    startup();
    pthread_t t[ROUTE_THREADS];
    for (int i = 0; i < ROUTE_THREADS; i++)
        t[i] = start_thread(make_and_close_sockets, NULL);
    for (int i = 0; i < ROUTE_THREADS; i++)
        CHECK_EQ(join_thread(t[i]), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* AF_UNSPEC (0) names no family: the first entry of the type and protocol asked for is used,
 * as Windows' does (here TCP over IPv4, the first in the catalog). */
TEST(winsock_socket_of_unspecified_family_takes_the_first_matching_entry) {
    startup();
    SOCKET s = socket(AF_UNSPEC, SOCK_STREAM, IPPROTO_TCP);
    CHECK(s != INVALID_SOCKET);
    SOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(s, (SOCKADDR *)&a, sizeof a), 0); /* an IPv6 socket: WSAEAFNOSUPPORT */
    memset(&a, 0, sizeof a);
    int len = sizeof a;
    CHECK_EQ(getsockname(s, (SOCKADDR *)&a, &len), 0);
    CHECK_EQ(len, (int)sizeof a);
    CHECK_EQ(a.sin_family, AF_INET);
    CHECK_EQ(closesocket(s), 0);
    s = socket(AF_UNSPEC, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(closesocket(s), 0);
    CHECK(socket(AF_UNSPEC, SOCK_DGRAM, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAESOCKTNOSUPPORT);
    CHECK_EQ(WSACleanup(), 0);
}

/* A handle's route lives as long as the handle: a socket closed, made or accepted, leaves
 * none behind (a leak would only show at WSACleanup). */
TEST(winsock_closesocket_forgets_the_route) {
    startup();
    CHECK_EQ(winsock_route_count(), 0);
    SOCKET c, s;
    connected_pair(&c, &s);
    CHECK_EQ(winsock_route_count(), 2);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(winsock_route_count(), 1);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(winsock_route_count(), 0);
    CHECK_EQ(closesocket(c), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(winsock_route_count(), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* The last WSACleanup stops the providers too: the provider's own start-up count is back to
 * zero, so its cleanup now fails as never started. */
TEST(winsock_last_cleanup_stops_the_provider) {
    startup();
    startup();
    CHECK_EQ(WSACleanup(), 0);
    WSPPROC_TABLE table = winsock_providers[0].table;
    int err = 0;
    CHECK_EQ(WSACleanup(), 0);
    CHECK_EQ(table.lpWSPCleanup(&err), SOCKET_ERROR);
    CHECK_EQ(err, WSANOTINITIALISED);
}

/* A start-up writes the provider's table again whenever it differs from the one the provider
 * gives, however slightly: one byte one more than the provider's, a byte one less, a pointer
 * cleared. */
TEST(winsock_startup_puts_back_a_provider_table_that_changed) {
    startup();
    WSPPROC_TABLE table = winsock_providers[0].table;
    CHECK_EQ(WSACleanup(), 0);
    unsigned char *b = (unsigned char *)&winsock_providers[0].table;
    size_t up = 0, down = 0; /* the first byte that can go up by one, and one that can go down */
    while (up < sizeof table && b[up] == 0xFF)
        up++;
    while (down < sizeof table && b[down] == 0)
        down++;
    CHECK(up < sizeof table && down < sizeof table);
    for (int change = 0; change < 3; change++) {
        if (change == 0)
            b[up]++;
        else if (change == 1)
            b[down]--;
        else
            winsock_providers[0].table.lpWSPSend = NULL;
        startup();
        CHECK_MEM(&winsock_providers[0].table, &table, sizeof table);
        CHECK_EQ(WSACleanup(), 0);
    }
}

/* A provider that cannot start fails WSAStartup with WSASYSNOTREADY and counts for nothing:
 * calls still fail as before any start-up, and a later start-up works. */
TEST(winsock_startup_whose_provider_fails_is_wsasysnotready) {
    WSADATA d;
    FAULT(epoll_create1, .err = EMFILE);
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), WSASYSNOTREADY);
    CHECK_EQ(fault_fired(FAULT_epoll_create1), 1);
    fault_clear();
    CHECK(socket(AF_INET, SOCK_STREAM, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    CHECK_EQ(WSACleanup(), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* Versions compare major first, then minor, over the whole byte of each: 1.255 is below 2.2
 * and is granted as asked; 2.255 is above it and gets 2.2. */
TEST(winsock_startup_compares_versions_major_first) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(1, 255), &d), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(1, 255));
    CHECK_EQ(WSAStartup(MAKEWORD(2, 255), &d), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(2, 2));
    CHECK_EQ(WSAStartup(MAKEWORD(2, 1), &d), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(2, 1));
    CHECK_EQ(WSAStartup(MAKEWORD(255, 0), &d), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(2, 2));
    for (int i = 0; i < 4; i++)
        CHECK_EQ(WSACleanup(), 0);
}

/* Only FROM_PROTOCOL_INFO (-1) asks for the protocol info's values; any other negative family,
 * type or protocol is simply one no entry offers. */
TEST(winsock_socket_negative_values_other_than_from_protocol_info_match_nothing) {
    startup();
    CHECK(WSASocket(-2, SOCK_STREAM, 0, NULL, 0, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEAFNOSUPPORT);
    CHECK(WSASocket(AF_INET, -2, 0, NULL, 0, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAESOCKTNOSUPPORT);
    CHECK(WSASocket(AF_INET, SOCK_STREAM, -2, NULL, 0, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEPROTONOSUPPORT);
    CHECK(WSASocket(AF_INET, SOCK_STREAM, INT_MIN, NULL, 0, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEPROTONOSUPPORT);
    CHECK(WSASocket(AF_INET, SOCK_STREAM, FROM_PROTOCOL_INFO, NULL, 0, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    CHECK(WSASocket(AF_INET, FROM_PROTOCOL_INFO, 0, NULL, 0, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    CHECK_EQ(WSACleanup(), 0);
}

/* The catalog's copy cannot grow (realloc fails): WSAENOBUFS, nothing leaked, and the next
 * enumeration works. */
TEST(winsock_enum_protocols_when_the_copy_cannot_grow_is_wsaenobufs) {
    startup();
    WSAPROTOCOL_INFO info[4];
    DWORD len = sizeof info;
    FAULT(realloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_realloc), 1);
    fault_clear();
    len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 4);
    CHECK_EQ(WSACleanup(), 0);
}

/* A protocol info names its entry exactly: an id below every entry's is no entry either. */
TEST(winsock_socket_of_a_protocol_info_naming_no_entry_is_wsaeinval) {
    startup();
    WSAPROTOCOL_INFO bogus;
    memset(&bogus, 0, sizeof bogus);
    const DWORD ids[] = {1, WSP_CATALOG_TCP_IPV4 - 1, WSP_CATALOG_CDATA_IPV6 + 1, 0xffffffffu};
    for (int i = 0; i < 4; i++) {
        bogus.dwCatalogEntryId = ids[i];
        CHECK(WSASocket(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &bogus, 0,
                        0) == INVALID_SOCKET);
        CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    }
    CHECK_EQ(winsock_route_count(), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* closesocket forgets a handle's route only when the provider closed it or does not know
 * it: a provider stopped behind the Winsock layer's back (WSANOTINITIALISED) keeps it. */
TEST(winsock_closesocket_the_provider_refuses_keeps_the_route) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(winsock_route_count(), 1);
    int err = 0;
    CHECK_EQ(winsock_providers[0].table.lpWSPCleanup(&err), 0); /* the provider alone */
    CHECK_EQ(closesocket(s), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    CHECK_EQ(winsock_route_count(), 1);
    CHECK_EQ(WSACleanup(), 0); /* drains the routes */
    CHECK_EQ(winsock_route_count(), 0);
}

/* One socket() and its closesocket(), as a thread's function: 1 when both worked. */
static void *socket_and_close(void *unused) {
    (void)unused;
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    return (void *)(long)(s != INVALID_SOCKET && closesocket(s) == 0);
}

/* socket() records which provider made the handle; when that record cannot be had (its node,
 * or the table's first buckets), the call fails with WSAENOBUFS, the provider's socket is
 * closed again, and the next socket() works. The allocations are found by counting those of
 * a first start-up's socket(): the last cleanup empties the table, so a second start-up's
 * socket() makes the same ones. */
TEST(winsock_socket_without_memory_for_its_route_is_wsaenobufs) {
    startup();
    FAULT(malloc, .nth = 1000000, .this_thread = 1); /* only counts */
    FAULT(calloc, .nth = 1000000, .this_thread = 1);
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    int mallocs = fault_calls(FAULT_malloc), callocs = fault_calls(FAULT_calloc);
    fault_clear();
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
    const enum fault_fn fns[2] = {FAULT_malloc, FAULT_calloc};
    for (int i = 0; i < 2; i++) { /* the route's node (the last malloc), then its buckets */
        startup();
        int fds = provider_fds();
        fault_set(fns[i], (struct fault){.nth = i == 0 ? mallocs : callocs, .err = ENOMEM,
                                         .this_thread = 1});
        CHECK(socket(AF_INET, SOCK_STREAM, 0) == INVALID_SOCKET);
        CHECK_EQ(fault_fired(fns[i]), 1);
        fault_clear();
        CHECK_EQ(WSAGetLastError(), WSAENOBUFS);
        /* The next socket(), from another thread, works: the failed call left the route
         * table's lock free. Another thread, and before anything else on this one: a lock
         * this thread still held would not stop this thread (glibc answers its owner's next
         * lock with EDEADLK, which the table does not look at), and that next call's unlock
         * would free it. A held lock stops the other thread until the runner's limit. */
        CHECK_EQ(join_thread(start_thread(socket_and_close, NULL)), 1);
        CHECK_EQ(provider_fds(), fds);
        CHECK_EQ(winsock_route_count(), 0);
        CHECK_EQ(WSACleanup(), 0);
    }
}

/* The network-event calls hand the provider's failure on: SOCKET_ERROR, and its code as the
 * thread's last error. */
TEST(winsock_network_event_calls_that_fail_report_the_providers_code) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    WSASetLastError(0);
    CHECK_EQ(WSAEventSelect(s, NULL, FD_READ), SOCKET_ERROR); /* no event to signal */
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    WSASetLastError(0);
    CHECK_EQ(WSAAsyncSelect(s, NULL, 0x401, FD_READ), SOCKET_ERROR); /* no window */
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    WSASetLastError(0);
    CHECK_EQ(WSAEnumNetworkEvents(s, NULL, NULL), SOCKET_ERROR); /* nowhere to write */
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* ---- what the layer hands a provider ---------------------------------------------------- */
/* These tests put recording stand-ins into the provider's table or the provider list
 * (winsock_internal.h), as a second provider would be: WSP's own provider ignores some
 * arguments (its protocol info fixes family and type; its join-leaf refuses everything), so
 * only a stand-in sees whether the layer passed them on as the program gave them. */

static struct {
    int af, type, protocol, g;
    DWORD entry, flags;
} made;
static LPWSPSOCKET real_socket;

static SOCKET recording_socket(int af, int type, int protocol, LPWSAPROTOCOL_INFO info, GROUP g,
                               DWORD flags, LPINT err) {
    made.af = af, made.type = type, made.protocol = protocol, made.g = (int)g;
    made.entry = info ? info->dwCatalogEntryId : 0;
    made.flags = flags;
    return real_socket(af, type, protocol, info, g, flags, err);
}

/* The provider is given the program's family, type and protocol, each FROM_PROTOCOL_INFO
 * replaced by the entry's value, with the chosen entry and the program's flags. */
TEST(winsock_socket_hands_the_provider_the_programs_values) {
    startup();
    real_socket = winsock_providers[0].table.lpWSPSocket;
    winsock_providers[0].table.lpWSPSocket = recording_socket;
    SOCKET s = WSASocket(AF_INET6, SOCK_STREAM, 0, NULL, 0, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(made.af, AF_INET6);
    CHECK_EQ(made.type, SOCK_STREAM);
    CHECK_EQ(made.protocol, 0);
    CHECK_EQ(made.entry, WSP_CATALOG_TCP_IPV6);
    CHECK_EQ(made.flags, 0);
    CHECK_EQ(closesocket(s), 0);
    WSAPROTOCOL_INFO info[4];
    DWORD len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 4);
    CHECK_EQ(info[2].dwCatalogEntryId, WSP_CATALOG_CDATA_IPV4);
    s = WSASocket(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info[2], 0,
                  WSA_FLAG_OVERLAPPED);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(made.af, AF_INET);
    CHECK_EQ(made.type, SOCK_STREAM);
    CHECK_EQ(made.protocol, IPPROTO_TCP);
    CHECK_EQ(made.entry, WSP_CATALOG_CDATA_IPV4);
    CHECK_EQ(made.flags, WSA_FLAG_OVERLAPPED);
    CHECK_EQ(closesocket(s), 0);
    s = WSASocket(AF_INET, FROM_PROTOCOL_INFO, IPPROTO_TCP, &info[1], 0, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(made.af, AF_INET); /* as given: the entry decides, the provider sees both */
    CHECK_EQ(made.type, SOCK_STREAM);
    CHECK_EQ(made.protocol, IPPROTO_TCP);
    CHECK_EQ(made.entry, WSP_CATALOG_TCP_IPV6);
    CHECK_EQ(closesocket(s), 0);
    /* With a protocol info, the program's own values go as they are, even where the entry
     * has others (the provider decides what to make of them). */
    s = WSASocket(AF_INET, SOCK_DGRAM, IPPROTO_UDP, &info[0], 0, 0);
    CHECK_EQ(made.af, AF_INET);
    CHECK_EQ(made.type, SOCK_DGRAM);
    CHECK_EQ(made.protocol, IPPROTO_UDP);
    CHECK_EQ(made.entry, WSP_CATALOG_TCP_IPV4);
    if (s != INVALID_SOCKET)
        CHECK_EQ(closesocket(s), 0);
    /* Only FROM_PROTOCOL_INFO itself is replaced: other negative values go as they are. */
    s = WSASocket(-2, -3, -4, &info[0], 0, 0);
    CHECK_EQ(made.af, -2);
    CHECK_EQ(made.type, -3);
    CHECK_EQ(made.protocol, -4);
    CHECK_EQ(made.entry, WSP_CATALOG_TCP_IPV4);
    if (s != INVALID_SOCKET)
        CHECK_EQ(closesocket(s), 0);
    winsock_providers[0].table.lpWSPSocket = real_socket;
    CHECK_EQ(WSACleanup(), 0);
}

static struct {
    SOCKET s, leaf;
    const struct sockaddr *name;
    int namelen, err;
    LPWSABUF caller, callee;
    LPQOS sqos, gqos;
    DWORD flags;
} joined;

static SOCKET recording_join_leaf(SOCKET s, const struct sockaddr *name, int namelen,
                                  LPWSABUF caller, LPWSABUF callee, LPQOS sqos, LPQOS gqos,
                                  DWORD flags, LPINT err) {
    joined.s = s, joined.name = name, joined.namelen = namelen;
    joined.caller = caller, joined.callee = callee, joined.sqos = sqos, joined.gqos = gqos;
    joined.flags = flags;
    *err = joined.err;
    return joined.leaf;
}

/* WSAJoinLeaf passes every argument to the provider as given; a leaf that is the socket
 * itself is returned as it is, a new one gets a route (closesocket finds it), and a failure
 * is the provider's error. */
TEST(winsock_join_leaf_hands_the_provider_its_arguments) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    LPWSPJOINLEAF real = winsock_providers[0].table.lpWSPJoinLeaf;
    winsock_providers[0].table.lpWSPJoinLeaf = recording_join_leaf;
    SOCKADDR_IN to;
    memset(&to, 0, sizeof to);
    WSABUF caller = {1, "c"}, callee = {0, NULL};
    QOS sqos, gqos;
    joined.leaf = s;
    CHECK(WSAJoinLeaf(s, (SOCKADDR *)&to, 13, &caller, &callee, &sqos, &gqos, 4) == s);
    /* 4 and 2: Windows' JL_BOTH and JL_SENDER_ONLY, which WSP's headers do not define */
    CHECK(joined.s == s);
    CHECK(joined.name == (SOCKADDR *)&to);
    CHECK_EQ(joined.namelen, 13);
    CHECK(joined.caller == &caller && joined.callee == &callee);
    CHECK(joined.sqos == &sqos && joined.gqos == &gqos);
    CHECK_EQ(joined.flags, 4);
    CHECK_EQ(winsock_route_count(), 1);
    joined.leaf = INVALID_SOCKET;
    joined.err = WSAENETDOWN;
    CHECK(WSAJoinLeaf(s, NULL, 0, NULL, NULL, NULL, NULL, 2) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAENETDOWN);
    CHECK_EQ(joined.flags, 2);
    CHECK_EQ(winsock_route_count(), 1);
    int err = 0; /* a new leaf: a socket the provider made behind the layer's back */
    joined.leaf = winsock_providers[0].table.lpWSPSocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL,
                                                         0, 0, &err);
    CHECK(joined.leaf != INVALID_SOCKET);
    CHECK(WSAJoinLeaf(s, NULL, 0, NULL, NULL, NULL, NULL, 2) == joined.leaf);
    CHECK_EQ(winsock_route_count(), 2);
    CHECK_EQ(closesocket(joined.leaf), 0); /* routed to its provider */
    winsock_providers[0].table.lpWSPJoinLeaf = real;
    CHECK_EQ(WSACleanup(), 0);
}

/* A new leaf is told from the socket by its handle alone, whichever is the larger: a leaf the
 * provider made before the socket (a lower handle) gets its route and is returned. */
TEST(winsock_join_leaf_returns_a_leaf_older_than_the_socket) {
    startup();
    int err = 0;
    SOCKET older = winsock_providers[0].table.lpWSPSocket(AF_INET, SOCK_STREAM, IPPROTO_TCP,
                                                          NULL, 0, 0, &err);
    CHECK(older != INVALID_SOCKET);
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK(older < s); /* the case this is about */
    LPWSPJOINLEAF real = winsock_providers[0].table.lpWSPJoinLeaf;
    winsock_providers[0].table.lpWSPJoinLeaf = recording_join_leaf;
    joined.leaf = older;
    CHECK(WSAJoinLeaf(s, NULL, 0, NULL, NULL, NULL, NULL, 2) == older);
    CHECK_EQ(winsock_route_count(), 2);
    CHECK_EQ(closesocket(older), 0); /* routed to its provider */
    winsock_providers[0].table.lpWSPJoinLeaf = real;
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

static DWORD converted_with;
static LPWSPADDRESSTOSTRING real_address_to_string;
static LPWSPSTRINGTOADDRESS real_string_to_address;

static int recording_address_to_string(LPSOCKADDR sa, DWORD salen, LPWSAPROTOCOL_INFO info,
                                       LPSTR out, LPDWORD outlen, LPINT err) {
    converted_with = info ? info->dwCatalogEntryId : 0;
    return real_address_to_string(sa, salen, info, out, outlen, err);
}

static int recording_string_to_address(const char *str, INT af, LPWSAPROTOCOL_INFO info,
                                       LPSOCKADDR sa, LPINT salen, LPINT err) {
    converted_with = info ? info->dwCatalogEntryId : 0;
    return real_string_to_address(str, af, info, sa, salen, err);
}

/* Without a protocol info, an address conversion goes to the first catalog entry of the
 * family (Windows' documented rule), with that entry's description; with one, to the entry
 * it names. */
TEST(winsock_address_conversions_go_to_the_first_entry_of_the_family) {
    startup();
    real_address_to_string = winsock_providers[0].table.lpWSPAddressToString;
    real_string_to_address = winsock_providers[0].table.lpWSPStringToAddress;
    winsock_providers[0].table.lpWSPAddressToString = recording_address_to_string;
    winsock_providers[0].table.lpWSPStringToAddress = recording_string_to_address;
    SOCKADDR_STORAGE ss;
    int sslen = sizeof ss;
    CHECK_EQ(WSAStringToAddress("127.0.0.1:7", AF_INET, NULL, (SOCKADDR *)&ss, &sslen), 0);
    CHECK_EQ(converted_with, WSP_CATALOG_TCP_IPV4);
    char text[64];
    DWORD textlen = sizeof text;
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&ss, sizeof(SOCKADDR_IN), NULL, text, &textlen), 0);
    CHECK_EQ(converted_with, WSP_CATALOG_TCP_IPV4);
    sslen = sizeof ss;
    CHECK_EQ(WSAStringToAddress("[::1]:7", AF_INET6, NULL, (SOCKADDR *)&ss, &sslen), 0);
    CHECK_EQ(converted_with, WSP_CATALOG_TCP_IPV6);
    textlen = sizeof text;
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&ss, sizeof(SOCKADDR_IN6), NULL, text, &textlen), 0);
    CHECK_EQ(converted_with, WSP_CATALOG_TCP_IPV6);
    WSAPROTOCOL_INFO info[4];
    DWORD len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 4);
    textlen = sizeof text;
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&ss, sizeof(SOCKADDR_IN6), &info[3], text, &textlen),
             0);
    CHECK_EQ(converted_with, WSP_CATALOG_CDATA_IPV6);
    sslen = sizeof ss;
    CHECK_EQ(WSAStringToAddress("10.0.0.1:9", AF_INET, &info[2], (SOCKADDR *)&ss, &sslen), 0);
    CHECK_EQ(converted_with, WSP_CATALOG_CDATA_IPV4);
    /* A protocol info naming no entry (below, between or above the catalog's ids) is no
     * provider: WSAEINVAL, and no provider is asked. */
    WSAPROTOCOL_INFO bogus = info[0];
    const DWORD ids[] = {1, WSP_CATALOG_TCP_IPV4 - 1, WSP_CATALOG_CDATA_IPV6 + 1};
    for (int i = 0; i < 3; i++) {
        bogus.dwCatalogEntryId = ids[i];
        converted_with = 0;
        sslen = sizeof ss;
        CHECK_EQ(WSAStringToAddress("10.0.0.1:9", AF_INET, &bogus, (SOCKADDR *)&ss, &sslen),
                 SOCKET_ERROR);
        CHECK_EQ(WSAGetLastError(), WSAEINVAL);
        textlen = sizeof text;
        CHECK_EQ(WSAAddressToString((SOCKADDR *)&ss, sizeof(SOCKADDR_IN), &bogus, text, &textlen),
                 SOCKET_ERROR);
        CHECK_EQ(WSAGetLastError(), WSAEINVAL);
        CHECK_EQ(converted_with, 0);
    }
    winsock_providers[0].table.lpWSPAddressToString = real_address_to_string;
    winsock_providers[0].table.lpWSPStringToAddress = real_string_to_address;
    CHECK_EQ(WSACleanup(), 0);
}

/* WSAAddressToString reads the address's family to choose a provider: no address, or one too
 * short to hold the family, is WSAEFAULT before any provider is asked; a family no provider
 * takes is WSAEINVAL, even when the address is only the family. */
TEST(winsock_address_to_string_checks_the_address_before_choosing) {
    startup();
    char text[64];
    DWORD textlen = sizeof text;
    CHECK_EQ(WSAAddressToString(NULL, sizeof(SOCKADDR_IN), NULL, text, &textlen), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    SOCKADDR_STORAGE ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&ss, 1, NULL, text, &textlen), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&ss, sizeof ss.ss_family, NULL, text, &textlen),
             SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    CHECK_EQ(WSACleanup(), 0);
}

/* A stand-in catalog of `entries` entries, read the SPI's way: a call without a buffer (or
 * with one too small) gets WSAENOBUFS and the size needed. The next call with a buffer fails
 * with fail_with instead when that is set (once), after the catalog grew by `grow`. */
static struct {
    int entries, grow, fail_first, fail_with, calls, empty_succeeds;
} stand_in;

static int stand_in_enum(LPINT protocols, LPWSAPROTOCOL_INFO buf, LPDWORD len, LPINT err) {
    (void)protocols;
    stand_in.calls++;
    if (stand_in.empty_succeeds && stand_in.entries == 0) {
        *len = 0; /* a provider may answer an empty catalog without WSAENOBUFS */
        return 0;
    }
    if (!buf && stand_in.fail_first) {
        *err = stand_in.fail_first;
        return SOCKET_ERROR;
    }
    if (buf && stand_in.fail_with) {
        *err = stand_in.fail_with;
        stand_in.fail_with = 0;
        stand_in.entries += stand_in.grow;
        *len = (DWORD)stand_in.entries * sizeof *buf;
        return SOCKET_ERROR;
    }
    DWORD need = (DWORD)stand_in.entries * sizeof *buf;
    if (!buf || *len < need) {
        *len = need;
        *err = WSAENOBUFS;
        return SOCKET_ERROR;
    }
    for (int i = 0; i < stand_in.entries; i++) {
        memset(&buf[i], 0, sizeof buf[i]);
        buf[i].dwCatalogEntryId = 7000 + (DWORD)i;
    }
    return stand_in.entries;
}

/* The layer reads a provider's catalog as the SPI says: when the catalog grew between the
 * size query and the copy (WSAENOBUFS again), it asks again; any other failure, of either
 * call, is the enumeration's error. */
TEST(winsock_enum_protocols_reads_a_provider_that_grows_or_fails) {
    startup();
    int (*real)(LPINT, LPWSAPROTOCOL_INFO, LPDWORD, LPINT) = winsock_providers[0].enum_protocols;
    winsock_providers[0].enum_protocols = stand_in_enum;
    memset(&stand_in, 0, sizeof stand_in);
    stand_in.entries = 1;
    CHECK_EQ(WSAEnumProtocols(NULL, NULL, NULL), SOCKET_ERROR); /* no length: no provider asked */
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(stand_in.calls, 0);
    WSAPROTOCOL_INFO info[4];
    DWORD len = sizeof info;
    memset(&stand_in, 0, sizeof stand_in);
    stand_in.entries = 1, stand_in.grow = 2, stand_in.fail_with = WSAENOBUFS;
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 3);
    CHECK_EQ(len, 3 * sizeof info[0]);
    CHECK_EQ(info[2].dwCatalogEntryId, 7002);
    CHECK_EQ(stand_in.calls, 4); /* size, copy (grew), size, copy */

    const int errors[2] = {WSAENETDOWN, WSASYSNOTREADY}; /* below and above WSAENOBUFS */
    for (int i = 0; i < 2; i++) {
        memset(&stand_in, 0, sizeof stand_in);
        stand_in.entries = 1, stand_in.fail_with = errors[i];
        len = sizeof info;
        CHECK_EQ(WSAEnumProtocols(NULL, info, &len), SOCKET_ERROR);
        CHECK_EQ(WSAGetLastError(), errors[i]);
        CHECK_EQ(stand_in.calls, 2);

        memset(&stand_in, 0, sizeof stand_in);
        stand_in.entries = 1, stand_in.fail_first = errors[i];
        len = sizeof info;
        CHECK_EQ(WSAEnumProtocols(NULL, info, &len), SOCKET_ERROR);
        CHECK_EQ(WSAGetLastError(), errors[i]);
        CHECK_EQ(stand_in.calls, 1);
        CHECK(socket(AF_INET, SOCK_STREAM, 0) == INVALID_SOCKET); /* the same read */
        CHECK_EQ(WSAGetLastError(), errors[i]);
    }

    /* A long catalog: the layer's copy must hold every entry (a copy sized wrongly would be
     * written far past its end). */
    enum { LONG_CATALOG = 1000 };
    WSAPROTOCOL_INFO *many = calloc(LONG_CATALOG, sizeof *many);
    CHECK(many != NULL);
    memset(&stand_in, 0, sizeof stand_in);
    stand_in.entries = LONG_CATALOG;
    len = LONG_CATALOG * sizeof *many;
    CHECK_EQ(WSAEnumProtocols(NULL, many, &len), LONG_CATALOG);
    for (int i = 0; i < LONG_CATALOG; i++)
        CHECK_EQ(many[i].dwCatalogEntryId, 7000 + (DWORD)i);
    free(many);

    memset(&stand_in, 0, sizeof stand_in); /* no entries at all */
    len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 0);
    CHECK_EQ(len, 0);
    stand_in.empty_succeeds = 1; /* ... said by a sizing call that succeeds */
    len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 0);
    CHECK_EQ(len, 0);
    winsock_providers[0].enum_protocols = real;
    CHECK_EQ(WSACleanup(), 0);
}

static void *start_use_and_stop(void *arg) {
    (void)arg;
    WSADATA d;
    if (WSAStartup(MAKEWORD(2, 2), &d) != 0)
        return (void *)1L;
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    if (s == INVALID_SOCKET || closesocket(s) != 0)
        return (void *)2L;
    return WSACleanup() == 0 ? NULL : (void *)3L;
}

/* The last WSACleanup leaves the route table free for any thread: a start-up on another
 * thread makes, routes and closes sockets as before (a table left locked would hang it). */
TEST(winsock_routes_work_from_another_thread_after_the_last_cleanup) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0); /* left open: the cleanup closes it */
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(WSACleanup(), 0);
    CHECK_EQ(join_thread(start_thread(start_use_and_stop, NULL)), 0);
    CHECK_EQ(winsock_route_count(), 0);
}

static void *use_anothers_socket(void *arg) {
    SOCKET s = *(SOCKET *)arg;
    u_long nonblocking = 1; /* a call that needs the route */
    return ioctlsocket(s, FIONBIO, &nonblocking) == 0 ? NULL : (void *)1L;
}

/* A socket made on one thread is routed at once for another: making it leaves the route
 * table free (a table left locked by its maker would hang the other thread's look-up while
 * the maker waits for it). */
TEST(winsock_socket_made_on_one_thread_is_routed_for_another) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(join_thread(start_thread(use_anothers_socket, &s)), 0);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* A negative length reaches the provider as a length past INT_MAX (WSAEFAULT), after the
 * handle is looked up as ws2_32 does: a handle no provider made is WSAENOTSOCK whatever the
 * length, and before WSAStartup every such call is WSANOTINITIALISED. */
TEST(winsock_bad_length_with_a_bad_handle_is_wsaenotsock) {
    char buf[4] = {0};
    CHECK_EQ(send((SOCKET)4242, buf, -1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    CHECK_EQ(recv((SOCKET)4242, buf, -1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSANOTINITIALISED);
    startup();
    CHECK_EQ(send((SOCKET)4242, buf, -1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(recv((SOCKET)4242, buf, INT_MIN, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(sendto((SOCKET)4242, buf, -1, 0, NULL, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(recvfrom((SOCKET)4242, buf, -1, 0, NULL, NULL), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    SOCKET c, s;
    connected_pair(&c, &s);
    CHECK_EQ(send(c, "hi", 2, 0), 2);
    CHECK_EQ(recv(s, buf, -1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(recv(s, buf, INT_MIN, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    int got = 0;
    while (got < 2) { /* nothing was taken by the refused calls */
        int n = recv(s, buf + got, 2 - got, 0);
        CHECK(n > 0);
        got += n;
    }
    CHECK(memcmp(buf, "hi", 2) == 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* The route table hashes handles so that those differing only in a few bits spread over its
 * buckets, and doubles the buckets when there are two handles a bucket: 1200 handles that
 * differ only in the slot index, or only in the generation above it (object_table.c's
 * layout), fill 1024 buckets with no chain longer than 2 (the fewest 1200 allow), and each is
 * found again. */
TEST(winsock_routes_spread_handles_that_differ_in_index_or_generation) {
    struct winsock_route route = {&winsock_providers[0]}, found;
    enum { HANDLES = 1200 };
    for (int shift = 0; shift <= 32; shift += 32) {
        for (SOCKET k = 1; k <= HANDLES; k++)
            CHECK_EQ(winsock_route_add(k << shift | (shift ? 7 : (SOCKET)3 << 32), route), 0);
        CHECK_EQ(winsock_route_count(), HANDLES);
        CHECK_EQ(winsock_route_longest_chain(), 2);
        for (SOCKET k = 1; k <= HANDLES; k++) {
            SOCKET s = k << shift | (shift ? 7 : (SOCKET)3 << 32);
            CHECK_EQ(winsock_route_find(s, &found), 0);
            CHECK(found.provider == &winsock_providers[0]);
            winsock_route_remove(s);
        }
        CHECK_EQ(winsock_route_count(), 0);
        CHECK_EQ(winsock_route_longest_chain(), 0);
    }
}

/* What a stand-in was handed, in order (lpErrno left out; a thread id as whether there was
 * one, and then its fields). */
static uintptr_t handed[16];
static int handed_count;

static void hand(const uintptr_t *args, int n) {
    memcpy(handed, args, (size_t)n * sizeof *args);
    handed_count = n;
}
#define HAND(...) \
    hand((const uintptr_t[]){__VA_ARGS__}, \
         (int)(sizeof((const uintptr_t[]){__VA_ARGS__}) / sizeof(uintptr_t)))
#define U(x) ((uintptr_t)(x))
#define TID(t) U((t) != NULL), U((t) ? (t)->ThreadHandle : NULL), U((t) ? (t)->Reserved : 7)

#define ANY ((uintptr_t)-2) /* an argument the test cannot know (a local of the layer) */
static WSABUF handed_buf; /* the first buffer of the last send or receive */

static void check_handed(const uintptr_t *want, int n) {
    CHECK_EQ(handed_count, n);
    for (int i = 0; i < n; i++)
        if (want[i] != ANY)
            CHECK_EQ(handed[i], want[i]);
    handed_count = 0;
}
#define CHECK_HANDED(...) \
    check_handed((const uintptr_t[]){__VA_ARGS__}, \
                 (int)(sizeof((const uintptr_t[]){__VA_ARGS__}) / sizeof(uintptr_t)))

static int stand_in_duplicate(SOCKET s, DWORD pid, LPWSAPROTOCOL_INFO info, LPINT err) {
    (void)err;
    HAND(U(s), U(pid), U(info));
    return 0;
}
static BOOL stand_in_overlapped_result(SOCKET s, LPWSAOVERLAPPED ov, LPDWORD n, BOOL wait,
                                       LPDWORD flags, LPINT err) {
    (void)err;
    HAND(U(s), U(ov), U(n), U(wait), U(flags));
    return TRUE;
}
static BOOL stand_in_qos_by_name(SOCKET s, LPWSABUF name, LPQOS qos, LPINT err) {
    (void)err;
    HAND(U(s), U(name), U(qos));
    return TRUE;
}
static int stand_in_disconnect(SOCKET s, LPWSABUF data, LPINT err) {
    (void)err;
    HAND(U(s), U(data));
    return 0;
}
static int stand_in_send_to(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD sent, DWORD flags,
                            const struct sockaddr *to, int tolen, LPWSAOVERLAPPED ov,
                            LPWSAOVERLAPPED_COMPLETION_ROUTINE cr, LPWSATHREADID tid,
                            LPINT err) {
    (void)err;
    handed_buf = bufs[0];
    HAND(U(s), U(bufs), U(count), U(sent), U(flags), U(to), U(tolen), U(ov), U(cr), TID(tid));
    return 0;
}
static int stand_in_recv_from(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD got, LPDWORD flags,
                              struct sockaddr *from, LPINT fromlen, LPWSAOVERLAPPED ov,
                              LPWSAOVERLAPPED_COMPLETION_ROUTINE cr, LPWSATHREADID tid,
                              LPINT err) {
    (void)err;
    handed_buf = bufs[0];
    HAND(U(s), U(bufs), U(count), U(got), U(flags), U(from), U(fromlen), U(ov), U(cr), TID(tid));
    return 0;
}
static int stand_in_send(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD sent, DWORD flags,
                         LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr,
                         LPWSATHREADID tid, LPINT err) {
    (void)err;
    handed_buf = bufs[0];
    HAND(U(s), U(bufs), U(count), U(sent), U(flags), U(ov), U(cr), TID(tid));
    return 0;
}
static int stand_in_recv(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD got, LPDWORD flags,
                         LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr,
                         LPWSATHREADID tid, LPINT err) {
    (void)err;
    handed_buf = bufs[0];
    HAND(U(s), U(bufs), U(count), U(got), U(flags), U(ov), U(cr), TID(tid));
    return 0;
}
static SOCKET stand_in_accept(SOCKET s, struct sockaddr *addr, LPINT addrlen,
                              LPCONDITIONPROC cond, DWORD_PTR data, LPINT err) {
    HAND(U(s), U(addr), U(addrlen), U(cond), U(data));
    *err = WSAEWOULDBLOCK; /* no socket: nothing for the layer to route */
    return INVALID_SOCKET;
}
static int CALLBACK condition(LPWSABUF caller_id, LPWSABUF caller_data, LPQOS sqos,
                              LPQOS gqos, LPWSABUF callee_id, LPWSABUF callee_data, GROUP *g,
                              DWORD_PTR data) {
    (void)caller_id, (void)caller_data, (void)sqos, (void)gqos, (void)callee_id;
    (void)callee_data, (void)g, (void)data;
    return CF_ACCEPT;
}
static void CALLBACK completion(DWORD e, DWORD n, LPWSAOVERLAPPED ov, DWORD flags) {
    (void)e, (void)n, (void)ov, (void)flags;
}

/* Every call the layer passes through hands the provider its arguments in place, including
 * those WSP's own provider ignores (a second provider would read them), and a thread id
 * exactly when the call is overlapped, cleared. */
TEST(winsock_calls_hand_the_provider_their_arguments_in_place) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    WSPPROC_TABLE real = winsock_providers[0].table, *t = &winsock_providers[0].table;
    t->lpWSPDuplicateSocket = stand_in_duplicate;
    t->lpWSPGetOverlappedResult = stand_in_overlapped_result;
    t->lpWSPGetQOSByName = stand_in_qos_by_name;
    t->lpWSPSendDisconnect = stand_in_disconnect;
    t->lpWSPRecvDisconnect = stand_in_disconnect;
    t->lpWSPSendTo = stand_in_send_to;
    t->lpWSPRecvFrom = stand_in_recv_from;
    t->lpWSPSend = stand_in_send;
    t->lpWSPRecv = stand_in_recv;
    t->lpWSPAccept = stand_in_accept;
    WSAPROTOCOL_INFO info;
    WSAOVERLAPPED ov;
    DWORD n = 0, flags = 0;
    WSABUF bufs[2], data;
    QOS qos;
    SOCKADDR_IN to;
    int tolen = 11;
    CHECK_EQ(WSADuplicateSocket(s, 4321, &info), 0);
    CHECK_HANDED(U(s), 4321, U(&info));
    CHECK(WSAAccept(s, (SOCKADDR *)&to, &tolen, condition, 77) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEWOULDBLOCK);
    CHECK_HANDED(U(s), U(&to), U(&tolen), U(condition), 77);
    /* accept is WSAAccept without a condition function, and so with no data for one. */
    CHECK(accept(s, (SOCKADDR *)&to, &tolen) == INVALID_SOCKET);
    CHECK_HANDED(U(s), U(&to), U(&tolen), 0, 0);
    CHECK(WSAGetOverlappedResult(s, &ov, &n, TRUE, &flags));
    CHECK_HANDED(U(s), U(&ov), U(&n), TRUE, U(&flags));
    CHECK(WSAGetQOSByName(s, &data, &qos));
    CHECK_HANDED(U(s), U(&data), U(&qos));
    CHECK_EQ(WSASendDisconnect(s, &data), 0);
    CHECK_HANDED(U(s), U(&data));
    CHECK_EQ(WSARecvDisconnect(s, bufs), 0);
    CHECK_HANDED(U(s), U(bufs));
    CHECK_EQ(WSASendTo(s, bufs, 2, &n, 5, (SOCKADDR *)&to, 9, NULL, NULL), 0);
    CHECK_HANDED(U(s), U(bufs), 2, U(&n), 5, U(&to), 9, 0, 0, 0, 0, 7);
    CHECK_EQ(WSASendTo(s, bufs, 1, &n, 0, NULL, 0, &ov, completion), 0);
    CHECK_HANDED(U(s), U(bufs), 1, U(&n), 0, 0, 0, U(&ov), U(completion), 1, 0, 0);
    CHECK_EQ(WSARecvFrom(s, bufs, 2, &n, &flags, (SOCKADDR *)&to, &tolen, NULL, NULL), 0);
    CHECK_HANDED(U(s), U(bufs), 2, U(&n), U(&flags), U(&to), U(&tolen), 0, 0, 0, 0, 7);
    CHECK_EQ(WSARecvFrom(s, bufs, 1, &n, &flags, NULL, NULL, &ov, completion), 0);
    CHECK_HANDED(U(s), U(bufs), 1, U(&n), U(&flags), 0, 0, U(&ov), U(completion), 1, 0, 0);
    CHECK_EQ(WSASend(s, bufs, 2, &n, 3, NULL, NULL), 0);
    CHECK_HANDED(U(s), U(bufs), 2, U(&n), 3, 0, 0, 0, 0, 7);
    CHECK_EQ(WSASend(s, bufs, 1, &n, 0, &ov, completion), 0);
    CHECK_HANDED(U(s), U(bufs), 1, U(&n), 0, U(&ov), U(completion), 1, 0, 0);
    CHECK_EQ(WSARecv(s, bufs, 2, &n, &flags, NULL, NULL), 0);
    CHECK_HANDED(U(s), U(bufs), 2, U(&n), U(&flags), 0, 0, 0, 0, 7);
    CHECK_EQ(WSARecv(s, bufs, 1, &n, &flags, &ov, completion), 0);
    CHECK_HANDED(U(s), U(bufs), 1, U(&n), U(&flags), U(&ov), U(completion), 1, 0, 0);
    /* The BSD calls: one buffer of the program's, its flags, its address, no overlapped. */
    char b[8];
    CHECK_EQ(sendto(s, b, 5, 3, (SOCKADDR *)&to, 9), 0);
    CHECK_HANDED(U(s), ANY, 1, ANY, 3, U(&to), 9, 0, 0, 0, 0, 7);
    CHECK(handed_buf.buf == b && handed_buf.len == 5);
    CHECK_EQ(recvfrom(s, b, 6, 2, (SOCKADDR *)&to, &tolen), 0);
    CHECK_HANDED(U(s), ANY, 1, ANY, ANY, U(&to), U(&tolen), 0, 0, 0, 0, 7);
    CHECK(handed_buf.buf == b && handed_buf.len == 6);
    CHECK_EQ(send(s, b, 7, 1), 0);
    CHECK_HANDED(U(s), ANY, 1, ANY, 1, 0, 0, 0, 0, 7);
    CHECK(handed_buf.buf == b && handed_buf.len == 7);
    CHECK_EQ(recv(s, b, 8, 2), 0);
    CHECK_HANDED(U(s), ANY, 1, ANY, ANY, 0, 0, 0, 0, 7);
    CHECK(handed_buf.buf == b && handed_buf.len == 8);
    winsock_providers[0].table = real;
    WSASetLastError(0);
    CHECK(!WSAGetQOSByName(s, &data, &qos)); /* WSP's own: not offered, and says so */
    CHECK_EQ(WSAGetLastError(), WSAEOPNOTSUPP);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* A provider whose select fails after it emptied its sets, as one part-way through could. */
static int stand_in_select_fails(int nfds, WSPFD_SET *r, WSPFD_SET *w, WSPFD_SET *e,
                                 const struct timeval *timeout, LPINT err) {
    (void)nfds, (void)timeout;
    WSPFD_SET *sets[3] = {r, w, e};
    for (int i = 0; i < 3; i++)
        if (sets[i])
            sets[i]->fd_count = 0;
    *err = WSAENETDOWN;
    return SOCKET_ERROR;
}

/* select writes the program's sets back only when the call worked: a failed one leaves them
 * as they were, whatever the provider left in its own. */
TEST(winsock_select_that_fails_leaves_the_sets) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    WSPPROC_TABLE real = winsock_providers[0].table;
    winsock_providers[0].table.lpWSPSelect = stand_in_select_fails;
    fd_set x, y;
    FD_ZERO(&x);
    FD_SET(s, &x);
    FD_ZERO(&y);
    FD_SET(s, &y);
    CHECK_EQ(select(0, &x, NULL, &y, NULL), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENETDOWN);
    winsock_providers[0].table = real;
    CHECK_EQ(x.fd_count, 1);
    CHECK(x.fd_array[0] == s);
    CHECK_EQ(y.fd_count, 1);
    CHECK(y.fd_array[0] == s);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* ioctlsocket writes its argument back only when the call worked: a failed one leaves all of
 * the program's unsigned long as it was, bits past the SPI's 32 included. */
TEST(winsock_ioctlsocket_that_fails_leaves_the_argument) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    u_long arg = (u_long)-1 - 0x10;
    CHECK_EQ(ioctlsocket(s, 0x7654321, &arg), SOCKET_ERROR); /* no such command */
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    CHECK_EQ(arg, (u_long)-1 - 0x10);
    CHECK_EQ(ioctlsocket((SOCKET)4242, FIONREAD, &arg), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(arg, (u_long)-1 - 0x10);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* An address conversion whose catalog read runs out of memory fails with WSAENOBUFS, not as
 * a family no provider takes. */
TEST(winsock_address_conversion_without_memory_is_wsaenobufs) {
    startup();
    SOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    char text[64];
    DWORD textlen = sizeof text;
    FAULT(malloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&a, sizeof a, NULL, text, &textlen), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&a, sizeof a, NULL, text, &textlen), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* An accept that fails makes no route: the error is the provider's and the table is as it
 * was. */
TEST(winsock_accept_that_fails_routes_nothing) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(winsock_route_count(), 1);
    CHECK(accept(s, NULL, NULL) == INVALID_SOCKET); /* not listening */
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    CHECK_EQ(winsock_route_count(), 1);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(winsock_route_count(), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* The copy of a provider's catalog cannot be allocated (the second allocation of a catalog
 * read, after the layer's own list): WSAENOBUFS, and the next read works. */
TEST(winsock_enum_protocols_without_memory_for_a_providers_entries_is_wsaenobufs) {
    startup();
    WSAPROTOCOL_INFO info[4];
    DWORD len = sizeof info;
    FAULT(malloc, .nth = 2, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    len = sizeof info;
    CHECK_EQ(WSAEnumProtocols(NULL, info, &len), 4);
    CHECK_EQ(WSACleanup(), 0);
}

/* A program may use the provider directly and through Winsock at once: the last WSACleanup
 * then closes the sockets made through Winsock itself, though the provider, still started
 * for the other use, does not close them in its own cleanup. */
TEST(winsock_last_cleanup_closes_its_sockets_while_the_provider_stays_started) {
    WSPDATA data;
    WSPUPCALLTABLE upcalls;
    WSPPROC_TABLE direct;
    memset(&upcalls, 0, sizeof upcalls);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, upcalls, &direct), 0);
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(WSACleanup(), 0);
    int err = 0;
    CHECK_EQ(direct.lpWSPCloseSocket(s, &err), SOCKET_ERROR); /* closed already */
    CHECK_EQ(err, WSAENOTSOCK);
    CHECK_EQ(direct.lpWSPCleanup(&err), 0);
}

/* WSAStartup fills the whole WSADATA: what Winsock 2 leaves unused (iMaxSockets, iMaxUdpDg,
 * lpVendorInfo) is zero, not whatever the program's memory held. */
TEST(winsock_startup_clears_the_wsadata_it_fills) {
    WSADATA d;
    memset(&d, 0x5a, sizeof d);
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    CHECK_EQ(d.iMaxSockets, 0);
    CHECK_EQ(d.iMaxUdpDg, 0);
    CHECK(d.lpVendorInfo == NULL);
    CHECK_EQ(WSACleanup(), 0);
}

/* AF_UNSPEC names no family a provider takes: an address conversion for it is WSAEINVAL, as
 * for any family no entry offers (it is not "any family", as it is for socket()). */
TEST(winsock_address_conversion_for_an_unspecified_family_is_wsaeinval) {
    startup();
    SOCKADDR_STORAGE ss;
    int sslen = sizeof ss;
    CHECK_EQ(WSAStringToAddress("127.0.0.1:1", AF_UNSPEC, NULL, (SOCKADDR *)&ss, &sslen),
             SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    memset(&ss, 0, sizeof ss);
    char text[64];
    DWORD textlen = sizeof text;
    CHECK_EQ(WSAAddressToString((SOCKADDR *)&ss, sizeof ss, NULL, text, &textlen), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEINVAL);
    CHECK_EQ(WSACleanup(), 0);
}

/* getpeername names the other end, its length written back: the client's peer is the
 * listener's address, the accepted socket's is the client's own; a socket not connected has
 * none (SOCKET_ERROR, WSAENOTCONN as the thread's last error). */
TEST(winsock_getpeername_names_the_other_end) {
    startup();
    SOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SOCKET l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l != INVALID_SOCKET);
    CHECK_EQ(bind(l, (SOCKADDR *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 1), 0);
    int len = sizeof a;
    CHECK_EQ(getsockname(l, (SOCKADDR *)&a, &len), 0);
    SOCKET c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c != INVALID_SOCKET);
    SOCKADDR_STORAGE big;
    int biglen = sizeof big;
    WSASetLastError(0);
    CHECK_EQ(getpeername(c, (SOCKADDR *)&big, &biglen), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTCONN);
    CHECK_EQ(connect(c, (SOCKADDR *)&a, sizeof a), 0);
    SOCKET s = accept(l, NULL, NULL);
    CHECK(s != INVALID_SOCKET);
    SOCKADDR_IN mine, peer;
    len = sizeof mine;
    CHECK_EQ(getsockname(c, (SOCKADDR *)&mine, &len), 0);
    memset(&big, 0x5a, sizeof big);
    biglen = sizeof big;
    CHECK_EQ(getpeername(c, (SOCKADDR *)&big, &biglen), 0);
    CHECK_EQ(biglen, (int)sizeof(SOCKADDR_IN));
    memcpy(&peer, &big, sizeof peer);
    CHECK_EQ(peer.sin_family, AF_INET);
    CHECK_EQ(peer.sin_port, a.sin_port);
    CHECK_EQ(peer.sin_addr.s_addr, a.sin_addr.s_addr);
    memset(&big, 0x5a, sizeof big);
    biglen = sizeof big;
    CHECK_EQ(getpeername(s, (SOCKADDR *)&big, &biglen), 0);
    CHECK_EQ(biglen, (int)sizeof(SOCKADDR_IN));
    memcpy(&peer, &big, sizeof peer);
    CHECK_EQ(peer.sin_family, AF_INET);
    CHECK_EQ(peer.sin_port, mine.sin_port);
    CHECK_EQ(peer.sin_addr.s_addr, mine.sin_addr.s_addr);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* accept fills the caller's address and its length (ws2_accept hands both on in place). */
TEST(winsock_accept_reports_the_peers_address) {
    startup();
    SOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SOCKET l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l != INVALID_SOCKET);
    CHECK_EQ(bind(l, (SOCKADDR *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 1), 0);
    int len = sizeof a;
    CHECK_EQ(getsockname(l, (SOCKADDR *)&a, &len), 0);
    SOCKET c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c != INVALID_SOCKET);
    CHECK_EQ(connect(c, (SOCKADDR *)&a, sizeof a), 0);
    SOCKADDR_IN mine, peer;
    len = sizeof mine;
    CHECK_EQ(getsockname(c, (SOCKADDR *)&mine, &len), 0);
    SOCKADDR_STORAGE big;
    memset(&big, 0x5a, sizeof big);
    int peerlen = sizeof big;
    SOCKET s = accept(l, (SOCKADDR *)&big, &peerlen);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(peerlen, (int)sizeof(SOCKADDR_IN));
    memcpy(&peer, &big, sizeof peer);
    CHECK_EQ(peer.sin_family, AF_INET);
    CHECK_EQ(peer.sin_port, mine.sin_port);
    CHECK_EQ(peer.sin_addr.s_addr, mine.sin_addr.s_addr);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* A handle its provider no longer knows (closed behind the layer's back) is WSAENOTSOCK to
 * closesocket, which then forgets its route as well. */
TEST(winsock_closesocket_of_a_handle_the_provider_forgot_forgets_the_route) {
    startup();
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    int err = 0;
    CHECK_EQ(winsock_providers[0].table.lpWSPCloseSocket(s, &err), 0);
    CHECK_EQ(winsock_route_count(), 1);
    CHECK_EQ(closesocket(s), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(winsock_route_count(), 0);
    CHECK_EQ(WSACleanup(), 0);
}
