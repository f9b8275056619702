/* matvec.c: weights for inference in f32, bf16 or int8, and the products a decode step is made of:
 * y (n, N) = x (n, K) @ W^T + b for a few rows x (one per sequence being decoded), W (N, K).
 *
 * A decode step reads every weight once and does two flops with it, so its speed is the memory's:
 * GPT-2 124M is 124M weights a token, 497 MB in f32. The kernels here read W once per call, in
 * place, whatever n is: chunks of rows are taken by whichever thread is free (so a thread the OS
 * parks does not hold the others), and a chunk's rows are used for every x while they sit in the
 * cache. Each y[r][j] is one thread's sum over k in a fixed order, so the bits do not depend on
 * the thread count.
 *
 * Storage (knob_wmat):
 *   f32   the caller's floats, borrowed.
 *   bf16  the top 16 bits of each float, rounded to nearest even (NaN stays NaN): half the bytes,
 *         8 bits of mantissa. Computed in f32: a bf16 shifted left by 16 is the float.
 *   q8    rows cut in blocks of 32 weights, each stored as 32 int8 q and one f32 scale d with
 *         w ~ d q, d = max|w| / 127, q = round(w / d) (llama.cpp's Q8_0 idea; its scale is f16).
 *         1.125 bytes a weight. Rows are zero-padded to a whole number of blocks.
 * For q8 there are two ways to take the dot product with an f32 x: convert each q to float and
 * multiply-add (x kept in f32), or quantise x too, per block of 32, and sum q_w q_x in integers
 * (AVX2: maddubs + madd), one multiply by d_w d_x per block. The second does a quarter of the
 * instructions and adds x's rounding error; knob_matvec_set_q8_act picks (bench/decode.c measures
 * both; docs/GENERATION.md has the numbers).
 *
 * Kernels: AVX2 + FMA (function-level target attributes, chosen at run time, so the build needs
 * no -mavx2) and portable C. Tiles of one row x 1 or 2 vectors keep 4 or 8 accumulators of 8
 * floats in registers (f32, bf16; q8: 2 or 4), reading W as one stream.
 *
 * knob_wmat_gemm is the other way of using these weights, for many rows at once (a prompt): it
 * converts panels of W to f32 and calls knob_gemm, which then does the flops at its own speed.
 *
 * Not here: the model (src/models/lm.c), knob_gemm (gemm.c). */
#include "knob_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MV_X86 1
#include <immintrin.h>
#else
#define MV_X86 0
#endif

enum {
    QB = KNOB_Q8_BLOCK,
    CHUNK_BYTES = 32 * 1024,   /* the least bytes of W a thread takes at a time */
    CHUNKS_PER_THREAD = 4,     /* knob_matvec: W cut in about this many chunks per thread */
    PANEL_FLOATS = 1 << 18,    /* knob_wmat_gemm: f32 panel of W, 1 MiB */
};

/* ------------------------------------------------------------------------------------------------
 * Conversions */

/* q (KB * 32), d (KB) from x (K); the last block zero-padded. A block of zeros gets d = 0. */
void knob_q8_quantize(int8_t *q, float *d, const float *x, int K)
{
    int KB = (K + QB - 1) / QB;
    for (int b = 0; b < KB; b++) {
        int k0 = b * QB, k1 = KNOB_MIN(K, k0 + QB);
        float amax = 0.0f;
        for (int k = k0; k < k1; k++) {
            float a = fabsf(x[k]);
            amax = a > amax ? a : amax;   /* NaN: left out */
        }
        float s = amax / 127.0f, inv = s > 0.0f ? 1.0f / s : 0.0f;
        int divide = !(inv <= FLT_MAX);   /* s subnormal: 1 / s overflows */
        d[b] = s;
        for (int k = k0; k < k0 + QB; k++) {
            float v = k >= k1 || s == 0.0f ? 0.0f : divide ? x[k] / s : x[k] * inv;
            if (!(fabsf(v) <= 127.5f))   /* rounding of the largest, or a NaN or infinity */
                v = v > 0.0f ? 127.0f : v < 0.0f ? -127.0f : 0.0f;
            long r = lrintf(v);
            q[k] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
        }
    }
}

/* knob_wmat_init's conversions, rows [lo, hi) on knob's pool (each row alone: any thread count) */
typedef struct {
    knob_wmat *W;
    const float *f;
} wconv_task;

static void bf16_rows(void *ctx, long lo, long hi)
{
    const wconv_task *t = ctx;
    size_t K = (size_t)t->W->K;
    for (size_t i = (size_t)lo * K; i < (size_t)hi * K; i++)
        t->W->h[i] = knob_bf16_from_f32(t->f[i]);
}

static void q8_rows(void *ctx, long lo, long hi)
{
    const wconv_task *t = ctx;
    const knob_wmat *W = t->W;
    size_t KP = (size_t)W->KB * QB;
    for (long r = lo; r < hi; r++)
        knob_q8_quantize(W->q + (size_t)r * KP, W->d + (size_t)r * W->KB, t->f + (size_t)r * W->K, W->K);
}

void knob_wmat_free(knob_wmat *W)
{
    if (!W)
        return;
    knob_free(W->h);
    knob_free(W->q);
    knob_free(W->d);
    memset(W, 0, sizeof *W);
}

knob_status knob_wmat_init(knob_wmat *W, const float *f, int N, int K, knob_wtype type, knob_err *err)
{
    memset(W, 0, sizeof *W);
    W->type = type;
    W->N = N;
    W->K = K;
    W->KB = (K + QB - 1) / QB;
    size_t NK = (size_t)N * (size_t)K;
    if (type == KNOB_W_F32) {
        W->f = f;
        return KNOB_OK;
    }
    if (type == KNOB_W_BF16) {
        if (!(W->h = knob_malloc(NK * sizeof *W->h)))
            return knob_fail(err, KNOB_ERR_NOMEM, "weights: cannot allocate %zu bf16 values", NK);
        knob_par_items(N, (double)K, bf16_rows, &(wconv_task){W, f});
        return KNOB_OK;
    }
    size_t KP = (size_t)W->KB * QB;
    W->q = knob_malloc((size_t)N * KP);
    W->d = knob_malloc((size_t)N * (size_t)W->KB * sizeof *W->d);
    if (!W->q || !W->d) {
        knob_wmat_free(W);
        return knob_fail(err, KNOB_ERR_NOMEM, "weights: cannot allocate %zu int8 values", (size_t)N * KP);
    }
    knob_par_items(N, 4.0 * K, q8_rows, &(wconv_task){W, f});
    return KNOB_OK;
}

size_t knob_wmat_bytes(const knob_wmat *W)
{
    size_t N = (size_t)W->N;
    switch (W->type) {
    case KNOB_W_F32: return N * (size_t)W->K * sizeof(float);
    case KNOB_W_BF16: return N * (size_t)W->K * sizeof(uint16_t);
    case KNOB_W_Q8: break;
    }
    return N * (size_t)W->KB * (QB + sizeof(float));
}

void knob_wmat_rows(const knob_wmat *W, int r0, int n, float *out)
{
    int K = W->K;
    for (int r = r0; r < r0 + n; r++, out += K) {
        switch (W->type) {
        case KNOB_W_F32:
            memcpy(out, W->f + (size_t)r * K, (size_t)K * sizeof(float));
            break;
        case KNOB_W_BF16:
            for (int k = 0; k < K; k++)
                out[k] = knob_bf16_to_f32(W->h[(size_t)r * K + k]);
            break;
        case KNOB_W_Q8: {
            const int8_t *q = W->q + (size_t)r * W->KB * QB;
            const float *d = W->d + (size_t)r * W->KB;
            for (int k = 0; k < K; k++)
                out[k] = d[k / QB] * (float)q[k];
            break;
        }
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Portable kernels: rows [r0, r1) of y for every x. Eight partial sums per dot product (a shape
 * compilers vectorise), added in a fixed order. */

static float dot8_tail(const float p[8], float tail)
{
    return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7])) + tail;
}

static void rows_f32_portable(float *y, const float *x, const knob_wmat *W, const float *b, int n, int r0, int r1)
{
    int K = W->K, N = W->N, K8 = K & ~7;
    for (int r = r0; r < r1; r++) {
        const float *w = W->f + (size_t)r * K;
        for (int v = 0; v < n; v++) {
            const float *xv = x + (size_t)v * K;
            float p[8] = {0};
            for (int k = 0; k < K8; k += 8)
                for (int i = 0; i < 8; i++)
                    p[i] += w[k + i] * xv[k + i];
            float t = 0.0f;
            for (int k = K8; k < K; k++)
                t += w[k] * xv[k];
            y[(size_t)v * N + r] = dot8_tail(p, t) + (b ? b[r] : 0.0f);
        }
    }
}

static void rows_bf16_portable(float *y, const float *x, const knob_wmat *W, const float *b, int n, int r0, int r1)
{
    int K = W->K, N = W->N, K8 = K & ~7;
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = W->h + (size_t)r * K;
        for (int v = 0; v < n; v++) {
            const float *xv = x + (size_t)v * K;
            float p[8] = {0};
            for (int k = 0; k < K8; k += 8)
                for (int i = 0; i < 8; i++)
                    p[i] += knob_bf16_to_f32(w[k + i]) * xv[k + i];
            float t = 0.0f;
            for (int k = K8; k < K; k++)
                t += knob_bf16_to_f32(w[k]) * xv[k];
            y[(size_t)v * N + r] = dot8_tail(p, t) + (b ? b[r] : 0.0f);
        }
    }
}

/* q8 weights, x in f32 (xf) or quantised (xq (n, KB * 32), xd (n, KB)) */
static void rows_q8_portable(float *y, const float *xf, const int8_t *xq, const float *xd, const knob_wmat *W,
                             const float *b, int n, int r0, int r1)
{
    int K = W->K, N = W->N, KB = W->KB;
    size_t KP = (size_t)KB * QB;
    for (int r = r0; r < r1; r++) {
        const int8_t *q = W->q + (size_t)r * KP;
        const float *d = W->d + (size_t)r * KB;
        for (int v = 0; v < n; v++) {
            float acc = 0.0f;
            if (xq) {
                const int8_t *u = xq + (size_t)v * KP;
                const float *e = xd + (size_t)v * KB;
                for (int bl = 0; bl < KB; bl++) {
                    int32_t s = 0;
                    for (int i = 0; i < QB; i++)
                        s += (int32_t)q[bl * QB + i] * (int32_t)u[bl * QB + i];
                    acc += (d[bl] * e[bl]) * (float)s;
                }
            } else {
                const float *xv = xf + (size_t)v * K;
                for (int bl = 0; bl < KB; bl++) {
                    int k0 = bl * QB, k1 = KNOB_MIN(K, k0 + QB);
                    float s = 0.0f;
                    for (int k = k0; k < k1; k++)
                        s += (float)q[k] * xv[k];
                    acc += d[bl] * s;
                }
            }
            y[(size_t)v * N + r] = acc + (b ? b[r] : 0.0f);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * AVX2 + FMA kernels */

#if MV_X86
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline __m256 load_bf16(const uint16_t *p)
{
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

AVX2 static inline __m256 load_q8(const int8_t *p)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* one row of bf16 or q8 weights to f32 (K), for the GEMM's panels */
AVX2 static void row_to_f32_avx2(const knob_wmat *W, int r, float *out)
{
    int K = W->K, k = 0;
    if (W->type == KNOB_W_BF16) {
        const uint16_t *h = W->h + (size_t)r * K;
        for (; k + 8 <= K; k += 8)
            _mm256_storeu_ps(out + k, load_bf16(h + k));
        for (; k < K; k++)
            out[k] = knob_bf16_to_f32(h[k]);
    } else {
        const int8_t *q = W->q + (size_t)r * W->KB * QB;
        const float *d = W->d + (size_t)r * W->KB;
        for (; k + QB <= K; k += QB) {
            __m256 dv = _mm256_set1_ps(d[k / QB]);
            for (int j = 0; j < QB; j += 8)
                _mm256_storeu_ps(out + k + j, _mm256_mul_ps(load_q8(q + k + j), dv));
        }
        for (; k < K; k++)
            out[k] = d[k / QB] * (float)q[k];
    }
}

/* Tiles: one row of W against 1 or 2 vectors, written out by hand (compilers keep an array of
 * accumulators in memory unless its loops are unrolled). One row at a time reads W as one stream
 * (rows are contiguous), which the prefetchers follow best: interleaving 4 rows ran at 11 GB/s
 * from memory where one stream ran at 17. Every tile sums a row in the same order (f32 and bf16:
 * four accumulators over k in 32s, the last 8s into the first, then (a0 + a1) + (a2 + a3) and the
 * scalar rest; q8: even and odd blocks in two), so a row's bits do not depend on n. */
#define DEFINE_TILES(T, WT, LOAD, CVT)                                                             \
    AVX2 static void T##_1x1(float *y, const float *x, const WT *w, int K, const float *b)         \
    {                                                                                             \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                               \
        int k = 0;                                                                                \
        for (; k + 32 <= K; k += 32) {                                                            \
            a0 = _mm256_fmadd_ps(LOAD(w + k), _mm256_loadu_ps(x + k), a0);                        \
            a1 = _mm256_fmadd_ps(LOAD(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);                \
            a2 = _mm256_fmadd_ps(LOAD(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);              \
            a3 = _mm256_fmadd_ps(LOAD(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);              \
        }                                                                                         \
        for (; k + 8 <= K; k += 8)                                                                \
            a0 = _mm256_fmadd_ps(LOAD(w + k), _mm256_loadu_ps(x + k), a0);                        \
        float t = 0.0f;                                                                           \
        for (; k < K; k++)                                                                        \
            t += CVT(w[k]) * x[k];                                                                \
        y[0] = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + t +           \
               (b ? b[0] : 0.0f);                                                                 \
    }                                                                                             \
    AVX2 static void T##_1x2(float *y, const float *x, const WT *w, int K, int N, const float *b)  \
    {                                                                                             \
        const float *x1 = x + K;                                                                  \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0,    \
               c3 = a0, wv;                                                                       \
        int k = 0;                                                                                \
        for (; k + 32 <= K; k += 32) {                                                            \
            wv = LOAD(w + k);                                                                     \
            a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k), a0);                                 \
            c0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + k), c0);                                \
            wv = LOAD(w + k + 8);                                                                 \
            a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k + 8), a1);                             \
            c1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + k + 8), c1);                            \
            wv = LOAD(w + k + 16);                                                                \
            a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k + 16), a2);                            \
            c2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + k + 16), c2);                           \
            wv = LOAD(w + k + 24);                                                                \
            a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k + 24), a3);                            \
            c3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + k + 24), c3);                           \
        }                                                                                         \
        for (; k + 8 <= K; k += 8) {                                                              \
            wv = LOAD(w + k);                                                                     \
            a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k), a0);                                 \
            c0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + k), c0);                                \
        }                                                                                         \
        float t = 0.0f, u = 0.0f;                                                                 \
        for (; k < K; k++) {                                                                      \
            t += CVT(w[k]) * x[k];                                                                \
            u += CVT(w[k]) * x1[k];                                                               \
        }                                                                                         \
        y[0] = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + t +           \
               (b ? b[0] : 0.0f);                                                                 \
        y[N] = hsum8(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3))) + u +           \
               (b ? b[0] : 0.0f);                                                                 \
    }

#define F32_ID(v) (v)
DEFINE_TILES(tile_f32, float, _mm256_loadu_ps, F32_ID)
DEFINE_TILES(tile_bf16, uint16_t, load_bf16, knob_bf16_to_f32)

/* q8 weights, f32 x: a block's 32 products summed, then scaled by the block's d */
AVX2 static inline __m256 q8f_block(const int8_t *q, const float *x, __m256 d, __m256 acc)
{
    __m256 s = _mm256_mul_ps(load_q8(q), _mm256_loadu_ps(x));
    s = _mm256_fmadd_ps(load_q8(q + 8), _mm256_loadu_ps(x + 8), s);
    s = _mm256_fmadd_ps(load_q8(q + 16), _mm256_loadu_ps(x + 16), s);
    s = _mm256_fmadd_ps(load_q8(q + 24), _mm256_loadu_ps(x + 24), s);
    return _mm256_fmadd_ps(s, d, acc);
}

AVX2 static void tile_q8f_1x1(float *y, const float *x, const knob_wmat *W, int r, const float *b)
{
    int K = W->K, KB = W->KB, KF = K / QB;   /* KF full blocks */
    const int8_t *q = W->q + (size_t)r * KB * QB;
    const float *d = W->d + (size_t)r * KB;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int bl = 0;
    for (; bl + 2 <= KF; bl += 2) {
        a0 = q8f_block(q + (size_t)bl * QB, x + (size_t)bl * QB, _mm256_set1_ps(d[bl]), a0);
        a1 = q8f_block(q + (size_t)(bl + 1) * QB, x + (size_t)(bl + 1) * QB, _mm256_set1_ps(d[bl + 1]), a1);
    }
    if (bl < KF)
        a0 = q8f_block(q + (size_t)bl * QB, x + (size_t)bl * QB, _mm256_set1_ps(d[bl]), a0);
    float t = 0.0f;
    if (KF < KB) {   /* the partial last block */
        float s = 0.0f;
        for (int k = KF * QB; k < K; k++)
            s += (float)q[k] * x[k];
        t = d[KF] * s;
    }
    y[0] = hsum8(_mm256_add_ps(a0, a1)) + t + (b ? b[0] : 0.0f);
}

/* q8 weights, q8 x: |w| (unsigned) times x with w's sign, summed in pairs to int16 (maddubs:
 * 127 * 127 * 2 fits), then in pairs to int32 (madd with ones), one float multiply-add by
 * d_w d_x per block. */
AVX2 static inline __m256 q8q_dot(__m256i aw, __m256i w, __m256i x)
{
    __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

#define LOADI(p) _mm256_loadu_si256((const __m256i *)(p))

AVX2 static void tile_q8q_1x1(float *y, const int8_t *xq, const float *xd, const knob_wmat *W, int r,
                              const float *b)
{
    int KB = W->KB;
    const int8_t *q = W->q + (size_t)r * KB * QB;
    const float *d = W->d + (size_t)r * KB;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int bl = 0;
    for (; bl + 2 <= KB; bl += 2) {
        __m256i w0 = LOADI(q + (size_t)bl * QB), w1 = LOADI(q + (size_t)(bl + 1) * QB);
        a0 = _mm256_fmadd_ps(q8q_dot(_mm256_sign_epi8(w0, w0), w0, LOADI(xq + (size_t)bl * QB)),
                             _mm256_set1_ps(d[bl] * xd[bl]), a0);
        a1 = _mm256_fmadd_ps(q8q_dot(_mm256_sign_epi8(w1, w1), w1, LOADI(xq + (size_t)(bl + 1) * QB)),
                             _mm256_set1_ps(d[bl + 1] * xd[bl + 1]), a1);
    }
    if (bl < KB) {
        __m256i w0 = LOADI(q + (size_t)bl * QB);
        a0 = _mm256_fmadd_ps(q8q_dot(_mm256_sign_epi8(w0, w0), w0, LOADI(xq + (size_t)bl * QB)),
                             _mm256_set1_ps(d[bl] * xd[bl]), a0);
    }
    y[0] = hsum8(_mm256_add_ps(a0, a1)) + (b ? b[0] : 0.0f);
}

AVX2 static void tile_q8q_1x2(float *y, const int8_t *xq, const float *xd, const knob_wmat *W, int r,
                              const float *b)
{
    int N = W->N, KB = W->KB;
    size_t KP = (size_t)KB * QB;
    const int8_t *q = W->q + (size_t)r * KP, *xq1 = xq + KP;
    const float *d = W->d + (size_t)r * KB, *xd1 = xd + KB;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
    int bl = 0;
    for (; bl + 2 <= KB; bl += 2) {
        size_t k = (size_t)bl * QB;
        __m256i w0 = LOADI(q + k), w1 = LOADI(q + k + QB);
        __m256i u0 = _mm256_sign_epi8(w0, w0), u1 = _mm256_sign_epi8(w1, w1);
        a0 = _mm256_fmadd_ps(q8q_dot(u0, w0, LOADI(xq + k)), _mm256_set1_ps(d[bl] * xd[bl]), a0);
        c0 = _mm256_fmadd_ps(q8q_dot(u0, w0, LOADI(xq1 + k)), _mm256_set1_ps(d[bl] * xd1[bl]), c0);
        a1 = _mm256_fmadd_ps(q8q_dot(u1, w1, LOADI(xq + k + QB)), _mm256_set1_ps(d[bl + 1] * xd[bl + 1]), a1);
        c1 = _mm256_fmadd_ps(q8q_dot(u1, w1, LOADI(xq1 + k + QB)), _mm256_set1_ps(d[bl + 1] * xd1[bl + 1]), c1);
    }
    if (bl < KB) {
        size_t k = (size_t)bl * QB;
        __m256i w0 = LOADI(q + k), u0 = _mm256_sign_epi8(w0, w0);
        a0 = _mm256_fmadd_ps(q8q_dot(u0, w0, LOADI(xq + k)), _mm256_set1_ps(d[bl] * xd[bl]), a0);
        c0 = _mm256_fmadd_ps(q8q_dot(u0, w0, LOADI(xq1 + k)), _mm256_set1_ps(d[bl] * xd1[bl]), c0);
    }
    y[0] = hsum8(_mm256_add_ps(a0, a1)) + (b ? b[0] : 0.0f);
    y[N] = hsum8(_mm256_add_ps(c0, c1)) + (b ? b[0] : 0.0f);
}

/* rows [r0, r1), one at a time, for all n vectors: pairs of vectors (for q8 with f32 x, single
 * ones), the row serving each pair from L1. */
AVX2 static void rows_avx2(float *y, const float *x, const int8_t *xq, const float *xd, const knob_wmat *W,
                           const float *b, int n, int r0, int r1)
{
    int N = W->N, K = W->K, KB = W->KB;
    size_t KP = (size_t)KB * QB;
    for (int r = r0; r < r1; r++) {
        const float *br = b ? b + r : NULL;
        int v = 0;
        switch (W->type) {
        case KNOB_W_F32:
            for (; v + 2 <= n; v += 2)
                tile_f32_1x2(y + (size_t)v * N + r, x + (size_t)v * K, W->f + (size_t)r * K, K, N, br);
            if (v < n)
                tile_f32_1x1(y + (size_t)v * N + r, x + (size_t)v * K, W->f + (size_t)r * K, K, br);
            break;
        case KNOB_W_BF16:
            for (; v + 2 <= n; v += 2)
                tile_bf16_1x2(y + (size_t)v * N + r, x + (size_t)v * K, W->h + (size_t)r * K, K, N, br);
            if (v < n)
                tile_bf16_1x1(y + (size_t)v * N + r, x + (size_t)v * K, W->h + (size_t)r * K, K, br);
            break;
        case KNOB_W_Q8:
            if (xq) {
                for (; v + 2 <= n; v += 2)
                    tile_q8q_1x2(y + (size_t)v * N + r, xq + (size_t)v * KP, xd + (size_t)v * KB, W, r, br);
                if (v < n)
                    tile_q8q_1x1(y + (size_t)v * N + r, xq + (size_t)v * KP, xd + (size_t)v * KB, W, r, br);
            } else {
                for (; v < n; v++)
                    tile_q8f_1x1(y + (size_t)v * N + r, x + (size_t)v * K, W, r, br);
            }
            break;
        }
    }
}
#endif

/* ------------------------------------------------------------------------------------------------
 * AVX-512 kernels (F, BW, VL; q8 x q8 with VNNI, bf16 with BF16 where the CPU has them) */

#if MV_X86
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define INLINE inline __attribute__((always_inline))

AVX512 static INLINE __m512 ld16_f32(const float *p) { return _mm512_loadu_ps(p); }
AVX512 static INLINE __m512 ld16_f32_m(const float *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
AVX512 static INLINE __m512 ld16_bf16(const uint16_t *p)
{
    __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
AVX512 static INLINE __m512 ld16_bf16_m(const uint16_t *p, __mmask16 m)
{
    __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}

/* One row of W against nv = 1 or 2 vectors (a constant where it is inlined, so the second
 * vector's code folds away): four accumulators over k in 64s, the remaining 16s into the first,
 * the last K % 16 by masked loads into the second (no scalar loop: masked lanes read nothing),
 * then (a0 + a1) + (a2 + a3) and the reduction of 16 lanes. The same order whatever nv, n or the
 * thread, so a row's bits depend on none of them. */
#define DEFINE_ROW512(T, WT, LD, LDM)                                                             \
    AVX512 static INLINE void T(float *y, const float *x, const WT *w, int K, int N, int nv,     \
                                const float *b)                                                  \
    {                                                                                            \
        const float *x1 = x + K;                                                                 \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0,   \
               c3 = a0, wv;                                                                      \
        int k = 0;                                                                               \
        for (; k + 64 <= K; k += 64) {                                                           \
            wv = LD(w + k);                                                                      \
            a0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + k), a0);                                \
            if (nv == 2)                                                                         \
                c0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + k), c0);                           \
            wv = LD(w + k + 16);                                                                 \
            a1 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + k + 16), a1);                           \
            if (nv == 2)                                                                         \
                c1 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + k + 16), c1);                      \
            wv = LD(w + k + 32);                                                                 \
            a2 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + k + 32), a2);                           \
            if (nv == 2)                                                                         \
                c2 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + k + 32), c2);                      \
            wv = LD(w + k + 48);                                                                 \
            a3 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + k + 48), a3);                           \
            if (nv == 2)                                                                         \
                c3 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + k + 48), c3);                      \
        }                                                                                        \
        for (; k + 16 <= K; k += 16) {                                                           \
            wv = LD(w + k);                                                                      \
            a0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + k), a0);                                \
            if (nv == 2)                                                                         \
                c0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + k), c0);                           \
        }                                                                                        \
        if (k < K) {                                                                             \
            __mmask16 m = (__mmask16)((1u << (K - k)) - 1);                                      \
            wv = LDM(w + k, m);                                                                  \
            a1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + k), a1);                       \
            if (nv == 2)                                                                         \
                c1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x1 + k), c1);                  \
        }                                                                                        \
        float bias = b ? b[0] : 0.0f;                                                            \
        y[0] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) + bias; \
        if (nv == 2)                                                                             \
            y[N] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3))) + bias; \
    }

DEFINE_ROW512(row512_f32, float, ld16_f32, ld16_f32_m)
DEFINE_ROW512(row512_bf16, uint16_t, ld16_bf16, ld16_bf16_m)

/* q8 weights, f32 x: a block's 32 products in 16 lanes (two FMAs), scaled by the block's d into
 * one of two accumulators (even and odd blocks); the partial last block by masked loads of x. */
AVX512 static INLINE __m512 ld16_q8(const int8_t *p)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

AVX512 static INLINE __m512 q8f_block512(const int8_t *q, const float *x, float d, __m512 acc)
{
    __m512 s = _mm512_mul_ps(ld16_q8(q), _mm512_loadu_ps(x));
    s = _mm512_fmadd_ps(ld16_q8(q + 16), _mm512_loadu_ps(x + 16), s);
    return _mm512_fmadd_ps(s, _mm512_set1_ps(d), acc);
}

AVX512 static void row512_q8f(float *y, const float *x, const knob_wmat *W, int r, const float *b)
{
    int K = W->K, KB = W->KB, KF = K / QB;
    const int8_t *q = W->q + (size_t)r * KB * QB;
    const float *d = W->d + (size_t)r * KB;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int bl = 0;
    for (; bl + 2 <= KF; bl += 2) {
        a0 = q8f_block512(q + (size_t)bl * QB, x + (size_t)bl * QB, d[bl], a0);
        a1 = q8f_block512(q + (size_t)(bl + 1) * QB, x + (size_t)(bl + 1) * QB, d[bl + 1], a1);
    }
    if (bl < KF)
        a0 = q8f_block512(q + (size_t)bl * QB, x + (size_t)bl * QB, d[bl], a0), bl++;
    if (bl < KB) {   /* the partial last block: x has K - 32 bl values left */
        int left = K - bl * QB;
        __mmask16 m0 = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1);
        __mmask16 m1 = (__mmask16)(left > 16 ? (1u << (left - 16)) - 1 : 0);
        const int8_t *qb = q + (size_t)bl * QB;
        const float *xb = x + (size_t)bl * QB;
        __m512 s = _mm512_mul_ps(ld16_q8(qb), _mm512_maskz_loadu_ps(m0, xb));
        s = _mm512_fmadd_ps(ld16_q8(qb + 16), _mm512_maskz_loadu_ps(m1, xb + 16), s);
        a1 = _mm512_fmadd_ps(s, _mm512_set1_ps(d[bl]), a1);
    }
    y[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + (b ? b[0] : 0.0f);
}

/* q8 weights, q8 x with VNNI. vpdpbusd multiplies unsigned bytes by signed ones, so x is stored
 * offset by 128 (xu = xq + 128, in [1, 255], once per call) and 128 sum(w) taken off again:
 * sum (xq + 128) w - 128 sum w = sum xq w, exactly (each group of four is below 2^17). The
 * correction depends on the weights alone, so two vectors share it. A 64-byte load is two blocks:
 * lanes 0-7 hold the first block's eight partial sums, lanes 8-15 the second's; their scales
 * d_w d_x, computed 16 blocks at a time, are spread to match by one permute. Even pairs of blocks
 * go to one accumulator, odd pairs to another. */
AVX512_VNNI static INLINE void row512_q8q(float *y, const uint8_t *xu, const float *xd, const knob_wmat *W, int r,
                                          int nv, const float *b)
{
    int N = W->N, KB = W->KB;
    size_t KP = (size_t)KB * QB;
    const int8_t *q = W->q + (size_t)r * KP;
    const float *d = W->d + (size_t)r * KB, *xd1 = xd + KB;
    const uint8_t *xu1 = xu + KP;
    const __m512i k128 = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    const __m512i idx0 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), two = _mm512_set1_epi32(2);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
    for (int b0 = 0; b0 < KB; b0 += 16) {
        int nb = KNOB_MIN(16, KB - b0);
        __mmask16 m = (__mmask16)(nb == 16 ? 0xffffu : (1u << nb) - 1);
        __m512 dw = _mm512_maskz_loadu_ps(m, d + b0);
        __m512 s0 = _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(m, xd + b0)), s1 = s0;
        if (nv == 2)
            s1 = _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(m, xd1 + b0));
        __m512i idx = idx0;
        for (int j = 0; j < nb; j += 2, idx = _mm512_add_epi32(idx, two)) {
            size_t k = (size_t)(b0 + j) * QB;
            /* one block left: the upper 32 bytes read as zeros (and their scale is 0) */
            __mmask64 mk = j + 1 < nb ? ~(__mmask64)0 : (__mmask64)0xffffffffu;
            __m512i wq = _mm512_maskz_loadu_epi8(mk, q + k);
            __m512i cw = _mm512_dpbusd_epi32(zero, k128, wq);
            __m512 p = _mm512_cvtepi32_ps(_mm512_sub_epi32(
                _mm512_dpbusd_epi32(zero, _mm512_maskz_loadu_epi8(mk, xu + k), wq), cw));
            __m512 sp = _mm512_permutexvar_ps(idx, s0);
            if (j & 2)
                a1 = _mm512_fmadd_ps(p, sp, a1);
            else
                a0 = _mm512_fmadd_ps(p, sp, a0);
            if (nv == 2) {
                p = _mm512_cvtepi32_ps(_mm512_sub_epi32(
                    _mm512_dpbusd_epi32(zero, _mm512_maskz_loadu_epi8(mk, xu1 + k), wq), cw));
                sp = _mm512_permutexvar_ps(idx, s1);
                if (j & 2)
                    c1 = _mm512_fmadd_ps(p, sp, c1);
                else
                    c0 = _mm512_fmadd_ps(p, sp, c0);
            }
        }
    }
    float bias = b ? b[0] : 0.0f;
    y[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + bias;
    if (nv == 2)
        y[N] = _mm512_reduce_add_ps(_mm512_add_ps(c0, c1)) + bias;
}

/* x quantised (xq, n (KB * 32)) offset by 128 in place, for vpdpbusd */
AVX512 static void q8_offset(int8_t *xq, size_t n)
{
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        _mm512_storeu_si512(xq + i, _mm512_xor_si512(_mm512_loadu_si512(xq + i), _mm512_set1_epi8((char)0x80)));
    for (; i < n; i++)
        xq[i] = (int8_t)((uint8_t)xq[i] ^ 0x80u);
}

AVX512 static void rows512_f32(float *y, const float *x, const knob_wmat *W, const float *b, int n, int r0, int r1)
{
    int N = W->N, K = W->K;
    for (int r = r0; r < r1; r++) {
        const float *w = W->f + (size_t)r * K, *br = b ? b + r : NULL;
        int v = 0;
        for (; v + 2 <= n; v += 2)
            row512_f32(y + (size_t)v * N + r, x + (size_t)v * K, w, K, N, 2, br);
        if (v < n)
            row512_f32(y + (size_t)v * N + r, x + (size_t)v * K, w, K, N, 1, br);
    }
}

AVX512 static void rows512_bf16(float *y, const float *x, const knob_wmat *W, const float *b, int n, int r0, int r1)
{
    int N = W->N, K = W->K;
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = W->h + (size_t)r * K;
        const float *br = b ? b + r : NULL;
        int v = 0;
        for (; v + 2 <= n; v += 2)
            row512_bf16(y + (size_t)v * N + r, x + (size_t)v * K, w, K, N, 2, br);
        if (v < n)
            row512_bf16(y + (size_t)v * N + r, x + (size_t)v * K, w, K, N, 1, br);
    }
}

AVX512_VNNI static void rows512_q8q(float *y, const uint8_t *xu, const float *xd, const knob_wmat *W, const float *b,
                                    int n, int r0, int r1)
{
    int N = W->N, KB = W->KB;
    size_t KP = (size_t)KB * QB;
    for (int r = r0; r < r1; r++) {
        const float *br = b ? b + r : NULL;
        int v = 0;
        for (; v + 2 <= n; v += 2)
            row512_q8q(y + (size_t)v * N + r, xu + (size_t)v * KP, xd + (size_t)v * KB, W, r, 2, br);
        if (v < n)
            row512_q8q(y + (size_t)v * N + r, xu + (size_t)v * KP, xd + (size_t)v * KB, W, r, 1, br);
    }
}

AVX512 static void rows512_q8f(float *y, const float *x, const knob_wmat *W, const float *b, int n, int r0, int r1)
{
    int N = W->N, K = W->K;
    for (int r = r0; r < r1; r++)
        for (int v = 0; v < n; v++)
            row512_q8f(y + (size_t)v * N + r, x + (size_t)v * K, W, r, b ? b + r : NULL);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * Dispatch */

static int force_portable, q8_act = 1;

void knob_matvec_force_portable(int on) { force_portable = on; }
void knob_matvec_set_q8_act(int on) { q8_act = on; }
int  knob_matvec_q8_act(void) { return q8_act; }

/* The kernel each storage runs: chosen per call from knob_kernel_isa() (the CPU's best level,
 * capped by KNOB_KERNEL or knob_kernel_force) and the CPU's AVX-512 extensions. */
enum { MV_PORTABLE, MV_AVX2, MV_AVX512, MV_AVX512_VNNI };

static int mv_level(void)
{
#if MV_X86
    return force_portable ? KNOB_ISA_PORTABLE : knob_kernel_isa();
#else
    return KNOB_ISA_PORTABLE;
#endif
}

static int use_avx2(void) { return mv_level() >= KNOB_ISA_AVX2; }

static int mv_kernel(knob_wtype type, int q8x)
{
    int level = mv_level();
    unsigned f = knob_cpu()->features;
    if (level < KNOB_ISA_AVX2)
        return MV_PORTABLE;
    if (level < KNOB_ISA_AVX512)
        return MV_AVX2;
    if (type == KNOB_W_Q8 && q8x)   /* without VNNI, the AVX2 maddubs kernel */
        return (f & KNOB_CPU_AVX512VNNI) ? MV_AVX512_VNNI : MV_AVX2;
    return MV_AVX512;
}

static const char *mv_kernel_names[] = {"portable", "avx2+fma", "avx512f", "avx512vnni"};

const char *knob_matvec_kernel_for(knob_wtype type) { return mv_kernel_names[mv_kernel(type, q8_act)]; }

const char *knob_matvec_kernel_name(void)
{
    static char buf[96];   /* the last call's answer (benchmarks and `knob info`, one thread) */
    if (mv_kernel(KNOB_W_F32, 0) == MV_PORTABLE)   /* then every storage's; src/models/lm.c tests for it */
        return "portable";
    snprintf(buf, sizeof buf, "f32 %s, bf16 %s, q8 %s", knob_matvec_kernel_for(KNOB_W_F32),
             knob_matvec_kernel_for(KNOB_W_BF16), knob_matvec_kernel_for(KNOB_W_Q8));
    return buf;
}

/* q8: x quantised (n (KB * 32) int8 and n (KB) scales), whatever the kernel */
size_t knob_matvec_scratch(const knob_wmat *W, int n)
{
    if (W->type == KNOB_W_F32)
        return 0;
    return (size_t)n * (size_t)W->KB * (QB + sizeof(float));
}

typedef struct mv_job {
    float *y;
    const float *x;
    const int8_t *xq;
    const float *xd;
    const knob_wmat *W;
    const float *b;
    int n, per, N, kernel;
} mv_job;

/* chunks [lo, hi) of `per` rows each */
static void mv_chunks(void *ctx, long lo, long hi)
{
    const mv_job *j = ctx;
    const knob_wmat *W = j->W;
    for (long c = lo; c < hi; c++) {
        int r0 = (int)c * j->per, r1 = KNOB_MIN(j->N, r0 + j->per);
        switch (j->kernel) {
#if MV_X86
        case MV_AVX512_VNNI:
            rows512_q8q(j->y, (const uint8_t *)j->xq, j->xd, W, j->b, j->n, r0, r1);
            continue;
        case MV_AVX512:
            if (W->type == KNOB_W_F32)
                rows512_f32(j->y, j->x, W, j->b, j->n, r0, r1);
            else if (W->type == KNOB_W_BF16)
                rows512_bf16(j->y, j->x, W, j->b, j->n, r0, r1);
            else
                rows512_q8f(j->y, j->x, W, j->b, j->n, r0, r1);
            continue;
        case MV_AVX2:
            rows_avx2(j->y, j->x, j->xq, j->xd, W, j->b, j->n, r0, r1);
            continue;
#endif
        default:
            break;
        }
        switch (W->type) {
        case KNOB_W_F32: rows_f32_portable(j->y, j->x, W, j->b, j->n, r0, r1); break;
        case KNOB_W_BF16: rows_bf16_portable(j->y, j->x, W, j->b, j->n, r0, r1); break;
        case KNOB_W_Q8: rows_q8_portable(j->y, j->x, j->xq, j->xd, W, j->b, j->n, r0, r1); break;
        }
    }
}

void knob_matvec(float *y, const float *x, const knob_wmat *W, const float *b, int n, void *scratch)
{
    int N = W->N, K = W->K;
    if (n <= 0 || N <= 0)
        return;
    int q8x = W->type == KNOB_W_Q8 && q8_act, kernel = mv_kernel(W->type, q8x);
    const int8_t *xq = NULL;
    const float *xd = NULL;
    if (q8x) {   /* x quantised once, used by every row */
        size_t KP = (size_t)W->KB * QB;
        float *d = scratch;
        int8_t *q = (int8_t *)(d + (size_t)n * W->KB);
        for (int v = 0; v < n; v++)
            knob_q8_quantize(q + (size_t)v * KP, d + (size_t)v * W->KB, x + (size_t)v * K, K);
#if MV_X86
        if (kernel == MV_AVX512_VNNI)
            q8_offset(q, (size_t)n * KP);
#endif
        xq = q;
        xd = d;
    }
    size_t row_bytes = knob_wmat_bytes(W) / (size_t)N;
    /* A few long runs of rows per thread, not many short ones: with 32 KiB chunks taken in turn
     * the threads' streams broke every few rows and one decode step's products (bench_decode
     * --kernels, 2 threads, 3 interleaved rounds, load 1.5-2.9) ran at a median 48 f32, 103 bf16,
     * 162 int8 steps/s; with CHUNKS_PER_THREAD chunks each 62, 111, 208 (1 MiB chunks: 58, 111,
     * 190). Four, not one, so that a thread the OS parks is covered by the others. Software
     * prefetch 1 KiB ahead measured no better and was left out. */
    size_t cb = KNOB_MAX((size_t)CHUNK_BYTES, knob_wmat_bytes(W) / ((size_t)knob_threads_get() * CHUNKS_PER_THREAD));
    int per = (int)KNOB_MAX(1, cb / KNOB_MAX(row_bytes, 1));
    int n_chunks = (N + per - 1) / per;
    mv_job job = {y, x, xq, xd, W, b, n, per, N, kernel};
    /* chunks of rows on knob's pool, taken by whichever thread is free; each row is computed the
     * same way whatever thread takes it, so the bits depend on neither the thread count nor n */
    if (n_chunks > 1 && (double)N * K * n >= 4.0 * KNOB_PAR_MIN)
        knob_parallel_for(n_chunks, 1, mv_chunks, &job);
    else
        mv_chunks(&job, 0, n_chunks);
}

/* ------------------------------------------------------------------------------------------------
 * Many rows: panels of W converted to f32, then knob_gemm (which threads itself) */

size_t knob_wmat_gemm_scratch(const knob_wmat *W, int n)
{
    if (W->type == KNOB_W_F32)
        return 0;
    size_t P = (size_t)KNOB_MAX(16, PANEL_FLOATS / W->K);
    P = KNOB_MIN(P, (size_t)W->N);
    return (P * (size_t)W->K + (size_t)n * P) * sizeof(float);
}

/* rows r0 + [lo, hi) of W as f32 into the panel (nested in a pool chunk: this thread alone) */
typedef struct {
    const knob_wmat *W;
    int r0, K;
    float *wp;
    int avx2;
} panel_task;

static void panel_rows(void *ctx, long lo, long hi)
{
    const panel_task *t = ctx;
    for (long i = lo; i < hi; i++) {
        float *out = t->wp + (size_t)i * t->K;
#if MV_X86
        if (t->avx2) {
            row_to_f32_avx2(t->W, t->r0 + (int)i, out);
            continue;
        }
#endif
        knob_wmat_rows(t->W, t->r0 + (int)i, 1, out);
    }
}

void knob_wmat_gemm(float *y, const float *x, const knob_wmat *W, const float *b, int n, void *scratch)
{
    int N = W->N, K = W->K;
    if (W->type == KNOB_W_F32) {
        knob_gemm(0, 1, n, N, K, 1.0f, x, W->f, 0.0f, y);
    } else {
        int P = (int)KNOB_MIN((size_t)N, (size_t)KNOB_MAX(16, PANEL_FLOATS / K));
        float *wp = scratch, *yp = wp + (size_t)P * K;   // (P, K), (n, P)
        for (int r0 = 0; r0 < N; r0 += P) {
            int np = KNOB_MIN(P, N - r0);
            knob_par_items(np, (double)K, panel_rows, &(panel_task){W, r0, K, wp, use_avx2()});
            knob_gemm(0, 1, n, np, K, 1.0f, x, wp, 0.0f, yp);
            for (int v = 0; v < n; v++)
                memcpy(y + (size_t)v * N + r0, yp + (size_t)v * np, (size_t)np * sizeof(float));
        }
    }
    if (b)
        for (int v = 0; v < n; v++)
            for (int i = 0; i < N; i++)
                y[(size_t)v * N + i] += b[i];
}
