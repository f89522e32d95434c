/* Event objects and message queues: the two ways WSP tells an application that a network
 * event happened (lpWSPEventSelect signals an event object; lpWSPAsyncSelect posts a message).
 *
 * Included by wsp.h; not meant to be included on its own.
 */
#ifndef WSP_EVENT_H
#define WSP_EVENT_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Event objects: manual-reset, initially non-signalled, as Winsock's WSACreateEvent makes. */

#define WSA_INVALID_EVENT ((WSAEVENT)0)
#define WSA_MAXIMUM_WAIT_EVENTS 64
#define WSA_WAIT_EVENT_0 0u
#define WSA_WAIT_IO_COMPLETION 0xC0u
#define WSA_WAIT_TIMEOUT 258u
#define WSA_WAIT_FAILED 0xFFFFFFFFu
#define WSA_INFINITE 0xFFFFFFFFu

/* Each returns WSA_INVALID_EVENT / FALSE / WSA_WAIT_FAILED on failure and sets the calling
 * thread's last error (WSAGetLastError): WSA_INVALID_HANDLE for a handle that is not an open
 * event, WSA_INVALID_PARAMETER for a bad count or array, WSA_NOT_ENOUGH_MEMORY, or WSAEMFILE
 * when the process is out of file descriptors (each event holds one). A closed handle is
 * never confused with a later event (handles carry a generation), and a handle that was never
 * an event is rejected, not dereferenced. Success leaves the last error alone. */
WSP_EXPORT WSAEVENT WSACreateEvent(void);
WSP_EXPORT BOOL WSASetEvent(WSAEVENT hEvent);
WSP_EXPORT BOOL WSAResetEvent(WSAEVENT hEvent);
/* Closing an event that other threads wait on wakes them with WSA_WAIT_FAILED. */
WSP_EXPORT BOOL WSACloseEvent(WSAEVENT hEvent);
/* Waits until one (fWaitAll FALSE) or all (TRUE) of the events are signalled, or dwTimeout
 * milliseconds pass (WSA_INFINITE: no limit). Returns WSA_WAIT_EVENT_0 + the lowest index of a
 * signalled event, WSA_WAIT_TIMEOUT or WSA_WAIT_FAILED. fAlertable is accepted and ignored:
 * WSP queues no APCs. cEvents is 1..WSA_MAXIMUM_WAIT_EVENTS. On the provider's event thread
 * (wsp.h, WSPRunOnEventThread) a dwTimeout other than 0 never waits: when nothing is signalled
 * yet the call fails at once, WSA_WAIT_FAILED with WSAEWOULDBLOCK. */
WSP_EXPORT DWORD WSAWaitForMultipleEvents(DWORD cEvents, const WSAEVENT *lphEvents,
                                          BOOL fWaitAll, DWORD dwTimeout, BOOL fAlertable);
/* A file descriptor that polls readable (POLLIN) exactly while the event is signalled, for
 * waiting from an application's own poll/epoll loop. Owned by the event: do not read, write
 * or close it. WSACloseEvent makes it readable (so a loop blocked on it wakes) and closes it
 * once no call still uses the event: take it out of your poll set first. -1
 * (WSA_INVALID_HANDLE) when hEvent is not an open event. */
WSP_EXPORT int WSAEventFd(WSAEVENT hEvent);

/* The calling thread's last error, as set by the functions in this header. */
WSP_EXPORT int WSAGetLastError(void);
WSP_EXPORT void WSASetLastError(int iError);

/* ---------------------------------------------------------------------------------------- */
/* Message queues: what an HWND names when the built-in WPUPostMessage is in use.           */

typedef struct WSPMSG {
    HWND hwnd;
    UINT message;
    WPARAM wParam; /* the socket */
    LPARAM lParam; /* WSAMAKESELECTREPLY(event, error) */
} WSPMSG;

/* Creates an empty, unbounded message queue. NULL on failure (WSAGetLastError). */
WSP_EXPORT HWND WSPCreateMessageQueue(void);
/* Destroys a queue; pending messages are discarded and blocked readers return -1 with
 * WSA_INVALID_HANDLE. */
WSP_EXPORT BOOL WSPDestroyMessageQueue(HWND hWnd);
/* Takes the oldest message: returns 1 with *lpMsg filled, 0 when dwTimeoutMs passed with
 * the queue empty (0 = do not wait, WSA_INFINITE = no limit), -1 on error (WSAGetLastError:
 * WSA_INVALID_HANDLE, or WSA_INVALID_PARAMETER for a NULL lpMsg). On the provider's event
 * thread (wsp.h) a dwTimeoutMs other than 0 never waits: with the queue empty the call fails
 * at once, -1 with WSAEWOULDBLOCK. */
WSP_EXPORT int WSPGetMessage(HWND hWnd, WSPMSG *lpMsg, DWORD dwTimeoutMs);
/* A file descriptor that polls readable exactly while the queue holds messages. Owned by
 * the queue; like an event's (WSAEventFd), it turns readable when the queue is destroyed.
 * -1 when hWnd is not an open queue. */
WSP_EXPORT int WSPMessageQueueFd(HWND hWnd);
/* Appends a message (msg.hwnd = hWnd): the built-in WPUPostMessage. Never blocks and never
 * drops a message. FALSE when hWnd is not an open queue (WSA_INVALID_HANDLE) or memory ran
 * out (WSA_NOT_ENOUGH_MEMORY). */
WSP_EXPORT BOOL WSPPostMessage(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam);

#ifdef __cplusplus
}
#endif

#endif
