/* Message queues, the HWNDs of the built-in WPUPostMessage; wsp/event.h is the contract.
 *
 * A queue is a growable ring of WSPMSG under a mutex, a condition variable for readers
 * blocked in WSPGetMessage, and an eventfd readable exactly while the ring is non-empty
 * (waitable.h). Posting never blocks and never drops: the ring doubles when full, because
 * a provider posting network events has no one to report a full queue to.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "internal.h"
#include "object_table.h"
#include "waitable.h"
#include "wsp.h"

#define INITIAL_CAPACITY 16

struct queue {
    struct wsp_object obj;
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    bool destroyed; /* a thread that took its reference before the destroy may still hold it */
    int fd;
    WSPMSG *ring;
    size_t head, count, capacity;
};

static struct wsp_object_table queues = WSP_OBJECT_TABLE_INIT(WSP_TAG_QUEUE);

static void destroy_queue(struct wsp_object *obj) {
    struct queue *q = (struct queue *)obj;
    close(q->fd);
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    free(q);
}

static struct queue *acquire(HWND h) {
    struct wsp_object *obj = wsp_table_get(&queues, (uintptr_t)h);
    if (obj == NULL)
        WSASetLastError(WSA_INVALID_HANDLE);
    return (struct queue *)obj;
}

static void release(struct queue *q) {
    wsp_object_release(&q->obj);
}

HWND WSPCreateMessageQueue(void) {
    struct queue *q = calloc(1, sizeof *q);
    if (q == NULL) {
        WSASetLastError(WSA_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    int err = wsp_cond_init_monotonic(&q->nonempty);
    if (err) {
        WSASetLastError(err);
        free(q);
        return NULL;
    }
    q->fd = wsp_readiness_fd_open();
    if (q->fd < 0) {
        WSASetLastError(wsp_wsa_resource_error(errno));
        pthread_cond_destroy(&q->nonempty);
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->lock, NULL);
    wsp_object_init(&q->obj, destroy_queue);
    uintptr_t h = wsp_table_add(&queues, &q->obj);
    if (h == 0) {
        destroy_queue(&q->obj);
        WSASetLastError(WSA_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    return (HWND)h;
}

BOOL WSPDestroyMessageQueue(HWND hWnd) {
    struct wsp_object *obj = wsp_table_remove(&queues, (uintptr_t)hWnd);
    if (obj == NULL) {
        WSASetLastError(WSA_INVALID_HANDLE);
        return FALSE;
    }
    struct queue *q = (struct queue *)obj;
    pthread_mutex_lock(&q->lock);
    q->destroyed = true;
    /* Readable from now on, so an application's poll loop wakes and learns the handle is
     * gone; the messages themselves are freed with the queue. */
    if (q->count == 0)
        wsp_readiness_fd_raise(q->fd);
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
    release(q);
    return TRUE;
}

/* Caller holds q->lock and the ring is full. Unwraps the ring into a buffer twice its size. */
static bool grow(struct queue *q) {
    size_t capacity = q->capacity ? q->capacity * 2 : INITIAL_CAPACITY;
    WSPMSG *ring = malloc(capacity * sizeof *ring);
    if (ring == NULL)
        return false;
    for (size_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) % q->capacity];
    free(q->ring);
    q->ring = ring;
    q->head = 0;
    q->capacity = capacity;
    return true;
}

BOOL WSPPostMessage(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    struct queue *q = acquire(hWnd);
    if (q == NULL)
        return FALSE;
    int error = 0;
    pthread_mutex_lock(&q->lock);
    if (q->destroyed) {
        error = WSA_INVALID_HANDLE;
    } else if (q->count == q->capacity && !grow(q)) {
        error = WSA_NOT_ENOUGH_MEMORY;
    } else {
        q->ring[(q->head + q->count) % q->capacity] = (WSPMSG){hWnd, Msg, wParam, lParam};
        if (q->count++ == 0)
            wsp_readiness_fd_raise(q->fd);
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->lock);
    release(q);
    if (error)
        WSASetLastError(error);
    return error == 0;
}

static int get_message(HWND hWnd, WSPMSG *lpMsg, DWORD dwTimeoutMs) {
    if (lpMsg == NULL) {
        WSASetLastError(WSA_INVALID_PARAMETER);
        return -1;
    }
    struct queue *q = acquire(hWnd);
    if (q == NULL)
        return -1;
    uint64_t deadline = wsp_deadline_wsa(dwTimeoutMs);
    /* Expiry is checked after the queue, so a message that arrives as time runs out is
     * still taken. */
    bool expired = dwTimeoutMs == 0;
    int result;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (q->destroyed) {
            result = -1;
            break;
        }
        if (q->count > 0) {
            *lpMsg = q->ring[q->head];
            q->head = (q->head + 1) % q->capacity;
            if (--q->count == 0)
                wsp_readiness_fd_lower(q->fd);
            result = 1;
            break;
        }
        if (expired) {
            result = 0;
            break;
        }
        expired = wsp_cond_wait_until(&q->nonempty, &q->lock, deadline) == ETIMEDOUT;
    }
    pthread_mutex_unlock(&q->lock);
    release(q);
    if (result < 0)
        WSASetLastError(WSA_INVALID_HANDLE);
    return result;
}

/* The event thread never waits (wsp.h): there a time-out that would have to wait fails. */
int WSPGetMessage(HWND hWnd, WSPMSG *lpMsg, DWORD dwTimeoutMs) {
    if (dwTimeoutMs == 0 || !wsp_reactor_is_current())
        return get_message(hWnd, lpMsg, dwTimeoutMs);
    int result = get_message(hWnd, lpMsg, 0);
    if (result != 0)
        return result;
    WSASetLastError(WSAEWOULDBLOCK);
    return -1;
}

int WSPMessageQueueFd(HWND hWnd) {
    struct queue *q = acquire(hWnd);
    if (q == NULL)
        return -1;
    int fd = q->fd;
    release(q);
    return fd;
}
