/* dataset.c: the image data sets as train / val / test splits (knob_data_load).
 *
 * "digits": the 10 npm digit files (src/io/digits.c), split 80/10/10 within each digit with a
 * fixed seed, so every machine and every run sees the same test set whatever --seed says.
 * "fashion" and "idx:DIR": four IDX files (src/io/idx.c); the t10k pair is the test set and the
 * training pair is split into train and n_val validation images drawn with `seed`.
 *
 * Everything is checked before it is trusted: dimensions, image and label counts, label range,
 * image size agreement between train and test. Images arrive as bytes and become floats in [0, 1]
 * straight into their split, so the peak memory is the bytes plus the splits.
 */
#include "knob_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define DIGITS_SPLIT_SEED 20260311ULL   /* fixed: the digits split never changes */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

void knob_dataset_free(knob_dataset *d)
{
    if (!d)
        return;
    knob_free(d->x);
    knob_free(d->y);
    memset(d, 0, sizeof *d);
}

void knob_splits_free(knob_splits *s)
{
    if (!s)
        return;
    knob_dataset_free(&s->train);
    knob_dataset_free(&s->val);
    knob_dataset_free(&s->test);
    memset(s, 0, sizeof *s);
}

/* Allocates n images of h x w and copies the shape and class names from like. */
static knob_status dataset_alloc(knob_dataset *d, int n, int h, int w, const knob_dataset *like, knob_err *err)
{
    memset(d, 0, sizeof *d);
    size_t px = (size_t)h * (size_t)w;
    d->x = knob_malloc(KNOB_MAX((size_t)n * px, (size_t)1) * sizeof(float));
    d->y = knob_malloc(KNOB_MAX((size_t)n, (size_t)1) * sizeof(int32_t));
    if (!d->x || !d->y) {
        knob_dataset_free(d);
        return knob_fail(err, KNOB_ERR_NOMEM, "cannot allocate %d images of %dx%d", n, h, w);
    }
    d->n = n;
    d->c = 1;
    d->h = h;
    d->w = w;
    d->n_classes = like->n_classes;
    memcpy(d->class_names, like->class_names, sizeof d->class_names);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * digits: stratified fixed split */

/* per-class quota: floor(n_k / 10), plus one for the classes with the largest remainders n_k % 10
 * (ties: lower class first) until the quotas sum to n / 10 */
static void digit_quota(const int *n_k, int n_classes, int n, int *q)
{
    int total = 0;
    for (int k = 0; k < n_classes; k++) {
        q[k] = n_k[k] / 10;
        total += q[k];
    }
    for (int rem = 9; rem >= 1 && total < n / 10; rem--)
        for (int k = 0; k < n_classes && total < n / 10; k++)
            if (n_k[k] % 10 == rem) {
                q[k]++;
                total++;
            }
}

/* all = the digit files as one dataset of 28x28 images, classes "0" .. "9", in file order */
static knob_status digits_dataset(knob_dataset *all, const char *dir, knob_err *err)
{
    memset(all, 0, sizeof *all);
    knob_status st = knob_digits_read(dir, &all->x, &all->y, &all->n, err);
    if (st)
        return st;
    all->c = 1;
    all->h = all->w = 28;
    all->n_classes = 10;
    for (int k = 0; k < 10; k++)
        snprintf(all->class_names[k], sizeof all->class_names[k], "%d", k);
    return KNOB_OK;
}

static knob_status load_digits(knob_splits *s, const char *dir, knob_err *err)
{
    knob_dataset all;
    knob_status st = digits_dataset(&all, dir, err);
    if (st)
        return st;
    int n_k[16] = {0}, q[16], start[16];
    for (int i = 0; i < all.n; i++)
        n_k[all.y[i]]++;
    digit_quota(n_k, all.n_classes, all.n, q);
    int n_test = 0, n_val = 0;
    int take_t[16], take_v[16];
    for (int k = 0, at = 0; k < all.n_classes; k++) {
        start[k] = at;                       /* knob_digits_read keeps classes in file order */
        at += n_k[k];
        take_t[k] = KNOB_MIN(q[k], n_k[k]);
        take_v[k] = KNOB_MIN(q[k], n_k[k] - take_t[k]);
        n_test += take_t[k];
        n_val += take_v[k];
    }
    int n_train = all.n - n_test - n_val;
    int *idx = knob_malloc((size_t)all.n * sizeof(int));
    if (!idx) {
        knob_dataset_free(&all);
        return knob_fail(err, KNOB_ERR_NOMEM, "digits: cannot allocate the split");
    }
    /* idx: test indices, then val, then train */
    knob_rng r;
    knob_rng_seed(&r, DIGITS_SPLIT_SEED);
    int *cls = knob_malloc((size_t)all.n * sizeof(int));
    if (!cls) {
        knob_free(idx);
        knob_dataset_free(&all);
        return knob_fail(err, KNOB_ERR_NOMEM, "digits: cannot allocate the split");
    }
    int at_t = 0, at_v = n_test, at_r = n_test + n_val;
    for (int k = 0; k < all.n_classes; k++) {
        for (int i = 0; i < n_k[k]; i++)
            cls[i] = start[k] + i;
        knob_rng_shuffle(&r, cls, (size_t)n_k[k]);
        int i = 0;
        for (int j = 0; j < take_t[k]; j++)
            idx[at_t++] = cls[i++];
        for (int j = 0; j < take_v[k]; j++)
            idx[at_v++] = cls[i++];
        while (i < n_k[k])
            idx[at_r++] = cls[i++];
    }
    knob_free(cls);
    knob_rng_shuffle(&r, idx, (size_t)n_test);
    knob_rng_shuffle(&r, idx + n_test, (size_t)n_val);
    knob_rng_shuffle(&r, idx + n_test + n_val, (size_t)n_train);

    knob_dataset *dst[3] = {&s->test, &s->val, &s->train};
    int cnt[3] = {n_test, n_val, n_train};
    const size_t px = (size_t)all.h * (size_t)all.w;
    for (int p = 0, at = 0; p < 3; p++) {
        st = dataset_alloc(dst[p], cnt[p], all.h, all.w, &all, err);
        if (st)
            break;
        for (int i = 0; i < cnt[p]; i++, at++) {
            memcpy(dst[p]->x + (size_t)i * px, all.x + (size_t)idx[at] * px, px * sizeof(float));
            dst[p]->y[i] = all.y[idx[at]];
        }
    }
    knob_free(idx);
    knob_dataset_free(&all);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * IDX pairs: fashion and idx:DIR */

typedef struct {
    char img_path[4200], lab_path[4200];
    uint8_t *img, *lab;
    int n, h, w;
} idx_pair;

static void idx_pair_free(idx_pair *p)
{
    knob_free(p->img);
    knob_free(p->lab);
    p->img = p->lab = NULL;
}

/* DIR/base, or DIR/base.gz when only that exists. */
static knob_status find_file(char *out, size_t size, const char *dir, const char *base, int is_fashion, knob_err *err)
{
    struct stat sb;
    if (snprintf(out, size, "%s/%s", dir, base) >= (int)size)
        return knob_fail(err, KNOB_ERR_USAGE, "%.128s...: path too long", dir);
    if (stat(out, &sb) == 0)
        return KNOB_OK;
    snprintf(out, size, "%s/%s.gz", dir, base);
    if (stat(out, &sb) == 0)
        return KNOB_OK;
    return knob_fail(err, KNOB_ERR_IO, "%s/%s[.gz]: not found%s", dir, base,
                     is_fashion ? "; run sh scripts/setup.sh to fetch Fashion-MNIST"
                                : "; expected the four MNIST-style IDX files in that folder");
}

static knob_status read_pair(idx_pair *p, const char *dir, const char *prefix, int max_label, int is_fashion,
                             int *label_max, knob_err *err)
{
    char base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    knob_status st = find_file(p->img_path, sizeof p->img_path, dir, base, is_fashion, err);
    if (st)
        return st;
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    if ((st = find_file(p->lab_path, sizeof p->lab_path, dir, base, is_fashion, err)))
        return st;
    int nd, dims[4];
    if ((st = knob_idx_read(p->img_path, &nd, dims, &p->img, err)))
        return st;
    if (nd != 3 || dims[1] <= 0 || dims[2] <= 0) {
        idx_pair_free(p);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: expected 3 dimensions (images, rows, cols) with rows, cols > 0",
                         p->img_path);
    }
    p->n = dims[0];
    p->h = dims[1];
    p->w = dims[2];
    if ((st = knob_idx_read(p->lab_path, &nd, dims, &p->lab, err))) {
        idx_pair_free(p);
        return st;
    }
    if (nd != 1) {
        idx_pair_free(p);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: expected 1 dimension (labels), found %d", p->lab_path, nd);
    }
    if (dims[0] != p->n) {
        idx_pair_free(p);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: %d images but %s has %d labels", p->img_path, p->n,
                         p->lab_path, dims[0]);
    }
    for (int i = 0; i < p->n; i++) {
        if (p->lab[i] > max_label) {
            int bad = p->lab[i];
            idx_pair_free(p);
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: label %d at index %d out of range (expected 0 to %d)",
                             p->lab_path, bad, i, max_label);
        }
        *label_max = KNOB_MAX(*label_max, (int)p->lab[i]);
    }
    return KNOB_OK;
}

/* d = the images of p whose index has mark[i] == want (all when mark is NULL), in file order */
static void gather_bytes(knob_dataset *d, const idx_pair *p, const uint8_t *mark, int want)
{
    const size_t px = (size_t)p->h * (size_t)p->w;
    float lut[256];   /* b / 255, correctly rounded */
    for (int b = 0; b < 256; b++)
        lut[b] = (float)b / 255.0f;
    int k = 0;
    for (int i = 0; i < p->n; i++) {
        if (mark && mark[i] != want)
            continue;
        const uint8_t *src = p->img + (size_t)i * px;
        float *dst = d->x + (size_t)k * px;
        for (size_t j = 0; j < px; j++)
            dst[j] = lut[src[j]];
        d->y[k++] = p->lab[i];
    }
    KNOB_ASSERT(k == d->n);
}

static knob_status load_idx(knob_splits *s, const char *dir, int is_fashion, int n_val, uint64_t seed, knob_err *err)
{
    idx_pair tr = {0}, te = {0};
    int label_max = 0;
    const int max_label = is_fashion ? 9 : 15;
    knob_status st = read_pair(&tr, dir, "train", max_label, is_fashion, &label_max, err);
    if (st)
        return st;
    if ((st = read_pair(&te, dir, "t10k", max_label, is_fashion, &label_max, err))) {
        idx_pair_free(&tr);
        return st;
    }
    uint8_t *mark = NULL;
    if (te.h != tr.h || te.w != tr.w) {
        st = knob_fail(err, KNOB_ERR_FORMAT, "%s: images are %dx%d but %s has %dx%d", te.img_path, te.h, te.w,
                       tr.img_path, tr.h, tr.w);
        goto done;
    }
    if (n_val < 0 || n_val >= tr.n) {
        st = knob_fail(err, KNOB_ERR_USAGE, "%s: %d validation images requested of %d training images (need fewer)",
                       tr.img_path, n_val, tr.n);
        goto done;
    }
    knob_dataset like = {0};
    like.n_classes = is_fashion ? 10 : label_max + 1;
    for (int k = 0; k < like.n_classes; k++) {
        if (is_fashion)
            snprintf(like.class_names[k], sizeof like.class_names[k], "%s", fashion_names[k]);
        else
            snprintf(like.class_names[k], sizeof like.class_names[k], "%d", k);
    }
    /* validation: the first n_val of a seeded permutation of the training images */
    mark = knob_calloc((size_t)tr.n + 1, 1);
    int *perm = knob_malloc(((size_t)tr.n + 1) * sizeof(int));
    if (!mark || !perm) {
        knob_free(perm);
        st = knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot allocate the split", tr.img_path);
        goto done;
    }
    for (int i = 0; i < tr.n; i++)
        perm[i] = i;
    knob_rng r;
    knob_rng_seed(&r, seed);
    knob_rng_shuffle(&r, perm, (size_t)tr.n);
    for (int i = 0; i < n_val; i++)
        mark[perm[i]] = 1;
    knob_free(perm);
    if ((st = dataset_alloc(&s->train, tr.n - n_val, tr.h, tr.w, &like, err)) ||
        (st = dataset_alloc(&s->val, n_val, tr.h, tr.w, &like, err)) ||
        (st = dataset_alloc(&s->test, te.n, te.h, te.w, &like, err)))
        goto done;
    gather_bytes(&s->train, &tr, mark, 0);
    gather_bytes(&s->val, &tr, mark, 1);
    gather_bytes(&s->test, &te, NULL, 0);
done:
    knob_free(mark);
    idx_pair_free(&tr);
    idx_pair_free(&te);
    return st;
}

knob_status knob_data_load(knob_splits *s, const char *spec, const char *dir, int n_val, uint64_t seed, knob_err *err)
{
    memset(s, 0, sizeof *s);
    knob_status st;
    if (strcmp(spec, "digits") == 0) {
        st = load_digits(s, dir, err);
    } else if (strcmp(spec, "fashion") == 0) {
        st = load_idx(s, dir ? dir : FASHION_DIR, 1, n_val, seed, err);
    } else if (strncmp(spec, "idx:", 4) == 0 && spec[4]) {
        st = load_idx(s, spec + 4, 0, n_val, seed, err);
    } else {
        return knob_fail(err, KNOB_ERR_USAGE, "unknown data set '%.128s' (expected digits, fashion or idx:DIR)", spec);
    }
    if (st) {
        knob_splits_free(s);
        return st;
    }
    snprintf(s->name, sizeof s->name, "%s", spec);
    return KNOB_OK;
}
