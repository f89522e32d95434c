/* The per-handle routing records: which provider made each handle, as ws2_32 keeps one
 * context per socket. A hash table of chains under a read-write lock; lookups (every call)
 * share it, handles coming and going take it alone. It doubles when the chains grow long. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "winsock_internal.h"

#define INITIAL_BUCKETS 256

struct node {
    SOCKET s;
    struct winsock_route route;
    struct node *next;
};

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct node **buckets; /* lock */
static size_t bucket_count, node_count;

static size_t slot(SOCKET s, size_t n) {
    /* Handles may differ only in a few bits (an index and a generation): mix them. */
    uint64_t h = (uint64_t)s * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (n - 1);
}

/* lock held for writing. Without memory the table stays as it was (bucket_count 0 says
 * there is none yet). */
static void grow(void) {
    size_t n = bucket_count ? bucket_count * 2 : INITIAL_BUCKETS;
    struct node **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < bucket_count; i++) {
        struct node *e = buckets[i];
        while (e) {
            struct node *next = e->next;
            size_t k = slot(e->s, n);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(buckets);
    buckets = b;
    bucket_count = n;
}

int winsock_route_add(SOCKET s, struct winsock_route route) {
    struct node *e = malloc(sizeof *e);
    if (!e)
        return WSAENOBUFS;
    e->s = s;
    e->route = route;
    pthread_rwlock_wrlock(&lock);
    if (node_count >= bucket_count * 2)
        grow(); /* when it cannot, longer chains still work, once there is a table */
    if (bucket_count == 0) {
        pthread_rwlock_unlock(&lock);
        free(e);
        return WSAENOBUFS;
    }
    size_t k = slot(s, bucket_count);
    e->next = buckets[k];
    buckets[k] = e;
    node_count++;
    pthread_rwlock_unlock(&lock);
    return 0;
}

int winsock_route_find(SOCKET s, struct winsock_route *route) {
    int err = WSAENOTSOCK;
    pthread_rwlock_rdlock(&lock);
    if (bucket_count) {
        for (struct node *e = buckets[slot(s, bucket_count)]; e; e = e->next) {
            if (e->s == s) {
                *route = e->route;
                err = 0;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&lock);
    return err;
}

void winsock_route_remove(SOCKET s) {
    struct node *gone = NULL;
    pthread_rwlock_wrlock(&lock);
    if (bucket_count) {
        for (struct node **p = &buckets[slot(s, bucket_count)]; *p; p = &(*p)->next) {
            if ((*p)->s == s) {
                gone = *p;
                *p = gone->next;
                node_count--;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&lock);
    free(gone);
}

size_t winsock_route_count(void) {
    pthread_rwlock_rdlock(&lock);
    size_t n = node_count;
    pthread_rwlock_unlock(&lock);
    return n;
}

size_t winsock_route_longest_chain(void) {
    size_t longest = 0;
    pthread_rwlock_rdlock(&lock);
    for (size_t i = 0; i < bucket_count; i++) {
        size_t n = 0;
        for (struct node *e = buckets[i]; e; e = e->next)
            n++;
        if (n > longest)
            longest = n;
    }
    pthread_rwlock_unlock(&lock);
    return longest;
}

void winsock_route_drain(void (*fn)(SOCKET s, struct winsock_route route)) {
    pthread_rwlock_wrlock(&lock);
    struct node **b = buckets;
    size_t n = bucket_count;
    buckets = NULL;
    bucket_count = node_count = 0;
    pthread_rwlock_unlock(&lock);
    /* The calls happen outside the lock: a close may block (lingering) and must not hold up
     * lookups, which now find nothing. */
    for (size_t i = 0; i < n; i++) {
        struct node *e = b[i];
        while (e) {
            struct node *next = e->next;
            fn(e->s, e->route);
            free(e);
            e = next;
        }
    }
    free(b);
}

int winsock_route_call(SOCKET s, struct winsock_route *route) {
    int err = winsock_check_started();
    return err ? err : winsock_route_find(s, route);
}
