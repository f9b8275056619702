/* cmd_fit.c: `knob fit`, the first chapter. Fits a line, a quadratic and a small MLP to falling-ball
 * timings (generated, or --csv), prints the knobs as they learn, compares the models on held-out
 * points and on extrapolation, and writes fit.svg (data, curves, loss curves) and fit.safetensors
 * (the three models) to --out. The modelling lives in src/models/fit.c; this file parses, prints
 * and draws. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const colors[KNOB_FIT_N_MODELS] = {"#e67e22", "#27ae60", "#8e44ad"};

typedef struct {
    int json, tty;
} fit_view;

/* 1, 2, 5, 10, 20, 50, ...: checkpoints spaced evenly on a log scale, where learning shows */
static int log_checkpoint(int epoch)
{
    while (epoch % 10 == 0)
        epoch /= 10;
    return epoch == 1 || epoch == 2 || epoch == 5;
}

/* Training progress: a live line on a terminal, and the knobs and loss on stdout at checkpoints. */
static void on_progress(const knob_fit_result *r, int epoch, double loss, void *ctx)
{
    const fit_view *v = ctx;
    if (v->tty && (epoch % 20 == 0 || epoch == r->epochs))
        fprintf(stderr, "\r  %-9s epoch %6d/%d  loss %.6f", r->name, epoch, r->epochs, loss);
    if (v->json || !(log_checkpoint(epoch) || epoch == r->epochs))
        return;
    if (v->tty)
        fputs("\r\033[K", stderr);
    printf("  %-9s epoch %6d  loss %.6f", r->name, epoch, loss);
    for (int i = 0; i < r->n_knobs && i < 3 && r->kind != KNOB_FIT_MLP; i++)
        printf("  %s %+.5g", r->knob_names[i], r->knobs[i]);
    printf("\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------------
 * Outputs */

static knob_status write_svg(const char *path, const knob_fit_data *d, knob_fit_result *res, const char *csv, knob_err *err)
{
    char title[200];
    if (csv)
        snprintf(title, sizeof title, "%.120s: measurements and three models", csv);
    else
        snprintf(title, sizeof title, "Falling ball: measurements and three models");
    enum { NP = 241 };
    double xmax_data = 0, xmax_measured = 0;
    for (int i = 0; i < d->n; i++) {
        xmax_data = fmax(xmax_data, d->x[i]);
        if (d->split[i] != KNOB_FIT_EXTRA)
            xmax_measured = fmax(xmax_measured, d->x[i]);
    }
    double xmin_data = d->x[0];
    for (int i = 0; i < d->n; i++)
        xmin_data = fmin(xmin_data, d->x[i]);
    double span = xmax_data - xmin_data, x0 = xmin_data - 0.05 * span, x1 = xmax_data + 0.05 * span;
    double px[NP], py[KNOB_FIT_N_MODELS][NP], truth[NP];
    for (int i = 0; i < NP; i++) {
        px[i] = x0 + (x1 - x0) * i / (NP - 1);
        truth[i] = d->has_truth && px[i] > 0 ? knob_fit_truth(d, px[i]) : NAN;
    }
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++) {
        knob_status s = knob_fit_predict(&res[m], px, py[m], NP, err);
        if (s)
            return s;
    }
    double ylo, yhi;
    knob_range(d->y, d->n, &ylo, &yhi);
    double pad = 0.25 * (yhi - ylo);   /* room for curves that wander off when extrapolating */
    knob_chart left = {.left = 70, .top = 40, .width = 470, .height = 330, .xmin = x0, .xmax = x1,
                       .ymin = ylo - pad, .ymax = yhi + pad, .title = title,
                       .xlabel = d->xname, .ylabel = d->yname};
    double lmin = INFINITY, lmax = 0;
    int epochs = res[0].epochs;
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
        for (int e = 0; e < epochs; e++)
            if (res[m].loss_curve[e] > 0) {
                lmin = fmin(lmin, res[m].loss_curve[e]);
                lmax = fmax(lmax, res[m].loss_curve[e]);
            }
    if (!(lmin < lmax)) {
        lmin = 1e-6;
        lmax = 1;
    }
    knob_chart right = {.left = 660, .top = 40, .width = 300, .height = 330, .xmin = 0, .xmax = epochs,
                        .ymin = pow(10, floor(log10(lmin))), .ymax = pow(10, ceil(log10(lmax))), .logy = 1,
                        .title = "Training loss (standardised units)", .xlabel = "epoch", .ylabel = "loss"};

    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    FILE *f = a.f;
    knob_svg_begin(f, 1000, 430);
    knob_chart_axes(f, &left);
    knob_chart_vline(f, &left, xmax_measured + 0.5 * (x1 - x0) / 100, "#888", "tallest measured");
    if (d->has_truth)
        knob_chart_line(f, &left, px, truth, NP, "#222", 1);
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
        knob_chart_line(f, &left, px, py[m], NP, colors[m], 0);
    for (int split = KNOB_FIT_TRAIN; split <= KNOB_FIT_EXTRA; split++)
        for (int i = 0; i < d->n; i++)
            if (d->split[i] == split)
                knob_chart_points(f, &left, &d->x[i], &d->y[i], 1, split == KNOB_FIT_EXTRA ? "#222" : "#2c3e50",
                                  split != KNOB_FIT_TRAIN);
    const char *labels[6] = {"line", "quadratic", "mlp", d->has_truth ? "true physics (dashed)" : "held back (hollow)"};
    const char *lcolors[6] = {colors[0], colors[1], colors[2], "#222"};
    knob_chart_legend(f, &left, 4, labels, lcolors);
    knob_chart_axes(f, &right);
    double *ex = knob_malloc((size_t)epochs * sizeof *ex);
    if (!ex) {
        knob_atomic_abort(&a);
        return knob_fail(err, KNOB_ERR_NOMEM, "fit: out of memory");
    }
    for (int e = 0; e < epochs; e++)
        ex[e] = e + 1;
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
        knob_chart_line(f, &right, ex, res[m].loss_curve, epochs, colors[m], 0);
    knob_free(ex);
    knob_svg_text(f, 70, 420, "start", 11,
                  "filled: training points; hollow: held-out points (and, beyond the dotted line, points to extrapolate to)");
    knob_svg_end(f);
    return knob_atomic_commit(&a, err);
}

static void print_json_number(double v)
{
    if (isfinite(v))
        printf("%.9g", v);
    else
        printf("null");
}

static void print_json(const knob_fit_data *d, const knob_fit_config *c, knob_fit_result *res, const char *svg,
                       const char *st)
{
    int n_train = 0, n_held = 0, n_extra = 0;
    for (int i = 0; i < d->n; i++) {
        n_train += d->split[i] == KNOB_FIT_TRAIN;
        n_held += d->split[i] == KNOB_FIT_HELDOUT;
        n_extra += d->split[i] == KNOB_FIT_EXTRA;
    }
    printf("{\"data\":{\"source\":\"%s\",\"train\":%d,\"heldout\":%d,\"extrapolate\":%d},", d->has_truth ? "generated" : "csv",
           n_train, n_held, n_extra);
    printf("\"config\":{\"optim\":\"%s\",\"lr\":%g,\"epochs\":%d,\"batch\":%d,\"loss\":\"%s\",\"hidden\":%d,\"seed\":%llu},",
           knob_optim_name(c->optim), (double)c->lr, c->epochs, c->batch, c->loss_mae ? "mae" : "mse", c->hidden,
           (unsigned long long)c->seed);
    printf("\"models\":{");
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++) {
        knob_fit_result *r = &res[m];
        printf("%s\"%s\":{\"params\":{", m ? "," : "", r->name);
        if (r->kind != KNOB_FIT_MLP)
            for (int k = 0; k < r->n_knobs; k++) {
                printf("%s\"%s\":", k ? "," : "", r->knob_names[k]);
                print_json_number(r->knobs[k]);
            }
        else
            for (int i = 0; i < r->P.n; i++) {
                printf("%s\"%s\":[", i ? "," : "", r->P.t[i]->name);
                for (size_t j = 0; j < r->P.t[i]->n_elems; j++) {
                    printf(j ? "," : "");
                    print_json_number(r->P.t[i]->data[j]);
                }
                printf("]");
            }
        printf("},\"n_params\":%zu,\"train_loss\":", r->P.n_elems);
        print_json_number(r->train_loss);
        printf(",\"heldout_rmse\":");
        print_json_number(r->heldout_rmse);
        printf(",\"extrapolation_rmse\":");
        print_json_number(r->extra_rmse);
        printf("}");
    }
    printf("},\"files\":{\"svg\":");
    cli_json_str(stdout, svg);
    printf(",\"models\":");
    cli_json_str(stdout, st);
    printf("}}\n");
}

static void print_table(const knob_fit_data *d, const knob_fit_config *c, knob_fit_result *res)
{
    if (d->has_truth)   /* seconds; a CSV's y has no known unit */
        printf("\nmodel       knobs  train loss (%s)  held-out RMSE (s)  extrapolation RMSE (s)\n", c->loss_mae ? "s" : "s^2");
    else
        printf("\nmodel       knobs  %-16s  %-17s  %s\n", "train loss", "held-out RMSE", "extrapolation RMSE");
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
        printf("%-10s %6zu  %16.6f  %17.4f  %22.4f\n", res[m].name, res[m].P.n_elems, res[m].train_loss,
               res[m].heldout_rmse, res[m].extra_rmse);
    int best = 0;
    for (int m = 1; m < KNOB_FIT_N_MODELS; m++)
        if (res[m].heldout_rmse < res[best].heldout_rmse)
            best = m;
    printf("\nBest on held-out points: %s.", res[best].name);
    if (d->has_truth) {
        double top = 0;
        for (int i = 0; i < d->n; i++)
            top = fmax(top, d->x[i]);
        printf(" At floor %.0f (above every measurement) the truth is %.3f s; the models say", top,
               knob_fit_truth(d, top));
        for (int m = 0; m < KNOB_FIT_N_MODELS; m++) {
            double y;
            if (knob_fit_predict(&res[m], &top, &y, 1, NULL) == KNOB_OK)
                printf("%s %s %.3f s", m ? "," : "", res[m].name, y);
        }
        printf(".\nA model fits what it has seen; only the physics knows what happens above it.");
    }
    printf("\n");
}

/* ------------------------------------------------------------------------------------------------
 * The command */

knob_status cmd_fit(int argc, char **argv, knob_err *err)
{
    knob_fit_config c;
    knob_fit_config_default(&c);
    const char *csv = NULL, *out = "out", *optim = knob_optim_name(c.optim), *loss = "mse";
    int json = 0;
    int floors = c.n_floors, extra = c.extra_floors;
    float noise = (float)c.noise, holdout = (float)c.holdout, floor_h = (float)c.floor_height;
    const arg_def args[] = {
        {"csv", ARG_STRING, &csv, "FILE", 0, 0, NULL, "read x,y measurements from FILE instead of generating them"},
        {"out", ARG_STRING, &out, "DIR", 0, 0, NULL, "folder for fit.svg and fit.safetensors"},
        {"floors", ARG_INT, &floors, "N", 3, 10000, NULL, "measured floors 1..N (generated data)"},
        {"floor-height", ARG_FLOAT, &floor_h, "M", 0.1, 100, NULL, "metres per floor"},
        {"noise", ARG_FLOAT, &noise, "S", 0, 10, NULL, "stopwatch noise, standard deviation in seconds"},
        {"extra", ARG_INT, &extra, "N", 0, 10000, NULL, "floors above the tallest measured one to extrapolate to"},
        {"holdout", ARG_FLOAT, &holdout, "F", 0, 0.9, NULL, "fraction of measurements held out for validation"},
        {"optim", ARG_CHOICE, &optim, "NAME", 0, 0, "sgd|adam|adamw", "optimizer"},
        {"lr", ARG_FLOAT, &c.lr, "FLOAT", 1e-7, 10, NULL, "peak learning rate (cosine decay to 0)"},
        {"epochs", ARG_INT, &c.epochs, "N", 1, 1000000, NULL, "passes over the training points"},
        {"batch-size", ARG_INT, &c.batch, "N", 0, 1000000, NULL, "points per gradient step (0: all)"},
        {"loss", ARG_CHOICE, &loss, "NAME", 0, 0, "mse|mae", "mean squared or mean absolute error"},
        {"hidden", ARG_INT, &c.hidden, "N", 1, 1024, NULL, "MLP hidden layer width"},
        {"seed", ARG_U64, &c.seed, "N", 0, 1.8446744073709552e19, NULL, "seed for noise, splits, init and batches"},
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print the results as one JSON object on stdout"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "fit", "knob fit [options]",
        "Time a ball dropped from each floor of a building (or read --csv x,y), then fit a line, a quadratic\n"
        "and a small neural net by gradient descent. Compares them on held-out floors and on floors above\n"
        "the tallest measured one, and writes DIR/fit.svg and DIR/fit.safetensors.",
        args, 0, 0,
    };
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, NULL, &n_pos, &help, err);
    if (s || help || (s = cli_check_out_dir(out, "--out", err)))
        return s;
    c.n_floors = floors;
    c.extra_floors = extra;
    c.noise = noise;
    c.holdout = holdout;
    c.floor_height = floor_h;
    c.loss_mae = strcmp(loss, "mae") == 0;
    if ((s = knob_optim_parse(optim, &c.optim, err)) != KNOB_OK)
        return s;

    knob_fit_data d;
    s = csv ? knob_fit_read_csv(&d, csv, &c, err) : knob_fit_generate(&d, &c, err);
    if (s)
        return s;
    char svg[4096], st[4096];
    snprintf(svg, sizeof svg, "%s/fit.svg", out);
    snprintf(st, sizeof st, "%s/fit.safetensors", out);
    knob_fit_result res[KNOB_FIT_N_MODELS];
    memset(res, 0, sizeof res);
    fit_view view = {.json = json, .tty = cli_is_tty()};
    if ((s = knob_mkdirs(out, err)) != KNOB_OK)
        goto done;
    if (!json) {
        int n_train = 0, n_held = 0, n_extra = 0;
        for (int i = 0; i < d.n; i++) {
            n_train += d.split[i] == KNOB_FIT_TRAIN;
            n_held += d.split[i] == KNOB_FIT_HELDOUT;
            n_extra += d.split[i] == KNOB_FIT_EXTRA;
        }
        if (d.has_truth)
            printf("A ball dropped from floors 1..%d (%.1f m each): t = sqrt(2h/g) plus %.3f s of stopwatch noise.\n",
                   c.n_floors, c.floor_height, c.noise);
        else
            printf("%s: %d points.\n", csv, d.n);
        printf("%d points to train on, %d held out, %d beyond the largest measured x to extrapolate to.\n", n_train,
               n_held, n_extra);
        printf("Training with %s, lr %g (cosine), %d epoch%s, %s loss, batch %s.\n\n", knob_optim_name(c.optim),
               (double)c.lr, c.epochs, c.epochs == 1 ? "" : "s", c.loss_mae ? "mae" : "mse",
               c.batch ? "size set by --batch-size" : "all points");
    }
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++) {
        s = knob_fit_train(&res[m], (knob_fit_kind)m, &d, &c, on_progress, &view, err);
        if (view.tty)
            fputs("\r\033[K", stderr);
        if (s)
            goto done;
    }
    if ((s = write_svg(svg, &d, res, csv, err)) != KNOB_OK || (s = knob_fit_save(st, &c, res, err)) != KNOB_OK)
        goto done;
    if (json) {
        print_json(&d, &c, res, svg, st);
    } else {
        print_table(&d, &c, res);
        printf("\nWrote %s and %s (see: knob inspect %s).\n", svg, st, st);
    }
done:
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
        knob_fit_result_free(&res[m]);
    knob_fit_data_free(&d);
    return s;
}
