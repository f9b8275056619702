/* test_main.c: runs every registered test (or those whose name contains argv[1]) and ends with
 * the line "N passed, N failed" (", N skipped" when any were skipped). Exit status 1 on failure. */
#include "test.h"

#include <stdarg.h>
#include <unistd.h>

typedef struct {
    const char *name, *file;
    test_fn fn;
} test_case;

static test_case cases[1024];
static int n_cases;
int test_failed_now, test_skipped_now;
static char tmpdir[256];

void test_register(const char *name, const char *file, test_fn fn)
{
    KNOB_ASSERT(n_cases < (int)(sizeof cases / sizeof cases[0]));
    cases[n_cases++] = (test_case){name, file, fn};
}

void test_fail_at(const char *file, int line, const char *fmt, ...)
{
    fprintf(stderr, "  %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    test_failed_now = 1;
}

void test_skip(const char *why)
{
    fprintf(stderr, "  skipped: %s\n", why);
    test_skipped_now = 1;
}

const char *test_tmpdir(void) { return tmpdir; }

static int cmp_case(const void *a, const void *b)
{
    const test_case *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/knob-test-%ld", (long)getpid());
    knob_err err;
    if (knob_mkdirs(tmpdir, &err) != KNOB_OK) {
        fprintf(stderr, "test: %s\n", err.msg);
        return 1;
    }
    knob_threads_set(0);
    qsort(cases, (size_t)n_cases, sizeof cases[0], cmp_case);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n_cases; i++) {
        if (filter && !strstr(cases[i].name, filter))
            continue;
        test_failed_now = test_skipped_now = 0;
        cases[i].fn();
        knob_alloc_fail_at(0);
        const char *verdict = test_failed_now ? "FAIL" : test_skipped_now ? "skip" : "ok";
        printf("%-4s %s\n", verdict, cases[i].name);
        fflush(stdout);
        if (test_failed_now)
            failed++;
        else if (test_skipped_now)
            skipped++;
        else
            passed++;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "test: could not remove %s\n", tmpdir);
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
