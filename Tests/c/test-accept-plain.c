/* Conditional accept on plain TCP: accept, reject, defer, invalid answers, withdrawn peers,
 * non-blocking and blocking listeners, inheritance, several accepting threads. */
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "support.h"

/* The condition function's answer comes from ctx (an int*); each call is counted. */
struct answer {
    int rc;
    int calls;
    int caller_port; /* the last presented peer's port */
    uint32_t callee_capacity;
    int caller_data_null;
};

static int answer_with(LPWSABUF caller_id, LPWSABUF caller_data, LPQOS sqos, LPQOS gqos,
                       LPWSABUF callee_id, LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)sqos, (void)gqos, (void)callee_id, (void)g;
    struct answer *a = (struct answer *)ctx;
    __atomic_add_fetch(&a->calls, 1, __ATOMIC_SEQ_CST);
    a->caller_port = port_of((struct sockaddr_storage *)caller_id->buf);
    a->callee_capacity = callee_data ? callee_data->len : 0xffffffffu;
    a->caller_data_null = caller_data == NULL;
    return a->rc;
}

static SOCKET plain_client(const struct sockaddr_storage *addr, int *port) {
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, addr, NULL, NULL), 0);
    if (port) {
        struct sockaddr_storage me = local_address(c);
        *port = port_of(&me);
    }
    return c;
}

TEST(plain_accept_without_condition_function) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int port;
    SOCKET c = plain_client(&addr, &port);
    struct sockaddr_storage peer;
    int len = sizeof peer, err = 0;
    SOCKET a = T.lpWSPAccept(l, (struct sockaddr *)&peer, &len, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(len, sizeof(struct sockaddr_in));
    CHECK_EQ(port_of(&peer), port);
    send_all(a, "hi", 2);
    char b[2];
    recv_exact(c, b, 2);
    CHECK_MEM(b, "hi", 2);
    CHECK_EQ(stats_of(l).accepted, 1);
}

TEST(plain_accept_with_cf_accept_presents_addresses) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int port;
    SOCKET c = plain_client(&addr, &port);
    struct answer ans = {.rc = CF_ACCEPT};
    int err = 0;
    SOCKET a = accept_with(l, answer_with, (DWORD_PTR)&ans, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(ans.calls, 1);
    CHECK_EQ(ans.caller_port, port);
    CHECK_EQ(ans.callee_capacity, 0); /* plain TCP carries no callee data */
    CHECK(ans.caller_data_null);
    /* The accepted socket's peer is the client. */
    struct sockaddr_storage peer;
    int len = sizeof peer;
    CHECK_EQ(T.lpWSPGetPeerName(a, (struct sockaddr *)&peer, &len, &err), 0);
    CHECK_EQ(port_of(&peer), port);
    close_socket(c);
}

TEST(plain_reject_refuses_and_resets_the_client) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    SOCKET c = plain_client(&addr, NULL);
    struct answer ans = {.rc = CF_REJECT};
    int err = 0;
    CHECK(accept_with(l, answer_with, (DWORD_PTR)&ans, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAECONNREFUSED);
    char b[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAECONNRESET);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.rejected, 1);
    CHECK_EQ(st.accepted, 0);
    CHECK_EQ(st.queued, 0);
}

/* Callee data written by a condition function that rejects: a rejection carries none, so it
 * is not checked (here more than plain TCP could carry), and the rejection stands. */
static int reject_with_callee_data(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e,
                                   LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)g, (void)ctx;
    static char data[] = "data";
    callee_data->buf = data;
    callee_data->len = 4;
    return CF_REJECT;
}

TEST(plain_reject_with_callee_data_still_refuses) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    SOCKET c = plain_client(&addr, NULL);
    int err = 0;
    CHECK(accept_with(l, reject_with_callee_data, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAECONNREFUSED);
    char b[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(c, b, sizeof b, 0, &got), WSAECONNRESET);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.rejected, 1);
    CHECK_EQ(st.queued, 0);
}

TEST(plain_defer_presents_the_same_peer_again) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int first, second;
    SOCKET c1 = plain_client(&addr, &first);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    SOCKET c2 = plain_client(&addr, &second);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    struct answer ans = {.rc = CF_DEFER};
    int err = 0;
    for (int i = 0; i < 3; i++) {
        CHECK(accept_with(l, answer_with, (DWORD_PTR)&ans, &err) == INVALID_SOCKET);
        CHECK_EQ(err, WSATRY_AGAIN);
        CHECK_EQ(ans.caller_port, first);
    }
    CHECK_EQ(stats_of(l).deferred, 3);
    CHECK_EQ(stats_of(l).queued, 2);
    ans.rc = CF_ACCEPT;
    SOCKET a = accept_with(l, answer_with, (DWORD_PTR)&ans, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(ans.caller_port, first);
    a = accept_with(l, answer_with, (DWORD_PTR)&ans, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(ans.caller_port, second);
    close_socket(c1);
    close_socket(c2);
}

/* A deferred plain request waits in line again unwatched: a plain client is asked about by the
 * kernel when its request is presented, so the deferral costs no epoll registration. */
TEST(plain_deferred_request_waits_again_without_an_epoll_registration) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int c = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    struct answer ans = {.rc = CF_DEFER};
    int err = 0;
    FAULT(epoll_ctl, .nth = 1 << 30); /* counts the provider's calls, fails none */
    CHECK(accept_with(l, answer_with, (DWORD_PTR)&ans, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN);
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 0);
    fault_clear();
    CHECK_EQ(stats_of(l).queued, 1);
    ans.rc = CF_ACCEPT;
    SOCKET a = accept_with(l, answer_with, (DWORD_PTR)&ans, &err);
    CHECK(a != INVALID_SOCKET);
    close_socket(a);
    close(c);
    close_socket(l);
}

struct defer_thread {
    SOCKET l;
    struct answer ans;
    int err;
    SOCKET result;
    struct blocker blocker;
};

static void *accept_thread(void *arg) {
    struct defer_thread *d = arg;
    blocker_enter(&d->blocker);
    d->result = accept_with(d->l, answer_with, (DWORD_PTR)&d->ans, &d->err);
    blocker_leave(&d->blocker);
    return NULL;
}

TEST(plain_deferred_request_is_presented_to_another_thread) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int port;
    SOCKET c = plain_client(&addr, &port);
    struct answer ans = {.rc = CF_DEFER};
    int err = 0;
    CHECK(accept_with(l, answer_with, (DWORD_PTR)&ans, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN);
    struct defer_thread d = {.l = l, .ans = {.rc = CF_ACCEPT}};
    pthread_t t;
    pthread_create(&t, NULL, accept_thread, &d);
    pthread_join(t, NULL);
    CHECK(d.result != INVALID_SOCKET);
    CHECK_EQ(d.ans.caller_port, port);
    close_socket(c);
}

TEST(plain_invalid_condition_answer_is_einval_and_keeps_the_request) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int port;
    SOCKET c = plain_client(&addr, &port);
    struct answer ans = {.rc = 7};
    int err = 0;
    CHECK(accept_with(l, answer_with, (DWORD_PTR)&ans, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEINVAL);
    ans.rc = -1;
    CHECK(accept_with(l, answer_with, (DWORD_PTR)&ans, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(stats_of(l).queued, 1);
    CHECK_EQ(stats_of(l).deferred, 0); /* an invalid answer is no CF_DEFER */
    ans.rc = CF_ACCEPT;
    SOCKET a = accept_with(l, answer_with, (DWORD_PTR)&ans, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(ans.caller_port, port);
    CHECK_EQ(ans.calls, 3);
    send_all(c, "x", 1);
    char b;
    recv_exact(a, &b, 1);
    CHECK_EQ(b, 'x');
}

TEST(plain_withdrawn_client_is_never_handed_out) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    SOCKET gone = plain_client(&addr, NULL);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    close_socket(gone);
    int port;
    SOCKET c = plain_client(&addr, &port);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    struct answer ans = {.rc = CF_ACCEPT};
    int err = 0;
    SOCKET a = accept_with(l, answer_with, (DWORD_PTR)&ans, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(ans.calls, 1);
    CHECK_EQ(ans.caller_port, port);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.withdrawn, 1);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.queued, 0);
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    close_socket(c);
}

TEST(plain_nonblocking_listener_with_nothing_pending_would_block) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    int err = 0;
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    /* Winsock's numeric FIONBIO works as well. */
    DWORD off = 0, ret = 0;
    CHECK_EQ(T.lpWSPIoctl(l, 0x8004667Eu, &off, sizeof off, NULL, 0, &ret, NULL, NULL, NULL, &err),
             0);
    set_nonblocking(l, 1);
    SOCKET c = plain_client(&addr, NULL);
    SOCKET a = INVALID_SOCKET;
    long long deadline = now_ms() + 10000;
    while ((a = accept_with(l, NULL, 0, &err)) == INVALID_SOCKET && now_ms() < deadline) {
        CHECK_EQ(err, WSAEWOULDBLOCK);
        sleep_ms(1);
    }
    CHECK(a != INVALID_SOCKET);
    close_socket(c);
}

TEST(plain_blocking_accept_is_woken_by_closing_the_listener) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    struct defer_thread d = {.l = l, .ans = {.rc = CF_ACCEPT}};
    pthread_t t;
    pthread_create(&t, NULL, accept_thread, &d);
    wait_blocked(&d.blocker);
    close_socket(l);
    pthread_join(t, NULL);
    CHECK(d.result == INVALID_SOCKET);
    CHECK_EQ(d.err, WSAEINTR);
    CHECK_EQ(d.ans.calls, 0);
    int err = 0;
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAENOTSOCK);
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

TEST(plain_accepted_socket_inherits_the_listeners_properties) {
    start();
    SOCKET l = new_socket(WSP_CATALOG_TCP_IPV4);
    set_int(l, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int(l, SOL_SOCKET, SO_RCVBUF, 65536);
    set_int(l, SOL_SOCKET, SO_SNDBUF, 40 * 1024);
    set_int(l, IPPROTO_TCP, TCP_NODELAY, 1);
    set_dword(l, SOL_SOCKET, SO_RCVTIMEO, 150);
    set_nonblocking(l, 1);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(l, (struct sockaddr *)&sin, sizeof sin, &err), 0);
    CHECK_EQ(T.lpWSPListen(l, 4, &err), 0);
    struct sockaddr_storage addr = local_address(l);
    int rcvbuf = get_int(l, SOL_SOCKET, SO_RCVBUF);
    SOCKET c = plain_client(&addr, NULL);
    SOCKET a = INVALID_SOCKET;
    long long deadline = now_ms() + 10000;
    while ((a = accept_with(l, NULL, 0, &err)) == INVALID_SOCKET && now_ms() < deadline)
        sleep_ms(1);
    CHECK(a != INVALID_SOCKET);
    CHECK(get_int(a, SOL_SOCKET, SO_KEEPALIVE) != 0);
    CHECK_EQ(get_int(a, SOL_SOCKET, SO_RCVBUF), rcvbuf);
    /* Read back as set, as on the listener (Linux would report twice the size). */
    CHECK_EQ(get_int(a, SOL_SOCKET, SO_SNDBUF), 40 * 1024);
    CHECK(get_int(a, IPPROTO_TCP, TCP_NODELAY) != 0);
    CHECK_EQ(get_int(a, SOL_SOCKET, SO_RCVTIMEO), 150);
    /* Non-blocking: a recv with nothing to read would block. */
    char b[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(a, b, sizeof b, 0, &got), WSAEWOULDBLOCK);
    /* And the listener's defaults are not inherited from elsewhere: a blocking listener
     * gives blocking sockets whose time-out applies. */
    set_nonblocking(a, 0);
    long long t0 = now_ms();
    CHECK_EQ(recv_some(a, b, sizeof b, 0, &got), WSAETIMEDOUT);
    CHECK(now_ms() - t0 >= 140);
    close_socket(c);
}

TEST(plain_accepted_socket_of_a_blocking_listener_blocks) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_dword(l, SOL_SOCKET, SO_RCVTIMEO, 100);
    SOCKET c = plain_client(&addr, NULL);
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    char b[4];
    DWORD got = 0;
    long long t0 = now_ms();
    CHECK_EQ(recv_some(a, b, sizeof b, 0, &got), WSAETIMEDOUT);
    CHECK(now_ms() - t0 >= 90);
    close_socket(c);
}

TEST(listen_clamps_and_updates_the_backlog) {
    start();
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, SOMAXCONN, NULL);
    CHECK_EQ(stats_of(l).backlog, WSP_MAX_BACKLOG);
    int err = 0;
    CHECK_EQ(T.lpWSPListen(l, 0, &err), 0);
    CHECK_EQ(stats_of(l).backlog, 1);
    CHECK_EQ(T.lpWSPListen(l, 17, &err), 0);
    CHECK_EQ(stats_of(l).backlog, 17);
    CHECK_EQ(T.lpWSPListen(l, -5, &err), 0);
    CHECK_EQ(stats_of(l).backlog, 1);
    SOCKET l2 = listener(WSP_CATALOG_CDATA_IPV4, 0, NULL);
    CHECK_EQ(stats_of(l2).backlog, 1);
    /* The ioctl form reports the same. */
    WSP_LISTENER_STATS_DATA st;
    DWORD ret = 0;
    CHECK_EQ(T.lpWSPIoctl(l, SIO_WSP_LISTENER_STATS, NULL, 0, &st, sizeof st, &ret, NULL, NULL,
                          NULL, &err),
             0);
    CHECK_EQ(ret, sizeof st);
    CHECK_EQ(st.backlog, 1);
}

TEST(plain_second_listen_raises_a_full_backlog) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, &addr);
    SOCKET c1 = plain_client(&addr, NULL);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    SOCKET c2 = plain_client(&addr, NULL); /* completes in the kernel's queue */
    /* A check that nothing happens: no event tells that the reactor has looked and left c2
     * in the kernel, so give it time to do it wrongly (a slow machine passes, never fails). */
    sleep_ms(50);
    CHECK_EQ(stats_of(l).queued, 1); /* the provider's backlog is full */
    int err = 0;
    CHECK_EQ(T.lpWSPListen(l, 4, &err), 0);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    close_socket(c1);
    close_socket(c2);
}

TEST(listen_and_accept_argument_errors) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPListen(s, 4, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL); /* not bound */
    err = 0;
    CHECK(T.lpWSPAccept(s, NULL, NULL, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEINVAL); /* not listening */
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = plain_client(&addr, NULL);
    struct sockaddr_in small;
    int len = (int)sizeof small - 1;
    err = 0;
    CHECK(T.lpWSPAccept(l, (struct sockaddr *)&small, &len, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEFAULT);
    /* The request survived the failed call. (A buffer with a NULL length is not an error:
     * conformance_accept_with_an_address_buffer_and_no_length_leaves_the_buffer.) */
    len = sizeof small;
    SOCKET a = T.lpWSPAccept(l, (struct sockaddr *)&small, &len, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    /* A connected socket cannot listen. */
    err = 0;
    CHECK_EQ(T.lpWSPListen(c, 4, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEISCONN);
    err = 0;
    CHECK(T.lpWSPAccept(a, NULL, NULL, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEINVAL);
    close_socket(s);
}

/* ---- several threads accepting on one listener --------------------------------------- */

#define CONCURRENT_CLIENTS 200

struct concurrent {
    SOCKET l;
    pthread_mutex_t lock;
    int ports[CONCURRENT_CLIENTS];
    int count;
};

static void *concurrent_acceptor(void *arg) {
    struct concurrent *cc = arg;
    for (;;) {
        struct sockaddr_storage peer;
        int len = sizeof peer, err = 0;
        SOCKET a = T.lpWSPAccept(cc->l, (struct sockaddr *)&peer, &len, NULL, 0, &err);
        if (a == INVALID_SOCKET)
            return NULL; /* the listener was closed */
        pthread_mutex_lock(&cc->lock);
        CHECK(cc->count < CONCURRENT_CLIENTS);
        cc->ports[cc->count++] = port_of(&peer);
        pthread_mutex_unlock(&cc->lock);
        close_socket(a);
    }
}

TEST(plain_four_threads_accept_each_client_exactly_once) {
    start();
    struct sockaddr_storage addr;
    /* A backlog that holds every client: a full one would drop SYNs and cost retransmits. */
    struct concurrent cc = {.l = listener(WSP_CATALOG_TCP_IPV4, SOMAXCONN, &addr)};
    pthread_mutex_init(&cc.lock, NULL);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, concurrent_acceptor, &cc);
    static int client_ports[CONCURRENT_CLIENTS];
    static SOCKET clients[CONCURRENT_CLIENTS];
    for (int i = 0; i < CONCURRENT_CLIENTS; i++)
        clients[i] = plain_client(&addr, &client_ports[i]);
    long long deadline = now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&cc.lock);
        int n = cc.count;
        pthread_mutex_unlock(&cc.lock);
        if (n == CONCURRENT_CLIENTS)
            break;
        CHECK(now_ms() < deadline);
        sleep_ms(2);
    }
    close_socket(cc.l);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(cc.count, CONCURRENT_CLIENTS);
    /* Every client port appears exactly once among the accepted peers. */
    for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
        int seen = 0;
        for (int j = 0; j < CONCURRENT_CLIENTS; j++)
            seen += cc.ports[j] == client_ports[i];
        CHECK_EQ(seen, 1);
    }
    for (int i = 0; i < CONCURRENT_CLIENTS; i++)
        close_socket(clients[i]);
}

TEST(plain_conditional_accept_option_before_and_after_listen) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(get_int(s, SOL_SOCKET, SO_CONDITIONAL_ACCEPT), 0);
    set_int(s, SOL_SOCKET, SO_CONDITIONAL_ACCEPT, 1);
    CHECK_EQ(get_int(s, SOL_SOCKET, SO_CONDITIONAL_ACCEPT), 1);
    CHECK_EQ(get_int(s, SOL_SOCKET, SO_ACCEPTCONN), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&sin, sizeof sin, &err), 0);
    CHECK_EQ(T.lpWSPListen(s, 4, &err), 0);
    CHECK_EQ(get_int(s, SOL_SOCKET, SO_ACCEPTCONN), 1);
    int v = 0;
    err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_CONDITIONAL_ACCEPT, (char *)&v, sizeof v, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(get_int(s, SOL_SOCKET, SO_CONDITIONAL_ACCEPT), 1);
}

/* A plain TCP client that sends its data and then half-closes still wants its answer: it is
 * handed out, with its data, not taken for one that left. */
TEST(plain_client_that_sends_then_half_closes_is_handed_out_with_its_data) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, "last words", 10, MSG_NOSIGNAL), 10);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    struct answer ans = {.rc = CF_ACCEPT};
    int err = 0;
    SOCKET a = accept_with(l, answer_with, (DWORD_PTR)&ans, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(ans.calls, 1);
    char b[16];
    recv_exact(a, b, 10);
    CHECK_MEM(b, "last words", 10);
    DWORD got = 1;
    CHECK_EQ(recv_some(a, b, sizeof b, 0, &got), 0);
    CHECK_EQ(got, 0); /* then its end of stream */
    send_all(a, "answer", 6); /* and it can still hear back */
    CHECK_EQ(raw_recv(fd, b, sizeof b, 10000), 6);
    CHECK_MEM(b, "answer", 6);
    CHECK_EQ(stats_of(l).withdrawn, 0);
    close(fd);
    close_socket(a);
}

/* A plain TCP client that has sent its first bytes, and is still connected, waits: the look
 * at its client asks the kernel only whether it closed (poll for POLLRDHUP), never how much
 * it sent (ioctl FIONREAD): its bytes are the application's, not news of its leaving. */
TEST(plain_client_that_sent_data_is_looked_at_without_asking_how_much) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_nonblocking(l, 1); /* the accepted socket comes non-blocking: no FIONBIO either */
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, "hello", 5, MSG_NOSIGNAL), 5);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(fault_calls(FAULT_ioctl), 0);
    fault_clear();
    char b[8];
    recv_exact(a, b, 5);
    CHECK_MEM(b, "hello", 5);
    CHECK_EQ(stats_of(l).withdrawn, 0);
    close(fd);
    close_socket(a);
    close_socket(l);
}

/* An accepted socket inherits the listener's provider options, each of them. */
TEST(accepted_socket_inherits_every_provider_option) {
    start();
    SOCKET l = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_int(l, SOL_SOCKET, SO_CONDITIONAL_ACCEPT, 1);
    set_dword(l, SOL_SOCKET, SO_SNDTIMEO, 4321);
    const struct {
        int name;
        DWORD value;
    } wsp[] = {{WSP_CONNECT_TIMEOUT, 1234},   {WSP_CONNECT_LIMIT, 2345},
               {WSP_MAX_CALLER_DATA, 77},     {WSP_MAX_CALLEE_DATA, 88},
               {WSP_HANDSHAKE_DEADLINE, 3456}, {WSP_PENDING_INTERVAL, 567},
               {WSP_HOLD_LIMIT, 7},             {WSP_HOLD_DEADLINE, 5678}};
    int n = (int)(sizeof wsp / sizeof wsp[0]);
    for (int i = 0; i < n; i++)
        set_dword(l, SOL_WSP, wsp[i].name, wsp[i].value);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(l, (struct sockaddr *)&sin, sizeof sin, &err), 0);
    CHECK_EQ(T.lpWSPListen(l, 4, &err), 0);
    struct async_connect ac = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = local_address(l)};
    async_connect_start(&ac);
    struct answer ans = {.rc = CF_ACCEPT};
    SOCKET a = accept_with(l, answer_with, (DWORD_PTR)&ans, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&ac), 0);
    CHECK_EQ(get_int(a, SOL_SOCKET, SO_CONDITIONAL_ACCEPT), 1);
    CHECK_EQ(get_int(a, SOL_SOCKET, SO_SNDTIMEO), 4321);
    for (int i = 0; i < n; i++) {
        DWORD v = 0;
        int len = sizeof v;
        CHECK_EQ(T.lpWSPGetSockOpt(a, SOL_WSP, wsp[i].name, (char *)&v, &len, &err), 0);
        if (v != wsp[i].value)
            fprintf(stderr, "option %d: %u, not %u\n", wsp[i].name, v, wsp[i].value);
        CHECK_EQ(v, wsp[i].value);
    }
}

/* A full backlog stops the provider taking connections; an accept that makes room starts it
 * again, so a connection that waited in the kernel's queue is reported with FD_ACCEPT. */
TEST(plain_accept_from_a_full_backlog_takes_the_next_waiting_connection) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, &addr);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    int first = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    int second = raw_connect(&addr);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    WSANETWORKEVENTS ne;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0);
    CHECK(ne.lNetworkEvents & FD_ACCEPT);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    WAIT_FOR(stats_of(l).queued == 1, 10000); /* the second, taken now that there is room */
    SOCKET b = accept_with(l, NULL, 0, &err);
    CHECK(b != INVALID_SOCKET);
    CHECK_EQ(stats_of(l).accepted, 2);
    close(first);
    close(second);
    WSACloseEvent(ev);
}

/* Writes one byte of callee data (into a buffer of its own) and accepts. */
static int accept_with_one_byte(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e,
                                LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)g, (void)ctx;
    static char byte = 'x';
    if (callee_data) {
        callee_data->buf = &byte;
        callee_data->len = 1;
    }
    return CF_ACCEPT;
}

/* Plain TCP carries no callee data: even one byte of it is the application's mistake
 * (WSAEFAULT, as more than a connect-data listener's limit is), and the request stays in line
 * for the next call, unlike an answer the client cannot take. */
TEST(plain_accept_with_one_byte_of_callee_data_is_efault_and_keeps_the_request) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int port;
    SOCKET c = plain_client(&addr, &port);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    int err = 0;
    CHECK(accept_with(l, accept_with_one_byte, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEFAULT);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.queued, 1);
    CHECK_EQ(st.undeliverable, 0);
    struct answer ans = {.rc = CF_ACCEPT};
    SOCKET a = accept_with(l, answer_with, (DWORD_PTR)&ans, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(ans.caller_port, port);
    close_socket(a);
    close_socket(c);
}
