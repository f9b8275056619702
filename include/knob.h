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

/* ------------------------------------------------------------------------------------------------
 * Errors */

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

/* ------------------------------------------------------------------------------------------------
 * Allocation: every allocation of the library goes through these, so tests can count and fail them. */

void *knob_malloc(size_t bytes);
void *knob_calloc(size_t n, size_t size);
void *knob_realloc(void *p, size_t bytes);
void  knob_free(void *p);
/* Test hook: the n-th allocation from now (1 = the next one) returns NULL; n <= 0 disables. */
void  knob_alloc_fail_at(long n);
/* Number of allocations made so far (malloc, calloc and realloc calls). */
long  knob_alloc_count(void);

/* ------------------------------------------------------------------------------------------------
 * Arena: one allocation, carved into aligned pieces; freed all at once. */

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
 * Random numbers: xoshiro256** seeded through splitmix64; same seed, same stream on every machine. */

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
 * Threads: OpenMP. n <= 0 picks KNOB_THREADS from the environment, else all cores. */

void knob_threads_set(int n);
int  knob_threads_get(void);

/* ------------------------------------------------------------------------------------------------
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

/* ------------------------------------------------------------------------------------------------
 * Parameters: a model's named tensors, values in one contiguous block and grads in another, so the
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
 * Initializers (fan_in, fan_out from the shape: (out, in) for matrices, (OC, C, KH, KW) for conv). */

void knob_init_const(knob_tensor *t, float v);
void knob_init_normal(knob_tensor *t, float std, knob_rng *r);
void knob_init_uniform(knob_tensor *t, float lo, float hi, knob_rng *r);
void knob_init_xavier(knob_tensor *t, knob_rng *r);     /* uniform, limit sqrt(6 / (fan_in + fan_out)) */
void knob_init_kaiming(knob_tensor *t, knob_rng *r);    /* normal, std sqrt(2 / fan_in) (ReLU gain) */
void knob_fan(const knob_tensor *t, int *fan_in, int *fan_out);

/* ------------------------------------------------------------------------------------------------
 * Computation graph with reverse-mode autodiff.
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
 * Optimizers, clipping, schedules */

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
 * Files */

/* Atomic write: write to a temp file beside path, then knob_atomic_commit fsyncs and renames it over
 * path; knob_atomic_abort removes the temp file and leaves path as it was. */
typedef struct knob_atomic {
    FILE *f;
    char path[4096];
    char tmp[4096];
} knob_atomic;

knob_status knob_atomic_open(knob_atomic *a, const char *path, knob_err *err);
knob_status knob_atomic_commit(knob_atomic *a, knob_err *err);   /* checks every earlier write too */
void        knob_atomic_abort(knob_atomic *a);
/* Reads a whole file into a knob_malloc'd buffer (NUL-terminated, *len excludes it). */
knob_status knob_read_file(const char *path, unsigned char **out, size_t *len, knob_err *err);
/* mkdir -p */
knob_status knob_mkdirs(const char *dir, knob_err *err);
/* The folder that scripts/setup.sh fills (digits, GPT-2 tokenizer files): $KNOB_DATA when set, else
 * the data/ folder of the checkout the running knob binary was built in (found from
 * /proc/self/exe: <repo>/build/knob -> <repo>/data), else "data". Writes into buf (size n). */
const char *knob_data_dir(char *buf, size_t n);

/* safetensors: 8-byte little-endian header length, JSON header, raw little-endian data.
 * Saving writes F32 tensors and a __metadata__ map of strings; loading reads F32, F16 and BF16. */

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
 * SVG charts: plain-text plots written deterministically (fixed number formats), for loss curves
 * and fitted curves. A chart maps data coordinates into a pixel box of an SVG document. */

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
void knob_chart_legend(FILE *f, const knob_chart *c, int n, const char *const *labels,
                       const char *const *colors);
/* Picks a range [lo, hi] with a little margin around the finite values of v (both arrays). */
void knob_range(const double *v, int n, double *lo, double *hi);

/* ------------------------------------------------------------------------------------------------
 * The first model: the falling ball (knob fit).
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

#ifdef __cplusplus
}
#endif
#endif /* KNOB_H */
