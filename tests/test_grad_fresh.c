/* test_grad_fresh.c: knob_graph_backward's fresh gradients (graph.c: the first op to pass a
 * gradient into an activation writes it whole, or has it zeroed just before) give the gradients of
 * zero-then-add: through a product of a node with itself, a bias add, a reshape view read by GELU,
 * a second consumer (a times a: one node twice, fresh), a side branch off the loss's path and a
 * matrix product (both operands, a shared b summing its batches). Checked against the derivative
 * written here in double, and over two passes with garbage left in every activation grad between
 * them, which must not leak into the second. knob_graph_backward_set against zeroing then
 * backward. */
#include "test.h"

/* GELU's derivative, tanh form, in double */
static double gelu_grad_ref(double a)
{
    double k = sqrt(2.0 / 3.14159265358979323846), u = k * (a + 0.044715 * a * a * a), t = tanh(u);
    return 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * k * (1 + 3 * 0.044715 * a * a);
}

TEST(grad_fresh_gives_the_zero_then_add_gradients)
{
    enum { R = 3, C = 5 };
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *xt = knob_params_add(&P, "x", 2, (int[]){R, C}, &err);
    knob_tensor *wt = knob_params_add(&P, "w", 1, (int[]){C}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    if (test_failed_now)
        return;
    knob_rng rng;
    knob_rng_seed(&rng, 5);
    for (int i = 0; i < R * C; i++)
        xt->data[i] = knob_rng_normal(&rng);
    for (int j = 0; j < C; j++)
        wt->data[j] = 0.5f * knob_rng_normal(&rng);
    knob_graph *g = knob_graph_new(&err);
    knob_node *x = knob_param(g, xt), *w = knob_param(g, wt);
    knob_node *h = knob_mul(g, x, x);                              /* a parameter twice */
    knob_node *a = knob_add(g, h, w);                              /* bias add (R, C) + (C) */
    knob_node *r = knob_reshape(g, a, 1, (int[]){R * C});          /* a view of a */
    knob_node *side = knob_exp(g, a);                              /* off the loss's path */
    knob_node *sg = knob_sum_all(g, knob_gelu(g, r));
    knob_node *aa = knob_mul(g, a, a);   /* after the GELU, so backward reaches it first: a fresh, twice */
    knob_node *loss = knob_add(g, sg, knob_sum_all(g, aa));
    CHECK(side != NULL);
    CHECK_OK(knob_graph_compile(g, &err));
    if (test_failed_now) {
        knob_graph_free(g);
        knob_params_free(&P);
        return;
    }
    float first[R * C + C];
    for (int pass = 0; pass < 2; pass++) {
        knob_params_zero_grad(&P);
        CHECK_OK(knob_graph_forward(g, &err));
        knob_graph_backward(g, loss);
        for (int i = 0; i < R * C; i++) {   /* dL/dx = (gelu'(a) + 2 a) 2 x */
            double av = (double)xt->data[i] * xt->data[i] + wt->data[i % C];
            CHECK_NEAR(xt->grad[i], (gelu_grad_ref(av) + 2 * av) * 2 * xt->data[i], 1e-5, 1e-5);
        }
        for (int j = 0; j < C; j++) {       /* dL/dw_j = sum_i (gelu'(a_ij) + 2 a_ij) */
            double want = 0;
            for (int i = 0; i < R; i++) {
                double av = (double)xt->data[i * C + j] * xt->data[i * C + j] + wt->data[j];
                want += gelu_grad_ref(av) + 2 * av;
            }
            CHECK_NEAR(wt->grad[j], want, 1e-5, 1e-5);
        }
        const float *gs = knob_node_grad(side);
        for (int i = 0; gs && i < R * C; i++)
            CHECK(gs[i] == 0.0f);
        if (pass == 0) {
            memcpy(first, xt->grad, R * C * sizeof(float));
            memcpy(first + R * C, wt->grad, C * sizeof(float));
            /* garbage in every activation grad: the next pass must not read it */
            knob_node *acts[] = {h, a, side};
            for (size_t k = 0; k < sizeof acts / sizeof *acts; k++) {
                float *gr = knob_node_grad(acts[k]);
                for (int i = 0; gr && i < R * C; i++)
                    gr[i] = 1e3f;
            }
        } else {
            CHECK(memcmp(first, xt->grad, R * C * sizeof(float)) == 0);
            CHECK(memcmp(first + R * C, wt->grad, C * sizeof(float)) == 0);
        }
    }
    knob_graph_free(g);
    knob_params_free(&P);
}

static double gelu_ref(double a)
{
    double k = sqrt(2.0 / 3.14159265358979323846);
    return 0.5 * a * (1 + tanh(k * (a + 0.044715 * a * a * a)));
}

/* A matrix product writes both operands' fresh grads (beta 0), including a 2-D b shared by the
 * batches, whose grad sums them (the first batch writes, the rest add): z = op(a) b with a =
 * gelu(x1) stored transposed (BT, K, M) and b = gelu(x2) (K, N), loss = sum z^2; against the chain
 * rule in double, twice, with garbage left in a's and b's grads between the passes. */
TEST(grad_fresh_matmul_writes_both_operands)
{
    enum { BT = 2, K = 3, M = 4, N = 5 };
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *x1 = knob_params_add(&P, "x1", 3, (int[]){BT, K, M}, &err);
    knob_tensor *x2 = knob_params_add(&P, "x2", 2, (int[]){K, N}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    if (test_failed_now)
        return;
    knob_rng rng;
    knob_rng_seed(&rng, 9);
    for (int i = 0; i < BT * K * M; i++)
        x1->data[i] = knob_rng_normal(&rng);
    for (int i = 0; i < K * N; i++)
        x2->data[i] = knob_rng_normal(&rng);
    knob_graph *g = knob_graph_new(&err);
    knob_node *a = knob_gelu(g, knob_param(g, x1)), *b = knob_gelu(g, knob_param(g, x2));
    knob_node *z = knob_matmul(g, a, b, 1, 0);                     /* (BT, M, N) */
    knob_node *loss = knob_sum_all(g, knob_mul(g, z, z));
    CHECK_OK(knob_graph_compile(g, &err));
    if (test_failed_now) {
        knob_graph_free(g);
        knob_params_free(&P);
        return;
    }
    double av[BT][K][M], bv[K][N], dz[BT][M][N];
    for (int t = 0; t < BT; t++)
        for (int k = 0; k < K; k++)
            for (int m = 0; m < M; m++)
                av[t][k][m] = gelu_ref(x1->data[(t * K + k) * M + m]);
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++)
            bv[k][n] = gelu_ref(x2->data[k * N + n]);
    for (int t = 0; t < BT; t++)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int k = 0; k < K; k++)
                    s += av[t][k][m] * bv[k][n];
                dz[t][m][n] = 2 * s;
            }
    for (int pass = 0; pass < 2; pass++) {
        knob_params_zero_grad(&P);
        CHECK_OK(knob_graph_forward(g, &err));
        knob_graph_backward(g, loss);
        for (int t = 0; t < BT; t++)
            for (int k = 0; k < K; k++)
                for (int m = 0; m < M; m++) {   /* da (stored k, m) = sum_n dz[m][n] b[k][n] */
                    double s = 0;
                    for (int n = 0; n < N; n++)
                        s += dz[t][m][n] * bv[k][n];
                    int i = (t * K + k) * M + m;
                    CHECK_NEAR(x1->grad[i], s * gelu_grad_ref(x1->data[i]), 1e-4, 1e-5);
                }
        for (int k = 0; k < K; k++)
            for (int n = 0; n < N; n++) {       /* db = sum over batches of op(a)^T dz */
                double s = 0;
                for (int t = 0; t < BT; t++)
                    for (int m = 0; m < M; m++)
                        s += av[t][k][m] * dz[t][m][n];
                CHECK_NEAR(x2->grad[k * N + n], s * gelu_grad_ref(x2->data[k * N + n]), 1e-4, 1e-5);
            }
        knob_node *acts[] = {a, b};   /* garbage: the second pass must write, not add */
        for (size_t q = 0; q < 2; q++) {
            float *gr = knob_node_grad(acts[q]);
            size_t n = q == 0 ? (size_t)BT * K * M : (size_t)K * N;
            for (size_t i = 0; gr && i < n; i++)
                gr[i] = 1e3f;
        }
    }
    knob_graph_free(g);
    knob_params_free(&P);
}

/* knob_graph_backward_set == knob_params_zero_grad then knob_graph_backward, bit for bit, with
 * garbage in every parameter grad before it: on a graph whose parameters reach the loss through
 * an embedding (zeroed by the graph), a matrix product (written fresh), a bias add, a layernorm's
 * weight and bias, an elementwise product of one parameter with itself, one tensor behind two
 * parameter nodes (tied: zeroed up front), a parameter off the loss's path and one not in the
 * graph at all (both must read zero). Then a second backward adds, as micro-batches do. */
TEST(grad_backward_set_is_zero_then_backward)
{
    enum { T = 6, V = 7, C = 8, O = 5 };
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *wte = knob_params_add(&P, "wte", 2, (int[]){V, C}, &err);
    knob_tensor *lnw = knob_params_add(&P, "ln.w", 1, (int[]){C}, &err);
    knob_tensor *lnb = knob_params_add(&P, "ln.b", 1, (int[]){C}, &err);
    knob_tensor *w = knob_params_add(&P, "w", 2, (int[]){O, C}, &err);
    knob_tensor *b = knob_params_add(&P, "b", 1, (int[]){O}, &err);
    knob_tensor *s = knob_params_add(&P, "s", 1, (int[]){O}, &err);
    knob_tensor *tied = knob_params_add(&P, "tied", 1, (int[]){O}, &err);
    knob_tensor *side = knob_params_add(&P, "side", 1, (int[]){O}, &err);
    knob_tensor *unused = knob_params_add(&P, "unused", 1, (int[]){3}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    if (test_failed_now)
        return;
    knob_rng rng;
    knob_rng_seed(&rng, 21);
    for (size_t i = 0; i < P.n_elems; i++)
        P.data[i] = 0.5f * knob_rng_normal(&rng);
    knob_graph *g = knob_graph_new(&err);
    knob_node *idx = knob_input_i32(g, "idx", 1, (int[]){T});
    knob_node *tgt = knob_input_i32(g, "tgt", 1, (int[]){T});
    knob_node *h = knob_embedding(g, knob_param(g, wte), idx);                       /* (T, C) */
    h = knob_layernorm(g, h, knob_param(g, lnw), knob_param(g, lnb));
    knob_node *z = knob_add(g, knob_matmul(g, h, knob_param(g, w), 0, 1), knob_param(g, b));
    knob_node *sn = knob_param(g, s);
    z = knob_add(g, z, knob_mul(g, sn, sn));                                        /* s twice */
    z = knob_add(g, knob_mul(g, z, knob_param(g, tied)), knob_param(g, tied));      /* tied */
    knob_node *off = knob_exp(g, knob_param(g, side));                             /* off the path */
    knob_node *loss = knob_cross_entropy(g, z, tgt, -1);
    CHECK(off != NULL);
    CHECK_OK(knob_graph_compile(g, &err));
    if (test_failed_now) {
        knob_graph_free(g);
        knob_params_free(&P);
        return;
    }
    for (int i = 0; i < T; i++) {
        knob_node_data_i32(idx)[i] = (int32_t)knob_rng_below(&rng, V);
        knob_node_data_i32(tgt)[i] = (int32_t)knob_rng_below(&rng, O);
    }
    size_t bytes = P.n_elems * sizeof(float);
    float *want = malloc(bytes), *want2 = malloc(bytes);
    KNOB_ASSERT(want && want2);
    CHECK_OK(knob_graph_forward(g, &err));
    knob_params_zero_grad(&P);
    knob_graph_backward(g, loss);
    memcpy(want, P.grad, bytes);
    knob_graph_backward(g, loss);        /* a second micro-batch adds */
    memcpy(want2, P.grad, bytes);
    for (size_t i = 0; i < P.n_elems; i++)
        P.grad[i] = 1e3f + (float)i;     /* garbage: set must not read it */
    knob_graph_backward_set(g, loss, &P);
    CHECK(memcmp(want, P.grad, bytes) == 0);
    for (int i = 0; i < 3; i++)
        CHECK(unused->grad[i] == 0.0f);
    for (int i = 0; i < O; i++)
        CHECK(side->grad[i] == 0.0f && w->grad[i] != 0.0f && tied->grad[i] != 0.0f && s->grad[i] != 0.0f);
    knob_graph_backward(g, loss);
    CHECK(memcmp(want2, P.grad, bytes) == 0);
    free(want);
    free(want2);
    knob_graph_free(g);
    knob_params_free(&P);
}

/* The image ops write fresh grads too: x -> conv2d 3x3 (+ bias) -> relu -> maxpool 2x2 -> conv2d
 * K2 x K2 -> loss = sum z^2, with K2 = 2 (the second conv's dx through col2im) and K2 = 1 (a 1x1
 * conv, whose dx the gemm writes). relu, maxpool and the second conv each get a fresh grad to
 * write. Against the chain rule in double, twice, with garbage left in every activation grad
 * between the passes; then knob_graph_backward_set with garbage in the parameters' grads. */
TEST(grad_fresh_conv_relu_maxpool)
{
    enum { B = 2, H = 6, C1 = 2, A = H - 2, Q = A / 2, C2 = 3 };
    for (int K2 = 1; K2 <= 2; K2++) {
        const int O2 = Q - K2 + 1;
        knob_err err;
        knob_params P;
        knob_params_init(&P);
        knob_tensor *xt = knob_params_add(&P, "x", 4, (int[]){B, 1, H, H}, &err);
        knob_tensor *w1 = knob_params_add(&P, "w1", 4, (int[]){C1, 1, 3, 3}, &err);
        knob_tensor *b1 = knob_params_add(&P, "b1", 1, (int[]){C1}, &err);
        knob_tensor *w2 = knob_params_add(&P, "w2", 4, (int[]){C2, C1, K2, K2}, &err);
        CHECK_OK(knob_params_alloc(&P, &err));
        if (test_failed_now)
            return;
        knob_rng rng;
        knob_rng_seed(&rng, 33 + (uint64_t)K2);
        for (size_t i = 0; i < P.n_elems; i++)
            P.data[i] = knob_rng_normal(&rng);
        knob_graph *g = knob_graph_new(&err);
        knob_node *a = knob_conv2d(g, knob_param(g, xt), knob_param(g, w1), knob_param(g, b1), 1, 0);
        knob_node *r = knob_relu(g, a);
        knob_node *p = knob_maxpool2d(g, r, 2, 2);
        knob_node *z = knob_conv2d(g, p, knob_param(g, w2), NULL, 1, 0);
        knob_node *loss = knob_sum_all(g, knob_mul(g, z, z));
        CHECK_OK(knob_graph_compile(g, &err));
        if (test_failed_now) {
            knob_graph_free(g);
            knob_params_free(&P);
            return;
        }
        /* forward in double */
        double av[B][C1][A][A], pv[B][C1][Q][Q], dz[B][C2][Q][Q];
        int arg[B][C1][Q][Q];   /* row-major index in the (A, A) plane of each window's max */
        for (int n = 0; n < B; n++)
            for (int c = 0; c < C1; c++)
                for (int i = 0; i < A; i++)
                    for (int j = 0; j < A; j++) {
                        double s = b1->data[c];
                        for (int u = 0; u < 3; u++)
                            for (int v = 0; v < 3; v++)
                                s += (double)w1->data[(c * 3 + u) * 3 + v] * xt->data[(n * H + i + u) * H + j + v];
                        av[n][c][i][j] = s;
                    }
        for (int n = 0; n < B; n++)
            for (int c = 0; c < C1; c++)
                for (int i = 0; i < Q; i++)
                    for (int j = 0; j < Q; j++) {
                        int best = -1;
                        double m = 0;
                        for (int u = 0; u < 2; u++)
                            for (int v = 0; v < 2; v++) {
                                double rv = av[n][c][2 * i + u][2 * j + v] > 0 ? av[n][c][2 * i + u][2 * j + v] : 0;
                                if (best < 0 || rv > m) {
                                    best = (2 * i + u) * A + 2 * j + v;
                                    m = rv;
                                }
                            }
                        pv[n][c][i][j] = m;
                        arg[n][c][i][j] = best;
                    }
        for (int n = 0; n < B; n++)
            for (int o = 0; o < C2; o++)
                for (int i = 0; i < O2; i++)
                    for (int j = 0; j < O2; j++) {
                        double s = 0;
                        for (int c = 0; c < C1; c++)
                            for (int u = 0; u < K2; u++)
                                for (int v = 0; v < K2; v++)
                                    s += (double)w2->data[((o * C1 + c) * K2 + u) * K2 + v] * pv[n][c][i + u][j + v];
                        dz[n][o][i][j] = 2 * s;
                    }
        /* backward in double: dp, then da (the max's place, where a > 0), then dx, dw1, db1, dw2 */
        double dp[B][C1][Q][Q] = {{{{0}}}}, da[B][C1][A][A] = {{{{0}}}};
        double dx[B][H][H] = {{{0}}}, dw1[C1][3][3] = {{{0}}}, db1[C1] = {0}, dw2[C2][C1][2][2] = {{{{0}}}};
        for (int n = 0; n < B; n++)
            for (int o = 0; o < C2; o++)
                for (int i = 0; i < O2; i++)
                    for (int j = 0; j < O2; j++)
                        for (int c = 0; c < C1; c++)
                            for (int u = 0; u < K2; u++)
                                for (int v = 0; v < K2; v++) {
                                    dp[n][c][i + u][j + v] += w2->data[((o * C1 + c) * K2 + u) * K2 + v] * dz[n][o][i][j];
                                    dw2[o][c][u][v] += pv[n][c][i + u][j + v] * dz[n][o][i][j];
                                }
        for (int n = 0; n < B; n++)
            for (int c = 0; c < C1; c++)
                for (int i = 0; i < Q; i++)
                    for (int j = 0; j < Q; j++) {
                        int m = arg[n][c][i][j];
                        if (av[n][c][m / A][m % A] > 0)
                            da[n][c][m / A][m % A] += dp[n][c][i][j];
                    }
        for (int n = 0; n < B; n++)
            for (int c = 0; c < C1; c++)
                for (int i = 0; i < A; i++)
                    for (int j = 0; j < A; j++) {
                        db1[c] += da[n][c][i][j];
                        for (int u = 0; u < 3; u++)
                            for (int v = 0; v < 3; v++) {
                                dx[n][i + u][j + v] += w1->data[(c * 3 + u) * 3 + v] * da[n][c][i][j];
                                dw1[c][u][v] += xt->data[(n * H + i + u) * H + j + v] * da[n][c][i][j];
                            }
                    }
        for (int pass = 0; pass < 2; pass++) {
            knob_params_zero_grad(&P);
            CHECK_OK(knob_graph_forward(g, &err));
            knob_graph_backward(g, loss);
            for (int i = 0; i < B * H * H; i++)
                CHECK_NEAR(xt->grad[i], dx[i / (H * H)][i / H % H][i % H], 1e-4, 1e-5);
            for (int i = 0; i < C1 * 9; i++)
                CHECK_NEAR(w1->grad[i], dw1[i / 9][i / 3 % 3][i % 3], 1e-4, 1e-5);
            for (int c = 0; c < C1; c++)
                CHECK_NEAR(b1->grad[c], db1[c], 1e-4, 1e-5);
            for (int o = 0; o < C2; o++)
                for (int c = 0; c < C1; c++)
                    for (int u = 0; u < K2; u++)
                        for (int v = 0; v < K2; v++)
                            CHECK_NEAR(w2->grad[((o * C1 + c) * K2 + u) * K2 + v], dw2[o][c][u][v], 1e-4, 1e-5);
            knob_node *acts[] = {a, r, p, z};   /* garbage: the second pass must write, not add */
            for (size_t q = 0; q < sizeof acts / sizeof *acts; q++) {
                float *gr = knob_node_grad(acts[q]);
                size_t ne = knob_node_tensor(acts[q])->n_elems;
                for (size_t i = 0; gr && i < ne; i++)
                    gr[i] = 1e3f;
            }
        }
        /* knob_graph_backward_set: the parameters' grads (conv2d's weight and bias, fresh here)
         * are written or zeroed, not added to: garbage in them must not leak either */
        size_t bytes = P.n_elems * sizeof(float);
        float *want = malloc(bytes);
        KNOB_ASSERT(want);
        memcpy(want, P.grad, bytes);
        for (size_t i = 0; i < P.n_elems; i++)
            P.grad[i] = 1e3f;
        knob_graph_backward_set(g, loss, &P);
        CHECK(memcmp(want, P.grad, bytes) == 0);
        free(want);
        knob_graph_free(g);
        knob_params_free(&P);
    }
}
