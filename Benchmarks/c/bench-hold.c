/* Held requests (issue 15): what holding costs, and what it buys.
 *
 * Connect-data clients, each thread connecting and closing in a loop with 1 byte of caller
 * data; one server thread accepts, and the server closes each accepted socket at once.
 *
 *  1. Cost. Connections per second when the condition function accepts at once ("direct"),
 *     and when it holds every request and the same thread answers WSPHeldAccept right after
 *     ("hold, answer"): the handle, the held list and the answer, nothing else.
 *  2. What it buys. One client connection in ten needs a slow decision (100 ms). The fast
 *     clients' connect latency (p50, p99) with no slow decisions at all ("none": that client
 *     waits 100 ms after a fast connect instead, so the load offered is the same), with the slow
 *     ones held and answered 100 ms later by another thread ("held"), and with the 100 ms spent
 *     inside the condition function ("inline": what a server without holds does, unless it
 *     defers and polls, which keeps the slow request first in line).
 *
 *   bench-hold [client threads] [seconds per variant]     defaults: 16 2
 * ("none" and "held" run that long four times each, alternating, their latencies pooled.)
 * Printed: connections per second; for part 2 the fast clients' p50/p99 and their ratio to
 * "none"; wrong outcomes (a client that failed), which must be 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wsp.h>

#define SLOW_MS 100
#define MAX_THREADS 256
#define MAX_SAMPLES 200000
#define ROUNDS 4 /* of part 2's "none" and "held", alternating */

static WSPPROC_TABLE T;
static LPFN_WSPACCEPTHOLD AcceptHold;
static LPFN_WSPHELDACCEPT HeldAccept;
static int threads = 16;
static double seconds = 2;

enum mode { DIRECT, HOLD_ANSWER, NONE, HELD, INLINE };
static const char *mode_name[] = {"direct", "hold, answer", "none", "held", "inline"};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err) {
    fprintf(stderr, "bench-hold: %s failed (%s)\n", what, WSPErrorName(err));
    exit(1);
}

/* ---- the server ------------------------------------------------------------------------------ */

static int is_slow(LPWSABUF data) { return data && data->len == 1 && data->buf[0] == 's'; }

static int cond_accept(LPWSABUF a, LPWSABUF data, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                       GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)data, (void)c, (void)d, (void)e, (void)g, (void)ctx;
    f->len = 0;
    return CF_ACCEPT;
}

static int cond_hold_all(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                         GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_HOLD;
}

static int cond_hold_slow(LPWSABUF a, LPWSABUF data, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                          GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)c, (void)d, (void)e, (void)g, (void)ctx;
    f->len = 0;
    return is_slow(data) ? CF_HOLD : CF_ACCEPT;
}

static int cond_inline_slow(LPWSABUF a, LPWSABUF data, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                            GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)c, (void)d, (void)e, (void)g, (void)ctx;
    f->len = 0;
    if (is_slow(data)) {
        struct timespec ts = {0, SLOW_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return CF_ACCEPT;
}

/* Held requests waiting for their slow decision, in the order held (so by due time). */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t more;
    WSPHELD h[4096];
    double due[4096];
    int head, tail;
    int done;
} slow = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, {0}, 0, 0, 0};

static void *decider(void *arg) {
    (void)arg;
    pthread_mutex_lock(&slow.lock);
    for (;;) {
        while (slow.head == slow.tail && !slow.done)
            pthread_cond_wait(&slow.more, &slow.lock);
        if (slow.head == slow.tail)
            break;
        WSPHELD h = slow.h[slow.head % 4096];
        double due = slow.due[slow.head % 4096];
        slow.head++;
        pthread_mutex_unlock(&slow.lock);
        double wait = due - now_s();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        SOCKET a;
        int err = 0;
        if (HeldAccept(h, NULL, NULL, &a, &err) == 0)
            T.lpWSPCloseSocket(a, &err);
        pthread_mutex_lock(&slow.lock);
    }
    pthread_mutex_unlock(&slow.lock);
    return NULL;
}

struct server {
    SOCKET l;
    enum mode mode;
};

static void *serve(void *arg) {
    struct server *s = arg;
    for (;;) {
        SOCKET a = INVALID_SOCKET;
        WSPHELD h = 0;
        int err = 0;
        if (s->mode == DIRECT || s->mode == NONE || s->mode == INLINE) {
            a = T.lpWSPAccept(s->l, NULL, NULL,
                              s->mode == INLINE ? cond_inline_slow : cond_accept, 0, &err);
        } else if (AcceptHold(s->l, NULL, NULL,
                              s->mode == HELD ? cond_hold_slow : cond_hold_all, 0, &a, &h,
                              &err) != 0) {
            a = INVALID_SOCKET;
        } else if (h && s->mode == HOLD_ANSWER) {
            if (HeldAccept(h, NULL, NULL, &a, &err) != 0)
                a = INVALID_SOCKET;
        } else if (h) {
            pthread_mutex_lock(&slow.lock);
            slow.h[slow.tail % 4096] = h;
            slow.due[slow.tail % 4096] = now_s() + SLOW_MS / 1000.0;
            slow.tail++;
            pthread_cond_signal(&slow.more);
            pthread_mutex_unlock(&slow.lock);
            continue;
        }
        if (a != INVALID_SOCKET)
            T.lpWSPCloseSocket(a, &err);
        else if (err == WSAEINTR || err == WSAENOTSOCK)
            return NULL; /* the listener closed: the run is over */
    }
}

/* ---- the clients ----------------------------------------------------------------------------- */

struct client {
    pthread_t thread;
    struct sockaddr_in addr;
    int slow_too; /* one connection in ten asks for a slow decision */
    int pace;     /* "none": that connection is fast, and the client waits SLOW_MS after it,
                   * so that every variant of part 2 offers the same load */
    long connections, failures;
    int *samples; /* fast connections' latency, microseconds */
    int n_samples;
};

static atomic_int stop;

static SOCKET cdata_socket(int *err) {
    WSAPROTOCOL_INFO info;
    memset(&info, 0, sizeof info);
    info.dwCatalogEntryId = WSP_CATALOG_CDATA_IPV4;
    return T.lpWSPSocket(AF_INET, SOCK_STREAM, 0, &info, 0, 0, err);
}

static void *client_main(void *arg) {
    struct client *c = arg;
    for (long i = 0; !atomic_load(&stop); i++) {
        int err = 0;
        SOCKET s = cdata_socket(&err);
        if (s == INVALID_SOCKET)
            die("WSPSocket", err);
        int slow_one = (c->slow_too || c->pace) && i % 10 == 9;
        char byte = slow_one && c->slow_too ? 's' : 'f';
        WSABUF caller = {1, &byte};
        double t0 = now_s();
        int rc = T.lpWSPConnect(s, (struct sockaddr *)&c->addr, sizeof c->addr, &caller, NULL,
                                NULL, NULL, &err);
        double t = now_s() - t0;
        if (rc != 0)
            c->failures++;
        else
            c->connections++;
        if (rc == 0 && !slow_one && c->n_samples < MAX_SAMPLES / MAX_THREADS)
            c->samples[c->n_samples++] = (int)(t * 1e6);
        T.lpWSPCloseSocket(s, &err);
        if (slow_one && c->pace) {
            struct timespec ts = {0, SLOW_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

struct result {
    double rate;
    int p50, p99; /* microseconds, fast connections */
    long failures;
};

/* The last run's fast-connection latencies, sorted (microseconds). */
static int samples[MAX_SAMPLES];
static int n_samples;

static struct result run(enum mode mode) {
    int err = 0;
    SOCKET l = cdata_socket(&err);
    if (l == INVALID_SOCKET)
        die("WSPSocket (listener)", err);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int len = sizeof addr;
    if (T.lpWSPBind(l, (struct sockaddr *)&addr, sizeof addr, &err) != 0 ||
        T.lpWSPListen(l, SOMAXCONN, &err) != 0 ||
        T.lpWSPGetSockName(l, (struct sockaddr *)&addr, &len, &err) != 0)
        die("bind/listen", err);
    struct server srv = {l, mode};
    pthread_t server_thread, decider_thread;
    slow.head = slow.tail = slow.done = 0;
    pthread_create(&server_thread, NULL, serve, &srv);
    pthread_create(&decider_thread, NULL, decider, NULL);
    static struct client clients[MAX_THREADS];
    atomic_store(&stop, 0);
    for (int i = 0; i < threads; i++) {
        clients[i] = (struct client){.addr = addr,
                                     .slow_too = mode == HELD || mode == INLINE,
                                     .pace = mode == NONE,
                                     .samples = samples + i * (MAX_SAMPLES / MAX_THREADS)};
        pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
    }
    double t0 = now_s();
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    struct result r = {0};
    long total = 0;
    int n = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(clients[i].thread, NULL);
        total += clients[i].connections;
        r.failures += clients[i].failures;
        /* gather the samples together at the front */
        memmove(samples + n, clients[i].samples, sizeof(int) * (size_t)clients[i].n_samples);
        n += clients[i].n_samples;
    }
    r.rate = (double)total / (now_s() - t0);
    pthread_mutex_lock(&slow.lock);
    slow.done = 1;
    pthread_cond_signal(&slow.more);
    pthread_mutex_unlock(&slow.lock);
    pthread_join(decider_thread, NULL);
    T.lpWSPCloseSocket(l, &err);
    pthread_join(server_thread, NULL);
    qsort(samples, (size_t)n, sizeof(int), by_value);
    r.p50 = n ? samples[n / 2] : 0;
    r.p99 = n ? samples[(n * 99) / 100] : 0;
    n_samples = n;
    return r;
}

int main(int argc, char **argv) {
    if (argc > 1)
        threads = atoi(argv[1]);
    if (argc > 2)
        seconds = atof(argv[2]);
    if (threads < 1 || threads > MAX_THREADS || seconds <= 0) {
        fprintf(stderr, "usage: bench-hold [client threads 1-%d] [seconds]\n", MAX_THREADS);
        return 2;
    }
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    int err = WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T);
    if (err)
        die("WSPStartup", err);
    SOCKET s = T.lpWSPSocket(AF_INET, SOCK_STREAM, 0, NULL, 0, 0, &err);
    GUID ids[2] = {WSPID_ACCEPTHOLD, WSPID_HELDACCEPT};
    void *fns[2];
    for (int i = 0; i < 2; i++) {
        DWORD n = 0;
        if (T.lpWSPIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &ids[i], sizeof ids[i], &fns[i],
                         sizeof fns[i], &n, NULL, NULL, NULL, &err) != 0)
            die("SIO_GET_EXTENSION_FUNCTION_POINTER", err);
    }
    memcpy(&AcceptHold, &fns[0], sizeof AcceptHold);
    memcpy(&HeldAccept, &fns[1], sizeof HeldAccept);
    T.lpWSPCloseSocket(s, &err);

    printf("bench-hold: %d client threads, %.1f s per variant, connect data\n", threads,
           seconds);
    printf("1. cost of a hold\n");
    struct result direct = run(DIRECT), held = run(HOLD_ANSWER);
    printf("   %-14s %9.0f conn/s\n", mode_name[DIRECT], direct.rate);
    printf("   %-14s %9.0f conn/s   %.2fx direct\n", mode_name[HOLD_ANSWER], held.rate,
           held.rate / direct.rate);
    printf("2. one connection in ten needs a %d ms decision: the fast ones' latency\n", SLOW_MS);
    /* "none" and "held" alternate over ROUNDS rounds (a drift of the machine's load then
     * falls on both alike), and each one's latencies are pooled over its rounds. */
    static int pool[2][MAX_SAMPLES];
    int pooled[2] = {0, 0};
    struct result r[3] = {{0}};
    long failures = direct.failures + held.failures;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < 2; i++) {
            struct result one = run(NONE + i);
            r[i].rate += one.rate / ROUNDS;
            failures += one.failures;
            for (int k = 0; k < n_samples && pooled[i] < MAX_SAMPLES; k++)
                pool[i][pooled[i]++] = samples[k];
        }
    }
    for (int i = 0; i < 2; i++) {
        qsort(pool[i], (size_t)pooled[i], sizeof(int), by_value);
        r[i].p50 = pooled[i] ? pool[i][pooled[i] / 2] : 0;
        r[i].p99 = pooled[i] ? pool[i][(pooled[i] * 99) / 100] : 0;
    }
    r[2] = run(INLINE);
    failures += r[2].failures;
    for (int i = 0; i < 3; i++)
        printf("   %-14s %9.0f conn/s   p50 %6d us   p99 %7d us   p99 %.2fx none%s\n",
               mode_name[NONE + i], r[i].rate, r[i].p50, r[i].p99,
               r[0].p99 ? (double)r[i].p99 / r[0].p99 : 0.0,
               i == 1 ? "   (target <= 1.20x)" : "");
    printf("wrong outcomes: %ld\n", failures);
    T.lpWSPCleanup(&err);
    return failures ? 1 : 0;
}
