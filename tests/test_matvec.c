/* test_matvec.c: inference weights and the decode-step products (src/kernels/matvec.c), and
 * knob_lm with bf16 and int8 weights (src/models/lm.c):
 * - bf16 rounding against a reference that works on doubles (the two neighbouring bf16 values and
 *   their distances), on special values, exact ties and random bit patterns;
 * - q8 quantisation: each weight within half a step (d / 2) of d q, the block's largest exactly
 *   +-127 steps, zero blocks and padding zero, non-finite input kept in range;
 * - knob_matvec and knob_wmat_gemm for f32, bf16 and q8 (x kept in f32 or quantised), AVX2 and
 *   portable, against a double-precision sum over the stored weights, on odd shapes (K not a
 *   multiple of 8 or 32, N = 1, N = 50257 like GPT-2's vocabulary, several vectors at once); every
 *   row the same bits whatever n and the thread count;
 * - a small random GPT scored in f32, bf16 and int8: the per-token NLL moves by less than the
 *   tolerances docs/GENERATION.md states; greedy choices mostly agree; converting twice is refused,
 *   the caller's f32 parameters may be freed after a conversion. */
#include "test.h"

/* ------------------------------------------------------------------------------------------------
 * bf16 rounding */

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* value of a bf16 pattern as a double; the pattern after the largest finite counts as 2^128 */
static double bf16_value(uint32_t h)
{
    if ((h & 0x7fffu) == 0x7f80u)
        return (h & 0x8000u) ? -ldexp(1.0, 128) : ldexp(1.0, 128);
    return (double)from_bits(h << 16);
}

/* the nearest of the two bf16 values around x (finite), the even pattern on a tie */
static uint16_t bf16_ref(float x)
{
    uint32_t lo = to_bits(x) >> 16, hi = lo + 1;   /* toward zero, and one step away from zero */
    double v = (double)x, dlo = fabs(v - bf16_value(lo)), dhi = fabs(bf16_value(hi) - v);
    if (dlo < dhi)
        return (uint16_t)lo;
    if (dhi < dlo)
        return (uint16_t)hi;
    return (uint16_t)((lo & 1u) ? hi : lo);
}

TEST(bf16_rounds_to_nearest_even)
{
    /* specials */
    CHECK(knob_bf16_from_f32(0.0f) == 0x0000 && knob_bf16_from_f32(-0.0f) == 0x8000);
    CHECK(knob_bf16_from_f32(1.0f) == 0x3f80 && knob_bf16_from_f32(-2.0f) == 0xc000);
    CHECK(knob_bf16_from_f32(from_bits(0x7f800000u)) == 0x7f80);   /* +inf */
    CHECK(knob_bf16_from_f32(from_bits(0xff800000u)) == 0xff80);   /* -inf */
    CHECK(knob_bf16_from_f32(from_bits(0x7f7fffffu)) == 0x7f80);   /* FLT_MAX rounds up to inf */
    uint16_t nan = knob_bf16_from_f32(from_bits(0x7f800001u));     /* a NaN whose payload is all low bits */
    CHECK((nan & 0x7f80u) == 0x7f80u && (nan & 0x007fu) != 0);
    CHECK(isnan(knob_bf16_to_f32(nan)));
    /* exact ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7, goes to the even (1) */
    CHECK(knob_bf16_from_f32(1.0f + 0x1p-8f) == 0x3f80);
    CHECK(knob_bf16_from_f32(1.0f + 3 * 0x1p-8f) == 0x3f82);       /* halfway 0x3f81..0x3f82: even up */
    CHECK(knob_bf16_from_f32(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81); /* just over halfway */
    /* every tie and near-tie pattern of a few mantissas, and random finite patterns */
    knob_rng r;
    knob_rng_seed(&r, 7);
    int bad = 0;
    for (int i = 0; i < 200000 && bad < 5; i++) {
        uint32_t u = (uint32_t)knob_rng_u64(&r);
        if (i % 4 == 1)
            u = (u & 0xffff0000u) | 0x8000u;            /* a tie */
        else if (i % 4 == 2)
            u = (u & 0xffff0000u) | (0x7fffu + (u & 2)); /* one below or above a tie */
        if ((u & 0x7f800000u) == 0x7f800000u)
            continue;                                  /* inf and NaN: above */
        float x = from_bits(u);
        uint16_t got = knob_bf16_from_f32(x), want = bf16_ref(x);
        if (got != want) {
            test_fail_at(__FILE__, __LINE__, "bf16(%a = 0x%08x) = 0x%04x, want 0x%04x", (double)x, u, got, want);
            bad++;
        }
        if (knob_bf16_to_f32(got) != (float)bf16_value(got) && (got & 0x7fffu) != 0x7f80u)
            bad++, test_fail_at(__FILE__, __LINE__, "bf16 0x%04x does not read back", got);
    }
}

/* ------------------------------------------------------------------------------------------------
 * q8 quantisation */

TEST(q8_round_trip_within_half_a_step)
{
    knob_rng r;
    knob_rng_seed(&r, 3);
    enum { K = 77 };   /* two full blocks and a partial one */
    float x[K];
    int8_t q[96];
    float d[3];
    for (int trial = 0; trial < 50; trial++) {
        float scale = ldexpf(1.0f, (int)knob_rng_below(&r, 40) - 30);
        for (int k = 0; k < K; k++)
            x[k] = knob_rng_normal(&r) * scale;
        if (trial == 1)
            for (int k = 32; k < 64; k++)
                x[k] = 0.0f;   /* a zero block */
        memset(q, 0x55, sizeof q);
        knob_q8_quantize(q, d, x, K);
        for (int b = 0; b < 3; b++) {
            int k0 = b * 32, k1 = KNOB_MIN(K, k0 + 32), imax = k0;
            double amax = 0;
            for (int k = k0; k < k1; k++)
                if (fabs(x[k]) > amax)
                    amax = fabs(x[k]), imax = k;
            CHECK_NEAR(d[b], amax / 127.0, 1e-6, 0);
            for (int k = k0; k < k1; k++) {
                double back = (double)d[b] * q[k];
                if (!(fabs(back - x[k]) <= 0.5 * d[b] * (1 + 1e-5) + 1e-45))
                    test_fail_at(__FILE__, __LINE__, "block %d: x %g came back %g (step %g)", b, (double)x[k], back,
                                 (double)d[b]);
                CHECK(q[k] >= -127 && q[k] <= 127);
            }
            if (amax > 0)
                CHECK(q[imax] == (x[imax] > 0 ? 127 : -127));
            else
                CHECK(d[b] == 0.0f);
        }
        for (int k = K; k < 96; k++)
            CHECK(q[k] == 0);   /* padding */
    }
    /* NaN, infinity and subnormal input: q stays in range, finite neighbours of a NaN survive */
    float odd[96];
    for (int k = 0; k < 32; k++)
        odd[k] = k % 3 == 0 ? from_bits(0x7fc00000u) : k % 3 == 1 ? 2.0f : -1.0f;
    for (int k = 32; k < 64; k++)
        odd[k] = k == 40 ? from_bits(0x7f800000u) : 1.0f;
    for (int k = 64; k < 96; k++)
        odd[k] = from_bits(k % 2 ? 0x00000003u : 0x80000001u);
    knob_q8_quantize(q, d, odd, 96);
    for (int k = 0; k < 96; k++)
        CHECK(q[k] >= -127 && q[k] <= 127);
    CHECK(q[0] == 0 && q[1] == 127 && q[2] == -64 && d[0] == 2.0f / 127.0f);
}

/* ------------------------------------------------------------------------------------------------
 * Products against double sums */

/* stored weight (r, k) as a double, decoded here from the storage's definition */
static double weight(const knob_wmat *W, int r, int k)
{
    switch (W->type) {
    case KNOB_W_F32: return W->f[(size_t)r * W->K + k];
    case KNOB_W_BF16: return (double)from_bits((uint32_t)W->h[(size_t)r * W->K + k] << 16);
    case KNOB_W_Q8: break;
    }
    return (double)W->d[(size_t)r * W->KB + k / 32] * W->q[(size_t)r * W->KB * 32 + k];
}

/* y (n, N) against sum_k w x in double, where x is what the product sees (q8 activations: d q);
 * the bound is float rounding of a K-term sum: 2 K eps sum |w x|. Returns the worst ratio. */
static double check_product(const float *y, const float *x, const knob_wmat *W, const float *b, int n, int q8x)
{
    int N = W->N, K = W->K, KB = W->KB;
    int8_t *xq = knob_malloc((size_t)KB * 32);
    float *xd = knob_malloc((size_t)KB * sizeof *xd);
    double worst = 0;
    for (int v = 0; v < n; v++) {
        const float *xv = x + (size_t)v * K;
        if (q8x)
            knob_q8_quantize(xq, xd, xv, K);
        for (int r = 0; r < N; r++) {
            double s = b ? b[r] : 0.0, mag = b ? fabs(b[r]) : 0.0;
            for (int k = 0; k < K; k++) {
                double xk = q8x ? (double)xd[k / 32] * xq[k] : xv[k], p = weight(W, r, k) * xk;
                s += p;
                mag += fabs(p);
            }
            double err = fabs((double)y[(size_t)v * N + r] - s), tol = 2.0 * K * 0x1p-24 * mag + 1e-30;
            worst = fmax(worst, err / tol);
        }
    }
    knob_free(xq);
    knob_free(xd);
    return worst;
}

static void fill(float *a, size_t n, knob_rng *r)
{
    for (size_t i = 0; i < n; i++)
        a[i] = knob_rng_normal(r);
}

TEST(matvec_matches_double_sums_on_odd_shapes)
{
    knob_err err;
    knob_rng r;
    knob_rng_seed(&r, 11);
    const int shapes[][2] = {{1, 1}, {1, 33}, {3, 7}, {5, 32}, {9, 100}, {13, 768}, {50257, 24}, {6, 3075}};
    const int ns[] = {1, 2, 3, 5};
    const knob_wtype types[] = {KNOB_W_F32, KNOB_W_BF16, KNOB_W_Q8};
    int threads = knob_threads_get(), best = knob_kernel_isa();
    /* every level this CPU has: AVX-512 (f32, bf16, q8 with f32 x; q8 x q8 with VNNI where the CPU
     * has it), AVX2, portable */
    for (int level = best; level >= KNOB_ISA_PORTABLE; level--) {
        knob_kernel_force(level);
        const char *want = level == KNOB_ISA_AVX512 ? "avx512f" : level == KNOB_ISA_AVX2 ? "avx2+fma" : "portable";
        CHECK(strcmp(knob_matvec_kernel_for(KNOB_W_F32), want) == 0);
        CHECK(strcmp(knob_matvec_kernel_for(KNOB_W_BF16), want) == 0);
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            int N = shapes[si][0], K = shapes[si][1];
            float *f = knob_malloc((size_t)N * K * sizeof *f), *b = knob_malloc((size_t)N * sizeof *b);
            float *x = knob_malloc((size_t)5 * K * sizeof *x);
            float *y = knob_malloc((size_t)5 * N * sizeof *y), *y1 = knob_malloc((size_t)N * sizeof *y1);
            fill(f, (size_t)N * K, &r);
            fill(b, (size_t)N, &r);
            fill(x, (size_t)5 * K, &r);
            for (int ti = 0; ti < 3; ti++)
                for (int q8x = 0; q8x < (types[ti] == KNOB_W_Q8 ? 2 : 1); q8x++) {
                    knob_matvec_set_q8_act(q8x);
                    if (types[ti] == KNOB_W_Q8 && q8x && level == KNOB_ISA_AVX512)
                        CHECK(strcmp(knob_matvec_kernel_for(KNOB_W_Q8),
                                     (knob_cpu()->features & KNOB_CPU_AVX512VNNI) ? "avx512vnni" : "avx2+fma") == 0);
                    knob_wmat W;
                    CHECK_OK(knob_wmat_init(&W, f, N, K, types[ti], &err));
                    void *sc = knob_malloc(knob_matvec_scratch(&W, 5) + 1);
                    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                        int n = ns[ni];
                        const float *bias = ni % 2 ? b : NULL;
                        knob_threads_set(2);
                        knob_matvec(y, x, &W, bias, n, sc);
                        double w = check_product(y, x, &W, bias, n, q8x);
                        if (!(w <= 1.0))
                            test_fail_at(__FILE__, __LINE__, "%s type %d q8x %d (%d, %d) n %d: error %.3g of the "
                                         "rounding bound", want, ti, q8x, N, K, n, w);
                        /* the last vector alone, on 1 and 3 threads: the same bits */
                        for (int th = 1; th <= 3; th += 2) {
                            knob_threads_set(th);
                            knob_matvec(y1, x + (size_t)(n - 1) * K, &W, bias, 1, sc);
                            CHECK(memcmp(y1, y + (size_t)(n - 1) * N, (size_t)N * sizeof *y1) == 0);
                        }
                    }
                    knob_free(sc);
                    knob_wmat_free(&W);
                }
            knob_free(f);
            knob_free(b);
            knob_free(x);
            knob_free(y);
            knob_free(y1);
        }
    }
    knob_kernel_force(-1);
    knob_matvec_set_q8_act(1);
    knob_threads_set(threads);
}

TEST(wmat_gemm_matches_double_sums_over_panels)
{
    knob_err err;
    knob_rng r;
    knob_rng_seed(&r, 12);
    int N = 1001, K = 301, n = 20;   /* 262144 / 301 = 870 rows a panel: two panels */
    float *f = knob_malloc((size_t)N * K * sizeof *f), *b = knob_malloc((size_t)N * sizeof *b);
    float *x = knob_malloc((size_t)n * K * sizeof *x), *y = knob_malloc((size_t)n * N * sizeof *y);
    fill(f, (size_t)N * K, &r);
    fill(b, (size_t)N, &r);
    fill(x, (size_t)n * K, &r);
    const knob_wtype types[] = {KNOB_W_F32, KNOB_W_BF16, KNOB_W_Q8};
    for (int portable = 0; portable < 2; portable++)
        for (int ti = 0; ti < 3; ti++) {
            knob_matvec_force_portable(portable);
            knob_wmat W;
            CHECK_OK(knob_wmat_init(&W, f, N, K, types[ti], &err));
            void *sc = knob_malloc(knob_wmat_gemm_scratch(&W, n) + 1);
            knob_wmat_gemm(y, x, &W, b, n, sc);
            double w = check_product(y, x, &W, b, n, 0);
            if (!(w <= 1.0))
                test_fail_at(__FILE__, __LINE__, "%s type %d: error %.3g of the rounding bound",
                             portable ? "portable" : "avx2", ti, w);
            knob_free(sc);
            knob_wmat_free(&W);
        }
    knob_matvec_force_portable(0);
    knob_free(f);
    knob_free(b);
    knob_free(x);
    knob_free(y);
}

/* ------------------------------------------------------------------------------------------------
 * knob_lm in bf16 and int8 */

/* A random GPT with sharp predictions: the init's weights scaled by 3, so that logits spread over
 * several nats (mean NLL 5.7 against log 101 = 4.6 for uniform) and rounding of the weights shows
 * in the score, more than in a trained model. */
static void sharp_gpt(knob_params *P, knob_gpt_config *c)
{
    knob_err err;
    *c = (knob_gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 64, .block_size = 48, .vocab_size = 101, .bias = 1};
    CHECK_OK(knob_gpt_params(P, c, &err));
    CHECK_OK(knob_gpt_init(P, c, 5, &err));
    for (size_t i = 0; i < P->n_elems; i++)
        P->data[i] *= 3.0f;
}

/* per-token NLL of ids under lm: nll (n - 1) */
static void token_nll(knob_lm *lm, const int32_t *ids, int n, double *nll)
{
    knob_err err;
    knob_lm_seq *q;
    CHECK_OK(knob_lm_seq_new(lm, &q, &err));
    const int V = knob_lm_config(lm)->vocab_size;
    for (int i = 0; i + 1 < n; i++) {
        CHECK_OK(knob_lm_feed(q, ids + i, 1, &err));   /* decode steps: the matrix-vector kernels */
        const float *lg = knob_lm_logits(q);
        double mx = lg[0], s = 0;
        for (int v = 1; v < V; v++)
            mx = fmax(mx, lg[v]);
        for (int v = 0; v < V; v++)
            s += exp(lg[v] - mx);
        nll[i] = mx + log(s) - lg[ids[i + 1]];
    }
    knob_lm_seq_free(q);
}

TEST(lm_bf16_and_int8_score_close_to_f32)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c;
    sharp_gpt(&P, &c);
    enum { n = 48 };
    int32_t ids[n];
    knob_rng r;
    knob_rng_seed(&r, 9);
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)knob_rng_below(&r, (uint32_t)c.vocab_size);
    double ref[n], got[n], mean_ref = 0;
    knob_lm *lm;
    CHECK_OK(knob_lm_new(&lm, &P, &c, NULL, &err));
    CHECK(knob_lm_get_dtype(lm) == KNOB_LM_F32 && knob_lm_wte(lm) != NULL);
    token_nll(lm, ids, n, ref);
    knob_lm_free(lm);
    for (int i = 0; i + 1 < n; i++)
        mean_ref += ref[i] / (n - 1);
    CHECK(mean_ref > 5.0);   /* confidently wrong: far from uniform (log 101 = 4.6), so errors show */
    /* tolerances (docs/GENERATION.md): mean |dNLL| per token, and the worst token */
    const struct { knob_lm_dtype d; int q8x; double mean_tol, max_tol; } cases[] = {
        {KNOB_LM_BF16, 0, 0.02, 0.06},   /* measured 0.006, 0.019 */
        {KNOB_LM_INT8, 1, 0.08, 0.25},   /* 0.032, 0.085 */
        {KNOB_LM_INT8, 0, 0.08, 0.25},   /* 0.022, 0.089 */
    };
    for (int ci = 0; ci < 3; ci++) {
        knob_matvec_set_q8_act(cases[ci].q8x);
        knob_params Pc;   /* a copy, freed once converted: the lm must not read it any more */
        knob_gpt_config cc = c;
        CHECK_OK(knob_gpt_params(&Pc, &cc, &err));
        memcpy(Pc.data, P.data, P.n_elems * sizeof *P.data);
        CHECK_OK(knob_lm_new(&lm, &Pc, &cc, NULL, &err));
        CHECK_OK(knob_lm_set_dtype(lm, cases[ci].d, &err));
        knob_params_free(&Pc);
        CHECK(knob_lm_get_dtype(lm) == cases[ci].d && knob_lm_wte(lm) == NULL);
        CHECK(knob_lm_weight_bytes(lm) < (cases[ci].d == KNOB_LM_BF16 ? 0.51 : 0.29) * 4.0 *
                                               ((double)c.vocab_size * 64 + 2 * 12 * 64 * 64));
        token_nll(lm, ids, n, got);
        double mean = 0, worst = 0, zero = 0;
        for (int i = 0; i + 1 < n; i++) {
            mean += fabs(got[i] - ref[i]) / (n - 1);
            worst = fmax(worst, fabs(got[i] - ref[i]));
            zero += got[i] == ref[i];
        }
        if (!(mean <= cases[ci].mean_tol && worst <= cases[ci].max_tol))
            test_fail_at(__FILE__, __LINE__, "%s (q8 x %d): mean |dNLL| %.4f (tolerance %.3f), worst %.4f (%.3f)",
                         knob_lm_dtype_name(cases[ci].d), cases[ci].q8x, mean, cases[ci].mean_tol, worst,
                         cases[ci].max_tol);
        CHECK(zero < n - 1);   /* the weights really are rounded */
        /* a prefill (the GEMM over converted panels) agrees with the decode steps */
        knob_lm_seq *q;
        double sum = 0, sum_steps = 0;
        CHECK_OK(knob_lm_seq_new(lm, &q, &err));
        CHECK_OK(knob_lm_nll(q, ids, n, &sum, &err));
        for (int i = 0; i + 1 < n; i++)
            sum_steps += got[i];
        /* the same to float rounding; quantised activations (decode steps only) move each token */
        CHECK_NEAR(sum, sum_steps, 1e-5, cases[ci].q8x ? cases[ci].mean_tol * (n - 1) : 1e-4);
        /* converting again is refused; the same dtype is a no-op */
        CHECK_OK(knob_lm_set_dtype(lm, cases[ci].d, &err));
        CHECK_FAILS_WITH(knob_lm_set_dtype(lm, cases[ci].d == KNOB_LM_BF16 ? KNOB_LM_INT8 : KNOB_LM_BF16, &err),
                         KNOB_ERR_USAGE, "convert once, from f32");
        knob_lm_seq_free(q);
        knob_lm_free(lm);
    }
    knob_matvec_set_q8_act(1);
    knob_lm_dtype d;
    CHECK_OK(knob_lm_dtype_parse("bf16", &d, &err));
    CHECK(d == KNOB_LM_BF16);
    CHECK_FAILS_WITH(knob_lm_dtype_parse("fp16", &d, &err), KNOB_ERR_USAGE, "not one of f32, bf16, int8");
    knob_params_free(&P);
}

TEST(lm_int8_batched_decode_same_bits_as_alone)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c;
    sharp_gpt(&P, &c);
    knob_lm *lm;
    CHECK_OK(knob_lm_new(&lm, &P, &c, NULL, &err));
    CHECK_OK(knob_lm_set_dtype(lm, KNOB_LM_INT8, &err));
    knob_lm_seq *batch[3], *alone[3];
    const int32_t prompt[12] = {1, 5, 2, 8, 3, 9, 4, 7, 6, 0, 11, 12};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(knob_lm_seq_new(lm, &batch[i], &err));
        CHECK_OK(knob_lm_seq_new(lm, &alone[i], &err));
        CHECK_OK(knob_lm_feed(batch[i], prompt + i, (size_t)(2 + i), &err));
        CHECK_OK(knob_lm_feed(alone[i], prompt + i, (size_t)(2 + i), &err));
    }
    for (int step = 0; step < 3; step++) {
        int32_t tok[3] = {(int32_t)(step + 1), (int32_t)(2 * step + 3), (int32_t)(40 - step)};
        CHECK_OK(knob_lm_decode(batch, tok, 3, &err));
        for (int i = 0; i < 3; i++) {
            CHECK_OK(knob_lm_feed(alone[i], tok + i, 1, &err));
            CHECK(memcmp(knob_lm_logits(batch[i]), knob_lm_logits(alone[i]), (size_t)c.vocab_size * sizeof(float)) == 0);
        }
    }
    for (int i = 0; i < 3; i++) {
        knob_lm_seq_free(batch[i]);
        knob_lm_seq_free(alone[i]);
    }
    knob_lm_free(lm);
    knob_params_free(&P);
}
