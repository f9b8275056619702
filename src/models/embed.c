/* embed.c: looking at embedding tables: nearest rows by cosine similarity, and a 2-D principal
 * component projection of a few vectors (knob embed).
 *
 * PCA here is for a handful of points in C dimensions (C up to a few thousand): the points are
 * centred, and the two leading eigenvectors of their covariance X^T X are found by power iteration
 * on the small Gram matrix G = X X^T (n x n), deflating after the first; the coordinates of point i
 * along axis a are sqrt(lambda_a) u_a[i]. Everything is in double, from a fixed start vector, so
 * the same input gives the same picture. Signs of principal axes are arbitrary: each axis is turned
 * so that its largest-magnitude coordinate is positive.
 *
 * Not here: reading models (src/io/gpt_formats.c) and drawing (cli/cmd_embed.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

int knob_cosine_top(const float *E, int n, int C, const float *v, const int *skip, int n_skip, int k, int *ids,
                    float *sims)
{
    double vn = 0;
    for (int c = 0; c < C; c++)
        vn += (double)v[c] * v[c];
    vn = sqrt(vn);
    int got = 0;
    for (int i = 0; i < n; i++) {
        int skipped = 0;
        for (int j = 0; j < n_skip && !skipped; j++)
            skipped = skip[j] == i;
        if (skipped)
            continue;
        const float *e = E + (size_t)i * C;
        double dot = 0, en = 0;
        for (int c = 0; c < C; c++) {
            dot += (double)e[c] * v[c];
            en += (double)e[c] * e[c];
        }
        float s = en > 0 && vn > 0 ? (float)(dot / (sqrt(en) * vn)) : 0.0f;
        if (got < k) {
            got++;
        } else if (!(s > sims[got - 1])) {
            continue;
        }
        int at = got - 1;   /* insertion into the sorted list (ties keep the lower id first) */
        while (at > 0 && s > sims[at - 1]) {
            sims[at] = sims[at - 1];
            ids[at] = ids[at - 1];
            at--;
        }
        sims[at] = s;
        ids[at] = i;
    }
    return got;
}

/* Leading eigenvector u (n) and eigenvalue of the symmetric G (n, n), by power iteration. */
static double power_iter(const double *G, int n, double *u, double *tmp)
{
    for (int i = 0; i < n; i++)
        u[i] = 1.0 + 0.01 * i;   /* fixed start, not orthogonal to anything in practice */
    double lambda = 0;
    for (int it = 0; it < 1000; it++) {
        double norm = 0;
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++)
                s += G[(size_t)i * n + j] * u[j];
            tmp[i] = s;
            norm += s * s;
        }
        norm = sqrt(norm);
        if (norm == 0)
            return 0;
        double change = 0;
        for (int i = 0; i < n; i++) {
            double x = tmp[i] / norm;
            change += fabs(x - u[i]);
            u[i] = x;
        }
        lambda = norm;
        if (change < 1e-12 * n)
            break;
    }
    return lambda;
}

knob_status knob_pca2(const float *X, int n, int C, float *out, float *var_frac, knob_err *err)
{
    if (n < 1 || C < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "pca: need at least one point of at least one dimension (got %d x %d)",
                         n, C);
    double *mean = knob_calloc((size_t)C, sizeof *mean);
    double *G = knob_calloc((size_t)n * n, sizeof *G);
    double *u = knob_malloc((size_t)n * 3 * sizeof *u);
    if (!mean || !G || !u) {
        knob_free(mean);
        knob_free(G);
        knob_free(u);
        return knob_fail(err, KNOB_ERR_NOMEM, "pca: out of memory for %d points", n);
    }
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            mean[c] += X[(size_t)i * C + c] / (double)n;
    double trace = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int c = 0; c < C; c++)
                s += (X[(size_t)i * C + c] - mean[c]) * (X[(size_t)j * C + c] - mean[c]);
            G[(size_t)i * n + j] = G[(size_t)j * n + i] = s;
        }
    for (int i = 0; i < n; i++)
        trace += G[(size_t)i * n + i];
    double *tmp = u + 2 * (size_t)n;
    for (int a = 0; a < 2; a++) {
        double *ua = u + (size_t)a * n;
        double lambda = power_iter(G, n, ua, tmp);
        for (int i = 0; i < n; i++)   /* deflate: G -= lambda u u^T */
            for (int j = 0; j < n; j++)
                G[(size_t)i * n + j] -= lambda * ua[i] * ua[j];
        int big = 0;
        for (int i = 1; i < n; i++)
            if (fabs(ua[i]) > fabs(ua[big]))
                big = i;
        double sign = ua[big] < 0 ? -1 : 1, scale = sqrt(lambda > 0 ? lambda : 0);
        for (int i = 0; i < n; i++)
            out[(size_t)i * 2 + a] = (float)(sign * scale * ua[i]);
        if (var_frac)
            var_frac[a] = trace > 0 ? (float)(lambda / trace) : 0.0f;
    }
    knob_free(mean);
    knob_free(G);
    knob_free(u);
    return KNOB_OK;
}
