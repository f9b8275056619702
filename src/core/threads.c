/* threads.c: the OpenMP thread count, from --threads, KNOB_THREADS, or all cores. */
#include "knob_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void knob_threads_set(int n)
{
    if (n <= 0) {
        const char *env = getenv("KNOB_THREADS");
        n = env ? atoi(env) : 0;
    }
#ifdef _OPENMP
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int knob_threads_get(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
