/* The WSP demo: a connect-data server whose condition function accepts, rejects and defers,
 * and clients that see each answer. Run with `make demo`. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <wsp.h>

static WSPPROC_TABLE T;
static struct sockaddr_storage server_addr;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *show(const WSABUF *b, char *out, size_t cap) {
    if (!b)
        return "(none)";
    snprintf(out, cap, "\"%.*s\"", (int)b->len, b->buf);
    return out;
}

/* ---- the server's admission rule ---------------------------------------------------------- */

static int deferrals;

static int condition(LPWSABUF caller_id, LPWSABUF caller_data, LPQOS sqos, LPQOS gqos,
                     LPWSABUF callee_id, LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)sqos, (void)gqos, (void)callee_id, (void)g, (void)ctx;
    char from[64], data[64];
    DWORD len = sizeof from;
    int err;
    T.lpWSPAddressToString((struct sockaddr *)caller_id->buf, caller_id->len, NULL, from, &len,
                           &err);
    const char *reply = NULL;
    int decision;
    if (caller_data && caller_data->len == 9 && memcmp(caller_data->buf, "let-me-in", 9) == 0) {
        decision = CF_ACCEPT;
        reply = "welcome";
    } else if (caller_data && caller_data->len == 7 && memcmp(caller_data->buf, "patient", 7) == 0) {
        decision = deferrals++ < 2 ? CF_DEFER : CF_ACCEPT;
        reply = "thanks for waiting";
    } else {
        decision = CF_REJECT;
    }
    printf("  [server] request from %s with %s -> %s\n", from,
           show(caller_data, data, sizeof data),
           decision == CF_ACCEPT ? "ACCEPT" : decision == CF_DEFER ? "DEFER" : "REJECT");
    if (reply) {
        callee_data->len = (uint32_t)strlen(reply);
        memcpy(callee_data->buf, reply, callee_data->len);
    }
    return decision;
}

/* ---- clients ---------------------------------------------------------------------------------- */

struct client {
    const char *name;
    const char *data;
    DWORD limit_ms; /* 0: wait as long as the server keeps saying "pending" */
};

static void *client_main(void *arg) {
    const struct client *c = arg;
    WSAPROTOCOL_INFO info = {.dwCatalogEntryId = WSP_CATALOG_CDATA_IPV4};
    int err = 0;
    SOCKET s = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    if (c->limit_ms)
        T.lpWSPSetSockOpt(s, SOL_WSP, WSP_CONNECT_LIMIT, (const char *)&c->limit_ms,
                          sizeof c->limit_ms, &err);
    char answer[64];
    WSABUF caller = {(uint32_t)strlen(c->data), (char *)c->data};
    WSABUF callee = {sizeof answer, answer};
    if (T.lpWSPConnect(s, (struct sockaddr *)&server_addr, sizeof(struct sockaddr_in), &caller,
                       &callee, NULL, NULL, &err) == 0)
        printf("  [%s] connected; the server answered \"%.*s\"\n", c->name, (int)callee.len,
               answer);
    else
        printf("  [%s] connect failed: %s (%s)\n", c->name, WSPErrorName(err),
               WSPErrorString(err));
    T.lpWSPCloseSocket(s, &err);
    return NULL;
}

static pthread_t start_client(struct client *c) {
    pthread_t t;
    pthread_create(&t, NULL, client_main, c);
    return t;
}

/* Accepts until one socket is handed out or the queue is empty (non-blocking listener). */
static void serve(SOCKET l) {
    for (;;) {
        int err = 0;
        SOCKET a = T.lpWSPAccept(l, NULL, NULL, condition, 0, &err);
        if (a != INVALID_SOCKET) {
            T.lpWSPCloseSocket(a, &err);
            return;
        }
        if (err == WSAEWOULDBLOCK) {
            sleep_ms(20);
            continue;
        }
        printf("  [server] WSPAccept: %s\n", WSPErrorName(err));
        if (err == WSAECONNREFUSED)
            return;
        sleep_ms(150); /* deferred: think it over, then look again */
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    WSPDATA data;
    WSPUPCALLTABLE up = {0};
    if (WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T) != 0)
        return 1;
    printf("%s\n\n", data.szDescription);

    WSAPROTOCOL_INFO info = {.dwCatalogEntryId = WSP_CATALOG_CDATA_IPV4};
    int err = 0;
    SOCKET l = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    DWORD interval = 100, nonblocking = 1, returned = 0;
    T.lpWSPBind(l, (struct sockaddr *)&sin, sizeof sin, &err);
    T.lpWSPSetSockOpt(l, SOL_WSP, WSP_PENDING_INTERVAL, (const char *)&interval, sizeof interval,
                      &err);
    T.lpWSPListen(l, 8, &err);
    T.lpWSPIoctl(l, WSP_FIONBIO, &nonblocking, sizeof nonblocking, NULL, 0, &returned, NULL,
                 NULL, NULL, &err);
    int len = sizeof server_addr;
    T.lpWSPGetSockName(l, (struct sockaddr *)&server_addr, &len, &err);
    char where[64];
    DWORD wlen = sizeof where;
    T.lpWSPAddressToString((struct sockaddr *)&server_addr, sizeof sin, NULL, where, &wlen, &err);
    printf("A connect-data listener on %s admits callers by the data they send.\n", where);

    struct client alice = {"alice", "let-me-in", 0}, mallory = {"mallory", "guess", 0},
                  bob = {"bob", "patient", 0}, carol = {"carol", "let-me-in", 300};

    printf("\n1. Accept: the right token gets in, and the answer travels back.\n");
    pthread_t t = start_client(&alice);
    serve(l);
    pthread_join(t, NULL);

    printf("\n2. Reject: the client sees a refusal, never a connection that then closes.\n");
    t = start_client(&mallory);
    serve(l);
    pthread_join(t, NULL);

    printf("\n3. Defer: the request stays first in line and comes back to the server.\n");
    t = start_client(&bob);
    serve(l);
    pthread_join(t, NULL);

    printf("\n4. Withdraw: a client that gives up is taken out of the backlog.\n");
    t = start_client(&carol);
    pthread_join(t, NULL); /* the server is busy elsewhere for longer than carol waits */
    sleep_ms(100);
    SOCKET a = T.lpWSPAccept(l, NULL, NULL, condition, 0, &err);
    printf("  [server] WSPAccept: %s\n", a == INVALID_SOCKET ? WSPErrorName(err) : "a socket?!");

    WSP_LISTENER_STATS_DATA st;
    int stlen = sizeof st;
    T.lpWSPGetSockOpt(l, SOL_WSP, WSP_LISTENER_STATS, (char *)&st, &stlen, &err);
    /* Carol's request states her patience: when it passes the server ends the request itself
     * (expired), unless her close reaches it first (withdrawn). */
    printf("\nListener counters: accepted %llu, rejected %llu, deferred %llu, withdrawn %llu, "
           "expired %llu\n",
           (unsigned long long)st.accepted, (unsigned long long)st.rejected,
           (unsigned long long)st.deferred, (unsigned long long)st.withdrawn,
           (unsigned long long)st.expired);
    T.lpWSPCloseSocket(l, &err);
    T.lpWSPCleanup(&err);
    return 0;
}
