/* vision_pictures.c: what a trained classifier looks like. Loss and accuracy curves per epoch
 * (SVG), the first layer's learned filters, one image's feature maps after each conv stage, and a
 * grid of misclassified images with "true>predicted" captions (PNG grids from src/io/grid.c).
 *
 * Not here: the grid drawing and PNG writing (src/io/grid.c, src/io/image.c). */
#include "knob_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Curves */

knob_status knob_vision_curves_svg(const char *path, const knob_train_state *st, const char *title, knob_err *err)
{
    int n = st->n_hist;
    if (n < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: no epochs to draw", path);
    double *buf = knob_malloc((size_t)5 * (size_t)n * sizeof *buf);
    if (!buf)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    double *ex = buf, *tl = buf + n, *vl = buf + 2 * n, *ta = buf + 3 * n, *va = buf + 4 * n;
    for (int i = 0; i < n; i++) {
        ex[i] = st->hist[i].epoch;
        tl[i] = st->hist[i].train_loss;
        vl[i] = st->hist[i].val_loss;
        ta[i] = 100 * st->hist[i].train_acc;
        va[i] = 100 * st->hist[i].val_acc;
    }
    double lo1, hi1, lo2, hi2, lo, hi;
    knob_range(tl, n, &lo1, &hi1);
    knob_range(vl, n, &lo2, &hi2);
    lo = fmin(lo1, isfinite(lo2) ? lo2 : lo1);
    hi = fmax(hi1, isfinite(hi2) ? hi2 : hi1);
    double x0 = ex[0] - 0.5, x1 = ex[n - 1] + 0.5;
    knob_chart left = {.left = 70, .top = 50, .width = 380, .height = 300, .xmin = x0, .xmax = x1,
                       .ymin = fmax(0, lo), .ymax = hi, .title = "Loss (cross-entropy)", .xlabel = "epoch",
                       .ylabel = "loss"};
    knob_range(ta, n, &lo1, &hi1);
    knob_range(va, n, &lo2, &hi2);
    lo = fmin(lo1, isfinite(lo2) ? lo2 : lo1);
    hi = fmin(100, fmax(hi1, isfinite(hi2) ? hi2 : hi1));
    knob_chart right = {.left = 560, .top = 50, .width = 380, .height = 300, .xmin = x0, .xmax = x1,
                        .ymin = lo, .ymax = hi, .title = "Accuracy (%)", .xlabel = "epoch", .ylabel = "accuracy %"};
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s) {
        knob_free(buf);
        return s;
    }
    FILE *f = a.f;
    knob_svg_begin(f, 1000, 420);
    knob_svg_text(f, 500, 22, "middle", 15, title ? title : "training");
    const char *labels[2] = {"train", "validation"}, *colors[2] = {"#2c7fb8", "#d95f0e"};
    knob_chart_axes(f, &left);
    knob_chart_line(f, &left, ex, tl, n, colors[0], 0);
    knob_chart_points(f, &left, ex, tl, n, colors[0], 0);
    knob_chart_line(f, &left, ex, vl, n, colors[1], 0);
    knob_chart_points(f, &left, ex, vl, n, colors[1], 1);
    knob_chart corner = left;   /* legends where the curves are not: loss falls, so top right */
    corner.left = left.left + left.width - 190;
    knob_chart_legend(f, &corner, 2, labels, colors);
    knob_chart_axes(f, &right);
    knob_chart_line(f, &right, ex, ta, n, colors[0], 0);
    knob_chart_points(f, &right, ex, ta, n, colors[0], 0);
    knob_chart_line(f, &right, ex, va, n, colors[1], 0);
    knob_chart_points(f, &right, ex, va, n, colors[1], 1);
    corner = right;             /* accuracy rises: bottom right */
    corner.left = right.left + right.width - 190;
    corner.top = right.top + right.height - 60;
    knob_chart_legend(f, &corner, 2, labels, colors);
    knob_svg_text(f, 70, 405, "start", 11,
                  "train: running mean over each epoch's batches (with dropout and augmentation); validation: after the epoch");
    knob_svg_end(f);
    knob_free(buf);
    return knob_atomic_commit(&a, err);
}

/* ------------------------------------------------------------------------------------------------
 * Filters */

knob_status knob_vision_filters_png(const char *path, const knob_vision *m, knob_err *err)
{
    const knob_vision_config *c = &m->cfg;
    knob_grid g;
    knob_status s;
    if (c->kind == KNOB_VISION_CNN) {
        /* conv1.weight (OC, C, K, K): one tile per (output channel, input channel) */
        const knob_tensor *w = m->conv_w[0];
        int OC = w->shape[0], C = w->shape[1], K = w->shape[2], n = OC * C;
        int scale = K <= 3 ? 12 : K <= 5 ? 8 : 5;
        if ((s = knob_grid_init(&g, n, KNOB_MIN(n, 16), K, K, scale, 0, err)) != KNOB_OK)
            return s;
        for (int i = 0; i < n; i++)
            knob_grid_tile(&g, i, w->data + (size_t)i * K * K, KNOB_GRID_SIGNED);
    } else {
        /* fc1.weight (out, c*h*w): each hidden unit's weights as an image, first 64 units */
        const knob_tensor *w = m->fc_w[0];
        int n = KNOB_MIN(w->shape[0], 64), hw = c->h * c->w;
        if ((s = knob_grid_init(&g, n, KNOB_MIN(n, 8), c->h, c->w, 2, 0, err)) != KNOB_OK)
            return s;
        for (int i = 0; i < n; i++)
            knob_grid_tile(&g, i, w->data + (size_t)i * w->shape[1], KNOB_GRID_SIGNED);
        (void)hw;
    }
    s = knob_grid_save(&g, path, err);
    knob_grid_free(&g);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Feature maps: grids stacked vertically into one RGB picture */

knob_status knob_vision_features_png(const char *path, knob_vision *m, const knob_dataset *d, int index,
                                     knob_err *err)
{
    const knob_vision_config *c = &m->cfg;
    if (c->kind != KNOB_VISION_CNN)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: feature maps need a CNN", path);
    if (index < 0 || index >= d->n)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: image index %d is outside the %d test images", path, index, d->n);
    knob_vision_net n;
    knob_status s = knob_vision_net_build(&n, m, 1, 0, err);
    if (s)
        return s;
    size_t img = (size_t)c->c * c->h * c->w;
    float *probs = knob_malloc(16 * sizeof *probs);
    knob_grid grids[KNOB_VISION_MAX_LAYERS + 1];
    int n_grids = 0;
    memset(grids, 0, sizeof grids);
    if (!probs) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((s = knob_vision_classify(&n, d->x + (size_t)index * img, probs, err)) != KNOB_OK)
        goto done;
    /* the input, large, with its label */
    if ((s = knob_grid_init(&grids[0], 1, 1, c->h, c->w * c->c, 4, 1, err)) != KNOB_OK)
        goto done;
    n_grids = 1;
    knob_grid_tile(&grids[0], 0, d->x + (size_t)index * img, KNOB_GRID_UNIT);
    char cap[48];
    snprintf(cap, sizeof cap, "input: %.24s", d->class_names[d->y[index] & 15]);
    knob_grid_label(&grids[0], 0, cap, 0, 0, 0);
    for (int l = 0; l < n.n_feat; l++) {
        const knob_tensor *t = knob_node_tensor(n.feat[l]);   // (1, OC, H, W)
        int OC = t->shape[1], H = t->shape[2], W = t->shape[3];
        int scale = KNOB_MAX(1, 56 / KNOB_MAX(H, 1));
        if ((s = knob_grid_init(&grids[n_grids], OC, KNOB_MIN(OC, 16), H, W, scale, 0, err)) != KNOB_OK)
            goto done;
        for (int k = 0; k < OC; k++)
            knob_grid_tile(&grids[n_grids], k, t->data + (size_t)k * H * W, KNOB_GRID_MINMAX);
        n_grids++;
    }
    /* stack: white gap of 12 px between grids, left aligned */
    int W = 0, H = 0, gap = 12;
    for (int i = 0; i < n_grids; i++) {
        W = KNOB_MAX(W, grids[i].w);
        H += grids[i].h + (i ? gap : 0);
    }
    uint8_t *rgb = knob_malloc((size_t)W * H * 3);
    if (!rgb) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    memset(rgb, 255, (size_t)W * H * 3);
    int y0 = 0;
    for (int i = 0; i < n_grids; i++) {
        for (int y = 0; y < grids[i].h; y++)
            memcpy(rgb + ((size_t)(y0 + y) * W) * 3, grids[i].rgb + (size_t)y * grids[i].w * 3, (size_t)grids[i].w * 3);
        y0 += grids[i].h + gap;
    }
    s = knob_png_write(path, W, H, 3, rgb, err);
    knob_free(rgb);
done:
    for (int i = 0; i < n_grids; i++)
        knob_grid_free(&grids[i]);
    knob_free(probs);
    knob_vision_net_free(&n);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Misclassified images */

knob_status knob_vision_errors_png(const char *path, const knob_dataset *d, const int32_t *pred, int *n_shown,
                                   knob_err *err)
{
    int n = 0;
    for (int i = 0; i < d->n && n < 64; i++)
        n += pred[i] != d->y[i];
    if (n_shown)
        *n_shown = n;
    knob_grid g;
    /* no mistakes: one blank tile saying so */
    knob_status s = knob_grid_init(&g, KNOB_MAX(n, 1), KNOB_MAX(1, KNOB_MIN(n, 8)), d->h, d->w * d->c, 2, 1, err);
    if (s)
        return s;
    int k = 0;
    for (int i = 0; i < d->n && k < n; i++) {
        if (pred[i] == d->y[i])
            continue;
        char cap[16];
        snprintf(cap, sizeof cap, "%d>%d", (int)d->y[i], (int)pred[i]);
        knob_grid_tile(&g, k, d->x + (size_t)i * d->c * d->h * d->w, KNOB_GRID_UNIT);
        knob_grid_label(&g, k, cap, 200, 0, 0);
        k++;
    }
    if (n == 0)
        knob_grid_label(&g, 0, "none", 0, 120, 0);
    s = knob_grid_save(&g, path, err);
    knob_grid_free(&g);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Edge scores of the first layer's filters */

double knob_edge_score(const float *w, int k, int n_orient, int *orient)
{
    const double pi = 3.14159265358979323846;
    int n = k * k;
    double mean = 0, ww = 0;
    for (int i = 0; i < n; i++)
        mean += w[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        ww += (w[i] - mean) * (w[i] - mean);
    double best = 0;
    int best_i = 0;
    for (int o = 0; o < n_orient; o++) {
        double a = pi * o / n_orient, ca = cos(a), sa = sin(a), tm = 0, tt = 0, wt = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int r = 0; r < k; r++)
                for (int c = 0; c < k; c++) {
                    double x = c - (k - 1) / 2.0, y = r - (k - 1) / 2.0, p = x * ca + y * sa;
                    double t = p > 1e-9 ? 1 : p < -1e-9 ? -1 : 0;
                    if (pass == 0)
                        tm += t / n;
                    else {
                        tt += (t - tm) * (t - tm);
                        wt += (w[r * k + c] - mean) * (t - tm);
                    }
                }
        double corr = ww > 0 && tt > 0 ? fabs(wt) / sqrt(ww * tt) : 0;
        if (corr > best + 1e-12) {
            best = corr;
            best_i = o;
        }
    }
    if (orient)
        *orient = best_i;
    return best;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

knob_status knob_vision_edge_scores(const knob_vision *m, int n_orient, float *scores, float *median, knob_err *err)
{
    if (m->cfg.kind != KNOB_VISION_CNN || m->cfg.n_conv < 1 || !m->conv_w[0])
        return knob_fail(err, KNOB_ERR_USAGE, "edge scores: the model has no convolution layer");
    if (n_orient < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "edge scores: %d orientations (at least 1)", n_orient);
    const knob_tensor *W = m->conv_w[0];   /* (OC, C, K, K) */
    int OC = W->shape[0], C = W->shape[1], K = W->shape[2];
    float *avg = knob_malloc((size_t)K * K * sizeof *avg), *sorted = knob_malloc((size_t)OC * sizeof *sorted);
    if (!avg || !sorted) {
        knob_free(avg);
        knob_free(sorted);
        return knob_fail(err, KNOB_ERR_NOMEM, "edge scores: out of memory");
    }
    for (int o = 0; o < OC; o++) {
        for (int i = 0; i < K * K; i++) {
            double acc = 0;
            for (int c = 0; c < C; c++)
                acc += W->data[((size_t)o * C + c) * K * K + i];
            avg[i] = (float)(acc / C);
        }
        scores[o] = (float)knob_edge_score(avg, K, n_orient, NULL);
        sorted[o] = scores[o];
    }
    qsort(sorted, (size_t)OC, sizeof *sorted, cmp_float);
    *median = OC % 2 ? sorted[OC / 2] : 0.5f * (sorted[OC / 2 - 1] + sorted[OC / 2]);
    knob_free(avg);
    knob_free(sorted);
    return KNOB_OK;
}
