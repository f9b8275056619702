/* gpt_train.c: training a GPT on a token array, and its checkpoints.
 *
 * A step: zero the parameter grads; for each of accum micro-batches, draw B random windows of T + 1
 * tokens (inputs and next-token targets), forward, backward (parameter grads accumulate); scale the
 * grads by 1/accum (each micro-batch's loss is a mean); clip the global norm; AdamW at the cosine
 * schedule's rate for this step. The graph is built once; a step allocates nothing.
 *
 * Exact resume: a checkpoint holds everything the next step reads: parameters, AdamW's moments and
 * step count, the data generator's state, the dropout generator's state, the steps done and the
 * training config (the schedule is a pure function of the step). Resuming and training to the end
 * gives the same bits as an uninterrupted run (tests/test_gpt.c checks it).
 *
 * Validation: fixed, evenly spaced windows of the held-out tokens, dropout off.
 *
 * Not here: the model and its graph (gpt.c), the corpus and token cache (src/io/tokens.c), the
 * command with its progress line and loss curve (cli/cmd_train_gpt.c). */
#include "knob_internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct knob_gpt_trainer {
    knob_gpt_train_config c;
    knob_params P;
    knob_gpt_graph m;
    knob_optim opt;
    knob_rng data_rng;
    const uint16_t *train, *val;
    size_t n_train, n_val;
    long step;
    float last_finite;
    long last_finite_step;
};

void knob_gpt_train_config_default(knob_gpt_train_config *c)
{
    memset(c, 0, sizeof *c);
    /* measured on the fortunes (README): at this size a higher rate and more, shorter windows
     * learn faster per second than lr 1e-3 with 16 windows of 128 */
    c->model = (knob_gpt_config){.n_layer = 4, .n_head = 4, .n_embd = 128, .block_size = 64, .vocab_size = 256,
                                 .dropout = 0.0f, .bias = 1};
    c->batch = 32;
    c->seq_len = 64;
    c->accum = 1;
    c->steps = 2000;
    c->warmup = 100;
    c->lr = 3e-3f;
    c->lr_min = 1e-4f;
    c->weight_decay = 0.1f;
    c->beta1 = 0.9f;
    c->beta2 = 0.95f;
    c->eps = 1e-8f;
    c->clip = 1.0f;
    c->seed = 42;
}

char *knob_gpt_train_config_json(const knob_gpt_train_config *c)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"batch\":%d,\"seq_len\":%d,\"accum\":%d,\"steps\":%ld,\"warmup\":%ld,\"lr\":%.9g,"
                     "\"lr_min\":%.9g,\"weight_decay\":%.9g,\"beta1\":%.9g,\"beta2\":%.9g,\"eps\":%.9g,"
                     "\"clip\":%.9g,\"seed\":\"%" PRIu64 "\"}",
                     c->batch, c->seq_len, c->accum, c->steps, c->warmup, (double)c->lr, (double)c->lr_min,
                     (double)c->weight_decay, (double)c->beta1, (double)c->beta2, (double)c->eps, (double)c->clip,
                     c->seed);
    char *s = knob_malloc((size_t)n + 1);
    if (s)
        memcpy(s, buf, (size_t)n + 1);
    return s;
}

static knob_status check_train_config(const knob_gpt_train_config *c, knob_err *err)
{
    knob_status s = knob_gpt_config_check(&c->model, err);
    if (s)
        return s;
    if (c->model.vocab_size > 65536)
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: vocabulary of %d ids; token files hold at most 65536",
                         c->model.vocab_size);
    if (c->batch < 1 || c->accum < 1 || c->steps < 1 || c->warmup < 0)
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: batch %d, accum %d, steps %ld, warmup %ld: need positive "
                         "batch, accum and steps and warmup >= 0", c->batch, c->accum, c->steps, c->warmup);
    if (c->seq_len < 1 || c->seq_len > c->model.block_size)
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: sequence length %d; need 1 to the block size %d",
                         c->seq_len, c->model.block_size);
    if (!(c->lr > 0.0f) || !(c->lr_min >= 0.0f) || !(c->clip >= 0.0f))
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: lr %g, lr_min %g, clip %g: need lr > 0, lr_min >= 0, clip >= 0",
                         (double)c->lr, (double)c->lr_min, (double)c->clip);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Life cycle */

knob_status knob_gpt_trainer_new(knob_gpt_trainer **out, const knob_gpt_train_config *c, const uint16_t *train,
                                 size_t n_train, const uint16_t *val, size_t n_val, knob_err *err)
{
    *out = NULL;
    knob_status s = check_train_config(c, err);
    if (s)
        return s;
    if (n_train < (size_t)c->seq_len + 1)
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: %zu training tokens; need at least %d (one window of "
                         "--seq-len + 1)", n_train, c->seq_len + 1);
    for (size_t i = 0; i < n_train; i++)
        if (train[i] >= c->model.vocab_size)
            return knob_fail(err, KNOB_ERR_FORMAT, "train-gpt: training token %u at %zu is outside the vocabulary of %d",
                             (unsigned)train[i], i, c->model.vocab_size);
    for (size_t i = 0; i < n_val; i++)
        if (val[i] >= c->model.vocab_size)
            return knob_fail(err, KNOB_ERR_FORMAT, "train-gpt: validation token %u at %zu is outside the vocabulary of %d",
                             (unsigned)val[i], i, c->model.vocab_size);
    knob_gpt_trainer *tr = knob_calloc(1, sizeof *tr);
    if (!tr)
        return knob_fail(err, KNOB_ERR_NOMEM, "train-gpt: out of memory");
    tr->c = *c;
    tr->train = train;
    tr->n_train = n_train;
    tr->val = val;
    tr->n_val = n_val;
    tr->last_finite = NAN;
    tr->last_finite_step = -1;
    knob_rng_seed(&tr->data_rng, c->seed ^ 0x5eed0da7aULL);
    knob_optim_config oc = {.kind = KNOB_OPTIM_ADAMW, .beta1 = c->beta1, .beta2 = c->beta2, .eps = c->eps,
                            .weight_decay = c->weight_decay};
    if ((s = knob_gpt_params(&tr->P, &c->model, err)) || (s = knob_gpt_init(&tr->P, &c->model, c->seed, err)) ||
        (s = knob_gpt_graph_build(&tr->m, &tr->P, &c->model, c->batch, c->seq_len, err)) ||
        (s = knob_optim_init(&tr->opt, &tr->P, &oc, err))) {
        knob_gpt_trainer_free(tr);
        return s;
    }
    knob_graph_seed(tr->m.g, c->seed ^ 0xd50b0u);
    *out = tr;
    return KNOB_OK;
}

void knob_gpt_trainer_free(knob_gpt_trainer *tr)
{
    if (!tr)
        return;
    knob_optim_free(&tr->opt);
    knob_gpt_graph_free(&tr->m);
    knob_params_free(&tr->P);
    knob_free(tr);
}

long knob_gpt_trainer_step_count(const knob_gpt_trainer *tr) { return tr->step; }
void knob_gpt_trainer_set_steps(knob_gpt_trainer *tr, long steps) { tr->c.steps = steps; }
knob_params *knob_gpt_trainer_params(knob_gpt_trainer *tr) { return &tr->P; }

/* ------------------------------------------------------------------------------------------------
 * Steps */

/* window b of the batch starts at off: idx = tok[off .. off+T), targets = tok[off+1 .. off+T+1) */
static void fill_window(knob_gpt_trainer *tr, const uint16_t *tok, int b, size_t off)
{
    int T = tr->m.T;
    int32_t *idx = knob_node_data_i32(tr->m.idx) + (size_t)b * T;
    int32_t *tgt = knob_node_data_i32(tr->m.targets) + (size_t)b * T;
    for (int t = 0; t < T; t++) {
        idx[t] = tok[off + (size_t)t];
        tgt[t] = tok[off + (size_t)t + 1];
    }
}

static float schedule_lr(const knob_gpt_train_config *c, long step)
{
    knob_schedule s = {.kind = KNOB_SCHED_COSINE, .lr = c->lr, .lr_min = c->lr_min, .warmup = c->warmup,
                       .total_steps = c->steps};
    return knob_schedule_lr(&s, step);
}

knob_status knob_gpt_trainer_step(knob_gpt_trainer *tr, knob_gpt_step_info *info, knob_err *err)
{
    const knob_gpt_train_config *c = &tr->c;
    long step = tr->step + 1;
    knob_params_zero_grad(&tr->P);
    knob_graph_set_training(tr->m.g, 1);
    double sum = 0;
    size_t span = tr->n_train - (size_t)tr->m.T;   /* window starts in [0, span) */
    for (int a = 0; a < c->accum; a++) {
        for (int b = 0; b < tr->m.B; b++) {
            size_t off = span > UINT32_MAX ? (size_t)(knob_rng_u64(&tr->data_rng) % span)
                                           : (size_t)knob_rng_below(&tr->data_rng, (uint32_t)span);
            fill_window(tr, tr->train, b, off);
        }
        knob_status s = knob_graph_forward(tr->m.g, err);
        if (s)
            return s;
        float loss = knob_node_data(tr->m.loss)[0];
        if (!isfinite(loss))
            return knob_fail(err, KNOB_ERR_NUMERIC, "step %ld: loss is %s (last finite %.4g at step %ld); try a lower --lr",
                             step, isnan(loss) ? "nan" : "inf", (double)tr->last_finite, tr->last_finite_step);
        sum += loss;
        knob_graph_backward(tr->m.g, tr->m.loss);
    }
    if (c->accum > 1) {
        float inv = 1.0f / (float)c->accum;
        for (size_t i = 0; i < tr->P.n_elems; i++)
            tr->P.grad[i] *= inv;
    }
    float norm = knob_clip_grad_norm(&tr->P, c->clip);
    if (!isfinite(norm))
        return knob_fail(err, KNOB_ERR_NUMERIC, "step %ld: gradient norm is %s (loss %.4g); try a lower --lr", step,
                         isnan(norm) ? "nan" : "inf", sum / c->accum);
    float lr = schedule_lr(c, tr->step);
    knob_optim_step(&tr->opt, lr);
    tr->step = step;
    tr->last_finite = (float)(sum / c->accum);
    tr->last_finite_step = step;
    if (info)
        *info = (knob_gpt_step_info){.step = step, .loss = tr->last_finite, .grad_norm = norm, .lr = lr};
    return KNOB_OK;
}

knob_status knob_gpt_trainer_eval(knob_gpt_trainer *tr, int n_batches, float *loss, knob_err *err)
{
    int B = tr->m.B, T = tr->m.T;
    *loss = NAN;
    if (tr->n_val < (size_t)T + 1 || n_batches < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: %zu validation tokens; need at least %d for one window",
                         tr->n_val, T + 1);
    size_t span = tr->n_val - (size_t)T - 1;   /* last start */
    long n = (long)n_batches * B;
    knob_graph_set_training(tr->m.g, 0);
    double sum = 0;
    for (int k = 0; k < n_batches; k++) {
        for (int b = 0; b < B; b++) {
            long w = (long)k * B + b;
            size_t off = n > 1 ? (size_t)((double)span * (double)w / (double)(n - 1)) : 0;
            fill_window(tr, tr->val, b, off);
        }
        knob_status s = knob_graph_forward(tr->m.g, err);
        if (s) {
            knob_graph_set_training(tr->m.g, 1);
            return s;
        }
        sum += knob_node_data(tr->m.loss)[0];
    }
    knob_graph_set_training(tr->m.g, 1);
    *loss = (float)(sum / n_batches);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Checkpoints */

static void rng_str(char *buf, size_t n, const knob_rng *r)
{
    snprintf(buf, n, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64, r->s[0], r->s[1], r->s[2], r->s[3]);
}

static int rng_parse(const char *s, knob_rng *r)
{
    if (!s)
        return 0;
    for (int i = 0; i < 4; i++) {
        char *end;
        unsigned long long v = strtoull(s, &end, 16);
        if (end == s || (i < 3 && *end != ' ') || (i == 3 && *end))
            return 0;
        r->s[i] = (uint64_t)v;
        s = end;
    }
    return 1;
}

knob_status knob_gpt_trainer_save(knob_gpt_trainer *tr, const char *path, const char *tok_desc, knob_err *err)
{
    knob_params *P = &tr->P;
    int n = 3 * P->n;
    knob_tensor *views = knob_calloc((size_t)n, sizeof *views);
    const knob_tensor **list = knob_calloc((size_t)n, sizeof *list);
    char *config = knob_gpt_config_json(&tr->c.model), *train = knob_gpt_train_config_json(&tr->c);
    knob_status s = KNOB_OK;
    if (!views || !list || !config || !train) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory saving", path);
        goto done;
    }
    size_t at = 0;
    for (int i = 0; i < P->n; i++) {
        list[i] = P->t[i];
        for (int k = 0; k < 2; k++) {
            knob_tensor *v = &views[(1 + k) * P->n + i];
            *v = *P->t[i];
            snprintf(v->name, sizeof v->name, "optim.%c.%.100s", k ? 'v' : 'm', P->t[i]->name);
            v->data = (k ? tr->opt.v : tr->opt.m) + at;
            v->grad = NULL;
            list[(1 + k) * P->n + i] = v;
        }
        at += P->t[i]->n_elems;
    }
    char step[32], ostep[32], rd[80], rg[80];
    snprintf(step, sizeof step, "%ld", tr->step);
    snprintf(ostep, sizeof ostep, "%ld", tr->opt.step);
    rng_str(rd, sizeof rd, &tr->data_rng);
    rng_str(rg, sizeof rg, knob_graph_rng(tr->m.g));
    knob_kv meta[] = {
        {"knob.model", "gpt"}, {"gpt.config", config}, {"tokenizer", tok_desc ? tok_desc : ""},
        {"gpt.train", train},  {"train.step", step},   {"optim.step", ostep},
        {"rng.data", rd},      {"rng.dropout", rg},
    };
    s = knob_st_save(path, list, n, meta, (int)(sizeof meta / sizeof meta[0]), err);
done:
    knob_free(views);
    knob_free(list);
    knob_free(config);
    knob_free(train);
    return s;
}

static knob_status json_num(const char *path, const cJSON *root, const char *key, double *out, knob_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(j))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: gpt.train lacks a number \"%s\"", path, key);
    *out = j->valuedouble;
    return KNOB_OK;
}

knob_status knob_gpt_checkpoint_config(const char *path, knob_gpt_train_config *c, char **tok_desc, knob_err *err)
{
    *tok_desc = NULL;
    knob_gpt_train_config_default(c);
    knob_st st;
    knob_status s = knob_st_open(&st, path, err);
    if (s)
        return s;
    const char *model = knob_st_meta(&st, "knob.model"), *cfg = knob_st_meta(&st, "gpt.config");
    const char *train = knob_st_meta(&st, "gpt.train"), *tok = knob_st_meta(&st, "tokenizer");
    if (!model || strcmp(model, "gpt") != 0 || !cfg || !train || !tok) {
        knob_st_close(&st);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: not a knob GPT training checkpoint (metadata knob.model, "
                         "gpt.config, gpt.train and tokenizer needed)", path);
    }
    if ((s = knob_gpt_config_parse(&c->model, cfg, err)) != KNOB_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        knob_st_close(&st);
        return knob_fail(err, s, "%s: %s", path, msg);
    }
    cJSON *root = cJSON_Parse(train);
    double v[11];
    static const char *keys[11] = {"batch", "seq_len", "accum", "steps", "warmup", "lr", "lr_min", "weight_decay",
                                   "beta1", "beta2", "eps"};
    if (!root)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: gpt.train is not JSON", path);
    for (int i = 0; !s && i < 11; i++)
        s = json_num(path, root, keys[i], &v[i], err);
    double clip = 0;
    if (!s)
        s = json_num(path, root, "clip", &clip, err);
    const cJSON *seed = root ? cJSON_GetObjectItemCaseSensitive(root, "seed") : NULL;
    if (!s && !cJSON_IsString(seed))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: gpt.train lacks \"seed\"", path);
    if (!s) {
        c->batch = (int)v[0];
        c->seq_len = (int)v[1];
        c->accum = (int)v[2];
        c->steps = (long)v[3];
        c->warmup = (long)v[4];
        c->lr = (float)v[5];
        c->lr_min = (float)v[6];
        c->weight_decay = (float)v[7];
        c->beta1 = (float)v[8];
        c->beta2 = (float)v[9];
        c->eps = (float)v[10];
        c->clip = (float)clip;
        c->seed = strtoull(seed->valuestring, NULL, 10);
        s = check_train_config(c, err);
    }
    cJSON_Delete(root);
    if (!s) {
        size_t n = strlen(tok);
        *tok_desc = knob_malloc(n + 1);
        if (*tok_desc)
            memcpy(*tok_desc, tok, n + 1);
        else
            s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    }
    knob_st_close(&st);
    return s;
}

static knob_status read_tensor(const knob_st *st, const char *name, const knob_tensor *like, float *out, knob_err *err)
{
    const knob_st_entry *e = knob_st_find(st, name);
    if (!e)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%s' is missing", st->path, name);
    int same = e->n_dims == like->n_dims;
    for (int d = 0; same && d < e->n_dims; d++)
        same = e->shape[d] == like->shape[d];
    if (!same) {
        char want[64];
        knob_shape_str(want, sizeof want, like->n_dims, like->shape);
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: tensor '%s' does not have the shape %s of the config", st->path,
                         name, want);
    }
    return knob_st_read_f32(st, e, out, like->n_elems, err);
}

knob_status knob_gpt_trainer_resume(knob_gpt_trainer *tr, const char *path, knob_err *err)
{
    knob_st st;
    knob_status s = knob_st_open(&st, path, err);
    if (s)
        return s;
    knob_params *P = &tr->P;
    /* read everything into fresh buffers first, so a damaged file leaves the trainer unchanged */
    size_t n = P->n_elems;
    float *buf = knob_malloc(3 * n * sizeof(float));
    if (!buf) {
        knob_st_close(&st);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t at = 0;
    for (int i = 0; !s && i < P->n; i++) {
        const knob_tensor *t = P->t[i];
        char name[KNOB_NAME_MAX + 16];
        s = read_tensor(&st, t->name, t, buf + at, err);
        snprintf(name, sizeof name, "optim.m.%s", t->name);
        if (!s)
            s = read_tensor(&st, name, t, buf + n + at, err);
        snprintf(name, sizeof name, "optim.v.%s", t->name);
        if (!s)
            s = read_tensor(&st, name, t, buf + 2 * n + at, err);
        at += t->n_elems;
    }
    const char *step = knob_st_meta(&st, "train.step"), *ostep = knob_st_meta(&st, "optim.step");
    knob_rng rd, rg;
    char *end1 = NULL, *end2 = NULL;
    long st_step = step ? strtol(step, &end1, 10) : -1, op_step = ostep ? strtol(ostep, &end2, 10) : -1;
    if (!s && (!step || *end1 || st_step < 0 || !ostep || *end2 || op_step < 0))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata train.step / optim.step missing or not a count", path);
    if (!s && (!rng_parse(knob_st_meta(&st, "rng.data"), &rd) || !rng_parse(knob_st_meta(&st, "rng.dropout"), &rg)))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata rng.data / rng.dropout missing or malformed", path);
    if (!s) {
        memcpy(P->data, buf, n * sizeof(float));
        memcpy(tr->opt.m, buf + n, n * sizeof(float));
        memcpy(tr->opt.v, buf + 2 * n, n * sizeof(float));
        tr->step = st_step;
        tr->opt.step = op_step;
        tr->data_rng = rd;
        *knob_graph_rng(tr->m.g) = rg;
    }
    knob_free(buf);
    knob_st_close(&st);
    return s;
}
