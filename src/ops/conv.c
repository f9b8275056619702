/* conv.c: 2-D convolution over NCHW images, conv2d(x, w, b, stride, pad). Each image is unrolled
 * by im2col (src/kernels/conv.c) into a column matrix, so its convolution is one knob_gemm with the
 * weights read as a matrix (OC, C*KH*KW); backward is two more gemms and col2im.
 *
 * Memory: forward and backward allocate nothing. The op's saved buffer, sized at compile, holds
 * per-lane scratch (below): a lane's partial weight gradient and, for images whose column matrix
 * passes 256 KiB, its column matrix and column gradients (smaller ones use two buffers per
 * thread, kept in that core's L2); and each image's bias gradient. Backward recomputes each
 * image's columns rather than keeping all B of them: keeping them (bench_step cnn5:8,16:64, 7 MB
 * more) saved the im2col but the dw gemm's transposing pack then read them from L3 and took as
 * long again (perf: im2col 15.9 -> 10.2% of samples, pack_transposed 8.3 -> 15.8%). A 1x1
 * kernel with stride 1 and no padding needs no columns at all: the image (C, H*W) already is the
 * column matrix.
 *
 * Threads: over lanes of images, each image one single-threaded gemm. A 28x28 image's gemms are
 * too small to split well between threads: with one threaded gemm per image the second core sat
 * mostly idle. bench_step cnn (batch 64, 2 threads): 10.5 ms per step before, 6.6 ms after.
 *
 * A fresh dx (knob_grad_fresh) is zeroed image by image in the lane, just before col2im adds
 * into it (a 1x1 conv's gemm writes it, beta 0), instead of in a pass of its own by graph.c.
 *
 * Determinism: db accumulates image by image in order 0..B-1 (each image's sums made in its lane);
 * dw per lane in image order, then the
 * lanes in lane order; col2im adds in a fixed order. Same bits for any thread count.
 *
 * Not here: the kernels (src/kernels/conv.c), pooling (pool.c). */
#include "knob_internal.h"

#include <limits.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ip[0] stride, ip[1] pad; inputs x, w and optionally b */

typedef struct {
    int B, C, H, W;       /* x (B, C, H, W) */
    int OC, KH, KW;       /* w (OC, C, KH, KW) */
    int OH, OW;           /* y (B, OC, OH, OW) */
    int stride, pad;
    int CKK;              /* C*KH*KW: rows of the column matrix, columns of w as a matrix */
    int P;                /* OH*OW: columns of the column matrix */
    int direct;           /* 1x1 kernel, stride 1, pad 0: the image is its own column matrix */
    int dw_t;             /* the lanes' weight gradients are kept transposed, (CKK, OC) */
} conv_dims;

static void conv_plan(const knob_node *y, conv_dims *d)
{
    const int *xs = y->in[0]->t.shape, *ws = y->in[1]->t.shape;
    d->B = xs[0], d->C = xs[1], d->H = xs[2], d->W = xs[3];
    d->OC = ws[0], d->KH = ws[2], d->KW = ws[3];
    d->stride = y->ip[0], d->pad = y->ip[1];
    d->OH = knob_conv_out_size(d->H, d->KH, d->stride, d->pad);
    d->OW = knob_conv_out_size(d->W, d->KW, d->stride, d->pad);
    d->CKK = d->C * d->KH * d->KW;
    d->P = d->OH * d->OW;
    d->direct = d->KH == 1 && d->KW == 1 && d->stride == 1 && d->pad == 0;
    /* dW (OC, CKK) = dY (OC, P) cols^T: with OC a multiple of 16, dW^T (CKK, OC) = cols dY^T
     * gives the gemm whole 16-column panels, reads cols in place and packs dY (OC x P floats)
     * instead of cols (CKK x P): bench_gemm --threads 1, 16x200x64 nt 71 GFLOP/s, 200x16x64 nt
     * 105; 32x288x196 91 against 112. With 8 or 12 channels the panels are part empty and the
     * plain form is as fast or faster (8x72x784 60, 72x8x784 53). Each element is the same sum
     * over q in the same order either way: the same bits. */
    d->dw_t = d->OC % 16 == 0;
}

static knob_status conv2d_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *x = &y->in[0]->t, *w = &y->in[1]->t, *b = y->n_in > 2 ? &y->in[2]->t : NULL;
    int stride = y->ip[0], pad = y->ip[1];
    char sx[64], sw[64], sb[64];
    knob_shape_str(sx, sizeof sx, x->n_dims, x->shape);
    knob_shape_str(sw, sizeof sw, w->n_dims, w->shape);
    if (x->dtype != KNOB_F32 || w->dtype != KNOB_F32 || (b && b->dtype != KNOB_F32))
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: inputs must be float32");
    if (x->n_dims != 4)
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: x must be 4-D (B, C, H, W), got %s", sx);
    if (w->n_dims != 4)
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: weight must be 4-D (OC, C, KH, KW), got %s", sw);
    if (stride < 1)
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: stride is %d; must be at least 1", stride);
    if (pad < 0)
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: pad is %d; must be at least 0", pad);
    if (x->shape[1] != w->shape[1])
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: x has %d channels, weight expects %d: x is %s, weight is %s",
                         x->shape[1], w->shape[1], sx, sw);
    int H = x->shape[2], W = x->shape[3], KH = w->shape[2], KW = w->shape[3];
    long long PH = H + 2LL * pad, PW = W + 2LL * pad;   /* in int, a large pad would overflow */
    if (PH > INT_MAX || PW > INT_MAX)
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: pad %d is too large for x %s", pad, sx);
    if (KH > PH || KW > PW)
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: kernel %dx%d is larger than the padded input %lldx%lld (x is %s, pad %d)",
                         KH, KW, PH, PW, sx, pad);
    if (b && (b->n_dims != 1 || b->shape[0] != w->shape[0]))
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: bias must be (%d), one per output channel, got %s",
                         w->shape[0], knob_shape_str(sb, sizeof sb, b->n_dims, b->shape));
    int OH = knob_conv_out_size(H, KH, stride, pad), OW = knob_conv_out_size(W, KW, stride, pad);
    /* knob_gemm takes int sizes */
    if ((size_t)w->shape[1] * KH * KW > INT_MAX || (size_t)OH * OW > INT_MAX)
        return knob_fail(err, KNOB_ERR_SHAPE, "conv2d: x %s with weight %s is too large", sx, sw);
    knob_node_set_shape(y, 4, (int[]){x->shape[0], w->shape[0], OH, OW});
    return KNOB_OK;
}

/* Images are split into L = min(B, CONV_LANES) lanes of consecutive images; lane l owns images
 * [l B / L, (l + 1) B / L) and its own slice of the saved buffer:
 *     cols   L x (CKK, P)     that lane's column matrix (not for direct convs, nor small ones)
 *     dcols  L x (CKK, P)     its column gradients (when x needs a gradient; likewise)
 *     dw     L x (OC, CKK)    its partial weight gradient (when w needs one; (CKK, OC) if dw_t)
 *     db     B x (OC)         each image's bias gradient (when there is a bias)
 * Lanes run in parallel (one small single-threaded gemm per image each), and the partial weight
 * gradients are added in lane order. L depends only on B, never on the thread count, so the
 * result has the same bits for any number of threads. */
enum { CONV_LANES = 16 };

static int conv_lanes(const conv_dims *d) { return KNOB_MIN(d->B, CONV_LANES); }

/* Lanes in parallel when there are at least as many lanes as threads and enough work; otherwise
 * one lane after another, each gemm threaded by itself (a few large images). Either way the same
 * sums in the same order. */
static int lanes_parallel(const conv_dims *d)
{
    int L = conv_lanes(d);
    return L > 1 && L >= knob_threads_get() && (double)d->B * d->OC * d->P * d->CKK >= 1e6;
}

static size_t conv_cols_floats(const conv_dims *d) { return d->direct ? 0 : (size_t)d->CKK * (size_t)d->P; }

/* Column matrices up to this size live in two buffers per thread instead of one per lane: a
 * lane's columns are scratch for one image at a time (im2col writes all of them, the dcols gemm
 * overwrites all of them), so whichever buffer holds them the bits are the same. One per lane
 * made a step cycle through 16 of each (2.6 MB for bench_step cnn5:8,16:64, past L2), and every
 * lane's first im2col wrote into lines fetched from L3; a thread's own two stay in its L2.
 * Thread-local like gemm's packing buffers: no allocation, and pages are only touched by threads
 * that run a conv. Larger images keep the per-lane buffers in the saved slot. */
enum { CONV_TLS_FLOATS = 1 << 16 };   /* 256 KiB each */
static _Thread_local _Alignas(64) float tls_cols[CONV_TLS_FLOATS], tls_dcols[CONV_TLS_FLOATS];

static int conv_cols_in_tls(const conv_dims *d)
{
    size_t nc = conv_cols_floats(d);
    return nc && nc <= CONV_TLS_FLOATS;
}

static size_t conv2d_saved(const knob_node *y)
{
    conv_dims d;
    conv_plan(y, &d);
    size_t L = (size_t)conv_lanes(&d), cols = conv_cols_in_tls(&d) ? 0 : conv_cols_floats(&d), n = 0;
    n = knob_add_sat(n, knob_mul_sat(L, cols));
    if (y->in[0]->requires_grad)
        n = knob_add_sat(n, knob_mul_sat(L, cols));
    if (y->in[1]->requires_grad)
        n = knob_add_sat(n, knob_mul_sat(L, (size_t)d.OC * (size_t)d.CKK));
    if (y->n_in > 2)   /* each image's bias gradient, summed by the lanes, added in image order */
        n = knob_add_sat(n, knob_mul_sat((size_t)d.B, (size_t)d.OC));
    return knob_mul_sat(n, sizeof(float));
}

/* The per-image bias sums (B, OC), after the lanes' buffers in the saved slot. */
static float *conv_db_images(const knob_node *y, const conv_dims *d)
{
    size_t L = (size_t)conv_lanes(d), nc = conv_cols_in_tls(d) ? 0 : conv_cols_floats(d);
    size_t n = L * nc * (size_t)(1 + y->in[0]->requires_grad);
    if (y->in[1]->requires_grad)
        n += L * (size_t)d->OC * (size_t)d->CKK;
    return (float *)y->saved + n;
}

/* Lane l's buffers, for the calling thread; NULL where not planned. */
static void conv_lane_bufs(const knob_node *y, const conv_dims *d, int l, float **cols, float **dcols, float **dw)
{
    size_t L = (size_t)conv_lanes(d), nc = conv_cols_floats(d);
    float *base = y->saved;
    int need_dx = y->in[0]->requires_grad, need_dw = y->in[1]->requires_grad;
    if (conv_cols_in_tls(d)) {
        *cols = tls_cols;
        *dcols = need_dx ? tls_dcols : NULL;
        nc = 0;   /* none in the saved slot */
    } else {
        *cols = nc ? base + (size_t)l * nc : NULL;
        *dcols = nc && need_dx ? base + L * nc + (size_t)l * nc : NULL;
    }
    *dw = need_dw ? base + L * nc * (size_t)(1 + need_dx) + (size_t)l * d->OC * d->CKK : NULL;
}

static void lane_range(const conv_dims *d, int l, int *n0, int *n1)
{
    int L = conv_lanes(d);
    *n0 = (int)((long)d->B * l / L);
    *n1 = (int)((long)d->B * (l + 1) / L);
}

/* conv2d, per image n: x_n (C, H, W), y_n (OC, OH, OW)
 *   y[oc, oh, ow] = b[oc] + sum_{c, kh, kw} w[oc, c, kh, kw] x[c, oh*s - p + kh, ow*s - p + kw]
 * With cols_n = im2col(x_n) (CKK, P) and w read as Wm (OC, CKK), that is
 *   Y_n (OC, P) = Wm @ cols_n + b 1^T
 * so, as for any product:  dWm += dY_n cols_n^T,  db[oc] += sum_q dY_n[oc, q],
 *                          dcols_n = Wm^T dY_n,   dx_n += col2im(dcols_n)  (col2im = im2col^T). */
/* What a lane task needs: the node and its plan. */
typedef struct {
    const knob_node *y;
    conv_dims d;
} conv_task;

static void conv2d_forward_lanes(void *ctx, long lo, long hi)
{
    const knob_node *y = ((const conv_task *)ctx)->y;
    const conv_dims d = ((const conv_task *)ctx)->d;
    const float *X = y->in[0]->t.data;                          // (B, C, H, W)
    const float *Wm = y->in[1]->t.data;                         // (OC, C, KH, KW) = (OC, CKK)
    const float *bias = y->n_in > 2 ? y->in[2]->t.data : NULL;  // (OC) or NULL
    float *Y = y->t.data;                                       // (B, OC, OH, OW)
    size_t sx = (size_t)d.C * d.H * d.W, sy = (size_t)d.OC * d.P;
    for (int l = (int)lo; l < (int)hi; l++) {
        float *cols, *dcols, *dw;   // cols (CKK, P); NULL when direct
        conv_lane_bufs(y, &d, l, &cols, &dcols, &dw);
        int n0, n1;
        lane_range(&d, l, &n0, &n1);
        for (int n = n0; n < n1; n++) {
            const float *xn = X + n * sx;   // (C, H, W)
            float *yn = Y + n * sy;         // (OC, P)
            const float *cn = xn;           // (CKK, P)
            if (!d.direct) {
                knob_im2col(xn, d.C, d.H, d.W, d.KH, d.KW, d.stride, d.pad, cols);
                cn = cols;
            }
            if (bias)   /* start from b 1^T and let the gemm add onto it */
                for (int oc = 0; oc < d.OC; oc++) {
                    float b = bias[oc];
                    float *yo = yn + (size_t)oc * d.P;
#pragma omp simd
                    for (int q = 0; q < d.P; q++)
                        yo[q] = b;
                }
            knob_gemm(0, 0, d.OC, d.P, d.CKK, 1.0f, Wm, cn, bias ? 1.0f : 0.0f, yn);
        }
    }
}

static void conv2d_forward(knob_node *y)
{
    conv_task t = {y, {0}};
    conv_plan(y, &t.d);
    int L = conv_lanes(&t.d);
    knob_parallel_for(L, lanes_parallel(&t.d) ? 1 : L, conv2d_forward_lanes, &t);
}

/* db[oc] = sum_q dy[oc, q] for dy (OC, P), in double, rounded to float (backward adds these into
 * the bias gradient image by image, in image order). Each row's sum runs in DB_LANES partial sums,
 * element q added to lane q % DB_LANES in q order, the lanes added pairwise at the end:
 * independent chains side by side in vector registers, where a row's single chain ran at one add
 * per add latency (bench_step cnn5, one thread: the step 2.08 -> 2.02 ms). The order is fixed by
 * the code, not by the vector width, so every machine and thread count gets the same bits. */
enum { DB_LANES = 8 };

static void db_image_sums(float *db, const float *dy, int OC, int P)
{
    for (int oc = 0; oc < OC; oc++) {
        const float *r = dy + (size_t)oc * P;   // (P)
        double t[DB_LANES] = {0};
        int q = 0;
#if defined(__SSE2__)
        /* lanes (0, 1) (2, 3) (4, 5) (6, 7) in four registers (SSE2, the x86-64 baseline; in
         * GCC's generic vectors or an array they went through memory every step) */
        __m128d s01 = _mm_setzero_pd(), s23 = s01, s45 = s01, s67 = s01;
        for (; q + DB_LANES <= P; q += DB_LANES) {
            __m128 f0 = _mm_loadu_ps(r + q), f1 = _mm_loadu_ps(r + q + 4);
            s01 = _mm_add_pd(s01, _mm_cvtps_pd(f0));
            s23 = _mm_add_pd(s23, _mm_cvtps_pd(_mm_movehl_ps(f0, f0)));
            s45 = _mm_add_pd(s45, _mm_cvtps_pd(f1));
            s67 = _mm_add_pd(s67, _mm_cvtps_pd(_mm_movehl_ps(f1, f1)));
        }
        _mm_storeu_pd(t, s01);
        _mm_storeu_pd(t + 2, s23);
        _mm_storeu_pd(t + 4, s45);
        _mm_storeu_pd(t + 6, s67);
#endif
        for (int l = 0; q < P; q++, l = (l + 1) % DB_LANES)   /* the rest (all of it without SSE2) */
            t[l] += (double)r[q];
        db[oc] = (float)(((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7])));
    }
}

static void conv2d_backward_lanes(void *ctx, long lo, long hi)
{
    const knob_node *y = ((const conv_task *)ctx)->y;
    const conv_dims d = ((const conv_task *)ctx)->d;
    const float *X = y->in[0]->t.data;      // (B, C, H, W)
    const float *Wm = y->in[1]->t.data;     // (OC, CKK)
    const float *DY = y->t.grad;            // (B, OC, OH, OW)
    float *DX = y->in[0]->requires_grad ? y->in[0]->t.grad : NULL;   // (B, C, H, W) or NULL
    float *DW = y->in[1]->requires_grad ? y->in[1]->t.grad : NULL;   // (OC, CKK) or NULL
    float *dbs = y->n_in > 2 && y->in[2]->t.grad ? conv_db_images(y, &d) : NULL;   // (B, OC) or NULL
    size_t sx = (size_t)d.C * d.H * d.W, sy = (size_t)d.OC * d.P;
    int fresh = DX && knob_grad_fresh(y->in[0]);   /* dx_n written, not added to */
    for (int l = (int)lo; l < (int)hi; l++) {
        float *cols, *dcols, *dw;   // (CKK, P), (CKK, P), (OC, CKK); NULL where not needed
        conv_lane_bufs(y, &d, l, &cols, &dcols, &dw);
        int n0, n1;
        lane_range(&d, l, &n0, &n1);
        for (int n = n0; n < n1; n++) {
            const float *xn = X + n * sx;      // (C, H, W)
            const float *dyn = DY + n * sy;    // (OC, P)
            if (dbs)
                db_image_sums(dbs + (size_t)n * d.OC, dyn, d.OC, d.P);
            if (DW) {   /* dw_l (OC, CKK) (+)= dY_n (OC, P) @ cols_n^T (P, CKK), or its transpose */
                const float *cn = xn;
                if (!d.direct) {
                    knob_im2col(xn, d.C, d.H, d.W, d.KH, d.KW, d.stride, d.pad, cols);
                    cn = cols;
                }
                if (d.dw_t)   /* dw_l (CKK, OC) (+)= cols_n (CKK, P) @ dY_n^T (P, OC) */
                    knob_gemm(0, 1, d.CKK, d.OC, d.P, 1.0f, cn, dyn, n == n0 ? 0.0f : 1.0f, dw);
                else
                    knob_gemm(0, 1, d.OC, d.CKK, d.P, 1.0f, dyn, cn, n == n0 ? 0.0f : 1.0f, dw);
            }
            if (DX) {   /* dcols_n (CKK, P) = Wm^T (CKK, OC) @ dY_n (OC, P); dx_n += col2im(dcols_n) */
                float *dxn = DX + n * sx;      // (C, H, W)
                if (d.direct) {
                    knob_gemm(1, 0, d.CKK, d.P, d.OC, 1.0f, Wm, dyn, fresh ? 0.0f : 1.0f, dxn);
                } else {
                    knob_gemm(1, 0, d.CKK, d.P, d.OC, 1.0f, Wm, dyn, 0.0f, dcols);
                    if (fresh)
                        memset(dxn, 0, sx * sizeof *dxn);
                    knob_col2im(dcols, d.C, d.H, d.W, d.KH, d.KW, d.stride, d.pad, dxn);
                }
            }
        }
    }
}

/* DW[i] += dw_0[i] + dw_1[i] + ... in lane order (element i = (o, r) of DW at (r, o) of the
 * lanes' buffers when they are transposed) */
static void conv2d_dw_sum(void *ctx, long lo, long hi)
{
    const knob_node *y = ((const conv_task *)ctx)->y;
    const conv_dims *d = &((const conv_task *)ctx)->d;
    size_t nw = (size_t)d->OC * d->CKK;
    int L = conv_lanes(d);
    float *DW = y->in[1]->t.grad, *unused1, *unused2, *dw0;   // L x (OC, CKK) or L x (CKK, OC)
    conv_lane_bufs(y, d, 0, &unused1, &unused2, &dw0);
    for (size_t i = (size_t)lo; i < (size_t)hi; i++) {
        size_t j = d->dw_t ? i % (size_t)d->CKK * (size_t)d->OC + i / (size_t)d->CKK : i;
        float s = dw0[j];
        for (int l = 1; l < L; l++)
            s += dw0[(size_t)l * nw + j];
        DW[i] += s;
    }
}

static void conv2d_backward(knob_node *y)
{
    conv_task t = {y, {0}};
    conv_plan(y, &t.d);
    const conv_dims d = t.d;
    float *DW = y->in[1]->requires_grad ? y->in[1]->t.grad : NULL;   // (OC, CKK) or NULL
    float *DB = y->n_in > 2 ? y->in[2]->t.grad : NULL;               // (OC) or NULL
    size_t nw = (size_t)d.OC * d.CKK;
    int L = conv_lanes(&d);
    knob_parallel_for(L, lanes_parallel(&d) ? 1 : L, conv2d_backward_lanes, &t);
    if (DB) {   /* the images' sums in image order: the bits of adding each as it was summed */
        const float *dbs = conv_db_images(y, &d);   // (B, OC)
        for (int n = 0; n < d.B; n++)
            for (int oc = 0; oc < d.OC; oc++)
                DB[oc] += dbs[(size_t)n * d.OC + oc];
    }
    if (DW)
        knob_par_items((long)nw, (double)L, conv2d_dw_sum, &t);
}

/* n_in -1: two inputs, or three with a bias */
const knob_op_def knob_op_conv2d = {-1, conv2d_shape, conv2d_saved, NULL, conv2d_forward, conv2d_backward};

knob_node *knob_conv2d(knob_graph *g, knob_node *x, knob_node *w, knob_node *b, int stride, int pad)
{
    knob_node *in[3] = {x, w, b};
    int ip[2] = {stride, pad};
    return knob_node_make(g, KNOB_OP_CONV2D, b ? 3 : 2, in, ip, 2, NULL, 0);
}
