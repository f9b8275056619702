/* cmd_bpe.c: `knob bpe train CORPUS... --vocab N --out DIR`: learns a byte-level BPE tokenizer.
 *
 * CORPUS entries are files or folders. A folder contributes its regular files in name order
 * (not recursing), skipping hidden files, fortune's index files (*.dat, *.u8) and files that hold a
 * NUL byte (not text); a file named on the command line is always read. The trainer
 * (src/text/bpe_train.c) writes DIR/encoder.json and DIR/vocab.bpe in GPT-2's format. The command
 * then loads them back, encodes the whole corpus, checks that decoding gives every byte back and
 * reports the compression (bytes per token), with the tokenizer's description for
 * --tokenizer bpe:DIR.
 */
#include "cli.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char **path;
    int n, cap;
    int n_skipped;
} file_list;

static knob_status list_add(file_list *l, const char *path, knob_err *err)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **p = knob_realloc(l->path, (size_t)cap * sizeof *p);
        if (!p)
            return knob_fail(err, KNOB_ERR_NOMEM, "out of memory");
        l->path = p;
        l->cap = cap;
    }
    size_t n = strlen(path);
    if (!(l->path[l->n] = knob_malloc(n + 1)))
        return knob_fail(err, KNOB_ERR_NOMEM, "out of memory");
    memcpy(l->path[l->n++], path, n + 1);
    return KNOB_OK;
}

static void list_free(file_list *l)
{
    for (int i = 0; i < l->n; i++)
        knob_free(l->path[i]);
    knob_free(l->path);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files of a folder, sorted, minus hidden files and fortune index files. */
static knob_status add_dir(file_list *l, const char *dir, knob_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return knob_fail(err, KNOB_ERR_IO, "%s: cannot open folder", dir);
    file_list names = {0};
    knob_status s = KNOB_OK;
    struct dirent *e;
    while (!s && (e = readdir(d))) {
        if (e->d_name[0] == '.' || ends_with(e->d_name, ".dat") || ends_with(e->d_name, ".u8")) {
            l->n_skipped += e->d_name[0] != '.';
            continue;
        }
        s = list_add(&names, e->d_name, err);
    }
    closedir(d);
    if (!s && names.n)
        qsort(names.path, (size_t)names.n, sizeof *names.path, cmp_str);
    for (int i = 0; i < names.n && !s; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names.path[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            s = list_add(l, path, err);
    }
    list_free(&names);
    return s;
}

/* "1.2 MB" */
static void human_bytes(double n, char *buf, size_t size)
{
    if (n >= 1e6)
        snprintf(buf, size, "%.1f MB", n / 1e6);
    else if (n >= 1e3)
        snprintf(buf, size, "%.1f kB", n / 1e3);
    else
        snprintf(buf, size, "%.0f bytes", n);
}

/* The texts, read once: a file from a folder with a NUL byte is skipped as not text. */
typedef struct {
    unsigned char **text;
    size_t *len;
    int n;
} corpus;

static void corpus_free(corpus *c)
{
    for (int i = 0; i < c->n; i++)
        knob_free(c->text[i]);
    knob_free(c->text);
    knob_free(c->len);
}

/* Loads the trained files back, encodes every text, checks the round trip; fills the counts. */
static knob_status check_round_trip(const char *dir, const corpus *c, size_t *n_tokens, knob_err *err)
{
    char enc[4200], voc[4200];
    snprintf(enc, sizeof enc, "%s/encoder.json", dir);
    snprintf(voc, sizeof voc, "%s/vocab.bpe", dir);
    knob_tokenizer *t;
    knob_status s = knob_tok_load_bpe(&t, enc, voc, err);
    if (s)
        return s;
    *n_tokens = 0;
    for (int i = 0; i < c->n && !s; i++) {
        int32_t *ids;
        size_t n_ids, len;
        char *back;
        if ((s = knob_tok_encode(t, (const char *)c->text[i], c->len[i], 0, &ids, &n_ids, err)))
            break;
        s = knob_tok_decode(t, ids, n_ids, &back, &len, err);
        knob_free(ids);
        if (s)
            break;
        if (len != c->len[i] || memcmp(back, c->text[i], len) != 0)
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: text %d does not round-trip through the trained tokenizer", dir, i);
        knob_free(back);
        *n_tokens += n_ids;
    }
    knob_tok_free(t);
    return s;
}

knob_status cmd_bpe(int argc, char **argv, knob_err *err)
{
    int vocab = 1000, json = 0, help = 0, n_pos = 0;
    const char *out = NULL;
    const arg_def args[] = {
        { "vocab", ARG_INT, &vocab, "N", 257, 1 << 20, NULL,
          "vocabulary size: 256 bytes + merges + <|endoftext|>" },
        { "out", ARG_STRING, &out, "DIR", 0, 0, NULL, "folder for encoder.json and vocab.bpe (required)" },
        { "json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print the summary as one JSON object" },
        { NULL, ARG_BOOL, NULL, NULL, 0, 0, NULL, NULL },
    };
    const cli_spec spec = {
        "bpe train", "knob bpe train CORPUS... --vocab N --out DIR",
        "Learns a byte-level BPE tokenizer (GPT-2's pre-tokenizer and file format) from text files or\n"
        "folders of them, and writes DIR/encoder.json and DIR/vocab.bpe; use it with --tokenizer bpe:DIR.\n"
        "Folders: regular files in name order, skipping hidden files, *.dat, *.u8 and files with NUL\n"
        "bytes. The result is checked: the corpus must encode and decode back to the same bytes.",
        args, 1, 4096,
    };
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        cli_usage(&spec, stdout);
        return KNOB_OK;
    }
    if (argc < 2 || strcmp(argv[1], "train") != 0)
        return knob_fail(err, KNOB_ERR_USAGE, "knob bpe: expected 'train', got '%.64s' (knob bpe train CORPUS... --vocab N --out DIR)",
                         argc < 2 ? "" : argv[1]);
    char **pos = knob_malloc((size_t)argc * sizeof *pos);
    if (!pos)
        return knob_fail(err, KNOB_ERR_NOMEM, "out of memory");
    knob_status s = cli_parse(&spec, argc - 1, argv + 1, pos, &n_pos, &help, err);
    if (s || help) {
        knob_free(pos);
        return s;
    }
    if (!out || !out[0]) {
        knob_free(pos);
        return knob_fail(err, KNOB_ERR_USAGE, "knob bpe train: --out DIR is required");
    }
    double t0 = knob_now();
    file_list files = {0};
    for (int i = 0; i < n_pos && !s; i++) {
        struct stat st;
        if (stat(pos[i], &st) == 0 && S_ISDIR(st.st_mode))
            s = add_dir(&files, pos[i], err);
        else
            s = list_add(&files, pos[i], err);
    }
    if (!s && files.n == 0)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s%s: no text files", pos[0], n_pos > 1 ? " ..." : "");
    if (!s)
        s = cli_check_out_dir(out, "--out", err);
    knob_free(pos);
    corpus c = {0};
    knob_bpe_trainer *tr = NULL;
    if (!s) {
        c.text = knob_calloc((size_t)files.n + 1, sizeof *c.text);
        c.len = knob_calloc((size_t)files.n + 1, sizeof *c.len);
        if (!c.text || !c.len)
            s = knob_fail(err, KNOB_ERR_NOMEM, "out of memory");
    }
    if (!s)
        s = knob_bpe_trainer_new(&tr, err);
    int n_files = 0;
    for (int i = 0; i < files.n && !s; i++) {
        unsigned char *text;
        size_t len;
        if ((s = knob_read_file(files.path[i], &text, &len, err)))
            break;
        int named = 0;   /* files named on the command line are always used */
        for (int k = 0; k < argc; k++)
            named |= strcmp(argv[k], files.path[i]) == 0;
        if (!named && memchr(text, 0, len)) {
            files.n_skipped++;
            knob_free(text);
            continue;
        }
        c.text[c.n] = text;
        c.len[c.n++] = len;
        n_files++;
        if (cli_is_tty())
            fprintf(stderr, "\r  reading %d/%d files", i + 1, files.n);
        s = knob_bpe_trainer_add(tr, (const char *)text, len, err);
    }
    if (cli_is_tty())
        fputs("\r\033[K", stderr);
    knob_bpe_stats st = {0};
    size_t n_text = 0;
    for (int i = 0; i < c.n; i++)
        n_text += c.len[i];
    if (!s && n_text == 0)   /* nothing to learn from: refused before DIR is written */
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s%s: the corpus is empty (0 bytes of text)", files.path[0],
                      files.n > 1 ? " ..." : "");
    double t1 = knob_now();
    if (!s)
        s = knob_bpe_trainer_save(tr, vocab, out, &st, err);
    double t2 = knob_now();
    size_t n_tokens = 0;
    if (!s)
        s = check_round_trip(out, &c, &n_tokens, err);
    double t3 = knob_now();
    if (!s) {
        char hb[32];
        human_bytes((double)st.n_bytes, hb, sizeof hb);
        double bpt = n_tokens ? (double)st.n_bytes / (double)n_tokens : 0;
        if (json) {
            printf("{\"out\": ");
            cli_json_str(stdout, out);
            printf(", \"files\": %d, \"skipped\": %d, \"bytes\": %zu, \"words\": %zu, \"unique_words\": %zu, "
                   "\"merges\": %d, \"vocab_size\": %d, \"tokens\": %zu, \"bytes_per_token\": %.4f, "
                   "\"seconds_count\": %.3f, \"seconds_merge\": %.3f, \"seconds_check\": %.3f}\n",
                   n_files, files.n_skipped, st.n_bytes, st.n_words, st.n_unique, st.n_merges, st.vocab_size,
                   n_tokens, bpt, t1 - t0, t2 - t1, t3 - t2);
        } else {
            printf("corpus: %s in %d file%s (%d skipped), %zu pre-tokens, %zu distinct\n", hb, n_files,
                   n_files == 1 ? "" : "s", files.n_skipped, st.n_words, st.n_unique);
            printf("learned %d merges -> vocabulary of %d (256 bytes + merges + <|endoftext|>)%s\n", st.n_merges,
                   st.vocab_size, st.vocab_size < vocab ? "; no pair left that occurs twice" : "");
            printf("time: counting %.2f s, merging %.2f s, round-trip check %.2f s\n", t1 - t0, t2 - t1, t3 - t2);
            printf("the corpus encodes to %zu tokens (%.2f bytes per token) and decodes back exactly\n", n_tokens, bpt);
            printf("wrote %s/encoder.json and %s/vocab.bpe; use --tokenizer bpe:%s\n", out, out, out);
        }
    }
    knob_bpe_trainer_free(tr);
    corpus_free(&c);
    list_free(&files);
    return s;
}
