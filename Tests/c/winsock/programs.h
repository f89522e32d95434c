/* What the Winsock program tests share: the glue around programs written as for Windows.
 *
 * On Windows such a server and its clients would be separate processes meeting at a fixed
 * port. Here they are threads of one test, and the server listens on a port the kernel
 * chooses (tests run side by side), so it announces the port through a rendezvous and the
 * clients wait for it. Nothing else in a program differs from its Windows source.
 */
#ifndef WSP_TEST_WINSOCK_PROGRAMS_H
#define WSP_TEST_WINSOCK_PROGRAMS_H

#include <pthread.h>
#include <stdio.h>

#include "harness.h"

struct rendezvous {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char port[16]; /* empty until announced */
};
#define RENDEZVOUS_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, ""}

static inline void announce_port(struct rendezvous *r, unsigned port) {
    pthread_mutex_lock(&r->lock);
    snprintf(r->port, sizeof r->port, "%u", port);
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

/* The announced port, as the string getaddrinfo takes. The runner's time limit ends a test
 * whose server never announces. */
static inline const char *await_port(struct rendezvous *r) {
    pthread_mutex_lock(&r->lock);
    while (r->port[0] == '\0')
        pthread_cond_wait(&r->changed, &r->lock);
    pthread_mutex_unlock(&r->lock);
    return r->port;
}

/* Runs fn(arg) on a new thread; fails the test if it cannot. */
static inline pthread_t start_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fn, arg) == 0);
    return t;
}

/* Joins t and returns what its function returned, as an int. */
static inline int join_thread(pthread_t t) {
    void *rv = NULL;
    CHECK(pthread_join(t, &rv) == 0);
    return (int)(long)rv;
}

#endif
