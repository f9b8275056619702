/* bench/gemm.c: speed of knob_gemm (and knob_gemm_naive on the small shapes) in GFLOP/s.
 *
 *   bench_gemm [--threads N] [--portable] [--min-time SECONDS] [M N K OP]...
 *
 * OP is nn, nt, tn or tt (t: that operand is stored transposed). Without shapes it runs the
 * standard list below. Output: '#' comment lines, then one line per shape,
 *   M N K OP knob_gflops naive_gflops
 * with naive_gflops "-" where the naive loop would take too long. bench/gemm_torch.py reads these
 * lines and times PyTorch on the same shapes. Each figure is the fastest of repeated calls after
 * a warm-up (on a shared machine the median mostly measures who else is running: with
 * 2 threads on 2 cores, one busy neighbour makes every call wait for a time slice); a flop is one
 * multiply or one add (2 M N K per product). Timing never decides pass or fail.
 *
 * The FMA peak is measured, not computed from the stated clock or the vector width: loops of
 * independent chains of fused multiply-adds (bench.h: 12 chains of 8 lanes, and 24 of 16 lanes
 * where the CPU has AVX-512 F), the fastest of many short runs of the best probe, before and
 * after the shapes; "%peak" is knob's figure over threads x the first. (On the
 * 2-core EPYC VM the clock the VM gets moves with the host's load: the peak measured here went
 * from 81 to 92 GFLOP/s per core within minutes, so a figure without the peak beside it says
 * little.) */
#include "knob_internal.h"
#include "bench.h"

#include <string.h>
#include <time.h>

typedef struct {
    int M, N, K, ta, tb;
} shape;

static const shape default_shapes[] = {
    {128, 128, 128, 0, 0},
    {256, 256, 256, 0, 0},
    {512, 512, 512, 0, 0},
    {1024, 1024, 1024, 0, 0},
    {128, 256, 784, 0, 1},      /* MLP forward: x (128, 784) @ W (256, 784)^T */
    {256, 784, 128, 1, 0},      /* its weight gradient: dy (128, 256)^T @ x (128, 784) */
    {512, 768, 768, 0, 1},      /* GPT-2 small projection, B * T = 512 */
    {1, 768, 768, 0, 1},        /* the same for one token: the matrix-vector path */
};

/* The naive loop runs only up to this many multiply-adds (about 0.1 s each). */
#define NAIVE_MAX_MNK (256.0 * 256 * 784)

typedef void gemm_fn(int, int, int, int, int, float, const float *, const float *, float,
                     float *);

/* Fastest seconds per call over at least 3 calls and about min_time seconds, after a tenth of
 * that spent warming up. */
static double time_gemm(gemm_fn *f, const shape *s, const float *A, const float *B, float *C,
                        double min_time)
{
    enum { MAX_REPS = 1000 };
    static double t[MAX_REPS];
    double start = bench_now();
    do      /* warm-up: threads started, caches and clocks up to speed */
        f(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, B, 0.0f, C);
    while (bench_now() - start < min_time / 10);
    int n = 0;
    start = bench_now();
    while (n < MAX_REPS && (n < 3 || bench_now() - start < min_time)) {
        double t0 = bench_now();
        f(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, B, 0.0f, C);
        t[n++] = bench_now() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], bench_cmp_double);
    return t[0];
}

/* One thread's f32 peak: the best of bench.h's f32 probes this CPU runs (ymm and, with AVX-512 F,
 * zmm FMA chains), 200 rounds of each taking turns. */
static double fma_peak(void)
{
#if BENCH_HAVE_FMA_CHAINS
    return bench_best_f32_peak(200, 200000);
#else
    return 0.0;
#endif
}

static float *random_matrix(size_t n, knob_rng *r)
{
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * knob_rng_uniform(r) - 1.0f;
    return x;
}

static void run(const shape *s, double min_time, double peak, knob_rng *r)
{
    size_t mk = (size_t)s->M * s->K, kn = (size_t)s->K * s->N, mn = (size_t)s->M * s->N;
    float *A = random_matrix(mk, r), *B = random_matrix(kn, r), *C = random_matrix(mn, r);
    double flops = 2.0 * s->M * s->N * s->K;
    double fast = flops / time_gemm(knob_gemm, s, A, B, C, min_time) / 1e9;
    char naive[32] = "-";
    if ((double)s->M * s->N * s->K <= NAIVE_MAX_MNK)
        snprintf(naive, sizeof naive, "%.2f",
                 flops / time_gemm(knob_gemm_naive, s, A, B, C, min_time / 4) / 1e9);
    printf("%d %d %d %c%c %.2f %s %.0f%%\n", s->M, s->N, s->K, s->ta ? 't' : 'n',
           s->tb ? 't' : 'n', fast, naive, peak > 0 ? 100.0 * fast / peak : 0.0);
    fflush(stdout);
    free(A);
    free(B);
    free(C);
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_gemm [--threads N] [--portable] [--min-time SECONDS] "
                    "[M N K OP]...  (OP: nn, nt, tn, tt)\n");
    return 2;
}

int main(int argc, char **argv)
{
    int threads = 0;    /* 0: KNOB_THREADS, else all cores */
    double min_time = 0.5;
    shape shapes[64];
    int n_shapes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads <= 0)
                return usage();
        } else if (!strcmp(argv[i], "--portable")) {
            knob_gemm_force_portable(1);
        } else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            min_time = atof(argv[++i]);
        } else if (i + 3 < argc && n_shapes < 64) {
            shape *s = &shapes[n_shapes++];
            s->M = atoi(argv[i]);
            s->N = atoi(argv[i + 1]);
            s->K = atoi(argv[i + 2]);
            const char *op = argv[i + 3];
            if (s->M <= 0 || s->N <= 0 || s->K <= 0 || strlen(op) != 2 ||
                !strchr("nt", op[0]) || !strchr("nt", op[1]))
                return usage();
            s->ta = op[0] == 't';
            s->tb = op[1] == 't';
            i += 3;
        } else {
            return usage();
        }
    }
    if (n_shapes == 0) {
        n_shapes = (int)(sizeof default_shapes / sizeof default_shapes[0]);
        memcpy(shapes, default_shapes, sizeof default_shapes);
    }
    knob_threads_set(threads);
    printf("# knob_gemm: %s kernel, %d threads; GFLOP/s = 2 M N K / fastest call\n",
           knob_gemm_kernel_name(), knob_threads_get());
    double peak1 = fma_peak();
    printf("# FMA peak measured now: %.1f GFLOP/s per thread (%%peak: over %d x that)\n", peak1,
           knob_threads_get());
    printf("# M N K op knob naive %%peak\n");
    knob_rng r;
    knob_rng_seed(&r, 1234);
    for (int i = 0; i < n_shapes; i++)
        run(&shapes[i], min_time, peak1 * knob_threads_get(), &r);
    printf("# FMA peak measured after: %.1f GFLOP/s per thread\n", fma_peak());
    return 0;
}
