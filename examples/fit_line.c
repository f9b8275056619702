/* fit_line.c: the smallest complete use of libknob, using only include/knob.h.
 * Fits y = w x + b to points of y = 3x - 1 by gradient descent through the graph, saves the two
 * knobs as safetensors, and prints them. Build: make (it lands in build/examples/fit_line).
 * Run: build/examples/fit_line [OUT.safetensors] */
#include "knob.h"

#include <stdio.h>

enum { N = 8 };

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "line.safetensors";
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *w = knob_params_add(&P, "w", 2, (int[]){1, 1}, &err);   /* (out, in) */
    knob_tensor *b = knob_params_add(&P, "b", 1, (int[]){1}, &err);
    knob_graph *g = NULL;
    knob_optim opt = {0};
    if (!w || !b || knob_params_alloc(&P, &err) || !(g = knob_graph_new(&err)))
        goto fail;

    knob_node *x = knob_input(g, "x", 2, (int[]){N, 1});                    /* (N, 1) */
    knob_node *y = knob_input(g, "y", 2, (int[]){N, 1});                    /* (N, 1) */
    knob_node *pred = knob_add(g, knob_matmul(g, x, knob_param(g, w), 0, 1), knob_param(g, b));
    knob_node *loss = knob_mse(g, pred, y);
    if (knob_graph_compile(g, &err))                                        /* shapes checked here */
        goto fail;
    for (int i = 0; i < N; i++) {
        knob_node_data(x)[i] = (float)i / N;
        knob_node_data(y)[i] = 3.0f * (float)i / N - 1.0f;
    }
    knob_optim_config cfg = {.kind = KNOB_OPTIM_ADAM, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (knob_optim_init(&opt, &P, &cfg, &err))
        goto fail;
    knob_schedule sched = {.kind = KNOB_SCHED_COSINE, .lr = 0.1f, .total_steps = 2000};
    for (long step = 0; step < 2000; step++) {
        knob_params_zero_grad(&P);
        if (knob_graph_forward(g, &err))
            goto fail;
        knob_graph_backward(g, loss);
        knob_optim_step(&opt, knob_schedule_lr(&sched, step));
    }
    knob_kv meta[] = {{"model", "line"}, {"steps", "2000"}};
    if (knob_params_save(&P, path, meta, 2, &err))
        goto fail;
    printf("w = %.4f, b = %.4f, loss = %.2e; saved to %s\n", w->data[0], b->data[0], knob_node_data(loss)[0], path);
    knob_optim_free(&opt);
    knob_graph_free(g);
    knob_params_free(&P);
    return 0;
fail:
    fprintf(stderr, "fit_line: %s\n", err.msg);
    knob_optim_free(&opt);
    knob_graph_free(g);
    knob_params_free(&P);
    return 1;
}
