/* test.h: the test harness. A test is `TEST(name) { ... }` in any tests/test_*.c; it registers
 * itself at load time. Checks print file:line and what went wrong, and mark the test failed. */
#ifndef KNOB_TEST_H
#define KNOB_TEST_H

#include "knob_internal.h"

#include <math.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, const char *file, test_fn fn);
void test_fail_at(const char *file, int line, const char *fmt, ...) KNOB_PRINTF(3, 4);
void test_skip(const char *why);
extern int test_failed_now;     /* the running test has failed */
extern int test_skipped_now;
const char *test_tmpdir(void);   /* a fresh folder for this run's files */

#define TEST(name)                                                                            \
    static void test_##name(void);                                                            \
    __attribute__((constructor)) static void reg_##name(void)                                 \
    {                                                                                         \
        test_register(#name, __FILE__, test_##name);                                          \
    }                                                                                         \
    static void test_##name(void)

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond))                                                                          \
            test_fail_at(__FILE__, __LINE__, "CHECK(%s)", #cond);                             \
    } while (0)

#define CHECK_NEAR(got, want, rtol, atol)                                                     \
    do {                                                                                      \
        double g_ = (double)(got), w_ = (double)(want);                                       \
        if (!(fabs(g_ - w_) <= (atol) + (rtol) * fabs(w_)))                                   \
            test_fail_at(__FILE__, __LINE__, "%s = %.9g, want %s = %.9g (diff %.3g)", #got,   \
                         g_, #want, w_, fabs(g_ - w_));                                       \
    } while (0)

/* call returns a status and fills `err` (a knob_err in scope) */
#define CHECK_OK(call)                                                                        \
    do {                                                                                      \
        knob_status s_ = (call);                                                              \
        if (s_ != KNOB_OK)                                                                    \
            test_fail_at(__FILE__, __LINE__, "%s failed: %s", #call, err.msg);                \
    } while (0)

/* call returns a status; it must be `code` with a one-line message containing `sub` in err.msg */
#define CHECK_FAILS_WITH(call, code, sub)                                                     \
    do {                                                                                      \
        memset(&err, 0, sizeof err);                                                          \
        knob_status s_ = (call);                                                              \
        if (s_ != (code))                                                                     \
            test_fail_at(__FILE__, __LINE__, "%s returned %s, want %s (msg: %s)", #call,      \
                         knob_status_name(s_), knob_status_name(code), err.msg);              \
        else if (!strstr(err.msg, (sub)) || strchr(err.msg, '\n'))                            \
            test_fail_at(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", #call, err.msg,   \
                         (sub));                                                              \
    } while (0)

#define SKIP(why)                                                                             \
    do {                                                                                      \
        test_skip(why);                                                                       \
        return;                                                                               \
    } while (0)

#endif
