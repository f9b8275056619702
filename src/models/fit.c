/* fit.c: the first model, the falling ball. Measurements (generated with seeded noise, or read from
 * a CSV file) are fitted by three models, each a function with knobs trained by gradient descent
 * through the autodiff graph:
 *   line       y = w x + b                      2 knobs
 *   quadratic  y = a x^2 + b x + c              3 knobs
 *   mlp        y = W3 tanh(W2 tanh(W1 x + b1) + b2) + b3   "a model with no model"
 * Inputs and targets are standardised with the training points' mean and spread, so one learning
 * rate suits every model; learned knobs are reported back in physical units.
 *
 * Not here: printing and plotting (cli/cmd_fit.c). */
#include "knob_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

void knob_fit_config_default(knob_fit_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_floors = 20;
    c->floor_height = 3.0;
    c->noise = 0.03;
    c->holdout = 0.25;
    c->extra_floors = 10;
    c->optim = KNOB_OPTIM_ADAM;
    c->lr = 0.02f;
    c->epochs = 3000;
    c->batch = 0;
    c->loss_mae = 0;
    c->hidden = 16;
    c->seed = 42;
}

double knob_fit_truth(const knob_fit_data *d, double x) { return sqrt(2.0 * x * d->floor_height / d->g); }

void knob_fit_data_free(knob_fit_data *d)
{
    if (!d)
        return;
    knob_free(d->x);
    knob_free(d->y);
    knob_free(d->split);
    memset(d, 0, sizeof *d);
}

static knob_status data_alloc(knob_fit_data *d, int n, knob_err *err)
{
    memset(d, 0, sizeof *d);
    d->x = knob_calloc((size_t)n, sizeof *d->x);
    d->y = knob_calloc((size_t)n, sizeof *d->y);
    d->split = knob_calloc((size_t)n, sizeof *d->split);
    d->n = n;
    if (!d->x || !d->y || !d->split) {
        knob_fit_data_free(d);
        return knob_fail(err, KNOB_ERR_NOMEM, "fit: out of memory for %d points", n);
    }
    return KNOB_OK;
}

/* Marks round(holdout * n) of the candidate points (idx, n of them) held out, at random. */
static knob_status hold_out(knob_fit_data *d, int *idx, int n, double holdout, knob_rng *r, knob_err *err)
{
    int n_held = (int)floor(holdout * n + 0.5);
    if (n - n_held < 3)
        return knob_fail(err, KNOB_ERR_USAGE, "fit: %d points with %d held out leaves %d to train on; need at least 3",
                         n, n_held, n - n_held);
    knob_rng_shuffle(r, idx, (size_t)n);
    for (int i = 0; i < n_held; i++)
        d->split[idx[i]] = KNOB_FIT_HELDOUT;
    return KNOB_OK;
}

knob_status knob_fit_generate(knob_fit_data *d, const knob_fit_config *c, knob_err *err)
{
    if (c->n_floors < 3)
        return knob_fail(err, KNOB_ERR_USAGE, "fit: %d floors; need at least 3", c->n_floors);
    int n = c->n_floors + c->extra_floors;
    knob_status s = data_alloc(d, n, err);
    if (s)
        return s;
    d->has_truth = 1;
    d->floor_height = c->floor_height;
    d->g = 9.81;
    d->xname = "floor";
    d->yname = "fall time (s)";
    knob_rng r;
    knob_rng_seed(&r, c->seed);
    for (int i = 0; i < n; i++) {
        d->x[i] = i + 1;
        double t = knob_fit_truth(d, d->x[i]);
        /* measured floors carry stopwatch noise; the floors above are the truth to extrapolate to */
        d->y[i] = i < c->n_floors ? t + c->noise * knob_rng_normal(&r) : t;
        d->split[i] = i < c->n_floors ? KNOB_FIT_TRAIN : KNOB_FIT_EXTRA;
    }
    int *idx = knob_malloc((size_t)c->n_floors * sizeof *idx);
    if (!idx) {
        knob_fit_data_free(d);
        return knob_fail(err, KNOB_ERR_NOMEM, "fit: out of memory");
    }
    for (int i = 0; i < c->n_floors; i++)
        idx[i] = i;
    s = hold_out(d, idx, c->n_floors, c->holdout, &r, err);
    knob_free(idx);
    if (s)
        knob_fit_data_free(d);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * CSV: "x,y" per line; blank lines and '#' comments skipped; a first line that is not numeric is a
 * header. */

static int parse_double(const char *s, const char *end, double *out)
{
    char buf[64];
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    size_t n = (size_t)(end - s);
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *stop;
    errno = 0;
    *out = strtod(buf, &stop);
    return *stop == 0 && errno == 0 && isfinite(*out);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

knob_status knob_fit_read_csv(knob_fit_data *d, const char *path, const knob_fit_config *c, knob_err *err)
{
    unsigned char *buf;
    size_t len;
    memset(d, 0, sizeof *d);
    knob_status s = knob_read_file(path, &buf, &len, err);
    if (s)
        return s;
    size_t lines = 1;   /* an upper bound on the points; counted in size_t, an int could wrap */
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    if (lines > INT_MAX) {
        knob_free(buf);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: %zu lines; at most %d supported", path, lines, INT_MAX);
    }
    s = data_alloc(d, (int)lines, err);
    if (s) {
        knob_free(buf);
        return s;
    }
    d->n = 0;
    d->xname = "x";
    d->yname = "y";
    char *p = (char *)buf, *end = p + len;
    int header_seen = 0;
    for (int line = 1; p < end; line++) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        char *q = p;
        while (q < eol && isspace((unsigned char)*q))
            q++;
        if (q < eol && *q != '#') {
            char *comma = memchr(q, ',', (size_t)(eol - q));
            double x, y;
            if (memchr(q, 0, (size_t)(eol - q)))
                s = knob_fail(err, KNOB_ERR_FORMAT, "%s:%d: NUL byte; not a text file", path, line);
            else if (!comma || memchr(comma + 1, ',', (size_t)(eol - comma - 1)) || !parse_double(q, comma, &x) ||
                     !parse_double(comma + 1, eol, &y)) {
                double first;
                if (d->n == 0 && !header_seen && comma && !parse_double(q, comma, &first)) {
                    header_seen = 1;   /* a header line: "x,y" or "floor,seconds" */
                    goto next;
                }
                int shown = (int)KNOB_MIN(eol - q, 40);
                s = knob_fail(err, KNOB_ERR_FORMAT, "%s:%d: expected two finite numbers 'x,y', got '%.*s'", path, line,
                              shown, q);
            }
            if (s)
                break;
            d->x[d->n] = x;
            d->y[d->n] = y;
            d->n++;
        }
    next:
        p = eol + 1;
    }
    knob_free(buf);
    if (!s && d->n < 5)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: %d data points; need at least 5", path, d->n);
    if (s) {
        knob_fit_data_free(d);
        return s;
    }
    /* the top 20% of x values are the extrapolation set; the rest is split train / held-out */
    double *sorted = knob_malloc((size_t)d->n * sizeof *sorted);
    int *idx = knob_malloc((size_t)d->n * sizeof *idx);
    if (!sorted || !idx) {
        knob_free(sorted);
        knob_free(idx);
        knob_fit_data_free(d);
        return knob_fail(err, KNOB_ERR_NOMEM, "fit: out of memory");
    }
    memcpy(sorted, d->x, (size_t)d->n * sizeof *sorted);
    qsort(sorted, (size_t)d->n, sizeof *sorted, cmp_double);
    int n_extra = KNOB_MAX(1, d->n / 5);
    double cut = sorted[d->n - n_extra];
    int n_rest = 0;
    for (int i = 0; i < d->n; i++) {
        d->split[i] = d->x[i] >= cut && cut > sorted[0] ? KNOB_FIT_EXTRA : KNOB_FIT_TRAIN;
        if (d->split[i] == KNOB_FIT_TRAIN)
            idx[n_rest++] = i;
    }
    knob_rng r;
    knob_rng_seed(&r, c->seed);
    s = hold_out(d, idx, n_rest, c->holdout, &r, err);
    knob_free(sorted);
    knob_free(idx);
    if (s) {
        knob_err_prefix(err, "%s", path);
        knob_fit_data_free(d);
    }
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Models */

static const char *const model_names[KNOB_FIT_N_MODELS] = {"line", "quadratic", "mlp"};

static knob_status declare_params(knob_fit_result *r, const knob_fit_config *c, knob_err *err)
{
    knob_params *P = &r->P;
    int H = c->hidden;
    int ok = 1;
    switch (r->kind) {
    case KNOB_FIT_LINE:
        ok = knob_params_add(P, "w", 1, (int[]){1}, err) && knob_params_add(P, "b", 1, (int[]){1}, err);
        break;
    case KNOB_FIT_QUADRATIC:
        ok = knob_params_add(P, "a", 1, (int[]){1}, err) && knob_params_add(P, "b", 1, (int[]){1}, err) &&
             knob_params_add(P, "c", 1, (int[]){1}, err);
        break;
    default:
        ok = knob_params_add(P, "W1", 2, (int[]){H, 1}, err) && knob_params_add(P, "b1", 1, (int[]){H}, err) &&
             knob_params_add(P, "W2", 2, (int[]){H, H}, err) && knob_params_add(P, "b2", 1, (int[]){H}, err) &&
             knob_params_add(P, "W3", 2, (int[]){1, H}, err) && knob_params_add(P, "b3", 1, (int[]){1}, err);
    }
    if (!ok)
        return err ? err->code : KNOB_ERR_NOMEM;
    return knob_params_alloc(P, err);
}

/* The model's graph for `rows` points: u (rows, 1) standardised x -> pred (rows, 1). */
static knob_node *model_graph(knob_graph *g, knob_fit_result *r, knob_node *u)
{
    knob_params *P = &r->P;
#define PARAM(name) knob_param(g, knob_params_find(P, name))
    switch (r->kind) {
    case KNOB_FIT_LINE:   /* w u + b */
        return knob_add(g, knob_mul(g, u, PARAM("w")), PARAM("b"));
    case KNOB_FIT_QUADRATIC:   /* a u^2 + b u + c */
        return knob_add(g, knob_add(g, knob_mul(g, knob_mul(g, u, u), PARAM("a")), knob_mul(g, u, PARAM("b"))), PARAM("c"));
    default: {
        knob_node *h = knob_tanh(g, knob_add(g, knob_matmul(g, u, PARAM("W1"), 0, 1), PARAM("b1")));
        h = knob_tanh(g, knob_add(g, knob_matmul(g, h, PARAM("W2"), 0, 1), PARAM("b2")));
        return knob_add(g, knob_matmul(g, h, PARAM("W3"), 0, 1), PARAM("b3"));
    }
    }
#undef PARAM
}

typedef struct {
    knob_graph *g;
    knob_node *u, *v, *loss;
    int rows;
} train_graph;

static knob_status train_graph_build(train_graph *t, knob_fit_result *r, const knob_fit_config *c, int rows, knob_err *err)
{
    t->rows = rows;
    t->g = knob_graph_new(err);
    if (!t->g)
        return KNOB_ERR_NOMEM;
    t->u = knob_input(t->g, "u", 2, (int[]){rows, 1});
    t->v = knob_input(t->g, "v", 2, (int[]){rows, 1});
    knob_node *pred = model_graph(t->g, r, t->u);
    t->loss = c->loss_mae ? knob_mae(t->g, pred, t->v) : knob_mse(t->g, pred, t->v);
    return knob_graph_compile(t->g, err);
}

void knob_fit_result_free(knob_fit_result *r)
{
    if (!r)
        return;
    knob_params_free(&r->P);
    knob_free(r->loss_curve);
    memset(r, 0, sizeof *r);
}

knob_status knob_fit_predict(const knob_fit_result *r, const double *x, double *y, int n, knob_err *err)
{
    if (n <= 0)
        return KNOB_OK;
    knob_fit_result *rw = (knob_fit_result *)r;   /* the graph reads r's params; nothing is written */
    knob_graph *g = knob_graph_new(err);
    if (!g)
        return KNOB_ERR_NOMEM;
    knob_node *u = knob_input(g, "u", 2, (int[]){n, 1});
    knob_node *pred = model_graph(g, rw, u);
    knob_status s = knob_graph_compile(g, err);
    if (!s) {
        for (int i = 0; i < n; i++)
            knob_node_data(u)[i] = (float)((x[i] - r->xm) / r->xs);
        s = knob_graph_forward(g, err);
        for (int i = 0; !s && i < n; i++)
            y[i] = r->ym + r->ys * (double)knob_node_data(pred)[i];
    }
    knob_graph_free(g);
    return s;
}

/* Knobs in physical units from the standardised ones: with u = (x - xm)/xs and y = ym + ys v,
 *   line       v = w u + b           -> y = (ys w / xs) x + (ym + ys (b - w xm / xs))
 *   quadratic  v = a u^2 + b u + c   -> y = A x^2 + B x + C with
 *              A = ys a / xs^2,  B = ys (b / xs - 2 a xm / xs^2),  C = ym + ys (a xm^2 / xs^2 - b xm / xs + c) */
static void physical_knobs(knob_fit_result *r)
{
    double xm = r->xm, xs = r->xs, ym = r->ym, ys = r->ys;
    if (r->kind == KNOB_FIT_LINE) {
        double w = knob_params_find(&r->P, "w")->data[0], b = knob_params_find(&r->P, "b")->data[0];
        r->n_knobs = 2;
        r->knob_names[0] = "slope";
        r->knob_names[1] = "intercept";
        r->knobs[0] = ys * w / xs;
        r->knobs[1] = ym + ys * (b - w * xm / xs);
    } else if (r->kind == KNOB_FIT_QUADRATIC) {
        double a = knob_params_find(&r->P, "a")->data[0], b = knob_params_find(&r->P, "b")->data[0],
               c = knob_params_find(&r->P, "c")->data[0];
        r->n_knobs = 3;
        r->knob_names[0] = "a";
        r->knob_names[1] = "b";
        r->knob_names[2] = "c";
        r->knobs[0] = ys * a / (xs * xs);
        r->knobs[1] = ys * (b / xs - 2 * a * xm / (xs * xs));
        r->knobs[2] = ym + ys * (a * xm * xm / (xs * xs) - b * xm / xs + c);
    } else {
        r->n_knobs = (int)r->P.n_elems;
    }
}

/* Root mean squared and mean absolute error, physical units, over one split; NaN if it is empty. */
static knob_status split_errors(const knob_fit_result *r, const knob_fit_data *d, int split, double *rmse,
                                double *mae, knob_err *err)
{
    double *x = knob_malloc((size_t)d->n * sizeof *x), *y = knob_malloc((size_t)d->n * sizeof *y);
    int n = 0;
    knob_status s = KNOB_OK;
    if (!x || !y)
        s = knob_fail(err, KNOB_ERR_NOMEM, "fit: out of memory");
    for (int i = 0; !s && i < d->n; i++)
        if (d->split[i] == split)
            x[n++] = d->x[i];
    if (!s)
        s = knob_fit_predict(r, x, y, n, err);
    double sq = 0, ab = 0;
    for (int i = 0, k = 0; !s && i < d->n; i++)
        if (d->split[i] == split) {
            double e = y[k++] - d->y[i];
            sq += e * e;
            ab += fabs(e);
        }
    *rmse = n ? sqrt(sq / n) : NAN;
    if (mae)
        *mae = n ? ab / n : NAN;
    knob_free(x);
    knob_free(y);
    return s;
}

static void normalise(knob_fit_result *r, const knob_fit_data *d)
{
    double sx = 0, sy = 0, sxx = 0, syy = 0;
    int n = 0;
    for (int i = 0; i < d->n; i++)
        if (d->split[i] == KNOB_FIT_TRAIN) {
            sx += d->x[i];
            sy += d->y[i];
            n++;
        }
    r->xm = sx / n;
    r->ym = sy / n;
    for (int i = 0; i < d->n; i++)
        if (d->split[i] == KNOB_FIT_TRAIN) {
            sxx += (d->x[i] - r->xm) * (d->x[i] - r->xm);
            syy += (d->y[i] - r->ym) * (d->y[i] - r->ym);
        }
    r->xs = sxx > 0 ? sqrt(sxx / n) : 1;
    r->ys = syy > 0 ? sqrt(syy / n) : 1;
}

/* one batch of standardised points, order[start .. start + rows) */
typedef struct {
    const knob_fit_result *r;
    const knob_fit_data *d;
    const int *order;
    train_graph *t;
    int start;
} fit_fill;

static knob_status fit_fill_batch(void *ctx, int micro, int *rows, knob_err *err)
{
    fit_fill *f = ctx;
    const knob_fit_result *r = f->r;
    for (int i = 0; i < f->t->rows; i++) {
        int j = f->order[f->start + i];
        knob_node_data(f->t->u)[i] = (float)((f->d->x[j] - r->xm) / r->xs);
        knob_node_data(f->t->v)[i] = (float)((f->d->y[j] - r->ym) / r->ys);
    }
    *rows = f->t->rows;
    (void)micro;
    (void)err;
    return KNOB_OK;
}

knob_status knob_fit_train(knob_fit_result *r, knob_fit_kind kind, const knob_fit_data *d, const knob_fit_config *c,
                           knob_fit_progress progress, void *ctx, knob_err *err)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->name = model_names[kind];
    r->epochs = c->epochs;
    knob_params_init(&r->P);
    int n_train = 0;
    for (int i = 0; i < d->n; i++)
        n_train += d->split[i] == KNOB_FIT_TRAIN;
    if (n_train < 3)
        return knob_fail(err, KNOB_ERR_USAGE, "fit: %d training points; need at least 3", n_train);
    if (c->epochs < 1 || c->hidden < 1 || c->batch < 0)
        return knob_fail(err, KNOB_ERR_USAGE, "fit: epochs and hidden must be positive, batch not negative");
    normalise(r, d);

    int B = c->batch > 0 && c->batch < n_train ? c->batch : n_train, rem = n_train % B;
    train_graph full = {0}, tail = {0};
    int *order = knob_malloc((size_t)n_train * sizeof *order);
    r->loss_curve = knob_calloc((size_t)c->epochs, sizeof *r->loss_curve);
    knob_optim opt = {0};
    knob_status s = KNOB_OK;
    if (!order || !r->loss_curve)
        s = knob_fail(err, KNOB_ERR_NOMEM, "fit: out of memory");
    if (!s)
        s = declare_params(r, c, err);
    if (!s && kind == KNOB_FIT_MLP) {
        knob_rng init;
        knob_rng_seed(&init, c->seed ^ 0x6d6c70ULL);
        knob_init_xavier(knob_params_find(&r->P, "W1"), &init);
        knob_init_xavier(knob_params_find(&r->P, "W2"), &init);
        knob_init_xavier(knob_params_find(&r->P, "W3"), &init);
    }
    /* one graph for full batches and, when the last batch is short, one for it: shapes are static */
    if (!s)
        s = train_graph_build(&full, r, c, B, err);
    if (!s && rem)
        s = train_graph_build(&tail, r, c, rem, err);
    if (!s)
        s = knob_optim_init(&opt, &r->P, &(knob_optim_config){.kind = c->optim, .momentum = 0.9f, .beta1 = 0.9f,
                                                              .beta2 = 0.999f, .eps = 1e-8f}, err);
    if (s)
        goto done;
    for (int i = 0, k = 0; i < d->n; i++)
        if (d->split[i] == KNOB_FIT_TRAIN)
            order[k++] = i;

    knob_rng data_rng;
    knob_rng_seed(&data_rng, c->seed ^ 0x64617461ULL);
    int n_batches = (n_train + B - 1) / B;
    knob_schedule sched = {.kind = KNOB_SCHED_COSINE, .lr = c->lr, .lr_min = 0, .total_steps = (long)c->epochs * n_batches};
    fit_fill fill = {r, d, order, &full, 0};
    knob_step stp = {.P = &r->P, .opt = &opt, .accum = 1, .fill = fit_fill_batch, .ctx = &fill,
                     .last_finite = NAN, .last_finite_step = -1};
    long step = 0;
    for (int epoch = 0; epoch < c->epochs; epoch++) {
        if (B < n_train)
            knob_rng_shuffle(&data_rng, order, (size_t)n_train);
        double epoch_loss = 0;
        for (int start = 0; start < n_train; start += B) {
            train_graph *t = n_train - start >= B ? &full : &tail;
            knob_step_result res;
            fill.t = t;
            fill.start = start;
            stp.g = t->g;
            stp.loss = t->loss;
            if ((s = knob_step_run(&stp, step + 1, knob_schedule_lr(&sched, step), &res, err)) != KNOB_OK) {
                knob_err_prefix(err, "fit %s: epoch %d", r->name, epoch + 1);
                goto done;
            }
            step++;
            epoch_loss += res.loss * t->rows;
        }
        r->loss_curve[epoch] = epoch_loss / n_train;
        if (progress) {
            physical_knobs(r);
            progress(r, epoch + 1, r->loss_curve[epoch], ctx);
        }
    }
    physical_knobs(r);
    /* final training loss in physical units, in the loss the model was trained with */
    double rmse, mae;
    if ((s = split_errors(r, d, KNOB_FIT_TRAIN, &rmse, &mae, err)) != KNOB_OK)
        goto done;
    r->train_loss = c->loss_mae ? mae : rmse * rmse;
    if ((s = split_errors(r, d, KNOB_FIT_HELDOUT, &r->heldout_rmse, NULL, err)) != KNOB_OK)
        goto done;
    s = split_errors(r, d, KNOB_FIT_EXTRA, &r->extra_rmse, NULL, err);
done:
    knob_optim_free(&opt);
    knob_graph_free(full.g);
    knob_graph_free(tail.g);
    knob_free(order);
    if (s) {
        knob_params_free(&r->P);
        knob_free(r->loss_curve);
        r->loss_curve = NULL;
    }
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * The models' file: fit.safetensors holds the three models' parameters as "<model>.<name>" and
 * metadata format "knob-fit", config (the run's settings, JSON) and per model "<model>.state"
 * (JSON: the standardisation x_mean, x_std, y_mean, y_std, epochs and the training loss). It is a
 * file of fitted models, not a resumable checkpoint: no optimizer state, no RNG. */

knob_status knob_fit_save(const char *path, const knob_fit_config *c, const knob_fit_result *res, knob_err *err)
{
    knob_tensor copies[32];
    const knob_tensor *list[32];
    int n = 0;
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
        for (int i = 0; i < res[m].P.n && n < 32; i++, n++) {
            copies[n] = *res[m].P.t[i];
            snprintf(copies[n].name, sizeof copies[n].name, "%.16s.%.100s", res[m].name, res[m].P.t[i]->name);
            list[n] = &copies[n];
        }
    char norm[KNOB_FIT_N_MODELS][256], config[400];
    knob_kv meta[2 + KNOB_FIT_N_MODELS];
    meta[0] = (knob_kv){"format", "knob-fit"};
    snprintf(config, sizeof config,
             "{\"optim\":\"%s\",\"lr\":%g,\"epochs\":%d,\"batch\":%d,\"loss\":\"%s\",\"hidden\":%d,\"seed\":%llu}",
             knob_optim_name(c->optim), (double)c->lr, c->epochs, c->batch, c->loss_mae ? "mae" : "mse", c->hidden,
             (unsigned long long)c->seed);
    meta[1] = (knob_kv){"config", config};
    static const char *keys[KNOB_FIT_N_MODELS] = {"line.state", "quadratic.state", "mlp.state"};
    for (int m = 0; m < KNOB_FIT_N_MODELS; m++) {
        snprintf(norm[m], sizeof norm[m],
                 "{\"x_mean\":%.17g,\"x_std\":%.17g,\"y_mean\":%.17g,\"y_std\":%.17g,\"epochs\":%d,\"train_loss\":%.9g}",
                 res[m].xm, res[m].xs, res[m].ym, res[m].ys, res[m].epochs, res[m].train_loss);
        meta[2 + m] = (knob_kv){(char *)keys[m], norm[m]};
    }
    return knob_st_save(path, list, n, meta, 2 + KNOB_FIT_N_MODELS, err);
}

static knob_status load_one(knob_fit_result *r, const knob_st *st, const knob_fit_config *c, knob_err *err)
{
    char key[32];
    snprintf(key, sizeof key, "%s.state", r->name);
    const char *text = knob_st_meta(st, key);
    if (!text)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata '%s' missing", st->path, key);
    knob_json *j = NULL;
    knob_status s = knob_json_parse_str(&j, text, key, err);
    if (!s && !(s = knob_json_get_double(j, "x_mean", 1, &r->xm, key, err)) &&
        !(s = knob_json_get_double(j, "x_std", 1, &r->xs, key, err)) &&
        !(s = knob_json_get_double(j, "y_mean", 1, &r->ym, key, err)) &&
        !(s = knob_json_get_double(j, "y_std", 1, &r->ys, key, err)) &&
        !(s = knob_json_get_int(j, "epochs", 1, 100000000, 1, &r->epochs, key, err)))
        s = knob_json_get_double(j, "train_loss", 0, &r->train_loss, key, err);
    knob_json_free(j);
    if (s)
        return knob_err_prefix(err, "%s", st->path);
    if (!(r->xs > 0) || !(r->ys > 0))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: %s: x_std and y_std must be positive", st->path, key);
    if ((s = declare_params(r, c, err)) != KNOB_OK)
        return s;
    for (int i = 0; i < r->P.n; i++) {
        knob_tensor *t = r->P.t[i];
        char name[KNOB_NAME_MAX + 24];
        snprintf(name, sizeof name, "%s.%s", r->name, t->name);
        const knob_st_entry *e = knob_st_find(st, name);
        size_t n = 1;
        for (int d = 0; e && d < e->n_dims; d++)
            n *= (size_t)e->shape[d];
        if (!e)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%s' missing", st->path, name);
        if (n != t->n_elems)
            return knob_fail(err, KNOB_ERR_SHAPE, "%s: '%s' has %zu values, the model %zu", st->path, name, n, t->n_elems);
        if ((s = knob_st_read_f32(st, e, t->data, t->n_elems, err)) != KNOB_OK)
            return s;
    }
    physical_knobs(r);
    return KNOB_OK;
}

knob_status knob_fit_load(knob_fit_result *res, const char *path, knob_err *err)
{
    memset(res, 0, KNOB_FIT_N_MODELS * sizeof *res);
    knob_st st;
    knob_status s = knob_st_open(&st, path, err);
    if (s)
        return s;
    const char *fmt = knob_st_meta(&st, "format"), *cfg = knob_st_meta(&st, "config");
    knob_fit_config c;
    knob_fit_config_default(&c);
    knob_json *j = NULL;
    if (!fmt || strcmp(fmt, "knob-fit") != 0)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: not a knob fit file (format '%.64s')", path, fmt ? fmt : "");
    else if (!cfg)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata 'config' missing", path);
    else if ((s = knob_json_parse_str(&j, cfg, "config", err)) ||
             (s = knob_json_get_int(j, "hidden", 1, 1 << 20, 1, &c.hidden, "config", err)))
        knob_err_prefix(err, "%s", path);
    knob_json_free(j);
    for (int m = 0; !s && m < KNOB_FIT_N_MODELS; m++) {
        res[m].kind = (knob_fit_kind)m;
        res[m].name = model_names[m];
        knob_params_init(&res[m].P);
        s = load_one(&res[m], &st, &c, err);
    }
    knob_st_close(&st);
    if (s)
        for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
            knob_fit_result_free(&res[m]);
    return s;
}
