/* A conditional-accept server and its client, written as for Windows. The server finds the
 * catalog entry that carries connect data (WSAEnumProtocols), listens with
 * SO_CONDITIONAL_ACCEPT and decides each request in a condition function from the caller's
 * data: "let me in" is accepted with callee data "welcome", "go away" is rejected, and
 * "ask later" is deferred once and accepted when presented again. The client connects with
 * WSAConnect, sending caller data and receiving callee data. */
#include <wsp/winsock2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "programs.h"

static struct rendezvous conditional_port = RENDEZVOUS_INIT;

/* The connect-data entry of the family, from the catalog; FALSE if there is none. */
static BOOL FindConnectDataProtocol(int af, WSAPROTOCOL_INFO *out) {
    DWORD len = 0;
    BOOL found = FALSE;
    if (WSAEnumProtocols(NULL, NULL, &len) != SOCKET_ERROR || WSAGetLastError() != WSAENOBUFS)
        return FALSE;
    WSAPROTOCOL_INFO *info = (WSAPROTOCOL_INFO *)malloc(len);
    int n = info ? WSAEnumProtocols(NULL, info, &len) : SOCKET_ERROR;
    for (int i = 0; i < n && !found; i++) {
        if ((info[i].dwServiceFlags1 & XP1_CONNECT_DATA) && info[i].iAddressFamily == af) {
            *out = info[i];
            found = TRUE;
        }
    }
    free(info);
    return found;
}

static BOOL CallerSays(LPWSABUF lpCallerData, const char *text) {
    return lpCallerData != NULL && lpCallerData->len == strlen(text) &&
           memcmp(lpCallerData->buf, text, strlen(text)) == 0;
}

struct Decisions {
    int deferred, rejected;
};

static int CALLBACK ConditionFunc(LPWSABUF lpCallerId, LPWSABUF lpCallerData, LPQOS lpSQOS,
                                  LPQOS lpGQOS, LPWSABUF lpCalleeId, LPWSABUF lpCalleeData,
                                  GROUP FAR *g, DWORD_PTR dwCallbackData) {
    struct Decisions *d = (struct Decisions *)dwCallbackData;
    (void)lpSQOS, (void)lpGQOS, (void)g;
    SOCKADDR_IN *caller = (SOCKADDR_IN *)lpCallerId->buf;
    SOCKADDR_IN *callee = (SOCKADDR_IN *)lpCalleeId->buf;
    if (caller->sin_family != AF_INET || callee->sin_family != AF_INET)
        return CF_REJECT;
    if (CallerSays(lpCallerData, "go away")) {
        d->rejected++;
        return CF_REJECT;
    }
    if (CallerSays(lpCallerData, "ask later") && d->deferred == 0) {
        d->deferred++;
        return CF_DEFER;
    }
    static const char welcome[] = "welcome";
    if (lpCalleeData == NULL || lpCalleeData->len < sizeof(welcome) - 1)
        return CF_REJECT;
    memcpy(lpCalleeData->buf, welcome, sizeof(welcome) - 1);
    lpCalleeData->len = sizeof(welcome) - 1;
    return CF_ACCEPT;
}

static int conditional_server_main(void) {
    WSADATA wsaData;
    WSAPROTOCOL_INFO proto;
    SOCKADDR_IN service, from;
    struct Decisions decisions = {0, 0};
    int accepted = 0, refused = 0, tryAgain = 0;
    BOOL on = TRUE;

    if (WSAStartup(MAKEWORD(2, 2), &wsaData) != 0)
        return 1;
    if (!FindConnectDataProtocol(AF_INET, &proto)) {
        printf("no connect-data protocol\n");
        WSACleanup();
        return 1;
    }
    SOCKET Listen = WSASocket(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &proto,
                              0, WSA_FLAG_OVERLAPPED);
    service.sin_family = AF_INET;
    service.sin_addr.s_addr = inet_addr("127.0.0.1");
    service.sin_port = htons(0);
    if (Listen == INVALID_SOCKET ||
        setsockopt(Listen, SOL_SOCKET, SO_CONDITIONAL_ACCEPT, (char *)&on, sizeof(on)) != 0 ||
        bind(Listen, (SOCKADDR *)&service, sizeof(service)) != 0 || listen(Listen, 5) != 0) {
        printf("listener failed: %d\n", WSAGetLastError());
        WSACleanup();
        return 1;
    }
    int len = sizeof(service);
    getsockname(Listen, (SOCKADDR *)&service, &len);
    announce_port(&conditional_port, ntohs(service.sin_port));

    /* Three clients: one accepted, one rejected, one deferred and then accepted. */
    while (accepted + refused < 3) {
        int fromlen = sizeof(from);
        SOCKET s = WSAAccept(Listen, (SOCKADDR *)&from, &fromlen, ConditionFunc,
                             (DWORD_PTR)&decisions);
        if (s == INVALID_SOCKET) {
            int err = WSAGetLastError();
            if (err == WSAECONNREFUSED)
                refused++;
            else if (err == WSATRY_AGAIN)
                tryAgain++;
            else {
                printf("WSAAccept failed: %d\n", err);
                break;
            }
            continue;
        }
        char buf[32];
        int n = recv(s, buf, sizeof(buf), 0);
        if (n > 0)
            send(s, buf, n, 0);
        closesocket(s);
        accepted++;
    }
    closesocket(Listen);
    WSACleanup();
    return accepted == 2 && refused == 1 && tryAgain == 1 && decisions.rejected == 1 &&
                   decisions.deferred == 1
               ? 0
               : 1;
}

/* Connects with the caller data; returns 0 or the WSA error, and the callee data. */
static int conditional_client(const char *port, const char *callerText, char *calleeText,
                              int calleeSize) {
    WSADATA wsaData;
    WSAPROTOCOL_INFO proto;
    SOCKADDR_IN server;
    WSABUF callerData, calleeData;
    int result = 0;

    if (WSAStartup(MAKEWORD(2, 2), &wsaData) != 0)
        return WSASYSNOTREADY;
    if (!FindConnectDataProtocol(AF_INET, &proto)) {
        WSACleanup();
        return WSAEPROTONOSUPPORT;
    }
    SOCKET s = WSASocket(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &proto, 0,
                         WSA_FLAG_OVERLAPPED);
    server.sin_family = AF_INET;
    server.sin_addr.s_addr = inet_addr("127.0.0.1");
    server.sin_port = htons((u_short)atoi(port));
    callerData.buf = (char *)callerText;
    callerData.len = (ULONG)strlen(callerText);
    calleeData.buf = calleeText;
    calleeData.len = (ULONG)calleeSize - 1;
    if (WSAConnect(s, (SOCKADDR *)&server, sizeof(server), &callerData, &calleeData, NULL,
                   NULL) == SOCKET_ERROR) {
        result = WSAGetLastError();
    } else {
        calleeText[calleeData.len] = '\0';
        char echo[32];
        if (send(s, "ping", 4, 0) != 4 || recv(s, echo, sizeof(echo), 0) != 4)
            result = WSAGetLastError();
    }
    closesocket(s);
    WSACleanup();
    return result;
}

static void *server_thread(void *arg) {
    (void)arg;
    return (void *)(long)conditional_server_main();
}

TEST(winsock_conditional_accept_server_and_wsaconnect_client) {
    pthread_t server = start_thread(server_thread, NULL);
    const char *port = await_port(&conditional_port);
    char callee[64];

    CHECK_EQ(conditional_client(port, "let me in", callee, sizeof callee), 0);
    CHECK(strcmp(callee, "welcome") == 0);

    strcpy(callee, "untouched");
    CHECK_EQ(conditional_client(port, "go away", callee, sizeof callee), WSAECONNREFUSED);

    CHECK_EQ(conditional_client(port, "ask later", callee, sizeof callee), 0);
    CHECK(strcmp(callee, "welcome") == 0);

    CHECK_EQ(join_thread(server), 0);
}
