/* embedding.c: table lookup (embedding) and dropout, the two ops that touch a row of a table or an
 * element of a tensor by index or by chance rather than by arithmetic.
 *
 * embedding checks its indices before every forward (the op's check function), so a token id out of
 * range stops the step with a message instead of reading outside the table. Its backward scatters
 * into the table's gradient; repeated indices add up, in position order, split over column blocks
 * so each gradient element is written by one thread (same bits for any thread count).
 *
 * dropout draws its mask from the graph's RNG serially in element order (deterministic for a seed),
 * keeps it in the saved buffer for backward, and is the identity in eval mode or when p == 0.
 *
 * Not here: padding_idx, max_norm, sparse gradients. */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

#define EMB_COL_BLOCK 64   /* columns per thread task in the scatter */

static const char *dtype_name(knob_dtype t) { return t == KNOB_I32 ? "int32" : "float32"; }

/* ------------------------------------------------------------------------------------------------
 * embedding */

/* table (V, C), idx int32 (...) -> y (..., C) */
static knob_status embedding_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *tab = &y->in[0]->t, *idx = &y->in[1]->t;
    char st[64], si[64];
    knob_shape_str(st, sizeof st, tab->n_dims, tab->shape);
    knob_shape_str(si, sizeof si, idx->n_dims, idx->shape);
    if (tab->dtype != KNOB_F32 || tab->n_dims != 2)
        return knob_fail(err, KNOB_ERR_SHAPE, "embedding: table is %s %s; expected float32 (V, C) (idx %s)",
                         dtype_name(tab->dtype), st, si);
    if (idx->dtype != KNOB_I32)
        return knob_fail(err, KNOB_ERR_SHAPE, "embedding: idx is %s %s; expected int32 indices (table %s)",
                         dtype_name(idx->dtype), si, st);
    if (idx->n_dims + 1 > KNOB_MAX_DIMS)
        return knob_fail(err, KNOB_ERR_SHAPE, "embedding: idx %s has %d dims; at most %d, so (..., C) fits in %d (table %s)",
                         si, idx->n_dims, KNOB_MAX_DIMS - 1, KNOB_MAX_DIMS, st);
    int shape[KNOB_MAX_DIMS];
    memcpy(shape, idx->shape, (size_t)idx->n_dims * sizeof *shape);
    shape[idx->n_dims] = tab->shape[1];
    knob_node_set_shape(y, idx->n_dims + 1, shape);
    return KNOB_OK;
}

/* Before forward: every index in [0, V). The first bad one is reported with its flat position. */
static knob_status embedding_check(const knob_node *y, knob_err *err)
{
    const int32_t *idx = (const int32_t *)(const void *)y->in[1]->t.data;   // (...)
    size_t n = y->in[1]->t.n_elems;
    int V = y->in[0]->t.shape[0];
    for (size_t p = 0; p < n; p++)
        if (idx[p] < 0 || idx[p] >= V)
            return knob_fail(err, KNOB_ERR_FORMAT, "embedding: index %d at position %zu is out of range [0, %d)",
                             (int)idx[p], p, V);
    return KNOB_OK;
}

/* embedding: y[p, :] = table[idx[p], :]
 * Backward: dtable[idx[p], :] += dy[p, :] for every position p (repeated indices accumulate); idx
 * has no gradient. */
static void embedding_forward_rows(void *ctx, long lo, long hi)
{
    const knob_node *y = ctx;
    const float *tab = y->in[0]->t.data;                                      // (V, C)
    const int32_t *idx = (const int32_t *)(const void *)y->in[1]->t.data;   // (P), P = n_elems(idx)
    float *out = y->t.data;                                                   // (P, C)
    size_t C = (size_t)y->in[0]->t.shape[1];
    for (long p = lo; p < hi; p++)
        memcpy(out + (size_t)p * C, tab + (size_t)idx[p] * C, C * sizeof(float));
}

static void embedding_forward(knob_node *y)
{
    knob_par_items((long)y->in[1]->t.n_elems, y->in[0]->t.shape[1], embedding_forward_rows, y);
}

/* one task per block of columns, positions in order */
static void embedding_backward_cols(void *ctx, long lo, long hi)
{
    const knob_node *y = ctx;
    float *dtab = y->in[0]->t.grad;                                           // (V, C)
    const int32_t *idx = (const int32_t *)(const void *)y->in[1]->t.data;   // (P)
    const float *dy = y->t.grad;                                              // (P, C)
    int C = y->in[0]->t.shape[1];
    size_t P = y->in[1]->t.n_elems;
    for (long blk = lo; blk < hi; blk++) {
        int c0 = (int)blk * EMB_COL_BLOCK, c1 = KNOB_MIN(C, c0 + EMB_COL_BLOCK);
        for (size_t p = 0; p < P; p++) {
            float *drow = dtab + (size_t)idx[p] * (size_t)C;
            const float *dyrow = dy + p * (size_t)C;
            for (int c = c0; c < c1; c++)
                drow[c] += dyrow[c];
        }
    }
}

static void embedding_backward(knob_node *y)
{
    float *dtab = y->in[0]->t.grad;                                           // (V, C) or NULL
    const int32_t *idx = (const int32_t *)(const void *)y->in[1]->t.data;   // (P)
    const float *dy = y->t.grad;                                              // (P, C)
    if (!dtab)
        return;
    (void)idx;
    (void)dy;
    int C = y->in[0]->t.shape[1];
    size_t P = y->in[1]->t.n_elems;
    int n_blocks = (C + EMB_COL_BLOCK - 1) / EMB_COL_BLOCK;
    knob_par_items(n_blocks, (double)P * EMB_COL_BLOCK, embedding_backward_cols, y);
}

const knob_op_def knob_op_embedding = {2, embedding_shape, NULL, embedding_check,
                                       embedding_forward, embedding_backward};

knob_node *knob_embedding(knob_graph *g, knob_node *table, knob_node *idx)
{
    knob_node *in[2] = {table, idx};
    return knob_node_make(g, KNOB_OP_EMBEDDING, 2, in, NULL, 0, NULL, 0);
}

/* ------------------------------------------------------------------------------------------------
 * dropout. fp[0] = p. Saved buffer: byte 0 says whether the last forward dropped (training and
 * p > 0); bytes 1..n are the keep mask, one byte per element. */

static knob_status dropout_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *a = &y->in[0]->t;
    float p = y->fp[0];
    if (!(p >= 0.0f && p < 1.0f))   /* also rejects nan */
        return knob_fail(err, KNOB_ERR_USAGE, "dropout: p is %g; it must be in [0, 1)", (double)p);
    if (a->dtype != KNOB_F32) {
        char sa[64];
        return knob_fail(err, KNOB_ERR_SHAPE, "dropout: input is int32 %s; expected float32",
                         knob_shape_str(sa, sizeof sa, a->n_dims, a->shape));
    }
    return knob_shape_same(y, y->in[0], err);
}

static size_t dropout_saved(const knob_node *y) { return 1 + y->t.n_elems; }

/* dropout while training, with keep_i ~ Bernoulli(1 - p) drawn in element order:
 *   y_i = keep_i x_i / (1 - p)      (so E[y_i] = x_i)
 *   dx_i += keep_i dy_i / (1 - p)
 * In eval mode, or with p == 0: y = x, dx += dy. */
static void dropout_forward_task(void *ctx, long lo, long hi)
{
    const knob_node *y = ctx;
    const float *x = y->in[0]->t.data;
    float *out = y->t.data;
    const unsigned char *keep = (const unsigned char *)y->saved + 1;
    float scale = 1.0f / (1.0f - y->fp[0]);
    for (long i = lo; i < hi; i++)
        out[i] = keep[i] ? x[i] * scale : 0.0f;
}

static void dropout_backward_task(void *ctx, long lo, long hi)
{
    const knob_node *y = ctx;
    float *dx = y->in[0]->t.grad;
    const float *dy = y->t.grad;
    const unsigned char *active = y->saved, *keep = active + 1;
    if (!*active) {
        for (long i = lo; i < hi; i++)
            dx[i] += dy[i];
        return;
    }
    float scale = 1.0f / (1.0f - y->fp[0]);
    for (long i = lo; i < hi; i++)
        dx[i] += keep[i] ? dy[i] * scale : 0.0f;
}

static void dropout_forward(knob_node *y)
{
    const float *x = y->in[0]->t.data;                      // (n)
    float *out = y->t.data;                                 // (n)
    unsigned char *active = y->saved;                       // (1)
    unsigned char *keep = active + 1;                       // (n)
    long n = (long)y->t.n_elems;
    float p = y->fp[0];
    *active = (unsigned char)(knob_graph_training(y->g) && p > 0.0f);
    if (!*active) {
        memcpy(out, x, (size_t)n * sizeof(float));
        return;
    }
    knob_rng *rng = knob_graph_rng(y->g);
    for (long i = 0; i < n; i++)   /* serial: the mask depends only on the seed */
        keep[i] = knob_rng_uniform(rng) >= p;
    (void)x;
    (void)out;
    knob_par_items(n, 1.0, dropout_forward_task, y);
}

static void dropout_backward(knob_node *y)
{
    float *dx = y->in[0]->t.grad;                           // (n) or NULL
    const float *dy = y->t.grad;                            // (n)
    const unsigned char *active = y->saved;                 // (1)
    const unsigned char *keep = active + 1;                 // (n)
    long n = (long)y->t.n_elems;
    (void)dy;
    (void)active;
    (void)keep;
    if (!dx)
        return;
    knob_par_items(n, 1.0, dropout_backward_task, y);
}

const knob_op_def knob_op_dropout = {1, dropout_shape, dropout_saved, NULL, dropout_forward,
                                     dropout_backward};

knob_node *knob_dropout(knob_graph *g, knob_node *a, float p)
{
    return knob_node_make(g, KNOB_OP_DROPOUT, 1, &a, NULL, 0, &p, 1);
}
