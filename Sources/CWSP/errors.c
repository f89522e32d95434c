/* The one errno -> WSA mapping, the thread's last error, and the names and meanings of the
 * WSA codes. */
#include <errno.h>

#include "internal.h"

static _Thread_local int last_error;

int WSAGetLastError(void) {
    return last_error;
}

void WSASetLastError(int iError) {
    last_error = iError;
}

int wsp_wsa_from_errno(int e) {
    switch (e) {
    case 0: return 0;
    case EINTR: return WSAEINTR;
    case EBADF: return WSAENOTSOCK; /* our handle outlived its descriptor: treat as not a socket */
    case EACCES: case EPERM: return WSAEACCES;
    case EFAULT: return WSAEFAULT;
    case EINVAL: return WSAEINVAL;
    case EMFILE: case ENFILE: return WSAEMFILE;
    case EAGAIN: return WSAEWOULDBLOCK;
    case EINPROGRESS: return WSAEINPROGRESS;
    case EALREADY: return WSAEALREADY;
    case ENOTSOCK: return WSAENOTSOCK;
    case EDESTADDRREQ: return WSAEDESTADDRREQ;
    case EMSGSIZE: return WSAEMSGSIZE;
    case EPROTOTYPE: return WSAEPROTOTYPE;
    case ENOPROTOOPT: return WSAENOPROTOOPT;
    case EPROTONOSUPPORT: return WSAEPROTONOSUPPORT;
    case ESOCKTNOSUPPORT: return WSAESOCKTNOSUPPORT;
    case EOPNOTSUPP: return WSAEOPNOTSUPP;
    case EPFNOSUPPORT: return WSAEPFNOSUPPORT;
    case EAFNOSUPPORT: return WSAEAFNOSUPPORT;
    case EADDRINUSE: return WSAEADDRINUSE;
    case EADDRNOTAVAIL: return WSAEADDRNOTAVAIL;
    case ENETDOWN: return WSAENETDOWN;
    case ENETUNREACH: return WSAENETUNREACH;
    case ENETRESET: return WSAENETRESET;
    case ECONNABORTED: return WSAECONNABORTED;
    case ECONNRESET: return WSAECONNRESET;
    case EPIPE: return WSAESHUTDOWN;
    case ENOBUFS: case ENOMEM: return WSAENOBUFS;
    case EISCONN: return WSAEISCONN;
    case ENOTCONN: return WSAENOTCONN;
    case ESHUTDOWN: return WSAESHUTDOWN;
    case ETIMEDOUT: return WSAETIMEDOUT;
    case ECONNREFUSED: return WSAECONNREFUSED;
    case EHOSTUNREACH: case EHOSTDOWN: return WSAEHOSTUNREACH;
    default: return WSAEINVAL;
    }
}

int wsp_wsa_resource_error(int e) {
    return e == EMFILE || e == ENFILE ? WSAEMFILE : WSA_NOT_ENOUGH_MEMORY;
}

int wsp_fail(LPINT lpErrno, int code) {
    if (lpErrno)
        *lpErrno = code;
    return SOCKET_ERROR;
}

struct wsp_error_text {
    int code;
    const char *name;
    const char *meaning;
};

static const struct wsp_error_text error_texts[] = {
    {0, "NO_ERROR", "no error"},
    {WSA_INVALID_HANDLE, "WSA_INVALID_HANDLE", "not an open event object or message queue"},
    {WSA_NOT_ENOUGH_MEMORY, "WSA_NOT_ENOUGH_MEMORY", "not enough memory"},
    {WSA_INVALID_PARAMETER, "WSA_INVALID_PARAMETER", "an invalid parameter"},
    {WSA_OPERATION_ABORTED, "WSA_OPERATION_ABORTED", "the operation was aborted"},
    {WSA_IO_INCOMPLETE, "WSA_IO_INCOMPLETE", "overlapped I/O is not complete"},
    {WSA_IO_PENDING, "WSA_IO_PENDING", "overlapped I/O will complete later"},
    {WSAEINTR, "WSAEINTR", "the blocking call was interrupted: the socket was closed"},
    {WSAEBADF, "WSAEBADF", "bad file handle"},
    {WSAEACCES, "WSAEACCES", "permission denied"},
    {WSAEFAULT, "WSAEFAULT", "a pointer or length argument is invalid or too small"},
    {WSAEINVAL, "WSAEINVAL", "an invalid argument, or the call does not fit the socket's state"},
    {WSAEMFILE, "WSAEMFILE", "too many open sockets"},
    {WSAEWOULDBLOCK, "WSAEWOULDBLOCK", "the non-blocking call cannot complete now"},
    {WSAEINPROGRESS, "WSAEINPROGRESS", "a blocking operation is in progress"},
    {WSAEALREADY, "WSAEALREADY", "a non-blocking connect is already in progress"},
    {WSAENOTSOCK, "WSAENOTSOCK", "not a socket: the handle is unknown or was closed"},
    {WSAEDESTADDRREQ, "WSAEDESTADDRREQ", "a destination address is required"},
    {WSAEMSGSIZE, "WSAEMSGSIZE", "the message is too long"},
    {WSAEPROTOTYPE, "WSAEPROTOTYPE", "the protocol does not fit the socket type"},
    {WSAENOPROTOOPT, "WSAENOPROTOOPT", "unknown or unsupported socket option"},
    {WSAEPROTONOSUPPORT, "WSAEPROTONOSUPPORT", "protocol not supported"},
    {WSAESOCKTNOSUPPORT, "WSAESOCKTNOSUPPORT", "socket type not supported"},
    {WSAEOPNOTSUPP, "WSAEOPNOTSUPP", "operation not supported"},
    {WSAEPFNOSUPPORT, "WSAEPFNOSUPPORT", "protocol family not supported"},
    {WSAEAFNOSUPPORT, "WSAEAFNOSUPPORT", "address family not supported"},
    {WSAEADDRINUSE, "WSAEADDRINUSE", "the address is already in use"},
    {WSAEADDRNOTAVAIL, "WSAEADDRNOTAVAIL", "the address is not available"},
    {WSAENETDOWN, "WSAENETDOWN", "the network is down"},
    {WSAENETUNREACH, "WSAENETUNREACH", "the network is unreachable"},
    {WSAENETRESET, "WSAENETRESET", "the connection was reset by the network"},
    {WSAECONNABORTED, "WSAECONNABORTED",
     "the connection was aborted (or the peer does not speak WSP's connect-data protocol)"},
    {WSAECONNRESET, "WSAECONNRESET", "the connection was reset by the peer"},
    {WSAENOBUFS, "WSAENOBUFS", "no buffer space available"},
    {WSAEISCONN, "WSAEISCONN", "the socket is already connected"},
    {WSAENOTCONN, "WSAENOTCONN", "the socket is not connected"},
    {WSAESHUTDOWN, "WSAESHUTDOWN", "the socket was shut down in that direction"},
    {WSAETIMEDOUT, "WSAETIMEDOUT", "the operation timed out"},
    {WSAECONNREFUSED, "WSAECONNREFUSED",
     "connection refused: the server's condition function rejected it, its backlog was full, "
     "or nothing listens there"},
    {WSAEHOSTUNREACH, "WSAEHOSTUNREACH", "the host is unreachable"},
    {WSAEPROCLIM, "WSAEPROCLIM", "too many processes"},
    {WSASYSNOTREADY, "WSASYSNOTREADY", "the network subsystem is not ready"},
    {WSAVERNOTSUPPORTED, "WSAVERNOTSUPPORTED", "the requested Winsock version is not supported"},
    {WSANOTINITIALISED, "WSANOTINITIALISED", "WSPStartup has not been called (or was cleaned up)"},
    {WSAEDISCON, "WSAEDISCON", "the peer is disconnecting gracefully"},
    {WSATRY_AGAIN, "WSATRY_AGAIN",
     "the condition function deferred the request: it stays first in the queue; accept again"},
    {0, NULL, NULL}, /* the end */
};

static const struct wsp_error_text *find_text(int code) {
    for (size_t i = 0; error_texts[i].name; i++)
        if (error_texts[i].code == code)
            return &error_texts[i];
    return NULL;
}

const char *WSPErrorName(int code) {
    const struct wsp_error_text *t = find_text(code);
    return t ? t->name : "WSA_UNKNOWN";
}

const char *WSPErrorString(int code) {
    const struct wsp_error_text *t = find_text(code);
    return t ? t->meaning : "unknown error";
}
