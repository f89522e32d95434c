/* The provider's one clock, and deadlines on it (internal.h). */
#include <limits.h>
#include <time.h>

#include "internal.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t wsp_now_ms(void) { return now_ns() / 1000000u; }

uint64_t wsp_deadline_in(int64_t timeout_ms) {
    if (timeout_ms < 0)
        return WSP_NO_DEADLINE;
    if (timeout_ms == 0)
        return 0; /* a moment already past: one look, no wait */
    /* From the next whole millisecond: a wait never ends before timeout_ms has passed. */
    return (now_ns() + 999999u) / 1000000u + (uint64_t)timeout_ms;
}

int wsp_ms_left(uint64_t deadline) {
    if (deadline == WSP_NO_DEADLINE)
        return -1;
    uint64_t now = wsp_now_ms();
    if (now >= deadline)
        return 0;
    return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

struct timespec wsp_deadline_timespec(uint64_t deadline) {
    return (struct timespec){.tv_sec = (time_t)(deadline / 1000u),
                             .tv_nsec = (long)(deadline % 1000u) * 1000000L};
}
