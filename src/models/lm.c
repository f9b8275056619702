/* lm.c: the language-model handle knob_lm: a GPT's weights and tokenizer, and sequences
 * (knob_lm_seq) that each own a key/value cache, fed whole prompts at once (prefill), decoded one
 * token a step, scored (mean next-token loss with a sliding window), sampled from (stop strings,
 * UTF-8 hold-back, a callback per chunk of final text), and a chat that keeps its cache between
 * turns. Every command that runs a GPT (generate, score, next, chat, embed, attention) and later
 * the HTTP server call this file.
 *
 * A forward pass takes n new tokens at positions p0 .. p0 + n - 1 of a sequence as rows of
 * matrices: per layer, layernorm of the rows, qkv (n, 3C) = one matrix product, the new keys and
 * values appended to the cache, each head's n queries against the p0 + n cached keys (causal) by
 * knob_attention_block, the projection, the MLP (GELU) and the residuals, each a matrix product
 * or a row kernel of src/kernels/ shared with the training ops; then ln_f and the tied output
 * projection for the rows whose logits are wanted (the last one, or all of them when scoring).
 * A decode step is the same pass with n = 1. Logits agree with the training graph's to float
 * rounding (tests/test_lm.c).
 *
 * Memory: the weights are shared by all sequences of an lm, and so is the scratch for one pass
 * (rows up to block_size, allocated by knob_lm_new): one pass runs at a time on an lm, so its
 * sequences are used from one thread. A sequence holds its cache (n_layer, n_head, block_size,
 * head size) for keys and again for values, laid out so that a head's keys are one contiguous
 * matrix, its tokens, the last logits and the sampling scratch. Nothing is allocated per token
 * (the generated text and ids grow by doubling).
 * A pass runs over rows grouped in segments, each the next tokens of one sequence: a prefill is
 * one segment of many rows; knob_lm_decode is one row for each of several sequences, so a server's
 * decode steps share the matrix products (the weights are read once for all of them) while each
 * row attends over its own sequence's cache.
 *
 * Dropping the oldest tokens recomputes the cache from the kept ones in one pass: positions are
 * learned embeddings, so every kept key and value changes when its position does.
 *
 * Weights: f32 as given, or converted once by knob_lm_set_dtype to bf16 or int8 (knob_wmat,
 * src/kernels/matvec.c), the f32 copy then freed. A product over a few rows (a decode step) reads
 * them in place with knob_matvec, once for all the rows; over many (a prompt) knob_wmat_gemm
 * converts panels for knob_gemm. docs/GENERATION.md has the formats, accuracy and speed.
 *
 * Not here: the training graph (gpt.c), file formats (gpt_formats.c), sampling (sample.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

enum { ATT_ROWS = 32,     /* query rows per knob_attention_block call */
       LOGIT_ROWS = 64 }; /* rows of logits a pass keeps: positions when scoring, sequences when
                             decoding a batch (scratch (64, V)) */

/* Rows up to which a product reads the weights in place (knob_matvec); more go through knob_gemm.
 * bench_decode --crossover, one thread on the 2-core EPYC: in place wins up to 4 rows in f32, 8 in
 * bf16, 16 in int8 (the GEMM must first convert its panels); the GEMM from 8, 16 and 32. */
static int mv_rows(knob_wtype t) { return t == KNOB_W_F32 ? 4 : t == KNOB_W_BF16 ? 8 : 16; }

typedef struct layer_w {
    const float *ln1w, *ln1b;      // (C)
    const float *attn_b;           // (3C)
    const float *proj_b;           // (C)
    const float *ln2w, *ln2b;      // (C)
    const float *fc_b;             // (4C)
    const float *fc2_b;            // (C)
    knob_wmat attn, proj, fc, fc2; // (3C, C), (C, C), (4C, C), (C, 4C)
} layer_w;

/* the vectors of a layer (and of the model) in one list, for copying them out of P */
#define LAYER_VECS(w) {&(w)->ln1w, &(w)->ln1b, &(w)->attn_b, &(w)->proj_b, &(w)->ln2w, &(w)->ln2b, &(w)->fc_b, \
                       &(w)->fc2_b}

struct knob_lm {
    knob_gpt_config c;
    knob_params P;                          /* owned when opened from a file */
    int owns_params;
    knob_tokenizer *tok;                    /* owned; NULL for knob_lm_new without one */
    const knob_tokenizer *tok_ref;          /* tok or the caller's */
    char *tok_desc;
    int eot;
    const float *wte, *wpe, *lnfw, *lnfb;   // (V, C) f32 or NULL once converted, (T, C), (C), (C)
    knob_wmat head;                         // (V, C): wte as the output projection and the embedding rows
    layer_w *L;                             // (n_layer)
    knob_wtype wtype;                       /* storage of every matrix (head and layers) */
    float *vecs;                            /* owned copy of wpe and the vectors once converted */
    void *mv;                               /* scratch of knob_matvec / knob_wmat_gemm */
    size_t mv_bytes;
    /* scratch for one pass of up to T rows */
    float *x, *xn, *qkv, *y, *h4;           // (T, C), (T, C), (T, 3C), (T, C), (T, 4C)
    float *q, *s, *o;                       // per head: (T, HS), (ATT_ROWS, T), (ATT_ROWS, HS)
    float *lg;                              // (LOGIT_ROWS, V) logits of several rows
};

struct knob_lm_seq {
    knob_lm *lm;
    float *kc, *vc;          // (n_layer, NH, T, HS) cached keys and values
    int32_t *tokens;         // (T)
    int len;
    float *logits;           // (V) after the last token
    float *hidden;           // (C) after ln_f, last token
    int has_logits;
    float *capture;          // (L, NH, T, T) or NULL
    float *probs;            // (V) sampling scratch
    int *idx;                // (V)
    char *text;              // generated text (stream buffer)
    size_t text_len, text_cap;
    int32_t *gen;            // (gen_cap) sampled ids of the last generate
    int n_gen, gen_cap;
    knob_lm_counters count;
};

/* ------------------------------------------------------------------------------------------------
 * Weights */

static knob_status need(const knob_params *P, int layer, const char *what, int d0, int d1, const float **out,
                        knob_err *err)
{
    char name[KNOB_NAME_MAX];
    if (layer >= 0)
        snprintf(name, sizeof name, "h.%d.%s", layer, what);
    else
        snprintf(name, sizeof name, "%s", what);
    const knob_tensor *t = knob_params_find(P, name);
    if (!t)
        return knob_fail(err, KNOB_ERR_FORMAT, "gpt: parameter '%s' is missing", name);
    int n_dims = d1 ? 2 : 1;
    if (t->dtype != KNOB_F32 || t->n_dims != n_dims || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char got[64], want[64];
        knob_shape_str(got, sizeof got, t->n_dims, t->shape);
        knob_shape_str(want, sizeof want, n_dims, (int[]){d0, d1});
        return knob_fail(err, KNOB_ERR_SHAPE, "gpt: parameter '%s' is %s; the config needs %s", name, got, want);
    }
    if (!t->data)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: parameter '%s' is not allocated", name);
    *out = t->data;
    return KNOB_OK;
}

static knob_status bind_layer(layer_w *w, const knob_params *P, const knob_gpt_config *c, int l, knob_err *err)
{
    int C = c->n_embd;
    knob_status s = KNOB_OK;
    memset(w, 0, sizeof *w);
    if (!s) s = need(P, l, "ln_1.weight", C, 0, &w->ln1w, err);
    const float *aw = NULL, *pw = NULL, *fw = NULL, *f2w = NULL;
    if (!s) s = need(P, l, "attn.c_attn.weight", 3 * C, C, &aw, err);
    if (!s) s = need(P, l, "attn.c_proj.weight", C, C, &pw, err);
    if (!s) s = need(P, l, "ln_2.weight", C, 0, &w->ln2w, err);
    if (!s) s = need(P, l, "mlp.c_fc.weight", 4 * C, C, &fw, err);
    if (!s) s = need(P, l, "mlp.c_proj.weight", C, 4 * C, &f2w, err);
    if (!s) {   /* f32: borrowed, nothing allocated */
        knob_wmat_init(&w->attn, aw, 3 * C, C, KNOB_W_F32, err);
        knob_wmat_init(&w->proj, pw, C, C, KNOB_W_F32, err);
        knob_wmat_init(&w->fc, fw, 4 * C, C, KNOB_W_F32, err);
        knob_wmat_init(&w->fc2, f2w, C, 4 * C, KNOB_W_F32, err);
    }
    if (c->bias) {
        if (!s) s = need(P, l, "ln_1.bias", C, 0, &w->ln1b, err);
        if (!s) s = need(P, l, "attn.c_attn.bias", 3 * C, 0, &w->attn_b, err);
        if (!s) s = need(P, l, "attn.c_proj.bias", C, 0, &w->proj_b, err);
        if (!s) s = need(P, l, "ln_2.bias", C, 0, &w->ln2b, err);
        if (!s) s = need(P, l, "mlp.c_fc.bias", 4 * C, 0, &w->fc_b, err);
        if (!s) s = need(P, l, "mlp.c_proj.bias", C, 0, &w->fc2_b, err);
    }
    return s;
}

/* binds lm->P's tensors and allocates the pass scratch */
static knob_status lm_setup(knob_lm *m, const knob_params *P, knob_err *err)
{
    const knob_gpt_config *c = &m->c;
    knob_status s = knob_gpt_config_check(c, err);
    int C = c->n_embd, T = c->block_size, V = c->vocab_size, NH = c->n_head, HS = C / NH;
    if (!s) s = need(P, -1, "wte.weight", V, C, &m->wte, err);
    if (!s) s = need(P, -1, "wpe.weight", T, C, &m->wpe, err);
    if (!s) s = need(P, -1, "ln_f.weight", C, 0, &m->lnfw, err);
    if (!s && c->bias) s = need(P, -1, "ln_f.bias", C, 0, &m->lnfb, err);
    if (!s) knob_wmat_init(&m->head, m->wte, V, C, KNOB_W_F32, err);
    if (!s && !(m->L = knob_calloc((size_t)c->n_layer, sizeof *m->L)))
        s = knob_fail(err, KNOB_ERR_NOMEM, "gpt: out of memory");
    for (int l = 0; !s && l < c->n_layer; l++)
        s = bind_layer(&m->L[l], P, c, l, err);
    if (s)
        return s;
    size_t TC = (size_t)T * (size_t)C;
    size_t n = 10 * TC + TC + (size_t)NH * ATT_ROWS * ((size_t)T + (size_t)HS) + (size_t)LOGIT_ROWS * (size_t)V;
    if (!(m->x = knob_malloc(n * sizeof(float))))
        return knob_fail(err, KNOB_ERR_NOMEM, "gpt: cannot allocate %zu floats of scratch for a pass of %d tokens", n,
                         T);
    m->xn = m->x + TC;
    m->qkv = m->xn + TC;
    m->y = m->qkv + 3 * TC;
    m->h4 = m->y + TC;
    m->q = m->h4 + 4 * TC;
    m->s = m->q + TC;
    m->o = m->s + (size_t)NH * ATT_ROWS * (size_t)T;
    m->lg = m->o + (size_t)NH * ATT_ROWS * (size_t)HS;
    return KNOB_OK;
}

/* The matrices as one list: i = 0 the head, then four a layer; n_mats of them. */
static int n_mats(const knob_lm *m) { return 1 + 4 * m->c.n_layer; }
static knob_wmat *mat(knob_lm *m, int i)
{
    if (i == 0)
        return &m->head;
    layer_w *w = &m->L[(i - 1) / 4];
    knob_wmat *const four[4] = {&w->attn, &w->proj, &w->fc, &w->fc2};
    return four[(i - 1) % 4];
}

void knob_lm_free(knob_lm *m)
{
    if (!m)
        return;
    for (int i = 0; m->L && i < n_mats(m); i++)
        knob_wmat_free(mat(m, i));
    knob_free(m->vecs);
    knob_free(m->mv);
    knob_free(m->L);
    knob_free(m->x);
    knob_tok_free(m->tok);
    knob_free(m->tok_desc);
    if (m->owns_params)
        knob_params_free(&m->P);
    knob_free(m);
}

knob_status knob_lm_new(knob_lm **out, const knob_params *P, const knob_gpt_config *c, const knob_tokenizer *tok,
                        knob_err *err)
{
    *out = NULL;
    knob_lm *m = knob_calloc(1, sizeof *m);
    if (!m)
        return knob_fail(err, KNOB_ERR_NOMEM, "gpt: out of memory");
    m->c = *c;
    m->tok_ref = tok;
    m->eot = tok ? knob_tok_eot(tok) : -1;
    knob_status s = lm_setup(m, P, err);
    if (s) {
        knob_lm_free(m);
        return s;
    }
    *out = m;
    return KNOB_OK;
}

knob_status knob_lm_open(knob_lm **out, const char *path, knob_err *err)
{
    *out = NULL;
    knob_lm *m = knob_calloc(1, sizeof *m);
    if (!m)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    knob_params_init(&m->P);
    m->owns_params = 1;
    knob_status s = knob_gpt_open(path, &m->P, &m->c, &m->tok_desc, NULL, err);
    if (!s && (!m->tok_desc || !m->tok_desc[0]))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: the model does not name its tokenizer", path);
    if (!s)
        s = knob_tok_from_desc(&m->tok, m->tok_desc, err);
    if (!s && knob_tok_vocab_size(m->tok) > m->c.vocab_size)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: its tokenizer (%.32s%s) has %d ids but the model's vocabulary only %d; "
                      "store one that fits with knob convert MODEL OUT --tokenizer DESC (a Hugging Face folder "
                      "without knob.tokenizer metadata is read as GPT-2's)", path, m->tok_desc,
                      strlen(m->tok_desc) > 32 ? "..." : "",
                      knob_tok_vocab_size(m->tok), m->c.vocab_size);
    if (!s && (s = lm_setup(m, &m->P, err)) != KNOB_OK)
        knob_err_prefix(err, "%s", path);
    if (s) {
        knob_lm_free(m);
        return s;
    }
    m->tok_ref = m->tok;
    m->eot = knob_tok_eot(m->tok);
    *out = m;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Storage of the weights: f32 as given, or converted once to bf16 or int8. Conversion is all or
 * nothing: the new matrices, the copy of the vectors and the scratch are made before anything is
 * dropped, so a failure leaves the lm as it was. */

static const char *const dtype_names[] = {"f32", "bf16", "int8"};

const char *knob_lm_dtype_name(knob_lm_dtype d)
{
    return d >= KNOB_LM_F32 && d <= KNOB_LM_INT8 ? dtype_names[d] : "?";
}

knob_status knob_lm_dtype_parse(const char *s, knob_lm_dtype *d, knob_err *err)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *d = (knob_lm_dtype)i;
            return KNOB_OK;
        }
    return knob_fail(err, KNOB_ERR_USAGE, "dtype '%.32s' is not one of f32, bf16, int8", s);
}

knob_lm_dtype knob_lm_get_dtype(const knob_lm *m) { return (knob_lm_dtype)m->wtype; }

size_t knob_lm_weight_bytes(const knob_lm *m)
{
    size_t n = 0;
    for (int i = 0; i < n_mats(m); i++)
        n += knob_wmat_bytes(mat((knob_lm *)m, i));
    return n;
}

const char *knob_lm_kernel(const knob_lm *m)
{
    /* the kernel knob_matvec really runs for this storage (src/kernels/matvec.c chooses it) */
    static _Thread_local char buf[48];
    const char *k = knob_matvec_kernel_for(m->wtype);
    const char *what = m->wtype == KNOB_W_F32    ? "f32"
                       : m->wtype == KNOB_W_BF16 ? "bf16->f32"
                       : knob_matvec_q8_act()    ? "q8 x q8"
                                                 : "q8->f32";
    snprintf(buf, sizeof buf, "%s %s", what, k);
    return buf;
}

/* bytes of scratch the products over W need: up to LOGIT_ROWS rows in place, block_size by panels */
static size_t scratch_need(const knob_wmat *W, int T)
{
    return KNOB_MAX(knob_matvec_scratch(W, LOGIT_ROWS), knob_wmat_gemm_scratch(W, T));
}

knob_status knob_lm_set_dtype(knob_lm *m, knob_lm_dtype d, knob_err *err)
{
    if (d < KNOB_LM_F32 || d > KNOB_LM_INT8)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: dtype %d is not one of f32, bf16, int8", (int)d);
    if ((int)d == (int)m->wtype)
        return KNOB_OK;
    if (m->wtype != KNOB_W_F32)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: the weights are %s already; they convert once, from f32 (open the "
                         "model again)", dtype_names[m->wtype]);
    const knob_gpt_config *c = &m->c;
    int C = c->n_embd, L = c->n_layer, nm = n_mats(m);
    knob_wmat *W = knob_calloc((size_t)nm, sizeof *W);
    size_t n_vecs = (size_t)c->block_size * (size_t)C + 2 * (size_t)C + (size_t)L * 13 * (size_t)C;
    float *vecs = knob_malloc(n_vecs * sizeof *vecs);
    knob_status s = W && vecs ? KNOB_OK : knob_fail(err, KNOB_ERR_NOMEM, "gpt: out of memory converting to %s",
                                                   dtype_names[d]);
    size_t need = 0;
    for (int i = 0; !s && i < nm; i++) {
        const knob_wmat *F = mat(m, i);
        s = knob_wmat_init(&W[i], F->f, F->N, F->K, (knob_wtype)d, err);
        need = KNOB_MAX(need, scratch_need(&W[i], c->block_size));
    }
    void *mv = NULL;
    if (!s && need > m->mv_bytes && !(mv = knob_malloc(need)))
        s = knob_fail(err, KNOB_ERR_NOMEM, "gpt: cannot allocate %zu bytes of scratch for %s weights", need,
                      dtype_names[d]);
    if (s) {
        for (int i = 0; W && i < nm; i++)
            knob_wmat_free(&W[i]);
        knob_free(W);
        knob_free(vecs);
        return s;
    }
    /* from here nothing fails */
    if (mv) {
        knob_free(m->mv);
        m->mv = mv;
        m->mv_bytes = need;
    }
    for (int i = 0; i < nm; i++)
        *mat(m, i) = W[i];   /* the f32 ones borrowed P's floats: nothing to free */
    knob_free(W);
    m->wtype = (knob_wtype)d;
    /* wpe and the vectors move into vecs, so nothing points into P any more */
    float *at = vecs;
    const float **top[3] = {&m->wpe, &m->lnfw, &m->lnfb};
    size_t top_n[3] = {(size_t)c->block_size * (size_t)C, (size_t)C, (size_t)C};
    for (int i = 0; i < 3; i++)
        if (*top[i]) {
            memcpy(at, *top[i], top_n[i] * sizeof *at);
            *top[i] = at;
            at += top_n[i];
        }
    for (int l = 0; l < L; l++) {
        layer_w *w = &m->L[l];
        const float **v[8] = LAYER_VECS(w);
        size_t len[8] = {(size_t)C, (size_t)C, 3 * (size_t)C, (size_t)C, (size_t)C, (size_t)C, 4 * (size_t)C,
                         (size_t)C};
        for (int i = 0; i < 8; i++)
            if (*v[i]) {
                memcpy(at, *v[i], len[i] * sizeof *at);
                *v[i] = at;
                at += len[i];
            }
    }
    knob_free(m->vecs);
    m->vecs = vecs;
    m->wte = NULL;
    if (m->owns_params) {   /* the f32 copy goes: memory halves (bf16) or more (int8) */
        knob_params_free(&m->P);
        m->owns_params = 0;
    }
    return KNOB_OK;
}

knob_status knob_lm_open_as(knob_lm **out, const char *path, knob_lm_dtype d, knob_err *err)
{
    knob_status s = knob_lm_open(out, path, err);
    if (!s && (s = knob_lm_set_dtype(*out, d, err)) != KNOB_OK) {
        knob_err_prefix(err, "%s", path);
        knob_lm_free(*out);
        *out = NULL;
    }
    return s;
}

const knob_gpt_config *knob_lm_config(const knob_lm *m) { return &m->c; }
const knob_tokenizer *knob_lm_tokenizer(const knob_lm *m) { return m->tok_ref; }
const char *knob_lm_tok_desc(const knob_lm *m) { return m->tok_desc; }
const float *knob_lm_wte(const knob_lm *m) { return m->wte; }
int knob_lm_eot(const knob_lm *m) { return m->eot; }

knob_status knob_lm_encode(const knob_lm *m, const char *text, size_t n, int allow_special, int32_t **ids,
                           size_t *n_ids, knob_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (!m->tok_ref)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: the model has no tokenizer");
    knob_status s = knob_tok_encode(m->tok_ref, text, n, allow_special, ids, n_ids, err);
    for (size_t i = 0; !s && i < *n_ids; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= m->c.vocab_size) {
            s = knob_fail(err, KNOB_ERR_USAGE, "'%.64s' has token %d, outside the model's vocabulary of %d", text,
                          (int)(*ids)[i], m->c.vocab_size);
            knob_free(*ids);
            *ids = NULL;
            *n_ids = 0;
        }
    return s;
}

knob_status knob_lm_start_token(const knob_lm *m, int32_t *tok, knob_err *err)
{
    if (m->eot >= 0) {
        *tok = m->eot;
        return KNOB_OK;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    knob_status s = m->tok_ref ? knob_tok_encode(m->tok_ref, "\n", 1, 0, &ids, &n, err) : KNOB_ERR_USAGE;
    if (s || n != 1 || ids[0] >= m->c.vocab_size) {
        knob_free(ids);
        return knob_fail(err, KNOB_ERR_USAGE, "the prompt is empty and the tokenizer has neither <|endoftext|> nor a "
                         "newline token; give --prompt TEXT");
    }
    *tok = ids[0];
    knob_free(ids);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Sequences */

void knob_lm_seq_free(knob_lm_seq *q)
{
    if (!q)
        return;
    knob_free(q->kc);
    knob_free(q->vc);
    knob_free(q->tokens);
    knob_free(q->logits);
    knob_free(q->probs);
    knob_free(q->idx);
    knob_free(q->text);
    knob_free(q->gen);
    knob_free(q);
}

knob_status knob_lm_seq_new(knob_lm *m, knob_lm_seq **out, knob_err *err)
{
    *out = NULL;
    const knob_gpt_config *c = &m->c;
    int C = c->n_embd, T = c->block_size, V = c->vocab_size;
    size_t cache = (size_t)c->n_layer * (size_t)T * (size_t)C;
    knob_lm_seq *q = knob_calloc(1, sizeof *q);
    if (!q)
        return knob_fail(err, KNOB_ERR_NOMEM, "gpt: out of memory");
    q->lm = m;
    q->kc = knob_malloc(cache * sizeof(float));
    q->vc = knob_malloc(cache * sizeof(float));
    q->tokens = knob_malloc((size_t)T * sizeof *q->tokens);
    q->logits = knob_malloc((size_t)(V + C) * sizeof(float));
    q->probs = knob_malloc((size_t)V * sizeof *q->probs);
    q->idx = knob_malloc((size_t)V * sizeof *q->idx);
    if (!q->kc || !q->vc || !q->tokens || !q->logits || !q->probs || !q->idx) {
        knob_lm_seq_free(q);
        return knob_fail(err, KNOB_ERR_NOMEM, "gpt: cannot allocate the key/value cache (%zu floats)", 2 * cache);
    }
    q->hidden = q->logits + V;
    *out = q;
    return KNOB_OK;
}

void knob_lm_seq_reset(knob_lm_seq *q)
{
    q->len = 0;
    q->has_logits = 0;
}

int knob_lm_seq_len(const knob_lm_seq *q) { return q->len; }
const int32_t *knob_lm_seq_tokens(const knob_lm_seq *q) { return q->tokens; }
const float *knob_lm_logits(const knob_lm_seq *q) { return q->has_logits ? q->logits : NULL; }
const float *knob_lm_hidden(const knob_lm_seq *q) { return q->has_logits ? q->hidden : NULL; }
void knob_lm_capture_attention(knob_lm_seq *q, float *buf) { q->capture = buf; }
knob_lm_counters knob_lm_seq_counters(const knob_lm_seq *q) { return q->count; }

/* ------------------------------------------------------------------------------------------------
 * One pass */

/* y (n, N) = x (n, K) @ W^T + b, W (N, K): a few rows read W in place, once (a decode step: the
 * memory's speed), more go through the GEMM (a prompt: the flops' speed). */
static void linear(knob_lm *m, float *y, const float *x, const knob_wmat *W, const float *b, int n)
{
    if (n <= mv_rows(W->type))
        knob_matvec(y, x, W, b, n, m->mv);
    else
        knob_wmat_gemm(y, x, W, b, n, m->mv);
}

/* A pass runs over rows: segments of consecutive rows, each the next tokens of one sequence (a
 * prefill is one segment; a batch of decode steps is one row for each of several sequences). */
typedef struct seg {
    knob_lm_seq *q;
    const int32_t *ids;   // (n)
    int n, row, p0;       /* rows row .. row + n - 1 are positions p0 .. p0 + n - 1 of q */
} seg;

/* Layer l's attention for every segment's rows, whose keys and values are already in their
 * caches: m->y (rows, C). Heads are independent (each writes its own columns of y and uses its own
 * scratch), so they split over threads when there is enough work (a prefill, not a decode step: a
 * parallel region costs more than one row of attention); each head's sums are one thread's, in a
 * fixed order. */
typedef struct {
    knob_lm *m;
    int l, n_seg;
    const seg *sg;
} attend_task;

static void attend_heads(void *ctx, long h_lo, long h_hi)
{
    const attend_task *t = ctx;
    knob_lm *m = t->m;
    const seg *sg = t->sg;
    int l = t->l, n_seg = t->n_seg;
    const knob_gpt_config *c = &m->c;
    int C = c->n_embd, NH = c->n_head, HS = C / NH, T = c->block_size;
    float scale = 1.0f / sqrtf((float)HS);
    size_t C3 = 3 * (size_t)C;
    for (int h = (int)h_lo; h < (int)h_hi; h++) {
        float *Q = m->q + (size_t)h * T * HS;                    // (rows, HS)
        float *S = m->s + (size_t)h * ATT_ROWS * T;              // (ATT_ROWS, T)
        float *O = m->o + (size_t)h * ATT_ROWS * HS;             // (ATT_ROWS, HS)
        size_t lh = (size_t)l * NH + (size_t)h;
        for (int g = 0; g < n_seg; g++) {
            const seg *e = &sg[g];
            const float *K = e->q->kc + lh * (size_t)T * HS, *V = e->q->vc + lh * (size_t)T * HS;   // (T, HS)
            float *Qg = Q + (size_t)e->row * HS;                 // (n, HS)
            for (int i = 0; i < e->n; i++)
                memcpy(Qg + (size_t)i * HS, m->qkv + (size_t)(e->row + i) * C3 + (size_t)h * HS,
                       (size_t)HS * sizeof(float));
            for (int r0 = 0; r0 < e->n; r0 += ATT_ROWS) {
                int R = KNOB_MIN(ATT_ROWS, e->n - r0), nk = e->p0 + r0 + R;
                knob_attention_block(O, S, Qg + (size_t)r0 * HS, K, V, R, nk, e->p0 + r0, HS, scale);
                for (int i = 0; i < R; i++)
                    memcpy(m->y + (size_t)(e->row + r0 + i) * C + (size_t)h * HS, O + (size_t)i * HS,
                           (size_t)HS * sizeof(float));
                if (e->q->capture)
                    for (int i = 0; i < R; i++) {
                        float *row = e->q->capture + (lh * (size_t)T + (size_t)(e->p0 + r0 + i)) * (size_t)T;   // (T)
                        memcpy(row, S + (size_t)i * nk, (size_t)nk * sizeof(float));
                        memset(row + nk, 0, (size_t)(T - nk) * sizeof(float));
                    }
            }
        }
    }
}

static void attend(knob_lm *m, int l, const seg *sg, int n_seg)
{
    int NH = m->c.n_head;
    double work = 0;
    for (int g = 0; g < n_seg; g++)
        work += (double)sg[g].n * (sg[g].p0 + sg[g].n) * m->c.n_embd;
    attend_task t = {m, l, n_seg, sg};
    if (NH > 1 && work >= 64.0 * KNOB_PAR_MIN)
        knob_parallel_for(NH, 1, attend_heads, &t);
    else
        attend_heads(&t, 0, NH);
}

/* One pass over the segments (rows in all <= block_size, each fitting its sequence's context, ids
 * in range, at most LOGIT_ROWS segments). Each sequence gets the logits of its last position in
 * q->logits; with rows not NULL (one segment, n <= LOGIT_ROWS) every position's go to rows (n, V). */
static void forward_rows(knob_lm *m, seg *sg, int n_seg, float *rows)
{
    const knob_gpt_config *c = &m->c;
    int C = c->n_embd, T = c->block_size, V = c->vocab_size, NH = c->n_head, HS = C / NH, N = 0;
    size_t C3 = 3 * (size_t)C;
    for (int g = 0; g < n_seg; g++) {
        sg[g].row = N;
        sg[g].p0 = sg[g].q->len;
        N += sg[g].n;
        for (int i = 0; i < sg[g].n; i++) {
            const float *pe = m->wpe + (size_t)(sg[g].p0 + i) * C;
            float *x = m->x + (size_t)(sg[g].row + i) * C;
            knob_wmat_rows(&m->head, sg[g].ids[i], 1, x);   /* the token's embedding */
            for (int k = 0; k < C; k++)
                x[k] += pe[k];
        }
    }
    for (int l = 0; l < c->n_layer; l++) {
        const layer_w *w = &m->L[l];
        knob_layernorm_forward(m->xn, NULL, m->x, w->ln1w, w->ln1b, N, C);
        linear(m, m->qkv, m->xn, &w->attn, w->attn_b, N);
        for (int g = 0; g < n_seg; g++)
            for (int i = 0; i < sg[g].n; i++)
                for (int h = 0; h < NH; h++) {
                    size_t at = (((size_t)l * NH + (size_t)h) * (size_t)T + (size_t)(sg[g].p0 + i)) * (size_t)HS;
                    const float *src = m->qkv + (size_t)(sg[g].row + i) * C3 + (size_t)h * HS;
                    memcpy(sg[g].q->kc + at, src + C, (size_t)HS * sizeof(float));
                    memcpy(sg[g].q->vc + at, src + 2 * (size_t)C, (size_t)HS * sizeof(float));
                }
        attend(m, l, sg, n_seg);
        linear(m, m->xn, m->y, &w->proj, w->proj_b, N);
        for (size_t k = 0; k < (size_t)N * C; k++)
            m->x[k] += m->xn[k];
        knob_layernorm_forward(m->xn, NULL, m->x, w->ln2w, w->ln2b, N, C);
        linear(m, m->h4, m->xn, &w->fc, w->fc_b, N);
        knob_gelu_forward(m->h4, m->h4, (long)N * 4 * C);
        linear(m, m->xn, m->h4, &w->fc2, w->fc2_b, N);
        for (size_t k = 0; k < (size_t)N * C; k++)
            m->x[k] += m->xn[k];
    }
    if (rows) {   /* one segment, every position */
        knob_lm_seq *q = sg[0].q;
        knob_layernorm_forward(m->xn, NULL, m->x, m->lnfw, m->lnfb, N, C);
        linear(m, rows, m->xn, &m->head, NULL, N);
        memcpy(q->hidden, m->xn + (size_t)(N - 1) * C, (size_t)C * sizeof(float));
        memcpy(q->logits, rows + (size_t)(N - 1) * V, (size_t)V * sizeof(float));
    } else if (n_seg == 1) {
        knob_lm_seq *q = sg[0].q;
        knob_layernorm_forward(q->hidden, NULL, m->x + (size_t)(N - 1) * C, m->lnfw, m->lnfb, 1, C);
        linear(m, q->logits, q->hidden, &m->head, NULL, 1);
    } else {      /* each segment's last row, as one (n_seg, V) product */
        for (int g = 0; g < n_seg; g++)
            knob_layernorm_forward(m->xn + (size_t)g * C, NULL, m->x + (size_t)(sg[g].row + sg[g].n - 1) * C, m->lnfw,
                                   m->lnfb, 1, C);
        linear(m, m->lg, m->xn, &m->head, NULL, n_seg);
        for (int g = 0; g < n_seg; g++) {
            memcpy(sg[g].q->hidden, m->xn + (size_t)g * C, (size_t)C * sizeof(float));
            memcpy(sg[g].q->logits, m->lg + (size_t)g * V, (size_t)V * sizeof(float));
        }
    }
    for (int g = 0; g < n_seg; g++) {
        knob_lm_seq *q = sg[g].q;
        memmove(q->tokens + sg[g].p0, sg[g].ids, (size_t)sg[g].n * sizeof *sg[g].ids);
        q->len = sg[g].p0 + sg[g].n;
        q->has_logits = 1;
        q->count.tokens_fed += (uint64_t)sg[g].n;
        q->count.prefill_passes++;
    }
}

/* One sequence's next n tokens in one pass */
static void forward(knob_lm_seq *q, const int32_t *ids, int n, float *rows)
{
    seg one = {.q = q, .ids = ids, .n = n};
    forward_rows(q->lm, &one, 1, rows);
}

static knob_status check_ids(const knob_lm_seq *q, const int32_t *ids, size_t n, knob_err *err)
{
    int V = q->lm->c.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return knob_fail(err, KNOB_ERR_USAGE, "gpt: token %d is out of range [0, %d)", (int)ids[i], V);
    return KNOB_OK;
}

knob_status knob_lm_feed(knob_lm_seq *q, const int32_t *ids, size_t n, knob_err *err)
{
    int T = q->lm->c.block_size;
    if (n > (size_t)(T - q->len))
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: the context is full (%d tokens, the block size); drop some first",
                         T);
    knob_status s = check_ids(q, ids, n, err);
    if (!s && n > 0)
        forward(q, ids, (int)n, NULL);
    return s;
}

knob_status knob_lm_decode(knob_lm_seq *const *qs, const int32_t *tokens, int n, knob_err *err)
{
    if (n <= 0)
        return KNOB_OK;
    knob_lm *m = qs[0]->lm;
    for (int i = 0; i < n; i++) {
        if (qs[i]->lm != m)
            return knob_fail(err, KNOB_ERR_USAGE, "gpt: decode: sequence %d belongs to another model", i);
        for (int j = 0; j < i; j++)
            if (qs[j] == qs[i])
                return knob_fail(err, KNOB_ERR_USAGE, "gpt: decode: sequence %d appears twice", i);
        if (qs[i]->len >= m->c.block_size)
            return knob_fail(err, KNOB_ERR_USAGE, "gpt: decode: sequence %d: the context is full (%d tokens, the "
                             "block size); drop some first", i, m->c.block_size);
        knob_status s = check_ids(qs[i], tokens + i, 1, err);
        if (s)
            return s;
    }
    seg sg[LOGIT_ROWS];
    int per_pass = KNOB_MIN(LOGIT_ROWS, m->c.block_size);   /* rows of scratch: block_size */
    for (int i0 = 0; i0 < n; i0 += per_pass) {
        int k = KNOB_MIN(per_pass, n - i0);
        for (int g = 0; g < k; g++)
            sg[g] = (seg){.q = qs[i0 + g], .ids = tokens + i0 + g, .n = 1};
        forward_rows(m, sg, k, NULL);
    }
    return KNOB_OK;
}

/* The cache's tokens [k, len) then ids [0, n), all in one pass from position 0 (k <= len). */
static void refeed(knob_lm_seq *q, int k, const int32_t *ids, size_t n)
{
    int keep = q->len - k;
    memmove(q->tokens, q->tokens + k, (size_t)keep * sizeof *q->tokens);
    if (n > 0)
        memcpy(q->tokens + keep, ids, n * sizeof *ids);
    int total = keep + (int)n;
    q->len = 0;
    q->has_logits = 0;
    if (total > 0)
        forward(q, q->tokens, total, NULL);   /* forward reads its ids before writing them back in place */
}

knob_status knob_lm_drop(knob_lm_seq *q, int k, knob_err *err)
{
    if (k < 0 || k > q->len)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: cannot drop %d of %d tokens", k, q->len);
    refeed(q, k, NULL, 0);
    return KNOB_OK;
}

knob_status knob_lm_feed_tail(knob_lm_seq *q, const int32_t *ids, size_t n, knob_err *err)
{
    size_t T = (size_t)q->lm->c.block_size, room = T - (size_t)q->len;
    knob_status s = check_ids(q, ids, n, err);
    if (s || n == 0)
        return s;
    if (n <= room) {
        forward(q, ids, (int)n, NULL);
        return KNOB_OK;
    }
    if (n >= T) {
        q->len = 0;
        refeed(q, 0, ids + (n - T), T);
    } else {
        refeed(q, (int)(n - room), ids, n);
    }
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Scoring */

knob_status knob_lm_nll(knob_lm_seq *q, const int32_t *ids, size_t n, double *nll, knob_err *err)
{
    *nll = 0;
    if (n < 2)
        return KNOB_OK;
    knob_status s = check_ids(q, ids, n, err);
    if (s)
        return s;
    int T = q->lm->c.block_size, V = q->lm->c.vocab_size;
    float *rows = q->lm->lg;   // (LOGIT_ROWS, V)
    knob_lm_seq_reset(q);
    double sum = 0;
    /* position f predicts ids[f + 1]; a full context drops its older half first */
    for (size_t f = 0; f + 1 < n;) {
        if (q->len == T)
            refeed(q, KNOB_MAX(1, T / 2), NULL, 0);
        int chunk = (int)KNOB_MIN((size_t)KNOB_MIN(T - q->len, LOGIT_ROWS), n - 1 - f);
        forward(q, ids + f, chunk, rows);
        for (int j = 0; j < chunk; j++)
            sum += knob_nll_row(rows + (size_t)j * V, (size_t)V, ids[f + (size_t)j + 1]);
        f += (size_t)chunk;
    }
    *nll = sum;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Generation with streaming: the text is kept in q->text; what can no longer change (not a
 * possible start of the stop string, no partial UTF-8 character) goes to the callback. */

typedef struct stream {
    knob_lm_seq *q;
    size_t printed;
    const knob_lm_gen *g;
    size_t stop_len;
} stream;

static int text_put(knob_lm_seq *q, const char *p, size_t n)
{
    if (q->text_len + n + 1 > q->text_cap) {
        size_t c = q->text_cap ? 2 * q->text_cap : 256;
        while (c < q->text_len + n + 1)
            c *= 2;
        char *b = knob_realloc(q->text, c);
        if (!b)
            return 0;
        q->text = b;
        q->text_cap = c;
    }
    memcpy(q->text + q->text_len, p, n);
    q->text_len += n;
    q->text[q->text_len] = '\0';
    return 1;
}

static long find(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; m && i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return (long)i;
    return -1;
}

static void stream_flush(stream *st, int final)
{
    knob_lm_seq *q = st->q;
    if (!st->g->emit)
        return;
    size_t safe = q->text_len;
    if (!final && st->stop_len) {
        size_t hold = st->stop_len - 1;
        safe = q->text_len > hold ? q->text_len - hold : 0;
    }
    if (safe <= st->printed)
        return;
    size_t n = final ? safe - st->printed : knob_utf8_complete(q->text + st->printed, safe - st->printed);
    if (n)
        st->g->emit(st->g->ud, q->text + st->printed, n);
    st->printed += n;
}

static int gen_push(knob_lm_seq *q, int32_t tok)
{
    if (q->n_gen == q->gen_cap) {
        int c = q->gen_cap ? 2 * q->gen_cap : 64;
        int32_t *b = knob_realloc(q->gen, (size_t)c * sizeof *b);
        if (!b)
            return 0;
        q->gen = b;
        q->gen_cap = c;
    }
    q->gen[q->n_gen++] = tok;
    return 1;
}

knob_status knob_lm_generate(knob_lm_seq *q, const knob_lm_gen *g, knob_lm_gen_result *res, knob_err *err)
{
    knob_lm *m = q->lm;
    int V = m->c.vocab_size, T = m->c.block_size;
    memset(res, 0, sizeof *res);
    res->finish = "length";
    q->text_len = 0;
    q->n_gen = 0;
    if (!q->has_logits)
        return knob_fail(err, KNOB_ERR_USAGE, "generate: nothing fed yet; feed a prompt (or a start token) first");
    if (!m->tok_ref)
        return knob_fail(err, KNOB_ERR_USAGE, "generate: the model has no tokenizer");
    stream st = {.q = q, .g = g, .stop_len = g->stop ? strlen(g->stop) : 0};
    if (!text_put(q, "", 0))
        return knob_fail(err, KNOB_ERR_NOMEM, "generate: out of memory");
    while (q->n_gen < g->max_tokens) {
        int tok = knob_sample(q->logits, V, &g->sampler, g->rng, q->probs, q->idx);
        if (tok == m->eot) {
            res->finish = "eot";
            break;
        }
        size_t n;
        const char *piece = knob_tok_piece(m->tok_ref, tok, &n);
        if (!piece)
            piece = "", n = 0;   /* an id of the padded vocabulary: nothing to print */
        size_t before = q->text_len;
        if (!text_put(q, piece, n) || !gen_push(q, tok))
            return knob_fail(err, KNOB_ERR_NOMEM, "generate: out of memory");
        if (st.stop_len) {
            size_t from = before >= st.stop_len ? before - st.stop_len + 1 : 0;
            long at = find(q->text + from, q->text_len - from, g->stop, st.stop_len);
            if (at >= 0) {
                q->text_len = from + (size_t)at;
                q->text[q->text_len] = '\0';
                res->finish = "stop";
                break;
            }
        }
        stream_flush(&st, 0);
        if (q->n_gen == g->max_tokens)
            break;
        if (q->len == T)
            refeed(q, KNOB_MAX(1, T / 2), NULL, 0);
        int32_t t32 = tok;
        forward(q, &t32, 1, NULL);
    }
    stream_flush(&st, 1);
    res->text = q->text;
    res->len = q->text_len;
    res->ids = q->gen;
    res->n_tokens = q->n_gen;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Chat: the transcript as token ids, turn by turn; the cache holds a prefix of it, so a turn feeds
 * only what the cache lacks: the previous reply's last token (sampled, never fed) and the new
 * turn. Trimming the oldest turns shifts every position, so the cache is rebuilt then. */

/* Walk back from the newest turn while the turns still fit: the kept ones are a suffix. */
int knob_chat_trim(const int *turn_len, int n, int budget, int *skip)
{
    *skip = 0;
    if (n <= 0)
        return 0;
    int first = n - 1;
    long sum = turn_len[first];
    if (sum > budget) {
        *skip = (int)(sum - KNOB_MAX(budget, 0));
        return first;
    }
    while (first > 0 && sum + turn_len[first - 1] <= budget)
        sum += turn_len[--first];
    return first;
}

struct knob_lm_chat {
    knob_lm_seq *q;
    int max_tokens;      /* per reply; the transcript keeps to block_size - max_tokens */
    int32_t *tok;        /* all turns' tokens, oldest first */
    size_t n, cap;
    int *len;            /* (n_turns) */
    int n_turns, cap_turns;
};

knob_status knob_lm_chat_new(knob_lm *m, int max_tokens, knob_lm_chat **out, knob_err *err)
{
    *out = NULL;
    int T = m->c.block_size;
    if (max_tokens < 1 || max_tokens >= T)
        return knob_fail(err, KNOB_ERR_USAGE, "chat: %d tokens a reply leaves no room for the conversation in a "
                         "context of %d tokens", max_tokens, T);
    knob_lm_chat *c = knob_calloc(1, sizeof *c);
    if (!c)
        return knob_fail(err, KNOB_ERR_NOMEM, "chat: out of memory");
    knob_status s = knob_lm_seq_new(m, &c->q, err);
    if (s) {
        knob_free(c);
        return s;
    }
    c->max_tokens = max_tokens;
    *out = c;
    return KNOB_OK;
}

void knob_lm_chat_free(knob_lm_chat *c)
{
    if (!c)
        return;
    knob_lm_seq_free(c->q);
    knob_free(c->tok);
    knob_free(c->len);
    knob_free(c);
}

void knob_lm_chat_reset(knob_lm_chat *c)
{
    c->n = 0;
    c->n_turns = 0;
    knob_lm_seq_reset(c->q);
}

knob_lm_seq *knob_lm_chat_seq(knob_lm_chat *c) { return c->q; }

const int32_t *knob_lm_chat_history(const knob_lm_chat *c, size_t *n)
{
    *n = c->n;
    return c->tok;
}

static int turns_add(knob_lm_chat *h, const int32_t *ids, size_t n, int new_turn)
{
    if (h->n + n > h->cap) {
        size_t c = h->cap ? 2 * h->cap : 1024;
        while (c < h->n + n)
            c *= 2;
        int32_t *t = knob_realloc(h->tok, c * sizeof *t);
        if (!t)
            return 0;
        h->tok = t;
        h->cap = c;
    }
    if (new_turn) {
        if (h->n_turns == h->cap_turns) {
            int c = h->cap_turns ? 2 * h->cap_turns : 64;
            int *l = knob_realloc(h->len, (size_t)c * sizeof *l);
            if (!l)
                return 0;
            h->len = l;
            h->cap_turns = c;
        }
        h->len[h->n_turns++] = 0;
    }
    if (n)
        memcpy(h->tok + h->n, ids, n * sizeof *ids);
    h->n += n;
    h->len[h->n_turns - 1] += (int)n;
    return 1;
}

/* Drops the oldest turns (and, if the newest alone is too long, its first tokens) so that the rest
 * fits in the budget. */
static void turns_trim(knob_lm_chat *h)
{
    int budget = h->q->lm->c.block_size - h->max_tokens;
    int skip, first = knob_chat_trim(h->len, h->n_turns, budget, &skip);
    if (first == 0 && skip == 0)
        return;
    size_t drop = (size_t)skip;
    for (int i = 0; i < first; i++)
        drop += (size_t)h->len[i];
    memmove(h->tok, h->tok + drop, (h->n - drop) * sizeof *h->tok);
    h->n -= drop;
    memmove(h->len, h->len + first, (size_t)(h->n_turns - first) * sizeof *h->len);
    h->n_turns -= first;
    h->len[0] -= skip;
}

knob_status knob_lm_chat_add(knob_lm_chat *c, const char *text, knob_err *err)
{
    int32_t *ids;
    size_t n;
    knob_status s = knob_lm_encode(c->q->lm, text, strlen(text), 0, &ids, &n, err);
    if (s)
        return s;
    int ok = turns_add(c, ids, n, 1);
    knob_free(ids);
    if (!ok)
        return knob_fail(err, KNOB_ERR_NOMEM, "chat: out of memory");
    turns_trim(c);
    return KNOB_OK;
}

knob_status knob_lm_chat_reply(knob_lm_chat *c, const knob_lm_gen *g, knob_lm_gen_result *res, knob_err *err)
{
    knob_lm_seq *q = c->q;
    memset(res, 0, sizeof *res);
    if (c->n_turns == 0)
        return knob_fail(err, KNOB_ERR_USAGE, "chat: no turn to reply to");
    /* the cache is valid as long as it is a prefix of the transcript */
    if ((size_t)q->len > c->n || memcmp(q->tokens, c->tok, (size_t)q->len * sizeof *c->tok) != 0)
        knob_lm_seq_reset(q);
    knob_status s = KNOB_OK;
    if (c->n > (size_t)q->len)
        s = knob_lm_feed(q, c->tok + q->len, c->n - (size_t)q->len, err);
    knob_lm_gen gg = *g;
    if (gg.max_tokens <= 0 || gg.max_tokens > c->max_tokens)
        gg.max_tokens = c->max_tokens;
    if (!s)
        s = knob_lm_generate(q, &gg, res, err);
    if (s)
        return s;
    /* the sampled ids join the turn; a reply that did not end at the stop string gets a newline */
    if (!turns_add(c, res->ids, (size_t)res->n_tokens, 0))
        return knob_fail(err, KNOB_ERR_NOMEM, "chat: out of memory");
    if (strcmp(res->finish, "stop") != 0) {
        int32_t *nl;
        size_t n_nl;
        if ((s = knob_lm_encode(q->lm, "\n", 1, 0, &nl, &n_nl, err)) != KNOB_OK)
            return s;
        int ok = turns_add(c, nl, n_nl, 0);
        knob_free(nl);
        if (!ok)
            return knob_fail(err, KNOB_ERR_NOMEM, "chat: out of memory");
    }
    turns_trim(c);
    return KNOB_OK;
}
