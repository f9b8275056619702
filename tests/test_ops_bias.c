/* test_ops_bias.c: the bias case of the binary ops at widths the vector column sums take in all
 * their parts (32-column groups, 8-column groups, single columns: 101 = 3 x 32 + 8 - 3 ... the
 * tail), for add and sub, with the inputs as parameters (gradients accumulated) and as activations
 * (fresh gradients, written whole). Gradient checks by central differences (tests/gradcheck.h). */
#include "gradcheck.h"

GRADCHECK(KNOB_OP_ADD, bias_add_13x101)
{
    knob_node *a = gc_param(c, "a", 2, (int[]){13, 101}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){101}, GC_NORMAL);
    return knob_add(c->g, a, b);
}

GRADCHECK(KNOB_OP_SUB, bias_sub_13x101)
{
    knob_node *a = gc_param(c, "a", 2, (int[]){13, 101}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){101}, GC_NORMAL);
    return knob_sub(c->g, a, b);
}

/* a and b activations: their grads are fresh when the add or sub passes its gradient */
GRADCHECK(KNOB_OP_ADD, bias_add_fresh_7x2x45)
{
    knob_node *a = gc_param(c, "a", 3, (int[]){7, 2, 45}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 2, (int[]){2, 45}, GC_NORMAL);
    return knob_add(c->g, knob_scale(c->g, a, 1.5f), knob_scale(c->g, b, -0.5f));
}

GRADCHECK(KNOB_OP_SUB, bias_sub_fresh_9x40)
{
    knob_node *a = gc_param(c, "a", 2, (int[]){9, 40}, GC_NORMAL);
    knob_node *b = gc_param(c, "b", 1, (int[]){40}, GC_NORMAL);
    return knob_sub(c->g, knob_scale(c->g, a, 2.0f), knob_scale(c->g, b, 0.75f));
}

/* the same column sums, exactly: dy of ones gives db = -(number of rows) for sub, in float */
TEST(ops_bias_column_sums_count_rows)
{
    enum { N = 50, Cn = 77 };
    knob_err err;
    knob_graph *g = knob_graph_new(&err);
    knob_params P;
    knob_params_init(&P);
    knob_tensor *at = knob_params_add(&P, "a", 2, (int[]){N, Cn}, &err);
    knob_tensor *bt = knob_params_add(&P, "b", 1, (int[]){Cn}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    if (test_failed_now) {
        knob_graph_free(g);
        return;
    }
    knob_node *a = knob_param(g, at), *b = knob_param(g, bt);
    knob_node *loss = knob_sum_all(g, knob_sub(g, knob_scale(g, a, 1.0f), knob_scale(g, b, 1.0f)));
    CHECK_OK(knob_graph_compile(g, &err));
    for (int pass = 1; pass <= 2 && !test_failed_now; pass++) {   /* the second accumulates */
        CHECK_OK(knob_graph_forward(g, &err));
        knob_graph_backward(g, loss);
        for (int j = 0; j < Cn; j++)
            CHECK(bt->grad[j] == -(float)(N * pass));
        for (int i = 0; i < N * Cn; i++)
            CHECK(at->grad[i] == (float)pass);
    }
    knob_graph_free(g);
    knob_params_free(&P);
}
