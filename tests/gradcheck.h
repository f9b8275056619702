/* gradcheck.h: the gradient-check harness every op's tests use.
 *
 * A case is written as
 *     GRADCHECK(KNOB_OP_GELU, gelu_odd_shape) {
 *         knob_node *x = gc_param(c, "x", 2, (int[]){3, 5}, GC_NORMAL);
 *         return knob_gelu(c->g, x);
 *     }
 * The harness builds loss = sum(w * out) with a fixed random w (same shape as out), compiles, runs
 * backward once, then for every element of every gc_param input compares the analytic gradient
 * with a central difference (f(x + h) - f(x - h)) / 2h, where f is computed in double from the
 * float32 outputs. Dropout's RNG is reseeded before every forward so its mask stays fixed.
 *
 * Tolerance: h = 1e-2 on inputs of size ~1. Truncation error is h^2 f'''/6 ~ 2e-5; float32 rounding
 * of the outputs contributes about 6e-8 * sum|w y| / 2h ~ 1e-4 for the sizes used here. We accept
 * |num - ana| <= 2e-3 + 1e-2 |num|: two orders above the noise, far below any real bug (a wrong
 * sign, factor or index moves gradients by O(1)). */
#ifndef KNOB_GRADCHECK_H
#define KNOB_GRADCHECK_H

#include "test.h"

typedef enum {
    GC_NORMAL,     /* standard normal */
    GC_AWAY,       /* |x| in [0.1, 1] with random sign: away from kinks at 0 (relu, abs) */
    GC_POSITIVE,   /* in [0.5, 2]: log, sqrt, divisors */
    GC_DISTINCT,   /* a shuffled grid spaced 0.05 apart: no near ties (max pooling) */
} gc_init;

typedef struct gc_ctx {
    knob_graph *g;
    knob_params P;
    knob_rng rng;
    knob_node *params[16];
    gc_init inits[16];
    int n_params;
    knob_node *idx[8];   /* int32 inputs, filled with values in [lo, hi) */
    int lo[8], hi[8];
    int n_idx;
    int training;        /* 1 (default): dropout active */
} gc_ctx;

typedef knob_node *(*gc_case_fn)(gc_ctx *c);
void gc_register(knob_op op, const char *name, gc_case_fn fn);

/* A float input whose gradient is checked. */
knob_node *gc_param(gc_ctx *c, const char *name, int n_dims, const int *shape, gc_init init);
/* An int32 input (indices, targets) with random values in [lo, hi). */
knob_node *gc_index(gc_ctx *c, const char *name, int n_dims, const int *shape, int lo, int hi);

/* Runs one case outside the registry (random shapes); returns the number of mismatches. */
int gc_run(const char *name, gc_case_fn fn, uint64_t seed);

#define GRADCHECK(op, name)                                                                   \
    static knob_node *gc_##name(gc_ctx *c);                                                   \
    __attribute__((constructor)) static void gcreg_##name(void)                               \
    {                                                                                         \
        gc_register(op, #name, gc_##name);                                                    \
    }                                                                                         \
    static knob_node *gc_##name(gc_ctx *c)

#endif
