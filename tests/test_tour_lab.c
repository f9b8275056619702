/* test_tour_lab.c: the numerics behind the tour's laboratory chapters (2, 3, 4, 8, 9, 10), each
 * against independent math: marching squares against a known circle, a plane and a saddle; the
 * toy points against their construction; a toy net's loss, accuracy and grid against the same net
 * evaluated by hand in double; the line's loss surface against its moment form, its optimum and
 * Hessian against finite differences, and the optimizers' paths against hand-written iterations;
 * the trapped toy against the roots of f'; filter normalisation's norms; central differences
 * against known derivatives; the backprop demo against a hand-derived gradient; and the size
 * sweep's overfitting on real digits (skipped when data/mnist is absent). */
#include "test.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------------------------------
 * Contours and pictures */

TEST(contour_circle)
{
    enum { N = 41 };
    double z[N * N];
    for (int j = 0; j < N; j++)
        for (int i = 0; i < N; i++) {
            double x = -1 + 2.0 * i / (N - 1), y = -1 + 2.0 * j / (N - 1);
            z[j * N + i] = x * x + y * y;
        }
    static double seg[4 * 1000];
    long n = knob_contour_segments(z, N, N, 0.25, seg, 1000);
    CHECK(n > 40 && n < 200);
    double len = 0, worst = 0;
    for (long k = 0; k < n && k < 1000; k++) {
        double x0 = -1 + 2 * seg[4 * k] / (N - 1), y0 = -1 + 2 * seg[4 * k + 1] / (N - 1);
        double x1 = -1 + 2 * seg[4 * k + 2] / (N - 1), y1 = -1 + 2 * seg[4 * k + 3] / (N - 1);
        worst = fmax(worst, fabs(hypot(x0, y0) - 0.5));
        worst = fmax(worst, fabs(hypot(x1, y1) - 0.5));
        len += hypot(x1 - x0, y1 - y0);
    }
    CHECK(worst < 0.01);                                  /* on the circle of radius 0.5 */
    CHECK_NEAR(len, 2 * 3.14159265358979 * 0.5, 0.02, 0);   /* and all the way round */
    /* no line outside the field's range; the count is returned even when cap is small */
    CHECK(knob_contour_segments(z, N, N, 5.0, NULL, 0) == 0);
    CHECK(knob_contour_segments(z, N, N, 0.25, NULL, 0) == n);
}

TEST(contour_plane_and_saddle)
{
    enum { N = 11 };
    double z[N * N], seg[4 * 400];
    for (int j = 0; j < N; j++)
        for (int i = 0; i < N; i++)
            z[j * N + i] = 0.1 * i + 0.0 * j;   /* a plane rising along x */
    long n = knob_contour_segments(z, N, N, 0.35, seg, 400);
    CHECK(n == N - 1);   /* one segment per row of cells, all at x = 3.5 grid units */
    for (long k = 0; k < n; k++) {
        CHECK_NEAR(seg[4 * k], 3.5, 0, 1e-12);
        CHECK_NEAR(seg[4 * k + 2], 3.5, 0, 1e-12);
    }
    /* the saddle z = x y (x, y in grid units from the centre, offset so no node is exactly 0):
     * level 0 runs along the two axes */
    for (int j = 0; j < N; j++)
        for (int i = 0; i < N; i++)
            z[j * N + i] = (i - 4.7) * (j - 5.3);
    n = knob_contour_segments(z, N, N, 0.0, seg, 400);
    CHECK(n >= 2 * (N - 1) - 2);
    for (long k = 0; k < n && k < 400; k++)
        for (int e = 0; e < 2; e++) {
            double x = seg[4 * k + 2 * e], y = seg[4 * k + 2 * e + 1];
            CHECK(fabs(x - 4.7) < 1e-9 || fabs(y - 5.3) < 1e-9);
        }
}

TEST(cmap_and_field_picture)
{
    knob_err err;
    uint8_t lo[3], hi[3], mid[3], grey[3];
    knob_cmap_rgb(KNOB_CMAP_DIVERGING, 0, lo);
    knob_cmap_rgb(KNOB_CMAP_DIVERGING, 1, hi);
    knob_cmap_rgb(KNOB_CMAP_DIVERGING, 0.5, mid);
    knob_cmap_rgb(KNOB_CMAP_DIVERGING, NAN, grey);
    CHECK(lo[2] > lo[0] && hi[0] > hi[2]);                 /* blue to red */
    CHECK(mid[0] > 240 && mid[1] > 240 && mid[2] > 240);   /* white between */
    CHECK(grey[0] == grey[1] && grey[1] == grey[2]);
    double z[4 * 3] = {0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5};
    char path[4096];
    snprintf(path, sizeof path, "%s/field.svg", test_tmpdir());
    knob_field_panel pan = {.title = "t", .z = z};
    knob_field_plot p = {.title = "T", .x0 = 0, .x1 = 1, .y0 = 0, .y1 = 1, .nx = 4, .ny = 3, .zmin = 0, .zmax = 5,
                         .n_levels = 4};
    CHECK_OK(knob_fields_svg(path, &p, &pan, 1, &err));
    unsigned char *buf;
    size_t len;
    CHECK_OK(knob_read_file(path, &buf, &len, &err));
    CHECK(strstr((char *)buf, "<svg") && strstr((char *)buf, "</svg>") && strstr((char *)buf, "<path"));
    knob_free(buf);
    p.zmax = 0;   /* an empty colour range is refused, and nothing is written */
    snprintf(path, sizeof path, "%s/field_bad.svg", test_tmpdir());
    CHECK_FAILS_WITH(knob_fields_svg(path, &p, &pan, 1, &err), KNOB_ERR_USAGE, "field_bad.svg");
    CHECK(fopen(path, "rb") == NULL);
}

/* ------------------------------------------------------------------------------------------------
 * Toy points and nets */

TEST(toy_data_shapes)
{
    knob_err err;
    knob_toy_data d, e;
    CHECK_OK(knob_toy_data_make(&d, KNOB_TOY_RINGS, 200, 0.0f, 3, &err));
    int n1 = 0;
    for (int i = 0; i < d.n; i++) {
        double r = hypot(d.x[2 * i], d.x[2 * i + 1]);
        CHECK_NEAR(r, d.y[i] ? 0.8 : 0.35, 1e-5, 1e-6);
        n1 += d.y[i];
    }
    CHECK(n1 == 100);
    knob_toy_data_free(&d);
    CHECK_OK(knob_toy_data_make(&d, KNOB_TOY_SPIRALS, 100, 0.0f, 3, &err));
    /* point i: t = (i/2) / 50, radius 0.1 + 0.85 t, angle 3 pi t + pi (i % 2) */
    for (int i = 0; i < d.n; i++) {
        double t = (i / 2) / 50.0, a = 3 * 3.14159265358979 * t + 3.14159265358979 * (i % 2);
        CHECK_NEAR(d.x[2 * i], (0.1 + 0.85 * t) * cos(a), 0, 1e-6);
        CHECK_NEAR(d.x[2 * i + 1], (0.1 + 0.85 * t) * sin(a), 0, 1e-6);
    }
    knob_toy_data_free(&d);
    CHECK_OK(knob_toy_data_make(&d, KNOB_TOY_SPIRALS, 50, 0.1f, 9, &err));
    CHECK_OK(knob_toy_data_make(&e, KNOB_TOY_SPIRALS, 50, 0.1f, 9, &err));
    CHECK(memcmp(d.x, e.x, 100 * sizeof(float)) == 0);
    knob_toy_data_free(&d);
    knob_toy_data_free(&e);
    CHECK_FAILS_WITH(knob_toy_data_make(&d, KNOB_TOY_RINGS, 1, 0, 1, &err), KNOB_ERR_USAGE, "1 points");
}

/* the net's logits for point p, by hand in double from its parameters */
static void hand_logits(knob_params *P, int n_layers, int relu, const float *p, double out[2])
{
    double h[64] = {p[0], p[1]}, nh[64];
    int in = 2;
    for (int l = 0; l < n_layers; l++) {
        const knob_tensor *w = P->t[2 * l], *b = P->t[2 * l + 1];
        int o = w->shape[0];
        for (int r = 0; r < o; r++) {
            double s = b->data[r];
            for (int k = 0; k < in; k++)
                s += (double)w->data[r * in + k] * h[k];
            nh[r] = l + 1 < n_layers ? (relu ? fmax(s, 0) : tanh(s)) : s;
        }
        memcpy(h, nh, (size_t)o * sizeof *h);
        in = o;
    }
    out[0] = h[0];
    out[1] = h[1];
}

TEST(toy_net_eval_matches_hand)
{
    knob_err err;
    knob_toy_data d;
    CHECK_OK(knob_toy_data_make(&d, KNOB_TOY_SPIRALS, 60, 0.05f, 4, &err));
    for (int v = 0; v < 4; v++) {
        int mse = v & 1, relu = v >> 1;
        knob_toy_config c;
        knob_toy_config_default(&c);
        c.hidden[0] = 5, c.hidden[1] = 3, c.loss_mse = mse, c.relu = relu;
        knob_toy_net *m;
        CHECK_OK(knob_toy_net_new(&m, &c, &err));
        CHECK_OK(knob_toy_train(m, &d, 20, NULL, &err));
        double loss, acc, want = 0;
        int correct = 0;
        CHECK_OK(knob_toy_eval(m, &d, &loss, &acc, &err));
        for (int i = 0; i < d.n; i++) {
            double lg[2];
            hand_logits(knob_toy_net_params(m), 3, relu, d.x + 2 * i, lg);
            double p1 = exp(lg[1]) / (exp(lg[0]) + exp(lg[1]));
            want += mse ? (p1 - d.y[i]) * (p1 - d.y[i]) : -log(d.y[i] ? p1 : 1 - p1);
            correct += (p1 > 0.5) == (d.y[i] == 1);
        }
        CHECK_NEAR(loss, want / d.n, 1e-5, 1e-7);
        CHECK_NEAR(acc, (double)correct / d.n, 0, 1e-12);
        /* the grid: node (i, j) at (x0 + i dx, y0 + j dy) */
        double g[3 * 2];
        CHECK_OK(knob_toy_grid(m, -1, 1, -0.5, 0.5, 3, 2, g, &err));
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 3; i++) {
                float p[2] = {(float)(-1 + i), (float)(-0.5 + j)};
                double lg[2];
                hand_logits(knob_toy_net_params(m), 3, relu, p, lg);
                CHECK_NEAR(g[j * 3 + i], 1 / (1 + exp(lg[0] - lg[1])), 1e-5, 1e-7);
            }
        knob_toy_net_free(m);
    }
    knob_toy_data_free(&d);
}

TEST(toy_net_learns_and_repeats)
{
    knob_err err;
    /* a line: one linear layer separates points by the sign of x0 - x1 */
    knob_toy_data d;
    CHECK_OK(knob_toy_data_make(&d, KNOB_TOY_RINGS, 200, 0.0f, 5, &err));
    for (int i = 0; i < d.n; i++)
        d.y[i] = d.x[2 * i] - d.x[2 * i + 1] > 0.05f ? 1 : 0;
    knob_toy_config c;
    knob_toy_config_default(&c);
    c.n_hidden = 0;
    c.lr = 0.1f;
    knob_toy_net *m, *m2;
    double acc;
    CHECK_OK(knob_toy_net_new(&m, &c, &err));
    CHECK_OK(knob_toy_train(m, &d, 300, NULL, &err));
    CHECK_OK(knob_toy_eval(m, &d, NULL, &acc, &err));
    CHECK(acc >= 0.97);
    knob_toy_net_free(m);
    knob_toy_data_free(&d);
    /* the spirals need two hidden layers; mini-batches of 32, twice with one seed: the same bits */
    CHECK_OK(knob_toy_data_make(&d, KNOB_TOY_SPIRALS, 300, 0.03f, 5, &err));
    knob_toy_config_default(&c);
    c.batch = 64;
    CHECK_OK(knob_toy_net_new(&m, &c, &err));
    CHECK_OK(knob_toy_net_new(&m2, &c, &err));
    double losses[1500];
    CHECK_OK(knob_toy_train(m, &d, 1500, losses, &err));
    CHECK_OK(knob_toy_train(m2, &d, 700, NULL, &err));
    CHECK_OK(knob_toy_train(m2, &d, 800, NULL, &err));   /* in two calls: the state carries over */
    CHECK(memcmp(knob_toy_net_params(m)->data, knob_toy_net_params(m2)->data,
                 knob_toy_net_params(m)->n_elems * sizeof(float)) == 0);
    CHECK_OK(knob_toy_eval(m, &d, NULL, &acc, &err));
    CHECK(acc >= 0.95);
    CHECK(losses[1499] < losses[0] / 4);
    CHECK(knob_toy_steps(m) == 1500);
    knob_toy_data_free(&d);
    knob_toy_data e;
    CHECK_OK(knob_toy_data_make(&e, KNOB_TOY_SPIRALS, 30, 0.03f, 5, &err));
    CHECK_FAILS_WITH(knob_toy_train(m, &e, 1, NULL, &err), KNOB_ERR_USAGE, "300 points");
    knob_toy_data_free(&e);
    knob_toy_net_free(m);
    knob_toy_net_free(m2);
    c.n_hidden = 9;
    CHECK_FAILS_WITH(knob_toy_net_new(&m, &c, &err), KNOB_ERR_USAGE, "9 hidden layers");
}

TEST(toy_width_sweep_counts)
{
    knob_err err;
    knob_toy_data d;
    CHECK_OK(knob_toy_data_make(&d, KNOB_TOY_RINGS, 100, 0.02f, 2, &err));
    knob_toy_config c;
    knob_toy_config_default(&c);
    c.n_hidden = 1;
    c.lr = 0.05f;
    int widths[2] = {1, 16};
    double loss[2 * 3], frac[2];
    CHECK_OK(knob_toy_width_sweep(&d, &c, widths, 2, 3, 300, 0.1, loss, frac, &err));
    /* one hidden unit sees only one line: it cannot enclose the inner ring; sixteen can */
    CHECK(frac[0] == 0.0);
    CHECK(frac[1] == 1.0);
    for (int k = 0; k < 3; k++) {
        CHECK(loss[k] > 0.3);
        CHECK(loss[3 + k] < 0.1);
    }
    knob_toy_data_free(&d);
}

/* ------------------------------------------------------------------------------------------------
 * The line's landscape */

TEST(line_surface_optimum_and_hessian)
{
    knob_err err;
    knob_line_data d;
    CHECK_OK(knob_line_data_make(&d, 25, 2.0, -0.5, 0.3, 7, &err));
    /* the moment form: L = w^2 Sxx + 2 w b Sx + b^2 - 2 w Sxy - 2 b Sy + Syy (means) */
    double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
    for (int i = 0; i < d.n; i++) {
        sx += d.x[i] / d.n, sy += d.y[i] / d.n, sxx += d.x[i] * d.x[i] / d.n;
        sxy += d.x[i] * d.y[i] / d.n, syy += d.y[i] * d.y[i] / d.n;
    }
    double z[5 * 4];
    knob_line_surface(&d, -1, 3, -2, 1, 5, 4, z);
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 5; i++) {
            double w = -1 + i, b = -2 + j;
            double want = w * w * sxx + 2 * w * b * sx + b * b - 2 * w * sxy - 2 * b * sy + syy;
            CHECK_NEAR(z[j * 5 + i], want, 1e-12, 1e-12);
        }
    double w, b, lmax, lmin, h = 1e-4;
    knob_line_optimum(&d, &w, &b, &lmax, &lmin);
    /* the gradient vanishes there (central differences) */
    CHECK_NEAR((knob_line_loss(&d, w + h, b) - knob_line_loss(&d, w - h, b)) / (2 * h), 0, 0, 1e-8);
    CHECK_NEAR((knob_line_loss(&d, w, b + h) - knob_line_loss(&d, w, b - h)) / (2 * h), 0, 0, 1e-8);
    /* the Hessian from second differences, and its eigenvalues by the quadratic formula */
    double L0 = knob_line_loss(&d, w, b), H = 1e-2;
    double hww = (knob_line_loss(&d, w + H, b) - 2 * L0 + knob_line_loss(&d, w - H, b)) / (H * H);
    double hbb = (knob_line_loss(&d, w, b + H) - 2 * L0 + knob_line_loss(&d, w, b - H)) / (H * H);
    double hwb = (knob_line_loss(&d, w + H, b + H) - knob_line_loss(&d, w + H, b - H) -
                  knob_line_loss(&d, w - H, b + H) + knob_line_loss(&d, w - H, b - H)) / (4 * H * H);
    double tr = hww + hbb, det = hww * hbb - hwb * hwb;
    CHECK_NEAR(lmax, tr / 2 + sqrt(tr * tr / 4 - det), 1e-6, 0);
    CHECK_NEAR(lmin, tr / 2 - sqrt(tr * tr / 4 - det), 1e-6, 0);
    knob_line_data_free(&d);
}

TEST(line_descent_paths_match_hand_iterations)
{
    knob_err err;
    knob_line_data d;
    CHECK_OK(knob_line_data_make(&d, 20, 1.5, 0.5, 0.2, 3, &err));
    /* the gradient of L by hand: dL/dw = 2 mean((w x + b - y) x), dL/db = 2 mean(w x + b - y) */
    enum { S = 40 };
    double path[3 * (S + 1)];
    for (int kind = 0; kind < 3; kind++) {
        knob_optim_config oc = {.kind = kind == 2 ? KNOB_OPTIM_ADAM : KNOB_OPTIM_SGD, .momentum = kind == 1 ? 0.9f : 0,
                                .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
        float lr = kind == 2 ? 0.1f : 0.2f;
        CHECK_OK(knob_line_descend(&d, &oc, lr, -2.0, 2.0, S, path, &err));
        double w = -2, b = 2, mw = 0, mb = 0, vw = 0, vb = 0;
        for (int k = 0; k <= S; k++) {
            CHECK_NEAR(path[3 * k], w, 1e-4, 1e-4);
            CHECK_NEAR(path[3 * k + 1], b, 1e-4, 1e-4);
            double gw = 0, gb = 0;
            for (int i = 0; i < d.n; i++) {
                double e = w * d.x[i] + b - d.y[i];
                gw += 2 * e * d.x[i] / d.n;
                gb += 2 * e / d.n;
            }
            if (kind == 0) {
                w -= lr * gw, b -= lr * gb;
            } else if (kind == 1) {
                mw = 0.9 * mw + gw, mb = 0.9 * mb + gb;
                w -= lr * mw, b -= lr * mb;
            } else {
                int t = k + 1;
                mw = 0.9 * mw + 0.1 * gw, mb = 0.9 * mb + 0.1 * gb;
                vw = 0.999 * vw + 0.001 * gw * gw, vb = 0.999 * vb + 0.001 * gb * gb;
                double c1 = 1 - pow(0.9, t), c2 = 1 - pow(0.999, t);
                w -= lr * (mw / c1) / (sqrt(vw / c2) + 1e-8);
                b -= lr * (mb / c1) / (sqrt(vb / c2) + 1e-8);
            }
        }
    }
    /* plain descent: just under 2 / lmax converges, just over it diverges */
    double w, b, lmax;
    knob_line_optimum(&d, &w, &b, &lmax, NULL);
    knob_optim_config sgd = {.kind = KNOB_OPTIM_SGD};
    CHECK_OK(knob_line_descend(&d, &sgd, (float)(1.9 / lmax), 0, 0, S, path, &err));
    CHECK(path[3 * S + 2] < path[2]);
    CHECK_OK(knob_line_descend(&d, &sgd, (float)(2.2 / lmax), 0, 0, S, path, &err));
    CHECK(!(path[3 * S + 2] < 10 * path[2]));
    knob_line_data_free(&d);
}

/* ------------------------------------------------------------------------------------------------
 * Landscapes */

/* the roots of f'(w) = 4 w^3 - 6 w + 1 by bisection */
static double trap_root(double lo, double hi)
{
    for (int k = 0; k < 200; k++) {
        double m = (lo + hi) / 2, fl = 4 * lo * lo * lo - 6 * lo + 1, fm = 4 * m * m * m - 6 * m + 1;
        if ((fl < 0) == (fm < 0))
            lo = m;
        else
            hi = m;
    }
    return (lo + hi) / 2;
}

TEST(trap_descends_into_the_nearest_valley)
{
    knob_err err;
    double deep = trap_root(-2, -1), shallow = trap_root(1, 2), ridge = trap_root(0, 0.5);
    CHECK(knob_trap_loss(deep) < knob_trap_loss(shallow));
    double starts[4] = {-2.0, ridge - 0.05, ridge + 0.05, 1.8}, w[4];
    CHECK_OK(knob_trap_descend(starts, 4, 0.01f, 2000, w, &err));
    CHECK_NEAR(w[0], deep, 0, 1e-4);
    CHECK_NEAR(w[1], deep, 0, 1e-4);
    CHECK_NEAR(w[2], shallow, 0, 1e-4);   /* just right of the ridge: trapped */
    CHECK_NEAR(w[3], shallow, 0, 1e-4);
    CHECK_FAILS_WITH(knob_trap_descend(starts, 0, 0.01f, 10, w, &err), KNOB_ERR_USAGE, "0 starts");
}

static knob_status quad_loss(void *ctx, double *loss, knob_err *err)
{
    (void)err;
    const knob_params *P = ctx;
    double s = 0;
    for (size_t k = 0; k < P->n_elems; k++)
        s += (double)P->data[k] * P->data[k];
    *loss = s;
    return KNOB_OK;
}

TEST(filter_direction_norms_and_slice)
{
    knob_err err;
    knob_params P;
    knob_params_init(&P);
    knob_tensor *w = knob_params_add(&P, "w", 2, (int[]){3, 4}, &err);
    knob_tensor *b = knob_params_add(&P, "b", 1, (int[]){3}, &err);
    knob_tensor *k = knob_params_add(&P, "k", 4, (int[]){2, 1, 2, 2}, &err);
    CHECK_OK(knob_params_alloc(&P, &err));
    knob_rng r;
    knob_rng_seed(&r, 5);
    for (size_t i = 0; i < P.n_elems; i++)
        P.data[i] = knob_rng_normal(&r) * (float)(1 + i % 3);
    float dir[12 + 3 + 8], dir2[23];
    knob_filter_direction(&P, &r, dir);
    knob_filter_direction(&P, &r, dir2);
    for (int f = 0; f < 3; f++) {   /* each row of w: |d_f| = |w_f| */
        double dn = 0, wn = 0;
        for (int j = 0; j < 4; j++)
            dn += dir[f * 4 + j] * dir[f * 4 + j], wn += w->data[f * 4 + j] * w->data[f * 4 + j];
        CHECK_NEAR(sqrt(dn), sqrt(wn), 1e-5, 0);
    }
    for (int j = 0; j < 3; j++)
        CHECK(dir[12 + j] == 0.0f);   /* biases stay */
    for (int f = 0; f < 2; f++) {   /* each output channel of the 4-D kernel */
        double dn = 0, wn = 0;
        for (int j = 0; j < 4; j++)
            dn += dir[15 + f * 4 + j] * dir[15 + f * 4 + j], wn += k->data[f * 4 + j] * k->data[f * 4 + j];
        CHECK_NEAR(sqrt(dn), sqrt(wn), 1e-5, 0);
    }
    (void)b;
    /* the slice of sum theta^2: at (a, b), |theta + a d1 + b d2|^2, expanded by hand */
    float theta[23];
    memcpy(theta, P.data, sizeof theta);
    double tt = 0, t1 = 0, t2 = 0, d11 = 0, d22 = 0, d12 = 0;
    for (int i = 0; i < 23; i++) {
        tt += (double)theta[i] * theta[i], t1 += (double)theta[i] * dir[i], t2 += (double)theta[i] * dir2[i];
        d11 += (double)dir[i] * dir[i], d22 += (double)dir2[i] * dir2[i], d12 += (double)dir[i] * dir2[i];
    }
    double z[5 * 3];
    CHECK_OK(knob_loss_slice(&P, dir, dir2, 0.5, 5, 3, quad_loss, &P, z, &err));
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 5; i++) {
            double a = -0.5 + 0.25 * i, c = -0.5 + 0.5 * j;
            double want = tt + 2 * a * t1 + 2 * c * t2 + a * a * d11 + c * c * d22 + 2 * a * c * d12;
            CHECK_NEAR(z[j * 5 + i], want, 1e-5, 1e-6);
        }
    CHECK(memcmp(theta, P.data, sizeof theta) == 0);   /* restored */
    knob_params_free(&P);
}

/* ------------------------------------------------------------------------------------------------
 * Backpropagation */

static double fd_test_fn(const double *x, void *ctx)
{
    (void)ctx;
    return sin(x[0]) * x[1] + exp(0.5 * x[2]) * x[0] * x[0];
}

TEST(fd_gradient_known_function)
{
    double x[3] = {0.7, -1.3, 0.4}, g[3];
    knob_fd_gradient(fd_test_fn, NULL, x, 3, 1e-5, g);
    CHECK_NEAR(g[0], cos(0.7) * -1.3 + exp(0.2) * 2 * 0.7, 0, 1e-8);
    CHECK_NEAR(g[1], sin(0.7), 0, 1e-8);
    CHECK_NEAR(g[2], 0.5 * exp(0.2) * 0.49, 0, 1e-8);
    CHECK(x[0] == 0.7 && x[1] == -1.3 && x[2] == 0.4);
}

TEST(backprop_demo_matches_hand_gradient)
{
    knob_err err;
    knob_backprop_report r;
    char path[4096];
    snprintf(path, sizeof path, "%s/graph.svg", test_tmpdir());
    CHECK_OK(knob_backprop_demo(path, 11, &r, &err));
    /* the same net by hand: the knobs are drawn as the demo draws them, W1 b1 W2 b2 */
    knob_rng rng;
    knob_rng_seed(&rng, 11);
    double p[9];
    for (int i = 0; i < 9; i++)
        p[i] = (double)(float)(knob_rng_uniform_double(&rng) * 2 - 1);
    const double *W1 = p, *b1 = p + 4, *W2 = p + 6, b2 = p[8], x[2] = {0.5, -1.0}, t = 1.0;
    double h[2], z[2];
    for (int i = 0; i < 2; i++) {
        z[i] = W1[2 * i] * x[0] + W1[2 * i + 1] * x[1] + b1[i];
        h[i] = tanh(z[i]);
    }
    double out = W2[0] * h[0] + W2[1] * h[1] + b2, dout = 2 * (out - t);
    double want[9];
    for (int i = 0; i < 2; i++) {
        double dz = dout * W2[i] * (1 - h[i] * h[i]);
        want[2 * i] = dz * x[0];
        want[2 * i + 1] = dz * x[1];
        want[4 + i] = dz;
        want[6 + i] = dout * h[i];
    }
    want[8] = dout;
    CHECK_NEAR(r.loss, (out - t) * (out - t), 1e-5, 1e-7);
    CHECK(r.n == 9);
    for (int i = 0; i < 9 && i < r.n; i++) {
        CHECK_NEAR(r.rows[i].autodiff, want[i], 1e-4, 1e-6);
        CHECK_NEAR(r.rows[i].numeric, want[i], 2e-2, 2e-3);
    }
    CHECK(strcmp(r.rows[0].name, "W1[0,0]") == 0 && strcmp(r.rows[8].name, "b2[0]") == 0);
    CHECK(r.max_rel_diff < 2e-2);
    unsigned char *buf;
    size_t len;
    CHECK_OK(knob_read_file(path, &buf, &len, &err));
    CHECK(strstr((char *)buf, "tanh") && strstr((char *)buf, "marker-end"));
    knob_free(buf);
}

/* ------------------------------------------------------------------------------------------------
 * Generalization on real digits */

TEST(size_sweep_overfits_small_sets)
{
    knob_err err;
    char data[2048], probe[2200];
    snprintf(probe, sizeof probe, "%s/mnist/9.json", knob_data_dir(data, sizeof data));
    FILE *f = fopen(probe, "rb");
    if (!f)
        SKIP("data/mnist/*.json absent (sh scripts/setup.sh fetches them)");
    fclose(f);
    knob_splits s;
    CHECK_OK(knob_data_load(&s, "digits", NULL, 0, 1, &err));
    knob_vision_config mc = {.kind = KNOB_VISION_MLP, .c = 1, .h = 28, .w = 28, .n_classes = 10, .n_hidden = 1,
                             .hidden = {64}};
    knob_train_config tc;
    knob_train_config_default(&tc);
    tc.batch = 50;
    tc.sched.lr = 3e-3f;
    int sizes[2] = {50, 2000};
    knob_size_run run[2];
    CHECK_OK(knob_size_sweep(&s, &mc, &tc, sizes, 2, 4000, run, &err));
    CHECK(run[0].epochs == 80 && run[1].epochs == 2);
    CHECK(run[0].train_acc == 1.0);                       /* fifty images learnt by heart */
    CHECK(run[0].val_acc < run[0].train_acc - 0.25);      /* and far less on others */
    CHECK(run[1].val_acc > run[0].val_acc + 0.1);         /* more examples generalise better */
    CHECK(run[0].n_hist == 80 && run[0].hist_val_loss[79] > 0);
    sizes[0] = 9000;
    CHECK_FAILS_WITH(knob_size_sweep(&s, &mc, &tc, sizes, 1, 100, run, &err), KNOB_ERR_USAGE, "9000");
    knob_splits_free(&s);
}

TEST(toy_train_step_allocates_nothing)
{
    knob_err err;
    knob_toy_data d;
    CHECK_OK(knob_toy_data_make(&d, KNOB_TOY_SPIRALS, 100, 0.03f, 1, &err));
    knob_toy_config c;
    knob_toy_config_default(&c);
    c.batch = 16;
    knob_toy_net *m;
    CHECK_OK(knob_toy_net_new(&m, &c, &err));
    CHECK_OK(knob_toy_train(m, &d, 1, NULL, &err));   /* builds the graph */
    long before = knob_alloc_count();
    CHECK_OK(knob_toy_train(m, &d, 50, NULL, &err));
    CHECK(knob_alloc_count() == before);
    knob_toy_net_free(m);
    knob_toy_data_free(&d);
}
