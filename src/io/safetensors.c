/* safetensors.c: knob's native checkpoint format, and the one the wider ecosystem (PyTorch,
 * Hugging Face) publishes weights in.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON, then the data section. The
 * JSON object maps each tensor name to {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
 * offsets in bytes relative to the start of the data section, plus an optional "__metadata__"
 * object of string -> string. Our writer puts tensors contiguously in the order given and pads
 * the header with spaces so the data section starts on an 8-byte boundary, as the reference
 * implementation does.
 *
 * Reading loads the whole file, parses the header with knob_json (core/json.c) and validates everything in
 * knob_st_open (dtype, shape, offsets inside the data section, byte sizes, no overlaps, no
 * duplicate names), so later reads only copy and convert. Nothing here trusts the file: every
 * defect is a one-line KNOB_ERR_FORMAT naming the file and the cause.
 */
#include "knob_internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* Data is written with fwrite straight from float arrays and read back with memcpy. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_DIMS 8
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact doubles */
#define ST_META "__metadata__"
#define ST_MAX_HEADER 100000000   /* bytes of JSON header; the reference implementation refuses more too */

/* ------------------------------------------------------------------------------------------------
 * Dtypes: the ones we convert get their own knob_st_dtype; the rest of the format's dtypes are
 * KNOB_ST_OTHER but still have their byte size checked. A well-formed name we do not know is
 * KNOB_ST_OTHER with no size check (size 0). */

typedef struct {
    const char *name;
    knob_st_dtype kind;
    unsigned size;
} st_dtype_info;

static const st_dtype_info st_dtypes[] = {
    {"F32", KNOB_ST_F32, 4},    {"F16", KNOB_ST_F16, 2},    {"BF16", KNOB_ST_BF16, 2},
    {"I32", KNOB_ST_I32, 4},    {"I64", KNOB_ST_I64, 8},    {"F64", KNOB_ST_OTHER, 8},
    {"I8", KNOB_ST_OTHER, 1},   {"U8", KNOB_ST_OTHER, 1},   {"I16", KNOB_ST_OTHER, 2},
    {"U16", KNOB_ST_OTHER, 2},  {"U32", KNOB_ST_OTHER, 4},  {"U64", KNOB_ST_OTHER, 8},
    {"BOOL", KNOB_ST_OTHER, 1}, {"F8_E4M3", KNOB_ST_OTHER, 1}, {"F8_E5M2", KNOB_ST_OTHER, 1},
};

static st_dtype_info dtype_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return st_dtypes[i];
    return (st_dtype_info){name, KNOB_ST_OTHER, 0};
}

/* 1 to 15 characters of A-Z, 0-9, _ (fits knob_st_entry.dtype_name). */
static int dtype_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof ((knob_st_entry *)0)->dtype_name)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * Small helpers */

static uint64_t read_le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void write_le64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* Product of the shape; 0 when it does not fit in a uint64 (a zero dim makes a legal 0). */
static int shape_elems(int n_dims, const int64_t *shape, uint64_t *out)
{
    uint64_t n = 1;
    for (int i = 0; i < n_dims; i++)
        if (shape[i] == 0) {
            *out = 0;
            return 1;
        }
    for (int i = 0; i < n_dims; i++) {
        if ((uint64_t)shape[i] > UINT64_MAX / n)
            return 0;
        n *= (uint64_t)shape[i];
    }
    *out = n;
    return 1;
}

/* "(2, 3)" for a file's int64 shape; the same format as knob_shape_str. */
static char *shape64_str(char *buf, size_t size, int n_dims, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < n_dims && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (at < size)
        snprintf(buf + at, size - at, ")");
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts names (in place) and returns one that occurs twice, or NULL. */
static const char *find_duplicate(const char **names, int n)
{
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Reading: the header */

static int json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Parses hdr[0, n) into *root (which the caller frees, also on failure). */
static knob_status parse_header(const char *path, const unsigned char *hdr, size_t n, knob_json **root,
                                knob_err *err)
{
    char what[sizeof ((knob_st *)0)->path + 16];
    snprintf(what, sizeof what, "%s: header", path);
    const char *text = (const char *)hdr;
    size_t end = 0;
    knob_status s = knob_json_parse(root, text, n, &end, what, err);
    if (s)
        return s;
    /* writers may pad the header's end with spaces (to align the data section) */
    for (size_t c = end; c < n; c++)
        if (!json_space(text[c]))
            return knob_fail(err, KNOB_ERR_FORMAT,
                             "%s: header has bytes after the JSON at byte %zu of %zu; only spaces may pad it",
                             path, c, n);
    if (!knob_json_is_object(*root))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: header is not a JSON object", path);
    return KNOB_OK;
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_uint(const knob_json *j, uint64_t *out)
{
    if (!knob_json_is_number(j))
        return 0;
    double d = knob_json_number(j);
    if (!(d >= 0 && d <= ST_MAX_JSON_INT) || (double)(uint64_t)d != d)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static knob_status parse_dtype(const char *path, const knob_json *j, knob_st_entry *e, unsigned *size,
                               knob_err *err)
{
    const knob_json *d = knob_json_get(j, "dtype");
    if (!d)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%.128s' has no dtype", path, e->name);
    const char *name = knob_json_string(d);
    if (!name || !dtype_name_ok(name))
        return knob_fail(err, KNOB_ERR_FORMAT,
                         "%s: tensor '%.128s': dtype must be a name like \"F32\" (A-Z, 0-9, _, at most 15)",
                         path, e->name);
    st_dtype_info info = dtype_lookup(name);
    snprintf(e->dtype_name, sizeof e->dtype_name, "%s", name);
    e->dtype = info.kind;
    *size = info.size;
    return KNOB_OK;
}

static knob_status parse_shape(const char *path, const knob_json *j, knob_st_entry *e, knob_err *err)
{
    const knob_json *s = knob_json_get(j, "shape");
    if (!knob_json_is_array(s) || knob_json_size(s) > ST_MAX_DIMS)
        return knob_fail(err, KNOB_ERR_FORMAT,
                         "%s: tensor '%.128s': shape must be an array of at most %d non-negative integers",
                         path, e->name, ST_MAX_DIMS);
    e->n_dims = 0;
    for (const knob_json *d = knob_json_child(s); d; d = knob_json_next(d)) {
        uint64_t v;
        if (!json_uint(d, &v))
            return knob_fail(err, KNOB_ERR_FORMAT,
                             "%s: tensor '%.128s': shape dim %d is not a non-negative integer", path,
                             e->name, e->n_dims);
        e->shape[e->n_dims++] = (int64_t)v;
    }
    return KNOB_OK;
}

static knob_status parse_offsets(const char *path, const knob_json *j, knob_st_entry *e, size_t data_len,
                                 knob_err *err)
{
    const knob_json *o = knob_json_get(j, "data_offsets");
    uint64_t b, end;
    if (!knob_json_is_array(o) || knob_json_size(o) != 2 || !json_uint(knob_json_child(o), &b) ||
        !json_uint(knob_json_next(knob_json_child(o)), &end) || b > end)
        return knob_fail(err, KNOB_ERR_FORMAT,
                         "%s: tensor '%.128s': data_offsets must be [begin, end], integers with 0 <= begin <= end",
                         path, e->name);
    if (end > data_len)
        return knob_fail(err, KNOB_ERR_FORMAT,
                         "%s: tensor '%.128s': data_offsets [%llu, %llu] run beyond the data section (%zu bytes)",
                         path, e->name, (unsigned long long)b, (unsigned long long)end, data_len);
    e->begin = (size_t)b;
    e->end = (size_t)end;
    return KNOB_OK;
}

/* The byte range must hold exactly product(shape) elements of the dtype (when its size is known). */
static knob_status check_size(const char *path, const knob_st_entry *e, unsigned size, knob_err *err)
{
    char sh[256];
    uint64_t n;
    if (!shape_elems(e->n_dims, e->shape, &n))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%.128s': shape %s has too many elements",
                         path, e->name, shape64_str(sh, sizeof sh, e->n_dims, e->shape));
    uint64_t bytes = e->end - e->begin;
    if (size == 0 || (n <= UINT64_MAX / size && n * size == bytes))
        return KNOB_OK;
    if (n > UINT64_MAX / size)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%.128s' has %llu bytes; shape %s of %s is larger",
                         path, e->name, (unsigned long long)bytes,
                         shape64_str(sh, sizeof sh, e->n_dims, e->shape), e->dtype_name);
    return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%.128s' has %llu bytes; shape %s of %s needs %llu",
                     path, e->name, (unsigned long long)bytes,
                     shape64_str(sh, sizeof sh, e->n_dims, e->shape), e->dtype_name,
                     (unsigned long long)(n * size));
}

static knob_status parse_entry(const char *path, const knob_json *j, knob_st_entry *e, size_t data_len,
                               knob_err *err)
{
    if (!knob_json_is_object(j))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%.128s' is not an object", path, e->name);
    unsigned size = 0;
    knob_status s = parse_dtype(path, j, e, &size, err);
    if (!s)
        s = parse_shape(path, j, e, err);
    if (!s)
        s = parse_offsets(path, j, e, data_len, err);
    if (!s)
        s = check_size(path, e, size, err);
    return s;
}

static knob_status parse_meta(knob_st *st, const char *path, const knob_json *m, knob_err *err)
{
    if (!knob_json_is_object(m))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: __metadata__ is not an object of strings", path);
    int n = knob_json_size(m);
    st->meta = knob_calloc((size_t)n, sizeof *st->meta);
    if (!st->meta)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory reading __metadata__", path);
    for (const knob_json *c = knob_json_child(m); c; c = knob_json_next(c)) {
        if (!knob_json_is_string(c))
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: __metadata__ value of '%.128s' is not a string",
                             path, knob_json_key(c));
        knob_kv *kv = &st->meta[st->n_meta++];
        kv->key = knob_strdup(knob_json_key(c));
        kv->value = knob_strdup(knob_json_string(c));
        if (!kv->key || !kv->value)
            return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory reading __metadata__", path);
    }
    return KNOB_OK;
}

/* Fills st->e (file order) and st->meta from the header object. */
static knob_status parse_entries(knob_st *st, const char *path, const knob_json *root, knob_err *err)
{
    int n = 0;
    const knob_json *meta = NULL;
    for (const knob_json *c = knob_json_child(root); c; c = knob_json_next(c)) {
        if (strcmp(knob_json_key(c), ST_META) != 0)
            n++;
        else if (meta)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: duplicate '" ST_META "' in header", path);
        else
            meta = c;
    }
    st->e = knob_calloc((size_t)n, sizeof *st->e);
    if (!st->e)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory reading %d header entries", path, n);
    for (const knob_json *c = knob_json_child(root); c; c = knob_json_next(c)) {
        if (c == meta)
            continue;
        knob_st_entry *e = &st->e[st->n++];
        e->name = knob_strdup(knob_json_key(c));
        if (!e->name)
            return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory reading header entries", path);
        knob_status s = parse_entry(path, c, e, st->data_len, err);
        if (s)
            return s;
    }
    return meta ? parse_meta(st, path, meta, err) : KNOB_OK;
}

/* The JSON parser keeps duplicate keys; the format forbids them (a reader could pick either). */
static knob_status check_unique(const knob_st *st, const char *path, knob_err *err)
{
    int n = KNOB_MAX(st->n, st->n_meta);
    const char **names = knob_malloc((size_t)KNOB_MAX(n, 1) * sizeof *names);
    if (!names)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory checking names", path);
    for (int i = 0; i < st->n; i++)
        names[i] = st->e[i].name;
    const char *dup = find_duplicate(names, st->n);
    knob_status s = KNOB_OK;
    if (dup)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: duplicate tensor name '%.128s' in header", path, dup);
    for (int i = 0; i < st->n_meta; i++)
        names[i] = st->meta[i].key;
    if (!s && (dup = find_duplicate(names, st->n_meta)) != NULL)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: duplicate __metadata__ key '%.128s' in header", path, dup);
    knob_free(names);
    return s;
}

static int cmp_range(const void *a, const void *b)
{
    const knob_st_entry *x = *(const knob_st_entry *const *)a, *y = *(const knob_st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Sorted by begin, each non-empty range must start at or after the furthest end seen so far.
 * Empty tensors (begin == end) occupy no bytes and overlap nothing. */
static knob_status check_overlaps(const knob_st *st, const char *path, knob_err *err)
{
    const knob_st_entry **by = knob_malloc((size_t)KNOB_MAX(st->n, 1) * sizeof *by);
    if (!by)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory checking offsets", path);
    for (int i = 0; i < st->n; i++)
        by[i] = &st->e[i];
    qsort(by, (size_t)st->n, sizeof *by, cmp_range);
    knob_status s = KNOB_OK;
    const knob_st_entry *last = NULL;   /* the non-empty entry reaching furthest */
    for (int i = 0; i < st->n && !s; i++) {
        const knob_st_entry *e = by[i];
        if (e->begin == e->end)
            continue;
        if (last && e->begin < last->end)
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: tensors '%.128s' [%zu, %zu) and '%.128s' [%zu, %zu) overlap",
                          path, last->name, last->begin, last->end, e->name, e->begin, e->end);
        if (!last || e->end > last->end)
            last = e;
    }
    knob_free(by);
    return s;
}

static knob_status st_load(knob_st *st, const char *path, knob_err *err)
{
    snprintf(st->path, sizeof st->path, "%s", path);
    knob_status s = knob_read_file(path, &st->buf, &st->len, err);
    if (s)
        return s;
    if (st->len < 8)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: file is %zu bytes; too short for the 8-byte header length",
                         path, st->len);
    uint64_t hlen = read_le64(st->buf);
    if (hlen > ST_MAX_HEADER)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: header length %llu is over the limit of %d bytes", path,
                         (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > st->len - 8)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: header length %llu exceeds file size %zu", path,
                         (unsigned long long)hlen, st->len);
    st->data = st->buf + 8 + hlen;
    st->data_len = st->len - 8 - (size_t)hlen;

    knob_json *root = NULL;
    s = parse_header(path, st->buf + 8, (size_t)hlen, &root, err);
    if (!s)
        s = parse_entries(st, path, root, err);
    knob_json_free(root);
    if (!s)
        s = check_unique(st, path, err);
    if (!s)
        s = check_overlaps(st, path, err);
    return s;
}

knob_status knob_st_open(knob_st *st, const char *path, knob_err *err)
{
    memset(st, 0, sizeof *st);
    knob_status s = st_load(st, path, err);
    if (s)
        knob_st_close(st);
    return s;
}

void knob_st_close(knob_st *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n; i++)
        knob_free(st->e[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        knob_free((void *)st->meta[i].key);
        knob_free((void *)st->meta[i].value);
    }
    knob_free(st->e);
    knob_free(st->meta);
    knob_free(st->buf);
    memset(st, 0, sizeof *st);
}

const knob_st_entry *knob_st_find(const knob_st *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->e[i].name, name) == 0)
            return &st->e[i];
    return NULL;
}

const char *knob_st_meta(const knob_st *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0)
            return st->meta[i].value;
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Reading: data */

/* IEEE 754 binary16 -> binary32, exactly (every half is a float): rebias the exponent 15 -> 127;
 * subnormal halves (mant * 2^-24) become normal floats; inf and nan (payload kept) stay so. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | mant << 13;
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | mant << 13;
    } else if (mant == 0) {
        bits = sign;
    } else {
        uint32_t shift = 0;   /* move the leading 1 to bit 10, where it becomes implicit */
        while (!(mant & 0x400u)) {
            mant <<= 1;
            shift++;
        }
        bits = sign | (113 - shift) << 23 | (mant & 0x3ffu) << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* bfloat16 is the top half of a float32. */
static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static int convertible(knob_st_dtype d) { return d == KNOB_ST_F32 || d == KNOB_ST_F16 || d == KNOB_ST_BF16; }

static knob_status unsupported(const knob_st *st, const knob_st_entry *e, knob_err *err)
{
    return knob_fail(err, KNOB_ERR_FORMAT,
                     "%s: tensor '%.128s': dtype %s not supported; F32, F16 and BF16 load as float", st->path,
                     e->name, e->dtype_name);
}

knob_status knob_st_read_f32(const knob_st *st, const knob_st_entry *e, float *out, size_t n, knob_err *err)
{
    KNOB_ASSERT(e >= st->e && e < st->e + st->n);   /* an entry of this file */
    if (!convertible(e->dtype))
        return unsupported(st, e, err);
    uint64_t want = 0;
    shape_elems(e->n_dims, e->shape, &want);   /* cannot overflow: knob_st_open checked it */
    if (n != want) {
        char sh[256];
        return knob_fail(err, KNOB_ERR_SHAPE, "%s: tensor '%.128s' %s has %llu elements; caller expects %zu",
                         st->path, e->name, shape64_str(sh, sizeof sh, e->n_dims, e->shape),
                         (unsigned long long)want, n);
    }
    const unsigned char *src = st->data + e->begin;   /* any alignment: bytes and memcpy only */
    if (e->dtype == KNOB_ST_F32) {
        if (n)
            memcpy(out, src, n * sizeof *out);
        return KNOB_OK;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        out[i] = e->dtype == KNOB_ST_F16 ? half_to_float(h) : bf16_to_float(h);
    }
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Writing: the header is built in memory (a growable string), then written with the data through
 * an atomic temp file. */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} st_buf;

static void buf_put(st_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = KNOB_MAX(2 * b->cap, b->len + n + 1);
        cap = KNOB_MAX(cap, (size_t)256);
        char *p = knob_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_puts(st_buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_u64(st_buf *b, uint64_t v)
{
    char s[32];
    buf_put(b, s, (size_t)snprintf(s, sizeof s, "%llu", (unsigned long long)v));
}

/* A JSON string: quote and backslash escaped, control characters as \n, \t, ... or \u00XX.
 * Other bytes (UTF-8 included) go through as they are. */
static void buf_json_str(st_buf *b, const char *s)
{
    buf_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        switch (*c) {
        case '"':  buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\r': buf_puts(b, "\\r"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\b': buf_puts(b, "\\b"); break;
        case '\f': buf_puts(b, "\\f"); break;
        default:
            if (*c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *c);
                buf_puts(b, esc);
            } else {
                buf_put(b, (const char *)c, 1);
            }
        }
    }
    buf_put(b, "\"", 1);
}

static size_t tensor_bytes(const knob_tensor *t) { return knob_shape_elems(t->n_dims, t->shape) * 4; }

/* {"__metadata__":{..},"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]},..} + spaces */
static void build_header(st_buf *b, const knob_tensor *const *t, int n, const knob_kv *meta, int n_meta)
{
    buf_puts(b, "{");
    if (n_meta > 0) {
        buf_puts(b, "\"" ST_META "\":{");
        for (int i = 0; i < n_meta; i++) {
            buf_puts(b, i ? "," : "");
            buf_json_str(b, meta[i].key);
            buf_puts(b, ":");
            buf_json_str(b, meta[i].value);
        }
        buf_puts(b, "}");
    }
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        buf_puts(b, i || n_meta > 0 ? "," : "");
        buf_json_str(b, t[i]->name);
        buf_puts(b, t[i]->dtype == KNOB_I32 ? ":{\"dtype\":\"I32\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i]->n_dims; d++) {
            buf_puts(b, d ? "," : "");
            buf_u64(b, (uint64_t)t[i]->shape[d]);
        }
        buf_puts(b, "],\"data_offsets\":[");
        buf_u64(b, at);
        buf_puts(b, ",");
        at += tensor_bytes(t[i]);
        buf_u64(b, at);
        buf_puts(b, "]}");
    }
    buf_puts(b, "}");
    /* pad so the data section (at 8 + header length) starts on an 8-byte boundary */
    while (!b->oom && b->len % 8 != 0)
        buf_puts(b, " ");
}

static knob_status check_tensor(const char *path, const knob_tensor *t, knob_err *err)
{
    if (!t)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: cannot save a NULL tensor", path);
    if (!t->name[0] || strcmp(t->name, ST_META) == 0)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: cannot save a tensor named '%.128s'", path, t->name);
    if (t->n_dims < 0 || t->n_dims > KNOB_MAX_DIMS)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: tensor '%.128s' has %d dims; 0 to %d supported", path,
                         t->name, t->n_dims, KNOB_MAX_DIMS);
    for (int d = 0; d < t->n_dims; d++)
        if (t->shape[d] < 0)
            return knob_fail(err, KNOB_ERR_USAGE, "%s: tensor '%.128s' dim %d is %d", path, t->name, d, t->shape[d]);
    if (!t->data && tensor_bytes(t) > 0)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: tensor '%.128s' has no data; call knob_params_alloc first",
                         path, t->name);
    return KNOB_OK;
}

static knob_status check_save_args(const char *path, const knob_tensor *const *t, int n,
                                   const knob_kv *meta, int n_meta, knob_err *err)
{
    if (n < 0 || n_meta < 0 || (n > 0 && !t) || (n_meta > 0 && !meta))
        return knob_fail(err, KNOB_ERR_USAGE, "%s: bad tensor or metadata list (n %d, n_meta %d)", path, n, n_meta);
    for (int i = 0; i < n; i++) {
        knob_status s = check_tensor(path, t[i], err);
        if (s)
            return s;
    }
    for (int i = 0; i < n_meta; i++)
        if (!meta[i].key || !meta[i].value)
            return knob_fail(err, KNOB_ERR_USAGE, "%s: metadata entry %d has a NULL key or value", path, i);
    const char **names = knob_malloc((size_t)KNOB_MAX(KNOB_MAX(n, n_meta), 1) * sizeof *names);
    if (!names)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory checking names", path);
    for (int i = 0; i < n; i++)
        names[i] = t[i]->name;
    const char *dup = find_duplicate(names, n);
    knob_status s = KNOB_OK;
    if (dup)
        s = knob_fail(err, KNOB_ERR_USAGE, "%s: duplicate tensor name '%.128s'", path, dup);
    for (int i = 0; i < n_meta; i++)
        names[i] = meta[i].key;
    if (!s && (dup = find_duplicate(names, n_meta)) != NULL)
        s = knob_fail(err, KNOB_ERR_USAGE, "%s: duplicate metadata key '%.128s'", path, dup);
    knob_free(names);
    return s;
}

static knob_status write_file(const char *path, const unsigned char *hdr, size_t hdr_len,
                              const knob_tensor *const *t, int n, knob_err *err)
{
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    unsigned char len8[8];
    write_le64(len8, hdr_len);
    int ok = fwrite(len8, 1, 8, a.f) == 8 && fwrite(hdr, 1, hdr_len, a.f) == hdr_len;
    for (int i = 0; i < n && ok; i++) {
        size_t bytes = tensor_bytes(t[i]);
        ok = bytes == 0 || fwrite(t[i]->data, 1, bytes, a.f) == bytes;
    }
    if (!ok) {
        int e = errno;
        knob_atomic_abort(&a);
        return knob_fail(err, KNOB_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return knob_atomic_commit(&a, err);
}

knob_status knob_st_header(const char *path, const knob_tensor *const *t, int n, const knob_kv *meta, int n_meta,
                           unsigned char **hdr, size_t *hdr_len, knob_err *err)
{
    *hdr = NULL;
    *hdr_len = 0;
    knob_status s = check_save_args(path, t, n, meta, n_meta, err);
    if (s)
        return s;
    st_buf h = {0};
    build_header(&h, t, n, meta, n_meta);
    if (h.oom) {
        knob_free(h.p);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    *hdr = (unsigned char *)h.p;
    *hdr_len = h.len;
    return KNOB_OK;
}

knob_status knob_st_write(const char *path, const unsigned char *hdr, size_t hdr_len, const knob_tensor *const *t,
                          int n, knob_err *err)
{
    return write_file(path, hdr, hdr_len, t, n, err);
}

knob_status knob_st_save(const char *path, const knob_tensor *const *t, int n, const knob_kv *meta,
                         int n_meta, knob_err *err)
{
    unsigned char *hdr;
    size_t len;
    knob_status s = knob_st_header(path, t, n, meta, n_meta, &hdr, &len, err);
    if (!s)
        s = write_file(path, hdr, len, t, n, err);
    knob_free(hdr);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Parameters */

knob_status knob_params_save(const knob_params *p, const char *path, const knob_kv *meta, int n_meta,
                             knob_err *err)
{
    if (p->n > 0 && !p->data)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: parameters have no values; call knob_params_alloc first", path);
    return knob_st_save(path, (const knob_tensor *const *)p->t, p->n, meta, n_meta, err);
}

/* Every tensor of p is in the file with the same shape and a dtype we convert. */
static knob_status check_params(const knob_st *st, const knob_params *p, knob_err *err)
{
    for (int i = 0; i < p->n; i++) {
        const knob_tensor *t = p->t[i];
        const knob_st_entry *e = knob_st_find(st, t->name);
        if (!e)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%.128s' not found in file (it has %d tensors)",
                             st->path, t->name, st->n);
        int same = e->n_dims == t->n_dims;
        for (int d = 0; same && d < t->n_dims; d++)
            same = e->shape[d] == t->shape[d];
        if (!same) {
            char fs[256], ms[128];
            return knob_fail(err, KNOB_ERR_SHAPE, "%s: '%.128s' is %s in file, model expects %s", st->path,
                             t->name, shape64_str(fs, sizeof fs, e->n_dims, e->shape),
                             knob_shape_str(ms, sizeof ms, t->n_dims, t->shape));
        }
        if (!convertible(e->dtype))
            return unsupported(st, e, err);
    }
    return KNOB_OK;
}

knob_status knob_params_load(knob_params *p, const char *path, knob_err *err)
{
    if (p->n > 0 && !p->data)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: parameters have no values; call knob_params_alloc first", path);
    knob_st st;
    knob_status s = knob_st_open(&st, path, err);
    if (s)
        return s;
    s = check_params(&st, p, err);   /* all checked before any value is written */
    for (int i = 0; i < p->n && !s; i++) {
        knob_tensor *t = p->t[i];
        s = knob_st_read_f32(&st, knob_st_find(&st, t->name), t->data, t->n_elems, err);
    }
    knob_st_close(&st);
    return s;
}
