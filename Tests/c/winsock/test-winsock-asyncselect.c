/* A WSAAsyncSelect server, written as for Windows with one difference that cannot be
 * avoided: the window is a WSP message queue (WSPCreateMessageQueue) and the message loop
 * reads it with WSPGetMessage, calling the window procedure itself where Windows'
 * DispatchMessage would. The window procedure is as on Windows: accept on FD_ACCEPT, echo on
 * FD_READ, close on FD_CLOSE (the clients: echo-client.c). */
#include <wsp/winsock2.h>

#include <stdio.h>

#include "echo-client.h"
#include "programs.h"

#define CLIENTS 4
#define WM_SOCKET (WM_USER + 1)

static struct rendezvous async_port = RENDEZVOUS_INIT;
static pthread_barrier_t all_connected, all_echoed;
static int served = 0, failed = 0;

static void WindowProc(HWND hwnd, UINT uMsg, WPARAM wParam, LPARAM lParam) {
    SOCKET s = (SOCKET)wParam;
    char buf[256];
    if (uMsg != WM_SOCKET)
        return;
    if (WSAGETSELECTERROR(lParam)) {
        printf("event %d failed: %d\n", WSAGETSELECTEVENT(lParam), WSAGETSELECTERROR(lParam));
        closesocket(s);
        failed = 1;
        return;
    }
    switch (WSAGETSELECTEVENT(lParam)) {
    case FD_ACCEPT: {
        SOCKET Accept = accept(s, NULL, NULL);
        if (Accept == INVALID_SOCKET) {
            if (WSAGetLastError() != WSAEWOULDBLOCK) {
                printf("accept failed: %d\n", WSAGetLastError());
                failed = 1;
            }
            break;
        }
        if (WSAAsyncSelect(Accept, hwnd, WM_SOCKET, FD_READ | FD_WRITE | FD_CLOSE) != 0) {
            printf("WSAAsyncSelect failed: %d\n", WSAGetLastError());
            closesocket(Accept);
            failed = 1;
        }
        break;
    }
    case FD_READ: {
        int n = recv(s, buf, sizeof(buf), 0);
        if (n > 0 && send(s, buf, n, 0) != n) {
            printf("send failed: %d\n", WSAGetLastError());
            failed = 1;
        }
        break;
    }
    case FD_WRITE:
        break;
    case FD_CLOSE:
        closesocket(s);
        served++;
        break;
    }
}

static int async_server_main(void) {
    WSADATA wsaData;
    SOCKADDR_IN service;
    WSPMSG msg;

    if (WSAStartup(MAKEWORD(2, 2), &wsaData) != 0)
        return 1;
    HWND hwnd = WSPCreateMessageQueue();
    SOCKET Listen = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    service.sin_family = AF_INET;
    service.sin_addr.s_addr = inet_addr("127.0.0.1");
    service.sin_port = htons(0);
    if (hwnd == NULL || Listen == INVALID_SOCKET ||
        bind(Listen, (SOCKADDR *)&service, sizeof(service)) != 0 || listen(Listen, 5) != 0 ||
        WSAAsyncSelect(Listen, hwnd, WM_SOCKET, FD_ACCEPT | FD_CLOSE) != 0) {
        printf("listener failed: %d\n", WSAGetLastError());
        WSACleanup();
        return 1;
    }
    int len = sizeof(service);
    getsockname(Listen, (SOCKADDR *)&service, &len);
    announce_port(&async_port, ntohs(service.sin_port));

    while (served < CLIENTS && !failed && WSPGetMessage(hwnd, &msg, WSA_INFINITE) > 0)
        WindowProc(msg.hwnd, msg.message, msg.wParam, msg.lParam);

    closesocket(Listen);
    WSPDestroyMessageQueue(hwnd);
    WSACleanup();
    return served == CLIENTS && !failed ? 0 : 1;
}

static void *server_thread(void *arg) {
    (void)arg;
    return (void *)(long)async_server_main();
}

static void *client_thread(void *arg) {
    return (void *)(long)echo_client_main(await_port(&async_port), (int)(long)arg,
                                         &all_connected, &all_echoed);
}

TEST(winsock_asyncselect_server_on_a_message_queue) {
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
