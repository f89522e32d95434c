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
    int before = open_fds();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 16, &addr);
    int counts[4] = {0};
    struct tally t = {0};
    long long t0 = now_ms();
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
    CHECK(now_ms() - t0 < 60000);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.accepted, counts[0] + counts[2]);
    CHECK_EQ(st.rejected, counts[1]);
    CHECK_EQ(st.deferred, counts[2]);
    CHECK_EQ(st.withdrawn, counts[3]);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(t.calls, counts[0] + counts[1] + 2 * counts[2]);
    close_socket(l);
    WAIT_FOR(open_fds() == before, 5000);
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
    int before = open_fds();
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
    WAIT_FOR(open_fds() == before, 5000);
}
