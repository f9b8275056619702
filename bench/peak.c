/* bench/peak.c: the multiply-add peak of this machine, measured rather than computed from a stated
 * clock (a hypervisor's "cpu MHz" can be far from the clock the cores really run at) or from the
 * vector width (a Zen 4 core takes a 512-bit FMA as two 256-bit halves; an Intel Xeon with two
 * 512-bit FMA units does twice as much with it as with a 256-bit one).
 *
 *   bench_peak [--threads N] [--seconds S]
 *
 * Each thread runs one of bench.h's probes (independent chains of multiply-adds on registers: ymm
 * FMA, zmm FMA, zmm vdpbf16ps), all threads at once, the probes taking turns round after round
 * for about S seconds; each probe the CPU runs prints one line, "peak THREADS GFLOPS ISA", its
 * best round:
 *   peak 2 236.1 avx2+fma
 *   peak 2 235.8 avx512f
 *   peak 2 471.0 avx512bf16
 * The f32 peak is the best of the avx2+fma and avx512f lines; the avx512bf16 line counts the bf16
 * dot products (2 multiply-adds per f32 lane), the ceiling of knob_gemm_bf16's kernel only.
 * suite.py divides knob's and PyTorch's GEMM by the f32 peak (bench_gemm measures one thread's
 * peak itself, the same way). Without AVX2 + FMA it prints 0 ("not measured"). Timing never
 * decides a test. */
#include "knob.h"
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ITERS = 1 << 22 };   /* one round: as many instructions as 12 chains x ITERS per thread */

typedef struct {
    pthread_barrier_t *start;
    int probe;        /* index into bench_probes */
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
    const bench_probe *p = &bench_probes[w->probe];
    w->sink = p->run(bench_probe_steps(p, ITERS), x, y);
#else
    w->sink = x + y;
#endif
    w->seconds = bench_now() - t0;
    return NULL;
}

#if BENCH_HAVE_FMA_CHAINS
/* GFLOP/s of one round of probe `probe` on all threads at once (the slowest thread's time) */
static double round_gflops(worker *w, pthread_t *tid, int threads, int probe)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
        w[t].start = &start;
        w[t].probe = probe;
        if (t > 0 && pthread_create(&tid[t], NULL, run_round, &w[t])) {
            fprintf(stderr, "bench_peak: cannot start thread %d\n", t);
            exit(1);
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
    const bench_probe *p = &bench_probes[probe];
    return threads * p->chains * p->flops * (double)bench_probe_steps(p, ITERS) / slowest / 1e9;
}
#endif

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
#if BENCH_HAVE_FMA_CHAINS
    worker *w = calloc((size_t)threads, sizeof *w);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    if (!w || !tid) {
        fprintf(stderr, "bench_peak: out of memory\n");
        return 1;
    }
    double best[BENCH_N_PROBES] = {0}, t_end = bench_now() + budget;
    for (int rounds = 0; rounds < 3 || bench_now() < t_end; rounds++)
        for (int i = 0; i < BENCH_N_PROBES; i++) {
            if (!bench_probe_runs(&bench_probes[i]))
                continue;
            double g = round_gflops(w, tid, threads, i);
            if (g > best[i])
                best[i] = g;
        }
    for (int i = 0; i < BENCH_N_PROBES; i++)
        if (bench_probe_runs(&bench_probes[i]))
            printf("peak %d %.1f %s\n", threads, best[i], bench_probes[i].isa);
    free(w);
    free(tid);
#endif
    return 0;
}
