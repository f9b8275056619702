/* vision_train.c: the trainer for image classifiers (knob train) and its checkpoints. Epochs of
 * shuffled mini-batches (the last partial batch of each epoch is dropped, so every step sees exactly
 * `batch` images), optional augmentation, gradient clipping, a learning-rate schedule over the whole
 * run, and after every epoch a validation pass, a history row, checkpoints and early stopping. The
 * step itself (zero, forward, finite checks, backward, clip, optimizer) is src/train/step.c's; the
 * file format is src/train/checkpoint.c's, with family "classifier".
 *
 * Memory: the training graph (batch B) and the inference graph for validation are built and
 * compiled once; the step allocates nothing. Batches are copied (or augmented) straight into the
 * graph's input.
 *
 * Determinism and resume: three RNGs (batch order, augmentation, dropout) are seeded from the run's
 * seed and saved in every checkpoint with the optimizer's moments and step, so a run resumed from
 * the checkpoint of epoch k ends with the same bits as one that never stopped (same threads).
 * The order is a Fisher-Yates shuffle of 0..n-1 drawn at the start of each epoch.
 *
 * Checkpoint contents: classifier.config = {"model": config text (knob_vision_config_str),
 * "dataset": spec, "classes": [names]}; the training config is the key=value text as a JSON
 * object; state = {"epoch", "best_val_loss", "best_epoch", "bad_epochs", "stopped_early",
 * "skipped" (steps skipped as non-finite; only when there were any),
 * "history": [[epoch, train loss, train acc, val loss, val acc, lr], ...]}; RNGs "order", "aug",
 * "dropout". Files from before the one checkpoint load through checkpoint.c's conversion.
 *
 * Under mpirun (src/train/dist.c) each of the N ranks takes batch / N consecutive images of every
 * batch of the shuffled order (an error when N does not divide the batch); every rank draws the
 * same order and runs the augmentation of the whole batch (the others' images into a scratch
 * buffer), so the RNGs stay the single process's and checkpoints resume with any N. The gradients
 * are summed in rank order by the step helper; every rank validates the whole validation set
 * (the same bits) and rank 0 alone writes checkpoints. Dropout: each step every rank seeds its
 * masks' generator from the saved "dropout" generator and its rank (src/train/step.c), so with
 * dropout N ranks match a single process in distribution only (the same N: the same bits). */
#include "knob_internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define FAMILY "classifier"

/* ------------------------------------------------------------------------------------------------
 * Config */

void knob_train_config_default(knob_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->epochs = 10;
    c->batch = 64;
    c->optim = (knob_optim_config){.kind = KNOB_OPTIM_ADAMW, .momentum = 0.9f, .beta1 = 0.9f, .beta2 = 0.999f,
                                   .eps = 1e-8f, .weight_decay = 0.0f};
    c->sched = (knob_schedule){.kind = KNOB_SCHED_COSINE, .lr = 1e-3f, .lr_min = 0.0f, .gamma = 0.5f};
    c->step_epochs = 5;
    c->seed = 42;
    c->n_val = 5000;
}

void knob_train_config_str(const knob_train_config *c, char *buf, size_t size)
{
    snprintf(buf, size,
             "epochs=%d batch=%d optim=%s lr=%.9g lr_min=%.9g schedule=%s warmup=%ld step_epochs=%.9g gamma=%.9g "
             "momentum=%.9g nesterov=%d beta1=%.9g beta2=%.9g eps=%.9g weight_decay=%.9g clip=%.9g shift=%d "
             "rotate=%.9g scale=%.9g noise=%.9g seed=%llu n_val=%d patience=%d",
             c->epochs, c->batch, knob_optim_name(c->optim.kind), (double)c->sched.lr, (double)c->sched.lr_min,
             knob_sched_name(c->sched.kind), c->sched.warmup, (double)c->step_epochs, (double)c->sched.gamma,
             (double)c->optim.momentum, c->optim.nesterov, (double)c->optim.beta1, (double)c->optim.beta2,
             (double)c->optim.eps, (double)c->optim.weight_decay, (double)c->clip, c->aug.shift,
             (double)c->aug.rotate_deg, (double)c->aug.scale, (double)c->aug.noise, (unsigned long long)c->seed,
             c->n_val, c->patience);
}

knob_status knob_train_config_parse(knob_train_config *c, const char *s, knob_err *err)
{
    knob_train_config_default(c);
    for (const char *p = s; *p;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, " ");
        char word[128], *eq, *end;
        if (len >= sizeof word || !(eq = memchr(p, '=', len)))
            return knob_fail(err, KNOB_ERR_FORMAT, "train config: '%.*s' is not key=value", (int)KNOB_MIN(len, 64), p);
        memcpy(word, p, len);
        word[len] = 0;
        word[eq - p] = 0;
        const char *key = word, *v = word + (eq - p) + 1;
        p += len;
        errno = 0;
        double x = strtod(v, &end);
        int num_ok = end != v && !*end && !errno && isfinite(x);
        knob_status st = KNOB_OK;
        if (strcmp(key, "optim") == 0)
            st = knob_optim_parse(v, &c->optim.kind, err);
        else if (strcmp(key, "schedule") == 0)
            st = knob_sched_parse(v, &c->sched.kind, err);
        else if (!num_ok)
            return knob_fail(err, KNOB_ERR_FORMAT, "train config: %s='%.32s' is not a number", key, v);
#define INT_KEY(name, dst, lo, hi)                                                                  \
    else if (strcmp(key, name) == 0) {                                                              \
        if (x != floor(x) || x < (lo) || x > (hi))                                                  \
            return knob_fail(err, KNOB_ERR_FORMAT, "train config: %s=%.32s is out of range", key, v); \
        dst = (int)x;                                                                               \
    }
#define FLOAT_KEY(name, dst) else if (strcmp(key, name) == 0) dst = (float)x;
        INT_KEY("epochs", c->epochs, 1, 1000)
        INT_KEY("batch", c->batch, 1, 1 << 20)
        INT_KEY("nesterov", c->optim.nesterov, 0, 1)
        INT_KEY("shift", c->aug.shift, 0, 64)
        INT_KEY("n_val", c->n_val, 0, 1 << 30)
        INT_KEY("patience", c->patience, 0, 1000)
        FLOAT_KEY("lr", c->sched.lr)
        FLOAT_KEY("lr_min", c->sched.lr_min)
        FLOAT_KEY("step_epochs", c->step_epochs)
        FLOAT_KEY("gamma", c->sched.gamma)
        FLOAT_KEY("momentum", c->optim.momentum)
        FLOAT_KEY("beta1", c->optim.beta1)
        FLOAT_KEY("beta2", c->optim.beta2)
        FLOAT_KEY("eps", c->optim.eps)
        FLOAT_KEY("weight_decay", c->optim.weight_decay)
        FLOAT_KEY("clip", c->clip)
        FLOAT_KEY("rotate", c->aug.rotate_deg)
        FLOAT_KEY("scale", c->aug.scale)
        FLOAT_KEY("noise", c->aug.noise)
        else if (strcmp(key, "warmup") == 0 && x >= 0 && x == floor(x)) c->sched.warmup = (long)x;
        else if (strcmp(key, "seed") == 0) c->seed = strtoull(v, NULL, 10);
        else return knob_fail(err, KNOB_ERR_FORMAT, "train config: unknown or bad key '%.32s'", key);
#undef INT_KEY
#undef FLOAT_KEY
        if (st)
            return st;
    }
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * State */

void knob_train_state_init(knob_train_state *st, uint64_t seed)
{
    memset(st, 0, sizeof *st);
    /* one seed, four purposes: init (knob_vision_init uses seed itself), order, aug, dropout */
    knob_rng_seed(&st->order_rng, seed ^ 0x6f72646572ULL);   /* "order" */
    knob_rng_seed(&st->aug_rng, seed ^ 0x617567ULL);         /* "aug" */
    knob_rng_seed(&st->drop_rng, seed ^ 0x64726f70ULL);      /* "drop" */
    st->best_val_loss = INFINITY;
}

/* ------------------------------------------------------------------------------------------------
 * The loop */

static knob_status check_data(const knob_vision *m, const knob_dataset *d, const char *which, knob_err *err)
{
    const knob_vision_config *c = &m->cfg;
    if (d->n > 0 && (d->c != c->c || d->h != c->h || d->w != c->w))
        return knob_fail(err, KNOB_ERR_SHAPE, "%s images are %dx%dx%d, the model expects %dx%dx%d", which, d->c, d->h,
                         d->w, c->c, c->h, c->w);
    if (d->n_classes > c->n_classes)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s data has %d classes, the model %d", which, d->n_classes,
                         c->n_classes);
    return KNOB_OK;
}

typedef struct {
    const knob_dataset *tr;
    const knob_augment *aug;       /* NULL: off */
    knob_rng *aug_rng;
    const int *perm;
    float *x;                      /* (B, c, h, w) */
    int32_t *y;                    /* (B) */
    int B, h, w, b;                /* b: the batch of this epoch; B: its rows on this rank */
    int Bg, first;                 /* the whole batch's images; this rank's first */
    float *scratch;                /* (img) augmentation: the other ranks' images, drawn and dropped */
    size_t img;
} batch_fill;

static knob_status fill_batch(void *ctx, int micro, int *rows, knob_err *err)
{
    batch_fill *f = ctx;
    for (int j = 0; j < f->Bg; j++) {
        int i = j - f->first, mine = i >= 0 && i < f->B;
        if (!mine && !f->aug)
            continue;
        int k = f->perm[f->b * f->Bg + j];
        const float *src = f->tr->x + (size_t)k * f->img;
        float *dst = mine ? f->x + (size_t)i * f->img : f->scratch;
        if (f->aug)
            knob_augment_apply(f->aug, src, dst, f->h, f->w, f->aug_rng);   /* every image: the RNG's order */
        else
            memcpy(dst, src, f->img * sizeof *f->x);
        if (mine)
            f->y[i] = f->tr->y[k];
    }
    *rows = f->B;
    (void)micro;
    (void)err;
    return KNOB_OK;
}

static knob_status save_to(const char *const *paths, int n, const knob_vision *m, const knob_optim *o,
                           const knob_train_config *tc, const knob_train_state *st, knob_ckpt_writer *w, knob_err *err);

knob_status knob_vision_train(knob_vision *m, const knob_splits *s, const knob_train_config *tc,
                              knob_train_state *st, const char *resume_path, knob_train_progress cb, void *ctx,
                              knob_err *err)
{
    const knob_dataset *tr = &s->train, *va = &s->val;
    knob_status rc;
    if ((rc = check_data(m, tr, "training", err)) || (rc = check_data(m, va, "validation", err)))
        return rc;
    if (tr->n < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "no training images");
    if (tc->batch < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "batch size %d; must be at least 1", tc->batch);
    if (tc->epochs < 1 || tc->epochs > (int)(sizeof st->hist / sizeof st->hist[0]))
        return knob_fail(err, KNOB_ERR_USAGE, "epochs %d; 1 to 1000 supported", tc->epochs);
    int aug = knob_augment_active(&tc->aug);
    if (aug && m->cfg.c != 1)
        return knob_fail(err, KNOB_ERR_USAGE, "augmentation needs single-channel images, these have %d", m->cfg.c);
    int Bg = KNOB_MIN(tc->batch, tr->n), n_batches = tr->n / Bg, K = m->cfg.n_classes;
    int n_ranks = knob_dist_size(), rank = knob_dist_rank(), B = Bg / n_ranks;
    if (Bg % n_ranks)
        return knob_fail(err, KNOB_ERR_USAGE, "a batch of %d images does not split over %d ranks; make --batch-size a "
                         "multiple of %d", Bg, n_ranks, n_ranks);

    knob_vision_net tn = {0}, en = {0};
    knob_optim o = {0};
    knob_dist_comm *comm = NULL;
    knob_ckpt_writer *writer = NULL;
    int *perm = knob_malloc((size_t)tr->n * sizeof *perm);
    float *scratch = knob_malloc((size_t)m->cfg.c * m->cfg.h * m->cfg.w * sizeof *scratch);
    if (!perm || !scratch) {
        knob_free(perm);
        knob_free(scratch);
        return knob_fail(err, KNOB_ERR_NOMEM, "out of memory for %d indices", tr->n);
    }
    if ((rc = knob_vision_net_build(&tn, m, B, 1, err)) != KNOB_OK ||
        (rc = knob_dist_comm_new(&comm, m->P.n_elems, err)) != KNOB_OK)
        goto done;
    if (va->n > 0 && (rc = knob_vision_net_build(&en, m, KNOB_MIN(va->n, 256), 0, err)) != KNOB_OK)
        goto done;
    if ((rc = knob_optim_init(&o, &m->P, &tc->optim, err)) != KNOB_OK)
        goto done;
    if (resume_path && (rc = knob_checkpoint_load_state(resume_path, &o, st, err)) != KNOB_OK)
        goto done;
    if (st->epoch >= tc->epochs) {
        rc = knob_fail(err, KNOB_ERR_USAGE, "the run already has %d epochs; ask for more with --epochs", st->epoch);
        goto done;
    }
    /* the background checkpoint writer, its copy of the state allocated here once (rank 0) */
    if (rank == 0 && (tc->best_path || tc->last_path) &&
        !(writer = knob_ckpt_writer_new(&m->P, o.v ? 2 : o.m ? 1 : 0, err))) {
        rc = err->code;
        goto done;
    }
    if (comm) {   /* every rank must run the same job from the same point */
        char mc[512], tcs[1024];
        long at[5] = {st->step, st->epoch, tc->stop_after, tc->skip_nonfinite, tc->last_path != NULL};
        knob_vision_config_str(&m->cfg, mc, sizeof mc);
        knob_train_config_str(tc, tcs, sizeof tcs);
        if ((rc = knob_dist_check_same("model settings", mc, strlen(mc), err)) ||
            (rc = knob_dist_check_same("training settings", tcs, strlen(tcs), err)) ||
            (rc = knob_dist_check_same("data sets", tr->x, (size_t)tr->n * m->cfg.c * m->cfg.h * m->cfg.w * sizeof(float), err)) ||
            (rc = knob_dist_check_same("epoch, step, --stop-after and --skip-nonfinite", at, sizeof at, err)) ||
            (rc = knob_dist_check_same("parameters", m->P.data, m->P.n_elems * sizeof(float), err))) {
            knob_err_prefix(err, "train");
            goto done;
        }
    }
    knob_schedule sched = tc->sched;
    sched.total_steps = (long)tc->epochs * n_batches;
    sched.step_size = KNOB_MAX(1L, (long)lround((double)tc->step_epochs * n_batches));
    *knob_graph_rng(tn.g) = st->drop_rng;
    st->stopped_early = 0;

    batch_fill fill = {tr, aug ? &tc->aug : NULL, &st->aug_rng, perm, knob_node_data(tn.x), knob_node_data_i32(tn.y),
                       B, m->cfg.h, m->cfg.w, 0, Bg, rank * B, scratch, (size_t)m->cfg.c * m->cfg.h * m->cfg.w};
    knob_step step = {.g = tn.g, .loss = tn.loss, .P = &m->P, .opt = &o, .accum = 1, .clip = tc->clip,
                      .fill = fill_batch, .ctx = &fill, .last_finite = NAN, .last_finite_step = -1,
                      .skip_nonfinite = tc->skip_nonfinite, .dist = comm, .dropout = &st->drop_rng};
    const float *z = knob_node_data(tn.logits); // (B, K)
    const int32_t *y = fill.y;
    int first_epoch = st->epoch + 1;
    int last_epoch = tc->stop_after ? KNOB_MIN(tc->epochs, st->epoch + tc->stop_after) : tc->epochs;
    double t_start = knob_now();
    long images_done = 0, batches_left = (long)(last_epoch - st->epoch) * n_batches;
    for (int epoch = first_epoch; epoch <= last_epoch; epoch++) {
        double t_epoch = knob_now(), sum_loss = 0;
        long correct = 0;
        int n_good = 0;   /* steps applied this epoch: a skipped one counts in neither mean */
        for (int i = 0; i < tr->n; i++)
            perm[i] = i;
        knob_rng_shuffle(&st->order_rng, perm, (size_t)tr->n);
        for (int b = 0; b < n_batches; b++) {
            knob_step_result res;
            fill.b = b;
            if ((rc = knob_step_run(&step, st->step + 1, knob_schedule_lr(&sched, st->step), &res, err)) != KNOB_OK) {
                knob_err_prefix(err, "epoch %d", epoch);
                goto done;
            }
            st->step++;
            if (res.skipped) {
                st->n_skipped++;
                batches_left--;
                images_done += Bg;
                continue;
            }
            n_good++;
            sum_loss += res.loss;
            for (int i = 0; i < B; i++) {
                const float *zi = z + (size_t)i * K;
                int best = 0;
                for (int k = 1; k < K; k++)
                    if (zi[k] > zi[best])
                        best = k;
                correct += best == y[i];
            }
            images_done += Bg;
            batches_left--;
            if (cb) {   /* under mpirun the running accuracy is this rank's rows' */
                double el = knob_now() - t_start;
                knob_train_progress_info p = {epoch, tc->epochs, b + 1, n_batches, 0, sum_loss / n_good,
                                              (double)correct / ((double)n_good * B), images_done / fmax(el, 1e-9),
                                              el / (double)images_done * (double)batches_left * Bg, st};
                cb(&p, ctx);
            }
        }
        if (!comm)   /* under mpirun the step helper advances st->drop_rng itself */
            st->drop_rng = *knob_graph_rng(tn.g);
        if (comm) {   /* the epoch's right answers over every rank's rows */
            double v = (double)correct;
            if ((rc = knob_dist_sum_f64(&v, 1, st->step, err)) != KNOB_OK)
                goto done;
            correct = (long)v;
        }
        knob_epoch_stats *e = &st->hist[st->n_hist++];
        e->epoch = epoch;
        e->train_loss = n_good ? sum_loss / n_good : NAN;
        e->train_acc = n_good ? (double)correct / ((double)n_good * Bg) : NAN;
        e->val_loss = e->val_acc = NAN;
        e->lr = knob_schedule_lr(&sched, st->step - 1);
        if (va->n > 0) {
            knob_eval_result r;
            if ((rc = knob_vision_evaluate(&en, va, &r, NULL, err)) != KNOB_OK)
                goto done;
            e->val_loss = r.loss;
            e->val_acc = r.accuracy;
        }
        st->epoch = epoch;
        /* the model to keep: lowest validation loss (training loss when there is no validation set) */
        double watch = va->n > 0 ? e->val_loss : e->train_loss;
        int improved = watch < st->best_val_loss;
        if (improved) {
            st->best_val_loss = watch;
            st->best_epoch = epoch;
            st->bad_epochs = 0;
        } else {
            st->bad_epochs++;
        }
        if (tc->patience > 0 && st->bad_epochs >= tc->patience && epoch < tc->epochs)
            st->stopped_early = 1;
        e->seconds = knob_now() - t_epoch;
        /* rank 0 alone writes: the best model (when this epoch is) and the last, from one copy of
         * the state, in the background while the next epoch runs */
        const char *paths[2];
        int n_paths = 0;
        if (improved && tc->best_path)
            paths[n_paths++] = tc->best_path;
        if (tc->last_path)
            paths[n_paths++] = tc->last_path;
        if (writer && n_paths && (rc = save_to(paths, n_paths, m, &o, tc, st, writer, err)) != KNOB_OK)
            goto done;
        if (cb) {
            double el = knob_now() - t_start;
            knob_train_progress_info p = {epoch, tc->epochs, n_batches, n_batches, 1, e->train_loss, e->train_acc,
                                          images_done / fmax(el, 1e-9),
                                          el / (double)images_done * (double)batches_left * Bg, st};
            cb(&p, ctx);
        }
        if (st->stopped_early)
            break;
    }
    rc = KNOB_OK;
done:
    if (writer) {   /* the last write's error stops the run like any other (after a failure: ignored) */
        knob_err ignore;
        knob_status sw = knob_ckpt_writer_wait(writer, rc ? &ignore : err);
        rc = rc ? rc : sw;
        knob_ckpt_writer_free(writer);
    }
    knob_optim_free(&o);
    knob_dist_comm_free(comm);
    knob_vision_net_free(&tn);
    knob_vision_net_free(&en);
    knob_free(perm);
    knob_free(scratch);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * Checkpoints */

static knob_json *state_json(const knob_train_state *st)
{
    knob_json *j = knob_json_new_object(), *h = knob_json_new_array();
    int ok = j && h;
    ok = ok && knob_json_add_number(j, "epoch", st->epoch);
    ok = ok && knob_json_add_number(j, "best_val_loss", st->best_val_loss);   /* inf -> null */
    ok = ok && knob_json_add_number(j, "best_epoch", st->best_epoch);
    ok = ok && knob_json_add_number(j, "bad_epochs", st->bad_epochs);
    ok = ok && knob_json_add_number(j, "stopped_early", st->stopped_early);
    if (st->n_skipped)   /* only when there were skips: other runs keep their bytes */
        ok = ok && knob_json_add_number(j, "skipped", (double)st->n_skipped);
    for (int i = 0; ok && i < st->n_hist; i++) {
        const knob_epoch_stats *e = &st->hist[i];
        knob_json *row = knob_json_new_array();
        ok = knob_json_push(row, knob_json_new_number(e->epoch)) && knob_json_push(row, knob_json_new_number(e->train_loss)) &&
             knob_json_push(row, knob_json_new_number(e->train_acc)) && knob_json_push(row, knob_json_new_number(e->val_loss)) &&
             knob_json_push(row, knob_json_new_number(e->val_acc)) && knob_json_push(row, knob_json_new_number(e->lr));
        ok = ok ? knob_json_push(h, row) : (knob_json_free(row), 0);
    }
    if (ok) {
        ok = knob_json_add(j, "history", h);
        h = NULL;
    }
    knob_json_free(h);
    if (!ok) {
        knob_json_free(j);
        return NULL;
    }
    return j;
}

static char *config_json(const knob_vision *m, const knob_train_config *tc)
{
    char model[512];
    knob_vision_config_str(&m->cfg, model, sizeof model);
    knob_json *j = knob_json_new_object(), *names = knob_json_new_array();
    int ok = j && names && knob_json_add_string(j, "model", model) &&
             knob_json_add_string(j, "dataset", tc->dataset ? tc->dataset : "");
    for (const char *p = tc->class_names ? tc->class_names : ""; ok && *p;) {
        size_t len = strcspn(p, "|");
        char *name = knob_strndup(p, len);
        ok = name && knob_json_push(names, knob_json_new_string(name));
        knob_free(name);
        p += len + (p[len] == '|');
    }
    if (ok) {
        ok = knob_json_add(j, "classes", names);
        names = NULL;
    }
    char *s = ok ? knob_json_print(j) : NULL;
    knob_json_free(names);
    knob_json_free(j);
    return s;
}

knob_status knob_checkpoint_save(const char *path, const knob_vision *m, const knob_optim *o,
                                 const knob_train_config *tc, const knob_train_state *st, knob_err *err)
{
    return save_to(&path, 1, m, o, tc, st, NULL, err);
}

/* paths[0..n): one state, written before returning (w NULL) or by the background writer */
static knob_status save_to(const char *const *paths, int n, const knob_vision *m, const knob_optim *o,
                           const knob_train_config *tc, const knob_train_state *st, knob_ckpt_writer *w, knob_err *err)
{
    const char *path = paths[0];
    char text[1024];
    knob_train_config_str(tc, text, sizeof text);
    knob_json *train = knob_ckpt_kv_to_json(text), *state = state_json(st);
    char *config = config_json(m, tc);
    knob_status s;
    if (!train || !state || !config) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory building the checkpoint", path);
    } else {
        knob_rng order = st->order_rng, aug = st->aug_rng, drop = st->drop_rng;
        knob_ckpt c = {.family = FAMILY, .config = config, .P = &m->P, .opt = o, .step = st->step, .n_rng = 3,
                       .rng = {{"order", &order}, {"aug", &aug}, {"dropout", &drop}}, .train = train, .state = state};
        s = KNOB_OK;
        if (w)
            s = knob_ckpt_writer_save(w, paths, n, &c, err);
        for (int i = 0; !w && i < n && !s; i++)
            s = knob_ckpt_save(paths[i], &c, err);
    }
    knob_json_free(train);
    knob_json_free(state);
    knob_free(config);
    return s;
}

knob_status knob_vision_load(knob_vision *m, knob_checkpoint_info *info, const char *path, knob_err *err)
{
    memset(m, 0, sizeof *m);
    memset(info, 0, sizeof *info);
    knob_ckpt_file f;
    knob_status s = knob_ckpt_open(&f, path, FAMILY, err);
    if (s)
        return s;
    knob_json *cfg = NULL;
    const char *model = NULL, *dataset = "";
    knob_vision_config c;
    if ((s = knob_json_parse_str(&cfg, f.config, "classifier.config", err)) ||
        (s = knob_json_get_string(cfg, "model", 1, &model, "classifier.config", err)) ||
        (s = knob_json_get_string(cfg, "dataset", 0, &dataset, "classifier.config", err)) ||
        (s = knob_vision_config_parse(&c, model, err))) {
        knob_err_prefix(err, "%s", path);
        s = s == KNOB_ERR_NOMEM ? s : KNOB_ERR_FORMAT;
        if (err)
            err->code = s;
        goto done;
    }
    snprintf(info->dataset, sizeof info->dataset, "%s", dataset);
    for (const knob_json *n = knob_json_child(knob_json_get(cfg, "classes")); n && info->n_classes < 16; n = knob_json_next(n))
        snprintf(info->classes[info->n_classes++], sizeof info->classes[0], "%.23s",
                 knob_json_string(n) ? knob_json_string(n) : "");
    for (int k = info->n_classes; k < c.n_classes && k < 16; k++)   /* names missing: numbers */
        snprintf(info->classes[k], sizeof info->classes[0], "%d", k);
    info->n_classes = c.n_classes;
    if (f.train) {
        char *text = knob_ckpt_json_to_kv(f.train);
        if (!text) {
            s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        snprintf(info->train, sizeof info->train, "%s", text);
        knob_free(text);
    }
    long epoch = 0;
    knob_json_get_long(f.state, "epoch", 0, 1000, 0, &epoch, path, NULL);
    info->epoch = (int)epoch;
    if ((s = knob_vision_init(m, &c, 0, err)) != KNOB_OK)
        goto done;
    if ((s = knob_ckpt_read(&f, &m->P, "", m->P.data, err)) != KNOB_OK)
        knob_vision_free(m);
done:
    knob_json_free(cfg);
    knob_ckpt_close(&f);
    return s;
}

static knob_status parse_state(const char *path, const knob_json *j, knob_train_state *st, knob_err *err)
{
    long epoch = 0, best_epoch = 0, bad_epochs = 0, stopped = 0, skipped = 0;
    knob_status s;
    if (!knob_json_is_object(j))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: the checkpoint has no training state", path);
    if ((s = knob_json_get_long(j, "epoch", 0, 1000, 1, &epoch, path, err)) ||
        (s = knob_json_get_long(j, "best_epoch", 0, 1000, 1, &best_epoch, path, err)) ||
        (s = knob_json_get_long(j, "bad_epochs", 0, 1000, 1, &bad_epochs, path, err)) ||
        (s = knob_json_get_long(j, "stopped_early", 0, 1, 1, &stopped, path, err)) ||
        (s = knob_json_get_long(j, "skipped", 0, 1L << 50, 0, &skipped, path, err)))
        return s;
    const knob_json *h = knob_json_get(j, "history");
    if (!knob_json_is_array(h) || knob_json_size(h) != epoch)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: state 'history' is missing or has not %ld rows", path, epoch);
    st->epoch = (int)epoch;
    st->best_epoch = (int)best_epoch;
    st->bad_epochs = (int)bad_epochs;
    st->stopped_early = (int)stopped;
    st->n_skipped = skipped;
    const knob_json *b = knob_json_get(j, "best_val_loss");
    st->best_val_loss = knob_json_is_number(b) ? knob_json_number(b) : INFINITY;
    st->n_hist = 0;
    for (const knob_json *row = knob_json_child(h); row; row = knob_json_next(row)) {
        if (!knob_json_is_array(row) || knob_json_size(row) != 6)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: state 'history' row %d is not 6 numbers", path, st->n_hist + 1);
        knob_epoch_stats *e = &st->hist[st->n_hist++];
        const knob_json *c = knob_json_child(row);
        e->epoch = (int)knob_json_number(c);
        e->train_loss = knob_json_number(c = knob_json_next(c));
        e->train_acc = knob_json_number(c = knob_json_next(c));
        e->val_loss = knob_json_number(c = knob_json_next(c));
        e->val_acc = knob_json_number(c = knob_json_next(c));
        e->lr = knob_json_number(knob_json_next(c));
        e->seconds = NAN;
    }
    return KNOB_OK;
}

knob_status knob_checkpoint_load_state(const char *path, knob_optim *o, knob_train_state *st, knob_err *err)
{
    knob_ckpt_file f;
    knob_status s = knob_ckpt_open(&f, path, FAMILY, err);
    if (s)
        return s;
    if (!(s = knob_ckpt_need_state(&f, err)) && !(s = parse_state(path, f.state, st, err)) &&
        !(s = knob_ckpt_read_rng(&f, "order", &st->order_rng, err)) &&
        !(s = knob_ckpt_read_rng(&f, "aug", &st->aug_rng, err)) &&
        !(s = knob_ckpt_read_rng(&f, "dropout", &st->drop_rng, err)) &&
        !(s = knob_ckpt_read(&f, o->p, "optim.m.", o->m, err)) &&
        !(s = o->v ? knob_ckpt_read(&f, o->p, "optim.v.", o->v, err) : KNOB_OK)) {
        st->step = f.step;
        o->step = f.optim_step;
    }
    knob_ckpt_close(&f);
    return s;
}

knob_status knob_vision_test(knob_vision *m, const knob_dataset *test, const char *best_path, knob_eval_result *last,
                             knob_eval_result *best, int32_t *pred, int *used_last, knob_err *err)
{
    *used_last = 0;
    knob_vision_net en;
    int B = test->n < 1 ? 1 : test->n < 256 ? test->n : 256;
    knob_status s = knob_vision_net_build(&en, m, B, 0, err);
    if (s)
        return s;
    s = knob_vision_evaluate(&en, test, last, NULL, err);
    knob_err ignore;
    if (!s && knob_params_load(&m->P, best_path, &ignore) != KNOB_OK)
        *used_last = 1;   /* the net reads m->P, so the last weights are still in place */
    if (!s)
        s = knob_vision_evaluate(&en, test, best, pred, err);
    knob_vision_net_free(&en);
    return s;
}
