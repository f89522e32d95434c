/* lpWSPSelect (docs/SEMANTICS.md §8).
 *
 * Readiness of a connected socket is its descriptor's (poll: POLLIN/POLLHUP/POLLERR for
 * reading, POLLOUT for writing, POLLPRI for urgent data). The rest the descriptor cannot
 * show: a listener's requests wait in the provider's backlog, and a non-blocking connect is
 * done only when the connector says so (on the connect-data protocol TCP connects well before
 * the server's answer). So each call enlists a link on every socket it looks at; the places
 * that change that state (a request entering the backlog, an accept, a connect finishing, a
 * close) write to the call's eventfd, which is part of the poll set. Nothing spins: the call
 * sleeps in one poll() until a descriptor or the eventfd is ready or the time-out passes.
 * The one exception is a listener whose requests are all being shown to condition functions
 * right now: a CF_DEFER puts one back without a hook, so the call looks again every 50 ms
 * while that lasts. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backlog.h"
#include "netevents.h"

#define DEFER_SLICE_MS 50

struct entry {
    struct wsp_socket *so;
    int set; /* 0 read, 1 write, 2 except */
    int ready;
    int pollidx; /* index in the pollfd array, 0: not polled */
    struct wsp_select_link link;
};

static const short poll_events[3] = {POLLIN | POLLRDHUP, POLLOUT, POLLPRI};
static const short poll_ready[3] = {POLLIN | POLLRDHUP | POLLHUP | POLLERR, POLLOUT | POLLERR,
                                    POLLPRI};

/* e->so->lock held. Readiness the descriptor cannot show; *slice when the call must look
 * again soon. For connected sockets, asks for a poll. */
static int check(struct entry *e, struct pollfd *pfd, int *npoll, int *slice) {
    struct wsp_socket *so = e->so;
    e->pollidx = 0;
    if (so->closing)
        return 1; /* closed under the call: report it, the next call says WSAENOTSOCK */
    switch (so->state) {
    case WSP_STATE_LISTENING:
        if (e->set != 0 || !so->listener)
            return 0;
        so->role->watch_arrivals(so);
        if (wsp_backlog_available(so->listener))
            return 1;
        if (wsp_backlog_queued(so->listener) > 0)
            *slice = 1; /* all being presented: a deferral brings one back */
        return 0;
    case WSP_STATE_CONNECTED:
        pfd[*npoll] = (struct pollfd){.fd = so->fd, .events = poll_events[e->set]};
        e->pollidx = (*npoll)++;
        return 0;
    case WSP_STATE_OPEN:
        return e->set == 2 && so->connect_error != 0; /* a failed non-blocking connect */
    case WSP_STATE_CONNECTING:
        return 0;
    }
    return 0;
}

int wsp_select(int nfds, WSPFD_SET *r, WSPFD_SET *w, WSPFD_SET *e, const struct timeval *timeout,
               LPINT lpErrno) {
    (void)nfds; /* ignored, as in Winsock */
    if (!wsp_check_started(lpErrno))
        return SOCKET_ERROR;
    WSPFD_SET *sets[3] = {r, w, e};
    unsigned total = 0;
    for (int i = 0; i < 3; i++) {
        if (!sets[i])
            continue;
        if (sets[i]->fd_count > WSP_FD_SETSIZE)
            return wsp_fail(lpErrno, WSAEINVAL);
        total += sets[i]->fd_count;
    }
    if (total == 0)
        return wsp_fail(lpErrno, WSAEINVAL);
    if (timeout && (timeout->tv_sec < 0 || timeout->tv_usec < 0))
        return wsp_fail(lpErrno, WSAEINVAL);

    struct entry *ents = calloc(total, sizeof *ents);
    struct pollfd *pfd = calloc(total + 1, sizeof *pfd);
    int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int err = 0;
    unsigned n = 0;
    if (!ents || !pfd)
        err = WSAENOBUFS;
    else if (wake_fd < 0)
        err = wsp_wsa_from_errno(errno);
    for (int i = 0; i < 3 && !err; i++) {
        if (!sets[i])
            continue;
        for (UINT j = 0; j < sets[i]->fd_count && !err; j++) {
            struct wsp_socket *so = wsp_socket_acquire(sets[i]->fd_array[j], &err);
            if (!so)
                break;
            struct entry *en = &ents[n++];
            en->so = so;
            en->set = i;
            en->link.wake_fd = wake_fd;
            pthread_mutex_lock(&so->lock);
            wsp_netevents_add_waiter(so, &en->link);
            pthread_mutex_unlock(&so->lock);
        }
    }

    uint64_t deadline = WSP_NO_DEADLINE;
    if (timeout && timeout->tv_sec < INT32_MAX) /* longer: a deadline no one will see */
        deadline = wsp_deadline_in((int64_t)timeout->tv_sec * 1000 +
                                   (timeout->tv_usec + 999) / 1000);
    int count = 0;
    while (!err) {
        int npoll = 1, slice = 0, immediate = 0;
        pfd[0] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
        for (unsigned k = 0; k < n; k++) {
            pthread_mutex_lock(&ents[k].so->lock);
            ents[k].ready = check(&ents[k], pfd, &npoll, &slice);
            pthread_mutex_unlock(&ents[k].so->lock);
            immediate += ents[k].ready;
        }
        int t = immediate ? 0 : wsp_ms_left(deadline);
        if (slice && (t < 0 || t > DEFER_SLICE_MS))
            t = DEFER_SLICE_MS;
        int rc = poll(pfd, (nfds_t)npoll, t);
        if (rc < 0 && errno != EINTR) {
            err = wsp_wsa_from_errno(errno);
            break;
        }
        count = immediate;
        for (unsigned k = 0; k < n && rc > 0; k++) {
            if (ents[k].pollidx &&
                (pfd[ents[k].pollidx].revents & poll_ready[ents[k].set])) {
                ents[k].ready = 1;
                count++;
            }
        }
        if (count > 0 || wsp_ms_left(deadline) == 0)
            break;
        uint64_t v;
        ssize_t rd = read(wake_fd, &v, sizeof v);
        (void)rd; /* empty is fine: a slice or a signal ended the poll */
    }

    for (unsigned k = 0; k < n; k++) {
        struct wsp_socket *so = ents[k].so;
        pthread_mutex_lock(&so->lock);
        wsp_netevents_remove_waiter(so, &ents[k].link);
        pthread_mutex_unlock(&so->lock);
        wsp_socket_release(so);
    }
    if (wake_fd >= 0)
        close(wake_fd);
    if (!err) {
        unsigned k = 0;
        for (int i = 0; i < 3; i++) {
            if (!sets[i])
                continue;
            UINT out = 0, cnt = sets[i]->fd_count;
            for (UINT j = 0; j < cnt; j++, k++)
                if (ents[k].ready)
                    sets[i]->fd_array[out++] = sets[i]->fd_array[j];
            sets[i]->fd_count = out;
        }
    }
    free(ents);
    free(pfd);
    return err ? wsp_fail(lpErrno, err) : count;
}
