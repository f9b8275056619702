/* test_optim.c: optimizers, gradient clipping, learning-rate schedules and initializers, checked
 * against independent math: values worked out by hand (written next to each check), reference
 * trajectories recomputed here in double from the textbook formulas, closed-form optima, and
 * sample statistics. Never against the library's own earlier output. */
#include "test.h"

/* ------------------------------------------------------------------------------------------------
 * Helpers */

/* Params with n tensors of the given sizes (1-D) and decay flags, allocated; values and grads 0. */
static void make_params(knob_params *P, int n, const int *sizes, const int *decay)
{
    knob_err err;
    knob_params_init(P);
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        knob_tensor *t = knob_params_add(P, name, 1, &sizes[i], &err);
        KNOB_ASSERT(t);
        t->decay = decay[i];
    }
    KNOB_ASSERT(knob_params_alloc(P, &err) == KNOB_OK);
}

static knob_optim_config sgd_cfg(float momentum, int nesterov, float wd)
{
    return (knob_optim_config){.kind = KNOB_OPTIM_SGD, .momentum = momentum, .nesterov = nesterov,
                               .weight_decay = wd};
}

static knob_optim_config adam_cfg(knob_optim_kind kind, float b1, float b2, float eps, float wd)
{
    return (knob_optim_config){.kind = kind, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd};
}

/* Runs 3 steps of cfg on one scalar parameter w0 = 1 with gradients g[0..2] and checks w after
 * each step against want[0..2]. */
static void check_scalar_steps(const knob_optim_config *cfg, float lr, const float g[3],
                               const double want[3], int line)
{
    knob_err err;
    knob_params P;
    make_params(&P, 1, (int[]){1}, (int[]){1});
    P.data[0] = 1.0f;
    knob_optim o;
    CHECK_OK(knob_optim_init(&o, &P, cfg, &err));
    for (int s = 0; s < 3; s++) {
        P.grad[0] = g[s];
        knob_optim_step(&o, lr);
        if (!(fabs((double)P.data[0] - want[s]) <= 1e-6 + 1e-6 * fabs(want[s])))
            test_fail_at(__FILE__, line, "%s step %d: w = %.9g, want %.9g",
                         knob_optim_name(cfg->kind), s + 1, (double)P.data[0], want[s]);
    }
    CHECK(o.step == 3);
    knob_optim_free(&o);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Names, parsing, init */

TEST(optim_parse)
{
    knob_err err;
    knob_optim_kind k = KNOB_OPTIM_SGD;
    CHECK_OK(knob_optim_parse("adam", &k, &err));
    CHECK(k == KNOB_OPTIM_ADAM);
    CHECK_OK(knob_optim_parse("adamw", &k, &err));
    CHECK(k == KNOB_OPTIM_ADAMW);
    CHECK_OK(knob_optim_parse("sgd", &k, &err));
    CHECK(k == KNOB_OPTIM_SGD);
    CHECK(strcmp(knob_optim_name(KNOB_OPTIM_SGD), "sgd") == 0);
    CHECK(strcmp(knob_optim_name(KNOB_OPTIM_ADAM), "adam") == 0);
    CHECK(strcmp(knob_optim_name(KNOB_OPTIM_ADAMW), "adamw") == 0);
    CHECK_FAILS_WITH(knob_optim_parse("rmsprop", &k, &err), KNOB_ERR_USAGE, "'rmsprop'");
    CHECK_FAILS_WITH(knob_optim_parse("Adam", &k, &err), KNOB_ERR_USAGE, "expected sgd, adam or adamw");
    CHECK_FAILS_WITH(knob_optim_parse("", &k, &err), KNOB_ERR_USAGE, "''");
    CHECK_FAILS_WITH(knob_optim_parse("adam\nx", &k, &err), KNOB_ERR_USAGE, "adam?x");
    CHECK(k == KNOB_OPTIM_SGD);   /* failures leave *out alone */
}

TEST(optim_init_rejects_bad_config)
{
    knob_err err;
    knob_optim o;
    knob_params P;
    knob_params_init(&P);
    knob_optim_config ok = adam_cfg(KNOB_OPTIM_ADAM, 0.9f, 0.999f, 1e-8f, 0.0f);
    CHECK_FAILS_WITH(knob_optim_init(&o, &P, &ok, &err), KNOB_ERR_USAGE, "knob_params_alloc");
    CHECK(o.m == NULL && o.v == NULL);
    knob_optim_free(&o);   /* zeroed after a failure: free is safe */

    make_params(&P, 1, (int[]){3}, (int[]){1});
    knob_optim_config c = ok;
    c.beta1 = 1.0f;
    CHECK_FAILS_WITH(knob_optim_init(&o, &P, &c, &err), KNOB_ERR_USAGE, "beta1 is 1");
    c = ok;
    c.beta2 = -0.5f;
    CHECK_FAILS_WITH(knob_optim_init(&o, &P, &c, &err), KNOB_ERR_USAGE, "beta2 is -0.5");
    c = ok;
    c.beta2 = NAN;
    CHECK_FAILS_WITH(knob_optim_init(&o, &P, &c, &err), KNOB_ERR_USAGE, "beta2");
    c = ok;
    c.eps = 0.0f;
    CHECK_FAILS_WITH(knob_optim_init(&o, &P, &c, &err), KNOB_ERR_USAGE, "eps is 0");
    c = ok;
    c.kind = KNOB_OPTIM_ADAMW;
    c.weight_decay = -0.1f;
    CHECK_FAILS_WITH(knob_optim_init(&o, &P, &c, &err), KNOB_ERR_USAGE, "adamw: weight_decay");
    c = sgd_cfg(-0.9f, 0, 0.0f);
    CHECK_FAILS_WITH(knob_optim_init(&o, &P, &c, &err), KNOB_ERR_USAGE, "momentum is -0.9");
    c = sgd_cfg(0.0f, 1, 0.0f);
    CHECK_FAILS_WITH(knob_optim_init(&o, &P, &c, &err), KNOB_ERR_USAGE, "nesterov");
    c = ok;
    c.kind = (knob_optim_kind)7;
    CHECK_FAILS_WITH(knob_optim_init(&o, &P, &c, &err), KNOB_ERR_USAGE, "unknown kind 7");

    /* SGD ignores the Adam fields, so a zeroed config with only a kind is valid */
    c = (knob_optim_config){.kind = KNOB_OPTIM_SGD};
    CHECK_OK(knob_optim_init(&o, &P, &c, &err));
    CHECK(o.m != NULL && o.v == NULL && o.step == 0 && o.p == &P);
    knob_optim_free(&o);
    CHECK(o.m == NULL);
    knob_optim_free(&o);   /* twice is fine */
    knob_optim_free(NULL);

    CHECK_OK(knob_optim_init(&o, &P, &ok, &err));
    CHECK(o.m && o.v);
    for (int i = 0; i < 3; i++)
        CHECK(o.m[i] == 0.0f && o.v[i] == 0.0f);
    knob_optim_free(&o);
    knob_params_free(&P);
}

TEST(optim_init_out_of_memory)
{
    knob_err err;
    knob_optim o;
    knob_params P;
    make_params(&P, 1, (int[]){5}, (int[]){1});
    knob_optim_config c = adam_cfg(KNOB_OPTIM_ADAM, 0.9f, 0.999f, 1e-8f, 0.0f);
    for (long n = 1; n <= 2; n++) {   /* m fails, then v fails (m must be freed: ASan checks) */
        knob_alloc_fail_at(n);
        CHECK_FAILS_WITH(knob_optim_init(&o, &P, &c, &err), KNOB_ERR_NOMEM, "cannot allocate");
        CHECK(o.m == NULL && o.v == NULL);
    }
    knob_alloc_fail_at(0);
    CHECK_OK(knob_optim_init(&o, &P, &c, &err));
    knob_optim_free(&o);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * SGD */

/* w0 = 1, lr = 0.1, g = 0.5, -1, 2:
 *   w1 = 1 - 0.05 = 0.95;  w2 = 0.95 + 0.1 = 1.05;  w3 = 1.05 - 0.2 = 0.85 */
TEST(optim_sgd_plain)
{
    knob_optim_config c = sgd_cfg(0.0f, 0, 0.0f);
    check_scalar_steps(&c, 0.1f, (float[]){0.5f, -1.0f, 2.0f}, (double[]){0.95, 1.05, 0.85}, __LINE__);
}

/* momentum 0.9, lr 0.1, g = 1, -2, 0.5, buf = 0.9 buf + g (buf1 = g1):
 *   buf1 = 1           w1 = 1 - 0.1          = 0.9
 *   buf2 = 0.9 - 2     = -1.1    w2 = 0.9 + 0.11  = 1.01
 *   buf3 = -0.99 + 0.5 = -0.49   w3 = 1.01 + 0.049 = 1.059 */
TEST(optim_sgd_momentum)
{
    knob_optim_config c = sgd_cfg(0.9f, 0, 0.0f);
    check_scalar_steps(&c, 0.1f, (float[]){1.0f, -2.0f, 0.5f}, (double[]){0.9, 1.01, 1.059}, __LINE__);
}

/* Nesterov, same numbers; update = g + 0.9 buf:
 *   buf1 = 1,     u1 = 1 + 0.9          = 1.9    w1 = 1 - 0.19       = 0.81
 *   buf2 = -1.1,  u2 = -2 - 0.99        = -2.99  w2 = 0.81 + 0.299   = 1.109
 *   buf3 = -0.49, u3 = 0.5 - 0.441      = 0.059  w3 = 1.109 - 0.0059 = 1.1031 */
TEST(optim_sgd_nesterov)
{
    knob_optim_config c = sgd_cfg(0.9f, 1, 0.0f);
    check_scalar_steps(&c, 0.1f, (float[]){1.0f, -2.0f, 0.5f}, (double[]){0.81, 1.109, 1.1031}, __LINE__);
}

/* Weight decay 0.1 is L2 added to the gradient before momentum 0.9; lr 0.1, w0 = 2, g = 0:
 *   g1 = 0.2,    buf1 = 0.2,                w1 = 2 - 0.02      = 1.98
 *   g2 = 0.198,  buf2 = 0.18 + 0.198 = 0.378, w2 = 1.98 - 0.0378 = 1.9422
 * A tensor with decay = 0 and zero gradient stays at 2. */
TEST(optim_sgd_weight_decay_only_on_decay_tensors)
{
    knob_err err;
    knob_params P;
    make_params(&P, 2, (int[]){1, 2}, (int[]){1, 0});
    for (size_t i = 0; i < 3; i++)
        P.data[i] = 2.0f;
    knob_optim o;
    knob_optim_config c = sgd_cfg(0.9f, 0, 0.1f);
    CHECK_OK(knob_optim_init(&o, &P, &c, &err));
    knob_optim_step(&o, 0.1f);
    CHECK_NEAR(P.data[0], 1.98, 1e-6, 0);
    knob_optim_step(&o, 0.1f);
    CHECK_NEAR(P.data[0], 1.9422, 1e-6, 0);
    CHECK(P.data[1] == 2.0f && P.data[2] == 2.0f);
    CHECK(P.grad[0] == 0.0f);   /* the decay term is not written back into the gradient */
    knob_optim_free(&o);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Adam, AdamW */

/* With bias correction the first step is lr * g / (|g| + eps'), i.e. lr * sign(g) when eps is
 * tiny, whatever the gradient's size; a zero gradient does not move. */
TEST(optim_adam_first_step_is_lr_sign)
{
    knob_err err;
    knob_params P;
    make_params(&P, 2, (int[]){3, 2}, (int[]){1, 0});
    const float g[5] = {1e-3f, -5.0f, 100.0f, -2e-4f, 0.0f};
    for (int i = 0; i < 5; i++) {
        P.data[i] = 1.0f;
        P.grad[i] = g[i];
    }
    knob_optim o;
    knob_optim_config c = adam_cfg(KNOB_OPTIM_ADAM, 0.9f, 0.999f, 1e-12f, 0.0f);
    CHECK_OK(knob_optim_init(&o, &P, &c, &err));
    knob_optim_step(&o, 0.01f);
    for (int i = 0; i < 5; i++) {
        double sign = g[i] > 0 ? 1.0 : g[i] < 0 ? -1.0 : 0.0;
        CHECK_NEAR(P.data[i], 1.0 - 0.01 * sign, 0, 1e-7);
    }
    knob_optim_free(&o);
    knob_params_free(&P);
}

/* beta1 = 1/2, beta2 = 3/4 (exact in binary), lr 0.1, w0 = 1, g = 1, -1, 2, eps 1e-8:
 *   t=1: m = 1/2,  v = 1/4;     bc1 = 1/2, bc2 = 1/4;    m_hat = 1,    v_hat = 1
 *        w1 = 1 - 0.1 = 0.9
 *   t=2: m = 1/4 - 1/2 = -1/4;  v = 3/16 + 1/4 = 7/16;   bc1 = 3/4, bc2 = 7/16
 *        m_hat = -1/3, v_hat = 1;  w2 = 0.9 + 0.1/3 = 0.9333333333
 *   t=3: m = -1/8 + 1 = 7/8;    v = 21/64 + 1 = 85/64;   bc1 = 7/8, bc2 = 37/64
 *        m_hat = 1, v_hat = 85/37; w3 = w2 - 0.1 / sqrt(85/37) = 0.9333333333 - 0.0659766
 *        = 0.8673567 */
TEST(optim_adam_hand_steps)
{
    knob_optim_config c = adam_cfg(KNOB_OPTIM_ADAM, 0.5f, 0.75f, 1e-8f, 0.0f);
    double w3 = 0.9 + 0.1 / 3.0 - 0.1 / sqrt(85.0 / 37.0);
    check_scalar_steps(&c, 0.1f, (float[]){1.0f, -1.0f, 2.0f}, (double[]){0.9, 0.9 + 0.1 / 3.0, w3},
                       __LINE__);
}

/* Reference Adam / AdamW in double, straight from Kingma and Ba (Algorithm 1) and Loshchilov and
 * Hutter (decoupled decay): one scalar, `steps` steps with gradients g[s] (+ wd w for Adam). */
static double ref_adam(int decoupled, double w, const double *g, int steps, double lr, double b1,
                       double b2, double eps, double wd)
{
    double m = 0, v = 0;
    for (int t = 1; t <= steps; t++) {
        double gt = g[t - 1];
        if (decoupled)
            w -= lr * wd * w;
        else
            gt += wd * w;
        m = b1 * m + (1 - b1) * gt;
        v = b2 * v + (1 - b2) * gt * gt;
        double m_hat = m / (1 - pow(b1, t)), v_hat = v / (1 - pow(b2, t));
        w -= lr * m_hat / (sqrt(v_hat) + eps);
    }
    return w;
}

/* Four scalars at once: Adam and AdamW, each on a decay and a non-decay tensor, 4 steps with
 * typical betas, compared after every step with the double reference. */
TEST(optim_adam_adamw_match_reference)
{
    knob_err err;
    const double g[4] = {0.5, -0.3, 0.2, 0.05};
    const float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
    for (int decoupled = 0; decoupled <= 1; decoupled++) {
        knob_params P;
        make_params(&P, 2, (int[]){1, 1}, (int[]){1, 0});
        P.data[0] = P.data[1] = 2.0f;
        knob_optim o;
        knob_optim_config c = adam_cfg(decoupled ? KNOB_OPTIM_ADAMW : KNOB_OPTIM_ADAM, b1, b2, eps, wd);
        CHECK_OK(knob_optim_init(&o, &P, &c, &err));
        for (int s = 1; s <= 4; s++) {
            P.grad[0] = P.grad[1] = (float)g[s - 1];
            knob_optim_step(&o, lr);
            double want_decay = ref_adam(decoupled, 2.0, g, s, (double)lr, (double)b1, (double)b2,
                                         (double)eps, (double)wd);
            double want_plain = ref_adam(decoupled, 2.0, g, s, (double)lr, (double)b1, (double)b2,
                                         (double)eps, 0.0);
            CHECK_NEAR(P.data[0], want_decay, 1e-6, 0);
            CHECK_NEAR(P.data[1], want_plain, 1e-6, 0);
        }
        knob_optim_free(&o);
        knob_params_free(&P);
    }
}

/* With the same gradients, AdamW minus Adam (no decay) after one step is exactly the decoupled term
 * -lr wd w0 (the Adam part sees the same moments in both); L2 decay in Adam instead changes the
 * gradient: g = -0.1, wd w = 0.2, so the step goes down by lr where it would go up. */
TEST(optim_adamw_decay_is_decoupled)
{
    knob_err err;
    const float lr = 0.01f, wd = 0.1f, w0 = 2.0f;
    knob_params A, W, L;
    make_params(&A, 2, (int[]){1, 1}, (int[]){1, 0});
    make_params(&W, 2, (int[]){1, 1}, (int[]){1, 0});
    make_params(&L, 2, (int[]){1, 1}, (int[]){1, 0});
    knob_params *all[3] = {&A, &W, &L};
    for (int k = 0; k < 3; k++) {
        all[k]->data[0] = all[k]->data[1] = w0;
        all[k]->grad[0] = all[k]->grad[1] = -0.1f;
    }
    knob_optim oa, ow, ol;
    knob_optim_config ca = adam_cfg(KNOB_OPTIM_ADAM, 0.9f, 0.999f, 1e-12f, 0.0f);
    knob_optim_config cw = adam_cfg(KNOB_OPTIM_ADAMW, 0.9f, 0.999f, 1e-12f, wd);
    knob_optim_config cl = adam_cfg(KNOB_OPTIM_ADAM, 0.9f, 0.999f, 1e-12f, wd);
    CHECK_OK(knob_optim_init(&oa, &A, &ca, &err));
    CHECK_OK(knob_optim_init(&ow, &W, &cw, &err));
    CHECK_OK(knob_optim_init(&ol, &L, &cl, &err));
    knob_optim_step(&oa, lr);
    knob_optim_step(&ow, lr);
    knob_optim_step(&ol, lr);
    CHECK_NEAR(A.data[0], w0 + lr, 0, 1e-6);                  /* lr sign(-0.1) */
    CHECK_NEAR(W.data[0] - A.data[0], -lr * wd * w0, 0, 1e-6); /* -0.002 */
    CHECK(W.data[1] == A.data[1]);                             /* decay = 0: identical */
    CHECK_NEAR(L.data[0], w0 - lr, 0, 1e-6);                  /* lr sign(-0.1 + 0.2) */
    CHECK(L.data[1] == A.data[1]);
    knob_optim_free(&oa);
    knob_optim_free(&ow);
    knob_optim_free(&ol);
    for (int k = 0; k < 3; k++)
        knob_params_free(all[k]);
}

/* f(w) = sum_i c_i (w_i - a_i)^2, df/dw_i = 2 c_i (w_i - a_i); the minimum is w = a. Adam with a
 * cosine-decayed rate over three tensors (one with decay set, which L2-free Adam ignores). */
TEST(optim_adam_minimises_quadratic)
{
    knob_err err;
    knob_params P;
    make_params(&P, 3, (int[]){1, 4, 7}, (int[]){0, 1, 0});
    float a[12], c[12];
    knob_rng r;
    knob_rng_seed(&r, 42);
    for (int i = 0; i < 12; i++) {
        a[i] = 6.0f * knob_rng_uniform(&r) - 3.0f;
        c[i] = 0.5f + 4.5f * knob_rng_uniform(&r);
    }
    knob_optim o;
    knob_optim_config cfg = adam_cfg(KNOB_OPTIM_ADAM, 0.9f, 0.999f, 1e-8f, 0.0f);
    CHECK_OK(knob_optim_init(&o, &P, &cfg, &err));
    knob_schedule s = {.kind = KNOB_SCHED_COSINE, .lr = 0.1f, .lr_min = 0.0f, .total_steps = 3000};
    for (long step = 0; step < s.total_steps; step++) {
        for (int i = 0; i < 12; i++)
            P.grad[i] = 2.0f * c[i] * (P.data[i] - a[i]);
        knob_optim_step(&o, knob_schedule_lr(&s, step));
    }
    for (int i = 0; i < 12; i++)
        CHECK_NEAR(P.data[i], a[i], 0, 1e-4);
    knob_optim_free(&o);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Allocation and threads */

TEST(optim_step_allocates_nothing)
{
    knob_err err;
    knob_params P;
    make_params(&P, 3, (int[]){5, 40000, 3}, (int[]){1, 1, 0});
    knob_optim_config cfgs[4] = {sgd_cfg(0.0f, 0, 0.01f), sgd_cfg(0.9f, 1, 0.01f),
                                 adam_cfg(KNOB_OPTIM_ADAM, 0.9f, 0.999f, 1e-8f, 0.01f),
                                 adam_cfg(KNOB_OPTIM_ADAMW, 0.9f, 0.999f, 1e-8f, 0.01f)};
    for (int k = 0; k < 4; k++) {
        knob_optim o;
        CHECK_OK(knob_optim_init(&o, &P, &cfgs[k], &err));
        long before = knob_alloc_count();
        for (int s = 0; s < 3; s++) {
            for (size_t i = 0; i < P.n_elems; i++)
                P.grad[i] = (float)((i % 7) - 3);
            knob_clip_grad_norm(&P, 1.0f);
            knob_optim_step(&o, 0.01f);
        }
        CHECK(knob_alloc_count() == before);
        CHECK(o.step == 3);
        knob_optim_free(&o);
    }
    knob_params_free(&P);
}

/* Same inputs with 1 and 4 threads give the same bits: updates and the clip norm. */
TEST(optim_threads_bit_identical)
{
    knob_err err;
    float *out[2] = {NULL, NULL};
    float norm[2] = {0, 0};
    const int threads[2] = {1, 4};
    for (int k = 0; k < 2; k++) {
        knob_threads_set(threads[k]);
        knob_params P;
        make_params(&P, 2, (int[]){100003, 50001}, (int[]){1, 0});
        knob_rng r;
        knob_rng_seed(&r, 7);
        for (size_t i = 0; i < P.n_elems; i++)
            P.data[i] = knob_rng_normal(&r);
        knob_optim o;
        knob_optim_config c = adam_cfg(KNOB_OPTIM_ADAMW, 0.9f, 0.95f, 1e-8f, 0.1f);
        CHECK_OK(knob_optim_init(&o, &P, &c, &err));
        for (int s = 0; s < 3; s++) {
            for (size_t i = 0; i < P.n_elems; i++)
                P.grad[i] = knob_rng_normal(&r);
            norm[k] = knob_clip_grad_norm(&P, 10.0f);
            knob_optim_step(&o, 0.01f);
        }
        out[k] = malloc(P.n_elems * sizeof(float));
        memcpy(out[k], P.data, P.n_elems * sizeof(float));
        knob_optim_free(&o);
        knob_params_free(&P);
    }
    knob_threads_set(0);
    CHECK(memcmp(&norm[0], &norm[1], sizeof(float)) == 0);
    CHECK(memcmp(out[0], out[1], 150004 * sizeof(float)) == 0);
    free(out[0]);
    free(out[1]);
}

/* ------------------------------------------------------------------------------------------------
 * Gradient clipping */

/* (3, 4) has norm 5; clipped to 1 it is (0.6, 0.8). The two values sit in different tensors: the
 * norm is global. */
TEST(clip_scales_to_max_norm)
{
    knob_params P;
    make_params(&P, 2, (int[]){1, 1}, (int[]){1, 0});
    P.grad[0] = 3.0f;
    P.grad[1] = 4.0f;
    CHECK_NEAR(knob_clip_grad_norm(&P, 1.0f), 5.0, 0, 1e-6);
    CHECK_NEAR(P.grad[0], 0.6, 0, 1e-7);
    CHECK_NEAR(P.grad[1], 0.8, 0, 1e-7);
    /* now at norm 1: clipping again to 1 changes nothing */
    CHECK_NEAR(knob_clip_grad_norm(&P, 1.0f), 1.0, 0, 1e-6);
    knob_params_free(&P);
}

TEST(clip_under_limit_unchanged)
{
    knob_params P;
    make_params(&P, 1, (int[]){2}, (int[]){1});
    P.grad[0] = 0.3f;
    P.grad[1] = -0.4f;
    CHECK_NEAR(knob_clip_grad_norm(&P, 1.0f), 0.5, 0, 1e-7);
    CHECK(P.grad[0] == 0.3f && P.grad[1] == -0.4f);
    /* max_norm <= 0 measures only */
    CHECK_NEAR(knob_clip_grad_norm(&P, 0.0f), 0.5, 0, 1e-7);
    CHECK(P.grad[0] == 0.3f && P.grad[1] == -0.4f);
    knob_params_free(&P);
}

/* A million grads of 0.001 (plus one tensor of 2s): norm^2 = 1e6 * 1e-6 + 4 * 4 = 17. Summed in
 * double, so float accumulation error does not show. */
TEST(clip_large_norm_in_double)
{
    knob_params P;
    make_params(&P, 2, (int[]){1000000, 4}, (int[]){1, 0});
    for (size_t i = 0; i < 1000000; i++)
        P.grad[i] = 0.001f;
    for (size_t i = 1000000; i < P.n_elems; i++)
        P.grad[i] = 2.0f;
    /* 0.001f is not exactly 0.001: use its exact square */
    double want = sqrt(1e6 * (double)0.001f * (double)0.001f + 16.0);
    CHECK_NEAR(knob_clip_grad_norm(&P, 100.0f), want, 1e-7, 0);
    CHECK_NEAR(knob_clip_grad_norm(&P, 1.0f), want, 1e-7, 0);
    CHECK_NEAR(P.grad[1000000], 2.0 / want, 1e-6, 0);
    CHECK_NEAR(P.grad[0], 0.001 / want, 1e-6, 0);
    knob_params_free(&P);
}

/* A nan gradient: the norm is nan (for the caller to report) and nothing is scaled. */
TEST(clip_nonfinite_norm_not_applied)
{
    knob_params P;
    make_params(&P, 1, (int[]){2}, (int[]){1});
    P.grad[0] = NAN;
    P.grad[1] = 4.0f;
    CHECK(isnan(knob_clip_grad_norm(&P, 1.0f)));
    CHECK(P.grad[1] == 4.0f);
    P.grad[0] = INFINITY;
    CHECK(isinf(knob_clip_grad_norm(&P, 1.0f)));
    CHECK(P.grad[1] == 4.0f);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Schedules */

TEST(sched_parse)
{
    knob_err err;
    knob_sched_kind k = KNOB_SCHED_CONSTANT;
    CHECK_OK(knob_sched_parse("cosine", &k, &err));
    CHECK(k == KNOB_SCHED_COSINE);
    CHECK_OK(knob_sched_parse("step", &k, &err));
    CHECK(k == KNOB_SCHED_STEP);
    CHECK_OK(knob_sched_parse("constant", &k, &err));
    CHECK(k == KNOB_SCHED_CONSTANT);
    CHECK(strcmp(knob_sched_name(KNOB_SCHED_CONSTANT), "constant") == 0);
    CHECK(strcmp(knob_sched_name(KNOB_SCHED_STEP), "step") == 0);
    CHECK(strcmp(knob_sched_name(KNOB_SCHED_COSINE), "cosine") == 0);
    CHECK_FAILS_WITH(knob_sched_parse("linear", &k, &err), KNOB_ERR_USAGE, "'linear'");
    CHECK_FAILS_WITH(knob_sched_parse("Cosine", &k, &err), KNOB_ERR_USAGE,
                     "expected constant, step or cosine");
    CHECK(k == KNOB_SCHED_CONSTANT);
}

/* warm-up 10 to lr 1: step 0 -> 0.1, step 4 -> 0.5, step 9 -> 1 (the end of warm-up), same for
 * every kind; then each kind starts from lr. */
TEST(sched_warmup)
{
    const knob_sched_kind kinds[3] = {KNOB_SCHED_CONSTANT, KNOB_SCHED_STEP, KNOB_SCHED_COSINE};
    for (int k = 0; k < 3; k++) {
        knob_schedule s = {.kind = kinds[k], .lr = 1.0f, .lr_min = 0.1f, .warmup = 10,
                           .total_steps = 110, .step_size = 10, .gamma = 0.5f};
        CHECK_NEAR(knob_schedule_lr(&s, 0), 0.1, 1e-6, 0);
        CHECK_NEAR(knob_schedule_lr(&s, 4), 0.5, 1e-6, 0);
        CHECK_NEAR(knob_schedule_lr(&s, 9), 1.0, 1e-6, 0);
        CHECK_NEAR(knob_schedule_lr(&s, 10), 1.0, 1e-6, 0);
    }
    /* lr 3e-4, warm-up 1000: step 0 -> 3e-7 */
    knob_schedule s = {.kind = KNOB_SCHED_CONSTANT, .lr = 3e-4f, .warmup = 1000};
    CHECK_NEAR(knob_schedule_lr(&s, 0), 3e-7, 1e-6, 0);
    CHECK_NEAR(knob_schedule_lr(&s, 5000), 3e-4, 1e-6, 0);
}

TEST(sched_step_boundaries)
{
    /* lr 1, gamma 0.5 every 10 steps: [0, 9] -> 1, [10, 19] -> 0.5, 20 -> 0.25, 35 -> 0.125 */
    knob_schedule s = {.kind = KNOB_SCHED_STEP, .lr = 1.0f, .step_size = 10, .gamma = 0.5f};
    CHECK(knob_schedule_lr(&s, 0) == 1.0f);
    CHECK(knob_schedule_lr(&s, 9) == 1.0f);
    CHECK(knob_schedule_lr(&s, 10) == 0.5f);
    CHECK(knob_schedule_lr(&s, 19) == 0.5f);
    CHECK(knob_schedule_lr(&s, 20) == 0.25f);
    CHECK(knob_schedule_lr(&s, 35) == 0.125f);
    /* with warm-up 5 the decay clock starts at step 5: 14 -> 1, 15 -> 0.5 */
    s.warmup = 5;
    CHECK(knob_schedule_lr(&s, 14) == 1.0f);
    CHECK(knob_schedule_lr(&s, 15) == 0.5f);
    /* step_size 0: never decays */
    s.step_size = 0;
    CHECK(knob_schedule_lr(&s, 1000000) == 1.0f);
}

TEST(sched_cosine_points)
{
    /* lr 1, lr_min 0.1, 100 steps: start 1, midpoint (1 + 0.1) / 2 = 0.55, end 0.1, past the end
     * 0.1; a quarter in: 0.1 + 0.45 (1 + cos(pi / 4)) = 0.1 + 0.45 * 1.7071068 = 0.8681981 */
    knob_schedule s = {.kind = KNOB_SCHED_COSINE, .lr = 1.0f, .lr_min = 0.1f, .total_steps = 100};
    CHECK_NEAR(knob_schedule_lr(&s, 0), 1.0, 1e-6, 0);
    CHECK_NEAR(knob_schedule_lr(&s, 25), 0.8681981, 1e-6, 0);
    CHECK_NEAR(knob_schedule_lr(&s, 50), 0.55, 1e-6, 0);
    CHECK_NEAR(knob_schedule_lr(&s, 100), 0.1, 1e-6, 0);
    CHECK_NEAR(knob_schedule_lr(&s, 5000), 0.1, 1e-6, 0);
    /* warm-up 10, total 110: the decay spans steps 10..110, midpoint at 60 */
    s.warmup = 10;
    s.total_steps = 110;
    CHECK_NEAR(knob_schedule_lr(&s, 60), 0.55, 1e-6, 0);
    CHECK_NEAR(knob_schedule_lr(&s, 110), 0.1, 1e-6, 0);
    /* total_steps <= warmup: no division by zero, decays at once to lr_min */
    s.total_steps = 10;
    CHECK_NEAR(knob_schedule_lr(&s, 11), 0.1, 1e-6, 0);
}

TEST(sched_constant)
{
    knob_schedule s = {.kind = KNOB_SCHED_CONSTANT, .lr = 0.3f};
    CHECK(knob_schedule_lr(&s, 0) == 0.3f);
    CHECK(knob_schedule_lr(&s, 123456) == 0.3f);
}

/* ------------------------------------------------------------------------------------------------
 * Initializers */

/* One tensor of the given shape in its own params block. */
static knob_tensor *make_tensor(knob_params *P, int n_dims, const int *shape)
{
    knob_err err;
    knob_params_init(P);
    knob_tensor *t = knob_params_add(P, "w", n_dims, shape, &err);
    KNOB_ASSERT(t && knob_params_alloc(P, &err) == KNOB_OK);
    return t;
}

static void moments(const float *x, size_t n, double *mean, double *var)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++)
        ss += ((double)x[i] - *mean) * ((double)x[i] - *mean);
    *var = ss / (double)(n - 1);
}

TEST(init_fan)
{
    const struct {
        int n_dims, shape[4], fan_in, fan_out;
    } cases[] = {
        {1, {7}, 7, 7},
        {2, {3, 5}, 5, 3},                  /* (out, in) */
        {3, {2, 3, 5}, 10, 6},              /* (a, out, in): a as receptive field */
        {4, {8, 3, 5, 5}, 75, 200},         /* (OC, C, KH, KW) */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        knob_tensor t = {.n_dims = cases[k].n_dims};
        memcpy(t.shape, cases[k].shape, sizeof t.shape);
        int fi = -1, fo = -1;
        knob_fan(&t, &fi, &fo);
        CHECK(fi == cases[k].fan_in);
        CHECK(fo == cases[k].fan_out);
    }
}

TEST(init_const_and_uniform)
{
    knob_params P;
    knob_tensor *t = make_tensor(&P, 2, (int[]){100, 100});
    knob_init_const(t, 0.25f);
    for (size_t i = 0; i < t->n_elems; i++)
        CHECK(t->data[i] == 0.25f);
    knob_rng r;
    knob_rng_seed(&r, 1);
    knob_init_uniform(t, 2.0f, 5.0f, &r);
    double mean, var;
    moments(t->data, t->n_elems, &mean, &var);
    int inside = 1;
    for (size_t i = 0; i < t->n_elems; i++)
        inside &= t->data[i] >= 2.0f && t->data[i] <= 5.0f;
    CHECK(inside);
    /* U[2, 5): mean 3.5, variance 9/12 = 0.75 */
    CHECK_NEAR(mean, 3.5, 0, 0.03);
    CHECK_NEAR(var, 0.75, 0.05, 0);
    knob_params_free(&P);
}

/* (1000, 100): fan_in 100, std sqrt(2/100) = 0.1414214 over 100k draws */
TEST(init_kaiming_std)
{
    knob_params P;
    knob_tensor *t = make_tensor(&P, 2, (int[]){1000, 100});
    knob_rng r;
    knob_rng_seed(&r, 2);
    knob_init_kaiming(t, &r);
    double mean, var;
    moments(t->data, t->n_elems, &mean, &var);
    CHECK_NEAR(sqrt(var), 0.1414214, 0.05, 0);
    CHECK_NEAR(mean, 0.0, 0, 0.003);   /* standard error 0.1414 / sqrt(1e5) = 4.5e-4 */
    knob_params_free(&P);
}

/* (300, 200): limit sqrt(6/500) = 0.1095445; all draws within it, variance limit^2/3 = 0.004 */
TEST(init_xavier_bound_and_variance)
{
    knob_params P;
    knob_tensor *t = make_tensor(&P, 2, (int[]){300, 200});
    knob_rng r;
    knob_rng_seed(&r, 3);
    knob_init_xavier(t, &r);
    const double limit = 0.1095445;
    double lo = 1, hi = -1;
    for (size_t i = 0; i < t->n_elems; i++) {
        lo = fmin(lo, (double)t->data[i]);
        hi = fmax(hi, (double)t->data[i]);
    }
    CHECK(lo >= -limit - 1e-7 && hi <= limit + 1e-7);
    CHECK(lo < -0.99 * limit && hi > 0.99 * limit);   /* and the whole range is used */
    double mean, var;
    moments(t->data, t->n_elems, &mean, &var);
    CHECK_NEAR(var, 0.004, 0.05, 0);
    knob_params_free(&P);
}

/* Same seed, same values; another seed, other values; values drawn one per element in order, so a
 * tensor's first half equals a half-size tensor drawn from the same seed. */
TEST(init_deterministic)
{
    knob_params P1, P2, P3;
    knob_tensor *a = make_tensor(&P1, 2, (int[]){64, 32});
    knob_tensor *b = make_tensor(&P2, 2, (int[]){64, 32});
    knob_tensor *h = make_tensor(&P3, 2, (int[]){32, 32});
    knob_rng r;
    knob_rng_seed(&r, 99);
    knob_init_normal(a, 0.02f, &r);
    knob_rng_seed(&r, 99);
    knob_init_normal(b, 0.02f, &r);
    CHECK(memcmp(a->data, b->data, a->n_elems * sizeof(float)) == 0);
    knob_rng_seed(&r, 99);
    knob_init_normal(h, 0.02f, &r);
    CHECK(memcmp(a->data, h->data, h->n_elems * sizeof(float)) == 0);
    knob_rng_seed(&r, 100);
    knob_init_normal(b, 0.02f, &r);
    CHECK(memcmp(a->data, b->data, a->n_elems * sizeof(float)) != 0);
    double mean, var;
    moments(a->data, a->n_elems, &mean, &var);
    CHECK_NEAR(sqrt(var), 0.02, 0.05, 0);
    knob_params_free(&P1);
    knob_params_free(&P2);
    knob_params_free(&P3);
}
