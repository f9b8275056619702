/* elementwise.c: binary ops with numpy broadcasting (add, sub, mul, div), scale, and the unary
 * functions (exp, log, sqrt, abs, relu, gelu, sigmoid, tanh). Each op's math and derivative sit in
 * a comment above its forward; backward always accumulates (+=) into the inputs' grads.
 *
 * Broadcasting: shapes are aligned at the trailing dim and padded to 4 dims; a size-1 dim of an
 * input stretches to the output's size (stride 0). Equal shapes take a flat, threaded loop; so
 * does the bias case (b's dims are the output's trailing dims), whose backward sums each stretched
 * element of b over rows in row order, one thread per block of columns. Other broadcasts take a
 * serial loop in backward. Either way sums into a stretched element keep one order (same bits for
 * any thread count, and the bias path gives the same bits as the general loop). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

#define BIAS_COL_BLOCK 64   /* columns of a broadcast b per thread task in backward */

/* ------------------------------------------------------------------------------------------------
 * Broadcasting plan */

typedef struct {
    int n[4];          /* output dims, padded to 4 at the front */
    size_t sa[4], sb[4];   /* element strides of a and b over the output index (0 = stretched) */
} bcast;

static void pad4(const knob_tensor *t, int out[4])
{
    int pad = 4 - t->n_dims;
    for (int i = 0; i < 4; i++)
        out[i] = i < pad ? 1 : t->shape[i - pad];
}

static void strides_for(const knob_tensor *t, const int n[4], size_t s[4])
{
    int d[4];
    pad4(t, d);
    size_t acc = 1;
    for (int i = 3; i >= 0; i--) {
        s[i] = (d[i] == 1 && n[i] != 1) ? 0 : acc;
        acc *= (size_t)d[i];
    }
}

static void bcast_plan(const knob_node *y, bcast *p)
{
    pad4(&y->t, p->n);
    strides_for(&y->in[0]->t, p->n, p->sa);
    strides_for(&y->in[1]->t, p->n, p->sb);
}

static int same_shape(const knob_tensor *a, const knob_tensor *b)
{
    if (a->n_dims != b->n_dims)
        return 0;
    for (int i = 0; i < a->n_dims; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

/* The bias case: a has the output's shape and b's dims are the output's trailing dims (a bias (C)
 * over (N, C), a position table (T, C) over (B, T, C)). Returns b's element count nb, so that
 * output row r (nb elements) pairs a's row r with all of b; 0 when the shapes are anything else. */
static size_t bcast_suffix(const knob_node *y)
{
    const knob_tensor *a = &y->in[0]->t, *b = &y->in[1]->t;
    if (!same_shape(a, &y->t) || b->n_dims > a->n_dims)
        return 0;
    for (int i = 0; i < b->n_dims; i++)
        if (b->shape[i] != a->shape[a->n_dims - b->n_dims + i])
            return 0;
    return b->n_elems;
}

static knob_status binary_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *a = &y->in[0]->t, *b = &y->in[1]->t;
    if (a->dtype != KNOB_F32 || b->dtype != KNOB_F32)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: inputs must be float32", knob_op_name(y->op));
    int n = KNOB_MAX(a->n_dims, b->n_dims), shape[KNOB_MAX_DIMS];
    for (int i = 0; i < n; i++) {
        int da = i < n - a->n_dims ? 1 : a->shape[i - (n - a->n_dims)];
        int db = i < n - b->n_dims ? 1 : b->shape[i - (n - b->n_dims)];
        if (da != db && da != 1 && db != 1) {
            char sa[64], sb[64];
            return knob_fail(err, KNOB_ERR_SHAPE, "%s: cannot broadcast %s with %s (dim %d: %d vs %d)",
                             knob_op_name(y->op), knob_shape_str(sa, sizeof sa, a->n_dims, a->shape),
                             knob_shape_str(sb, sizeof sb, b->n_dims, b->shape), i, da, db);
        }
        shape[i] = KNOB_MAX(da, db);
    }
    knob_node_set_shape(y, n, shape);
    return KNOB_OK;
}

/* Visits every output element i with the offsets ia, ib of a and b, running the statements given. */
#define BCAST_LOOP(p, ...)                                                                    \
    do {                                                                                      \
        size_t i_ = 0;                                                                        \
        for (int i0 = 0; i0 < (p).n[0]; i0++)                                                 \
            for (int i1 = 0; i1 < (p).n[1]; i1++)                                             \
                for (int i2 = 0; i2 < (p).n[2]; i2++)                                         \
                    for (int i3 = 0; i3 < (p).n[3]; i3++, i_++) {                             \
                        size_t ia = i0 * (p).sa[0] + i1 * (p).sa[1] + i2 * (p).sa[2] +        \
                                    i3 * (p).sa[3];                                           \
                        size_t ib = i0 * (p).sb[0] + i1 * (p).sb[1] + i2 * (p).sb[2] +        \
                                    i3 * (p).sb[3];                                           \
                        size_t i = i_;                                                        \
                        __VA_ARGS__;                                                          \
                    }                                                                         \
    } while (0)

/* What a binary op's pool tasks need: the node, the length of b's rows in the bias case, and
 * whether a's and b's grads are fresh (knob_grad_fresh: written, not added to, by this pass). */
typedef struct {
    knob_node *y;
    size_t nb;
    int fa, fb;
} binary_task;

/* One binary op: forward expression F(a, b); partials DA(a, b, dy), DB(a, b, dy); COLSUM 1 when
 * DB is dy, -1 when it is -dy (knob_colsum then sums b's gradient), else 0. The loops run as pool
 * tasks (src/core/threads.c): elements, rows, or blocks of b's columns. */
#define BINARY_OP(name, F, DA, DB, COLSUM)                                                    \
    static void name##_fwd_same(void *ctx, long lo, long hi)                                  \
    {                                                                                         \
        const knob_node *y = ((binary_task *)ctx)->y;                                         \
        const float *A = y->in[0]->t.data, *B = y->in[1]->t.data;                             \
        float *Y = y->t.data;                                                                 \
        _Pragma("omp simd")                                                                   \
        for (long i = lo; i < hi; i++) {                                                      \
            float a = A[i], b = B[i];                                                         \
            Y[i] = (F);                                                                       \
        }                                                                                     \
    }                                                                                         \
    static void name##_fwd_rows(void *ctx, long lo, long hi)                                  \
    {                                                                                         \
        const knob_node *y = ((binary_task *)ctx)->y;                                         \
        size_t nb = ((binary_task *)ctx)->nb;                                                 \
        const float *A = y->in[0]->t.data, *B = y->in[1]->t.data;                             \
        float *Y = y->t.data;                                                                 \
        for (long r = lo; r < hi; r++)                                                        \
            _Pragma("omp simd")                                                               \
            for (size_t j = 0; j < nb; j++) {                                                 \
                size_t i = (size_t)r * nb + j;                                                \
                float a = A[i], b = B[j];                                                     \
                Y[i] = (F);                                                                   \
            }                                                                                 \
    }                                                                                         \
    static void name##_forward(knob_node *y)                                                  \
    {                                                                                         \
        const float *A = y->in[0]->t.data, *B = y->in[1]->t.data;                             \
        float *Y = y->t.data;                                                                 \
        binary_task task = {y, 0, 0, 0};                                                      \
        if (same_shape(&y->in[0]->t, &y->in[1]->t)) {                                         \
            knob_par_items((long)y->t.n_elems, 1.0, name##_fwd_same, &task);                  \
            return;                                                                           \
        }                                                                                     \
        size_t nb = bcast_suffix(y);                                                          \
        if (nb) {   /* bias: rows of a against b, threaded over rows */                       \
            task.nb = nb;                                                                     \
            knob_par_items((long)(y->t.n_elems / nb), (double)nb, name##_fwd_rows, &task);    \
            return;                                                                           \
        }                                                                                     \
        bcast p;                                                                              \
        bcast_plan(y, &p);                                                                    \
        BCAST_LOOP(p, {                                                                       \
            float a = A[ia], b = B[ib];                                                       \
            Y[i] = (F);                                                                       \
        });                                                                                   \
    }                                                                                         \
    static void name##_bwd_same_a(void *ctx, long lo, long hi)                                \
    {                                                                                         \
        const knob_node *y = ((binary_task *)ctx)->y;                                         \
        const float *A = y->in[0]->t.data, *B = y->in[1]->t.data, *DY = y->t.grad;            \
        float *GA = y->in[0]->t.grad;                                                         \
        if (((binary_task *)ctx)->fa) {   /* fresh: 0 + d, the bits of adding into zeros */     \
            _Pragma("omp simd")                                                               \
            for (long i = lo; i < hi; i++) {                                                  \
                float a = A[i], b = B[i], dy = DY[i];                                         \
                (void)a; (void)b;                                                             \
                GA[i] = 0.0f + (DA);                                                          \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        _Pragma("omp simd")                                                                   \
        for (long i = lo; i < hi; i++) {                                                      \
            float a = A[i], b = B[i], dy = DY[i];                                             \
            (void)a; (void)b;                                                                 \
            GA[i] += (DA);                                                                    \
        }                                                                                     \
    }                                                                                         \
    static void name##_bwd_same_b(void *ctx, long lo, long hi)                                \
    {                                                                                         \
        const knob_node *y = ((binary_task *)ctx)->y;                                         \
        const float *A = y->in[0]->t.data, *B = y->in[1]->t.data, *DY = y->t.grad;            \
        float *GB = y->in[1]->t.grad;                                                         \
        if (((binary_task *)ctx)->fb) {   /* fresh: 0 + d, the bits of adding into zeros */     \
            _Pragma("omp simd")                                                               \
            for (long i = lo; i < hi; i++) {                                                  \
                float a = A[i], b = B[i], dy = DY[i];                                         \
                (void)a; (void)b;                                                             \
                GB[i] = 0.0f + (DB);                                                          \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        _Pragma("omp simd")                                                                   \
        for (long i = lo; i < hi; i++) {                                                      \
            float a = A[i], b = B[i], dy = DY[i];                                             \
            (void)a; (void)b;                                                                 \
            GB[i] += (DB);                                                                    \
        }                                                                                     \
    }                                                                                         \
    static void name##_bwd_rows_a(void *ctx, long lo, long hi)                                \
    {                                                                                         \
        const knob_node *y = ((binary_task *)ctx)->y;                                         \
        size_t nb = ((binary_task *)ctx)->nb;                                                 \
        const float *A = y->in[0]->t.data, *B = y->in[1]->t.data, *DY = y->t.grad;            \
        float *GA = y->in[0]->t.grad;                                                         \
        if (((binary_task *)ctx)->fa) {                                                       \
            for (long r = lo; r < hi; r++)                                                    \
                _Pragma("omp simd")                                                           \
                for (size_t j = 0; j < nb; j++) {                                             \
                    size_t i = (size_t)r * nb + j;                                            \
                    float a = A[i], b = B[j], dy = DY[i];                                     \
                    (void)a; (void)b;                                                         \
                    GA[i] = 0.0f + (DA);                                                      \
                }                                                                             \
            return;                                                                           \
        }                                                                                     \
        for (long r = lo; r < hi; r++)                                                        \
            _Pragma("omp simd")                                                               \
            for (size_t j = 0; j < nb; j++) {                                                 \
                size_t i = (size_t)r * nb + j;                                                \
                float a = A[i], b = B[j], dy = DY[i];                                         \
                (void)a; (void)b;                                                             \
                GA[i] += (DA);                                                                \
            }                                                                                 \
    }                                                                                         \
    static void name##_bwd_cols_b(void *ctx, long lo, long hi)                                \
    {                                                                                         \
        const knob_node *y = ((binary_task *)ctx)->y;                                         \
        size_t nb = ((binary_task *)ctx)->nb;                                                 \
        const float *A = y->in[0]->t.data, *B = y->in[1]->t.data, *DY = y->t.grad;            \
        float *GB = y->in[1]->t.grad;                                                         \
        long n_rows = (long)(y->t.n_elems / nb);                                              \
        for (long blk = lo; blk < hi; blk++) {                                                \
            size_t j0 = (size_t)blk * BIAS_COL_BLOCK;                                         \
            size_t j1 = KNOB_MIN(nb, j0 + BIAS_COL_BLOCK);                                    \
            if (((binary_task *)ctx)->fb)                                                     \
                for (size_t j = j0; j < j1; j++)                                              \
                    GB[j] = 0.0f;                                                             \
            for (long r = 0; r < n_rows; r++)                                                 \
                _Pragma("omp simd")                                                           \
                for (size_t j = j0; j < j1; j++) {                                            \
                    size_t i = (size_t)r * nb + j;                                            \
                    float a = A[i], b = B[j], dy = DY[i];                                     \
                    (void)a; (void)b;                                                         \
                    GB[j] += (DB);                                                            \
                }                                                                             \
        }                                                                                     \
    }                                                                                         \
    static void name##_backward(knob_node *y)                                                 \
    {                                                                                         \
        const float *A = y->in[0]->t.data, *B = y->in[1]->t.data, *DY = y->t.grad;            \
        float *GA = y->in[0]->t.grad, *GB = y->in[1]->t.grad;                                 \
        binary_task task = {y, 0, knob_grad_fresh(y->in[0]), knob_grad_fresh(y->in[1])};      \
        if (same_shape(&y->in[0]->t, &y->in[1]->t)) {   /* one loop per gradient, so each  \
                                                          * vectorizes; a + a still adds da  \
                                                          * then db into each element */     \
            long n = (long)y->t.n_elems;                                                      \
            if (GA)                                                                           \
                knob_par_items(n, 1.0, name##_bwd_same_a, &task);                             \
            if (GB)                                                                           \
                knob_par_items(n, 1.0, name##_bwd_same_b, &task);                             \
            return;                                                                           \
        }                                                                                     \
        size_t nb = bcast_suffix(y);                                                          \
        if (nb) {   /* bias: da row by row; db[j] sums rows 0, 1, ... in order, as the        \
                     * broadcast loop below does, so the bits are the same; tasks split       \
                     * columns (each db[j] has one writer) */                                 \
            long n_rows = (long)(y->t.n_elems / nb);                                          \
            task.nb = nb;                                                                     \
            if (GA)                                                                           \
                knob_par_items(n_rows, (double)nb, name##_bwd_rows_a, &task);                 \
            if (GB && (COLSUM) != 0) /* sums of dy (or of -dy): src/kernels/nn.c */           \
                knob_colsum(GB, DY, n_rows, nb, task.fb, (COLSUM) < 0);                       \
            else if (GB) {                                                                    \
                long n_blocks = (long)((nb + BIAS_COL_BLOCK - 1) / BIAS_COL_BLOCK);           \
                knob_par_items(n_blocks, (double)n_rows * BIAS_COL_BLOCK, name##_bwd_cols_b,  \
                               &task);                                                        \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        if (task.fa)                                                                          \
            memset(GA, 0, y->in[0]->t.n_elems * sizeof(float));                               \
        if (task.fb)                                                                          \
            memset(GB, 0, y->in[1]->t.n_elems * sizeof(float));                               \
        bcast p;                                                                              \
        bcast_plan(y, &p);                                                                    \
        BCAST_LOOP(p, {                                                                       \
            float a = A[ia], b = B[ib], dy = DY[i];                                           \
            (void)a; (void)b;                                                                 \
            if (GA) GA[ia] += (DA);                                                           \
            if (GB) GB[ib] += (DB);                                                           \
        });                                                                                   \
    }

/* add: y = a + b;  da = dy, db = dy */
BINARY_OP(add, a + b, dy, dy, 1)
/* sub: y = a - b;  da = dy, db = -dy */
BINARY_OP(sub, a - b, dy, -dy, -1)
/* mul: y = a b;  da = dy b, db = dy a */
BINARY_OP(mul, a * b, dy * b, dy * a, 0)
/* div: y = a / b;  da = dy / b, db = -dy a / b^2 */
BINARY_OP(div, a / b, dy / b, -dy * a / (b * b), 0)

const knob_op_def knob_op_add = {2, binary_shape, NULL, NULL, add_forward, add_backward};
const knob_op_def knob_op_sub = {2, binary_shape, NULL, NULL, sub_forward, sub_backward};
const knob_op_def knob_op_mul = {2, binary_shape, NULL, NULL, mul_forward, mul_backward};
const knob_op_def knob_op_div = {2, binary_shape, NULL, NULL, div_forward, div_backward};

static knob_node *binary(knob_graph *g, knob_op op, knob_node *a, knob_node *b)
{
    knob_node *in[2] = {a, b};
    return knob_node_make(g, op, 2, in, NULL, 0, NULL, 0);
}

knob_node *knob_add(knob_graph *g, knob_node *a, knob_node *b) { return binary(g, KNOB_OP_ADD, a, b); }
knob_node *knob_sub(knob_graph *g, knob_node *a, knob_node *b) { return binary(g, KNOB_OP_SUB, a, b); }
knob_node *knob_mul(knob_graph *g, knob_node *a, knob_node *b) { return binary(g, KNOB_OP_MUL, a, b); }
knob_node *knob_div(knob_graph *g, knob_node *a, knob_node *b) { return binary(g, KNOB_OP_DIV, a, b); }

/* ------------------------------------------------------------------------------------------------
 * Unary ops: y = f(x), dx += dy * f'(x), written with x, the saved output y, and fp[0] (scale).
 * A fresh dx (knob_grad_fresh) is written, dx = dy * f'(x), instead of zeroed by graph.c first. */

static knob_status unary_shape(knob_node *y, knob_err *err)
{
    if (y->in[0]->t.dtype != KNOB_F32)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: input must be float32", knob_op_name(y->op));
    return knob_shape_same(y, y->in[0], err);
}

/* The loop pragmas a unary op picks from. "simd" lets the loop vectorize (the compiler cannot
 * see that X and Y never overlap); that is where most of the gain is for relu and abs, whose
 * sign tests become selects instead of branches that mispredict on mixed-sign activations (relu
 * ran ~30x faster). Loops that call libm (expf, tanhf, ...) cannot vectorize; they take PAR.
 * Either way the loop runs as pool tasks over chunks of elements. */
#define PAR
#define PAR_SIMD _Pragma("omp simd")

/* One unary op: forward expression F(x), derivative D(x, yv, dy), and the pragma (PAR or
 * PAR_SIMD) of each loop. */
#define UNARY_OP(name, F, D, FWD_LOOP, BWD_LOOP)                                              \
    static void name##_fwd_task(void *ctx, long lo, long hi)                                  \
    {                                                                                         \
        const knob_node *y = ctx;                                                             \
        const float *X = y->in[0]->t.data;                                                    \
        float *Y = y->t.data, s = y->fp[0];                                                   \
        (void)s;                                                                              \
        FWD_LOOP                                                                              \
        for (long i = lo; i < hi; i++) {                                                      \
            float x = X[i];                                                                   \
            Y[i] = (F);                                                                       \
        }                                                                                     \
    }                                                                                         \
    static void name##_forward(knob_node *y)                                                  \
    {                                                                                         \
        knob_par_items((long)y->t.n_elems, 1.0, name##_fwd_task, y);                          \
    }                                                                                         \
    static void name##_bwd_task(void *ctx, long lo, long hi)                                  \
    {                                                                                         \
        const knob_node *y = ctx;                                                             \
        const float *X = y->in[0]->t.data, *Y = y->t.data, *DY = y->t.grad;                   \
        float *GX = y->in[0]->t.grad, s = y->fp[0];                                           \
        (void)s;                                                                              \
        if (knob_grad_fresh(y->in[0])) { /* written whole: no zeroing pass, no read of dx */  \
            BWD_LOOP                                                                          \
            for (long i = lo; i < hi; i++) {                                                  \
                float x = X[i], yv = Y[i], dy = DY[i];                                        \
                (void)x; (void)yv;                                                            \
                GX[i] = (D);                                                                  \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        BWD_LOOP                                                                              \
        for (long i = lo; i < hi; i++) {                                                      \
            float x = X[i], yv = Y[i], dy = DY[i];                                            \
            (void)x; (void)yv;                                                                \
            GX[i] += (D);                                                                     \
        }                                                                                     \
    }                                                                                         \
    static void name##_backward(knob_node *y)                                                 \
    {                                                                                         \
        if (y->in[0]->t.grad)                                                                 \
            knob_par_items((long)y->t.n_elems, 1.0, name##_bwd_task, y);                      \
    }                                                                                         \
    const knob_op_def knob_op_##name = {1, unary_shape, NULL, NULL, name##_forward,    \
                                        name##_backward};

/* scale: y = s x;             dx = s dy */
UNARY_OP(scale, s * x, s * dy, PAR_SIMD, PAR_SIMD)
/* exp: y = e^x;               dx = dy y */
UNARY_OP(exp, expf(x), dy * yv, PAR, PAR_SIMD)
/* log: y = ln x;              dx = dy / x */
UNARY_OP(log, logf(x), dy / x, PAR, PAR_SIMD)
/* sqrt: y = sqrt(x);          dx = dy / (2 y) */
UNARY_OP(sqrt, sqrtf(x), dy * 0.5f / yv, PAR, PAR_SIMD)
/* abs: y = |x|;               dx = dy sign(x) (0 at 0) */
UNARY_OP(abs, fabsf(x), (x > 0.0f ? dy : x < 0.0f ? -dy : 0.0f), PAR_SIMD, PAR_SIMD)
/* relu: y = max(x, 0);        dx = dy [x > 0] */
UNARY_OP(relu, x > 0.0f ? x : 0.0f, (x > 0.0f ? dy : 0.0f), PAR_SIMD, PAR_SIMD)
/* gelu (tanh approximation, GPT-2): y = 0.5 x (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2/pi);
 * computed through one expf, accurate below x = -3; the loops and the derivative are in
 * src/kernels/nn.c, shared with inference. */
static void gelu_forward(knob_node *y) { knob_gelu_forward(y->t.data, y->in[0]->t.data, (long)y->t.n_elems); }
static void gelu_backward(knob_node *y)
{
    if (y->in[0]->t.grad)
        (knob_grad_fresh(y->in[0]) ? knob_gelu_backward_fresh : knob_gelu_backward)(
            y->in[0]->t.grad, y->t.grad, y->in[0]->t.data, (long)y->t.n_elems);
}
const knob_op_def knob_op_gelu = {1, unary_shape, NULL, NULL, gelu_forward, gelu_backward};
/* sigmoid: y = 1 / (1 + e^-x); dx = dy y (1 - y) */
UNARY_OP(sigmoid, x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x)), dy * yv * (1.0f - yv),
         PAR, PAR_SIMD)
/* tanh: y = tanh(x);          dx = dy (1 - y^2) */
UNARY_OP(tanh, tanhf(x), dy * (1.0f - yv * yv), PAR, PAR_SIMD)

static knob_node *unary(knob_graph *g, knob_op op, knob_node *a, float s)
{
    return knob_node_make(g, op, 1, &a, NULL, 0, &s, 1);
}

knob_node *knob_scale(knob_graph *g, knob_node *a, float s) { return unary(g, KNOB_OP_SCALE, a, s); }
knob_node *knob_exp(knob_graph *g, knob_node *a) { return unary(g, KNOB_OP_EXP, a, 0); }
knob_node *knob_log(knob_graph *g, knob_node *a) { return unary(g, KNOB_OP_LOG, a, 0); }
knob_node *knob_sqrt(knob_graph *g, knob_node *a) { return unary(g, KNOB_OP_SQRT, a, 0); }
knob_node *knob_abs(knob_graph *g, knob_node *a) { return unary(g, KNOB_OP_ABS, a, 0); }
knob_node *knob_relu(knob_graph *g, knob_node *a) { return unary(g, KNOB_OP_RELU, a, 0); }
knob_node *knob_gelu(knob_graph *g, knob_node *a) { return unary(g, KNOB_OP_GELU, a, 0); }
knob_node *knob_sigmoid(knob_graph *g, knob_node *a) { return unary(g, KNOB_OP_SIGMOID, a, 0); }
knob_node *knob_tanh(knob_graph *g, knob_node *a) { return unary(g, KNOB_OP_TANH, a, 0); }
