/* toy.c: small nets on 2-D points, the tour's laboratory animal (chapters 2, 8, 9, 10). A net is
 * 2 inputs -> a few dense layers (tanh or ReLU) -> 2 logits, built with the graph API and trained
 * with the library's optimizers through the shared step helper (src/train/step.c), so the tour
 * shows the same machinery that trains the digits and the GPT.
 *
 * Memory: the training graph (batch B) is built at the first knob_toy_train and an inference graph
 * of EVAL_B rows at the first evaluation; steps allocate nothing. Evaluation, decision-region grids
 * and the width sweep run through the inference graph.
 *
 * Not here: the points (src/data/toy2d.c), loss slices' directions (src/models/landscape.c),
 * pictures (src/io/svg.c) and what the tour says about them (cli/tour_lab.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

enum { EVAL_B = 256 };

struct knob_toy_net {
    knob_toy_config c;
    knob_params P;
    knob_tensor *w[KNOB_TOY_MAX_LAYERS + 1], *b[KNOB_TOY_MAX_LAYERS + 1];
    int n_layers;
    knob_optim opt;
    knob_step step;
    /* training graph */
    knob_graph *g;
    knob_node *x, *y, *hot, *loss;
    int B, n_data;
    const knob_toy_data *d;   /* during knob_toy_train */
    int *order, cursor;
    knob_rng order_rng;
    long steps;
    /* inference graph */
    knob_graph *ge;
    knob_node *ex, *elogits;
};

void knob_toy_config_default(knob_toy_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_hidden = 2;
    c->hidden[0] = c->hidden[1] = 16;
    c->optim = (knob_optim_config){.kind = KNOB_OPTIM_ADAM, .momentum = 0.9f, .beta1 = 0.9f, .beta2 = 0.999f,
                                   .eps = 1e-8f};
    c->relu = 1;
    c->lr = 0.01f;
    c->seed = 1;
}

void knob_toy_net_free(knob_toy_net *m)
{
    if (!m)
        return;
    knob_graph_free(m->g);
    knob_graph_free(m->ge);
    knob_optim_free(&m->opt);
    knob_params_free(&m->P);
    knob_free(m->order);
    knob_free(m);
}

knob_params *knob_toy_net_params(knob_toy_net *m) { return &m->P; }
long knob_toy_steps(const knob_toy_net *m) { return m->steps; }

knob_status knob_toy_net_new(knob_toy_net **out, const knob_toy_config *c, knob_err *err)
{
    *out = NULL;
    if (c->n_hidden < 0 || c->n_hidden > KNOB_TOY_MAX_LAYERS)
        return knob_fail(err, KNOB_ERR_USAGE, "toy net: %d hidden layers; expected 0 to %d", c->n_hidden,
                         KNOB_TOY_MAX_LAYERS);
    for (int l = 0; l < c->n_hidden; l++)
        if (c->hidden[l] < 1 || c->hidden[l] > 4096)
            return knob_fail(err, KNOB_ERR_USAGE, "toy net: hidden layer %d has width %d; expected 1 to 4096", l + 1,
                             c->hidden[l]);
    if (!(c->lr > 0 && isfinite(c->lr)))
        return knob_fail(err, KNOB_ERR_USAGE, "toy net: learning rate %g; expected a finite value > 0", (double)c->lr);
    if (c->batch < 0)
        return knob_fail(err, KNOB_ERR_USAGE, "toy net: batch %d; expected 0 (all points) or more", c->batch);
    knob_toy_net *m = knob_calloc(1, sizeof *m);
    if (!m)
        return knob_fail(err, KNOB_ERR_NOMEM, "toy net: out of memory");
    m->c = *c;
    m->n_layers = c->n_hidden + 1;
    knob_params_init(&m->P);
    knob_status s = KNOB_OK;
    int in = 2;
    for (int l = 0; l < m->n_layers && !s; l++) {
        int out_w = l < c->n_hidden ? c->hidden[l] : 2;
        char name[32];
        snprintf(name, sizeof name, "fc%d.weight", l + 1);
        m->w[l] = knob_params_add(&m->P, name, 2, (int[]){out_w, in}, err);
        snprintf(name, sizeof name, "fc%d.bias", l + 1);
        m->b[l] = knob_params_add(&m->P, name, 1, (int[]){out_w}, err);
        if (!m->w[l] || !m->b[l])
            s = err ? err->code : KNOB_ERR_NOMEM;
        in = out_w;
    }
    if (!s)
        s = knob_params_alloc(&m->P, err);
    if (!s)
        s = knob_optim_init(&m->opt, &m->P, &c->optim, err);
    if (s) {
        knob_toy_net_free(m);
        return s;
    }
    knob_rng r;
    knob_rng_seed(&r, c->seed);
    for (int l = 0; l < m->n_layers; l++)
        knob_init_xavier(m->w[l], &r);
    knob_rng_seed(&m->order_rng, c->seed ^ 0x6f72646572ull);
    *out = m;
    return KNOB_OK;
}

/* logits (B, 2) of the net on x (B, 2) */
static knob_node *forward_graph(knob_graph *g, knob_toy_net *m, knob_node *x)
{
    knob_node *h = x;
    for (int l = 0; l < m->n_layers; l++) {
        h = knob_add(g, knob_matmul(g, h, knob_param(g, m->w[l]), 0, 1), knob_param(g, m->b[l]));
        if (l + 1 < m->n_layers)
            h = m->c.relu ? knob_relu(g, h) : knob_tanh(g, h);
    }
    return h;
}

static knob_status build_train(knob_toy_net *m, int n_data, knob_err *err)
{
    int B = m->c.batch > 0 && m->c.batch < n_data ? m->c.batch : n_data;
    m->g = knob_graph_new(err);
    if (!m->g)
        return err ? err->code : KNOB_ERR_NOMEM;
    m->x = knob_input(m->g, "x", 2, (int[]){B, 2});
    knob_node *logits = forward_graph(m->g, m, m->x);
    if (m->c.loss_mse) {
        m->hot = knob_input(m->g, "one_hot", 2, (int[]){B, 2});
        m->loss = knob_mse(m->g, knob_softmax(m->g, logits), m->hot);
    } else {
        m->y = knob_input_i32(m->g, "y", 1, (int[]){B});
        m->loss = knob_cross_entropy(m->g, logits, m->y, -1);
    }
    knob_status s = knob_graph_compile(m->g, err);
    if (s)
        return s;
    m->order = knob_malloc((size_t)n_data * sizeof *m->order);
    if (!m->order)
        return knob_fail(err, KNOB_ERR_NOMEM, "toy net: out of memory for %d indices", n_data);
    for (int i = 0; i < n_data; i++)
        m->order[i] = i;
    m->cursor = n_data;   /* shuffle before the first batch */
    m->B = B;
    m->n_data = n_data;
    m->step = (knob_step){.g = m->g, .loss = m->loss, .P = &m->P, .opt = &m->opt, .accum = 1,
                          .fill = NULL, .ctx = m, .last_finite = NAN, .last_finite_step = -1};
    return KNOB_OK;
}

/* the next batch of B points of the shuffled order (full batch: every point, in order) */
static knob_status toy_fill(void *ctx, int micro, int *rows, knob_err *err)
{
    (void)micro, (void)err;
    knob_toy_net *m = ctx;
    const knob_toy_data *d = m->d;
    float *x = knob_node_data(m->x);
    float *hot = m->hot ? knob_node_data(m->hot) : NULL;
    int32_t *y = m->y ? knob_node_data_i32(m->y) : NULL;
    for (int r = 0; r < m->B; r++) {
        int i = r;
        if (m->B < m->n_data) {
            if (m->cursor >= m->n_data) {
                knob_rng_shuffle(&m->order_rng, m->order, (size_t)m->n_data);
                m->cursor = 0;
            }
            i = m->order[m->cursor++];
        }
        x[2 * r] = d->x[2 * i];
        x[2 * r + 1] = d->x[2 * i + 1];
        if (hot) {
            hot[2 * r] = d->y[i] == 0;
            hot[2 * r + 1] = d->y[i] == 1;
        } else
            y[r] = d->y[i];
    }
    if (rows)
        *rows = m->B;
    return KNOB_OK;
}

knob_status knob_toy_train(knob_toy_net *m, const knob_toy_data *d, int n_steps, double *losses, knob_err *err)
{
    if (!m->g) {
        knob_status s = build_train(m, d->n, err);
        if (s) {
            knob_graph_free(m->g);
            m->g = NULL;
            return s;
        }
    }
    if (d->n != m->n_data)
        return knob_fail(err, KNOB_ERR_USAGE, "toy net: trained on %d points before, now given %d", m->n_data, d->n);
    m->d = d;
    m->step.fill = toy_fill;
    for (int k = 0; k < n_steps; k++) {
        knob_step_result res;
        knob_status s = knob_step_run(&m->step, m->steps + 1, m->c.lr, &res, err);
        if (s)
            return s;
        m->steps++;
        m->step.last_finite = res.loss;
        m->step.last_finite_step = m->steps;
        if (losses)
            losses[k] = res.loss;
    }
    m->d = NULL;
    return KNOB_OK;
}

static knob_status build_eval(knob_toy_net *m, knob_err *err)
{
    if (m->ge)
        return KNOB_OK;
    m->ge = knob_graph_new(err);
    if (!m->ge)
        return err ? err->code : KNOB_ERR_NOMEM;
    m->ex = knob_input(m->ge, "x", 2, (int[]){EVAL_B, 2});
    m->elogits = forward_graph(m->ge, m, m->ex);
    knob_status s = knob_graph_compile(m->ge, err);
    if (s) {
        knob_graph_free(m->ge);
        m->ge = NULL;
    }
    return s;
}

/* logits (n, 2) of points (n, 2) through the inference graph, EVAL_B rows at a time */
static knob_status toy_logits(knob_toy_net *m, const float *pts, int n, double *logits, knob_err *err)
{
    knob_status s = build_eval(m, err);
    if (s)
        return s;
    float *x = knob_node_data(m->ex);
    const float *lg = knob_node_data(m->elogits);
    for (int at = 0; at < n; at += EVAL_B) {
        int rows = KNOB_MIN(EVAL_B, n - at);
        memset(x, 0, (size_t)EVAL_B * 2 * sizeof *x);
        memcpy(x, pts + 2 * (size_t)at, (size_t)rows * 2 * sizeof *x);
        if ((s = knob_graph_forward(m->ge, err)) != KNOB_OK)
            return s;
        for (int r = 0; r < 2 * rows; r++)
            logits[2 * (size_t)at + r] = lg[r];
    }
    return KNOB_OK;
}

/* softmax of two logits: the probability of class 1 */
static double p_class1(double l0, double l1) { return 1.0 / (1.0 + exp(l0 - l1)); }

knob_status knob_toy_eval(knob_toy_net *m, const knob_toy_data *d, double *loss, double *acc, knob_err *err)
{
    double *lg = knob_malloc((size_t)d->n * 2 * sizeof *lg);
    if (!lg)
        return knob_fail(err, KNOB_ERR_NOMEM, "toy net: out of memory for %d logits", 2 * d->n);
    knob_status s = toy_logits(m, d->x, d->n, lg, err);
    double sum = 0;
    int correct = 0;
    for (int i = 0; i < d->n && !s; i++) {
        double l0 = lg[2 * i], l1 = lg[2 * i + 1], mx = fmax(l0, l1);
        double lse = mx + log(exp(l0 - mx) + exp(l1 - mx));
        if (m->c.loss_mse) {
            double p1 = p_class1(l0, l1), t1 = d->y[i] == 1;
            sum += (p1 - t1) * (p1 - t1);   /* both outputs miss by the same amount: mean of the two */
        } else
            sum += lse - (d->y[i] ? l1 : l0);
        correct += (l1 > l0) == (d->y[i] == 1);
    }
    knob_free(lg);
    if (s)
        return s;
    if (loss)
        *loss = sum / d->n;
    if (acc)
        *acc = (double)correct / d->n;
    return KNOB_OK;
}

knob_status knob_toy_grid(knob_toy_net *m, double x0, double x1, double y0, double y1, int nx, int ny, double *p1,
                          knob_err *err)
{
    if (nx < 2 || ny < 2)
        return knob_fail(err, KNOB_ERR_USAGE, "toy grid: %d x %d nodes; need at least 2 x 2", nx, ny);
    size_t n = (size_t)nx * ny;
    float *pts = knob_malloc(n * 2 * sizeof *pts);
    double *lg = knob_malloc(n * 2 * sizeof *lg);
    knob_status s = KNOB_OK;
    if (!pts || !lg)
        s = knob_fail(err, KNOB_ERR_NOMEM, "toy grid: out of memory for %zu nodes", n);
    for (int j = 0; j < ny && !s; j++)
        for (int i = 0; i < nx; i++) {
            pts[2 * ((size_t)j * nx + i)] = (float)(x0 + (x1 - x0) * i / (nx - 1));
            pts[2 * ((size_t)j * nx + i) + 1] = (float)(y0 + (y1 - y0) * j / (ny - 1));
        }
    if (!s)
        s = toy_logits(m, pts, (int)n, lg, err);
    for (size_t k = 0; k < n && !s; k++)
        p1[k] = p_class1(lg[2 * k], lg[2 * k + 1]);
    knob_free(pts);
    knob_free(lg);
    return s;
}

knob_status knob_toy_width_sweep(const knob_toy_data *d, const knob_toy_config *c, const int *widths, int n_widths,
                                 int n_seeds, int n_steps, double threshold, double *final_loss, double *frac,
                                 knob_err *err)
{
    if (c->n_hidden < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "toy width sweep: the net needs a hidden layer to widen");
    for (int k = 0; k < n_widths; k++) {
        int below = 0;
        for (int r = 0; r < n_seeds; r++) {
            knob_toy_config cc = *c;
            for (int l = 0; l < cc.n_hidden; l++)
                cc.hidden[l] = widths[k];
            cc.seed = c->seed + (uint64_t)r;
            knob_toy_net *m;
            knob_status s = knob_toy_net_new(&m, &cc, err);
            double loss = NAN;
            if (!s)
                s = knob_toy_train(m, d, n_steps, NULL, err);
            if (!s)
                s = knob_toy_eval(m, d, &loss, NULL, err);
            knob_toy_net_free(m);
            if (s == KNOB_ERR_NUMERIC)
                s = KNOB_OK, loss = INFINITY;   /* a run that blew up did not reach a low loss */
            if (s)
                return knob_err_prefix(err, "toy width sweep: width %d, seed %d", widths[k], r);
            final_loss[(size_t)k * n_seeds + r] = loss;
            below += loss < threshold;
        }
        frac[k] = n_seeds ? (double)below / n_seeds : 0;
    }
    return KNOB_OK;
}

typedef struct {
    knob_toy_net *m;
    const knob_toy_data *d;
} slice_ctx;

static knob_status slice_loss(void *ctx, double *loss, knob_err *err)
{
    slice_ctx *c = ctx;
    return knob_toy_eval(c->m, c->d, loss, NULL, err);
}

knob_status knob_toy_loss_slice(knob_toy_net *m, const knob_toy_data *d, double span, int nx, int ny, uint64_t seed,
                                double *z, knob_err *err)
{
    size_t n = m->P.n_elems;
    float *d1 = knob_malloc(n * sizeof *d1), *d2 = knob_malloc(n * sizeof *d2);
    knob_status s = KNOB_OK;
    if (!d1 || !d2)
        s = knob_fail(err, KNOB_ERR_NOMEM, "toy slice: out of memory for %zu parameters", n);
    if (!s) {
        knob_rng r;
        knob_rng_seed(&r, seed);
        knob_filter_direction(&m->P, &r, d1);
        knob_filter_direction(&m->P, &r, d2);
        slice_ctx c = {m, d};
        s = knob_loss_slice(&m->P, d1, d2, span, nx, ny, slice_loss, &c, z, err);
    }
    knob_free(d1);
    knob_free(d2);
    return s;
}
