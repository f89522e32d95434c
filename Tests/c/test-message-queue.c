/* Message queues (message_queue.c) and the built-in upcall table (upcalls.c). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "faults.h"
#include "support.h"
#include "upcalls.h"

static int readable(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Reads in another thread and records what it saw. */
struct reader {
    pthread_t thread;
    HWND queue;
    DWORD timeout_ms;
    int result;
    int error;
    WSPMSG msg;
    struct blocker blocker;
};

static void *reader_main(void *arg) {
    struct reader *r = arg;
    WSASetLastError(0);
    blocker_enter(&r->blocker);
    r->result = WSPGetMessage(r->queue, &r->msg, r->timeout_ms);
    blocker_leave(&r->blocker);
    r->error = WSAGetLastError();
    return NULL;
}

static void start_reader(struct reader *r) {
    CHECK_EQ(pthread_create(&r->thread, NULL, reader_main, r), 0);
}

TEST(queue_delivers_in_fifo_order) {
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    WSPMSG m;
    /* Interleave so that the ring wraps, then grows while wrapped. */
    for (int i = 0; i < 10; i++)
        CHECK(WSPPostMessage(q, 0x400, (WPARAM)i, (LPARAM)-i));
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
        CHECK_EQ(m.wParam, i);
    }
    for (int i = 10; i < 110; i++)
        CHECK(WSPPostMessage(q, 0x400 + (UINT)i, (WPARAM)i, (LPARAM)-i));
    for (int i = 5; i < 110; i++) {
        CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
        CHECK(m.hwnd == q);
        CHECK_EQ(m.message, i < 10 ? 0x400u : 0x400u + (UINT)i);
        CHECK_EQ(m.wParam, i);
        CHECK_EQ(m.lParam, -i);
    }
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
    CHECK(WSPDestroyMessageQueue(q));
}

TEST(queue_get_with_zero_timeout_on_empty_returns_0) {
    HWND q = WSPCreateMessageQueue();
    WSPMSG m = {0};
    WSASetLastError(0);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0); /* were 0 "forever", the test would hang */
    CHECK_EQ(WSAGetLastError(), 0); /* a time-out is no error: only a bad queue sets one */
    CHECK(WSPDestroyMessageQueue(q));
}

TEST(queue_get_times_out_after_roughly_the_timeout) {
    HWND q = WSPCreateMessageQueue();
    WSPMSG m;
    /* Not before the time-out; a wait that never ended would hang the test. */
    long long start = now_ms();
    CHECK_EQ(WSPGetMessage(q, &m, 100), 0);
    CHECK(now_ms() - start >= 100);
    CHECK(WSPDestroyMessageQueue(q));
}

TEST(queue_blocked_reader_is_woken_by_a_post) {
    HWND q = WSPCreateMessageQueue();
    struct reader r = {.queue = q, .timeout_ms = WSA_INFINITE};
    start_reader(&r);
    wait_blocked(&r.blocker); /* the post wakes it, rather than finding it on its way in */
    CHECK(WSPPostMessage(q, 7, 42, WSAMAKESELECTREPLY(FD_READ, 0)));
    pthread_join(r.thread, NULL);
    CHECK_EQ(r.result, 1);
    CHECK_EQ(r.msg.message, 7);
    CHECK_EQ(r.msg.wParam, 42);
    CHECK(WSPDestroyMessageQueue(q));
}

TEST(queue_destroy_wakes_a_blocked_reader) {
    HWND q = WSPCreateMessageQueue();
    struct reader r = {.queue = q, .timeout_ms = WSA_INFINITE};
    start_reader(&r);
    wait_blocked(&r.blocker);
    CHECK(WSPDestroyMessageQueue(q));
    pthread_join(r.thread, NULL);
    CHECK_EQ(r.result, -1);
    CHECK_EQ(r.error, WSA_INVALID_HANDLE);
}

TEST(queue_fd_is_readable_exactly_while_non_empty) {
    HWND q = WSPCreateMessageQueue();
    int fd = WSPMessageQueueFd(q);
    CHECK(fd >= 0);
    WSPMSG m;
    CHECK(!readable(fd));
    CHECK(WSPPostMessage(q, 1, 1, 0));
    CHECK(readable(fd));
    CHECK(WSPPostMessage(q, 2, 2, 0));
    CHECK(readable(fd));
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
    CHECK(readable(fd)); /* one left */
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
    CHECK(!readable(fd));
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
    CHECK(!readable(fd));
    CHECK(WSPPostMessage(q, 3, 3, 0));
    CHECK(readable(fd));
    CHECK(WSPDestroyMessageQueue(q));
}

/* Only the post that makes the queue non-empty raises its descriptor (one write); posts to
 * a queue already holding messages write nothing. */
TEST(queue_posts_to_a_non_empty_queue_write_nothing) {
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    FAULT(write, .nth = 1000000, .this_thread = 1); /* counts this thread's writes */
    CHECK(WSPPostMessage(q, 1, 1, 0));
    int first = fault_calls(FAULT_write);
    for (int i = 2; i <= 4; i++)
        CHECK(WSPPostMessage(q, (UINT)i, (WPARAM)i, 0));
    int later = fault_calls(FAULT_write) - first;
    fault_clear();
    CHECK_EQ(first, 1);
    CHECK_EQ(later, 0);
    WSPMSG m;
    for (int i = 1; i <= 4; i++) {
        CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
        CHECK_EQ(m.message, (UINT)i);
    }
    CHECK(!readable(WSPMessageQueueFd(q)));
    CHECK(WSPDestroyMessageQueue(q));
}

TEST(queue_stale_and_garbage_handles_are_rejected) {
    HWND old = WSPCreateMessageQueue();
    CHECK(WSPDestroyMessageQueue(old));
    HWND q = WSPCreateMessageQueue(); /* likely reuses old's slot */
    CHECK(q != NULL);
    CHECK(q != old);
    WSPMSG m;
    WSASetLastError(0);
    CHECK(!WSPPostMessage(old, 1, 1, 0));
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
    WSASetLastError(0);
    CHECK_EQ(WSPGetMessage(old, &m, 0), -1);
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_HANDLE);
    CHECK_EQ(WSPMessageQueueFd(old), -1);
    CHECK(!WSPDestroyMessageQueue(old));
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0); /* the post above did not land here */

    WSAEVENT event = WSACreateEvent();
    HWND garbage[] = {NULL, (HWND)(uintptr_t)1, (HWND)~(uintptr_t)0, (HWND)&m,
                      (HWND)((uintptr_t)q + 1), (HWND)event};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        CHECK(!WSPPostMessage(garbage[i], 1, 1, 0));
        CHECK_EQ(WSPGetMessage(garbage[i], &m, 0), -1);
        CHECK_EQ(WSPMessageQueueFd(garbage[i]), -1);
        CHECK(!WSPDestroyMessageQueue(garbage[i]));
    }
    CHECK(WSPPostMessage(q, 1, 1, 0)); /* the real one still works */
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
    CHECK(WSPDestroyMessageQueue(q));
    CHECK(WSACloseEvent(event));
}

TEST(queue_get_rejects_a_null_message) {
    HWND q = WSPCreateMessageQueue();
    CHECK(WSPPostMessage(q, 1, 1, 0));
    WSASetLastError(0);
    CHECK_EQ(WSPGetMessage(q, NULL, 0), -1);
    CHECK_EQ(WSAGetLastError(), WSA_INVALID_PARAMETER);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1); /* the message was not consumed */
    CHECK(WSPDestroyMessageQueue(q));
}

enum { PRODUCERS = 8, POSTS_EACH = 1000 };

struct producer {
    HWND queue;
    int id;
    int failures;
};

static void *producer_main(void *arg) {
    struct producer *p = arg;
    for (int i = 0; i < POSTS_EACH; i++)
        if (!WSPPostMessage(p->queue, (UINT)p->id, (WPARAM)(p->id * POSTS_EACH + i), 0))
            p->failures++;
    return NULL;
}

TEST(queue_many_posters_one_reader_gets_each_message_once) {
    HWND q = WSPCreateMessageQueue();
    struct producer p[PRODUCERS];
    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){q, i, 0};
        CHECK_EQ(pthread_create(&t[i], NULL, producer_main, &p[i]), 0);
    }
    static unsigned char seen[PRODUCERS * POSTS_EACH];
    int next[PRODUCERS] = {0}; /* each producer's messages arrive in its order */
    for (int n = 0; n < PRODUCERS * POSTS_EACH; n++) {
        WSPMSG m;
        CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
        CHECK(m.wParam < PRODUCERS * POSTS_EACH);
        CHECK_EQ(seen[m.wParam], 0);
        seen[m.wParam] = 1;
        CHECK(m.message < PRODUCERS);
        CHECK_EQ(m.wParam, m.message * POSTS_EACH + next[m.message]);
        next[m.message]++;
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(p[i].failures, 0);
    }
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
    CHECK(!readable(WSPMessageQueueFd(q)));
    CHECK(WSPDestroyMessageQueue(q));
}

/* ---------------------------------------------------------------------------------------- */
/* The built-in upcall table                                                                */

static BOOL custom_set_event(WSAEVENT hEvent, LPINT lpErrno) {
    (void)hEvent;
    *lpErrno = 99;
    return FALSE;
}

TEST(upcalls_fill_every_member_of_a_zeroed_table) {
    WSPUPCALLTABLE t;
    memset(&t, 0, sizeof t);
    wsp_upcalls_fill_builtin(&t);
    CHECK(t.lpWPUCloseEvent != NULL);
    CHECK(t.lpWPUCloseSocketHandle != NULL);
    CHECK(t.lpWPUCreateEvent != NULL);
    CHECK(t.lpWPUCreateSocketHandle != NULL);
    CHECK(t.lpWPUFDIsSet != NULL);
    CHECK(t.lpWPUGetProviderPath != NULL);
    CHECK(t.lpWPUModifyIFSHandle != NULL);
    CHECK(t.lpWPUPostMessage != NULL);
    CHECK(t.lpWPUQueryBlockingCallback != NULL);
    CHECK(t.lpWPUQuerySocketHandleContext != NULL);
    CHECK(t.lpWPUQueueApc != NULL);
    CHECK(t.lpWPUResetEvent != NULL);
    CHECK(t.lpWPUSetEvent != NULL);
    CHECK(t.lpWPUOpenCurrentThread != NULL);
    CHECK(t.lpWPUCloseThread != NULL);
    CHECK(t.lpWPUPostMessage == WSPPostMessage);
    CHECK(t.lpWPUFDIsSet == WSPFDIsSet);
}

TEST(upcalls_keep_a_member_the_caller_set) {
    WSPUPCALLTABLE t;
    memset(&t, 0, sizeof t);
    t.lpWPUSetEvent = custom_set_event;
    wsp_upcalls_fill_builtin(&t);
    CHECK(t.lpWPUSetEvent == custom_set_event);
    CHECK(t.lpWPUResetEvent != NULL);
    int err = 0;
    CHECK(!t.lpWPUSetEvent(NULL, &err));
    CHECK_EQ(err, 99);
}

TEST(upcalls_drive_events_through_the_table) {
    WSPUPCALLTABLE t;
    memset(&t, 0, sizeof t);
    wsp_upcalls_fill_builtin(&t);
    int err = 0;
    WSASetLastError(WSA_INVALID_HANDLE); /* an earlier call's failure */
    WSAEVENT e = t.lpWPUCreateEvent(&err);
    CHECK(e != WSA_INVALID_EVENT);
    CHECK_EQ(err, 0); /* a success reports no error */
    CHECK(t.lpWPUSetEvent(e, &err));
    CHECK_EQ(WSAWaitForMultipleEvents(1, &e, FALSE, 0, FALSE), WSA_WAIT_EVENT_0);
    CHECK(t.lpWPUResetEvent(e, &err));
    CHECK_EQ(WSAWaitForMultipleEvents(1, &e, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK(t.lpWPUCloseEvent(e, &err));
    err = 0;
    CHECK(!t.lpWPUSetEvent(e, &err));
    CHECK_EQ(err, WSA_INVALID_HANDLE);
    err = 0;
    CHECK(!t.lpWPUCloseEvent(e, &err));
    CHECK_EQ(err, WSA_INVALID_HANDLE);
}

TEST(upcalls_post_messages_through_the_table) {
    WSPUPCALLTABLE t;
    memset(&t, 0, sizeof t);
    wsp_upcalls_fill_builtin(&t);
    HWND q = WSPCreateMessageQueue();
    CHECK(t.lpWPUPostMessage(q, 0x8001, 5, WSAMAKESELECTREPLY(FD_CLOSE, WSAECONNRESET)));
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
    CHECK_EQ(m.message, 0x8001);
    CHECK_EQ(m.wParam, 5);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_CLOSE);
    CHECK_EQ(WSAGETSELECTERROR(m.lParam), WSAECONNRESET);
    CHECK(WSPDestroyMessageQueue(q));
    CHECK(!t.lpWPUPostMessage(q, 0x8001, 5, 0));
}

TEST(upcalls_without_a_linux_counterpart_report_eopnotsupp) {
    WSPUPCALLTABLE t;
    memset(&t, 0, sizeof t);
    wsp_upcalls_fill_builtin(&t);
    int err = 0;
    CHECK_EQ(t.lpWPUCloseSocketHandle(1, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    CHECK(t.lpWPUCreateSocketHandle(1001, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    char path[64];
    int len = sizeof path;
    GUID id = {0};
    CHECK_EQ(t.lpWPUGetProviderPath(&id, path, &len, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    CHECK(t.lpWPUModifyIFSHandle(1001, 5, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    DWORD_PTR ctx = 0;
    CHECK_EQ(t.lpWPUQuerySocketHandleContext(5, &ctx, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
    err = 0;
    WSATHREADID tid;
    CHECK_EQ(t.lpWPUQueueApc(&tid, NULL, 0, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEOPNOTSUPP);
}

TEST(upcalls_report_no_blocking_hook_and_harmless_threads) {
    WSPUPCALLTABLE t;
    memset(&t, 0, sizeof t);
    wsp_upcalls_fill_builtin(&t);
    int err = 0;
    LPBLOCKINGCALLBACK cb = (LPBLOCKINGCALLBACK)(uintptr_t)1; /* must be overwritten */
    DWORD_PTR ctx = 77;
    CHECK_EQ(t.lpWPUQueryBlockingCallback(1001, &cb, &ctx, &err), 0);
    CHECK(cb == NULL);
    CHECK_EQ(ctx, 0);
    WSATHREADID tid;
    memset(&tid, 0xab, sizeof tid);
    CHECK_EQ(t.lpWPUOpenCurrentThread(&tid, &err), 0);
    CHECK(tid.ThreadHandle == NULL);
    CHECK_EQ(tid.Reserved, (DWORD_PTR)syscall(SYS_gettid)); /* the kernel's id, for a debugger */
    CHECK_EQ(t.lpWPUCloseThread(&tid, &err), 0);
    /* Nowhere to put the thread id: refused, nothing written. */
    err = 0;
    CHECK_EQ(t.lpWPUOpenCurrentThread(NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    /* Nor anywhere for the error: refused all the same, nothing written. */
    CHECK_EQ(t.lpWPUOpenCurrentThread(NULL, NULL), SOCKET_ERROR);
}

TEST(fd_is_set_looks_only_at_the_counted_entries) {
    WSPFD_SET set;
    WSP_FD_ZERO(&set);
    CHECK(!WSPFDIsSet(5, &set));
    WSP_FD_SET(5, &set);
    WSP_FD_SET(9, &set);
    WSP_FD_SET(5, &set); /* no duplicate */
    CHECK_EQ(set.fd_count, 2);
    /* A member is TRUE itself, as Windows' __WSAFDIsSet (WPUFDIsSet's) answers: code ported
     * from Windows writes FD_ISSET(s, &set) == TRUE. */
    CHECK_EQ(WSPFDIsSet(5, &set), TRUE);
    CHECK_EQ(WSP_FD_ISSET(9, &set), TRUE);
    CHECK(!WSPFDIsSet(7, &set));
    set.fd_array[2] = 7; /* beyond fd_count: not a member */
    CHECK(!WSPFDIsSet(7, &set));
    set.fd_count = WSP_FD_SETSIZE + 100; /* a corrupt count must not read past the array */
    CHECK(WSPFDIsSet(9, &set));
    CHECK(!WSPFDIsSet(12345, NULL));
}

struct fd_poller {
    int fd;
    int rc;
    short revents;
    struct blocker blocker;
};

static void *poll_fd_main(void *arg) {
    struct fd_poller *p = arg;
    struct pollfd pfd = {p->fd, POLLIN, 0};
    blocker_enter(&p->blocker);
    p->rc = poll(&pfd, 1, -1);
    blocker_leave(&p->blocker);
    p->revents = pfd.revents;
    return NULL;
}

/* An application's poll loop on an empty queue's descriptor wakes when the queue is destroyed
 * (closing a descriptor would not wake it: the queue makes it readable first). */
/* The ring starts with room for 16 messages and doubles when full (message_queue.c): posting
 * n messages costs about log2(n / 16) + 1 allocations, never one per message. Pins that growth
 * (each post is a system-call-free append while there is room), counted through the provider's
 * malloc. */
TEST(queue_ring_starts_at_16_and_doubles) {
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    FAULT(malloc, .nth = 1000000, .this_thread = 1); /* counts this thread's allocations */
    int allocations[65];
    for (int i = 1; i <= 64; i++) {
        CHECK(WSPPostMessage(q, 1, (WPARAM)i, 0));
        allocations[i] = fault_calls(FAULT_malloc);
    }
    fault_clear();
    CHECK_EQ(allocations[1], 1);  /* the first post makes the ring */
    CHECK_EQ(allocations[16], 1); /* 16 fit in it */
    CHECK_EQ(allocations[17], 2); /* the 17th doubles it */
    CHECK_EQ(allocations[32], 2);
    CHECK_EQ(allocations[33], 3);
    CHECK_EQ(allocations[64], 3);
    WSPMSG m;
    for (int i = 1; i <= 64; i++) { /* every message kept, in order, across the growths */
        CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
        CHECK_EQ(m.wParam, (WPARAM)i);
    }
    CHECK(WSPDestroyMessageQueue(q));
}

/* The descriptor of a queue holding messages is readable already: destroying it writes
 * nothing to it (its eventfd counter stays the 1 that "non-empty" wrote). */
TEST(queue_destroy_of_a_non_empty_queue_leaves_its_descriptor_as_it_is) {
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    CHECK(WSPPostMessage(q, 1, 1, 0));
    int fd = dup(WSPMessageQueueFd(q)); /* the test's own look at the counter */
    CHECK(fd >= 0);
    FAULT(write, .nth = 1000000, .this_thread = 1); /* counts this thread's writes */
    CHECK(WSPDestroyMessageQueue(q));
    int writes = fault_calls(FAULT_write);
    fault_clear();
    CHECK_EQ(writes, 0);
    uint64_t counter = 0;
    CHECK_EQ(read(fd, &counter, sizeof counter), (ssize_t)sizeof counter);
    CHECK_EQ(counter, 1);
    close(fd);
}

TEST(queue_destroy_wakes_a_poll_on_its_descriptor) {
    HWND q = WSPCreateMessageQueue();
    struct fd_poller p = {.fd = WSPMessageQueueFd(q)};
    CHECK(p.fd >= 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, poll_fd_main, &p), 0);
    wait_blocked(&p.blocker);
    CHECK(WSPDestroyMessageQueue(q));
    pthread_join(t, NULL);
    /* It woke. What it saw depends on whether the descriptor, raised first, was still open
     * when poll looked again (POLLIN) or already closed with the queue (POLLNVAL): both tell
     * the loop to look, and which comes first is the two threads' race, not the queue's. */
    CHECK_EQ(p.rc, 1);
    CHECK(p.revents == POLLIN || p.revents == POLLNVAL);
}

/* Out of descriptors, WSPCreateMessageQueue fails with WSAEMFILE and leaves nothing open. */
TEST(queue_create_out_of_descriptors_is_wsaemfile) {
    HWND warm = WSPCreateMessageQueue(); /* whatever the first call opens for good is open now */
    CHECK(warm != NULL);
    struct rlimit old;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    int before = open_fds();
    struct rlimit low = {(rlim_t)before + 4, old.rlim_max};
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    static int hog[16];
    int hogs = 0, fd;
    while ((fd = dup(0)) >= 0) {
        CHECK(hogs < 16);
        hog[hogs++] = fd;
    }
    CHECK_EQ(errno, EMFILE);
    WSASetLastError(0);
    CHECK(WSPCreateMessageQueue() == NULL);
    CHECK_EQ(WSAGetLastError(), WSAEMFILE);
    for (int i = 0; i < hogs; i++)
        close(hog[i]);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    CHECK_EQ(open_fds(), before);
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    CHECK(WSPDestroyMessageQueue(q));
    CHECK(WSPDestroyMessageQueue(warm));
}

/* Calls that succeed leave the thread's last error as it was. */
TEST(queue_calls_that_succeed_leave_the_last_error_alone) {
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    WSASetLastError(12345);
    CHECK(WSPPostMessage(q, 0x400, 1, 2));
    CHECK_EQ(WSAGetLastError(), 12345);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
    CHECK_EQ(WSAGetLastError(), 12345);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0); /* empty: no error either */
    CHECK_EQ(WSAGetLastError(), 12345);
    CHECK(WSPDestroyMessageQueue(q));
    CHECK_EQ(WSAGetLastError(), 12345);
}

/* Descriptor 0 is a descriptor like any other: a process without standard input gets it for
 * its first queue, which works and closes it when destroyed. */
TEST(queue_on_descriptor_0_works) {
    CHECK_EQ(close(0), 0);
    HWND q = WSPCreateMessageQueue();
    CHECK(q != NULL);
    CHECK_EQ(WSPMessageQueueFd(q), 0);
    CHECK(WSPPostMessage(q, 0x400, 1, 2));
    struct pollfd p = {.fd = 0, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 1);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1);
    CHECK(WSPDestroyMessageQueue(q));
    CHECK_EQ(fcntl(0, F_GETFD), -1); /* closed */
}
