/* The built-in upcall table; upcalls.h is the contract.
 *
 * The event upcalls translate the thread's last error (how the WSA* event functions report)
 * into *lpErrno (how upcalls report). Callers may pass a NULL lpErrno; nothing is written
 * then.
 */
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "upcalls.h"

static void report(LPINT lpErrno, int code) {
    if (lpErrno)
        *lpErrno = code;
}

static WSAEVENT create_event(LPINT lpErrno) {
    WSAEVENT h = WSACreateEvent();
    if (h == WSA_INVALID_EVENT)
        report(lpErrno, WSAGetLastError());
    return h;
}

/* Shared by the three upcalls that take an event and return BOOL. */
static BOOL event_call(BOOL (*fn)(WSAEVENT), WSAEVENT hEvent, LPINT lpErrno) {
    if (fn(hEvent))
        return TRUE;
    report(lpErrno, WSAGetLastError());
    return FALSE;
}

static BOOL close_event(WSAEVENT hEvent, LPINT lpErrno) {
    return event_call(WSACloseEvent, hEvent, lpErrno);
}

static BOOL set_event(WSAEVENT hEvent, LPINT lpErrno) {
    return event_call(WSASetEvent, hEvent, lpErrno);
}

static BOOL reset_event(WSAEVENT hEvent, LPINT lpErrno) {
    return event_call(WSAResetEvent, hEvent, lpErrno);
}

/* WSP queues no APCs, so a thread id is never used for anything: the kernel's thread id
 * only helps someone reading it in a debugger. */
static int open_current_thread(LPWSATHREADID lpThreadId, LPINT lpErrno) {
    if (lpThreadId == NULL) {
        report(lpErrno, WSAEFAULT);
        return SOCKET_ERROR;
    }
    lpThreadId->ThreadHandle = NULL;
    lpThreadId->Reserved = (DWORD_PTR)syscall(SYS_gettid);
    return 0;
}

static int close_thread(LPWSATHREADID lpThreadId, LPINT lpErrno) {
    (void)lpThreadId;
    (void)lpErrno;
    return 0;
}

static int query_blocking_callback(DWORD dwCatalogEntryId, LPBLOCKINGCALLBACK *lplpfnCallback,
                                   PDWORD_PTR lpdwContext, LPINT lpErrno) {
    (void)dwCatalogEntryId;
    if (lplpfnCallback == NULL) {
        report(lpErrno, WSAEFAULT);
        return SOCKET_ERROR;
    }
    *lplpfnCallback = NULL;
    if (lpdwContext)
        *lpdwContext = 0;
    return 0;
}

/* Installable file system handles and APCs have no Linux counterpart. */

static int close_socket_handle(SOCKET s, LPINT lpErrno) {
    (void)s;
    report(lpErrno, WSAEOPNOTSUPP);
    return SOCKET_ERROR;
}

static SOCKET create_socket_handle(DWORD dwCatalogEntryId, DWORD_PTR dwContext, LPINT lpErrno) {
    (void)dwCatalogEntryId;
    (void)dwContext;
    report(lpErrno, WSAEOPNOTSUPP);
    return INVALID_SOCKET;
}

static int get_provider_path(LPGUID lpProviderId, char *lpszProviderDllPath,
                             LPINT lpProviderDllPathLen, LPINT lpErrno) {
    (void)lpProviderId;
    (void)lpszProviderDllPath;
    (void)lpProviderDllPathLen;
    report(lpErrno, WSAEOPNOTSUPP);
    return SOCKET_ERROR;
}

static SOCKET modify_ifs_handle(DWORD dwCatalogEntryId, SOCKET ProposedHandle, LPINT lpErrno) {
    (void)dwCatalogEntryId;
    (void)ProposedHandle;
    report(lpErrno, WSAEOPNOTSUPP);
    return INVALID_SOCKET;
}

static int query_socket_handle_context(SOCKET s, PDWORD_PTR lpContext, LPINT lpErrno) {
    (void)s;
    (void)lpContext;
    report(lpErrno, WSAEOPNOTSUPP);
    return SOCKET_ERROR;
}

static int queue_apc(LPWSATHREADID lpThreadId, LPWSAUSERAPC lpfnUserApc, DWORD_PTR dwContext,
                     LPINT lpErrno) {
    (void)lpThreadId;
    (void)lpfnUserApc;
    (void)dwContext;
    report(lpErrno, WSAEOPNOTSUPP);
    return SOCKET_ERROR;
}

int WSPFDIsSet(SOCKET s, WSPFD_SET *set) {
    if (set == NULL)
        return 0;
    /* The set may be larger than the library's own (a program may define WSP_FD_SETSIZE, as
     * Winsock programs define FD_SETSIZE): read through a pointer, fd_count of them. */
    const SOCKET *a = set->fd_array;
    for (UINT i = 0; i < set->fd_count; i++)
        if (a[i] == s)
            return 1;
    return 0;
}

#define FILL(member, fn)                                                                   \
    do {                                                                                   \
        if (t->member == NULL)                                                             \
            t->member = (fn);                                                              \
    } while (0)

void wsp_upcalls_fill_builtin(WSPUPCALLTABLE *t) {
    FILL(lpWPUCloseEvent, close_event);
    FILL(lpWPUCloseSocketHandle, close_socket_handle);
    FILL(lpWPUCreateEvent, create_event);
    FILL(lpWPUCreateSocketHandle, create_socket_handle);
    FILL(lpWPUFDIsSet, WSPFDIsSet);
    FILL(lpWPUGetProviderPath, get_provider_path);
    FILL(lpWPUModifyIFSHandle, modify_ifs_handle);
    FILL(lpWPUPostMessage, WSPPostMessage);
    FILL(lpWPUQueryBlockingCallback, query_blocking_callback);
    FILL(lpWPUQuerySocketHandleContext, query_socket_handle_context);
    FILL(lpWPUQueueApc, queue_apc);
    FILL(lpWPUResetEvent, reset_event);
    FILL(lpWPUSetEvent, set_event);
    FILL(lpWPUOpenCurrentThread, open_current_thread);
    FILL(lpWPUCloseThread, close_thread);
}
