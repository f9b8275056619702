/* tour_lab.c: the laboratory chapters of `knob tour`: 2 a neuron, a layer; 3 gradient descent;
 * 4 backpropagation; 8 hyperparameters; 9 generalization; 10 the landscape. Each explains itself,
 * runs its experiment through the library (src/data/toy2d.c, src/models/toy.c, descent.c,
 * landscape.c, graph_picture.c, generalize.c), writes its pictures with knob_fields_svg and
 * knob_curves_svg, and reports its numbers. This file only chooses the settings, lays out the
 * pictures and says what happened. */
#include "tour.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the plane the toy points live in, and the grid the regions are drawn on */
#define TOY_LO (-1.25)
#define TOY_HI 1.25

static knob_status nomem(knob_err *err, const char *what)
{
    return knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory for %s", what);
}

static void fill_index(double *x, int n, double first, double step)
{
    for (int i = 0; i < n; i++)
        x[i] = first + step * i;
}

/* the decision-region picture setup shared by chapters 2 and 9 */
static knob_field_plot regions_plot(const char *title, int G)
{
    return (knob_field_plot){.title = title, .xlabel = "x1 (position, arbitrary units)",
                             .ylabel = "x2 (position, arbitrary units)", .zlabel = "P(class 1) by the net",
                             .x0 = TOY_LO, .x1 = TOY_HI, .y0 = TOY_LO, .y1 = TOY_HI, .nx = G, .ny = G, .zmin = 0,
                             .zmax = 1, .cmap = KNOB_CMAP_DIVERGING, .n_levels = 1,
                             .class_names = {"class 0 points", "class 1 points"}};
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 2: a neuron, a layer */

knob_status tour_ch_neuron(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t), n = quick ? 200 : 300, steps = quick ? 600 : 2000, G = quick ? 41 : 81;
    size_t cells = (size_t)G * G;
    tour_say(t, "A neuron adds up its inputs, each times a knob (a weight), adds one more knob (a bias) and "
                "passes the sum through a bend (here ReLU: negative sums become 0). Here each input is a point "
                "of the plane, and the question is which of two spirals it belongs to: %d points, half of each "
                "class, drawn with a little noise.", n);
    tour_say(t, "Three nets learn the same points for %d steps of Adam: one linear layer (what a single neuron "
                "can tell apart: the two sides of a line), one hidden layer of 8 neurons, and two hidden layers "
                "of 8. The colour is the probability the net gives to class 1; the black line is where it is "
                "50%%: the decision boundary.", steps);
    knob_toy_data d;
    knob_status s = knob_toy_data_make(&d, KNOB_TOY_SPIRALS, n, 0.04f, tour_seed(t), err);
    if (s)
        return s;
    double *z = knob_malloc(7 * cells * sizeof *z);
    if (!z) {
        knob_toy_data_free(&d);
        return nomem(err, "the region grids");
    }
    static const char *const names[3] = {"one linear layer (a line)", "one hidden layer of 8",
                                         "two hidden layers of 8"};
    int moments[4] = {10, 100, 500, steps};
    double acc[3] = {0}, macc[4] = {0};
    char titles[7][96];
    for (int k = 0; k < 3 && !s; k++) {
        knob_toy_config c;
        knob_toy_config_default(&c);
        c.n_hidden = k;
        c.hidden[0] = c.hidden[1] = 8;
        c.seed = tour_seed(t) + 1;
        knob_toy_net *m;
        if ((s = knob_toy_net_new(&m, &c, err)) != KNOB_OK)
            break;
        tour_progress(t, "training the %s", names[k]);
        if (k < 2)
            s = knob_toy_train(m, &d, steps, NULL, err);
        for (int q = 0; k == 2 && q < 4 && !s; q++) {   /* the deepest net, pictured as it learns */
            s = knob_toy_train(m, &d, moments[q] - (int)knob_toy_steps(m), NULL, err);
            if (!s)
                s = knob_toy_eval(m, &d, NULL, &macc[q], err);
            if (!s)
                s = knob_toy_grid(m, TOY_LO, TOY_HI, TOY_LO, TOY_HI, G, G, z + (3 + q) * cells, err);
            snprintf(titles[3 + q], sizeof titles[3 + q], "after %d steps: %.0f%% right", moments[q], 100 * macc[q]);
        }
        if (!s)
            s = knob_toy_eval(m, &d, NULL, &acc[k], err);
        if (!s)
            s = knob_toy_grid(m, TOY_LO, TOY_HI, TOY_LO, TOY_HI, G, G, z + k * cells, err);
        snprintf(titles[k], sizeof titles[k], "%s: %.0f%% right", names[k], 100 * acc[k]);
        knob_toy_net_free(m);
    }
    char path[4096];
    if (!s) {
        knob_field_panel p[7];
        for (int k = 0; k < 7; k++)
            p[k] = (knob_field_panel){.title = titles[k], .z = z + k * cells, .n_points = d.n, .points = d.x,
                                      .classes = d.y};
        knob_field_plot fp = regions_plot("Decision regions after training: a line, one layer, two layers", G);
        s = knob_fields_svg(tour_path(t, "regions.svg", path), &fp, p, 3, err);
        fp.title = "Two hidden layers of 8 as they learn";
        fp.cols = 2;
        if (!s)
            s = knob_fields_svg(tour_path(t, "moments.svg", path), &fp, p + 3, 4, err);
    }
    if (!s) {
        tour_picture(t, "regions.svg", "Where each net says class 0 (blue) and class 1 (red), with the training "
                                       "points on top. Black: the 50% line.");
        for (int k = 0; k < 3; k++)
            tour_number(t, names[k], "%.1f%% of the points right", 100 * acc[k]);
        tour_say(t, "One linear layer can only cut the plane with a straight line, so it gets about half of the "
                    "spiral right (%.0f%%). A hidden layer bends the line out of many pieces, one per neuron "
                    "(%.0f%%); a second layer combines those pieces into curved regions that follow the spirals "
                    "(%.0f%%).", 100 * acc[0], 100 * acc[1], 100 * acc[2]);
        tour_picture(t, "moments.svg", "The two-layer net after 10, 100, 500 and all its steps: the boundary "
                                       "starts almost straight and wraps itself around the spirals.");
        for (int q = 0; q < 4; q++) {
            char name[64];
            snprintf(name, sizeof name, "two layers after %d steps", moments[q]);
            tour_number(t, name, "%.1f%% right", 100 * macc[q]);
        }
    }
    knob_free(z);
    knob_toy_data_free(&d);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 3: gradient descent */

knob_status tour_ch_descent(tour_ctx *t, knob_err *err)
{
    enum { S = 60, SL = 40 };
    int quick = tour_quick(t), G = quick ? 41 : 81;
    knob_line_data d;
    knob_status s = knob_line_data_make(&d, 30, 2.0, -1.0, 0.4, tour_seed(t), err);
    if (s)
        return s;
    double w_opt, b_opt, lmax, lmin;
    knob_line_optimum(&d, &w_opt, &b_opt, &lmax, &lmin);
    double lr_c = 2 / lmax, L_opt = knob_line_loss(&d, w_opt, b_opt);
    double w0 = w_opt - 3.5, w1 = w_opt + 3.5, b0 = b_opt - 3.5, b1 = b_opt + 3.5, ws = w_opt - 3, bs = b_opt + 3;
    tour_say(t, "Training is walking downhill. A line y = w x + b has two knobs, so its loss (the mean squared "
                "error over %d noisy points of y = 2x - 1) is a landscape over a plane: every (slope, intercept) "
                "pair has a height. It is a bowl here, lowest at w = %.3f, b = %.3f (least squares).",
             d.n, w_opt, b_opt);
    tour_say(t, "Gradient descent starts at (%.2f, %.2f), computes the slope of the landscape there through "
                "the graph's backward pass, and steps against it, a learning rate times the gradient. Momentum "
                "keeps a running direction, like a ball rolling; Adam scales each knob's step by how large its "
                "gradients have been.", ws, bs);
    double *z = knob_malloc((size_t)G * G * sizeof *z), *path = knob_malloc(6 * 3 * (S + 1) * sizeof *path);
    double *xy = knob_malloc(6 * 2 * (S + 1) * sizeof *xy);
    if (!z || !path || !xy) {
        s = nomem(err, "the landscape");
        goto done;
    }
    knob_line_surface(&d, w0, w1, b0, b1, G, G, z);
    double zmax = 0;
    for (int i = 0; i < G * G; i++)
        zmax = fmax(zmax, z[i]);
    /* three optimizers, then plain descent at three learning rates */
    knob_optim_config oc[6] = {
        {.kind = KNOB_OPTIM_SGD}, {.kind = KNOB_OPTIM_SGD, .momentum = 0.9f},
        {.kind = KNOB_OPTIM_ADAM, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
        {.kind = KNOB_OPTIM_SGD}, {.kind = KNOB_OPTIM_SGD}, {.kind = KNOB_OPTIM_SGD},
    };
    float lr[6] = {(float)(0.3 * lr_c), (float)(0.05 * lr_c), 0.3f, (float)(0.05 * lr_c), (float)(0.6 * lr_c),
                   (float)(1.1 * lr_c)};
    int n_steps[6] = {S, S, S, SL, SL, SL};
    for (int k = 0; k < 6 && !s; k++) {
        /* the learning-rate walks start nearer the valley's floor, so a diverging one stays in view a while */
        s = knob_line_descend(&d, &oc[k], lr[k], ws, k < 3 ? bs : b_opt + 1.0, n_steps[k], path + k * 3 * (S + 1), err);
        for (int i = 0; i <= n_steps[k]; i++) {
            xy[k * 2 * (S + 1) + 2 * i] = path[k * 3 * (S + 1) + 3 * i];
            xy[k * 2 * (S + 1) + 2 * i + 1] = path[k * 3 * (S + 1) + 3 * i + 1];
        }
    }
    if (s)
        goto done;
    char lab[6][64], path_buf[4096];
    snprintf(lab[0], sizeof lab[0], "SGD, lr %.2f", (double)lr[0]);
    snprintf(lab[1], sizeof lab[1], "momentum 0.9, lr %.2f", (double)lr[1]);
    snprintf(lab[2], sizeof lab[2], "Adam, lr %.2f", (double)lr[2]);
    snprintf(lab[3], sizeof lab[3], "lr %.3f: too small", (double)lr[3]);
    snprintf(lab[4], sizeof lab[4], "lr %.3f: about right", (double)lr[4]);
    snprintf(lab[5], sizeof lab[5], "lr %.3f: too large", (double)lr[5]);
    static const char *const colors[6] = {"#ffffff", "#ff4fd8", "#000000", "#ffffff", "#ffffff", "#ffffff"};
    knob_field_path fpaths[6];
    for (int k = 0; k < 6; k++)
        fpaths[k] = (knob_field_path){.xy = xy + k * 2 * (S + 1), .n = n_steps[k] + 1, .label = lab[k],
                                      .color = colors[k]};
    char t1[96];
    snprintf(t1, sizeof t1, "Three optimizers, %d steps each", S);
    knob_field_panel panels[4] = {
        {.title = t1, .z = z, .n_paths = 3, .paths = fpaths},
        {.title = "Plain descent, learning rate too small", .z = z, .n_paths = 1, .paths = fpaths + 3},
        {.title = "... about right", .z = z, .n_paths = 1, .paths = fpaths + 4},
        {.title = "... too large: it diverges", .z = z, .n_paths = 1, .paths = fpaths + 5},
    };
    knob_field_plot fp = {.title = "The line's loss over its two knobs, and the paths of gradient descent",
                          .xlabel = "w (slope)", .ylabel = "b (intercept)", .zlabel = "mean squared error (log scale)",
                          .x0 = w0, .x1 = w1, .y0 = b0, .y1 = b1, .nx = G, .ny = G, .zmin = L_opt * 0.9, .zmax = zmax,
                          .logz = 1, .cmap = KNOB_CMAP_SEQUENTIAL, .n_levels = 12, .cols = 2};
    if ((s = knob_fields_svg(tour_path(t, "landscape.svg", path_buf), &fp, panels, 4, err)) != KNOB_OK)
        goto done;
    /* the loss along each path */
    double steps_x[S + 1], loss[6][S + 1];
    fill_index(steps_x, S + 1, 0, 1);
    for (int k = 0; k < 6; k++)
        for (int i = 0; i <= n_steps[k]; i++)
            loss[k][i] = path[k * 3 * (S + 1) + 3 * i + 2];
    static const char *const ccol[6] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#2ca02c", "#d62728"};
    knob_curve cu[6];
    for (int k = 0; k < 6; k++)
        cu[k] = (knob_curve){.x = steps_x, .y = loss[k], .n = n_steps[k] + 1, .label = lab[k], .color = ccol[k]};
    knob_curve_panel cp[2] = {
        {.title = "Loss along the three optimizers' paths", .xlabel = "step", .ylabel = "mean squared error",
         .logy = 1, .n = 3, .curves = cu},
        {.title = "Plain descent at three learning rates", .xlabel = "step", .ylabel = "mean squared error",
         .logy = 1, .n = 3, .curves = cu + 3},
    };
    if ((s = knob_curves_svg(tour_path(t, "loss.svg", path_buf), "Loss by step", cp, 2, err)) != KNOB_OK)
        goto done;
    tour_picture(t, "landscape.svg", "The loss as a heat map with contour lines (log colour scale), the best "
                                     "fit at the bottom of the bowl. Each path starts at the white-ringed dot.");
    tour_picture(t, "loss.svg", "The loss after each step of each path (log scale).");
    tour_number(t, "least-squares fit w, b", "%.4f, %.4f", w_opt, b_opt);
    tour_number(t, "lowest possible loss (the noise)", "%.4f", L_opt);
    tour_number(t, "curvature of the bowl: steepest, flattest", "%.3f, %.3f", lmax, lmin);
    tour_number(t, "largest stable learning rate 2 / steepest curvature", "%.4f", lr_c);
    for (int k = 0; k < 6; k++) {
        char name[96];
        snprintf(name, sizeof name, "%s: loss after %d steps", lab[k], n_steps[k]);
        tour_number(t, name, "%.4g", loss[k][n_steps[k]]);
    }
    tour_say(t, "The bowl is %.1f times steeper across the intercept than along the slope, so plain descent "
                "first drops into the valley and then crawls along it. Momentum overshoots and swings but "
                "covers the flat direction faster; Adam moves each knob at about the same speed at first. "
                "The learning rate decides everything: at %.3f the walk has barely started after %d steps, at "
                "%.3f it arrives, and at %.3f, just above 2 / %.3f = %.3f, each step overshoots further than "
                "the last and the loss explodes to %.3g.",
             lmax / lmin, (double)lr[3], SL, (double)lr[4], (double)lr[5], lmax, lr_c, loss[5][SL]);
done:
    knob_free(z);
    knob_free(path);
    knob_free(xy);
    knob_line_data_free(&d);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 4: backpropagation */

knob_status tour_ch_backprop(tour_ctx *t, knob_err *err)
{
    tour_say(t, "How does the net know which way is downhill for each of its knobs? Backpropagation: the "
                "forward pass computes every node of the computation graph from its inputs; the backward pass "
                "starts from dL/dL = 1 at the loss and walks the graph in reverse, each node multiplying the "
                "gradient that reached it by its own local derivative (the chain rule) and passing it to its "
                "inputs.");
    tour_say(t, "Here is a net small enough to read: two inputs, a layer of two tanh neurons, one output, and "
                "the squared error against a target of 1. Every box shows the node's value after one forward "
                "pass and its gradient after one backward pass.");
    knob_backprop_report r;
    char path[4096];
    knob_status s = knob_backprop_demo(tour_path(t, "graph.svg", path), tour_seed(t), &r, err);
    if (s)
        return s;
    tour_picture(t, "graph.svg", "The computation graph with each node's value and gradient dL/d(node).");
    tour_say(t, "Is the backward pass right? Nudge each knob by h = 0.001 up and down, run the forward pass "
                "again, and the change of the loss divided by 2h is the gradient, measured without any "
                "calculus (central differences). The two columns must agree:");
    char table[2048];
    int at = snprintf(table, sizeof table, "%-9s %14s %14s %11s\n", "knob", "backprop", "nudging", "difference");
    for (int i = 0; i < r.n && at < (int)sizeof table - 80; i++)
        at += snprintf(table + at, sizeof table - (size_t)at, "%-9s %+14.6f %+14.6f %11.2e\n", r.rows[i].name,
                       r.rows[i].autodiff, r.rows[i].numeric, fabs(r.rows[i].autodiff - r.rows[i].numeric));
    tour_pre(t, table);
    tour_number(t, "loss after the forward pass", "%.6f", r.loss);
    tour_number(t, "nodes in the graph", "%d", r.n_nodes);
    tour_number(t, "largest |backprop - nudging|", "%.2e", r.max_abs_diff);
    tour_number(t, "largest relative difference", "%.2e", r.max_rel_diff);
    tour_say(t, "They agree to %.1e (the nudged forward passes run in 32-bit floats, so a few parts in 10,000 "
                "is rounding). Backpropagation gets all %d gradients from one backward pass, where nudging "
                "needs two forward passes per knob: that is why nets with billions of knobs can be trained.",
             r.max_abs_diff, r.n);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 8: hyperparameters */

enum { H_MAX_EVALS = 128 };
#define LOSS_LR 0.001f       /* the loss comparison with Adam: slow enough to see which learns faster */
#define LOSS_LR_SGD 0.1f     /* ... and with momentum SGD */
enum { NR = 12 };             /* runs: 4 learning rates, 4 batch sizes, 2 losses x 2 optimizers */

/* Trains a toy net with c for steps, measuring the loss (and accuracy) over d every `every` steps
 * into loss[0..] and acc[0..]; returns the number of measurements in *n (a run that blows up stops
 * early with the last ones NaN). */
static knob_status hyper_run(const knob_toy_data *d, const knob_toy_config *c, int steps, int every, double *loss,
                             double *acc, int *n, double *seconds, knob_err *err)
{
    knob_toy_net *m;
    knob_status s = knob_toy_net_new(&m, c, err);
    if (s)
        return s;
    double t0 = knob_now();
    int k = 0;
    s = knob_toy_eval(m, d, &loss[0], &acc[0], err);
    for (k = 1; !s && k * every <= steps && k < H_MAX_EVALS; k++) {
        s = knob_toy_train(m, d, every, NULL, err);
        if (s == KNOB_ERR_NUMERIC) {   /* diverged: the curve stops here */
            for (; k * every <= steps && k < H_MAX_EVALS; k++)
                loss[k] = acc[k] = NAN;
            s = KNOB_OK;
            break;
        }
        if (!s)
            s = knob_toy_eval(m, d, &loss[k], &acc[k], err);
    }
    *n = k;
    *seconds = knob_now() - t0;
    knob_toy_net_free(m);
    return s;
}

knob_status tour_ch_hyper(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t), n = quick ? 200 : 300, steps = quick ? 400 : 2000, every = quick ? 10 : 25;
    tour_say(t, "Some knobs are not learned: the learning rate, the batch size, the loss. They are chosen "
                "before training (hyperparameters), and they decide whether training works at all. The same "
                "net (two hidden layers of 16 ReLU neurons) learns the same %d spiral points for %d steps of "
                "Adam, changing one setting at a time; the loss over all the points is measured every %d steps.",
             n, steps, every);
    knob_toy_data d;
    knob_status s = knob_toy_data_make(&d, KNOB_TOY_SPIRALS, n, 0.04f, tour_seed(t), err);
    if (s)
        return s;
    static const float lrs[4] = {0.0003f, 0.003f, 0.03f, 0.3f};
    static const int batches[4] = {4, 16, 64, 0};
    static double loss[NR][H_MAX_EVALS], acc[NR][H_MAX_EVALS];
    double secs[NR];
    int cnt[NR];
    for (int k = 0; k < NR && !s; k++) {
        knob_toy_config c;
        knob_toy_config_default(&c);
        c.seed = tour_seed(t) + 7;
        if (k < 4)
            c.lr = lrs[k];
        else if (k < 8)
            c.batch = batches[k - 4];
        else {   /* the losses: with Adam, and with plain momentum SGD */
            c.loss_mse = k % 2, c.lr = k < 10 ? LOSS_LR : LOSS_LR_SGD;
            if (k >= 10)
                c.optim = (knob_optim_config){.kind = KNOB_OPTIM_SGD, .momentum = 0.9f};
        }
        tour_progress(t, "run %d of %d", k + 1, NR);
        s = hyper_run(&d, &c, steps, every, loss[k], acc[k], &cnt[k], &secs[k], err);
    }
    if (s) {
        knob_toy_data_free(&d);
        return s;
    }
    double x[H_MAX_EVALS];
    fill_index(x, H_MAX_EVALS, 0, every);
    char lab[NR][64];
    static const char *const col[4] = {"#9467bd", "#1f77b4", "#2ca02c", "#d62728"};
    knob_curve cu[NR];
    for (int k = 0; k < NR; k++) {
        if (k < 4)
            snprintf(lab[k], sizeof lab[k], "lr %g", (double)lrs[k]);
        else if (k < 8)
            snprintf(lab[k], sizeof lab[k], batches[k - 4] ? "batch %d" : "batch all %d", batches[k - 4] ? batches[k - 4] : n);
        else
            snprintf(lab[k], sizeof lab[k], "%s, %s", k % 2 ? "squared error" : "cross-entropy",
                     k < 10 ? "Adam" : "SGD (dashed)");
        cu[k] = (knob_curve){.x = x, .y = k < 8 ? loss[k] : acc[k], .n = cnt[k], .label = lab[k],
                             .color = col[k < 8 ? k % 4 : (k % 2 ? 3 : 1)], .dashed = k >= 10};
    }
    knob_curve_panel cp[3] = {
        {.title = "Learning rate (batch: all points)", .xlabel = "optimizer step", .ylabel = "cross-entropy loss (nats)",
         .logy = 1, .n = 4, .curves = cu},
        {.title = "Batch size (lr 0.01)", .xlabel = "optimizer step", .ylabel = "cross-entropy loss (nats)", .logy = 1,
         .n = 4, .curves = cu + 4},
        {.title = "The loss that is minimised", .xlabel = "optimizer step",
         .ylabel = "accuracy over the points (fraction)", .n = 4, .curves = cu + 8, .ymin = 0.4, .ymax = 1.02},
    };
    char path[4096];
    s = knob_curves_svg(tour_path(t, "hyper.svg", path), "One net, one setting changed at a time", cp, 3, err);
    if (!s) {
        tour_picture(t, "hyper.svg", "Left: the loss for four learning rates. Middle: four batch sizes. Right: "
                                     "accuracy when the net minimises cross-entropy or the squared error, with Adam and with SGD.");
        double fin[NR];
        for (int k = 0; k < NR; k++) {
            fin[k] = k < 8 ? loss[k][cnt[k] - 1] : acc[k][cnt[k] - 1];
            char name[160];
            snprintf(name, sizeof name, "%.64s: %s after %d steps", lab[k], k < 8 ? "loss" : "accuracy", steps);
            if (k < 8)
                tour_number(t, name, "%.3g nats", fin[k]);
            else
                tour_number(t, name, "%.1f%%", 100 * fin[k]);
        }
        tour_number(t, "seconds for the run with batch 4 / all points", "%.2f s / %.2f s", secs[4], secs[7]);
        int reach[4] = {-1, -1, -1, -1};   /* the first measurement at 95% or more */
        char rs[4][32];
        for (int k = 0; k < 4; k++) {
            for (int i = 0; i < cnt[8 + k] && reach[k] < 0; i++)
                if (acc[8 + k][i] >= 0.95)
                    reach[k] = i * every;
            snprintf(rs[k], sizeof rs[k], reach[k] >= 0 ? "%d steps" : "not in %d steps",
                     reach[k] >= 0 ? reach[k] : steps);
        }
        tour_number(t, "95% of the points right, Adam: cross-entropy / squared error", "%s / %s", rs[0], rs[1]);
        tour_number(t, "95% of the points right, SGD: cross-entropy / squared error", "%s / %s", rs[2], rs[3]);
        tour_say(t, "Learning rate: at %g the net hardly moves in %d steps (loss %.3f); at %g and %g it learns "
                    "(%.3g, %.3g); at %g the steps are so large that the loss jumps about and ends at %.3f. "
                    "Batch size: a step on 4 points follows a noisy guess of the gradient (the jagged curve) but "
                    "costs little; all %d points give the true gradient for %d times the work per step. Per step "
                    "the big batch wins; per point looked at, the small one: in %d steps batch 4 looked at %d "
                    "points, the full batch at %d.",
                 (double)lrs[0], steps, fin[0], (double)lrs[1], (double)lrs[2], fin[1], fin[2], (double)lrs[3],
                 fin[3], n, n / 4, steps, 4 * steps, n * steps);
        tour_say(t, "The loss: both reward the right class, but cross-entropy punishes a confident mistake "
                    "without limit (-log p), while the squared error of a probability is at most 1, so its "
                    "gradient fades where the net is most wrong. With Adam (lr %g), which rescales every "
                    "gradient to a similar step, the two reach 95%% of the points right after %s and %s. With "
                    "plain momentum SGD (lr %g), where the size of the gradient is the size of the step, "
                    "cross-entropy gets there after %s and the squared error after %s.",
                 (double)LOSS_LR, rs[0], rs[1], (double)LOSS_LR_SGD, rs[2], rs[3]);
    }
    knob_toy_data_free(&d);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 9: generalization */

knob_status tour_ch_general(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t);
    int sizes[3] = {100, 1000, 8000}, n_sizes = quick ? 2 : 3;
    long seen = quick ? 1600 : 9600;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/mnist", tour_data(t));
    knob_splits sp;
    knob_status s = knob_data_load(&sp, "digits", dir, 0, tour_seed(t), err);
    if (s)
        return s;
    if (quick && sp.val.n > 500)
        sp.val.n = 500;   /* the first 500 of the validation split (freeing does not look at n) */
    tour_say(t, "A net that gets its training examples right has only learned something if it also gets new "
                "examples right. The same digit classifier (an MLP, one hidden layer of %d) is trained on the "
                "first 100, 1,000%s of the real handwritten digits, each for the same %ld images' worth of "
                "steps (so the small set is seen over and over), and tested on %d digits it never sees.",
             quick ? 32 : 128, quick ? "" : " and 8,000", seen, sp.val.n);
    knob_vision_config mc = {.kind = KNOB_VISION_MLP, .c = 1, .h = 28, .w = 28, .n_classes = 10, .n_hidden = 1,
                             .hidden = {quick ? 32 : 128}};
    knob_train_config tc;
    knob_train_config_default(&tc);
    tc.batch = 32;
    tc.seed = tour_seed(t);
    knob_size_run *run = knob_calloc(3, sizeof *run);
    if (!run) {
        knob_splits_free(&sp);
        return nomem(err, "the runs");
    }
    tour_progress(t, "training on %d sizes of the training set", n_sizes);
    s = knob_size_sweep(&sp, &mc, &tc, sizes, n_sizes, seen, run, err);
    knob_splits_free(&sp);
    char path[4096];
    if (!s) {
        double lx[3], tra[3], vaa[3];
        for (int k = 0; k < n_sizes; k++) {
            lx[k] = log10(run[k].n_train);
            tra[k] = 100 * run[k].train_acc;
            vaa[k] = 100 * run[k].val_acc;
        }
        double ep[256];
        fill_index(ep, 256, 1, 1);
        knob_curve cu[4] = {
            {.x = lx, .y = tra, .n = n_sizes, .label = "training images", .color = "#1f77b4", .dots = 1},
            {.x = lx, .y = vaa, .n = n_sizes, .label = "new images (validation)", .color = "#d62728", .dots = 1},
            {.x = ep, .y = run[0].hist_train_loss, .n = run[0].n_hist, .label = "training images", .color = "#1f77b4"},
            {.x = ep, .y = run[0].hist_val_loss, .n = run[0].n_hist, .label = "new images (validation)",
             .color = "#d62728"},
        };
        knob_curve_panel cp[2] = {
            {.title = "Accuracy by training-set size", .xlabel = "log10 of the training images (2 = 100, 3 = 1,000)",
             .ylabel = "accuracy (%)", .n = 2, .curves = cu, .ymin = 0, .ymax = 105},
            {.title = "Trained on 100 digits: loss by epoch", .xlabel = "epoch (one pass over the 100)",
             .ylabel = "cross-entropy loss (nats)", .logy = 1, .n = 2, .curves = cu + 2},
        };
        s = knob_curves_svg(tour_path(t, "sizes.svg", path), "Generalization: seen and unseen digits", cp, 2, err);
    }
    if (!s) {
        tour_picture(t, "sizes.svg", "Left: accuracy on the training images and on new ones, by how many "
                                     "training images there were. Right: the 100-image run, epoch by epoch.");
        for (int k = 0; k < n_sizes; k++) {
            char name[96];
            snprintf(name, sizeof name, "%d images, %d epoch%s: train / validation accuracy", run[k].n_train,
                     run[k].epochs, run[k].epochs == 1 ? "" : "s");
            tour_number(t, name, "%.1f%% / %.1f%%", 100 * run[k].train_acc, 100 * run[k].val_acc);
        }
        double best = INFINITY;
        int best_ep = 0;
        for (int i = 0; i < run[0].n_hist; i++)
            if (run[0].hist_val_loss[i] < best)
                best = run[0].hist_val_loss[i], best_ep = i + 1;
        tour_number(t, "100 images: lowest validation loss, at epoch", "%.3f nats, %d", best, best_ep);
        tour_number(t, "100 images: validation loss at the end", "%.3f nats", run[0].val_loss);
        int rose = best_ep < run[0].n_hist && run[0].val_loss > 1.02 * best;
        char how[256];
        if (rose)
            snprintf(how, sizeof how, "Its loss on new digits was lowest at epoch %d (%.2f) and then rose to %.2f "
                     "while the training loss kept falling: overfitting.", best_ep, best, run[0].val_loss);
        else
            snprintf(how, sizeof how, "Its loss on new digits was still %.2f at the end, far above the training "
                     "loss: a longer run would overfit in loss too, but the gap in accuracy already shows it.",
                     run[0].val_loss);
        tour_say(t, "With 100 examples the net gets %.0f%% of them right yet only %.0f%% of new digits: it "
                    "memorised rather than generalised. %s More examples close the gap: with %d images the net "
                    "is %.0f%% right on new digits, %.0f%% on its own.",
                 100 * run[0].train_acc, 100 * run[0].val_acc, how, run[n_sizes - 1].n_train,
                 100 * run[n_sizes - 1].val_acc, 100 * run[n_sizes - 1].train_acc);
    }
    knob_free(run);
    if (s)
        return s;
    /* between the points: a wide net on few and on many toy points */
    int G = quick ? 41 : 81, few = 16, many = quick ? 200 : 400, steps = quick ? 300 : 1500, width = quick ? 32 : 64;
    size_t cells = (size_t)G * G;
    double *z = knob_malloc(2 * cells * sizeof *z);
    knob_toy_data d[2] = {{0}, {0}};
    double acc_few = 0, acc_test = 0;
    if (!z)
        return nomem(err, "the region grids");
    s = knob_toy_data_make(&d[0], KNOB_TOY_RINGS, few, 0.05f, tour_seed(t) + 3, err);
    if (!s)
        s = knob_toy_data_make(&d[1], KNOB_TOY_RINGS, many, 0.05f, tour_seed(t) + 4, err);
    for (int k = 0; k < 2 && !s; k++) {
        knob_toy_config c;
        knob_toy_config_default(&c);
        c.hidden[0] = c.hidden[1] = width;
        c.seed = tour_seed(t) + 5;
        knob_toy_net *m;
        if ((s = knob_toy_net_new(&m, &c, err)) != KNOB_OK)
            break;
        s = knob_toy_train(m, &d[k], steps, NULL, err);
        if (!s && k == 0)
            s = knob_toy_eval(m, &d[1], NULL, &acc_test, err);   /* the few-point net on the many points */
        if (!s && k == 0)
            s = knob_toy_eval(m, &d[0], NULL, &acc_few, err);
        if (!s)
            s = knob_toy_grid(m, TOY_LO, TOY_HI, TOY_LO, TOY_HI, G, G, z + k * cells, err);
        knob_toy_net_free(m);
    }
    if (!s) {
        char t0[96], t1[96];
        snprintf(t0, sizeof t0, "%d points", few);
        snprintf(t1, sizeof t1, "%d points", many);
        knob_field_panel p[2] = {
            {.title = t0, .z = z, .n_points = d[0].n, .points = d[0].x, .classes = d[0].y},
            {.title = t1, .z = z + cells, .n_points = d[1].n, .points = d[1].x, .classes = d[1].y},
        };
        knob_field_plot fp = regions_plot("Between the points: two rings, learnt from few and from many points", G);
        s = knob_fields_svg(tour_path(t, "between.svg", path), &fp, p, 2, err);
    }
    if (!s) {
        char cap[160];
        snprintf(cap, sizeof cap, "The same wide net (two layers of %d) trained on 16 points of two rings and on "
                                  "%d: what it says between the points is its own guess.", width, many);
        tour_picture(t, "between.svg", cap);
        tour_number(t, "16-point net: right on its 16 / on the other points", "%.0f%% / %.1f%%", 100 * acc_few,
                    100 * acc_test);
        tour_say(t, "Between the examples the net interpolates: with 16 points it draws some boundary that "
                    "separates them (all %.0f%% right), but not necessarily the ring that made them; on %d other "
                    "points from the same rings it is %.0f%% right. With many points the boundary is pinned "
                    "down all the way round.",
                 100 * acc_few, many, 100 * acc_test);
    }
    knob_toy_data_free(&d[0]);
    knob_toy_data_free(&d[1]);
    knob_free(z);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 10: the landscape */

knob_status tour_ch_landscape(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t);
    enum { NS = 41, NF = 201, NW = 7 };
    tour_say(t, "Why does descent find good knobs at all, when a landscape can have valleys that are not the "
                "lowest? First a landscape with one knob and two valleys, f(w) = w^4 - 3w^2 + w, descended "
                "from %d starts spread over [-2.2, 2.2].", NS);
    double starts[NS], fin[NS], fs[NS], ff[NS], wx[NF], fy[NF];
    fill_index(starts, NS, -2.2, 4.4 / (NS - 1));
    fill_index(wx, NF, -2.2, 4.4 / (NF - 1));
    knob_status s = knob_trap_descend(starts, NS, 0.01f, 1500, fin, err);
    if (s)
        return s;
    int deep = 0;
    for (int i = 0; i < NS; i++) {
        fs[i] = knob_trap_loss(starts[i]);
        ff[i] = knob_trap_loss(fin[i]);
        deep += fin[i] < 0;
    }
    for (int i = 0; i < NF; i++)
        fy[i] = knob_trap_loss(wx[i]);
    /* nets of growing width on two rings, from many seeds */
    int widths[NW] = {1, 2, 3, 4, 6, 8, 16}, seeds = quick ? 4 : 10, wsteps = quick ? 500 : 1000;
    double thr = 0.05, frac[NW], *floss = knob_malloc((size_t)NW * seeds * sizeof *floss);
    if (!floss)
        return nomem(err, "the sweep");
    knob_toy_data rings;
    s = knob_toy_data_make(&rings, KNOB_TOY_RINGS, 200, 0.03f, tour_seed(t), err);
    knob_toy_config c;
    knob_toy_config_default(&c);
    c.n_hidden = 1;
    c.lr = 0.02f;
    c.seed = tour_seed(t) * 1000;
    tour_progress(t, "training %d nets", NW * seeds);
    if (!s)
        s = knob_toy_width_sweep(&rings, &c, widths, NW, seeds, wsteps, thr, floss, frac, err);
    knob_toy_data_free(&rings);
    char path[4096];
    double wxs[NW], fr[NW];
    for (int k = 0; k < NW; k++)
        wxs[k] = widths[k], fr[k] = 100 * frac[k];
    if (!s) {
        knob_curve cu[4] = {
            {.x = wx, .y = fy, .n = NF, .label = "f(w) = w^4 - 3w^2 + w", .color = "#444"},
            {.x = starts, .y = fs, .n = NS, .label = "starts", .color = "#1f77b4", .dots = 2},
            {.x = fin, .y = ff, .n = NS, .label = "where descent stopped", .color = "#d62728", .dots = 2},
            {.x = wxs, .y = fr, .n = NW, .label = "runs reaching low loss", .color = "#2ca02c", .dots = 1},
        };
        knob_curve_panel cp[2] = {
            {.title = "One knob, two valleys: descents from 41 starts", .xlabel = "w (the one knob)",
             .ylabel = "loss f(w)", .n = 3, .curves = cu, .ymin = -4.5, .ymax = 18},
            {.title = "Nets on two rings: runs reaching a low loss", .xlabel = "hidden neurons (width)",
             .ylabel = "runs with final loss < 0.05 (%)", .n = 1, .curves = cu + 3, .ymin = -5, .ymax = 105},
        };
        s = knob_curves_svg(tour_path(t, "trapped.svg", path), "Trapped or not", cp, 2, err);
    }
    if (!s) {
        tour_picture(t, "trapped.svg", "Left: the one-knob landscape, the starts (blue) and where each descent "
                                       "ended (red). Right: the share of training runs that reach a low loss, by "
                                       "the width of the net.");
        tour_number(t, "one knob: descents ending in the deep valley", "%d of %d (%.0f%%)", deep, NS, 100.0 * deep / NS);
        for (int k = 0; k < NW; k++) {
            char name[96];
            snprintf(name, sizeof name, "width %d: runs reaching loss < %.2f", widths[k], thr);
            tour_number(t, name, "%.0f%% of %d", 100 * frac[k], seeds);
        }
        int all_from = -1;   /* the narrowest width from which every run of every wider net got there */
        for (int k = NW - 1; k >= 0 && frac[k] == 1.0; k--)
            all_from = k;
        int right_deep = 0, right = 0;   /* starts right of the ridge that still reached the deep valley */
        for (int i = 0; i < NS; i++)
            if (starts[i] > 0.17)
                right++, right_deep += fin[i] < 0;
        tour_say(t, "The one-knob descent cannot climb: of the %d starts right of the ridge near w = 0.17, %d "
                    "reached the deep valley (%d of all %d starts did). A net is different: %d seeds per width, "
                    "one hidden layer of ReLU neurons, 200 points of two rings. One or two neurons can draw only "
                    "one or two straight cuts, never enough to enclose the inner ring (%.0f%%, %.0f%% of runs). "
                    "Three can (a triangle), yet %.0f%% of runs find it; with 4 neurons %.0f%% do.",
                 right, right_deep, deep, NS, seeds, 100 * frac[0], 100 * frac[1], 100 * frac[2], 100 * frac[3]);
        if (all_from >= 0)
            tour_say(t, "From %d neurons on, every run reaches a low loss. With more knobs there are more ways "
                        "down: a direction that is a wall for one knob is rarely a wall for all of them at once.",
                     widths[all_from]);
        else
            tour_say(t, "Even the widest net here (%d) reached a low loss in %.0f%% of runs: wider nets get stuck "
                        "less often, though here not never.", widths[NW - 1], 100 * frac[NW - 1]);
    }
    knob_free(floss);
    if (s)
        return s;
    /* a 2-D slice of a trained net's loss along two filter-normalised random directions */
    int G = quick ? 25 : 41, n = 300, steps = quick ? 600 : 2000;
    double span = 0.3, *z = knob_malloc((size_t)G * G * sizeof *z);
    if (!z)
        return nomem(err, "the slice");
    knob_toy_data d;
    knob_toy_net *m = NULL;
    s = knob_toy_data_make(&d, KNOB_TOY_SPIRALS, n, 0.08f, tour_seed(t), err);   /* noisy: not all separable */
    knob_toy_config_default(&c);
    c.seed = tour_seed(t) + 1;
    if (!s)
        s = knob_toy_net_new(&m, &c, err);
    if (!s)
        s = knob_toy_train(m, &d, steps, NULL, err);
    double l0 = NAN, acc = NAN;
    if (!s)
        s = knob_toy_eval(m, &d, &l0, &acc, err);
    tour_progress(t, "slicing the landscape: %d points", G * G);
    if (!s)
        s = knob_toy_loss_slice(m, &d, span, G, G, tour_seed(t) + 2, z, err);
    if (!s) {
        double zmin = INFINITY, zmax = 0, zc = z[(G / 2) * G + G / 2];
        for (int i = 0; i < G * G; i++)
            if (isfinite(z[i]))
                zmin = fmin(zmin, z[i]), zmax = fmax(zmax, z[i]);
        double centre[2] = {0, 0};
        knob_field_path here = {.xy = centre, .n = 1, .label = "the trained weights", .color = "#ffffff"};
        knob_field_panel p = {.title = "around the trained weights of the spiral net", .z = z, .n_paths = 1,
                              .paths = &here};
        knob_field_plot fp = {.title = "A 2-D slice of the loss (Li et al. 2018)",
                              .xlabel = "alpha (along direction 1, filter-normalised)",
                              .ylabel = "beta (along direction 2, filter-normalised)",
                              .zlabel = "cross-entropy loss (log scale)", .x0 = -span, .x1 = span, .y0 = -span,
                              .y1 = span, .nx = G, .ny = G, .zmin = fmax(zmin, 1e-6), .zmax = fmax(zmax, 2 * fmax(zmin, 1e-6)),
                              .logz = 1, .cmap = KNOB_CMAP_SEQUENTIAL, .n_levels = 10};
        s = knob_fields_svg(tour_path(t, "slice.svg", path), &fp, &p, 1, err);
        if (!s) {
            tour_picture(t, "slice.svg", "The loss on the plane through the trained weights spanned by two random "
                                         "directions, each filter scaled to the size of the weights it moves.");
            tour_number(t, "trained net: loss, accuracy", "%.2e nats, %.1f%%", l0, 100 * acc);
            tour_number(t, "slice: loss at the centre, lowest, highest", "%.2e, %.2e, %.3g nats", zc, zmin, zmax);
            tour_say(t, "Around its trained weights (%d knobs) the net sits in a basin: moving all the knobs "
                        "along two random directions, each filter by up to %.1f times its own size, raises the loss "
                        "from %.2g to as much as %.3g. The directions are normalised per "
                        "filter because a ReLU net computes the same function when a neuron's incoming weights "
                        "are scaled up and its outgoing ones down; without that the picture would depend on "
                        "such arbitrary scales.",
                     (int)knob_toy_net_params(m)->n_elems, span, zc, zmax);
        }
    }
    knob_toy_net_free(m);
    knob_toy_data_free(&d);
    knob_free(z);
    return s;
}
