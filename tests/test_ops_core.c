/* test_ops_core.c: gradient-check cases and hand-derived value tests for the elementwise, matmul,
 * reduce, softmax, loss and shape ops; and the graph's own promises (sticky build errors, views,
 * no allocation in a step, a two-layer net's hand-derived gradient). */
#include "gradcheck.h"

#include <limits.h>

/* ------------------------------------------------------------------------------------------------
 * Gradient checks */

#define GC_BINARY(OP, fn, name, init_b, na, sa, nb, sb)                                       \
    GRADCHECK(OP, name)                                                                       \
    {                                                                                         \
        knob_node *a = gc_param(c, "a", na, (int[])sa, GC_NORMAL);                            \
        knob_node *b = gc_param(c, "b", nb, (int[])sb, init_b);                               \
        return fn(c->g, a, b);                                                                \
    }

#define S(...) {__VA_ARGS__}
GC_BINARY(KNOB_OP_ADD, knob_add, add_same, GC_NORMAL, 2, S(3, 4), 2, S(3, 4))
GC_BINARY(KNOB_OP_ADD, knob_add, add_bcast_row, GC_NORMAL, 3, S(2, 3, 5), 1, S(5))
GC_BINARY(KNOB_OP_ADD, knob_add, add_bcast_both, GC_NORMAL, 3, S(2, 1, 5), 2, S(3, 1))
GC_BINARY(KNOB_OP_SUB, knob_sub, sub_same, GC_NORMAL, 1, S(7), 1, S(7))
GC_BINARY(KNOB_OP_SUB, knob_sub, sub_bcast_col, GC_NORMAL, 2, S(4, 3), 2, S(4, 1))
GC_BINARY(KNOB_OP_MUL, knob_mul, mul_same, GC_NORMAL, 2, S(3, 5), 2, S(3, 5))
GC_BINARY(KNOB_OP_MUL, knob_mul, mul_bcast_scalar, GC_NORMAL, 4, S(2, 1, 3, 2), 1, S(1))
GC_BINARY(KNOB_OP_DIV, knob_div, div_same, GC_POSITIVE, 2, S(2, 3), 2, S(2, 3))
GC_BINARY(KNOB_OP_DIV, knob_div, div_bcast, GC_POSITIVE, 3, S(3, 2, 4), 2, S(1, 4))

#define GC_UNARY(OP, expr, name, init, n, s)                                                  \
    GRADCHECK(OP, name)                                                                       \
    {                                                                                         \
        knob_node *x = gc_param(c, "x", n, (int[])s, init);                                   \
        return expr;                                                                          \
    }

GC_UNARY(KNOB_OP_SCALE, knob_scale(c->g, x, -2.5f), scale, GC_NORMAL, 2, S(3, 3))
GC_UNARY(KNOB_OP_EXP, knob_exp(c->g, x), exp, GC_NORMAL, 1, S(9))
GC_UNARY(KNOB_OP_LOG, knob_log(c->g, x), log, GC_POSITIVE, 2, S(1, 6))
GC_UNARY(KNOB_OP_SQRT, knob_sqrt(c->g, x), sqrt, GC_POSITIVE, 3, S(2, 1, 3))
GC_UNARY(KNOB_OP_ABS, knob_abs(c->g, x), abs, GC_AWAY, 1, S(11))
GC_UNARY(KNOB_OP_RELU, knob_relu(c->g, x), relu, GC_AWAY, 2, S(4, 5))
GC_UNARY(KNOB_OP_GELU, knob_gelu(c->g, x), gelu, GC_NORMAL, 2, S(5, 3))
GC_UNARY(KNOB_OP_SIGMOID, knob_sigmoid(c->g, x), sigmoid, GC_NORMAL, 1, S(8))
GC_UNARY(KNOB_OP_TANH, knob_tanh(c->g, x), tanh, GC_NORMAL, 2, S(2, 7))
GC_UNARY(KNOB_OP_SUM, knob_sum(c->g, x, 1, 0), sum_axis1, GC_NORMAL, 3, S(2, 3, 4))
GC_UNARY(KNOB_OP_SUM, knob_sum(c->g, x, -1, 1), sum_last_keepdim, GC_NORMAL, 2, S(3, 5))
GC_UNARY(KNOB_OP_SUM, knob_sum_all(c->g, x), sum_all, GC_NORMAL, 2, S(3, 2))
GC_UNARY(KNOB_OP_MEAN, knob_mean(c->g, x, 0, 0), mean_axis0, GC_NORMAL, 2, S(5, 3))
GC_UNARY(KNOB_OP_MEAN, knob_mean(c->g, x, 2, 1), mean_axis2_keepdim, GC_NORMAL, 3, S(2, 1, 3))
GC_UNARY(KNOB_OP_SOFTMAX, knob_softmax(c->g, x), softmax, GC_NORMAL, 3, S(2, 3, 5))
GC_UNARY(KNOB_OP_SOFTMAX, knob_softmax(c->g, x), softmax_width1, GC_NORMAL, 2, S(3, 1))
GC_UNARY(KNOB_OP_LOG_SOFTMAX, knob_log_softmax(c->g, x), log_softmax, GC_NORMAL, 2, S(4, 6))
GC_UNARY(KNOB_OP_RESHAPE, knob_exp(c->g, knob_reshape(c->g, x, 2, (int[]){-1, 2})), reshape, GC_NORMAL, 3, S(3, 2, 2))
GC_UNARY(KNOB_OP_TRANSPOSE, knob_transpose(c->g, x, 0, 2), transpose_02, GC_NORMAL, 3, S(2, 3, 4))
GC_UNARY(KNOB_OP_TRANSPOSE, knob_transpose(c->g, x, -1, -2), transpose_last2, GC_NORMAL, 2, S(3, 5))
GC_UNARY(KNOB_OP_PERMUTE, knob_permute(c->g, x, (int[]){2, 0, 3, 1}), permute4, GC_NORMAL, 4, S(2, 3, 1, 4))
GC_UNARY(KNOB_OP_SLICE, knob_slice(c->g, x, 1, 1, 3), slice_mid, GC_NORMAL, 3, S(2, 5, 3))
GC_UNARY(KNOB_OP_SLICE, knob_slice(c->g, x, 0, 0, 1), slice_first, GC_NORMAL, 2, S(3, 4))

#define GC_MATMUL(name, ta, tb, na, sa, nb, sb)                                               \
    GRADCHECK(KNOB_OP_MATMUL, name)                                                           \
    {                                                                                         \
        knob_node *a = gc_param(c, "a", na, (int[])sa, GC_NORMAL);                            \
        knob_node *b = gc_param(c, "b", nb, (int[])sb, GC_NORMAL);                            \
        return knob_matmul(c->g, a, b, ta, tb);                                               \
    }

GC_MATMUL(matmul_nn, 0, 0, 2, S(3, 4), 2, S(4, 5))
GC_MATMUL(matmul_nt, 0, 1, 2, S(3, 4), 2, S(5, 4))
GC_MATMUL(matmul_tn, 1, 0, 2, S(4, 3), 2, S(4, 5))
GC_MATMUL(matmul_tt, 1, 1, 2, S(4, 3), 2, S(5, 4))
GC_MATMUL(matmul_batched_shared_b, 0, 1, 3, S(2, 3, 4), 2, S(5, 4))
GC_MATMUL(matmul_batched_ta_shared_b, 1, 0, 3, S(2, 4, 3), 2, S(4, 2))
GC_MATMUL(matmul_batched_both, 0, 0, 4, S(2, 1, 3, 2), 4, S(2, 1, 2, 3))
GC_MATMUL(matmul_batched_tt, 1, 1, 3, S(3, 2, 1), 3, S(3, 4, 2))
GC_MATMUL(matmul_vector, 0, 0, 2, S(1, 5), 2, S(5, 1))

/* with a bias (N) on every row: the shared-b product, the batched one, a transposed a */
#define GC_MATMUL_BIAS(name, ta, tb, na, sa, nb, sb, n)                                       \
    GRADCHECK(KNOB_OP_MATMUL, name)                                                           \
    {                                                                                         \
        knob_node *a = gc_param(c, "a", na, (int[])sa, GC_NORMAL);                            \
        knob_node *b = gc_param(c, "b", nb, (int[])sb, GC_NORMAL);                            \
        knob_node *bias = gc_param(c, "bias", 1, (int[]){n}, GC_NORMAL);                      \
        return knob_matmul_bias(c->g, a, b, bias, ta, tb, KNOB_PREC_F32);                     \
    }

GC_MATMUL_BIAS(matmul_bias_linear, 0, 1, 3, S(2, 3, 4), 2, S(5, 4), 5)
GC_MATMUL_BIAS(matmul_bias_batched, 0, 0, 3, S(2, 3, 2), 3, S(2, 2, 4), 4)
GC_MATMUL_BIAS(matmul_bias_tn, 1, 0, 2, S(4, 3), 2, S(4, 5), 5)

GRADCHECK(KNOB_OP_CONCAT, concat_axis1)
{
    knob_node *a = gc_param(c, "a", 3, (int[]){2, 3, 2}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 3, (int[]){2, 1, 2}, GC_NORMAL);
    knob_node *d = gc_param(c, "d", 3, (int[]){2, 2, 2}, GC_NORMAL);
    return knob_concat(c->g, 3, (knob_node *[]){a, b, d}, 1);
}

GRADCHECK(KNOB_OP_CONCAT, concat_last)
{
    knob_node *a = gc_param(c, "a", 2, (int[]){3, 2}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 2, (int[]){3, 3}, GC_NORMAL);
    return knob_concat(c->g, 2, (knob_node *[]){a, b}, -1);
}

GRADCHECK(KNOB_OP_CROSS_ENTROPY, cross_entropy)
{
    knob_node *z = gc_param(c, "z", 2, (int[]){5, 7}, GC_NORMAL);
    knob_node *t = gc_index(c, "t", 1, (int[]){5}, 0, 7);
    return knob_cross_entropy(c->g, z, t, -1);
}

GRADCHECK(KNOB_OP_CROSS_ENTROPY, cross_entropy_3d_ignore)
{
    /* targets in [-1, 4): some rows are ignored (ignore_index -1) */
    knob_node *z = gc_param(c, "z", 3, (int[]){2, 4, 4}, GC_NORMAL);
    knob_node *t = gc_index(c, "t", 2, (int[]){2, 4}, -1, 4);
    return knob_cross_entropy(c->g, z, t, -1);
}

GRADCHECK(KNOB_OP_MSE, mse)
{
    knob_node *p = gc_param(c, "p", 2, (int[]){4, 3}, GC_NORMAL);
    knob_node *t = gc_param(c, "t", 2, (int[]){4, 3}, GC_NORMAL);
    return knob_mse(c->g, p, t);
}

GRADCHECK(KNOB_OP_MAE, mae)
{
    /* p - t stays away from 0: p in +-[0.1, 1] and t = 0 * p... use t positive, p negative */
    knob_node *p = gc_param(c, "p", 1, (int[]){6}, GC_AWAY);
    knob_node *t = gc_param(c, "t", 1, (int[]){6}, GC_POSITIVE);
    return knob_mae(c->g, knob_sub(c->g, p, knob_scale(c->g, t, 2.0f)), knob_scale(c->g, t, 0.0f));
}

/* Random shapes: binary ops on random broadcast-compatible pairs (1 to 4 dims, sizes 1 to 4, each
 * dim of either side randomly collapsed to 1) and batched matmuls with random sizes and transposes,
 * each drawn from a seeded generator so a failure names a reproducible case. */
static struct {
    int op, na, nb, sa[4], sb[4], ta, tb;
} rcase;

static knob_node *random_case(gc_ctx *c)
{
    knob_node *a = gc_param(c, "a", rcase.na, rcase.sa, GC_NORMAL);
    knob_node *b = gc_param(c, "b", rcase.nb, rcase.sb, rcase.op == KNOB_OP_DIV ? GC_POSITIVE : GC_NORMAL);
    switch (rcase.op) {
    case KNOB_OP_ADD: return knob_add(c->g, a, b);
    case KNOB_OP_SUB: return knob_sub(c->g, a, b);
    case KNOB_OP_MUL: return knob_mul(c->g, a, b);
    case KNOB_OP_DIV: return knob_div(c->g, a, b);
    default: return knob_matmul(c->g, a, b, rcase.ta, rcase.tb);
    }
}

TEST(gradcheck_random_shapes)
{
    knob_rng r;
    knob_rng_seed(&r, 2024);
    static const int binary_ops[4] = {KNOB_OP_ADD, KNOB_OP_SUB, KNOB_OP_MUL, KNOB_OP_DIV};
    for (int k = 0; k < 40; k++) {
        char name[64];
        memset(&rcase, 0, sizeof rcase);
        if (k < 28) {   /* broadcasting */
            rcase.op = binary_ops[k % 4];
            int n = 1 + (int)knob_rng_below(&r, 4);
            rcase.na = n;
            rcase.nb = 1 + (int)knob_rng_below(&r, (uint32_t)n);   /* b may have fewer dims */
            for (int i = 0; i < n; i++) {
                int d = 1 + (int)knob_rng_below(&r, 4);
                rcase.sa[i] = knob_rng_below(&r, 3) == 0 ? 1 : d;
                if (i >= n - rcase.nb)
                    rcase.sb[i - (n - rcase.nb)] = knob_rng_below(&r, 3) == 0 ? 1 : d;
            }
            if (knob_rng_below(&r, 2)) {   /* swap sides: a may be the smaller one */
                int na = rcase.na, sa[4];
                memcpy(sa, rcase.sa, sizeof sa);
                rcase.na = rcase.nb;
                memcpy(rcase.sa, rcase.sb, sizeof sa);
                rcase.nb = na;
                memcpy(rcase.sb, sa, sizeof sa);
            }
            snprintf(name, sizeof name, "random %s #%d", knob_op_name(rcase.op), k);
        } else {        /* matmul, batched or not */
            rcase.op = KNOB_OP_MATMUL;
            int M = 1 + (int)knob_rng_below(&r, 5), K = 1 + (int)knob_rng_below(&r, 5), N = 1 + (int)knob_rng_below(&r, 5);
            int batch = 1 + (int)knob_rng_below(&r, 3), shared = (int)knob_rng_below(&r, 2);
            rcase.ta = (int)knob_rng_below(&r, 2);
            rcase.tb = (int)knob_rng_below(&r, 2);
            rcase.na = 3;
            rcase.sa[0] = batch;
            rcase.sa[1] = rcase.ta ? K : M;
            rcase.sa[2] = rcase.ta ? M : K;
            rcase.nb = shared ? 2 : 3;
            int *sb = shared ? rcase.sb : rcase.sb + 1;
            rcase.sb[0] = batch;
            sb[0] = rcase.tb ? N : K;
            sb[1] = rcase.tb ? K : N;
            snprintf(name, sizeof name, "random matmul #%d", k);
        }
        gc_run(name, random_case, 5000 + (uint64_t)k);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Values against hand-derived numbers */

/* Builds the graph with a single leaf x = values, applies op, returns out->data after forward. */
static const float *run_unary(knob_graph **gp, knob_params *P, knob_node *(*op)(knob_graph *, knob_node *),
                              int n, const float *values)
{
    knob_err err;
    knob_params_init(P);
    knob_tensor *t = knob_params_add(P, "x", 1, &n, &err);
    KNOB_ASSERT(t && knob_params_alloc(P, &err) == KNOB_OK);
    memcpy(t->data, values, (size_t)n * sizeof(float));
    *gp = knob_graph_new(&err);
    knob_node *y = op(*gp, knob_param(*gp, t));
    if (knob_graph_compile(*gp, &err) != KNOB_OK || knob_graph_forward(*gp, &err) != KNOB_OK) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return NULL;
    }
    return knob_node_data(y);
}

/* The op table, its names and the enum come from one list (KNOB_OP_LIST): every op has a row, each
 * row has shape, forward and backward, and names are distinct. */
TEST(ops_table_from_one_list)
{
    CHECK(strcmp(knob_op_name(KNOB_OP_NONE), "leaf") == 0);
    CHECK(strcmp(knob_op_name(KNOB_OP_COUNT), "?") == 0);
    CHECK(strcmp(knob_op_name(KNOB_OP_LOG_SOFTMAX), "log_softmax") == 0);
    CHECK(knob_ops[KNOB_OP_MATMUL] == &knob_op_matmul && knob_ops[KNOB_OP_ATTENTION] == &knob_op_attention);
    for (int op = 1; op < KNOB_OP_COUNT; op++) {
        const knob_op_def *d = knob_ops[op];
        CHECK(d != NULL);
        if (!d)
            continue;
        CHECK(d->shape != NULL && d->forward != NULL && d->backward != NULL);
        for (int o = 1; o < op; o++)
            CHECK(strcmp(knob_op_name((knob_op)o), knob_op_name((knob_op)op)) != 0);
    }
}

TEST(ops_unary_values)
{
    const float x[4] = {-2.0f, -0.5f, 0.0f, 1.5f};
    knob_graph *g;
    knob_params P;
    const float *y;
    /* gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))), evaluated in double here */
    y = run_unary(&g, &P, knob_gelu, 4, x);
    for (int i = 0; y && i < 4; i++) {
        double v = x[i];
        double want = 0.5 * v * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
        CHECK_NEAR(y[i], want, 1e-6, 1e-7);
    }
    CHECK_NEAR(y[3], 1.39957158, 1e-6, 0);   /* tanh-GELU at 1.5, from the formula in double elsewhere */
    knob_graph_free(g);
    knob_params_free(&P);
    y = run_unary(&g, &P, knob_relu, 4, x);
    CHECK(y && y[0] == 0 && y[1] == 0 && y[2] == 0 && y[3] == 1.5f);
    knob_graph_free(g);
    knob_params_free(&P);
    y = run_unary(&g, &P, knob_sigmoid, 4, x);
    CHECK_NEAR(y[2], 0.5, 0, 1e-7);
    CHECK_NEAR(y[0], 1 / (1 + exp(2.0)), 1e-6, 0);
    knob_graph_free(g);
    knob_params_free(&P);
    y = run_unary(&g, &P, knob_softmax, 4, x);
    double z = exp(-2.0) + exp(-0.5) + exp(0.0) + exp(1.5);
    CHECK_NEAR(y[3], exp(1.5) / z, 1e-6, 0);
    CHECK_NEAR(y[0], exp(-2.0) / z, 1e-6, 0);
    knob_graph_free(g);
    knob_params_free(&P);
    y = run_unary(&g, &P, knob_log_softmax, 4, x);
    CHECK_NEAR(y[1], -0.5 - log(z), 1e-6, 0);
    knob_graph_free(g);
    knob_params_free(&P);
}

TEST(ops_softmax_large_inputs_stay_finite)
{
    const float x[3] = {1000.0f, 1001.0f, -1000.0f};
    knob_graph *g;
    knob_params P;
    const float *y = run_unary(&g, &P, knob_softmax, 3, x);
    CHECK(y && isfinite(y[0]) && isfinite(y[1]));
    CHECK_NEAR(y[1], 1 / (1 + exp(-1.0)), 1e-6, 0);
    knob_graph_free(g);
    knob_params_free(&P);
}

TEST(ops_matmul_and_broadcast_values)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *a = knob_params_add(&P, "a", 2, (int[]){2, 3}, &err);
    knob_tensor *b = knob_params_add(&P, "b", 2, (int[]){3, 2}, &err);
    knob_tensor *r = knob_params_add(&P, "r", 1, (int[]){2}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    memcpy(a->data, (float[]){1, 2, 3, 4, 5, 6}, 6 * sizeof(float));
    memcpy(b->data, (float[]){7, 8, 9, 10, 11, 12}, 6 * sizeof(float));
    memcpy(r->data, (float[]){100, 200}, 2 * sizeof(float));
    knob_graph *g = knob_graph_new(&err);
    knob_node *ab = knob_matmul(g, knob_param(g, a), knob_param(g, b), 0, 0);
    knob_node *abt = knob_matmul(g, knob_param(g, a), knob_param(g, a), 0, 1);   /* a a^T */
    knob_node *y = knob_add(g, ab, knob_param(g, r));
    knob_node *s = knob_sum(g, y, 0, 0);
    CHECK_OK(knob_graph_compile(g, &err));
    CHECK_OK(knob_graph_forward(g, &err));
    /* [1 2 3; 4 5 6] [7 8; 9 10; 11 12] = [58 64; 139 154] */
    const float *Y = knob_node_data(y), *AAT = knob_node_data(abt), *S = knob_node_data(s);
    CHECK(Y[0] == 158 && Y[1] == 264 && Y[2] == 239 && Y[3] == 354);
    CHECK(AAT[0] == 14 && AAT[1] == 32 && AAT[2] == 32 && AAT[3] == 77);
    CHECK(S[0] == 397 && S[1] == 618);
    knob_graph_free(g);
    knob_params_free(&P);
}

/* knob_matmul_bias: the values by hand, the bits of matmul then add (forward and every gradient),
 * and a bias of the wrong size refused by name */
TEST(ops_matmul_bias_is_matmul_then_add)
{
    enum { M = 37, K = 19, N = 21 };
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *a = knob_params_add(&P, "a", 2, (int[]){M, K}, &err);
    knob_tensor *w = knob_params_add(&P, "w", 2, (int[]){N, K}, &err);
    knob_tensor *b = knob_params_add(&P, "b", 1, (int[]){N}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    knob_rng rng;
    knob_rng_seed(&rng, 17);
    for (size_t i = 0; i < P.n_elems; i++)
        P.data[i] = knob_rng_normal(&rng);
    float *got[4], *want[4];
    for (int pass = 0; pass < 2; pass++) {   /* 0: fused, 1: matmul then add */
        knob_graph *g = knob_graph_new(&err);
        knob_node *an = knob_param(g, a), *wn = knob_param(g, w), *bn = knob_param(g, b);
        knob_node *y = pass ? knob_add(g, knob_matmul(g, an, wn, 0, 1), bn)
                            : knob_matmul_bias(g, an, wn, bn, 0, 1, KNOB_PREC_F32);
        knob_node *loss = knob_sum_all(g, knob_mul(g, y, y));
        CHECK_OK(knob_graph_compile(g, &err));
        CHECK_OK(knob_graph_forward(g, &err));
        knob_params_zero_grad(&P);
        knob_graph_backward(g, loss);
        float **out = pass ? want : got;
        const float *src[4] = {knob_node_data(y), a->grad, w->grad, b->grad};
        size_t n[4] = {(size_t)M * N, (size_t)M * K, (size_t)N * K, N};
        for (int k = 0; k < 4; k++) {
            out[k] = malloc(n[k] * sizeof(float));
            KNOB_ASSERT(out[k]);
            memcpy(out[k], src[k], n[k] * sizeof(float));
        }
        if (!pass) {   /* y[0][0] = sum_k a[0][k] w[0][k] + b[0], in double */
            double s = b->data[0];
            for (int k = 0; k < K; k++)
                s += (double)a->data[k] * w->data[k];
            CHECK_NEAR(got[0][0], s, 1e-4, 1e-5);
        }
        knob_graph_free(g);
    }
    size_t n[4] = {(size_t)M * N, (size_t)M * K, (size_t)N * K, N};
    for (int k = 0; k < 4; k++) {
        CHECK(memcmp(got[k], want[k], n[k] * sizeof(float)) == 0);
        free(got[k]);
        free(want[k]);
    }
    /* a bias that is not (N) */
    knob_graph *g = knob_graph_new(&err);
    knob_node *bad = knob_input(g, "bad", 1, (int[]){N + 1});
    CHECK(knob_matmul_bias(g, knob_param(g, a), knob_param(g, w), bad, 0, 1, KNOB_PREC_F32) == NULL);
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE,
                     "matmul: bias must be (21), one per output column, got (22)");
    knob_graph_free(g);
    knob_params_free(&P);
}

TEST(ops_cross_entropy_values)
{
    /* logits [0, 0, ln 2]: p = [1/4, 1/4, 1/2]; target 2 -> -ln(1/2), target 0 -> -ln(1/4) */
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *z = knob_params_add(&P, "z", 2, (int[]){3, 3}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    float l2 = (float)log(2.0);
    memcpy(z->data, (float[]){0, 0, l2, 0, 0, l2, 5, 5, 5}, 9 * sizeof(float));
    knob_graph *g = knob_graph_new(&err);
    knob_node *t = knob_input_i32(g, "t", 1, (int[]){3});
    knob_node *loss = knob_cross_entropy(g, knob_param(g, z), t, 7);
    CHECK_OK(knob_graph_compile(g, &err));
    memcpy(knob_node_data_i32(t), (int32_t[]){2, 0, 7}, 3 * sizeof(int32_t));   /* row 3 ignored */
    CHECK_OK(knob_graph_forward(g, &err));
    CHECK_NEAR(knob_node_data(loss)[0], (log(2.0) + log(4.0)) / 2, 1e-6, 0);
    knob_params_zero_grad(&P);
    knob_graph_backward(g, loss);
    /* dz = (p - onehot) / 2 for counted rows, 0 for the ignored row */
    CHECK_NEAR(z->grad[2], (0.5 - 1) / 2, 1e-6, 1e-7);
    CHECK_NEAR(z->grad[3], (0.25 - 1) / 2, 1e-6, 1e-7);
    CHECK_NEAR(z->grad[5], 0.5 / 2, 1e-6, 1e-7);
    CHECK(z->grad[6] == 0 && z->grad[7] == 0 && z->grad[8] == 0);
    /* a target out of range stops forward with a message */
    knob_node_data_i32(t)[1] = 3;
    CHECK_FAILS_WITH(knob_graph_forward(g, &err), KNOB_ERR_FORMAT, "target 3 at position 1 is out of range [0, 3)");
    knob_graph_free(g);
    knob_params_free(&P);
}

TEST(ops_shape_values)
{
    /* x = [[0 1 2], [3 4 5]]: transpose -> [[0 3], [1 4], [2 5]]; slice cols 1..2 -> [[1 2], [4 5]] */
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *x = knob_params_add(&P, "x", 2, (int[]){2, 3}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    for (int i = 0; i < 6; i++)
        x->data[i] = (float)i;
    knob_graph *g = knob_graph_new(&err);
    knob_node *xn = knob_param(g, x);
    knob_node *tr = knob_transpose(g, xn, 0, 1);
    knob_node *sl = knob_slice(g, xn, 1, 1, 2);
    knob_node *cat = knob_concat(g, 2, (knob_node *[]){xn, sl}, 1);
    knob_node *rs = knob_reshape(g, xn, 1, (int[]){-1});
    knob_node *parts[2];
    CHECK_OK(knob_split(g, xn, 0, 2, (int[]){1, 1}, parts));
    CHECK_OK(knob_graph_compile(g, &err));
    CHECK_OK(knob_graph_forward(g, &err));
    const float want_tr[6] = {0, 3, 1, 4, 2, 5}, want_sl[4] = {1, 2, 4, 5}, want_cat[10] = {0, 1, 2, 1, 2, 3, 4, 5, 4, 5};
    CHECK(memcmp(knob_node_data(tr), want_tr, sizeof want_tr) == 0);
    CHECK(memcmp(knob_node_data(sl), want_sl, sizeof want_sl) == 0);
    CHECK(memcmp(knob_node_data(cat), want_cat, sizeof want_cat) == 0);
    CHECK(knob_node_data(rs) == x->data);   /* reshape is a view */
    CHECK(knob_node_tensor(rs)->n_dims == 1 && knob_node_tensor(rs)->shape[0] == 6);
    CHECK(knob_node_data(parts[1])[0] == 3 && knob_node_data(parts[1])[2] == 5);
    knob_graph_free(g);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Graph promises */

TEST(graph_shape_errors_are_sticky_and_named)
{
    knob_err err;
    knob_graph *g = knob_graph_new(&err);
    knob_node *a = knob_input(g, "a", 2, (int[]){4, 3});
    knob_node *b = knob_input(g, "b", 2, (int[]){5, 2});
    knob_node *y = knob_matmul(g, a, b, 0, 0);
    CHECK(y == NULL);
    CHECK(knob_relu(g, y) == NULL);   /* later builders pass the NULL along */
    CHECK(knob_add(g, a, a) == NULL); /* and refuse to build after an error */
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "matmul: inner dimensions differ: a is (4, 3), b is (5, 2)");
    knob_graph_free(g);

    g = knob_graph_new(&err);
    a = knob_input(g, "a", 2, (int[]){4, 3});
    b = knob_input(g, "b", 1, (int[]){4});
    CHECK(knob_add(g, a, b) == NULL);
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "add: cannot broadcast (4, 3) with (4)");
    knob_graph_free(g);

    g = knob_graph_new(&err);
    a = knob_input(g, "a", 2, (int[]){4, 3});
    CHECK(knob_reshape(g, a, 2, (int[]){5, -1}) == NULL);
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "reshape: (4, 3) (12 elements)");
    knob_graph_free(g);

    g = knob_graph_new(&err);
    a = knob_input(g, "a", 2, (int[]){4, 3});
    CHECK(knob_sum(g, a, 2, 0) == NULL);
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "sum: axis 2 out of range for 2 dims");
    knob_graph_free(g);

    g = knob_graph_new(&err);
    a = knob_input(g, "a", 2, (int[]){4, 3});
    knob_node *parts[2];
    CHECK(knob_split(g, a, 1, 2, (int[]){1, 1}, parts) == KNOB_ERR_SHAPE);
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "split: sizes add up to 2, axis 1 has 3");
    knob_graph_free(g);
}

/* Two-layer net y = w2 tanh(W1 x + b1) + b2 with squared loss L = (y - t)^2 on one example; the
 * gradient written out by hand with the chain rule, in double:
 *   h = tanh(W1 x + b1), e = y - t, dL/dy = 2e
 *   dL/dw2 = 2e h,  dL/db2 = 2e,  dL/db1 = 2e w2 (1 - h^2),  dL/dW1 = dL/db1 x^T */
TEST(graph_two_layer_hand_gradient)
{
    enum { IN = 3, HID = 4 };
    const double x[IN] = {0.5, -1.0, 2.0}, t = 0.7;
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *W1 = knob_params_add(&P, "W1", 2, (int[]){HID, IN}, &err);
    knob_tensor *b1 = knob_params_add(&P, "b1", 1, (int[]){HID}, &err);
    knob_tensor *w2 = knob_params_add(&P, "w2", 2, (int[]){1, HID}, &err);
    knob_tensor *b2 = knob_params_add(&P, "b2", 1, (int[]){1}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    knob_rng r;
    knob_rng_seed(&r, 7);
    knob_init_normal(W1, 0.5f, &r);
    knob_init_normal(b1, 0.5f, &r);
    knob_init_normal(w2, 0.5f, &r);
    knob_init_normal(b2, 0.5f, &r);

    knob_graph *g = knob_graph_new(&err);
    knob_node *xn = knob_input(g, "x", 2, (int[]){1, IN});
    knob_node *tn = knob_input(g, "t", 2, (int[]){1, 1});
    knob_node *h = knob_tanh(g, knob_add(g, knob_matmul(g, xn, knob_param(g, W1), 0, 1), knob_param(g, b1)));
    knob_node *y = knob_add(g, knob_matmul(g, h, knob_param(g, w2), 0, 1), knob_param(g, b2));
    knob_node *loss = knob_mse(g, y, tn);
    CHECK_OK(knob_graph_compile(g, &err));
    for (int i = 0; i < IN; i++)
        knob_node_data(xn)[i] = (float)x[i];
    knob_node_data(tn)[0] = (float)t;
    knob_params_zero_grad(&P);
    CHECK_OK(knob_graph_forward(g, &err));
    knob_graph_backward(g, loss);

    double hv[HID], yv = b2->data[0];
    for (int j = 0; j < HID; j++) {
        double a = b1->data[j];
        for (int i = 0; i < IN; i++)
            a += (double)W1->data[j * IN + i] * x[i];
        hv[j] = tanh(a);
        yv += (double)w2->data[j] * hv[j];
    }
    double e = yv - t;
    CHECK_NEAR(knob_node_data(loss)[0], e * e, 1e-5, 1e-7);
    CHECK_NEAR(b2->grad[0], 2 * e, 1e-5, 1e-6);
    for (int j = 0; j < HID; j++) {
        CHECK_NEAR(w2->grad[j], 2 * e * hv[j], 1e-5, 1e-6);
        double db1 = 2 * e * w2->data[j] * (1 - hv[j] * hv[j]);
        CHECK_NEAR(b1->grad[j], db1, 1e-5, 1e-6);
        for (int i = 0; i < IN; i++)
            CHECK_NEAR(W1->grad[j * IN + i], db1 * x[i], 1e-5, 1e-6);
    }
    /* parameter grads accumulate across backward passes (micro-batches) */
    CHECK_OK(knob_graph_forward(g, &err));
    knob_graph_backward(g, loss);
    CHECK_NEAR(b2->grad[0], 4 * e, 1e-5, 1e-6);
    knob_graph_free(g);
    knob_params_free(&P);
}

TEST(graph_step_allocates_nothing)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *W = knob_params_add(&P, "W", 2, (int[]){16, 8}, &err);
    knob_tensor *b = knob_params_add(&P, "b", 1, (int[]){16}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    knob_rng r;
    knob_rng_seed(&r, 1);
    knob_init_kaiming(W, &r);
    knob_graph *g = knob_graph_new(&err);
    knob_node *x = knob_input(g, "x", 2, (int[]){32, 8});
    knob_node *t = knob_input_i32(g, "t", 1, (int[]){32});
    knob_node *z = knob_dropout(g, knob_relu(g, knob_add(g, knob_matmul(g, x, knob_param(g, W), 0, 1), knob_param(g, b))), 0.1f);
    knob_node *loss = knob_cross_entropy(g, knob_softmax(g, z), t, -1);
    CHECK_OK(knob_graph_compile(g, &err));
    for (int i = 0; i < 32 * 8; i++)
        knob_node_data(x)[i] = knob_rng_normal(&r);
    for (int i = 0; i < 32; i++)
        knob_node_data_i32(t)[i] = i % 16;
    knob_optim opt;
    CHECK_OK(knob_optim_init(&opt, &P, &(knob_optim_config){.kind = KNOB_OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f}, &err));
    long before = knob_alloc_count();
    for (int step = 0; step < 3; step++) {
        knob_params_zero_grad(&P);
        CHECK_OK(knob_graph_forward(g, &err));
        knob_graph_backward(g, loss);
        knob_clip_grad_norm(&P, 1.0f);
        knob_optim_step(&opt, 1e-3f);
    }
    CHECK(knob_alloc_count() == before);
    knob_optim_free(&opt);
    knob_graph_free(g);
    knob_params_free(&P);
}

TEST(graph_fault_injection_build_and_compile)
{
    /* fail the n-th allocation for n = 1, 2, ... until building and compiling succeed: each failure
     * must be a clean status with a message (and no leak: ASan checks that in `make asan`) */
    for (long n = 1; n < 200; n++) {
        knob_err err = {0};
        knob_alloc_fail_at(n);
        knob_params P;
        knob_params_init(&P);
        knob_graph *g = NULL;
        knob_status s = KNOB_OK;
        knob_tensor *W = knob_params_add(&P, "W", 2, (int[]){4, 3}, &err);
        if (!W || (s = knob_params_alloc(&P, &err)) != KNOB_OK || !(g = knob_graph_new(&err))) {
            CHECK(err.code == KNOB_ERR_NOMEM && err.msg[0]);
        } else {
            knob_node *x = knob_input(g, "x", 2, (int[]){5, 3});
            knob_node *y = knob_sum_all(g, knob_relu(g, knob_matmul(g, x, knob_param(g, W), 0, 1)));
            s = knob_graph_compile(g, &err);
            if (s == KNOB_OK) {
                CHECK(y != NULL);
                knob_alloc_fail_at(0);
                knob_graph_free(g);
                knob_params_free(&P);
                CHECK(n > 3);
                return;
            }
            CHECK(err.code == KNOB_ERR_NOMEM && err.msg[0]);
        }
        knob_alloc_fail_at(0);
        knob_graph_free(g);
        knob_params_free(&P);
    }
    CHECK(!"compile never succeeded");
}

/* Backward visits only the loss's ancestors. A side branch built before the loss (here log(p) as a
 * metric, at p = 0 where d log / dp is inf) used to run its backward with dy = 0 and add
 * 0 * inf = nan into p's gradient. */
TEST(graph_backward_skips_side_branches)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *p = knob_params_add(&P, "p", 1, (int[]){2}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    p->data[0] = 0.0f;
    p->data[1] = 3.0f;
    knob_graph *g = knob_graph_new(&err);
    knob_node *pn = knob_param(g, p);
    knob_node *metric = knob_log(g, pn);                        /* not part of the loss */
    knob_node *loss = knob_sum_all(g, knob_mul(g, pn, pn));     /* d/dp = 2p */
    knob_node *after = knob_sum_all(g, knob_div(g, pn, pn));   /* built after the loss */
    CHECK(metric && loss && after);
    CHECK_OK(knob_graph_compile(g, &err));
    knob_params_zero_grad(&P);
    CHECK_OK(knob_graph_forward(g, &err));
    knob_graph_backward(g, loss);
    CHECK(p->grad[0] == 0.0f);
    CHECK_NEAR(p->grad[1], 6.0, 0, 1e-6);
    knob_graph_free(g);
    knob_params_free(&P);
}

/* Shapes whose element count passes 2^40 (or wraps a size_t: 65536^4 = 2^64 is 0) are refused
 * when built, instead of sizing a tiny buffer that kernels then overrun; so are int overflows in
 * concat, conv2d's padding and split's sizes. Forward before compile is a status, not an abort. */
TEST(graph_huge_shapes_are_refused)
{
    knob_err err;
    knob_graph *g = knob_graph_new(&err);
    CHECK(knob_input(g, "x", 4, (int[]){65536, 65536, 65536, 65536}) == NULL);
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "input 'x': (65536, 65536, 65536, 65536) has more than 2^40");
    knob_graph_free(g);

    g = knob_graph_new(&err);
    knob_node *a = knob_input(g, "a", 2, (int[]){1 << 21, 1 << 10});
    knob_node *b = knob_input(g, "b", 2, (int[]){1 << 10, 1 << 20});
    CHECK(a && b && knob_matmul(g, a, b, 0, 0) == NULL);   /* (2^21, 2^20): 2^41 elements */
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "matmul: output (2097152, 1048576)");
    knob_graph_free(g);

    g = knob_graph_new(&err);
    a = knob_input(g, "a", 2, (int[]){1, 1});
    CHECK(knob_reshape(g, a, 4, (int[]){65536, 65536, 65536, 65536}) == NULL);
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "reshape");
    knob_graph_free(g);

    g = knob_graph_new(&err);
    a = knob_input(g, "a", 1, (int[]){INT_MAX});
    CHECK(knob_concat(g, 2, (knob_node *[]){a, a}, 0) == NULL);
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "concat: axis 0 adds up to more than");
    knob_graph_free(g);

    g = knob_graph_new(&err);
    knob_node *x = knob_input(g, "x", 4, (int[]){1, 1, 4, 4});
    knob_node *w = knob_input(g, "w", 4, (int[]){1, 1, 3, 3});
    CHECK(knob_conv2d(g, x, w, NULL, 1, INT_MAX) == NULL);
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), KNOB_ERR_SHAPE, "conv2d: pad 2147483647 is too large");
    knob_graph_free(g);

    g = knob_graph_new(&err);
    a = knob_input(g, "a", 1, (int[]){4});
    knob_node *parts[3];
    CHECK(knob_split(g, a, 0, 3, (int[]){INT_MAX, INT_MAX, INT_MAX}, parts) == KNOB_ERR_SHAPE);
    CHECK(knob_slice(g, a, 0, 1, INT_MAX) == NULL);
    knob_graph_free(g);

    g = knob_graph_new(&err);
    a = knob_input(g, "a", 1, (int[]){4});
    CHECK_FAILS_WITH(knob_graph_forward(g, &err), KNOB_ERR_USAGE, "before knob_graph_compile");
    knob_graph_free(g);

    knob_params P;
    knob_params_init(&P);
    CHECK(knob_params_add(&P, "big", 4, (int[]){65536, 65536, 65536, 65536}, &err) == NULL);
    CHECK(err.code == KNOB_ERR_SHAPE && strstr(err.msg, "too large"));
    CHECK(knob_params_add(&P, "a", 2, (int[]){1 << 20, 1 << 20}, &err) != NULL);   /* 2^40: the limit */
    CHECK(knob_params_add(&P, "b", 1, (int[]){1}, &err) == NULL);                  /* in all */
    knob_params_free(&P);
}
