/* norm.c: layer normalisation over the last axis, fused into one op with its own derived backward
 * (llm.c's layernorm_forward / layernorm_backward are the model). Forward keeps each row's mean and
 * reciprocal standard deviation in the node's saved buffer, so backward recomputes xhat instead of
 * storing it.
 *
 * The loops (threads: rows, and blocks of columns for dweight and dbias; the same bits for any thread
 * count) are src/kernels/nn.c, shared with inference.
 *
 * Not here: batch norm, RMS norm (no model needs them yet). */
#include "knob_internal.h"

#include <string.h>


static const char *dtype_name(knob_dtype t) { return t == KNOB_I32 ? "int32" : "float32"; }

/* x (..., C), weight (C), bias (C) or absent -> y (..., C) */
static knob_status layernorm_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *x = &y->in[0]->t, *w = &y->in[1]->t;
    const knob_tensor *b = y->n_in == 3 ? &y->in[2]->t : NULL;
    char sx[64], sw[64], sb[64];
    knob_shape_str(sx, sizeof sx, x->n_dims, x->shape);
    knob_shape_str(sw, sizeof sw, w->n_dims, w->shape);
    if (x->dtype != KNOB_F32 || w->dtype != KNOB_F32 || (b && b->dtype != KNOB_F32))
        return knob_fail(err, KNOB_ERR_SHAPE, "layernorm: inputs must be float32; x is %s %s, weight %s %s%s%s",
                         dtype_name(x->dtype), sx, dtype_name(w->dtype), sw, b ? ", bias " : "",
                         b ? dtype_name(b->dtype) : "");
    int C = x->shape[x->n_dims - 1];
    if (w->n_dims != 1 || w->shape[0] != C)
        return knob_fail(err, KNOB_ERR_SHAPE, "layernorm: weight is %s, x is %s; weight must be (%d), the last dim of x",
                         sw, sx, C);
    if (b && (b->n_dims != 1 || b->shape[0] != C))
        return knob_fail(err, KNOB_ERR_SHAPE, "layernorm: bias is %s, x is %s; bias must be (%d), the last dim of x",
                         knob_shape_str(sb, sizeof sb, b->n_dims, b->shape), sx, C);
    return knob_shape_same(y, y->in[0], err);
}

/* saved: per row, mean and rstd: (N, 2) floats, N = n_elems / C; then backward's scratch for the
 * weight and bias sums (knob_layernorm_scratch) */
static size_t layernorm_saved(const knob_node *y)
{
    const knob_tensor *x = &y->in[0]->t;
    int C = x->shape[x->n_dims - 1];
    size_t N = x->n_elems / (size_t)C;
    return (2 * N + knob_layernorm_scratch((long)N, C)) * sizeof(float);
}

/* layernorm, per row of C values: y_i = w_i (x_i - mean) rstd + b_i, rstd = 1 / sqrt(var + eps);
 * the loops and the derivation of backward are in src/kernels/nn.c. */
static void layernorm_forward(knob_node *y)
{
    const knob_tensor *xt = &y->in[0]->t;
    int C = xt->shape[xt->n_dims - 1];
    knob_layernorm_forward(y->t.data, y->saved, xt->data, y->in[1]->t.data, y->n_in == 3 ? y->in[2]->t.data : NULL,
                           (long)(xt->n_elems / (size_t)C), C);
}

static void layernorm_backward(knob_node *y)
{
    const knob_tensor *xt = &y->in[0]->t;
    int C = xt->shape[xt->n_dims - 1];
    /* weight and bias are parameters in every model; should one be an activation still unwritten in
     * this pass, it starts from zeros (its sums run over all rows) */
    for (int k = 1; k < y->n_in; k++)
        if (y->in[k]->t.grad && knob_grad_fresh(y->in[k]))
            memset(y->in[k]->t.grad, 0, y->in[k]->t.n_elems * sizeof(float));
    (xt->grad && knob_grad_fresh(y->in[0]) ? knob_layernorm_backward_fresh : knob_layernorm_backward)(
        xt->grad, y->in[1]->t.grad, y->n_in == 3 ? y->in[2]->t.grad : NULL, y->t.grad, xt->data, y->in[1]->t.data,
        y->saved, (float *)y->saved + 2 * (xt->n_elems / (size_t)C), (long)(xt->n_elems / (size_t)C), C);
}

/* n_in -1: two inputs (x, weight) or three (x, weight, bias) */
const knob_op_def knob_op_layernorm = {-1, layernorm_shape, layernorm_saved, NULL,
                                       layernorm_forward, layernorm_backward};

knob_node *knob_layernorm(knob_graph *g, knob_node *x, knob_node *weight, knob_node *bias)
{
    knob_node *in[3] = {x, weight, bias};
    return knob_node_make(g, KNOB_OP_LAYERNORM, bias ? 3 : 2, in, NULL, 0, NULL, 0);
}
