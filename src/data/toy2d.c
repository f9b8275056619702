/* toy2d.c: two classes of 2-D points for the tour's laboratory (chapters 2, 8, 9, 10): two
 * interleaved spirals, or two rings, drawn with the seeded RNG so a tour is repeatable. Point i
 * belongs to class i % 2; the k-th point of a class sits at k / (n/2) along its curve.
 *
 * Not here: the nets that classify them (src/models/toy.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

void knob_toy_data_free(knob_toy_data *d)
{
    if (!d)
        return;
    knob_free(d->x);
    knob_free(d->y);
    memset(d, 0, sizeof *d);
}

knob_status knob_toy_data_make(knob_toy_data *d, knob_toy_kind kind, int n, float noise, uint64_t seed,
                               knob_err *err)
{
    memset(d, 0, sizeof *d);
    if (n < 2 || n > (1 << 24))
        return knob_fail(err, KNOB_ERR_USAGE, "toy data: %d points; expected 2 to %d", n, 1 << 24);
    if (kind != KNOB_TOY_SPIRALS && kind != KNOB_TOY_RINGS)
        return knob_fail(err, KNOB_ERR_USAGE, "toy data: unknown kind %d (expected spirals or rings)", (int)kind);
    if (!(noise >= 0 && noise < 10))
        return knob_fail(err, KNOB_ERR_USAGE, "toy data: noise %g; expected a value in [0, 10)", (double)noise);
    d->x = knob_malloc((size_t)n * 2 * sizeof *d->x);
    d->y = knob_malloc((size_t)n * sizeof *d->y);
    if (!d->x || !d->y) {
        knob_toy_data_free(d);
        return knob_fail(err, KNOB_ERR_NOMEM, "toy data: out of memory for %d points", n);
    }
    d->n = n;
    knob_rng r;
    knob_rng_seed(&r, seed);
    int per = (n + 1) / 2;
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < n; i++) {
        int c = i % 2, k = i / 2;
        double t = (double)k / per, radius, angle;
        if (kind == KNOB_TOY_SPIRALS) {
            /* one and a half turns, from near the centre outwards; class 1 is class 0 turned by pi */
            radius = 0.1 + 0.85 * t;
            angle = 3 * pi * t + c * pi;
        } else {
            radius = c ? 0.8 : 0.35;
            angle = 2 * pi * knob_rng_uniform_double(&r);
        }
        d->x[2 * i] = (float)(radius * cos(angle) + noise * knob_rng_normal(&r));
        d->x[2 * i + 1] = (float)(radius * sin(angle) + noise * knob_rng_normal(&r));
        d->y[i] = c;
    }
    return KNOB_OK;
}
