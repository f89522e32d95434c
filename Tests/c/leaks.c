/* The check runner.c makes after each test, in the test's own process: once the test's
 * start-ups of the provider and of the Winsock layer are cleaned up (which closes every
 * socket) and the event objects and message queues it left open are closed, no descriptor
 * the provider opened may still be open (faults.h counts them), and, in a build with
 * LeakSanitizer or AddressSanitizer, no memory may be unreachable. A removed close() or
 * free() then fails the test that runs past it, whatever the test itself checks. So does a
 * lock of the provider's that is never released, or released without being taken: the
 * provider's mutexes are destroyed through a wrapper here (leaks.syms) that counts the ones
 * glibc finds still in use, and a mutex or condition variable initialised and never destroyed
 * (glibc's need no destroy, but POSIX asks for one before the memory is reused). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <wsp.h>
#include <wsp/winsock2.h>

#include "faults.h"
#include "harness.h"

/* In the test binary the provider's own definitions of these are renamed wsp_real_* (the
 * Makefile's renaming list), so that the objects a test opens are known here. */
WSAEVENT wsp_real_WSACreateEvent(void);
BOOL wsp_real_WSACloseEvent(WSAEVENT hEvent);
HWND wsp_real_WSPCreateMessageQueue(void);
BOOL wsp_real_WSPDestroyMessageQueue(HWND hWnd);

#define OPEN_MAX_TRACKED 4096
static _Atomic(uintptr_t) open_events[OPEN_MAX_TRACKED], open_queues[OPEN_MAX_TRACKED];

static void remember(_Atomic(uintptr_t) *list, uintptr_t h) {
    for (int i = 0; h && i < OPEN_MAX_TRACKED; i++) {
        uintptr_t empty = 0;
        if (atomic_compare_exchange_strong(&list[i], &empty, h))
            return;
    }
}

static void forget(_Atomic(uintptr_t) *list, uintptr_t h) {
    for (int i = 0; h && i < OPEN_MAX_TRACKED; i++) {
        uintptr_t mine = h;
        if (atomic_compare_exchange_strong(&list[i], &mine, 0))
            return;
    }
}

WSAEVENT WSACreateEvent(void) {
    WSAEVENT h = wsp_real_WSACreateEvent();
    if (h != WSA_INVALID_EVENT)
        remember(open_events, (uintptr_t)h);
    return h;
}

BOOL WSACloseEvent(WSAEVENT hEvent) {
    BOOL ok = wsp_real_WSACloseEvent(hEvent);
    if (ok)
        forget(open_events, (uintptr_t)hEvent);
    return ok;
}

HWND WSPCreateMessageQueue(void) {
    HWND h = wsp_real_WSPCreateMessageQueue();
    remember(open_queues, (uintptr_t)h);
    return h;
}

BOOL WSPDestroyMessageQueue(HWND hWnd) {
    BOOL ok = wsp_real_WSPDestroyMessageQueue(hWnd);
    if (ok)
        forget(open_queues, (uintptr_t)hWnd);
    return ok;
}

/* The provider's pthread_mutex_destroy (renamed by leaks.syms). glibc refuses with EBUSY to
 * destroy a mutex that is locked, or whose count of users is not zero: one unlocked more often
 * than it was locked, by a thread that did not hold it, has a count below zero for good. */
static atomic_int busy_mutexes;

int wsp_checked_mutex_destroy(pthread_mutex_t *m) {
    int rc = pthread_mutex_destroy(m);
    if (rc == EBUSY)
        atomic_fetch_add(&busy_mutexes, 1);
    provider_syncs_add(-1);
    return rc;
}

/* The provider's pthread_mutex_init and pthread_cond_destroy (leaks.syms); its
 * pthread_cond_init is faults.c's. */
int wsp_checked_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr) {
    int rc = pthread_mutex_init(m, attr);
    if (rc == 0)
        provider_syncs_add(1);
    return rc;
}

int wsp_checked_cond_destroy(pthread_cond_t *c) {
    provider_syncs_add(-1);
    return pthread_cond_destroy(c);
}

/* Provided by LeakSanitizer (alone or in AddressSanitizer) when the binary is linked with it. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

/* Ends what the test left running; each loop ends at the first cleanup that fails (nothing
 * left to clean up). */
static void tear_down(void) {
    fault_clear();
    for (int i = 0; i < 1000 && WSACleanup() == 0; i++) {
    }
    WSPDATA data;
    WSPUPCALLTABLE up = {0};
    WSPPROC_TABLE table;
    if (WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &table) == 0) {
        int err = 0;
        for (int i = 0; i < 1000 && table.lpWSPCleanup(&err) == 0; i++) {
        }
    }
    for (int i = 0; i < OPEN_MAX_TRACKED; i++) {
        uintptr_t h = atomic_exchange(&open_events[i], 0);
        if (h)
            wsp_real_WSACloseEvent((WSAEVENT)h);
        h = atomic_exchange(&open_queues[i], 0);
        if (h)
            wsp_real_WSPDestroyMessageQueue((HWND)h);
    }
}

/* Whether count() comes to 0 within 5 s: a thread the test left inside a call may still hold
 * a socket whose last reference closes its descriptor and destroys its lock. */
static int comes_to_zero(int (*count)(void)) {
    struct timespec start, now, pause = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        if (count() == 0)
            return 1;
        nanosleep(&pause, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - start.tv_sec < 5);
    return 0;
}

int wsp_test_leaks(void) {
    tear_down();
    int fds[16];
    int n = comes_to_zero(provider_fds) ? 0 : provider_fd_list(fds, 16);
    for (int i = 0; i < n && i < 16; i++) {
        char path[64], what[128];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
        ssize_t len = readlink(path, what, sizeof what - 1);
        what[len > 0 ? len : 0] = 0;
        printf("  leaked: descriptor %d (%s), opened by the provider and never closed\n", fds[i],
               what);
    }
    int leaked = n > 0;
    int foreign = provider_foreign_closes();
    if (foreign) {
        printf("  %d close(s) by the provider of a descriptor it did not hold open (-1, or one "
               "closed already)\n",
               foreign);
        leaked = 1;
    }
    int busy = atomic_exchange(&busy_mutexes, 0);
    if (busy) {
        printf("  %d mutex(es) of the provider's destroyed while locked, or unlocked without "
               "being locked\n",
               busy);
        leaked = 1;
    }
    int syncs = comes_to_zero(provider_syncs) ? 0 : provider_syncs();
    if (syncs) {
        printf("  %d mutex(es) and condition variable(s) of the provider's initialised and never "
               "destroyed\n",
               syncs);
        provider_syncs_add(-syncs);
        leaked = 1;
    }
    if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check()) {
        printf("  leaked: memory (LeakSanitizer's report is on stderr)\n");
        leaked = 1;
    }
    return leaked;
}
