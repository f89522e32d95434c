/* What netevents.c shares with the members above it that register for network events
 * (event_select.c) or wait for readiness (select.c). */
#ifndef WSP_NETEVENTS_H
#define WSP_NETEVENTS_H

#include "internal.h"

/* An lpWSPSelect call waiting on a socket: linked into so->netev.waiters under so->lock.
 * Anything that can make a socket ready without its descriptor showing it (a request entering
 * a listener's backlog, an accept, a non-blocking connect finishing, a close) writes to
 * wake_fd. */
struct wsp_select_link {
    struct wsp_select_link *prev, *next;
    int wake_fd;
};

/* so->lock held. Enlists link (its wake_fd set) as a waiter on so, or takes it off again. */
void wsp_netevents_add_waiter(struct wsp_socket *so, struct wsp_select_link *link) WSP_INTERNAL;
void wsp_netevents_remove_waiter(struct wsp_socket *so, struct wsp_select_link *link) WSP_INTERNAL;
/* so->lock held. Wakes the lpWSPSelect calls waiting on so. */
void wsp_netevents_wake_waiters(struct wsp_socket *so) WSP_INTERNAL;

/* Whether the socket descriptor fd reads urgent data inline (SO_OOBINLINE; 0 when the kernel
 * cannot tell). */
int wsp_oob_inline(int fd) WSP_INTERNAL;

/* A registration's kind (so->netev.kind). */
enum {
    WSP_REGISTERED_NONE = 0,
    WSP_REGISTERED_EVENT = 1, /* lpWSPEventSelect */
    WSP_REGISTERED_ASYNC = 2, /* lpWSPAsyncSelect */
};

/* so->lock held. Replaces the socket's registration with one of kind for events (the FD_*
 * mask; 0 only cancels), makes the socket non-blocking and reports the conditions that hold
 * already. 0 or a WSA code (the socket is then left unregistered). */
int wsp_netevents_register(struct wsp_socket *so, int kind, WSAEVENT ev, HWND hwnd, UINT msg,
                           LONG events) WSP_INTERNAL;
/* so->lock held, and released meanwhile: records the readiness that the registered event's
 * set holds and no wait has taken yet. */
void wsp_netevents_catch_up(struct wsp_socket *so) WSP_INTERNAL;
/* so->lock held. Copies the event-select record to out (only the error codes of the events
 * set) and clears it. */
void wsp_netevents_take_record(struct wsp_socket *so, LPWSANETWORKEVENTS out) WSP_INTERNAL;
/* How many times the reactor has handed on a watched socket's readiness since the process
 * began (the tests' way to see that a watch waits only for what could raise an event). */
unsigned wsp_netevents_relays(void) WSP_INTERNAL;
/* How many times the reactor thread has made a socket's upcalls after the item or job that
 * raised them, rather than under the socket's lock there (the tests' way to see the
 * deferral). */
unsigned wsp_netevents_flushes(void) WSP_INTERNAL;

#endif
