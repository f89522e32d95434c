/* The echo client the event-driven server tests share, written as for Windows: connect,
 * send a line, read the same line back, close. */
#include <wsp/winsock2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo-client.h"

int echo_client_main(const char *port, int id, pthread_barrier_t *connected,
                     pthread_barrier_t *echoed) {
    WSADATA wsaData;
    SOCKADDR_IN server;
    char line[64], echo[64];

    if (WSAStartup(MAKEWORD(2, 2), &wsaData) != 0)
        return 1;
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (s == INVALID_SOCKET) {
        printf("socket failed: %d\n", WSAGetLastError());
        WSACleanup();
        return 1;
    }
    server.sin_family = AF_INET;
    server.sin_addr.s_addr = inet_addr("127.0.0.1");
    server.sin_port = htons((u_short)atoi(port));
    if (connect(s, (SOCKADDR *)&server, sizeof(server)) == SOCKET_ERROR) {
        printf("connect failed: %d\n", WSAGetLastError());
        closesocket(s);
        WSACleanup();
        return 1;
    }
    if (connected)
        pthread_barrier_wait(connected);
    int n = snprintf(line, sizeof(line), "hello from client %d", id);
    int ok = send(s, line, n, 0) == n;
    int got = 0;
    while (ok && got < n) {
        int r = recv(s, echo + got, (int)sizeof(echo) - got, 0);
        if (r <= 0) {
            printf("recv: %d, error %d\n", r, WSAGetLastError());
            ok = 0;
        } else {
            got += r;
        }
    }
    ok = ok && got == n && memcmp(line, echo, (size_t)n) == 0;
    if (echoed)
        pthread_barrier_wait(echoed);
    closesocket(s);
    WSACleanup();
    return ok ? 0 : 1;
}
