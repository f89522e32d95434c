/* WSPRunOnEventThread: an application's jobs run on the provider's event thread, in order,
 * after the event being handled (no provider lock held: a job may call the provider), and none
 * is lost to the last cleanup. The event thread never waits: the calls that would fail there
 * with WSAEWOULDBLOCK. A job may end the provider (the thread exits once the job returns) and
 * start it again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backlog.h"
#include "faults.h"
#include "handshake.h"
#include "internal.h"
#include "netevents.h"
#include "support.h"

/* The event thread names itself "wsp-reactor". */
static int on_event_thread(void) {
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    return strcmp(name, "wsp-reactor") == 0;
}

#define JOBS 200

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static int seen[JOBS], seen_count, off_thread;

static void record(void *context) {
    pthread_mutex_lock(&seen_lock);
    if (seen_count < JOBS)
        seen[seen_count++] = (int)(intptr_t)context;
    if (!on_event_thread())
        off_thread++;
    pthread_mutex_unlock(&seen_lock);
}

static int seen_now(void) {
    pthread_mutex_lock(&seen_lock);
    int n = seen_count;
    pthread_mutex_unlock(&seen_lock);
    return n;
}

TEST(event_thread_refuses_jobs_without_a_provider_and_without_a_function) {
    CHECK_EQ(WSPRunOnEventThread(record, NULL), WSANOTINITIALISED);
    start();
    CHECK_EQ(WSPRunOnEventThread(NULL, NULL), WSAEFAULT);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(WSPRunOnEventThread(record, NULL), WSANOTINITIALISED);
    CHECK_EQ(seen_now(), 0);
}

/* Jobs from another thread run on the event thread, each once, in the order given. */
TEST(event_thread_runs_jobs_in_order_on_its_thread) {
    start();
    for (int i = 0; i < JOBS; i++)
        CHECK_EQ(WSPRunOnEventThread(record, (void *)(intptr_t)i), 0);
    WAIT_FOR(seen_now() == JOBS, 10000);
    for (int i = 0; i < JOBS; i++)
        CHECK_EQ(seen[i], i);
    CHECK_EQ(off_thread, 0);
}

/* The queue of jobs waiting grows by doubling, from room for 16: a burst of n jobs handed
 * over while the thread is busy costs about log2(n / 16) allocations, not one per job. Pinned
 * by counting the provider's reallocs on the handing-over thread while a job holds the event
 * thread (the queue it took was swapped for an empty one). */
static atomic_int holder_running, holder_let_go, counted_run;

static void hold_event_thread(void *context) {
    (void)context;
    atomic_store(&holder_running, 1);
    long long deadline = now_ms() + 10000; /* only turns a hang into a failure */
    while (!atomic_load(&holder_let_go) && now_ms() < deadline)
        sleep_ms(1);
}

static void count_run(void *context) {
    (void)context;
    atomic_fetch_add(&counted_run, 1);
}

TEST(event_thread_job_queue_grows_by_doubling_from_sixteen) {
    start();
    CHECK_EQ(WSPRunOnEventThread(hold_event_thread, NULL), 0);
    WAIT_FOR(atomic_load(&holder_running), 10000);
    FAULT(realloc, .nth = 1000000, .this_thread = 1); /* counts, fails none */
    int grown_at[65];
    for (int i = 1; i <= 64; i++) {
        CHECK_EQ(WSPRunOnEventThread(count_run, NULL), 0);
        grown_at[i] = fault_calls(FAULT_realloc);
    }
    fault_clear();
    CHECK_EQ(grown_at[1], 1);  /* room for 16 */
    CHECK_EQ(grown_at[16], 1);
    CHECK_EQ(grown_at[17], 2); /* 32 */
    CHECK_EQ(grown_at[32], 2);
    CHECK_EQ(grown_at[33], 3); /* 64 */
    CHECK_EQ(grown_at[64], 3);
    atomic_store(&holder_let_go, 1);
    WAIT_FOR(atomic_load(&counted_run) == 64, 10000);
}

/* A job the queue has no room for (its growth fails) is refused with WSAENOBUFS and never
 * runs; the queue takes the next one as before. */
TEST(event_thread_job_without_room_is_refused_and_the_queue_goes_on) {
    start();
    FAULT(realloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(WSPRunOnEventThread(record, (void *)(intptr_t)0), WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_realloc), 1);
    fault_clear();
    CHECK_EQ(WSPRunOnEventThread(record, (void *)(intptr_t)1), 0);
    WAIT_FOR(seen_now() == 1, 10000);
    CHECK_EQ(seen[0], 1);
}

/* Only the job handed over to an empty queue wakes the event thread: one that finds others
 * waiting knows it awake already (they wake it, or it runs them before it sleeps). Pinned by
 * the reactor's count of wake-ups written, while a job holds the thread and nothing else goes
 * on in the process. */
TEST(event_thread_jobs_handed_over_behind_a_waiting_one_make_no_wake_up) {
    start();
    CHECK_EQ(WSPRunOnEventThread(hold_event_thread, NULL), 0);
    WAIT_FOR(atomic_load(&holder_running), 10000);
    unsigned before = wsp_reactor_wakes();
    for (int i = 0; i < 3; i++)
        CHECK_EQ(WSPRunOnEventThread(count_run, NULL), 0);
    CHECK_EQ(wsp_reactor_wakes(), before + 1);
    atomic_store(&holder_let_go, 1);
    WAIT_FOR(atomic_load(&counted_run) == 3, 10000);
}

/* A job handed over from the event thread itself (from a job, as a resumed task does) runs
 * after the one that handed it over, not inside it. */
static atomic_int depth, deepest, chained;

static void chain(void *context) {
    int left = (int)(intptr_t)context;
    int d = atomic_fetch_add(&depth, 1) + 1;
    if (d > atomic_load(&deepest))
        atomic_store(&deepest, d);
    if (left > 0)
        CHECK_EQ(WSPRunOnEventThread(chain, (void *)(intptr_t)(left - 1)), 0);
    atomic_fetch_add(&chained, 1);
    atomic_fetch_sub(&depth, 1);
}

TEST(event_thread_runs_a_job_handed_over_from_a_job_after_it) {
    start();
    CHECK_EQ(WSPRunOnEventThread(chain, (void *)(intptr_t)50), 0);
    WAIT_FOR(atomic_load(&chained) == 51, 10000);
    CHECK_EQ(atomic_load(&deepest), 1);
}

/* Jobs a job hands over go to a queue of their own, not into the batch being run: the jobs
 * taken with it still run, each once, and the new ones after them. The first two jobs are
 * handed over while another holds the thread, so that they are taken together. */
static void record_and_hand_over_two(void *context) {
    record(context);
    CHECK_EQ(WSPRunOnEventThread(record, (void *)(intptr_t)2), 0);
    CHECK_EQ(WSPRunOnEventThread(record, (void *)(intptr_t)3), 0);
}

TEST(event_thread_jobs_handed_over_from_a_job_leave_the_rest_of_its_batch_alone) {
    start();
    CHECK_EQ(WSPRunOnEventThread(hold_event_thread, NULL), 0);
    WAIT_FOR(atomic_load(&holder_running), 10000);
    CHECK_EQ(WSPRunOnEventThread(record_and_hand_over_two, (void *)(intptr_t)0), 0);
    CHECK_EQ(WSPRunOnEventThread(record, (void *)(intptr_t)1), 0);
    atomic_store(&holder_let_go, 1);
    WAIT_FOR(seen_now() == 4, 10000);
    CHECK_EQ(WSPRunOnEventThread(record, (void *)(intptr_t)4), 0); /* runs after any other */
    WAIT_FOR(seen_now() == 5, 10000);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(seen[i], i);
    CHECK_EQ(off_thread, 0);
}

/* A job handed over from the event thread waits for the next pass, whose look at the sockets
 * does not sleep: from the first job of a chain to the last, the thread makes no epoll_wait
 * that could sleep. Each job of the chain notes the count, the last one compares. */
static atomic_int sleeps_at_first = -1, sleeps_at_last = -1, relay_done;

static void relay(void *context) {
    int left = (int)(intptr_t)context;
    if (atomic_load(&sleeps_at_first) < 0)
        atomic_store(&sleeps_at_first, fault_sleeping_epoll_waits());
    if (left > 0 && WSPRunOnEventThread(relay, (void *)(intptr_t)(left - 1)) == 0)
        return;
    atomic_store(&sleeps_at_last, fault_sleeping_epoll_waits());
    atomic_store(&relay_done, left == 0 ? 1 : -1);
}

TEST(event_thread_job_handed_over_from_a_job_runs_without_a_sleep_between) {
    start();
    CHECK_EQ(WSPRunOnEventThread(relay, (void *)(intptr_t)10), 0);
    WAIT_FOR(atomic_load(&relay_done) != 0, 10000);
    CHECK_EQ(atomic_load(&relay_done), 1);
    CHECK_EQ(atomic_load(&sleeps_at_last), atomic_load(&sleeps_at_first));
}

/* A job may call the provider: it runs with no provider lock held. */
static SOCKET made = INVALID_SOCKET;
static atomic_int made_done;

static void make_and_close(void *context) {
    (void)context;
    WSAPROTOCOL_INFO info;
    memset(&info, 0, sizeof info);
    info.dwCatalogEntryId = WSP_CATALOG_CDATA_IPV4;
    int err = 0;
    made = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    if (made != INVALID_SOCKET && T.lpWSPCloseSocket(made, &err) == 0)
        atomic_store(&made_done, 1);
    else
        atomic_store(&made_done, -1);
}

TEST(event_thread_job_may_call_the_provider) {
    start();
    int before = provider_fds();
    CHECK_EQ(WSPRunOnEventThread(make_and_close, NULL), 0);
    WAIT_FOR(atomic_load(&made_done) != 0, 10000);
    CHECK_EQ(atomic_load(&made_done), 1);
    CHECK_EQ(provider_fds(), before);
}

/* The async pattern: an upcall (FD_ACCEPT, raised on the event thread under the listener's
 * lock) hands a job over; the job accepts. Were it run inside the upcall it would wait for the
 * lock its own thread holds. */
static SOCKET upcall_listener = INVALID_SOCKET;
static atomic_int accepted_on_event_thread;

static void accept_job(void *context) {
    (void)context;
    int err = 0;
    SOCKET a = T.lpWSPAccept(upcall_listener, NULL, NULL, NULL, 0, &err);
    if (a != INVALID_SOCKET) {
        T.lpWSPCloseSocket(a, &err);
        atomic_store(&accepted_on_event_thread, on_event_thread() ? 1 : -1);
    }
}

static BOOL post_accept_job(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    (void)hWnd, (void)Msg, (void)wParam;
    if (WSAGETSELECTEVENT(lParam) == FD_ACCEPT)
        CHECK_EQ(WSPRunOnEventThread(accept_job, NULL), 0);
    return TRUE;
}

TEST(event_thread_job_handed_over_by_an_upcall_accepts) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = post_accept_job;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    struct sockaddr_storage addr;
    upcall_listener = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(upcall_listener, (HWND)(uintptr_t)1, 0x401, FD_ACCEPT, &err), 0);
    WSABUF caller = {1, "x"};
    struct async_connect ac = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                               .caller = &caller};
    async_connect_start(&ac);
    CHECK_EQ(async_connect_join(&ac), 0);
    WAIT_FOR(atomic_load(&accepted_on_event_thread) != 0, 10000);
    CHECK_EQ(atomic_load(&accepted_on_event_thread), 1);
    close_socket(ac.s);
    close_socket(upcall_listener);
}

/* An async server's accept: woken by FD_ACCEPT for a request the reactor read whole, it asks
 * the kernel about the client once, after its condition function, as a blocked accept woken
 * for it does (the look before would find the client the reactor has just read from). The
 * event thread is held in a job until the request waits whole in the kernel, so that the
 * reactor reads it in one go; the accept's job runs before any timer could start watching
 * the request. */
static SOCKET fresh_listener = INVALID_SOCKET;
static atomic_int fresh_outcome; /* 1 + the looks at the client: 0 until the accept ran */
static atomic_int holding, held;

static int accept_any(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                      GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_ACCEPT;
}

static void hold_the_thread(void *context) {
    (void)context;
    atomic_store(&held, 1);
    WAIT_FOR(!atomic_load(&holding), 10000);
}

static void accept_fresh(void *context) {
    (void)context;
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(fresh_listener, &err);
    CHECK(so != NULL);
    uint64_t before = wsp_listener_client_looks(so);
    SOCKET a = T.lpWSPAccept(fresh_listener, NULL, NULL, accept_any, 0, &err);
    CHECK(a != INVALID_SOCKET);
    atomic_store(&fresh_outcome, 1 + (int)(wsp_listener_client_looks(so) - before));
    wsp_socket_release(so);
    T.lpWSPCloseSocket(a, &err);
}

static BOOL post_accept_fresh(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    (void)hWnd, (void)Msg, (void)wParam;
    if (WSAGETSELECTEVENT(lParam) == FD_ACCEPT)
        CHECK_EQ(WSPRunOnEventThread(accept_fresh, NULL), 0);
    return TRUE;
}

TEST(event_thread_accept_woken_by_fd_accept_looks_at_a_fresh_client_once) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = post_accept_fresh;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    struct sockaddr_storage addr;
    fresh_listener = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(fresh_listener, (HWND)(uintptr_t)1, 0x401, FD_ACCEPT, &err), 0);
    atomic_store(&holding, 1);
    CHECK_EQ(WSPRunOnEventThread(hold_the_thread, NULL), 0);
    WAIT_FOR(atomic_load(&held), 10000);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0}; /* version 1, no data */
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), (ssize_t)sizeof request);
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&mine, &len), 0);
    WAIT_FOR(tcp_unread(port_of(&addr), ntohs(mine.sin_port)) == (int)sizeof request, 10000);
    atomic_store(&holding, 0);
    WAIT_FOR(atomic_load(&fresh_outcome) != 0, 10000);
    CHECK_EQ(atomic_load(&fresh_outcome), 2); /* one look */
    close(fd);
    close_socket(fresh_listener);
}

/* The same hand-off, once the reactor has started watching the request (its fresh-request
 * delay passed before an accept came): the accept then asks the kernel about the client before
 * its condition function too, as for any request the reactor watches. The event thread is held
 * until the request waits whole in the kernel, as above; the watch is seen as the reactor's
 * epoll_ctl call that adds it. */
TEST(event_thread_fd_accept_hand_off_of_a_request_watched_since_looks_twice) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    WSAEVENT ev = WSACreateEvent();
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    atomic_store(&holding, 1);
    CHECK_EQ(WSPRunOnEventThread(hold_the_thread, NULL), 0);
    WAIT_FOR(atomic_load(&held), 10000);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0}; /* version 1, no data */
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), (ssize_t)sizeof request);
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&mine, &len), 0);
    WAIT_FOR(tcp_unread(port_of(&addr), ntohs(mine.sin_port)) == (int)sizeof request, 10000);
    FAULT(epoll_ctl, .nth = 1 << 30); /* counts the calls, fails none */
    atomic_store(&holding, 0);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    WAIT_FOR(fault_calls(FAULT_epoll_ctl) == 1, 10000); /* the request's watch */
    uint64_t looks = wsp_listener_client_looks(so);
    SOCKET a = T.lpWSPAccept(l, NULL, NULL, accept_any, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(wsp_listener_client_looks(so) - looks, 2); /* before and after the function */
    fault_clear();
    wsp_socket_release(so);
    close_socket(a);
    close(fd);
    close_socket(l);
    WSACloseEvent(ev);
}

/* As hold_the_thread (while holding_two is set), once the listener (in context) has two
 * requests in its backlog; before, it hands itself over to run after the next event. */
static atomic_int holding_two;

static void hold_once_two_wait(void *context) {
    if (stats_of(*(SOCKET *)context).queued < 2) {
        CHECK_EQ(WSPRunOnEventThread(hold_once_two_wait, context), 0);
        return;
    }
    atomic_store(&held, 1);
    WAIT_FOR(!atomic_load(&holding_two), 10000);
}

/* The hand-off to the accept that FD_ACCEPT brings goes to the first request admitted
 * unwatched, even behind one the reactor read in pieces (and so watches): an accept that
 * finds the older one's client gone looks at the fresh one only after its condition function.
 * The event thread is held from the fresh one's arrival to the accept: the older one's client
 * leaves unnoticed by the reactor, and no timer starts watching the fresh one. */
TEST(event_thread_fd_accept_hand_off_skips_a_request_the_reactor_watches) {
    start();
    struct sockaddr_storage addr;
    static SOCKET l;
    l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    WSAEVENT ev = WSACreateEvent();
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0}; /* version 1, no data */
    int older = raw_connect(&addr);
    wait_taken_from_kernel(&addr, older); /* taken before its request: watched */
    CHECK_EQ(send(older, request, sizeof request, MSG_NOSIGNAL), (ssize_t)sizeof request);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    atomic_store(&holding, 1);
    CHECK_EQ(WSPRunOnEventThread(hold_the_thread, NULL), 0);
    WAIT_FOR(atomic_load(&held), 10000);
    int fresh = raw_connect(&addr);
    CHECK_EQ(send(fresh, request, sizeof request, MSG_NOSIGNAL), (ssize_t)sizeof request);
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    CHECK_EQ(getsockname(fresh, (struct sockaddr *)&mine, &len), 0);
    WAIT_FOR(tcp_unread(port_of(&addr), ntohs(mine.sin_port)) == (int)sizeof request, 10000);
    atomic_store(&held, 0);
    atomic_store(&holding_two, 1);
    CHECK_EQ(WSPRunOnEventThread(hold_once_two_wait, &l), 0);
    atomic_store(&holding, 0); /* the first hold ends; the second starts once both wait */
    WAIT_FOR(atomic_load(&held), 10000);
    struct sockaddr_in older_end;
    len = sizeof older_end;
    CHECK_EQ(getsockname(older, (struct sockaddr *)&older_end, &len), 0);
    close(older);
    WAIT_FOR(tcp_state(port_of(&addr), ntohs(older_end.sin_port)) == TCP_CLOSE_WAIT, 10000);
    uint64_t looks = wsp_listener_client_looks(so);
    SOCKET a = T.lpWSPAccept(l, NULL, NULL, accept_any, 0, &err);
    CHECK(a != INVALID_SOCKET);
    /* The older one's client, found gone, then the fresh one's after the function. */
    CHECK_EQ(wsp_listener_client_looks(so) - looks, 2);
    CHECK_EQ(stats_of(l).withdrawn, 1);
    atomic_store(&holding_two, 0);
    wsp_socket_release(so);
    close_socket(a);
    close(fresh);
    close_socket(l);
    WSACloseEvent(ev);
}

/* Two fresh requests whose watches are both due when the listener's timer fires are both
 * watched in that one pass: the timer goes through the whole backlog. The event thread is held
 * while both arrive whole (so that neither is watched at once) and then until both watches are
 * due (a fresh request's starts 10 ms after it was queued; 50 ms pass here). */
TEST(event_thread_fresh_requests_due_together_are_watched_in_one_timer_pass) {
    start();
    struct sockaddr_storage addr;
    static SOCKET l;
    l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0}; /* version 1, no data */
    atomic_store(&holding, 1);
    CHECK_EQ(WSPRunOnEventThread(hold_the_thread, NULL), 0);
    WAIT_FOR(atomic_load(&held), 10000);
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = raw_connect(&addr);
        CHECK_EQ(send(fds[i], request, sizeof request, MSG_NOSIGNAL), (ssize_t)sizeof request);
        struct sockaddr_in mine;
        socklen_t len = sizeof mine;
        CHECK_EQ(getsockname(fds[i], (struct sockaddr *)&mine, &len), 0);
        WAIT_FOR(tcp_unread(port_of(&addr), ntohs(mine.sin_port)) == (int)sizeof request,
                 10000);
    }
    atomic_store(&held, 0);
    atomic_store(&holding_two, 1);
    CHECK_EQ(WSPRunOnEventThread(hold_once_two_wait, &l), 0);
    atomic_store(&holding, 0); /* the first hold ends; the second starts once both wait */
    WAIT_FOR(atomic_load(&held), 10000);
    long long queued = now_ms();
    WAIT_FOR(now_ms() >= queued + 50, 10000); /* both watches are due */
    unsigned passes = wsp_reactor_timer_passes();
    FAULT(epoll_ctl, .nth = 1 << 30); /* counts the calls, fails none */
    atomic_store(&holding_two, 0);
    WAIT_FOR(fault_calls(FAULT_epoll_ctl) == 2, 10000); /* both watched */
    CHECK_EQ(wsp_reactor_timer_passes(), passes + 1);
    fault_clear();
    close(fds[0]);
    close(fds[1]);
    close_socket(l);
}

static int defer_any(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                     GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_DEFER;
}

/* A request deferred by the blocking accept that took its connection itself (it was never
 * watched: handed to that accept as it was read) is watched from the deferral on: its client
 * leaving frees its place without another accept looking. The event thread is held while the
 * accept takes the connection, so that the reactor does not take it first. */
TEST(event_thread_request_deferred_by_the_accept_that_took_it_is_watched_after) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    atomic_store(&holding, 1);
    CHECK_EQ(WSPRunOnEventThread(hold_the_thread, NULL), 0);
    WAIT_FOR(atomic_load(&held), 10000);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0}; /* version 1, no data */
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), (ssize_t)sizeof request);
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&mine, &len), 0);
    WAIT_FOR(tcp_unread(port_of(&addr), ntohs(mine.sin_port)) == (int)sizeof request, 10000);
    int err = 0;
    CHECK(T.lpWSPAccept(l, NULL, NULL, defer_any, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN);
    CHECK_EQ(stats_of(l).queued, 1);
    atomic_store(&holding, 0);
    close(fd);
    WAIT_FOR(stats_of(l).withdrawn == 1, 10000);
    CHECK_EQ(stats_of(l).queued, 0);
    close_socket(l);
}

/* Jobs taken before the last cleanup run (an async runtime's task is never dropped); the
 * cleanup waits for them. */
static atomic_int slow_ran;

static void slow_job(void *context) {
    (void)context;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL); /* keeps the rest queued while the cleanup starts */
    atomic_fetch_add(&slow_ran, 1);
}

TEST(event_thread_runs_every_job_taken_before_the_last_cleanup) {
    start();
    for (int i = 0; i < 5; i++)
        CHECK_EQ(WSPRunOnEventThread(slow_job, NULL), 0);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(atomic_load(&slow_ran), 5);
    CHECK_EQ(WSPRunOnEventThread(slow_job, NULL), WSANOTINITIALISED);
}

/* ---- helpers: a body run as a job, the event threads alive, a connected pair ---- */

static void (*body)(void);
static atomic_int body_done;

static void run_body(void *context) {
    (void)context;
    body();
    atomic_store(&body_done, 1);
}

/* Runs fn as a job and waits until it has returned. */
static void in_job(void (*fn)(void)) {
    body = fn;
    atomic_store(&body_done, 0);
    CHECK_EQ(WSPRunOnEventThread(run_body, NULL), 0);
    WAIT_FOR(atomic_load(&body_done), 10000);
}

/* The provider's event threads alive now. */
static int event_threads(void) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "r");
        if (!f)
            continue;
        n += fgets(name, sizeof name, f) && strcmp(name, "wsp-reactor\n") == 0;
        fclose(f);
    }
    closedir(d);
    return n;
}

static SOCKET lsn = INVALID_SOCKET, served = INVALID_SOCKET;
static struct sockaddr_storage lsn_addr;
static int raw = -1;

/* A blocking plain-TCP listener (lsn), a raw client (raw) and the provider's blocking socket
 * for it (served), accepted on this thread. */
static void connected_pair(void) {
    lsn = listener(WSP_CATALOG_TCP_IPV4, 4, &lsn_addr);
    raw = raw_connect(&lsn_addr);
    int err = 0;
    served = accept_with(lsn, NULL, 0, &err);
    CHECK_EQ(err, 0);
}

static void close_pair(void) {
    close(raw);
    close_socket(served);
    close_socket(lsn);
}

/* ---- the event thread never waits ---- */

static int rc1, rc2, rc3, err1, err2;
static SOCKET got_socket = INVALID_SOCKET;

static void accept_with_nothing_waiting(void) {
    got_socket = T.lpWSPAccept(lsn, NULL, NULL, NULL, 0, &err1);
}

static void accept_with_a_connection_waiting(void) {
    err1 = 0;
    got_socket = T.lpWSPAccept(lsn, NULL, NULL, NULL, 0, &err1);
}

TEST(event_thread_blocking_accept_fails_with_wouldblock_instead_of_waiting) {
    start();
    lsn = listener(WSP_CATALOG_TCP_IPV4, 4, &lsn_addr); /* blocking, as sockets start */
    in_job(accept_with_nothing_waiting);
    CHECK(got_socket == INVALID_SOCKET);
    CHECK_EQ(err1, WSAEWOULDBLOCK);
    raw = raw_connect(&lsn_addr);
    wait_taken_from_kernel(&lsn_addr, raw);
    in_job(accept_with_a_connection_waiting); /* what is there is taken as usual */
    CHECK(got_socket != INVALID_SOCKET);
    CHECK_EQ(err1, 0);
    close_socket(got_socket);
    close(raw);
    close_socket(lsn);
}

static char rbuf[16];
static DWORD rgot;

static void recv_once(void) {
    WSABUF b = {sizeof rbuf, rbuf};
    DWORD flags = 0;
    rgot = 0;
    err1 = 0;
    rc1 = T.lpWSPRecv(served, &b, 1, &rgot, &flags, NULL, NULL, NULL, &err1);
}

TEST(event_thread_blocking_recv_fails_with_wouldblock_instead_of_waiting) {
    start();
    connected_pair();
    in_job(recv_once);
    CHECK_EQ(rc1, SOCKET_ERROR);
    CHECK_EQ(err1, WSAEWOULDBLOCK);
    CHECK_EQ(write(raw, "hi", 2), 2);
    WAIT_FOR(unread_bytes(served) == 2, 10000);
    in_job(recv_once);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rgot, 2);
    CHECK(memcmp(rbuf, "hi", 2) == 0);
    /* Off the event thread the same socket still waits (here: for the bytes written next). */
    CHECK_EQ(write(raw, "yo", 2), 2);
    DWORD got = 0;
    CHECK_EQ(recv_some(served, rbuf, sizeof rbuf, 0, &got), 0);
    CHECK_EQ(got, 2);
    close_pair();
}

static long long sent_total;

static void send_until_full(void) {
    static char chunk[65536];
    sent_total = 0;
    err1 = 0;
    for (int i = 0; i < 4096; i++) { /* 256 MB: far more than a loopback socket buffers */
        WSABUF b = {sizeof chunk, chunk};
        DWORD sent = 0;
        if (T.lpWSPSend(served, &b, 1, &sent, 0, NULL, NULL, NULL, &err1) != 0)
            return;
        sent_total += sent;
    }
}

TEST(event_thread_blocking_send_stops_with_wouldblock_when_the_buffers_are_full) {
    start();
    connected_pair(); /* raw never reads */
    in_job(send_until_full);
    CHECK_EQ(err1, WSAEWOULDBLOCK);
    CHECK(sent_total > 0);
    close_pair();
}

static SOCKET client = INVALID_SOCKET;

static void connect_blocking_socket(void) {
    WSABUF caller = {2, "hi"};
    err1 = 0;
    rc1 = T.lpWSPConnect(client, (const struct sockaddr *)&lsn_addr, addr_len(&lsn_addr),
                         &caller, NULL, NULL, NULL, &err1);
}

static void connect_again(void) {
    err2 = 0;
    rc2 = T.lpWSPConnect(client, (const struct sockaddr *)&lsn_addr, addr_len(&lsn_addr), NULL,
                         NULL, NULL, NULL, &err2);
}

TEST(event_thread_blocking_connect_starts_and_fails_with_wouldblock) {
    start();
    lsn = listener(WSP_CATALOG_CDATA_IPV4, 4, &lsn_addr);
    client = new_socket(WSP_CATALOG_CDATA_IPV4); /* blocking */
    in_job(connect_blocking_socket);
    CHECK_EQ(rc1, SOCKET_ERROR);
    CHECK_EQ(err1, WSAEWOULDBLOCK);
    /* The connect goes on, as a non-blocking one would: the server sees the caller data. */
    int err = 0;
    SOCKET a = accept_with(lsn, NULL, 0, &err);
    CHECK_EQ(err, 0);
    do
        in_job(connect_again);
    while (err2 == WSAEALREADY);
    CHECK_EQ(rc2, SOCKET_ERROR);
    CHECK_EQ(err2, WSAEISCONN);
    /* Connected, the socket is a blocking one again off the event thread. */
    send_all(a, "ok", 2);
    DWORD got = 0;
    CHECK_EQ(recv_some(client, rbuf, sizeof rbuf, 0, &got), 0);
    CHECK_EQ(got, 2);
    close_socket(a);
    close_socket(client);
    close_socket(lsn);
}

/* A connect the event thread finished, closed by the job its FD_CONNECT handed over (an async
 * runtime's task, resumed and done with the connection): the descriptor closes at once. The
 * finished connect's reactor item, not freed before the job runs, no longer holds the socket,
 * so the close does not find it in use and give the descriptor up by replacing it with a
 * spare (four system calls more per connection). */
static SOCKET connecting = INVALID_SOCKET;
static int connecting_fd = -1;
static atomic_int closed_outcome; /* 1: closed at once; -1: still open; -2: connect failed */

static void close_connected(void *context) {
    int connect_error = (int)(intptr_t)context;
    int err = 0;
    CHECK_EQ(T.lpWSPCloseSocket(connecting, &err), 0);
    int open_still = fcntl(connecting_fd, F_GETFD) >= 0;
    atomic_store(&closed_outcome, connect_error ? -2 : open_still ? -1 : 1);
}

static void start_connecting(void) {
    err1 = 0;
    rc1 = T.lpWSPConnect(connecting, (const struct sockaddr *)&lsn_addr, addr_len(&lsn_addr),
                         NULL, NULL, NULL, NULL, &err1);
}

static BOOL post_close_job(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    (void)hWnd, (void)Msg, (void)wParam;
    if (WSAGETSELECTEVENT(lParam) == FD_CONNECT)
        CHECK_EQ(WSPRunOnEventThread(close_connected,
                                     (void *)(intptr_t)WSAGETSELECTERROR(lParam)), 0);
    return TRUE;
}

TEST(event_thread_connect_closed_by_the_job_its_event_handed_over_closes_its_descriptor) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = post_close_job;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    lsn = listener(WSP_CATALOG_TCP_IPV4, 4, &lsn_addr);
    connecting = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(connecting, &err);
    CHECK(so != NULL);
    connecting_fd = so->fd;
    wsp_socket_release(so);
    CHECK_EQ(T.lpWSPAsyncSelect(connecting, (HWND)(uintptr_t)1, 0x401, FD_CONNECT, &err), 0);
    /* Started by a job: the call has left the socket before the thread can see the connect
     * end (a call still inside holds the socket too). */
    in_job(start_connecting);
    CHECK(rc1 == 0 || err1 == WSAEWOULDBLOCK);
    WAIT_FOR(atomic_load(&closed_outcome) != 0, 10000);
    CHECK_EQ(atomic_load(&closed_outcome), 1);
    close_socket(lsn);
}

/* The same for a connect its timer ended: a connect-data client whose server never answers
 * times out on the reactor's timer, and the job its FD_CONNECT (WSAETIMEDOUT) handed over
 * closes it: the descriptor closes at once, the timed-out connector holding the socket no
 * more (no spare-descriptor swap: four system calls per timed-out connect). */
static atomic_int timed_out_outcome; /* 1: closed at once; -1: still open; -2: another error */

static void close_timed_out(void *context) {
    int connect_error = (int)(intptr_t)context;
    int err = 0;
    CHECK_EQ(T.lpWSPCloseSocket(connecting, &err), 0);
    int open_still = fcntl(connecting_fd, F_GETFD) >= 0;
    atomic_store(&timed_out_outcome,
                 connect_error != WSAETIMEDOUT ? -2 : open_still ? -1 : 1);
}

static BOOL post_close_timed_out_job(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    (void)hWnd, (void)Msg, (void)wParam;
    if (WSAGETSELECTEVENT(lParam) == FD_CONNECT)
        CHECK_EQ(WSPRunOnEventThread(close_timed_out,
                                     (void *)(intptr_t)WSAGETSELECTERROR(lParam)), 0);
    return TRUE;
}

TEST(event_thread_timed_out_connect_closed_by_the_job_its_event_handed_over_closes_its_descriptor) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = post_close_timed_out_job;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* never answers */
    CHECK(lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(lfd, 4), 0);
    socklen_t alen = sizeof sin;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)&sin, &alen), 0);
    connecting = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(connecting, SOL_WSP, WSP_CONNECT_TIMEOUT, 100);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(connecting, &err);
    CHECK(so != NULL);
    connecting_fd = so->fd;
    wsp_socket_release(so);
    CHECK_EQ(T.lpWSPAsyncSelect(connecting, (HWND)(uintptr_t)1, 0x401, FD_CONNECT, &err), 0);
    CHECK_EQ(T.lpWSPConnect(connecting, (const struct sockaddr *)&sin, sizeof sin, NULL, NULL,
                            NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    WAIT_FOR(atomic_load(&timed_out_outcome) != 0, 10000);
    CHECK_EQ(atomic_load(&timed_out_outcome), 1);
    close(lfd);
}

/* A non-blocking connect a call finishes (a send that finds the kernel connected, through
 * wsp_connector_poll) while the event thread is busy with a job, so that the reactor has not
 * read the connector's event: its registration, still armed, is taken out of the epoll set
 * there and then (one EPOLL_CTL_DEL on the calling thread), not left in it as a fired one is;
 * armed, it would report later for a connector that is gone. */
static atomic_int gate_started, gate_open;

static void gate_job(void *context) {
    (void)context;
    atomic_store(&gate_started, 1);
    WAIT_FOR(atomic_load(&gate_open), 10000);
}

TEST(event_thread_busy_while_a_call_finishes_a_connect_leaves_no_armed_watch) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    set_nonblocking(s, 1);
    CHECK_EQ(WSPRunOnEventThread(gate_job, NULL), 0);
    WAIT_FOR(atomic_load(&gate_started), 10000);
    CHECK_EQ(connect_to(s, &addr, NULL, NULL), WSAEWOULDBLOCK);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    struct pollfd p = {.fd = so->fd, .events = POLLOUT};
    CHECK_EQ(poll(&p, 1, 10000), 1); /* the kernel has connected it */
    wsp_socket_release(so);
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    WSABUF b = {1, "x"};
    DWORD sent = 0;
    CHECK_EQ(T.lpWSPSend(s, &b, 1, &sent, 0, NULL, NULL, NULL, &err), 0);
    CHECK_EQ(sent, 1);
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 1);
    fault_clear();
    atomic_store(&gate_open, 1);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    char got = 0;
    recv_exact(a, &got, 1);
    CHECK_EQ(got, 'x');
    close_socket(a);
    close_socket(s);
    close_socket(l);
}

/* The same connect finished by a call while the event thread is busy: its registration taken
 * out of the epoll set, nothing of it is left for a watch to take over; a watch registered
 * next adds one of its own on the socket's descriptor (an EPOLL_CTL_ADD, then the MOD that arms
 * it), and duplicates no descriptor to watch. */
TEST(event_thread_busy_while_a_call_finishes_a_connect_leaves_a_watch_its_own_registration) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    set_nonblocking(s, 1);
    CHECK_EQ(WSPRunOnEventThread(gate_job, NULL), 0);
    WAIT_FOR(atomic_load(&gate_started), 10000);
    CHECK_EQ(connect_to(s, &addr, NULL, NULL), WSAEWOULDBLOCK);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    struct pollfd p = {.fd = so->fd, .events = POLLOUT};
    CHECK_EQ(poll(&p, 1, 10000), 1); /* the kernel has connected it */
    wsp_socket_release(so);
    WSABUF b = {1, "x"};
    DWORD sent = 0;
    CHECK_EQ(T.lpWSPSend(s, &b, 1, &sent, 0, NULL, NULL, NULL, &err), 0); /* finishes it */
    CHECK_EQ(sent, 1);
    int fds = provider_fds();
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    CHECK_EQ(T.lpWSPAsyncSelect(s, (HWND)(uintptr_t)1, 0x401, FD_READ, &err), 0);
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 2);
    fault_clear();
    CHECK_EQ(provider_fds(), fds);
    atomic_store(&gate_open, 1);
    close_socket(s);
    close_socket(l);
}

/* A connect-data connect whose request a call sends (wsp_connector_poll: the connect call's
 * own send found no room, and the event thread is busy) changes what the connector's
 * registration waits for there and then: from the connection's coming up to the answer (one
 * EPOLL_CTL_MOD on the calling thread). */
TEST(event_thread_busy_while_a_call_sends_the_request_rearms_for_the_answer) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(s, 1);
    CHECK_EQ(WSPRunOnEventThread(gate_job, NULL), 0);
    WAIT_FOR(atomic_load(&gate_started), 10000);
    FAULT(send, .err = EAGAIN, .this_thread = 1); /* the connect call's own send */
    CHECK_EQ(connect_to(s, &addr, "x", NULL), WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    struct pollfd p = {.fd = so->fd, .events = POLLOUT};
    CHECK_EQ(poll(&p, 1, 10000), 1); /* the kernel has connected it */
    wsp_socket_release(so);
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    char b;
    WSABUF buf = {1, &b};
    DWORD got = 0, flags = 0;
    CHECK_EQ(T.lpWSPRecv(s, &buf, 1, &got, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTCONN); /* sent, not answered: still connecting */
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 1);
    fault_clear();
    atomic_store(&gate_open, 1);
    close_socket(s);
    close_socket(l);
}

static atomic_int reactor_reached;

static void note_reactor(void *context) {
    (void)context;
    atomic_store(&reactor_reached, 1);
}

/* The reactor takes the connector's event (the connection is up) and its step waits for the
 * socket's lock, which a call holds while it sends the request itself (wsp_connector_poll),
 * re-arming the registration for the answer. The answer is there when the reactor's step
 * goes on: it ends the connect, and takes out the registration the call armed again (one
 * EPOLL_CTL_DEL): left in, armed, it would report for a connector that is gone. */
TEST(event_thread_step_on_an_event_read_before_a_call_rearmed_takes_the_registration_out) {
    start();
    CHECK_EQ(WSPRunOnEventThread(note_reactor, NULL), 0);
    WAIT_FOR(atomic_load(&reactor_reached), 10000);
    int tid = 0;
    WAIT_FOR((tid = reactor_tid()) != 0, 10000);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(lfd, 4), 0);
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(s, 1);
    CHECK_EQ(WSPRunOnEventThread(gate_job, NULL), 0);
    WAIT_FOR(atomic_load(&gate_started), 10000);
    FAULT(send, .err = EAGAIN, .this_thread = 1); /* the connect call's own send */
    CHECK_EQ(connect_to(s, &addr, "x", NULL), WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    struct pollfd p = {.fd = so->fd, .events = POLLOUT};
    CHECK_EQ(poll(&p, 1, 10000), 1); /* up: the connector's registration reports it */
    pthread_mutex_lock(&so->lock);
    atomic_store(&gate_open, 1);
    WAIT_FOR(in_futex_on(tid, &so->lock), 10000); /* the reactor's step on that event */
    wsp_connector_poll(so); /* sends the request, re-arms the registration for the answer */
    CHECK(so->connector != NULL);
    uint8_t buf[64];
    wsp_hs_frame f;
    int afd = accept_whole_request(lfd, buf, sizeof buf, &f);
    wsp_hs_frame accept_frame = {.type = WSP_HS_ACCEPT};
    uint8_t answer[16];
    size_t n = wsp_hs_encode(&accept_frame, answer, sizeof answer);
    CHECK(n > 0);
    CHECK_EQ(write(afd, answer, n), (ssize_t)n);
    p = (struct pollfd){.fd = so->fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 10000), 1);
    FAULT(epoll_ctl, .nth = 1 << 30); /* counts every thread's calls, fails none */
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    atomic_store(&reactor_reached, 0);
    CHECK_EQ(WSPRunOnEventThread(note_reactor, NULL), 0); /* runs once the step has returned */
    WAIT_FOR(atomic_load(&reactor_reached), 10000);
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 1);
    fault_clear();
    so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    pthread_mutex_lock(&so->lock);
    CHECK_EQ(so->state, WSP_STATE_CONNECTED);
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    close_socket(s);
    close(afd);
    close(lfd);
}

static struct timeval select_timeout;
static const struct timeval *select_with;

static void select_served(void) {
    WSPFD_SET r;
    r.fd_count = 1;
    r.fd_array[0] = served;
    err1 = 0;
    rc1 = T.lpWSPSelect(0, &r, NULL, NULL, select_with, &err1);
}

TEST(event_thread_select_that_would_wait_fails_with_wouldblock) {
    start();
    connected_pair();
    select_timeout = (struct timeval){5, 0};
    select_with = &select_timeout;
    in_job(select_served);
    CHECK_EQ(rc1, SOCKET_ERROR);
    CHECK_EQ(err1, WSAEWOULDBLOCK);
    select_with = NULL; /* no time-out: the same */
    in_job(select_served);
    CHECK_EQ(rc1, SOCKET_ERROR);
    CHECK_EQ(err1, WSAEWOULDBLOCK);
    select_timeout = (struct timeval){0, 500000}; /* microseconds alone: a wait all the same */
    select_with = &select_timeout;
    in_job(select_served);
    CHECK_EQ(rc1, SOCKET_ERROR);
    CHECK_EQ(err1, WSAEWOULDBLOCK);
    select_timeout = (struct timeval){0, 0}; /* a zero time-out answers as always */
    in_job(select_served);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(write(raw, "x", 1), 1);
    WAIT_FOR(unread_bytes(served) == 1, 10000);
    select_timeout = (struct timeval){5, 0}; /* ready: answered at once */
    in_job(select_served);
    CHECK_EQ(rc1, 1);
    close_pair();
}

static WSAEVENT ev;

static void wait_for_the_event(void) {
    rc1 = (int)WSAWaitForMultipleEvents(1, &ev, FALSE, 5000, FALSE);
    err1 = WSAGetLastError();
    rc2 = (int)WSAWaitForMultipleEvents(1, &ev, TRUE, WSA_INFINITE, FALSE);
    err2 = WSAGetLastError();
    rc3 = (int)WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE);
}

static void wait_for_the_signalled_event(void) {
    rc1 = (int)WSAWaitForMultipleEvents(1, &ev, FALSE, 5000, FALSE);
    rc2 = (int)WSAWaitForMultipleEvents(1, &ev, TRUE, WSA_INFINITE, FALSE);
}

TEST(event_thread_wait_for_events_that_would_wait_fails_with_wouldblock) {
    start();
    ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    in_job(wait_for_the_event);
    CHECK_EQ(rc1, (int)WSA_WAIT_FAILED);
    CHECK_EQ(err1, WSAEWOULDBLOCK);
    CHECK_EQ(rc2, (int)WSA_WAIT_FAILED);
    CHECK_EQ(err2, WSAEWOULDBLOCK);
    CHECK_EQ(rc3, (int)WSA_WAIT_TIMEOUT);
    CHECK(WSASetEvent(ev));
    in_job(wait_for_the_signalled_event);
    CHECK_EQ(rc1, (int)WSA_WAIT_EVENT_0);
    CHECK_EQ(rc2, (int)WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(ev));
}

static HWND queue;
static WSPMSG msg;

static void get_from_the_queue(void) {
    rc1 = WSPGetMessage(queue, &msg, 5000);
    err1 = WSAGetLastError();
    rc2 = WSPGetMessage(queue, &msg, 0);
}

static void get_posted_message(void) {
    rc1 = WSPGetMessage(queue, &msg, WSA_INFINITE);
}

TEST(event_thread_get_message_that_would_wait_fails_with_wouldblock) {
    start();
    queue = WSPCreateMessageQueue();
    CHECK(queue != NULL);
    in_job(get_from_the_queue);
    CHECK_EQ(rc1, -1);
    CHECK_EQ(err1, WSAEWOULDBLOCK);
    CHECK_EQ(rc2, 0);
    CHECK(WSPPostMessage(queue, 0x401, 7, 0));
    in_job(get_posted_message);
    CHECK_EQ(rc1, 1);
    CHECK_EQ(msg.wParam, 7);
    CHECK(WSPDestroyMessageQueue(queue));
}

/* A provider call in a job that raises an event (a recv leaving data behind re-raises
 * FD_READ) has its upcall made, as from any thread. */
static void recv_one_byte(void) {
    WSABUF b = {1, rbuf};
    DWORD flags = 0;
    rc1 = T.lpWSPRecv(served, &b, 1, &rgot, &flags, NULL, NULL, NULL, &err1);
}

TEST(event_thread_job_upcalls_are_made_when_it_returns) {
    start();
    connected_pair();
    queue = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(served, queue, 0x401, FD_READ, &err), 0);
    CHECK_EQ(write(raw, "ab", 2), 2);
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(msg.lParam), FD_READ);
    in_job(recv_one_byte);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rgot, 1);
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1); /* the byte left is news again */
    CHECK_EQ(WSAGETSELECTEVENT(msg.lParam), FD_READ);
    close_pair();
    CHECK(WSPDestroyMessageQueue(queue));
}

/* What the provider queues for after the current item (wsp_reactor_after: deferred upcalls,
 * a held request's event) while a job runs is done when the job returns: here nothing else
 * would wake the thread. */
static atomic_int task_ran;

static void mark_task(struct wsp_reactor_task *task) {
    (void)task;
    atomic_store(&task_ran, 1);
}

static struct wsp_reactor_task marker_task = {.run = mark_task};

static void queue_a_task(void) {
    wsp_reactor_after(&marker_task);
}

TEST(event_thread_tasks_queued_by_a_job_run_when_it_returns) {
    start();
    in_job(queue_a_task);
    WAIT_FOR(atomic_load(&task_ran), 10000);
}

/* ---- a job that keeps handing itself over does not starve the sockets ---- */

static atomic_int spinning, spins, spin_ended;

static void spin(void *context) {
    (void)context;
    atomic_fetch_add(&spins, 1);
    if (atomic_load(&spinning))
        CHECK_EQ(WSPRunOnEventThread(spin, NULL), 0);
    else
        atomic_store(&spin_ended, 1);
}

TEST(event_thread_job_handing_itself_over_does_not_starve_the_sockets) {
    start();
    lsn = listener(WSP_CATALOG_CDATA_IPV4, 4, &lsn_addr);
    atomic_store(&spinning, 1);
    CHECK_EQ(WSPRunOnEventThread(spin, NULL), 0);
    WAIT_FOR(atomic_load(&spins) > 10, 10000);
    /* A non-blocking connect needs the event thread: it reads the server's answer. */
    client = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(client, 1);
    int err = 0;
    WSABUF caller = {2, "hi"};
    CHECK_EQ(T.lpWSPConnect(client, (const struct sockaddr *)&lsn_addr, addr_len(&lsn_addr),
                            &caller, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    SOCKET a = accept_with(lsn, NULL, 0, &err);
    CHECK_EQ(err, 0);
    WAIT_FOR((T.lpWSPConnect(client, (const struct sockaddr *)&lsn_addr, addr_len(&lsn_addr),
                             NULL, NULL, NULL, NULL, &err),
              err == WSAEISCONN),
             10000);
    atomic_store(&spinning, 0);
    WAIT_FOR(atomic_load(&spin_ended), 10000); /* none left to hand over past the cleanup */
    close_socket(a);
    close_socket(client);
    close_socket(lsn);
}

/* ---- the last cleanup from a job ---- */

static atomic_int job_tid, later_tid;

static void note_later_tid(void *context) {
    (void)context;
    atomic_store(&later_tid, (int)gettid());
}

static void clean_up_last(void) {
    atomic_store(&job_tid, (int)gettid());
    rc1 = T.lpWSPCleanup(&err1);
    rc2 = WSPRunOnEventThread(record, NULL); /* the stop has begun: refused */
}

TEST(event_thread_last_cleanup_in_a_job_ends_the_thread_and_closes_its_descriptors) {
    int before = provider_fds();
    start();
    lsn = listener(WSP_CATALOG_CDATA_IPV4, 4, &lsn_addr); /* closed by the cleanup */
    in_job(clean_up_last);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rc2, WSANOTINITIALISED);
    WAIT_FOR(provider_fds() == before, 10000);
    WAIT_FOR(event_threads() == 0, 10000);
    CHECK_EQ(WSPRunOnEventThread(record, NULL), WSANOTINITIALISED);
    CHECK_EQ(seen_now(), 0);
    /* A new start makes a new thread; a cleanup elsewhere joins it. */
    start();
    CHECK_EQ(WSPRunOnEventThread(note_later_tid, NULL), 0);
    WAIT_FOR(atomic_load(&later_tid) != 0, 10000);
    CHECK(atomic_load(&later_tid) != atomic_load(&job_tid));
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(provider_fds(), before);
    WAIT_FOR(event_threads() == 0, 10000);
}

/* A thread ended by the last cleanup in one of its jobs has no one to join it: it detaches,
 * and its memory serves the next thread. Cycles of a start and such a cleanup keep one
 * thread's memory, not one stack more (a thread never joined keeps its stack). */
TEST(event_thread_ended_by_its_own_job_leaves_its_memory_to_the_next) {
    long stack_kb = default_stack_kb(); /* what a new thread gets */
    start(); /* the first thread's memory, and whatever else a first start-up makes */
    in_job(clean_up_last);
    CHECK_EQ(rc1, 0);
    WAIT_FOR(event_threads() == 0, 10000);
    long before = vm_kb();
    for (int i = 0; i < 8; i++) {
        start();
        in_job(clean_up_last);
        CHECK_EQ(rc1, 0);
        WAIT_FOR(event_threads() == 0, 10000);
    }
    long grown = vm_kb() - before;
    CHECK(grown < stack_kb);
}

static void clean_up_and_start_again(void) {
    atomic_store(&job_tid, (int)gettid());
    rc1 = T.lpWSPCleanup(&err1);
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    rc2 = WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T);
    rc3 = WSPRunOnEventThread(note_later_tid, NULL);
}

TEST(event_thread_start_in_the_job_that_ended_the_provider_keeps_the_thread) {
    int before = provider_fds();
    start();
    in_job(clean_up_and_start_again);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rc2, 0);
    CHECK_EQ(rc3, 0);
    WAIT_FOR(atomic_load(&later_tid) != 0, 10000);
    CHECK_EQ(atomic_load(&later_tid), atomic_load(&job_tid)); /* the same thread, going on */
    CHECK_EQ(event_threads(), 1);
    /* It works as before: a socket, a listener. */
    lsn = listener(WSP_CATALOG_CDATA_IPV4, 4, &lsn_addr);
    close_socket(lsn);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(provider_fds(), before);
    WAIT_FOR(event_threads() == 0, 10000);
}

static atomic_int stopped_in_job, started_elsewhere;

static void clean_up_and_wait_for_a_start(void) {
    atomic_store(&job_tid, (int)gettid());
    rc1 = T.lpWSPCleanup(&err1);
    atomic_store(&stopped_in_job, 1);
    WAIT_FOR(atomic_load(&started_elsewhere), 10000); /* holds the thread in its stop */
}

TEST(event_thread_start_elsewhere_while_a_job_ends_the_provider_revives_the_thread) {
    int before = provider_fds();
    start();
    atomic_store(&body_done, 0);
    body = clean_up_and_wait_for_a_start;
    CHECK_EQ(WSPRunOnEventThread(run_body, NULL), 0);
    WAIT_FOR(atomic_load(&stopped_in_job), 10000);
    CHECK_EQ(rc1, 0);
    start(); /* the thread has not exited: it carries on */
    atomic_store(&started_elsewhere, 1);
    WAIT_FOR(atomic_load(&body_done), 10000);
    CHECK_EQ(WSPRunOnEventThread(note_later_tid, NULL), 0);
    WAIT_FOR(atomic_load(&later_tid) != 0, 10000);
    CHECK_EQ(atomic_load(&later_tid), atomic_load(&job_tid));
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(provider_fds(), before);
    WAIT_FOR(event_threads() == 0, 10000);
}

/* A job that starts the provider while another thread's last cleanup waits for the thread
 * to end: that cleanup must not hold what the start needs (the two would wait for each
 * other). */
static atomic_int noops_posted, noops_run, spin_started;

static void noop(void *context) {
    (void)context;
    atomic_fetch_add(&noops_run, 1);
}

static void start_during_a_cleanup_elsewhere(void) {
    atomic_store(&spin_started, 1);
    int rc;
    while ((rc = WSPRunOnEventThread(noop, NULL)) == 0) { /* until the stop has begun */
        atomic_fetch_add(&noops_posted, 1);
        sleep_ms(1);
    }
    rc1 = rc;
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    rc2 = WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T);
    rc3 = WSPRunOnEventThread(noop, NULL);
    if (rc3 == 0)
        atomic_fetch_add(&noops_posted, 1);
}

TEST(event_thread_job_may_start_the_provider_while_its_last_cleanup_waits) {
    int before = provider_fds();
    start();
    atomic_store(&body_done, 0);
    body = start_during_a_cleanup_elsewhere;
    CHECK_EQ(WSPRunOnEventThread(run_body, NULL), 0);
    WAIT_FOR(atomic_load(&spin_started), 10000);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0); /* returns: the job's start revived the thread */
    WAIT_FOR(atomic_load(&body_done), 10000);
    CHECK_EQ(rc1, WSANOTINITIALISED);
    CHECK_EQ(rc2, 0);
    CHECK_EQ(rc3, 0);
    WAIT_FOR(atomic_load(&noops_run) == atomic_load(&noops_posted), 10000); /* each once */
    CHECK_EQ(event_threads(), 1);
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(provider_fds(), before);
    WAIT_FOR(event_threads() == 0, 10000);
    CHECK_EQ(atomic_load(&noops_run), atomic_load(&noops_posted));
}

/* A job run while the thread stops (taken before the last cleanup) that starts the provider,
 * hands over another job and ends the provider again: the job it handed over was accepted
 * (0), so it runs before the thread exits, not freed with the queue. The other thread's
 * cleanup is held in its wake-up write, after the stop has begun, until the job before it
 * has seen that: the handing-over job is then taken by the stopping thread's last passes. */
static atomic_int handed_over_ran, first_job_waiting;

static void handed_over(void *context) {
    (void)context;
    atomic_store(&handed_over_ran, 1);
}

static void revive_hand_over_and_stop(void *context) {
    (void)context;
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    WSPPROC_TABLE table;
    rc2 = WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &table);
    rc3 = WSPRunOnEventThread(handed_over, NULL);
    err2 = -1;
    if (table.lpWSPCleanup(&err2) == 0)
        err2 = 0;
}

static void hand_over_and_wait_for_the_stop(void) {
    rc1 = WSPRunOnEventThread(revive_hand_over_and_stop, NULL);
    atomic_store(&first_job_waiting, 1);
    WAIT_FOR(fault_holding() == 1, 10000); /* the cleanup's stop has begun */
    fault_release();
}

TEST(event_thread_job_handed_over_by_a_job_that_revived_and_stopped_the_thread_runs) {
    int before = provider_fds();
    start();
    atomic_store(&body_done, 0);
    body = hand_over_and_wait_for_the_stop;
    CHECK_EQ(WSPRunOnEventThread(run_body, NULL), 0);
    WAIT_FOR(atomic_load(&first_job_waiting), 10000);
    FAULT(write, .hold = 1, .this_thread = 1); /* the stop's wake-up, written under its lock */
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(fault_fired(FAULT_write), 1);
    WAIT_FOR(atomic_load(&body_done), 10000);
    CHECK_EQ(rc1, 0);
    WAIT_FOR(atomic_load(&handed_over_ran), 10000);
    CHECK_EQ(rc2, 0);
    CHECK_EQ(rc3, 0);
    CHECK_EQ(err2, 0);
    WAIT_FOR(event_threads() == 0, 10000);
    WAIT_FOR(provider_fds() == before, 10000);
    CHECK_EQ(WSPRunOnEventThread(record, NULL), WSANOTINITIALISED);
}

/* Start-ups and cleanups from several threads and from jobs at once: every path of a stop
 * (waited for elsewhere, from the thread itself, revived by a job or by another thread, a
 * new thread while the old one exits) ends with no thread, no descriptor and no job lost. */
#define CYCLERS 3
#define CYCLES 100

static atomic_int cycle_jobs_posted, cycle_jobs_run, cycle_failures;

static void start_and_clean_up_in_a_job(void *context) {
    (void)context;
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    WSPPROC_TABLE table;
    if (WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &table) != 0) {
        atomic_fetch_add(&cycle_failures, 1);
    } else {
        int err = 0;
        if (table.lpWSPCleanup(&err) != 0)
            atomic_fetch_add(&cycle_failures, 1);
    }
    atomic_fetch_add(&cycle_jobs_run, 1);
}

static void *cycle(void *arg) {
    (void)arg;
    for (int i = 0; i < CYCLES; i++) {
        WSPDATA data;
        WSPUPCALLTABLE up;
        memset(&up, 0, sizeof up);
        WSPPROC_TABLE table;
        if (WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &table) != 0) {
            atomic_fetch_add(&cycle_failures, 1);
            continue;
        }
        if (WSPRunOnEventThread(start_and_clean_up_in_a_job, NULL) == 0)
            atomic_fetch_add(&cycle_jobs_posted, 1);
        else
            atomic_fetch_add(&cycle_failures, 1); /* started by this thread: must be taken */
        int err = 0;
        if (table.lpWSPCleanup(&err) != 0)
            atomic_fetch_add(&cycle_failures, 1);
    }
    return NULL;
}

TEST_WITH_TIMEOUT(event_thread_startups_and_cleanups_from_jobs_and_threads_at_once, 120) {
    int before = provider_fds();
    pthread_t threads[CYCLERS];
    for (int i = 0; i < CYCLERS; i++)
        CHECK_EQ(pthread_create(&threads[i], NULL, cycle, NULL), 0);
    for (int i = 0; i < CYCLERS; i++)
        CHECK_EQ(pthread_join(threads[i], NULL), 0);
    WAIT_FOR(atomic_load(&cycle_jobs_run) == atomic_load(&cycle_jobs_posted), 30000);
    CHECK_EQ(atomic_load(&cycle_failures), 0);
    CHECK_EQ(atomic_load(&cycle_jobs_posted), CYCLERS * CYCLES);
    WAIT_FOR(provider_fds() == before, 10000);
    WAIT_FOR(event_threads() == 0, 10000);
    CHECK_EQ(WSPRunOnEventThread(record, NULL), WSANOTINITIALISED);
}

/* ---- upcalls deferred by a job, made once it returns ---- */

/* In one job a socket's events are raised three ways: a selection (deferred: the socket goes
 * on the reactor's flush list), an enumeration whose pump makes the deferred upcalls then and
 * there, and a recv that raises FD_READ again (the data left after the FIN) while the socket
 * is still on that list. It must not go on it twice: the list would loop on itself. The
 * upcall of that last FD_READ is made when the job returns. */
static WSAEVENT job_event;
static WSANETWORKEVENTS job_record;

static void select_enumerate_recv(void) {
    rc1 = T.lpWSPEventSelect(served, job_event, FD_READ | FD_CLOSE, &err1);
    rc2 = T.lpWSPEnumNetworkEvents(served, job_event, &job_record, &err2);
    WSABUF b = {1, rbuf};
    DWORD flags = 0;
    rgot = 0;
    int err = 0;
    rc3 = T.lpWSPRecv(served, &b, 1, &rgot, &flags, NULL, NULL, NULL, &err);
}

TEST(event_thread_job_raising_again_after_its_upcalls_were_made_flushes_once) {
    start();
    connected_pair();
    job_event = WSACreateEvent();
    CHECK(job_event != WSA_INVALID_EVENT);
    CHECK_EQ(write(raw, "abc", 3), 3);
    CHECK_EQ(shutdown(raw, SHUT_WR), 0);
    struct sockaddr_storage me;
    socklen_t len = sizeof me;
    CHECK_EQ(getsockname(raw, (struct sockaddr *)&me, &len), 0);
    WAIT_FOR(tcp_state(port_of(&lsn_addr), port_of(&me)) == TCP_CLOSE_WAIT, 10000);
    in_job(select_enumerate_recv);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rc2, 0);
    CHECK_EQ(job_record.lNetworkEvents, FD_READ | FD_CLOSE);
    CHECK_EQ(rc3, 0);
    CHECK_EQ(rgot, 1);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &job_event, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    WSANETWORKEVENTS ne;
    int err = 0;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(served, job_event, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    close_pair();
    CHECK(WSACloseEvent(job_event));
}

/* A provider call in a job that raises an event leaves its upcall to the reactor's flush
 * after the job (netevents.c: made under the socket's lock there, a woken thread would run
 * into that lock at once): the message arrives, posted by that flush, once. */
TEST(event_thread_job_upcalls_are_deferred_to_the_flush) {
    start();
    connected_pair();
    queue = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(served, queue, 0x401, FD_READ, &err), 0);
    CHECK_EQ(write(raw, "ab", 2), 2);
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(msg.lParam), FD_READ);
    unsigned before = wsp_netevents_flushes();
    in_job(recv_one_byte);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rgot, 1);
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1); /* the byte left is news again */
    CHECK_EQ(WSAGETSELECTEVENT(msg.lParam), FD_READ);
    CHECK_EQ(wsp_netevents_flushes() - before, 1);
    close_pair();
    CHECK(WSPDestroyMessageQueue(queue));
}

/* One job raising on two sockets (two selections, each posting FD_WRITE for a connected
 * socket): both go on the reactor's flush list, and the flush after the job posts both
 * messages, one per socket. */
static SOCKET served2 = INVALID_SOCKET;

static void select_write_on_two(void) {
    rc1 = T.lpWSPAsyncSelect(served, queue, 0x401, FD_WRITE, &err1);
    rc2 = T.lpWSPAsyncSelect(served2, queue, 0x402, FD_WRITE, &err2);
}

TEST(event_thread_job_upcalls_on_two_sockets_are_both_flushed) {
    start();
    connected_pair();
    int raw2 = raw_connect(&lsn_addr), err = 0;
    served2 = accept_with(lsn, NULL, 0, &err);
    CHECK_EQ(err, 0);
    queue = WSPCreateMessageQueue();
    unsigned before = wsp_netevents_flushes();
    in_job(select_write_on_two);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rc2, 0);
    int seen1 = 0, seen2 = 0;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1);
        CHECK_EQ(WSAGETSELECTEVENT(msg.lParam), FD_WRITE);
        if (msg.message == 0x401 && msg.wParam == served)
            seen1++;
        else if (msg.message == 0x402 && msg.wParam == served2)
            seen2++;
    }
    CHECK_EQ(seen1, 1);
    CHECK_EQ(seen2, 1);
    CHECK_EQ(wsp_netevents_flushes() - before, 2);
    close(raw);
    close(raw2);
    close_socket(served);
    close_socket(served2);
    close_socket(lsn);
    CHECK(WSPDestroyMessageQueue(queue));
}

/* A job whose provider calls raise (a selection: the upcalls wait for the flush) and then make
 * those upcalls themselves (an enumeration's pump): the flush finds nothing left to make, and
 * leaves the socket as it found it (unlocked: it closes). */
static void select_and_enumerate(void) {
    rc1 = T.lpWSPEventSelect(served, job_event, FD_READ, &err1);
    rc2 = T.lpWSPEnumNetworkEvents(served, job_event, &job_record, &err2);
}

TEST(event_thread_flush_of_upcalls_a_job_made_itself_makes_none) {
    start();
    connected_pair();
    job_event = WSACreateEvent();
    CHECK(job_event != WSA_INVALID_EVENT);
    CHECK_EQ(write(raw, "a", 1), 1);
    WAIT_FOR(unread_bytes(served) == 1, 10000);
    unsigned before = wsp_netevents_flushes();
    in_job(select_and_enumerate);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rc2, 0);
    CHECK_EQ(job_record.lNetworkEvents, FD_READ);
    /* A job after it runs after that flush. */
    in_job(select_and_enumerate);
    CHECK_EQ(wsp_netevents_flushes() - before, 0);
    close_pair();
    CHECK(WSACloseEvent(job_event));
}

/* A job's selection raises FD_WRITE (its upcall deferred to the flush), and a wait of the same
 * job that does not block (time-out 0) pumps the event's set, which reports the same socket
 * (unread data, which raises nothing unasked): that pump makes the deferred upcall, so the
 * wait finds the event signalled, and so does a wait after the job. */
static DWORD job_wait;

static void select_and_wait_at_once(void) {
    rc1 = T.lpWSPEventSelect(served, job_event, FD_WRITE, &err1);
    job_wait = WSAWaitForMultipleEvents(1, &job_event, FALSE, 0, FALSE);
}

TEST(event_thread_job_wait_pumping_the_set_makes_the_upcall_its_selection_deferred) {
    start();
    connected_pair();
    job_event = WSACreateEvent();
    CHECK(job_event != WSA_INVALID_EVENT);
    CHECK_EQ(write(raw, "a", 1), 1);
    WAIT_FOR(unread_bytes(served) == 1, 10000);
    job_wait = WSA_WAIT_FAILED;
    in_job(select_and_wait_at_once);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(job_wait, WSA_WAIT_EVENT_0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &job_event, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    WSANETWORKEVENTS ne;
    int err = 0;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(served, job_event, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, FD_WRITE);
    close_pair();
    CHECK(WSACloseEvent(job_event));
}

/* A job selects (FD_WRITE raised, its upcall deferred to the flush), then selects again on
 * another event: the deferred upcall was the first registration's, gone with it, and the
 * flush after the job signals neither event (the new registration found nothing to raise). */
static WSAEVENT job_event2;

static void select_then_select_elsewhere(void) {
    rc1 = T.lpWSPEventSelect(served, job_event, FD_WRITE, &err1);
    rc2 = T.lpWSPEventSelect(served, job_event2, FD_READ, &err2);
}

static void job_that_does_nothing(void) {}

TEST(event_thread_job_selecting_again_drops_the_upcall_the_first_selection_deferred) {
    start();
    connected_pair();
    job_event = WSACreateEvent();
    job_event2 = WSACreateEvent();
    CHECK(job_event != WSA_INVALID_EVENT && job_event2 != WSA_INVALID_EVENT);
    in_job(select_then_select_elsewhere);
    CHECK_EQ(rc1, 0);
    CHECK_EQ(rc2, 0);
    in_job(job_that_does_nothing); /* runs after the first job's flush */
    CHECK_EQ(WSAWaitForMultipleEvents(1, &job_event, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &job_event2, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK_EQ(write(raw, "a", 1), 1); /* the new registration works */
    CHECK_EQ(WSAWaitForMultipleEvents(1, &job_event2, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    WSANETWORKEVENTS ne;
    int err = 0;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(served, job_event2, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    close_pair();
    CHECK(WSACloseEvent(job_event));
    CHECK(WSACloseEvent(job_event2));
}
