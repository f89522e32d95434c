/* The members that register a socket for network events and read its record:
 * lpWSPEventSelect, lpWSPAsyncSelect and lpWSPEnumNetworkEvents (docs/SEMANTICS.md §8). They
 * check their arguments here; netevents.c keeps the registration and raises the events. */
#include "netevents.h"

/* Whether ev can be signalled: with the built-in upcalls it must be an open WSP event object;
 * an application's own lpWPUSetEvent owns its handles, which WSP cannot check. */
static int event_is_open(WSAEVENT ev) {
    return !wsp_upcalls_builtin_events() || wsp_event_is_open(ev);
}

/* The body of lpWSPEventSelect and lpWSPAsyncSelect. */
static int do_register(SOCKET s, int kind, WSAEVENT ev, HWND hwnd, UINT msg, LONG events,
                       LPINT lpErrno) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    events &= FD_ALL_EVENTS;
    pthread_mutex_lock(&so->lock);
    if (so->closing)
        err = WSAENOTSOCK;
    else if (events && (kind == WSP_REGISTERED_EVENT ? ev == NULL : hwnd == NULL))
        err = WSAEINVAL;
    else if (events && kind == WSP_REGISTERED_EVENT && !event_is_open(ev))
        err = WSAEINVAL; /* nothing could ever signal it */
    if (!err)
        err = wsp_netevents_register(so, kind, ev, hwnd, msg, events);
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}

int wsp_event_select(SOCKET s, WSAEVENT ev, LONG events, LPINT lpErrno) {
    return do_register(s, WSP_REGISTERED_EVENT, ev, NULL, 0, events, lpErrno);
}

int wsp_async_select(SOCKET s, HWND hwnd, UINT msg, LONG events, LPINT lpErrno) {
    return do_register(s, WSP_REGISTERED_ASYNC, NULL, hwnd, msg, events, lpErrno);
}

int wsp_enum_network_events(SOCKET s, WSAEVENT ev, LPWSANETWORKEVENTS out, LPINT lpErrno) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (!so)
        return wsp_fail(lpErrno, err);
    if (!out) {
        wsp_socket_release(so);
        return wsp_fail(lpErrno, WSAEFAULT);
    }
    pthread_mutex_lock(&so->lock);
    wsp_netevents_catch_up(so); /* readiness no wait has taken yet is recorded first */
    /* Reset first: a handle that is not an event fails the call and leaves the record. */
    if (ev && !wsp_upcalls()->lpWPUResetEvent(ev, &err))
        err = WSAEINVAL; /* Winsock's code for a bad hEventObject */
    else
        err = 0;
    if (!err)
        wsp_netevents_take_record(so, out);
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    return err ? wsp_fail(lpErrno, err) : 0;
}
