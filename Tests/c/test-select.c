/* lpWSPSelect: each kind of readiness, time-outs and errors. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "internal.h"
#include "test-netevents.h"

static int select1(int which, SOCKET s, long timeout_ms, WSPFD_SET *out) {
    WSPFD_SET sets[3];
    for (int i = 0; i < 3; i++)
        WSP_FD_ZERO(&sets[i]);
    WSP_FD_SET(s, &sets[which]);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int err = 0;
    int rc = T.lpWSPSelect(0, &sets[0], &sets[1], &sets[2], timeout_ms < 0 ? NULL : &tv, &err);
    CHECK(rc != SOCKET_ERROR);
    if (out)
        *out = sets[which];
    return rc;
}

TEST(select_read_data) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSPFD_SET set;
    CHECK_EQ(select1(0, s, 0, &set), 0);
    CHECK_EQ(set.fd_count, 0);
    ne_send_str(c, "x");
    CHECK_EQ(select1(0, s, 2000, &set), 1);
    CHECK_EQ(set.fd_count, 1);
    CHECK(set.fd_array[0] == s);
    CHECK(WSP_FD_ISSET(s, &set));
}

TEST(select_read_end_of_stream) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    CHECK_EQ(select1(0, s, 0, NULL), 0);
    ne_close(c);
    CHECK_EQ(select1(0, s, 2000, NULL), 1);
}

TEST(select_read_listener_backlog) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    CHECK_EQ(select1(0, l, 0, NULL), 0);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    CHECK_EQ(select1(0, l, 2000, NULL), 1);
    int err;
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET);
    CHECK_EQ(select1(0, l, 0, NULL), 0);
}

static struct blocker selecting; /* the main thread, in lpWSPSelect */

/* Connects once the main thread is blocked in its select. */
static void *connect_later(void *arg) {
    struct ne_connector *k = arg;
    wait_blocked(&selecting);
    k->result = connect_to(k->s, &k->addr, k->data, NULL);
    return NULL;
}

/* select1 on this thread, made known to wait_blocked through `selecting`. */
static int select1_here(int which, SOCKET s, long timeout_ms) {
    blocker_enter(&selecting);
    int rc = select1(which, s, timeout_ms, NULL);
    blocker_leave(&selecting);
    return rc;
}

TEST(select_blocked_forever_wakes_for_a_request) {
    start();
    struct ne_connector k = {0};
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &k.addr);
    k.s = new_socket(WSP_CATALOG_CDATA_IPV4);
    k.data = "hello";
    CHECK_EQ(pthread_create(&k.thread, NULL, connect_later, &k), 0);
    CHECK_EQ(select1_here(0, l, -1), 1); /* NULL time-out: until the request is in */
    int err;
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET);
    ne_join_connector(&k);
}

TEST(select_write_connected) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    CHECK_EQ(select1(1, c, 0, NULL), 1);
    SOCKET fresh = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(select1(1, fresh, 0, NULL), 0); /* not connected: not writable */
}

TEST(select_write_when_nonblocking_connect_completes) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, "x", NULL), WSAEWOULDBLOCK);
    /* TCP is up at once, but the connect completes only when the server accepts. */
    CHECK_EQ(select1(1, c, 150, NULL), 0);
    struct ne_acceptor a = {.l = l, .after = &selecting};
    ne_start_acceptor(&a);
    CHECK_EQ(select1_here(1, c, -1), 1);
    pthread_join(a.thread, NULL);
    CHECK(a.result != INVALID_SOCKET);
}

TEST(select_except_urgent_data) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    CHECK_EQ(select1(2, s, 0, NULL), 0);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    CHECK_EQ(select1(2, s, 2000, NULL), 1);
}

TEST(select_except_failed_nonblocking_connect) {
    start();
    struct sockaddr_storage addr = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSPFD_SET w, e;
    WSP_FD_ZERO(&w);
    WSP_FD_ZERO(&e);
    WSP_FD_SET(c, &w);
    WSP_FD_SET(c, &e);
    struct timeval tv = {2, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, NULL, &w, &e, &tv, &err), 1);
    CHECK_EQ(w.fd_count, 0);
    CHECK_EQ(e.fd_count, 1);
    DWORD code = 0;
    int len = sizeof code;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&code, &len, &err), 0);
    CHECK_EQ(code, WSAECONNREFUSED);
}

TEST(select_times_out_with_zero) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    long long t0 = now_ms();
    WSPFD_SET set;
    CHECK_EQ(select1(0, s, 150, &set), 0);
    CHECK(now_ms() - t0 >= 140); /* not before its time; never returning would hang the test */
    CHECK_EQ(set.fd_count, 0);
}

TEST(select_counts_each_set_and_rewrites_them) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    SOCKET idle_c, idle_s, idle_l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &idle_c, &idle_s, &idle_l);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    WSPFD_SET r, w;
    WSP_FD_ZERO(&r);
    WSP_FD_ZERO(&w);
    WSP_FD_SET(idle_s, &r);
    WSP_FD_SET(s, &r);
    WSP_FD_SET(s, &w);
    struct timeval tv = {10, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &r, &w, NULL, &tv, &err), 2); /* s readable and writable */
    CHECK_EQ(r.fd_count, 1);
    CHECK(r.fd_array[0] == s);
    CHECK_EQ(w.fd_count, 1);
    CHECK(w.fd_array[0] == s);
}

/* A set is read no further than its count: one whose last handle ends at an inaccessible page
 * (a program's own smaller set, as wsp.h allows) is read and rewritten without a fault. */
TEST(select_reads_a_set_no_further_than_its_count) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    long page = sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    CHECK(mem != MAP_FAILED);
    CHECK_EQ(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    size_t room = offsetof(WSPFD_SET, fd_array) + sizeof(SOCKET); /* a set of one */
    WSPFD_SET *r = (WSPFD_SET *)(void *)(mem + page - room);
    r->fd_count = 1;
    r->fd_array[0] = s;
    struct timeval tv = {10, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, r, NULL, NULL, &tv, &err), 1);
    CHECK_EQ(r->fd_count, 1);
    CHECK(r->fd_array[0] == s);
    munmap(mem, (size_t)page * 2);
}

/* A connected socket whose connection the kernel dropped with an error (its descriptor
 * disconnected under the provider: an error and a hang-up pending, nothing to read) is
 * readable, as Winsock's select reports a reset connection. */
TEST(select_reports_a_connection_dropped_with_an_error_readable) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    int fd = so->fd;
    wsp_socket_release(so);
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    CHECK_EQ(connect(fd, &unspec, sizeof unspec), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    CHECK_EQ(poll(&p, 1, 0), 1);
    CHECK(p.revents & POLLERR);
    CHECK(!(p.revents & (POLLIN | POLLRDHUP))); /* the premise: no data, no end of stream */
    CHECK_EQ(select1(0, s, 0, NULL), 1);
}

/* The except set lying below the write set in memory is rewritten as any other: a socket
 * that is writable but not exceptional leaves it empty. */
TEST(select_rewrites_an_except_set_placed_below_the_write_set) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSPFD_SET two[2]; /* two[0] the except set, two[1] the write set */
    WSP_FD_ZERO(&two[0]);
    WSP_FD_ZERO(&two[1]);
    WSP_FD_SET(s, &two[0]);
    WSP_FD_SET(s, &two[1]);
    struct timeval tv = {10, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, NULL, &two[1], &two[0], &tv, &err), 1);
    CHECK_EQ(two[1].fd_count, 1);
    CHECK(two[1].fd_array[0] == s);
    CHECK_EQ(two[0].fd_count, 0);
}

TEST(select_errors) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    WSPFD_SET r;
    WSP_FD_ZERO(&r);
    struct timeval tv = {0, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL); /* all sets empty */
    CHECK_EQ(T.lpWSPSelect(0, NULL, NULL, NULL, &tv, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    WSP_FD_SET(s, &r);
    WSP_FD_SET((SOCKET)0x777777, &r);
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    ne_close(s);
    WSP_FD_ZERO(&r);
    WSP_FD_SET(s, &r);
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK); /* closed */
}

/* Without memory for either of its lists (the entries, then the poll array), select fails
 * with WSAENOBUFS and leaves the sets as they were; the next select works. */
TEST(select_without_memory_for_its_lists_is_wsaenobufs) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    for (int nth = 1; nth <= 2; nth++) {
        WSPFD_SET w;
        WSP_FD_ZERO(&w);
        WSP_FD_SET(c, &w);
        struct timeval zero = {0, 0};
        int err = 0;
        FAULT(calloc, .nth = nth, .err = ENOMEM, .this_thread = 1);
        int rc = T.lpWSPSelect(0, NULL, &w, NULL, &zero, &err);
        CHECK_EQ(fault_fired(FAULT_calloc), 1);
        fault_clear();
        CHECK_EQ(rc, SOCKET_ERROR);
        CHECK_EQ(err, WSAENOBUFS);
        CHECK_EQ(w.fd_count, 1);
        CHECK(w.fd_array[0] == c);
        CHECK_EQ(select1(1, c, 0, NULL), 1); /* writable */
    }
}

/* A time-out too long for any deadline waits as a NULL one does, until the request is in:
 * 2^61 s, whose count of milliseconds is a multiple of 2^64, so that a product that
 * overflowed (undefined) would most likely make it no wait at all. */
TEST(select_time_out_beyond_any_deadline_waits_until_ready) {
    start();
    struct ne_connector k = {0};
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &k.addr);
    k.s = new_socket(WSP_CATALOG_CDATA_IPV4);
    k.data = "hello";
    CHECK_EQ(pthread_create(&k.thread, NULL, connect_later, &k), 0);
    WSPFD_SET r;
    WSP_FD_ZERO(&r);
    WSP_FD_SET(l, &r);
    struct timeval tv = {(time_t)1 << 61, 0};
    int err = 0;
    blocker_enter(&selecting);
    int rc = T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err);
    blocker_leave(&selecting);
    CHECK_EQ(rc, 1);
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET);
    ne_join_connector(&k);
}

/* Closes a socket once the main thread is blocked in its select. */
static void *close_later(void *arg) {
    wait_blocked(&selecting);
    ne_close(*(SOCKET *)arg);
    return NULL;
}

TEST(select_wakes_when_a_socket_is_closed_under_it) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, close_later, &l), 0);
    /* Reported, so that the next call sees WSAENOTSOCK. (Closed before the select, the socket
     * would be WSAENOTSOCK at once: wait_blocked rules that order out.) */
    CHECK_EQ(select1_here(0, l, 60000), 1);
    pthread_join(t, NULL);
    WSPFD_SET r;
    WSP_FD_ZERO(&r);
    WSP_FD_SET(l, &r);
    struct timeval zero = {0, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &zero, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    CHECK_EQ(r.fd_count, 1); /* a failed call leaves the sets as they were */
    CHECK(r.fd_array[0] == l);
}

/* A socket closed under the call while in the except set fails the call with WSAENOTSOCK
 * (Windows), wherever it is among the sets' handles: here after one in the read set. */
TEST(select_fails_for_a_socket_closed_under_it_in_the_except_set_after_others) {
    start();
    SOCKET idle = new_socket(WSP_CATALOG_TCP_IPV4);
    SOCKET x = new_socket(WSP_CATALOG_TCP_IPV4);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, close_later, &x), 0);
    WSPFD_SET r, e;
    WSP_FD_ZERO(&r);
    WSP_FD_ZERO(&e);
    WSP_FD_SET(idle, &r);
    WSP_FD_SET(x, &e);
    struct timeval tv = {60, 0};
    int err = 0;
    blocker_enter(&selecting);
    int rc = T.lpWSPSelect(0, &r, NULL, &e, &tv, &err);
    blocker_leave(&selecting);
    pthread_join(t, NULL);
    CHECK_EQ(rc, SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
}

/* With nothing deferred, a select waits out its time in one poll, not in deferral slices. */
TEST(select_waits_in_one_poll_when_nothing_is_deferred) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    FAULT(poll, .nth = 1000000, .this_thread = 1); /* counts this thread's polls, fails none */
    CHECK_EQ(select1(0, s, 400, NULL), 0);
    int polls = fault_calls(FAULT_poll);
    fault_clear();
    CHECK(polls >= 1);
    CHECK(polls <= 2); /* at most one more look when the first poll ends a moment early */
}

/* A select woken by data reports the socket from the poll it waited in: one poll in all.
 * Pins that a socket the wait found readable is not looked at again (a second poll) before
 * the call returns. The wait is held until the data has been sent, so that it is the wait
 * that sees it. */
static SOCKET woken_s = INVALID_SOCKET;
static int woken_rc = -1;

static void *select_until_readable(void *arg) {
    (void)arg;
    woken_rc = select1(0, woken_s, 10000, NULL);
    return NULL;
}

TEST(select_woken_by_data_reports_it_from_its_wait_in_one_poll) {
    start();
    SOCKET c, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &woken_s, &l);
    FAULT(poll, .hold = 1); /* the wait: the only provider thread that polls is the select's */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, select_until_readable, NULL), 0);
    WAIT_FOR(fault_holding() == 1, 10000);
    ne_send_str(c, "x");
    fault_release();
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(woken_rc, 1);
    CHECK_EQ(fault_calls(FAULT_poll), 1);
}

/* Every way out of lpWSPSelect closes what it opened (its wake-up descriptor): ready at once,
 * after waiting, timed out, and failed on a bad handle after taking the good ones. */
TEST(select_leaks_no_descriptor_on_any_path) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int before = open_fds();
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(select1(1, c, 0, NULL), 1);  /* writable at once */
        CHECK_EQ(select1(0, s, 0, NULL), 0);  /* nothing to read: timed out at once */
        CHECK_EQ(select1(0, s, 20, NULL), 0); /* timed out after waiting */
        WSPFD_SET r;
        WSP_FD_ZERO(&r);
        WSP_FD_SET(s, &r);
        WSP_FD_SET((SOCKET)0x777777, &r);
        struct timeval tv = {0, 0};
        int err = 0;
        CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), SOCKET_ERROR);
        CHECK_EQ(err, WSAENOTSOCK);
        CHECK_EQ(open_fds(), before);
    }
    ne_send_str(c, "x");
    CHECK_EQ(select1(0, s, 10000, NULL), 1); /* ready while it waited */
    CHECK_EQ(open_fds(), before);
}

/* A listener with a request waiting is ready at once, whatever the other sockets in the set:
 * here an idle listener after it, and a time-out longer than the test may run. */
TEST(select_ready_listener_is_not_hidden_by_an_idle_one) {
    start();
    struct sockaddr_storage addr;
    SOCKET busy = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET idle = listener(WSP_CATALOG_TCP_IPV4, 4, NULL);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(busy).queued == 1, 10000);
    WSPFD_SET r;
    WSP_FD_ZERO(&r);
    WSP_FD_SET(busy, &r);
    WSP_FD_SET(idle, &r);
    struct timeval tv = {600, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), 1);
    CHECK_EQ(r.fd_count, 1);
    CHECK(r.fd_array[0] == busy);
}

/* A time-out of seconds is seconds; a negative one is WSAEINVAL. */
/* The time-out is rounded up to whole milliseconds: a few microseconds are not zero (select
 * waits, where a zero time-out only looks), and no time-out waits longer than asked, to the
 * millisecond. Seen in the provider's poll calls: the longest time-out they were given. A
 * wait counts from the next whole millisecond (clock.c: it never ends early), so the first
 * poll is given the rounded time-out plus one, or the time-out itself when the clock ticked
 * before the poll (a busy machine): several tries, of which one must see the whole time, and
 * none more. */
TEST(select_time_out_is_rounded_up_to_whole_milliseconds) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    static const struct {
        struct timeval tv;
        int ms;
    } cases[] = {{{0, 0}, 0},       {{0, 1}, 1},           {{0, 999}, 1}, {{0, 1000}, 1},
                 {{0, 1001}, 2},    {{0, 999999}, 1000},   {{1, 1}, 1001}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int whole = 0;
        for (int i = 0; i < 50 && !whole; i++) {
            WSPFD_SET r;
            WSP_FD_ZERO(&r);
            WSP_FD_SET(s, &r);
            struct timeval tv = cases[k].tv;
            int err = 0;
            (void)fault_longest_poll();
            CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), 0);
            int longest = fault_longest_poll();
            CHECK(longest >= 0);
            int full = cases[k].ms ? cases[k].ms + 1 : 0;
            CHECK(longest <= full);
            whole = longest == full;
        }
        CHECK(whole);
    }
}

TEST(select_timeout_of_a_second_and_a_negative_one) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    long long t0 = now_ms();
    WSPFD_SET r;
    WSP_FD_ZERO(&r);
    WSP_FD_SET(s, &r);
    struct timeval tv = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), 0);
    CHECK(now_ms() - t0 >= 990);
    WSP_FD_SET(s, &r);
    struct timeval bad = {-1, 0};
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &bad, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    struct timeval bad_us = {0, -5};
    err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &bad_us, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    struct timeval just_below = {0, -1}; /* the negative nearest zero */
    err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &just_below, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
}

/* A listener with no request, listed before a readable socket, is not reported with it. */
TEST(select_idle_listener_is_not_reported_with_a_readable_socket) {
    start();
    SOCKET idle = listener(WSP_CATALOG_TCP_IPV4, 4, NULL);
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    WSPFD_SET r;
    WSP_FD_ZERO(&r);
    WSP_FD_SET(idle, &r);
    WSP_FD_SET(s, &r);
    struct timeval tv = {600, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err), 1);
    CHECK_EQ(r.fd_count, 1);
    CHECK(r.fd_array[0] == s);
}

/* lpWSPSelect closes the descriptor it waits on even when that is descriptor 0 (a program may
 * run with its standard input closed). */
TEST(select_closes_its_wake_descriptor_when_it_is_descriptor_0) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int saved = dup(0);
    CHECK(saved >= 0);
    CHECK_EQ(close(0), 0); /* the lowest free descriptor: the call's own is 0 */
    CHECK_EQ(select1(0, s, 0, NULL), 0);
    CHECK_EQ(fcntl(0, F_GETFD), -1);
    CHECK_EQ(errno, EBADF);
    CHECK_EQ(dup2(saved, 0), 0);
    close(saved);
}

/* A listener is readable with a request waiting, never writable or exceptional. */
TEST(select_listener_with_a_request_is_only_readable) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(select1(1, l, 0, NULL), 0);
    CHECK_EQ(select1(2, l, 0, NULL), 0);
    CHECK_EQ(select1(0, l, 0, NULL), 1);
}

/* Sends "x" on the socket given once the main thread is blocked in its select. */
static void *send_x_once_selecting(void *arg) {
    wait_blocked(&selecting);
    ne_send_str(*(SOCKET *)arg, "x");
    return NULL;
}

/* A listener with a request waiting, in the write and except sets, is no reason for a select
 * without a time-out to return: it waits for the socket in its read set. */
TEST(select_listener_with_a_request_in_the_write_and_except_sets_does_not_end_the_wait) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    SOCKET c2 = new_socket(WSP_CATALOG_TCP_IPV4);
    struct sockaddr_storage addr = local_address(l);
    CHECK_EQ(connect_to(c2, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    WSPFD_SET r, w, e;
    WSP_FD_ZERO(&r);
    WSP_FD_ZERO(&w);
    WSP_FD_ZERO(&e);
    WSP_FD_SET(s, &r);
    WSP_FD_SET(l, &w);
    WSP_FD_SET(l, &e);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_x_once_selecting, &c), 0);
    int err = 0;
    blocker_enter(&selecting);
    int rc = T.lpWSPSelect(0, &r, &w, &e, NULL, &err);
    blocker_leave(&selecting);
    pthread_join(t, NULL);
    CHECK_EQ(rc, 1);
    CHECK_EQ(r.fd_count, 1);
    CHECK(r.fd_array[0] == s);
    CHECK_EQ(w.fd_count, 0);
    CHECK_EQ(e.fd_count, 0);
}

/* A listener whose only request is being shown to a condition function is not readable; the
 * select waiting on it reports it once a CF_DEFER puts the request back. */
static atomic_int presenting, answer_now;

static int defer_when_told(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                           GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    atomic_store(&presenting, 1);
    long long deadline = now_ms() + 10000;
    while (!atomic_load(&answer_now) && now_ms() < deadline)
        sleep_ms(1);
    return CF_DEFER;
}

static void *accept_deferring(void *arg) {
    int err = 0;
    CHECK(ne_accept(*(SOCKET *)arg, defer_when_told, &err) == INVALID_SOCKET);
    return NULL;
}

static void *answer_once_selecting(void *arg) {
    (void)arg;
    wait_blocked(&selecting);
    atomic_store(&answer_now, 1);
    return NULL;
}

TEST(select_sees_a_request_a_condition_function_defers) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    pthread_t acceptor, answerer;
    CHECK_EQ(pthread_create(&acceptor, NULL, accept_deferring, &l), 0);
    WAIT_FOR(atomic_load(&presenting), 10000);
    CHECK_EQ(pthread_create(&answerer, NULL, answer_once_selecting, NULL), 0);
    CHECK_EQ(select1_here(0, l, 20000), 1);
    pthread_join(answerer, NULL);
    pthread_join(acceptor, NULL);
}

/* While a request is being presented, select looks again every DEFER_SLICE_MS (50), but
 * never waits past its own time-out: with 20 ms, no poll waits longer than that (and the
 * millisecond the deadline is rounded up to). */
TEST(select_looking_again_for_a_presented_request_keeps_to_its_time_out) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    pthread_t acceptor;
    CHECK_EQ(pthread_create(&acceptor, NULL, accept_deferring, &l), 0);
    WAIT_FOR(atomic_load(&presenting), 10000);
    (void)fault_longest_poll(); /* from here on */
    CHECK_EQ(select1(0, l, 20, NULL), 0);
    int longest = fault_longest_poll();
    atomic_store(&answer_now, 1);
    pthread_join(acceptor, NULL);
    CHECK(longest >= 0);
    CHECK(longest <= 21); /* its deadline counts from the next whole millisecond */
}

/* One set passed as both the write and the except set is rewritten once, and its handles are
 * counted once. */
TEST(select_one_set_in_two_places_counts_its_handles_once) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSPFD_SET x;
    WSP_FD_ZERO(&x);
    WSP_FD_SET(s, &x);
    struct timeval zero = {0, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, NULL, &x, &x, &zero, &err), 1);
    CHECK_EQ(x.fd_count, 1);
    CHECK(x.fd_array[0] == s);
}

/* ---- issue #11: a plain-TCP connect that ends while select looks at it ------------------- */

/* A loopback listener of the test's own (no provider) with room for no connection beyond the
 * one queued: a connect's SYN is then dropped and sent again a second later. */
static int raw_listener(struct sockaddr_storage *addr, int backlog) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in *a = (struct sockaddr_in *)addr;
    memset(addr, 0, sizeof *addr);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
    CHECK_EQ(listen(fd, backlog), 0);
    socklen_t len = sizeof *a;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)a, &len), 0);
    return fd;
}

static void *close_fd_once_selecting(void *arg) {
    wait_blocked(&selecting);
    close(*(int *)arg);
    return NULL;
}

/* A plain-TCP connect refused while select waits on it, in both its write and except sets: the
 * socket is exceptional, not writable (its descriptor polls writable, with an error). */
TEST(select_connect_refused_while_it_waits_is_exceptional_not_writable) {
    start();
    struct sockaddr_storage addr;
    int lfd = raw_listener(&addr, 0);
    int first = raw_connect(&addr); /* fills the listener's queue */
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    CHECK_EQ(select1(1, c, 0, NULL), 0); /* its SYN was dropped: still connecting */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, close_fd_once_selecting, &lfd), 0);
    WSPFD_SET w, e;
    WSP_FD_ZERO(&w);
    WSP_FD_ZERO(&e);
    WSP_FD_SET(c, &w);
    WSP_FD_SET(c, &e);
    struct timeval tv = {30, 0}; /* the SYN is sent again after 1 s, then 3 s, ... */
    int err = 0;
    blocker_enter(&selecting);
    int rc = T.lpWSPSelect(0, NULL, &w, &e, &tv, &err);
    blocker_leave(&selecting);
    pthread_join(t, NULL);
    CHECK_EQ(rc, 1);
    CHECK_EQ(w.fd_count, 0);
    CHECK_EQ(e.fd_count, 1);
    DWORD code = 0;
    int len = sizeof code;
    CHECK_EQ(T.lpWSPGetSockOpt(c, SOL_SOCKET, SO_ERROR, (char *)&code, &len, &err), 0);
    CHECK_EQ(code, WSAECONNREFUSED);
    close(first);
}

/* The reactor thread, held in an application's PostMessage upcall until the test lets go. */
static atomic_int reactor_held, reactor_release;

static BOOL hold_the_reactor(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    (void)hWnd, (void)Msg, (void)wParam, (void)lParam;
    atomic_store(&reactor_held, 1);
    long long deadline = now_ms() + 20000;
    while (!atomic_load(&reactor_release) && now_ms() < deadline)
        sleep_ms(1);
    return TRUE;
}

/* Starts the provider with hold_the_reactor as its window-message upcall. */
static void start_with_a_holding_upcall(void) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = hold_the_reactor;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
}

/* A connected pair whose client the reactor posts FD_READ for, held in that post until
 * reactor_release: returns the pair's server end (writable, for a select). */
static SOCKET hold_the_reactor_in_a_post(void) {
    SOCKET c0, s0, l0;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c0, &s0, &l0);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(c0, (HWND)(uintptr_t)0x1234, 0x555, FD_READ, &err), 0);
    ne_send_str(s0, "x");
    WAIT_FOR(atomic_load(&reactor_held), 10000);
    return s0;
}

/* A connect the kernel has finished while nobody in the provider has looked yet (the reactor
 * is busy elsewhere, and select's own first look at the socket fails) is finished by select
 * when it sees the descriptor writable, and reported with the other socket found ready. */
TEST(select_reports_a_connect_the_kernel_finished_with_a_ready_socket) {
    start_with_a_holding_upcall();
    SOCKET s0 = hold_the_reactor_in_a_post();
    int err = 0;

    struct sockaddr_storage addr;
    int lfd = raw_listener(&addr, 4);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    struct pollfd queued = {.fd = lfd, .events = POLLIN};
    CHECK_EQ(poll(&queued, 1, 10000), 1); /* the server has it: the client is connected */

    WSPFD_SET w;
    WSP_FD_ZERO(&w);
    WSP_FD_SET(s0, &w); /* writable */
    WSP_FD_SET(c, &w);
    struct timeval tv = {10, 0};
    FAULT(poll, .nth = 1, .err = ENOMEM, .this_thread = 1); /* select's first look at c */
    int rc = T.lpWSPSelect(0, NULL, &w, NULL, &tv, &err);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    atomic_store(&reactor_release, 1);
    CHECK_EQ(rc, 2);
    CHECK_EQ(w.fd_count, 2);
    CHECK(w.fd_array[0] == s0);
    CHECK(w.fd_array[1] == c);
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    close(afd);
    close(lfd);
}

/* As above with a connect the kernel refused: the socket found ready in the same pass is
 * reported at once, in that pass (three looks: the one that fails, the wait, the look that
 * finishes the connect), without another pass for the refused one. */
TEST(select_reports_a_ready_socket_with_a_connect_the_kernel_refused_in_one_pass) {
    start_with_a_holding_upcall();
    SOCKET s0 = hold_the_reactor_in_a_post();
    int err = 0;

    struct sockaddr_storage addr = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    struct wsp_socket *so = wsp_socket_acquire(c, &err);
    CHECK(so != NULL);
    struct pollfd refused = {.fd = so->fd, .events = POLLOUT};
    wsp_socket_release(so);
    CHECK_EQ(poll(&refused, 1, 10000), 1); /* the kernel has the refusal (SO_ERROR untaken) */
    CHECK(refused.revents & POLLERR);

    WSPFD_SET w;
    WSP_FD_ZERO(&w);
    WSP_FD_SET(s0, &w); /* writable */
    WSP_FD_SET(c, &w);
    struct timeval tv = {10, 0};
    FAULT(poll, .nth = 1, .err = ENOMEM, .this_thread = 1); /* select's first look at c */
    int rc = T.lpWSPSelect(0, NULL, &w, NULL, &tv, &err);
    int looks = fault_calls(FAULT_poll);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    atomic_store(&reactor_release, 1);
    CHECK_EQ(rc, 1);
    CHECK_EQ(w.fd_count, 1);
    CHECK(w.fd_array[0] == s0);
    CHECK_EQ(looks, 3);
}

/* Two connects the kernel finished under select's poll, the first accepted, the second
 * refused: the first is writable, the refused one is not, though it is looked at right after
 * the first was found writable. */
TEST(select_reports_only_the_accepted_one_of_two_connects_finished_under_its_poll) {
    start_with_a_holding_upcall();
    hold_the_reactor_in_a_post();
    int err = 0;

    struct sockaddr_storage addr, dead = dead_address();
    int lfd = raw_listener(&addr, 4);
    SOCKET ok = new_socket(WSP_CATALOG_TCP_IPV4), refused = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(ok, 1);
    ne_fionbio(refused, 1);
    CHECK_EQ(ne_connect(ok, &addr, NULL, NULL), WSAEWOULDBLOCK);
    CHECK_EQ(ne_connect(refused, &dead, NULL, NULL), WSAEWOULDBLOCK);
    struct pollfd queued = {.fd = lfd, .events = POLLIN};
    CHECK_EQ(poll(&queued, 1, 10000), 1); /* the server has it: ok is connected */
    struct wsp_socket *so = wsp_socket_acquire(refused, &err);
    CHECK(so != NULL);
    struct pollfd ref = {.fd = so->fd, .events = POLLOUT};
    wsp_socket_release(so);
    CHECK_EQ(poll(&ref, 1, 10000), 1); /* the kernel has the refusal (SO_ERROR untaken) */
    CHECK(ref.revents & POLLERR);

    WSPFD_SET w;
    WSP_FD_ZERO(&w);
    WSP_FD_SET(ok, &w);
    WSP_FD_SET(refused, &w);
    struct timeval tv = {0, 0};
    FAULT(poll, .nth = 1, .times = 2, .err = ENOMEM, .this_thread = 1); /* the first looks */
    int rc = T.lpWSPSelect(0, NULL, &w, NULL, &tv, &err);
    CHECK_EQ(fault_fired(FAULT_poll), 2);
    fault_clear();
    atomic_store(&reactor_release, 1);
    CHECK_EQ(rc, 1);
    CHECK_EQ(w.fd_count, 1);
    CHECK(w.fd_array[0] == ok);
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    close(afd);
    close(lfd);
}

/* As select_sees_a_request_a_condition_function_defers, with no time-out at all: the select
 * still looks again while the request is being presented, and reports it once deferred. */
TEST(select_without_a_time_out_sees_a_request_a_condition_function_defers) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    pthread_t acceptor, answerer;
    CHECK_EQ(pthread_create(&acceptor, NULL, accept_deferring, &l), 0);
    WAIT_FOR(atomic_load(&presenting), 10000);
    CHECK_EQ(pthread_create(&answerer, NULL, answer_once_selecting, NULL), 0);
    CHECK_EQ(select1_here(0, l, -1), 1);
    pthread_join(answerer, NULL);
    pthread_join(acceptor, NULL);
}

/* Tries a non-blocking accept once the main thread is blocked in its select: it finds nothing
 * (WSAEWOULDBLOCK), but wakes the select to look again. */
static void *accept_nothing_once_selecting(void *arg) {
    wait_blocked(&selecting);
    int err = 0;
    CHECK(ne_accept(*(SOCKET *)arg, NULL, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    return NULL;
}

/* A select woken for nothing (the listener's backlog may have changed, but holds nothing)
 * looks once more and waits out the rest of its time in one more poll, without spinning. */
TEST(select_woken_for_nothing_waits_out_its_time_in_one_more_poll) {
    start();
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, NULL);
    ne_fionbio(l, 1);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, accept_nothing_once_selecting, &l), 0);
    FAULT(poll, .nth = 1000000, .this_thread = 1); /* counts this thread's polls, fails none */
    CHECK_EQ(select1_here(0, l, 400), 0);
    int polls = fault_calls(FAULT_poll);
    fault_clear();
    pthread_join(t, NULL);
    CHECK(polls >= 2);
    CHECK(polls <= 3); /* at most one more look when a poll ends a moment early */
}

/* As above with the connecting socket alone: the pass whose poll saw the connect end reports
 * it. select looks four times (the look that fails, the wait, the look that finishes the
 * connect, the look at the connected descriptor), not a fifth for another pass. */
static void connect_finished_under_the_poll_of_a_select_with(struct timeval tv) {
    start_with_a_holding_upcall();
    hold_the_reactor_in_a_post();
    int err = 0;

    struct sockaddr_storage addr;
    int lfd = raw_listener(&addr, 4);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    struct pollfd queued = {.fd = lfd, .events = POLLIN};
    CHECK_EQ(poll(&queued, 1, 10000), 1); /* the server has it: the client is connected */

    WSPFD_SET w;
    WSP_FD_ZERO(&w);
    WSP_FD_SET(c, &w);
    FAULT(poll, .nth = 1, .err = ENOMEM, .this_thread = 1); /* select's first look at c */
    int rc = T.lpWSPSelect(0, NULL, &w, NULL, &tv, &err);
    int looks = fault_calls(FAULT_poll);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    atomic_store(&reactor_release, 1);
    CHECK_EQ(rc, 1);
    CHECK_EQ(w.fd_count, 1);
    CHECK(w.fd_array[0] == c);
    CHECK_EQ(looks, 4);
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    close(afd);
    close(lfd);
}

TEST(select_reports_a_connect_finished_under_its_poll_in_the_same_pass) {
    connect_finished_under_the_poll_of_a_select_with((struct timeval){10, 0});
}

/* The same with a zero time-out: its one pass, whose poll saw the connect end, reports it
 * (there is no other pass to). */
TEST(select_with_a_zero_time_out_reports_a_connect_finished_under_its_poll) {
    connect_finished_under_the_poll_of_a_select_with((struct timeval){0, 0});
}

static SOCKET later_sender;
static void *send_once_selecting(void *arg) {
    (void)arg;
    wait_blocked(&selecting);
    ne_send_str(later_sender, "y");
    return NULL;
}

/* A select without a time-out, woken by data that came while it was asleep, sleeps in its
 * first poll: its wake-up descriptor starts empty, so that poll does not end at once. */
TEST(select_without_a_time_out_sleeps_in_its_first_poll) {
    start();
    SOCKET s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &later_sender, &s, &l);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_once_selecting, NULL), 0);
    FAULT(poll, .nth = 1000000, .this_thread = 1); /* counts this thread's polls, fails none */
    blocker_enter(&selecting);
    int rc = select1(0, s, -1, NULL);
    blocker_leave(&selecting);
    int polls = fault_calls(FAULT_poll);
    fault_clear();
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(rc, 1);
    CHECK_EQ(polls, 1);
}

/* A plain-TCP connect refused while select, with no time-out, waits on it in its write set
 * alone: the socket is not writable, so nothing is ready yet and select waits on, until
 * another socket turns readable. */
TEST(select_connect_refused_under_its_poll_in_the_write_set_alone_reports_nothing) {
    start_with_a_holding_upcall();
    SOCKET c1, s1, l1;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c1, &s1, &l1); /* s1 turns readable later */
    hold_the_reactor_in_a_post();
    int err = 0;

    struct sockaddr_storage addr = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    later_sender = c1;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_once_selecting, NULL), 0);
    WSPFD_SET r, w;
    WSP_FD_ZERO(&r);
    WSP_FD_ZERO(&w);
    WSP_FD_SET(s1, &r);
    WSP_FD_SET(c, &w);
    FAULT(poll, .nth = 1, .err = ENOMEM, .this_thread = 1); /* select's first look at c */
    blocker_enter(&selecting);
    int rc = T.lpWSPSelect(0, &r, &w, NULL, NULL, &err);
    blocker_leave(&selecting);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    atomic_store(&reactor_release, 1);
    pthread_join(t, NULL);
    CHECK_EQ(rc, 1);
    CHECK_EQ(r.fd_count, 1);
    CHECK(r.fd_array[0] == s1);
    CHECK_EQ(w.fd_count, 0);
}

/* Two selects waiting on one listener at once, each linked on it: one leaving, or one more
 * joining, unlinks or links only itself, so a request still wakes every select waiting. */
static SOCKET two_l, two_x, two_xpeer;
static struct blocker two_first, two_second, two_main;
static int two_rc[2];
static WSPFD_SET two_out[2];

static int select_read(SOCKET a, SOCKET b, WSPFD_SET *out) {
    WSP_FD_ZERO(out);
    WSP_FD_SET(a, out);
    if (b != INVALID_SOCKET)
        WSP_FD_SET(b, out);
    struct timeval tv = {10, 0};
    int err = 0;
    return T.lpWSPSelect(0, out, NULL, NULL, &tv, &err);
}

/* The other select: first on the listener and x (older than the main thread's), then, once x
 * ended it, on the listener alone (newer). */
static void *select_twice(void *arg) {
    (void)arg;
    blocker_enter(&two_first);
    two_rc[0] = select_read(two_l, two_x, &two_out[0]);
    blocker_leave(&two_first);
    blocker_enter(&two_second);
    two_rc[1] = select_read(two_l, INVALID_SOCKET, &two_out[1]);
    blocker_leave(&two_second);
    return NULL;
}

static void *drive_the_selects(void *arg) {
    struct sockaddr_storage *addr = arg;
    wait_blocked(&two_main);
    ne_send_str(two_xpeer, "x"); /* ends the other thread's first select */
    wait_blocked(&two_second);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, addr, NULL, NULL), 0); /* a request: wakes both selects */
    return NULL;
}

TEST(select_two_at_once_on_one_listener_each_link_only_themselves) {
    start();
    struct sockaddr_storage addr;
    two_l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET xl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &two_xpeer, &two_x, &xl);
    pthread_t other, driver;
    CHECK_EQ(pthread_create(&other, NULL, select_twice, NULL), 0);
    wait_blocked(&two_first); /* linked on the listener before the main thread */
    CHECK_EQ(pthread_create(&driver, NULL, drive_the_selects, &addr), 0);
    WSPFD_SET mine;
    blocker_enter(&two_main);
    int rc = select_read(two_l, INVALID_SOCKET, &mine);
    blocker_leave(&two_main);
    pthread_join(driver, NULL);
    pthread_join(other, NULL);
    CHECK_EQ(two_rc[0], 1);
    CHECK(two_out[0].fd_count == 1 && two_out[0].fd_array[0] == two_x);
    CHECK_EQ(rc, 1);
    CHECK(mine.fd_count == 1 && mine.fd_array[0] == two_l);
    CHECK_EQ(two_rc[1], 1);
    CHECK(two_out[1].fd_count == 1 && two_out[1].fd_array[0] == two_l);
}

/* As select_reports_a_connect_finished_under_its_poll_in_the_same_pass with the socket in the
 * except set alone: connected, it has no urgent data, so the look at it does not wait for
 * any, and select times out with nothing. */
TEST(select_connect_finished_under_its_poll_in_the_except_set_is_not_exceptional) {
    start_with_a_holding_upcall();
    hold_the_reactor_in_a_post();
    int err = 0;

    struct sockaddr_storage addr;
    int lfd = raw_listener(&addr, 4);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    struct pollfd queued = {.fd = lfd, .events = POLLIN};
    CHECK_EQ(poll(&queued, 1, 10000), 1); /* the server has it: the client is connected */

    WSPFD_SET e;
    WSP_FD_ZERO(&e);
    WSP_FD_SET(c, &e);
    struct timeval tv = {0, 200000};
    FAULT(poll, .nth = 1, .err = ENOMEM, .this_thread = 1); /* select's first look at c */
    int rc = T.lpWSPSelect(0, NULL, NULL, &e, &tv, &err);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    atomic_store(&reactor_release, 1);
    CHECK_EQ(rc, 0);
    CHECK_EQ(e.fd_count, 0);
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    close(afd);
    close(lfd);
}

/* Descriptor 0 is a descriptor like any other: a select in a process without standard input
 * gets it for its wake-up descriptor, works, and closes it. */
TEST(select_on_descriptor_0_works) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_send_str(c, "x");
    CHECK_EQ(close(0), 0);
    errno = EBADF; /* left by some earlier call: no failure of the select's own */
    CHECK_EQ(select1(0, s, 10000, NULL), 1);
    CHECK_EQ(fcntl(0, F_GETFD), -1); /* the select's own descriptor, closed */
}

/* After the last cleanup, select fails with WSANOTINITIALISED before it looks at its sets. */
TEST(select_after_the_last_cleanup_is_wsanotinitialised) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    WSPFD_SET set;
    WSP_FD_ZERO(&set);
    WSP_FD_SET(s, &set);
    struct timeval zero = {0, 0};
    err = 0;
    CHECK_EQ(T.lpWSPSelect(0, &set, NULL, NULL, &zero, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSANOTINITIALISED);
}
