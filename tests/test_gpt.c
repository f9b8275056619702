/* test_gpt.c: the GPT model, its KV-cache inference, sampling, training and checkpoints.
 *
 * - a whole-model gradient check: central differences through the training graph on a tiny GPT
 *   (2 layers, C 8, 2 heads, T 4, V 11), a sample of elements of every parameter tensor;
 * - KV-cache inference against the training graph (logits to 1e-5, greedy tokens equal);
 * - GPT-2 init statistics (c_proj std 0.02 / sqrt(2 L), others 0.02, biases 0, LN gains 1);
 * - sampling by hand: temperature, top-k 1 = greedy, top-p's smallest set, greedy ties;
 * - chat trimming keeps the newest turn;
 * - training: loss falls on a learnable sequence, exact resume (same bytes as one run), NaN stops
 *   with a one-line error naming the step;
 * - corpus file selection and the token cache (key mismatch, damage). */
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

static knob_gpt_config tiny_config(void)
{
    return (knob_gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 8, .block_size = 4, .vocab_size = 11,
                             .dropout = 0.0f, .bias = 1};
}

/* Larger-than-GPT-2 random values, so gradients are well above float rounding. */
static void randomize(knob_params *P, uint64_t seed)
{
    knob_rng r;
    knob_rng_seed(&r, seed);
    for (int i = 0; i < P->n; i++) {
        knob_tensor *t = P->t[i];
        int ln = strstr(t->name, "ln_") != NULL && strstr(t->name, ".weight") != NULL;
        for (size_t j = 0; j < t->n_elems; j++)
            t->data[j] = ln ? 1.0f + 0.2f * knob_rng_normal(&r) : 0.4f * knob_rng_normal(&r);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Config */

TEST(gpt_config_json_round_trip)
{
    knob_err err;
    knob_gpt_config c = tiny_config(), d;
    c.dropout = 0.25f;
    c.bias = 0;
    char *s = knob_gpt_config_json(&c);
    CHECK(s != NULL);
    CHECK_OK(knob_gpt_config_parse(&d, s, &err));
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    knob_free(s);
    CHECK_FAILS_WITH(knob_gpt_config_parse(&d, "{\"n_layer\":2}", &err), KNOB_ERR_FORMAT, "missing \"n_head\"");
    c = tiny_config();
    c.n_head = 3;
    CHECK_FAILS_WITH(knob_gpt_config_check(&c, &err), KNOB_ERR_USAGE, "not a multiple of n_head");
}

TEST(gpt_params_names_and_count)
{
    knob_err err;
    knob_params P;
    for (int bias = 0; bias <= 1; bias++) {
        knob_gpt_config c = tiny_config();
        c.bias = bias;
        CHECK_OK(knob_gpt_params(&P, &c, &err));
        CHECK(P.n_elems == knob_gpt_n_params(&c));
        CHECK(P.n == 2 + 2 * (bias ? 12 : 6) + (bias ? 2 : 1));
        CHECK(strcmp(P.t[0]->name, "wte.weight") == 0 && strcmp(P.t[1]->name, "wpe.weight") == 0);
        CHECK(strcmp(P.t[2]->name, "h.0.ln_1.weight") == 0);
        const knob_tensor *a = knob_params_find(&P, "h.1.attn.c_attn.weight");
        CHECK(a && a->shape[0] == 24 && a->shape[1] == 8);
        const knob_tensor *f = knob_params_find(&P, "h.1.mlp.c_proj.weight");
        CHECK(f && f->shape[0] == 8 && f->shape[1] == 32);
        CHECK((knob_params_find(&P, "ln_f.bias") != NULL) == bias);
        /* hand count for bias 1: V C + T C + L (12 C^2 + 13 C) + 2 C = 88 + 32 + 2 (768 + 104) + 16 */
        if (bias)
            CHECK(P.n_elems == 88 + 32 + 2 * (768 + 104) + 16);
        knob_params_free(&P);
    }
}

TEST(gpt_init_statistics)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = {.n_layer = 8, .n_head = 4, .n_embd = 128, .block_size = 64, .vocab_size = 300, .bias = 1};
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 7, &err));
    double want_proj = 0.02 / sqrt(16.0);
    for (int i = 0; i < P.n; i++) {
        const knob_tensor *t = P.t[i];
        double s = 0, ss = 0;
        for (size_t j = 0; j < t->n_elems; j++) {
            s += t->data[j];
            ss += (double)t->data[j] * t->data[j];
        }
        double mean = s / (double)t->n_elems, sd = sqrt(ss / (double)t->n_elems - mean * mean);
        if (t->n_dims == 2) {
            double want = strstr(t->name, "c_proj") ? want_proj : 0.02;
            CHECK_NEAR(sd, want, 0.08, 0);   /* 16k+ samples: sd within a few percent */
            CHECK(fabs(mean) < 0.2 * want);
        } else if (strstr(t->name, ".bias")) {
            CHECK(ss == 0);
        } else {
            CHECK(mean == 1.0 && sd == 0.0);
        }
    }
    /* same seed, same bits; another seed differs */
    knob_params Q;
    CHECK_OK(knob_gpt_params(&Q, &c, &err));
    CHECK_OK(knob_gpt_init(&Q, &c, 7, &err));
    CHECK(memcmp(P.data, Q.data, P.n_elems * sizeof(float)) == 0);
    CHECK_OK(knob_gpt_init(&Q, &c, 8, &err));
    CHECK(memcmp(P.data, Q.data, P.n_elems * sizeof(float)) != 0);
    knob_params_free(&P);
    knob_params_free(&Q);
}

/* ------------------------------------------------------------------------------------------------
 * Whole-model gradient check */

static double graph_loss(knob_gpt_graph *m)
{
    knob_err err;
    if (knob_graph_forward(m->g, &err) != KNOB_OK)
        return NAN;
    return (double)knob_node_data(m->loss)[0];
}

static void gradcheck_model(int bias)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = tiny_config();
    c.bias = bias;
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    randomize(&P, 11 + (uint64_t)bias);
    knob_gpt_graph m;
    CHECK_OK(knob_gpt_graph_build(&m, &P, &c, 2, 4, &err));
    if (!m.g) {
        knob_params_free(&P);
        return;
    }
    static const int32_t idx[8] = {1, 5, 10, 5, 0, 3, 3, 7}, tgt[8] = {5, 10, 5, 2, 3, 3, 7, 9};
    memcpy(knob_node_data_i32(m.idx), idx, sizeof idx);
    memcpy(knob_node_data_i32(m.targets), tgt, sizeof tgt);
    knob_params_zero_grad(&P);
    CHECK(isfinite(graph_loss(&m)));
    knob_graph_backward(m.g, m.loss);
    knob_rng r;
    knob_rng_seed(&r, 3);
    const float h = 1e-2f;
    int bad = 0, checked = 0;
    for (int i = 0; i < P.n; i++) {
        knob_tensor *t = P.t[i];
        for (int k = 0; k < 5; k++) {
            size_t j = knob_rng_below(&r, (uint32_t)t->n_elems);
            float x0 = t->data[j];
            t->data[j] = x0 + h;
            double fp = graph_loss(&m);
            t->data[j] = x0 - h;
            double fm = graph_loss(&m);
            t->data[j] = x0;
            double num = (fp - fm) / (2.0 * (double)h), ana = t->grad[j];
            checked++;
            if (!(fabs(num - ana) <= 1e-3 + 2e-2 * fabs(num))) {
                if (bad++ < 5)
                    test_fail_at(__FILE__, __LINE__, "%s[%zu]: numeric %.6g, backward %.6g", t->name, j, num, ana);
            }
        }
    }
    CHECK(bad == 0);
    CHECK(checked == 5 * P.n);
    knob_gpt_graph_free(&m);
    knob_params_free(&P);
}

TEST(gpt_gradcheck_whole_model) { gradcheck_model(1); }
TEST(gpt_gradcheck_whole_model_no_bias) { gradcheck_model(0); }

/* ------------------------------------------------------------------------------------------------
 * KV cache against the training graph */

static void run_graph(knob_gpt_graph *m, const int32_t *ctx, int n)
{
    int32_t *idx = knob_node_data_i32(m->idx), *tgt = knob_node_data_i32(m->targets);
    for (int t = 0; t < m->T; t++) {
        idx[t] = t < n ? ctx[t] : 0;   /* positions after n cannot affect earlier logits (causal) */
        tgt[t] = 0;
    }
    knob_err err;
    CHECK_OK(knob_graph_forward(m->g, &err));
}

static int argmax_row(const float *x, int V)
{
    int b = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

TEST(gpt_kv_cache_matches_graph)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = {.n_layer = 2, .n_head = 4, .n_embd = 16, .block_size = 9, .vocab_size = 13, .bias = 1};
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    randomize(&P, 5);
    knob_gpt_graph m;
    CHECK_OK(knob_gpt_graph_build(&m, &P, &c, 1, c.block_size, &err));
    knob_gpt_infer *inf;
    CHECK_OK(knob_gpt_infer_new(&inf, &P, &c, &err));
    if (!m.g || !inf)
        return;
    /* logits of every position of a full context */
    const int32_t ctx[9] = {3, 1, 4, 1, 5, 9, 2, 6, 5};
    run_graph(&m, ctx, 9);
    const float *G = knob_node_data(m.logits);   // (1, 9, 13)
    double worst = 0;
    for (int t = 0; t < 9; t++) {
        const float *L;
        CHECK_OK(knob_gpt_infer_step(inf, ctx[t], &L, &err));
        for (int v = 0; v < c.vocab_size; v++)
            worst = fmax(worst, fabs((double)L[v] - (double)G[t * c.vocab_size + v]));
    }
    CHECK(worst < 1e-5);
    CHECK(knob_gpt_infer_len(inf) == 9);
    CHECK_FAILS_WITH(knob_gpt_infer_step(inf, 1, NULL, &err), KNOB_ERR_USAGE, "context is full");
    /* greedy decoding: cache vs recomputing the whole context with the graph */
    knob_gpt_infer_reset(inf);
    int32_t a[9] = {7, 2}, b[9] = {7, 2};
    const float *L = NULL;
    for (int t = 0; t < 2; t++)
        CHECK_OK(knob_gpt_infer_step(inf, a[t], &L, &err));
    for (int n = 2; n < 9; n++) {
        a[n] = argmax_row(L, c.vocab_size);
        if (n < 8)
            CHECK_OK(knob_gpt_infer_step(inf, a[n], &L, &err));
        run_graph(&m, b, n);
        b[n] = argmax_row(knob_node_data(m.logits) + (size_t)(n - 1) * c.vocab_size, c.vocab_size);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* dropping the first tokens equals feeding the rest from scratch, one token at a time */
    const float *L1, *L2;
    CHECK_OK(knob_gpt_infer_drop(inf, 3, &L1, &err));
    CHECK(knob_gpt_infer_len(inf) == 5);
    float keep[13];
    memcpy(keep, L1, sizeof keep);
    knob_gpt_infer_reset(inf);
    for (int t = 3; t < 8; t++)
        CHECK_OK(knob_gpt_infer_step(inf, a[t], &L2, &err));
    /* drop recomputes the kept tokens in one batched pass: equal to float rounding */
    double diff = 0;
    for (int v = 0; v < 13; v++)
        diff = fmax(diff, fabs((double)keep[v] - (double)L2[v]));
    CHECK(diff < 1e-6);
    CHECK(knob_gpt_infer_hidden(inf) != NULL);
    CHECK_FAILS_WITH(knob_gpt_infer_step(inf, 13, NULL, &err), KNOB_ERR_USAGE, "out of range");
    knob_gpt_infer_free(inf);
    knob_gpt_graph_free(&m);
    knob_params_free(&P);
}

TEST(gpt_attention_capture_rows_sum_to_one)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = tiny_config();
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    randomize(&P, 9);
    knob_gpt_infer *inf;
    CHECK_OK(knob_gpt_infer_new(&inf, &P, &c, &err));
    float buf[2 * 2 * 4 * 4];
    knob_gpt_infer_capture_attention(inf, buf);
    for (int t = 0; t < 4; t++)
        CHECK_OK(knob_gpt_infer_step(inf, t + 1, NULL, &err));
    for (int lh = 0; lh < 4; lh++)
        for (int t = 0; t < 4; t++) {
            double s = 0;
            for (int t2 = 0; t2 < 4; t2++) {
                float a = buf[(lh * 4 + t) * 4 + t2];
                s += a;
                if (t2 > t)
                    CHECK(a == 0.0f);   /* causal */
            }
            CHECK_NEAR(s, 1.0, 1e-5, 0);
        }
    CHECK(buf[0] == 1.0f);   /* the first token attends only to itself */
    knob_gpt_infer_free(inf);
    knob_params_free(&P);
}

TEST(gpt_infer_rejects_wrong_params)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = tiny_config();
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    knob_gpt_infer *inf = NULL;
    c.n_embd = 16;
    CHECK_FAILS_WITH(knob_gpt_infer_new(&inf, &P, &c, &err), KNOB_ERR_SHAPE, "wte.weight");
    CHECK(inf == NULL);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Sampling */

TEST(gpt_sampling_by_hand)
{
    enum { V = 5 };
    float logits[V], probs[V];
    int idx[V];
    const double p[V] = {0.5, 0.2, 0.15, 0.1, 0.05};
    for (int i = 0; i < V; i++)
        logits[i] = (float)log(p[i]);
    knob_rng r;
    knob_rng_seed(&r, 1);
    /* temperature: softmax(z / T) of z = [0, ln 2] is [1/3, 2/3] at T = 1 and [1/5, 4/5] at T = 0.5 */
    float z[2] = {0.0f, (float)log(2.0)}, q[2];
    knob_softmax_temp(z, 2, 1.0f, q);
    CHECK_NEAR(q[0], 1.0 / 3, 1e-6, 0);
    knob_softmax_temp(z, 2, 0.5f, q);
    CHECK_NEAR(q[0], 0.2, 1e-6, 0);
    CHECK_NEAR(q[1], 0.8, 1e-6, 0);
    /* top-p 0.6: 0.5 is not enough, 0.5 + 0.2 is: keep {0, 1}, renormalised to 5/7, 2/7 */
    knob_sampler s = {.temperature = 1.0f, .top_k = 0, .top_p = 0.6f};
    CHECK(knob_sample_probs(logits, V, &s, probs, idx) == 2);
    CHECK_NEAR(probs[0], 5.0 / 7, 1e-5, 0);
    CHECK_NEAR(probs[1], 2.0 / 7, 1e-5, 0);
    CHECK(probs[2] == 0 && probs[3] == 0 && probs[4] == 0);
    s.top_p = 0.8f;   /* 0.85 reaches it: three kept */
    CHECK(knob_sample_probs(logits, V, &s, probs, idx) == 3);
    CHECK_NEAR(probs[2], 0.15 / 0.85, 1e-5, 0);
    /* top-k 2 */
    s = (knob_sampler){.temperature = 1.0f, .top_k = 2, .top_p = 1.0f};
    CHECK(knob_sample_probs(logits, V, &s, probs, idx) == 2);
    CHECK_NEAR(probs[1], 2.0 / 7, 1e-5, 0);
    /* top-k 1 is greedy, whatever the draw */
    s.top_k = 1;
    for (int i = 0; i < 50; i++)
        CHECK(knob_sample(logits, V, &s, &r, probs, idx) == 0);
    /* temperature 0 is greedy; ties go to the lowest id */
    s = (knob_sampler){.temperature = 0.0f};
    float tie[4] = {1.0f, 3.0f, 3.0f, -1.0f};
    CHECK(knob_sample(tie, 4, &s, &r, probs, idx) == 1);
    /* plain sampling follows the distribution: 20000 draws, each frequency within 0.015 */
    s = (knob_sampler){.temperature = 1.0f};
    int count[V] = {0};
    for (int i = 0; i < 20000; i++)
        count[knob_sample(logits, V, &s, &r, probs, idx)]++;
    for (int i = 0; i < V; i++)
        CHECK_NEAR(count[i] / 20000.0, p[i], 0, 0.015);
}

TEST(gpt_chat_trim_keeps_newest_turn)
{
    int len[3] = {5, 3, 4}, skip;
    CHECK(knob_chat_trim(len, 3, 100, &skip) == 0 && skip == 0);
    CHECK(knob_chat_trim(len, 3, 12, &skip) == 0 && skip == 0);
    CHECK(knob_chat_trim(len, 3, 11, &skip) == 1 && skip == 0);
    CHECK(knob_chat_trim(len, 3, 4, &skip) == 2 && skip == 0);
    CHECK(knob_chat_trim(len, 3, 3, &skip) == 2 && skip == 1);   /* the newest alone is too long */
    CHECK(knob_chat_trim(len, 0, 3, &skip) == 0 && skip == 0);
}

/* ------------------------------------------------------------------------------------------------
 * Training */

static knob_gpt_train_config tiny_train(void)
{
    knob_gpt_train_config c;
    knob_gpt_train_config_default(&c);
    c.model = (knob_gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = 8, .vocab_size = 7, .bias = 1};
    c.batch = 4;
    c.seq_len = 8;
    c.steps = 60;
    c.warmup = 5;
    c.lr = 1e-2f;
    c.lr_min = 1e-3f;
    return c;
}

/* a learnable sequence: 0 1 2 3 4 5 6 0 1 2 ... */
static uint16_t *cycle_tokens(size_t n, int V)
{
    uint16_t *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++)
        t[i] = (uint16_t)(i % (size_t)V);
    return t;
}

TEST(gpt_training_learns_a_cycle)
{
    knob_err err;
    knob_gpt_train_config c = tiny_train();
    c.batch = 2;   /* the sequence is deterministic: two windows a step are plenty */
    uint16_t *tok = cycle_tokens(400, 7);
    knob_gpt_trainer *tr;
    CHECK_OK(knob_gpt_trainer_new(&tr, &c, tok, 300, tok + 300, 100, &err));
    if (!tr) {
        free(tok);
        return;
    }
    float v0, v1;
    CHECK_OK(knob_gpt_trainer_eval(tr, 2, &v0, &err));
    CHECK_NEAR(v0, log(7.0), 0.1, 0);   /* small init: near-uniform predictions */
    knob_gpt_step_info info = {0};
    for (int i = 0; i < 60; i++)
        CHECK_OK(knob_gpt_trainer_step(tr, &info, &err));
    CHECK(info.step == 60);
    CHECK_OK(knob_gpt_trainer_eval(tr, 2, &v1, &err));
    CHECK(v1 < 0.1f);   /* the next token is a function of the current one */
    knob_gpt_trainer_free(tr);
    free(tok);
}

static int files_equal(const char *a, const char *b)
{
    knob_err err;
    unsigned char *x, *y;
    size_t nx, ny;
    if (knob_read_file(a, &x, &nx, &err) || knob_read_file(b, &y, &ny, &err))
        return 0;
    int eq = nx == ny && memcmp(x, y, nx) == 0;
    knob_free(x);
    knob_free(y);
    return eq;
}

TEST(gpt_resume_is_exact)
{
    knob_err err;
    knob_gpt_train_config c = tiny_train();
    c.steps = 8;
    c.accum = 2;
    c.model.dropout = 0.1f;   /* the dropout generator's state must be restored too */
    uint16_t *tok = cycle_tokens(300, 7);
    for (size_t i = 0; i < 300; i += 7)
        tok[i] = (uint16_t)((i / 7) % 7);   /* some variety */
    char full[512], half[512], again[512];
    snprintf(full, sizeof full, "%s/gpt_full.safetensors", test_tmpdir());
    snprintf(half, sizeof half, "%s/gpt_half.safetensors", test_tmpdir());
    snprintf(again, sizeof again, "%s/gpt_again.safetensors", test_tmpdir());
    knob_gpt_trainer *a = NULL, *b = NULL;
    CHECK_OK(knob_gpt_trainer_new(&a, &c, tok, 250, tok + 250, 50, &err));
    for (int i = 0; a && i < 8; i++)
        CHECK_OK(knob_gpt_trainer_step(a, NULL, &err));
    if (a)
        CHECK_OK(knob_gpt_trainer_save(a, full, "byte", &err));
    /* 3 steps, save, a new trainer from the file's config, resume, 5 more */
    CHECK_OK(knob_gpt_trainer_new(&b, &c, tok, 250, tok + 250, 50, &err));
    for (int i = 0; b && i < 3; i++)
        CHECK_OK(knob_gpt_trainer_step(b, NULL, &err));
    if (b)
        CHECK_OK(knob_gpt_trainer_save(b, half, "byte", &err));
    knob_gpt_trainer_free(b);
    knob_gpt_train_config c2;
    char *desc = NULL;
    CHECK_OK(knob_gpt_checkpoint_config(half, &c2, &desc, &err));
    CHECK(desc && strcmp(desc, "byte") == 0);
    CHECK(c2.steps == 8 && c2.accum == 2 && c2.model.dropout == 0.1f && c2.lr == c.lr && c2.seed == c.seed);
    b = NULL;
    CHECK_OK(knob_gpt_trainer_new(&b, &c2, tok, 250, tok + 250, 50, &err));
    if (b)
        CHECK_OK(knob_gpt_trainer_resume(b, half, &err));
    CHECK(b && knob_gpt_trainer_step_count(b) == 3);
    for (int i = 0; b && i < 5; i++)
        CHECK_OK(knob_gpt_trainer_step(b, NULL, &err));
    if (a && b) {
        CHECK(memcmp(knob_gpt_trainer_params(a)->data, knob_gpt_trainer_params(b)->data,
                     knob_gpt_trainer_params(a)->n_elems * sizeof(float)) == 0);
        CHECK_OK(knob_gpt_trainer_save(b, again, "byte", &err));
        CHECK(files_equal(full, again));
    }
    /* the checkpoint opens as a plain parameter file too */
    knob_params P;
    CHECK_OK(knob_gpt_params(&P, &c.model, &err));
    CHECK_OK(knob_params_load(&P, full, &err));
    if (a)
        CHECK(memcmp(P.data, knob_gpt_trainer_params(a)->data, P.n_elems * sizeof(float)) == 0);
    knob_params_free(&P);
    knob_free(desc);
    knob_gpt_trainer_free(a);
    knob_gpt_trainer_free(b);
    free(tok);
}

/* knob_gpt_trainer_run writes its checkpoints in the background (src/train/checkpoint.c's
 * writer): the last one has the bytes of knob_gpt_trainer_save after the same steps, written
 * inline; a checkpoint that cannot be written stops the run at the next one, with the message the
 * inline save gives */
TEST(gpt_run_checkpoints_in_the_background_as_inline)
{
    knob_err err, want;
    knob_gpt_train_config c = tiny_train();
    c.steps = 7;
    c.model.dropout = 0.1f;
    uint16_t *tok = cycle_tokens(300, 7);
    char bg[512], inl[512], bad[512];
    snprintf(bg, sizeof bg, "%s/gpt_bg.safetensors", test_tmpdir());
    snprintf(inl, sizeof inl, "%s/gpt_inline.safetensors", test_tmpdir());
    snprintf(bad, sizeof bad, "%s/no_such_dir/gpt.safetensors", test_tmpdir());
    knob_gpt_trainer *a = NULL, *b = NULL;
    knob_gpt_run_result res;
    knob_gpt_run run = {.eval_every = 3, .eval_batches = 1, .ckpt_every = 2, .ckpt_path = bg, .tok_desc = "byte"};
    CHECK_OK(knob_gpt_trainer_new(&a, &c, tok, 250, tok + 250, 50, &err));
    if (a)
        CHECK_OK(knob_gpt_trainer_run(a, &run, NULL, NULL, &res, &err));
    CHECK_OK(knob_gpt_trainer_new(&b, &c, tok, 250, tok + 250, 50, &err));
    for (int i = 0; b && i < 7; i++)
        CHECK_OK(knob_gpt_trainer_step(b, NULL, &err));
    if (b) {
        CHECK_OK(knob_gpt_trainer_save(b, inl, "byte", &err));
        CHECK(files_equal(bg, inl));
        CHECK(knob_gpt_trainer_save(b, bad, "byte", &want) == KNOB_ERR_IO);
    }
    knob_gpt_trainer_free(a);
    a = NULL;
    run.ckpt_path = bad;
    CHECK_OK(knob_gpt_trainer_new(&a, &c, tok, 250, tok + 250, 50, &err));
    if (a) {
        memset(&err, 0, sizeof err);
        CHECK(knob_gpt_trainer_run(a, &run, NULL, NULL, &res, &err) == KNOB_ERR_IO);
        CHECK(strcmp(err.msg, want.msg) == 0);
        CHECK(knob_gpt_trainer_step_count(a) == 4);   /* step 2's write failed; step 4's save said so */
    }
    knob_gpt_trainer_free(a);
    knob_gpt_trainer_free(b);
    free(tok);
}

TEST(gpt_nan_loss_names_the_step)
{
    knob_err err;
    knob_gpt_train_config c = tiny_train();
    uint16_t *tok = cycle_tokens(100, 7);
    knob_gpt_trainer *tr;
    CHECK_OK(knob_gpt_trainer_new(&tr, &c, tok, 100, NULL, 0, &err));
    if (tr) {
        CHECK_OK(knob_gpt_trainer_step(tr, NULL, &err));
        knob_params *P = knob_gpt_trainer_params(tr);
        knob_params_find(P, "ln_f.weight")->data[0] = NAN;
        CHECK_FAILS_WITH(knob_gpt_trainer_step(tr, NULL, &err), KNOB_ERR_NUMERIC, "step 2: loss is nan (last finite");
    }
    knob_gpt_trainer_free(tr);
    /* tokens outside the vocabulary, too little text */
    tok[5] = 9;
    CHECK_FAILS_WITH(knob_gpt_trainer_new(&tr, &c, tok, 100, NULL, 0, &err), KNOB_ERR_FORMAT, "token 9 at 5");
    CHECK_FAILS_WITH(knob_gpt_trainer_new(&tr, &c, tok, 8, NULL, 0, &err), KNOB_ERR_USAGE, "need at least 9");
    free(tok);
}

/* ------------------------------------------------------------------------------------------------
 * Corpus and token cache */

static void write_text(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(s, 1, n, f);
        fclose(f);
    }
}

TEST(gpt_corpus_files_and_token_cache)
{
    knob_err err;
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/corpus", test_tmpdir());
    CHECK_OK(knob_mkdirs(dir, &err));
    static const char *names[] = {"b", "a", "a.dat", "a.u8", ".hidden", "bin"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        write_text(p, i == 5 ? "x\0y" : "hi", i == 5 ? 3 : 2);
    }
    char **files;
    int n;
    const char *paths[1] = {dir};
    CHECK_OK(knob_corpus_files(paths, 1, &files, &n, &err));
    CHECK(n == 2 && strstr(files[0], "/a") && strstr(files[1], "/b"));
    char *text;
    size_t len;
    CHECK_OK(knob_corpus_read(files, n, &text, &len, &err));
    CHECK(len == 6 && strcmp(text, "hi\nhi\n") == 0);
    knob_free(text);
    uint64_t key = knob_corpus_key(files, n, "byte");
    CHECK(key != knob_corpus_key(files, n, "char:\"hi\""));
    snprintf(p, sizeof p, "%s/tokens.bin", test_tmpdir());
    const uint16_t ids[5] = {1, 2, 3, 255, 0};
    CHECK_OK(knob_tokens_write(p, key, 256, ids, 5, &err));
    uint16_t *got;
    size_t m;
    int match;
    CHECK_OK(knob_tokens_read(p, key, 256, &got, &m, &match, &err));
    CHECK(match && m == 5 && got && memcmp(got, ids, sizeof ids) == 0);
    knob_free(got);
    CHECK_OK(knob_tokens_read(p, key + 1, 256, &got, &m, &match, &err));
    CHECK(!match && !got);
    CHECK(truncate(p, 40) == 0);
    CHECK_FAILS_WITH(knob_tokens_read(p, key, 256, &got, &m, &match, &err), KNOB_ERR_FORMAT, "header says 5 tokens");
    knob_corpus_files_free(files, n);
    snprintf(p, sizeof p, "%s/empty", test_tmpdir());
    CHECK_OK(knob_mkdirs(p, &err));
    paths[0] = p;
    CHECK_FAILS_WITH(knob_corpus_files(paths, 1, &files, &n, &err), KNOB_ERR_FORMAT, "no text files");
}

/* ------------------------------------------------------------------------------------------------
 * Attention: the per-head matrix-product kernels against the plain loops */

TEST(gpt_attention_gemm_matches_loops)
{
    enum { B = 2, T = 37, C = 24, NH = 3 };   /* T crosses the 32-row blocks; HS 8 */
    static float qkv[B * T * 3 * C], dout[B * T * C], out[2][B * T * C], att[2][B * NH * T * T];
    static float dqkv[2][B * T * 3 * C], scratch[B * NH * T];
    knob_rng r;
    knob_rng_seed(&r, 21);
    for (size_t i = 0; i < sizeof qkv / sizeof *qkv; i++)
        qkv[i] = knob_rng_normal(&r);
    for (size_t i = 0; i < sizeof dout / sizeof *dout; i++)
        dout[i] = knob_rng_normal(&r);
    for (int k = 0; k < 2; k++) {
        knob_attention_force_loops(k);
        knob_attention_forward(out[k], att[k], qkv, B, T, C, NH);
        for (size_t i = 0; i < sizeof dqkv[k] / sizeof(float); i++)
            dqkv[k][i] = 0.5f;   /* backward accumulates */
        knob_attention_backward(dqkv[k], scratch, dout, qkv, att[k], B, T, C, NH);
    }
    knob_attention_force_loops(0);
    double wo = 0, wa = 0, wd = 0;
    for (size_t i = 0; i < sizeof out[0] / sizeof(float); i++)
        wo = fmax(wo, fabs((double)out[0][i] - out[1][i]));
    for (size_t i = 0; i < sizeof att[0] / sizeof(float); i++)
        wa = fmax(wa, fabs((double)att[0][i] - att[1][i]));
    for (size_t i = 0; i < sizeof dqkv[0] / sizeof(float); i++)
        wd = fmax(wd, fabs((double)dqkv[0][i] - dqkv[1][i]));
    CHECK(wo < 1e-5);
    CHECK(wa < 1e-6);
    CHECK(wd < 1e-4);
    CHECK(att[0][1] == 0.0f && att[0][0] == 1.0f);   /* row 0 sees only itself; causal zeros */
}

/* ------------------------------------------------------------------------------------------------
 * Allocation failures: every allocation of building, inferring, training and saving fails once in
 * turn; each must come back as a status with a message (ASan checks that nothing leaks). And a
 * training step allocates nothing. */

static knob_status build_all(const knob_gpt_train_config *c, const uint16_t *tok, knob_err *err)
{
    knob_gpt_trainer *tr = NULL;
    knob_gpt_infer *inf = NULL;
    knob_status s = knob_gpt_trainer_new(&tr, c, tok, 200, tok + 200, 60, err);
    if (!s)
        s = knob_gpt_trainer_step(tr, NULL, err);
    if (!s)
        s = knob_gpt_infer_new(&inf, knob_gpt_trainer_params(tr), &c->model, err);
    if (!s)
        s = knob_gpt_infer_step(inf, 1, NULL, err);
    knob_gpt_infer_free(inf);
    knob_gpt_trainer_free(tr);
    return s;
}

TEST(gpt_allocation_failures)
{
    knob_err err;
    knob_gpt_train_config c = tiny_train();
    uint16_t *tok = cycle_tokens(260, 7);
    int ok = 0, failures = 0;
    for (long k = 1; k < 1000 && !ok; k++) {
        memset(&err, 0, sizeof err);
        knob_alloc_fail_at(k);
        knob_status s = build_all(&c, tok, &err);
        knob_alloc_fail_at(0);
        ok = s == KNOB_OK;
        if (!ok) {
            failures++;
            CHECK(err.msg[0] != '\0' && !strchr(err.msg, '\n'));
        }
    }
    CHECK(ok && failures > 10);
    /* no allocation in a training step or an evaluation */
    knob_gpt_trainer *tr;
    CHECK_OK(knob_gpt_trainer_new(&tr, &c, tok, 200, tok + 200, 60, &err));
    if (!tr) {
        free(tok);
        return;
    }
    CHECK_OK(knob_gpt_trainer_step(tr, NULL, &err));
    long before = knob_alloc_count();
    CHECK_OK(knob_gpt_trainer_step(tr, NULL, &err));
    float v;
    CHECK_OK(knob_gpt_trainer_eval(tr, 1, &v, &err));
    CHECK(knob_alloc_count() == before);
    /* saving: a failed allocation leaves no file; resuming: a failure leaves the trainer as it was
     * (a sample of the ~1500 allocations that parsing the header makes) */
    char path[512];
    snprintf(path, sizeof path, "%s/gpt_alloc.safetensors", test_tmpdir());
    for (long k = 1; k <= 40; k++) {
        remove(path);
        knob_alloc_fail_at(k);
        knob_status s = knob_gpt_trainer_save(tr, path, "byte", &err);
        knob_alloc_fail_at(0);
        if (s == KNOB_OK)
            break;
        CHECK(access(path, F_OK) != 0);
    }
    CHECK_OK(knob_gpt_trainer_save(tr, path, "byte", &err));
    CHECK_OK(knob_gpt_trainer_step(tr, NULL, &err));   /* now differs from the file */
    knob_params *P = knob_gpt_trainer_params(tr);
    float *keep = malloc(P->n_elems * sizeof *keep);
    memcpy(keep, P->data, P->n_elems * sizeof *keep);
    static const long at[] = {1, 2, 3, 5, 8, 13, 50, 200, 700, 1200, 1400};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        knob_alloc_fail_at(at[i]);
        knob_status s = knob_gpt_trainer_resume(tr, path, &err);
        knob_alloc_fail_at(0);
        if (s != KNOB_OK) {
            CHECK(memcmp(keep, P->data, P->n_elems * sizeof *keep) == 0);
            CHECK(knob_gpt_trainer_step_count(tr) == 3);
        }
    }
    free(keep);
    knob_gpt_trainer_free(tr);
    free(tok);
}
