/* Held requests (CF_HOLD): WSP's extension functions WSPAcceptHold, WSPHeldAccept,
 * WSPHeldReject, WSPHeldRelease and WSPHeldNews (include/wsp.h), and their handles.
 *
 * A handle names a struct held in a table of its own. listener.c keeps the request itself
 * (in its held list, watched for its client leaving, sent pending notices, timed) and reports
 * a held request that ends unanswered through the link's hook; the handle then keeps the code
 * its answer will report, and sits in the listener's news until read or answered. Everything
 * about a held request is guarded by the listening socket's lock. Exactly one answer: the
 * answer that ends the hold retires the handle under that lock, and every later one finds it
 * retired or gone from the table. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backlog.h"

struct wsp_held {
    struct wsp_object obj;
    /* request: while held; so: the listener, with a reference of the handle's own */
    struct wsp_hold_link link;
    bool answered; /* retired: the handle is out of the table */
    int ended;    /* the WSA code of an end without an answer; 0 while it did not */
    struct wsp_held *news_prev, *news_next;
    bool in_news;
    /* Sets the listener's event after the reactor's item returns (the reactor may not make
     * upcalls under the socket's lock). */
    struct wsp_reactor_task task;
};

static struct wsp_object_table helds = WSP_OBJECT_TABLE_INIT(WSP_TAG_HELD);

static struct wsp_held *from_link(struct wsp_hold_link *link) {
    return (struct wsp_held *)((char *)link - offsetof(struct wsp_held, link));
}

static void held_destroy(struct wsp_object *obj) {
    struct wsp_held *h = (struct wsp_held *)obj;
    wsp_socket_release(h->link.so);
    free(h);
}

/* ---- the listener's news (so->held_news, newest first); so->lock held ------------------- */

/* A handle enters the news once (its one request ends once): news_prev is still calloc's NULL. */
static void news_add(struct wsp_socket *so, struct wsp_held *h) {
    h->news_next = so->held_news;
    if (so->held_news)
        so->held_news->news_prev = h;
    so->held_news = h;
    h->in_news = 1;
}

static void news_remove(struct wsp_socket *so, struct wsp_held *h) {
    if (h->news_prev)
        h->news_prev->news_next = h->news_next;
    else
        so->held_news = h->news_next;
    if (h->news_next)
        h->news_next->news_prev = h->news_prev;
    h->in_news = 0; /* its links are read only while in_news */
}

static void set_event(WSAEVENT ev) {
    int e; /* written only by a failure, which leaves nothing here to do */
    if (ev)
        wsp_upcalls()->lpWPUSetEvent(ev, &e);
}

static void event_task(struct wsp_reactor_task *task) {
    struct wsp_held *h = (struct wsp_held *)((char *)task - offsetof(struct wsp_held, task));
    struct wsp_socket *so = h->link.so;
    pthread_mutex_lock(&so->lock);
    WSAEVENT ev = so->held_event;
    pthread_mutex_unlock(&so->lock);
    set_event(ev);
    wsp_object_release(&h->obj);
}

/* listener.c's hook, so->lock held: the held request ended unanswered. */
static void held_ended(struct wsp_hold_link *link, struct wsp_socket *so, int code) {
    struct wsp_held *h = from_link(link);
    h->ended = code;
    news_add(so, h);
    if (!so->held_event)
        return;
    if (wsp_reactor_is_current()) {
        wsp_object_retain(&h->obj); /* the task's */
        wsp_reactor_after(&h->task);
    } else {
        set_event(so->held_event); /* lpWSPCloseSocket's thread: the usual order (level 2) */
    }
}

/* ---- handles -------------------------------------------------------------------------------- */

/* The held request hh names, with its listener's lock taken and a reference for the caller;
 * end with put. NULL and WSA_INVALID_HANDLE for a handle never issued, not yet holding a
 * request, or retired. */
static struct wsp_held *lookup(WSPHELD hh, int *err) {
    struct wsp_object *obj = hh ? wsp_table_get(&helds, hh) : NULL;
    if (!obj) {
        *err = WSA_INVALID_HANDLE;
        return NULL;
    }
    struct wsp_held *h = (struct wsp_held *)obj;
    pthread_mutex_lock(&h->link.so->lock);
    if (h->answered || (!h->link.request && !h->ended)) {
        pthread_mutex_unlock(&h->link.so->lock);
        wsp_object_release(obj);
        *err = WSA_INVALID_HANDLE;
        return NULL;
    }
    return h;
}

/* Unlocks, and gives the listener's drop handler the requests the answer ended on the
 * application's behalf (a WSPHeldAccept whose callee data the client cannot take), as
 * lpWSPAccept does, while h's reference still keeps the socket. */
static void put(struct wsp_held *h) {
    struct wsp_socket *so = h->link.so;
    struct wsp_drop_notice *notices = wsp_listener_take_notices(so->listener);
    pthread_mutex_unlock(&so->lock);
    if (notices)
        wsp_listener_deliver_notices(so, notices);
    wsp_object_release(&h->obj); /* may free h once retired */
}

/* so->lock held. The answer that ends the hold: no other answer reaches h after this. */
static void retire(struct wsp_held *h) {
    h->answered = 1;
    if (h->in_news)
        news_remove(h->link.so, h);
    struct wsp_object *obj = wsp_table_remove(&helds, h->obj.handle);
    if (obj)
        wsp_object_release(obj); /* the table's; the caller's keeps h until put */
}

/* so->lock held. For an answer to a request that already ended: why, and the handle is
 * retired. 0 while the request is still held. */
static int ended_code(struct wsp_held *h) {
    if (h->link.request)
        return 0;
    retire(h);
    return h->ended;
}

/* ---- the extension functions ----------------------------------------------------------------- */

static int accept_hold(SOCKET s, struct sockaddr *addr, LPINT addrlen, LPCONDITIONPROC cond,
                       DWORD_PTR ctx, SOCKET *accepted, WSPHELD *held, LPINT lpErrno) {
    if (!accepted || !held)
        return wsp_fail(lpErrno, WSAEFAULT);
    *accepted = INVALID_SOCKET;
    *held = 0;
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    /* The handle exists before the request is held: listener.c may list it in the news as
     * soon as the accept lets go of the lock. */
    struct wsp_held *h = calloc(1, sizeof *h);
    if (!h) {
        wsp_socket_release(so);
        return wsp_fail(lpErrno, WSAENOBUFS);
    }
    wsp_object_init(&h->obj, held_destroy);
    h->link.ended = held_ended;
    h->link.so = so; /* the acquire's reference becomes the handle's */
    h->task.run = event_task;
    uintptr_t handle = wsp_table_add(&helds, &h->obj);
    if (!handle) {
        held_destroy(&h->obj);
        return wsp_fail(lpErrno, WSAENOBUFS);
    }
    SOCKET sock = wsp_accept_or_hold(s, addr, addrlen, cond, ctx, &h->link, &err);
    if (sock == INVALID_SOCKET && err == WSA_IO_PENDING) {
        *held = handle;
        return 0;
    }
    struct wsp_object *obj = wsp_table_remove(&helds, handle); /* not needed after all */
    if (obj)
        wsp_object_release(obj);
    if (sock == INVALID_SOCKET)
        return wsp_fail(lpErrno, err);
    *accepted = sock;
    return 0;
}

static int held_accept(WSPHELD hh, LPWSABUF callee, LPQOS qos, SOCKET *accepted,
                       LPINT lpErrno) {
    if (!accepted)
        return wsp_fail(lpErrno, WSAEFAULT);
    *accepted = INVALID_SOCKET;
    int err = 0;
    struct wsp_held *h = lookup(hh, &err);
    if (!h)
        return wsp_fail(lpErrno, err);
    err = ended_code(h);
    if (!err) {
        int ended = 0;
        *accepted = wsp_accept_held(h->link.so, h->link.request, callee, qos, &ended, &err);
        if (ended)
            retire(h);
    }
    put(h);
    return *accepted != INVALID_SOCKET ? 0 : wsp_fail(lpErrno, err);
}

static int held_reject(WSPHELD hh, DWORD reason, LPINT lpErrno) {
    if (reason == WSP_REASON_NONE)
        reason = WSP_REASON_REJECTED;
    int err = 0;
    struct wsp_held *h = lookup(hh, &err);
    if (!h)
        return wsp_fail(lpErrno, err);
    err = ended_code(h);
    if (!err && reason > WSP_REASON_HOLD_TIMEOUT)
        err = WSAEINVAL; /* the application's mistake: still held */
    if (!err) {
        wsp_held_reject(h->link.so->listener, h->link.request, (int)reason);
        retire(h);
    }
    put(h);
    return err ? wsp_fail(lpErrno, err) : 0;
}

static int held_release(WSPHELD hh, LPINT lpErrno) {
    int err = 0;
    struct wsp_held *h = lookup(hh, &err);
    if (!h)
        return wsp_fail(lpErrno, err);
    err = ended_code(h);
    if (!err) {
        wsp_held_release(h->link.so->listener, h->link.request);
        retire(h);
    }
    put(h);
    return err ? wsp_fail(lpErrno, err) : 0;
}

static int held_news(SOCKET s, WSPHELD *out, DWORD count, LPDWORD returned, LPINT lpErrno) {
    if (!returned || (count > 0 && !out))
        return wsp_fail(lpErrno, WSAEFAULT);
    *returned = 0;
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    pthread_mutex_lock(&so->lock);
    int listening = so->listener != NULL;
    if (listening) {
        DWORD n = 0;
        while (n < count && so->held_news) {
            struct wsp_held *h = so->held_news;
            out[n++] = h->obj.handle;
            news_remove(so, h);
        }
        *returned = n;
    }
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    return listening ? 0 : wsp_fail(lpErrno, WSAEINVAL);
}

void wsp_held_close_all(void) {
    uintptr_t batch[64];
    int n;
    while ((n = wsp_table_handles(&helds, batch, 64)) > 0) {
        for (int i = 0; i < n; i++) {
            struct wsp_object *obj = wsp_table_get(&helds, batch[i]);
            if (!obj)
                continue;
            struct wsp_held *h = (struct wsp_held *)obj;
            pthread_mutex_lock(&h->link.so->lock);
            if (!h->answered)
                retire(h);
            /* put's notices come from answers only; and a handle whose WSPAcceptHold has
             * not yet found its socket listening has no listener */
            pthread_mutex_unlock(&h->link.so->lock);
            wsp_object_release(obj);
        }
    }
}

/* ---- SIO_GET_EXTENSION_FUNCTION_POINTER -------------------------------------------------- */

static const struct {
    GUID id;
    wsp_extension_fn fn;
} extensions[] = {
    {WSPID_ACCEPTHOLD, (wsp_extension_fn)accept_hold},
    {WSPID_HELDACCEPT, (wsp_extension_fn)held_accept},
    {WSPID_HELDREJECT, (wsp_extension_fn)held_reject},
    {WSPID_HELDRELEASE, (wsp_extension_fn)held_release},
    {WSPID_HELDNEWS, (wsp_extension_fn)held_news},
    {{0}, NULL}, /* the end: the loop below stops there, and answers its NULL */
};

wsp_extension_fn wsp_extension_function(const GUID *id) {
    size_t i = 0;
    while (extensions[i].fn && memcmp(&extensions[i].id, id, sizeof *id) != 0)
        i++;
    return extensions[i].fn; /* NULL at the end: an unknown GUID */
}
