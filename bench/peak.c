/* bench/peak.c: the FMA peak of this machine, measured rather than computed from a stated clock
 * (a hypervisor's "cpu MHz" can be far from the clock the cores really run at).
 *
 *   bench_peak [--threads N] [--seconds S]
 *
 * Each thread runs 12 independent chains of vector fused multiply-adds on registers (enough to
 * cover the latency of two FMA units), with the widest vectors knob's kernels use on this CPU
 * (8 floats for AVX2 + FMA; plain C vectors of 4 otherwise, which the compiler maps to what it
 * has). Prints one line: "peak THREADS GFLOPS ISA", the best of several rounds, all threads
 * running at once. suite.py divides knob's and PyTorch's GEMM by it. Timing never decides a test.
 * AVX-512 is not probed: no machine here could run such a probe, so none is written; on an
 * AVX-512 CPU this reports the AVX2 figure and says so. */
#include "knob.h"
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define PEAK_X86 1
#include <immintrin.h>
#else
#define PEAK_X86 0
#endif

typedef float v4f __attribute__((vector_size(16)));

enum { ITERS = 1 << 22 };   /* one round: 12 chains x ITERS FMAs per thread */

static int use_avx2;

/* Portable: 12 chains of 4-float multiply-adds. Returns a value that depends on every chain, so
 * the compiler keeps them all. */
static float chains_portable(long n)
{
    v4f a0 = {1, 1, 1, 1}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    v4f a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const v4f b = {0.999999f, 0.999999f, 0.999999f, 0.999999f}, c = {1e-7f, 1e-7f, 1e-7f, 1e-7f};
    for (long i = 0; i < n; i++) {
        a0 = a0 * b + c; a1 = a1 * b + c; a2 = a2 * b + c; a3 = a3 * b + c;
        a4 = a4 * b + c; a5 = a5 * b + c; a6 = a6 * b + c; a7 = a7 * b + c;
        a8 = a8 * b + c; a9 = a9 * b + c; a10 = a10 * b + c; a11 = a11 * b + c;
    }
    v4f s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    return s[0] + s[1] + s[2] + s[3];
}

#if PEAK_X86
__attribute__((target("avx2,fma")))
static float chains_avx2(long n)
{
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m256 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < n; i++) {
        a0 = _mm256_fmadd_ps(a0, b, c); a1 = _mm256_fmadd_ps(a1, b, c);
        a2 = _mm256_fmadd_ps(a2, b, c); a3 = _mm256_fmadd_ps(a3, b, c);
        a4 = _mm256_fmadd_ps(a4, b, c); a5 = _mm256_fmadd_ps(a5, b, c);
        a6 = _mm256_fmadd_ps(a6, b, c); a7 = _mm256_fmadd_ps(a7, b, c);
        a8 = _mm256_fmadd_ps(a8, b, c); a9 = _mm256_fmadd_ps(a9, b, c);
        a10 = _mm256_fmadd_ps(a10, b, c); a11 = _mm256_fmadd_ps(a11, b, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float o[8];
    _mm256_storeu_ps(o, s);
    return o[0];
}
#endif

typedef struct {
    pthread_barrier_t *start;
    double seconds;   /* out: this thread's time for one round */
    float sink;
} worker;

static void *run_round(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    double t0 = bench_now();
#if PEAK_X86
    w->sink = use_avx2 ? chains_avx2(ITERS) : chains_portable(ITERS);
#else
    w->sink = chains_portable(ITERS);
#endif
    w->seconds = bench_now() - t0;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 1;
    double budget = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            budget = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_peak [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || !(budget > 0.0)) {
        fprintf(stderr, "bench_peak: --threads must be 1..256 and --seconds above 0\n");
        return 2;
    }
    unsigned f = knob_cpu()->features;
    use_avx2 = (f & KNOB_CPU_AVX2) && (f & KNOB_CPU_FMA);
    double lanes = use_avx2 ? 8.0 : 4.0;
    worker *w = calloc((size_t)threads, sizeof *w);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    if (!w || !tid) {
        fprintf(stderr, "bench_peak: out of memory\n");
        return 1;
    }
    double best = 0.0, t_end = bench_now() + budget;
    int rounds = 0;
    while (rounds < 3 || bench_now() < t_end) {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads);
        for (int t = 0; t < threads; t++) {
            w[t].start = &start;
            if (t > 0 && pthread_create(&tid[t], NULL, run_round, &w[t])) {
                fprintf(stderr, "bench_peak: cannot start thread %d\n", t);
                return 1;
            }
        }
        run_round(&w[0]);
        double slowest = w[0].seconds;
        for (int t = 1; t < threads; t++) {
            pthread_join(tid[t], NULL);
            if (w[t].seconds > slowest)
                slowest = w[t].seconds;
        }
        pthread_barrier_destroy(&start);
        double gflops = threads * 12.0 * ITERS * lanes * 2.0 / slowest / 1e9;
        if (gflops > best)
            best = gflops;
        rounds++;
    }
    const char *isa = use_avx2 ? ((f & KNOB_CPU_AVX512F) ? "avx2+fma (avx512 not probed)" : "avx2+fma")
                               : "portable";
    printf("peak %d %.1f %s\n", threads, best, isa);
    free(w);
    free(tid);
    return 0;
}
