/* test_ops_nn.c: the neural-network ops: layernorm (norm.c), embedding and dropout (embedding.c),
 * causal self-attention (attention.c).
 *
 * Gradient checks (GRADCHECK, run by test_gradcheck.c's gradcheck_every_op) cover odd sizes, size-1
 * dims and leading batch dims. The value tests compare with math worked out by hand here, never with
 * the ops' own output: layernorm of a known row, table rows picked by index, dropout's keep rate and
 * scale, attention over one and two tokens with the softmax written out in double, and the causal
 * mask. Then the error paths: out-of-range indices stop forward, bad shapes stop compile, each with a
 * message naming the op. Last, gradients must have the same bits for one thread and for many. */
#include "gradcheck.h"

/* ------------------------------------------------------------------------------------------------
 * Gradient checks */

GRADCHECK(KNOB_OP_LAYERNORM, nn_layernorm_bias_2x3x5)
{
    knob_node *x = gc_param(c, "x", 3, (int[]){2, 3, 5}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 1, (int[]){5}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){5}, GC_NORMAL);
    return knob_layernorm(c->g, x, w, b);
}

GRADCHECK(KNOB_OP_LAYERNORM, nn_layernorm_nobias_2x3x5)
{
    knob_node *x = gc_param(c, "x", 3, (int[]){2, 3, 5}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 1, (int[]){5}, GC_NORMAL);
    return knob_layernorm(c->g, x, w, NULL);
}

GRADCHECK(KNOB_OP_LAYERNORM, nn_layernorm_bias_1x7)
{
    knob_node *x = gc_param(c, "x", 2, (int[]){1, 7}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 1, (int[]){7}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){7}, GC_NORMAL);
    return knob_layernorm(c->g, x, w, b);
}

GRADCHECK(KNOB_OP_LAYERNORM, nn_layernorm_nobias_1x7)
{
    knob_node *x = gc_param(c, "x", 2, (int[]){1, 7}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 1, (int[]){7}, GC_NORMAL);
    return knob_layernorm(c->g, x, w, NULL);
}

/* C = 1: every row normalises to 0, so only the bias carries gradient */
GRADCHECK(KNOB_OP_LAYERNORM, nn_layernorm_c1)
{
    knob_node *x = gc_param(c, "x", 2, (int[]){3, 1}, GC_NORMAL);
    knob_node *w = gc_param(c, "w", 1, (int[]){1}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){1}, GC_NORMAL);
    return knob_layernorm(c->g, x, w, b);
}

/* 8 indices into 3 rows: rows repeat, and their gradients must add up */
GRADCHECK(KNOB_OP_EMBEDDING, nn_embedding_repeated)
{
    knob_node *tab = gc_param(c, "table", 2, (int[]){3, 5}, GC_NORMAL);
    knob_node *idx = gc_index(c, "idx", 2, (int[]){2, 4}, 0, 3);
    return knob_embedding(c->g, tab, idx);
}

/* only rows 0 and 1 used: row 2..3 get no gradient */
GRADCHECK(KNOB_OP_EMBEDDING, nn_embedding_unused_rows)
{
    knob_node *tab = gc_param(c, "table", 2, (int[]){4, 3}, GC_NORMAL);
    knob_node *idx = gc_index(c, "idx", 1, (int[]){7}, 0, 2);
    return knob_embedding(c->g, tab, idx);
}

GRADCHECK(KNOB_OP_EMBEDDING, nn_embedding_3d_idx)
{
    knob_node *tab = gc_param(c, "table", 2, (int[]){5, 2}, GC_NORMAL);
    knob_node *idx = gc_index(c, "idx", 3, (int[]){2, 3, 1}, 0, 5);
    return knob_embedding(c->g, tab, idx);
}

GRADCHECK(KNOB_OP_EMBEDDING, nn_embedding_1x1)
{
    knob_node *tab = gc_param(c, "table", 2, (int[]){1, 1}, GC_NORMAL);
    knob_node *idx = gc_index(c, "idx", 1, (int[]){1}, 0, 1);
    return knob_embedding(c->g, tab, idx);
}

GRADCHECK(KNOB_OP_DROPOUT, nn_dropout_train_p03)
{
    knob_node *x = gc_param(c, "x", 2, (int[]){4, 5}, GC_NORMAL);
    return knob_dropout(c->g, x, 0.3f);
}

GRADCHECK(KNOB_OP_DROPOUT, nn_dropout_train_4d)
{
    knob_node *x = gc_param(c, "x", 4, (int[]){2, 1, 3, 5}, GC_NORMAL);
    return knob_dropout(c->g, x, 0.5f);
}

GRADCHECK(KNOB_OP_DROPOUT, nn_dropout_p0)
{
    knob_node *x = gc_param(c, "x", 2, (int[]){3, 7}, GC_NORMAL);
    return knob_dropout(c->g, x, 0.0f);
}

GRADCHECK(KNOB_OP_DROPOUT, nn_dropout_eval)
{
    c->training = 0;
    knob_node *x = gc_param(c, "x", 1, (int[]){9}, GC_NORMAL);
    return knob_dropout(c->g, x, 0.5f);
}

/* qkv (B, T, 3C) with C = 6 */
GRADCHECK(KNOB_OP_ATTENTION, nn_attention_t1_nh3)
{
    knob_node *qkv = gc_param(c, "qkv", 3, (int[]){2, 1, 18}, GC_NORMAL);
    return knob_attention(c->g, qkv, 3);
}

GRADCHECK(KNOB_OP_ATTENTION, nn_attention_t5_nh1)
{
    knob_node *qkv = gc_param(c, "qkv", 3, (int[]){2, 5, 18}, GC_NORMAL);
    return knob_attention(c->g, qkv, 1);
}

GRADCHECK(KNOB_OP_ATTENTION, nn_attention_t5_nh3)
{
    knob_node *qkv = gc_param(c, "qkv", 3, (int[]){2, 5, 18}, GC_NORMAL);
    return knob_attention(c->g, qkv, 3);
}

/* odd head size: C = 5, one head; B = 1 */
GRADCHECK(KNOB_OP_ATTENTION, nn_attention_t3_c5)
{
    knob_node *qkv = gc_param(c, "qkv", 3, (int[]){1, 3, 15}, GC_NORMAL);
    return knob_attention(c->g, qkv, 1);
}

/* ------------------------------------------------------------------------------------------------
 * Helpers */

static knob_graph *graph_new(void)
{
    knob_err err;
    knob_graph *g = knob_graph_new(&err);
    KNOB_ASSERT(g);
    return g;
}

static void fill(knob_node *n, const float *v)
{
    memcpy(knob_node_data(n), v, knob_node_tensor(n)->n_elems * sizeof(float));
}

/* ------------------------------------------------------------------------------------------------
 * layernorm values */

TEST(nn_layernorm_values)
{
    knob_err err;
    knob_graph *g = graph_new();
    knob_node *x = knob_input(g, "x", 2, (int[]){2, 3});
    knob_node *w = knob_input(g, "w", 1, (int[]){3});
    knob_node *b = knob_input(g, "b", 1, (int[]){3});
    knob_node *y = knob_layernorm(g, x, w, b);
    knob_node *w2 = knob_input(g, "w2", 1, (int[]){3});
    knob_node *y2 = knob_layernorm(g, x, w2, NULL);
    CHECK_OK(knob_graph_compile(g, &err));
    /* row 0: [1, 2, 3]: mean 2, var 2/3, xhat = +-1/sqrt(2/3) = +-1.2247 */
    /* row 1: [10, 10, 40]: mean 20, var (100 + 100 + 400) / 3 = 200, xhat = [-10, -10, 20] / sqrt(200)
     *        = [-0.70711, -0.70711, 1.41421] */
    fill(x, (float[]){1, 2, 3, 10, 10, 40});
    fill(w, (float[]){1, 1, 1});
    fill(b, (float[]){0, 0, 0});
    fill(w2, (float[]){1, 2, 3});
    CHECK_OK(knob_graph_forward(g, &err));
    const float *Y = knob_node_data(y), *Y2 = knob_node_data(y2);
    CHECK_NEAR(Y[0], -1.2247, 0, 1e-4);
    CHECK_NEAR(Y[1], 0.0, 0, 1e-6);
    CHECK_NEAR(Y[2], 1.2247, 0, 1e-4);
    CHECK_NEAR(Y[3], -0.70711, 0, 1e-4);
    CHECK_NEAR(Y[4], -0.70711, 0, 1e-4);
    CHECK_NEAR(Y[5], 1.41421, 0, 1e-4);
    /* no bias, weight [1, 2, 3] */
    CHECK_NEAR(Y2[0], -1.2247, 0, 1e-4);
    CHECK_NEAR(Y2[2], 3 * 1.2247, 0, 3e-4);
    CHECK_NEAR(Y2[4], 2 * -0.70711, 0, 2e-4);
    CHECK_NEAR(Y2[5], 3 * 1.41421, 0, 3e-4);
    /* bias shifts: w = 1, b = [0.5, -1, 2] */
    fill(b, (float[]){0.5f, -1, 2});
    CHECK_OK(knob_graph_forward(g, &err));
    CHECK_NEAR(Y[0], 0.5 - 1.2247, 0, 1e-4);
    CHECK_NEAR(Y[1], -1.0, 0, 1e-6);
    CHECK_NEAR(Y[5], 2 + 1.41421, 0, 1e-4);
    knob_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------
 * embedding values and index errors */

TEST(nn_embedding_values)
{
    knob_err err;
    knob_graph *g = graph_new();
    knob_node *tab = knob_input(g, "table", 2, (int[]){4, 3});   // (V, C)
    knob_node *idx = knob_input_i32(g, "idx", 2, (int[]){2, 3});
    knob_node *y = knob_embedding(g, tab, idx);
    CHECK_OK(knob_graph_compile(g, &err));
    const knob_tensor *t = knob_node_tensor(y);
    CHECK(t->n_dims == 3 && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 3);
    for (int v = 0; v < 4; v++)   /* table[v][c] = 10 v + c */
        for (int c = 0; c < 3; c++)
            knob_node_data(tab)[v * 3 + c] = (float)(10 * v + c);
    const int32_t ids[6] = {3, 0, 3, 1, 2, 0};
    memcpy(knob_node_data_i32(idx), ids, sizeof ids);
    CHECK_OK(knob_graph_forward(g, &err));
    for (int p = 0; p < 6; p++)
        for (int c = 0; c < 3; c++)
            CHECK(knob_node_data(y)[p * 3 + c] == (float)(10 * ids[p] + c));
    knob_graph_free(g);
}

TEST(nn_embedding_out_of_range)
{
    knob_err err;
    knob_graph *g = graph_new();
    knob_node *tab = knob_input(g, "wte", 2, (int[]){50257, 1});
    knob_node *idx = knob_input_i32(g, "idx", 1, (int[]){16});
    knob_node *y = knob_embedding(g, tab, idx);
    CHECK(y);
    CHECK_OK(knob_graph_compile(g, &err));
    int32_t *I = knob_node_data_i32(idx);
    for (int i = 0; i < 16; i++)
        I[i] = i * 1000;
    I[12] = 70000;
    CHECK_FAILS_WITH(knob_graph_forward(g, &err), KNOB_ERR_FORMAT,
                     "embedding: index 70000 at position 12 is out of range [0, 50257)");
    I[12] = 50257;   /* one past the end */
    CHECK_FAILS_WITH(knob_graph_forward(g, &err), KNOB_ERR_FORMAT, "index 50257 at position 12");
    I[12] = 50256;
    I[0] = -1;
    CHECK_FAILS_WITH(knob_graph_forward(g, &err), KNOB_ERR_FORMAT, "index -1 at position 0");
    I[0] = 0;
    CHECK_OK(knob_graph_forward(g, &err));
    knob_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------
 * dropout */

TEST(nn_dropout_keep_rate_and_scale)
{
    knob_err err;
    const int n = 10000;
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    knob_graph *g = graph_new();
    knob_node *x = knob_input(g, "x", 1, &n);
    knob_node *y = knob_dropout(g, x, p);
    CHECK_OK(knob_graph_compile(g, &err));
    float *X = knob_node_data(x), *Y = knob_node_data(y);
    for (int i = 0; i < n; i++)
        X[i] = 1.0f + (float)(i % 7);   /* never 0, so 0 in y means dropped */
    knob_graph_seed(g, 42);
    CHECK_OK(knob_graph_forward(g, &err));
    int kept = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        if (Y[i] != 0.0f) {
            kept++;
            bad += Y[i] != X[i] * scale;
        }
    }
    CHECK(bad == 0);
    CHECK_NEAR((double)kept / n, 0.7, 0, 0.02);
    /* same seed, same mask; another seed, another mask */
    unsigned char *mask = knob_malloc((size_t)n);
    KNOB_ASSERT(mask);
    for (int i = 0; i < n; i++)
        mask[i] = Y[i] != 0.0f;
    knob_graph_seed(g, 42);
    CHECK_OK(knob_graph_forward(g, &err));
    int same = 0;
    for (int i = 0; i < n; i++)
        same += mask[i] == (Y[i] != 0.0f);
    CHECK(same == n);
    knob_graph_seed(g, 43);
    CHECK_OK(knob_graph_forward(g, &err));
    same = 0;
    for (int i = 0; i < n; i++)
        same += mask[i] == (Y[i] != 0.0f);
    CHECK(same < n);
    knob_free(mask);
    knob_graph_free(g);
}

TEST(nn_dropout_identity)
{
    knob_err err;
    knob_graph *g = graph_new();
    knob_node *x = knob_input(g, "x", 2, (int[]){10, 10});
    knob_node *y_eval = knob_dropout(g, x, 0.5f);
    knob_node *y_p0 = knob_dropout(g, x, 0.0f);
    CHECK_OK(knob_graph_compile(g, &err));
    for (int i = 0; i < 100; i++)
        knob_node_data(x)[i] = (float)i * 0.37f - 11.0f;
    /* training, p = 0: identity */
    CHECK_OK(knob_graph_forward(g, &err));
    CHECK(memcmp(knob_node_data(y_p0), knob_node_data(x), 100 * sizeof(float)) == 0);
    CHECK(memcmp(knob_node_data(y_eval), knob_node_data(x), 100 * sizeof(float)) != 0);
    /* eval: identity at any p */
    knob_graph_set_training(g, 0);
    CHECK_OK(knob_graph_forward(g, &err));
    CHECK(memcmp(knob_node_data(y_eval), knob_node_data(x), 100 * sizeof(float)) == 0);
    CHECK(memcmp(knob_node_data(y_p0), knob_node_data(x), 100 * sizeof(float)) == 0);
    knob_graph_free(g);
}

/* backward passes dy through the same mask forward drew: dx = 1/(1-p) where kept, 0 where dropped */
TEST(nn_dropout_backward_uses_mask)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *xt = knob_params_add(&P, "x", 1, (int[]){1000}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    knob_init_const(xt, 2.0f);
    knob_graph *g = graph_new();
    knob_node *y = knob_dropout(g, knob_param(g, xt), 0.25f);
    knob_node *loss = knob_sum_all(g, y);
    CHECK_OK(knob_graph_compile(g, &err));
    CHECK_OK(knob_graph_forward(g, &err));
    knob_graph_backward(g, loss);
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        float want = knob_node_data(y)[i] != 0.0f ? 1.0f / 0.75f : 0.0f;
        bad += xt->grad[i] != want;
    }
    CHECK(bad == 0);
    /* eval: dx = dy */
    knob_params_zero_grad(&P);
    knob_graph_set_training(g, 0);
    CHECK_OK(knob_graph_forward(g, &err));
    knob_graph_backward(g, loss);
    bad = 0;
    for (int i = 0; i < 1000; i++)
        bad += xt->grad[i] != 1.0f;
    CHECK(bad == 0);
    knob_graph_free(g);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * attention values */

/* one token: the only probability is 1, so out = v exactly */
TEST(nn_attention_t1_is_v)
{
    knob_err err;
    knob_graph *g = graph_new();
    knob_node *qkv = knob_input(g, "qkv", 3, (int[]){2, 1, 18});   // (B, T, 3C), C = 6
    knob_node *y = knob_attention(g, qkv, 3);
    CHECK_OK(knob_graph_compile(g, &err));
    knob_rng r;
    knob_rng_seed(&r, 7);
    float *X = knob_node_data(qkv);
    for (int i = 0; i < 36; i++)
        X[i] = 3.0f * knob_rng_normal(&r);
    CHECK_OK(knob_graph_forward(g, &err));
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 6; c++)
            CHECK(knob_node_data(y)[b * 6 + c] == X[b * 18 + 12 + c]);
    knob_graph_free(g);
}

/* One head over two tokens, by hand:
 *   out_0 = v_0
 *   s_0 = q_1 . k_0 / sqrt(HS), s_1 = q_1 . k_1 / sqrt(HS)
 *   out_1 = (e^s_0 v_0 + e^s_1 v_1) / (e^s_0 + e^s_1) */
static void head_t2(const double q1[2], const double k0[2], const double k1[2], const double v0[2],
                    const double v1[2], double out0[2], double out1[2])
{
    double s0 = (q1[0] * k0[0] + q1[1] * k0[1]) / sqrt(2.0);
    double s1 = (q1[0] * k1[0] + q1[1] * k1[1]) / sqrt(2.0);
    double e0 = exp(s0), e1 = exp(s1);
    for (int i = 0; i < 2; i++) {
        out0[i] = v0[i];
        out1[i] = (e0 * v0[i] + e1 * v1[i]) / (e0 + e1);
    }
}

TEST(nn_attention_t2_by_hand)
{
    knob_err err;
    knob_graph *g = graph_new();
    /* C = 4, two heads of HS = 2: head 0 uses channels 0..1 of q, k and v, head 1 channels 2..3 */
    knob_node *qkv = knob_input(g, "qkv", 3, (int[]){1, 2, 12});   // (B, T, 3C)
    knob_node *y = knob_attention(g, qkv, 2);
    CHECK_OK(knob_graph_compile(g, &err));
    /* all values exact in float32 */
    /*                      q (4)                k (4)                   v (4)              */
    const double t0[12] = {0.5, -1, 2, 0.25,    1, 0.5, -1, 2,        1, 2, 3, 4};
    const double t1[12] = {1, 2, -0.5, 1.5,     -1, 0.25, 0.5, -2,    -3, 0.5, 10, -20};
    for (int i = 0; i < 12; i++) {
        knob_node_data(qkv)[i] = (float)t0[i];        /* token 0 */
        knob_node_data(qkv)[12 + i] = (float)t1[i];   /* token 1 */
    }
    CHECK_OK(knob_graph_forward(g, &err));
    for (int h = 0; h < 2; h++) {
        int o = 2 * h;
        double q1[2] = {t1[o], t1[o + 1]};
        double k0[2] = {t0[4 + o], t0[4 + o + 1]}, k1[2] = {t1[4 + o], t1[4 + o + 1]};
        double v0[2] = {t0[8 + o], t0[8 + o + 1]}, v1[2] = {t1[8 + o], t1[8 + o + 1]};
        double out0[2], out1[2];
        head_t2(q1, k0, k1, v0, v1, out0, out1);
        const float *Y = knob_node_data(y);   // (1, 2, 4)
        for (int i = 0; i < 2; i++) {
            CHECK_NEAR(Y[o + i], out0[i], 1e-6, 1e-6);
            CHECK_NEAR(Y[4 + o + i], out1[i], 1e-5, 1e-5);
        }
    }
    /* head 0 worked out fully: s0 = (1*1 + 2*0.5)/sqrt2 = 1.41421, s1 = (1*-1 + 2*0.25)/sqrt2 = -0.35355,
     * p0 = 1 / (1 + e^(s1 - s0)) = 0.85418, out_1 = p0 [1, 2] + (1 - p0) [-3, 0.5] = [0.41672, 1.78127] */
    CHECK_NEAR(knob_node_data(y)[4], 0.41672, 0, 1e-4);
    CHECK_NEAR(knob_node_data(y)[5], 1.78127, 0, 1e-4);
    knob_graph_free(g);
}

/* changing token 3's q, k and v leaves tokens 0..2 bit-for-bit unchanged */
TEST(nn_attention_causal)
{
    knob_err err;
    const int B = 2, T = 4, C = 6;
    knob_graph *g = graph_new();
    knob_node *qkv = knob_input(g, "qkv", 3, (int[]){B, T, 3 * C});
    knob_node *y = knob_attention(g, qkv, 3);
    CHECK_OK(knob_graph_compile(g, &err));
    knob_rng r;
    knob_rng_seed(&r, 3);
    float *X = knob_node_data(qkv), *Y = knob_node_data(y);
    for (int i = 0; i < B * T * 3 * C; i++)
        X[i] = knob_rng_normal(&r);
    CHECK_OK(knob_graph_forward(g, &err));
    float before[2 * 4 * 6];
    memcpy(before, Y, sizeof before);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < 3 * C; i++)
            X[(b * T + 3) * 3 * C + i] += 5.0f;
    CHECK_OK(knob_graph_forward(g, &err));
    for (int b = 0; b < B; b++) {
        CHECK(memcmp(Y + b * T * C, before + b * T * C, 3 * (size_t)C * sizeof(float)) == 0);
        CHECK(memcmp(Y + (b * T + 3) * C, before + (b * T + 3) * C, (size_t)C * sizeof(float)) != 0);
    }
    knob_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------
 * Shape errors: compile fails with a message naming the op */

static void check_build_error(knob_graph *g, knob_status code, const char *sub)
{
    knob_err err;
    CHECK_FAILS_WITH(knob_graph_compile(g, &err), code, sub);
    knob_graph_free(g);
}

TEST(nn_shape_errors)
{
    knob_graph *g;

    g = graph_new();
    CHECK(!knob_layernorm(g, knob_input(g, "x", 2, (int[]){2, 5}), knob_input(g, "w", 1, (int[]){4}), NULL));
    CHECK(!knob_layernorm(g, knob_input(g, "x2", 2, (int[]){2, 5}), knob_input(g, "w2", 1, (int[]){5}), NULL));   /* sticky */
    check_build_error(g, KNOB_ERR_SHAPE, "layernorm: weight is (4), x is (2, 5)");

    g = graph_new();
    knob_layernorm(g, knob_input(g, "x", 3, (int[]){2, 3, 5}), knob_input(g, "w", 1, (int[]){5}),
                   knob_input(g, "b", 2, (int[]){1, 5}));
    check_build_error(g, KNOB_ERR_SHAPE, "layernorm: bias is (1, 5), x is (2, 3, 5)");

    g = graph_new();
    knob_layernorm(g, knob_input_i32(g, "x", 2, (int[]){2, 5}), knob_input(g, "w", 1, (int[]){5}), NULL);
    check_build_error(g, KNOB_ERR_SHAPE, "layernorm: inputs must be float32; x is int32 (2, 5)");

    g = graph_new();
    knob_embedding(g, knob_input(g, "t", 2, (int[]){10, 4}), knob_input(g, "i", 1, (int[]){3}));
    check_build_error(g, KNOB_ERR_SHAPE, "embedding: idx is float32 (3); expected int32");

    g = graph_new();
    knob_embedding(g, knob_input(g, "t", 1, (int[]){10}), knob_input_i32(g, "i", 1, (int[]){3}));
    check_build_error(g, KNOB_ERR_SHAPE, "embedding: table is float32 (10); expected float32 (V, C)");

    g = graph_new();
    knob_embedding(g, knob_input(g, "t", 2, (int[]){10, 4}), knob_input_i32(g, "i", 4, (int[]){1, 2, 3, 4}));
    check_build_error(g, KNOB_ERR_SHAPE, "embedding: idx (1, 2, 3, 4) has 4 dims");

    g = graph_new();
    knob_dropout(g, knob_input(g, "x", 1, (int[]){3}), 1.0f);
    check_build_error(g, KNOB_ERR_USAGE, "dropout: p is 1; it must be in [0, 1)");

    g = graph_new();
    knob_dropout(g, knob_input(g, "x", 1, (int[]){3}), -0.1f);
    check_build_error(g, KNOB_ERR_USAGE, "dropout: p is -0.1");

    g = graph_new();
    knob_dropout(g, knob_input(g, "x", 1, (int[]){3}), NAN);
    check_build_error(g, KNOB_ERR_USAGE, "dropout: p is nan");

    g = graph_new();
    knob_attention(g, knob_input(g, "qkv", 3, (int[]){1, 2, 18}), 4);
    check_build_error(g, KNOB_ERR_SHAPE, "attention: qkv is (1, 2, 18), so C = 6, which 4 heads do not divide");

    g = graph_new();
    knob_attention(g, knob_input(g, "qkv", 3, (int[]){1, 2, 18}), 0);
    check_build_error(g, KNOB_ERR_SHAPE, "attention: qkv is (1, 2, 18), so C = 6, which 0 heads");

    g = graph_new();
    knob_attention(g, knob_input(g, "qkv", 2, (int[]){2, 18}), 3);
    check_build_error(g, KNOB_ERR_SHAPE, "attention: qkv is (2, 18); expected (B, T, 3C)");

    g = graph_new();
    knob_attention(g, knob_input(g, "qkv", 3, (int[]){1, 2, 10}), 1);
    check_build_error(g, KNOB_ERR_SHAPE, "attention: qkv is (1, 2, 10); expected (B, T, 3C)");
}

/* ------------------------------------------------------------------------------------------------
 * Determinism: the gradients of every op here have the same bits for 1 thread and for all threads. */

static void nn_grads(int threads, float *out, size_t n_out)
{
    knob_err err;
    knob_threads_set(threads);
    knob_params P;
    knob_params_init(&P);
    knob_tensor *qkv = knob_params_add(&P, "qkv", 3, (int[]){3, 9, 3 * 130}, &err);   /* C = 130, 5 heads */
    knob_tensor *lw = knob_params_add(&P, "ln.w", 1, (int[]){130}, &err);
    knob_tensor *lb = knob_params_add(&P, "ln.b", 1, (int[]){130}, &err);
    knob_tensor *tab = knob_params_add(&P, "wte", 2, (int[]){4, 130}, &err);
    KNOB_ASSERT(knob_params_alloc(&P, &err) == KNOB_OK);
    KNOB_ASSERT(P.n_elems == n_out);
    knob_rng r;
    knob_rng_seed(&r, 11);
    knob_init_normal(qkv, 1.0f, &r);
    knob_init_normal(lw, 1.0f, &r);
    knob_init_normal(lb, 1.0f, &r);
    knob_init_normal(tab, 1.0f, &r);
    knob_graph *g = graph_new();
    knob_node *idx = knob_input_i32(g, "idx", 2, (int[]){3, 9});
    knob_node *att = knob_attention(g, knob_param(g, qkv), 5);                      // (3, 9, 130)
    knob_node *h = knob_add(g, att, knob_embedding(g, knob_param(g, tab), idx));
    h = knob_layernorm(g, knob_dropout(g, h, 0.2f), knob_param(g, lw), knob_param(g, lb));
    knob_node *wts = knob_input(g, "w", 3, (int[]){3, 9, 130});
    knob_node *loss = knob_sum_all(g, knob_mul(g, h, wts));
    KNOB_ASSERT(knob_graph_compile(g, &err) == KNOB_OK);
    for (int i = 0; i < 27; i++)
        knob_node_data_i32(idx)[i] = i % 4;
    for (int i = 0; i < 27 * 130; i++)
        knob_node_data(wts)[i] = knob_rng_normal(&r);
    knob_graph_seed(g, 5);
    KNOB_ASSERT(knob_graph_forward(g, &err) == KNOB_OK);
    knob_graph_backward(g, loss);
    memcpy(out, P.grad, n_out * sizeof(float));
    knob_graph_free(g);
    knob_params_free(&P);
    knob_threads_set(0);
}

TEST(nn_grads_same_bits_any_threads)
{
    size_t n = 3 * 9 * 390 + 130 + 130 + 4 * 130;
    float *a = knob_malloc(n * sizeof(float)), *b = knob_malloc(n * sizeof(float));
    KNOB_ASSERT(a && b);
    nn_grads(1, a, n);
    nn_grads(0, b, n);
    CHECK(memcmp(a, b, n * sizeof(float)) == 0);
    nn_grads(3, b, n);
    CHECK(memcmp(a, b, n * sizeof(float)) == 0);
    knob_free(a);
    knob_free(b);
}
