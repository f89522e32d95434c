/* Runs every registered test in its own child process; see harness.h.
 *
 * Arguments select tests by a part of their name. For the mutation runner (Tests/mutate/run):
 * `--list` prints "name file timeout" for each test and runs nothing; WSP_TEST_EXACT=1 makes
 * the arguments whole names, in the order given (the runner orders them by how likely they are
 * to fail), each optionally followed by "@S": at most S seconds for that test instead of its
 * own limit (a mutant that makes a quick test hang is told sooner); WSP_TEST_FAILFAST=1 stops
 * at the first failure.
 *
 * After each test its process tears the provider down and fails the test if a descriptor the
 * provider opened, or memory (under LeakSanitizer), was left behind (leaks.c);
 * WSP_TEST_LEAKS=0 skips that. */
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

static struct wsp_test tests[2048];
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

/* The test an exact argument names ("name" or "name@S"), in *out with its limit lowered to
 * S seconds when S is smaller; NULL when no test has the name. */
static const struct wsp_test *by_name(const char *arg, struct wsp_test *out) {
    const char *at = strchr(arg, '@');
    size_t len = at ? (size_t)(at - arg) : strlen(arg);
    for (int i = 0; i < test_count; i++)
        if (strlen(tests[i].name) == len && strncmp(tests[i].name, arg, len) == 0) {
            *out = tests[i];
            int s = at ? atoi(at + 1) : 0;
            if (s > 0 && s < out->timeout_s)
                out->timeout_s = s;
            return out;
        }
    return NULL;
}

/* Built with --coverage (the mutation runner's coverage pass), a child's counters must be
 * written before _exit, which skips the atexit handler that would write them. */
#ifdef WSP_TEST_COVERAGE
void __gcov_dump(void);
#define flush_coverage() __gcov_dump()
#else
#define flush_coverage() ((void)0)
#endif

/* After each test, in its process: whether it left a descriptor or memory of the provider's
 * behind (leaks.c); WSP_TEST_LEAKS=0 skips the check. */
static int check_leaks = 1;
#define EXIT_LEAKED 3

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
        int leaked = check_leaks && wsp_test_leaks();
        fflush(NULL);
        flush_coverage();
        _exit(leaked ? EXIT_LEAKED : 0);
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
    else if (WEXITSTATUS(status) == EXIT_LEAKED)
        printf("  passed, but left behind what is listed above\n");
    else
        printf("  exit status %d\n", WEXITSTATUS(status));
    return 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    qsort(tests, (size_t)test_count, sizeof tests[0], cmp_tests);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < test_count; i++)
            printf("%s %s %d\n", tests[i].name, tests[i].file, tests[i].timeout_s);
        return 0;
    }
    const char *leaks_env = getenv("WSP_TEST_LEAKS");
    check_leaks = !(leaks_env && *leaks_env == '0');
    const char *exact_env = getenv("WSP_TEST_EXACT"), *failfast_env = getenv("WSP_TEST_FAILFAST");
    int exact = exact_env && *exact_env == '1', failfast = failfast_env && *failfast_env == '1';
    int passed = 0, failed = 0;
    int n = exact ? argc - 1 : test_count;
    for (int i = 0; i < n; i++) {
        struct wsp_test named;
        const struct wsp_test *t = exact ? by_name(argv[i + 1], &named) : &tests[i];
        if (!t) {
            printf("no test named %s\n", argv[i + 1]);
            return 2;
        }
        if (!exact && !selected(t->name, argc, argv))
            continue;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = run_one(t);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        printf("%s %s (%.0f ms)\n", rc ? "FAIL" : "ok  ", t->name, ms);
        if (rc)
            failed++;
        else
            passed++;
        if (rc && failfast)
            break;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
