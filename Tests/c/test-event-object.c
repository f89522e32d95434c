/* Event objects (event_object.c) and the thread's last error. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "faults.h"
#include "support.h"

static int readable(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static DWORD poll_one(WSAEVENT e) {
    return WSAWaitForMultipleEvents(1, &e, FALSE, 0, FALSE);
}

/* Sets an event from another thread once the waiting thread is blocked in its wait. */
struct delayed_set {
    WSAEVENT event;
    struct blocker *waiter;
    BOOL ok;
};

static void *delayed_set_thread(void *arg) {
    struct delayed_set *d = arg;
    wait_blocked(d->waiter);
    d->ok = WSASetEvent(d->event);
    return NULL;
}

/* WSAWaitForMultipleEvents on this thread, made known to wait_blocked. */
static DWORD wait_here(struct blocker *b, DWORD n, const WSAEVENT *e, BOOL all, DWORD ms) {
    blocker_enter(b);
    DWORD r = WSAWaitForMultipleEvents(n, e, all, ms, FALSE);
    blocker_leave(b);
    return r;
}

/* Waits in another thread and records what it saw. */
struct waiting_thread {
    pthread_t thread;
    WSAEVENT events[4];
    DWORD count;
    BOOL wait_all;
    DWORD result;
    int error;
    struct blocker blocker;
};

static void *waiting_thread_main(void *arg) {
    struct waiting_thread *w = arg;
    WSASetLastError(0);
    w->result = wait_here(&w->blocker, w->count, w->events, w->wait_all, WSA_INFINITE);
    w->error = WSAGetLastError();
    return NULL;
}

static void start_waiter(struct waiting_thread *w) {
    CHECK_EQ(pthread_create(&w->thread, NULL, waiting_thread_main, w), 0);
}

TEST(event_create_set_reset_close) {
    WSAEVENT e = WSACreateEvent();
    CHECK(e != WSA_INVALID_EVENT);
    CHECK_EQ(poll_one(e), WSA_WAIT_TIMEOUT); /* created non-signalled */
    CHECK(WSASetEvent(e));
    CHECK_EQ(poll_one(e), WSA_WAIT_EVENT_0);
    CHECK(WSASetEvent(e)); /* setting a signalled event is not an error */
    CHECK(WSAResetEvent(e));
    CHECK_EQ(poll_one(e), WSA_WAIT_TIMEOUT);
    CHECK(WSAResetEvent(e));
    CHECK(WSACloseEvent(e));
}

/* A finished wait stops counting as one of the event's pollers: setting the event afterwards,
 * with no one polling it and its descriptor never handed out, writes nothing to that
 * descriptor. */
TEST(event_set_after_a_finished_wait_leaves_its_descriptor_alone) {
    WSAEVENT e = WSACreateEvent();
    CHECK(e != WSA_INVALID_EVENT);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &e, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &e, FALSE, 1, FALSE), WSA_WAIT_TIMEOUT);
    FAULT(write, .nth = 1000000, .this_thread = 1); /* counts this thread's writes */
    CHECK(WSASetEvent(e));
    int writes = fault_calls(FAULT_write);
    fault_clear();
    CHECK_EQ(writes, 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &e, FALSE, 0, FALSE), WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(e));
}

/* Many threads polling one event at once: each wait counts itself in and out under the
 * event's lock, so once they are done no poller is left, and setting the event writes
 * nothing to its descriptor. (Without the lock, counts get lost.) */
#define POLLERS 4
static void *poll_many(void *arg) {
    WSAEVENT e = arg;
    for (int i = 0; i < 20000; i++)
        if (WSAWaitForMultipleEvents(1, &e, FALSE, 0, FALSE) != WSA_WAIT_TIMEOUT)
            return (void *)1;
    return NULL;
}

TEST(event_concurrent_polls_leave_no_poller_behind) {
    WSAEVENT e = WSACreateEvent();
    CHECK(e != WSA_INVALID_EVENT);
    for (int round = 0; round < 3; round++) { /* lost counts would show in most rounds */
        pthread_t t[POLLERS];
        for (int i = 0; i < POLLERS; i++)
            CHECK_EQ(pthread_create(&t[i], NULL, poll_many, e), 0);
        for (int i = 0; i < POLLERS; i++) {
            void *r;
            CHECK_EQ(pthread_join(t[i], &r), 0);
            CHECK(r == NULL);
        }
        FAULT(write, .nth = 1000000, .this_thread = 1); /* counts this thread's writes */
        CHECK(WSASetEvent(e));
        int writes = fault_calls(FAULT_write);
        fault_clear();
        CHECK_EQ(writes, 0);
        CHECK(WSAResetEvent(e));
    }
    CHECK(WSACloseEvent(e));
}

TEST(event_closed_handle_is_rejected) {
    WSAEVENT e = WSACreateEvent();
    CHECK(WSACloseEvent(e));
    WSASetLastError(0);
    CHECK(!WSASetEvent(e));
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
    WSASetLastError(0);
    CHECK(!WSAResetEvent(e));
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
    WSASetLastError(0);
    CHECK(!WSACloseEvent(e));
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
    WSASetLastError(0);
    CHECK_EQ(WSAEventFd(e), -1);
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
    WSASetLastError(0);
    CHECK_EQ(poll_one(e), WSA_WAIT_FAILED);
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
}

TEST(event_stale_handle_never_reaches_a_later_event) {
    WSAEVENT old = WSACreateEvent();
    CHECK(WSACloseEvent(old));
    WSAEVENT e = WSACreateEvent(); /* likely reuses old's slot */
    CHECK(e != WSA_INVALID_EVENT);
    CHECK(e != old);
    CHECK(!WSASetEvent(old));
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
    CHECK_EQ(poll_one(e), WSA_WAIT_TIMEOUT);
    CHECK(WSASetEvent(e));
    CHECK(!WSAResetEvent(old));
    CHECK_EQ(poll_one(e), WSA_WAIT_EVENT_0);
    CHECK(!WSACloseEvent(old));
    CHECK(WSASetEvent(e)); /* still open */
    CHECK(WSACloseEvent(e));
}

TEST(event_garbage_handles_are_rejected) {
    WSAEVENT live = WSACreateEvent();
    HWND queue = WSPCreateMessageQueue();
    int local;
    WSAEVENT garbage[] = {
        WSA_INVALID_EVENT,
        (WSAEVENT)(uintptr_t)1,
        (WSAEVENT)(uintptr_t)0xdeadbeef,
        (WSAEVENT)~(uintptr_t)0,
        (WSAEVENT)&local,
        (WSAEVENT)((uintptr_t)live + 1),
        (WSAEVENT)((uintptr_t)live ^ ((uintptr_t)1 << 40)),
        (WSAEVENT)queue, /* another kind of handle */
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        if (garbage[i] == live)
            continue;
        WSASetLastError(0);
        CHECK(!WSASetEvent(garbage[i]));
        CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
        CHECK(!WSACloseEvent(garbage[i]));
        CHECK_EQ(WSAEventFd(garbage[i]), -1);
    }
    CHECK_EQ(poll_one(live), WSA_WAIT_TIMEOUT); /* nothing above reached it */
    CHECK(WSACloseEvent(live));
    CHECK(WSPDestroyMessageQueue(queue)); /* nor the queue */
}

TEST(event_fd_is_readable_exactly_while_signalled) {
    WSAEVENT e = WSACreateEvent();
    int fd = WSAEventFd(e);
    CHECK(fd >= 0);
    CHECK(!readable(fd));
    CHECK(WSASetEvent(e));
    CHECK(readable(fd));
    CHECK(WSASetEvent(e));
    CHECK(readable(fd));
    CHECK(WSAResetEvent(e)); /* one reset undoes any number of sets */
    CHECK(!readable(fd));
    CHECK(WSAResetEvent(e));
    CHECK(!readable(fd));
    CHECK(WSASetEvent(e));
    CHECK(readable(fd));
    CHECK_EQ(poll_one(e), WSA_WAIT_EVENT_0);
    CHECK(readable(fd)); /* waiting does not reset */
    CHECK(WSACloseEvent(e));
}

TEST(event_wait_any_returns_lowest_signalled_index) {
    WSAEVENT e[4];
    for (int i = 0; i < 4; i++)
        e[i] = WSACreateEvent();
    CHECK_EQ(WSAWaitForMultipleEvents(4, e, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK(WSASetEvent(e[3]));
    CHECK_EQ(WSAWaitForMultipleEvents(4, e, FALSE, 0, FALSE), WSA_WAIT_EVENT_0 + 3);
    CHECK(WSASetEvent(e[1]));
    CHECK_EQ(WSAWaitForMultipleEvents(4, e, FALSE, 0, FALSE), WSA_WAIT_EVENT_0 + 1);
    CHECK(WSASetEvent(e[0]));
    CHECK_EQ(WSAWaitForMultipleEvents(4, e, FALSE, WSA_INFINITE, FALSE), WSA_WAIT_EVENT_0);
    for (int i = 0; i < 4; i++)
        CHECK(WSACloseEvent(e[i]));
}

TEST(event_wait_any_is_woken_by_a_set_from_another_thread) {
    WSAEVENT e[2] = {WSACreateEvent(), WSACreateEvent()};
    struct blocker me = {0, 0};
    struct delayed_set d = {e[1], &me, FALSE};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, delayed_set_thread, &d), 0);
    CHECK_EQ(wait_here(&me, 2, e, FALSE, 60000), WSA_WAIT_EVENT_0 + 1);
    pthread_join(t, NULL);
    CHECK(d.ok);
    CHECK(WSACloseEvent(e[0]));
    CHECK(WSACloseEvent(e[1]));
}

/* A wait-any whose poll is interrupted (EINTR) has not timed out: it polls again and goes on
 * waiting, here until another thread sets the event. */
struct interrupted_wait {
    WSAEVENT event;
    struct blocker blocker;
    DWORD result;
    int interrupted;
};

static void *interrupted_wait_main(void *arg) {
    struct interrupted_wait *w = arg;
    FAULT(poll, .nth = 1, .err = EINTR, .this_thread = 1);
    w->result = wait_here(&w->blocker, 1, &w->event, FALSE, WSA_INFINITE);
    w->interrupted = fault_fired(FAULT_poll);
    return NULL;
}

TEST(event_wait_any_interrupted_goes_on_waiting) {
    struct interrupted_wait w = {.event = WSACreateEvent()};
    CHECK(w.event != WSA_INVALID_EVENT);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, interrupted_wait_main, &w), 0);
    bool blocked = wait_blocked_or_returned(&w.blocker); /* false: it gave up at the EINTR */
    CHECK(WSASetEvent(w.event));
    pthread_join(t, NULL);
    fault_clear();
    CHECK(blocked);
    CHECK_EQ(w.interrupted, 1);
    CHECK_EQ(w.result, WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(w.event));
}

/* A wait-any that times out sleeps in one poll, whose time-out is the answer: it makes no
 * second poll to look again (pins the cost of a timed-out wait: one system call). */
TEST(event_wait_any_that_times_out_polls_once) {
    WSAEVENT e = WSACreateEvent();
    CHECK(e != WSA_INVALID_EVENT);
    FAULT(poll, .nth = 1000000, .this_thread = 1); /* counts this thread's polls */
    DWORD r = WSAWaitForMultipleEvents(1, &e, FALSE, 20, FALSE);
    int polls = fault_calls(FAULT_poll);
    fault_clear();
    CHECK_EQ(r, WSA_WAIT_TIMEOUT);
    CHECK_EQ(polls, 1);
    CHECK(WSACloseEvent(e));
}

TEST(event_wait_all_needs_every_event) {
    WSAEVENT e[3] = {WSACreateEvent(), WSACreateEvent(), WSACreateEvent()};
    CHECK(WSASetEvent(e[0]));
    CHECK(WSASetEvent(e[2]));
    CHECK_EQ(WSAWaitForMultipleEvents(3, e, TRUE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK_EQ(WSAWaitForMultipleEvents(3, e, TRUE, 50, FALSE), WSA_WAIT_TIMEOUT);

    struct blocker me = {0, 0};
    struct delayed_set d = {e[1], &me, FALSE};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, delayed_set_thread, &d), 0);
    CHECK_EQ(wait_here(&me, 3, e, TRUE, WSA_INFINITE), WSA_WAIT_EVENT_0);
    pthread_join(t, NULL);
    CHECK(d.ok);
    for (int i = 0; i < 3; i++)
        CHECK(WSACloseEvent(e[i]));
}

TEST(event_wait_all_sees_one_moment) {
    /* e[0] is reset before e[1] is set: the two were never signalled together. */
    WSAEVENT e[2] = {WSACreateEvent(), WSACreateEvent()};
    CHECK(WSASetEvent(e[0]));
    struct waiting_thread w = {.events = {e[0], e[1]}, .count = 2, .wait_all = TRUE};
    start_waiter(&w);
    wait_blocked(&w.blocker);
    CHECK(WSAResetEvent(e[0]));
    CHECK(WSASetEvent(e[1]));
    wait_blocked(&w.blocker); /* still waiting, asleep in the same wait */
    CHECK_EQ(WSAWaitForMultipleEvents(2, e, TRUE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK(WSASetEvent(e[0])); /* now both: the waiter must finish */
    pthread_join(w.thread, NULL);
    CHECK_EQ(w.result, WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(e[0]));
    CHECK(WSACloseEvent(e[1]));
}

TEST(event_wait_accepts_the_same_event_twice) {
    WSAEVENT e = WSACreateEvent();
    WSAEVENT twice[2] = {e, e};
    CHECK_EQ(WSAWaitForMultipleEvents(2, twice, TRUE, 20, FALSE), WSA_WAIT_TIMEOUT);
    struct blocker me = {0, 0};
    struct delayed_set d = {e, &me, FALSE};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, delayed_set_thread, &d), 0);
    CHECK_EQ(wait_here(&me, 2, twice, TRUE, 60000), WSA_WAIT_EVENT_0);
    pthread_join(t, NULL);
    CHECK(WSACloseEvent(e));
}

TEST(event_wait_times_out_after_roughly_the_timeout) {
    WSAEVENT e[2] = {WSACreateEvent(), WSACreateEvent()};
    /* Not before the time-out; how long after it depends on the machine, so only a wait that
     * never ends (a hang, caught by the test's time limit) fails the other way. */
    long long start = now_ms();
    CHECK_EQ(WSAWaitForMultipleEvents(2, e, FALSE, 100, FALSE), WSA_WAIT_TIMEOUT);
    CHECK(now_ms() - start >= 100);
    start = now_ms();
    CHECK_EQ(WSAWaitForMultipleEvents(2, e, TRUE, 100, FALSE), WSA_WAIT_TIMEOUT);
    CHECK(now_ms() - start >= 100);
    CHECK(WSACloseEvent(e[0]));
    CHECK(WSACloseEvent(e[1]));
}

TEST(event_wait_rejects_bad_counts) {
    WSAEVENT e[WSA_MAXIMUM_WAIT_EVENTS + 1];
    for (int i = 0; i <= WSA_MAXIMUM_WAIT_EVENTS; i++)
        e[i] = WSACreateEvent();
    CHECK(WSASetEvent(e[0]));
    WSASetLastError(0);
    CHECK_EQ(WSAWaitForMultipleEvents(0, e, FALSE, 0, FALSE), WSA_WAIT_FAILED);
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_PARAMETER);
    WSASetLastError(0);
    CHECK_EQ(WSAWaitForMultipleEvents(WSA_MAXIMUM_WAIT_EVENTS + 1, e, FALSE, 0, FALSE),
             WSA_WAIT_FAILED);
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_PARAMETER);
    WSASetLastError(0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, NULL, FALSE, 0, FALSE), WSA_WAIT_FAILED);
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_PARAMETER);
    /* The largest count works, up to its last index. */
    CHECK(WSAResetEvent(e[0]));
    CHECK(WSASetEvent(e[WSA_MAXIMUM_WAIT_EVENTS - 1]));
    CHECK_EQ(WSAWaitForMultipleEvents(WSA_MAXIMUM_WAIT_EVENTS, e, FALSE, 0, FALSE),
             WSA_WAIT_EVENT_0 + WSA_MAXIMUM_WAIT_EVENTS - 1);
    for (int i = 0; i <= WSA_MAXIMUM_WAIT_EVENTS; i++)
        CHECK(WSACloseEvent(e[i]));
}

TEST(event_wait_fails_on_a_closed_handle_among_open_ones) {
    WSAEVENT e[3] = {WSACreateEvent(), WSACreateEvent(), WSACreateEvent()};
    CHECK(WSASetEvent(e[0]));
    CHECK(WSACloseEvent(e[2]));
    WSASetLastError(0);
    CHECK_EQ(WSAWaitForMultipleEvents(3, e, FALSE, 0, FALSE), WSA_WAIT_FAILED);
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
    CHECK(WSACloseEvent(e[0]));
    CHECK(WSACloseEvent(e[1]));
}

TEST(event_close_wakes_a_waiting_thread) {
    WSAEVENT e = WSACreateEvent();
    struct waiting_thread w = {.events = {e}, .count = 1};
    start_waiter(&w);
    wait_blocked(&w.blocker);
    CHECK(WSACloseEvent(e));
    pthread_join(w.thread, NULL);
    CHECK_EQ(w.result, WSA_WAIT_FAILED);
    CHECK_EQ(w.error, WSA_INVALID_HANDLE);
}

TEST(event_close_of_a_signalled_event_wakes_a_wait_all) {
    /* The waiter has nothing to wait for on e[0]; its close must still reach it. */
    WSAEVENT e[2] = {WSACreateEvent(), WSACreateEvent()};
    CHECK(WSASetEvent(e[0]));
    struct waiting_thread w = {.events = {e[0], e[1]}, .count = 2, .wait_all = TRUE};
    start_waiter(&w);
    wait_blocked(&w.blocker);
    CHECK(WSACloseEvent(e[0]));
    pthread_join(w.thread, NULL);
    CHECK_EQ(w.result, WSA_WAIT_FAILED);
    CHECK_EQ(w.error, WSA_INVALID_HANDLE);
    CHECK(WSACloseEvent(e[1]));
}

TEST(event_is_manual_reset) {
    WSAEVENT e = WSACreateEvent();
    struct waiting_thread w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiting_thread){.events = {e}, .count = 1};
        start_waiter(&w[i]);
    }
    for (int i = 0; i < 3; i++)
        wait_blocked(&w[i].blocker);
    CHECK(WSASetEvent(e)); /* one set releases every waiter */
    for (int i = 0; i < 3; i++) {
        pthread_join(w[i].thread, NULL);
        CHECK_EQ(w[i].result, WSA_WAIT_EVENT_0);
    }
    CHECK_EQ(WSAWaitForMultipleEvents(1, &e, FALSE, 1000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &e, FALSE, 1000, FALSE), WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(e));
}

static void *last_error_thread(void *arg) {
    int *seen = arg;
    seen[0] = WSAGetLastError();
    WSASetLastError(456);
    seen[1] = WSAGetLastError();
    return NULL;
}

TEST(event_last_error_belongs_to_the_thread) {
    WSASetLastError(123);
    int seen[2] = {-1, -1};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, last_error_thread, seen), 0);
    pthread_join(t, NULL);
    CHECK_EQ(seen[0], 0);
    CHECK_EQ(seen[1], 456);
    CHECK_EQ(WSAGetLastError(), 123);
}

TEST(event_thousands_open_at_once_are_distinct) {
    enum { N = 3000 };
    static WSAEVENT e[N];
    for (int i = 0; i < N; i++) {
        e[i] = WSACreateEvent();
        CHECK(e[i] != WSA_INVALID_EVENT);
    }
    for (int i = 0; i < N; i += 2)
        CHECK(WSASetEvent(e[i]));
    for (int i = 0; i < N; i++)
        CHECK_EQ(poll_one(e[i]), i % 2 ? WSA_WAIT_TIMEOUT : WSA_WAIT_EVENT_0);
    for (int i = 0; i < N; i++)
        CHECK(WSACloseEvent(e[i]));
}

TEST(event_create_close_10000_leaks_no_descriptors) {
    int before = open_fds();
    for (int i = 0; i < 10000; i++) {
        WSAEVENT e = WSACreateEvent();
        CHECK(e != WSA_INVALID_EVENT);
        if (i % 3 == 0)
            CHECK(WSASetEvent(e));
        CHECK(WSACloseEvent(e));
    }
    CHECK_EQ(open_fds(), before);
}

/* Threads set, reset and wait on events while the main thread closes them: every call
 * either works or reports WSA_INVALID_HANDLE, and nothing crashes (run under the
 * sanitizers to make this test mean something). */
struct hammer {
    WSAEVENT *events;
    int count;
    int bad;
};

static void *hammer_thread(void *arg) {
    struct hammer *h = arg;
    for (int round = 0; round < 2000; round++) {
        WSAEVENT e = h->events[round % h->count];
        if (!WSASetEvent(e) && WSAGetLastError() != WSA_INVALID_HANDLE)
            h->bad++;
        if (!WSAResetEvent(e) && WSAGetLastError() != WSA_INVALID_HANDLE)
            h->bad++;
        DWORD r = WSAWaitForMultipleEvents((DWORD)h->count, h->events, round % 2, 1, FALSE);
        if (r == WSA_WAIT_FAILED && WSAGetLastError() != WSA_INVALID_HANDLE)
            h->bad++;
    }
    return NULL;
}

TEST(event_close_races_with_use) {
    enum { EVENTS = 8, THREADS = 4 };
    WSAEVENT e[EVENTS];
    for (int i = 0; i < EVENTS; i++)
        e[i] = WSACreateEvent();
    struct hammer h[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (struct hammer){e, EVENTS, 0};
        CHECK_EQ(pthread_create(&t[i], NULL, hammer_thread, &h[i]), 0);
    }
    for (int i = 0; i < EVENTS; i++) {
        sleep_ms(5);
        CHECK(WSACloseEvent(e[i]));
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(h[i].bad, 0);
    }
}

/* Out of descriptors, WSACreateEvent fails with WSAEMFILE and leaves nothing open: with none
 * free, and with one (enough for the event's descriptor, not for its set's). */
TEST(event_create_out_of_descriptors_is_wsaemfile) {
    WSAEVENT warm = WSACreateEvent(); /* whatever the first call opens for good is open now */
    CHECK(warm != WSA_INVALID_EVENT);
    struct rlimit old;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    for (int spare = 0; spare <= 1; spare++) {
        int before = open_fds();
        /* A limit a little above what is open, then every descriptor up to it taken. */
        struct rlimit low = {(rlim_t)before + 4, old.rlim_max};
        CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
        static int hog[16];
        int hogs = 0, fd;
        while ((fd = dup(0)) >= 0) {
            CHECK(hogs < 16);
            hog[hogs++] = fd;
        }
        CHECK_EQ(errno, EMFILE);
        for (int i = 0; i < spare; i++)
            close(hog[--hogs]);
        WSASetLastError(0);
        CHECK(WSACreateEvent() == WSA_INVALID_EVENT);
        CHECK_EQ(WSAGetLastError(), WSAEMFILE);
        for (int i = 0; i < hogs; i++)
            close(hog[i]);
        CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
        CHECK_EQ(open_fds(), before);
    }
    WSAEVENT e = WSACreateEvent();
    CHECK(e != WSA_INVALID_EVENT);
    CHECK(WSACloseEvent(e));
    CHECK(WSACloseEvent(warm));
}

/* A closed event's slot is the one reused, never a live event's: after A, B, close B, create
 * C, the handles A and C name two different events. */
TEST(event_slot_freed_by_a_close_is_reused_without_touching_a_live_event) {
    WSAEVENT a = WSACreateEvent(), b = WSACreateEvent();
    CHECK(a != WSA_INVALID_EVENT && b != WSA_INVALID_EVENT);
    CHECK(WSACloseEvent(b));
    WSAEVENT c = WSACreateEvent();
    CHECK(c != WSA_INVALID_EVENT);
    CHECK(WSASetEvent(c));
    CHECK_EQ(poll_one(a), WSA_WAIT_TIMEOUT);
    CHECK(WSASetEvent(a));
    CHECK(WSAResetEvent(c));
    CHECK_EQ(poll_one(a), WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(a));
    CHECK(WSASetEvent(c)); /* still open */
    CHECK_EQ(poll_one(c), WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(c));
}

/* A WSACreateEvent that gets its descriptor but not its set's closes the one it got, even when
 * that is descriptor 0 (a program may run with its standard input closed). */
TEST(event_create_that_fails_frees_descriptor_zero) {
    WSAEVENT warm = WSACreateEvent(); /* whatever the first call opens for good is open now */
    CHECK(warm != WSA_INVALID_EVENT);
    int saved = dup(0);
    CHECK(saved >= 0);
    CHECK_EQ(close(0), 0);
    struct rlimit old;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = {(rlim_t)open_fds() + 4, old.rlim_max};
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    static int hog[16];
    int hogs = 0, fd;
    while ((fd = dup(1)) >= 0) { /* the first is 0: the lowest free */
        CHECK(hogs < 16);
        hog[hogs++] = fd;
    }
    CHECK_EQ(errno, EMFILE);
    CHECK_EQ(hog[0], 0);
    CHECK_EQ(close(0), 0); /* descriptor 0 is the only one free */
    WSASetLastError(0);
    CHECK(WSACreateEvent() == WSA_INVALID_EVENT);
    CHECK_EQ(WSAGetLastError(), WSAEMFILE);
    CHECK_EQ(fcntl(0, F_GETFD), -1); /* free again */
    CHECK_EQ(errno, EBADF);
    for (int i = 1; i < hogs; i++)
        close(hog[i]);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    CHECK_EQ(dup2(saved, 0), 0);
    close(saved);
    CHECK(WSACloseEvent(warm));
}

/* An event listed again after another one counts once, whichever order the events' addresses
 * have: the wait answers at once for a signalled one and times out for unsignalled ones. */
TEST(event_wait_accepts_an_event_listed_again_after_another) {
    WSAEVENT a = WSACreateEvent(), b = WSACreateEvent(), c = WSACreateEvent();
    CHECK(a != WSA_INVALID_EVENT && b != WSA_INVALID_EVENT && c != WSA_INVALID_EVENT);
    const WSAEVENT lists[][4] = {{a, b, a, c}, {b, a, b, c}, {c, b, a, c}, {a, c, b, a}};
    for (int k = 0; k < 4; k++) {
        CHECK_EQ(WSAWaitForMultipleEvents(4, lists[k], FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
        CHECK_EQ(WSAWaitForMultipleEvents(4, lists[k], TRUE, 0, FALSE), WSA_WAIT_TIMEOUT);
    }
    CHECK(WSASetEvent(a));
    CHECK(WSASetEvent(b));
    CHECK(WSASetEvent(c));
    for (int k = 0; k < 4; k++) {
        CHECK_EQ(WSAWaitForMultipleEvents(4, lists[k], FALSE, 0, FALSE), WSA_WAIT_EVENT_0);
        CHECK_EQ(WSAWaitForMultipleEvents(4, lists[k], TRUE, 0, FALSE), WSA_WAIT_EVENT_0);
    }
    CHECK(WSACloseEvent(a) && WSACloseEvent(b) && WSACloseEvent(c));
}

/* ---- issue #11: paths the mutation runs found unpinned ---------------------------------- */

/* Two threads waiting on the same two events listed in opposite orders take the events' locks
 * in one order (by address): neither holds one while waiting for the other's. A wrong order
 * deadlocks, which the test's time limit turns into a failure. */
struct opposite_waits {
    WSAEVENT e[2];
    int reversed;
};

static void *wait_in_order_main(void *arg) {
    struct opposite_waits *o = arg;
    WSAEVENT list[2] = {o->e[o->reversed], o->e[!o->reversed]};
    for (int i = 0; i < 20000; i++) {
        DWORD r = WSAWaitForMultipleEvents(2, list, i % 2 == 0, 0, FALSE);
        CHECK(r == WSA_WAIT_TIMEOUT || r == WSA_WAIT_EVENT_0 || r == WSA_WAIT_EVENT_0 + 1);
    }
    return NULL;
}

TEST(event_waits_listing_two_events_in_opposite_orders_do_not_deadlock) {
    WSAEVENT e[2] = {WSACreateEvent(), WSACreateEvent()};
    struct opposite_waits a = {{e[0], e[1]}, 0}, b = {{e[0], e[1]}, 1};
    pthread_t ta, tb;
    CHECK_EQ(pthread_create(&ta, NULL, wait_in_order_main, &a), 0);
    CHECK_EQ(pthread_create(&tb, NULL, wait_in_order_main, &b), 0);
    for (int i = 0; i < 2000; i++) { /* setters take one lock at a time: they add contention */
        CHECK(WSASetEvent(e[i % 2]));
        CHECK(WSAResetEvent(e[i % 2]));
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(WSACloseEvent(e[0]));
    CHECK(WSACloseEvent(e[1]));
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* A time-out of 1 ms is a wait, not a look: neither a wait-any nor a wait-all returns before
 * it has passed. */
TEST(event_wait_of_one_millisecond_waits_it) {
    WSAEVENT e = WSACreateEvent();
    for (int all = 0; all < 2; all++) {
        for (int i = 0; i < 5; i++) {
            long long t0 = now_ns();
            CHECK_EQ(WSAWaitForMultipleEvents(1, &e, all, 1, FALSE), WSA_WAIT_TIMEOUT);
            CHECK(now_ns() - t0 >= 1000000);
        }
    }
    CHECK(WSACloseEvent(e));
}

/* A call that succeeds leaves the thread's last error as it was. */
TEST(event_calls_that_succeed_leave_the_last_error_alone) {
    WSAEVENT e = WSACreateEvent();
    WSASetLastError(12345);
    CHECK(WSASetEvent(e));
    CHECK_EQ(WSAGetLastError(), 12345);
    CHECK(WSAResetEvent(e));
    CHECK_EQ(WSAGetLastError(), 12345);
    CHECK(WSACloseEvent(e));
    CHECK_EQ(WSAGetLastError(), 12345);
}

/* Two wait-alls enlisted on one event: the one enlisted first leaving (its other event closed)
 * takes only itself off the event's list; the other is still woken when the event is set. */
TEST(event_wait_all_leaving_first_keeps_the_later_waiter_enlisted) {
    WSAEVENT e = WSACreateEvent(), f = WSACreateEvent();
    struct waiting_thread first = {.events = {e, f}, .count = 2, .wait_all = TRUE};
    start_waiter(&first);
    wait_blocked(&first.blocker); /* enlisted on e before the second */
    struct waiting_thread second = {.events = {e}, .count = 1, .wait_all = TRUE};
    start_waiter(&second);
    wait_blocked(&second.blocker);
    CHECK(WSACloseEvent(f)); /* the first leaves, failing */
    pthread_join(first.thread, NULL);
    CHECK_EQ(first.result, WSA_WAIT_FAILED);
    CHECK(WSASetEvent(e));
    pthread_join(second.thread, NULL); /* not woken: the test's time limit fails it */
    CHECK_EQ(second.result, WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(e));
}

/* The descriptor mirrors the flag only while someone may poll it: an event set and reset with
 * no one polling it and its descriptor never handed out makes no system call on it, neither
 * the write that would raise it nor the read that would lower it. */
TEST(event_set_and_reset_unwatched_touch_no_descriptor) {
    WSAEVENT e = WSACreateEvent();
    CHECK(e != WSA_INVALID_EVENT);
    FAULT(write, .nth = 1000000, .this_thread = 1); /* counts this thread's writes */
    FAULT(read, .nth = 1000000, .this_thread = 1);  /* and reads */
    CHECK(WSASetEvent(e));
    CHECK(WSAResetEvent(e));
    int writes = fault_calls(FAULT_write), reads = fault_calls(FAULT_read);
    fault_clear();
    CHECK_EQ(writes, 0);
    CHECK_EQ(reads, 0);
    CHECK_EQ(poll_one(e), WSA_WAIT_TIMEOUT);
    CHECK(WSACloseEvent(e));
}

/* A wait that succeeds or times out leaves the thread's last error as it was, for all of the
 * events or any one of them. */
TEST(event_waits_that_do_not_fail_leave_the_last_error_alone) {
    WSAEVENT e[2] = {WSACreateEvent(), WSACreateEvent()};
    for (BOOL all = FALSE; all <= TRUE; all++) {
        CHECK(WSAResetEvent(e[0]));
        WSASetLastError(12345);
        CHECK_EQ(WSAWaitForMultipleEvents(2, e, all, 0, FALSE), WSA_WAIT_TIMEOUT);
        CHECK_EQ(WSAGetLastError(), 12345);
        CHECK_EQ(WSAWaitForMultipleEvents(2, e, all, 1, FALSE), WSA_WAIT_TIMEOUT);
        CHECK_EQ(WSAGetLastError(), 12345);
        CHECK(WSASetEvent(e[0]));
        CHECK(WSASetEvent(e[1]));
        CHECK_EQ(WSAWaitForMultipleEvents(2, e, all, 0, FALSE), WSA_WAIT_EVENT_0);
        CHECK_EQ(WSAGetLastError(), 12345);
        CHECK_EQ(WSAWaitForMultipleEvents(2, e, all, 1, FALSE), WSA_WAIT_EVENT_0);
        CHECK_EQ(WSAGetLastError(), 12345);
        CHECK(WSAResetEvent(e[1]));
    }
    CHECK(WSACloseEvent(e[0]));
    CHECK(WSACloseEvent(e[1]));
}

/* An event no socket was ever registered on has a set the reactor never watched: closing it
 * closes the set's descriptor itself, with no epoll_ctl. */
TEST(event_close_of_an_unwatched_event_asks_the_reactor_nothing) {
    WSAEVENT e = WSACreateEvent();
    CHECK(e != WSA_INVALID_EVENT);
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK(WSACloseEvent(e));
    int calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK_EQ(calls, 0);
}

/* Descriptor 0 is a descriptor like any other: a process without standard input gets it for
 * its first event, which works (signalled: readable) and is closed with the event. */
TEST(event_on_descriptor_0_works) {
    CHECK_EQ(close(0), 0);
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    CHECK_EQ(WSAEventFd(ev), 0);
    CHECK(WSASetEvent(ev));
    struct pollfd p = {.fd = 0, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 1);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(ev));
    CHECK_EQ(fcntl(0, F_GETFD), -1); /* closed */
}

/* An event signalled before anyone asked for its descriptor: the descriptor handed out is
 * readable at once (nothing raised it while no one polled it). */
TEST(event_fd_of_an_event_already_signalled_is_readable) {
    WSAEVENT e = WSACreateEvent();
    CHECK(e != WSA_INVALID_EVENT);
    CHECK(WSASetEvent(e));
    int fd = WSAEventFd(e);
    CHECK(fd >= 0);
    CHECK(readable(fd));
    CHECK(WSAResetEvent(e));
    CHECK(!readable(fd));
    CHECK(WSACloseEvent(e));
}
