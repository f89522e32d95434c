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

#include "wsp/errors.h"

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
 * nor stretches it. Returns 0 or an errno value. */
static inline int wsp_cond_init_monotonic(pthread_cond_t *cond) {
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

/* The moment timeout_ms from now. For "no limit", pass NULL to wsp_cond_wait_until instead. */
static inline struct timespec wsp_deadline_after(uint32_t timeout_ms) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(timeout_ms / 1000u);
    t.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* One wait on cond (initialised by wsp_cond_init_monotonic). deadline NULL: no limit.
 * Returns ETIMEDOUT once the deadline has passed; callers re-check their condition either
 * way, since wake-ups may be spurious. */
static inline int wsp_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex,
                                      const struct timespec *deadline) {
    return deadline ? pthread_cond_timedwait(cond, mutex, deadline)
                    : pthread_cond_wait(cond, mutex);
}

#endif
