/* cmd_train_gpt.c: `knob train-gpt [CORPUS...]`: train a GPT on text files.
 *
 * Reads the corpus (default: fortune's text files), builds the tokenizer (--tokenizer), tokenizes
 * once into DIR/tokens.bin (reused while the files and the tokenizer stay the same), holds back the
 * last --val-frac of the tokens for validation, and trains with src/models/gpt_train.c. Prints a
 * progress line on a terminal (plain lines otherwise), the validation loss every --eval-every steps,
 * and writes DIR/gpt.safetensors (weights, optimizer and RNG state; resumable with --resume) and
 * DIR/loss.svg (training and validation loss). --resume without a corpus trains on the one the
 * checkpoint recorded; with one, it must be the same text.
 *
 * Under mpirun (`mpirun -np N knob train-gpt ...`, docs/DISTRIBUTED.md) the N processes train one
 * model: rank 0 tokenizes first (the others then read its cache), prints, and writes the
 * checkpoint and the picture; the other ranks' stdout goes to /dev/null (their errors still reach
 * stderr). --shard-optimizer keeps each rank's share of AdamW's moments only (ZeRO-1).
 *
 * Not here: the run (its evaluation and checkpoint schedule, --time-limit's fitting), the model
 * and checkpoints (src/models/gpt_train.c), tokenizers (src/text/). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_CORPUS "/usr/share/games/fortunes"

static void fmt_duration(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* ------------------------------------------------------------------------------------------------
 * Tokenizer and tokens */

static int tokenizer_name_ok(const char *spec)
{
    return strcmp(spec, "char") == 0 || strcmp(spec, "byte") == 0 || strcmp(spec, "gpt2") == 0 ||
           strncmp(spec, "bpe:", 4) == 0;
}

static knob_status make_tokenizer(const char *spec, const char *text, size_t len, knob_tokenizer **t, knob_err *err)
{
    if (strcmp(spec, "char") == 0)
        return knob_tok_new_char(t, text, len, err);
    if (strcmp(spec, "byte") == 0 || strcmp(spec, "gpt2") == 0 || strncmp(spec, "bpe:", 4) == 0)
        return knob_tok_from_desc(t, spec, err);
    return knob_fail(err, KNOB_ERR_USAGE, "knob train-gpt: --tokenizer: unknown tokenizer '%.64s' (expected char, byte, gpt2 or bpe:DIR)",
                     spec);
}

/* ------------------------------------------------------------------------------------------------
 * Loss curve */

typedef struct curve {
    double *step, *train;   /* (n) */
    double *vstep, *val;    /* (nv) */
    long n, nv, cap, vcap;
} curve;

static int curve_push(double **x, double **y, long *n, long *cap, double a, double b)
{
    if (*n == *cap) {
        long c = *cap ? 2 * *cap : 256;
        double *nx = knob_realloc(*x, (size_t)c * sizeof *nx);
        if (!nx)
            return 0;
        *x = nx;
        double *ny = knob_realloc(*y, (size_t)c * sizeof *ny);
        if (!ny)
            return 0;
        *y = ny;
        *cap = c;
    }
    (*x)[*n] = a;
    (*y)[*n] = b;
    (*n)++;
    return 1;
}

static void curve_free(curve *c)
{
    knob_free(c->step);
    knob_free(c->train);
    knob_free(c->vstep);
    knob_free(c->val);
}

static knob_status write_svg(const char *path, const curve *cv, const char *title, knob_err *err)
{
    if (cv->n == 0)
        return KNOB_OK;
    /* a running mean over 20 steps shows the trend under the batch noise */
    double *smooth = knob_malloc((size_t)cv->n * sizeof *smooth);
    if (!smooth)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    double acc = 0;
    for (long i = 0; i < cv->n; i++) {
        acc += cv->train[i];
        if (i >= 20)
            acc -= cv->train[i - 20];
        smooth[i] = acc / (double)(i + 1 < 20 ? i + 1 : 20);
    }
    double lo, hi, vlo = INFINITY, vhi = -INFINITY;
    knob_range(smooth, (int)cv->n, &lo, &hi);
    for (long i = 0; i < cv->nv; i++) {
        vlo = fmin(vlo, cv->val[i]);
        vhi = fmax(vhi, cv->val[i]);
    }
    lo = fmin(lo, vlo);
    hi = fmax(hi, vhi);
    knob_chart ch = {.left = 70, .top = 40, .width = 600, .height = 330, .xmin = cv->step[0] - 1,
                     .xmax = cv->step[cv->n - 1], .ymin = lo, .ymax = hi, .title = title,
                     .xlabel = "step", .ylabel = "loss (nats/token)"};
    if (!(ch.xmax > ch.xmin))
        ch.xmax = ch.xmin + 1;
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s) {
        knob_free(smooth);
        return s;
    }
    knob_svg_begin(a.f, 720, 420);
    knob_chart_axes(a.f, &ch);
    knob_chart_line(a.f, &ch, cv->step, smooth, (int)cv->n, "#2980b9", 0);
    if (cv->nv) {
        knob_chart_line(a.f, &ch, cv->vstep, cv->val, (int)cv->nv, "#c0392b", 0);
        knob_chart_points(a.f, &ch, cv->vstep, cv->val, (int)cv->nv, "#c0392b", 0);
    }
    const char *labels[2] = {"train (mean of 20 steps)", "validation (held-out text)"};
    const char *colors[2] = {"#2980b9", "#c0392b"};
    knob_chart_legend(a.f, &ch, cv->nv ? 2 : 1, labels, colors);
    knob_svg_end(a.f);
    knob_free(smooth);
    return knob_atomic_commit(&a, err);
}

/* --loss-log: "step loss" per step of this run, 9 significant digits (enough to compare runs) */
static knob_status write_loss_log(const char *path, const curve *cv, knob_err *err)
{
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    for (long i = 0; i < cv->n; i++)
        fprintf(a.f, "%ld %.9g\n", (long)cv->step[i], cv->train[i]);
    return knob_atomic_commit(&a, err);
}

/* ------------------------------------------------------------------------------------------------
 * The command */

typedef struct opts {
    const char *tokenizer, *out, *resume, *loss_log, *precision;
    int layers, heads, embd, block, batch, seq_len, accum, warmup, eval_every, eval_batches, ckpt_every, log_every;
    int no_bias, json, stop_after, skip_nonfinite, shard;
    long steps;
    float dropout, lr, lr_min, wd, clip, val_frac, time_limit;
    uint64_t seed;
} opts;

static void print_json(const opts *o, const knob_gpt_train_config *c, long steps, long skipped, double secs,
                       double tok_s, float train_loss, float val_loss, size_t n_train, size_t n_val, const char *desc,
                       const char *ckpt, const char *svg)
{
    printf("{\"steps\":%ld,\"skipped_steps\":%ld,\"seconds\":%.3f,\"tokens_per_s\":%.1f,", steps, skipped, secs,
           tok_s);
    if (isfinite(train_loss))
        printf("\"train_loss\":%.6g,", (double)train_loss);
    else
        printf("\"train_loss\":null,");
    if (isfinite(val_loss))
        printf("\"val_loss\":%.6g,\"val_perplexity\":%.6g,", (double)val_loss, exp((double)val_loss));
    else
        printf("\"val_loss\":null,\"val_perplexity\":null,");
    printf("\"train_tokens\":%zu,\"val_tokens\":%zu,\"params\":%zu,\"tokenizer\":", n_train, n_val,
           knob_gpt_n_params(&c->model));
    cli_json_str(stdout, desc);
    printf(",\"config\":{\"n_layer\":%d,\"n_head\":%d,\"n_embd\":%d,\"block_size\":%d,\"vocab_size\":%d,"
           "\"batch\":%d,\"seq_len\":%d,\"accum\":%d,\"lr\":%g},\"files\":{\"checkpoint\":",
           c->model.n_layer, c->model.n_head, c->model.n_embd, c->model.block_size, c->model.vocab_size, c->batch,
           c->seq_len, c->accum, (double)c->lr);
    cli_json_str(stdout, ckpt);
    printf(",\"loss_svg\":");
    cli_json_str(stdout, svg);
    printf("}}\n");
    (void)o;
}

/* ------------------------------------------------------------------------------------------------
 * Progress: printing what the run reports */

typedef struct run_view {
    int tty, json, log_every, oom;
    long step0;
    double time_limit;
    curve cv;
} run_view;

/* whether argv names the flag (as "--flag V" or "--flag=V"): a default is not a choice */
static int flag_given(int argc, char **argv, const char *flag)
{
    size_t n = strlen(flag);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], flag, n) == 0 && (argv[i][n] == 0 || argv[i][n] == '='))
            return 1;
    return 0;
}

static void on_event(const knob_gpt_event *e, void *ctx)
{
    run_view *v = ctx;
    const knob_gpt_step_info *i = &e->step;
    if (e->kind == KNOB_GPT_EV_SIZED) {
        if (v->json)
            return;
        if (v->tty)
            fputs("\r\033[K", stderr);   /* the note on a line of its own, not inside the progress line */
        printf("Time limit %.0f s: %.3f s a step, so about %ld step%s (refitted as the run goes)", v->time_limit,
               e->sec_per_step, e->steps, e->steps == 1 ? "" : "s");
        if (e->warmup != e->warmup_was)
            printf("; warm-up scaled from %ld to %ld step%s to keep its share of the run", e->warmup_was, e->warmup,
                   e->warmup == 1 ? "" : "s");
        printf(".\n");
        fflush(stdout);
        return;
    }
    if (e->kind == KNOB_GPT_EV_EVAL) {
        if (!curve_push(&v->cv.vstep, &v->cv.val, &v->cv.nv, &v->cv.vcap, (double)i->step, (double)e->val_loss))
            v->oom = 1;
        if (!v->json) {
            if (v->tty)
                fputs("\r\033[K", stderr);
            printf("step %ld: train loss %.4f, val loss %.4f (perplexity %.2f)\n", i->step, (double)i->loss,
                   (double)e->val_loss, exp((double)e->val_loss));
            fflush(stdout);
        }
        return;
    }
    if (!i->skipped && !curve_push(&v->cv.step, &v->cv.train, &v->cv.n, &v->cv.cap, (double)i->step, (double)i->loss))
        v->oom = 1;
    char eta_s[32];
    fmt_duration(eta_s, sizeof eta_s, e->eta);
    if (v->tty && !v->json)
        fprintf(stderr, "\r\033[K  step %ld/%ld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s", i->step, e->steps,
                (double)i->loss, (double)i->lr, e->tok_s, eta_s);
    else if (!v->json && (i->step % v->log_every == 0 || i->step == v->step0 + 1))
        printf("step %ld/%ld  loss %.4f  lr %.2e  norm %.3f  %.0f tok/s  ETA %s\n", i->step, e->steps, (double)i->loss,
               (double)i->lr, (double)i->grad_norm, e->tok_s, eta_s);
    fflush(stdout);
}

knob_status cmd_train_gpt(int argc, char **argv, knob_err *err)
{
    knob_gpt_train_config d;
    knob_gpt_train_config_default(&d);
    opts o = {.tokenizer = "char", .out = "out/gpt", .resume = NULL, .layers = d.model.n_layer,
              .heads = d.model.n_head, .embd = d.model.n_embd, .block = d.model.block_size, .batch = d.batch,
              .seq_len = 0, .accum = 1, .warmup = (int)d.warmup, .eval_every = 200, .eval_batches = 8,
              .ckpt_every = 500, .log_every = 50, .steps = 0, .dropout = 0.0f, .lr = d.lr, .lr_min = d.lr_min,
              .wd = d.weight_decay, .clip = d.clip, .val_frac = 0.1f, .time_limit = 0, .seed = d.seed};
    int steps = 0;
    const arg_def args[] = {
        {"tokenizer", ARG_STRING, &o.tokenizer, "NAME", 0, 0, NULL, "char, byte, gpt2 or bpe:DIR (a knob bpe train folder)"},
        {"out", ARG_STRING, &o.out, "DIR", 0, 0, NULL, "folder for gpt.safetensors, loss.svg and the token cache"},
        {"layers", ARG_INT, &o.layers, "N", 1, 64, NULL, "transformer blocks"},
        {"heads", ARG_INT, &o.heads, "N", 1, 64, NULL, "attention heads (must divide --embd)"},
        {"embd", ARG_INT, &o.embd, "N", 8, 4096, NULL, "embedding width C"},
        {"block", ARG_INT, &o.block, "N", 2, 4096, NULL, "context length T (tokens the model sees)"},
        {"dropout", ARG_FLOAT, &o.dropout, "P", 0, 0.9, NULL, "dropout after embeddings and each residual branch"},
        {"no-bias", ARG_BOOL, &o.no_bias, NULL, 0, 0, NULL, "no biases in linear layers and layernorms"},
        {"precision", ARG_CHOICE, &o.precision, "P", 0, 0, "f32|bf16",
         "matrix products of the linear layers and output projection: f32, or bf16 inputs with f32 sums "
         "(weights, gradients, AdamW, layernorm, attention and loss stay f32)"},
        {"batch", ARG_INT, &o.batch, "B", 1, 4096, NULL, "windows per micro-batch"},
        {"seq-len", ARG_INT, &o.seq_len, "T", 0, 4096, NULL, "tokens per training window (0: --block)"},
        {"accum", ARG_INT, &o.accum, "N", 1, 1024, NULL, "micro-batches per optimizer step (gradient accumulation)"},
        {"steps", ARG_INT, &steps, "N", 0, 100000000, NULL, "optimizer steps (0: 2000, or what --time-limit allows)"},
        {"warmup", ARG_INT, &o.warmup, "N", 0, 100000000, NULL, "linear warm-up steps"},
        {"lr", ARG_FLOAT, &o.lr, "FLOAT", 1e-7, 1, NULL, "peak learning rate (then cosine decay)"},
        {"lr-min", ARG_FLOAT, &o.lr_min, "FLOAT", 0, 1, NULL, "learning rate at the end of the cosine"},
        {"weight-decay", ARG_FLOAT, &o.wd, "FLOAT", 0, 10, NULL, "AdamW decay on weight matrices and embeddings"},
        {"clip", ARG_FLOAT, &o.clip, "NORM", 0, 1e6, NULL, "clip the global gradient norm (0: off)"},
        {"val-frac", ARG_FLOAT, &o.val_frac, "F", 0, 0.5, NULL, "last fraction of the tokens held out for validation"},
        {"eval-every", ARG_INT, &o.eval_every, "N", 1, 100000000, NULL, "steps between validation losses"},
        {"eval-batches", ARG_INT, &o.eval_batches, "N", 1, 10000, NULL, "batches per validation loss"},
        {"ckpt-every", ARG_INT, &o.ckpt_every, "N", 1, 100000000, NULL, "steps between checkpoints (and one at the end)"},
        {"log-every", ARG_INT, &o.log_every, "N", 1, 100000000, NULL, "steps between progress lines when not on a terminal"},
        {"time-limit", ARG_FLOAT, &o.time_limit, "SECONDS", 0, 1e7, NULL, "stop after this long; the schedule is sized to fit (0: none)"},
        {"seed", ARG_U64, &o.seed, "N", 0, 1.8446744073709552e19, NULL, "seed for init, batches and dropout"},
        {"skip-nonfinite", ARG_BOOL, &o.skip_nonfinite, NULL, 0, 0, NULL, "skip a step whose loss or gradient is nan or inf (no update; counted) instead of stopping"},
        {"stop-after", ARG_INT, &o.stop_after, "N", 0, 100000000, NULL, "end this run after N steps, checkpointed (continue with --resume)"},
        {"shard-optimizer", ARG_BOOL, &o.shard, NULL, 0, 0, NULL, "under mpirun: each rank keeps AdamW's moments for its slice of the parameters only (ZeRO-1)"},
        {"resume", ARG_STRING, &o.resume, "FILE", 0, 0, NULL, "continue a checkpoint (its model, tokenizer, settings and corpus)"},
        {"loss-log", ARG_STRING, &o.loss_log, "FILE", 0, 0, NULL, "write every step's training loss of this run to FILE, 'step loss' with 9 digits"},
        {"json", ARG_BOOL, &o.json, NULL, 0, 0, NULL, "print the summary as one JSON object"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "train-gpt", "knob train-gpt [CORPUS...] [options]",
        "Train a GPT on text files (default: the fortune files in " DEFAULT_CORPUS "; a folder means its\n"
        "text files). Tokenizes once into DIR/tokens.bin, holds back the last --val-frac for validation, trains\n"
        "with AdamW (betas 0.9, 0.95), a cosine schedule with warm-up and gradient clipping, and writes\n"
        "DIR/gpt.safetensors (resumable) and DIR/loss.svg. Then: knob generate DIR/gpt.safetensors --prompt TEXT.",
        args, 0, -1,
    };
    char **pos = knob_malloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos);
    if (!pos)
        return knob_fail(err, KNOB_ERR_NOMEM, "train-gpt: out of memory");
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help || (s = cli_check_out_dir(o.out, "--out", err))) {
        knob_free(pos);
        return s;
    }
    o.steps = steps;
    if ((s = knob_dist_init(err)) != KNOB_OK) {
        knob_free(pos);
        return s;
    }
    int rank = knob_dist_rank(), n_ranks = knob_dist_size();
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) {   /* rank 0 alone prints */
        knob_free(pos);
        return knob_fail(err, KNOB_ERR_IO, "train-gpt: rank %d: cannot send stdout to /dev/null", rank);
    }
    int tty = rank == 0 && cli_is_tty();
    char **files = NULL, **rec_files = NULL, *text = NULL, *desc = NULL, *resume_desc = NULL;
    int n_files = 0, n_rec = 0, cached = 0;
    uint64_t rec_hash = 0;
    size_t len = 0, n_tok = 0;
    uint16_t *tok = NULL;
    knob_tokenizer *tk = NULL;
    knob_gpt_trainer *tr = NULL;
    run_view v = {.tty = tty, .json = o.json, .log_every = o.log_every, .time_limit = o.time_limit};
    char ckpt[4096], svg[4096], cache[4096];
    snprintf(ckpt, sizeof ckpt, "%s/gpt.safetensors", o.out);
    snprintf(svg, sizeof svg, "%s/loss.svg", o.out);
    snprintf(cache, sizeof cache, "%s/tokens.bin", o.out);

    /* settings: from the flags, or from the checkpoint when resuming */
    knob_gpt_train_config c = d;
    static const char *const fixed[] = {"tokenizer", "layers", "heads", "embd", "block", "dropout", "no-bias", "precision", "batch",
                                        "seq-len", "accum", "warmup", "lr", "lr-min", "weight-decay", "clip", "seed",
                                        "val-frac", "steps", NULL};
    const char *given = o.resume ? cli_first_given(argc, argv, fixed) : NULL;
    if (given) {   /* the run's settings come from its checkpoint; a flag here would be ignored */
        s = knob_fail(err, KNOB_ERR_USAGE, "knob train-gpt: --%s is set by the --resume file %.256s; leave it out", given,
                      o.resume);
        goto done;
    }
    if (o.resume) {
        if ((s = knob_gpt_checkpoint_config(o.resume, &c, &resume_desc, err)) != KNOB_OK ||
            (s = knob_gpt_checkpoint_corpus(o.resume, &rec_files, &n_rec, &rec_hash, err)) != KNOB_OK)
            goto done;
        if (!n_pos && !n_rec) {
            s = knob_fail(err, KNOB_ERR_USAGE, "knob train-gpt: %s records no corpus (written before knob kept one); "
                          "name the corpus it was trained on", o.resume);
            goto done;
        }
    } else {
        c.model = (knob_gpt_config){.n_layer = o.layers, .n_head = o.heads, .n_embd = o.embd, .block_size = o.block,
                                    .vocab_size = 0, .dropout = o.dropout, .bias = !o.no_bias,
                                    .precision = o.precision && !strcmp(o.precision, "bf16") ? KNOB_PREC_BF16
                                                                                            : KNOB_PREC_F32};
        if (o.embd % o.heads) {
            s = knob_fail(err, KNOB_ERR_USAGE, "knob train-gpt: --embd %d is not a multiple of --heads %d", o.embd, o.heads);
            goto done;
        }
        c.batch = o.batch;
        c.seq_len = o.seq_len ? o.seq_len : o.block;
        if (c.seq_len > o.block) {
            s = knob_fail(err, KNOB_ERR_USAGE, "knob train-gpt: --seq-len %d is longer than --block %d", c.seq_len, o.block);
            goto done;
        }
        if (o.lr_min > o.lr && flag_given(argc, argv, "--lr-min")) {
            s = knob_fail(err, KNOB_ERR_USAGE, "knob train-gpt: --lr-min %g is above --lr %g", (double)o.lr_min,
                          (double)o.lr);
            goto done;
        }
        c.accum = o.accum;
        c.steps = o.steps ? o.steps : 2000;
        c.warmup = o.warmup;
        c.lr = o.lr;
        c.lr_min = fminf(o.lr_min, o.lr);   /* the default floor under a lower --lr */
        c.weight_decay = o.wd;
        c.clip = o.clip;
        c.seed = o.seed;
        c.val_frac = o.val_frac;
    }
    c.skip_nonfinite = o.skip_nonfinite;
    c.shard_optimizer = o.shard;
    if (!o.resume && !tokenizer_name_ok(o.tokenizer)) {   /* before the corpus is read */
        s = make_tokenizer(o.tokenizer, "", 0, &tk, err);
        goto done;
    }

    const char *def[1] = {DEFAULT_CORPUS};
    if (n_pos)
        s = knob_corpus_files((const char *const *)pos, n_pos, &files, &n_files, err);
    else if (o.resume)
        s = knob_corpus_files((const char *const *)rec_files, n_rec, &files, &n_files, err);
    else
        s = knob_corpus_files(def, 1, &files, &n_files, err);
    if (s || (s = knob_corpus_read(files, n_files, &text, &len, err)))
        goto done;
    if (len == 0) {
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s%s: the corpus is empty", files[0], n_files > 1 ? " ..." : "");
        goto done;
    }
    if (o.resume && n_rec && knob_gpt_corpus_hash(text, len) != rec_hash) {
        s = knob_fail(err, KNOB_ERR_USAGE, "knob train-gpt: %s was trained on %.200s%s, not on %.200s%s (the text "
                      "differs); leave the corpus out to resume on its own", o.resume, rec_files[0],
                      n_rec > 1 ? " ..." : "", files[0], n_files > 1 ? " ..." : "");
        goto done;
    }
    s = o.resume ? knob_tok_from_desc(&tk, resume_desc, err) : make_tokenizer(o.tokenizer, text, len, &tk, err);
    if (s || (s = knob_tok_describe(tk, &desc, err)) || (s = knob_mkdirs(o.out, err)))
        goto done;
    double t0 = knob_now();
    /* under mpirun rank 0 writes the token cache before the others read it */
    if ((rank != 0 && (s = knob_dist_barrier(err)) != KNOB_OK) ||
        (s = knob_corpus_tokens(cache, files, n_files, text, len, tk, desc, &tok, &n_tok, &cached, err)) != KNOB_OK ||
        (rank == 0 && (s = knob_dist_barrier(err)) != KNOB_OK))
        goto done;
    double t_tok = knob_now() - t0;
    if (!o.resume)
        c.model.vocab_size = knob_tok_vocab_size(tk);
    if (c.model.vocab_size != knob_tok_vocab_size(tk)) {
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: the model has %d token ids but its tokenizer %d", o.resume,
                      c.model.vocab_size, knob_tok_vocab_size(tk));
        goto done;
    }
    size_t n_val = (size_t)((double)n_tok * (double)c.val_frac);
    if (n_val > 0 && n_val < (size_t)c.seq_len + 1)
        n_val = 0;   /* too little to hold out a single window */
    size_t n_train = n_tok - n_val;
    if ((s = knob_gpt_trainer_new(&tr, &c, tok, n_train, tok + n_train, n_val, err)) != KNOB_OK ||
        (s = knob_gpt_trainer_set_corpus(tr, files, n_files, text, len, err)) != KNOB_OK)
        goto done;
    if (o.resume && (s = knob_gpt_trainer_resume(tr, o.resume, err)) != KNOB_OK)
        goto done;
    long step0 = knob_gpt_trainer_step_count(tr);
    char tok_name[64];
    snprintf(tok_name, sizeof tok_name, "%.63s", strncmp(desc, "char:", 5) == 0 ? "char" : desc);
    if (!o.json) {
        printf("Corpus: %d file%s, %zu bytes -> %zu tokens (%s tokenizer, %d ids; %s %s in %.1f s).\n", n_files,
               n_files == 1 ? "" : "s", len, n_tok, tok_name, c.model.vocab_size, cached ? "read from" : "cached in",
               cache, t_tok);
        printf("Model: %d layer%s, %d head%s, C %d, context %d, %zu parameters. Batch %d x %d tokens x %d accum.\n",
               c.model.n_layer, c.model.n_layer == 1 ? "" : "s", c.model.n_head, c.model.n_head == 1 ? "" : "s",
               c.model.n_embd, c.model.block_size, knob_gpt_n_params(&c.model), c.batch, c.seq_len, c.accum);
        printf("Training on %zu tokens, validating on %zu; AdamW lr %g (cosine to %g, warm-up %ld), wd %g, clip %g.\n",
               n_train, n_val, (double)c.lr, (double)c.lr_min, c.warmup, (double)c.weight_decay, (double)c.clip);
        if (n_ranks > 1)
            printf("Ranks: %d processes x %d thread%s, each %d window%s x %d micro-batch%s of every step%s.\n", n_ranks,
                   knob_threads_get(), knob_threads_get() == 1 ? "" : "s", knob_gpt_trainer_rows(tr),
                   knob_gpt_trainer_rows(tr) == 1 ? "" : "s", knob_gpt_trainer_micro(tr),
                   knob_gpt_trainer_micro(tr) == 1 ? "" : "es", o.shard ? "; optimizer state sharded (ZeRO-1)" : "");
        if (o.resume)
            printf("Resuming %s at step %ld of %ld.\n", o.resume, step0, c.steps);
        fflush(stdout);
    }

    knob_gpt_run run = {.eval_every = o.eval_every, .eval_batches = o.eval_batches, .ckpt_every = o.ckpt_every,
                        .stop_after = o.stop_after, .max_steps = o.steps, .time_limit = o.time_limit,
                        .ckpt_path = ckpt, .tok_desc = desc};
    knob_gpt_run_result r;
    v.step0 = step0;
    s = knob_gpt_trainer_run(tr, &run, on_event, &v, &r, err);
    if (!s && v.oom)
        s = knob_fail(err, KNOB_ERR_NOMEM, "train-gpt: out of memory");
    if (s)
        goto done;
    if (tty && !o.json)
        fputs("\r\033[K", stderr);
    const knob_gpt_train_config *cf = knob_gpt_trainer_config(tr);
    char title[160];
    snprintf(title, sizeof title, "GPT %dL %dH C%d on %zu tokens (%s)", c.model.n_layer, c.model.n_head,
             c.model.n_embd, n_tok, knob_tok_kind_name(knob_tok_kind_of(tk)));
    if (rank == 0 && ((s = write_svg(svg, &v.cv, title, err)) != KNOB_OK ||
                      (o.loss_log && (s = write_loss_log(o.loss_log, &v.cv, err)) != KNOB_OK)))
        goto done;
    long tokens_per_step = (long)c.batch * c.seq_len * c.accum;
    if (o.json) {
        print_json(&o, cf, step0 + r.steps_done, r.skipped, r.seconds, r.tok_s, r.train_loss, r.val_loss, n_train, n_val, desc,
                   ckpt, svg);
    } else {
        printf("\n%s %ld step%s (%ld tokens) in %.1f s: %.0f tokens/s (validation took %.1f s).\n",
               r.stopped_by_clock ? "Stopped early after" : "Trained", r.steps_done, r.steps_done == 1 ? "" : "s",
               r.steps_done * tokens_per_step, r.seconds, r.tok_s, r.eval_seconds);
        if (n_ranks > 1)
            printf("Rank 0 spent %.2f s summing gradients with the other ranks (%.2f ms per step).\n",
                   knob_dist_comm_seconds(), 1e3 * knob_dist_comm_seconds() / (double)(r.steps_done > 0 ? r.steps_done : 1));
        if (o.skip_nonfinite || r.skipped)
            printf("%ld step%s skipped (loss or gradient not finite).\n", r.skipped, r.skipped == 1 ? "" : "s");
        if (isfinite(r.val_loss))
            printf("Final train loss %.4f, validation loss %.4f nats/token (perplexity %.2f).\n", (double)r.train_loss,
                   (double)r.val_loss, exp((double)r.val_loss));
        printf("Wrote %s and %s. Try: knob generate %s --prompt \"A\"\n", ckpt, svg, ckpt);
    }
done:
    if (tty && s)
        fputs("\r\033[K", stderr);
    curve_free(&v.cv);
    knob_gpt_trainer_free(tr);
    knob_tok_free(tk);
    knob_free(tok);
    knob_free(desc);
    knob_free(resume_desc);
    knob_free(text);
    knob_corpus_files_free(files, n_files);
    knob_corpus_files_free(rec_files, n_rec);
    knob_free(pos);
    return s;
}
