/* optim.c: the optimizers (SGD with momentum and Nesterov, Adam, AdamW) and global gradient-norm
 * clipping. Each is a flat loop over one knob_params block: values, grads and the optimizer's
 * moment buffers m and v all have n_elems floats in the same order, and tensor i is the slice that
 * starts where tensor i-1 ends. The loops go tensor by tensor only because weight decay is a
 * per-tensor choice (t->decay).
 *
 * Semantics follow PyTorch's torch.optim.SGD (dampening 0), Adam and AdamW, and
 * torch.nn.utils.clip_grad_norm_ (without its 1e-6 in the denominator, see below). The update
 * arithmetic is float32 per element, as PyTorch's is; scalars (bias corrections, step sizes) are
 * formed in double first.
 *
 * knob_optim_step allocates nothing: m and v are allocated once by knob_optim_init. Elementwise
 * loops run under OpenMP; the only reduction (the gradient norm) sums fixed chunks in a fixed
 * order, so results are bit-identical for any thread count.
 *
 * Not here: learning-rate schedules (schedule.c), per-tensor learning rates, dampening,
 * amsgrad, maximize, and optimizer state save/restore. */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

/* Tensors smaller than this are updated by one thread: forking a team costs more than the loop. */

const char *knob_optim_name(knob_optim_kind kind)
{
    switch (kind) {
    case KNOB_OPTIM_SGD:   return "sgd";
    case KNOB_OPTIM_ADAM:  return "adam";
    case KNOB_OPTIM_ADAMW: return "adamw";
    }
    return "unknown";
}

knob_status knob_optim_parse(const char *s, knob_optim_kind *out, knob_err *err)
{
    static const knob_optim_kind kinds[] = {KNOB_OPTIM_SGD, KNOB_OPTIM_ADAM, KNOB_OPTIM_ADAMW};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (s && strcmp(s, knob_optim_name(kinds[i])) == 0) {
            *out = kinds[i];
            return KNOB_OK;
        }
    return knob_fail(err, KNOB_ERR_USAGE, "unknown optimizer '%.128s' (expected sgd, adam or adamw)",
                     s ? s : "(null)");
}

/* ------------------------------------------------------------------------------------------------
 * Init and free */

/* !(x >= lo) rather than x < lo, so NaN fails the check too. */
static knob_status check_config(const knob_optim_config *c, knob_err *err)
{
    const char *name = knob_optim_name(c->kind);
    if (c->kind != KNOB_OPTIM_SGD && c->kind != KNOB_OPTIM_ADAM && c->kind != KNOB_OPTIM_ADAMW)
        return knob_fail(err, KNOB_ERR_USAGE, "optimizer: unknown kind %d (expected sgd, adam or adamw)",
                         (int)c->kind);
    if (!(c->weight_decay >= 0.0f && isfinite(c->weight_decay)))
        return knob_fail(err, KNOB_ERR_USAGE, "%s: weight_decay is %g; expected a finite value >= 0",
                         name, (double)c->weight_decay);
    if (c->kind == KNOB_OPTIM_SGD) {
        if (!(c->momentum >= 0.0f && isfinite(c->momentum)))
            return knob_fail(err, KNOB_ERR_USAGE, "sgd: momentum is %g; expected a finite value >= 0",
                             (double)c->momentum);
        if (c->nesterov && c->momentum == 0.0f)
            return knob_fail(err, KNOB_ERR_USAGE, "sgd: nesterov needs a momentum > 0");
        return KNOB_OK;
    }
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
        return knob_fail(err, KNOB_ERR_USAGE, "%s: beta1 is %g; expected a value in [0, 1)", name,
                         (double)c->beta1);
    if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return knob_fail(err, KNOB_ERR_USAGE, "%s: beta2 is %g; expected a value in [0, 1)", name,
                         (double)c->beta2);
    if (!(c->eps > 0.0f && isfinite(c->eps)))
        return knob_fail(err, KNOB_ERR_USAGE, "%s: eps is %g; expected a finite value > 0; try 1e-8",
                         name, (double)c->eps);
    return KNOB_OK;
}

knob_status knob_optim_init(knob_optim *o, knob_params *p, const knob_optim_config *cfg, knob_err *err)
{
    memset(o, 0, sizeof *o);
    knob_status s = check_config(cfg, err);
    if (s)
        return s;
    if (!p || !p->data || !p->grad)
        return knob_fail(err, KNOB_ERR_USAGE,
                         "%s: parameters are not allocated; call knob_params_alloc first",
                         knob_optim_name(cfg->kind));
    int adam = cfg->kind != KNOB_OPTIM_SGD;
    float *m = knob_calloc(p->n_elems, sizeof(float));
    float *v = adam ? knob_calloc(p->n_elems, sizeof(float)) : NULL;
    if (!m || (adam && !v)) {
        knob_free(m);
        knob_free(v);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot allocate %d x %zu floats of state",
                         knob_optim_name(cfg->kind), adam ? 2 : 1, p->n_elems);
    }
    o->cfg = *cfg;
    o->p = p;
    o->m = m;
    o->v = v;
    return KNOB_OK;
}

void knob_optim_free(knob_optim *o)
{
    if (!o)
        return;
    knob_free(o->m);
    knob_free(o->v);
    memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------------------------------------------------
 * Update rules, one tensor slice at a time: w, g, m, v are (n) views at the same offset. */

static void sgd_update(float *w, const float *g, float *m, size_t n, float lr, float wd,
                       float momentum, int nesterov)
{
    /* plain (momentum 0):  g' = g + wd w;  w -= lr g' */
    if (momentum == 0.0f) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + wd * w[i];
            w[i] -= lr * gi;
        }
        return;
    }
    /* momentum:  g' = g + wd w;  buf = momentum buf + g'  (buf starts at 0, so step 1 gives g');
     * w -= lr (g' + momentum buf) with Nesterov, w -= lr buf without */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * w[i];
        float buf = momentum * m[i] + gi;
        m[i] = buf;
        w[i] -= lr * (nesterov ? gi + momentum * buf : buf);
    }
}

/* Adam, with L2 weight decay wd folded into the gradient (Adam), or AdamW's decoupled decay as
 * keep = 1 - lr wd applied to w first (pass wd 0; keep 1 for Adam). With bc1 = 1 - beta1^t,
 * bc2 = 1 - beta2^t:
 *   g' = g + wd w;  m = beta1 m + (1 - beta1) g';  v = beta2 v + (1 - beta2) g'^2
 *   w = keep w - lr m_hat / (sqrt(v_hat) + eps),  m_hat = m / bc1,  v_hat = v / bc2
 * written as PyTorch does: w -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps). One pass over memory. */
static void adam_update(float *w, const float *g, float *m, float *v, size_t n, float wd, float keep,
                        float beta1, float beta2, float eps, float step_size, float bc2_sqrt)
{
    float one_b1 = 1.0f - beta1, one_b2 = 1.0f - beta2;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * w[i];
        float mi = beta1 * m[i] + one_b1 * gi;
        float vi = beta2 * v[i] + one_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] * keep - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}

/* One step is one pass over the whole flat block (w, g, m, v), cut into pool chunks that do not
 * care where one tensor ends: a chunk applies each tensor's rule (its weight decay) to the part
 * of it that falls inside. One parallel loop per step instead of one per tensor. */
typedef struct {
    const knob_optim *o;
    float lr, step_size, bc2_sqrt, keep;
} optim_task;

static void optim_chunk(void *ctx, long lo, long hi)
{
    const optim_task *k = ctx;
    const knob_optim *o = k->o;
    const knob_optim_config *c = &o->cfg;
    const knob_params *p = o->p;
    size_t at = 0;
    for (int i = 0; i < p->n && at < (size_t)hi; at += p->t[i]->n_elems, i++) {
        const knob_tensor *t = p->t[i];
        size_t t0 = KNOB_MAX(at, (size_t)lo), t1 = KNOB_MIN(at + t->n_elems, (size_t)hi);
        if (t0 >= t1)
            continue;
        size_t n = t1 - t0;
        float *w = p->data + t0, *g = p->grad + t0, *m = o->m + t0;
        float wd = t->decay ? c->weight_decay : 0.0f;
        switch (c->kind) {
        case KNOB_OPTIM_SGD:
            sgd_update(w, g, m, n, k->lr, wd, c->momentum, c->nesterov);
            break;
        case KNOB_OPTIM_ADAM:
            adam_update(w, g, m, o->v + t0, n, wd, 1.0f, c->beta1, c->beta2, c->eps, k->step_size,
                        k->bc2_sqrt);
            break;
        case KNOB_OPTIM_ADAMW:
            adam_update(w, g, m, o->v + t0, n, 0.0f, wd != 0.0f ? k->keep : 1.0f, c->beta1, c->beta2,
                        c->eps, k->step_size, k->bc2_sqrt);
            break;
        }
    }
}

void knob_optim_step(knob_optim *o, float lr)
{
    const knob_optim_config *c = &o->cfg;
    knob_params *p = o->p;
    KNOB_ASSERT(p && o->m && p->data && p->grad);
    o->step++;

    /* bias corrections for step t = o->step (Adam, AdamW) */
    double bc1 = 1.0 - pow((double)c->beta1, (double)o->step);
    double bc2 = 1.0 - pow((double)c->beta2, (double)o->step);
    optim_task k = {o, lr, (float)((double)lr / bc1), (float)sqrt(bc2),
                    (float)(1.0 - (double)lr * (double)c->weight_decay)};
    size_t at = 0;
    for (int i = 0; i < p->n; i++)
        at += p->t[i]->n_elems;
    KNOB_ASSERT(at == p->n_elems);
    /* 4 floats read and 3 written per element: chunks of a quarter of the usual size */
    knob_par_items((long)p->n_elems, 4.0, optim_chunk, &k);
}

/* ------------------------------------------------------------------------------------------------
 * Gradient clipping */

/* The sum of squares is split into at most N_CHUNKS fixed chunks whose bounds depend only on the
 * element count; each chunk is summed serially in double and the partials are added in chunk
 * order, so the norm is the same for any number of threads. */
#define N_CHUNKS 256

typedef struct {
    const float *g;
    size_t n, chunk;
    double *partial;
    float scale;
    float *gw;
} clip_task;

static void clip_sumsq(void *ctx, long lo, long hi)
{
    const clip_task *k = ctx;
    for (long c = lo; c < hi; c++) {
        size_t i0 = (size_t)c * k->chunk, i1 = KNOB_MIN(k->n, i0 + k->chunk);
        double s = 0.0;
        for (size_t i = i0; i < i1; i++)
            s += (double)k->g[i] * (double)k->g[i];
        k->partial[c] = s;
    }
}

static void clip_scale(void *ctx, long lo, long hi)
{
    const clip_task *k = ctx;
    for (long i = lo; i < hi; i++)
        k->gw[i] *= k->scale;
}

/* norm = sqrt(sum g^2) over every gradient; if norm > max_norm, g *= max_norm / norm.
 * PyTorch divides by (norm + 1e-6) and always multiplies (by 1 when under the limit); here the
 * scale is exact and grads under the limit are left untouched. A non-finite norm (a nan or inf
 * gradient) is returned without scaling, for the caller to report; max_norm <= 0 (or nan) only
 * measures. */
float knob_clip_grad_norm(knob_params *p, float max_norm)
{
    size_t n = p->n_elems;
    if (!p->grad || n == 0)
        return 0.0f;
    const float *g = p->grad;
    size_t chunk = (n + N_CHUNKS - 1) / N_CHUNKS;
    int n_chunks = (int)((n + chunk - 1) / chunk);
    double partial[N_CHUNKS];
    clip_task k = {g, n, chunk, partial, 1.0f, NULL};
    knob_parallel_for(n_chunks, n >= KNOB_PAR_MIN ? 1 : n_chunks, clip_sumsq, &k);
    double sum = 0.0;
    for (int c = 0; c < n_chunks; c++)
        sum += partial[c];
    double norm = sqrt(sum);

    if (isfinite(norm) && max_norm > 0.0f && norm > (double)max_norm) {
        float scale = (float)((double)max_norm / norm);
        k.scale = scale;
        k.gw = p->grad;
        knob_par_items((long)n, 1.0, clip_scale, &k);
    }
    return (float)norm;
}
