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
