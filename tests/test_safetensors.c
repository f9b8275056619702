/* test_safetensors.c: the safetensors reader and writer. Round trips (bit-exact values, names,
 * shapes, metadata with characters JSON must escape), hand-built files decoded against
 * hand-derived F16/BF16 numbers, one test per malformed-file rule, a torture test (every
 * truncation, byte corruptions of the header and length field), allocation-failure loops, and
 * atomic-write behaviour when saving fails. */
#include "test.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>

/* ------------------------------------------------------------------------------------------------
 * Helpers */

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
}

static int write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* A safetensors file from header text and raw data bytes (length field = strlen(header)). */
static int write_st(const char *path, const char *header, const void *data, size_t n)
{
    size_t hl = strlen(header);
    unsigned char *b = malloc(8 + hl + n + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    if (n)
        memcpy(b + 8 + hl, data, n);
    int ok = write_bytes(path, b, 8 + hl + n);
    free(b);
    return ok;
}

/* Writes a file with `header` and n_data zero bytes, opens it, closes it; returns the status. */
static knob_status open_header(const char *header, size_t n_data, knob_err *err)
{
    char path[512];
    tmp_path(path, sizeof path, "hdr.safetensors");
    unsigned char zeros[64] = {0};
    KNOB_ASSERT(n_data <= sizeof zeros);
    if (!write_st(path, header, zeros, n_data))
        return knob_fail(err, KNOB_ERR_IO, "test: cannot write %s", path);
    knob_st st;
    knob_status s = knob_st_open(&st, path, err);
    knob_st_close(&st);
    return s;
}

/* A failure the way the API promises: a status, the same code in err, one non-empty line. */
static int clean_fail(knob_status s, const knob_err *err)
{
    return s != KNOB_OK && err->code == s && err->msg[0] && !strchr(err->msg, '\n');
}

static int st_zeroed(const knob_st *st)
{
    return !st->buf && !st->e && !st->meta && st->n == 0 && st->n_meta == 0 && !st->data;
}

static uint64_t elems64(const knob_st_entry *e)
{
    uint64_t n = 1;
    for (int d = 0; d < e->n_dims; d++)
        n *= (uint64_t)e->shape[d];
    return n;
}

/* Independent check of what knob_st_open promises about a file it accepted (file = its bytes). */
static int st_consistent(const knob_st *st, const unsigned char *file, size_t len)
{
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | file[i];
    if (len < 8 || hl > len - 8 || st->len != len || st->data != st->buf + 8 + hl ||
        st->data_len != len - 8 - hl || memcmp(st->buf, file, len) != 0)
        return 0;
    for (int i = 0; i < st->n; i++) {
        const knob_st_entry *e = &st->e[i];
        if (!e->name || e->n_dims < 0 || e->n_dims > 8 || e->begin > e->end || e->end > st->data_len)
            return 0;
        size_t bytes = e->end - e->begin;
        uint64_t n = elems64(e);
        if ((e->dtype == KNOB_ST_F32 && bytes != 4 * n) ||
            ((e->dtype == KNOB_ST_F16 || e->dtype == KNOB_ST_BF16) && bytes != 2 * n))
            return 0;
        for (int j = 0; j < i; j++) {
            const knob_st_entry *o = &st->e[j];
            if (strcmp(o->name, e->name) == 0)
                return 0;
            if (o->begin != o->end && e->begin != e->end && e->begin < o->end && o->begin < e->end)
                return 0;
        }
        if (knob_st_find(st, e->name) != e)
            return 0;
        if (e->dtype == KNOB_ST_F32 || e->dtype == KNOB_ST_F16 || e->dtype == KNOB_ST_BF16) {
            float *v = malloc((size_t)n * sizeof *v + 1);
            knob_err err;
            knob_status s = knob_st_read_f32(st, e, v, (size_t)n, &err);
            free(v);
            if (s != KNOB_OK)
                return 0;
        }
    }
    for (int i = 0; i < st->n_meta; i++)
        if (!st->meta[i].key || !st->meta[i].value || knob_st_meta(st, st->meta[i].key) != st->meta[i].value)
            return 0;
    return 1;
}

static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += strstr(de->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* Three tensors: w (2, 3), b (4), s () with distinct, awkward float values. */
static knob_status make_params(knob_params *p, float base, knob_err *err)
{
    knob_params_init(p);
    if (!knob_params_add(p, "layer.0/w", 2, (int[]){2, 3}, err) || !knob_params_add(p, "b", 1, (int[]){4}, err) ||
        !knob_params_add(p, "conv", 4, (int[]){1, 2, 1, 2}, err))
        return err->code;
    knob_status s = knob_params_alloc(p, err);
    for (size_t i = 0; !s && i < p->n_elems; i++)
        p->data[i] = base + (float)i * 0.37f - 1.0f / 3.0f;
    return s;
}

static const knob_kv test_meta[] = {
    {"config", "{\"n_layer\": 2, \"path\": \"C:\\\\dir\\\\f\"}"},
    {"note", "line one\nline two\ttab\x01 ctrl \x1f end"},
    {"empty", ""},
    {"utf8", "caf\xc3\xa9"},
};
#define N_TEST_META ((int)(sizeof test_meta / sizeof test_meta[0]))

/* ------------------------------------------------------------------------------------------------
 * Round trips */

TEST(safetensors_round_trip)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "round.safetensors");
    /* awkward values, checked bit for bit: -0, inf, nan with a payload, a subnormal, max float */
    const uint32_t bits[6] = {0x80000000u, 0x7f800000u, 0x7fc12345u, 0x00000001u, 0x7f7fffffu, 0x3eaaaaabu};
    float a[6], b[4] = {1.0f, -2.5f, 1e-30f, 3e30f}, c[1] = {42.0f};
    memcpy(a, bits, sizeof a);
    knob_tensor ta = {.name = "we\"ird\\name\n", .n_dims = 2, .shape = {3, 2}, .n_elems = 6, .data = a};
    knob_tensor tb = {.name = "b", .n_dims = 1, .shape = {4}, .n_elems = 4, .data = b};
    knob_tensor tc = {.name = "scalar", .n_dims = 0, .n_elems = 1, .data = c};
    const knob_tensor *ts[3] = {&ta, &tb, &tc};
    CHECK_OK(knob_st_save(path, ts, 3, test_meta, N_TEST_META, &err));

    knob_st st;
    CHECK_OK(knob_st_open(&st, path, &err));
    CHECK(st.n == 3 && st.n_meta == N_TEST_META);
    if (st.n != 3) {
        knob_st_close(&st);
        return;
    }
    /* file order, contiguous, data section 8-aligned, header padded with spaces */
    CHECK(strcmp(st.e[0].name, ta.name) == 0 && strcmp(st.e[1].name, "b") == 0);
    CHECK(strcmp(st.e[2].name, "scalar") == 0);
    CHECK(st.e[0].begin == 0 && st.e[0].end == 24 && st.e[1].begin == 24 && st.e[1].end == 40);
    CHECK(st.e[2].begin == 40 && st.e[2].end == 44 && st.data_len == 44);
    CHECK((st.data - st.buf) % 8 == 0);
    CHECK(st.data[-1] == ' ' || st.data[-1] == '}');
    CHECK(st.e[0].n_dims == 2 && st.e[0].shape[0] == 3 && st.e[0].shape[1] == 2);
    CHECK(st.e[1].n_dims == 1 && st.e[1].shape[0] == 4 && st.e[2].n_dims == 0);
    for (int i = 0; i < 3; i++)
        CHECK(st.e[i].dtype == KNOB_ST_F32 && strcmp(st.e[i].dtype_name, "F32") == 0);

    float got[6];
    const knob_st_entry *ea = knob_st_find(&st, ta.name), *eb = knob_st_find(&st, "b");
    const knob_st_entry *ec = knob_st_find(&st, "scalar");
    CHECK(ea && eb && ec);
    if (ea && eb && ec) {
        CHECK_OK(knob_st_read_f32(&st, ea, got, 6, &err));
        CHECK(memcmp(got, a, sizeof a) == 0);
        CHECK_OK(knob_st_read_f32(&st, eb, got, 4, &err));
        CHECK(memcmp(got, b, sizeof b) == 0);
        CHECK_OK(knob_st_read_f32(&st, ec, got, 1, &err));
        CHECK(got[0] == 42.0f);
    }
    CHECK(knob_st_find(&st, "missing") == NULL);

    for (int i = 0; i < N_TEST_META; i++) {
        const char *v = knob_st_meta(&st, test_meta[i].key);
        CHECK(v && strcmp(v, test_meta[i].value) == 0);
    }
    CHECK(knob_st_meta(&st, "absent") == NULL);
    knob_st_close(&st);
    CHECK(st_zeroed(&st));
    knob_st_close(&st);   /* closing twice is a no-op */
}

TEST(safetensors_params_round_trip)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "params.safetensors");
    knob_params p, q;
    CHECK_OK(make_params(&p, 0.5f, &err));
    CHECK_OK(make_params(&q, 100.0f, &err));
    CHECK_OK(knob_params_save(&p, path, test_meta, 1, &err));
    CHECK_OK(knob_params_load(&q, path, &err));
    CHECK(memcmp(p.data, q.data, p.n_elems * sizeof(float)) == 0);

    /* the same parameters give byte-identical files */
    char path2[512];
    tmp_path(path2, sizeof path2, "params2.safetensors");
    CHECK_OK(knob_params_save(&q, path2, test_meta, 1, &err));
    unsigned char *f1, *f2;
    size_t n1, n2;
    CHECK_OK(knob_read_file(path, &f1, &n1, &err));
    CHECK_OK(knob_read_file(path2, &f2, &n2, &err));
    CHECK(n1 == n2 && memcmp(f1, f2, n1) == 0);
    knob_free(f1);
    knob_free(f2);
    knob_params_free(&p);
    knob_params_free(&q);
}

TEST(safetensors_save_rejects_bad_arguments)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "bad_args.safetensors");
    float v[2] = {1, 2};
    knob_tensor a = {.name = "a", .n_dims = 1, .shape = {2}, .n_elems = 2, .data = v};
    knob_tensor a2 = a, nodata = a, meta = a;
    nodata.data = NULL;
    snprintf(meta.name, sizeof meta.name, "__metadata__");
    const knob_tensor *dup[2] = {&a, &a2}, *nd[1] = {&nodata}, *mt[1] = {&meta}, *one[1] = {&a};
    CHECK_FAILS_WITH(knob_st_save(path, dup, 2, NULL, 0, &err), KNOB_ERR_USAGE, "duplicate tensor name 'a'");
    CHECK_FAILS_WITH(knob_st_save(path, nd, 1, NULL, 0, &err), KNOB_ERR_USAGE, "no data");
    CHECK_FAILS_WITH(knob_st_save(path, mt, 1, NULL, 0, &err), KNOB_ERR_USAGE, "__metadata__");
    knob_kv kv[2] = {{"k", "1"}, {"k", "2"}};
    CHECK_FAILS_WITH(knob_st_save(path, one, 1, kv, 2, &err), KNOB_ERR_USAGE, "duplicate metadata key 'k'");
    CHECK(!file_exists(path));

    knob_params p;
    knob_params_init(&p);
    CHECK(knob_params_add(&p, "w", 1, (int[]){3}, &err) != NULL);
    CHECK_FAILS_WITH(knob_params_save(&p, path, NULL, 0, &err), KNOB_ERR_USAGE, "knob_params_alloc");
    CHECK_FAILS_WITH(knob_params_load(&p, path, &err), KNOB_ERR_USAGE, "knob_params_alloc");
    knob_params_free(&p);
}

/* ------------------------------------------------------------------------------------------------
 * Hand-built files, decoded against hand-derived numbers */

static void put16(unsigned char *b, uint16_t v)
{
    b[0] = (unsigned char)(v & 0xff);
    b[1] = (unsigned char)(v >> 8);
}

TEST(safetensors_hand_built_f16_bf16)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "hand.safetensors");
    /* 11 halves (22 bytes), 5 bfloat16s (10 bytes), 2 floats (8 bytes). The header has odd
     * length and no padding, so the floats sit at an odd address: reads must not care. */
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[11],\"data_offsets\":[0,22]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[22,32]},"
                      "\"f\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[32,40]},"
                      "\"__metadata__\":{\"fmt\":\"pt\"}}";
    CHECK(strlen(hdr) % 2 == 1);
    const uint16_t half[11] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400,
                               0x8000, 0x7C00, 0xFC00, 0x7E00, 0x3555};
    const uint16_t bf[5] = {0x3F80, 0xC040, 0x4049, 0x0001, 0xFF80};
    unsigned char data[40];
    for (int i = 0; i < 11; i++)
        put16(data + 2 * i, half[i]);
    for (int i = 0; i < 5; i++)
        put16(data + 22 + 2 * i, bf[i]);
    const unsigned char f32[8] = {0x00, 0x00, 0xC0, 0x3F, 0xCD, 0xCC, 0xCC, 0xBD};   /* 1.5f, -0.1f */
    memcpy(data + 32, f32, 8);
    CHECK(write_st(path, hdr, data, sizeof data));

    knob_st st;
    CHECK_OK(knob_st_open(&st, path, &err));
    const knob_st_entry *h = knob_st_find(&st, "h"), *b = knob_st_find(&st, "b"), *f = knob_st_find(&st, "f");
    CHECK(h && b && f);
    if (!h || !b || !f) {
        knob_st_close(&st);
        return;
    }
    CHECK(h->dtype == KNOB_ST_F16 && b->dtype == KNOB_ST_BF16 && f->dtype == KNOB_ST_F32);
    const char *fmt = knob_st_meta(&st, "fmt");
    CHECK(fmt && strcmp(fmt, "pt") == 0);

    float v[11];
    CHECK_OK(knob_st_read_f32(&st, h, v, 11, &err));
    CHECK(v[0] == 1.0f);                        /* 0x3C00: exponent 15 - 15 = 0, mantissa 0 */
    CHECK(v[1] == -2.0f);                       /* 0xC000: sign, exponent 16 - 15 = 1 */
    CHECK(v[2] == 65504.0f);                    /* 0x7BFF: (2 - 2^-10) * 2^15, the largest half */
    CHECK(v[3] == 0x1p-24f);                    /* 0x0001: smallest subnormal, 1 * 2^-24 */
    CHECK(v[4] == 1023.0f * 0x1p-24f);          /* 0x03FF: largest subnormal, 1023 * 2^-24 */
    CHECK(v[5] == 0x1p-14f);                    /* 0x0400: smallest normal */
    CHECK(v[6] == 0.0f && signbit(v[6]));       /* 0x8000: negative zero */
    CHECK(isinf(v[7]) && v[7] > 0);             /* 0x7C00 */
    CHECK(isinf(v[8]) && v[8] < 0);             /* 0xFC00 */
    CHECK(isnan(v[9]));                         /* 0x7E00 */
    CHECK(v[10] == 0.333251953125f);            /* 0x3555: (1 + 341/1024) * 2^(13 - 15) = 1365/4096 */

    CHECK_OK(knob_st_read_f32(&st, b, v, 5, &err));
    CHECK(v[0] == 1.0f);                        /* 0x3F80: exponent 127, mantissa 0 */
    CHECK(v[1] == -3.0f);                       /* 0xC040: -(1 + 64/128) * 2 */
    CHECK(v[2] == 3.140625f);                   /* 0x4049: (1 + 73/128) * 2 */
    CHECK(v[3] == 0x1p-133f);                   /* 0x0001: float bits 0x00010000, 2^16 * 2^-149 */
    CHECK(isinf(v[4]) && v[4] < 0);             /* 0xFF80 */

    CHECK_OK(knob_st_read_f32(&st, f, v, 2, &err));
    CHECK(v[0] == 1.5f && v[1] == -0.1f);

    CHECK_FAILS_WITH(knob_st_read_f32(&st, h, v, 10, &err), KNOB_ERR_SHAPE, "caller expects 10");
    knob_st_close(&st);

    /* knob_params_load converts BF16 to float and ignores the file's other tensors */
    knob_params p;
    knob_params_init(&p);
    CHECK(knob_params_add(&p, "b", 1, (int[]){5}, &err) != NULL);
    CHECK_OK(knob_params_alloc(&p, &err));
    CHECK_OK(knob_params_load(&p, path, &err));
    CHECK(p.data[0] == 1.0f && p.data[1] == -3.0f && p.data[2] == 3.140625f);
    knob_params_free(&p);
}

TEST(safetensors_open_accepts_valid_variants)
{
    knob_err err;
    static const struct {
        const char *hdr;
        size_t n_data;
    } ok[] = {
        {"{}", 0},                                                                     /* no tensors */
        {"{}       ", 0},                                                              /* padding */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4},          /* scalar */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"            /* empty */
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
        {"{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2},           /* unknown */
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3],\"x\":1}}", 8},   /* extra key, hole */
        {"{\"__metadata__\":{}}", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        memset(&err, 0, sizeof err);
        knob_status s = open_header(ok[i].hdr, ok[i].n_data, &err);
        if (s != KNOB_OK)
            test_fail_at(__FILE__, __LINE__, "header %s: %s", ok[i].hdr, err.msg);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Malformed files: one case per rule */

TEST(safetensors_open_rejects_malformed_headers)
{
    static const struct {
        const char *hdr;
        size_t n_data;
        const char *sub;   /* all are KNOB_ERR_FORMAT */
    } bad[] = {
        {"", 0, "header: malformed JSON near byte 0"},
        {"{\"a\":", 0, "header: malformed JSON near byte 4"},
        {"[1, 2]", 0, "not a JSON object"},
        {"\"str\"", 0, "not a JSON object"},
        {"{} x", 0, "after the JSON"},
        {"{\"a\":5}", 0, "'a' is not an object"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "no dtype"},
        {"{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype must be"},
        {"{\"a\":{\"dtype\":\"f32!\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype must be"},
        {"{\"a\":{\"dtype\":\"\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,4]}}", 4, "shape must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape dim 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,4]}}", 4, "shape dim 1"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "shape dim 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "at most 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "data_offsets must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "data_offsets must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4, "data_offsets must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"b\":0}}}", 4, "data_offsets must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 2, "beyond the data section"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "(2) of F32 needs 8"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4, "needs 6"},
        {"{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "needs 2"},
        {"{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "needs 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
         "too many elements"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate tensor name 'a'"},
        {"{\"__metadata__\":5}", 0, "__metadata__ is not an object"},
        {"{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is not an object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "value of 'k' is not a string"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate '__metadata__'"},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate __metadata__ key 'k'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        knob_err err = {0};
        knob_status s = open_header(bad[i].hdr, bad[i].n_data, &err);
        if (s != KNOB_ERR_FORMAT || err.code != s || !strstr(err.msg, bad[i].sub) || strchr(err.msg, '\n') ||
            !strstr(err.msg, "hdr.safetensors"))
            test_fail_at(__FILE__, __LINE__, "header %s: got %s '%s', want %s with '%s'", bad[i].hdr,
                         knob_status_name(s), err.msg, knob_status_name(KNOB_ERR_FORMAT), bad[i].sub);
    }
}

TEST(safetensors_open_rejects_bad_length_and_size)
{
    knob_err err;
    knob_st st;
    char path[512];
    tmp_path(path, sizeof path, "short.safetensors");
    CHECK(write_bytes(path, "\x02\0\0\0\0", 5));
    CHECK_FAILS_WITH(knob_st_open(&st, path, &err), KNOB_ERR_FORMAT, "too short");
    CHECK(st_zeroed(&st));
    CHECK(write_bytes(path, "", 0));
    CHECK_FAILS_WITH(knob_st_open(&st, path, &err), KNOB_ERR_FORMAT, "file is 0 bytes");

    /* length field 1000 in a 30-byte file: both numbers in the message */
    unsigned char b[30] = {0xE8, 0x03};
    memcpy(b + 8, "{}", 2);
    CHECK(write_bytes(path, b, sizeof b));
    CHECK_FAILS_WITH(knob_st_open(&st, path, &err), KNOB_ERR_FORMAT, "header length 1000 exceeds file size 30");
    memset(b, 0xFF, 8);
    CHECK(write_bytes(path, b, sizeof b));
    CHECK_FAILS_WITH(knob_st_open(&st, path, &err), KNOB_ERR_FORMAT, "header length 18446744073709551615");

    tmp_path(path, sizeof path, "no-such-file.safetensors");
    CHECK_FAILS_WITH(knob_st_open(&st, path, &err), KNOB_ERR_IO, "no-such-file.safetensors");
    CHECK(st_zeroed(&st));
    knob_st_close(&st);
}

TEST(safetensors_read_f32_rejects_other_dtypes)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "i32.safetensors");
    int32_t v[2] = {7, -7};
    CHECK(write_st(path, "{\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", v, sizeof v));
    knob_st st;
    CHECK_OK(knob_st_open(&st, path, &err));
    float out[2];
    const knob_st_entry *e = knob_st_find(&st, "i");
    CHECK(e && e->dtype == KNOB_ST_I32);
    if (e)
        CHECK_FAILS_WITH(knob_st_read_f32(&st, e, out, 2, &err), KNOB_ERR_FORMAT, "dtype I32 not supported");
    knob_st_close(&st);

    knob_params p;
    knob_params_init(&p);
    CHECK(knob_params_add(&p, "i", 1, (int[]){2}, &err) != NULL);
    CHECK_OK(knob_params_alloc(&p, &err));
    CHECK_FAILS_WITH(knob_params_load(&p, path, &err), KNOB_ERR_FORMAT, "dtype I32 not supported");
    knob_params_free(&p);
}

/* ------------------------------------------------------------------------------------------------
 * knob_params_load: validation before any write */

TEST(safetensors_params_load_errors_leave_values)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "load_errors.safetensors");
    knob_params p, q;
    CHECK_OK(make_params(&p, 1.0f, &err));
    CHECK_OK(knob_params_save(&p, path, NULL, 0, &err));

    /* q: "layer.0/w" matches the file, "b" has another shape, so nothing may be written */
    knob_params_init(&q);
    CHECK(knob_params_add(&q, "layer.0/w", 2, (int[]){2, 3}, &err) != NULL);
    CHECK(knob_params_add(&q, "b", 2, (int[]){2, 2}, &err) != NULL);
    CHECK_OK(knob_params_alloc(&q, &err));
    for (size_t i = 0; i < q.n_elems; i++)
        q.data[i] = -9.0f;
    CHECK_FAILS_WITH(knob_params_load(&q, path, &err), KNOB_ERR_SHAPE, "'b' is (4) in file, model expects (2, 2)");
    CHECK(strstr(err.msg, "load_errors.safetensors") != NULL);
    for (size_t i = 0; i < q.n_elems; i++)
        CHECK(q.data[i] == -9.0f);
    knob_params_free(&q);

    /* a tensor the file lacks: named with the file */
    knob_params_init(&q);
    CHECK(knob_params_add(&q, "layer.0/w", 2, (int[]){2, 3}, &err) != NULL);
    CHECK(knob_params_add(&q, "head", 1, (int[]){4}, &err) != NULL);
    CHECK_OK(knob_params_alloc(&q, &err));
    for (size_t i = 0; i < q.n_elems; i++)
        q.data[i] = -9.0f;
    CHECK_FAILS_WITH(knob_params_load(&q, path, &err), KNOB_ERR_FORMAT, "'head' not found");
    CHECK(strstr(err.msg, "load_errors.safetensors") != NULL);
    for (size_t i = 0; i < q.n_elems; i++)
        CHECK(q.data[i] == -9.0f);
    knob_params_free(&q);
    knob_params_free(&p);
}

/* ------------------------------------------------------------------------------------------------
 * Torture: truncations and corruptions never crash and never get past validation */

static knob_status save_torture_file(const char *path, knob_err *err)
{
    knob_params p;
    knob_status s = make_params(&p, 2.0f, err);
    if (!s)
        s = knob_params_save(&p, path, test_meta, 2, err);
    knob_params_free(&p);
    return s;
}

/* Opens file (bytes b, n) through path; 1 when it opened consistently or failed cleanly. */
static int open_is_sane(const char *path, const unsigned char *b, size_t n, int *opened)
{
    if (!write_bytes(path, b, n))
        return 0;
    knob_st st;
    knob_err err = {0};
    knob_status s = knob_st_open(&st, path, &err);
    int ok = s == KNOB_OK ? st_consistent(&st, b, n) : clean_fail(s, &err) && st_zeroed(&st);
    if (!ok)
        fprintf(stderr, "  status %s, message '%s'\n", knob_status_name(s), err.msg);
    *opened = s == KNOB_OK;
    knob_st_close(&st);
    return ok;
}

TEST(safetensors_torture_truncate_every_byte)
{
    knob_err err;
    char path[512], cut[512];
    tmp_path(path, sizeof path, "torture.safetensors");
    tmp_path(cut, sizeof cut, "torture_cut.safetensors");
    CHECK_OK(save_torture_file(path, &err));
    unsigned char *b;
    size_t n;
    CHECK_OK(knob_read_file(path, &b, &n, &err));
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        int opened;
        if (!open_is_sane(cut, b, len, &opened) || opened) {
            if (!bad++)
                test_fail_at(__FILE__, __LINE__, "file cut to %zu of %zu bytes: opened %d", len, n, opened);
        }
    }
    CHECK(bad == 0);
    int opened;
    CHECK(open_is_sane(cut, b, n, &opened) && opened);   /* the whole file is fine */
    knob_free(b);
}

TEST(safetensors_torture_corrupt_bytes)
{
    knob_err err;
    char path[512], bad_path[512];
    tmp_path(path, sizeof path, "corrupt.safetensors");
    tmp_path(bad_path, sizeof bad_path, "corrupt_bad.safetensors");
    CHECK_OK(save_torture_file(path, &err));
    unsigned char *orig;
    size_t n;
    CHECK_OK(knob_read_file(path, &orig, &n, &err));
    unsigned char *b = malloc(n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | orig[i];
    int bad = 0, opened, n_opened = 0, n_tries = 0;

    /* every header byte set to characters that matter to JSON and to the values */
    static const unsigned char vals[] = {'{', '}', '[', ']', '"', '\\', ',', ':', '9', '0', '-', ' ', 0x00, 0xFF};
    for (size_t pos = 8; pos < 8 + hl; pos++)
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(b, orig, n);
            b[pos] = vals[v];
            n_tries++;
            if (!open_is_sane(bad_path, b, n, &opened) && !bad++)
                test_fail_at(__FILE__, __LINE__, "header byte %zu set to 0x%02x", pos, vals[v]);
            n_opened += opened;
        }

    /* the length field: each byte set to a few values, and lengths near the true one */
    static const unsigned char lvals[] = {0x00, 0x01, 0x07, 0x7F, 0x80, 0xFF};
    for (int pos = 0; pos < 8; pos++)
        for (size_t v = 0; v < sizeof lvals; v++) {
            memcpy(b, orig, n);
            b[pos] = lvals[v];
            if (!open_is_sane(bad_path, b, n, &opened) && !bad++)
                test_fail_at(__FILE__, __LINE__, "length byte %d set to 0x%02x", pos, lvals[v]);
        }
    const int64_t deltas[] = {-9, -8, -2, -1, 1, 2, 8, 9, (int64_t)n};
    for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++) {
        memcpy(b, orig, n);
        uint64_t l = hl + (uint64_t)deltas[d];
        for (int i = 0; i < 8; i++)
            b[i] = (unsigned char)(l >> (8 * i));
        if (!open_is_sane(bad_path, b, n, &opened) && !bad++)
            test_fail_at(__FILE__, __LINE__, "length field %llu (true %llu)", (unsigned long long)l,
                         (unsigned long long)hl);
    }

    /* random multi-byte corruption anywhere in the file */
    knob_rng r;
    knob_rng_seed(&r, 1234);
    for (int t = 0; t < 2000; t++) {
        memcpy(b, orig, n);
        int k = 1 + (int)knob_rng_below(&r, 4);
        for (int j = 0; j < k; j++)
            b[knob_rng_below(&r, (uint32_t)n)] = (unsigned char)knob_rng_below(&r, 256);
        if (!open_is_sane(bad_path, b, n, &opened) && !bad++)
            test_fail_at(__FILE__, __LINE__, "random corruption %d", t);
    }
    CHECK(bad == 0);
    CHECK(n_opened > 0 && n_opened < n_tries);   /* some survive (spaces, digits), most do not */
    free(b);
    knob_free(orig);
}

/* ------------------------------------------------------------------------------------------------
 * Allocation failures: every one is a clean status, no leak (ASan checks), *st left zeroed */

TEST(safetensors_open_alloc_failures)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "oom_open.safetensors");
    CHECK_OK(save_torture_file(path, &err));
    unsigned char *file;
    size_t len;
    CHECK_OK(knob_read_file(path, &file, &len, &err));
    int done = 0, fails = 0;
    for (long n = 1; n < 10000 && !done; n++) {
        knob_st st;
        memset(&err, 0, sizeof err);
        knob_alloc_fail_at(n);
        knob_status s = knob_st_open(&st, path, &err);
        knob_alloc_fail_at(0);
        if (s == KNOB_OK) {
            done = 1;
            CHECK(st_consistent(&st, file, len));
            CHECK(st.n == 3 && st.n_meta == 2);
        } else {
            fails++;
            if (s != KNOB_ERR_NOMEM || !clean_fail(s, &err) || !st_zeroed(&st))
                test_fail_at(__FILE__, __LINE__, "allocation %ld failed: %s '%s'", n, knob_status_name(s), err.msg);
        }
        knob_st_close(&st);
    }
    CHECK(done);
    CHECK(fails >= 8);   /* file buffer, JSON nodes, entries, names, metadata, checks */
    knob_free(file);
}

TEST(safetensors_params_save_load_alloc_failures)
{
    knob_err err;
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, "oom_save");
    CHECK_OK(knob_mkdirs(dir, &err));
    snprintf(path, sizeof path, "%s/p.safetensors", dir);
    knob_params p, q;
    CHECK_OK(make_params(&p, 3.0f, &err));
    int done = 0, fails = 0;
    for (long n = 1; n < 10000 && !done; n++) {
        memset(&err, 0, sizeof err);
        knob_alloc_fail_at(n);
        knob_status s = knob_params_save(&p, path, test_meta, N_TEST_META, &err);
        knob_alloc_fail_at(0);
        if (s == KNOB_OK) {
            done = 1;
        } else {
            fails++;
            if (s != KNOB_ERR_NOMEM || !clean_fail(s, &err) || file_exists(path) || count_tmp_files(dir) != 0)
                test_fail_at(__FILE__, __LINE__, "allocation %ld failed: %s '%s'", n, knob_status_name(s), err.msg);
        }
    }
    CHECK(done && fails >= 1);

    /* load: every failure leaves q's values as they were */
    CHECK_OK(make_params(&q, -50.0f, &err));
    float *before = malloc(q.n_elems * sizeof *before);
    memcpy(before, q.data, q.n_elems * sizeof *before);
    done = 0;
    for (long n = 1; n < 10000 && !done; n++) {
        memset(&err, 0, sizeof err);
        knob_alloc_fail_at(n);
        knob_status s = knob_params_load(&q, path, &err);
        knob_alloc_fail_at(0);
        if (s == KNOB_OK)
            done = 1;
        else if (s != KNOB_ERR_NOMEM || !clean_fail(s, &err) || memcmp(q.data, before, q.n_elems * sizeof *before))
            test_fail_at(__FILE__, __LINE__, "allocation %ld failed: %s '%s'", n, knob_status_name(s), err.msg);
    }
    CHECK(done);
    CHECK(memcmp(q.data, p.data, p.n_elems * sizeof(float)) == 0);
    free(before);
    knob_params_free(&q);
    knob_params_free(&p);
}

/* ------------------------------------------------------------------------------------------------
 * Atomic writes: a failed save leaves the old file and no temp file */

TEST(safetensors_params_save_failure_keeps_old_file)
{
    knob_err err;
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, "atomic");
    CHECK_OK(knob_mkdirs(dir, &err));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    knob_params p, big;
    CHECK_OK(make_params(&p, 1.0f, &err));
    CHECK_OK(knob_params_save(&p, path, NULL, 0, &err));
    unsigned char *old;
    size_t old_len;
    CHECK_OK(knob_read_file(path, &old, &old_len, &err));

    /* a directory that does not exist: fails before anything is written */
    char nodir[700];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/model.safetensors", dir);
    CHECK_FAILS_WITH(knob_params_save(&p, nodir, NULL, 0, &err), KNOB_ERR_IO, "cannot create temp file");

    /* a write that fails midway (file size limit): the old file stays, the temp file goes */
    knob_params_init(&big);
    CHECK(knob_params_add(&big, "layer.0/w", 2, (int[]){64, 64}, &err) != NULL);
    CHECK_OK(knob_params_alloc(&big, &err));
    struct rlimit lim, old_lim;
    if (getrlimit(RLIMIT_FSIZE, &old_lim) == 0 && (old_lim.rlim_max == RLIM_INFINITY || old_lim.rlim_max > 4096)) {
        void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);   /* EFBIG instead of a signal */
        lim = old_lim;
        lim.rlim_cur = 1000;
        int limited = setrlimit(RLIMIT_FSIZE, &lim) == 0;
        knob_status s = limited ? knob_params_save(&big, path, NULL, 0, &err) : KNOB_OK;
        setrlimit(RLIMIT_FSIZE, &old_lim);
        signal(SIGXFSZ, old_handler);
        if (limited) {
            CHECK(s == KNOB_ERR_IO && clean_fail(s, &err) && strstr(err.msg, "model.safetensors"));
        }
    }
    CHECK(count_tmp_files(dir) == 0);
    unsigned char *now;
    size_t now_len;
    CHECK_OK(knob_read_file(path, &now, &now_len, &err));
    CHECK(now_len == old_len && memcmp(now, old, old_len) == 0);
    knob_free(now);
    knob_free(old);
    knob_params_free(&big);
    knob_params_free(&p);
}

/* ------------------------------------------------------------------------------------------------
 * JSON through one file (core/json.c). The digit reader used to install cJSON hooks of its own, so
 * after knob_digits_read had run, a failed allocation inside the safetensors header parse set the
 * digit reader's out-of-memory flag, not safetensors', and was reported as "header is not valid
 * JSON". Now knob's allocator is installed once, for every reader. */

TEST(safetensors_oom_after_digits_read_is_out_of_memory)
{
    knob_err err;
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, "json_digits");
    CHECK_OK(knob_mkdirs(dir, &err));
    /* one image per digit, with an extra key so every file takes the general JSON path */
    char text[8 * 784 + 64];
    for (int k = 0; k < 10; k++) {
        size_t at = (size_t)snprintf(text, sizeof text, "{\"x\": 1, \"data\": [");
        for (int i = 0; i < 784; i++)
            at += (size_t)snprintf(text + at, sizeof text - at, "%s%s", i ? "," : "", i == 0 ? "0.25" : "0");
        snprintf(text + at, sizeof text - at, "]}");
        snprintf(path, sizeof path, "%s/%d.json", dir, k);
        CHECK(write_bytes(path, text, strlen(text)));
    }
    float *images;
    int32_t *labels;
    int n;
    CHECK_OK(knob_digits_read(dir, &images, &labels, &n, &err));
    CHECK(n == 10 && images[0] == 0.25f && labels[9] == 9);
    knob_free(images);
    knob_free(labels);

    tmp_path(path, sizeof path, "json_oom.safetensors");
    CHECK_OK(save_torture_file(path, &err));
    int done = 0, in_parse = 0;
    for (long k = 1; k < 10000 && !done; k++) {
        knob_st st;
        memset(&err, 0, sizeof err);
        knob_alloc_fail_at(k);
        knob_status s = knob_st_open(&st, path, &err);
        knob_alloc_fail_at(0);
        if (s == KNOB_OK)
            done = 1;
        else if (s != KNOB_ERR_NOMEM || !clean_fail(s, &err) || strstr(err.msg, "malformed") ||
                 strstr(err.msg, "not valid"))
            test_fail_at(__FILE__, __LINE__, "allocation %ld failed: %s '%s'", k, knob_status_name(s), err.msg);
        in_parse += s == KNOB_ERR_NOMEM && strstr(err.msg, "header: out of memory parsing") != NULL;
        knob_st_close(&st);
    }
    CHECK(done);
    CHECK(in_parse >= 3);   /* failures inside the parse itself were among them */
}

/* Limits on trust: nesting past KNOB_JSON_MAX_DEPTH and a header past the size limit are refused
 * before anything is parsed or allocated for them, each with one line that says which limit. */
TEST(safetensors_header_over_the_limits_is_one_clear_line)
{
    knob_err err;
    char hdr[4 * KNOB_JSON_MAX_DEPTH + 64];
    int d = KNOB_JSON_MAX_DEPTH + 1;
    size_t at = (size_t)snprintf(hdr, sizeof hdr, "{\"__metadata__\": ");
    for (int i = 1; i < d; i++)
        at += (size_t)snprintf(hdr + at, sizeof hdr - at, "[");
    for (int i = 1; i < d; i++)
        at += (size_t)snprintf(hdr + at, sizeof hdr - at, "]");
    snprintf(hdr + at, sizeof hdr - at, "}");
    knob_status s = open_header(hdr, 0, &err);
    CHECK(clean_fail(s, &err));
    CHECK_FAILS_WITH(open_header(hdr, 0, &err), KNOB_ERR_FORMAT, "header: JSON nested 65 deep; the limit is 64");
    /* at the limit it parses (and is then refused for what it says, not for its depth) */
    at = (size_t)snprintf(hdr, sizeof hdr, "{\"__metadata__\": ");
    for (int i = 1; i < d - 1; i++)
        at += (size_t)snprintf(hdr + at, sizeof hdr - at, "[");
    for (int i = 1; i < d - 1; i++)
        at += (size_t)snprintf(hdr + at, sizeof hdr - at, "]");
    snprintf(hdr + at, sizeof hdr - at, "}");
    CHECK_FAILS_WITH(open_header(hdr, 0, &err), KNOB_ERR_FORMAT, "__metadata__ is not an object of strings");
    /* brackets inside strings are not nesting */
    char str[256];
    at = (size_t)snprintf(str, sizeof str, "{\"__metadata__\": {\"k\": \"");
    for (int i = 0; i < 100; i++)
        at += (size_t)snprintf(str + at, sizeof str - at, "[");
    snprintf(str + at, sizeof str - at, "\"}}");
    CHECK_OK(open_header(str, 0, &err));

    /* a length field of 200 MB in a small file: the size limit, not a huge allocation */
    char path[512];
    tmp_path(path, sizeof path, "huge_hdr.safetensors");
    unsigned char b[32] = {0};
    uint64_t hl = 200000000;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8, "{}", 2);
    CHECK(write_bytes(path, b, sizeof b));
    knob_st st;
    CHECK_FAILS_WITH(knob_st_open(&st, path, &err), KNOB_ERR_FORMAT,
                     "header length 200000000 is over the limit of 100000000 bytes");
    CHECK(st_zeroed(&st));

    /* json.c's own size limit, whoever calls it (the text is not read past the check) */
    knob_json *j = NULL;
    CHECK_FAILS_WITH(knob_json_parse(&j, "{}", KNOB_JSON_MAX_BYTES + 1, NULL, "big.json", &err), KNOB_ERR_FORMAT,
                     "big.json: JSON of 1073741825 bytes is over the limit of 1073741824");
    CHECK(j == NULL);
}
