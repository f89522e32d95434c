/* Listeners: lpWSPListen and the provider's own backlog of connection requests
 * (docs/SEMANTICS.md §4, §9).
 *
 * Connections come off the kernel's queue two ways. While blocking lpWSPAccept calls keep
 * asking (see "direct" in struct wsp_listener), the accepting threads take them themselves,
 * one each, as a raw server would, and on the connect-data protocol read the request that
 * came with the connection on their own thread, without waiting: no hand-off between threads
 * per connection. Otherwise the reactor takes them as they arrive (so that FD_ACCEPT and
 * select see them). Either way no application thread ever waits on a client: a request that
 * arrived whole enters the backlog at once, any other is the reactor's until it is complete or
 * its deadline passes, so only complete, well-formed requests enter the backlog. While a
 * request waits there the reactor tells its client "pending" now and then and, unless an
 * accept takes it at once, watches for the client giving up. lpWSPAccept (accept.c) presents
 * requests to the condition function. All of a listener's state is guarded by its socket's
 * lock. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backlog.h"
#include "handshake.h"
#include "netevents.h"

/* At most this many connect-data connections may be mid-handshake per listener; past it the
 * oldest is dropped, so a flood of silent connections cannot starve a well-behaved client. */
#define MAX_HANDSHAKING 4096
/* After running out of descriptors, wait this long before accepting again. */
#define EMFILE_PAUSE_MS 100

/* ---- the listener's own state ------------------------------------------------------------ */

/* How long a request counts as just arrived: a non-blocking accept usually takes it within
 * that time, so until then the reactor does not watch its client (wsp_backlog_next checks
 * the client of an unwatched request itself). A client that leaves meanwhile holds
 * its place in the backlog that much longer; it is never presented or handed out. */
#define FRESH_REQUEST_MS 10
/* How long the listening descriptor stays with the accepting threads once none is inside
 * lpWSPAccept (see "direct" below): long enough that a loop of lpWSPAccept calls keeps it
 * without a pair of epoll_ctl calls per connection, short enough that the provider soon takes
 * arrivals again (they wait in the kernel's queue meanwhile, unseen by its counters; an
 * event registration or lpWSPSelect takes the descriptor back at once). Longer than a
 * scheduler's time slice: a server thread that works on a connection while its client runs
 * on the same CPU is often away from lpWSPAccept for a few milliseconds, and each time the
 * linger ran out meanwhile the reactor woke for nothing (2 ms cost about 4 % of the CPU time
 * of a plain-TCP connection pinned to one CPU, docs/PERFORMANCE.md). */
#define DIRECT_LINGER_MS 20

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

struct wsp_listener {
    struct wsp_reactor_item item; /* first: fd is the listening descriptor */
    struct wsp_socket *so;
    /* Blocked accepts sleep on this word (a futex) without so->lock: it changes when a
     * request arrives or returns to the line, or the socket closes. */
    uint32_t wake_seq;
    int backlog;
    struct sockaddr_storage local; /* the listening address, shown as the callee id */
    bool reading;       /* the reactor reads the listening descriptor */
    bool closed;
    int arrivals; /* requests admitted since the last wake-up of blocked accepts */
    int waiters;  /* accepts blocked in wsp_listener_wait */
    /* Direct: while blocking accepts keep coming (one is inside lpWSPAccept, or one left less
     * than DIRECT_LINGER_MS ago), they take
     * connections off the kernel's queue themselves and read each request on their own
     * thread, as a raw server would; the reactor leaves the listening descriptor alone and
     * only takes over requests that are slow to arrive. One waiting accept (the leader)
     * polls the descriptor and wake_fd; the others sleep on wake_seq. Off whenever an event
     * registration wants FD_ACCEPT from the reactor. */
    bool direct;
    int accepting;       /* lpWSPAccept calls inside now */
    uint64_t direct_until_ms; /* when accepting fell to 0: direct ends then */
    bool leader;         /* written under the lock; read by wake_accepts without it */
    bool leader_paused;  /* the leader waits for wake_fd alone: the backlog had no room */
    int wake_fd;         /* eventfd that wakes the leader; -1 until the first leader */
    bool pulling;        /* an accept is taking connections itself: what it admits is its */
    /* The last look at the kernel's queue by an accept that had not waited yet found it
     * empty (see wsp_backlog_fill); probe counts the looks skipped since. */
    bool expect_empty;
    unsigned probe;
    /* Admitted unwatched because an accept was waiting for it (blocked, pulling it, or
     * selected for FD_ACCEPT): the next accept to look may
     * skip the check that its client is still there when it asks a condition function,
     * since it checks again after the function anyway. */
    struct wsp_request *handoff;
    uint64_t resume_ms; /* paused after EMFILE until then */
    uint64_t arrivals_ever; /* connections taken: a released request's place in line */
    struct wsp_request_list handshaking; /* connect data: requests still being read */
    struct wsp_request_list ready;       /* the backlog, oldest first */
    struct wsp_request_list held;        /* held by CF_HOLD, oldest first (held.c) */
    bool hold_blocked; /* a hold was refused for the limit: FD_ACCEPT once one leaves */
    struct wsp_drop_notice *notices, **notices_tail; /* for the drop handler, oldest first */
    WSP_LISTENER_STATS_DATA stats;
    /* For tests, which see through them what the design claims: the reactor does not spin
     * on a held request (held_ready calls), an accept that expects an empty queue waits
     * first instead of looking (looks by accepts that found the queue empty), a request
     * handed to the accept that took it is not checked twice (looks at a client's state in
     * the kernel), a pause after running out of descriptors lasts until its timer ends
     * it (pauses ended), and only a read that filled the buffer exactly costs a look behind
     * a request (peeks). */
    uint64_t held_checks;
    uint64_t empty_looks;
    uint64_t client_looks;
    uint64_t resumes;
    uint64_t tail_peeks;
};

static void request_unlink(struct wsp_request_list *l, struct wsp_request *r);
/* Closes (abortively with abort) and frees an unlinked request. */
static void request_destroy(struct wsp_request *r, bool abort);
/* Sends a REFUSE frame with the reason, best effort. */
static void request_refuse(struct wsp_request *r, int reason);
/* Ends an unlinked request on the application's behalf: counts it in *counter, tells the
 * client why (a REFUSE with reason, a WSP_REASON_… value; a client that cannot read that
 * reason, or a peer that never spoke WSP, is reset instead), closes the connection and queues
 * a notice for the drop handler. */
static void request_end(struct wsp_listener *l, struct wsp_request *r, uint64_t *counter,
                        int reason);
/* Whether a queued request's client stopped waiting by now (its stated patience ran out). */
static bool request_expired(const struct wsp_request *r, uint64_t now);
/* Takes at most max connections off the kernel's queue; returns how many. */
static int pull(struct wsp_listener *l, int max);
static bool pull_direct(struct wsp_listener *l);
static void accept_failed(struct wsp_listener *l, int e);
/* Called when a request leaves the backlog. */
static void room_freed(struct wsp_listener *l);
/* Arms the listener's timer for the earliest of its deadlines. */
static void rearm(struct wsp_listener *l);
/* Has the reactor watch a queued connect-data request for its client leaving. */
static void watch_request(struct wsp_listener *l, struct wsp_request *r);
static void listener_free(struct wsp_listener *l);
/* Wakes at most n (INT_MAX: all) accepts blocked in wsp_listener_wait; so->lock may be held
 * or not, but n must have been taken from l->waiters under it. */
static void wake_accepts(struct wsp_listener *l, int n);
/* A blocking accept found the backlog empty: the listening descriptor becomes the accepting
 * threads' (see "direct"). */
static void go_direct(struct wsp_listener *l);
/* Waits as the direct mode's leader. */
static void lead(struct wsp_listener *l);

static void request_ready(struct wsp_reactor_item *item, uint32_t events);
static void request_release(struct wsp_reactor_item *item);
static void listener_ready(struct wsp_reactor_item *item, uint32_t events);
static void listener_release(struct wsp_reactor_item *item);
static void listener_timer(struct wsp_reactor_item *item, uint64_t now);
static void unlock_and_wake(struct wsp_listener *l);
static void notify_accept(struct wsp_listener *l);
/* Held requests: a reactor event on one; its deadlines; ending one unanswered (the link's
 * hook is told code; reason 0: the client left, else it is refused with reason). */
static void held_ready(struct wsp_listener *l, struct wsp_request *r);
static void held_timer(struct wsp_listener *l, uint64_t now);
static void held_end(struct wsp_listener *l, struct wsp_request *r, int code, int reason);

/* ---- lists ------------------------------------------------------------------------------- */

static void list_append(struct wsp_request_list *l, struct wsp_request *r) {
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->count++;
}

/* Inserts r into the handshaking list, which stays ordered by deadline (the timer looks at
 * the head only). Deadlines usually grow, so this is an append; a deadline shortened by
 * WSP_HANDSHAKE_DEADLINE puts r ahead of older requests that still have longer to go. */
static void list_insert_by_deadline(struct wsp_request_list *l, struct wsp_request *r) {
    struct wsp_request *after = l->tail;
    while (after && after->deadline_ms > r->deadline_ms)
        after = after->prev;
    r->prev = after;
    r->next = after ? after->next : l->head;
    if (r->next)
        r->next->prev = r;
    else
        l->tail = r;
    if (after)
        after->next = r;
    else
        l->head = r;
    l->count++;
}

static void request_unlink(struct wsp_request_list *l, struct wsp_request *r) {
    if (r->listener->handoff == r)
        r->listener->handoff = NULL;
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->next = r->prev = NULL;
    l->count--;
}

/* ---- requests ------------------------------------------------------------------------------ */

static struct wsp_request *request_new(struct wsp_listener *l, int fd) {
    struct wsp_request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->fd = fd;
    r->fd_owned = 1;
    r->listener = l;
    r->item.fd = fd;
    r->item.on_ready = request_ready;
    r->item.release = request_release;
    r->item.quiet_release = 1; /* request_destroy closes the descriptor itself */
    wsp_socket_retain(l->so); /* the request may outlive the listener's close */
    return r;
}

static void request_release(struct wsp_reactor_item *item) {
    struct wsp_request *r = (struct wsp_request *)item;
    struct wsp_socket *so = r->listener->so;
    if (r->fd_owned)
        close(r->fd);
    free(r->buf);
    free(r);
    wsp_socket_release(so);
}

/* Ends a request that was unlinked from its list: closes its connection (abortively when
 * abort is set) and frees it, through the reactor when the reactor watches it. Only an
 * accepted request no longer owns its descriptor, and that one comes here unwatched and not
 * aborted (wsp_backlog_finish): the release then leaves the descriptor alone. */
static void request_destroy(struct wsp_request *r, bool abort) {
    if (abort) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (!r->watched) {
        request_release(&r->item);
        return;
    }
    /* Handlers check `removed` under the listener's lock before touching the descriptor, so
     * it can close now rather than when the reactor gets round to the release. */
    r->fd_owned = 0; /* set first: the reactor may release r as soon as it is removed */
    wsp_reactor_remove_and_close(&r->item);
}

/* Sends a small frame (PENDING or REFUSE) on a request's connection without blocking, best
 * effort: a client that cannot take it has left or stopped reading, which the request's watch
 * or the next look at its client finds out. */
static void request_send_frame(struct wsp_request *r, const wsp_hs_frame *f) {
    uint8_t buf[WSP_HS_HEADER_SIZE]; /* PENDING and REFUSE are a header alone */
    size_t n = wsp_hs_encode(f, buf, sizeof buf);
    if (n)
        send(r->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void request_refuse(struct wsp_request *r, int reason) {
    wsp_hs_frame f = {.type = WSP_HS_REFUSE, .reason = (uint8_t)reason};
    request_send_frame(r, &f);
}

/* Whether what the client sent so far opens a WSP REQUEST (a peer that never spoke WSP is
 * owed no frame), and of which version (only version 3 clients read reasons above 3); 0 for
 * none, which a version byte of 0 is too. */
static int request_version(const struct wsp_request *r) {
    if (r->buf_len < WSP_HS_HEADER_SIZE / 2 || r->buf[0] != 0x57 || r->buf[1] != 0x53 ||
        r->buf[3] != WSP_HS_REQUEST || r->buf[2] > WSP_HS_VERSION_3)
        return 0;
    return r->buf[2];
}

/* Reads and discards what the client has sent so far, so that the close after a REFUSE is a
 * FIN behind it rather than a reset that could overtake it. Bounded: a client that keeps
 * sending gets the reset. */
static void discard_input(int fd) {
    uint8_t scratch[4096];
    for (int i = 0; i < 8; i++) {
        ssize_t n = recv(fd, scratch, sizeof scratch, MSG_DONTWAIT); /* never sleeps: no EINTR */
        if (n < (ssize_t)sizeof scratch)
            return;
    }
}

static void queue_notice(struct wsp_listener *l, const struct wsp_request *r, int reason) {
    if (!l->so->drop_handler.lpfnHandler)
        return;
    struct wsp_drop_notice *n = malloc(sizeof *n);
    if (!n)
        return; /* the count above still records it */
    n->next = NULL;
    memcpy(&n->peer, &r->peer, r->peer_len);
    n->peer_len = r->peer_len;
    n->reason = reason;
    *l->notices_tail = n;
    l->notices_tail = &n->next;
}

/* Tells the client of an unlinked request why it is refused, when it can read the reason,
 * and closes the connection (a reset when it cannot). */
static void request_close_refused(struct wsp_request *r, int reason) {
    /* A client that predates reasons 4 and above is reset as before (it reports a refusal):
     * any reason it could read would be false. */
    int version = request_version(r);
    int tell = version == WSP_HS_VERSION_3 || (version && reason <= WSP_HS_REASON_V1_MAX);
    if (tell) {
        request_refuse(r, reason);
        discard_input(r->fd);
    }
    request_destroy(r, !tell);
}

static void request_end(struct wsp_listener *l, struct wsp_request *r, uint64_t *counter,
                        int reason) {
    (*counter)++;
    queue_notice(l, r, reason);
    request_close_refused(r, reason);
}

void wsp_request_withdraw(struct wsp_listener *l, struct wsp_request *r) {
    request_unlink(&l->ready, r);
    if (r->misbehaved) {
        request_end(l, r, &l->stats.malformed, WSP_REASON_MALFORMED);
    } else {
        l->stats.withdrawn++;
        request_destroy(r, true);
    }
    room_freed(l);
}

/* What the kernel says of a queued request's client now. */
static enum wsp_client_state client_state(const struct wsp_request *r, bool connect_data) {
    struct pollfd p = {.fd = r->fd, .events = POLLRDHUP | (connect_data ? POLLIN : 0)};
    if (poll(&p, 1, 0) <= 0)
        return WSP_CLIENT_WAITING;
    int unread;
    if ((p.revents & (POLLHUP | POLLERR)) || ioctl(r->fd, FIONREAD, &unread) != 0)
        return WSP_CLIENT_GONE;
    /* Plain TCP: the application's first bytes, and a peer that sent data and then
     * half-closed may still want its answer. Connect data: nothing may follow the request. */
    if (unread)
        return connect_data ? WSP_CLIENT_SENT_MORE : WSP_CLIENT_WAITING;
    /* Closed without a byte more: it gave up. (What poll reported is POLLRDHUP: plain TCP
     * asks for it alone, and connect data's POLLIN with nothing to read is the end of the
     * stream, which sets it too.) */
    return WSP_CLIENT_GONE;
}

enum wsp_client_state wsp_request_client(struct wsp_request *r) {
    if (r->gone)
        return r->misbehaved ? WSP_CLIENT_SENT_MORE : WSP_CLIENT_GONE;
    r->listener->client_looks++;
    enum wsp_client_state st = client_state(r, r->listener->so->entry->connect_data);
    if (st != WSP_CLIENT_WAITING) {
        r->gone = 1;
        r->misbehaved = st == WSP_CLIENT_SENT_MORE;
    }
    return st;
}

static bool request_expired(const struct wsp_request *r, uint64_t now) {
    return r->expires_ms && now >= r->expires_ms;
}

/* ---- the connect-data handshake, read by the reactor --------------------------------------- */

/* Ends a request that has not become whole (see request_end). */
static void end_handshaking(struct wsp_listener *l, struct wsp_request *r, uint64_t *counter,
                            int reason) {
    request_unlink(&l->handshaking, r);
    request_end(l, r, counter, reason);
}

/* A client that left before sending a byte merely gave up. */
static void drop_handshaking_withdrawn(struct wsp_listener *l, struct wsp_request *r) {
    request_unlink(&l->handshaking, r);
    l->stats.withdrawn++;
    request_destroy(r, true);
}

static void watch_request(struct wsp_listener *l, struct wsp_request *r) {
    if (!l->so->entry->connect_data)
        return; /* plain requests are checked when presented */
    /* From now on the client sends nothing until it has its answer: watch for it leaving,
     * and for bytes it may not send. A connect-data request that is watched already is
     * watched for both (read by the reactor, or held): the one narrower watch, set by
     * request_ready while it is presented, comes with its client gone, and such a request
     * never waits again. */
    if (!r->watched && wsp_reactor_add(&r->item, EPOLLIN | EPOLLRDHUP) == 0)
        r->watched = 1;
}

/* Whether bytes wait after a request that filled the read buffer exactly (a shorter read
 * would have taken them into the buffer, where the decoder sees them). */
static bool sent_more(struct wsp_listener *l, int fd) {
    l->tail_peeks++;
    uint8_t b;
    return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* so->lock held. A complete connect-data request: into the backlog, or refused when it is
 * full or its client has already stopped waiting. */
static void admit(struct wsp_listener *l, struct wsp_request *r) {
    request_unlink(&l->handshaking, r);
    if (l->ready.count >= l->backlog) {
        request_end(l, r, &l->stats.backlog_full, WSP_REASON_BACKLOG_FULL);
        return;
    }
    if (r->frame.has_patience) {
        r->expires_ms = r->arrived_ms + r->frame.patience_ms;
        if (request_expired(r, wsp_now_ms())) {
            request_end(l, r, &l->stats.expired, WSP_REASON_EXPIRED);
            return;
        }
    }
    r->queued = 1; /* request_ready must now watch for the client leaving, not read */
    uint64_t queued_ms = wsp_now_ms();
    r->next_notice_ms = queued_ms + l->so->pending_interval_ms;
    list_append(&l->ready, r);
    /* A blocked accept takes the request at once (and checks its client is still there); one
     * that waits in the backlog is watched, so that a client giving up frees its place. The
     * watch starts a moment later: a non-blocking accept told by FD_ACCEPT usually takes the
     * request first (checking its client as it does), and the watch's two epoll_ctl calls
     * are saved. A client that leaves meanwhile holds its place that much longer. */
    if (!r->watched) { /* (one the reactor read is watched already) */
        if (l->pulling || (l->waiters > 0 && !l->handoff)) {
            l->handoff = r;
        } else {
            r->watch_ms = queued_ms + FRESH_REQUEST_MS;
            /* An accept that waits for FD_ACCEPT (an async server's) is woken by this arrival
             * as a blocked one is, and may skip the same look before its condition function
             * while the request is fresh (wsp_backlog_next). */
            if (!l->handoff && wsp_netevents_asks(l->so, FD_ACCEPT))
                l->handoff = r;
        }
    }
    rearm(l);
    l->arrivals++;
    notify_accept(l);
}

/* so->lock held. Decodes what has been read of r's request (nothing yet is a request still to
 * come): true while it is incomplete, false once r was admitted or dropped. */
static bool consider(struct wsp_listener *l, struct wsp_request *r) {
    long res = wsp_hs_decode(r->buf, r->buf_len, l->so->max_caller_data, 1u << WSP_HS_REQUEST,
                             &r->frame);
    if (res == WSP_HS_NEED_MORE)
        return true;
    if (res == WSP_HS_TOO_LONG) {
        end_handshaking(l, r, &l->stats.too_long, WSP_REASON_DATA_TOO_LONG);
        return false;
    }
    /* Nothing may follow the request, at any size: not in the same read, nor waiting behind
     * a read that filled the buffer exactly. A fault (negative) matches no length either. */
    if ((size_t)res != r->buf_len ||
        (r->buf_len == r->buf_cap && sent_more(l, r->fd))) {
        end_handshaking(l, r, &l->stats.malformed, WSP_REASON_MALFORMED);
        return false;
    }
    admit(l, r);
    return false;
}

/* so->lock held. Reads what the client sent; admits the request once it is complete.
 * Returns true while the request is still incomplete, false once r was admitted or dropped
 * (it may be freed then). What an accept's own pull read before the lock was taken is
 * considered first. */
static bool read_request(struct wsp_listener *l, struct wsp_request *r) {
    while (consider(l, r)) {
        if (r->buf_len == r->buf_cap) {
            /* Never past the largest frame: that many bytes always hold a whole request or a
             * fault the decoder names, so a full buffer is never still incomplete. */
            size_t cap = r->buf_cap ? r->buf_cap * 2 : 512;
            if (cap > WSP_HS_MAX_FRAME)
                cap = WSP_HS_MAX_FRAME;
            uint8_t *nb = realloc(r->buf, cap);
            if (!nb) { /* the provider's shortage, not the client's fault: a bare close */
                request_unlink(&l->handshaking, r);
                request_destroy(r, true);
                return false;
            }
            r->buf = nb;
            r->buf_cap = cap;
        }
        /* MSG_DONTWAIT never sleeps, so it is never interrupted (EINTR). */
        ssize_t n = recv(r->fd, r->buf + r->buf_len, r->buf_cap - r->buf_len, MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN)
            return true;
        if (n <= 0) { /* the client left (or broke) before finishing its request */
            /* Without a byte sent, a close and a reset are both a client giving up. */
            if (r->buf_len == 0)
                drop_handshaking_withdrawn(l, r);
            else
                end_handshaking(l, r, &l->stats.malformed, WSP_REASON_MALFORMED);
            return false;
        }
        r->buf_len += (size_t)n;
    }
    return false;
}

/* Whatever epoll reports for a queued request (registered for EPOLLIN and EPOLLRDHUP, or for
 * nothing, which still reports EPOLLHUP and EPOLLERR) means: ask the kernel about its client. */
static void request_ready(struct wsp_reactor_item *item, uint32_t events) {
    (void)events;
    struct wsp_request *r = (struct wsp_request *)item;
    struct wsp_listener *l = r->listener;
    pthread_mutex_lock(&l->so->lock);
    if (atomic_load(&item->removed) || r->taken) {
        /* being accepted, refused or dropped by another thread since the event was read */
    } else if (!r->queued) {
        read_request(l, r);
    } else if (r->hold) {
        held_ready(l, r);
    } else if (wsp_request_client(r) != WSP_CLIENT_WAITING) {
        if (r->presenting) {
            /* The accepting thread finds out (r->gone) and drops it. The readiness is
             * level-triggered: stop watching, or the reactor spins on it for as long as
             * the condition function runs. */
            wsp_reactor_modify(&r->item, 0);
        } else {
            wsp_request_withdraw(l, r);
        }
    }
    unlock_and_wake(l);
}

/* ---- taking connections off the kernel's queue --------------------------------------------- */

/* so->lock held. Whether the listener has room for another connection. */
static bool has_room(const struct wsp_listener *l) {
    if (l->so->entry->connect_data)
        return true; /* the handshaking list evicts its oldest; the backlog check comes later */
    return l->ready.count < l->backlog;
}

/* so->lock held. Starts or stops reading the listening descriptor. */
static void set_reading(struct wsp_listener *l, bool on) {
    if (l->reading == on || l->closed)
        return;
    l->reading = on;
    wsp_reactor_modify(&l->item, on ? EPOLLIN : 0);
}

/* so->lock held. Whether the reactor should read the listening descriptor now. */
static bool reactor_reads(const struct wsp_listener *l) {
    return !l->closed && !l->resume_ms && !l->direct && has_room(l);
}

/* The first read of a request, when an accept makes it (the buffer's first size). */
#define FIRST_READ 512

/* so->lock held. A connection off the kernel's queue becomes a request; buf (FIRST_READ bytes,
 * have of them read, or NULL) holds what was read of it before the lock was taken. */
static void take_connection(struct wsp_listener *l, int fd, int nonblocking,
                            const struct sockaddr_storage *peer, socklen_t peer_len,
                            uint8_t *buf, size_t have) {
    struct wsp_request *r = request_new(l, fd);
    if (!r) {
        free(buf);
        close(fd);
        return;
    }
    if (buf) {
        r->buf = buf;
        r->buf_cap = FIRST_READ;
        r->buf_len = have;
    }
    r->fd_nonblocking = nonblocking;
    r->arrival = ++l->arrivals_ever;
    r->arrived_ms = wsp_now_ms();
    memcpy(&r->peer, peer, peer_len);
    r->peer_len = peer_len;
    if (!l->so->entry->connect_data) {
        r->queued = 1;
        list_append(&l->ready, r);
        if (l->pulling && !l->handoff)
            l->handoff = r; /* the pulling accept asks about it at once */
        l->arrivals++;
        notify_accept(l);
        return;
    }
    if (l->handshaking.count >= MAX_HANDSHAKING)
        end_handshaking(l, l->handshaking.head, &l->stats.timed_out,
                        WSP_REASON_HANDSHAKE_TIMEOUT);
    r->deadline_ms = r->arrived_ms + l->so->handshake_deadline_ms;
    list_insert_by_deadline(&l->handshaking, r);
    /* The request usually arrives with the connection: then it goes straight to the backlog
     * and never costs an epoll registration (accept checks for a withdrawn client itself). */
    if (!read_request(l, r))
        return;
    if (wsp_reactor_add(&r->item, EPOLLIN | EPOLLRDHUP) != 0) {
        request_unlink(&l->handshaking, r);
        request_destroy(r, true);
        return;
    }
    r->watched = 1;
    rearm(l);
}

/* so->lock held. Moves what the kernel has queued into the provider's lists; returns the
 * number taken. Called by the reactor and, as a fast path, by lpWSPAccept. */
static int pull(struct wsp_listener *l, int max) {
    int taken = 0;
    while (!l->closed && has_room(l) && taken < max) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        /* In the listener's mode, which the accepted socket will take (accept.c corrects it
         * if the mode changes meanwhile): the provider's own reads and writes on it use
         * MSG_DONTWAIT either way. */
        int nonblocking = l->so->nonblocking;
        int fd = accept4(l->so->fd, (struct sockaddr *)&peer, &len,
                         SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0));
        if (fd < 0) {
            if (errno == ECONNABORTED)
                continue; /* recoverable: the next one may be fine */
            accept_failed(l, errno);
            break;
        }
        take_connection(l, fd, nonblocking, &peer, len, NULL, 0);
        taken++;
    }
    if (!l->closed && !has_room(l))
        set_reading(l, false);
    return taken;
}

/* so->lock held. After accept4 failed with e, other than ECONNABORTED (a connection aborted
 * before it was taken, after which the next is tried at once). The listening descriptor is
 * non-blocking (socket.c): accept4 never sleeps, so it is never interrupted (EINTR). */
static void accept_failed(struct wsp_listener *l, int e) {
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        /* Level-triggered epoll would spin on the waiting connection: pause. */
        set_reading(l, false);
        l->resume_ms = wsp_now_ms() + EMFILE_PAUSE_MS;
        rearm(l);
    }
}

/* so->lock held; released while the kernel is asked. A blocking accept on connect data
 * takes one connection itself and makes the first read of its request on its own thread,
 * with the listener unlocked so that the other accepts do the same in parallel (the
 * listening descriptor keeps its number until the socket's last reference goes, so it
 * cannot name another socket meanwhile). Returns true when a connection was taken. Called
 * by wsp_backlog_fill only, for an accept that found the listener open (under this lock hold)
 * and no pause on. */
static bool pull_direct(struct wsp_listener *l) {
    struct wsp_socket *so = l->so;
    int nonblocking = so->nonblocking, lfd = so->fd;
    struct sockaddr_storage peer;
    socklen_t len;
    int fd;
    uint8_t *buf;
    ssize_t have;
    for (;;) {
        pthread_mutex_unlock(&so->lock);
        len = sizeof peer;
        fd = accept4(lfd, (struct sockaddr *)&peer, &len,
                     SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0));
        int e = errno;
        buf = fd >= 0 ? malloc(FIRST_READ) : NULL;
        have = buf ? recv(fd, buf, FIRST_READ, MSG_DONTWAIT) : 0;
        pthread_mutex_lock(&so->lock);
        if (fd >= 0)
            break;
        /* (Closed meanwhile: a failure is ended as when open. accept_failed leaves a closed
         * listener's reactor alone, and after an ECONNABORTED the next accept fails at once:
         * the close shut the descriptor down.) */
        if (e != ECONNABORTED) {
            accept_failed(l, e);
            return false;
        }
    }
    if (l->closed) { /* closed meanwhile: as if it had been in the queue then */
        free(buf);
        close(fd);
        return false; /* none taken */
    }
    take_connection(l, fd, nonblocking, &peer, len, buf, have > 0 ? (size_t)have : 0);
    return true;
}

/* Unlocks the listener, then wakes one blocked accept per request that arrived. Waking
 * after unlocking matters on a busy CPU: a waiter woken while the lock is held runs, finds
 * the lock taken and sleeps again, at the price of two more context switches. */
static void unlock_and_wake(struct wsp_listener *l) {
    int n = l->arrivals < l->waiters ? l->arrivals : l->waiters;
    l->arrivals = 0;
    struct wsp_drop_notice *notices = wsp_listener_take_notices(l);
    struct wsp_socket *so = l->so;
    pthread_mutex_unlock(&so->lock);
    if (n > 0)
        wake_accepts(l, n);
    if (notices)
        wsp_listener_deliver_notices(so, notices);
}

struct wsp_drop_notice *wsp_listener_take_notices(struct wsp_listener *l) {
    struct wsp_drop_notice *n = l->notices;
    l->notices = NULL;
    l->notices_tail = &l->notices;
    return n;
}

void wsp_listener_deliver_notices(struct wsp_socket *so, struct wsp_drop_notice *n) {
    pthread_mutex_lock(&so->lock);
    WSP_DROP_HANDLER_DATA h = so->drop_handler;
    pthread_mutex_unlock(&so->lock);
    while (n) {
        struct wsp_drop_notice *next = n->next;
        if (h.lpfnHandler)
            h.lpfnHandler(so->obj.handle, (const struct sockaddr *)&n->peer, (int)n->peer_len,
                          (DWORD)n->reason, h.dwContext);
        free(n);
        n = next;
    }
}

/* Blocked accepts wait on a futex rather than a condition variable: glibc's condition
 * variable takes the mutex back marked as contended, so the unlock before every condition
 * function would cost a futex wake-up of nobody. */
void wsp_listener_wait(struct wsp_listener *l) {
    /* The caller looked at the backlog, but an accept's own pull releases the lock: a request
     * admitted meanwhile (by the reactor, which woke no one as no one was waiting yet) must
     * not wait for the next wake-up. */
    if (l->closed || wsp_backlog_available(l))
        return;
    go_direct(l);
    if (l->direct && !l->leader) {
        lead(l);
        return;
    }
    uint32_t seq = __atomic_load_n(&l->wake_seq, __ATOMIC_SEQ_CST);
    l->waiters++;
    pthread_mutex_unlock(&l->so->lock);
    /* Returns at once if a wake-up came after seq was read: none can be lost. */
    syscall(SYS_futex, &l->wake_seq, FUTEX_WAIT_PRIVATE, seq, NULL, NULL, 0);
    pthread_mutex_lock(&l->so->lock);
    l->waiters--;
}

static void wake_accepts(struct wsp_listener *l, int n) {
    __atomic_fetch_add(&l->wake_seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&l->leader, __ATOMIC_SEQ_CST)) {
        uint64_t one = 1; /* the leader polls the kernel's queue and this descriptor */
        if (write(l->wake_fd, &one, sizeof one) < 0) {
            /* an eventfd only fails when its count is full: the leader is woken anyway */
        }
        if (--n == 0)
            return;
    }
    syscall(SYS_futex, &l->wake_seq, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* so->lock held, by a blocking accept that found the listener open. A socket registered
 * for network events, whose FD_ACCEPT comes from the reactor's reading, never gets here: the
 * registration makes it non-blocking, and keeps it so (FIONBIO refuses). */
static void go_direct(struct wsp_listener *l) {
    if (l->wake_fd < 0 && (l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        return;
    if (!l->direct) {
        l->direct = true;
        set_reading(l, false);
    }
}

void wsp_backlog_accepting(struct wsp_listener *l, int delta) {
    l->accepting += delta;
    if (l->accepting == 0 && l->direct) {
        l->direct_until_ms = wsp_now_ms() + DIRECT_LINGER_MS;
        rearm(l);
    }
}

/* so->lock held, direct. The leader's wait: for a connection in the kernel's queue, or a
 * wake-up (a request admitted by the reactor, one put back, the listener closing). */
static void lead(struct wsp_listener *l) {
    __atomic_store_n(&l->leader, 1, __ATOMIC_SEQ_CST);
    l->waiters++;
    int paused = l->resume_ms || !has_room(l); /* then the queue is no news */
    l->leader_paused = paused;
    int fd = l->so->fd, wake = l->wake_fd;
    pthread_mutex_unlock(&l->so->lock);
    struct pollfd p[2] = {{.fd = wake, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    poll(p, paused ? 1 : 2, -1);
    if (p[0].revents & POLLIN) {
        uint64_t v;
        if (read(wake, &v, sizeof v) < 0) {
            /* drained by a spurious wake before: nothing to take */
        }
    }
    pthread_mutex_lock(&l->so->lock);
    l->waiters--;
    l->leader_paused = false;
    __atomic_store_n(&l->leader, 0, __ATOMIC_SEQ_CST);
    /* Someone must keep watching the queue while this thread works: a sleeping follower. */
    if (l->waiters > 0)
        wake_accepts(l, 1);
}

static void listener_ready(struct wsp_reactor_item *item, uint32_t events) {
    (void)events;
    struct wsp_listener *l = (struct wsp_listener *)item;
    pthread_mutex_lock(&l->so->lock);
    /* One connection per wake-up: epoll is level-triggered and reports the rest at once,
     * and the usual single arrival then costs no accept4 that fails with EAGAIN. (pull takes
     * nothing once the listener is closed.) */
    pull(l, 1);
    unlock_and_wake(l);
}

/* so->lock held. Called when a request leaves the backlog. */
static void room_freed(struct wsp_listener *l) {
    if (reactor_reads(l))
        set_reading(l, true);
    else if (l->leader_paused && has_room(l) && !l->resume_ms)
        wake_accepts(l, 1); /* the leader watches the kernel's queue again */
}

/* ---- the backlog, as lpWSPAccept and lpWSPSelect see it ------------------------------------- */

/* A closed listener's backlog holds only requests being presented (close ended the others,
 * and nothing joins it after), so it has none available. */
int wsp_backlog_available(const struct wsp_listener *l) {
    for (const struct wsp_request *r = l->ready.head; r; r = r->next)
        if (!r->presenting)
            return 1;
    return 0;
}

int wsp_backlog_queued(const struct wsp_listener *l) { return l->ready.count; }

int wsp_listener_closed(const struct wsp_listener *l) { return l->closed; }

const struct sockaddr_storage *wsp_listener_local(const struct wsp_listener *l) {
    return &l->local;
}

/* so->lock held. A request entered the backlog: FD_ACCEPT, and lpWSPSelect looks again. */
static void notify_accept(struct wsp_listener *l) {
    struct wsp_socket *so = l->so;
    wsp_netevents_wake_waiters(so);
    /* Unselected too: the arrival re-enables FD_ACCEPT for the next selection. */
    if (wsp_backlog_available(l))
        wsp_netevents_raise(so, FD_ACCEPT, 0);
}

struct wsp_request *wsp_backlog_next(struct wsp_listener *l, int asking) {
    struct wsp_request *handoff = l->handoff; /* fresh for this look only */
    l->handoff = NULL;
    struct wsp_request *r = l->ready.head;
    while (r) {
        struct wsp_request *next = r->next;
        if (!r->presenting) {
            /* Every request is checked here (and again after the decision) with the kernel,
             * not only the reactor's watch, which may not have caught up: a client that left,
             * or sent a byte after its request, before this look is never presented. The one
             * exception is a request handed to this accept as it was read, or to the accept
             * its arrival woke (a blocked one, or one waiting for FD_ACCEPT, while the reactor
             * does not watch the request yet): for it the check after the decision is enough,
             * since only the hand-off lies between. */
            if (r->expires_ms && request_expired(r, wsp_now_ms())) {
                request_unlink(&l->ready, r); /* its client has stopped waiting */
                request_end(l, r, &l->stats.expired, WSP_REASON_EXPIRED);
                room_freed(l);
            } else if ((asking && r == handoff && !r->gone && !r->watched) ||
                       wsp_request_client(r) == WSP_CLIENT_WAITING) {
                r->presenting = 1;
                return r;
            } else {
                wsp_request_withdraw(l, r);
            }
        }
        r = next;
    }
    return NULL;
}

int wsp_backlog_fill(struct wsp_listener *l, int first) {
    if (l->resume_ms)
        return 0; /* out of descriptors: wait for the pause to end */
    /* One at a time when the accepting threads own the queue (direct): this one presents
     * it at once and the others take the next ones in parallel; on connect data its request
     * is read on this thread, and one that is not whole yet goes to the reactor. Otherwise
     * (plain TCP) what is there, for this accept and the waiting ones. */
    if (!l->so->nonblocking)
        go_direct(l); /* a blocking accept that takes its own: the descriptor is its */
    /* A server that serves one client at a time finds the kernel's queue empty each time it
     * comes back to accept: asking the kernel first is then wasted, and measurably slower
     * than waiting at once in the leader's poll, which takes the connection as it comes
     * (about 7 % more connections per second pinned to one CPU). So an accept that found
     * the queue empty last time waits first; one look in eight asks anyway, which notices
     * a queue that has filled up (under load the first look succeeds and this stays off). */
    int skip = first && l->direct && !l->so->nonblocking && l->expect_empty;
    if (skip && (++l->probe & 7) != 0)
        return 0;
    /* A non-blocking accept on connect data while the reactor reads the queue: a connection
     * there has woken the reactor already, which takes it with its request. Asking the kernel
     * here as well wins nothing and costs each accept that finds nothing (an async server's,
     * every time it comes back) an accept4 racing the reactor's on the listening socket. */
    if (l->so->nonblocking && l->so->entry->connect_data && l->reading)
        return 0;
    l->pulling = true;
    int n = l->so->entry->connect_data ? pull_direct(l) : pull(l, l->direct ? 1 : 64);
    l->pulling = false;
    if (n == 0)
        l->empty_looks++;
    if (first && l->direct)
        l->expect_empty = n == 0;
    l->arrivals = 0; /* the calling accept takes one; wake others only for the rest */
    if (n > 1 && l->waiters)
        wake_accepts(l, INT_MAX);
    return n;
}

void wsp_backlog_put_back(struct wsp_listener *l, struct wsp_request *r, int deferred) {
    r->presenting = 0;
    if (deferred)
        l->stats.deferred++;
    watch_request(l, r); /* it waits again: notice if its client leaves */
    if (r->expires_ms)
        rearm(l); /* and when it stops waiting */
    if (l->waiters)
        wake_accepts(l, 1); /* it is available again */
}

void wsp_backlog_take(struct wsp_listener *l, struct wsp_request *r) {
    r->taken = 1; /* and finished next (wsp_backlog_finish): presenting is read no more */
    request_unlink(&l->ready, r);
    /* Stop the watch before the answer goes out: a client that reads it and closes at once
     * would otherwise wake the reactor, which would wait for this lock to learn that the
     * request is gone. (finish removes the item for good.) */
    if (r->watched)
        wsp_reactor_pause(&r->item);
    room_freed(l);
}

void wsp_backlog_finish(struct wsp_listener *l, struct wsp_request *r, enum wsp_outcome how) {
    int connect_data = l->so->entry->connect_data;
    switch (how) {
    case WSP_OUTCOME_ACCEPTED:
        l->stats.accepted++;
        r->fd_owned = 0; /* the descriptor is the accepted socket's now */
        if (r->watched)
            wsp_reactor_remove(&r->item); /* frees the request */
        else
            request_destroy(r, false);
        break;
    case WSP_OUTCOME_REJECTED:
        l->stats.rejected++;
        if (connect_data)
            request_refuse(r, WSP_HS_REASON_REJECTED);
        request_destroy(r, !connect_data); /* plain TCP: a reset */
        break;
    case WSP_OUTCOME_UNDELIVERABLE:
        request_end(l, r, &l->stats.undeliverable, WSP_REASON_CALLEE_DATA_TOO_LONG);
        break;
    case WSP_OUTCOME_WITHDRAWN:
        l->stats.withdrawn++;
        request_destroy(r, true);
        break;
    case WSP_OUTCOME_ABANDONED:
        request_destroy(r, true);
        break;
    }
}

/* ---- timers: handshake deadlines, pending notices, resuming after EMFILE -------------------- */

static void rearm(struct wsp_listener *l) {
    if (l->closed)
        return; /* its reactor item is gone: a timer now would outlive it */
    uint64_t due = l->resume_ms;
    if (l->direct && !l->accepting && (!due || l->direct_until_ms < due))
        due = l->direct_until_ms;
    if (l->handshaking.head) {
        uint64_t d = l->handshaking.head->deadline_ms; /* the oldest has the earliest deadline */
        if (!due || d < due)
            due = d;
    }
    for (struct wsp_request *r = l->ready.head; r; r = r->next) {
        if (l->so->entry->connect_data && (!due || r->next_notice_ms < due))
            due = r->next_notice_ms;
        if (r->watch_ms && !r->watched && (!due || r->watch_ms < due))
            due = r->watch_ms;
        if (r->expires_ms && !r->presenting && (!due || r->expires_ms < due))
            due = r->expires_ms;
    }
    for (struct wsp_request *r = l->held.head; r; r = r->next) {
        if (l->so->entry->connect_data && (!due || r->next_notice_ms < due))
            due = r->next_notice_ms;
        if (r->expires_ms && (!due || r->expires_ms < due))
            due = r->expires_ms;
        if (r->hold_expires_ms && (!due || r->hold_expires_ms < due))
            due = r->hold_expires_ms;
    }
    wsp_reactor_set_timer(&l->item, due);
}

/* Tells the waiting clients from r on, whose time has come, "pending". */
static void send_notices(struct wsp_listener *l, struct wsp_request *r, uint64_t now) {
    wsp_hs_frame pending = {.type = WSP_HS_PENDING};
    for (; r; r = r->next) {
        /* Requests being presented get notices too: a slow condition function is the
         * server still deciding, and skipping them would leave their due time in the past
         * and spin the reactor. The answer is sent under the same lock, so a PENDING can
         * only come before it. */
        if (r->next_notice_ms > now)
            continue;
        request_send_frame(r, &pending); /* a client that left is noticed by request_ready */
        r->next_notice_ms = now + l->so->pending_interval_ms;
    }
}

static void listener_timer(struct wsp_reactor_item *item, uint64_t now) {
    struct wsp_listener *l = (struct wsp_listener *)item;
    pthread_mutex_lock(&l->so->lock);
    if (l->closed) {
        pthread_mutex_unlock(&l->so->lock);
        return;
    }
    while (l->handshaking.head && l->handshaking.head->deadline_ms <= now)
        end_handshaking(l, l->handshaking.head, &l->stats.timed_out,
                        WSP_REASON_HANDSHAKE_TIMEOUT);
    for (struct wsp_request *r = l->ready.head, *next; r; r = next) {
        next = r->next;
        if (!r->presenting && request_expired(r, now)) {
            /* Its client has stopped waiting: never present it (a condition function being
             * asked about it now decides, and its accept finds the client gone). */
            request_unlink(&l->ready, r);
            request_end(l, r, &l->stats.expired, WSP_REASON_EXPIRED);
            room_freed(l);
            continue;
        }
        if (r->watch_ms && r->watch_ms <= now) {
            r->watch_ms = 0;
            watch_request(l, r); /* (nothing to do for one watched meanwhile) */
        }
    }
    held_timer(l, now);
    if (l->so->entry->connect_data) {
        send_notices(l, l->ready.head, now);
        send_notices(l, l->held.head, now); /* a held client is kept waiting the same way */
    }
    if (l->direct && !l->accepting && now >= l->direct_until_ms) {
        l->direct = false; /* no accept asked for a while: the reactor reads again */
        if (reactor_reads(l))
            set_reading(l, true);
    }
    if (l->resume_ms && l->resume_ms <= now) {
        l->resume_ms = 0;
        l->resumes++;
        if (reactor_reads(l)) /* (never while direct) */
            set_reading(l, true);
        if (l->direct)
            l->arrivals = l->waiters; /* the leader, if any, looks at the queue again */
    }
    rearm(l);
    unlock_and_wake(l);
}

/* ---- lpWSPListen ------------------------------------------------------------------------------ */

static int clamp_backlog(int backlog) {
    if (backlog < 1)
        return 1;
    return backlog > WSP_MAX_BACKLOG ? WSP_MAX_BACKLOG : backlog;
}

/* The socket's role while it listens (internal.h). */
static void release_listener(struct wsp_socket *so) {
    listener_free(so->listener); /* calls in progress used it until the last reference */
}
static int acceptable(const struct wsp_socket *so) {
    return wsp_backlog_available(so->listener);
}
static void watch_arrivals(struct wsp_socket *so) {
    struct wsp_listener *l = so->listener;
    if (!l->direct)
        return;
    l->direct = false; /* the reactor takes arrivals again, for whoever waits for them */
    if (reactor_reads(l))
        set_reading(l, true);
    rearm(l);
}
static const struct wsp_socket_role listener_role = {release_listener, acceptable,
                                                     watch_arrivals};

/* so->lock held. */
static int start_listening(struct wsp_socket *so, int backlog) {
    struct wsp_listener *l = calloc(1, sizeof *l);
    if (!l)
        return WSAENOBUFS;
    l->so = so;
    l->backlog = backlog;
    l->wake_fd = -1;
    l->notices_tail = &l->notices;
    l->item.fd = so->fd;
    l->item.on_ready = listener_ready;
    l->item.release = listener_release;
    l->item.on_timer = listener_timer;
    socklen_t local_len = sizeof l->local;
    getsockname(so->fd, (struct sockaddr *)&l->local, &local_len);
    int err = 0;
    if (listen(so->fd, backlog) < 0)
        err = wsp_wsa_from_errno(errno);
    if (!err)
        err = wsp_socket_fd_nonblocking(so, 1);
    if (!err) {
        wsp_socket_retain(so); /* the reactor's reference, dropped in listener_release */
        err = wsp_reactor_add(&l->item, EPOLLIN);
        if (err)
            wsp_socket_release(so);
    }
    if (err) {
        free(l);
        return err;
    }
    l->reading = true;
    so->listener = l;
    so->role = &listener_role;
    so->state = WSP_STATE_LISTENING;
    return 0;
}

int wsp_listen(SOCKET s, int backlog, LPINT lpErrno) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    err = wsp_listen_acquired(so, backlog);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}

int wsp_listen_acquired(struct wsp_socket *so, int backlog) {
    int err = 0;
    backlog = clamp_backlog(backlog);
    pthread_mutex_lock(&so->lock);
    /* A close that ran since the handle was looked up tore the roles down already: a
     * listener started now would keep the socket (the reactor's reference) for good. */
    if (so->closing)
        err = WSAENOTSOCK;
    else if (so->state >= WSP_STATE_CONNECTING) /* or connected: the states after LISTENING */
        err = WSAEISCONN;
    else if (!so->bound)
        err = WSAEINVAL;
    else if (so->state == WSP_STATE_LISTENING) {
        /* A second listen changes the backlog (ws2spi's rule); on a descriptor that listens
         * already, listen() only does that, and cannot fail. */
        so->listener->backlog = backlog;
        listen(so->fd, backlog);
        room_freed(so->listener);
    } else {
        err = start_listening(so, backlog);
    }
    pthread_mutex_unlock(&so->lock);
    return err;
}

/* ---- closing ------------------------------------------------------------------------------- */

static void listener_release(struct wsp_reactor_item *item) {
    struct wsp_listener *l = (struct wsp_listener *)item;
    wsp_socket_release(l->so); /* the socket frees the listener with its last reference */
}

static void listener_free(struct wsp_listener *l) {
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    /* No drop notice is left: whoever queued one, under so->lock, takes it before the lock
     * is released for good (unlock_and_wake, lpWSPAccept, a held request's answer), and
     * those calls hold a reference to the socket meanwhile. */
    free(l);
}

/* Called once: lpWSPCloseSocket unpublishes the handle first, so no second close reaches a
 * socket. */
void wsp_listener_close(struct wsp_socket *so) {
    struct wsp_listener *l = so->listener;
    l->closed = true;
    while (l->handshaking.head) {
        struct wsp_request *r = l->handshaking.head;
        request_unlink(&l->handshaking, r);
        request_destroy(r, true);
    }
    while (l->held.head) /* refused as the queued ones below; their answers fail */
        held_end(l, l->held.head, WSAEINTR, WSP_REASON_CLOSING);
    /* Requests being presented right now stay linked: their accepting thread ends them. */
    struct wsp_request *r = l->ready.head;
    while (r) {
        struct wsp_request *next = r->next;
        if (!r->presenting) {
            request_unlink(&l->ready, r);
            if (so->entry->connect_data)
                request_refuse(r, WSP_HS_REASON_CLOSING);
            request_destroy(r, !so->entry->connect_data);
        }
        r = next;
    }
    wsp_reactor_remove(&l->item);
    if (l->waiters)
        wake_accepts(l, INT_MAX);
}

void wsp_listener_stats(struct wsp_socket *so, WSP_LISTENER_STATS_DATA *out) {
    *out = so->listener->stats;
    out->backlog = (uint32_t)so->listener->backlog;
    out->queued = (uint32_t)so->listener->ready.count;
    out->holding = (uint32_t)so->listener->held.count;
    out->hold_limit = so->hold_limit;
}

uint64_t wsp_listener_held_checks(struct wsp_socket *so) {
    pthread_mutex_lock(&so->lock);
    uint64_t n = so->listener->held_checks;
    pthread_mutex_unlock(&so->lock);
    return n;
}

uint64_t wsp_listener_tail_peeks(struct wsp_socket *so) {
    pthread_mutex_lock(&so->lock);
    uint64_t n = so->listener->tail_peeks;
    pthread_mutex_unlock(&so->lock);
    return n;
}

uint64_t wsp_listener_client_looks(struct wsp_socket *so) {
    pthread_mutex_lock(&so->lock);
    uint64_t n = so->listener->client_looks;
    pthread_mutex_unlock(&so->lock);
    return n;
}

uint64_t wsp_listener_resumes(struct wsp_socket *so) {
    pthread_mutex_lock(&so->lock);
    uint64_t n = so->listener->resumes;
    pthread_mutex_unlock(&so->lock);
    return n;
}

int wsp_listener_reading(struct wsp_socket *so) {
    pthread_mutex_lock(&so->lock);
    int on = so->listener->reading;
    pthread_mutex_unlock(&so->lock);
    return on;
}

uint32_t wsp_listener_wakes(struct wsp_socket *so) {
    return __atomic_load_n(&so->listener->wake_seq, __ATOMIC_SEQ_CST);
}

uint64_t wsp_listener_empty_looks(struct wsp_socket *so) {
    pthread_mutex_lock(&so->lock);
    uint64_t n = so->listener->empty_looks;
    pthread_mutex_unlock(&so->lock);
    return n;
}

/* ---- held requests (CF_HOLD): the handles are held.c's ------------------------------------ */

/* so->lock held. A held request left: a hold refused for the limit may succeed now. */
static void hold_room_freed(struct wsp_listener *l) {
    if (l->hold_blocked && !l->closed && (DWORD)l->held.count < l->so->hold_limit) {
        l->hold_blocked = false;
        wsp_netevents_reenable(l->so, FD_ACCEPT);
    }
}

/* Watches a held request for its client leaving. Plain TCP: for that only, since the
 * application's first bytes would make EPOLLIN ready for as long as the request is held. */
static void watch_held(struct wsp_listener *l, struct wsp_request *r) {
    uint32_t ev = l->so->entry->connect_data ? EPOLLIN | EPOLLRDHUP : EPOLLRDHUP;
    if (r->watched)
        wsp_reactor_modify(&r->item, ev);
    else if (wsp_reactor_add(&r->item, ev) == 0)
        r->watched = 1;
}

int wsp_backlog_hold(struct wsp_listener *l, struct wsp_request *r, struct wsp_hold_link *link) {
    if ((DWORD)l->held.count >= l->so->hold_limit) {
        l->stats.hold_refused++;
        l->hold_blocked = true;
        wsp_backlog_put_back(l, r, 0);
        return WSAENOBUFS;
    }
    /* Out of the backlog but not taken (wsp_backlog_take): its watch carries on. */
    r->presenting = 0;
    request_unlink(&l->ready, r);
    room_freed(l);
    r->hold = link;
    link->request = r;
    r->watch_ms = 0;
    DWORD deadline = l->so->hold_deadline_ms;
    r->hold_expires_ms = deadline ? wsp_now_ms() + deadline : 0;
    list_append(&l->held, r);
    l->stats.held++;
    watch_held(l, r);
    rearm(l);
    return 0;
}

/* so->lock held. The held request r leaves the held list (its link is told nothing). */
static void held_unlink(struct wsp_listener *l, struct wsp_request *r) {
    request_unlink(&l->held, r);
    r->hold->request = NULL;
    r->hold = NULL;
    r->hold_expires_ms = 0;
    hold_room_freed(l);
}

void wsp_held_take(struct wsp_listener *l, struct wsp_request *r) {
    held_unlink(l, r);
    /* As wsp_backlog_take: the caller's alone, its answer may go out unlocked. */
    r->taken = 1;
    if (r->watched)
        wsp_reactor_pause(&r->item);
}

void wsp_held_reject(struct wsp_listener *l, struct wsp_request *r, int reason) {
    held_unlink(l, r);
    l->stats.rejected++;
    request_close_refused(r, reason); /* plain TCP: a reset */
}

void wsp_held_release(struct wsp_listener *l, struct wsp_request *r) {
    held_unlink(l, r);
    /* Back in its place by arrival: holding it cost it nothing in line. */
    struct wsp_request *after = l->ready.tail;
    while (after && after->arrival > r->arrival)
        after = after->prev;
    r->prev = after;
    r->next = after ? after->next : l->ready.head;
    if (r->next)
        r->next->prev = r;
    else
        l->ready.tail = r;
    if (after)
        after->next = r;
    else
        l->ready.head = r;
    l->ready.count++;
    if (l->so->entry->connect_data)
        watch_request(l, r);
    else if (r->watched)
        wsp_reactor_modify(&r->item, 0); /* plain requests are checked when presented */
    rearm(l);
    l->arrivals++;
    notify_accept(l);
    if (l->waiters)
        wake_accepts(l, 1);
}

static void held_end(struct wsp_listener *l, struct wsp_request *r, int code, int reason) {
    struct wsp_hold_link *link = r->hold;
    held_unlink(l, r);
    link->ended(link, l->so, code);
    if (reason)
        request_close_refused(r, reason);
    else
        request_destroy(r, true);
}

static void held_ready(struct wsp_listener *l, struct wsp_request *r) {
    l->held_checks++;
    enum wsp_client_state st = wsp_request_client(r);
    if (st == WSP_CLIENT_WAITING) {
        /* Plain TCP: a client that sent data and half-closed still waits; stop the
         * level-triggered report, which would spin the reactor. */
        if (!l->so->entry->connect_data)
            wsp_reactor_modify(&r->item, 0);
        return;
    }
    if (st == WSP_CLIENT_SENT_MORE) {
        l->stats.malformed++;
        held_end(l, r, WSAECONNRESET, WSP_REASON_MALFORMED);
    } else {
        l->stats.withdrawn++;
        held_end(l, r, WSAECONNRESET, 0);
    }
}

static void held_timer(struct wsp_listener *l, uint64_t now) {
    for (struct wsp_request *r = l->held.head, *next; r; r = next) {
        next = r->next;
        if (request_expired(r, now)) { /* the client's own limit */
            l->stats.expired++;
            held_end(l, r, WSAETIMEDOUT, WSP_REASON_EXPIRED);
        } else if (r->hold_expires_ms && r->hold_expires_ms <= now) {
            l->stats.hold_timed_out++;
            held_end(l, r, WSAETIMEDOUT, WSP_REASON_HOLD_TIMEOUT);
        }
    }
}
