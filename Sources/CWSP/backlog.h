/* The provider's backlog as lpWSPAccept (accept.c) and lpWSPSelect (select.c) see it: the
 * requests a listener holds until lpWSPAccept decides, behind the functions below. The
 * listener and its lists are listener.c's alone; of a request, accept.c reads only what the
 * client sent (peer, frame) and the descriptor it will hand to the accepted socket. All of it
 * is guarded by the listening socket's lock, held in every call unless said otherwise. */
#ifndef WSP_BACKLOG_H
#define WSP_BACKLOG_H

#include "handshake.h"
#include "internal.h"

struct wsp_listener;
struct wsp_drop_notice;

struct wsp_request {
    struct wsp_reactor_item item; /* first: the reactor hands back this pointer */
    /* What accept.c reads: the client's address and request, and the descriptor. */
    int fd;
    int fd_nonblocking; /* accepted with O_NONBLOCK */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    wsp_hs_frame frame;      /* decoded; points into buf */
    /* The rest is listener.c's. */
    struct wsp_request *next, *prev;
    struct wsp_listener *listener;
    bool fd_owned;    /* false once the descriptor belongs to an accepted socket */
    bool watched;     /* registered with the reactor */
    bool queued;      /* in the backlog (else still handshaking) */
    bool presenting;  /* a condition function is looking at it now */
    bool taken;       /* out of the backlog, its answer being sent: the reactor leaves it */
    bool gone;        /* the client left, or broke the protocol, while being presented */
    bool misbehaved;  /* ...by sending bytes after its request (gone is set too) */
    uint64_t deadline_ms;    /* handshaking: drop when not complete by then */
    uint64_t arrived_ms;     /* when the connection was taken off the kernel's queue */
    uint64_t expires_ms;     /* queued: the client stops waiting then (its patience); 0 none */
    uint64_t next_notice_ms; /* queued, connect data: when to send the next "pending" */
    uint64_t watch_ms;       /* queued unwatched: when the reactor starts watching it */
    struct wsp_hold_link *hold; /* held (CF_HOLD): in the held list, not the backlog */
    uint64_t hold_expires_ms;   /* held: refused then (WSP_HOLD_DEADLINE); 0 none */
    uint64_t arrival;           /* the listener's count of connections when it arrived */
    uint8_t *buf;            /* the handshake request as read */
    size_t buf_len, buf_cap;
};

/* How a queued request's client stands. */
enum wsp_client_state {
    WSP_CLIENT_WAITING = 0, /* still there, waiting for its answer */
    WSP_CLIENT_GONE,        /* closed or reset: it gave up */
    WSP_CLIENT_SENT_MORE,   /* connect data: sent bytes after its request, which the
                             * protocol forbids (PROTOCOL.md): the request is malformed */
};

/* How the client of a queued request stands: the one way the provider learns that a client
 * has gone. A departure once seen is remembered; otherwise the kernel is asked, even for a
 * request the reactor watches (after a condition function ran, or as the reactor reports
 * it, the answer must be current, and the watch may not have caught up yet). */
enum wsp_client_state wsp_request_client(struct wsp_request *r) WSP_INTERNAL;
/* Drops a queued request whose client left (counted as withdrawn) or sent bytes after its
 * request (counted as malformed). */
void wsp_request_withdraw(struct wsp_listener *l, struct wsp_request *r) WSP_INTERNAL;

/* The listening address, shown to condition functions as the callee id. */
const struct sockaddr_storage *wsp_listener_local(const struct wsp_listener *l) WSP_INTERNAL;
/* For tests, on a socket that listens (or did), each taking so->lock: how many times the
 * reactor looked at a held request's client (reports it acted on). */
uint64_t wsp_listener_held_checks(struct wsp_socket *so) WSP_INTERNAL;
/* For tests: how many looks of lpWSPAccept's at the kernel's queue found it empty. */
uint64_t wsp_listener_empty_looks(struct wsp_socket *so) WSP_INTERNAL;
/* For tests: how many times the kernel was asked how a queued request's client stands
 * (wsp_request_client). */
uint64_t wsp_listener_client_looks(struct wsp_socket *so) WSP_INTERNAL;
/* For tests: how many times a complete request was followed by a look (a peek) for bytes
 * behind it. */
uint64_t wsp_listener_tail_peeks(struct wsp_socket *so) WSP_INTERNAL;
/* For tests: how many pauses after running out of descriptors the listener's timer ended. */
uint64_t wsp_listener_resumes(struct wsp_socket *so) WSP_INTERNAL;
/* For tests: whether the reactor reads the listening descriptor now. */
int wsp_listener_reading(struct wsp_socket *so) WSP_INTERNAL;
/* For tests: how many times blocked accepts were woken (wake_seq, which every wake-up
 * advances); the socket must listen. */
uint32_t wsp_listener_wakes(struct wsp_socket *so) WSP_INTERNAL;
/* Whether lpWSPCloseSocket has closed the listener. */
int wsp_listener_closed(const struct wsp_listener *l) WSP_INTERNAL;
/* An lpWSPAccept call enters (+1) or leaves (-1). While blocking accepts keep coming, the
 * listening descriptor is theirs (listener.c, "direct"). */
void wsp_backlog_accepting(struct wsp_listener *l, int delta) WSP_INTERNAL;
/* Sleeps until the listener changes (or spuriously); the caller re-checks. */
void wsp_listener_wait(struct wsp_listener *l) WSP_INTERNAL;
/* Takes the notices for the drop handler; pass them to wsp_listener_deliver_notices once the
 * lock is released. */
struct wsp_drop_notice *wsp_listener_take_notices(struct wsp_listener *l) WSP_INTERNAL;
/* Calls the socket's drop handler (if any) for each notice, then frees them. Lock not held. */
void wsp_listener_deliver_notices(struct wsp_socket *so, struct wsp_drop_notice *n) WSP_INTERNAL;

/* Whether a request waits for lpWSPAccept (one being presented does not count). */
int wsp_backlog_available(const struct wsp_listener *l) WSP_INTERNAL;
/* How many requests the backlog holds, those being presented included. */
int wsp_backlog_queued(const struct wsp_listener *l) WSP_INTERNAL;
/* The oldest request nobody is being asked about, now marked as presented; expired requests
 * and departed clients are dropped on the way. NULL when none. asking: a condition function
 * will see it (the decision checks its client again after). The caller ends the
 * presentation with wsp_backlog_put_back or wsp_backlog_take. */
struct wsp_request *wsp_backlog_next(struct wsp_listener *l, int asking) WSP_INTERNAL;
/* Takes what the kernel has queued into the backlog for an accept that found it empty;
 * returns how many. first: the accept has not waited yet in this call; a blocking one that
 * found the kernel's queue empty on its last first look may then return 0 without asking
 * (it waits, and the wait watches the kernel's queue). */
int wsp_backlog_fill(struct wsp_listener *l, int first) WSP_INTERNAL;
/* The presented request waits in line again, first (deferred: by CF_DEFER, counted). */
void wsp_backlog_put_back(struct wsp_listener *l, struct wsp_request *r, int deferred) WSP_INTERNAL;
/* The presented request leaves the backlog; end it with wsp_backlog_finish. From then on
 * it is the caller's alone: it may send the answer with the lock released. */
void wsp_backlog_take(struct wsp_listener *l, struct wsp_request *r) WSP_INTERNAL;

/* How a request taken from the backlog ends. */
enum wsp_outcome {
    WSP_OUTCOME_ACCEPTED,      /* its descriptor belongs to an accepted socket now */
    WSP_OUTCOME_REJECTED,      /* CF_REJECT: refused (plain TCP: reset) */
    WSP_OUTCOME_UNDELIVERABLE, /* the answer does not fit what the client can take */
    WSP_OUTCOME_WITHDRAWN,     /* the client left as its answer was sent */
    WSP_OUTCOME_ABANDONED,     /* the provider's failure, or the listener closed: a reset */
};
/* Counts and frees r, closing its connection as how says. */
void wsp_backlog_finish(struct wsp_listener *l, struct wsp_request *r,
                        enum wsp_outcome how) WSP_INTERNAL;

/* ---- held requests (CF_HOLD) -------------------------------------------------------------
 * held.c keeps the handles; listener.c keeps the held requests themselves, watched for their
 * clients leaving, sent pending notices and timed, in a list of their own beside the backlog.
 * A held request that ends without an answer (its client left, a deadline passed, the
 * listener closed) is ended by listener.c, which first calls its link's ended hook with the
 * WSA code the answer will report. */
struct wsp_hold_link {
    /* so->lock held; r is freed right after. Set by held.c. */
    void (*ended)(struct wsp_hold_link *link, struct wsp_socket *so, int code);
    struct wsp_request *request; /* while held; set by wsp_backlog_hold */
    struct wsp_socket *so;       /* the listening socket: the link's owner keeps a reference */
};

/* The presented request r leaves the backlog to be held through link: 0; or WSAENOBUFS when
 * the listener holds WSP_HOLD_LIMIT requests already, and r waits first in line again. */
int wsp_backlog_hold(struct wsp_listener *l, struct wsp_request *r,
                     struct wsp_hold_link *link) WSP_INTERNAL;
/* The held request r leaves the held list to be answered; end it with wsp_backlog_finish. */
void wsp_held_take(struct wsp_listener *l, struct wsp_request *r) WSP_INTERNAL;
/* Refuses the held request r with reason (a WSP_REASON_… value), counted as rejected. */
void wsp_held_reject(struct wsp_listener *l, struct wsp_request *r, int reason) WSP_INTERNAL;
/* The held request r returns to the backlog, in its place by arrival. */
void wsp_held_release(struct wsp_listener *l, struct wsp_request *r) WSP_INTERNAL;

/* accept.c, for held.c: answers the held request r with CF_ACCEPT, callee data and QoS as
 * given (qos NULL: the caller's own). Returns the new socket, or INVALID_SOCKET with *err;
 * *ended says whether r is gone (else it stays held: the application's mistake). */
SOCKET wsp_accept_held(struct wsp_socket *so, struct wsp_request *r, const WSABUF *callee,
                       const QOS *qos, int *ended, int *err) WSP_INTERNAL;
/* accept.c: lpWSPAccept, and with hold set WSPAcceptHold's accept: a CF_HOLD answer holds the
 * request through hold and fails with WSA_IO_PENDING. */
SOCKET wsp_accept_or_hold(SOCKET s, struct sockaddr *addr, LPINT addrlen, LPCONDITIONPROC cond,
                          DWORD_PTR ctx, struct wsp_hold_link *hold, LPINT lpErrno) WSP_INTERNAL;

#endif
