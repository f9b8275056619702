/* test_checkpoint_compat.c: files written by knob before the one checkpoint (tests/data/
 * old_checkpoints, see its README) still load, and resume to the same bits. The fit models are
 * compared with a fresh run of the same defaults; the CNN checkpoint of epoch 2 is resumed on the
 * same generated IDX data and every tensor (parameters and moments) must equal what the old code
 * wrote when it resumed it. The GPT pair is checked end to end by tests/cli/test_checkpoint_compat.sh.
 * The checkpoint reader's own round trip and errors are here too. */
#include "test.h"

#include <stdio.h>

#define OLD "tests/data/old_checkpoints/"

/* every tensor of want must be in got with the same bytes */
static int tensors_equal(const char *got, const char *want, int *n_checked)
{
    knob_err err;
    knob_st a, b;
    *n_checked = 0;
    if (knob_st_open(&a, got, &err))
        return 0;
    if (knob_st_open(&b, want, &err)) {
        knob_st_close(&a);
        return 0;
    }
    int same = 1;
    for (int i = 0; same && i < b.n; i++) {
        const knob_st_entry *w = &b.e[i], *g = knob_st_find(&a, w->name);
        same = g && g->end - g->begin == w->end - w->begin &&
               memcmp(a.data + g->begin, b.data + w->begin, w->end - w->begin) == 0;
        if (!same)
            test_fail_at(__FILE__, __LINE__, "tensor '%s' differs (or is missing) in %s", w->name, got);
        (*n_checked)++;
    }
    knob_st_close(&a);
    knob_st_close(&b);
    return same;
}

TEST(old_fit_file_loads_and_predicts)
{
    knob_err err;
    knob_fit_result old[KNOB_FIT_N_MODELS], fresh;
    CHECK_OK(knob_fit_load(old, OLD "fit.safetensors", &err));
    if (test_failed_now)
        return;
    /* the same defaults, trained again: the same knobs, bit for bit (the math is unchanged) */
    knob_fit_config c;
    knob_fit_config_default(&c);
    /* volatile: gcc 12 -O2 drops some of these double -> float -> double round trips */
    volatile float noise = (float)c.noise, holdout = (float)c.holdout, floor_h = (float)c.floor_height;
    c.noise = noise;   /* as knob fit's float flags hand them over */
    c.holdout = holdout;
    c.floor_height = floor_h;
    knob_fit_data d;
    CHECK_OK(knob_fit_generate(&d, &c, &err));
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++) {
        CHECK_OK(knob_fit_train(&fresh, (knob_fit_kind)m, &d, &c, NULL, NULL, &err));
        CHECK(fresh.P.n_elems == old[m].P.n_elems &&
              memcmp(fresh.P.data, old[m].P.data, fresh.P.n_elems * sizeof(float)) == 0);
        CHECK(fresh.xm == old[m].xm && fresh.ys == old[m].ys);
        /* and the loaded model predicts: floor 25 (beyond the measurements) */
        double x = 25, y0, y1;
        CHECK_OK(knob_fit_predict(&old[m], &x, &y0, 1, &err));
        CHECK_OK(knob_fit_predict(&fresh, &x, &y1, 1, &err));
        CHECK(y0 == y1 && isfinite(y0));
        knob_fit_result_free(&fresh);
    }
    /* the line's knobs in physical units: t grows with the floor */
    CHECK(old[KNOB_FIT_LINE].n_knobs == 2 && old[KNOB_FIT_LINE].knobs[0] > 0);
    knob_fit_data_free(&d);
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
        knob_fit_result_free(&old[m]);
    CHECK_FAILS_WITH(knob_fit_load(old, OLD "cnn.safetensors", &err), KNOB_ERR_FORMAT, "not a knob fit file");
}

/* the 8x8 three-class IDX set of tests/cli/test_train.sh: left half, right half, top half bright */
static void write_idx(const char *dir, const char *name, int n, int labels)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    unsigned char hdr[16] = {0, 0, 8, (unsigned char)(labels ? 1 : 3), 0, 0, 0, (unsigned char)n, 0, 0, 0, 8, 0, 0, 0, 8};
    fwrite(hdr, 1, labels ? 8 : 16, f);
    for (int i = 0; i < n; i++) {
        if (labels) {
            fputc(i % 3, f);
            continue;
        }
        for (int r = 0; r < 8; r++)
            for (int col = 0; col < 8; col++) {
                int on = i % 3 == 0 ? col < 4 : i % 3 == 1 ? col >= 4 : r < 4;
                fputc(on ? 255 : 0, f);
            }
    }
    fclose(f);
}

TEST(old_cnn_checkpoint_loads_evaluates_and_resumes_exactly)
{
    knob_err err;
    char dir[512], spec[520], last[600], best[600];
    snprintf(dir, sizeof dir, "%s/compat-idx", test_tmpdir());
    CHECK_OK(knob_mkdirs(dir, &err));
    write_idx(dir, "train-images-idx3-ubyte", 60, 0);
    write_idx(dir, "train-labels-idx1-ubyte", 60, 1);
    write_idx(dir, "t10k-images-idx3-ubyte", 15, 0);
    write_idx(dir, "t10k-labels-idx1-ubyte", 15, 1);
    snprintf(spec, sizeof spec, "idx:%s", dir);
    snprintf(last, sizeof last, "%s/compat-cnn.safetensors", test_tmpdir());
    snprintf(best, sizeof best, "%s/compat-cnn-best.safetensors", test_tmpdir());

    knob_vision m;
    knob_checkpoint_info info;
    CHECK_OK(knob_vision_load(&m, &info, OLD "cnn.safetensors", &err));
    if (test_failed_now)
        return;
    CHECK(m.cfg.kind == KNOB_VISION_CNN && m.cfg.n_conv == 1 && m.cfg.conv[0] == 2 && m.cfg.hidden[0] == 4);
    CHECK(strcmp(info.dataset, "idx:/tmp/fx/d") == 0 && info.n_classes == 3 && strcmp(info.classes[2], "2") == 0);
    knob_train_config tc;
    CHECK_OK(knob_train_config_parse(&tc, info.train, &err));
    CHECK(tc.epochs == 3 && tc.batch == 8 && tc.n_val == 12 && tc.seed == 42 && tc.sched.lr == 0.01f);
    knob_splits s;
    CHECK_OK(knob_data_load(&s, spec, NULL, tc.n_val, tc.seed, &err));
    if (test_failed_now) {
        knob_vision_free(&m);
        return;
    }
    /* eval: every test image once, accuracy in [0, 1] and a finite loss */
    knob_vision_net n;
    knob_eval_result r;
    CHECK_OK(knob_vision_net_build(&n, &m, 15, 0, &err));
    CHECK_OK(knob_vision_evaluate(&n, &s.test, &r, NULL, &err));
    CHECK(r.n == 15 && r.accuracy >= 0 && r.accuracy <= 1 && isfinite(r.loss));
    knob_vision_net_free(&n);

    /* resume epoch 2 -> 3 on one thread, as the old code did */
    int threads = knob_threads_get();
    knob_threads_set(1);
    knob_train_state *st = knob_calloc(1, sizeof *st);
    tc.dataset = info.dataset;
    tc.class_names = "0|1|2";
    tc.last_path = last;
    tc.best_path = best;
    CHECK_OK(knob_vision_train(&m, &s, &tc, st, OLD "cnn.safetensors", NULL, NULL, &err));
    knob_threads_set(threads);
    CHECK(st->epoch == 3 && st->step == 18 && st->n_hist == 3);
    int n_checked = 0;
    CHECK(tensors_equal(last, OLD "cnn-resumed.safetensors", &n_checked));
    CHECK(n_checked == 18);   /* 6 parameters and their two moments */
    /* the new file is in the new encoding and resumes too (no epochs left: a usage error) */
    knob_st f;
    CHECK_OK(knob_st_open(&f, last, &err));
    CHECK(knob_st_meta(&f, "knob.train") && knob_st_meta(&f, "classifier.config") && !knob_st_meta(&f, "state"));
    knob_st_close(&f);
    CHECK_FAILS_WITH(knob_vision_train(&m, &s, &tc, st, last, NULL, NULL, &err), KNOB_ERR_USAGE, "--epochs");
    knob_free(st);
    knob_splits_free(&s);
    knob_vision_free(&m);
}

TEST(old_gpt_checkpoint_reads_through_the_one_reader)
{
    knob_err err;
    knob_gpt_train_config c;
    char *desc = NULL, **files;
    int n_files;
    uint64_t hash;
    CHECK_OK(knob_gpt_checkpoint_config(OLD "gpt.safetensors", &c, &desc, &err));
    CHECK(c.model.n_layer == 1 && c.model.n_head == 2 && c.model.n_embd == 8 && c.model.vocab_size == 30);
    CHECK(c.steps == 6 && c.warmup == 1 && c.batch == 2 && c.seq_len == 8 && c.seed == 42 && c.lr == 3e-3f);
    CHECK(desc && strncmp(desc, "char:", 5) == 0);
    CHECK_OK(knob_gpt_checkpoint_corpus(OLD "gpt.safetensors", &files, &n_files, &hash, &err));
    CHECK(n_files == 0 && files == NULL);   /* older files record no corpus */
    knob_free(desc);
    /* a classifier is not a GPT, and the other way round */
    CHECK_FAILS_WITH(knob_gpt_checkpoint_config(OLD "cnn.safetensors", &c, &desc, &err), KNOB_ERR_FORMAT,
                     "a knob 'classifier' checkpoint, not a gpt one");
    knob_vision m;
    knob_checkpoint_info info;
    CHECK_FAILS_WITH(knob_vision_load(&m, &info, OLD "gpt.safetensors", &err), KNOB_ERR_FORMAT,
                     "a knob 'gpt' checkpoint, not a classifier one");
}

TEST(checkpoint_round_trip_and_errors)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    CHECK(knob_params_add(&P, "w", 2, (int[]){2, 3}, &err) && knob_params_add(&P, "b", 1, (int[]){3}, &err));
    CHECK_OK(knob_params_alloc(&P, &err));
    for (size_t i = 0; i < P.n_elems; i++)
        P.data[i] = (float)i * 0.5f - 1;
    knob_optim o;
    knob_optim_config oc = {.kind = KNOB_OPTIM_ADAM, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    CHECK_OK(knob_optim_init(&o, &P, &oc, &err));
    for (size_t i = 0; i < P.n_elems; i++) {
        o.m[i] = (float)i;
        o.v[i] = (float)(i * i);
    }
    o.step = 7;
    knob_rng r1, r2, got;
    knob_rng_seed(&r1, 1);
    knob_rng_seed(&r2, UINT64_MAX);
    knob_json *train = knob_ckpt_kv_to_json("epochs=3 lr=0.00999999978 optim=adamw seed=18446744073709551615");
    CHECK(train && knob_json_is_number(knob_json_get(train, "epochs")) && knob_json_is_string(knob_json_get(train, "seed")));
    char *text = knob_ckpt_json_to_kv(train);
    CHECK(text && strcmp(text, "epochs=3 lr=0.0099999997799999994 optim=adamw seed=18446744073709551615") == 0);
    knob_free(text);
    char path[512];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", test_tmpdir());
    knob_ckpt c = {.family = "toy", .config = "{\"width\":3}", .P = &P, .opt = &o, .step = 11, .n_rng = 2,
                   .rng = {{"one", &r1}, {"two", &r2}}, .train = train};
    CHECK_OK(knob_ckpt_save(path, &c, &err));
    knob_ckpt_file f;
    CHECK_OK(knob_ckpt_open(&f, path, "toy", &err));
    if (!test_failed_now) {
        float back[9];
        CHECK(f.step == 11 && f.optim_step == 7 && !f.legacy && strcmp(f.config, "{\"width\":3}") == 0);
        CHECK_OK(knob_ckpt_read(&f, &P, "optim.v.", back, &err));
        CHECK(memcmp(back, o.v, sizeof back) == 0);
        CHECK_OK(knob_ckpt_read_rng(&f, "two", &got, &err));
        CHECK(memcmp(&got, &r2, sizeof got) == 0);
        CHECK_FAILS_WITH(knob_ckpt_read_rng(&f, "three", &got, &err), KNOB_ERR_FORMAT, "RNG state 'three' missing");
        long epochs = 0;
        CHECK_OK(knob_json_get_long(f.train, "epochs", 0, 10, 1, &epochs, "t", &err));
        CHECK(epochs == 3 && f.state == NULL);
        knob_ckpt_close(&f);
    }
    CHECK_FAILS_WITH(knob_ckpt_open(&f, path, "gpt", &err), KNOB_ERR_FORMAT, "a knob 'toy' checkpoint, not a gpt one");
    /* a parameter name too long for "optim.m.<name>" is refused (never cut, where two could meet) */
    {
        char saved[KNOB_NAME_MAX];
        snprintf(saved, sizeof saved, "%s", P.t[0]->name);
        memset(P.t[0]->name, 'x', 120);
        P.t[0]->name[120] = '\0';
        CHECK_FAILS_WITH(knob_ckpt_save(path, &c, &err), KNOB_ERR_USAGE, "too long for its optimizer moments");
        memset(P.t[0]->name, 'y', 119);
        P.t[0]->name[119] = '\0';
        CHECK_OK(knob_ckpt_save(path, &c, &err));   /* 119 characters fit whole */
        knob_st st;
        if (knob_st_open(&st, path, &err) == KNOB_OK) {
            char want[KNOB_NAME_MAX];
            snprintf(want, sizeof want, "optim.v.%.119s", P.t[0]->name);
            CHECK(knob_st_find(&st, want) != NULL);
            knob_st_close(&st);
        } else {
            CHECK(!"the 119-character checkpoint does not open");
        }
        snprintf(P.t[0]->name, sizeof P.t[0]->name, "%s", saved);
    }
    /* a plain parameter file is no checkpoint */
    CHECK_OK(knob_params_save(&P, path, NULL, 0, &err));
    CHECK_FAILS_WITH(knob_ckpt_open(&f, path, "toy", &err), KNOB_ERR_FORMAT, "no 'knob.model' metadata");
    knob_json_free(train);
    knob_optim_free(&o);
    knob_params_free(&P);
}

/* Old files through the conversion with the Nth allocation failing: a clean error each time, until
 * it succeeds (ASan checks nothing leaks on the way). */
TEST(old_checkpoints_convert_under_allocation_failures)
{
    knob_err err;
    int done = 0;
    for (int n = 1; n < 100000 && !done; n += n < 400 ? 1 : 7) {   /* every one, then a sample */
        knob_vision m;
        knob_checkpoint_info info;
        knob_optim o = {0};
        knob_train_state *st = knob_calloc(1, sizeof *st);
        knob_gpt_train_config c;
        char *desc = NULL;
        memset(&err, 0, sizeof err);
        knob_alloc_fail_at(n);
        knob_status s = st ? KNOB_OK : KNOB_ERR_NOMEM;
        if (!s && !(s = knob_vision_load(&m, &info, OLD "cnn.safetensors", &err))) {
            knob_optim_config oc = {.kind = KNOB_OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
            if (!(s = knob_optim_init(&o, &m.P, &oc, &err)))
                s = knob_checkpoint_load_state(OLD "cnn.safetensors", &o, st, &err);
            knob_optim_free(&o);
            knob_vision_free(&m);
        }
        if (!s)
            s = knob_gpt_checkpoint_config(OLD "gpt.safetensors", &c, &desc, &err);
        knob_alloc_fail_at(0);
        knob_free(desc);
        knob_free(st);
        if (s == KNOB_OK)
            done = 1;
        else
            CHECK(err.msg[0] == 0 || !strchr(err.msg, '\n'));
    }
    CHECK(done);
}
