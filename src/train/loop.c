/* loop.c: the training loop for image classifiers (knob train). Epochs of shuffled mini-batches
 * (the last partial batch of each epoch is dropped, so every step sees exactly `batch` images),
 * optional augmentation, gradient clipping, a learning-rate schedule over the whole run, and after
 * every epoch a validation pass, a history row, checkpoints and early stopping.
 *
 * Memory: the training graph (batch B) and the inference graph for validation are built and
 * compiled once; the step itself allocates nothing. Batches are copied (or augmented) straight
 * into the graph's input.
 *
 * Determinism and resume: three RNGs (batch order, augmentation, dropout) are seeded from the run's
 * seed and saved in every checkpoint with the optimizer's moments and step, so a run resumed from
 * the checkpoint of epoch k ends with the same bits as one that never stopped (same threads).
 * The order is a Fisher-Yates shuffle of 0..n-1 drawn at the start of each epoch.
 *
 * Also here: the training config's text form (stored in checkpoints). */
#include "knob_internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

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

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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
    int B = KNOB_MIN(tc->batch, tr->n), n_batches = tr->n / B, K = m->cfg.n_classes;
    size_t img = (size_t)m->cfg.c * m->cfg.h * m->cfg.w;

    knob_vision_net tn = {0}, en = {0};
    knob_optim o = {0};
    int *perm = knob_malloc((size_t)tr->n * sizeof *perm);
    if (!perm)
        return knob_fail(err, KNOB_ERR_NOMEM, "out of memory for %d indices", tr->n);
    if ((rc = knob_vision_net_build(&tn, m, B, 1, err)) != KNOB_OK)
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
    knob_schedule sched = tc->sched;
    sched.total_steps = (long)tc->epochs * n_batches;
    sched.step_size = KNOB_MAX(1L, (long)lround((double)tc->step_epochs * n_batches));
    *knob_graph_rng(tn.g) = st->drop_rng;
    st->stopped_early = 0;

    float *x = knob_node_data(tn.x);            // (B, c, h, w)
    int32_t *y = knob_node_data_i32(tn.y);      // (B)
    const float *z = knob_node_data(tn.logits); // (B, K)
    const float *loss = knob_node_data(tn.loss);
    int first_epoch = st->epoch + 1;
    int last_epoch = tc->stop_after ? KNOB_MIN(tc->epochs, st->epoch + tc->stop_after) : tc->epochs;
    double t_start = now_s(), last_finite = NAN;
    long images_done = 0, batches_left = (long)(last_epoch - st->epoch) * n_batches;
    for (int epoch = first_epoch; epoch <= last_epoch; epoch++) {
        double t_epoch = now_s(), sum_loss = 0;
        long correct = 0;
        for (int i = 0; i < tr->n; i++)
            perm[i] = i;
        knob_rng_shuffle(&st->order_rng, perm, (size_t)tr->n);
        for (int b = 0; b < n_batches; b++) {
            for (int i = 0; i < B; i++) {
                int k = perm[b * B + i];
                const float *src = tr->x + (size_t)k * img;
                if (aug)
                    knob_augment_apply(&tc->aug, src, x + (size_t)i * img, m->cfg.h, m->cfg.w, &st->aug_rng);
                else
                    memcpy(x + (size_t)i * img, src, img * sizeof *x);
                y[i] = tr->y[k];
            }
            knob_params_zero_grad(&m->P);
            if ((rc = knob_graph_forward(tn.g, err)) != KNOB_OK)
                goto done;
            if (!isfinite(loss[0])) {
                rc = knob_fail(err, KNOB_ERR_NUMERIC, "epoch %d step %ld: loss is %g (last finite %.4g); try a lower --lr",
                               epoch, st->step + 1, (double)loss[0], last_finite);
                goto done;
            }
            last_finite = loss[0];
            knob_graph_backward(tn.g, tn.loss);
            if (tc->clip > 0.0f)
                knob_clip_grad_norm(&m->P, tc->clip);
            knob_optim_step(&o, knob_schedule_lr(&sched, st->step));
            st->step++;
            sum_loss += loss[0];
            for (int i = 0; i < B; i++) {
                const float *zi = z + (size_t)i * K;
                int best = 0;
                for (int k = 1; k < K; k++)
                    if (zi[k] > zi[best])
                        best = k;
                correct += best == y[i];
            }
            images_done += B;
            batches_left--;
            if (cb) {
                double el = now_s() - t_start;
                knob_train_progress_info p = {epoch, tc->epochs, b + 1, n_batches, 0, sum_loss / (b + 1),
                                              (double)correct / ((double)(b + 1) * B), images_done / fmax(el, 1e-9),
                                              el / (double)images_done * (double)batches_left * B, st};
                cb(&p, ctx);
            }
        }
        st->drop_rng = *knob_graph_rng(tn.g);
        knob_epoch_stats *e = &st->hist[st->n_hist++];
        e->epoch = epoch;
        e->train_loss = sum_loss / n_batches;
        e->train_acc = (double)correct / ((double)n_batches * B);
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
        e->seconds = now_s() - t_epoch;
        if (improved && tc->best_path && (rc = knob_checkpoint_save(tc->best_path, m, &o, tc, st, err)) != KNOB_OK)
            goto done;
        if (tc->last_path && (rc = knob_checkpoint_save(tc->last_path, m, &o, tc, st, err)) != KNOB_OK)
            goto done;
        if (cb) {
            double el = now_s() - t_start;
            knob_train_progress_info p = {epoch, tc->epochs, n_batches, n_batches, 1, e->train_loss, e->train_acc,
                                          images_done / fmax(el, 1e-9),
                                          el / (double)images_done * (double)batches_left * B, st};
            cb(&p, ctx);
        }
        if (st->stopped_early)
            break;
    }
    rc = KNOB_OK;
done:
    knob_optim_free(&o);
    knob_vision_net_free(&tn);
    knob_vision_net_free(&en);
    knob_free(perm);
    return rc;
}
