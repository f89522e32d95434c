/* Network events for programs: WSAEventSelect, WSAEnumNetworkEvents and WSAAsyncSelect go to
 * the socket's provider. The event objects themselves (WSACreateEvent…) and message queues
 * are WSP's exported functions (wsp/event.h), shared with the SPI. */
#include "winsock_internal.h"

static int route_or_error(SOCKET s, struct winsock_route *r) {
    int err = winsock_route_call(s, r);
    return err ? winsock_fail(err) : 0;
}

int WSAEventSelect(SOCKET s, WSAEVENT hEventObject, long lNetworkEvents) {
    struct winsock_route r;
    if (route_or_error(s, &r))
        return SOCKET_ERROR;
    int err = 0;
    if (r.provider->table.lpWSPEventSelect(s, hEventObject, (LONG)lNetworkEvents, &err) != 0)
        return winsock_fail(err);
    return 0;
}

int WSAEnumNetworkEvents(SOCKET s, WSAEVENT hEventObject, LPWSANETWORKEVENTS lpNetworkEvents) {
    struct winsock_route r;
    if (route_or_error(s, &r))
        return SOCKET_ERROR;
    int err = 0;
    if (r.provider->table.lpWSPEnumNetworkEvents(s, hEventObject, lpNetworkEvents, &err) != 0)
        return winsock_fail(err);
    return 0;
}

int WSAAsyncSelect(SOCKET s, HWND hWnd, u_int wMsg, long lEvent) {
    struct winsock_route r;
    if (route_or_error(s, &r))
        return SOCKET_ERROR;
    int err = 0;
    if (r.provider->table.lpWSPAsyncSelect(s, hWnd, wMsg, (LONG)lEvent, &err) != 0)
        return winsock_fail(err);
    return 0;
}
