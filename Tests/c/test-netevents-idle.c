/* 10,000 registered, idle sockets cost no CPU: the reactor sleeps until something happens.
 *
 * Measured on the provider's own threads, never in wall-clock time: a thread that wakes and
 * sleeps again counts a voluntary context switch, and one that spins without sleeping runs up
 * CPU time; a loaded machine adds to neither (it only delays a thread that wants to run). */
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <netinet/tcp.h>
#include <sys/socket.h>

#include "netevents.h"
#include "test-netevents.h"

#define IDLE_PAIRS 5000

/* Of the provider's threads (named "wsp-...": a sanitizer's own threads are not counted): the
 * voluntary context switches, and the CPU time in clock ticks to *ticks. */
static long long provider_wakeups(long long *ticks, int *threads) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    long long sum = 0;
    *ticks = 0;
    *threads = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == (int)getpid())
            continue;
        char path[300], line[512];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *comm = fopen(path, "r");
        if (!comm)
            continue;
        int ours = fgets(line, sizeof line, comm) && strncmp(line, "wsp-", 4) == 0;
        fclose(comm);
        if (!ours)
            continue;
        (*threads)++;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *st = fopen(path, "r");
        if (st) {
            size_t n = fread(line, 1, sizeof line - 1, st);
            line[n] = 0;
            fclose(st);
            const char *p = strrchr(line, ')'); /* then state, and utime, stime as 12th, 13th */
            unsigned long long ut = 0, stm = 0;
            if (p && sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut,
                            &stm) == 2)
                *ticks += (long long)(ut + stm);
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
                sum += atoll(line + 24);
        fclose(f);
    }
    closedir(d);
    return sum;
}

TEST_WITH_TIMEOUT(netev_idle_registered_sockets_use_no_cpu, 240) {
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    CHECK(rl.rlim_cur >= 2 * IDLE_PAIRS + 64); /* the test needs the descriptors */
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, SOMAXCONN, &addr);
    WSAEVENT ev = WSACreateEvent();
    static SOCKET cs[IDLE_PAIRS], ss[IDLE_PAIRS];
    int err = 0;
    for (int i = 0; i < IDLE_PAIRS; i++) {
        cs[i] = new_socket(WSP_CATALOG_TCP_IPV4);
        CHECK_EQ(connect_to(cs[i], &addr, NULL, NULL), 0);
        ss[i] = ne_accept(l, NULL, &err);
        CHECK(ss[i] != INVALID_SOCKET);
        CHECK_EQ(T.lpWSPEventSelect(cs[i], ev, FD_READ | FD_WRITE | FD_OOB | FD_CLOSE, &err), 0);
        CHECK_EQ(T.lpWSPEventSelect(ss[i], ev, FD_READ | FD_WRITE | FD_OOB | FD_CLOSE, &err), 0);
    }
    /* Registration reported FD_WRITE on each: take those, then measure a quiet second. */
    for (int i = 0; i < IDLE_PAIRS; i++) {
        ne_enum(cs[i], NULL);
        ne_enum(ss[i], NULL);
    }
    WSAResetEvent(ev);
    sleep_ms(100); /* not synchronization: what is left of the set-up settles */
    long long ticks0, ticks1;
    int threads;
    long long before = provider_wakeups(&ticks0, &threads);
    CHECK(threads >= 1); /* the reactor, at least, is measured */
    sleep_ms(1000); /* the quiet second under measure */
    long long woke = provider_wakeups(&ticks1, &threads) - before;
    long long ran = ticks1 - ticks0;
    if (woke > 2 || ran > 5)
        fprintf(stderr, "in an idle second the provider's threads woke %lld times and ran %lld "
                        "ticks\n", woke, ran);
#ifndef __SANITIZE_THREAD__
    CHECK(woke <= 2); /* a poller would wake hundreds of times */
#else
    (void)woke; /* ThreadSanitizer's runtime wakes every thread itself (some 20 times a second) */
#endif
    CHECK(ran <= 5);  /* a spinner would run for most of the second */
    CHECK(!ne_signalled(ev, 0));
    /* Still alive: one event on one socket among them all. */
    ne_send_str(cs[IDLE_PAIRS / 2], "wake");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(ss[IDLE_PAIRS / 2], ev, FD_READ, 10000, &ne));
}

/* The reactor's watch on a socket waits only for what could raise an event the registration
 * asks for and has armed: conditions that raise nothing cost it no wake-up. Here, on sockets
 * registered for window messages: urgent data, data and a FIN on one registered for FD_WRITE
 * alone; the socket's own SD_RECEIVE (one relay, the watch then stops looking at the read
 * side). Counted against another socket whose FD_READ the reactor relays ROUNDS times: that
 * many relays in all, not one more. */
#define ROUNDS 5
TEST(netev_conditions_that_raise_nothing_cost_the_reactor_no_relay) {
    start();
    HWND q = WSPCreateMessageQueue();
    WSPMSG m;
    int err = 0;
    SOCKET ac, as, al, bc, bs, bl, cc, cs, cl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &ac, &as, &al);
    ne_pair(WSP_CATALOG_TCP_IPV4, &bc, &bs, &bl);
    ne_pair(WSP_CATALOG_TCP_IPV4, &cc, &cs, &cl);
    CHECK_EQ(T.lpWSPAsyncSelect(as, q, NE_MSG, FD_WRITE, &err), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0)); /* at registration */
    CHECK_EQ(T.lpWSPAsyncSelect(bs, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPAsyncSelect(cs, q, NE_MSG, FD_READ | FD_CLOSE, &err), 0);

    unsigned before = wsp_netevents_relays();
    CHECK_EQ(T.lpWSPShutdown(cs, SD_RECEIVE, &err), 0);
    WAIT_FOR(wsp_netevents_relays() == before + 1, 10000); /* the watch was armed for it */
    unsigned start_count = wsp_netevents_relays();
    DWORD sent;
    CHECK_EQ(ne_send(ac, "!", 1, MSG_OOB, &sent), 0);
    ne_send_str(ac, "d");
    CHECK_EQ(T.lpWSPShutdown(ac, SD_SEND, &err), 0);
    struct sockaddr_storage here = local_address(as), there = local_address(ac);
    /* All of it has arrived once the FIN has. */
    WAIT_FOR(tcp_state(port_of(&here), port_of(&there)) == TCP_CLOSE_WAIT, 10000);
    for (int i = 0; i < ROUNDS; i++) {
        ne_send_str(bc, "x");
        CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
        CHECK(m.wParam == bs);
        CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
        char b;
        CHECK_EQ(ne_recv(bs, &b, 1, 0), 1);
    }
    CHECK_EQ(wsp_netevents_relays() - start_count, ROUNDS);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0); /* and nothing was posted for the others */
}

/* A socket registered for FD_OOB whose descriptor hangs up for good (EPOLLHUP, which epoll
 * always reports) stops being relayed: its own SD_BOTH (one relay), or its own SD_SEND and
 * then the peer's FIN (one relay, FD_CLOSE). Urgent data cannot come after either, and a
 * watch still armed for it had the reactor relay the hang-up again and again. Counted as
 * above. */
TEST(netev_hung_up_socket_registered_for_oob_costs_the_reactor_no_more_relays) {
    start();
    HWND q = WSPCreateMessageQueue();
    WSPMSG m;
    int err = 0;
    SOCKET ac, as, al, bc, bs, bl, cc, cs, cl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &ac, &as, &al);
    ne_pair(WSP_CATALOG_TCP_IPV4, &bc, &bs, &bl);
    ne_pair(WSP_CATALOG_TCP_IPV4, &cc, &cs, &cl);
    CHECK_EQ(T.lpWSPAsyncSelect(as, q, NE_MSG, FD_OOB, &err), 0);
    CHECK_EQ(T.lpWSPAsyncSelect(bs, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPAsyncSelect(cs, q, NE_MSG, FD_OOB | FD_CLOSE, &err), 0);

    unsigned before = wsp_netevents_relays();
    CHECK_EQ(T.lpWSPShutdown(as, SD_BOTH, &err), 0);
    WAIT_FOR(wsp_netevents_relays() >= before + 1, 10000);
    CHECK_EQ(T.lpWSPShutdown(cs, SD_SEND, &err), 0);
    CHECK_EQ(T.lpWSPShutdown(cc, SD_SEND, &err), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == cs);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_CLOSE, 0));
    /* Whatever the hang-ups cost so far, from now on only b's data is relayed. */
    unsigned start_count = wsp_netevents_relays();
    for (int i = 0; i < ROUNDS; i++) {
        ne_send_str(bc, "x");
        CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
        CHECK(m.wParam == bs);
        CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
        char b;
        CHECK_EQ(ne_recv(bs, &b, 1, 0), 1);
    }
    CHECK_EQ(wsp_netevents_relays() - start_count, ROUNDS);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
}

/* Urgent data already there when a socket is selected for FD_OOB is posted by the selecting
 * call itself: the reactor's watch then waits for nothing on it (FD_OOB is raised and not yet
 * re-enabled), and the only relay counted is the other socket's FD_READ. */
TEST(netev_urgent_data_already_there_is_posted_by_the_selecting_call) {
    start();
    HWND q = WSPCreateMessageQueue();
    WSPMSG m;
    int err = 0;
    SOCKET ac, as, al, bc, bs, bl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &ac, &as, &al);
    ne_pair(WSP_CATALOG_TCP_IPV4, &bc, &bs, &bl);
    CHECK_EQ(T.lpWSPAsyncSelect(bs, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(ne_send(ac, "!", 1, MSG_OOB, NULL), 0);
    struct sockaddr_storage here = local_address(as), there = local_address(ac);
    WAIT_FOR(tcp_unread(port_of(&here), port_of(&there)) == 1, 10000);
    unsigned before = wsp_netevents_relays();
    CHECK_EQ(T.lpWSPAsyncSelect(as, q, NE_MSG, FD_OOB, &err), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1); /* posted already */
    CHECK(m.wParam == as);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_OOB, 0));
    ne_send_str(bc, "x");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == bs);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK_EQ(wsp_netevents_relays() - before, 1);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
}

/* Data behind an urgent byte that has not been read: the kernel's unread count (FIONREAD)
 * stops at the urgent mark and says 0, yet the data is there to receive. A selection for
 * FD_READ and FD_OOB posts both itself, and leaves the reactor nothing to relay (the one relay
 * counted is the other socket's FD_READ). */
TEST(netev_data_behind_unread_urgent_data_is_posted_by_the_selecting_call) {
    start();
    HWND q = WSPCreateMessageQueue();
    WSPMSG m;
    int err = 0;
    SOCKET ac, as, al, bc, bs, bl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &ac, &as, &al);
    ne_pair(WSP_CATALOG_TCP_IPV4, &bc, &bs, &bl);
    CHECK_EQ(T.lpWSPAsyncSelect(bs, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(ne_send(ac, "!", 1, MSG_OOB, NULL), 0);
    ne_send_str(ac, "abc");
    struct sockaddr_storage here = local_address(as), there = local_address(ac);
    WAIT_FOR(tcp_unread(port_of(&here), port_of(&there)) == 4, 10000);
    unsigned before = wsp_netevents_relays();
    CHECK_EQ(T.lpWSPAsyncSelect(as, q, NE_MSG, FD_READ | FD_OOB, &err), 0);
    LONG seen = 0;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(WSPGetMessage(q, &m, 0), 1); /* posted already */
        CHECK(m.wParam == as);
        CHECK_EQ(WSAGETSELECTERROR(m.lParam), 0);
        seen |= WSAGETSELECTEVENT(m.lParam);
    }
    CHECK_EQ(seen, FD_READ | FD_OOB);
    ne_send_str(bc, "x");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == bs);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK_EQ(wsp_netevents_relays() - before, 1);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
    char b[4];
    CHECK_EQ(ne_recv(as, b, sizeof b, 0), 3);
    CHECK(memcmp(b, "abc", 3) == 0);
}
