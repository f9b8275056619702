/* norm.c: layer normalisation over the last axis, fused into one op with its own derived backward
 * (llm.c's layernorm_forward / layernorm_backward are the model). Forward keeps each row's mean and
 * reciprocal standard deviation in the node's saved buffer, so backward recomputes xhat instead of
 * storing it.
 *
 * Threads: forward and dx are split over rows (each row is written by one thread). dweight and dbias
 * are sums over rows; they are split over blocks of columns instead, and each column adds its rows
 * in row order, so the bits do not depend on the thread count.
 *
 * Not here: batch norm, RMS norm (no model needs them yet). */
#include "knob_internal.h"

#include <math.h>

#define LN_EPS 1e-5f
#define LN_COL_BLOCK 64   /* columns per thread task in the dweight/dbias pass */

static const char *dtype_name(knob_dtype t) { return t == KNOB_I32 ? "int32" : "float32"; }

/* x (..., C), weight (C), bias (C) or absent -> y (..., C) */
static knob_status layernorm_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *x = &y->in[0]->t, *w = &y->in[1]->t;
    const knob_tensor *b = y->n_in == 3 ? &y->in[2]->t : NULL;
    char sx[64], sw[64], sb[64];
    knob_shape_str(sx, sizeof sx, x->n_dims, x->shape);
    knob_shape_str(sw, sizeof sw, w->n_dims, w->shape);
    if (x->dtype != KNOB_F32 || w->dtype != KNOB_F32 || (b && b->dtype != KNOB_F32))
        return knob_fail(err, KNOB_ERR_SHAPE, "layernorm: inputs must be float32; x is %s %s, weight %s %s%s%s",
                         dtype_name(x->dtype), sx, dtype_name(w->dtype), sw, b ? ", bias " : "",
                         b ? dtype_name(b->dtype) : "");
    int C = x->shape[x->n_dims - 1];
    if (w->n_dims != 1 || w->shape[0] != C)
        return knob_fail(err, KNOB_ERR_SHAPE, "layernorm: weight is %s, x is %s; weight must be (%d), the last dim of x",
                         sw, sx, C);
    if (b && (b->n_dims != 1 || b->shape[0] != C))
        return knob_fail(err, KNOB_ERR_SHAPE, "layernorm: bias is %s, x is %s; bias must be (%d), the last dim of x",
                         knob_shape_str(sb, sizeof sb, b->n_dims, b->shape), sx, C);
    return knob_shape_same(y, y->in[0], err);
}

/* saved: per row, mean and rstd: (N, 2) floats, N = n_elems / C */
static size_t layernorm_saved(const knob_node *y)
{
    const knob_tensor *x = &y->in[0]->t;
    return 2 * (x->n_elems / (size_t)x->shape[x->n_dims - 1]) * sizeof(float);
}

/* layernorm, per row of C values:
 *   mean = sum_i x_i / C,  var = sum_i (x_i - mean)^2 / C,  rstd = 1 / sqrt(var + eps)
 *   xhat_i = (x_i - mean) rstd,  y_i = w_i xhat_i + b_i
 * Backward. dxhat_i = dy_i w_i; dw_i += sum_rows dy_i xhat_i; db_i += sum_rows dy_i. For dx:
 *   d mean / d x_j = 1/C
 *   d var / d x_j  = 2/C sum_i (x_i - mean)(delta_ij - 1/C) = 2 (x_j - mean) / C   (sum_i (x_i - mean) = 0)
 *   d rstd / d x_j = -rstd^3 / 2 * d var / d x_j = -rstd^2 xhat_j / C, so
 *   d xhat_i / d x_j = rstd (delta_ij - 1/C) + (x_i - mean) d rstd / d x_j
 *                    = rstd (delta_ij - 1/C - xhat_i xhat_j / C)
 *   dx_j = sum_i dxhat_i d xhat_i / d x_j = rstd (dxhat_j - mean(dxhat) - xhat_j mean(dxhat xhat)) */
static void layernorm_forward(knob_node *y)
{
    const knob_tensor *xt = &y->in[0]->t;
    const float *x = xt->data;                                   // (N, C)
    const float *w = y->in[1]->t.data;                           // (C)
    const float *b = y->n_in == 3 ? y->in[2]->t.data : NULL;     // (C) or NULL
    float *out = y->t.data;                                      // (N, C)
    float *stats = y->saved;                                     // (N, 2): mean, rstd
    int C = xt->shape[xt->n_dims - 1];
    long N = (long)(xt->n_elems / (size_t)C);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= KNOB_PAR_MIN)
    for (long r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * (size_t)C;
        float *yr = out + (size_t)r * (size_t)C;
        float m = 0.0f;
        for (int i = 0; i < C; i++)
            m += xr[i];
        m /= (float)C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) {
            float d = xr[i] - m;
            v += d * d;
        }
        v /= (float)C;
        float rstd = 1.0f / sqrtf(v + LN_EPS);
        for (int i = 0; i < C; i++) {
            float xhat = (xr[i] - m) * rstd;
            yr[i] = xhat * w[i] + (b ? b[i] : 0.0f);
        }
        stats[2 * r] = m;
        stats[2 * r + 1] = rstd;
    }
}

static void layernorm_backward(knob_node *y)
{
    const knob_tensor *xt = &y->in[0]->t;
    const float *x = xt->data;                                   // (N, C)
    const float *w = y->in[1]->t.data;                           // (C)
    const float *dy = y->t.grad;                                 // (N, C)
    const float *stats = y->saved;                               // (N, 2): mean, rstd
    float *dx = xt->grad;                                        // (N, C) or NULL
    float *dw = y->in[1]->t.grad;                                // (C) or NULL
    float *db = y->n_in == 3 ? y->in[2]->t.grad : NULL;          // (C) or NULL
    int C = xt->shape[xt->n_dims - 1];
    long N = (long)(xt->n_elems / (size_t)C);

    if (dx) {   /* rows are independent */
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= KNOB_PAR_MIN)
        for (long r = 0; r < N; r++) {
            const float *xr = x + (size_t)r * (size_t)C, *dyr = dy + (size_t)r * (size_t)C;
            float *dxr = dx + (size_t)r * (size_t)C;
            float m = stats[2 * r], rstd = stats[2 * r + 1];
            float dxhat_mean = 0.0f, dxhat_xhat_mean = 0.0f;
            for (int i = 0; i < C; i++) {
                float xhat = (xr[i] - m) * rstd, dxhat = dyr[i] * w[i];
                dxhat_mean += dxhat;
                dxhat_xhat_mean += dxhat * xhat;
            }
            dxhat_mean /= (float)C;
            dxhat_xhat_mean /= (float)C;
            for (int i = 0; i < C; i++) {
                float xhat = (xr[i] - m) * rstd, dxhat = dyr[i] * w[i];
                dxr[i] += rstd * (dxhat - dxhat_mean - xhat * dxhat_xhat_mean);
            }
        }
    }
    if (dw || db) {   /* sums over rows: one thread per column block, rows in order */
        int n_blocks = (C + LN_COL_BLOCK - 1) / LN_COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= KNOB_PAR_MIN)
        for (int blk = 0; blk < n_blocks; blk++) {
            int i0 = blk * LN_COL_BLOCK, i1 = KNOB_MIN(C, i0 + LN_COL_BLOCK);
            for (long r = 0; r < N; r++) {
                const float *xr = x + (size_t)r * (size_t)C, *dyr = dy + (size_t)r * (size_t)C;
                float m = stats[2 * r], rstd = stats[2 * r + 1];
                if (dw) {   /* two loops rather than two ifs in one, so that each vectorizes */
#pragma omp simd
                    for (int i = i0; i < i1; i++)
                        dw[i] += dyr[i] * (xr[i] - m) * rstd;
                }
                if (db) {
#pragma omp simd
                    for (int i = i0; i < i1; i++)
                        db[i] += dyr[i];
                }
            }
        }
    }
}

/* n_in -1: two inputs (x, weight) or three (x, weight, bias) */
const knob_op_def knob_op_layernorm = {"layernorm", -1, layernorm_shape, layernorm_saved, NULL,
                                       layernorm_forward, layernorm_backward};

knob_node *knob_layernorm(knob_graph *g, knob_node *x, knob_node *weight, knob_node *bias)
{
    knob_node *in[3] = {x, weight, bias};
    return knob_node_make(g, KNOB_OP_LAYERNORM, bias ? 3 : 2, in, NULL, 0, NULL, 0);
}
