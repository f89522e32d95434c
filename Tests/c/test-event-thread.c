/* WSPRunOnEventThread: an application's jobs run on the provider's event thread, in order,
 * after the event being handled (no provider lock held: a job may call the provider), and none
 * is lost to the last cleanup. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "faults.h"
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
