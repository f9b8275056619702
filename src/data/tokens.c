/* tokens.c: a text corpus for language-model training, and its token cache.
 *
 * A corpus is a list of paths; a folder stands for its text files (fortune's folder holds *.dat
 * index files and *.u8 copies beside the text, which are left out). Tokenizing megabytes of text with
 * BPE takes seconds, so the ids are cached in a small binary file keyed by the tokenizer's
 * description and each file's path, size and modification time: change any of them and the cache
 * is rebuilt.
 *
 * Cache layout (little-endian): "KNOBTOK1", uint64 key, uint64 count, uint32 vocab, uint32 0, then
 * count uint16 ids (so vocabularies up to 65536 ids).
 *
 * Not here: the tokenizers (src/text/), the training loop (src/models/gpt_train.c). */
#include "knob_internal.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tokens.c assumes a little-endian host"
#endif

static const char MAGIC[8] = {'K', 'N', 'O', 'B', 'T', 'O', 'K', '1'};
enum { HEADER = 32 };

/* ------------------------------------------------------------------------------------------------
 * Corpus files */

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* A NUL byte in the first 4 KiB: a binary file. */
static int looks_binary(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 1;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memchr(buf, 0, n) != NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static knob_status push(char ***files, int *n, int *cap, const char *path, knob_err *err)
{
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 32;
        char **f = knob_realloc(*files, (size_t)c * sizeof *f);
        if (!f)
            return knob_fail(err, KNOB_ERR_NOMEM, "corpus: out of memory");
        *files = f;
        *cap = c;
    }
    size_t len = strlen(path);
    char *s = knob_malloc(len + 1);
    if (!s)
        return knob_fail(err, KNOB_ERR_NOMEM, "corpus: out of memory");
    memcpy(s, path, len + 1);
    (*files)[(*n)++] = s;
    return KNOB_OK;
}

static knob_status add_dir(const char *dir, char ***files, int *n, int *cap, knob_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return knob_fail(err, KNOB_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    int first = *n;
    knob_status s = KNOB_OK;
    struct dirent *e;
    while (!s && (e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (name[0] == '.' || has_suffix(name, ".dat") || has_suffix(name, ".u8"))
            continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || looks_binary(path))
            continue;
        s = push(files, n, cap, path, err);
    }
    closedir(d);
    if (*n > first)
        qsort(*files + first, (size_t)(*n - first), sizeof **files, cmp_str);
    return s;
}

knob_status knob_corpus_files(const char *const *paths, int n_paths, char ***files, int *n_files, knob_err *err)
{
    *files = NULL;
    *n_files = 0;
    int n = 0, cap = 0;
    char **f = NULL;
    knob_status s = KNOB_OK;
    for (int i = 0; !s && i < n_paths; i++) {
        struct stat st;
        if (!paths[i][0])
            s = knob_fail(err, KNOB_ERR_IO, "'': the file name is empty");
        else if (stat(paths[i], &st) != 0)
            s = knob_fail(err, KNOB_ERR_IO, "%s: cannot open: %s", paths[i], strerror(errno));
        else if (S_ISDIR(st.st_mode))
            s = add_dir(paths[i], &f, &n, &cap, err);
        else
            s = push(&f, &n, &cap, paths[i], err);
    }
    if (!s && n == 0)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s%s: no text files in the corpus", n_paths ? paths[0] : "(none)",
                      n_paths > 1 ? " ..." : "");
    if (s) {
        knob_corpus_files_free(f, n);
        return s;
    }
    *files = f;
    *n_files = n;
    return KNOB_OK;
}

void knob_corpus_files_free(char **files, int n_files)
{
    for (int i = 0; files && i < n_files; i++)
        knob_free(files[i]);
    knob_free(files);
}

knob_status knob_corpus_read(char *const *files, int n_files, char **text, size_t *len, knob_err *err)
{
    *text = NULL;
    *len = 0;
    size_t n = 0, cap = 0;
    char *buf = NULL;
    for (int i = 0; i < n_files; i++) {
        unsigned char *b;
        size_t m;
        knob_status s = knob_read_file(files[i], &b, &m, err);
        if (s) {
            knob_free(buf);
            return s;
        }
        if (n + m + 2 > cap) {
            size_t c = KNOB_MAX(2 * cap, n + m + 2);
            char *nb = knob_realloc(buf, c);
            if (!nb) {
                knob_free(b);
                knob_free(buf);
                return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory reading the corpus", files[i]);
            }
            buf = nb;
            cap = c;
        }
        memcpy(buf + n, b, m);
        n += m;
        if (m && b[m - 1] != '\n')
            buf[n++] = '\n';
        knob_free(b);
    }
    if (!buf && !(buf = knob_malloc(1)))
        return knob_fail(err, KNOB_ERR_NOMEM, "corpus: out of memory");
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return KNOB_OK;
}

uint64_t knob_corpus_key(char *const *files, int n_files, const char *tok_desc)
{
    uint64_t h = KNOB_FNV_SEED;
    h = knob_fnv1a(h, tok_desc, strlen(tok_desc) + 1);
    for (int i = 0; i < n_files; i++) {
        h = knob_fnv1a(h, files[i], strlen(files[i]) + 1);
        struct stat st;
        int64_t v[3] = {-1, -1, -1};
        if (stat(files[i], &st) == 0) {
            v[0] = (int64_t)st.st_size;
            v[1] = (int64_t)st.st_mtim.tv_sec;
            v[2] = (int64_t)st.st_mtim.tv_nsec;
        }
        h = knob_fnv1a(h, v, sizeof v);
    }
    return h;
}

/* ------------------------------------------------------------------------------------------------
 * Cache file */

knob_status knob_tokens_write(const char *path, uint64_t key, int vocab, const uint16_t *ids, size_t n, knob_err *err)
{
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    unsigned char h[HEADER] = {0};
    memcpy(h, MAGIC, 8);
    uint64_t count = n;
    uint32_t v = (uint32_t)vocab;
    memcpy(h + 8, &key, 8);
    memcpy(h + 16, &count, 8);
    memcpy(h + 24, &v, 4);
    fwrite(h, 1, HEADER, a.f);
    if (n)
        fwrite(ids, sizeof *ids, n, a.f);
    return knob_atomic_commit(&a, err);
}

knob_status knob_tokens_read(const char *path, uint64_t key, int vocab, uint16_t **ids, size_t *n, int *match,
                             knob_err *err)
{
    *ids = NULL;
    *n = 0;
    *match = 0;
    unsigned char *b;
    size_t len;
    knob_status s = knob_read_file(path, &b, &len, err);
    if (s)
        return s;
    uint64_t k, count;
    uint32_t v;
    if (len < HEADER || memcmp(b, MAGIC, 8) != 0) {
        knob_free(b);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: not a knob token file (bad magic or shorter than %d bytes)", path,
                         HEADER);
    }
    memcpy(&k, b + 8, 8);
    memcpy(&count, b + 16, 8);
    memcpy(&v, b + 24, 4);
    if (count > (len - HEADER) / 2 || (len - HEADER) != count * 2) {
        knob_free(b);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: header says %llu tokens but the file holds %zu bytes of ids",
                         path, (unsigned long long)count, len - HEADER);
    }
    if (k != key || v != (uint32_t)vocab) {
        knob_free(b);
        return KNOB_OK;
    }
    uint16_t *out = knob_malloc(count ? (size_t)count * sizeof *out : 1);
    if (!out) {
        knob_free(b);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(out, b + HEADER, (size_t)count * sizeof *out);
    knob_free(b);
    for (size_t i = 0; i < count; i++)
        if (out[i] >= (uint32_t)vocab) {
            unsigned bad = out[i];
            knob_free(out);
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: token %u at %zu is outside the vocabulary of %d", path,
                             bad, i, vocab);
        }
    *ids = out;
    *n = (size_t)count;
    *match = 1;
    return KNOB_OK;
}

/* The corpus as token ids: from the cache when its key and vocabulary match, else encoded now and
 * cached (atomically). A damaged or stale cache is simply rebuilt. */
knob_status knob_corpus_tokens(const char *cache, char *const *files, int n_files, const char *text, size_t len,
                               const knob_tokenizer *tok, const char *desc, uint16_t **ids, size_t *n, int *cached,
                               knob_err *err)
{
    int V = knob_tok_vocab_size(tok), match = 0;
    /* the key: the files' names, sizes and times, the text itself, and what the tokenizer does (a
     * bpe:DIR retrained in place keeps its name but not its merges) */
    uint64_t key = knob_corpus_key(files, n_files, desc), fp = knob_tok_fingerprint(tok),
             th = knob_hash_bytes(text, len);
    key = knob_fnv1a(key, &fp, sizeof fp);
    key = knob_fnv1a(key, &th, sizeof th);
    knob_err ignore;
    if (knob_tokens_read(cache, key, V, ids, n, &match, &ignore) == KNOB_OK && match) {
        *cached = 1;
        return KNOB_OK;
    }
    *cached = 0;
    if (V > 65536)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: the tokenizer has %d ids; token files hold at most 65536", cache, V);
    int32_t *raw;
    size_t m;
    knob_status s = knob_tok_encode(tok, text, len, 0, &raw, &m, err);
    if (s && n_files > 1)   /* byte offsets count through the files joined in order */
        return knob_err_prefix(err, "corpus %s and %d more file%s, joined", files[0], n_files - 1, n_files > 2 ? "s" : "");
    if (s)
        return knob_err_prefix(err, "%s", n_files ? files[0] : "corpus");
    uint16_t *out = knob_malloc(m ? m * sizeof *out : 1);
    if (!out) {
        knob_free(raw);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory for %zu tokens", cache, m);
    }
    for (size_t i = 0; i < m; i++)
        out[i] = (uint16_t)raw[i];
    knob_free(raw);
    if ((s = knob_tokens_write(cache, key, V, out, m, err)) != KNOB_OK) {
        knob_free(out);
        return s;
    }
    *ids = out;
    *n = m;
    return KNOB_OK;
}
