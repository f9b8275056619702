/* bench/tokenize.c: tokenizer speed on the fortunes corpus (/usr/share/games/fortunes, text files
 * only: no *.dat, *.u8 or files with NUL bytes), or on the files given with --corpus.
 *
 *   bench_tokenize [--corpus DIR_OR_FILE] [--js PATH_TO_js-tiktoken_PACKAGE] [--repeat N]
 *
 * Times (best of N) GPT-2 BPE encoding and decoding of the whole corpus as one text and file by
 * file, the byte tokenizer for scale, and training a 4000-token BPE on it. With --js (or
 * KNOB_BENCH_JS), runs js-tiktoken's "gpt2" encoding under node on the same text, prints its MB/s
 * and the ratio, and compares the token count and a checksum of the ids. Timing never decides pass
 * or fail. */
#include "knob.h"

#include "bench.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *text;
    size_t n;
    size_t *file_end;   /* end offset of each file in text */
    int n_files;
} corpus;

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_file(corpus *c, const char *path)
{
    knob_err err;
    unsigned char *b;
    size_t n;
    if (knob_read_file(path, &b, &n, &err) || memchr(b, 0, n)) {
        knob_free(b);
        return;
    }
    c->text = realloc(c->text, c->n + n + 1);
    memcpy(c->text + c->n, b, n);
    c->n += n;
    c->file_end = realloc(c->file_end, (size_t)(c->n_files + 1) * sizeof *c->file_end);
    c->file_end[c->n_files++] = c->n;
    knob_free(b);
}

static void load_corpus(corpus *c, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        add_file(c, path);
        return;
    }
    DIR *d = opendir(path);
    if (!d)
        return;
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.' && !ends_with(e->d_name, ".dat") && !ends_with(e->d_name, ".u8"))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            add_file(c, p);
        free(names[i]);
    }
}

/* sum over i of ids[i] * (i + 1), mod 2^32: the same in the node script */
static uint32_t checksum(const int32_t *ids, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += (uint32_t)ids[i] * (uint32_t)(i + 1);
    return s;
}

static double best_encode(const knob_tokenizer *t, const corpus *c, int per_file, int repeat, size_t *n_tok,
                          uint32_t *sum)
{
    double best = 1e30;
    knob_err err;
    for (int r = 0; r < repeat; r++) {
        double t0 = bench_now();
        size_t total = 0, start = 0;
        int parts = per_file ? c->n_files : 1;
        for (int f = 0; f < parts; f++) {
            size_t end = per_file ? c->file_end[f] : c->n;
            int32_t *ids;
            size_t n;
            if (knob_tok_encode(t, c->text + start, end - start, 0, &ids, &n, &err)) {
                fprintf(stderr, "bench_tokenize: %s\n", err.msg);
                exit(1);
            }
            if (!per_file && sum)
                *sum = checksum(ids, n);
            total += n;
            knob_free(ids);
            start = end;
        }
        double dt = bench_now() - t0;
        best = dt < best ? dt : best;
        *n_tok = total;
    }
    return best;
}

/* js-tiktoken on the corpus file: prints "tokens checksum seconds" (best of repeat) */
static int run_js(const char *pkg, const char *corpus_path, int repeat, size_t *n_tok, uint32_t *sum, double *secs)
{
    char cmd[12000];
    snprintf(cmd, sizeof cmd,
             "node --input-type=module -e '"
             "import { readFileSync } from \"node:fs\"; import { pathToFileURL } from \"node:url\";"
             "const [pkg, file, rep] = process.argv.slice(1);"
             "const { getEncoding } = await import(pathToFileURL(pkg + \"/dist/index.js\").href);"
             "const enc = getEncoding(\"gpt2\"); const text = readFileSync(file, \"utf8\");"
             "let best = 1e30, ids;"
             "for (let r = 0; r < +rep; r++) { const t0 = process.hrtime.bigint(); ids = enc.encode(text, [], []);"
             "  const dt = Number(process.hrtime.bigint() - t0) / 1e9; if (dt < best) best = dt; }"
             "let s = 0; for (let i = 0; i < ids.length; i++) s = (s + Math.imul(ids[i], i + 1)) >>> 0;"
             "console.log(ids.length, s, best);"
             "' '%s' '%s' %d",
             pkg, corpus_path, repeat);
    FILE *p = popen(cmd, "r");
    if (!p)
        return 0;
    unsigned long long n = 0;
    unsigned long s = 0;
    int ok = fscanf(p, "%llu %lu %lf", &n, &s, secs) == 3;
    ok &= pclose(p) == 0;
    *n_tok = (size_t)n;
    *sum = (uint32_t)s;
    return ok;
}

int main(int argc, char **argv)
{
    const char *path = "/usr/share/games/fortunes", *js = getenv("KNOB_BENCH_JS");
    int repeat = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--corpus") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--js") == 0 && i + 1 < argc)
            js = argv[++i];
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
        else {
            fprintf(stderr, "usage: bench_tokenize [--corpus DIR_OR_FILE] [--js PATH_TO_js-tiktoken] [--repeat N]\n");
            return 2;
        }
    }
    corpus c = {0};
    load_corpus(&c, path);
    if (c.n == 0) {
        printf("bench_tokenize: no text under %s; skipped\n", path);
        return 0;
    }
    knob_err err;
    knob_tokenizer *g, *b;
    if (knob_tok_load_gpt2(&g, &err)) {
        printf("bench_tokenize: %s; skipped\n", err.msg);
        return 0;
    }
    knob_tok_new_byte(&b, &err);
    double mb = (double)c.n / 1e6;
    printf("corpus: %s, %d files, %.2f MB\n", path, c.n_files, mb);
    size_t n_tok, n_tok2;
    uint32_t sum = 0;
    double t_all = best_encode(g, &c, 0, repeat, &n_tok, &sum);
    double t_files = best_encode(g, &c, 1, repeat, &n_tok2, NULL);
    printf("%-34s %8.3f s  %7.2f MB/s  %zu tokens (%.2f bytes/token)\n", "gpt2 encode, one text", t_all, mb / t_all,
           n_tok, (double)c.n / (double)n_tok);
    printf("%-34s %8.3f s  %7.2f MB/s  %zu tokens\n", "gpt2 encode, file by file", t_files, mb / t_files, n_tok2);
    /* decode */
    int32_t *ids;
    size_t n_ids;
    knob_tok_encode(g, c.text, c.n, 0, &ids, &n_ids, &err);
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        char *out;
        size_t len;
        double t0 = bench_now();
        knob_tok_decode(g, ids, n_ids, &out, &len, &err);
        double dt = bench_now() - t0;
        best = dt < best ? dt : best;
        if (len != c.n || memcmp(out, c.text, len) != 0)
            printf("gpt2 decode: DOES NOT ROUND-TRIP\n");
        knob_free(out);
    }
    knob_free(ids);
    printf("%-34s %8.3f s  %7.2f MB/s\n", "gpt2 decode", best, mb / best);
    double t_byte = best_encode(b, &c, 0, repeat, &n_tok2, NULL);
    printf("%-34s %8.3f s  %7.2f MB/s\n", "byte encode (a memory-speed bound)", t_byte, mb / t_byte);
    /* training */
    char dir[] = "/tmp/knob_bench_bpe_XXXXXX";
    if (mkdtemp(dir)) {
        knob_bpe_trainer *tr;
        knob_bpe_stats st;
        double t0 = bench_now();
        knob_bpe_trainer_new(&tr, &err);
        knob_bpe_trainer_add(tr, c.text, c.n, &err);
        double t1 = bench_now();
        knob_status s = knob_bpe_trainer_save(tr, 4000, dir, &st, &err);
        double t2 = bench_now();
        knob_bpe_trainer_free(tr);
        if (!s)
            printf("%-34s %8.3f s  (count %.3f s, %d merges %.3f s)\n", "bpe train, vocab 4000", t2 - t0, t1 - t0,
                   st.n_merges, t2 - t1);
        char p[128];
        snprintf(p, sizeof p, "%s/encoder.json", dir);
        remove(p);
        snprintf(p, sizeof p, "%s/vocab.bpe", dir);
        remove(p);
        rmdir(dir);
    }
    /* comparison */
    if (js) {
        char tmp[] = "/tmp/knob_bench_corpus_XXXXXX";
        int fd = mkstemp(tmp);
        FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        size_t jn;
        uint32_t jsum;
        double jt;
        if (f && fwrite(c.text, 1, c.n, f) == c.n && fclose(f) == 0 && run_js(js, tmp, repeat, &jn, &jsum, &jt)) {
            printf("%-34s %8.3f s  %7.2f MB/s  %zu tokens\n", "js-tiktoken gpt2 encode (node)", jt, mb / jt, jn);
            printf("knob / js-tiktoken speed: %.2fx; ids %s\n", jt / t_all,
                   jn == n_tok && jsum == sum ? "identical (count and checksum)" : "DIFFER");
        } else {
            printf("js-tiktoken comparison: node or %s not usable; skipped\n", js);
        }
        remove(tmp);
    } else {
        printf("comparison: give --js PATH_TO_js-tiktoken (npm pack js-tiktoken; unpack; npm install in it)\n");
    }
    knob_tok_free(g);
    knob_tok_free(b);
    free(c.text);
    free(c.file_end);
    return 0;
}
