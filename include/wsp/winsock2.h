/* Winsock 2 for programs: the application API of Windows' winsock2.h over WSP.
 *
 * A Winsock program ported to Linux changes one line,
 *
 *     #include <winsock2.h>     becomes     #include <wsp/winsock2.h>
 *
 * and links the WSP library as any WSP program does (cc -Iinclude prog.c build/libcwsp.a
 * -lpthread, or `pkg-config --cflags --libs wsp`). It then calls WSAStartup, socket, bind,
 * WSAAccept, select, closesocket… with Windows' names, types, values and error codes.
 *
 * How calls reach the provider. As in Windows' ws2_32, this layer owns no socket behaviour:
 * it picks a catalog entry (the first whose family, type and protocol match, or the one a
 * WSAPROTOCOL_INFO names), creates the socket through that provider's WSPPROC_TABLE, and
 * remembers which provider made each handle. Every later call on the handle goes to that
 * provider's table. What this layer adds are Winsock's API rules: WSAStartup/WSACleanup
 * reference counting, WSANOTINITIALISED before start-up, the calling thread's last error
 * (WSAGetLastError), fd_set and its macros, and the error for a handle no provider made
 * (WSAENOTSOCK).
 *
 * Every failing call returns SOCKET_ERROR (or INVALID_SOCKET, or FALSE) and sets the calling
 * thread's last error to a WSAE… code: read it with WSAGetLastError(). A raw errno value
 * never appears. Every function may be called from several threads at once.
 *
 * Names shared with the POSIX socket API. Linux's own headers declare socket, bind, accept,
 * connect, send, recv, select, fd_set… with POSIX meanings. This header includes those POSIX
 * headers first (<sys/socket.h>, <sys/select.h>, <sys/time.h>, <sys/ioctl.h>,
 * <netinet/in.h>, <netinet/tcp.h>, <arpa/inet.h>, <netdb.h>) and then maps each shared name
 * with an object-like macro to the Winsock function of this library (socket → ws2_socket,
 * select → ws2_select, fd_set → ws2_fd_set, …). So:
 *   - In a file that includes this header, every use of those names is Winsock's. Including a
 *     POSIX socket header again, before or after, changes nothing (it was already included).
 *   - The POSIX functions stay reachable only from files that do not include this header.
 *     Mixing the two in one file is not supported: a SOCKET is a WSP handle, not a file
 *     descriptor.
 *   - Because the renames are macros, they apply to every identifier spelled that way after
 *     the include: a C++ member function named send or select, or std::bind, is renamed too.
 *     That compiles as long as the declaration and the uses all come after this header;
 *     include it before other headers in C++.
 * Name resolution (getaddrinfo, gethostbyname, inet_addr, htons, …) is Linux's own, from the
 * headers above: those calls do not involve sockets and need no provider. They need glibc's
 * default feature set (gcc's default -std=gnu11, or -D_GNU_SOURCE / -D_DEFAULT_SOURCE), and
 * getaddrinfo reports glibc's EAI_… codes where Windows' reports WSA ones.
 *
 * Values that differ from Windows'. Address families, socket option names, MSG_ flags and
 * ioctl codes are Linux's (AF_INET6 is 10, not 23; SOL_SOCKET is 1), because the addresses
 * and options reach Linux's kernel as they are; programs that use the names are unaffected.
 * FIONBIO, FIONREAD and SIOCATMARK work with either Linux's or Windows' values. u_long is
 * unsigned long: 64 bits here, 32 on Windows. Strings are char, UTF-8: the …A functions and
 * the plain names are the same functions, and there are no …W ones.
 *
 * Not offered (each fails with the error a Windows provider without it gives):
 *   - overlapped I/O: any call given a WSAOVERLAPPED fails with WSAEOPNOTSUPP, and
 *     WSAGetOverlappedResult always does;
 *   - the Microsoft extension functions (AcceptEx, ConnectEx, TransmitFile, DisconnectEx…):
 *     WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER) fails with WSAEINVAL, the provider not
 *     knowing the GUID;
 *   - I/O completion ports: CreateIoCompletionPort is not declared;
 *   - socket groups: a g other than 0 fails with WSAEINVAL;
 *   - WSADuplicateSocket, WSAJoinLeaf, WSAGetQOSByName and disconnect data: WSAEOPNOTSUPP.
 * Only TCP over IPv4 and IPv6 is in WSP's catalog: socket(AF_INET, SOCK_DGRAM, 0) fails with
 * WSAESOCKTNOSUPPORT.
 *
 * Windows programs create windows for WSAAsyncSelect. Here an HWND is a WSP message queue
 * (WSPCreateMessageQueue, read with WSPGetMessage: wsp/event.h), and the message loop is the
 * one part of such a program that must be rewritten.
 */
#ifndef WSP_WINSOCK2_H
#define WSP_WINSOCK2_H

/* FD_SETSIZE, as on Windows, is the program's to choose before the include (default 64). The
 * system headers below define their own, so a value the program set is saved around them. A
 * value equal to glibc's that a system header set earlier cannot be told from the program's:
 * define FD_SETSIZE before any include. */
#if defined(FD_SETSIZE) &&                                                                   \
    (!defined(_SYS_SELECT_H) || !defined(__FD_SETSIZE) || FD_SETSIZE != __FD_SETSIZE)
#define WSP_WINSOCK_PROGRAM_FD_SETSIZE
#pragma push_macro("FD_SETSIZE")
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <string.h>

#include "../wsp.h"

#undef FD_SETSIZE
#ifdef WSP_WINSOCK_PROGRAM_FD_SETSIZE
#pragma pop_macro("FD_SETSIZE")
#else
#define FD_SETSIZE 64
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Windows' spelling of types and calling conventions                                       */

#define WSAAPI
#define WINAPI
#define PASCAL
#define CALLBACK
#define FAR
#define NEAR

/* glibc defines these in <sys/types.h> (not in strict ISO mode); its guard is reused. */
#ifndef __u_char_defined
typedef unsigned char u_char;
typedef unsigned short u_short;
typedef unsigned int u_int;
typedef unsigned long u_long;
#define __u_char_defined
#endif

typedef unsigned short USHORT;
typedef short SHORT;
typedef char *LPSTR;
typedef const char *LPCSTR;
typedef void *PVOID;
typedef BOOL *LPBOOL;

typedef struct sockaddr SOCKADDR, *PSOCKADDR, *LPSOCKADDR;
typedef struct sockaddr_in SOCKADDR_IN, *PSOCKADDR_IN, *LPSOCKADDR_IN;
typedef struct sockaddr_in6 SOCKADDR_IN6, *PSOCKADDR_IN6, *LPSOCKADDR_IN6;
typedef struct sockaddr_storage SOCKADDR_STORAGE, *PSOCKADDR_STORAGE, *LPSOCKADDR_STORAGE;
typedef struct in_addr IN_ADDR, *PIN_ADDR, *LPIN_ADDR;
typedef struct in6_addr IN6_ADDR, *PIN6_ADDR, *LPIN6_ADDR;
typedef struct timeval TIMEVAL, *PTIMEVAL, *LPTIMEVAL;
typedef struct linger LINGER, *PLINGER, *LPLINGER;
typedef WSABUF *PWSABUF;
typedef WSAOVERLAPPED OVERLAPPED, *LPOVERLAPPED;
typedef WSAEVENT *LPWSAEVENT;

#define ADDR_ANY INADDR_ANY

/* Windows' winsock2.h brings in windows.h; of it, socket programs mostly use these: the
 * two memory macros, and the first message number free for a program's own messages (a
 * WSAAsyncSelect message is usually WM_USER + n). */
#define ZeroMemory(dest, len) memset((dest), 0, (len))
#define CopyMemory(dest, src, len) memcpy((dest), (src), (len))
#define WM_USER 0x0400

/* The …A names: strings are UTF-8 char throughout. */
typedef WSAPROTOCOL_INFO WSAPROTOCOL_INFOA, *LPWSAPROTOCOL_INFOA;

/* ---------------------------------------------------------------------------------------- */
/* Start-up                                                                                 */

#define WSADESCRIPTION_LEN 256
#define WSASYS_STATUS_LEN 128

/* Windows' 64-bit layout. iMaxSockets, iMaxUdpDg and lpVendorInfo are 0 / NULL, as Windows
 * leaves them for version 2 and later. */
typedef struct WSAData {
    WORD wVersion;     /* the version the program should use: min(requested, 2.2) */
    WORD wHighVersion; /* the highest this library offers: 2.2 */
    unsigned short iMaxSockets;
    unsigned short iMaxUdpDg;
    char *lpVendorInfo;
    char szDescription[WSADESCRIPTION_LEN + 1];
    char szSystemStatus[WSASYS_STATUS_LEN + 1];
} WSADATA, *LPWSADATA;

/* Starts Winsock for the calling program (reference counted: pair each success with one
 * WSACleanup). Returns 0 or the error code itself (not through WSAGetLastError):
 * WSAVERNOTSUPPORTED below version 1.0, WSAEFAULT for a NULL lpWSAData, WSASYSNOTREADY when
 * the provider could not start. Any version from 1.0 up is accepted; above 2.2, 2.2 is used. */
WSP_EXPORT int WSAStartup(WORD wVersionRequested, LPWSADATA lpWSAData);
/* Ends one WSAStartup. The last one closes every socket still open through this API, as
 * closesocket would, and stops the providers. Without a matching WSAStartup: SOCKET_ERROR,
 * WSANOTINITIALISED. */
WSP_EXPORT int WSACleanup(void);

/* WSAGetLastError and WSASetLastError (the calling thread's last error) are declared in
 * wsp/event.h; every function here sets it on failure and leaves it alone on success. */

/* ---------------------------------------------------------------------------------------- */
/* Sockets                                                                                  */

/* WSASocket's af, type and protocol when they are to be read from lpProtocolInfo. */
#define FROM_PROTOCOL_INFO (-1)
/* WSASocket's dwFlags. WSP completes every call synchronously, so these are accepted and
 * change nothing; socket() passes WSA_FLAG_OVERLAPPED, as Windows does. */
#define WSA_FLAG_OVERLAPPED 0x01
#define WSA_FLAG_MULTIPOINT_C_ROOT 0x02
#define WSA_FLAG_MULTIPOINT_C_LEAF 0x04
#define WSA_FLAG_MULTIPOINT_D_ROOT 0x08
#define WSA_FLAG_MULTIPOINT_D_LEAF 0x10
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80

/* Windows' MSG_PARTIAL (WSARecv on message protocols); WSP's stream protocols never set it. */
#define MSG_PARTIAL 0x8000

/* socket(af, type, protocol): the first catalog entry whose family, type and protocol match
 * (af AF_UNSPEC and protocol 0 match any). None: WSAEAFNOSUPPORT (no entry of that family),
 * WSAESOCKTNOSUPPORT (none of that type in the family) or WSAEPROTONOSUPPORT. */
WSP_EXPORT SOCKET ws2_socket(int af, int type, int protocol);
/* With lpProtocolInfo, the catalog entry it names (WSAEINVAL if none has its
 * dwCatalogEntryId); af, type or protocol FROM_PROTOCOL_INFO take the entry's value. This
 * is how a program picks WSP's connect-data protocol, found with WSAEnumProtocols. */
WSP_EXPORT SOCKET WSASocket(int af, int type, int protocol, LPWSAPROTOCOL_INFO lpProtocolInfo,
                            GROUP g, DWORD dwFlags);
#define WSASocketA WSASocket

WSP_EXPORT int ws2_bind(SOCKET s, const struct sockaddr *name, int namelen);
WSP_EXPORT int ws2_listen(SOCKET s, int backlog);
WSP_EXPORT SOCKET ws2_accept(SOCKET s, struct sockaddr *addr, int *addrlen);
/* Conditional accept: lpfnCondition decides each request (CF_ACCEPT, CF_REJECT, CF_DEFER),
 * seeing the caller's address and data and writing callee data (see LPCONDITIONPROC in
 * wsp.h). A deferred request fails the call with WSATRY_AGAIN and stays queued. */
WSP_EXPORT SOCKET WSAAccept(SOCKET s, struct sockaddr *addr, LPINT addrlen,
                            LPCONDITIONPROC lpfnCondition, DWORD_PTR dwCallbackData);
WSP_EXPORT int ws2_connect(SOCKET s, const struct sockaddr *name, int namelen);
/* Connect with caller data, room for callee data (len: capacity in, count out) and QoS, on
 * the connect-data protocol; lpGQOS must be NULL. */
WSP_EXPORT int WSAConnect(SOCKET s, const struct sockaddr *name, int namelen,
                          LPWSABUF lpCallerData, LPWSABUF lpCalleeData, LPQOS lpSQOS,
                          LPQOS lpGQOS);

/* Return the byte count (recv: 0 when the peer closed gracefully). A negative len fails with
 * WSAEFAULT. */
WSP_EXPORT int ws2_send(SOCKET s, const char *buf, int len, int flags);
WSP_EXPORT int ws2_recv(SOCKET s, char *buf, int len, int flags);
/* On WSP's stream sockets the address is ignored (sendto) or not filled (recvfrom), as with
 * Windows' TCP. */
WSP_EXPORT int ws2_sendto(SOCKET s, const char *buf, int len, int flags,
                          const struct sockaddr *to, int tolen);
WSP_EXPORT int ws2_recvfrom(SOCKET s, char *buf, int len, int flags, struct sockaddr *from,
                            int *fromlen);
/* Scatter/gather forms. lpOverlapped and lpCompletionRoutine must be NULL (WSAEOPNOTSUPP). */
WSP_EXPORT int WSASend(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                       LPDWORD lpNumberOfBytesSent, DWORD dwFlags, LPWSAOVERLAPPED lpOverlapped,
                       LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
WSP_EXPORT int WSARecv(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                       LPDWORD lpNumberOfBytesRecvd, LPDWORD lpFlags,
                       LPWSAOVERLAPPED lpOverlapped,
                       LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
WSP_EXPORT int WSASendTo(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                         LPDWORD lpNumberOfBytesSent, DWORD dwFlags, const struct sockaddr *lpTo,
                         int iTolen, LPWSAOVERLAPPED lpOverlapped,
                         LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
WSP_EXPORT int WSARecvFrom(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                           LPDWORD lpNumberOfBytesRecvd, LPDWORD lpFlags, struct sockaddr *lpFrom,
                           LPINT lpFromlen, LPWSAOVERLAPPED lpOverlapped,
                           LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
/* Always FALSE with WSAEOPNOTSUPP: no overlapped operation is ever started. */
WSP_EXPORT BOOL WSAGetOverlappedResult(SOCKET s, LPWSAOVERLAPPED lpOverlapped,
                                       LPDWORD lpcbTransfer, BOOL fWait, LPDWORD lpdwFlags);

/* how: SD_RECEIVE, SD_SEND or SD_BOTH. */
WSP_EXPORT int ws2_shutdown(SOCKET s, int how);
/* Disconnect data is not offered: WSAEOPNOTSUPP. */
WSP_EXPORT int WSASendDisconnect(SOCKET s, LPWSABUF lpOutboundDisconnectData);
WSP_EXPORT int WSARecvDisconnect(SOCKET s, LPWSABUF lpInboundDisconnectData);
WSP_EXPORT int ws2_closesocket(SOCKET s);

WSP_EXPORT int ws2_getsockopt(SOCKET s, int level, int optname, char *optval, int *optlen);
WSP_EXPORT int ws2_setsockopt(SOCKET s, int level, int optname, const char *optval,
                              int optlen);
/* FIONBIO (*argp non-zero: non-blocking), FIONREAD (*argp: bytes ready) and SIOCATMARK. */
WSP_EXPORT int ws2_ioctlsocket(SOCKET s, long cmd, u_long *argp);
WSP_EXPORT int WSAIoctl(SOCKET s, DWORD dwIoControlCode, LPVOID lpvInBuffer, DWORD cbInBuffer,
                        LPVOID lpvOutBuffer, DWORD cbOutBuffer, LPDWORD lpcbBytesReturned,
                        LPWSAOVERLAPPED lpOverlapped,
                        LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
WSP_EXPORT int ws2_getpeername(SOCKET s, struct sockaddr *name, int *namelen);
WSP_EXPORT int ws2_getsockname(SOCKET s, struct sockaddr *name, int *namelen);

/* Not offered by WSP: WSAEOPNOTSUPP (WSAJoinLeaf returns INVALID_SOCKET, WSAGetQOSByName
 * FALSE). */
WSP_EXPORT int WSADuplicateSocket(SOCKET s, DWORD dwProcessId,
                                  LPWSAPROTOCOL_INFO lpProtocolInfo);
#define WSADuplicateSocketA WSADuplicateSocket
WSP_EXPORT SOCKET WSAJoinLeaf(SOCKET s, const struct sockaddr *name, int namelen,
                              LPWSABUF lpCallerData, LPWSABUF lpCalleeData, LPQOS lpSQOS,
                              LPQOS lpGQOS, DWORD dwFlags);
WSP_EXPORT BOOL WSAGetQOSByName(SOCKET s, LPWSABUF lpQOSName, LPQOS lpQOS);

/* WSAIoctl codes for the extension functions. WSP's provider offers none of them, so asking
 * for a pointer fails with WSAEINVAL; the GUIDs are here so that code which asks compiles. */
#define SIO_GET_EXTENSION_FUNCTION_POINTER 0xC8000006u
#define WSAID_ACCEPTEX                                                                     \
    {0xb5367df1, 0xcbac, 0x11cf, {0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92}}
#define WSAID_GETACCEPTEXSOCKADDRS                                                         \
    {0xb5367df2, 0xcbac, 0x11cf, {0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92}}
#define WSAID_CONNECTEX                                                                    \
    {0x25a207b9, 0xddf3, 0x4660, {0x8e, 0xe9, 0x76, 0xe5, 0x8c, 0x74, 0x06, 0x3e}}

/* ---------------------------------------------------------------------------------------- */
/* select and fd_set                                                                        */

/* Winsock's fd_set: a count and an array of handles, FD_SETSIZE of them (64 unless the
 * program defines FD_SETSIZE before including this header). It is not the POSIX bit set. */
typedef struct ws2_fd_set {
    u_int fd_count;
    SOCKET fd_array[FD_SETSIZE];
} ws2_fd_set;
typedef ws2_fd_set FD_SET, *PFD_SET, *LPFD_SET;

/* nfds is ignored, as on Windows. All the handles must belong to one provider; with no
 * handle in any set: WSAEINVAL. Returns how many handles are ready and leaves only those in
 * the sets; 0 when timeout (NULL: none) passed first. WSP's provider takes sets of any
 * FD_SETSIZE. */
WSP_EXPORT int ws2_select(int nfds, ws2_fd_set *readfds, ws2_fd_set *writefds,
                          ws2_fd_set *exceptfds, const struct timeval *timeout);
/* FD_ISSET's function (Windows calls it __WSAFDIsSet). */
WSP_EXPORT int ws2_fd_isset(SOCKET fd, ws2_fd_set *set);
#define __WSAFDIsSet(fd, set) ws2_fd_isset((SOCKET)(fd), (set))

#undef FD_ZERO
#undef FD_SET
#undef FD_CLR
#undef FD_ISSET
#define FD_ZERO(set) ((set)->fd_count = 0)
/* Adds fd unless present; a full set is left as it is, as on Windows. */
#define FD_SET(fd, set)                                                                    \
    do {                                                                                   \
        u_int ws2_i_;                                                                      \
        for (ws2_i_ = 0; ws2_i_ < (set)->fd_count; ws2_i_++)                               \
            if ((set)->fd_array[ws2_i_] == (SOCKET)(fd))                                   \
                break;                                                                     \
        if (ws2_i_ == (set)->fd_count && (set)->fd_count < FD_SETSIZE)                     \
            (set)->fd_array[(set)->fd_count++] = (SOCKET)(fd);                             \
    } while (0)
/* Removes fd, keeping the others in order. */
#define FD_CLR(fd, set)                                                                    \
    do {                                                                                   \
        u_int ws2_i_;                                                                      \
        for (ws2_i_ = 0; ws2_i_ < (set)->fd_count; ws2_i_++) {                             \
            if ((set)->fd_array[ws2_i_] == (SOCKET)(fd)) {                                 \
                for (; ws2_i_ + 1 < (set)->fd_count; ws2_i_++)                             \
                    (set)->fd_array[ws2_i_] = (set)->fd_array[ws2_i_ + 1];                 \
                (set)->fd_count--;                                                         \
                break;                                                                     \
            }                                                                              \
        }                                                                                  \
    } while (0)
#define FD_ISSET(fd, set) ws2_fd_isset((SOCKET)(fd), (set))

/* ---------------------------------------------------------------------------------------- */
/* Network events                                                                           */

/* Event objects (WSACreateEvent, WSASetEvent, WSAResetEvent, WSACloseEvent,
 * WSAWaitForMultipleEvents) are declared in wsp/event.h; they work before WSAStartup too. */

/* Signals hEvent when one of lNetworkEvents (FD_READ, FD_ACCEPT, …) happens, and makes s
 * non-blocking. lNetworkEvents 0 cancels. */
WSP_EXPORT int WSAEventSelect(SOCKET s, WSAEVENT hEventObject, long lNetworkEvents);
/* Reads and clears the events recorded for s (and resets hEventObject unless it is NULL). */
WSP_EXPORT int WSAEnumNetworkEvents(SOCKET s, WSAEVENT hEventObject,
                                    LPWSANETWORKEVENTS lpNetworkEvents);
/* Posts wMsg to hWnd (a WSP message queue) for each of lEvent that happens: wParam is the
 * socket, lParam WSAMAKESELECTREPLY(event, error). Makes s non-blocking. */
WSP_EXPORT int WSAAsyncSelect(SOCKET s, HWND hWnd, u_int wMsg, long lEvent);

/* ---------------------------------------------------------------------------------------- */
/* The catalog and address strings                                                          */

/* Every provider's catalog entries, in catalog order: the count, or SOCKET_ERROR with
 * WSAENOBUFS and *lpdwBufferLength set to the size needed. lpiProtocols: NULL or a
 * zero-terminated list of protocols to select. */
WSP_EXPORT int WSAEnumProtocols(LPINT lpiProtocols, LPWSAPROTOCOL_INFO lpProtocolBuffer,
                                LPDWORD lpdwBufferLength);
#define WSAEnumProtocolsA WSAEnumProtocols

/* "1.2.3.4:80", "[::1]:80" (no port when it is 0). The provider is the one lpProtocolInfo
 * names, or else the first for the address's family (none: WSAEINVAL). A buffer too small
 * fails with WSAEFAULT and sets *lpdwAddressStringLength to the length needed, the
 * terminating NUL included. */
WSP_EXPORT int WSAAddressToString(LPSOCKADDR lpsaAddress, DWORD dwAddressLength,
                                  LPWSAPROTOCOL_INFO lpProtocolInfo, LPSTR lpszAddressString,
                                  LPDWORD lpdwAddressStringLength);
#define WSAAddressToStringA WSAAddressToString
/* Parses "1.2.3.4", "1.2.3.4:80", "::1", "[::1]" and "[::1]:80" for AddressFamily. */
WSP_EXPORT int WSAStringToAddress(LPCSTR AddressString, INT AddressFamily,
                                  LPWSAPROTOCOL_INFO lpProtocolInfo, LPSOCKADDR lpAddress,
                                  LPINT lpAddressLength);
#define WSAStringToAddressA WSAStringToAddress

/* ---------------------------------------------------------------------------------------- */
/* Error codes of Windows' winsock2.h that wsp/errors.h does not list                        */

#define WSAELOOP 10062
#define WSAENAMETOOLONG 10063
#define WSAEHOSTDOWN 10064
#define WSAENOTEMPTY 10066
#define WSAEUSERS 10068
#define WSAEDQUOT 10069
#define WSAESTALE 10070
#define WSAEREMOTE 10071
#define WSAETOOMANYREFS 10059
#define WSAENOMORE 10102
#define WSAECANCELLED 10103
#define WSAEINVALIDPROCTABLE 10104
#define WSAEINVALIDPROVIDER 10105
#define WSAEPROVIDERFAILEDINIT 10106
#define WSASYSCALLFAILURE 10107
#define WSAEREFUSED 10112
#define WSAHOST_NOT_FOUND 11001
#define WSANO_RECOVERY 11003
#define WSANO_DATA 11004

#ifdef __cplusplus
}
#endif

/* ---------------------------------------------------------------------------------------- */
/* The POSIX names, mapped to Winsock's (see the top of this file)                          */

#define socket ws2_socket
#define bind ws2_bind
#define listen ws2_listen
#define accept ws2_accept
#define connect ws2_connect
#define send ws2_send
#define recv ws2_recv
#define sendto ws2_sendto
#define recvfrom ws2_recvfrom
#define shutdown ws2_shutdown
#define getsockopt ws2_getsockopt
#define setsockopt ws2_setsockopt
#define getpeername ws2_getpeername
#define getsockname ws2_getsockname
#define select ws2_select
#define fd_set ws2_fd_set
/* Windows-only names, mapped for the same prefix. */
#define closesocket ws2_closesocket
#define ioctlsocket ws2_ioctlsocket

#endif
