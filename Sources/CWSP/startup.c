/* WSPStartup and lpWSPCleanup: version negotiation, the start-up count and the upcall table
 * (kept in process.c), and the table of members handed to the application. The top of the
 * provider (docs/ARCHITECTURE.md): the one file that wires the layers together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "upcalls.h"

#define WSP_LOWEST_VERSION MAKEWORD(2, 0)
#define WSP_HIGHEST_VERSION MAKEWORD(2, 2)

/* Guards the process state's start-up count and upcall tables (process.c) together with
 * starting and stopping the reactor. */
static pthread_mutex_t startup_lock = PTHREAD_MUTEX_INITIALIZER;

/* Winsock compares versions major first: the low byte is the major version. */
static unsigned version_order(WORD v) { return ((unsigned)LOBYTE(v) << 8) | HIBYTE(v); }

static int close_one(SOCKET s) { return wsp_close_socket(s, NULL); }

static int wsp_cleanup(LPINT lpErrno) {
    pthread_mutex_lock(&startup_lock);
    int count = wsp_startup_count();
    if (count == 0) {
        pthread_mutex_unlock(&startup_lock);
        return wsp_fail(lpErrno, WSANOTINITIALISED);
    }
    /* The last cleanup closes the sockets and stops the reactor under the lock: a start-up
     * racing it must not see its "started" flag cleared afterwards. One that comes before the
     * thread has exited revives it (reactor.c). */
    if (count == 1) {
        /* Sockets the application left open would otherwise keep their descriptors (and
         * the reactor's registrations) for the life of the process; WSACleanup closes them
         * too. */
        wsp_socket_close_all(close_one);
    }
    wsp_set_startup_count(count - 1);
    if (count == 1)
        wsp_reactor_stop();
    pthread_mutex_unlock(&startup_lock);
    if (count > 1)
        return 0;
    /* Waited for without the lock: the thread exits only once its current job returns, and
     * that job (WSPRunOnEventThread) may be starting the provider again. */
    wsp_reactor_wait_stopped();
    pthread_mutex_lock(&startup_lock);
    if (wsp_startup_count() == 0) { /* no start-up came meanwhile, which would use them */
        wsp_held_close_all(); /* after the reactor: none of its tasks holds a handle now */
        wsp_free_retired_upcalls();
    }
    pthread_mutex_unlock(&startup_lock);
    return 0;
}

/* Members whose behaviour WSP does not offer (see the README's table). */
static int no_cancel_blocking_call(LPINT lpErrno) { return wsp_fail(lpErrno, WSAEOPNOTSUPP); }
static int no_duplicate_socket(SOCKET s, DWORD pid, LPWSAPROTOCOL_INFO info, LPINT lpErrno) {
    (void)s, (void)pid, (void)info;
    return wsp_fail(lpErrno, WSAEOPNOTSUPP);
}
static BOOL no_get_overlapped_result(SOCKET s, LPWSAOVERLAPPED ov, LPDWORD n, BOOL wait,
                                     LPDWORD flags, LPINT lpErrno) {
    (void)s, (void)ov, (void)n, (void)wait, (void)flags;
    wsp_fail(lpErrno, WSAEOPNOTSUPP);
    return FALSE;
}
static BOOL no_get_qos_by_name(SOCKET s, LPWSABUF name, LPQOS qos, LPINT lpErrno) {
    (void)s, (void)name, (void)qos;
    wsp_fail(lpErrno, WSAEOPNOTSUPP);
    return FALSE;
}
static SOCKET no_join_leaf(SOCKET s, const struct sockaddr *name, int namelen, LPWSABUF caller,
                           LPWSABUF callee, LPQOS sqos, LPQOS gqos, DWORD flags, LPINT lpErrno) {
    (void)s, (void)name, (void)namelen, (void)caller, (void)callee, (void)sqos, (void)gqos,
        (void)flags;
    wsp_fail(lpErrno, WSAEOPNOTSUPP);
    return INVALID_SOCKET;
}
static int no_recv_disconnect(SOCKET s, LPWSABUF data, LPINT lpErrno) {
    (void)s, (void)data;
    return wsp_fail(lpErrno, WSAEOPNOTSUPP);
}
static int no_send_disconnect(SOCKET s, LPWSABUF data, LPINT lpErrno) {
    (void)s, (void)data;
    return wsp_fail(lpErrno, WSAEOPNOTSUPP);
}

/* Stream sockets ignore the address of sendto/recvfrom, as Winsock's TCP does. */
static int wsp_recv_from(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD received, LPDWORD flags,
                         struct sockaddr *from, LPINT fromlen, LPWSAOVERLAPPED ov,
                         LPWSAOVERLAPPED_COMPLETION_ROUTINE cr, LPWSATHREADID tid,
                         LPINT lpErrno) {
    (void)from, (void)fromlen;
    return wsp_recv(s, bufs, count, received, flags, ov, cr, tid, lpErrno);
}
static int wsp_send_to(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD sent, DWORD flags,
                       const struct sockaddr *to, int tolen, LPWSAOVERLAPPED ov,
                       LPWSAOVERLAPPED_COMPLETION_ROUTINE cr, LPWSATHREADID tid, LPINT lpErrno) {
    (void)to, (void)tolen;
    return wsp_send(s, bufs, count, sent, flags, ov, cr, tid, lpErrno);
}

static void fill_table(LPWSPPROC_TABLE t) {
    *t = (WSPPROC_TABLE){
        .lpWSPAccept = wsp_accept,
        .lpWSPAddressToString = wsp_address_to_string,
        .lpWSPAsyncSelect = wsp_async_select,
        .lpWSPBind = wsp_bind,
        .lpWSPCancelBlockingCall = no_cancel_blocking_call,
        .lpWSPCleanup = wsp_cleanup,
        .lpWSPCloseSocket = wsp_close_socket,
        .lpWSPConnect = wsp_connect,
        .lpWSPDuplicateSocket = no_duplicate_socket,
        .lpWSPEnumNetworkEvents = wsp_enum_network_events,
        .lpWSPEventSelect = wsp_event_select,
        .lpWSPGetOverlappedResult = no_get_overlapped_result,
        .lpWSPGetPeerName = wsp_get_peer_name,
        .lpWSPGetSockName = wsp_get_sock_name,
        .lpWSPGetSockOpt = wsp_get_sock_opt,
        .lpWSPGetQOSByName = no_get_qos_by_name,
        .lpWSPIoctl = wsp_ioctl,
        .lpWSPJoinLeaf = no_join_leaf,
        .lpWSPListen = wsp_listen,
        .lpWSPRecv = wsp_recv,
        .lpWSPRecvDisconnect = no_recv_disconnect,
        .lpWSPRecvFrom = wsp_recv_from,
        .lpWSPSelect = wsp_select,
        .lpWSPSend = wsp_send,
        .lpWSPSendDisconnect = no_send_disconnect,
        .lpWSPSendTo = wsp_send_to,
        .lpWSPSetSockOpt = wsp_set_sock_opt,
        .lpWSPShutdown = wsp_shutdown,
        .lpWSPSocket = wsp_socket,
        .lpWSPStringToAddress = wsp_string_to_address,
    };
}

int WSPStartup(WORD wVersionRequested, LPWSPDATA lpWSPData, LPWSAPROTOCOL_INFO lpProtocolInfo,
               WSPUPCALLTABLE UpcallTable, LPWSPPROC_TABLE lpProcTable) {
    if (version_order(wVersionRequested) < version_order(WSP_LOWEST_VERSION))
        return WSAVERNOTSUPPORTED;
    if (!lpWSPData || !lpProcTable)
        return WSAEFAULT;
    if (lpProtocolInfo && !wsp_catalog_entry_of(lpProtocolInfo))
        return WSAEINVAL;
    WORD version = version_order(wVersionRequested) < version_order(WSP_HIGHEST_VERSION)
                       ? wVersionRequested
                       : WSP_HIGHEST_VERSION;
    memset(lpWSPData, 0, sizeof *lpWSPData);
    lpWSPData->wVersion = version;
    lpWSPData->wHighVersion = WSP_HIGHEST_VERSION;
    snprintf(lpWSPData->szDescription, sizeof lpWSPData->szDescription,
             "WSP %s: Winsock 2 SPI over Linux sockets, with conditional accept",
             WSP_VERSION_STRING);

    int builtin_events = UpcallTable.lpWPUSetEvent == NULL;
    wsp_upcalls_fill_builtin(&UpcallTable);
    pthread_mutex_lock(&startup_lock);
    int err = wsp_publish_upcalls(&UpcallTable, builtin_events);
    /* One reactor start for the start-ups in force, as the last cleanup stops it once. */
    if (!err && wsp_startup_count() == 0)
        err = wsp_reactor_start();
    if (!err)
        wsp_set_startup_count(wsp_startup_count() + 1);
    pthread_mutex_unlock(&startup_lock);
    if (err)
        return WSASYSNOTREADY;
    fill_table(lpProcTable);
    return 0;
}
