/* The C integration test harness.
 *
 * Each test is a function declared with TEST(name); it registers itself at start-up, so a test
 * file needs no entry in a shared list. The runner (runner.c) runs every test in its own
 * process with a time limit, so one crash or hang cannot hide another test's result, and prints
 * "N passed, N failed" at the end.
 */
#ifndef WSP_TEST_HARNESS_H
#define WSP_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*wsp_test_fn)(void);

void wsp_test_register(const char *name, const char *file, wsp_test_fn fn, int timeout_s);

#define TEST_WITH_TIMEOUT(name, seconds)                                              \
    static void test_##name(void);                                                    \
    __attribute__((constructor)) static void register_##name(void) {                  \
        wsp_test_register(#name, __FILE__, test_##name, seconds);                     \
    }                                                                                 \
    static void test_##name(void)

#define TEST(name) TEST_WITH_TIMEOUT(name, 30)

/* Run by the runner after each test, in the test's process (leaks.c): tears the provider down
 * and reports what it left behind; 0 when nothing. */
int wsp_test_leaks(void);

/* Failure ends the test's process with a message naming the line. */
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define CHECK_EQ(a, b)                                                                \
    do {                                                                              \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);               \
        if (check_a_ != check_b_) {                                                   \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n",       \
                    __FILE__, __LINE__, #a, check_a_, #b, check_b_);                  \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

#endif
