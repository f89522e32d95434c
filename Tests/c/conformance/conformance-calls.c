/* Conformance: accept (with a condition function), connect, listen, ioctl, shutdown, close,
 * the names and the socket options. */
#include <sched.h>
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include "conformance.h"

#define SOON 2000

/* The WSA error of a call that reports through the local `err` (0 when it succeeded). */
#define WSA_ERR(call) ((call) == 0 ? 0 : err)

/* ---- accept ---------------------------------------------------------------------------------- */

static int cf_answer;
static int answer(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f, GROUP *g,
                  DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return cf_answer;
}

CONFORMANCE(accept_condition_reject_is_connrefused, DOCUMENTED("WSPAccept"),
            "a condition function answering CF_REJECT fails the accept with WSAECONNREFUSED") {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    cf_answer = CF_REJECT;
    int err;
    CHECK(accept_with(l, answer, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAECONNREFUSED);
}

CONFORMANCE(accept_condition_defer_is_try_again_and_keeps_the_request, DOCUMENTED("WSPAccept"),
            "CF_DEFER fails the accept with WSATRY_AGAIN and keeps the request for a later "
            "accept") {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    cf_answer = CF_DEFER;
    int err;
    CHECK(accept_with(l, answer, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN);
    cf_answer = CF_ACCEPT;
    CHECK(accept_with(l, answer, 0, &err) != INVALID_SOCKET);
}

CONFORMANCE(accept_on_a_socket_not_listening_is_einval, DOCUMENTED("WSPAccept"),
            "accept on a socket that is not listening fails with WSAEINVAL") {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err;
    CHECK(accept_with(s, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEINVAL);
}

CONFORMANCE(accept_nonblocking_with_nothing_pending_would_block, DOCUMENTED("WSPAccept"),
            "a non-blocking accept with no connection pending fails with WSAEWOULDBLOCK") {
    start();
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, NULL);
    set_nonblocking(l, 1);
    int err;
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
}

CONFORMANCE(accept_with_an_address_buffer_and_no_length_leaves_the_buffer, OBSERVED,
            "accept with an address buffer and a NULL length pointer succeeds and leaves the "
            "buffer alone") {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    unsigned char buf[sizeof(struct sockaddr_in)];
    memset(buf, 0xAB, sizeof buf);
    int err = 0;
    SOCKET a = T.lpWSPAccept(l, (struct sockaddr *)buf, NULL, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK_EQ(buf[i], 0xAB);
}

CONFORMANCE(accept_with_a_short_address_length_is_efault, DOCUMENTED("WSPAccept"),
            "an address length shorter than a socket address fails the accept with WSAEFAULT") {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    struct sockaddr_in sin;
    int len = (int)sizeof sin - 1, err = 0;
    CHECK(T.lpWSPAccept(l, (struct sockaddr *)&sin, &len, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEFAULT);
}

/* ---- connect and listen ------------------------------------------------------------------------ */

CONFORMANCE(connect_states, DOCUMENTED("WSPConnect"),
            "a non-blocking connect under way fails with WSAEWOULDBLOCK, a second attempt with "
            "WSAEALREADY, one on a connected socket with WSAEISCONN, one on a listener with "
            "WSAEINVAL") {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(l, &addr, NULL, NULL), WSAEINVAL);
    set_nonblocking(c, 1);
    int first = ne_connect(c, &addr, NULL, NULL);
    CHECK(first == WSAEWOULDBLOCK || first == 0);
    int again;
    long long deadline = now_ms() + SOON;
    while ((again = ne_connect(c, &addr, NULL, NULL)) == WSAEALREADY) {
        CHECK(now_ms() < deadline);
        sched_yield(); /* let the reactor take the socket's lock and finish the connect */
    }
    CHECK_EQ(again, WSAEISCONN);
}

CONFORMANCE(listen_errors, DOCUMENTED("WSPListen"),
            "listen on an unbound socket fails with WSAEINVAL, on a connected one with "
            "WSAEISCONN") {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(WSA_ERR(T.lpWSPListen(s, 4, &err)), WSAEINVAL);
    SOCKET c, a, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &a, &l);
    CHECK_EQ(WSA_ERR(T.lpWSPListen(c, 4, &err)), WSAEISCONN);
}

/* ---- close ------------------------------------------------------------------------------------ */

CONFORMANCE(closed_listener_refuses_at_once_and_frees_its_port, OBSERVED,
            "once closesocket returns, connects to the listener's address are refused and its "
            "port can be bound again") {
    start();
    struct sockaddr_storage addr;
    for (int round = 0; round < 10; round++) {
        SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
        close_socket(l);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(fd >= 0);
        CHECK_EQ(connect(fd, (struct sockaddr *)&addr, sizeof(struct sockaddr_in)), -1);
        CHECK_EQ(errno, ECONNREFUSED);
        close(fd);
        SOCKET again = new_socket(WSP_CATALOG_TCP_IPV4);
        int err = 0;
        CHECK_EQ(T.lpWSPBind(again, (struct sockaddr *)&addr, sizeof(struct sockaddr_in), &err),
                 0);
        close_socket(again);
    }
}

CONFORMANCE(close_of_an_unknown_handle_is_enotsock, DOCUMENTED("WSPCloseSocket"),
            "closing a handle that is not a socket fails with WSAENOTSOCK") {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    close_socket(s);
    int err = 0;
    CHECK_EQ(WSA_ERR(T.lpWSPCloseSocket(s, &err)), WSAENOTSOCK);
}

/* ---- shutdown and names ------------------------------------------------------------------------ */

CONFORMANCE(shutdown_rules, DOCUMENTED("WSPShutdown"),
            "after SD_SEND a send fails with WSAESHUTDOWN; shutdown of an unconnected socket "
            "fails with WSAENOTCONN, an unknown how with WSAEINVAL") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int err = 0;
    CHECK_EQ(WSA_ERR(T.lpWSPShutdown(c, 7, &err)), WSAEINVAL);
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    DWORD sent;
    CHECK_EQ(ne_send(c, "x", 1, 0, &sent), WSAESHUTDOWN);
    SOCKET u = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(WSA_ERR(T.lpWSPShutdown(u, SD_BOTH, &err)), WSAENOTCONN);
}

CONFORMANCE(names_survive_a_shutdown_of_both_sides, OBSERVED,
            "getpeername and getsockname keep answering after both sides have shut down") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    struct sockaddr_storage peer_before, local_before, peer_after, local_after;
    int len = sizeof peer_before, err = 0;
    CHECK_EQ(T.lpWSPGetPeerName(c, (struct sockaddr *)&peer_before, &len, &err), 0);
    local_before = local_address(c);
    CHECK_EQ(T.lpWSPShutdown(c, SD_BOTH, &err), 0);
    CHECK_EQ(T.lpWSPShutdown(s, SD_BOTH, &err), 0);
    close_socket(s);
    sleep_ms(20); /* lets the FINs cross; the names must hold whenever they do */
    len = sizeof peer_after;
    CHECK_EQ(T.lpWSPGetPeerName(c, (struct sockaddr *)&peer_after, &len, &err), 0);
    CHECK_MEM(&peer_after, &peer_before, sizeof(struct sockaddr_in));
    local_after = local_address(c);
    CHECK_MEM(&local_after, &local_before, sizeof(struct sockaddr_in));
}

/* ---- ioctl ------------------------------------------------------------------------------------ */

CONFORMANCE(ioctl_fionread_reports_the_waiting_bytes, DOCUMENTED("WSPIoctl"),
            "FIONREAD returns how much data can be read at once") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_send_str(c, "hello");
    WSPFD_SET r = {1, {s}};
    struct timeval tv = {2, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), 1);
    DWORD v = 0, ret = 0;
    long long deadline = now_ms() + SOON;
    do {
        CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONREAD, NULL, 0, &v, sizeof v, &ret, NULL, NULL, NULL, &err),
                 0);
        CHECK(now_ms() < deadline);
    } while (v < 5);
    CHECK_EQ(v, 5);
    CHECK_EQ(ret, sizeof v);
}

CONFORMANCE(ioctl_without_a_returned_count_is_efault, OBSERVED,
            "a synchronous WSAIoctl with a NULL lpcbBytesReturned fails with WSAEFAULT") {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    DWORD on = 1;
    int err = 0;
    CHECK_EQ(WSA_ERR(T.lpWSPIoctl(s, WSP_FIONBIO, &on, sizeof on, NULL, 0, NULL, NULL, NULL, NULL,
                                  &err)),
             WSAEFAULT);
}

CONFORMANCE(ioctl_short_output_is_efault_and_leaves_the_count, OBSERVED,
            "an output buffer too short fails with WSAEFAULT and leaves *lpcbBytesReturned as "
            "it was") {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    char small[2];
    DWORD ret = 0x5A5A;
    int err = 0;
    CHECK_EQ(WSA_ERR(T.lpWSPIoctl(s, WSP_FIONREAD, NULL, 0, small, sizeof small, &ret, NULL, NULL,
                                  NULL, &err)),
             WSAEFAULT);
    CHECK_EQ(ret, 0x5A5A);
}

/* ---- transfer ----------------------------------------------------------------------------------- */

CONFORMANCE(lengths_past_int_max_are_efault, OBSERVED,
            "a WSABUF whose length is negative as an int (past INT_MAX) fails with WSAEFAULT, "
            "on recv and send alike") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_send_str(c, "waiting");
    char buf[16];
    WSABUF b = {(ULONG)-1, buf};
    DWORD got = 0, flags = 0;
    int err = 0;
    CHECK_EQ(WSA_ERR(T.lpWSPRecv(s, &b, 1, &got, &flags, NULL, NULL, NULL, &err)),
             WSAEFAULT);
    b.len = (ULONG)INT_MAX + 1u;
    CHECK_EQ(WSA_ERR(T.lpWSPSend(s, &b, 1, &got, 0, NULL, NULL, NULL, &err)), WSAEFAULT);
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 7); /* the data is untouched */
}

CONFORMANCE(receive_after_a_reset_keeps_failing, OBSERVED,
            "after the peer reset the connection, every recv fails with WSAECONNRESET (never "
            "end of stream)") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    close_socket(c);
    char b;
    int r;
    long long deadline = now_ms() + SOON;
    set_nonblocking(s, 1);
    while ((r = ne_recv(s, &b, 1, 0)) == -WSAEWOULDBLOCK) /* until the reset has arrived */
        CHECK(now_ms() < deadline);
    CHECK_EQ(r, -WSAECONNRESET);
    CHECK_EQ(ne_recv(s, &b, 1, 0), -WSAECONNRESET);
    CHECK_EQ(ne_recv(s, &b, 1, 0), -WSAECONNRESET);
}

/* ---- options ----------------------------------------------------------------------------------- */

CONFORMANCE(options_type_acceptconn_and_unknown, DOCUMENTED("WSPGetSockOpt"),
            "SO_TYPE is SOCK_STREAM, SO_ACCEPTCONN is TRUE only while listening, an unknown "
            "option fails with WSAENOPROTOOPT") {
    start();
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, NULL);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int v = 0, len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_TYPE, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, SOCK_STREAM);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_SOCKET, SO_ACCEPTCONN, (char *)&v, &len, &err), 0);
    CHECK(v != 0);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_ACCEPTCONN, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 0);
    len = sizeof v;
    CHECK_EQ(WSA_ERR(T.lpWSPGetSockOpt(s, SOL_SOCKET, 0x7777, (char *)&v, &len, &err)),
             WSAENOPROTOOPT);
}

CONFORMANCE(receive_time_out_is_timedout, DOCUMENTED("setsockopt"),
            "SO_RCVTIMEO (milliseconds) ends a blocking recv that waited that long with "
            "WSAETIMEDOUT") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    set_dword(s, SOL_SOCKET, SO_RCVTIMEO, 50);
    DWORD v = 0;
    int len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_RCVTIMEO, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 50);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), -WSAETIMEDOUT);
}

CONFORMANCE(linger_and_keepalive_round_trip, DOCUMENTED("setsockopt"),
            "SO_LINGER and SO_KEEPALIVE read back what was set") {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    struct linger lg = {1, 7}, got = {0, 0};
    int len = sizeof got, err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_LINGER, (char *)&got, &len, &err), 0);
    CHECK_EQ(got.l_onoff != 0, 1);
    CHECK_EQ(got.l_linger, 7);
    int on = 1, v = 0;
    len = sizeof v;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_KEEPALIVE, (const char *)&on, sizeof on, &err), 0);
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_KEEPALIVE, (char *)&v, &len, &err), 0);
    CHECK(v != 0);
}

CONFORMANCE(option_buffer_too_short_is_efault, DOCUMENTED("WSPGetSockOpt"),
            "an option buffer shorter than the option's value fails with WSAEFAULT") {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    char small[1];
    int len = sizeof small, err = 0;
    CHECK_EQ(WSA_ERR(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_TYPE, small, &len, &err)), WSAEFAULT);
}

CONFORMANCE(buffer_sizes_read_back_as_set, OBSERVED,
            "SO_SNDBUF and SO_RCVBUF read back exactly what the application set") {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    int sizes[] = {4096, 12345, 65536};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int names[] = {SO_SNDBUF, SO_RCVBUF};
        for (int k = 0; k < 2; k++) {
            int v = sizes[i], len = sizeof v;
            CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, names[k], (const char *)&v, sizeof v, &err),
                     0);
            v = 0;
            CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, names[k], (char *)&v, &len, &err), 0);
            CHECK_EQ(v, sizes[i]);
            CHECK_EQ(len, (int)sizeof v);
        }
    }
}

CONFORMANCE(accepted_socket_inherits_buffer_sizes, DOCUMENTED("WSPAccept"),
            "the accepted socket has the same properties as the listening socket") {
    start();
    SOCKET l = new_socket(WSP_CATALOG_TCP_IPV4);
    int v = 20000, len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_SOCKET, SO_RCVBUF, (const char *)&v, sizeof v, &err), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(T.lpWSPBind(l, (struct sockaddr *)&sin, sizeof sin, &err), 0);
    CHECK_EQ(T.lpWSPListen(l, 4, &err), 0);
    struct sockaddr_storage addr = local_address(l);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    v = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(a, SOL_SOCKET, SO_RCVBUF, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 20000);
}
