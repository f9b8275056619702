/* tokenizer.c: the knob_tokenizer object. Four kinds behind one interface:
 *   byte    256 ids, id = byte value
 *   char    the distinct UTF-8 characters of a text, sorted by code point
 *   bpe     GPT-2 byte-level BPE (bpe.c does the work)
 *   pieces  a decode-only table read from an llm.c tokenizer file (llmc_tokenizer.c)
 * Byte, char and pieces kinds keep every token's bytes in one blob with offsets; bpe keeps its own.
 * A description string ("byte", "char:\"abc\"", "gpt2", "bpe:/abs/dir") names a tokenizer inside a
 * checkpoint's metadata and builds it again with knob_tok_from_desc. */
#define _XOPEN_SOURCE 700   /* realpath */
#include "knob_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct knob_tokenizer {
    knob_tok_kind kind;
    int n;                  /* vocabulary size */
    int eot;                /* <|endoftext|> id or -1 */
    unsigned char *bytes;   /* byte, char, pieces: token i = bytes[off[i] .. off[i + 1]) */
    size_t *off;            /* (n + 1) */
    uint32_t *cps;          /* char: (n) code point of each id, increasing */
    knob_bpe *bpe;          /* bpe */
    char *desc;             /* bpe: "gpt2" or "bpe:<dir>", or NULL when the files do not say */
};

const char *knob_tok_kind_name(knob_tok_kind kind)
{
    switch (kind) {
    case KNOB_TOK_BYTE: return "byte";
    case KNOB_TOK_CHAR: return "char";
    case KNOB_TOK_BPE: return "bpe";
    case KNOB_TOK_PIECES: return "pieces";
    }
    return "?";
}

/* ------------------------------------------------------------------------------------------------
 * Construction */

static knob_status tok_alloc(knob_tokenizer **t, knob_tok_kind kind, knob_err *err)
{
    *t = knob_calloc(1, sizeof **t);
    if (!*t)
        return knob_fail(err, KNOB_ERR_NOMEM, "tokenizer: out of memory");
    (*t)->kind = kind;
    (*t)->eot = -1;
    return KNOB_OK;
}

void knob_tok_free(knob_tokenizer *t)
{
    if (!t)
        return;
    knob_free(t->bytes);
    knob_free(t->off);
    knob_free(t->cps);
    knob_bpe_free(t->bpe);
    knob_free(t->desc);
    knob_free(t);
}

knob_status knob_tok_new_pieces(knob_tokenizer **t, knob_tok_kind kind, int n, unsigned char *bytes,
                                size_t *off, int eot, knob_err *err)
{
    knob_status s = tok_alloc(t, kind, err);
    if (s) {
        knob_free(bytes);
        knob_free(off);
        return s;
    }
    (*t)->n = n;
    (*t)->bytes = bytes;
    (*t)->off = off;
    (*t)->eot = eot >= 0 && eot < n ? eot : -1;
    return KNOB_OK;
}

knob_status knob_tok_new_byte(knob_tokenizer **t, knob_err *err)
{
    *t = NULL;
    unsigned char *bytes = knob_malloc(256);
    size_t *off = knob_malloc(257 * sizeof *off);
    if (!bytes || !off) {
        knob_free(bytes);
        knob_free(off);
        return knob_fail(err, KNOB_ERR_NOMEM, "byte tokenizer: out of memory");
    }
    for (int i = 0; i < 256; i++) {
        bytes[i] = (unsigned char)i;
        off[i] = (size_t)i;
    }
    off[256] = 256;
    return knob_tok_new_pieces(t, KNOB_TOK_BYTE, 256, bytes, off, -1, err);
}

/* Byte offset of the first invalid UTF-8 sequence in s, or n. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        int l = knob_utf8_decode(s + i, n - i, &cp);
        if (!l)
            return i;
        i += (size_t)l;
    }
    return n;
}

knob_status knob_tok_new_char(knob_tokenizer **t, const char *text, size_t n, knob_err *err)
{
    *t = NULL;
    const unsigned char *u = (const unsigned char *)text;
    size_t bad = utf8_invalid_at(u, n);
    if (bad < n)
        return knob_fail(err, KNOB_ERR_FORMAT, "char tokenizer: text is not valid UTF-8 at byte %zu (0x%02x)",
                         bad, u[bad]);
    /* a bitmap of the code points seen: 0x110000 bits = 136 kB */
    enum { N_CP = 0x110000 };
    unsigned char *seen = knob_calloc(N_CP / 8, 1);
    if (!seen)
        return knob_fail(err, KNOB_ERR_NOMEM, "char tokenizer: out of memory");
    uint32_t cp;
    int n_chars = 0;
    for (size_t i = 0; i < n;) {
        i += (size_t)knob_utf8_decode(u + i, n - i, &cp);
        if (!(seen[cp >> 3] & (1u << (cp & 7)))) {
            seen[cp >> 3] |= (unsigned char)(1u << (cp & 7));
            n_chars++;
        }
    }
    if (n_chars == 0) {
        knob_free(seen);
        return knob_fail(err, KNOB_ERR_USAGE, "char tokenizer: the text is empty, so there is no vocabulary");
    }
    uint32_t *cps = knob_malloc((size_t)n_chars * sizeof *cps);
    unsigned char *bytes = knob_malloc((size_t)n_chars * 4);
    size_t *off = knob_malloc(((size_t)n_chars + 1) * sizeof *off);
    if (!cps || !bytes || !off) {
        knob_free(seen);
        knob_free(cps);
        knob_free(bytes);
        knob_free(off);
        return knob_fail(err, KNOB_ERR_NOMEM, "char tokenizer: out of memory");
    }
    int k = 0;
    size_t at = 0;
    for (uint32_t c = 0; c < N_CP; c++)
        if (seen[c >> 3] & (1u << (c & 7))) {
            cps[k] = c;
            off[k++] = at;
            at += (size_t)knob_utf8_encode(c, bytes + at);
        }
    off[k] = at;
    knob_free(seen);
    knob_status s = knob_tok_new_pieces(t, KNOB_TOK_CHAR, n_chars, bytes, off, -1, err);
    if (s) {
        knob_free(cps);
        return s;
    }
    (*t)->cps = cps;
    return KNOB_OK;
}

/* The real path of a folder, for a description that still works from another directory. */
static char *abs_dir(const char *dir)
{
    char buf[PATH_MAX];
    const char *src = realpath(dir, buf) ? buf : dir;
    size_t l = strlen(src);
    char *d = knob_malloc(l + 1);
    if (d)
        memcpy(d, src, l + 1);
    return d;
}

knob_status knob_tok_load_bpe(knob_tokenizer **t, const char *encoder_json, const char *vocab_bpe, knob_err *err)
{
    *t = NULL;
    knob_bpe *b;
    knob_status s = knob_bpe_load(&b, encoder_json, vocab_bpe, err);
    if (s)
        return s;
    if ((s = tok_alloc(t, KNOB_TOK_BPE, err))) {
        knob_bpe_free(b);
        return s;
    }
    (*t)->bpe = b;
    (*t)->n = knob_bpe_vocab_size(b);
    (*t)->eot = knob_bpe_eot(b);
    /* "bpe:<dir>" when the files are <dir>/encoder.json and <dir>/vocab.bpe */
    const char *slash = strrchr(encoder_json, '/');
    size_t dl = slash ? (size_t)(slash - encoder_json) : 0;
    if (strcmp(slash ? slash + 1 : encoder_json, "encoder.json") == 0 && strncmp(vocab_bpe, encoder_json, dl) == 0 &&
        strcmp(vocab_bpe + dl, slash ? "/vocab.bpe" : "vocab.bpe") == 0) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%.*s", (int)(dl ? dl : 1), dl ? encoder_json : ".");
        char *a = abs_dir(dir);
        if (a) {
            size_t l = strlen(a);
            (*t)->desc = knob_malloc(l + 5);
            if ((*t)->desc)
                snprintf((*t)->desc, l + 5, "bpe:%s", a);
            knob_free(a);
        }
    }
    return KNOB_OK;
}

knob_status knob_tok_load_gpt2(knob_tokenizer **t, knob_err *err)
{
    char dir[4096], enc[4200], voc[4200];
    knob_data_dir(dir, sizeof dir);
    snprintf(enc, sizeof enc, "%s/gpt2/encoder.json", dir);
    snprintf(voc, sizeof voc, "%s/gpt2/vocab.bpe", dir);
    knob_status s = knob_tok_load_bpe(t, enc, voc, err);
    if (s)
        return s;
    knob_free((*t)->desc);
    (*t)->desc = knob_malloc(5);
    if (!(*t)->desc) {
        knob_tok_free(*t);
        *t = NULL;
        return knob_fail(err, KNOB_ERR_NOMEM, "tokenizer: out of memory");
    }
    memcpy((*t)->desc, "gpt2", 5);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Queries */

knob_tok_kind knob_tok_kind_of(const knob_tokenizer *t) { return t->kind; }
int knob_tok_vocab_size(const knob_tokenizer *t) { return t->n; }
int knob_tok_eot(const knob_tokenizer *t) { return t->eot; }

const char *knob_tok_piece(const knob_tokenizer *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (t->kind == KNOB_TOK_BPE)
        return knob_bpe_piece(t->bpe, id, len);
    if (len)
        *len = t->off[id + 1] - t->off[id];
    return (const char *)t->bytes + t->off[id];
}

/* ------------------------------------------------------------------------------------------------
 * Encode and decode */

/* id of code point cp in a char tokenizer, or -1 */
static int char_id(const knob_tokenizer *t, uint32_t cp)
{
    int lo = 0, hi = t->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (t->cps[mid] == cp)
            return mid;
        if (t->cps[mid] < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* "'x' (U+0078)": a character for a message; control characters only by number */
static void char_name(uint32_t cp, char *buf, size_t size)
{
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == '\'') {
        snprintf(buf, size, "U+%04X", (unsigned)cp);
        return;
    }
    unsigned char u[5] = {0};
    u[knob_utf8_encode(cp, u)] = 0;
    snprintf(buf, size, "'%s' (U+%04X)", (const char *)u, (unsigned)cp);
}

knob_status knob_tok_encode(const knob_tokenizer *t, const char *text, size_t n, int allow_special,
                            int32_t **ids, size_t *n_ids, knob_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (t->kind == KNOB_TOK_BPE)
        return knob_bpe_encode(t->bpe, text, n, allow_special, ids, n_ids, err);
    if (t->kind == KNOB_TOK_PIECES)
        return knob_fail(err, KNOB_ERR_USAGE, "tokenizer: a table of pieces from an llm.c file can decode but not encode");
    if (n == 0)
        return KNOB_OK;
    int32_t *out = knob_malloc(n * sizeof *out);   /* at most one id per byte */
    if (!out)
        return knob_fail(err, KNOB_ERR_NOMEM, "tokenizer: cannot allocate ids for %zu bytes", n);
    const unsigned char *u = (const unsigned char *)text;
    size_t k = 0;
    if (t->kind == KNOB_TOK_BYTE) {
        for (size_t i = 0; i < n; i++)
            out[k++] = u[i];
    } else {
        uint32_t cp;
        for (size_t i = 0; i < n;) {
            int l = knob_utf8_decode(u + i, n - i, &cp);
            if (!l) {
                knob_free(out);
                return knob_fail(err, KNOB_ERR_FORMAT, "char tokenizer: invalid UTF-8 at byte %zu (0x%02x)", i, u[i]);
            }
            int id = char_id(t, cp);
            if (id < 0) {
                char name[32];
                char_name(cp, name, sizeof name);
                knob_free(out);
                return knob_fail(err, KNOB_ERR_FORMAT,
                                 "char tokenizer: character %s at byte %zu is not in the vocabulary of %d characters",
                                 name, i, t->n);
            }
            out[k++] = id;
            i += (size_t)l;
        }
    }
    *ids = out;
    *n_ids = k;
    return KNOB_OK;
}

knob_status knob_tok_decode(const knob_tokenizer *t, const int32_t *ids, size_t n_ids, char **text,
                            size_t *len, knob_err *err)
{
    *text = NULL;
    *len = 0;
    size_t total = 0, l;
    for (size_t i = 0; i < n_ids; i++) {
        if (!knob_tok_piece(t, ids[i], &l))
            return knob_fail(err, KNOB_ERR_FORMAT, "decode: token id %ld at position %zu is outside the vocabulary [0, %d)",
                             (long)ids[i], i, t->n);
        total += l;
    }
    char *out = knob_malloc(total + 1);
    if (!out)
        return knob_fail(err, KNOB_ERR_NOMEM, "decode: cannot allocate %zu bytes", total + 1);
    size_t at = 0;
    for (size_t i = 0; i < n_ids; i++) {
        const char *p = knob_tok_piece(t, ids[i], &l);
        memcpy(out + at, p, l);
        at += l;
    }
    out[at] = 0;
    *text = out;
    *len = at;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Descriptions */

/* JSON string literal of s[0..n) (valid UTF-8): quotes, backslash and control characters escaped,
 * the rest as is. Returns the length written into out (needs 6 n + 3 bytes). */
static size_t json_quote(const unsigned char *s, size_t n, char *out)
{
    size_t k = 0;
    out[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            out[k++] = '\\';
            out[k++] = (char)c;
        } else if (c == '\n') {
            out[k++] = '\\', out[k++] = 'n';
        } else if (c == '\t') {
            out[k++] = '\\', out[k++] = 't';
        } else if (c == '\r') {
            out[k++] = '\\', out[k++] = 'r';
        } else if (c < 0x20 || c == 0x7f) {
            k += (size_t)sprintf(out + k, "\\u%04x", c);
        } else {
            out[k++] = (char)c;
        }
    }
    out[k++] = '"';
    out[k] = 0;
    return k;
}

static int hex4(const char *s, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return 0;
        *v = *v * 16 + (uint32_t)d;
    }
    return 1;
}

/* Parses the JSON string literal s (the whole of it) into UTF-8 bytes (knob_malloc'd). */
static knob_status json_unquote(const char *s, unsigned char **out, size_t *n, knob_err *err)
{
    size_t sl = strlen(s);
    if (sl < 2 || s[0] != '"' || s[sl - 1] != '"')
        return knob_fail(err, KNOB_ERR_FORMAT, "tokenizer description: char: needs a JSON string in quotes");
    unsigned char *o = knob_malloc(sl);
    if (!o)
        return knob_fail(err, KNOB_ERR_NOMEM, "tokenizer description: out of memory");
    size_t k = 0;
    for (size_t i = 1; i + 1 < sl; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c < 0x20)
            goto bad;
        if (c != '\\') {
            o[k++] = c;
            continue;
        }
        if (i + 2 >= sl)
            goto bad;
        char e = s[++i];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char val[] = "\"\\/\b\f\n\r\t";
            o[k++] = (unsigned char)val[simple - "\"\\/bfnrt"];
            continue;
        }
        uint32_t v, lo;
        if (e != 'u' || i + 5 > sl - 1 || !hex4(s + i + 1, &v))
            goto bad;
        i += 4;
        if (v >= 0xd800 && v <= 0xdbff) {   /* surrogate pair */
            if (i + 7 > sl - 1 || s[i + 1] != '\\' || s[i + 2] != 'u' || !hex4(s + i + 3, &lo) || lo < 0xdc00 ||
                lo > 0xdfff)
                goto bad;
            v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
            i += 6;
        } else if (v >= 0xdc00 && v <= 0xdfff) {
            goto bad;
        }
        k += (size_t)knob_utf8_encode(v, o + k);
    }
    *out = o;
    *n = k;
    return KNOB_OK;
bad:
    knob_free(o);
    return knob_fail(err, KNOB_ERR_FORMAT, "tokenizer description: char: malformed JSON string");
}

knob_status knob_tok_describe(const knob_tokenizer *t, char **desc, knob_err *err)
{
    *desc = NULL;
    const char *fixed = NULL;
    if (t->kind == KNOB_TOK_BYTE)
        fixed = "byte";
    else if (t->kind == KNOB_TOK_BPE) {
        if (!t->desc)
            return knob_fail(err, KNOB_ERR_USAGE,
                             "tokenizer: BPE files not named <dir>/encoder.json and <dir>/vocab.bpe have no description");
        fixed = t->desc;
    } else if (t->kind == KNOB_TOK_PIECES)
        return knob_fail(err, KNOB_ERR_USAGE, "tokenizer: a table of pieces from an llm.c file has no description");
    if (fixed) {
        size_t l = strlen(fixed);
        if (!(*desc = knob_malloc(l + 1)))
            return knob_fail(err, KNOB_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(*desc, fixed, l + 1);
        return KNOB_OK;
    }
    size_t nb = t->off[t->n];
    char *d = knob_malloc(5 + 6 * nb + 3);
    if (!d)
        return knob_fail(err, KNOB_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(d, "char:", 5);
    json_quote(t->bytes, nb, d + 5);
    *desc = d;
    return KNOB_OK;
}

knob_status knob_tok_from_desc(knob_tokenizer **t, const char *desc, knob_err *err)
{
    *t = NULL;
    if (strcmp(desc, "byte") == 0)
        return knob_tok_new_byte(t, err);
    if (strcmp(desc, "gpt2") == 0)
        return knob_tok_load_gpt2(t, err);
    if (strncmp(desc, "bpe:", 4) == 0) {
        const char *dir = desc + 4;
        if (!dir[0])
            return knob_fail(err, KNOB_ERR_USAGE, "tokenizer description 'bpe:' names no folder");
        char enc[4200], voc[4200];
        if (strlen(dir) > 4096)
            return knob_fail(err, KNOB_ERR_USAGE, "tokenizer description: folder name too long");
        snprintf(enc, sizeof enc, "%s/encoder.json", dir);
        snprintf(voc, sizeof voc, "%s/vocab.bpe", dir);
        return knob_tok_load_bpe(t, enc, voc, err);
    }
    if (strncmp(desc, "char:", 5) == 0) {
        unsigned char *chars = NULL;
        size_t n = 0;
        knob_status s = json_unquote(desc + 5, &chars, &n, err);
        if (s)
            return s;
        /* the characters must be distinct and in increasing order, as knob_tok_new_char makes them */
        uint32_t prev = 0, cp;
        for (size_t i = 0; i < n;) {
            int l = knob_utf8_decode(chars + i, n - i, &cp);
            if (!l || (i > 0 && cp <= prev)) {
                knob_free(chars);
                return knob_fail(err, KNOB_ERR_FORMAT,
                                 "tokenizer description: char: characters must be valid UTF-8, distinct and sorted "
                                 "(at byte %zu)",
                                 i);
            }
            prev = cp;
            i += (size_t)l;
        }
        s = knob_tok_new_char(t, (const char *)chars, n, err);
        knob_free(chars);
        return s;
    }
    return knob_fail(err, KNOB_ERR_USAGE, "unknown tokenizer '%.64s'; expected byte, char:\"...\", gpt2 or bpe:DIR", desc);
}

uint64_t knob_tok_fingerprint(const knob_tokenizer *t)
{
    uint64_t h = knob_fnv1a(KNOB_FNV_SEED, &t->kind, sizeof t->kind);
    h = knob_fnv1a(h, &t->n, sizeof t->n);
    h = knob_fnv1a(h, &t->eot, sizeof t->eot);
    if (t->bpe)
        return knob_hash_u64(h ^ knob_bpe_fingerprint(t->bpe));
    if (t->off) {
        h = knob_fnv1a(h, t->off, ((size_t)t->n + 1) * sizeof *t->off);
        h = knob_fnv1a(h, t->bytes, t->off[t->n]);
    }
    return knob_hash_u64(h);
}
