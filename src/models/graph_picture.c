/* graph_picture.c: backpropagation made visible (the tour's chapter 4). A net small enough to read,
 * x (1, 2) -> x W1^T + b1 -> tanh -> h W2^T + b2 -> (out - target)^2, is built with the graph API,
 * run forward and backward once, and drawn as an SVG: one box per node with the value that flowed
 * forward and the gradient dL/d(node) that flowed back. Every parameter's gradient is checked
 * against central differences of the same graph's forward pass (knob_fd_gradient, a plain helper
 * tested on functions with known derivatives).
 *
 * Not here: the op table's own gradient checks (tests/test_gradcheck.c) and the words
 * (cli/tour_lab.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

void knob_fd_gradient(knob_fd_fn f, void *ctx, double *x, int n, double h, double *grad)
{
    for (int i = 0; i < n; i++) {
        double xi = x[i];
        x[i] = xi + h;
        double fp = f(x, ctx);
        x[i] = xi - h;
        double fm = f(x, ctx);
        x[i] = xi;
        grad[i] = (fp - fm) / (2 * h);
    }
}

enum { N_NODES = 12 };

typedef struct {
    knob_params P;
    knob_tensor *w1, *b1, *w2, *b2;
    knob_graph *g;
    knob_node *node[N_NODES];
    knob_node *loss;
} demo;

/* the loss with P's values set from x (9: W1, b1, W2, b2 in P's order) */
static double demo_loss(const double *x, void *ctx)
{
    demo *d = ctx;
    for (size_t k = 0; k < d->P.n_elems; k++)
        d->P.data[k] = (float)x[k];
    if (knob_graph_forward(d->g, NULL) != KNOB_OK)
        return NAN;
    return knob_node_data(d->loss)[0];
}

/* where each node is drawn: column, row (0 above, 1 the main line, 2 below), label, kind */
typedef struct {
    int col, row;
    const char *label;
    int kind;   /* 0 input, 1 parameter, 2 op, 3 loss */
} place;

static const place places[N_NODES] = {
    {0, 0, "x (input)", 0},         {0, 2, "W1 (2x2 knobs)", 1},  {1, 1, "matmul: x W1^T", 2},
    {1, 2, "b1 (2 knobs)", 1},      {2, 1, "add: z = .. + b1", 2}, {3, 1, "tanh: h = tanh(z)", 2},
    {3, 2, "W2 (1x2 knobs)", 1},    {4, 1, "matmul: h W2^T", 2},  {4, 2, "b2 (1 knob)", 1},
    {5, 1, "add: out = .. + b2", 2}, {5, 2, "target (input)", 0}, {6, 1, "mse: L = (out - t)^2", 3},
};

enum { BOX_W = 170, COL_W = 205, ROW_H = 120, MARGIN = 24, TOP = 70 };

static void put_values(FILE *f, double x, double y, const char *what, const float *v, const knob_tensor *t)
{
    int rows = t->n_dims == 2 ? t->shape[0] : 1, cols = (int)(t->n_elems / (size_t)rows);
    for (int r = 0; r < rows; r++) {
        char line[128];
        int at = snprintf(line, sizeof line, "%s", r == 0 ? what : "");
        while (at < 7)
            line[at++] = ' ';
        line[at] = 0;
        for (int c = 0; c < cols && at < (int)sizeof line - 12; c++)
            at += snprintf(line + at, sizeof line - (size_t)at, " %+.4f", v ? (double)v[r * cols + c] : 0.0);
        if (!v)
            snprintf(line + 7, sizeof line - 7, " (not needed)");
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" font-family=\"monospace\" xml:space=\"preserve\">%s</text>\n",
                x, y, line);
        y += 13;
    }
}

static double box_h(const knob_node *n)
{
    int rows = n->t.n_dims == 2 ? n->t.shape[0] : 1;
    return 24 + 13.0 * rows * 2 + 4;
}

static knob_status draw(const char *path, demo *d, knob_err *err)
{
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    FILE *f = a.f;
    int W = 2 * MARGIN + 6 * COL_W + BOX_W, H = TOP + 3 * ROW_H + 40;
    knob_svg_begin(f, W, H);
    knob_svg_text(f, W / 2.0, 24, "middle", 16, "The computation graph after one forward and one backward pass");
    knob_svg_text(f, W / 2.0, 44, "middle", 12,
                  "value: what flowed forward;  grad: dL/d(node), what flowed back (the chain rule, node by node)");
    fputs("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" "
          "orient=\"auto\"><path d=\"M0 0L10 5L0 10z\" fill=\"#555\"/></marker></defs>\n", f);
    double cx[N_NODES], cy[N_NODES];
    for (int k = 0; k < N_NODES; k++) {
        cx[k] = MARGIN + places[k].col * COL_W;
        cy[k] = TOP + places[k].row * ROW_H + 10;
    }
    /* edges first, under the boxes: from the right edge of an input to the left edge of its user */
    for (int k = 0; k < N_NODES; k++) {
        knob_node *y = d->node[k];
        for (int i = 0; i < y->n_in; i++) {
            int src = -1;
            for (int q = 0; q < N_NODES; q++)
                if (d->node[q] == y->in[i])
                    src = q;
            if (src < 0)
                continue;
            double x0 = cx[src] + BOX_W, y0 = cy[src] + box_h(d->node[src]) / 2;
            double x1 = cx[k], y1 = cy[k] + box_h(y) / 2;
            if (places[src].col == places[k].col) {   /* a leaf under its user: straight up */
                x0 = x1 = cx[k] + BOX_W / 2.0;
                y0 = cy[src];
                y1 = cy[k] + box_h(y);
            }
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-width=\"1.5\" "
                       "marker-end=\"url(#arrow)\"/>\n", x0, y0, x1, y1);
        }
    }
    static const char *const fill[4] = {"#eeeeee", "#fff3c4", "#dbe9f7", "#f7d4d4"};
    for (int k = 0; k < N_NODES; k++) {
        knob_node *y = d->node[k];
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" rx=\"6\" fill=\"%s\" stroke=\"#666\"/>\n",
                cx[k], cy[k], BOX_W, box_h(y), fill[places[k].kind]);
        char title[96];
        snprintf(title, sizeof title, "%s", places[k].label);
        knob_svg_text(f, cx[k] + 6, cy[k] + 15, "start", 11, title);
        int rows = y->t.n_dims == 2 ? y->t.shape[0] : 1;
        put_values(f, cx[k] + 6, cy[k] + 30, "value", y->t.data, &y->t);
        put_values(f, cx[k] + 6, cy[k] + 30 + 13.0 * rows, "grad", y->requires_grad ? y->t.grad : NULL, &y->t);
    }
    knob_svg_text(f, MARGIN, H - 14, "start", 11,
                  "grey: inputs (no gradient needed);  yellow: knobs (parameters);  blue: operations;  red: the loss");
    knob_svg_end(f);
    return knob_atomic_commit(&a, err);
}

knob_status knob_backprop_demo(const char *svg_path, uint64_t seed, knob_backprop_report *r, knob_err *err)
{
    memset(r, 0, sizeof *r);
    demo d;
    memset(&d, 0, sizeof d);
    knob_params_init(&d.P);
    knob_status s = KNOB_OK;
    d.w1 = knob_params_add(&d.P, "W1", 2, (int[]){2, 2}, err);
    d.b1 = d.w1 ? knob_params_add(&d.P, "b1", 1, (int[]){2}, err) : NULL;
    d.w2 = d.b1 ? knob_params_add(&d.P, "W2", 2, (int[]){1, 2}, err) : NULL;
    d.b2 = d.w2 ? knob_params_add(&d.P, "b2", 1, (int[]){1}, err) : NULL;
    s = d.b2 ? knob_params_alloc(&d.P, err) : (err ? err->code : KNOB_ERR_NOMEM);
    if (!s && !(d.g = knob_graph_new(err)))
        s = err ? err->code : KNOB_ERR_NOMEM;
    if (!s) {
        knob_graph *g = d.g;
        knob_node **n = d.node;
        n[0] = knob_input(g, "x", 2, (int[]){1, 2});
        n[1] = knob_param(g, d.w1);
        n[2] = knob_matmul(g, n[0], n[1], 0, 1);
        n[3] = knob_param(g, d.b1);
        n[4] = knob_add(g, n[2], n[3]);
        n[5] = knob_tanh(g, n[4]);
        n[6] = knob_param(g, d.w2);
        n[7] = knob_matmul(g, n[5], n[6], 0, 1);
        n[8] = knob_param(g, d.b2);
        n[9] = knob_add(g, n[7], n[8]);
        n[10] = knob_input(g, "target", 2, (int[]){1, 1});
        n[11] = d.loss = knob_mse(g, n[9], n[10]);
        s = knob_graph_compile(g, err);
    }
    if (!s) {
        knob_rng rng;
        knob_rng_seed(&rng, seed);
        for (size_t k = 0; k < d.P.n_elems; k++)
            d.P.data[k] = (float)(knob_rng_uniform_double(&rng) * 2 - 1);
        float *x = knob_node_data(d.node[0]);
        x[0] = 0.5f;
        x[1] = -1.0f;
        knob_node_data(d.node[10])[0] = 1.0f;
        knob_params_zero_grad(&d.P);
        s = knob_graph_forward(d.g, err);
    }
    if (!s) {
        knob_graph_backward(d.g, d.loss);
        r->loss = knob_node_data(d.loss)[0];
        r->n_nodes = N_NODES;
        if (svg_path)
            s = draw(svg_path, &d, err);
    }
    if (!s) {
        /* the check: every knob's gradient against central differences of the forward pass */
        int n = (int)d.P.n_elems;
        double xv[16], num[16], ad[16];
        for (int k = 0; k < n; k++) {
            xv[k] = d.P.data[k];
            ad[k] = d.P.grad[k];
        }
        knob_fd_gradient(demo_loss, &d, xv, n, 1e-3, num);
        for (size_t k = 0; k < d.P.n_elems; k++)
            d.P.data[k] = (float)xv[k];
        int row = 0;
        for (int t = 0; t < d.P.n; t++) {
            const knob_tensor *tt = d.P.t[t];
            int cols = tt->n_dims == 2 ? tt->shape[1] : (int)tt->n_elems;
            for (size_t e = 0; e < tt->n_elems; e++, row++) {
                knob_backprop_row *br = &r->rows[row];
                if (tt->n_dims == 2)
                    snprintf(br->name, sizeof br->name, "%.8s[%d,%d]", tt->name, (int)e / cols, (int)e % cols);
                else
                    snprintf(br->name, sizeof br->name, "%.8s[%d]", tt->name, (int)e);
                br->autodiff = ad[row];
                br->numeric = num[row];
                double diff = fabs(ad[row] - num[row]);
                r->max_abs_diff = fmax(r->max_abs_diff, diff);
                r->max_rel_diff = fmax(r->max_rel_diff, diff / fmax(1e-3, fabs(num[row])));
            }
        }
        r->n = row;
    }
    knob_graph_free(d.g);
    knob_params_free(&d.P);
    return s;
}
