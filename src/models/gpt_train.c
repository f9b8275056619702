/* gpt_train.c: the GPT trainer: training a GPT on a token array, its run schedule and its
 * checkpoints.
 *
 * A step (src/train/step.c): zero the parameter grads; for each of accum micro-batches, draw B
 * random windows of T + 1 tokens (inputs and next-token targets), forward, backward (parameter
 * grads accumulate); scale the grads by 1/accum; clip the global norm; AdamW at the cosine
 * schedule's rate for this step. The graph is built once; a step allocates nothing.
 *
 * A run (knob_gpt_trainer_run): steps to the schedule's end, --stop-after or the clock, with a
 * validation loss every eval_every steps and at the end, and a checkpoint every ckpt_every steps
 * and at the end. --time-limit fits the schedule to the clock: after 4 steps, and every 50 as the
 * speed settles, the steps left are what the mean time per step so far allows (validation
 * included); a warm-up longer than the run is scaled to the same fraction of the steps. Progress
 * goes to a callback; printing is the CLI's.
 *
 * Exact resume: a checkpoint (src/train/checkpoint.c, family "gpt") holds everything the next
 * step reads: parameters, AdamW's moments and step count, the data generator's state ("data"),
 * the dropout generator's state ("dropout"), the steps done and the training config (the
 * schedule is a pure function of the step); its state records the corpus (files and a hash of the
 * text) and, when there were any, the steps skipped as non-finite, so a resume finds it again and
 * keeps the count. Metadata gpt.config and tokenizer make it a model file for
 * knob generate as well. Resuming and training to the end gives the same bits as an
 * uninterrupted run (tests/test_gpt.c checks it).
 *
 * Validation: fixed, evenly spaced windows of the held-out tokens, dropout off.
 *
 * Under mpirun (src/train/dist.c) the global batch (batch x accum windows) and the schedule stay
 * the user's: with N ranks, g = gcd(accum, N) groups of q = N / g ranks each take accum / g of the
 * micro-batches, and the q ranks of a group split each micro-batch's rows (batch / q each; an error
 * when q does not divide batch). Every rank draws all the step's window offsets from the same
 * data generator in the same order as a single process does and takes its own, so the data order,
 * the checkpoints and the resume are the same for any N; a checkpoint written with N ranks resumes
 * with any other. The gradient sum is the single process's up to rounding (the micro-batches'
 * contributions are added in another grouping). Validation is split over the ranks by batches.
 * Rank 0 alone writes checkpoints; with --time-limit rank 0's clock decides for all. Dropout:
 * each step every rank seeds its masks' generator from the shared "dropout" generator and its rank
 * (src/train/step.c), so with dropout N ranks match one process in distribution only.
 *
 * Not here: the model and its graph (gpt.c), the corpus and token cache (src/io/tokens.c), the
 * command with its progress line and loss curve (cli/cmd_train_gpt.c). */
#include "knob_internal.h"

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
    long n_skipped;            /* steps skipped as non-finite (c.skip_nonfinite), resumed ones included */
    knob_step st;              /* the step helper, over m.g */
    int fill_val;              /* eval fill: which windows */
    char **corpus;             /* the corpus files (n_corpus), recorded in checkpoints */
    int n_corpus;
    uint64_t corpus_hash;
    /* data parallelism: this rank's share of the global batch */
    int n_ranks, rank, rows, micro;   /* rows per micro-batch here, micro-batches here */
    int group, sub, q;                /* micro-batch group, place in it, ranks per group */
    size_t *offs;                     /* (batch x accum) the step's window starts, in draw order */
    knob_dist_comm *comm;             /* NULL alone */
    knob_params slice;                /* ZeRO-1: the optimizer's view of this rank's slice */
    knob_rng drop_rng;                /* under mpirun: the dropout generator the ranks share (step.c) */
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
    c->val_frac = 0.1f;
}

static knob_json *train_config_obj(const knob_gpt_train_config *c)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);   /* a string: a JSON number would lose bits */
    knob_json *j = knob_json_new_object();
    int ok = knob_json_add_number(j, "batch", c->batch) && knob_json_add_number(j, "seq_len", c->seq_len) &&
             knob_json_add_number(j, "accum", c->accum) && knob_json_add_number(j, "steps", (double)c->steps) &&
             knob_json_add_number(j, "warmup", (double)c->warmup) && knob_json_add_number(j, "lr", c->lr) &&
             knob_json_add_number(j, "lr_min", c->lr_min) && knob_json_add_number(j, "weight_decay", c->weight_decay) &&
             knob_json_add_number(j, "beta1", c->beta1) && knob_json_add_number(j, "beta2", c->beta2) &&
             knob_json_add_number(j, "eps", c->eps) && knob_json_add_number(j, "clip", c->clip) &&
             knob_json_add_number(j, "val_frac", c->val_frac) && knob_json_add_string(j, "seed", seed);
    if (!ok) {
        knob_json_free(j);
        return NULL;
    }
    return j;
}

char *knob_gpt_train_config_json(const knob_gpt_train_config *c)
{
    knob_json *j = train_config_obj(c);
    char *s = knob_json_print(j);
    knob_json_free(j);
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
    if (c->lr_min > c->lr)
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: --lr-min %g is above --lr %g", (double)c->lr_min, (double)c->lr);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Life cycle */

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

/* a training micro-batch: B random windows. The first draws the whole step's batch x accum
 * windows, in the order a single process draws them micro-batch by micro-batch; this rank's
 * micro-batch `micro` is global micro-batch group * micro-batches + micro, rows sub * rows on. */
static knob_status fill_train(void *ctx, int micro, int *rows, knob_err *err)
{
    knob_gpt_trainer *tr = ctx;
    size_t span = tr->n_train - (size_t)tr->m.T;   /* window starts in [0, span) */
    size_t n = (size_t)tr->c.batch * (size_t)tr->c.accum;
    if (micro == 0)
        for (size_t i = 0; i < n; i++)
            tr->offs[i] = span > UINT32_MAX ? (size_t)(knob_rng_u64(&tr->data_rng) % span)
                                            : (size_t)knob_rng_below(&tr->data_rng, (uint32_t)span);
    size_t at = (size_t)(tr->group * tr->micro + micro) * (size_t)tr->c.batch + (size_t)tr->sub * (size_t)tr->rows;
    for (int b = 0; b < tr->m.B; b++)
        fill_window(tr, tr->train, b, tr->offs[at + (size_t)b]);
    *rows = tr->m.B;
    (void)err;
    return KNOB_OK;
}

static int gcd(int a, int b)
{
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

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
    knob_rng_seed(&tr->data_rng, c->seed ^ 0x5eed0da7aULL);
    knob_optim_config oc = {.kind = KNOB_OPTIM_ADAMW, .beta1 = c->beta1, .beta2 = c->beta2, .eps = c->eps,
                            .weight_decay = c->weight_decay};
    /* this rank's share: g groups of q ranks; a group takes accum / g micro-batches, a rank of
     * it batch / q rows of each */
    tr->n_ranks = knob_dist_size();
    tr->rank = knob_dist_rank();
    int g = gcd(c->accum, tr->n_ranks);
    tr->q = tr->n_ranks / g;
    tr->group = tr->rank / tr->q;
    tr->sub = tr->rank % tr->q;
    tr->micro = c->accum / g;
    tr->rows = c->batch / tr->q;
    if (c->batch % tr->q) {
        knob_free(tr);
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: a global batch of %d x %d windows (--batch x --accum) does "
                         "not split over %d ranks; make --batch a multiple of %d or --accum a multiple of %d",
                         c->batch, c->accum, tr->n_ranks, tr->q, tr->n_ranks);
    }
    tr->offs = knob_malloc((size_t)c->batch * (size_t)c->accum * sizeof *tr->offs);
    if (!tr->offs) {
        knob_free(tr);
        return knob_fail(err, KNOB_ERR_NOMEM, "train-gpt: out of memory");
    }
    if ((s = knob_gpt_params(&tr->P, &c->model, err)) || (s = knob_gpt_init(&tr->P, &c->model, c->seed, err)) ||
        (s = knob_gpt_graph_build(&tr->m, &tr->P, &c->model, tr->rows, c->seq_len, err)) ||
        (s = knob_dist_comm_new(&tr->comm, tr->P.n_elems, err))) {
        knob_gpt_trainer_free(tr);
        return s;
    }
    int shard = c->shard_optimizer && tr->comm;
    if (shard) {
        size_t lo, hi;
        knob_dist_slice(tr->P.n_elems, tr->rank, &lo, &hi);
        s = knob_params_slice(&tr->slice, &tr->P, lo, hi, err);
    }
    if (s || (s = knob_optim_init(&tr->opt, shard ? &tr->slice : &tr->P, &oc, err))) {
        knob_gpt_trainer_free(tr);
        return s;
    }
    knob_graph_seed(tr->m.g, c->seed ^ 0xd50b0u);
    tr->drop_rng = *knob_graph_rng(tr->m.g);
    tr->st = (knob_step){.g = tr->m.g, .loss = tr->m.loss, .P = &tr->P, .opt = &tr->opt, .accum = tr->micro,
                         .clip = c->clip, .fill = fill_train, .ctx = tr, .last_finite = NAN, .last_finite_step = -1,
                         .skip_nonfinite = c->skip_nonfinite, .dist = tr->comm, .shard = shard,
                         .dropout = &tr->drop_rng};
    *out = tr;
    return KNOB_OK;
}

static void free_corpus(knob_gpt_trainer *tr)
{
    for (int i = 0; i < tr->n_corpus; i++)
        knob_free(tr->corpus[i]);
    knob_free(tr->corpus);
    tr->corpus = NULL;
    tr->n_corpus = 0;
}

void knob_gpt_trainer_free(knob_gpt_trainer *tr)
{
    if (!tr)
        return;
    free_corpus(tr);
    knob_optim_free(&tr->opt);
    knob_params_slice_free(&tr->slice);
    knob_dist_comm_free(tr->comm);
    knob_free(tr->offs);
    knob_gpt_graph_free(&tr->m);
    knob_params_free(&tr->P);
    knob_free(tr);
}

long knob_gpt_trainer_step_count(const knob_gpt_trainer *tr) { return tr->step; }
void knob_gpt_trainer_set_steps(knob_gpt_trainer *tr, long steps) { tr->c.steps = steps; }
knob_params *knob_gpt_trainer_params(knob_gpt_trainer *tr) { return &tr->P; }
int knob_gpt_trainer_rows(const knob_gpt_trainer *tr) { return tr->rows; }
int knob_gpt_trainer_micro(const knob_gpt_trainer *tr) { return tr->micro; }
const knob_gpt_train_config *knob_gpt_trainer_config(const knob_gpt_trainer *tr) { return &tr->c; }

uint64_t knob_gpt_corpus_hash(const char *text, size_t len) { return knob_hash_bytes(text, len); }

knob_status knob_gpt_trainer_set_corpus(knob_gpt_trainer *tr, char *const *files, int n_files, const char *text,
                                        size_t len, knob_err *err)
{
    free_corpus(tr);
    tr->corpus = knob_calloc((size_t)KNOB_MAX(n_files, 1), sizeof *tr->corpus);
    for (int i = 0; tr->corpus && i < n_files; i++, tr->n_corpus++)
        if (!(tr->corpus[i] = knob_strdup(files[i]))) {
            free_corpus(tr);
            break;
        }
    if (!tr->corpus)
        return knob_fail(err, KNOB_ERR_NOMEM, "train-gpt: out of memory");
    tr->corpus_hash = knob_gpt_corpus_hash(text, len);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Steps */

static float schedule_lr(const knob_gpt_train_config *c, long step)
{
    knob_schedule s = {.kind = KNOB_SCHED_COSINE, .lr = c->lr, .lr_min = c->lr_min, .warmup = c->warmup,
                       .total_steps = c->steps};
    return knob_schedule_lr(&s, step);
}

knob_status knob_gpt_trainer_step(knob_gpt_trainer *tr, knob_gpt_step_info *info, knob_err *err)
{
    long step = tr->step + 1;
    float lr = schedule_lr(&tr->c, tr->step);
    knob_step_result r;
    knob_graph_set_training(tr->m.g, 1);
    knob_status s = knob_step_run(&tr->st, step, lr, &r, err);
    if (s)
        return s;
    tr->step = step;
    tr->n_skipped += r.skipped;
    if (info)
        *info = (knob_gpt_step_info){.step = step, .loss = (float)r.loss, .grad_norm = r.grad_norm, .lr = lr,
                                     .skipped = r.skipped};
    return KNOB_OK;
}

/* validation: n_batches x batch fixed windows evenly spaced over the held-out tokens, in batches of
 * this rank's rows (q per global batch); rank r takes local batches r, r + N, ... (k below) */
static knob_status fill_val(void *ctx, int i, int *rows, knob_err *err)
{
    knob_gpt_trainer *tr = ctx;
    int B = tr->m.B, T = tr->m.T;
    size_t span = tr->n_val - (size_t)T - 1;   /* last start */
    long n = (long)tr->fill_val * tr->c.batch, k = (long)tr->rank + (long)i * tr->n_ranks;
    for (int b = 0; b < B; b++) {
        long w = k * B + b;
        size_t off = n > 1 ? (size_t)((double)span * (double)w / (double)(n - 1)) : 0;
        fill_window(tr, tr->val, b, off);
    }
    *rows = B;
    (void)err;
    return KNOB_OK;
}

knob_status knob_gpt_trainer_eval(knob_gpt_trainer *tr, int n_batches, float *loss, knob_err *err)
{
    int T = tr->m.T;
    *loss = NAN;
    if (tr->n_val < (size_t)T + 1 || n_batches < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: %zu validation tokens; need at least %d for one window",
                         tr->n_val, T + 1);
    tr->fill_val = n_batches;
    long K = (long)n_batches * tr->q;   /* local batches in all */
    int mine = K > tr->rank ? (int)((K - tr->rank + tr->n_ranks - 1) / tr->n_ranks) : 0;
    knob_eval e = {.g = tr->m.g, .loss = tr->m.loss, .n_batches = mine, .fill = fill_val, .ctx = tr};
    knob_eval_stats es;
    knob_graph_set_training(tr->m.g, 0);
    knob_status s = knob_eval_run(&e, &es, NULL, err);
    knob_graph_set_training(tr->m.g, 1);
    if (!s && tr->comm) {   /* the batches' mean over all ranks, their sums added in rank order */
        double v = mine ? es.loss * mine : 0;
        if (!(s = knob_dist_sum_f64(&v, 1, tr->step, err)))
            es.loss = v / (double)K;
    }
    if (!s)
        *loss = (float)es.loss;
    return s;
}

/* Every rank must run the same job: the same settings, corpus, tokenizer and starting point. */
static knob_status check_ranks(knob_gpt_trainer *tr, const knob_gpt_run *run, knob_err *err)
{
    if (!tr->comm)
        return KNOB_OK;
    const char *tok_desc = run->tok_desc;
    char *model = knob_gpt_config_json(&tr->c.model), *train = knob_gpt_train_config_json(&tr->c);
    long at[3] = {tr->step, tr->opt.step, tr->st.shard};
    /* what decides when the ranks meet: evaluations, checkpoints, the end of the run */
    double when[8] = {run->eval_every, run->eval_batches, run->ckpt_every, (double)run->stop_after,
                      (double)run->max_steps, run->time_limit, run->ckpt_path != NULL, tr->c.skip_nonfinite};
    knob_status s = !model || !train ? knob_fail(err, KNOB_ERR_NOMEM, "train-gpt: out of memory") : KNOB_OK;
    if (!s)
        s = knob_dist_check_same("model settings", model, strlen(model), err);
    if (!s)
        s = knob_dist_check_same("training settings", train, strlen(train), err);
    if (!s)
        s = knob_dist_check_same("corpus", &tr->corpus_hash, sizeof tr->corpus_hash, err);
    if (!s)
        s = knob_dist_check_same("tokenizer", tok_desc ? tok_desc : "", tok_desc ? strlen(tok_desc) : 0, err);
    if (!s)
        s = knob_dist_check_same("step, optimizer step and --shard-optimizer", at, sizeof at, err);
    if (!s)
        s = knob_dist_check_same("run settings (--eval-every, --eval-batches, --ckpt-every, --stop-after, "
                                 "--time-limit, --skip-nonfinite)", when, sizeof when, err);
    if (!s)
        s = knob_dist_check_same("parameters", tr->P.data, tr->P.n_elems * sizeof(float), err);
    knob_free(model);
    knob_free(train);
    if (s)
        knob_err_prefix(err, "train-gpt");
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * The run */

/* --time-limit: the schedule's length from the mean time per step so far (validation's share
 * estimated until the first one has run); a warm-up longer than the run keeps its planned
 * fraction of the steps */
static void fit_to_clock(knob_gpt_trainer *tr, const knob_gpt_run *run, long step, long done_steps, double el,
                         double eval_s, long planned, long warmup0, double *per_out)
{
    double per = el / (double)done_steps;
    if (eval_s == 0)
        per *= 1.0 + (double)run->eval_batches / (3.0 * run->eval_every);
    long fit = step + (long)((run->time_limit - el) / per);
    if (fit < step + 1)
        fit = step + 1;
    tr->c.steps = run->max_steps && run->max_steps < fit ? run->max_steps : fit;
    tr->c.warmup = warmup0;
    if (tr->c.steps < warmup0 && planned > 0)
        tr->c.warmup = KNOB_MIN(warmup0, (long)((double)warmup0 * (double)tr->c.steps / (double)planned));
    *per_out = per;
}

static knob_status save_to(knob_gpt_trainer *tr, const char *path, const char *tok_desc, knob_ckpt_writer *w,
                           knob_err *err);
static knob_status run_steps(knob_gpt_trainer *tr, const knob_gpt_run *run, knob_gpt_run_cb cb, void *ctx,
                             knob_gpt_run_result *res, knob_ckpt_writer *w, long step0, long planned, long warmup0,
                             double start, knob_err *err);

knob_status knob_gpt_trainer_run(knob_gpt_trainer *tr, const knob_gpt_run *run, knob_gpt_run_cb cb, void *ctx,
                                 knob_gpt_run_result *res, knob_err *err)
{
    memset(res, 0, sizeof *res);
    res->train_loss = res->val_loss = NAN;
    if (run->eval_every < 1 || run->eval_batches < 1 || run->ckpt_every < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "train-gpt: eval_every, eval_batches and ckpt_every must be positive");
    long step0 = tr->step, planned = tr->c.steps, warmup0 = tr->c.warmup;
    double start = knob_now();
    knob_status s = check_ranks(tr, run, err);
    if (s)
        return s;
    /* checkpoints in the background on rank 0 (the one that writes): the copy of the state is
     * allocated here, once; a write's error comes back at the next checkpoint or at the end */
    knob_ckpt_writer *w = NULL;
    int n_moments = tr->opt.v ? 2 : tr->opt.m ? 1 : 0;
    if (run->ckpt_path && tr->rank == 0 && !(w = knob_ckpt_writer_new(&tr->P, n_moments, err)))
        return err->code;
    s = run_steps(tr, run, cb, ctx, res, w, step0, planned, warmup0, start, err);
    knob_status sw = knob_ckpt_writer_wait(w, s ? &(knob_err){0} : err);
    knob_ckpt_writer_free(w);
    return s ? s : sw;
}

static knob_status run_steps(knob_gpt_trainer *tr, const knob_gpt_run *run, knob_gpt_run_cb cb, void *ctx,
                             knob_gpt_run_result *res, knob_ckpt_writer *w, long step0, long planned, long warmup0,
                             double start, knob_err *err)
{
    const knob_gpt_train_config *c = &tr->c;
    long step = step0, tokens_per_step = (long)c->batch * c->seq_len * c->accum;
    double eval_s = 0;
    int sized = 0;
    knob_status s;
    while (step < c->steps) {
        knob_gpt_event ev = {.kind = KNOB_GPT_EV_STEP};
        if ((s = knob_gpt_trainer_step(tr, &ev.step, err)) != KNOB_OK)
            return s;
        step = ev.step.step;
        if (!ev.step.skipped)
            res->train_loss = ev.step.loss;
        double el = knob_now() - start;
        if (run->time_limit > 0 && tr->comm) {   /* rank 0's clock decides for every rank */
            double v = tr->rank == 0 ? el : 0;
            if ((s = knob_dist_sum_f64(&v, 1, step, err)) != KNOB_OK)
                return s;
            el = v;
        }
        long done_steps = step - step0;
        if (run->time_limit > 0 && (done_steps == 4 || (sized && done_steps % 50 == 0)) && el < run->time_limit) {
            double per;
            fit_to_clock(tr, run, step, done_steps, el, eval_s, planned, warmup0, &per);
            if (!sized && cb) {
                knob_gpt_event note = {.kind = KNOB_GPT_EV_SIZED, .step = ev.step, .steps = c->steps, .elapsed = el,
                                       .sec_per_step = per, .warmup = c->warmup, .warmup_was = warmup0};
                cb(&note, ctx);
            }
            sized = 1;
        }
        int last = step >= c->steps || (run->time_limit > 0 && el >= run->time_limit) ||
                   (run->stop_after > 0 && step - step0 >= run->stop_after);
        ev.steps = c->steps;
        ev.elapsed = el;
        ev.tok_s = (double)(step - step0) * (double)tokens_per_step / fmax(el, 1e-9);
        ev.eta = (double)(c->steps - step) * el / (double)(step - step0);
        if (run->time_limit > 0)
            ev.eta = fmin(ev.eta, run->time_limit - el);
        if (cb)
            cb(&ev, ctx);
        if (tr->n_val && (step % run->eval_every == 0 || last)) {
            double te = knob_now();
            if ((s = knob_gpt_trainer_eval(tr, run->eval_batches, &res->val_loss, err)) != KNOB_OK)
                return s;
            eval_s += knob_now() - te;
            ev.kind = KNOB_GPT_EV_EVAL;
            ev.val_loss = res->val_loss;
            if (cb)
                cb(&ev, ctx);
        }
        if ((step % run->ckpt_every == 0 || last) && run->ckpt_path &&
            (s = save_to(tr, run->ckpt_path, run->tok_desc, w, err)) != KNOB_OK)
            return s;
        if (last) {
            res->stopped_by_clock = step < c->steps;
            break;
        }
    }
    res->seconds = knob_now() - start;
    res->eval_seconds = eval_s;
    res->steps_done = step - step0;
    res->tok_s = (double)(step - step0) * (double)tokens_per_step / fmax(res->seconds, 1e-9);
    res->skipped = tr->n_skipped;
    if (step == step0 && run->ckpt_path && (s = save_to(tr, run->ckpt_path, run->tok_desc, w, err)) != KNOB_OK)
        return s;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Checkpoints */

static knob_json *corpus_state(const knob_gpt_trainer *tr)
{
    knob_json *st = knob_json_new_object(), *co = knob_json_new_object(), *files = knob_json_new_array();
    char hash[24];
    snprintf(hash, sizeof hash, "%016" PRIx64, tr->corpus_hash);
    int ok = st && co && files;
    for (int i = 0; ok && i < tr->n_corpus; i++)
        ok = knob_json_push(files, knob_json_new_string(tr->corpus[i]));
    if (ok) {
        ok = knob_json_add(co, "files", files) && knob_json_add_string(co, "hash", hash);
        files = NULL;
    }
    if (ok) {
        ok = knob_json_add(st, "corpus", co);
        co = NULL;
    }
    knob_json_free(files);
    knob_json_free(co);
    if (!ok) {
        knob_json_free(st);
        return NULL;
    }
    return st;
}

/* ZeRO-1: rank 0 gathers the moments' slices into full copies, so a checkpoint is the same
 * whatever the ranks: m into the gradient buffer (free between steps: the next one zeroes it),
 * v into *v_buf (knob_malloc'd); the others only send */
static knob_status gather_moments(knob_gpt_trainer *tr, float **m, float **v, float **v_buf, knob_err *err)
{
    size_t n = tr->P.n_elems;
    *m = *v = *v_buf = NULL;
    if (tr->rank == 0) {
        if (!(*v_buf = knob_malloc(n * sizeof(float))))
            return knob_fail(err, KNOB_ERR_NOMEM, "train-gpt: out of memory gathering the optimizer state");
        *m = tr->P.grad;
        *v = *v_buf;
    }
    knob_status s = knob_dist_gather(tr->comm, tr->opt.m, *m, tr->step, err);
    if (!s)
        s = knob_dist_gather(tr->comm, tr->opt.v, *v, tr->step, err);
    return s;
}

/* w NULL: written before returning; else handed to the background writer (see knob_ckpt_writer) */
static knob_status save_to(knob_gpt_trainer *tr, const char *path, const char *tok_desc, knob_ckpt_writer *w,
                           knob_err *err)
{
    knob_optim opt = tr->opt;   /* with ZeRO-1: over all the parameters, the moments gathered */
    float *full_v = NULL;
    if (tr->st.shard) {
        knob_status s = gather_moments(tr, &opt.m, &opt.v, &full_v, err);
        opt.p = &tr->P;
        if (s || tr->rank != 0) {
            knob_free(full_v);
            return s;
        }
    }
    if (tr->rank != 0)
        return KNOB_OK;   /* rank 0 alone writes */
    char *config = knob_gpt_config_json(&tr->c.model);
    knob_json *train = train_config_obj(&tr->c), *state = tr->n_corpus ? corpus_state(tr) : NULL;
    int ok = !tr->n_corpus || state;
    if (ok && tr->n_skipped) {   /* only when there were skips: other runs keep their bytes */
        if (!state)
            ok = (state = knob_json_new_object()) != NULL;
        ok = ok && knob_json_add_number(state, "skipped", (double)tr->n_skipped);
    }
    knob_status s;
    if (!config || !train || !ok) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory saving", path);
    } else {
        knob_kv extra[1] = {{"tokenizer", (char *)(tok_desc ? tok_desc : "")}};
        knob_ckpt c = {.family = "gpt", .config = config, .P = &tr->P, .opt = &opt, .step = tr->step, .n_rng = 2,
                       .rng = {{"data", &tr->data_rng}, {"dropout", tr->comm ? &tr->drop_rng : knob_graph_rng(tr->m.g)}}, .train = train,
                       .state = state, .extra = extra, .n_extra = 1};
        s = w ? knob_ckpt_writer_save(w, &path, 1, &c, err) : knob_ckpt_save(path, &c, err);
    }
    knob_free(config);
    knob_json_free(train);
    knob_json_free(state);
    knob_free(full_v);
    return s;
}

knob_status knob_gpt_trainer_save(knob_gpt_trainer *tr, const char *path, const char *tok_desc, knob_err *err)
{
    return save_to(tr, path, tok_desc, NULL, err);
}

static knob_status open_gpt(knob_ckpt_file *f, const char *path, knob_err *err)
{
    knob_status s = knob_ckpt_open(f, path, "gpt", err);
    if (!s && ((s = knob_ckpt_need_state(f, err)) || !f->train || !knob_st_meta(&f->st, "tokenizer"))) {
        if (!s)
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: not a knob GPT training checkpoint (training config and "
                          "tokenizer needed)", path);
        knob_ckpt_close(f);
    }
    return s;
}

knob_status knob_gpt_checkpoint_config(const char *path, knob_gpt_train_config *c, char **tok_desc, knob_err *err)
{
    *tok_desc = NULL;
    knob_gpt_train_config_default(c);
    knob_ckpt_file f;
    knob_status s = open_gpt(&f, path, err);
    if (s)
        return s;
    if ((s = knob_gpt_config_parse(&c->model, f.config, err)) != KNOB_OK) {
        knob_err_prefix(err, "%s", path);
        knob_ckpt_close(&f);
        return s;
    }
    const knob_json *t = f.train;
    const char *what = "gpt.train", *seed = NULL;
    double v[8];
    static const char *const keys[8] = {"lr", "lr_min", "weight_decay", "beta1", "beta2", "eps", "clip", NULL};
    for (int i = 0; !s && keys[i]; i++)
        s = knob_json_get_double(t, keys[i], 1, &v[i], what, err);
    if (!s && !(s = knob_json_get_int(t, "batch", 1, 1 << 20, 1, &c->batch, what, err)) &&
        !(s = knob_json_get_int(t, "seq_len", 1, 1 << 20, 1, &c->seq_len, what, err)) &&
        !(s = knob_json_get_int(t, "accum", 1, 1 << 20, 1, &c->accum, what, err)) &&
        !(s = knob_json_get_long(t, "steps", 1, 1L << 50, 1, &c->steps, what, err)) &&
        !(s = knob_json_get_long(t, "warmup", 0, 1L << 50, 1, &c->warmup, what, err)))
        s = knob_json_get_string(t, "seed", 1, &seed, what, err);
    /* val_frac: absent from checkpoints written before it was recorded, which all used 0.1 unless
     * told otherwise on the command line */
    double vf = 0.1;
    if (!s)
        s = knob_json_get_double(t, "val_frac", 0, &vf, what, err);
    if (!s && !(vf >= 0 && vf <= 0.5))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: 'val_frac' %g is outside [0, 0.5]", what, vf);
    if (!s && (!seed[0] || strspn(seed, "0123456789") != strlen(seed) || strlen(seed) > 20))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: 'seed' must be a decimal number, got '%.40s'", what, seed);
    if (s) {
        knob_err_prefix(err, "%s", path);
    } else {
        c->val_frac = (float)vf;
        c->lr = (float)v[0];
        c->lr_min = (float)v[1];
        c->weight_decay = (float)v[2];
        c->beta1 = (float)v[3];
        c->beta2 = (float)v[4];
        c->eps = (float)v[5];
        c->clip = (float)v[6];
        c->seed = strtoull(seed, NULL, 10);
        s = check_train_config(c, err);
    }
    if (!s && !(*tok_desc = knob_strdup(knob_st_meta(&f.st, "tokenizer"))))
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    knob_ckpt_close(&f);
    return s;
}

knob_status knob_gpt_checkpoint_corpus(const char *path, char ***files, int *n_files, uint64_t *hash, knob_err *err)
{
    *files = NULL;
    *n_files = 0;
    *hash = 0;
    knob_ckpt_file f;
    knob_status s = open_gpt(&f, path, err);
    if (s)
        return s;
    const knob_json *co = knob_json_get(f.state, "corpus"), *list = knob_json_get(co, "files");
    const char *h = knob_json_string(knob_json_get(co, "hash"));
    int n = knob_json_size(list);
    if (co && (!h || strlen(h) != 16 || !knob_json_is_array(list) || n < 1))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: the recorded corpus is malformed", path);
    if (!s && co) {
        *hash = (uint64_t)strtoull(h, NULL, 16);
        *files = knob_calloc((size_t)n, sizeof **files);
        int i = 0;
        for (const knob_json *e = knob_json_child(list); *files && e; e = knob_json_next(e), i++) {
            if (!knob_json_string(e)) {
                s = knob_fail(err, KNOB_ERR_FORMAT, "%s: the recorded corpus is malformed", path);
                break;
            }
            if (!((*files)[i] = knob_strdup(knob_json_string(e)))) {
                s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
        }
        if (!*files)
            s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
        *n_files = i;
        if (s) {
            for (int k = 0; *files && k < n; k++)
                knob_free((*files)[k]);
            knob_free(*files);
            *files = NULL;
            *n_files = 0;
        }
    }
    knob_ckpt_close(&f);
    return s;
}

knob_status knob_gpt_trainer_resume(knob_gpt_trainer *tr, const char *path, knob_err *err)
{
    knob_ckpt_file f;
    knob_status s = open_gpt(&f, path, err);
    if (s)
        return s;
    knob_params *P = &tr->P;
    /* read everything into fresh buffers first, so a damaged file leaves the trainer unchanged */
    size_t n = P->n_elems;
    float *buf = knob_malloc(3 * n * sizeof(float));
    knob_rng rd, rg;
    long skipped = 0;
    if (!buf)
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    if (!s && !(s = knob_ckpt_read(&f, P, "", buf, err)) && !(s = knob_ckpt_read(&f, P, "optim.m.", buf + n, err)) &&
        !(s = knob_ckpt_read(&f, P, "optim.v.", buf + 2 * n, err)) && !(s = knob_ckpt_read_rng(&f, "data", &rd, err)))
        s = knob_ckpt_read_rng(&f, "dropout", &rg, err);
    if (!s)
        s = knob_json_get_long(f.state, "skipped", 0, 1L << 50, 0, &skipped, path, err);
    if (!s) {
        memcpy(P->data, buf, n * sizeof(float));
        size_t lo = 0, hi = n;   /* with ZeRO-1 this rank's optimizer keeps its slice only */
        if (tr->st.shard)
            knob_dist_slice(n, tr->rank, &lo, &hi);
        memcpy(tr->opt.m, buf + n + lo, (hi - lo) * sizeof(float));
        memcpy(tr->opt.v, buf + 2 * n + lo, (hi - lo) * sizeof(float));
        tr->step = f.step;
        tr->opt.step = f.optim_step;
        tr->data_rng = rd;
        *knob_graph_rng(tr->m.g) = rg;
        tr->drop_rng = rg;
        tr->n_skipped = skipped;
    }
    knob_free(buf);
    knob_ckpt_close(&f);
    return s;
}
