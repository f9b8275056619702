/* gpt.c: the GPT model: its configuration (checks and JSON), the parameters with GPT-2's names and
 * initialisation, and the training graph.
 *
 * The graph, per batch of B windows of T tokens (shapes on the right):
 *   x = wte[idx] + wpe[0..T)                                          (B, T, C)
 *   per block l:  x += c_proj(attention(c_attn(ln_1(x))))             causal, NH heads
 *                 x += mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))              (B, T, 4C) inside
 *   logits = ln_f(x) @ wte^T                                          (B, T, V), tied weights
 *   loss = mean cross-entropy(logits, targets)                        targets < 0 are ignored
 * Dropout (when c->dropout > 0) follows the embeddings and each residual branch, as in GPT-2.
 * With c->precision KNOB_PREC_BF16 the training graph computes the linear layers' and the output
 * projection's products (forward and both gradients) with knob_gemm_bf16; all else stays f32.
 * Linear weights are (out, in) and applied as x @ W^T (knob_matmul with tb = 1).
 *
 * Not here: KV-cache inference and sampling (gpt_infer.c), the training loop (gpt_train.c), reading
 * other formats (src/io/gpt_formats.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Configuration */

knob_status knob_gpt_config_check(const knob_gpt_config *c, knob_err *err)
{
    if (c->n_layer < 1 || c->n_layer > 256)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: n_layer %d is out of range [1, 256]", c->n_layer);
    if (c->n_head < 1 || c->n_head > 1024)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: n_head %d is out of range [1, 1024]", c->n_head);
    if (c->n_embd < 1 || c->n_embd > 65536)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: n_embd %d is out of range [1, 65536]", c->n_embd);
    if (c->n_embd % c->n_head != 0)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: n_embd %d is not a multiple of n_head %d", c->n_embd,
                         c->n_head);
    if (c->block_size < 1 || c->block_size > 65536)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: block_size %d is out of range [1, 65536]", c->block_size);
    if (c->vocab_size < 1 || c->vocab_size > 1 << 20)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: vocab_size %d is out of range [1, 1048576]", c->vocab_size);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: dropout %g is out of range [0, 1)", (double)c->dropout);
    if (c->bias != 0 && c->bias != 1)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: bias is %d; expected 0 or 1", c->bias);
    if (c->precision != KNOB_PREC_F32 && c->precision != KNOB_PREC_BF16)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: precision is %d; expected f32 (0) or bf16 (1)", c->precision);
    return KNOB_OK;
}

char *knob_gpt_config_json(const knob_gpt_config *c)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "{\"n_layer\":%d,\"n_head\":%d,\"n_embd\":%d,\"block_size\":%d,\"vocab_size\":%d,"
                     "\"bias\":%d,\"dropout\":%.9g%s}",
                     c->n_layer, c->n_head, c->n_embd, c->block_size, c->vocab_size, c->bias, (double)c->dropout,
                     c->precision == KNOB_PREC_BF16 ? ",\"precision\":\"bf16\"" : "");
    char *s = knob_malloc((size_t)n + 1);
    if (s)
        memcpy(s, buf, (size_t)n + 1);
    return s;
}

knob_status knob_gpt_config_parse(knob_gpt_config *c, const char *json, knob_err *err)
{
    memset(c, 0, sizeof *c);
    c->bias = 1;
    knob_json *root = NULL;
    knob_err e2;
    if (!json || knob_json_parse_str(&root, json, "gpt.config", &e2) != KNOB_OK || !knob_json_is_object(root)) {
        knob_json_free(root);
        return knob_fail(err, KNOB_ERR_FORMAT, "gpt.config: not a JSON object");
    }
    static const char *const keys[6] = {"n_layer", "n_head", "n_embd", "block_size", "vocab_size", "bias"};
    int *dst[6] = {&c->n_layer, &c->n_head, &c->n_embd, &c->block_size, &c->vocab_size, &c->bias};
    knob_status s = KNOB_OK;
    for (int i = 0; !s && i < 6; i++) {
        const knob_json *v = knob_json_get(root, keys[i]);
        long x;
        if (!v && i < 5)
            s = knob_fail(err, KNOB_ERR_FORMAT, "gpt.config: missing \"%s\"", keys[i]);
        else if (v && !knob_json_as_long(v, -1000000000L, 1000000000L, &x))
            s = knob_fail(err, KNOB_ERR_FORMAT, "gpt.config: \"%s\" is not an integer", keys[i]);
        else if (v)
            *dst[i] = (int)x;
    }
    const knob_json *d = knob_json_get(root, "dropout");
    if (!s && d) {
        if (!knob_json_is_number(d))
            s = knob_fail(err, KNOB_ERR_FORMAT, "gpt.config: \"dropout\" is not a number");
        else
            c->dropout = (float)knob_json_number(d);
    }
    const knob_json *pr = knob_json_get(root, "precision");   /* absent: f32 (written before bf16 existed) */
    if (!s && pr) {
        const char *v = knob_json_string(pr);
        if (v && !strcmp(v, "bf16"))
            c->precision = KNOB_PREC_BF16;
        else if (!v || strcmp(v, "f32"))
            s = knob_fail(err, KNOB_ERR_FORMAT, "gpt.config: \"precision\" is not \"f32\" or \"bf16\"");
    }
    knob_json_free(root);
    if (!s)
        s = knob_gpt_config_check(c, err);
    return s;
}

size_t knob_gpt_n_params(const knob_gpt_config *c)
{
    size_t C = (size_t)c->n_embd, L = (size_t)c->n_layer, b = (size_t)c->bias;
    size_t per_layer = 12 * C * C + b * (3 * C + C + 4 * C + C) + (2 + 2 * b) * C;
    return (size_t)c->vocab_size * C + (size_t)c->block_size * C + L * per_layer + (1 + b) * C;
}

void knob_gpt_cost_of(const knob_gpt_config *c, knob_gpt_cost *out)
{
    double C = c->n_embd, L = c->n_layer, T = c->block_size, V = c->vocab_size;
    out->n_params = (double)knob_gpt_n_params(c);
    out->n_params_matmul = L * 12 * C * C + V * C;
    out->flops_forward = 2 * out->n_params_matmul + 4 * L * T * C;
    out->flops_train = 3 * out->flops_forward;
    out->bytes_weights = 4 * out->n_params;
    out->bytes_train = 16 * out->n_params;
    out->bytes_kv = 4 * 2 * L * T * C;
}

/* ------------------------------------------------------------------------------------------------
 * Parameters */

static knob_tensor *add(knob_params *P, int layer, const char *what, int n_dims, const int *shape, knob_err *err)
{
    char name[KNOB_NAME_MAX];
    if (layer >= 0)
        snprintf(name, sizeof name, "h.%d.%s", layer, what);
    else
        snprintf(name, sizeof name, "%s", what);
    return knob_params_add(P, name, n_dims, shape, err);
}

knob_status knob_gpt_params(knob_params *P, const knob_gpt_config *c, knob_err *err)
{
    knob_params_init(P);
    knob_status s = knob_gpt_config_check(c, err);
    if (s)
        return s;
    int C = c->n_embd, b = c->bias;
    int ok = add(P, -1, "wte.weight", 2, (int[]){c->vocab_size, C}, err) &&
             add(P, -1, "wpe.weight", 2, (int[]){c->block_size, C}, err);
    for (int l = 0; ok && l < c->n_layer; l++) {
        ok = add(P, l, "ln_1.weight", 1, (int[]){C}, err) && (!b || add(P, l, "ln_1.bias", 1, (int[]){C}, err)) &&
             add(P, l, "attn.c_attn.weight", 2, (int[]){3 * C, C}, err) &&
             (!b || add(P, l, "attn.c_attn.bias", 1, (int[]){3 * C}, err)) &&
             add(P, l, "attn.c_proj.weight", 2, (int[]){C, C}, err) &&
             (!b || add(P, l, "attn.c_proj.bias", 1, (int[]){C}, err)) &&
             add(P, l, "ln_2.weight", 1, (int[]){C}, err) && (!b || add(P, l, "ln_2.bias", 1, (int[]){C}, err)) &&
             add(P, l, "mlp.c_fc.weight", 2, (int[]){4 * C, C}, err) &&
             (!b || add(P, l, "mlp.c_fc.bias", 1, (int[]){4 * C}, err)) &&
             add(P, l, "mlp.c_proj.weight", 2, (int[]){C, 4 * C}, err) &&
             (!b || add(P, l, "mlp.c_proj.bias", 1, (int[]){C}, err));
    }
    ok = ok && add(P, -1, "ln_f.weight", 1, (int[]){C}, err) && (!b || add(P, -1, "ln_f.bias", 1, (int[]){C}, err));
    if (!ok || (s = knob_params_alloc(P, err)) != KNOB_OK) {
        knob_params_free(P);
        return ok ? s : (err ? err->code : KNOB_ERR_NOMEM);
    }
    return KNOB_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* GPT-2 (Radford et al. 2019, and its released code): every weight matrix and both embeddings
 * N(0, 0.02); the projections that write into the residual stream (attn.c_proj and mlp.c_proj)
 * scaled by 1/sqrt(2 n_layer), since 2 n_layer of them add up along the stream; biases 0;
 * LayerNorm gains 1. Drawn tensor by tensor in declaration order from one generator. */
knob_status knob_gpt_init(knob_params *P, const knob_gpt_config *c, uint64_t seed, knob_err *err)
{
    knob_status s = knob_gpt_config_check(c, err);
    if (s)
        return s;
    if (!P->data || !knob_params_find(P, "wte.weight"))
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: init needs the parameters from knob_gpt_params");
    knob_rng r;
    knob_rng_seed(&r, seed);
    float std = 0.02f, std_proj = (float)(0.02 / sqrt(2.0 * c->n_layer));
    for (int i = 0; i < P->n; i++) {
        knob_tensor *t = P->t[i];
        if (t->n_dims == 2)
            knob_init_normal(t, ends_with(t->name, "c_proj.weight") ? std_proj : std, &r);
        else if (ends_with(t->name, ".bias"))
            knob_init_const(t, 0.0f);
        else
            knob_init_const(t, 1.0f);   /* ln_*.weight */
    }
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Training graph */

static knob_node *param(knob_graph *g, const knob_params *P, int layer, const char *what)
{
    char name[KNOB_NAME_MAX];
    if (layer >= 0)
        snprintf(name, sizeof name, "h.%d.%s", layer, what);
    else
        snprintf(name, sizeof name, "%s", what);
    knob_tensor *t = knob_params_find(P, name);
    if (!t) {
        knob_graph_error(g, KNOB_ERR_USAGE, "gpt: parameter '%s' is missing", name);
        return NULL;
    }
    return knob_param(g, t);
}

/* y (..., out) = x (..., in) @ W^T + b; W (out, in), b (out) when the config has biases */
static knob_node *linear(knob_graph *g, const knob_params *P, const knob_gpt_config *c, knob_node *x, int layer,
                         const char *name)
{
    char w[96], b[96];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    return knob_matmul_bias(g, x, param(g, P, layer, w), c->bias ? param(g, P, layer, b) : NULL, 0, 1,
                            (knob_precision)c->precision);
}

static knob_node *layernorm(knob_graph *g, const knob_params *P, const knob_gpt_config *c, knob_node *x, int layer,
                            const char *name)
{
    char w[96], b[96];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    return knob_layernorm(g, x, param(g, P, layer, w), c->bias ? param(g, P, layer, b) : NULL);
}

static knob_node *dropout(knob_graph *g, knob_node *x, float p)
{
    return p > 0.0f ? knob_dropout(g, x, p) : x;
}

knob_status knob_gpt_graph_build(knob_gpt_graph *m, knob_params *P, const knob_gpt_config *c, int B, int T,
                                 knob_err *err)
{
    memset(m, 0, sizeof *m);
    knob_status s = knob_gpt_config_check(c, err);
    if (s)
        return s;
    if (B < 1 || T < 1 || T > c->block_size)
        return knob_fail(err, KNOB_ERR_USAGE, "gpt: batch %d x %d tokens; need B >= 1 and 1 <= T <= block_size %d",
                         B, T, c->block_size);
    knob_graph *g = knob_graph_new(err);
    if (!g)
        return err ? err->code : KNOB_ERR_NOMEM;
    knob_node *idx = knob_input_i32(g, "idx", 2, (int[]){B, T});         // (B, T)
    knob_node *pos = knob_input_i32(g, "pos", 1, (int[]){T});            // (T)
    knob_node *tgt = knob_input_i32(g, "targets", 2, (int[]){B, T});     // (B, T)
    knob_node *wte = param(g, P, -1, "wte.weight");                      // (V, C)
    knob_node *x = knob_add(g, knob_embedding(g, wte, idx),               // (B, T, C)
                            knob_embedding(g, param(g, P, -1, "wpe.weight"), pos));
    x = dropout(g, x, c->dropout);
    for (int l = 0; l < c->n_layer; l++) {
        knob_node *h = layernorm(g, P, c, x, l, "ln_1");
        h = linear(g, P, c, h, l, "attn.c_attn");                        // (B, T, 3C)
        h = knob_attention(g, h, c->n_head);                             // (B, T, C)
        h = linear(g, P, c, h, l, "attn.c_proj");
        x = knob_add(g, x, dropout(g, h, c->dropout));
        h = layernorm(g, P, c, x, l, "ln_2");
        h = knob_gelu(g, linear(g, P, c, h, l, "mlp.c_fc"));             // (B, T, 4C)
        h = linear(g, P, c, h, l, "mlp.c_proj");
        x = knob_add(g, x, dropout(g, h, c->dropout));
    }
    x = layernorm(g, P, c, x, -1, "ln_f");
    knob_node *logits = knob_matmul_prec(g, x, wte, 0, 1, (knob_precision)c->precision);                    // (B, T, V)
    knob_node *loss = knob_cross_entropy(g, logits, tgt, -1);
    if ((s = knob_graph_compile(g, err)) != KNOB_OK) {
        knob_graph_free(g);
        return s;
    }
    for (int t = 0; t < T; t++)
        knob_node_data_i32(pos)[t] = t;
    /* the ignore index is -1: a window shorter than T can pad its targets with -1 */
    m->g = g;
    m->idx = idx;
    m->targets = tgt;
    m->logits = logits;
    m->loss = loss;
    m->B = B;
    m->T = T;
    return KNOB_OK;
}

void knob_gpt_graph_free(knob_gpt_graph *m)
{
    if (!m)
        return;
    knob_graph_free(m->g);
    memset(m, 0, sizeof *m);
}
