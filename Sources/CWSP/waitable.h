/* What event objects and message queues share: a readiness descriptor and timed waits.
 *
 * Each object owns an eventfd that is readable exactly while the object is "ready"
 * (signalled / non-empty), so that applications can wait from their own poll or epoll loop.
 * The owner keeps a flag under its own lock and calls raise/lower only on the flag's
 * transitions, which keeps the eventfd's counter at 0 or 1: writes can never block and a
 * read can never find it empty.
 */
#ifndef WSP_WAITABLE_H
#define WSP_WAITABLE_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static inline int wsp_readiness_fd_open(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

static inline void wsp_readiness_fd_raise(int fd) {
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n; /* cannot fail: the counter is 0 here */
}

static inline void wsp_readiness_fd_lower(int fd) {
    uint64_t value;
    ssize_t n = read(fd, &value, sizeof value);
    (void)n; /* cannot fail: the counter is 1 here */
}


/* Timed waits measure CLOCK_MONOTONIC, so setting the wall clock neither cuts a wait short
 * nor stretches it. Returns 0 or a WSA code (wsp_wsa_resource_error). */
static inline int wsp_cond_init_monotonic(pthread_cond_t *cond) {
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return wsp_wsa_resource_error(rc);
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc ? wsp_wsa_resource_error(rc) : 0;
}

/* One wait on cond (initialised by wsp_cond_init_monotonic) until deadline (internal.h's
 * clock; WSP_NO_DEADLINE: no limit). Returns ETIMEDOUT once the deadline has passed; callers
 * re-check their condition either way, since wake-ups may be spurious. */
static inline int wsp_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex,
                                      uint64_t deadline) {
    if (deadline == WSP_NO_DEADLINE)
        return pthread_cond_wait(cond, mutex);
    struct timespec t = wsp_deadline_timespec(deadline);
    return pthread_cond_timedwait(cond, mutex, &t);
}

#endif
