/* What netevents.c and select.c share. */
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

#endif
