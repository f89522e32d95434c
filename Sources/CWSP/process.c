/* The provider's process-wide state: whether WSPStartup is in force (and how many times), and
 * the upcall table in force. The bottom of the provider: every layer may read it; only
 * startup.c changes it. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

atomic_int wsp_started; /* read on every call; the count stays the authority */
static int startup_count;  /* startup.c's lock */

/* The upcall table in force. The reactor and any thread raising an event read it without a
 * lock, so a start-up with a different table publishes a new copy instead of writing over the
 * one in use; the copies it replaced are freed by the last cleanup, after the reactor stops. */
struct upcall_copy {
    WSPUPCALLTABLE table;
    int builtin_events;
    struct upcall_copy *retired_next; /* set when it is retired, read only after that */
};
static _Atomic(struct upcall_copy *) upcalls_in_force;
static struct upcall_copy *retired_upcalls; /* startup.c's lock */

int wsp_check_started(LPINT lpErrno) {
    if (atomic_load(&wsp_started))
        return 1;
    wsp_fail(lpErrno, WSANOTINITIALISED);
    return 0;
}

int wsp_startup_count(void) { return startup_count; }

void wsp_set_startup_count(int n) {
    startup_count = n;
    atomic_store(&wsp_started, n > 0);
}

const WSPUPCALLTABLE *wsp_upcalls(void) {
    return &atomic_load_explicit(&upcalls_in_force, memory_order_acquire)->table;
}

int wsp_upcalls_builtin_events(void) {
    return atomic_load_explicit(&upcalls_in_force, memory_order_acquire)->builtin_events;
}

int wsp_publish_upcalls(const WSPUPCALLTABLE *t, int builtin_events) {
    struct upcall_copy *now = atomic_load(&upcalls_in_force);
    if (now && memcmp(&now->table, t, sizeof *t) == 0)
        return 0; /* the usual case: the same table again */
    struct upcall_copy *copy = malloc(sizeof *copy);
    if (!copy)
        return WSA_NOT_ENOUGH_MEMORY;
    copy->table = *t;
    copy->builtin_events = builtin_events;
    atomic_store_explicit(&upcalls_in_force, copy, memory_order_release);
    if (now) {
        now->retired_next = retired_upcalls;
        retired_upcalls = now;
    }
    return 0;
}

void wsp_free_retired_upcalls(void) {
    while (retired_upcalls) {
        struct upcall_copy *next = retired_upcalls->retired_next;
        free(retired_upcalls);
        retired_upcalls = next;
    }
}

int wsp_retired_upcall_count(void) {
    int n = 0;
    for (const struct upcall_copy *c = retired_upcalls; c; c = c->retired_next)
        n++;
    return n;
}
