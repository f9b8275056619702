/* test_vision.c: the image classifiers (src/models/vision.c), their training loop
 * (src/models/vision_train.c) and checkpoints (src/train/checkpoint.c), on small generated images.
 * Logits are checked against a forward pass written out by hand here (dense layers as loops, the
 * convolution by knob_conv2d_naive, pooling and ReLU as loops); evaluation against per-image
 * classification; the loop by learning a separable task, by same-seed runs giving the same bits,
 * and by a resumed run ending with the same checkpoint bytes as an uninterrupted one. Checkpoint
 * errors: not a classifier, truncated, shapes that do not fit the model; allocation failures at
 * every point of load, build and save. Early stopping, a nan loss, no allocation in a step. Also
 * the threaded conv: same bits for any thread count at batch sizes that use several lanes. */
#include "test.h"

#include <math.h>

/* ------------------------------------------------------------------------------------------------
 * Generated data: class k of K has a bright vertical band in the k-th of K column strips, on
 * noise. */

static void make_images(knob_dataset *d, int n, int h, int w, int K, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->n = n, d->c = 1, d->h = h, d->w = w, d->n_classes = K;
    d->x = knob_malloc((size_t)n * h * w * sizeof *d->x);
    d->y = knob_malloc((size_t)n * sizeof *d->y);
    KNOB_ASSERT(d->x && d->y);
    knob_rng r;
    knob_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        int k = i % K;
        d->y[i] = k;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float v = 0.3f * knob_rng_uniform(&r);
                if (x * K / w == k)
                    v += 0.6f;
                d->x[((size_t)i * h + y) * w + x] = v;
            }
    }
    for (int k = 0; k < K; k++)
        snprintf(d->class_names[k], sizeof d->class_names[k], "c%d", k);
}

static void free_images(knob_dataset *d)
{
    knob_free(d->x);
    knob_free(d->y);
    memset(d, 0, sizeof *d);
}

static void make_splits(knob_splits *s, int h, int w, int K)
{
    memset(s, 0, sizeof *s);
    make_images(&s->train, 48, h, w, K, 1);
    make_images(&s->val, 12, h, w, K, 2);
    make_images(&s->test, 15, h, w, K, 3);
    snprintf(s->name, sizeof s->name, "generated");
}

static void free_splits(knob_splits *s)
{
    free_images(&s->train);
    free_images(&s->val);
    free_images(&s->test);
}

static knob_vision_config mlp_config(int h, int w, int K)
{
    knob_vision_config c = {.kind = KNOB_VISION_MLP, .c = 1, .h = h, .w = w, .n_classes = K, .n_hidden = 1,
                            .hidden = {16}, .dropout = 0.25f};
    return c;
}

static knob_vision_config cnn_config(int h, int w, int K)
{
    knob_vision_config c = {.kind = KNOB_VISION_CNN, .c = 1, .h = h, .w = w, .n_classes = K, .n_conv = 2,
                            .conv = {4, 6}, .kernel = 3, .n_hidden = 1, .hidden = {8}, .dropout = 0.25f};
    return c;
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
}

static int files_equal(const char *a, const char *b)
{
    unsigned char *pa, *pb;
    size_t na, nb;
    knob_err err;
    if (knob_read_file(a, &pa, &na, &err) != KNOB_OK)
        return 0;
    if (knob_read_file(b, &pb, &nb, &err) != KNOB_OK) {
        knob_free(pa);
        return 0;
    }
    int same = na == nb && memcmp(pa, pb, na) == 0;
    knob_free(pa);
    knob_free(pb);
    return same;
}

/* ------------------------------------------------------------------------------------------------
 * Config text */

TEST(vision_config_round_trip)
{
    knob_err err;
    knob_vision_config c = cnn_config(28, 28, 10), back;
    c.dropout = 0.123456789f;
    char s[512];
    knob_vision_config_str(&c, s, sizeof s);
    CHECK_OK(knob_vision_config_parse(&back, s, &err));
    CHECK(back.kind == c.kind && back.c == 1 && back.h == 28 && back.w == 28 && back.n_classes == 10);
    CHECK(back.n_conv == 2 && back.conv[0] == 4 && back.conv[1] == 6 && back.kernel == 3);
    CHECK(back.n_hidden == 1 && back.hidden[0] == 8 && back.dropout == c.dropout);
    knob_vision_config m = mlp_config(8, 8, 3);
    m.n_hidden = 0;
    knob_vision_config_str(&m, s, sizeof s);
    CHECK_OK(knob_vision_config_parse(&back, s, &err));
    CHECK(back.kind == KNOB_VISION_MLP && back.n_hidden == 0 && back.n_conv == 0);

    CHECK_FAILS_WITH(knob_vision_config_parse(&back, "kind=rnn in=1x8x8 classes=3", &err), KNOB_ERR_FORMAT, "rnn");
    CHECK_FAILS_WITH(knob_vision_config_parse(&back, "kind=mlp in=1x8x8 classes=3 colour=red", &err),
                     KNOB_ERR_FORMAT, "colour");
    CHECK_FAILS_WITH(knob_vision_config_parse(&back, "kind=mlp in=1x8x8 classes=1", &err), KNOB_ERR_FORMAT,
                     "classes");
    CHECK_FAILS_WITH(knob_vision_config_parse(&back, "kind=cnn in=1x8x8 classes=3 conv=4 kernel=4", &err),
                     KNOB_ERR_FORMAT, "kernel");
    CHECK_FAILS_WITH(knob_vision_config_parse(&back, "kind=cnn in=1x2x2 classes=3 conv=4,4 kernel=3", &err),
                     KNOB_ERR_FORMAT, "below 1x1");
    int v[6], n;
    CHECK_OK(knob_int_list_parse("256,128", v, 6, &n, "--hidden", &err));
    CHECK(n == 2 && v[0] == 256 && v[1] == 128);
    CHECK_FAILS_WITH(knob_int_list_parse("256,,1", v, 6, &n, "--hidden", &err), KNOB_ERR_USAGE, "--hidden");
    CHECK_FAILS_WITH(knob_int_list_parse("1,2,3,4,5,6,7", v, 6, &n, "--conv", &err), KNOB_ERR_USAGE, "more than 6");
}

TEST(train_config_round_trip)
{
    knob_err err;
    knob_train_config a, b;
    knob_train_config_default(&a);
    a.epochs = 7;
    a.sched.lr = 0.0123f;
    a.optim.kind = KNOB_OPTIM_SGD;
    a.optim.nesterov = 1;
    a.aug.shift = 2;
    a.aug.rotate_deg = 12.5f;
    a.seed = 18446744073709551615ULL;
    char s[1024];
    knob_train_config_str(&a, s, sizeof s);
    CHECK_OK(knob_train_config_parse(&b, s, &err));
    CHECK(b.epochs == 7 && b.sched.lr == a.sched.lr && b.optim.kind == KNOB_OPTIM_SGD && b.optim.nesterov == 1);
    CHECK(b.aug.shift == 2 && b.aug.rotate_deg == 12.5f && b.seed == a.seed && b.batch == a.batch);
    CHECK_FAILS_WITH(knob_train_config_parse(&b, "epochs=x", &err), KNOB_ERR_FORMAT, "epochs");
}

/* ------------------------------------------------------------------------------------------------
 * Forward pass against a hand-written one */

/* logits (K) of image x (h*w) through an MLP with one hidden ReLU layer, in double */
static void mlp_by_hand(const knob_vision *m, const float *x, double *logits)
{
    const knob_tensor *w1 = m->fc_w[0], *b1 = m->fc_b[0], *w2 = m->fc_w[1], *b2 = m->fc_b[1];
    int H = w1->shape[0], D = w1->shape[1], K = w2->shape[0];
    double hid[64];
    for (int j = 0; j < H; j++) {
        double s = b1->data[j];
        for (int i = 0; i < D; i++)
            s += (double)w1->data[(size_t)j * D + i] * x[i];
        hid[j] = s > 0 ? s : 0;
    }
    for (int k = 0; k < K; k++) {
        double s = b2->data[k];
        for (int j = 0; j < H; j++)
            s += (double)w2->data[(size_t)k * H + j] * hid[j];
        logits[k] = s;
    }
}

TEST(vision_mlp_logits_by_hand)
{
    knob_err err;
    knob_vision m;
    knob_vision_config c = mlp_config(4, 5, 3);
    CHECK_OK(knob_vision_init(&m, &c, 7, &err));
    knob_rng r;
    knob_rng_seed(&r, 3);
    for (int i = 0; i < m.n_fc; i++)   /* nonzero biases too */
        knob_init_uniform(m.fc_b[i], -0.5f, 0.5f, &r);
    knob_dataset d;
    make_images(&d, 5, 4, 5, 3, 9);
    knob_vision_net n;
    CHECK_OK(knob_vision_net_build(&n, &m, 5, 0, &err));
    if (!test_failed_now) {
        memcpy(knob_node_data(n.x), d.x, 5 * 20 * sizeof(float));
        CHECK_OK(knob_graph_forward(n.g, &err));
        for (int i = 0; i < 5; i++) {
            double want[3];
            mlp_by_hand(&m, d.x + i * 20, want);
            for (int k = 0; k < 3; k++)
                CHECK_NEAR(knob_node_data(n.logits)[i * 3 + k], want[k], 1e-5, 1e-5);
        }
    }
    knob_vision_net_free(&n);
    free_images(&d);
    knob_vision_free(&m);
}

TEST(vision_cnn_logits_by_hand)
{
    knob_err err;
    knob_vision m;
    knob_vision_config c = cnn_config(8, 6, 3);
    c.n_conv = 1;
    c.kernel = 3;
    CHECK_OK(knob_vision_init(&m, &c, 11, &err));
    knob_rng r;
    knob_rng_seed(&r, 4);
    knob_init_uniform(m.conv_b[0], -0.2f, 0.2f, &r);
    knob_init_uniform(m.fc_b[0], -0.2f, 0.2f, &r);
    knob_dataset d;
    make_images(&d, 2, 8, 6, 3, 5);
    knob_vision_net n;
    CHECK_OK(knob_vision_net_build(&n, &m, 2, 0, &err));
    if (!test_failed_now) {
        memcpy(knob_node_data(n.x), d.x, 2 * 48 * sizeof(float));
        CHECK_OK(knob_graph_forward(n.g, &err));
        int OC = 4;
        float conv[2 * 4 * 8 * 6];
        knob_conv2d_naive(d.x, m.conv_w[0]->data, m.conv_b[0]->data, 2, 1, 8, 6, OC, 3, 3, 1, 1, conv);
        for (int i = 0; i < 2; i++) {
            /* relu, then 2x2 max pool -> (4, 4, 3), flattened in (c, y, x) order */
            float flat[4 * 4 * 3];
            for (int oc = 0; oc < OC; oc++)
                for (int y = 0; y < 4; y++)
                    for (int x = 0; x < 3; x++) {
                        float mx = 0;   /* relu then max == max(0, max) */
                        for (int a = 0; a < 2; a++)
                            for (int b = 0; b < 2; b++)
                                mx = fmaxf(mx, conv[((i * OC + oc) * 8 + 2 * y + a) * 6 + 2 * x + b]);
                        flat[(oc * 4 + y) * 3 + x] = mx;
                    }
            double want[3];
            mlp_by_hand(&m, flat, want);
            for (int k = 0; k < 3; k++)
                CHECK_NEAR(knob_node_data(n.logits)[i * 3 + k], want[k], 1e-4, 1e-5);
        }
    }
    knob_vision_net_free(&n);
    free_images(&d);
    knob_vision_free(&m);
}

/* ------------------------------------------------------------------------------------------------
 * Evaluation: every image once, the padded tail ignored */

TEST(vision_evaluate_counts_every_image_once)
{
    knob_err err;
    knob_vision m;
    knob_vision_config c = mlp_config(4, 6, 3);
    CHECK_OK(knob_vision_init(&m, &c, 5, &err));
    knob_dataset d;
    make_images(&d, 11, 4, 6, 3, 8);
    knob_vision_net n4, n1;
    CHECK_OK(knob_vision_net_build(&n4, &m, 4, 0, &err));   /* 4 + 4 + 3: a padded last batch */
    CHECK_OK(knob_vision_net_build(&n1, &m, 1, 0, &err));
    if (!test_failed_now) {
        knob_eval_result r;
        int32_t pred[11];
        CHECK_OK(knob_vision_evaluate(&n4, &d, &r, pred, &err));
        double loss = 0;
        int correct = 0, total = 0;
        for (int i = 0; i < 11; i++) {
            float p[3];
            CHECK_OK(knob_vision_classify(&n1, d.x + i * 24, p, &err));
            loss += -log((double)p[d.y[i]]);
            int best = p[1] > p[0] ? 1 : 0;
            best = p[2] > p[best] ? 2 : best;
            correct += best == d.y[i];
            CHECK(pred[i] == best);
        }
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                total += r.confusion[a][b];
        CHECK(r.n == 11 && total == 11 && r.correct == correct);
        CHECK_NEAR(r.loss, loss / 11, 1e-5, 1e-6);
        CHECK_NEAR(r.accuracy, correct / 11.0, 0, 1e-12);
        /* a model for other images is refused with both sizes */
        knob_dataset other;
        make_images(&other, 2, 5, 5, 3, 1);
        CHECK_FAILS_WITH(knob_vision_evaluate(&n4, &other, &r, NULL, &err), KNOB_ERR_SHAPE, "1x4x6");
        free_images(&other);
    }
    knob_vision_net_free(&n4);
    knob_vision_net_free(&n1);
    free_images(&d);
    knob_vision_free(&m);
}

/* ------------------------------------------------------------------------------------------------
 * Training */

static knob_train_config small_train(int epochs)
{
    knob_train_config tc;
    knob_train_config_default(&tc);
    tc.epochs = epochs;
    tc.batch = 8;
    tc.sched.lr = 0.01f;
    tc.seed = 5;
    tc.dataset = "generated";
    tc.class_names = "c0|c1|c2";
    return tc;
}

TEST(vision_train_learns_separable_images)
{
    knob_err err;
    knob_splits s;
    make_splits(&s, 6, 6, 3);
    knob_vision m;
    knob_vision_config c = mlp_config(6, 6, 3);
    CHECK_OK(knob_vision_init(&m, &c, 5, &err));
    knob_train_config tc = small_train(8);
    knob_train_state *st = knob_calloc(1, sizeof *st);
    knob_train_state_init(st, tc.seed);
    CHECK_OK(knob_vision_train(&m, &s, &tc, st, NULL, NULL, NULL, &err));
    CHECK(st->epoch == 8 && st->n_hist == 8 && st->step == 8 * (48 / 8));
    CHECK(st->hist[7].train_loss < st->hist[0].train_loss);
    CHECK(st->hist[7].val_acc == 1.0);
    knob_vision_net n;
    knob_eval_result r;
    CHECK_OK(knob_vision_net_build(&n, &m, 4, 0, &err));
    if (!test_failed_now) {
        CHECK_OK(knob_vision_evaluate(&n, &s.test, &r, NULL, &err));
        CHECK(r.accuracy == 1.0);
    }
    knob_vision_net_free(&n);
    knob_free(st);
    knob_vision_free(&m);
    free_splits(&s);
}

/* Same seed, same bits; a run stopped after 2 epochs and resumed from its checkpoint ends with the
 * same checkpoint bytes as a run of 4 epochs straight through (CNN: conv, dropout, augmentation,
 * shuffling and AdamW moments all carried over). */
TEST(vision_resume_gives_same_bytes)
{
    knob_err err;
    knob_splits s;
    make_splits(&s, 8, 8, 3);
    knob_vision_config c = cnn_config(8, 8, 3);
    knob_train_config tc = small_train(4);
    tc.aug.shift = 1;
    tc.aug.noise = 0.05f;
    char a_last[512], a_best[512], b_last[512], b_best[512], c_last[512];
    tmp_path(a_last, sizeof a_last, "va.safetensors");
    tmp_path(a_best, sizeof a_best, "va-best.safetensors");
    tmp_path(b_last, sizeof b_last, "vb.safetensors");
    tmp_path(b_best, sizeof b_best, "vb-best.safetensors");
    tmp_path(c_last, sizeof c_last, "vc.safetensors");
    knob_train_state *st = knob_calloc(1, sizeof *st);
    knob_vision m;

    /* A: 4 epochs straight */
    CHECK_OK(knob_vision_init(&m, &c, tc.seed, &err));
    knob_train_state_init(st, tc.seed);
    tc.last_path = a_last, tc.best_path = a_best;
    CHECK_OK(knob_vision_train(&m, &s, &tc, st, NULL, NULL, NULL, &err));
    knob_vision_free(&m);
    /* C: the same again, another file: same bytes */
    CHECK_OK(knob_vision_init(&m, &c, tc.seed, &err));
    knob_train_state_init(st, tc.seed);
    tc.last_path = c_last, tc.best_path = NULL;
    CHECK_OK(knob_vision_train(&m, &s, &tc, st, NULL, NULL, NULL, &err));
    knob_vision_free(&m);
    CHECK(files_equal(a_last, c_last));
    /* B: 2 epochs, stop, then resume from the checkpoint into the same files */
    CHECK_OK(knob_vision_init(&m, &c, tc.seed, &err));
    knob_train_state_init(st, tc.seed);
    tc.last_path = b_last, tc.best_path = b_best, tc.stop_after = 2;
    CHECK_OK(knob_vision_train(&m, &s, &tc, st, NULL, NULL, NULL, &err));
    CHECK(st->epoch == 2);
    CHECK(!files_equal(a_last, b_last));
    knob_vision_free(&m);
    memset(st, 0, sizeof *st);
    knob_checkpoint_info info;
    CHECK_OK(knob_vision_load(&m, &info, b_last, &err));
    CHECK(strcmp(info.dataset, "generated") == 0 && info.n_classes == 3 && strcmp(info.classes[2], "c2") == 0);
    knob_train_config tr;
    CHECK_OK(knob_train_config_parse(&tr, info.train, &err));
    CHECK(tr.aug.shift == 1 && tr.epochs == 4 && tr.seed == tc.seed);
    tr.last_path = b_last, tr.best_path = b_best, tr.dataset = "generated", tr.class_names = "c0|c1|c2";
    CHECK_OK(knob_vision_train(&m, &s, &tr, st, b_last, NULL, NULL, &err));
    CHECK(st->epoch == 4 && st->n_hist == 4);
    CHECK(files_equal(a_last, b_last));
    CHECK(files_equal(a_best, b_best));
    /* and a finished run asks for more epochs */
    CHECK_FAILS_WITH(knob_vision_train(&m, &s, &tr, st, b_last, NULL, NULL, &err), KNOB_ERR_USAGE, "--epochs");
    knob_vision_free(&m);
    knob_free(st);
    free_splits(&s);
}

/* The trainer writes its checkpoints in the background: one that cannot be written stops the run
 * (at the next epoch's checkpoint, or at the end) with the inline save's message; the best
 * checkpoint, written from the same copy of the state as the last, has its bytes. */
TEST(vision_background_checkpoint_errors_stop_the_run)
{
    knob_err err;
    knob_splits s;
    make_splits(&s, 8, 8, 3);
    knob_vision_config c = cnn_config(8, 8, 3);
    knob_train_config tc = small_train(3);
    tc.patience = 0;
    char bad[512], best[512], last[512];
    tmp_path(bad, sizeof bad, "no_such_dir/v.safetensors");
    tmp_path(best, sizeof best, "vbg-best.safetensors");
    tmp_path(last, sizeof last, "vbg.safetensors");
    knob_train_state *st = knob_calloc(1, sizeof *st);
    knob_vision m;
    CHECK_OK(knob_vision_init(&m, &c, tc.seed, &err));
    knob_train_state_init(st, tc.seed);
    tc.last_path = bad;
    CHECK_FAILS_WITH(knob_vision_train(&m, &s, &tc, st, NULL, NULL, NULL, &err), KNOB_ERR_IO, "cannot create temp file");
    CHECK(strstr(err.msg, bad) == err.msg);
    CHECK(st->epoch == 2);   /* epoch 1's write failed; epoch 2's checkpoint reported it */
    knob_vision_free(&m);
    CHECK_OK(knob_vision_init(&m, &c, tc.seed, &err));
    knob_train_state_init(st, tc.seed);
    tc.last_path = last, tc.best_path = best;
    CHECK_OK(knob_vision_train(&m, &s, &tc, st, NULL, NULL, NULL, &err));
    if (st->best_epoch == st->epoch)
        CHECK(files_equal(best, last));
    knob_vision_free(&m);
    knob_free(st);
    free_splits(&s);
}

TEST(vision_train_nan_loss_is_an_error)
{
    knob_err err;
    knob_splits s;
    make_splits(&s, 6, 6, 3);
    knob_vision m;
    knob_vision_config c = mlp_config(6, 6, 3);
    CHECK_OK(knob_vision_init(&m, &c, 5, &err));
    m.fc_b[1]->data[2] = NAN;   /* a diverged weight: every logit of class 2 is nan */
    knob_train_config tc = small_train(2);
    knob_train_state *st = knob_calloc(1, sizeof *st);
    knob_train_state_init(st, tc.seed);
    CHECK_FAILS_WITH(knob_vision_train(&m, &s, &tc, st, NULL, NULL, NULL, &err), KNOB_ERR_NUMERIC, "loss is nan");
    knob_free(st);
    knob_vision_free(&m);
    free_splits(&s);
}

TEST(vision_train_step_allocates_nothing)
{
    knob_err err;
    knob_vision m;
    knob_vision_config c = cnn_config(8, 8, 3);
    CHECK_OK(knob_vision_init(&m, &c, 5, &err));
    knob_vision_net n;
    knob_optim o;
    CHECK_OK(knob_vision_net_build(&n, &m, 4, 1, &err));
    knob_optim_config oc = {.kind = KNOB_OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    CHECK_OK(knob_optim_init(&o, &m.P, &oc, &err));
    if (!test_failed_now) {
        for (int i = 0; i < 4 * 64; i++)
            knob_node_data(n.x)[i] = (float)(i % 7) / 7;
        for (int i = 0; i < 4; i++)
            knob_node_data_i32(n.y)[i] = i % 3;
        long before = knob_alloc_count();
        for (int step = 0; step < 3; step++) {
            knob_params_zero_grad(&m.P);
            CHECK_OK(knob_graph_forward(n.g, &err));
            knob_graph_backward(n.g, n.loss);
            knob_optim_step(&o, 1e-3f);
        }
        CHECK(knob_alloc_count() == before);
    }
    knob_optim_free(&o);
    knob_vision_net_free(&n);
    knob_vision_free(&m);
}

/* ------------------------------------------------------------------------------------------------
 * Checkpoint errors */

TEST(vision_checkpoint_errors)
{
    knob_err err;
    char good[512], other[512], cut[512], wrong[512];
    tmp_path(good, sizeof good, "ck-good.safetensors");
    tmp_path(other, sizeof other, "ck-other.safetensors");
    tmp_path(cut, sizeof cut, "ck-cut.safetensors");
    tmp_path(wrong, sizeof wrong, "ck-wrong.safetensors");
    knob_vision m, m2;
    knob_vision_config c = mlp_config(6, 6, 3);
    CHECK_OK(knob_vision_init(&m, &c, 5, &err));
    knob_train_config tc = small_train(1);
    knob_train_state *st = knob_calloc(1, sizeof *st);
    knob_train_state_init(st, 1);
    CHECK_OK(knob_checkpoint_save(good, &m, NULL, &tc, st, &err));
    knob_checkpoint_info info;
    CHECK_OK(knob_vision_load(&m2, &info, good, &err));
    CHECK(m2.P.n_elems == m.P.n_elems && memcmp(m2.P.data, m.P.data, m.P.n_elems * sizeof(float)) == 0);
    knob_vision_free(&m2);

    /* not a classifier: plain parameters without the format key */
    CHECK_OK(knob_params_save(&m.P, other, NULL, 0, &err));
    CHECK_FAILS_WITH(knob_vision_load(&m2, &info, other, &err), KNOB_ERR_FORMAT, "not a knob classifier checkpoint");
    CHECK(m2.P.n == 0);
    knob_kv fit_meta[] = {{"format", "knob-fit"}};
    CHECK_OK(knob_params_save(&m.P, other, fit_meta, 1, &err));
    CHECK_FAILS_WITH(knob_vision_load(&m2, &info, other, &err), KNOB_ERR_FORMAT, "not a knob classifier checkpoint (format 'knob-fit')");
    /* truncated */
    unsigned char *buf;
    size_t len;
    CHECK_OK(knob_read_file(good, &buf, &len, &err));
    FILE *f = fopen(cut, "wb");
    fwrite(buf, 1, len - 10, f);
    fclose(f);
    knob_free(buf);
    memset(&err, 0, sizeof err);
    CHECK(knob_vision_load(&m2, &info, cut, &err) != KNOB_OK && strstr(err.msg, cut) && !strchr(err.msg, '\n'));
    /* metadata for a wider hidden layer than the tensors hold: names the tensor and both shapes */
    knob_vision_config c2 = c;
    c2.hidden[0] = 17;
    char model[512];
    knob_vision_config_str(&c2, model, sizeof model);
    knob_kv meta[] = {{"format", "knob-classifier"}, {"model", model}};
    CHECK_OK(knob_params_save(&m.P, wrong, meta, 2, &err));
    CHECK_FAILS_WITH(knob_vision_load(&m2, &info, wrong, &err), KNOB_ERR_SHAPE, "'fc1.weight' is (16, 36) in file, model expects (17, 36)");
    /* no training state: cannot resume */
    knob_optim o;
    knob_optim_config oc = {.kind = KNOB_OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    CHECK_OK(knob_optim_init(&o, &m.P, &oc, &err));
    CHECK_FAILS_WITH(knob_checkpoint_load_state(good, &o, st, &err), KNOB_ERR_FORMAT, "optim.m.fc1.weight");
    knob_optim_free(&o);
    knob_free(st);
    knob_vision_free(&m);
}

/* ------------------------------------------------------------------------------------------------
 * Threaded convolution: several lanes, same bits for 1, 2 and 3 threads, and the naive result */

TEST(conv_lanes_same_bits_any_thread_count)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *tx = knob_params_add(&P, "x", 4, (int[]){19, 3, 12, 12}, &err);   /* 16 lanes, uneven */
    knob_tensor *tw = knob_params_add(&P, "w", 4, (int[]){16, 3, 3, 3}, &err);   /* 1.2M multiply-adds: */
    knob_tensor *tb = knob_params_add(&P, "b", 1, (int[]){16}, &err);            /* lanes run in parallel */
    CHECK_OK(knob_params_alloc(&P, &err));
    knob_rng r;
    knob_rng_seed(&r, 17);
    for (size_t i = 0; i < P.n_elems; i++)
        P.data[i] = knob_rng_normal(&r);
    knob_graph *g = knob_graph_new(&err);
    knob_node *y = knob_conv2d(g, knob_param(g, tx), knob_param(g, tw), knob_param(g, tb), 1, 1);
    knob_node *wt = y ? knob_input(g, "wt", 4, knob_node_tensor(y)->shape) : NULL;
    knob_node *loss = knob_sum_all(g, knob_mul(g, y, wt));
    CHECK_OK(knob_graph_compile(g, &err));
    if (!test_failed_now) {
        size_t ny = knob_node_tensor(y)->n_elems;
        for (size_t i = 0; i < ny; i++)
            knob_node_data(wt)[i] = knob_rng_normal(&r);
        float *y1 = knob_malloc(ny * sizeof(float)), *g1 = knob_malloc(P.n_elems * sizeof(float));
        float *ref = knob_malloc(ny * sizeof(float));
        for (int pass = 0; pass < 4; pass++) {
            knob_threads_set(pass < 3 ? pass + 1 : 17);   /* 17 > 16 lanes: lanes one by one */
            knob_params_zero_grad(&P);
            CHECK_OK(knob_graph_forward(g, &err));
            knob_graph_backward(g, loss);
            if (pass == 0) {
                memcpy(y1, knob_node_data(y), ny * sizeof(float));
                memcpy(g1, P.grad, P.n_elems * sizeof(float));
            } else {
                CHECK(memcmp(y1, knob_node_data(y), ny * sizeof(float)) == 0);
                CHECK(memcmp(g1, P.grad, P.n_elems * sizeof(float)) == 0);
            }
        }
        knob_threads_set(0);
        knob_conv2d_naive(tx->data, tw->data, tb->data, 19, 3, 12, 12, 16, 3, 3, 1, 1, ref);
        for (size_t i = 0; i < ny; i += 7)
            CHECK_NEAR(y1[i], ref[i], 1e-4, 1e-4);
        /* dw[oc, c, kh, kw] = sum over images and positions of wt * x, by hand for one element */
        double dw = 0;
        for (int n = 0; n < 19; n++)
            for (int oh = 0; oh < 12; oh++)
                for (int ow = 0; ow < 12; ow++) {
                    int ih = oh - 1 + 2, iw = ow - 1 + 1;   /* kh 2, kw 1, c 1, oc 5 */
                    if (ih < 0 || ih >= 12 || iw < 0 || iw >= 12)
                        continue;
                    dw += (double)knob_node_data(wt)[((n * 16 + 5) * 12 + oh) * 12 + ow] *
                          tx->data[((n * 3 + 1) * 12 + ih) * 12 + iw];
                }
        CHECK_NEAR(tw->grad[((5 * 3 + 1) * 3 + 2) * 3 + 1], dw, 1e-4, 1e-3);
        knob_free(y1);
        knob_free(g1);
        knob_free(ref);
    }
    knob_graph_free(g);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Images of any size -> model input */

TEST(vision_image_fit_area_average_and_invert)
{
    /* 4x4, dark border (mean < 0.5): kept as is; 2x2 output = means of 2x2 blocks */
    float px[16] = {0, 0, 0, 0,
                    0, 1, 1, 0,
                    0, 1, 0.5f, 0,
                    0, 0, 0, 0};
    knob_image im = {4, 4, px};
    float out[4];
    knob_image_fit(&im, out, 2, 2);
    CHECK_NEAR(out[0], 0.25, 0, 1e-6);
    CHECK_NEAR(out[3], 0.125, 0, 1e-6);
    /* light paper: inverted */
    for (int i = 0; i < 16; i++)
        px[i] = 1 - px[i];
    knob_image_fit(&im, out, 2, 2);
    CHECK_NEAR(out[0], 0.25, 0, 1e-6);
    CHECK_NEAR(out[3], 0.125, 0, 1e-6);
    /* 2x2 up to 4x4: each source pixel becomes a 2x2 block */
    float small[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    knob_image s2 = {2, 2, small};
    float big[16];
    knob_image_fit(&s2, big, 4, 4);
    CHECK_NEAR(big[0], 0.1, 0, 1e-6);
    CHECK_NEAR(big[5], 0.1, 0, 1e-6);
    CHECK_NEAR(big[15], 0.4, 0, 1e-6);
    CHECK_NEAR(big[2], 0.2, 0, 1e-6);
}

/* Early stopping: validation labels that contradict the training labels make the validation loss
 * rise once the net learns, so the run stops `patience` epochs after its best one. */
TEST(vision_train_early_stopping)
{
    knob_err err;
    knob_splits s;
    make_splits(&s, 6, 6, 3);
    for (int i = 0; i < s.val.n; i++)
        s.val.y[i] = (s.val.y[i] + 1) % 3;
    knob_vision m;
    knob_vision_config c = mlp_config(6, 6, 3);
    CHECK_OK(knob_vision_init(&m, &c, 5, &err));
    knob_train_config tc = small_train(30);
    tc.patience = 2;
    knob_train_state *st = knob_calloc(1, sizeof *st);
    knob_train_state_init(st, tc.seed);
    CHECK_OK(knob_vision_train(&m, &s, &tc, st, NULL, NULL, NULL, &err));
    CHECK(st->stopped_early && st->epoch < 30 && st->epoch == st->best_epoch + 2 && st->n_hist == st->epoch);
    for (int e = 0; e < st->n_hist; e++)   /* the best is the lowest validation loss seen */
        CHECK(st->hist[e].val_loss >= st->best_val_loss);
    knob_free(st);
    knob_vision_free(&m);
    free_splits(&s);
}

/* Allocation failures: loading a checkpoint, building a training graph, saving a checkpoint and
 * loading the training state each fail cleanly (a status, one line, nothing half-made left
 * behind) at every allocation until they succeed. ASan's leak checker sees any leak. */
TEST(vision_allocation_failures_are_clean)
{
    knob_err err;
    char good[512], out[512];
    tmp_path(good, sizeof good, "oom-good.safetensors");
    tmp_path(out, sizeof out, "oom-out.safetensors");
    knob_vision m0;
    knob_vision_config c = cnn_config(8, 8, 3);
    CHECK_OK(knob_vision_init(&m0, &c, 5, &err));
    knob_train_config tc = small_train(1);
    knob_train_state *st = knob_calloc(1, sizeof *st);
    knob_train_state_init(st, 1);
    st->n_hist = st->epoch = 1;
    knob_optim o0;
    knob_optim_config oc = {.kind = KNOB_OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    CHECK_OK(knob_optim_init(&o0, &m0.P, &oc, &err));
    CHECK_OK(knob_checkpoint_save(good, &m0, &o0, &tc, st, &err));
    int done = 0;
    for (long n = 1; n < 5000 && !done && !test_failed_now; n++) {
        knob_vision m;
        knob_checkpoint_info info;
        knob_vision_net net = {0};
        knob_optim o = {0};
        memset(&err, 0, sizeof err);
        knob_alloc_fail_at(n);
        knob_status s = knob_vision_load(&m, &info, good, &err);
        if (s) {
            CHECK(m.P.n == 0 && m.P.data == NULL);
        } else {
            if (!(s = knob_vision_net_build(&net, &m, 4, 1, &err)))
                if (!(s = knob_optim_init(&o, &m.P, &oc, &err)))
                    if (!(s = knob_checkpoint_load_state(good, &o, st, &err)))
                        s = knob_checkpoint_save(out, &m, &o, &tc, st, &err);
            knob_optim_free(&o);
            knob_vision_net_free(&net);
            knob_vision_free(&m);
        }
        knob_alloc_fail_at(0);
        if (s == KNOB_OK)
            done = 1;
        else
            CHECK(err.msg[0] && !strchr(err.msg, '\n'));
    }
    CHECK(done);
    CHECK(files_equal(good, out));
    knob_optim_free(&o0);
    knob_free(st);
    knob_vision_free(&m0);
}
