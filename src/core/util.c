/* util.c: small helpers that several layers would otherwise each write: a string copy through
 * knob's allocator, a monotonic clock, and re-prefixing an error message with its context. */
#include "knob_internal.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

char *knob_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = knob_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

char *knob_strndup(const char *s, size_t n)
{
    char *d = knob_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

double knob_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

knob_status knob_err_prefix(knob_err *err, const char *fmt, ...)
{
    if (!err)
        return KNOB_ERR_USAGE;
    char prefix[sizeof err->msg], msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s", err->msg);
    return knob_fail(err, err->code ? err->code : KNOB_ERR_USAGE, "%s: %s", prefix, msg);
}
