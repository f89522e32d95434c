/* The provider's clock (Sources/CWSP/clock.c): deadlines in whole milliseconds that never
 * come before the time-out has passed, and the time left until one. */
#include <limits.h>
#include <time.h>

#include "harness.h"
#include "internal.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A deadline counts from the next whole millisecond: taken at any moment within one, it is
 * at least the time-out after that moment (rounding down would end waits early). */
TEST(clock_deadline_is_never_before_the_time_out_has_passed) {
    for (int i = 0; i < 50; i++) {
        uint64_t before = now_ns();
        uint64_t d = wsp_deadline_in(5);
        CHECK(d * 1000000u >= before + 5000000u);
        uint64_t after = now_ns();
        CHECK(d * 1000000u <= after + 6000000u); /* and within the millisecond rounded up */
    }
    CHECK_EQ(wsp_deadline_in(0), 0); /* already past: one look, no wait */
    CHECK(wsp_deadline_in(-1) == WSP_NO_DEADLINE);
    CHECK_EQ(wsp_ms_left(WSP_NO_DEADLINE), -1);
    CHECK_EQ(wsp_ms_left(0), 0);
    CHECK_EQ(wsp_ms_left(wsp_now_ms()), 0);
}

/* ---- far deadlines (session 8, s8-m3) ---- */

/* The time left to a deadline further away than an int counts is INT_MAX, a wait as long as
 * one can be: never a count wrapped short or negative. A near one is at most its distance. */
TEST(clock_time_left_to_a_far_deadline_is_int_max) {
    uint64_t now = wsp_now_ms();
    CHECK_EQ(wsp_ms_left(now + (uint64_t)INT_MAX + 1000u), INT_MAX);
    CHECK_EQ(wsp_ms_left(now + ((uint64_t)1 << 40)), INT_MAX);
    CHECK_EQ(wsp_ms_left(WSP_NO_DEADLINE - 1), INT_MAX);
    int left = wsp_ms_left(now + 1000000u);
    CHECK(left > 0 && left <= 1000000);
}
