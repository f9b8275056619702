/* test_fit.c: the falling-ball models against independent math: the line's knobs against the
 * closed-form least-squares solution, the quadratic and MLP against the line on held-out floors,
 * the CSV reader's errors, a diverging run's NaN message, and determinism. */
#include "test.h"

#include <stdlib.h>

/* Ordinary least squares y = s x + c over the training points, in double (the normal equations). */
static void least_squares(const knob_fit_data *d, double *slope, double *intercept)
{
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < d->n; i++)
        if (d->split[i] == KNOB_FIT_TRAIN) {
            n++;
            sx += d->x[i];
            sy += d->y[i];
            sxx += d->x[i] * d->x[i];
            sxy += d->x[i] * d->y[i];
        }
    *slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    *intercept = (sy - *slope * sx) / n;
}

TEST(fit_line_matches_least_squares)
{
    knob_err err;
    knob_fit_config c;
    knob_fit_config_default(&c);
    knob_fit_data d;
    CHECK_OK(knob_fit_generate(&d, &c, &err));
    double slope, intercept;
    least_squares(&d, &slope, &intercept);
    knob_fit_result r;
    CHECK_OK(knob_fit_train(&r, KNOB_FIT_LINE, &d, &c, NULL, NULL, &err));
    CHECK(r.n_knobs == 2);
    CHECK_NEAR(r.knobs[0], slope, 1e-3, 0);
    CHECK_NEAR(r.knobs[1], intercept, 1e-3, 0);
    /* and through plain SGD with mini-batches of 4 (a short last batch: a second graph) */
    knob_fit_result_free(&r);
    c.optim = KNOB_OPTIM_SGD;
    c.batch = 4;
    c.lr = 0.05f;
    CHECK_OK(knob_fit_train(&r, KNOB_FIT_LINE, &d, &c, NULL, NULL, &err));
    CHECK_NEAR(r.knobs[0], slope, 1e-3, 0);
    CHECK_NEAR(r.knobs[1], intercept, 1e-3, 0);
    knob_fit_result_free(&r);
    knob_fit_data_free(&d);
}

TEST(fit_quadratic_and_mlp_beat_line_on_heldout)
{
    knob_err err;
    knob_fit_config c;
    knob_fit_config_default(&c);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        c.seed = seed;
        knob_fit_data d;
        CHECK_OK(knob_fit_generate(&d, &c, &err));
        knob_fit_result r[KNOB_FIT_N_MODELS];
        for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
            CHECK_OK(knob_fit_train(&r[m], (knob_fit_kind)m, &d, &c, NULL, NULL, &err));
        CHECK(r[KNOB_FIT_QUADRATIC].heldout_rmse < r[KNOB_FIT_LINE].heldout_rmse);
        CHECK(r[KNOB_FIT_MLP].heldout_rmse < r[KNOB_FIT_LINE].heldout_rmse);
        /* the quadratic's own knobs are least squares too: its training loss cannot beat the noise
         * floor by much, and the line's cannot beat the quadratic's (a line is a quadratic) */
        CHECK(r[KNOB_FIT_QUADRATIC].train_loss <= r[KNOB_FIT_LINE].train_loss);
        for (int m = 0; m < KNOB_FIT_N_MODELS; m++)
            knob_fit_result_free(&r[m]);
        knob_fit_data_free(&d);
    }
}

TEST(fit_generate_physics_and_splits)
{
    knob_err err;
    knob_fit_config c;
    knob_fit_config_default(&c);
    c.noise = 0;
    knob_fit_data d;
    CHECK_OK(knob_fit_generate(&d, &c, &err));
    /* 10 floors of 3 m: h = 30 m, t = sqrt(60 / 9.81) */
    CHECK_NEAR(d.y[9], sqrt(60 / 9.81), 1e-12, 0);
    int held = 0, extra = 0;
    for (int i = 0; i < d.n; i++) {
        held += d.split[i] == KNOB_FIT_HELDOUT;
        extra += d.split[i] == KNOB_FIT_EXTRA;
        if (d.split[i] == KNOB_FIT_EXTRA)
            CHECK(d.x[i] > c.n_floors);
    }
    CHECK(held == 5 && extra == 10 && d.n == 30);
    knob_fit_data_free(&d);
    c.n_floors = 3;
    c.holdout = 0.5;
    CHECK_FAILS_WITH(knob_fit_generate(&d, &c, &err), KNOB_ERR_USAGE, "need at least 3");
}

TEST(fit_mae_loss_trains)
{
    knob_err err;
    knob_fit_config c;
    knob_fit_config_default(&c);
    c.loss_mae = 1;
    knob_fit_data d;
    CHECK_OK(knob_fit_generate(&d, &c, &err));
    knob_fit_result r;
    CHECK_OK(knob_fit_train(&r, KNOB_FIT_QUADRATIC, &d, &c, NULL, NULL, &err));
    /* mean absolute error of a decent quadratic is within a few noise widths */
    CHECK(r.train_loss < 0.1 && r.loss_curve[c.epochs - 1] < r.loss_curve[0]);
    knob_fit_result_free(&r);
    knob_fit_data_free(&d);
}

TEST(fit_diverging_run_stops_with_message)
{
    knob_err err;
    knob_fit_config c;
    knob_fit_config_default(&c);
    c.optim = KNOB_OPTIM_SGD;
    c.lr = 10;
    knob_fit_data d;
    CHECK_OK(knob_fit_generate(&d, &c, &err));
    knob_fit_result r;
    CHECK_FAILS_WITH(knob_fit_train(&r, KNOB_FIT_QUADRATIC, &d, &c, NULL, NULL, &err), KNOB_ERR_NUMERIC, "try a lower --lr");
    CHECK(strstr(err.msg, "loss is"));
    knob_fit_data_free(&d);
}

static const char *write_tmp(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    KNOB_ASSERT(f);
    fputs(text, f);
    fclose(f);
    return path;
}

TEST(fit_csv_reader)
{
    knob_err err;
    knob_fit_config c;
    knob_fit_config_default(&c);
    knob_fit_data d;
    /* y = 2x + 1 exactly: the line recovers it */
    char text[2048] = "x,y\n# a comment\n\n";
    for (int i = 0; i < 20; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%d, %g\n", i, 2.0 * i + 1);
    CHECK_OK(knob_fit_read_csv(&d, write_tmp("ok.csv", text), &c, &err));
    CHECK(d.n == 20 && !d.has_truth);
    int extra = 0;
    for (int i = 0; i < d.n; i++)
        extra += d.split[i] == KNOB_FIT_EXTRA;
    CHECK(extra == 4);
    knob_fit_result r;
    CHECK_OK(knob_fit_train(&r, KNOB_FIT_LINE, &d, &c, NULL, NULL, &err));
    CHECK_NEAR(r.knobs[0], 2.0, 1e-3, 0);
    CHECK_NEAR(r.knobs[1], 1.0, 1e-3, 1e-3);
    CHECK(r.extra_rmse < 0.01);   /* a line extrapolates a line */
    knob_fit_result_free(&r);
    knob_fit_data_free(&d);

    CHECK_FAILS_WITH(knob_fit_read_csv(&d, write_tmp("bad.csv", "1,2\n3,4\n5,x\n"), &c, &err), KNOB_ERR_FORMAT,
                     "bad.csv:3: expected two finite numbers 'x,y', got '5,x'");
    CHECK_FAILS_WITH(knob_fit_read_csv(&d, write_tmp("three.csv", "1,2,3\n"), &c, &err), KNOB_ERR_FORMAT, "three.csv:1:");
    CHECK_FAILS_WITH(knob_fit_read_csv(&d, write_tmp("nan.csv", "1,2\n2,nan\n"), &c, &err), KNOB_ERR_FORMAT, "nan.csv:2:");
    CHECK_FAILS_WITH(knob_fit_read_csv(&d, write_tmp("few.csv", "1,2\n2,3\n"), &c, &err), KNOB_ERR_FORMAT,
                     "2 data points; need at least 5");
    CHECK_FAILS_WITH(knob_fit_read_csv(&d, write_tmp("empty.csv", ""), &c, &err), KNOB_ERR_FORMAT, "0 data points");
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.csv", test_tmpdir());
    CHECK_FAILS_WITH(knob_fit_read_csv(&d, missing, &c, &err), KNOB_ERR_IO, "nope.csv: cannot open");
}

/* A CSV whose split leaves too few training points: the message keeps the reason after the path
 * (it was built from err->msg into err->msg, which vsnprintf overwrote as it read it). */
TEST(fit_csv_holdout_error_message_intact)
{
    knob_err err;
    knob_fit_config c;
    knob_fit_config_default(&c);
    c.holdout = 0.5;
    knob_fit_data d;
    CHECK_FAILS_WITH(knob_fit_read_csv(&d, write_tmp("held.csv", "1,2\n2,3\n3,4\n4,5\n5,6\n"), &c, &err),
                     KNOB_ERR_USAGE, "held.csv: fit: 4 points with 2 held out leaves 2 to train on; need at least 3");
}

/* An empty directory name is refused (the loop used to start reading at buf[1], past the NUL). */
TEST(fit_mkdirs_empty_name)
{
    knob_err err;
    CHECK_FAILS_WITH(knob_mkdirs("", &err), KNOB_ERR_USAGE, "directory name is empty");
}

TEST(fit_same_seed_same_bits)
{
    knob_err err;
    knob_fit_config c;
    knob_fit_config_default(&c);
    c.epochs = 300;
    knob_fit_data d;
    CHECK_OK(knob_fit_generate(&d, &c, &err));
    knob_fit_result a, b;
    CHECK_OK(knob_fit_train(&a, KNOB_FIT_MLP, &d, &c, NULL, NULL, &err));
    CHECK_OK(knob_fit_train(&b, KNOB_FIT_MLP, &d, &c, NULL, NULL, &err));
    CHECK(a.P.n_elems == b.P.n_elems && memcmp(a.P.data, b.P.data, a.P.n_elems * sizeof(float)) == 0);
    knob_fit_result_free(&a);
    knob_fit_result_free(&b);
    knob_fit_data_free(&d);
}

/* The CSV reader, tortured: every truncation and a set of byte corruptions of a valid file must
 * either read (with finite values only) or fail with one line; ASan watches for overruns. */
TEST(fit_csv_torture)
{
    knob_err err;
    knob_fit_config c;
    knob_fit_config_default(&c);
    const char *good = "floor,seconds\n# measured\n1,0.78\n2,1.10\n3,1.36\n4,1.56\n5,1.75\n6,1.92\n";
    size_t len = strlen(good);
    char buf[256];
    static const char bytes[] = {',', '\n', '#', '-', 'e', '.', '9', 0, '\r', (char)0xff};
    for (size_t cut = 0; cut <= len; cut++)
        for (int k = -1; k < (int)sizeof bytes; k++) {
            memcpy(buf, good, len);
            size_t n = cut;
            if (k >= 0) {   /* corrupt byte (cut * 7) % len of the whole file instead of cutting */
                n = len;
                buf[(cut * 7) % len] = bytes[k];
            }
            char path[512];
            snprintf(path, sizeof path, "%s/torture.csv", test_tmpdir());
            FILE *f = fopen(path, "wb");
            KNOB_ASSERT(f);
            fwrite(buf, 1, n, f);
            fclose(f);
            knob_fit_data d;
            memset(&err, 0, sizeof err);
            knob_status s = knob_fit_read_csv(&d, path, &c, &err);
            if (s == KNOB_OK) {
                for (int i = 0; i < d.n; i++)
                    CHECK(isfinite(d.x[i]) && isfinite(d.y[i]));
                CHECK(d.n >= 5);
                knob_fit_data_free(&d);
            } else {
                CHECK(err.msg[0] && !strchr(err.msg, '\n') && strstr(err.msg, "torture.csv"));
            }
        }
}
