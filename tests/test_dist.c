/* test_dist.c: the single-process side of src/train/dist.c and the ZeRO-1 slice view. Alone (no
 * mpirun) every collective must leave its data as it is; a slice of a parameter block must cut
 * the tensors at the right places with their decay flags, so that AdamW over the slice moves
 * exactly the slice's values, by the closed form of its first step:
 *   m = (1 - b1) g, v = (1 - b2) g^2, w' = w (1 - lr wd) - lr g / (|g| + eps)   (bias-corrected)
 * with wd only on decay tensors. Several ranks are tested by tests/cli/test_mpi.sh under mpirun. */
#include "test.h"

TEST(dist_alone_is_a_no_op)
{
    knob_err err = {0};
    CHECK_OK(knob_dist_init(&err));
    CHECK(knob_dist_size() == 1);
    CHECK(knob_dist_rank() == 0);
    CHECK(!knob_dist_active());
    CHECK(knob_dist_reports());
    double v[3] = {1.5, -2.0, 3.25};
    CHECK_OK(knob_dist_sum_f64(v, 3, 1, &err));
    CHECK(v[0] == 1.5 && v[1] == -2.0 && v[2] == 3.25);
    CHECK_OK(knob_dist_check_same("settings", "abc", 3, &err));
    CHECK_OK(knob_dist_barrier(&err));
    knob_dist_comm *c = (knob_dist_comm *)&err;   /* must be overwritten */
    CHECK_OK(knob_dist_comm_new(&c, 100, &err));
    CHECK(c == NULL);
    float x[4] = {1, 2, 3, 4};
    CHECK_OK(knob_dist_allreduce(c, x, 1, &err));
    CHECK(x[0] == 1 && x[1] == 2 && x[2] == 3 && x[3] == 4);
    size_t lo, hi;
    knob_dist_slice(10, 0, &lo, &hi);
    CHECK(lo == 0 && hi == 10);
    CHECK(knob_dist_exit(3) == 3);
}

TEST(dist_slice_adamw_moves_the_slice_only)
{
    knob_err err = {0};
    knob_params P;
    knob_params_init(&P);
    knob_tensor *a = knob_params_add(&P, "a", 2, (int[]){1, 5}, &err);   /* decay (a matrix) */
    knob_tensor *b = knob_params_add(&P, "b", 1, (int[]){3}, &err);      /* no decay (a vector) */
    knob_tensor *c = knob_params_add(&P, "c", 2, (int[]){2, 2}, &err);   /* decay */
    CHECK(a && b && c);
    CHECK_OK(knob_params_alloc(&P, &err));
    CHECK(a->decay && !b->decay && c->decay);
    for (size_t i = 0; i < P.n_elems; i++) {
        P.data[i] = 0.1f * (float)(i + 1);
        P.grad[i] = (i % 2 ? -0.5f : 0.25f) * (float)(i + 1);
    }
    float before[12];
    memcpy(before, P.data, sizeof before);

    knob_params view;
    CHECK_OK(knob_params_slice(&view, &P, 4, 10, &err));   /* a[4], b[0..3), c[0..2) */
    CHECK(view.n == 3 && view.n_elems == 6 && view.data == P.data + 4 && view.grad == P.grad + 4);
    CHECK(view.t[0]->n_elems == 1 && view.t[0]->decay && view.t[0]->data == P.data + 4);
    CHECK(view.t[1]->n_elems == 3 && !view.t[1]->decay && view.t[1]->data == P.data + 5);
    CHECK(view.t[2]->n_elems == 2 && view.t[2]->decay && view.t[2]->data == P.data + 8);

    const float lr = 0.01f, wd = 0.5f;
    knob_optim o;
    CHECK_OK(knob_optim_init(&o, &view, &(knob_optim_config){.kind = KNOB_OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.95f,
                                                              .eps = 1e-8f, .weight_decay = wd}, &err));
    knob_optim_step(&o, lr);
    for (size_t i = 0; i < P.n_elems; i++) {
        if (i < 4 || i >= 10) {
            CHECK(P.data[i] == before[i]);   /* outside the slice: untouched */
            continue;
        }
        int decay = i < 5 || i >= 8;
        double g = P.grad[i], w = before[i];
        double want = w * (decay ? 1.0 - (double)lr * wd : 1.0) - (double)lr * g / (fabs(g) + 1e-8);
        CHECK_NEAR(P.data[i], want, 1e-6, 1e-7);
        CHECK_NEAR(o.m[i - 4], 0.1 * g, 1e-6, 0);
        CHECK_NEAR(o.v[i - 4], 0.05 * g * g, 1e-5, 0);
    }
    knob_optim_free(&o);
    knob_params_slice_free(&view);

    /* a slice inside one tensor, and an empty one */
    CHECK_OK(knob_params_slice(&view, &P, 1, 3, &err));
    CHECK(view.n == 1 && view.t[0]->n_elems == 2 && view.t[0]->data == P.data + 1);
    knob_params_slice_free(&view);
    CHECK_OK(knob_params_slice(&view, &P, 12, 12, &err));
    CHECK(view.n == 0 && view.n_elems == 0);
    knob_params_slice_free(&view);
    knob_params_free(&P);
}

/* Under mpirun (tests/cli/test_mpi.sh runs this test with 3 ranks) the sum must be the one in rank
 * order: rank 0 gives 2^24 s, the others s (s a power of two per element), and in float
 * (2^24 + 1) + 1 rounds to 2^24 while (1 + 1) + 2^24 is 2^24 + 2: another order shows. Alone it
 * checks the same formula with one term. Ends MPI itself (the test binary has no main of ours). */
TEST(dist_rank_order)
{
    knob_err err = {0};
    CHECK_OK(knob_dist_init(&err));
    int N = knob_dist_size(), r = knob_dist_rank();
    enum { n = 37 };   /* slices of 12, 12, 13 with 3 ranks */
    float x[n], want[n];
    for (int i = 0; i < n; i++) {
        float s = (float)(1 << (i % 4));
        x[i] = r == 0 ? 16777216.0f * s : s;
        float a = 16777216.0f * s;   /* the rank-order sum, written out */
        for (int q = 1; q < N; q++)
            a += s;
        want[i] = a;
    }
    knob_dist_comm *c = NULL;
    CHECK_OK(knob_dist_comm_new(&c, n, &err));
    CHECK((c != NULL) == (N > 1));
    CHECK_OK(knob_dist_allreduce(c, x, 1, &err));
    for (int i = 0; i < n; i++)
        if (x[i] != want[i]) {
            test_fail_at(__FILE__, __LINE__, "rank %d of %d: element %d is %.9g, want %.9g", r, N, i, (double)x[i],
                         (double)want[i]);
            break;
        }
    double v[2] = {r == 0 ? 1e17 : 1.0, (double)r};
    CHECK_OK(knob_dist_sum_f64(v, 2, 1, &err));
    double w0 = 1e17;
    for (int q = 1; q < N; q++)
        w0 += 1.0;
    CHECK(v[0] == w0 && v[1] == (double)N * (N - 1) / 2);
    knob_dist_comm_free(c);
    if (N > 1)
        knob_dist_exit(0);
}
