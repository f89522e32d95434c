/* The handle table: SOCKET values -> struct wsp_socket, with generations so that a closed
 * handle is never confused with a later socket that reuses its slot, and reference counts so
 * that a socket closed by one thread stays valid for calls still running in others. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backlog.h"
#include "internal.h"

/* A SOCKET is (generation << SLOT_BITS) | (slot + 1): never 0, never INVALID_SOCKET. */
#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define CHUNK_SLOTS 1024u
#define MAX_CHUNKS (((size_t)SLOT_MASK + 1) / CHUNK_SLOTS)

struct slot {
    struct wsp_socket *so;
    uintptr_t generation;
    uint32_t next_free; /* slot + 1 of the next free slot, 0 = none */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
/* Chunks are allocated once and never moved, so a slot's address is stable. */
static struct slot *chunks[MAX_CHUNKS];
static uint32_t slot_count;
static uint32_t free_head; /* slot + 1 */

static struct slot *slot_at(uint32_t i) { return &chunks[i / CHUNK_SLOTS][i % CHUNK_SLOTS]; }

/* table_lock held. Returns a free slot index or -1. */
static long take_slot(void) {
    if (free_head) {
        uint32_t i = free_head - 1;
        free_head = slot_at(i)->next_free;
        return i;
    }
    if (slot_count == SLOT_MASK)
        return -1;
    if (slot_count % CHUNK_SLOTS == 0) {
        struct slot *c = calloc(CHUNK_SLOTS, sizeof *c);
        if (!c)
            return -1;
        chunks[slot_count / CHUNK_SLOTS] = c;
    }
    return slot_count++;
}

struct wsp_socket *wsp_socket_new(int fd, const struct wsp_catalog_entry *entry, int *err) {
    struct wsp_socket *so = calloc(1, sizeof *so);
    if (!so) {
        *err = WSAENOBUFS;
        return NULL;
    }
    pthread_mutex_init(&so->lock, NULL);
    atomic_init(&so->refs, 1);
    so->fd = fd;
    so->fd_nonblocking = -1;
    so->entry = entry;
    so->max_caller_data = WSP_DEFAULT_MAX_CALLER_DATA;
    so->max_callee_data = WSP_DEFAULT_MAX_CALLEE_DATA;
    so->handshake_deadline_ms = WSP_DEFAULT_HANDSHAKE_DEADLINE_MS;
    so->pending_interval_ms = WSP_DEFAULT_PENDING_INTERVAL_MS;
    so->connect_timeout_ms = WSP_DEFAULT_CONNECT_TIMEOUT_MS;
    so->connect_limit_ms = WSP_DEFAULT_CONNECT_LIMIT_MS;

    pthread_mutex_lock(&table_lock);
    long i = take_slot();
    if (i < 0) {
        pthread_mutex_unlock(&table_lock);
        pthread_mutex_destroy(&so->lock);
        free(so);
        *err = WSAEMFILE;
        return NULL;
    }
    struct slot *sl = slot_at((uint32_t)i);
    sl->generation++;
    if (sl->generation > (UINTPTR_MAX >> SLOT_BITS) - 1)
        sl->generation = 1;
    sl->so = so;
    so->handle = (sl->generation << SLOT_BITS) | ((uintptr_t)i + 1);
    pthread_mutex_unlock(&table_lock);
    return so;
}

/* table_lock held. The slot a handle names, or NULL when it names none now. */
static struct slot *slot_for(SOCKET s) {
    uintptr_t index = (s & SLOT_MASK);
    if (index == 0 || index > slot_count)
        return NULL;
    struct slot *sl = slot_at((uint32_t)(index - 1));
    if (!sl->so || sl->generation != (s >> SLOT_BITS))
        return NULL;
    return sl;
}

struct wsp_socket *wsp_socket_acquire(SOCKET s, int *err) {
    if (!atomic_load_explicit(&wsp_started, memory_order_relaxed)) {
        *err = WSANOTINITIALISED;
        return NULL;
    }
    pthread_mutex_lock(&table_lock);
    struct slot *sl = slot_for(s);
    struct wsp_socket *so = sl ? sl->so : NULL;
    if (so)
        atomic_fetch_add_explicit(&so->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&table_lock);
    if (!so)
        *err = WSAENOTSOCK;
    return so;
}

void wsp_socket_retain(struct wsp_socket *so) {
    atomic_fetch_add_explicit(&so->refs, 1, memory_order_relaxed);
}

void wsp_socket_release(struct wsp_socket *so) {
    if (atomic_fetch_sub_explicit(&so->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (so->listener)
        wsp_listener_free(so->listener);
    if (so->fd >= 0)
        close(so->fd);
    free(so->callee_data);
    free(so->qos.ProviderSpecific.buf);
    pthread_mutex_destroy(&so->lock);
    free(so);
}

struct wsp_socket *wsp_socket_unpublish(SOCKET s) {
    pthread_mutex_lock(&table_lock);
    struct slot *sl = slot_for(s);
    struct wsp_socket *so = NULL;
    if (sl) {
        so = sl->so;
        sl->so = NULL;
        uint32_t index = (uint32_t)(s & SLOT_MASK);
        sl->next_free = free_head;
        free_head = index;
    }
    pthread_mutex_unlock(&table_lock);
    return so;
}

int wsp_socket_close_all(void) {
    int closed = 0;
    for (;;) {
        SOCKET batch[64];
        int n = 0;
        pthread_mutex_lock(&table_lock);
        for (uint32_t i = 0; i < slot_count && n < 64; i++)
            if (slot_at(i)->so)
                batch[n++] = slot_at(i)->so->handle;
        pthread_mutex_unlock(&table_lock);
        if (n == 0)
            return closed;
        for (int i = 0; i < n; i++)
            closed += wsp_close_socket(batch[i], NULL) == 0;
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
