/* Conditional accept at the edges: peers that leave while the condition function runs,
 * listeners closed under a presentation, sockets closed under a blocking call, running out
 * of descriptors. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backlog.h"
#include "faults.h"
#include "handshake.h"
#include "internal.h"
#include "support.h"

/* Closes ctx's client (abortively) from inside the condition function, then answers
 * CF_ACCEPT: the peer is gone by the time the provider acts on the answer. */
struct leaver {
    SOCKET client;
    int raw_fd; /* or a POSIX socket, when >= 0 */
    int calls;
    SOCKET listener_to_close;
    int rc; /* the answer after leaving (CF_ACCEPT unless set) */
};

static int leave_then_accept(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                             GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    struct leaver *lv = (struct leaver *)ctx;
    lv->calls++;
    if (lv->raw_fd >= 0) {
        struct linger lg = {1, 0};
        setsockopt(lv->raw_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(lv->raw_fd);
        lv->raw_fd = -1;
    }
    if (lv->listener_to_close)
        close_socket(lv->listener_to_close);
    return lv->rc;
}

TEST(edge_peer_leaving_during_the_condition_function_counts_as_withdrawn_whatever_the_answer) {
    start();
    int answers[] = {CF_REJECT, CF_DEFER, 7};
    DWORD cats[] = {WSP_CATALOG_TCP_IPV4, WSP_CATALOG_CDATA_IPV4};
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < 3; i++) {
            struct sockaddr_storage addr;
            SOCKET l = listener(cats[c], 4, &addr);
            set_nonblocking(l, 1);
            struct leaver lv = {.raw_fd = raw_connect(&addr), .rc = answers[i]};
            if (c == 1) {
                const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
                CHECK_EQ(send(lv.raw_fd, request, sizeof request, MSG_NOSIGNAL), sizeof request);
            }
            WAIT_FOR(stats_of(l).queued == 1, 10000);
            int err = 0;
            CHECK(accept_with(l, leave_then_accept, (DWORD_PTR)&lv, &err) == INVALID_SOCKET);
            CHECK_EQ(err, WSAEWOULDBLOCK); /* the dead request is gone; nothing else waits */
            CHECK_EQ(lv.calls, 1);
            WSP_LISTENER_STATS_DATA st = stats_of(l);
            CHECK_EQ(st.withdrawn, 1);
            CHECK_EQ(st.rejected + st.deferred + st.accepted + st.queued, 0);
            close_socket(l);
        }
    }
}

TEST(edge_plain_peer_leaving_during_the_condition_function_is_not_handed_out) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    struct leaver lv = {.raw_fd = raw_connect(&addr), .rc = CF_ACCEPT};
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    int err = 0;
    SOCKET a = accept_with(l, leave_then_accept, (DWORD_PTR)&lv, &err);
    CHECK_EQ(lv.calls, 1);
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.withdrawn, 1);
    CHECK_EQ(st.accepted, 0);
}

TEST(edge_cdata_peer_leaving_during_the_condition_function_is_not_handed_out) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    struct leaver lv = {.raw_fd = raw_connect(&addr), .rc = CF_ACCEPT};
    const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    CHECK_EQ(send(lv.raw_fd, request, sizeof request, MSG_NOSIGNAL), sizeof request);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    int err = 0;
    SOCKET a = accept_with(l, leave_then_accept, (DWORD_PTR)&lv, &err);
    CHECK_EQ(lv.calls, 1);
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.withdrawn, 1);
    CHECK_EQ(st.accepted, 0);
}

TEST(edge_listener_closed_during_the_condition_function) {
    start();
    DWORD cats[] = {WSP_CATALOG_TCP_IPV4, WSP_CATALOG_CDATA_IPV4};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_storage addr;
        SOCKET l = listener(cats[i], 4, &addr);
        struct leaver lv = {.raw_fd = -1, .listener_to_close = l, .rc = CF_ACCEPT};
        int fd = raw_connect(&addr);
        if (i == 1) {
            const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
            CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), sizeof request);
        }
        int err = 0;
        SOCKET a = accept_with(l, leave_then_accept, (DWORD_PTR)&lv, &err);
        CHECK(a == INVALID_SOCKET);
        CHECK_EQ(err, WSAEINTR);
        CHECK_EQ(lv.calls, 1);
        /* The client is not left hanging: its connection ends. */
        char b[16];
        long long deadline = now_ms() + 10000;
        int n;
        while ((n = raw_recv(fd, b, sizeof b, 50)) == -EAGAIN)
            CHECK(now_ms() < deadline);
        CHECK(n == 0 || n == -ECONNRESET);
        close(fd);
    }
}

/* The close ends the request queued behind the one being presented and takes it out of the
 * backlog: the presented one, ended by its accept after the function returns, is then
 * unlinked from a list that no longer holds the other (AddressSanitizer sees a dangling
 * neighbour there). Both clients' connections end. */
TEST(edge_listener_closed_during_the_condition_function_ends_the_request_behind) {
    start();
    DWORD cats[] = {WSP_CATALOG_TCP_IPV4, WSP_CATALOG_CDATA_IPV4};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_storage addr;
        SOCKET l = listener(cats[i], 4, &addr);
        set_nonblocking(l, 1);
        int fds[2];
        for (int k = 0; k < 2; k++) {
            fds[k] = raw_connect(&addr);
            if (i == 1) {
                const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
                CHECK_EQ(send(fds[k], request, sizeof request, MSG_NOSIGNAL), sizeof request);
            }
        }
        WAIT_FOR(stats_of(l).queued == 2, 10000);
        struct leaver lv = {.raw_fd = -1, .listener_to_close = l, .rc = CF_ACCEPT};
        int err = 0;
        SOCKET a = accept_with(l, leave_then_accept, (DWORD_PTR)&lv, &err);
        CHECK(a == INVALID_SOCKET);
        CHECK_EQ(err, WSAEINTR);
        CHECK_EQ(lv.calls, 1);
        for (int k = 0; k < 2; k++) {
            char b[16];
            long long deadline = now_ms() + 10000;
            int n;
            while ((n = raw_recv(fds[k], b, sizeof b, 50)) == -EAGAIN)
                CHECK(now_ms() < deadline);
            if (i == 1 && n > 0) /* connect data: the one behind is told "closing" */
                while ((n = raw_recv(fds[k], b, sizeof b, 50)) == -EAGAIN)
                    CHECK(now_ms() < deadline);
            CHECK(n == 0 || n == -ECONNRESET);
            close(fds[k]);
        }
    }
}

/* A listener l, a client c connected to it and the socket a it accepted. */
static void edge_pair(SOCKET *l, SOCKET *c, SOCKET *a) {
    struct sockaddr_storage addr;
    *l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    *c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(*c, &addr, NULL, NULL), 0);
    int err = 0;
    *a = accept_with(*l, NULL, 0, &err);
    CHECK(*a != INVALID_SOCKET);
}

struct blocked_recv {
    SOCKET s;
    int rc;
    struct blocker blocker;
};

static void *recv_thread(void *arg) {
    struct blocked_recv *b = arg;
    char buf[8];
    DWORD got = 0;
    blocker_enter(&b->blocker);
    b->rc = recv_some(b->s, buf, sizeof buf, 0, &got);
    blocker_leave(&b->blocker);
    return NULL;
}

TEST(edge_closing_a_socket_wakes_a_blocked_recv) {
    start();
    SOCKET l, c, a;
    edge_pair(&l, &c, &a);
    struct blocked_recv b = {.s = c, .rc = -1};
    pthread_t t;
    pthread_create(&t, NULL, recv_thread, &b);
    wait_blocked(&b.blocker);
    close_socket(c);
    pthread_join(t, NULL);
    CHECK_EQ(b.rc, WSAEINTR);
}

struct blocked_send {
    SOCKET s;
    int rc;
    struct blocker blocker;
};

static void *send_thread(void *arg) {
    struct blocked_send *b = arg;
    enum { SIZE = 64 << 20 }; /* more than the two ends' buffers hold: the send blocks */
    char *buf = calloc(1, SIZE);
    CHECK(buf != NULL);
    WSABUF wb = {SIZE, buf};
    DWORD sent = 0;
    int err = 0;
    blocker_enter(&b->blocker);
    b->rc = T.lpWSPSend(b->s, &wb, 1, &sent, 0, NULL, NULL, NULL, &err) == 0 ? 0 : err;
    blocker_leave(&b->blocker);
    free(buf);
    return NULL;
}

/* A send blocked on a peer that reads nothing is woken by closing the socket from another
 * thread, and fails (Windows cancels a blocking call the close overtakes): a server can
 * always free a thread a stalled client holds. */
TEST(edge_closing_a_socket_wakes_a_blocked_send) {
    start();
    SOCKET l, c, a;
    edge_pair(&l, &c, &a);
    struct blocked_send b = {.s = a, .rc = -1};
    pthread_t t;
    pthread_create(&t, NULL, send_thread, &b);
    wait_blocked(&b.blocker);
    close_socket(a);
    pthread_join(t, NULL);
    CHECK_EQ(b.rc, WSAEINTR);
    close_socket(c);
    close_socket(l);
}

/* An abortive close (SO_LINGER on, time 0) of a socket a recv waits on resets the peer and
 * sends nothing before: waking the recv shuts only the receiving side, so the peer never sees
 * an end of stream (a FIN) ahead of the reset, as with any other abortive close. */
TEST(edge_abortive_close_of_a_socket_a_recv_waits_on_resets_the_peer) {
    start();
    SOCKET l, c, a;
    edge_pair(&l, &c, &a);
    int err = 0;
    struct linger lg = {1, 0};
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof lg, &err), 0);
    struct blocked_recv b = {.s = c, .rc = -1};
    pthread_t t;
    pthread_create(&t, NULL, recv_thread, &b);
    wait_blocked(&b.blocker);
    close_socket(c);
    pthread_join(t, NULL);
    CHECK_EQ(b.rc, WSAEINTR);
    char buf[4];
    DWORD got = 0;
    CHECK_EQ(recv_some(a, buf, sizeof buf, 0, &got), WSAECONNRESET);
    close_socket(a);
    close_socket(l);
}

TEST(edge_running_out_of_descriptors_pauses_and_resumes_the_listener) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Use up every descriptor, then let a client in: the provider cannot take it. */
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    struct rlimit low = {(rlim_t)open_fds() + 64, old.rlim_max};
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    static int hog[128];
    int hogs = 0;
    for (;;) {
        int fd = dup(client);
        if (fd < 0) {
            CHECK_EQ(errno, EMFILE);
            break;
        }
        CHECK(hogs < 128);
        hog[hogs++] = fd;
    }
    CHECK(hogs > 0);
    CHECK_EQ(connect(client, (struct sockaddr *)&addr, sizeof(struct sockaddr_in)), 0);
    int err = 0;
    for (int i = 0; i < 5; i++) {
        /* The provider's queue is empty: the kernel still holds the client. */
        CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET);
        CHECK_EQ(err, WSAEWOULDBLOCK);
        CHECK_EQ(stats_of(l).queued, 0);
        sleep_ms(20); /* not synchronization: the refusal holds for a while, not just once */
    }
    /* Descriptors free again: the request comes through without another client. */
    for (int i = 0; i < hogs; i++)
        close(hog[i]);
    SOCKET a = INVALID_SOCKET;
    long long deadline = now_ms() + 10000;
    while ((a = accept_with(l, NULL, 0, &err)) == INVALID_SOCKET) {
        CHECK(now_ms() < deadline);
        sleep_ms(5);
    }
    send_all(a, "m", 1);
    char b;
    CHECK_EQ(recv(client, &b, 1, 0), 1);
    CHECK_EQ(b, 'm');
    close(client);
}

struct waiting_accept {
    SOCKET l;
    struct blocker blocker;
    SOCKET s;
    int err;
    pthread_t thread;
};

static void *waiting_accept_main(void *arg) {
    struct waiting_accept *w = arg;
    blocker_enter(&w->blocker);
    w->s = accept_with(w->l, NULL, 0, &w->err);
    blocker_leave(&w->blocker);
    return NULL;
}

/* A server that closed its standard input (daemons do) gets descriptor 0 for the next
 * connection the kernel hands it: accept4 returning 0 is a connection like any other. Plain
 * TCP on a non-blocking listener (taken by the accept or the reactor); connect data with a
 * blocking accept waiting first (the leader takes the connection and reads its request on
 * its own thread). */
static void accept_given_descriptor_zero(DWORD catalog) {
    /* Standard input kept aside; a runner started without one gets /dev/null there first, so
     * that the provider's own descriptors cannot take 0 before the test frees it. */
    if (fcntl(0, F_GETFD) < 0)
        CHECK_EQ(open("/dev/null", O_RDONLY), 0);
    int saved = fcntl(0, F_DUPFD_CLOEXEC, 3);
    CHECK(saved >= 0);
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(catalog, 4, &addr);
    int cdata = catalog == WSP_CATALOG_CDATA_IPV4;
    static struct waiting_accept w;
    w = (struct waiting_accept){.l = l};
    if (cdata) { /* waits before 0 is freed: its own descriptor (the leader's eventfd) is not 0 */
        CHECK_EQ(pthread_create(&w.thread, NULL, waiting_accept_main, &w), 0);
        wait_blocked(&w.blocker);
    } else {
        set_nonblocking(l, 1);
    }
    /* 0 is freed before the client connects: the reactor may take the connection at once. */
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(client > 0);
    close(0);
    CHECK_EQ(connect(client, (struct sockaddr *)&addr, sizeof(struct sockaddr_in)), 0);
    struct sockaddr_storage me;
    socklen_t me_len = sizeof me;
    CHECK_EQ(getsockname(client, (struct sockaddr *)&me, &me_len), 0);
    SOCKET a = INVALID_SOCKET;
    if (cdata) {
        wsp_hs_frame f = {.type = WSP_HS_REQUEST};
        uint8_t req[32];
        size_t req_len = wsp_hs_encode(&f, req, sizeof req);
        CHECK(req_len > 0);
        CHECK_EQ(send(client, req, req_len, MSG_NOSIGNAL), (ssize_t)req_len);
        WAIT_FOR(__atomic_load_n(&w.blocker.returned, __ATOMIC_SEQ_CST), 10000);
        CHECK_EQ(pthread_join(w.thread, NULL), 0);
        a = w.s;
        CHECK(a != INVALID_SOCKET);
    } else {
        int err = 0;
        long long deadline = now_ms() + 10000;
        while ((a = accept_with(l, NULL, 0, &err)) == INVALID_SOCKET) {
            CHECK_EQ(err, WSAEWOULDBLOCK);
            CHECK(now_ms() < deadline);
            sleep_ms(1);
        }
    }
    /* The premise: descriptor 0 is the connection from client. */
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    CHECK_EQ(getpeername(0, (struct sockaddr *)&peer, &len), 0);
    CHECK_EQ(port_of(&peer), port_of(&me));
    if (cdata) {
        uint8_t answer[8];
        CHECK_EQ(raw_recv(client, answer, sizeof answer, 5000), 8);
        CHECK_EQ(answer[3], WSP_HS_ACCEPT);
    }
    send_all(a, "z", 1);
    char b;
    CHECK_EQ(raw_recv(client, &b, 1, 5000), 1);
    CHECK_EQ(b, 'z');
    CHECK_EQ(stats_of(l).accepted, 1);
    close_socket(a);
    CHECK_EQ(dup2(saved, 0), 0);
    close(saved);
    close(client);
}

TEST(edge_plain_connection_given_descriptor_zero_is_accepted) {
    accept_given_descriptor_zero(WSP_CATALOG_TCP_IPV4);
}

TEST(edge_cdata_connection_given_descriptor_zero_is_accepted) {
    accept_given_descriptor_zero(WSP_CATALOG_CDATA_IPV4);
}

/* A non-blocking accept never waits (an empty queue is WSAEWOULDBLOCK at once): the look at
 * whether a queued client still waits, made with the listener's lock held, asks the kernel
 * without a time-out. Pins that no poll of the accepting thread can sleep. */
TEST(edge_nonblocking_accept_of_a_queued_client_makes_no_poll_that_can_sleep) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    int client = raw_connect(&addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    uint64_t looks = wsp_listener_client_looks(so);
    int polls = fault_sleeping_polls();
    SOCKET a = INVALID_SOCKET;
    long long deadline = now_ms() + 10000;
    while ((a = accept_with(l, NULL, 0, &err)) == INVALID_SOCKET) {
        CHECK_EQ(err, WSAEWOULDBLOCK);
        CHECK(now_ms() < deadline);
        sleep_ms(1);
    }
    CHECK_EQ(wsp_listener_client_looks(so) - looks, 1); /* the accept looked at its client */
    CHECK_EQ(fault_sleeping_polls(), polls);
    wsp_socket_release(so);
    close_socket(a);
    close(client);
}
/* Without the eventfd the leader's wait needs, blocked accepts sleep while the reactor reads
 * the kernel's queue. An accept that finds several connections there takes them all and wakes
 * the sleeping accepts for the rest: with the reactor held, nothing else would. */
TEST(edge_accept_taking_several_connections_wakes_a_sleeping_accept_for_the_rest) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    FAULT(eventfd, .times = -1, .err = EMFILE);
    FAULT(epoll_wait, .hold = 1); /* the reactor's next wait */
    int c0 = raw_connect(&addr);  /* wakes the reactor, if it waits, into the hold */
    WAIT_FOR(fault_holding() == 1, 10000);
    int err = 0;
    SOCKET a0 = accept_with(l, NULL, 0, &err); /* c0: from the provider's queue or the kernel's */
    CHECK(a0 != INVALID_SOCKET);
    static struct waiting_accept w;
    w = (struct waiting_accept){.l = l};
    CHECK_EQ(pthread_create(&w.thread, NULL, waiting_accept_main, &w), 0);
    wait_blocked(&w.blocker);
    int c1 = raw_connect(&addr), c2 = raw_connect(&addr);
    SOCKET a1 = accept_with(l, NULL, 0, &err);
    CHECK(a1 != INVALID_SOCKET);
    WAIT_FOR(__atomic_load_n(&w.blocker.returned, __ATOMIC_SEQ_CST), 10000);
    CHECK_EQ(pthread_join(w.thread, NULL), 0);
    CHECK(w.s != INVALID_SOCKET);
    CHECK(fault_fired(FAULT_eventfd) > 0); /* the premise: no leader's wait */
    CHECK_EQ(stats_of(l).accepted, 3);
    fault_clear();
    fault_release();
    close_socket(a0);
    close_socket(a1);
    close_socket(w.s);
    close(c0);
    close(c1);
    close(c2);
}

TEST(edge_getsockname_on_listener_and_bind_errors) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    CHECK(port_of(&addr) != 0);
    /* A second bind to the same port fails with WSAEADDRINUSE; binding twice, WSAEINVAL. */
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&addr, sizeof(struct sockaddr_in), &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEADDRINUSE);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&any, sizeof any, &err), 0);
    err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&any, sizeof any, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    SOCKET six = new_socket(WSP_CATALOG_TCP_IPV6);
    err = 0;
    /* An IPv4 address is shorter than an IPv6 socket's: WSAEFAULT; one as long as an IPv6
     * address but of the other family: WSAEAFNOSUPPORT. */
    CHECK_EQ(T.lpWSPBind(six, (struct sockaddr *)&any, sizeof any, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    struct sockaddr_storage wide;
    memset(&wide, 0, sizeof wide);
    memcpy(&wide, &any, sizeof any);
    err = 0;
    CHECK_EQ(T.lpWSPBind(six, (struct sockaddr *)&wide, sizeof(struct sockaddr_in6), &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEAFNOSUPPORT);
    (void)l;
}

struct waiter {
    SOCKET l;
    SOCKET result;
    int err;
    int port; /* the port the waiter's condition function saw */
    pthread_t thread;
    struct blocker blocker;
};

static int note_port(LPWSABUF caller_id, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                     GROUP *g, DWORD_PTR ctx) {
    (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    ((struct waiter *)ctx)->port = port_of((struct sockaddr_storage *)caller_id->buf);
    return CF_ACCEPT;
}

static void *waiter_main(void *arg) {
    struct waiter *w = arg;
    blocker_enter(&w->blocker);
    w->result = accept_with(w->l, note_port, (DWORD_PTR)w, &w->err);
    blocker_leave(&w->blocker);
    return NULL;
}

/* Starts a second accepting thread while the request is being presented here (so that it
 * has nothing to take and waits), then defers. */
static int start_waiter_then_defer(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e,
                                   LPWSABUF f, GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    struct waiter *w = (struct waiter *)ctx;
    pthread_create(&w->thread, NULL, waiter_main, w);
    wait_blocked(&w->blocker);
    return CF_DEFER;
}

TEST(edge_deferral_wakes_an_accept_blocked_in_another_thread) {
    start();
    DWORD cats[] = {WSP_CATALOG_TCP_IPV4, WSP_CATALOG_CDATA_IPV4};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_storage addr;
        SOCKET l = listener(cats[i], 4, &addr);
        int fd = i == 0 ? raw_connect(&addr) : -1;
        struct async_connect ac = {.addr = addr};
        if (i == 1) {
            ac.s = new_socket(WSP_CATALOG_CDATA_IPV4);
            async_connect_start(&ac);
        }
        WAIT_FOR(stats_of(l).queued == 1, 10000);
        struct waiter w = {.l = l, .result = INVALID_SOCKET};
        int err = 0;
        CHECK(accept_with(l, start_waiter_then_defer, (DWORD_PTR)&w, &err) == INVALID_SOCKET);
        CHECK_EQ(err, WSATRY_AGAIN);
        pthread_join(w.thread, NULL);
        CHECK(w.result != INVALID_SOCKET);
        struct sockaddr_storage me;
        if (i == 0) {
            socklen_t len = sizeof me;
            getsockname(fd, (struct sockaddr *)&me, &len);
            close(fd);
        } else {
            CHECK_EQ(async_connect_join(&ac), 0);
            me = local_address(ac.s);
        }
        CHECK_EQ(w.port, port_of(&me));
        close_socket(l);
    }
}

struct reentrant {
    SOCKET l;
    int nested_err;
    uint64_t queued_seen;
};

/* Calls back into the provider on the same listener from inside the condition function. */
static int call_back_in(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                        GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    struct reentrant *r = (struct reentrant *)ctx;
    r->queued_seen = stats_of(r->l).queued;
    SOCKET inner = accept_with(r->l, NULL, 0, &r->nested_err);
    CHECK(inner == INVALID_SOCKET); /* the only request is the one being presented */
    return CF_ACCEPT;
}

TEST(edge_condition_function_may_call_back_into_the_provider) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    int fd = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    struct reentrant r = {.l = l};
    int err = 0;
    SOCKET a = accept_with(l, call_back_in, (DWORD_PTR)&r, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(r.nested_err, WSAEWOULDBLOCK);
    CHECK_EQ(r.queued_seen, 1);
    CHECK_EQ(stats_of(l).accepted, 1);
    close(fd);
}

/* Clients that send their request and leave while an accept waits for them: each request is
 * handed to the waiting accept as it arrives, and the accept must still never return one. */
#define LEAVERS 8

struct arrivals {
    SOCKET l;
    pthread_mutex_t lock;
    int closed_ports[LEAVERS]; /* leavers whose close has returned */
    int closed;
    int good_port; /* the one client that stays (0 until known) */
    int calls;
    int accepted_port;
    SOCKET result;
    int err;
    pthread_t thread;
    struct blocker blocker;
};

static int port_closed(struct arrivals *a, int port) {
    pthread_mutex_lock(&a->lock);
    int found = 0;
    for (int i = 0; i < a->closed; i++)
        found |= a->closed_ports[i] == port;
    pthread_mutex_unlock(&a->lock);
    return found;
}

/* Accepts every caller, but first waits until a leaver has really left: the provider must
 * notice on its own that the answer is for nobody. */
static int accept_after_leaving(LPWSABUF caller_id, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e,
                                LPWSABUF f, GROUP *g, DWORD_PTR ctx) {
    (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    struct arrivals *a = (struct arrivals *)ctx;
    int port = port_of((struct sockaddr_storage *)caller_id->buf);
    pthread_mutex_lock(&a->lock);
    a->calls++;
    int good = port == a->good_port;
    pthread_mutex_unlock(&a->lock);
    if (!good)
        WAIT_FOR(port_closed(a, port), 10000);
    a->accepted_port = port;
    return CF_ACCEPT;
}

static void *blocked_accept(void *arg) {
    struct arrivals *a = arg;
    blocker_enter(&a->blocker);
    a->result = accept_with(a->l, accept_after_leaving, (DWORD_PTR)a, &a->err);
    blocker_leave(&a->blocker);
    return NULL;
}

TEST(edge_cdata_clients_leaving_as_a_blocked_accept_takes_them_are_never_handed_out) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 2 * LEAVERS, &addr);
    static struct arrivals a;
    memset(&a, 0, sizeof a);
    a.l = l;
    pthread_mutex_init(&a.lock, NULL);
    pthread_create(&a.thread, NULL, blocked_accept, &a);
    wait_blocked(&a.blocker); /* the requests below are then handed to it as they come */
    const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    for (int i = 0; i < LEAVERS; i++) {
        int fd = raw_connect(&addr);
        struct sockaddr_storage me;
        socklen_t len = sizeof me;
        getsockname(fd, (struct sockaddr *)&me, &len);
        CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), sizeof request);
        if (i % 2) { /* half of them reset, half close */
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fd);
        pthread_mutex_lock(&a.lock);
        a.closed_ports[a.closed++] = port_of(&me);
        pthread_mutex_unlock(&a.lock);
    }
    int good = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(good, (struct sockaddr *)&any, sizeof any), 0);
    struct sockaddr_storage me;
    socklen_t len = sizeof me;
    getsockname(good, (struct sockaddr *)&me, &len);
    pthread_mutex_lock(&a.lock);
    a.good_port = port_of(&me);
    pthread_mutex_unlock(&a.lock);
    CHECK_EQ(connect(good, (struct sockaddr *)&addr, (socklen_t)addr_len(&addr)), 0);
    CHECK_EQ(send(good, request, sizeof request, MSG_NOSIGNAL), sizeof request);
    pthread_join(a.thread, NULL);
    CHECK(a.result != INVALID_SOCKET);
    CHECK_EQ(a.accepted_port, port_of(&me));
    CHECK(a.calls <= LEAVERS + 1);
    /* A leaver the accept took before its request came is read by the reactor, and may still
     * be on its way through the handshake: each is counted once its leaving is seen. */
    WAIT_FOR(stats_of(l).withdrawn == LEAVERS, 10000);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.rejected + st.malformed + st.queued, 0);
    close_socket(a.result);
    close(good);
    close_socket(l);
    pthread_mutex_destroy(&a.lock);
}

/* ---- one accept call, two presentations ---------------------------------------------------- */

/* First call: the client (raw_fd) leaves, then the function writes callee data and accepts;
 * later calls accept writing nothing. */
struct leave_first {
    int raw_fd;
    int server_port, client_port;
    int calls;
};

static int leave_first_then_accept(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e,
                                   LPWSABUF callee, GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)g;
    struct leave_first *x = (struct leave_first *)ctx;
    if (x->calls++ == 0) {
        struct linger lg = {1, 0};
        setsockopt(x->raw_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(x->raw_fd);
        WAIT_FOR(tcp_state(x->server_port, x->client_port) == -1, 10000);
        CHECK(callee->len >= 6);
        memcpy(callee->buf, "SECRET", 6);
        callee->len = 6;
    }
    return CF_ACCEPT;
}

/* Within one lpWSPAccept call, the presentation after a withdrawn one carries nothing of it:
 * not the callee data the function wrote for the first client (a function that accepts
 * without writing sends zeros), nor the first client's QoS (the second came without, so its
 * answer is not checked against a QoS). */
TEST(edge_presentation_after_a_withdrawn_one_in_the_same_call_carries_nothing_of_it) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_dword(l, SOL_WSP, WSP_MAX_CALLEE_DATA, 16);
    /* No "pending" notice for the second client while the function waits for the first's
     * reset (a busy machine can take a second): its first frame must be the answer. */
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    set_nonblocking(l, 1);
    static const uint8_t specific[3] = {7, 8, 9};
    wsp_hs_frame fa = {.type = WSP_HS_REQUEST, .has_qos = 1};
    fa.qos.sending.token_rate = 1234;
    fa.qos.receiving.peak_bandwidth = 5678;
    fa.qos.specific = specific;
    fa.qos.specific_len = sizeof specific;
    uint8_t req[256];
    size_t n = wsp_hs_encode(&fa, req, sizeof req);
    CHECK(n > 0);
    int first = raw_connect(&addr);
    CHECK_EQ(send(first, req, n, MSG_NOSIGNAL), (ssize_t)n);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    static const uint8_t plain_request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int second = raw_connect(&addr);
    CHECK_EQ(send(second, plain_request, 8, MSG_NOSIGNAL), 8);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    struct sockaddr_storage mine;
    socklen_t mlen = sizeof mine;
    CHECK_EQ(getsockname(first, (struct sockaddr *)&mine, &mlen), 0);
    struct leave_first x = {.raw_fd = first, .server_port = port_of(&addr),
                            .client_port = port_of(&mine)};
    int err = 0;
    SOCKET a = accept_with(l, leave_first_then_accept, (DWORD_PTR)&x, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(x.calls, 2);
    CHECK_EQ(stats_of(l).withdrawn, 1);
    /* The answer: a header, then the data part, 16 bytes of zeros. */
    uint8_t answer[8 + 2 + 16];
    int got = 0;
    while (got < (int)sizeof answer) {
        int k = raw_recv(second, answer + got, sizeof answer - got, 10000);
        CHECK(k > 0);
        got += k;
    }
    CHECK_EQ(answer[3], WSP_HS_ACCEPT);
    CHECK_EQ(answer[8], 0);
    CHECK_EQ(answer[9], 16);
    static const uint8_t zeros[16];
    CHECK_MEM(answer + 10, zeros, 16);
    /* The accepted socket has no QoS either: SIO_GET_QOS reports zeroed flowspecs, not the
     * first client's. */
    QOS q;
    memset(&q, 0x5a, sizeof q);
    DWORD ret = 0;
    CHECK_EQ(T.lpWSPIoctl(a, SIO_GET_QOS, NULL, 0, &q, sizeof q, &ret, NULL, NULL, NULL, &err),
             0);
    CHECK_EQ(ret, sizeof q);
    FLOWSPEC zero;
    memset(&zero, 0, sizeof zero);
    CHECK_MEM(&q.SendingFlowspec, &zero, sizeof zero);
    CHECK_MEM(&q.ReceivingFlowspec, &zero, sizeof zero);
    close_socket(a);
    close(second);
    close_socket(l);
}

/* A length with no address buffer: the accept (and a hold) leave both alone. */
TEST(edge_address_length_without_a_buffer_is_left_alone) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int fd = raw_connect(&addr);
    int len = 12345, err = 0;
    SOCKET a = T.lpWSPAccept(l, NULL, &len, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(len, 12345);
    close_socket(a);
    close(fd);
    close_socket(l);
}

/* A listen that looked its handle up before another thread closed the socket, and took the
 * socket's lock after the close, fails as a call on a closed socket and starts nothing: a
 * listener started then would keep the socket (the reactor's reference), and a port, for
 * good. */
TEST(edge_listen_overtaken_by_a_close_fails_and_listens_nowhere) {
    start();
    SOCKET l = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = 0;
    CHECK_EQ(T.lpWSPBind(l, (struct sockaddr *)&any, sizeof any, &err), 0);
    struct wsp_socket *so = wsp_socket_acquire(l, &err); /* the listen's own look-up */
    CHECK(so != NULL);
    close_socket(l);
    FAULT(listen, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(wsp_listen_acquired(so, 4), WSAENOTSOCK);
    CHECK_EQ(fault_calls(FAULT_listen), 0);
    fault_clear();
    CHECK(so->listener == NULL);
    wsp_socket_release(so);
}
