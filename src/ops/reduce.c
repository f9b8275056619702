/* reduce.c: sum and mean over one axis (or all elements), and softmax / log-softmax over the last
 * axis. A tensor reduced over `axis` is viewed as (outer, n, inner): every output element sums n
 * inputs spaced `inner` apart, in index order (same bits for any thread count). */
#include "knob_internal.h"

#include <math.h>

/* ip[0] axis (normalised; -1 for all), ip[1] keepdim, fp[0] = 1 (sum) or 1/n (mean) */

static void reduce_dims(const knob_node *y, size_t *outer, size_t *n, size_t *inner)
{
    const knob_tensor *a = &y->in[0]->t;
    int axis = y->ip[0];
    if (axis < 0) {
        *outer = 1;
        *n = a->n_elems;
        *inner = 1;
        return;
    }
    *outer = knob_shape_elems(axis, a->shape);
    *n = (size_t)a->shape[axis];
    *inner = knob_shape_elems(a->n_dims - axis - 1, a->shape + axis + 1);
}

static knob_status reduce_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *a = &y->in[0]->t;
    if (a->dtype != KNOB_F32)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: input must be float32", knob_op_name(y->op));
    if (y->ip[2]) {   /* all elements -> (1) */
        y->ip[0] = -1;
        knob_node_set_shape(y, 1, (int[]){1});
        y->fp[0] = y->op == KNOB_OP_MEAN ? 1.0f / (float)a->n_elems : 1.0f;
        return KNOB_OK;
    }
    int axis = knob_axis(y->ip[0], a->n_dims);
    if (axis < 0)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: axis %d out of range for %d dims", knob_op_name(y->op),
                         y->ip[0], a->n_dims);
    y->ip[0] = axis;
    int shape[KNOB_MAX_DIMS], n = 0;
    for (int i = 0; i < a->n_dims; i++) {
        if (i != axis)
            shape[n++] = a->shape[i];
        else if (y->ip[1])
            shape[n++] = 1;
    }
    if (n == 0)
        shape[n++] = 1;
    knob_node_set_shape(y, n, shape);
    y->fp[0] = y->op == KNOB_OP_MEAN ? 1.0f / (float)a->shape[axis] : 1.0f;
    return KNOB_OK;
}

/* sum: y[o, i] = s * sum_j x[o, j, i]  (s = 1, or 1/n for mean);  dx[o, j, i] += s dy[o, i].
 * Output element k = o * inner + i; every chunk of k's sums its own elements in j order. */
typedef struct {
    const float *X, *DY;
    float *Y, *DX;
    size_t n, inner;
    float s;
} reduce_task;

static void reduce_forward_items(void *ctx, long lo, long hi)
{
    const reduce_task *t = ctx;
    size_t n = t->n, inner = t->inner;
    for (long k = lo; k < hi; k++) {
        size_t o = (size_t)k / inner, i = (size_t)k % inner;
        const float *x = t->X + o * n * inner + i;
        double acc = 0;
        for (size_t j = 0; j < n; j++)
            acc += x[j * inner];
        t->Y[k] = (float)(acc * t->s);
    }
}

static void reduce_backward_items(void *ctx, long lo, long hi)
{
    const reduce_task *t = ctx;
    size_t n = t->n, inner = t->inner;
    for (long k = lo; k < hi; k++) {
        size_t o = (size_t)k / inner, i = (size_t)k % inner;
        float *dx = t->DX + o * n * inner + i;
        float d = t->s * t->DY[k];
        for (size_t j = 0; j < n; j++)
            dx[j * inner] += d;
    }
}

static void reduce_forward(knob_node *y)
{
    size_t outer, n, inner;
    reduce_dims(y, &outer, &n, &inner);
    reduce_task t = {.X = y->in[0]->t.data, .Y = y->t.data, .n = n, .inner = inner, .s = y->fp[0]};
    knob_par_items((long)(outer * inner), (double)n, reduce_forward_items, &t);
}

static void reduce_backward(knob_node *y)
{
    float *DX = y->in[0]->t.grad;
    if (!DX)
        return;
    size_t outer, n, inner;
    reduce_dims(y, &outer, &n, &inner);
    reduce_task t = {.DY = y->t.grad, .DX = DX, .n = n, .inner = inner, .s = y->fp[0]};
    knob_par_items((long)(outer * inner), (double)n, reduce_backward_items, &t);
}

const knob_op_def knob_op_sum = {1, reduce_shape, NULL, NULL, reduce_forward, reduce_backward};
const knob_op_def knob_op_mean = {1, reduce_shape, NULL, NULL, reduce_forward, reduce_backward};

static knob_node *reduce(knob_graph *g, knob_op op, knob_node *a, int axis, int keepdim, int all)
{
    int ip[3] = {axis, keepdim != 0, all};
    return knob_node_make(g, op, 1, &a, ip, 3, NULL, 0);
}

knob_node *knob_sum(knob_graph *g, knob_node *a, int axis, int keepdim) { return reduce(g, KNOB_OP_SUM, a, axis, keepdim, 0); }
knob_node *knob_mean(knob_graph *g, knob_node *a, int axis, int keepdim) { return reduce(g, KNOB_OP_MEAN, a, axis, keepdim, 0); }
knob_node *knob_sum_all(knob_graph *g, knob_node *a) { return reduce(g, KNOB_OP_SUM, a, 0, 0, 1); }

/* ------------------------------------------------------------------------------------------------
 * softmax and log-softmax over the last axis, rows of length n */

static knob_status softmax_shape(knob_node *y, knob_err *err)
{
    if (y->in[0]->t.dtype != KNOB_F32)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: input must be float32", knob_op_name(y->op));
    return knob_shape_same(y, y->in[0], err);
}

/* softmax: y_j = e^(x_j - m) / sum_k e^(x_k - m), m = max x (for range);
 * log-softmax: y_j = x_j - m - log sum_k e^(x_k - m)   (rows: src/kernels/nn.c) */
typedef struct {
    const knob_node *y;
    size_t n;
    int logsm;
} softmax_task;

static void softmax_forward_rows(void *ctx, long lo, long hi)
{
    const softmax_task *t = ctx;
    const float *X = t->y->in[0]->t.data;
    float *Y = t->y->t.data;
    size_t n = t->n;
    for (long r = lo; r < hi; r++) {
        if (t->logsm)
            knob_log_softmax_row(Y + (size_t)r * n, X + (size_t)r * n, n);
        else
            knob_softmax_row(Y + (size_t)r * n, X + (size_t)r * n, n, -1);
    }
}

static void softmax_forward(knob_node *y)
{
    const knob_tensor *a = &y->in[0]->t;
    size_t n = (size_t)a->shape[a->n_dims - 1];
    softmax_task t = {y, n, y->op == KNOB_OP_LOG_SOFTMAX};
    knob_par_items((long)(a->n_elems / n), 4.0 * (double)n, softmax_forward_rows, &t);
}

/* softmax: dx_j += y_j (dy_j - sum_k dy_k y_k);  log-softmax: dx_j += dy_j - e^(y_j) sum_k dy_k */
static void softmax_backward_rows(void *ctx, long lo, long hi)
{
    const softmax_task *t = ctx;
    float *DX = t->y->in[0]->t.grad;
    size_t n = t->n;
    for (long r = lo; r < hi; r++) {
        const float *yr = t->y->t.data + (size_t)r * n, *dy = t->y->t.grad + (size_t)r * n;
        if (t->logsm)
            knob_log_softmax_row_backward(DX + (size_t)r * n, yr, dy, n);
        else
            knob_softmax_row_backward(DX + (size_t)r * n, yr, dy, n);
    }
}

static void softmax_backward(knob_node *y)
{
    if (!y->in[0]->t.grad)
        return;
    size_t n = (size_t)y->t.shape[y->t.n_dims - 1];
    softmax_task t = {y, n, y->op == KNOB_OP_LOG_SOFTMAX};
    knob_par_items((long)(y->t.n_elems / n), 4.0 * (double)n, softmax_backward_rows, &t);
}

const knob_op_def knob_op_softmax = {1, softmax_shape, NULL, NULL, softmax_forward, softmax_backward};
const knob_op_def knob_op_log_softmax = {1, softmax_shape, NULL, NULL, softmax_forward, softmax_backward};

knob_node *knob_softmax(knob_graph *g, knob_node *a) { return knob_node_make(g, KNOB_OP_SOFTMAX, 1, &a, NULL, 0, NULL, 0); }
knob_node *knob_log_softmax(knob_graph *g, knob_node *a) { return knob_node_make(g, KNOB_OP_LOG_SOFTMAX, 1, &a, NULL, 0, NULL, 0); }
