/* The test harness's own knobs for the mutation runner (Tests/mutate/run): WAIT_FOR's patience
 * and the per-test alarm of an exact "name@S" argument. Each shortens the wait before a hang is
 * told; neither may shorten a test that the runner does not ask to. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST(harness_patience_caps_wait_for_deadlines_only_when_asked) {
    unsetenv("WSP_TEST_PATIENCE_MS");
    CHECK(test_patience(10000) == 10000);
    setenv("WSP_TEST_PATIENCE_MS", "5000", 1);
    CHECK(test_patience(10000) == 5000);
    CHECK(test_patience(200) == 200); /* never longer than the test asked */
    setenv("WSP_TEST_PATIENCE_MS", "0", 1);
    CHECK(test_patience(10000) == 10000);
}

/* Sleeps past a one-second alarm only when the test below runs it. */
TEST(harness_sleeper_for_the_alarm_test) {
    if (getenv("WSP_TEST_HARNESS_SLEEP"))
        sleep_ms(5000);
}

/* Runs this test binary with args; its output in out. (readlink, not the link itself: under
 * valgrind only readlink gives this binary rather than valgrind's.) */
static int run_self(const char *args, char *out, size_t cap) {
    char self[256], cmd[512];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(len > 0);
    self[len] = '\0';
    snprintf(cmd, sizeof cmd, "WSP_TEST_EXACT=1 WSP_TEST_HARNESS_SLEEP=1 WSP_TEST_LEAKS=0 %s %s",
             self, args);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    return pclose(p);
}

TEST(harness_exact_argument_with_an_alarm_ends_the_test_then) {
    char out[4096];
    int rc = run_self("harness_sleeper_for_the_alarm_test@1", out, sizeof out);
    CHECK(rc != 0);
    CHECK(strstr(out, "timed out after 1 s") != NULL);
    CHECK(strstr(out, "FAIL harness_sleeper_for_the_alarm_test ") != NULL);
    /* An unknown name is told as such, with its argument. */
    rc = run_self("no_such_test@3", out, sizeof out);
    CHECK(rc != 0);
    CHECK(strstr(out, "no test named no_such_test@3") != NULL);
}
