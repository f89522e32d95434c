/* The wrappers the provider's calls are renamed to in the test binary; faults.h says how. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "faults.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

/* One armed fault. Every field is atomic: the provider's threads read it while a test may
 * re-arm it. armed is stored last (release) and read first (acquire). */
struct rule {
    atomic_int armed;
    atomic_int first, last; /* the failing calls, 1-based, inclusive */
    atomic_int err;
    atomic_uintptr_t thread; /* 0: any thread */
    atomic_size_t max_bytes;
    atomic_int hold;
    atomic_int calls, fired;
};

/* Held calls (.hold) wait on this until fault_release. */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static int holding, released;

#define RULES 4 /* faults armed at once on one function */
static struct rule rules[FAULT_FUNCTION_COUNT][RULES];

/* Tells threads apart without pthread_t's opaque comparison: the address of a thread-local. */
static _Thread_local char thread_marker;

static void arm(struct rule *r, struct fault f) {
    atomic_store(&r->armed, 0);
    int first = f.nth > 0 ? f.nth : 1;
    atomic_store(&r->first, first);
    atomic_store(&r->last, f.times < 0 ? INT_MAX : first + (f.times ? f.times : 1) - 1);
    atomic_store(&r->err, f.err);
    atomic_store(&r->thread, f.this_thread ? (uintptr_t)&thread_marker : 0);
    atomic_store(&r->max_bytes, f.max_bytes);
    atomic_store(&r->hold, f.hold);
    if (f.hold) {
        pthread_mutex_lock(&hold_lock);
        released = 0;
        pthread_mutex_unlock(&hold_lock);
    }
    atomic_store(&r->calls, 0);
    atomic_store(&r->fired, 0);
    atomic_store_explicit(&r->armed, 1, memory_order_release);
}

void fault_set(enum fault_fn fn, struct fault f) {
    for (int i = 1; i < RULES; i++)
        atomic_store(&rules[fn][i].armed, 0);
    arm(&rules[fn][0], f);
}

void fault_add(enum fault_fn fn, struct fault f) {
    for (int i = 0; i < RULES; i++) {
        if (!atomic_load(&rules[fn][i].armed)) {
            arm(&rules[fn][i], f);
            return;
        }
    }
    fprintf(stderr, "faults.c: more than %d faults on one function\n", RULES);
    exit(1);
}

void fault_clear(void) {
    for (int fn = 0; fn < FAULT_FUNCTION_COUNT; fn++)
        for (int i = 0; i < RULES; i++)
            atomic_store(&rules[fn][i].armed, 0);
}

int fault_calls(enum fault_fn fn) { return atomic_load(&rules[fn][0].calls); }

int fault_fired(enum fault_fn fn) {
    int n = 0;
    for (int i = 0; i < RULES; i++)
        n += atomic_load(&rules[fn][i].fired);
    return n;
}

/* Counts the call in every armed rule that sees it; when it is a failing call of one of
 * them (the first, if several), returns 1 with errno set to that rule's error, and
 * *max_bytes, when given, to its byte limit (0: none). */
static int hit(enum fault_fn fn, size_t *max_bytes) {
    struct rule *match = NULL;
    for (int i = 0; i < RULES; i++) {
        struct rule *r = &rules[fn][i];
        if (!atomic_load_explicit(&r->armed, memory_order_acquire))
            continue;
        uintptr_t t = atomic_load(&r->thread);
        if (t && t != (uintptr_t)&thread_marker)
            continue;
        int call = atomic_fetch_add(&r->calls, 1) + 1;
        if (!match && call >= atomic_load(&r->first) && call <= atomic_load(&r->last))
            match = r;
    }
    if (!match)
        return 0;
    if (atomic_load(&match->hold)) {
        atomic_fetch_add(&match->fired, 1);
        pthread_mutex_lock(&hold_lock);
        holding++;
        while (!released)
            pthread_cond_wait(&hold_cond, &hold_lock);
        holding--;
        pthread_mutex_unlock(&hold_lock);
        return 0;
    }
    size_t limit = atomic_load(&match->max_bytes);
    if (limit && !max_bytes)
        return 0; /* a byte limit means nothing to a call that moves no bytes */
    atomic_fetch_add(&match->fired, 1);
    if (max_bytes)
        *max_bytes = limit;
    errno = atomic_load(&match->err);
    return 1;
}

int fault_holding(void) {
    pthread_mutex_lock(&hold_lock);
    int n = holding;
    pthread_mutex_unlock(&hold_lock);
    return n;
}

void fault_release(void) {
    pthread_mutex_lock(&hold_lock);
    released = 1;
    pthread_cond_broadcast(&hold_cond);
    pthread_mutex_unlock(&hold_lock);
}

/* ---- the provider's descriptors ---- */

#define TRACKED_FDS 65536 /* well past the 20,000 RLIMIT_NOFILE of the test machines */
static atomic_uchar provider_owns[TRACKED_FDS];

static int opened(int fd) {
    if (fd >= 0 && fd < TRACKED_FDS)
        atomic_store(&provider_owns[fd], 1);
    return fd;
}

int provider_fd_list(int *out, int max) {
    int n = 0;
    for (int fd = 0; fd < TRACKED_FDS; fd++) {
        if (!atomic_load(&provider_owns[fd]))
            continue;
        if (n < max)
            out[n] = fd;
        n++;
    }
    return n;
}

int provider_fds(void) { return provider_fd_list(NULL, 0); }

static atomic_int syncs;

int provider_syncs(void) { return atomic_load(&syncs); }

void provider_syncs_add(int change) { atomic_fetch_add(&syncs, change); }

/* ---- the wrappers (named in the renaming list the Makefile makes from faults.h) ---- */

#define FAIL_IF(fn, value)           \
    do {                             \
        if (hit(FAULT_##fn, NULL))   \
            return (value);          \
    } while (0)

void *wsp_fault_malloc(size_t n) {
    FAIL_IF(malloc, NULL);
    return malloc(n);
}

void *wsp_fault_calloc(size_t n, size_t size) {
    FAIL_IF(calloc, NULL);
    return calloc(n, size);
}

void *wsp_fault_realloc(void *p, size_t n) {
    FAIL_IF(realloc, NULL);
    return realloc(p, n);
}

int wsp_fault_socket(int domain, int type, int protocol) {
    FAIL_IF(socket, -1);
    return opened(socket(domain, type, protocol));
}

int wsp_fault_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    FAIL_IF(accept4, -1);
    return opened(accept4(fd, addr, len, flags));
}

int wsp_fault_eventfd(unsigned int initval, int flags) {
    FAIL_IF(eventfd, -1);
    return opened(eventfd(initval, flags));
}

int wsp_fault_epoll_create1(int flags) {
    FAIL_IF(epoll_create1, -1);
    return opened(epoll_create1(flags));
}

int wsp_fault_timerfd_create(int clockid, int flags) {
    FAIL_IF(timerfd_create, -1);
    return opened(timerfd_create(clockid, flags));
}

int wsp_fault_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
    FAIL_IF(epoll_ctl, -1);
    return epoll_ctl(epfd, op, fd, ev);
}

static atomic_int sleeping_epoll_waits;

int fault_sleeping_epoll_waits(void) { return atomic_load(&sleeping_epoll_waits); }

int wsp_fault_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout) {
    FAIL_IF(epoll_wait, -1);
    if (timeout != 0)
        atomic_fetch_add(&sleeping_epoll_waits, 1);
    return epoll_wait(epfd, ev, max, timeout);
}

static _Thread_local int sleeping_polls;

int fault_sleeping_polls(void) { return sleeping_polls; }

static _Thread_local int longest_poll = INT_MIN;

int fault_longest_poll(void) {
    int t = longest_poll;
    longest_poll = INT_MIN;
    return t;
}

int wsp_fault_poll(struct pollfd *p, nfds_t n, int timeout) {
    FAIL_IF(poll, -1);
    if (timeout != 0)
        sleeping_polls++;
    if (longest_poll != -1 && (timeout < 0 || timeout > longest_poll))
        longest_poll = timeout < 0 ? -1 : timeout;
    return poll(p, n, timeout);
}

/* The byte count a shortened transfer may move: at most limit (0: no limit). */
static size_t shorten(size_t n, size_t limit) { return limit && limit < n ? limit : n; }

ssize_t wsp_fault_send(int fd, const void *buf, size_t n, int flags) {
    size_t limit = 0;
    if (hit(FAULT_send, &limit) && !limit)
        return -1;
    return send(fd, buf, shorten(n, limit), flags);
}

ssize_t wsp_fault_recv(int fd, void *buf, size_t n, int flags) {
    size_t limit = 0;
    if (hit(FAULT_recv, &limit) && !limit)
        return -1;
    return recv(fd, buf, shorten(n, limit), flags);
}

ssize_t wsp_fault_read(int fd, void *buf, size_t n) {
    size_t limit = 0;
    if (hit(FAULT_read, &limit) && !limit)
        return -1;
    return read(fd, buf, shorten(n, limit));
}

ssize_t wsp_fault_write(int fd, const void *buf, size_t n) {
    size_t limit = 0;
    if (hit(FAULT_write, &limit) && !limit)
        return -1;
    return write(fd, buf, shorten(n, limit));
}

/* A copy of msg whose buffers hold at most limit bytes in all (iov: room for its iovecs). */
static struct msghdr shortened(const struct msghdr *msg, size_t limit, struct iovec *iov) {
    struct msghdr m = *msg;
    size_t left = limit, k = 0;
    for (; k < msg->msg_iovlen && left > 0; k++) {
        iov[k] = msg->msg_iov[k];
        iov[k].iov_len = shorten(iov[k].iov_len, left);
        left -= iov[k].iov_len;
    }
    m.msg_iov = iov;
    m.msg_iovlen = k;
    return m;
}

ssize_t wsp_fault_sendmsg(int fd, const struct msghdr *msg, int flags) {
    size_t limit = 0;
    if (hit(FAULT_sendmsg, &limit)) {
        if (!limit)
            return -1;
        struct iovec iov[IOV_MAX];
        struct msghdr m = shortened(msg, limit, iov);
        return sendmsg(fd, &m, flags);
    }
    return sendmsg(fd, msg, flags);
}

ssize_t wsp_fault_recvmsg(int fd, struct msghdr *msg, int flags) {
    size_t limit = 0;
    if (hit(FAULT_recvmsg, &limit)) {
        if (!limit)
            return -1;
        struct iovec iov[IOV_MAX];
        struct msghdr m = shortened(msg, limit, iov);
        ssize_t n = recvmsg(fd, &m, flags);
        msg->msg_flags = m.msg_flags;
        msg->msg_controllen = m.msg_controllen;
        msg->msg_namelen = m.msg_namelen;
        return n;
    }
    return recvmsg(fd, msg, flags);
}

int wsp_fault_dup3(int from, int to, int flags) {
    FAIL_IF(dup3, -1);
    return opened(dup3(from, to, flags));
}

/* The provider passes fcntl and ioctl one argument or none; reading one that was not passed
 * reads a register the kernel then ignores. */
int wsp_fault_fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    FAIL_IF(fcntl, -1);
    int rc = fcntl(fd, cmd, arg);
    return cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC ? opened(rc) : rc;
}

int wsp_fault_ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    FAIL_IF(ioctl, -1);
    return ioctl(fd, request, arg);
}

int wsp_fault_listen(int fd, int backlog) {
    FAIL_IF(listen, -1);
    return listen(fd, backlog);
}

int wsp_fault_bind(int fd, const struct sockaddr *addr, socklen_t len) {
    FAIL_IF(bind, -1);
    return bind(fd, addr, len);
}

int wsp_fault_connect(int fd, const struct sockaddr *addr, socklen_t len) {
    FAIL_IF(connect, -1);
    return connect(fd, addr, len);
}

int wsp_fault_setsockopt(int fd, int level, int name, const void *v, socklen_t len) {
    FAIL_IF(setsockopt, -1);
    return setsockopt(fd, level, name, v, len);
}

int wsp_fault_getsockopt(int fd, int level, int name, void *v, socklen_t *len) {
    FAIL_IF(getsockopt, -1);
    return getsockopt(fd, level, name, v, len);
}

int wsp_fault_getsockname(int fd, struct sockaddr *addr, socklen_t *len) {
    FAIL_IF(getsockname, -1);
    return getsockname(fd, addr, len);
}

int wsp_fault_shutdown(int fd, int how) {
    FAIL_IF(shutdown, -1);
    return shutdown(fd, how);
}

/* pthread_create reports its error as its result, not in errno. */
int wsp_fault_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                             void *arg) {
    if (hit(FAULT_pthread_create, NULL))
        return errno;
    return pthread_create(t, attr, fn, arg);
}

/* Closes of a descriptor the provider did not hold open: -1, or one closed already. */
static atomic_int foreign_closes;

int provider_foreign_closes(void) { return atomic_load(&foreign_closes); }
/* So does pthread_cond_init (glibc's never fails: only a fault takes the provider's way out). */
int wsp_fault_pthread_cond_init(pthread_cond_t *cond, const pthread_condattr_t *attr) {
    if (hit(FAULT_pthread_cond_init, NULL))
        return errno;
    int rc = pthread_cond_init(cond, attr);
    if (rc == 0)
        provider_syncs_add(1);
    return rc;
}

int wsp_fault_close(int fd) {
    /* Forgotten before the close: once closed, the number may be another thread's at once. */
    if (fd < 0 || (fd < TRACKED_FDS && !atomic_exchange(&provider_owns[fd], 0)))
        atomic_fetch_add(&foreign_closes, 1);
    if (hit(FAULT_close, NULL)) { /* Linux frees the descriptor even when close fails */
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}
