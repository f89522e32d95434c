/* Fault injection: makes a chosen call of a system or allocation function, made by the
 * provider, fail with a chosen error.
 *
 * The test binary links a copy of the provider whose calls to these functions are renamed to
 * the wrappers in faults.c (objcopy --redefine-syms=Tests/c/faults.syms; see the Makefile).
 * Only the provider's calls go through them: a test's own sockets, threads and allocations
 * never fail by accident, and the descriptors counted as the provider's are the provider's.
 * Unarmed, a wrapper costs a few atomic loads.
 *
 * Faults last for the test's process (each test runs in its own); arm them just before the
 * call under test, and check fault_fired afterwards, so that a test cannot pass without
 * having taken the path it is about. */
#ifndef WSP_TEST_FAULTS_H
#define WSP_TEST_FAULTS_H

#include <stddef.h>

/* The functions that can be made to fail. Descriptor-making ones are also counted (below). */
#define WSP_FAULT_FUNCTIONS(X)                                                         \
    X(malloc) X(calloc) X(realloc) X(socket) X(accept4) X(eventfd) X(epoll_create1)    \
    X(timerfd_create) X(epoll_ctl) X(epoll_wait) X(poll) X(send) X(recv) X(sendmsg)    \
    X(recvmsg) X(read) X(write) X(dup3) X(fcntl) X(ioctl) X(listen) X(bind) X(connect)  \
    X(getsockname)                                                                     \
    X(setsockopt) X(getsockopt) X(shutdown) X(pthread_create) X(close)                \
    X(pthread_cond_init)

enum fault_fn {
#define WSP_FAULT_ENUM(name) FAULT_##name,
    WSP_FAULT_FUNCTIONS(WSP_FAULT_ENUM)
#undef WSP_FAULT_ENUM
    FAULT_FUNCTION_COUNT
};

struct fault {
    int nth;         /* the first call that fails, counted from fault_set: 1 is the next */
    int times;       /* how many calls in a row fail; 0 means 1, -1 every call from nth on */
    int err;         /* the errno they fail with (malloc and co. return NULL with it) */
    int this_thread; /* count only the calls of the thread that armed the fault */
    /* send, recv, read, write, sendmsg, recvmsg: when set, the failing calls do not fail but
     * move at most this many bytes (a short transfer); err is then ignored. */
    size_t max_bytes;
    /* When set, the matching calls neither fail nor shorten: the calling thread waits, before
     * the call, until fault_release (a window held open, e.g. while the provider has released
     * a lock, for another thread to act in); err and max_bytes are then ignored. */
    int hold;
};

/* Arms a fault on fn, replacing any armed before; resets fn's counters. */
void fault_set(enum fault_fn fn, struct fault f);
#define FAULT(fn, ...) fault_set(FAULT_##fn, (struct fault){__VA_ARGS__})
/* Arms one more fault on fn beside those armed (at most 4), its calls counted from now:
 * e.g. a short send, then one that finds the buffer full. */
void fault_add(enum fault_fn fn, struct fault f);
#define FAULT_ALSO(fn, ...) fault_add(FAULT_##fn, (struct fault){__VA_ARGS__})
/* Disarms every fault (the counters stay). */
void fault_clear(void);
/* Calls of fn counted by its first fault since it was armed (only the arming thread's with
 * this_thread). */
int fault_calls(enum fault_fn fn);
/* Calls of fn made to fail (or shortened, or held) by its faults since they were armed. */
int fault_fired(enum fault_fn fn);
/* How many of the provider's threads wait in a held call (.hold) now. */
int fault_holding(void);
/* Lets every held call go on, and every later one of a hold armed before this. */
void fault_release(void);
/* How many of the provider's poll calls made on the calling thread could have slept (had a
 * time-out other than 0), armed or not, since the thread began. */
int fault_sleeping_polls(void);
/* The longest time-out (ms; -1, none, counts as longest) of the provider's poll calls made on
 * the calling thread since the last call of this function; INT_MIN when there was none. */
int fault_longest_poll(void);
/* How many of the provider's epoll_wait calls (the event thread's) could have slept (had a
 * time-out other than 0), armed or not, since the process began. */
int fault_sleeping_epoll_waits(void);

/* ---- the provider's descriptors ----
 * Every descriptor the provider opens (socket, accept4, eventfd, epoll_create1,
 * timerfd_create, fcntl F_DUPFD*) is recorded until the provider closes it. */

/* How many descriptors the provider opened and has not closed. */
int provider_fds(void);
/* Writes the provider's open descriptors to out (at most max); returns how many there are. */
int provider_fd_list(int *out, int max);
/* How many times the provider closed a descriptor it did not hold open (-1, or one it had
 * closed already, which may be another's by then); the leak check fails a test for any. */
int provider_foreign_closes(void);

/* ---- the provider's locks ----
 * Every mutex and condition variable the provider initialises (pthread_cond_init here,
 * pthread_mutex_init and the destroys by leaks.c's wrappers) is counted until it destroys it. */

/* How many of the provider's mutexes and condition variables are initialised, not destroyed. */
int provider_syncs(void);
/* Counts one initialised (+1) or destroyed (-1). */
void provider_syncs_add(int change);

#endif
