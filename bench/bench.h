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

/* One thread running fused multiply-adds and nothing else, for the FMA peak (bench_gemm's %peak,
 * bench_peak): 12 independent chains (more than latency x units, so none waits), each FMA 8 lanes
 * x 2 flops, n steps = 12 x 16 x n flops. Each chain starts from a different value and the empty
 * asm statements hide the chains from the optimiser: identical chains would be folded into one
 * and the figure would read too high. Pass the operands through volatile (x 1, y 0). */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BENCH_HAVE_FMA_CHAINS 1
#include <immintrin.h>
__attribute__((target("avx2,fma"), noinline, unused))
static float bench_fma_chains(long n, float xs, float ys)
{
    __m256 x = _mm256_set1_ps(xs), y = _mm256_set1_ps(ys);
#define CH(i) __m256 c##i = _mm256_set1_ps((float)(i));
    CH(0) CH(1) CH(2) CH(3) CH(4) CH(5) CH(6) CH(7) CH(8) CH(9) CH(10) CH(11)
#undef CH
    for (long p = 0; p < n; p++) {
#define CH(i) c##i = _mm256_fmadd_ps(x, y, c##i);
        CH(0) CH(1) CH(2) CH(3) CH(4) CH(5) CH(6) CH(7) CH(8) CH(9) CH(10) CH(11)
#undef CH
        __asm__("" : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5));
        __asm__("" : "+x"(c6), "+x"(c7), "+x"(c8), "+x"(c9), "+x"(c10), "+x"(c11));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    return _mm_cvtss_f32(_mm256_castps256_ps128(s));
}
#else
#define BENCH_HAVE_FMA_CHAINS 0
#endif

#endif
