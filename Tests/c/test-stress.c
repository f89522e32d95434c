/* Many connections: no descriptor or request leaks across thousands of accept, reject,
 * defer and withdraw cycles, on both protocols. */
#include <sched.h>
#include <string.h>
#include <sys/socket.h>

#include "support.h"

struct tally {
    int rc; /* the answer for this presentation */
    int calls;
};

static int answer(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f, GROUP *g,
                  DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)g;
    struct tally *t = (struct tally *)ctx;
    t->calls++;
    if (t->rc == CF_ACCEPT && f->len >= 2) {
        memcpy(f->buf, "ok", 2);
        f->len = 2;
    }
    return t->rc;
}

static void abortive(SOCKET s) {
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof lg, &err), 0);
}

#define PLAIN_CYCLES 10000

TEST_WITH_TIMEOUT(stress_plain_cycles_leak_no_descriptors, 120) {
    start();
    static struct fd_snapshot before;
    fd_snapshot_take(&before);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 16, &addr);
    int counts[4] = {0};
    struct tally t = {0};
    for (int i = 0; i < PLAIN_CYCLES; i++) {
        int mode = (i * 7 + i / 3) % 4; /* a mix, not a fixed rotation */
        if (i == PLAIN_CYCLES - 1)
            mode = 0; /* end on a cycle that leaves nothing behind */
        counts[mode]++;
        SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
        CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
        int err = 0;
        SOCKET a;
        switch (mode) {
        case 0: /* accept */
            t.rc = CF_ACCEPT;
            a = accept_with(l, answer, (DWORD_PTR)&t, &err);
            CHECK(a != INVALID_SOCKET);
            send_all(c, "p", 1);
            char b;
            recv_exact(a, &b, 1);
            abortive(c); /* no TIME_WAIT: thousands of cycles must not run out of ports */
            close_socket(c);
            close_socket(a);
            break;
        case 1: /* reject */
            t.rc = CF_REJECT;
            CHECK(accept_with(l, answer, (DWORD_PTR)&t, &err) == INVALID_SOCKET);
            CHECK_EQ(err, WSAECONNREFUSED);
            close_socket(c);
            break;
        case 2: /* defer, then accept */
            t.rc = CF_DEFER;
            CHECK(accept_with(l, answer, (DWORD_PTR)&t, &err) == INVALID_SOCKET);
            CHECK_EQ(err, WSATRY_AGAIN);
            t.rc = CF_ACCEPT;
            a = accept_with(l, answer, (DWORD_PTR)&t, &err);
            CHECK(a != INVALID_SOCKET);
            abortive(c);
            close_socket(c);
            close_socket(a);
            break;
        case 3: /* the client withdraws; the next accept drops it */
            close_socket(c);
            break;
        }
    }
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.accepted, counts[0] + counts[2]);
    CHECK_EQ(st.rejected, counts[1]);
    CHECK_EQ(st.deferred, counts[2]);
    CHECK_EQ(st.withdrawn, counts[3]);
    CHECK_EQ(st.queued, 0);
    /* Every decision was asked for; a client that withdrew just as its request was handed
     * to a waiting accept may also have been shown to the function (accept.c checks such a
     * request once, after the function) and then dropped, so the count is a lower bound. */
    CHECK(t.calls >= counts[0] + counts[1] + 2 * counts[2]);
    CHECK(t.calls <= counts[0] + counts[1] + 2 * counts[2] + counts[3]);
    close_socket(l);
    wait_for_fds(&before, 20000);
}

#define CDATA_CYCLES 5000

/* Spins (briefly yielding) until connect reports something other than WSAEALREADY. */
static int connect_outcome(SOCKET c, const struct sockaddr_storage *addr) {
    long long deadline = now_ms() + 5000;
    for (;;) {
        int rc = connect_to(c, addr, NULL, NULL);
        if (rc != WSAEALREADY)
            return rc;
        CHECK(now_ms() < deadline);
        sched_yield();
    }
}

TEST_WITH_TIMEOUT(stress_cdata_cycles_leak_no_descriptors, 120) {
    start();
    static struct fd_snapshot before;
    fd_snapshot_take(&before);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 16, &addr);
    int counts[4] = {0};
    struct tally t = {0};
    for (int i = 0; i < CDATA_CYCLES; i++) {
        int mode = (i * 5 + i / 4) % 4;
        counts[mode]++;
        SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
        set_nonblocking(c, 1);
        WSABUF caller = {1, "c"};
        CHECK_EQ(connect_full(c, &addr, &caller, NULL, NULL), WSAEWOULDBLOCK);
        int err = 0;
        SOCKET a;
        switch (mode) {
        case 0:
            t.rc = CF_ACCEPT;
            a = accept_with(l, answer, (DWORD_PTR)&t, &err);
            CHECK(a != INVALID_SOCKET);
            CHECK_EQ(connect_outcome(c, &addr), WSAEISCONN);
            abortive(c);
            close_socket(c);
            close_socket(a);
            break;
        case 1: {
            t.rc = CF_REJECT;
            CHECK(accept_with(l, answer, (DWORD_PTR)&t, &err) == INVALID_SOCKET);
            CHECK_EQ(err, WSAECONNREFUSED);
            /* The refused connect ends; the socket is open again (connect would start anew),
             * so wait on SO_ERROR. */
            DWORD v = 0;
            long long deadline = now_ms() + 5000;
            for (;;) {
                int len = sizeof v;
                CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&v, &len, &err), 0);
                if (v)
                    break;
                CHECK(now_ms() < deadline);
                sched_yield();
            }
            CHECK_EQ(v, WSAECONNREFUSED);
            close_socket(c);
            break;
        }
        case 2:
            t.rc = CF_DEFER;
            CHECK(accept_with(l, answer, (DWORD_PTR)&t, &err) == INVALID_SOCKET);
            CHECK_EQ(err, WSATRY_AGAIN);
            t.rc = CF_ACCEPT;
            a = accept_with(l, answer, (DWORD_PTR)&t, &err);
            CHECK(a != INVALID_SOCKET);
            CHECK_EQ(connect_outcome(c, &addr), WSAEISCONN);
            abortive(c);
            close_socket(c);
            close_socket(a);
            break;
        case 3: { /* withdraws once its request is queued */
            long long deadline = now_ms() + 5000;
            while (stats_of(l).queued == 0) {
                CHECK(now_ms() < deadline);
                sched_yield();
            }
            uint64_t w = stats_of(l).withdrawn;
            close_socket(c);
            while (stats_of(l).withdrawn == w) {
                CHECK(now_ms() < deadline);
                sched_yield();
            }
            break;
        }
        }
    }
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.accepted, counts[0] + counts[2]);
    CHECK_EQ(st.rejected, counts[1]);
    CHECK_EQ(st.deferred, counts[2]);
    CHECK_EQ(st.withdrawn, counts[3]);
    CHECK_EQ(st.malformed + st.timed_out + st.backlog_full + st.queued, 0);
    close_socket(l);
    wait_for_fds(&before, 20000);
}

/* ---- many threads at once on the connect-data protocol ---------------------------------- */

#define CLIENT_THREADS 8
#define CONNECTS_PER_THREAD 100

struct mt {
    SOCKET l;
    struct sockaddr_storage addr;
    int stop;
    int accepted, rejected, deferred; /* as seen by the acceptors */
    int client_ok, client_refused;    /* as seen by the clients */
    int wrong;                        /* outcomes that contradict the caller's wish */
};

/* The caller data says what the server should do: "A" accept, "R" reject, "D" defer once
 * and then accept (the second presentation sees a flag set by the first). */
static int decide_by_data(LPWSABUF a, LPWSABUF data, LPQOS c, LPQOS d, LPWSABUF e,
                          LPWSABUF callee, GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)c, (void)d, (void)e, (void)g;
    struct mt *m = (struct mt *)ctx;
    CHECK(data != NULL && data->len == 9);
    if (data->buf[0] == 'R')
        return CF_REJECT;
    if (data->buf[0] == 'D') {
        /* data->buf[1..8] is the client's unique tag; defer its first presentation only. */
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static char seen[CLIENT_THREADS * CONNECTS_PER_THREAD];
        unsigned tag = 0;
        memcpy(&tag, data->buf + 1, sizeof tag);
        CHECK(tag < sizeof seen);
        pthread_mutex_lock(&lock);
        int first = !seen[tag];
        seen[tag] = 1;
        pthread_mutex_unlock(&lock);
        if (first) {
            __atomic_add_fetch(&m->deferred, 1, __ATOMIC_SEQ_CST);
            return CF_DEFER;
        }
    }
    memcpy(callee->buf, data->buf, 9); /* echo: the client checks it got its own answer */
    callee->len = 9;
    return CF_ACCEPT;
}

static void *mt_acceptor(void *arg) {
    struct mt *m = arg;
    while (!__atomic_load_n(&m->stop, __ATOMIC_SEQ_CST)) {
        int err = 0;
        SOCKET a = accept_with(m->l, decide_by_data, (DWORD_PTR)m, &err);
        if (a != INVALID_SOCKET) {
            __atomic_add_fetch(&m->accepted, 1, __ATOMIC_SEQ_CST);
            close_socket(a);
        } else if (err == WSAECONNREFUSED) {
            __atomic_add_fetch(&m->rejected, 1, __ATOMIC_SEQ_CST);
        } else if (err == WSAEINTR || err == WSAENOTSOCK) {
            return NULL; /* the listener closed */
        } else {
            CHECK_EQ(err, WSATRY_AGAIN);
        }
    }
    return NULL;
}

struct mt_client {
    struct mt *m;
    int index;
};

static void *mt_client_main(void *arg) {
    struct mt_client *c = arg;
    struct mt *m = c->m;
    for (int i = 0; i < CONNECTS_PER_THREAD; i++) {
        unsigned tag = (unsigned)(c->index * CONNECTS_PER_THREAD + i);
        char data[9];
        data[0] = "ARDA"[(tag * 7 + 3) % 4];
        memcpy(data + 1, &tag, sizeof tag);
        memset(data + 5, 0, 4);
        WSABUF caller = {9, data};
        char back[16];
        WSABUF callee = {sizeof back, back};
        SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
        int rc = connect_full(s, &m->addr, &caller, &callee, NULL);
        if (rc == 0) {
            __atomic_add_fetch(&m->client_ok, 1, __ATOMIC_SEQ_CST);
            if (data[0] == 'R' || callee.len != 9 || memcmp(back, data, 9) != 0)
                __atomic_add_fetch(&m->wrong, 1, __ATOMIC_SEQ_CST);
        } else {
            __atomic_add_fetch(&m->client_refused, 1, __ATOMIC_SEQ_CST);
            if (rc != WSAECONNREFUSED || data[0] != 'R')
                __atomic_add_fetch(&m->wrong, 1, __ATOMIC_SEQ_CST);
        }
        close_socket(s);
    }
    return NULL;
}

TEST_WITH_TIMEOUT(stress_cdata_many_clients_two_acceptors, 60) {
    start();
    static struct fd_snapshot before;
    fd_snapshot_take(&before);
    static struct mt m;
    m.l = listener(WSP_CATALOG_CDATA_IPV4, SOMAXCONN, &m.addr);
    pthread_t acceptors[2], clients[CLIENT_THREADS];
    struct mt_client cc[CLIENT_THREADS];
    for (int i = 0; i < 2; i++)
        pthread_create(&acceptors[i], NULL, mt_acceptor, &m);
    for (int i = 0; i < CLIENT_THREADS; i++) {
        cc[i] = (struct mt_client){&m, i};
        pthread_create(&clients[i], NULL, mt_client_main, &cc[i]);
    }
    for (int i = 0; i < CLIENT_THREADS; i++)
        pthread_join(clients[i], NULL);
    __atomic_store_n(&m.stop, 1, __ATOMIC_SEQ_CST);
    close_socket(m.l);
    for (int i = 0; i < 2; i++)
        pthread_join(acceptors[i], NULL);
    int total = CLIENT_THREADS * CONNECTS_PER_THREAD;
    CHECK_EQ(m.wrong, 0);
    CHECK_EQ(m.client_ok + m.client_refused, total);
    CHECK_EQ(m.accepted, m.client_ok);
    CHECK_EQ(m.rejected, m.client_refused);
    CHECK(m.deferred > 0);
    wait_for_fds(&before, 20000);
}
