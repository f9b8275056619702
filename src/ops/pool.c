/* pool.c: max and average pooling over NCHW images, window k x k, stride s, no padding:
 * x (B, C, H, W) -> y (B, C, (H - k) / s + 1, (W - k) / s + 1). Rows or columns that no window
 * reaches (when (H - k) % s != 0) get no output and a zero gradient.
 *
 * Threads split the B*C planes. A plane's output only reads, and its backward only writes, that
 * plane of x, and within a plane backward adds in one fixed order: overlapping windows (s < k)
 * give the same bits for any thread count.
 *
 * A fresh dx (knob_grad_fresh) is zeroed a plane at a time by the task that then adds into it
 * (graph.c would zero the whole tensor first, in a pass of its own): the same sums.
 *
 * Max pooling keeps, in its saved buffer, the index in the (H, W) plane of each window's maximum
 * (the first one on ties), so backward routes dy there without searching again. */
#include "knob_internal.h"

#include <string.h>

/* ip[0] k, ip[1] stride */

typedef struct {
    int BC, H, W;      /* x viewed as BC planes of (H, W) */
    int OH, OW;        /* y viewed as BC planes of (OH, OW) */
    int k, s;
} pool_dims;

static void pool_plan(const knob_node *y, pool_dims *d)
{
    const int *xs = y->in[0]->t.shape;
    d->BC = xs[0] * xs[1], d->H = xs[2], d->W = xs[3];
    d->OH = y->t.shape[2], d->OW = y->t.shape[3];
    d->k = y->ip[0], d->s = y->ip[1];
}

static knob_status pool_shape(knob_node *y, knob_err *err)
{
    const char *name = knob_op_name(y->op);
    const knob_tensor *x = &y->in[0]->t;
    int k = y->ip[0], s = y->ip[1];
    char sx[64];
    knob_shape_str(sx, sizeof sx, x->n_dims, x->shape);
    if (x->dtype != KNOB_F32)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: x must be float32", name);
    if (x->n_dims != 4)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: x must be 4-D (B, C, H, W), got %s", name, sx);
    if (k < 1)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: window is %d; must be at least 1", name, k);
    if (s < 1)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: stride is %d; must be at least 1", name, s);
    if (k > x->shape[2] || k > x->shape[3])
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: window %dx%d is larger than the input %dx%d (x is %s)",
                         name, k, k, x->shape[2], x->shape[3], sx);
    if ((size_t)x->shape[2] * x->shape[3] > INT32_MAX)   /* argmax indices are int32 */
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: x is %s; planes above 2^31 elements are not supported", name, sx);
    int shape[4] = {x->shape[0], x->shape[1], (x->shape[2] - k) / s + 1, (x->shape[3] - k) / s + 1};
    knob_node_set_shape(y, 4, shape);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Max pooling */

/* One int32 index into the (H, W) plane per output element. */
static size_t maxpool_saved(const knob_node *y) { return y->t.n_elems * sizeof(int32_t); }

/* Index into the plane x of the max of the k x k window whose top-left element is x[m0]: the
 * same pick as scanning the window in row order with "if (x[m] > x[best] || x[m] != x[m])
 * best = m" (first max on ties, the last NaN if any), written without a branch. On real data that
 * comparison is a coin flip, and a mispredicted branch per element made maxpool about 4 ns per
 * input. maxv is the running max of the non-NaN values (the v > maxv ? v : maxv form compiles to
 * maxss); once a NaN has been seen only a later NaN moves best. Called with a constant k = 2 and
 * unrolled (gcc and clang both read "GCC unroll"), the 2x2 pool runs ~4x faster than the branchy
 * loop did. */
static inline int window_argmax(const float *x, int m0, int W, int k)
{
    int best = m0, seen_nan = 0;
    float maxv = x[m0];
#pragma GCC unroll 2
    for (int a = 0; a < k; a++)
#pragma GCC unroll 2
        for (int b = 0; b < k; b++) {
            int m = m0 + a * W + b;
            float v = x[m];
            int is_nan = v != v;
            int take = is_nan | ((v > maxv) & !seen_nan);   /* 0 or 1 */
            best += (m - best) & -take;
            seen_nan |= is_nan;
            maxv = v > maxv ? v : maxv;
        }
    return best;
}

/* The 2x2 stride-2 window (every CNN here) four outputs at a time, with SSE2 (the x86-64
 * baseline): window_argmax's steps on four windows side by side, as lane masks. For outputs
 * j .. j + 3 of output row i, the window elements (a, b) are x[(2i + a) W + 2 (j + t) + b],
 * t = 0..3: the even and odd floats of 8 consecutive ones of input row 2i + a, split by two
 * shuffles. Same picks (first max on ties, the last NaN if any, the first element when it is
 * the only NaN), so the same y and indices; y is the picked element itself, carried along. */
#if defined(__SSE2__)
#include <immintrin.h>
#define POOL2_SSE 1

/* one step of window_argmax on four windows: element v at index m of each */
static inline void pool2_step(__m128 v, __m128i m, __m128 *maxv, __m128 *y, __m128i *best, __m128 *seen_nan)
{
    __m128 is_nan = _mm_cmpunord_ps(v, v);
    __m128 take = _mm_or_ps(is_nan, _mm_andnot_ps(*seen_nan, _mm_cmpgt_ps(v, *maxv)));
    __m128i t = _mm_castps_si128(take);
    *best = _mm_or_si128(_mm_and_si128(t, m), _mm_andnot_si128(t, *best));
    *y = _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, *y));
    *seen_nan = _mm_or_ps(*seen_nan, is_nan);
    *maxv = _mm_max_ps(v, *maxv);   /* v > maxv ? v : maxv, as maxss */
}

/* outputs j .. j + 3 of row i; needs 2 j + 8 <= W, which j + 4 <= OW = (W - 2) / 2 + 1 gives */
static inline void pool2_four(const float *x, int W, int i, int j, float *y_out, int32_t *arg_out)
{
    const float *r0 = x + (size_t)2 * i * W + 2 * j, *r1 = r0 + W;
    __m128 a = _mm_loadu_ps(r0), b = _mm_loadu_ps(r0 + 4);
    __m128 c = _mm_loadu_ps(r1), d = _mm_loadu_ps(r1 + 4);
    __m128 v00 = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), v01 = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    __m128 v10 = _mm_shuffle_ps(c, d, _MM_SHUFFLE(2, 0, 2, 0)), v11 = _mm_shuffle_ps(c, d, _MM_SHUFFLE(3, 1, 3, 1));
    int m0 = 2 * i * W + 2 * j;
    __m128i best = _mm_add_epi32(_mm_set1_epi32(m0), _mm_setr_epi32(0, 2, 4, 6));
    __m128 maxv = v00, y = v00, seen_nan = _mm_setzero_ps();
    pool2_step(v01, _mm_add_epi32(best, _mm_set1_epi32(1)), &maxv, &y, &best, &seen_nan);
    __m128i m10 = _mm_add_epi32(_mm_set1_epi32(m0 + W), _mm_setr_epi32(0, 2, 4, 6));
    pool2_step(v10, m10, &maxv, &y, &best, &seen_nan);
    pool2_step(v11, _mm_add_epi32(m10, _mm_set1_epi32(1)), &maxv, &y, &best, &seen_nan);
    _mm_storeu_ps(y_out, y);
    _mm_storeu_si128((__m128i *)(void *)arg_out, best);
}

/* The same on eight windows with AVX2 (where knob_kernel_isa() allows): the in-lane shuffles give
 * windows 0 1 4 5 | 2 3 6 7, which one permute of 64-bit pairs puts back in order. Needs
 * 2 j + 16 <= W. (bench_step cnn5, rows of 12 outputs: one eight and one four.) */
__attribute__((target("avx2"))) static inline __m256 pool2_evens8(__m256 a, __m256 b)
{
    __m256 v = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
}

__attribute__((target("avx2"))) static inline __m256 pool2_odds8(__m256 a, __m256 b)
{
    __m256 v = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
}

__attribute__((target("avx2"))) static inline void pool2_step8(__m256 v, __m256i m, __m256 *maxv, __m256 *y,
                                                              __m256i *best, __m256 *seen_nan)
{
    __m256 is_nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    __m256 take = _mm256_or_ps(is_nan, _mm256_andnot_ps(*seen_nan, _mm256_cmp_ps(v, *maxv, _CMP_GT_OQ)));
    *best = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(*best), _mm256_castsi256_ps(m), take));
    *y = _mm256_blendv_ps(*y, v, take);
    *seen_nan = _mm256_or_ps(*seen_nan, is_nan);
    *maxv = _mm256_max_ps(v, *maxv);   /* v > maxv ? v : maxv, as maxps */
}

__attribute__((target("avx2"))) static void pool2_eight(const float *x, int W, int i, int j, float *y_out,
                                                       int32_t *arg_out)
{
    const float *r0 = x + (size_t)2 * i * W + 2 * j, *r1 = r0 + W;
    __m256 a = _mm256_loadu_ps(r0), b = _mm256_loadu_ps(r0 + 8);
    __m256 c = _mm256_loadu_ps(r1), d = _mm256_loadu_ps(r1 + 8);
    __m256 v00 = pool2_evens8(a, b), v01 = pool2_odds8(a, b);
    __m256 v10 = pool2_evens8(c, d), v11 = pool2_odds8(c, d);
    int m0 = 2 * i * W + 2 * j;
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), one = _mm256_set1_epi32(1);
    __m256i best = _mm256_add_epi32(_mm256_set1_epi32(m0), even);
    __m256 maxv = v00, y = v00, seen_nan = _mm256_setzero_ps();
    pool2_step8(v01, _mm256_add_epi32(best, one), &maxv, &y, &best, &seen_nan);
    __m256i m10 = _mm256_add_epi32(_mm256_set1_epi32(m0 + W), even);
    pool2_step8(v10, m10, &maxv, &y, &best, &seen_nan);
    pool2_step8(v11, _mm256_add_epi32(m10, one), &maxv, &y, &best, &seen_nan);
    _mm256_storeu_ps(y_out, y);
    _mm256_storeu_si256((__m256i *)(void *)arg_out, best);
}
#else
#define POOL2_SSE 0
#endif

/* What a pool task needs: the node and its plan; tasks take chunks of the B * C planes. */
typedef struct {
    const knob_node *y;
    pool_dims d;
} pool_task;

/* maxpool: y[i, j] = max over the window x[i*s + a, j*s + b], 0 <= a, b < k
 * dx[m] += dy[i, j] where m = argmax of window (i, j) (first on ties); other x get nothing.
 * A NaN in the window wins, so it reaches the loss instead of vanishing. */
static void maxpool_forward_planes(void *ctx, long lo, long hi)
{
    const knob_node *y = ((const pool_task *)ctx)->y;
    const pool_dims d = ((const pool_task *)ctx)->d;
    const float *X = y->in[0]->t.data;   // (BC, H, W)
    float *Y = y->t.data;                // (BC, OH, OW)
    int32_t *arg = y->saved;             // (BC, OH, OW) index into the (H, W) plane
#if POOL2_SSE
    const int avx2 = knob_kernel_isa() >= KNOB_ISA_AVX2;
#endif
    for (int p = (int)lo; p < (int)hi; p++) {
        /* sizes in locals: the stores to Y and arg could alias d, which is shared */
        const int W = d.W, OH = d.OH, OW = d.OW, k = d.k, s = d.s;
        const float *x = X + (size_t)p * d.H * W;   // (H, W)
        size_t o = (size_t)p * OH * OW;
#if POOL2_SSE
        if (k == 2 && s == 2) {
            for (int i = 0; i < OH; i++) {
                int j = 0;
                if (avx2)
                    for (; j + 8 <= OW; j += 8, o += 8)
                        pool2_eight(x, W, i, j, Y + o, arg + o);
                for (; j + 4 <= OW; j += 4, o += 4)
                    pool2_four(x, W, i, j, Y + o, arg + o);
                for (; j < OW; j++, o++) {
                    int best = window_argmax(x, 2 * i * W + 2 * j, W, 2);
                    Y[o] = x[best];
                    arg[o] = best;
                }
            }
            continue;
        }
#endif
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++, o++) {
                int m0 = i * s * W + j * s;
                int best = k == 2 ? window_argmax(x, m0, W, 2) : window_argmax(x, m0, W, k);
                Y[o] = x[best];
                arg[o] = best;
            }
    }
}

static void maxpool_forward(knob_node *y)
{
    pool_task t = {y, {0}};
    pool_plan(y, &t.d);
    knob_par_items(t.d.BC, (double)t.d.H * t.d.W, maxpool_forward_planes, &t);
}

static void maxpool_backward_planes(void *ctx, long lo, long hi)
{
    const knob_node *y = ((const pool_task *)ctx)->y;
    const pool_dims d = ((const pool_task *)ctx)->d;
    float *DX = y->in[0]->t.grad;   // (BC, H, W)
    if (!DX)
        return;
    const float *DY = y->t.grad;            // (BC, OH, OW)
    const int32_t *arg = y->saved;          // (BC, OH, OW)
    size_t n_out = (size_t)d.OH * d.OW;
    int fresh = knob_grad_fresh(y->in[0]);
    for (int p = (int)lo; p < (int)hi; p++) {
        float *dx = DX + (size_t)p * d.H * d.W;   // (H, W)
        if (fresh)   /* zeroed here, plane by plane while it is in cache, not by graph.c */
            memset(dx, 0, (size_t)d.H * d.W * sizeof *dx);
        for (size_t o = (size_t)p * n_out; o < (size_t)(p + 1) * n_out; o++)
            dx[arg[o]] += DY[o];
    }
}

static void maxpool_backward(knob_node *y)
{
    if (!y->in[0]->t.grad)
        return;
    pool_task t = {y, {0}};
    pool_plan(y, &t.d);
    knob_par_items(t.d.BC, (double)t.d.H * t.d.W, maxpool_backward_planes, &t);
}

/* ------------------------------------------------------------------------------------------------
 * Average pooling */

/* avgpool: y[i, j] = (1 / k^2) sum over the window x[i*s + a, j*s + b], 0 <= a, b < k
 * dx[i*s + a, j*s + b] += dy[i, j] / k^2 for every window (i, j) that covers it. */
static void avgpool_forward_planes(void *ctx, long lo, long hi)
{
    const knob_node *y = ((const pool_task *)ctx)->y;
    const pool_dims d = ((const pool_task *)ctx)->d;
    const float *X = y->in[0]->t.data;   // (BC, H, W)
    float *Y = y->t.data;                // (BC, OH, OW)
    double inv = 1.0 / ((double)d.k * d.k);
    for (int p = (int)lo; p < (int)hi; p++) {
        const float *x = X + (size_t)p * d.H * d.W;   // (H, W)
        float *yp = Y + (size_t)p * d.OH * d.OW;      // (OH, OW)
        for (int i = 0; i < d.OH; i++)
            for (int j = 0; j < d.OW; j++) {
                double acc = 0;
                for (int a = 0; a < d.k; a++)
                    for (int b = 0; b < d.k; b++)
                        acc += (double)x[(i * d.s + a) * d.W + j * d.s + b];
                yp[i * d.OW + j] = (float)(acc * inv);
            }
    }
}

static void avgpool_forward(knob_node *y)
{
    pool_task t = {y, {0}};
    pool_plan(y, &t.d);
    knob_par_items(t.d.BC, (double)t.d.H * t.d.W, avgpool_forward_planes, &t);
}

static void avgpool_backward_planes(void *ctx, long lo, long hi)
{
    const knob_node *y = ((const pool_task *)ctx)->y;
    const pool_dims d = ((const pool_task *)ctx)->d;
    float *DX = y->in[0]->t.grad;   // (BC, H, W)
    if (!DX)
        return;
    const float *DY = y->t.grad;     // (BC, OH, OW)
    float inv = 1.0f / (float)(d.k * d.k);
    for (int p = (int)lo; p < (int)hi; p++) {
        float *dx = DX + (size_t)p * d.H * d.W;               // (H, W)
        const float *dy = DY + (size_t)p * d.OH * d.OW;       // (OH, OW)
        for (int i = 0; i < d.OH; i++)
            for (int j = 0; j < d.OW; j++) {
                float g = dy[i * d.OW + j] * inv;
                for (int a = 0; a < d.k; a++)
                    for (int b = 0; b < d.k; b++)
                        dx[(i * d.s + a) * d.W + j * d.s + b] += g;
            }
    }
}

static void avgpool_backward(knob_node *y)
{
    if (!y->in[0]->t.grad)
        return;
    pool_task t = {y, {0}};
    pool_plan(y, &t.d);
    knob_par_items(t.d.BC, (double)t.d.H * t.d.W, avgpool_backward_planes, &t);
}

const knob_op_def knob_op_maxpool2d = {1, pool_shape, maxpool_saved, NULL, maxpool_forward, maxpool_backward};
const knob_op_def knob_op_avgpool2d = {1, pool_shape, NULL, NULL, avgpool_forward, avgpool_backward};

static knob_node *pool(knob_graph *g, knob_op op, knob_node *x, int k, int stride)
{
    int ip[2] = {k, stride};
    return knob_node_make(g, op, 1, &x, ip, 2, NULL, 0);
}

knob_node *knob_maxpool2d(knob_graph *g, knob_node *x, int k, int stride) { return pool(g, KNOB_OP_MAXPOOL2D, x, k, stride); }
knob_node *knob_avgpool2d(knob_graph *g, knob_node *x, int k, int stride) { return pool(g, KNOB_OP_AVGPOOL2D, x, k, stride); }
