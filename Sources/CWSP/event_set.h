/* An event object's own epoll set: the connected sockets registered on the event with
 * lpWSPEventSelect while the built-in upcalls are in force.
 *
 * Why it exists: when the reactor relays every readiness, one network event costs two
 * hand-offs (the socket wakes the reactor thread, which signals the event, which wakes the
 * waiting thread). A thread waiting in WSAWaitForMultipleEvents polls the event's set itself
 * and, when a socket in it turns ready, records the network events on the spot ("pumps" the
 * set): one hand-off, as with a plain poll. The reactor watches a set as well whenever the
 * event may be observed without a call into WSP that would pump it: its descriptor was handed
 * out (WSAEventFd), or a wait for all events sleeps on it.
 *
 * Items are keyed by socket handle, never by pointer: a pump looks the socket up in the handle
 * table, so a socket closed while its readiness sits in someone's batch is simply not found,
 * and removal needs no zombie list. Any number of threads may pump one set at once: epoll
 * hands each readiness to one of them, and the work is done under the socket's lock.
 *
 * Watches in a set are edge-triggered, so a recv that filled its buffer leaves a question:
 * is more data waiting, which must raise FD_READ again? Asking the kernel at once costs a
 * system call per recv. While only waits and enumerations can observe the event, the set
 * instead keeps the question ("checks") for the next of them, which adds the socket's
 * descriptor to the poll it makes anyway.
 */
#ifndef WSP_EVENT_SET_H
#define WSP_EVENT_SET_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

struct wsp_event_set;

/* A new, empty set with one reference; NULL and *err (WSA_NOT_ENOUGH_MEMORY or WSAEMFILE)
 * on failure. */
struct wsp_event_set *wsp_event_set_new(int *err) WSP_INTERNAL;
void wsp_event_set_retain(struct wsp_event_set *set) WSP_INTERNAL;
void wsp_event_set_release(struct wsp_event_set *set) WSP_INTERNAL;

/* The set's epoll descriptor, for poll: readable while a watched socket has readiness that
 * no pump has taken yet. */
int wsp_event_set_fd(const struct wsp_event_set *set) WSP_INTERNAL;

/* How a set hands what it finds to the layer that put sockets in it (netevents.c, which
 * gives it with every socket it adds; the set knows sockets only by handle). */
struct wsp_event_set_client {
    /* A pump found socket s ready with events. */
    void (*ready)(SOCKET s, struct wsp_event_set *set, uint32_t events);
    /* A deferred check of socket s found revents (POLLNVAL: could not tell). */
    void (*checked)(SOCKET s, struct wsp_event_set *set, uint32_t revents);
};

/* Watch fd (socket s) for events (epoll flags as given), reporting to client (one client per
 * set); 0 or a WSA code. */
int wsp_event_set_add(struct wsp_event_set *set, int fd, SOCKET s, uint32_t events,
                      const struct wsp_event_set_client *client) WSP_INTERNAL;
int wsp_event_set_modify(struct wsp_event_set *set, int fd, SOCKET s,
                         uint32_t events) WSP_INTERNAL;
void wsp_event_set_remove(struct wsp_event_set *set, int fd) WSP_INTERNAL;

/* Takes every readiness waiting in the set and hands each to the client's ready. Never
 * blocks. Call with no lock held. */
void wsp_event_set_pump(struct wsp_event_set *set) WSP_INTERNAL;

/* A socket whose unread data must be looked at before the event is next observed. */
struct wsp_event_check {
    SOCKET s;
    int fd;
};

/* Leaves the look at socket s (descriptor fd) to the next wait or enumeration; 0 when the
 * caller must look now instead (the reactor watches the set, or the list is full). */
int wsp_event_set_defer_check(struct wsp_event_set *set, SOCKET s, int fd) WSP_INTERNAL;
/* How many checks are pending (for tests: one per socket, however many recvs left data). */
int wsp_event_set_checks_pending(struct wsp_event_set *set) WSP_INTERNAL;
/* Moves up to max pending checks to out; returns how many. */
int wsp_event_set_take_checks(struct wsp_event_set *set, struct wsp_event_check *out,
                              int max) WSP_INTERNAL;
/* Hands the outcome of polling checks (polled[i].revents for check[i]; polled NULL: the poll
 * failed, and each socket looks itself, as for POLLNVAL) to the client's checked. Call with
 * no lock held, after pumping the set: a readiness the pump raised makes the check moot. */
void wsp_event_set_finish_checks(struct wsp_event_set *set, const struct wsp_event_check *check,
                                 const struct pollfd *polled, int n) WSP_INTERNAL;

/* The same, and the pending checks, for lpWSPEnumNetworkEvents. The pump is skipped once
 * right after this thread's wait pumped the set (the readiness an immediate second pump could
 * find is no different from readiness that arrives a moment after the call). */
void wsp_event_set_catch_up(struct wsp_event_set *set) WSP_INTERNAL;

/* One more (on) or one fewer (!on) reason for the reactor to watch the set. */
void wsp_event_set_reactor_watch(struct wsp_event_set *set, bool on) WSP_INTERNAL;

/* event_object.c: the set of a built-in event, with a reference for the caller; NULL when
 * hEvent is not an open event. */
struct wsp_event_set *wsp_event_watch_set(WSAEVENT hEvent) WSP_INTERNAL;

#endif
