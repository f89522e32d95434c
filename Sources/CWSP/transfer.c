/* Data transfer: lpWSPSend and lpWSPRecv with WSABUF arrays (scatter/gather), MSG_PEEK and
 * MSG_OOB. The descriptor's own blocking mode mirrors the socket's, so a blocking call is one
 * system call, as with raw sockets; the kernel enforces SO_RCVTIMEO/SO_SNDTIMEO. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "internal.h"

#define STACK_IOVECS 16

/* Checks a call's shared arguments and builds the iovec array (storage or malloc'd). The
 * caller frees a malloc'd array whatever the outcome. */
static int make_iov(LPWSABUF bufs, DWORD count, struct iovec *storage, struct iovec **iov) {
    if (!bufs || count == 0)
        return WSAEFAULT;
    if (count > IOV_MAX)
        return WSAENOBUFS;
    *iov = count <= STACK_IOVECS ? storage : malloc(count * sizeof **iov);
    if (!*iov)
        return WSAENOBUFS;
    for (DWORD i = 0; i < count; i++) {
        /* A length past INT_MAX is a negative int to a program that passed one (Windows:
         * WSAEFAULT), not a request for whatever is waiting. */
        if ((bufs[i].len && !bufs[i].buf) || bufs[i].len > INT_MAX)
            return WSAEFAULT;
        (*iov)[i] = (struct iovec){bufs[i].buf, bufs[i].len};
    }
    return 0;
}

/* so->lock held afterwards. The error a call that failed with errno e reports. */
static int transfer_error(struct wsp_socket *so, int e) {
    if (so->closing)
        return WSAEINTR; /* closed by another thread while the call waited */
    if (e == EAGAIN && !so->nonblocking && !wsp_reactor_is_current())
        return WSAETIMEDOUT; /* SO_RCVTIMEO / SO_SNDTIMEO ran out */
    if (e == EPIPE)
        return WSAECONNRESET;
    return wsp_wsa_from_errno(e);
}

typedef ssize_t (*transfer_fn)(int fd, struct msghdr *msg, int flags);

/* One buffer, the common case, goes without a message header for the kernel to copy in. */
static ssize_t do_recv(int fd, struct msghdr *msg, int flags) {
    if (msg->msg_iovlen == 1)
        return recv(fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len, flags);
    return recvmsg(fd, msg, flags);
}
static ssize_t do_send(int fd, struct msghdr *msg, int flags) {
    if (msg->msg_iovlen == 1)
        return send(fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len, flags | MSG_NOSIGNAL);
    return sendmsg(fd, msg, flags | MSG_NOSIGNAL);
}

static size_t iov_total(const struct iovec *iov, DWORD count) {
    size_t total = 0;
    for (DWORD i = 0; i < count; i++)
        total += iov[i].iov_len;
    return total;
}

/* What a recv that returned n (errno e) says about data left behind (wsp_netevents_received). */
static int drained(const struct iovec *iov, DWORD count, int flags, ssize_t n, int e) {
    if (flags & MSG_PEEK)
        return 0;
    if (n < 0)
        return e == EAGAIN;
    size_t room = iov_total(iov, count);
    return room > 0 && (size_t)n < room; /* a zero-length recv says nothing */
}

/* so is acquired and its lock not held; the call's arguments were checked and it was
 * connected. Makes the system call, then records what it says; 0 or a WSA code. */
static int transfer_now(struct wsp_socket *so, int fd, struct iovec *iov, DWORD count,
                        LPDWORD done, int flags, bool receiving, LONG reenable) {
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = count};
    transfer_fn fn = receiving ? do_recv : do_send;
    /* On the event thread a blocking socket transfers as a non-blocking one. */
    int dontwait = wsp_reactor_is_current() ? MSG_DONTWAIT : 0;
    ssize_t n;
    do
        n = fn(fd, &msg, (flags & ~MSG_DONTROUTE) | dontwait);
    while (n < 0 && errno == EINTR);
    int e = errno;
    int err = 0;
    pthread_mutex_lock(&so->lock);
    if (!receiving)
        so->sending--;
    /* What drained says matters to FD_READ only: a send re-enables FD_WRITE, for which this
     * is wsp_netevents_reenable. */
    wsp_netevents_received(so, reenable, drained(iov, count, flags, n, e));
    if (n < 0 && (e == ECONNRESET || e == EPIPE))
        so->reset = 1;
    if (n < 0)
        err = transfer_error(so, e);
    else if (so->closing && (n == 0 || (!receiving && (size_t)n < iov_total(iov, count))))
        err = WSAEINTR; /* a blocking send a close cut short fails, as on Windows */
    else if (n == 0 && so->reset && receiving)
        err = WSAECONNRESET; /* Linux's end of stream after the reset it reported once */
    else
        *done = (DWORD)n;
    if (err == WSAEWOULDBLOCK && !receiving)
        wsp_netevents_send_blocked(so); /* FD_WRITE once space frees */
    pthread_mutex_unlock(&so->lock);
    return err;
}

/* The shared body of send and recv. reenable: the event bits the call re-enables. */
static int transfer(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD done, int flags,
                    bool receiving, LONG reenable, LPWSAOVERLAPPED ov, LPINT lpErrno) {
    if (ov)
        return wsp_fail(lpErrno, WSAEOPNOTSUPP); /* overlapped I/O is not offered */
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    struct iovec storage[STACK_IOVECS], *iov = NULL;
    if (!done)
        err = WSAEFAULT;
    else if (flags & ~(MSG_PEEK | MSG_OOB | MSG_DONTROUTE))
        err = WSAEOPNOTSUPP;
    else
        err = make_iov(bufs, count, storage, &iov);
    pthread_mutex_lock(&so->lock);
    wsp_connector_poll(so); /* if connecting: the kernel may be done before the reactor saw it */
    int fd = so->fd;
    if (!err && so->state != WSP_STATE_CONNECTED)
        err = WSAENOTCONN;
    else if (!err && (so->shut & (receiving ? WSP_SHUT_RECEIVE : WSP_SHUT_SEND)))
        err = WSAESHUTDOWN; /* Linux would report end of stream, or EPIPE */
    if (!err && !receiving)
        so->sending++;
    pthread_mutex_unlock(&so->lock);
    if (!err)
        err = transfer_now(so, fd, iov, count, done, flags, receiving, reenable);
    if (iov && iov != storage)
        free(iov);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}

int wsp_recv(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD received, LPDWORD flags,
             LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr, LPWSATHREADID tid,
             LPINT lpErrno) {
    (void)cr, (void)tid;
    if (!flags)
        return wsp_fail(lpErrno, WSAEFAULT);
    int in = (int)*flags;
    int rc = transfer(s, bufs, count, received, in, true,
                      (in & MSG_OOB) ? FD_OOB : FD_READ, ov, lpErrno);
    if (rc == 0)
        *flags = 0; /* no MSG_PARTIAL on a stream */
    return rc;
}

int wsp_send(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD sent, DWORD flags,
             LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr, LPWSATHREADID tid,
             LPINT lpErrno) {
    (void)cr, (void)tid;
    return transfer(s, bufs, count, sent, (int)flags, false, FD_WRITE, ov, lpErrno);
}
