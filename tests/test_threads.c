/* test_threads.c: knob's thread pool (src/core/threads.c): every index of a parallel loop is
 * visited exactly once, in the chunks the caller asked for, for any thread count and when loops
 * nest; and a whole GPT training step (embedding, layernorm, matmuls, attention, GELU,
 * cross-entropy, AdamW), whose loops all run as pool chunks, gives the same bits for 1, 2, 3 and
 * 7 threads. */
#include "test.h"

/* ------------------------------------------------------------------------------------------------
 * Coverage */

typedef struct {
    int *count;       // (n) visits per index
    long chunk, n;
    int bad_bounds;   // a chunk that was not [k chunk, min(n, (k + 1) chunk))
} visit_ctx;

static void visit(void *ctx, long lo, long hi)
{
    visit_ctx *v = ctx;
    if (lo % v->chunk != 0 || hi != KNOB_MIN(v->n, lo + v->chunk))
        v->bad_bounds = 1;   /* racy store of the same value: only ever set to 1 */
    for (long i = lo; i < hi; i++)
        v->count[i]++;
}

TEST(threads_parallel_for_visits_each_index_once)
{
    static int count[100003];
    const int threads[] = {1, 2, 3, 8};
    const long ns[] = {0, 1, 7, 1000, 100003};
    const long chunks[] = {1, 3, 64, 100000};
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        knob_threads_set(threads[t]);
        CHECK(knob_threads_get() == threads[t]);
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof chunks / sizeof *chunks; b++) {
                long n = ns[a];
                memset(count, 0, sizeof count);
                visit_ctx v = {count, chunks[b], n, 0};
                knob_parallel_for(n, chunks[b], visit, &v);
                int ok = !v.bad_bounds;
                for (long i = 0; i < n; i++)
                    ok &= count[i] == 1;
                for (long i = n; i < (long)(sizeof count / sizeof *count); i++)
                    ok &= count[i] == 0;
                if (!ok)
                    test_fail_at(__FILE__, __LINE__, "threads %d, n %ld, chunk %ld: an index visited "
                                 "other than once, or a chunk with wrong bounds", threads[t], n, chunks[b]);
            }
    }
    knob_threads_set(0);
}

/* a loop inside a chunk runs on that thread: still every index once */
typedef struct {
    int *count;   // (rows * 100)
} nest_ctx;

static void inner_row(void *ctx, long lo, long hi)
{
    int *row = ctx;
    for (long i = lo; i < hi; i++)
        row[i]++;
}

static void outer_rows(void *ctx, long lo, long hi)
{
    nest_ctx *c = ctx;
    for (long r = lo; r < hi; r++)
        knob_parallel_for(100, 7, inner_row, c->count + r * 100);
}

TEST(threads_nested_loops_run_inline)
{
    static int count[50 * 100];
    knob_threads_set(3);
    memset(count, 0, sizeof count);
    nest_ctx c = {count};
    knob_parallel_for(50, 2, outer_rows, &c);
    int ok = 1;
    for (int i = 0; i < 50 * 100; i++)
        ok &= count[i] == 1;
    CHECK(ok);
    CHECK(knob_parallel_chunk(1000, 1, 256) == 4);
    CHECK(knob_parallel_chunk(1000, 10, 256) == 10);
    CHECK(knob_parallel_chunk(0, 10, 256) == 1);
    knob_threads_set(0);
}

/* ------------------------------------------------------------------------------------------------
 * Same bits for any thread count: two AdamW steps of a one-block GPT large enough that every loop
 * is cut into several chunks (gemm blocks, layernorm and GELU rows, cross-entropy rows, the
 * optimizer's flat pass). */

enum { G_V = 301, G_C = 64, G_T = 32, G_B = 4, G_NH = 4 };

static knob_node *lin(knob_graph *g, knob_node *x, knob_tensor *w, knob_tensor *b)
{
    return knob_add(g, knob_matmul(g, x, knob_param(g, w), 0, 1), knob_param(g, b));
}

static void gpt_after_two_steps(int threads, float *out, size_t n_out, float *loss_out)
{
    knob_err err;
    knob_threads_set(threads);
    knob_params P;
    knob_params_init(&P);
    knob_tensor *wte = knob_params_add(&P, "wte", 2, (int[]){G_V, G_C}, &err);
    knob_tensor *wpe = knob_params_add(&P, "wpe", 2, (int[]){G_T, G_C}, &err);
    knob_tensor *l1w = knob_params_add(&P, "l1.w", 1, (int[]){G_C}, &err);
    knob_tensor *l1b = knob_params_add(&P, "l1.b", 1, (int[]){G_C}, &err);
    knob_tensor *wqkv = knob_params_add(&P, "qkv.w", 2, (int[]){3 * G_C, G_C}, &err);
    knob_tensor *bqkv = knob_params_add(&P, "qkv.b", 1, (int[]){3 * G_C}, &err);
    knob_tensor *wfc = knob_params_add(&P, "fc.w", 2, (int[]){4 * G_C, G_C}, &err);
    knob_tensor *bfc = knob_params_add(&P, "fc.b", 1, (int[]){4 * G_C}, &err);
    knob_tensor *wpr = knob_params_add(&P, "proj.w", 2, (int[]){G_C, 4 * G_C}, &err);
    knob_tensor *bpr = knob_params_add(&P, "proj.b", 1, (int[]){G_C}, &err);
    knob_tensor *lfw = knob_params_add(&P, "lf.w", 1, (int[]){G_C}, &err);
    knob_tensor *lfb = knob_params_add(&P, "lf.b", 1, (int[]){G_C}, &err);
    KNOB_ASSERT(knob_params_alloc(&P, &err) == KNOB_OK);
    KNOB_ASSERT(P.n_elems == n_out);
    knob_rng r;
    knob_rng_seed(&r, 7);
    knob_init_normal(wte, 0.1f, &r);
    knob_init_normal(wpe, 0.1f, &r);
    knob_init_const(l1w, 1.0f);
    knob_init_normal(wqkv, 0.1f, &r);
    knob_init_normal(wfc, 0.1f, &r);
    knob_init_normal(wpr, 0.1f, &r);
    knob_init_const(lfw, 1.0f);

    knob_graph *g = knob_graph_new(&err);
    KNOB_ASSERT(g);
    knob_node *idx = knob_input_i32(g, "idx", 2, (int[]){G_B, G_T});
    knob_node *pos = knob_input_i32(g, "pos", 1, (int[]){G_T});
    knob_node *tgt = knob_input_i32(g, "tgt", 2, (int[]){G_B, G_T});
    knob_node *te = knob_param(g, wte);
    knob_node *x = knob_add(g, knob_embedding(g, te, idx), knob_embedding(g, knob_param(g, wpe), pos));
    knob_node *h = knob_layernorm(g, x, knob_param(g, l1w), knob_param(g, l1b));
    x = knob_add(g, x, knob_attention(g, lin(g, h, wqkv, bqkv), G_NH));
    h = knob_gelu(g, lin(g, x, wfc, bfc));
    x = knob_add(g, x, lin(g, h, wpr, bpr));
    x = knob_layernorm(g, x, knob_param(g, lfw), knob_param(g, lfb));
    knob_node *loss = knob_cross_entropy(g, knob_matmul(g, x, te, 0, 1), tgt, -1);
    KNOB_ASSERT(knob_graph_compile(g, &err) == KNOB_OK);
    for (int i = 0; i < G_B * G_T; i++) {
        knob_node_data_i32(idx)[i] = (int32_t)knob_rng_below(&r, G_V);
        knob_node_data_i32(tgt)[i] = (int32_t)knob_rng_below(&r, G_V);
    }
    for (int t = 0; t < G_T; t++)
        knob_node_data_i32(pos)[t] = t;
    knob_optim opt;
    knob_optim_config cfg = {.kind = KNOB_OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                             .weight_decay = 0.01f};
    KNOB_ASSERT(knob_optim_init(&opt, &P, &cfg, &err) == KNOB_OK);
    for (int s = 0; s < 2; s++) {
        knob_params_zero_grad(&P);
        KNOB_ASSERT(knob_graph_forward(g, &err) == KNOB_OK);
        knob_graph_backward(g, loss);
        knob_optim_step(&opt, 1e-2f);
    }
    *loss_out = knob_node_data(loss)[0];
    memcpy(out, P.data, n_out * sizeof(float));
    knob_optim_free(&opt);
    knob_graph_free(g);
    knob_params_free(&P);
    knob_threads_set(0);
}

TEST(threads_gpt_step_same_bits_for_any_thread_count)
{
    size_t n = (size_t)G_V * G_C + (size_t)G_T * G_C + 4 * G_C + 3 * G_C * G_C + 3 * G_C + 8 * G_C * G_C + 5 * G_C;
    float *ref = knob_malloc(n * sizeof(float)), *got = knob_malloc(n * sizeof(float));
    KNOB_ASSERT(ref && got);
    float loss_ref, loss;
    gpt_after_two_steps(1, ref, n, &loss_ref);
    CHECK(loss_ref > 1.0f && loss_ref < logf((float)G_V));   /* the second step's loss: below ln 301 = 5.71 */
    const int threads[] = {2, 3, 7};
    for (int k = 0; k < 3; k++) {
        gpt_after_two_steps(threads[k], got, n, &loss);
        if (memcmp(ref, got, n * sizeof(float)) != 0 || memcmp(&loss, &loss_ref, sizeof loss) != 0)
            test_fail_at(__FILE__, __LINE__, "%d threads: parameters after two steps differ from 1 thread's",
                         threads[k]);
    }
    knob_free(ref);
    knob_free(got);
}

/* ------------------------------------------------------------------------------------------------
 * The ops that moved from OpenMP onto the pool (src/ops/reduce.c, shape.c): sum and mean over an
 * axis, softmax, log-softmax and permute, forward and backward, on a (6, 40, 300) tensor big enough
 * that every loop is cut into several chunks. Values against double sums computed here; bits the
 * same for 1, 2 and 3 threads. */

enum { R_A = 6, R_B = 40, R_C = 300, R_N = R_A * R_B * R_C };

typedef struct {
    float *out[5];   /* sum over axis 1 (A, C), mean over axis 2 (A, B), softmax, log-softmax (A, B, C),
                      * permute {2, 0, 1} (C, A, B) */
    size_t n_out[5];
    float *dx;       /* (A, B, C) */
} reduce_run;

static void reduce_ops_run(int threads, const float *x0, float *const w[5], reduce_run *o)
{
    knob_err err;
    knob_threads_set(threads);
    knob_params P;
    knob_params_init(&P);
    knob_tensor *xt = knob_params_add(&P, "x", 3, (int[]){R_A, R_B, R_C}, &err);
    KNOB_ASSERT(xt && knob_params_alloc(&P, &err) == KNOB_OK);
    memcpy(xt->data, x0, R_N * sizeof(float));
    knob_graph *g = knob_graph_new(&err);
    KNOB_ASSERT(g);
    knob_node *x = knob_param(g, xt);
    knob_node *y[5] = {knob_sum(g, x, 1, 0), knob_mean(g, x, 2, 0), knob_softmax(g, x), knob_log_softmax(g, x),
                       knob_permute(g, x, (int[]){2, 0, 1})};
    knob_node *wn[5], *loss = NULL;
    static const int wshape[5][3] = {{R_A, R_C}, {R_A, R_B}, {R_A, R_B, R_C}, {R_A, R_B, R_C}, {R_C, R_A, R_B}};
    for (int k = 0; k < 5; k++) {
        wn[k] = knob_input(g, "w", k < 2 ? 2 : 3, wshape[k]);
        knob_node *term = knob_sum_all(g, knob_mul(g, y[k], wn[k]));
        loss = loss ? knob_add(g, loss, term) : term;
    }
    KNOB_ASSERT(knob_graph_compile(g, &err) == KNOB_OK);
    for (int k = 0; k < 5; k++)
        memcpy(knob_node_data(wn[k]), w[k], o->n_out[k] * sizeof(float));
    knob_params_zero_grad(&P);
    KNOB_ASSERT(knob_graph_forward(g, &err) == KNOB_OK);
    knob_graph_backward(g, loss);
    for (int k = 0; k < 5; k++)
        memcpy(o->out[k], knob_node_data(y[k]), o->n_out[k] * sizeof(float));
    memcpy(o->dx, xt->grad, R_N * sizeof(float));
    knob_graph_free(g);
    knob_params_free(&P);
    knob_threads_set(0);
}

static size_t rx(int a, int b, int c) { return ((size_t)a * R_B + (size_t)b) * R_C + (size_t)c; }

TEST(threads_reduce_softmax_permute_match_double_sums_for_any_thread_count)
{
    knob_rng r;
    knob_rng_seed(&r, 41);
    size_t n_out[5] = {R_A * R_C, R_A * R_B, R_N, R_N, R_N};
    float *x = knob_malloc(R_N * sizeof(float)), *w[5];
    reduce_run ref = {.dx = knob_malloc(R_N * sizeof(float))}, got = {.dx = knob_malloc(R_N * sizeof(float))};
    for (size_t i = 0; i < R_N; i++)
        x[i] = 3.0f * knob_rng_normal(&r);
    for (int k = 0; k < 5; k++) {
        w[k] = knob_malloc(n_out[k] * sizeof(float));
        ref.out[k] = knob_malloc(n_out[k] * sizeof(float));
        got.out[k] = knob_malloc(n_out[k] * sizeof(float));
        ref.n_out[k] = got.n_out[k] = n_out[k];
        for (size_t i = 0; i < n_out[k]; i++)
            w[k][i] = knob_rng_normal(&r);
    }
    reduce_ops_run(1, x, w, &ref);

    /* values and the gradient in double, from the definitions */
    double worst[6] = {0};
    double *sm = knob_malloc(R_C * sizeof(double));
    for (int a = 0; a < R_A; a++) {
        for (int c = 0; c < R_C; c++) {
            double s = 0;
            for (int b = 0; b < R_B; b++)
                s += x[rx(a, b, c)];
            worst[0] = fmax(worst[0], fabs(ref.out[0][(size_t)a * R_C + c] - s));
        }
        for (int b = 0; b < R_B; b++) {
            double s = 0, mx = -INFINITY, z = 0, wy = 0, w3 = 0;
            for (int c = 0; c < R_C; c++) {
                s += x[rx(a, b, c)];
                mx = fmax(mx, x[rx(a, b, c)]);
            }
            worst[1] = fmax(worst[1], fabs(ref.out[1][(size_t)a * R_B + b] - s / R_C));
            for (int c = 0; c < R_C; c++)
                z += sm[c] = exp(x[rx(a, b, c)] - mx);
            for (int c = 0; c < R_C; c++) {
                sm[c] /= z;
                wy += w[2][rx(a, b, c)] * sm[c];
                w3 += w[3][rx(a, b, c)];
            }
            for (int c = 0; c < R_C; c++) {
                size_t i = rx(a, b, c);
                double lsm = x[i] - mx - log(z);
                worst[2] = fmax(worst[2], fabs(ref.out[2][i] - sm[c]));
                worst[3] = fmax(worst[3], fabs(ref.out[3][i] - lsm));
                size_t ip = ((size_t)c * R_A + (size_t)a) * R_B + (size_t)b;   /* (C, A, B) */
                worst[4] = fmax(worst[4], fabs(ref.out[4][ip] - x[i]));
                /* d loss / dx: sum (w0), mean (w1 / C), softmax, log-softmax, permute (w4 back) */
                double d = w[0][(size_t)a * R_C + c] + w[1][(size_t)a * R_B + b] / R_C +
                           sm[c] * (w[2][i] - wy) + (w[3][i] - sm[c] * w3) + w[4][ip];
                worst[5] = fmax(worst[5], fabs(ref.dx[i] - d) / (1.0 + fabs(d)));
            }
        }
    }
    knob_free(sm);
    static const char *const what[6] = {"sum", "mean", "softmax", "log-softmax", "permute", "gradient"};
    static const double tol[6] = {1e-4, 1e-6, 1e-6, 1e-5, 0.0, 1e-5};
    for (int k = 0; k < 6; k++)
        if (!(worst[k] <= tol[k]))
            test_fail_at(__FILE__, __LINE__, "%s: largest difference %.3g from the double sums", what[k], worst[k]);

    for (int threads = 2; threads <= 3; threads++) {
        reduce_ops_run(threads, x, w, &got);
        for (int k = 0; k < 5; k++)
            if (memcmp(ref.out[k], got.out[k], n_out[k] * sizeof(float)) != 0)
                test_fail_at(__FILE__, __LINE__, "%d threads: %s differs from 1 thread's", threads, what[k]);
        if (memcmp(ref.dx, got.dx, R_N * sizeof(float)) != 0)
            test_fail_at(__FILE__, __LINE__, "%d threads: the gradient differs from 1 thread's", threads);
    }
    for (int k = 0; k < 5; k++) {
        knob_free(w[k]);
        knob_free(ref.out[k]);
        knob_free(got.out[k]);
    }
    knob_free(ref.dx);
    knob_free(got.dx);
    knob_free(x);
}

/* ------------------------------------------------------------------------------------------------
 * knob_wmat_init's conversions and knob_wmat_gemm's panels (src/kernels/matvec.c), now on the
 * pool: bf16 within half a bf16 step of each weight, int8 within half a step of its block's scale,
 * and the same bytes (and products) for 1, 2 and 3 threads. */

TEST(threads_weight_conversions_same_bits_for_any_thread_count)
{
    knob_err err;
    knob_rng r;
    knob_rng_seed(&r, 43);
    int N = 1001, K = 301, n = 20;
    size_t NK = (size_t)N * K;
    float *f = knob_malloc(NK * sizeof *f), *x = knob_malloc((size_t)n * K * sizeof *x);
    float *y1 = knob_malloc((size_t)n * N * sizeof *y1), *y = knob_malloc((size_t)n * N * sizeof *y);
    for (size_t i = 0; i < NK; i++)
        f[i] = knob_rng_normal(&r);
    for (size_t i = 0; i < (size_t)n * K; i++)
        x[i] = knob_rng_normal(&r);
    const knob_wtype types[2] = {KNOB_W_BF16, KNOB_W_Q8};
    for (int ti = 0; ti < 2; ti++) {
        knob_wmat W1, W;
        knob_threads_set(1);
        CHECK_OK(knob_wmat_init(&W1, f, N, K, types[ti], &err));
        void *sc = knob_malloc(knob_wmat_gemm_scratch(&W1, n) + 1);
        knob_wmat_gemm(y1, x, &W1, NULL, n, sc);
        double worst = 0;
        for (int i = 0; i < N; i++)
            for (int k = 0; k < K; k++) {
                double v = f[(size_t)i * K + k], step;
                if (ti == 0) {   /* bf16: 8 significant bits; half a step of |v|'s binade */
                    int e;
                    frexp(v, &e);
                    step = ldexp(1.0, e - 8);
                    worst = fmax(worst, fabs(knob_bf16_to_f32(W1.h[(size_t)i * K + k]) - v) / (0.5 * step));
                } else {         /* int8: q * d, d = the block's largest |v| / 127 */
                    size_t KP = (size_t)W1.KB * KNOB_Q8_BLOCK;
                    float d = W1.d[(size_t)i * W1.KB + (size_t)k / KNOB_Q8_BLOCK];
                    double q = W1.q[(size_t)i * KP + (size_t)k];
                    worst = fmax(worst, fabs(q * d - v) / (0.5 * d * (1 + 1e-6)));
                }
            }
        if (!(worst <= 1.0))
            test_fail_at(__FILE__, __LINE__, "type %d: a weight %.3g half-steps from its value", ti, worst);
        for (int threads = 2; threads <= 3; threads++) {
            knob_threads_set(threads);
            CHECK_OK(knob_wmat_init(&W, f, N, K, types[ti], &err));
            int same = ti == 0 ? memcmp(W.h, W1.h, NK * sizeof *W.h) == 0
                               : memcmp(W.q, W1.q, (size_t)N * W.KB * KNOB_Q8_BLOCK) == 0 &&
                                     memcmp(W.d, W1.d, (size_t)N * W.KB * sizeof *W.d) == 0;
            if (!same)
                test_fail_at(__FILE__, __LINE__, "type %d, %d threads: converted weights differ", ti, threads);
            knob_wmat_gemm(y, x, &W, NULL, n, sc);
            if (memcmp(y, y1, (size_t)n * N * sizeof *y) != 0)
                test_fail_at(__FILE__, __LINE__, "type %d, %d threads: the panel product differs", ti, threads);
            knob_wmat_free(&W);
        }
        knob_free(sc);
        knob_wmat_free(&W1);
    }
    knob_threads_set(0);
    knob_free(f);
    knob_free(x);
    knob_free(y1);
    knob_free(y);
}
