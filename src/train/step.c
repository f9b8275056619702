/* step.c: the training step and the evaluation pass that every family's trainer shares.
 *
 * A step: zero the parameter grads; for each micro-batch fill the inputs, forward, stop on a
 * non-finite loss, backward (grads accumulate); scale the grads by 1/accum (each micro-batch's loss
 * is a mean); measure (and clip) the global norm, stop when it is not finite, naming the first
 * tensor whose gradient is not; the optimizer step at the scheduled rate. Nothing is allocated.
 * With skip_nonfinite such a step is skipped instead: every micro-batch is still filled and run
 * forward (so the data and dropout generators advance exactly as in a good step), but there is no
 * optimizer update; the result says so and the caller counts it.
 *
 * A test hook, knob_step_fault_at, makes one chosen step's loss (or one parameter's gradient) nan,
 * so tests can reach the non-finite paths deterministically; nothing outside tests calls it.
 *
 * Evaluation: forward over batches from a fill callback, dropout as the graph has it (callers
 * switch a training graph to inference first), summing a scalar loss, or cross-entropy and argmax
 * from logits and targets with the padding rows of a short last batch left out.
 *
 * Data parallelism (s->dist, src/train/dist.c): every rank runs its own micro-batches, then the
 * ranks agree on the step (the losses and a count of non-finite ones are summed first, so every
 * rank skips or fails together: a rank never returns early while the others wait for it), the
 * gradients are summed across ranks in rank order and scaled by 1/(accum N). Without shard every
 * rank then holds the same gradient and takes the same clip and optimizer step; with shard
 * (ZeRO-1) each rank sums, clips and steps only its slice (the norm's squares summed over the
 * ranks in rank order) and the updated parameter slices are gathered.
 *
 * Not here: when to step or evaluate, data order, checkpoints (the trainers, checkpoint.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

/* the first parameter whose gradient holds a nan or inf, or NULL */
static const knob_tensor *first_bad_grad(const knob_params *P)
{
    for (int i = 0; i < P->n; i++) {
        const knob_tensor *t = P->t[i];
        for (size_t j = 0; j < t->n_elems; j++)
            if (!isfinite(t->grad[j]))
                return t;
    }
    return NULL;
}

/* the test hook: the step to poison (0: none) and the parameter whose gradient gets the nan
 * (NULL: the loss) */
static long fault_step;
static const char *fault_tensor;

void knob_step_fault_at(long step, const char *tensor)
{
    fault_step = step;
    fault_tensor = tensor;
}

static void inject_grad_fault(knob_params *P)
{
    for (int i = 0; i < P->n; i++)
        if (strcmp(P->t[i]->name, fault_tensor) == 0 && P->t[i]->n_elems > 0)
            P->t[i]->grad[P->t[i]->n_elems - 1] = NAN;
}

/* ZeRO-1: the global norm from this rank's slice [lo, hi) of the summed gradient, the squares
 * summed serially in double and the ranks' partial sums added in rank order; clipped as
 * knob_clip_grad_norm does */
static knob_status shard_clip(knob_step *s, long step, float *norm_out, knob_err *err)
{
    size_t lo, hi;
    knob_dist_slice(s->P->n_elems, knob_dist_rank(), &lo, &hi);
    float *g = s->P->grad;
    double sq = 0;
    for (size_t i = lo; i < hi; i++)
        sq += (double)g[i] * (double)g[i];
    knob_status st = knob_dist_sum_f64(&sq, 1, step, err);
    if (st)
        return st;
    double norm = sqrt(sq);
    if (isfinite(norm) && s->clip > 0.0f && norm > (double)s->clip) {
        float scale = (float)((double)s->clip / norm);
        for (size_t i = lo; i < hi; i++)
            g[i] *= scale;
    }
    *norm_out = (float)norm;
    return KNOB_OK;
}

knob_status knob_step_run(knob_step *s, long step, float lr, knob_step_result *out, knob_err *err)
{
    int accum = s->accum > 0 ? s->accum : 1, fault = fault_step > 0 && step == fault_step;
    int n_ranks = s->dist ? knob_dist_size() : 1;
    int fresh = 1;        /* P's grads hold nothing of this step yet: the first backward sets them */
    if (s->dist && s->dropout)   /* this rank's dropout stream for this step */
        knob_rng_seed(knob_graph_rng(s->g),
                      knob_rng_u64(s->dropout) ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(knob_dist_rank() + 1)));
    double sum = 0;
    int bad = 0;          /* a micro-batch's loss was not finite (when skipping) */
    float bad_loss = NAN; /* the first such loss */
    if (out)
        *out = (knob_step_result){.loss = NAN, .grad_norm = NAN};
    for (int a = 0; a < accum; a++) {
        int rows = 0;
        knob_status st = s->fill ? s->fill(s->ctx, a, &rows, err) : KNOB_OK;
        if (st || (st = knob_graph_forward(s->g, err)) != KNOB_OK)
            return st;
        float *lp = knob_node_data(s->loss);
        if (fault && !fault_tensor && a == 0)
            lp[0] = NAN;
        float loss = lp[0];
        if (!isfinite(loss)) {
            if (!s->skip_nonfinite && !s->dist)   /* with ranks: fail together, below */
                return knob_fail(err, KNOB_ERR_NUMERIC, "step %ld: loss is %s (last finite %.4g at step %ld); try a lower --lr",
                                 step, isnan(loss) ? "nan" : "inf", s->last_finite, s->last_finite_step);
            if (!bad)
                bad_loss = loss;
            bad = 1;
            continue;   /* the later micro-batches still draw their data and dropout */
        }
        sum += loss;
        if (!bad && fresh)
            knob_graph_backward_set(s->g, s->loss, s->P);
        else if (!bad)
            knob_graph_backward(s->g, s->loss);
        fresh = 0;
    }
    if (s->dist) {   /* agree on the losses first: every rank skips or fails together */
        double v[3] = {bad ? 0 : sum, bad, bad ? bad_loss : 0};
        knob_status st = knob_dist_sum_f64(v, 3, step, err);
        if (st)
            return st;
        sum = v[0];
        accum *= n_ranks;
        if (v[1] > 0) {
            bad = 1;
            bad_loss = (float)v[2];
            if (!s->skip_nonfinite) {
                knob_dist_agree();
                return knob_fail(err, KNOB_ERR_NUMERIC, "step %ld: loss is %s on %g rank%s (last finite %.4g at step "
                                 "%ld); try a lower --lr", step, isnan(bad_loss) ? "nan" : "inf", v[1],
                                 v[1] == 1 ? "" : "s", s->last_finite, s->last_finite_step);
            }
        }
    }
    if (bad) {
        if (fresh)   /* no backward ran: the grads still hold the last step's */
            knob_params_zero_grad(s->P);
        if (out)
            *out = (knob_step_result){.loss = bad_loss, .grad_norm = NAN, .skipped = 1};
        return KNOB_OK;
    }
    if (fault && fault_tensor)
        inject_grad_fault(s->P);
    size_t lo = 0, hi = s->P->n_elems;   /* the floats this rank sums and steps */
    if (s->dist) {
        knob_status st = s->shard ? knob_dist_reduce_scatter(s->dist, s->P->grad, step, err)
                                  : knob_dist_allreduce(s->dist, s->P->grad, step, err);
        if (st)
            return st;
        if (s->shard)
            knob_dist_slice(s->P->n_elems, knob_dist_rank(), &lo, &hi);
    }
    if (accum > 1) {
        float inv = 1.0f / (float)accum;
        for (size_t i = lo; i < hi; i++)
            s->P->grad[i] *= inv;
    }
    float norm;
    if (s->dist && s->shard) {
        knob_status st = shard_clip(s, step, &norm, err);
        if (st)
            return st;
    } else {
        norm = knob_clip_grad_norm(s->P, s->clip);
    }
    if (!isfinite(norm) && s->dist)
        knob_dist_agree();   /* the same norm on every rank */
    if (!isfinite(norm)) {
        if (s->skip_nonfinite) {
            if (out)
                *out = (knob_step_result){.loss = sum / accum, .grad_norm = norm, .skipped = 1};
            return KNOB_OK;
        }
        const knob_tensor *bad_t = s->shard ? NULL : first_bad_grad(s->P);
        if (bad_t)
            return knob_fail(err, KNOB_ERR_NUMERIC, "step %ld: gradient of '%.128s' is not finite (loss %.4g); try a lower --lr",
                             step, bad_t->name, sum / accum);
        return knob_fail(err, KNOB_ERR_NUMERIC, "step %ld: gradient norm is %s (loss %.4g); try a lower --lr", step,
                         isnan(norm) ? "nan" : "inf", sum / accum);
    }
    knob_optim_step(s->opt, lr);
    if (s->dist && s->shard) {
        knob_status st = knob_dist_allgather(s->dist, s->P->data, step, err);
        if (st)
            return st;
    }
    s->last_finite = sum / accum;
    s->last_finite_step = step;
    if (out)
        *out = (knob_step_result){.loss = sum / accum, .grad_norm = norm};
    return KNOB_OK;
}

/* the first index of the largest value */
static int argmax(const float *z, int K)
{
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best])
            best = k;
    return best;
}

knob_status knob_eval_run(const knob_eval *e, knob_eval_stats *out, int32_t *pred, knob_err *err)
{
    memset(out, 0, sizeof *out);
    const float *z = e->logits ? knob_node_data(e->logits) : NULL;
    int B = z ? knob_node_tensor(e->logits)->shape[0] : 0, K = z ? knob_node_tensor(e->logits)->shape[1] : 0;
    double sum = 0;
    for (int i = 0; i < e->n_batches; i++) {
        int rows = B;
        knob_status s = e->fill(e->ctx, i, &rows, err);
        if (s || (s = knob_graph_forward(e->g, err)) != KNOB_OK)
            return s;
        if (e->loss) {
            sum += knob_node_data(e->loss)[0];
            out->n += rows;
            continue;
        }
        for (int r = 0; r < rows && e->targets; r++) {
            int t = e->targets[r];
            if (t < 0 || t >= K)
                return knob_fail(err, KNOB_ERR_FORMAT, "image %ld: label %d is outside the model's %d classes", out->n, t,
                                 K);
            const float *zr = z + (size_t)r * K;
            int p = argmax(zr, K);
            sum += knob_nll_row(zr, (size_t)K, t);   /* -log softmax(z)[t], the shared kernel */
            out->correct += p == t;
            if (pred)
                pred[out->n] = p;
            out->n++;
        }
    }
    if (e->loss)
        out->loss = e->n_batches ? sum / e->n_batches : NAN;
    else
        out->loss = out->n ? sum / (double)out->n : NAN;
    out->accuracy = out->n && !e->loss && e->targets ? (double)out->correct / (double)out->n : NAN;
    return KNOB_OK;
}
