/* gpt_formats.c: GPT weights in and out of the wider ecosystem.
 *
 * knob_gpt_open reads a GPT from any of three layouts, chosen by the file's content, never its name:
 *   - knob-native safetensors: metadata "knob.model" = "gpt", "gpt.config" (JSON) and "tokenizer";
 *     tensors named and shaped as in include/knob.h (extra tensors, such as optimizer moments, are
 *     ignored).
 *   - Hugging Face GPT-2: model.safetensors (names with or without "transformer.") and config.json
 *     beside it (or the path of a folder holding both). HF's Conv1D layers store their weight as
 *     (in, out); knob's linear weights are (out, in), so c_attn, c_proj and c_fc weights are
 *     transposed on load and on save. lm_head.weight must equal wte.weight (tied) when present;
 *     the attn.bias / attn.masked_bias buffers (the causal mask) are ignored. F32, F16, BF16.
 *   - llm.c gpt2_*.bin: 256 int32 header (magic 20240326, version 3 = float32 or 5 = bfloat16,
 *     max_seq_len, vocab_size, num_layers, num_heads, channels, padded_vocab_size), then the
 *     parameters stacked per kind over layers, weights (out, in) like knob's. The padded vocab rows
 *     are dropped on load and written as zeros.
 * Writers: knob-native (knob_gpt_save_knob), HF folder (model.safetensors without prefix +
 * config.json; a tokenizer other than GPT-2's is kept in the safetensors metadata as
 * "knob.tokenizer", which other readers ignore) and llm.c (f32 or bf16, round to nearest even; no
 * room for a tokenizer: knob assumes GPT-2's). All writes are atomic.
 *
 * Everything read is checked against the config before a value is used: a missing, extra or
 * misshapen tensor, a truncated file, a wrong magic or version and a config field that is missing
 * or out of range each give a one-line KNOB_ERR_FORMAT naming the file and the tensor or field.
 * Not here: the model itself (src/models/gpt.c) and tokenizer files (src/text/tokenizer.c, src/text/llmc_tokenizer.c).
 */
#include "knob_internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gpt_formats.c assumes a little-endian host"
#endif

#define LLMC_MAGIC       20240326
#define LLMC_TOK_MAGIC   20240328   /* llm.c's tokenizer file: named in the error when given as a model */
#define LLMC_HEADER_INTS 256
#define LLMC_VOCAB_ALIGN 128        /* llm.c pads the vocab to a multiple of this (50257 -> 50304) */
#define HF_PREFIX        "transformer."

/* The per-layer tensors in llm.c's order (also the contract's order within a layer). */
static const char *const layer_names[12] = {
    "ln_1.weight",        "ln_1.bias",          "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias",   "ln_2.weight",        "ln_2.bias",
    "mlp.c_fc.weight",    "mlp.c_fc.bias",      "mlp.c_proj.weight",  "mlp.c_proj.bias",
};

/* ------------------------------------------------------------------------------------------------
 * Small helpers */

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* HF Conv1D weights: stored (in, out) in HF files, (out, in) in knob. */
static int is_conv1d_weight(const char *name)
{
    size_t n = strlen(name);
    static const char *const ends[3] = {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_proj.weight"};
    for (int i = 0; i < 3; i++) {
        size_t m = strlen(ends[i]);
        if (n >= m && strcmp(name + n - m, ends[i]) == 0)
            return 1;
    }
    return n >= 16 && strcmp(name + n - 16, ".mlp.c_fc.weight") == 0;
}

/* dst (cols, rows) = src (rows, cols) transposed */
static void transpose(float *dst, const float *src, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

static char *st_shape_str(char *buf, size_t size, const knob_st_entry *e)
{
    size_t at = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < e->n_dims && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, i ? ", %lld" : "%lld", (long long)e->shape[i]);
    if (at < size)
        snprintf(buf + at, size - at, ")");
    return buf;
}

/* err with its code made KNOB_ERR_FORMAT (unless it is out of memory): a config from a file that
 * a helper rejects is a defect of the file. For knob_err_prefix, which keeps the code. */
static knob_err *as_format(knob_err *err, knob_status s)
{
    if (err && s != KNOB_ERR_NOMEM)
        err->code = KNOB_ERR_FORMAT;
    return err;
}

/* ------------------------------------------------------------------------------------------------
 * Reading one safetensors tensor into a knob tensor (checked shape; optional transposition) */

static knob_status st_load_tensor(const knob_st *st, const char *file_name, knob_tensor *t, int conv1d,
                                  const char *hint, knob_err *err)
{
    const knob_st_entry *e = knob_st_find(st, file_name);
    if (!e)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%.128s' missing%s", st->path, file_name, hint);
    int want[2] = {t->shape[0], t->n_dims > 1 ? t->shape[1] : 0};
    if (conv1d) {   /* file (in, out), knob (out, in) */
        want[0] = t->shape[1];
        want[1] = t->shape[0];
    }
    int same = e->n_dims == t->n_dims;
    for (int d = 0; same && d < t->n_dims; d++)
        same = e->shape[d] == (d < 2 ? want[d] : t->shape[d]);
    if (!same) {
        char fs[128], ms[128];
        knob_shape_str(ms, sizeof ms, t->n_dims, conv1d ? want : t->shape);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%.128s' is %s, config expects %s%s", st->path,
                         file_name, st_shape_str(fs, sizeof fs, e), ms, hint);
    }
    if (!conv1d)
        return knob_st_read_f32(st, e, t->data, t->n_elems, err);
    float *tmp = knob_malloc(t->n_elems * sizeof *tmp);
    if (!tmp)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory reading '%.128s'", st->path, file_name);
    knob_status s = knob_st_read_f32(st, e, tmp, t->n_elems, err);
    if (!s)
        transpose(t->data, tmp, want[0], want[1]);
    knob_free(tmp);
    return s;
}

/* A config the file cannot hold (every value takes at least 2 bytes) is refused before anything is
 * allocated for it, so a wrong config cannot ask for gigabytes. */
static knob_status check_room(const knob_st *st, const knob_gpt_config *c, const char *what, knob_err *err)
{
    size_t need = knob_gpt_n_params(c);
    if (need > st->data_len / 2)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: %s describes %zu parameters; the file's %zu data bytes hold at most %zu",
                         st->path, what, need, st->data_len, st->data_len / 2);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * knob-native */

static knob_status open_knob(const knob_st *st, knob_params *P, knob_gpt_config *c, char **tok_desc,
                             knob_err *err)
{
    const char *cfg = knob_st_meta(st, "gpt.config");
    if (!cfg)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata 'gpt.config' missing (knob.model is 'gpt')", st->path);
    knob_status s = knob_gpt_config_parse(c, cfg, err);
    if (s)
        return knob_err_prefix(as_format(err, s), "%s: metadata 'gpt.config'", st->path);
    c->dropout = 0;   /* inference; training code reads its own flag */
    const char *tok = knob_st_meta(st, "tokenizer");
    if (!tok || !tok[0])
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata 'tokenizer' missing", st->path);
    if ((s = check_room(st, c, "metadata 'gpt.config'", err)))
        return s;
    if ((s = knob_gpt_params(P, c, err)))
        return knob_err_prefix(err, "%s: config", st->path);
    for (int i = 0; i < P->n && !s; i++)
        s = st_load_tensor(st, P->t[i]->name, P->t[i], 0, "", err);
    if (s)
        return s;
    if (!(*tok_desc = knob_strdup(tok)))
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", st->path);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Hugging Face: config.json */

/* A positive integer field; required, or *v untouched when absent (or null) and !required. */
static knob_status json_int(const knob_json *root, const char *path, const char *key, int required, int *v,
                            knob_err *err)
{
    const knob_json *j = knob_json_get(root, key);
    if (!j || knob_json_is_null(j)) {
        if (required)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: field '%s' missing", path, key);
        return KNOB_OK;
    }
    long d;
    if (!knob_json_as_long(j, 1, 1000000000L, &d))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: field '%s' must be a positive integer", path, key);
    *v = (int)d;
    return KNOB_OK;
}

static knob_status hf_config(const char *path, knob_gpt_config *c, knob_err *err)
{
    unsigned char *buf;
    size_t len;
    knob_status s = knob_read_file(path, &buf, &len, err);
    if (s)
        return s;
    knob_json *root;
    s = knob_json_parse(&root, (const char *)buf, len, NULL, path, err);
    knob_free(buf);
    if (s)
        return s;
    if (!knob_json_is_object(root)) {
        knob_json_free(root);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: not a JSON object", path);
    }
    memset(c, 0, sizeof *c);
    c->bias = 1;
    int n_ctx = 0, n_inner = 0;
    s = json_int(root, path, "n_layer", 1, &c->n_layer, err);
    if (!s)
        s = json_int(root, path, "n_head", 1, &c->n_head, err);
    if (!s)
        s = json_int(root, path, "n_embd", 1, &c->n_embd, err);
    if (!s)
        s = json_int(root, path, "vocab_size", 1, &c->vocab_size, err);
    if (!s)
        s = json_int(root, path, "n_ctx", 0, &n_ctx, err);
    if (!s)
        s = json_int(root, path, "n_positions", 0, &c->block_size, err);
    if (!s)
        s = json_int(root, path, "n_inner", 0, &n_inner, err);
    if (!s && !c->block_size)
        c->block_size = n_ctx;
    if (!s && !c->block_size)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: field 'n_positions' (or 'n_ctx') missing", path);
    if (!s && n_inner && n_inner != 4 * c->n_embd)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: n_inner %d; knob's GPT has 4 * n_embd = %d", path, n_inner,
                      4 * c->n_embd);
    const knob_json *j = knob_json_get(root, "layer_norm_epsilon");
    if (!s && j && !(fabs(knob_json_number(j) - 1e-5) <= 1e-9))   /* NaN for a non-number */
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: layer_norm_epsilon must be 1e-05 (knob's LayerNorm)", path);
    j = knob_json_get(root, "activation_function");
    const char *act = knob_json_string(j);
    if (!s && j && !(act && (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0 ||
                             strcmp(act, "gelu_fast") == 0)))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: activation_function %.64s; knob's GPT uses GELU's tanh form (gelu_new)",
                      path, act ? act : "(not a string)");
    j = knob_json_get(root, "model_type");
    const char *type = knob_json_string(j);
    if (!s && j && !(type && strcmp(type, "gpt2") == 0))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: model_type %.64s; only gpt2 is supported", path,
                      type ? type : "(not a string)");
    knob_json_free(root);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Hugging Face: model.safetensors */

/* 1 when name (prefix stripped) is the causal-mask buffer h.L.attn.bias / h.L.attn.masked_bias of a
 * layer the config has. */
static int hf_is_buffer(const char *name, int n_layer)
{
    int l, at = 0;
    if (sscanf(name, "h.%d.%n", &l, &at) != 1 || at == 0 || l < 0 || l >= n_layer)
        return 0;
    return strcmp(name + at, "attn.bias") == 0 || strcmp(name + at, "attn.masked_bias") == 0;
}

static knob_status open_hf(const knob_st *st, const char *config_path, knob_params *P, knob_gpt_config *c,
                           knob_err *err)
{
    const char *pre = knob_st_find(st, HF_PREFIX "wte.weight") ? HF_PREFIX : "";
    if (!pre[0] && !knob_st_find(st, "wte.weight"))
        return knob_fail(err, KNOB_ERR_FORMAT,
                         "%s: no tensor 'wte.weight' or '" HF_PREFIX "wte.weight'; not a GPT-2 checkpoint (and no "
                         "knob.model metadata)", st->path);
    if (!file_exists(config_path))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: no config.json beside it (%s); a Hugging Face GPT-2 needs both",
                         st->path, config_path);
    knob_status s = hf_config(config_path, c, err);
    if (s)
        return s;
    char name[KNOB_NAME_MAX + 32];
    snprintf(name, sizeof name, "%sh.0.ln_1.bias", pre);
    c->bias = knob_st_find(st, name) != NULL;
    if ((s = knob_gpt_config_check(c, err)))
        return knob_err_prefix(as_format(err, s), "%s: config", config_path);
    if ((s = check_room(st, c, "config.json", err)))
        return s;
    if ((s = knob_gpt_params(P, c, err)))
        return knob_err_prefix(err, "%s: config", config_path);

    /* every tensor of the file is one we know: a name the config does not explain means the file and
     * config.json disagree (more layers, another architecture) */
    size_t np = strlen(pre);
    const knob_st_entry *lm_head = NULL;
    for (int i = 0; i < st->n; i++) {
        const char *n = st->e[i].name;
        if (strcmp(n, "lm_head.weight") == 0) {
            lm_head = &st->e[i];
            continue;
        }
        if (strncmp(n, pre, np) == 0 && (knob_params_find(P, n + np) || hf_is_buffer(n + np, c->n_layer)))
            continue;
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: unexpected tensor '%.128s' (config.json: n_layer %d, bias %s)",
                         st->path, n, c->n_layer, c->bias ? "yes" : "no");
    }
    char hint[96];
    snprintf(hint, sizeof hint, " (config.json: n_layer %d, n_embd %d)", c->n_layer, c->n_embd);
    for (int i = 0; i < P->n && !s; i++) {
        knob_tensor *t = P->t[i];
        snprintf(name, sizeof name, "%s%s", pre, t->name);
        s = st_load_tensor(st, name, t, is_conv1d_weight(t->name), hint, err);
    }
    if (s || !lm_head)
        return s;
    /* tied output: lm_head.weight must be wte.weight */
    knob_tensor *wte = knob_params_find(P, "wte.weight");
    char fs[128];
    if (lm_head->n_dims != 2 || lm_head->shape[0] != wte->shape[0] || lm_head->shape[1] != wte->shape[1])
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor 'lm_head.weight' is %s; tied to wte.weight (%d, %d)",
                         st->path, st_shape_str(fs, sizeof fs, lm_head), wte->shape[0], wte->shape[1]);
    float *tmp = knob_malloc(wte->n_elems * sizeof *tmp);
    if (!tmp)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory reading 'lm_head.weight'", st->path);
    s = knob_st_read_f32(st, lm_head, tmp, wte->n_elems, err);
    if (!s && memcmp(tmp, wte->data, wte->n_elems * sizeof *tmp) != 0)
        s = knob_fail(err, KNOB_ERR_FORMAT,
                      "%s: tensor 'lm_head.weight' differs from wte.weight; knob's GPT ties them (untied heads not supported)",
                      st->path);
    knob_free(tmp);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * llm.c */

/* Elements of each array in llm.c's order, for a config and padded vocab Vp. */
static uint64_t llmc_n_elems(const knob_gpt_config *c, uint64_t Vp)
{
    uint64_t C = (uint64_t)c->n_embd, L = (uint64_t)c->n_layer;
    return Vp * C + (uint64_t)c->block_size * C + L * (2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C +
                                                       4 * C + 4 * C * C + C) + 2 * C;
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest, ties to even; NaN stays NaN (quiet), infinities stay. */
static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

typedef struct {
    FILE *f;
    const char *path;
    int bf16;
    long at;          /* bytes consumed so far, for messages */
    unsigned char *buf;
    size_t cap;       /* bytes */
} llmc_reader;

/* Reads n values into dst (NULL: skip them). */
static knob_status llmc_read(llmc_reader *r, float *dst, size_t n, const char *what, knob_err *err)
{
    size_t es = r->bf16 ? 2 : 4;
    while (n > 0) {
        size_t k = KNOB_MIN(n, r->cap / es);
        size_t got = fread(r->buf, es, k, r->f);
        if (got != k)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated in tensor '%s' at byte %ld", r->path, what,
                             r->at + (long)(got * es));
        r->at += (long)(k * es);
        if (dst) {
            if (r->bf16)
                for (size_t i = 0; i < k; i++)
                    dst[i] = bf16_to_f32((uint16_t)(r->buf[2 * i] | r->buf[2 * i + 1] << 8));
            else
                memcpy(dst, r->buf, k * 4);
            dst += k;
        }
        n -= k;
    }
    return KNOB_OK;
}

static knob_status open_llmc(FILE *f, const char *path, long size, knob_params *P, knob_gpt_config *c,
                             knob_err *err)
{
    int32_t h[LLMC_HEADER_INTS];
    if (size < (long)sizeof h || fread(h, sizeof h, 1, f) != 1)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated: %ld bytes, the llm.c header alone is %zu", path, size,
                         sizeof h);
    if (h[1] != 3 && h[1] != 5)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: llm.c checkpoint version %d not supported (3: float32, 5: bfloat16)",
                         path, (int)h[1]);
    static const char *const field[6] = {"max_seq_len", "vocab_size", "num_layers", "num_heads", "channels",
                                         "padded_vocab_size"};
    for (int i = 0; i < 6; i++)
        if (h[2 + i] <= 0)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: header %s is %d; must be positive", path, field[i],
                             (int)h[2 + i]);
    memset(c, 0, sizeof *c);
    c->block_size = h[2];
    c->vocab_size = h[3];
    c->n_layer = h[4];
    c->n_head = h[5];
    c->n_embd = h[6];
    c->bias = 1;
    int Vp = h[7];
    if (Vp < c->vocab_size)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: padded_vocab_size %d is below vocab_size %d", path, Vp,
                         c->vocab_size);
    knob_status s = knob_gpt_config_check(c, err);
    if (s)
        return knob_err_prefix(as_format(err, s), "%s: header", path);
    int bf16 = h[1] == 5;
    uint64_t want = sizeof h + llmc_n_elems(c, (uint64_t)Vp) * (bf16 ? 2 : 4);
    if ((uint64_t)size != want)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: %s: %ld bytes, the header's sizes need %llu", path,
                         (uint64_t)size < want ? "truncated" : "trailing bytes", size, (unsigned long long)want);
    if ((s = knob_gpt_params(P, c, err)))
        return knob_err_prefix(err, "%s: header", path);

    llmc_reader r = {f, path, bf16, (long)sizeof h, NULL, 1 << 16};
    if (!(r.buf = knob_malloc(r.cap)))
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    knob_tensor *wte = knob_params_find(P, "wte.weight"), *wpe = knob_params_find(P, "wpe.weight");
    s = llmc_read(&r, wte->data, wte->n_elems, "wte", err);
    if (!s)
        s = llmc_read(&r, NULL, (size_t)(Vp - c->vocab_size) * (size_t)c->n_embd, "wte (padding)", err);
    if (!s)
        s = llmc_read(&r, wpe->data, wpe->n_elems, "wpe", err);
    char name[64];
    for (int k = 0; k < 12 && !s; k++)
        for (int l = 0; l < c->n_layer && !s; l++) {
            snprintf(name, sizeof name, "h.%d.%s", l, layer_names[k]);
            knob_tensor *t = knob_params_find(P, name);
            KNOB_ASSERT(t);   /* bias is 1: knob_gpt_params declared every one */
            s = llmc_read(&r, t->data, t->n_elems, name, err);
        }
    if (!s)
        s = llmc_read(&r, knob_params_find(P, "ln_f.weight")->data, (size_t)c->n_embd, "ln_f.weight", err);
    if (!s)
        s = llmc_read(&r, knob_params_find(P, "ln_f.bias")->data, (size_t)c->n_embd, "ln_f.bias", err);
    knob_free(r.buf);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Opening: sniff the content */

knob_status knob_gpt_open(const char *path, knob_params *P, knob_gpt_config *c, char **tok_desc,
                          knob_gpt_format *fmt, knob_err *err)
{
    knob_params_init(P);
    *tok_desc = NULL;
    knob_gpt_format fmt_local;
    if (!fmt)
        fmt = &fmt_local;
    char file[4096], config[4096];
    if (strlen(path) + 32 > sizeof file)
        return knob_fail(err, KNOB_ERR_USAGE, "%.128s...: path too long", path);
    if (is_dir(path)) {
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        if (!file_exists(file))
            return knob_fail(err, KNOB_ERR_IO, "%s: folder has no model.safetensors (a Hugging Face GPT-2 folder "
                             "holds model.safetensors and config.json)", path);
        snprintf(config, sizeof config, "%s/config.json", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(config, sizeof config, "%.*sconfig.json", slash ? (int)(slash - path + 1) : 0, path);
    }

    FILE *f;
    size_t fsize = 0;
    knob_status s = knob_fopen_regular(file, &f, &fsize, err);
    if (s)
        return s;
    int32_t magic = 0;
    if (fsize >= 4 && fread(&magic, 4, 1, f) != 1)
        s = knob_fail(err, KNOB_ERR_IO, "%s: read failed: %s", file, strerror(errno));
    if (!s && magic == LLMC_MAGIC) {
        rewind(f);
        *fmt = KNOB_GPT_FMT_LLMC;
        s = open_llmc(f, file, (long)fsize, P, c, err);
        fclose(f);
        if (!s && !(*tok_desc = knob_strdup("gpt2")))
            s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", file);
        if (s)
            knob_params_free(P);
        return s;
    }
    fclose(f);
    if (s)
        return s;
    if (magic == LLMC_TOK_MAGIC)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: an llm.c tokenizer file, not a model", file);

    knob_st st;
    if ((s = knob_st_open(&st, file, err))) {
        size_t n = strlen(file);
        if (s == KNOB_ERR_FORMAT && n > 4 && strcmp(file + n - 4, ".bin") == 0)
            return knob_fail(err, s, "%s: not an llm.c checkpoint (magic %d, want %d) nor safetensors", file,
                             (int)magic, LLMC_MAGIC);
        return s;
    }
    const char *kind = knob_st_meta(&st, "knob.model");
    if (kind && strcmp(kind, "gpt") != 0) {
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: a knob '%.64s' model, not a GPT", file, kind);
    } else if (kind) {
        *fmt = KNOB_GPT_FMT_KNOB;
        s = open_knob(&st, P, c, tok_desc, err);
    } else {
        *fmt = KNOB_GPT_FMT_HF;
        s = open_hf(&st, config, P, c, err);
        const char *tok = knob_st_meta(&st, "knob.tokenizer");   /* written by knob for other tokenizers */
        if (!s && !(*tok_desc = knob_strdup(tok && tok[0] ? tok : "gpt2")))
            s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", file);
    }
    knob_st_close(&st);
    if (s) {
        knob_params_free(P);
        knob_free(*tok_desc);
        *tok_desc = NULL;
    }
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Writers */

/* The params P must be the contract's tensors for c (as knob_gpt_params declares them). */
static knob_status check_params_match(const char *path, const knob_params *P, const knob_gpt_config *c,
                                      knob_err *err)
{
    knob_status s = knob_gpt_config_check(c, err);
    if (s)
        return knob_err_prefix(err, "%s: config", path);
    knob_params want;
    knob_params_init(&want);
    if ((s = knob_gpt_params(&want, c, err))) {
        knob_params_free(&want);
        return knob_err_prefix(err, "%s: config", path);
    }
    for (int i = 0; i < want.n && !s; i++) {
        const knob_tensor *w = want.t[i], *t = knob_params_find(P, w->name);
        char a[128], b[128];
        if (!t)
            s = knob_fail(err, KNOB_ERR_USAGE, "%s: parameter '%.128s' missing", path, w->name);
        else if (t->n_elems != w->n_elems || t->n_dims != w->n_dims ||
                 memcmp(t->shape, w->shape, (size_t)w->n_dims * sizeof *w->shape) != 0)
            s = knob_fail(err, KNOB_ERR_USAGE, "%s: parameter '%.128s' is %s, config needs %s", path, w->name,
                          knob_shape_str(a, sizeof a, t->n_dims, t->shape),
                          knob_shape_str(b, sizeof b, w->n_dims, w->shape));
        else if (!t->data)
            s = knob_fail(err, KNOB_ERR_USAGE, "%s: parameter '%.128s' has no values", path, w->name);
    }
    knob_params_free(&want);
    return s;
}

knob_status knob_gpt_save_knob(const char *path, const knob_params *P, const knob_gpt_config *c,
                               const char *tok_desc, knob_err *err)
{
    knob_status s = check_params_match(path, P, c, err);
    if (s)
        return s;
    if (!tok_desc || !tok_desc[0])
        return knob_fail(err, KNOB_ERR_USAGE, "%s: no tokenizer description to save", path);
    char *cfg = knob_gpt_config_json(c);
    if (!cfg)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    knob_kv meta[3] = {{"knob.model", "gpt"}, {"gpt.config", cfg}, {"tokenizer", tok_desc}};
    s = knob_params_save(P, path, meta, 3, err);
    knob_free(cfg);
    return s;
}

/* model.safetensors (no prefix, Conv1D weights (in, out), every tensor F32) + config.json. A model
 * without biases is written with zero biases: HF's GPT-2 always has them, and zeros change nothing. */
knob_status knob_gpt_save_hf(const char *dir, const knob_params *P, const knob_gpt_config *c, knob_err *err)
{
    return knob_gpt_save_hf_tok(dir, P, c, NULL, err);
}

knob_status knob_gpt_save_hf_tok(const char *dir, const knob_params *P, const knob_gpt_config *c,
                                 const char *tok_desc, knob_err *err)
{
    knob_status s = check_params_match(dir, P, c, err);
    if (s || (s = knob_mkdirs(dir, err)))
        return s;
    char path[4096];
    if (strlen(dir) + 32 > sizeof path)
        return knob_fail(err, KNOB_ERR_USAGE, "%.128s...: path too long", dir);

    /* the HF tensors: P's, with Conv1D weights transposed into a copy, plus zero biases if needed */
    knob_gpt_config cb = *c;
    cb.bias = 1;
    knob_params H;
    knob_params_init(&H);
    if ((s = knob_gpt_params(&H, &cb, err))) {
        knob_params_free(&H);
        return knob_err_prefix(err, "%s: config", dir);
    }
    knob_tensor **list = knob_malloc((size_t)H.n * sizeof *list);
    if (!list) {
        knob_params_free(&H);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", dir);
    }
    for (int i = 0; i < H.n; i++) {
        knob_tensor *h = H.t[i];
        const knob_tensor *t = knob_params_find(P, h->name);
        if (t && is_conv1d_weight(h->name)) {
            transpose(h->data, t->data, t->shape[0], t->shape[1]);
            int tmp = h->shape[0];
            h->shape[0] = h->shape[1];
            h->shape[1] = tmp;
        } else if (t) {
            memcpy(h->data, t->data, t->n_elems * sizeof *t->data);
        }   /* else: a bias of a bias-free model, left zero */
        list[i] = h;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    knob_kv meta[2] = {{"format", "pt"}, {"knob.tokenizer", tok_desc ? tok_desc : ""}};
    int n_meta = tok_desc && tok_desc[0] && strcmp(tok_desc, "gpt2") != 0 ? 2 : 1;
    s = knob_st_save(path, (const knob_tensor *const *)list, H.n, meta, n_meta, err);
    knob_free(list);
    knob_params_free(&H);
    if (s)
        return s;

    snprintf(path, sizeof path, "%s/config.json", dir);
    knob_atomic a;
    if ((s = knob_atomic_open(&a, path, err)))
        return s;
    fprintf(a.f,
            "{\n"
            "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
            "  \"model_type\": \"gpt2\",\n"
            "  \"activation_function\": \"gelu_new\",\n"
            "  \"layer_norm_epsilon\": 1e-05,\n"
            "  \"n_layer\": %d,\n"
            "  \"n_head\": %d,\n"
            "  \"n_embd\": %d,\n"
            "  \"n_positions\": %d,\n"
            "  \"n_ctx\": %d,\n"
            "  \"vocab_size\": %d,\n"
            "  \"n_inner\": null,\n"
            "  \"tie_word_embeddings\": true,\n"
            "  \"torch_dtype\": \"float32\"\n"
            "}\n",
            c->n_layer, c->n_head, c->n_embd, c->block_size, c->block_size, c->vocab_size);
    return knob_atomic_commit(&a, err);
}

typedef struct {
    FILE *f;
    int bf16;
    unsigned char *buf;
    size_t cap;   /* bytes */
} llmc_writer;

/* Writes n values of src (NULL: zeros). Errors show up at commit (ferror). */
static void llmc_write(llmc_writer *w, const float *src, size_t n)
{
    size_t es = w->bf16 ? 2 : 4;
    while (n > 0) {
        size_t k = KNOB_MIN(n, w->cap / es);
        if (!src)
            memset(w->buf, 0, k * es);
        else if (w->bf16)
            for (size_t i = 0; i < k; i++) {
                uint16_t b = f32_to_bf16(src[i]);
                w->buf[2 * i] = (unsigned char)(b & 0xff);
                w->buf[2 * i + 1] = (unsigned char)(b >> 8);
            }
        else
            memcpy(w->buf, src, k * 4);
        fwrite(w->buf, es, k, w->f);
        if (src)
            src += k;
        n -= k;
    }
}

/* A model without biases is written with zero biases (llm.c's layout has them); reading it back
 * gives bias 1 and the same logits. */
knob_status knob_gpt_save_llmc(const char *path, const knob_params *P, const knob_gpt_config *c, int bf16,
                               knob_err *err)
{
    knob_status s = check_params_match(path, P, c, err);
    if (s)
        return s;
    int Vp = (c->vocab_size + LLMC_VOCAB_ALIGN - 1) / LLMC_VOCAB_ALIGN * LLMC_VOCAB_ALIGN;
    int32_t h[LLMC_HEADER_INTS] = {LLMC_MAGIC, bf16 ? 5 : 3, c->block_size, c->vocab_size, c->n_layer,
                                   c->n_head, c->n_embd, Vp};
    llmc_writer w = {NULL, bf16, NULL, 1 << 16};
    if (!(w.buf = knob_malloc(w.cap)))
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    knob_atomic a;
    if ((s = knob_atomic_open(&a, path, err))) {
        knob_free(w.buf);
        return s;
    }
    w.f = a.f;
    fwrite(h, sizeof h, 1, a.f);
    const knob_tensor *wte = knob_params_find(P, "wte.weight"), *wpe = knob_params_find(P, "wpe.weight");
    llmc_write(&w, wte->data, wte->n_elems);
    llmc_write(&w, NULL, (size_t)(Vp - c->vocab_size) * (size_t)c->n_embd);
    llmc_write(&w, wpe->data, wpe->n_elems);
    char name[64];
    size_t C = (size_t)c->n_embd;
    const size_t layer_elems[12] = {C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C};
    for (int k = 0; k < 12; k++)
        for (int l = 0; l < c->n_layer; l++) {
            snprintf(name, sizeof name, "h.%d.%s", l, layer_names[k]);
            const knob_tensor *t = knob_params_find(P, name);
            llmc_write(&w, t ? t->data : NULL, layer_elems[k]);
        }
    const knob_tensor *lnfw = knob_params_find(P, "ln_f.weight"), *lnfb = knob_params_find(P, "ln_f.bias");
    llmc_write(&w, lnfw->data, C);
    llmc_write(&w, lnfb ? lnfb->data : NULL, C);
    knob_free(w.buf);
    return knob_atomic_commit(&a, err);
}

const char *knob_gpt_format_name(knob_gpt_format fmt)
{
    switch (fmt) {
    case KNOB_GPT_FMT_KNOB: return "knob";
    case KNOB_GPT_FMT_HF:   return "hf";
    case KNOB_GPT_FMT_LLMC: return "llmc";
    }
    return "?";
}
