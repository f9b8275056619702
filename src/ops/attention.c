/* attention.c: fused causal multi-head self-attention, as in GPT-2 (llm.c's attention_forward and
 * attention_backward are the model). The input packs queries, keys and values along the last axis,
 * qkv (B, T, 3C) = [q | k | v], with NH heads of size HS = C / NH; the output is (B, T, C).
 *
 * Forward keeps the post-softmax probabilities (B, NH, T, T) for backward; the saved buffer also
 * holds one scratch row of T floats per (b, h), so backward allocates nothing.
 *
 * Threads: both passes split the (b, h) pairs over threads. Everything a pair reads and writes in
 * dqkv is that head's slice of its own batch row, so each gradient element is written by exactly one
 * thread, in a fixed order (t, then t2): the same bits for any thread count.
 *
 * The loops over the HS elements of a head carry "omp simd", so they vectorize (the compiler
 * cannot otherwise see that out, dqkv and qkv do not overlap): ~2x forward, ~2.5x backward on
 * GPT-sized heads (HS 32). The dot products then add in vector-lane order rather than 0..HS-1;
 * that order is fixed when the file is compiled, so results still repeat bit for bit.
 *
 * The two kernels below are pure loops over pointers and sizes, with no graph in sight, so they can
 * move to src/kernels/ (and later CUDA) unchanged once knob_internal.h declares them.
 *
 * Not here: a key/value cache for sampling (src/models/), flash-style tiling, dropout on att. */
#include "knob_internal.h"

#include <math.h>

/* The "omp simd" loops here are requests to vectorize; clang warns (an error under WERROR) where
 * it cannot comply, as under the sanitizers or -Os, and such a loop then simply runs scalar. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* ------------------------------------------------------------------------------------------------
 * Kernels */

/* Per batch b, head h, query position t (q_t, k_t2, v_t2 are that head's HS-slices of qkv):
 *   pre[t2] = q_t . k_t2 / sqrt(HS)                      for t2 <= t (causal)
 *   att[t2] = exp(pre[t2] - max) / sum_{t3<=t} exp(pre[t3] - max),  att[t2] = 0 for t2 > t
 *   out_t   = sum_{t2<=t} att[t2] v_t2
 * The max is subtracted for range only; it cancels in the ratio. */
static void attention_forward_kernel(float *out,         // (B, T, C)
                                     float *att,         // (B, NH, T, T)
                                     const float *qkv,   // (B, T, 3C)
                                     int B, int T, int C, int NH)
{
    int HS = C / NH;
    size_t C3 = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *qkv_b = qkv + (size_t)b * (size_t)T * C3 + (size_t)h * (size_t)HS;   // (T, 3C), at head h
            float *att_bh = att + ((size_t)b * (size_t)NH + (size_t)h) * (size_t)T * (size_t)T;   // (T, T)
            for (int t = 0; t < T; t++) {
                const float *q = qkv_b + (size_t)t * C3;                 // (HS)
                float *a = att_bh + (size_t)t * (size_t)T;               // (T)
                float maxv = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv_b + (size_t)t2 * C3 + (size_t)C;   // (HS)
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int i = 0; i < HS; i++)
                        dot += q[i] * k[i];
                    a[t2] = dot * scale;
                    maxv = fmaxf(maxv, a[t2]);
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = expf(a[t2] - maxv);
                    sum += a[t2];
                }
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++)
                    a[t2] *= inv;
                for (int t2 = t + 1; t2 < T; t2++)
                    a[t2] = 0.0f;
                float *o = out + ((size_t)b * (size_t)T + (size_t)t) * (size_t)C + (size_t)h * (size_t)HS;   // (HS)
                for (int i = 0; i < HS; i++)
                    o[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv_b + (size_t)t2 * C3 + 2 * (size_t)C;   // (HS)
#pragma omp simd
                    for (int i = 0; i < HS; i++)
                        o[i] += a[t2] * v[i];
                }
            }
        }
    }
}

/* Backward, per (b, h, t), given dout_t (the HS-slice of dout), reversing the forward steps:
 *   out_t = sum_t2 att[t2] v_t2:
 *       datt[t2]  = dout_t . v_t2
 *       dv_t2    += att[t2] dout_t
 *   softmax (d att[t2] / d pre[t3] = att[t2] (delta(t2, t3) - att[t3])):
 *       dpre[t3]  = sum_t2 datt[t2] att[t2] (delta(t2, t3) - att[t3])
 *                 = att[t3] (datt[t3] - sum_t2 att[t2] datt[t2])
 *     (llm.c loops over (t2, t3) in O(T^2) per row; the closed form above is O(T) and the same sum.)
 *   pre[t2] = scale q_t . k_t2:
 *       dq_t     += scale sum_t2 dpre[t2] k_t2
 *       dk_t2    += scale dpre[t2] q_t
 * Only t2 <= t take part: masked positions have att = 0 and pass no gradient.
 * scratch (B, NH, T) holds datt, then dpre, for one row at a time. */
static void attention_backward_kernel(float *dqkv,          // (B, T, 3C), accumulated
                                      float *scratch,       // (B, NH, T)
                                      const float *dout,    // (B, T, C)
                                      const float *qkv,     // (B, T, 3C)
                                      const float *att,     // (B, NH, T, T)
                                      int B, int T, int C, int NH)
{
    int HS = C / NH;
    size_t C3 = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            size_t bh = (size_t)b * (size_t)NH + (size_t)h;
            size_t off = (size_t)b * (size_t)T * C3 + (size_t)h * (size_t)HS;
            const float *qkv_b = qkv + off;                       // (T, 3C), at head h
            float *dqkv_b = dqkv + off;                           // (T, 3C), at head h
            const float *att_bh = att + bh * (size_t)T * (size_t)T;   // (T, T)
            float *d = scratch + bh * (size_t)T;                  // (T): datt, then dpre
            for (int t = 0; t < T; t++) {
                const float *a = att_bh + (size_t)t * (size_t)T;                                           // (T)
                const float *dout_t = dout + ((size_t)b * (size_t)T + (size_t)t) * (size_t)C + (size_t)h * (size_t)HS;   // (HS)
                const float *q = qkv_b + (size_t)t * C3;          // (HS)
                float *dq = dqkv_b + (size_t)t * C3;              // (HS)
                /* through out_t = sum att v */
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv_b + (size_t)t2 * C3 + 2 * (size_t)C;   // (HS)
                    float *dv = dqkv_b + (size_t)t2 * C3 + 2 * (size_t)C;       // (HS)
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int i = 0; i < HS; i++) {
                        s += dout_t[i] * v[i];
                        dv[i] += a[t2] * dout_t[i];
                    }
                    d[t2] = s;
                }
                /* through the softmax */
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++)
                    dot += a[t2] * d[t2];
                for (int t2 = 0; t2 <= t; t2++)
                    d[t2] = a[t2] * (d[t2] - dot) * scale;   /* dpre, with the 1/sqrt(HS) folded in */
                /* through pre = scale q . k */
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv_b + (size_t)t2 * C3 + (size_t)C;   // (HS)
                    float *dk = dqkv_b + (size_t)t2 * C3 + (size_t)C;       // (HS)
#pragma omp simd
                    for (int i = 0; i < HS; i++) {
                        dq[i] += d[t2] * k[i];
                        dk[i] += d[t2] * q[i];
                    }
                }
            }
        }
    }
}

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

/* saved: att (B, NH, T, T), then scratch (B, NH, T) for backward */
static size_t attention_saved(const knob_node *y)
{
    const knob_tensor *x = &y->in[0]->t;
    size_t B = (size_t)x->shape[0], T = (size_t)x->shape[1], NH = (size_t)y->ip[0];
    return (B * NH * T * T + B * NH * T) * sizeof(float);
}

static void attention_forward(knob_node *y)
{
    const knob_tensor *x = &y->in[0]->t;
    int B = x->shape[0], T = x->shape[1], C = x->shape[2] / 3, NH = y->ip[0];
    attention_forward_kernel(y->t.data, y->saved, x->data, B, T, C, NH);
}

static void attention_backward(knob_node *y)
{
    const knob_tensor *x = &y->in[0]->t;
    if (!x->grad)
        return;
    int B = x->shape[0], T = x->shape[1], C = x->shape[2] / 3, NH = y->ip[0];
    const float *att = y->saved;                                              // (B, NH, T, T)
    float *scratch = (float *)y->saved + (size_t)B * (size_t)NH * (size_t)T * (size_t)T;   // (B, NH, T)
    attention_backward_kernel(x->grad, scratch, y->t.grad, x->data, att, B, T, C, NH);
}

const knob_op_def knob_op_attention = {"attention", 1, attention_shape, attention_saved, NULL,
                                       attention_forward, attention_backward};

knob_node *knob_attention(knob_graph *g, knob_node *qkv, int n_heads)
{
    return knob_node_make(g, KNOB_OP_ATTENTION, 1, &qkv, &n_heads, 1, NULL, 0);
}
