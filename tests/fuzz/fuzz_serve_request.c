/* fuzz_serve_request.c: knob serve's wire format (src/serve/openai.c) on any bytes: the body as a
 * completion request, a chat request, a /tokenize and a /detokenize body, over a tiny random GPT
 * with a byte tokenizer (so every id has a piece, valid UTF-8 or not). A parsed request is then
 * written back as a response and as stream chunks with made-up output, so the writers see the
 * parsed fields too. Every failure must be a 4xx/5xx with one line. */
#include "fuzz.h"
#include "knob_internal.h"

static knob_lm *lm;
static knob_params P;
static knob_tokenizer *tok;

static void setup(void)
{
    knob_err err;
    knob_gpt_config c = {0};
    c.vocab_size = 256;
    c.block_size = 32;
    c.n_layer = 1;
    c.n_head = 1;
    c.n_embd = 8;
    c.bias = 1;
    if (knob_tok_new_byte(&tok, &err) || knob_gpt_params(&P, &c, &err) || knob_lm_new(&lm, &P, &c, tok, &err))
        abort();   /* the harness itself failed: not a finding */
}

static void check(int st, const knob_err *err)
{
    if (st == 200)
        return;
    if (st < 400 || st > 599 || !err->msg[0] || strchr(err->msg, '\n'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!lm)
        setup();
    knob_serve_opts o = {.lm = lm, .model_id = "m", .ctx = 32};
    for (int chat = 0; chat < 2; chat++) {
        knob_err err = {0};
        knob_serve_req *r = NULL;
        int st = knob_serve_parse(&o, chat, (const char *)data, size, &r, &err);
        check(st, &err);
        if (r) {
            /* made-up output: the prompt's ids as if sampled, the text their pieces */
            for (size_t i = 0; i < r->n_prompt && i < 8; i++) {
                knob_serve_tok t = {.id = r->prompt[i], .logprob = -1.0f, .offset = i, .n_top = r->n_top};
                for (int k = 0; k < t.n_top; k++)
                    t.top_id[k] = (int32_t)((r->prompt[i] + k) % 256), t.top_lp[k] = -2.0f - (float)k;
                knob_serve_tok *b = knob_realloc(r->toks, (i + 1) * sizeof *b);
                if (!b)
                    abort();
                r->toks = b;
                r->toks[i] = t;
                r->n_toks = (int)i + 1;
            }
            r->text = knob_strndup((const char *)data, size < 16 ? size : 16);
            r->text_len = r->text ? strlen(r->text) : 0;
            r->final_len = r->text_len / 2;
            r->final_toks = r->n_toks / 2;
            char *s = knob_serve_chunks(&o, r, "id", 0, 0, 1);
            knob_free(s);
            r->done = 1;
            r->finish = "stop";
            r->final_len = r->text_len;
            r->final_toks = r->n_toks;
            s = knob_serve_chunks(&o, r, "id", r->text_len / 2, r->n_toks / 2, 0);
            knob_free(s);
            s = knob_serve_response_json(&o, r, "id");
            knob_free(s);
            knob_serve_req_free(r);
        }
    }
    knob_err err = {0};
    char *json = NULL;
    check(knob_serve_tokenize(&o, (const char *)data, size, &json, &err), &err);
    knob_free(json);
    json = NULL;
    check(knob_serve_detokenize(&o, (const char *)data, size, &json, &err), &err);
    knob_free(json);
    return 0;
}
