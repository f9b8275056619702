/* test_ngram.c: n-gram counts and probabilities on tiny corpora counted by hand, document
 * boundaries, back-off, UTF-8 units, word splitting and joining, sampling frequencies against the
 * counts, and sampling determinism. */
#include "test.h"

static knob_ngram *build(int n, knob_ngram_level level, const char *const *docs, int n_docs)
{
    knob_err err = {KNOB_OK, ""};
    knob_ngram *m = NULL;
    CHECK_OK(knob_ngram_new(&m, n, level, &err));
    for (int i = 0; m && i < n_docs; i++)
        CHECK_OK(knob_ngram_add_text(m, docs[i], strlen(docs[i]), &err));
    if (m)
        CHECK_OK(knob_ngram_build(m, &err));
    return m;
}

static uint64_t count_of(const knob_ngram *m, const char *text)
{
    knob_err err = {KNOB_OK, ""};
    uint64_t c = 99;
    CHECK_OK(knob_ngram_count(m, text, &c, &err));
    return c;
}

static const char *unit(const knob_ngram *m, int id)
{
    static char buf[64];
    size_t n = 0;
    const char *s = knob_ngram_unit(m, id, &n);
    snprintf(buf, sizeof buf, "%.*s", s ? (int)n : 0, s ? s : "");
    return buf;
}

/* Documents "abab" and "abc", by hand:
 *   1-grams a 3, b 3, c 1 (7)        2-grams ab 3, ba 1, bc 1 (no "ba" across the boundary)
 *   3-grams aba 1, bab 1, abc 1      P(b | a) = 1, P(a | b) = P(c | b) = 1/2, P(a | ab) = P(c | ab) = 1/2 */
TEST(ngram_letter_counts_by_hand)
{
    const char *docs[2] = {"abab", "abc"};
    knob_ngram *m = build(3, KNOB_NGRAM_LETTER, docs, 2);
    if (!m)
        return;
    CHECK(knob_ngram_vocab_size(m) == 3);
    CHECK(knob_ngram_n_tokens(m) == 7);
    CHECK(knob_ngram_n_distinct(m, 1) == 3);
    CHECK(knob_ngram_n_distinct(m, 2) == 3);
    CHECK(knob_ngram_n_distinct(m, 3) == 3);
    CHECK(count_of(m, "a") == 3 && count_of(m, "b") == 3 && count_of(m, "c") == 1);
    CHECK(count_of(m, "ab") == 3 && count_of(m, "ba") == 1 && count_of(m, "bc") == 1);
    CHECK(count_of(m, "ca") == 0 && count_of(m, "zz") == 0);
    CHECK(count_of(m, "aba") == 1 && count_of(m, "abc") == 1 && count_of(m, "bca") == 0);
    knob_err err = {KNOB_OK, ""};
    uint64_t c;
    CHECK_FAILS_WITH(knob_ngram_count(m, "abab", &c, &err), KNOB_ERR_USAGE, "1 to 3");

    knob_ngram_next top[8];
    uint64_t total;
    int order;
    int n = knob_ngram_top(m, 1, "", top, 8, &total, &order);
    CHECK(n == 3 && order == 1 && total == 7);
    CHECK(top[0].count == 3 && top[1].count == 3 && top[2].count == 1);
    CHECK(strcmp(unit(m, top[0].id), "a") == 0);   /* tie a/b broken by id: a came first */
    CHECK_NEAR(top[0].prob, 3.0 / 7, 1e-12, 0);
    CHECK_NEAR(top[2].prob, 1.0 / 7, 1e-12, 0);

    n = knob_ngram_top(m, 2, "xa", top, 8, &total, &order);   /* only the last unit matters */
    CHECK(n == 1 && order == 2 && total == 3 && strcmp(unit(m, top[0].id), "b") == 0 && top[0].prob == 1.0);
    n = knob_ngram_top(m, 2, "b", top, 8, &total, &order);
    CHECK(n == 2 && total == 2 && top[0].prob == 0.5 && top[1].prob == 0.5);
    n = knob_ngram_top(m, 3, "ab", top, 8, &total, &order);
    CHECK(n == 2 && order == 3 && total == 2);
    CHECK(strcmp(unit(m, top[0].id), "a") == 0 && strcmp(unit(m, top[1].id), "c") == 0);
    /* "bc" is never continued and "c" neither: back off to order 1 */
    n = knob_ngram_top(m, 3, "bc", top, 2, &total, &order);
    CHECK(n == 2 && order == 1 && total == 7);
    /* a context with an unknown unit backs off the same way */
    n = knob_ngram_top(m, 3, "qb", top, 8, &total, &order);
    CHECK(n == 2 && order == 2 && total == 2);
    knob_ngram_free(m);
}

/* Words: "the cat sat. the cat ran!" -> the cat sat . the cat ran ! */
TEST(ngram_word_counts_and_joining)
{
    const char *docs[1] = {"The cat sat.\n  the cat ran!"};
    knob_ngram *m = build(2, KNOB_NGRAM_WORD, docs, 1);
    if (!m)
        return;
    CHECK(knob_ngram_n_tokens(m) == 8);
    CHECK(knob_ngram_vocab_size(m) == 7);   /* The, cat, sat, ., the, ran, ! (case kept) */
    CHECK(count_of(m, "cat") == 2 && count_of(m, "the cat") == 1 && count_of(m, "The cat") == 1);
    CHECK(count_of(m, "sat .") == 1 && count_of(m, "sat.") == 1);   /* the query is split the same way */
    knob_ngram_next top[4];
    uint64_t total;
    int order;
    int n = knob_ngram_top(m, 2, "a black cat", top, 4, &total, &order);
    CHECK(n == 2 && order == 2 && total == 2 && top[0].prob == 0.5);
    /* sampling at n = 2 from "the": "the cat" then sat or ran, joined without a space before '.' */
    knob_rng r;
    knob_rng_seed(&r, 3);
    knob_err err = {KNOB_OK, ""};
    char *text;
    CHECK_OK(knob_ngram_sample(m, 2, 2, "the", &r, &text, &err));
    CHECK(text && (strcmp(text, "cat sat") == 0 || strcmp(text, "cat ran") == 0));
    knob_free(text);
    CHECK_OK(knob_ngram_sample(m, 2, 3, "cat", &r, &text, &err));
    CHECK(text && (strncmp(text, "sat. the", 8) == 0 || strncmp(text, "ran!", 4) == 0));
    CHECK(text && !strstr(text, " .") && !strstr(text, " !"));
    knob_free(text);
    knob_ngram_free(m);
}

/* UTF-8 characters are one letter each; an invalid byte is a letter of its own. */
TEST(ngram_utf8_letters)
{
    const char *docs[1] = {"h\xc3\xa9\xc3\xa9\xff!"};
    knob_ngram *m = build(2, KNOB_NGRAM_LETTER, docs, 1);
    if (!m)
        return;
    CHECK(knob_ngram_n_tokens(m) == 5);
    CHECK(knob_ngram_vocab_size(m) == 4);
    CHECK(count_of(m, "\xc3\xa9") == 2);
    CHECK(count_of(m, "\xc3\xa9\xc3\xa9") == 1);
    CHECK(count_of(m, "\xff") == 1);
    knob_ngram_free(m);
}

/* Sampling follows the counts: order 1 frequencies approach 3/7, 3/7, 1/7; order 2 never puts
 * anything but b after a; same seed, same text; another seed, another text. */
TEST(ngram_sampling_follows_counts_and_is_seeded)
{
    const char *docs[2] = {"abab", "abc"};
    knob_ngram *m = build(3, KNOB_NGRAM_LETTER, docs, 2);
    if (!m)
        return;
    knob_err err = {KNOB_OK, ""};
    knob_rng r;
    knob_rng_seed(&r, 42);
    char *text;
    int N = 70000;
    CHECK_OK(knob_ngram_sample(m, 1, N, NULL, &r, &text, &err));
    if (!text)
        return;
    int na = 0, nc = 0;
    for (int i = 0; i < N; i++) {
        na += text[i] == 'a';
        nc += text[i] == 'c';
    }
    CHECK((int)strlen(text) == N);
    CHECK_NEAR(na / (double)N, 3.0 / 7, 0, 0.01);   /* sd of the mean ~0.002 */
    CHECK_NEAR(nc / (double)N, 1.0 / 7, 0, 0.01);
    knob_free(text);

    CHECK_OK(knob_ngram_sample(m, 2, 500, "a", &r, &text, &err));
    CHECK(text && text[0] == 'b');
    for (int i = 0; text && text[i + 1]; i++)
        if (text[i] == 'a' && text[i + 1] != 'b')
            CHECK(!"order 2 put something other than b after a");
    knob_free(text);

    char *a, *b, *c;
    knob_rng_seed(&r, 7);
    CHECK_OK(knob_ngram_sample(m, 3, 200, NULL, &r, &a, &err));
    knob_rng_seed(&r, 7);
    CHECK_OK(knob_ngram_sample(m, 3, 200, NULL, &r, &b, &err));
    knob_rng_seed(&r, 8);
    CHECK_OK(knob_ngram_sample(m, 3, 200, NULL, &r, &c, &err));
    CHECK(a && b && c && strcmp(a, b) == 0 && strcmp(a, c) != 0);
    knob_free(a);
    knob_free(b);
    knob_free(c);
    knob_ngram_free(m);
}

TEST(ngram_errors)
{
    knob_err err = {KNOB_OK, ""};
    knob_ngram *m;
    CHECK_FAILS_WITH(knob_ngram_new(&m, 7, KNOB_NGRAM_LETTER, &err), KNOB_ERR_USAGE, "n 7 is out of range [1, 6]");
    CHECK_FAILS_WITH(knob_ngram_new(&m, 0, KNOB_NGRAM_LETTER, &err), KNOB_ERR_USAGE, "out of range");
    CHECK_OK(knob_ngram_new(&m, 2, KNOB_NGRAM_WORD, &err));
    CHECK_OK(knob_ngram_add_text(m, "  \n\t ", 5, &err));
    CHECK_FAILS_WITH(knob_ngram_build(m, &err), KNOB_ERR_USAGE, "the corpus has no words");
    CHECK_OK(knob_ngram_add_text(m, "hi", 2, &err));
    CHECK_OK(knob_ngram_build(m, &err));
    CHECK_FAILS_WITH(knob_ngram_add_text(m, "x", 1, &err), KNOB_ERR_USAGE, "after knob_ngram_build");
    knob_rng r;
    knob_rng_seed(&r, 1);
    char *t;
    CHECK_FAILS_WITH(knob_ngram_sample(m, 3, 5, NULL, &r, &t, &err), KNOB_ERR_USAGE, "order 3 is out of range");
    knob_ngram_free(m);
    knob_ngram_free(NULL);
}

/* Every allocation failure while counting is a clean status (and no leak under ASan). */
TEST(ngram_allocation_failures)
{
    const char *text = "the quick brown fox jumps over the lazy dog and the quick cat";
    knob_err err = {KNOB_OK, ""};
    int ok = 0;
    for (long k = 1; k < 2000 && !ok; k++) {
        knob_ngram *m = NULL;
        knob_alloc_fail_at(k);
        knob_status s = knob_ngram_new(&m, 4, KNOB_NGRAM_LETTER, &err);
        if (!s)
            s = knob_ngram_add_text(m, text, strlen(text), &err);
        if (!s)
            s = knob_ngram_build(m, &err);
        knob_alloc_fail_at(0);
        if (s)
            CHECK(s == KNOB_ERR_NOMEM && err.msg[0]);
        ok = s == KNOB_OK;
        knob_ngram_free(m);
    }
    CHECK(ok);
}
