/* Socket life: lpWSPSocket, lpWSPBind, lpWSPShutdown, lpWSPCloseSocket and the two name
 * queries (docs/SEMANTICS.md §3). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

SOCKET wsp_socket(int af, int type, int protocol, LPWSAPROTOCOL_INFO info, GROUP g, DWORD flags,
                  LPINT lpErrno) {
    (void)flags; /* WSA_FLAG_OVERLAPPED and friends: every WSP call completes synchronously */
    if (!wsp_check_started(lpErrno))
        return INVALID_SOCKET;
    if (g != 0) {
        wsp_fail(lpErrno, WSAEINVAL); /* socket groups are not offered */
        return INVALID_SOCKET;
    }
    int err = 0;
    const struct wsp_catalog_entry *entry = wsp_catalog_find(info, af, type, protocol, &err);
    if (!entry) {
        wsp_fail(lpErrno, err);
        return INVALID_SOCKET;
    }
    /* Unconnected descriptors are always non-blocking: the provider does its own waiting in
     * connect (with its time-outs) and accept; a connected one takes the socket's mode. */
    int fd = socket(entry->af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        wsp_fail(lpErrno, wsp_wsa_from_errno(errno));
        return INVALID_SOCKET;
    }
    if (entry->af == AF_INET6) {
        /* Winsock's IPv6 sockets are IPv6-only until told otherwise; Linux's are not. */
        int one = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    struct wsp_socket *so = wsp_socket_new(fd, entry, &err);
    if (!so) {
        close(fd);
        wsp_fail(lpErrno, err);
        return INVALID_SOCKET;
    }
    so->fd_nonblocking = 1;
    return so->obj.handle;
}

/* Checks that name is a socket address of the socket's family, at least as long as one. */
static int check_address(const struct wsp_socket *so, const struct sockaddr *name, int namelen) {
    if (!name || namelen < (int)wsp_sockaddr_len(so->entry->af))
        return WSAEFAULT;
    return name->sa_family != so->entry->af ? WSAEAFNOSUPPORT : 0;
}

int wsp_bind(SOCKET s, const struct sockaddr *name, int namelen, LPINT lpErrno) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    pthread_mutex_lock(&so->lock);
    err = check_address(so, name, namelen);
    if (!err && (so->bound || so->state != WSP_STATE_OPEN))
        err = WSAEINVAL;
    if (!err && bind(so->fd, name, wsp_sockaddr_len(so->entry->af)) < 0)
        err = wsp_wsa_from_errno(errno);
    if (!err)
        so->bound = 1;
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}

/* so->lock held, the socket connected. Keeps both names: once both sides have shut down,
 * Linux forgets the peer (and an implicitly bound port) where Windows keeps answering. */
static void remember_names(struct wsp_socket *so) {
    if (so->has_names)
        return;
    socklen_t plen = sizeof so->peer_name, llen = sizeof so->local_name;
    so->has_names = !getpeername(so->fd, (struct sockaddr *)&so->peer_name, &plen) &&
                    !getsockname(so->fd, (struct sockaddr *)&so->local_name, &llen);
}

/* so->lock held. Gives the kernel's socket up now while keeping its descriptor number, which
 * calls still running and the reactor's items may name until the last reference goes: a
 * fresh unconnected socket takes its place (dup3 closes the old one in the same step). Every
 * watch on the old descriptor was removed from its epoll set before this (close tears the
 * roles down first), so no epoll can name it afterwards. A listener then refuses connects
 * and its port is free at once, as on Windows. Without a spare descriptor, the old one
 * closes with the last reference (a listener among them already refuses: the close shut it
 * down). */
static void release_descriptor(struct wsp_socket *so) {
    int spare = socket(so->entry->af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (spare < 0)
        return;
    if (dup3(spare, so->fd, O_CLOEXEC) >= 0) /* dup2 would clear close-on-exec */
        so->fd_nonblocking = 1;
    close(spare);
}

int wsp_shutdown(SOCKET s, int how, LPINT lpErrno) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    pthread_mutex_lock(&so->lock);
    if (how != SD_RECEIVE && how != SD_SEND && how != SD_BOTH)
        err = WSAEINVAL;
    else if (so->state != WSP_STATE_CONNECTED)
        err = WSAENOTCONN;
    else if (remember_names(so), shutdown(so->fd, how) < 0)
        err = wsp_wsa_from_errno(errno);
    else /* Winsock then fails calls in that direction with WSAESHUTDOWN */
        so->shut |= (how != SD_SEND ? WSP_SHUT_RECEIVE : 0) |
                     (how != SD_RECEIVE ? WSP_SHUT_SEND : 0);
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}

int wsp_close_socket(SOCKET s, LPINT lpErrno) {
    if (!wsp_check_started(lpErrno)) /* like every other member after the last cleanup */
        return SOCKET_ERROR;
    struct wsp_socket *so = wsp_socket_unpublish(s);
    if (!so)
        return wsp_fail(lpErrno, WSAENOTSOCK);
    pthread_mutex_lock(&so->lock);
    so->closing = 1;
    if (so->listener)
        wsp_listener_close(so);
    if (so->connector)
        wsp_connector_close(so);
    wsp_netevents_close(so);
    /* A thread blocked in recv on this socket must wake and fail rather than wait for data
     * that may never come; shutting the read side does that without sending anything. One
     * blocked in send (a peer that reads nothing) wakes only when the sending side shuts too,
     * which queues the FIN the close sends anyway (an abortive close still resets). */
    if (wsp_socket_in_use(so) && so->state == WSP_STATE_CONNECTED)
        shutdown(so->fd, so->sending ? SHUT_RDWR : SHUT_RD);
    else if (wsp_socket_in_use(so)) /* wakes a blocking connect (the attempt is abandoned) and
                                     * stops a listener even when no spare replaces it below */
        shutdown(so->fd, SHUT_RDWR);
    if (wsp_socket_in_use(so))
        release_descriptor(so); /* otherwise the release below closes it at once */
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so); /* the descriptor closes with the last reference */
    return 0;
}

static int get_name(SOCKET s, struct sockaddr *name, LPINT namelen, LPINT lpErrno, bool peer) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    socklen_t need = wsp_sockaddr_len(so->entry->af);
    if (!name || !namelen || *namelen < (int)need)
        err = WSAEFAULT;
    else if (peer && so->state != WSP_STATE_CONNECTED)
        err = WSAENOTCONN;
    else if (!peer && !so->bound && so->state == WSP_STATE_OPEN)
        err = WSAEINVAL; /* Winsock: not bound yet */
    if (!err) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int rc = 0;
        pthread_mutex_lock(&so->lock);
        if (so->has_names) /* after shutdown, as Windows keeps them: a connection's names */
            ss = peer ? so->peer_name : so->local_name; /* never change while it lives */
        else
            rc = peer ? getpeername(so->fd, (struct sockaddr *)&ss, &len)
                      : getsockname(so->fd, (struct sockaddr *)&ss, &len);
        pthread_mutex_unlock(&so->lock);
        if (rc < 0) {
            err = wsp_wsa_from_errno(errno);
        } else {
            memcpy(name, &ss, need);
            *namelen = (int)need;
        }
    }
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}

int wsp_get_sock_name(SOCKET s, struct sockaddr *name, LPINT namelen, LPINT lpErrno) {
    return get_name(s, name, namelen, lpErrno, false);
}

int wsp_get_peer_name(SOCKET s, struct sockaddr *name, LPINT namelen, LPINT lpErrno) {
    return get_name(s, name, namelen, lpErrno, true);
}
