/* 10,000 registered, idle sockets cost no CPU: the reactor sleeps until something happens. */
#include <sys/resource.h>
#include <sys/time.h>

#include "test-netevents.h"

#define IDLE_PAIRS 5000

static long long cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
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
    sleep_ms(100);
    long long before = cpu_us();
    sleep_ms(1000);
    long long used = cpu_us() - before;
    fprintf(stderr, "cpu while idle: %lld us\n", used);
    CHECK(used < 50000);
    CHECK(!ne_signalled(ev, 0));
    /* Still alive: one event on one socket among them all. */
    ne_send_str(cs[IDLE_PAIRS / 2], "wake");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(ss[IDLE_PAIRS / 2], ev, FD_READ, 2000, &ne));
}
