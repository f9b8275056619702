/* test_gpt_formats.c: GPT weights in knob, Hugging Face and llm.c layouts (src/models/gpt_formats.c).
 *
 * The anchor is tests/data/gpt_tiny: a random GPT-2 (2 layers, 2 heads, C 16, T 16, V 50) in HF
 * layout with the logits of an independent float64 forward pass (scripts/dev/gpt2_reference.py, numpy,
 * shares no code with knob). Loading it and running knob's KV-cache inference must reproduce those
 * logits at every position. Conversions are then checked against that loaded model: llm.c f32 and
 * knob-native round trips are bit-exact, bf16 rounds each value to nearest even (hand cases), HF
 * written without the prefix loads back bit-exact. Every malformed-file rule has a test: truncated,
 * wrong magic and version, shapes the config does not explain, missing tensors and config fields.
 */
#include "test.h"

#include <sys/stat.h>

#define TINY_DIR "tests/data/gpt_tiny"

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static int copy_file(const char *from, const char *to)
{
    knob_err err = {KNOB_OK, ""};
    unsigned char *b;
    size_t n;
    if (knob_read_file(from, &b, &n, &err))
        return 0;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f)
        ok = fclose(f) == 0 && ok;
    knob_free(b);
    return ok;
}

/* expected_logits.txt: "tokens t0 ..." then one line of V logits per position */
typedef struct {
    int n;
    int tokens[64];
    float *logits;   /* (n, V) */
} expected;

static int read_expected(expected *e, int V)
{
    FILE *f = fopen(TINY_DIR "/expected_logits.txt", "r");
    if (!f)
        return 0;
    char line[16384];
    e->n = 0;
    e->logits = NULL;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "tokens", 6) != 0)
            continue;
        char *p = line + 6, *end;
        for (long v; (v = strtol(p, &end, 10)), end != p && e->n < 64; p = end)
            e->tokens[e->n++] = (int)v;
        break;
    }
    e->logits = malloc((size_t)e->n * (size_t)V * sizeof *e->logits);
    int got = 0;
    for (int i = 0; i < e->n * V; i++)
        got += fscanf(f, "%f", &e->logits[i]) == 1;
    fclose(f);
    return e->n > 0 && got == e->n * V;
}

/* Runs the tokens through knob's KV-cache inference; out (n, V). */
static knob_status run_logits(const knob_params *P, const knob_gpt_config *c, const int *tokens, int n,
                              float *out, knob_err *err)
{
    knob_gpt_infer *m;
    knob_status s = knob_gpt_infer_new(&m, P, c, err);
    for (int t = 0; t < n && !s; t++) {
        const float *lg;
        s = knob_gpt_infer_step(m, tokens[t], &lg, err);
        if (!s)
            memcpy(out + (size_t)t * c->vocab_size, lg, (size_t)c->vocab_size * sizeof *out);
    }
    knob_gpt_infer_free(m);
    return s;
}

static int same_params(const knob_params *a, const knob_params *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++) {
        const knob_tensor *x = a->t[i], *y = knob_params_find(b, x->name);
        if (!y || x->n_elems != y->n_elems || memcmp(x->data, y->data, x->n_elems * sizeof *x->data) != 0)
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * The HF fixture against the independent forward pass */

TEST(gpt_hf_tiny_matches_reference_logits)
{
    knob_err err = {KNOB_OK, ""};
    knob_params P;
    knob_gpt_config c;
    char *tok = NULL;
    knob_gpt_format fmt = KNOB_GPT_FMT_KNOB;
    CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, &fmt, &err));
    if (err.code)
        return;
    CHECK(fmt == KNOB_GPT_FMT_HF);
    CHECK(tok && strcmp(tok, "gpt2") == 0);
    CHECK(c.n_layer == 2 && c.n_head == 2 && c.n_embd == 16 && c.block_size == 16 && c.vocab_size == 50);
    CHECK(c.bias == 1);
    expected e;
    CHECK(read_expected(&e, c.vocab_size));
    CHECK(e.n == 16);
    float *got = malloc((size_t)e.n * (size_t)c.vocab_size * sizeof *got);
    CHECK_OK(run_logits(&P, &c, e.tokens, e.n, got, &err));
    /* allclose(rtol 1e-4, atol 1e-4) on logits in [-6.6, 6.0]; measured worst |diff| 2.2e-6 */
    int bad = 0;
    for (int i = 0; i < e.n * c.vocab_size; i++)
        bad += !(fabs((double)got[i] - e.logits[i]) <= 1e-4 + 1e-4 * fabs(e.logits[i]));
    CHECK(bad == 0);
    /* the training graph (one window of all 16 tokens) gives the same logits */
    knob_gpt_graph gg;
    CHECK_OK(knob_gpt_graph_build(&gg, &P, &c, 1, e.n, &err));
    if (!err.code) {
        for (int t = 0; t < e.n; t++) {
            knob_node_data_i32(gg.idx)[t] = e.tokens[t];
            knob_node_data_i32(gg.targets)[t] = 0;
        }
        CHECK_OK(knob_graph_forward(gg.g, &err));
        const float *lg = knob_node_data(gg.logits);
        bad = 0;
        for (int i = 0; i < e.n * c.vocab_size; i++)
            bad += !(fabs((double)lg[i] - e.logits[i]) <= 1e-4 + 1e-4 * fabs(e.logits[i]));
        CHECK(bad == 0);
        knob_gpt_graph_free(&gg);
    }
    /* the same file through its path, and not the folder */
    knob_params Q;
    char *tok2;
    CHECK_OK(knob_gpt_open(TINY_DIR "/model.safetensors", &Q, &c, &tok2, NULL, &err));
    CHECK(same_params(&P, &Q));
    knob_params_free(&Q);
    knob_free(tok2);
    free(got);
    free(e.logits);
    knob_free(tok);
    knob_params_free(&P);
}

/* Conv1D weights are transposed on load: knob's (out, in) element [o][i] is the file's [i][o]. */
TEST(gpt_hf_conv1d_transposed)
{
    knob_err err = {KNOB_OK, ""};
    knob_params P;
    knob_gpt_config c;
    char *tok;
    CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err));
    if (err.code)
        return;
    knob_st st;
    CHECK_OK(knob_st_open(&st, TINY_DIR "/model.safetensors", &err));
    const knob_st_entry *e = knob_st_find(&st, "transformer.h.1.mlp.c_fc.weight");
    CHECK(e && e->n_dims == 2 && e->shape[0] == 16 && e->shape[1] == 64);
    float raw[16 * 64];
    CHECK_OK(knob_st_read_f32(&st, e, raw, 16 * 64, &err));
    knob_tensor *t = knob_params_find(&P, "h.1.mlp.c_fc.weight");
    CHECK(t && t->shape[0] == 64 && t->shape[1] == 16);
    int bad = 0;
    for (int o = 0; o < 64; o++)
        for (int i = 0; i < 16; i++)
            bad += t->data[o * 16 + i] != raw[i * 64 + o];
    CHECK(bad == 0);
    /* a bias is copied as it is, and the F16 wpe converts exactly */
    const knob_st_entry *b = knob_st_find(&st, "transformer.h.0.attn.c_attn.bias");
    float rb[48];
    CHECK_OK(knob_st_read_f32(&st, b, rb, 48, &err));
    CHECK(memcmp(rb, knob_params_find(&P, "h.0.attn.c_attn.bias")->data, sizeof rb) == 0);
    knob_st_close(&st);
    knob_free(tok);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Round trips */

TEST(gpt_llmc_f32_roundtrip_exact)
{
    knob_err err = {KNOB_OK, ""};
    knob_params P, Q;
    knob_gpt_config c, c2;
    char *tok, *tok2;
    CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err));
    if (err.code)
        return;
    char path[512];
    tmp_path(path, sizeof path, "tiny.bin");
    CHECK_OK(knob_gpt_save_llmc(path, &P, &c, 0, &err));
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    /* 1024-byte header + (Vp = 128) * C + T * C + L * 12 C^2-ish ... exactly: */
    size_t C = 16, L = 2, n = 128 * C + 16 * C + L * (12 * C * C + 13 * C) + 2 * C;
    CHECK((size_t)sb.st_size == 1024 + 4 * n);
    knob_gpt_format fmt;
    CHECK_OK(knob_gpt_open(path, &Q, &c2, &tok2, &fmt, &err));
    CHECK(fmt == KNOB_GPT_FMT_LLMC);
    CHECK(memcmp(&c, &c2, sizeof c) == 0);
    CHECK(same_params(&P, &Q));
    CHECK(strcmp(tok2, "gpt2") == 0);
    /* logits: bit-identical */
    int toks[5] = {1, 2, 3, 49, 0};
    float a[5 * 50], b[5 * 50];
    CHECK_OK(run_logits(&P, &c, toks, 5, a, &err));
    CHECK_OK(run_logits(&Q, &c2, toks, 5, b, &err));
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* and back to HF (no prefix): bit-exact again */
    char dir[512];
    tmp_path(dir, sizeof dir, "hf_out");
    knob_params R;
    char *tok3;
    CHECK_OK(knob_gpt_save_hf(dir, &Q, &c2, &err));
    CHECK_OK(knob_gpt_open(dir, &R, &c2, &tok3, &fmt, &err));
    CHECK(fmt == KNOB_GPT_FMT_HF);
    CHECK(same_params(&P, &R));
    knob_params_free(&R);
    knob_free(tok3);
    knob_free(tok);
    knob_free(tok2);
    knob_params_free(&P);
    knob_params_free(&Q);
}

TEST(gpt_llmc_bf16_rounds_to_nearest_even)
{
    knob_err err = {KNOB_OK, ""};
    knob_params P, Q;
    knob_gpt_config c, c2;
    char *tok, *tok2;
    CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err));
    if (err.code)
        return;
    float *w = knob_params_find(&P, "wte.weight")->data;
    /* bf16 keeps 7 mantissa bits: around 1 the step is 2^-7 */
    w[0] = 1.0f + 0x1p-8f;                 /* halfway, 1.0 is even          -> 1.0          */
    w[1] = 1.0f + 3 * 0x1p-8f;             /* halfway, 1 + 2^-6 is even     -> 1 + 2^-6     */
    w[2] = 1.0f + 0x1p-8f + 0x1p-20f;      /* just above halfway            -> 1 + 2^-7     */
    w[3] = -(1.0f + 0x1p-8f - 0x1p-20f);   /* just below halfway            -> -1.0         */
    w[4] = 0x1.fffffep127f;                /* largest float rounds up to inf                */
    char path[512];
    tmp_path(path, sizeof path, "tiny_bf16.bin");
    CHECK_OK(knob_gpt_save_llmc(path, &P, &c, 1, &err));
    struct stat sb;
    size_t C = 16, n = 128 * C + 16 * C + 2 * (12 * C * C + 13 * C) + 2 * C;
    CHECK(stat(path, &sb) == 0 && (size_t)sb.st_size == 1024 + 2 * n);
    CHECK_OK(knob_gpt_open(path, &Q, &c2, &tok2, NULL, &err));
    if (err.code)
        return;
    float *q = knob_params_find(&Q, "wte.weight")->data;
    CHECK(q[0] == 1.0f);
    CHECK(q[1] == 1.0f + 0x1p-6f);
    CHECK(q[2] == 1.0f + 0x1p-7f);
    CHECK(q[3] == -1.0f);
    CHECK(isinf(q[4]) && q[4] > 0);
    /* every value within half a bf16 step: |x| >= 2^e and the step there is 2^(e-7), so the error
     * is at most 2^-8 |x| (reached by the ties above) */
    int bad = 0;
    for (int i = 0; i < P.n; i++) {
        const knob_tensor *x = P.t[i], *y = knob_params_find(&Q, x->name);
        for (size_t j = 0; j < x->n_elems; j++)
            if (!(x == P.t[0] && j == 4))
                bad += fabsf(x->data[j] - y->data[j]) > fabsf(x->data[j]) * 0x1p-8f;
    }
    CHECK(bad == 0);
    /* logits within bf16 tolerance of the f32 model's (w[0..4] restored to the rounded values) */
    memcpy(w, q, 5 * sizeof *w);
    w[4] = 0;
    q[4] = 0;
    int toks[4] = {7, 8, 9, 10};
    float a[4 * 50], b[4 * 50];
    CHECK_OK(run_logits(&P, &c, toks, 4, a, &err));
    CHECK_OK(run_logits(&Q, &c2, toks, 4, b, &err));
    double worst = 0, scale = 0;
    for (int i = 0; i < 4 * 50; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)a[i]));
    }
    CHECK(worst > 0);                 /* bf16 did change something */
    CHECK(worst < 0.05 * scale);      /* a few bf16 steps through two layers */
    knob_free(tok);
    knob_free(tok2);
    knob_params_free(&P);
    knob_params_free(&Q);
}

TEST(gpt_knob_native_roundtrip_keeps_tokenizer)
{
    knob_err err = {KNOB_OK, ""};
    knob_params P, Q;
    knob_gpt_config c, c2;
    char *tok, *tok2;
    CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err));
    if (err.code)
        return;
    char path[512];
    tmp_path(path, sizeof path, "tiny.safetensors");
    CHECK_OK(knob_gpt_save_knob(path, &P, &c, "char:\"abc\"", &err));
    knob_gpt_format fmt;
    CHECK_OK(knob_gpt_open(path, &Q, &c2, &tok2, &fmt, &err));
    CHECK(fmt == KNOB_GPT_FMT_KNOB);
    CHECK(tok2 && strcmp(tok2, "char:\"abc\"") == 0);
    CHECK(memcmp(&c, &c2, sizeof c) == 0);
    CHECK(same_params(&P, &Q));
    knob_st st;
    CHECK_OK(knob_st_open(&st, path, &err));
    CHECK(knob_st_meta(&st, "knob.model") && strcmp(knob_st_meta(&st, "knob.model"), "gpt") == 0);
    knob_st_close(&st);
    knob_free(tok);
    knob_free(tok2);
    knob_params_free(&P);
    knob_params_free(&Q);
}

/* HF output keeps a tokenizer other than GPT-2's in its metadata; llm.c output cannot. */
TEST(gpt_hf_keeps_knob_tokenizer)
{
    knob_err err = {KNOB_OK, ""};
    knob_params P, Q;
    knob_gpt_config c, c2;
    char *tok, *tok2 = NULL;
    CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err));
    if (err.code)
        return;
    char dir[512];
    tmp_path(dir, sizeof dir, "hf_char");
    CHECK_OK(knob_gpt_save_hf_tok(dir, &P, &c, "char:\"ab\"", &err));
    CHECK_OK(knob_gpt_open(dir, &Q, &c2, &tok2, NULL, &err));
    CHECK(tok2 && strcmp(tok2, "char:\"ab\"") == 0);
    CHECK(same_params(&P, &Q));
    knob_params_free(&Q);
    knob_free(tok2);
    tok2 = NULL;
    CHECK_OK(knob_gpt_save_hf_tok(dir, &P, &c, "gpt2", &err));   /* gpt2: nothing extra stored */
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    knob_st st;
    CHECK_OK(knob_st_open(&st, path, &err));
    CHECK(st.n_meta == 1 && knob_st_meta(&st, "knob.tokenizer") == NULL);
    knob_st_close(&st);
    knob_free(tok);
    knob_params_free(&P);
}

/* Allocation failures while writing: a clean status and no file left where the output goes. */
TEST(gpt_writers_allocation_failures)
{
    knob_err err = {KNOB_OK, ""};
    knob_params P;
    knob_gpt_config c;
    char *tok;
    CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err));
    if (err.code)
        return;
    char bin[512], dir[512], path[1024];
    tmp_path(bin, sizeof bin, "alloc.bin");
    tmp_path(dir, sizeof dir, "alloc_hf");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    for (int w = 0; w < 3; w++) {
        int ok = 0;
        for (long k = 1; k < 400 && !ok; k++) {
            remove(bin);
            remove(path);
            knob_alloc_fail_at(k);
            knob_status s = w == 0 ? knob_gpt_save_llmc(bin, &P, &c, 1, &err)
                          : w == 1 ? knob_gpt_save_hf(dir, &P, &c, &err)
                                   : knob_gpt_save_knob(bin, &P, &c, "gpt2", &err);
            knob_alloc_fail_at(0);
            ok = s == KNOB_OK;
            if (!ok) {
                struct stat sb;
                CHECK(err.msg[0] && stat(w == 1 ? path : bin, &sb) != 0);
            }
        }
        CHECK(ok);
    }
    knob_free(tok);
    knob_params_free(&P);
}

/* A bias-free model: knob-native keeps it so; llm.c and HF get zero biases, same logits. */
TEST(gpt_bias_free_model_converts)
{
    knob_err err = {KNOB_OK, ""};
    knob_gpt_config c = {.n_layer = 1, .n_head = 2, .n_embd = 8, .block_size = 8, .vocab_size = 20, .bias = 0};
    knob_params P, Q, R;
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 7, &err));
    if (err.code)
        return;
    char bin[512], dir[512];
    tmp_path(bin, sizeof bin, "nobias.bin");
    tmp_path(dir, sizeof dir, "nobias_hf");
    CHECK_OK(knob_gpt_save_llmc(bin, &P, &c, 0, &err));
    CHECK_OK(knob_gpt_save_hf(dir, &P, &c, &err));
    knob_gpt_config c2, c3;
    char *t2, *t3;
    CHECK_OK(knob_gpt_open(bin, &Q, &c2, &t2, NULL, &err));
    CHECK_OK(knob_gpt_open(dir, &R, &c3, &t3, NULL, &err));
    if (err.code)
        return;
    CHECK(c2.bias == 1 && c3.bias == 1);
    CHECK(knob_params_find(&Q, "h.0.attn.c_attn.bias")->data[5] == 0.0f);
    int toks[3] = {1, 19, 4};
    float a[60], b[60], d[60];
    CHECK_OK(run_logits(&P, &c, toks, 3, a, &err));
    CHECK_OK(run_logits(&Q, &c2, toks, 3, b, &err));
    CHECK_OK(run_logits(&R, &c3, toks, 3, d, &err));
    for (int i = 0; i < 60; i++) {
        CHECK_NEAR(b[i], a[i], 1e-5, 1e-6);
        CHECK(b[i] == d[i]);
    }
    knob_free(t2);
    knob_free(t3);
    knob_params_free(&P);
    knob_params_free(&Q);
    knob_params_free(&R);
}

/* ------------------------------------------------------------------------------------------------
 * Malformed files: one test per rule */

/* The fixture's tensors as F32 knob tensors (names as in the file), for writing variants. */
typedef struct {
    int n;
    knob_tensor t[64];
    const knob_tensor *list[64];
} tensor_set;

static int fixture_tensors(tensor_set *S)
{
    knob_err err = {KNOB_OK, ""};
    knob_st st;
    if (knob_st_open(&st, TINY_DIR "/model.safetensors", &err))
        return 0;
    S->n = 0;
    for (int i = 0; i < st.n && S->n < 64; i++) {
        const knob_st_entry *e = &st.e[i];
        knob_tensor *t = &S->t[S->n];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", e->name);
        t->n_dims = e->n_dims;
        for (int d = 0; d < e->n_dims; d++)
            t->shape[d] = (int)e->shape[d];
        t->n_elems = knob_shape_elems(t->n_dims, t->shape);
        t->data = malloc(t->n_elems * sizeof *t->data);
        knob_st_read_f32(&st, e, t->data, t->n_elems, &err);
        S->list[S->n++] = t;
    }
    knob_st_close(&st);
    return S->n;
}

static void free_set(tensor_set *S)
{
    for (int i = 0; i < S->n; i++)
        free(S->t[i].data);
}

static knob_tensor *set_find(tensor_set *S, const char *name)
{
    for (int i = 0; i < S->n; i++)
        if (strcmp(S->t[i].name, name) == 0)
            return &S->t[i];
    return NULL;
}

/* Writes dir/model.safetensors from S minus `drop` (NULL: none) and dir/config.json (NULL: the
 * fixture's); returns the folder path in dir. */
static void write_variant(char *dir, size_t size, const char *name, tensor_set *S, const char *drop,
                          const char *config)
{
    knob_err err = {KNOB_OK, ""};
    tmp_path(dir, size, name);
    mkdir(dir, 0755);
    const knob_tensor *list[64];
    int n = 0;
    for (int i = 0; i < S->n; i++)
        if (!drop || strcmp(S->t[i].name, drop) != 0)
            list[n++] = &S->t[i];
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    KNOB_ASSERT(knob_st_save(path, list, n, NULL, 0, &err) == KNOB_OK);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (config)
        KNOB_ASSERT(write_text(path, config));
    else
        KNOB_ASSERT(copy_file(TINY_DIR "/config.json", path));
}

static knob_status try_open(const char *path, knob_err *err)
{
    knob_params P;
    knob_gpt_config c;
    char *tok = (char *)1;
    knob_status s = knob_gpt_open(path, &P, &c, &tok, NULL, err);
    if (s)
        KNOB_ASSERT(P.n == 0 && tok == NULL);   /* failure leaves nothing behind */
    knob_params_free(&P);
    knob_free(tok);
    return s;
}

#define CFG_HEAD "{\"model_type\": \"gpt2\", \"n_head\": 2, \"n_embd\": 16, \"n_positions\": 16, "

TEST(gpt_hf_rejects_mismatches)
{
    knob_err err = {KNOB_OK, ""};
    tensor_set S;
    CHECK(fixture_tensors(&S) > 0);
    char dir[512];

    write_variant(dir, sizeof dir, "v_missing", &S, "transformer.h.1.mlp.c_fc.bias", NULL);
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "'transformer.h.1.mlp.c_fc.bias' missing");
    CHECK(strstr(err.msg, "v_missing/model.safetensors") != NULL);

    write_variant(dir, sizeof dir, "v_layers3", &S, NULL, CFG_HEAD "\"n_layer\": 3, \"vocab_size\": 50}");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "'transformer.h.2.ln_1.weight' missing");

    write_variant(dir, sizeof dir, "v_layers1", &S, NULL, CFG_HEAD "\"n_layer\": 1, \"vocab_size\": 50}");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "unexpected tensor 'transformer.h.1.");

    /* 50000 x 16 + 16 x 16 + 200 x 3280 + 32 = 1456288 values cannot fit in 32648 bytes */
    write_variant(dir, sizeof dir, "v_huge", &S, NULL, CFG_HEAD "\"n_layer\": 200, \"vocab_size\": 50000}");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "config.json describes 1456288 parameters; the file's");

    write_variant(dir, sizeof dir, "v_vocab", &S, NULL, CFG_HEAD "\"n_layer\": 2, \"vocab_size\": 51}");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "'transformer.wte.weight' is (50, 16), config expects (51, 16)");

    write_variant(dir, sizeof dir, "v_nohead", &S, NULL,
                  "{\"n_layer\": 2, \"n_embd\": 16, \"n_positions\": 16, \"vocab_size\": 50}");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "config.json: field 'n_head' missing");

    write_variant(dir, sizeof dir, "v_nopos", &S, NULL,
                  "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 16, \"vocab_size\": 50}");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "'n_positions' (or 'n_ctx') missing");

    write_variant(dir, sizeof dir, "v_nctx", &S, NULL,   /* n_ctx alone is enough */
                  "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 16, \"n_ctx\": 16, \"vocab_size\": 50}");
    CHECK_OK(try_open(dir, &err));

    write_variant(dir, sizeof dir, "v_heads", &S, NULL, CFG_HEAD "\"n_layer\": 2.5, \"vocab_size\": 50}");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "'n_layer' must be a positive integer");

    write_variant(dir, sizeof dir, "v_eps", &S, NULL,
                  CFG_HEAD "\"n_layer\": 2, \"vocab_size\": 50, \"layer_norm_epsilon\": 1e-6}");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "layer_norm_epsilon");

    write_variant(dir, sizeof dir, "v_gelu", &S, NULL,
                  CFG_HEAD "\"n_layer\": 2, \"vocab_size\": 50, \"activation_function\": \"relu\"}");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "activation_function relu");

    write_variant(dir, sizeof dir, "v_notjson", &S, NULL, "{\"n_layer\": 2,");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "config.json: malformed JSON near byte 13");
    write_variant(dir, sizeof dir, "v_array", &S, NULL, "[2, 4]");
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "config.json: not a JSON object");

    /* model.safetensors with no config.json beside it */
    write_variant(dir, sizeof dir, "v_noconfig", &S, NULL, NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_FAILS_WITH(try_open(path, &err), KNOB_ERR_FORMAT, "no config.json beside it");

    /* a folder without the model */
    snprintf(path, sizeof path, "%s/empty_dir", test_tmpdir());
    mkdir(path, 0755);
    CHECK_FAILS_WITH(try_open(path, &err), KNOB_ERR_IO, "folder has no model.safetensors");

    /* lm_head: equal to wte loads, different is refused, misshapen is refused */
    knob_tensor *wte = set_find(&S, "transformer.wte.weight");
    knob_tensor lm = *wte;
    snprintf(lm.name, sizeof lm.name, "lm_head.weight");
    S.t[S.n] = lm;
    S.t[S.n].data = malloc(wte->n_elems * sizeof(float));
    memcpy(S.t[S.n].data, wte->data, wte->n_elems * sizeof(float));
    S.n++;
    write_variant(dir, sizeof dir, "v_lmhead", &S, NULL, NULL);
    CHECK_OK(try_open(dir, &err));
    S.t[S.n - 1].data[7] += 1;
    write_variant(dir, sizeof dir, "v_lmhead2", &S, NULL, NULL);
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "'lm_head.weight' differs from wte.weight");
    S.t[S.n - 1].shape[0] = 25;
    S.t[S.n - 1].shape[1] = 32;
    write_variant(dir, sizeof dir, "v_lmhead3", &S, NULL, NULL);
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "'lm_head.weight' is (25, 32)");
    S.n--;
    free(S.t[S.n].data);

    /* every sampled truncation of the fixture (config.json beside it) fails with one line */
    {
        unsigned char *b;
        size_t n;
        CHECK_OK(knob_read_file(TINY_DIR "/model.safetensors", &b, &n, &err));
        write_variant(dir, sizeof dir, "v_cut", &S, NULL, NULL);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        int tries = 0, clean = 0;
        for (size_t cut = 0; cut < n; cut += cut < 3000 ? 61 : 1499) {
            FILE *f = fopen(path, "wb");
            fwrite(b, 1, cut, f);
            fclose(f);
            memset(&err, 0, sizeof err);
            knob_status s = try_open(dir, &err);
            tries++;
            clean += s != KNOB_OK && err.msg[0] && !strchr(err.msg, '\n') && strstr(err.msg, "v_cut/model.safetensors");
        }
        CHECK(tries > 50 && clean == tries);
        knob_free(b);
    }

    /* a Conv1D weight stored the knob way round (out, in) is a shape mismatch */
    knob_tensor *fc = set_find(&S, "transformer.h.0.mlp.c_fc.weight");
    fc->shape[0] = 64;
    fc->shape[1] = 16;
    write_variant(dir, sizeof dir, "v_orient", &S, NULL, NULL);
    CHECK_FAILS_WITH(try_open(dir, &err), KNOB_ERR_FORMAT, "'transformer.h.0.mlp.c_fc.weight' is (64, 16), config expects (16, 64)");
    free_set(&S);
}

TEST(gpt_knob_native_rejects_bad_metadata)
{
    knob_err err = {KNOB_OK, ""};
    knob_params P;
    knob_gpt_config c;
    char *tok;
    CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err));
    if (err.code)
        return;
    char path[512];
    tmp_path(path, sizeof path, "meta.safetensors");
    knob_kv m1[2] = {{"knob.model", "gpt"}, {"tokenizer", "byte"}};
    CHECK_OK(knob_params_save(&P, path, m1, 2, &err));
    CHECK_FAILS_WITH(try_open(path, &err), KNOB_ERR_FORMAT, "metadata 'gpt.config' missing");
    knob_kv m2[2] = {{"knob.model", "gpt"}, {"gpt.config", "{\"n_layer\": 2}"}};
    CHECK_OK(knob_params_save(&P, path, m2, 2, &err));
    CHECK_FAILS_WITH(try_open(path, &err), KNOB_ERR_FORMAT, "meta.safetensors: metadata 'gpt.config'");
    char *cfg = knob_gpt_config_json(&c);
    knob_kv m3[2] = {{"knob.model", "gpt"}, {"gpt.config", cfg}};
    CHECK_OK(knob_params_save(&P, path, m3, 2, &err));
    CHECK_FAILS_WITH(try_open(path, &err), KNOB_ERR_FORMAT, "metadata 'tokenizer' missing");
    knob_kv m4[1] = {{"knob.model", "mlp"}};
    CHECK_OK(knob_params_save(&P, path, m4, 1, &err));
    CHECK_FAILS_WITH(try_open(path, &err), KNOB_ERR_FORMAT, "a knob 'mlp' model, not a GPT");
    /* config says 3 layers, the file has 2 */
    knob_gpt_config c3 = c;
    c3.n_layer = 3;
    char *cfg3 = knob_gpt_config_json(&c3);
    knob_kv m5[3] = {{"knob.model", "gpt"}, {"gpt.config", cfg3}, {"tokenizer", "gpt2"}};
    CHECK_OK(knob_params_save(&P, path, m5, 3, &err));
    CHECK_FAILS_WITH(try_open(path, &err), KNOB_ERR_FORMAT, "tensor 'h.2.ln_1.weight' missing");
    /* saving params that do not fit the config is refused */
    CHECK_FAILS_WITH(knob_gpt_save_knob(path, &P, &c3, "gpt2", &err), KNOB_ERR_USAGE, "parameter 'h.2.ln_1.weight' missing");
    knob_free(cfg);
    knob_free(cfg3);
    knob_free(tok);
    knob_params_free(&P);
}

/* llm.c: wrong magic, version, header fields, sizes; and every truncation fails cleanly. */
TEST(gpt_llmc_rejects_malformed)
{
    knob_err err = {KNOB_OK, ""};
    knob_params P;
    knob_gpt_config c;
    char *tok;
    CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err));
    if (err.code)
        return;
    char good[512], bad[512];
    tmp_path(good, sizeof good, "good.bin");
    tmp_path(bad, sizeof bad, "bad.bin");
    CHECK_OK(knob_gpt_save_llmc(good, &P, &c, 0, &err));
    unsigned char *b;
    size_t n;
    CHECK_OK(knob_read_file(good, &b, &n, &err));
    int32_t *h = (int32_t *)b;

    h[1] = 4;
    CHECK(write_text(bad, "") && copy_file(good, bad));
    FILE *f = fopen(bad, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    CHECK_FAILS_WITH(try_open(bad, &err), KNOB_ERR_FORMAT, "bad.bin: llm.c checkpoint version 4 not supported");
    h[1] = 3;

    h[0] = 20240327;   /* wrong magic: not llm.c; a .bin is named as such */
    f = fopen(bad, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    CHECK_FAILS_WITH(try_open(bad, &err), KNOB_ERR_FORMAT, "not an llm.c checkpoint (magic 20240327, want 20240326)");
    h[0] = 20240328;
    f = fopen(bad, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    CHECK_FAILS_WITH(try_open(bad, &err), KNOB_ERR_FORMAT, "an llm.c tokenizer file, not a model");
    h[0] = 20240326;

    h[4] = 3;   /* num_layers 3: the file is too short for it */
    f = fopen(bad, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    CHECK_FAILS_WITH(try_open(bad, &err), KNOB_ERR_FORMAT, "truncated");
    h[4] = 1;   /* 1 layer: bytes left over */
    f = fopen(bad, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    CHECK_FAILS_WITH(try_open(bad, &err), KNOB_ERR_FORMAT, "trailing bytes");
    h[4] = 2;
    h[7] = 40;   /* padded vocab below the vocab */
    f = fopen(bad, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    CHECK_FAILS_WITH(try_open(bad, &err), KNOB_ERR_FORMAT, "padded_vocab_size 40 is below vocab_size 50");
    h[7] = 128;
    h[5] = 3;   /* 3 heads do not divide 16 channels */
    f = fopen(bad, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    CHECK_FAILS_WITH(try_open(bad, &err), KNOB_ERR_FORMAT, "bad.bin: header: gpt: n_embd 16 is not a multiple of n_head 3");
    h[5] = 2;
    h[6] = -16;
    f = fopen(bad, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    CHECK_FAILS_WITH(try_open(bad, &err), KNOB_ERR_FORMAT, "header channels is -16");
    h[6] = 16;

    /* truncation at a sample of offsets (every one in the header region, then a stride) */
    int failures = 0, tries = 0;
    for (size_t cut = 0; cut < n; cut += cut < 1100 ? 37 : 997) {
        f = fopen(bad, "wb");
        fwrite(b, 1, cut, f);
        fclose(f);
        memset(&err, 0, sizeof err);
        knob_status s = try_open(bad, &err);
        tries++;
        failures += s != KNOB_OK && err.msg[0] && !strchr(err.msg, '\n') && strstr(err.msg, "bad.bin");
    }
    CHECK(failures == tries);
    knob_free(b);
    knob_free(tok);
    knob_params_free(&P);
}

/* Allocation failures anywhere in opening and converting: a clean status, no leak (ASan). */
TEST(gpt_formats_allocation_failures)
{
    knob_err err = {KNOB_OK, ""};
    int ok_at = 0;
    long before = knob_alloc_count();
    {   /* how many allocations one open makes */
        knob_params P;
        knob_gpt_config c;
        char *tok;
        CHECK_OK(knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err));
        knob_free(tok);
        knob_params_free(&P);
    }
    long n_allocs = knob_alloc_count() - before;
    CHECK(n_allocs > 10 && n_allocs < 5000);
    for (long k = 1; k <= n_allocs + 1 && !ok_at; k++) {
        knob_params P;
        knob_gpt_config c;
        char *tok;
        knob_alloc_fail_at(k);
        knob_status s = knob_gpt_open(TINY_DIR, &P, &c, &tok, NULL, &err);
        knob_alloc_fail_at(0);
        if (s == KNOB_OK) {
            ok_at = (int)k;
            knob_free(tok);
        } else {
            CHECK(err.msg[0] && P.n == 0);
        }
        knob_params_free(&P);
    }
    CHECK(ok_at > 1);
}

/* ------------------------------------------------------------------------------------------------
 * Looking at embeddings (src/models/embed.c), against hand-computed values */

TEST(embed_cosine_top_by_hand)
{
    /* rows (1,0) (0,1) (1,1) (-1,0) (0,0); v = (2,1): cosines 2/sqrt5, 1/sqrt5, 3/sqrt10, -2/sqrt5, 0 */
    const float E[10] = {1, 0, 0, 1, 1, 1, -1, 0, 0, 0}, v[2] = {2, 1};
    int ids[5];
    float sims[5];
    int n = knob_cosine_top(E, 5, 2, v, NULL, 0, 3, ids, sims);
    CHECK(n == 3 && ids[0] == 2 && ids[1] == 0 && ids[2] == 1);
    CHECK_NEAR(sims[0], 3 / sqrt(10), 1e-6, 0);
    CHECK_NEAR(sims[1], 2 / sqrt(5), 1e-6, 0);
    CHECK_NEAR(sims[2], 1 / sqrt(5), 1e-6, 0);
    int skip[1] = {2};
    n = knob_cosine_top(E, 5, 2, v, skip, 1, 5, ids, sims);
    CHECK(n == 4 && ids[0] == 0 && ids[1] == 1 && ids[2] == 4 && ids[3] == 3);
    CHECK(sims[2] == 0.0f);   /* the zero row */
    CHECK_NEAR(sims[3], -2 / sqrt(5), 1e-6, 0);
}

TEST(embed_pca2_by_hand)
{
    /* (6,0) (-2,0) (-2,1) (-2,-1) shifted by (10,-3), plus a constant third coordinate 7: centred
     * sums of squares xx 48, yy 2, xy 0 -> axis 1 = x (48 of 50), axis 2 = y (2 of 50);
     * coordinates 6, -2, -2, -2 and 0, 0, 1, -1 (signs: the largest magnitude positive) */
    const float X[12] = {16, -3, 7, 8, -3, 7, 8, -2, 7, 8, -4, 7};
    float out[8], var[2];
    knob_err err = {KNOB_OK, ""};
    CHECK_OK(knob_pca2(X, 4, 3, out, var, &err));
    const float want[8] = {6, 0, -2, 0, -2, 1, -2, -1};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(out[i], want[i], 0, 1e-5);
    CHECK_NEAR(var[0], 48.0 / 50, 1e-6, 0);
    CHECK_NEAR(var[1], 2.0 / 50, 1e-6, 0);
    /* points on one line: the second axis holds nothing */
    const float L[8] = {0, 0, 1, 2, 2, 4, 5, 10};   /* t (1, 2), t = 0, 1, 2, 5; mean t = 2 */
    CHECK_OK(knob_pca2(L, 4, 2, out, var, &err));
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(out[2 * i], ((double[]){-2, -1, 0, 3})[i] * sqrt(5), 0, 1e-5);
        CHECK_NEAR(out[2 * i + 1], 0, 0, 1e-5);
    }
    CHECK_NEAR(var[0], 1, 1e-6, 0);
    CHECK_FAILS_WITH(knob_pca2(X, 0, 3, out, var, &err), KNOB_ERR_USAGE, "at least one point");
}
