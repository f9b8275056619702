/* knob_internal.h: what the src/ files share and the public header does not show: the node and
 * graph structs, the op table, kernel signatures, and the assert macro for programmer errors. */
#ifndef KNOB_INTERNAL_H
#define KNOB_INTERNAL_H

#include "knob.h"

#include <stdlib.h>

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

typedef enum {
    KNOB_OP_NONE = 0,   /* leaves: input, param */
    KNOB_OP_ADD, KNOB_OP_SUB, KNOB_OP_MUL, KNOB_OP_DIV, KNOB_OP_SCALE,
    KNOB_OP_EXP, KNOB_OP_LOG, KNOB_OP_SQRT, KNOB_OP_ABS,
    KNOB_OP_RELU, KNOB_OP_GELU, KNOB_OP_SIGMOID, KNOB_OP_TANH,
    KNOB_OP_MATMUL,
    KNOB_OP_SUM, KNOB_OP_MEAN,
    KNOB_OP_SOFTMAX, KNOB_OP_LOG_SOFTMAX, KNOB_OP_LAYERNORM,
    KNOB_OP_CROSS_ENTROPY, KNOB_OP_MSE, KNOB_OP_MAE,
    KNOB_OP_EMBEDDING, KNOB_OP_DROPOUT,
    KNOB_OP_CONV2D, KNOB_OP_MAXPOOL2D, KNOB_OP_AVGPOOL2D,
    KNOB_OP_RESHAPE, KNOB_OP_TRANSPOSE, KNOB_OP_PERMUTE, KNOB_OP_CONCAT, KNOB_OP_SLICE,
    KNOB_OP_ATTENTION,
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
};

typedef struct knob_op_def {
    const char *name;
    int n_in;                                            /* -1: variadic */
    knob_status (*shape)(knob_node *y, knob_err *err);   /* set y->t shape from inputs, or reject */
    size_t (*saved)(const knob_node *y);                 /* bytes forward keeps for backward */
    knob_status (*check)(const knob_node *y, knob_err *err); /* before forward: index ranges */
    void (*forward)(knob_node *y);                       /* y = f(inputs) */
    void (*backward)(knob_node *y);                      /* inputs' grads += J^T y->grad */
} knob_op_def;

extern const knob_op_def *const knob_ops[KNOB_OP_COUNT];

/* Op families, one file each under src/ops/ */
extern const knob_op_def knob_op_add, knob_op_sub, knob_op_mul, knob_op_div, knob_op_scale,
    knob_op_exp, knob_op_log, knob_op_sqrt, knob_op_abs, knob_op_relu, knob_op_gelu,
    knob_op_sigmoid, knob_op_tanh, knob_op_matmul, knob_op_sum, knob_op_mean, knob_op_softmax,
    knob_op_log_softmax, knob_op_layernorm, knob_op_cross_entropy, knob_op_mse, knob_op_mae,
    knob_op_embedding, knob_op_dropout, knob_op_conv2d, knob_op_maxpool2d, knob_op_avgpool2d,
    knob_op_reshape, knob_op_transpose, knob_op_permute, knob_op_concat, knob_op_slice,
    knob_op_attention;

/* Graph-side helpers for builders (src/graph/graph.c) */
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

/* C (M, N) = alpha * op(A) @ op(B) + beta * C; op(A) is (M, K), op(B) is (K, N).
 * A is stored (M, K) row-major, or (K, M) when ta; B is (K, N), or (N, K) when tb. */
void knob_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, const float *B,
               float beta, float *C);
/* Tests and benchmarks: 1 forces the portable C micro-kernel instead of the AVX2+FMA one; the name
 * of the kernel knob_gemm runs ("avx2+fma" or "portable"). */
void        knob_gemm_force_portable(int on);
const char *knob_gemm_kernel_name(void);
/* Reference triple loop in double accumulation, for tests. */
void knob_gemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A,
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
/* One block of R queries q (R, HS) at positions t0.. against keys k and values v (n, HS), causal
 * (row i sees keys [0, t0 + i]; t0 + R <= n): s (R, n) = softmax(scale q k^T) (0 beyond the
 * visible keys), o (R, HS) = s v. Shared by the training op and the KV-cache inference. */
void knob_attention_block(float *o, float *s, const float *q, const float *k, const float *v, int R, int n,
                          int t0, int HS, float scale);

/* Row math of a transformer (src/kernels/nn.c), shared by the training ops and src/models/lm.c.
 * LayerNorm over rows of C (eps 1e-5): out (N, C), stats (N, 2) = mean, rstd per row (NULL: not
 * kept); backward accumulates into dx (N, C), dw (C), db (C), each of which may be NULL. */
void   knob_layernorm_forward(float *out, float *stats, const float *x, const float *w, const float *b,
                              long N, int C);
void   knob_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, const float *stats, long N, int C);
/* GELU, tanh form, computed through one expf (accurate for x below -3): y (n) = gelu(x); backward
 * dx += dy gelu'(x). knob_gelu1 and knob_gelu1_grad are the same for one value. */
void   knob_gelu_forward(float *y, const float *x, long n);
void   knob_gelu_backward(float *dx, const float *dy, const float *x, long n);
float  knob_gelu1(float x);
float  knob_gelu1_grad(float x);
/* One row of n values, max subtracted and the exponentials summed in double. knob_softmax_row
 * writes y = softmax(x) and returns -log y[target] (exact even when y underflows; 0 when target is
 * outside [0, n)). knob_nll_row is that loss alone, knob_logsumexp_row log sum e^x. Backward adds
 * into dx (n) from y (the forward output) and dy. */
double knob_softmax_row(float *y, const float *x, size_t n, int target);
void   knob_log_softmax_row(float *y, const float *x, size_t n);
double knob_logsumexp_row(const float *x, size_t n);
double knob_nll_row(const float *x, size_t n, int target);
void   knob_softmax_row_backward(float *dx, const float *y, const float *dy, size_t n);
void   knob_log_softmax_row_backward(float *dx, const float *y, const float *dy, size_t n);

/* ------------------------------------------------------------------------------------------------
 * Text (src/text): GPT-2 byte-level BPE behind knob_tokenizer, and what the trainer shares. */

typedef struct knob_bpe knob_bpe;
knob_status knob_bpe_load(knob_bpe **b, const char *encoder_json, const char *vocab_bpe, knob_err *err);
void        knob_bpe_free(knob_bpe *b);
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
 * Hashing (core/hash.c), for hash tables and cache keys */
#define KNOB_FNV_SEED 0xcbf29ce484222325ull
uint64_t knob_fnv1a(uint64_t h, const void *p, size_t n);   /* FNV-1a over n bytes, continuing h */
uint64_t knob_hash_bytes(const void *p, size_t n);          /* FNV-1a from the seed, high bits folded in */
uint64_t knob_hash_u64(uint64_t x);                         /* murmur3 fmix64 */

/* ------------------------------------------------------------------------------------------------
 * Small helpers (core/util.c) */
char  *knob_strdup(const char *s);                 /* knob_malloc'd copy; NULL for NULL or no memory */
char  *knob_strndup(const char *s, size_t n);      /* the first n bytes, NUL-terminated */
double knob_now(void);                             /* monotonic clock, seconds */
/* Rewrites err->msg as "<prefix>: <old message>", keeping err->code; returns the code. */
knob_status knob_err_prefix(knob_err *err, const char *fmt, ...) KNOB_PRINTF(2, 3);

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

#endif /* KNOB_INTERNAL_H */
