/* bench/decode.c: generation speed of knob_lm on a GPT-2 124M-shaped model with random weights
 * (12 layers, 12 heads, C 768, T 1024, V 50257): decode steps (knob_lm_decode, one token for each
 * of B sequences a step, after a 64-token prompt) for f32, bf16 and int8 weights, B 1 and 4, 1 and
 * 2 threads, in tokens per second, with the bytes of weights a step reads against the machine's
 * streaming bandwidth (measured first: the fastest of 10 reads of 256 MiB to 1 GiB, 1 and 2 threads).
 *
 *   bench_decode [--threads LIST] [--batch LIST] [--dtype LIST] [--steps N] [--reps N]
 *                [--prefill] [--crossover]
 *
 * LIST is comma-separated (defaults 1,2 / 1,4 / f32,bf16,int8,int8f; int8f is int8 weights with
 * the activations kept in f32). Each figure is the median of --reps runs (default 3) of --steps
 * steps (default 32), min and max beside it. --prefill adds the speed of a 256-token prompt per
 * dtype; --crossover times knob_matvec against knob_wmat_gemm for n rows on a (3072, 768) matrix,
 * to place MV_ROWS (src/models/lm.c). Memory: the resident set after the conversion (the f32
 * parameters freed). Timing never decides pass or fail.
 * Build: make build/bench_decode */
#include "knob_internal.h"
#include "bench.h"

#include <stdio.h>
#include <string.h>

enum { MAX_LIST = 8, PROMPT = 64 };

static int parse_list(const char *s, char out[][16])
{
    int n = 0;
    while (*s && n < MAX_LIST) {
        size_t len = strcspn(s, ",");
        snprintf(out[n++], 16, "%.*s", (int)KNOB_MIN(len, 15), s);
        s += len + (s[len] == ',');
    }
    return n;
}

/* ------------------------------------------------------------------------------------------------
 * Streaming bandwidth: the fastest of 10 sums over 8 x L3 (256 MiB to 1 GiB) of floats, split
 * between the threads. */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* 32 floats a step into 4 AVX2 accumulators: the loads, not the adds, set the pace */
__attribute__((target("avx2"))) static float sum_avx2(const float *a, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static float sum_part(const float *a, size_t n)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx2"))
        return sum_avx2(a, n);
#endif
    float s[16] = {0};
    for (size_t i = 0; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            s[j] += a[i + j];
    float t = 0;
    for (int j = 0; j < 16; j++)
        t += s[j];
    return t;
}

typedef struct {
    const float *a;
    size_t c;            /* floats per part */
    float *part;
} bw_task;

static void bw_parts(void *ctx, long lo, long hi)
{
    const bw_task *t = ctx;
    for (long id = lo; id < hi; id++)
        t->part[id & 63] = sum_part(t->a + (size_t)id * t->c, t->c);
}

/* one part per thread, on knob's pool (knob_threads_set(threads) first) */
static double bandwidth(const float *a, size_t n, int threads)
{
    double best = 0;
    for (int rep = 0; rep < 10; rep++) {
        float part[64] = {0};
        bw_task t = {a, n / (size_t)threads / 32 * 32, part};
        double t0 = bench_now();
        knob_parallel_for(threads, 1, bw_parts, &t);
        double dt = bench_now() - t0, gbs = (double)n * sizeof(float) / dt / 1e9;
        if (part[0] == -1.0f)
            printf("#");   /* keeps the sums alive */
        best = gbs > best ? gbs : best;
    }
    return best;
}

/* resident memory in MB, from /proc/self/statm */
static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = -1;
    fclose(f);
    return (double)res * 4096.0 / 1e6;
}

/* ------------------------------------------------------------------------------------------------
 * Decode */

static int fail(const knob_err *err)
{
    fprintf(stderr, "bench_decode: %s\n", err->msg);
    return 1;
}

static int cmp_double(const void *a, const void *b) { return bench_cmp_double(a, b); }

/* tokens/s of B sequences decoded for steps steps: reps runs, sorted into t (reps) */
static int time_decode(knob_lm *lm, int B, int steps, int reps, double *t, knob_err *err)
{
    knob_lm_seq *q[8] = {0};
    int32_t ids[PROMPT], tok[8];
    for (int i = 0; i < PROMPT; i++)
        ids[i] = (int32_t)((i * 7919 + 11) % 50257);
    int rc = 0;
    for (int b = 0; b < B && !rc; b++)
        rc = knob_lm_seq_new(lm, &q[b], err) != KNOB_OK;
    for (int r = 0; r < reps && !rc; r++) {
        for (int b = 0; b < B && !rc; b++) {
            knob_lm_seq_reset(q[b]);
            rc = knob_lm_feed(q[b], ids, PROMPT, err) != KNOB_OK;
        }
        for (int b = 0; b < B; b++)
            tok[b] = (int32_t)((b * 101 + 7) % 50257);
        rc = rc || knob_lm_decode(q, tok, B, err) != KNOB_OK;   /* warm-up step */
        double t0 = bench_now();
        for (int s = 0; s < steps && !rc; s++) {
            for (int b = 0; b < B; b++)
                tok[b] = (int32_t)((s * 7919 + b * 104729) % 50257);
            rc = knob_lm_decode(q, tok, B, err) != KNOB_OK;
        }
        t[r] = (double)B * steps / (bench_now() - t0);
    }
    for (int b = 0; b < B; b++)
        knob_lm_seq_free(q[b]);
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return rc;
}

static double time_prefill(knob_lm *lm, int n, knob_err *err)
{
    knob_lm_seq *q = NULL;
    int32_t ids[1024];
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 7919 + 3) % 50257);
    if (knob_lm_seq_new(lm, &q, err))
        return -1;
    double best = 0;
    for (int r = 0; r < 2; r++) {
        knob_lm_seq_reset(q);
        double t0 = bench_now();
        if (knob_lm_feed(q, ids, (size_t)n, err)) {
            best = -1;
            break;
        }
        double tps = n / (bench_now() - t0);
        best = tps > best ? tps : best;
    }
    knob_lm_seq_free(q);
    return best;
}

/* ------------------------------------------------------------------------------------------------
 * Crossover: knob_matvec against knob_wmat_gemm for n rows */

static int crossover(int threads, knob_err *err)
{
    int N = 3072, K = 768;
    float *f = knob_malloc((size_t)N * K * sizeof *f), *x = knob_malloc((size_t)64 * K * sizeof *x);
    float *y = knob_malloc((size_t)64 * N * sizeof *y);
    knob_rng r;
    knob_rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)N * K; i++)
        f[i] = knob_rng_normal(&r) * 0.02f;
    for (size_t i = 0; i < (size_t)64 * K; i++)
        x[i] = knob_rng_normal(&r);
    knob_threads_set(threads);
    printf("\n# crossover, W (%d, %d), %d threads: microseconds a call, in place (matvec) vs by the GEMM\n", N, K,
           threads);
    printf("%-6s %4s %10s %10s\n", "dtype", "n", "matvec", "gemm");
    const knob_wtype types[3] = {KNOB_W_F32, KNOB_W_BF16, KNOB_W_Q8};
    const char *names[3] = {"f32", "bf16", "int8"};
    for (int ti = 0; ti < 3; ti++) {
        knob_wmat W;
        if (knob_wmat_init(&W, f, N, K, types[ti], err))
            return 1;
        size_t sb = KNOB_MAX(knob_matvec_scratch(&W, 64), knob_wmat_gemm_scratch(&W, 64));
        void *sc = knob_malloc(sb ? sb : 1);
        for (int n = 1; n <= 64; n *= 2) {
            double best[2] = {1e9, 1e9};
            for (int way = 0; way < 2; way++)
                for (int rep = 0; rep < 20; rep++) {
                    double t0 = bench_now();
                    if (way == 0)
                        knob_matvec(y, x, &W, NULL, n, sc);
                    else
                        knob_wmat_gemm(y, x, &W, NULL, n, sc);
                    double t = bench_now() - t0;
                    best[way] = t < best[way] ? t : best[way];
                }
            printf("%-6s %4d %10.1f %10.1f\n", names[ti], n, 1e6 * best[0], 1e6 * best[1]);
        }
        knob_free(sc);
        knob_wmat_free(&W);
    }
    knob_free(f);
    knob_free(x);
    knob_free(y);
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Kernels alone: the products of one decode step (12 layers of QKV, attention projection, MLP up
 * and down, then the output projection) with knob_matvec on one row, nothing else, from memory
 * (the step's weights are 4 to 15 times the L3). Separates the kernels' speed from the rest of
 * the step (attention, layernorms, the pool's waits between loops). */

static int kernels(int threads, double bw_t, int steps, int reps, knob_err *err)
{
    enum { L = 12, C = 768 };
    const int shapes[4][2] = {{3 * C, C}, {C, C}, {4 * C, C}, {C, 4 * C}};   /* (N, K) */
    const knob_wtype types[3] = {KNOB_W_F32, KNOB_W_BF16, KNOB_W_Q8};
    const char *names[4] = {"f32", "bf16", "int8", "int8f"};
    static knob_wmat W[L * 4 + 1];
    static float *F[L * 4 + 1];
    float *x = knob_malloc((size_t)4 * C * sizeof *x), *y = knob_malloc((size_t)50257 * sizeof *y);
    knob_rng r;
    knob_rng_seed(&r, 2);
    for (int i = 0; i < 4 * C; i++)
        x[i] = knob_rng_normal(&r);
    knob_threads_set(threads);
    printf("\n# kernels alone, %d thread%s: one decode step's products, batch 1 (median of %d runs of %d steps)\n",
           threads, threads == 1 ? "" : "s", reps, steps);
    printf("%-6s %-12s %8s %9s %7s %8s\n", "dtype", "kernel", "steps/s", "MB/step", "GB/s", "of peak");
    for (int ti = 0; ti < 4; ti++) {
        size_t bytes = 0, sc_bytes = 0;
        knob_matvec_set_q8_act(ti != 3);
        for (int m = 0; m < L * 4 + 1; m++) {
            int N = m == L * 4 ? 50257 : shapes[m % 4][0], K = m == L * 4 ? C : shapes[m % 4][1];
            if (!(F[m] = knob_malloc((size_t)N * K * sizeof(float))))
                return knob_fail(err, KNOB_ERR_NOMEM, "kernels: cannot allocate (%d, %d)", N, K), 1;
            for (size_t i = 0; i < (size_t)N * K; i++)
                F[m][i] = knob_rng_normal(&r) * 0.02f;
            if (knob_wmat_init(&W[m], F[m], N, K, types[KNOB_MIN(ti, 2)], err))
                return 1;
            if (ti != 0)
                knob_free(F[m]), F[m] = NULL;
            bytes += knob_wmat_bytes(&W[m]);
            sc_bytes = KNOB_MAX(sc_bytes, knob_matvec_scratch(&W[m], 1));
        }
        void *sc = knob_malloc(sc_bytes + 1);
        double t[16];
        for (int rep = 0; rep < reps; rep++) {
            double t0 = bench_now();
            for (int s = 0; s <= steps; s++) {
                if (s == 1)
                    t0 = bench_now();   /* the first step warms up */
                for (int m = 0; m < L * 4 + 1; m++)
                    knob_matvec(y, x, &W[m], NULL, 1, sc);
            }
            t[rep] = steps / (bench_now() - t0);
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        double gbs = t[reps / 2] * (double)bytes / 1e9;
        printf("%-6s %-12s %8.1f %9.1f %7.1f %7.0f%%\n", names[ti], knob_matvec_kernel_for(types[KNOB_MIN(ti, 2)]), t[reps / 2],
               (double)bytes / 1e6, gbs, 100 * gbs / bw_t);
        fflush(stdout);
        knob_free(sc);
        for (int m = 0; m < L * 4 + 1; m++) {
            knob_wmat_free(&W[m]);
            knob_free(F[m]);
            F[m] = NULL;
        }
    }
    knob_matvec_set_q8_act(1);
    knob_free(x);
    knob_free(y);
    return 0;
}

int main(int argc, char **argv)
{
    char th_s[MAX_LIST][16], b_s[MAX_LIST][16], d_s[MAX_LIST][16];
    int n_th = parse_list("1,2", th_s), n_b = parse_list("1,4", b_s), n_d = parse_list("f32,bf16,int8,int8f", d_s);
    int steps = 32, reps = 3, prefill = 0, cross = 0, kern = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(argv[i], "--threads"))
            n_th = parse_list(v, th_s), i++;
        else if (!strcmp(argv[i], "--batch"))
            n_b = parse_list(v, b_s), i++;
        else if (!strcmp(argv[i], "--dtype"))
            n_d = parse_list(v, d_s), i++;
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(v), i++;
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(v), i++;
        else if (!strcmp(argv[i], "--prefill"))
            prefill = 1;
        else if (!strcmp(argv[i], "--crossover"))
            cross = 1;
        else if (!strcmp(argv[i], "--kernels"))
            kern = 1;
        else {
            fprintf(stderr, "bench_decode: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    steps = KNOB_MAX(1, KNOB_MIN(steps, 900));
    reps = KNOB_MAX(1, KNOB_MIN(reps, 15));
    knob_err err;

    /* 8 times the last-level cache, at least 256 MiB and at most 1 GiB: far past every cache,
     * and small enough not to set the process's peak memory (the suite's "knob MiB" column is
     * about the model, and 1 GiB here once was the whole of it) */
    size_t n_bw = KNOB_MAX((size_t)8 * knob_cpu()->l3, (size_t)256 << 20);
    n_bw = KNOB_MIN(n_bw, (size_t)1 << 30) / sizeof(float);
    float *a = knob_malloc(n_bw * sizeof *a);
    if (!a)
        return fprintf(stderr, "bench_decode: cannot allocate %zu MiB for the bandwidth loop\n",
                       n_bw * sizeof *a >> 20), 1;
    for (size_t i = 0; i < n_bw; i++)
        a[i] = 1.0f;
    double bw[MAX_LIST];
    int th_saved = knob_threads_get();
    printf("# bench_decode: GPT-2 124M shape, random weights, %d-token prompt, %d steps, median of %d (min-max); "
           "kernel %s\n", PROMPT, steps, reps, knob_matvec_kernel_name());
    for (int t = 0; t < n_th; t++) {
        knob_threads_set(KNOB_MAX(1, KNOB_MIN(atoi(th_s[t]), 64)));
        bw[t] = bandwidth(a, n_bw, knob_threads_get());
        printf("# streaming read, %s thread%s: %.1f GB/s\n", th_s[t], atoi(th_s[t]) == 1 ? "" : "s", bw[t]);
    }
    knob_threads_set(th_saved);
    knob_free(a);
    if (kern) {
        for (int t = 0; t < n_th; t++)
            if (kernels(atoi(th_s[t]), bw[t], steps, reps, &err))
                return fail(&err);
        return 0;
    }
    if (cross)
        for (int t = 0; t < n_th; t++)
            if (crossover(atoi(th_s[t]), &err))
                return fail(&err);

    knob_gpt_config c = {.n_layer = 12, .n_head = 12, .n_embd = 768, .block_size = 1024, .vocab_size = 50257,
                         .bias = 1};
    printf("\n%-6s %-26s %7s %5s %8s %13s %9s %7s %8s\n", "dtype", "kernel", "threads", "batch", "tok/s", "(min-max)",
           "MB/token", "GB/s", "of peak");
    for (int d = 0; d < n_d; d++) {
        knob_lm_dtype dt;
        int f32_act = !strcmp(d_s[d], "int8f");
        if (knob_lm_dtype_parse(f32_act ? "int8" : d_s[d], &dt, &err))
            return fail(&err);
        knob_matvec_set_q8_act(!f32_act);
        knob_params P;
        knob_lm *lm = NULL;
        knob_threads_set(2);
        if (knob_gpt_params(&P, &c, &err) || knob_gpt_init(&P, &c, 1, &err) ||
            knob_lm_new(&lm, &P, &c, NULL, &err) || knob_lm_set_dtype(lm, dt, &err))
            return fail(&err);
        if (dt != KNOB_LM_F32)
            knob_params_free(&P);   /* the lm reads its own copy now */
        double mb = (double)knob_lm_weight_bytes(lm) / 1e6;
        for (int t = 0; t < n_th; t++) {
            int th = atoi(th_s[t]);
            knob_threads_set(th);
            for (int b = 0; b < n_b; b++) {
                int B = KNOB_MAX(1, KNOB_MIN(atoi(b_s[b]), 8));
                double tt[16];
                if (time_decode(lm, B, steps, reps, tt, &err))
                    return fail(&err);
                double med = tt[reps / 2], gbs = med / B * mb / 1e3;   /* a step reads the weights once */
                printf("%-6s %-26s %7d %5d %8.1f %6.1f-%-6.1f %9.1f %7.1f %7.0f%%\n", d_s[d], knob_lm_kernel(lm), th,
                       B, med, tt[0], tt[reps - 1], mb, gbs, 100 * gbs / bw[t]);
                fflush(stdout);
            }
        }
        if (prefill) {
            knob_threads_set(atoi(th_s[n_th - 1]));
            double p = time_prefill(lm, 256, &err);
            if (p < 0)
                return fail(&err);
            printf("%-6s prefill of 256 tokens, %s threads: %.1f tokens/s\n", d_s[d], th_s[n_th - 1], p);
        }
        printf("%-6s resident memory %.0f MB (weights %.0f MB)\n", d_s[d], rss_mb(), mb);
        knob_lm_free(lm);
        if (dt == KNOB_LM_F32)
            knob_params_free(&P);
    }
    knob_matvec_set_q8_act(1);
    return 0;
}
