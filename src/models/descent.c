/* descent.c: gradient descent on the simplest landscape there is (the tour's chapter 3): the mean
 * squared error of a line y = w x + b over noisy points, as a surface over its two knobs (w, b),
 * and the paths that the library's optimizers (SGD, SGD with momentum, Adam) take on it through
 * the graph. The surface is a quadratic bowl whose Hessian is 2 [[mean x^2, mean x], [mean x, 1]],
 * so the learning rate above which plain descent diverges, 2 / its largest eigenvalue, is known in
 * closed form.
 *
 * Not here: the pictures (src/io/svg.c: knob_fields_svg) and the words (cli/tour_lab.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

void knob_line_data_free(knob_line_data *d)
{
    if (!d)
        return;
    knob_free(d->x);
    knob_free(d->y);
    memset(d, 0, sizeof *d);
}

knob_status knob_line_data_make(knob_line_data *d, int n, double slope, double intercept, double noise,
                                uint64_t seed, knob_err *err)
{
    memset(d, 0, sizeof *d);
    if (n < 2 || n > (1 << 20))
        return knob_fail(err, KNOB_ERR_USAGE, "line data: %d points; expected 2 to %d", n, 1 << 20);
    d->x = knob_malloc((size_t)n * sizeof *d->x);
    d->y = knob_malloc((size_t)n * sizeof *d->y);
    if (!d->x || !d->y) {
        knob_line_data_free(d);
        return knob_fail(err, KNOB_ERR_NOMEM, "line data: out of memory for %d points", n);
    }
    d->n = n;
    knob_rng r;
    knob_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        d->x[i] = -1.0 + 2.0 * i / (n - 1);
        d->y[i] = slope * d->x[i] + intercept + noise * knob_rng_normal(&r);
    }
    return KNOB_OK;
}

double knob_line_loss(const knob_line_data *d, double w, double b)
{
    double s = 0;
    for (int i = 0; i < d->n; i++) {
        double e = w * d->x[i] + b - d->y[i];
        s += e * e;
    }
    return s / d->n;
}

void knob_line_surface(const knob_line_data *d, double w0, double w1, double b0, double b1, int nx, int ny,
                       double *z)
{
    for (int j = 0; j < ny; j++)
        for (int i = 0; i < nx; i++)
            z[(size_t)j * nx + i] = knob_line_loss(d, w0 + (w1 - w0) * i / (nx - 1), b0 + (b1 - b0) * j / (ny - 1));
}

void knob_line_optimum(const knob_line_data *d, double *w, double *b, double *lmax, double *lmin)
{
    double n = d->n, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < d->n; i++) {
        sx += d->x[i];
        sy += d->y[i];
        sxx += d->x[i] * d->x[i];
        sxy += d->x[i] * d->y[i];
    }
    double mx = sx / n, my = sy / n, mxx = sxx / n, mxy = sxy / n;
    double ww = (mxy - mx * my) / (mxx - mx * mx);
    if (w)
        *w = ww;
    if (b)
        *b = my - ww * mx;
    /* eigenvalues of 2 [[mxx, mx], [mx, 1]] */
    double tr = mxx + 1, det = mxx - mx * mx, disc = sqrt(fmax(0, tr * tr / 4 - det));
    if (lmax)
        *lmax = 2 * (tr / 2 + disc);
    if (lmin)
        *lmin = 2 * (tr / 2 - disc);
}

knob_status knob_line_descend(const knob_line_data *d, const knob_optim_config *oc, float lr, double w, double b,
                              int n_steps, double *path, knob_err *err)
{
    if (n_steps < 0 || !(lr > 0 && isfinite(lr)))
        return knob_fail(err, KNOB_ERR_USAGE, "line descent: %d steps at lr %g; expected steps >= 0 and lr > 0", n_steps,
                         (double)lr);
    int n = d->n;
    knob_params P;
    knob_params_init(&P);
    knob_optim opt = {0};
    knob_graph *g = NULL;
    knob_tensor *tw = knob_params_add(&P, "w", 2, (int[]){1, 1}, err);
    knob_tensor *tb = tw ? knob_params_add(&P, "b", 1, (int[]){1}, err) : NULL;
    knob_status s = tb ? knob_params_alloc(&P, err) : (err ? err->code : KNOB_ERR_NOMEM);
    if (!s)
        s = knob_optim_init(&opt, &P, oc, err);
    if (!s && !(g = knob_graph_new(err)))
        s = err ? err->code : KNOB_ERR_NOMEM;
    knob_node *x = NULL, *y = NULL, *loss = NULL;
    if (!s) {
        x = knob_input(g, "x", 2, (int[]){n, 1});
        y = knob_input(g, "y", 2, (int[]){n, 1});
        knob_node *pred = knob_add(g, knob_matmul(g, x, knob_param(g, tw), 0, 1), knob_param(g, tb));
        loss = knob_mse(g, pred, y);
        s = knob_graph_compile(g, err);
    }
    if (!s) {
        float *xs = knob_node_data(x), *ys = knob_node_data(y);
        for (int i = 0; i < n; i++) {
            xs[i] = (float)d->x[i];
            ys[i] = (float)d->y[i];
        }
        tw->data[0] = (float)w;
        tb->data[0] = (float)b;
        for (int k = 0; k <= n_steps && !s; k++) {
            path[3 * k] = tw->data[0];
            path[3 * k + 1] = tb->data[0];
            path[3 * k + 2] = knob_line_loss(d, tw->data[0], tb->data[0]);
            if (k == n_steps)
                break;
            knob_params_zero_grad(&P);
            s = knob_graph_forward(g, err);
            if (!s) {
                knob_graph_backward(g, loss);
                knob_optim_step(&opt, lr);
            }
        }
    }
    knob_graph_free(g);
    knob_optim_free(&opt);
    knob_params_free(&P);
    return s;
}
