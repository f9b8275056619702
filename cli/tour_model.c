/* tour_model.c: chapter 1 of `knob tour`, a model is a function with knobs. The falling ball of
 * `knob fit` (src/models/fit.c): a line, a quadratic and a small neural net fitted to noisy timings
 * of a ball dropped from floors 1..N, then asked about floors above the tallest one, where only
 * the physics knows the answer. */
#include "tour.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const model_colors[KNOB_FIT_N_MODELS] = {"#e67e22", "#27ae60", "#8e44ad"};
static const char *const model_names[KNOB_FIT_N_MODELS] = {"line", "quadratic", "neural net (mlp)"};

static void on_epoch(const knob_fit_result *r, int epoch, double loss, void *ctx)
{
    tour_ctx *t = ctx;
    if (epoch % 50 == 0 || epoch == r->epochs)
        tour_progress(t, "%s: epoch %d/%d, loss %.5f", r->name, epoch, r->epochs, loss);
}

/* The data, the truth and the three fitted curves over floors 0 .. top + a little. */
static knob_status draw(const char *path, const knob_fit_data *d, const knob_fit_result *res, knob_err *err)
{
    enum { NP = 241 };
    double xmax = 0, xmeasured = 0;
    for (int i = 0; i < d->n; i++) {
        xmax = fmax(xmax, d->x[i]);
        if (d->split[i] != KNOB_FIT_EXTRA)
            xmeasured = fmax(xmeasured, d->x[i]);
    }
    double x0 = 0, x1 = xmax * 1.05;
    double px[NP], py[KNOB_FIT_N_MODELS][NP], truth[NP];
    for (int i = 0; i < NP; i++) {
        px[i] = x0 + (x1 - x0) * i / (NP - 1);
        truth[i] = px[i] > 0 ? knob_fit_truth(d, px[i]) : 0;
    }
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++) {
        knob_status s = knob_fit_predict(&res[m], px, py[m], NP, err);
        if (s)
            return s;
    }
    double ylo, yhi;
    knob_range(truth, NP, &ylo, &yhi);
    knob_chart c = {.left = 80, .top = 50, .width = 620, .height = 360, .xmin = x0, .xmax = x1,
                    .ymin = 0, .ymax = yhi * 1.25,
                    .title = "Falling ball: fall time by floor, measured and predicted",
                    .xlabel = "floor (3 m each)", .ylabel = "fall time (s)"};
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    knob_svg_begin(a.f, 760, 480);
    knob_chart_axes(a.f, &c);
    knob_chart_vline(a.f, &c, xmeasured + 0.5, "#888", "tallest measured floor");
    knob_chart_line(a.f, &c, px, truth, NP, "#222", 1);
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
        knob_chart_line(a.f, &c, px, py[m], NP, model_colors[m], 0);
    for (int i = 0; i < d->n; i++)
        knob_chart_points(a.f, &c, &d->x[i], &d->y[i], 1, "#2c3e50", d->split[i] != KNOB_FIT_TRAIN);
    const char *labels[5] = {model_names[0], model_names[1], model_names[2], "physics t = sqrt(2h/g) (dashed)",
                             "measured (hollow: held out)"};
    const char *colors[5] = {model_colors[0], model_colors[1], model_colors[2], "#222", "#2c3e50"};
    knob_chart_legend(a.f, &c, 5, labels, colors);
    knob_svg_text(a.f, 80, 465, "start", 12,
                  "filled dots: trained on; hollow dots left of the grey line: held out; right of it: above every measurement");
    knob_svg_end(a.f);
    return knob_atomic_commit(&a, err);
}

knob_status tour_ch_model(tour_ctx *t, knob_err *err)
{
    knob_fit_config c;
    knob_fit_config_default(&c);
    c.seed = tour_seed(t);
    c.epochs = tour_quick(t) ? 600 : 3000;
    tour_say(t, "A model is a function with knobs. Here the function says how long a ball takes to fall "
                "from a floor of a building, and the knobs are numbers that gradient descent turns until the "
                "function agrees with measurements. The measurements are generated from the physics, "
                "t = sqrt(2h/g), with %.2f s of stopwatch noise, for floors 1 to %d of %.0f m each.",
             c.noise, c.n_floors, c.floor_height);
    tour_say(t, "Three models of growing freedom learn from the same points: a line (2 knobs), a quadratic "
                "(3 knobs) and a small neural net (two hidden layers of %d tanh units). Look at what each "
                "one says about the %d floors above the tallest measured one: fitting what you have seen "
                "(interpolation) is not knowing what happens beyond it (extrapolation).",
             c.hidden, c.extra_floors);
    knob_fit_data d;
    knob_status s = knob_fit_generate(&d, &c, err);
    if (s)
        return s;
    knob_fit_result res[KNOB_FIT_N_MODELS];
    memset(res, 0, sizeof res);
    for (int m = 0; m < KNOB_FIT_N_MODELS && !s; m++)
        s = knob_fit_train(&res[m], (knob_fit_kind)m, &d, &c, on_epoch, t, err);
    char path[4096];
    if (!s)
        s = draw(tour_path(t, "fit.svg", path), &d, res, err);
    if (!s) {
        tour_picture(t, "fit.svg", "The measurements (dots), the physics (dashed) and the three fitted models. "
                                   "Right of the grey line, no model has seen a measurement.");
        for (int m = 0; m < KNOB_FIT_N_MODELS; m++) {
            char name[96];
            snprintf(name, sizeof name, "%s: knobs", model_names[m]);
            tour_number(t, name, "%zu", res[m].P.n_elems);
            snprintf(name, sizeof name, "%s: error on held-out floors (RMSE)", model_names[m]);
            tour_number(t, name, "%.4f s", res[m].heldout_rmse);
            snprintf(name, sizeof name, "%s: error above the tallest floor (RMSE)", model_names[m]);
            tour_number(t, name, "%.4f s", res[m].extra_rmse);
        }
        tour_number(t, "line: slope, intercept", "%.4f s/floor, %.4f s", res[0].knobs[0], res[0].knobs[1]);
        tour_number(t, "quadratic: a, b, c", "%.5f, %.4f, %.4f", res[1].knobs[0], res[1].knobs[1], res[1].knobs[2]);
        double top = 0, y[KNOB_FIT_N_MODELS];
        for (int i = 0; i < d.n; i++)
            top = fmax(top, d.x[i]);
        for (int m = 0; m < KNOB_FIT_N_MODELS && !s; m++)
            s = knob_fit_predict(&res[m], &top, &y[m], 1, err);
        if (!s) {
            int best = 0, worst = 0;
            for (int m = 1; m < KNOB_FIT_N_MODELS; m++) {
                if (res[m].extra_rmse < res[best].extra_rmse)
                    best = m;
                if (res[m].extra_rmse > res[worst].extra_rmse)
                    worst = m;
            }
            tour_say(t, "At floor %.0f, above every measurement, the physics says %.3f s; the line says %.3f s, "
                        "the quadratic %.3f s and the neural net %.3f s. The RMSE numbers are the typical error in "
                        "seconds: on held-out floors between the measured ones they are %.3f, %.3f and %.3f s "
                        "(the stopwatch noise alone is %.2f s); above the tallest floor the %s is furthest off "
                        "(%.3f s) and the %s closest (%.3f s). A model with more knobs fits more shapes; only "
                        "the right shape extrapolates.",
                     top, knob_fit_truth(&d, top), y[0], y[1], y[2], res[0].heldout_rmse, res[1].heldout_rmse,
                     res[2].heldout_rmse, c.noise, model_names[worst], res[worst].extra_rmse, model_names[best],
                     res[best].extra_rmse);
        }
    }
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
        knob_fit_result_free(&res[m]);
    knob_fit_data_free(&d);
    return s;
}
