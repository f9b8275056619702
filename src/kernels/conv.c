/* conv.c: the image kernels behind conv2d (src/ops/conv.c): im2col turns one image into a column
 * matrix so a convolution becomes one knob_gemm; col2im is its adjoint and carries column
 * gradients back to the image. knob_conv2d_naive is the direct seven-loop convolution that tests
 * compare the fast path against. The layout is described in knob_internal.h.
 *
 * Threads: im2col splits rows of cols (disjoint writes). col2im splits input channels: the rows of
 * channel c only ever add into dx plane c, and within a plane the additions run in one fixed order,
 * so the result has the same bits for any thread count.
 *
 * Not here: batching, bias, the gemm itself (src/kernels/gemm.c). */
#include "knob_internal.h"

#include <stddef.h>
#include <string.h>

int knob_conv_out_size(int n, int k, int stride, int pad) { return (n + 2 * pad - k) / stride + 1; }

/* Outputs o in [*lo, *hi) read input i = o*stride - pad + off inside [0, n); the rest read padding. */
static inline void valid_range(int n, int off, int stride, int pad, int n_out, int *lo, int *hi)
{
    int a = pad - off;          /* need o*stride >= a */
    int b = n + pad - off;      /* need o*stride <  b */
    int l, h;
    if (stride == 1) {   /* no division: it ran once or twice per row, and cost more than the copy */
        l = a <= 0 ? 0 : a;
        h = b <= 0 ? 0 : b;
    } else {
        l = a <= 0 ? 0 : (a + stride - 1) / stride;
        h = b <= 0 ? 0 : (b + stride - 1) / stride;
    }
    if (l > n_out)
        l = n_out;
    if (h > n_out)
        h = n_out;
    if (h < l)
        h = l;
    *lo = l;
    *hi = h;
}

/* ------------------------------------------------------------------------------------------------
 * Short rows. A 5x5 unpadded conv on 28x28 images copies output rows of 24 floats (12x12 input: 8
 * floats): as memcpy calls that was ~280K library calls a bench_step cnn5 step, ~14% of its time
 * in the call and its size dispatch. These copy and add in blocks of 4 floats inline (GCC vector
 * extensions, gcc and clang; SSE2 on x86-64). Each element is one float add, as in the scalar
 * loop, so the sums keep their bits. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

/* An empty asm that claims to change v: without it gcc (-ftree-loop-distribute-patterns) and
 * clang (loop idiom recognition) see the block loop below as a copy and call memmove again. */
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#define OPAQUE4(v) __asm__("" : "+x"(v))
#else
#define OPAQUE4(v) ((void)0)
#endif

/* dst[0, n) = src[0, n); the last block overlaps the one before it, so any n >= 4 takes
 * ceil(n / 4) block copies and no scalar tail. */
static inline void copy_short(float *restrict dst, const float *restrict src, int n)
{
    if (n < 4) {   /* no loop: gcc would make it a memmove call */
        dst[0] = src[0];
        if (n > 1)
            dst[1] = src[1];
        if (n > 2)
            dst[2] = src[2];
        return;
    }
    if (n >= 64) {   /* long rows: the library's wide copy */
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    }
    for (int i = 0; i + 4 < n; i += 4) {
        v4f v = load4(src + i);
        OPAQUE4(v);
        store4(dst + i, v);
    }
    store4(dst + n - 4, load4(src + n - 4));
}

/* dst[0, n) += src[0, n), one add per element (an overlapping block would add twice) */
static inline void add_short(float *restrict dst, const float *restrict src, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        store4(dst + i, load4(dst + i) + load4(src + i));
    for (; i < n; i++)
        dst[i] += src[i];
}

/* A row of cols that reads no padding (stride 1): OH copies of OW floats, output row oh from
 * input row oh of src (W floats apart) */
static inline void copy_rows(float *restrict row, const float *restrict src, int OH, int OW, int W)
{
    if (OW % 4 || OW >= 64) {
        for (int oh = 0; oh < OH; oh++, row += OW, src += W)
            copy_short(row, src, OW);
        return;
    }
    /* rows a multiple of 4 floats (cnn5: 24 and 8): whole blocks, none of copy_short's tests
     * (a bench_step cnn5 step, one thread: 5% faster) */
    for (int oh = 0; oh < OH; oh++, row += OW, src += W)
        for (int i = 0; i < OW; i += 4) {
            v4f v = load4(src + i);
            OPAQUE4(v);
            store4(row + i, v);
        }
}

/* Rows of a multiple of 8 floats (cnn5: 24 and 8), with AVX2 where the CPU has it: one 32-byte
 * load and store per 8 floats, half the instructions of the 4-float blocks (bench_step cnn5, one
 * thread, perf: im2col 0.31 -> 0.25 ms a step, col2im 0.14 -> 0.09; the step 2.28 -> 2.15 ms). The
 * adds stay one float add per element, so col2im keeps its bits. knob_kernel_isa() decides;
 * without AVX2 the rows take the blocks above. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CONV_AVX2 1
__attribute__((target("avx2"))) static void copy_rows8_avx2(float *restrict row, const float *restrict src,
                                                           int OH, int OW, int W)
{
    for (int oh = 0; oh < OH; oh++, row += OW, src += W)
        for (int i = 0; i < OW; i += 8) {
            __m256 v = _mm256_loadu_ps(src + i);
            __asm__("" : "+x"(v));   /* as OPAQUE4: else the loop becomes memmove calls */
            _mm256_storeu_ps(row + i, v);
        }
}

__attribute__((target("avx2"))) static void add_rows8_avx2(float *restrict out, const float *restrict g,
                                                          int OH, int OW, int W)
{
    for (int oh = 0; oh < OH; oh++, g += OW, out += W)
        for (int i = 0; i < OW; i += 8)
            _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(out + i), _mm256_loadu_ps(g + i)));
}
#else
#define CONV_AVX2 0
#endif

/* One call's arguments, for the pool's chunks; rows8: rows of OW % 8 == 0 floats take the AVX2
 * loops */
typedef struct {
    const float *x;
    float *out;
    int C, H, W, KH, KW, stride, pad, OH, OW;
    int rows8;
} conv_task;

/* row r = (c, kh, kw) of cols (OH*OW): what input channel c shifted by (kh, kw) reads */
static inline void im2col_row(const conv_task *t, long r, int c, int kh, int kw)
{
    int H = t->H, W = t->W, stride = t->stride, pad = t->pad;
    int OH = t->OH, OW = t->OW;
    size_t P = (size_t)OH * OW;
    const float *x = t->x;
    float *cols = t->out;
    const float *xc = x + (size_t)c * H * W;     // (H, W)
    float *row = cols + (size_t)r * P;            // (OH, OW)
    int oh_lo, oh_hi, ow_lo, ow_hi;
    valid_range(H, kh, stride, pad, OH, &oh_lo, &oh_hi);
    valid_range(W, kw, stride, pad, OW, &ow_lo, &ow_hi);
    if (stride == 1 && OW == W && oh_hi > oh_lo && ow_hi > ow_lo) {
        /* "Same" padding (OW == W, as 3x3 pad 1): output element q = oh*OW + ow reads input
         * element q + shift, shift = (kh - pad) W + (kw - pad), for every q in the valid box
         * (oh in [oh_lo, oh_hi), ow in [ow_lo, ow_hi)), so the box is one contiguous copy
         * from its first valid element to its last. The elements in between with ow outside
         * [ow_lo, ow_hi) copied a neighbouring input row's edge; they are zeroed after. One
         * memcpy per row of cols instead of one per output row. */
        size_t first = (size_t)oh_lo * OW + (size_t)ow_lo;           // [first, last) of row
        size_t last = (size_t)(oh_hi - 1) * OW + (size_t)ow_hi;
        const float *src = xc + (size_t)(oh_lo - pad + kh) * W + (size_t)(ow_lo - pad + kw);
        memset(row, 0, first * sizeof *row);
        memcpy(row + first, src, (last - first) * sizeof *row);
        memset(row + last, 0, (P - last) * sizeof *row);
        /* column by column: as row-by-row loops the compiler made each one a memset call
         * (for one or two floats), which cost as much as the copy */
        for (int ow = 0; ow < ow_lo; ow++)
            for (int oh = oh_lo; oh < oh_hi; oh++)
                row[(size_t)oh * OW + ow] = 0.0f;
        for (int ow = ow_hi; ow < OW; ow++)
            for (int oh = oh_lo; oh < oh_hi; oh++)
                row[(size_t)oh * OW + ow] = 0.0f;
        return;
    }
    if (stride == 1 && oh_lo == 0 && oh_hi == OH && ow_lo == 0 && ow_hi == OW) {
        /* no output of this row reads padding (every row when pad is 0): OH copies of OW floats,
         * output row oh from input row oh + kh - pad */
        copy_rows(row, xc + (ptrdiff_t)(kh - pad) * W + (kw - pad), OH, OW, W);
        return;
    }
    for (int oh = 0; oh < OH; oh++) {
        float *out = row + (size_t)oh * OW;      // (OW)
        if (oh < oh_lo || oh >= oh_hi) {
            memset(out, 0, (size_t)OW * sizeof *out);
            continue;
        }
        const float *in = xc + (size_t)(oh * stride - pad + kh) * W;   // (W) input row
        for (int ow = 0; ow < ow_lo; ow++)
            out[ow] = 0.0f;
        if (stride == 1 && ow_hi > ow_lo)   /* contiguous: block copies, 2-3x faster than
                                             * the element loop */
            copy_short(out + ow_lo, in + ow_lo - pad + kw, ow_hi - ow_lo);
        else
            for (int ow = ow_lo; ow < ow_hi; ow++)
                out[ow] = in[ow * stride - pad + kw];
        for (int ow = ow_hi; ow < OW; ow++)
            out[ow] = 0.0f;
    }
}

static void im2col_rows(void *ctx, long lo, long hi)
{
    const conv_task *t = ctx;
    int KH = t->KH, KW = t->KW;
    /* (c, kh, kw) of row lo, then counted along: no divisions per row */
    int c = (int)(lo / (KH * KW)), kh = (int)(lo / KW % KH), kw = (int)(lo % KW);
    if (t->stride == 1 && t->pad == 0) {
        /* unpadded (cnn5): no row reads padding, so none of im2col_row's range checks; row
         * (c, kh, kw) copies input row oh + kh from column kw */
        const int W = t->W, OH = t->OH, OW = t->OW;
        const size_t P = (size_t)OH * OW, HW = (size_t)t->H * W;
        for (long r = lo; r < hi; r++) {
#if CONV_AVX2
            if (t->rows8)
                copy_rows8_avx2(t->out + (size_t)r * P, t->x + c * HW + (size_t)kh * W + kw, OH, OW, W);
            else
#endif
                copy_rows(t->out + (size_t)r * P, t->x + c * HW + (size_t)kh * W + kw, OH, OW, W);
            if (++kw == KW) {
                kw = 0;
                if (++kh == KH) {
                    kh = 0;
                    c++;
                }
            }
        }
        return;
    }
    for (long r = lo; r < hi; r++) {
        im2col_row(t, r, c, kh, kw);
        if (++kw == KW) {
            kw = 0;
            if (++kh == KH) {
                kh = 0;
                c++;
            }
        }
    }
}

/* Whether the unpadded loops' rows take the AVX2 copies and adds: 8k floats, short of the
 * library copy (64), and a CPU with AVX2 */
static int rows8(const conv_task *t)
{
    return CONV_AVX2 && t->stride == 1 && t->pad == 0 && t->OW % 8 == 0 && t->OW < 64 &&
           knob_kernel_isa() >= KNOB_ISA_AVX2;
}

void knob_im2col(const float *x, int C, int H, int W, int KH, int KW, int stride, int pad,
                 float *cols)
{
    /* x (C, H, W) -> cols (C*KH*KW, OH*OW) */
    conv_task t = {x, cols, C, H, W, KH, KW, stride, pad, knob_conv_out_size(H, KH, stride, pad),
                   knob_conv_out_size(W, KW, stride, pad), 0};
    t.rows8 = rows8(&t);
    knob_par_items((long)C * KH * KW, (double)t.OH * t.OW, im2col_rows, &t);
}

/* input channels [lo, hi): the rows of channel c add only into dx plane c */
static void col2im_channels(void *ctx, long lo, long hi)
{
    const conv_task *t = ctx;
    int H = t->H, W = t->W, KH = t->KH, KW = t->KW, stride = t->stride, pad = t->pad;
    int OH = t->OH, OW = t->OW;
    size_t P = (size_t)OH * OW;
    const float *dcols = t->x;
    float *dx = t->out;
    if (stride == 1 && pad == 0) {
        /* unpadded: every output row adds into input row oh + kh from column kw, with none of
         * the range checks below, (kh, kw) in the same order */
        for (int c = (int)lo; c < (int)hi; c++) {
            float *dxc = dx + (size_t)c * H * W;     // (H, W)
            const float *g = dcols + (size_t)c * KH * KW * P;
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++) {
                    float *out = dxc + (size_t)kh * W + kw;
#if CONV_AVX2
                    if (t->rows8) {
                        add_rows8_avx2(out, g, OH, OW, W);
                        g += P;
                        continue;
                    }
#endif
                    for (int oh = 0; oh < OH; oh++, g += OW, out += W)
                        add_short(out, g, OW);
                }
        }
        return;
    }
    for (int c = (int)lo; c < (int)hi; c++) {
        float *dxc = dx + (size_t)c * H * W;          // (H, W)
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++) {
                const float *row = dcols + ((size_t)(c * KH + kh) * KW + kw) * P;   // (OH, OW)
                int oh_lo, oh_hi, ow_lo, ow_hi;
                valid_range(H, kh, stride, pad, OH, &oh_lo, &oh_hi);
                valid_range(W, kw, stride, pad, OW, &ow_lo, &ow_hi);
                for (int oh = oh_lo; oh < oh_hi; oh++) {
                    const float *g = row + (size_t)oh * OW;   // (OW)
                    float *out = dxc + (size_t)(oh * stride - pad + kh) * W;   // (W) input row
                    if (stride == 1) {   /* distinct ow add into distinct out */
                        add_short(out + ow_lo + kw - pad, g + ow_lo, ow_hi - ow_lo);
                    } else {
                        for (int ow = ow_lo; ow < ow_hi; ow++)
                            out[ow * stride - pad + kw] += g[ow];
                    }
                }
            }
    }
}

void knob_col2im(const float *dcols, int C, int H, int W, int KH, int KW, int stride, int pad,
                 float *dx)
{
    /* dcols (C*KH*KW, OH*OW) -> dx (C, H, W) += */
    conv_task t = {dcols, dx, C, H, W, KH, KW, stride, pad, knob_conv_out_size(H, KH, stride, pad),
                   knob_conv_out_size(W, KW, stride, pad), 0};
    t.rows8 = rows8(&t);
    knob_par_items(C, (double)KH * KW * t.OH * t.OW, col2im_channels, &t);
}

void knob_conv2d_naive(const float *x, const float *w, const float *b, int B, int C, int H, int W,
                       int OC, int KH, int KW, int stride, int pad, float *y)
{
    /* x (B, C, H, W), w (OC, C, KH, KW), b (OC) or NULL -> y (B, OC, OH, OW) */
    int OH = knob_conv_out_size(H, KH, stride, pad), OW = knob_conv_out_size(W, KW, stride, pad);
    for (int n = 0; n < B; n++)
        for (int oc = 0; oc < OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = b ? (double)b[oc] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < KH; kh++)
                            for (int kw = 0; kw < KW; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                    continue;
                                acc += (double)w[(((size_t)oc * C + c) * KH + kh) * KW + kw] *
                                       (double)x[(((size_t)n * C + c) * H + ih) * W + iw];
                            }
                    y[(((size_t)n * OC + oc) * OH + oh) * OW + ow] = (float)acc;
                }
}
