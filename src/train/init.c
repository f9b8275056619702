/* init.c: parameter initializers (constant, normal, uniform, Xavier/Glorot, Kaiming/He) and the
 * fan-in / fan-out they are scaled by. Every random initializer draws from the caller's knob_rng
 * once per element, in element order, on one thread: the same seed gives the same tensor on every
 * machine and for any thread count.
 *
 * Fan convention, from the tensor's shape:
 *   1-D (n)                 fan_in = n,           fan_out = n
 *   2-D (out, in)           fan_in = in,          fan_out = out
 *   3-D (a, out, in)        fan_in = a * in,      fan_out = a * out   (a as a receptive field)
 *   4-D (OC, C, KH, KW)     fan_in = C * KH * KW, fan_out = OC * KH * KW
 *
 * Not here: choosing which tensors get which initializer (the model builders). */
#include "knob_internal.h"

#include <math.h>

void knob_fan(const knob_tensor *t, int *fan_in, int *fan_out)
{
    const int *s = t->shape;
    int in = 1, out = 1;
    KNOB_ASSERT(t->n_dims >= 1 && t->n_dims <= KNOB_MAX_DIMS);
    switch (t->n_dims) {
    case 1: in = out = s[0]; break;
    case 2: in = s[1]; out = s[0]; break;
    case 3: in = s[0] * s[2]; out = s[0] * s[1]; break;
    case 4: in = s[1] * s[2] * s[3]; out = s[0] * s[2] * s[3]; break;
    }
    if (fan_in)
        *fan_in = in;
    if (fan_out)
        *fan_out = out;
}

static float *f32_data(knob_tensor *t)
{
    KNOB_ASSERT(t->dtype == KNOB_F32 && t->data);   /* after knob_params_alloc */
    return t->data;
}

void knob_init_const(knob_tensor *t, float v)
{
    float *x = f32_data(t);
    for (size_t i = 0; i < t->n_elems; i++)
        x[i] = v;
}

/* x ~ N(0, std^2) */
void knob_init_normal(knob_tensor *t, float std, knob_rng *r)
{
    float *x = f32_data(t);
    for (size_t i = 0; i < t->n_elems; i++)
        x[i] = std * knob_rng_normal(r);
}

/* x ~ U[lo, hi): lo + (hi - lo) u with u in [0, 1), in double so the float result stays in
 * [lo, hi] (hi only by the final rounding) */
void knob_init_uniform(knob_tensor *t, float lo, float hi, knob_rng *r)
{
    float *x = f32_data(t);
    double width = (double)hi - (double)lo;
    for (size_t i = 0; i < t->n_elems; i++)
        x[i] = (float)((double)lo + width * (double)knob_rng_uniform(r));
}

/* Glorot and Bengio 2010: U[-a, a), a = sqrt(6 / (fan_in + fan_out)), so var = a^2 / 3 =
 * 2 / (fan_in + fan_out) */
void knob_init_xavier(knob_tensor *t, knob_rng *r)
{
    int fan_in, fan_out;
    knob_fan(t, &fan_in, &fan_out);
    float a = (float)sqrt(6.0 / ((double)fan_in + (double)fan_out));
    knob_init_uniform(t, -a, a, r);
}

/* He et al. 2015, ReLU gain: N(0, 2 / fan_in) */
void knob_init_kaiming(knob_tensor *t, knob_rng *r)
{
    int fan_in;
    knob_fan(t, &fan_in, NULL);
    knob_init_normal(t, (float)sqrt(2.0 / (double)fan_in), r);
}
