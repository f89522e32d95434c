/* Helpers the socket tests share: start the provider, make listeners and clients. */
#ifndef WSP_TEST_SUPPORT_H
#define WSP_TEST_SUPPORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <wsp.h>

#include "handshake.h"
#include "harness.h"

extern WSPPROC_TABLE T; /* the provider's table, filled by start() */

/* WSPStartup with a zeroed upcall table; fails the test on error. */
void start(void);
/* A bound, listening socket on 127.0.0.1 (or ::1 with AF_INET6), port chosen by the kernel;
 * catalog: a WSP_CATALOG_* id. Its address goes to *addr when addr is not NULL. */
SOCKET listener(DWORD catalog, int backlog, struct sockaddr_storage *addr);
/* A socket of a catalog entry. */
SOCKET new_socket(DWORD catalog);
/* The socket's local address. */
struct sockaddr_storage local_address(SOCKET s);
/* A blocking connect with caller data (NULL: none); returns the WSA error or 0. */
int connect_to(SOCKET s, const struct sockaddr_storage *addr, const char *data, WSABUF *callee);
/* Sets a DWORD option. */
void set_dword(SOCKET s, int level, int name, DWORD v);
/* Number of open file descriptors of this process. */
int open_fds(void);
/* The descriptors open at one moment, with what each names (a socket, an eventfd, ...). */
struct fd_snapshot {
    int n;
    int fd[256];
    char what[256][48];
};
void fd_snapshot_take(struct fd_snapshot *s);
/* Waits until the same descriptors are open as in s, or fails the test after ms, printing
 * those opened and those closed since (a bare count says only that something differs). */
void wait_for_fds(const struct fd_snapshot *s, int ms);
/* Sleeps for ms milliseconds. Not a means of synchronization: to wait for another thread, wait
 * on the condition (WAIT_FOR, wait_blocked). */
void sleep_ms(int ms);
/* Milliseconds on the monotonic clock. */
long long now_ms(void);
/* ms, or WSP_TEST_PATIENCE_MS when that is set and smaller. The mutation runner sets it: a
 * WAIT_FOR's deadline only turns a hang into a failure (the condition holds within
 * milliseconds when the provider is right), and a mutant that keeps it from holding is then
 * told in seconds rather than after the test's generous limit. */
long long test_patience(long long ms);

/* ---- more helpers for the provider-core and connect-data tests ---- */

/* Polls cond every few milliseconds until it holds; fails the test after ms milliseconds
 * (fewer when WSP_TEST_PATIENCE_MS says so: test_patience). */
#define WAIT_FOR(cond, ms)                                                            \
    do {                                                                              \
        long long wait_deadline_ = now_ms() + test_patience(ms);                      \
        while (!(cond)) {                                                             \
            if (now_ms() > wait_deadline_) {                                          \
                fprintf(stderr, "%s:%d: WAIT_FOR timed out: %s\n", __FILE__, __LINE__, \
                        #cond);                                                       \
                exit(1);                                                              \
            }                                                                         \
            sleep_ms(2);                                                              \
        }                                                                             \
    } while (0)

/* The size of the socket address in ss (by its family). */
int addr_len(const struct sockaddr_storage *ss);
/* The port of ss, in host order. */
int port_of(const struct sockaddr_storage *ss);
/* lpWSPCloseSocket; fails the test when it fails. */
void close_socket(SOCKET s);
/* lpWSPAccept without an address; returns the socket and sets *err (0 on success). */
SOCKET accept_with(SOCKET l, LPCONDITIONPROC cond, DWORD_PTR ctx, int *err);
/* The listener's counters (getsockopt(SOL_WSP, WSP_LISTENER_STATS)). */
WSP_LISTENER_STATS_DATA stats_of(SOCKET l);
/* FIONBIO through lpWSPIoctl. */
void set_nonblocking(SOCKET s, int on);
/* A full connect: caller data, callee buffer and QoS may each be NULL; returns 0 or the
 * WSA error. */
int connect_full(SOCKET s, const struct sockaddr_storage *addr, WSABUF *caller, WSABUF *callee,
                 QOS *sqos);
/* Sends all n bytes (one lpWSPSend, checked to send everything). */
void send_all(SOCKET s, const void *buf, size_t n);
/* One lpWSPRecv into buf; returns 0 and *got, or the WSA error. */
int recv_some(SOCKET s, void *buf, size_t n, DWORD flags, DWORD *got);
/* Receives exactly n bytes (fails the test on error or end of stream). */
void recv_exact(SOCKET s, void *buf, size_t n);
/* A plain POSIX TCP socket connected to addr (blocking); the test fails if it cannot. */
int raw_connect(const struct sockaddr_storage *addr);
/* A plain POSIX blocking receive with a time-out: bytes read, 0 at end of stream, or -errno
 * (-EAGAIN on time-out). */
int raw_recv(int fd, void *buf, size_t n, int timeout_ms);
/* On a raw client: reads the server's 8-byte answer frame into frame (the test fails if the
 * stream ends or is reset before it is whole), then waits for what ends the stream: 0 (a FIN)
 * or -errno (-ECONNRESET). Fails the test after 10 s. */
int raw_recv_frame_then_end(int fd, uint8_t frame[8]);

/* A connect run on its own thread (connect-data connects block until the server decides). */
struct async_connect {
    SOCKET s;
    struct sockaddr_storage addr;
    WSABUF *caller, *callee;
    QOS *sqos;
    int result;   /* the WSA error, or 0 */
    long long ms; /* how long the connect took */
    pthread_t thread;
};
void async_connect_start(struct async_connect *c);
int async_connect_join(struct async_connect *c);

/* An address where nobody listens: 127.0.0.1 and a port bound by a socket of the test's own
 * that never listens, so a connect there is refused. The socket stays open until the process
 * ends, so that no other socket (of this test or of another process) can take the port
 * meanwhile: a closed listener's port can be. */
struct sockaddr_storage dead_address(void);

/* The bytes the kernel holds unread for the TCP socket on 127.0.0.1 whose local port is
 * local_port and whose peer's port is peer_port (its rx_queue in /proc/net/tcp); -1 when there
 * is no such connection. Lets a test see that the other side has read what was sent. */
int tcp_unread(int local_port, int peer_port);

/* The state of that connection as /proc/net/tcp shows it (TCP_CLOSE_WAIT: the peer's FIN has
 * arrived); -1 when there is no such connection. */
int tcp_state(int local_port, int peer_port);

/* The bytes waiting to be read on a connected socket (FIONREAD, which changes no state). */
unsigned long unread_bytes(SOCKET s);

/* Returns once the provider has taken the raw client's connection (client_fd, connected to
 * the listener at laddr) from the kernel: the server end of the connection is established
 * and the kernel's accept queue of the listener is empty (both read from /proc/net/tcp*).
 * Fails the test after 10 s. */
void wait_taken_from_kernel(const struct sockaddr_storage *laddr, int client_fd);

/* ---- knowing that another thread is blocked in a call ----
 * Nothing in the provider says "a thread waits here", so a test that needs a thread to be
 * inside a blocking call before it acts (closes the socket, sets the event) records the thread
 * just before the call and waits until the kernel shows that thread asleep in one and the same
 * wait (system call and address) for several looks in a row, the call not having returned. A thread that returns first fails the test: its premise did not hold. */
struct blocker {
    int tid;      /* the thread's id (gettid), 0 until blocker_enter */
    int returned; /* set by blocker_leave */
};
/* On the blocking thread, just before the call. */
void blocker_enter(struct blocker *b);
/* On the blocking thread, just after the call. */
void blocker_leave(struct blocker *b);
/* Returns once b's thread is asleep in the call; fails the test after 10 s or if the call
 * returned. */
void wait_blocked(struct blocker *b);
/* As wait_blocked, but a call that returned first is an answer: false. */
bool wait_blocked_or_returned(struct blocker *b);

/* ---- which thread waits where (/proc/self/task/<tid>/syscall) ---- */

/* The reactor thread's id (the thread names itself "wsp-reactor" as it starts), or 0 while
 * there is none so named. */
int reactor_tid(void);
/* Whether thread tid is in a futex call on addr now (asleep on the mutex at addr). */
bool in_futex_on(int tid, const void *addr);
/* How many threads of the process are in a futex call on addr now. */
int threads_in_futex_on(const void *addr);

/* ---- the process's memory ---- */

/* The process's virtual memory size, in KiB (VmSize in /proc/self/status). */
long vm_kb(void);
/* The stack size a new thread gets by default, in KiB (pthread_getattr_default_np). */
long default_stack_kb(void);

/* ---- knowing that the reactor has caught up ----
 * The reactor has seen to every event that came before a moment (timers due included) once it
 * has taken a second connection that arrived after it on a listener of its own (the first may
 * share a batch with them). The listener is made at catch_up_start, before what the test
 * counts (making it costs an epoll_ctl); the arrivals add nothing the reactor must watch. */
struct catch_up {
    SOCKET l; /* plain TCP, backlog 8 */
    struct sockaddr_storage addr;
    int client[2]; /* -1 until wait_reactor_caught_up */
};
void catch_up_start(struct catch_up *c);
/* Once per catch_up: two arrivals, each awaited in the listener's queue. */
void wait_reactor_caught_up(struct catch_up *c);
/* Closes the two clients, then the listener. */
void catch_up_close(struct catch_up *c);

/* ---- the server's side of a connect-data connect ---- */

/* Accepts the next connection on the plain listening descriptor lfd and reads from it until
 * buf (n bytes) holds a whole request, decoded into *f (its data point into buf); returns the
 * accepted descriptor. Fails the test if the connection ends first or the request is
 * malformed. */
int accept_whole_request(int lfd, uint8_t *buf, size_t n, wsp_hs_frame *f);

/* ---- holding the event thread in a job ----
 * A job that keeps the event thread (the reactor) busy until the test lets it go: no event,
 * timer pass or other job runs meanwhile. Given a listener (once_queued), the job holds only
 * from the first moment that listener has a request queued: until then it hands itself on,
 * to run after the next event. The struct must outlive the job (make it static). */
struct event_thread_hold {
    SOCKET once_queued; /* 0: at once */
    atomic_int held;    /* the job holds the event thread */
    atomic_int holding; /* until event_thread_let_go */
};
/* Posts the job; returns at once (event_thread_wait_held waits for the hold). */
void event_thread_hold_post(struct event_thread_hold *h, SOCKET once_queued);
void event_thread_wait_held(struct event_thread_hold *h);
/* Both: returns with the event thread held (at once). */
void event_thread_hold(struct event_thread_hold *h);
/* Lets the job return. */
void event_thread_let_go(struct event_thread_hold *h);

#endif
