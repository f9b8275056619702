/* test_nonfinite.c: a nan in the loss or a gradient, through the trainers' own API, injected at a
 * chosen step by the step helper's test hook (knob_step_fault_at, src/train/step.c). Without
 * skip_nonfinite the run stops with the step and the first tensor that went bad, and the last good
 * checkpoint on disk is byte-identical to the one a run stopped there on purpose writes. With it,
 * the step is skipped: the parameters are unchanged by it, the skip is counted (and saved), the
 * data and dropout generators end where a run without the fault leaves them, and two such runs
 * give the same bytes. GPT trainer and image-classifier trainer both. */
#include "test.h"

#include <math.h>
#include <stdlib.h>

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
}

static int files_equal(const char *a, const char *b)
{
    unsigned char *pa = NULL, *pb = NULL;
    size_t na, nb;
    knob_err err;
    int same = knob_read_file(a, &pa, &na, &err) == KNOB_OK && knob_read_file(b, &pb, &nb, &err) == KNOB_OK &&
               na == nb && memcmp(pa, pb, na) == 0;
    knob_free(pa);
    knob_free(pb);
    return same;
}

/* ------------------------------------------------------------------------------------------------
 * GPT */

static knob_gpt_train_config gpt_config(void)
{
    knob_gpt_train_config c;
    knob_gpt_train_config_default(&c);
    c.model = (knob_gpt_config){.n_layer = 1, .n_head = 2, .n_embd = 16, .block_size = 8, .vocab_size = 7,
                                .dropout = 0.1f, .bias = 1};
    c.batch = 2;
    c.seq_len = 8;
    c.accum = 2;   /* the fault is in the first micro-batch: the second must still draw its data */
    c.steps = 40;
    c.warmup = 2;
    c.lr = 1e-2f;
    return c;
}

static uint16_t tokens[300];

static knob_gpt_trainer *gpt_new(const knob_gpt_train_config *c)
{
    knob_err err;
    for (int i = 0; i < 300; i++)
        tokens[i] = (uint16_t)((i * 3 + i / 7) % 7);
    knob_gpt_trainer *tr = NULL;
    CHECK_OK(knob_gpt_trainer_new(&tr, c, tokens, 250, tokens + 250, 50, &err));
    return tr;
}

/* a run of the whole schedule (or stop_after steps) with a checkpoint every 10 steps */
static knob_status gpt_run(const knob_gpt_train_config *c, const char *path, long stop_after, knob_gpt_run_result *r,
                           knob_err *err)
{
    knob_gpt_trainer *tr = gpt_new(c);
    if (!tr)
        return KNOB_ERR_USAGE;
    knob_gpt_run run = {.eval_every = 100, .eval_batches = 1, .ckpt_every = 10, .stop_after = stop_after,
                        .ckpt_path = path, .tok_desc = "byte"};
    knob_status s = knob_gpt_trainer_run(tr, &run, NULL, NULL, r, err);
    knob_gpt_trainer_free(tr);
    return s;
}

TEST(nonfinite_gpt_loss_stops_and_keeps_the_last_checkpoint)
{
    knob_err err;
    knob_gpt_train_config c = gpt_config();
    knob_gpt_run_result r;
    char ref[512], got[512];
    tmp_path(ref, sizeof ref, "nf-ref.safetensors");
    tmp_path(got, sizeof got, "nf-got.safetensors");
    CHECK_OK(gpt_run(&c, ref, 20, &r, &err));   /* the checkpoint of step 20, stopped on purpose */
    knob_step_fault_at(25, NULL);
    CHECK_FAILS_WITH(gpt_run(&c, got, 0, &r, &err), KNOB_ERR_NUMERIC, "step 25: loss is nan (last finite");
    CHECK(strstr(err.msg, "at step 24)") != NULL);
    CHECK(files_equal(ref, got));
    /* a gradient instead: the message names the tensor */
    knob_gpt_trainer *tr = gpt_new(&c);
    if (tr) {
        const char *name = knob_gpt_trainer_params(tr)->t[1]->name;
        knob_step_fault_at(3, name);
        knob_gpt_step_info info;
        CHECK_OK(knob_gpt_trainer_step(tr, &info, &err));
        CHECK_OK(knob_gpt_trainer_step(tr, &info, &err));
        CHECK_FAILS_WITH(knob_gpt_trainer_step(tr, &info, &err), KNOB_ERR_NUMERIC, "step 3: gradient of '");
        CHECK(strstr(err.msg, name) != NULL);
        CHECK(knob_gpt_trainer_step_count(tr) == 2);
        knob_gpt_trainer_free(tr);
    }
    knob_step_fault_at(0, NULL);
}

/* the RNG states a checkpoint holds */
static void ckpt_rngs(const char *path, knob_rng *data, knob_rng *drop, long *skipped)
{
    knob_err err;
    knob_ckpt_file f;
    memset(data, 0, sizeof *data);
    memset(drop, 0, sizeof *drop);
    *skipped = -1;
    CHECK_OK(knob_ckpt_open(&f, path, "gpt", &err));
    if (test_failed_now)
        return;
    CHECK_OK(knob_ckpt_read_rng(&f, "data", data, &err));
    CHECK_OK(knob_ckpt_read_rng(&f, "dropout", drop, &err));
    *skipped = 0;
    knob_json_get_long(f.state, "skipped", 0, 1000, 0, skipped, path, &err);
    knob_ckpt_close(&f);
}

TEST(nonfinite_gpt_skip_leaves_parameters_and_keeps_the_streams)
{
    knob_err err;
    knob_gpt_train_config c = gpt_config();
    c.skip_nonfinite = 1;
    char a[512], b[512], b2[512];
    tmp_path(a, sizeof a, "nf-a.safetensors");
    tmp_path(b, sizeof b, "nf-b.safetensors");
    tmp_path(b2, sizeof b2, "nf-b2.safetensors");
    knob_gpt_run_result r;
    CHECK_OK(gpt_run(&c, a, 0, &r, &err));   /* A: no fault */
    CHECK(r.skipped == 0);
    knob_step_fault_at(7, NULL);
    CHECK_OK(gpt_run(&c, b, 0, &r, &err));   /* B: step 7 skipped */
    CHECK(r.skipped == 1 && r.steps_done == 40 && isfinite(r.train_loss));
    CHECK_OK(gpt_run(&c, b2, 0, &r, &err));   /* B again: the same bytes */
    CHECK(files_equal(b, b2));
    CHECK(!files_equal(a, b));
    knob_rng da, pa, db, pb;
    long sa, sb;
    ckpt_rngs(a, &da, &pa, &sa);
    ckpt_rngs(b, &db, &pb, &sb);
    CHECK(memcmp(&da, &db, sizeof da) == 0);   /* the skipped step drew its windows */
    CHECK(memcmp(&pa, &pb, sizeof pa) == 0);   /* and its dropout masks */
    CHECK(sa == 0 && sb == 1);

    /* the skipped step changes no parameter, and the optimizer does not count it */
    knob_gpt_trainer *tr = gpt_new(&c);
    if (tr) {
        knob_params *P = knob_gpt_trainer_params(tr);
        float *before = malloc(P->n_elems * sizeof *before);
        knob_gpt_step_info info;
        for (int i = 0; i < 6; i++)
            CHECK_OK(knob_gpt_trainer_step(tr, &info, &err));
        memcpy(before, P->data, P->n_elems * sizeof *before);
        CHECK_OK(knob_gpt_trainer_step(tr, &info, &err));
        CHECK(info.skipped == 1 && info.step == 7 && isnan(info.loss));
        CHECK(memcmp(before, P->data, P->n_elems * sizeof *before) == 0);
        CHECK_OK(knob_gpt_trainer_step(tr, &info, &err));
        CHECK(info.skipped == 0 && info.step == 8);
        CHECK(memcmp(before, P->data, P->n_elems * sizeof *before) != 0);
        free(before);
        knob_gpt_trainer_free(tr);
    }
    knob_step_fault_at(0, NULL);
}

/* ------------------------------------------------------------------------------------------------
 * Image classifiers */

static void make_images(knob_dataset *d, int n, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->n = n, d->c = 1, d->h = 6, d->w = 6, d->n_classes = 3;
    d->x = knob_malloc((size_t)n * 36 * sizeof *d->x);
    d->y = knob_malloc((size_t)n * sizeof *d->y);
    KNOB_ASSERT(d->x && d->y);
    knob_rng r;
    knob_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        d->y[i] = i % 3;
        for (int p = 0; p < 36; p++)
            d->x[(size_t)i * 36 + p] = 0.3f * knob_rng_uniform(&r) + ((p % 6) / 2 == i % 3 ? 0.6f : 0.0f);
    }
    for (int k = 0; k < 3; k++)
        snprintf(d->class_names[k], sizeof d->class_names[k], "c%d", k);
}

typedef struct {
    knob_splits s;
    knob_vision m;
    knob_train_state *st;
    knob_train_config tc;
} vision_run;

static void vision_setup(vision_run *v, const char *last, const char *best)
{
    knob_err err;
    memset(v, 0, sizeof *v);
    make_images(&v->s.train, 48, 1);
    make_images(&v->s.val, 12, 2);
    knob_vision_config c = {.kind = KNOB_VISION_MLP, .c = 1, .h = 6, .w = 6, .n_classes = 3, .n_hidden = 1,
                            .hidden = {8}, .dropout = 0.25f};
    CHECK_OK(knob_vision_init(&v->m, &c, 5, &err));
    knob_train_config_default(&v->tc);
    v->tc.epochs = 4;
    v->tc.batch = 8;   /* 6 steps an epoch */
    v->tc.sched.lr = 0.01f;
    v->tc.seed = 5;
    v->tc.aug.noise = 0.05f;
    v->tc.dataset = "generated";
    v->tc.class_names = "c0|c1|c2";
    v->tc.last_path = last;
    v->tc.best_path = best;
    v->st = knob_calloc(1, sizeof *v->st);
    knob_train_state_init(v->st, v->tc.seed);
}

static void vision_teardown(vision_run *v)
{
    knob_free(v->st);
    knob_vision_free(&v->m);
    knob_free(v->s.train.x);
    knob_free(v->s.train.y);
    knob_free(v->s.val.x);
    knob_free(v->s.val.y);
}

TEST(nonfinite_vision_stops_in_epoch_and_keeps_the_last_checkpoints)
{
    knob_err err;
    char rl[512], rb[512], gl[512], gb[512];
    tmp_path(rl, sizeof rl, "nfv-ref.safetensors");
    tmp_path(rb, sizeof rb, "nfv-ref-best.safetensors");
    tmp_path(gl, sizeof gl, "nfv-got.safetensors");
    tmp_path(gb, sizeof gb, "nfv-got-best.safetensors");
    vision_run v;
    vision_setup(&v, rl, rb);
    v.tc.stop_after = 2;
    CHECK_OK(knob_vision_train(&v.m, &v.s, &v.tc, v.st, NULL, NULL, NULL, &err));
    vision_teardown(&v);
    vision_setup(&v, gl, gb);
    knob_step_fault_at(15, NULL);   /* epoch 3's third step */
    CHECK_FAILS_WITH(knob_vision_train(&v.m, &v.s, &v.tc, v.st, NULL, NULL, NULL, &err), KNOB_ERR_NUMERIC,
                     "epoch 3: step 15: loss is nan");
    CHECK(files_equal(rl, gl) && files_equal(rb, gb));
    vision_teardown(&v);
    knob_step_fault_at(0, NULL);
}

TEST(nonfinite_vision_skip_counts_and_finishes)
{
    knob_err err;
    char a[512], b[512];
    tmp_path(a, sizeof a, "nfv-a.safetensors");
    tmp_path(b, sizeof b, "nfv-b.safetensors");
    vision_run v;
    vision_setup(&v, a, NULL);
    v.tc.skip_nonfinite = 1;
    CHECK_OK(knob_vision_train(&v.m, &v.s, &v.tc, v.st, NULL, NULL, NULL, &err));
    knob_rng order = v.st->order_rng, aug = v.st->aug_rng, drop = v.st->drop_rng;
    CHECK(v.st->n_skipped == 0);
    vision_teardown(&v);
    vision_setup(&v, b, NULL);
    v.tc.skip_nonfinite = 1;
    knob_step_fault_at(9, "fc1.weight");   /* a gradient this time, in epoch 2 */
    CHECK_OK(knob_vision_train(&v.m, &v.s, &v.tc, v.st, NULL, NULL, NULL, &err));
    CHECK(v.st->n_skipped == 1 && v.st->epoch == 4 && v.st->step == 24);
    CHECK(isfinite(v.st->hist[1].train_loss) && isfinite(v.st->hist[1].train_acc));
    CHECK(memcmp(&order, &v.st->order_rng, sizeof order) == 0);
    CHECK(memcmp(&aug, &v.st->aug_rng, sizeof aug) == 0);
    CHECK(memcmp(&drop, &v.st->drop_rng, sizeof drop) == 0);
    CHECK(!files_equal(a, b));
    /* the count is saved and read back on resume */
    knob_train_state *st2 = knob_calloc(1, sizeof *st2);
    knob_optim o = {0};
    CHECK_OK(knob_optim_init(&o, &v.m.P, &v.tc.optim, &err));
    CHECK_OK(knob_checkpoint_load_state(b, &o, st2, &err));
    CHECK(st2->n_skipped == 1);
    knob_optim_free(&o);
    knob_free(st2);
    vision_teardown(&v);
    knob_step_fault_at(0, NULL);
}
