/* test_conv_moves.c: the data-movement kernels of the CNN step, bit for bit against double loops
 * written here: im2col (every element written, zeros where padding is read), col2im (each dx
 * element adds its contributions in (kh, kw) order, the order the bits of a training run depend
 * on), and 2x2 max pooling (first max on ties, the last NaN of a window if any) on widths that
 * exercise the eight- and four-wide paths and the tail. Shapes cover stride 1 unpadded (the
 * block-copy path, and the AVX2 one for rows of 8k floats), padded, "same", strided and rows
 * shorter than a block. Each runs with the CPU's kernels and again capped at portable. */
#include "test.h"

typedef struct {
    int C, H, W, KH, KW, stride, pad;
} move_case;

static const move_case move_cases[] = {
    {1, 28, 28, 5, 5, 1, 0},   /* cnn5 conv1: rows of 24 */
    {8, 12, 12, 5, 5, 1, 0},   /* cnn5 conv2: rows of 8 */
    {2, 6, 3, 2, 1, 1, 0},     /* rows of 3: shorter than a block */
    {2, 5, 5, 1, 4, 1, 0},     /* rows of 2 */
    {1, 4, 9, 4, 9, 1, 0},     /* kernel = input: rows of 1 */
    {3, 7, 10, 3, 5, 1, 0},    /* rows of 6: one block and an overlapping one */
    {2, 9, 13, 3, 3, 1, 0},    /* rows of 11 */
    {2, 5, 19, 2, 4, 1, 0},    /* rows of 16: whole blocks */
    {3, 6, 6, 3, 3, 1, 0},     /* rows of 4: one block */
    {1, 6, 80, 2, 3, 1, 0},    /* rows of 78: the long-row copy */
    {3, 8, 8, 3, 3, 1, 1},     /* same padding */
    {2, 7, 9, 5, 3, 1, 2},     /* padded, not same */
    {2, 9, 11, 5, 3, 3, 2},    /* strided and padded */
    {1, 2, 2, 2, 2, 1, 3},     /* whole rows of padding */
    {16, 16, 16, 3, 3, 1, 1},  /* enough rows for the threaded split */
};

static void fill(float *p, size_t n, knob_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = knob_rng_normal(rng);
}

TEST(conv_im2col_bits_match_double_loop)
{
    knob_rng rng;
    knob_rng_seed(&rng, 21);
    for (size_t k = 0; k < sizeof move_cases / sizeof move_cases[0]; k++) {
        const move_case *q = &move_cases[k];
        int OH = knob_conv_out_size(q->H, q->KH, q->stride, q->pad), OW = knob_conv_out_size(q->W, q->KW, q->stride, q->pad);
        size_t nx = (size_t)q->C * q->H * q->W, P = (size_t)OH * OW, nc = (size_t)q->C * q->KH * q->KW * P;
        float *x = knob_malloc(nx * sizeof *x), *got = knob_malloc(nc * sizeof *got), *want = knob_malloc(nc * sizeof *want);
        KNOB_ASSERT(x && got && want);
        fill(x, nx, &rng);
        for (size_t i = 0; i < nc; i++)
            got[i] = NAN;   /* every element must be written */
        for (int c = 0; c < q->C; c++)
            for (int kh = 0; kh < q->KH; kh++)
                for (int kw = 0; kw < q->KW; kw++)
                    for (int oh = 0; oh < OH; oh++)
                        for (int ow = 0; ow < OW; ow++) {
                            int ih = oh * q->stride - q->pad + kh, iw = ow * q->stride - q->pad + kw;
                            int in = ih >= 0 && ih < q->H && iw >= 0 && iw < q->W;
                            want[((size_t)(c * q->KH + kh) * q->KW + kw) * P + (size_t)oh * OW + ow] =
                                in ? x[((size_t)c * q->H + ih) * q->W + iw] : 0.0f;
                        }
        for (int portable = 0; portable < 2; portable++) {   /* the CPU's copies, then the baseline's */
            knob_kernel_force(portable ? KNOB_ISA_PORTABLE : -1);
            knob_im2col(x, q->C, q->H, q->W, q->KH, q->KW, q->stride, q->pad, got);
            for (size_t i = 0; i < nc; i++)
                if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
                    test_fail_at(__FILE__, __LINE__, "case %zu%s: cols[%zu] = %.9g, want %.9g", k,
                                 portable ? " (portable)" : "", i, (double)got[i], (double)want[i]);
                    break;
                }
            for (size_t i = 0; i < nc; i++)
                got[i] = NAN;
        }
        knob_kernel_force(-1);
        knob_free(x);
        knob_free(got);
        knob_free(want);
    }
}

TEST(conv_col2im_bits_match_double_loop)
{
    knob_rng rng;
    knob_rng_seed(&rng, 22);
    for (size_t k = 0; k < sizeof move_cases / sizeof move_cases[0]; k++) {
        const move_case *q = &move_cases[k];
        int OH = knob_conv_out_size(q->H, q->KH, q->stride, q->pad), OW = knob_conv_out_size(q->W, q->KW, q->stride, q->pad);
        size_t nx = (size_t)q->C * q->H * q->W, P = (size_t)OH * OW, nc = (size_t)q->C * q->KH * q->KW * P;
        float *dcols = knob_malloc(nc * sizeof *dcols), *got = knob_malloc(nx * sizeof *got), *want = knob_malloc(nx * sizeof *want);
        float *dx0 = knob_malloc(nx * sizeof *dx0);
        KNOB_ASSERT(dcols && got && want && dx0);
        fill(dcols, nc, &rng);
        fill(dx0, nx, &rng);   /* col2im adds onto what dx holds */
        memcpy(want, dx0, nx * sizeof *want);
        /* in float, one add per contribution, (kh, kw) in order for every element */
        for (int c = 0; c < q->C; c++)
            for (int kh = 0; kh < q->KH; kh++)
                for (int kw = 0; kw < q->KW; kw++)
                    for (int oh = 0; oh < OH; oh++)
                        for (int ow = 0; ow < OW; ow++) {
                            int ih = oh * q->stride - q->pad + kh, iw = ow * q->stride - q->pad + kw;
                            if (ih >= 0 && ih < q->H && iw >= 0 && iw < q->W)
                                want[((size_t)c * q->H + ih) * q->W + iw] +=
                                    dcols[((size_t)(c * q->KH + kh) * q->KW + kw) * P + (size_t)oh * OW + ow];
                        }
        for (int portable = 0; portable < 2; portable++) {   /* the CPU's adds, then the baseline's */
            knob_kernel_force(portable ? KNOB_ISA_PORTABLE : -1);
            memcpy(got, dx0, nx * sizeof *got);
            knob_col2im(dcols, q->C, q->H, q->W, q->KH, q->KW, q->stride, q->pad, got);
            for (size_t i = 0; i < nx; i++)
                if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
                    test_fail_at(__FILE__, __LINE__, "case %zu%s: dx[%zu] = %.9g, want %.9g", k,
                                 portable ? " (portable)" : "", i, (double)got[i], (double)want[i]);
                    break;
                }
        }
        knob_kernel_force(-1);
        knob_free(dx0);
        knob_free(dcols);
        knob_free(got);
        knob_free(want);
    }
}

/* Index in its plane of window (i, j)'s pick: the last NaN if the window has one, else the
 * first maximum in row order. */
static int window_pick(const float *x, int W, int k, int s, int i, int j)
{
    int best = -1, nan_at = -1;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            int m = (i * s + a) * W + j * s + b;
            if (isnan(x[m]))
                nan_at = m;
            else if (best < 0 || x[m] > x[best])
                best = m;
        }
    return nan_at >= 0 ? nan_at : best;
}

/* 2x2 stride 2 (and 3x3 stride 2 for the general path) on planes of odd and even sizes, with
 * ties (values from a few integers, and +0 / -0), infinities and NaNs; y must be the picked
 * element's bits and backward must route each dy (distinct values) to the picked element only. */
TEST(pool_max_picks_match_scan)
{
    static const int dims[][2] = {{2, 2}, {3, 5}, {8, 8}, {9, 17}, {24, 24}, {5, 26}, {11, 10}};
    static const float vals[] = {0.0f, -0.0f, 1.0f, 2.0f, -3.0f, INFINITY, -INFINITY, NAN, 2.0f, 1.0f};
    knob_rng rng;
    knob_rng_seed(&rng, 23);
    for (int run = 0; run < 4; run++)   /* k 2 and 3, each with the CPU's kernels and portable */
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
            int k = run % 2 ? 3 : 2, s = 2, H = dims[d][0], W = dims[d][1], B = 2, C = 3;
            knob_kernel_force(run >= 2 ? KNOB_ISA_PORTABLE : -1);
            if (k > H || k > W)
                continue;
            knob_err err;
            knob_params P;
            knob_params_init(&P);
            knob_tensor *tx = knob_params_add(&P, "x", 4, (int[]){B, C, H, W}, &err);
            CHECK_OK(knob_params_alloc(&P, &err));
            knob_graph *g = knob_graph_new(&err);
            knob_node *y = knob_maxpool2d(g, knob_param(g, tx), k, s);
            knob_node *r = y ? knob_input(g, "r", 4, knob_node_tensor(y)->shape) : NULL;
            knob_node *loss = knob_sum_all(g, knob_mul(g, y, r));
            CHECK_OK(knob_graph_compile(g, &err));
            if (test_failed_now) {
                knob_graph_free(g);
                knob_params_free(&P);
                return;
            }
            /* planes in turn: a few values with NaNs, a few values (ties) without, all normal */
            for (size_t i = 0; i < tx->n_elems; i++) {
                size_t plane = i / ((size_t)H * W);
                tx->data[i] = plane % 3 == 2 ? knob_rng_normal(&rng)
                            : vals[knob_rng_below(&rng, plane % 3 == 0 ? 10 : 7)];
            }
            const knob_tensor *yt = knob_node_tensor(y);
            float *R = knob_node_data(r);
            for (size_t i = 0; i < yt->n_elems; i++)
                R[i] = (float)(i + 1);   /* distinct: dx shows which window routed where */
            knob_params_zero_grad(&P);
            CHECK_OK(knob_graph_forward(g, &err));
            knob_graph_backward(g, loss);
            int OH = yt->shape[2], OW = yt->shape[3], bad = 0;
            float *dx = knob_calloc(tx->n_elems, sizeof *dx);
            KNOB_ASSERT(dx);
            for (int p = 0; p < B * C && !bad; p++) {
                const float *x = tx->data + (size_t)p * H * W;
                for (int i = 0; i < OH && !bad; i++)
                    for (int j = 0; j < OW && !bad; j++) {
                        size_t o = ((size_t)p * OH + i) * OW + j;
                        int m = window_pick(x, W, k, s, i, j);
                        dx[(size_t)p * H * W + m] += R[o];
                        if (memcmp(&yt->data[o], &x[m], sizeof(float)) != 0) {
                            test_fail_at(__FILE__, __LINE__, "k%d %dx%d: y[%zu] = %.9g, want x[%d] = %.9g", k, H, W,
                                         o, (double)yt->data[o], m, (double)x[m]);
                            bad = 1;
                        }
                    }
            }
            for (size_t i = 0; i < tx->n_elems && !bad; i++)
                if (tx->grad[i] != dx[i]) {
                    test_fail_at(__FILE__, __LINE__, "k%d %dx%d: dx[%zu] = %.9g, want %.9g", k, H, W, i,
                                 (double)tx->grad[i], (double)dx[i]);
                    bad = 1;
                }
            knob_free(dx);
            knob_graph_free(g);
            knob_params_free(&P);
        }
    knob_kernel_force(-1);
}
