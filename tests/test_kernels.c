/* test_kernels.c: the shared row kernels of src/kernels/nn.c and the attention block, against
 * independent math written here in double: layernorm (forward from its definition, backward by
 * central differences of a double forward), GELU (the tanh formula in double, its derivative by
 * central differences), softmax / log-softmax / log-sum-exp / the loss of one target (including
 * rows far from 0, where a naive exp overflows), their backward by central differences, and one
 * causal attention block against a triple loop. */
#include "test.h"

static void fill(float *x, size_t n, uint64_t seed, float scale)
{
    knob_rng r;
    knob_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * knob_rng_normal(&r);
}

/* ------------------------------------------------------------------------------------------------
 * LayerNorm */

/* y (C) in double from the definition: (x - mean) / sqrt(var + eps) * w + b */
static void ln_ref(double *y, const double *x, const float *w, const float *b, int C)
{
    double m = 0, v = 0;
    for (int i = 0; i < C; i++)
        m += x[i];
    m /= C;
    for (int i = 0; i < C; i++)
        v += (x[i] - m) * (x[i] - m);
    v /= C;
    for (int i = 0; i < C; i++)
        y[i] = (x[i] - m) / sqrt(v + 1e-5) * w[i] + (b ? b[i] : 0.0);
}

/* sum_i g_i y_i for one row, y from ln_ref */
static double ln_loss(const double *x, const float *w, const float *b, const float *g, int C)
{
    double y[64], s = 0;
    ln_ref(y, x, w, b, C);
    for (int i = 0; i < C; i++)
        s += g[i] * y[i];
    return s;
}

TEST(kernel_layernorm_forward_and_backward)
{
    enum { N = 3, C = 37 };
    float x[N * C], w[C], b[C], y[N * C], stats[2 * N], g[N * C];
    fill(x, N * C, 1, 2.0f);
    for (int i = 0; i < N * C; i++)
        x[i] += 3.0f;   /* a mean far from 0 */
    fill(w, C, 2, 0.5f);
    fill(b, C, 3, 0.5f);
    fill(g, N * C, 4, 1.0f);
    knob_layernorm_forward(y, stats, x, w, b, N, C);
    for (int r = 0; r < N; r++) {
        double xd[C], yd[C], m = 0;
        for (int i = 0; i < C; i++)
            m += (xd[i] = x[r * C + i]);
        ln_ref(yd, xd, w, b, C);
        for (int i = 0; i < C; i++)
            CHECK_NEAR(y[r * C + i], yd[i], 1e-5, 1e-5);
        CHECK_NEAR(stats[2 * r], m / C, 1e-6, 1e-6);
    }
    /* backward of loss = sum g y, accumulating onto 1s */
    float dx[N * C], dw[C], db[C];
    for (int i = 0; i < N * C; i++)
        dx[i] = 1.0f;
    for (int i = 0; i < C; i++)
        dw[i] = db[i] = 1.0f;
    float scratch[2 * C];   /* N rows: one block */
    KNOB_ASSERT(knob_layernorm_scratch(N, C) == 2 * C);
    knob_layernorm_backward(dx, dw, db, g, x, w, stats, scratch, N, C);
    double h = 1e-4, dwr[C] = {0}, dbr[C] = {0};
    for (int r = 0; r < N; r++) {
        double xd[C];
        for (int i = 0; i < C; i++)
            xd[i] = x[r * C + i];
        for (int j = 0; j < C; j++) {
            double keep = xd[j];
            xd[j] = keep + h;
            double lp = ln_loss(xd, w, b, g + r * C, C);
            xd[j] = keep - h;
            double lm = ln_loss(xd, w, b, g + r * C, C);
            xd[j] = keep;
            CHECK_NEAR(dx[r * C + j] - 1.0, (lp - lm) / (2 * h), 1e-3, 1e-4);
        }
        double yd[C];
        float ones[C];
        for (int i = 0; i < C; i++)
            ones[i] = 1.0f;
        ln_ref(yd, xd, ones, NULL, C);   /* xhat */
        for (int i = 0; i < C; i++) {
            dwr[i] += g[r * C + i] * yd[i];
            dbr[i] += g[r * C + i];
        }
    }
    for (int i = 0; i < C; i++) {
        CHECK_NEAR(dw[i] - 1.0, dwr[i], 1e-4, 1e-5);
        CHECK_NEAR(db[i] - 1.0, dbr[i], 1e-5, 1e-5);
    }
    /* NULL stats and NULL bias are allowed */
    knob_layernorm_forward(y, NULL, x, w, NULL, 1, C);
    double xd[C], yd[C];
    for (int i = 0; i < C; i++)
        xd[i] = x[i];
    ln_ref(yd, xd, w, NULL, C);
    CHECK_NEAR(y[5], yd[5], 1e-5, 1e-5);
}

/* Backward over many rows: dw and db sum 70 rows in blocks (32, 32, 6), dx row by row, with C 40
 * (the AVX2 rows where the CPU has them) and C 13 (the portable ones); against sums and the dx
 * formula in double, and with the same bits on 1 and 2 threads, fresh or accumulating. */
TEST(kernel_layernorm_backward_many_rows)
{
    enum { N = 70, CMAX = 40 };
    static const int Cs[] = {40, 13};
    for (int c = 0; c < 2; c++) {
        const int C = Cs[c];
        static float x[N * CMAX], w[CMAX], g[N * CMAX], stats[2 * N], y[N * CMAX];
        static float dx[2][N * CMAX], dw[2][CMAX], db[2][CMAX], scratch[2 * 3 * CMAX];
        CHECK(knob_layernorm_scratch(N, C) == (size_t)2 * 3 * C);
        fill(x, (size_t)N * C, 11 + (uint64_t)c, 1.5f);
        fill(w, (size_t)C, 12, 0.7f);
        fill(g, (size_t)N * C, 13, 1.0f);
        knob_layernorm_forward(y, stats, x, w, NULL, N, C);
        for (int t = 0; t < 2; t++) {
            knob_threads_set(t + 1);
            for (int i = 0; i < C; i++)
                dw[t][i] = db[t][i] = 0.5f;
            knob_layernorm_backward_fresh(dx[t], dw[t], db[t], g, x, w, stats, scratch, N, C);
        }
        knob_threads_set(0);
        CHECK(memcmp(dx[0], dx[1], sizeof(float) * N * C) == 0);
        CHECK(memcmp(dw[0], dw[1], sizeof(float) * C) == 0);
        CHECK(memcmp(db[0], db[1], sizeof(float) * C) == 0);
        double dwr[CMAX] = {0}, dbr[CMAX] = {0};
        for (int r = 0; r < N; r++) {
            double xd[CMAX], xh[CMAX], m1 = 0, m2 = 0;
            float ones[CMAX];
            for (int i = 0; i < C; i++) {
                xd[i] = x[r * C + i];
                ones[i] = 1.0f;
            }
            ln_ref(xh, xd, ones, NULL, C);   /* xhat */
            double m = 0, v = 0;
            for (int i = 0; i < C; i++)
                m += xd[i] / C;
            for (int i = 0; i < C; i++)
                v += (xd[i] - m) * (xd[i] - m) / C;
            double rstd = 1 / sqrt(v + 1e-5);
            for (int i = 0; i < C; i++) {
                m1 += g[r * C + i] * w[i] / C;
                m2 += g[r * C + i] * w[i] * xh[i] / C;
                dwr[i] += g[r * C + i] * xh[i];
                dbr[i] += g[r * C + i];
            }
            for (int i = 0; i < C; i++)
                CHECK_NEAR(dx[0][r * C + i], rstd * (g[r * C + i] * w[i] - m1 - xh[i] * m2), 1e-4, 1e-4);
        }
        for (int i = 0; i < C; i++) {
            CHECK_NEAR(dw[0][i] - 0.5, dwr[i], 1e-4, 1e-4);
            CHECK_NEAR(db[0][i] - 0.5, dbr[i], 1e-4, 1e-4);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * GELU */

static double gelu_ref(double x) { return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x))); }

TEST(kernel_gelu_against_the_formula)
{
    enum { N = 481 };
    float x[N], y[N], dx[N], dy[N];
    for (int i = 0; i < N; i++) {
        x[i] = -12.0f + 24.0f * (float)i / (N - 1);
        dy[i] = 1.0f;
        dx[i] = 0.5f;
    }
    knob_gelu_forward(y, x, N);
    knob_gelu_backward(dx, dy, x, N);
    for (int i = 0; i < N; i++) {
        double want = gelu_ref(x[i]), h = 1e-5;
        CHECK_NEAR(y[i], want, 3e-6, 6e-7);
        CHECK_NEAR(knob_gelu1(x[i]), want, 3e-6, 6e-7);
        double d = (gelu_ref((double)x[i] + h) - gelu_ref((double)x[i] - h)) / (2 * h);
        CHECK_NEAR(dx[i] - 0.5, d, 1e-5, 1e-6);
        CHECK_NEAR(knob_gelu1_grad(x[i]), d, 1e-5, 5e-7);
    }
    /* below -3 the tanh form in float loses its digits; the kernel keeps them */
    CHECK_NEAR(knob_gelu1(-5.0f), gelu_ref(-5.0), 1e-5, 0);
    float big = -100.0f, out;
    knob_gelu_forward(&out, &big, 1);
    CHECK(out == 0.0f || fabsf(out) < 1e-30f);
    CHECK(knob_gelu1_grad(-100.0f) == 0.0f);
}

/* ------------------------------------------------------------------------------------------------
 * Softmax rows */

static void softmax_ref(double *p, const float *x, size_t n)
{
    double m = x[0], s = 0;
    for (size_t j = 1; j < n; j++)
        m = fmax(m, x[j]);
    for (size_t j = 0; j < n; j++)
        s += exp(x[j] - m);
    for (size_t j = 0; j < n; j++)
        p[j] = exp(x[j] - m) / s;
}

TEST(kernel_softmax_rows)
{
    enum { N = 23 };
    float x[N], y[N];
    double p[N];
    for (int shift = 0; shift < 2; shift++) {   /* near 0, then near 1000 (exp would overflow) */
        fill(x, N, 7, 3.0f);
        for (int j = 0; j < N; j++)
            x[j] += shift ? 1000.0f : 0.0f;
        softmax_ref(p, x, N);
        double loss = knob_softmax_row(y, x, N, 4);
        for (int j = 0; j < N; j++)
            CHECK_NEAR(y[j], p[j], 1e-6, 1e-8);
        CHECK_NEAR(loss, -log(p[4]), 1e-6, 1e-6);
        CHECK_NEAR(knob_nll_row(x, N, 4), -log(p[4]), 1e-6, 1e-6);
        CHECK(knob_softmax_row(y, x, N, -1) == 0.0);
        knob_log_softmax_row(y, x, N);
        for (int j = 0; j < N; j++)
            CHECK_NEAR(y[j], log(p[j]), 1e-6, 1e-5);
        /* log sum e^x = x_j - log p_j for any j */
        CHECK_NEAR(knob_logsumexp_row(x, N), (double)x[0] - log(p[0]), 1e-9, 1e-4);
    }
    /* a target whose probability underflows float still has an exact loss */
    float z[3] = {0.0f, 200.0f, 0.0f}, pz[3];
    CHECK_NEAR(knob_softmax_row(pz, z, 3, 0), 200.0 + log(1.0 + 2.0 * exp(-200.0)), 1e-9, 0);
    CHECK(pz[0] == 0.0f);
}

TEST(kernel_softmax_backward_by_differences)
{
    enum { N = 9 };
    float x[N], g[N], y[N], dx[N], dl[N];
    fill(x, N, 11, 1.5f);
    fill(g, N, 12, 1.0f);
    for (int logsm = 0; logsm < 2; logsm++) {
        for (int j = 0; j < N; j++)
            dx[j] = 0.25f;
        if (logsm) {
            knob_log_softmax_row(y, x, N);
            knob_log_softmax_row_backward(dx, y, g, N);
        } else {
            knob_softmax_row(y, x, N, -1);
            knob_softmax_row_backward(dx, y, g, N);
        }
        for (int k = 0; k < N; k++) {
            double h = 1e-4, lp = 0, lm = 0, p[N];
            float keep = x[k];
            x[k] = keep + (float)h;
            double hp = (double)x[k] - keep;
            softmax_ref(p, x, N);
            for (int j = 0; j < N; j++)
                lp += g[j] * (logsm ? log(p[j]) : p[j]);
            x[k] = keep - (float)h;
            double hm = keep - (double)x[k];
            softmax_ref(p, x, N);
            for (int j = 0; j < N; j++)
                lm += g[j] * (logsm ? log(p[j]) : p[j]);
            x[k] = keep;
            dl[k] = (float)((lp - lm) / (hp + hm));
            CHECK_NEAR(dx[k] - 0.25f, dl[k], 1e-2, 1e-4);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Attention block */

TEST(kernel_attention_block_against_loops)
{
    enum { R = 5, NK = 8, T0 = 3, HS = 6 };
    float q[R * HS], k[NK * HS], v[NK * HS], s[R * NK], o[R * HS];
    fill(q, R * HS, 21, 1.0f);
    fill(k, NK * HS, 22, 1.0f);
    fill(v, NK * HS, 23, 1.0f);
    float scale = 1.0f / sqrtf((float)HS);
    knob_attention_block(o, s, q, k, v, R, NK, T0, HS, scale);
    for (int i = 0; i < R; i++) {
        int t = T0 + i;
        double pre[NK] = {0}, m = -1e300, sum = 0;
        for (int j = 0; j <= t; j++) {
            pre[j] = 0;
            for (int c = 0; c < HS; c++)
                pre[j] += (double)q[i * HS + c] * k[j * HS + c];
            pre[j] /= sqrt((double)HS);
            m = fmax(m, pre[j]);
        }
        for (int j = 0; j <= t; j++)
            sum += exp(pre[j] - m);
        for (int j = 0; j < NK; j++) {
            double p = j <= t ? exp(pre[j] - m) / sum : 0.0;
            CHECK_NEAR(s[i * NK + j], p, 1e-5, 1e-6);
            if (j > t)
                CHECK(s[i * NK + j] == 0.0f);
        }
        for (int c = 0; c < HS; c++) {
            double want = 0;
            for (int j = 0; j <= t; j++)
                want += exp(pre[j] - m) / sum * v[j * HS + c];
            CHECK_NEAR(o[i * HS + c], want, 1e-5, 1e-5);
        }
    }
}
