/* landscape.c: why big nets rarely get stuck (the tour's chapter 10). A one-knob toy whose loss
 * f(w) = w^4 - 3 w^2 + w has a deep and a shallow minimum, descended from many starts at once
 * through the graph with plain SGD (each start is one element of one parameter tensor and the loss
 * is the sum of f over them, so every element follows its own gradient); and 2-D slices of a
 * loss around trained weights along two random filter-normalised directions (Li, Xu, Taylor,
 * Studer and Goldstein, "Visualizing the Loss Landscape of Neural Nets", 2018).
 *
 * Not here: the nets whose landscapes are sliced (src/models/toy.c) and the pictures. */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

double knob_trap_loss(double w) { return w * w * w * w - 3 * w * w + w; }

knob_status knob_trap_descend(const double *starts, int n, float lr, int n_steps, double *final_w, knob_err *err)
{
    if (n < 1 || n_steps < 0 || !(lr > 0 && isfinite(lr)))
        return knob_fail(err, KNOB_ERR_USAGE, "trap: %d starts, %d steps, lr %g; expected n >= 1, steps >= 0, lr > 0",
                         n, n_steps, (double)lr);
    knob_params P;
    knob_params_init(&P);
    knob_optim opt = {0};
    knob_graph *g = NULL;
    knob_tensor *w = knob_params_add(&P, "w", 1, (int[]){n}, err);
    knob_status s = w ? knob_params_alloc(&P, err) : (err ? err->code : KNOB_ERR_NOMEM);
    if (!s)
        s = knob_optim_init(&opt, &P, &(knob_optim_config){.kind = KNOB_OPTIM_SGD}, err);
    if (!s && !(g = knob_graph_new(err)))
        s = err ? err->code : KNOB_ERR_NOMEM;
    knob_node *loss = NULL;
    if (!s) {
        /* f = w^4 - 3 w^2 + w, summed over the starts */
        knob_node *wn = knob_param(g, w);
        knob_node *w2 = knob_mul(g, wn, wn);
        knob_node *f = knob_add(g, knob_add(g, knob_mul(g, w2, w2), knob_scale(g, w2, -3.0f)), wn);
        loss = knob_sum_all(g, f);
        s = knob_graph_compile(g, err);
    }
    if (!s) {
        for (int i = 0; i < n; i++)
            w->data[i] = (float)starts[i];
        for (int k = 0; k < n_steps && !s; k++) {
            knob_params_zero_grad(&P);
            s = knob_graph_forward(g, err);
            if (!s) {
                knob_graph_backward(g, loss);
                knob_optim_step(&opt, lr);
            }
        }
        for (int i = 0; i < n && !s; i++)
            final_w[i] = w->data[i];
    }
    knob_graph_free(g);
    knob_optim_free(&opt);
    knob_params_free(&P);
    return s;
}

void knob_filter_direction(const knob_params *P, knob_rng *r, float *dir)
{
    size_t at = 0;
    for (int i = 0; i < P->n; i++) {
        const knob_tensor *t = P->t[i];
        size_t n = t->n_elems;
        if (t->n_dims < 2) {
            memset(dir + at, 0, n * sizeof *dir);   /* biases stay put (Li et al.) */
            at += n;
            continue;
        }
        size_t rows = (size_t)t->shape[0], per = n / rows;
        for (size_t f = 0; f < rows; f++) {
            float *d = dir + at + f * per;
            const float *v = t->data + f * per;
            double dn = 0, vn = 0;
            for (size_t k = 0; k < per; k++) {
                d[k] = knob_rng_normal(r);
                dn += (double)d[k] * d[k];
                vn += (double)v[k] * v[k];
            }
            double scale = dn > 0 ? sqrt(vn / dn) : 0;
            for (size_t k = 0; k < per; k++)
                d[k] = (float)(d[k] * scale);
        }
        at += n;
    }
}

knob_status knob_loss_slice(knob_params *P, const float *d1, const float *d2, double span, int nx, int ny,
                            knob_loss_fn loss_fn, void *ctx, double *z, knob_err *err)
{
    if (nx < 2 || ny < 2 || !(span > 0))
        return knob_fail(err, KNOB_ERR_USAGE, "loss slice: %d x %d nodes over span %g; need 2 x 2 or more and span > 0",
                         nx, ny, span);
    size_t n = P->n_elems;
    float *theta = knob_malloc(n * sizeof *theta);
    if (!theta)
        return knob_fail(err, KNOB_ERR_NOMEM, "loss slice: out of memory for %zu parameters", n);
    memcpy(theta, P->data, n * sizeof *theta);
    knob_status s = KNOB_OK;
    for (int j = 0; j < ny && !s; j++)
        for (int i = 0; i < nx && !s; i++) {
            double a = -span + 2 * span * i / (nx - 1), b = -span + 2 * span * j / (ny - 1);
            for (size_t k = 0; k < n; k++)
                P->data[k] = (float)(theta[k] + a * d1[k] + b * d2[k]);
            s = loss_fn(ctx, &z[(size_t)j * nx + i], err);
        }
    memcpy(P->data, theta, n * sizeof *theta);
    knob_free(theta);
    return s;
}
