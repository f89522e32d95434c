/* Network events racing with close: many threads close sockets while events fire, and no
 * message may arrive for a socket after its lpWSPCloseSocket returned. Meant to run clean
 * under `make check-tsan`. */
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "test-netevents.h"

#define PAIRS 48
#define CLOSERS 4

static SOCKET servers[PAIRS], clients[PAIRS];
static atomic_int server_closed[PAIRS];
static atomic_int violations, posts, stop;
static HWND queue;

static BOOL race_post(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    for (int i = 0; i < PAIRS; i++) {
        if (servers[i] == (SOCKET)wParam) {
            if (atomic_load(&server_closed[i]))
                atomic_fetch_add(&violations, 1);
            break;
        }
    }
    atomic_fetch_add(&posts, 1);
    return WSPPostMessage(hWnd, Msg, wParam, lParam); /* and into a real queue */
}

static void *sender_main(void *arg) {
    (void)arg;
    char buf[256];
    memset(buf, 'd', sizeof buf);
    while (!atomic_load(&stop)) {
        for (int i = 0; i < PAIRS; i++) {
            DWORD sent;
            ne_send(clients[i], buf, sizeof buf, 0, &sent);
            if (i % 7 == 0)
                ne_send(clients[i], "!", 1, MSG_OOB, &sent);
        }
    }
    return NULL;
}

static void *receiver_main(void *arg) {
    (void)arg;
    char buf[4096];
    while (!atomic_load(&stop)) {
        for (int i = 0; i < PAIRS; i++) {
            ne_recv(servers[i], buf, sizeof buf, 0);
            ne_recv(servers[i], buf, 1, MSG_OOB);
        }
    }
    return NULL;
}

/* Re-registers and enumerates while the others run: replacing a registration races too. */
static void *reregister_main(void *arg) {
    (void)arg;
    int k = 0;
    while (!atomic_load(&stop)) {
        int i = k++ % PAIRS;
        int err = 0;
        T.lpWSPAsyncSelect(servers[i], queue, NE_MSG, FD_READ | FD_WRITE | FD_OOB | FD_CLOSE,
                           &err);
        WSANETWORKEVENTS ne;
        T.lpWSPEnumNetworkEvents(servers[i], NULL, &ne, &err);
        WSPFD_SET r;
        WSP_FD_ZERO(&r);
        WSP_FD_SET(servers[i], &r);
        struct timeval tv = {0, 1000};
        T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err);
    }
    return NULL;
}

static void *closer_main(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int i = id; i < PAIRS; i += CLOSERS) {
        sleep_ms(5 + (i % 5));
        int err = 0;
        if (i % 2 == 0) { /* the peer goes first: FD_CLOSE races the close */
            T.lpWSPCloseSocket(clients[i], &err);
            sleep_ms(i % 3);
        }
        T.lpWSPCloseSocket(servers[i], &err);
        atomic_store(&server_closed[i], 1);
    }
    return NULL;
}

TEST_WITH_TIMEOUT(netev_race_close_while_events_fire, 60) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = race_post;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    queue = WSPCreateMessageQueue();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, PAIRS, &addr);
    for (int i = 0; i < PAIRS; i++) {
        clients[i] = new_socket(WSP_CATALOG_TCP_IPV4);
        CHECK_EQ(connect_to(clients[i], &addr, NULL, NULL), 0);
        int err;
        servers[i] = ne_accept(l, NULL, &err);
        CHECK(servers[i] != INVALID_SOCKET);
        ne_fionbio(clients[i], 1);
    }
    for (int i = 0; i < PAIRS; i++) {
        int err = 0;
        CHECK_EQ(T.lpWSPAsyncSelect(servers[i], queue, NE_MSG,
                                    FD_READ | FD_WRITE | FD_OOB | FD_CLOSE, &err),
                 0);
    }
    pthread_t sender, receiver, rereg, closers[CLOSERS];
    CHECK_EQ(pthread_create(&sender, NULL, sender_main, NULL), 0);
    CHECK_EQ(pthread_create(&receiver, NULL, receiver_main, NULL), 0);
    CHECK_EQ(pthread_create(&rereg, NULL, reregister_main, NULL), 0);
    for (int i = 0; i < CLOSERS; i++)
        CHECK_EQ(pthread_create(&closers[i], NULL, closer_main, (void *)(intptr_t)i), 0);
    for (int i = 0; i < CLOSERS; i++)
        pthread_join(closers[i], NULL);
    sleep_ms(100); /* events still in flight would show up now */
    atomic_store(&stop, 1);
    pthread_join(sender, NULL);
    pthread_join(receiver, NULL);
    pthread_join(rereg, NULL);
    CHECK_EQ(atomic_load(&violations), 0);
    CHECK(atomic_load(&posts) > 0);
    for (int i = 0; i < PAIRS; i++) {
        int err = 0;
        T.lpWSPCloseSocket(clients[i], &err);
    }
    int err = 0;
    CHECK_EQ(T.lpWSPCloseSocket(l, &err), 0);
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    WSPDestroyMessageQueue(queue);
}

/* A socket's handle is in the table before lpWSPAccept has copied the listener's registration
 * onto it, so an application can register it (by handle) in between. Held there (the accept
 * puts the new descriptor in the listener's non-blocking mode: the request came in while the
 * listener was blocking), another thread registers it on an event of its own; the accept then
 * finds the socket watched already and starts no second watch, which would never be dropped
 * (the leak check at the end sees its set's descriptor and its memory). */
static SOCKET held_accept_listener, held_accept_result;
static int held_accept_err;

static void *held_accept_main(void *arg) {
    (void)arg;
    FAULT(ioctl, .nth = 1, .hold = 1, .this_thread = 1);
    held_accept_result = T.lpWSPAccept(held_accept_listener, NULL, NULL, NULL, 0, &held_accept_err);
    return NULL;
}

TEST(netev_race_socket_registered_by_handle_while_its_accept_makes_it_keeps_one_watch) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = held_accept_listener = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    /* The next socket's handle: a freed slot is taken again, one generation on. */
    SOCKET d1 = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_close(d1);
    SOCKET d2 = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_close(d2);
    SOCKET next = d2 + (d2 - d1);
    int raw = raw_connect(&addr);
    WSPFD_SET set = {.fd_count = 1, .fd_array = {l}};
    struct timeval tv = {10, 0}; /* only a hang fails */
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &set, NULL, NULL, &tv, &err), 1); /* taken in blocking mode */
    WSAEVENT listener_event = ne_event_select(l, FD_ACCEPT | FD_READ);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, held_accept_main, NULL), 0);
    WAIT_FOR(fault_holding() == 1, 10000); /* the new socket's FIONBIO */
    WSAEVENT own = WSACreateEvent();
    CHECK(own != WSA_INVALID_EVENT);
    CHECK_EQ(T.lpWSPEventSelect(next, own, FD_READ, &err), 0);
    fault_release();
    pthread_join(t, NULL);
    CHECK_EQ(fault_fired(FAULT_ioctl), 1);
    CHECK_EQ(held_accept_result, next);
    ne_close(held_accept_result);
    ne_close(l);
    close(raw);
    CHECK(WSACloseEvent(own));
    CHECK(WSACloseEvent(listener_event));
}
