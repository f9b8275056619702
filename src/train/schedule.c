/* schedule.c: learning-rate schedules as a pure function of the step number: linear warm-up, then
 * constant, step decay, or cosine decay to a floor. No state, so resuming at step k gives the same
 * rate as an uninterrupted run. Arithmetic is in double; the result is rounded to float once.
 *
 * Not here: the optimizers that use the rate (optim.c), and flag parsing of the numbers (the CLI). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

const char *knob_sched_name(knob_sched_kind kind)
{
    switch (kind) {
    case KNOB_SCHED_CONSTANT: return "constant";
    case KNOB_SCHED_STEP:     return "step";
    case KNOB_SCHED_COSINE:   return "cosine";
    }
    return "unknown";
}

knob_status knob_sched_parse(const char *s, knob_sched_kind *out, knob_err *err)
{
    static const knob_sched_kind kinds[] = {KNOB_SCHED_CONSTANT, KNOB_SCHED_STEP, KNOB_SCHED_COSINE};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (s && strcmp(s, knob_sched_name(kinds[i])) == 0) {
            *out = kinds[i];
            return KNOB_OK;
        }
    return knob_fail(err, KNOB_ERR_USAGE, "unknown schedule '%.128s' (expected constant, step or cosine)",
                     s ? s : "(null)");
}

/* step counts from 0 (a negative step is treated as 0).
 *   warm-up (step < warmup):  lr (step + 1) / warmup
 *   constant:                 lr
 *   step:                     lr gamma^floor((step - warmup) / step_size); step_size <= 0: lr
 *   cosine:                   lr_min + (lr - lr_min) (1 + cos(pi q)) / 2,
 *                             q = (step - warmup) / max(1, total_steps - warmup) clamped to [0, 1] */
float knob_schedule_lr(const knob_schedule *s, long step)
{
    double lr = (double)s->lr;
    if (step < 0)
        step = 0;
    if (step < s->warmup)
        return (float)(lr * (double)(step + 1) / (double)s->warmup);
    long after = step - KNOB_MAX(s->warmup, 0L);
    switch (s->kind) {
    case KNOB_SCHED_CONSTANT:
        return (float)lr;
    case KNOB_SCHED_STEP:
        if (s->step_size <= 0)
            return (float)lr;
        return (float)(lr * pow((double)s->gamma, (double)(after / s->step_size)));
    case KNOB_SCHED_COSINE: {
        double span = (double)KNOB_MAX(1L, s->total_steps - KNOB_MAX(s->warmup, 0L));
        double q = (double)after / span;
        q = q < 0.0 ? 0.0 : q > 1.0 ? 1.0 : q;
        double lr_min = (double)s->lr_min;
        return (float)(lr_min + 0.5 * (lr - lr_min) * (1.0 + cos(PI * q)));
    }
    }
    return (float)lr;
}
