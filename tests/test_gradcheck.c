/* test_gradcheck.c: the harness of gradcheck.h, and the test that runs every registered case and
 * fails when any op in the table has no case, so a new op cannot land unchecked. The cases
 * themselves live beside each family's tests (tests/test_ops_*.c). */
#include "gradcheck.h"

#define MAX_CASES 256

static struct {
    knob_op op;
    const char *name;
    gc_case_fn fn;
} cases[MAX_CASES];
static int n_cases;

void gc_register(knob_op op, const char *name, gc_case_fn fn)
{
    KNOB_ASSERT(n_cases < MAX_CASES);
    cases[n_cases].op = op;
    cases[n_cases].name = name;
    cases[n_cases].fn = fn;
    n_cases++;
}

/* Parameters are declared before the graph is built, so each gc_param allocates its own small
 * params block: simplest for a test, and the grads still come from the graph's backward. */
static knob_params blocks[16];

knob_node *gc_param(gc_ctx *c, const char *name, int n_dims, const int *shape, gc_init init)
{
    KNOB_ASSERT(c->n_params < 16);
    knob_params *P = &blocks[c->n_params];
    knob_params_init(P);
    knob_err err;
    knob_tensor *t = knob_params_add(P, name, n_dims, shape, &err);
    if (!t || knob_params_alloc(P, &err) != KNOB_OK) {
        test_fail_at(__FILE__, __LINE__, "gc_param %s: %s", name, err.msg);
        return NULL;
    }
    for (size_t i = 0; i < t->n_elems; i++) {
        float v = 0;
        switch (init) {
        case GC_NORMAL: v = knob_rng_normal(&c->rng); break;
        case GC_AWAY: v = (0.1f + 0.9f * knob_rng_uniform(&c->rng)) * (knob_rng_uniform(&c->rng) < 0.5f ? -1.0f : 1.0f); break;
        case GC_POSITIVE: v = 0.5f + 1.5f * knob_rng_uniform(&c->rng); break;
        case GC_DISTINCT: v = 0.05f * ((float)i - 0.5f * (float)t->n_elems); break;
        }
        t->data[i] = v;
    }
    if (init == GC_DISTINCT)   /* shuffle the grid */
        for (size_t i = t->n_elems; i > 1; i--) {
            size_t j = knob_rng_below(&c->rng, (uint32_t)i);
            float tmp = t->data[i - 1];
            t->data[i - 1] = t->data[j];
            t->data[j] = tmp;
        }
    knob_node *n = knob_param(c->g, t);
    c->params[c->n_params] = n;
    c->inits[c->n_params] = init;
    c->n_params++;
    return n;
}

knob_node *gc_index(gc_ctx *c, const char *name, int n_dims, const int *shape, int lo, int hi)
{
    KNOB_ASSERT(c->n_idx < 8);
    knob_node *n = knob_input_i32(c->g, name, n_dims, shape);
    c->idx[c->n_idx] = n;
    c->lo[c->n_idx] = lo;
    c->hi[c->n_idx] = hi;
    c->n_idx++;
    return n;
}

/* f = sum(w * out) in double, after a forward with the dropout RNG reseeded */
static double eval(gc_ctx *c, knob_node *out, const float *w)
{
    knob_err err;
    knob_graph_seed(c->g, 1234);
    if (knob_graph_forward(c->g, &err) != KNOB_OK) {
        test_fail_at(__FILE__, __LINE__, "forward: %s", err.msg);
        return 0;
    }
    const float *y = knob_node_data(out);
    double f = 0;
    for (size_t i = 0; i < knob_node_tensor(out)->n_elems; i++)
        f += (double)w[i] * (double)y[i];
    return f;
}

int gc_run(const char *name, gc_case_fn fn, uint64_t seed)
{
    gc_ctx c;
    memset(&c, 0, sizeof c);
    knob_err err = {0};
    knob_rng_seed(&c.rng, seed);
    c.g = knob_graph_new(&err);
    c.training = 1;
    knob_node *out = fn(&c);
    int bad = 0;
    knob_node *w = out ? knob_input(c.g, "w", knob_node_tensor(out)->n_dims, knob_node_tensor(out)->shape) : NULL;
    knob_node *loss = knob_sum_all(c.g, knob_mul(c.g, out, w));
    if (knob_graph_compile(c.g, &err) != KNOB_OK) {
        test_fail_at(__FILE__, __LINE__, "%s: build failed: %s", name, err.msg);
        bad = 1;
        goto done;
    }
    knob_graph_set_training(c.g, c.training);
    for (size_t i = 0; i < knob_node_tensor(w)->n_elems; i++)
        knob_node_data(w)[i] = knob_rng_normal(&c.rng);
    for (int j = 0; j < c.n_idx; j++)
        for (size_t i = 0; i < knob_node_tensor(c.idx[j])->n_elems; i++)
            knob_node_data_i32(c.idx[j])[i] = c.lo[j] + (int)knob_rng_below(&c.rng, (uint32_t)(c.hi[j] - c.lo[j]));
    for (int j = 0; j < c.n_params; j++)
        knob_params_zero_grad(&blocks[j]);
    eval(&c, out, knob_node_data(w));
    knob_graph_backward(c.g, loss);
    const double h = 1e-2;
    for (int j = 0; j < c.n_params; j++) {
        const knob_tensor *t = knob_node_tensor(c.params[j]);
        for (size_t i = 0; i < t->n_elems; i++) {
            float x0 = t->data[i];
            t->data[i] = (float)(x0 + h);
            double fp = eval(&c, out, knob_node_data(w));
            t->data[i] = (float)(x0 - h);
            double fm = eval(&c, out, knob_node_data(w));
            t->data[i] = x0;
            double num = (fp - fm) / (2 * h), ana = t->grad[i];
            if (!(fabs(num - ana) <= 2e-3 + 1e-2 * fabs(num))) {
                if (bad < 5)
                    test_fail_at(__FILE__, __LINE__, "%s: d/d%s[%zu]: backward %.6g, finite difference %.6g",
                                 name, t->name, i, ana, num);
                bad++;
            }
        }
    }
done:
    knob_graph_free(c.g);
    for (int j = 0; j < c.n_params; j++)
        knob_params_free(&blocks[j]);
    return bad;
}

TEST(gradcheck_every_op)
{
    int covered[KNOB_OP_COUNT] = {0};
    for (int k = 0; k < n_cases; k++) {
        covered[cases[k].op]++;
        gc_run(cases[k].name, cases[k].fn, 1000 + (uint64_t)k);
    }
    for (int op = 1; op < KNOB_OP_COUNT; op++)
        if (!covered[op])
            test_fail_at(__FILE__, __LINE__, "op '%s' has no GRADCHECK case", knob_op_name((knob_op)op));
    CHECK(n_cases >= KNOB_OP_COUNT - 1);
}
