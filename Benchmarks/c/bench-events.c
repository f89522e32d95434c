/* Ping-pong round trips per second with the server driven by WSP network events, against a
 * raw poll() baseline, in one run.
 *
 * Every variant does the same work per round trip: the client sends a 16-byte message and
 * waits for it to come back; the server waits for readiness, reads what arrived and, once it
 * holds a whole message, sends it back. The client is the same code everywhere (a blocking
 * POSIX socket), so the ratios measure the server's notification path only:
 *   - raw: a plain non-blocking POSIX socket, poll() on it, recv()/send();
 *   - WSP: a socket accepted by lpWSPAccept and registered with lpWSPEventSelect(FD_READ |
 *     FD_CLOSE); WSAWaitForMultipleEvents, lpWSPEnumNetworkEvents, lpWSPRecv/lpWSPSend;
 *   - WSP with idle sockets: the same, while IDLE_PAIRS other connections (both ends WSP
 *     sockets, so 2 * IDLE_PAIRS registered sockets) sit registered for FD_READ | FD_CLOSE on
 *     IDLE_EVENTS other event objects. Delivering one event must not cost more because of them.
 * The idle sockets are made and closed inside each round, outside the timed part, so the
 * variants can be interleaved. Run pinned: `make bench` uses `taskset -c 0`. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wsp.h>

#define MSG 16
/* ulimit -n is 20,000 here: 5,000 pairs hold 10,000 descriptors and leave room for the rest. */
#define IDLE_PAIRS 5000
#define IDLE_EVENTS 16

static WSPPROC_TABLE T;
static int round_trips = 20000;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "bench-events: %s failed\n", what);
    exit(1);
}

/* What a server holds of the message it is about to send back. */
struct echo {
    char buf[MSG];
    uint32_t have;
};

/* ---- the client, the same for every variant ---------------------------------------------- */

/* Runs round_trips round trips over fd, closes it (the server sees the end) and returns round
 * trips per second. */
static double client_run(int fd) {
    char buf[MSG] = "0123456789abcdef";
    double t0 = now_s();
    for (int i = 0; i < round_trips; i++) {
        if (send(fd, buf, MSG, MSG_NOSIGNAL) != MSG || recv(fd, buf, MSG, MSG_WAITALL) != MSG)
            die("client i/o");
    }
    double dt = now_s() - t0;
    close(fd);
    return round_trips / dt;
}

static void nodelay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
        die("TCP_NODELAY");
}

/* A connected client descriptor for the listener at addr. */
static int client_connect(const struct sockaddr_in *addr) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (const struct sockaddr *)addr, sizeof *addr))
        die("client connect");
    nodelay(c);
    return c;
}

/* ---- raw POSIX sockets and poll() --------------------------------------------------------- */

static void *raw_server(void *arg) {
    int s = *(int *)arg;
    struct echo e = {.have = 0};
    struct pollfd p = {.fd = s, .events = POLLIN};
    for (;;) {
        if (poll(&p, 1, -1) != 1)
            die("poll");
        ssize_t n = recv(s, e.buf + e.have, MSG - e.have, 0);
        if (n == 0)
            break; /* the client closed */
        if (n < 0) {
            if (errno == EAGAIN)
                continue;
            die("raw recv");
        }
        e.have += (uint32_t)n;
        if (e.have == MSG) {
            if (send(s, e.buf, MSG, MSG_NOSIGNAL) != MSG)
                die("raw send");
            e.have = 0;
        }
    }
    close(s);
    return NULL;
}

static double run_raw(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (l < 0 || bind(l, (struct sockaddr *)&addr, sizeof addr) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&addr, &len))
        die("raw listen");
    int c = client_connect(&addr);
    int s = accept(l, NULL, NULL);
    if (s < 0)
        die("raw accept");
    close(l);
    nodelay(s);
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK); /* as a registered WSP socket is */
    pthread_t t;
    pthread_create(&t, NULL, raw_server, &s);
    double rate = client_run(c);
    pthread_join(t, NULL);
    return rate;
}

/* ---- WSP events ----------------------------------------------------------------------------- */

struct wsp_server_args {
    SOCKET s;
    WSAEVENT ev;
};

static void *wsp_server(void *arg) {
    struct wsp_server_args *a = arg;
    struct echo e = {.have = 0};
    int err;
    for (;;) {
        if (WSAWaitForMultipleEvents(1, &a->ev, FALSE, WSA_INFINITE, FALSE) != WSA_WAIT_EVENT_0)
            die("WSAWaitForMultipleEvents");
        WSANETWORKEVENTS ne;
        if (T.lpWSPEnumNetworkEvents(a->s, a->ev, &ne, &err))
            die("WSPEnumNetworkEvents");
        if (ne.lNetworkEvents & FD_READ) {
            /* One recv per FD_READ, as Winsock recommends: data left over re-raises it. */
            WSABUF b = {MSG - e.have, e.buf + e.have};
            DWORD n = 0, flags = 0;
            if (T.lpWSPRecv(a->s, &b, 1, &n, &flags, NULL, NULL, NULL, &err) == 0) {
                if (n == 0)
                    break;
                e.have += n;
            } else if (err != WSAEWOULDBLOCK) {
                die("WSPRecv");
            }
            if (e.have == MSG) {
                b = (WSABUF){MSG, e.buf};
                if (T.lpWSPSend(a->s, &b, 1, &n, 0, NULL, NULL, NULL, &err) || n != MSG)
                    die("WSPSend");
                e.have = 0;
            }
        }
        if (ne.lNetworkEvents & FD_CLOSE)
            break;
    }
    return NULL;
}

static SOCKET wsp_listener(struct sockaddr_in *addr) {
    int err, len = sizeof *addr;
    WSAPROTOCOL_INFO info = {.dwCatalogEntryId = WSP_CATALOG_TCP_IPV4};
    SOCKET l = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (l == INVALID_SOCKET || T.lpWSPBind(l, (struct sockaddr *)addr, sizeof *addr, &err) ||
        T.lpWSPListen(l, 128, &err) ||
        T.lpWSPGetSockName(l, (struct sockaddr *)addr, &len, &err))
        die("WSP listen");
    return l;
}

static double run_wsp(void) {
    struct sockaddr_in addr;
    int err, one = 1;
    SOCKET l = wsp_listener(&addr);
    int c = client_connect(&addr);
    struct wsp_server_args a = {.ev = WSACreateEvent()};
    a.s = T.lpWSPAccept(l, NULL, NULL, NULL, 0, &err);
    if (a.s == INVALID_SOCKET || a.ev == WSA_INVALID_EVENT)
        die("WSPAccept");
    T.lpWSPCloseSocket(l, &err);
    if (T.lpWSPSetSockOpt(a.s, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one, &err) ||
        T.lpWSPEventSelect(a.s, a.ev, FD_READ | FD_CLOSE, &err))
        die("WSP server set-up");
    pthread_t t;
    pthread_create(&t, NULL, wsp_server, &a);
    double rate = client_run(c);
    pthread_join(t, NULL);
    T.lpWSPCloseSocket(a.s, &err);
    WSACloseEvent(a.ev);
    return rate;
}

/* ---- idle registered sockets ---------------------------------------------------------------- */

static SOCKET idle_c[IDLE_PAIRS], idle_s[IDLE_PAIRS];
static WSAEVENT idle_ev[IDLE_EVENTS];

static void idle_open(void) {
    struct sockaddr_in addr;
    int err;
    SOCKET l = wsp_listener(&addr);
    WSAPROTOCOL_INFO info = {.dwCatalogEntryId = WSP_CATALOG_TCP_IPV4};
    for (int i = 0; i < IDLE_EVENTS; i++)
        if ((idle_ev[i] = WSACreateEvent()) == WSA_INVALID_EVENT)
            die("WSACreateEvent (idle)");
    for (int i = 0; i < IDLE_PAIRS; i++) {
        WSAEVENT ev = idle_ev[i % IDLE_EVENTS];
        idle_c[i] = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
        if (idle_c[i] == INVALID_SOCKET ||
            T.lpWSPConnect(idle_c[i], (struct sockaddr *)&addr, sizeof addr, NULL, NULL, NULL,
                           NULL, &err))
            die("WSPConnect (idle)");
        idle_s[i] = T.lpWSPAccept(l, NULL, NULL, NULL, 0, &err);
        if (idle_s[i] == INVALID_SOCKET ||
            T.lpWSPEventSelect(idle_c[i], ev, FD_READ | FD_CLOSE, &err) ||
            T.lpWSPEventSelect(idle_s[i], ev, FD_READ | FD_CLOSE, &err))
            die("WSPAccept/WSPEventSelect (idle)");
    }
    T.lpWSPCloseSocket(l, &err);
}

static void idle_close(void) {
    int err;
    for (int i = 0; i < IDLE_PAIRS; i++) {
        T.lpWSPCloseSocket(idle_c[i], &err);
        T.lpWSPCloseSocket(idle_s[i], &err);
    }
    for (int i = 0; i < IDLE_EVENTS; i++)
        WSACloseEvent(idle_ev[i]);
}

static double max(double a, double b) {
    return a > b ? a : b;
}

int main(int argc, char **argv) {
    if (argc > 1)
        round_trips = atoi(argv[1]);
    WSPDATA data;
    WSPUPCALLTABLE up = {0};
    if (WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T))
        die("WSPStartup");
    int rounds = 5;
    double raw = 0, wsp = 0, idle = 0;
    if (argc > 2) { /* one variant alone, for profiling: "raw" or "wsp" */
        printf("%.0f round trips/s\n", strcmp(argv[2], "raw") == 0 ? run_raw() : run_wsp());
        T.lpWSPCleanup(&(int){0});
        return 0;
    }
    /* Interleave the variants and keep each one's best round: the machine is shared. */
    for (int r = 0; r < rounds; r++) {
        raw = max(raw, run_raw());
        wsp = max(wsp, run_wsp());
        idle_open();
        idle = max(idle, run_wsp());
        idle_close();
    }
    printf("ping-pong round trips per second (%d per round, best of %d, %d bytes each way)\n",
           round_trips, rounds, MSG);
    printf("  %-50s %9.0f   1.00x\n", "raw poll() on POSIX sockets", raw);
    printf("  %-50s %9.0f   %.2fx   (target >= 0.85x)\n",
           "WSP EventSelect + WaitForMultipleEvents + Enum", wsp, wsp / raw);
    char label[80];
    snprintf(label, sizeof label, "the same, %d idle registered sockets", 2 * IDLE_PAIRS);
    printf("  %-50s %9.0f   %.2fx   (%.2fx of without; target >= 0.90x)\n", label, idle,
           idle / raw, idle / wsp);
    int err;
    T.lpWSPCleanup(&err);
    return 0;
}
