/* bench.h: what the speed programs in bench/ share: a monotonic clock and a comparator for
 * sorting timings (medians). Timing never decides pass or fail. */
#ifndef KNOB_BENCH_H
#define KNOB_BENCH_H

#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
