/* shape.c: ops that move elements without arithmetic: reshape (a view: no copy, no backward work),
 * transpose and permute (a copy through a 4-D index map), concat and slice (copies of blocks).
 * All tensors are contiguous, so a permuted tensor is materialised; matmul's transpose flags avoid
 * that copy where it matters most. */
#include "knob_internal.h"

#include <limits.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * reshape: same elements, new shape; one dim may be -1. y aliases x (data and grad). */

static knob_status reshape_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *a = &y->in[0]->t;
    int n = y->ip[0], shape[KNOB_MAX_DIMS], infer = -1;
    size_t known = 1;
    char sa[64];
    knob_shape_str(sa, sizeof sa, a->n_dims, a->shape);
    if (n < 1 || n > KNOB_MAX_DIMS)
        return knob_fail(err, KNOB_ERR_SHAPE, "reshape: %d dims requested; 1 to %d supported", n, KNOB_MAX_DIMS);
    for (int i = 0; i < n; i++) {
        shape[i] = y->ip[1 + i];
        if (shape[i] == -1 && infer < 0)
            infer = i;
        else if (shape[i] < 1)
            return knob_fail(err, KNOB_ERR_SHAPE, "reshape: dim %d is %d (one dim may be -1, the rest positive)", i, shape[i]);
        else
            known *= (size_t)shape[i];
    }
    if (infer >= 0) {
        if (a->n_elems % known)
            return knob_fail(err, KNOB_ERR_SHAPE, "reshape: %s (%zu elements) does not divide into dims of product %zu",
                             sa, a->n_elems, known);
        shape[infer] = (int)(a->n_elems / known);
    }
    if (knob_shape_elems(n, shape) != a->n_elems) {
        char sb[64];
        return knob_fail(err, KNOB_ERR_SHAPE, "reshape: %s has %zu elements, %s has %zu", sa, a->n_elems,
                         knob_shape_str(sb, sizeof sb, n, shape), knob_shape_elems(n, shape));
    }
    knob_node_set_shape(y, n, shape);
    y->t.dtype = a->dtype;
    y->is_view = 1;
    return KNOB_OK;
}

/* Views share memory with their input, so there is nothing to compute either way. */
static void reshape_forward(knob_node *y) { (void)y; }
static void reshape_backward(knob_node *y) { (void)y; }

const knob_op_def knob_op_reshape = {1, reshape_shape, NULL, NULL, reshape_forward, reshape_backward};

knob_node *knob_reshape(knob_graph *g, knob_node *a, int n_dims, const int *shape)
{
    int ip[1 + KNOB_MAX_DIMS] = {n_dims};
    for (int i = 0; i < n_dims && i < KNOB_MAX_DIMS; i++)
        ip[1 + i] = shape[i];
    return knob_node_make(g, KNOB_OP_RESHAPE, 1, &a, ip, 1 + KNOB_MAX_DIMS, NULL, 0);
}

/* ------------------------------------------------------------------------------------------------
 * permute: y has dims a.shape[perm[i]]; y[i0, i1, i2, i3] = a[the same indices placed by perm].
 * transpose is the permute that swaps two axes. Backward is the inverse permutation, added. */

static knob_status permute_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *a = &y->in[0]->t;
    int n = a->n_dims, seen[KNOB_MAX_DIMS] = {0}, shape[KNOB_MAX_DIMS];
    if (a->dtype != KNOB_F32)
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: input must be float32", knob_op_name(y->op));
    for (int i = 0; i < n; i++) {
        int p = y->ip[i];
        if (p < 0 || p >= n || seen[p]++)
            return knob_fail(err, KNOB_ERR_SHAPE, "%s: (%d, %d, %d, %d) is not a permutation of %d axes",
                             knob_op_name(y->op), y->ip[0], y->ip[1], y->ip[2], y->ip[3], n);
        shape[i] = a->shape[p];
    }
    knob_node_set_shape(y, n, shape);
    return KNOB_OK;
}

/* For output dims padded to 4: the input stride that each output axis walks. */
static void permute_plan(const knob_node *y, int n4[4], size_t s4[4])
{
    const knob_tensor *a = &y->in[0]->t;
    int n = a->n_dims, pad = 4 - n;
    size_t stride[KNOB_MAX_DIMS], acc = 1;
    for (int i = n - 1; i >= 0; i--) {
        stride[i] = acc;
        acc *= (size_t)a->shape[i];
    }
    for (int i = 0; i < 4; i++) {
        n4[i] = i < pad ? 1 : y->t.shape[i - pad];
        s4[i] = i < pad ? 0 : stride[y->ip[i - pad]];
    }
}

/* The output as n[0] * n[1] planes of n[2] * n[3] elements; a chunk takes whole planes. */
typedef struct {
    int n[4];
    size_t s[4];
    const float *X, *DY;
    float *Y, *DX;
} permute_task;

static void permute_forward_planes(void *ctx, long lo, long hi)
{
    const permute_task *t = ctx;
    const int *n = t->n;
    const size_t *s = t->s;
    for (long p = lo; p < hi; p++) {
        size_t i0 = (size_t)p / (size_t)n[1], i1 = (size_t)p % (size_t)n[1];
        const float *x = t->X + i0 * s[0] + i1 * s[1];
        float *out = t->Y + (size_t)p * n[2] * n[3];
        for (int i2 = 0; i2 < n[2]; i2++)
            for (int i3 = 0; i3 < n[3]; i3++)
                *out++ = x[i2 * s[2] + i3 * s[3]];
    }
}

/* every input element receives exactly one output element's grad: no races */
static void permute_backward_planes(void *ctx, long lo, long hi)
{
    const permute_task *t = ctx;
    const int *n = t->n;
    const size_t *s = t->s;
    for (long p = lo; p < hi; p++) {
        size_t i0 = (size_t)p / (size_t)n[1], i1 = (size_t)p % (size_t)n[1];
        float *dx = t->DX + i0 * s[0] + i1 * s[1];
        const float *dy = t->DY + (size_t)p * n[2] * n[3];
        for (int i2 = 0; i2 < n[2]; i2++)
            for (int i3 = 0; i3 < n[3]; i3++)
                dx[i2 * s[2] + i3 * s[3]] += *dy++;
    }
}

static void permute_forward(knob_node *y)
{
    permute_task t = {.X = y->in[0]->t.data, .Y = y->t.data};
    permute_plan(y, t.n, t.s);
    knob_par_items((long)t.n[0] * t.n[1], (double)t.n[2] * t.n[3], permute_forward_planes, &t);
}

static void permute_backward(knob_node *y)
{
    float *DX = y->in[0]->t.grad;
    if (!DX)
        return;
    permute_task t = {.DY = y->t.grad, .DX = DX};
    permute_plan(y, t.n, t.s);
    knob_par_items((long)t.n[0] * t.n[1], (double)t.n[2] * t.n[3], permute_backward_planes, &t);
}

const knob_op_def knob_op_permute = {1, permute_shape, NULL, NULL, permute_forward, permute_backward};
const knob_op_def knob_op_transpose = {1, permute_shape, NULL, NULL, permute_forward, permute_backward};

knob_node *knob_permute(knob_graph *g, knob_node *a, const int *perm)
{
    int ip[KNOB_MAX_DIMS] = {0, 1, 2, 3};
    int n = a ? a->t.n_dims : 0;
    for (int i = 0; i < n; i++)
        ip[i] = perm[i];
    return knob_node_make(g, KNOB_OP_PERMUTE, 1, &a, ip, KNOB_MAX_DIMS, NULL, 0);
}

knob_node *knob_transpose(knob_graph *g, knob_node *a, int axis0, int axis1)
{
    int ip[KNOB_MAX_DIMS] = {0, 1, 2, 3};
    int n = a ? a->t.n_dims : 0, x = knob_axis(axis0, n), z = knob_axis(axis1, n);
    if (a && (x < 0 || z < 0)) {
        ip[0] = -1;   /* the shape function reports it */
    } else if (a) {
        ip[x] = z;
        ip[z] = x;
    }
    return knob_node_make(g, KNOB_OP_TRANSPOSE, 1, &a, ip, KNOB_MAX_DIMS, NULL, 0);
}

/* ------------------------------------------------------------------------------------------------
 * concat along axis, and slice [start, start + len) along axis. Both view tensors as
 * (outer, n_axis * inner) blocks: a part contributes a contiguous run of its n_axis * inner floats
 * to each of the outer rows. */

static void split_dims(const knob_tensor *t, int axis, size_t *outer, size_t *inner)
{
    *outer = knob_shape_elems(axis, t->shape);
    *inner = knob_shape_elems(t->n_dims - axis - 1, t->shape + axis + 1);
}

static knob_status concat_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *a = &y->in[0]->t;
    int axis = knob_axis(y->ip[0], a->n_dims), shape[KNOB_MAX_DIMS];
    if (axis < 0)
        return knob_fail(err, KNOB_ERR_SHAPE, "concat: axis %d out of range for %d dims", y->ip[0], a->n_dims);
    y->ip[0] = axis;
    memcpy(shape, a->shape, sizeof shape);
    if (a->dtype != KNOB_F32)
        return knob_fail(err, KNOB_ERR_SHAPE, "concat: part 0 must be float32");
    long long total = shape[axis];   /* the sum of ints can pass INT_MAX */
    for (int k = 1; k < y->n_in; k++) {
        const knob_tensor *b = &y->in[k]->t;
        int ok = b->n_dims == a->n_dims && b->dtype == KNOB_F32;
        for (int i = 0; ok && i < a->n_dims; i++)
            ok = i == axis || b->shape[i] == a->shape[i];
        if (!ok) {
            char sa[64], sb[64];
            return knob_fail(err, KNOB_ERR_SHAPE, "concat: part %d is %s, part 0 is %s; all dims but %d must match", k,
                             knob_shape_str(sb, sizeof sb, b->n_dims, b->shape),
                             knob_shape_str(sa, sizeof sa, a->n_dims, a->shape), axis);
        }
        total += b->shape[axis];
        if (total > INT_MAX)
            return knob_fail(err, KNOB_ERR_SHAPE, "concat: axis %d adds up to more than %d", axis, INT_MAX);
        shape[axis] = (int)total;
    }
    knob_node_set_shape(y, a->n_dims, shape);
    return KNOB_OK;
}

/* y[o, off_k + j] = part_k[o, j] over rows o; backward copies the same runs back (+=) */
static void concat_forward(knob_node *y)
{
    size_t outer, inner, row = (size_t)y->t.shape[y->ip[0]], off = 0;
    split_dims(&y->t, y->ip[0], &outer, &inner);
    for (int k = 0; k < y->n_in; k++) {
        const knob_tensor *p = &y->in[k]->t;
        size_t run = (size_t)p->shape[y->ip[0]] * inner;
        for (size_t o = 0; o < outer; o++)
            memcpy(y->t.data + o * row * inner + off, p->data + o * run, run * sizeof(float));
        off += run;
    }
}

static void concat_backward(knob_node *y)
{
    size_t outer, inner, row = (size_t)y->t.shape[y->ip[0]], off = 0;
    split_dims(&y->t, y->ip[0], &outer, &inner);
    for (int k = 0; k < y->n_in; k++) {
        const knob_tensor *p = &y->in[k]->t;
        size_t run = (size_t)p->shape[y->ip[0]] * inner;
        if (p->grad)
            for (size_t o = 0; o < outer; o++) {
                const float *dy = y->t.grad + o * row * inner + off;
                float *dp = p->grad + o * run;
                for (size_t j = 0; j < run; j++)
                    dp[j] += dy[j];
            }
        off += run;
    }
}

const knob_op_def knob_op_concat = {-1, concat_shape, NULL, NULL, concat_forward, concat_backward};

knob_node *knob_concat(knob_graph *g, int n, knob_node *const *parts, int axis)
{
    if (n < 1 || n > KNOB_MAX_IN) {
        knob_graph_error(g, KNOB_ERR_SHAPE, "concat: %d parts; 1 to %d supported", n, KNOB_MAX_IN);
        return NULL;
    }
    return knob_node_make(g, KNOB_OP_CONCAT, n, parts, &axis, 1, NULL, 0);
}

static knob_status slice_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *a = &y->in[0]->t;
    int axis = knob_axis(y->ip[0], a->n_dims), start = y->ip[1], len = y->ip[2], shape[KNOB_MAX_DIMS];
    if (a->dtype != KNOB_F32)
        return knob_fail(err, KNOB_ERR_SHAPE, "slice: input must be float32");
    if (axis < 0)
        return knob_fail(err, KNOB_ERR_SHAPE, "slice: axis %d out of range for %d dims", y->ip[0], a->n_dims);
    if (start < 0 || len < 1 || start > a->shape[axis] - len)
        return knob_fail(err, KNOB_ERR_SHAPE, "slice: [%d, %lld) is outside axis %d of size %d", start,
                         (long long)start + len, axis, a->shape[axis]);
    y->ip[0] = axis;
    memcpy(shape, a->shape, sizeof shape);
    shape[axis] = len;
    knob_node_set_shape(y, a->n_dims, shape);
    return KNOB_OK;
}

/* y[o, j] = a[o, start * inner + j] for j < len * inner */
static void slice_forward(knob_node *y)
{
    const knob_tensor *a = &y->in[0]->t;
    size_t outer, inner;
    split_dims(a, y->ip[0], &outer, &inner);
    size_t row = (size_t)a->shape[y->ip[0]] * inner, run = (size_t)y->ip[2] * inner, off = (size_t)y->ip[1] * inner;
    for (size_t o = 0; o < outer; o++)
        memcpy(y->t.data + o * run, a->data + o * row + off, run * sizeof(float));
}

static void slice_backward(knob_node *y)
{
    const knob_tensor *a = &y->in[0]->t;
    if (!a->grad)
        return;
    size_t outer, inner;
    split_dims(a, y->ip[0], &outer, &inner);
    size_t row = (size_t)a->shape[y->ip[0]] * inner, run = (size_t)y->ip[2] * inner, off = (size_t)y->ip[1] * inner;
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < run; j++)
            a->grad[o * row + off + j] += y->t.grad[o * run + j];
}

const knob_op_def knob_op_slice = {1, slice_shape, NULL, NULL, slice_forward, slice_backward};

knob_node *knob_slice(knob_graph *g, knob_node *a, int axis, int start, int len)
{
    int ip[3] = {axis, start, len};
    return knob_node_make(g, KNOB_OP_SLICE, 1, &a, ip, 3, NULL, 0);
}

knob_status knob_split(knob_graph *g, knob_node *a, int axis, int n, const int *sizes, knob_node **out)
{
    int ax = a ? knob_axis(axis, a->t.n_dims) : -1;
    long long start = 0;   /* a sum of user sizes: kept out of int until it is known to fit */
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    for (int i = 0; i < n; i++) {
        out[i] = knob_slice(g, a, axis, start <= INT_MAX ? (int)start : -1, sizes[i]);
        start += sizes[i];
    }
    if (a && ax >= 0 && start != a->t.shape[ax])
        knob_graph_error(g, KNOB_ERR_SHAPE, "split: sizes add up to %lld, axis %d has %d", start, ax, a->t.shape[ax]);
    return knob_graph_status(g);
}
