#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

WSPPROC_TABLE T;

void start(void) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
}

SOCKET new_socket(DWORD catalog) {
    WSAPROTOCOL_INFO info;
    memset(&info, 0, sizeof info);
    info.dwCatalogEntryId = catalog;
    int err = 0;
    SOCKET s = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    CHECK(s != INVALID_SOCKET);
    return s;
}

SOCKET listener(DWORD catalog, int backlog, struct sockaddr_storage *addr) {
    SOCKET s = new_socket(catalog);
    int six = catalog == WSP_CATALOG_TCP_IPV6 || catalog == WSP_CATALOG_CDATA_IPV6;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int len;
    if (six) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        len = sizeof *in6;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *in;
    }
    int err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&ss, len, &err), 0);
    CHECK_EQ(T.lpWSPListen(s, backlog, &err), 0);
    if (addr)
        *addr = local_address(s);
    return s;
}

struct sockaddr_storage local_address(SOCKET s) {
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    CHECK_EQ(T.lpWSPGetSockName(s, (struct sockaddr *)&ss, &len, &err), 0);
    return ss;
}

int connect_to(SOCKET s, const struct sockaddr_storage *addr, const char *data, WSABUF *callee) {
    WSABUF caller = {data ? (uint32_t)strlen(data) : 0, (char *)data};
    int err = 0;
    int len = addr->ss_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                          : (int)sizeof(struct sockaddr_in);
    int rc = T.lpWSPConnect(s, (const struct sockaddr *)addr, len, data ? &caller : NULL, callee,
                            NULL, NULL, &err);
    return rc == 0 ? 0 : err;
}

void set_dword(SOCKET s, int level, int name, DWORD v) {
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, level, name, (const char *)&v, sizeof v, &err), 0);
}

int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

void fd_snapshot_take(struct fd_snapshot *s) {
    s->n = 0;
    DIR *d = opendir("/proc/self/fd");
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) && s->n < 256) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self)
            continue;
        int fd = atoi(e->d_name);
        char path[32];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(path, s->what[s->n], sizeof s->what[0] - 1);
        s->what[s->n][len > 0 ? len : 0] = 0;
        s->fd[s->n++] = fd;
    }
    closedir(d);
}

static int snapshot_has(const struct fd_snapshot *s, int fd, const char *what) {
    for (int i = 0; i < s->n; i++)
        if (s->fd[i] == fd && strcmp(s->what[i], what) == 0)
            return 1;
    return 0;
}

static int snapshots_differ(const struct fd_snapshot *a, const struct fd_snapshot *b) {
    if (a->n != b->n)
        return 1;
    for (int i = 0; i < a->n; i++)
        if (!snapshot_has(b, a->fd[i], a->what[i]))
            return 1;
    return 0;
}

void wait_for_fds(const struct fd_snapshot *s, int ms) {
    static struct fd_snapshot now;
    long long deadline = now_ms() + ms;
    for (;;) {
        fd_snapshot_take(&now);
        if (!snapshots_differ(s, &now))
            return;
        if (now_ms() > deadline)
            break;
        sleep_ms(2);
    }
    for (int i = 0; i < now.n; i++)
        if (!snapshot_has(s, now.fd[i], now.what[i]))
            fprintf(stderr, "  descriptor %d (%s) open, was not before\n", now.fd[i], now.what[i]);
    for (int i = 0; i < s->n; i++)
        if (!snapshot_has(&now, s->fd[i], s->what[i]))
            fprintf(stderr, "  descriptor %d (%s) closed, was open before\n", s->fd[i], s->what[i]);
    fprintf(stderr, "wait_for_fds: the descriptors open differ from those before\n");
    exit(1);
}

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long test_patience(long long ms) {
    const char *env = getenv("WSP_TEST_PATIENCE_MS");
    long long cap = env ? atoll(env) : 0;
    return cap > 0 && cap < ms ? cap : ms;
}

int addr_len(const struct sockaddr_storage *ss) {
    return ss->ss_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                     : (int)sizeof(struct sockaddr_in);
}

int port_of(const struct sockaddr_storage *ss) {
    return ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
                                     : ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

void close_socket(SOCKET s) {
    int err = 0;
    CHECK_EQ(T.lpWSPCloseSocket(s, &err), 0);
}

SOCKET accept_with(SOCKET l, LPCONDITIONPROC cond, DWORD_PTR ctx, int *err) {
    *err = 0;
    SOCKET a = T.lpWSPAccept(l, NULL, NULL, cond, ctx, err);
    if (a != INVALID_SOCKET)
        *err = 0;
    return a;
}

WSP_LISTENER_STATS_DATA stats_of(SOCKET l) {
    WSP_LISTENER_STATS_DATA st;
    memset(&st, 0, sizeof st);
    int len = sizeof st, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_WSP, WSP_LISTENER_STATS, (char *)&st, &len, &err), 0);
    CHECK_EQ(len, sizeof st);
    return st;
}

void set_nonblocking(SOCKET s, int on) {
    DWORD v = (DWORD)on, ret = 77;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONBIO, &v, sizeof v, NULL, 0, &ret, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(ret, 0); /* FIONBIO returns no bytes */
}

int connect_full(SOCKET s, const struct sockaddr_storage *addr, WSABUF *caller, WSABUF *callee,
                 QOS *sqos) {
    int err = 0;
    int rc = T.lpWSPConnect(s, (const struct sockaddr *)addr, addr_len(addr), caller, callee,
                            sqos, NULL, &err);
    return rc == 0 ? 0 : err;
}

void send_all(SOCKET s, const void *buf, size_t n) {
    WSABUF b = {(uint32_t)n, (char *)buf};
    DWORD sent = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPSend(s, &b, 1, &sent, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(sent, n);
}

int recv_some(SOCKET s, void *buf, size_t n, DWORD flags, DWORD *got) {
    WSABUF b = {(uint32_t)n, (char *)buf};
    int err = 0;
    *got = 0;
    return T.lpWSPRecv(s, &b, 1, got, &flags, NULL, NULL, NULL, &err) == 0 ? 0 : err;
}

void recv_exact(SOCKET s, void *buf, size_t n) {
    size_t have = 0;
    while (have < n) {
        DWORD got = 0;
        CHECK_EQ(recv_some(s, (char *)buf + have, n - have, 0, &got), 0);
        CHECK(got > 0);
        have += got;
    }
}

int raw_connect(const struct sockaddr_storage *addr) {
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK_EQ(connect(fd, (const struct sockaddr *)addr, (socklen_t)addr_len(addr)), 0);
    return fd;
}

int raw_recv(int fd, void *buf, size_t n, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r == 0)
        return -EAGAIN;
    ssize_t got = recv(fd, buf, n, MSG_DONTWAIT);
    return got < 0 ? -errno : (int)got;
}

int raw_recv_frame_then_end(int fd, uint8_t frame[8]) {
    size_t have = 0;
    long long deadline = now_ms() + 10000;
    while (have < 8) {
        int n = raw_recv(fd, frame + have, 8 - have, 100);
        CHECK(n != 0 && n != -ECONNRESET); /* the frame comes before the close */
        if (n > 0)
            have += (size_t)n;
        CHECK(now_ms() < deadline);
    }
    char more;
    int n;
    while ((n = raw_recv(fd, &more, 1, 100)) == -EAGAIN)
        CHECK(now_ms() < deadline);
    return n;
}

static void *async_connect_main(void *arg) {
    struct async_connect *c = arg;
    long long t0 = now_ms();
    int rc = connect_full(c->s, &c->addr, c->caller, c->callee, c->sqos);
    c->ms = now_ms() - t0;
    __atomic_store_n(&c->result, rc, __ATOMIC_SEQ_CST); /* last: a poller may read it early */
    return NULL;
}

void async_connect_start(struct async_connect *c) {
    __atomic_store_n(&c->result, -1, __ATOMIC_SEQ_CST);
    CHECK_EQ(pthread_create(&c->thread, NULL, async_connect_main, c), 0);
}

int async_connect_join(struct async_connect *c) {
    CHECK_EQ(pthread_join(c->thread, NULL), 0);
    return c->result;
}

void blocker_enter(struct blocker *b) {
    __atomic_store_n(&b->returned, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&b->tid, (int)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
}

void blocker_leave(struct blocker *b) {
    __atomic_store_n(&b->returned, 1, __ATOMIC_SEQ_CST);
}

/* The thread's scheduler state ('S': asleep) and the system call it is in, as its number and
 * first argument (an empty string when it is not in one); 0 when the thread is gone. */
static char thread_state(int tid, char *call, size_t size) {
    char path[64], buf[512];
    call[0] = 0;
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *paren = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    char state = paren && paren[1] == ' ' ? paren[2] : 0;
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    f = fopen(path, "r");
    if (f) {
        char nr[32] = "", arg[32] = "";
        if (fscanf(f, "%31s %31s", nr, arg) >= 1 && nr[0] != '-' && strcmp(nr, "running") != 0)
            snprintf(call, size, "%s %s", nr, arg);
        fclose(f);
    }
    return state;
}

bool wait_blocked_or_returned(struct blocker *b) {
    WAIT_FOR(__atomic_load_n(&b->tid, __ATOMIC_SEQ_CST) != 0, 10000);
    int tid = __atomic_load_n(&b->tid, __ATOMIC_SEQ_CST);
    long long deadline = now_ms() + 10000;
    int looks = 0;
    char last[64] = "";
    /* The provider waits in poll or on a futex of its own; a lock on the way in is a futex
     * wait too, but a brief one: the same wait (call and address) seen on ten looks over
     * 20 ms is the call waiting. */
    while (looks < 10) {
        if (__atomic_load_n(&b->returned, __ATOMIC_SEQ_CST))
            return false;
        CHECK(now_ms() < deadline);
        char call[64];
        char st = thread_state(tid, call, sizeof call);
        CHECK(st != 0);
        if (st == 'S' && call[0] && (looks == 0 || strcmp(call, last) == 0))
            looks++;
        else
            looks = 0;
        snprintf(last, sizeof last, "%s", call);
        sleep_ms(2);
    }
    return true;
}

void wait_blocked(struct blocker *b) {
    CHECK(wait_blocked_or_returned(b)); /* the call returned: it did not block */
}

/* Scans /proc/net/tcp (or tcp6) for the listener on port lport: *queue gets its accept queue's
 * length and the result is 1 when the server end of the connection from cport is
 * established. */
static int scan_tcp_table(int six, int lport, int cport, int *queue) {
    FILE *f = fopen(six ? "/proc/net/tcp6" : "/proc/net/tcp", "r");
    CHECK(f != NULL);
    char line[512];
    int established = 0;
    *queue = -1;
    CHECK(fgets(line, sizeof line, f) != NULL); /* the heading */
    while (fgets(line, sizeof line, f)) {
        char local[64], remote[64];
        unsigned st, txq, rxq;
        if (sscanf(line, "%*s %63s %63s %x %x:%x", local, remote, &st, &txq, &rxq) != 5)
            continue;
        const char *lp = strrchr(local, ':'), *rp = strrchr(remote, ':');
        if (!lp || !rp || (int)strtol(lp + 1, NULL, 16) != lport)
            continue;
        if (st == 0x0A) /* LISTEN: rx_queue is the accept queue */
            *queue = (int)rxq;
        else if (st == 0x01 && (int)strtol(rp + 1, NULL, 16) == cport)
            established = 1;
    }
    fclose(f);
    return established;
}

/* Whether the server end has closed the connection already (the client is no longer
 * established): taken, and dropped before a look at the table found it established. */
static int closed_by_server(int client_fd) {
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    return getsockopt(client_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
           ti.tcpi_state != TCP_ESTABLISHED;
}

void wait_taken_from_kernel(const struct sockaddr_storage *laddr, int client_fd) {
    struct sockaddr_storage me;
    socklen_t len = sizeof me;
    CHECK_EQ(getsockname(client_fd, (struct sockaddr *)&me, &len), 0);
    int queue = -1;
    WAIT_FOR((scan_tcp_table(laddr->ss_family == AF_INET6, port_of(laddr), port_of(&me), &queue) ||
              closed_by_server(client_fd)) &&
                 queue == 0,
             10000);
}

unsigned long unread_bytes(SOCKET s) {
    DWORD v = 0, ret = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONREAD, NULL, 0, &v, sizeof v, &ret, NULL, NULL, NULL, &err), 0);
    return v;
}

struct sockaddr_storage dead_address(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return ss; /* fd stays open: see support.h */
}

int tcp_state(int local_port, int peer_port) {
    FILE *f = fopen("/proc/net/tcp", "r");
    CHECK(f != NULL);
    char line[512];
    int state = -1;
    CHECK(fgets(line, sizeof line, f) != NULL); /* the heading */
    while (fgets(line, sizeof line, f)) {
        char local[64], remote[64];
        unsigned st;
        if (sscanf(line, "%*s %63s %63s %x", local, remote, &st) != 3)
            continue;
        const char *lp = strrchr(local, ':'), *rp = strrchr(remote, ':');
        if (lp && rp && (int)strtol(lp + 1, NULL, 16) == local_port &&
            (int)strtol(rp + 1, NULL, 16) == peer_port)
            state = (int)st;
    }
    fclose(f);
    return state;
}

int tcp_unread(int local_port, int peer_port) {
    FILE *f = fopen("/proc/net/tcp", "r");
    CHECK(f != NULL);
    char line[512];
    int unread = -1;
    CHECK(fgets(line, sizeof line, f) != NULL); /* the heading */
    while (fgets(line, sizeof line, f)) {
        char local[64], remote[64];
        unsigned st, txq, rxq;
        if (sscanf(line, "%*s %63s %63s %x %x:%x", local, remote, &st, &txq, &rxq) != 5)
            continue;
        const char *lp = strrchr(local, ':'), *rp = strrchr(remote, ':');
        if (lp && rp && (int)strtol(lp + 1, NULL, 16) == local_port &&
            (int)strtol(rp + 1, NULL, 16) == peer_port)
            unread = (int)rxq;
    }
    fclose(f);
    return unread;
}

/* ---- which thread waits where ---- */

int reactor_tid(void) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int tid = 0;
    struct dirent *e;
    while (!tid && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[320], name[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(name, sizeof name, f) && strncmp(name, "wsp-reactor", 11) == 0)
            tid = atoi(e->d_name);
        fclose(f);
    }
    closedir(d);
    return tid;
}

/* Whether the task whose syscall file is path is in a futex call on addr. */
static bool task_in_futex_on(const char *path, const void *addr) {
    FILE *f = fopen(path, "r");
    if (!f)
        return false; /* the thread has exited */
    long nr = -1;
    unsigned long a0 = 0;
    int n = fscanf(f, "%ld %lx", &nr, &a0);
    fclose(f);
    return n == 2 && nr == SYS_futex && a0 == (unsigned long)(uintptr_t)addr;
}

bool in_futex_on(int tid, const void *addr) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    return task_in_futex_on(path, addr);
}

int threads_in_futex_on(const void *addr) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[320];
        snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
        count += task_in_futex_on(path, addr);
    }
    closedir(d);
    return count;
}

/* ---- the process's memory ---- */

long vm_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL);
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld", &v) == 1)
            break;
    fclose(f);
    CHECK(v > 0);
    return v;
}

long default_stack_kb(void) {
    pthread_attr_t attr;
    size_t stack = 0;
    CHECK_EQ(pthread_getattr_default_np(&attr), 0);
    CHECK_EQ(pthread_attr_getstacksize(&attr, &stack), 0);
    pthread_attr_destroy(&attr);
    return (long)(stack / 1024);
}

/* ---- knowing that the reactor has caught up ---- */

void catch_up_start(struct catch_up *c) {
    c->l = listener(WSP_CATALOG_TCP_IPV4, 8, &c->addr);
    c->client[0] = c->client[1] = -1;
}

void wait_reactor_caught_up(struct catch_up *c) {
    CHECK(c->client[0] < 0); /* once: the listener's queue counts from 0 */
    for (int i = 0; i < 2; i++) {
        c->client[i] = raw_connect(&c->addr);
        WAIT_FOR(stats_of(c->l).queued == (uint32_t)i + 1, 10000);
    }
}

void catch_up_close(struct catch_up *c) {
    for (int i = 0; i < 2; i++)
        if (c->client[i] >= 0)
            close(c->client[i]);
    close_socket(c->l);
}

/* ---- the server's side of a connect-data connect ---- */

int accept_whole_request(int lfd, uint8_t *buf, size_t n, wsp_hs_frame *f) {
    int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(afd >= 0);
    size_t len = 0;
    long r;
    while ((r = wsp_hs_decode(buf, len, WSP_HS_MAX_DATA, 1u << WSP_HS_REQUEST, f)) == 0) {
        CHECK(len < n);
        int got = raw_recv(afd, buf + len, n - len, 10000);
        CHECK(got > 0);
        len += (size_t)got;
    }
    CHECK(r > 0);
    return afd;
}

/* ---- holding the event thread in a job ---- */

static void event_thread_hold_job(void *context) {
    struct event_thread_hold *h = context;
    if (h->once_queued && stats_of(h->once_queued).queued == 0) {
        CHECK_EQ(WSPRunOnEventThread(event_thread_hold_job, h), 0);
        return;
    }
    atomic_store(&h->held, 1);
    WAIT_FOR(!atomic_load(&h->holding), 30000); /* past the test's own waits */
}

void event_thread_hold_post(struct event_thread_hold *h, SOCKET once_queued) {
    h->once_queued = once_queued;
    atomic_store(&h->held, 0);
    atomic_store(&h->holding, 1);
    CHECK_EQ(WSPRunOnEventThread(event_thread_hold_job, h), 0);
}

void event_thread_wait_held(struct event_thread_hold *h) {
    WAIT_FOR(atomic_load(&h->held), 10000);
}

void event_thread_hold(struct event_thread_hold *h) {
    event_thread_hold_post(h, 0);
    event_thread_wait_held(h);
}

void event_thread_let_go(struct event_thread_hold *h) {
    atomic_store(&h->holding, 0);
}
