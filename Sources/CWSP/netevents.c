/* Network event notification: lpWSPEventSelect, lpWSPAsyncSelect, lpWSPEnumNetworkEvents and
 * lpWSPSelect. Not implemented yet: each member fails with WSAEOPNOTSUPP, and the hooks the
 * rest of the provider calls do nothing. */
#include "backlog.h"
#include "internal.h"

int wsp_event_select(SOCKET s, WSAEVENT ev, LONG events, LPINT lpErrno) {
    (void)s, (void)ev, (void)events;
    return wsp_fail(lpErrno, WSAEOPNOTSUPP);
}

int wsp_async_select(SOCKET s, HWND hwnd, UINT msg, LONG events, LPINT lpErrno) {
    (void)s, (void)hwnd, (void)msg, (void)events;
    return wsp_fail(lpErrno, WSAEOPNOTSUPP);
}

int wsp_enum_network_events(SOCKET s, WSAEVENT ev, LPWSANETWORKEVENTS out, LPINT lpErrno) {
    (void)s, (void)ev, (void)out;
    return wsp_fail(lpErrno, WSAEOPNOTSUPP);
}

int wsp_select(int nfds, WSPFD_SET *r, WSPFD_SET *w, WSPFD_SET *e, const struct timeval *timeout,
               LPINT lpErrno) {
    (void)nfds, (void)r, (void)w, (void)e, (void)timeout;
    return wsp_fail(lpErrno, WSAEOPNOTSUPP);
}

void wsp_netevents_reenable(struct wsp_socket *so, LONG mask) { (void)so, (void)mask; }
void wsp_netevents_inherit(struct wsp_socket *child, struct wsp_socket *parent) {
    (void)child, (void)parent;
}
void wsp_netevents_close(struct wsp_socket *so) { (void)so; }
void wsp_netevents_connected(struct wsp_socket *so, int error) { (void)so, (void)error; }
void wsp_listener_notify_accept(struct wsp_listener *l) { (void)l; }
int wsp_netevents_registered(const struct wsp_socket *so) { (void)so; return 0; }
