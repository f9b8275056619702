/* matmul.c: y = op(a) @ op(b), batched over a's leading dims, op = optional transpose of the last
 * two dims. b is either one matrix shared by every batch (a linear layer) or has a's leading dims.
 * The heavy lifting is knob_gemm (src/kernels/gemm.c), or knob_gemm_bf16 when the node's precision
 * attribute (ip[2], set by knob_matmul_prec) is KNOB_PREC_BF16: then the forward product and both
 * gradient products round their inputs to bf16 and sum in f32. The gradients are those of the
 * rounded product (dA = dC round(B)^T with dC rounded too), which is what bf16 training computes.
 *
 * Derivation (C = A B, with A = op(a), B = op(b)):  dA = dC B^T,  dB = A^T dC.
 * Stored transposed operands take the transpose of those: da_stored = dA^T when ta, and so on.
 *
 * An optional third input, bias (N), is added to every row of C (knob_matmul_bias: a linear
 * layer): in the gemm's store (knob_gemm_bias), and its gradient is the column sums of dC
 * (knob_colsum, rows in order). That saves the add node's pass over C forward and its copy of dC
 * backward (bench_step gpt:113,4,4,128,128,32, 2 threads: the bias adds took 2.4 ms of a 158 ms
 * step per layer), with the same bits: the store adds the bias to the finished sum as the add
 * did, and the column sums run in the add's order. */
#include "knob_internal.h"

typedef struct {
    int batch, M, N, K;
    int shared_b;   /* b is 2-D and used by every batch */
} mm_dims;

typedef void (*mm_gemm_fn)(int, int, int, int, int, float, const float *, const float *, float,
                           float *);

static mm_gemm_fn mm_gemm(const knob_node *y)
{
    return y->ip[2] == KNOB_PREC_BF16 ? knob_gemm_bf16 : knob_gemm;
}

static void mm_plan(const knob_node *y, mm_dims *d)
{
    const knob_tensor *a = &y->in[0]->t, *b = &y->in[1]->t;
    int ta = y->ip[0], tb = y->ip[1];
    int ra = a->shape[a->n_dims - 2], ca = a->shape[a->n_dims - 1];
    int rb = b->shape[b->n_dims - 2], cb = b->shape[b->n_dims - 1];
    d->M = ta ? ca : ra;
    d->K = ta ? ra : ca;
    d->N = tb ? rb : cb;
    d->batch = (int)(a->n_elems / ((size_t)ra * (size_t)ca));
    d->shared_b = b->n_dims == 2;
}

static knob_status matmul_shape(knob_node *y, knob_err *err)
{
    const knob_tensor *a = &y->in[0]->t, *b = &y->in[1]->t;
    char sa[64], sb[64];
    knob_shape_str(sa, sizeof sa, a->n_dims, a->shape);
    knob_shape_str(sb, sizeof sb, b->n_dims, b->shape);
    if (a->dtype != KNOB_F32 || b->dtype != KNOB_F32 || (y->n_in > 2 && y->in[2]->t.dtype != KNOB_F32))
        return knob_fail(err, KNOB_ERR_SHAPE, "matmul: inputs must be float32");
    if (a->n_dims < 2 || b->n_dims < 2)
        return knob_fail(err, KNOB_ERR_SHAPE, "matmul: inputs need at least 2 dims: a is %s, b is %s", sa, sb);
    if (b->n_dims != 2 && b->n_dims != a->n_dims)
        return knob_fail(err, KNOB_ERR_SHAPE, "matmul: b must be 2-D or have a's dims: a is %s, b is %s", sa, sb);
    if (b->n_dims > 2)
        for (int i = 0; i < a->n_dims - 2; i++)
            if (a->shape[i] != b->shape[i])
                return knob_fail(err, KNOB_ERR_SHAPE, "matmul: batch dims differ: a is %s, b is %s", sa, sb);
    mm_dims d;
    mm_plan(y, &d);
    int kb = y->ip[1] ? b->shape[b->n_dims - 1] : b->shape[b->n_dims - 2];
    if (d.K != kb)
        return knob_fail(err, KNOB_ERR_SHAPE, "matmul: inner dimensions differ: a is %s%s, b is %s%s (%d vs %d)",
                         sa, y->ip[0] ? " transposed" : "", sb, y->ip[1] ? " transposed" : "", d.K, kb);
    if (y->n_in > 2) {
        const knob_tensor *bias = &y->in[2]->t;
        if (bias->n_dims != 1 || bias->shape[0] != d.N) {
            char sc[64];
            return knob_fail(err, KNOB_ERR_SHAPE, "matmul: bias must be (%d), one per output column, got %s",
                             d.N, knob_shape_str(sc, sizeof sc, bias->n_dims, bias->shape));
        }
    }
    int shape[KNOB_MAX_DIMS];
    for (int i = 0; i < a->n_dims - 2; i++)
        shape[i] = a->shape[i];
    shape[a->n_dims - 2] = d.M;
    shape[a->n_dims - 1] = d.N;
    knob_node_set_shape(y, a->n_dims, shape);
    return KNOB_OK;
}

/* y (batch, M, N) = op(a) (batch, M, K) @ op(b) (batch or shared, K, N) (+ bias (N)) */
static void matmul_forward(knob_node *y)
{
    mm_dims d;
    mm_plan(y, &d);
    int ta = y->ip[0], tb = y->ip[1];
    void (*gemm)(int, int, int, int, int, float, const float *, const float *, float, float *, const float *) =
        y->ip[2] == KNOB_PREC_BF16 ? knob_gemm_bf16_bias : knob_gemm_bias;   /* bias NULL: none */
    const float *A = y->in[0]->t.data, *B = y->in[1]->t.data;
    const float *bias = y->n_in > 2 ? y->in[2]->t.data : NULL;
    float *Y = y->t.data;
    if (d.shared_b && !ta) {   /* rows of every batch are contiguous: one product */
        gemm(0, tb, d.batch * d.M, d.N, d.K, 1.0f, A, B, 0.0f, Y, bias);
        return;
    }
    size_t sa = (size_t)d.M * d.K, sb = d.shared_b ? 0 : (size_t)d.K * d.N, sy = (size_t)d.M * d.N;
    for (int i = 0; i < d.batch; i++)
        gemm(ta, tb, d.M, d.N, d.K, 1.0f, A + i * sa, B + i * sb, 0.0f, Y + i * sy, bias);
}

static void matmul_backward(knob_node *y)
{
    mm_dims d;
    mm_plan(y, &d);
    int ta = y->ip[0], tb = y->ip[1];
    mm_gemm_fn gemm = mm_gemm(y);
    const float *A = y->in[0]->t.data, *B = y->in[1]->t.data, *DY = y->t.grad;
    float *DA = y->in[0]->t.grad, *DB = y->in[1]->t.grad;
    int M = d.M, N = d.N, K = d.K;
    if (y->n_in > 2 && y->in[2]->t.grad)   /* dbias (N) += sum over every row of dY */
        knob_colsum(y->in[2]->t.grad, DY, (long)d.batch * d.M, (size_t)N, knob_grad_fresh(y->in[2]), 0);
    /* a fresh grad (knob_grad_fresh) is written (beta 0), else added to: 0 + x has x's bits */
    float beta_a = DA && knob_grad_fresh(y->in[0]) ? 0.0f : 1.0f;
    float beta_b = DB && knob_grad_fresh(y->in[1]) ? 0.0f : 1.0f;
    if (d.shared_b && !ta) {   /* flatten batches into rows, as in forward */
        M *= d.batch;
        if (DA)   /* dA (M, K) = dY (M, N) @ op(b)^T */
            gemm(0, !tb, M, K, N, 1.0f, DY, B, beta_a, DA);
        if (DB) { /* dB (K, N) = A^T dY; stored transposed: (N, K) = dY^T A */
            if (!tb)
                gemm(1, 0, K, N, M, 1.0f, A, DY, beta_b, DB);
            else
                gemm(1, 0, N, K, M, 1.0f, DY, A, beta_b, DB);
        }
        return;
    }
    size_t sa = (size_t)M * K, sb = d.shared_b ? 0 : (size_t)K * N, sy = (size_t)M * N;
    for (int i = 0; i < d.batch; i++) {
        const float *a = A + i * sa, *b = B + i * sb, *dy = DY + i * sy;
        if (DA) {
            float *da = DA + i * sa;
            if (!ta)   /* dA (M, K) = dY (M, N) @ op(b)^T (N, K) */
                gemm(0, !tb, M, K, N, 1.0f, dy, b, beta_a, da);
            else       /* a stored (K, M): dA^T (K, M) = op(b) (K, N) @ dY^T (N, M) */
                gemm(tb, 1, K, M, N, 1.0f, b, dy, beta_a, da);
        }
        if (DB) {
            float *db = DB + i * sb;
            float beta = d.shared_b && i > 0 ? 1.0f : beta_b;   /* a shared b sums the batches */
            if (!tb)   /* dB (K, N) = op(a)^T (K, M) @ dY (M, N) */
                gemm(!ta, 0, K, N, M, 1.0f, a, dy, beta, db);
            else       /* b stored (N, K): dB^T (N, K) = dY^T (N, M) @ op(a) (M, K) */
                gemm(1, ta, N, K, M, 1.0f, dy, a, beta, db);
        }
    }
}

/* n_in -1: two inputs, or three with a bias */
const knob_op_def knob_op_matmul = {-1, matmul_shape, NULL, NULL, matmul_forward, matmul_backward};

knob_node *knob_matmul_prec(knob_graph *g, knob_node *a, knob_node *b, int ta, int tb,
                            knob_precision prec)
{
    knob_node *in[2] = {a, b};
    int ip[3] = {ta != 0, tb != 0, prec == KNOB_PREC_BF16 ? KNOB_PREC_BF16 : KNOB_PREC_F32};
    return knob_node_make(g, KNOB_OP_MATMUL, 2, in, ip, 3, NULL, 0);
}

knob_node *knob_matmul_bias(knob_graph *g, knob_node *a, knob_node *b, knob_node *bias, int ta, int tb,
                            knob_precision prec)
{
    if (!bias)
        return knob_matmul_prec(g, a, b, ta, tb, prec);
    knob_node *in[3] = {a, b, bias};
    int ip[3] = {ta != 0, tb != 0, prec == KNOB_PREC_BF16 ? KNOB_PREC_BF16 : KNOB_PREC_F32};
    return knob_node_make(g, KNOB_OP_MATMUL, 3, in, ip, 3, NULL, 0);
}

knob_node *knob_matmul(knob_graph *g, knob_node *a, knob_node *b, int ta, int tb)
{
    return knob_matmul_prec(g, a, b, ta, tb, KNOB_PREC_F32);
}
