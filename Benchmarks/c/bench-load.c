/* Concurrent load: many client threads connecting at once against a WSP connect-data server
 * and, in the same run, against a raw-socket server doing the same exchange.
 *
 * Each connection carries 16 bytes each way. The server decides by the request: 80 % accept
 * (answering with the request's bytes), 10 % reject, 10 % defer once and then accept. The WSP
 * server does it with a condition function (caller data in, callee data out, in the
 * handshake); the raw server reads 16 bytes, answers 16 bytes or closes, and puts a deferred
 * connection aside to take it up again before its next accept. Both run the same number of
 * accepting threads, in a child process of their own so that their CPU time, context switches
 * and threads can be read apart from the clients'.
 *
 * Printed per variant: connections per second, connect latency p50/p99/max, the server's CPU
 * (% of one CPU) and context switches per connection, and wrong and lost outcomes (a client
 * whose result is not what its request decides, or that fails otherwise), which must be 0.
 *
 *   bench-load [clients] [seconds] [accept threads]      defaults: 64 3 2
 * `make bench-load` runs 64 and 512 clients on both CPUs and pinned to one. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <wsp.h>

#define MSG 16
#define MAX_CLIENTS 4096

static int clients = 64, seconds = 3, acceptors = 2;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "bench-load: %s failed (%s)\n", what, strerror(errno));
    exit(1);
}

/* The request: byte 0 the decision ('a', 'r', 'd'), bytes 1-2 the client, 3-6 its sequence
 * number (so that "defer once" can be told from the second look). */
enum { ACCEPT = 'a', REJECT = 'r', DEFER = 'd' };

static void make_request(char *req, int client, uint32_t seq) {
    uint32_t roll = (uint32_t)(client * 7919u + seq * 104729u) % 10u;
    req[0] = roll < 8 ? ACCEPT : roll == 8 ? REJECT : DEFER;
    req[1] = (char)(client >> 8);
    req[2] = (char)client;
    memcpy(req + 3, &seq, 4);
    memset(req + 7, 'x', MSG - 7);
}

/* Deferred once already: the server's record, per client (a client has one request at once). */
static _Atomic uint32_t deferred_seq[MAX_CLIENTS];

/* Whether to defer this request now: a DEFER request the first time it is seen. */
static int defer_now(const char *req) {
    if (req[0] != DEFER)
        return 0;
    int client = (unsigned char)req[1] << 8 | (unsigned char)req[2];
    uint32_t seq;
    memcpy(&seq, req + 3, 4);
    seq += 1; /* 0 means "none yet" */
    return atomic_exchange(&deferred_seq[client], seq) != seq;
}

/* ---- the raw server ---------------------------------------------------------------------- */

static int raw_listener;
static pthread_mutex_t raw_lock = PTHREAD_MUTEX_INITIALIZER;
static struct aside {
    int fd;
    char req[MSG];
} raw_aside[MAX_CLIENTS];
static int raw_aside_count;

static void *raw_acceptor(void *arg) {
    (void)arg;
    for (;;) {
        /* A deferred connection is taken up again first: it stays first in line. */
        struct aside a = {-1, {0}};
        pthread_mutex_lock(&raw_lock);
        if (raw_aside_count)
            a = raw_aside[--raw_aside_count];
        pthread_mutex_unlock(&raw_lock);
        if (a.fd < 0) {
            a.fd = accept(raw_listener, NULL, NULL);
            if (a.fd < 0)
                continue;
            if (recv(a.fd, a.req, MSG, MSG_WAITALL) != MSG) {
                close(a.fd);
                continue;
            }
        }
        if (defer_now(a.req)) {
            pthread_mutex_lock(&raw_lock);
            raw_aside[raw_aside_count++] = a;
            pthread_mutex_unlock(&raw_lock);
            continue;
        }
        if (a.req[0] != REJECT) /* a refusal is the close alone */
            send(a.fd, a.req, MSG, MSG_NOSIGNAL);
        close(a.fd);
    }
    return NULL;
}

/* ---- the WSP server ------------------------------------------------------------------------ */

static WSPPROC_TABLE T;
static SOCKET wsp_listener;

static int decide(LPWSABUF caller_id, LPWSABUF caller_data, LPQOS sqos, LPQOS gqos,
                  LPWSABUF callee_id, LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)caller_id, (void)sqos, (void)gqos, (void)callee_id, (void)g, (void)ctx;
    if (!caller_data || caller_data->len != MSG)
        return CF_REJECT;
    if (defer_now(caller_data->buf))
        return CF_DEFER;
    if (caller_data->buf[0] == REJECT)
        return CF_REJECT;
    memcpy(callee_data->buf, caller_data->buf, MSG);
    callee_data->len = MSG;
    return CF_ACCEPT;
}

static void *wsp_acceptor(void *arg) {
    (void)arg;
    for (;;) {
        int err;
        SOCKET s = T.lpWSPAccept(wsp_listener, NULL, NULL, decide, 0, &err);
        if (s != INVALID_SOCKET)
            T.lpWSPCloseSocket(s, &err);
    }
    return NULL;
}

/* Runs a server in a process of its own (this program again, started fresh: a forked copy
 * would share the clients' provider state without its threads); returns its pid. The
 * listening address goes to *addr. */
static pid_t start_server(int wsp, struct sockaddr_in *addr) {
    int fds[2];
    if (pipe(fds))
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        char fd[16], n[16];
        snprintf(fd, sizeof fd, "%d", fds[1]);
        snprintf(n, sizeof n, "%d", acceptors);
        close(fds[0]);
        execl("/proc/self/exe", "bench-load", "--serve", wsp ? "wsp" : "raw", n, fd,
              (char *)NULL);
        die("exec");
    }
    close(fds[1]);
    if (read(fds[0], addr, sizeof *addr) != (ssize_t)sizeof *addr)
        die("server start");
    close(fds[0]);
    return pid;
}

/* The server process: announces its address on the pipe, then serves until killed. */
static void serve(int wsp, int announce) {
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    void *(*acceptor)(void *) = raw_acceptor;
    if (wsp) {
        WSPDATA data;
        WSPUPCALLTABLE up = {0};
        int err, ilen = sizeof sin;
        if (WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T))
            die("WSPStartup");
        WSAPROTOCOL_INFO info = {.dwCatalogEntryId = WSP_CATALOG_CDATA_IPV4};
        wsp_listener = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
        if (T.lpWSPBind(wsp_listener, (struct sockaddr *)&sin, sizeof sin, &err) ||
            T.lpWSPListen(wsp_listener, SOMAXCONN, &err))
            die("WSP listen");
        T.lpWSPGetSockName(wsp_listener, (struct sockaddr *)&sin, &ilen, &err);
        acceptor = wsp_acceptor;
    } else {
        raw_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        /* The raw server at its best: accept returns once the request is there, so the
         * accepting thread reads it without a second wake-up. */
        int defer_s = 1;
        setsockopt(raw_listener, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s);
        if (bind(raw_listener, (struct sockaddr *)&sin, sizeof sin) ||
            listen(raw_listener, 4096))
            die("raw listen");
        getsockname(raw_listener, (struct sockaddr *)&sin, &len);
    }
    for (int i = 0; i < acceptors; i++) {
        pthread_t t;
        pthread_create(&t, NULL, acceptor, NULL);
    }
    if (write(announce, &sin, sizeof sin) != (ssize_t)sizeof sin)
        die("announce");
    for (;;)
        pause(); /* until the parent's SIGKILL */
}

/* ---- what a server process costs ------------------------------------------------------------ */

struct usage {
    double cpu_s;
    long switches; /* voluntary + involuntary, all threads */
};

static struct usage usage_of(pid_t pid) {
    struct usage u = {0, 0};
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned long ut = 0, st = 0;
        /* fields 14 and 15 (utime, stime), after the parenthesised command name */
        if (fscanf(f, "%*d (%*[^)]) %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                   &st) == 2)
            u.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sp[300], line[128], name[64] = "?";
        snprintf(sp, sizeof sp, "/proc/%d/task/%s/status", (int)pid, e->d_name);
        FILE *s = fopen(sp, "r");
        long mine = 0;
        while (s && fgets(line, sizeof line, s)) {
            long v;
            sscanf(line, "Name: %63s", name);
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
                sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
                mine += v;
        }
        u.switches += mine;
        if (getenv("BENCH_THREADS"))
            fprintf(stderr, "    thread %s %s: %ld switches\n", e->d_name, name, mine);
        if (s)
            fclose(s);
    }
    if (d)
        closedir(d);
    return u;
}

/* ---- clients ------------------------------------------------------------------------------ */

/* Who the clients are: raw sockets against the raw server, hand-written WSP frames against
 * the WSP server, or WSP's own lpWSPConnect against the WSP server. */
enum kind { RAW, RAW_WSP, WSP };

struct client {
    int id;
    enum kind kind;
    struct sockaddr_in addr;
    long done, wrong, lost;
    float *lat; /* milliseconds, one per connection */
    long lat_cap;
    pthread_t thread;
};

static atomic_int running;

/* One raw connection: the outcome is 1 accepted (with the right answer), 0 refused, -1 other. */
static int raw_once(struct client *c, const char *req) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr) ||
        send(fd, req, MSG, MSG_NOSIGNAL) != MSG) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char ans[MSG];
    ssize_t n = recv(fd, ans, MSG, MSG_WAITALL);
    close(fd);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
        return 0;
    return n == MSG && memcmp(ans, req, MSG) == 0 ? 1 : -1;
}

/* A client that speaks WSP's protocol by hand (docs/PROTOCOL.md), as cheaply as the raw
 * client: the server's cost alone, against the raw server's. Like WSP's own client it lets
 * the request carry TCP's last ACK (TCP_DEFER_ACCEPT on the connecting socket). */
static int raw_wsp_once(struct client *c, const char *req) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    uint8_t frame[8 + 2 + MSG] = {0x57, 0x53, 1, 1, 1, 0, 0, 2 + MSG, 0, MSG};
    memcpy(frame + 10, req, MSG);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &on, sizeof on);
    if (fd < 0 || connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr) ||
        send(fd, frame, sizeof frame, MSG_NOSIGNAL) != (ssize_t)sizeof frame) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* One receive, as the raw client makes: an ACCEPT with its data is 26 bytes, a REFUSE 8
     * followed by the server's close. (No PENDING: nothing here waits a second.) */
    uint8_t a[8 + 2 + MSG];
    ssize_t n = recv(fd, a, sizeof a, MSG_WAITALL);
    close(fd);
    if (n < 8 || a[0] != 0x57 || a[1] != 0x53)
        return -1;
    if (a[3] == 3)
        return 0;
    return n == (ssize_t)sizeof a && a[3] == 2 && a[7] == 2 + MSG && memcmp(a + 10, req, MSG) == 0
               ? 1
               : -1;
}

static int wsp_once(struct client *c, const char *req) {
    int err;
    WSAPROTOCOL_INFO info = {.dwCatalogEntryId = WSP_CATALOG_CDATA_IPV4};
    SOCKET s = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    if (s == INVALID_SOCKET)
        return -1;
    char ans[MSG];
    WSABUF caller = {MSG, (char *)req}, callee = {MSG, ans};
    int rc = T.lpWSPConnect(s, (struct sockaddr *)&c->addr, sizeof c->addr, &caller, &callee,
                            NULL, NULL, &err);
    T.lpWSPCloseSocket(s, &err);
    if (rc)
        return err == WSAECONNREFUSED ? 0 : -1;
    return callee.len == MSG && memcmp(ans, req, MSG) == 0 ? 1 : -1;
}

static void *client_main(void *arg) {
    struct client *c = arg;
    char req[MSG];
    for (uint32_t seq = 0; atomic_load(&running); seq++) {
        make_request(req, c->id, seq);
        double t0 = now_s();
        int outcome = c->kind == WSP       ? wsp_once(c, req)
                      : c->kind == RAW_WSP ? raw_wsp_once(c, req)
                                           : raw_once(c, req);
        double ms = (now_s() - t0) * 1000.0;
        if (!atomic_load(&running) && outcome < 0)
            break; /* cut off by the end of the run, not lost */
        if (outcome < 0)
            c->lost++;
        else if (outcome != (req[0] != REJECT))
            c->wrong++;
        else
            c->done++;
        if (c->done + c->wrong + c->lost <= c->lat_cap)
            c->lat[c->done + c->wrong + c->lost - 1] = (float)ms;
    }
    return NULL;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

struct result {
    double rate, p50, p99, max, cpu, switches_per_conn;
    long wrong, lost;
};

static struct result run(enum kind kind) {
    struct sockaddr_in addr;
    memset(deferred_seq, 0, sizeof deferred_seq);
    pid_t server = start_server(kind != RAW, &addr);
    static struct client cs[MAX_CLIENTS];
    long cap = 200000 / clients + 1000;
    atomic_store(&running, 1);
    struct usage u0 = usage_of(server);
    double t0 = now_s();
    for (int i = 0; i < clients; i++) {
        cs[i] = (struct client){.id = i, .kind = kind, .addr = addr, .lat_cap = cap};
        cs[i].lat = malloc(sizeof(float) * (size_t)cap);
        pthread_create(&cs[i].thread, NULL, client_main, &cs[i]);
    }
    struct timespec ts = {seconds, 0};
    nanosleep(&ts, NULL);
    atomic_store(&running, 0);
    struct usage u1 = usage_of(server);
    double dt = now_s() - t0;
    for (int i = 0; i < clients; i++)
        pthread_join(cs[i].thread, NULL);
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    struct result r = {0};
    long total = 0, n = 0;
    for (int i = 0; i < clients; i++) {
        total += cs[i].done + cs[i].wrong;
        r.wrong += cs[i].wrong;
        r.lost += cs[i].lost;
        long k = cs[i].done + cs[i].wrong + cs[i].lost;
        n += k < cs[i].lat_cap ? k : cs[i].lat_cap;
    }
    float *all = malloc(sizeof(float) * (size_t)(n ? n : 1));
    long at = 0;
    for (int i = 0; i < clients; i++) {
        long k = cs[i].done + cs[i].wrong + cs[i].lost;
        k = k < cs[i].lat_cap ? k : cs[i].lat_cap;
        memcpy(all + at, cs[i].lat, sizeof(float) * (size_t)k);
        at += k;
        free(cs[i].lat);
    }
    qsort(all, (size_t)n, sizeof(float), cmp_float);
    r.rate = (double)total / dt;
    r.p50 = n ? all[n / 2] : 0;
    r.p99 = n ? all[(n * 99) / 100] : 0;
    r.max = n ? all[n - 1] : 0;
    r.cpu = (u1.cpu_s - u0.cpu_s) / dt * 100.0;
    r.switches_per_conn = total ? (double)(u1.switches - u0.switches) / (double)total : 0;
    free(all);
    return r;
}

static void print(const char *name, const struct result *r, const struct result *base) {
    printf("  %-26s %8.0f conn/s %5.2fx   p50 %6.2f ms  p99 %6.2f ms (%4.2fx)  max %7.1f ms   "
           "server CPU %4.0f %%  %4.1f switches/conn   wrong %ld lost %ld\n",
           name, r->rate, r->rate / base->rate, r->p50, r->p99, r->p99 / base->p99, r->max,
           r->cpu, r->switches_per_conn, r->wrong, r->lost);
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--serve") == 0) {
        acceptors = atoi(argv[3]);
        serve(strcmp(argv[2], "wsp") == 0, atoi(argv[4]));
    }
    if (argc > 1)
        clients = atoi(argv[1]);
    if (argc > 2)
        seconds = atoi(argv[2]);
    if (argc > 3)
        acceptors = atoi(argv[3]);
    if (clients < 1 || clients > MAX_CLIENTS || seconds < 1 || acceptors < 1) {
        fprintf(stderr, "usage: bench-load [clients 1..%d] [seconds] [accept threads]\n",
                MAX_CLIENTS);
        return 64;
    }
    WSPDATA data;
    WSPUPCALLTABLE up = {0};
    if (WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T)) /* the WSP clients' provider */
        die("WSPStartup");
    /* Interleaved, best of three by rate: the machine is shared. */
    struct result raw = {0}, server = {0}, wsp = {0};
    for (int round = 0; round < 3; round++) {
        struct result a = run(RAW), b = run(RAW_WSP), c = run(WSP);
        if (a.rate > raw.rate)
            raw = a;
        if (b.rate > server.rate)
            server = b;
        if (c.rate > wsp.rate)
            wsp = c;
    }
    printf("%d clients, %d accepting threads, %d s per round, best of 3; 80 %% accept, 10 %% "
           "reject, 10 %% defer once; 16 bytes each way\n",
           clients, acceptors, seconds);
    print("raw server, raw clients", &raw, &raw);
    print("WSP server, raw WSP clients", &server, &raw);
    print("WSP server, WSP clients", &wsp, &raw);
    int err;
    T.lpWSPCleanup(&err);
    return raw.wrong + raw.lost + server.wrong + server.lost + wsp.wrong + wsp.lost ? 1 : 0;
}
