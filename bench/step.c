/* bench/step.c: time of one whole training step of three small models, in milliseconds.
 *
 *   bench_step [--threads N] [--min-time SECONDS] [--steps N] [--precision f32|bf16] [MODEL]...
 *                              MODEL: mlp, cnn, gpt, gptchar, or a spec (below: the rows)
 *
 * One step = knob_graph_forward + knob_graph_backward_set (the parameter grads set, not zeroed and
 * added to, as knob's trainers do: knob_step_run) + knob_optim_step
 * (AdamW, lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on matrices), on one fixed batch
 * of random data. The models, built with the public builder API only:
 *   mlp  784-256-128-10, ReLU, softmax cross-entropy, batch 128 (the digit classifier)
 *   cnn  conv 1->16 3x3 pad 1, relu, maxpool 2, conv 16->32 3x3 pad 1, relu, maxpool 2,
 *        linear 32*7*7 -> 10, cross-entropy; batch 64 of 28x28 (Fashion-MNIST size)
 *   gpt  GPT-2-style: token + position embeddings (V 256, C 128, T 64, B 8), 2 pre-LayerNorm
 *        blocks (ln, linear C->3C, attention with 4 heads, linear C->C, residual; ln, linear C->4C,
 *        gelu, linear 4C->C, residual), final ln, output linear tied to the token embedding,
 *        cross-entropy
 *   gptchar the same stack at the character-GPT size: V 113, C 128, T 128, B 32, 4 heads,
 *        4 blocks (not run by default)
 * Linear weights are stored (out, in) and applied with knob_matmul_bias(x, w, b, 0, 1): the
 * product and its bias in one node, as src/models/gpt.c does. --precision bf16 (GPT models only)
 * builds the GPT's linear layers and its output projection in KNOB_PREC_BF16, as gpt.c does for
 * `train-gpt --precision bf16`: products in bf16 with f32 sums, forward and both gradients; all
 * else, the master weights and AdamW stay f32. Initial weights are seeded; bench/step_torch.py builds the same models in PyTorch (with its
 * own random weights) from the same description.
 *
 * Output: '#' comment lines, then one line per model,
 *   model params graph_bytes loss0 steps median_ms best_ms
 * where loss0 is the loss of the first step's forward (about ln 10 = 2.30 for the classifiers, and
 * ln 256 = 5.55 for the GPT), graph_bytes is knob_graph_bytes (the one arena holding every value,
 * gradient and saved buffer), and the times are the median and the fastest step over at least
 * min_time seconds (default 1) after a tenth of that spent warming up. bench/step_torch.py reads
 * these lines. Timing never decides pass or fail.
 *
 * For profiling, run one model for longer: perf record -g build/bench_step --min-time 10 gpt */
#include "knob_internal.h"   /* knob_gemm_kernel_name, for the header line; the models use knob.h */
#include "bench.h"

#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    const char *name;
    knob_params P;
    knob_graph *g;
    knob_node *loss;
    knob_optim opt;
    int sgd;           /* SGD at lr 0.01 instead of AdamW at 1e-3 */
} model;

static void die(const char *what, const knob_err *err)
{
    fprintf(stderr, "bench_step: %s: %s\n", what, err->msg);
    exit(1);
}

/* ------------------------------------------------------------------------------------------------
 * Model builders. Each declares its parameters, initialises them, builds and compiles the graph
 * and fills the inputs; every error is caught once, at compile. */

static knob_tensor *add_param(model *m, const char *name, int n_dims, const int *shape)
{
    knob_err err;
    knob_tensor *t = knob_params_add(&m->P, name, n_dims, shape, &err);
    if (!t)
        die(name, &err);
    return t;
}

/* "h.<l>.<what>": a parameter of transformer block l */
static knob_tensor *add_block_param(model *m, int l, const char *what, int n_dims, const int *shape)
{
    char name[KNOB_NAME_MAX];
    snprintf(name, sizeof name, "h.%d.%s", l, what);
    return add_param(m, name, n_dims, shape);
}

/* PyTorch's default for nn.Linear and nn.Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias too */
static void init_torch_default(knob_tensor *w, knob_tensor *b, knob_rng *r)
{
    int fan_in;
    knob_fan(w, &fan_in, NULL);
    float a = 1.0f / sqrtf((float)fan_in);
    knob_init_uniform(w, -a, a, r);
    if (b)
        knob_init_uniform(b, -a, a, r);
}

/* --precision: of the GPT models' matrix products (the MLP and CNN stay f32) */
static knob_precision gpt_prec = KNOB_PREC_F32;

/* y (..., out) = x (..., in) @ w^T + b, w (out, in), b (out); products in precision prec */
static knob_node *linear_prec(knob_graph *g, knob_node *x, knob_tensor *w, knob_tensor *b, knob_precision prec)
{
    return knob_matmul_bias(g, x, knob_param(g, w), b ? knob_param(g, b) : NULL, 0, 1, prec);
}

static knob_node *linear(knob_graph *g, knob_node *x, knob_tensor *w, knob_tensor *b)
{
    return linear_prec(g, x, w, b, KNOB_PREC_F32);
}

static void fill_uniform(float *x, size_t n, knob_rng *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = knob_rng_uniform(r);
}

static void fill_labels(int32_t *t, size_t n, uint32_t classes, knob_rng *r)
{
    for (size_t i = 0; i < n; i++)
        t[i] = (int32_t)knob_rng_below(r, classes);
}

static void alloc_params(model *m)
{
    knob_err err;
    if (knob_params_alloc(&m->P, &err))
        die(m->name, &err);
}

static knob_graph *new_graph(model *m)
{
    knob_err err;
    knob_graph *g = knob_graph_new(&err);
    if (!g)
        die(m->name, &err);
    return g;
}

/* 784-256-128-10 MLP, batch 128 */
static void build_mlp(model *m, knob_rng *r)
{
    enum { N = 128, D0 = 784, D1 = 256, D2 = 128, D3 = 10 };
    knob_tensor *w1 = add_param(m, "fc1.weight", 2, (int[]){D1, D0});
    knob_tensor *b1 = add_param(m, "fc1.bias", 1, (int[]){D1});
    knob_tensor *w2 = add_param(m, "fc2.weight", 2, (int[]){D2, D1});
    knob_tensor *b2 = add_param(m, "fc2.bias", 1, (int[]){D2});
    knob_tensor *w3 = add_param(m, "fc3.weight", 2, (int[]){D3, D2});
    knob_tensor *b3 = add_param(m, "fc3.bias", 1, (int[]){D3});
    alloc_params(m);
    init_torch_default(w1, b1, r);
    init_torch_default(w2, b2, r);
    init_torch_default(w3, b3, r);

    knob_graph *g = m->g = new_graph(m);
    knob_node *x = knob_input(g, "x", 2, (int[]){N, D0});          // (N, 784)
    knob_node *y = knob_input_i32(g, "y", 1, (int[]){N});          // (N)
    knob_node *h = knob_relu(g, linear(g, x, w1, b1));             // (N, 256)
    h = knob_relu(g, linear(g, h, w2, b2));                        // (N, 128)
    m->loss = knob_cross_entropy(g, linear(g, h, w3, b3), y, -1);  // logits (N, 10)
    knob_err err;
    if (knob_graph_compile(g, &err))
        die(m->name, &err);
    fill_uniform(knob_node_data(x), (size_t)N * D0, r);
    fill_labels(knob_node_data_i32(y), N, D3, r);
}

/* two conv + relu + maxpool stages and a linear layer, batch 64 of (1, 28, 28) */
static void build_cnn(model *m, knob_rng *r)
{
    enum { B = 64, H = 28, C1 = 16, C2 = 32, K = 10 };
    knob_tensor *w1 = add_param(m, "conv1.weight", 4, (int[]){C1, 1, 3, 3});
    knob_tensor *b1 = add_param(m, "conv1.bias", 1, (int[]){C1});
    knob_tensor *w2 = add_param(m, "conv2.weight", 4, (int[]){C2, C1, 3, 3});
    knob_tensor *b2 = add_param(m, "conv2.bias", 1, (int[]){C2});
    knob_tensor *w3 = add_param(m, "fc.weight", 2, (int[]){K, C2 * 7 * 7});
    knob_tensor *b3 = add_param(m, "fc.bias", 1, (int[]){K});
    alloc_params(m);
    init_torch_default(w1, b1, r);
    init_torch_default(w2, b2, r);
    init_torch_default(w3, b3, r);

    knob_graph *g = m->g = new_graph(m);
    knob_node *x = knob_input(g, "x", 4, (int[]){B, 1, H, H});     // (B, 1, 28, 28)
    knob_node *y = knob_input_i32(g, "y", 1, (int[]){B});          // (B)
    knob_node *h = knob_conv2d(g, x, knob_param(g, w1), knob_param(g, b1), 1, 1);   // (B, 16, 28, 28)
    h = knob_maxpool2d(g, knob_relu(g, h), 2, 2);                  // (B, 16, 14, 14)
    h = knob_conv2d(g, h, knob_param(g, w2), knob_param(g, b2), 1, 1);              // (B, 32, 14, 14)
    h = knob_maxpool2d(g, knob_relu(g, h), 2, 2);                  // (B, 32, 7, 7)
    h = knob_reshape(g, h, 2, (int[]){B, C2 * 7 * 7});             // (B, 1568)
    m->loss = knob_cross_entropy(g, linear(g, h, w3, b3), y, -1);  // logits (B, 10)
    knob_err err;
    if (knob_graph_compile(g, &err))
        die(m->name, &err);
    fill_uniform(knob_node_data(x), (size_t)B * H * H, r);
    fill_labels(knob_node_data_i32(y), B, K, r);
}

/* GPT-2-style stack of L pre-LayerNorm blocks, tied output layer */
enum { L_MAX = 12 };
static void build_gpt(model *m, knob_rng *r, int V, int C, int T, int B, int NH, int L)
{
    knob_tensor *wte = add_param(m, "wte", 2, (int[]){V, C});
    knob_tensor *wpe = add_param(m, "wpe", 2, (int[]){T, C});
    struct {
        knob_tensor *ln1w, *ln1b, *wqkv, *bqkv, *wproj, *bproj, *ln2w, *ln2b, *wfc, *bfc, *wfc2, *bfc2;
    } blk[L_MAX];
    for (int l = 0; l < L; l++) {
        blk[l].ln1w = add_block_param(m, l, "ln_1.weight", 1, (int[]){C});
        blk[l].ln1b = add_block_param(m, l, "ln_1.bias", 1, (int[]){C});
        blk[l].wqkv = add_block_param(m, l, "attn.c_attn.weight", 2, (int[]){3 * C, C});
        blk[l].bqkv = add_block_param(m, l, "attn.c_attn.bias", 1, (int[]){3 * C});
        blk[l].wproj = add_block_param(m, l, "attn.c_proj.weight", 2, (int[]){C, C});
        blk[l].bproj = add_block_param(m, l, "attn.c_proj.bias", 1, (int[]){C});
        blk[l].ln2w = add_block_param(m, l, "ln_2.weight", 1, (int[]){C});
        blk[l].ln2b = add_block_param(m, l, "ln_2.bias", 1, (int[]){C});
        blk[l].wfc = add_block_param(m, l, "mlp.c_fc.weight", 2, (int[]){4 * C, C});
        blk[l].bfc = add_block_param(m, l, "mlp.c_fc.bias", 1, (int[]){4 * C});
        blk[l].wfc2 = add_block_param(m, l, "mlp.c_proj.weight", 2, (int[]){C, 4 * C});
        blk[l].bfc2 = add_block_param(m, l, "mlp.c_proj.bias", 1, (int[]){C});
    }
    knob_tensor *lnfw = add_param(m, "ln_f.weight", 1, (int[]){C});
    knob_tensor *lnfb = add_param(m, "ln_f.bias", 1, (int[]){C});
    alloc_params(m);
    /* GPT-2's: N(0, 0.02) for matrices and embeddings (0.01 for positions), zero biases, unit
     * LayerNorm gains; the output layer reuses wte */
    knob_init_normal(wte, 0.02f, r);
    knob_init_normal(wpe, 0.01f, r);
    for (int l = 0; l < L; l++) {
        knob_init_const(blk[l].ln1w, 1.0f);
        knob_init_const(blk[l].ln2w, 1.0f);
        knob_init_normal(blk[l].wqkv, 0.02f, r);
        knob_init_normal(blk[l].wproj, 0.02f, r);
        knob_init_normal(blk[l].wfc, 0.02f, r);
        knob_init_normal(blk[l].wfc2, 0.02f, r);
    }
    knob_init_const(lnfw, 1.0f);

    knob_graph *g = m->g = new_graph(m);
    knob_node *idx = knob_input_i32(g, "idx", 2, (int[]){B, T});   // (B, T)
    knob_node *pos = knob_input_i32(g, "pos", 1, (int[]){T});      // (T): 0, 1, ..., T-1
    knob_node *tgt = knob_input_i32(g, "targets", 2, (int[]){B, T});   // (B, T)
    knob_node *te = knob_param(g, wte);
    knob_node *x = knob_add(g, knob_embedding(g, te, idx),          // (B, T, C)
                            knob_embedding(g, knob_param(g, wpe), pos));   // + (T, C)
    for (int l = 0; l < L; l++) {
        knob_node *h = knob_layernorm(g, x, knob_param(g, blk[l].ln1w), knob_param(g, blk[l].ln1b));
        h = linear_prec(g, h, blk[l].wqkv, blk[l].bqkv, gpt_prec);            // (B, T, 3C)
        h = knob_attention(g, h, NH);                                         // (B, T, C)
        x = knob_add(g, x, linear_prec(g, h, blk[l].wproj, blk[l].bproj, gpt_prec));
        h = knob_layernorm(g, x, knob_param(g, blk[l].ln2w), knob_param(g, blk[l].ln2b));
        h = knob_gelu(g, linear_prec(g, h, blk[l].wfc, blk[l].bfc, gpt_prec));   // (B, T, 4C)
        x = knob_add(g, x, linear_prec(g, h, blk[l].wfc2, blk[l].bfc2, gpt_prec));
    }
    x = knob_layernorm(g, x, knob_param(g, lnfw), knob_param(g, lnfb));
    knob_node *logits = knob_matmul_prec(g, x, te, 0, 1, gpt_prec);      // (B, T, V), tied to wte
    m->loss = knob_cross_entropy(g, logits, tgt, -1);
    knob_err err;
    if (knob_graph_compile(g, &err))
        die(m->name, &err);
    fill_labels(knob_node_data_i32(idx), (size_t)B * T, V, r);
    for (int t = 0; t < T; t++)
        knob_node_data_i32(pos)[t] = t;
    fill_labels(knob_node_data_i32(tgt), (size_t)B * T, V, r);
}

/* The workloads, named by specs that bench/step_torch.py reads the same way:
 *   mlp:D0-D1-...-Dn:B       ReLU MLP, batch B (e.g. mlp:784-128-10:64)
 *   cnn5:C1,C2:B             1x28x28 -> [5x5 unpadded conv, relu, maxpool 2] x 2 -> linear -> 10
 *   gpt:V,L,NH,C,T,B         the GPT stack above at that size (e.g. gpt:113,4,4,128,128,32)
 * The MLP and CNN specs train with SGD (lr 0.01), the GPTs with AdamW. */
static int is_spec(const char *s) { return !strncmp(s, "mlp:", 4) || !strncmp(s, "cnn5:", 5) || !strncmp(s, "gpt:", 4); }

static void build_mlp_spec(model *m, knob_rng *r, const char *spec)
{
    int dims[16], n = 0, B = 0;
    const char *p = spec + 4;
    while (n < 16) {
        char *end;
        dims[n++] = (int)strtol(p, &end, 10);
        p = end;
        if (*p == '-')
            p++;
        else
            break;
    }
    if (*p != ':' || n < 2 || (B = atoi(p + 1)) <= 0) {
        fprintf(stderr, "bench_step: bad spec '%s' (mlp:D0-D1-...:B)\n", spec);
        exit(2);
    }
    knob_tensor *w[16], *b[16];
    for (int l = 0; l + 1 < n; l++) {
        char name[32];
        snprintf(name, sizeof name, "fc%d.weight", l + 1);
        w[l] = add_param(m, name, 2, (int[]){dims[l + 1], dims[l]});
        snprintf(name, sizeof name, "fc%d.bias", l + 1);
        b[l] = add_param(m, name, 1, (int[]){dims[l + 1]});
    }
    alloc_params(m);
    for (int l = 0; l + 1 < n; l++)
        init_torch_default(w[l], b[l], r);
    knob_graph *g = m->g = new_graph(m);
    knob_node *x = knob_input(g, "x", 2, (int[]){B, dims[0]});
    knob_node *y = knob_input_i32(g, "y", 1, (int[]){B});
    knob_node *h = x;
    for (int l = 0; l + 1 < n; l++) {
        h = linear(g, h, w[l], b[l]);
        if (l + 2 < n)
            h = knob_relu(g, h);
    }
    m->loss = knob_cross_entropy(g, h, y, -1);
    knob_err err;
    if (knob_graph_compile(g, &err))
        die(m->name, &err);
    fill_uniform(knob_node_data(x), (size_t)B * dims[0], r);
    fill_labels(knob_node_data_i32(y), (size_t)B, (uint32_t)dims[n - 1], r);
}

static void build_cnn5_spec(model *m, knob_rng *r, const char *spec)
{
    int C1 = 0, C2 = 0, B = 0;
    if (sscanf(spec, "cnn5:%d,%d:%d", &C1, &C2, &B) != 3 || C1 <= 0 || C2 <= 0 || B <= 0) {
        fprintf(stderr, "bench_step: bad spec '%s' (cnn5:C1,C2:B)\n", spec);
        exit(2);
    }
    enum { H = 28, K = 10 };
    knob_tensor *w1 = add_param(m, "conv1.weight", 4, (int[]){C1, 1, 5, 5});
    knob_tensor *b1 = add_param(m, "conv1.bias", 1, (int[]){C1});
    knob_tensor *w2 = add_param(m, "conv2.weight", 4, (int[]){C2, C1, 5, 5});
    knob_tensor *b2 = add_param(m, "conv2.bias", 1, (int[]){C2});
    knob_tensor *w3 = add_param(m, "fc.weight", 2, (int[]){K, C2 * 4 * 4});
    knob_tensor *b3 = add_param(m, "fc.bias", 1, (int[]){K});
    alloc_params(m);
    init_torch_default(w1, b1, r);
    init_torch_default(w2, b2, r);
    init_torch_default(w3, b3, r);
    knob_graph *g = m->g = new_graph(m);
    knob_node *x = knob_input(g, "x", 4, (int[]){B, 1, H, H});     // (B, 1, 28, 28)
    knob_node *y = knob_input_i32(g, "y", 1, (int[]){B});
    knob_node *h = knob_conv2d(g, x, knob_param(g, w1), knob_param(g, b1), 1, 0);   // (B, C1, 24, 24)
    h = knob_maxpool2d(g, knob_relu(g, h), 2, 2);                  // (B, C1, 12, 12)
    h = knob_conv2d(g, h, knob_param(g, w2), knob_param(g, b2), 1, 0);              // (B, C2, 8, 8)
    h = knob_maxpool2d(g, knob_relu(g, h), 2, 2);                  // (B, C2, 4, 4)
    h = knob_reshape(g, h, 2, (int[]){B, C2 * 16});
    m->loss = knob_cross_entropy(g, linear(g, h, w3, b3), y, -1);
    knob_err err;
    if (knob_graph_compile(g, &err))
        die(m->name, &err);
    fill_uniform(knob_node_data(x), (size_t)B * H * H, r);
    fill_labels(knob_node_data_i32(y), (size_t)B, K, r);
}

/* ------------------------------------------------------------------------------------------------
 * Timing */

static void step(model *m)
{
    knob_err err;
    if (knob_graph_forward(m->g, &err))
        die(m->name, &err);
    knob_graph_backward_set(m->g, m->loss, &m->P);
    knob_optim_step(&m->opt, m->sgd ? 1e-2f : 1e-3f);
}

static int fixed_steps;   /* --steps N: exactly N timed steps after one warm-up step */

static void run(const char *name, double min_time)
{
    model m = {.name = name};
    int is_gpt = !strcmp(name, "gpt") || !strcmp(name, "gptchar") || !strncmp(name, "gpt:", 4);
    if (gpt_prec != KNOB_PREC_F32 && !is_gpt) {
        fprintf(stderr, "bench_step: --precision bf16 is for the GPT models only, not '%s'\n", name);
        exit(2);
    }
    knob_params_init(&m.P);
    knob_rng r;
    knob_rng_seed(&r, 42);
    if (!strcmp(name, "mlp"))
        build_mlp(&m, &r);
    else if (!strcmp(name, "cnn"))
        build_cnn(&m, &r);
    else if (!strcmp(name, "gptchar"))  /* the character GPT: V113 L4 H4 C128, T128, B32 */
        build_gpt(&m, &r, 113, 128, 128, 32, 4, 4);
    else if (!strncmp(name, "mlp:", 4))
        build_mlp_spec(&m, &r, name);
    else if (!strncmp(name, "cnn5:", 5))
        build_cnn5_spec(&m, &r, name);
    else if (!strncmp(name, "gpt:", 4)) {
        int V, L, NH, C, T, B;
        if (sscanf(name, "gpt:%d,%d,%d,%d,%d,%d", &V, &L, &NH, &C, &T, &B) != 6 || L < 1 || L > L_MAX || NH < 1 ||
            C % NH || V < 2 || T < 1 || B < 1) {
            fprintf(stderr, "bench_step: bad spec '%s' (gpt:V,L,NH,C,T,B, L <= %d)\n", name, L_MAX);
            exit(2);
        }
        build_gpt(&m, &r, V, C, T, B, NH, L);
    }
    else
        build_gpt(&m, &r, 256, 128, 64, 8, 4, 2);
    knob_err err;
    knob_optim_config cfg = {.kind = KNOB_OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f,
                             .eps = 1e-8f, .weight_decay = 0.01f};
    m.sgd = !strncmp(name, "mlp:", 4) || !strncmp(name, "cnn5:", 5);
    if (m.sgd)
        cfg = (knob_optim_config){.kind = KNOB_OPTIM_SGD};
    if (knob_optim_init(&m.opt, &m.P, &cfg, &err))
        die(name, &err);

    step(&m);   /* the first step's forward gives the untrained loss */
    float loss0 = knob_node_data(m.loss)[0];
    double start = bench_now();
    if (!fixed_steps)
        do      /* warm-up: threads started, caches and clocks up to speed */
            step(&m);
        while (bench_now() - start < min_time / 10);

    size_t n = 0, cap = 1024;
    double *t = malloc(cap * sizeof *t);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    start = bench_now();
    while (t && (fixed_steps ? n < (size_t)fixed_steps : n < 5 || bench_now() - start < min_time)) {
        if (n == cap) {
            double *more = realloc(t, 2 * cap * sizeof *t);
            if (!more)
                break;
            t = more;
            cap *= 2;
        }
        double t0 = bench_now();
        step(&m);
        t[n++] = bench_now() - t0;
    }
    if (!t) {
        fprintf(stderr, "bench_step: out of memory\n");
        exit(1);
    }
    getrusage(RUSAGE_SELF, &ru1);
    qsort(t, n, sizeof *t, bench_cmp_double);
    double median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    printf("%s %zu %zu %.4f %zu %.4f %.4f\n", name, m.P.n_elems, knob_graph_bytes(m.g),
           (double)loss0, n, 1e3 * median, 1e3 * t[0]);
    printf("# %s: %.1f minor page faults per timed step (memory reused, not re-faulted, when 0); "
           "peak RSS %.0f MiB\n",
           name, (double)(ru1.ru_minflt - ru0.ru_minflt) / (double)n, (double)ru1.ru_maxrss / 1024.0);
    fflush(stdout);
    free(t);
    knob_optim_free(&m.opt);
    knob_graph_free(m.g);
    knob_params_free(&m.P);
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_step [--threads N] [--min-time SECONDS] [--steps N] [--precision f32|bf16] "
                    "[mlp|cnn|gpt|gptchar|mlp:D0-..-Dn:B|cnn5:C1,C2:B|gpt:V,L,NH,C,T,B]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    int threads = 0;    /* 0: KNOB_THREADS, else all cores */
    double min_time = 1.0;
    const char *models[16];
    int n_models = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads <= 0)
                return usage();
        } else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            min_time = atof(argv[++i]);
            if (!(min_time > 0))
                return usage();
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            fixed_steps = atoi(argv[++i]);
            if (fixed_steps <= 0)
                return usage();
        } else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "bf16"))
                gpt_prec = KNOB_PREC_BF16;
            else if (!strcmp(argv[i], "f32"))
                gpt_prec = KNOB_PREC_F32;
            else
                return usage();
        } else if (is_spec(argv[i]) && n_models < 16) {
            models[n_models++] = argv[i];
        } else if ((!strcmp(argv[i], "mlp") || !strcmp(argv[i], "cnn") || !strcmp(argv[i], "gpt") ||
                    !strcmp(argv[i], "gptchar")) &&
                   n_models < 16) {
            models[n_models++] = argv[i];
        } else {
            return usage();
        }
    }
    if (n_models == 0) {
        models[n_models++] = "mlp";
        models[n_models++] = "cnn";
        models[n_models++] = "gpt";
    }
    knob_threads_set(threads);
    printf("# bench_step: knob %s, %s gemm kernel, %d threads; one step = forward + backward "
           "(grads set) + AdamW (SGD for mlp: and cnn5: specs); ms per step\n",
           KNOB_VERSION, knob_gemm_kernel_name(), knob_threads_get());
    if (gpt_prec == KNOB_PREC_BF16)
        printf("# precision bf16: the GPT's linear layers and logits through knob_gemm_bf16 (%s)\n",
               knob_gemm_bf16_kernel_name());
    printf("# model params graph_bytes loss0 steps median_ms best_ms\n");
    fflush(stdout);
    for (int i = 0; i < n_models; i++)
        run(models[i], min_time);
    return 0;
}
