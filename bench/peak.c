/* bench/peak.c: the FMA peak of this machine, measured rather than computed from a stated clock
 * (a hypervisor's "cpu MHz" can be far from the clock the cores really run at).
 *
 *   bench_peak [--threads N] [--seconds S]
 *
 * Each thread runs bench.h's 12 independent chains of 8-lane fused multiply-adds on registers, all
 * threads at once, and prints one line: "peak THREADS GFLOPS ISA", the best of several rounds.
 * suite.py divides knob's and PyTorch's GEMM by it (bench_gemm measures one thread's peak itself).
 * Without AVX2 + FMA it prints 0 ("not measured"). AVX-512 is not probed: no machine here could
 * run such a probe, so none is written; on an AVX-512 CPU this reports the AVX2 figure and says
 * so. Timing never decides a test. */
#include "knob.h"
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ITERS = 1 << 22 };   /* one round: 12 chains x ITERS FMAs per thread */

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
    volatile float x = 1.0f, y = 0.0f;   /* through volatile: the compiler cannot fold the chains */
#if BENCH_HAVE_FMA_CHAINS
    w->sink = bench_fma_chains(ITERS, x, y);
#else
    w->sink = x + y;
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
    if (!BENCH_HAVE_FMA_CHAINS || !(f & KNOB_CPU_AVX2) || !(f & KNOB_CPU_FMA)) {
        printf("peak %d 0 not-measured (no AVX2 + FMA)\n", threads);
        return 0;
    }
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
        double gflops = threads * 12.0 * 16.0 * ITERS / slowest / 1e9;
        if (gflops > best)
            best = gflops;
        rounds++;
    }
    const char *isa = (f & KNOB_CPU_AVX512F) ? "avx2+fma (avx512 not probed)" : "avx2+fma";
    printf("peak %d %.1f %s\n", threads, best, isa);
    free(w);
    free(tid);
    return 0;
}
