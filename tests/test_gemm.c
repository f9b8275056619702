/* test_gemm.c: knob_gemm_naive against hand-computed products, then knob_gemm (both micro-kernels)
 * against knob_gemm_naive on many shapes, transposes, alphas and betas; determinism; no allocation.
 *
 * Tolerance. Computing s = sum_{p<K} a_p b_p in float with any order of additions, fused or not,
 * satisfies |fl(s) - s| <= gamma_K * sum_p |a_p b_p|, gamma_K = K u / (1 - K u), u = 2^-24
 * (Higham, Accuracy and Stability of Numerical Algorithms, 3.1). Scaling by alpha, adding beta * C
 * and the reference's own final rounding to float add a few more roundings, so each element must
 * satisfy |got - want| <= (K + 4) u' * (sum_p |alpha a_ip b_pj| + |beta c_ij|), u' = 1.01 u. That
 * bound is rigorous (the test cannot flake), yet a wrong or missing term of size ~ scale / K is
 * caught for every K here (K u << 1 / K while K < 4000). */
#include "test.h"


/* ------------------------------------------------------------------------------------------------
 * Helpers */

static float *fill_random(size_t n, knob_rng *r)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    KNOB_ASSERT(x);
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * knob_rng_uniform(r) - 1.0f;
    return x;
}

/* op(X)[r][c] for X stored (rows, cols), or (cols, rows) when t. */
static float at(const float *X, int t, int rows, int cols, int r, int c)
{
    return t ? X[(size_t)c * rows + r] : X[(size_t)r * cols + c];
}

/* Runs knob_gemm on C_init and compares with knob_gemm_naive on a copy, within the bound in the
 * file comment. Returns 1 when every element passes (and C_init's guard element is untouched). */
static int agrees(const char *file, int line, int ta, int tb, int M, int N, int K, float alpha,
                  float beta, const float *A, const float *B, const float *C_init, int bf16)
{
    size_t mn = (size_t)M * N;
    float *got = malloc((mn + 1) * sizeof(float)), *want = malloc((mn + 1) * sizeof(float));
    KNOB_ASSERT(got && want);
    memcpy(got, C_init, mn * sizeof(float));
    memcpy(want, C_init, mn * sizeof(float));
    got[mn] = want[mn] = 12345.0f;      /* guard: nothing may be written past C */
    if (bf16) {
        knob_gemm_bf16(ta, tb, M, N, K, alpha, A, B, beta, got);
        knob_gemm_bf16_naive(ta, tb, M, N, K, alpha, A, B, beta, want);
    } else {
        knob_gemm(ta, tb, M, N, K, alpha, A, B, beta, got);
        knob_gemm_naive(ta, tb, M, N, K, alpha, A, B, beta, want);
    }
    const double u = 1.01 * 0x1p-24;
    int ok = got[mn] == 12345.0f;
    if (!ok)
        test_fail_at(file, line, "gemm %c%c M=%d N=%d K=%d wrote past the end of C",
                     ta ? 't' : 'n', tb ? 't' : 'n', M, N, K);
    for (int i = 0; i < M && ok; i++)
        for (int j = 0; j < N && ok; j++) {
            double c = (double)C_init[(size_t)i * N + j];
            double scale = beta != 0.0f ? fabs((double)beta * c) : 0.0;
            for (int p = 0; p < K; p++) {
                float a = at(A, ta, M, K, i, p), b = at(B, tb, K, N, p, j);
                if (bf16)
                    a = knob_bf16_round(a), b = knob_bf16_round(b);
                scale += fabs((double)alpha * (double)a * (double)b);
            }
            double g = (double)got[(size_t)i * N + j], w = (double)want[(size_t)i * N + j];
            double tol = (K + 4) * u * scale;
            if (!(fabs(g - w) <= tol)) {    /* also catches NaN */
                test_fail_at(file, line,
                             "gemm%s %c%c M=%d N=%d K=%d alpha=%g beta=%g: C[%d][%d] = %.9g, "
                             "naive %.9g (diff %.3g, tolerance %.3g)",
                             bf16 ? "_bf16" : "", ta ? 't' : 'n', tb ? 't' : 'n', M, N, K, (double)alpha,
                             (double)beta, i, j, g, w, fabs(g - w), tol);
                ok = 0;
            }
        }
    free(got);
    free(want);
    return ok;
}

static int gemm_agrees(const char *file, int line, int ta, int tb, int M, int N, int K,
                       float alpha, float beta, const float *A, const float *B,
                       const float *C_init)
{
    return agrees(file, line, ta, tb, M, N, K, alpha, beta, A, B, C_init, 0);
}

/* Random A, B, C for the shape; C is all NaN when beta == 0 (it must be ignored). Checks all four
 * transpose combinations. */
static void check_shape(const char *file, int line, int M, int N, int K, float alpha, float beta,
                        knob_rng *r)
{
    float *A = fill_random((size_t)M * K, r), *B = fill_random((size_t)K * N, r);
    float *C = fill_random((size_t)M * N, r);
    if (beta == 0.0f)
        for (size_t i = 0; i < (size_t)M * N; i++)
            C[i] = NAN;
    for (int t = 0; t < 4; t++)
        gemm_agrees(file, line, t >> 1, t & 1, M, N, K, alpha, beta, A, B, C);
    free(A);
    free(B);
    free(C);
}

#define CHECK_SHAPE(M, N, K, alpha, beta, r)                                                  \
    check_shape(__FILE__, __LINE__, M, N, K, alpha, beta, r)

/* Shapes: degenerate, odd primes, and sizes just off the micro-tile (6 x 16) and the blocks
 * (MC 144, KC 256, NC 512), several blocks deep along each of M, N and K, so that every edge
 * path runs. */
static void check_many_shapes(void)
{
    static const int dims[][3] = {
        {1, 1, 1},    {1, 7, 1},     {7, 1, 1},     {1, 1, 13},   {1, 33, 1},   {33, 1, 67},
        {2, 3, 4},    {6, 16, 1},    {6, 16, 256},  {5, 15, 7},   {7, 17, 9},   {7, 13, 33},
        {13, 7, 67},  {33, 67, 13},  {67, 33, 129}, {129, 67, 7}, {12, 32, 257},
        {12, 32, 600}, {300, 20, 30}, {40, 1100, 20}, {1, 600, 300}, {300, 1, 600},
        {1, 1, 1500}, {1, 700, 400}, {530, 1, 600}, {12, 20, 1100}, {145, 513, 260},
    };
    static const float ab[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.5f, 2.0f}, {3.0f, 0.0f}};
    knob_rng r;
    knob_rng_seed(&r, 42);
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
        int M = dims[s][0], N = dims[s][1], K = dims[s][2];
        int big = (double)M * N * K > 1e6;  /* big ones: two alpha/beta pairs are enough */
        for (size_t v = 0; v < sizeof ab / sizeof ab[0]; v += big ? 2 : 1)
            CHECK_SHAPE(M, N, K, ab[v][0], ab[v][1], &r);
    }
}

/* ------------------------------------------------------------------------------------------------
 * The reference against independent math */

TEST(gemm_naive_hand_2x2)
{
    /* A = [1 2; 3 4], B = [5 6; 7 8]:
     *   A B     = [19 22; 43 50]      A^T B   = [26 30; 38 44]
     *   A B^T   = [17 23; 39 53]      A^T B^T = [23 31; 34 46] */
    const float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
    const float want[4][4] = {{19, 22, 43, 50}, {17, 23, 39, 53}, {26, 30, 38, 44},
                              {23, 31, 34, 46}};
    for (int t = 0; t < 4; t++) {
        int ta = t >> 1, tb = t & 1;
        float C[4] = {NAN, NAN, NAN, NAN};
        knob_gemm_naive(ta, tb, 2, 2, 2, 1.0f, A, B, 0.0f, C);
        for (int i = 0; i < 4; i++)
            CHECK_NEAR(C[i], want[t][i], 0, 0);
        /* alpha = 2, beta = -1 on C = [1 1; 1 1]: 2 * A B - 1 */
        float D[4] = {1, 1, 1, 1};
        knob_gemm_naive(ta, tb, 2, 2, 2, 2.0f, A, B, -1.0f, D);
        for (int i = 0; i < 4; i++)
            CHECK_NEAR(D[i], 2 * want[t][i] - 1, 0, 0);
    }
}

TEST(gemm_naive_hand_rect)
{
    /* (1, 3) @ (3, 2): [1 2 3] @ [1 0; 0 1; 2 -1] = [7 -1]; and (2, 1) @ (1, 3) outer product
     * [2; -3] [1 2 4] = [2 4 8; -3 -6 -12], accumulated onto C = 0.5 with beta = 2. */
    const float x[3] = {1, 2, 3}, W[6] = {1, 0, 0, 1, 2, -1};
    float y[2] = {NAN, NAN};
    knob_gemm_naive(0, 0, 1, 2, 3, 1.0f, x, W, 0.0f, y);
    CHECK_NEAR(y[0], 7, 0, 0);
    CHECK_NEAR(y[1], -1, 0, 0);
    const float u[2] = {2, -3}, v[3] = {1, 2, 4};
    float C[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    knob_gemm_naive(0, 0, 2, 3, 1, 1.0f, u, v, 2.0f, C);
    const float want[6] = {3, 5, 9, -2, -5, -11};
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(C[i], want[i], 0, 0);
}

/* ------------------------------------------------------------------------------------------------
 * The fast path against the reference */

TEST(gemm_matches_naive)
{
    /* 4 threads, whatever the machine: C is cut along M, along N, or both (2 x 2 for 12 x 20) */
    knob_threads_set(4);
    check_many_shapes();
    knob_threads_set(0);
}

TEST(gemm_one_thread_matches_naive)
{
    /* one thread: products up to 128^3 with one K slice read A (and B when not transposed) in
     * place (the direct path, where the CPU has a kernel for it), the rest pack */
    knob_threads_set(1);
    check_many_shapes();
    knob_threads_set(0);
}

TEST(gemm_portable_matches_naive)
{
    /* the fallback micro-kernel, on one thread: one rectangle spans all of C */
    knob_gemm_force_portable(1);
    knob_threads_set(1);
    check_many_shapes();
    knob_threads_set(0);
    knob_gemm_force_portable(0);
}

TEST(gemm_beta_zero_ignores_nan)
{
    /* C full of NaN and Inf with beta = 0: every path (tiny loop, packed, edge tiles) overwrites */
    static const int dims[][3] = {{1, 1, 1}, {3, 5, 2}, {6, 16, 8}, {37, 41, 43}, {200, 70, 300}};
    knob_rng r;
    knob_rng_seed(&r, 7);
    for (int portable = 0; portable < 2; portable++) {
        knob_gemm_force_portable(portable);
        for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
            int M = dims[s][0], N = dims[s][1], K = dims[s][2];
            float *A = fill_random((size_t)M * K, &r), *B = fill_random((size_t)K * N, &r);
            float *C = malloc((size_t)M * N * sizeof(float));
            KNOB_ASSERT(C);
            for (size_t i = 0; i < (size_t)M * N; i++)
                C[i] = i % 2 ? NAN : INFINITY;
            knob_gemm(0, 1, M, N, K, 1.0f, A, B, 0.0f, C);
            int finite = 1;
            for (size_t i = 0; i < (size_t)M * N; i++)
                finite &= isfinite(C[i]) != 0;
            CHECK(finite);
            free(A);
            free(B);
            free(C);
        }
    }
    knob_gemm_force_portable(0);
}

TEST(gemm_k_zero_and_alpha_zero)
{
    /* K == 0 or alpha == 0: C = beta * C, and A and B are not read (NULL here) */
    float C[6] = {1, 2, 3, 4, 5, 6};
    knob_gemm(0, 0, 2, 3, 0, 1.0f, NULL, NULL, 2.0f, C);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(C[i], 2.0f * (float)(i + 1), 0, 0);
    knob_gemm(1, 1, 2, 3, 5, 0.0f, NULL, NULL, 0.5f, C);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(C[i], (float)(i + 1), 0, 0);
    float D[4] = {NAN, NAN, NAN, NAN};
    knob_gemm(0, 0, 2, 2, 0, 1.0f, NULL, NULL, 0.0f, D);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(D[i], 0, 0, 0);
    knob_gemm(0, 0, 0, 5, 5, 1.0f, NULL, NULL, 0.0f, NULL);    /* empty C: nothing to do */
}

/* ------------------------------------------------------------------------------------------------
 * Determinism and allocation */

TEST(gemm_deterministic)
{
    /* Same call twice: identical bits. The design also makes the bits independent of the thread
     * count (C is split across threads, K never is), so 1 and 2 threads must agree too. Shapes:
     * the packed path and both matrix-vector forms. */
    static const int dims[][5] = {{301, 517, 700, 1, 0}, {1, 2000, 300, 0, 0}, {1, 2000, 300, 0, 1},
                                  {2000, 1, 300, 1, 0}};
    knob_rng r;
    knob_rng_seed(&r, 3);
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
        int M = dims[s][0], N = dims[s][1], K = dims[s][2], ta = dims[s][3], tb = dims[s][4];
        size_t bytes = (size_t)M * N * sizeof(float);
        float *A = fill_random((size_t)M * K, &r), *B = fill_random((size_t)K * N, &r);
        float *C0 = fill_random((size_t)M * N, &r);
        float *C1 = malloc(bytes), *C2 = malloc(bytes), *C3 = malloc(bytes);
        KNOB_ASSERT(C1 && C2 && C3);
        memcpy(C1, C0, bytes);
        memcpy(C2, C0, bytes);
        memcpy(C3, C0, bytes);
        knob_threads_set(2);
        knob_gemm(ta, tb, M, N, K, 0.75f, A, B, 0.5f, C1);
        knob_gemm(ta, tb, M, N, K, 0.75f, A, B, 0.5f, C2);
        CHECK(memcmp(C1, C2, bytes) == 0);
        knob_threads_set(1);
        knob_gemm(ta, tb, M, N, K, 0.75f, A, B, 0.5f, C3);
        CHECK(memcmp(C1, C3, bytes) == 0);
        knob_threads_set(0);
        free(A);
        free(B);
        free(C0);
        free(C1);
        free(C2);
        free(C3);
    }
}

TEST(gemm_threads_same_bits)
{
    /* The threads share one packed B slice and split C by rows, then by B's micro-panels when the
     * rows are few; one thread reads small products in place (100^3, 32 x 128 x 32) where more
     * pack them: 1, 2 and 3 threads must give the same bits, on shapes that take each split
     * (training shapes M = 4096 tokens by 128 / 113, few rows by many columns, several K slices
     * and column panels, edge tiles along both M and N), for every transpose; and agree with the
     * reference within the bound of the file comment. */
    static const int dims[][3] = {{4096, 113, 128}, {4096, 128, 113}, {113, 128, 520},
                                  {64, 1100, 300}, {301, 517, 700}, {12, 2000, 40},
                                  {130, 40, 1030}, {100, 100, 100}, {32, 128, 32},
                                  {37, 50, 260},   {2, 4100, 200}};
    knob_rng r;
    knob_rng_seed(&r, 11);
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
        int M = dims[s][0], N = dims[s][1], K = dims[s][2];
        size_t bytes = (size_t)M * N * sizeof(float);
        float *A = fill_random((size_t)M * K, &r), *B = fill_random((size_t)K * N, &r);
        float *C0 = fill_random((size_t)M * N, &r), *C[3];
        for (int v = 0; v < 3; v++) {
            C[v] = malloc(bytes);
            KNOB_ASSERT(C[v]);
        }
        for (int t = 0; t < 4; t++) {
            int ta = t >> 1, tb = t & 1;
            for (int v = 0; v < 3; v++) {
                memcpy(C[v], C0, bytes);
                knob_threads_set(v + 1);
                knob_gemm(ta, tb, M, N, K, 0.75f, A, B, 0.5f, C[v]);
            }
            CHECK(memcmp(C[0], C[1], bytes) == 0);
            CHECK(memcmp(C[0], C[2], bytes) == 0);
            if ((double)M * N * K < 2e7)    /* the reference costs a double loop per element */
                gemm_agrees(__FILE__, __LINE__, ta, tb, M, N, K, 0.75f, 0.5f, A, B, C0);
        }
        knob_threads_set(0);
        free(A);
        free(B);
        free(C0);
        for (int v = 0; v < 3; v++)
            free(C[v]);
    }
}

TEST(gemm_avx512_same_bits_as_avx2)
{
    /* The AVX-512 level runs a 12-row tile wherever two row panels are full and the AVX2 6-row
     * tile elsewhere; each element is the same chain of fused multiply-adds either way, so the two
     * levels must agree bit for bit: on shapes with an odd number of row panels in a block, a
     * single last panel, partial panels along M and N, several K slices and column panels, few rows
     * (A read in place) and many, on 1, 2 and 3 threads, every transpose, with beta 0 and not, and
     * with a fused bias; with the 12-row kernel that reads A in place on and off (the CPU decides
     * elsewhere). (The reference checks of this file run at the machine's own level, which covers
     * the 12-row tile's values.) */
    if (knob_kernel_isa() < KNOB_ISA_AVX512)
        SKIP("no AVX-512 F/BW/VL level here (the CPU lacks it, or KNOB_KERNEL caps it)");
    static const int dims[][3] = {{4096, 113, 128}, {301, 517, 700}, {18, 16, 256}, {30, 48, 600},
                                  {12, 32, 257},    {257, 1100, 40}, {64, 128, 784}, {100, 100, 100},
                                  {130, 40, 1030}, {8, 576, 25},    {8, 25, 576}};
    knob_rng r;
    knob_rng_seed(&r, 12);
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
        int M = dims[s][0], N = dims[s][1], K = dims[s][2];
        size_t bytes = (size_t)M * N * sizeof(float);
        float *A = fill_random((size_t)M * K, &r), *B = fill_random((size_t)K * N, &r);
        float *bias = fill_random((size_t)N, &r), *C0 = fill_random((size_t)M * N, &r);
        float *C2 = malloc(bytes), *C5 = malloc(bytes);
        KNOB_ASSERT(C2 && C5);
        for (int t = 0; t < 8; t++) {
            int ta = t >> 2 & 1, tb = t >> 1 & 1, with_bias = t & 1;
            for (int threads = 1; threads <= 3; threads++) {
                knob_threads_set(threads);
                knob_gemm_set_strided_two(threads != 2);
                for (int level = KNOB_ISA_AVX2; level <= KNOB_ISA_AVX512; level++) {
                    float *C = level == KNOB_ISA_AVX2 ? C2 : C5;
                    float beta = threads == 2 ? 0.0f : 0.3f;   /* not a power of 2 */
                    memcpy(C, C0, bytes);
                    knob_kernel_force(level);
                    if (with_bias)
                        knob_gemm_bias(ta, tb, M, N, K, 0.75f, A, B, beta, C, bias);
                    else
                        knob_gemm(ta, tb, M, N, K, 0.75f, A, B, beta, C);
                }
                CHECK(memcmp(C2, C5, bytes) == 0);
            }
        }
        knob_kernel_force(-1);
        knob_gemm_set_strided_two(-1);
        knob_threads_set(0);
        free(A);
        free(B);
        free(bias);
        free(C0);
        free(C2);
        free(C5);
    }
}

TEST(gemm_bias_same_bits_as_separate_add)
{
    /* knob_gemm_bias == knob_gemm then C[i][j] += bias[j], bit for bit, on every path: tiny loop,
     * matrix-vector, direct, packed with one and several K slices, edge tiles, 1 and 3 threads,
     * both kernels, alpha/beta pairs, every transpose. And one hand-checked case. */
    static const int dims[][3] = {{3, 5, 2},    {1, 40, 30},   {40, 1, 30}, {37, 41, 43},
                                  {100, 100, 100}, {130, 70, 600}, {600, 113, 128}, {0, 5, 5},
                                  {4, 6, 0}};
    static const float ab[][2] = {{1.0f, 0.0f}, {-0.5f, 2.0f}, {0.0f, 1.5f}};
    knob_rng r;
    knob_rng_seed(&r, 13);
    for (int portable = 0; portable < 2; portable++) {
        knob_gemm_force_portable(portable);
        for (int threads = 1; threads <= 3; threads += 2) {
            knob_threads_set(threads);
            for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
                int M = dims[s][0], N = dims[s][1], K = dims[s][2];
                size_t mn = (size_t)M * N, bytes = mn * sizeof(float);
                float *A = fill_random((size_t)M * K, &r), *B = fill_random((size_t)K * N, &r);
                float *bias = fill_random((size_t)N, &r), *C0 = fill_random(mn, &r);
                float *want = malloc(bytes + 1), *got = malloc(bytes + 1);
                KNOB_ASSERT(want && got);
                for (int t = 0; t < 4; t++)
                    for (size_t v = 0; v < sizeof ab / sizeof ab[0]; v++) {
                        memcpy(want, C0, bytes);
                        memcpy(got, C0, bytes);
                        knob_gemm(t >> 1, t & 1, M, N, K, ab[v][0], A, B, ab[v][1], want);
                        for (int i = 0; i < M; i++)
                            for (int j = 0; j < N; j++)
                                want[(size_t)i * N + j] += bias[j];
                        knob_gemm_bias(t >> 1, t & 1, M, N, K, ab[v][0], A, B, ab[v][1], got,
                                       bias);
                        if (memcmp(want, got, bytes) != 0) {
                            test_fail_at(__FILE__, __LINE__,
                                         "gemm_bias %c%c M=%d N=%d K=%d alpha=%g beta=%g "
                                         "threads=%d portable=%d differs from gemm + add",
                                         t >> 1 ? 't' : 'n', t & 1 ? 't' : 'n', M, N, K,
                                         (double)ab[v][0], (double)ab[v][1], threads, portable);
                        }
                    }
                free(A);
                free(B);
                free(bias);
                free(C0);
                free(want);
                free(got);
            }
        }
    }
    knob_threads_set(0);
    knob_gemm_force_portable(0);
    /* [1 2; 3 4] @ [5 6; 7 8] = [19 22; 43 50], + [10 -20] on each row */
    const float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8}, bias[2] = {10, -20};
    float C[4] = {NAN, NAN, NAN, NAN};
    knob_gemm_bias(0, 0, 2, 2, 2, 1.0f, A, B, 0.0f, C, bias);
    CHECK_NEAR(C[0], 29, 0, 0);
    CHECK_NEAR(C[1], 2, 0, 0);
    CHECK_NEAR(C[2], 53, 0, 0);
    CHECK_NEAR(C[3], 30, 0, 0);
}

TEST(gemm_no_alloc)
{
    const int M = 200, N = 600, K = 300;
    knob_rng r;
    knob_rng_seed(&r, 5);
    float *A = fill_random((size_t)M * K, &r), *B = fill_random((size_t)K * N, &r);
    float *C = fill_random((size_t)M * N, &r);
    knob_threads_set(2);
    knob_gemm(0, 0, M, N, K, 1.0f, A, B, 0.0f, C);     /* first call: threads start up */
    long before = knob_alloc_count();
    for (int t = 0; t < 4; t++)
        knob_gemm(t >> 1, t & 1, M, N, K, 1.0f, A, B, 1.0f, C);
    knob_gemm(0, 0, 3, 4, 5, 1.0f, A, B, 0.0f, C);      /* the tiny-product path too */
    knob_gemm(0, 1, 1, N, K, 1.0f, A, B, 0.0f, C);      /* and both matrix-vector forms */
    knob_gemm(1, 0, M, 1, K, 1.0f, A, B, 0.0f, C);
    knob_gemm_bias(0, 1, M, N, K, 1.0f, A, B, 0.0f, C, B);     /* the fused bias (any N floats) */
    knob_gemm(0, 0, 50, 60, 70, 1.0f, A, B, 0.0f, C);   /* the direct path (one thread: small) */
    CHECK(knob_alloc_count() == before);
    knob_threads_set(0);
    free(A);
    free(B);
    free(C);
}

TEST(gemm_bf16_rounds_inputs_and_sums_in_f32)
{
    /* knob_gemm_bf16 multiplies the inputs rounded to bf16, exactly (a product of two bf16 has at
     * most 16 significant bits), and sums in f32: after the rounding it is an f32 product of the
     * rounded matrices, so it must meet the bound of the file comment against the double sums of
     * the rounded inputs (knob_gemm_bf16_naive), on every size (tiny ones too: they take the packed
     * path), transpose, alpha and beta, at every instruction-set level; give the same bits on 1, 2
     * and 3 threads; and really round: against the unrounded f32 product it is off by far more
     * than f32 summation allows (random inputs lose ~2^-9 relative each). */
    static const int dims[][3] = {{1, 1, 1},    {3, 5, 7},     {1, 300, 65},  {70, 1, 33},
                                  {13, 17, 19}, {64, 128, 784}, {301, 77, 520}, {130, 40, 1030},
                                  {2, 4100, 20}};
    knob_rng r;
    knob_rng_seed(&r, 21);
    for (int level = KNOB_ISA_PORTABLE; level <= knob_kernel_isa(); level++) {
        knob_kernel_force(level);
        for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
            int M = dims[s][0], N = dims[s][1], K = dims[s][2];
            float *A = fill_random((size_t)M * K, &r), *B = fill_random((size_t)K * N, &r);
            float *C0 = fill_random((size_t)M * N, &r);
            for (int t = 0; t < 4; t++) {
                CHECK(agrees(__FILE__, __LINE__, t >> 1, t & 1, M, N, K, 1.0f, 0.0f, A, B, C0, 1));
                CHECK(agrees(__FILE__, __LINE__, t >> 1, t & 1, M, N, K, 0.75f, 0.5f, A, B, C0, 1));
            }
            free(A);
            free(B);
            free(C0);
        }
    }
    knob_kernel_force(-1);

    int M = 150, N = 70, K = 300;
    size_t bytes = (size_t)M * N * sizeof(float);
    float *A = fill_random((size_t)M * K, &r), *B = fill_random((size_t)K * N, &r);
    float *C[3], *F = malloc(bytes);
    KNOB_ASSERT(F);
    for (int v = 0; v < 3; v++) {
        C[v] = malloc(bytes);
        KNOB_ASSERT(C[v]);
        knob_threads_set(v + 1);
        knob_gemm_bf16(0, 1, M, N, K, 1.0f, A, B, 0.0f, C[v]);
    }
    knob_threads_set(0);
    CHECK(memcmp(C[0], C[1], bytes) == 0);
    CHECK(memcmp(C[0], C[2], bytes) == 0);
    knob_gemm_naive(0, 1, M, N, K, 1.0f, A, B, 0.0f, F);
    double worst = 0.0;   /* f32 summation allows ~ K u sum|ab| ~ 300 * 6e-8 * 75 ~ 1.3e-3 */
    for (size_t i = 0; i < (size_t)M * N; i++)
        worst = fmax(worst, fabs((double)C[0][i] - (double)F[i]));
    CHECK(worst > 1e-2);
    free(A);
    free(B);
    free(F);
    for (int v = 0; v < 3; v++)
        free(C[v]);
}
