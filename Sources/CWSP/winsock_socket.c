/* The socket calls: picking a catalog entry for a new socket, then passing each call to the
 * provider that made the handle. The BSD-style calls are the WSA… ones with one buffer, as in
 * ws2_32. */
#include <stdbool.h>
#include <stdlib.h>

#include "winsock_internal.h"

/* ---- creating sockets ------------------------------------------------------------------ */

static int matches(int want, int have) { return want == 0 || want == have; }

/* The first entry for af/type/protocol, or the one a protocol info names; 0 or the error. */
static int choose_entry(int af, int type, int protocol, const WSAPROTOCOL_INFO *info,
                        struct winsock_entry *out) {
    int n, err = 0;
    struct winsock_entry *all = winsock_catalog_read(&n, &err);
    if (!all)
        return err;
    /* Without a match, the error names the first of family, type, protocol that no entry
     * offers, as Windows' does. */
    bool family_seen = false, type_seen = false;
    err = info ? WSAEINVAL : WSAEAFNOSUPPORT;
    for (int i = 0; i < n; i++) {
        const WSAPROTOCOL_INFO *e = &all[i].info;
        if (info) {
            if (e->dwCatalogEntryId != info->dwCatalogEntryId)
                continue;
        } else {
            if (!matches(af, e->iAddressFamily))
                continue;
            family_seen = true;
            if (type != e->iSocketType)
                continue;
            type_seen = true;
            if (!matches(protocol, e->iProtocol))
                continue;
        }
        *out = all[i];
        err = 0;
        break;
    }
    if (err && !info)
        err = !family_seen ? WSAEAFNOSUPPORT : !type_seen ? WSAESOCKTNOSUPPORT
                                                          : WSAEPROTONOSUPPORT;
    free(all);
    return err;
}

/* Records the route of a handle a provider just made; closes it again if that fails. */
static SOCKET routed(SOCKET s, struct winsock_route route) {
    int err = winsock_route_add(s, route);
    if (err) {
        int ignored = 0;
        route.provider->table.lpWSPCloseSocket(s, &ignored);
        winsock_fail(err);
        return INVALID_SOCKET;
    }
    return s;
}

SOCKET WSASocket(int af, int type, int protocol, LPWSAPROTOCOL_INFO lpProtocolInfo, GROUP g,
                 DWORD dwFlags) {
    int err = winsock_check_started();
    struct winsock_entry entry;
    if (!err && !lpProtocolInfo &&
        (af == FROM_PROTOCOL_INFO || type == FROM_PROTOCOL_INFO || protocol == FROM_PROTOCOL_INFO))
        err = WSAEINVAL;
    if (!err)
        err = choose_entry(af, type, protocol, lpProtocolInfo, &entry);
    if (err) {
        winsock_fail(err);
        return INVALID_SOCKET;
    }
    if (af == FROM_PROTOCOL_INFO)
        af = entry.info.iAddressFamily;
    if (type == FROM_PROTOCOL_INFO)
        type = entry.info.iSocketType;
    if (protocol == FROM_PROTOCOL_INFO)
        protocol = entry.info.iProtocol;
    SOCKET s = entry.provider->table.lpWSPSocket(af, type, protocol, &entry.info, g, dwFlags, &err);
    if (s == INVALID_SOCKET) {
        winsock_fail(err);
        return INVALID_SOCKET;
    }
    return routed(s, (struct winsock_route){entry.provider});
}

SOCKET ws2_socket(int af, int type, int protocol) {
    return WSASocket(af, type, protocol, NULL, 0, WSA_FLAG_OVERLAPPED);
}

/* ---- connections ----------------------------------------------------------------------- */

/* Each call below: find the route (or fail with its error), call the provider's member. */
#define ROUTE_OR_FAIL(s, r, failed)                                                        \
    struct winsock_route r;                                                                \
    do {                                                                                   \
        int route_err_ = winsock_route_call((s), &r);                                      \
        if (route_err_) {                                                                  \
            winsock_fail(route_err_);                                                      \
            return (failed);                                                               \
        }                                                                                  \
    } while (0)

/* A provider's int result: passed on, its error made the thread's last error. The error
 * comes by pointer so that it is read after the call that sets it (argument evaluation is
 * unordered). */
static int result(int rc, const int *err) { return rc == SOCKET_ERROR ? winsock_fail(*err) : rc; }

int ws2_bind(SOCKET s, const struct sockaddr *name, int namelen) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPBind(s, name, namelen, &err), &err);
}

int ws2_listen(SOCKET s, int backlog) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPListen(s, backlog, &err), &err);
}

SOCKET WSAAccept(SOCKET s, struct sockaddr *addr, LPINT addrlen, LPCONDITIONPROC lpfnCondition,
                 DWORD_PTR dwCallbackData) {
    ROUTE_OR_FAIL(s, r, INVALID_SOCKET);
    int err = 0;
    SOCKET c = r.provider->table.lpWSPAccept(s, addr, addrlen, lpfnCondition, dwCallbackData,
                                             &err);
    if (c == INVALID_SOCKET) {
        winsock_fail(err);
        return INVALID_SOCKET;
    }
    return routed(c, r); /* an accepted socket belongs to its listener's entry */
}

SOCKET ws2_accept(SOCKET s, struct sockaddr *addr, int *addrlen) {
    return WSAAccept(s, addr, addrlen, NULL, 0);
}

int WSAConnect(SOCKET s, const struct sockaddr *name, int namelen, LPWSABUF lpCallerData,
               LPWSABUF lpCalleeData, LPQOS lpSQOS, LPQOS lpGQOS) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPConnect(s, name, namelen, lpCallerData, lpCalleeData,
                                                 lpSQOS, lpGQOS, &err),
                  &err);
}

int ws2_connect(SOCKET s, const struct sockaddr *name, int namelen) {
    return WSAConnect(s, name, namelen, NULL, NULL, NULL, NULL);
}

int ws2_shutdown(SOCKET s, int how) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPShutdown(s, how, &err), &err);
}

int ws2_closesocket(SOCKET s) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    int rc = r.provider->table.lpWSPCloseSocket(s, &err);
    /* A close that would block (a non-blocking socket lingering) leaves the socket open. */
    if (rc == 0 || err == WSAENOTSOCK)
        winsock_route_remove(s);
    return result(rc, &err);
}

int WSASendDisconnect(SOCKET s, LPWSABUF lpOutboundDisconnectData) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPSendDisconnect(s, lpOutboundDisconnectData, &err), &err);
}

int WSARecvDisconnect(SOCKET s, LPWSABUF lpInboundDisconnectData) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPRecvDisconnect(s, lpInboundDisconnectData, &err), &err);
}

SOCKET WSAJoinLeaf(SOCKET s, const struct sockaddr *name, int namelen, LPWSABUF lpCallerData,
                   LPWSABUF lpCalleeData, LPQOS lpSQOS, LPQOS lpGQOS, DWORD dwFlags) {
    ROUTE_OR_FAIL(s, r, INVALID_SOCKET);
    int err = 0;
    SOCKET leaf = r.provider->table.lpWSPJoinLeaf(s, name, namelen, lpCallerData, lpCalleeData,
                                                  lpSQOS, lpGQOS, dwFlags, &err);
    if (leaf == INVALID_SOCKET) {
        winsock_fail(err);
        return INVALID_SOCKET;
    }
    return leaf == s ? s : routed(leaf, r);
}

int WSADuplicateSocket(SOCKET s, DWORD dwProcessId, LPWSAPROTOCOL_INFO lpProtocolInfo) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPDuplicateSocket(s, dwProcessId, lpProtocolInfo, &err),
                  &err);
}

/* ---- data ------------------------------------------------------------------------------ */

/* A thread id for calls with an OVERLAPPED, which ws2_32 passes so that a provider could
 * queue completion routines; WSP's refuses such calls before looking at it. */
static LPWSATHREADID thread_id_for(LPWSAOVERLAPPED ov, WSATHREADID *tid) {
    if (!ov)
        return NULL;
    tid->ThreadHandle = NULL;
    tid->Reserved = 0;
    return tid;
}

int WSASend(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount, LPDWORD lpNumberOfBytesSent,
            DWORD dwFlags, LPWSAOVERLAPPED lpOverlapped,
            LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    WSATHREADID tid;
    return result(r.provider->table.lpWSPSend(s, lpBuffers, dwBufferCount, lpNumberOfBytesSent,
                                              dwFlags, lpOverlapped, lpCompletionRoutine,
                                              thread_id_for(lpOverlapped, &tid), &err),
                  &err);
}

int WSARecv(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount, LPDWORD lpNumberOfBytesRecvd,
            LPDWORD lpFlags, LPWSAOVERLAPPED lpOverlapped,
            LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    WSATHREADID tid;
    return result(r.provider->table.lpWSPRecv(s, lpBuffers, dwBufferCount, lpNumberOfBytesRecvd,
                                              lpFlags, lpOverlapped, lpCompletionRoutine,
                                              thread_id_for(lpOverlapped, &tid), &err),
                  &err);
}

int WSASendTo(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount, LPDWORD lpNumberOfBytesSent,
              DWORD dwFlags, const struct sockaddr *lpTo, int iTolen,
              LPWSAOVERLAPPED lpOverlapped,
              LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    WSATHREADID tid;
    return result(r.provider->table.lpWSPSendTo(s, lpBuffers, dwBufferCount, lpNumberOfBytesSent,
                                                dwFlags, lpTo, iTolen, lpOverlapped,
                                                lpCompletionRoutine,
                                                thread_id_for(lpOverlapped, &tid), &err),
                  &err);
}

int WSARecvFrom(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount, LPDWORD lpNumberOfBytesRecvd,
                LPDWORD lpFlags, struct sockaddr *lpFrom, LPINT lpFromlen,
                LPWSAOVERLAPPED lpOverlapped,
                LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    WSATHREADID tid;
    return result(r.provider->table.lpWSPRecvFrom(s, lpBuffers, dwBufferCount,
                                                  lpNumberOfBytesRecvd, lpFlags, lpFrom,
                                                  lpFromlen, lpOverlapped, lpCompletionRoutine,
                                                  thread_id_for(lpOverlapped, &tid), &err),
                  &err);
}

BOOL WSAGetOverlappedResult(SOCKET s, LPWSAOVERLAPPED lpOverlapped, LPDWORD lpcbTransfer,
                            BOOL fWait, LPDWORD lpdwFlags) {
    ROUTE_OR_FAIL(s, r, FALSE);
    int err = 0;
    if (r.provider->table.lpWSPGetOverlappedResult(s, lpOverlapped, lpcbTransfer, fWait,
                                                   lpdwFlags, &err))
        return TRUE;
    winsock_fail(err);
    return FALSE;
}

/* One buffer of len bytes. A negative len goes to the provider as a length past INT_MAX,
 * which it refuses with WSAEFAULT: as in ws2_32, the handle is looked up first, so a bad
 * handle with a bad length is WSAENOTSOCK. */
static WSABUF one_buffer(const char *buf, int len) {
    return (WSABUF){.len = (uint32_t)len, .buf = (char *)buf};
}

int ws2_send(SOCKET s, const char *buf, int len, int flags) {
    WSABUF wb = one_buffer(buf, len);
    DWORD sent = 0;
    return WSASend(s, &wb, 1, &sent, (DWORD)flags, NULL, NULL) ? SOCKET_ERROR : (int)sent;
}

int ws2_sendto(SOCKET s, const char *buf, int len, int flags, const struct sockaddr *to,
               int tolen) {
    WSABUF wb = one_buffer(buf, len);
    DWORD sent = 0;
    return WSASendTo(s, &wb, 1, &sent, (DWORD)flags, to, tolen, NULL, NULL) ? SOCKET_ERROR
                                                                            : (int)sent;
}

int ws2_recv(SOCKET s, char *buf, int len, int flags) {
    WSABUF wb = one_buffer(buf, len);
    DWORD received = 0, f = (DWORD)flags;
    return WSARecv(s, &wb, 1, &received, &f, NULL, NULL) ? SOCKET_ERROR : (int)received;
}

int ws2_recvfrom(SOCKET s, char *buf, int len, int flags, struct sockaddr *from, int *fromlen) {
    WSABUF wb = one_buffer(buf, len);
    DWORD received = 0, f = (DWORD)flags;
    return WSARecvFrom(s, &wb, 1, &received, &f, from, fromlen, NULL, NULL) ? SOCKET_ERROR
                                                                            : (int)received;
}

/* ---- options, controls and names ------------------------------------------------------- */

int ws2_getsockopt(SOCKET s, int level, int optname, char *optval, int *optlen) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPGetSockOpt(s, level, optname, optval, optlen, &err),
                  &err);
}

int ws2_setsockopt(SOCKET s, int level, int optname, const char *optval, int optlen) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPSetSockOpt(s, level, optname, optval, optlen, &err),
                  &err);
}

int WSAIoctl(SOCKET s, DWORD dwIoControlCode, LPVOID lpvInBuffer, DWORD cbInBuffer,
             LPVOID lpvOutBuffer, DWORD cbOutBuffer, LPDWORD lpcbBytesReturned,
             LPWSAOVERLAPPED lpOverlapped,
             LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    WSATHREADID tid;
    return result(r.provider->table.lpWSPIoctl(s, dwIoControlCode, lpvInBuffer, cbInBuffer,
                                               lpvOutBuffer, cbOutBuffer, lpcbBytesReturned,
                                               lpOverlapped, lpCompletionRoutine,
                                               thread_id_for(lpOverlapped, &tid), &err),
                  &err);
}

/* The SPI's argument is a 32-bit u_long, as on Windows; this one is the program's
 * unsigned long, so the value travels through a DWORD both ways. */
int ws2_ioctlsocket(SOCKET s, long cmd, u_long *argp) {
    if (!argp)
        return winsock_fail(WSAEFAULT);
    DWORD v = (DWORD)*argp, returned = 0;
    int rc = WSAIoctl(s, (DWORD)cmd, &v, sizeof v, &v, sizeof v, &returned, NULL, NULL);
    if (rc == 0)
        *argp = v;
    return rc;
}

int ws2_getpeername(SOCKET s, struct sockaddr *name, int *namelen) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPGetPeerName(s, name, namelen, &err), &err);
}

int ws2_getsockname(SOCKET s, struct sockaddr *name, int *namelen) {
    ROUTE_OR_FAIL(s, r, SOCKET_ERROR);
    int err = 0;
    return result(r.provider->table.lpWSPGetSockName(s, name, namelen, &err), &err);
}

BOOL WSAGetQOSByName(SOCKET s, LPWSABUF lpQOSName, LPQOS lpQOS) {
    ROUTE_OR_FAIL(s, r, FALSE);
    int err = 0;
    if (r.provider->table.lpWSPGetQOSByName(s, lpQOSName, lpQOS, &err))
        return TRUE;
    winsock_fail(err);
    return FALSE;
}
