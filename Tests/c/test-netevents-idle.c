/* 10,000 registered, idle sockets cost no CPU: the reactor sleeps until something happens.
 *
 * Measured as wake-ups, not as CPU time: every time a thread of the provider wakes and goes to
 * sleep again counts one voluntary context switch, and a machine's load adds none (it only
 * delays a thread that is running, which an idle one is not). */
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include "test-netevents.h"

#define IDLE_PAIRS 5000

/* The voluntary context switches of every thread but this one (the provider's threads). */
static long long provider_wakeups(void) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    long long sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == (int)getpid())
            continue;
        char path[300], line[128];
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
    long long before = provider_wakeups();
    sleep_ms(1000); /* the quiet second under measure */
    long long woke = provider_wakeups() - before;
    if (woke > 2)
        fprintf(stderr, "the provider's threads woke %lld times in an idle second\n", woke);
    CHECK(woke <= 2); /* a poller would wake hundreds of times */
    CHECK(!ne_signalled(ev, 0));
    /* Still alive: one event on one socket among them all. */
    ne_send_str(cs[IDLE_PAIRS / 2], "wake");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(ss[IDLE_PAIRS / 2], ev, FD_READ, 10000, &ne));
}
