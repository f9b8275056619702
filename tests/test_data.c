/* test_data.c: image data readers and augmentation. IDX files built byte by byte (plain and
 * gzipped), cut at many points and corrupted; IDX folders through knob_data_load (split sizes,
 * every image exactly once, labels kept with their image, determinism, each error message);
 * generated digit JSON files (fast path and general path agree, malformed files); the real
 * digits and Fashion-MNIST when present; augmentation checked against where pixels must go. */
#include "test.h"

#include <zlib.h>

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

static int write_gz(const char *path, const void *p, size_t n)
{
    gzFile f = gzopen(path, "wb");
    if (!f)
        return 0;
    int ok = n == 0 || gzwrite(f, p, (unsigned)n) == (int)n;
    return gzclose(f) == Z_OK && ok;
}

/* IDX bytes: magic 00 00 08 nd, big-endian dims, then the payload; returns the length */
static size_t idx_bytes(uint8_t *out, int nd, const int *dims, const uint8_t *payload)
{
    size_t at = 0, n = 1;
    out[at++] = 0;
    out[at++] = 0;
    out[at++] = 0x08;
    out[at++] = (uint8_t)nd;
    for (int i = 0; i < nd; i++) {
        out[at++] = (uint8_t)(dims[i] >> 24);
        out[at++] = (uint8_t)(dims[i] >> 16);
        out[at++] = (uint8_t)(dims[i] >> 8);
        out[at++] = (uint8_t)dims[i];
        n *= (size_t)dims[i];
    }
    memcpy(out + at, payload, n);
    return at + n;
}

static int clean_fail(knob_status s, const knob_err *err, const char *path)
{
    return s != KNOB_OK && err->code == s && strstr(err->msg, path) && !strchr(err->msg, '\n');
}

/* ------------------------------------------------------------------------------------------------
 * IDX */

TEST(idx_read_plain_and_gzip)
{
    knob_err err;
    uint8_t payload[24], file[64];
    for (int i = 0; i < 24; i++)
        payload[i] = (uint8_t)(i * 10 + 3);
    size_t len = idx_bytes(file, 3, (int[]){2, 3, 4}, payload);
    CHECK(len == 4 + 12 + 24);
    char plain[512], gz[512];
    tmp_path(plain, sizeof plain, "a.idx");
    tmp_path(gz, sizeof gz, "a.idx.gz");
    CHECK(write_bytes(plain, file, len));
    CHECK(write_gz(gz, file, len));
    const char *paths[2] = {plain, gz};
    for (int k = 0; k < 2; k++) {
        int nd = 0, dims[4] = {0};
        uint8_t *data = NULL;
        CHECK_OK(knob_idx_read(paths[k], &nd, dims, &data, &err));
        CHECK(nd == 3 && dims[0] == 2 && dims[1] == 3 && dims[2] == 4);
        CHECK(data && memcmp(data, payload, 24) == 0);
        knob_free(data);
    }
    /* 1-d, and a zero-length payload */
    len = idx_bytes(file, 1, (int[]){0}, payload);
    CHECK(write_bytes(plain, file, len));
    int nd, dims[4];
    uint8_t *data;
    CHECK_OK(knob_idx_read(plain, &nd, dims, &data, &err));
    CHECK(nd == 1 && dims[0] == 0);
    knob_free(data);
}

TEST(idx_read_truncated_everywhere)
{
    knob_err err;
    uint8_t payload[24], file[64];
    for (int i = 0; i < 24; i++)
        payload[i] = (uint8_t)(255 - i);
    size_t len = idx_bytes(file, 3, (int[]){2, 3, 4}, payload);
    char path[512];
    tmp_path(path, sizeof path, "cut.idx");
    for (size_t cut = 0; cut < len; cut++) {
        for (int gz = 0; gz < 2; gz++) {
            CHECK(gz ? write_gz(path, file, cut) : write_bytes(path, file, cut));
            int nd = 7, dims[4];
            uint8_t *data = (uint8_t *)1;
            memset(&err, 0, sizeof err);
            knob_status s = knob_idx_read(path, &nd, dims, &data, &err);
            if (!clean_fail(s, &err, path) || s != KNOB_ERR_FORMAT || !strstr(err.msg, "truncated") || data)
                test_fail_at(__FILE__, __LINE__, "cut at %zu (gz %d): status %s, msg '%s'", cut, gz,
                             knob_status_name(s), err.msg);
        }
    }
    /* the message counts the data found */
    CHECK(write_bytes(path, file, len - 5));
    int nd, dims[4];
    uint8_t *data;
    CHECK_FAILS_WITH(knob_idx_read(path, &nd, dims, &data, &err), KNOB_ERR_FORMAT,
                     "truncated: expected 24 bytes of data, found 19");
    /* a gzip stream cut in the middle of its compressed data */
    uint8_t big[4 + 12 + 4096];
    uint8_t pay[4096];
    for (int i = 0; i < 4096; i++)
        pay[i] = (uint8_t)((i * 7919) >> 3);
    size_t blen = idx_bytes(big, 3, (int[]){4, 32, 32}, pay);
    char full[512];
    tmp_path(full, sizeof full, "big.idx.gz");
    CHECK(write_gz(full, big, blen));
    unsigned char *gzb;
    size_t gzlen;
    CHECK_OK(knob_read_file(full, &gzb, &gzlen, &err));
    for (size_t cut = 10; cut < gzlen; cut += gzlen / 7 + 1) {
        CHECK(write_bytes(path, gzb, cut));
        memset(&err, 0, sizeof err);
        knob_status s = knob_idx_read(path, &nd, dims, &data, &err);
        if (!clean_fail(s, &err, path))
            test_fail_at(__FILE__, __LINE__, "gzip cut at %zu: status %s, msg '%s'", cut, knob_status_name(s), err.msg);
    }
    knob_free(gzb);
}

TEST(idx_read_rejects_bad_headers)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "bad.idx");
    int nd, dims[4];
    uint8_t *data;
    uint8_t file[64], payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t len = idx_bytes(file, 1, (int[]){8}, payload);

    file[0] = 1;   /* wrong magic */
    CHECK(write_bytes(path, file, len));
    CHECK_FAILS_WITH(knob_idx_read(path, &nd, dims, &data, &err), KNOB_ERR_FORMAT, "not an IDX file");
    CHECK(strstr(err.msg, path) == err.msg);
    file[0] = 0;
    file[2] = 0x0D;   /* float elements */
    CHECK(write_bytes(path, file, len));
    CHECK_FAILS_WITH(knob_idx_read(path, &nd, dims, &data, &err), KNOB_ERR_FORMAT, "element type 0x0d not supported");
    file[2] = 0x08;
    file[3] = 0;   /* no dimensions */
    CHECK(write_bytes(path, file, len));
    CHECK_FAILS_WITH(knob_idx_read(path, &nd, dims, &data, &err), KNOB_ERR_FORMAT, "0 dimensions");
    file[3] = 1;
    file[len] = 9;   /* one trailing byte */
    CHECK(write_bytes(path, file, len + 1));
    CHECK_FAILS_WITH(knob_idx_read(path, &nd, dims, &data, &err), KNOB_ERR_FORMAT, "trailing bytes");
    /* sizes whose product passes 2^31: refused before allocating */
    uint8_t huge[4 + 12] = {0, 0, 8, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0x80, 0};
    CHECK(write_bytes(path, huge, sizeof huge));
    CHECK_FAILS_WITH(knob_idx_read(path, &nd, dims, &data, &err), KNOB_ERR_FORMAT, "exceeds");
    char missing[512];
    tmp_path(missing, sizeof missing, "no-such.idx");
    CHECK_FAILS_WITH(knob_idx_read(missing, &nd, dims, &data, &err), KNOB_ERR_IO, "no-such.idx: cannot open");
}

/* ------------------------------------------------------------------------------------------------
 * IDX folders through knob_data_load */

/* Writes DIR/<prefix>-images-idx3-ubyte (n images of h x w, pixel 0 = first + i, others i*k) and
 * DIR/<prefix>-labels-idx1-ubyte (label of image i: (first + i) % n_classes, or `labels`). */
static void write_idx_set(const char *dir, const char *prefix, int n, int h, int w, int first, int n_classes,
                          int n_labels, int gz)
{
    char path[600];
    size_t px = (size_t)h * w;
    uint8_t *img = malloc(16 + (size_t)n * px), *pay = malloc((size_t)n * px + 1);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < px; j++)
            pay[(size_t)i * px + j] = (uint8_t)(j == 0 ? first + i : (i * 3 + (int)j) % 256);
    size_t len = idx_bytes(img, 3, (int[]){n, h, w}, pay);
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, prefix, gz ? ".gz" : "");
    CHECK(gz ? write_gz(path, img, len) : write_bytes(path, img, len));
    for (int i = 0; i < n_labels; i++)
        pay[i] = (uint8_t)((first + i) % n_classes);
    len = idx_bytes(img, 1, (int[]){n_labels}, pay);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, prefix, gz ? ".gz" : "");
    CHECK(gz ? write_gz(path, img, len) : write_bytes(path, img, len));
    free(img);
    free(pay);
}

static void make_dir(char *dir, size_t size, const char *name)
{
    knob_err err;
    tmp_path(dir, size, name);
    CHECK_OK(knob_mkdirs(dir, &err));
}

TEST(data_load_idx_dir_splits)
{
    knob_err err;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "idxset");
    write_idx_set(dir, "train", 12, 3, 2, 0, 3, 12, 0);
    write_idx_set(dir, "t10k", 4, 3, 2, 100, 3, 4, 1);   /* gzipped test pair */
    snprintf(spec, sizeof spec, "idx:%s", dir);
    knob_splits s, s2;
    CHECK_OK(knob_data_load(&s, spec, NULL, 3, 7, &err));
    CHECK(s.train.n == 9 && s.val.n == 3 && s.test.n == 4);
    CHECK(s.train.h == 3 && s.train.w == 2 && s.train.c == 1 && s.test.h == 3);
    CHECK(s.train.n_classes == 3 && strcmp(s.train.class_names[2], "2") == 0);
    CHECK(strcmp(s.name, spec) == 0);
    /* every training image exactly once across train and val, its label with it, bytes / 255 */
    int seen[12] = {0};
    const knob_dataset *parts[2] = {&s.train, &s.val};
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < parts[p]->n; i++) {
            const float *x = parts[p]->x + (size_t)i * 6;
            int id = (int)lroundf(x[0] * 255.0f);
            CHECK(id >= 0 && id < 12);
            if (id < 0 || id >= 12)
                continue;
            seen[id]++;
            CHECK(parts[p]->y[i] == id % 3);
            CHECK_NEAR(x[3], ((id * 3 + 3) % 256) / 255.0, 0, 1e-7);
            if (i > 0)   /* file order kept within a split */
                CHECK(id > (int)lroundf(parts[p]->x[(size_t)(i - 1) * 6] * 255.0f));
        }
    for (int i = 0; i < 12; i++)
        CHECK(seen[i] == 1);
    for (int i = 0; i < 4; i++) {
        CHECK((int)lroundf(s.test.x[(size_t)i * 6] * 255.0f) == 100 + i);
        CHECK(s.test.y[i] == (100 + i) % 3);
    }
    /* same seed: same split; another seed: (here) another validation set */
    CHECK_OK(knob_data_load(&s2, spec, NULL, 3, 7, &err));
    CHECK(s2.val.n == 3 && memcmp(s.val.x, s2.val.x, 3 * 6 * sizeof(float)) == 0);
    knob_splits_free(&s2);
    int differs = 0;
    for (uint64_t seed = 8; seed < 12; seed++) {
        CHECK_OK(knob_data_load(&s2, spec, NULL, 3, seed, &err));
        differs |= memcmp(s.val.x, s2.val.x, 3 * 6 * sizeof(float)) != 0;
        knob_splits_free(&s2);
    }
    CHECK(differs);
    /* n_val 0: no validation set */
    CHECK_OK(knob_data_load(&s2, spec, NULL, 0, 7, &err));
    CHECK(s2.train.n == 12 && s2.val.n == 0);
    knob_splits_free(&s2);
    knob_splits_free(&s);
    knob_splits_free(&s);   /* twice is safe */
}

TEST(data_load_idx_dir_errors)
{
    knob_err err;
    char dir[512], spec[600], want[1300];
    knob_splits s;
    /* image count != label count */
    make_dir(dir, sizeof dir, "idx_count");
    write_idx_set(dir, "train", 12, 3, 2, 0, 3, 11, 0);
    write_idx_set(dir, "t10k", 4, 3, 2, 0, 3, 4, 0);
    snprintf(spec, sizeof spec, "idx:%s", dir);
    snprintf(want, sizeof want, "%s/train-images-idx3-ubyte: 12 images but %s/train-labels-idx1-ubyte has 11 labels",
             dir, dir);
    CHECK_FAILS_WITH(knob_data_load(&s, spec, NULL, 2, 1, &err), KNOB_ERR_FORMAT, want);
    CHECK(s.train.x == NULL && s.test.x == NULL);
    /* label out of range (idx allows 16 classes) */
    make_dir(dir, sizeof dir, "idx_label");
    write_idx_set(dir, "train", 20, 2, 2, 0, 17, 20, 0);
    write_idx_set(dir, "t10k", 4, 2, 2, 0, 3, 4, 0);
    snprintf(spec, sizeof spec, "idx:%s", dir);
    CHECK_FAILS_WITH(knob_data_load(&s, spec, NULL, 2, 1, &err), KNOB_ERR_FORMAT,
                     "train-labels-idx1-ubyte: label 16 at index 16 out of range (expected 0 to 15)");
    /* fashion allows 10 classes only: the same folder as "fashion" */
    CHECK_FAILS_WITH(knob_data_load(&s, "fashion", dir, 2, 1, &err), KNOB_ERR_FORMAT,
                     "label 10 at index 10 out of range (expected 0 to 9)");
    /* image sizes disagree */
    make_dir(dir, sizeof dir, "idx_size");
    write_idx_set(dir, "train", 6, 3, 2, 0, 3, 6, 0);
    write_idx_set(dir, "t10k", 4, 2, 3, 0, 3, 4, 0);
    snprintf(spec, sizeof spec, "idx:%s", dir);
    CHECK_FAILS_WITH(knob_data_load(&s, spec, NULL, 2, 1, &err), KNOB_ERR_FORMAT, "images are 2x3 but");
    /* a missing file is named, with the hint for fashion */
    make_dir(dir, sizeof dir, "idx_missing");
    write_idx_set(dir, "train", 6, 3, 2, 0, 3, 6, 0);
    snprintf(spec, sizeof spec, "idx:%s", dir);
    CHECK_FAILS_WITH(knob_data_load(&s, spec, NULL, 2, 1, &err), KNOB_ERR_IO, "t10k-images-idx3-ubyte[.gz]: not found");
    CHECK_FAILS_WITH(knob_data_load(&s, "fashion", dir, 2, 1, &err), KNOB_ERR_IO, "run sh scripts/setup.sh");
    /* wrong magic inside a data set */
    write_idx_set(dir, "t10k", 4, 3, 2, 0, 3, 4, 0);
    char path[700];
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
    CHECK(write_bytes(path, "\x00\x00\x09\x01\x00\x00\x00\x04" "abcd", 12));
    CHECK_FAILS_WITH(knob_data_load(&s, spec, NULL, 2, 1, &err), KNOB_ERR_FORMAT, "element type 0x09");
    /* images file with labels' shape */
    write_idx_set(dir, "t10k", 4, 3, 2, 0, 3, 4, 0);
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte", dir);
    CHECK(write_bytes(path, "\x00\x00\x08\x01\x00\x00\x00\x04" "abcd", 12));
    CHECK_FAILS_WITH(knob_data_load(&s, spec, NULL, 2, 1, &err), KNOB_ERR_FORMAT, "expected 3 dimensions");
    /* validation larger than the training set; unknown spec */
    write_idx_set(dir, "t10k", 4, 3, 2, 0, 3, 4, 0);
    CHECK_FAILS_WITH(knob_data_load(&s, spec, NULL, 6, 1, &err), KNOB_ERR_USAGE, "6 validation images requested of 6");
    CHECK_FAILS_WITH(knob_data_load(&s, spec, NULL, -1, 1, &err), KNOB_ERR_USAGE, "validation");
    CHECK_FAILS_WITH(knob_data_load(&s, "cifar", NULL, 2, 1, &err), KNOB_ERR_USAGE, "unknown data set 'cifar'");
    CHECK_FAILS_WITH(knob_data_load(&s, "idx:", NULL, 2, 1, &err), KNOB_ERR_USAGE, "unknown data set");
}

/* ------------------------------------------------------------------------------------------------
 * Digits JSON */

/* DIR/k.json with n_k = 10 + 3k images (or `count` values when count >= 0): image j of digit k has
 * pixel 0 = k / 10, pixel 1 = j / 100, pixel 2 = 0.5; written in the npm files' style, or with
 * exponents and extra spaces (which the general path reads) when odd is set. */
static void write_digit_file(const char *dir, int k, int count, int odd)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%d.json", dir, k);
    FILE *f = fopen(path, "wb");
    KNOB_ASSERT(f);
    int n_vals = count >= 0 ? count : (10 + 3 * k) * 784;
    fprintf(f, odd ? "{ \"note\": \"x\", \"data\" : [ " : "{\"data\":[");
    for (int i = 0; i < n_vals; i++) {
        int j = i / 784, p = i % 784;
        double v = p == 0 ? k / 10.0 : p == 1 ? j / 100.0 : p == 2 ? 0.5 : 0.0;
        if (odd)
            fprintf(f, "%s%.3e", i ? " , " : "", v);
        else
            fprintf(f, "%s%.17g", i ? "," : "", v);
    }
    fprintf(f, odd ? " ] }\n" : "]}");
    fclose(f);
}

static void make_digits_dir(char *dir, size_t size, const char *name, int odd)
{
    make_dir(dir, size, name);
    for (int k = 0; k < 10; k++)
        write_digit_file(dir, k, -1, odd && k == 3);
}

TEST(digits_read_generated)
{
    knob_err err;
    char dir[512];
    make_digits_dir(dir, sizeof dir, "digits_gen", 1);   /* 3.json takes the general (knob_json) path */
    float *images;
    int32_t *labels;
    int n;
    CHECK_OK(knob_digits_read(dir, &images, &labels, &n, &err));
    CHECK(n == 10 * 10 + 3 * 45);
    int at = 0;
    for (int k = 0; k < 10; k++)
        for (int j = 0; j < 10 + 3 * k; j++, at++) {
            const float *x = images + (size_t)at * 784;
            CHECK(labels[at] == k);
            CHECK(x[0] == (float)(k / 10.0) && x[1] == (float)(j / 100.0) && x[2] == 0.5f && x[783] == 0.0f);
        }
    knob_free(images);
    knob_free(labels);
    /* the data set made from them: 28x28, classes "0" .. "9" */
    knob_splits s;
    CHECK_OK(knob_data_load(&s, "digits", dir, 0, 1, &err));
    CHECK(s.train.h == 28 && s.train.w == 28 && s.train.c == 1 && s.test.n_classes == 10);
    CHECK(strcmp(s.val.class_names[7], "7") == 0);
    knob_splits_free(&s);
    knob_splits_free(&s);
}

TEST(digits_split_stratified_fixed)
{
    knob_err err;
    char dir[512];
    make_digits_dir(dir, sizeof dir, "digits_split", 0);
    knob_splits a, b;
    CHECK_OK(knob_data_load(&a, "digits", dir, 0, 1, &err));
    CHECK_OK(knob_data_load(&b, "digits", dir, 500, 99, &err));   /* seed and n_val do not matter */
    const int n = 235;
    CHECK(a.test.n == n / 10 && a.val.n == n / 10 && a.train.n == n - 2 * (n / 10));
    CHECK(strcmp(a.name, "digits") == 0);
    CHECK(b.train.n == a.train.n && memcmp(a.train.x, b.train.x, (size_t)a.train.n * 784 * sizeof(float)) == 0);
    CHECK(memcmp(a.test.x, b.test.x, (size_t)a.test.n * 784 * sizeof(float)) == 0);
    CHECK(memcmp(a.val.y, b.val.y, (size_t)a.val.n * sizeof(int32_t)) == 0);
    /* every image once; per digit, test and val hold floor or ceil of n_k / 10 */
    static int seen[10][40];
    memset(seen, 0, sizeof seen);
    const knob_dataset *parts[3] = {&a.train, &a.val, &a.test};
    int cnt[3][10] = {{0}};
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < parts[p]->n; i++) {
            const float *x = parts[p]->x + (size_t)i * 784;
            int k = (int)lroundf(x[0] * 10), j = (int)lroundf(x[1] * 100);
            CHECK(k == parts[p]->y[i] && j < 10 + 3 * k);
            seen[k][j]++;
            cnt[p][k]++;
        }
    for (int k = 0; k < 10; k++) {
        for (int j = 0; j < 10 + 3 * k; j++)
            CHECK(seen[k][j] == 1);
        int nk = 10 + 3 * k;
        for (int p = 1; p < 3; p++)
            CHECK(cnt[p][k] == nk / 10 || cnt[p][k] == nk / 10 + 1);
    }
    /* the splits are shuffled, not in class order */
    int sorted = 1;
    for (int i = 1; i < a.train.n; i++)
        sorted &= a.train.y[i] >= a.train.y[i - 1];
    CHECK(!sorted);
    knob_splits_free(&a);
    knob_splits_free(&b);
}

TEST(digits_read_errors)
{
    knob_err err;
    char dir[512], path[600];
    float *images = NULL;
    int32_t *labels = NULL;
    int n = -1;
    make_digits_dir(dir, sizeof dir, "digits_bad", 0);
    snprintf(path, sizeof path, "%s/4.json", dir);
    CHECK(write_bytes(path, "{\"data\": [0, 1,", 15));
    CHECK_FAILS_WITH(knob_digits_read(dir, &images, &labels, &n, &err), KNOB_ERR_FORMAT, "4.json: malformed JSON");
    CHECK(images == NULL && labels == NULL && n == 0);
    write_digit_file(dir, 4, 783, 0);
    CHECK_FAILS_WITH(knob_digits_read(dir, &images, &labels, &n, &err), KNOB_ERR_FORMAT, "has 783 values, not a non-zero multiple of 784");
    write_digit_file(dir, 4, 0, 0);
    CHECK_FAILS_WITH(knob_digits_read(dir, &images, &labels, &n, &err), KNOB_ERR_FORMAT, "has 0 values");
    /* 784 values, one of them bad */
    char one[8 * 784 + 32];
    const char *bad[2] = {"1.5", "\"0\""};
    for (int b = 0; b < 2; b++) {
        size_t at = (size_t)snprintf(one, sizeof one, "{\"data\": [");
        for (int i = 0; i < 784; i++)
            at += (size_t)snprintf(one + at, sizeof one - at, "%s%s", i ? "," : "", i == 5 ? bad[b] : "0");
        snprintf(one + at, sizeof one - at, "]}");
        CHECK(write_bytes(path, one, strlen(one)));
        CHECK_FAILS_WITH(knob_digits_read(dir, &images, &labels, &n, &err), KNOB_ERR_FORMAT,
                         b == 0 ? "\"data\"[5] = 1.5 is outside [0, 1]" : "\"data\"[5] is not a number");
    }
    CHECK(write_bytes(path, "[0, 1]", 6));
    CHECK_FAILS_WITH(knob_digits_read(dir, &images, &labels, &n, &err), KNOB_ERR_FORMAT, "expected an object with a \"data\" array");
    remove(path);
    CHECK_FAILS_WITH(knob_digits_read(dir, &images, &labels, &n, &err), KNOB_ERR_IO, "4.json: not found; run sh scripts/setup.sh");
    knob_splits s;
    CHECK_FAILS_WITH(knob_data_load(&s, "digits", dir, 0, 1, &err), KNOB_ERR_IO, "4.json: not found");
}

/* ------------------------------------------------------------------------------------------------
 * Real data (skipped when absent) */

TEST(digits_real_data)
{
    knob_err err;
    char data[2048], dir[2100], probe[2200];
    snprintf(dir, sizeof dir, "%s/mnist", knob_data_dir(data, sizeof data));
    snprintf(probe, sizeof probe, "%s/9.json", dir);
    FILE *f = fopen(probe, "rb");
    if (!f)
        SKIP("data/mnist/*.json absent (sh scripts/setup.sh fetches them)");
    fclose(f);
    knob_splits a, b;
    CHECK_OK(knob_data_load(&a, "digits", NULL, 0, 1, &err));
    CHECK_OK(knob_data_load(&b, "digits", dir, 5000, 12345, &err));
    CHECK(a.train.n == 8000 && a.val.n == 1000 && a.test.n == 1000);
    CHECK(a.train.n + a.val.n + a.test.n == 10000);
    const knob_dataset *parts[3] = {&a.train, &a.val, &a.test};
    for (int p = 0; p < 3; p++) {
        int in_range = 1, per_class[10] = {0};
        for (size_t i = 0; i < (size_t)parts[p]->n * 784; i++)
            in_range &= parts[p]->x[i] >= 0.0f && parts[p]->x[i] <= 1.0f;
        for (int i = 0; i < parts[p]->n; i++)
            per_class[parts[p]->y[i]]++;
        CHECK(in_range);
        for (int k = 0; k < 10; k++)
            CHECK(per_class[k] > (p == 0 ? 600 : 75));   /* stratified: every digit well represented */
    }
    CHECK(memcmp(a.test.x, b.test.x, 1000 * 784 * sizeof(float)) == 0);
    CHECK(memcmp(a.val.y, b.val.y, 1000 * sizeof(int32_t)) == 0);
    CHECK(memcmp(a.train.y, b.train.y, 8000 * sizeof(int32_t)) == 0);
    knob_splits_free(&a);
    knob_splits_free(&b);
}

TEST(fashion_real_data)
{
    knob_err err;
    FILE *f = fopen("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb");
    if (!f)
        f = fopen("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte", "rb");
    if (!f)
        SKIP("Fashion-MNIST absent from /usr/share/datasets/fashion-mnist (sh scripts/setup.sh)");
    fclose(f);
    knob_splits s;
    CHECK_OK(knob_data_load(&s, "fashion", NULL, 5000, 1, &err));
    CHECK(s.train.n == 55000 && s.val.n == 5000 && s.test.n == 10000);
    CHECK(s.train.h == 28 && s.train.w == 28 && s.train.n_classes == 10);
    CHECK(strcmp(s.train.class_names[0], "T-shirt/top") == 0 && strcmp(s.test.class_names[9], "Ankle boot") == 0);
    int per_class[10] = {0};
    for (int i = 0; i < s.test.n; i++)
        per_class[s.test.y[i]]++;
    for (int k = 0; k < 10; k++)
        CHECK(per_class[k] == 1000);   /* the t10k set is balanced */
    float lo = 1, hi = 0;
    for (size_t i = 0; i < (size_t)s.val.n * 784; i++) {
        lo = fminf(lo, s.val.x[i]);
        hi = fmaxf(hi, s.val.x[i]);
    }
    CHECK(lo == 0.0f && hi == 1.0f);
    knob_splits_free(&s);
}

/* ------------------------------------------------------------------------------------------------
 * Augmentation */

TEST(augment_off_is_identity)
{
    knob_augment a = {0};
    CHECK(!knob_augment_active(&a) && !knob_augment_active(NULL));
    float in[6 * 5], out[6 * 5];
    for (int i = 0; i < 30; i++)
        in[i] = (float)i / 29.0f;
    knob_rng r, r0;
    knob_rng_seed(&r, 5);
    r0 = r;
    knob_augment_apply(&a, in, out, 6, 5, &r);
    CHECK(memcmp(in, out, sizeof in) == 0);
    CHECK(memcmp(&r, &r0, sizeof r) == 0);   /* nothing drawn */
    /* the warp with no change copies exactly */
    knob_augment_warp(in, out, 6, 5, 0.0f, 1.0f, 0.0f, 0.0f);
    CHECK(memcmp(in, out, sizeof in) == 0);
}

TEST(augment_shift_moves_pixel_exactly)
{
    enum { H = 9, W = 11 };
    knob_augment a = {.shift = 3};
    CHECK(knob_augment_active(&a));
    knob_rng r, rr;
    knob_rng_seed(&r, 42);
    int hist[7][7] = {{0}};
    for (int trial = 0; trial < 300; trial++) {
        float in[H * W] = {0}, out[H * W];
        in[4 * W + 5] = 0.75f;   /* one lit pixel at (y 4, x 5), 3 from every edge at least */
        rr = r;                   /* replay the draws: dx, dy in [-3, 3] */
        int dx = (int)knob_rng_below(&rr, 7) - 3, dy = (int)knob_rng_below(&rr, 7) - 3;
        knob_augment_apply(&a, in, out, H, W, &r);
        hist[dx + 3][dy + 3]++;
        int lit = 0;
        float sum = 0.0f;
        for (int i = 0; i < H * W; i++) {
            lit += out[i] != 0.0f;
            sum += out[i];
        }
        CHECK(lit == 1 && sum == 0.75f);
        CHECK(out[(4 + dy) * W + 5 + dx] == 0.75f);
    }
    for (int i = 0; i < 7; i++)   /* both extremes and everything between are drawn */
        for (int j = 0; j < 7; j++)
            CHECK(hist[i][j] > 0);
    /* a shift past the edge drops the pixel: outside is 0 */
    float in[H * W] = {0}, out[H * W];
    in[0] = 1.0f;
    knob_augment_warp(in, out, H, W, 0.0f, 1.0f, -1.0f, 0.0f);
    float sum = 0.0f;
    for (int i = 0; i < H * W; i++)
        sum += out[i];
    CHECK(sum == 0.0f);
}

TEST(augment_rotation_matches_hand_rotation)
{
    /* 5x5 pattern; rotating 90 degrees counter-clockwise as displayed (y down) about the centre
     * (2, 2) sends (x, y) to (y, 4 - x): the top row becomes the left column read upwards. */
    enum { N = 5 };
    float in[N * N], out[N * N];
    for (int i = 0; i < N * N; i++)
        in[i] = (float)(i + 1) / 25.0f;
    knob_augment_warp(in, out, N, N, 90.0f, 1.0f, 0.0f, 0.0f);
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            int oy = N - 1 - x, ox = y;   /* where input (x, y) lands */
            CHECK(out[oy * N + ox] == in[y * N + x]);
        }
    /* 180 degrees is the point reflection; even size: centre (1.5, 1.5) */
    float a4[16], b4[16];
    for (int i = 0; i < 16; i++)
        a4[i] = (float)i;
    knob_augment_warp(a4, b4, 4, 4, 180.0f, 1.0f, 0.0f, 0.0f);
    for (int i = 0; i < 16; i++)
        CHECK(b4[i] == a4[15 - i]);
    /* 45 degrees keeps the centre pixel and moves (x+1, y) to about (x+0.707, y-0.707) */
    float c[N * N] = {0}, d[N * N];
    c[2 * N + 2] = 1.0f;
    knob_augment_warp(c, d, N, N, 45.0f, 1.0f, 0.0f, 0.0f);
    CHECK(d[2 * N + 2] == 1.0f);
    /* zoom 2 about the centre: output (x, y) samples input at centre + (x - 2, y - 2) / 2 */
    float z[N * N], zo[N * N];
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++)
            z[y * N + x] = (float)x;   /* a ramp in x: bilinear reproduces it exactly */
    knob_augment_warp(z, zo, N, N, 0.0f, 2.0f, 0.0f, 0.0f);
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++)
            CHECK_NEAR(zo[y * N + x], 2.0 + (x - 2) / 2.0, 0, 1e-6);
}

TEST(augment_noise_statistics_and_determinism)
{
    enum { H = 64, W = 64 };
    static float in[H * W], out[H * W], out2[H * W];
    for (int i = 0; i < H * W; i++)
        in[i] = 0.5f;
    knob_augment a = {.noise = 0.1f};
    knob_rng r;
    knob_rng_seed(&r, 3);
    double s = 0, s2 = 0;
    int n = 0;
    for (int rep = 0; rep < 4; rep++) {
        knob_augment_apply(&a, in, out, H, W, &r);
        for (int i = 0; i < H * W; i++, n++) {
            s += out[i] - 0.5;
            s2 += (out[i] - 0.5) * (out[i] - 0.5);
        }
    }
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    CHECK_NEAR(mean, 0.0, 0, 0.004);   /* 16384 draws: standard error 0.1 / 128 */
    CHECK_NEAR(sd, 0.1, 0.03, 0);
    /* clamped to [0, 1] */
    a.noise = 2.0f;
    knob_augment_apply(&a, in, out, H, W, &r);
    int clamped = 0, inside = 1;
    for (int i = 0; i < H * W; i++) {
        inside &= out[i] >= 0.0f && out[i] <= 1.0f;
        clamped += out[i] == 0.0f || out[i] == 1.0f;
    }
    CHECK(inside && clamped > H * W / 2);
    /* everything on: same seed, same bits; another seed, other bits */
    knob_augment all = {.shift = 2, .rotate_deg = 15.0f, .scale = 0.1f, .noise = 0.05f};
    for (int i = 0; i < H * W; i++)
        in[i] = (float)((i * 37) % 101) / 100.0f;
    knob_rng r1, r2;
    knob_rng_seed(&r1, 77);
    knob_rng_seed(&r2, 77);
    knob_augment_apply(&all, in, out, H, W, &r1);
    knob_augment_apply(&all, in, out2, H, W, &r2);
    CHECK(memcmp(out, out2, sizeof out) == 0);
    knob_rng_seed(&r2, 78);
    knob_augment_apply(&all, in, out2, H, W, &r2);
    CHECK(memcmp(out, out2, sizeof out) != 0);
}

TEST(augment_allocates_nothing)
{
    enum { H = 28, W = 28 };
    float in[H * W], out[H * W];
    for (int i = 0; i < H * W; i++)
        in[i] = (float)(i % 28) / 27.0f;
    knob_augment all = {.shift = 2, .rotate_deg = 10.0f, .scale = 0.1f, .noise = 0.05f};
    knob_rng r;
    knob_rng_seed(&r, 1);
    long before = knob_alloc_count();
    for (int i = 0; i < 50; i++)
        knob_augment_apply(&all, in, out, H, W, &r);
    CHECK(knob_alloc_count() == before);
}

/* ------------------------------------------------------------------------------------------------
 * Failed allocations: every reader fails cleanly (status, message, nothing to free, no leak under
 * ASan) whichever allocation fails, and succeeds once none does. */

static int splits_empty(const knob_splits *s)
{
    return !s->train.x && !s->val.x && !s->test.x && !s->train.y && !s->val.y && !s->test.y;
}

TEST(data_load_survives_failed_allocations)
{
    knob_err err;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "oom_idx");
    write_idx_set(dir, "train", 12, 3, 2, 0, 3, 12, 1);
    write_idx_set(dir, "t10k", 4, 3, 2, 100, 3, 4, 0);
    snprintf(spec, sizeof spec, "idx:%s", dir);
    char ddir[512];
    make_digits_dir(ddir, sizeof ddir, "oom_digits", 0);
    const char *specs[2] = {spec, "digits"};
    for (int k = 0; k < 2; k++) {
        int ok = 0;
        for (long n = 1; n < 400 && !ok; n++) {
            knob_splits s;
            memset(&err, 0, sizeof err);
            knob_alloc_fail_at(n);
            knob_status st = knob_data_load(&s, specs[k], k ? ddir : NULL, 3, 1, &err);
            knob_alloc_fail_at(0);
            if (st == KNOB_OK) {
                ok = 1;
                CHECK(s.test.n == (k ? 23 : 4));
            } else if (st != KNOB_ERR_NOMEM || err.code != st || !err.msg[0] || !splits_empty(&s)) {
                test_fail_at(__FILE__, __LINE__, "%s, allocation %ld failing: %s '%s'", specs[k], n,
                             knob_status_name(st), err.msg);
            }
            knob_splits_free(&s);
        }
        CHECK(ok);
    }
    /* the general JSON path (the parser allocates per value): a sample of failure points */
    make_dir(ddir, sizeof ddir, "oom_json");
    for (int k = 0; k < 10; k++)
        write_digit_file(ddir, k, 2 * 784, 1);
    for (long n = 1; n < 20000; n += n < 30 ? 1 : 997) {
        float *images;
        int32_t *labels;
        int n_img;
        memset(&err, 0, sizeof err);
        knob_alloc_fail_at(n);
        knob_status st = knob_digits_read(ddir, &images, &labels, &n_img, &err);
        knob_alloc_fail_at(0);
        if (st == KNOB_OK)
            CHECK(n_img == 20);
        else if (st != KNOB_ERR_NOMEM || !err.msg[0] || images || labels || n_img)
            test_fail_at(__FILE__, __LINE__, "json, allocation %ld failing: %s '%s'", n, knob_status_name(st), err.msg);
        knob_free(images);
        knob_free(labels);
    }
}
