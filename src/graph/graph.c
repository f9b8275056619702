/* graph.c: the static computation graph. Builders append nodes (creation order is a topological
 * order, since a node's inputs exist before it); each node's shape is inferred and checked as it is
 * made. Compile plans memory once: values, gradients and each op's saved buffer in one arena, so
 * forward and backward allocate nothing. Backward walks the nodes in reverse, each op adding
 * J^T dy into its inputs' gradients.
 *
 * Not here: the ops themselves (src/ops/), optimizers (src/train/). */
#include "knob_internal.h"

#include <stdarg.h>
#include <string.h>

struct knob_graph {
    knob_node **nodes;
    int n, cap;
    knob_err err;          /* first build error, sticky */
    knob_arena arena;
    int compiled;
    int training;
    knob_rng rng;          /* dropout */
};

knob_graph *knob_graph_new(knob_err *err)
{
    knob_graph *g = knob_calloc(1, sizeof *g);
    if (!g) {
        knob_fail(err, KNOB_ERR_NOMEM, "graph: out of memory");
        return NULL;
    }
    g->training = 1;
    knob_rng_seed(&g->rng, 0);
    return g;
}

void knob_graph_free(knob_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++)
        knob_free(g->nodes[i]);
    knob_free(g->nodes);
    knob_arena_free(&g->arena);
    knob_free(g);
}

void knob_graph_error(knob_graph *g, knob_status code, const char *fmt, ...)
{
    if (!g || g->err.code)
        return;
    char msg[sizeof g->err.msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    knob_fail(&g->err, code, "%s", msg);
}

static const char *const op_names[KNOB_OP_COUNT] = {
    [KNOB_OP_NONE] = "leaf",
#define NAME(E, name, file) [KNOB_OP_##E] = #name,
    KNOB_OP_LIST(NAME)
#undef NAME
};

const char *knob_op_name(knob_op op) { return (unsigned)op < KNOB_OP_COUNT ? op_names[op] : "?"; }

knob_status knob_graph_status(const knob_graph *g) { return g ? g->err.code : KNOB_ERR_USAGE; }

void knob_graph_set_training(knob_graph *g, int training) { g->training = training; }
int knob_graph_training(const knob_graph *g) { return g->training; }
void knob_graph_seed(knob_graph *g, uint64_t seed) { knob_rng_seed(&g->rng, seed); }
knob_rng *knob_graph_rng(knob_graph *g) { return &g->rng; }
size_t knob_graph_bytes(const knob_graph *g) { return g->arena.cap; }
int knob_graph_n_nodes(const knob_graph *g) { return g->n; }

float *knob_node_data(knob_node *n) { return n->t.data; }
int32_t *knob_node_data_i32(knob_node *n) { return (int32_t *)(void *)n->t.data; }
float *knob_node_grad(knob_node *n) { return n->t.grad; }
const knob_tensor *knob_node_tensor(const knob_node *n) { return &n->t; }

int knob_axis(int axis, int n_dims)
{
    if (axis < 0)
        axis += n_dims;
    return axis >= 0 && axis < n_dims ? axis : -1;
}

void knob_node_set_shape(knob_node *y, int n_dims, const int *shape)
{
    y->t.n_dims = n_dims;
    memcpy(y->t.shape, shape, (size_t)n_dims * sizeof *shape);
    y->t.n_elems = knob_shape_elems(n_dims, shape);
}

knob_status knob_shape_same(knob_node *y, const knob_node *a, knob_err *err)
{
    (void)err;
    knob_node_set_shape(y, a->t.n_dims, a->t.shape);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Building */

static knob_node *new_node(knob_graph *g, knob_op op)
{
    if (g->err.code)
        return NULL;
    if (g->compiled) {
        knob_fail(&g->err, KNOB_ERR_USAGE, "graph: cannot add nodes after knob_graph_compile");
        return NULL;
    }
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        knob_node **nodes = knob_realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) {
            knob_fail(&g->err, KNOB_ERR_NOMEM, "graph: out of memory at node %d", g->n);
            return NULL;
        }
        g->nodes = nodes;
        g->cap = cap;
    }
    knob_node *y = knob_calloc(1, sizeof *y);
    if (!y) {
        knob_fail(&g->err, KNOB_ERR_NOMEM, "graph: out of memory at node %d", g->n);
        return NULL;
    }
    y->op = op;
    y->id = g->n;
    y->g = g;
    g->nodes[g->n++] = y;
    return y;
}

static knob_node *leaf(knob_graph *g, const char *name, knob_dtype dtype, int n_dims, const int *shape)
{
    if (!g || g->err.code)
        return NULL;
    if (n_dims < 1 || n_dims > KNOB_MAX_DIMS) {
        knob_fail(&g->err, KNOB_ERR_SHAPE, "input '%.128s': %d dims; 1 to %d supported", name, n_dims, KNOB_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < n_dims; i++)
        if (shape[i] < 1) {
            knob_fail(&g->err, KNOB_ERR_SHAPE, "input '%.128s': dim %d is %d; dims must be positive", name, i, shape[i]);
            return NULL;
        }
    size_t n_elems;
    if (!knob_shape_elems_checked(n_dims, shape, &n_elems)) {
        char s[64];
        knob_fail(&g->err, KNOB_ERR_SHAPE, "input '%.128s': %s has more than 2^40 elements", name,
                  knob_shape_str(s, sizeof s, n_dims, shape));
        return NULL;
    }
    knob_node *y = new_node(g, KNOB_OP_NONE);
    if (!y)
        return NULL;
    snprintf(y->t.name, sizeof y->t.name, "%s", name);
    y->t.dtype = dtype;
    knob_node_set_shape(y, n_dims, shape);
    return y;
}

knob_node *knob_input(knob_graph *g, const char *name, int n_dims, const int *shape)
{
    return leaf(g, name, KNOB_F32, n_dims, shape);
}

knob_node *knob_input_i32(knob_graph *g, const char *name, int n_dims, const int *shape)
{
    return leaf(g, name, KNOB_I32, n_dims, shape);
}

knob_node *knob_param(knob_graph *g, knob_tensor *t)
{
    if (!g || g->err.code)
        return NULL;
    if (!t || !t->data) {
        knob_fail(&g->err, KNOB_ERR_USAGE, "param '%.128s': not allocated (call knob_params_alloc first)",
                  t ? t->name : "(null)");
        return NULL;
    }
    knob_node *y = new_node(g, KNOB_OP_NONE);
    if (!y)
        return NULL;
    y->t = *t;               /* shares data and grad with the params block */
    y->param = t;
    y->requires_grad = 1;
    return y;
}

knob_node *knob_node_make(knob_graph *g, knob_op op, int n_in, knob_node *const *in,
                          const int *ip, int n_ip, const float *fp, int n_fp)
{
    if (!g || g->err.code)
        return NULL;
    const knob_op_def *def = knob_ops[op];
    KNOB_ASSERT(def && n_in <= KNOB_MAX_IN && n_ip <= 8 && n_fp <= 4);
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) {
            knob_fail(&g->err, KNOB_ERR_USAGE, "%s: input %d is NULL", knob_op_name(op), i);
            return NULL;
        }
        if (in[i]->g != g) {
            knob_fail(&g->err, KNOB_ERR_USAGE, "%s: input %d belongs to another graph", knob_op_name(op), i);
            return NULL;
        }
    }
    knob_node *y = new_node(g, op);
    if (!y)
        return NULL;
    y->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        y->in[i] = in[i];
        y->requires_grad |= in[i]->requires_grad;
    }
    if (n_ip)
        memcpy(y->ip, ip, (size_t)n_ip * sizeof *ip);
    if (n_fp)
        memcpy(y->fp, fp, (size_t)n_fp * sizeof *fp);
    y->t.dtype = KNOB_F32;
    size_t n_elems;
    if (def->shape(y, &g->err) != KNOB_OK) {
        g->n--;
        knob_free(y);
        return NULL;
    }
    if (!knob_shape_elems_checked(y->t.n_dims, y->t.shape, &n_elems)) {
        char s[64];
        knob_fail(&g->err, KNOB_ERR_SHAPE, "%s: output %s has more than 2^40 elements", knob_op_name(op),
                  knob_shape_str(s, sizeof s, y->t.n_dims, y->t.shape));
        g->n--;
        knob_free(y);
        return NULL;
    }
    snprintf(y->t.name, sizeof y->t.name, "%s#%d", knob_op_name(op), y->id);
    return y;
}

/* ------------------------------------------------------------------------------------------------
 * Compile: one arena for all values, gradients and saved buffers. */

static size_t align64(size_t n) { return n > SIZE_MAX - 63 ? SIZE_MAX : (n + 63) & ~(size_t)63; }

knob_status knob_graph_compile(knob_graph *g, knob_err *err)
{
    if (!g)
        return knob_fail(err, KNOB_ERR_USAGE, "graph: NULL");
    if (g->err.code) {
        if (err)
            *err = g->err;
        return g->err.code;
    }
    if (g->compiled)
        return knob_fail(err, KNOB_ERR_USAGE, "graph: already compiled");
    /* measure */
    size_t bytes = 0;
    for (int i = 0; i < g->n; i++) {
        knob_node *y = g->nodes[i];
        if (y->param || y->is_view)
            continue;
        /* element counts are at most KNOB_MAX_ELEMS; saved sizes and the sum saturate, so a graph
         * too large for memory fails in knob_arena_init instead of wrapping to a small arena */
        bytes = knob_add_sat(bytes, align64(y->t.n_elems * sizeof(float)));
        if (y->requires_grad)
            bytes = knob_add_sat(bytes, align64(y->t.n_elems * sizeof(float)));
        if (y->op && knob_ops[y->op]->saved)
            bytes = knob_add_sat(bytes, align64(knob_ops[y->op]->saved(y)));
    }
    if (knob_arena_init(&g->arena, knob_add_sat(bytes, 64), err) != KNOB_OK)
        return err ? err->code : KNOB_ERR_NOMEM;
    /* place */
    for (int i = 0; i < g->n; i++) {
        knob_node *y = g->nodes[i];
        if (y->param)
            continue;
        if (y->is_view) {
            y->t.data = y->in[0]->t.data;
            y->t.grad = y->in[0]->t.grad;
            if (y->requires_grad)
                KNOB_ASSERT(y->t.grad);
            continue;
        }
        y->t.data = knob_arena_alloc(&g->arena, align64(y->t.n_elems * sizeof(float)), 64, NULL);
        KNOB_ASSERT(y->t.data);
        if (y->requires_grad) {
            y->t.grad = knob_arena_alloc(&g->arena, align64(y->t.n_elems * sizeof(float)), 64, NULL);
            KNOB_ASSERT(y->t.grad);
        }
        if (y->op && knob_ops[y->op]->saved) {
            size_t n = knob_ops[y->op]->saved(y);
            if (n) {
                y->saved = knob_arena_alloc(&g->arena, align64(n), 64, NULL);
                KNOB_ASSERT(y->saved);
            }
        }
    }
    g->compiled = 1;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Running */

knob_status knob_graph_forward(knob_graph *g, knob_err *err)
{
    if (!g || !g->compiled)
        return knob_fail(err, KNOB_ERR_USAGE, "graph: forward before knob_graph_compile");
    for (int i = 0; i < g->n; i++) {
        knob_node *y = g->nodes[i];
        if (!y->op)
            continue;
        const knob_op_def *def = knob_ops[y->op];
        if (def->check) {
            knob_status s = def->check(y, err);
            if (s != KNOB_OK)
                return s;
        }
        def->forward(y);
    }
    return KNOB_OK;
}

/* Whether op's backward writes input k's grad whole when knob_grad_fresh says it is unwritten
 * (the elementwise binary and unary ops, layernorm's x, attention's qkv, both operands of a
 * matrix product, conv2d's x, not its weight or bias, and max pooling's x, the last two zeroing
 * it piece by piece just before they add into it): the gradients that feed most of a network's
 * activations. Every other input gets a zeroed grad to add into. */
static int fresh_ok(knob_op op, int k)
{
    if (op == KNOB_OP_CONV2D)
        return k == 0;
    switch (op) {
    case KNOB_OP_ADD: case KNOB_OP_SUB: case KNOB_OP_MUL: case KNOB_OP_DIV:
    case KNOB_OP_SCALE: case KNOB_OP_EXP: case KNOB_OP_LOG: case KNOB_OP_SQRT: case KNOB_OP_ABS:
    case KNOB_OP_RELU: case KNOB_OP_GELU: case KNOB_OP_SIGMOID: case KNOB_OP_TANH:
    case KNOB_OP_LAYERNORM: case KNOB_OP_ATTENTION: case KNOB_OP_MATMUL: case KNOB_OP_MAXPOOL2D:
        return 1;
    default:
        return 0;
    }
}

static knob_node *view_root(knob_node *u)
{
    while (u->is_view)
        u = u->in[0];
    return u;
}

static void zero_grad(knob_node *u)
{
    memset(u->t.grad, 0, u->t.n_elems * sizeof(float));
    u->grad_fresh = 0;
}

/* knob_graph_backward_set: a tensor of P whose grad exactly one parameter node of the pass uses
 * (and no other overlaps) starts fresh, like an activation; every other tensor of P (used twice,
 * or not by this graph) is zeroed now. */
static void params_fresh(knob_graph *g, const knob_node *loss, knob_params *P)
{
    for (int i = 0; i < P->n; i++) {
        knob_tensor *t = P->t[i];
        const float *lo = t->grad, *hi = t->grad + t->n_elems;
        knob_node *only = NULL;
        int n = 0;
        for (int j = 0; j <= loss->id; j++) {
            knob_node *u = g->nodes[j];
            if (u->param && u->t.grad < hi && u->t.grad + u->t.n_elems > lo) {
                only = u;
                n++;
            }
        }
        if (n == 1 && only->t.grad == t->grad && only->t.n_elems == t->n_elems)
            only->grad_fresh = 1;
        else if (t->n_elems)
            memset(t->grad, 0, t->n_elems * sizeof(float));
    }
}

static void backward_pass(knob_graph *g, knob_node *loss, knob_params *P)
{
    KNOB_ASSERT(g->compiled && loss && loss->g == g && loss->t.n_elems == 1);
    if (!loss->requires_grad) {
        if (P)
            knob_params_zero_grad(P);
        return;
    }
    /* activation grads start at zero each pass; parameter grads accumulate. Rather than zeroing
     * them all first, each is marked fresh, and the first op to pass a gradient into it either
     * writes it whole (fresh_ok) or has it zeroed just before: the same values, bit for bit, and
     * most of a transformer's memset and reads of zeros saved. With P (knob_graph_backward_set)
     * P's parameter grads are fresh too. */
    for (int i = 0; i <= loss->id; i++) {
        knob_node *y = g->nodes[i];
        y->grad_fresh = y->requires_grad && !y->param && !y->is_view;
    }
    if (P && P->grad)
        params_fresh(g, loss, P);
    loss->t.grad[0] = 1.0f;
    loss->grad_fresh = 0;
    /* only the loss's ancestors: a side branch (a metric, a second head) would add 0 * its local
     * derivative, which is nan where that derivative is inf (log at 0, div by 0) */
    for (int i = 0; i < loss->id; i++)
        g->nodes[i]->live = 0;
    loss->live = 1;
    for (int i = loss->id; i >= 0; i--) {
        knob_node *y = g->nodes[i];
        if (!y->live || !y->requires_grad)
            continue;
        for (int k = 0; k < y->n_in; k++)
            y->in[k]->live = 1;
        if (!y->op)
            continue;
        for (int k = 0; k < y->n_in; k++) {
            knob_node *u = view_root(y->in[k]);
            if (!u->grad_fresh)
                continue;
            int twice = 0;   /* a + a: the second gradient adds to the first */
            for (int k2 = 0; k2 < y->n_in; k2++)
                twice |= k2 != k && view_root(y->in[k2]) == u;
            if (!fresh_ok(y->op, k) || twice)
                zero_grad(u);
        }
        knob_ops[y->op]->backward(y);
        for (int k = 0; k < y->n_in; k++)
            view_root(y->in[k])->grad_fresh = 0;
    }
    /* grads that no op wrote (side branches off the loss's path) still read as zeros */
    for (int i = 0; i <= loss->id; i++)
        if (g->nodes[i]->grad_fresh)
            zero_grad(g->nodes[i]);
}

void knob_graph_backward(knob_graph *g, knob_node *loss) { backward_pass(g, loss, NULL); }

void knob_graph_backward_set(knob_graph *g, knob_node *loss, knob_params *P)
{
    backward_pass(g, loss, P);
}
