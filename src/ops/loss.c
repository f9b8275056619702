/* loss.c: losses that end a graph in one scalar: softmax cross-entropy (fused), mean squared error
 * and mean absolute error. Each sums in double, in index order. */
#include "knob_internal.h"

#include <math.h>

/* ------------------------------------------------------------------------------------------------
 * Cross-entropy fused with softmax.
 * logits z (N, V) (any leading dims flatten into N), targets t (N) int32.
 * loss = (1/n) sum_{i counted} -log p_i[t_i],  p_i = softmax(z_i),  n = number of counted rows
 * (rows whose target is ignore_index are skipped).
 * dz_i = dloss (p_i - onehot(t_i)) / n for counted rows, 0 for ignored rows.
 * Two paths, chosen by V:
 * - V >= CE_FUSED_MIN (language models): saved are each row's log-sum-exp (N), each row's loss (N)
 *   and n; backward recomputes p_i from z_i and the log-sum-exp (src/kernels/nn.c: one pass over
 *   the row each way, float exponentials, no (N, V) buffer: 411 MB less for GPT-2's vocabulary at
 *   B 8, T 256).
 * - smaller V (classifiers, character models): p (N, V) in the saved buffer, each row's loss (N)
 *   and n, through knob_softmax_row's double-precision sums. There the exponentials cost little
 *   next to the rest of the step, and these bits are the ones old checkpoints resume to
 *   (tests/test_checkpoint_compat.c). */

#define CE_FUSED_MIN 1024

static knob_status ce_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *z = &y->in[0]->t, *t = &y->in[1]->t;
    char sz[64], st[64];
    knob_shape_str(sz, sizeof sz, z->n_dims, z->shape);
    knob_shape_str(st, sizeof st, t->n_dims, t->shape);
    if (z->dtype != KNOB_F32 || t->dtype != KNOB_I32)
        return knob_fail(err, KNOB_ERR_SHAPE, "cross_entropy: logits must be float32 and targets int32");
    int ok = z->n_dims >= 2 && t->n_dims == z->n_dims - 1;
    for (int i = 0; ok && i < t->n_dims; i++)
        ok = t->shape[i] == z->shape[i];
    if (!ok)
        return knob_fail(err, KNOB_ERR_SHAPE, "cross_entropy: logits %s need targets of shape %s without the last dim, got %s",
                         sz, sz, st);
    knob_node_set_shape(y, 1, (int[]){1});
    return KNOB_OK;
}

static size_t ce_saved(const knob_node *y)
{
    size_t V = (size_t)y->in[0]->t.shape[y->in[0]->t.n_dims - 1], N = y->in[0]->t.n_elems / V;
    if (V >= CE_FUSED_MIN)
        return (2 * N + 1) * sizeof(float);   /* log-sum-exp (N), per-row loss (N), count */
    return (N * V + N + 1) * sizeof(float);   /* p (N, V), per-row loss (N), count */
}

static knob_status ce_check(const knob_node *y, knob_err *err)
{
    const knob_tensor *t = &y->in[1]->t;
    int V = y->in[0]->t.shape[y->in[0]->t.n_dims - 1], ignore = y->ip[0];
    const int32_t *T = (const int32_t *)(const void *)t->data;
    for (size_t i = 0; i < t->n_elems; i++)
        if ((T[i] < 0 || T[i] >= V) && T[i] != ignore)
            return knob_fail(err, KNOB_ERR_FORMAT, "cross_entropy: target %d at position %zu is out of range [0, %d)",
                             T[i], i, V);
    return KNOB_OK;
}

static void ce_forward_rows(void *ctx, long lo, long hi)
{
    const knob_node *y = ctx;
    const knob_tensor *z = &y->in[0]->t;
    const int32_t *T = (const int32_t *)(const void *)y->in[1]->t.data;
    size_t V = (size_t)z->shape[z->n_dims - 1];
    long N = (long)(z->n_elems / V);
    int ignore = y->ip[0], isa = knob_kernel_isa();
    if (V < CE_FUSED_MIN) {
        float *P = y->saved, *row_loss = P + (size_t)N * V;
        for (long i = lo; i < hi; i++)   /* p_i = softmax(z_i); the loss as below */
            row_loss[i] = (float)knob_softmax_row(P + (size_t)i * V, z->data + (size_t)i * V, V,
                                                  T[i] == ignore ? -1 : T[i]);
        return;
    }
    float *lse = y->saved, *row_loss = lse + N;
    for (long i = lo; i < hi; i++) {
        /* -log p_i[t] = lse - z_t, exact even when p_t underflows */
        const float *zi = z->data + (size_t)i * V;
        double l = knob_ce_row_lse(zi, V, isa);
        lse[i] = (float)l;
        row_loss[i] = T[i] == ignore ? 0.0f : (float)(l - (double)zi[T[i]]);
    }
}

static void ce_forward(knob_node *y)
{
    const knob_tensor *z = &y->in[0]->t;
    const int32_t *T = (const int32_t *)(const void *)y->in[1]->t.data;
    size_t V = (size_t)z->shape[z->n_dims - 1];
    long N = (long)(z->n_elems / V);
    float *row_loss = (float *)y->saved + (V >= CE_FUSED_MIN ? (size_t)N : (size_t)N * V);
    int ignore = y->ip[0];
    knob_par_items(N, 2.0 * (double)V, ce_forward_rows, y);
    double loss = 0;
    long n = 0;
    for (long i = 0; i < N; i++)
        if (T[i] != ignore) {
            loss += row_loss[i];
            n++;
        }
    row_loss[N] = (float)n;
    y->t.data[0] = n ? (float)(loss / (double)n) : 0.0f;
}

static void ce_backward_rows(void *ctx, long lo, long hi)
{
    const knob_node *y = ctx;
    float *DZ = y->in[0]->t.grad;
    const knob_tensor *z = &y->in[0]->t;
    const int32_t *T = (const int32_t *)(const void *)y->in[1]->t.data;
    size_t V = (size_t)z->shape[z->n_dims - 1];
    long N = (long)(z->n_elems / V);
    int ignore = y->ip[0], isa = knob_kernel_isa();
    if (V < CE_FUSED_MIN) {
        const float *P = y->saved;
        float s = y->t.grad[0] / P[(size_t)N * V + (size_t)N];
        for (long i = lo; i < hi; i++) {
            if (T[i] == ignore)
                continue;
            const float *pi = P + (size_t)i * V;
            float *dz = DZ + (size_t)i * V;
            for (size_t j = 0; j < V; j++)
                dz[j] += s * (pi[j] - (j == (size_t)T[i] ? 1.0f : 0.0f));
        }
        return;
    }
    const float *lse = y->saved;
    float n = lse[2 * (size_t)N];
    float s = y->t.grad[0] / n;
    for (long i = lo; i < hi; i++) {
        if (T[i] == ignore)
            continue;
        knob_ce_row_backward(DZ + (size_t)i * V, z->data + (size_t)i * V, V, lse[i], T[i], s, isa);
    }
}

static void ce_backward(knob_node *y)
{
    float *DZ = y->in[0]->t.grad;
    if (!DZ)
        return;
    const knob_tensor *z = &y->in[0]->t;
    size_t V = (size_t)z->shape[z->n_dims - 1];
    long N = (long)(z->n_elems / V);
    const float *saved = y->saved;
    if (saved[V >= CE_FUSED_MIN ? 2 * (size_t)N : (size_t)N * V + (size_t)N] == 0)
        return;
    knob_par_items(N, 2.0 * (double)V, ce_backward_rows, y);
}

const knob_op_def knob_op_cross_entropy = {2, ce_shape, ce_saved, ce_check, ce_forward, ce_backward};

knob_node *knob_cross_entropy(knob_graph *g, knob_node *logits, knob_node *targets, int ignore_index)
{
    knob_node *in[2] = {logits, targets};
    return knob_node_make(g, KNOB_OP_CROSS_ENTROPY, 2, in, &ignore_index, 1, NULL, 0);
}

/* ------------------------------------------------------------------------------------------------
 * mse: L = (1/n) sum (p - t)^2;   dp += dL 2 (p - t) / n,  dt -= the same
 * mae: L = (1/n) sum |p - t|;     dp += dL sign(p - t) / n, dt -= the same */

static knob_status regression_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *p = &y->in[0]->t, *t = &y->in[1]->t;
    int ok = p->n_dims == t->n_dims && p->dtype == KNOB_F32 && t->dtype == KNOB_F32;
    for (int i = 0; ok && i < p->n_dims; i++)
        ok = p->shape[i] == t->shape[i];
    if (!ok) {
        char sp[64], st[64];
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: prediction %s and target %s must have the same shape",
                         knob_op_name(y->op), knob_shape_str(sp, sizeof sp, p->n_dims, p->shape),
                         knob_shape_str(st, sizeof st, t->n_dims, t->shape));
    }
    knob_node_set_shape(y, 1, (int[]){1});
    return KNOB_OK;
}

static void regression_forward(knob_node *y)
{
    const float *P = y->in[0]->t.data, *T = y->in[1]->t.data;
    size_t n = y->in[0]->t.n_elems;
    double acc = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)P[i] - (double)T[i];
        acc += y->op == KNOB_OP_MSE ? d * d : fabs(d);
    }
    y->t.data[0] = (float)(acc / (double)n);
}

static void regression_backward(knob_node *y)
{
    const float *P = y->in[0]->t.data, *T = y->in[1]->t.data;
    float *DP = y->in[0]->t.grad, *DT = y->in[1]->t.grad;
    size_t n = y->in[0]->t.n_elems;
    float s = y->t.grad[0] / (float)n;
    for (size_t i = 0; i < n; i++) {
        float d = P[i] - T[i];
        float gi = y->op == KNOB_OP_MSE ? 2.0f * d * s : (d > 0 ? s : d < 0 ? -s : 0.0f);
        if (DP)
            DP[i] += gi;
        if (DT)
            DT[i] -= gi;
    }
}

const knob_op_def knob_op_mse = {2, regression_shape, NULL, NULL, regression_forward, regression_backward};
const knob_op_def knob_op_mae = {2, regression_shape, NULL, NULL, regression_forward, regression_backward};

knob_node *knob_mse(knob_graph *g, knob_node *pred, knob_node *target)
{
    knob_node *in[2] = {pred, target};
    return knob_node_make(g, KNOB_OP_MSE, 2, in, NULL, 0, NULL, 0);
}

knob_node *knob_mae(knob_graph *g, knob_node *pred, knob_node *target)
{
    knob_node *in[2] = {pred, target};
    return knob_node_make(g, KNOB_OP_MAE, 2, in, NULL, 0, NULL, 0);
}
