/* lpWSPConnect: plain TCP, and the client side of the connect-data handshake
 * (docs/SEMANTICS.md §6, §9).
 *
 * A blocking connect runs on the caller's thread and returns once the server's provider has
 * acted: accepted (callee data and QoS filled in), refused, or silent past the time-out. A
 * "pending" frame from the server restarts the time-out, so a server that defers for longer
 * than the client's time-out still answers in time. A non-blocking connect hands the same
 * steps to the reactor (a connector) and reports the outcome through network events. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <unistd.h>

#include "handshake.h"
#include "internal.h"
#include "qos.h"

/* Reads answer frames exactly, never past the end of one: after ACCEPT the stream belongs to
 * the application, and the server may already have sent it bytes. */
struct answer_reader {
    size_t have, need;
    uint8_t buf[WSP_HS_MAX_FRAME];
};

static void reader_reset(struct answer_reader *a) {
    a->have = 0;
    a->need = WSP_HS_HEADER_SIZE;
}

/* Returns the type of a complete frame (decoded into *f, pointing into a->buf), 0 when more
 * bytes are needed and none are available now, or -WSA code. */
static int reader_step(struct answer_reader *a, int fd, wsp_hs_frame *f) {
    for (;;) {
        ssize_t n = recv(fd, a->buf + a->have, a->need - a->have, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n < 0) /* a reset before the answer: the server dropped or refused the request */
            return errno == ECONNRESET ? -WSAECONNREFUSED : -wsp_wsa_from_errno(errno);
        if (n == 0) /* closed without an answer: not a WSP connect-data server */
            return -WSAECONNABORTED;
        a->have += (size_t)n;
        if (a->have < a->need)
            continue;
        long res = wsp_hs_decode(a->buf, a->have, WSP_HS_MAX_DATA,
                                 (1u << WSP_HS_ACCEPT) | (1u << WSP_HS_REFUSE) |
                                     (1u << WSP_HS_PENDING),
                                 f);
        if (res > 0) {
            reader_reset(a);
            return f->type;
        }
        /* Needing more happens only with the header alone (need is then the whole frame,
         * which decodes whole or not at all). */
        if (res < 0)
            return -WSAECONNABORTED; /* malformed: not a WSP server we understand */
        a->need = WSP_HS_HEADER_SIZE + (((size_t)a->buf[6] << 8) | a->buf[7]);
    }
}

/* What a connect-data connect asks for and where the answer goes. */
struct connect_request {
    uint8_t frame[WSP_HS_MAX_FRAME];
    size_t frame_len;
    LPWSABUF callee; /* the caller's buffer, or NULL */
    LPQOS sqos;
};

/* so->lock held. Stores an ACCEPT's callee data and QoS in the socket and in the caller's
 * buffers (when given); 0, WSAEFAULT when the callee data does not fit, or WSAENOBUFS when
 * the socket's copies cannot be had (then nothing is stored). */
static int take_answer(struct wsp_socket *so, const wsp_hs_frame *f, LPWSABUF callee,
                       LPQOS sqos) {
    if (callee && f->data_len > callee->len)
        return WSAEFAULT;
    /* Likewise a negotiated QoS whose provider-specific part does not fit the caller's
     * buffer: WSAEFAULT, not a silently truncated copy. */
    if (sqos && f->has_qos && f->qos.specific_len > sqos->ProviderSpecific.len)
        return WSAEFAULT;
    size_t specific_len = f->has_qos ? f->qos.specific_len : 0;
    uint8_t *data = f->data_len ? malloc(f->data_len) : NULL;
    char *specific = specific_len ? malloc(specific_len) : NULL;
    if ((f->data_len && !data) || (specific_len && !specific)) {
        free(data);
        free(specific);
        return WSAENOBUFS;
    }
    /* A socket takes one answer (it connects once): nothing is stored here before. */
    so->callee_data = data;
    so->callee_len = f->data_len;
    if (data)
        memcpy(data, f->data, f->data_len);
    if (callee) {
        if (f->data_len)
            memcpy(callee->buf, f->data, f->data_len);
        callee->len = f->data_len;
    }
    so->has_qos = f->has_qos;
    if (f->has_qos) {
        wsp_qos_from_wire(&so->qos, &f->qos, specific, (uint32_t)specific_len);
        if (sqos)
            wsp_qos_from_wire(sqos, &f->qos, sqos->ProviderSpecific.buf,
                              sqos->ProviderSpecific.len);
    }
    return 0;
}

/* Carries the options the kernel keeps from the old descriptor to its replacement: the
 * socket is the same socket to the application, and its options must survive a retry. An
 * option a descriptor cannot report is left alone: so is IPV6_V6ONLY on an IPv4 descriptor
 * (the kernel refuses the IPv6 level there, ENOPROTOOPT). */
static void copy_options(int from, int to) {
    static const struct {
        int level, name;
    } opts[] = {
        {SOL_SOCKET, SO_REUSEADDR}, {SOL_SOCKET, SO_KEEPALIVE}, {SOL_SOCKET, SO_OOBINLINE},
        {SOL_SOCKET, SO_DONTROUTE}, {SOL_SOCKET, SO_LINGER},    {SOL_SOCKET, SO_RCVTIMEO},
        {SOL_SOCKET, SO_SNDTIMEO},  {IPPROTO_TCP, TCP_NODELAY}, {SOL_SOCKET, SO_RCVBUF},
        {SOL_SOCKET, SO_SNDBUF},    {IPPROTO_IPV6, IPV6_V6ONLY},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        union {
            int i;
            struct linger lg;
            struct timeval tv;
        } v, fresh;
        socklen_t len = sizeof v, flen = sizeof fresh;
        if (getsockopt(from, opts[i].level, opts[i].name, &v, &len) < 0 ||
            getsockopt(to, opts[i].level, opts[i].name, &fresh, &flen) < 0)
            continue;
        if (len == flen && memcmp(&v, &fresh, len) == 0)
            continue; /* the default: leave it, so buffer sizes keep auto-tuning */
        if (opts[i].name == SO_RCVBUF || opts[i].name == SO_SNDBUF)
            v.i /= 2; /* the kernel reports twice what was set */
        setsockopt(to, opts[i].level, opts[i].name, &v, len);
    }
}

/* Replaces a socket's descriptor after a failed attempt, so that it can connect again (the
 * old connection may be half-open or still counted by the server). so->lock held. */
static void fresh_descriptor(struct wsp_socket *so) {
    int fd = socket(so->entry->af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return; /* keep the old one: a retry then reports what the kernel says */
    if (so->entry->af == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (so->kernel_options_set) /* else the fresh descriptor's defaults are the same */
        copy_options(so->fd, fd);
    /* An address the application bound explicitly stays bound (a failed connect does not
     * set so->bound, so it is set only by lpWSPBind here). The old descriptor holds it until
     * dup3 closes it; if it cannot be had again (TIME_WAIT), the retry binds implicitly. */
    struct sockaddr_storage local = {0};
    socklen_t len = sizeof local;
    int rebind = so->bound && getsockname(so->fd, (struct sockaddr *)&local, &len) == 0;
    /* so->fd_nonblocking stays 1: the fresh descriptor is non-blocking, as the descriptor of
     * a socket that is not connected always is (FIONBIO changes only a connected one's). */
    (void)dup3(fd, so->fd, O_CLOEXEC); /* dup2 would clear close-on-exec */
    close(fd);
    so->bound = rebind && bind(so->fd, (struct sockaddr *)&local, len) == 0;
}

/* ---- checking the arguments ---------------------------------------------------------------- */

static int is_unspecified(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return in->sin_addr.s_addr == 0 || in->sin_port == 0;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    static const struct in6_addr any = IN6ADDR_ANY_INIT;
    return memcmp(&in6->sin6_addr, &any, sizeof any) == 0 || in6->sin6_port == 0;
}

/* so->lock held. Checks everything that can be checked before a byte is sent, and encodes
 * the connect-data request into req. */
static int check_connect(struct wsp_socket *so, const struct sockaddr *name, int namelen,
                         LPWSABUF caller, LPWSABUF callee, LPQOS sqos,
                         struct connect_request *req) {
    if (so->state == WSP_STATE_LISTENING)
        return WSAEINVAL;
    if (so->state == WSP_STATE_CONNECTED)
        return WSAEISCONN;
    if (so->state == WSP_STATE_CONNECTING)
        return WSAEALREADY;
    if (!name || namelen < (int)wsp_sockaddr_len(so->entry->af))
        return WSAEFAULT;
    if (name->sa_family != so->entry->af)
        return WSAEAFNOSUPPORT;
    if (is_unspecified(name))
        return WSAEADDRNOTAVAIL;
    if (callee && callee->len && !callee->buf)
        return WSAEFAULT;
    if (!so->entry->connect_data) {
        if (caller && caller->len)
            return WSAEPROTONOSUPPORT; /* plain TCP carries no connect data */
        return sqos ? WSAEOPNOTSUPP : 0; /* nor QoS */
    }
    if (caller && ((caller->len && !caller->buf) || caller->len > so->max_caller_data))
        return WSAEFAULT;
    /* Version 3: this client reads every refusal reason, and states its patience (the
     * overall connect limit) so that the server never presents the request after the client
     * has stopped waiting. */
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .reads_reasons = 1};
    if (so->connect_limit_ms) {
        f.has_patience = 1;
        f.patience_ms = so->connect_limit_ms; /* stamped again as it is sent */
    }
    /* The server offers its condition function no more callee data than fits here. A buffer
     * that holds the largest data the format allows needs no mention, nor does its absence
     * (the answer's data is then kept for getsockopt, whatever its size): the request then
     * stays version 1, which servers that predate version 2 still understand. */
    if (callee && callee->len < WSP_HS_MAX_DATA) {
        f.has_callee_capacity = 1;
        f.callee_capacity = callee->len;
    }
    if (caller && caller->len) {
        f.has_data = 1;
        f.data = (const uint8_t *)caller->buf;
        f.data_len = caller->len;
    }
    if (sqos) {
        if (sqos->ProviderSpecific.len > WSP_HS_MAX_QOS_SPECIFIC ||
            (sqos->ProviderSpecific.len && !sqos->ProviderSpecific.buf))
            return WSAEFAULT;
        f.has_qos = 1;
        wsp_qos_to_wire(&f.qos, sqos);
    }
    req->frame_len = wsp_hs_encode(&f, req->frame, sizeof req->frame);
    req->callee = callee;
    req->sqos = sqos;
    so->refuse_reason = WSP_REASON_NONE;
    return req->frame_len ? 0 : WSAEFAULT;
}

/* Rewrites the request's patience to what is left of the connect limit (its deadline)
 * just before its first byte is sent. */
static void stamp_patience(struct connect_request *req, uint64_t deadline) {
    size_t off = wsp_hs_patience_offset(req->frame, req->frame_len);
    if (!off)
        return; /* no patience stated: the socket has no connect limit */
    uint32_t left = (uint32_t)wsp_ms_left(deadline); /* no deadline (-1): the most, cut below */
    uint32_t limit = (uint32_t)req->frame[off] << 24 | (uint32_t)req->frame[off + 1] << 16 |
                     (uint32_t)req->frame[off + 2] << 8 | req->frame[off + 3];
    if (left > limit) /* the deadline is a whole millisecond late, never early */
        left = limit;
    req->frame[off] = (uint8_t)(left >> 24);
    req->frame[off + 1] = (uint8_t)(left >> 16);
    req->frame[off + 2] = (uint8_t)(left >> 8);
    req->frame[off + 3] = (uint8_t)left;
}

/* so->lock held. The error a REFUSE answer means, remembering its reason for
 * WSP_REFUSE_REASON: a refusal; WSAEFAULT when the server's answer did not fit the buffers
 * this client stated (Winsock's code for a callee buffer that is too small); WSAETIMEDOUT
 * when the server saw this client's connect limit pass, as the client itself is about to. */
static int refused(struct wsp_socket *so, const wsp_hs_frame *answer) {
    so->refuse_reason = answer->reason;
    if (answer->reason == WSP_HS_REASON_UNDELIVERABLE)
        return WSAEFAULT;
    return answer->reason == WSP_HS_REASON_EXPIRED ? WSAETIMEDOUT : WSAECONNREFUSED;
}

/* ---- blocking ------------------------------------------------------------------------------ */

/* The connect time-out in milliseconds; a DWORD past INT_MAX means "as long as possible" (a
 * negative int would mean "no time at all" to wsp_fd_send_all, which now also waits for the
 * connection itself). */
/* The deadline of the whole connect (WSP_CONNECT_LIMIT; WSP_NO_DEADLINE when it has none). */
static uint64_t connect_limit(const struct wsp_socket *so) {
    return so->connect_limit_ms ? wsp_deadline_in(so->connect_limit_ms) : WSP_NO_DEADLINE;
}

static int timeout_of(const struct wsp_socket *so) {
    DWORD t = so->connect_timeout_ms ? so->connect_timeout_ms : WSP_DEFAULT_CONNECT_TIMEOUT_MS;
    return t > INT_MAX ? INT_MAX : (int)t;
}

/* Starts a TCP connect on a non-blocking descriptor: WSAEINPROGRESS (under way, or done: see
 * below), or another WSA code.
 *
 * On the connect-data protocol the last ACK of TCP's handshake waits for the request and
 * travels with it (TCP_DEFER_ACCEPT on a connecting socket: Linux then delays that ACK,
 * expecting data). The server's kernel completes the connection when the request arrives,
 * so its provider is woken once, with the request there to read, rather than once for the
 * connection and again for the request; and there is one packet fewer. Should the request
 * not follow at once, the kernel sends the ACK alone after at most 200 ms. */
static int start_tcp(int fd, const struct sockaddr *name, socklen_t len, int connect_data) {
    if (connect_data) {
        int on = 1; /* best effort: without it the ACK merely goes out alone */
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &on, sizeof on);
    }
    /* A connect done at once (POSIX allows it; Linux's TCP never does it on a non-blocking
     * socket) is taken for one under way: the wait finds it writable at once, so no caller
     * needs a path of its own for it. */
    return connect(fd, name, len) == 0 ? WSAEINPROGRESS : wsp_wsa_from_errno(errno);
}

/* The outcome of a finished TCP connect on fd: 0 or a WSA code. */
static int tcp_outcome(int fd) {
    int e = 0;
    socklen_t len = sizeof e;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
    return e == ECONNRESET ? WSAECONNREFUSED : wsp_wsa_from_errno(e);
}

/* The longest wait allowed now: window_ms, or less when the deadline is nearer. */
static int window(uint64_t deadline, int window_ms) {
    int left = wsp_ms_left(deadline);
    return left < 0 || left > window_ms ? window_ms : left;
}

/* Waits for fd to poll with events, giving up at deadline; the remaining wait is at most
 * window_ms. Returns revents, 0 on time-out, or -WSA code. A deadline that has passed ends
 * the wait without a look: a server that keeps the descriptor readable (a flood of pending
 * notices) must not keep a connect alive past its limit. */
static int wait_until(int fd, short events, uint64_t deadline, int window_ms) {
    int t = window(deadline, window_ms);
    return t == 0 ? 0 : wsp_fd_wait(fd, events, t);
}

/* The error for a REQUEST that could not be sent: a reset that beats the request (a server
 * that rejected at once) is a refusal, as when it arrives in place of the answer. */
static int request_send_error(int err) {
    return err == WSAECONNRESET || err == WSAESHUTDOWN ? WSAECONNREFUSED : err;
}

/* Runs a whole connect on the caller's thread, so->lock not held: timeout and limit were
 * read under it, with the request (whose patience is there exactly when limit is a
 * deadline). 0 or a WSA code. */
static int connect_blocking(struct wsp_socket *so, int fd, const struct sockaddr *name,
                            socklen_t len, struct connect_request *req, struct answer_reader *a,
                            int timeout, uint64_t limit, wsp_hs_frame *answer) {
    int err = start_tcp(fd, name, len, so->entry->connect_data);
    if (err == WSAEINPROGRESS && !so->entry->connect_data) {
        int r = wait_until(fd, POLLOUT, limit, timeout);
        /* Writable without an error flag means connected: no need to ask for SO_ERROR. */
        err = r < 0 ? -r : r == 0 ? WSAETIMEDOUT : (r & (POLLERR | POLLHUP)) ? tcp_outcome(fd) : 0;
    }
    if (err == WSAEINPROGRESS)
        err = 0; /* connect data: sending the request waits for the connection (below) */
    if (err || !so->entry->connect_data)
        return err;
    /* The request goes out at once: on a nearby server the connection is usually up by the
     * time connect returns, and a send that finds it still being set up fails with EAGAIN
     * and waits for it (or fails with the connect's own error, such as ECONNREFUSED). */
    stamp_patience(req, limit);
    if ((err = wsp_fd_send_all(fd, req->frame, req->frame_len, window(limit, timeout))) != 0)
        return request_send_error(err);
    reader_reset(a);
    for (;;) {
        int r = wait_until(fd, POLLIN, limit, timeout);
        if (r <= 0)
            return r < 0 ? -r : WSAETIMEDOUT;
        int type = reader_step(a, fd, answer);
        if (type < 0)
            return -type;
        if (type == WSP_HS_ACCEPT)
            return 0;
        if (type == WSP_HS_REFUSE)
            return WSAECONNREFUSED; /* the caller reads the reason from answer */
        /* PENDING, or a partial frame: keep waiting, a full time-out from now */
    }
}

/* ---- non-blocking: the connector ------------------------------------------------------------ */

struct wsp_connector {
    struct wsp_reactor_item item; /* first */
    struct wsp_socket *so;
    bool sent; /* the request is on its way: waiting for the answer */
    size_t req_sent;  /* bytes of the request sent so far */
    int early_error;  /* the connect failed as the request was first tried: report it */
    /* The item's EPOLLONESHOT registration was armed again off the reactor's own step (by a
     * step wsp_connector_poll made), so a step on an event read before may find it armed. */
    bool armed_elsewhere;
    uint64_t limit_ms; /* the deadline of the whole connect (WSP_NO_DEADLINE: none) */
    /* wsp_connect's, taken over rather than copied into a zeroed connector: each is a
     * maximal frame (some 17 KB), and zeroing and copying them cost every non-blocking
     * connect more than the rest of its provider work. */
    struct connect_request *req;
    struct answer_reader *reader;
};

static void connector_release(struct wsp_reactor_item *item) {
    struct wsp_connector *c = (struct wsp_connector *)item;
    if (c->so) /* not given up already (connector_done) */
        wsp_socket_release(c->so);
    free(c->req);
    free(c->reader);
    free(c);
}

/* so->lock held. Ends the connect with err (0: connected). disarmed: the item's one-shot
 * registration fired and is not armed again; it stays in the reactor's epoll set, reporting
 * nothing, until the descriptor's file closes (a failed connect replaces it at once, a
 * connected one goes with the socket) or a watch takes it over: the connection saves its
 * EPOLL_CTL_DEL. */
static void connector_finish(struct wsp_connector *c, int err, const wsp_hs_frame *answer,
                             int disarmed) {
    struct wsp_socket *so = c->so;
    if (!err && answer)
        err = take_answer(so, answer, c->req->callee, c->req->sqos);
    so->connector = NULL;
    if (disarmed)
        wsp_reactor_remove_disarmed(&c->item);
    else
        wsp_reactor_remove(&c->item);
    so->fd_left_in_reactor = disarmed && !err;
    so->connect_error = err;
    if (err) {
        so->state = WSP_STATE_OPEN;
        fresh_descriptor(so); /* the left registration goes with the old descriptor */
    } else {
        so->state = WSP_STATE_CONNECTED;
        /* FIONBIO to blocking while connecting left the descriptor non-blocking. */
        wsp_socket_fd_nonblocking(so, so->nonblocking);
    }
    wsp_netevents_connected(so, err);
}

static void connector_arm(struct wsp_connector *c) {
    uint64_t due = wsp_now_ms() + (uint64_t)timeout_of(c->so);
    if (c->limit_ms < due)
        due = c->limit_ms;
    wsp_reactor_set_timer(&c->item, due);
}

/* so->lock held. Sends as much of the rest of the request as the socket takes now (all of
 * it, or up to a full send buffer: the reactor then waits for the socket to be writable
 * again, the connector's item still watching EPOLLOUT). 0 or the WSA code of the error. */
static int send_request(struct wsp_connector *c) {
    if (c->req_sent == 0)
        stamp_patience(c->req, c->limit_ms);
    while (c->req_sent < c->req->frame_len) {
        ssize_t n = send(c->so->fd, c->req->frame + c->req_sent, c->req->frame_len - c->req_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            c->req_sent += (size_t)n;
        else if (errno == EAGAIN) /* n < 0: a send of a non-zero length never returns 0 */
            return 0; /* a connection still being set up says EAGAIN too */
        else if (errno != EINTR)
            return request_send_error(wsp_wsa_from_errno(errno));
    }
    return 0;
}

/* What the connector's item waits for now, one event at a time (EPOLLONESHOT: a finished
 * connect's registration reports nothing more, see connector_finish). */
static uint32_t connector_watch(const struct wsp_connector *c) {
    return (c->sent ? EPOLLIN | EPOLLRDHUP : EPOLLOUT) | EPOLLONESHOT;
}

/* so->lock held, c still the socket's connector. One step of the connect on what the
 * descriptor reported (events, as epoll names them). from_event: the reactor's step on the
 * item's event (its registration fired); otherwise wsp_connector_poll's. */
static void connector_step(struct wsp_connector *c, uint32_t events, int from_event) {
    struct wsp_socket *so = c->so;
    int disarmed = from_event && !c->armed_elsewhere;
    bool was_sent = c->sent;
    if (!c->sent) {
        int err = c->early_error;
        if (!err && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            err = tcp_outcome(so->fd);
        if (!err && so->entry->connect_data)
            err = send_request(c); /* the rest, if any, when the socket is writable again */
        if (err || !so->entry->connect_data) {
            connector_finish(c, err, NULL, disarmed);
            return;
        }
        if (c->req_sent == c->req->frame_len) {
            c->sent = 1;
            connector_arm(c);
        }
    } else {
        wsp_hs_frame answer;
        int type = reader_step(c->reader, so->fd, &answer);
        if (type < 0) {
            connector_finish(c, -type, NULL, disarmed);
            return;
        }
        if (type == WSP_HS_ACCEPT || type == WSP_HS_REFUSE) {
            connector_finish(c, type == WSP_HS_ACCEPT ? 0 : refused(so, &answer),
                             type == WSP_HS_ACCEPT ? &answer : NULL, disarmed);
            return;
        }
        if (type == WSP_HS_PENDING)
            connector_arm(c);
    }
    /* Still connecting: the fired registration is armed again; off the reactor's step it is
     * changed only when what it waits for changed. */
    if (from_event || c->sent != was_sent) {
        wsp_reactor_modify(&c->item, connector_watch(c));
        if (!from_event)
            c->armed_elsewhere = 1;
    }
}

/* The reactor's own step ended the connect: the connector gives its reference to the socket
 * up now, not when the reactor frees the item. Only the reactor calls the item's handlers,
 * each after checking under its lock that the item was not removed, so nothing reads c->so
 * after this. Held on to, the reference made the application's close (usually next, on an
 * event-thread executor, before the reactor frees its items) find the socket in use and give
 * its descriptor up the long way (shutdown, socket, dup3, close: docs/PERFORMANCE.md). */
static void connector_done(struct wsp_connector *c) {
    struct wsp_socket *so = c->so;
    c->so = NULL;
    wsp_socket_release(so);
}

static void connector_ready(struct wsp_reactor_item *item, uint32_t events) {
    struct wsp_connector *c = (struct wsp_connector *)item;
    struct wsp_socket *so = c->so;
    pthread_mutex_lock(&so->lock);
    /* Still the socket's connector: connector_finish and wsp_connector_close, which end
     * that, remove the item under the same lock (so it is not freed before this returns). */
    int done = 0;
    if (so->connector == c) {
        connector_step(c, events, 1);
        done = so->connector != c;
    }
    pthread_mutex_unlock(&so->lock);
    if (done)
        connector_done(c);
}

void wsp_connector_poll(struct wsp_socket *so) {
    struct wsp_connector *c = so->connector;
    if (!c)
        return;
    struct pollfd p = {.fd = so->fd, .events = c->sent ? POLLIN | POLLRDHUP : POLLOUT};
    if (poll(&p, 1, 0) <= 0)
        return;
    /* Anything reported means the TCP connect has ended (tcp_outcome says how) or, once the
     * request is sent, that the answer can be read (reader_step says what it is): the step
     * asks the descriptor itself, so which event it was does not matter. */
    connector_step(c, c->sent ? EPOLLIN : EPOLLOUT, 0);
}

static void connector_timer(struct wsp_reactor_item *item, uint64_t now) {
    (void)now;
    struct wsp_connector *c = (struct wsp_connector *)item;
    struct wsp_socket *so = c->so;
    pthread_mutex_lock(&so->lock);
    int done = so->connector == c; /* as in connector_ready */
    if (done)
        connector_finish(c, WSAETIMEDOUT, NULL, 0); /* the registration may be armed */
    pthread_mutex_unlock(&so->lock);
    if (done)
        connector_done(c);
}

/* so->lock held. Starts a non-blocking connect; WSAEWOULDBLOCK when it is under way. The
 * connector takes req and reader over then (*req and *reader become NULL); otherwise they
 * stay the caller's. */
static int connect_nonblocking(struct wsp_socket *so, const struct sockaddr *name,
                               socklen_t len, struct connect_request **req,
                               struct answer_reader **reader) {
    struct wsp_connector *c = calloc(1, sizeof *c);
    if (!c)
        return WSAENOBUFS;
    c->so = so;
    c->req = *req;
    c->reader = *reader;
    if (c->reader) /* (connect data only) */
        reader_reset(c->reader);
    c->limit_ms = connect_limit(so);
    c->item.fd = so->fd;
    c->item.on_ready = connector_ready;
    c->item.release = connector_release;
    c->item.on_timer = connector_timer;
    int err = start_tcp(so->fd, name, len, so->entry->connect_data);
    if (err != WSAEINPROGRESS) {
        free(c);
        return err;
    }
    if (so->entry->connect_data) {
        /* As in a blocking connect, the request goes out at once when the connection is up
         * (usually, on a nearby server), saving the reactor a wake-up. An error is the
         * connect's own; it is reported the usual way, when the reactor sees the socket. */
        c->early_error = send_request(c);
        c->sent = c->req_sent == c->req->frame_len;
    }
    wsp_socket_retain(so);
    if ((err = wsp_reactor_add(&c->item, connector_watch(c))) != 0) {
        wsp_socket_release(so);
        free(c);
        fresh_descriptor(so);
        return err;
    }
    so->connector = c;
    so->state = WSP_STATE_CONNECTING;
    *req = NULL;
    *reader = NULL;
    connector_arm(c);
    return WSAEWOULDBLOCK;
}

void wsp_connector_close(struct wsp_socket *so) {
    struct wsp_connector *c = so->connector;
    so->connector = NULL;
    wsp_reactor_remove(&c->item);
}

/* ---- lpWSPConnect ---------------------------------------------------------------------------- */

/* so->lock held (released while the connect runs). A blocking connect, with its handshake
 * when the socket has connect data: 0 once connected, else the WSA code. */
static int connect_waiting(struct wsp_socket *so, const struct sockaddr *name, socklen_t len,
                           struct connect_request *req, struct answer_reader *reader,
                           LPWSABUF callee, LPQOS sqos) {
    so->state = WSP_STATE_CONNECTING;
    int fd = so->fd;
    int timeout = timeout_of(so);
    uint64_t limit = connect_limit(so);
    pthread_mutex_unlock(&so->lock);
    wsp_hs_frame answer = {0};
    int err = connect_blocking(so, fd, name, len, req, reader, timeout, limit, &answer);
    pthread_mutex_lock(&so->lock);
    if (err == WSAECONNREFUSED && answer.type == WSP_HS_REFUSE)
        err = refused(so, &answer);
    if (so->closing)
        err = WSAEINTR;
    if (!err) /* plain TCP: the empty answer (no data, no QoS), callee's length 0 */
        err = take_answer(so, &answer, callee, sqos);
    so->connect_error = err == WSAEINTR ? so->connect_error : err;
    if (!err) {
        so->state = WSP_STATE_CONNECTED;
        /* FIONBIO may have changed the mode while the connect ran: the descriptor follows
         * the socket's mode now. */
        err = wsp_socket_fd_nonblocking(so, so->nonblocking);
    } else {
        so->state = WSP_STATE_OPEN;
        if (!so->closing)
            fresh_descriptor(so);
    }
    return err;
}

int wsp_connect(SOCKET s, const struct sockaddr *name, int namelen, LPWSABUF caller,
                LPWSABUF callee, LPQOS sqos, LPQOS gqos, LPINT lpErrno) {
    (void)gqos; /* groups are not offered: the group QoS is ignored */
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    /* A maximal frame each (some 17 KB): only the connect-data handshake has a request to
     * send and an answer to read, so plain TCP allocates neither. */
    int connect_data = so->entry->connect_data;
    struct connect_request *req = connect_data ? malloc(sizeof *req) : NULL;
    struct answer_reader *reader = connect_data ? malloc(sizeof *reader) : NULL;
    pthread_mutex_lock(&so->lock);
    if (connect_data && (!req || !reader))
        err = WSAENOBUFS;
    if (!err)
        err = check_connect(so, name, namelen, caller, callee, sqos, req);
    /* On the event thread a blocking socket connects as a non-blocking one: it never waits. */
    socklen_t len = wsp_sockaddr_len(so->entry->af);
    if (!err)
        err = so->nonblocking || wsp_reactor_is_current()
                  ? connect_nonblocking(so, name, len, &req, &reader)
                  : connect_waiting(so, name, len, req, reader, callee, sqos);
    pthread_mutex_unlock(&so->lock);
    free(req);
    free(reader);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}
