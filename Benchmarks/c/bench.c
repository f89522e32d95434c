/* Connections per second: WSP against a hand-written raw-socket baseline, in one run.
 *
 * Every variant does the same work per connection: connect, one small request from the
 * client, one small answer from the server, close. The raw baseline does it with POSIX
 * sockets and a hand-written request/answer; WSP plain TCP does it with a condition function
 * and WSPSend/WSPRecv; WSP connect-data carries the request and the answer in the handshake
 * itself (caller data and callee data). Run pinned: `make bench` uses `taskset -c 0`. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wsp.h>

#define MSG 16

static WSPPROC_TABLE T;
static int connections = 5000;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "bench: %s failed\n", what);
    exit(1);
}

/* ---- raw POSIX sockets ------------------------------------------------------------------- */

static struct sockaddr_in raw_addr;

static void *raw_server(void *arg) {
    int l = *(int *)arg;
    char buf[MSG];
    for (int i = 0; i < connections; i++) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            die("accept");
        if (recv(c, buf, MSG, MSG_WAITALL) != MSG || send(c, buf, MSG, MSG_NOSIGNAL) != MSG)
            die("raw server i/o");
        close(c);
    }
    return NULL;
}

static double run_raw(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    raw_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof raw_addr;
    if (bind(l, (struct sockaddr *)&raw_addr, sizeof raw_addr) || listen(l, 128))
        die("raw listen");
    getsockname(l, (struct sockaddr *)&raw_addr, &len);
    pthread_t t;
    pthread_create(&t, NULL, raw_server, &l);
    char buf[MSG] = "0123456789abcdef";
    double t0 = now_s();
    for (int i = 0; i < connections; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&raw_addr, sizeof raw_addr))
            die("raw connect");
        if (send(c, buf, MSG, MSG_NOSIGNAL) != MSG || recv(c, buf, MSG, MSG_WAITALL) != MSG)
            die("raw client i/o");
        close(c);
    }
    pthread_join(t, NULL);
    double dt = now_s() - t0;
    close(l);
    return connections / dt;
}

/* ---- WSP ------------------------------------------------------------------------------------- */

static struct sockaddr_storage wsp_addr;

static int accept_all(LPWSABUF a, LPWSABUF caller_data, LPQOS c, LPQOS d, LPWSABUF e,
                      LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)c, (void)d, (void)e, (void)g, (void)ctx;
    if (caller_data && callee_data->len >= caller_data->len) { /* answer with the request */
        memcpy(callee_data->buf, caller_data->buf, caller_data->len);
        callee_data->len = caller_data->len;
    }
    return CF_ACCEPT;
}

static int wsp_io(SOCKET s, int sending) {
    char buf[MSG] = "0123456789abcdef";
    WSABUF b = {MSG, buf};
    DWORD n = 0, flags = 0;
    int err;
    uint32_t done = 0;
    while (done < MSG) {
        b = (WSABUF){MSG - done, buf + done};
        int rc = sending ? T.lpWSPSend(s, &b, 1, &n, 0, NULL, NULL, NULL, &err)
                         : T.lpWSPRecv(s, &b, 1, &n, &flags, NULL, NULL, NULL, &err);
        if (rc != 0 || n == 0)
            return -1;
        done += n;
    }
    return 0;
}

struct server_args {
    SOCKET listener;
    int cdata;
};

static void *wsp_server(void *arg) {
    SOCKET l = ((struct server_args *)arg)->listener;
    int cdata = ((struct server_args *)arg)->cdata;
    for (int i = 0; i < connections; i++) {
        int err;
        SOCKET c = T.lpWSPAccept(l, NULL, NULL, accept_all, 0, &err);
        if (c == INVALID_SOCKET)
            die("WSPAccept");
        if (!cdata && (wsp_io(c, 0) || wsp_io(c, 1)))
            die("wsp server i/o");
        T.lpWSPCloseSocket(c, &err);
    }
    return NULL;
}

static double run_wsp(DWORD catalog) {
    int cdata = catalog == WSP_CATALOG_CDATA_IPV4, err;
    WSAPROTOCOL_INFO info = {.dwCatalogEntryId = catalog};
    struct server_args args;
    SOCKET l = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (T.lpWSPBind(l, (struct sockaddr *)&sin, sizeof sin, &err) || T.lpWSPListen(l, 128, &err))
        die("WSP listen");
    int len = sizeof wsp_addr;
    T.lpWSPGetSockName(l, (struct sockaddr *)&wsp_addr, &len, &err);
    args = (struct server_args){l, cdata};
    pthread_t t;
    pthread_create(&t, NULL, wsp_server, &args);
    char req[MSG] = "0123456789abcdef", answer[MSG];
    double t0 = now_s();
    for (int i = 0; i < connections; i++) {
        SOCKET c = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
        WSABUF caller = {MSG, req}, callee = {MSG, answer};
        if (T.lpWSPConnect(c, (struct sockaddr *)&wsp_addr, sizeof sin, cdata ? &caller : NULL,
                           cdata ? &callee : NULL, NULL, NULL, &err))
            die("WSPConnect");
        if (cdata ? callee.len != MSG : (wsp_io(c, 1) || wsp_io(c, 0)))
            die("wsp client i/o");
        T.lpWSPCloseSocket(c, &err);
    }
    pthread_join(t, NULL);
    double dt = now_s() - t0;
    T.lpWSPCloseSocket(l, &err);
    return connections / dt;
}

int main(int argc, char **argv) {
    if (argc > 1)
        connections = atoi(argv[1]);
    WSPDATA data;
    WSPUPCALLTABLE up = {0};
    if (WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T))
        die("WSPStartup");
    int rounds = 3;
    if (argc > 2 && strcmp(argv[2], "cdata") == 0) { /* for profiling one variant */
        printf("%.0f connect-data connections/s\n", run_wsp(WSP_CATALOG_CDATA_IPV4));
        return 0;
    }
    if (argc > 2 && strcmp(argv[2], "plain") == 0) {
        printf("%.0f plain TCP connections/s\n", run_wsp(WSP_CATALOG_TCP_IPV4));
        return 0;
    }
    if (argc > 2 && strcmp(argv[2], "raw") == 0) {
        printf("%.0f raw connections/s\n", run_raw());
        return 0;
    }
    double raw = 0, plain = 0, cd = 0;
    /* Interleave the variants and keep each one's best round: the machine is shared. */
    for (int r = 0; r < rounds; r++) {
        double a = run_raw(), b = run_wsp(WSP_CATALOG_TCP_IPV4), c = run_wsp(WSP_CATALOG_CDATA_IPV4);
        raw = a > raw ? a : raw;
        plain = b > plain ? b : plain;
        cd = c > cd ? c : cd;
    }
    printf("connections per second (%d per round, best of %d, one request + one answer each)\n",
           connections, rounds);
    printf("  %-44s %9.0f   1.00x\n", "raw POSIX TCP, hand-written handshake", raw);
    printf("  %-44s %9.0f   %.2fx\n", "WSP plain TCP + condition function + send/recv", plain,
           plain / raw);
    printf("  %-44s %9.0f   %.2fx   (target >= 0.90x)\n", "WSP connect-data (data in the handshake)",
           cd, cd / raw);
    int err;
    T.lpWSPCleanup(&err);
    return 0;
}
