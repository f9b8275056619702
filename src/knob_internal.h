/* knob_internal.h: what the src/ files share and the public header does not show: the node and
 * graph structs, the op table, kernel signatures, and the assert macro for programmer errors. */
#ifndef KNOB_INTERNAL_H
#define KNOB_INTERNAL_H

#include "knob.h"

#include <stdlib.h>
#include <string.h>

/* "omp simd" loops are requests to vectorize; clang warns (an error under WERROR) where it cannot
 * comply, as under the sanitizers or -Os, and such a loop then simply runs scalar. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* Internal invariants only (never user input): stays on in release builds. */
#define KNOB_ASSERT(x)                                                                        \
    do {                                                                                      \
        if (!(x)) {                                                                           \
            fprintf(stderr, "%s:%d: KNOB_ASSERT(%s) failed\n", __FILE__, __LINE__, #x);       \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* Loops with less work than this (elements touched) run on one thread: starting a parallel region
 * costs a few microseconds, more than a small loop takes. Tiny models (knob fit) live here. */
#define KNOB_PAR_MIN 32768

/* ------------------------------------------------------------------------------------------------
 * knob's thread pool (src/core/threads.c). knob_parallel_for(n, chunk, fn, ctx) calls fn(ctx, lo, hi)
 * for [0, n) cut into chunks [lo, hi) of `chunk` items (the last one shorter), each once, spread
 * over knob_threads_get() threads that take the next chunk as they come free; it returns when all
 * have run. The chunks depend on n and chunk only, so a fn that writes only its own chunk's
 * outputs gives the same bits for any thread count. Called from inside a chunk (or while another
 * thread's loop runs), it runs every chunk on the calling thread. knob_parallel_chunk(n, min, k):
 * a chunk size that cuts n into at most k chunks of at least min items (pick k from the work, not
 * from the thread count, to keep results independent of it). */
typedef void knob_range_fn(void *ctx, long lo, long hi);
void knob_parallel_for(long n, long chunk, knob_range_fn *fn, void *ctx);
long knob_parallel_chunk(long n, long min_chunk, long max_chunks);
/* The common case: n items of about `work` elements touched each. Under KNOB_PAR_MIN elements in
 * all, one call fn(ctx, 0, n) on this thread; else chunks of about KNOB_PAR_CHUNK elements (at
 * most 256 chunks). The chunks depend on n and work only. */
#define KNOB_PAR_CHUNK 8192
void knob_par_items(long n, double work, knob_range_fn *fn, void *ctx);

#define KNOB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KNOB_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Most elements one tensor (or one params block) may have: 2^40, far beyond any memory, yet small
 * enough that byte counts (elements x 4 bytes x a few buffers) cannot wrap a size_t. Shapes come
 * from users, so every product is checked against it before anything is sized from it. */
#define KNOB_MAX_ELEMS ((size_t)1 << 40)

/* n = product of the shape; 0 (n untouched) when a dim is negative or the product passes
 * KNOB_MAX_ELEMS. */
int knob_shape_elems_checked(int n_dims, const int *shape, size_t *n);

/* a * b and a + b, saturating at SIZE_MAX: byte counts that an allocation then refuses. */
static inline size_t knob_mul_sat(size_t a, size_t b) { return b && a > SIZE_MAX / b ? SIZE_MAX : a * b; }
static inline size_t knob_add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* ------------------------------------------------------------------------------------------------
 * Ops */

/* Every op, one row each: X(ENUM, name, family file under src/ops/). The enum (KNOB_OP_<ENUM>), the
 * table row in src/ops/ops.c (knob_ops[KNOB_OP_<ENUM>] = &knob_op_<name>), the declaration of
 * knob_op_<name> below and the op's name ("<name>", knob_op_name) are all generated from this list:
 * a new op is one row here, its knob_op_def in the family file, and a GRADCHECK case in
 * tests/test_gradcheck.c (a test fails without one). */
#define KNOB_OP_LIST(X)                                                                      \
    X(ADD, add, elementwise)                                                                 \
    X(SUB, sub, elementwise)                                                                 \
    X(MUL, mul, elementwise)                                                                 \
    X(DIV, div, elementwise)                                                                 \
    X(SCALE, scale, elementwise)                                                             \
    X(EXP, exp, elementwise)                                                                 \
    X(LOG, log, elementwise)                                                                 \
    X(SQRT, sqrt, elementwise)                                                               \
    X(ABS, abs, elementwise)                                                                 \
    X(RELU, relu, elementwise)                                                               \
    X(GELU, gelu, elementwise)                                                               \
    X(SIGMOID, sigmoid, elementwise)                                                         \
    X(TANH, tanh, elementwise)                                                               \
    X(MATMUL, matmul, matmul)                                                                \
    X(SUM, sum, reduce)                                                                      \
    X(MEAN, mean, reduce)                                                                    \
    X(SOFTMAX, softmax, reduce)                                                              \
    X(LOG_SOFTMAX, log_softmax, reduce)                                                      \
    X(LAYERNORM, layernorm, norm)                                                            \
    X(CROSS_ENTROPY, cross_entropy, loss)                                                    \
    X(MSE, mse, loss)                                                                        \
    X(MAE, mae, loss)                                                                        \
    X(EMBEDDING, embedding, embedding)                                                       \
    X(DROPOUT, dropout, embedding)                                                           \
    X(CONV2D, conv2d, conv)                                                                  \
    X(MAXPOOL2D, maxpool2d, pool)                                                            \
    X(AVGPOOL2D, avgpool2d, pool)                                                            \
    X(RESHAPE, reshape, shape)                                                               \
    X(TRANSPOSE, transpose, shape)                                                           \
    X(PERMUTE, permute, shape)                                                               \
    X(CONCAT, concat, shape)                                                                 \
    X(SLICE, slice, shape)                                                                   \
    X(ATTENTION, attention, attention)

typedef enum {
    KNOB_OP_NONE = 0,   /* leaves: input, param */
#define KNOB_OP_ENUM_(E, name, file) KNOB_OP_##E,
    KNOB_OP_LIST(KNOB_OP_ENUM_)
#undef KNOB_OP_ENUM_
    KNOB_OP_COUNT
} knob_op;

#define KNOB_MAX_IN 8

struct knob_node {
    knob_op op;
    int id;                     /* index in g->nodes: creation order is a topological order */
    int n_in;
    knob_node *in[KNOB_MAX_IN];
    knob_tensor t;              /* value (t.data) and gradient (t.grad) */
    int requires_grad;          /* a parameter is upstream */
    int is_view;                /* data and grad alias in[0]'s (reshape) */
    int live;                   /* backward: the loss depends on this node (set each pass) */
    knob_tensor *param;         /* leaves made by knob_param */
    int ip[8];                  /* integer attributes (axis, stride, ...) */
    float fp[4];                /* float attributes (scale, p, ...) */
    void *saved;                /* forward keeps what backward needs here; op->saved bytes */
    knob_graph *g;
    int grad_fresh;             /* backward: t.grad holds nothing of this pass yet (knob_grad_fresh) */
};

/* Backward, in an op that graph.c lets write its inputs' grads (see fresh_ok there): 1 when u's
 * gradient buffer (its view root's, for a reshape) has not been written in this pass, so the op
 * must write every element of it, 0 + its gradient, instead of adding to it; the result has the
 * bits that zeroing first and adding would give (but for the sign of a zero: a -0 written stays
 * -0, where 0 + -0 is +0). 0 for parameters, which accumulate. */
static inline int knob_grad_fresh(const knob_node *u)
{
    while (u->is_view)
        u = u->in[0];
    return u->grad_fresh;
}

typedef struct knob_op_def {
    int n_in;                                            /* -1: variadic */
    knob_status (*shape)(knob_node *y, knob_err *err);   /* set y->t shape from inputs, or reject */
    size_t (*saved)(const knob_node *y);                 /* bytes forward keeps for backward */
    knob_status (*check)(const knob_node *y, knob_err *err); /* before forward: index ranges */
    void (*forward)(knob_node *y);                       /* y = f(inputs) */
    void (*backward)(knob_node *y);                      /* inputs' grads += J^T y->grad */
} knob_op_def;

extern const knob_op_def *const knob_ops[KNOB_OP_COUNT];

/* The ops' rows, one file per family under src/ops/ (see KNOB_OP_LIST) */
#define KNOB_OP_EXTERN_(E, name, file) extern const knob_op_def knob_op_##name;
KNOB_OP_LIST(KNOB_OP_EXTERN_)
#undef KNOB_OP_EXTERN_

/* Graph-side helpers for builders (src/graph/graph.c) */
/* The op's name from KNOB_OP_LIST ("matmul"), for messages and node names; "leaf" for
 * KNOB_OP_NONE, "?" out of range. Op files call this rather than reading knob_ops (which would
 * make each family file and the table in ops.c call each other). */
const char *knob_op_name(knob_op op);
/* Makes a node for op with inputs; runs the op's shape function; NULL (and a sticky graph error)
 * when an input is NULL or shapes disagree. */
knob_node *knob_node_make(knob_graph *g, knob_op op, int n_in, knob_node *const *in,
                          const int *ip, int n_ip, const float *fp, int n_fp);
void        knob_node_set_shape(knob_node *y, int n_dims, const int *shape);
knob_status knob_shape_same(knob_node *y, const knob_node *a, knob_err *err);
int         knob_graph_training(const knob_graph *g);
/* Records a build error in g (if it has none yet): builders that validate outside a shape function. */
void        knob_graph_error(knob_graph *g, knob_status code, const char *fmt, ...) KNOB_PRINTF(3, 4);
knob_status knob_graph_status(const knob_graph *g);   /* the sticky build error's code, or KNOB_OK */
/* Normalises a possibly negative axis for n_dims dims; -1 if out of range. */
int         knob_axis(int axis, int n_dims);

/* ------------------------------------------------------------------------------------------------
 * Kernels (src/kernels): pure loops over pointers and sizes. */

/* bfloat16: the top 16 bits of a float, rounded to nearest even (a NaN stays a quiet NaN); back
 * to f32 by shifting left 16, exactly. Shared by the GEMM's bf16 packing and matvec.c's weights. */
static inline uint16_t knob_bf16_from_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))   /* NaN: keep it one, quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);                              /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}
static inline float knob_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
/* x rounded to the nearest bf16, as a float */
static inline float knob_bf16_round(float x) { return knob_bf16_to_f32(knob_bf16_from_f32(x)); }

/* C (M, N) = alpha * op(A) @ op(B) + beta * C; op(A) is (M, K), op(B) is (K, N).
 * A is stored (M, K) row-major, or (K, M) when ta; B is (K, N), or (N, K) when tb. */
void knob_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, const float *B,
               float beta, float *C);
/* The same plus bias (N) added to every row of C: bit for bit knob_gemm then C[i][j] += bias[j],
 * fused into the store of the last K slice (no second pass over C). bias may not alias C. */
void knob_gemm_bias(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                    const float *B, float beta, float *C, const float *bias);
/* Tests and benchmarks: 1 forces the portable kernels (every family: knob_kernel_force) instead of
 * AVX2+FMA; 0 goes back to KNOB_KERNEL / the CPU's best. knob_gemm_kernel_name is in knob.h. */
void        knob_gemm_force_portable(int on);
/* Tests: 1 or 0 forces the AVX-512 12-row kernel that reads A in place on or off, -1 lets the CPU
 * decide (off on Zen 4; same bits either way). */
void        knob_gemm_set_strided_two(int on);
/* Reference triple loop in double accumulation, for tests. */
void knob_gemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     const float *B, float beta, float *C);
/* Mixed precision: C = alpha * op(A) @ op(B) + beta * C with every element of A and B rounded to
 * bf16 (nearest even, knob_bf16_from_f32) before it is multiplied; the products (exact in f32)
 * are summed in f32, so only the inputs lose precision, as in PyTorch's bf16 autocast.
 * knob_gemm_bf16_naive is its reference (double sums of the rounded inputs), for tests. */
void knob_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                    const float *B, float beta, float *C);
void knob_gemm_bf16_bias(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                         const float *B, float beta, float *C, const float *bias);
void knob_gemm_bf16_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                          const float *B, float beta, float *C);

/* Convolution (src/kernels/conv.c): im2col, its adjoint col2im, and a naive direct convolution
 * kept as the reference for tests. Pure loops over pointers and sizes; no graph, no allocation.
 *
 * Layout of a column matrix for one image x (C, H, W), kernel KH x KW, stride s, zero padding p,
 * output OH x OW (OH = (H + 2p - KH) / s + 1, likewise OW):
 *     cols (C*KH*KW, OH*OW),  row r = (c*KH + kh)*KW + kw,  column q = oh*OW + ow,
 *     cols[r][q] = x[c][oh*s - p + kh][ow*s - p + kw], or 0 where that falls in the padding.
 * A weight tensor (OC, C, KH, KW) read as a matrix (OC, C*KH*KW) uses the same row order, so one
 * image's convolution is the product w @ cols -> (OC, OH*OW). */

/* Output size along one axis: (n + 2 pad - k) / stride + 1; callers check that n + 2 pad >= k. */
int knob_conv_out_size(int n, int k, int stride, int pad);

/* cols (C*KH*KW, OH*OW) = im2col(x (C, H, W)); every element of cols is written. */
void knob_im2col(const float *x, int C, int H, int W, int KH, int KW, int stride, int pad,
                 float *cols);

/* dx (C, H, W) += col2im(dcols (C*KH*KW, OH*OW)): the adjoint (transpose) of im2col, so each
 * element of dx receives the sum of the columns entries that copied it, in a fixed order. */
void knob_col2im(const float *dcols, int C, int H, int W, int KH, int KW, int stride, int pad,
                 float *dx);

/* Reference, for tests: y (B, OC, OH, OW) = direct convolution of x (B, C, H, W) with
 * w (OC, C, KH, KW), plus b (OC) when b is not NULL; accumulates in double. */
void knob_conv2d_naive(const float *x, const float *w, const float *b, int B, int C, int H, int W,
                       int OC, int KH, int KW, int stride, int pad, float *y);

/* Causal multi-head self-attention (src/kernels/attention.c), qkv (B, T, 3C) = [q | k | v]:
 * forward writes out (B, T, C) and the probabilities att (B, NH, T, T); backward adds into
 * dqkv (B, T, 3C), using scratch (B, NH, T). */
void knob_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
void knob_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, int B, int T, int C, int NH);
/* Tests: 1 makes both run the plain loops instead of the per-head matrix products. */
void knob_attention_force_loops(int on);
/* Flash-style (src/kernels/attention.c), for head sizes HS = C / NH that knob_attention_flash_ok
 * accepts (multiples of 32, T HS within the per-thread scratch): forward writes out (B, T, C) and
 * each query row's log-sum-exp lse (B, NH, T) instead of the probabilities; backward adds into
 * dqkv (B, T, 3C) from that lse, recomputing the probabilities block by block. */
int  knob_attention_flash_ok(int T, int HS);
/* Their softmax of one causal row s (n8 floats, a multiple of 8; keys [0, t] visible), in place
 * (src/kernels/nn.c): lse NULL: s = softmax(scale s), returns the log-sum-exp; else
 * s = e^(scale s - *lse). s beyond t is set to 0. */
float knob_attn_softmax_row(float *s, int t, int n8, float scale, const float *lse, int isa);
void knob_attention_flash_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH);
void knob_attention_flash_backward(float *dqkv, const float *dout, const float *qkv, const float *lse, int B, int T,
                                   int C, int NH, int fresh);   /* fresh: write dqkv, not add */
/* One block of R queries q (R, HS) at positions t0.. against keys k and values v (n, HS), causal
 * (row i sees keys [0, t0 + i]; t0 + R <= n): s (R, n) = softmax(scale q k^T) (0 beyond the
 * visible keys), o (R, HS) = s v. Shared by the training op and the KV-cache inference. */
void knob_attention_block(float *o, float *s, const float *q, const float *k, const float *v, int R, int n,
                          int t0, int HS, float scale);

/* Column sums (src/kernels/nn.c), a bias's gradient: gb[c] (+)= sum over n_rows rows of nb floats
 * of dy[r][c] (of -dy when neg), every column, rows in order (fresh: from 0, not gb); threaded
 * over blocks of columns, the same bits for any thread count. */
void   knob_colsum(float *gb, const float *dy, long n_rows, size_t nb, int fresh, int neg);

/* Row math of a transformer (src/kernels/nn.c), shared by the training ops and src/models/lm.c.
 * LayerNorm over rows of C (eps 1e-5): out (N, C), stats (N, 2) = mean, rstd per row (NULL: not
 * kept); backward accumulates into dx (N, C), dw (C), db (C), each of which may be NULL; _fresh
 * writes dx (0 + its gradient: the bits of adding into zeros) instead of reading it. scratch:
 * knob_layernorm_scratch(N, C) floats for the row blocks' sums of dw and db (NULL when both are). */
void   knob_layernorm_forward(float *out, float *stats, const float *x, const float *w, const float *b,
                              long N, int C);
size_t knob_layernorm_scratch(long N, int C);
void   knob_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, const float *stats, float *scratch, long N, int C);
void   knob_layernorm_backward_fresh(float *dx, float *dw, float *db, const float *dy, const float *x,
                                     const float *w, const float *stats, float *scratch, long N, int C);
/* GELU, tanh form, computed through one expf (accurate for x below -3): y (n) = gelu(x); backward
 * dx += dy gelu'(x) (_fresh: dx = 0 + dy gelu'(x), not read). knob_gelu1 and knob_gelu1_grad are the
 * same for one value. */
void   knob_gelu_forward(float *y, const float *x, long n);
void   knob_gelu_backward(float *dx, const float *dy, const float *x, long n);
void   knob_gelu_backward_fresh(float *dx, const float *dy, const float *x, long n);
float  knob_gelu1(float x);
float  knob_gelu1_grad(float x);
/* One row of n values, max subtracted and the exponentials summed in double. knob_softmax_row
 * writes y = softmax(x) and returns -log y[target] (exact even when y underflows; 0 when target is
 * outside [0, n)). knob_nll_row is that loss alone, knob_logsumexp_row log sum e^x. Backward adds
 * into dx (n) from y (the forward output) and dy. */
/* Fused softmax cross-entropy for training (src/kernels/nn.c): knob_ce_row_lse returns
 * log sum_j e^(x_j) of a row of V logits in one pass (the loss of target t is that minus x[t]);
 * knob_ce_row_backward adds s (softmax(x) - onehot(target)) to dx from x and that lse. isa:
 * knob_kernel_isa(). */
double knob_ce_row_lse(const float *x, size_t V, int isa);
/* y (n) = e^x (n) with knob's own exp (nn.c: <= 1.21 ulp portable, 0.93 ulp AVX2, vs double exp) */
void   knob_vexp(float *y, const float *x, long n, int isa);
void   knob_ce_row_backward(float *dx, const float *x, size_t V, float lse, int target, float s, int isa);
double knob_softmax_row(float *y, const float *x, size_t n, int target);
void   knob_log_softmax_row(float *y, const float *x, size_t n);
double knob_logsumexp_row(const float *x, size_t n);
double knob_nll_row(const float *x, size_t n, int target);
void   knob_softmax_row_backward(float *dx, const float *y, const float *dy, size_t n);
void   knob_log_softmax_row_backward(float *dx, const float *y, const float *dy, size_t n);

/* Weights for inference and the products of a decode step (src/kernels/matvec.c). A knob_wmat is a
 * matrix W (N, K) stored as f32 (the caller's floats, borrowed), bf16 (rounded to nearest even) or
 * q8 (blocks of KNOB_Q8_BLOCK weights: int8 q and one f32 scale d, w ~ d q, rows zero-padded to KB
 * whole blocks). knob_wmat_init converts f (N, K) once (f32: borrows it); knob_wmat_free frees
 * what init allocated. knob_wmat_rows decodes rows [r0, r0 + n) to f32 into out (n, K). */
enum { KNOB_Q8_BLOCK = 32 };
typedef enum { KNOB_W_F32 = 0, KNOB_W_BF16 = 1, KNOB_W_Q8 = 2 } knob_wtype;
typedef struct knob_wmat {
    knob_wtype type;
    int N, K, KB;
    const float *f;   // (N, K) f32
    uint16_t *h;      // (N, K) bf16
    int8_t *q;        // (N, KB * 32) q8
    float *d;         // (N, KB) q8 scales
} knob_wmat;
knob_status knob_wmat_init(knob_wmat *W, const float *f, int N, int K, knob_wtype type, knob_err *err);
void        knob_wmat_free(knob_wmat *W);
size_t      knob_wmat_bytes(const knob_wmat *W);   /* bytes one pass over W reads */
void        knob_wmat_rows(const knob_wmat *W, int r0, int n, float *out);
/* q (KB * 32), d (KB) = blocks of 32 of x (K), d = max|x| / 127 per block, zero-padded */
void        knob_q8_quantize(int8_t *q, float *d, const float *x, int K);
/* y (n, N) = x (n, K) @ W^T + b (b (N) may be NULL), reading W once for all n rows; scratch of
 * knob_matvec_scratch(W, n) bytes (0 but for q8 with quantised activations). Rows of W are split
 * over threads in chunks; bits do not depend on the thread count. */
size_t      knob_matvec_scratch(const knob_wmat *W, int n);
void        knob_matvec(float *y, const float *x, const knob_wmat *W, const float *b, int n, void *scratch);
/* The same for many rows: panels of W converted to f32 and knob_gemm; scratch of
 * knob_wmat_gemm_scratch(W, n) bytes (0 for f32). */
size_t      knob_wmat_gemm_scratch(const knob_wmat *W, int n);
void        knob_wmat_gemm(float *y, const float *x, const knob_wmat *W, const float *b, int n, void *scratch);
/* Tests and benchmarks: the portable kernels instead of AVX2 + FMA; the kernel's name; whether q8
 * products quantise x per block too (1, the default) or keep it in f32 (0). Not thread-safe to flip
 * while a product runs. */
void        knob_matvec_force_portable(int on);
const char *knob_matvec_kernel_for(knob_wtype type);   /* the kernel products over W of this type run now */
void        knob_matvec_set_q8_act(int on);
int         knob_matvec_q8_act(void);

/* ------------------------------------------------------------------------------------------------
 * Text (src/text): GPT-2 byte-level BPE behind knob_tokenizer, and what the trainer shares. */

typedef struct knob_bpe knob_bpe;
knob_status knob_bpe_load(knob_bpe **b, const char *encoder_json, const char *vocab_bpe, knob_err *err);
void        knob_bpe_free(knob_bpe *b);
uint64_t    knob_bpe_fingerprint(const knob_bpe *b);   /* a hash of its pieces and merges */
int         knob_bpe_vocab_size(const knob_bpe *b);
int         knob_bpe_eot(const knob_bpe *b);
const char *knob_bpe_piece(const knob_bpe *b, int id, size_t *len);
knob_status knob_bpe_encode(const knob_bpe *b, const char *text, size_t n, int allow_special,
                            int32_t **ids, size_t *n_ids, knob_err *err);
/* GPT-2's printable alphabet: byte -> code point, and back (-1 for a code point outside it) */
int         knob_bpe_byte_to_cp(int byte);
int         knob_bpe_cp_to_byte(uint32_t cp);
/* GPT-2's pre-tokenizer: calls fn for each pre-token of text in order: every match of the pattern,
 * and every run of invalid UTF-8 bytes between matches, so the spans cover text exactly. */
typedef knob_status (*knob_pretok_fn)(const char *s, size_t n, void *ctx, knob_err *err);
knob_status knob_pretok_split(const char *text, size_t n, knob_pretok_fn fn, void *ctx, knob_err *err);
/* A tokenizer over a table of pieces (id i = bytes[off[i] .. off[i+1])); takes ownership of the
 * knob_malloc'd bytes and off (n + 1 entries), also on failure. kind: byte or pieces. */
knob_status knob_tok_new_pieces(knob_tokenizer **t, knob_tok_kind kind, int n, unsigned char *bytes,
                                size_t *off, int eot, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * Training pieces (src/train/step.c, src/train/checkpoint.c), shared by every family's trainer
 * (src/models/fit.c, vision_train.c, gpt_train.c). */

typedef struct cJSON knob_json;   /* as in the JSON section below */

/* Fills the graph's inputs for micro-batch (or evaluation batch) i. For evaluation, *rows is set
 * to the rows of the batch that count (the rest is padding). */
typedef knob_status (*knob_fill_fn)(void *ctx, int i, int *rows, knob_err *err);

/* One optimizer step: zero the grads; for each of accum micro-batches fill, forward, check the
 * loss is finite, backward (grads accumulate); scale the grads by 1/accum; clip the global norm
 * (clip 0: measure only) and check it is finite, naming the first tensor whose gradient is not;
 * the optimizer step at lr. Allocates nothing. last_finite / last_finite_step (start them at NAN
 * and -1) feed the message "step 812: loss is nan (last finite 2.31 at step 811); try a lower --lr".
 * skip_nonfinite: such a step returns KNOB_OK with out->skipped set and no optimizer update; every
 * micro-batch is still filled and run forward, so the data and dropout RNGs advance as in a good
 * step and a run with skips stays deterministic. */
typedef struct knob_step {
    knob_graph *g;
    knob_node *loss;           /* scalar, the mean over the micro-batch */
    knob_params *P;
    knob_optim *opt;
    int accum;                 /* micro-batches per step, >= 1 */
    float clip;                /* global gradient-norm limit; 0: none */
    knob_fill_fn fill;         /* NULL: the inputs are already filled (accum 1) */
    void *ctx;
    double last_finite;
    long last_finite_step;
    int skip_nonfinite;        /* skip a step with a non-finite loss or gradient instead of failing */
    /* data parallelism (src/train/dist.c): NULL alone. With dist, every rank's summed micro-batch
     * gradients are added across ranks in rank order after backward and scaled by 1/(accum N);
     * with shard (ZeRO-1) only this rank's slice is summed, clipped by the global norm and
     * stepped by opt (an optimizer over that slice, knob_params_slice), then the updated slices
     * are gathered. */
    struct knob_dist_comm *dist;
    int shard;
    /* with dist: the dropout generator every rank advances alike (the one checkpoints save); each
     * step seeds this rank's graph generator from its next draw and the rank, so the ranks' masks
     * are independent and a resume with the same N gives the same bits. NULL: the graph's own. */
    knob_rng *dropout;
} knob_step;

typedef struct knob_step_result {
    double loss;               /* mean over the micro-batches (a skipped step: the bad value) */
    float grad_norm;           /* before clipping */
    int skipped;               /* skip_nonfinite: the step was not applied */
} knob_step_result;

/* step: the 1-based number of this step, for messages. */
knob_status knob_step_run(knob_step *s, long step, float lr, knob_step_result *out, knob_err *err);
/* Test hook (tests only, never the CLI): from now on the step numbered step (0: none) is poisoned,
 * its loss made nan after the first micro-batch's forward (tensor NULL) or, after backward, the
 * last gradient element of the parameter named tensor (a string the caller keeps). */
void knob_step_fault_at(long step, const char *tensor);

/* Evaluation over n_batches batches from fill: the mean of a scalar loss node over the batches
 * (batches weighted equally), or, with logits (B, K) and targets (B) that fill writes, the mean
 * cross-entropy per counted row, the accuracy and (pred, one per counted row, or NULL) the argmax. */
typedef struct knob_eval {
    knob_graph *g;
    knob_node *loss;           /* or NULL: from logits and targets */
    knob_node *logits;         /* (B, K) or NULL */
    const int32_t *targets;    /* (B) or NULL */
    int n_batches;
    knob_fill_fn fill;
    void *ctx;
} knob_eval;

typedef struct knob_eval_stats {
    long n, correct;           /* rows counted, argmax == target */
    double loss, accuracy;     /* NaN when nothing was counted (accuracy: without targets) */
} knob_eval_stats;

knob_status knob_eval_run(const knob_eval *e, knob_eval_stats *out, int32_t *pred, knob_err *err);

/* The one checkpoint (see checkpoint.c for the layout). The family names itself, passes its model
 * config as JSON text and its training config (and any state of its own) as JSON objects. */
typedef struct knob_ckpt_rng { const char *name; knob_rng *rng; } knob_ckpt_rng;
#define KNOB_CKPT_MAX_RNG 4
typedef struct knob_ckpt {
    const char *family;        /* "gpt", "classifier": metadata knob.model */
    const char *config;        /* metadata "<family>.config" */
    const knob_params *P;
    const knob_optim *opt;     /* NULL: no moments */
    long step;
    int n_rng;
    knob_ckpt_rng rng[KNOB_CKPT_MAX_RNG];
    const knob_json *train;    /* the training config */
    const knob_json *state;    /* or NULL */
    const knob_kv *extra;      /* more metadata strings, e.g. a GPT's "tokenizer" */
    int n_extra;
} knob_ckpt;
knob_status knob_ckpt_save(const char *path, const knob_ckpt *c, knob_err *err);

/* Checkpoints written off the training step's critical path: one background thread per writer.
 * knob_ckpt_writer_new allocates, once, room for a copy of P's values and of the moments
 * (n_moments 0..2). knob_ckpt_writer_save first waits for the previous write (and returns its error
 * if it failed: nothing new is started then), then copies c's values, moments, step and RNG states
 * into that room, builds the file's header on this thread, and hands the write to the writer
 * (exclusive temp file, fsync, rename, fsync of the folder, as knob_st_save), each of paths[0..n)
 * in turn from the one copy; it returns as soon as the write has started. knob_ckpt_writer_wait
 * waits for it and returns its status, err holding its one-line message. Every knob_malloc and
 * knob_free happens on the caller's thread (the writer only writes). Without a thread (it could not
 * start) the write happens inside knob_ckpt_writer_save. _free waits first; NULL is a no-op. */
typedef struct knob_ckpt_writer knob_ckpt_writer;
knob_ckpt_writer *knob_ckpt_writer_new(const knob_params *P, int n_moments, knob_err *err);
knob_status knob_ckpt_writer_save(knob_ckpt_writer *w, const char *const *paths, int n_paths, const knob_ckpt *c,
                                  knob_err *err);
knob_status knob_ckpt_writer_wait(knob_ckpt_writer *w, knob_err *err);
void        knob_ckpt_writer_free(knob_ckpt_writer *w);

/* An open checkpoint. tree is NULL for a model file without training state (it loads but cannot
 * resume); older encodings are converted on open (legacy 1). */
typedef struct knob_ckpt_file {
    knob_st st;
    const char *family, *config;
    knob_json *tree;           /* the knob.train object */
    const knob_json *train, *state;   /* its "config" and "state", or NULL */
    long step, optim_step;
    int legacy;
    char *owned_config;
} knob_ckpt_file;
/* family: the one expected; another one, or a file that is no knob checkpoint, is an error. */
knob_status knob_ckpt_open(knob_ckpt_file *f, const char *path, const char *family, knob_err *err);
void        knob_ckpt_close(knob_ckpt_file *f);
knob_status knob_ckpt_need_state(const knob_ckpt_file *f, knob_err *err);   /* error unless resumable */
/* P's tensors, each named prefix + name ("" for the values, "optim.m." / "optim.v." for the
 * moments), into out (P->n_elems) in P's order; shapes must match. */
knob_status knob_ckpt_read(const knob_ckpt_file *f, const knob_params *P, const char *prefix, float *out, knob_err *err);
knob_status knob_ckpt_read_rng(const knob_ckpt_file *f, const char *name, knob_rng *r, knob_err *err);
/* JSON pieces: an RNG state as the file stores it; key=value text <-> a flat object (classifier
 * training configs, whose text form predates the JSON). */
knob_json  *knob_ckpt_rng_json(const knob_rng *r);
knob_json  *knob_ckpt_kv_to_json(const char *text);
char       *knob_ckpt_json_to_kv(const knob_json *o);

/* ------------------------------------------------------------------------------------------------
 * Hashing (core/hash.c), for hash tables and cache keys */
#define KNOB_FNV_SEED 0xcbf29ce484222325ull
uint64_t knob_fnv1a(uint64_t h, const void *p, size_t n);   /* FNV-1a over n bytes, continuing h */
uint64_t knob_hash_bytes(const void *p, size_t n);          /* FNV-1a from the seed, high bits folded in */
uint64_t knob_hash_u64(uint64_t x);                         /* murmur3 fmix64 */

/* ------------------------------------------------------------------------------------------------
 * UTF-8 (core/utf8.c; the strict decoder and encoder are public, in knob.h) */
/* Bytes of the UTF-8 sequence at s (n > 0 bytes left), judged by the lead byte and the continuation
 * bytes only: 1 for an invalid or cut sequence, so a loop over it always advances. 0 when n is 0. */
size_t knob_utf8_len(const unsigned char *s, size_t n);

/* knob_st_save in two halves (io/safetensors.c), for a writer thread: the header (knob_malloc'd into
 * *hdr, built on the caller's thread) and the atomic write of header and tensors (no knob_malloc). */
knob_status knob_st_header(const char *path, const knob_tensor *const *t, int n, const knob_kv *meta, int n_meta,
                           unsigned char **hdr, size_t *hdr_len, knob_err *err);
knob_status knob_st_write(const char *path, const unsigned char *hdr, size_t hdr_len, const knob_tensor *const *t,
                          int n, knob_err *err);

/* The name of the n-th temp file knob_atomic_open tries for path in process pid (tests plant files
 * there): PATH.tmp.<host>-<pid namespace>.<pid>.<n>. */
void knob_atomic_tmp_name(char *buf, size_t size, const char *path, long pid, int n);

/* Small helpers (core/util.c): knob_strdup, knob_strndup, knob_err_prefix and knob_now are public
 * (knob.h), since the CLI uses them too. */

/* ------------------------------------------------------------------------------------------------
 * JSON (core/json.c): cJSON behind one file, knob's allocator installed once. A knob_json is a
 * cJSON node; only json.c looks inside it. */
typedef struct cJSON knob_json;
#define KNOB_JSON_MAX_BYTES ((size_t)1 << 30)   /* a parse refuses longer text */
#define KNOB_JSON_MAX_DEPTH 64                  /* ... and deeper nesting of [ and { */
/* Parses text[0, n); *end (may be NULL) gets the offset just past the value (trailing bytes are
 * the caller's business). Errors name `what`: "<what>: malformed JSON near byte N", or NOMEM. */
knob_status knob_json_parse(knob_json **out, const char *text, size_t n, size_t *end, const char *what,
                            knob_err *err);
/* The same for a NUL-terminated string, with nothing but whitespace allowed after the value. */
knob_status knob_json_parse_str(knob_json **out, const char *text, const char *what, knob_err *err);
void        knob_json_free(knob_json *j);
int knob_json_is_object(const knob_json *j);
int knob_json_is_array(const knob_json *j);
int knob_json_is_string(const knob_json *j);
int knob_json_is_number(const knob_json *j);
int knob_json_is_null(const knob_json *j);
int knob_json_is_bool(const knob_json *j);
int knob_json_is_true(const knob_json *j);
const knob_json *knob_json_get(const knob_json *obj, const char *key);   /* NULL: absent or not an object */
const knob_json *knob_json_child(const knob_json *j);                    /* first member or element */
const knob_json *knob_json_next(const knob_json *j);
const char *knob_json_key(const knob_json *j);                           /* a member's key */
int         knob_json_size(const knob_json *j);                          /* members or elements */
double      knob_json_number(const knob_json *j);                        /* NAN unless a number */
const char *knob_json_string(const knob_json *j);                        /* NULL unless a string */
int         knob_json_as_long(const knob_json *j, long lo, long hi, long *out);   /* 1: an integer in [lo, hi] */
/* Typed getters: a missing key is an error only when required (out is then left as it was); a
 * wrong type or range is "<what>: '<key>' must be ...". */
knob_status knob_json_get_long(const knob_json *obj, const char *key, long lo, long hi, int required, long *out,
                               const char *what, knob_err *err);
knob_status knob_json_get_int(const knob_json *obj, const char *key, int lo, int hi, int required, int *out,
                              const char *what, knob_err *err);
knob_status knob_json_get_double(const knob_json *obj, const char *key, int required, double *out,
                                 const char *what, knob_err *err);
knob_status knob_json_get_string(const knob_json *obj, const char *key, int required, const char **out,
                                 const char *what, knob_err *err);
/* Builders: NULL / 0 when an allocation fails; add and push take ownership of item (freed on
 * failure) and fail on a NULL item or container, so a chain of adds needs one check. A
 * non-finite number is written as null. */
knob_json *knob_json_new_object(void);
knob_json *knob_json_new_array(void);
knob_json *knob_json_new_number(double v);
knob_json *knob_json_new_string(const char *s);
knob_json *knob_json_new_null(void);
knob_json *knob_json_new_bool(int v);
int   knob_json_add(knob_json *obj, const char *key, knob_json *item);
int   knob_json_push(knob_json *arr, knob_json *item);
int   knob_json_add_number(knob_json *obj, const char *key, double v);
int   knob_json_add_string(knob_json *obj, const char *key, const char *s);
char *knob_json_print(const knob_json *j);   /* one line, knob_malloc'd (knob_free it); NULL: no memory */

/* ------------------------------------------------------------------------------------------------
 * Data parallelism (src/train/dist.c); alone (knob_dist_size() 1) every function here is a no-op.
 * Each collective must be called by every rank in the same order; step (or -1) names the step
 * in messages. A wait longer than KNOB_DIST_TIMEOUT fails naming the silent rank. */
typedef struct knob_dist_comm knob_dist_comm;
int         knob_dist_active(void);          /* MPI is running with more than one rank */
void        knob_dist_agree(void);           /* the error being returned was reached by every rank */
/* rank's slice [lo, hi) of an n-float block: rank r owns floor(n r / N) .. floor(n (r+1) / N) */
void        knob_dist_slice(size_t n, int rank, size_t *lo, size_t *hi);
/* The buffers for one n-float block's sums; *out NULL alone. */
knob_status knob_dist_comm_new(knob_dist_comm **out, size_t n, knob_err *err);
void        knob_dist_comm_free(knob_dist_comm *c);
size_t      knob_dist_comm_bytes(const knob_dist_comm *c);
/* x (n): this rank's slice becomes the sum of every rank's x over it, added in rank order */
knob_status knob_dist_reduce_scatter(knob_dist_comm *c, float *x, long step, knob_err *err);
/* x (n): every other rank's slice is overwritten by its owner's */
knob_status knob_dist_allgather(knob_dist_comm *c, float *x, long step, knob_err *err);
/* both: every rank ends with the same rank-ordered sum */
knob_status knob_dist_allreduce(knob_dist_comm *c, float *x, long step, knob_err *err);
/* rank 0's full (n) gets every rank's slice (this rank's: slice); the others only send */
knob_status knob_dist_gather(knob_dist_comm *c, const float *slice, float *full, long step, knob_err *err);
/* v (n <= 16): the sum over ranks in rank order, on every rank; all (N x n): every rank's v */
knob_status knob_dist_sum_f64(double *v, int n, long step, knob_err *err);
knob_status knob_dist_gather_f64(const double *v, int n, double *all, long step, knob_err *err);
/* Fails on every rank, agreed, when some rank's bytes hash differently from rank 0's:
 * "rank 2 and rank 0 differ in their model settings; ..." (what: "model settings"). */
knob_status knob_dist_check_same(const char *what, const void *bytes, size_t len, knob_err *err);
/* A view of P's floats [lo, hi): tensors cut to the range (same decay flags), data and grad
 * pointing into P, for an optimizer over one rank's slice. Free with knob_params_slice_free. */
knob_status knob_params_slice(knob_params *view, const knob_params *P, size_t lo, size_t hi, knob_err *err);
void        knob_params_slice_free(knob_params *view);

/* ------------------------------------------------------------------------------------------------
 * Serving (src/serve/): what http.c, openai.c and sched.c share. http.c calls the other two;
 * of openai.c (the wire format: parsing requests, writing responses), sched.c (slots, queue, the
 * batched decode loop) calls only knob_serve_req_free. */
#define KNOB_SERVE_MAX_STOP 5    /* 4 from the request, and the chat template's own */
#define KNOB_SERVE_MAX_TOP  20   /* top_logprobs */
typedef struct knob_serve_tok {  /* one sampled token, for logprobs */
    int32_t id;
    float logprob;               /* log softmax of the raw logits (temperature 1, nothing cut) */
    size_t offset;               /* where its text starts in the completion */
    int n_top;
    int32_t top_id[KNOB_SERVE_MAX_TOP];
    float top_lp[KNOB_SERVE_MAX_TOP];
} knob_serve_tok;
typedef struct knob_serve_req {
    /* the request, as openai.c parsed it (read-only once submitted) */
    int chat, stream, echo, include_usage;
    int32_t *prompt;             /* (n_prompt) ids fed before generating */
    size_t n_prompt;
    char *prompt_text;           /* the completion prompt's text, for echo */
    int max_tokens;              /* already cut to the context */
    knob_sampler sampler;
    uint64_t seed;
    char *stop[KNOB_SERVE_MAX_STOP];
    int n_stop;
    int logprobs;                /* chat: logprobs true; completions: logprobs N > 0 (then top = N) */
    int n_top;                   /* top alternatives per token, 0..20 */
    long created;
    /* what the scheduler writes, under its lock; the reader keeps its own cursors */
    char *text;                  /* the completion so far, NUL-terminated */
    size_t text_len, text_cap;
    size_t final_len;            /* text[0, final_len) will not change */
    knob_serve_tok *toks;
    int n_toks, cap_toks;
    int final_toks;              /* toks[0, final_toks) will not change */
    int n_completion;            /* tokens sampled (eot not counted) */
    int done;                    /* finished (or failed) */
    const char *finish;          /* "stop", "length" */
    int err_status;              /* non-zero: failed with this HTTP status and err_msg */
    char err_msg[512];
    int cancelled;               /* the client went away */
    int refs;                    /* the HTTP side and the scheduler; the last one frees */
    double t_submit, t_first;    /* knob_now() at submission and at the first token */
} knob_serve_req;
void knob_serve_req_free(knob_serve_req *r);

/* openai.c: the wire format. Each returns an HTTP status (200 on success) and, on failure, the
 * message in err (the caller writes it with knob_serve_error_json). */
typedef struct knob_serve_opts {
    const knob_lm *lm;
    const char *model_id;
    int ctx;                     /* tokens a request may use */
} knob_serve_opts;
int   knob_serve_parse(const knob_serve_opts *o, int chat, const char *body, size_t n, knob_serve_req **out,
                       knob_err *err);
int   knob_serve_tokenize(const knob_serve_opts *o, const char *body, size_t n, char **json, knob_err *err);
int   knob_serve_detokenize(const knob_serve_opts *o, const char *body, size_t n, char **json, knob_err *err);
char *knob_serve_models_json(const knob_serve_opts *o);   /* /v1/models */
char *knob_serve_model_json(const knob_serve_opts *o);    /* /v1/models/ID */
/* The whole response of a finished request (r->done, no error). */
char *knob_serve_response_json(const knob_serve_opts *o, const knob_serve_req *r, const char *id);
/* Server-sent events: the chunks for text[from_text, r->final_len) and toks[from_tok,
 * r->final_toks) ("" when nothing is new), and, once r->done, the final chunk, the usage chunk
 * when asked for and "data: [DONE]". knob_malloc'd; NULL: no memory. */
char *knob_serve_chunks(const knob_serve_opts *o, const knob_serve_req *r, const char *id, size_t from_text,
                        int from_tok, int first);
/* {"error": {"message", "type", "param", "code"}} for an HTTP status */
char *knob_serve_error_json(int status, const char *msg);
/* s[0, n) with every byte that is not part of a valid UTF-8 character replaced by U+FFFD;
 * knob_malloc'd, NUL-terminated. */
char *knob_serve_utf8_clean(const char *s, size_t n);

/* sched.c: the slots and the decode loop (one thread owns the lm). */
typedef struct knob_serve_sched knob_serve_sched;
typedef struct knob_serve_stats {
    uint64_t requests, rejected, prompt_tokens, completion_tokens, decode_steps, decode_rows;
    double busy_seconds;         /* time spent in prefill, sampling and decode */
    int queued, active, slots;
} knob_serve_stats;
knob_status knob_serve_sched_new(knob_serve_sched **s, knob_lm *lm, int parallel, int queue, knob_err *err);
/* Answers the waiting with 503, ends the running (finish "length"), joins the thread, frees. */
void knob_serve_sched_stop(knob_serve_sched *s);
void knob_serve_sched_free(knob_serve_sched *s);
/* Queues r (r->refs becomes 2). Returns 200, or 503 (queue full, or stopping) with r untouched. */
int  knob_serve_sched_submit(knob_serve_sched *s, knob_serve_req *r, knob_err *err);
/* The HTTP side is done with r: cancels it if still running; frees it when the scheduler is too. */
void knob_serve_sched_release(knob_serve_sched *s, knob_serve_req *r);
/* The reader's side: read r's output fields between lock and unlock; wait (lock held) sleeps
 * until the scheduler has written something, or seconds pass. */
void knob_serve_sched_lock(knob_serve_sched *s);
void knob_serve_sched_unlock(knob_serve_sched *s);
void knob_serve_sched_wait(knob_serve_sched *s, double seconds);
void knob_serve_sched_stats(knob_serve_sched *s, knob_serve_stats *st);

/* The chat page (src/serve/page.html), embedded by the Makefile */
extern const unsigned char knob_serve_page[];
extern const size_t knob_serve_page_len;

#endif /* KNOB_INTERNAL_H */
