/* A select() server with several clients, written as for Windows: one thread, a listener
 * and its clients in one fd_set, echoing each client's line back until the client closes
 * (the clients: echo-client.c).
 * The clients are connected all at once (barriers hold each after its connect and again
 * before its close) so that the server's sets really hold all of them together. */
#include <wsp/winsock2.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "echo-client.h"
#include "faults.h"
#include "programs.h"

#define CLIENTS 5

static struct rendezvous select_port = RENDEZVOUS_INIT;
static pthread_barrier_t all_connected, all_echoed;

static int select_server_main(void) {
    WSADATA wsaData;
    SOCKET ListenSocket, Clients[CLIENTS];
    int nClients = 0, served = 0, i;
    SOCKADDR_IN service;
    char buf[256];

    if (WSAStartup(MAKEWORD(2, 2), &wsaData) != 0)
        return 1;
    ListenSocket = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (ListenSocket == INVALID_SOCKET) {
        printf("socket failed: %d\n", WSAGetLastError());
        WSACleanup();
        return 1;
    }
    service.sin_family = AF_INET;
    service.sin_addr.s_addr = inet_addr("127.0.0.1");
    service.sin_port = htons(0);
    if (bind(ListenSocket, (SOCKADDR *)&service, sizeof(service)) == SOCKET_ERROR ||
        listen(ListenSocket, SOMAXCONN) == SOCKET_ERROR) {
        printf("bind or listen failed: %d\n", WSAGetLastError());
        closesocket(ListenSocket);
        WSACleanup();
        return 1;
    }
    int len = sizeof(service);
    getsockname(ListenSocket, (SOCKADDR *)&service, &len);
    announce_port(&select_port, ntohs(service.sin_port));

    int most_at_once = 0;
    while (served < CLIENTS) {
        fd_set readfds;
        FD_ZERO(&readfds);
        FD_SET(ListenSocket, &readfds);
        for (i = 0; i < nClients; i++)
            FD_SET(Clients[i], &readfds);
        int ready = select(0, &readfds, NULL, NULL, NULL);
        if (ready == SOCKET_ERROR) {
            printf("select failed: %d\n", WSAGetLastError());
            break;
        }
        if (FD_ISSET(ListenSocket, &readfds)) {
            SOCKET c = accept(ListenSocket, NULL, NULL);
            if (c == INVALID_SOCKET) {
                printf("accept failed: %d\n", WSAGetLastError());
                break;
            }
            Clients[nClients++] = c;
            if (nClients > most_at_once)
                most_at_once = nClients;
        }
        for (i = 0; i < nClients; i++) {
            if (!FD_ISSET(Clients[i], &readfds))
                continue;
            int n = recv(Clients[i], buf, sizeof(buf), 0);
            if (n > 0) {
                send(Clients[i], buf, n, 0);
            } else {
                if (n == SOCKET_ERROR)
                    printf("recv failed: %d\n", WSAGetLastError());
                closesocket(Clients[i]);
                Clients[i--] = Clients[--nClients];
                served++;
            }
        }
    }
    for (i = 0; i < nClients; i++)
        closesocket(Clients[i]);
    closesocket(ListenSocket);
    WSACleanup();
    return served == CLIENTS && most_at_once == CLIENTS ? 0 : 1;
}

static void *server_thread(void *arg) {
    (void)arg;
    return (void *)(long)select_server_main();
}

static void *client_thread(void *arg) {
    return (void *)(long)echo_client_main(await_port(&select_port), (int)(long)arg,
                                         &all_connected, &all_echoed);
}

TEST(winsock_select_server_with_several_clients) {
    CHECK(pthread_barrier_init(&all_connected, NULL, CLIENTS) == 0);
    CHECK(pthread_barrier_init(&all_echoed, NULL, CLIENTS) == 0);
    pthread_t server = start_thread(server_thread, NULL);
    pthread_t clients[CLIENTS];
    for (long i = 0; i < CLIENTS; i++)
        clients[i] = start_thread(client_thread, (void *)i);
    for (int i = 0; i < CLIENTS; i++)
        CHECK_EQ(join_thread(clients[i]), 0);
    CHECK_EQ(join_thread(server), 0);
}

/* One fd_set passed in two places (read and except, write and except, or read and write)
 * stays one set: the provider answers with the union, written back once into the program's
 * set. */
TEST(winsock_select_one_set_in_two_places) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    SOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SOCKET l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(bind(l, (SOCKADDR *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 1), 0);
    int len = sizeof a;
    CHECK_EQ(getsockname(l, (SOCKADDR *)&a, &len), 0);
    SOCKET c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(connect(c, (SOCKADDR *)&a, sizeof a), 0);
    fd_set x;
    FD_ZERO(&x);
    FD_SET(c, &x);
    FD_SET(l, &x);
    CHECK_EQ(select(0, &x, NULL, &x, NULL), 1); /* the listener, readable once its request is in */
    CHECK_EQ(x.fd_count, 1);
    CHECK(x.fd_array[0] == l);
    FD_ZERO(&x);
    FD_SET(l, &x);
    FD_SET(c, &x);
    struct timeval ten = {10, 0};
    CHECK_EQ(select(0, NULL, &x, &x, &ten), 1); /* the connected client, writable */
    CHECK_EQ(x.fd_count, 1);
    CHECK(x.fd_array[0] == c);
    /* Read and write the same set, except a set of its own after them: that one is still
     * the provider's to answer (nothing exceptional: it comes back empty). */
    fd_set e;
    FD_ZERO(&x);
    FD_SET(c, &x);
    FD_ZERO(&e);
    FD_SET(c, &e);
    CHECK_EQ(select(0, &x, &x, &e, &ten), 1); /* writable, nothing to read */
    CHECK_EQ(x.fd_count, 1);
    CHECK(x.fd_array[0] == c);
    CHECK_EQ(e.fd_count, 0);
    /* Write and except the same set, read another placed after it in memory: the write set
     * is the one answered twice, whichever lies lower. */
    fd_set two[2];
    fd_set *wx = &two[0], *rd = &two[1];
    FD_ZERO(rd);
    FD_SET(c, rd);
    FD_ZERO(wx);
    FD_SET(c, wx);
    CHECK_EQ(select(0, rd, wx, wx, &ten), 1); /* writable, nothing to read */
    CHECK_EQ(rd->fd_count, 0);
    CHECK_EQ(wx->fd_count, 1);
    CHECK(wx->fd_array[0] == c);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* select copies the program's sets into memory of its own: when there is none, the call fails
 * with WSAENOBUFS and the next one works. */
TEST(winsock_select_without_memory_for_its_sets_is_wsaenobufs) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    fd_set x;
    FD_ZERO(&x);
    FD_SET(s, &x);
    struct timeval zero = {0, 0};
    FAULT(malloc, .nth = 1, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(select(0, &x, NULL, NULL, &zero), SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    CHECK_EQ(WSAGetLastError(), WSAENOBUFS);
    CHECK_EQ(x.fd_count, 1); /* left as it was */
    CHECK_EQ(select(0, &x, NULL, NULL, &zero), 0);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* A set holding an entry that is not a socket fails the call in the provider: SOCKET_ERROR,
 * WSAENOTSOCK as the thread's last error (as Windows documents it for select), and the
 * program's set left as it was. */
TEST(winsock_select_of_a_set_with_what_is_not_a_socket_is_wsaenotsock) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    fd_set x;
    FD_ZERO(&x);
    FD_SET(s, &x); /* the first handle names the provider */
    FD_SET((SOCKET)4242, &x);
    struct timeval zero = {0, 0};
    WSASetLastError(0);
    CHECK_EQ(select(0, NULL, &x, NULL, &zero), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(x.fd_count, 2);
    CHECK(x.fd_array[0] == s && x.fd_array[1] == (SOCKET)4242);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* Each set gets room for all its handles in select's own copy: a read set of twelve
 * listeners, each with a connection waiting, beside a write set of one connected client,
 * answers for each set alone and for every handle. */
TEST(winsock_select_sets_of_many_handles_stay_apart) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    enum { N = 12 };
    SOCKET ls[N], cs[N];
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    /* First in the read set, a socket with nothing to read: the ready ones move up by one. */
    SOCKET idle = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(idle != INVALID_SOCKET);
    FD_SET(idle, &r);
    for (int i = 0; i < N; i++) {
        SOCKADDR_IN a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ls[i] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(ls[i] != INVALID_SOCKET);
        CHECK_EQ(bind(ls[i], (SOCKADDR *)&a, sizeof a), 0);
        CHECK_EQ(listen(ls[i], 1), 0);
        int len = sizeof a;
        CHECK_EQ(getsockname(ls[i], (SOCKADDR *)&a, &len), 0);
        cs[i] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK_EQ(connect(cs[i], (SOCKADDR *)&a, sizeof a), 0);
        FD_SET(ls[i], &r);
    }
    FD_SET(cs[0], &w);
    struct timeval ten = {10, 0};
    /* Every listener is readable once its request is in: wait for each, then ask for all. */
    for (int i = 0; i < N; i++) {
        fd_set one;
        FD_ZERO(&one);
        FD_SET(ls[i], &one);
        CHECK_EQ(select(0, &one, NULL, NULL, &ten), 1);
    }
    CHECK_EQ(select(0, &r, &w, NULL, &ten), N + 1);
    CHECK_EQ(r.fd_count, N);
    for (int i = 0; i < N; i++)
        CHECK(r.fd_array[i] == ls[i]);
    CHECK_EQ(w.fd_count, 1);
    CHECK(w.fd_array[0] == cs[0]);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(closesocket(cs[i]), 0);
        CHECK_EQ(closesocket(ls[i]), 0);
    }
    CHECK_EQ(closesocket(idle), 0);
    CHECK_EQ(WSACleanup(), 0);
}
