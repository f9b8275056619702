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
 * Two implementations: those loops (the reference, and the path for shapes beyond a fixed scratch
 * buffer), and at the end of the file the same math as per-head matrix products on knob_gemm,
 * which knob_attention_forward / _backward use when the shape fits: 2-2.7x faster on GPT-sized
 * heads (README, Speed). knob_attention_force_loops(1) selects the loops, for tests.
 *
 * knob_attention_block (one block of queries against keys, causal softmax, weighted sum of values)
 * is shared with inference: src/models/lm.c runs it against its key/value cache.
 *
 * Not here: the key/value cache (src/models/lm.c), flash-style tiling, dropout on att. */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

/* Per batch b, head h, query position t (q_t, k_t2, v_t2 are that head's HS-slices of qkv):
 *   pre[t2] = q_t . k_t2 / sqrt(HS)                      for t2 <= t (causal)
 *   att[t2] = exp(pre[t2] - max) / sum_{t3<=t} exp(pre[t3] - max),  att[t2] = 0 for t2 > t
 *   out_t   = sum_{t2<=t} att[t2] v_t2
 * The max is subtracted for range only; it cancels in the ratio. */
/* Small problems (tests, one short window) run on one thread: a parallel region costs more than
 * they do, and far more when other processes hold the cores. */
static int worth_threads(int B, int T, int C, int NH)
{
    return B * NH > 1 && (double)B * T * (double)T * C >= (double)KNOB_PAR_MIN * 64;
}

/* The arguments of one pass, for the pool's tasks: one task per (b, h) pair. */
typedef struct {
    float *out, *att, *dqkv, *scratch;
    const float *qkv, *dout, *att_in;
    int B, T, C, NH;
} att_args;

static void run_pairs(knob_range_fn *fn, att_args *a)
{
    long n = (long)a->B * a->NH;
    knob_parallel_for(n, worth_threads(a->B, a->T, a->C, a->NH) ? 1 : n, fn, a);
}

static void forward_loops_pairs(void *ctx, long lo, long hi)
{
    const att_args *A = ctx;
    float *out = A->out, *att = A->att;
    const float *qkv = A->qkv;
    int T = A->T, C = A->C, NH = A->NH;
    int HS = C / NH;
    size_t C3 = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)HS);
    for (long pair = lo; pair < hi; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
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

static void forward_loops(float *out,            // (B, T, C)
                            float *att,         // (B, NH, T, T)
                            const float *qkv,   // (B, T, 3C)
                            int B, int T, int C, int NH)
{
    att_args a = {.out = out, .att = att, .qkv = qkv, .B = B, .T = T, .C = C, .NH = NH};
    run_pairs(forward_loops_pairs, &a);
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
static void backward_loops_pairs(void *ctx, long lo, long hi)
{
    const att_args *A = ctx;
    float *dqkv = A->dqkv, *scratch = A->scratch;
    const float *dout = A->dout, *qkv = A->qkv, *att = A->att_in;
    int T = A->T, C = A->C, NH = A->NH;
    int HS = C / NH;
    size_t C3 = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)HS);
    for (long pair = lo; pair < hi; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
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

static void backward_loops(float *dqkv,           // (B, T, 3C), accumulated
                             float *scratch,       // (B, NH, T)
                             const float *dout,    // (B, T, C)
                             const float *qkv,     // (B, T, 3C)
                             const float *att,     // (B, NH, T, T)
                             int B, int T, int C, int NH)
{
    att_args a = {.dqkv = dqkv, .scratch = scratch, .dout = dout, .qkv = qkv, .att_in = att, .B = B, .T = T,
                  .C = C, .NH = NH};
    run_pairs(backward_loops_pairs, &a);
}

/* ------------------------------------------------------------------------------------------------
 * The same math as matrix products, per (b, h) and per block of ATT_R query rows.
 *
 * The loops above spend their time on short dot products (HS floats) with a horizontal sum each.
 * Here a head's q, k, v (and dout) are first copied into contiguous (T, HS) matrices, and then,
 * for query rows [t0, t1) and the keys they may see, [0, t1):
 *   forward:   S = scale Q_blk K^T (R x t1)  ->  causal softmax per row (att)  ->  O_blk = P V
 *   backward:  dP = dO_blk V^T;  dpre = P (dP - rowsum(P dP)) scale;  dV += P^T dO_blk;
 *              dQ_blk = dpre K;  dK += dpre^T Q_blk
 * each product one knob_gemm call (single-threaded inside the (b, h) loop). Blocks skip the keys
 * above the diagonal block, so about half of the T x T work is saved, as in the loops.
 *
 * Scratch is a fixed thread-local buffer (no allocation in a step); shapes beyond it (T HS above
 * ATT_MAX_THS or T above ATT_MAX_T) take the loops. Results equal the loops' to float rounding
 * (tests/test_gpt.c compares them); for a given build they repeat bit for bit for any thread count,
 * since each (b, h) is one thread's and knob_gemm's sums do not depend on threads. */

enum { ATT_R = 32, ATT_MAX_THS = 32768, ATT_MAX_T = 2048 };

static _Thread_local float att_work[6 * ATT_MAX_THS + 2 * ATT_R * ATT_MAX_T + ATT_R * 64 * 16];
static int att_force_loops;

void knob_attention_force_loops(int on) { att_force_loops = on; }

static int use_gemm(int T, int HS)
{
    return !att_force_loops && (size_t)T * (size_t)HS <= ATT_MAX_THS && T <= ATT_MAX_T && HS <= 64 * 16;
}

/* dst (T, HS) = the head-h slice at column offset off of src rows with stride C3 */
static void gather(float *dst, const float *src, int T, int HS, size_t stride)
{
    for (int t = 0; t < T; t++)
        memcpy(dst + (size_t)t * HS, src + (size_t)t * stride, (size_t)HS * sizeof(float));
}

/* One block of R query rows against the first n keys of one head, causal: row i is the query at
 * position t0 + i and sees keys [0, t0 + i] (t0 + R <= n).
 *   s (R, n) = scale q k^T, then softmax per row over its visible keys, 0 beyond them
 *   o (R, HS) = s v
 * q (R, HS), k and v (n, HS) contiguous. The training op (below) runs it on blocks of a window;
 * src/models/lm.c on a prompt's (or one decode step's) queries against the key/value cache. */
void knob_attention_block(float *o, float *s, const float *q, const float *k, const float *v, int R, int n, int t0,
                          int HS, float scale)
{
    knob_gemm(0, 1, R, n, HS, scale, q, k, 0.0f, s);   // (R, n)
    for (int i = 0; i < R; i++) {
        int t = t0 + i;
        float *si = s + (size_t)i * n, maxv = -INFINITY, sum = 0.0f;
        for (int t2 = 0; t2 <= t; t2++)
            maxv = si[t2] > maxv ? si[t2] : maxv;
        for (int t2 = 0; t2 <= t; t2++) {
            si[t2] = expf(si[t2] - maxv);
            sum += si[t2];
        }
        float inv = 1.0f / sum;
        for (int t2 = 0; t2 <= t; t2++)
            si[t2] *= inv;
        for (int t2 = t + 1; t2 < n; t2++)
            si[t2] = 0.0f;
    }
    knob_gemm(0, 0, R, HS, n, 1.0f, s, v, 0.0f, o);   // (R, HS)
}

static void forward_gemm_pairs(void *ctx, long lo, long hi)
{
    const att_args *A = ctx;
    float *out = A->out, *att = A->att;
    const float *qkv = A->qkv;
    int T = A->T, C = A->C, NH = A->NH;
    int HS = C / NH;
    size_t C3 = 3 * (size_t)C, THS = (size_t)T * HS;
    float scale = 1.0f / sqrtf((float)HS);
    for (long pair = lo; pair < hi; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        float *Q = att_work, *K = Q + THS, *V = K + THS;   // (T, HS) each
        float *S = V + THS;                                 // (R, T)
        float *O = S + (size_t)ATT_R * T;                   // (R, HS)
        const float *base = qkv + (size_t)b * T * C3 + (size_t)h * HS;
        gather(Q, base, T, HS, C3);
        gather(K, base + C, T, HS, C3);
        gather(V, base + 2 * (size_t)C, T, HS, C3);
        float *att_bh = att + ((size_t)b * NH + (size_t)h) * (size_t)T * (size_t)T;   // (T, T)
        for (int t0 = 0; t0 < T; t0 += ATT_R) {
            int t1 = KNOB_MIN(T, t0 + ATT_R), R = t1 - t0, n = t1;
            knob_attention_block(O, S, Q + (size_t)t0 * HS, K, V, R, n, t0, HS, scale);
            for (int i = 0; i < R; i++) {
                float *a = att_bh + (size_t)(t0 + i) * T;
                memcpy(a, S + (size_t)i * n, (size_t)n * sizeof(float));
                memset(a + n, 0, (size_t)(T - n) * sizeof(float));
            }
            for (int i = 0; i < R; i++)
                memcpy(out + ((size_t)b * T + (size_t)(t0 + i)) * C + (size_t)h * HS, O + (size_t)i * HS,
                       (size_t)HS * sizeof(float));
        }
    }
}

static void forward_gemm(float *out, float *att, const float *qkv, int B, int T, int C, int NH)
{
    att_args a = {.out = out, .att = att, .qkv = qkv, .B = B, .T = T, .C = C, .NH = NH};
    run_pairs(forward_gemm_pairs, &a);
}

static void backward_gemm_pairs(void *ctx, long lo, long hi)
{
    const att_args *A = ctx;
    float *dqkv = A->dqkv;
    const float *dout = A->dout, *qkv = A->qkv, *att = A->att_in;
    int T = A->T, C = A->C, NH = A->NH;
    int HS = C / NH;
    size_t C3 = 3 * (size_t)C, THS = (size_t)T * HS;
    float scale = 1.0f / sqrtf((float)HS);
    for (long pair = lo; pair < hi; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        float *Q = att_work, *K = Q + THS, *V = K + THS, *dO = V + THS;   // (T, HS) each
        float *dK = dO + THS, *dV = dK + THS;                              // (T, HS) accumulators
        float *P = dV + THS, *dP = P + (size_t)ATT_R * T;                  // (R, T) each
        float *dQ = dP + (size_t)ATT_R * T;                                // (R, HS)
        const float *base = qkv + (size_t)b * T * C3 + (size_t)h * HS;
        gather(Q, base, T, HS, C3);
        gather(K, base + C, T, HS, C3);
        gather(V, base + 2 * (size_t)C, T, HS, C3);
        gather(dO, dout + (size_t)b * T * C + (size_t)h * HS, T, HS, (size_t)C);
        memset(dK, 0, 2 * THS * sizeof(float));
        const float *att_bh = att + ((size_t)b * NH + (size_t)h) * (size_t)T * (size_t)T;   // (T, T)
        float *dbase = dqkv + (size_t)b * T * C3 + (size_t)h * HS;
        for (int t0 = 0; t0 < T; t0 += ATT_R) {
            int t1 = KNOB_MIN(T, t0 + ATT_R), R = t1 - t0, n = t1;
            for (int i = 0; i < R; i++)
                memcpy(P + (size_t)i * n, att_bh + (size_t)(t0 + i) * T, (size_t)n * sizeof(float));
            knob_gemm(0, 1, R, n, HS, 1.0f, dO + (size_t)t0 * HS, V, 0.0f, dP);   // datt (R, n)
            for (int i = 0; i < R; i++) {
                const float *p = P + (size_t)i * n;
                float *d = dP + (size_t)i * n, dot = 0.0f;
                for (int t2 = 0; t2 < n; t2++)   /* p is 0 above the diagonal */
                    dot += p[t2] * d[t2];
                for (int t2 = 0; t2 < n; t2++)
                    d[t2] = p[t2] * (d[t2] - dot) * scale;   /* dpre, scale folded in */
            }
            knob_gemm(1, 0, n, HS, R, 1.0f, P, dO + (size_t)t0 * HS, 1.0f, dV);   // dV[0:n] += P^T dO_blk
            knob_gemm(0, 0, R, HS, n, 1.0f, dP, K, 0.0f, dQ);                    // dQ_blk = dpre K
            knob_gemm(1, 0, n, HS, R, 1.0f, dP, Q + (size_t)t0 * HS, 1.0f, dK);  // dK[0:n] += dpre^T Q_blk
            for (int i = 0; i < R; i++) {
                float *dq = dbase + (size_t)(t0 + i) * C3;
                const float *src = dQ + (size_t)i * HS;
                for (int k = 0; k < HS; k++)
                    dq[k] += src[k];
            }
        }
        for (int t = 0; t < T; t++) {
            float *dk = dbase + (size_t)t * C3 + C, *dv = dk + C;
            const float *sk = dK + (size_t)t * HS, *sv = dV + (size_t)t * HS;
            for (int k = 0; k < HS; k++) {
                dk[k] += sk[k];
                dv[k] += sv[k];
            }
        }
    }
}

static void backward_gemm(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C,
                          int NH)
{
    att_args a = {.dqkv = dqkv, .dout = dout, .qkv = qkv, .att_in = att, .B = B, .T = T, .C = C, .NH = NH};
    run_pairs(backward_gemm_pairs, &a);
}

void knob_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH)
{
    if (use_gemm(T, C / NH))
        forward_gemm(out, att, qkv, B, T, C, NH);
    else
        forward_loops(out, att, qkv, B, T, C, NH);
}

void knob_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, const float *att,
                             int B, int T, int C, int NH)
{
    if (use_gemm(T, C / NH))
        backward_gemm(dqkv, dout, qkv, att, B, T, C, NH);
    else
        backward_loops(dqkv, scratch, dout, qkv, att, B, T, C, NH);
}
