/* Failure paths of the system and allocation calls the provider makes (faults.h): each test
 * makes a call fail as the kernel or the allocator can (out of descriptors, out of memory,
 * interrupted, a full send buffer) and checks the one right outcome: the WSA code, no
 * descriptor of the provider's left behind, and the socket, listener or provider still
 * usable afterwards. Every test checks that its fault fired, so that it cannot pass without
 * taking the path it is about. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "handshake.h"
#include "internal.h"
#include "test-netevents.h"

static SOCKET try_socket(DWORD catalog, int *err) {
    WSAPROTOCOL_INFO info;
    memset(&info, 0, sizeof info);
    info.dwCatalogEntryId = catalog;
    *err = 0;
    return T.lpWSPSocket(0, 0, 0, &info, 0, 0, err);
}

/* A plain TCP connect (blocking) works: the provider is still usable. */
static void still_connects(void) {
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(s, &addr, NULL, NULL), 0);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    close_socket(a);
    close_socket(s);
    close_socket(l);
}

/* ---- lpWSPSocket --------------------------------------------------------------------------- */

TEST(fault_socket_creation_reports_the_kernels_shortage) {
    start();
    int before = provider_fds();
    static const struct {
        int e, wsa;
    } cases[] = {{EMFILE, WSAEMFILE}, {ENFILE, WSAEMFILE}, {ENOBUFS, WSAENOBUFS},
                 {ENOMEM, WSAENOBUFS}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FAULT(socket, .err = cases[i].e, .this_thread = 1);
        int err = 0;
        CHECK(try_socket(WSP_CATALOG_CDATA_IPV4, &err) == INVALID_SOCKET);
        CHECK_EQ(err, cases[i].wsa);
        CHECK_EQ(fault_fired(FAULT_socket), 1);
        WAIT_FOR(provider_fds() == before, 10000);
    }
    fault_clear();
    still_connects();
}

/* A new socket's descriptor needs one option set only when it is IPv6 (IPV6_V6ONLY, as
 * Winsock's IPv6 sockets are): an IPv4 socket is made with no setsockopt at all, of either
 * kind of entry. */
TEST(fault_socket_creation_sets_an_option_only_on_ipv6) {
    start();
    static const struct {
        DWORD catalog;
        int calls;
    } cases[] = {{WSP_CATALOG_TCP_IPV4, 0}, {WSP_CATALOG_CDATA_IPV4, 0},
                 {WSP_CATALOG_TCP_IPV6, 1}, {WSP_CATALOG_CDATA_IPV6, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FAULT(setsockopt, .nth = 1000000, .this_thread = 1); /* never fails: counts */
        SOCKET s = new_socket(cases[i].catalog);
        CHECK_EQ(fault_calls(FAULT_setsockopt), cases[i].calls);
        fault_clear();
        close_socket(s);
    }
}

/* The socket's memory cannot be had: WSAENOBUFS, and its descriptor is closed. */
TEST(fault_socket_without_memory_closes_its_descriptor) {
    start();
    int before = provider_fds();
    FAULT(calloc, .err = ENOMEM, .this_thread = 1);
    int err = 0;
    CHECK(try_socket(WSP_CATALOG_TCP_IPV4, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    WAIT_FOR(provider_fds() == before, 10000);
    fault_clear();
    still_connects();
}

/* The handle table cannot grow: WSAEMFILE (no more socket handles), the descriptor closed,
 * the sockets made before intact. */
TEST(fault_handle_table_that_cannot_grow_is_wsaemfile) {
    start();
    int before = provider_fds();
    FAULT(realloc, .times = -1, .err = ENOMEM, .this_thread = 1);
    SOCKET made[64];
    int n = 0, err = 0;
    while (n < 64 && (made[n] = try_socket(WSP_CATALOG_TCP_IPV4, &err)) != INVALID_SOCKET)
        n++;
    CHECK(n < 64);
    CHECK_EQ(err, WSAEMFILE);
    CHECK(fault_fired(FAULT_realloc) >= 1);
    WAIT_FOR(provider_fds() == before + n, 10000);
    fault_clear();
    for (int i = 0; i < n; i++)
        close_socket(made[i]);
    WAIT_FOR(provider_fds() == before, 10000);
    still_connects();
}

/* ---- WSPStartup: the reactor cannot start ----------------------------------------------------- */

/* WSPStartup fails with WSASYSNOTREADY when the nth call of fn fails with e, leaves no
 * descriptor open, and succeeds when tried again. */
static void startup_fails_when(enum fault_fn fn, int nth, int e) {
    CHECK_EQ(provider_fds(), 0);
    fault_set(fn, (struct fault){.nth = nth, .err = e, .this_thread = 1});
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    WSPPROC_TABLE table;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &table), WSASYSNOTREADY);
    CHECK_EQ(fault_fired(fn), 1);
    CHECK_EQ(provider_fds(), 0);
    fault_clear();
    start();
    still_connects();
}

TEST(fault_startup_without_an_epoll_instance) { startup_fails_when(FAULT_epoll_create1, 1, EMFILE); }
TEST(fault_startup_without_a_wake_up_descriptor) { startup_fails_when(FAULT_eventfd, 1, EMFILE); }
TEST(fault_startup_without_a_timer_descriptor) { startup_fails_when(FAULT_timerfd_create, 1, ENOMEM); }
TEST(fault_startup_when_the_wake_up_cannot_be_watched) { startup_fails_when(FAULT_epoll_ctl, 1, ENOMEM); }
TEST(fault_startup_when_the_timer_cannot_be_watched) { startup_fails_when(FAULT_epoll_ctl, 2, ENOMEM); }
TEST(fault_startup_without_a_thread) { startup_fails_when(FAULT_pthread_create, 1, EAGAIN); }
/* The first start-up's copy of the upcall table cannot be had: the reactor is not started
 * (its start must not stand for the failed copy), and WSPStartup fails. */
TEST(fault_startup_without_memory_for_the_upcall_table) { startup_fails_when(FAULT_malloc, 1, ENOMEM); }

/* ---- lpWSPConnect ----------------------------------------------------------------------------- */

/* Accepts every connection on a connect-data listener, answering with callee data, until
 * the listener is closed; closes what it accepted. */
struct acceptor {
    SOCKET l;
    struct sockaddr_storage addr;
    pthread_t thread;
    struct blocker first; /* the first accept */
};

static int answer_cond(LPWSABUF caller_id, LPWSABUF caller_data, LPQOS sqos, LPQOS gqos,
                       LPWSABUF callee_id, LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)caller_id, (void)caller_data, (void)sqos, (void)gqos, (void)callee_id, (void)g;
    (void)ctx;
    CHECK(callee_data->len >= 6);
    memcpy(callee_data->buf, "answer", 6);
    callee_data->len = 6;
    return CF_ACCEPT;
}

static void *acceptor_main(void *arg) {
    struct acceptor *k = arg;
    blocker_enter(&k->first);
    for (;;) {
        int err = 0;
        SOCKET a = accept_with(k->l, answer_cond, 0, &err);
        if (a == INVALID_SOCKET)
            return NULL; /* the listener is closed */
        close_socket(a);
    }
}

static void acceptor_start(struct acceptor *k) {
    k->l = listener(WSP_CATALOG_CDATA_IPV4, 16, &k->addr);
    CHECK_EQ(pthread_create(&k->thread, NULL, acceptor_main, k), 0);
    /* Asleep in the accept: what the listener opens for a waiting accept is open (the
     * descriptor counts below start from here). */
    wait_blocked(&k->first);
}

static void acceptor_stop(struct acceptor *k) {
    close_socket(k->l);
    pthread_join(k->thread, NULL);
}

/* Returns once the non-blocking connect on s has connected; fails the test if it ends
 * otherwise (connecting again then starts a new connect) or takes over 10 s. */
static void wait_connected(SOCKET s, const struct sockaddr_storage *addr) {
    long long deadline = now_ms() + 10000;
    int rc;
    while ((rc = connect_full(s, addr, NULL, NULL, NULL)) != WSAEISCONN) {
        CHECK_EQ(rc, WSAEALREADY);
        CHECK(now_ms() < deadline);
        sleep_ms(1);
    }
}

/* Each allocation of a blocking connect-data connect fails in turn: the connect fails with
 * WSAENOBUFS, keeps nothing of what it had (no descriptor but the socket's own), and the
 * socket connects once memory is there, its callee data intact. */
TEST(fault_blocking_connect_without_memory_is_wsaenobufs_at_every_allocation) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    int before = provider_fds();
    int failures = 0;
    for (int nth = 1;; nth++) {
        CHECK(nth < 20);
        FAULT(malloc, .nth = nth, .err = ENOMEM, .this_thread = 1);
        char in[16];
        WSABUF callee = {sizeof in, in};
        int rc = connect_full(s, &k.addr, &(WSABUF){2, "hi"}, &callee, NULL);
        if (!fault_fired(FAULT_malloc)) { /* every allocation has failed once */
            CHECK_EQ(rc, 0);
            CHECK_EQ(callee.len, 6);
            CHECK_MEM(in, "answer", 6);
            break;
        }
        CHECK_EQ(rc, WSAENOBUFS);
        WAIT_FOR(provider_fds() == before, 10000);
        failures++;
    }
    /* The request and its reader, then the callee data kept for WSP_CALLEE_DATA. */
    CHECK(failures >= 3);
    fault_clear();
    char cd[16];
    int len = sizeof cd, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_WSP, WSP_CALLEE_DATA, cd, &len, &err), 0);
    CHECK_EQ(len, 6);
    CHECK_MEM(cd, "answer", 6);
    close_socket(s);
    acceptor_stop(&k);
}

/* The same with a QoS whose provider-specific part the answer brings back too: every
 * allocation fails in turn, among them the copy of those bytes after the callee data's was
 * had (which the failure then gives back: the leak check); the connect then succeeds with
 * both. */
TEST(fault_blocking_connect_with_qos_without_memory_is_wsaenobufs_at_every_allocation) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    int before = provider_fds();
    int failures = 0;
    for (int nth = 1;; nth++) {
        CHECK(nth < 20);
        char specific[5] = {1, 2, 3, 4, 5};
        QOS q;
        memset(&q, 0, sizeof q);
        q.ProviderSpecific = (WSABUF){sizeof specific, specific};
        char in[16];
        WSABUF callee = {sizeof in, in};
        FAULT(malloc, .nth = nth, .err = ENOMEM, .this_thread = 1);
        int rc = connect_full(s, &k.addr, &(WSABUF){2, "hi"}, &callee, &q);
        if (!fault_fired(FAULT_malloc)) { /* every allocation has failed once */
            CHECK_EQ(rc, 0);
            CHECK_EQ(callee.len, 6);
            CHECK_MEM(in, "answer", 6);
            CHECK_EQ(q.ProviderSpecific.len, 5);
            CHECK_MEM(specific, "\1\2\3\4\5", 5);
            break;
        }
        CHECK_EQ(rc, WSAENOBUFS);
        WAIT_FOR(provider_fds() == before, 10000);
        failures++;
    }
    /* The request and its reader, then the callee data and the QoS bytes kept. */
    CHECK(failures >= 4);
    fault_clear();
    close_socket(s);
    acceptor_stop(&k);
}

/* A receive of the answer interrupted by a signal is tried again, not reported. */
TEST(fault_blocking_connect_survives_an_interrupted_receive) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    FAULT(recv, .err = EINTR, .this_thread = 1);
    CHECK_EQ(connect_to(s, &k.addr, "hi", NULL), 0);
    CHECK_EQ(fault_fired(FAULT_recv), 1);
    close_socket(s);
    acceptor_stop(&k);
}

/* Only a reset while the answer is awaited is the server's refusal: a receive of the answer
 * that fails otherwise (the connection timed out, the host became unreachable: both numbered
 * above ECONNRESET) fails the connect with its own code. */
TEST(fault_connect_answer_whose_receive_fails_otherwise_than_a_reset_keeps_its_code) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    static const struct { int e, code; } cases[] = {{ETIMEDOUT, WSAETIMEDOUT},
                                                     {EHOSTUNREACH, WSAEHOSTUNREACH}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
        FAULT(recv, .err = cases[i].e, .this_thread = 1);
        CHECK_EQ(connect_to(s, &k.addr, "hi", NULL), cases[i].code);
        CHECK_EQ(fault_fired(FAULT_recv), 1);
        fault_clear();
        close_socket(s);
    }
    acceptor_stop(&k);
}

/* A send of the request interrupted by a signal is tried again, blocking or not. */
TEST(fault_connect_request_survives_an_interrupted_send) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    FAULT(send, .err = EINTR, .this_thread = 1);
    CHECK_EQ(connect_to(s, &k.addr, "hi", NULL), 0);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    close_socket(s);
    s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(s, 1);
    FAULT(send, .err = EINTR, .this_thread = 1);
    CHECK_EQ(connect_full(s, &k.addr, &(WSABUF){2, "hi"}, NULL, NULL), WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    wait_connected(s, &k.addr);
    close_socket(s);
    acceptor_stop(&k);
}

/* A send of the request that fails (the connection reset under it: the server refused it)
 * fails a blocking connect with WSAECONNREFUSED at once: no wait (poll) for an answer to a
 * request never sent, which would end only when the server gives up on the silent client. */
TEST(fault_connect_request_whose_send_fails_fails_the_connect) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    FAULT(send, .err = ECONNRESET, .this_thread = 1);
    FAULT(poll, .nth = 1000000, .this_thread = 1); /* counts this thread's polls, fails none */
    CHECK_EQ(connect_to(s, &k.addr, "hi", NULL), WSAECONNREFUSED);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    CHECK_EQ(fault_calls(FAULT_poll), 0); /* no wait for an answer */
    fault_clear();
    close_socket(s);
    acceptor_stop(&k);
}

/* Only a reset (or a shut connection) under the request is the server's refusal: a send that
 * fails otherwise, as when the network turned out unreachable while the connection was being
 * set up, fails the connect with that error. */
TEST(fault_connect_request_whose_send_finds_the_network_unreachable_is_enetunreach) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    FAULT(send, .err = ENETUNREACH, .this_thread = 1);
    CHECK_EQ(connect_to(s, &k.addr, "hi", NULL), WSAENETUNREACH);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    close_socket(s);
    acceptor_stop(&k);
}

static int so_error_of(SOCKET s) {
    int v = -1, len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_ERROR, (char *)&v, &len, &err), 0);
    return v;
}

/* Nor does a non-blocking connect wait to send its request again when the first send fails
 * otherwise than EAGAIN: with EPERM (a firewall rule's refusal, numbered below EAGAIN) the
 * connect ends with WSAEACCES, which SO_ERROR then reports. */
TEST(fault_nonblocking_connect_request_whose_send_is_not_permitted_fails_the_connect) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(s, 1);
    FAULT(send, .err = EPERM, .this_thread = 1);
    CHECK_EQ(connect_full(s, &k.addr, &(WSABUF){2, "hi"}, NULL, NULL), WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    int v = 0;
    WAIT_FOR((v = so_error_of(s)) != 0, 10000);
    CHECK_EQ(v, WSAEACCES);
    close_socket(s);
    acceptor_stop(&k);
}

/* A raw server that accepts connections one at a time (count of them), ends its side of
 * each at once (FIN, no answer) and reads until the client has gone. */
struct silent_server {
    int lfd, count;
    struct sockaddr_storage addr;
    pthread_t thread;
};

static void *silent_server_main(void *arg) {
    struct silent_server *v = arg;
    for (int i = 0; i < v->count; i++) {
        int fd = accept(v->lfd, NULL, NULL);
        CHECK(fd >= 0);
        CHECK_EQ(shutdown(fd, SHUT_WR), 0);
        char b[256];
        while (recv(fd, b, sizeof b, 0) > 0) {
        }
        close(fd);
    }
    return NULL;
}

static void silent_server_start(struct silent_server *v) {
    v->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in *in = (struct sockaddr_in *)&v->addr;
    memset(&v->addr, 0, sizeof v->addr);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(v->lfd, (struct sockaddr *)in, sizeof *in), 0);
    CHECK_EQ(listen(v->lfd, 4), 0);
    socklen_t len = sizeof *in;
    CHECK_EQ(getsockname(v->lfd, (struct sockaddr *)in, &len), 0);
    CHECK_EQ(pthread_create(&v->thread, NULL, silent_server_main, v), 0);
}

/* The answer's first receive finds nothing (EAGAIN), the next one the server's close: the
 * connect fails at once with WSAECONNABORTED (not a connect-data server), whatever errno
 * still says from the receive before; a non-blocking connect ends the same way. */
TEST(fault_connect_sees_the_close_after_finding_nothing) {
    start();
    struct silent_server v = {.count = 2};
    silent_server_start(&v);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    FAULT(recv, .err = EAGAIN, .this_thread = 1);
    CHECK_EQ(connect_to(s, &v.addr, "hi", NULL), WSAECONNABORTED);
    CHECK_EQ(fault_fired(FAULT_recv), 1);
    fault_clear();
    close_socket(s);
    s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(s, 1);
    CHECK_EQ(connect_full(s, &v.addr, &(WSABUF){2, "hi"}, NULL, NULL), WSAEWOULDBLOCK);
    DWORD e = 0;
    long long deadline = now_ms() + 10000;
    while (e == 0) {
        int len = sizeof e, err = 0;
        CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_ERROR, (char *)&e, &len, &err), 0);
        CHECK(now_ms() < deadline);
        sleep_ms(1);
    }
    CHECK_EQ(e, WSAECONNABORTED);
    close_socket(s);
    pthread_join(v.thread, NULL);
    close(v.lfd);
}

/* A wait for the connection interrupted by a signal is resumed, not reported. */
TEST(fault_blocking_plain_connect_survives_an_interrupted_wait) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    FAULT(poll, .err = EINTR, .this_thread = 1);
    CHECK_EQ(connect_to(s, &addr, NULL, NULL), 0);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    close_socket(a);
    close_socket(s);
    close_socket(l);
}

/* A non-blocking connect whose connector cannot be allocated, or whose descriptor the reactor
 * cannot watch: WSAENOBUFS at once, the socket left unconnected and able to connect. */
static void nonblocking_connect_fails_when(enum fault_fn fn) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(s, 1);
    int before = provider_fds();
    fault_set(fn, (struct fault){.err = ENOMEM, .this_thread = 1});
    CHECK_EQ(connect_full(s, &k.addr, &(WSABUF){2, "hi"}, NULL, NULL), WSAENOBUFS);
    CHECK_EQ(fault_fired(fn), 1);
    WAIT_FOR(provider_fds() == before, 10000);
    fault_clear();
    CHECK_EQ(connect_full(s, &k.addr, &(WSABUF){2, "hi"}, NULL, NULL), WSAEWOULDBLOCK);
    wait_connected(s, &k.addr);
    close_socket(s);
    acceptor_stop(&k);
}

TEST(fault_nonblocking_connect_without_a_connector) { nonblocking_connect_fails_when(FAULT_calloc); }
TEST(fault_nonblocking_connect_the_reactor_cannot_watch) {
    nonblocking_connect_fails_when(FAULT_epoll_ctl);
}

/* What the server's condition function was given as caller data. */
static uint8_t caller_seen[4096];
static ULONG caller_seen_len;

static int record_cond(LPWSABUF caller_id, LPWSABUF caller_data, LPQOS sqos, LPQOS gqos,
                       LPWSABUF callee_id, LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)caller_id, (void)sqos, (void)gqos, (void)callee_id, (void)callee_data, (void)g;
    (void)ctx;
    CHECK(caller_data && caller_data->len <= sizeof caller_seen);
    memcpy(caller_seen, caller_data->buf, caller_data->len);
    caller_seen_len = caller_data->len;
    return CF_ACCEPT;
}

/* A non-blocking connect's request goes out in pieces: the first send takes 100 bytes, the
 * next finds the buffer full, and so does the reactor's first try; the reactor sends the rest
 * once the socket is writable again, and the server gets the request whole. */
TEST(fault_nonblocking_connect_sends_the_rest_of_its_request_when_writable) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static char data[4000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 13 + 1);
    set_dword(l, SOL_WSP, WSP_MAX_CALLER_DATA, sizeof data);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(s, SOL_WSP, WSP_MAX_CALLER_DATA, sizeof data);
    set_nonblocking(s, 1);
    /* Counted on every thread: the connecting thread's two sends, then the reactor's. */
    FAULT(send, .nth = 1, .max_bytes = 100);
    FAULT_ALSO(send, .nth = 2, .err = EAGAIN);
    FAULT_ALSO(send, .nth = 3, .err = EAGAIN);
    CHECK_EQ(connect_full(s, &addr, &(WSABUF){sizeof data, data}, NULL, NULL), WSAEWOULDBLOCK);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(fault_fired(FAULT_send), 3);
    fault_clear();
    int err = 0;
    SOCKET a = accept_with(l, record_cond, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(caller_seen_len, sizeof data);
    CHECK_MEM(caller_seen, data, sizeof data);
    wait_connected(s, &addr);
    close_socket(a);
    close_socket(s);
    close_socket(l);
}

/* ---- event objects and network events --------------------------------------------------------- */

/* WSACreateEvent fails with code when the nth call of fn fails with e, leaving nothing open;
 * the next one works. */
static void event_creation_fails_when(enum fault_fn fn, int nth, int e, int code) {
    start();
    int before = provider_fds();
    fault_set(fn, (struct fault){.nth = nth, .err = e, .this_thread = 1});
    WSASetLastError(0);
    CHECK(WSACreateEvent() == WSA_INVALID_EVENT);
    CHECK_EQ(WSAGetLastError(), code);
    CHECK_EQ(fault_fired(fn), 1);
    WAIT_FOR(provider_fds() == before, 10000);
    fault_clear();
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    CHECK(WSACloseEvent(ev));
    WAIT_FOR(provider_fds() == before, 10000);
}

TEST(fault_event_without_memory) {
    event_creation_fails_when(FAULT_calloc, 1, ENOMEM, WSA_NOT_ENOUGH_MEMORY);
}
TEST(fault_event_without_a_descriptor) {
    event_creation_fails_when(FAULT_eventfd, 1, EMFILE, WSAEMFILE);
}
TEST(fault_event_without_an_epoll_instance) {
    event_creation_fails_when(FAULT_epoll_create1, 1, ENOMEM, WSA_NOT_ENOUGH_MEMORY);
}
TEST(fault_event_without_memory_for_its_set) {
    event_creation_fails_when(FAULT_calloc, 2, ENOMEM, WSA_NOT_ENOUGH_MEMORY);
}

TEST(fault_event_table_that_cannot_grow) {
    event_creation_fails_when(FAULT_realloc, 1, ENOMEM, WSA_NOT_ENOUGH_MEMORY);
}

/* ---- message queues ---- */

/* WSPCreateMessageQueue fails with code when the first call of fn fails with e, leaving
 * nothing open; the next one works. */
static void queue_creation_fails_when(enum fault_fn fn, int e, int code) {
    int before = provider_fds();
    fault_set(fn, (struct fault){.err = e, .this_thread = 1});
    WSASetLastError(0);
    CHECK(WSPCreateMessageQueue() == NULL);
    CHECK_EQ(WSAGetLastError(), code);
    CHECK_EQ(fault_fired(fn), 1);
    CHECK_EQ(provider_fds(), before);
    fault_clear();
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    CHECK(WSPDestroyMessageQueue(q));
    CHECK_EQ(provider_fds(), before);
}

TEST(fault_queue_without_memory) { queue_creation_fails_when(FAULT_calloc, ENOMEM, WSA_NOT_ENOUGH_MEMORY); }
TEST(fault_queue_without_a_descriptor) { queue_creation_fails_when(FAULT_eventfd, EMFILE, WSAEMFILE); }
TEST(fault_queue_table_that_cannot_grow) {
    queue_creation_fails_when(FAULT_realloc, ENOMEM, WSA_NOT_ENOUGH_MEMORY);
}

/* A message that finds the queue full and no memory to grow it is refused with
 * WSA_NOT_ENOUGH_MEMORY; the queue keeps what it had and takes messages again afterwards. */
TEST(fault_queue_that_cannot_grow_refuses_the_message) {
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    /* The first growth (from nothing) works, the second fails. */
    FAULT(malloc, .nth = 2, .times = -1, .err = ENOMEM, .this_thread = 1);
    int posted = 0;
    while (posted < 10000 && WSPPostMessage(q, 0x400, (WPARAM)posted, 0))
        posted++;
    CHECK(posted > 0 && posted < 10000);
    CHECK_EQ(WSAGetLastError(), WSA_NOT_ENOUGH_MEMORY);
    CHECK(fault_fired(FAULT_malloc) >= 1);
    fault_clear();
    CHECK(WSPPostMessage(q, 0x400, (WPARAM)posted, 0));
    for (int i = 0; i <= posted; i++) {
        WSPMSG m;
        CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
        CHECK_EQ(m.wParam, (WPARAM)i);
    }
    CHECK(WSPDestroyMessageQueue(q));
}

/* Waits for FD_READ on s through ev, with data sent by c. */
static void read_event_arrives(SOCKET c, SOCKET s, WSAEVENT ev) {
    ne_send_str(c, "x");
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    WSANETWORKEVENTS ne;
    int err = 0;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(s, ev, &ne, &err), 0);
    CHECK(ne.lNetworkEvents & FD_READ);
    CHECK_EQ(ne.iErrorCode[FD_READ_BIT], 0);
}

/* The event's own epoll set cannot take the socket: the reactor watches it instead, and
 * FD_READ still arrives. */
TEST(fault_event_select_falls_back_to_the_reactor) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    int before = provider_fds();
    FAULT(epoll_ctl, .err = ENOMEM, .this_thread = 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1);
    fault_clear();
    read_event_arrives(c, s, ev);
    close_socket(s);
    WAIT_FOR(provider_fds() == before - 1, 10000);
    CHECK(WSACloseEvent(ev));
    close_socket(c);
    close_socket(l);
}

/* Neither the set nor the reactor can take the descriptor itself (the reactor still knows it
 * from elsewhere: EEXIST): the reactor watches a duplicate, which is closed with the socket. */
TEST(fault_event_select_watches_a_duplicate_descriptor) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    int before = provider_fds();
    FAULT(epoll_ctl, .nth = 1, .err = ENOMEM, .this_thread = 1);
    FAULT_ALSO(epoll_ctl, .nth = 2, .err = EEXIST, .this_thread = 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 2);
    fault_clear();
    WAIT_FOR(provider_fds() == before + 1, 10000);
    read_event_arrives(c, s, ev);
    close_socket(s);
    WAIT_FOR(provider_fds() == before - 1, 10000);
    CHECK(WSACloseEvent(ev));
    close_socket(c);
    close_socket(l);
}

/* A registration cancelled while the reactor watches a duplicate: the reactor forgets the
 * duplicate before closing it. (epoll keys a registration by descriptor and file; closing the
 * duplicate alone would leave it registered as long as the socket's own descriptor holds the
 * file, reporting for a watch already freed, and refusing a new duplicate of the same number.)
 * Selecting again the same way, whose duplicate gets the number the first had, works, and
 * FD_READ arrives. */
TEST(fault_event_select_cancelled_forgets_the_duplicate_it_watched) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    int before = provider_fds();
    int err = 0;
    for (int i = 0; i < 2; i++) {
        FAULT(epoll_ctl, .nth = 1, .err = ENOMEM, .this_thread = 1);
        FAULT_ALSO(epoll_ctl, .nth = 2, .err = EEXIST, .this_thread = 1);
        CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
        CHECK_EQ(fault_fired(FAULT_epoll_ctl), 2);
        fault_clear();
        CHECK_EQ(provider_fds(), before + 1);
        if (i == 0) {
            CHECK_EQ(T.lpWSPEventSelect(s, ev, 0, &err), 0);
            CHECK_EQ(provider_fds(), before);
        }
    }
    read_event_arrives(c, s, ev);
    close_socket(s);
    WAIT_FOR(provider_fds() == before - 1, 10000);
    CHECK(WSACloseEvent(ev));
    close_socket(c);
    close_socket(l);
}

/* The same in a process without standard input: the duplicate is descriptor 0, as good a
 * descriptor as any. */
TEST(fault_event_select_watches_a_duplicate_that_is_descriptor_0) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    close(0);
    FAULT(epoll_ctl, .nth = 1, .err = ENOMEM, .this_thread = 1);
    FAULT_ALSO(epoll_ctl, .nth = 2, .err = EEXIST, .this_thread = 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 2);
    fault_clear();
    CHECK(fcntl(0, F_GETFD) >= 0); /* the duplicate */
    read_event_arrives(c, s, ev);
    close_socket(s);
    CHECK(WSACloseEvent(ev));
    close_socket(c);
    close_socket(l);
}

/* The duplicate cannot be had either: the registration fails with the kernel's reason and
 * is cancelled; selecting again works. */
TEST(fault_event_select_without_a_duplicate_descriptor) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    int before = provider_fds();
    FAULT(epoll_ctl, .nth = 1, .err = ENOMEM, .this_thread = 1);
    FAULT_ALSO(epoll_ctl, .nth = 2, .err = EEXIST, .this_thread = 1);
    FAULT(fcntl, .err = EMFILE, .this_thread = 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEMFILE);
    CHECK_EQ(fault_fired(FAULT_fcntl), 1);
    WAIT_FOR(provider_fds() == before, 10000);
    fault_clear();
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    read_event_arrives(c, s, ev);
    CHECK(WSACloseEvent(ev));
    close_socket(s);
    close_socket(c);
    close_socket(l);
}

/* The duplicate is had, but the reactor cannot take it either: the registration fails with
 * the reactor's reason (no kernel memory: WSAENOBUFS), the duplicate is closed at once, and
 * selecting again works. */
TEST(fault_event_select_whose_duplicate_the_reactor_cannot_take_closes_it) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    int before = provider_fds();
    FAULT(epoll_ctl, .nth = 1, .err = ENOMEM, .this_thread = 1);
    FAULT_ALSO(epoll_ctl, .nth = 2, .err = EEXIST, .this_thread = 1);
    FAULT_ALSO(epoll_ctl, .nth = 3, .err = ENOMEM, .this_thread = 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 3);
    fault_clear();
    CHECK_EQ(provider_fds(), before);
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    read_event_arrives(c, s, ev);
    CHECK(WSACloseEvent(ev));
    close_socket(s);
    close_socket(c);
    close_socket(l);
}

/* The watch's memory cannot be had: WSAENOBUFS, nothing registered; selecting again works. */
TEST(fault_event_select_without_memory) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    FAULT(calloc, .err = ENOMEM, .this_thread = 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    fault_clear();
    /* Not registered: the socket may be made blocking (a registration would refuse it). */
    ne_fionbio(s, 0);
    ne_fionbio(s, 1);
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    read_event_arrives(c, s, ev);
    CHECK(WSACloseEvent(ev));
    close_socket(s);
    close_socket(c);
    close_socket(l);
}

/* The look at the descriptor's state when a registration starts fails: nothing is made up
 * (no FD_READ without data), and the registration works from then on. */
TEST(fault_event_registration_whose_look_fails_makes_nothing_up) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    FAULT(poll, .err = ENOMEM, .this_thread = 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    WSANETWORKEVENTS ne;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(s, ev, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, 0);
    read_event_arrives(c, s, ev);
    CHECK(WSACloseEvent(ev));
    close_socket(s);
    close_socket(c);
    close_socket(l);
}

/* A recv that fills its buffer leaves "is more waiting?" to the next enumeration (event_set.h),
 * which asks with one poll. Interrupted, the poll is made again (once more); failing otherwise,
 * it is not, and the socket looks itself: FD_READ is reported either way. */
static void data_left_is_reported_when_the_look_fails_with(int e) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    WSANETWORKEVENTS ne;
    ne_send_str(c, "0123456789");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char buf[4];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 4);
    FAULT(poll, .err = e, .this_thread = 1);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    CHECK_EQ(fault_calls(FAULT_poll), e == EINTR ? 2 : 1);
    CHECK(WSACloseEvent(ev));
}

TEST(fault_data_left_by_a_recv_is_reported_after_an_interrupted_look) {
    data_left_is_reported_when_the_look_fails_with(EINTR);
}
TEST(fault_data_left_by_a_recv_is_reported_after_a_failed_look) {
    data_left_is_reported_when_the_look_fails_with(ENOMEM);
}

/* A connect the kernel refuses at once (no route): the error at once, blocking or not, and
 * the socket can connect afterwards. */
TEST(fault_connect_refused_by_the_kernel_at_once) {
    start();
    struct acceptor k = {0};
    acceptor_start(&k);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    FAULT(connect, .err = ENETUNREACH, .this_thread = 1);
    CHECK_EQ(connect_to(s, &k.addr, "hi", NULL), WSAENETUNREACH);
    CHECK_EQ(fault_fired(FAULT_connect), 1);
    set_nonblocking(s, 1);
    FAULT(connect, .err = ENETUNREACH, .this_thread = 1);
    CHECK_EQ(connect_full(s, &k.addr, &(WSABUF){2, "hi"}, NULL, NULL), WSAENETUNREACH);
    CHECK_EQ(fault_fired(FAULT_connect), 1);
    fault_clear();
    CHECK_EQ(connect_full(s, &k.addr, &(WSABUF){2, "hi"}, NULL, NULL), WSAEWOULDBLOCK);
    wait_connected(s, &k.addr);
    close_socket(s);
    acceptor_stop(&k);
}

/* ---- lpWSPSelect ------------------------------------------------------------------------------ */

/* One lpWSPSelect for reading s; returns its result and *err. */
static int select_read(SOCKET s, long timeout_ms, int *err) {
    WSPFD_SET r;
    WSP_FD_ZERO(&r);
    WSP_FD_SET(s, &r);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    *err = 0;
    return T.lpWSPSelect(0, &r, NULL, NULL, &tv, err);
}

/* select fails with code when the first call of fn fails with e, leaving nothing open, and
 * works again afterwards. */
static void select_fails_when(enum fault_fn fn, int e, int code) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_send_str(c, "x");
    int before = provider_fds();
    fault_set(fn, (struct fault){.err = e, .this_thread = 1});
    int err = 0;
    CHECK_EQ(select_read(s, 5000, &err), SOCKET_ERROR);
    CHECK_EQ(err, code);
    CHECK_EQ(fault_fired(fn), 1);
    WAIT_FOR(provider_fds() == before, 10000);
    fault_clear();
    CHECK_EQ(select_read(s, 5000, &err), 1);
    close_socket(s);
    close_socket(c);
    close_socket(l);
}

TEST(fault_select_without_memory) { select_fails_when(FAULT_calloc, ENOMEM, WSAENOBUFS); }
TEST(fault_select_without_a_wake_up_descriptor) {
    select_fails_when(FAULT_eventfd, EMFILE, WSAEMFILE);
}
TEST(fault_select_whose_poll_fails) { select_fails_when(FAULT_poll, ENOMEM, WSAENOBUFS); }

/* Sends "x" on c once the interrupted poll has happened. */
struct late_sender {
    SOCKET c;
    pthread_t thread;
};

static void *late_sender_main(void *arg) {
    struct late_sender *ls = arg;
    WAIT_FOR(fault_fired(FAULT_poll) == 1, 10000);
    ne_send_str(ls->c, "x");
    return NULL;
}

/* A poll interrupted by a signal is no error: select with no time to wait returns 0, and one
 * with time goes on waiting and reports the data that arrives. */
TEST(fault_select_survives_an_interrupted_poll) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    FAULT(poll, .err = EINTR, .this_thread = 1);
    int err = 0;
    CHECK_EQ(select_read(s, 0, &err), 0);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    FAULT(poll, .err = EINTR, .this_thread = 1);
    struct late_sender ls = {.c = c};
    CHECK_EQ(pthread_create(&ls.thread, NULL, late_sender_main, &ls), 0);
    CHECK_EQ(select_read(s, 10000, &err), 1);
    pthread_join(ls.thread, NULL);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    close_socket(s);
    close_socket(c);
    close_socket(l);
}

/* ---- lpWSPSend and lpWSPRecv with many buffers -------------------------------------------------- */

/* More buffers than the provider keeps on the stack need an allocation; without memory the
 * call fails with WSAENOBUFS and moves nothing. */
TEST(fault_transfer_of_many_buffers_without_memory) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    char bytes[20];
    WSABUF bufs[20];
    for (int i = 0; i < 20; i++) {
        bytes[i] = (char)('a' + i);
        bufs[i] = (WSABUF){1, &bytes[i]};
    }
    DWORD n = 0;
    int err = 0;
    FAULT(malloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(T.lpWSPSend(c, bufs, 20, &n, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    CHECK_EQ(T.lpWSPSend(c, bufs, 20, &n, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(n, 20);
    char in[20];
    WSABUF ins[20];
    for (int i = 0; i < 20; i++)
        ins[i] = (WSABUF){1, &in[i]};
    DWORD flags = 0;
    FAULT(malloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(T.lpWSPRecv(s, ins, 20, &n, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    CHECK_EQ(unread_bytes(s), 20);
    recv_exact(s, in, 20);
    CHECK_MEM(in, bytes, 20);
    close_socket(s);
    close_socket(c);
    close_socket(l);
}

/* ---- the listener ------------------------------------------------------------------------------ */

/* accept4 fails once on the listener (a connection aborted before it was taken, or the
 * kernel short of descriptors or memory): the listener keeps listening and hands out the
 * client that is waiting. */
static void listener_survives_accept_failing_with(int e) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    FAULT(accept4, .err = e);
    int fd = raw_connect(&addr);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(fault_fired(FAULT_accept4), 1);
    send_all(a, "ok", 2);
    char b[2];
    CHECK_EQ(raw_recv(fd, b, 2, 10000), 2);
    CHECK_MEM(b, "ok", 2);
    close(fd);
    close_socket(a);
    close_socket(l);
}

TEST(fault_listener_survives_an_aborted_connection) {
    listener_survives_accept_failing_with(ECONNABORTED);
}
TEST(fault_listener_survives_running_out_of_descriptors) {
    listener_survives_accept_failing_with(EMFILE);
}
TEST(fault_listener_survives_running_out_of_memory) {
    listener_survives_accept_failing_with(ENOBUFS);
}

/* A send or receive the kernel fails reports the kernel's reason, each its own code; only a
 * broken pipe is a reset (Windows has no EPIPE). Only EINTR is tried again: not EPERM (a
 * firewall rule's refusal), numbered below it. */
TEST(fault_transfer_errors_keep_their_own_codes) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    char b[4] = "abc";
    WSABUF buf = {sizeof b, b};
    DWORD n = 0, flags = 0;
    int err = 0;
    static const struct { int e, code; } cases[] = {
        {ENOBUFS, WSAENOBUFS}, {ETIMEDOUT, WSAETIMEDOUT}, {EPIPE, WSAECONNRESET},
        {ECONNABORTED, WSAECONNABORTED}, {EPERM, WSAEACCES}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FAULT(send, .err = cases[i].e, .this_thread = 1);
        CHECK_EQ(T.lpWSPSend(c, &buf, 1, &n, 0, NULL, NULL, NULL, &err), SOCKET_ERROR);
        CHECK_EQ(err, cases[i].code);
        CHECK_EQ(fault_fired(FAULT_send), 1);
        FAULT(recv, .err = cases[i].e, .this_thread = 1);
        CHECK_EQ(T.lpWSPRecv(s, &buf, 1, &n, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
        CHECK_EQ(err, cases[i].code);
        CHECK_EQ(fault_fired(FAULT_recv), 1);
    }
    fault_clear();
    close_socket(s);
    close_socket(c);
    close_socket(l);
}

/* The ACCEPT answer does not fit the send buffer even once grown: the accept fails with
 * WSAENOBUFS after one growth (it never waits on the client), and the client is refused
 * as undeliverable. */
TEST(fault_accept_answer_that_never_fits_is_wsaenobufs_after_one_growth) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static struct async_connect c;
    c = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                               .caller = &(WSABUF){2, "hi"}};
    async_connect_start(&c);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(send, .err = EAGAIN, .times = 2, .this_thread = 1);
    FAULT(setsockopt, .nth = 1000000, .this_thread = 1); /* never fails: counts */
    int err = 0;
    CHECK_EQ(accept_with(l, answer_cond, 0, &err), INVALID_SOCKET);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_send), 2);
    CHECK_EQ(fault_calls(FAULT_setsockopt), 1);
    fault_clear();
    /* Refused as an answer that could not be delivered, which a client reads as
     * WSAEFAULT (the reason an oversized answer has: PROTOCOL.md). */
    CHECK_EQ(async_connect_join(&c), WSAEFAULT);
    CHECK_EQ(stats_of(l).undeliverable, 1);
    close_socket(c.s);
    close_socket(l);
}

/* The provider's own wait for a descriptor (handles.c, wsp_fd_wait): a poll that fails for
 * any reason but a signal is reported at once, as its WSA code; one interrupted by a signal
 * is made again and sees what is there. */
TEST(fault_descriptor_wait_reports_a_failed_poll_and_resumes_an_interrupted_one) {
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    static const int failures[] = {ENOMEM, EFAULT, EPERM};
    for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++) {
        FAULT(poll, .err = failures[i], .this_thread = 1);
        CHECK_EQ(wsp_fd_wait(sv[0], POLLIN, 10000), -wsp_wsa_from_errno(failures[i]));
        CHECK_EQ(fault_fired(FAULT_poll), 1);
    }
    FAULT(poll, .err = EINTR, .this_thread = 1);
    CHECK_EQ(wsp_fd_wait(sv[0], POLLIN, 10000), POLLIN);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    close(sv[0]);
    close(sv[1]);
}

/* ---- hang-ups the socket cannot look into ------------------------------------------------- */

/* After the socket's own SD_RECEIVE a hang-up is its own unless TCP's state says the peer
 * closed; when that state cannot be read, no FD_CLOSE is made up. */
TEST(fault_tcp_state_unreadable_after_own_receive_shutdown_raises_no_close) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(s, SD_RECEIVE, &err), 0);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    FAULT(getsockopt, .nth = 1, .times = -1, .err = ENOBUFS);
    ne_close(c);
    /* An enumeration catches up with the descriptor itself; the one after the failed look
     * holds what that look raised. */
    LONG seen = 0;
    WAIT_FOR((seen |= ne_enum(s, NULL).lNetworkEvents, fault_fired(FAULT_getsockopt) >= 1),
             10000);
    seen |= ne_enum(s, NULL).lNetworkEvents;
    fault_clear();
    CHECK_EQ(seen & FD_CLOSE, 0);
    (void)ev;
}

/* A peer's close with nothing unread, when the bytes cannot be counted: FD_CLOSE alone, no
 * FD_READ for data that is not there. */
TEST(fault_unread_bytes_uncountable_at_a_close_raise_no_read) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    FAULT(ioctl, .nth = 1, .times = -1, .err = ENOBUFS);
    ne_close(c);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    fault_clear();
    CHECK_EQ(ne.lNetworkEvents & FD_READ, 0);
}

/* lpWSPAccept cannot have the accepted socket's memory: WSAENOBUFS, the connection is reset
 * (never left half-made), its descriptor closed, and the next client is accepted. */
TEST(fault_accept_without_memory_for_the_socket_resets_the_client) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int before = provider_fds();
    int c = raw_connect(&addr);
    CHECK(c >= 0);
    /* Queued by the reactor first: the accept's only allocation left is the socket's. */
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(calloc, .err = ENOMEM, .this_thread = 1);
    int err = 0;
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    fault_clear();
    char b;
    CHECK_EQ(raw_recv(c, &b, 1, 10000), -ECONNRESET);
    close(c);
    WAIT_FOR(provider_fds() == before, 10000);
    CHECK_EQ(stats_of(l).queued, 0);
    CHECK_EQ(stats_of(l).accepted, 0);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(s, &addr, NULL, NULL), 0);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(stats_of(l).accepted, 1);
    close_socket(a);
    close_socket(s);
    close_socket(l);
}

/* lpWSPAccept's ACCEPT answer cannot be sent. A send that fails (the client reset) is the
 * client leaving: counted as withdrawn, and the accept looks for the next request. A send
 * buffer that is full and cannot be grown is the provider's shortage: the request is ended as
 * undeliverable and the accept fails with WSAENOBUFS. */
static void accept_answer_fails(int send_err, int setsockopt_fails) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    struct async_connect ac = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&ac);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(send, .err = send_err, .this_thread = 1);
    if (setsockopt_fails)
        FAULT(setsockopt, .err = ENOMEM, .this_thread = 1);
    int err = 0;
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    if (setsockopt_fails)
        CHECK_EQ(fault_fired(FAULT_setsockopt), 1);
    fault_clear();
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.accepted, 0);
    if (setsockopt_fails) {
        CHECK_EQ(err, WSAENOBUFS);
        CHECK_EQ(st.undeliverable, 1);
        CHECK_EQ(st.withdrawn, 0);
    } else {
        CHECK_EQ(err, WSAEWOULDBLOCK);
        CHECK_EQ(st.withdrawn, 1);
        CHECK_EQ(st.undeliverable, 0);
    }
    CHECK(async_connect_join(&ac) != 0);
    close_socket(ac.s);
    close_socket(l);
}
TEST(fault_accept_whose_answer_send_fails_counts_a_withdrawal) {
    accept_answer_fails(ECONNRESET, 0);
}
TEST(fault_accept_whose_send_buffer_cannot_grow_is_wsaenobufs) {
    accept_answer_fails(EAGAIN, 1);
}
/* Only EAGAIN is a full buffer: an error numbered below it (EPERM, a firewall rule's refusal)
 * is a failed send like ECONNRESET, not a reason to grow the buffer and send again. */
TEST(fault_accept_whose_answer_send_is_not_permitted_counts_a_withdrawal) {
    accept_answer_fails(EPERM, 0);
}
/* Nor is a failure whose code is numbered above WSAENOBUFS (ETIMEDOUT: WSAETIMEDOUT) the
 * provider's shortage: the client is gone, counted as withdrawn. */
TEST(fault_accept_whose_answer_send_times_out_counts_a_withdrawal) {
    accept_answer_fails(ETIMEDOUT, 0);
}

/* The reactor cannot have the buffer for a connect-data request it reads: the provider's
 * shortage, not the client's fault, so the connection is closed bare (a reset, no reason, no
 * count), its descriptor closed, and the listener goes on to serve the next client. */
TEST(fault_request_without_memory_for_its_buffer_is_closed_bare) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    int before = provider_fds();
    FAULT(realloc, .err = ENOMEM);
    int fd = raw_connect(&addr);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    /* The reactor may look for the request before it arrives: the buffer is wanted then, so
     * the reset can come before the send (which then reports it) or after (the read does). */
    ssize_t sent = send(fd, request, sizeof request, MSG_NOSIGNAL);
    if (sent == -1) {
        CHECK_EQ(errno, ECONNRESET);
    } else {
        CHECK_EQ(sent, 8);
        char b;
        CHECK_EQ(raw_recv(fd, &b, 1, 10000), -ECONNRESET);
    }
    CHECK_EQ(fault_fired(FAULT_realloc), 1);
    fault_clear();
    close(fd);
    WAIT_FOR(provider_fds() == before, 10000);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.queued + st.malformed + st.withdrawn + st.timed_out, 0);
    struct async_connect ac = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&ac);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&ac), 0);
    close_socket(a);
    close_socket(ac.s);
    close_socket(l);
}

/* ---- m3 (seed-6 survivors): wsp_fd_send_all's progress ------------------------------------ */

/* wsp_fd_send_all (handles.c) counts every byte the kernel takes, one at a time if that is
 * all each send moves: the peer receives the buffer once, in order, nothing repeated. */
TEST(fault_fd_send_all_one_byte_per_send_sends_each_byte_once) {
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    static const char msg[] = "one byte at a time";
    FAULT(send, .times = -1, .max_bytes = 1, .this_thread = 1);
    CHECK_EQ(wsp_fd_send_all(sv[0], msg, sizeof msg, 2000), 0);
    CHECK_EQ(fault_fired(FAULT_send), (int)sizeof msg);
    fault_clear();
    close(sv[0]);
    char got[2 * sizeof msg];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(sv[1], got + n, sizeof got - n);
        CHECK(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
        CHECK(n < sizeof got);
    }
    CHECK_EQ(n, sizeof msg);
    CHECK_MEM(got, msg, sizeof msg);
    close(sv[1]);
}

/* A failed connect replaces the descriptor and binds the fresh one to the address the
 * application bound; when that address cannot be read back (getsockname fails), the socket
 * is left unbound rather than bound to whatever the unread buffer held. */
TEST(fault_failed_connect_whose_bound_address_cannot_be_read_is_left_unbound) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(c, (struct sockaddr *)&any, sizeof any, &err), 0);
    FAULT(getsockname, .err = ENOBUFS, .this_thread = 1);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(fault_fired(FAULT_getsockname), 1);
    fault_clear();
    struct sockaddr_storage name;
    int len = sizeof name;
    err = 0;
    CHECK_EQ(T.lpWSPGetSockName(c, (struct sockaddr *)&name, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    close_socket(c);
}

/* A socket bound already, or connected (bound implicitly, so->bound unset), is refused a bind
 * by the provider itself: WSAEINVAL without a bind system call; an address of the other
 * family, WSAEAFNOSUPPORT, likewise. */
TEST(fault_bind_of_a_bound_or_connected_socket_is_einval_without_a_system_call) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&any, sizeof any, &err), 0);
    FAULT(bind, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&any, sizeof any, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(fault_calls(FAULT_bind), 0);
    fault_clear();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    FAULT(bind, .nth = 1000000, .this_thread = 1);
    err = 0;
    CHECK_EQ(T.lpWSPBind(c, (struct sockaddr *)&any, sizeof any, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(fault_calls(FAULT_bind), 0);
    /* An address of the other family, numbered above the socket's: refused the same way. */
    SOCKET fresh = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_in6 six = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    err = 0;
    CHECK_EQ(T.lpWSPBind(fresh, (struct sockaddr *)&six, sizeof six, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEAFNOSUPPORT);
    CHECK_EQ(fault_calls(FAULT_bind), 0);
    fault_clear();
    close_socket(fresh);
    close_socket(c);
    close_socket(s);
    close_socket(l);
}

/* A connected pair on plain TCP over 127.0.0.1. */
static void m3_pair(SOCKET *client, SOCKET *server) {
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    *client = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(*client, &addr, NULL, NULL), 0);
    int err = 0;
    *server = accept_with(l, NULL, 0, &err);
    CHECK(*server != INVALID_SOCKET);
    close_socket(l);
}

/* A recv already under way when another thread closes the socket, on a descriptor the close
 * could not replace (no spare: socket fails) and shut only for reading: the bytes waiting are
 * still its result, not WSAEINTR. */
static SOCKET receiving_socket;
static int receiving_rc;
static DWORD receiving_n;
static char receiving_buf[8];

static void *recv_under_way(void *arg) {
    (void)arg;
    receiving_rc = recv_some(receiving_socket, receiving_buf, sizeof receiving_buf, 0,
                             &receiving_n);
    return NULL;
}

TEST(fault_recv_a_close_overtakes_still_takes_the_bytes_waiting) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    send_all(s, "hello", 5);
    WAIT_FOR(unread_bytes(c) == 5, 10000);
    receiving_socket = c;
    FAULT(recv, .hold = 1); /* the receiving thread's recv, held before the call */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, recv_under_way, NULL), 0);
    WAIT_FOR(fault_holding() == 1, 10000);
    FAULT(socket, .err = EMFILE, .this_thread = 1); /* the close's spare descriptor */
    close_socket(c);
    CHECK_EQ(fault_fired(FAULT_socket), 1);
    fault_release();
    CHECK_EQ(pthread_join(t, NULL), 0);
    fault_clear();
    CHECK_EQ(receiving_rc, 0);
    CHECK_EQ(receiving_n, 5);
    CHECK_MEM(receiving_buf, "hello", 5);
    close_socket(s);
}

/* A send held before its system call while another thread closes the socket meets a sending
 * side the close shut (a send is under way): it fails with WSAEINTR and sends nothing. */
static SOCKET sending_socket;
static int sending_rc, sending_err;
static DWORD sending_n;

static void *send_under_way(void *arg) {
    (void)arg;
    WSABUF b = {5, "hello"};
    sending_rc = T.lpWSPSend(sending_socket, &b, 1, &sending_n, 0, NULL, NULL, NULL,
                             &sending_err);
    return NULL;
}

TEST(fault_send_a_close_overtakes_fails_and_sends_nothing) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    sending_socket = c;
    FAULT(send, .hold = 1); /* the sending thread's send, held before the call */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_under_way, NULL), 0);
    WAIT_FOR(fault_holding() == 1, 10000);
    close_socket(c);
    fault_release();
    CHECK_EQ(pthread_join(t, NULL), 0);
    fault_clear();
    CHECK_EQ(sending_rc, SOCKET_ERROR);
    CHECK_EQ(sending_err, WSAEINTR);
    char got[5];
    DWORD n = 1;
    CHECK_EQ(recv_some(s, got, sizeof got, 0, &n), 0);
    CHECK_EQ(n, 0); /* the end of stream, no byte before it */
    close_socket(s);
}

/* A failed connect's fresh descriptor takes no option an IPv4 socket never had: no
 * setsockopt (IPV6_V6ONLY is for IPv6 ones; no option was set to be carried over). */
TEST(fault_failed_ipv4_connect_sets_no_option_on_its_fresh_descriptor) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    FAULT(setsockopt, .nth = 1000000, .this_thread = 1); /* never fails: counts */
    FAULT(socket, .nth = 1000000, .this_thread = 1);     /* counts: the fresh descriptor */
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(fault_calls(FAULT_socket), 1);
    CHECK_EQ(fault_calls(FAULT_setsockopt), 0);
    fault_clear();
    close_socket(c);
}

/* An option refused (an IPv6 option on an IPv4 socket: WSAEINVAL) was never set: a failed
 * connect's fresh descriptor copies no options for it, reading as many of the old one's
 * (getsockopt) as a socket's that never tried one. */
TEST(fault_failed_connect_copies_no_options_after_an_option_refused) {
    start();
    struct sockaddr_storage dead = dead_address();
    int calls[2];
    for (int refused = 0; refused < 2; refused++) {
        SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
        if (refused) {
            int one = 1, err = 0;
            CHECK_EQ(T.lpWSPSetSockOpt(c, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&one,
                                       sizeof one, &err),
                     SOCKET_ERROR);
            CHECK_EQ(err, WSAEINVAL);
        }
        FAULT(getsockopt, .nth = 1000000, .this_thread = 1); /* never fails: counts */
        CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
        calls[refused] = fault_calls(FAULT_getsockopt);
        fault_clear();
        close_socket(c);
    }
    CHECK_EQ(calls[1], calls[0]);
}

/* A socket no call is using closes its descriptor at once: no shutdown, no spare descriptor
 * put in its place (socket, dup3), which only a socket still in use needs. */
TEST(fault_close_of_a_socket_not_in_use_takes_no_spare_descriptor) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    FAULT(socket, .nth = 1000000, .this_thread = 1); /* never fail: count */
    FAULT(dup3, .nth = 1000000, .this_thread = 1);
    FAULT(shutdown, .nth = 1000000, .this_thread = 1);
    close_socket(c);
    CHECK_EQ(fault_calls(FAULT_socket), 0);
    CHECK_EQ(fault_calls(FAULT_dup3), 0);
    CHECK_EQ(fault_calls(FAULT_shutdown), 0);
    fault_clear();
    close_socket(s);
}

/* FIONBIO on a socket that is not connected changes only the socket's mode: its descriptor
 * stays non-blocking (the provider does the waiting), so no system call is made. */
TEST(fault_fionbio_on_an_unconnected_socket_makes_no_system_call) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* never fails: counts */
    FAULT(fcntl, .nth = 1000000, .this_thread = 1);
    set_nonblocking(s, 0);
    set_nonblocking(s, 1);
    CHECK_EQ(fault_calls(FAULT_ioctl), 0);
    CHECK_EQ(fault_calls(FAULT_fcntl), 0);
    fault_clear();
    close_socket(s);
}

/* A failed connect's fresh descriptor is non-blocking, as an unconnected socket's always is
 * (the provider does the waiting), and close-on-exec, as every descriptor the provider opens:
 * a program that forks and execs does not hand it to the child. */
TEST(fault_failed_connect_leaves_a_nonblocking_descriptor) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    FAULT(socket, .nth = 1000000, .this_thread = 1); /* counts: the fresh descriptor */
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(fault_calls(FAULT_socket), 1);
    fault_clear();
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(c, &err);
    CHECK(so != NULL);
    CHECK((fcntl(so->fd, F_GETFL) & O_NONBLOCK) != 0);
    CHECK((fcntl(so->fd, F_GETFD) & FD_CLOEXEC) != 0);
    wsp_socket_release(so);
    close_socket(c);
}

/* A socket closed while a call still uses it keeps its descriptor number with a spare
 * socket in its place until the call leaves; that spare is close-on-exec too. */
TEST(fault_closed_socket_in_use_keeps_a_close_on_exec_descriptor) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(c, &err); /* the call still inside */
    CHECK(so != NULL);
    FAULT(dup3, .nth = 1000000, .this_thread = 1); /* counts: the spare put in place */
    close_socket(c);
    CHECK_EQ(fault_calls(FAULT_dup3), 1);
    fault_clear();
    CHECK((fcntl(so->fd, F_GETFD) & FD_CLOEXEC) != 0);
    wsp_socket_release(so);
    close_socket(s);
}

/* A shutdown the kernel fails reports its reason, and shuts nothing in the socket's own
 * record: sending still works. */
TEST(fault_shutdown_the_kernel_fails_reports_it_and_shuts_nothing) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    FAULT(shutdown, .err = ENOBUFS, .this_thread = 1);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_shutdown), 1);
    fault_clear();
    send_all(c, "z", 1);
    char got = 0;
    recv_exact(s, &got, 1);
    CHECK_EQ(got, 'z');
    close_socket(c);
    close_socket(s);
}

/* A shutdown keeps the connection's names for later (Linux forgets them once both sides have
 * shut down, Windows does not); when its getsockname fails it keeps none, and the names come
 * from the kernel as before: never an address it did not read. */
TEST(fault_shutdown_whose_names_cannot_be_read_keeps_none) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    struct sockaddr_storage mine = local_address(c);
    int err = 0;
    FAULT(getsockname, .err = ENOBUFS, .this_thread = 1);
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    CHECK_EQ(fault_fired(FAULT_getsockname), 1);
    fault_clear();
    struct sockaddr_storage got;
    memset(&got, 0, sizeof got);
    int len = (int)sizeof got;
    CHECK_EQ(T.lpWSPGetSockName(c, (struct sockaddr *)&got, &len, &err), 0);
    CHECK_EQ(len, (int)sizeof(struct sockaddr_in));
    CHECK_MEM(&got, &mine, sizeof(struct sockaddr_in));
    close_socket(c);
    close_socket(s);
}

/* A recv that fails for want of memory is only that: the connection is not taken for reset,
 * and the peer's graceful close afterwards is the end of the stream (0 bytes), not
 * WSAECONNRESET. */
TEST(fault_recv_without_memory_is_not_a_reset) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    char b[8];
    DWORD got = 5;
    FAULT(recv, .err = ENOBUFS, .this_thread = 1);
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_recv), 1);
    fault_clear();
    close_socket(c);
    got = 5;
    CHECK_EQ(recv_some(s, b, sizeof b, 0, &got), 0);
    CHECK_EQ(got, 0);
    close_socket(s);
}

/* A kernel option whose getsockopt fails reports the kernel's error, and writes no length. */
TEST(fault_kernel_option_unreadable_is_the_kernels_error) {
    start();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    DWORD v = 0;
    int len = sizeof v, err = 0;
    FAULT(getsockopt, .err = ENOBUFS, .this_thread = 1);
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_KEEPALIVE, (char *)&v, &len, &err),
             SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_getsockopt), 1);
    fault_clear();
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(len, (int)sizeof v);
    close_socket(c);
}

/* SO_ERROR when the kernel's pending error cannot be read: the last connect's failure, as
 * when there is none pending, never an error made up from the unread value. */
TEST(fault_so_error_unreadable_reports_the_last_connect_failure) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    DWORD v = 0;
    int len = sizeof v, err = 0;
    FAULT(getsockopt, .err = ENOBUFS, .this_thread = 1);
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&v, &len, &err), 0);
    CHECK_EQ(fault_fired(FAULT_getsockopt), 1);
    fault_clear();
    CHECK_EQ(v, WSAECONNREFUSED);
    close_socket(c);
}

/* A time-out the kernel refuses is not recorded: the option reads back as before. */
TEST(fault_timeout_the_kernel_refuses_is_not_recorded) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    set_dword(s, SOL_SOCKET, SO_RCVTIMEO, 700);
    DWORD v = 900;
    int err = 0;
    FAULT(setsockopt, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_RCVTIMEO, (char *)&v, sizeof v, &err),
             SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_setsockopt), 1);
    fault_clear();
    CHECK_EQ(err, WSAENOBUFS);
    int len = sizeof v;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_RCVTIMEO, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, 700);
    close_socket(s);
}

/* Nor is a buffer size the kernel refuses: SO_SNDBUF and SO_RCVBUF read back as before, and
 * any option the kernel refuses fails the call. */
TEST(fault_buffer_size_the_kernel_refuses_is_not_recorded) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    const int names[] = {SO_SNDBUF, SO_RCVBUF};
    for (int i = 0; i < 2; i++) {
        set_dword(s, SOL_SOCKET, names[i], 65536);
        DWORD v = 131072;
        int err = 0;
        FAULT(setsockopt, .err = ENOMEM, .this_thread = 1);
        CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, names[i], (char *)&v, sizeof v, &err),
                 SOCKET_ERROR);
        CHECK_EQ(fault_fired(FAULT_setsockopt), 1);
        fault_clear();
        CHECK_EQ(err, WSAENOBUFS);
        int len = sizeof v;
        CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, names[i], (char *)&v, &len, &err), 0);
        CHECK_EQ(v, 65536);
    }
    /* An option the kernel keeps alone: its refusal is the call's. */
    DWORD on = 1;
    int err = 0;
    FAULT(setsockopt, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_KEEPALIVE, (char *)&on, sizeof on, &err),
             SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_setsockopt), 1);
    fault_clear();
    CHECK_EQ(err, WSAENOBUFS);
    close_socket(s);
}

/* A non-blocking connect-data connect whose request the kernel takes one byte per send still
 * delivers it whole and once: every byte sent counts. */
TEST(fault_nonblocking_request_sent_one_byte_at_a_time_arrives_whole) {
    start();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(lfd, 4), 0);
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(c, 1);
    FAULT(send, .times = -1, .max_bytes = 1);
    CHECK_EQ(connect_to(c, &addr, "hello", NULL), WSAEWOULDBLOCK);
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
    CHECK(fault_fired(FAULT_send) > 1);
    fault_clear();
    CHECK_EQ(r, (long)len); /* one frame, nothing after it */
    CHECK(f.has_data);
    CHECK_EQ(f.data_len, 5);
    CHECK_MEM(f.data, "hello", 5);
    close(fd);
    close_socket(c);
    close(lfd);
}

/* A mode change the kernel refuses leaves the descriptor's mode unknown to the provider, so
 * the next change is made for real: a socket switched back to blocking after one failed
 * attempt blocks (and times out) rather than staying non-blocking. */
TEST(fault_failed_mode_change_is_made_again_next_time) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    set_nonblocking(c, 1);
    DWORD off = 0, ret = 0;
    int err = 0;
    FAULT(ioctl, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(T.lpWSPIoctl(c, WSP_FIONBIO, &off, sizeof off, NULL, 0, &ret, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_ioctl), 1);
    fault_clear();
    set_nonblocking(c, 0);
    set_dword(c, SOL_SOCKET, SO_RCVTIMEO, 100);
    char b[4];
    DWORD got = 0;
    long long t0 = now_ms();
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAETIMEDOUT);
    CHECK(now_ms() - t0 >= 90); /* it waited: a non-blocking descriptor says EAGAIN at once */
    close_socket(c);
    close_socket(s);
}

/* ---- listener: pauses after running out of descriptors (listener.c, accept_failed) -------- */

#include "backlog.h"

/* Each failure to take a connection for want of descriptors pauses the listener until its
 * timer ends the pause: the reactor does not try again before (it would spin on the waiting
 * connection). Three failures in a row: the connection comes in after the third pause. */
TEST(fault_listener_out_of_descriptors_waits_out_each_pause) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    FAULT(accept4, .nth = 1, .times = 3, .err = EMFILE);
    int c = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(fault_fired(FAULT_accept4), 3);
    CHECK_EQ(wsp_listener_resumes(so), 3);
    wsp_socket_release(so);
    close(c);
    close_socket(l);
}

/* A blocking accept, recorded as it enters. */
struct fault_waiting_accept {
    SOCKET l;
    struct blocker blocked;
    SOCKET s;
    pthread_t thread;
};

static void *fault_waiting_accept_main(void *arg) {
    struct fault_waiting_accept *a = arg;
    int err = 0;
    blocker_enter(&a->blocked);
    a->s = accept_with(a->l, NULL, 0, &err);
    blocker_leave(&a->blocked);
    CHECK(a->s != INVALID_SOCKET);
    return NULL;
}

/* A blocking accept waits through a pause; meanwhile an event registration gives the queue
 * back to the reactor. When the pause ends the reactor reads the queue again, and the waiting
 * accept is not woken: nothing has arrived for it yet (only an accept that watches the
 * queue itself is told to look again). The connection that comes next reaches it. */
TEST(fault_listener_pause_ending_wakes_no_accept_waiting_for_the_reactor) {
    start();
    struct sockaddr_storage addr, addr2;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET l2 = listener(WSP_CATALOG_TCP_IPV4, 4, &addr2);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    /* The accept's own look at the queue fails for want of descriptors: a pause. */
    FAULT(accept4, .nth = 1, .err = EMFILE);
    static struct fault_waiting_accept a;
    a = (struct fault_waiting_accept){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, fault_waiting_accept_main, &a), 0);
    wait_blocked(&a.blocked);
    CHECK_EQ(fault_fired(FAULT_accept4), 1);
    WSAEVENT ev = WSACreateEvent();
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    WAIT_FOR(wsp_listener_resumes(so) == 1, 10000);
    /* The reactor is done with the timer once it has taken a connection of another
     * listener's, made after. */
    int c2 = raw_connect(&addr2);
    WAIT_FOR(stats_of(l2).queued == 1, 10000);
    CHECK_EQ(wsp_listener_wakes(so), 0);
    CHECK_EQ(wsp_listener_reading(so), 1);
    int c = raw_connect(&addr);
    pthread_join(a.thread, NULL);
    wsp_socket_release(so);
    close_socket(a.s);
    close(c);
    close(c2);
    close_socket(l2);
    close_socket(l);
    WSACloseEvent(ev);
}

/* A blocking accept (the leader) whose look at the queue failed for want of descriptors waits
 * out the pause on its wake-up descriptor alone: a connection arriving meanwhile does not
 * wake it (taking it would fail the same way), and it takes it once the pause ends. The event
 * thread is held from before the failure, so that the pause cannot end while the test looks. */
TEST(fault_leader_paused_for_descriptors_sleeps_through_an_arrival) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct event_thread_hold hold;
    event_thread_hold(&hold);
    FAULT(accept4, .nth = 1, .err = EMFILE);
    static struct fault_waiting_accept a;
    a = (struct fault_waiting_accept){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, fault_waiting_accept_main, &a), 0);
    wait_blocked(&a.blocked);
    CHECK_EQ(fault_fired(FAULT_accept4), 1);
    FAULT(poll, .nth = 1 << 30); /* counts the provider's polls, fails none */
    int c = raw_connect(&addr);
    struct sockaddr_storage mine = {0};
    socklen_t len = sizeof mine;
    CHECK_EQ(getsockname(c, (struct sockaddr *)&mine, &len), 0);
    WAIT_FOR(tcp_state(port_of(&addr), port_of(&mine)) == TCP_ESTABLISHED, 10000);
    wait_blocked(&a.blocked);
    CHECK_EQ(fault_calls(FAULT_poll), 0); /* still asleep in the same poll */
    CHECK_EQ(wsp_listener_resumes(so), 0);
    event_thread_let_go(&hold);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK_EQ(wsp_listener_resumes(so), 1);
    fault_clear();
    wsp_socket_release(so);
    close_socket(a.s);
    close(c);
    close_socket(l);
}

/* The reactor cannot have the buffer for the request of a connection it has just taken: the
 * request is ended there and then, once. The listening socket's references (one per live
 * request) are back where they were, and the listener serves the next client. */
TEST(fault_listener_request_without_a_first_buffer_is_ended_once) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    size_t refs = atomic_load(&so->obj.refs);
    FAULT(realloc, .err = ENOMEM);
    int fd = raw_connect(&addr);
    char b;
    CHECK_EQ(raw_recv(fd, &b, 1, 10000), -ECONNRESET);
    CHECK_EQ(fault_fired(FAULT_realloc), 1);
    fault_clear();
    WAIT_FOR(atomic_load(&so->obj.refs) == refs, 10000);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int next = raw_connect(&addr);
    CHECK_EQ(send(next, request, sizeof request, MSG_NOSIGNAL), 8);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(atomic_load(&so->obj.refs), refs + 1);
    wsp_socket_release(so);
    close(fd);
    close(next);
    close_socket(l);
}

/* A pause after running out of descriptors ends on time while a slow client's handshake is
 * pending, its deadline far off: the timer keeps the earlier of the two. */
TEST(fault_listener_pause_ends_on_time_beside_a_far_handshake_deadline) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_dword(l, SOL_WSP, WSP_HANDSHAKE_DEADLINE, 600000);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    int silent = raw_connect(&addr);
    wait_taken_from_kernel(&addr, silent);
    FAULT(accept4, .nth = 1, .err = EMFILE);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(fault_fired(FAULT_accept4), 1);
    CHECK_EQ(wsp_listener_resumes(so), 1);
    CHECK_EQ(stats_of(l).timed_out, 0);
    wsp_socket_release(so);
    close(fd);
    close(silent);
    close_socket(l);
}

/* listen() failing (here: another socket listens on the same address) fails lpWSPListen with
 * its error, and the socket stays as it was: it can listen once the cause is gone. */
TEST(fault_listener_listen_failing_fails_lpWSPListen) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&sin, sizeof sin, &err), 0);
    FAULT(listen, .err = EADDRINUSE);
    CHECK_EQ(T.lpWSPListen(s, 4, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEADDRINUSE);
    CHECK_EQ(fault_fired(FAULT_listen), 1);
    fault_clear();
    int len = sizeof sin;
    CHECK_EQ(T.lpWSPAccept(s, NULL, NULL, NULL, 0, &err), INVALID_SOCKET);
    CHECK_EQ(err, WSAEINVAL); /* not listening */
    CHECK_EQ(T.lpWSPListen(s, 4, &err), 0);
    CHECK_EQ(T.lpWSPGetSockName(s, (struct sockaddr *)&sin, &len, &err), 0);
    struct sockaddr_storage addr = {0};
    memcpy(&addr, &sin, sizeof sin);
    int c = raw_connect(&addr);
    WAIT_FOR(stats_of(s).queued == 1, 10000);
    close(c);
    close_socket(s);
}

/* A blocking accept while eventfd fails (no wake-up descriptor for a leader): the accept
 * waits as when an event registration keeps the queue with the reactor, and closing the
 * listener still wakes it. */
struct fault_blocked_accept {
    SOCKET l;
    struct blocker blocked;
    int err;
    pthread_t thread;
};

static void *fault_blocked_accept_main(void *arg) {
    struct fault_blocked_accept *a = arg;
    blocker_enter(&a->blocked);
    SOCKET s = accept_with(a->l, NULL, 0, &a->err);
    blocker_leave(&a->blocked);
    CHECK(s == INVALID_SOCKET);
    return NULL;
}

TEST(fault_listener_accept_without_a_wake_descriptor_is_woken_by_close) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    FAULT(eventfd, .times = -1, .err = EMFILE);
    static struct fault_blocked_accept a;
    a = (struct fault_blocked_accept){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, fault_blocked_accept_main, &a), 0);
    wait_blocked(&a.blocked);
    CHECK(fault_fired(FAULT_eventfd) >= 1);
    close_socket(l);
    pthread_join(a.thread, NULL);
    CHECK_EQ(a.err, WSAEINTR);
}

/* Every shortage accept4 reports (descriptors, buffers, memory) pauses the listener the same
 * way: one failure, one pause, waited out before the connection comes in. */
TEST(fault_listener_each_shortage_pauses_the_listener) {
    start();
    static const int errs[] = {EMFILE, ENFILE, ENOBUFS, ENOMEM};
    for (int i = 0; i < 4; i++) {
        struct sockaddr_storage addr;
        SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
        int err = 0;
        struct wsp_socket *so = wsp_socket_acquire(l, &err);
        CHECK(so != NULL);
        FAULT(accept4, .nth = 1, .err = errs[i]);
        int c = raw_connect(&addr);
        WAIT_FOR(stats_of(l).queued == 1, 10000);
        CHECK_EQ(fault_fired(FAULT_accept4), 1);
        CHECK_EQ(wsp_listener_resumes(so), 1);
        fault_clear();
        wsp_socket_release(so);
        close(c);
        close_socket(l);
    }
}

/* A shortage right after an aborted connection (which the reactor goes past at once) pauses
 * the listener all the same, before the connection behind comes in. */
TEST(fault_listener_shortage_after_an_aborted_connection_pauses_the_listener) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    FAULT(accept4, .nth = 1, .err = ECONNABORTED);
    FAULT_ALSO(accept4, .nth = 2, .err = EMFILE); /* the next call */
    int c = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(fault_fired(FAULT_accept4), 2);
    CHECK_EQ(wsp_listener_resumes(so), 1);
    fault_clear();
    wsp_socket_release(so);
    close(c);
    close_socket(l);
}

/* While the listener is paused for want of descriptors, an accept does not ask the kernel's
 * queue either: a connection waiting there waits for the pause to end (taking it would fail
 * the same way). The event thread is held meanwhile, so that the pause cannot end before. */
TEST(fault_accept_during_a_pause_leaves_the_kernels_queue_alone) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct event_thread_hold hold;
    event_thread_hold(&hold);
    FAULT(accept4, .nth = 1, .err = EMFILE);
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET); /* its look pauses the listener */
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_accept4), 1);
    int c = raw_connect(&addr);
    struct sockaddr_storage mine = {0};
    socklen_t len = sizeof mine;
    CHECK_EQ(getsockname(c, (struct sockaddr *)&mine, &len), 0);
    WAIT_FOR(tcp_state(port_of(&addr), port_of(&mine)) == TCP_ESTABLISHED, 10000);
    FAULT(accept4, .nth = 1 << 30); /* counts the calls, fails none */
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(fault_calls(FAULT_accept4), 0);
    fault_clear();
    event_thread_let_go(&hold);
    WAIT_FOR(stats_of(l).queued == 1, 10000); /* the pause ended: the reactor took it */
    CHECK_EQ(wsp_listener_resumes(so), 1);
    wsp_socket_release(so);
    close(c);
    close_socket(l);
}

/* A pause whose end the listener's timer comes to late (the event thread held past it) still
 * ends at that pass: the reactor reads the queue again and takes the connection waiting. */
TEST(fault_pause_whose_end_passed_while_the_reactor_was_held_ends_at_its_next_pass) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    struct catch_up cu;
    catch_up_start(&cu);
    set_nonblocking(l, 1);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct event_thread_hold hold;
    event_thread_hold(&hold);
    FAULT(accept4, .nth = 1, .err = EMFILE);
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET); /* its look pauses the listener */
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_accept4), 1);
    fault_clear();
    uint64_t paused_by = wsp_now_ms();
    int c = raw_connect(&addr);
    /* Past the pause's end (100 ms after it began) with the event thread still held. */
    WAIT_FOR(wsp_now_ms() > paused_by + 100, 10000);
    event_thread_let_go(&hold);
    wait_reactor_caught_up(&cu); /* its timer's events among those seen to */
    CHECK_EQ(wsp_listener_resumes(so), 1);
    WAIT_FOR(stats_of(l).queued == 1, 10000); /* read again: the reactor took it */
    wsp_socket_release(so);
    close(c);
    catch_up_close(&cu);
    close_socket(l);
}

/* A blocking accept on connect data takes its connection itself: its own failure for want of
 * descriptors pauses the listener as the reactor's does, and it takes the connection that
 * comes after the pause. */
TEST(fault_cdata_accept_out_of_descriptors_pauses_the_listener) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    FAULT(accept4, .nth = 1, .err = EMFILE);
    static struct fault_waiting_accept a;
    a = (struct fault_waiting_accept){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, fault_waiting_accept_main, &a), 0);
    WAIT_FOR(wsp_listener_resumes(so) == 1, 10000);
    CHECK_EQ(fault_fired(FAULT_accept4), 1);
    fault_clear();
    static struct async_connect k;
    k = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&k);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK_EQ(async_connect_join(&k), 0);
    wsp_socket_release(so);
    close_socket(a.s);
    close_socket(k.s);
    close_socket(l);
}

static int fault_hold_all(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                          GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_HOLD;
}

/* WSPHeldAccept when the accepted socket cannot be made: the provider's shortage is reported
 * as such (WSAENOBUFS), not as the client having left, and the request is ended (reset). */
TEST(fault_held_accept_without_memory_for_the_socket_is_enobufs) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    LPFN_WSPACCEPTHOLD accept_hold = NULL;
    LPFN_WSPHELDACCEPT held_accept = NULL;
    GUID ids[2] = {WSPID_ACCEPTHOLD, WSPID_HELDACCEPT};
    void *fns[2];
    int err = 0;
    for (int i = 0; i < 2; i++) {
        DWORD ret = 0;
        CHECK_EQ(T.lpWSPIoctl(l, SIO_GET_EXTENSION_FUNCTION_POINTER, &ids[i], sizeof ids[i],
                              &fns[i], sizeof fns[i], &ret, NULL, NULL, NULL, &err),
                 0);
    }
    accept_hold = (LPFN_WSPACCEPTHOLD)fns[0];
    held_accept = (LPFN_WSPHELDACCEPT)fns[1];
    int fd = raw_connect(&addr);
    SOCKET a = 0;
    WSPHELD h = 0;
    CHECK_EQ(accept_hold(l, NULL, NULL, fault_hold_all, 0, &a, &h, &err), 0);
    CHECK(h != 0);
    FAULT(calloc, .nth = 1, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(held_accept(h, NULL, NULL, &a, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    fault_clear();
    CHECK(a == INVALID_SOCKET);
    char b;
    CHECK_EQ(raw_recv(fd, &b, 1, 10000), -ECONNRESET);
    CHECK_EQ(held_accept(h, NULL, NULL, &a, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSA_INVALID_HANDLE); /* ended: the handle is retired */
    close(fd);
    close_socket(l);
}

/* No memory for a connection the reactor takes off the kernel's queue: it is closed there
 * and then (its client sees the end of the stream), its descriptor not kept, and the
 * listener serves the next client. */
TEST(fault_listener_connection_without_memory_for_its_request_is_closed) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int before = provider_fds();
    FAULT(calloc, .nth = 1, .err = ENOMEM);
    int fd = raw_connect(&addr);
    char b;
    CHECK_EQ(raw_recv(fd, &b, 1, 10000), 0);
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    fault_clear();
    WAIT_FOR(provider_fds() == before, 10000);
    CHECK_EQ(stats_of(l).queued, 0);
    int next = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    close(fd);
    close(next);
    close_socket(l);
}

/* The same for a connection a waiting connect-data accept takes itself, with its first read
 * in hand: closed, the read's buffer freed, and the accept waits on for the next client. */
struct fault_cdata_accept {
    SOCKET l;
    struct blocker blocked;
    SOCKET s;
    pthread_t thread;
};

static void *fault_cdata_accept_main(void *arg) {
    struct fault_cdata_accept *a = arg;
    int err = 0;
    blocker_enter(&a->blocked);
    a->s = accept_with(a->l, NULL, 0, &err);
    blocker_leave(&a->blocked);
    CHECK(a->s != INVALID_SOCKET);
    return NULL;
}

TEST(fault_listener_connection_an_accept_took_without_memory_is_closed) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static struct fault_cdata_accept a;
    a = (struct fault_cdata_accept){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, fault_cdata_accept_main, &a), 0);
    wait_blocked(&a.blocked);
    int before = provider_fds(); /* the waiting accept's wake-up descriptor included */
    FAULT(calloc, .nth = 1, .err = ENOMEM);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int fd = raw_connect(&addr);
    (void)send(fd, request, sizeof request, MSG_NOSIGNAL); /* may meet the close */
    char b;
    int got = raw_recv(fd, &b, 1, 10000);
    CHECK(got == 0 || got == -ECONNRESET);
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    fault_clear();
    int next = raw_connect(&addr);
    CHECK_EQ(send(next, request, sizeof request, MSG_NOSIGNAL), 8);
    pthread_join(a.thread, NULL);
    close_socket(a.s);
    WAIT_FOR(provider_fds() == before, 10000);
    close(fd);
    close(next);
    close_socket(l);
}

/* ---- connect.c: the connect-data client's answer reader, and a retry's options ------------- */

/* A server of the test's own (its calls are not the provider's): takes one connection, reads
 * its request whole, then answers ACCEPT or closes without an answer. */
struct fault_raw_server {
    int lfd;
    int accept_it;
    pthread_t thread;
};

static void *fault_raw_server_main(void *arg) {
    struct fault_raw_server *r = arg;
    int fd = accept(r->lfd, NULL, NULL);
    CHECK(fd >= 0);
    uint8_t req[WSP_HS_MAX_FRAME];
    size_t have = 0;
    while (have < WSP_HS_HEADER_SIZE ||
           have < WSP_HS_HEADER_SIZE + (size_t)(req[6] << 8 | req[7])) {
        int got = raw_recv(fd, req + have, sizeof req - have, 10000);
        CHECK(got > 0);
        have += (size_t)got;
    }
    static const uint8_t accept_frame[] = {0x57, 0x53, 1, WSP_HS_ACCEPT, 0, 0, 0, 0};
    if (r->accept_it)
        CHECK_EQ(send(fd, accept_frame, sizeof accept_frame, MSG_NOSIGNAL), 8);
    close(fd);
    close(r->lfd);
    return NULL;
}

static struct sockaddr_storage fault_raw_server_start(struct fault_raw_server *r, int accept_it) {
    r->accept_it = accept_it;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(r->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(r->lfd, 1), 0);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    CHECK_EQ(getsockname(r->lfd, (struct sockaddr *)&addr, &len), 0);
    CHECK_EQ(pthread_create(&r->thread, NULL, fault_raw_server_main, r), 0);
    return addr;
}

/* Reading the answer, a recv that is interrupted or finds nothing yet is tried again; any
 * other error ends the connect with that error (EPERM's WSAEACCES, ENOMEM's WSAENOBUFS). */
TEST(fault_connect_answer_read_retries_only_eintr_and_eagain) {
    start();
    const struct {
        int e, want;
    } cases[] = {{EINTR, 0}, {EAGAIN, 0}, {EPERM, WSAEACCES}, {ENOMEM, WSAENOBUFS}};
    for (int i = 0; i < 4; i++) {
        struct fault_raw_server r;
        struct sockaddr_storage addr = fault_raw_server_start(&r, 1);
        SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
        FAULT(recv, .err = cases[i].e); /* the provider's only recv: the client's */
        CHECK_EQ(connect_to(s, &addr, "x", NULL), cases[i].want);
        CHECK_EQ(fault_fired(FAULT_recv), 1);
        fault_clear();
        pthread_join(r.thread, NULL);
        close_socket(s);
    }
    /* An interrupted recv leaves errno at EINTR: the end of the stream read next is still
     * the end (no answer: WSAECONNABORTED), not another interruption. */
    struct fault_raw_server r;
    struct sockaddr_storage addr = fault_raw_server_start(&r, 0);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    FAULT(recv, .err = EINTR);
    CHECK_EQ(connect_to(s, &addr, "x", NULL), WSAECONNABORTED);
    CHECK_EQ(fault_fired(FAULT_recv), 1);
    fault_clear();
    pthread_join(r.thread, NULL);
    close_socket(s);
}

/* The kernel's value of an option on the socket's descriptor. */
static int fault_kernel_int(SOCKET s, int level, int name) {
    int err = 0, v = -1;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    socklen_t len = sizeof v;
    CHECK_EQ(getsockopt(so->fd, level, name, &v, &len), 0);
    wsp_socket_release(so);
    return v;
}

/* After a failed attempt the new descriptor gets the options read from the old one; an
 * option that cannot be read is left at the new descriptor's default, not set to an unknown
 * value: one option set fewer than when it can be read. */
TEST(fault_connect_retry_leaves_an_option_it_cannot_read) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(s, SOL_SOCKET, SO_REUSEADDR, 1); /* the first option copied */
    set_dword(s, SOL_SOCKET, SO_KEEPALIVE, 1);
    struct fault_raw_server r;
    struct sockaddr_storage addr = fault_raw_server_start(&r, 0);
    FAULT(setsockopt, .nth = 1000000); /* only counts */
    CHECK_EQ(connect_to(s, &addr, "x", NULL), WSAECONNABORTED);
    int copied_all = fault_calls(FAULT_setsockopt);
    pthread_join(r.thread, NULL);
    CHECK_EQ(fault_kernel_int(s, SOL_SOCKET, SO_REUSEADDR), 1);
    addr = fault_raw_server_start(&r, 0);
    FAULT(setsockopt, .nth = 1000000);
    FAULT(getsockopt, .err = ENOBUFS); /* the old descriptor's SO_REUSEADDR */
    CHECK_EQ(connect_to(s, &addr, "x", NULL), WSAECONNABORTED);
    CHECK_EQ(fault_fired(FAULT_getsockopt), 1);
    CHECK_EQ(fault_calls(FAULT_setsockopt), copied_all - 1);
    fault_clear();
    pthread_join(r.thread, NULL);
    CHECK_EQ(fault_kernel_int(s, SOL_SOCKET, SO_REUSEADDR), 0);
    CHECK(fault_kernel_int(s, SOL_SOCKET, SO_KEEPALIVE) != 0);
    /* Likewise when the new descriptor's default cannot be read. */
    set_dword(s, SOL_SOCKET, SO_REUSEADDR, 1);
    addr = fault_raw_server_start(&r, 0);
    FAULT(setsockopt, .nth = 1000000);
    FAULT(getsockopt, .nth = 2, .err = ENOBUFS); /* the new descriptor's SO_REUSEADDR */
    CHECK_EQ(connect_to(s, &addr, "x", NULL), WSAECONNABORTED);
    CHECK_EQ(fault_fired(FAULT_getsockopt), 1);
    CHECK_EQ(fault_calls(FAULT_setsockopt), copied_all - 1);
    fault_clear();
    pthread_join(r.thread, NULL);
    CHECK_EQ(fault_kernel_int(s, SOL_SOCKET, SO_REUSEADDR), 0);
    close_socket(s);
}

/* ---- transfer.c: interrupted transfers ------------------------------------------------------ */

/* A send or receive interrupted by a signal is tried again, not reported: through recv and
 * send (one buffer) and through recvmsg and sendmsg (several). */
TEST(fault_transfer_interrupted_is_tried_again) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    char a[] = "ab", b[] = "cd";
    WSABUF two[2] = {{2, a}, {2, b}};
    DWORD sent = 0;
    int err = 0;
    FAULT(send, .err = EINTR, .this_thread = 1);
    send_all(c, "xy", 2);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    FAULT(sendmsg, .err = EINTR, .this_thread = 1);
    CHECK_EQ(T.lpWSPSend(c, two, 2, &sent, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(fault_fired(FAULT_sendmsg), 1);
    CHECK_EQ(sent, 4);
    char in[2];
    DWORD got = 0;
    FAULT(recv, .err = EINTR, .this_thread = 1);
    CHECK_EQ(recv_some(s, in, 2, 0, &got), 0);
    CHECK_EQ(fault_fired(FAULT_recv), 1);
    CHECK_EQ(got, 2);
    CHECK_MEM(in, "xy", 2);
    char p[2], q[2];
    WSABUF halves[2] = {{2, p}, {2, q}};
    DWORD flags = 0;
    FAULT(recvmsg, .err = EINTR, .this_thread = 1);
    got = 0;
    CHECK_EQ(T.lpWSPRecv(s, halves, 2, &got, &flags, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(fault_fired(FAULT_recvmsg), 1);
    CHECK(got >= 1); /* what has arrived of the four bytes, at least one */
    fault_clear();
    close_socket(c);
    close_socket(s);
}

/* A wait for the answer that fails (poll out of memory) ends the connect with that error. */
TEST(fault_connect_answer_wait_failing_is_reported) {
    start();
    struct fault_raw_server r;
    struct sockaddr_storage addr = fault_raw_server_start(&r, 1);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    FAULT(poll, .err = ENOMEM, .times = -1, .this_thread = 1);
    CHECK_EQ(connect_to(s, &addr, "x", NULL), WSAENOBUFS);
    CHECK(fault_fired(FAULT_poll) >= 1);
    fault_clear();
    pthread_join(r.thread, NULL);
    close_socket(s);
}

/* A plain TCP connect whose wait for the connection fails (poll out of memory) ends with that
 * error. */
TEST(fault_connect_plain_wait_failing_is_reported) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    FAULT(poll, .err = ENOMEM, .times = -1, .this_thread = 1);
    CHECK_EQ(connect_to(s, &addr, NULL, NULL), WSAENOBUFS);
    CHECK(fault_fired(FAULT_poll) >= 1); /* a TCP connect is under way when connect() returns */
    fault_clear();
    close_socket(s);
    close_socket(l);
}

/* A socket whose options were never set gives its new descriptor none after a failed attempt:
 * the new descriptor's defaults are the old one's, and nothing is read to find that out. */
TEST(fault_connect_retry_of_a_socket_without_options_reads_none) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    struct fault_raw_server r;
    struct sockaddr_storage addr = fault_raw_server_start(&r, 0);
    FAULT(getsockopt, .nth = 1000000, .this_thread = 1); /* only counts */
    CHECK_EQ(connect_to(s, &addr, "x", NULL), WSAECONNABORTED);
    CHECK_EQ(fault_calls(FAULT_getsockopt), 0);
    fault_clear();
    pthread_join(r.thread, NULL);
    close_socket(s);
}

/* When a failed attempt's new descriptor cannot be had (out of descriptors), the socket keeps
 * its old one as it was: still bound to the address the application gave it. */
TEST(fault_connect_retry_without_a_new_descriptor_keeps_the_bound_one) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    /* A port named explicitly (one free a moment ago), which the kernel keeps bound after
     * a failed connect, unlike one it chose. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(probe, (struct sockaddr *)&any, sizeof any), 0);
    socklen_t plen = sizeof any;
    CHECK_EQ(getsockname(probe, (struct sockaddr *)&any, &plen), 0);
    close(probe);
    int err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&any, sizeof any, &err), 0);
    struct sockaddr_storage before = local_address(s);
    FAULT(socket, .err = EMFILE, .this_thread = 1);
    CHECK_EQ(connect_to(s, &dead, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(fault_fired(FAULT_socket), 1);
    fault_clear();
    struct sockaddr_storage after = local_address(s); /* fails the test if not bound */
    CHECK_EQ(port_of(&after), port_of(&before));
    close_socket(s);
}

/* A non-blocking connect-data connect whose first try at sending the request fails (no
 * memory) ends with that error once the connection is seen, not with a second try: the
 * error stands whatever the descriptor reports. */
TEST(fault_connect_nonblocking_early_request_error_stands) {
    start();
    int lfd = socket(AF_INET, SOCK_STREAM, 0); /* the test's own, silent */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(lfd, 4), 0);
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(s, SOL_WSP, WSP_CONNECT_TIMEOUT, 200); /* a second try would end so */
    set_nonblocking(s, 1);
    FAULT(send, .err = ENOBUFS, .this_thread = 1);
    CHECK_EQ(connect_to(s, &addr, "x", NULL), WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    DWORD e = 0;
    long long deadline = now_ms() + 10000;
    while (e == 0) {
        int len = sizeof e, err = 0;
        CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_ERROR, (char *)&e, &len, &err), 0);
        CHECK(now_ms() < deadline);
        if (e == 0)
            sleep_ms(2);
    }
    CHECK_EQ(e, WSAENOBUFS);
    close_socket(s);
    close(lfd);
}

/* A registration has to make the socket's descriptor non-blocking; when the kernel refuses
 * (the FIONBIO ioctl fails), the registration fails with its reason and nothing is
 * registered: selecting again works. */
TEST(fault_event_select_that_cannot_make_the_descriptor_nonblocking_fails) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    FAULT(ioctl, .err = ENOBUFS, .this_thread = 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_ioctl), 1);
    fault_clear();
    WSANETWORKEVENTS ne;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(s, ev, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, 0);
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    read_event_arrives(c, s, ev);
    CHECK(WSACloseEvent(ev));
    close_socket(s);
    close_socket(c);
    close_socket(l);
}

/* ---- the reactor's descriptors when standard input is closed ----------------------------------
 * A daemon may close descriptor 0: the kernel then hands it out next, and the reactor's
 * descriptors must treat 0 as a descriptor like any other (started, watched, closed). */

/* WSPStartup fails for want of the descriptor after fn's (each fault one call, e); the one
 * that got 0 is closed again, and start-up then succeeds. */
static void startup_fails_without_stdin(enum fault_fn fn, enum fault_fn fn2) {
    close(0);
    fault_set(fn, (struct fault){.err = EMFILE, .this_thread = 1});
    if (fn2 != fn)
        fault_set(fn2, (struct fault){.err = EMFILE, .this_thread = 1});
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    WSPPROC_TABLE table;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &table), WSASYSNOTREADY);
    CHECK_EQ(fault_fired(fn), 1);
    CHECK_EQ(provider_fds(), 0);
    CHECK_EQ(fcntl(0, F_GETFD), -1); /* descriptor 0 was the provider's, and is closed */
    fault_clear();
    start();
    still_connects();
}

/* The epoll instance gets 0; the timer descriptor fails. */
TEST(fault_startup_closes_an_epoll_instance_that_got_descriptor_0) {
    startup_fails_without_stdin(FAULT_timerfd_create, FAULT_timerfd_create);
}

/* No epoll instance: the wake-up descriptor gets 0. */
TEST(fault_startup_closes_a_wake_up_descriptor_that_got_descriptor_0) {
    startup_fails_without_stdin(FAULT_epoll_create1, FAULT_epoll_create1);
}

/* Neither: the timer descriptor gets 0. */
TEST(fault_startup_closes_a_timer_descriptor_that_got_descriptor_0) {
    startup_fails_without_stdin(FAULT_epoll_create1, FAULT_eventfd);
}

/* The reactor runs on an epoll instance numbered 0: a handshake deadline (its timer, its
 * watch of a connection) is kept, and the last cleanup closes descriptor 0 again. */
TEST(reactor_on_descriptor_0_works_and_closes_it) {
    close(0);
    start();
    CHECK(fcntl(0, F_GETFD) != -1); /* the first descriptor the provider made */
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_dword(l, SOL_WSP, WSP_HANDSHAKE_DEADLINE, 100);
    int raw = raw_connect(&addr);
    WAIT_FOR(stats_of(l).timed_out == 1, 10000);
    close(raw);
    close_socket(l);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(provider_fds(), 0);
    CHECK_EQ(fcntl(0, F_GETFD), -1);
}

/* A refused connect gives its socket a fresh descriptor; when that is descriptor 0, it is
 * taken like any other (dup3 over the socket's own, then closed). */
TEST(connect_retry_descriptor_numbered_0_is_taken_and_closed) {
    start();
    /* The test's own socket, bound but not listening: connects there are refused. (A closed
     * provider listener would do too, but its descriptor closes when the reactor lets it go,
     * which would move the provider's descriptor count under the test.) */
    int port_holder = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(port_holder, (struct sockaddr *)&in, sizeof in), 0);
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    CHECK_EQ(getsockname(port_holder, (struct sockaddr *)&addr, &alen), 0);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int before = provider_fds();
    close(0);
    CHECK_EQ(connect_to(s, &addr, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(fcntl(0, F_GETFD), -1);
    CHECK_EQ(provider_fds(), before);
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    CHECK_EQ(connect_to(s, &addr, NULL, NULL), 0); /* the fresh descriptor connects */
    close_socket(s);
    close_socket(l);
    close(port_holder);
}

/* ---- m1 (seed-32 coverage): lpWSPListen and lpWSPAccept short of memory or a watch ---------- */

/* lpWSPListen without memory for its listener, or unable to have the reactor watch it, fails
 * with the shortage and leaves the socket able to listen on the next call (the reference the
 * reactor would have held is given back: the leak check sees the socket closed). */
TEST(fault_listen_without_memory_or_a_watch_fails_and_can_be_called_again) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&sin, sizeof sin, &err), 0);
    FAULT(calloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(T.lpWSPListen(s, 4, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    FAULT(epoll_ctl, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(T.lpWSPListen(s, 4, &err), SOCKET_ERROR);
    CHECK_EQ(err, wsp_wsa_from_errno(ENOMEM));
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1);
    fault_clear();
    CHECK_EQ(T.lpWSPListen(s, 4, &err), 0);
    struct sockaddr_storage addr = local_address(s);
    int fd = raw_connect(&addr);
    SOCKET a = accept_with(s, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    close_socket(a);
    close(fd);
    close_socket(s);
}

/* lpWSPAccept without memory for its presentation (connect data: the buffers for callee data
 * and QoS) is WSAENOBUFS; the connection waits for the next accept. */
TEST(fault_accept_without_memory_is_enobufs_and_the_connection_waits) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    WSABUF caller = {2, "hi"};
    struct async_connect c = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                              .caller = &caller};
    async_connect_start(&c);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(malloc, .err = ENOMEM, .this_thread = 1);
    int err = 0;
    CHECK_EQ(accept_with(l, NULL, 0, &err), INVALID_SOCKET);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(stats_of(l).queued, 1);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&c), 0);
    close_socket(a);
    close_socket(c.s);
    close_socket(l);
}

/* What a condition function on plain TCP is offered: no caller data, no QoS, a callee buffer
 * of length 0 (not a NULL one). Counts its calls in *(int *)ctx. */
static int plain_offer_cond(LPWSABUF caller_id, LPWSABUF caller_data, LPQOS sqos, LPQOS gqos,
                            LPWSABUF callee_id, LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)caller_id, (void)gqos, (void)callee_id, (void)g;
    CHECK(caller_data == NULL);
    CHECK(sqos == NULL);
    CHECK(callee_data && callee_data->buf && callee_data->len == 0);
    ++*(int *)ctx;
    return CF_ACCEPT;
}

/* Plain TCP offers no callee data nor QoS: its presentation needs no allocation (it is on the
 * accepting thread's stack), so an accept succeeds with every malloc of its thread failing. */
TEST(fault_plain_accept_allocates_no_presentation) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    int fd = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(malloc, .times = -1, .err = ENOMEM, .this_thread = 1);
    int err = 0;
    int asked = 0;
    SOCKET a = accept_with(l, plain_offer_cond, (DWORD_PTR)&asked, &err);
    CHECK_EQ(fault_fired(FAULT_malloc), 0);
    fault_clear();
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(asked, 1);
    CHECK_EQ(stats_of(l).accepted, 1);
    close_socket(a);
    close(fd);
    close_socket(l);
}

/* A connect-data connection whose request has not come yet, which the reactor cannot watch
 * (epoll_ctl fails), is closed at once (abortively) rather than left with nobody to read it. */
TEST(fault_listener_incomplete_request_it_cannot_watch_is_closed) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    FAULT(epoll_ctl, .err = ENOMEM); /* the next one, any thread's: the reactor's watch */
    int fd = raw_connect(&addr);
    char b[8];
    CHECK_EQ(raw_recv(fd, b, sizeof b, 10000), -ECONNRESET); /* the provider's failure */
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1);
    fault_clear();
    CHECK_EQ(stats_of(l).queued, 0);
    close(fd);
    /* The listener goes on. */
    static struct async_connect c;
    c = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&c);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&c), 0);
    close_socket(a);
    close_socket(c.s);
    close_socket(l);
}

/* ---- s8-m1: a failed mode change leaves the mode unknown, not assumed ---------------------- */

/* Whether the descriptor behind a provider socket is in non-blocking mode. */
static int m1_fd_nonblocking(SOCKET s) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    int flags = fcntl(so->fd, F_GETFL);
    wsp_socket_release(so);
    CHECK(flags >= 0);
    return (flags & O_NONBLOCK) != 0;
}

/* A connected socket's descriptor follows its mode. A change to non-blocking that failed left
 * the descriptor blocking: the next change to non-blocking makes it, rather than taking the
 * failed one as done (the other way round: fault_failed_mode_change_is_made_again_next_time). */
TEST(fault_failed_change_to_nonblocking_is_made_again_next_time) {
    start();
    SOCKET c, s;
    m3_pair(&c, &s);
    CHECK_EQ(m1_fd_nonblocking(c), 0);
    DWORD on = 1, ret = 0;
    int err = 0;
    FAULT(ioctl, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(T.lpWSPIoctl(c, WSP_FIONBIO, &on, sizeof on, NULL, 0, &ret, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_ioctl), 1);
    fault_clear();
    CHECK_EQ(m1_fd_nonblocking(c), 0);
    set_nonblocking(c, 1);
    CHECK_EQ(m1_fd_nonblocking(c), 1);
    char b[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAEWOULDBLOCK);
    close_socket(c);
    close_socket(s);
}

/* ---- s8-m2 (session 8): event sets, network events ---- */

/* As above with a full list of checks: eight sockets on one event each leave data behind a
 * recv, and the one poll that would look at all of them fails: each socket looks itself, and
 * each reports FD_READ. */
#define FULL_CHECKS 8 /* event_set.c's CHECKS */
TEST(fault_a_full_list_of_checks_whose_look_fails_reports_every_socket) {
    start();
    SOCKET c[FULL_CHECKS], s[FULL_CHECKS], l[FULL_CHECKS];
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    int err = 0;
    for (int i = 0; i < FULL_CHECKS; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &s[i], &l[i]);
        CHECK_EQ(T.lpWSPEventSelect(s[i], ev, FD_READ, &err), 0);
        ne_send_str(c[i], "0123456789");
    }
    LONG seen[FULL_CHECKS] = {0};
    long long deadline = now_ms() + 10000;
    for (int all = 0; !all && now_ms() < deadline;) {
        WSAWaitForMultipleEvents(1, &ev, FALSE, 100, FALSE);
        all = 1;
        for (int i = 0; i < FULL_CHECKS; i++) {
            seen[i] |= ne_enum(s[i], ev).lNetworkEvents;
            all &= seen[i] == FD_READ;
        }
    }
    for (int i = 0; i < FULL_CHECKS; i++)
        CHECK_EQ(seen[i], FD_READ);
    char buf[4];
    for (int i = 0; i < FULL_CHECKS; i++)
        CHECK_EQ(ne_recv(s[i], buf, sizeof buf, 0), 4); /* 6 bytes left: a check is due */
    FAULT(poll, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(ne_enum(s[0], ev).lNetworkEvents, FD_READ);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    for (int i = 1; i < FULL_CHECKS; i++)
        CHECK_EQ(ne_enum(s[i], ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* A wait-all whose condition variable cannot be made fails with WSA_NOT_ENOUGH_MEMORY and
 * keeps no reference to its events (the leak check sees them closed); the next one works.
 * A time-out other than 0: one of 0 never sleeps, and makes no condition variable. */
TEST(fault_wait_all_without_a_condition_variable_fails_and_keeps_nothing) {
    start();
    WSAEVENT ev[2] = {WSACreateEvent(), WSACreateEvent()};
    CHECK(ev[0] != WSA_INVALID_EVENT && ev[1] != WSA_INVALID_EVENT);
    CHECK(WSASetEvent(ev[0]));
    CHECK(WSASetEvent(ev[1]));
    FAULT(pthread_cond_init, .err = EAGAIN, .this_thread = 1);
    CHECK_EQ(WSAWaitForMultipleEvents(2, ev, TRUE, 10000, FALSE), WSA_WAIT_FAILED);
    CHECK_EQ(WSAGetLastError(), WSA_NOT_ENOUGH_MEMORY);
    CHECK_EQ(fault_fired(FAULT_pthread_cond_init), 1);
    fault_clear();
    CHECK_EQ(WSAWaitForMultipleEvents(2, ev, TRUE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(ev[0]));
    CHECK(WSACloseEvent(ev[1]));
}

/* A message queue whose condition variable cannot be made is not made. */
TEST(fault_message_queue_without_a_condition_variable_is_not_made) {
    start();
    FAULT(pthread_cond_init, .err = EAGAIN, .this_thread = 1);
    CHECK(WSPCreateMessageQueue() == NULL);
    CHECK_EQ(WSAGetLastError(), WSA_NOT_ENOUGH_MEMORY);
    CHECK_EQ(fault_fired(FAULT_pthread_cond_init), 1);
    fault_clear();
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    CHECK(WSPPostMessage(q, 1, 2, 3));
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
    CHECK_EQ(m.message, 1);
    CHECK(WSPDestroyMessageQueue(q));
}

/* A socket registered while a blocking connect ran is watched from its first send or recv
 * (netevents.c: late_watch). When that start fails (no memory) and the same send then finds
 * the buffers full, the send's own FD_WRITE re-enabling starts the watch again: the room
 * that comes is reported. */
TEST(fault_late_watch_that_fails_is_started_again_by_a_blocked_send) {
    start();
    struct ne_connector k = {.data = "x"};
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &k.addr);
    SOCKET c = k.s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_SOCKET, SO_SNDBUF, 4096);
    ne_start_connector(&k); /* blocking: waits for the accept below */
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    WSAEVENT ev = ne_event_select(c, FD_WRITE);
    int err = 0;
    SOCKET a = ne_accept(l, NULL, &err);
    CHECK(a != INVALID_SOCKET);
    ne_join_connector(&k);
    set_dword(a, SOL_SOCKET, SO_RCVBUF, 4096);
    /* Every watch start fails while the buffers fill. */
    FAULT(calloc, .err = ENOMEM, .times = -1, .this_thread = 1);
    ne_fill_until_blocked(c);
    CHECK(fault_fired(FAULT_calloc) >= 1);
    /* Now the start at the send's beginning fails, and the one after it found no room works. */
    FAULT(calloc, .nth = 1, .err = ENOMEM, .this_thread = 1);
    char more[4096] = {0};
    CHECK_EQ(ne_send(c, more, sizeof more, 0, NULL), WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    CHECK(fault_calls(FAULT_calloc) >= 2);
    fault_clear();
    ne_fionbio(a, 1);
    static char sink[65536];
    long long deadline = now_ms() + 10000;
    int seen = 0;
    WSANETWORKEVENTS ne;
    while (!seen && now_ms() < deadline) {
        while (ne_recv(a, sink, sizeof sink, 0) > 0) {
        }
        seen = ne_wait_bit(c, ev, FD_WRITE, 20, &ne);
    }
    CHECK(seen);
    CHECK(WSACloseEvent(ev));
}

/* ---- closing a listener in use without a spare descriptor (session 8, s8-m3) ---- */

/* A listener closed while a call still holds it, when no fresh socket can take over its
 * descriptor number (socket fails: release_descriptor has no spare), stops listening at once
 * all the same: a connect to its port is refused, as on Windows, not queued on a socket that
 * nobody will ever accept from. */
TEST(fault_close_of_a_listener_in_use_without_a_spare_stops_listening) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err); /* a call still running */
    CHECK(so != NULL);
    FAULT(socket, .err = EMFILE, .this_thread = 1);
    close_socket(l);
    CHECK_EQ(fault_fired(FAULT_socket), 1);
    fault_clear();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK_EQ(connect(fd, (const struct sockaddr *)&addr, (socklen_t)addr_len(&addr)), -1);
    CHECK_EQ(errno, ECONNREFUSED);
    close(fd);
    wsp_socket_release(so); /* the last reference: the descriptor closes now */
}

/* As fault_connect_refused_by_the_kernel_at_once, on plain TCP: a connect the kernel refuses
 * at once (no route) fails with that error, blocking or not, and never waits for a
 * connection that was never started. */
TEST(fault_plain_connect_refused_by_the_kernel_at_once) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    FAULT(connect, .err = ENETUNREACH, .this_thread = 1);
    CHECK_EQ(connect_full(s, &addr, NULL, NULL, NULL), WSAENETUNREACH);
    CHECK_EQ(fault_fired(FAULT_connect), 1);
    set_nonblocking(s, 1);
    FAULT(connect, .err = ENETUNREACH, .this_thread = 1);
    CHECK_EQ(connect_full(s, &addr, NULL, NULL, NULL), WSAENETUNREACH);
    CHECK_EQ(fault_fired(FAULT_connect), 1);
    /* An error code below WSAEINPROGRESS too, non-blocking and blocking. */
    FAULT(connect, .err = EACCES, .this_thread = 1);
    CHECK_EQ(connect_full(s, &addr, NULL, NULL, NULL), WSAEACCES);
    CHECK_EQ(fault_fired(FAULT_connect), 1);
    set_nonblocking(s, 0);
    FAULT(connect, .err = EACCES, .this_thread = 1);
    CHECK_EQ(connect_full(s, &addr, NULL, NULL, NULL), WSAEACCES);
    CHECK_EQ(fault_fired(FAULT_connect), 1);
    fault_clear();
    close_socket(s);
    close_socket(l);
}
