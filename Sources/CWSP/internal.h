/* The provider's private structures and the functions its files share. Nothing here is part
 * of the public API; include/wsp.h is.
 *
 * The files form layers that look only down: docs/ARCHITECTURE.md has the map (checked by
 * `make check-layers`), the hooks through which a lower layer reaches an upper one, the lock
 * order and the error convention (WSA codes inside, errno only at the system-call edge). The
 * sections below follow the map from the bottom. */
#ifndef WSP_INTERNAL_H
#define WSP_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "object_table.h"
#include "wsp.h"

#define WSP_INTERNAL __attribute__((visibility("hidden")))

/* ---- errors ------------------------------------------------------------------------------ */

/* The one errno -> WSA mapping. */
int wsp_wsa_from_errno(int e) WSP_INTERNAL;
/* Its variant for the event-object and message-queue functions, whose documented code for
 * a failed allocation is WSA_NOT_ENOUGH_MEMORY (sockets report WSAENOBUFS): the errno of a
 * failed eventfd, malloc or pthread_*_init -> WSAEMFILE or WSA_NOT_ENOUGH_MEMORY. */
int wsp_wsa_resource_error(int e) WSP_INTERNAL;

/* Writes code to *lpErrno (when lpErrno is not NULL) and returns SOCKET_ERROR: the one way a
 * member of the table reports failure. */
int wsp_fail(LPINT lpErrno, int code) WSP_INTERNAL;

/* ---- time (clock.c) ---------------------------------------------------------------------- */

/* A deadline is a moment on wsp_now_ms's clock (CLOCK_MONOTONIC, milliseconds). The one
 * marker for "no deadline": */
#define WSP_NO_DEADLINE UINT64_MAX

uint64_t wsp_now_ms(void) WSP_INTERNAL;
/* The deadline timeout_ms from now, never early; WSP_NO_DEADLINE when timeout_ms < 0. */
uint64_t wsp_deadline_in(int64_t timeout_ms) WSP_INTERNAL;
/* Milliseconds left until deadline, as poll takes them: -1 for WSP_NO_DEADLINE, 0 once it has
 * passed, at most INT_MAX. */
int wsp_ms_left(uint64_t deadline) WSP_INTERNAL;
/* The deadline of a WSA time-out in milliseconds (WSA_INFINITE: none). */
static inline uint64_t wsp_deadline_wsa(DWORD timeout_ms) {
    return wsp_deadline_in(timeout_ms == WSA_INFINITE ? -1 : (int64_t)timeout_ms);
}
/* The deadline as a CLOCK_MONOTONIC time, for timed condition waits (waitable.h). */
struct timespec wsp_deadline_timespec(uint64_t deadline) WSP_INTERNAL;

/* ---- process state (process.c) ----------------------------------------------------------- */

extern atomic_int wsp_started WSP_INTERNAL;
/* 0 (and WSANOTINITIALISED) unless WSPStartup has been called more often than lpWSPCleanup. */
int wsp_check_started(LPINT lpErrno) WSP_INTERNAL;
/* The WSPStartup calls not yet matched by lpWSPCleanup. Set only by startup.c, under its
 * lock; a count above 0 turns wsp_started on. */
int wsp_startup_count(void) WSP_INTERNAL;
void wsp_set_startup_count(int n) WSP_INTERNAL;
/* The upcall table in force (the application's members, built-ins for the NULL ones). */
const WSPUPCALLTABLE *wsp_upcalls(void) WSP_INTERNAL;
/* Whether the table in force signals events with the built-in upcall, i.e. WSAEVENTs are
 * WSP's own event objects (which can then watch their sockets themselves: event_set.h). */
int wsp_upcalls_builtin_events(void) WSP_INTERNAL;
/* startup.c, under its lock: makes a copy of t the table in force; 0 or
 * WSA_NOT_ENOUGH_MEMORY. */
int wsp_publish_upcalls(const WSPUPCALLTABLE *t, int builtin_events) WSP_INTERNAL;
/* startup.c, under its lock, the reactor stopped: frees the tables no one reads any more. */
void wsp_free_retired_upcalls(void) WSP_INTERNAL;
/* How many replaced tables wait for that (startup.c's lock; tests read it alone). */
int wsp_retired_upcall_count(void) WSP_INTERNAL;

/* ---- the catalog ------------------------------------------------------------------------ */

struct wsp_catalog_entry {
    DWORD id;
    int af;
    bool connect_data; /* WSP's connect-data protocol (docs/PROTOCOL.md) */
};

/* The entry protocol info names (by its catalog entry id); NULL when it names none. */
const struct wsp_catalog_entry *wsp_catalog_entry_of(const WSAPROTOCOL_INFO *info) WSP_INTERNAL;
/* The entry for protocol info (NULL: chosen by af/type/protocol); NULL + *err when none fits. */
const struct wsp_catalog_entry *wsp_catalog_find(const WSAPROTOCOL_INFO *info, int af, int type,
                                                 int protocol, int *err) WSP_INTERNAL;
/* A socket address's size as the provider reports it (sizeof sockaddr_in / sockaddr_in6). */
socklen_t wsp_sockaddr_len(int af) WSP_INTERNAL;

/* ---- the reactor ------------------------------------------------------------------------- */

/* Something the reactor watches. The reactor calls on_ready on its own thread; after
 * wsp_reactor_remove the item may still see one last on_ready from an epoll batch already
 * read, so release (called on the reactor thread once no batch can name the item) is the only
 * place that may free it. */
struct wsp_reactor_item {
    int fd;
    void (*on_ready)(struct wsp_reactor_item *item, uint32_t events);
    void (*release)(struct wsp_reactor_item *item);
    /* Called when the reactor's clock passes item->due_ms (0: no timer). */
    void (*on_timer)(struct wsp_reactor_item *item, uint64_t now_ms);
    _Atomic uint64_t due_ms;
    atomic_int removed;
    /* Release only frees memory: no need to wake the reactor to run it soon. */
    bool quiet_release;
    struct wsp_reactor_item *next_zombie;
    struct wsp_reactor_item *timer_prev, *timer_next; /* list of items with timers */
    bool has_timer;
};

/* Work for the reactor thread to do right after the item (or the timers) it is working on:
 * what a layer above must not do there under its locks (an upcall that would wake a thread
 * straight into a lock the reactor still holds). */
struct wsp_reactor_task {
    void (*run)(struct wsp_reactor_task *task);
    struct wsp_reactor_task *next;
    bool queued;
};

int wsp_reactor_start(void) WSP_INTERNAL; /* reference counted with WSPStartup */
/* How many times a thread has woken the reactor's epoll_wait, since the process began. */
unsigned wsp_reactor_wakes(void) WSP_INTERNAL;
/* How many times the reactor has run the timers due (once per timerfd expiry). */
unsigned wsp_reactor_timer_passes(void) WSP_INTERNAL;
/* When the reactor's timerfd fires (0: disarmed): tests check that no stale timer is left. */
uint64_t wsp_reactor_timer_armed_ms(void) WSP_INTERNAL;
/* The last stop ends the thread: it refuses jobs from now on, runs those it took, closes its
 * descriptors and exits. wsp_reactor_wait_stopped waits for that (or for a start that revived
 * it), except on the reactor thread itself (a job or an upcall that ended the provider),
 * which exits once that job or upcall returns. No lock may be held across the wait that the
 * thread's current job could need. */
void wsp_reactor_stop(void) WSP_INTERNAL;
void wsp_reactor_wait_stopped(void) WSP_INTERNAL;
int wsp_reactor_add(struct wsp_reactor_item *item, uint32_t events) WSP_INTERNAL;
void wsp_reactor_modify(struct wsp_reactor_item *item, uint32_t events) WSP_INTERNAL;
/* Stops watching and schedules item->release on the reactor thread. */
void wsp_reactor_remove(struct wsp_reactor_item *item) WSP_INTERNAL;
/* The same, closing item->fd once epoll no longer watches it: the item's release must then
 * not close it again. */
void wsp_reactor_remove_and_close(struct wsp_reactor_item *item) WSP_INTERNAL;
/* wsp_reactor_remove for an item whose EPOLLONESHOT registration has fired and was not armed
 * again: that registration reports nothing more, so it is left in the epoll set (no system
 * call) until the descriptor's file closes, which drops it, or wsp_reactor_add_over takes it
 * over for another item. Only the reactor thread, in the item's own on_ready, knows that. */
void wsp_reactor_remove_disarmed(struct wsp_reactor_item *item) WSP_INTERNAL;
/* wsp_reactor_add for a descriptor that carries such a left registration: takes it over
 * (EPOLL_CTL_MOD). */
int wsp_reactor_add_over(struct wsp_reactor_item *item, uint32_t events) WSP_INTERNAL;
/* Stops watching item->fd but keeps the item alive (a batch already read may still hand it
 * to on_ready); wsp_reactor_add watches it again. */
void wsp_reactor_pause(struct wsp_reactor_item *item) WSP_INTERNAL;
/* Arms (due_ms > 0) or disarms (0) the item's timer; wakes the reactor when it gets earlier. */
void wsp_reactor_set_timer(struct wsp_reactor_item *item, uint64_t due_ms) WSP_INTERNAL;

/* Whether the calling thread is the reactor's. */
int wsp_reactor_is_current(void) WSP_INTERNAL;
/* Reactor thread only: runs task once the current item or timer returns (a task already
 * queued is not queued twice). */
void wsp_reactor_after(struct wsp_reactor_task *task) WSP_INTERNAL;

/* ---- sockets ----------------------------------------------------------------------------- */

enum wsp_state {
    WSP_STATE_OPEN,       /* created, maybe bound */
    WSP_STATE_LISTENING,
    WSP_STATE_CONNECTING, /* a non-blocking connect is in progress */
    WSP_STATE_CONNECTED,
};

#define WSP_SHUT_RECEIVE 1
#define WSP_SHUT_SEND 2

struct wsp_listener;
struct wsp_connector;
struct wsp_netwatch;
struct wsp_select_link;

/* A socket's network-event state (netevents.c): the lpWSPEventSelect / lpWSPAsyncSelect
 * registration, the record lpWSPEnumNetworkEvents reads, and lpWSPSelect's waiters. Guarded
 * by the socket's lock; zero-initialised means "not registered". */
struct wsp_netevents {
    int kind;           /* 0: none, 1: event select, 2: async select */
    WSAEVENT event;     /* event select */
    HWND hwnd;          /* async select */
    UINT msg;
    LONG mask;          /* the events asked for */
    LONG armed;         /* the events that may be raised now (re-enabling sets them); the
                         * socket's, kept across registrations (FD_ALL_EVENTS when new) */
    LONG pending;       /* event select: the record */
    int errors[FD_MAX_EVENTS];
    bool write_blocked; /* a send failed with WSAEWOULDBLOCK: FD_WRITE once space frees */
    bool eof;           /* the peer's FIN has been seen: no more data will arrive */
    bool dead;          /* reset: FD_CLOSE reported or due, nothing more to watch */
    bool read_edge;     /* edge-triggered watch: data arrived while FD_READ was off */
    int read_mark;      /* edge-triggered: bytes unread when last counted while FD_READ was
                         * off (-1: not counted); more than that is new data, FD_READ again */
    bool read_rearmed;  /* the watch was (re)armed since FD_READ was raised: an edge may
                         * report data already seen */
    bool oob_inline;    /* SO_OOBINLINE, as last seen: urgent data is FD_READ, not FD_OOB */
    bool connect_unreported;    /* a connect finished unregistered, */
    int connect_unreported_err; /* with this outcome */
    uint32_t interest;  /* what the watch is armed for now (0: disarmed) */
    struct wsp_netwatch *watch;         /* the reactor item while connected and registered */
    struct wsp_select_link *waiters;    /* lpWSPSelect calls waiting on this socket */
    /* The reactor raises events under the lock but calls the upcalls after it (a waiter
     * woken under the lock would run, block on it and cost two context switches): */
    bool deferring;                     /* raise_event records instead of calling */
    int deferred_count;
    struct { LONG ev; int err; } deferred[FD_MAX_EVENTS];
    bool flush_queued;                  /* on the reactor's list of deferred upcalls */
    struct wsp_socket *flush_next;
    int upcalls_in_flight;              /* close waits for these (cond: upcalls_done) */
    pthread_cond_t upcalls_done;        /* zeroed memory is a valid initial state (glibc) */
};

/* What the layer that gives a socket a role (listener.c, while it listens) lets the layers
 * below it ask, without their calling up into it. */
struct wsp_socket_role {
    /* With the socket's last reference: frees what must outlive lpWSPCloseSocket (calls in
     * progress may still use the listener). */
    void (*release)(struct wsp_socket *so);
    /* so->lock held. Whether FD_ACCEPT is due: a request waits for lpWSPAccept. */
    int (*acceptable)(const struct wsp_socket *so);
    /* so->lock held. Something other than a blocking lpWSPAccept waits for new requests (an
     * event registration, lpWSPSelect): the provider must take them off the kernel's queue
     * as they arrive, not leave them to the accepting threads. */
    void (*watch_arrivals)(struct wsp_socket *so);
};

struct wsp_socket {
    /* In the handle table (object_table.h): obj.handle is the SOCKET; the table holds one
     * reference, and every call in progress one more. */
    struct wsp_object obj;
    pthread_mutex_t lock;
    int fd;
    const struct wsp_catalog_entry *entry;
    enum wsp_state state;
    bool bound; /* lpWSPBind gave it its address; read only while it has not connected (an
                 * accepted socket never is: it is left false) */
    bool nonblocking;
    int fd_nonblocking; /* the descriptor's O_NONBLOCK as last set; -1: not known */
    bool closing; /* lpWSPCloseSocket ran: calls still inside fail as they leave */
    int shut;    /* directions lpWSPShutdown closed: WSP_SHUT_RECEIVE | WSP_SHUT_SEND */
    bool reset;  /* the connection was reset: Linux says so once, Windows on every call */
    int sending; /* lpWSPSend calls between their checks and their result: close wakes them */

    /* options the provider keeps itself */
    bool conditional_accept;
    int sndbuf_set, rcvbuf_set;   /* SO_SNDBUF/SO_RCVBUF as the application set them, */
    bool has_sndbuf, has_rcvbuf; /* read back as set (Windows); the kernel's until then */
    bool kernel_options_set; /* lpWSPSetSockOpt has set one the descriptor keeps */
    DWORD rcvtimeo_ms, sndtimeo_ms;
    DWORD connect_timeout_ms, connect_limit_ms;
    DWORD max_caller_data, max_callee_data;
    DWORD handshake_deadline_ms, pending_interval_ms;
    DWORD hold_limit, hold_deadline_ms;

    struct wsp_listener *listener;   /* while listening */
    const struct wsp_socket_role *role; /* set with the role (listener.c: while listening) */
    struct wsp_connector *connector; /* while a non-blocking connect-data connect runs */
    /* The connector left its fired one-shot registration of fd in the reactor's epoll set
     * (wsp_reactor_remove_disarmed): a watch started on fd takes it over. */
    bool fd_left_in_reactor;
    int connect_error;               /* the last connect's failure, until one succeeds */
    /* The names as they were while connected: Linux forgets them once both sides have shut
     * down, Windows keeps answering (socket.c). */
    struct sockaddr_storage peer_name, local_name;
    bool has_names;
    /* the answer a connect-data connect received: callee data and the negotiated QoS */
    uint8_t *callee_data;
    uint32_t callee_len;
    int refuse_reason; /* why the last connect-data connect was refused (WSP_REASON_…) */
    WSP_DROP_HANDLER_DATA drop_handler; /* listener: told of requests the provider ends */
    /* listener: held requests that ended unanswered, for WSPHeldNews (held.c's list), and
     * the event set when one does (WSP_HELD_EVENT) */
    struct wsp_held *held_news;
    WSAEVENT held_event;
    bool has_qos;
    QOS qos;
    struct wsp_netevents netev; /* network events (netevents.c) */
};

/* Sockets in the handle table (handles.c). acquire returns the socket with a reference taken
 * (NULL and WSAENOTSOCK for an unknown or closed handle); release drops it and frees the
 * socket with the last one. */
struct wsp_socket *wsp_socket_new(int fd, const struct wsp_catalog_entry *entry,
                                  int *err) WSP_INTERNAL;
struct wsp_socket *wsp_socket_acquire(SOCKET s, int *err) WSP_INTERNAL;
void wsp_socket_retain(struct wsp_socket *so) WSP_INTERNAL;
void wsp_socket_release(struct wsp_socket *so) WSP_INTERNAL;
/* Whether a call besides the caller's holds the socket now. */
int wsp_socket_in_use(struct wsp_socket *so) WSP_INTERNAL;
/* Removes the handle from the table: later acquires fail; the table's reference passes to the
 * caller. NULL when already gone. */
struct wsp_socket *wsp_socket_unpublish(SOCKET s) WSP_INTERNAL;
/* Closes every open socket with close_socket (the last lpWSPCleanup does, as WSACleanup does
 * on Windows). */
void wsp_socket_close_all(int (*close_socket)(SOCKET s)) WSP_INTERNAL;
/* Copies the options an accepted socket inherits from its listener. */
void wsp_socket_inherit(struct wsp_socket *child, const struct wsp_socket *parent) WSP_INTERNAL;

/* Sets O_NONBLOCK on so->fd to match on, skipped when so->fd_nonblocking says it is so
 * already (on every accept and registration the mode is usually right); 0 or a WSA code.
 * so->lock held. */
int wsp_socket_fd_nonblocking(struct wsp_socket *so, int on) WSP_INTERNAL;
/* Waits until fd polls with one of events, at most timeout_ms (-1: forever). Returns the
 * revents, 0 on time-out, or -WSA code. */
int wsp_fd_wait(int fd, short events, int timeout_ms) WSP_INTERNAL;
/* Sends all of buf on a socket that may be non-blocking, waiting at most timeout_ms in total
 * (-1: no limit); 0 or a WSA code. Only for the provider's own short frames. */
int wsp_fd_send_all(int fd, const void *buf, size_t len, int timeout_ms) WSP_INTERNAL;

/* ---- event objects (event_object.c) ------------------------------------------------------ */

/* Whether hEvent is an open WSP event object (the thread's last error is left alone). */
int wsp_event_is_open(WSAEVENT hEvent) WSP_INTERNAL;

/* ---- network events (netevents.c; the members in event_select.c) --------------------------- */

int wsp_event_select(SOCKET s, WSAEVENT ev, LONG events, LPINT lpErrno) WSP_INTERNAL;
int wsp_async_select(SOCKET s, HWND hwnd, UINT msg, LONG events, LPINT lpErrno) WSP_INTERNAL;
int wsp_enum_network_events(SOCKET s, WSAEVENT ev, LPWSANETWORKEVENTS out,
                            LPINT lpErrno) WSP_INTERNAL;
int wsp_select(int nfds, WSPFD_SET *r, WSPFD_SET *w, WSPFD_SET *e, const struct timeval *timeout,
               LPINT lpErrno) WSP_INTERNAL;
/* The hooks other files call; so->lock held in each. */
void wsp_netevents_reenable(struct wsp_socket *so, LONG event_bit_mask) WSP_INTERNAL;
void wsp_netevents_inherit(struct wsp_socket *child, struct wsp_socket *parent) WSP_INTERNAL;
void wsp_netevents_close(struct wsp_socket *so) WSP_INTERNAL;
/* Raises ev (one FD_* bit) with error err, when the registration asks for it and it is
 * enabled. */
void wsp_netevents_raise(struct wsp_socket *so, LONG ev, int err) WSP_INTERNAL;
/* Whether an event select or async select registration is in force. */
int wsp_netevents_registered(const struct wsp_socket *so) WSP_INTERNAL;
/* Whether the registration in force asks for ev (one FD_* bit). */
int wsp_netevents_asks(const struct wsp_socket *so, LONG ev) WSP_INTERNAL;
/* Reports a completed non-blocking connect (error 0 on success). */
void wsp_netevents_connected(struct wsp_socket *so, int error) WSP_INTERNAL;
/* A recv (mask FD_READ or FD_OOB) ended; drained: it saw nothing left to read (it filled
 * less than its buffers, found none, or found the end of the stream). */
void wsp_netevents_received(struct wsp_socket *so, LONG mask, int drained) WSP_INTERNAL;
/* A send on the socket failed with WSAEWOULDBLOCK: FD_WRITE comes once space frees. */
void wsp_netevents_send_blocked(struct wsp_socket *so) WSP_INTERNAL;

/* ---- listeners (listener.c) ---------------------------------------------------------------- */

/* Tears down a listener: refuses what is queued, wakes blocked accepts. Called with so->lock
 * held, from close. */
void wsp_listener_close(struct wsp_socket *so) WSP_INTERNAL;
/* The listener's counters. */
void wsp_listener_stats(struct wsp_socket *so, WSP_LISTENER_STATS_DATA *out) WSP_INTERNAL;
/* lpWSPListen on a socket its caller holds a reference to: 0 or a WSA error (WSAENOTSOCK
 * once lpWSPCloseSocket ran, even if the reference was taken before). */
int wsp_listen_acquired(struct wsp_socket *so, int backlog) WSP_INTERNAL;

/* ---- held requests (held.c) --------------------------------------------------------------- */

/* A provider extension function, as lpWSPIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER) hands it
 * out: cast to its LPFN_… type from wsp.h. */
typedef void (*wsp_extension_fn)(void);
/* The extension function with that GUID, or NULL. */
wsp_extension_fn wsp_extension_function(const GUID *id) WSP_INTERNAL;
/* The last cleanup, every socket closed (so every held request ended): retires the handles
 * the application never answered, as WSACleanup invalidates every handle. */
void wsp_held_close_all(void) WSP_INTERNAL;

/* ---- connectors (connect.c) --------------------------------------------------------------- */

/* Abandons a non-blocking connect-data connect in progress; so->lock held. */
void wsp_connector_close(struct wsp_socket *so) WSP_INTERNAL;
/* so->lock held. Takes the step the descriptor allows now, without waiting for the reactor,
 * so that no call sees a connect older than the kernel's (a completed plain-TCP connect is
 * usable at once). Nothing when no non-blocking connect runs. */
void wsp_connector_poll(struct wsp_socket *so) WSP_INTERNAL;

/* ---- the members of WSPPROC_TABLE, one file per concern ---------------------------------- */

SOCKET wsp_accept(SOCKET s, struct sockaddr *addr, LPINT addrlen, LPCONDITIONPROC cond,
                  DWORD_PTR ctx, LPINT lpErrno) WSP_INTERNAL;
int wsp_address_to_string(struct sockaddr *sa, DWORD salen, LPWSAPROTOCOL_INFO info, char *out,
                          LPDWORD outlen, LPINT lpErrno) WSP_INTERNAL;
int wsp_string_to_address(const char *str, int af, LPWSAPROTOCOL_INFO info, struct sockaddr *sa,
                          LPINT salen, LPINT lpErrno) WSP_INTERNAL;
int wsp_bind(SOCKET s, const struct sockaddr *name, int namelen, LPINT lpErrno) WSP_INTERNAL;
int wsp_close_socket(SOCKET s, LPINT lpErrno) WSP_INTERNAL;
int wsp_connect(SOCKET s, const struct sockaddr *name, int namelen, LPWSABUF caller,
                LPWSABUF callee, LPQOS sqos, LPQOS gqos, LPINT lpErrno) WSP_INTERNAL;
int wsp_get_peer_name(SOCKET s, struct sockaddr *name, LPINT namelen, LPINT lpErrno) WSP_INTERNAL;
int wsp_get_sock_name(SOCKET s, struct sockaddr *name, LPINT namelen, LPINT lpErrno) WSP_INTERNAL;
int wsp_get_sock_opt(SOCKET s, int level, int optname, char *optval, LPINT optlen,
                     LPINT lpErrno) WSP_INTERNAL;
int wsp_set_sock_opt(SOCKET s, int level, int optname, const char *optval, int optlen,
                     LPINT lpErrno) WSP_INTERNAL;
int wsp_ioctl(SOCKET s, DWORD code, LPVOID in, DWORD inlen, LPVOID out, DWORD outlen,
              LPDWORD returned, LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr,
              LPWSATHREADID tid, LPINT lpErrno) WSP_INTERNAL;
int wsp_listen(SOCKET s, int backlog, LPINT lpErrno) WSP_INTERNAL;
int wsp_recv(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD received, LPDWORD flags,
             LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr, LPWSATHREADID tid,
             LPINT lpErrno) WSP_INTERNAL;
int wsp_send(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD sent, DWORD flags,
             LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr, LPWSATHREADID tid,
             LPINT lpErrno) WSP_INTERNAL;
int wsp_shutdown(SOCKET s, int how, LPINT lpErrno) WSP_INTERNAL;
SOCKET wsp_socket(int af, int type, int protocol, LPWSAPROTOCOL_INFO info, GROUP g, DWORD flags,
                  LPINT lpErrno) WSP_INTERNAL;

#endif
