/* WSPStartup and lpWSPCleanup: version negotiation, reference counting, the table, the
 * catalog (WSPEnumProtocols) and handles that name no socket. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"
#include "upcalls.h"
#include "support.h"

static WSPUPCALLTABLE no_upcalls(void) {
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    return up;
}

TEST(startup_rejects_version_1_1) {
    WSPDATA d;
    WSPPROC_TABLE t;
    CHECK_EQ(WSPStartup(MAKEWORD(1, 1), &d, NULL, no_upcalls(), &t), WSAVERNOTSUPPORTED);
    /* Nothing was started: a call through an earlier table would have no provider. */
    start();
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(T.lpWSPCleanup(&err), SOCKET_ERROR);
    CHECK_EQ(err, WSANOTINITIALISED);
}

TEST(startup_negotiates_2_0_and_caps_3_0_at_2_2) {
    WSPDATA d;
    WSPPROC_TABLE t;
    memset(&d, 0xff, sizeof d);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 0), &d, NULL, no_upcalls(), &t), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(2, 0));
    CHECK_EQ(d.wHighVersion, MAKEWORD(2, 2));
    CHECK(strlen(d.szDescription) > 0 && strlen(d.szDescription) <= WSPDESCRIPTION_LEN);
    memset(&d, 0xff, sizeof d);
    CHECK_EQ(WSPStartup(MAKEWORD(3, 0), &d, NULL, no_upcalls(), &t), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(2, 2));
    CHECK_EQ(d.wHighVersion, MAKEWORD(2, 2));
    memset(&d, 0xff, sizeof d);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 1), &d, NULL, no_upcalls(), &t), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(2, 1));
    int err = 0;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(t.lpWSPCleanup(&err), 0);
}

TEST(startup_rejects_null_arguments) {
    WSPDATA d;
    WSPPROC_TABLE t;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), NULL, NULL, no_upcalls(), &t), WSAEFAULT);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, NULL, no_upcalls(), NULL), WSAEFAULT);
}

/* Each WSPStartup publishes its upcall table; the same table again keeps the copy in force
 * (copies are freed only by the last cleanup, so one per call would grow without bound). */
TEST(startup_with_the_same_upcalls_keeps_the_copy_in_force) {
    start();
    const WSPUPCALLTABLE *first = wsp_upcalls();
    start();
    start();
    CHECK(wsp_upcalls() == first);
}

TEST(startup_is_reference_counted) {
    start();
    start();
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    /* One start-up is still in force: sockets work end to end. */
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    send_all(c, "ping", 4);
    char buf[4];
    recv_exact(a, buf, 4);
    CHECK_MEM(buf, "ping", 4);
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    /* After the last cleanup every call fails with WSANOTINITIALISED. */
    err = 0;
    CHECK(T.lpWSPSocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSANOTINITIALISED);
    err = 0;
    CHECK_EQ(T.lpWSPCloseSocket(c, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSANOTINITIALISED);
    err = 0;
    CHECK(T.lpWSPAccept(l, NULL, NULL, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSANOTINITIALISED);
    err = 0;
    CHECK_EQ(T.lpWSPListen(l, 1, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSANOTINITIALISED);
    err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), SOCKET_ERROR);
    CHECK_EQ(err, WSANOTINITIALISED);
    /* And the provider starts again afterwards. */
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    close_socket(s);
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
}

/* The last cleanup joins the event thread it stopped: start-ups and cleanups in a row keep
 * one thread's memory, not one stack per cycle (a thread never joined keeps its stack). */
TEST(startups_and_cleanups_in_a_row_keep_one_event_threads_memory) {
    long stack_kb = default_stack_kb(); /* what a new thread gets */
    int err = 0;
    start(); /* the first thread's memory, and whatever else a first start-up makes */
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    long before = vm_kb();
    for (int i = 0; i < 8; i++) {
        start();
        CHECK_EQ(T.lpWSPCleanup(&err), 0);
    }
    long grown = vm_kb() - before;
    CHECK(grown < stack_kb); /* a stack per cycle would be eight of them */
}

/* The last cleanup stops the reactor however many start-ups came before it: nothing the
 * provider opened stays open (its thread, epoll, wake-up and timer descriptors used to). */
TEST(last_cleanup_after_several_startups_closes_every_descriptor) {
    int before = open_fds();
    start();
    start();
    start();
    int err = 0;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(open_fds(), before);
}

static int race_failures;
static void *startup_cycler(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        WSPDATA d;
        WSPPROC_TABLE t;
        CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, NULL, no_upcalls(), &t), 0);
        /* This thread holds a start-up: the provider must be usable now, whatever the other
         * thread's cleanup is doing. */
        int err = 0;
        SOCKET s = t.lpWSPSocket(AF_INET, SOCK_STREAM, 0, NULL, 0, 0, &err);
        if (s == INVALID_SOCKET)
            __atomic_add_fetch(&race_failures, 1, __ATOMIC_SEQ_CST);
        else
            CHECK_EQ(t.lpWSPCloseSocket(s, &err), 0);
        CHECK_EQ(t.lpWSPCleanup(&err), 0);
    }
    return NULL;
}

TEST(startup_racing_the_last_cleanup_stays_started) {
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, startup_cycler, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(race_failures, 0);
}

/* Start-ups and cleanups from several threads at once, the count often coming back to 0:
 * every call succeeds, exactly as many cleanups as start-ups are accepted (none is lost to a
 * race on the count), and one reactor at a time means nothing is left open at the end. */
static atomic_int cycle_failures;
static void *bare_cycler(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        WSPDATA d;
        WSPPROC_TABLE t;
        int err = 0;
        if (WSPStartup(MAKEWORD(2, 2), &d, NULL, no_upcalls(), &t) != 0)
            atomic_fetch_add(&cycle_failures, 1);
        else if (t.lpWSPCleanup(&err) != 0)
            atomic_fetch_add(&cycle_failures, 1);
    }
    return NULL;
}

TEST(startups_and_cleanups_from_several_threads_keep_count) {
    int before = open_fds();
    enum { THREADS = 4 };
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, bare_cycler, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    CHECK_EQ(atomic_load(&cycle_failures), 0);
    /* The count is back to 0: one start-up, one cleanup, and the next is refused. */
    WSPDATA d;
    WSPPROC_TABLE t;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, NULL, no_upcalls(), &t), 0);
    int err = 0;
    CHECK_EQ(t.lpWSPCleanup(&err), 0);
    CHECK_EQ(t.lpWSPCleanup(&err), SOCKET_ERROR);
    CHECK_EQ(err, WSANOTINITIALISED);
    CHECK_EQ(open_fds(), before);
}

static int unimplemented_is_eopnotsupp(void) {
    int err = 0;
    CHECK_EQ(T.lpWSPCancelBlockingCall(&err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    WSAPROTOCOL_INFO info;
    err = 0;
    CHECK_EQ(T.lpWSPDuplicateSocket(s, 1, &info, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    WSAOVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    DWORD n = 0, flags = 0;
    err = 0;
    CHECK_EQ(T.lpWSPGetOverlappedResult(s, &ov, &n, FALSE, &flags, &err), FALSE);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    QOS q;
    WSABUF name = {0, NULL};
    err = 0;
    CHECK_EQ(T.lpWSPGetQOSByName(s, &name, &q, &err), FALSE);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(1),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    err = 0;
    CHECK(T.lpWSPJoinLeaf(s, (struct sockaddr *)&sin, sizeof sin, NULL, NULL, NULL, NULL, 0,
                          &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    WSABUF data = {0, NULL};
    err = 0;
    CHECK_EQ(T.lpWSPRecvDisconnect(s, &data, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    CHECK_EQ(T.lpWSPSendDisconnect(s, &data, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    /* Overlapped I/O is not offered either. */
    char b[4];
    WSABUF wb = {sizeof b, b};
    err = 0;
    CHECK_EQ(T.lpWSPRecv(s, &wb, 1, &n, &flags, &ov, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    close_socket(s);
    return 1;
}

TEST(startup_fills_all_thirty_members) {
    start();
    void *members[30];
    CHECK_EQ(sizeof T, sizeof members);
    memcpy(members, &T, sizeof members);
    for (int i = 0; i < 30; i++)
        CHECK(members[i] != NULL);
    CHECK(unimplemented_is_eopnotsupp());
}

TEST(enum_protocols_reports_four_entries) {
    DWORD len = 0;
    int err = 0;
    CHECK_EQ(WSPEnumProtocols(NULL, NULL, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(len, 4 * sizeof(WSAPROTOCOL_INFO));
    len = 100 * sizeof(WSAPROTOCOL_INFO); /* no buffer, whatever the length: a size query */
    err = 0;
    CHECK_EQ(WSPEnumProtocols(NULL, NULL, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(len, 4 * sizeof(WSAPROTOCOL_INFO));
    WSAPROTOCOL_INFO info[4];
    DWORD small = sizeof info[0] * 3;
    err = 0;
    CHECK_EQ(WSPEnumProtocols(NULL, info, &small, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(small, sizeof info);
    len = sizeof info;
    CHECK_EQ(WSPEnumProtocols(NULL, info, &len, &err), 4);
    int seen = 0;
    for (int i = 0; i < 4; i++) {
        DWORD id = info[i].dwCatalogEntryId;
        int cdata = id == WSP_CATALOG_CDATA_IPV4 || id == WSP_CATALOG_CDATA_IPV6;
        int six = id == WSP_CATALOG_TCP_IPV6 || id == WSP_CATALOG_CDATA_IPV6;
        CHECK(id >= WSP_CATALOG_TCP_IPV4 && id <= WSP_CATALOG_CDATA_IPV6);
        seen |= 1 << (id - WSP_CATALOG_TCP_IPV4);
        DWORD special = info[i].dwServiceFlags1 & (XP1_CONNECT_DATA | XP1_QOS_SUPPORTED);
        CHECK_EQ(special, cdata ? (XP1_CONNECT_DATA | XP1_QOS_SUPPORTED) : 0);
        /* Exactly these: a stream that is reliable, ordered, closes gracefully, carries
         * urgent data, and whose handles are file descriptors. */
        CHECK_EQ(info[i].dwServiceFlags1,
                 XP1_GUARANTEED_DELIVERY | XP1_GUARANTEED_ORDER | XP1_GRACEFUL_CLOSE |
                     XP1_EXPEDITED_DATA | XP1_IFS_HANDLES | special);
        CHECK_EQ(info[i].dwServiceFlags2, 0);
        CHECK_EQ(info[i].dwServiceFlags3, 0);
        CHECK_EQ(info[i].dwServiceFlags4, 0);
        CHECK_EQ(info[i].iNetworkByteOrder, BIGENDIAN);
        CHECK_EQ(info[i].iSecurityScheme, SECURITY_PROTOCOL_NONE);
        CHECK_EQ(info[i].dwMessageSize, 0);
        CHECK_EQ(info[i].iAddressFamily, six ? AF_INET6 : AF_INET);
        CHECK_EQ(info[i].iSocketType, SOCK_STREAM);
        CHECK_EQ(info[i].iProtocol, IPPROTO_TCP);
        CHECK_EQ(info[i].ProtocolChain.ChainLen, BASE_PROTOCOL);
        int addr_size = six ? (int)sizeof(struct sockaddr_in6) : (int)sizeof(struct sockaddr_in);
        CHECK_EQ(info[i].iMaxSockAddr, addr_size);
        CHECK_EQ(info[i].iMinSockAddr, addr_size);
        CHECK_EQ(info[i].iVersion, 2);
        CHECK_EQ(info[i].dwProviderFlags,
                 PFL_MULTIPLE_PROTO_ENTRIES | (cdata ? 0 : PFL_RECOMMENDED_PROTO_ENTRY));
        char name[64];
        snprintf(name, sizeof name, "WSP TCP/%s%s", six ? "IPv6" : "IPv4",
                 cdata ? " with connect data" : "");
        CHECK_EQ(strcmp(info[i].szProtocol, name), 0);
        /* The provider's identity, {57535000-0000-4000-8000-000000000001}, the same in every
         * entry: changing it would make it another provider to whoever installed this one. */
        const GUID id_of_wsp = {0x57535000, 0x0000, 0x4000, {0x80, 0, 0, 0, 0, 0, 0, 0x01}};
        CHECK_MEM(&info[i].ProviderId, &id_of_wsp, sizeof id_of_wsp);
    }
    CHECK_EQ(seen, 0xf);
    /* Selecting UDP only matches nothing; TCP matches all. */
    int udp[] = {IPPROTO_UDP, 0}, tcp[] = {IPPROTO_TCP, 0};
    len = sizeof info;
    memset(info, 0x5a, sizeof info);
    CHECK_EQ(WSPEnumProtocols(udp, info, &len, &err), 0);
    CHECK_EQ(len, 0);
    for (size_t i = 0; i < sizeof info; i++) /* no entry written for a selection of none */
        CHECK_EQ(((const unsigned char *)info)[i], 0x5a);
    len = sizeof info;
    CHECK_EQ(WSPEnumProtocols(tcp, info, &len, &err), 4);
    err = 0;
    CHECK_EQ(WSPEnumProtocols(NULL, info, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
}

TEST(socket_without_protocol_info_is_plain_tcp) {
    start();
    int err = 0;
    SOCKET s = T.lpWSPSocket(AF_INET, SOCK_STREAM, 0, NULL, 0, 0, &err);
    CHECK(s != INVALID_SOCKET);
    /* Plain TCP: caller data is refused with WSAEPROTONOSUPPORT before anything is sent. */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    WSABUF caller = {3, "abc"};
    err = 0;
    CHECK_EQ(T.lpWSPConnect(s, (struct sockaddr *)&sin, sizeof sin, &caller, NULL, NULL, NULL,
                            &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEPROTONOSUPPORT);
    close_socket(s);
    s = T.lpWSPSocket(AF_INET6, SOCK_STREAM, IPPROTO_TCP, NULL, 0, 0, &err);
    CHECK(s != INVALID_SOCKET);
    /* An IPv6 socket: it takes an IPv6 address, and an IPv4 one is the wrong family. */
    err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&sin, sizeof sin, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT); /* shorter than an IPv6 address */
    struct sockaddr_in6 six = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&six, sizeof six, &err), 0);
    close_socket(s);
    err = 0;
    CHECK(T.lpWSPSocket(AF_INET, SOCK_DGRAM, 0, NULL, 0, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAESOCKTNOSUPPORT);
    err = 0;
    CHECK(T.lpWSPSocket(AF_UNIX, SOCK_STREAM, 0, NULL, 0, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEAFNOSUPPORT);
    err = 0;
    CHECK(T.lpWSPSocket(AF_INET, SOCK_STREAM, IPPROTO_UDP, NULL, 0, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEPROTONOSUPPORT);
    err = 0; /* a negative protocol is neither "any" (0) nor TCP */
    CHECK(T.lpWSPSocket(AF_INET, SOCK_STREAM, -1, NULL, 0, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEPROTONOSUPPORT);
    WSAPROTOCOL_INFO bogus;
    memset(&bogus, 0, sizeof bogus);
    bogus.dwCatalogEntryId = 4242;
    err = 0;
    CHECK(T.lpWSPSocket(0, 0, 0, &bogus, 0, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEINVAL);
}

TEST(stale_and_garbage_handles_are_not_sockets) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    close_socket(s);
    SOCKET bad[] = {s, 0, (SOCKET)0x7fffff, (SOCKET)12345678, INVALID_SOCKET};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        SOCKET h = bad[i];
        int err = 0;
        CHECK_EQ(T.lpWSPCloseSocket(h, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        err = 0;
        CHECK_EQ(T.lpWSPListen(h, 1, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        err = 0;
        CHECK(T.lpWSPAccept(h, NULL, NULL, NULL, 0, &err) == INVALID_SOCKET);
        CHECK_EQ(err, WSAENOTSOCK);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        err = 0;
        CHECK_EQ(T.lpWSPConnect(h, (struct sockaddr *)&sin, sizeof sin, NULL, NULL, NULL, NULL,
                                &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        err = 0;
        CHECK_EQ(T.lpWSPBind(h, (struct sockaddr *)&sin, sizeof sin, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        char b[4];
        WSABUF wb = {sizeof b, b};
        DWORD n = 0, flags = 0;
        err = 0;
        CHECK_EQ(T.lpWSPRecv(h, &wb, 1, &n, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        err = 0;
        CHECK_EQ(T.lpWSPSend(h, &wb, 1, &n, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        int v = 0, len = sizeof v;
        err = 0;
        CHECK_EQ(T.lpWSPGetSockOpt(h, SOL_SOCKET, SO_TYPE, (char *)&v, &len, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        err = 0;
        CHECK_EQ(T.lpWSPSetSockOpt(h, SOL_SOCKET, SO_KEEPALIVE, (char *)&v, sizeof v, &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        DWORD on = 1, ret = 0;
        err = 0;
        CHECK_EQ(T.lpWSPIoctl(h, WSP_FIONBIO, &on, sizeof on, NULL, 0, &ret, NULL, NULL, NULL,
                              &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        err = 0;
        CHECK_EQ(T.lpWSPShutdown(h, SD_BOTH, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        len = sizeof sin;
        err = 0;
        CHECK_EQ(T.lpWSPGetSockName(h, (struct sockaddr *)&sin, &len, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
    }
    /* A new socket may reuse the slot, but the old handle still names nothing. */
    SOCKET s2 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK(s2 != s);
    int err = 0;
    CHECK_EQ(T.lpWSPCloseSocket(s, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    close_socket(s2);
}

TEST(startup_with_protocol_info_checks_the_catalog) {
    WSPDATA d;
    WSPPROC_TABLE t;
    WSAPROTOCOL_INFO info;
    memset(&info, 0, sizeof info);
    info.dwCatalogEntryId = 999;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, &info, no_upcalls(), &t), WSAEINVAL);
    info.dwCatalogEntryId = WSP_CATALOG_CDATA_IPV6;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, &info, no_upcalls(), &t), 0);
    int err = 0;
    CHECK_EQ(t.lpWSPCleanup(&err), 0);
}

TEST(error_names_and_meanings) {
    CHECK_EQ(strcmp(WSPErrorName(WSAECONNREFUSED), "WSAECONNREFUSED"), 0);
    CHECK_EQ(strcmp(WSPErrorName(WSATRY_AGAIN), "WSATRY_AGAIN"), 0);
    CHECK_EQ(strcmp(WSPErrorName(WSANOTINITIALISED), "WSANOTINITIALISED"), 0);
    CHECK_EQ(strcmp(WSPErrorName(0), "NO_ERROR"), 0);
    CHECK_EQ(strcmp(WSPErrorName(4242), "WSA_UNKNOWN"), 0);
    CHECK_EQ(strcmp(WSPErrorString(4242), "unknown error"), 0);
    CHECK(strlen(WSPErrorString(WSAECONNABORTED)) > 10);
    /* The numbers SEMANTICS.md lists. */
    CHECK_EQ(WSAECONNREFUSED, 10061);
    CHECK_EQ(WSAETIMEDOUT, 10060);
    CHECK_EQ(WSATRY_AGAIN, 11002);
    CHECK_EQ(WSAEWOULDBLOCK, 10035);
    CHECK_EQ(WSAENOTSOCK, 10038);
}

#define MANY_SOCKETS 2500 /* more than two chunks of the handle table */

TEST(handles_stay_distinct_across_thousands_of_sockets) {
    start();
    static SOCKET s[MANY_SOCKETS];
    int before = open_fds();
    for (int i = 0; i < MANY_SOCKETS; i++) {
        s[i] = new_socket(WSP_CATALOG_TCP_IPV4);
        CHECK(s[i] != 0 && s[i] != INVALID_SOCKET);
    }
    CHECK_EQ(open_fds(), before + MANY_SOCKETS);
    /* Close every other one; their handles die, the rest still work. */
    for (int i = 0; i < MANY_SOCKETS; i += 2)
        close_socket(s[i]);
    for (int i = 0; i < MANY_SOCKETS; i++) {
        int v = 0, len = sizeof v, err = 0;
        int rc = T.lpWSPGetSockOpt(s[i], SOL_SOCKET, SO_TYPE, (char *)&v, &len, &err);
        if (i % 2 == 0) {
            CHECK_EQ(rc, SOCKET_ERROR);
            CHECK_EQ(err, WSAENOTSOCK);
        } else {
            CHECK_EQ(rc, 0);
        }
    }
    /* New sockets reuse the slots under new handles. */
    for (int i = 0; i < MANY_SOCKETS; i += 2) {
        SOCKET n = new_socket(WSP_CATALOG_TCP_IPV4);
        for (int j = 0; j < MANY_SOCKETS; j += 2)
            if (n == s[j])
                CHECK(0);
        s[i] = n;
    }
    for (int i = 0; i < MANY_SOCKETS; i++)
        close_socket(s[i]);
    CHECK_EQ(open_fds(), before);
}

TEST(handles_from_before_the_last_cleanup_are_dead_after_a_restart) {
    start();
    int before = open_fds();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    start();
    SOCKET fresh = new_socket(WSP_CATALOG_TCP_IPV4);
    int v = 0, len = sizeof v;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_TYPE, (char *)&v, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    err = 0;
    CHECK_EQ(T.lpWSPCloseSocket(l, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    close_socket(fresh);
    /* The listener's port is free again: cleanup closed what was left open. */
    WAIT_FOR(open_fds() == before, 10000);
    SOCKET again = new_socket(WSP_CATALOG_CDATA_IPV4);
    CHECK_EQ(T.lpWSPBind(again, (struct sockaddr *)&addr, sizeof(struct sockaddr_in), &err), 0);
}

/* A later start-up's upcall table replaces the earlier one while the reactor may be calling
 * it; the provider must publish the new table without a torn read (ThreadSanitizer checks). */
static atomic_int counted_sets;
static BOOL counting_set_event(WSAEVENT ev, LPINT err) {
    atomic_fetch_add(&counted_sets, 1);
    if (!WSASetEvent(ev)) {
        *err = WSAGetLastError();
        return FALSE;
    }
    return TRUE;
}

struct pinger {
    SOCKET c;
    atomic_int stop;
};

static void *ping(void *arg) {
    struct pinger *p = arg;
    char byte = 'x';
    WSABUF b = {1, &byte};
    DWORD n = 0;
    int err = 0;
    while (!atomic_load(&p->stop)) {
        T.lpWSPSend(p->c, &b, 1, &n, 0, NULL, NULL, NULL, &err);
        sleep_ms(1);
    }
    return NULL;
}

TEST(startup_replaces_the_upcall_table_while_events_fire) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    int err = 0;
    SOCKET a = T.lpWSPAccept(l, NULL, NULL, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    WSAEVENT ev = WSACreateEvent();
    CHECK_EQ(T.lpWSPEventSelect(a, ev, FD_READ, &err), 0);
    struct pinger p = {.c = c};
    pthread_t t;
    pthread_create(&t, NULL, ping, &p);
    WSPUPCALLTABLE counting;
    memset(&counting, 0, sizeof counting);
    counting.lpWPUSetEvent = counting_set_event;
    WSPDATA data;
    WSPPROC_TABLE table;
    char buf[64];
    for (int i = 0; i < 200; i++) {
        WSPUPCALLTABLE up = no_upcalls();
        CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, i % 2 ? up : counting, &table), 0);
        CHECK_EQ(table.lpWSPCleanup(&err), 0); /* start() keeps the provider running */
        WSABUF b = {sizeof buf, buf};
        DWORD n = 0, flags = 0;
        T.lpWSPRecv(a, &b, 1, &n, &flags, NULL, NULL, NULL, &err); /* re-enables FD_READ */
        WSANETWORKEVENTS ne;
        T.lpWSPEnumNetworkEvents(a, ev, &ne, &err);
    }
    /* The last table installed counts: the next event goes through it. */
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, counting, &table), 0);
    int before = atomic_load(&counted_sets);
    long long deadline = now_ms() + 10000;
    while (atomic_load(&counted_sets) == before && now_ms() < deadline) {
        WSABUF b = {sizeof buf, buf};
        DWORD n = 0, flags = 0;
        T.lpWSPRecv(a, &b, 1, &n, &flags, NULL, NULL, NULL, &err);
        sleep_ms(2);
    }
    CHECK(atomic_load(&counted_sets) > before);
    atomic_store(&p.stop, 1);
    pthread_join(t, NULL);
    CHECK_EQ(table.lpWSPCleanup(&err), 0);
    WSACloseEvent(ev);
}

/* Out of descriptors, lpWSPSocket fails with WSAEMFILE, leaks nothing, and works again once
 * descriptors are free. */
TEST(socket_creation_out_of_descriptors_is_wsaemfile) {
    start();
    SOCKET keep = new_socket(WSP_CATALOG_TCP_IPV4); /* the provider's own threads are up */
    struct rlimit old;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    int before = open_fds();
    struct rlimit low = {(rlim_t)before + 16, old.rlim_max};
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    static int hog[32];
    int hogs = 0;
    for (;;) {
        int fd = dup(0);
        if (fd < 0) {
            CHECK_EQ(errno, EMFILE);
            break;
        }
        CHECK(hogs < 32);
        hog[hogs++] = fd;
    }
    DWORD cats[] = {WSP_CATALOG_TCP_IPV4, WSP_CATALOG_CDATA_IPV6};
    for (int i = 0; i < 2; i++) {
        WSAPROTOCOL_INFO info;
        memset(&info, 0, sizeof info);
        info.dwCatalogEntryId = cats[i];
        int err = 0;
        CHECK(T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err) == INVALID_SOCKET);
        CHECK_EQ(err, WSAEMFILE);
    }
    for (int i = 0; i < hogs; i++)
        close(hog[i]);
    CHECK_EQ(open_fds(), before);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    close_socket(s);
    close_socket(keep);
}

/* Socket groups are not offered: a group other than 0 is WSAEINVAL, and no socket is made. */
TEST(socket_with_a_group_is_refused) {
    start();
    int before = open_fds(), err = 0;
    CHECK(T.lpWSPSocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 1, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(open_fds(), before);
}

/* The upcall table of the latest start-up is the one in force, whichever of two tables came
 * first: each start-up here brings its own WPUPostMessage, and an async selection's message
 * goes to the later one's. */
static atomic_int posted_by[2];
static BOOL post_first(HWND h, UINT m, WPARAM w, LPARAM l) {
    (void)h, (void)m, (void)w, (void)l;
    atomic_fetch_add(&posted_by[0], 1);
    return TRUE;
}
static BOOL post_second(HWND h, UINT m, WPARAM w, LPARAM l) {
    (void)h, (void)m, (void)w, (void)l;
    atomic_fetch_add(&posted_by[1], 1);
    return TRUE;
}

static void start_posting_with(int which) {
    WSPUPCALLTABLE up = no_upcalls();
    up.lpWPUPostMessage = which ? post_second : post_first;
    WSPDATA data;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
}

TEST(startup_the_latest_upcall_table_is_the_one_in_force) {
    for (int later = 0; later < 2; later++) {
        start_posting_with(!later);
        start_posting_with(later);
        struct sockaddr_storage addr;
        SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
        SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
        CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
        int err = 0;
        SOCKET a = T.lpWSPAccept(l, NULL, NULL, NULL, 0, &err);
        CHECK(a != INVALID_SOCKET);
        CHECK_EQ(T.lpWSPAsyncSelect(a, (HWND)(uintptr_t)0x1234, 0x401, FD_READ, &err), 0);
        send_all(c, "x", 1);
        WAIT_FOR(atomic_load(&posted_by[later]) == 1, 10000);
        CHECK_EQ(atomic_load(&posted_by[!later]), 0);
        CHECK_EQ(T.lpWSPCleanup(&err), 0);
        CHECK_EQ(T.lpWSPCleanup(&err), 0);
        atomic_store(&posted_by[later], 0);
    }
}

static int post_nothing(HWND h, UINT msg, WPARAM w, LPARAM l) {
    (void)h, (void)msg, (void)w, (void)l;
    return TRUE;
}

/* Each start-up with a different table retires the copy it replaces; the last cleanup frees
 * every one of them, however many (not only the latest). */
TEST(last_cleanup_frees_every_retired_upcall_table) {
    WSPUPCALLTABLE plain = no_upcalls(), posting = no_upcalls();
    posting.lpWPUPostMessage = post_nothing;
    WSPDATA d;
    WSPPROC_TABLE t;
    int err = 0;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, NULL, plain, &t), 0);
    CHECK_EQ(wsp_retired_upcall_count(), 0);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, NULL, posting, &t), 0);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, NULL, plain, &t), 0);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, NULL, posting, &t), 0);
    CHECK_EQ(wsp_retired_upcall_count(), 3);
    CHECK_EQ(t.lpWSPCleanup(&err), 0);
    CHECK_EQ(t.lpWSPCleanup(&err), 0);
    CHECK_EQ(t.lpWSPCleanup(&err), 0);
    CHECK_EQ(wsp_retired_upcall_count(), 3); /* still in force: nothing freed yet */
    CHECK_EQ(t.lpWSPCleanup(&err), 0);
    CHECK_EQ(wsp_retired_upcall_count(), 0);
}

/* The built-in upcalls: the blocking-hook query needs somewhere to put the callback, while
 * the context is optional (NULL is not written to). */
TEST(upcalls_blocking_callback_query_without_a_context) {
    WSPUPCALLTABLE t = no_upcalls();
    wsp_upcalls_fill_builtin(&t);
    int err = 0;
    LPBLOCKINGCALLBACK cb = (LPBLOCKINGCALLBACK)(uintptr_t)1;
    CHECK_EQ(t.lpWPUQueryBlockingCallback(1001, &cb, NULL, &err), 0);
    CHECK(cb == NULL);
    err = 0;
    DWORD_PTR ctx = 77;
    CHECK_EQ(t.lpWPUQueryBlockingCallback(1001, NULL, &ctx, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(ctx, 77);
}

/* lpWSPBind takes only an address of the socket's own family: an AF_UNSPEC one, which Linux
 * would take for "any IPv4 address" on an IPv4 socket, is WSAEAFNOSUPPORT, and the socket
 * stays unbound. */
TEST(bind_to_an_address_of_another_family_is_wsaeafnosupport) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_in unspec = {.sin_family = AF_UNSPEC, .sin_addr.s_addr = htonl(INADDR_ANY)};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&unspec, sizeof unspec, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEAFNOSUPPORT);
    struct sockaddr_in name;
    int len = sizeof name;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockName(s, (struct sockaddr *)&name, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL); /* not bound */
    close_socket(s);
}

/* ---- catalog and start-up edges (session 8, s8-m3) ---- */

/* A protocol selection matches when TCP is anywhere in it, not only first; one without TCP
 * matches nothing, however long. */
TEST(catalog_selection_matches_tcp_anywhere_in_the_list) {
    WSAPROTOCOL_INFO info[4];
    int later[] = {IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_TCP, 0};
    int none[] = {IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_RAW, 0};
    DWORD len = sizeof info;
    int err = 0;
    CHECK_EQ(WSPEnumProtocols(later, info, &len, &err), 4);
    CHECK_EQ(len, 4 * sizeof(WSAPROTOCOL_INFO));
    len = sizeof info;
    CHECK_EQ(WSPEnumProtocols(none, info, &len, &err), 0);
    CHECK_EQ(len, 0);
}

/* Only AF_INET and AF_INET6 make a socket: every other family, below, between or above them,
 * is WSAEAFNOSUPPORT and opens nothing. */
TEST(catalog_families_other_than_inet_and_inet6_are_refused) {
    start();
    const int families[] = {AF_UNSPEC, AF_INET + 1, AF_INET + 3, AF_INET6 - 1, AF_INET6 + 1,
                            AF_PACKET, -1};
    int before = open_fds();
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        int err = 0;
        CHECK(T.lpWSPSocket(families[i], SOCK_STREAM, 0, NULL, 0, 0, &err) == INVALID_SOCKET);
        CHECK_EQ(err, WSAEAFNOSUPPORT);
    }
    CHECK_EQ(open_fds(), before);
}

/* WSPStartup writes the whole WSPDATA: the description is padded with zeros to its end, so
 * nothing of what the caller's memory held before shows through. */
TEST(startup_fills_every_byte_of_wspdata) {
    WSPDATA d;
    WSPPROC_TABLE t;
    memset(&d, 0xa5, sizeof d);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &d, NULL, no_upcalls(), &t), 0);
    size_t n = strlen(d.szDescription);
    CHECK(n > 0 && n < sizeof d.szDescription);
    for (size_t i = n; i < sizeof d.szDescription; i++)
        CHECK_EQ(d.szDescription[i], 0);
    int err = 0;
    CHECK_EQ(t.lpWSPCleanup(&err), 0);
}

/* A failing call given no lpErrno still fails (SOCKET_ERROR, INVALID_SOCKET), and writes no
 * code anywhere rather than crash. */
TEST(errors_a_failing_call_without_lperrno_still_fails) {
    start();
    SOCKET bogus = (SOCKET)4242;
    CHECK_EQ(T.lpWSPCloseSocket(bogus, NULL), SOCKET_ERROR);
    CHECK_EQ(T.lpWSPShutdown(bogus, SD_BOTH, NULL), SOCKET_ERROR);
    DWORD v = 0;
    int len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(bogus, SOL_SOCKET, SO_TYPE, (char *)&v, &len, NULL), SOCKET_ERROR);
    CHECK(T.lpWSPSocket(AF_UNIX, SOCK_STREAM, 0, NULL, 0, 0, NULL) == INVALID_SOCKET);
}

