/* A Winsock program as written for Windows, built on Linux with only its include changed:
 * a listener and a client in one thread (a TCP connect completes before the accept), one
 * line sent and echoed back.
 *
 *   cc examples/winsock-echo.c $(pkg-config --cflags --libs wsp)
 *   cc -Iinclude examples/winsock-echo.c build/libcwsp.a -lpthread
 */
#include <wsp/winsock2.h> /* on Windows: #include <winsock2.h> */

#include <stdio.h>
#include <string.h>

int main(void) {
    WSADATA wsaData;
    SOCKADDR_IN addr;
    int addrlen = sizeof(addr);
    char buf[64];
    const char *line = "hello, Winsock on Linux";

    int err = WSAStartup(MAKEWORD(2, 2), &wsaData);
    if (err != 0) {
        printf("WSAStartup failed: %d\n", err);
        return 1;
    }
    printf("%s\n", wsaData.szDescription);

    SOCKET listener = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    ZeroMemory(&addr, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = inet_addr("127.0.0.1");
    addr.sin_port = htons(0);
    if (listener == INVALID_SOCKET || bind(listener, (SOCKADDR *)&addr, sizeof(addr)) != 0 ||
        listen(listener, SOMAXCONN) != 0 ||
        getsockname(listener, (SOCKADDR *)&addr, &addrlen) != 0) {
        printf("listener failed: %d\n", WSAGetLastError());
        WSACleanup();
        return 1;
    }

    SOCKET client = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (client == INVALID_SOCKET || connect(client, (SOCKADDR *)&addr, sizeof(addr)) != 0) {
        printf("connect failed: %d\n", WSAGetLastError());
        WSACleanup();
        return 1;
    }
    SOCKET server = accept(listener, NULL, NULL);
    if (server == INVALID_SOCKET) {
        printf("accept failed: %d\n", WSAGetLastError());
        WSACleanup();
        return 1;
    }

    int got = SOCKET_ERROR;
    if (send(client, line, (int)strlen(line), 0) != SOCKET_ERROR) {
        int n = recv(server, buf, sizeof(buf), 0);
        if (n > 0 && send(server, buf, n, 0) == n)
            got = recv(client, buf, sizeof(buf) - 1, 0);
    }
    if (got <= 0) {
        printf("echo failed: %d\n", WSAGetLastError());
        WSACleanup();
        return 1;
    }
    buf[got] = '\0';
    printf("echoed: %s\n", buf);

    closesocket(client);
    closesocket(server);
    closesocket(listener);
    WSACleanup();
    return 0;
}
