/* bpe.c: GPT-2's byte-level BPE: loading encoder.json and vocab.bpe, pre-tokenization, encoding.
 *
 * Files. encoder.json maps each token, written in GPT-2's printable alphabet (every byte b is one
 * code point, knob_bpe_byte_to_cp), to its id; ids are 0..n-1, each once. vocab.bpe holds one merge
 * "A B" per line after a "#version" line; the k-th merge (from 0) has rank k. A, B and A+B must be
 * tokens; a pair may appear once. Everything is checked on load,
 * with "file:line: cause" (vocab.bpe) or "file: byte N: cause" (encoder.json) messages.
 *
 * Pre-tokenization is GPT-2's pattern
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * compiled once with PCRE2 (UTF, UCP, MATCH_INVALID_UTF; JIT when available). \s is spelled out as
 * the Unicode White_Space property, which is what GPT-2's encoder.py (Python's regex module) uses,
 * so the result does not depend on how a PCRE2 version defines \s (JavaScript's \s differs on
 * U+0085 and U+FEFF). Every valid character starts a match, so the gaps between matches are exactly
 * the runs of invalid UTF-8 bytes; each such run is a pre-token of its own and goes through the
 * merges as bytes, so every byte string is encoded and decodes back to itself.
 *
 * Merging one pre-token: its bytes become single-byte tokens in a linked list; a min-heap keyed by
 * (rank, position) yields the lowest-rank adjacent pair, leftmost first. All occurrences of that
 * rank are merged left to right before the pairs those merges created join the heap (stale entries
 * are skipped when popped). That is exactly encoder.py's "merge every occurrence of the best pair,
 * left to right, repeat", for any merges file, in O(m log m) for a pre-token of m bytes: 1 MB of
 * one letter takes 0.5 s, where js-tiktoken, which rescans the word after every merge, takes 195 s
 * for 40 kB. A per-call cache maps repeated pre-tokens to the ids already produced for them. */
#include "knob_internal.h"

#include <pthread.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define EOT_TEXT "<|endoftext|>"

struct knob_bpe {
    int n;                  /* vocabulary size */
    int eot;                /* id of <|endoftext|>, or -1 */
    unsigned char *bytes;   /* token i = bytes[off[i] .. off[i + 1]) */
    size_t *off;            /* (n + 1) */
    int byte_id[256];       /* id of each single byte */
    int n_merges;
    uint64_t *mkey;         /* merge table, open addressing: key (a << 32 | b) + 1, 0 = empty */
    int32_t *mrank, *mout;  /* rank and resulting id of each slot */
    size_t mcap;            /* slots, a power of two */
};

/* ------------------------------------------------------------------------------------------------
 * GPT-2's byte <-> printable code point mapping: bytes that are printable Latin-1 characters keep
 * their code point; the other 68 bytes take 256, 257, ... in byte order. */

static int b2cp[256];
static int cp2b[256 + 68];
static pthread_once_t alphabet_once = PTHREAD_ONCE_INIT;

static int printable(int b)
{
    return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

static void alphabet_init(void)
{
    int k = 0;
    for (int i = 0; i < 256 + 68; i++)
        cp2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        b2cp[b] = printable(b) ? b : 256 + k++;
        cp2b[b2cp[b]] = b;
    }
}

int knob_bpe_byte_to_cp(int byte)
{
    pthread_once(&alphabet_once, alphabet_init);
    return b2cp[byte & 0xff];
}

int knob_bpe_cp_to_byte(uint32_t cp)
{
    pthread_once(&alphabet_once, alphabet_init);
    return cp < 256 + 68 ? cp2b[cp] : -1;
}

/* ------------------------------------------------------------------------------------------------
 * Pre-tokenization */

#define WS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
static const char pretok_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

static pcre2_code *pretok_code;
static char pretok_error[256];
static pthread_once_t pretok_once = PTHREAD_ONCE_INIT;

static void pretok_init(void)
{
    int code;
    PCRE2_SIZE at;
    pretok_code = pcre2_compile((PCRE2_SPTR)pretok_pattern, PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
    if (!pretok_code) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(pretok_error, sizeof pretok_error, "pre-tokenizer: PCRE2 cannot compile the pattern at %zu: %s",
                 (size_t)at, (const char *)msg);
        return;
    }
    pcre2_jit_compile(pretok_code, PCRE2_JIT_COMPLETE);   /* the interpreter is used when JIT is absent */
}

knob_status knob_pretok_split(const char *text, size_t n, knob_pretok_fn fn, void *ctx, knob_err *err)
{
    pthread_once(&pretok_once, pretok_init);
    if (!pretok_code)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s", pretok_error);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(pretok_code, NULL);
    if (!md)
        return knob_fail(err, KNOB_ERR_NOMEM, "pre-tokenizer: out of memory");
    knob_status s = KNOB_OK;
    size_t at = 0;
    while (at < n && !s) {
        int rc = pcre2_match(pretok_code, (PCRE2_SPTR)text, n, at, 0, md, NULL);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)   /* JIT stack or match limits: try the interpreter */
            rc = pcre2_match(pretok_code, (PCRE2_SPTR)text, n, at, PCRE2_NO_JIT, md, NULL);
        size_t m0 = n, m1 = n;
        if (rc >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            m0 = ov[0];
            m1 = ov[1];
        } else if (rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(rc, msg, sizeof msg);
            s = knob_fail(err, KNOB_ERR_FORMAT, "pre-tokenizer: PCRE2 match failed at byte %zu: %s", at,
                          (const char *)msg);
            break;
        }
        if (m0 > at)   /* a run of invalid UTF-8 bytes */
            s = fn(text + at, m0 - at, ctx, err);
        if (!s && m1 > m0)
            s = fn(text + m0, m1 - m0, ctx, err);
        at = m1 > m0 ? m1 : m0 + 1;   /* the pattern has no empty matches; never loop in place */
        if (m1 == m0 && m0 < n && !s)
            s = fn(text + m0, 1, ctx, err);
    }
    pcre2_match_data_free(md);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Hash tables */

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

/* merge (a, b) -> rank and result, or -1 */
static int merge_find(const knob_bpe *b, int x, int y, int *out)
{
    uint64_t key = ((uint64_t)(uint32_t)x << 32 | (uint32_t)y) + 1;
    for (size_t i = knob_hash_u64(key) & (b->mcap - 1);; i = (i + 1) & (b->mcap - 1)) {
        if (b->mkey[i] == key) {
            *out = b->mout[i];
            return b->mrank[i];
        }
        if (!b->mkey[i])
            return -1;
    }
}

/* Token lookup by bytes while loading: slots hold id + 1 (0 = empty). */
typedef struct {
    int32_t *slot;
    size_t cap;
} token_index;

static int token_find(const knob_bpe *b, const token_index *ix, const unsigned char *p, size_t n, size_t *where)
{
    size_t i = knob_hash_bytes(p, n) & (ix->cap - 1);
    for (;; i = (i + 1) & (ix->cap - 1)) {
        int32_t v = ix->slot[i];
        if (!v)
            break;
        int id = v - 1;
        size_t l = b->off[id + 1] - b->off[id];
        if (l == n && memcmp(b->bytes + b->off[id], p, n) == 0) {
            if (where)
                *where = i;
            return id;
        }
    }
    if (where)
        *where = i;
    return -1;
}

/* ------------------------------------------------------------------------------------------------
 * encoder.json: a flat JSON object of "token": id, parsed here directly (exact positions in
 * messages, tokens may hold any code point of the alphabet). Tokens are stored in file order first
 * and moved to id order once all ids are known. */

typedef struct {
    const char *path;
    const unsigned char *s;
    size_t n, at;
    knob_err *err;
} json_cursor;

static void json_ws(json_cursor *c)
{
    while (c->at < c->n && (c->s[c->at] == ' ' || c->s[c->at] == '\t' || c->s[c->at] == '\n' || c->s[c->at] == '\r'))
        c->at++;
}

static knob_status json_expect(json_cursor *c, char ch)
{
    json_ws(c);
    if (c->at >= c->n)
        return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: truncated at byte %zu (expected '%c')", c->path, c->at, ch);
    if (c->s[c->at] != (unsigned char)ch)
        return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: byte %zu: expected '%c', found '%c'", c->path, c->at, ch,
                         c->s[c->at] >= 0x20 && c->s[c->at] < 0x7f ? c->s[c->at] : '?');
    c->at++;
    return KNOB_OK;
}

static int hexval(unsigned char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* Next code point of a JSON string body (after the opening quote); 1 at the closing quote. */
static knob_status json_char(json_cursor *c, uint32_t *cp, int *end)
{
    *end = 0;
    if (c->at >= c->n)
        return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: truncated at byte %zu inside a string", c->path, c->at);
    unsigned char ch = c->s[c->at];
    if (ch == '"') {
        c->at++;
        *end = 1;
        return KNOB_OK;
    }
    if (ch < 0x20)
        return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: byte %zu: control character 0x%02x inside a string",
                         c->path, c->at, ch);
    if (ch != '\\') {
        int l = knob_utf8_decode(c->s + c->at, c->n - c->at, cp);
        if (!l)
            return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: byte %zu: invalid UTF-8", c->path, c->at);
        c->at += (size_t)l;
        return KNOB_OK;
    }
    if (c->at + 1 >= c->n)
        return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: truncated at byte %zu inside a string", c->path, c->at);
    unsigned char e = c->s[c->at + 1];
    const char *esc = "\"\\/bfnrt", *val = "\"\\/\b\f\n\r\t";
    const char *hit = e ? strchr(esc, e) : NULL;
    if (hit) {
        *cp = (unsigned char)val[hit - esc];
        c->at += 2;
        return KNOB_OK;
    }
    if (e != 'u')
        return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: byte %zu: unknown escape '\\%c'", c->path, c->at,
                         e >= 0x20 && e < 0x7f ? e : '?');
    uint32_t v[2] = {0, 0};
    int units = 1;
    for (int u = 0; u < units; u++) {
        size_t p = c->at + 2;
        if (p + 4 > c->n)
            return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: truncated at byte %zu inside a \\u escape", c->path, c->at);
        for (int i = 0; i < 4; i++) {
            int h = hexval(c->s[p + (size_t)i]);
            if (h < 0)
                return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: byte %zu: bad \\u escape", c->path, c->at);
            v[u] = v[u] * 16 + (uint32_t)h;
        }
        c->at += 6;
        if (u == 0 && v[0] >= 0xd800 && v[0] <= 0xdbff) {
            if (c->at + 1 >= c->n || c->s[c->at] != '\\' || c->s[c->at + 1] != 'u')
                return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: byte %zu: lone surrogate \\u%04x", c->path,
                                 c->at - 6, (unsigned)v[0]);
            units = 2;
        }
    }
    if (units == 2) {
        if (v[1] < 0xdc00 || v[1] > 0xdfff)
            return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: byte %zu: bad surrogate pair", c->path, c->at - 12);
        *cp = 0x10000 + ((v[0] - 0xd800) << 10) + (v[1] - 0xdc00);
    } else if (v[0] >= 0xdc00 && v[0] <= 0xdfff) {
        return knob_fail(c->err, KNOB_ERR_FORMAT, "%s: byte %zu: lone surrogate \\u%04x", c->path, c->at - 6,
                         (unsigned)v[0]);
    } else {
        *cp = v[0];
    }
    return KNOB_OK;
}

/* Token text for messages: printable ASCII as is, the rest as \xNN, cut at 40 bytes. */
static void show_token(const unsigned char *p, size_t n, char *buf, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 8 < size; i++) {
        if (i == 40) {
            k += (size_t)snprintf(buf + k, size - k, "...");
            break;
        }
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            buf[k++] = (char)p[i];
        else
            k += (size_t)snprintf(buf + k, size - k, "\\x%02x", p[i]);
    }
    buf[k] = 0;
}

static knob_status grow(void **p, size_t *cap, size_t need, size_t elem, knob_err *err, const char *path)
{
    if (need <= *cap)
        return KNOB_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = knob_realloc(*p, c * elem);
    if (!q)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    *p = q;
    *cap = c;
    return KNOB_OK;
}

static knob_status load_encoder(knob_bpe *b, const char *path, token_index *ix, knob_err *err)
{
    unsigned char *buf;
    size_t len;
    knob_status s = knob_read_file(path, &buf, &len, err);
    if (s)
        return s;
    json_cursor c = {path, buf, len, 0, err};
    /* file order first: bytes in tmp, (offset, length, id) per token */
    unsigned char *tb = NULL;
    size_t tb_n = 0, tb_cap = 0, tk_cap = 0;
    size_t *tk = NULL;   /* 3 per token: offset, length, id */
    size_t n_tok = 0;
    int32_t *by_id = NULL;
    if ((s = json_expect(&c, '{')))
        goto done;
    json_ws(&c);
    if (c.at < c.n && c.s[c.at] == '}') {
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: no tokens", path);
        goto done;
    }
    for (;;) {
        if ((s = json_expect(&c, '"')))
            goto done;
        size_t start = tb_n, key_at = c.at - 1;
        for (;;) {
            uint32_t cp;
            int end;
            if ((s = json_char(&c, &cp, &end)))
                goto done;
            if (end)
                break;
            int byte = knob_bpe_cp_to_byte(cp);
            if (byte < 0) {
                s = knob_fail(err, KNOB_ERR_FORMAT,
                              "%s: byte %zu: token has character U+%04X, outside GPT-2's byte alphabet", path,
                              key_at, (unsigned)cp);
                goto done;
            }
            if ((s = grow((void **)&tb, &tb_cap, tb_n + 1, 1, err, path)))
                goto done;
            tb[tb_n++] = (unsigned char)byte;
        }
        if (tb_n == start) {
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: byte %zu: empty token", path, key_at);
            goto done;
        }
        if ((s = json_expect(&c, ':')))
            goto done;
        json_ws(&c);
        size_t num_at = c.at;
        long long id = 0;
        int digits = 0;
        while (c.at < c.n && c.s[c.at] >= '0' && c.s[c.at] <= '9' && digits < 12) {
            id = id * 10 + (c.s[c.at++] - '0');
            digits++;
        }
        if (c.at >= c.n) {
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated at byte %zu (expected a token id)", path, c.at);
            goto done;
        }
        if (!digits || id > INT32_MAX - 1 || strchr(".eE-+0123456789", c.s[c.at])) {
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: byte %zu: token id is not an integer in [0, 2^31)", path, num_at);
            goto done;
        }
        if ((s = grow((void **)&tk, &tk_cap, 3 * (n_tok + 1), sizeof *tk, err, path)))
            goto done;
        tk[3 * n_tok] = start;
        tk[3 * n_tok + 1] = tb_n - start;
        tk[3 * n_tok + 2] = (size_t)id;
        n_tok++;
        json_ws(&c);
        if (c.at >= c.n) {
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated at byte %zu (expected ',' or '}')", path, c.at);
            goto done;
        }
        if (c.s[c.at] == '}') {
            c.at++;
            break;
        }
        if ((s = json_expect(&c, ',')))
            goto done;
    }
    json_ws(&c);
    if (c.at != c.n) {
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: byte %zu: text after the closing '}'", path, c.at);
        goto done;
    }
    if (n_tok >= (size_t)INT32_MAX / 2) {
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: too many tokens (%zu)", path, n_tok);
        goto done;
    }
    /* ids: each of 0..n-1 exactly once */
    b->n = (int)n_tok;
    by_id = knob_malloc(n_tok * sizeof *by_id);
    b->off = knob_malloc((n_tok + 1) * sizeof *b->off);
    b->bytes = knob_malloc(tb_n ? tb_n : 1);
    ix->cap = pow2_at_least(2 * n_tok);
    ix->slot = knob_calloc(ix->cap, sizeof *ix->slot);
    if (!by_id || !b->off || !b->bytes || !ix->slot) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory for %zu tokens", path, n_tok);
        goto done;
    }
    for (size_t i = 0; i < n_tok; i++)
        by_id[i] = -1;
    for (size_t i = 0; i < n_tok; i++) {
        size_t id = tk[3 * i + 2];
        char name[200];
        if (id >= n_tok) {
            show_token(tb + tk[3 * i], tk[3 * i + 1], name, sizeof name);
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: token \"%s\" has id %zu, outside [0, %zu) for %zu tokens", path,
                          name, id, n_tok, n_tok);
            goto done;
        }
        if (by_id[id] >= 0) {
            show_token(tb + tk[3 * i], tk[3 * i + 1], name, sizeof name);
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: id %zu is given twice (again to \"%s\")", path, id, name);
            goto done;
        }
        by_id[id] = (int32_t)i;
    }
    size_t at = 0;
    for (size_t id = 0; id < n_tok; id++) {
        size_t i = (size_t)by_id[id];
        b->off[id] = at;
        memcpy(b->bytes + at, tb + tk[3 * i], tk[3 * i + 1]);
        at += tk[3 * i + 1];
    }
    b->off[n_tok] = at;
    /* index by bytes; duplicates are an error */
    for (int id = 0; id < b->n; id++) {
        const unsigned char *p = b->bytes + b->off[id];
        size_t l = b->off[id + 1] - b->off[id], where;
        int other = token_find(b, ix, p, l, &where);
        if (other >= 0) {
            char name[200];
            show_token(p, l, name, sizeof name);
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: token \"%s\" appears twice (ids %d and %d)", path, name, other, id);
            goto done;
        }
        ix->slot[where] = id + 1;
    }
    for (int byte = 0; byte < 256; byte++) {
        unsigned char u = (unsigned char)byte;
        b->byte_id[byte] = token_find(b, ix, &u, 1, NULL);
        if (b->byte_id[byte] < 0) {
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: no token for byte 0x%02x (U+%04X); byte-level BPE needs all 256",
                          path, byte, (unsigned)knob_bpe_byte_to_cp(byte));
            goto done;
        }
    }
    b->eot = token_find(b, ix, (const unsigned char *)EOT_TEXT, strlen(EOT_TEXT), NULL);
done:
    knob_free(buf);
    knob_free(tb);
    knob_free(tk);
    knob_free(by_id);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * vocab.bpe */

/* One part of a merge line (GPT-2 alphabet, UTF-8) -> bytes in out (cap bytes). */
static knob_status merge_part(const char *path, int line, const unsigned char *p, size_t n, unsigned char *out,
                              size_t *n_out, knob_err *err)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = knob_utf8_decode(p + i, n - i, &cp);
        if (!l)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s:%d: invalid UTF-8", path, line);
        int byte = knob_bpe_cp_to_byte(cp);
        if (byte < 0)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s:%d: character U+%04X is outside GPT-2's byte alphabet", path,
                             line, (unsigned)cp);
        out[k++] = (unsigned char)byte;
        i += (size_t)l;
    }
    *n_out = k;
    return KNOB_OK;
}

static knob_status load_merges(knob_bpe *b, const char *path, const token_index *ix, knob_err *err)
{
    unsigned char *buf;
    size_t len;
    knob_status s = knob_read_file(path, &buf, &len, err);
    if (s)
        return s;
    unsigned char *pa = knob_malloc(len + 1), *pb = knob_malloc(len + 1), *pab = knob_malloc(2 * len + 2);
    /* count lines for the table size */
    size_t n_lines = 1;
    for (size_t i = 0; i < len; i++)
        n_lines += buf[i] == '\n';
    b->mcap = pow2_at_least(2 * n_lines);
    b->mkey = knob_calloc(b->mcap, sizeof *b->mkey);
    b->mrank = knob_malloc(b->mcap * sizeof *b->mrank);
    b->mout = knob_malloc(b->mcap * sizeof *b->mout);
    if (!pa || !pb || !pab || !b->mkey || !b->mrank || !b->mout) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    int line = 0, rank = 0;
    for (size_t at = 0; at < len;) {
        line++;
        size_t end = at;
        while (end < len && buf[end] != '\n')
            end++;
        size_t e = end;
        if (e > at && buf[e - 1] == '\r')
            e--;
        const unsigned char *p = buf + at;
        size_t n = e - at;
        at = end + 1;
        if (n == 0 || (line == 1 && n >= 8 && memcmp(p, "#version", 8) == 0))
            continue;   /* the "#version: 0.2" line, blank lines */
        const unsigned char *sp = memchr(p, ' ', n);
        if (!sp || sp == p || sp + 1 == p + n || memchr(sp + 1, ' ', (size_t)(p + n - sp - 1))) {
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s:%d: expected two tokens separated by one space", path, line);
            goto done;
        }
        size_t na, nb;
        if ((s = merge_part(path, line, p, (size_t)(sp - p), pa, &na, err)) ||
            (s = merge_part(path, line, sp + 1, (size_t)(p + n - sp - 1), pb, &nb, err)))
            goto done;
        int ia = token_find(b, ix, pa, na, NULL), ib = token_find(b, ix, pb, nb, NULL);
        memcpy(pab, pa, na);
        memcpy(pab + na, pb, nb);
        int iab = token_find(b, ix, pab, na + nb, NULL);
        char name[200];
        if (ia < 0 || ib < 0 || iab < 0) {
            const unsigned char *q = ia < 0 ? pa : ib < 0 ? pb : pab;
            show_token(q, ia < 0 ? na : ib < 0 ? nb : na + nb, name, sizeof name);
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s:%d: \"%s\" (%s by this merge) is not in the vocabulary", path,
                          line, name, ia < 0 || ib < 0 ? "used" : "made");
            goto done;
        }
        int dummy;
        if (merge_find(b, ia, ib, &dummy) >= 0) {
            show_token(pab, na + nb, name, sizeof name);
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s:%d: merge making \"%s\" appears twice", path, line, name);
            goto done;
        }
        uint64_t key = ((uint64_t)(uint32_t)ia << 32 | (uint32_t)ib) + 1;
        size_t slot = knob_hash_u64(key) & (b->mcap - 1);
        while (b->mkey[slot])
            slot = (slot + 1) & (b->mcap - 1);
        b->mkey[slot] = key;
        b->mrank[slot] = rank++;
        b->mout[slot] = iab;
    }
    b->n_merges = rank;
done:
    knob_free(buf);
    knob_free(pa);
    knob_free(pb);
    knob_free(pab);
    return s;
}

knob_status knob_bpe_load(knob_bpe **out, const char *encoder_json, const char *vocab_bpe, knob_err *err)
{
    *out = NULL;
    knob_bpe *b = knob_calloc(1, sizeof *b);
    if (!b)
        return knob_fail(err, KNOB_ERR_NOMEM, "bpe: out of memory");
    token_index ix = {NULL, 0};
    knob_status s = load_encoder(b, encoder_json, &ix, err);
    if (!s)
        s = load_merges(b, vocab_bpe, &ix, err);
    knob_free(ix.slot);
    if (s) {
        knob_bpe_free(b);
        return s;
    }
    *out = b;
    return KNOB_OK;
}

void knob_bpe_free(knob_bpe *b)
{
    if (!b)
        return;
    knob_free(b->bytes);
    knob_free(b->off);
    knob_free(b->mkey);
    knob_free(b->mrank);
    knob_free(b->mout);
    knob_free(b);
}

int knob_bpe_vocab_size(const knob_bpe *b) { return b->n; }
int knob_bpe_eot(const knob_bpe *b) { return b->eot; }

const char *knob_bpe_piece(const knob_bpe *b, int id, size_t *len)
{
    if (id < 0 || id >= b->n)
        return NULL;
    if (len)
        *len = b->off[id + 1] - b->off[id];
    return (const char *)b->bytes + b->off[id];
}

/* ------------------------------------------------------------------------------------------------
 * Encoding */

#define CACHE_MAX_WORD 255   /* longer pre-tokens are merged every time (they rarely repeat) */

typedef struct {
    size_t text_off;         /* the pre-token in the text being encoded */
    uint32_t len;            /* 0: empty slot */
    uint32_t n_ids;
    size_t ids_off;          /* its ids in the output */
} cache_slot;

typedef struct {
    const knob_bpe *b;
    const char *text;        /* the whole input (cache keys point into it) */
    int32_t *ids;
    size_t n_ids, cap_ids;
    /* scratch for merging one pre-token, grown as needed */
    int32_t *sym, *next, *prev;
    uint64_t *heap;
    size_t cap_sym, cap_heap;
    cache_slot *cache;
    size_t cache_cap, cache_n;
} enc_state;

static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1] < h[c])
            c++;
        if (v <= h[c])
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = v;
    return top;
}

static void push_pair(enc_state *e, size_t *n_heap, int i)
{
    int j = e->next[i], out;
    if (j < 0)
        return;
    int r = merge_find(e->b, e->sym[i], e->sym[j], &out);
    if (r >= 0)
        heap_push(e->heap, n_heap, (uint64_t)r << 32 | (uint32_t)i);
}

/* Appends the ids of one pre-token w[0..m) to e->ids. */
static knob_status bpe_word(enc_state *e, const unsigned char *w, size_t m, knob_err *err)
{
    knob_status s;
    if ((s = grow((void **)&e->ids, &e->cap_ids, e->n_ids + m, sizeof *e->ids, err, "bpe encode")))
        return s;
    if (m == 1) {
        e->ids[e->n_ids++] = e->b->byte_id[w[0]];
        return KNOB_OK;
    }
    if (m > INT32_MAX / 4)
        return knob_fail(err, KNOB_ERR_USAGE, "bpe encode: a pre-token of %zu bytes is too long", m);
    if (m > e->cap_sym) {   /* the three lists grow together */
        size_t c1 = e->cap_sym, c2 = e->cap_sym, c3 = e->cap_sym;
        if ((s = grow((void **)&e->sym, &c1, m, sizeof *e->sym, err, "bpe encode")) ||
            (s = grow((void **)&e->next, &c2, m, sizeof *e->next, err, "bpe encode")) ||
            (s = grow((void **)&e->prev, &c3, m, sizeof *e->prev, err, "bpe encode")))
            return s;
        e->cap_sym = c1;
    }
    /* the heap grows from the front (at most 3m pushes in all), the waiting pairs from the back
     * (at most 2 per merge of one rank) */
    if ((s = grow((void **)&e->heap, &e->cap_heap, 5 * m, sizeof *e->heap, err, "bpe encode")))
        return s;
    for (size_t i = 0; i < m; i++) {
        e->sym[i] = e->b->byte_id[w[i]];
        e->prev[i] = (int32_t)i - 1;
        e->next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    }
    /* One rank at a time, as encoder.py does: every occurrence of the best pair is merged (left to
     * right) before the pairs those merges create are considered, so they wait in e->heap's tail. */
    size_t n_heap = 0, n_wait = 0;
    for (size_t i = 0; i + 1 < m; i++)
        push_pair(e, &n_heap, (int)i);
    int64_t cur = -1;
    for (;;) {
        if (n_wait && (!n_heap || (int64_t)(e->heap[0] >> 32) != cur)) {
            for (size_t k = 0; k < n_wait; k++) {
                int i = (int)(uint32_t)e->heap[e->cap_heap - 1 - k];
                if (e->sym[i] >= 0)
                    push_pair(e, &n_heap, i);
            }
            n_wait = 0;
            continue;
        }
        if (!n_heap)
            break;
        uint64_t top = heap_pop(e->heap, &n_heap);
        int r = (int)(top >> 32), i = (int)(uint32_t)top, j = e->next[i], out;
        if (e->sym[i] < 0 || j < 0 || merge_find(e->b, e->sym[i], e->sym[j], &out) != r)
            continue;   /* stale: a neighbour changed since this pair was pushed */
        cur = r;
        e->sym[i] = out;
        e->sym[j] = -1;
        e->next[i] = e->next[j];
        if (e->next[j] >= 0)
            e->prev[e->next[j]] = i;
        if (e->prev[i] >= 0)
            e->heap[e->cap_heap - 1 - n_wait++] = (uint64_t)(uint32_t)e->prev[i];
        e->heap[e->cap_heap - 1 - n_wait++] = (uint64_t)(uint32_t)i;
    }
    for (int i = 0; i >= 0; i = e->next[i])
        e->ids[e->n_ids++] = e->sym[i];
    return KNOB_OK;
}

static knob_status cache_grow(enc_state *e, knob_err *err)
{
    size_t cap = e->cache_cap ? 2 * e->cache_cap : 4096;
    cache_slot *c = knob_calloc(cap, sizeof *c);
    if (!c)
        return knob_fail(err, KNOB_ERR_NOMEM, "bpe encode: out of memory");
    for (size_t i = 0; i < e->cache_cap; i++) {
        cache_slot *o = &e->cache[i];
        if (!o->len)
            continue;
        size_t k = knob_hash_bytes((const unsigned char *)e->text + o->text_off, o->len) & (cap - 1);
        while (c[k].len)
            k = (k + 1) & (cap - 1);
        c[k] = *o;
    }
    knob_free(e->cache);
    e->cache = c;
    e->cache_cap = cap;
    return KNOB_OK;
}

static knob_status encode_pretoken(const char *s, size_t n, void *ctx, knob_err *err)
{
    enc_state *e = ctx;
    const unsigned char *w = (const unsigned char *)s;
    if (n == 1 || n > CACHE_MAX_WORD)
        return bpe_word(e, w, n, err);
    knob_status st;
    if (2 * (e->cache_n + 1) > e->cache_cap && (st = cache_grow(e, err)))
        return st;
    size_t k = knob_hash_bytes(w, n) & (e->cache_cap - 1);
    for (; e->cache[k].len; k = (k + 1) & (e->cache_cap - 1)) {
        cache_slot *c = &e->cache[k];
        if (c->len == n && memcmp(e->text + c->text_off, w, n) == 0) {
            if ((st = grow((void **)&e->ids, &e->cap_ids, e->n_ids + c->n_ids, sizeof *e->ids, err, "bpe encode")))
                return st;
            memcpy(e->ids + e->n_ids, e->ids + c->ids_off, c->n_ids * sizeof *e->ids);
            e->n_ids += c->n_ids;
            return KNOB_OK;
        }
    }
    size_t before = e->n_ids;
    if ((st = bpe_word(e, w, n, err)))
        return st;
    e->cache[k] = (cache_slot){(size_t)(s - e->text), (uint32_t)n, (uint32_t)(e->n_ids - before), before};
    e->cache_n++;
    return KNOB_OK;
}

knob_status knob_bpe_encode(const knob_bpe *b, const char *text, size_t n, int allow_special,
                            int32_t **ids, size_t *n_ids, knob_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    enc_state e;
    memset(&e, 0, sizeof e);
    e.b = b;
    e.text = text;
    knob_status s = grow((void **)&e.ids, &e.cap_ids, n / 3 + 16, sizeof *e.ids, err, "bpe encode");
    const char *special = NULL;
    size_t sl = 0;
    if (allow_special && b->eot >= 0)
        special = knob_bpe_piece(b, b->eot, &sl);
    size_t at = 0;
    while (!s && at < n) {
        /* the next special token, if any: text before it is encoded as ordinary text */
        size_t end = n, skip = 0;
        if (special)
            for (const char *p = text + at; (p = memchr(p, special[0], (size_t)(text + n - p))); p++)
                if ((size_t)(text + n - p) >= sl && memcmp(p, special, sl) == 0) {
                    end = (size_t)(p - text);
                    skip = sl;
                    break;
                }
        if (end > at)
            s = knob_pretok_split(text + at, end - at, encode_pretoken, &e, err);
        if (!s && skip) {
            s = grow((void **)&e.ids, &e.cap_ids, e.n_ids + 1, sizeof *e.ids, err, "bpe encode");
            if (!s)
                e.ids[e.n_ids++] = b->eot;
        }
        at = end + skip;
    }
    knob_free(e.sym);
    knob_free(e.next);
    knob_free(e.prev);
    knob_free(e.heap);
    knob_free(e.cache);
    if (s) {
        knob_free(e.ids);
        return s;
    }
    *ids = e.ids;
    *n_ids = e.n_ids;
    return KNOB_OK;
}

uint64_t knob_bpe_fingerprint(const knob_bpe *b)
{
    /* the pieces and the merge table (its layout follows the file's merge order, so the same files
     * always give the same table) */
    uint64_t h = knob_fnv1a(KNOB_FNV_SEED, &b->n, sizeof b->n);
    h = knob_fnv1a(h, &b->eot, sizeof b->eot);
    h = knob_fnv1a(h, b->off, ((size_t)b->n + 1) * sizeof *b->off);
    h = knob_fnv1a(h, b->bytes, b->off[b->n]);
    h = knob_fnv1a(h, &b->n_merges, sizeof b->n_merges);
    h = knob_fnv1a(h, b->mkey, b->mcap * sizeof *b->mkey);
    h = knob_fnv1a(h, b->mrank, b->mcap * sizeof *b->mrank);
    return knob_fnv1a(h, b->mout, b->mcap * sizeof *b->mout);
}
