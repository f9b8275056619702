/* vision.c: the image classifiers behind knob train / eval / predict. A model is a config (MLP or
 * CNN, layer sizes), its parameters in one knob_params block, and graphs built from them for a
 * fixed batch size: a training graph (targets, loss, dropout) and inference graphs (logits only).
 * Evaluation runs an inference graph over a dataset in fixed batches, padding the last one, so
 * every image counts exactly once; loss and accuracy are computed here from the logits, in double.
 *
 *   MLP  x (B, c, h, w) -> flatten -> [linear, relu, dropout] x n_hidden -> linear -> logits
 *   CNN  x -> [conv K x K "same" (or unpadded: --pad 0), relu, maxpool 2] x n_conv -> flatten
 *          -> [linear, relu, dropout] x n_hidden -> linear -> logits
 *
 * Not here: the trainer and its checkpoints (vision_train.c, on src/train/), pictures
 * (vision_pictures.c), the ops (src/ops). */
#include "knob_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Config */

knob_status knob_int_list_parse(const char *s, int *v, int max, int *n, const char *what, knob_err *err)
{
    *n = 0;
    if (!s || !s[0] || strcmp(s, "0") == 0)
        return KNOB_OK;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 1 || x > 65536 || (*end && *end != ','))
            return knob_fail(err, KNOB_ERR_USAGE, "%s: '%.64s' is not a comma-separated list of integers in [1, 65536]",
                             what, s);
        if (*n == max)
            return knob_fail(err, KNOB_ERR_USAGE, "%s: '%.64s' has more than %d entries", what, s, max);
        v[(*n)++] = (int)x;
        if (!*end)
            return KNOB_OK;
        p = end + 1;
    }
}

static void list_str(char *buf, size_t size, const int *v, int n)
{
    size_t at = 0;
    buf[0] = 0;
    if (n == 0)
        snprintf(buf, size, "0");
    for (int i = 0; i < n && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%d", i ? "," : "", v[i]);
}

/* shortest of %g and %.9g that reads back as the same float */
static void float_str(char *buf, size_t size, float v)
{
    snprintf(buf, size, "%g", (double)v);
    if (strtof(buf, NULL) != v)
        snprintf(buf, size, "%.9g", (double)v);
}

void knob_vision_config_str(const knob_vision_config *c, char *buf, size_t size)
{
    char conv[128], hidden[128], drop[32];
    float_str(drop, sizeof drop, c->dropout);
    list_str(conv, sizeof conv, c->conv, c->n_conv);
    list_str(hidden, sizeof hidden, c->hidden, c->n_hidden);
    if (c->kind == KNOB_VISION_CNN)
        snprintf(buf, size, "kind=cnn in=%dx%dx%d classes=%d conv=%s kernel=%d%s hidden=%s dropout=%s", c->c,
                 c->h, c->w, c->n_classes, conv, c->kernel, c->unpadded ? " pad=0" : "", hidden, drop);
    else
        snprintf(buf, size, "kind=mlp in=%dx%dx%d classes=%d hidden=%s dropout=%s", c->c, c->h, c->w,
                 c->n_classes, hidden, drop);
}

knob_status knob_vision_config_check(const knob_vision_config *c, knob_err *err)
{
    if (c->kind != KNOB_VISION_MLP && c->kind != KNOB_VISION_CNN)
        return knob_fail(err, KNOB_ERR_USAGE, "model: unknown kind %d", (int)c->kind);
    if (c->c < 1 || c->h < 1 || c->w < 1 || c->c > 64 || c->h > 4096 || c->w > 4096)
        return knob_fail(err, KNOB_ERR_USAGE, "model: input %dx%dx%d is out of range", c->c, c->h, c->w);
    if (c->n_classes < 2 || c->n_classes > 16)
        return knob_fail(err, KNOB_ERR_USAGE, "model: %d classes; 2 to 16 supported", c->n_classes);
    if (c->n_hidden < 0 || c->n_hidden > KNOB_VISION_MAX_LAYERS || c->n_conv < 0 || c->n_conv > KNOB_VISION_MAX_LAYERS)
        return knob_fail(err, KNOB_ERR_USAGE, "model: at most %d conv stages and %d hidden layers",
                         KNOB_VISION_MAX_LAYERS, KNOB_VISION_MAX_LAYERS);
    for (int i = 0; i < c->n_hidden; i++)
        if (c->hidden[i] < 1 || c->hidden[i] > 65536)
            return knob_fail(err, KNOB_ERR_USAGE, "model: hidden layer %d has width %d", i + 1, c->hidden[i]);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return knob_fail(err, KNOB_ERR_USAGE, "model: dropout %g is not in [0, 1)", (double)c->dropout);
    if (c->kind == KNOB_VISION_MLP) {
        if (c->n_conv != 0)
            return knob_fail(err, KNOB_ERR_USAGE, "model: an MLP has no conv stages");
        return KNOB_OK;
    }
    if (c->n_conv < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "model: a CNN needs at least one conv stage");
    if (c->kernel < 1 || c->kernel > 15 || c->kernel % 2 == 0)
        return knob_fail(err, KNOB_ERR_USAGE, "model: conv kernel %d; an odd size in [1, 15] expected", c->kernel);
    int h = c->h, w = c->w;
    for (int i = 0; i < c->n_conv; i++) {
        if (c->conv[i] < 1 || c->conv[i] > 4096)
            return knob_fail(err, KNOB_ERR_USAGE, "model: conv stage %d has %d channels", i + 1, c->conv[i]);
        if (c->unpadded) {   /* an unpadded K x K conv takes K - 1 off each side */
            h -= c->kernel - 1, w -= c->kernel - 1;
            if (h < 1 || w < 1)
                return knob_fail(err, KNOB_ERR_USAGE,
                                 "model: %d unpadded %dx%d conv stages shrink a %dx%d image below 1x1; try --pad same",
                                 c->n_conv, c->kernel, c->kernel, c->h, c->w);
        }
        if (h < 2 || w < 2)
            return knob_fail(err, KNOB_ERR_USAGE, "model: %d conv stages pool a %dx%d image below 1x1", c->n_conv,
                             c->h, c->w);
        h /= 2, w /= 2;
    }
    return KNOB_OK;
}

static knob_status config_value(knob_vision_config *c, const char *key, const char *val, knob_err *err)
{
    char *end;
    if (strcmp(key, "kind") == 0) {
        if (strcmp(val, "mlp") == 0)
            c->kind = KNOB_VISION_MLP;
        else if (strcmp(val, "cnn") == 0)
            c->kind = KNOB_VISION_CNN;
        else
            return knob_fail(err, KNOB_ERR_FORMAT, "model kind '%.32s' is not mlp or cnn", val);
        return KNOB_OK;
    }
    if (strcmp(key, "in") == 0) {
        if (sscanf(val, "%dx%dx%d", &c->c, &c->h, &c->w) != 3)
            return knob_fail(err, KNOB_ERR_FORMAT, "model input '%.32s' is not CxHxW", val);
        return KNOB_OK;
    }
    if (strcmp(key, "classes") == 0 || strcmp(key, "kernel") == 0) {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (end == val || *end || errno || v < 0 || v > 65536)
            return knob_fail(err, KNOB_ERR_FORMAT, "model %s '%.32s' is not an integer", key, val);
        *(key[0] == 'c' ? &c->n_classes : &c->kernel) = (int)v;
        return KNOB_OK;
    }
    if (strcmp(key, "pad") == 0) {
        if (strcmp(val, "0") == 0)
            c->unpadded = 1;
        else if (strcmp(val, "same") == 0)
            c->unpadded = 0;
        else
            return knob_fail(err, KNOB_ERR_FORMAT, "model pad '%.32s' is not 0 or same", val);
        return KNOB_OK;
    }
    if (strcmp(key, "conv") == 0)
        return knob_int_list_parse(val, c->conv, KNOB_VISION_MAX_LAYERS, &c->n_conv, "model conv", err);
    if (strcmp(key, "hidden") == 0)
        return knob_int_list_parse(val, c->hidden, KNOB_VISION_MAX_LAYERS, &c->n_hidden, "model hidden", err);
    if (strcmp(key, "dropout") == 0) {
        c->dropout = strtof(val, &end);
        if (end == val || *end)
            return knob_fail(err, KNOB_ERR_FORMAT, "model dropout '%.32s' is not a number", val);
        return KNOB_OK;
    }
    return knob_fail(err, KNOB_ERR_FORMAT, "model: unknown key '%.32s'", key);
}

knob_status knob_vision_config_parse(knob_vision_config *c, const char *s, knob_err *err)
{
    memset(c, 0, sizeof *c);
    const char *p = s;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, " ");
        char word[256], *eq;
        if (len >= sizeof word || !(eq = memchr(p, '=', len)))
            return knob_fail(err, KNOB_ERR_FORMAT, "model config: '%.*s' is not key=value", (int)KNOB_MIN(len, 64), p);
        memcpy(word, p, len);
        word[len] = 0;
        word[eq - p] = 0;
        knob_status st = config_value(c, word, word + (eq - p) + 1, err);
        if (st)
            return st;
        p += len;
    }
    if (knob_vision_config_check(c, err) != KNOB_OK) {   /* a bad file, not a bad flag */
        if (err)
            err->code = KNOB_ERR_FORMAT;
        return KNOB_ERR_FORMAT;
    }
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Parameters */

void knob_vision_free(knob_vision *m)
{
    if (!m)
        return;
    knob_params_free(&m->P);
    memset(m, 0, sizeof *m);
}

/* flattened features entering the first dense layer */
static int flat_size(const knob_vision_config *c)
{
    if (c->kind == KNOB_VISION_MLP)
        return c->c * c->h * c->w;
    int h = c->h, w = c->w, shrink = c->unpadded ? c->kernel - 1 : 0;
    for (int i = 0; i < c->n_conv; i++)
        h = (h - shrink) / 2, w = (w - shrink) / 2;
    return c->conv[c->n_conv - 1] * h * w;
}

knob_status knob_vision_init(knob_vision *m, const knob_vision_config *c, uint64_t seed, knob_err *err)
{
    memset(m, 0, sizeof *m);
    knob_status s = knob_vision_config_check(c, err);
    if (s)
        return s;
    m->cfg = *c;
    knob_params_init(&m->P);
    char name[64];
    int in_c = c->c, K = c->kernel;
    for (int i = 0; i < c->n_conv; i++) {
        snprintf(name, sizeof name, "conv%d.weight", i + 1);
        m->conv_w[i] = knob_params_add(&m->P, name, 4, (int[]){c->conv[i], in_c, K, K}, err);
        snprintf(name, sizeof name, "conv%d.bias", i + 1);
        m->conv_b[i] = knob_params_add(&m->P, name, 1, (int[]){c->conv[i]}, err);
        if (!m->conv_w[i] || !m->conv_b[i])
            goto fail;
        in_c = c->conv[i];
    }
    m->n_fc = c->n_hidden + 1;
    int in = flat_size(c);
    for (int i = 0; i < m->n_fc; i++) {
        int out = i < c->n_hidden ? c->hidden[i] : c->n_classes;
        snprintf(name, sizeof name, "fc%d.weight", i + 1);
        m->fc_w[i] = knob_params_add(&m->P, name, 2, (int[]){out, in}, err);
        snprintf(name, sizeof name, "fc%d.bias", i + 1);
        m->fc_b[i] = knob_params_add(&m->P, name, 1, (int[]){out}, err);
        if (!m->fc_w[i] || !m->fc_b[i])
            goto fail;
        in = out;
    }
    if ((s = knob_params_alloc(&m->P, err)) != KNOB_OK)
        goto fail;
    knob_rng r;
    knob_rng_seed(&r, seed);
    for (int i = 0; i < c->n_conv; i++)
        knob_init_kaiming(m->conv_w[i], &r);
    for (int i = 0; i < m->n_fc; i++) {
        if (i < c->n_hidden)
            knob_init_kaiming(m->fc_w[i], &r);
        else
            knob_init_xavier(m->fc_w[i], &r);   /* logits: no ReLU after it */
    }
    return KNOB_OK;   /* biases stay 0 (knob_params_alloc zeroes) */
fail:
    s = err ? err->code : KNOB_ERR_NOMEM;
    knob_vision_free(m);
    return s ? s : KNOB_ERR_NOMEM;
}

/* ------------------------------------------------------------------------------------------------
 * Graphs */

void knob_vision_net_free(knob_vision_net *n)
{
    if (!n)
        return;
    knob_graph_free(n->g);
    memset(n, 0, sizeof *n);
}

/* y (B, out) = x (B, in) @ w^T + b,  w (out, in), b (out) */
static knob_node *linear(knob_graph *g, knob_node *x, knob_tensor *w, knob_tensor *b)
{
    return knob_matmul_bias(g, x, knob_param(g, w), knob_param(g, b), 0, 1, KNOB_PREC_F32);
}

knob_status knob_vision_net_build(knob_vision_net *n, knob_vision *m, int B, int with_loss, knob_err *err)
{
    memset(n, 0, sizeof *n);
    const knob_vision_config *c = &m->cfg;
    if (B < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "model: batch size %d; must be at least 1", B);
    knob_graph *g = knob_graph_new(err);
    if (!g)
        return err ? err->code : KNOB_ERR_NOMEM;
    n->g = g;
    n->B = B;
    knob_graph_set_training(g, with_loss);
    n->x = knob_input(g, "x", 4, (int[]){B, c->c, c->h, c->w});              // (B, c, h, w)
    knob_node *h = n->x;
    for (int i = 0; i < c->n_conv; i++) {
        h = knob_conv2d(g, h, knob_param(g, m->conv_w[i]), knob_param(g, m->conv_b[i]), 1,
                        c->unpadded ? 0 : c->kernel / 2);
        h = knob_relu(g, h);                                                 // (B, OC, H, W)
        n->feat[n->n_feat++] = h;
        h = knob_maxpool2d(g, h, 2, 2);                                      // (B, OC, H/2, W/2)
    }
    h = knob_reshape(g, h, 2, (int[]){B, flat_size(c)});                     // (B, F)
    for (int i = 0; i < m->n_fc; i++) {
        h = linear(g, h, m->fc_w[i], m->fc_b[i]);
        if (i < c->n_hidden) {
            h = knob_relu(g, h);
            if (with_loss && c->dropout > 0.0f)
                h = knob_dropout(g, h, c->dropout);
        }
    }
    n->logits = h;                                                           // (B, n_classes)
    if (with_loss) {
        n->y = knob_input_i32(g, "y", 1, (int[]){B});                        // (B)
        n->loss = knob_cross_entropy(g, n->logits, n->y, -1);
    }
    knob_status s = knob_graph_compile(g, err);
    if (s)
        knob_vision_net_free(n);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Evaluation */

/* -log softmax(z)[t] in double, and argmax z (first on ties) */
static knob_status check_images(const knob_vision_net *n, const knob_dataset *d, knob_err *err)
{
    const knob_tensor *x = knob_node_tensor(n->x);
    const knob_tensor *l = knob_node_tensor(n->logits);
    if (d->c != x->shape[1] || d->h != x->shape[2] || d->w != x->shape[3])
        return knob_fail(err, KNOB_ERR_SHAPE, "model expects %dx%dx%d images, the data has %dx%dx%d", x->shape[1],
                         x->shape[2], x->shape[3], d->c, d->h, d->w);
    if (d->n_classes > l->shape[1])
        return knob_fail(err, KNOB_ERR_SHAPE, "model has %d classes, the data has %d", l->shape[1], d->n_classes);
    return KNOB_OK;
}

typedef struct {
    const knob_dataset *d;
    float *x;          /* the net's input (B, c, h, w) */
    int32_t *y;        /* (B) the batch's labels */
    int B;
} eval_fill;

static knob_status fill_images(void *ctx, int i, int *rows, knob_err *err)
{
    eval_fill *f = ctx;
    size_t img = (size_t)f->d->c * f->d->h * f->d->w;
    int at = i * f->B, m = KNOB_MIN(f->B, f->d->n - at);
    memcpy(f->x, f->d->x + (size_t)at * img, (size_t)m * img * sizeof *f->x);
    if (m < f->B)   /* padding rows: computed, never counted */
        memset(f->x + (size_t)m * img, 0, (size_t)(f->B - m) * img * sizeof *f->x);
    memcpy(f->y, f->d->y + at, (size_t)m * sizeof *f->y);
    *rows = m;
    (void)err;
    return KNOB_OK;
}

knob_status knob_vision_evaluate(knob_vision_net *n, const knob_dataset *d, knob_eval_result *r, int32_t *pred,
                                 knob_err *err)
{
    memset(r, 0, sizeof *r);
    knob_status s = check_images(n, d, err);
    if (s)
        return s;
    int B = n->B, K = knob_node_tensor(n->logits)->shape[1];
    r->n_classes = K;
    int32_t *y = knob_malloc((size_t)B * sizeof *y), *p = knob_malloc((size_t)KNOB_MAX(d->n, 1) * sizeof *p);
    if (!y || !p) {
        knob_free(y);
        knob_free(p);
        return knob_fail(err, KNOB_ERR_NOMEM, "evaluate: out of memory for %d labels", d->n);
    }
    eval_fill f = {d, knob_node_data(n->x), y, B};
    knob_eval e = {.g = n->g, .logits = n->logits, .targets = y, .n_batches = (d->n + B - 1) / B, .fill = fill_images,
                   .ctx = &f};
    knob_eval_stats es;
    s = knob_eval_run(&e, &es, p, err);
    for (int i = 0; !s && i < d->n; i++) {
        int t = d->y[i];
        if (t < 16 && p[i] < 16)
            r->confusion[t][p[i]]++;
        if (pred)
            pred[i] = p[i];
    }
    if (!s) {
        r->n = d->n;
        r->correct = (int)es.correct;
        r->loss = es.loss;
        r->accuracy = es.accuracy;
    }
    knob_free(y);
    knob_free(p);
    return s;
}

knob_status knob_vision_classify(knob_vision_net *n, const float *img, float *probs, knob_err *err)
{
    const knob_tensor *xt = knob_node_tensor(n->x);
    size_t sz = (size_t)xt->shape[1] * xt->shape[2] * xt->shape[3];
    float *x = knob_node_data(n->x);
    memcpy(x, img, sz * sizeof *x);
    if (n->B > 1)
        memset(x + sz, 0, (size_t)(n->B - 1) * sz * sizeof *x);
    knob_status s = knob_graph_forward(n->g, err);
    if (s)
        return s;
    int K = knob_node_tensor(n->logits)->shape[1];
    knob_softmax_row(probs, knob_node_data(n->logits), (size_t)K, -1);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Images of any size -> the model's input */

void knob_image_fit(const knob_image *im, float *out, int h, int w)
{
    /* border mean decides the polarity */
    double border = 0;
    int nb = 0;
    for (int x = 0; x < im->w; x++) {
        border += im->px[x] + im->px[(size_t)(im->h - 1) * im->w + x];
        nb += 2;
    }
    for (int y = 0; y < im->h; y++) {
        border += im->px[(size_t)y * im->w] + im->px[(size_t)y * im->w + im->w - 1];
        nb += 2;
    }
    int invert = nb && border / nb > 0.5;
    /* area average: output pixel (oy, ox) covers source rows [oy*sh, (oy+1)*sh), likewise columns,
     * with fractional weights at the edges (upsampling gives nearest-like blocks) */
    double sy = (double)im->h / h, sx = (double)im->w / w;
    for (int oy = 0; oy < h; oy++)
        for (int ox = 0; ox < w; ox++) {
            double y0 = oy * sy, y1 = y0 + sy, x0 = ox * sx, x1 = x0 + sx, acc = 0, wsum = 0;
            for (int y = (int)y0; y < im->h && y < y1; y++) {
                double wy = fmin(y + 1.0, y1) - fmax((double)y, y0);
                for (int x = (int)x0; x < im->w && x < x1; x++) {
                    double wx = fmin(x + 1.0, x1) - fmax((double)x, x0);
                    acc += wy * wx * im->px[(size_t)y * im->w + x];
                    wsum += wy * wx;
                }
            }
            double v = wsum > 0 ? acc / wsum : 0;
            out[(size_t)oy * w + ox] = (float)(invert ? 1.0 - v : v);
        }
}
