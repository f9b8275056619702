/* gpt_infer.c: GPT inference one token at a time with a key/value cache, and sampling from logits.
 *
 * The cache holds, per layer, the keys and values of every position seen so far, (L, T, C) each.
 * A step appends one token at position pos = len: its residual stream x (C) passes the blocks
 * (matrix-vector products through knob_gemm, attention of the one query over the pos + 1 cached
 * keys), then ln_f and the tied output projection give the logits (V). The same arithmetic as the
 * training graph (src/models/gpt.c), so logits agree with it to float rounding (a test checks).
 * All buffers are allocated by knob_gpt_infer_new; a step allocates nothing.
 *
 * Dropping the oldest tokens (chat trimming) recomputes the cache from the kept tokens: positions
 * are learned embeddings, so every kept key and value changes when its position does.
 *
 * Sampling: temperature, then top-k, then top-p (nucleus) over the tokens sorted by probability,
 * most likely first (ties: lower id first), then one uniform draw over what is kept.
 *
 * Not here: batched inference, the training graph (gpt.c), tokenizers (src/text/). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

#define LN_EPS 1e-5f

typedef struct layer_w {
    const float *ln1w, *ln1b;      // (C)
    const float *attn_w, *attn_b;  // (3C, C), (3C)
    const float *proj_w, *proj_b;  // (C, C), (C)
    const float *ln2w, *ln2b;      // (C)
    const float *fc_w, *fc_b;      // (4C, C), (4C)
    const float *fc2_w, *fc2_b;    // (C, 4C), (C)
} layer_w;

struct knob_gpt_infer {
    knob_gpt_config c;
    const float *wte, *wpe, *lnfw, *lnfb;   // (V, C), (T, C), (C), (C)
    layer_w *L;                             // (n_layer)
    float *kc, *vc;                         // (n_layer, T, C) cached keys and values
    float *x, *xn, *qkv, *y, *tmp, *h4;     // (C), (C), (3C), (C), (C), (4C)
    float *hidden;                          // (C) after ln_f
    float *logits;                          // (V)
    float *att;                             // (T) one head's probabilities
    int32_t *tokens;                        // (T)
    int len;
    int has_hidden;
    float *capture;                         // (L, NH, T, T) or NULL
};

/* ------------------------------------------------------------------------------------------------
 * Setup */

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
    if (!s) s = need(P, l, "attn.c_attn.weight", 3 * C, C, &w->attn_w, err);
    if (!s) s = need(P, l, "attn.c_proj.weight", C, C, &w->proj_w, err);
    if (!s) s = need(P, l, "ln_2.weight", C, 0, &w->ln2w, err);
    if (!s) s = need(P, l, "mlp.c_fc.weight", 4 * C, C, &w->fc_w, err);
    if (!s) s = need(P, l, "mlp.c_proj.weight", C, 4 * C, &w->fc2_w, err);
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

knob_status knob_gpt_infer_new(knob_gpt_infer **out, const knob_params *P, const knob_gpt_config *c, knob_err *err)
{
    *out = NULL;
    knob_status s = knob_gpt_config_check(c, err);
    if (s)
        return s;
    knob_gpt_infer *m = knob_calloc(1, sizeof *m);
    if (!m)
        return knob_fail(err, KNOB_ERR_NOMEM, "gpt: out of memory");
    m->c = *c;
    int C = c->n_embd, T = c->block_size, V = c->vocab_size;
    if (!s) s = need(P, -1, "wte.weight", V, C, &m->wte, err);
    if (!s) s = need(P, -1, "wpe.weight", T, C, &m->wpe, err);
    if (!s) s = need(P, -1, "ln_f.weight", C, 0, &m->lnfw, err);
    if (!s && c->bias) s = need(P, -1, "ln_f.bias", C, 0, &m->lnfb, err);
    if (!s && !(m->L = knob_calloc((size_t)c->n_layer, sizeof *m->L)))
        s = knob_fail(err, KNOB_ERR_NOMEM, "gpt: out of memory");
    for (int l = 0; !s && l < c->n_layer; l++)
        s = bind_layer(&m->L[l], P, c, l, err);
    if (s) {
        knob_gpt_infer_free(m);
        return s;
    }
    size_t cache = (size_t)c->n_layer * (size_t)T * (size_t)C;
    m->kc = knob_malloc(cache * sizeof(float));
    m->vc = knob_malloc(cache * sizeof(float));
    m->x = knob_malloc((size_t)(C + C + 3 * C + C + C + 4 * C + C) * sizeof(float));
    m->logits = knob_malloc((size_t)V * sizeof(float));
    m->att = knob_malloc((size_t)T * sizeof(float));
    m->tokens = knob_malloc((size_t)T * sizeof(int32_t));
    if (!m->kc || !m->vc || !m->x || !m->logits || !m->att || !m->tokens) {
        knob_gpt_infer_free(m);
        return knob_fail(err, KNOB_ERR_NOMEM, "gpt: cannot allocate the key/value cache (%zu floats)", 2 * cache);
    }
    m->xn = m->x + C;
    m->qkv = m->xn + C;
    m->y = m->qkv + 3 * C;
    m->tmp = m->y + C;
    m->h4 = m->tmp + C;
    m->hidden = m->h4 + 4 * C;
    *out = m;
    return KNOB_OK;
}

void knob_gpt_infer_free(knob_gpt_infer *m)
{
    if (!m)
        return;
    knob_free(m->L);
    knob_free(m->kc);
    knob_free(m->vc);
    knob_free(m->x);
    knob_free(m->logits);
    knob_free(m->att);
    knob_free(m->tokens);
    knob_free(m);
}

void knob_gpt_infer_reset(knob_gpt_infer *m)
{
    m->len = 0;
    m->has_hidden = 0;
}

int knob_gpt_infer_len(const knob_gpt_infer *m) { return m->len; }
const int32_t *knob_gpt_infer_tokens(const knob_gpt_infer *m) { return m->tokens; }
const float *knob_gpt_infer_hidden(const knob_gpt_infer *m) { return m->has_hidden ? m->hidden : NULL; }
void knob_gpt_infer_capture_attention(knob_gpt_infer *m, float *buf) { m->capture = buf; }

/* ------------------------------------------------------------------------------------------------
 * One step */

/* y (C) = layernorm(x (C)) * w + b (b may be NULL); mean and variance in double */
static void layernorm(float *y, const float *x, const float *w, const float *b, int C)
{
    double mean = 0, var = 0;
    for (int i = 0; i < C; i++)
        mean += x[i];
    mean /= C;
    for (int i = 0; i < C; i++)
        var += ((double)x[i] - mean) * ((double)x[i] - mean);
    var /= C;
    float m = (float)mean, rstd = (float)(1.0 / sqrt(var + (double)LN_EPS));
    for (int i = 0; i < C; i++)
        y[i] = (x[i] - m) * rstd * w[i] + (b ? b[i] : 0.0f);
}

/* y (N) = x (K) @ W^T + b, W (N, K) */
static void linear(float *y, const float *x, const float *W, const float *b, int N, int K)
{
    knob_gemm(0, 1, 1, N, K, 1.0f, x, W, 0.0f, y);
    if (b)
        for (int i = 0; i < N; i++)
            y[i] += b[i];
}

/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static void gelu(float *x, int n)
{
    const float k = 0.7978845608028654f;
    for (int i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + tanhf(k * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
}

/* The one query at pos against cached keys 0..pos of layer l, every head: y (C). */
static void attend(knob_gpt_infer *m, int l, int pos)
{
    const knob_gpt_config *c = &m->c;
    int C = c->n_embd, NH = c->n_head, HS = C / NH, T = c->block_size;
    const float *kc = m->kc + (size_t)l * (size_t)T * (size_t)C;   // (T, C)
    const float *vc = m->vc + (size_t)l * (size_t)T * (size_t)C;   // (T, C)
    float scale = 1.0f / sqrtf((float)HS), *a = m->att;
    for (int h = 0; h < NH; h++) {
        const float *q = m->qkv + (size_t)h * HS;   // (HS)
        float maxv = -INFINITY;
        for (int t2 = 0; t2 <= pos; t2++) {
            const float *k = kc + (size_t)t2 * C + (size_t)h * HS;
            float dot = 0.0f;
            for (int i = 0; i < HS; i++)
                dot += q[i] * k[i];
            a[t2] = dot * scale;
            maxv = fmaxf(maxv, a[t2]);
        }
        float sum = 0.0f;
        for (int t2 = 0; t2 <= pos; t2++) {
            a[t2] = expf(a[t2] - maxv);
            sum += a[t2];
        }
        float inv = 1.0f / sum;
        float *o = m->y + (size_t)h * HS;
        for (int i = 0; i < HS; i++)
            o[i] = 0.0f;
        for (int t2 = 0; t2 <= pos; t2++) {
            a[t2] *= inv;
            const float *v = vc + (size_t)t2 * C + (size_t)h * HS;
            for (int i = 0; i < HS; i++)
                o[i] += a[t2] * v[i];
        }
        if (m->capture) {
            float *row = m->capture + (((size_t)l * NH + (size_t)h) * (size_t)T + (size_t)pos) * (size_t)T;   // (T)
            memcpy(row, a, (size_t)(pos + 1) * sizeof(float));
            memset(row + pos + 1, 0, (size_t)(T - pos - 1) * sizeof(float));
        }
    }
}

knob_status knob_gpt_infer_step(knob_gpt_infer *m, int token, const float **logits, knob_err *err)
{
    const knob_gpt_config *c = &m->c;
    int C = c->n_embd, T = c->block_size, V = c->vocab_size, pos = m->len;
    if (pos >= T)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: the context is full (%d tokens, the block size); drop some first", T);
    if (token < 0 || token >= V)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: token %d is out of range [0, %d)", token, V);
    const float *te = m->wte + (size_t)token * C, *pe = m->wpe + (size_t)pos * C;
    for (int i = 0; i < C; i++)
        m->x[i] = te[i] + pe[i];
    for (int l = 0; l < c->n_layer; l++) {
        const layer_w *w = &m->L[l];
        layernorm(m->xn, m->x, w->ln1w, w->ln1b, C);
        linear(m->qkv, m->xn, w->attn_w, w->attn_b, 3 * C, C);
        size_t at = ((size_t)l * (size_t)T + (size_t)pos) * (size_t)C;
        memcpy(m->kc + at, m->qkv + C, (size_t)C * sizeof(float));
        memcpy(m->vc + at, m->qkv + 2 * C, (size_t)C * sizeof(float));
        attend(m, l, pos);
        linear(m->tmp, m->y, w->proj_w, w->proj_b, C, C);
        for (int i = 0; i < C; i++)
            m->x[i] += m->tmp[i];
        layernorm(m->xn, m->x, w->ln2w, w->ln2b, C);
        linear(m->h4, m->xn, w->fc_w, w->fc_b, 4 * C, C);
        gelu(m->h4, 4 * C);
        linear(m->tmp, m->h4, w->fc2_w, w->fc2_b, C, 4 * C);
        for (int i = 0; i < C; i++)
            m->x[i] += m->tmp[i];
    }
    layernorm(m->hidden, m->x, m->lnfw, m->lnfb, C);
    linear(m->logits, m->hidden, m->wte, NULL, V, C);
    m->tokens[pos] = token;
    m->len = pos + 1;
    m->has_hidden = 1;
    if (logits)
        *logits = m->logits;
    return KNOB_OK;
}

knob_status knob_gpt_infer_drop(knob_gpt_infer *m, int k, const float **logits, knob_err *err)
{
    if (k < 0 || k > m->len)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: cannot drop %d of %d tokens", k, m->len);
    int n = m->len - k;
    memmove(m->tokens, m->tokens + k, (size_t)n * sizeof *m->tokens);
    knob_gpt_infer_reset(m);
    if (logits)
        *logits = NULL;
    for (int i = 0; i < n; i++) {
        knob_status s = knob_gpt_infer_step(m, m->tokens[i], logits, err);
        if (s)
            return s;
    }
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Sampling */

void knob_softmax_temp(const float *logits, int V, float temperature, float *probs)
{
    float maxv = logits[0];
    for (int i = 1; i < V; i++)
        maxv = fmaxf(maxv, logits[i]);
    double sum = 0;
    for (int i = 0; i < V; i++) {
        probs[i] = expf((logits[i] - maxv) / temperature);
        sum += probs[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < V; i++)
        probs[i] *= inv;
}

static int argmax(const float *x, int V)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* heap of ids ordered by (probs desc, id asc): "a before b" */
static int before(const float *p, int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); }

static void sift_down(int *h, int n, int i, const float *p)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && before(p, h[l], h[top]))
            top = l;
        if (r < n && before(p, h[r], h[top]))
            top = r;
        if (top == i)
            return;
        int t = h[i];
        h[i] = h[top];
        h[top] = t;
        i = top;
    }
}

/* Kept set: the most likely tokens, in order, while fewer than top_k are kept and the kept mass is
 * below top_p. A heap yields them in order, so only the kept ones are sorted (O(V + k log V)). */
int knob_sample_probs(const float *logits, int V, const knob_sampler *s, float *probs, int *idx)
{
    if (!(s->temperature > 0.0f)) {
        int best = argmax(logits, V);
        memset(probs, 0, (size_t)V * sizeof *probs);
        probs[best] = 1.0f;
        return 1;
    }
    knob_softmax_temp(logits, V, s->temperature, probs);
    int top_k = s->top_k > 0 && s->top_k < V ? s->top_k : V;
    int nucleus = s->top_p > 0.0f && s->top_p < 1.0f;
    if (top_k == V && !nucleus)
        return V;
    for (int i = 0; i < V; i++)
        idx[i] = i;
    for (int i = V / 2 - 1; i >= 0; i--)
        sift_down(idx, V, i, probs);
    /* pop the best into the tail of idx: kept ids end up at idx[V-1], idx[V-2], ... */
    int n = V, kept = 0;
    double mass = 0;
    while (kept < top_k && n > 0 && !(nucleus && mass >= (double)s->top_p)) {
        int best = idx[0];
        idx[0] = idx[--n];
        idx[n] = best;
        sift_down(idx, n, 0, probs);
        mass += probs[best];
        kept++;
    }
    /* zero the rest, renormalise the kept */
    for (int i = 0; i < n; i++)
        probs[idx[i]] = 0.0f;
    float inv = (float)(1.0 / mass);
    for (int i = n; i < V; i++)
        probs[idx[i]] *= inv;
    return kept;
}

int knob_sample(const float *logits, int V, const knob_sampler *s, knob_rng *r, float *probs, int *idx)
{
    if (!(s->temperature > 0.0f))
        return argmax(logits, V);
    knob_sample_probs(logits, V, s, probs, idx);
    double u = knob_rng_uniform_double(r), cum = 0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (probs[i] <= 0.0f)
            continue;
        cum += probs[i];
        last = i;
        if (u < cum)
            return i;
    }
    return last;   /* rounding left u above the sum */
}

/* ------------------------------------------------------------------------------------------------
 * Chat context */

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
