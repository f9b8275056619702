/* attention.c: the loops of fused causal multi-head self-attention, as in GPT-2 (llm.c's
 * attention_forward and attention_backward are the model); the op around them is
 * src/ops/attention.c. qkv (B, T, 3C) = [q | k | v] along the last axis, NH heads of size
 * HS = C / NH; out (B, T, C); att (B, NH, T, T) holds the post-softmax probabilities.
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
 * Not here: a key/value cache for sampling (src/models/), flash-style tiling, dropout on att. */
#include "knob_internal.h"

#include <math.h>

/* Per batch b, head h, query position t (q_t, k_t2, v_t2 are that head's HS-slices of qkv):
 *   pre[t2] = q_t . k_t2 / sqrt(HS)                      for t2 <= t (causal)
 *   att[t2] = exp(pre[t2] - max) / sum_{t3<=t} exp(pre[t3] - max),  att[t2] = 0 for t2 > t
 *   out_t   = sum_{t2<=t} att[t2] v_t2
 * The max is subtracted for range only; it cancels in the ratio. */
void knob_attention_forward(float *out,         // (B, T, C)
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
void knob_attention_backward(float *dqkv,          // (B, T, 3C), accumulated
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
