/* lpWSPSetSockOpt, lpWSPGetSockOpt and lpWSPIoctl. Options the kernel keeps go to the
 * descriptor; the ones Winsock defines differently from Linux (time-outs in milliseconds,
 * SO_CONDITIONAL_ACCEPT) and WSP's own (SOL_WSP) live in the socket. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>

#include "internal.h"

/* Options passed through to the kernel unchanged, with the size of their value. */
static socklen_t kernel_option_size(int level, int optname) {
    if (level == SOL_SOCKET) {
        switch (optname) {
        case SO_REUSEADDR: case SO_KEEPALIVE: case SO_RCVBUF: case SO_SNDBUF: case SO_OOBINLINE:
        case SO_DONTROUTE: case SO_BROADCAST:
            return sizeof(int);
        case SO_LINGER:
            return sizeof(struct linger);
        }
    } else if (level == IPPROTO_TCP && optname == TCP_NODELAY) {
        return sizeof(int);
    } else if (level == IPPROTO_IPV6 && optname == IPV6_V6ONLY) {
        return sizeof(int);
    }
    return 0;
}

static DWORD read_dword(const char *optval) {
    DWORD v;
    memcpy(&v, optval, sizeof v);
    return v;
}

/* so->lock held. */
static int set_timeout(struct wsp_socket *so, int optname, DWORD ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (setsockopt(so->fd, SOL_SOCKET, optname, &tv, sizeof tv) < 0)
        return wsp_wsa_from_errno(errno);
    *(optname == SO_RCVTIMEO ? &so->rcvtimeo_ms : &so->sndtimeo_ms) = ms;
    so->kernel_options_set = 1;
    return 0;
}

/* so->lock held. SO_SNDBUF, SO_RCVBUF: the kernel's. Winsock reads back the buffer size the
 * application set; Linux doubles it (for its own bookkeeping) and clamps it, so the size set
 * is kept to be echoed. The effective size is the kernel's (README: differences). */
static int set_buffer_size(struct wsp_socket *so, int optname, const char *optval) {
    int v;
    memcpy(&v, optval, sizeof v);
    if (setsockopt(so->fd, SOL_SOCKET, optname, &v, sizeof v) < 0)
        return wsp_wsa_from_errno(errno);
    so->kernel_options_set = 1;
    *(optname == SO_SNDBUF ? &so->sndbuf_set : &so->rcvbuf_set) = v;
    *(optname == SO_SNDBUF ? &so->has_sndbuf : &so->has_rcvbuf) = 1;
    return 0;
}

/* so->lock held. WSP's own options; value checked to be a DWORD. */
static int set_wsp_option(struct wsp_socket *so, int optname, DWORD v) {
    switch (optname) {
    case WSP_CONNECT_TIMEOUT: so->connect_timeout_ms = v; return 0;
    case WSP_CONNECT_LIMIT: so->connect_limit_ms = v; return 0;
    case WSP_MAX_CALLER_DATA:
        if (v > WSP_MAX_CONNECT_DATA)
            return WSAEINVAL;
        so->max_caller_data = v;
        return 0;
    case WSP_MAX_CALLEE_DATA:
        if (v > WSP_MAX_CONNECT_DATA)
            return WSAEINVAL;
        so->max_callee_data = v;
        return 0;
    case WSP_HANDSHAKE_DEADLINE:
        if (v == 0)
            return WSAEINVAL;
        so->handshake_deadline_ms = v;
        return 0;
    case WSP_PENDING_INTERVAL:
        if (v == 0)
            return WSAEINVAL;
        so->pending_interval_ms = v;
        return 0;
    case WSP_HOLD_LIMIT:
        if (v > WSP_MAX_HOLD_LIMIT)
            return WSAEINVAL;
        so->hold_limit = v;
        return 0;
    case WSP_HOLD_DEADLINE: so->hold_deadline_ms = v; return 0;
    default: return WSAENOPROTOOPT;
    }
}

int wsp_set_sock_opt(SOCKET s, int level, int optname, const char *optval, int optlen,
                     LPINT lpErrno) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    pthread_mutex_lock(&so->lock);
    socklen_t ksize = kernel_option_size(level, optname);
    if (!optval || optlen < (int)(ksize ? ksize : sizeof(DWORD)))
        err = WSAEFAULT;
    else if (level == SOL_SOCKET && (optname == SO_SNDBUF || optname == SO_RCVBUF))
        err = set_buffer_size(so, optname, optval);
    else if (ksize) {
        if (level == IPPROTO_IPV6 && so->entry->af != AF_INET6)
            err = WSAEINVAL;
        else if (setsockopt(so->fd, level, optname, optval, ksize) < 0)
            err = wsp_wsa_from_errno(errno);
        else
            so->kernel_options_set = 1;
    } else if (level == SOL_SOCKET && (optname == SO_RCVTIMEO || optname == SO_SNDTIMEO)) {
        err = set_timeout(so, optname, read_dword(optval));
    } else if (level == SOL_SOCKET && optname == SO_CONDITIONAL_ACCEPT) {
        if (so->state == WSP_STATE_LISTENING)
            err = WSAEINVAL; /* must be set before listening */
        else
            so->conditional_accept = read_dword(optval) != 0;
    } else if (level == SOL_WSP && optname == WSP_DROP_HANDLER) {
        if (optlen < (int)sizeof(WSP_DROP_HANDLER_DATA))
            err = WSAEFAULT;
        else
            memcpy(&so->drop_handler, optval, sizeof so->drop_handler);
    } else if (level == SOL_WSP && optname == WSP_HELD_EVENT) {
        WSAEVENT ev;
        if (optlen < (int)sizeof ev) {
            err = WSAEFAULT;
        } else {
            memcpy(&ev, optval, sizeof ev);
            /* WSP's own events can be checked; an application's upcalls know theirs. */
            if (ev && wsp_upcalls_builtin_events() && !wsp_event_is_open(ev))
                err = WSA_INVALID_HANDLE;
            else
                so->held_event = ev;
        }
    } else if (level == SOL_WSP) {
        err = set_wsp_option(so, optname, read_dword(optval));
    } else if (level == SOL_SOCKET || level == IPPROTO_TCP || level == IPPROTO_IPV6) {
        err = WSAENOPROTOOPT;
    } else {
        err = WSAEINVAL;
    }
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}

/* so->lock held. Options whose value the socket itself knows; 1 when optname was one. */
static int get_own_option(struct wsp_socket *so, int level, int optname, DWORD *v) {
    if (level == SOL_SOCKET) {
        switch (optname) {
        case SO_RCVTIMEO: *v = so->rcvtimeo_ms; return 1;
        case SO_SNDTIMEO: *v = so->sndtimeo_ms; return 1;
        case SO_CONDITIONAL_ACCEPT: *v = (DWORD)so->conditional_accept; return 1;
        case SO_ACCEPTCONN: *v = so->state == WSP_STATE_LISTENING; return 1;
        case SO_TYPE: *v = SOCK_STREAM; return 1;
        case SO_SNDBUF:
            if (!so->has_sndbuf)
                return 0;
            *v = (DWORD)so->sndbuf_set;
            return 1;
        case SO_RCVBUF:
            if (!so->has_rcvbuf)
                return 0;
            *v = (DWORD)so->rcvbuf_set;
            return 1;
        }
    } else if (level == SOL_WSP) {
        switch (optname) {
        case WSP_CONNECT_TIMEOUT: *v = so->connect_timeout_ms; return 1;
        case WSP_CONNECT_LIMIT: *v = so->connect_limit_ms; return 1;
        case WSP_MAX_CALLER_DATA: *v = so->max_caller_data; return 1;
        case WSP_MAX_CALLEE_DATA: *v = so->max_callee_data; return 1;
        case WSP_HANDSHAKE_DEADLINE: *v = so->handshake_deadline_ms; return 1;
        case WSP_PENDING_INTERVAL: *v = so->pending_interval_ms; return 1;
        case WSP_HOLD_LIMIT: *v = so->hold_limit; return 1;
        case WSP_HOLD_DEADLINE: *v = so->hold_deadline_ms; return 1;
        case WSP_REFUSE_REASON: *v = (DWORD)so->refuse_reason; return 1;
        }
    }
    return 0;
}

/* so->lock held. SO_ERROR: the kernel's pending error (reading clears it), else the last
 * connect's failure, which stays until a connect succeeds, as on Windows (docs/SEMANTICS.md
 * §6). */
static DWORD take_error(struct wsp_socket *so) {
    /* While a connect is in progress the kernel's pending error is that connect's outcome,
     * which the connector (or the blocking connect) reads: taking it here would make a
     * refused connect look successful. Winsock reports 0 until the connect completes. */
    if (so->state == WSP_STATE_CONNECTING)
        return 0;
    int e = 0;
    socklen_t len = sizeof e;
    getsockopt(so->fd, SOL_SOCKET, SO_ERROR, &e, &len);
    if (e == ECONNRESET)
        so->reset = 1; /* read here, the kernel forgets it: transfer.c keeps reporting it */
    return e ? (DWORD)wsp_wsa_from_errno(e) : (DWORD)so->connect_error;
}

/* so->lock held. Copies a variable-size value out; WSAEFAULT when it does not fit. */
static int put_bytes(const void *src, int n, char *optval, LPINT optlen) {
    if (*optlen < n)
        return WSAEFAULT;
    if (n)
        memcpy(optval, src, (size_t)n);
    *optlen = n;
    return 0;
}

int wsp_get_sock_opt(SOCKET s, int level, int optname, char *optval, LPINT optlen,
                     LPINT lpErrno) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    pthread_mutex_lock(&so->lock);
    socklen_t ksize = kernel_option_size(level, optname);
    DWORD v = 0;
    if (!optval || !optlen || *optlen < 0) {
        err = WSAEFAULT;
    } else if (level == SOL_WSP && optname == WSP_LISTENER_STATS) {
        WSP_LISTENER_STATS_DATA st;
        if (!so->listener)
            err = WSAEINVAL;
        else {
            wsp_listener_stats(so, &st);
            err = put_bytes(&st, (int)sizeof st, optval, optlen);
        }
    } else if (level == SOL_WSP && optname == WSP_HELD_EVENT) {
        err = put_bytes(&so->held_event, (int)sizeof so->held_event, optval, optlen);
    } else if (level == SOL_WSP && optname == WSP_CALLEE_DATA) {
        err = put_bytes(so->callee_data, (int)so->callee_len, optval, optlen);
    } else if (get_own_option(so, level, optname, &v)) {
        /* Before the kernel's: a buffer size the application set is reported as it set it,
         * not as the kernel doubled it. */
        err = put_bytes(&v, (int)sizeof v, optval, optlen);
    } else if (ksize) {
        socklen_t len = ksize;
        if (*optlen < (int)ksize)
            err = WSAEFAULT;
        else if (level == IPPROTO_IPV6 && so->entry->af != AF_INET6)
            err = WSAEINVAL;
        else if (getsockopt(so->fd, level, optname, optval, &len) < 0)
            err = wsp_wsa_from_errno(errno);
        else
            *optlen = (int)len;
    } else if (level == SOL_SOCKET && optname == SO_ERROR) {
        v = take_error(so);
        err = put_bytes(&v, (int)sizeof v, optval, optlen);
    } else {
        err = (level == SOL_SOCKET || level == IPPROTO_TCP || level == IPPROTO_IPV6 ||
               level == SOL_WSP)
                  ? WSAENOPROTOOPT
                  : WSAEINVAL;
    }
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}

/* ---- lpWSPIoctl --------------------------------------------------------------------------- */

/* so->lock held. FIONBIO: the socket's blocking mode. */
static int set_nonblocking(struct wsp_socket *so, int on) {
    if (!on && wsp_netevents_registered(so))
        return WSAEINVAL; /* event select keeps a socket non-blocking */
    /* Only a connected socket's descriptor follows its mode; the others stay non-blocking
     * because the provider does the waiting for them. */
    if (so->state == WSP_STATE_CONNECTED) {
        int err = wsp_socket_fd_nonblocking(so, on);
        if (err)
            return err;
    }
    so->nonblocking = on;
    return 0;
}

/* Winsock's SIOCATMARK: TRUE unless urgent data waits to be read with MSG_OOB. */
static DWORD at_mark(int fd) {
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_OOB | MSG_PEEK | MSG_DONTWAIT);
    return n == 1 ? FALSE : TRUE;
}

/* An output that does not fit is WSAEFAULT and leaves *returned as it was (Windows). */
static int put_out(const void *src, DWORD n, LPVOID out, DWORD outlen, LPDWORD returned) {
    if (!out || outlen < n)
        return WSAEFAULT;
    memcpy(out, src, n);
    *returned = n;
    return 0;
}

int wsp_ioctl(SOCKET s, DWORD code, LPVOID in, DWORD inlen, LPVOID out, DWORD outlen,
              LPDWORD returned, LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr,
              LPWSATHREADID tid, LPINT lpErrno) {
    (void)cr, (void)tid;
    if (ov)
        return wsp_fail(lpErrno, WSAEOPNOTSUPP);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    if (!returned) { /* a synchronous call must say how much it wrote: Windows' WSAEFAULT */
        wsp_socket_release(so);
        return wsp_fail(lpErrno, WSAEFAULT);
    }
    pthread_mutex_lock(&so->lock);
    if (code == WSP_FIONBIO || code == (DWORD)FIONBIO) {
        if (!in || inlen < sizeof(DWORD))
            err = WSAEFAULT;
        else if ((err = set_nonblocking(so, read_dword(in) != 0)) == 0)
            *returned = 0;
    } else if (code == WSP_FIONREAD || code == (DWORD)FIONREAD) {
        int n = 0;
        if (so->state == WSP_STATE_CONNECTED && ioctl(so->fd, FIONREAD, &n) < 0)
            err = wsp_wsa_from_errno(errno);
        DWORD v = (DWORD)n;
        if (!err)
            err = put_out(&v, sizeof v, out, outlen, returned);
    } else if (code == WSP_SIOCATMARK || code == (DWORD)SIOCATMARK) {
        DWORD v = so->state == WSP_STATE_CONNECTED ? at_mark(so->fd) : TRUE;
        err = put_out(&v, sizeof v, out, outlen, returned);
    } else if (code == SIO_GET_QOS) {
        if (!so->entry->connect_data)
            err = WSAEOPNOTSUPP;
        else {
            QOS q = so->qos;
            q.ProviderSpecific = (WSABUF){0, NULL};
            err = put_out(&q, sizeof q, out, outlen, returned);
            wsp_netevents_reenable(so, FD_QOS);
        }
    } else if (code == SIO_WSP_LISTENER_STATS) {
        WSP_LISTENER_STATS_DATA st;
        if (!so->listener)
            err = WSAEINVAL;
        else {
            wsp_listener_stats(so, &st);
            err = put_out(&st, sizeof st, out, outlen, returned);
        }
    } else if (code == SIO_GET_EXTENSION_FUNCTION_POINTER) {
        GUID id;
        wsp_extension_fn fn = NULL;
        if (!in || inlen < sizeof id) {
            err = WSAEFAULT;
        } else {
            memcpy(&id, in, sizeof id);
            fn = wsp_extension_function(&id);
            err = fn ? put_out(&fn, sizeof fn, out, outlen, returned) : WSAEINVAL;
        }
    } else {
        err = WSAEINVAL; /* Winsock's answer to an unknown control code */
    }
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}
