/* nn.c: the row-wise math of a transformer, once, for the training ops and for inference alike:
 * layernorm forward and backward (mean and rstd kept per row), GELU forward and backward, and
 * softmax / log-softmax / log-sum-exp / softmax cross-entropy over rows. Pure loops over pointers
 * and sizes; no graph, no allocation. The ops in src/ops/ (norm.c, elementwise.c, reduce.c,
 * loss.c) are these plus shape checks; src/models/lm.c calls them on its rows directly.
 *
 * Threads: the row loops are pool tasks over chunks of rows when the work is large (each row is
 * written by one thread); the sums over rows of layernorm's dweight and dbias are split over
 * blocks of columns, each adding its rows in row order. Same bits for any thread count.
 *
 * Not here: attention (attention.c; only its flash kernels' softmax row is here, next to the other
 * softmaxes, for knob's exp), matrix products (gemm.c). */
#include "knob_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * exp
 *
 * knob's own exp for float32, one algorithm in two forms: vmath_exp1 (portable C, one value) and
 * vmath_exp8_avx2 (AVX2 + FMA, eight values), inline so the GELU and cross-entropy loops below
 * keep everything in registers; knob_vexp runs either over an array (tests, other layers).
 *
 *   n = rint(x log2 e),  r = x - n ln2 (ln2 in two parts, so r is exact to a few ulp),
 *   e^r = 1 + r + r^2/2! + ... + r^7/7!  for |r| <= ln2 / 2  (truncation under 6e-9 relative),
 *   e^x = e^r 2^n1 2^n2,  n1 = floor(n / 2), n2 = n - n1,
 * the scale in two halves so that n from -151 to 128 needs no special case: results below
 * FLT_MIN come out as denormals (rounded twice), x above ln FLT_MAX gives inf, x far below gives 0,
 * NaN gives NaN. x is clamped to [-104, 89] first, where the answer is already 0 or inf.
 * Accuracy against double exp for normal results ([-87.3, 88.7], 2e7 points): at most 1.21 ulp
 * portable, 0.93 ulp AVX2 (glibc's expf: 0.50); tests/test_vmath.c holds both under 1.5. */

#define VMATH_LOG2E 1.44269504088896341f
#define VMATH_LN2_HI 0.693145751953125f          /* 11 significant bits: n ln2_hi is exact */
#define VMATH_LN2_LO 1.428606765330187045e-06f
#define VMATH_X_MIN -104.0f
#define VMATH_X_MAX 89.0f

static inline float vmath_pow2i(int n)   /* 2^n for n in [-126, 127] */
{
    uint32_t u = (uint32_t)(n + 127) << 23;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float vmath_exp1(float x)
{
    if (x != x)
        return x;
    x = x < VMATH_X_MIN ? VMATH_X_MIN : x > VMATH_X_MAX ? VMATH_X_MAX : x;
    /* round to nearest by adding and taking away 1.5 * 2^23 (exact for |v| < 2^22; no libm call) */
    float n = (x * VMATH_LOG2E + 12582912.0f) - 12582912.0f;
    float r = (x - n * VMATH_LN2_HI) - n * VMATH_LN2_LO;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int ni = (int)n, n1 = ni >> 1, n2 = ni - n1;   /* >> of a negative int: arithmetic on gcc/clang */
    return p * vmath_pow2i(n1) * vmath_pow2i(n2);
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define VMATH_X86 1

__attribute__((target("avx2,fma"))) static inline __m256 vmath_exp8_avx2(__m256 x)
{
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(VMATH_X_MIN)), _mm256_set1_ps(VMATH_X_MAX));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(VMATH_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VMATH_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VMATH_LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_blendv_ps(y, x, nan);
}
#else
#define VMATH_X86 0
#endif


#if VMATH_X86
__attribute__((target("avx2,fma"))) static void vexp_avx2(float *y, const float *x, long n)
{
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, vmath_exp8_avx2(_mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        y[i] = vmath_exp1(x[i]);
}
#endif

void knob_vexp(float *y, const float *x, long n, int isa)
{
#if VMATH_X86
    if (isa >= KNOB_ISA_AVX2) {
        vexp_avx2(y, x, n);
        return;
    }
#endif
    (void)isa;
    for (long i = 0; i < n; i++)
        y[i] = vmath_exp1(x[i]);
}

/* ------------------------------------------------------------------------------------------------
 * Column sums: a bias's gradient. gb[c] (= 0 when fresh, else its value) + dy[0][c] + dy[1][c] +
 * ... over n_rows rows of nb floats, threaded over blocks of columns, each column adding its rows in order
 * (subtracting them when neg). With AVX2 four vectors (32 columns) stay in registers over all the
 * rows; the plain loop keeps gb in memory and adds each row into it, a store and a reload per row.
 * Both add the same values in the same order: the same bits. */
#if VMATH_X86
__attribute__((target("avx2"))) static void colsum_avx2(float *gb, const float *dy, long n_rows, size_t nb,
                                                        size_t j0, size_t j1, int fresh, int neg)
{
    size_t c = j0;
    for (; c + 32 <= j1; c += 32) {
        __m256 a0 = fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(gb + c);
        __m256 a1 = fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(gb + c + 8);
        __m256 a2 = fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(gb + c + 16);
        __m256 a3 = fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(gb + c + 24);
        const float *p = dy + c;
        if (neg)
            for (long r = 0; r < n_rows; r++, p += nb) {
                a0 = _mm256_sub_ps(a0, _mm256_loadu_ps(p));
                a1 = _mm256_sub_ps(a1, _mm256_loadu_ps(p + 8));
                a2 = _mm256_sub_ps(a2, _mm256_loadu_ps(p + 16));
                a3 = _mm256_sub_ps(a3, _mm256_loadu_ps(p + 24));
            }
        else
            for (long r = 0; r < n_rows; r++, p += nb) {
                a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p));
                a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + 8));
                a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + 16));
                a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + 24));
            }
        _mm256_storeu_ps(gb + c, a0);
        _mm256_storeu_ps(gb + c + 8, a1);
        _mm256_storeu_ps(gb + c + 16, a2);
        _mm256_storeu_ps(gb + c + 24, a3);
    }
    for (; c + 8 <= j1; c += 8) {
        __m256 a0 = fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(gb + c);
        const float *p = dy + c;
        for (long r = 0; r < n_rows; r++, p += nb)
            a0 = neg ? _mm256_sub_ps(a0, _mm256_loadu_ps(p)) : _mm256_add_ps(a0, _mm256_loadu_ps(p));
        _mm256_storeu_ps(gb + c, a0);
    }
    for (; c < j1; c++) {
        float a = fresh ? 0.0f : gb[c];
        for (long r = 0; r < n_rows; r++)
            a = neg ? a - dy[(size_t)r * nb + c] : a + dy[(size_t)r * nb + c];
        gb[c] = a;
    }
}
#endif

/* Columns [j0, j1) of one call */
static void colsum_cols(float *gb, const float *dy, long n_rows, size_t nb, size_t j0, size_t j1, int fresh,
                        int neg)
{
#if VMATH_X86
    if (knob_kernel_isa() >= KNOB_ISA_AVX2) {
        colsum_avx2(gb, dy, n_rows, nb, j0, j1, fresh, neg);
        return;
    }
#endif
    if (fresh)
        for (size_t j = j0; j < j1; j++)
            gb[j] = 0.0f;
    for (long r = 0; r < n_rows; r++) {
        const float *p = dy + (size_t)r * nb;
        if (neg) {
#pragma omp simd
            for (size_t j = j0; j < j1; j++)
                gb[j] -= p[j];
        } else {
#pragma omp simd
            for (size_t j = j0; j < j1; j++)
                gb[j] += p[j];
        }
    }
}

/* One call's arguments, for the pool's tasks: blocks of COLSUM_BLOCK columns (each column has one
 * writer, so the split never changes the bits) */
enum { COLSUM_BLOCK = 64 };

typedef struct {
    float *gb;
    const float *dy;
    long n_rows;
    size_t nb;
    int fresh, neg;
} colsum_task;

static void colsum_blocks(void *ctx, long lo, long hi)
{
    const colsum_task *t = ctx;
    for (long blk = lo; blk < hi; blk++) {
        size_t j0 = (size_t)blk * COLSUM_BLOCK, j1 = KNOB_MIN(t->nb, j0 + COLSUM_BLOCK);
        colsum_cols(t->gb, t->dy, t->n_rows, t->nb, j0, j1, t->fresh, t->neg);
    }
}

void knob_colsum(float *gb, const float *dy, long n_rows, size_t nb, int fresh, int neg)
{
    colsum_task t = {gb, dy, n_rows, nb, fresh, neg};
    knob_par_items((long)((nb + COLSUM_BLOCK - 1) / COLSUM_BLOCK), (double)n_rows * COLSUM_BLOCK, colsum_blocks, &t);
}

#define LN_EPS 1e-5f
/* Backward's dweight and dbias sums run over rows in blocks of LN_ROW_BLOCK rows, in the same pass
 * as dx (see layernorm_backward); LN_COL_BLOCK columns per task when the blocks are added up. */
#define LN_ROW_BLOCK 32
#define LN_COL_BLOCK 64

/* ------------------------------------------------------------------------------------------------
 * LayerNorm, per row of C values:
 *   mean = sum_i x_i / C,  var = sum_i (x_i - mean)^2 / C,  rstd = 1 / sqrt(var + eps)
 *   xhat_i = (x_i - mean) rstd,  y_i = w_i xhat_i + b_i
 * Backward. dxhat_i = dy_i w_i; dw_i += sum_rows dy_i xhat_i; db_i += sum_rows dy_i. For dx:
 *   d mean / d x_j = 1/C
 *   d var / d x_j  = 2/C sum_i (x_i - mean)(delta_ij - 1/C) = 2 (x_j - mean) / C   (sum_i (x_i - mean) = 0)
 *   d rstd / d x_j = -rstd^3 / 2 * d var / d x_j = -rstd^2 xhat_j / C, so
 *   d xhat_i / d x_j = rstd (delta_ij - 1/C) + (x_i - mean) d rstd / d x_j
 *                    = rstd (delta_ij - 1/C - xhat_i xhat_j / C)
 *   dx_j = sum_i dxhat_i d xhat_i / d x_j = rstd (dxhat_j - mean(dxhat) - xhat_j mean(dxhat xhat)) */

/* The arguments of one layernorm pass, for the pool's tasks (rows, or blocks of columns). */
typedef struct {
    float *out, *stats, *dx, *dw, *db;
    float *part;    /* backward: n_blocks x (2, C): each row block's sums for dw and db */
    const float *x, *w, *b, *dy, *stats_in;
    long N;
    int C, fresh;   /* fresh: dx holds nothing yet; write 0 + the gradient */
    int vec;        /* backward: dx rows with AVX2 (ln_vec) */
} ln_args;

static void ln_forward_rows(void *ctx, long lo, long hi)
{
    const ln_args *A = ctx;
    float *out = A->out, *stats = A->stats;
    const float *x = A->x, *w = A->w, *b = A->b;
    int C = A->C;
    for (long r = lo; r < hi; r++) {
        const float *xr = x + (size_t)r * (size_t)C;
        float *yr = out + (size_t)r * (size_t)C;
        float m = 0.0f;
        for (int i = 0; i < C; i++)
            m += xr[i];
        m /= (float)C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) {
            float d = xr[i] - m;
            v += d * d;
        }
        v /= (float)C;
        float rstd = 1.0f / sqrtf(v + LN_EPS);
        for (int i = 0; i < C; i++) {
            float xhat = (xr[i] - m) * rstd;
            yr[i] = xhat * w[i] + (b ? b[i] : 0.0f);
        }
        if (stats) {
            stats[2 * r] = m;
            stats[2 * r + 1] = rstd;
        }
    }
}

/* The one-pass forms (AVX2 + FMA, rows of C >= LN_VEC_MIN): forward takes sum x and sum x^2 of a
 * row in one sweep, in double lanes (4 + 4 per 8 floats), so that var = E[x^2] - mean^2 keeps its
 * digits (in float it would cancel for rows far from 0: mean 1e3, std 1 loses all of them; in
 * double it holds until |mean| / std is near 1e7); then one sweep writes y = (x - mean) rstd w + b.
 * Backward takes its two row sums, sum dxhat and sum dxhat xhat, in one sweep of float lanes, then
 * writes dx in a second. Rows of fewer columns keep the loops above: they take no time, and their
 * bits are the ones old GPT checkpoints (C 8) resume to (tests/cli/test_checkpoint_compat.sh). */
#define LN_VEC_MIN 16

#if VMATH_X86
__attribute__((target("avx2,fma"))) static inline double hsum4d(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

__attribute__((target("avx2,fma"))) static inline float hsum8f(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

__attribute__((target("avx2,fma"))) static void ln_forward_rows_avx2(void *ctx, long lo, long hi)
{
    const ln_args *A = ctx;
    float *out = A->out, *stats = A->stats;
    const float *x = A->x, *w = A->w, *b = A->b;
    int C = A->C;
    for (long r = lo; r < hi; r++) {
        const float *xr = x + (size_t)r * (size_t)C;
        float *yr = out + (size_t)r * (size_t)C;
        __m256d s0 = _mm256_setzero_pd(), s1 = s0, q0 = s0, q1 = s0;
        int i = 0;
        for (; i + 8 <= C; i += 8) {
            __m256 v = _mm256_loadu_ps(xr + i);
            __m256d lo4 = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi4 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
            s0 = _mm256_add_pd(s0, lo4);
            s1 = _mm256_add_pd(s1, hi4);
            q0 = _mm256_fmadd_pd(lo4, lo4, q0);
            q1 = _mm256_fmadd_pd(hi4, hi4, q1);
        }
        double s = hsum4d(_mm256_add_pd(s0, s1)), q = hsum4d(_mm256_add_pd(q0, q1));
        for (; i < C; i++) {
            s += (double)xr[i];
            q += (double)xr[i] * (double)xr[i];
        }
        double mean = s / C, var = q / C - mean * mean;
        var = var > 0 ? var : 0;   /* rounding can take it a hair below 0 for a constant row */
        float m = (float)mean, rstd = (float)(1.0 / sqrt(var + (double)LN_EPS));
        __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(rstd);
        for (i = 0; i + 8 <= C; i += 8) {
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vm), vr);
            __m256 bb = b ? _mm256_loadu_ps(b + i) : _mm256_setzero_ps();
            _mm256_storeu_ps(yr + i, _mm256_fmadd_ps(xhat, _mm256_loadu_ps(w + i), bb));
        }
        for (; i < C; i++)
            yr[i] = (xr[i] - m) * rstd * w[i] + (b ? b[i] : 0.0f);
        if (stats) {
            stats[2 * r] = m;
            stats[2 * r + 1] = rstd;
        }
    }
}

__attribute__((target("avx2,fma"))) static void ln_backward_rows_avx2(const ln_args *A, long lo, long hi)
{
    const float *x = A->x, *w = A->w, *dy = A->dy, *stats = A->stats_in;
    float *dx = A->dx;
    int C = A->C;
    for (long r = lo; r < hi; r++) {
        const float *xr = x + (size_t)r * (size_t)C, *dyr = dy + (size_t)r * (size_t)C;
        float *dxr = dx + (size_t)r * (size_t)C;
        float m = stats[2 * r], rstd = stats[2 * r + 1];
        __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(rstd);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        int i = 0;
        for (; i + 8 <= C; i += 8) {
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vm), vr);
            __m256 dxhat = _mm256_mul_ps(_mm256_loadu_ps(dyr + i), _mm256_loadu_ps(w + i));
            a0 = _mm256_add_ps(a0, dxhat);
            a1 = _mm256_fmadd_ps(dxhat, xhat, a1);
        }
        float sd = hsum8f(a0), sdx = hsum8f(a1);
        for (int j = i; j < C; j++) {
            float xhat = (xr[j] - m) * rstd, dxhat = dyr[j] * w[j];
            sd += dxhat;
            sdx += dxhat * xhat;
        }
        float mean1 = sd / (float)C, mean2 = sdx / (float)C;
        __m256 v1 = _mm256_set1_ps(mean1), v2 = _mm256_set1_ps(mean2);
        for (i = 0; i + 8 <= C; i += 8) {
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vm), vr);
            __m256 dxhat = _mm256_mul_ps(_mm256_loadu_ps(dyr + i), _mm256_loadu_ps(w + i));
            __m256 g = _mm256_fnmadd_ps(xhat, v2, _mm256_sub_ps(dxhat, v1));
            __m256 acc = A->fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(dxr + i);
            _mm256_storeu_ps(dxr + i, _mm256_fmadd_ps(vr, g, acc));
        }
        for (; i < C; i++) {
            float xhat = (xr[i] - m) * rstd, dxhat = dyr[i] * w[i];
            dxr[i] = (A->fresh ? 0.0f : dxr[i]) + rstd * (dxhat - mean1 - xhat * mean2);
        }
    }
}

static int ln_vec(int C) { return C >= LN_VEC_MIN && knob_kernel_isa() >= KNOB_ISA_AVX2; }
#endif

void knob_layernorm_forward(float *out,          // (N, C)
                            float *stats,        // (N, 2): mean, rstd; may be NULL
                            const float *x,      // (N, C)
                            const float *w,      // (C)
                            const float *b,      // (C) or NULL
                            long N, int C)
{
    ln_args a = {.out = out, .stats = stats, .x = x, .w = w, .b = b, .N = N, .C = C};
#if VMATH_X86
    if (ln_vec(C)) {
        knob_par_items(N, 3.0 * C, ln_forward_rows_avx2, &a);
        return;
    }
#endif
    knob_par_items(N, 3.0 * C, ln_forward_rows, &a);
}

static void ln_backward_rows(const ln_args *A, long lo, long hi)
{
    const float *x = A->x, *w = A->w, *dy = A->dy, *stats = A->stats_in;
    float *dx = A->dx;
    int C = A->C;
    for (long r = lo; r < hi; r++) {
        const float *xr = x + (size_t)r * (size_t)C, *dyr = dy + (size_t)r * (size_t)C;
        float *dxr = dx + (size_t)r * (size_t)C;
        float m = stats[2 * r], rstd = stats[2 * r + 1];
        float dxhat_mean = 0.0f, dxhat_xhat_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float xhat = (xr[i] - m) * rstd, dxhat = dyr[i] * w[i];
            dxhat_mean += dxhat;
            dxhat_xhat_mean += dxhat * xhat;
        }
        dxhat_mean /= (float)C;
        dxhat_xhat_mean /= (float)C;
        for (int i = 0; i < C; i++) {
            float xhat = (xr[i] - m) * rstd, dxhat = dyr[i] * w[i];
            dxr[i] = (A->fresh ? 0.0f : dxr[i]) + rstd * (dxhat - dxhat_mean - xhat * dxhat_xhat_mean);
        }
    }
}

/* Row blocks [lo, hi): each block's rows get their dx (when wanted), and the block's sums for dw
 * and db, rows in order, go to its slot of part: while the rows are in this core's cache, where a
 * separate pass over columns read every row again, half of them from the other core's cache
 * (bench_step gpt:113,4,4,128,128,32, one layernorm's backward: 440 us on 1 thread, 1,150 on 2
 * before). */
static void ln_backward_blocks(void *ctx, long lo, long hi)
{
    const ln_args *A = ctx;
    const int C = A->C;
    for (long blk = lo; blk < hi; blk++) {
        long r0 = blk * LN_ROW_BLOCK, r1 = KNOB_MIN(A->N, r0 + LN_ROW_BLOCK);
        if (A->dx) {
#if VMATH_X86
            if (A->vec)
                ln_backward_rows_avx2(A, r0, r1);
            else
#endif
                ln_backward_rows(A, r0, r1);
        }
        if (!A->dw && !A->db)
            continue;
        float *pw = A->part + (size_t)blk * 2 * (size_t)C, *pb = pw + C;   // (C), (C)
        for (long r = r0; r < r1; r++) {
            const float *xr = A->x + (size_t)r * (size_t)C, *dyr = A->dy + (size_t)r * (size_t)C;
            float m = A->stats_in[2 * r], rstd = A->stats_in[2 * r + 1];
            if (r == r0) {
#pragma omp simd
                for (int i = 0; i < C; i++) {
                    pw[i] = dyr[i] * (xr[i] - m) * rstd;
                    pb[i] = dyr[i];
                }
            } else {
#pragma omp simd
                for (int i = 0; i < C; i++) {
                    pw[i] += dyr[i] * (xr[i] - m) * rstd;
                    pb[i] += dyr[i];
                }
            }
        }
    }
}

/* Columns in blocks [lo, hi) of LN_COL_BLOCK: dw and db add up the row blocks' sums in block order */
static void ln_backward_sums(void *ctx, long lo, long hi)
{
    const ln_args *A = ctx;
    const int C = A->C;
    const long n_blocks = (A->N + LN_ROW_BLOCK - 1) / LN_ROW_BLOCK;
    for (long cb = lo; cb < hi; cb++) {
        int i0 = (int)cb * LN_COL_BLOCK, i1 = KNOB_MIN(C, i0 + LN_COL_BLOCK);
        for (int k = 0; k < 2; k++) {
            float *out = k ? A->db : A->dw;
            if (!out)
                continue;
            for (int i = i0; i < i1; i++) {
                float acc = A->part[(size_t)k * C + i];
                for (long blk = 1; blk < n_blocks; blk++)
                    acc += A->part[((size_t)blk * 2 + (size_t)k) * (size_t)C + i];
                out[i] += acc;
            }
        }
    }
}

size_t knob_layernorm_scratch(long N, int C)
{
    return (size_t)((N + LN_ROW_BLOCK - 1) / LN_ROW_BLOCK) * 2 * (size_t)C;
}

/* dx row by row; dw and db as sums over rows in fixed blocks of LN_ROW_BLOCK rows, added in block
 * order: the bits depend on N and C alone, not on the thread count. */
static void layernorm_backward(float *dx,            // (N, C) accumulated (written when fresh), or NULL
                             float *dw,            // (C) accumulated, or NULL
                             float *db,            // (C) accumulated, or NULL
                             const float *dy,      // (N, C)
                             const float *x,       // (N, C)
                             const float *w,       // (C)
                             const float *stats,   // (N, 2) from forward
                             float *part,          // knob_layernorm_scratch(N, C) floats when dw or db
                             long N, int C, int fresh)
{
    ln_args a = {.dx = dx, .dw = dw, .db = db, .part = part, .x = x, .w = w, .dy = dy, .stats_in = stats,
                 .N = N, .C = C, .fresh = fresh};
#if VMATH_X86
    a.vec = ln_vec(C);
#endif
    KNOB_ASSERT(part || (!dw && !db));
    long n_blocks = (N + LN_ROW_BLOCK - 1) / LN_ROW_BLOCK;
    knob_par_items(n_blocks, 6.0 * LN_ROW_BLOCK * C, ln_backward_blocks, &a);
    if (dw || db)
        knob_par_items((C + LN_COL_BLOCK - 1) / LN_COL_BLOCK, 2.0 * (double)n_blocks * LN_COL_BLOCK,
                       ln_backward_sums, &a);
}

void knob_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                             const float *stats, float *scratch, long N, int C)
{
    layernorm_backward(dx, dw, db, dy, x, w, stats, scratch, N, C, 0);
}

void knob_layernorm_backward_fresh(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                   const float *stats, float *scratch, long N, int C)
{
    layernorm_backward(dx, dw, db, dy, x, w, stats, scratch, N, C, 1);
}

/* ------------------------------------------------------------------------------------------------
 * GELU, tanh approximation (GPT-2): y = 0.5 x (1 + t), t = tanh(u), u = k (x + 0.044715 x^3),
 * k = sqrt(2/pi)
 * dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 * 0.044715 x^2)
 * Computed through e = exp(-2u) and s = 0.5 (1 + t) = 1 / (1 + e), so 1 - s = e s and
 * 1 - t^2 = 4 s (1 - s):
 *   y = x s,   dy/dx = s + 2 x s (e s) k (1 + 3 * 0.044715 x^2)
 * One expf instead of tanhf, which glibc computes through its much slower expm1f: 3 to 4 times
 * faster. No cancellation either: 0.5 x (1 + tanh(u)) loses most digits of y for x below -3, where
 * t is near -1. Against the formula in double over [-12, 12]: y within 6e-7 absolute and 3e-6
 * relative, dy/dx within 2e-7. e = inf (x far below 0) gives s = 0 and 1 - s = 1. */

#define GELU_K 0.7978845608028654f
static inline float gelu_e(float x) { return expf(-2.0f * GELU_K * (x + 0.044715f * x * x * x)); }

float knob_gelu1(float x) { return x / (1.0f + gelu_e(x)); }

float knob_gelu1_grad(float x)
{
    float e = gelu_e(x), s = 1.0f / (1.0f + e);
    float one_minus_s = e < INFINITY ? e * s : 1.0f;
    return s + 2.0f * x * s * one_minus_s * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
}

typedef struct {
    float *y, *dx;
    const float *x, *dy;
    int isa, fresh;   /* fresh: dx holds nothing yet; write 0 + the gradient, not dx + it */
} gelu_args;

/* The loops over arrays compute the same formulas with knob's own exp (vmath.h) instead of libm's
 * expf: 8 lanes at a time with AVX2 + FMA, else one value at a time in portable C. They agree with
 * knob_gelu1 / knob_gelu1_grad to a few ulp (tests/test_vmath.c). */
static void gelu_fwd_portable(float *y, const float *x, long lo, long hi)
{
    for (long i = lo; i < hi; i++) {
        float v = x[i];
        y[i] = v / (1.0f + vmath_exp1(-2.0f * GELU_K * (v + 0.044715f * v * v * v)));
    }
}

static float gelu_grad_portable(float v)
{
    float e = vmath_exp1(-2.0f * GELU_K * (v + 0.044715f * v * v * v)), s = 1.0f / (1.0f + e);
    float one_minus_s = e < INFINITY ? e * s : 1.0f;
    return s + 2.0f * v * s * one_minus_s * GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
}

#if VMATH_X86
/* e = exp(-2 k (x + 0.044715 x^3)) for 8 values */
__attribute__((target("avx2,fma"))) static inline __m256 gelu_e8(__m256 x)
{
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 u = _mm256_mul_ps(x, _mm256_fmadd_ps(x2, _mm256_set1_ps(0.044715f), _mm256_set1_ps(1.0f)));
    return vmath_exp8_avx2(_mm256_mul_ps(u, _mm256_set1_ps(-2.0f * GELU_K)));
}

__attribute__((target("avx2,fma"))) static void gelu_fwd_avx2(float *y, const float *x, long lo, long hi)
{
    long i = lo;
    for (; i + 8 <= hi; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), gelu_e8(v));
        _mm256_storeu_ps(y + i, _mm256_div_ps(v, d));
    }
    gelu_fwd_portable(y, x, i, hi);
}

/* dx += dy (s + 2 x s (e s) k (1 + 3 * 0.044715 x^2)), s = 1 / (1 + e); e = inf gives s = 0 and
 * e s = nan, which the blend replaces by 1 */
__attribute__((target("avx2,fma"))) static void gelu_bwd_avx2(float *dx, const float *dy, const float *x, long lo,
                                                             long hi, int fresh)
{
    long i = lo;
    const __m256 one = _mm256_set1_ps(1.0f), inf = _mm256_set1_ps(INFINITY);
    for (; i + 8 <= hi; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = gelu_e8(v);
        __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
        __m256 oms = _mm256_blendv_ps(one, _mm256_mul_ps(e, s), _mm256_cmp_ps(e, inf, _CMP_LT_OQ));
        __m256 q = _mm256_fmadd_ps(_mm256_mul_ps(v, v), _mm256_set1_ps(3.0f * 0.044715f), one);
        __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(v, s), oms), _mm256_mul_ps(q, _mm256_set1_ps(2.0f * GELU_K)));
        __m256 g = _mm256_add_ps(s, t);
        __m256 acc = fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(dx + i);
        _mm256_storeu_ps(dx + i, _mm256_fmadd_ps(_mm256_loadu_ps(dy + i), g, acc));
    }
    for (; i < hi; i++)
        dx[i] = (fresh ? 0.0f : dx[i]) + dy[i] * gelu_grad_portable(x[i]);
}
#endif

static void gelu_forward_task(void *ctx, long lo, long hi)
{
    const gelu_args *a = ctx;
#if VMATH_X86
    if (a->isa >= KNOB_ISA_AVX2) {
        gelu_fwd_avx2(a->y, a->x, lo, hi);
        return;
    }
#endif
    gelu_fwd_portable(a->y, a->x, lo, hi);
}

static void gelu_backward_task(void *ctx, long lo, long hi)
{
    const gelu_args *a = ctx;
#if VMATH_X86
    if (a->isa >= KNOB_ISA_AVX2) {
        gelu_bwd_avx2(a->dx, a->dy, a->x, lo, hi, a->fresh);
        return;
    }
#endif
    for (long i = lo; i < hi; i++)
        a->dx[i] = (a->fresh ? 0.0f : a->dx[i]) + a->dy[i] * gelu_grad_portable(a->x[i]);
}

/* Arrays under KNOB_PAR_MIN elements keep the libm loop (knob_gelu1, knob_gelu1_grad): they take
 * little time, and their bits are the ones the GPT checkpoints of older versions resume to
 * (tests/cli/test_checkpoint_compat.sh compares tensors byte for byte). From there up, where the
 * time goes, the vector loops. Either way the same bits for any thread count. */
static void gelu_forward_libm(void *ctx, long lo, long hi)
{
    const gelu_args *a = ctx;
    for (long i = lo; i < hi; i++)
        a->y[i] = knob_gelu1(a->x[i]);
}

static void gelu_backward_libm(void *ctx, long lo, long hi)
{
    const gelu_args *a = ctx;
    for (long i = lo; i < hi; i++)
        a->dx[i] = (a->fresh ? 0.0f : a->dx[i]) + a->dy[i] * knob_gelu1_grad(a->x[i]);
}

void knob_gelu_forward(float *y, const float *x, long n)
{
    gelu_args a = {.y = y, .x = x, .isa = knob_kernel_isa()};
    if (n < KNOB_PAR_MIN) {
        gelu_forward_libm(&a, 0, n);
        return;
    }
    knob_par_items(n, 4.0, gelu_forward_task, &a);
}

static void gelu_backward(float *dx, const float *dy, const float *x, long n, int fresh)
{
    gelu_args a = {.dx = dx, .x = x, .dy = dy, .isa = knob_kernel_isa(), .fresh = fresh};
    if (n < KNOB_PAR_MIN) {
        gelu_backward_libm(&a, 0, n);
        return;
    }
    knob_par_items(n, 4.0, gelu_backward_task, &a);
}

void knob_gelu_backward(float *dx, const float *dy, const float *x, long n) { gelu_backward(dx, dy, x, n, 0); }
void knob_gelu_backward_fresh(float *dx, const float *dy, const float *x, long n) { gelu_backward(dx, dy, x, n, 1); }

/* ------------------------------------------------------------------------------------------------
 * Softmax over one row of n values, with m = max x subtracted for range (it cancels) and the sum
 * of exponentials in double:
 *   softmax:      y_j = e^(x_j - m) / sum_k e^(x_k - m)
 *   log-softmax:  y_j = x_j - m - log sum_k e^(x_k - m)
 *   cross-entropy of target t: -log y_t = log sum_k e^(x_k - m) - (x_t - m), exact even when y_t
 *   underflows.
 * Backward: softmax dx_j += y_j (dy_j - sum_k dy_k y_k); log-softmax dx_j += dy_j - e^(y_j) sum_k dy_k. */

static float row_max(const float *x, size_t n)
{
    float m = x[0];
    for (size_t j = 1; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

static double row_sumexp(const float *x, size_t n, float m)
{
    double sum = 0;
    for (size_t j = 0; j < n; j++)
        sum += exp((double)(x[j] - m));
    return sum;
}

double knob_softmax_row(float *y, const float *x, size_t n, int target)
{
    float m = row_max(x, n);
    double sum = row_sumexp(x, n, m);
    for (size_t j = 0; j < n; j++)
        y[j] = (float)(exp((double)(x[j] - m)) / sum);
    return target >= 0 && (size_t)target < n ? log(sum) - (double)(x[target] - m) : 0.0;
}

void knob_log_softmax_row(float *y, const float *x, size_t n)
{
    float m = row_max(x, n);
    float lse = (float)log(row_sumexp(x, n, m));
    for (size_t j = 0; j < n; j++)
        y[j] = x[j] - m - lse;
}

double knob_logsumexp_row(const float *x, size_t n)
{
    float m = row_max(x, n);
    return (double)m + log(row_sumexp(x, n, m));
}

double knob_nll_row(const float *x, size_t n, int target)
{
    float m = row_max(x, n);
    return log(row_sumexp(x, n, m)) - (double)(x[target] - m);
}

void knob_softmax_row_backward(float *dx, const float *y, const float *dy, size_t n)
{
    double s = 0;
    for (size_t j = 0; j < n; j++)
        s += (double)dy[j] * y[j];
    for (size_t j = 0; j < n; j++)
        dx[j] += y[j] * (dy[j] - (float)s);
}

void knob_log_softmax_row_backward(float *dx, const float *y, const float *dy, size_t n)
{
    double s = 0;
    for (size_t j = 0; j < n; j++)
        s += (double)dy[j];
    for (size_t j = 0; j < n; j++)
        dx[j] += dy[j] - expf(y[j]) * (float)s;
}

/* ------------------------------------------------------------------------------------------------
 * One causal attention row, in place, for the flash-style kernels of src/kernels/attention.c:
 * s (n8 floats, n8 a multiple of 8) holds raw scores q . k_j; keys [0, t] are visible.
 *   lse NULL:  s_j = e^(scale s_j - m) / sum_{i <= t} e^(scale s_i - m), m = scale max_{i <= t} s_i;
 *              returns the row's log-sum-exp, m + log sum
 *   lse given: s_j = e^(scale s_j - *lse), the probabilities again from the saved log-sum-exp
 * and s_j = 0 for j > t either way. One pass for the max, one for the exponentials (knob's own, in
 * whole groups of 8 with the masked lanes set to 0) and their sum in 8 float lanes, one to scale. */
static float attn_row_portable(float *s, int t, int n8, float scale, const float *lse)
{
    float m;
    if (lse) {
        m = *lse;
    } else {
        float mx = s[0];
        for (int j = 1; j <= t; j++)
            mx = s[j] > mx ? s[j] : mx;
        m = mx * scale;
    }
    float sum = 0.0f;
    for (int j = 0; j <= t; j++) {
        s[j] = vmath_exp1(s[j] * scale - m);
        sum += s[j];
    }
    for (int j = t + 1; j < n8; j++)
        s[j] = 0.0f;
    if (lse)
        return m;
    float inv = 1.0f / sum;
    for (int j = 0; j <= t; j++)
        s[j] *= inv;
    return m + logf(sum);
}

#if VMATH_X86
__attribute__((target("avx2,fma"))) static float attn_row_avx2(float *s, int t, int n8, float scale, const float *lse)
{
    int ne = (t + 8) / 8 * 8;   /* whole groups covering [0, t]; ne <= n8 */
    float m;
    if (lse) {
        m = *lse;
    } else {
        __m256 vmx = _mm256_set1_ps(s[0]);
        int j = 0;
        for (; j + 8 <= t + 1; j += 8)
            vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(s + j));
        float l[8], mx;
        _mm256_storeu_ps(l, vmx);
        mx = l[0];
        for (int i = 1; i < 8; i++)
            mx = l[i] > mx ? l[i] : mx;
        for (; j <= t; j++)
            mx = s[j] > mx ? s[j] : mx;
        m = mx * scale;
    }
    __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    __m256 idx = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), vt = _mm256_set1_ps((float)t);
    for (int j = 0; j < ne; j += 8) {
        __m256 e = vmath_exp8_avx2(_mm256_fmsub_ps(_mm256_loadu_ps(s + j), vs, vm));
        __m256 keep = _mm256_cmp_ps(_mm256_add_ps(idx, _mm256_set1_ps((float)j)), vt, _CMP_LE_OQ);
        e = _mm256_and_ps(e, keep);
        acc = _mm256_add_ps(acc, e);
        _mm256_storeu_ps(s + j, e);
    }
    for (int j = ne; j < n8; j++)
        s[j] = 0.0f;
    if (lse)
        return m;
    float l[8];
    _mm256_storeu_ps(l, acc);
    float sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (int j = 0; j < ne; j += 8)
        _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
    return m + logf(sum);
}
#endif

float knob_attn_softmax_row(float *s, int t, int n8, float scale, const float *lse, int isa)
{
#if VMATH_X86
    if (isa >= KNOB_ISA_AVX2)
        return attn_row_avx2(s, t, n8, scale, lse);
#endif
    (void)isa;
    return attn_row_portable(s, t, n8, scale, lse);
}

/* ------------------------------------------------------------------------------------------------
 * Softmax cross-entropy over one row of V logits, fused, for training (src/ops/loss.c):
 *   forward:  lse = log sum_j e^(x_j) = m + log sum_j e^(x_j - m),  loss = lse - x_t
 *   backward: dx_j += s (e^(x_j - lse) - [j == t])      (e^(x_j - lse) is softmax(x)_j)
 * Neither keeps the probabilities: backward recomputes them from x and lse, so the op saves one
 * float per row instead of V, and each pass reads the row once. Forward goes through the row in
 * blocks of CE_BLOCK (in L1 after the block's max): a running max m, and a running sum rescaled by
 * e^(m_old - m_new) when a block raises the max (the "online softmax"). The block sums are float
 * lanes, added into a double. Exponentials: vmath.h (no libm in the loop). */

#define CE_BLOCK 512

static float block_max(const float *x, size_t n)
{
    float m = x[0];
    for (size_t j = 1; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

static double block_sumexp_portable(const float *x, size_t n, float m)
{
    float acc[8] = {0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += vmath_exp1(x[j + l] - m);
    double s = 0;
    for (int l = 0; l < 8; l++)
        s += (double)acc[l];
    for (; j < n; j++)
        s += (double)vmath_exp1(x[j] - m);
    return s;
}

#if VMATH_X86
__attribute__((target("avx2,fma"))) static float block_max_avx2(const float *x, size_t n)
{
    if (n < 8)
        return block_max(x, n);
    __m256 m = _mm256_loadu_ps(x);
    size_t j = 8;
    for (; j + 8 <= n; j += 8)
        m = _mm256_max_ps(m, _mm256_loadu_ps(x + j));
    float l[8];
    _mm256_storeu_ps(l, m);
    float r = l[0];
    for (int i = 1; i < 8; i++)
        r = l[i] > r ? l[i] : r;
    for (; j < n; j++)
        r = x[j] > r ? x[j] : r;
    return r;
}

__attribute__((target("avx2,fma"))) static double block_sumexp_avx2(const float *x, size_t n, float m)
{
    __m256 acc = _mm256_setzero_ps(), vm = _mm256_set1_ps(m);
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        acc = _mm256_add_ps(acc, vmath_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm)));
    float l[8];
    _mm256_storeu_ps(l, acc);
    double s = 0;
    for (int i = 0; i < 8; i++)
        s += (double)l[i];
    for (; j < n; j++)
        s += (double)vmath_exp1(x[j] - m);
    return s;
}

__attribute__((target("avx2,fma"))) static void ce_grad_avx2(float *dx, const float *x, size_t V, float lse, float s)
{
    __m256 vl = _mm256_set1_ps(lse), vs = _mm256_set1_ps(s);
    size_t j = 0;
    for (; j + 8 <= V; j += 8) {
        __m256 p = vmath_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + j), vl));
        _mm256_storeu_ps(dx + j, _mm256_fmadd_ps(vs, p, _mm256_loadu_ps(dx + j)));
    }
    for (; j < V; j++)
        dx[j] += s * vmath_exp1(x[j] - lse);
}
#endif

double knob_ce_row_lse(const float *x, size_t V, int isa)
{
    double sum = 0;
    float m = -INFINITY;
    for (size_t j0 = 0; j0 < V; j0 += CE_BLOCK) {
        size_t n = KNOB_MIN((size_t)CE_BLOCK, V - j0);
        const float *xb = x + j0;
#if VMATH_X86
        int avx2 = isa >= KNOB_ISA_AVX2;
        float bm = avx2 ? block_max_avx2(xb, n) : block_max(xb, n);
#else
        (void)isa;
        float bm = block_max(xb, n);
#endif
        if (bm > m) {
            if (sum > 0)
                sum *= exp((double)m - (double)bm);   /* once per block that raises the max */
            m = bm;
        } else if (bm != bm) {
            m = bm;     /* NaN: let it through to the loss */
        }
#if VMATH_X86
        sum += avx2 ? block_sumexp_avx2(xb, n, m) : block_sumexp_portable(xb, n, m);
#else
        sum += block_sumexp_portable(xb, n, m);
#endif
    }
    return (double)m + log(sum);
}

void knob_ce_row_backward(float *dx, const float *x, size_t V, float lse, int target, float s, int isa)
{
#if VMATH_X86
    if (isa >= KNOB_ISA_AVX2) {
        ce_grad_avx2(dx, x, V, lse, s);
        dx[target] -= s;
        return;
    }
#else
    (void)isa;
#endif
    for (size_t j = 0; j < V; j++)
        dx[j] += s * vmath_exp1(x[j] - lse);
    dx[target] -= s;
}
