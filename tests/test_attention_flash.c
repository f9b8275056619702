/* test_attention_flash.c: the flash-style attention kernels of src/kernels/attention.c (head sizes
 * 32, 64, 128) against a naive causal attention written here in double, forward (the output and
 * each row's log-sum-exp) and backward (the textbook chain rule through softmax, in double), with
 * the AVX2 and the portable kernels; the same bits for 1 and 2 threads; the op's saved buffer
 * shrinking to the log-sum-exp; and gradient checks of the op at those head sizes. */
#include "gradcheck.h"

static void fill(float *x, size_t n, uint64_t seed, float scale)
{
    knob_rng r;
    knob_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * knob_rng_normal(&r);
}

/* out (B, T, C), lse (B, NH, T) and, given dout, dqkv (B, T, 3C) in double */
static void naive_attention(double *out, double *lse, double *dqkv, const float *qkv, const float *dout, int B,
                            int T, int C, int NH)
{
    int HS = C / NH;
    size_t C3 = 3 * (size_t)C;
    double scale = 1.0 / sqrt((double)HS);
    double *p = malloc((size_t)T * sizeof *p), *dp = malloc((size_t)T * sizeof *dp);
    for (size_t i = 0; i < (size_t)B * T * C3; i++)
        dqkv[i] = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * HS;
                double m = -1e300, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * C3 + C + (size_t)h * HS;
                    double s = 0;
                    for (int c = 0; c < HS; c++)
                        s += (double)q[c] * k[c];
                    p[j] = s * scale;
                    m = fmax(m, p[j]);
                }
                for (int j = 0; j <= t; j++)
                    sum += exp(p[j] - m);
                for (int j = 0; j <= t; j++)
                    p[j] = exp(p[j] - m) / sum;
                lse[((size_t)b * NH + h) * T + t] = m + log(sum);
                double *o = out + ((size_t)b * T + t) * C + (size_t)h * HS;
                const float *g = dout + ((size_t)b * T + t) * C + (size_t)h * HS;
                for (int c = 0; c < HS; c++) {
                    o[c] = 0;
                    for (int j = 0; j <= t; j++)
                        o[c] += p[j] * qkv[((size_t)b * T + j) * C3 + 2 * (size_t)C + (size_t)h * HS + c];
                }
                /* o = sum_j p_j v_j: dv_j += p_j g, dp_j = g . v_j;
                 * p = softmax(z): dz_j = p_j (dp_j - sum_i p_i dp_i);  z_j = scale q . k_j */
                double dot = 0;
                for (int j = 0; j <= t; j++) {
                    const float *v = qkv + ((size_t)b * T + j) * C3 + 2 * (size_t)C + (size_t)h * HS;
                    double *dv = dqkv + ((size_t)b * T + j) * C3 + 2 * (size_t)C + (size_t)h * HS;
                    dp[j] = 0;
                    for (int c = 0; c < HS; c++) {
                        dp[j] += (double)g[c] * v[c];
                        dv[c] += p[j] * g[c];
                    }
                    dot += p[j] * dp[j];
                }
                double *dq = dqkv + ((size_t)b * T + t) * C3 + (size_t)h * HS;
                for (int j = 0; j <= t; j++) {
                    double dz = p[j] * (dp[j] - dot) * scale;
                    const float *k = qkv + ((size_t)b * T + j) * C3 + C + (size_t)h * HS;
                    double *dk = dqkv + ((size_t)b * T + j) * C3 + C + (size_t)h * HS;
                    for (int c = 0; c < HS; c++) {
                        dq[c] += dz * k[c];
                        dk[c] += dz * q[c];
                    }
                }
            }
    free(p);
    free(dp);
}

static void check_shape(int B, int T, int C, int NH, float amp)
{
    size_t n3 = (size_t)B * T * 3 * C, n1 = (size_t)B * T * C, nl = (size_t)B * NH * T;
    float *qkv = malloc(n3 * sizeof *qkv), *dout = malloc(n1 * sizeof *dout), *out = malloc(n1 * sizeof *out);
    float *lse = malloc(nl * sizeof *lse), *dqkv = malloc(n3 * sizeof *dqkv);
    double *ro = malloc(n1 * sizeof *ro), *rl = malloc(nl * sizeof *rl), *rd = malloc(n3 * sizeof *rd);
    fill(qkv, n3, 31 + (uint64_t)T, amp);
    fill(dout, n1, 32 + (uint64_t)T, 1.0f);
    naive_attention(ro, rl, rd, qkv, dout, B, T, C, NH);
    CHECK(knob_attention_flash_ok(T, C / NH));
    for (int portable = 0; portable < 2; portable++) {
        knob_kernel_force(portable ? KNOB_ISA_PORTABLE : -1);
        knob_attention_flash_forward(out, lse, qkv, B, T, C, NH);
        for (size_t i = 0; i < n3; i++)
            dqkv[i] = 0.5f;   /* backward accumulates */
        knob_attention_flash_backward(dqkv, dout, qkv, lse, B, T, C, NH, 0);
        double eo = 0, el = 0, ed = 0, md = 0;
        for (size_t i = 0; i < n1; i++)
            eo = fmax(eo, fabs(out[i] - ro[i]));
        for (size_t i = 0; i < nl; i++)
            el = fmax(el, fabs(lse[i] - rl[i]) / fmax(1.0, fabs(rl[i])));
        for (size_t i = 0; i < n3; i++) {
            ed = fmax(ed, fabs((dqkv[i] - 0.5) - rd[i]));
            md = fmax(md, fabs(rd[i]));
        }
        if (eo > 2e-5 || el > 2e-6 || ed > 2e-4 * fmax(1.0, md))
            test_fail_at(__FILE__, __LINE__, "B %d T %d C %d NH %d %s: out off by %.3g, lse by %.3g, dqkv by %.3g (max %.3g)",
                         B, T, C, NH, portable ? "portable" : "best ISA", eo, el, ed, md);
    }
    knob_kernel_force(-1);
    free(qkv); free(dout); free(out); free(lse); free(dqkv); free(ro); free(rl); free(rd);
}

TEST(attention_flash_matches_naive_double_attention)
{
    check_shape(2, 37, 64, 2, 1.0f);    /* HS 32; T 37: four whole blocks of 8 rows and one of 5 */
    check_shape(1, 20, 128, 2, 1.0f);   /* HS 64 */
    check_shape(1, 9, 128, 1, 1.0f);    /* HS 128, the largest */
    check_shape(2, 1, 64, 2, 1.0f);     /* one token: p = 1 */
    check_shape(1, 64, 32, 1, 4.0f);    /* sharp softmax: scores of ~ +-90 */
    CHECK(!knob_attention_flash_ok(16, 8) && !knob_attention_flash_ok(16, 48) && !knob_attention_flash_ok(16, 256));
}

TEST(attention_flash_same_bits_for_any_thread_count)
{
    enum { B = 4, T = 128, C = 128, NH = 4 };   /* big enough to split over threads */
    size_t n3 = (size_t)B * T * 3 * C, n1 = (size_t)B * T * C, nl = (size_t)B * NH * T;
    float *qkv = malloc(n3 * sizeof(float)), *dout = malloc(n1 * sizeof(float));
    float *out[2], *lse[2], *dq[2];
    fill(qkv, n3, 41, 1.0f);
    fill(dout, n1, 42, 1.0f);
    for (int k = 0; k < 2; k++) {
        out[k] = malloc(n1 * sizeof(float));
        lse[k] = malloc(nl * sizeof(float));
        dq[k] = calloc(n3, sizeof(float));
        knob_threads_set(k + 1);
        knob_attention_flash_forward(out[k], lse[k], qkv, B, T, C, NH);
        knob_attention_flash_backward(dq[k], dout, qkv, lse[k], B, T, C, NH, 0);
    }
    knob_threads_set(0);
    CHECK(memcmp(out[0], out[1], n1 * sizeof(float)) == 0);
    CHECK(memcmp(lse[0], lse[1], nl * sizeof(float)) == 0);
    CHECK(memcmp(dq[0], dq[1], n3 * sizeof(float)) == 0);
    for (int k = 0; k < 2; k++) {
        free(out[k]); free(lse[k]); free(dq[k]);
    }
    free(qkv); free(dout);
}

/* the op keeps (B, NH, T) floats with flash, (B, NH, T, T) + (B, NH, T) without */
TEST(attention_op_saves_lse_only_on_flash_shapes)
{
    knob_err err;
    knob_graph *g = knob_graph_new(&err);
    CHECK(g != NULL);
    if (!g)
        return;
    knob_node *a = knob_input(g, "qkv", 3, (int[]){2, 16, 192});   /* C 64, NH 2: HS 32 */
    knob_node *b = knob_input(g, "qkv8", 3, (int[]){2, 16, 48});   /* C 16, NH 2: HS 8 */
    knob_node *ya = knob_attention(g, a, 2), *yb = knob_attention(g, b, 2);
    CHECK(ya && yb);
    if (ya && yb) {
        CHECK(knob_ops[KNOB_OP_ATTENTION]->saved(ya) == 2 * 2 * 16 * sizeof(float));
        CHECK(knob_ops[KNOB_OP_ATTENTION]->saved(yb) == (2 * 2 * 16 * 16 + 2 * 2 * 16) * sizeof(float));
    }
    knob_graph_free(g);
}

/* gradient checks of the op where it takes the flash kernels: qkv (B, T, 3C) */
GRADCHECK(KNOB_OP_ATTENTION, attention_flash_hs32_t11)
{
    knob_node *qkv = gc_param(c, "qkv", 3, (int[]){1, 11, 3 * 64}, GC_NORMAL);   /* NH 2, HS 32 */
    return knob_attention(c->g, qkv, 2);
}

GRADCHECK(KNOB_OP_ATTENTION, attention_flash_hs64_t5_b2)
{
    knob_node *qkv = gc_param(c, "qkv", 3, (int[]){2, 5, 3 * 64}, GC_NORMAL);    /* NH 1, HS 64 */
    return knob_attention(c->g, qkv, 1);
}
