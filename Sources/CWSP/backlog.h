/* The provider's backlog: connection requests a listener holds until lpWSPAccept decides.
 * Shared by listener.c (which fills it) and accept.c (which presents it). */
#ifndef WSP_BACKLOG_H
#define WSP_BACKLOG_H

#include "handshake.h"
#include "internal.h"

struct wsp_listener;

/* How long a request counts as just arrived: a non-blocking accept usually takes it within
 * that time, so until then the reactor does not watch its client (listener.c; accept
 * checks the client of an unwatched request itself). A client that leaves meanwhile holds
 * its place in the backlog that much longer; it is never presented or handed out. */
#define WSP_FRESH_REQUEST_MS 10

struct wsp_request {
    struct wsp_reactor_item item; /* first: the reactor hands back this pointer */
    struct wsp_request *next, *prev;
    struct wsp_listener *listener;
    int fd;
    int fd_owned;   /* 0 once the descriptor belongs to an accepted socket */
    int fd_nonblocking; /* accepted with O_NONBLOCK */
    int watched;    /* registered with the reactor */
    int queued;     /* in the backlog (else still handshaking) */
    int presenting; /* a condition function is looking at it now */
    int gone;       /* the client left, or broke the protocol, while being presented */
    int misbehaved; /* ...by sending bytes after its request (gone is set too) */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    uint64_t deadline_ms;    /* handshaking: drop when not complete by then */
    uint64_t arrived_ms;     /* when the connection was taken off the kernel's queue */
    uint64_t expires_ms;     /* queued: the client stops waiting then (its patience); 0 none */
    uint64_t queued_ms;
    uint64_t next_notice_ms; /* queued, connect data: when to send the next "pending" */
    uint64_t watch_ms;       /* queued unwatched: when the reactor starts watching it */
    uint8_t *buf;            /* the handshake request as read */
    size_t buf_len, buf_cap;
    wsp_hs_frame frame;      /* decoded; points into buf */
};

struct wsp_request_list {
    struct wsp_request *head, *tail;
    int count;
};

/* A request the provider ended on the application's behalf, for the listener's drop handler
 * (WSP_DROP_HANDLER), which is called once the listener's lock is released. */
struct wsp_drop_notice {
    struct wsp_drop_notice *next;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int reason; /* WSP_REASON_… */
};

/* How a queued request's client stands. */
enum wsp_client_state {
    WSP_CLIENT_WAITING = 0, /* still there, waiting for its answer */
    WSP_CLIENT_GONE,        /* closed or reset: it gave up */
    WSP_CLIENT_SENT_MORE,   /* connect data: sent bytes after its request, which the
                             * protocol forbids (PROTOCOL.md): the request is malformed */
};

struct wsp_listener {
    struct wsp_reactor_item item; /* first: fd is the listening descriptor */
    struct wsp_socket *so;
    /* Blocked accepts sleep on this word (a futex) without so->lock: it changes when a
     * request arrives or returns to the line, or the socket closes. */
    uint32_t wake_seq;
    int backlog;
    struct sockaddr_storage local; /* the listening address, shown as the callee id */
    int reading;        /* the reactor reads the listening descriptor */
    int closed;
    int arrivals; /* requests admitted since the last wake-up of blocked accepts */
    int waiters;  /* accepts blocked in wsp_listener_wait */
    /* Admitted unwatched because an accept was waiting for it: the next accept to look may
     * skip the check that its client is still there when it asks a condition function,
     * since it checks again after the function anyway. */
    struct wsp_request *handoff;
    uint64_t resume_ms; /* paused after EMFILE until then */
    struct wsp_request_list handshaking; /* connect data: requests still being read */
    struct wsp_request_list ready;       /* the backlog, oldest first */
    struct wsp_drop_notice *notices, **notices_tail; /* for the drop handler, oldest first */
    WSP_LISTENER_STATS_DATA stats;
};

void wsp_request_unlink(struct wsp_request_list *l, struct wsp_request *r) WSP_INTERNAL;
/* Closes (abortively with abort) and frees an unlinked request. */
void wsp_request_destroy(struct wsp_request *r, int abort) WSP_INTERNAL;
/* Sends a REFUSE frame with the reason, best effort. */
void wsp_request_refuse(struct wsp_request *r, int reason) WSP_INTERNAL;
/* Ends an unlinked request on the application's behalf: counts it in *counter, tells the
 * client why (a REFUSE with reason, a WSP_REASON_… value; a client that cannot read that
 * reason, or a peer that never spoke WSP, is reset instead), closes the connection and queues
 * a notice for the drop handler. */
void wsp_request_end(struct wsp_listener *l, struct wsp_request *r, uint64_t *counter,
                     int reason) WSP_INTERNAL;
/* Drops a queued request whose client left (counted as withdrawn) or sent bytes after its
 * request (counted as malformed). */
void wsp_request_withdraw(struct wsp_listener *l, struct wsp_request *r) WSP_INTERNAL;
/* How the client of a queued request stands now (asks the kernel unless already known, and
 * records what it learns). */
enum wsp_client_state wsp_request_client(struct wsp_request *r) WSP_INTERNAL;
/* Whether a queued request's client stopped waiting by now (its stated patience ran out). */
int wsp_request_expired(const struct wsp_request *r, uint64_t now) WSP_INTERNAL;

/* Takes at most max connections off the kernel's queue; returns how many. */
int wsp_listener_pull(struct wsp_listener *l, int max) WSP_INTERNAL;
void wsp_listener_room_freed(struct wsp_listener *l) WSP_INTERNAL;
void wsp_listener_rearm(struct wsp_listener *l) WSP_INTERNAL;
/* Has the reactor watch a queued connect-data request for its client leaving. */
void wsp_listener_watch(struct wsp_listener *l, struct wsp_request *r) WSP_INTERNAL;
void wsp_listener_free(struct wsp_listener *l) WSP_INTERNAL;
/* so->lock held. Sleeps until the listener changes (or spuriously); the caller re-checks. */
void wsp_listener_wait(struct wsp_listener *l) WSP_INTERNAL;
/* Wakes at most n (INT_MAX: all) accepts blocked in wsp_listener_wait; so->lock may be held
 * or not, but n must have been taken from l->waiters under it. */
void wsp_listener_wake(struct wsp_listener *l, int n) WSP_INTERNAL;
/* so->lock held. Takes the notices for the drop handler; pass them to
 * wsp_listener_deliver_notices once the lock is released. */
struct wsp_drop_notice *wsp_listener_take_notices(struct wsp_listener *l) WSP_INTERNAL;
/* Calls the socket's drop handler (if any) for each notice, then frees them. Lock not held. */
void wsp_listener_deliver_notices(struct wsp_socket *so, struct wsp_drop_notice *n) WSP_INTERNAL;
/* Raises FD_ACCEPT for the listener's event registration (netevents.c). */
void wsp_listener_notify_accept(struct wsp_listener *l) WSP_INTERNAL;

#endif
