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

/* One thread running multiply-adds and nothing else, for the peak (bench_gemm's %peak,
 * bench_peak). Three probes, each a loop of independent chains on registers, more chains than
 * latency x units so that none waits, each chain from a different start; the empty asm statements
 * hide the chains from the optimiser (identical chains would be folded into one and the figure
 * would read too high). Pass the operands through volatile (x 1, y 0: the sums stay put).
 *   avx2+fma    12 chains of 8-lane vfmadd (ymm):            16 flops per instruction
 *   avx512f     24 chains of 16-lane vfmadd (zmm):           32 flops per instruction
 *   avx512bf16  24 chains of vdpbf16ps (zmm, bf16 pairs):    64 flops per instruction (2
 *               multiply-adds per f32 lane), the peak of knob_gemm_bf16's kernel, not of f32.
 * Measured, not assumed from the width: a Zen 4 core runs a zmm FMA as two halves (the zmm probe
 * reads about what the ymm one does), an Intel Xeon with two 512-bit FMA units twice as much.
 * The f32 peak is the best of the f32 probes the CPU runs (bench_best_f32_peak). */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BENCH_HAVE_FMA_CHAINS 1
#include <immintrin.h>
#include "knob.h"   /* knob_cpu, KNOB_CPU_* */

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

/* 24 zmm chains + the two operands: 26 of the 32 zmm registers ("v": any of them, "x" would
 * allow only the first 16). STEP is the chain update, the rest is shared by both zmm probes. */
#define BENCH_ZMM_CHAINS(INIT, STEP)                                                             \
    INIT(0) INIT(1) INIT(2) INIT(3) INIT(4) INIT(5) INIT(6) INIT(7) INIT(8) INIT(9) INIT(10)     \
    INIT(11) INIT(12) INIT(13) INIT(14) INIT(15) INIT(16) INIT(17) INIT(18) INIT(19) INIT(20)    \
    INIT(21) INIT(22) INIT(23)                                                                   \
    for (long p = 0; p < n; p++) {                                                               \
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7) STEP(8) STEP(9) STEP(10) \
        STEP(11) STEP(12) STEP(13) STEP(14) STEP(15) STEP(16) STEP(17) STEP(18) STEP(19)         \
        STEP(20) STEP(21) STEP(22) STEP(23)                                                      \
        __asm__("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5));               \
        __asm__("" : "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));             \
        __asm__("" : "+v"(c12), "+v"(c13), "+v"(c14), "+v"(c15), "+v"(c16), "+v"(c17));         \
        __asm__("" : "+v"(c18), "+v"(c19), "+v"(c20), "+v"(c21), "+v"(c22), "+v"(c23));         \
    }                                                                                            \
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),       \
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));      \
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));        \
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c12, c13), _mm512_add_ps(c14, c15)));      \
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c16, c17), _mm512_add_ps(c18, c19)));      \
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c20, c21), _mm512_add_ps(c22, c23)));      \
    return _mm512_cvtss_f32(s);
#define BENCH_CH_INIT(i) __m512 c##i = _mm512_set1_ps((float)(i));

__attribute__((target("avx512f"), noinline, unused))
static float bench_zmm_chains(long n, float xs, float ys)
{
    __m512 x = _mm512_set1_ps(xs), y = _mm512_set1_ps(ys);
#define CH(i) c##i = _mm512_fmadd_ps(x, y, c##i);
    BENCH_ZMM_CHAINS(BENCH_CH_INIT, CH)
#undef CH
}

/* vdpbf16ps: c += a[2i] b[2i] + a[2i+1] b[2i+1] per f32 lane, a and b 32 bf16 each */
__attribute__((target("avx512f,avx512bf16"), noinline, unused))
static float bench_bf16_chains(long n, float xs, float ys)
{
    __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(xs), _mm512_set1_ps(xs));
    __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(ys), _mm512_set1_ps(ys));
#define CH(i) c##i = _mm512_dpbf16_ps(c##i, x, y);
    BENCH_ZMM_CHAINS(BENCH_CH_INIT, CH)
#undef CH
}
#undef BENCH_CH_INIT
#undef BENCH_ZMM_CHAINS

typedef struct {
    const char *isa;       /* the word bench_peak prints */
    unsigned needs;        /* KNOB_CPU_* bits the probe runs on */
    int f32;               /* 1: an f32 peak (bench_gemm's %peak); 0: bf16 dot products */
    int chains;
    double flops;          /* per chain per loop step */
    float (*run)(long n, float x, float y);
} bench_probe;

static const bench_probe bench_probes[] = {
    {"avx2+fma", KNOB_CPU_AVX2 | KNOB_CPU_FMA, 1, 12, 16.0, bench_fma_chains},
    {"avx512f", KNOB_CPU_AVX512F, 1, 24, 32.0, bench_zmm_chains},
    {"avx512bf16", KNOB_CPU_AVX512F | KNOB_CPU_AVX512BF16, 0, 24, 64.0, bench_bf16_chains},
};
#define BENCH_N_PROBES ((int)(sizeof bench_probes / sizeof bench_probes[0]))

static inline int bench_probe_runs(const bench_probe *p)
{
    return (knob_cpu()->features & p->needs) == p->needs;
}

/* Loop steps of probe p that issue as many instructions as n12 steps of a 12-chain probe (so
 * that a round takes about as long whatever the chain count). */
static inline long bench_probe_steps(const bench_probe *p, long n12)
{
    return n12 * 12 / p->chains;
}

/* One thread's f32 peak in GFLOP/s: the best of `rounds` timed runs of every f32 probe the CPU
 * runs, the probes taking turns (a clock that drifts with the host's load then hits all of them);
 * 0 where none runs. */
static inline double bench_best_f32_peak(int rounds, long n12)
{
    volatile float xs = 1.0f, ys = 0.0f, sink;
    double best = 0.0;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < BENCH_N_PROBES; i++) {
            const bench_probe *p = &bench_probes[i];
            if (!p->f32 || !bench_probe_runs(p))
                continue;
            long n = bench_probe_steps(p, n12);
            double t0 = bench_now();
            sink = p->run(n, xs, ys);
            double g = p->chains * p->flops * (double)n / (bench_now() - t0) / 1e9;
            best = g > best ? g : best;
        }
    (void)sink;
    return best;
}
#else
#define BENCH_HAVE_FMA_CHAINS 0
#endif

#endif
