/* test_ops_conv.c: conv2d, maxpool2d and avgpool2d. Gradient checks (GRADCHECK cases, run by
 * gradcheck_every_op), values against hand-derived numbers, the im2col path against the naive
 * direct convolution (src/kernels/conv.c) on random shapes, backward against the adjoint identity,
 * shape errors, and the no-allocation guarantee of a training step. */
#include "gradcheck.h"

/* ------------------------------------------------------------------------------------------------
 * Gradient checks */

GRADCHECK(KNOB_OP_CONV2D, conv_odd_bias_s1_p0)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 3, 5, 4}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 4, (int[]){4, 3, 3, 2}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){4}, GC_NORMAL);
    return knob_conv2d(c->g, x, w, b, 1, 0);
}

GRADCHECK(KNOB_OP_CONV2D, conv_odd_bias_s2_p1)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 3, 5, 4}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 4, (int[]){4, 3, 3, 2}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){4}, GC_NORMAL);
    return knob_conv2d(c->g, x, w, b, 2, 1);
}

GRADCHECK(KNOB_OP_CONV2D, conv_nobias_s1_p1)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){1, 2, 4, 5}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 4, (int[]){3, 2, 3, 3}, GC_NORMAL);
    return knob_conv2d(c->g, x, w, NULL, 1, 1);
}

GRADCHECK(KNOB_OP_CONV2D, conv_nobias_s2_p0)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 2, 7, 6}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 4, (int[]){2, 2, 3, 3}, GC_NORMAL);
    return knob_conv2d(c->g, x, w, NULL, 2, 0);
}

GRADCHECK(KNOB_OP_CONV2D, conv_s3_p2_uneven)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){1, 2, 6, 5}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 4, (int[]){2, 2, 2, 3}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){2}, GC_NORMAL);
    return knob_conv2d(c->g, x, w, b, 3, 2);
}

/* 1x1, stride 1, pad 0: the direct path (no columns) */
GRADCHECK(KNOB_OP_CONV2D, conv_1x1_direct)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 3, 3, 4}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 4, (int[]){5, 3, 1, 1}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){5}, GC_NORMAL);
    return knob_conv2d(c->g, x, w, b, 1, 0);
}

/* 1x1 with stride and padding goes through im2col */
GRADCHECK(KNOB_OP_CONV2D, conv_1x1_s2_p1)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 3, 5, 4}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 4, (int[]){2, 3, 1, 1}, GC_NORMAL);
    return knob_conv2d(c->g, x, w, NULL, 2, 1);
}

GRADCHECK(KNOB_OP_CONV2D, conv_c1_oc1)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){3, 1, 4, 5}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 4, (int[]){1, 1, 2, 3}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){1}, GC_NORMAL);
    return knob_conv2d(c->g, x, w, b, 1, 0);
}

/* kernel as large as the padded input: one output per channel, most taps in the padding */
GRADCHECK(KNOB_OP_CONV2D, conv_kernel_fills_padded_input)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 2, 3, 2}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 4, (int[]){3, 2, 5, 4}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){3}, GC_NORMAL);
    return knob_conv2d(c->g, x, w, b, 1, 1);
}

GRADCHECK(KNOB_OP_MAXPOOL2D, pool_max_k2_s2)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 3, 4, 4}, GC_DISTINCT);
    return knob_maxpool2d(c->g, x, 2, 2);
}

GRADCHECK(KNOB_OP_MAXPOOL2D, pool_max_overlap_k3_s1)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){1, 2, 5, 6}, GC_DISTINCT);
    return knob_maxpool2d(c->g, x, 3, 1);
}

/* odd sizes: the last row and column are reached by no window */
GRADCHECK(KNOB_OP_MAXPOOL2D, pool_max_odd_k2_s2)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 1, 7, 5}, GC_DISTINCT);
    return knob_maxpool2d(c->g, x, 2, 2);
}

GRADCHECK(KNOB_OP_MAXPOOL2D, pool_max_overlap_k3_s2)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){1, 2, 7, 8}, GC_DISTINCT);
    return knob_maxpool2d(c->g, x, 3, 2);
}

GRADCHECK(KNOB_OP_AVGPOOL2D, pool_avg_k2_s2)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 3, 4, 4}, GC_NORMAL);
    return knob_avgpool2d(c->g, x, 2, 2);
}

GRADCHECK(KNOB_OP_AVGPOOL2D, pool_avg_overlap_k3_s1)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){1, 2, 5, 6}, GC_NORMAL);
    return knob_avgpool2d(c->g, x, 3, 1);
}

/* stride larger than the window: gaps between windows get no gradient */
GRADCHECK(KNOB_OP_AVGPOOL2D, pool_avg_gaps_k2_s3)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 2, 5, 7}, GC_NORMAL);
    return knob_avgpool2d(c->g, x, 2, 3);
}

/* ------------------------------------------------------------------------------------------------
 * Helpers: a graph whose leaves are parameters, so backward fills their gradients. */

typedef struct {
    knob_params P;
    knob_graph *g;
    knob_tensor *t[3];     /* x, w, b (w and b absent for pooling) */
    knob_node *y, *loss;
} run;

/* Adds the parameters x (xs) and, when ws is not NULL, w (ws) and b (bs, when not NULL), with
 * values xv, wv, bv; returns nonzero on failure (reported). */
static int run_params(run *r, const int *xs, const float *xv, const int *ws, const float *wv,
                      const int *bs, const float *bv)
{
    knob_err err;
    memset(r, 0, sizeof *r);
    knob_params_init(&r->P);
    r->t[0] = knob_params_add(&r->P, "x", 4, xs, &err);
    if (ws)
        r->t[1] = knob_params_add(&r->P, "w", 4, ws, &err);
    if (bs)
        r->t[2] = knob_params_add(&r->P, "b", 1, bs, &err);
    if (!r->t[0] || (ws && !r->t[1]) || (bs && !r->t[2]) || knob_params_alloc(&r->P, &err) != KNOB_OK) {
        test_fail_at(__FILE__, __LINE__, "params: %s", err.msg);
        return 1;
    }
    const float *v[3] = {xv, wv, bv};
    for (int i = 0; i < 3; i++)
        if (r->t[i])
            memcpy(r->t[i]->data, v[i], r->t[i]->n_elems * sizeof(float));
    r->g = knob_graph_new(&err);
    return r->g == NULL;
}

/* loss = sum(y); compile, forward, backward. */
static int run_go(run *r)
{
    knob_err err;
    r->loss = knob_sum_all(r->g, r->y);
    if (knob_graph_compile(r->g, &err) != KNOB_OK || knob_graph_forward(r->g, &err) != KNOB_OK) {
        test_fail_at(__FILE__, __LINE__, "run: %s", err.msg);
        return 1;
    }
    knob_graph_backward(r->g, r->loss);
    return 0;
}

static int conv_run(run *r, const int *xs, const float *xv, const int *ws, const float *wv,
                    const float *bv, int stride, int pad)
{
    if (run_params(r, xs, xv, ws, wv, bv ? (int[]){ws[0]} : NULL, bv))
        return 1;
    knob_node *b = bv ? knob_param(r->g, r->t[2]) : NULL;
    r->y = knob_conv2d(r->g, knob_param(r->g, r->t[0]), knob_param(r->g, r->t[1]), b, stride, pad);
    return run_go(r);
}

static int pool_run(run *r, knob_op op, const int *xs, const float *xv, int k, int stride)
{
    if (run_params(r, xs, xv, NULL, NULL, NULL, NULL))
        return 1;
    knob_node *x = knob_param(r->g, r->t[0]);
    r->y = op == KNOB_OP_MAXPOOL2D ? knob_maxpool2d(r->g, x, k, stride) : knob_avgpool2d(r->g, x, k, stride);
    return run_go(r);
}

static void run_free(run *r)
{
    knob_graph_free(r->g);
    knob_params_free(&r->P);
}

/* Every element of got (n) equals want within a float's rounding of small sums. */
static void check_all(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - (double)want[i]) <= 1e-5 + 1e-5 * fabs((double)want[i]))) {
            test_fail_at(__FILE__, __LINE__, "%s[%zu] = %.9g, want %.9g", what, i, (double)got[i], (double)want[i]);
            return;
        }
}

/* ------------------------------------------------------------------------------------------------
 * Values by hand */

/* x (3x3) = 1 2 3 / 4 5 6 / 7 8 9, w (2x2) = 1 2 / 3 4, b = 0.5, stride 1, pad 0:
 *   y00 = 1*1 + 2*2 + 3*4 + 4*5 = 37    y01 = 1*2 + 2*3 + 3*5 + 4*6 = 47
 *   y10 = 1*4 + 2*5 + 3*7 + 4*8 = 67    y11 = 1*5 + 2*6 + 3*8 + 4*9 = 77     (+ 0.5 each)
 * Backward from sum(y), so dy = 1 everywhere:
 *   dw[a][b] = sum of the 2x2 block of x at (a, b): 1+2+4+5 = 12, 2+3+5+6 = 16, 4+5+7+8 = 24,
 *              5+6+8+9 = 28;  db = 4 (four outputs);
 *   dx[i][j] = sum of the w taps that touch (i, j): corners take one tap (1, 2, 3, 4), edges two
 *              (1+2 = 3, 1+3 = 4, 2+4 = 6, 3+4 = 7), the centre all four (10). */
TEST(conv_hand_3x3_kernel_2x2)
{
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 2, 3, 4}, b[1] = {0.5f};
    run r;
    if (conv_run(&r, (int[]){1, 1, 3, 3}, x, (int[]){1, 1, 2, 2}, w, b, 1, 0) == 0) {
        const knob_tensor *y = knob_node_tensor(r.y);
        CHECK(y->n_dims == 4 && y->shape[0] == 1 && y->shape[1] == 1 && y->shape[2] == 2 && y->shape[3] == 2);
        check_all("y", y->data, (const float[]){37.5f, 47.5f, 67.5f, 77.5f}, 4);
        check_all("dw", r.t[1]->grad, (const float[]){12, 16, 24, 28}, 4);
        check_all("db", r.t[2]->grad, (const float[]){4}, 1);
        check_all("dx", r.t[0]->grad, (const float[]){1, 3, 2, 4, 10, 6, 3, 7, 4}, 9);
    }
    run_free(&r);
}

/* Two channels add: x c0 = 1 2 / 3 4, c1 = 10 20 / 30 40; w c0 = 1 0 / 0 0 (top-left tap),
 * c1 = 0 0 / 0 1 (bottom-right tap): y = 1 + 40 = 41, a single output. */
TEST(conv_hand_channels_add)
{
    const float x[8] = {1, 2, 3, 4, 10, 20, 30, 40}, w[8] = {1, 0, 0, 0, 0, 0, 0, 1};
    run r;
    if (conv_run(&r, (int[]){1, 2, 2, 2}, x, (int[]){1, 2, 2, 2}, w, NULL, 1, 0) == 0) {
        CHECK(knob_node_tensor(r.y)->n_elems == 1);
        check_all("y", knob_node_data(r.y), (const float[]){41}, 1);
        /* dw = x (each tap sees exactly one input), dx = w */
        check_all("dw", r.t[1]->grad, x, 8);
        check_all("dx", r.t[0]->grad, w, 8);
    }
    run_free(&r);
}

/* Padding 1 with a 1x1 kernel: x = 1 2 / 3 4, w = 2, b = 1 -> a 4x4 output whose border is the
 * bias alone (the kernel only sees padding there) and whose inside is 2x + 1 = 3 5 / 7 9. */
TEST(conv_hand_pad1_1x1)
{
    const float x[4] = {1, 2, 3, 4}, w[1] = {2}, b[1] = {1};
    run r;
    if (conv_run(&r, (int[]){1, 1, 2, 2}, x, (int[]){1, 1, 1, 1}, w, b, 1, 1) == 0) {
        const knob_tensor *y = knob_node_tensor(r.y);
        CHECK(y->shape[2] == 4 && y->shape[3] == 4);
        check_all("y", y->data, (const float[]){1, 1, 1, 1, 1, 3, 5, 1, 1, 7, 9, 1, 1, 1, 1, 1}, 16);
        check_all("dw", r.t[1]->grad, (const float[]){10}, 1);   /* 1 + 2 + 3 + 4 */
        check_all("db", r.t[2]->grad, (const float[]){16}, 1);   /* 16 outputs */
        check_all("dx", r.t[0]->grad, (const float[]){2, 2, 2, 2}, 4);
    }
    run_free(&r);
}

/* Padding 1 with a 2x2 kernel: x = 1 2 / 3 4 inside a ring of zeros, w = 1 2 / 3 4 -> 3x3 output,
 * y[i][j] = sum_ab w[a][b] xpad[i+a][j+b]:
 *   y00 = 4*1 = 4             y01 = 3*1 + 4*2 = 11        y02 = 3*2 = 6
 *   y10 = 2*1 + 4*3 = 14      y11 = 1 + 4 + 9 + 16 = 30   y12 = 1*2 + 3*4 = 14
 *   y20 = 2*3 = 6             y21 = 1*3 + 2*4 = 11        y22 = 1*4 = 4 */
TEST(conv_hand_pad1_2x2)
{
    const float x[4] = {1, 2, 3, 4}, w[4] = {1, 2, 3, 4};
    run r;
    if (conv_run(&r, (int[]){1, 1, 2, 2}, x, (int[]){1, 1, 2, 2}, w, NULL, 1, 1) == 0) {
        check_all("y", knob_node_data(r.y), (const float[]){4, 11, 6, 14, 30, 14, 6, 11, 4}, 9);
        /* every input is seen by every tap once (3x3 outputs cover all shifts): dx = 1+2+3+4 */
        check_all("dx", r.t[0]->grad, (const float[]){10, 10, 10, 10}, 4);
        /* tap (a, b) sees the inputs in its reach: all four, since each tap slides over all of x */
        check_all("dw", r.t[1]->grad, (const float[]){10, 10, 10, 10}, 4);
    }
    run_free(&r);
}

/* Stride 2 on a 5x5 image x[i][j] = 5i + j + 1 (1..25), two 3x3 kernels, output 2x2 per channel:
 *   oc0: all ones; a 3x3 window of a linear image sums to 9 x its centre:
 *        centres x[1][1] = 7, x[1][3] = 9, x[3][1] = 17, x[3][3] = 19 -> 63 81 / 153 171
 *   oc1: only the top-right tap (0, 2), picking x[0][2] = 3, x[0][4] = 5, x[2][2] = 13, x[2][4] = 15 */
TEST(conv_hand_stride2)
{
    float x[25], w[18] = {0};
    for (int i = 0; i < 25; i++)
        x[i] = (float)(i + 1);
    for (int i = 0; i < 9; i++)
        w[i] = 1;
    w[9 + 2] = 1;
    run r;
    if (conv_run(&r, (int[]){1, 1, 5, 5}, x, (int[]){2, 1, 3, 3}, w, NULL, 2, 0) == 0) {
        const knob_tensor *y = knob_node_tensor(r.y);
        CHECK(y->shape[1] == 2 && y->shape[2] == 2 && y->shape[3] == 2);
        check_all("y", y->data, (const float[]){63, 81, 153, 171, 3, 5, 13, 15}, 8);
    }
    run_free(&r);
}

/* The 4x4 image used by the pooling tests, and its negation as a second channel:
 *     1 5 2 0
 *     3 4 8 1
 *     0 2 9 7
 *     6 1 3 4 */
static const float img4[16] = {1, 5, 2, 0, 3, 4, 8, 1, 0, 2, 9, 7, 6, 1, 3, 4};

/* k2 s2: c0 maxima 5 8 / 6 9 at (0,1) (1,2) (3,0) (2,2); c1 = -x, maxima are minus the minima
 * 1 0 / 0 3 at (0,0) (0,3) (2,0) (3,2). dy = 1 routes a 1 to each of those places. */
TEST(pool_max_hand_k2_s2)
{
    float x[32];
    for (int i = 0; i < 16; i++)
        x[i] = img4[i], x[16 + i] = -img4[i];
    run r;
    if (pool_run(&r, KNOB_OP_MAXPOOL2D, (int[]){1, 2, 4, 4}, x, 2, 2) == 0) {
        check_all("y", knob_node_data(r.y), (const float[]){5, 8, 6, 9, -1, 0, 0, -3}, 8);
        const float dx[32] = {0, 1, 0, 0,  0, 0, 1, 0,  0, 0, 1, 0,  1, 0, 0, 0,
                              1, 0, 0, 1,  0, 0, 0, 0,  1, 0, 0, 0,  0, 0, 1, 0};
        check_all("dx", r.t[0]->grad, dx, 32);
    }
    run_free(&r);
}

/* k3 s1: all four overlapping windows hold the 9 at (2,2), so y = 9 9 / 9 9 and backward routes
 * all four gradients into that one element: dx[2][2] = 4, the rest 0. */
TEST(pool_max_hand_overlap)
{
    run r;
    if (pool_run(&r, KNOB_OP_MAXPOOL2D, (int[]){1, 1, 4, 4}, img4, 3, 1) == 0) {
        check_all("y", knob_node_data(r.y), (const float[]){9, 9, 9, 9}, 4);
        float dx[16] = {0};
        dx[2 * 4 + 2] = 4;
        check_all("dx", r.t[0]->grad, dx, 16);
    }
    run_free(&r);
}

/* Ties go to the first element of the window in row-major order. */
TEST(pool_max_hand_ties)
{
    const float x[4] = {7, 7, 7, 7};
    run r;
    if (pool_run(&r, KNOB_OP_MAXPOOL2D, (int[]){1, 1, 2, 2}, x, 2, 2) == 0) {
        check_all("y", knob_node_data(r.y), (const float[]){7}, 1);
        check_all("dx", r.t[0]->grad, (const float[]){1, 0, 0, 0}, 4);
    }
    run_free(&r);
}

/* A NaN in a window wins (it must reach the loss, not vanish): windows {1, NaN, 3, 4} and
 * {5, 6, 7, 8} give NaN and 8, and the NaN's position receives that window's gradient. */
TEST(pool_max_nan_propagates)
{
    const float x[8] = {1, NAN, 5, 6, 3, 4, 7, 8};   /* (1, 1, 2, 4): two 2x2 windows side by side */
    run r;
    if (pool_run(&r, KNOB_OP_MAXPOOL2D, (int[]){1, 1, 2, 4}, x, 2, 2) == 0) {
        const float *y = knob_node_data(r.y);
        CHECK(isnan(y[0]));
        CHECK(y[1] == 8);
        check_all("dx", r.t[0]->grad, (const float[]){0, 1, 0, 0, 0, 0, 0, 1}, 8);
    }
    run_free(&r);
}

/* k2 s2: (1+5+3+4)/4 = 3.25, (2+0+8+1)/4 = 2.75, (0+2+6+1)/4 = 2.25, (9+7+3+4)/4 = 5.75;
 * every input lies in exactly one window: dx = 1/4. */
TEST(pool_avg_hand_k2_s2)
{
    run r;
    if (pool_run(&r, KNOB_OP_AVGPOOL2D, (int[]){1, 1, 4, 4}, img4, 2, 2) == 0) {
        check_all("y", knob_node_data(r.y), (const float[]){3.25f, 2.75f, 2.25f, 5.75f}, 4);
        float dx[16];
        for (int i = 0; i < 16; i++)
            dx[i] = 0.25f;
        check_all("dx", r.t[0]->grad, dx, 16);
    }
    run_free(&r);
}

/* k3 s1: window sums 1+5+2+3+4+8+0+2+9 = 34, 5+2+0+4+8+1+2+9+7 = 38, 3+4+8+0+2+9+6+1+3 = 36,
 * 4+8+1+2+9+7+1+3+4 = 39, each over 9. dx[i][j] = (windows covering (i, j)) / 9: corners 1, edges
 * 2, the inner 2x2 all 4. */
TEST(pool_avg_hand_overlap)
{
    run r;
    if (pool_run(&r, KNOB_OP_AVGPOOL2D, (int[]){1, 1, 4, 4}, img4, 3, 1) == 0) {
        check_all("y", knob_node_data(r.y), (const float[]){34 / 9.0f, 38 / 9.0f, 4, 39 / 9.0f}, 4);
        const float n[16] = {1, 2, 2, 1, 2, 4, 4, 2, 2, 4, 4, 2, 1, 2, 2, 1};
        float dx[16];
        for (int i = 0; i < 16; i++)
            dx[i] = n[i] / 9.0f;
        check_all("dx", r.t[0]->grad, dx, 16);
    }
    run_free(&r);
}

/* ------------------------------------------------------------------------------------------------
 * Against the naive direct convolution */

typedef struct {
    int B, C, H, W, OC, KH, KW, stride, pad, bias;
} conv_case;

static const conv_case naive_cases[] = {
    {2, 3, 5, 4, 4, 3, 2, 1, 0, 1},
    {2, 3, 5, 4, 4, 3, 2, 2, 1, 1},
    {1, 1, 7, 7, 1, 3, 3, 2, 2, 0},
    {3, 4, 6, 5, 2, 1, 1, 1, 0, 1},     /* 1x1 direct */
    {2, 2, 5, 5, 3, 1, 1, 2, 1, 0},     /* 1x1 through im2col */
    {1, 8, 9, 11, 6, 5, 3, 3, 2, 1},
    {2, 2, 8, 7, 3, 3, 3, 3, 1, 1},
    {1, 3, 4, 4, 2, 4, 4, 1, 0, 1},     /* kernel = input */
    {1, 2, 3, 3, 2, 5, 5, 1, 1, 0},     /* kernel = padded input */
    {1, 1, 1, 1, 1, 5, 5, 1, 2, 1},     /* most taps only ever see padding */
    {1, 1, 2, 2, 1, 2, 2, 1, 3, 1},     /* pad wider than the kernel: whole rows of padding */
    {2, 16, 16, 16, 8, 3, 3, 1, 1, 1},  /* large enough for the threaded im2col and col2im */
    {3, 4, 40, 40, 3, 5, 5, 1, 2, 1},   /* columns past 256 KiB: the per-lane buffers, not the thread's */
    {3, 2, 12, 12, 16, 5, 5, 1, 0, 1},  /* 16 channels: the weight gradient computed transposed */
};

static void fill_normal(float *p, size_t n, knob_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = knob_rng_normal(rng);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

TEST(conv_matches_naive)
{
    knob_rng rng;
    knob_rng_seed(&rng, 7);
    for (size_t k = 0; k < sizeof naive_cases / sizeof naive_cases[0]; k++) {
        const conv_case *q = &naive_cases[k];
        knob_err err;
        knob_graph *g = knob_graph_new(&err);
        knob_node *x = knob_input(g, "x", 4, (int[]){q->B, q->C, q->H, q->W});
        knob_node *w = knob_input(g, "w", 4, (int[]){q->OC, q->C, q->KH, q->KW});
        knob_node *b = q->bias ? knob_input(g, "b", 1, (int[]){q->OC}) : NULL;
        knob_node *y = knob_conv2d(g, x, w, b, q->stride, q->pad);
        CHECK_OK(knob_graph_compile(g, &err));
        if (test_failed_now) {
            knob_graph_free(g);
            return;
        }
        fill_normal(knob_node_data(x), knob_node_tensor(x)->n_elems, &rng);
        fill_normal(knob_node_data(w), knob_node_tensor(w)->n_elems, &rng);
        if (b)
            fill_normal(knob_node_data(b), knob_node_tensor(b)->n_elems, &rng);
        CHECK_OK(knob_graph_forward(g, &err));
        const knob_tensor *yt = knob_node_tensor(y);
        int OH = (q->H + 2 * q->pad - q->KH) / q->stride + 1, OW = (q->W + 2 * q->pad - q->KW) / q->stride + 1;
        CHECK(yt->shape[0] == q->B && yt->shape[1] == q->OC && yt->shape[2] == OH && yt->shape[3] == OW);
        float *want = knob_malloc(yt->n_elems * sizeof *want);
        KNOB_ASSERT(want);
        knob_conv2d_naive(knob_node_data(x), knob_node_data(w), b ? knob_node_data(b) : NULL, q->B, q->C,
                          q->H, q->W, q->OC, q->KH, q->KW, q->stride, q->pad, want);
        /* sums of C*KH*KW products of unit normals: float rounding well under 1e-4 */
        for (size_t i = 0; i < yt->n_elems; i++)
            if (!(fabs((double)yt->data[i] - (double)want[i]) <= 1e-4 + 1e-4 * fabs((double)want[i]))) {
                test_fail_at(__FILE__, __LINE__, "case %zu: y[%zu] = %.9g, naive %.9g", k, i, (double)yt->data[i], (double)want[i]);
                break;
            }
        knob_free(want);
        knob_graph_free(g);
    }
}

/* Backward against the adjoint identity, on the same shapes. y is linear in x (and in w), so for a
 * random upstream r, loss = sum(r * y), and any direction u:
 *     <dx, u> = <r, conv(u, w)>,   <dw, v> = <r, conv(x, v)>,   db[oc] = sum of r over channel oc
 * where conv is the naive kernel without bias. This checks dx, dw and db of the im2col path on
 * shapes too large for finite differences. */
TEST(conv_backward_adjoint)
{
    knob_rng rng;
    knob_rng_seed(&rng, 11);
    for (size_t k = 0; k < sizeof naive_cases / sizeof naive_cases[0]; k++) {
        const conv_case *q = &naive_cases[k];
        knob_err err;
        knob_params P;
        knob_params_init(&P);
        knob_tensor *tx = knob_params_add(&P, "x", 4, (int[]){q->B, q->C, q->H, q->W}, &err);
        knob_tensor *tw = knob_params_add(&P, "w", 4, (int[]){q->OC, q->C, q->KH, q->KW}, &err);
        knob_tensor *tb = knob_params_add(&P, "b", 1, (int[]){q->OC}, &err);
        CHECK_OK(knob_params_alloc(&P, &err));
        knob_graph *g = knob_graph_new(&err);
        knob_node *y = knob_conv2d(g, knob_param(g, tx), knob_param(g, tw), q->bias ? knob_param(g, tb) : NULL,
                                   q->stride, q->pad);
        knob_node *r = y ? knob_input(g, "r", 4, knob_node_tensor(y)->shape) : NULL;
        knob_node *loss = knob_sum_all(g, knob_mul(g, y, r));
        CHECK_OK(knob_graph_compile(g, &err));
        if (test_failed_now) {
            knob_graph_free(g);
            knob_params_free(&P);
            return;
        }
        const knob_tensor *yt = knob_node_tensor(y);
        fill_normal(tx->data, tx->n_elems, &rng);
        fill_normal(tw->data, tw->n_elems, &rng);
        fill_normal(tb->data, tb->n_elems, &rng);
        fill_normal(knob_node_data(r), yt->n_elems, &rng);
        CHECK_OK(knob_graph_forward(g, &err));
        knob_graph_backward(g, loss);

        size_t n = KNOB_MAX(yt->n_elems, KNOB_MAX(tx->n_elems, tw->n_elems));
        float *u = knob_malloc(n * sizeof *u), *cy = knob_malloc(yt->n_elems * sizeof *cy);
        KNOB_ASSERT(u && cy);
        const float *R = knob_node_data(r);
        /* <dx, u> = <r, conv(u, w)> */
        fill_normal(u, tx->n_elems, &rng);
        knob_conv2d_naive(u, tw->data, NULL, q->B, q->C, q->H, q->W, q->OC, q->KH, q->KW, q->stride, q->pad, cy);
        double lhs = dot(tx->grad, u, tx->n_elems), rhs = dot(R, cy, yt->n_elems);
        if (!(fabs(lhs - rhs) <= 1e-3 + 1e-4 * fabs(rhs)))
            test_fail_at(__FILE__, __LINE__, "case %zu: <dx, u> = %.9g, <r, conv(u, w)> = %.9g", k, lhs, rhs);
        /* <dw, v> = <r, conv(x, v)> */
        fill_normal(u, tw->n_elems, &rng);
        knob_conv2d_naive(tx->data, u, NULL, q->B, q->C, q->H, q->W, q->OC, q->KH, q->KW, q->stride, q->pad, cy);
        lhs = dot(tw->grad, u, tw->n_elems), rhs = dot(R, cy, yt->n_elems);
        if (!(fabs(lhs - rhs) <= 1e-3 + 1e-4 * fabs(rhs)))
            test_fail_at(__FILE__, __LINE__, "case %zu: <dw, v> = %.9g, <r, conv(x, v)> = %.9g", k, lhs, rhs);
        /* db[oc] = sum over images and positions of r; no bias leaves b's grad untouched (zero) */
        size_t P_ = yt->n_elems / ((size_t)q->B * q->OC);
        for (int oc = 0; oc < q->OC; oc++) {
            double s = 0;
            for (int bi = 0; bi < q->B; bi++)
                for (size_t p = 0; p < P_; p++)
                    s += (double)R[((size_t)bi * q->OC + oc) * P_ + p];
            if (!q->bias)
                s = 0;
            CHECK_NEAR(tb->grad[oc], s, 1e-4, 1e-4);
        }
        knob_free(u);
        knob_free(cy);
        knob_graph_free(g);
        knob_params_free(&P);
    }
}

/* im2col and col2im are adjoint: <im2col(x), c> = <x, col2im(c)>, on padded, strided shapes. */
TEST(conv_col2im_is_adjoint_of_im2col)
{
    knob_rng rng;
    knob_rng_seed(&rng, 3);
    for (size_t k = 0; k < sizeof naive_cases / sizeof naive_cases[0]; k++) {
        const conv_case *q = &naive_cases[k];
        int OH = knob_conv_out_size(q->H, q->KH, q->stride, q->pad);
        int OW = knob_conv_out_size(q->W, q->KW, q->stride, q->pad);
        size_t nx = (size_t)q->C * q->H * q->W, nc = (size_t)q->C * q->KH * q->KW * OH * OW;
        float *x = knob_malloc(nx * sizeof *x), *dx = knob_calloc(nx, sizeof *dx);
        float *cols = knob_malloc(nc * sizeof *cols), *c = knob_malloc(nc * sizeof *c);
        KNOB_ASSERT(x && dx && cols && c);
        fill_normal(x, nx, &rng);
        fill_normal(c, nc, &rng);
        knob_im2col(x, q->C, q->H, q->W, q->KH, q->KW, q->stride, q->pad, cols);
        knob_col2im(c, q->C, q->H, q->W, q->KH, q->KW, q->stride, q->pad, dx);
        CHECK_NEAR(dot(cols, c, nc), dot(x, dx, nx), 1e-5, 1e-4);
        knob_free(x);
        knob_free(dx);
        knob_free(cols);
        knob_free(c);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Shape errors: the builder records them, compile reports the first one. */

#define CONV_FAILS(xs, ws, bs, stride, pad, msg)                                              \
    do {                                                                                      \
        knob_err err;                                                                         \
        knob_graph *g = knob_graph_new(&err);                                                 \
        int xs_[] = xs, ws_[] = ws, bs_[] = bs;                                               \
        knob_node *x = knob_input(g, "x", (int)(sizeof xs_ / sizeof(int)), xs_);              \
        knob_node *w = knob_input(g, "w", (int)(sizeof ws_ / sizeof(int)), ws_);              \
        knob_node *b = bs_[0] ? knob_input(g, "b", (int)(sizeof bs_ / sizeof(int)), bs_) : NULL; \
        CHECK(knob_conv2d(g, x, w, b, stride, pad) == NULL);                                  \
        CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, msg);                   \
        knob_graph_free(g);                                                                   \
    } while (0)

#define DIMS(...) {__VA_ARGS__}

TEST(conv_rejects_bad_shapes)
{
    CONV_FAILS(DIMS(3, 5, 5), DIMS(4, 3, 3, 3), DIMS(0), 1, 0, "conv2d: x must be 4-D (B, C, H, W), got (3, 5, 5)");
    CONV_FAILS(DIMS(1, 3, 5, 5), DIMS(4, 27), DIMS(0), 1, 0, "conv2d: weight must be 4-D (OC, C, KH, KW), got (4, 27)");
    CONV_FAILS(DIMS(2, 3, 5, 4), DIMS(4, 1, 3, 3), DIMS(0), 1, 0, "conv2d: x has 3 channels, weight expects 1");
    CONV_FAILS(DIMS(1, 1, 3, 3), DIMS(1, 1, 5, 5), DIMS(0), 1, 0, "conv2d: kernel 5x5 is larger than the padded input 3x3");
    CONV_FAILS(DIMS(1, 1, 3, 8), DIMS(1, 1, 6, 2), DIMS(0), 1, 1, "conv2d: kernel 6x2 is larger than the padded input 5x10");
    CONV_FAILS(DIMS(1, 1, 5, 5), DIMS(1, 1, 3, 3), DIMS(0), 0, 0, "conv2d: stride is 0; must be at least 1");
    CONV_FAILS(DIMS(1, 1, 5, 5), DIMS(1, 1, 3, 3), DIMS(0), 1, -1, "conv2d: pad is -1; must be at least 0");
    CONV_FAILS(DIMS(1, 2, 5, 5), DIMS(4, 2, 3, 3), DIMS(3), 1, 0, "conv2d: bias must be (4), one per output channel, got (3)");
    CONV_FAILS(DIMS(1, 2, 5, 5), DIMS(4, 2, 3, 3), DIMS(1, 4), 1, 0, "conv2d: bias must be (4), one per output channel, got (1, 4)");
}

#define POOL_FAILS(builder, xs, k, stride, msg)                                               \
    do {                                                                                      \
        knob_err err;                                                                         \
        knob_graph *g = knob_graph_new(&err);                                                 \
        int xs_[] = xs;                                                                       \
        knob_node *x = knob_input(g, "x", (int)(sizeof xs_ / sizeof(int)), xs_);              \
        CHECK(builder(g, x, k, stride) == NULL);                                              \
        CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, msg);                   \
        knob_graph_free(g);                                                                   \
    } while (0)

TEST(pool_rejects_bad_shapes)
{
    POOL_FAILS(knob_maxpool2d, DIMS(2, 8, 8), 2, 2, "maxpool2d: x must be 4-D (B, C, H, W), got (2, 8, 8)");
    POOL_FAILS(knob_avgpool2d, DIMS(2, 8, 8), 2, 2, "avgpool2d: x must be 4-D (B, C, H, W), got (2, 8, 8)");
    POOL_FAILS(knob_maxpool2d, DIMS(1, 1, 4, 4), 0, 1, "maxpool2d: window is 0; must be at least 1");
    POOL_FAILS(knob_avgpool2d, DIMS(1, 1, 4, 4), 2, 0, "avgpool2d: stride is 0; must be at least 1");
    POOL_FAILS(knob_maxpool2d, DIMS(1, 1, 3, 8), 4, 1, "maxpool2d: window 4x4 is larger than the input 3x8");
    POOL_FAILS(knob_avgpool2d, DIMS(1, 1, 8, 2), 3, 3, "avgpool2d: window 3x3 is larger than the input 8x2");
}

/* ------------------------------------------------------------------------------------------------
 * Backward accumulates (+=): x feeds four ops, and a second backward without zeroing the parameter
 * grads doubles every one of them. Catches a path that overwrites its input's grad. */

TEST(conv_pool_grads_accumulate)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *tx = knob_params_add(&P, "x", 4, (int[]){2, 3, 6, 6}, &err);
    knob_tensor *tw1 = knob_params_add(&P, "w1", 4, (int[]){4, 3, 1, 1}, &err);
    knob_tensor *tb1 = knob_params_add(&P, "b1", 1, (int[]){4}, &err);
    knob_tensor *tw2 = knob_params_add(&P, "w2", 4, (int[]){2, 3, 3, 3}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    knob_graph *g = knob_graph_new(&err);
    knob_node *x = knob_param(g, tx);
    knob_node *l1 = knob_sum_all(g, knob_conv2d(g, x, knob_param(g, tw1), knob_param(g, tb1), 1, 0));  /* direct */
    knob_node *l2 = knob_sum_all(g, knob_conv2d(g, x, knob_param(g, tw2), NULL, 2, 1));              /* im2col */
    knob_node *l3 = knob_sum_all(g, knob_maxpool2d(g, x, 3, 1));
    knob_node *l4 = knob_sum_all(g, knob_avgpool2d(g, x, 2, 2));
    knob_node *loss = knob_add(g, knob_add(g, l1, l2), knob_add(g, l3, l4));
    CHECK_OK(knob_graph_compile(g, &err));
    if (!test_failed_now) {
        knob_rng rng;
        knob_rng_seed(&rng, 9);
        fill_normal(P.data, P.n_elems, &rng);
        float *first = knob_malloc(P.n_elems * sizeof *first);
        KNOB_ASSERT(first);
        CHECK_OK(knob_graph_forward(g, &err));
        knob_graph_backward(g, loss);
        memcpy(first, P.grad, P.n_elems * sizeof *first);
        knob_graph_backward(g, loss);
        for (size_t i = 0; i < P.n_elems; i++)
            if (!(fabs((double)P.grad[i] - 2.0 * (double)first[i]) <= 1e-5 + 1e-5 * fabs(2.0 * (double)first[i]))) {
                test_fail_at(__FILE__, __LINE__, "grad[%zu] after two passes = %.9g, want 2 x %.9g",
                             i, (double)P.grad[i], (double)first[i]);
                break;
            }
        knob_free(first);
    }
    knob_graph_free(g);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Same bits for any thread count: sizes large enough that im2col and col2im run threaded, with
 * overlapping pooling windows. Outputs and grads after one step with 1 thread and with 4 must be
 * byte-identical (knob_gemm promises the same for itself). */

TEST(conv_pool_same_bits_any_thread_count)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *tx = knob_params_add(&P, "x", 4, (int[]){2, 16, 16, 16}, &err);
    knob_tensor *tw = knob_params_add(&P, "w", 4, (int[]){8, 16, 3, 3}, &err);
    knob_tensor *tb = knob_params_add(&P, "b", 1, (int[]){8}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    knob_graph *g = knob_graph_new(&err);
    knob_node *h = knob_conv2d(g, knob_param(g, tx), knob_param(g, tw), knob_param(g, tb), 1, 1);
    knob_node *m = knob_maxpool2d(g, h, 3, 1);
    knob_node *a = knob_avgpool2d(g, h, 3, 2);
    knob_node *r = m ? knob_input(g, "r", 4, knob_node_tensor(m)->shape) : NULL;
    knob_node *loss = knob_add(g, knob_sum_all(g, knob_mul(g, m, r)), knob_sum_all(g, a));
    CHECK_OK(knob_graph_compile(g, &err));
    if (!test_failed_now) {
        knob_rng rng;
        knob_rng_seed(&rng, 13);
        fill_normal(P.data, P.n_elems, &rng);
        fill_normal(knob_node_data(r), knob_node_tensor(r)->n_elems, &rng);
        size_t n_out = knob_node_tensor(m)->n_elems;
        float *out1 = knob_malloc(n_out * sizeof(float)), *grad1 = knob_malloc(P.n_elems * sizeof(float));
        KNOB_ASSERT(out1 && grad1);
        for (int pass = 0; pass < 2; pass++) {
            knob_threads_set(pass == 0 ? 1 : 4);
            knob_params_zero_grad(&P);
            CHECK_OK(knob_graph_forward(g, &err));
            knob_graph_backward(g, loss);
            if (pass == 0) {
                memcpy(out1, knob_node_data(m), n_out * sizeof(float));
                memcpy(grad1, P.grad, P.n_elems * sizeof(float));
            }
        }
        knob_threads_set(0);
        CHECK(memcmp(out1, knob_node_data(m), n_out * sizeof(float)) == 0);
        CHECK(memcmp(grad1, P.grad, P.n_elems * sizeof(float)) == 0);
        knob_free(out1);
        knob_free(grad1);
    }
    knob_graph_free(g);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * A training step allocates nothing: all scratch was planned at compile. */

TEST(conv_pool_step_allocates_nothing)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *tx = knob_params_add(&P, "x", 4, (int[]){2, 3, 8, 8}, &err);
    knob_tensor *tw = knob_params_add(&P, "w", 4, (int[]){4, 3, 3, 3}, &err);
    knob_tensor *tb = knob_params_add(&P, "b", 1, (int[]){4}, &err);
    knob_tensor *tw2 = knob_params_add(&P, "w2", 4, (int[]){5, 4, 1, 1}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    knob_graph *g = knob_graph_new(&err);
    knob_rng rng;
    knob_rng_seed(&rng, 5);
    knob_node *h = knob_relu(g, knob_conv2d(g, knob_param(g, tx), knob_param(g, tw), knob_param(g, tb), 1, 1));
    h = knob_maxpool2d(g, h, 2, 2);                        // (2, 4, 4, 4)
    h = knob_conv2d(g, h, knob_param(g, tw2), NULL, 1, 0);   // (2, 5, 4, 4), direct 1x1
    h = knob_avgpool2d(g, h, 2, 2);                        // (2, 5, 2, 2)
    knob_node *loss = knob_sum_all(g, h);
    CHECK_OK(knob_graph_compile(g, &err));
    if (!test_failed_now) {
        fill_normal(P.data, P.n_elems, &rng);
        long before = knob_alloc_count();
        for (int step = 0; step < 2; step++) {
            CHECK_OK(knob_graph_forward(g, &err));
            knob_graph_backward(g, loss);
        }
        CHECK(knob_alloc_count() == before);
        /* and the step did produce gradients everywhere */
        double s = 0;
        for (size_t i = 0; i < P.n_elems; i++)
            s += fabs(P.grad[i]);
        CHECK(s > 0);
    }
    knob_graph_free(g);
    knob_params_free(&P);
}
