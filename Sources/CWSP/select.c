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
 * while that lasts.
 *
 * Sets are counted arrays of any length (a program may raise FD_SETSIZE, as on Windows). A
 * handle listed twice in a set counts once; one set passed in two places (read and write)
 * gets the union of both answers. A plain-TCP connect the kernel has finished is finished
 * here too (wsp_connector_poll), not when the reactor gets to it. */
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
    SOCKET handle;
    int set; /* 0 read, 1 write, 2 except */
    int ready;
    int pollidx; /* index in the pollfd array, 0: not polled */
    bool closed;    /* closed under the call, as seen at its end */
    bool connecting; /* polled for a plain-TCP connect's end, not for readiness */
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
    e->connecting = 0;
    if (so->closing)
        return 1; /* closed under the call: report it (WSAENOTSOCK in the except set) */
    /* A connect done in the kernel is done here, and usable at once (nothing to do unless a
     * non-blocking connect is under way). */
    wsp_connector_poll(so);
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
        /* Urgent data read inline is data: readable, not exceptional (Windows). */
        if (e->set == 2 && wsp_oob_inline(so->fd))
            return 0;
        pfd[*npoll] = (struct pollfd){.fd = so->fd, .events = poll_events[e->set]};
        e->pollidx = (*npoll)++;
        return 0;
    case WSP_STATE_OPEN:
        /* A failed connect stays exceptional until a connect succeeds (Windows). */
        return e->set == 2 && so->connect_error != 0;
    case WSP_STATE_CONNECTING:
        if (e->set == 0 || so->entry->connect_data)
            return 0;
        /* Plain TCP: the kernel's answer wakes this call directly; the check above finishes
         * the connect when it looks again. */
        pfd[*npoll] = (struct pollfd){.fd = so->fd, .events = POLLOUT};
        e->pollidx = (*npoll)++;
        e->connecting = 1;
    }
    return 0;
}

/* Whether h is ready in any role played by the set object x. */
static int ready_in(WSPFD_SET *const sets[3], const struct entry *ents, unsigned n,
                    const WSPFD_SET *x, SOCKET h) {
    for (unsigned k = 0; k < n; k++)
        if (sets[ents[k].set] == x && ents[k].handle == h && ents[k].ready)
            return 1;
    return 0;
}

/* Leaves in each set the ready handles, each once and in their order; a set passed in
 * several places gets the union of its answers. Returns how many handles the sets hold now. */
static int rewrite_sets(WSPFD_SET *const sets[3], const struct entry *ents, unsigned n) {
    int count = 0;
    for (int i = 0; i < 3; i++) {
        if (!sets[i] || (i > 0 && sets[i] == sets[0]) || (i > 1 && sets[i] == sets[1]))
            continue; /* none, or rewritten already as another role's set */
        WSPFD_SET *x = sets[i];
        UINT out = 0, cnt = x->fd_count;
        for (UINT j = 0; j < cnt; j++) {
            SOCKET h = x->fd_array[j];
            int seen = 0;
            for (UINT o = 0; o < out && !seen; o++)
                seen = x->fd_array[o] == h;
            if (!seen && ready_in(sets, ents, n, x, h))
                x->fd_array[out++] = h; /* out <= j: only what was read is overwritten */
        }
        x->fd_count = out;
        count += (int)out;
    }
    return count;
}

int wsp_select(int nfds, WSPFD_SET *r, WSPFD_SET *w, WSPFD_SET *e, const struct timeval *timeout,
               LPINT lpErrno) {
    (void)nfds; /* ignored, as in Winsock */
    if (!wsp_check_started(lpErrno))
        return SOCKET_ERROR;
    WSPFD_SET *sets[3] = {r, w, e};
    size_t total = 0;
    for (int i = 0; i < 3; i++)
        if (sets[i])
            total += sets[i]->fd_count;
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
        /* A handle twice in one set gets two entries that agree: rewrite_sets writes it once. */
        for (UINT j = 0; j < sets[i]->fd_count && !err; j++) {
            SOCKET h = sets[i]->fd_array[j];
            struct wsp_socket *so = wsp_socket_acquire(h, &err);
            if (!so)
                break;
            struct entry *en = &ents[n++];
            en->so = so;
            en->handle = h;
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
    /* The event thread never waits: a time-out other than zero that would have to wait fails
     * instead, so that the caller can tell it from one that ran out. (A zero time-out ends
     * after its first look either way: its deadline has passed, and the look never waits.) */
    int no_wait = wsp_reactor_is_current();
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
        int t = immediate || no_wait ? 0 : wsp_ms_left(deadline);
        if (slice && !no_wait && (t < 0 || t > DEFER_SLICE_MS))
            t = DEFER_SLICE_MS;
        int rc = poll(pfd, (nfds_t)npoll, t);
        if (rc < 0 && errno != EINTR) {
            err = wsp_wsa_from_errno(errno);
            break;
        }
        count = immediate;
        for (unsigned k = 0; k < n && rc > 0; k++) {
            if (ents[k].pollidx && !ents[k].connecting &&
                (pfd[ents[k].pollidx].revents & poll_ready[ents[k].set])) {
                ents[k].ready = 1;
                count++;
            }
        }
        /* A connect the kernel finished meanwhile is reported with the rest: an application
         * that selects a connecting client with its accepted peer sees both. (Alone, it is
         * reported at once too, rather than on the next turn.) */
        for (unsigned k = 0; k < n && rc > 0; k++) {
            if (!ents[k].connecting || !pfd[ents[k].pollidx].revents)
                continue;
            int np = 0;
            struct pollfd one[1];
            pthread_mutex_lock(&ents[k].so->lock);
            ents[k].ready = check(&ents[k], one, &np, &slice); /* slice: read before the poll */
            pthread_mutex_unlock(&ents[k].so->lock);
            if (!ents[k].ready && np == 1 && !ents[k].connecting && poll(one, 1, 0) > 0 &&
                (one[0].revents & poll_ready[ents[k].set]))
                ents[k].ready = 1;
            count += ents[k].ready;
        }
        if (count > 0 || wsp_ms_left(deadline) == 0)
            break;
        if (no_wait)
            err = WSAEWOULDBLOCK; /* which ends the loop: the event thread never waits */
        uint64_t v;
        ssize_t rd = read(wake_fd, &v, sizeof v);
        (void)rd; /* empty is fine: a slice or a signal ended the poll */
    }

    for (unsigned k = 0; k < n; k++) {
        struct wsp_socket *so = ents[k].so;
        pthread_mutex_lock(&so->lock);
        ents[k].closed = so->closing;
        wsp_netevents_remove_waiter(so, &ents[k].link);
        pthread_mutex_unlock(&so->lock);
        wsp_socket_release(so);
    }
    if (wake_fd >= 0)
        close(wake_fd);
    if (!err) {
        /* A socket closed by another thread while in the except set: Windows fails the call
         * with WSAENOTSOCK rather than report it. */
        for (unsigned k = 0; k < n; k++)
            if (ents[k].set == 2 && ents[k].ready && ents[k].closed)
                err = WSAENOTSOCK;
    }
    if (!err)
        count = rewrite_sets(sets, ents, n);
    free(ents);
    free(pfd);
    return err ? wsp_fail(lpErrno, err) : count;
}
