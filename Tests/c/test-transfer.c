/* lpWSPSend / lpWSPRecv (scatter/gather, MSG_PEEK, MSG_OOB), FIONREAD, SIOCATMARK, shutdown,
 * time-outs, abortive close, and the socket options the provider reports itself. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "faults.h"
#include "internal.h"
#include "support.h"

/* A connected pair on plain TCP over 127.0.0.1: *client and *server. */
static void pair(SOCKET *client, SOCKET *server) {
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    *client = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(*client, &addr, NULL, NULL), 0);
    int err = 0;
    *server = accept_with(l, NULL, 0, &err);
    CHECK(*server != INVALID_SOCKET);
    close_socket(l);
}

static DWORD ioctl_dword(SOCKET s, DWORD code) {
    DWORD v = 0xdeadbeef, ret = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, code, NULL, 0, &v, sizeof v, &ret, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(ret, sizeof v);
    return v;
}

TEST(transfer_scatter_gather_with_three_buffers) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    WSABUF out[3] = {{3, "abc"}, {0, NULL}, {5, "defgh"}};
    WSABUF out3[3] = {{3, "abc"}, {2, "XY"}, {5, "defgh"}};
    DWORD sent = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPSend(c, out3, 3, &sent, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(sent, 10);
    CHECK_EQ(T.lpWSPSend(c, out, 3, &sent, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(sent, 8);
    /* 18 bytes: wait for all before a single scattering receive. */
    WAIT_FOR(ioctl_dword(s, WSP_FIONREAD) == 18, 10000);
    CHECK_EQ(ioctl_dword(s, FIONREAD), 18); /* Linux's code works too */
    char a[4], b[6], d[8];
    WSABUF in[3] = {{4, a}, {6, b}, {8, d}};
    DWORD got = 0, flags = 0;
    CHECK_EQ(T.lpWSPRecv(s, in, 3, &got, &flags, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(got, 18);
    CHECK_EQ(flags, 0);
    CHECK_MEM(a, "abcX", 4);
    CHECK_MEM(b, "Ydefgh", 6);
    CHECK_MEM(d, "abcdefgh", 8);
    CHECK_EQ(ioctl_dword(s, WSP_FIONREAD), 0);
    /* Bad buffer arrays. */
    err = 0;
    CHECK_EQ(T.lpWSPSend(c, NULL, 1, &sent, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    WSABUF bad = {4, NULL};
    err = 0;
    CHECK_EQ(T.lpWSPSend(c, &bad, 1, &sent, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    err = 0;
    CHECK_EQ(T.lpWSPRecv(s, in, 3, &got, NULL, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
}

/* More buffers than the kernel takes in one call (IOV_MAX): WSAENOBUFS, nothing sent. */
TEST(transfer_more_buffers_than_iov_max_is_wsaenobufs) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    static WSABUF many[IOV_MAX + 1];
    for (int i = 0; i <= IOV_MAX; i++)
        many[i] = (WSABUF){1, "x"};
    DWORD n = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPSend(c, many, IOV_MAX + 1, &n, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    DWORD flags = 0;
    err = 0;
    CHECK_EQ(T.lpWSPRecv(s, many, IOV_MAX + 1, &n, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(T.lpWSPSend(c, many, IOV_MAX, &n, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(n, IOV_MAX);
}

/* A socket that is not connected has nothing to read: FIONREAD says 0, listening or not. */
TEST(transfer_fionread_of_an_unconnected_socket_is_zero) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(ioctl_dword(s, WSP_FIONREAD), 0);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    CHECK_EQ(ioctl_dword(l, WSP_FIONREAD), 0);
    close_socket(l);
    close_socket(s);
}

TEST(transfer_peek_leaves_the_data) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    send_all(c, "peekaboo", 8);
    WAIT_FOR(ioctl_dword(s, WSP_FIONREAD) == 8, 10000);
    char b[8];
    DWORD got = 0;
    CHECK_EQ(recv_some(s, b, 4, MSG_PEEK, &got), 0);
    CHECK_EQ(got, 4);
    CHECK_MEM(b, "peek", 4);
    CHECK_EQ(ioctl_dword(s, WSP_FIONREAD), 8);
    /* The flags come back cleared: a stream has no MSG_PARTIAL to report. */
    WSABUF buf = {2, b};
    DWORD flags = MSG_PEEK;
    int err = 0;
    CHECK_EQ(T.lpWSPRecv(s, &buf, 1, &got, &flags, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(got, 2);
    CHECK_EQ(flags, 0);
    recv_exact(s, b, 8);
    CHECK_MEM(b, "peekaboo", 8);
}

/* The flags are an output only of a receive that received: one that fails (WSAEWOULDBLOCK,
 * nothing there yet) leaves them as the caller set them, so that the usual retry loop with
 * the same variable keeps peeking instead of consuming the data once it comes. */
TEST(transfer_failed_receive_leaves_the_flags) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    set_nonblocking(s, 1);
    char b[8];
    WSABUF buf = {sizeof b, b};
    DWORD flags = MSG_PEEK, got = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPRecv(s, &buf, 1, &got, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(flags, MSG_PEEK);
    send_all(c, "peek", 4);
    WAIT_FOR(ioctl_dword(s, WSP_FIONREAD) == 4, 10000);
    CHECK_EQ(T.lpWSPRecv(s, &buf, 1, &got, &flags, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(got, 4);
    CHECK_MEM(b, "peek", 4);
    CHECK_EQ(ioctl_dword(s, WSP_FIONREAD), 4); /* peeked, not consumed */
}

TEST(transfer_oob_byte_and_atmark) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    CHECK_EQ(ioctl_dword(s, WSP_SIOCATMARK), TRUE);
    send_all(c, "ab", 2);
    WSABUF urgent = {1, "!"};
    DWORD sent = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPSend(c, &urgent, 1, &sent, MSG_OOB, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(sent, 1);
    /* Urgent data pending: not at the mark. */
    WAIT_FOR(ioctl_dword(s, WSP_SIOCATMARK) == FALSE, 10000);
    CHECK_EQ(ioctl_dword(s, SIOCATMARK), FALSE);
    char b = 0;
    DWORD got = 0;
    CHECK_EQ(recv_some(s, &b, 1, MSG_OOB, &got), 0);
    CHECK_EQ(got, 1);
    CHECK_EQ(b, '!');
    CHECK_EQ(ioctl_dword(s, WSP_SIOCATMARK), TRUE);
    char normal[2];
    recv_exact(s, normal, 2);
    CHECK_MEM(normal, "ab", 2);
    /* Unsupported flags are refused. */
    err = 0;
    DWORD flags = MSG_WAITALL;
    WSABUF in = {1, &b};
    CHECK_EQ(T.lpWSPRecv(s, &in, 1, &got, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
}

TEST(transfer_shutdown_send_gives_the_peer_end_of_stream) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    send_all(c, "last", 4);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    char b[8];
    recv_exact(s, b, 4);
    DWORD got = 99;
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), 0);
    CHECK_EQ(got, 0);
    /* The other direction still works. */
    send_all(s, "back", 4);
    recv_exact(c, b, 4);
    CHECK_MEM(b, "back", 4);
    /* Sending after SD_SEND fails with WSAESHUTDOWN, as in Winsock. */
    WSABUF out = {1, "x"};
    DWORD sent = 0;
    err = 0;
    CHECK_EQ(T.lpWSPSend(c, &out, 1, &sent, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAESHUTDOWN);
    /* And receiving after SD_RECEIVE, even with data waiting. */
    send_all(s, "more", 4);
    WAIT_FOR(ioctl_dword(c, WSP_FIONREAD) == 4, 10000);
    CHECK_EQ(T.lpWSPShutdown(c, SD_RECEIVE, &err), 0);
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAESHUTDOWN);
    /* The peer's direction is unaffected by our shutdown until it is closed. */
    send_all(s, "x", 1);
    err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, 7, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, -1, &err), SOCKET_ERROR); /* below SD_RECEIVE too */
    CHECK_EQ(err, WSAEINVAL);
    /* The argument is checked before the state: WSAEINVAL on a socket not connected. */
    SOCKET u = new_socket(WSP_CATALOG_TCP_IPV4);
    const int bad[2] = {-1, SD_BOTH + 1};
    for (int i = 0; i < 2; i++) {
        err = 0;
        CHECK_EQ(T.lpWSPShutdown(u, bad[i], &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAEINVAL);
    }
    close_socket(u);
}

TEST(transfer_on_unconnected_socket_is_notconn) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    char b[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), WSAENOTCONN);
    WSABUF out = {1, "x"};
    int err = 0;
    CHECK_EQ(T.lpWSPSend(s, &out, 1, &got, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTCONN);
    err = 0;
    CHECK_EQ(T.lpWSPShutdown(s, SD_BOTH, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTCONN);
    struct sockaddr_storage peer;
    int len = sizeof peer;
    err = 0;
    CHECK_EQ(T.lpWSPGetPeerName(s, (struct sockaddr *)&peer, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTCONN);
    /* A listener is not connected either. */
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, NULL);
    CHECK_EQ(recv_some(l, b, sizeof b, 0, &got), WSAENOTCONN);
}

/* WSPShutdown on a listening socket is WSAENOTCONN (it is not connected) and does nothing:
 * the socket still listens, and a client that connects afterwards is accepted. */
TEST(shutdown_of_a_listener_is_notconn_and_it_keeps_listening) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    static const int hows[] = {SD_RECEIVE, SD_SEND, SD_BOTH};
    for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
        int err = 0;
        CHECK_EQ(T.lpWSPShutdown(l, hows[i], &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTCONN);
    }
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    close_socket(a);
    close_socket(c);
    close_socket(l);
}

TEST(transfer_receive_timeout) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    set_dword(s, SOL_SOCKET, SO_RCVTIMEO, 200);
    DWORD v = 0;
    int len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_RCVTIMEO, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 200);
    char b[4];
    DWORD got = 0;
    long long t0 = now_ms();
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), WSAETIMEDOUT);
    CHECK(now_ms() - t0 >= 190); /* not before its time; never would hang the test */
    /* The socket is still usable afterwards. */
    send_all(c, "ok", 2);
    recv_exact(s, b, 2);
    CHECK_MEM(b, "ok", 2);
}

/* Winsock's time-outs are milliseconds; the kernel, which enforces them, takes seconds and
 * microseconds, and keeps them in ticks of 1 to 10 ms: what it reports back is the value set,
 * rounded up to its tick. */
static void check_kernel_timeout(SOCKET s, int optname, long sec, long usec) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    struct timeval tv = {0, 0};
    socklen_t len = sizeof tv;
    CHECK_EQ(getsockopt(so->fd, SOL_SOCKET, optname, &tv, &len), 0);
    wsp_socket_release(so);
    CHECK_EQ(tv.tv_sec, sec);
    CHECK(tv.tv_usec >= usec && tv.tv_usec < usec + 10000);
    /* Exactly what the kernel makes of sec and usec given directly: not a microsecond more
     * (which it would round up to a tick more). */
    int raw = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval want = {sec, usec}, got = {0, 0};
    CHECK_EQ(setsockopt(raw, SOL_SOCKET, optname, &want, sizeof want), 0);
    len = sizeof got;
    CHECK_EQ(getsockopt(raw, SOL_SOCKET, optname, &got, &len), 0);
    close(raw);
    CHECK_EQ(tv.tv_sec, got.tv_sec);
    CHECK_EQ(tv.tv_usec, got.tv_usec);
}

TEST(transfer_timeouts_reach_the_kernel_in_seconds_and_microseconds) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    set_dword(s, SOL_SOCKET, SO_RCVTIMEO, 1500);
    set_dword(s, SOL_SOCKET, SO_SNDTIMEO, 2200);
    check_kernel_timeout(s, SO_RCVTIMEO, 1, 500000);
    check_kernel_timeout(s, SO_SNDTIMEO, 2, 200000);
    set_dword(s, SOL_SOCKET, SO_RCVTIMEO, 0); /* 0: no time-out, as on Windows */
    check_kernel_timeout(s, SO_RCVTIMEO, 0, 0);
    (void)c;
}

TEST(transfer_abortive_close_resets_the_peer) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof lg, &err), 0);
    struct linger back;
    int len = sizeof back;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_LINGER, (char *)&back, &len, &err), 0);
    CHECK_EQ(back.l_onoff, 1);
    CHECK_EQ(back.l_linger, 0);
    close_socket(c);
    char b[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), WSAECONNRESET);
}

TEST(transfer_graceful_close_is_end_of_stream) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    send_all(c, "bye", 3);
    close_socket(c);
    char b[4];
    recv_exact(s, b, 3);
    DWORD got = 9;
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), 0);
    CHECK_EQ(got, 0);
}

/* errno is read only after a call that failed: an ECONNRESET or EPIPE some earlier call left
 * in it is no reset of this connection, neither after a send that succeeds nor at the end
 * of the stream, which a receive then reports as 0 bytes. */
TEST(transfer_a_reset_errno_left_by_an_earlier_call_is_no_reset) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    WSABUF wb = {1, "x"};
    DWORD n = 0, flags = 0;
    int err = 0;
    errno = EPIPE;
    CHECK_EQ(T.lpWSPSend(s, &wb, 1, &n, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(n, 1);
    char b[4];
    recv_exact(c, b, 1);
    close_socket(c);
    wb = (WSABUF){sizeof b, b};
    n = 9;
    errno = ECONNRESET;
    CHECK_EQ(T.lpWSPRecv(s, &wb, 1, &n, &flags, NULL, NULL, NULL, &err), 0); /* waits for FIN */
    CHECK_EQ(n, 0);
    close_socket(s);
}

/* A receive that would block is no reset: when the peer then closes gracefully, the next
 * receive reports the end of the stream (0 bytes), not WSAECONNRESET. */
TEST(transfer_graceful_close_after_a_receive_that_would_block_is_end_of_stream) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    set_nonblocking(s, 1);
    char b[4];
    DWORD got = 9;
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), WSAEWOULDBLOCK);
    close_socket(c);
    set_nonblocking(s, 0); /* waits for the peer's FIN */
    got = 9;
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), 0);
    CHECK_EQ(got, 0);
    close_socket(s);
}

/* getsockopt with no length to read or write (optlen NULL) is WSAEFAULT, as with no buffer. */
TEST(sockopt_get_without_a_length_is_wsaefault) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    DWORD v = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_TYPE, (char *)&v, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(v, 0);
}

TEST(sockopt_reports_type_acceptconn_error_and_unknowns) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    DWORD v = 0;
    int len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_TYPE, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, SOCK_STREAM);
    CHECK_EQ(len, sizeof v);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ACCEPTCONN, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 0);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 0);
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, NULL);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_SOCKET, SO_ACCEPTCONN, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 1);
    /* Unknown options and levels. */
    len = sizeof v;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, 0x7777, (char *)&v, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOPROTOOPT);
    len = sizeof v; /* and one numbered below SO_ERROR (SO_DEBUG, 1) */
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_DEBUG, (char *)&v, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOPROTOOPT);
    err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, 0x7777, (char *)&v, sizeof v, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOPROTOOPT);
    /* One numbered just below SO_CONDITIONAL_ACCEPT (0x3002) is unknown too, and sets
     * nothing else. */
    v = 1;
    err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, 0x3001, (char *)&v, sizeof v, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOPROTOOPT);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_CONDITIONAL_ACCEPT, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 0);
    len = sizeof v;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_WSP, 0x77, (char *)&v, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOPROTOOPT);
    err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_WSP, 0x77, (char *)&v, sizeof v, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOPROTOOPT);
    /* An unknown option of a level the provider knows is WSAENOPROTOOPT; an unknown level,
     * WSAEINVAL. */
    const int levels[] = {IPPROTO_TCP, IPPROTO_IPV6};
    for (int i = 0; i < 2; i++) {
        len = sizeof v;
        err = 0;
        CHECK_EQ(T.lpWSPGetSockOpt(c, levels[i], 0x7777, (char *)&v, &len, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOPROTOOPT);
        err = 0;
        CHECK_EQ(T.lpWSPSetSockOpt(c, levels[i], 0x7777, (char *)&v, sizeof v, &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAENOPROTOOPT);
    }
    const int strange[] = {3, IPPROTO_TCP + 1, IPPROTO_IPV6 + 1, 0x5555};
    for (int i = 0; i < 4; i++) {
        len = sizeof v;
        err = 0;
        CHECK_EQ(T.lpWSPGetSockOpt(c, strange[i], 1, (char *)&v, &len, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAEINVAL);
        err = 0;
        CHECK_EQ(T.lpWSPSetSockOpt(c, strange[i], 1, (char *)&v, sizeof v, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAEINVAL);
    }
    /* Short buffers. */
    char one;
    len = 1;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_TYPE, &one, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_KEEPALIVE, &one, 1, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    /* Listener stats only on a listener. */
    WSP_LISTENER_STATS_DATA st;
    len = sizeof st;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_WSP, WSP_LISTENER_STATS, (char *)&st, &len, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    DWORD st_ret = 7; /* nor through the ioctl, which then writes nothing */
    err = 0;
    CHECK_EQ(T.lpWSPIoctl(c, SIO_WSP_LISTENER_STATS, NULL, 0, &st, sizeof st, &st_ret, NULL, NULL,
                          NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(st_ret, 7);
    /* Unknown ioctl. */
    DWORD ret = 0;
    err = 0;
    CHECK_EQ(T.lpWSPIoctl(c, 0x12345678u, NULL, 0, &v, sizeof v, &ret, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    /* Small ones too, below the numbers the host's FIONBIO, FIONREAD and SIOCATMARK have. */
    const DWORD small_codes[] = {1, (DWORD)SIOCATMARK - 1};
    for (int i = 0; i < 2; i++) {
        err = 0;
        CHECK_EQ(T.lpWSPIoctl(c, small_codes[i], NULL, 0, &v, sizeof v, &ret, NULL, NULL, NULL,
                              &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAEINVAL);
    }
}

/* FIONBIO reads a DWORD: an input shorter than one, or none, is WSAEFAULT and leaves the mode
 * as it was: blocking, the connect that follows returns connected, not WSAEWOULDBLOCK. */
TEST(ioctl_fionbio_without_a_whole_dword_is_wsaefault) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    DWORD on = 1, ret = 7;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONBIO, &on, sizeof on - 1, NULL, 0, &ret, NULL, NULL, NULL,
                          &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(ret, 7);
    err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONBIO, NULL, sizeof on, NULL, 0, &ret, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(ret, 7);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    CHECK_EQ(connect_to(s, &addr, NULL, NULL), 0);
    close_socket(s);
    close_socket(l);
}

/* An extension function asked for without its GUID is WSAEFAULT, whatever length comes with
 * it; nothing is written. */
TEST(ioctl_extension_pointer_without_a_guid_is_wsaefault) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    void *fn = NULL;
    DWORD ret = 7;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, NULL, sizeof(GUID), &fn,
                          sizeof fn, &ret, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK(fn == NULL);
    CHECK_EQ(ret, 7);
    close_socket(s);
}

TEST(sockopt_wsp_options_round_trip_and_bounds) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    DWORD v = 0;
    int len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_WSP, WSP_CONNECT_TIMEOUT, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, WSP_DEFAULT_CONNECT_TIMEOUT_MS);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_WSP, WSP_MAX_CALLER_DATA, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, WSP_DEFAULT_MAX_CALLER_DATA);
    set_dword(s, SOL_WSP, WSP_MAX_CALLER_DATA, WSP_MAX_CONNECT_DATA);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_WSP, WSP_MAX_CALLER_DATA, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, WSP_MAX_CONNECT_DATA);
    v = WSP_MAX_CONNECT_DATA + 1;
    err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_WSP, WSP_MAX_CALLEE_DATA, (char *)&v, sizeof v, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    v = 0;
    err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_WSP, WSP_PENDING_INTERVAL, (char *)&v, sizeof v, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    /* No callee data before any connect. */
    char cd[8];
    len = sizeof cd;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_WSP, WSP_CALLEE_DATA, cd, &len, &err), 0);
    CHECK_EQ(len, 0);
    /* SIO_GET_QOS only on the connect-data protocol. */
    QOS q;
    DWORD ret = 0;
    SOCKET plain = new_socket(WSP_CATALOG_TCP_IPV4);
    err = 0;
    CHECK_EQ(T.lpWSPIoctl(plain, SIO_GET_QOS, NULL, 0, &q, sizeof q, &ret, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
}

TEST(transfer_nonblocking_send_fills_up_then_would_block_and_loses_nothing) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    set_nonblocking(c, 1);
    static char chunk[65536];
    size_t total = 0;
    int rc = 0;
    for (int i = 0; i < 10000; i++) {
        for (size_t k = 0; k < sizeof chunk; k++)
            chunk[k] = (char)((total + k) % 251);
        WSABUF b = {sizeof chunk, chunk};
        DWORD sent = 0;
        int err = 0;
        if (T.lpWSPSend(c, &b, 1, &sent, 0, NULL, NULL, NULL, &err) != 0) {
            rc = err;
            break;
        }
        total += sent;
    }
    CHECK_EQ(rc, WSAEWOULDBLOCK);
    CHECK(total > 0);
    /* Everything accepted arrives, in order. */
    static char in[65536];
    size_t got_total = 0;
    while (got_total < total) {
        size_t want = total - got_total < sizeof in ? total - got_total : sizeof in;
        recv_exact(s, in, want);
        for (size_t k = 0; k < want; k++)
            CHECK_EQ((unsigned char)in[k], (got_total + k) % 251);
        got_total += want;
    }
    CHECK_EQ(ioctl_dword(s, WSP_FIONREAD), 0);
    /* Room again: sending works. */
    send_all(c, "z", 1);
    char z;
    recv_exact(s, &z, 1);
    CHECK_EQ(z, 'z');
}

TEST(transfer_send_timeout) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    set_dword(c, SOL_SOCKET, SO_SNDTIMEO, 200);
    static char chunk[1 << 20];
    long long t0 = 0;
    int rc = 0;
    for (int i = 0; i < 1000; i++) {
        WSABUF b = {sizeof chunk, chunk};
        DWORD sent = 0;
        int err = 0;
        t0 = now_ms();
        if (T.lpWSPSend(c, &b, 1, &sent, 0, NULL, NULL, NULL, &err) != 0) {
            rc = err;
            break;
        }
    }
    CHECK_EQ(rc, WSAETIMEDOUT); /* the peer never reads: the blocking send gives up */
    CHECK(now_ms() - t0 >= 190);
    (void)s;
}

/* lpWSPSendTo and lpWSPRecvFrom on a stream: the address is ignored (as on Winsock's TCP), so
 * sendto to any address sends to the peer, and recvfrom leaves the address untouched; both
 * carry data, flags and errors exactly as lpWSPSend and lpWSPRecv do. */
TEST(transfer_sendto_and_recvfrom_are_send_and_recv_on_a_stream) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct sockaddr_in elsewhere = {.sin_family = AF_INET, .sin_port = htons(9),
                                    .sin_addr.s_addr = htonl(0x0a000001)};
    char a[] = "sen", b[] = "dto";
    WSABUF out[2] = {{3, a}, {3, b}};
    DWORD sent = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPSendTo(c, out, 2, &sent, 0, (struct sockaddr *)&elsewhere, sizeof elsewhere,
                           NULL, NULL, NULL, &err),
             0);
    CHECK_EQ(sent, 6);
    char in[16];
    WSABUF buf = {sizeof in, in};
    DWORD got = 0, flags = MSG_PEEK;
    struct sockaddr_storage from;
    memset(&from, 0x5a, sizeof from);
    int fromlen = 77;
    CHECK_EQ(T.lpWSPRecvFrom(s, &buf, 1, &got, &flags, (struct sockaddr *)&from, &fromlen, NULL,
                             NULL, NULL, &err),
             0);
    CHECK_EQ(got, 6); /* peeked: still there */
    CHECK_MEM(in, "sendto", 6);
    CHECK_EQ(fromlen, 77);
    CHECK_EQ(((unsigned char *)&from)[0], 0x5a);
    flags = 0;
    CHECK_EQ(T.lpWSPRecvFrom(s, &buf, 1, &got, &flags, NULL, NULL, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(got, 6);
    CHECK_MEM(in, "sendto", 6);
    /* Errors are lpWSPSend's and lpWSPRecv's. */
    set_nonblocking(s, 1);
    flags = 0;
    CHECK_EQ(T.lpWSPRecvFrom(s, &buf, 1, &got, &flags, NULL, NULL, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    close_socket(c);
    err = 0;
    CHECK_EQ(T.lpWSPSendTo(c, out, 1, &sent, 0, NULL, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    err = 0;
    flags = 0;
    CHECK_EQ(T.lpWSPRecvFrom(c, &buf, 1, &got, &flags, NULL, NULL, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
}

/* WSP_HANDSHAKE_DEADLINE and WSP_PENDING_INTERVAL of 0 would mean "at once" and "always":
 * refused with WSAEINVAL, the value set before kept. */
TEST(sockopt_zero_handshake_deadline_and_pending_interval_are_wsaeinval) {
    start();
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, NULL);
    const int names[2] = {WSP_HANDSHAKE_DEADLINE, WSP_PENDING_INTERVAL};
    for (int i = 0; i < 2; i++) {
        set_dword(l, SOL_WSP, names[i], 777);
        DWORD zero = 0, v = 0;
        int err = 0, len = sizeof v;
        CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, names[i], (const char *)&zero, sizeof zero, &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAEINVAL);
        CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_WSP, names[i], (char *)&v, &len, &err), 0);
        CHECK_EQ(v, 777);
    }
    close_socket(l);
}

/* Up to 16 buffers go to the kernel from the stack: a transfer of a few, or of exactly 16,
 * makes no allocation (more than 16 do: that path is the other tests'). */
TEST(transfer_of_a_few_buffers_allocates_nothing) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    char a[] = "ab", b[] = "cd";
    WSABUF two[2] = {{2, a}, {2, b}};
    DWORD done = 0, flags = 0;
    int err = 0;
    FAULT(malloc, .nth = 1000000, .this_thread = 1); /* only counts */
    CHECK_EQ(T.lpWSPSend(c, two, 2, &done, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(done, 4);
    WAIT_FOR(unread_bytes(s) == 4, 10000);
    char p[2], q[2];
    WSABUF halves[2] = {{2, p}, {2, q}};
    CHECK_EQ(T.lpWSPRecv(s, halves, 2, &done, &flags, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(done, 4);
    char out[16], in[16];
    WSABUF sixteen_out[16], sixteen_in[16];
    for (int i = 0; i < 16; i++) {
        out[i] = (char)('A' + i);
        in[i] = 0;
        sixteen_out[i] = (WSABUF){1, &out[i]};
        sixteen_in[i] = (WSABUF){1, &in[i]};
    }
    CHECK_EQ(T.lpWSPSend(c, sixteen_out, 16, &done, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(done, 16);
    WAIT_FOR(unread_bytes(s) == 16, 10000);
    CHECK_EQ(T.lpWSPRecv(s, sixteen_in, 16, &done, &flags, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(done, 16);
    CHECK_EQ(fault_calls(FAULT_malloc), 0);
    fault_clear();
    CHECK_MEM(p, "ab", 2);
    CHECK_MEM(q, "cd", 2);
    CHECK_MEM(in, "ABCDEFGHIJKLMNOP", 16);
    close_socket(c);
    close_socket(s);
}

/* WSP does no overlapped I/O: a transfer given an OVERLAPPED is refused as such, through
 * lpWSPSendTo and lpWSPRecvFrom as through lpWSPSend and lpWSPRecv; a completion routine
 * without one is ignored, as Winsock ignores it, and the call is an ordinary one. */
static void no_completion(DWORD e, DWORD n, LPWSAOVERLAPPED ov, DWORD f) {
    (void)e, (void)n, (void)ov, (void)f;
}

TEST(transfer_with_an_overlapped_is_refused_a_completion_routine_alone_ignored) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    set_nonblocking(s, 1); /* a receive that went ahead would not wait */
    WSAOVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    char x[] = "x";
    WSABUF out = {1, x};
    char in[4];
    WSABUF buf = {sizeof in, in};
    DWORD done = 0, flags = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPSend(c, &out, 1, &done, 0, &ov, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    CHECK_EQ(T.lpWSPSendTo(c, &out, 1, &done, 0, NULL, 0, &ov, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    CHECK_EQ(T.lpWSPRecv(s, &buf, 1, &done, &flags, &ov, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    CHECK_EQ(T.lpWSPRecvFrom(s, &buf, 1, &done, &flags, NULL, NULL, &ov, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    CHECK_EQ(unread_bytes(s), 0); /* nothing was sent */
    CHECK_EQ(T.lpWSPSend(c, &out, 1, &done, 0, NULL, no_completion, NULL, &err), 0);
    CHECK_EQ(T.lpWSPSendTo(c, &out, 1, &done, 0, NULL, 0, NULL, no_completion, NULL, &err), 0);
    WAIT_FOR(unread_bytes(s) == 2, 10000);
    recv_exact(s, in, 2);
    send_all(c, "yz", 2);
    WAIT_FOR(unread_bytes(s) == 2, 10000);
    flags = 0;
    CHECK_EQ(T.lpWSPRecv(s, &(WSABUF){1, in}, 1, &done, &flags, NULL, no_completion, NULL, &err),
             0);
    CHECK_EQ(done, 1);
    CHECK_EQ(in[0], 'y');
    CHECK_EQ(T.lpWSPRecvFrom(s, &(WSABUF){1, in}, 1, &done, &flags, NULL, NULL, NULL,
                             no_completion, NULL, &err),
             0);
    CHECK_EQ(done, 1);
    CHECK_EQ(in[0], 'z');
    close_socket(c);
    close_socket(s);
}

/* A WSP_DROP_HANDLER value too short is refused and changes nothing: the handler set before
 * is the one still called. */
static atomic_int drops_heard, wrong_handler_calls;

static void heard_drop(SOCKET l, const struct sockaddr *addr, int addrlen, DWORD reason,
                       DWORD_PTR context) {
    (void)l, (void)addr, (void)addrlen, (void)reason, (void)context;
    atomic_fetch_add(&drops_heard, 1);
}

static void wrong_drop_handler(SOCKET l, const struct sockaddr *addr, int addrlen, DWORD reason,
                               DWORD_PTR context) {
    (void)l, (void)addr, (void)addrlen, (void)reason, (void)context;
    atomic_fetch_add(&wrong_handler_calls, 1);
}

TEST(sockopt_a_short_drop_handler_leaves_the_one_set_before) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    WSP_DROP_HANDLER_DATA h = {heard_drop, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_DROP_HANDLER, (const char *)&h, sizeof h, &err),
             0);
    WSP_DROP_HANDLER_DATA wrong = {wrong_drop_handler, 0};
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_DROP_HANDLER, (const char *)&wrong,
                               (int)sizeof wrong - 1, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    /* A request with more caller data than the listener takes: dropped. */
    static char big[2000];
    WSABUF caller = {sizeof big, big};
    SOCKET wordy = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(wordy, SOL_WSP, WSP_MAX_CALLER_DATA, sizeof big);
    CHECK_EQ(connect_full(wordy, &addr, &caller, NULL, NULL), WSAECONNREFUSED);
    WAIT_FOR(atomic_load(&drops_heard) + atomic_load(&wrong_handler_calls) == 1, 10000);
    CHECK_EQ(atomic_load(&drops_heard), 1);
    close_socket(wordy);
    close_socket(l);
}

/* A held event that is no event of the provider's is refused (WSA_INVALID_HANDLE), and a
 * refused option changes nothing: the event set before stays the listener's. */
TEST(sockopt_a_held_event_that_is_no_event_leaves_the_one_set_before) {
    start();
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, NULL);
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != NULL);
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (const char *)&ev, sizeof ev, &err),
             0);
    WSAEVENT bogus = (WSAEVENT)(uintptr_t)12345;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (const char *)&bogus, sizeof bogus,
                               &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSA_INVALID_HANDLE);
    WSAEVENT got = NULL;
    int len = sizeof got;
    CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&got, &len, &err), 0);
    CHECK(got == ev);
    close_socket(l);
    WSACloseEvent(ev);
}

/* Argument errors come before state errors: a bad name buffer is WSAEFAULT even on a socket
 * that is not connected; a negative option length is WSAEFAULT. */
TEST(names_and_options_check_their_buffers_first) {
    start();
    SOCKET fresh = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    CHECK_EQ(T.lpWSPGetPeerName(fresh, NULL, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    len = 4;
    err = 0;
    CHECK_EQ(T.lpWSPGetPeerName(fresh, (struct sockaddr *)&ss, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    len = sizeof ss;
    err = 0;
    CHECK_EQ(T.lpWSPGetPeerName(fresh, (struct sockaddr *)&ss, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTCONN);
    SOCKET c, s;
    pair(&c, &s);
    len = sizeof ss;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockName(c, NULL, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    DWORD v = 0;
    len = -1;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_TYPE, (char *)&v, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    /* Before the option is looked at: an unknown one is WSAEFAULT too. */
    len = -1;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, 0x7777, (char *)&v, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
}

/* Shutting down one direction leaves the other working. */
TEST(shutdown_of_one_direction_leaves_the_other) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_RECEIVE, &err), 0);
    send_all(c, "still", 5); /* sending still works */
    char b[8];
    recv_exact(s, b, 5);
    CHECK_MEM(b, "still", 5);
    DWORD got = 0;
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAESHUTDOWN);
    CHECK_EQ(T.lpWSPShutdown(s, SD_SEND, &err), 0);
    WSABUF w = {1, "x"};
    DWORD sent = 0;
    err = 0;
    CHECK_EQ(T.lpWSPSend(s, &w, 1, &sent, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAESHUTDOWN);
    send_all(c, "more", 4); /* s still receives */
    recv_exact(s, b, 4);
    CHECK_MEM(b, "more", 4);
}

/* A shutdown that fails (a how that is none of SD_RECEIVE, SD_SEND, SD_BOTH: WSAEINVAL)
 * shuts nothing: both directions still carry data. */
TEST(shutdown_with_an_invalid_how_shuts_nothing) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, 3, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    char b[8];
    send_all(c, "out", 3);
    recv_exact(s, b, 3);
    CHECK_MEM(b, "out", 3);
    send_all(s, "back", 4);
    recv_exact(c, b, 4);
    CHECK_MEM(b, "back", 4);
}

/* wsp_fd_send_all (handles.c) waits for room only until its time-out: to a peer that reads
 * nothing, more than the buffers hold fails with WSAETIMEDOUT, never reports success. */
TEST(fd_send_all_to_a_peer_that_reads_nothing_times_out) {
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 4096;
    CHECK_EQ(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    CHECK_EQ(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    enum { BIG = 1 << 20 };
    char *big = calloc(1, BIG);
    CHECK(big != NULL);
    CHECK_EQ(wsp_fd_send_all(sv[0], big, BIG, 50), WSAETIMEDOUT);
    free(big);
    close(sv[0]);
    close(sv[1]);
}

/* WSP does no overlapped I/O: an ioctl with an OVERLAPPED is refused as such, whatever the
 * code, before the socket is looked at. */
TEST(ioctl_with_an_overlapped_is_wsaeopnotsupp) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    WSAOVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    DWORD v = 0, ret = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONREAD, NULL, 0, &v, sizeof v, &ret, &ov, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    CHECK_EQ(T.lpWSPIoctl((SOCKET)4242, WSP_FIONREAD, NULL, 0, &v, sizeof v, &ret, &ov, NULL,
                          NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    close_socket(s);
}

/* The count is written only by a call that completes: a recv or send that fails leaves the
 * caller's variable as it was (never -1 cast to a huge count). */
TEST(transfer_failed_call_writes_no_count) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    set_nonblocking(s, 1);
    char b[4];
    WSABUF wb = {sizeof b, b};
    DWORD got = 4242, flags = 0;
    int err = 0;
    /* One that completes first, then one that fails: the count of the second is untouched. */
    send_all(c, "ab", 2);
    WAIT_FOR(ioctl_dword(s, WSP_FIONREAD) == 2, 10000);
    CHECK_EQ(T.lpWSPRecv(s, &wb, 1, &got, &flags, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(got, 2);
    got = 4242;
    CHECK_EQ(T.lpWSPRecv(s, &wb, 1, &got, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(got, 4242);
    close_socket(c);
    close_socket(s);
}

/* A connection the peer reset has no peer any more: getpeername fails with WSAENOTCONN and
 * leaves the caller's buffer and length as they were. */
TEST(transfer_getpeername_after_a_reset_is_notconn_and_writes_nothing) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof lg, &err), 0);
    close_socket(c);
    char b[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), WSAECONNRESET); /* the reset has arrived */
    struct sockaddr_storage name;
    memset(&name, 0x5a, sizeof name);
    int len = (int)sizeof name;
    err = 0;
    CHECK_EQ(T.lpWSPGetPeerName(s, (struct sockaddr *)&name, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTCONN);
    CHECK_EQ(len, (int)sizeof name);
    CHECK_EQ(((unsigned char *)&name)[0], 0x5a);
    close_socket(s);
}

/* errno is not reset by a call that succeeds: an EINTR left in it by something earlier on the
 * thread must not make a completed send or recv run again (which would send the bytes twice,
 * or read on past what was there). */
TEST(transfer_a_stale_eintr_does_not_repeat_a_completed_call) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    set_nonblocking(c, 1);
    set_nonblocking(s, 1);
    char b[16];
    WSABUF wb = {3, "abc"};
    DWORD n = 0, flags = 0;
    int err = 0;
    errno = EINTR;
    CHECK_EQ(T.lpWSPSend(c, &wb, 1, &n, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(n, 3);
    WAIT_FOR(ioctl_dword(s, WSP_FIONREAD) == 3, 10000);
    wb = (WSABUF){sizeof b, b};
    errno = EINTR;
    CHECK_EQ(T.lpWSPRecv(s, &wb, 1, &n, &flags, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(n, 3);
    CHECK_MEM(b, "abc", 3);
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &n), WSAEWOULDBLOCK); /* sent once, read once */
    close_socket(c);
    close_socket(s);
}

/* Likewise when the completed call moved nothing: a receive at the end of the stream and a
 * send of no bytes each return 0, and a stale EINTR must not make them run again (pinned by
 * the provider's call count: one recv, one send; a second call would fail with the fault
 * armed behind it). */
TEST(transfer_a_stale_eintr_does_not_repeat_a_call_that_moved_nothing) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    close_socket(c);
    char b[4];
    WSABUF wb = {sizeof b, b};
    DWORD n = 9, flags = 0;
    int err = 0;
    FAULT(recv, .nth = 2, .err = ECONNRESET);
    errno = EINTR;
    CHECK_EQ(T.lpWSPRecv(s, &wb, 1, &n, &flags, NULL, NULL, NULL, &err), 0); /* waits for FIN */
    CHECK_EQ(n, 0);
    CHECK_EQ(fault_calls(FAULT_recv), 1);
    CHECK_EQ(fault_fired(FAULT_recv), 0);
    close_socket(s);

    pair(&c, &s);
    wb = (WSABUF){0, b};
    n = 9;
    FAULT(send, .nth = 2, .err = EPIPE);
    errno = EINTR;
    CHECK_EQ(T.lpWSPSend(c, &wb, 1, &n, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(fault_calls(FAULT_send), 1);
    CHECK_EQ(fault_fired(FAULT_send), 0);
    fault_clear();
    close_socket(c);
    close_socket(s);
}

/* Buffer sizes never set are the kernel's: a fresh socket reports what a fresh TCP socket of
 * the system reports. */
TEST(sockopt_buffer_sizes_never_set_are_the_kernels_defaults) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    const int names[] = {SO_SNDBUF, SO_RCVBUF};
    for (int i = 0; i < 2; i++) {
        int want = 0, got = -1, err = 0;
        socklen_t wlen = sizeof want;
        CHECK_EQ(getsockopt(fd, SOL_SOCKET, names[i], &want, &wlen), 0);
        CHECK(want > 0);
        int len = sizeof got;
        CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, names[i], (char *)&got, &len, &err), 0);
        CHECK_EQ(len, sizeof got);
        CHECK_EQ(got, want);
    }
    close(fd);
    close_socket(s);
}

static DWORD get_dword(SOCKET s, int level, int name) {
    DWORD v = 0xdeadbeef;
    int len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, level, name, (char *)&v, &len, &err), 0);
    CHECK_EQ(len, sizeof v);
    return v;
}

/* SO_CONDITIONAL_ACCEPT is a BOOL: any non-zero value turns it on, 0 turns it off again. */
TEST(sockopt_conditional_accept_follows_the_value_set) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(get_dword(s, SOL_SOCKET, SO_CONDITIONAL_ACCEPT), 0);
    const DWORD values[] = {1, 0, 0xffffffffu, 0, 2, 0};
    for (int i = 0; i < 6; i++) {
        set_dword(s, SOL_SOCKET, SO_CONDITIONAL_ACCEPT, values[i]);
        CHECK_EQ(get_dword(s, SOL_SOCKET, SO_CONDITIONAL_ACCEPT), values[i] != 0);
    }
    close_socket(s);
}

static void noop_drop_handler(SOCKET l, const struct sockaddr *addr, int addrlen, DWORD reason,
                              DWORD_PTR context) {
    (void)l, (void)addr, (void)addrlen, (void)reason, (void)context;
}

/* Options whose value is a structure or a handle take a buffer at least that large, as a
 * DWORD option takes one of at least four bytes: shorter is WSAEFAULT, longer is fine. */
TEST(sockopt_structure_options_take_their_size_or_more) {
    start();
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, NULL);
    union {
        WSP_DROP_HANDLER_DATA d;
        WSAEVENT ev;
        char bytes[64];
    } v;
    memset(&v, 0, sizeof v);
    v.d.lpfnHandler = noop_drop_handler;
    const struct {
        int name;
        int size;
    } opts[] = {{WSP_DROP_HANDLER, (int)sizeof(WSP_DROP_HANDLER_DATA)},
                {WSP_HELD_EVENT, (int)sizeof(WSAEVENT)}};
    for (int i = 0; i < 2; i++) {
        if (opts[i].name == WSP_HELD_EVENT)
            memset(&v, 0, sizeof v); /* no event */
        int err = 0;
        CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, opts[i].name, v.bytes, opts[i].size - 1, &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAEFAULT);
        CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, opts[i].name, v.bytes, opts[i].size, &err), 0);
        CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, opts[i].name, v.bytes, (int)sizeof v, &err), 0);
    }
    close_socket(l);
}

/* WSP's option numbers mean nothing at another level: every one of them, set or read at a
 * level the provider does not know, is WSAEINVAL (not taken for WSP's option). */
TEST(sockopt_wsp_option_numbers_at_an_unknown_level_are_wsaeinval) {
    start();
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, NULL);
    /* Levels on both sides of each known one, and far off. */
    const int strange[] = {-1, 0, 3, IPPROTO_TCP + 1, IPPROTO_IPV6 + 1, 0x5555, SOL_WSP - 1,
                           SOL_WSP + 1, 0x7fffffff};
    char buf[256];
    for (int i = 0; i < (int)(sizeof strange / sizeof strange[0]); i++) {
        for (int name = 1; name <= 0x20; name++) {
            memset(buf, 0, sizeof buf);
            int len = sizeof buf, err = 0;
            CHECK_EQ(T.lpWSPGetSockOpt(l, strange[i], name, buf, &len, &err), SOCKET_ERROR);
            CHECK_EQ(err, WSAEINVAL);
            err = 0;
            CHECK_EQ(T.lpWSPSetSockOpt(l, strange[i], name, buf, sizeof buf, &err), SOCKET_ERROR);
            CHECK_EQ(err, WSAEINVAL);
        }
    }
    close_socket(l);
}

/* A connected socket's SO_ERROR is the kernel's pending error: a reset from the peer is
 * WSAECONNRESET (and a recv after it still reports the reset). */
TEST(sockopt_so_error_of_a_connected_socket_reports_a_reset) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof lg, &err), 0);
    close_socket(s);
    WSPFD_SET r;
    WSP_FD_ZERO(&r);
    WSP_FD_SET(c, &r);
    struct timeval tv = {10, 0};
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), 1); /* the reset has arrived */
    CHECK_EQ(get_dword(c, SOL_SOCKET, SO_ERROR), WSAECONNRESET);
    char b[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAECONNRESET);
    close_socket(c);
}

struct blocked_send {
    SOCKET s;
    struct blocker blocker;
    int rc, err;
};

static void *send_one_byte(void *arg) {
    struct blocked_send *b = arg;
    WSABUF wb = {1, "x"};
    DWORD n = 0;
    blocker_enter(&b->blocker);
    b->rc = T.lpWSPSend(b->s, &wb, 1, &n, 0, NULL, NULL, NULL, &b->err);
    blocker_leave(&b->blocker);
    return NULL;
}

/* A send waiting for room when another thread closes its socket fails with WSAEINTR, even
 * when what ends the wait is the peer's reset. */
TEST(transfer_send_waiting_when_its_socket_is_closed_is_wsaeintr) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    static char chunk[65536];
    WSABUF wb = {sizeof chunk, chunk};
    DWORD n = 0;
    int err = 0;
    struct blocked_send b;
    pthread_t t;
    /* The send must find no room. Buffers of a set size do not grow (the kernel's tuning
     * would give a blocked send room as acknowledgements arrive, later on a busy machine),
     * and full ones can still take a byte once the kernel has moved what it queued on to
     * the peer: then fill again. */
    DWORD size = 16384;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_SNDBUF, (char *)&size, sizeof size, &err), 0);
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_RCVBUF, (char *)&size, sizeof size, &err), 0);
    for (int attempt = 0;; attempt++) {
        CHECK(attempt < 100);
        set_nonblocking(c, 1);
        while (T.lpWSPSend(c, &wb, 1, &n, 0, NULL, NULL, NULL, &err) == 0) {
        }
        CHECK_EQ(err, WSAEWOULDBLOCK); /* full: the peer reads nothing */
        set_nonblocking(c, 0);
        b = (struct blocked_send){.s = c};
        CHECK_EQ(pthread_create(&t, NULL, send_one_byte, &b), 0);
        if (wait_blocked_or_returned(&b.blocker))
            break;
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(b.rc, 0); /* the byte fitted after all */
    }
    close_socket(c);
    struct linger lg = {1, 0};
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof lg, &err), 0);
    close_socket(s); /* the reset wakes the send */
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(b.rc, SOCKET_ERROR);
    CHECK_EQ(b.err, WSAEINTR);
}

/* A buffer length up to INT_MAX is a length; one past it is a negative int to the program
 * that passed it (WSAEFAULT). The kernel writes only what arrived, so a small buffer said to
 * be INT_MAX long takes the few bytes waiting. */
TEST(transfer_buffer_lengths_up_to_int_max_are_lengths) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    send_all(c, "abc", 3);
    WAIT_FOR(ioctl_dword(s, WSP_FIONREAD) == 3, 10000);
    /* Not on the stack: the kernel checks that the whole range said could be user memory,
     * and 2 GiB past a stack near the top of the address space is not. */
    static char b[8];
    WSABUF wb = {(u_long)INT_MAX + 1u, b};
    DWORD n = 77, flags = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPRecv(s, &wb, 1, &n, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(n, 77);
    wb.len = INT_MAX;
    CHECK_EQ(T.lpWSPRecv(s, &wb, 1, &n, &flags, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(n, 3);
    CHECK_MEM(b, "abc", 3);
    close_socket(c);
    close_socket(s);
}

/* SOL_SOCKET's own options (those the provider keeps itself) are SOL_SOCKET's only: their
 * numbers at another level the provider knows are WSAENOPROTOOPT, and the socket keeps its
 * values; at a level it does not know, WSAEINVAL. */
TEST(sockopt_socket_level_numbers_at_other_levels_are_not_those_options) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV6);
    const int names[] = {SO_RCVTIMEO, SO_SNDTIMEO, SO_CONDITIONAL_ACCEPT, SO_ERROR, SO_TYPE,
                         SO_ACCEPTCONN};
    const int levels[] = {IPPROTO_TCP, IPPROTO_IPV6};
    for (int l = 0; l < 2; l++) {
        for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
            DWORD v = 1234;
            int len = sizeof v, err = 0;
            CHECK_EQ(T.lpWSPSetSockOpt(s, levels[l], names[i], (char *)&v, sizeof v, &err),
                     SOCKET_ERROR);
            CHECK_EQ(err, WSAENOPROTOOPT);
            err = 0;
            CHECK_EQ(T.lpWSPGetSockOpt(s, levels[l], names[i], (char *)&v, &len, &err),
                     SOCKET_ERROR);
            CHECK_EQ(err, WSAENOPROTOOPT);
        }
    }
    CHECK_EQ(get_dword(s, SOL_SOCKET, SO_RCVTIMEO), 0);
    CHECK_EQ(get_dword(s, SOL_SOCKET, SO_SNDTIMEO), 0);
    CHECK_EQ(get_dword(s, SOL_SOCKET, SO_CONDITIONAL_ACCEPT), 0);
    /* So are SO_SNDBUF and SO_RCVBUF, which the kernel keeps: Winsock's own SOL_SOCKET
     * (0xffff) and IPPROTO_IP are levels the provider does not know (it takes Linux's numbers,
     * wsp.h), and IPPROTO_TCP has no such option. */
    const int elsewhere[] = {0xffff, IPPROTO_IP, IPPROTO_TCP};
    const int elsewhere_err[] = {WSAEINVAL, WSAEINVAL, WSAENOPROTOOPT};
    const int buffers[] = {SO_SNDBUF, SO_RCVBUF};
    for (int l = 0; l < 3; l++) {
        for (int i = 0; i < 2; i++) {
            DWORD v = 1;
            int err = 0;
            CHECK_EQ(T.lpWSPSetSockOpt(s, elsewhere[l], buffers[i], (char *)&v, sizeof v, &err),
                     SOCKET_ERROR);
            CHECK_EQ(err, elsewhere_err[l]);
        }
    }
    close_socket(s);
}

/* Set options read back as set; an IPv6 option of an IPv4 socket is WSAEINVAL both ways; a
 * value that is not there is WSAEFAULT. */
TEST(sockopt_values_read_back_and_misplaced_ones_are_refused) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    set_dword(s, SOL_SOCKET, SO_KEEPALIVE, 1); /* a kernel option goes to the kernel */
    CHECK_EQ(get_dword(s, SOL_SOCKET, SO_KEEPALIVE), 1);
    set_dword(s, SOL_SOCKET, SO_RCVTIMEO, 1500);
    set_dword(s, SOL_SOCKET, SO_SNDTIMEO, 2500);
    CHECK_EQ(get_dword(s, SOL_SOCKET, SO_RCVTIMEO), 1500);
    CHECK_EQ(get_dword(s, SOL_SOCKET, SO_SNDTIMEO), 2500);
    int on = 1, len = sizeof on, err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, IPPROTO_IPV6, IPV6_V6ONLY, (char *)&on, sizeof on, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, IPPROTO_IPV6, IPV6_V6ONLY, (char *)&on, &len, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    /* A buffer too short for the value is WSAEFAULT before the option's place is looked at,
     * both ways. */
    char one = 1;
    len = 1;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, 1, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    const int names[] = {SO_KEEPALIVE, SO_RCVTIMEO, SO_CONDITIONAL_ACCEPT};
    for (int i = 0; i < 3; i++) {
        err = 0;
        CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, names[i], NULL, 4, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAEFAULT);
    }
    err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_WSP, WSP_CONNECT_TIMEOUT, NULL, 4, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    close_socket(s);
}

/* A name buffer too small is WSAEFAULT before anything else, on a socket not bound yet too. */
TEST(sockname_buffer_checked_before_the_socket_is) {
    start();
    SOCKET fresh = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_storage ss;
    int len = 4, err = 0;
    CHECK_EQ(T.lpWSPGetSockName(fresh, (struct sockaddr *)&ss, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    len = sizeof ss;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockName(fresh, (struct sockaddr *)&ss, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    close_socket(fresh);
}

/* More buffers than fit on the stack, one of them missing: WSAEFAULT, the heap copy of the
 * list freed (the leak check), nothing moved. */
TEST(transfer_many_buffers_one_missing_is_wsaefault) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    enum { N = 40 };
    WSABUF bufs[N];
    char bytes[N];
    for (int i = 0; i < N; i++)
        bufs[i] = (WSABUF){1, &bytes[i]};
    bufs[N - 1].buf = NULL;
    DWORD n = 99, flags = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPSend(c, bufs, N, &n, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(n, 99);
    err = 0;
    CHECK_EQ(T.lpWSPRecv(s, bufs, N, &n, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(ioctl_dword(s, WSP_FIONREAD), 0);
    close_socket(c);
    close_socket(s);
}

/* ---- names after shutdown, FIONREAD's failure, the hold limit's bound (session 8, s8-m3) */

/* The kernel's descriptor behind s, to watch what the kernel itself says. */
static int kernel_fd_of(SOCKET s) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    int fd = so->fd;
    wsp_socket_release(so);
    return fd;
}

static int kernel_knows_peer(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    return getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/* Once both sides have shut down, Linux forgets the peer; the socket still names both ends,
 * as Windows does: the very addresses of the connection. */
TEST(names_after_both_sides_shut_down_are_the_connections) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct sockaddr_storage mine = local_address(c), theirs = local_address(s);
    CHECK(port_of(&mine) != 0);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_BOTH, &err), 0);
    CHECK_EQ(T.lpWSPShutdown(s, SD_BOTH, &err), 0);
    int fd = kernel_fd_of(c);
    WAIT_FOR(!kernel_knows_peer(fd), 10000);
    T.lpWSPShutdown(c, SD_RECEIVE, &err); /* again, whatever it says: the names stay */
    struct sockaddr_storage got;
    int len = (int)sizeof got;
    memset(&got, 0, sizeof got);
    CHECK_EQ(T.lpWSPGetSockName(c, (struct sockaddr *)&got, &len, &err), 0);
    CHECK_EQ(len, (int)sizeof(struct sockaddr_in));
    CHECK_MEM(&got, &mine, sizeof(struct sockaddr_in));
    len = (int)sizeof got;
    memset(&got, 0, sizeof got);
    CHECK_EQ(T.lpWSPGetPeerName(c, (struct sockaddr *)&got, &len, &err), 0);
    CHECK_EQ(len, (int)sizeof(struct sockaddr_in));
    CHECK_MEM(&got, &theirs, sizeof(struct sockaddr_in));
    close_socket(c);
    close_socket(s);
}

/* A shutdown after the peer reset the connection remembers no peer: getpeername still fails
 * with WSAENOTCONN rather than name an address of zeros. */
TEST(names_a_shutdown_after_a_reset_remembers_no_peer) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof lg, &err), 0);
    close_socket(c);
    char b[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), WSAECONNRESET); /* the reset has arrived */
    CHECK(!kernel_knows_peer(kernel_fd_of(s)));
    T.lpWSPShutdown(s, SD_SEND, &err); /* whatever it says: it must not invent a peer */
    struct sockaddr_storage name;
    int len = (int)sizeof name;
    err = 0;
    CHECK_EQ(T.lpWSPGetPeerName(s, (struct sockaddr *)&name, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTCONN);
    close_socket(s);
}

/* FIONREAD whose ioctl fails reports that failure, and writes no count. */
TEST(fionread_whose_ioctl_fails_reports_it) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    DWORD v = 0xdeadbeef, ret = 0x5a5a;
    int err = 0;
    FAULT(ioctl, .nth = 1, .err = ENOTCONN, .this_thread = 1);
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONREAD, NULL, 0, &v, sizeof v, &ret, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_ioctl), 1);
    fault_clear();
    CHECK_EQ(err, WSAENOTCONN);
    CHECK_EQ(v, 0xdeadbeef);
    CHECK_EQ(ret, 0x5a5a);
    close_socket(c);
    close_socket(s);
}

/* WSP_HOLD_LIMIT takes every value up to WSP_MAX_HOLD_LIMIT, that one included, and refuses
 * the next, keeping what it had. */
TEST(sockopt_hold_limit_takes_its_maximum_and_no_more) {
    start();
    SOCKET l = new_socket(WSP_CATALOG_CDATA_IPV4);
    const DWORD values[] = {0, 1, WSP_MAX_HOLD_LIMIT - 1, WSP_MAX_HOLD_LIMIT};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        set_dword(l, SOL_WSP, WSP_HOLD_LIMIT, values[i]);
        DWORD v = 0xdeadbeef;
        int len = sizeof v, err = 0;
        CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_WSP, WSP_HOLD_LIMIT, (char *)&v, &len, &err), 0);
        CHECK_EQ(v, values[i]);
    }
    DWORD v = WSP_MAX_HOLD_LIMIT + 1;
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HOLD_LIMIT, (char *)&v, sizeof v, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    int len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_WSP, WSP_HOLD_LIMIT, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, WSP_MAX_HOLD_LIMIT);
    close_socket(l);
}

/* Closing a socket that another call still uses gives its descriptor number a fresh
 * non-blocking socket (socket.c, release_descriptor). What the socket records of the
 * descriptor's O_NONBLOCK must then be true of the new descriptor, and known (the fresh one
 * was made non-blocking): a call still running trusts it to skip an ioctl, so making the
 * descriptor non-blocking then (as FIONBIO or listen would) makes no system call. */
TEST(close_in_use_keeps_the_recorded_descriptor_mode_true) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(c, &err); /* a call still running */
    CHECK(so != NULL);
    CHECK_EQ(fcntl(so->fd, F_GETFL) & O_NONBLOCK, 0); /* a blocking connect left it blocking */
    close_socket(c);
    pthread_mutex_lock(&so->lock);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_EQ(getpeername(so->fd, (struct sockaddr *)&ss, &len), -1); /* the fresh socket */
    int flags = fcntl(so->fd, F_GETFL);
    CHECK(flags >= 0);
    CHECK(flags & O_NONBLOCK);
    CHECK_EQ(so->fd_nonblocking, 1);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    CHECK_EQ(wsp_socket_fd_nonblocking(so, 1), 0);
    CHECK_EQ(fault_calls(FAULT_ioctl), 0);
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    close_socket(s);
}

/* A send or recv given no count to write is WSAEFAULT, whatever its flags, and moves nothing:
 * the bytes sent next arrive first, and the bytes waiting stay for the next recv. */
TEST(transfer_without_a_count_is_wsaefault_and_moves_nothing) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    const DWORD flag_sets[] = {0, MSG_DONTROUTE, 0x40000 /* not a flag WSP takes */};
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        WSABUF w = {4, "lost"};
        int err = 0;
        CHECK_EQ(T.lpWSPSend(c, &w, 1, NULL, flag_sets[i], NULL, NULL, NULL, &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAEFAULT);
    }
    send_all(c, "kept", 4);
    WAIT_FOR(unread_bytes(s) == 4, 10000);
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        char b[8];
        WSABUF w = {sizeof b, b};
        DWORD flags = flag_sets[i];
        int err = 0;
        CHECK_EQ(T.lpWSPRecv(s, &w, 1, NULL, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAEFAULT);
    }
    char b[8];
    recv_exact(s, b, 4);
    CHECK_MEM(b, "kept", 4);
    close_socket(c);
    close_socket(s);
}

/* WSP_MAX_CALLER_DATA and WSP_MAX_CALLEE_DATA each take WSP_MAX_CONNECT_DATA and refuse one
 * more, keeping what they had. */
TEST(sockopt_connect_data_limits_take_their_maximum_and_no_more) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    const int names[] = {WSP_MAX_CALLER_DATA, WSP_MAX_CALLEE_DATA};
    for (size_t i = 0; i < 2; i++) {
        set_dword(s, SOL_WSP, names[i], WSP_MAX_CONNECT_DATA);
        DWORD v = WSP_MAX_CONNECT_DATA + 1;
        int err = 0;
        CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_WSP, names[i], (char *)&v, sizeof v, &err),
                 SOCKET_ERROR);
        CHECK_EQ(err, WSAEINVAL);
        int len = sizeof v;
        CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_WSP, names[i], (char *)&v, &len, &err), 0);
        CHECK_EQ(v, WSP_MAX_CONNECT_DATA);
    }
    close_socket(s);
}

/* A blocking recv or send that fails with an error other than EAGAIN reports that error:
 * only EAGAIN (the kernel's SO_RCVTIMEO / SO_SNDTIMEO running out) is WSAETIMEDOUT. */
TEST(transfer_a_blocking_call_failing_otherwise_is_not_a_time_out) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    char b[4];
    DWORD got = 0;
    FAULT(recv, .err = EBADF, .this_thread = 1);
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), WSAENOTSOCK);
    CHECK_EQ(fault_fired(FAULT_recv), 1);
    FAULT(send, .err = EBADF, .this_thread = 1);
    WSABUF w = {1, "x"};
    int err = 0;
    CHECK_EQ(T.lpWSPSend(c, &w, 1, &got, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    CHECK_EQ(err, WSAENOTSOCK);
    close_socket(c);
    close_socket(s);
}

/* SIO_GET_EXTENSION_FUNCTION_POINTER reads a GUID from the front of its input: a longer input
 * buffer is fine (Winsock checks only that the GUID fits), and gives the same function. */
TEST(ioctl_extension_pointer_takes_a_longer_input) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    struct {
        GUID id;
        char more[8];
    } in = {WSPID_ACCEPTHOLD, "extra"};
    void *exact = NULL, *longer = NULL;
    DWORD ret = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &in.id, sizeof in.id, &exact,
                          sizeof exact, &ret, NULL, NULL, NULL, &err),
             0);
    CHECK(exact != NULL);
    ret = 0;
    CHECK_EQ(T.lpWSPIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &in, sizeof in, &longer,
                          sizeof longer, &ret, NULL, NULL, NULL, &err),
             0);
    CHECK_EQ(ret, sizeof longer);
    CHECK(longer == exact);
    close_socket(s);
}

/* A buffer array of no buffers is WSAEFAULT, for send and recv alike, even with a valid
 * pointer: it is not a zero-length transfer (which a recv would report as end of stream). */
TEST(transfer_an_array_of_no_buffers_is_wsaefault) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    WSABUF w = {4, "data"};
    DWORD n = 4242, flags = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPSend(c, &w, 0, &n, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    err = 0;
    CHECK_EQ(T.lpWSPRecv(s, &w, 0, &n, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(n, 4242);
    close_socket(c);
    close_socket(s);
}
