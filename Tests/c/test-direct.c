/* Blocking accepts that take connections off the kernel's queue themselves ("direct" in
 * listener.c): every connection is handed out exactly once, a request the reactor had to
 * finish still reaches a waiting accept, and other ways of waiting for arrivals (lpWSPSelect,
 * an event registration) still see them. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backlog.h"
#include "faults.h"
#include "handshake.h"
#include "internal.h"
#include "support.h"

struct acceptor {
    SOCKET l;
    int want;    /* connections to take, or until the listener closes */
    int taken;   /* written by the thread (atomically), read by the test while it runs */
    int entered; /* accept calls begun: taken + 1 while it waits in one */
    struct blocker blocker; /* the current call's */
    int last_err;
    SOCKET sockets[64];
    pthread_t thread;
};

static void *acceptor_main(void *arg) {
    struct acceptor *a = arg;
    while (a->taken < a->want) {
        int err = 0;
        blocker_enter(&a->blocker);
        __atomic_add_fetch(&a->entered, 1, __ATOMIC_SEQ_CST);
        SOCKET s = accept_with(a->l, NULL, 0, &err);
        blocker_leave(&a->blocker);
        if (s == INVALID_SOCKET) {
            a->last_err = err;
            break;
        }
        a->sockets[a->taken] = s;
        __atomic_add_fetch(&a->taken, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

/* Returns once a's thread waits in an accept after the one that took its last connection. */
static void wait_accepting_again(struct acceptor *a) {
    WAIT_FOR(__atomic_load_n(&a->entered, __ATOMIC_SEQ_CST) ==
                 __atomic_load_n(&a->taken, __ATOMIC_SEQ_CST) + 1,
             10000);
    wait_blocked(&a->blocker);
}

/* Two accepting threads, forty clients: each connection goes to exactly one of them. */
TEST(direct_two_accepting_threads_share_the_queue_without_loss) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, SOMAXCONN, &addr);
    static struct acceptor a[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (struct acceptor){.l = l, .want = 64};
        CHECK_EQ(pthread_create(&a[i].thread, NULL, acceptor_main, &a[i]), 0);
    }
    static struct async_connect c[40];
    for (int i = 0; i < 40; i++) {
        c[i] = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
        async_connect_start(&c[i]);
    }
    for (int i = 0; i < 40; i++)
        CHECK_EQ(async_connect_join(&c[i]), 0);
    WAIT_FOR(__atomic_load_n(&a[0].taken, __ATOMIC_SEQ_CST) +
                 __atomic_load_n(&a[1].taken, __ATOMIC_SEQ_CST) == 40,
             10000);
    for (int i = 0; i < 2; i++)
        wait_accepting_again(&a[i]); /* else one may call accept after the close: WSAENOTSOCK */
    close_socket(l); /* ends both threads' waits */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(pthread_join(a[i].thread, NULL), 0);
        CHECK_EQ(a[i].last_err, WSAEINTR);
    }
    CHECK_EQ(a[0].taken + a[1].taken, 40);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < a[i].taken; k++)
            close_socket(a[i].sockets[k]);
    for (int i = 0; i < 40; i++)
        close_socket(c[i].s);
}

/* A request that is not whole when its connection is taken is finished by the reactor; the
 * accept that waits (polling the kernel's queue) is woken for it. */
TEST(direct_waiting_accept_gets_a_request_the_reactor_finished) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static struct acceptor a;
    a = (struct acceptor){.l = l, .want = 1};
    CHECK_EQ(pthread_create(&a.thread, NULL, acceptor_main, &a), 0);
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_data = 1, .data = (const uint8_t *)"slow",
                      .data_len = 4};
    uint8_t req[32];
    size_t n = wsp_hs_encode(&f, req, sizeof req);
    CHECK(n > 4);
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, req, 4, MSG_NOSIGNAL), 4); /* the first part, then the rest */
    sleep_ms(20); /* not synchronization: either order of arrival must work */
    CHECK_EQ(send(fd, req + 4, n - 4, MSG_NOSIGNAL), (ssize_t)(n - 4));
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK_EQ(a.taken, 1);
    uint8_t answer[8];
    int got = raw_recv(fd, answer, sizeof answer, 5000);
    CHECK_EQ(got, 8);
    CHECK_EQ(answer[3], WSP_HS_ACCEPT);
    close_socket(a.sockets[0]);
    close(fd);
    close_socket(l);
}

/* After blocking accepts, lpWSPSelect on the same listener sees the next arrival. */
TEST(direct_select_after_blocking_accepts_sees_arrivals) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    static struct acceptor a;
    a = (struct acceptor){.l = l, .want = 1};
    CHECK_EQ(pthread_create(&a.thread, NULL, acceptor_main, &a), 0);
    int first = raw_connect(&addr);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK_EQ(a.taken, 1);
    int second = raw_connect(&addr);
    WSPFD_SET set;
    set.fd_count = 1;
    set.fd_array[0] = l;
    struct timeval tv = {10, 0}; /* only a hang fails */
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &set, NULL, NULL, &tv, &err), 1);
    SOCKET s = accept_with(l, NULL, 0, &err);
    CHECK(s != INVALID_SOCKET);
    close_socket(s);
    close_socket(a.sockets[0]);
    close(first);
    close(second);
    close_socket(l);
}

/* A non-blocking accept on connect data leaves the kernel's queue to the reactor, which reads
 * it anyway (an async server's accepts would each cost an accept4 that finds nothing): the
 * accept answers from the backlog alone, before and after a client arrives. */
TEST(direct_nonblocking_accept_on_connect_data_leaves_the_queue_to_the_reactor) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    FAULT(accept4, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    int err = 0;
    CHECK_EQ(accept_with(l, NULL, 0, &err), INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    char data[] = "hello";
    WSABUF caller = {5, data};
    static struct async_connect c;
    c = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                               .caller = &caller};
    async_connect_start(&c);
    WSPFD_SET set = {.fd_count = 1, .fd_array = {l}};
    struct timeval tv = {10, 0}; /* only a hang fails */
    CHECK_EQ(T.lpWSPSelect(0, &set, NULL, NULL, &tv, &err), 1);
    SOCKET s = accept_with(l, NULL, 0, &err);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&c), 0);
    CHECK_EQ(fault_calls(FAULT_accept4), 0);
    close_socket(s);
    close_socket(c.s);
    close_socket(l);
}

/* Two accepts in a row, each recorded as it enters (blocked[i]). */
struct serial_acceptor {
    SOCKET l;
    struct blocker blocked[2];
    SOCKET sockets[2];
    pthread_t thread;
};

static void *serial_acceptor_main(void *arg) {
    struct serial_acceptor *a = arg;
    for (int i = 0; i < 2; i++) {
        int err = 0;
        blocker_enter(&a->blocked[i]);
        a->sockets[i] = accept_with(a->l, NULL, 0, &err);
        blocker_leave(&a->blocked[i]);
        CHECK(a->sockets[i] != INVALID_SOCKET);
    }
    return NULL;
}

/* A server that serves one client at a time finds the kernel's queue empty each time it comes
 * back: after one look that found it so, the next accept waits at once rather than looking
 * again (listener.c, wsp_backlog_fill). */
TEST(direct_accept_that_found_the_queue_empty_waits_first_next_time) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    struct serial_acceptor a = {.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, serial_acceptor_main, &a), 0);
    wait_blocked(&a.blocked[0]);
    CHECK_EQ(wsp_listener_empty_looks(so), 1);
    int c1 = raw_connect(&addr);
    WAIT_FOR(__atomic_load_n(&a.blocked[0].returned, __ATOMIC_SEQ_CST), 10000);
    wait_blocked(&a.blocked[1]);
    CHECK_EQ(wsp_listener_empty_looks(so), 1); /* the second accept did not look */
    int c2 = raw_connect(&addr);
    pthread_join(a.thread, NULL);
    wsp_socket_release(so);
    close_socket(a.sockets[0]);
    close_socket(a.sockets[1]);
    close(c1);
    close(c2);
    close_socket(l);
}

/* One blocking accept, recorded as it enters. */
struct one_acceptor {
    SOCKET l;
    struct blocker blocked;
    SOCKET s;
    pthread_t thread;
};

static void *one_acceptor_main(void *arg) {
    struct one_acceptor *a = arg;
    int err = 0;
    blocker_enter(&a->blocked);
    a->s = accept_with(a->l, NULL, 0, &err);
    blocker_leave(&a->blocked);
    CHECK(a->s != INVALID_SOCKET);
    return NULL;
}

/* Two accepts wait, one (the leader) polling the kernel's queue, one asleep. When one
 * connection comes, the leader takes it itself and wakes the sleeper once, to watch the queue
 * in its place; taking a single connection wakes nobody else. */
TEST(direct_leader_taking_one_connection_wakes_only_its_successor) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    struct one_acceptor a = {.l = l}, b = {.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    CHECK_EQ(pthread_create(&b.thread, NULL, one_acceptor_main, &b), 0);
    wait_blocked(&b.blocked);
    uint32_t before = wsp_listener_wakes(so);
    int c1 = raw_connect(&addr);
    struct one_acceptor *first = NULL, *second = NULL;
    long long deadline = now_ms() + 10000;
    while (!first) {
        if (__atomic_load_n(&a.blocked.returned, __ATOMIC_SEQ_CST))
            first = &a, second = &b;
        else if (__atomic_load_n(&b.blocked.returned, __ATOMIC_SEQ_CST))
            first = &b, second = &a;
        CHECK(now_ms() < deadline);
    }
    pthread_join(first->thread, NULL);
    CHECK_EQ(first, &a); /* the leader took it */
    wait_blocked(&second->blocked);
    CHECK_EQ(wsp_listener_wakes(so) - before, 1);
    int c2 = raw_connect(&addr);
    pthread_join(second->thread, NULL);
    wsp_socket_release(so);
    close_socket(a.s);
    close_socket(b.s);
    close(c1);
    close(c2);
    close_socket(l);
}

/* Accepts in a row, each recorded as it enters (blocked[i]). */
#define SERIAL_MAX 9
struct serial_n {
    SOCKET l;
    int n;
    struct blocker blocked[SERIAL_MAX];
    SOCKET sockets[SERIAL_MAX];
    pthread_t thread;
};

static void *serial_n_main(void *arg) {
    struct serial_n *a = arg;
    for (int i = 0; i < a->n; i++) {
        int err = 0;
        blocker_enter(&a->blocked[i]);
        a->sockets[i] = accept_with(a->l, NULL, 0, &err);
        blocker_leave(&a->blocked[i]);
        CHECK(a->sockets[i] != INVALID_SOCKET);
    }
    return NULL;
}

/* An accept that waits first still looks at the kernel's queue one time in eight (a queue
 * that filled up meanwhile is noticed): with one client at a time, the first accept looks,
 * the next seven wait at once, the ninth looks again. */
TEST(direct_accept_expecting_an_empty_queue_still_looks_one_time_in_eight) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct serial_n a;
    a = (struct serial_n){.l = l, .n = 9};
    CHECK_EQ(pthread_create(&a.thread, NULL, serial_n_main, &a), 0);
    int clients[9];
    for (int i = 0; i < 9; i++) {
        wait_blocked(&a.blocked[i]);
        CHECK_EQ(wsp_listener_empty_looks(so), i < 8 ? 1 : 2);
        clients[i] = raw_connect(&addr);
        WAIT_FOR(__atomic_load_n(&a.blocked[i].returned, __ATOMIC_SEQ_CST), 10000);
    }
    pthread_join(a.thread, NULL);
    wsp_socket_release(so);
    for (int i = 0; i < 9; i++) {
        close_socket(a.sockets[i]);
        close(clients[i]);
    }
    close_socket(l);
}

/* A follower that starts waiting after earlier wake-ups sleeps like the first did: it does
 * not spin on a wake-up it has already seen. */
TEST(direct_follower_sleeps_after_earlier_wake_ups) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct one_acceptor a, b, c;
    a = (struct one_acceptor){.l = l};
    b = (struct one_acceptor){.l = l};
    c = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    CHECK_EQ(pthread_create(&b.thread, NULL, one_acceptor_main, &b), 0);
    wait_blocked(&b.blocked);
    int c1 = raw_connect(&addr);
    pthread_join(a.thread, NULL); /* the leader took it, and woke b to lead */
    wait_blocked(&b.blocked);
    CHECK(wsp_listener_wakes(so) != 0);
    CHECK_EQ(pthread_create(&c.thread, NULL, one_acceptor_main, &c), 0);
    wait_blocked(&c.blocked); /* asleep, a follower */
    int c2 = raw_connect(&addr), c3 = raw_connect(&addr);
    pthread_join(b.thread, NULL);
    pthread_join(c.thread, NULL);
    wsp_socket_release(so);
    close_socket(a.s);
    close_socket(b.s);
    close_socket(c.s);
    close(c1);
    close(c2);
    close(c3);
    close_socket(l);
}

/* While blocking accepts keep coming, the listening descriptor is theirs: one accept taking a
 * request off the backlog, with another still waiting, does not hand it back to the
 * reactor. */
TEST(direct_room_freed_while_accepts_wait_leaves_the_descriptor_to_them) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    CHECK_EQ(wsp_listener_reading(so), 1);
    static struct one_acceptor a, b;
    a = (struct one_acceptor){.l = l};
    b = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    CHECK_EQ(pthread_create(&b.thread, NULL, one_acceptor_main, &b), 0);
    wait_blocked(&b.blocked);
    CHECK_EQ(wsp_listener_reading(so), 0);
    int c1 = raw_connect(&addr);
    pthread_join(a.thread, NULL);
    wait_blocked(&b.blocked);
    CHECK_EQ(wsp_listener_reading(so), 0);
    int c2 = raw_connect(&addr);
    pthread_join(b.thread, NULL);
    wsp_socket_release(so);
    close_socket(a.s);
    close_socket(b.s);
    close(c1);
    close(c2);
    close_socket(l);
}

/* A blocking accept with a condition function, recorded as it enters. */
struct asking_acceptor {
    SOCKET l;
    int calls;
    struct blocker blocked;
    SOCKET s;
    pthread_t thread;
};

static int count_and_accept(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                            GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    (*(int *)ctx)++;
    return CF_ACCEPT;
}

static void *asking_acceptor_main(void *arg) {
    struct asking_acceptor *a = arg;
    int err = 0;
    blocker_enter(&a->blocked);
    a->s = accept_with(a->l, count_and_accept, (DWORD_PTR)&a->calls, &err);
    blocker_leave(&a->blocked);
    CHECK(a->s != INVALID_SOCKET);
    return NULL;
}

/* A waiting accept that takes a connection itself asks its condition function about it at
 * once: the kernel is asked about the client once, after the function, not before as well
 * (only this thread's own steps lie between the arrival and the question). On connect data
 * the same holds when the request came with the connection, which a test cannot ensure. */
TEST(direct_plain_waiting_accept_checks_the_client_it_took_once) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct asking_acceptor a;
    a = (struct asking_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, asking_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    int c = raw_connect(&addr);
    pthread_join(a.thread, NULL);
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(wsp_listener_client_looks(so), 1);
    wsp_socket_release(so);
    close_socket(a.s);
    close(c);
    close_socket(l);
}

/* Without a condition function there is no look after one: a waiting accept that takes a
 * connection itself asks the kernel about its client once, before handing it out. */
TEST(direct_plain_waiting_accept_without_a_condition_function_checks_the_client_once) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct one_acceptor a;
    a = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    int c = raw_connect(&addr);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK_EQ(wsp_listener_client_looks(so), 1);
    wsp_socket_release(so);
    close_socket(a.s);
    close(c);
    close_socket(l);
}

/* A waiting accept on connect data that takes a connection whose request has not come yet
 * does not wait for it: its first read returns at once (the descriptor is blocking, as the
 * accepted socket will be), the reactor finishes that request, and the accept goes on to the
 * next connection, whose request is whole. */
TEST(direct_accept_does_not_wait_for_a_silent_clients_request) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static struct one_acceptor a;
    a = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    int silent = raw_connect(&addr); /* first in the kernel's queue: the leader takes it */
    static struct async_connect c;
    c = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&c);
    WAIT_FOR(__atomic_load_n(&a.blocked.returned, __ATOMIC_SEQ_CST), 10000);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK_EQ(async_connect_join(&c), 0);
    struct sockaddr_storage mine = local_address(c.s), peer;
    int len = sizeof peer, err = 0;
    CHECK_EQ(T.lpWSPGetPeerName(a.s, (struct sockaddr *)&peer, &len, &err), 0);
    CHECK_EQ(port_of(&peer), port_of(&mine));
    close(silent);
    WAIT_FOR(stats_of(l).withdrawn == 1, 10000);
    close_socket(a.s);
    close_socket(c.s);
    close_socket(l);
}

/* A timer that comes due while a blocking accept waits (here the handshake deadline of a
 * silent client the leader took and left to the reactor) leaves the kernel's queue to the
 * accept: direct mode ends only once no accept has been inside for a while, and the reactor
 * does not start reading the listening descriptor under the waiting leader. */
TEST(direct_timer_while_an_accept_waits_leaves_the_queue_to_it) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_dword(l, SOL_WSP, WSP_HANDSHAKE_DEADLINE, 50);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct one_acceptor a;
    a = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    CHECK_EQ(wsp_listener_reading(so), 0);
    int silent = raw_connect(&addr); /* the leader takes it; its request never comes */
    WAIT_FOR(stats_of(l).timed_out == 1, 10000);
    CHECK_EQ(__atomic_load_n(&a.blocked.returned, __ATOMIC_SEQ_CST), 0);
    CHECK_EQ(wsp_listener_reading(so), 0); /* the accept still waits: the queue is its */
    static struct async_connect c;
    c = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&c);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK_EQ(async_connect_join(&c), 0);
    wsp_socket_release(so);
    close(silent);
    close_socket(a.s);
    close_socket(c.s);
    close_socket(l);
}

/* Once the last blocking accept leaves, the descriptor stays with the accepting threads for
 * DIRECT_LINGER_MS (20 ms) more: the listener's timer, which ends direct mode, is set for
 * then. The event thread is held meanwhile, so no timer pass ends it early. */
TEST(direct_linger_timer_is_due_twenty_ms_after_the_last_accept_left) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    static struct one_acceptor a;
    a = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    static struct event_thread_hold hold;
    event_thread_hold(&hold);
    uint64_t before = wsp_now_ms();
    int fd = raw_connect(&addr); /* the waiting accept takes it itself */
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    uint64_t after = wsp_now_ms(); /* the accept left between before and after */
    uint64_t due = wsp_reactor_timer_armed_ms();
    CHECK(due >= before + 20);
    CHECK(due <= after + 20);
    event_thread_let_go(&hold);
    close_socket(a.s);
    close(fd);
    close_socket(l);
}

/* No descriptor of the provider's reaches a program the application executes: the reactor's,
 * the listeners', the leaders' wake-up descriptors, the connections the accepts took (plain
 * and connect data) and a connecting socket's are all close-on-exec. */
TEST(direct_every_descriptor_of_the_provider_is_close_on_exec) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    static struct one_acceptor a;
    a = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked); /* the leader: its wake-up descriptor exists */
    int c = raw_connect(&addr);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    /* On connect data the accept takes its connection itself too (and reads its request). */
    struct sockaddr_storage addr2;
    SOCKET l2 = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr2);
    static struct one_acceptor b;
    b = (struct one_acceptor){.l = l2};
    CHECK_EQ(pthread_create(&b.thread, NULL, one_acceptor_main, &b), 0);
    wait_blocked(&b.blocked);
    static struct async_connect k;
    k = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr2};
    async_connect_start(&k);
    CHECK_EQ(pthread_join(b.thread, NULL), 0);
    CHECK_EQ(async_connect_join(&k), 0);
    int fds[64];
    int n = provider_fd_list(fds, 64);
    CHECK(n >= 8 && n <= 64); /* the reactor's, two listeners' and their wake-ups', a, b, k */
    for (int i = 0; i < n; i++)
        CHECK_EQ(fcntl(fds[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    close_socket(a.s);
    close_socket(b.s);
    close_socket(k.s);
    close(c);
    close_socket(l2);
    close_socket(l);
}

/* A waiting accept whose first read of a request gets a single byte keeps it: the rest is read
 * behind it and the request is whole and valid. (The client's kernel holds back the end of
 * TCP's handshake until the request goes out, TCP_DEFER_ACCEPT, so that the connection and
 * its request reach the server together; the provider's first read is cut to one byte.) */
TEST(direct_accept_whose_first_read_gets_one_byte_keeps_it) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static struct one_acceptor a;
    a = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int one = 1;
    CHECK_EQ(setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one), 0);
    FAULT(recv, .max_bytes = 1); /* the provider's first recv: the accept's first read */
    CHECK_EQ(connect(fd, (struct sockaddr *)&addr, sizeof(struct sockaddr_in)), 0);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WAIT_FOR(__atomic_load_n(&a.blocked.returned, __ATOMIC_SEQ_CST), 10000);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK_EQ(fault_fired(FAULT_recv), 1);
    fault_clear();
    uint8_t answer[WSP_HS_HEADER_SIZE];
    CHECK_EQ(raw_recv(fd, answer, sizeof answer, 5000), WSP_HS_HEADER_SIZE);
    CHECK_EQ(answer[3], WSP_HS_ACCEPT);
    close_socket(a.s);
    close(fd);
    close_socket(l);
}

/* A leader alone, with no accept asleep behind it, takes the connection that comes and
 * wakes no one (there is no successor to watch the queue in its place). */
TEST(direct_lone_leader_taking_a_connection_wakes_no_one) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct one_acceptor a;
    a = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    uint32_t before = wsp_listener_wakes(so);
    int c = raw_connect(&addr);
    pthread_join(a.thread, NULL);
    CHECK_EQ(wsp_listener_wakes(so), before);
    wsp_socket_release(so);
    close_socket(a.s);
    close(c);
    close_socket(l);
}

/* Accepts while ctx (an int*) is 0, after setting *(ctx + 1): its call is being presented. */
static int accept_once_let_go(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                              GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    int *flags = (int *)ctx;
    __atomic_store_n(&flags[1], 1, __ATOMIC_SEQ_CST);
    WAIT_FOR(__atomic_load_n(&flags[0], __ATOMIC_SEQ_CST), 10000);
    return CF_ACCEPT;
}

struct presenting_acceptor {
    SOCKET l;
    int flags[2]; /* [0]: let go; [1]: presenting */
    SOCKET s;
    pthread_t thread;
};

static void *presenting_acceptor_main(void *arg) {
    struct presenting_acceptor *p = arg;
    int err = 0;
    p->s = accept_with(p->l, accept_once_let_go, (DWORD_PTR)p->flags, &err);
    CHECK(p->s != INVALID_SOCKET);
    return NULL;
}

static void *failing_acceptor_main(void *arg) {
    struct one_acceptor *a = arg;
    int err = 0;
    blocker_enter(&a->blocked);
    a->s = accept_with(a->l, NULL, 0, &err);
    blocker_leave(&a->blocked);
    CHECK(a->s == INVALID_SOCKET);
    CHECK_EQ(err, WSAEINTR);
    return NULL;
}

/* An accept that notes when it has returned. */
struct done_acceptor {
    SOCKET l, s;
    int err;
    atomic_int done;
    struct blocker blocked;
    pthread_t thread;
};

static void *done_acceptor_main(void *arg) {
    struct done_acceptor *a = arg;
    blocker_enter(&a->blocked);
    a->s = accept_with(a->l, NULL, 0, &a->err);
    blocker_leave(&a->blocked);
    atomic_store(&a->done, 1);
    return NULL;
}

/* Queues one connection (returned) on l and starts x presenting it: x's accept calls its
 * condition function (from main), which waits until x->flags[0] lets it answer. */
static int present_one(struct presenting_acceptor *x, SOCKET l,
                       const struct sockaddr_storage *addr, void *(*main)(void *)) {
    int c = raw_connect(addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    *x = (struct presenting_acceptor){.l = l};
    CHECK_EQ(pthread_create(&x->thread, NULL, main, x), 0);
    WAIT_FOR(__atomic_load_n(&x->flags[1], __ATOMIC_SEQ_CST), 10000);
    return c;
}

static void start_done_acceptor(struct done_acceptor *y, SOCKET l) {
    memset(y, 0, sizeof *y);
    y->l = l;
    CHECK_EQ(pthread_create(&y->thread, NULL, done_acceptor_main, y), 0);
}

/* A select on the listener alone, for reading, that does not wait: how many it found. */
static int select_listener_now(SOCKET l) {
    WSPFD_SET set;
    set.fd_count = 1;
    set.fd_array[0] = l;
    struct timeval tv = {0, 0};
    int err = 0;
    return T.lpWSPSelect(0, &set, NULL, NULL, &tv, &err);
}

/* A backlog of one that is full, with a connection waiting behind it in the kernel's queue:
 * x is presenting c1 (until its flags[0] lets go), c2 is established in the kernel's queue
 * (me is its address), and y, an accept started after them, is about to become the leader. */
struct full_backlog {
    struct presenting_acceptor x;
    struct done_acceptor y;
    int c1, c2;
    struct sockaddr_storage me;
};

static void fill_backlog_of_one(struct full_backlog *f, SOCKET l,
                                const struct sockaddr_storage *addr) {
    memset(f, 0, sizeof *f);
    f->c1 = present_one(&f->x, l, addr, presenting_acceptor_main);
    f->c2 = raw_connect(addr); /* stays in the kernel's queue: the backlog is full */
    socklen_t me_len = sizeof f->me;
    CHECK_EQ(getsockname(f->c2, (struct sockaddr *)&f->me, &me_len), 0);
    WAIT_FOR(tcp_state(port_of(addr), port_of(&f->me)) == TCP_ESTABLISHED, 10000);
    start_done_acceptor(&f->y, l);
}


/* A leader waiting while the backlog is full (its one request being presented elsewhere) does
 * not watch the kernel's queue, which it could take nothing from: a connection waiting there
 * does not wake it (it would spin), it sleeps until room frees, and then takes that
 * connection (once, nothing woke it then: it slept until some other change, for ever). */
TEST(direct_leader_of_a_full_backlog_sleeps_until_room_frees_then_takes_the_kernels_connection) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct full_backlog f;
    fill_backlog_of_one(&f, l, &addr);
    struct presenting_acceptor *const xp = &f.x;
    struct done_acceptor *const yp = &f.y;
    int c1 = f.c1, c2 = f.c2;
    struct sockaddr_storage me = f.me;
    wait_blocked(&yp->blocked);
    uint64_t looks = wsp_listener_empty_looks(so);
    wait_blocked(&yp->blocked); /* still the same sleep */
    CHECK_EQ(wsp_listener_empty_looks(so), looks);
    CHECK(!atomic_load(&yp->done));
    __atomic_store_n(&xp->flags[0], 1, __ATOMIC_SEQ_CST); /* x's accept hands c1 out */
    pthread_join(xp->thread, NULL);
    WAIT_FOR(atomic_load(&yp->done), 10000);
    pthread_join(yp->thread, NULL);
    CHECK(yp->s != INVALID_SOCKET);
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    CHECK_EQ(T.lpWSPGetPeerName(yp->s, (struct sockaddr *)&peer, &plen, &err), 0);
    CHECK_EQ(port_of(&peer), port_of(&me)); /* c2, from the kernel's queue */
    wsp_socket_release(so);
    close_socket(xp->s);
    close_socket(yp->s);
    close(c1);
    close(c2);
    close_socket(l);
}

/* A waiting accept whose first read of a request gets a single byte that no request opens
 * with ends it at once, malformed: the byte is looked at as read, not only once more come
 * (none will here, and the handshake deadline is far). */
TEST(direct_accept_whose_first_read_gets_one_bad_byte_ends_it_at_once) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_dword(l, SOL_WSP, WSP_HANDSHAKE_DEADLINE, 600000); /* longer than the test runs */
    static struct one_acceptor a;
    a = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, failing_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int one = 1;
    CHECK_EQ(setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one), 0);
    CHECK_EQ(connect(fd, (struct sockaddr *)&addr, sizeof(struct sockaddr_in)), 0);
    CHECK_EQ(send(fd, "X", 1, MSG_NOSIGNAL), 1); /* with the connection, as one read */
    WAIT_FOR(stats_of(l).malformed == 1, 10000);
    close_socket(l); /* the accept, still waiting, ends */
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    close(fd);
}


/* A leader waiting while the backlog is full, when lpWSPSelect then hands the kernel's queue
 * back to the reactor: room freeing in the backlog has the reactor read the queue again and
 * wakes no accept (the reactor takes the next connection and wakes the accept for it; a wake
 * now would find nothing and make the accept take the queue back from the select). */
TEST(direct_room_freed_after_a_select_took_the_queue_back_wakes_only_for_the_arrival) {
    start();
    struct sockaddr_storage addr, addr2;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, &addr);
    SOCKET l2 = listener(WSP_CATALOG_TCP_IPV4, 1, &addr2); /* only to move the reactor */
    set_nonblocking(l2, 1);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct full_backlog f;
    fill_backlog_of_one(&f, l, &addr);
    struct presenting_acceptor *const xp = &f.x;
    struct done_acceptor *const yp = &f.y;
    int c1 = f.c1, c2 = f.c2;
    struct sockaddr_storage me = f.me;
    wait_blocked(&yp->blocked); /* the leader, not watching the queue: no room */
    CHECK_EQ(select_listener_now(l), 0); /* c1 is being presented */
    CHECK(!wsp_listener_reading(so)); /* still full: nobody reads the queue yet */
    FAULT(epoll_wait, .hold = 1); /* the reactor's next wait */
    int c3 = raw_connect(&addr2); /* wakes the reactor into the hold */
    WAIT_FOR(fault_holding() == 1, 10000);
    uint32_t wakes = wsp_listener_wakes(so);
    __atomic_store_n(&xp->flags[0], 1, __ATOMIC_SEQ_CST); /* x's accept hands c1 out */
    pthread_join(xp->thread, NULL);
    CHECK(wsp_listener_reading(so)); /* the reactor's again, for the select */
    CHECK_EQ(wsp_listener_wakes(so), wakes);
    CHECK(!atomic_load(&yp->done));
    fault_clear();
    fault_release(); /* the reactor takes c2, and wakes y for it */
    WAIT_FOR(atomic_load(&yp->done), 10000);
    pthread_join(yp->thread, NULL);
    CHECK_EQ(wsp_listener_wakes(so) - wakes, 1);
    CHECK(yp->s != INVALID_SOCKET);
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    CHECK_EQ(T.lpWSPGetPeerName(yp->s, (struct sockaddr *)&peer, &plen, &err), 0);
    CHECK_EQ(port_of(&peer), port_of(&me));
    wsp_socket_release(so);
    close_socket(xp->s);
    close_socket(yp->s);
    close(c1);
    close(c2);
    close(c3);
    close_socket(l2);
    close_socket(l);
}

/* A pause for want of descriptors that ends while the reactor, not a leader, owns the kernel's
 * queue (lpWSPSelect took it back from the waiting accept) and the backlog is full: the
 * resume wakes no accept, which would find nothing to take; the next arrival wakes it. */
TEST(direct_resume_after_a_select_took_the_queue_back_wakes_no_accept) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 2, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct presenting_acceptor x;
    int c1 = present_one(&x, l, &addr, presenting_acceptor_main);
    FAULT(accept4, .err = EMFILE); /* the reactor's take of c2: the listener pauses */
    FAULT(epoll_wait, .hold = 1);  /* and the reactor stops after it */
    int c2 = raw_connect(&addr);
    WAIT_FOR(fault_holding() == 1, 10000);
    CHECK_EQ(fault_fired(FAULT_accept4), 1);
    CHECK_EQ(T.lpWSPListen(l, 1, &err), 0); /* full now: c1 is the one */
    static struct done_acceptor y;
    start_done_acceptor(&y, l);
    wait_blocked(&y.blocked); /* the leader, paused */
    /* Room while out of descriptors does not wake it either: it could take nothing. */
    uint32_t paused_wakes = wsp_listener_wakes(so);
    CHECK_EQ(T.lpWSPListen(l, 2, &err), 0);
    CHECK_EQ(wsp_listener_wakes(so), paused_wakes);
    CHECK_EQ(T.lpWSPListen(l, 1, &err), 0);
    CHECK_EQ(select_listener_now(l), 0); /* c1 is being presented */
    uint32_t wakes = wsp_listener_wakes(so);
    /* The reactor goes on, and stops again after a pass that ran the resume. */
    long long deadline = now_ms() + 10000;
    while (wsp_listener_resumes(so) == 0) {
        CHECK(now_ms() < deadline);
        fault_clear();
        fault_release();
        WAIT_FOR(fault_holding() == 0, 10000);
        FAULT(epoll_wait, .hold = 1);
        WAIT_FOR(fault_holding() == 1, 10000);
    }
    CHECK_EQ(wsp_listener_resumes(so), 1);
    CHECK(!wsp_listener_reading(so)); /* still full */
    CHECK_EQ(wsp_listener_wakes(so), wakes);
    fault_clear();
    fault_release();
    __atomic_store_n(&x.flags[0], 1, __ATOMIC_SEQ_CST); /* x's accept hands c1 out */
    pthread_join(x.thread, NULL);
    WAIT_FOR(atomic_load(&y.done), 10000); /* the reactor takes c2 and wakes y for it */
    pthread_join(y.thread, NULL);
    CHECK(y.s != INVALID_SOCKET);
    CHECK_EQ(wsp_listener_wakes(so) - wakes, 1);
    wsp_socket_release(so);
    close_socket(x.s);
    close_socket(y.s);
    close(c1);
    close(c2);
    close_socket(l);
}

/* Three accepts wait: the leader and two asleep. The leader takes the one connection and wakes
 * one sleeper to watch the queue in its place: that one looks at the queue once (empty) and
 * leads; the other sleeps on, with no look of its own (a wake-up of two would cost a look
 * for nothing). */
TEST(direct_leader_taking_one_connection_wakes_one_of_two_sleepers) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct one_acceptor a, b, c;
    a = (struct one_acceptor){.l = l};
    b = (struct one_acceptor){.l = l};
    c = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, one_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    CHECK_EQ(pthread_create(&b.thread, NULL, one_acceptor_main, &b), 0);
    wait_blocked(&b.blocked);
    CHECK_EQ(pthread_create(&c.thread, NULL, one_acceptor_main, &c), 0);
    wait_blocked(&c.blocked);
    uint64_t looks = wsp_listener_empty_looks(so);
    int c1 = raw_connect(&addr);
    pthread_join(a.thread, NULL); /* the leader takes it */
    CHECK(a.s != INVALID_SOCKET);
    WAIT_FOR(wsp_listener_empty_looks(so) - looks >= 1, 10000); /* the successor's look */
    wait_blocked(&b.blocked);
    wait_blocked(&c.blocked);
    CHECK_EQ(wsp_listener_empty_looks(so) - looks, 1);
    int c2 = raw_connect(&addr), c3 = raw_connect(&addr);
    pthread_join(b.thread, NULL);
    pthread_join(c.thread, NULL);
    wsp_socket_release(so);
    close_socket(a.s);
    close_socket(b.s);
    close_socket(c.s);
    close(c1);
    close(c2);
    close(c3);
    close_socket(l);
}

/* A leader waiting while the backlog is full: a second listen that leaves no room (the same
 * backlog) does not wake it, as it could take nothing. */
TEST(direct_listen_again_without_room_leaves_the_paused_leader_asleep) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct presenting_acceptor x;
    int c1 = present_one(&x, l, &addr, presenting_acceptor_main);
    static struct done_acceptor y;
    start_done_acceptor(&y, l);
    wait_blocked(&y.blocked); /* the leader, paused: no room */
    uint32_t wakes = wsp_listener_wakes(so);
    CHECK_EQ(T.lpWSPListen(l, 1, &err), 0);
    CHECK_EQ(wsp_listener_wakes(so), wakes);
    CHECK_EQ(T.lpWSPListen(l, 2, &err), 0); /* room now: the leader watches the queue */
    CHECK_EQ(wsp_listener_wakes(so) - wakes, 1);
    int c2 = raw_connect(&addr);
    WAIT_FOR(atomic_load(&y.done), 10000);
    pthread_join(y.thread, NULL);
    CHECK(y.s != INVALID_SOCKET);
    __atomic_store_n(&x.flags[0], 1, __ATOMIC_SEQ_CST);
    pthread_join(x.thread, NULL);
    wsp_socket_release(so);
    close_socket(x.s);
    close_socket(y.s);
    close(c1);
    close(c2);
    close_socket(l);
}

/* Defers while ctx (an int*) is 0, after setting *(ctx + 1): its call is being presented. */
static int defer_once_let_go(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                             GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    int *flags = (int *)ctx;
    __atomic_store_n(&flags[1], 1, __ATOMIC_SEQ_CST);
    WAIT_FOR(__atomic_load_n(&flags[0], __ATOMIC_SEQ_CST), 10000);
    return CF_DEFER;
}

static void *deferring_acceptor_main(void *arg) {
    struct presenting_acceptor *p = arg;
    int err = 0;
    p->s = accept_with(p->l, defer_once_let_go, (DWORD_PTR)p->flags, &err);
    CHECK(p->s == INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN);
    return NULL;
}

/* Without an eventfd for a leader (none to be had: the descriptors ran out), a blocking
 * accept does not take the listening descriptor from the reactor: it waits as a follower,
 * the reactor keeps reading, and a request put back in line (deferred by another accept's
 * condition function) still wakes it. */
TEST(direct_without_an_eventfd_a_blocking_accept_waits_for_the_reactor_and_is_woken) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct presenting_acceptor x;
    int c1 = present_one(&x, l, &addr, deferring_acceptor_main);
    FAULT(eventfd, .nth = 1, .times = -1, .err = EMFILE);
    static struct done_acceptor y;
    start_done_acceptor(&y, l);
    wait_blocked(&y.blocked);
    CHECK(fault_fired(FAULT_eventfd) >= 1);
    CHECK_EQ(wsp_listener_reading(so), 1); /* still the reactor's */
    __atomic_store_n(&x.flags[0], 1, __ATOMIC_SEQ_CST); /* x defers c1: back in line */
    pthread_join(x.thread, NULL);
    WAIT_FOR(atomic_load(&y.done), 10000);
    pthread_join(y.thread, NULL);
    fault_clear();
    CHECK(y.s != INVALID_SOCKET);
    CHECK_EQ(stats_of(l).deferred, 1);
    wsp_socket_release(so);
    close_socket(y.s);
    close(c1);
    close_socket(l);
}

static int defer_it(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f, GROUP *g,
                    DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_DEFER;
}

static void *deferring_waiter_main(void *arg) {
    struct one_acceptor *a = arg;
    int err = 0;
    blocker_enter(&a->blocked);
    a->s = accept_with(a->l, defer_it, 0, &err);
    blocker_leave(&a->blocked);
    CHECK(a->s == INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN);
    return NULL;
}

/* Direct mode that ends (its linger ran out, no accept inside) while the backlog is full
 * leaves the listening descriptor unread: the reactor could take nothing from the kernel's
 * queue, and reading it would only wake the reactor to find that out. */
TEST(direct_ending_with_a_full_backlog_leaves_the_descriptor_unread) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct one_acceptor a;
    a = (struct one_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, deferring_waiter_main, &a), 0);
    wait_blocked(&a.blocked); /* the leader: the descriptor is the accepting threads' */
    CHECK_EQ(wsp_listener_reading(so), 0);
    int c1 = raw_connect(&addr);
    pthread_join(a.thread, NULL); /* it took c1 and deferred it: the backlog of one is full */
    CHECK_EQ(stats_of(l).queued, 1);
    /* The linger's timer was armed before the accept returned (no other timer is set): the
     * timerfd is disarmed once the pass that ended the linger ran, however late we look. */
    WAIT_FOR(wsp_reactor_timer_armed_ms() == 0, 10000); /* the linger's end */
    CHECK_EQ(wsp_listener_reading(so), 0);
    CHECK_EQ(stats_of(l).queued, 1);
    wsp_socket_release(so);
    close(c1);
    close_socket(l);
}

/* lpWSPSelect takes the kernel's queue back from a leader that waits while the backlog is
 * full (its one request being presented elsewhere): with no room the reactor does not read the
 * queue either, whatever is there (here nothing, which no event would correct). */
TEST(direct_select_taking_the_queue_back_without_room_leaves_it_unread) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static struct presenting_acceptor x;
    int c1 = present_one(&x, l, &addr, presenting_acceptor_main);
    static struct done_acceptor y;
    start_done_acceptor(&y, l);
    wait_blocked(&y.blocked); /* the leader, paused: no room */
    CHECK(!wsp_listener_reading(so));
    CHECK_EQ(select_listener_now(l), 0); /* c1 is being presented */
    CHECK(!wsp_listener_reading(so));
    __atomic_store_n(&x.flags[0], 1, __ATOMIC_SEQ_CST); /* x's accept hands c1 out */
    pthread_join(x.thread, NULL);
    CHECK(wsp_listener_reading(so)); /* room: the reactor's, for the select */
    close_socket(l); /* ends y's wait */
    pthread_join(y.thread, NULL);
    CHECK(y.s == INVALID_SOCKET);
    CHECK_EQ(y.err, WSAEINTR);
    wsp_socket_release(so);
    close_socket(x.s);
    close(c1);
}
