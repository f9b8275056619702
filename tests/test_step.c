/* test_step.c: the shared training step and evaluation pass (src/train/step.c) on a model small
 * enough to differentiate by hand: pred = w x (one weight), loss = mean (pred - y)^2 over a batch
 * of two points, so dloss/dw = mean 2 (w x - y) x. Checks gradient accumulation over micro-batches,
 * clipping, the optimizer step at the given rate, the messages for a non-finite loss and a
 * non-finite gradient, that a step allocates nothing, and the evaluation means. */
#include "test.h"

typedef struct {
    knob_params P;
    knob_graph *g;
    knob_node *x, *y, *loss, *pred;
    knob_optim o;
    const float *data;   /* (n_micro, 2 points, x and y) */
} toy;

static void toy_build(toy *t, knob_err *err)
{
    memset(t, 0, sizeof *t);
    knob_params_init(&t->P);
    knob_params_add(&t->P, "w", 1, (int[]){1}, err);
    knob_params_alloc(&t->P, err);
    t->P.data[0] = 0.5f;
    t->g = knob_graph_new(err);
    t->x = knob_input(t->g, "x", 2, (int[]){2, 1});
    t->y = knob_input(t->g, "y", 2, (int[]){2, 1});
    t->pred = knob_mul(t->g, t->x, knob_param(t->g, knob_params_find(&t->P, "w")));
    t->loss = knob_mse(t->g, t->pred, t->y);
    knob_graph_compile(t->g, err);
    knob_optim_init(&t->o, &t->P, &(knob_optim_config){.kind = KNOB_OPTIM_SGD}, err);
}

static void toy_free(toy *t)
{
    knob_optim_free(&t->o);
    knob_graph_free(t->g);
    knob_params_free(&t->P);
}

static knob_status toy_fill(void *ctx, int i, int *rows, knob_err *err)
{
    toy *t = ctx;
    for (int k = 0; k < 2; k++) {
        knob_node_data(t->x)[k] = t->data[i * 4 + 2 * k];
        knob_node_data(t->y)[k] = t->data[i * 4 + 2 * k + 1];
    }
    *rows = 2;
    (void)err;
    return KNOB_OK;
}

TEST(step_accumulates_clips_and_steps)
{
    knob_err err;
    toy t;
    toy_build(&t, &err);
    /* micro-batch 0: (1, 2), (2, 1); micro-batch 1: (3, 0), (-1, 1); w = 0.5 */
    static const float data[8] = {1, 2, 2, 1, 3, 0, -1, 1};
    t.data = data;
    knob_step s = {.g = t.g, .loss = t.loss, .P = &t.P, .opt = &t.o, .accum = 2, .fill = toy_fill, .ctx = &t,
                   .last_finite = NAN, .last_finite_step = -1};
    /* by hand: batch 0 errors -1.5, 0 -> loss 1.125, grad mean(2 e x) = -1.5; batch 1 errors 1.5,
     * -1.5 -> loss 2.25, grad (2*1.5*3 + 2*(-1.5)*(-1)) / 2 = 6; mean grad 2.25, mean loss 1.6875 */
    knob_step_result r;
    long before = knob_alloc_count();
    CHECK_OK(knob_step_run(&s, 1, 0.1f, &r, &err));
    CHECK(knob_alloc_count() == before);
    CHECK_NEAR(r.loss, 1.6875, 1e-6, 0);
    CHECK_NEAR(r.grad_norm, 2.25, 1e-6, 0);
    CHECK_NEAR(t.P.data[0], 0.5 - 0.1 * 2.25, 1e-6, 0);
    CHECK(s.last_finite_step == 1);
    /* clipped to norm 1: w moves by lr exactly (the gradient's sign) */
    t.P.data[0] = 0.5f;
    s.clip = 1.0f;
    CHECK_OK(knob_step_run(&s, 2, 0.1f, &r, &err));
    CHECK_NEAR(r.grad_norm, 2.25, 1e-6, 0);
    CHECK_NEAR(t.P.data[0], 0.4, 1e-6, 0);
    toy_free(&t);
}

TEST(step_names_a_non_finite_loss_and_gradient)
{
    knob_err err;
    toy t;
    toy_build(&t, &err);
    static const float bad_y[4] = {1, NAN, 2, 1};
    t.data = bad_y;
    knob_step s = {.g = t.g, .loss = t.loss, .P = &t.P, .opt = &t.o, .accum = 1, .fill = toy_fill, .ctx = &t,
                   .last_finite = 2.31, .last_finite_step = 811};
    CHECK_FAILS_WITH(knob_step_run(&s, 812, 0.1f, NULL, &err), KNOB_ERR_NUMERIC,
                     "step 812: loss is nan (last finite 2.31 at step 811); try a lower --lr");
    /* a finite loss whose gradient overflows: x = 1e30, w = 1e-12, y = 0: error 1e18, loss
     * (1e36 + 0) / 2 fits a float, dloss/dw = 2 * 1e18 * 1e30 / 2 = 1e48 does not */
    static const float huge[4] = {1e30f, 0, 0, 0};
    t.data = huge;
    t.P.data[0] = 1e-12f;
    CHECK_FAILS_WITH(knob_step_run(&s, 40, 0.1f, NULL, &err), KNOB_ERR_NUMERIC,
                     "step 40: gradient of 'w' is not finite");
    CHECK(t.P.data[0] == 1e-12f);   /* no step taken */
    toy_free(&t);
}

typedef struct {
    float *z;        /* (2, 3) */
    int32_t *t;      /* (2) */
    int bad;
} zfill;

static knob_status logit_fill(void *ctx, int i, int *rows, knob_err *err)
{
    zfill *f = ctx;
    for (int r = 0; r < 2; r++) {
        f->z[3 * r] = 0;
        f->z[3 * r + 1] = (float)log(2.0);
        f->z[3 * r + 2] = 0;
    }
    f->t[0] = f->bad ? 5 : i == 0 ? 0 : 1;
    f->t[1] = i == 0 ? 1 : 99;   /* the second batch's padding row: never read */
    *rows = i == 0 ? 2 : 1;
    (void)err;
    return KNOB_OK;
}

TEST(eval_means_loss_and_accuracy)
{
    knob_err err;
    toy t;
    toy_build(&t, &err);
    static const float data[8] = {1, 2, 2, 1, 3, 0, -1, 1};
    t.data = data;
    knob_eval e = {.g = t.g, .loss = t.loss, .n_batches = 2, .fill = toy_fill, .ctx = &t};
    knob_eval_stats st;
    CHECK_OK(knob_eval_run(&e, &st, NULL, &err));
    CHECK_NEAR(st.loss, (1.125 + 2.25) / 2, 1e-6, 0);
    CHECK(st.n == 4 && isnan(st.accuracy));
    toy_free(&t);
    /* logits and targets: batches of two rows of three classes; the second batch has one real row */
    knob_graph *g = knob_graph_new(&err);
    knob_node *z = knob_input(g, "z", 2, (int[]){2, 3});
    CHECK_OK(knob_graph_compile(g, &err));
    int32_t tgt[2];
    zfill zf = {knob_node_data(z), tgt, 0};
    knob_eval e2 = {.g = g, .logits = z, .targets = tgt, .n_batches = 2, .fill = logit_fill, .ctx = &zf};
    int32_t pred[3];
    CHECK_OK(knob_eval_run(&e2, &st, pred, &err));
    /* rows: softmax (1/4, 1/2, 1/4) with target 0 (-log 1/4, wrong), target 1 (-log 1/2, right), and
     * the same row with target 1 again in the second batch */
    CHECK(st.n == 3 && st.correct == 2 && pred[0] == 1 && pred[1] == 1 && pred[2] == 1);
    CHECK_NEAR(st.loss, (log(4.0) + 2 * log(2.0)) / 3, 1e-6, 0);
    CHECK_NEAR(st.accuracy, 2.0 / 3, 1e-12, 0);
    tgt[0] = 5;
    zf.bad = 1;
    CHECK_FAILS_WITH(knob_eval_run(&e2, &st, NULL, &err), KNOB_ERR_FORMAT, "label 5 is outside the model's 3 classes");
    knob_graph_free(g);
}
