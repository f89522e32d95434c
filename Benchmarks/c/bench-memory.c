/* Memory and descriptors per connection: what WSP adds to the kernel's own cost, against a
 * raw epoll server holding the same sockets.
 *
 * Measured in this process (the server side; the clients' ends live in a child process so
 * that both fit the descriptor limit): heap in use (mallinfo2) and open descriptors before
 * and after
 *   - N idle connected sockets: a raw server that accepts them and adds each to an epoll set;
 *     WSP accepted sockets without an event registration; the same with lpWSPEventSelect
 *     (FD_READ | FD_CLOSE) on one event object;
 *   - N connect-data requests waiting in a listener's backlog;
 *   - M event objects.
 * The kernel's socket buffers are the same for both and are not counted (they are not part
 * of this process's heap); nor is the kernel's epoll entry (about 160 bytes per watched
 * descriptor, for both).
 *
 *   bench-memory [N]       default 9000 (the descriptor limit is raised to its hard limit) */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wsp.h>

static WSPPROC_TABLE T;
static int n_sockets = 9000;

static void die(const char *what) {
    fprintf(stderr, "bench-memory: %s failed (%s)\n", what, strerror(errno));
    exit(1);
}

/* The heap in use (the allocator's own count: resident memory would hide what earlier
 * phases freed and this one reused). */
static long heap_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
}

static int open_fds(void) {
    int n = 0;
    for (int fd = 0; fd < 65536; fd++) /* cheap enough for a benchmark */
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

/* A child process that opens n connections to addr (sending `request` on each when given)
 * and keeps them open until its stdin (a pipe) closes. */
static pid_t clients(const struct sockaddr_in *addr, int n, const void *request, size_t len,
                     int *hold) {
    int p[2];
    if (pipe(p))
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid > 0) {
        close(p[0]);
        *hold = p[1];
        return pid;
    }
    close(p[1]);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (const struct sockaddr *)addr, sizeof *addr))
            die("client connect");
        if (request && send(fd, request, len, MSG_NOSIGNAL) != (ssize_t)len)
            die("client send");
    }
    char b;
    while (read(p[0], &b, 1) > 0) {
    }
    _exit(0);
}

static void release_clients(pid_t pid, int hold) {
    close(hold);
    waitpid(pid, NULL, 0);
}

struct cost {
    double bytes, fds;
};

static void print(const char *what, struct cost c, const struct cost *base) {
    printf("  %-50s %8.0f bytes %5.2f fds", what, c.bytes, c.fds);
    if (base)
        printf("   (%+.0f bytes, %+.2f fds over raw epoll)", c.bytes - base->bytes,
               c.fds - base->fds + 0.0);
    printf("\n");
}

/* ---- raw epoll server ---------------------------------------------------------------------- */

static struct cost raw_idle(void) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    if (bind(l, (struct sockaddr *)&sin, sizeof sin) || listen(l, 4096))
        die("raw listen");
    getsockname(l, (struct sockaddr *)&sin, &len);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int *fds = malloc(sizeof(int) * (size_t)n_sockets); /* the server's own bookkeeping */
    long m0 = heap_bytes();
    int f0 = open_fds(), hold;
    pid_t kids = clients(&sin, n_sockets, NULL, 0, &hold);
    for (int i = 0; i < n_sockets; i++) {
        fds[i] = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fds[i] < 0)
            die("raw accept");
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fds[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    struct cost c = {(double)(heap_bytes() - m0) / n_sockets,
                     (double)(open_fds() - f0) / n_sockets};
    for (int i = 0; i < n_sockets; i++)
        close(fds[i]);
    free(fds);
    release_clients(kids, hold);
    close(ep);
    close(l);
    return c;
}

/* ---- WSP ------------------------------------------------------------------------------------ */

static SOCKET wsp_listener(DWORD catalog, struct sockaddr_in *sin) {
    int err, len = sizeof *sin;
    WSAPROTOCOL_INFO info = {.dwCatalogEntryId = catalog};
    SOCKET l = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    *sin = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (l == INVALID_SOCKET || T.lpWSPBind(l, (struct sockaddr *)sin, sizeof *sin, &err) ||
        T.lpWSPListen(l, SOMAXCONN, &err))
        die("WSP listen");
    T.lpWSPGetSockName(l, (struct sockaddr *)sin, &len, &err);
    return l;
}

static struct cost wsp_idle(int registered) {
    struct sockaddr_in sin;
    SOCKET l = wsp_listener(WSP_CATALOG_TCP_IPV4, &sin);
    WSAEVENT ev = registered ? WSACreateEvent() : NULL;
    SOCKET *s = malloc(sizeof(SOCKET) * (size_t)n_sockets); /* the application's handles */
    long m0 = heap_bytes();
    int f0 = open_fds(), hold, err;
    pid_t kids = clients(&sin, n_sockets, NULL, 0, &hold);
    for (int i = 0; i < n_sockets; i++) {
        s[i] = T.lpWSPAccept(l, NULL, NULL, NULL, 0, &err);
        if (s[i] == INVALID_SOCKET)
            die("WSP accept");
        if (registered && T.lpWSPEventSelect(s[i], ev, FD_READ | FD_CLOSE, &err))
            die("WSPEventSelect");
    }
    struct cost c = {(double)(heap_bytes() - m0) / n_sockets,
                     (double)(open_fds() - f0) / n_sockets};
    for (int i = 0; i < n_sockets; i++)
        T.lpWSPCloseSocket(s[i], &err);
    free(s);
    release_clients(kids, hold);
    T.lpWSPCloseSocket(l, &err);
    if (ev)
        WSACloseEvent(ev);
    return c;
}

static struct cost wsp_queued(void) {
    struct sockaddr_in sin;
    SOCKET l = wsp_listener(WSP_CATALOG_CDATA_IPV4, &sin);
    int n = n_sockets < WSP_MAX_BACKLOG ? n_sockets : WSP_MAX_BACKLOG, hold, err;
    /* A version 1 REQUEST with 16 bytes of caller data (docs/PROTOCOL.md). */
    uint8_t req[8 + 2 + 16] = {0x57, 0x53, 1, 1, 1, 0, 0, 18, 0, 16};
    memset(req + 10, 'x', 16);
    long m0 = heap_bytes();
    int f0 = open_fds();
    pid_t kids = clients(&sin, n, req, sizeof req, &hold);
    WSP_LISTENER_STATS_DATA st;
    for (int tries = 0; tries < 20000; tries++) {
        int len = sizeof st;
        T.lpWSPGetSockOpt(l, SOL_WSP, WSP_LISTENER_STATS, (char *)&st, &len, &err);
        if ((int)st.queued == n)
            break;
        usleep(1000); /* a benchmark waiting for its load to arrive, not a test */
    }
    if ((int)st.queued != n)
        die("queueing the requests");
    struct cost c = {(double)(heap_bytes() - m0) / n, (double)(open_fds() - f0) / n};
    T.lpWSPCloseSocket(l, &err);
    release_clients(kids, hold);
    return c;
}

static struct cost events(void) {
    int m = n_sockets / 4; /* two descriptors each */
    WSAEVENT *e = malloc(sizeof(WSAEVENT) * (size_t)m);
    long m0 = heap_bytes();
    int f0 = open_fds();
    for (int i = 0; i < m; i++)
        if ((e[i] = WSACreateEvent()) == WSA_INVALID_EVENT)
            die("WSACreateEvent");
    struct cost c = {(double)(heap_bytes() - m0) / m, (double)(open_fds() - f0) / m};
    for (int i = 0; i < m; i++)
        WSACloseEvent(e[i]);
    free(e);
    return c;
}

int main(int argc, char **argv) {
    if (argc > 1)
        n_sockets = atoi(argv[1]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max; /* as high as this machine allows */
    setrlimit(RLIMIT_NOFILE, &rl);
    if (n_sockets < 100 || (rlim_t)n_sockets + 200 > rl.rlim_cur) {
        fprintf(stderr, "bench-memory: N must be 100..%ld (the descriptor limit less 200)\n",
                (long)rl.rlim_cur - 200);
        return 64;
    }
    WSPDATA data;
    WSPUPCALLTABLE up = {0};
    if (WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T))
        die("WSPStartup");
    /* Warm up the allocator and the provider's tables once, so that first-use costs do not
     * land on whichever variant runs first. */
    raw_idle();
    wsp_idle(1);
    struct cost raw = raw_idle();
    struct cost idle = wsp_idle(0), reg = wsp_idle(1), queued = wsp_queued(), ev = events();
    printf("memory and descriptors per object, %d sockets (descriptor limit %ld)\n", n_sockets,
           (long)rl.rlim_cur);
    print("raw epoll server: idle connected socket", raw, NULL);
    print("WSP: idle accepted socket, no registration", idle, &raw);
    print("WSP: idle accepted socket, lpWSPEventSelect", reg, &raw);
    print("WSP: connect-data request queued in the backlog", queued, &raw);
    print("WSP: event object (WSACreateEvent)", ev, NULL);
    int err;
    T.lpWSPCleanup(&err);
    return 0;
}
