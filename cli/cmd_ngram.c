/* cmd_ngram.c: `knob ngram [CORPUS...]`: the simplest language model. Counts every k-gram of
 * letters or words (k = 1..N) in the corpus and samples text at each order, so the output shows
 * noise turning into word-like text as the context grows; `--show-probs CONTEXT` prints the most
 * likely next units after CONTEXT at each order instead.
 *
 * The corpus is files or folders (default: the fortune files, text only); in fortune files a line
 * holding only '%' separates two fortunes, so each fortune is a document of its own and no n-gram
 * spans two. The counting lives in src/text/ngram.c; this file reads, times and prints. */
#include "cli.h"

#include <string.h>

#define DEFAULT_CORPUS "/usr/share/games/fortunes"

/* Prints s with control characters other than newline and tab shown as '?', each line indented. */
static void print_block(const char *s)
{
    fputs("    ", stdout);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n') {
            fputs("\n    ", stdout);
            continue;
        }
        fputc(c < 0x20 && c != '\t' ? '?' : c, stdout);
    }
    fputc('\n', stdout);
}

/* A unit for a table cell: newline as \n, tab as \t, space as '␣'. */
static void print_unit(const char *s, size_t n, int width)
{
    int w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            w += printf("\\n");
        else if (c == '\t')
            w += printf("\\t");
        else if (c == ' ')
            w += printf("\xe2\x90\xa3"), w -= 2;   /* one column on screen */
        else if (c < 0x20 || c == 0x7f)
            w += printf("?");
        else
            w += (fputc(c, stdout), (c & 0xc0) != 0x80);
    }
    for (; w < width; w++)
        fputc(' ', stdout);
}

static void show_probs(const knob_ngram *m, const char *context, int top_k, const char *unit_name)
{
    knob_ngram_next *top = knob_malloc((size_t)top_k * sizeof *top);
    if (!top)
        return;
    printf("Most likely next %s after \"%s\", by order (P = count(context next) / count(context)):\n",
           unit_name, context);
    for (int n = 1; n <= knob_ngram_n_max(m); n++) {
        uint64_t total;
        int order;
        int got = knob_ngram_top(m, n, context, top, top_k, &total, &order);
        printf("\nn = %d", n);
        if (order == 1)
            printf(" (no context: unit frequencies%s)", n > 1 ? ", backed off" : "");
        else if (order < n)
            printf(" (backed off to n = %d: context too short or unseen)", order);
        printf(", context seen %llu times:\n", (unsigned long long)total);
        for (int i = 0; i < got; i++) {
            size_t len;
            const char *u = knob_ngram_unit(m, top[i].id, &len);
            printf("  ");
            print_unit(u, len, 14);
            printf(" %7.4f  (%llu)\n", top[i].prob, (unsigned long long)top[i].count);
        }
    }
    knob_free(top);
}

knob_status cmd_ngram(int argc, char **argv, knob_err *err)
{
    int n_max = 5, length = 0, top_k = 10, n_only = 0;
    uint64_t seed = 1;
    const char *level = "letter", *probs = NULL, *start = NULL;
    const arg_def args[] = {
        {"n", ARG_INT, &n_max, "N", 1, KNOB_NGRAM_MAX, NULL, "largest order: samples for n = 1..N"},
        {"only", ARG_BOOL, &n_only, NULL, 0, 0, NULL, "sample only at n = N"},
        {"level", ARG_CHOICE, &level, "UNIT", 0, 0, "letter|word", "count letters (UTF-8 characters) or words"},
        {"length", ARG_INT, &length, "N", 0, 100000, NULL, "units per sample (0: 240 letters or 40 words)"},
        {"seed", ARG_U64, &seed, "N", 0, 1.8446744073709552e19, NULL, "sampling seed"},
        {"start", ARG_STRING, &start, "TEXT", 0, 0, NULL, "context the samples continue, not printed (default: a line break; words: '.')"},
        {"show-probs", ARG_STRING, &probs, "CONTEXT", 0, 0, NULL,
         "print the most likely next units after CONTEXT at each order instead of samples (\"\" for none)"},
        {"top", ARG_INT, &top_k, "K", 1, 1000, NULL, "continuations --show-probs lists"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "ngram", "knob ngram [CORPUS...] [options]",
        "Count the n-grams of letters or words in CORPUS (files or folders; default: the fortune files in\n"
        DEFAULT_CORPUS ") and sample text from them at n = 1..N, drawing each unit with probability\n"
        "count(context unit) / count(context) given the previous n-1 units: noise at n = 1, word-like text\n"
        "by n = 4 or 5. In fortune files a line holding only '%' ends a fortune; n-grams never span two.",
        args, 0, -1,
    };
    int help = 0, n_pos = 0;
    char **pos = knob_malloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos);
    if (!pos)
        return knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory");
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help) {
        knob_free(pos);
        return s;
    }
    knob_ngram_level lv = strcmp(level, "word") == 0 ? KNOB_NGRAM_WORD : KNOB_NGRAM_LETTER;
    const char *unit_name = lv == KNOB_NGRAM_WORD ? "words" : "letters";
    if (length == 0)
        length = lv == KNOB_NGRAM_WORD ? 40 : 240;
    if (!start)   /* begin as after a line break or a full stop, so samples open like text does */
        start = lv == KNOB_NGRAM_WORD ? "." : "\n";
    const char *def[1] = {DEFAULT_CORPUS};
    char **files = NULL;
    int n_files = 0;
    s = n_pos ? knob_corpus_files((const char *const *)pos, n_pos, &files, &n_files, err)
              : knob_corpus_files(def, 1, &files, &n_files, err);
    const char *name = n_pos ? pos[0] : DEFAULT_CORPUS, *more = n_pos > 1 ? " ..." : "";
    knob_free(pos);   /* name points into argv, not into pos */
    if (s)
        return s;

    double t0 = knob_now();
    knob_ngram *m = NULL;
    size_t bytes = 0;
    s = knob_ngram_new(&m, n_max, lv, err);
    for (int i = 0; i < n_files && !s; i++) {
        unsigned char *text;
        size_t len;
        if ((s = knob_read_file(files[i], &text, &len, err)))
            break;
        bytes += len;
        s = knob_ngram_add_fortunes(m, (const char *)text, len, err);
        knob_free(text);
    }
    if (!s && (s = knob_ngram_build(m, err)) && s == KNOB_ERR_USAGE)
        s = knob_fail(err, KNOB_ERR_USAGE, "%s%s: no %s to count", name, more, unit_name);
    double secs = knob_now() - t0;
    if (!s) {
        printf("%s%s: %d file%s, %.2f MB, %zu %s (%d distinct); counted 1- to %d-grams in %.2f s\n", name, more,
               n_files, n_files == 1 ? "" : "s", (double)bytes / 1e6, knob_ngram_n_tokens(m),
               unit_name, knob_ngram_vocab_size(m), n_max, secs);
        if (probs) {
            printf("\n");
            show_probs(m, probs, top_k, unit_name);
        } else {
            knob_rng r;
            for (int n = n_only ? n_max : 1; n <= n_max && !s; n++) {
                char *text;
                knob_rng_seed(&r, seed);
                if ((s = knob_ngram_sample(m, n, length, start, &r, &text, err)))
                    break;
                const char *u = lv == KNOB_NGRAM_WORD ? "word" : "letter";
                if (n == 1)
                    printf("\nn = 1 (%zu distinct %ss; each drawn by its frequency alone):\n",
                           knob_ngram_n_distinct(m, 1), u);
                else
                    printf("\nn = %d (%zu distinct %d-grams; each %s drawn given the previous %d):\n", n,
                           knob_ngram_n_distinct(m, n), n, u, n - 1);
                print_block(text);
                knob_free(text);
            }
        }
    }
    knob_ngram_free(m);
    knob_corpus_files_free(files, n_files);
    return s;
}
