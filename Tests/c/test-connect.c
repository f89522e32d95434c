/* lpWSPConnect on plain TCP: refusals, retries, argument and state errors, non-blocking
 * connects, IPv6. */
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "handshake.h"
#include "internal.h"
#include "support.h"

/* A loopback address with a port free at the moment (another process could take it). */
static struct sockaddr_storage free_port_address(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    close(fd);
    return ss;
}

TEST(connect_refused_then_the_same_socket_connects) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    send_all(c, "abc", 3);
    char b[3];
    recv_exact(a, b, 3);
    CHECK_MEM(b, "abc", 3);
}

/* A socket the application never bound is not bound after a failed connect either: the
 * fresh descriptor is left unbound, and getsockname says so (WSAEINVAL), as before it. */
TEST(connect_failed_attempt_leaves_an_unbound_socket_unbound) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    struct sockaddr_storage name;
    int len = sizeof name, err = 0;
    CHECK_EQ(T.lpWSPGetSockName(c, (struct sockaddr *)&name, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    close_socket(c);
}

TEST(connect_argument_and_state_errors) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    /* All-zero address, and a zero port. */
    struct sockaddr_storage zero;
    memset(&zero, 0, sizeof zero);
    zero.ss_family = AF_INET;
    CHECK_EQ(connect_to(c, &zero, NULL, NULL), WSAEADDRNOTAVAIL);
    struct sockaddr_storage noport = addr;
    ((struct sockaddr_in *)&noport)->sin_port = 0;
    CHECK_EQ(connect_to(c, &noport, NULL, NULL), WSAEADDRNOTAVAIL);
    /* The unspecified address with the port of a live listener (which Linux would take for
     * this host, and connect): still WSAEADDRNOTAVAIL, as on Winsock. IPv6 alike. */
    struct sockaddr_storage any_live = addr;
    ((struct sockaddr_in *)&any_live)->sin_addr.s_addr = htonl(INADDR_ANY);
    CHECK_EQ(connect_to(c, &any_live, NULL, NULL), WSAEADDRNOTAVAIL);
    struct sockaddr_storage addr6;
    SOCKET l6 = listener(WSP_CATALOG_TCP_IPV6, 4, &addr6);
    SOCKET c6 = new_socket(WSP_CATALOG_TCP_IPV6);
    struct sockaddr_storage noport6 = addr6;
    ((struct sockaddr_in6 *)&noport6)->sin6_port = 0;
    CHECK_EQ(connect_to(c6, &noport6, NULL, NULL), WSAEADDRNOTAVAIL);
    ((struct sockaddr_in6 *)&addr6)->sin6_addr = in6addr_any;
    CHECK_EQ(connect_to(c6, &addr6, NULL, NULL), WSAEADDRNOTAVAIL);
    close_socket(c6);
    close_socket(l6);
    /* Too short, none, and the wrong family. */
    int err = 0;
    CHECK_EQ(T.lpWSPConnect(c, (struct sockaddr *)&addr, 4, NULL, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    err = 0; /* no address at all, whatever length comes with it */
    CHECK_EQ(T.lpWSPConnect(c, NULL, sizeof(struct sockaddr_in), NULL, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    struct sockaddr_in6 six = {.sin6_family = AF_INET6, .sin6_port = htons(80),
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    err = 0;
    CHECK_EQ(T.lpWSPConnect(c, (struct sockaddr *)&six, sizeof six, NULL, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEAFNOSUPPORT);
    /* A family below the socket's, the live listener's address otherwise: AF_UNSPEC (which
     * Linux would take as a request to dissolve the association) on the IPv4 socket, AF_INET
     * in an IPv6-sized buffer on an IPv6 socket. */
    struct sockaddr_storage unspec = addr;
    unspec.ss_family = AF_UNSPEC;
    err = 0;
    CHECK_EQ(T.lpWSPConnect(c, (struct sockaddr *)&unspec, sizeof(struct sockaddr_in), NULL, NULL,
                            NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEAFNOSUPPORT);
    SOCKET c6b = new_socket(WSP_CATALOG_TCP_IPV6);
    err = 0;
    CHECK_EQ(T.lpWSPConnect(c6b, (struct sockaddr *)&addr, sizeof(struct sockaddr_in6), NULL, NULL,
                            NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEAFNOSUPPORT);
    int so_error6 = -1, so_error6_len = sizeof so_error6;
    CHECK_EQ(T.lpWSPGetSockOpt(c6b, SOL_SOCKET, SO_ERROR, (char *)&so_error6, &so_error6_len,
                               &err),
             0);
    CHECK_EQ(so_error6, 0); /* refused before any attempt, as below */
    close_socket(c6b);
    /* A refused argument is no attempt: SO_ERROR has no failed connect to report (the
     * kernel, handed the wrong family, would have failed with the same code). */
    int so_error = -1, so_error_len = sizeof so_error;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&so_error, &so_error_len, &err),
             0);
    CHECK_EQ(so_error, 0);
    /* Caller data and QoS on plain TCP. */
    WSABUF caller = {2, "hi"};
    CHECK_EQ(connect_full(c, &addr, &caller, NULL, NULL), WSAEPROTONOSUPPORT);
    QOS q;
    memset(&q, 0, sizeof q);
    CHECK_EQ(connect_full(c, &addr, NULL, NULL, &q), WSAEOPNOTSUPP);
    CHECK_EQ(stats_of(l).queued, 0); /* nothing was sent */
    /* A listening socket cannot connect. */
    CHECK_EQ(connect_to(l, &addr, NULL, NULL), WSAEINVAL);
    /* Connected: a second connect is WSAEISCONN. Plain TCP reports no callee data. */
    char cb[8];
    WSABUF callee = {sizeof cb, cb};
    CHECK_EQ(connect_to(c, &addr, NULL, &callee), 0);
    CHECK_EQ(callee.len, 0);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), WSAEISCONN);
    /* The peer name is the listener. */
    struct sockaddr_storage peer;
    int len = sizeof peer;
    CHECK_EQ(T.lpWSPGetPeerName(c, (struct sockaddr *)&peer, &len, &err), 0);
    CHECK_EQ(port_of(&peer), port_of(&addr));
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
}

TEST(connect_binds_implicitly) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    CHECK_EQ(T.lpWSPGetSockName(c, (struct sockaddr *)&ss, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL); /* not bound yet */
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    ss = local_address(c);
    CHECK(port_of(&ss) != 0);
    (void)l;
}

TEST(connect_nonblocking_would_block_then_isconn) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    set_nonblocking(c, 1);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    long long deadline = now_ms() + 10000;
    int rc;
    while ((rc = connect_to(c, &addr, NULL, NULL)) != WSAEISCONN) {
        CHECK_EQ(rc, WSAEALREADY);
        CHECK(now_ms() < deadline);
        sleep_ms(1);
    }
    int v = -1, len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 0);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    send_all(a, "z", 1);
    char b = 0;
    DWORD got = 0;
    deadline = now_ms() + 10000;
    while (recv_some(c, &b, 1, 0, &got) == WSAEWOULDBLOCK)
        CHECK(now_ms() < deadline);
    CHECK_EQ(got, 1);
    CHECK_EQ(b, 'z');
}

TEST(connect_nonblocking_refused_reports_so_error_and_can_retry) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    set_nonblocking(c, 1);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAEWOULDBLOCK);
    /* The attempt ends on the reactor; SO_ERROR then holds its outcome until a connect
     * succeeds (Windows keeps it: reading does not clear it). */
    long long deadline = now_ms() + 10000;
    int v = 0, len, err = 0;
    for (;;) {
        len = sizeof v;
        CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&v, &len, &err), 0);
        if (v)
            break;
        CHECK(now_ms() < deadline);
        sleep_ms(2);
    }
    CHECK_EQ(v, WSAECONNREFUSED);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, WSAECONNREFUSED);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_nonblocking(c, 0);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 0);
}

TEST(connect_ipv6_loopback_and_v6only_default) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV6, 4, &addr);
    CHECK_EQ(addr.ss_family, AF_INET6);
    int v = -1, len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(l, IPPROTO_IPV6, IPV6_V6ONLY, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 1);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV6);
    len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(c, IPPROTO_IPV6, IPV6_V6ONLY, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    struct sockaddr_storage me = local_address(c);
    struct sockaddr_storage peer;
    len = sizeof peer;
    SOCKET a = T.lpWSPAccept(l, (struct sockaddr *)&peer, &len, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(len, sizeof(struct sockaddr_in6));
    CHECK_EQ(peer.ss_family, AF_INET6);
    CHECK_EQ(port_of(&peer), port_of(&me));
    CHECK_MEM(&((struct sockaddr_in6 *)&peer)->sin6_addr, &in6addr_loopback, 16);
    send_all(c, "six", 3);
    char b[3];
    recv_exact(a, b, 3);
    CHECK_MEM(b, "six", 3);
    /* An IPv4 socket has no IPv6 options. */
    SOCKET four = new_socket(WSP_CATALOG_TCP_IPV4);
    len = sizeof v;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(four, IPPROTO_IPV6, IPV6_V6ONLY, (char *)&v, &len, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    /* An IPv6 address string round-trips through the provider. */
    char text[64];
    DWORD tlen = sizeof text;
    CHECK_EQ(T.lpWSPAddressToString((struct sockaddr *)&addr, sizeof(struct sockaddr_in6), NULL,
                                    text, &tlen, &err),
             0);
    CHECK(strncmp(text, "[::1]:", 6) == 0);
}

struct closer {
    SOCKET s, l;
    struct blocker *connecting; /* the thread in lpWSPConnect */
};

/* Closes the socket once its connect waits for the answer: queued at the listener, and the
 * connecting thread asleep in the call. */
static void *close_when_blocked(void *arg) {
    struct closer *c = arg;
    WAIT_FOR(stats_of(c->l).queued == 1, 10000);
    wait_blocked(c->connecting);
    close_socket(c->s);
    return NULL;
}

TEST(connect_blocking_is_woken_by_closing_the_socket) {
    start();
    /* A connect-data client to a listener that never accepts waits for the answer;
     * closing the socket from another thread ends the wait at once. */
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    struct blocker me = {0, 0};
    struct closer cl = {c, l, &me};
    pthread_t t;
    pthread_create(&t, NULL, close_when_blocked, &cl);
    FAULT(socket, .nth = 1000000, .this_thread = 1); /* only counts, on this thread */
    blocker_enter(&me);
    int rc = connect_to(c, &addr, "x", NULL);
    blocker_leave(&me);
    pthread_join(t, NULL);
    CHECK_EQ(rc, WSAEINTR);
    /* The socket is going: it gets no new descriptor, as a failed attempt's would. */
    CHECK_EQ(fault_calls(FAULT_socket), 0);
    fault_clear();
}

static int get_int(SOCKET s, int level, int name) {
    int v = -1, len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, level, name, (char *)&v, &len, &err), 0);
    return v;
}

static void set_int(SOCKET s, int level, int name, int v) {
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, level, name, (const char *)&v, sizeof v, &err), 0);
}

/* A failed attempt gives an IPv6 socket a fresh descriptor: IPv6-only still, as Winsock's. */
TEST(connect_ipv6_socket_stays_v6only_after_a_failed_attempt) {
    start();
    SOCKET dead6 = new_socket(WSP_CATALOG_TCP_IPV6);
    struct sockaddr_in6 six = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(dead6, (struct sockaddr *)&six, sizeof six, &err), 0);
    struct sockaddr_storage dead = local_address(dead6); /* bound, never listening: refused */
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV6);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(get_int(c, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    close_socket(c);
    close_socket(dead6);
}

/* The IPv4-mapped form of an IPv4 address (::ffff:a.b.c.d), with its port. */
static struct sockaddr_storage v4_mapped(const struct sockaddr_storage *four) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)four;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *six = (struct sockaddr_in6 *)&ss;
    six->sin6_family = AF_INET6;
    six->sin6_port = in->sin_port;
    six->sin6_addr.s6_addr[10] = 0xff;
    six->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&six->sin6_addr.s6_addr[12], &in->sin_addr, 4);
    return ss;
}

/* An IPv6 socket the application made dual-stack (IPV6_V6ONLY off) stays so after a failed
 * attempt: its fresh descriptor reaches an IPv4 server through a mapped address, as the
 * first one would have. */
TEST(connect_ipv6_socket_made_dual_stack_stays_so_after_a_failed_attempt) {
    start();
    struct sockaddr_storage dead4 = dead_address(), addr4;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr4);
    struct sockaddr_storage dead = v4_mapped(&dead4), live = v4_mapped(&addr4);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV6);
    set_int(c, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(get_int(c, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    CHECK_EQ(connect_to(c, &live, NULL, NULL), 0);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    send_all(c, "46", 2);
    char b[2];
    recv_exact(a, b, 2);
    CHECK_MEM(b, "46", 2);
    close_socket(a);
    close_socket(c);
    close_socket(l);
}

/* Buffer sizes are reported as the application set them (Windows), and only their own
 * options change that report. */
TEST(connect_buffer_sizes_reported_as_set_whatever_is_set_after) {
    start();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    set_int(c, SOL_SOCKET, SO_RCVBUF, 48 * 1024);
    set_int(c, SOL_SOCKET, SO_SNDBUF, 40 * 1024);
    set_int(c, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int(c, SOL_SOCKET, SO_REUSEADDR, 1);
    set_int(c, IPPROTO_TCP, TCP_NODELAY, 1);
    CHECK_EQ(get_int(c, SOL_SOCKET, SO_RCVBUF), 48 * 1024);
    CHECK_EQ(get_int(c, SOL_SOCKET, SO_SNDBUF), 40 * 1024);
    close_socket(c);
}

TEST(connect_options_survive_a_failed_attempt) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    set_int(c, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int(c, IPPROTO_TCP, TCP_NODELAY, 1);
    set_int(c, SOL_SOCKET, SO_RCVBUF, 48 * 1024);
    set_int(c, SOL_SOCKET, SO_SNDBUF, 40 * 1024);
    set_dword(c, SOL_SOCKET, SO_RCVTIMEO, 150);
    struct linger lg = {1, 7};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    int rcvbuf = get_int(c, SOL_SOCKET, SO_RCVBUF), sndbuf = get_int(c, SOL_SOCKET, SO_SNDBUF);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    CHECK(get_int(c, SOL_SOCKET, SO_KEEPALIVE) != 0);
    CHECK(get_int(c, IPPROTO_TCP, TCP_NODELAY) != 0);
    CHECK_EQ(get_int(c, SOL_SOCKET, SO_RCVBUF), rcvbuf);
    CHECK_EQ(get_int(c, SOL_SOCKET, SO_SNDBUF), sndbuf);
    CHECK_EQ(get_int(c, SOL_SOCKET, SO_RCVTIMEO), 150);
    struct linger got_lg = {0, 0};
    int len = sizeof got_lg;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_LINGER, (char *)&got_lg, &len, &err), 0);
    CHECK_EQ(got_lg.l_onoff, 1);
    CHECK_EQ(got_lg.l_linger, 7);
    /* The receive time-out still applies in the kernel, not only in the report. */
    char b[4];
    DWORD got = 0;
    long long t0 = now_ms();
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAETIMEDOUT);
    CHECK(now_ms() - t0 >= 140);
    (void)l;
}

/* An option as the kernel holds it on the socket's descriptor (not as the provider reports
 * it): its bytes and length. */
struct kernel_value {
    socklen_t len;
    unsigned char bytes[32];
};

static struct kernel_value kernel_option(SOCKET s, int level, int name) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    struct kernel_value v;
    memset(&v, 0, sizeof v);
    v.len = sizeof v.bytes;
    CHECK_EQ(getsockopt(so->fd, level, name, v.bytes, &v.len), 0);
    wsp_socket_release(so);
    return v;
}

/* A connect-data client has its kernel hold the handshake's last ACK until the request goes
 * with it (TCP_DEFER_ACCEPT on its descriptor: one packet fewer, and the server's provider woken
 * once); plain TCP sends no request and asks for nothing of the kind. */
TEST(connect_data_client_defers_its_ack_for_the_request) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    struct async_connect ac = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&ac);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&ac), 0);
    struct kernel_value v = kernel_option(ac.s, IPPROTO_TCP, TCP_DEFER_ACCEPT);
    int secs = 0;
    CHECK_EQ(v.len, sizeof secs);
    memcpy(&secs, v.bytes, sizeof secs);
    CHECK(secs > 0);
    close_socket(a);
    close_socket(ac.s);
    close_socket(l);
    struct sockaddr_storage paddr;
    SOCKET pl = listener(WSP_CATALOG_TCP_IPV4, 4, &paddr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &paddr, NULL, NULL), 0);
    v = kernel_option(c, IPPROTO_TCP, TCP_DEFER_ACCEPT);
    memcpy(&secs, v.bytes, sizeof secs);
    CHECK_EQ(secs, 0);
    close_socket(c);
    close_socket(pl);
}

/* Every option the kernel keeps, set away from its default, is the same in the kernel after a
 * failed attempt has replaced the descriptor: buffer sizes too (the kernel reports twice what
 * was set, and is given back what was set, not what it reports). */
TEST(connect_retry_gives_the_new_descriptor_the_kernels_options) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    static const struct {
        int level, name;
    } opts[] = {
        {SOL_SOCKET, SO_REUSEADDR}, {SOL_SOCKET, SO_KEEPALIVE}, {SOL_SOCKET, SO_OOBINLINE},
        {SOL_SOCKET, SO_DONTROUTE}, {SOL_SOCKET, SO_LINGER},    {SOL_SOCKET, SO_RCVTIMEO},
        {SOL_SOCKET, SO_SNDTIMEO},  {IPPROTO_TCP, TCP_NODELAY}, {SOL_SOCKET, SO_RCVBUF},
        {SOL_SOCKET, SO_SNDBUF},
    };
    enum { N = sizeof opts / sizeof opts[0] };
    for (int i = 0; i < N; i++) {
        if (opts[i].name == SO_LINGER) {
            struct linger lg = {1, 7};
            int err = 0;
            CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg,
                                       &err), 0);
        } else if (opts[i].name == SO_RCVTIMEO || opts[i].name == SO_SNDTIMEO) {
            set_dword(c, SOL_SOCKET, opts[i].name, 1500);
        } else {
            int v = opts[i].name == SO_RCVBUF   ? 48 * 1024
                    : opts[i].name == SO_SNDBUF ? 40 * 1024
                                                : 1;
            set_int(c, opts[i].level, opts[i].name, v);
        }
    }
    struct kernel_value before[N];
    for (int i = 0; i < N; i++)
        before[i] = kernel_option(c, opts[i].level, opts[i].name);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    for (int i = 0; i < N; i++) {
        struct kernel_value after = kernel_option(c, opts[i].level, opts[i].name);
        if (after.len != before[i].len || memcmp(after.bytes, before[i].bytes, after.len) != 0) {
            fprintf(stderr, "option %d/%d differs after the retry\n", opts[i].level,
                    opts[i].name);
            CHECK(0);
        }
    }
    close_socket(c);
}

/* So is each of them when it is the only option set: whichever way it was set (the kernel's,
 * a buffer size, a time-out) counts as an option to carry over. */
TEST(connect_retry_keeps_an_option_set_alone) {
    start();
    struct sockaddr_storage dead = dead_address();
    const int names[] = {SO_KEEPALIVE, SO_RCVBUF, SO_SNDBUF, SO_RCVTIMEO};
    for (int i = 0; i < 4; i++) {
        SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
        set_dword(c, SOL_SOCKET, names[i], names[i] == SO_KEEPALIVE  ? 1
                                           : names[i] == SO_RCVTIMEO ? 1500
                                                                     : 48 * 1024);
        struct kernel_value before = kernel_option(c, SOL_SOCKET, names[i]);
        CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
        struct kernel_value after = kernel_option(c, SOL_SOCKET, names[i]);
        CHECK_EQ(after.len, before.len);
        CHECK_MEM(after.bytes, before.bytes, before.len);
        close_socket(c);
    }
}

/* Options left at their default are left to the kernel on the new descriptor, not set to the
 * default's value: a send buffer nobody set grows when the connection is made (auto-tuning),
 * exactly as on a socket that never failed, which one set explicitly would not. */
TEST(connect_retry_leaves_default_options_to_the_kernel) {
    start();
    struct sockaddr_storage dead = dead_address(), addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    set_int(c, SOL_SOCKET, SO_KEEPALIVE, 1); /* an option set: the options are copied */
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    SOCKET fresh = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(fresh, &addr, NULL, NULL), 0);
    struct kernel_value tuned = kernel_option(fresh, SOL_SOCKET, SO_SNDBUF);
    struct kernel_value retried = kernel_option(c, SOL_SOCKET, SO_SNDBUF);
    int t, r;
    memcpy(&t, tuned.bytes, sizeof t);
    memcpy(&r, retried.bytes, sizeof r);
    CHECK_EQ(r, t);
    close_socket(fresh);
    close_socket(c);
    close_socket(l);
}

/* Plain TCP refuses connect data, but a caller buffer of no bytes is no data: the connect
 * goes ahead. */
TEST(connect_plain_with_an_empty_caller_buffer_connects) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    char unused = 0;
    WSABUF caller = {0, &unused};
    CHECK_EQ(connect_full(c, &addr, &caller, NULL, NULL), 0);
    close_socket(c);
    close_socket(l);
}

TEST(connect_fionbio_to_blocking_while_connecting_gives_a_blocking_socket) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_SOCKET, SO_RCVTIMEO, 150);
    set_nonblocking(c, 1);
    CHECK_EQ(connect_to(c, &addr, "x", NULL), WSAEWOULDBLOCK);
    set_nonblocking(c, 0); /* while the connect is still in progress */
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    long long deadline = now_ms() + 10000;
    int rc;
    while ((rc = connect_to(c, &addr, NULL, NULL)) == WSAEALREADY) {
        CHECK(now_ms() < deadline);
        sched_yield(); /* a loop that never yields can starve the reactor of the socket's lock */
    }
    CHECK_EQ(rc, WSAEISCONN);
    char b[4];
    DWORD got = 0;
    long long t0 = now_ms();
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAETIMEDOUT);
    CHECK(now_ms() - t0 >= 140); /* it waited: the socket blocks, as asked */
}

struct set_nbio_later {
    SOCKET s;
    SOCKET l;
};

static void *nbio_then_accept(void *arg) {
    struct set_nbio_later *n = arg;
    WAIT_FOR(stats_of(n->l).queued == 1, 10000); /* the client is inside its blocking connect */
    set_nonblocking(n->s, 1);
    int err = 0;
    SOCKET a = accept_with(n->l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    return NULL;
}

TEST(connect_fionbio_to_nonblocking_during_a_blocking_connect) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_SOCKET, SO_RCVTIMEO, 1000);
    struct set_nbio_later n = {c, l};
    pthread_t t;
    pthread_create(&t, NULL, nbio_then_accept, &n);
    CHECK_EQ(connect_to(c, &addr, "y", NULL), 0);
    pthread_join(t, NULL);
    char b[4];
    DWORD got = 0;
    /* Had it blocked, the 1 s receive time-out would have made it WSAETIMEDOUT. */
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAEWOULDBLOCK);
}

TEST(connect_explicit_bind_survives_a_failed_attempt) {
    start();
    struct sockaddr_storage dead = dead_address();
    /* A free port to bind the client to. */
    struct sockaddr_storage mine = free_port_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPBind(c, (struct sockaddr *)&mine, sizeof(struct sockaddr_in), &err), 0);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    struct sockaddr_storage still = local_address(c);
    CHECK_EQ(port_of(&still), port_of(&mine));
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    struct sockaddr_storage peer;
    int len = sizeof peer;
    SOCKET a = T.lpWSPAccept(l, (struct sockaddr *)&peer, &len, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(port_of(&peer), port_of(&mine));
}

/* An IPv6 listener on the wildcard address, V6ONLY as given (-1: the default). */
static SOCKET six_any_listener(int v6only, int *port) {
    SOCKET l = new_socket(WSP_CATALOG_TCP_IPV6);
    if (v6only >= 0)
        set_int(l, IPPROTO_IPV6, IPV6_V6ONLY, v6only);
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(l, (struct sockaddr *)&any, sizeof any, &err), 0);
    CHECK_EQ(T.lpWSPListen(l, 4, &err), 0);
    struct sockaddr_storage a = local_address(l);
    *port = port_of(&a);
    return l;
}

TEST(connect_ipv4_client_and_ipv6_wildcard_listener_follow_v6only) {
    start();
    int port;
    SOCKET l = six_any_listener(-1, &port); /* Winsock's default: IPv6 only */
    struct sockaddr_storage four;
    memset(&four, 0, sizeof four);
    struct sockaddr_in *in = (struct sockaddr_in *)&four;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons((uint16_t)port);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &four, NULL, NULL), WSAECONNREFUSED);
    close_socket(l);
    l = six_any_listener(0, &port); /* dual stack when asked */
    in->sin_port = htons((uint16_t)port);
    CHECK_EQ(connect_to(c, &four, NULL, NULL), 0);
    struct sockaddr_storage peer;
    int len = sizeof peer, err = 0;
    SOCKET a = T.lpWSPAccept(l, (struct sockaddr *)&peer, &len, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(peer.ss_family, AF_INET6);
    CHECK(IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&peer)->sin6_addr));
}

/* A plain TCP listener on 127.0.0.1 that the kernel completes connections for and nobody
 * answers; backlog as given. */
static int silent_tcp_listener(int backlog, struct sockaddr_storage *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(fd, backlog), 0);
    socklen_t len = sizeof *addr;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    return fd;
}

/* SO_ERROR of a socket, waiting up to 10 s for it to be other than 0. */
static int connect_outcome(SOCKET c) {
    long long deadline = now_ms() + 10000;
    for (;;) {
        int v = get_int(c, SOL_SOCKET, SO_ERROR);
        if (v)
            return v;
        CHECK(now_ms() < deadline);
        sleep_ms(2);
    }
}

/* A non-blocking connect-data connect whose server never answers ends on the connector's
 * timer with WSAETIMEDOUT, and leaves the socket ready to connect again. */
TEST(connect_nonblocking_unanswered_request_times_out) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_tcp_listener(4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_WSP, WSP_CONNECT_TIMEOUT, 200);
    set_nonblocking(c, 1);
    CHECK_EQ(connect_to(c, &addr, "x", NULL), WSAEWOULDBLOCK);
    CHECK_EQ(connect_outcome(c), WSAETIMEDOUT);
    CHECK_EQ(connect_to(c, &addr, "x", NULL), WSAEWOULDBLOCK); /* not WSAEALREADY */
    close_socket(c);
    close(lfd);
}

/* Its time-out ends the connect with its one-shot registration armed (for the answer): the
 * timer takes it out of the epoll set (one EPOLL_CTL_DEL), rather than leave it armed on the
 * descriptor, which stays the socket's when no fresh one can be had. */
TEST(connect_nonblocking_timed_out_takes_its_armed_registration_out) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_tcp_listener(4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_WSP, WSP_CONNECT_TIMEOUT, 1500); /* outlasts the steps up to the lock */
    set_nonblocking(c, 1);
    CHECK_EQ(connect_to(c, &addr, "x", NULL), WSAEWOULDBLOCK);
    uint8_t buf[64];
    wsp_hs_frame f;
    int afd = accept_whole_request(lfd, buf, sizeof buf, &f); /* the whole request went out: the connect waits for the answer */
    /* Under the socket's lock the step that sent it (and armed the registration for the
     * answer) is over, and the timer cannot end the connect before the count starts. */
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(c, &err);
    CHECK(so != NULL);
    pthread_mutex_lock(&so->lock);
    CHECK(so->connector != NULL);
    FAULT(epoll_ctl, .nth = 1 << 30); /* counts every thread's calls, fails none */
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    CHECK_EQ(connect_outcome(c), WSAETIMEDOUT);
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 1);
    fault_clear();
    close_socket(c);
    close(afd);
    close(lfd);
}

/* The step that sends the request (the reactor's, on the connection's coming up: the first
 * send, in the connect call, found no room) does not also look for the answer: the server
 * has not had the request yet; the answer is read when the descriptor says it is there (no
 * receive at all here, the server never answering). */
TEST(connect_nonblocking_step_that_sends_the_request_reads_nothing) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_tcp_listener(4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(c, 1);
    FAULT(send, .err = EAGAIN, .this_thread = 1); /* the connect call's own first send */
    FAULT(recv, .nth = 1 << 30); /* counts every thread's receives, fails none */
    CHECK_EQ(connect_to(c, &addr, "x", NULL), WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    uint8_t buf[64];
    wsp_hs_frame f;
    int afd = accept_whole_request(lfd, buf, sizeof buf, &f); /* the reactor's step sent it */
    /* Under the socket's lock, that step is over. */
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(c, &err);
    CHECK(so != NULL);
    pthread_mutex_lock(&so->lock);
    CHECK(so->connector != NULL);
    CHECK_EQ(fault_calls(FAULT_recv), 0);
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    fault_clear();
    close_socket(c);
    close(afd);
    close(lfd);
}

/* The wait for the answer is a whole WSP_CONNECT_TIMEOUT from when the request went out,
 * not from the connect call: a request the reactor's step sends only after the first
 * time-out has passed (the step held before it) leaves the connect waiting, its timer due a
 * whole time-out after the send. */
TEST(connect_nonblocking_answer_wait_counts_from_the_request_sent) {
    start();
    enum { TIMEOUT = 1000 };
    struct sockaddr_storage addr;
    int lfd = silent_tcp_listener(4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_WSP, WSP_CONNECT_TIMEOUT, TIMEOUT);
    set_nonblocking(c, 1);
    FAULT(send, .err = EAGAIN, .this_thread = 1); /* the connect call's own first send */
    FAULT(getsockopt, .nth = 1, .hold = 1);       /* the reactor's step: its SO_ERROR first */
    uint64_t started = wsp_now_ms();
    CHECK_EQ(connect_to(c, &addr, "x", NULL), WSAEWOULDBLOCK);
    WAIT_FOR(fault_holding() == 1, 10000);
    /* Not synchronization: the first time-out passing while the step is held. */
    WAIT_FOR(wsp_now_ms() > started + TIMEOUT + 5, 10000);
    uint64_t released = wsp_now_ms();
    fault_release();
    uint8_t buf[64];
    wsp_hs_frame f;
    int afd = accept_whole_request(lfd, buf, sizeof buf, &f); /* the step sent it, after the hold */
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(c, &err);
    CHECK(so != NULL);
    pthread_mutex_lock(&so->lock);
    CHECK(so->connector != NULL); /* still waiting for the answer */
    struct wsp_reactor_item *item = (struct wsp_reactor_item *)so->connector; /* its first */
    CHECK(atomic_load(&item->due_ms) >= released + TIMEOUT);
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    fault_clear();
    close_socket(c);
    close(afd);
    close(lfd);
}

/* A connect limit nearer than the time-out bounds the connector's timer: due at the limit,
 * not a whole time-out away. */
TEST(connect_nonblocking_timer_is_due_at_a_nearer_limit) {
    start();
    enum { LIMIT = 2000, TIMEOUT = 60000 };
    struct sockaddr_storage addr;
    int lfd = silent_tcp_listener(4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_WSP, WSP_CONNECT_TIMEOUT, TIMEOUT);
    set_dword(c, SOL_WSP, WSP_CONNECT_LIMIT, LIMIT);
    set_nonblocking(c, 1);
    uint64_t before = wsp_now_ms();
    CHECK_EQ(connect_to(c, &addr, "x", NULL), WSAEWOULDBLOCK);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(c, &err);
    CHECK(so != NULL);
    pthread_mutex_lock(&so->lock);
    CHECK(so->connector != NULL);
    struct wsp_reactor_item *item = (struct wsp_reactor_item *)so->connector; /* its first */
    uint64_t due = atomic_load(&item->due_ms);
    uint64_t after = wsp_now_ms();
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    /* The limit counts from the next whole millisecond (wsp_deadline_in). */
    CHECK(due >= before + LIMIT && due <= after + LIMIT + 1);
    close_socket(c);
    close(lfd);
}

/* A server may answer with a QoS the client did not ask for (it sent none, and passed no QOS
 * to fill): the socket keeps it (SIO_GET_QOS reports it), and the connect succeeds. */
TEST(connect_answer_with_a_qos_unasked_is_kept_by_the_socket) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_tcp_listener(4, &addr);
    static struct async_connect ac;
    ac = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&ac);
    uint8_t buf[64];
    wsp_hs_frame f;
    int afd = accept_whole_request(lfd, buf, sizeof buf, &f);
    CHECK(!f.has_qos); /* the client sent none */
    wsp_hs_frame answer = {.type = WSP_HS_ACCEPT, .has_qos = 1};
    answer.qos.sending.token_rate = 4321;
    uint8_t out[128];
    size_t n = wsp_hs_encode(&answer, out, sizeof out);
    CHECK(n > 0);
    CHECK_EQ(write(afd, out, n), (ssize_t)n);
    CHECK_EQ(async_connect_join(&ac), 0);
    QOS got;
    DWORD ret = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(ac.s, SIO_GET_QOS, NULL, 0, &got, sizeof got, &ret, NULL, NULL, NULL,
                          &err),
             0);
    CHECK_EQ(got.SendingFlowspec.TokenRate, 4321);
    close_socket(ac.s);
    close(afd);
    close(lfd);
}

static atomic_int reactor_reached;

static void note_reactor_reached(void *context) {
    (void)context;
    atomic_store(&reactor_reached, 1);
}

/* The answer comes as the connect's timer comes due, and a call (wsp_connector_poll) reads it
 * first, while the reactor's timer step waits for the socket's lock: the connect is
 * connected, and the timer step, finding it no longer its own, leaves it so (no
 * WSAETIMEDOUT, no second removal of the connector's item). */
TEST(connect_answered_as_its_timer_comes_due_stays_connected) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_tcp_listener(4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_WSP, WSP_CONNECT_TIMEOUT, 1500); /* outlasts the steps up to the lock */
    set_nonblocking(c, 1);
    CHECK_EQ(connect_to(c, &addr, "x", NULL), WSAEWOULDBLOCK);
    uint8_t buf[64];
    wsp_hs_frame f;
    int afd = accept_whole_request(lfd, buf, sizeof buf, &f); /* the whole request went out: the connect waits for the answer */
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(c, &err);
    CHECK(so != NULL);
    pthread_mutex_lock(&so->lock);
    CHECK(so->connector != NULL);
    /* The connector's reactor item is its first member; the reactor zeroes its due time
     * when it takes the timer up, just before its step, which now waits for the lock. */
    struct wsp_reactor_item *item = (struct wsp_reactor_item *)so->connector;
    WAIT_FOR(atomic_load(&item->due_ms) == 0, 10000);
    wsp_hs_frame accept_frame = {.type = WSP_HS_ACCEPT};
    uint8_t answer[16];
    size_t alen = wsp_hs_encode(&accept_frame, answer, sizeof answer);
    CHECK(alen > 0);
    CHECK_EQ(write(afd, answer, alen), (ssize_t)alen);
    struct pollfd p = {.fd = so->fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 10000), 1);
    wsp_connector_poll(so); /* what a call does: reads the answer, ends the connect */
    CHECK(so->connector == NULL);
    CHECK_EQ(so->state, WSP_STATE_CONNECTED);
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    /* A job runs on the reactor's thread once its timer step has returned. */
    CHECK_EQ(WSPRunOnEventThread(note_reactor_reached, NULL), 0);
    WAIT_FOR(atomic_load(&reactor_reached), 10000);
    CHECK_EQ(get_int(c, SOL_SOCKET, SO_ERROR), 0);
    send_all(c, "y", 1);
    char got = 0;
    CHECK_EQ(raw_recv(afd, &got, 1, 10000), 1);
    CHECK_EQ(got, 'y');
    close_socket(c);
    close(afd);
    close(lfd);
}

/* A blocking plain TCP connect whose SYN goes unanswered (the listener's queue is full, so
 * its kernel drops it) ends at WSP_CONNECT_TIMEOUT with WSAETIMEDOUT, not as connected. */
TEST(connect_blocking_plain_unanswered_times_out) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_tcp_listener(0, &addr); /* room for one connection waiting */
    int filler = raw_connect(&addr);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 10000), 1); /* queued: the queue is full */
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    set_dword(c, SOL_WSP, WSP_CONNECT_TIMEOUT, 200);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), WSAETIMEDOUT);
    close_socket(c);
    close(filler);
    close(lfd);
}

/* The request's patience is the time the client has left when the request actually goes
 * out: a non-blocking connect whose connection comes up late (its first SYN dropped by a
 * listener whose queue is full, the second a second later) stamps what remains then, not
 * the whole WSP_CONNECT_LIMIT. */
TEST(connect_nonblocking_request_sent_late_carries_the_patience_left) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_tcp_listener(0, &addr); /* room for one connection waiting */
    int filler = raw_connect(&addr);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 10000), 1); /* queued: the queue is full */
    enum { LIMIT = 60000 };
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_WSP, WSP_CONNECT_LIMIT, LIMIT);
    set_nonblocking(c, 1);
    long long before = now_ms();
    CHECK_EQ(connect_to(c, &addr, "x", NULL), WSAEWOULDBLOCK); /* its SYN is dropped */
    long long after = now_ms();
    sleep_ms(50); /* not synchronization: time that must show in the patience */
    long long room = now_ms();
    int first = accept(lfd, NULL, NULL); /* makes room for the retransmitted SYN */
    CHECK(first >= 0);
    p.revents = 0;
    CHECK_EQ(poll(&p, 1, 10000), 1);
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    uint8_t buf[256];
    size_t len = 0;
    wsp_hs_frame f;
    long r;
    while ((r = wsp_hs_decode(buf, len, WSP_HS_MAX_DATA, 1u << WSP_HS_REQUEST, &f)) == 0) {
        int n = raw_recv(fd, buf + len, sizeof buf - len, 10000);
        CHECK(n > 0);
        len += (size_t)n;
    }
    long long received = now_ms();
    CHECK(r > 0);
    CHECK(f.has_patience);
    /* Stamped after room was made (the connection could not come up before), and before
     * the request arrived; the deadline counts from the next whole millisecond. */
    CHECK((long long)f.patience_ms <= LIMIT + 2 - (room - after));
    CHECK((long long)f.patience_ms >= LIMIT - (received - before) - 1);
    close(fd);
    close(first);
    close(filler);
    close_socket(c);
    close(lfd);
}

/* ---- the descriptor's mode on a non-blocking connect (session 8, s8-m3) ---- */

/* A socket's descriptor is non-blocking from its creation, and the socket knows it: a
 * non-blocking connect, start to finish, changes no descriptor's mode (no FIONBIO ioctl). */
TEST(connect_nonblocking_changes_no_descriptor_mode) {
    start();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(lfd, 4), 0);
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    set_nonblocking(s, 1);
    FAULT(ioctl, .nth = 1000000); /* never fails: counts every thread's calls */
    int rc = connect_full(s, &addr, NULL, NULL, NULL);
    CHECK(rc == 0 || rc == WSAEWOULDBLOCK);
    WAIT_FOR(connect_full(s, &addr, NULL, NULL, NULL) == WSAEISCONN, 10000);
    CHECK_EQ(fault_calls(FAULT_ioctl), 0);
    fault_clear();
    close_socket(s);
    close(lfd);
}


/* A raw listener on loopback that answers nothing; *addr gets its address. */
static int silent_raw_listener(struct sockaddr_storage *addr) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(lfd, 4), 0);
    socklen_t alen = sizeof *addr;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)addr, &alen), 0);
    return lfd;
}
struct sending_connect {
    SOCKET s;
    struct sockaddr_storage addr;
    struct blocker blocker;
    int rc;
};

static void *sending_connect_main(void *arg) {
    struct sending_connect *b = arg;
    static uint8_t big[WSP_MAX_CONNECT_DATA];
    memset(big, 'r', sizeof big);
    WSABUF caller = {sizeof big, (char *)big};
    blocker_enter(&b->blocker);
    b->rc = connect_full(b->s, &b->addr, &caller, NULL, NULL);
    blocker_leave(&b->blocker);
    return NULL;
}

/* Closing a socket whose blocking connect is still sending its request (to a server that
 * reads nothing, the buffers full) ends the connect at once, with WSAEINTR, even when no spare
 * descriptor can take the old one's place: the close shuts the descriptor's sending side
 * too, which ends the wait for room (shutting the receiving side alone would leave it
 * waiting out its time-out). */
TEST(connect_blocking_is_woken_by_closing_the_socket_while_it_sends_the_request) {
    start();
    int tiny = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    CHECK_EQ(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny), 0); /* inherited */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(lfd, 4), 0);
    static struct sending_connect b;
    b = (struct sending_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .rc = -1};
    socklen_t alen = sizeof b.addr;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)&b.addr, &alen), 0);
    set_dword(b.s, SOL_WSP, WSP_MAX_CALLER_DATA, WSP_MAX_CONNECT_DATA);
    set_dword(b.s, SOL_WSP, WSP_CONNECT_TIMEOUT, 60000); /* far beyond the wait below */
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(b.s, SOL_SOCKET, SO_SNDBUF, (const char *)&tiny, sizeof tiny, &err),
             0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, sending_connect_main, &b), 0);
    wait_blocked(&b.blocker);
    int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC); /* the server reads nothing */
    CHECK(afd >= 0);
    int arrived = 0;
    CHECK_EQ(ioctl(afd, FIONREAD, &arrived), 0);
    CHECK(arrived < (int)WSP_MAX_CONNECT_DATA); /* the connect waits for room to send */
    /* No spare descriptor takes the old one's place (socket.c's release_descriptor): what
     * wakes the connect is the shutdown alone. */
    FAULT(socket, .err = EMFILE, .this_thread = 1);
    close_socket(b.s);
    CHECK_EQ(fault_fired(FAULT_socket), 1);
    /* A generous deadline: only turns a connect left waiting into a failure. */
    WAIT_FOR(__atomic_load_n(&b.blocker.returned, __ATOMIC_SEQ_CST), 10000);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(b.rc, WSAEINTR);
    close(afd);
    close(lfd);
}

/* Closing a socket whose non-blocking connect is still waiting for its answer, while a call
 * still holds the socket, leaves it naming no connector: the connector is the reactor's to
 * free, and a call still running (wsp_connector_poll) must not find it. */
TEST(connect_close_while_in_use_leaves_no_connector) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_raw_listener(&addr); /* answers nothing */
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(s, 1);
    CHECK_EQ(connect_full(s, &addr, NULL, NULL, NULL), WSAEWOULDBLOCK);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err); /* a call still running */
    CHECK(so != NULL);
    pthread_mutex_lock(&so->lock);
    CHECK(so->connector != NULL);
    pthread_mutex_unlock(&so->lock);
    close_socket(s);
    pthread_mutex_lock(&so->lock);
    CHECK(so->connector == NULL);
    wsp_connector_poll(so); /* what a call still running does: nothing now */
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    close(lfd);
}

/* A connect-data socket whose TCP connection is up but whose answer has not come is not
 * connected yet: getpeername is WSAENOTCONN, though the kernel knows the peer already. */
TEST(connect_waiting_for_its_answer_has_no_peer_name_yet) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_raw_listener(&addr); /* answers nothing */
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(s, 1);
    CHECK_EQ(connect_full(s, &addr, NULL, NULL, NULL), WSAEWOULDBLOCK);
    int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC); /* the TCP connection is up */
    CHECK(afd >= 0);
    struct sockaddr_storage name;
    int len = (int)sizeof name, err = 0;
    CHECK_EQ(T.lpWSPGetPeerName(s, (struct sockaddr *)&name, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTCONN);
    close_socket(s);
    close(afd);
    close(lfd);
}

/* The patience is stamped once, just before the request's first byte goes out: a request
 * whose first send stops in the middle of the four-byte field (the buffer full after it), and
 * whose rest the reactor sends well over a millisecond later, reaches the server with the
 * patience its first byte carried, not half of it stamped again later. */
TEST(connect_nonblocking_request_sent_in_pieces_keeps_the_patience_of_its_first_byte) {
    start();
    struct sockaddr_storage addr;
    int lfd = silent_raw_listener(&addr); /* answers nothing */
    enum { LIMIT = 60000 };
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_WSP, WSP_CONNECT_LIMIT, LIMIT);
    set_nonblocking(c, 1);
    /* Where the patience lies in this client's request (no data, no callee buffer). */
    uint8_t model[64];
    wsp_hs_frame mf = {.type = WSP_HS_REQUEST, .reads_reasons = 1, .has_patience = 1,
                       .patience_ms = LIMIT};
    size_t mlen = wsp_hs_encode(&mf, model, sizeof model);
    CHECK(mlen > 0);
    size_t off = wsp_hs_patience_offset(model, mlen);
    CHECK(off > 0);
    /* The connecting thread's first send moves the field's first two bytes and no more, the
     * next finds the buffer full; the reactor's step is held before it sends the rest (its
     * look at the connect's outcome, SO_ERROR, is the step's first call). */
    FAULT(send, .nth = 1, .max_bytes = off + 2);
    FAULT_ALSO(send, .nth = 2, .err = EAGAIN);
    FAULT(getsockopt, .nth = 1, .hold = 1);
    long long before = now_ms();
    CHECK_EQ(connect_full(c, &addr, NULL, NULL, NULL), WSAEWOULDBLOCK);
    long long after = now_ms();
    CHECK_EQ(fault_fired(FAULT_send), 2);
    WAIT_FOR(fault_holding() == 1, 10000);
    /* Not synchronization: time that a second stamp would show in the field's last bytes. */
    WAIT_FOR(now_ms() > after + 20, 10000);
    fault_release();
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(fd >= 0);
    uint8_t buf[256];
    size_t len = 0;
    wsp_hs_frame f;
    long r;
    while ((r = wsp_hs_decode(buf, len, WSP_HS_MAX_DATA, 1u << WSP_HS_REQUEST, &f)) == 0) {
        int n = raw_recv(fd, buf + len, sizeof buf - len, 10000);
        CHECK(n > 0);
        len += (size_t)n;
    }
    CHECK(r > 0);
    CHECK_EQ(fault_fired(FAULT_getsockopt), 1); /* the rest went out after the hold */
    CHECK_EQ(wsp_hs_patience_offset(buf, len), off);
    CHECK(f.has_patience);
    /* Stamped during the connect call; the deadline counts from the next whole millisecond. */
    CHECK((long long)f.patience_ms <= LIMIT);
    CHECK((long long)f.patience_ms >= LIMIT - (after - before) - 1);
    fault_clear();
    close(fd);
    close_socket(c);
    close(lfd);
}
