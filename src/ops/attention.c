/* attention.c: the fused causal multi-head self-attention op, as in GPT-2. The input packs
 * queries, keys and values along the last axis, qkv (B, T, 3C) = [q | k | v], with NH heads of
 * size HS = C / NH; the output is (B, T, C). The loops, with the math and its derivative, are
 * src/kernels/attention.c.
 *
 * Head sizes that are multiples of 32 (GPT's) take the flash-style kernels: forward keeps each
 * query row's log-sum-exp (B, NH, T) and backward recomputes the probabilities from it. Other
 * shapes keep the post-softmax probabilities (B, NH, T, T) for backward, and the saved buffer also
 * holds one scratch row of T floats per (b, h), so backward allocates nothing. */
#include "knob_internal.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Op. ip[0] = NH. */

/* qkv (B, T, 3C) -> y (B, T, C), C % NH == 0 */
static knob_status attention_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *x = &y->in[0]->t;
    int NH = y->ip[0];
    char sx[64];
    knob_shape_str(sx, sizeof sx, x->n_dims, x->shape);
    if (x->dtype != KNOB_F32)
        return knob_fail(err, KNOB_ERR_SHAPE, "attention: qkv is int32 %s; expected float32 (B, T, 3C)", sx);
    if (x->n_dims != 3 || x->shape[2] % 3 != 0)
        return knob_fail(err, KNOB_ERR_SHAPE, "attention: qkv is %s; expected (B, T, 3C) with the last dim a multiple of 3", sx);
    int C = x->shape[2] / 3;
    if (NH < 1 || C % NH != 0)
        return knob_fail(err, KNOB_ERR_SHAPE, "attention: qkv is %s, so C = %d, which %d heads do not divide; "
                         "C must be a multiple of n_heads", sx, C, NH);
    knob_node_set_shape(y, 3, (int[]){x->shape[0], x->shape[1], C});
    return KNOB_OK;
}

/* the flash-style kernels for this shape (head sizes of 32, 64, ...), else the probabilities kept */
static int use_flash(const knob_node *y)
{
    const knob_tensor *x = &y->in[0]->t;
    return knob_attention_flash_ok(x->shape[1], x->shape[2] / 3 / y->ip[0]);
}

/* saved: flash: lse (B, NH, T); otherwise att (B, NH, T, T), then scratch (B, NH, T) for backward */
static size_t attention_saved(const knob_node *y)
{
    const knob_tensor *x = &y->in[0]->t;
    size_t B = (size_t)x->shape[0], T = (size_t)x->shape[1], NH = (size_t)y->ip[0];
    size_t bnh = knob_mul_sat(B, NH);   /* (B, NH, T, T) can pass 2^64 bytes when qkv is huge */
    if (use_flash(y))
        return knob_mul_sat(knob_mul_sat(bnh, T), sizeof(float));
    size_t n = knob_add_sat(knob_mul_sat(knob_mul_sat(bnh, T), T), knob_mul_sat(bnh, T));
    return knob_mul_sat(n, sizeof(float));
}

/* per head: y_t = sum_{t2 <= t} softmax_t2(q_t . k_t2 / sqrt(HS)) v_t2;
 * backward: dv, then through the softmax Jacobian to dq and dk (derived in the kernel file) */
static void attention_forward(knob_node *y)
{
    const knob_tensor *x = &y->in[0]->t;
    int B = x->shape[0], T = x->shape[1], C = x->shape[2] / 3, NH = y->ip[0];
    if (use_flash(y))
        knob_attention_flash_forward(y->t.data, y->saved, x->data, B, T, C, NH);
    else
        knob_attention_forward(y->t.data, y->saved, x->data, B, T, C, NH);
}

static void attention_backward(knob_node *y)
{
    const knob_tensor *x = &y->in[0]->t;
    if (!x->grad)
        return;
    int B = x->shape[0], T = x->shape[1], C = x->shape[2] / 3, NH = y->ip[0];
    if (use_flash(y)) {
        knob_attention_flash_backward(x->grad, y->t.grad, x->data, y->saved, B, T, C, NH, knob_grad_fresh(y->in[0]));
        return;
    }
    if (knob_grad_fresh(y->in[0]))   /* the loops and the products add into dqkv */
        memset(x->grad, 0, x->n_elems * sizeof(float));
    const float *att = y->saved;                                              // (B, NH, T, T)
    float *scratch = (float *)y->saved + (size_t)B * (size_t)NH * (size_t)T * (size_t)T;   // (B, NH, T)
    knob_attention_backward(x->grad, scratch, y->t.grad, x->data, att, B, T, C, NH);
}

const knob_op_def knob_op_attention = {1, attention_shape, attention_saved, NULL,
                                       attention_forward, attention_backward};

knob_node *knob_attention(knob_graph *g, knob_node *qkv, int n_heads)
{
    return knob_node_make(g, KNOB_OP_ATTENTION, 1, &qkv, &n_heads, 1, NULL, 0);
}
