/* Event objects; wsp/event.h is the contract.
 *
 * An event is a flag under its own mutex plus an eventfd that mirrors the flag for poll loops
 * (waitable.h), and the epoll set of the sockets registered on it (event_set.h). A wait for
 * any one event sleeps in poll on the events' descriptors and sets (wait_any); when a set
 * turns readable, the waiting thread records the network events itself, which signals the
 * event, without the reactor relaying them. A wait for all of them cannot poll: an event
 * already signalled has a readable descriptor from the start, so polling it would spin, and
 * leaving it out would miss its close. So a wait-all enlists on every event it waits for and
 * sleeps on its own condition variable, WSASetEvent and WSACloseEvent wake the enlisted
 * waiters, and the reactor watches the events' sets meanwhile.
 *
 * The eventfd is written only when someone may be polling it: a thread waiting for the event
 * other than the one setting it, or anyone at all once WSAEventFd has handed it out. A wait
 * that finds its own set ready and signals the event itself saves the write and the read
 * that resets it.
 *
 * Lock order: events by ascending address, then a waiter's lock. A waiter never holds its
 * own lock while taking an event's.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "event_set.h"
#include "internal.h"
#include "object_table.h"
#include "waitable.h"
#include "wsp.h"

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool woken;
};

/* Enlists one waiter on one event. */
struct wait_link {
    struct waiter *waiter;
    struct wait_link *prev, *next;
};

struct event {
    struct wsp_object obj;
    pthread_mutex_t lock;
    bool signalled;
    bool closed; /* a thread that took its reference before the close may still hold it */
    int fd;
    bool fd_raised; /* fd's counter is 1 */
    bool exported;  /* WSAEventFd handed fd out: it mirrors the flag from now on */
    int pollers;    /* wait-any calls polling fd */
    struct wait_link *waiters;
    struct wsp_event_set *set;
};

static struct wsp_object_table events = WSP_OBJECT_TABLE_INIT(WSP_TAG_EVENT);
/* The event whose set this thread is pumping inside its own wait for it. */
static _Thread_local const struct event *pumping;

static void destroy_event(struct wsp_object *obj) {
    struct event *ev = (struct event *)obj;
    if (ev->exported) /* no one can observe the event any more */
        wsp_event_set_reactor_watch(ev->set, false);
    wsp_event_set_release(ev->set); /* registered sockets may keep it a while */
    close(ev->fd);
    pthread_mutex_destroy(&ev->lock);
    free(ev);
}

static struct event *acquire(WSAEVENT h) {
    struct wsp_object *obj = wsp_table_get(&events, (uintptr_t)h);
    if (obj == NULL)
        WSASetLastError(WSA_INVALID_HANDLE);
    return (struct event *)obj;
}

static void release(struct event *ev) {
    wsp_object_release(&ev->obj);
}

/* Caller holds ev->lock. */
static void raise_fd(struct event *ev) {
    if (!ev->fd_raised) {
        wsp_readiness_fd_raise(ev->fd);
        ev->fd_raised = true;
    }
}

/* Caller holds ev->lock. */
static void wake_waiters(struct event *ev) {
    for (struct wait_link *l = ev->waiters; l; l = l->next) {
        pthread_mutex_lock(&l->waiter->lock);
        l->waiter->woken = true;
        pthread_cond_signal(&l->waiter->cond);
        pthread_mutex_unlock(&l->waiter->lock);
    }
}

WSAEVENT WSACreateEvent(void) {
    struct event *ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        WSASetLastError(WSA_NOT_ENOUGH_MEMORY);
        return WSA_INVALID_EVENT;
    }
    int err = 0;
    ev->fd = wsp_readiness_fd_open();
    if (ev->fd < 0) {
        WSASetLastError(wsp_wsa_resource_error(errno));
        free(ev);
        return WSA_INVALID_EVENT;
    }
    ev->set = wsp_event_set_new(&err);
    if (!ev->set) {
        close(ev->fd);
        WSASetLastError(err);
        free(ev);
        return WSA_INVALID_EVENT;
    }
    pthread_mutex_init(&ev->lock, NULL);
    wsp_object_init(&ev->obj, destroy_event);
    uintptr_t h = wsp_table_add(&events, &ev->obj);
    if (h != 0)
        return (WSAEVENT)h;
    destroy_event(&ev->obj);
    WSASetLastError(WSA_NOT_ENOUGH_MEMORY);
    return WSA_INVALID_EVENT;
}

static BOOL set_state(WSAEVENT hEvent, bool signalled) {
    struct event *ev = acquire(hEvent);
    if (ev == NULL)
        return FALSE;
    pthread_mutex_lock(&ev->lock);
    bool open = !ev->closed;
    if (open && ev->signalled != signalled) {
        ev->signalled = signalled;
        if (signalled) {
            if (ev->exported || ev->pollers > (pumping == ev ? 1 : 0))
                raise_fd(ev);
            wake_waiters(ev);
        } else if (ev->fd_raised) {
            wsp_readiness_fd_lower(ev->fd);
            ev->fd_raised = false;
        }
    }
    pthread_mutex_unlock(&ev->lock);
    release(ev);
    if (!open)
        WSASetLastError(WSA_INVALID_HANDLE);
    return open;
}

BOOL WSASetEvent(WSAEVENT hEvent) {
    return set_state(hEvent, true);
}

BOOL WSAResetEvent(WSAEVENT hEvent) {
    return set_state(hEvent, false);
}

BOOL WSACloseEvent(WSAEVENT hEvent) {
    struct wsp_object *obj = wsp_table_remove(&events, (uintptr_t)hEvent);
    if (obj == NULL) {
        WSASetLastError(WSA_INVALID_HANDLE);
        return FALSE;
    }
    struct event *ev = (struct event *)obj;
    pthread_mutex_lock(&ev->lock);
    ev->closed = true;
    /* Also wakes an application's poll loop, which then learns the handle is gone. */
    raise_fd(ev);
    wake_waiters(ev);
    pthread_mutex_unlock(&ev->lock);
    release(ev);
    return TRUE;
}

int WSAEventFd(WSAEVENT hEvent) {
    struct event *ev = acquire(hEvent);
    if (ev == NULL)
        return -1;
    pthread_mutex_lock(&ev->lock);
    /* From now on the event is watched from outside WSP: its descriptor must follow the flag,
     * and its sockets' readiness must be relayed without anyone waiting in WSP. */
    bool first = !ev->exported;
    ev->exported = true;
    if (ev->signalled)
        raise_fd(ev);
    int fd = ev->fd;
    pthread_mutex_unlock(&ev->lock);
    if (first) /* not under the lock: it may record network events, which set the event */
        wsp_event_set_reactor_watch(ev->set, true);
    release(ev);
    return fd;
}

int wsp_event_is_open(WSAEVENT hEvent) {
    struct wsp_object *obj = wsp_table_get(&events, (uintptr_t)hEvent);
    if (obj)
        wsp_object_release(obj);
    return obj != NULL;
}

struct wsp_event_set *wsp_event_watch_set(WSAEVENT hEvent) {
    struct event *ev = acquire(hEvent);
    if (ev == NULL)
        return NULL;
    wsp_event_set_retain(ev->set);
    struct wsp_event_set *set = ev->set;
    release(ev);
    return set;
}

/* ---------------------------------------------------------------------------------------- */
/* Waiting                                                                                  */

/* What check() says while the wait is not satisfied: once time is up, that is the answer. */
#define NOT_YET WSA_WAIT_TIMEOUT

/* Caller holds every event's lock, so a wait-all sees one moment. */
static DWORD check(struct event *const ev[], DWORD n, BOOL wait_all) {
    DWORD first = n, count = 0;
    for (DWORD i = 0; i < n; i++) {
        if (ev[i]->closed)
            return WSA_WAIT_FAILED;
        if (ev[i]->signalled && count++ == 0)
            first = i;
    }
    if (wait_all ? count == n : count > 0)
        return WSA_WAIT_EVENT_0 + first;
    return NOT_YET;
}

/* The distinct events of ev[], by ascending address: the order locks are taken in, and
 * locking an event twice would deadlock. */
static DWORD lock_order(struct event *const ev[], DWORD n, struct event *out[]) {
    DWORD m = 0;
    for (DWORD i = 0; i < n; i++) {
        DWORD j = m;
        while (j > 0 && (uintptr_t)out[j - 1] > (uintptr_t)ev[i])
            j--;
        if (j > 0 && out[j - 1] == ev[i])
            continue;
        memmove(&out[j + 1], &out[j], (m - j) * sizeof *out);
        out[j] = ev[i];
        m++;
    }
    return m;
}

static void lock_all(struct event *const ev[], DWORD n) {
    for (DWORD i = 0; i < n; i++)
        pthread_mutex_lock(&ev[i]->lock);
}

static void unlock_all(struct event *const ev[], DWORD n) {
    for (DWORD i = n; i-- > 0;)
        pthread_mutex_unlock(&ev[i]->lock);
}

static void release_all(struct event *const ev[], DWORD n) {
    for (DWORD i = 0; i < n; i++)
        release(ev[i]);
}

/* Caller holds ev[i]->lock. */
static void enlist(struct waiter *w, struct wait_link links[], struct event *const ev[],
                   DWORD n) {
    for (DWORD i = 0; i < n; i++) {
        links[i] = (struct wait_link){w, NULL, ev[i]->waiters};
        if (ev[i]->waiters)
            ev[i]->waiters->prev = &links[i];
        ev[i]->waiters = &links[i];
    }
}

static void delist(struct wait_link links[], struct event *const ev[], DWORD n) {
    for (DWORD i = 0; i < n; i++) {
        pthread_mutex_lock(&ev[i]->lock);
        if (links[i].prev)
            links[i].prev->next = links[i].next;
        else
            ev[i]->waiters = links[i].next;
        if (links[i].next)
            links[i].next->prev = links[i].prev;
        pthread_mutex_unlock(&ev[i]->lock);
    }
}

/* Counts (delta 1) or uncounts (-1) the calling wait-any as a poller of each event. */
static void count_pollers(struct event *const order[], DWORD distinct, int delta) {
    lock_all(order, distinct);
    for (DWORD i = 0; i < distinct; i++)
        order[i]->pollers += delta;
    unlock_all(order, distinct);
}

/* The sets' pending checks (event_set.h) this wait looks at, with their events' indexes. */
#define WAIT_CHECKS 16

struct checks {
    struct wsp_event_check c[WAIT_CHECKS];
    DWORD owner[WAIT_CHECKS]; /* index into order[] */
    int n;
};

static void take_checks(struct checks *k, struct event *const order[], DWORD distinct) {
    k->n = 0;
    for (DWORD i = 0; i < distinct; i++) {
        int got = wsp_event_set_take_checks(order[i]->set, k->c + k->n, WAIT_CHECKS - k->n);
        for (int j = 0; j < got; j++)
            k->owner[k->n + j] = i;
        k->n += got;
    }
}

/* After a poll: records what the sets and the checks found (checked NULL: the poll failed,
 * and the checks' sockets look themselves), signalling the events. A pump comes before the
 * checks it could make moot. */
static void take_readiness(struct event *const order[], DWORD distinct, const struct pollfd *sets,
                           const struct checks *k, const struct pollfd *checked) {
    for (DWORD i = 0; i < distinct; i++) {
        if (sets[i].revents) {
            pumping = order[i];
            wsp_event_set_pump(order[i]->set);
        }
    }
    for (int j = 0; j < k->n; j++) {
        const struct pollfd *polled = checked ? &checked[j] : NULL;
        pumping = order[k->owner[j]];
        wsp_event_set_finish_checks(order[k->owner[j]]->set, &k->c[j], polled, 1);
    }
    pumping = NULL;
}

/* Wait-any sleeps in poll on the events' descriptors, readable while an event is signalled
 * (or closed), on their sets, readable while a registered socket has readiness nobody took,
 * and on the sockets the sets hold checks for: a set wakes it with one eventfd write, a
 * socket wakes it directly, and the waiter never contends with a setter for a lock or a
 * condition variable (on a busy CPU that costs several context switches per wake-up). The
 * flags, checked under the locks, stay the truth. A wait-all with a time-out of 0 takes this
 * way too: one look, with no sleep to enlist for nor to have the sets watched during. */
static DWORD wait_any(struct event *const ev[], DWORD n, struct event *const order[],
                      DWORD distinct, DWORD timeout, BOOL wait_all) {
    struct pollfd p[2 * WSA_MAXIMUM_WAIT_EVENTS + WAIT_CHECKS];
    struct pollfd *sets = p + n, *checked = p + n + distinct;
    for (DWORD i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = ev[i]->fd, .events = POLLIN};
    for (DWORD i = 0; i < distinct; i++)
        sets[i] = (struct pollfd){.fd = wsp_event_set_fd(order[i]->set), .events = POLLIN};
    struct checks k;
    uint64_t deadline = wsp_deadline_wsa(timeout);
    count_pollers(order, distinct, 1);
    DWORD result;
    bool last_look = false;
    for (;;) {
        lock_all(order, distinct);
        result = check(ev, n, wait_all);
        unlock_all(order, distinct);
        if (result != NOT_YET || last_look)
            break;
        int t = wsp_ms_left(deadline);
        take_checks(&k, order, distinct);
        for (int j = 0; j < k.n; j++)
            checked[j] = (struct pollfd){.fd = k.c[j].fd, .events = POLLIN | POLLRDHUP};
        int ready = poll(p, n + distinct + (DWORD)k.n, t);
        /* Interrupted (ready < 0), the checks cannot tell: NULL has their sockets look. */
        if (ready != 0)
            take_readiness(order, distinct, sets, &k, ready < 0 ? NULL : checked);
        if (t == 0 || ready == 0)
            last_look = true; /* then the time-out is the answer */
    }
    count_pollers(order, distinct, -1);
    return result;
}

/* A wait-all sleeps without polling the sets: it pumps them once, then has the reactor watch
 * them until it returns. */
static void watch_sets(struct event *const order[], DWORD distinct, bool on) {
    for (DWORD i = 0; i < distinct; i++) {
        if (on)
            wsp_event_set_pump(order[i]->set);
        wsp_event_set_reactor_watch(order[i]->set, on);
    }
}

/* False once the deadline passed without a wake-up. */
static bool sleep_until_woken(struct waiter *w, uint64_t deadline) {
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (!w->woken && rc != ETIMEDOUT)
        rc = wsp_cond_wait_until(&w->cond, &w->lock, deadline);
    bool woken = w->woken;
    w->woken = false;
    pthread_mutex_unlock(&w->lock);
    return woken;
}

static DWORD wait_events(DWORD cEvents, const WSAEVENT *lphEvents, BOOL fWaitAll,
                         DWORD dwTimeout) {
    if (cEvents == 0 || cEvents > WSA_MAXIMUM_WAIT_EVENTS || lphEvents == NULL) {
        WSASetLastError(WSA_INVALID_PARAMETER);
        return WSA_WAIT_FAILED;
    }
    struct event *ev[WSA_MAXIMUM_WAIT_EVENTS];
    for (DWORD i = 0; i < cEvents; i++) {
        ev[i] = acquire(lphEvents[i]);
        if (ev[i] == NULL) {
            release_all(ev, i);
            return WSA_WAIT_FAILED;
        }
    }
    struct event *order[WSA_MAXIMUM_WAIT_EVENTS];
    DWORD distinct = lock_order(ev, cEvents, order);
    if (!fWaitAll || dwTimeout == 0) {
        DWORD result = wait_any(ev, cEvents, order, distinct, dwTimeout, fWaitAll);
        release_all(ev, cEvents);
        if (result == WSA_WAIT_FAILED)
            WSASetLastError(WSA_INVALID_HANDLE);
        return result;
    }

    struct waiter w = {.woken = false};
    struct wait_link links[WSA_MAXIMUM_WAIT_EVENTS];
    int err = wsp_cond_init_monotonic(&w.cond);
    if (err) {
        release_all(ev, cEvents);
        WSASetLastError(err);
        return WSA_WAIT_FAILED;
    }
    pthread_mutex_init(&w.lock, NULL);
    uint64_t deadline = wsp_deadline_wsa(dwTimeout);
    watch_sets(order, distinct, true);

    /* Enlisted before the first check: a set after it wakes the waiter, one before it the
     * check sees. */
    lock_all(order, distinct);
    enlist(&w, links, order, distinct);
    unlock_all(order, distinct);
    DWORD result;
    for (;;) {
        lock_all(order, distinct);
        result = check(ev, cEvents, TRUE);
        unlock_all(order, distinct);
        if (result != NOT_YET || !sleep_until_woken(&w, deadline))
            break;
    }

    watch_sets(order, distinct, false);
    delist(links, order, distinct);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    release_all(ev, cEvents);
    if (result == WSA_WAIT_FAILED)
        WSASetLastError(WSA_INVALID_HANDLE);
    return result;
}

/* The event thread never waits (wsp.h): there a time-out that would have to wait fails. */
DWORD WSAWaitForMultipleEvents(DWORD cEvents, const WSAEVENT *lphEvents, BOOL fWaitAll,
                               DWORD dwTimeout, BOOL fAlertable) {
    (void)fAlertable;
    if (dwTimeout == 0 || !wsp_reactor_is_current())
        return wait_events(cEvents, lphEvents, fWaitAll, dwTimeout);
    DWORD result = wait_events(cEvents, lphEvents, fWaitAll, 0);
    if (result != WSA_WAIT_TIMEOUT)
        return result;
    WSASetLastError(WSAEWOULDBLOCK);
    return WSA_WAIT_FAILED;
}
