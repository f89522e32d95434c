/* A WSAEventSelect server, written as for Windows: one event object per socket,
 * WSAWaitForMultipleEvents over them all, WSAEnumNetworkEvents to learn what happened on
 * each signalled one. It echoes each client's line and counts a client served at FD_CLOSE
 * (the clients: echo-client.c). */
#include <wsp/winsock2.h>

#include <stdio.h>

#include "echo-client.h"
#include "programs.h"

#define CLIENTS 4

static struct rendezvous event_port = RENDEZVOUS_INIT;
static pthread_barrier_t all_connected, all_echoed;

static SOCKET SocketArray[WSA_MAXIMUM_WAIT_EVENTS];
static WSAEVENT EventArray[WSA_MAXIMUM_WAIT_EVENTS];
static DWORD EventTotal = 0;

static int add_socket(SOCKET s, long events) {
    WSAEVENT e = WSACreateEvent();
    if (e == WSA_INVALID_EVENT) {
        printf("WSACreateEvent failed: %d\n", WSAGetLastError());
        return 0;
    }
    if (WSAEventSelect(s, e, events) == SOCKET_ERROR) {
        printf("WSAEventSelect failed: %d\n", WSAGetLastError());
        WSACloseEvent(e);
        return 0;
    }
    SocketArray[EventTotal] = s;
    EventArray[EventTotal] = e;
    EventTotal++;
    return 1;
}

static void remove_socket(DWORD i) {
    closesocket(SocketArray[i]);
    WSACloseEvent(EventArray[i]);
    EventTotal--;
    SocketArray[i] = SocketArray[EventTotal];
    EventArray[i] = EventArray[EventTotal];
}

/* Echoes what is there to read; 0 once the peer has closed or the socket failed. */
static int echo_available(SOCKET s) {
    char buf[256];
    for (;;) {
        int n = recv(s, buf, sizeof(buf), 0);
        if (n > 0) {
            if (send(s, buf, n, 0) != n)
                return 0;
            continue;
        }
        if (n == SOCKET_ERROR && WSAGetLastError() == WSAEWOULDBLOCK)
            return 1;
        return 0;
    }
}

static int event_server_main(void) {
    WSADATA wsaData;
    SOCKADDR_IN service;
    WSANETWORKEVENTS NetworkEvents;
    int served = 0, failed = 0;

    if (WSAStartup(MAKEWORD(2, 2), &wsaData) != 0)
        return 1;
    SOCKET Listen = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    service.sin_family = AF_INET;
    service.sin_addr.s_addr = inet_addr("127.0.0.1");
    service.sin_port = htons(0);
    if (Listen == INVALID_SOCKET || bind(Listen, (SOCKADDR *)&service, sizeof(service)) != 0 ||
        listen(Listen, 5) != 0 || !add_socket(Listen, FD_ACCEPT | FD_CLOSE)) {
        printf("listener failed: %d\n", WSAGetLastError());
        WSACleanup();
        return 1;
    }
    int len = sizeof(service);
    getsockname(Listen, (SOCKADDR *)&service, &len);
    announce_port(&event_port, ntohs(service.sin_port));

    while (served < CLIENTS && !failed) {
        DWORD Index = WSAWaitForMultipleEvents(EventTotal, EventArray, FALSE, WSA_INFINITE, FALSE);
        if (Index == WSA_WAIT_FAILED) {
            printf("WSAWaitForMultipleEvents failed: %d\n", WSAGetLastError());
            break;
        }
        for (DWORD i = Index - WSA_WAIT_EVENT_0; i < EventTotal; i++) {
            DWORD r = WSAWaitForMultipleEvents(1, &EventArray[i], TRUE, 0, FALSE);
            if (r == WSA_WAIT_FAILED || r == WSA_WAIT_TIMEOUT)
                continue;
            if (WSAEnumNetworkEvents(SocketArray[i], EventArray[i], &NetworkEvents) != 0) {
                printf("WSAEnumNetworkEvents failed: %d\n", WSAGetLastError());
                failed = 1;
                break;
            }
            if (NetworkEvents.lNetworkEvents & FD_ACCEPT) {
                if (NetworkEvents.iErrorCode[FD_ACCEPT_BIT] != 0) {
                    printf("FD_ACCEPT failed: %d\n", NetworkEvents.iErrorCode[FD_ACCEPT_BIT]);
                    failed = 1;
                    break;
                }
                SOCKET Accept = accept(SocketArray[i], NULL, NULL);
                if (Accept == INVALID_SOCKET) {
                    if (WSAGetLastError() == WSAEWOULDBLOCK)
                        continue;
                    printf("accept failed: %d\n", WSAGetLastError());
                    failed = 1;
                    break;
                }
                if (EventTotal == WSA_MAXIMUM_WAIT_EVENTS ||
                    !add_socket(Accept, FD_READ | FD_WRITE | FD_CLOSE)) {
                    closesocket(Accept);
                    failed = 1;
                    break;
                }
            }
            if (NetworkEvents.lNetworkEvents & FD_READ)
                echo_available(SocketArray[i]);
            if (NetworkEvents.lNetworkEvents & FD_CLOSE) {
                echo_available(SocketArray[i]);
                remove_socket(i--);
                served++;
            }
        }
    }
    while (EventTotal > 0)
        remove_socket(EventTotal - 1);
    WSACleanup();
    return served == CLIENTS && !failed ? 0 : 1;
}

static void *server_thread(void *arg) {
    (void)arg;
    return (void *)(long)event_server_main();
}

static void *client_thread(void *arg) {
    return (void *)(long)echo_client_main(await_port(&event_port), (int)(long)arg,
                                         &all_connected, &all_echoed);
}

TEST(winsock_eventselect_server) {
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

/* A handle no provider made fails each network-event call with WSAENOTSOCK, set as the
 * thread's last error by that call. */
TEST(winsock_network_event_calls_on_a_stranger_handle_are_wsaenotsock) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    WSAEVENT ev = WSACreateEvent();
    WSANETWORKEVENTS ne;
    WSASetLastError(0);
    CHECK_EQ(WSAEventSelect((SOCKET)4242, ev, FD_READ), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    WSASetLastError(0);
    CHECK_EQ(WSAEnumNetworkEvents((SOCKET)4242, ev, &ne), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    WSASetLastError(0);
    CHECK_EQ(WSAAsyncSelect((SOCKET)4242, (HWND)(uintptr_t)0x1234, 0x401, FD_READ),
             SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK(WSACloseEvent(ev));
    CHECK_EQ(WSACleanup(), 0);
}

/* Each network-event call that succeeds returns 0. */
TEST(winsock_network_event_calls_that_succeed_return_0) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);
    WSAEVENT ev = WSACreateEvent();
    WSANETWORKEVENTS ne;
    CHECK_EQ(WSAEventSelect(s, ev, FD_READ), 0);
    CHECK_EQ(WSAEnumNetworkEvents(s, ev, &ne), 0);
    CHECK_EQ(ne.lNetworkEvents, 0);
    HWND q = WSPCreateMessageQueue();
    CHECK_EQ(WSAAsyncSelect(s, q, 0x401, FD_READ), 0);
    CHECK_EQ(WSAAsyncSelect(s, q, 0x401, 0), 0);
    CHECK(WSPDestroyMessageQueue(q));
    CHECK(WSACloseEvent(ev));
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}
