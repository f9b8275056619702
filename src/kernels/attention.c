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
 * Three implementations: those loops (the reference, and the path for shapes beyond a fixed
 * scratch buffer); further down the same math as per-head matrix products on knob_gemm, which
 * knob_attention_forward / _backward use when the shape fits (2-2.7x the loops on GPT-sized heads;
 * knob_attention_force_loops(1) selects the loops, for tests); and at the end the flash-style fused
 * kernels for head sizes that are multiples of 32 (GPT's 32 and 64), which keep no T x T buffer
 * (docs/SPEED.md, "The rest of the step"). src/ops/attention.c takes the flash kernels where
 * knob_attention_flash_ok says so, else knob_attention_forward / _backward.
 *
 * knob_attention_block (one block of queries against keys, causal softmax, weighted sum of values)
 * is shared with inference: src/models/lm.c runs it against its key/value cache.
 *
 * Not here: the key/value cache (src/models/lm.c), dropout on att. */
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

/* ------------------------------------------------------------------------------------------------
 * Flash-style: one fused pass per (b, h) for head sizes that are multiples of 32 (GPT's 32 and 64,
 * up to FL_MAX_HS), in blocks of FL_R query rows. Nothing of size T x T is kept: forward saves only
 * each row's log-sum-exp, lse_t = scale max + log sum_t2 e^(scale s[t2] - scale max), and backward
 * recomputes a block's probabilities from it, p[t2] = e^(scale s[t2] - lse_t). For rows [t0, t1):
 *   forward:  S = Q_blk K^T (keys [0, t1) only: the blocks above the diagonal are skipped);
 *             P = causal softmax(scale S) per row, lse kept;  O_blk = P V
 *   backward: S again, P = e^(scale S - lse);  dP = dO_blk V^T;  D_t = sum_t2 p dp;
 *             dS = P (dP - D) scale;  dQ_blk += dS K;  dV += P^T dO_blk;  dK += dS^T Q_blk
 * The kernels below are register-blocked loops (AVX2 + FMA, with plain C versions of the same loops
 * for other CPUs): scores (4 query rows x 16 keys per step, K and V transposed once per head),
 * rows_times (2 rows x 32 columns of P V, or dS K), and cols_add (one key's row of dV or dK from the
 * block's FL_R rows). The softmax rows are knob_attn_softmax_row (src/kernels/nn.c, knob's own
 * exponentials). Each (b, h)
 * is one thread's, in a fixed order: the same bits for any thread count.
 *
 * Versus the matrix-product path above (bench_step gptchar, docs/SPEED.md "The rest of the step")
 * it saves the T x T buffer both ways, the copies into and out of it, and knob_gemm's packing of
 * many small products. */

enum { FL_R = 8, FL_MAX_HS = 128 };

int knob_attention_flash_ok(int T, int HS)
{
    return HS % 32 == 0 && HS <= FL_MAX_HS && (size_t)T * (size_t)HS <= ATT_MAX_THS && T <= ATT_MAX_T;
}

/* s[r][j] (rows at stride ls) = sum_c a_r[c] bt[c][j] for r < 4, j < n8 (a multiple of 8);
 * a_r = a + r lda; bt (HS, ldb) */
static void scores4_portable(float *s, int ls, const float *a, size_t lda, const float *bt, int ldb, int n8, int HS)
{
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < n8; j++) {
            float acc = 0.0f;
            for (int c = 0; c < HS; c++)
                acc += a[(size_t)r * lda + (size_t)c] * bt[(size_t)c * (size_t)ldb + (size_t)j];
            s[(size_t)r * (size_t)ls + (size_t)j] = acc;
        }
}

/* o_r[c] (rows at stride ldo) (+)= sum_{j < n_r} p[r][j] v[j][c], v (n, HS) rows contiguous, for
 * r < R; n_r = min(n, t0 + r + 1) is row r's visible keys (p is 0 beyond them) */
static void rows_times_portable(float *o, size_t ldo, int add, const float *p, int lp, const float *v, int R,
                                int n, int t0, int HS)
{
    for (int r = 0; r < R; r++) {
        int nr = KNOB_MIN(n, t0 + r + 1);
        float *orow = o + (size_t)r * ldo;
        for (int c = 0; c < HS; c++) {
            float acc = add ? orow[c] : 0.0f;
            for (int j = 0; j < nr; j++)
                acc += p[(size_t)r * (size_t)lp + (size_t)j] * v[(size_t)j * (size_t)HS + (size_t)c];
            orow[c] = acc;
        }
    }
}

/* d[j][c] += sum_{r < FL_R} p[r][j] src_r[c] for j < n, d (n, HS) contiguous, src_r = src + r lds */
static void cols_add_portable(float *d, const float *p, int lp, const float *src, size_t lds, int n, int HS)
{
    for (int j = 0; j < n; j++)
        for (int c = 0; c < HS; c++) {
            float acc = d[(size_t)j * (size_t)HS + (size_t)c];
            for (int r = 0; r < FL_R; r++)
                acc += p[(size_t)r * (size_t)lp + (size_t)j] * src[(size_t)r * lds + (size_t)c];
            d[(size_t)j * (size_t)HS + (size_t)c] = acc;
        }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FL_X86 1

__attribute__((target("avx2,fma"))) static void scores4_avx2(float *s, int ls, const float *a, size_t lda,
                                                             const float *bt, int ldb, int n8, int HS)
{
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
    int j = 0;
    for (; j + 16 <= n8; j += 16) {
        __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
               c31 = c00;
        const float *b = bt + j;
        for (int c = 0; c < HS; c++, b += ldb) {
            __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
            __m256 x = _mm256_broadcast_ss(a0 + c);
            c00 = _mm256_fmadd_ps(x, b0, c00);
            c01 = _mm256_fmadd_ps(x, b1, c01);
            x = _mm256_broadcast_ss(a1 + c);
            c10 = _mm256_fmadd_ps(x, b0, c10);
            c11 = _mm256_fmadd_ps(x, b1, c11);
            x = _mm256_broadcast_ss(a2 + c);
            c20 = _mm256_fmadd_ps(x, b0, c20);
            c21 = _mm256_fmadd_ps(x, b1, c21);
            x = _mm256_broadcast_ss(a3 + c);
            c30 = _mm256_fmadd_ps(x, b0, c30);
            c31 = _mm256_fmadd_ps(x, b1, c31);
        }
        _mm256_storeu_ps(s + j, c00);
        _mm256_storeu_ps(s + j + 8, c01);
        _mm256_storeu_ps(s + ls + j, c10);
        _mm256_storeu_ps(s + ls + j + 8, c11);
        _mm256_storeu_ps(s + 2 * ls + j, c20);
        _mm256_storeu_ps(s + 2 * ls + j + 8, c21);
        _mm256_storeu_ps(s + 3 * ls + j, c30);
        _mm256_storeu_ps(s + 3 * ls + j + 8, c31);
    }
    if (j < n8) {   /* one group of 8 keys left */
        __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
        const float *b = bt + j;
        for (int c = 0; c < HS; c++, b += ldb) {
            __m256 b0 = _mm256_loadu_ps(b);
            c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + c), b0, c0);
            c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + c), b0, c1);
            c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + c), b0, c2);
            c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + c), b0, c3);
        }
        _mm256_storeu_ps(s + j, c0);
        _mm256_storeu_ps(s + ls + j, c1);
        _mm256_storeu_ps(s + 2 * ls + j, c2);
        _mm256_storeu_ps(s + 3 * ls + j, c3);
    }
}

/* 2 rows x 32 columns per step: 8 accumulators */
__attribute__((target("avx2,fma"))) static void rows_times_avx2(float *o, size_t ldo, int add, const float *p,
                                                                int lp, const float *v, int R, int n, int t0,
                                                                int HS)
{
    for (int r = 0; r < R; r += 2) {
        int two = r + 1 < R;
        int nr = KNOB_MIN(n, t0 + r + 1 + two);   /* keys the pair's second row sees */
        const float *p0 = p + (size_t)r * (size_t)lp, *p1 = two ? p0 + lp : p0;
        float *o0 = o + (size_t)r * ldo, *o1 = o0 + ldo;
        for (int c0 = 0; c0 < HS; c0 += 32) {
            __m256 x0 = _mm256_setzero_ps(), x1 = x0, x2 = x0, x3 = x0, y0 = x0, y1 = x0, y2 = x0, y3 = x0;
            const float *vj = v + c0;
            for (int j = 0; j < nr; j++, vj += HS) {
                __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8), v2 = _mm256_loadu_ps(vj + 16),
                       v3 = _mm256_loadu_ps(vj + 24);
                __m256 a = _mm256_broadcast_ss(p0 + j), b = _mm256_broadcast_ss(p1 + j);
                x0 = _mm256_fmadd_ps(a, v0, x0);
                x1 = _mm256_fmadd_ps(a, v1, x1);
                x2 = _mm256_fmadd_ps(a, v2, x2);
                x3 = _mm256_fmadd_ps(a, v3, x3);
                y0 = _mm256_fmadd_ps(b, v0, y0);
                y1 = _mm256_fmadd_ps(b, v1, y1);
                y2 = _mm256_fmadd_ps(b, v2, y2);
                y3 = _mm256_fmadd_ps(b, v3, y3);
            }
            if (add) {
                x0 = _mm256_add_ps(x0, _mm256_loadu_ps(o0 + c0));
                x1 = _mm256_add_ps(x1, _mm256_loadu_ps(o0 + c0 + 8));
                x2 = _mm256_add_ps(x2, _mm256_loadu_ps(o0 + c0 + 16));
                x3 = _mm256_add_ps(x3, _mm256_loadu_ps(o0 + c0 + 24));
            }
            _mm256_storeu_ps(o0 + c0, x0);
            _mm256_storeu_ps(o0 + c0 + 8, x1);
            _mm256_storeu_ps(o0 + c0 + 16, x2);
            _mm256_storeu_ps(o0 + c0 + 24, x3);
            if (two) {
                if (add) {
                    y0 = _mm256_add_ps(y0, _mm256_loadu_ps(o1 + c0));
                    y1 = _mm256_add_ps(y1, _mm256_loadu_ps(o1 + c0 + 8));
                    y2 = _mm256_add_ps(y2, _mm256_loadu_ps(o1 + c0 + 16));
                    y3 = _mm256_add_ps(y3, _mm256_loadu_ps(o1 + c0 + 24));
                }
                _mm256_storeu_ps(o1 + c0, y0);
                _mm256_storeu_ps(o1 + c0 + 8, y1);
                _mm256_storeu_ps(o1 + c0 + 16, y2);
                _mm256_storeu_ps(o1 + c0 + 24, y3);
            }
        }
    }
}

/* per key j and 32 columns: d[j] (4 vectors) += sum of the FL_R rows */
__attribute__((target("avx2,fma"))) static void cols_add_avx2(float *d, const float *p, int lp, const float *src,
                                                              size_t lds, int n, int HS)
{
    for (int j = 0; j < n; j++) {
        float *dj = d + (size_t)j * (size_t)HS;
        for (int c0 = 0; c0 < HS; c0 += 32) {
            __m256 x0 = _mm256_loadu_ps(dj + c0), x1 = _mm256_loadu_ps(dj + c0 + 8),
                   x2 = _mm256_loadu_ps(dj + c0 + 16), x3 = _mm256_loadu_ps(dj + c0 + 24);
            const float *sr = src + c0;
            for (int r = 0; r < FL_R; r++, sr += lds) {
                __m256 a = _mm256_broadcast_ss(p + (size_t)r * (size_t)lp + (size_t)j);
                x0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(sr), x0);
                x1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(sr + 8), x1);
                x2 = _mm256_fmadd_ps(a, _mm256_loadu_ps(sr + 16), x2);
                x3 = _mm256_fmadd_ps(a, _mm256_loadu_ps(sr + 24), x3);
            }
            _mm256_storeu_ps(dj + c0, x0);
            _mm256_storeu_ps(dj + c0 + 8, x1);
            _mm256_storeu_ps(dj + c0 + 16, x2);
            _mm256_storeu_ps(dj + c0 + 24, x3);
        }
    }
}
#else
#define FL_X86 0
#endif

static void fl_scores(int avx2, float *s, int ls, const float *a, size_t lda, const float *bt, int ldb, int n8, int HS)
{
#if FL_X86
    if (avx2) {
        scores4_avx2(s, ls, a, lda, bt, ldb, n8, HS);
        return;
    }
#endif
    (void)avx2;
    scores4_portable(s, ls, a, lda, bt, ldb, n8, HS);
}

static void fl_rows_times(int avx2, float *o, size_t ldo, int add, const float *p, int lp, const float *v, int R,
                          int n, int t0, int HS)
{
#if FL_X86
    if (avx2) {
        rows_times_avx2(o, ldo, add, p, lp, v, R, n, t0, HS);
        return;
    }
#endif
    (void)avx2;
    rows_times_portable(o, ldo, add, p, lp, v, R, n, t0, HS);
}

static void fl_cols_add(int avx2, float *d, const float *p, int lp, const float *src, size_t lds, int n, int HS)
{
#if FL_X86
    if (avx2) {
        cols_add_avx2(d, p, lp, src, lds, n, HS);
        return;
    }
#endif
    (void)avx2;
    cols_add_portable(d, p, lp, src, lds, n, HS);
}

#if FL_X86
/* 8 x 8 blocks: d[c][t] = s[t][c] for c, t < 8 (s rows at stride ls, d rows at stride ld) */
__attribute__((target("avx2"))) static void transpose8_avx2(float *d, size_t ld, const float *s, size_t ls)
{
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ls), r2 = _mm256_loadu_ps(s + 2 * ls),
           r3 = _mm256_loadu_ps(s + 3 * ls), r4 = _mm256_loadu_ps(s + 4 * ls), r5 = _mm256_loadu_ps(s + 5 * ls),
           r6 = _mm256_loadu_ps(s + 6 * ls), r7 = _mm256_loadu_ps(s + 7 * ls);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

/* dst (HS, ldt) = src^T for the T rows of src (stride ld), columns T..ldt-1 zero; HS a multiple
 * of 8 (the flash shapes) takes 8 x 8 blocks with AVX2 */
static void gather_t(float *dst, const float *src, int T, int HS, size_t ld, int ldt)
{
#if FL_X86
    if (HS % 8 == 0 && knob_kernel_isa() >= KNOB_ISA_AVX2) {
        int T8 = T / 8 * 8;
        for (int t = 0; t < T8; t += 8)
            for (int c = 0; c < HS; c += 8)
                transpose8_avx2(dst + (size_t)c * (size_t)ldt + (size_t)t, (size_t)ldt, src + (size_t)t * ld + (size_t)c, ld);
        for (int c = 0; c < HS; c++) {
            float *d = dst + (size_t)c * (size_t)ldt;
            for (int t = T8; t < T; t++)
                d[t] = src[(size_t)t * ld + (size_t)c];
            for (int t = T; t < ldt; t++)
                d[t] = 0.0f;
        }
        return;
    }
#endif
    for (int c = 0; c < HS; c++) {
        float *d = dst + (size_t)c * (size_t)ldt;
        for (int t = 0; t < T; t++)
            d[t] = src[(size_t)t * ld + (size_t)c];
        for (int t = T; t < ldt; t++)
            d[t] = 0.0f;
    }
}

/* S (FL_R, ls) of rows a_r = a + r lda (r < FL_R; rows past R repeat row R - 1, through tmp
 * (4, HS)) against bt, keys < n8 */
static void fl_block_scores(int avx2, float *S, int ls, const float *a, size_t lda, int R, const float *bt, int ldb,
                            int n8, int HS, float *tmp)
{
    for (int r0 = 0; r0 < FL_R; r0 += 4) {
        if (r0 + 4 <= R) {
            fl_scores(avx2, S + (size_t)r0 * (size_t)ls, ls, a + (size_t)r0 * lda, lda, bt, ldb, n8, HS);
        } else if (r0 < R) {   /* the last rows: repeat the block's last real row */
            const float *last = a + (size_t)(R - 1) * lda;
            const float *rows[4];
            for (int i = 0; i < 4; i++)
                rows[i] = r0 + i < R ? a + (size_t)(r0 + i) * lda : last;
            /* the kernels take rows at a fixed stride: copy them into tmp */
            for (int i = 0; i < 4; i++)
                memcpy(tmp + (size_t)i * HS, rows[i], (size_t)HS * sizeof(float));
            fl_scores(avx2, S + (size_t)r0 * (size_t)ls, ls, tmp, (size_t)HS, bt, ldb, n8, HS);
        }
    }
}


typedef struct {
    float *out, *dqkv, *lse;
    const float *qkv, *dout, *lse_in;
    int B, T, C, NH, fresh;   /* fresh: dqkv holds nothing yet; each element is written once */
} fl_args;

static void flash_forward_pairs(void *ctx, long lo, long hi)
{
    const fl_args *A = ctx;
    int T = A->T, C = A->C, NH = A->NH, HS = C / NH, isa = knob_kernel_isa(), avx2 = isa >= KNOB_ISA_AVX2;
    int Tp = (T + 15) / 16 * 16;   /* keys padded to whole groups */
    size_t C3 = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)HS);
    float *KT = att_work, *V = KT + (size_t)HS * Tp, *S = V + (size_t)T * HS;   // (HS, Tp), (T, HS), (FL_R, Tp)
    float *tmp = S + (size_t)FL_R * Tp;                                          // (4, HS)
    for (long pair = lo; pair < hi; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        const float *base = A->qkv + (size_t)b * T * C3 + (size_t)h * HS;
        gather_t(KT, base + C, T, HS, C3, Tp);
        gather(V, base + 2 * (size_t)C, T, HS, C3);
        float *lse = A->lse + ((size_t)b * NH + (size_t)h) * (size_t)T;   // (T)
        for (int t0 = 0; t0 < T; t0 += FL_R) {
            int R = KNOB_MIN(FL_R, T - t0), n = t0 + R, n8 = (n + 7) / 8 * 8;
            fl_block_scores(avx2, S, Tp, base + (size_t)t0 * C3, C3, R, KT, Tp, n8, HS, tmp);
            for (int r = 0; r < R; r++)
                lse[t0 + r] = knob_attn_softmax_row(S + (size_t)r * Tp, t0 + r, n8, scale, NULL, isa);
            fl_rows_times(avx2, A->out + ((size_t)b * T + (size_t)t0) * C + (size_t)h * HS, (size_t)C, 0, S, Tp, V, R,
                          n, t0, HS);
        }
    }
}

static void flash_backward_pairs(void *ctx, long lo, long hi)
{
    const fl_args *A = ctx;
    int T = A->T, C = A->C, NH = A->NH, HS = C / NH, isa = knob_kernel_isa(), avx2 = isa >= KNOB_ISA_AVX2;
    int Tp = (T + 15) / 16 * 16;
    size_t C3 = 3 * (size_t)C, THS = (size_t)T * HS;
    float scale = 1.0f / sqrtf((float)HS);
    float *KT = att_work, *VT = KT + (size_t)HS * Tp;                  // (HS, Tp) each
    float *K = VT + (size_t)HS * Tp, *dK = K + THS, *dV = dK + THS;     // (T, HS) each
    float *P = dV + THS, *dS = P + (size_t)FL_R * Tp;                  // (FL_R, Tp) each
    float *Qp = dS + (size_t)FL_R * Tp, *dOp = Qp + (size_t)FL_R * HS;   // (FL_R, HS) each
    float *tmp = dOp + (size_t)FL_R * HS;                              // (4, HS)
    for (long pair = lo; pair < hi; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        const float *base = A->qkv + (size_t)b * T * C3 + (size_t)h * HS;
        const float *dbase_o = A->dout + (size_t)b * T * C + (size_t)h * HS;
        float *dbase = A->dqkv + (size_t)b * T * C3 + (size_t)h * HS;
        const float *lse = A->lse_in + ((size_t)b * NH + (size_t)h) * (size_t)T;
        gather_t(KT, base + C, T, HS, C3, Tp);
        gather_t(VT, base + 2 * (size_t)C, T, HS, C3, Tp);
        gather(K, base + C, T, HS, C3);
        memset(dK, 0, 2 * THS * sizeof(float));
        for (int t0 = 0; t0 < T; t0 += FL_R) {
            int R = KNOB_MIN(FL_R, T - t0), n = t0 + R, n8 = (n + 7) / 8 * 8;
            const float *q = base + (size_t)t0 * C3, *dO = dbase_o + (size_t)t0 * C;
            fl_block_scores(avx2, P, Tp, q, C3, R, KT, Tp, n8, HS, tmp);
            fl_block_scores(avx2, dS, Tp, dO, (size_t)C, R, VT, Tp, n8, HS, tmp);   /* dP */
            for (int r = 0; r < R; r++) {
                float *p = P + (size_t)r * Tp, *d = dS + (size_t)r * Tp;
                int t = t0 + r;
                knob_attn_softmax_row(p, t, n8, scale, lse + t, isa);
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int j = 0; j <= t; j++)
                    dot += p[j] * d[j];
#pragma omp simd
                for (int j = 0; j <= t; j++)
                    d[j] = p[j] * (d[j] - dot) * scale;
                for (int j = t + 1; j < n8; j++)
                    d[j] = 0.0f;
            }
            /* rows past R take no part: zero probabilities, and rows of Q and dO that exist */
            for (int r = 0; r < FL_R; r++) {
                const float *qr = q + (size_t)KNOB_MIN(r, R - 1) * C3, *dr = dO + (size_t)KNOB_MIN(r, R - 1) * C;
                memcpy(Qp + (size_t)r * HS, qr, (size_t)HS * sizeof(float));
                memcpy(dOp + (size_t)r * HS, dr, (size_t)HS * sizeof(float));
                if (r >= R) {
                    memset(P + (size_t)r * Tp, 0, (size_t)n * sizeof(float));
                    memset(dS + (size_t)r * Tp, 0, (size_t)n * sizeof(float));
                }
            }
            fl_rows_times(avx2, dbase + (size_t)t0 * C3, C3, !A->fresh, dS, Tp, K, R, n, t0, HS);   /* dQ += dS K */
            fl_cols_add(avx2, dV, P, Tp, dOp, (size_t)HS, n, HS);                         /* dV += P^T dO */
            fl_cols_add(avx2, dK, dS, Tp, Qp, (size_t)HS, n, HS);                         /* dK += dS^T Q */
        }
        for (int t = 0; t < T; t++) {
            float *dk = dbase + (size_t)t * C3 + C, *dv = dk + C;
            const float *sk = dK + (size_t)t * HS, *sv = dV + (size_t)t * HS;
            if (A->fresh) {
                memcpy(dk, sk, (size_t)HS * sizeof(float));
                memcpy(dv, sv, (size_t)HS * sizeof(float));
                continue;
            }
            for (int k = 0; k < HS; k++) {
                dk[k] += sk[k];
                dv[k] += sv[k];
            }
        }
    }
}

void knob_attention_flash_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH)
{
    fl_args a = {.out = out, .lse = lse, .qkv = qkv, .B = B, .T = T, .C = C, .NH = NH};
    long n = (long)B * NH;
    knob_parallel_for(n, worth_threads(B, T, C, NH) ? 1 : n, flash_forward_pairs, &a);
}

void knob_attention_flash_backward(float *dqkv, const float *dout, const float *qkv, const float *lse, int B, int T,
                                   int C, int NH, int fresh)
{
    fl_args a = {.dqkv = dqkv, .dout = dout, .qkv = qkv, .lse_in = lse, .B = B, .T = T, .C = C, .NH = NH,
                 .fresh = fresh};
    long n = (long)B * NH;
    knob_parallel_for(n, worth_threads(B, T, C, NH) ? 1 : n, flash_backward_pairs, &a);
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
