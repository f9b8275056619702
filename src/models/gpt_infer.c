/* gpt_infer.c: knob_gpt_infer, the KV-cache inference over a caller's parameters, as a thin layer
 * over knob_lm (src/models/lm.c): one lm without a tokenizer and one sequence. A step feeds one
 * token; drop recomputes the kept tokens in one batched pass.
 *
 * Not here: the forward pass, generation, scoring, chat (lm.c); sampling (sample.c). */
#include "knob_internal.h"

struct knob_gpt_infer {
    knob_lm *lm;
    knob_lm_seq *seq;
};

knob_status knob_gpt_infer_new(knob_gpt_infer **out, const knob_params *P, const knob_gpt_config *c, knob_err *err)
{
    *out = NULL;
    knob_gpt_infer *m = knob_calloc(1, sizeof *m);
    if (!m)
        return knob_fail(err, KNOB_ERR_NOMEM, "gpt: out of memory");
    knob_status s = knob_lm_new(&m->lm, P, c, NULL, err);
    if (!s)
        s = knob_lm_seq_new(m->lm, &m->seq, err);
    if (s) {
        knob_gpt_infer_free(m);
        return s;
    }
    *out = m;
    return KNOB_OK;
}

void knob_gpt_infer_free(knob_gpt_infer *m)
{
    if (!m)
        return;
    knob_lm_seq_free(m->seq);
    knob_lm_free(m->lm);
    knob_free(m);
}

void knob_gpt_infer_reset(knob_gpt_infer *m) { knob_lm_seq_reset(m->seq); }
int knob_gpt_infer_len(const knob_gpt_infer *m) { return knob_lm_seq_len(m->seq); }
const int32_t *knob_gpt_infer_tokens(const knob_gpt_infer *m) { return knob_lm_seq_tokens(m->seq); }
const float *knob_gpt_infer_hidden(const knob_gpt_infer *m) { return knob_lm_hidden(m->seq); }
void knob_gpt_infer_capture_attention(knob_gpt_infer *m, float *buf) { knob_lm_capture_attention(m->seq, buf); }

knob_status knob_gpt_infer_step(knob_gpt_infer *m, int token, const float **logits, knob_err *err)
{
    int32_t t = token;
    knob_status s = knob_lm_feed(m->seq, &t, 1, err);
    if (!s && logits)
        *logits = knob_lm_logits(m->seq);
    return s;
}

knob_status knob_gpt_infer_drop(knob_gpt_infer *m, int k, const float **logits, knob_err *err)
{
    knob_status s = knob_lm_drop(m->seq, k, err);
    if (!s && logits)
        *logits = knob_lm_logits(m->seq);
    return s;
}
