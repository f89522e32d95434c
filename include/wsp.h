/* WSP: a Winsock 2 Service Provider Interface over Linux sockets, with faithful conditional
 * accept.
 *
 * A program calls WSPStartup() once to receive a table of function pointers (WSPPROC_TABLE)
 * and drives sockets through it, exactly as a Winsock layered provider drives the provider
 * below it. Names, parameter lists and error codes follow Microsoft's ws2spi.h so that code
 * written against the SPI ports with few changes; where Linux forces a difference, the
 * comment on the declaration says so.
 *
 * Conventions that hold for every member of the table:
 *   - A failing call returns SOCKET_ERROR (or INVALID_SOCKET, or FALSE) and writes a WSAE…
 *     code (wsp/errors.h) to *lpErrno. A raw errno value is never reported.
 *   - A handle that was never returned by lpWSPSocket/lpWSPAccept, or was already closed,
 *     gets WSAENOTSOCK. Handles are not reused while the process runs long enough to matter
 *     (a generation counter is part of each handle).
 *   - Every member may be called from several threads at once.
 *   - Socket options and ioctl codes take Linux's values for the names <sys/socket.h>,
 *     <netinet/tcp.h> and <sys/ioctl.h> define (SOL_SOCKET, SO_REUSEADDR, FIONBIO, …); the
 *     Winsock numeric values of FIONBIO, FIONREAD and SIOCATMARK are accepted too.
 *
 * Strings are char, UTF-8, where Winsock has WCHAR.
 */
#ifndef WSP_H
#define WSP_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "wsp/errors.h"
#include "wsp/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WSP_BUILDING_LIBRARY)
#define WSP_EXPORT __attribute__((visibility("default")))
#else
#define WSP_EXPORT
#endif

/* ---------------------------------------------------------------------------------------- */
/* Windows integer types, at their Windows widths                                           */

typedef uint32_t DWORD;
typedef uint16_t WORD;
typedef uint8_t BYTE;
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef uintptr_t DWORD_PTR;
typedef DWORD_PTR *PDWORD_PTR;
typedef int INT;
typedef unsigned int UINT;
typedef int BOOL;
typedef char CHAR;
typedef int *LPINT;
typedef DWORD *LPDWORD;
typedef void *LPVOID;
typedef void *HANDLE;
typedef uintptr_t WPARAM;
typedef intptr_t LPARAM;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* ---------------------------------------------------------------------------------------- */
/* Sockets                                                                                  */

/* A WSP socket handle. It is not a file descriptor. */
typedef uintptr_t SOCKET;
#define INVALID_SOCKET ((SOCKET)~(uintptr_t)0)
#define SOCKET_ERROR (-1)

/* Socket groups are accepted and reported as "no group" (0); see the README. */
typedef unsigned int GROUP;
#define SG_UNCONSTRAINED_GROUP 0x01
#define SG_CONSTRAINED_GROUP 0x02

/* A counted buffer. len is a byte count; on input to a callee-data buffer it is the capacity. */
typedef struct _WSABUF {
    uint32_t len;
    char *buf;
} WSABUF, *LPWSABUF;

/* lpWSPShutdown's how. */
#define SD_RECEIVE 0x00
#define SD_SEND 0x01
#define SD_BOTH 0x02

/* The listen backlog that means "the provider's maximum" (winsock2.h's value). The provider
 * clamps every backlog to WSP_MAX_BACKLOG silently. */
#undef SOMAXCONN /* <sys/socket.h> has Linux's value */
#define SOMAXCONN 0x7fffffff
#define WSP_MAX_BACKLOG 4096

/* ---------------------------------------------------------------------------------------- */
/* Quality of service                                                                       */

typedef ULONG SERVICETYPE;
#define SERVICETYPE_NOTRAFFIC 0x00000000
#define SERVICETYPE_BESTEFFORT 0x00000001
#define SERVICETYPE_CONTROLLEDLOAD 0x00000002
#define SERVICETYPE_GUARANTEED 0x00000003
#define SERVICETYPE_NOCHANGE 0x0000000A
#define QOS_NOT_SPECIFIED 0xFFFFFFFF

typedef struct _flowspec {
    ULONG TokenRate;
    ULONG TokenBucketSize;
    ULONG PeakBandwidth;
    ULONG Latency;
    ULONG DelayVariation;
    SERVICETYPE ServiceType;
    ULONG MaxSduSize;
    ULONG MinimumPolicedSize;
} FLOWSPEC, *LPFLOWSPEC;

typedef struct _QualityOfService {
    FLOWSPEC SendingFlowspec;
    FLOWSPEC ReceivingFlowspec;
    WSABUF ProviderSpecific;
} QOS, *LPQOS;

/* ---------------------------------------------------------------------------------------- */
/* Conditional accept                                                                       */

/* The condition function's answers. */
#define CF_ACCEPT 0x0000
#define CF_REJECT 0x0001
#define CF_DEFER 0x0002
/* WSP's extension: set the request aside and answer it later (see "Held requests" below).
 * Only a condition function called by WSPAcceptHold may answer it; lpWSPAccept treats it as
 * an invalid answer (WSAEINVAL, the request stays first in line). */
#define CF_HOLD 0x0100

/* Called by lpWSPAccept on the accepting thread, once per presentation of a request.
 *   lpCallerId    the peer's address (a struct sockaddr in buf, its size in len)
 *   lpCallerData  the bytes the client sent with its connect, or NULL when it sent none
 *   lpSQOS        the caller's QoS, or NULL; edits are what the caller receives back
 *   lpGQOS        reserved: NULL
 *   lpCalleeId    the listener's local address
 *   lpCalleeData  a provider-owned buffer; len is its capacity on entry (0: this protocol
 *                 carries no callee data); write at most len bytes and set len to the count
 *   g             group: leave 0
 * Return CF_ACCEPT, CF_REJECT or CF_DEFER. */
typedef int (*LPCONDITIONPROC)(LPWSABUF lpCallerId, LPWSABUF lpCallerData, LPQOS lpSQOS,
                               LPQOS lpGQOS, LPWSABUF lpCalleeId, LPWSABUF lpCalleeData,
                               GROUP *g, DWORD_PTR dwCallbackData);

/* Set to a non-zero int before listening, on either protocol, to have every request go
 * through the condition function; WSP always holds requests until lpWSPAccept decides, so the
 * option is recorded and reported but changes nothing. After listen: WSAEINVAL. */
#define SO_CONDITIONAL_ACCEPT 0x3002

/* ---------------------------------------------------------------------------------------- */
/* The protocol catalog                                                                     */

#define MAX_PROTOCOL_CHAIN 7
#define BASE_PROTOCOL 1
#define LAYERED_PROTOCOL 0
#define WSAPROTOCOL_LEN 255

typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID, *LPGUID;

typedef struct _WSAPROTOCOLCHAIN {
    int ChainLen; /* 0: layered, 1: base, > 1: a chain, top first */
    DWORD ChainEntries[MAX_PROTOCOL_CHAIN];
} WSAPROTOCOLCHAIN, *LPWSAPROTOCOLCHAIN;

typedef struct _WSAPROTOCOL_INFO {
    DWORD dwServiceFlags1; /* XP1_… */
    DWORD dwServiceFlags2;
    DWORD dwServiceFlags3;
    DWORD dwServiceFlags4;
    DWORD dwProviderFlags; /* PFL_… */
    GUID ProviderId;
    DWORD dwCatalogEntryId;
    WSAPROTOCOLCHAIN ProtocolChain;
    int iVersion;
    int iAddressFamily;
    int iMaxSockAddr;
    int iMinSockAddr;
    int iSocketType;
    int iProtocol;
    int iProtocolMaxOffset;
    int iNetworkByteOrder;
    int iSecurityScheme;
    DWORD dwMessageSize;
    DWORD dwProviderReserved;
    CHAR szProtocol[WSAPROTOCOL_LEN + 1]; /* UTF-8 */
} WSAPROTOCOL_INFO, *LPWSAPROTOCOL_INFO;

#define XP1_CONNECTIONLESS 0x00000001
#define XP1_GUARANTEED_DELIVERY 0x00000002
#define XP1_GUARANTEED_ORDER 0x00000004
#define XP1_MESSAGE_ORIENTED 0x00000008
#define XP1_PSEUDO_STREAM 0x00000010
#define XP1_GRACEFUL_CLOSE 0x00000020
#define XP1_EXPEDITED_DATA 0x00000040
#define XP1_CONNECT_DATA 0x00000080
#define XP1_DISCONNECT_DATA 0x00000100
#define XP1_SUPPORT_BROADCAST 0x00000200
#define XP1_SUPPORT_MULTIPOINT 0x00000400
#define XP1_MULTIPOINT_CONTROL_PLANE 0x00000800
#define XP1_MULTIPOINT_DATA_PLANE 0x00001000
#define XP1_QOS_SUPPORTED 0x00002000
#define XP1_INTERRUPT 0x00004000
#define XP1_UNI_SEND 0x00008000
#define XP1_UNI_RECV 0x00010000
#define XP1_IFS_HANDLES 0x00020000
#define XP1_PARTIAL_MESSAGE 0x00040000
#define XP1_SAN_SUPPORT_SDP 0x00080000

#define PFL_MULTIPLE_PROTO_ENTRIES 0x00000001
#define PFL_RECOMMENDED_PROTO_ENTRY 0x00000002

#define BIGENDIAN 0x0000
#define LITTLEENDIAN 0x0001
#define SECURITY_PROTOCOL_NONE 0x0000

/* The catalog entry ids WSP assigns (dwCatalogEntryId). */
#define WSP_CATALOG_TCP_IPV4 1001
#define WSP_CATALOG_TCP_IPV6 1002
#define WSP_CATALOG_CDATA_IPV4 1003 /* TCP with connect data (see docs/PROTOCOL.md) */
#define WSP_CATALOG_CDATA_IPV6 1004

/* The provider's catalog, shaped like WSCEnumProtocols: lpiProtocols is NULL or a
 * zero-terminated list of protocol numbers to select. When *lpdwBufferLength is too small,
 * fails with WSAENOBUFS and sets it to the size needed. Returns the number of entries. */
WSP_EXPORT int WSPEnumProtocols(LPINT lpiProtocols, LPWSAPROTOCOL_INFO lpProtocolBuffer,
                                LPDWORD lpdwBufferLength, LPINT lpErrno);

/* ---------------------------------------------------------------------------------------- */
/* Network events (lpWSPEventSelect, lpWSPAsyncSelect, lpWSPEnumNetworkEvents)             */

#define FD_READ_BIT 0
#define FD_READ (1 << FD_READ_BIT)
#define FD_WRITE_BIT 1
#define FD_WRITE (1 << FD_WRITE_BIT)
#define FD_OOB_BIT 2
#define FD_OOB (1 << FD_OOB_BIT)
#define FD_ACCEPT_BIT 3
#define FD_ACCEPT (1 << FD_ACCEPT_BIT)
#define FD_CONNECT_BIT 4
#define FD_CONNECT (1 << FD_CONNECT_BIT)
#define FD_CLOSE_BIT 5
#define FD_CLOSE (1 << FD_CLOSE_BIT)
#define FD_QOS_BIT 6
#define FD_QOS (1 << FD_QOS_BIT)
#define FD_GROUP_QOS_BIT 7
#define FD_GROUP_QOS (1 << FD_GROUP_QOS_BIT)
#define FD_ROUTING_INTERFACE_CHANGE_BIT 8
#define FD_ROUTING_INTERFACE_CHANGE (1 << FD_ROUTING_INTERFACE_CHANGE_BIT)
#define FD_ADDRESS_LIST_CHANGE_BIT 9
#define FD_ADDRESS_LIST_CHANGE (1 << FD_ADDRESS_LIST_CHANGE_BIT)
#define FD_MAX_EVENTS 10
#define FD_ALL_EVENTS ((1 << FD_MAX_EVENTS) - 1)

typedef struct _WSANETWORKEVENTS {
    LONG lNetworkEvents;
    int iErrorCode[FD_MAX_EVENTS];
} WSANETWORKEVENTS, *LPWSANETWORKEVENTS;

/* An event object (see wsp/event.h). */
typedef HANDLE WSAEVENT;
/* A window handle: with the built-in upcalls, a WSP message queue (see wsp/event.h). */
typedef void *HWND;

/* lParam of a posted network-event message: the event in the low word, the error in the
 * high word. */
#define WSAMAKESELECTREPLY(event, error) ((LPARAM)(((WORD)(event)) | (((DWORD)(WORD)(error)) << 16)))
#define WSAGETSELECTEVENT(lParam) ((WORD)((DWORD)(lParam) & 0xFFFF))
#define WSAGETSELECTERROR(lParam) ((WORD)(((DWORD)(lParam) >> 16) & 0xFFFF))

/* lpWSPSelect's sets. Winsock's fd_set (a counted array of SOCKETs) would clash with the
 * POSIX fd_set, so WSP names it WSPFD_SET; the macros work like Winsock's FD_SET family.
 * lpWSPSelect and WSPFDIsSet take sets of any count: as a Winsock program raises FD_SETSIZE,
 * a program may define WSP_FD_SETSIZE (default 64) before including this header. */
#ifndef WSP_FD_SETSIZE
#define WSP_FD_SETSIZE 64
#endif
typedef struct wsp_fd_set {
    UINT fd_count;
    SOCKET fd_array[WSP_FD_SETSIZE];
} WSPFD_SET;
#define WSP_FD_ZERO(set) ((set)->fd_count = 0)
#define WSP_FD_SET(s, set)                                                                 \
    do {                                                                                   \
        UINT wsp_i_;                                                                       \
        for (wsp_i_ = 0; wsp_i_ < (set)->fd_count; wsp_i_++)                               \
            if ((set)->fd_array[wsp_i_] == (s))                                            \
                break;                                                                     \
        if (wsp_i_ == (set)->fd_count && (set)->fd_count < WSP_FD_SETSIZE)                 \
            (set)->fd_array[(set)->fd_count++] = (s);                                      \
    } while (0)
WSP_EXPORT int WSPFDIsSet(SOCKET s, WSPFD_SET *set);
#define WSP_FD_ISSET(s, set) WSPFDIsSet((s), (set))

/* ---------------------------------------------------------------------------------------- */
/* Overlapped I/O (declared for the table's shape; WSP completes every call synchronously and
 * fails calls that pass an OVERLAPPED with WSAEOPNOTSUPP)                                 */

typedef struct _WSAOVERLAPPED {
    DWORD_PTR Internal;
    DWORD_PTR InternalHigh;
    DWORD Offset;
    DWORD OffsetHigh;
    WSAEVENT hEvent;
} WSAOVERLAPPED, *LPWSAOVERLAPPED;

typedef void (*LPWSAOVERLAPPED_COMPLETION_ROUTINE)(DWORD dwError, DWORD cbTransferred,
                                                   LPWSAOVERLAPPED lpOverlapped, DWORD dwFlags);

typedef struct _WSATHREADID {
    HANDLE ThreadHandle;
    DWORD_PTR Reserved;
} WSATHREADID, *LPWSATHREADID;

typedef BOOL (*LPBLOCKINGCALLBACK)(DWORD_PTR dwContext);
typedef void (*LPWSAUSERAPC)(DWORD_PTR dwContext);

/* ---------------------------------------------------------------------------------------- */
/* WSP's own socket options and ioctls                                                      */

/* Level for WSP's own options (lpWSPSetSockOpt/lpWSPGetSockOpt). */
#define SOL_WSP 0x5753
/* DWORD, milliseconds: how long a blocking lpWSPConnect waits for the answer (default
 * WSP_DEFAULT_CONNECT_TIMEOUT_MS; 0 = the default). On the connect-data protocol a server
 * that is still deciding keeps the wait alive: see WSP_CONNECT_LIMIT. */
#define WSP_CONNECT_TIMEOUT 0x0001
/* DWORD, milliseconds: the overall limit on a connect-data connect, deferrals included
 * (default WSP_DEFAULT_CONNECT_LIMIT_MS; 0 = none). */
#define WSP_CONNECT_LIMIT 0x0002
/* DWORD: the most caller data this socket sends (client) or accepts (listener); at most
 * WSP_MAX_CONNECT_DATA. */
#define WSP_MAX_CALLER_DATA 0x0003
/* DWORD: the callee-data capacity the condition function is given (listener); at most
 * WSP_MAX_CONNECT_DATA. */
#define WSP_MAX_CALLEE_DATA 0x0004
/* DWORD, milliseconds: how long a connect-data listener waits for a complete request. */
#define WSP_HANDSHAKE_DEADLINE 0x0005
/* DWORD, milliseconds: how often a listener tells a waiting client "still pending". */
#define WSP_PENDING_INTERVAL 0x0006
/* WSP_LISTENER_STATS_DATA (read-only): a listener's counters. */
#define WSP_LISTENER_STATS 0x0007
/* Bytes (read-only): the callee data the last connect-data connect received; optlen is set
 * to their count. The way to read them after a non-blocking connect completes. */
#define WSP_CALLEE_DATA 0x0008
/* DWORD (read-only): why the last connect-data connect on this socket was refused, one of
 * the WSP_REASON_… values below (WSP_REASON_NONE when it was not refused). Set when the
 * connect fails with WSAECONNREFUSED or, for WSP_REASON_CALLEE_DATA_TOO_LONG, WSAEFAULT;
 * kept until the next connect. */
#define WSP_REFUSE_REASON 0x0009
/* WSP_DROP_HANDLER_DATA (listener, write-only): a function the provider calls for each
 * request it ends without presenting it to a condition function, or refuses on the
 * application's behalf (see WSP_DROP_HANDLER_DATA). NULL lpfnHandler removes it. */
#define WSP_DROP_HANDLER 0x000A
/* DWORD (listener): the most requests it holds at once (CF_HOLD); default
 * WSP_DEFAULT_HOLD_LIMIT, at most WSP_MAX_HOLD_LIMIT; 0 refuses every hold. */
#define WSP_HOLD_LIMIT 0x000B
/* DWORD, milliseconds (listener): how long a request may stay held; when it passes, the
 * client is refused and the application told (WSAETIMEDOUT). Default
 * WSP_DEFAULT_HOLD_DEADLINE_MS; 0 = none (the client's own limits still apply). Applies to
 * requests held from then on. */
#define WSP_HOLD_DEADLINE 0x000C
/* WSAEVENT (listener): an event the provider sets whenever a held request ends without an
 * answer (its client withdrew, the hold deadline passed, the listener closed); read which
 * with WSPHeldNews. WSA_INVALID_EVENT removes it. With an upcall table of its own the
 * application's lpWPUSetEvent sets it. Reading it gives the event in force. */
#define WSP_HELD_EVENT 0x000D

/* Why a connect-data request was refused or dropped. The client reads the reason with
 * getsockopt(SOL_WSP, WSP_REFUSE_REASON); a listener's drop handler receives it too. A client
 * built before reasons 4 and above existed is not told them: its connection is reset, which
 * it reports as WSAECONNREFUSED, as before. */
#define WSP_REASON_NONE 0
#define WSP_REASON_REJECTED 1          /* the condition function returned CF_REJECT */
#define WSP_REASON_BACKLOG_FULL 2      /* the listener's backlog was full */
#define WSP_REASON_CLOSING 3           /* the listener closed before it decided */
#define WSP_REASON_DATA_TOO_LONG 4     /* caller data or QoS longer than the listener takes */
#define WSP_REASON_MALFORMED 5         /* the request broke the protocol (docs/PROTOCOL.md) */
#define WSP_REASON_HANDSHAKE_TIMEOUT 6 /* the request was not whole within the deadline */
#define WSP_REASON_CALLEE_DATA_TOO_LONG 7 /* the answer's callee data did not fit the client's
                                           * callee buffer: the client's connect fails with
                                           * WSAEFAULT, the accept reports WSAEFAULT once */
#define WSP_REASON_EXPIRED 8           /* the client's connect limit passed before a decision */
#define WSP_REASON_HOLD_TIMEOUT 9      /* the server held the request past its hold deadline
                                        * (WSP_HOLD_DEADLINE) without answering */

/* A drop handler runs on a provider thread with no lock held, once per dropped or refused
 * request, after the client has been answered. It must not block; it may call WSP for other
 * sockets. addr is the client's address (valid during the call only); reason is a
 * WSP_REASON_… value. Rejections by the condition function are not reported here: the
 * application made them. */
typedef void (*LPWSPDROPHANDLER)(SOCKET listener, const struct sockaddr *addr, int addrlen,
                                 DWORD reason, DWORD_PTR context);
typedef struct wsp_drop_handler_data {
    LPWSPDROPHANDLER lpfnHandler;
    DWORD_PTR dwContext;
} WSP_DROP_HANDLER_DATA;

#define WSP_DEFAULT_CONNECT_TIMEOUT_MS 30000u
#define WSP_DEFAULT_CONNECT_LIMIT_MS 0u
#define WSP_DEFAULT_HANDSHAKE_DEADLINE_MS 5000u
#define WSP_DEFAULT_PENDING_INTERVAL_MS 1000u
#define WSP_MAX_CONNECT_DATA 16384u
#define WSP_DEFAULT_MAX_CALLER_DATA 1024u
#define WSP_DEFAULT_MAX_CALLEE_DATA 1024u
#define WSP_DEFAULT_HOLD_LIMIT 1024u
#define WSP_MAX_HOLD_LIMIT 65536u
#define WSP_DEFAULT_HOLD_DEADLINE_MS 30000u

typedef struct wsp_listener_stats {
    uint64_t accepted;         /* handed out by lpWSPAccept */
    uint64_t rejected;         /* refused by the condition function */
    uint64_t deferred;         /* CF_DEFER answers (one request may count several times) */
    uint64_t withdrawn;        /* clients that gave up while queued or deferred */
    uint64_t timed_out;        /* connect-data requests not complete within the deadline */
    uint64_t backlog_full;     /* refused because the backlog was full */
    uint64_t malformed;        /* connect-data requests dropped as malformed */
    uint32_t backlog;          /* the backlog in force, after clamping */
    uint32_t queued;           /* requests waiting in the backlog now */
    uint64_t too_long;         /* refused: caller data or QoS above the listener's limits */
    uint64_t undeliverable;    /* ended: the answer did not fit the client's callee buffer */
    uint64_t expired;          /* ended: the client's connect limit passed (queued or held) */
    uint64_t held;             /* held by a condition function (CF_HOLD); answers count
                                * as accepted or rejected, clients leaving as withdrawn */
    uint64_t hold_refused;     /* CF_HOLD answers refused: the listener held its limit */
    uint64_t hold_timed_out;   /* held requests refused when the hold deadline passed */
    uint32_t holding;          /* requests held now */
    uint32_t hold_limit;       /* WSP_HOLD_LIMIT in force */
} WSP_LISTENER_STATS_DATA;

/* lpWSPIoctl codes. FIONBIO, FIONREAD and SIOCATMARK take Linux's or Winsock's values. */
#define WSP_FIONBIO 0x8004667Eu
#define WSP_FIONREAD 0x4004667Fu
#define WSP_SIOCATMARK 0x40047307u
#define SIO_GET_QOS 0xC8000007u
/* Out: WSP_LISTENER_STATS_DATA. */
#define SIO_WSP_LISTENER_STATS 0x58000001u
/* In: a GUID (one of the WSPID_… below). Out: the extension function's pointer. An unknown
 * GUID: WSAEINVAL. Any socket of the provider answers. */
#ifndef SIO_GET_EXTENSION_FUNCTION_POINTER
#define SIO_GET_EXTENSION_FUNCTION_POINTER 0xC8000006u
#endif

/* ---------------------------------------------------------------------------------------- */
/* Held requests: WSP's extension functions                                                 */
/*
 * A condition function called by WSPAcceptHold may answer CF_HOLD. The request then leaves
 * the queue (the next accept presents the next request) and WSPAcceptHold returns a handle to
 * it. Its client keeps waiting: on the connect-data protocol it keeps receiving pending
 * notices; on plain TCP, whose kernel has completed the connection already, the connection is
 * simply not handed out until answered. Answer it later, from any thread, exactly once:
 *   WSPHeldAccept   the new socket, inheriting from the listener as lpWSPAccept's does, with
 *                   the callee data and QoS given then (what the condition function wrote
 *                   into its callee buffer while holding is not sent);
 *   WSPHeldReject   a refusal with a WSP_REASON_… value (plain TCP: a reset);
 *   WSPHeldRelease  back into the listener's queue, in its place by arrival, to be presented
 *                   again.
 * A request can also end while held, without an answer: its client withdrew (WSAECONNRESET),
 * the hold deadline or the client's own connect limit passed (WSAETIMEDOUT; the client is
 * refused), or the listener closed (WSAEINTR; the client is refused as for every queued
 * request). The provider then sets the listener's WSP_HELD_EVENT and lists the handle for
 * WSPHeldNews; the answer given later fails with that code. Either way the first answer
 * retires the handle: any later one fails with WSA_INVALID_HANDLE, as does a handle never
 * issued. Answer every handle once (an ended one included): a handle keeps a little memory
 * and the listening socket's structure until then.
 *
 * Bounds, per listener: at most WSP_HOLD_LIMIT requests held at once (a CF_HOLD beyond it
 * leaves the request first in line and WSPAcceptHold fails with WSAENOBUFS; as after a
 * CF_DEFER, FD_ACCEPT comes again only after the next accept call or once a held request
 * leaves) and WSP_HOLD_DEADLINE. Counted in WSP_LISTENER_STATS_DATA.
 *
 * Obtain each function with lpWSPIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid,
 * sizeof guid, &fn, sizeof fn, …), as Windows hands out AcceptEx. */

/* A held request's handle; 0 is never one. Not a socket. */
typedef uintptr_t WSPHELD;

/* lpWSPAccept with the CF_HOLD answer. Returns 0 with either *lpAccepted set to the new
 * socket (and *lpHeld to 0) or, when the condition function answered CF_HOLD, *lpHeld set to
 * the held request's handle (and *lpAccepted to INVALID_SOCKET); addr receives the peer's
 * address in both cases. Otherwise SOCKET_ERROR with lpWSPAccept's codes, plus WSAENOBUFS
 * for a hold beyond WSP_HOLD_LIMIT and WSAEFAULT for a NULL lpAccepted or lpHeld. */
#define WSPID_ACCEPTHOLD                                                                   \
    {0xbb0ed080, 0xd5f9, 0x4006, {0x9b, 0x58, 0x80, 0x8d, 0x51, 0x92, 0x21, 0xa3}}
typedef int (*LPFN_WSPACCEPTHOLD)(SOCKET s, struct sockaddr *addr, LPINT addrlen,
                                  LPCONDITIONPROC lpfnCondition, DWORD_PTR dwCallbackData,
                                  SOCKET *lpAccepted, WSPHELD *lpHeld, LPINT lpErrno);

/* Accepts a held request: *lpAccepted receives the new socket. lpCalleeData (NULL: none) is
 * sent as callee data, at most the listener's WSP_MAX_CALLEE_DATA (more: WSAEFAULT, the
 * request stays held); lpSQOS (NULL: the caller's own) is the QoS answered, when the caller
 * sent one. An answer that does not fit what the client can take ends the request with
 * WSAEFAULT, as in lpWSPAccept. Fails with WSAECONNRESET when the client left (noticed now
 * or earlier), WSAETIMEDOUT or WSAEINTR when the request ended as described above. */
#define WSPID_HELDACCEPT                                                                   \
    {0x3d968298, 0x847d, 0x4103, {0x93, 0xbd, 0x2f, 0x6b, 0x0f, 0xd6, 0x41, 0xaf}}
typedef int (*LPFN_WSPHELDACCEPT)(WSPHELD hHeld, LPWSABUF lpCalleeData, LPQOS lpSQOS,
                                  SOCKET *lpAccepted, LPINT lpErrno);

/* Refuses a held request with dwReason, a WSP_REASON_… value from WSP_REASON_REJECTED to
 * WSP_REASON_HOLD_TIMEOUT (0 means WSP_REASON_REJECTED; others: WSAEINVAL, the request stays
 * held). A client that cannot read the reason is reset instead (see the reasons above). */
#define WSPID_HELDREJECT                                                                   \
    {0x97dca86f, 0x3383, 0x4928, {0x94, 0xfb, 0x52, 0x31, 0x4b, 0x36, 0x86, 0xd3}}
typedef int (*LPFN_WSPHELDREJECT)(WSPHELD hHeld, DWORD dwReason, LPINT lpErrno);

/* Puts a held request back into the listener's queue. */
#define WSPID_HELDRELEASE                                                                  \
    {0xc6908433, 0xceab, 0x4fb6, {0x93, 0x6d, 0xc8, 0x3d, 0xe7, 0x25, 0x4b, 0xca}}
typedef int (*LPFN_WSPHELDRELEASE)(WSPHELD hHeld, LPINT lpErrno);

/* The listener's news: writes up to dwCount handles of held requests that ended without an
 * answer since the last call (each is listed once; an answered one is not) to lpHeld and
 * their number to *lpdwReturned; 0 when there are none. Answer each to learn why and retire
 * it. Not a listener: WSAEINVAL. Once the listener is closed its handle is gone
 * (WSAENOTSOCK): every request it held ended with WSAEINTR. The provider never resets
 * WSP_HELD_EVENT: reset it, then read the news until none are left. */
#define WSPID_HELDNEWS                                                                     \
    {0x7720e944, 0x3d9d, 0x4fb2, {0x8c, 0x12, 0x68, 0xac, 0x9c, 0xca, 0x35, 0xae}}
typedef int (*LPFN_WSPHELDNEWS)(SOCKET s, WSPHELD *lpHeld, DWORD dwCount,
                                LPDWORD lpdwReturned, LPINT lpErrno);

/* ---------------------------------------------------------------------------------------- */
/* The provider table: ws2spi.h's 30 members, in ws2spi.h's order                           */

typedef SOCKET (*LPWSPACCEPT)(SOCKET s, struct sockaddr *addr, LPINT addrlen,
                              LPCONDITIONPROC lpfnCondition, DWORD_PTR dwCallbackData,
                              LPINT lpErrno);
/* Formats "1.2.3.4:80" or "[::1]:80" ("1.2.3.4" / "::1" when the port is 0). */
typedef int (*LPWSPADDRESSTOSTRING)(struct sockaddr *lpsaAddress, DWORD dwAddressLength,
                                    LPWSAPROTOCOL_INFO lpProtocolInfo, char *lpszAddressString,
                                    LPDWORD lpdwAddressStringLength, LPINT lpErrno);
typedef int (*LPWSPASYNCSELECT)(SOCKET s, HWND hWnd, UINT wMsg, LONG lEvent, LPINT lpErrno);
typedef int (*LPWSPBIND)(SOCKET s, const struct sockaddr *name, int namelen, LPINT lpErrno);
typedef int (*LPWSPCANCELBLOCKINGCALL)(LPINT lpErrno);
typedef int (*LPWSPCLEANUP)(LPINT lpErrno);
typedef int (*LPWSPCLOSESOCKET)(SOCKET s, LPINT lpErrno);
/* On the connect-data protocol a blocking connect returns once the server has decided;
 * lpCalleeData->len is the capacity on entry and the count received on return, and lpSQOS
 * receives the negotiated QoS (its ProviderSpecific.len is the capacity for the answer's
 * provider-specific bytes). A non-blocking connect fails with WSAEWOULDBLOCK and, as on
 * Winsock, writes lpCalleeData and lpSQOS when the answer arrives (before FD_CONNECT): they
 * must stay valid until then. getsockopt(SOL_WSP, WSP_CALLEE_DATA) and SIO_GET_QOS read the
 * same answer later without that constraint; pass NULL to use only them. */
typedef int (*LPWSPCONNECT)(SOCKET s, const struct sockaddr *name, int namelen,
                            LPWSABUF lpCallerData, LPWSABUF lpCalleeData, LPQOS lpSQOS,
                            LPQOS lpGQOS, LPINT lpErrno);
typedef int (*LPWSPDUPLICATESOCKET)(SOCKET s, DWORD dwProcessId,
                                    LPWSAPROTOCOL_INFO lpProtocolInfo, LPINT lpErrno);
typedef int (*LPWSPENUMNETWORKEVENTS)(SOCKET s, WSAEVENT hEventObject,
                                      LPWSANETWORKEVENTS lpNetworkEvents, LPINT lpErrno);
typedef int (*LPWSPEVENTSELECT)(SOCKET s, WSAEVENT hEventObject, LONG lNetworkEvents,
                                LPINT lpErrno);
typedef BOOL (*LPWSPGETOVERLAPPEDRESULT)(SOCKET s, LPWSAOVERLAPPED lpOverlapped,
                                         LPDWORD lpcbTransfer, BOOL fWait, LPDWORD lpdwFlags,
                                         LPINT lpErrno);
typedef int (*LPWSPGETPEERNAME)(SOCKET s, struct sockaddr *name, LPINT namelen, LPINT lpErrno);
typedef int (*LPWSPGETSOCKNAME)(SOCKET s, struct sockaddr *name, LPINT namelen, LPINT lpErrno);
typedef int (*LPWSPGETSOCKOPT)(SOCKET s, int level, int optname, char *optval, LPINT optlen,
                               LPINT lpErrno);
typedef BOOL (*LPWSPGETQOSBYNAME)(SOCKET s, LPWSABUF lpQOSName, LPQOS lpQOS, LPINT lpErrno);
typedef int (*LPWSPIOCTL)(SOCKET s, DWORD dwIoControlCode, LPVOID lpvInBuffer,
                          DWORD cbInBuffer, LPVOID lpvOutBuffer, DWORD cbOutBuffer,
                          LPDWORD lpcbBytesReturned, LPWSAOVERLAPPED lpOverlapped,
                          LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                          LPWSATHREADID lpThreadId, LPINT lpErrno);
typedef SOCKET (*LPWSPJOINLEAF)(SOCKET s, const struct sockaddr *name, int namelen,
                                LPWSABUF lpCallerData, LPWSABUF lpCalleeData, LPQOS lpSQOS,
                                LPQOS lpGQOS, DWORD dwFlags, LPINT lpErrno);
typedef int (*LPWSPLISTEN)(SOCKET s, int backlog, LPINT lpErrno);
typedef int (*LPWSPRECV)(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                         LPDWORD lpNumberOfBytesRecvd, LPDWORD lpFlags,
                         LPWSAOVERLAPPED lpOverlapped,
                         LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                         LPWSATHREADID lpThreadId, LPINT lpErrno);
typedef int (*LPWSPRECVDISCONNECT)(SOCKET s, LPWSABUF lpInboundDisconnectData, LPINT lpErrno);
typedef int (*LPWSPRECVFROM)(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                             LPDWORD lpNumberOfBytesRecvd, LPDWORD lpFlags,
                             struct sockaddr *lpFrom, LPINT lpFromlen,
                             LPWSAOVERLAPPED lpOverlapped,
                             LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                             LPWSATHREADID lpThreadId, LPINT lpErrno);
/* nfds is ignored, as in Winsock. */
typedef int (*LPWSPSELECT)(int nfds, WSPFD_SET *readfds, WSPFD_SET *writefds,
                           WSPFD_SET *exceptfds, const struct timeval *timeout, LPINT lpErrno);
typedef int (*LPWSPSEND)(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                         LPDWORD lpNumberOfBytesSent, DWORD dwFlags,
                         LPWSAOVERLAPPED lpOverlapped,
                         LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                         LPWSATHREADID lpThreadId, LPINT lpErrno);
typedef int (*LPWSPSENDDISCONNECT)(SOCKET s, LPWSABUF lpOutboundDisconnectData, LPINT lpErrno);
typedef int (*LPWSPSENDTO)(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                           LPDWORD lpNumberOfBytesSent, DWORD dwFlags, const struct sockaddr *lpTo,
                           int iTolen, LPWSAOVERLAPPED lpOverlapped,
                           LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                           LPWSATHREADID lpThreadId, LPINT lpErrno);
typedef int (*LPWSPSETSOCKOPT)(SOCKET s, int level, int optname, const char *optval, int optlen,
                               LPINT lpErrno);
typedef int (*LPWSPSHUTDOWN)(SOCKET s, int how, LPINT lpErrno);
typedef SOCKET (*LPWSPSOCKET)(int af, int type, int protocol, LPWSAPROTOCOL_INFO lpProtocolInfo,
                              GROUP g, DWORD dwFlags, LPINT lpErrno);
/* Parses "1.2.3.4", "1.2.3.4:80", "::1", "[::1]" and "[::1]:80". */
typedef int (*LPWSPSTRINGTOADDRESS)(const char *AddressString, int AddressFamily,
                                    LPWSAPROTOCOL_INFO lpProtocolInfo, struct sockaddr *lpAddress,
                                    LPINT lpAddressLength, LPINT lpErrno);

typedef struct _WSPPROC_TABLE {
    LPWSPACCEPT lpWSPAccept;
    LPWSPADDRESSTOSTRING lpWSPAddressToString;
    LPWSPASYNCSELECT lpWSPAsyncSelect;
    LPWSPBIND lpWSPBind;
    LPWSPCANCELBLOCKINGCALL lpWSPCancelBlockingCall;
    LPWSPCLEANUP lpWSPCleanup;
    LPWSPCLOSESOCKET lpWSPCloseSocket;
    LPWSPCONNECT lpWSPConnect;
    LPWSPDUPLICATESOCKET lpWSPDuplicateSocket;
    LPWSPENUMNETWORKEVENTS lpWSPEnumNetworkEvents;
    LPWSPEVENTSELECT lpWSPEventSelect;
    LPWSPGETOVERLAPPEDRESULT lpWSPGetOverlappedResult;
    LPWSPGETPEERNAME lpWSPGetPeerName;
    LPWSPGETSOCKNAME lpWSPGetSockName;
    LPWSPGETSOCKOPT lpWSPGetSockOpt;
    LPWSPGETQOSBYNAME lpWSPGetQOSByName;
    LPWSPIOCTL lpWSPIoctl;
    LPWSPJOINLEAF lpWSPJoinLeaf;
    LPWSPLISTEN lpWSPListen;
    LPWSPRECV lpWSPRecv;
    LPWSPRECVDISCONNECT lpWSPRecvDisconnect;
    LPWSPRECVFROM lpWSPRecvFrom;
    LPWSPSELECT lpWSPSelect;
    LPWSPSEND lpWSPSend;
    LPWSPSENDDISCONNECT lpWSPSendDisconnect;
    LPWSPSENDTO lpWSPSendTo;
    LPWSPSETSOCKOPT lpWSPSetSockOpt;
    LPWSPSHUTDOWN lpWSPShutdown;
    LPWSPSOCKET lpWSPSocket;
    LPWSPSTRINGTOADDRESS lpWSPStringToAddress;
} WSPPROC_TABLE, *LPWSPPROC_TABLE;

/* ---------------------------------------------------------------------------------------- */
/* The upcall table: ws2spi.h's 15 members, in order. A zeroed table (or a NULL member)
 * selects WSP's built-in upcall for that member.                                          */

typedef BOOL (*LPWPUCLOSEEVENT)(WSAEVENT hEvent, LPINT lpErrno);
typedef int (*LPWPUCLOSESOCKETHANDLE)(SOCKET s, LPINT lpErrno);
typedef WSAEVENT (*LPWPUCREATEEVENT)(LPINT lpErrno);
typedef SOCKET (*LPWPUCREATESOCKETHANDLE)(DWORD dwCatalogEntryId, DWORD_PTR dwContext,
                                          LPINT lpErrno);
typedef int (*LPWPUFDISSET)(SOCKET s, WSPFD_SET *fdset);
typedef int (*LPWPUGETPROVIDERPATH)(LPGUID lpProviderId, char *lpszProviderDllPath,
                                    LPINT lpProviderDllPathLen, LPINT lpErrno);
typedef SOCKET (*LPWPUMODIFYIFSHANDLE)(DWORD dwCatalogEntryId, SOCKET ProposedHandle,
                                       LPINT lpErrno);
typedef BOOL (*LPWPUPOSTMESSAGE)(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam);
typedef int (*LPWPUQUERYBLOCKINGCALLBACK)(DWORD dwCatalogEntryId,
                                          LPBLOCKINGCALLBACK *lplpfnCallback,
                                          PDWORD_PTR lpdwContext, LPINT lpErrno);
typedef int (*LPWPUQUERYSOCKETHANDLECONTEXT)(SOCKET s, PDWORD_PTR lpContext, LPINT lpErrno);
typedef int (*LPWPUQUEUEAPC)(LPWSATHREADID lpThreadId, LPWSAUSERAPC lpfnUserApc,
                             DWORD_PTR dwContext, LPINT lpErrno);
typedef BOOL (*LPWPURESETEVENT)(WSAEVENT hEvent, LPINT lpErrno);
typedef BOOL (*LPWPUSETEVENT)(WSAEVENT hEvent, LPINT lpErrno);
typedef int (*LPWPUOPENCURRENTTHREAD)(LPWSATHREADID lpThreadId, LPINT lpErrno);
typedef int (*LPWPUCLOSETHREAD)(LPWSATHREADID lpThreadId, LPINT lpErrno);

typedef struct _WSPUPCALLTABLE {
    LPWPUCLOSEEVENT lpWPUCloseEvent;
    LPWPUCLOSESOCKETHANDLE lpWPUCloseSocketHandle;
    LPWPUCREATEEVENT lpWPUCreateEvent;
    LPWPUCREATESOCKETHANDLE lpWPUCreateSocketHandle;
    LPWPUFDISSET lpWPUFDIsSet;
    LPWPUGETPROVIDERPATH lpWPUGetProviderPath;
    LPWPUMODIFYIFSHANDLE lpWPUModifyIFSHandle;
    LPWPUPOSTMESSAGE lpWPUPostMessage;
    LPWPUQUERYBLOCKINGCALLBACK lpWPUQueryBlockingCallback;
    LPWPUQUERYSOCKETHANDLECONTEXT lpWPUQuerySocketHandleContext;
    LPWPUQUEUEAPC lpWPUQueueApc;
    LPWPURESETEVENT lpWPUResetEvent;
    LPWPUSETEVENT lpWPUSetEvent;
    LPWPUOPENCURRENTTHREAD lpWPUOpenCurrentThread;
    LPWPUCLOSETHREAD lpWPUCloseThread;
} WSPUPCALLTABLE, *LPWSPUPCALLTABLE;

/* ---------------------------------------------------------------------------------------- */
/* Start-up                                                                                 */

#define WSPDESCRIPTION_LEN 255

typedef struct WSPData {
    WORD wVersion;
    WORD wHighVersion;
    char szDescription[WSPDESCRIPTION_LEN + 1]; /* UTF-8 */
} WSPDATA, *LPWSPDATA;

#define MAKEWORD(low, high) ((WORD)(((BYTE)(low)) | ((WORD)((BYTE)(high))) << 8))
#define LOBYTE(w) ((BYTE)((w)&0xff))
#define HIBYTE(w) ((BYTE)(((w) >> 8) & 0xff))

/* Starts the provider (reference counted: pair each success with one lpWSPCleanup) and fills
 * *lpProcTable. Returns 0 or a WSA error code: WSAVERNOTSUPPORTED below version 2.0,
 * WSAEFAULT for a NULL lpWSPData or lpProcTable. lpProtocolInfo may be NULL or one of the
 * catalog's entries. A later start-up's upcall table replaces the earlier one. */
WSP_EXPORT int WSPStartup(WORD wVersionRequested, LPWSPDATA lpWSPData,
                          LPWSAPROTOCOL_INFO lpProtocolInfo, WSPUPCALLTABLE UpcallTable,
                          LPWSPPROC_TABLE lpProcTable);

/* Runs fn(context) on the provider's event thread: the thread that reads handshakes, drives
 * non-blocking connects and raises network events (its upcalls run there). An async runtime
 * whose tasks those upcalls resume can run them right after the event, with no thread woken
 * (SwiftNIO's event-loop model; Swift's EventThreadExecutor is built on this).
 *
 * Order: jobs run one at a time, in the order given, with no provider lock held, so a job
 * may call the provider. A job handed over by an upcall runs as soon as the event being
 * handled is done; one handed over by a job runs after the jobs already waiting, once the
 * thread has looked at its sockets (a job that keeps handing itself over cannot starve
 * them).
 *
 * Returns 0 when the job will run: exactly once, even if the last lpWSPCleanup comes first
 * (the jobs taken run before the thread ends). Otherwise the job is not taken (and never
 * runs, so what context owns stays the caller's): WSAEFAULT for a NULL fn,
 * WSANOTINITIALISED before WSPStartup or once the last lpWSPCleanup has begun (also from a
 * job that runs after it), WSAENOBUFS when memory runs out.
 *
 * The event thread never waits. Every socket of the process waits while a job (or an
 * upcall) runs, so there the calls that would wait fail at once with WSAEWOULDBLOCK, as on a
 * non-blocking socket, and the rest work as usual:
 *  - lpWSPAccept, lpWSPRecv and lpWSPSend on a blocking socket behave as on a non-blocking
 *    one: an accept with nothing to accept, a recv with nothing to read, a send with no room
 *    fail with WSAEWOULDBLOCK; a send with some room sends what fits and returns the count.
 *  - lpWSPConnect on a blocking socket starts a non-blocking connect and fails with
 *    WSAEWOULDBLOCK; its end shows in lpWSPSelect (writable, or excepted on failure) and a
 *    later lpWSPConnect (WSAEALREADY, then WSAEISCONN or the connect's error).
 *  - lpWSPSelect with a time-out other than zero (or none) answers at once when a socket is
 *    ready, and otherwise fails with WSAEWOULDBLOCK (a zero time-out returns 0, as always).
 *  - WSAWaitForMultipleEvents and WSPGetMessage (wsp/event.h), the same.
 *  - lpWSPCleanup works there: the last one ends the thread once the job returns (its
 *    descriptors close then); a WSPStartup before that keeps the same thread going.
 * What does wait on the event thread: closing a socket with SO_LINGER set (the kernel's
 * close), and SO_RCVTIMEO/SO_SNDTIMEO play no part there. */
typedef void (*LPWSPJOBPROC)(void *context);
WSP_EXPORT int WSPRunOnEventThread(LPWSPJOBPROC fn, void *context);

/* A WSA error code's name ("WSAECONNREFUSED") and a one-line meaning ("connection refused:
 * the server's condition function rejected the request, or no one listens there"). Unknown
 * codes give "WSA_UNKNOWN" and "unknown error". The strings are static. */
WSP_EXPORT const char *WSPErrorName(int code);
WSP_EXPORT const char *WSPErrorString(int code);

#ifdef __cplusplus
}
#endif

#include "wsp/event.h"

#endif
