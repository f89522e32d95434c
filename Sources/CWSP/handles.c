/* Sockets in the handle table (object_table.h: generations, so that a closed handle is never
 * confused with a later socket that reuses its slot, and reference counts, so that a socket
 * closed by one thread stays valid for calls still running in others), and the small
 * descriptor helpers the files that do I/O share. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "object_table.h"

static struct wsp_object_table sockets = WSP_OBJECT_TABLE_INIT(WSP_TAG_SOCKET);

/* With the last reference: a role's own memory, then the socket's. */
static void destroy_socket(struct wsp_object *obj) {
    struct wsp_socket *so = (struct wsp_socket *)obj;
    if (so->role)
        so->role->release(so);
    close(so->fd); /* every socket has one: WSPSocket and accept make it with its descriptor */
    free(so->callee_data);
    free(so->qos.ProviderSpecific.buf);
    pthread_mutex_destroy(&so->lock);
    free(so);
}

struct wsp_socket *wsp_socket_new(int fd, const struct wsp_catalog_entry *entry, int *err) {
    struct wsp_socket *so = calloc(1, sizeof *so);
    if (!so) {
        *err = WSAENOBUFS;
        return NULL;
    }
    wsp_object_init(&so->obj, destroy_socket);
    pthread_mutex_init(&so->lock, NULL);
    so->fd = fd;
    so->fd_nonblocking = -1;
    so->entry = entry;
    so->max_caller_data = WSP_DEFAULT_MAX_CALLER_DATA;
    so->max_callee_data = WSP_DEFAULT_MAX_CALLEE_DATA;
    so->handshake_deadline_ms = WSP_DEFAULT_HANDSHAKE_DEADLINE_MS;
    so->pending_interval_ms = WSP_DEFAULT_PENDING_INTERVAL_MS;
    so->hold_limit = WSP_DEFAULT_HOLD_LIMIT;
    so->hold_deadline_ms = WSP_DEFAULT_HOLD_DEADLINE_MS;
    so->connect_timeout_ms = WSP_DEFAULT_CONNECT_TIMEOUT_MS;
    so->connect_limit_ms = WSP_DEFAULT_CONNECT_LIMIT_MS;
    so->netev.armed = FD_ALL_EVENTS; /* nothing reported yet (netevents.c) */
    if (wsp_table_add(&sockets, &so->obj) == 0) {
        pthread_mutex_destroy(&so->lock);
        free(so);
        *err = WSAEMFILE;
        return NULL;
    }
    return so;
}

struct wsp_socket *wsp_socket_acquire(SOCKET s, int *err) {
    if (!atomic_load_explicit(&wsp_started, memory_order_relaxed)) {
        *err = WSANOTINITIALISED;
        return NULL;
    }
    struct wsp_object *obj = wsp_table_get(&sockets, (uintptr_t)s);
    if (!obj)
        *err = WSAENOTSOCK;
    return (struct wsp_socket *)obj;
}

void wsp_socket_retain(struct wsp_socket *so) {
    wsp_object_retain(&so->obj);
}

void wsp_socket_release(struct wsp_socket *so) {
    wsp_object_release(&so->obj);
}

int wsp_socket_in_use(struct wsp_socket *so) {
    return wsp_object_shared(&so->obj);
}

struct wsp_socket *wsp_socket_unpublish(SOCKET s) {
    return (struct wsp_socket *)wsp_table_remove(&sockets, (uintptr_t)s);
}

void wsp_socket_close_all(int (*close_socket)(SOCKET s)) {
    for (;;) {
        uintptr_t batch[64];
        int n = wsp_table_handles(&sockets, batch, 64);
        if (n == 0)
            return;
        for (int i = 0; i < n; i++)
            close_socket((SOCKET)batch[i]);
    }
}

void wsp_socket_inherit(struct wsp_socket *child, const struct wsp_socket *parent) {
    child->nonblocking = parent->nonblocking;
    child->conditional_accept = parent->conditional_accept;
    child->rcvtimeo_ms = parent->rcvtimeo_ms;
    child->sndtimeo_ms = parent->sndtimeo_ms;
    child->connect_timeout_ms = parent->connect_timeout_ms;
    child->connect_limit_ms = parent->connect_limit_ms;
    child->max_caller_data = parent->max_caller_data;
    child->max_callee_data = parent->max_callee_data;
    child->handshake_deadline_ms = parent->handshake_deadline_ms;
    child->pending_interval_ms = parent->pending_interval_ms;
    child->sndbuf_set = parent->sndbuf_set;
    child->rcvbuf_set = parent->rcvbuf_set;
    child->has_sndbuf = parent->has_sndbuf;
    child->has_rcvbuf = parent->has_rcvbuf;
    child->hold_limit = parent->hold_limit;
    child->hold_deadline_ms = parent->hold_deadline_ms;
}

/* ---- small descriptor helpers shared by the files that do I/O ----------------------------- */

static int set_fd_nonblocking(int fd, int on) {
    /* One system call, where fcntl's read-modify-write takes two: this is on every accept. */
    if (ioctl(fd, FIONBIO, &on) < 0)
        return wsp_wsa_from_errno(errno);
    return 0;
}

int wsp_socket_fd_nonblocking(struct wsp_socket *so, int on) {
    if (so->fd_nonblocking == on)
        return 0;
    int err = set_fd_nonblocking(so->fd, on);
    so->fd_nonblocking = err ? -1 : on;
    return err;
}

int wsp_fd_wait(int fd, short events, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = events};
    uint64_t deadline = wsp_deadline_in(timeout_ms);
    for (;;) {
        int n = poll(&p, 1, wsp_ms_left(deadline));
        if (n > 0)
            return p.revents;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -wsp_wsa_from_errno(errno);
    }
}

int wsp_fd_send_all(int fd, const void *buf, size_t len, int timeout_ms) {
    const char *p = buf;
    uint64_t deadline = wsp_deadline_in(timeout_ms);
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return wsp_wsa_from_errno(errno);
        int left = wsp_ms_left(deadline);
        if (left == 0)
            return WSAETIMEDOUT;
        int r = wsp_fd_wait(fd, POLLOUT, left);
        if (r < 0)
            return -r;
    }
    return 0;
}
