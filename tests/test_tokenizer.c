/* test_tokenizer.c: the tokenizers.
 *
 * GPT-2 BPE against reference ids (tests/data/tokenizer_cases.txt, written by
 * scripts/dev/gpt2_expected_ids.mjs from js-tiktoken, an independent implementation), hand-derived
 * ids (GPT-2's byte alphabet, <|endoftext|>), round trips of random byte strings (invalid UTF-8 of
 * every kind) and random valid UTF-8, long inputs that a quadratic merge loop could not finish, and
 * hand-made BPE files: merge order worked out by hand (including a file where encoder.py's
 * one-rank-at-a-time rule matters) and one test per malformed-file rule. Then the byte and char
 * tokenizers, descriptions, UTF-8 helpers, llm.c tokenizer files, the BPE trainer (merges derived
 * by hand for a tiny corpus) and allocation failures. GPT-2 tests SKIP when data/gpt2 is absent. */
#include "test.h"

#include <sys/stat.h>

/* ------------------------------------------------------------------------------------------------
 * Helpers */

static knob_tokenizer *gpt2_or_skip(void)
{
    char dir[4096], path[4200];
    knob_data_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/gpt2/encoder.json", dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return NULL;
    knob_err err;
    knob_tokenizer *t = NULL;
    CHECK_OK(knob_tok_load_gpt2(&t, &err));
    return t;
}

#define GPT2_OR_SKIP(t)                                                                       \
    knob_tokenizer *t = gpt2_or_skip();                                                       \
    if (!t) {                                                                                 \
        if (!test_failed_now)                                                                 \
            SKIP("data/gpt2/encoder.json is absent (scripts/setup.sh fetches it)");           \
        return;                                                                               \
    }

static int write_text(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* encode, check the ids, decode, check the bytes come back */
static int encodes_to(const knob_tokenizer *t, const char *s, size_t n, int allow_special, const int32_t *want,
                      size_t n_want)
{
    knob_err err;
    int32_t *ids;
    size_t n_ids;
    if (knob_tok_encode(t, s, n, allow_special, &ids, &n_ids, &err)) {
        test_fail_at(__FILE__, __LINE__, "encode failed: %s", err.msg);
        return 0;
    }
    int ok = n_ids == n_want && (n_ids == 0 || memcmp(ids, want, n_ids * sizeof *ids) == 0);
    if (!ok) {
        char got[256] = "", exp[256] = "";
        for (size_t i = 0, k = 0; i < n_ids && k < 200; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, " %d", (int)ids[i]);
        for (size_t i = 0, k = 0; i < n_want && k < 200; i++)
            k += (size_t)snprintf(exp + k, sizeof exp - k, " %d", (int)want[i]);
        test_fail_at(__FILE__, __LINE__, "'%.40s': ids%s, want%s", s, got, exp);
    }
    knob_free(ids);
    return ok;
}

static int round_trips(const knob_tokenizer *t, const char *s, size_t n)
{
    knob_err err;
    int32_t *ids;
    size_t n_ids, len;
    char *back;
    if (knob_tok_encode(t, s, n, 0, &ids, &n_ids, &err) != KNOB_OK)
        return 0;
    knob_status st = knob_tok_decode(t, ids, n_ids, &back, &len, &err);
    knob_free(ids);
    if (st)
        return 0;
    int ok = len == n && memcmp(back, s, n) == 0;
    knob_free(back);
    return ok;
}

/* ------------------------------------------------------------------------------------------------
 * GPT-2 BPE */

/* "\\" -> '\', "\xNN" -> byte; returns the length */
static size_t unescape(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\\') {
            out[k++] = '\\';
            i++;
        } else if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x') {
            char hex[3] = {s[i + 2], s[i + 3], 0};
            out[k++] = (char)strtol(hex, NULL, 16);
            i += 3;
        } else {
            out[k++] = s[i];
        }
    }
    return k;
}

TEST(tok_gpt2_matches_reference_ids)
{
    GPT2_OR_SKIP(t);
    knob_err err;
    unsigned char *file;
    size_t len;
    CHECK_OK(knob_read_file("tests/data/tokenizer_cases.txt", &file, &len, &err));
    if (test_failed_now) {
        knob_tok_free(t);
        return;
    }
    char *text = malloc(len + 1);
    int32_t *want = malloc((len + 1) * sizeof *want);
    int n_cases = 0, n_bad = 0;
    for (char *line = (char *)file; line < (char *)file + len;) {
        char *end = strchr(line, '\n');
        if (!end)
            end = (char *)file + len;
        *end = 0;
        char *tab = strchr(line, '\t');
        if (line[0] != '#' && tab) {
            size_t n = unescape(line, (size_t)(tab - line), text);
            size_t n_want = 0;
            for (char *p = tab + 1; *p;) {
                char *q;
                long v = strtol(p, &q, 10);
                if (q == p)
                    break;
                want[n_want++] = (int32_t)v;
                p = q;
            }
            n_cases++;
            if (!encodes_to(t, text, n, 0, want, n_want) && ++n_bad > 5)
                break;
            CHECK(round_trips(t, text, n));
        }
        line = end + 1;
    }
    CHECK(n_cases >= 300);
    free(text);
    free(want);
    knob_free(file);
    knob_tok_free(t);
}

/* GPT-2's byte tokens: the 188 printable bytes ('!'..'~', 0xa1..0xac, 0xae..0xff) in byte order take
 * ids 0..187, then the other 68 bytes in byte order: 0x00 -> 188, ' ' (0x20) -> 188 + 32 = 220. */
TEST(tok_gpt2_byte_ids_and_special)
{
    GPT2_OR_SKIP(t);
    CHECK(knob_tok_vocab_size(t) == 50257);
    CHECK(knob_tok_eot(t) == 50256);
    CHECK(knob_tok_kind_of(t) == KNOB_TOK_BPE);
    size_t l;
    const char *p = knob_tok_piece(t, 0, &l);
    CHECK(p && l == 1 && p[0] == '!');
    p = knob_tok_piece(t, 188, &l);
    CHECK(p && l == 1 && p[0] == 0);
    p = knob_tok_piece(t, 220, &l);
    CHECK(p && l == 1 && p[0] == ' ');
    p = knob_tok_piece(t, 187, &l);
    CHECK(p && l == 1 && (unsigned char)p[0] == 0xff);
    p = knob_tok_piece(t, 50256, &l);
    CHECK(p && l == 13 && memcmp(p, "<|endoftext|>", 13) == 0);
    CHECK(knob_tok_piece(t, 50257, &l) == NULL && knob_tok_piece(t, -1, &l) == NULL);
    /* 'a' = 0x61 is printable number 0x61 - 0x21 = 64 */
    const char *s = "a<|endoftext|>b";
    CHECK(encodes_to(t, s, strlen(s), 1, (const int32_t[]){64, 50256, 65}, 3));
    /* as plain text the special string is "<", "|", "endoftext", "|>"-like pieces, never 50256 */
    knob_err err;
    int32_t *ids;
    size_t n_ids;
    CHECK_OK(knob_tok_encode(t, s, strlen(s), 0, &ids, &n_ids, &err));
    for (size_t i = 0; i < n_ids; i++)
        CHECK(ids[i] != 50256);
    CHECK(n_ids > 3);
    knob_free(ids);
    CHECK(round_trips(t, s, strlen(s)));
    /* back to back, at the ends */
    s = "<|endoftext|><|endoftext|>";
    CHECK(encodes_to(t, s, strlen(s), 1, (const int32_t[]){50256, 50256}, 2));
    /* empty input: no ids */
    CHECK(encodes_to(t, "", 0, 1, NULL, 0));
    knob_tok_free(t);
}

/* Invalid UTF-8 is kept: each run of invalid bytes is a pre-token of its own. 0xff alone is byte
 * token 187; the valid text after it encodes as it would alone. */
TEST(tok_gpt2_invalid_utf8_runs)
{
    GPT2_OR_SKIP(t);
    knob_err err;
    int32_t *alone, *ids;
    size_t n_alone, n_ids;
    CHECK_OK(knob_tok_encode(t, "hello", 5, 0, &alone, &n_alone, &err));
    CHECK_OK(knob_tok_encode(t, "\xffhello", 6, 0, &ids, &n_ids, &err));
    CHECK(n_ids == n_alone + 1 && ids[0] == 187 && memcmp(ids + 1, alone, n_alone * sizeof *ids) == 0);
    knob_free(ids);
    knob_free(alone);
    const char *cases[] = {"\xc3", "\xc3(", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\xf8\x88\x80\x80\x80",
                           "\x80\x80\x80", "ab\xfe\xff cd", "\xf4\x90\x80\x80", " \xff "};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(round_trips(t, cases[i], strlen(cases[i])));
    CHECK(round_trips(t, "\x00\x00\xff", 3));
    knob_tok_free(t);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random bytes (biased towards the troublesome ones) and random valid UTF-8 all round-trip. */
TEST(tok_gpt2_random_round_trip)
{
    GPT2_OR_SKIP(t);
    knob_tokenizer *b;
    knob_err err;
    CHECK_OK(knob_tok_new_byte(&b, &err));
    static const unsigned char special[] = {0x00, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4,
                                            0xf5, 0xff, ' ', '\n', '\t', '\'', 's', 'a', '1', '!', 0xa0, 0x85};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    char buf[96];
    int bad = 0;
    for (int k = 0; k < 3000 && bad < 5; k++) {
        size_t n = rng_next(&seed) % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rng_next(&seed);
            buf[i] = (char)(r % 3 ? special[(r >> 8) % sizeof special] : (unsigned char)(r >> 16));
        }
        if (!round_trips(t, buf, n) || !round_trips(b, buf, n)) {
            bad++;
            test_fail_at(__FILE__, __LINE__, "random bytes case %d (%zu bytes) does not round-trip", k, n);
        }
    }
    /* valid UTF-8: random code points from every length class, surrogates excluded */
    for (int k = 0; k < 1500 && bad < 5; k++) {
        size_t n = 0, want = rng_next(&seed) % 80;
        while (n + 4 <= want) {
            uint64_t r = rng_next(&seed);
            uint32_t cls = r % 4, cp;
            cp = cls == 0 ? (uint32_t)(r >> 8) % 0x80 : cls == 1 ? 0x80 + (uint32_t)(r >> 8) % 0x780
                 : cls == 2 ? 0x800 + (uint32_t)(r >> 8) % 0xf800 : 0x10000 + (uint32_t)(r >> 8) % 0x100000;
            if (cp >= 0xd800 && cp <= 0xdfff)
                continue;
            n += (size_t)knob_utf8_encode(cp, (unsigned char *)buf + n);
        }
        if (!round_trips(t, buf, n)) {
            bad++;
            test_fail_at(__FILE__, __LINE__, "random UTF-8 case %d (%zu bytes) does not round-trip", k, n);
        }
    }
    knob_tok_free(b);
    knob_tok_free(t);
}

/* 1 MB without a break is one pre-token; merging it must not be quadratic (encoder.py's loop would
 * take hours). Spaces, digits, punctuation and newlines each make one long pre-token too. */
TEST(tok_gpt2_long_inputs_fast)
{
    GPT2_OR_SKIP(t);
    size_t n = 1 << 20;
    char *s = malloc(n);
    const char fill[] = {'a', ' ', '7', '!', '\n'};
    for (size_t f = 0; f < sizeof fill; f++) {
        size_t m = f == 0 ? n : n / 4;   /* 1 MB of letters, 256 kB of the other classes */
        memset(s, fill[f], m);
        double t0 = knob_now();
        CHECK(round_trips(t, s, m));
        double dt = knob_now() - t0;
        if (dt > 10)
            test_fail_at(__FILE__, __LINE__, "%zu bytes of '%c' took %.1f s", m, fill[f] == '\n' ? 'n' : fill[f], dt);
    }
    free(s);
    knob_tok_free(t);
}

/* ------------------------------------------------------------------------------------------------
 * Hand-made BPE files */

/* encoder.json with the 256 byte tokens (ids in alphabet order, as GPT-2's) plus extra tokens
 * (given as bytes), then <|endoftext|>; returns the id of the first extra. */
static int write_encoder(const char *path, const char *const *extra, int n_extra)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int id = 0;
    fputc('{', f);
    for (uint32_t cp = 0; cp < 256 + 68; cp++) {
        if (knob_bpe_cp_to_byte(cp) < 0)
            continue;
        fprintf(f, "%s\"", id ? ", " : "");
        if (cp == '"' || cp == '\\')
            fprintf(f, "\\%c", cp);
        else
            fprintf(f, "\\u%04x", cp);
        fprintf(f, "\": %d", id++);
    }
    int first = id;
    for (int i = 0; i < n_extra; i++) {
        fputs(", \"", f);
        for (const char *p = extra[i]; *p; p++)
            fprintf(f, "\\u%04x", knob_bpe_byte_to_cp((unsigned char)*p));
        fprintf(f, "\": %d", id++);
    }
    fprintf(f, ", \"<|endoftext|>\": %d}", id);
    fclose(f);
    return first;
}

/* tokens a, b as in the alphabet (ASCII letters are themselves) */
static knob_status load_small(knob_tokenizer **t, const char *const *extra, int n_extra, const char *merges,
                              knob_err *err)
{
    char enc[512], voc[512];
    snprintf(enc, sizeof enc, "%s/encoder.json", test_tmpdir());
    snprintf(voc, sizeof voc, "%s/vocab.bpe", test_tmpdir());
    KNOB_ASSERT(write_encoder(enc, extra, n_extra) == 256);
    KNOB_ASSERT(write_text(voc, merges, strlen(merges)));
    return knob_tok_load_bpe(t, enc, voc, err);
}

/* Merge order worked out by hand with encoder.py's rule: merge every occurrence of the lowest-rank
 * pair, left to right, then look again. Letters: 'a' = 64, 'b' = 65, 'c' = 66. */
TEST(tok_bpe_merge_order_by_hand)
{
    knob_err err;
    knob_tokenizer *t;
    /* ids: ab 256, aa 257, aaaa 258, bc 259, aba 260 */
    const char *extra[] = {"ab", "aa", "aaaa", "bc", "aba"};
    CHECK_OK(load_small(&t, extra, 5, "#version: 0.2\nab a\na b\na a\naa aa\nb c\n", &err));
    if (test_failed_now)
        return;
    CHECK(knob_tok_vocab_size(t) == 262 && knob_tok_eot(t) == 261);
    /* "abab": rank 1 (a b) twice -> ab ab; (ab, ab) is no merge. The pair (ab, a) has the lower rank
     * 0, but encoder.py merges all of rank 1 first, so it never forms. */
    CHECK(encodes_to(t, "abab", 4, 0, (const int32_t[]){256, 256}, 2));
    /* "aba": (a b) -> ab a; then (ab a) rank 0 -> aba */
    CHECK(encodes_to(t, "aba", 3, 0, (const int32_t[]){260}, 1));
    /* "aaa": (a a) leftmost first -> aa a */
    CHECK(encodes_to(t, "aaa", 3, 0, (const int32_t[]){257, 64}, 2));
    /* "aaaaa": aa aa a -> (aa aa) -> aaaa a */
    CHECK(encodes_to(t, "aaaaa", 5, 0, (const int32_t[]){258, 64}, 2));
    /* "abc": (a b) rank 1 beats (b c) rank 4 -> ab c */
    CHECK(encodes_to(t, "abc", 3, 0, (const int32_t[]){256, 66}, 2));
    /* " ab": the space is its own byte token 220 (' ' ?\p{L}+ keeps it in the pre-token) */
    CHECK(encodes_to(t, " ab", 3, 0, (const int32_t[]){220, 256}, 2));
    knob_tok_free(t);
}

TEST(tok_bpe_malformed_files)
{
    knob_err err;
    knob_tokenizer *t = NULL;
    char enc[512], voc[512];
    snprintf(enc, sizeof enc, "%s/encoder.json", test_tmpdir());
    snprintf(voc, sizeof voc, "%s/vocab.bpe", test_tmpdir());
    const char *ab[] = {"ab"};
    /* merges */
    CHECK_FAILS_WITH(load_small(&t, ab, 1, "#version: 0.2\na x y\n", &err), KNOB_ERR_FORMAT, "vocab.bpe:2: expected two tokens");
    CHECK_FAILS_WITH(load_small(&t, ab, 1, "#version: 0.2\nab\n", &err), KNOB_ERR_FORMAT, "expected two tokens");
    CHECK_FAILS_WITH(load_small(&t, ab, 1, "#version: 0.2\na b\nab zz\n", &err), KNOB_ERR_FORMAT,
                     "vocab.bpe:3: \"zz\" (used by this merge) is not in the vocabulary");
    CHECK_FAILS_WITH(load_small(&t, ab, 1, "#version: 0.2\na b\nb a\n", &err), KNOB_ERR_FORMAT,
                     "vocab.bpe:3: \"ba\" (made by this merge) is not in the vocabulary");
    CHECK_FAILS_WITH(load_small(&t, ab, 1, "#version: 0.2\na b\na b\n", &err), KNOB_ERR_FORMAT, "appears twice");
    CHECK_FAILS_WITH(load_small(&t, ab, 1, "#version: 0.2\na \xe2\x82\xac\n", &err), KNOB_ERR_FORMAT, "outside GPT-2's byte alphabet");
    CHECK_FAILS_WITH(load_small(&t, ab, 1, "#version: 0.2\na \xff\n", &err), KNOB_ERR_FORMAT, "invalid UTF-8");
    CHECK(t == NULL);
    /* a good pair loads */
    CHECK_OK(load_small(&t, ab, 1, "#version: 0.2\na b\n", &err));
    knob_tok_free(t);
    t = NULL;
    /* encoder.json */
    unsigned char *good;
    size_t len;
    CHECK_OK(knob_read_file(enc, &good, &len, &err));
    struct { const char *text, *want; } bad[] = {
        {"", "truncated at byte 0"},
        {"{", "truncated at byte 1"},
        {"{}", "no tokens"},
        {"[1]", "expected '{'"},
        {"{\"a\": 0, \"a\": 1}", "appears twice"},
        {"{\"a\": 0, \"b\": 0}", "id 0 is given twice"},
        {"{\"a\": 0, \"b\": 5}", "outside [0, 2)"},
        {"{\"a\": 0.5}", "not an integer"},
        {"{\"a\": -1}", "not an integer"},
        {"{\"a\": 0}", "no token for byte"},
        {"{\"\": 0}", "empty token"},
        {"{\"\\u20ac\": 0}", "outside GPT-2's byte alphabet"},
        {"{\"\\ud800\": 0}", "lone surrogate"},
        {"{\"a\" 0}", "expected ':'"},
        {"{\"a\": 0} x", "text after the closing"},
        {"{\"a\": 0,", "truncated"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        KNOB_ASSERT(write_text(enc, bad[i].text, strlen(bad[i].text)));
        CHECK_FAILS_WITH(knob_tok_load_bpe(&t, enc, voc, &err), KNOB_ERR_FORMAT, bad[i].want);
        CHECK(strstr(err.msg, enc) != NULL);
    }
    /* every truncation of a good file fails cleanly (or, cut after the closing brace, loads) */
    for (size_t cut = 0; cut < len; cut += 97) {
        KNOB_ASSERT(write_text(enc, good, cut));
        knob_status s = knob_tok_load_bpe(&t, enc, voc, &err);
        CHECK(s == KNOB_ERR_FORMAT && strchr(err.msg, '\n') == NULL);
    }
    /* random byte corruptions of both files: a clean load or a one-line format error, never a crash */
    unsigned char *vgood;
    size_t vlen;
    KNOB_ASSERT(write_text(enc, good, len));
    CHECK_OK(knob_read_file(voc, &vgood, &vlen, &err));
    unsigned char *bad2 = malloc(len + vlen);
    uint64_t seed = 7;
    for (int k = 0; k < 300; k++) {
        int which = k & 1;
        size_t n = which ? vlen : len;
        memcpy(bad2, which ? vgood : good, n);
        for (int j = 0; j < 3; j++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            bad2[(seed >> 33) % n] = (unsigned char)(seed >> 17);
        }
        KNOB_ASSERT(write_text(which ? voc : enc, bad2, n));
        knob_status s = knob_tok_load_bpe(&t, enc, voc, &err);
        if (s == KNOB_OK) {
            CHECK(round_trips(t, "ab ba \xff", 6));
            knob_tok_free(t);
        } else {
            CHECK(s == KNOB_ERR_FORMAT && strchr(err.msg, '\n') == NULL);
        }
        KNOB_ASSERT(write_text(which ? voc : enc, which ? vgood : good, n));
    }
    free(bad2);
    knob_free(vgood);
    knob_free(good);
    CHECK_FAILS_WITH(knob_tok_load_bpe(&t, "/nonexistent/encoder.json", voc, &err), KNOB_ERR_IO, "/nonexistent/encoder.json");
    CHECK(t == NULL);
}

/* ------------------------------------------------------------------------------------------------
 * Byte and char tokenizers, descriptions */

TEST(tok_byte)
{
    knob_err err;
    knob_tokenizer *t;
    CHECK_OK(knob_tok_new_byte(&t, &err));
    CHECK(knob_tok_vocab_size(t) == 256 && knob_tok_eot(t) == -1 && knob_tok_kind_of(t) == KNOB_TOK_BYTE);
    CHECK(encodes_to(t, "A\x00\xff", 3, 1, (const int32_t[]){65, 0, 255}, 3));
    char *d;
    CHECK_OK(knob_tok_describe(t, &d, &err));
    CHECK(strcmp(d, "byte") == 0);
    knob_free(d);
    knob_tok_free(t);
}

TEST(tok_char)
{
    knob_err err;
    knob_tokenizer *t;
    CHECK_OK(knob_tok_new_char(&t, "hello", 5, &err));
    CHECK(knob_tok_vocab_size(t) == 4 && knob_tok_kind_of(t) == KNOB_TOK_CHAR);
    /* vocabulary e h l o */
    CHECK(encodes_to(t, "hello", 5, 0, (const int32_t[]){1, 0, 2, 2, 3}, 5));
    CHECK_FAILS_WITH(knob_tok_encode(t, "hex", 3, 0, &(int32_t *){NULL}, &(size_t){0}, &err), KNOB_ERR_FORMAT,
                     "character 'x' (U+0078) at byte 2 is not in the vocabulary");
    CHECK_FAILS_WITH(knob_tok_encode(t, "h\xffl", 3, 0, &(int32_t *){NULL}, &(size_t){0}, &err), KNOB_ERR_FORMAT,
                     "invalid UTF-8 at byte 1");
    knob_tok_free(t);
    /* multi-byte characters, sorted by code point; description round trip with characters JSON escapes */
    const char *text = "b\"a\\\n\t\xc3\xa9\xf0\x9f\x91\x8d\x01 \xe6\x97\xa5";
    CHECK_OK(knob_tok_new_char(&t, text, strlen(text), &err));
    CHECK(knob_tok_vocab_size(t) == 11);
    size_t l;
    const char *p = knob_tok_piece(t, 10, &l);   /* the largest code point: U+1F44D */
    CHECK(p && l == 4 && memcmp(p, "\xf0\x9f\x91\x8d", 4) == 0);
    p = knob_tok_piece(t, 0, &l);   /* U+0001 */
    CHECK(p && l == 1 && p[0] == 1);
    char *d;
    CHECK_OK(knob_tok_describe(t, &d, &err));
    CHECK(strncmp(d, "char:\"", 6) == 0 && strchr(d, '\n') == NULL);
    knob_tokenizer *t2;
    CHECK_OK(knob_tok_from_desc(&t2, d, &err));
    CHECK(knob_tok_vocab_size(t2) == 11);
    for (int id = 0; id < 11; id++) {
        size_t l1, l2;
        const char *p1 = knob_tok_piece(t, id, &l1), *p2 = knob_tok_piece(t2, id, &l2);
        CHECK(l1 == l2 && memcmp(p1, p2, l1) == 0);
    }
    CHECK(round_trips(t2, text, strlen(text)));
    knob_free(d);
    knob_tok_free(t2);
    knob_tok_free(t);
    CHECK_FAILS_WITH(knob_tok_new_char(&t, "ab\xc3", 3, &err), KNOB_ERR_FORMAT, "not valid UTF-8 at byte 2");
    CHECK_FAILS_WITH(knob_tok_new_char(&t, "", 0, &err), KNOB_ERR_USAGE, "empty");
}

TEST(tok_descriptions)
{
    knob_err err;
    knob_tokenizer *t;
    CHECK_FAILS_WITH(knob_tok_from_desc(&t, "gpt3", &err), KNOB_ERR_USAGE, "unknown tokenizer 'gpt3'");
    CHECK_FAILS_WITH(knob_tok_from_desc(&t, "char:abc", &err), KNOB_ERR_FORMAT, "JSON string");
    CHECK_FAILS_WITH(knob_tok_from_desc(&t, "char:\"ba\"", &err), KNOB_ERR_FORMAT, "sorted");
    CHECK_FAILS_WITH(knob_tok_from_desc(&t, "char:\"\\ud800\"", &err), KNOB_ERR_FORMAT, "malformed");
    CHECK_FAILS_WITH(knob_tok_from_desc(&t, "bpe:", &err), KNOB_ERR_USAGE, "names no folder");
    CHECK_FAILS_WITH(knob_tok_from_desc(&t, "bpe:/nonexistent", &err), KNOB_ERR_IO, "/nonexistent/encoder.json");
    CHECK_OK(knob_tok_from_desc(&t, "char:\"\\n\\u00e9\\ud83d\\udc4d\"", &err));
    if (!test_failed_now) {
        CHECK(knob_tok_vocab_size(t) == 3);
        knob_tok_free(t);
    }
    /* a BPE in a folder describes itself as bpe:<absolute folder> and loads again from that */
    const char *ab[] = {"ab"};
    CHECK_OK(load_small(&t, ab, 1, "#version: 0.2\na b\n", &err));
    char *d;
    CHECK_OK(knob_tok_describe(t, &d, &err));
    CHECK(strncmp(d, "bpe:/", 5) == 0);
    knob_tok_free(t);
    CHECK_OK(knob_tok_from_desc(&t, d, &err));
    CHECK(encodes_to(t, "ab", 2, 0, (const int32_t[]){256}, 1));
    knob_tok_free(t);
    knob_free(d);
    knob_tokenizer *g = gpt2_or_skip();
    if (g) {
        CHECK_OK(knob_tok_describe(g, &d, &err));
        CHECK(strcmp(d, "gpt2") == 0);
        knob_free(d);
        knob_tok_free(g);
    }
}

TEST(tok_utf8_helpers)
{
    struct { const char *s; size_t n, want; } c[] = {
        {"abc", 3, 3}, {"a\xc3", 2, 1}, {"a\xc3\xa9", 3, 3}, {"\xe6\x97", 2, 0}, {"\xe6\x97\xa5", 3, 3},
        {"\xf0\x9f\x91", 3, 0}, {"\xf0\x9f\x91\x8d", 4, 4}, {"x\xff", 2, 2}, {"\x80", 1, 1},
        {"\xe0\x80", 2, 2}, /* overlong: can never complete */ {"\xed\xa0", 2, 2}, /* surrogate */
        {"\xf4\x90", 2, 2}, /* past U+10FFFF */ {"", 0, 0}, {"\xc0", 1, 1},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        if (knob_utf8_complete(c[i].s, c[i].n) != c[i].want)
            test_fail_at(__FILE__, __LINE__, "case %zu: knob_utf8_complete = %zu, want %zu", i,
                         knob_utf8_complete(c[i].s, c[i].n), c[i].want);
    uint32_t cp;
    CHECK(knob_utf8_decode((const unsigned char *)"\xed\x9f\xbf", 3, &cp) == 3 && cp == 0xd7ff);
    CHECK(knob_utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp) == 0);
    CHECK(knob_utf8_decode((const unsigned char *)"\xf4\x8f\xbf\xbf", 4, &cp) == 4 && cp == 0x10ffff);
    CHECK(knob_utf8_decode((const unsigned char *)"\xe0\x9f\xbf", 3, &cp) == 0);
    /* the lenient length (n-gram units): lead byte and continuation bytes only */
    static const struct {
        const char *s;
        size_t n, want;
    } l[] = {
        {"a", 1, 1}, {"\xc3\xa9x", 3, 2}, {"\xe6\x97\xa5", 3, 3}, {"\xf0\x9f\x91\x8d", 4, 4},
        {"\xe6\x97", 2, 1},      /* cut */
        {"\xc3x", 2, 1},          /* no continuation */
        {"\xc1\xbf", 2, 1},      /* 0xc0, 0xc1 never lead */
        {"\xed\xa0\x80", 3, 3},  /* a surrogate still spans 3 bytes here */
        {"\x80", 1, 1}, {"\xff", 1, 1}, {"", 0, 0},
    };
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
        if (knob_utf8_len((const unsigned char *)l[i].s, l[i].n) != l[i].want)
            test_fail_at(__FILE__, __LINE__, "case %zu: knob_utf8_len = %zu, want %zu", i,
                         knob_utf8_len((const unsigned char *)l[i].s, l[i].n), l[i].want);
}

/* ------------------------------------------------------------------------------------------------
 * llm.c tokenizer files */

TEST(tok_llmc_round_trip_and_malformed)
{
    knob_err err;
    char path[512];
    snprintf(path, sizeof path, "%s/tok.bin", test_tmpdir());
    knob_tokenizer *t, *r;
    const char *text = "hello world";
    CHECK_OK(knob_tok_new_char(&t, text, strlen(text), &err));
    CHECK_OK(knob_tok_write_llmc(t, path, &err));
    unsigned char *buf;
    size_t len;
    CHECK_OK(knob_read_file(path, &buf, &len, &err));
    /* header 1024 bytes + 8 tokens of 1 byte with their length bytes */
    CHECK(len == 1024 + 8 * 2);
    int32_t h[4];
    memcpy(h, buf, sizeof h);
    CHECK(h[0] == 20240328 && h[1] == 2 && h[2] == 8 && h[3] == -1);
    CHECK_OK(knob_tok_read_llmc_pieces(&r, path, &err));
    CHECK(knob_tok_kind_of(r) == KNOB_TOK_PIECES && knob_tok_vocab_size(r) == 8 && knob_tok_eot(r) == -1);
    char *out;
    size_t n_out;
    CHECK_OK(knob_tok_decode(r, (const int32_t[]){3, 2, 4, 4, 5}, 5, &out, &n_out, &err));
    CHECK(n_out == 5 && memcmp(out, "hello", 5) == 0);
    knob_free(out);
    CHECK_FAILS_WITH(knob_tok_encode(r, "a", 1, 0, &(int32_t *){NULL}, &(size_t){0}, &err), KNOB_ERR_USAGE, "decode but not encode");
    CHECK_FAILS_WITH(knob_tok_decode(r, (const int32_t[]){8}, 1, &out, &n_out, &err), KNOB_ERR_FORMAT, "token id 8 at position 0");
    knob_tok_free(r);
    /* malformed */
    unsigned char *bad = malloc(len + 16);
    memcpy(bad, buf, len);
    bad[0] ^= 1;
    KNOB_ASSERT(write_text(path, bad, len));
    CHECK_FAILS_WITH(knob_tok_read_llmc_pieces(&r, path, &err), KNOB_ERR_FORMAT, "bad magic");
    memcpy(bad, buf, len);
    bad[4] = 3;
    KNOB_ASSERT(write_text(path, bad, len));
    CHECK_FAILS_WITH(knob_tok_read_llmc_pieces(&r, path, &err), KNOB_ERR_FORMAT, "bad version 3");
    memcpy(bad, buf, len);
    KNOB_ASSERT(write_text(path, bad, len - 1));
    CHECK_FAILS_WITH(knob_tok_read_llmc_pieces(&r, path, &err), KNOB_ERR_FORMAT, "truncated");
    KNOB_ASSERT(write_text(path, bad, 100));
    CHECK_FAILS_WITH(knob_tok_read_llmc_pieces(&r, path, &err), KNOB_ERR_FORMAT, "truncated at byte 100");
    bad[1024 + 2] = 0;   /* token 1 has length 0 */
    KNOB_ASSERT(write_text(path, bad, len));
    CHECK_FAILS_WITH(knob_tok_read_llmc_pieces(&r, path, &err), KNOB_ERR_FORMAT, "token 1 has length 0");
    memcpy(bad, buf, len);
    bad[len] = 'x';
    KNOB_ASSERT(write_text(path, bad, len + 1));
    CHECK_FAILS_WITH(knob_tok_read_llmc_pieces(&r, path, &err), KNOB_ERR_FORMAT, "1 bytes after the last of 8 tokens");
    /* version 1: no eot id */
    memcpy(bad, buf, len);
    bad[4] = 1;
    KNOB_ASSERT(write_text(path, bad, len));
    CHECK_OK(knob_tok_read_llmc_pieces(&r, path, &err));
    knob_tok_free(r);
    free(bad);
    knob_free(buf);
    knob_tok_free(t);
    /* GPT-2: every piece survives the trip, eot included */
    knob_tokenizer *g = gpt2_or_skip();
    if (g) {
        CHECK_OK(knob_tok_write_llmc(g, path, &err));
        CHECK_OK(knob_tok_read_llmc_pieces(&r, path, &err));
        CHECK(knob_tok_vocab_size(r) == 50257 && knob_tok_eot(r) == 50256);
        int same = 1;
        for (int id = 0; id < 50257; id++) {
            size_t l1, l2;
            const char *p1 = knob_tok_piece(g, id, &l1), *p2 = knob_tok_piece(r, id, &l2);
            same &= l1 == l2 && memcmp(p1, p2, l1) == 0;
        }
        CHECK(same);
        knob_tok_free(r);
        knob_tok_free(g);
    }
}

/* ------------------------------------------------------------------------------------------------
 * BPE trainer */

/* Corpus "ab ab ab ab xy" -> pre-tokens "ab" x1, " ab" x3, " xy" x1. Pair counts: (a b) 4,
 * (' ' a) 3, (' ' x) 1, (x y) 1. First merge a b (id 256); then (' ' ab) 3 (id 257); every other
 * pair occurs once, so training stops: vocabulary 256 + 2 + <|endoftext|> = 259. */
TEST(tok_bpe_train_by_hand)
{
    knob_err err;
    knob_bpe_trainer *tr;
    CHECK_OK(knob_bpe_trainer_new(&tr, &err));
    const char *text = "ab ab ab ab xy";
    CHECK_OK(knob_bpe_trainer_add(tr, text, strlen(text), &err));
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bpe_small", test_tmpdir());
    knob_bpe_stats st;
    CHECK_OK(knob_bpe_trainer_save(tr, 300, dir, &st, &err));
    CHECK(st.n_words == 5 && st.n_unique == 3 && st.n_merges == 2 && st.vocab_size == 259 && st.n_bytes == 14);
    char path[600];
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    unsigned char *buf;
    size_t len;
    CHECK_OK(knob_read_file(path, &buf, &len, &err));
    if (buf)
        CHECK(strcmp((char *)buf, "#version: 0.2\na b\n\xc4\xa0 ab\n") == 0);   /* ' ' is U+0120 */
    knob_free(buf);
    char desc[600];
    snprintf(desc, sizeof desc, "bpe:%s", dir);
    knob_tokenizer *t;
    CHECK_OK(knob_tok_from_desc(&t, desc, &err));
    if (!test_failed_now) {
        CHECK(knob_tok_vocab_size(t) == 259 && knob_tok_eot(t) == 258);
        CHECK(encodes_to(t, "ab ab xy", 8, 0, (const int32_t[]){256, 257, 220, 87, 88}, 5));
        CHECK(encodes_to(t, "<|endoftext|>", 13, 1, (const int32_t[]){258}, 1));
        CHECK(round_trips(t, "any \xff bytes \x00 at all \xe6\x97\xa5", 22));
        knob_tok_free(t);
    }
    CHECK_FAILS_WITH(knob_bpe_trainer_save(tr, 256, dir, &st, &err), KNOB_ERR_USAGE, "outside [257");
    knob_bpe_trainer_free(tr);
}

/* A larger generated corpus: the vocabulary fills up exactly, the files load, text round-trips,
 * and training twice gives the same files (determinism). */
TEST(tok_bpe_train_generated)
{
    knob_err err;
    size_t n = 60000;
    char *text = malloc(n);
    uint64_t seed = 42;
    static const char *words[] = {"the", "cat", "sat", "on", "mat", "and", "dog", "ran", "far", "away",
                                  "\xe6\x97\xa5\xe6\x9c\xac", "don't", "42", "!!", "\n"};
    size_t k = 0;
    while (k + 16 < n) {
        const char *w = words[rng_next(&seed) % 15];
        k += (size_t)snprintf(text + k, n - k, "%s%s", rng_next(&seed) % 4 ? " " : "", w);
    }
    char dir[2][512];
    unsigned char *files[2][2];
    size_t lens[2][2];
    for (int run = 0; run < 2; run++) {
        knob_bpe_trainer *tr;
        CHECK_OK(knob_bpe_trainer_new(&tr, &err));
        CHECK_OK(knob_bpe_trainer_add(tr, text, k, &err));
        snprintf(dir[run], sizeof dir[run], "%s/bpe_gen%d", test_tmpdir(), run);
        knob_bpe_stats st;
        CHECK_OK(knob_bpe_trainer_save(tr, 300, dir[run], &st, &err));
        CHECK(st.vocab_size == 300 && st.n_merges >= 43);
        knob_bpe_trainer_free(tr);
        for (int f = 0; f < 2; f++) {
            char path[600];
            snprintf(path, sizeof path, "%s/%s", dir[run], f ? "vocab.bpe" : "encoder.json");
            CHECK_OK(knob_read_file(path, &files[run][f], &lens[run][f], &err));
        }
    }
    for (int f = 0; f < 2; f++) {
        CHECK(lens[0][f] == lens[1][f] && memcmp(files[0][f], files[1][f], lens[0][f]) == 0);
        knob_free(files[0][f]);
        knob_free(files[1][f]);
    }
    char desc[600];
    snprintf(desc, sizeof desc, "bpe:%s", dir[0]);
    knob_tokenizer *t;
    CHECK_OK(knob_tok_from_desc(&t, desc, &err));
    if (!test_failed_now) {
        CHECK(round_trips(t, text, k));
        int32_t *ids;
        size_t n_ids;
        CHECK_OK(knob_tok_encode(t, " the cat", 8, 0, &ids, &n_ids, &err));
        CHECK(n_ids == 2);   /* frequent words became single tokens */
        knob_free(ids);
        knob_tok_free(t);
    }
    free(text);
}

/* ------------------------------------------------------------------------------------------------
 * Allocation failures: every failing allocation gives a clean status (ASan checks for leaks). */

TEST(tok_alloc_failures)
{
    knob_err err;
    const char *ab[] = {"ab"};
    knob_tokenizer *t;
    CHECK_OK(load_small(&t, ab, 1, "#version: 0.2\na b\n", &err));
    knob_tok_free(t);
    char enc[512], voc[512], dir[512];
    snprintf(enc, sizeof enc, "%s/encoder.json", test_tmpdir());
    snprintf(voc, sizeof voc, "%s/vocab.bpe", test_tmpdir());
    snprintf(dir, sizeof dir, "%s/bpe_oom", test_tmpdir());
    int done = 0;
    for (long k = 1; k < 2000 && !done; k++) {
        knob_alloc_fail_at(k);
        knob_tokenizer *b = NULL, *c = NULL;
        knob_bpe_trainer *tr = NULL;
        int32_t *ids = NULL;
        size_t n_ids;
        knob_status s = knob_tok_load_bpe(&b, enc, voc, &err);
        if (!s)
            s = knob_tok_encode(b, "ab abab ab\xff", 11, 0, &ids, &n_ids, &err);
        if (!s)
            s = knob_tok_new_char(&c, "hello", 5, &err);
        if (!s)
            s = knob_bpe_trainer_new(&tr, &err);
        if (!s)
            s = knob_bpe_trainer_add(tr, "ab ab ab cd cd", 14, &err);
        if (!s)
            s = knob_bpe_trainer_save(tr, 300, dir, NULL, &err);
        knob_alloc_fail_at(0);
        if (s)
            CHECK(s == KNOB_ERR_NOMEM || s == KNOB_ERR_IO);
        else
            done = 1;
        knob_free(ids);
        knob_tok_free(b);
        knob_tok_free(c);
        knob_bpe_trainer_free(tr);
    }
    CHECK(done);
}
