/* Network event notification (docs/SEMANTICS.md §8): the machinery that records and raises
 * network events. The members that register for them and read the record
 * (lpWSPEventSelect, lpWSPAsyncSelect, lpWSPEnumNetworkEvents) are in event_select.c,
 * lpWSPSelect in select.c.
 *
 * How readiness flows. Each socket keeps its registration and its record in so->netev,
 * guarded by the socket's lock. "armed" holds the events that may be raised now: raising an
 * event clears its bit, and the re-enabling calls (recv, send, accept, SIO_GET_QOS) set it
 * again. Conditions come from three places:
 *   - connected sockets: a watch (struct wsp_netwatch) on the socket's descriptor, in one of
 *     two places. Registered on one of WSP's own event objects, the socket sits in the
 *     event's epoll set (event_set.h), edge-triggered, and whoever observes the event (a
 *     wait, an enumeration, the reactor once the event's descriptor is handed out) records
 *     its readiness: a waiting thread then needs no relay. Otherwise (async select, or an
 *     application's event upcalls) the reactor watches it, level-triggered with
 *     EPOLLONESHOT: after every event the item is re-armed for exactly the conditions that
 *     could raise an armed event (EPOLLIN while FD_READ is armed, EPOLLRDHUP while FD_CLOSE
 *     is due, EPOLLPRI for FD_OOB, EPOLLOUT only after a send failed with WSAEWOULDBLOCK),
 *     so an idle socket or one whose events are all raised and not yet re-enabled costs the
 *     reactor nothing, and re-enabling FD_READ while data remains fires at once;
 *   - listeners: the provider's backlog (listener.c raises FD_ACCEPT when a request enters
 *     it; registering and re-enabling FD_ACCEPT ask the socket's role whether one waits). The listening descriptor already
 *     belongs to the listener's reactor item and is not watched again;
 *   - connecting sockets: connect.c's connector owns the descriptor while it connects and
 *     calls wsp_netevents_connected at the end; the watch starts then.
 * Raising an event (raise_event) calls the upcall table in force, with the socket's lock
 * held: lpWPUSetEvent for event select (after recording the event and its error code), or
 * lpWPUPostMessage(hWnd, wMsg, socket, WSAMAKESELECTREPLY(event, error)) for async select.
 * Holding the lock is what makes "never after close" hold: close cancels the registration
 * under the same lock. The price: an application's upcalls must not block and must not call
 * back into WSP for the same socket (Windows' PostMessage and SetEvent never do).
 *
 * "armed" belongs to the socket, not to a registration: selecting again (with the same mask,
 * or 0 and then the mask) does not repeat an event that was raised and not re-enabled, as on
 * Windows (observed there, not stated on its pages). What holds at selection time is raised
 * then, once. A new arrival re-enables FD_ACCEPT (another request) and, on event objects,
 * FD_READ (more data before the receive). Window messages differ where Windows does: a new
 * async selection on a connected socket posts FD_WRITE again, and never a past FD_CONNECT.
 *
 * FD_CLOSE: a reset (EPOLLERR) raises it at once with WSAECONNABORTED; the peer's FIN raises
 * it with 0 at once, even with unread data left (FD_READ then says so). The socket's own
 * shutdown of its receiving side is not the peer closing (TCP's state tells them apart). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "event_set.h"
#include "internal.h"
#include "netevents.h"
#include "upcalls.h"

enum { KIND_NONE = WSP_REGISTERED_NONE, KIND_EVENT = WSP_REGISTERED_EVENT,
       KIND_ASYNC = WSP_REGISTERED_ASYNC };

/* The events that a call can re-enable (FD_CONNECT and FD_CLOSE happen once; FD_WRITE is
 * re-enabled only by a send that failed with WSAEWOULDBLOCK: wsp_netevents_send_blocked). */
#define REENABLEABLE (FD_READ | FD_OOB | FD_ACCEPT | FD_QOS)

/* The events a connected socket's descriptor raises: only a registration asking for one of
 * them needs a watch (a connect-only or accept-only registration costs no system call). */
#define WATCHED (FD_READ | FD_WRITE | FD_OOB | FD_CLOSE)

/* Where a connected socket's readiness is watched: the registered event's own set when the
 * built-in event objects are in use (event_set.h: a waiting thread takes the readiness
 * without the reactor relaying it), the reactor otherwise. The watch names its socket by
 * handle and holds no reference: a closed socket's descriptor closes at once, and a removed
 * watch is only memory for the reactor to free when it next wakes (no wake-up for it). */
struct wsp_netwatch {
    struct wsp_reactor_item item; /* first: the reactor hands back this pointer */
    SOCKET handle;
    bool own_fd;                  /* item.fd is a duplicate, closed with the watch */
    struct wsp_event_set *set;    /* a reference; NULL: the reactor watches item.fd */
};

/* ---- raising ------------------------------------------------------------------------------ */

static void upcall(SOCKET s, int kind, WSAEVENT event, HWND hwnd, UINT msg, LONG ev, int err) {
    const WSPUPCALLTABLE *up = wsp_upcalls();
    if (kind == KIND_EVENT) {
        int e = 0;
        up->lpWPUSetEvent(event, &e);
    } else {
        up->lpWPUPostMessage(hwnd, msg, (WPARAM)s, WSAMAKESELECTREPLY(ev, err));
    }
}

/* The reactor's way: raise under the lock, call the upcalls after unlocking it. */
static void begin_deferring(struct wsp_netevents *ne) {
    if (!ne->deferring) { /* already: a flush is due (flush_deferred) and takes these too */
        ne->deferring = 1;
        ne->deferred_count = 0;
    }
}

/* Sockets whose upcalls the reactor thread deferred while another file's code held their
 * lock (a request entering a backlog, a connect finishing): the reactor makes them after the
 * item it is working on (flush_task), in the order the events were raised, as Windows posts
 * them. Reactor thread only. */
static _Thread_local struct wsp_socket *flush_head, *flush_tail;
static void flush(struct wsp_reactor_task *task);
static struct wsp_reactor_task flush_task = {.run = flush};

/* so->lock held. Raises ev (one FD_* bit) with error err when it is asked for (an
 * unregistered socket's mask is 0) and armed. */
static void raise_event(struct wsp_socket *so, LONG ev, int err) {
    struct wsp_netevents *ne = &so->netev;
    if (!(ne->mask & ev) || !(ne->armed & ev))
        return;
    ne->armed &= ~ev;
    if (ev == FD_READ) { /* what is unread now is not counted: see readiness() */
        ne->read_mark = -1;
        ne->read_rearmed = 0;
    }
    if (ne->kind == KIND_EVENT) {
        ne->pending |= ev;
        ne->errors[__builtin_ctz((unsigned)ev)] = err;
    }
    if (!ne->deferring && wsp_reactor_is_current()) {
        /* On the reactor thread under a lock this file does not release: a task woken now
         * would run into that lock at once (two context switches on a busy CPU). */
        begin_deferring(ne);
        if (!ne->flush_queued) {
            ne->flush_queued = 1;
            wsp_socket_retain(so);
            ne->flush_next = NULL;
            if (flush_tail)
                flush_tail->netev.flush_next = so;
            else
                flush_head = so;
            flush_tail = so;
            wsp_reactor_after(&flush_task);
        }
    }
    if (ne->deferring) {
        int i = 0; /* one entry per event: at most FD_MAX_EVENTS */
        while (i < ne->deferred_count && ne->deferred[i].ev != ev)
            i++;
        ne->deferred[i].ev = ev;
        ne->deferred[i].err = err;
        if (i == ne->deferred_count)
            ne->deferred_count++;
        return;
    }
    upcall(so->obj.handle, ne->kind, ne->event, ne->hwnd, ne->msg, ev, err);
}

/* so->lock held on entry, released on return; runs the upcalls raise_event deferred. Close
 * waits for them (wsp_netevents_close), so none is made after close has returned. */
static void unlock_and_upcall(struct wsp_socket *so) {
    struct wsp_netevents *ne = &so->netev;
    ne->deferring = 0;
    int n = ne->kind == KIND_NONE ? 0 : ne->deferred_count, kind = ne->kind;
    WSAEVENT event = ne->event;
    HWND hwnd = ne->hwnd;
    UINT msg = ne->msg;
    struct { LONG ev; int err; } raised[FD_MAX_EVENTS];
    memcpy(raised, ne->deferred, (size_t)n * sizeof raised[0]);
    if (n)
        ne->upcalls_in_flight++;
    pthread_mutex_unlock(&so->lock);
    if (!n)
        return;
    if (kind == KIND_EVENT) /* one signal covers every event recorded */
        upcall(so->obj.handle, kind, event, hwnd, msg, raised[0].ev, raised[0].err);
    else
        for (int i = 0; i < n; i++)
            upcall(so->obj.handle, kind, event, hwnd, msg, raised[i].ev, raised[i].err);
    pthread_mutex_lock(&so->lock);
    if (--ne->upcalls_in_flight == 0)
        pthread_cond_broadcast(&ne->upcalls_done);
    pthread_mutex_unlock(&so->lock);
}

static atomic_uint flushes; /* sockets whose deferred upcalls flush made: wsp_netevents_flushes */

unsigned wsp_netevents_flushes(void) { return atomic_load_explicit(&flushes, memory_order_relaxed); }

/* Reactor thread, no lock held: makes the upcalls deferred while a hook ran there. */
static void flush(struct wsp_reactor_task *task) {
    (void)task;
    while (flush_head) {
        struct wsp_socket *so = flush_head;
        pthread_mutex_lock(&so->lock);
        flush_head = so->netev.flush_next;
        if (!flush_head)
            flush_tail = NULL;
        so->netev.flush_queued = 0;
        if (so->netev.deferring) {
            atomic_fetch_add_explicit(&flushes, 1, memory_order_relaxed);
            unlock_and_upcall(so);
        } else {
            pthread_mutex_unlock(&so->lock); /* someone made them already */
        }
        wsp_socket_release(so);
    }
}

void wsp_netevents_add_waiter(struct wsp_socket *so, struct wsp_select_link *link) {
    link->prev = NULL;
    link->next = so->netev.waiters;
    if (so->netev.waiters)
        so->netev.waiters->prev = link;
    so->netev.waiters = link;
}

void wsp_netevents_remove_waiter(struct wsp_socket *so, struct wsp_select_link *link) {
    if (link->prev)
        link->prev->next = link->next;
    else
        so->netev.waiters = link->next;
    if (link->next)
        link->next->prev = link->prev;
}

void wsp_netevents_wake_waiters(struct wsp_socket *so) {
    for (struct wsp_select_link *l = so->netev.waiters; l; l = l->next) {
        uint64_t one = 1;
        ssize_t n = write(l->wake_fd, &one, sizeof one);
        (void)n; /* a full counter still wakes the waiter */
    }
}

int wsp_oob_inline(int fd) {
    int on = 0;
    socklen_t len = sizeof on;
    return getsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &on, &len) == 0 && on;
}

/* so->lock held. Urgent data: FD_OOB, or FD_READ when it is read inline. */
static void raise_urgent(struct wsp_socket *so) {
    so->netev.oob_inline = wsp_oob_inline(so->fd);
    raise_event(so, so->netev.oob_inline ? FD_READ : FD_OOB, 0);
}

/* so->lock held; the descriptor showed a read-side hang-up. Whether the peer closed: after the
 * socket's own SD_RECEIVE the hang-up is its own, and only TCP's state tells. */
static int peer_closed(const struct wsp_socket *so) {
    if (!(so->shut & WSP_SHUT_RECEIVE))
        return 1;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(so->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return 0;
    switch (ti.tcpi_state) {
    case TCP_CLOSE_WAIT: case TCP_LAST_ACK: case TCP_CLOSING: case TCP_TIME_WAIT: case TCP_CLOSE:
        return 1;
    }
    return 0;
}


static int unread_bytes(int fd) {
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) < 0)
        return 0;
    return n;
}

/* ---- the watch on a connected socket ------------------------------------------------------ */

/* so->lock held. Whether the watch is an event set's, which is edge-triggered: readiness is
 * reported when it arises, so the watch needs no re-arming after each event (the reactor's
 * watches are one-shot: a relayed readiness nobody wants costs the reactor a wake-up). What
 * arrives while an event is off is remembered (read_edge) or looked at when it is re-enabled. */
static int edge_triggered(const struct wsp_netevents *ne) {
    return ne->watch && ne->watch->set;
}

/* What an edge-triggered watch waits for besides EPOLLOUT: every edge, sorted out by
 * readiness(). */
#define EDGES (EPOLLET | EPOLLIN | EPOLLRDHUP | EPOLLPRI)

/* so->lock held. The epoll conditions that could raise an armed event now. */
static uint32_t wanted(const struct wsp_socket *so) {
    const struct wsp_netevents *ne = &so->netev;
    if (ne->dead) /* no kind to check: a watch exists only while registered */
        return 0;
    uint32_t write = (ne->mask & FD_WRITE) && ne->write_blocked ? EPOLLOUT : 0;
    if (edge_triggered(ne))
        return EDGES | write;
    LONG on = ne->mask & ne->armed;
    uint32_t w = 0;
    /* After the socket's own SD_RECEIVE the read side polls ready for good: nothing to watch
     * there (level-triggered, it would fire again at once). Urgent data is read side too:
     * once both sides are shut (or the peer's FIN came after the socket's own SD_SEND) the
     * descriptor reports EPOLLHUP, which epoll always reports, and a watch still armed for
     * EPOLLPRI would have the reactor relay that hang-up for ever. */
    if (!ne->eof && !(so->shut & WSP_SHUT_RECEIVE)) {
        /* EPOLLRDHUP with EPOLLIN: a FIN must not pass for data (FD_READ) when FD_CLOSE is
         * not asked for. */
        if (on & FD_READ)
            w |= EPOLLIN | EPOLLRDHUP;
        if (on & FD_CLOSE)
            w |= EPOLLRDHUP; /* a reset shows as EPOLLERR, which epoll always reports */
        if ((on & FD_OOB) && !ne->oob_inline)
            w |= EPOLLPRI;
    }
    return w | write;
}

static int ensure_watch(struct wsp_socket *so);
static void drop_watch(struct wsp_socket *so);

/* so->lock held. Re-arms the watch when what it should wait for changed. */
static void rearm(struct wsp_socket *so) {
    struct wsp_netevents *ne = &so->netev;
    if (!ne->watch)
        return;
    if (ne->watch->set && !wsp_upcalls_builtin_events()) {
        /* An application's upcall table replaced the built-in one since the watch started:
         * waits for WSP's events no longer stand for the application's, so the reactor has
         * to relay this socket's readiness. */
        drop_watch(so);
        if (ensure_watch(so))
            return;
    }
    uint32_t w = wanted(so);
    if (w == ne->interest)
        return;
    /* w == 0 still leaves EPOLLERR/EPOLLHUP armed, which epoll reports whatever is asked. The
     * reactor's item is one-shot: that is one event at most, after which it stays quiet. In
     * an event set it takes EPOLLET: level-triggered, a dead socket's error would make the
     * set ready for good (and the reactor relaying an exported set spin). */
    struct wsp_netwatch *watch = ne->watch;
    if (watch->set) {
        wsp_event_set_modify(watch->set, watch->item.fd, so->obj.handle, w ? w : EPOLLET);
        ne->read_rearmed = 1; /* the set reports what is there again */
    }
    else
        wsp_reactor_modify(&watch->item, w | EPOLLONESHOT);
    ne->interest = w;
}

/* so->lock held. Raises what the descriptor's state says (registration, connect, accept). */
static void report_conditions(struct wsp_socket *so) {
    struct wsp_netevents *ne = &so->netev;
    if (!(ne->mask & WATCHED))
        return;
    struct pollfd p = {.fd = so->fd, .events = POLLIN | POLLPRI | POLLOUT | POLLRDHUP};
    /* Nothing ready, or a poll that failed, leaves revents 0: nothing is made up. */
    poll(&p, 1, 0);
    /* Readable with no FIN means data, and is not counted (the count stops at urgent data not
     * yet read, and data behind it is still data); with a FIN (POLLRDHUP, which a reset or a
     * time-out brings too: TCP then shuts both sides) only counting tells. */
    int unread = !(p.revents & POLLIN)      ? 0
                 : !(p.revents & POLLRDHUP) ? 1
                                            : unread_bytes(so->fd);
    if (unread > 0)
        raise_event(so, FD_READ, 0);
    if (p.revents & POLLERR) {
        ne->dead = 1;
        raise_event(so, FD_CLOSE, WSAECONNABORTED);
        return;
    }
    if (ne->mask & FD_OOB)
        ne->oob_inline = wsp_oob_inline(so->fd);
    if (p.revents & POLLPRI)
        raise_urgent(so);
    if (p.revents & POLLOUT)
        raise_event(so, FD_WRITE, 0);
    else if ((ne->mask & FD_WRITE) && (ne->armed & FD_WRITE))
        ne->write_blocked = 1; /* no room (a send failed unregistered): owed once it frees */
    if ((p.revents & (POLLRDHUP | POLLHUP)) && peer_closed(so)) {
        ne->eof = 1;
        raise_event(so, FD_CLOSE, 0);
    }
}

/* so->lock held on entry, released on return. The watch reported events. */
static void readiness(struct wsp_socket *so, uint32_t events) {
    struct wsp_netevents *ne = &so->netev;
    int edges = edge_triggered(ne);
    if (!edges)
        ne->interest = 0; /* EPOLLONESHOT disarmed it */
    begin_deferring(ne);
    if (events & EPOLLERR) {
        if (unread_bytes(so->fd) > 0)
            raise_event(so, FD_READ, 0);
        if (!ne->dead) {
            ne->dead = 1;
            raise_event(so, FD_CLOSE, WSAECONNABORTED);
        }
        if (ne->write_blocked) {
            /* The wait for room ends with the error, which the next send reports. Not only
             * with EPOLLOUT (which a watch asking for FD_WRITE gets with it: TCP shuts both
             * sides): unasked, the flag left set had a later selection watch for room. */
            ne->write_blocked = 0;
            raise_event(so, FD_WRITE, 0);
        }
    } else {
        if ((events & EPOLLIN) && !(ne->armed & FD_READ)) {
            ne->read_edge = 1; /* more data while FD_READ waits for its recv */
            if (edges && (ne->mask & FD_READ) && !ne->eof) {
                /* More data before the recv raises FD_READ again (Windows, event objects).
                 * On this edge-triggered watch a lone EPOLLIN edge is new data; one that
                 * comes with other conditions, or after the watch was (re)armed (which
                 * reports what is there), may be the same data: then the unread count,
                 * compared with the last one taken, tells. No count on the usual path. */
                if (!(events & (EPOLLOUT | EPOLLPRI | EPOLLRDHUP | EPOLLHUP)) &&
                    !ne->read_rearmed) {
                    ne->armed |= FD_READ;
                } else {
                    int unread = unread_bytes(so->fd);
                    if (ne->read_mark >= 0 && unread > ne->read_mark)
                        ne->armed |= FD_READ;
                    ne->read_mark = unread;
                }
            }
        }
        if ((events & EPOLLIN) && !(events & (EPOLLRDHUP | EPOLLHUP))) {
            /* Data, and no FIN to tell apart from it: no need to count the bytes. */
            raise_event(so, FD_READ, 0);
        } else if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
            /* A hang-up (a FIN, or the socket's own SD_RECEIVE), with or without data. */
            if (unread_bytes(so->fd) > 0)
                raise_event(so, FD_READ, 0);
            if (!ne->eof && peer_closed(so)) {
                ne->eof = 1;
                raise_event(so, FD_CLOSE, 0); /* at once, unread data or not (Windows) */
            }
        }
        if (events & EPOLLPRI)
            raise_urgent(so);
        if (events & EPOLLOUT) {
            ne->write_blocked = 0;
            raise_event(so, FD_WRITE, 0);
        }
    }
    rearm(so);
    unlock_and_upcall(so);
}

static atomic_uint relays; /* watch_ready calls: wsp_netevents_relays */

unsigned wsp_netevents_relays(void) { return atomic_load_explicit(&relays, memory_order_relaxed); }

/* The reactor's watch reported events. */
static void watch_ready(struct wsp_reactor_item *item, uint32_t events) {
    atomic_fetch_add_explicit(&relays, 1, memory_order_relaxed);
    struct wsp_netwatch *w = (struct wsp_netwatch *)item;
    int err;
    struct wsp_socket *so = wsp_socket_acquire(w->handle, &err);
    if (!so)
        return; /* closed since: its registration went with it */
    pthread_mutex_lock(&so->lock);
    /* A watch dropped since (drop_watch, under this lock) is no longer the socket's. */
    if (so->netev.watch != w)
        pthread_mutex_unlock(&so->lock);
    else
        readiness(so, events);
    wsp_socket_release(so);
}

/* A pump of set found socket s ready with events (event_set.h). */
static void set_ready(SOCKET s, struct wsp_event_set *set, uint32_t events) {
    int err;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return; /* closed since: its registration went with it */
    pthread_mutex_lock(&so->lock);
    if (so->netev.watch && so->netev.watch->set == set)
        readiness(so, events);
    else
        pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
}

/* A deferred check (event_set.h) of socket s found revents (POLLNVAL: could not tell). */
static void set_checked(SOCKET s, struct wsp_event_set *set, uint32_t revents) {
    int err;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return;
    pthread_mutex_lock(&so->lock);
    struct wsp_netevents *ne = &so->netev;
    /* Only a pending FD_READ is in question: one raised since made the check moot. */
    if (!ne->watch || ne->watch->set != set || !(ne->mask & ne->armed & FD_READ) || ne->eof ||
        ne->dead) {
        pthread_mutex_unlock(&so->lock);
    } else if (revents & POLLNVAL) {
        begin_deferring(ne);
        if (unread_bytes(so->fd) > 0)
            raise_event(so, FD_READ, 0);
        unlock_and_upcall(so);
    } else {
        readiness(so, revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR));
    }
    wsp_socket_release(so);
}

static const struct wsp_event_set_client set_client = {set_ready, set_checked};

static void watch_release(struct wsp_reactor_item *item) {
    free(item);
}

/* so->lock held; the socket is connected. Starts watching its descriptor (when the
 * registration asks for an event only a watch raises); 0 or a WSA code. */
static int ensure_watch(struct wsp_socket *so) {
    struct wsp_netevents *ne = &so->netev;
    if (ne->watch || !(ne->mask & WATCHED))
        return 0;
    struct wsp_netwatch *w = calloc(1, sizeof *w);
    if (!w)
        return WSAENOBUFS;
    w->handle = so->obj.handle;
    w->item.fd = so->fd;
    w->item.on_ready = watch_ready;
    w->item.release = watch_release;
    w->item.quiet_release = 1;
    if (ne->kind == KIND_EVENT && wsp_upcalls_builtin_events()) {
        w->set = wsp_event_watch_set(ne->event); /* NULL: not an event; the reactor watches */
        if (w->set && wsp_event_set_add(w->set, so->fd, so->obj.handle, EDGES, &set_client) == 0) {
            ne->watch = w;
            ne->interest = EDGES;
            ne->read_rearmed = 1; /* the set reports what is there at once */
            return 0;
        }
        if (w->set)
            wsp_event_set_release(w->set);
        w->set = NULL;
    }
    int err = so->fd_left_in_reactor ? wsp_reactor_add_over(&w->item, EPOLLONESHOT)
                                     : wsp_reactor_add(&w->item, EPOLLONESHOT);
    so->fd_left_in_reactor = 0;
    if (err) {
        /* The descriptor is still registered by someone else (an accepted connect-data
         * request's item is removed only after the socket exists): watch a duplicate, which
         * epoll keys separately. */
        int fd2 = fcntl(so->fd, F_DUPFD_CLOEXEC, 0);
        if (fd2 < 0) {
            err = wsp_wsa_from_errno(errno);
        } else {
            w->item.fd = fd2;
            w->own_fd = 1;
            err = wsp_reactor_add(&w->item, EPOLLONESHOT);
            if (err)
                close(fd2);
        }
    }
    if (err) {
        free(w);
        return err;
    }
    ne->watch = w;
    ne->interest = 0;
    return 0;
}

/* so->lock held. */
static void drop_watch(struct wsp_socket *so) {
    struct wsp_netevents *ne = &so->netev;
    struct wsp_netwatch *w = ne->watch;
    if (!w)
        return;
    ne->watch = NULL;
    if (w->set) {
        /* Pumps find sockets by handle and check ne->watch: nothing else names w. A set
         * watches the socket's own descriptor (own_fd is the reactor's duplicate). */
        wsp_event_set_remove(w->set, w->item.fd);
        wsp_event_set_release(w->set);
        free(w);
    } else if (w->own_fd) {
        wsp_reactor_remove_and_close(&w->item); /* freed in watch_release */
    } else {
        wsp_reactor_remove(&w->item);
    }
    /* interest goes unread until the next watch starts, which sets it */
}

/* so->lock held, ne->kind set. Starts whatever the socket's state needs and reports the
 * conditions that already hold. */
static int start_registration(struct wsp_socket *so) {
    struct wsp_netevents *ne = &so->netev;
    int err = 0;
    switch (so->state) {
    case WSP_STATE_LISTENING: /* listening, a socket has its role (listener.c) */
        so->role->watch_arrivals(so);
        if (so->role->acceptable(so))
            raise_event(so, FD_ACCEPT, 0);
        break;
    case WSP_STATE_CONNECTED:
        err = ensure_watch(so);
        if (!err) {
            /* Window messages post FD_WRITE again on every selection of a connected socket,
             * and never a connect already past (Windows, observed); an event object's record
             * gets what was not yet reported, FD_CONNECT included. */
            if (ne->kind == KIND_ASYNC)
                ne->armed |= FD_WRITE;
            report_conditions(so);
            if (ne->connect_unreported && ne->kind == KIND_EVENT && (ne->mask & FD_CONNECT)) {
                ne->connect_unreported = 0;
                raise_event(so, FD_CONNECT, ne->connect_unreported_err);
            }
            rearm(so);
        }
        break;
    case WSP_STATE_OPEN:
        if (ne->connect_unreported && (ne->mask & FD_CONNECT)) {
            ne->connect_unreported = 0;
            raise_event(so, FD_CONNECT, ne->connect_unreported_err);
        }
        break;
    case WSP_STATE_CONNECTING:
        break; /* wsp_netevents_connected carries on */
    }
    return err;
}

/* so->lock held. Forgets the registration and the record. */
static void cancel(struct wsp_socket *so) {
    struct wsp_netevents *ne = &so->netev;
    drop_watch(so);
    ne->kind = KIND_NONE; /* event, hwnd and msg are read only while registered: each
                           * registration sets them */
    ne->mask = 0; /* armed stays: it is the socket's (selecting again repeats nothing) */
    ne->pending = 0; /* errors[i] is read only for a pending event, written when it is */
    ne->deferred_count = 0; /* not made yet: they were for the registration now gone */
}

int wsp_netevents_register(struct wsp_socket *so, int kind, WSAEVENT ev, HWND hwnd, UINT msg,
                           LONG events) {
    struct wsp_netevents *ne = &so->netev;
    cancel(so); /* a new call replaces the registration; a zero mask only cancels */
    if (!events)
        return 0;
    int err = 0;
    if (so->state == WSP_STATE_OPEN || so->state == WSP_STATE_CONNECTED)
        err = wsp_socket_fd_nonblocking(so, 1);
    if (err)
        return err;
    so->nonblocking = 1;
    ne->kind = kind;
    ne->event = ev;
    ne->hwnd = hwnd;
    ne->msg = msg;
    ne->mask = events;
    ne->eof = 0;
    ne->dead = 0;
    ne->read_edge = 0;
    err = start_registration(so);
    if (err)
        cancel(so);
    return err;
}

void wsp_netevents_catch_up(struct wsp_socket *so) {
    struct wsp_netevents *ne = &so->netev;
    struct wsp_event_set *set = ne->watch ? ne->watch->set : NULL;
    if (!set)
        return;
    /* The set's pumps take the socket's lock, so not under it. */
    wsp_event_set_retain(set);
    pthread_mutex_unlock(&so->lock);
    wsp_event_set_catch_up(set);
    wsp_event_set_release(set);
    pthread_mutex_lock(&so->lock);
}

void wsp_netevents_take_record(struct wsp_socket *so, LPWSANETWORKEVENTS out) {
    struct wsp_netevents *ne = &so->netev;
    out->lNetworkEvents = ne->pending;
    for (int i = 0; i < FD_MAX_EVENTS; i++)
        if (ne->pending & (1 << i))
            out->iErrorCode[i] = ne->errors[i];
    ne->pending = 0;
}

/* ---- the hooks the rest of the provider calls (so->lock held in each) --------------------- */

/* so->lock held. A registered socket that is connected but not watched: registered while a
 * blocking connect ran on another thread (no hook tells this file when that one ends), or the
 * watch could not start. The first send or recv starts it. */
static void late_watch(struct wsp_socket *so) {
    wsp_socket_fd_nonblocking(so, 1); /* a blocking connect leaves the descriptor blocking */
    if (!ensure_watch(so))
        report_conditions(so); /* the callers re-arm the watch next */
}

/* so->lock held. Re-enables mask's events, raising those whose condition holds, and leaves
 * re-arming the watch to the caller. */
static void enable(struct wsp_socket *so, LONG mask) {
    struct wsp_netevents *ne = &so->netev;
    if (mask & FD_ACCEPT)
        wsp_netevents_wake_waiters(so); /* the backlog may have changed: select looks again */
    /* Re-enabled while unselected too: "armed" is the socket's, and the next selection
     * reports what holds (an accept that found nothing, then a request, then FD_ACCEPT
     * selected: reported). */
    ne->armed |= mask & REENABLEABLE;
    if (ne->kind == KIND_NONE)
        return;
    if (so->state == WSP_STATE_CONNECTED && !ne->watch && (ne->mask & WATCHED))
        late_watch(so);
    if (mask & FD_OOB) { /* a recv's: the socket is connected */
        ne->oob_inline = wsp_oob_inline(so->fd);
        if (edge_triggered(ne)) { /* urgent data still there raises FD_OOB again */
            struct pollfd p = {.fd = so->fd, .events = POLLPRI};
            if (poll(&p, 1, 0) > 0 && (p.revents & POLLPRI))
                raise_urgent(so);
        }
    }
    if ((mask & FD_ACCEPT) && so->role && so->role->acceptable(so))
        raise_event(so, FD_ACCEPT, 0);
    if ((mask & FD_READ) && (ne->eof || ne->dead)) { /* a recv's, on a connected socket */
        /* Nothing new can arrive (FD_CLOSE was raised with the FIN): FD_READ while data is
         * left. */
        if (unread_bytes(so->fd) > 0)
            raise_event(so, FD_READ, 0);
    }
}

/* Unregistered, a socket has no watch and an empty mask: what follows enable() in these two
 * then does nothing. */
void wsp_netevents_reenable(struct wsp_socket *so, LONG mask) {
    enable(so, mask);
    rearm(so); /* FD_READ/FD_OOB: the level-triggered re-arm fires at once if data remains */
}

void wsp_netevents_received(struct wsp_socket *so, LONG mask, int drained) {
    struct wsp_netevents *ne = &so->netev;
    enable(so, mask);
    /* After a FIN or a reset (eof, dead) enable() raised FD_READ already if data is left,
     * and nothing more can arrive: FD_READ is no longer armed then. */
    if ((mask & FD_READ) && !drained && ne->watch && !edge_triggered(ne) &&
        (ne->mask & ne->armed & FD_READ) && !(so->shut & WSP_SHUT_RECEIVE) &&
        unread_bytes(so->fd) > 0) {
        /* A recv that filled its buffers on a reactor-watched socket, with data left: raise
         * FD_READ again here, on this thread. Re-arming EPOLLIN would have the reactor wake
         * at once only to raise it (and re-arm its one-shot watch again): two epoll_ctl
         * calls, an epoll_wait and two context switches per recv while a reader keeps up
         * with a sender. With FD_READ off again, the watch keeps what it was armed for. */
        raise_event(so, FD_READ, 0);
    }
    rearm(so);
    if (!(mask & FD_READ) || !(ne->mask & FD_READ) || !edge_triggered(ne) || ne->eof ||
        ne->dead)
        return;
    /* Edge-triggered: nothing re-arms a level. Data is left if this recv did not take all
     * there was, or if more came while FD_READ was off: look now, or have the next wait or
     * enumeration look (event_set.h). */
    if (!drained || ne->read_edge) {
        ne->read_edge = 0;
        if (!wsp_event_set_defer_check(ne->watch->set, so->obj.handle, so->fd) &&
            unread_bytes(so->fd) > 0)
            raise_event(so, FD_READ, 0);
    }
}

void wsp_netevents_send_blocked(struct wsp_socket *so) {
    struct wsp_netevents *ne = &so->netev;
    if (ne->kind == KIND_NONE) /* no state to check: a send runs on a connected socket */
        return;
    if (!ne->watch && (ne->mask & WATCHED))
        late_watch(so);
    ne->write_blocked = 1;
    ne->armed |= FD_WRITE; /* the one re-enabling of FD_WRITE */
    rearm(so);
}

void wsp_netevents_inherit(struct wsp_socket *child, struct wsp_socket *parent) {
    const struct wsp_netevents *pne = &parent->netev;
    if (pne->kind == KIND_NONE)
        return;
    pthread_mutex_lock(&child->lock); /* lock order: listener, then the accepted socket */
    struct wsp_netevents *ne = &child->netev;
    ne->kind = pne->kind;
    ne->event = pne->event;
    ne->hwnd = pne->hwnd;
    ne->msg = pne->msg;
    ne->mask = pne->mask;
    /* Non-blocking already: the child has the listener's mode (wsp_socket_inherit, and its
     * descriptor was put in it), which a registration made non-blocking and keeps so. */
    raise_event(child, FD_WRITE, 0); /* an accepted socket can send at once */
    if (!ensure_watch(child)) {
        report_conditions(child);
        rearm(child);
    }
    pthread_mutex_unlock(&child->lock);
}

void wsp_netevents_close(struct wsp_socket *so) {
    while (so->netev.upcalls_in_flight) /* the reactor is signalling for this socket now */
        pthread_cond_wait(&so->netev.upcalls_done, &so->lock);
    cancel(so); /* a closing socket is never registered again (event_select.c) */
    wsp_netevents_wake_waiters(so);
}

void wsp_netevents_connected(struct wsp_socket *so, int error) {
    struct wsp_netevents *ne = &so->netev;
    wsp_netevents_wake_waiters(so);
    if (ne->mask & FD_CONNECT) { /* unregistered, the mask is 0 */
        ne->connect_unreported = 0;
        ne->armed |= FD_CONNECT; /* once per connect */
        raise_event(so, FD_CONNECT, error);
    } else {
        ne->connect_unreported = 1;
        ne->connect_unreported_err = error;
    }
    /* A new connection's FD_WRITE, FD_CLOSE, FD_READ and FD_OOB are still armed: only a
     * connected socket raises them. */
    if (error)
        return;
    /* eof, dead and write_blocked are still 0: only a connected socket's watch sets them, and
     * a socket connects once. Unregistered, the socket's mask is 0: what follows does nothing. */
    if (!ensure_watch(so)) {
        report_conditions(so); /* FD_WRITE, and data the server sent with its answer */
        if (so->has_qos)
            raise_event(so, FD_QOS, 0);
        rearm(so);
    }
}

void wsp_netevents_raise(struct wsp_socket *so, LONG ev, int err) {
    if (ev == FD_ACCEPT)
        so->netev.armed |= FD_ACCEPT; /* a new arrival: FD_ACCEPT again, as on Windows */
    raise_event(so, ev, err);
}

int wsp_netevents_registered(const struct wsp_socket *so) { return so->netev.kind != KIND_NONE; }

int wsp_netevents_asks(const struct wsp_socket *so, LONG ev) { return (so->netev.mask & ev) != 0; }
