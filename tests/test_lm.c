/* test_lm.c: the language-model handle (src/models/lm.c) against the training graph and against
 * counts:
 * - logits of a batched prefill, of decode steps after it, and of a re-prefill after dropping,
 *   against the training graph's logits of the same context, to 1e-6 (times the largest logit
 *   when that is above 1: a random GPT-2-style model, ~0.6, and the tests/data/gpt_tiny fixture,
 *   ~7, where float's ulp is 5e-7);
 * - knob_lm_nll against -log softmax of the graph's logits, computed here in double, with the
 *   window sliding over a text longer than the context;
 * - a 400-token prompt is one pass; a chat of 5 turns with GPT-2's tokenizer and vocabulary and a
 *   1024 context feeds each turn's new tokens only (SKIP without data/gpt2);
 * - streaming: every emitted chunk is whole UTF-8, the chunks add up to the text, the stop string
 *   is never emitted. */
#include "test.h"

#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * Against the graph */

/* the graph's logits for context ctx[0..n), positions 0..n-1: G (n, V) */
static void graph_logits(knob_params *P, const knob_gpt_config *c, const int32_t *ctx, int n, float *G)
{
    knob_err err;
    knob_gpt_graph g;
    CHECK_OK(knob_gpt_graph_build(&g, P, c, 1, n, &err));
    if (!g.g)
        return;
    int32_t *idx = knob_node_data_i32(g.idx), *tgt = knob_node_data_i32(g.targets);
    for (int t = 0; t < n; t++) {
        idx[t] = ctx[t];
        tgt[t] = 0;
    }
    CHECK_OK(knob_graph_forward(g.g, &err));
    memcpy(G, knob_node_data(g.logits), (size_t)n * (size_t)c->vocab_size * sizeof *G);
    knob_gpt_graph_free(&g);
}

static double max_diff(const float *a, const float *b, int n)
{
    double d = 0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

/* prefill of k tokens, then decode steps, then drop + re-prefill: every logits row vs the graph */
static void check_against_graph(knob_params *P, const knob_gpt_config *c, const int32_t *ctx, int n, int k)
{
    knob_err err;
    int V = c->vocab_size;
    float *G = knob_malloc((size_t)n * (size_t)V * sizeof *G);
    graph_logits(P, c, ctx, n, G);
    knob_lm *lm;
    knob_lm_seq *q;
    CHECK_OK(knob_lm_new(&lm, P, c, NULL, &err));
    CHECK_OK(knob_lm_seq_new(lm, &q, &err));
    CHECK_OK(knob_lm_feed(q, ctx, (size_t)k, &err));
    double worst = max_diff(knob_lm_logits(q), G + (size_t)(k - 1) * V, V);
    for (int t = k; t < n; t++) {
        CHECK_OK(knob_lm_feed(q, ctx + t, 1, &err));
        worst = fmax(worst, max_diff(knob_lm_logits(q), G + (size_t)t * V, V));
    }
    double scale = 0;
    for (size_t i = 0; i < (size_t)n * V; i++)
        scale = fmax(scale, fabs((double)G[i]));
    /* 1e-6 relative to the largest logit: the graph's matrix products of n rows and the cache's of
     * one row add in different orders (knob_gemm's matrix-vector path), a few float ulps apart */
    CHECK(worst < 1e-6 * fmax(1.0, scale));
    if (worst >= 1e-6 * fmax(1.0, scale))
        fprintf(stderr, "  worst logit difference %.3g, largest logit %.3g\n", worst, scale);
    knob_lm_counters cn = knob_lm_seq_counters(q);
    CHECK(cn.tokens_fed == (uint64_t)n && cn.prefill_passes == (uint64_t)(1 + n - k));
    /* dropping the first 2 recomputes from position 0: the graph of ctx[2..n) */
    CHECK_OK(knob_lm_drop(q, 2, &err));
    CHECK(knob_lm_seq_len(q) == n - 2);
    graph_logits(P, c, ctx + 2, n - 2, G);
    CHECK(max_diff(knob_lm_logits(q), G + (size_t)(n - 3) * V, V) < 1e-6);
    CHECK_FAILS_WITH(knob_lm_feed(q, ctx, (size_t)(c->block_size - knob_lm_seq_len(q) + 1), &err), KNOB_ERR_USAGE,
                     "context is full");
    CHECK_FAILS_WITH(knob_lm_feed(q, (int32_t[]){(int32_t)V}, 1, &err), KNOB_ERR_USAGE, "out of range");
    knob_lm_seq_free(q);
    knob_lm_free(lm);
    knob_free(G);
}

TEST(lm_logits_match_the_training_graph)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = {.n_layer = 2, .n_head = 4, .n_embd = 32, .block_size = 40, .vocab_size = 29, .bias = 1};
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 3, &err));
    int32_t ctx[40];
    for (int t = 0; t < 40; t++)
        ctx[t] = (t * 7 + 3) % 29;
    check_against_graph(&P, &c, ctx, 40, 37);   /* 37 rows: two attention blocks in the prefill */
    knob_params_free(&P);
    c.bias = 0;
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 4, &err));
    check_against_graph(&P, &c, ctx, 12, 5);
    knob_params_free(&P);
}

TEST(lm_logits_match_the_graph_on_gpt_tiny)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c;
    char *desc = NULL;
    knob_params_init(&P);
    CHECK_OK(knob_gpt_open("tests/data/gpt_tiny", &P, &c, &desc, NULL, &err));
    if (P.n == 0)
        return;
    int32_t ctx[16] = {1, 4, 9, 16, 25, 36, 49, 0, 2, 3, 5, 7, 11, 13, 17, 19};
    check_against_graph(&P, &c, ctx, 16, 10);
    knob_free(desc);
    knob_params_free(&P);
}

/* -log softmax(G row)[target] in double, here */
static double nll_ref(const float *x, int V, int target)
{
    double m = x[0], s = 0;
    for (int v = 1; v < V; v++)
        m = fmax(m, x[v]);
    for (int v = 0; v < V; v++)
        s += exp((double)x[v] - m);
    return log(s) + m - x[target];
}

TEST(lm_nll_slides_its_window_like_the_graph)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = {.n_layer = 1, .n_head = 2, .n_embd = 16, .block_size = 8, .vocab_size = 11, .bias = 1};
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 5, &err));
    int32_t ids[21];
    for (int i = 0; i < 21; i++)
        ids[i] = (i * i + 1) % 11;
    /* the window: positions 0..7 from 0; when full, the older half goes: the context restarts at
     * ids[4] (positions 4..7 kept, then 8..11), then at ids[8], ... */
    double want = 0;
    float G[8 * 11];
    int start = 0;
    for (int i = 1; i < 21; i++) {
        if (i - start > 8)
            start += 4;
        graph_logits(&P, &c, ids + start, i - start, G);
        want += nll_ref(G + (size_t)(i - start - 1) * 11, 11, ids[i]);
    }
    knob_lm *lm;
    knob_lm_seq *q;
    CHECK_OK(knob_lm_new(&lm, &P, &c, NULL, &err));
    CHECK_OK(knob_lm_seq_new(lm, &q, &err));
    double got;
    CHECK_OK(knob_lm_nll(q, ids, 21, &got, &err));
    CHECK_NEAR(got, want, 1e-6, 1e-6);
    knob_lm_seq_free(q);
    knob_lm_free(lm);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * GPT-2-shaped: a 400-token prompt in one pass; a 5-turn chat feeding new tokens only */

static knob_gpt_config gpt2_shaped(void)
{
    return (knob_gpt_config){.n_layer = 1, .n_head = 2, .n_embd = 16, .block_size = 1024, .vocab_size = 50257,
                             .bias = 1};
}

TEST(lm_prompt_is_one_batched_pass)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = gpt2_shaped();
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 6, &err));
    knob_lm *lm;
    knob_lm_seq *q;
    CHECK_OK(knob_lm_new(&lm, &P, &c, NULL, &err));
    CHECK_OK(knob_lm_seq_new(lm, &q, &err));
    int32_t ids[400];
    for (int i = 0; i < 400; i++)
        ids[i] = (int32_t)((i * 7919) % 50257);
    CHECK_OK(knob_lm_feed(q, ids, 400, &err));
    knob_lm_counters cn = knob_lm_seq_counters(q);
    CHECK(cn.prefill_passes == 1 && cn.tokens_fed == 400);
    CHECK(knob_lm_seq_len(q) == 400 && knob_lm_logits(q) != NULL);
    /* a prompt longer than the context keeps its last 1024 tokens, still one pass */
    int32_t *many = knob_malloc(1500 * sizeof *many);
    for (int i = 0; i < 1500; i++)
        many[i] = (int32_t)(i % 50257);
    knob_lm_seq_reset(q);
    CHECK_OK(knob_lm_feed_tail(q, many, 1500, &err));
    CHECK(knob_lm_seq_len(q) == 1024 && knob_lm_seq_tokens(q)[0] == 476);
    CHECK(knob_lm_seq_counters(q).prefill_passes == 2);
    knob_free(many);
    knob_lm_seq_free(q);
    knob_lm_free(lm);
    knob_params_free(&P);
}

TEST(lm_chat_feeds_each_turn_once)
{
    char dir[4096], path[4200];
    knob_data_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/gpt2/encoder.json", dir);
    if (access(path, R_OK) != 0)
        SKIP("data/gpt2/encoder.json is absent (scripts/setup.sh fetches it)");
    knob_err err;
    knob_tokenizer *tok;
    CHECK_OK(knob_tok_load_gpt2(&tok, &err));
    knob_params P;
    knob_gpt_config c = gpt2_shaped();
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 7, &err));
    knob_lm *lm;
    knob_lm_chat *chat;
    CHECK_OK(knob_lm_new(&lm, &P, &c, tok, &err));
    CHECK_OK(knob_lm_chat_new(lm, 12, &chat, &err));
    knob_lm_seq *q = knob_lm_chat_seq(chat);
    knob_rng r;
    knob_rng_seed(&r, 1);
    knob_lm_gen g = {.max_tokens = 12, .sampler = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f}, .rng = &r,
                     .stop = "\n"};
    const char *lines[5] = {"You: Hello there\nBot: ", "You: How are you today?\nBot: ",
                            "You: Tell me about cats.\nBot: ", "You: And dogs?\nBot: ", "You: Goodbye!\nBot: "};
    size_t pending = 0;   /* transcript tokens the cache lacks (the last reply's end) */
    for (int turn = 0; turn < 5; turn++) {
        int32_t *ids;
        size_t n_turn;
        CHECK_OK(knob_tok_encode(tok, lines[turn], strlen(lines[turn]), 0, &ids, &n_turn, &err));
        knob_free(ids);
        knob_lm_counters before = knob_lm_seq_counters(q);
        CHECK_OK(knob_lm_chat_add(chat, lines[turn], &err));
        knob_lm_gen_result res;
        CHECK_OK(knob_lm_chat_reply(chat, &g, &res, &err));
        knob_lm_counters after = knob_lm_seq_counters(q);
        uint64_t decoded = (uint64_t)res.n_tokens - (strcmp(res.finish, "eot") == 0 ? 0 : 1);
        /* this turn fed: what the cache lacked of the last reply, the new turn, the decode steps */
        CHECK(after.tokens_fed - before.tokens_fed == pending + n_turn + decoded);
        CHECK(after.prefill_passes - before.prefill_passes == 1 + decoded);
        size_t n_hist;
        const int32_t *hist = knob_lm_chat_history(chat, &n_hist);
        int len = knob_lm_seq_len(q);
        CHECK((size_t)len <= n_hist && memcmp(knob_lm_seq_tokens(q), hist, (size_t)len * sizeof *hist) == 0);
        CHECK(after.tokens_fed == (uint64_t)len);   /* nothing was ever fed twice */
        pending = n_hist - (size_t)len;
        CHECK(pending <= 3);
    }
    knob_lm_chat_free(chat);
    knob_lm_free(lm);
    knob_params_free(&P);
    knob_tok_free(tok);
}

/* ------------------------------------------------------------------------------------------------
 * Streaming */

typedef struct {
    char buf[4096];
    size_t len;
    int bad_chunk;
} sink;

static void collect(void *ud, const char *text, size_t n)
{
    sink *s = ud;
    if (knob_utf8_complete(text, n) != n)
        s->bad_chunk = 1;
    if (s->len + n < sizeof s->buf) {
        memcpy(s->buf + s->len, text, n);
        s->len += n;
    }
}

TEST(lm_generate_streams_final_text)
{
    knob_err err;
    const char chars[] = "abc\xc3\xa9\xe2\x82\xac";   /* a b c é € */
    knob_tokenizer *tok;
    CHECK_OK(knob_tok_new_char(&tok, chars, strlen(chars), &err));
    knob_params P;
    knob_gpt_config c = {.n_layer = 1, .n_head = 2, .n_embd = 8, .block_size = 16, .vocab_size = 5, .bias = 1};
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 8, &err));
    knob_lm *lm;
    knob_lm_seq *q;
    CHECK_OK(knob_lm_new(&lm, &P, &c, tok, &err));
    CHECK_OK(knob_lm_seq_new(lm, &q, &err));
    int stopped = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        knob_rng r;
        knob_rng_seed(&r, seed);
        sink s = {.len = 0};
        knob_lm_gen g = {.max_tokens = 40, .sampler = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f}, .rng = &r,
                         .stop = "\xc3\xa9" "a", .emit = collect, .ud = &s};
        knob_lm_seq_reset(q);
        CHECK_OK(knob_lm_feed(q, (int32_t[]){0}, 1, &err));
        knob_lm_gen_result res;
        CHECK_OK(knob_lm_generate(q, &g, &res, &err));
        CHECK(!s.bad_chunk);
        CHECK(s.len == res.len && memcmp(s.buf, res.text, res.len) == 0);
        CHECK(strstr(res.text, "\xc3\xa9" "a") == NULL);
        stopped += strcmp(res.finish, "stop") == 0;
        /* 40 tokens through a 16-token context: the older half was dropped on the way */
        CHECK(knob_lm_seq_len(q) <= 16);
    }
    CHECK(stopped > 0);
    knob_lm_seq_free(q);
    knob_lm_free(lm);
    knob_params_free(&P);
    knob_tok_free(tok);
}

TEST(lm_open_names_a_vocabulary_mismatch)
{
    knob_err err;
    knob_lm *lm = NULL;
    CHECK_FAILS_WITH(knob_lm_open(&lm, "tests/data/gpt_tiny", &err), KNOB_ERR_FORMAT, "--tokenizer");
    CHECK(lm == NULL);
    CHECK_FAILS_WITH(knob_lm_open(&lm, "tests/data/none.safetensors", &err), KNOB_ERR_IO, "none.safetensors");
}

TEST(lm_top_tokens_in_order)
{
    const float logits[5] = {1.0f, 3.0f, 3.0f, 0.0f, -2.0f};
    int ids[5], scratch[5];
    CHECK(knob_top_tokens(logits, 5, 3, ids, scratch) == 3);
    CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 0);   /* ties: lower id first */
    CHECK(knob_top_tokens(logits, 5, 50, ids, scratch) == 5);
    CHECK(ids[3] == 3 && ids[4] == 4);
}

TEST(lm_batched_decode_equals_decoding_alone)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = {.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = 24, .vocab_size = 19, .bias = 1};
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 9, &err));
    knob_lm *lm;
    CHECK_OK(knob_lm_new(&lm, &P, &c, NULL, &err));
    knob_lm_seq *batch[3], *alone[3];
    const int32_t prompt[12] = {1, 5, 2, 8, 3, 9, 4, 7, 6, 0, 11, 12};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(knob_lm_seq_new(lm, &batch[i], &err));
        CHECK_OK(knob_lm_seq_new(lm, &alone[i], &err));
        CHECK_OK(knob_lm_feed(batch[i], prompt + i, (size_t)(3 + 3 * i), &err));   /* 3, 6 and 9 tokens */
        CHECK_OK(knob_lm_feed(alone[i], prompt + i, (size_t)(3 + 3 * i), &err));
    }
    double worst = 0;
    for (int step = 0; step < 4; step++) {
        int32_t tok[3] = {(int32_t)(step + 1), (int32_t)(2 * step + 3), (int32_t)(18 - step)};
        CHECK_OK(knob_lm_decode(batch, tok, 3, &err));
        for (int i = 0; i < 3; i++) {
            CHECK_OK(knob_lm_feed(alone[i], tok + i, 1, &err));
            worst = fmax(worst, max_diff(knob_lm_logits(batch[i]), knob_lm_logits(alone[i]), c.vocab_size));
            CHECK(knob_lm_seq_len(batch[i]) == 3 + 3 * i + step + 1);
        }
    }
    CHECK(worst < 1e-6);
    for (int i = 0; i < 3; i++)
        CHECK(knob_lm_seq_counters(batch[i]).prefill_passes == 5);   /* the prompt, then 4 decode passes */
    knob_lm_seq *twice[2] = {batch[0], batch[0]};
    CHECK_FAILS_WITH(knob_lm_decode(twice, (int32_t[]){1, 2}, 2, &err), KNOB_ERR_USAGE, "appears twice");
    CHECK_FAILS_WITH(knob_lm_decode(batch, (int32_t[]){1, 19, 2}, 3, &err), KNOB_ERR_USAGE, "out of range");
    CHECK(knob_lm_seq_len(batch[0]) == 7);   /* nothing changed */
    for (int i = 0; i < 3; i++) {
        knob_lm_seq_free(batch[i]);
        knob_lm_seq_free(alone[i]);
    }
    knob_lm_free(lm);
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Threads: a prefill big enough that attention splits its heads over knob's pool (n (p0 + n) C >=
 * 64 KNOB_PAR_MIN) gives the same logits bits for 1, 2 and 3 threads, and the graph's values. */

TEST(lm_prefill_attention_same_bits_for_any_thread_count)
{
    knob_err err;
    knob_params P;
    knob_gpt_config c = {.n_layer = 1, .n_head = 4, .n_embd = 64, .block_size = 200, .vocab_size = 29, .bias = 1};
    int n = 200, V = c.vocab_size;
    CHECK((double)n * n * c.n_embd >= 64.0 * KNOB_PAR_MIN);
    CHECK_OK(knob_gpt_params(&P, &c, &err));
    CHECK_OK(knob_gpt_init(&P, &c, 5, &err));
    int32_t *ctx = knob_malloc((size_t)n * sizeof *ctx);
    float *G = knob_malloc((size_t)n * V * sizeof *G), ref[29];
    for (int t = 0; t < n; t++)
        ctx[t] = (t * 11 + 2) % V;
    graph_logits(&P, &c, ctx, n, G);
    for (int threads = 1; threads <= 3; threads++) {
        knob_threads_set(threads);
        knob_lm *lm;
        knob_lm_seq *q;
        CHECK_OK(knob_lm_new(&lm, &P, &c, NULL, &err));
        CHECK_OK(knob_lm_seq_new(lm, &q, &err));
        CHECK_OK(knob_lm_feed(q, ctx, (size_t)n, &err));
        const float *lg = knob_lm_logits(q);
        if (threads == 1) {
            memcpy(ref, lg, sizeof ref);
            CHECK(max_diff(lg, G + (size_t)(n - 1) * V, V) < 1e-6);
        } else if (memcmp(ref, lg, sizeof ref) != 0) {
            test_fail_at(__FILE__, __LINE__, "%d threads: prefill logits differ from 1 thread's", threads);
        }
        knob_lm_seq_free(q);
        knob_lm_free(lm);
    }
    knob_threads_set(0);
    knob_free(ctx);
    knob_free(G);
    knob_params_free(&P);
}
