/* lpWSPAccept: conditional accept (docs/SEMANTICS.md §5).
 *
 * The oldest request nobody is looking at is presented to the condition function on the
 * caller's thread, with the listener unlocked (the function may call back into WSP). While it
 * is presented the request stays where it is, so a CF_DEFER leaves it first in the queue for
 * the next lpWSPAccept, on this thread or another, and concurrent accepts each get a
 * different request.
 *
 * Nothing a client chooses can keep its request first in line: an answer that cannot reach
 * the client because of what the client asked (callee data or QoS longer than the buffers it
 * stated) ends the request, and the accepting call reports WSAEFAULT once. Only the
 * application's own mistakes (an invalid return value, a callee buffer it broke) leave the
 * request where it is.
 *
 * CF_HOLD (WSPAcceptHold only, held.c) moves the request to the listener's held list; its
 * answer comes later through wsp_accept_held, with the same checks and the same hand-out. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backlog.h"
#include "handshake.h"
#include "qos.h"

/* What the condition function sees and may change. The buffers for callee data and a QoS's
 * provider-specific part (some 16 KB) exist on the connect-data protocol only; plain TCP
 * offers neither, and its presentation lives on the accepting thread's stack (no allocation
 * per accept). */
struct presentation {
    struct sockaddr_storage local;
    WSABUF caller_id, callee_id, caller_data, callee_data;
    uint32_t callee_capacity; /* callee_data.len as offered: the most the function may write */
    QOS qos;
    bool has_qos;
    bool has_caller_data;
    uint8_t *qos_specific; /* WSP_HS_MAX_QOS_SPECIFIC bytes (connect data) */
    uint8_t *callee_buf;   /* WSP_MAX_CONNECT_DATA bytes (connect data); else no_callee */
    uint8_t no_callee[1];  /* plain TCP's callee buffer: offered with length 0 */
};

struct presentation_space {
    struct presentation p;
    uint8_t qos_specific[WSP_HS_MAX_QOS_SPECIFIC];
    uint8_t callee_buf[WSP_MAX_CONNECT_DATA];
};

/* A presentation for a request on so: small, the caller's (on its stack), on plain TCP; else
 * allocated with its buffers (NULL when that fails). Freed with presentation_free. */
static struct presentation *presentation_new(const struct wsp_socket *so,
                                             struct presentation *small) {
    if (!so->entry->connect_data) {
        small->qos_specific = NULL;
        small->callee_buf = small->no_callee;
        return small;
    }
    struct presentation_space *ps = malloc(sizeof *ps);
    if (!ps)
        return NULL;
    ps->p.qos_specific = ps->qos_specific;
    ps->p.callee_buf = ps->callee_buf;
    return &ps->p;
}

static void presentation_free(struct presentation *p, const struct wsp_socket *so) {
    if (so->entry->connect_data) /* as presentation_new chose */
        free(p); /* the presentation_space it begins */
}

/* so->lock held. Fills p from the request r (which stays valid while presented). */
static void prepare(struct presentation *p, const struct wsp_socket *so,
                    const struct wsp_request *r) {
    p->local = *wsp_listener_local(so->listener);
    p->caller_id = (WSABUF){(uint32_t)r->peer_len, (char *)&r->peer};
    p->callee_id = (WSABUF){(uint32_t)wsp_sockaddr_len(so->entry->af), (char *)&p->local};
    /* The listener's limit, or less when the client said it can take less (PROTOCOL.md,
     * version 2): then nothing the function writes can fail at the client. */
    uint32_t capacity = so->entry->connect_data ? so->max_callee_data : 0;
    if (so->entry->connect_data && r->frame.has_callee_capacity &&
        r->frame.callee_capacity < capacity)
        capacity = r->frame.callee_capacity;
    p->callee_capacity = capacity;
    /* Cleared each time: a function that accepts without setting len sends these zeros,
     * never what an earlier call left here (another client's data). */
    if (capacity)
        memset(p->callee_buf, 0, capacity);
    p->callee_data = (WSABUF){capacity, (char *)p->callee_buf};
    p->has_qos = 0;
    p->has_caller_data = 0;
    p->caller_data = (WSABUF){0, NULL};
    if (so->entry->connect_data) {
        const wsp_hs_frame *f = &r->frame;
        p->has_caller_data = f->has_data;
        p->caller_data = (WSABUF){f->data_len, (char *)f->data};
        p->has_qos = f->has_qos;
        if (f->has_qos)
            wsp_qos_from_wire(&p->qos, &f->qos, (char *)p->qos_specific, WSP_HS_MAX_QOS_SPECIFIC);
    }
}

/* What the condition function's CF_ACCEPT answer is worth: 0 when it can be sent; a WSA code
 * for the application's own mistakes, which leave the request in line (WSAEFAULT: a buffer
 * pointer it broke, or more callee data than the listener's own limit; WSAEINVAL: a QoS
 * provider-specific part longer than the protocol carries); WSP_UNDELIVERABLE when the
 * answer does not fit what this client said it can take. */
#define WSP_UNDELIVERABLE (-1)
static int check_answer(const struct wsp_socket *so, const struct wsp_request *r,
                        const struct presentation *p) {
    const WSABUF *cd = &p->callee_data;
    if (cd->len > 0 && !cd->buf)
        return WSAEFAULT;
    DWORD own_limit = so->entry->connect_data ? so->max_callee_data : 0;
    if (cd->len > own_limit)
        return WSAEFAULT;
    int undeliverable = cd->len > p->callee_capacity;
    if (p->has_qos) {
        const WSABUF *ps = &p->qos.ProviderSpecific;
        if (ps->len > 0 && !ps->buf)
            return WSAEFAULT;
        if (ps->len > WSP_HS_MAX_QOS_SPECIFIC)
            return WSAEINVAL;
        /* The client reads the answer's provider-specific part into the buffer it sent its
         * own in, so that is its capacity (connect.c, take_answer). */
        if (ps->len > r->frame.qos.specific_len)
            undeliverable = 1;
    }
    return undeliverable ? WSP_UNDELIVERABLE : 0;
}

/* Sends a whole frame without blocking. A frame larger than the free space of the send
 * buffer (callee data near the 16 KB ceiling) gets a send buffer large enough to hold it:
 * the provider never waits on a client that does not read. 0 or a WSA code. */
static int send_frame_now(int fd, const uint8_t *buf, size_t n) {
    size_t sent = 0;
    for (bool grown = false;;) {
        /* MSG_DONTWAIT never sleeps, so it is never interrupted (EINTR). */
        ssize_t k = send(fd, buf + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            sent += (size_t)k;
            if (sent == n)
                return 0;
            continue;
        }
        if (errno != EAGAIN) /* k is -1: a send of a non-zero length never returns 0 */
            return wsp_wsa_from_errno(errno);
        if (grown)
            return WSAENOBUFS;
        int size = 4 * WSP_HS_MAX_FRAME; /* room for the frame and its overhead */
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) < 0)
            return WSAENOBUFS;
        grown = true;
    }
}

/* The request is the calling thread's alone (taken from its list); the listener's lock is
 * not held. Sends the ACCEPT answer on the connect-data protocol; 0 or a WSA code. */
static int send_accept(struct wsp_request *r, const struct presentation *p) {
    wsp_hs_frame f = {.type = WSP_HS_ACCEPT};
    if (r->frame.has_data || p->callee_data.len > 0) {
        f.has_data = 1;
        f.data = (const uint8_t *)p->callee_data.buf;
        f.data_len = p->callee_data.len;
    }
    if (p->has_qos) {
        f.has_qos = 1;
        wsp_qos_to_wire(&f.qos, &p->qos);
    }
    uint8_t buf[WSP_HS_MAX_FRAME];
    size_t n = wsp_hs_encode(&f, buf, sizeof buf);
    if (!n)
        return WSAEFAULT; /* check_answer rules this out */
    return send_frame_now(r->fd, buf, n);
}

/* so->lock held; r unlinked. Turns an accepted request into a socket. */
static struct wsp_socket *make_socket(struct wsp_socket *so, struct wsp_request *r, int *err) {
    struct wsp_socket *child = wsp_socket_new(r->fd, so->entry, err);
    if (!child)
        return NULL;
    child->fd_nonblocking = r->fd_nonblocking;
    wsp_socket_inherit(child, so);
    child->state = WSP_STATE_CONNECTED;
    /* The listener's mode, which the descriptor was accepted in unless it changed since (a
     * listener with an event registration is non-blocking, and so is the inherited one). */
    wsp_socket_fd_nonblocking(child, child->nonblocking);
    wsp_netevents_inherit(child, so);
    return child;
}

static SOCKET hand_out(struct wsp_socket *so, struct wsp_request *r, const struct presentation *p,
                       struct sockaddr *addr, LPINT addrlen, int *err);

/* so->lock held (released while an ACCEPT is sent). Acts on the condition function's answer
 * rc for the presented request r. Returns the new socket for CF_ACCEPT, else INVALID_SOCKET
 * with *err set. */
static SOCKET decide(struct wsp_socket *so, struct wsp_request *r, int rc, int asked,
                     const struct presentation *p, struct sockaddr *addr, LPINT addrlen,
                     int *err) {
    struct wsp_listener *l = so->listener;
    /* A client that left while the function ran is gone whatever the answer: it is counted
     * as withdrawn, never as rejected or deferred, and the caller looks for the next
     * request. A dead request is never handed out. (Without a function there was no "while":
     * wsp_backlog_next has just checked.) */
    if (asked && wsp_request_client(r) != WSP_CLIENT_WAITING) {
        wsp_request_withdraw(l, r);
        *err = 0;
        return INVALID_SOCKET;
    }
    int answer = rc == CF_ACCEPT ? check_answer(so, r, p) : 0;
    if (rc == CF_DEFER || (rc != CF_ACCEPT && rc != CF_REJECT) || answer > 0) {
        wsp_backlog_put_back(l, r, rc == CF_DEFER);
        *err = rc == CF_DEFER ? WSATRY_AGAIN : rc == CF_ACCEPT ? answer : WSAEINVAL;
        return INVALID_SOCKET;
    }
    wsp_backlog_take(l, r);
    if (answer == WSP_UNDELIVERABLE) {
        wsp_backlog_finish(l, r, WSP_OUTCOME_UNDELIVERABLE);
        *err = WSAEFAULT; /* once: the next accept presents the next request */
        return INVALID_SOCKET;
    }
    if (rc == CF_REJECT) {
        wsp_backlog_finish(l, r, WSP_OUTCOME_REJECTED);
        *err = WSAECONNREFUSED;
        return INVALID_SOCKET;
    }
    return hand_out(so, r, p, addr, addrlen, err);
}

/* so->lock held (released while an ACCEPT is sent); r taken from its list, so this thread's
 * alone. Sends the CF_ACCEPT answer p and makes the socket; INVALID_SOCKET with *err when that
 * fails. *err is 0 on entry (an accept's loop runs while its err is, held.c calls with 0) and
 * stays 0 when the client left just now: not an error, look for the next request. */
static SOCKET hand_out(struct wsp_socket *so, struct wsp_request *r, const struct presentation *p,
                       struct sockaddr *addr, LPINT addrlen, int *err) {
    struct wsp_listener *l = so->listener;
    /* The answer goes out with the listener unlocked: sending wakes the client, and other
     * accepts should not wait for that. */
    int sent = 0;
    if (so->entry->connect_data) {
        pthread_mutex_unlock(&so->lock);
        sent = send_accept(r, p);
        pthread_mutex_lock(&so->lock);
    }
    if (sent == WSAENOBUFS) { /* not even a grown send buffer takes it */
        wsp_backlog_finish(l, r, WSP_OUTCOME_UNDELIVERABLE);
        *err = WSAENOBUFS;
        return INVALID_SOCKET;
    }
    if (sent != 0) { /* it left just now */
        wsp_backlog_finish(l, r, WSP_OUTCOME_WITHDRAWN);
        return INVALID_SOCKET;
    }
    struct wsp_socket *child = make_socket(so, r, err);
    if (!child) {
        wsp_backlog_finish(l, r, WSP_OUTCOME_ABANDONED);
        return INVALID_SOCKET;
    }
    if (p->has_qos) { /* the QoS both ends agreed on: what SIO_GET_QOS reports here too */
        child->has_qos = 1;
        child->qos = p->qos;
        /* Flowspecs only: SIO_GET_QOS reports no provider-specific part, so none is kept. */
        child->qos.ProviderSpecific = (WSABUF){0, NULL};
    }
    /* The peer's address lives in the request (p->caller_id points there): copy it out
     * before the request is freed. */
    if (addr && addrlen) {
        memcpy(addr, &p->caller_id.buf[0], p->caller_id.len);
        *addrlen = (int)p->caller_id.len;
    }
    wsp_backlog_finish(l, r, WSP_OUTCOME_ACCEPTED); /* the descriptor stays with child */
    return child->obj.handle;
}

/* so->lock held. The condition function answered CF_HOLD for the presented request r: holds
 * it through hold (*err: WSA_IO_PENDING, or WSAENOBUFS at the listener's limit) and reports
 * the peer's address. Returns 1 instead when its client left meanwhile (it is dropped). */
static int hold_request(struct wsp_socket *so, struct wsp_request *r, struct wsp_hold_link *hold,
                        struct sockaddr *addr, LPINT addrlen, int *err) {
    if (wsp_request_client(r) != WSP_CLIENT_WAITING) {
        wsp_request_withdraw(so->listener, r);
        return 1;
    }
    if (addr && addrlen) { /* an address buffer without a length is left alone (Windows) */
        memcpy(addr, &r->peer, r->peer_len);
        *addrlen = (int)r->peer_len;
    }
    *err = wsp_backlog_hold(so->listener, r, hold);
    if (!*err)
        *err = WSA_IO_PENDING;
    return 0;
}

SOCKET wsp_accept_held(struct wsp_socket *so, struct wsp_request *r, const WSABUF *callee,
                       const QOS *qos, int *ended, int *err) {
    struct wsp_listener *l = so->listener;
    *ended = 1;
    if (wsp_request_client(r) != WSP_CLIENT_WAITING) {
        wsp_held_take(l, r);
        wsp_backlog_finish(l, r, WSP_OUTCOME_WITHDRAWN);
        *err = WSAECONNRESET;
        return INVALID_SOCKET;
    }
    struct presentation small;
    struct presentation *p = presentation_new(so, &small);
    if (!p) {
        *ended = 0;
        *err = WSAENOBUFS;
        return INVALID_SOCKET;
    }
    prepare(p, so, r);
    /* The application's answer, checked as a condition function's would be. */
    p->callee_data = callee ? *callee : (WSABUF){0, NULL};
    if (qos) /* read only when the request carried a QoS (p->has_qos) */
        p->qos = *qos;
    int answer = check_answer(so, r, p);
    SOCKET result = INVALID_SOCKET;
    if (answer > 0) {
        *ended = 0; /* the application's mistake: still held */
        *err = answer;
    } else if (answer == WSP_UNDELIVERABLE) {
        wsp_held_take(l, r);
        wsp_backlog_finish(l, r, WSP_OUTCOME_UNDELIVERABLE);
        *err = WSAEFAULT;
    } else {
        wsp_held_take(l, r);
        result = hand_out(so, r, p, NULL, NULL, err);
        if (result == INVALID_SOCKET && *err == 0)
            *err = WSAECONNRESET; /* it left as the answer went */
    }
    presentation_free(p, so);
    return result;
}

SOCKET wsp_accept(SOCKET s, struct sockaddr *addr, LPINT addrlen, LPCONDITIONPROC cond,
                  DWORD_PTR ctx, LPINT lpErrno) {
    return wsp_accept_or_hold(s, addr, addrlen, cond, ctx, NULL, lpErrno);
}

SOCKET wsp_accept_or_hold(SOCKET s, struct sockaddr *addr, LPINT addrlen, LPCONDITIONPROC cond,
                          DWORD_PTR ctx, struct wsp_hold_link *hold, LPINT lpErrno) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so) {
        wsp_fail(lpErrno, err);
        return INVALID_SOCKET;
    }
    SOCKET result = INVALID_SOCKET;
    int hold_refused = 0; /* at the limit: FD_ACCEPT stays off until a held request leaves */
    struct presentation small, *p = NULL;
    pthread_mutex_lock(&so->lock);
    struct wsp_listener *l = so->listener;
    if (!l)
        err = WSAEINVAL;
    else if (addr && addrlen && *addrlen < (int)wsp_sockaddr_len(so->entry->af))
        err = WSAEFAULT; /* a buffer with no length is left alone, as on Windows */
    else if (!(p = presentation_new(so, &small)))
        err = WSAENOBUFS;
    if (!err)
        wsp_backlog_accepting(l, 1);
    int looked = 0; /* at the kernel's queue, in this call */
    while (!err && result == INVALID_SOCKET) {
        if (so->closing || wsp_listener_closed(l)) {
            err = WSAEINTR;
            break;
        }
        struct wsp_request *r = wsp_backlog_next(l, cond != NULL);
        if (!r && wsp_backlog_fill(l, !looked++) > 0)
            continue;
        if (!r) {
            if (so->nonblocking || wsp_reactor_is_current()) { /* the event thread never waits */
                err = WSAEWOULDBLOCK;
            } else {
                wsp_listener_wait(l);
            }
            continue;
        }
        prepare(p, so, r);
        int rc = CF_ACCEPT;
        if (!cond)
            p->callee_data.len = 0; /* nobody wrote callee data: send none */
        if (cond) {
            pthread_mutex_unlock(&so->lock);
            GROUP g = 0;
            rc = cond(&p->caller_id, p->has_caller_data ? &p->caller_data : NULL,
                      p->has_qos ? &p->qos : NULL, NULL, &p->callee_id, &p->callee_data, &g,
                      ctx);
            pthread_mutex_lock(&so->lock);
        }
        if (wsp_listener_closed(l)) { /* the listener closed while the function ran */
            wsp_backlog_take(l, r);
            wsp_backlog_finish(l, r, WSP_OUTCOME_ABANDONED);
            err = WSAEINTR;
            break;
        }
        if (rc == CF_HOLD && hold) {
            if (hold_request(so, r, hold, addr, addrlen, &err))
                continue; /* its client left while the function ran */
            hold_refused = err == WSAENOBUFS;
            break;
        }
        result = decide(so, r, rc, cond != NULL, p, addr, addrlen, &err);
    }
    if (p)
        wsp_backlog_accepting(l, -1);
    if (l && err != WSATRY_AGAIN && !hold_refused)
        wsp_netevents_reenable(so, FD_ACCEPT); /* a deferral leaves FD_ACCEPT off */
    struct wsp_drop_notice *notices = l ? wsp_listener_take_notices(l) : NULL;
    pthread_mutex_unlock(&so->lock);
    if (notices)
        wsp_listener_deliver_notices(so, notices);
    presentation_free(p, so); /* (NULL: none was made, and free(NULL) does nothing) */
    wsp_socket_release(so);
    if (result == INVALID_SOCKET)
        wsp_fail(lpErrno, err);
    return result;
}
