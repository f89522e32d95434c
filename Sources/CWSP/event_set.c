/* An event object's epoll set; event_set.h says why it exists and how it is shared. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "event_set.h"

#define BATCH 64
#define CHECKS 8 /* more at once are looked at on the spot */

struct wsp_event_set {
    struct wsp_reactor_item item; /* first: the reactor hands back this pointer; item.fd is
                                     the set's epoll descriptor */
    atomic_int refs;
    _Atomic(const struct wsp_event_set_client *) client; /* set by the first add */
    pthread_mutex_t lock; /* guards what follows */
    int items;            /* sockets in the set */
    int watchers;         /* reasons for the reactor to watch it */
    bool in_reactor;      /* the reactor's epoll holds item.fd now */
    bool ever_in_reactor; /* then only the reactor may free the set */
    struct wsp_event_check checks[CHECKS];
    int nchecks;
};

static void run_checks_now(struct wsp_event_set *set, struct wsp_event_check *c, int n);

static void pumped_by_reactor(struct wsp_reactor_item *item, uint32_t events) {
    (void)events;
    wsp_event_set_pump((struct wsp_event_set *)item);
}

static void free_set(struct wsp_reactor_item *item) {
    struct wsp_event_set *set = (struct wsp_event_set *)item;
    pthread_mutex_destroy(&set->lock);
    free(set);
}

struct wsp_event_set *wsp_event_set_new(int *err) {
    struct wsp_event_set *set = calloc(1, sizeof *set);
    if (!set) {
        *err = WSA_NOT_ENOUGH_MEMORY;
        return NULL;
    }
    set->item.fd = epoll_create1(EPOLL_CLOEXEC);
    if (set->item.fd < 0) {
        *err = wsp_wsa_resource_error(errno);
        free(set);
        return NULL;
    }
    set->item.on_ready = pumped_by_reactor;
    set->item.release = free_set;
    set->item.quiet_release = 1; /* closing the set wakes no one */
    atomic_init(&set->refs, 1);
    pthread_mutex_init(&set->lock, NULL);
    return set;
}

void wsp_event_set_retain(struct wsp_event_set *set) {
    atomic_fetch_add(&set->refs, 1);
}

void wsp_event_set_release(struct wsp_event_set *set) {
    if (atomic_fetch_sub(&set->refs, 1) != 1)
        return;
    if (set->ever_in_reactor) {
        wsp_reactor_remove_and_close(&set->item); /* a reactor batch may still name it */
    } else {
        close(set->item.fd);
        free_set(&set->item);
    }
}

int wsp_event_set_fd(const struct wsp_event_set *set) {
    return set->item.fd;
}

/* set->lock held. The reactor watches the set while someone relies on it and there is
 * something to watch; tying it to the items also re-registers the set with a reactor that
 * was stopped (the last lpWSPCleanup closes every socket) and started again. */
static void sync_reactor(struct wsp_event_set *set) {
    int want = set->watchers > 0 && set->items > 0;
    if (want == set->in_reactor)
        return;
    if (want) {
        if (wsp_reactor_add(&set->item, EPOLLIN) == 0) {
            set->in_reactor = true;
            set->ever_in_reactor = true;
        }
    } else {
        wsp_reactor_pause(&set->item);
        set->in_reactor = false;
    }
}

void wsp_event_set_reactor_watch(struct wsp_event_set *set, bool on) {
    struct wsp_event_check c[CHECKS];
    int n = 0;
    pthread_mutex_lock(&set->lock);
    set->watchers += on ? 1 : -1;
    sync_reactor(set);
    /* The pending checks are made now while the reactor watches the set (the event's state
     * must be current without a wait) and when a watch starts, even one the reactor could
     * not take: a wait-all sleeps without polling the set, nobody waits on an exported event. */
    if (on || set->in_reactor) {
        n = set->nchecks;
        memcpy(c, set->checks, (size_t)n * sizeof c[0]);
        set->nchecks = 0;
    }
    pthread_mutex_unlock(&set->lock);
    run_checks_now(set, c, n);
}

static int control(struct wsp_event_set *set, int op, int fd, SOCKET s, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)s};
    if (epoll_ctl(set->item.fd, op, fd, &ev) < 0)
        return wsp_wsa_from_errno(errno);
    return 0;
}

int wsp_event_set_add(struct wsp_event_set *set, int fd, SOCKET s, uint32_t events,
                      const struct wsp_event_set_client *client) {
    /* Before the socket is in the set: a pump that finds it finds the client. */
    atomic_store_explicit(&set->client, client, memory_order_release);
    int err = control(set, EPOLL_CTL_ADD, fd, s, events);
    if (!err) {
        pthread_mutex_lock(&set->lock);
        set->items++;
        sync_reactor(set);
        pthread_mutex_unlock(&set->lock);
    }
    return err;
}

int wsp_event_set_modify(struct wsp_event_set *set, int fd, SOCKET s, uint32_t events) {
    return control(set, EPOLL_CTL_MOD, fd, s, events);
}

void wsp_event_set_remove(struct wsp_event_set *set, int fd) {
    epoll_ctl(set->item.fd, EPOLL_CTL_DEL, fd, NULL);
    pthread_mutex_lock(&set->lock);
    set->items--;
    sync_reactor(set);
    pthread_mutex_unlock(&set->lock);
}

/* The set this thread pumped last (compared, never dereferenced). */
static _Thread_local const struct wsp_event_set *last_pumped;

void wsp_event_set_pump(struct wsp_event_set *set) {
    struct epoll_event ready[BATCH];
    int n;
    do {
        n = epoll_wait(set->item.fd, ready, BATCH, 0);
        const struct wsp_event_set_client *client =
            atomic_load_explicit(&set->client, memory_order_acquire);
        for (int i = 0; i < n; i++)
            client->ready((SOCKET)ready[i].data.u64, set, ready[i].events);
    } while (n == BATCH);
    if (n >= 0) /* a failed look took nothing: the next one must look again */
        last_pumped = set;
}

void wsp_event_set_catch_up(struct wsp_event_set *set) {
    if (last_pumped == set) {
        last_pumped = NULL;
    } else {
        wsp_event_set_pump(set);
        last_pumped = NULL; /* only a wait's pump spares the next enumeration one */
    }
    struct wsp_event_check c[CHECKS];
    run_checks_now(set, c, wsp_event_set_take_checks(set, c, CHECKS));
}

int wsp_event_set_defer_check(struct wsp_event_set *set, SOCKET s, int fd) {
    pthread_mutex_lock(&set->lock);
    int deferred = !set->in_reactor;
    if (deferred) {
        int i = 0;
        while (i < set->nchecks && set->checks[i].s != s)
            i++;
        if (i == set->nchecks) {
            if (i < CHECKS)
                set->checks[set->nchecks++] = (struct wsp_event_check){s, fd};
            else
                deferred = 0;
        }
    }
    pthread_mutex_unlock(&set->lock);
    return deferred;
}

int wsp_event_set_checks_pending(struct wsp_event_set *set) {
    pthread_mutex_lock(&set->lock);
    int n = set->nchecks;
    pthread_mutex_unlock(&set->lock);
    return n;
}

int wsp_event_set_take_checks(struct wsp_event_set *set, struct wsp_event_check *out, int max) {
    pthread_mutex_lock(&set->lock);
    int n = set->nchecks < max ? set->nchecks : max;
    memcpy(out, set->checks, (size_t)n * sizeof out[0]);
    memmove(set->checks, set->checks + n, (size_t)(set->nchecks - n) * sizeof out[0]);
    set->nchecks -= n;
    pthread_mutex_unlock(&set->lock);
    return n;
}

void wsp_event_set_finish_checks(struct wsp_event_set *set, const struct wsp_event_check *check,
                                 const struct pollfd *polled, int n) {
    const struct wsp_event_set_client *client =
        atomic_load_explicit(&set->client, memory_order_acquire);
    for (int i = 0; i < n; i++) { /* a check exists only for a socket added to the set */
        short revents = polled ? polled[i].revents : POLLNVAL;
        if (revents)
            client->checked(check[i].s, set, (uint32_t)(unsigned short)revents);
    }
}

/* One poll over the checks' descriptors. A descriptor closed or reused since is harmless: the
 * socket is looked up by handle, and a check only ever raises what its socket's state allows. */
static void run_checks_now(struct wsp_event_set *set, struct wsp_event_check *c, int n) {
    if (n == 0)
        return;
    struct pollfd p[CHECKS];
    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN | POLLRDHUP};
    int rc;
    do
        rc = poll(p, (nfds_t)n, 0);
    while (rc < 0 && errno == EINTR);
    wsp_event_set_finish_checks(set, c, rc < 0 ? NULL : p, n);
}
