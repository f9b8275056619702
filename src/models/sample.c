/* sample.c: choosing the next token from logits: temperature, then top-k, then top-p (nucleus)
 * over the tokens sorted by probability, most likely first (ties: lower id first), then one uniform
 * draw over what is kept. Greedy (temperature 0) is the argmax, with no draw.
 *
 * Not here: the model (lm.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

void knob_softmax_temp(const float *logits, int V, float temperature, float *probs)
{
    float maxv = logits[0];
    for (int i = 1; i < V; i++)
        maxv = fmaxf(maxv, logits[i]);
    double sum = 0;
    for (int i = 0; i < V; i++) {
        probs[i] = expf((logits[i] - maxv) / temperature);
        sum += probs[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < V; i++)
        probs[i] *= inv;
}

static int argmax(const float *x, int V)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* heap of ids ordered by (probs desc, id asc): "a before b" */
static int before(const float *p, int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); }

static void sift_down(int *h, int n, int i, const float *p)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && before(p, h[l], h[top]))
            top = l;
        if (r < n && before(p, h[r], h[top]))
            top = r;
        if (top == i)
            return;
        int t = h[i];
        h[i] = h[top];
        h[top] = t;
        i = top;
    }
}

/* Kept set: the most likely tokens, in order, while fewer than top_k are kept and the kept mass is
 * below top_p. A heap yields them in order, so only the kept ones are sorted (O(V + k log V)). */
int knob_sample_probs(const float *logits, int V, const knob_sampler *s, float *probs, int *idx)
{
    if (!(s->temperature > 0.0f)) {
        int best = argmax(logits, V);
        memset(probs, 0, (size_t)V * sizeof *probs);
        probs[best] = 1.0f;
        return 1;
    }
    knob_softmax_temp(logits, V, s->temperature, probs);
    int top_k = s->top_k > 0 && s->top_k < V ? s->top_k : V;
    int nucleus = s->top_p > 0.0f && s->top_p < 1.0f;
    if (top_k == V && !nucleus)
        return V;
    for (int i = 0; i < V; i++)
        idx[i] = i;
    for (int i = V / 2 - 1; i >= 0; i--)
        sift_down(idx, V, i, probs);
    /* pop the best into the tail of idx: kept ids end up at idx[V-1], idx[V-2], ... */
    int n = V, kept = 0;
    double mass = 0;
    while (kept < top_k && n > 0 && !(nucleus && mass >= (double)s->top_p)) {
        int best = idx[0];
        idx[0] = idx[--n];
        idx[n] = best;
        sift_down(idx, n, 0, probs);
        mass += probs[best];
        kept++;
    }
    /* zero the rest, renormalise the kept */
    for (int i = 0; i < n; i++)
        probs[idx[i]] = 0.0f;
    float inv = (float)(1.0 / mass);
    for (int i = n; i < V; i++)
        probs[idx[i]] *= inv;
    return kept;
}

int knob_sample(const float *logits, int V, const knob_sampler *s, knob_rng *r, float *probs, int *idx)
{
    if (!(s->temperature > 0.0f))
        return argmax(logits, V);
    knob_sample_probs(logits, V, s, probs, idx);
    double u = knob_rng_uniform_double(r), cum = 0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (probs[i] <= 0.0f)
            continue;
        cum += probs[i];
        last = i;
        if (u < cum)
            return i;
    }
    return last;   /* rounding left u above the sum */
}

/* The heap of knob_sample_probs over the logits themselves (their order is the probabilities'). */
int knob_top_tokens(const float *logits, int V, int k, int *ids, int *scratch)
{
    k = KNOB_MAX(0, KNOB_MIN(k, V));
    for (int i = 0; i < V; i++)
        scratch[i] = i;
    for (int i = V / 2 - 1; i >= 0; i--)
        sift_down(scratch, V, i, logits);
    int n = V;
    for (int r = 0; r < k; r++) {
        ids[r] = scratch[0];
        scratch[0] = scratch[--n];
        sift_down(scratch, n, 0, logits);
    }
    return k;
}
