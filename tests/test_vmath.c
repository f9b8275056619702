/* test_vmath.c: knob's own exp (knob_vexp, src/kernels/nn.c) against libm's double exp, in both
 * forms (portable and AVX2 where the CPU has it); the GELU loops and the fused softmax
 * cross-entropy that use it, against formulas in double and finite differences, under every
 * kernel level this CPU can run (knob_kernel_force). */
#include "test.h"

/* |got - want| in units of the last place of want's float */
static double ulps(float got, double want)
{
    float w = fabsf((float)want);
    double ulp = (double)nextafterf(w, INFINITY) - (double)w;
    return fabs((double)got - want) / ulp;
}

static int levels(int *out)   /* the kernel levels this CPU runs: portable, then AVX2 if present */
{
    int n = 0;
    knob_kernel_force(-1);
    for (int l = KNOB_ISA_PORTABLE; l <= knob_kernel_isa(); l++)
        out[n++] = l;
    return n;
}

TEST(vmath_exp_within_1_5_ulp_of_double_exp)
{
    /* a dense sweep of [-87.3, 88.7] (normal results) plus random points, at every level */
    knob_rng r;
    knob_rng_seed(&r, 3);
    enum { N = 400000 };
    static float xs[N], ys[N];
    for (int i = 0; i < N; i++)
        xs[i] = i < N / 2 ? -87.3f + 176.0f * (float)i / (float)(N / 2)
                          : -87.3f + 176.0f * knob_rng_uniform(&r);
    int lv[4], n_lv = levels(lv);
    for (int k = 0; k < n_lv; k++) {
        knob_vexp(ys, xs, N, lv[k]);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double u = ulps(ys[i], exp((double)xs[i]));
            worst = u > worst || u != u ? u : worst;
        }
        if (!(worst <= 1.5))
            test_fail_at(__FILE__, __LINE__, "%s exp: max error %.2f ulp (want <= 1.5)", knob_isa_name(lv[k]), worst);
        /* the edges: overflow, underflow, NaN, exact points, a denormal (5.5e-42), through the
         * vector body (8) and the scalar tail (the 9th) */
        float in[9] = {0.0f, 89.0f, -200.0f, NAN, INFINITY, -INFINITY, -95.0f, 1.0f, 1e30f}, y[9];
        knob_vexp(y, in, 9, lv[k]);
        CHECK(y[0] == 1.0f && isinf(y[1]) && y[2] == 0.0f && isnan(y[3]) && isinf(y[4]) && y[5] == 0.0f);
        CHECK_NEAR(y[6], exp(-95.0), 1e-3, 0);
        CHECK_NEAR(y[7], exp(1.0), 1.2e-7, 0);
        CHECK(isinf(y[8]));
    }
    knob_kernel_force(-1);
}

static double gelu_ref(double x) { return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x))); }

TEST(vmath_gelu_loops_match_the_formula_at_every_level)
{
    enum { N = 40003 };   /* over KNOB_PAR_MIN (the vector loops), not a multiple of 8 (the tails) */
    static float x[N], y[N], dx[N], dy[N];
    int lv[4], n_lv = levels(lv);
    for (int k = 0; k < n_lv; k++) {
        knob_kernel_force(lv[k]);
        for (int i = 0; i < N; i++) {
            x[i] = -12.0f + 24.0f * (float)i / (float)(N - 1);
            dy[i] = 0.5f + (float)(i % 7);
            dx[i] = 1.0f;
        }
        knob_gelu_forward(y, x, N);
        knob_gelu_backward(dx, dy, x, N);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            double xi = x[i], want = gelu_ref(xi), h = 1e-6;
            double d = (gelu_ref(xi + h) - gelu_ref(xi - h)) / (2 * h);
            bad += fabs(y[i] - want) > 6e-7 + 3e-6 * fabs(want);
            bad += fabs((dx[i] - 1.0) - dy[i] * d) > dy[i] * 5e-6 + 1e-5 * fabs(dy[i] * d);
        }
        if (bad)
            test_fail_at(__FILE__, __LINE__, "%s: %d GELU values or slopes off the formula", knob_isa_name(lv[k]), bad);
        float big = -100.0f, out;   /* e overflows: y = 0, slope 0 */
        knob_gelu_forward(&out, &big, 1);
        CHECK(out == 0.0f || out == -0.0f);
    }
    knob_kernel_force(-1);
}

/* ------------------------------------------------------------------------------------------------
 * Fused softmax cross-entropy (V >= 1024): loss against log-sum-exp in double, dz against
 * (softmax - onehot) / n in double and central differences, with one ignored row and logits far
 * apart. */

enum { CE_N = 4, CE_V = 1500 };

static void ce_run(float *loss, float *dz, const float *z0, const int32_t *t)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *z = knob_params_add(&P, "z", 2, (int[]){CE_N, CE_V}, &err);
    KNOB_ASSERT(z && knob_params_alloc(&P, &err) == KNOB_OK);
    memcpy(z->data, z0, sizeof(float) * CE_N * CE_V);
    knob_graph *g = knob_graph_new(&err);
    knob_node *tg = knob_input_i32(g, "t", 1, (int[]){CE_N});
    knob_node *l = knob_cross_entropy(g, knob_param(g, z), tg, -100);
    KNOB_ASSERT(knob_graph_compile(g, &err) == KNOB_OK);
    memcpy(knob_node_data_i32(tg), t, sizeof(int32_t) * CE_N);
    KNOB_ASSERT(knob_graph_forward(g, &err) == KNOB_OK);
    *loss = knob_node_data(l)[0];
    if (dz) {
        knob_params_zero_grad(&P);
        knob_graph_backward(g, l);
        memcpy(dz, z->grad, sizeof(float) * CE_N * CE_V);
    }
    knob_graph_free(g);
    knob_params_free(&P);
}

TEST(vmath_fused_cross_entropy_matches_double_math)
{
    static float z[CE_N * CE_V], dz[CE_N * CE_V];
    int32_t t[CE_N] = {3, 1499, -100, 700};
    knob_rng r;
    knob_rng_seed(&r, 9);
    for (int i = 0; i < CE_N * CE_V; i++)
        z[i] = 3.0f * knob_rng_normal(&r);
    z[0 * CE_V + 1200] = 60.0f;    /* a late, large max: the running sum is rescaled */
    z[3 * CE_V + 5] = -80.0f;
    /* the reference, in double */
    static double p[CE_N][CE_V];
    double want = 0;
    for (int i = 0; i < CE_N; i++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < CE_V; j++)
            m = fmax(m, z[i * CE_V + j]);
        for (int j = 0; j < CE_V; j++)
            s += exp(z[i * CE_V + j] - m);
        for (int j = 0; j < CE_V; j++)
            p[i][j] = exp(z[i * CE_V + j] - m) / s;
        if (t[i] >= 0)
            want += m + log(s) - z[i * CE_V + t[i]];
    }
    want /= 3;   /* three counted rows */
    int lv[4], n_lv = levels(lv);
    for (int k = 0; k < n_lv; k++) {
        knob_kernel_force(lv[k]);
        float loss;
        ce_run(&loss, dz, z, t);
        CHECK_NEAR(loss, want, 2e-6, 0);
        double worst = 0;
        for (int i = 0; i < CE_N; i++)
            for (int j = 0; j < CE_V; j++) {
                double g = t[i] < 0 ? 0.0 : (p[i][j] - (j == t[i])) / 3;
                double e = fabs(dz[i * CE_V + j] - g);
                worst = e > worst ? e : worst;
            }
        if (worst > 1e-7)
            test_fail_at(__FILE__, __LINE__, "%s: dz differs from (softmax - onehot) / n by %g", knob_isa_name(lv[k]), worst);
        /* central differences on a few logits, the loss recomputed by the op itself */
        const int pick[][2] = {{0, 3}, {0, 1200}, {1, 1499}, {3, 700}, {3, 17}, {2, 9}};
        for (size_t q = 0; q < sizeof pick / sizeof pick[0]; q++) {
            int at = pick[q][0] * CE_V + pick[q][1];
            float keep = z[at], lp, lm, h = 1e-2f;
            z[at] = keep + h;
            ce_run(&lp, NULL, z, t);
            z[at] = keep - h;
            ce_run(&lm, NULL, z, t);
            z[at] = keep;
            CHECK_NEAR(dz[at], ((double)lp - (double)lm) / (2.0 * h), 0.02, 2e-5);
        }
    }
    knob_kernel_force(-1);
}
