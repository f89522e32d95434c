/* Runs every registered test in its own child process; see harness.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct wsp_test {
    const char *name;
    const char *file;
    wsp_test_fn fn;
    int timeout_s;
};

static struct wsp_test tests[512];
static int test_count;

void wsp_test_register(const char *name, const char *file, wsp_test_fn fn, int timeout_s) {
    if (test_count == (int)(sizeof tests / sizeof tests[0])) {
        fprintf(stderr, "too many tests: raise the limit in runner.c\n");
        exit(2);
    }
    tests[test_count++] = (struct wsp_test){name, file, fn, timeout_s};
}

static int cmp_tests(const void *a, const void *b) {
    const struct wsp_test *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

static int selected(const char *name, int argc, char **argv) {
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return 1;
    return 0;
}

/* Returns 0 on pass; prints why otherwise. */
static int run_one(const struct wsp_test *t) {
    fflush(stdout);
    if (getenv("WSP_TEST_NOFORK")) { /* for a debugger: run in this process */
        t->fn();
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm((unsigned)t->timeout_s);
        t->fn();
        fflush(NULL);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        printf("  timed out after %d s\n", t->timeout_s);
    else if (WIFSIGNALED(status))
        printf("  killed by signal %d\n", WTERMSIG(status));
    else
        printf("  exit status %d\n", WEXITSTATUS(status));
    return 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    qsort(tests, (size_t)test_count, sizeof tests[0], cmp_tests);
    int passed = 0, failed = 0;
    for (int i = 0; i < test_count; i++) {
        if (!selected(tests[i].name, argc, argv))
            continue;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = run_one(&tests[i]);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        printf("%s %s (%.0f ms)\n", rc ? "FAIL" : "ok  ", tests[i].name, ms);
        if (rc)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
