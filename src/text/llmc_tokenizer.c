/* llmc_tokenizer.c: llm.c's tokenizer file (gpt2_tokenizer.bin), the table its sampling code uses
 * to turn ids into text.
 *
 * Layout, little-endian: a header of 256 int32: [0] magic 20240328, [1] version (1 or 2), [2] vocab
 * size, [3] (version 2) the end-of-text id; the rest zero. Then for each id in order: one uint8
 * length (1..255) and that many bytes. Nothing follows the last token.
 *
 * Reading gives a decode-only tokenizer (kind KNOB_TOK_PIECES). Writing takes any tokenizer whose
 * pieces are 1..255 bytes long (GPT-2's longest is 128) and writes version 2. */
#include "knob_internal.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "llmc_tokenizer.c assumes a little-endian host"
#endif

#define LLMC_TOK_MAGIC 20240328
#define LLMC_HEADER_INTS 256

knob_status knob_tok_write_llmc(const knob_tokenizer *t, const char *path, knob_err *err)
{
    int n = knob_tok_vocab_size(t);
    for (int id = 0; id < n; id++) {
        size_t l;
        knob_tok_piece(t, id, &l);
        if (l == 0 || l > 255)
            return knob_fail(err, KNOB_ERR_USAGE, "%s: token %d is %zu bytes long; the llm.c format holds 1 to 255",
                             path, id, l);
    }
    int32_t header[LLMC_HEADER_INTS];
    memset(header, 0, sizeof header);
    header[0] = LLMC_TOK_MAGIC;
    header[1] = 2;
    header[2] = n;
    header[3] = knob_tok_eot(t);
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    fwrite(header, sizeof header, 1, a.f);
    for (int id = 0; id < n; id++) {
        size_t l;
        const char *p = knob_tok_piece(t, id, &l);
        fputc((int)l, a.f);
        fwrite(p, 1, l, a.f);
    }
    return knob_atomic_commit(&a, err);   /* checks the writes above */
}

knob_status knob_tok_read_llmc_pieces(knob_tokenizer **t, const char *path, knob_err *err)
{
    *t = NULL;
    unsigned char *buf;
    size_t len;
    knob_status s = knob_read_file(path, &buf, &len, err);
    if (s)
        return s;
    int32_t h[4];
    if (len < sizeof(int32_t) * LLMC_HEADER_INTS) {
        knob_free(buf);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated at byte %zu (the header needs %zu)", path, len,
                         sizeof(int32_t) * LLMC_HEADER_INTS);
    }
    memcpy(h, buf, sizeof h);
    const char *bad = NULL;
    if (h[0] != LLMC_TOK_MAGIC)
        bad = "magic";
    else if (h[1] != 1 && h[1] != 2)
        bad = "version";
    if (bad) {
        knob_free(buf);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: bad %s %d (an llm.c tokenizer file has magic %d, version 1 or 2)",
                         path, bad, bad[0] == 'm' ? h[0] : h[1], LLMC_TOK_MAGIC);
    }
    int n = h[2], eot = h[1] == 2 ? h[3] : -1;
    if (n <= 0 || n > (1 << 24) || eot < -1 || eot >= n) {
        knob_free(buf);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: bad header: vocab size %d, end-of-text id %d", path, n, eot);
    }
    size_t *off = knob_malloc(((size_t)n + 1) * sizeof *off);
    unsigned char *bytes = knob_malloc(len);
    if (!off || !bytes) {
        knob_free(off);
        knob_free(bytes);
        knob_free(buf);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory for %d tokens", path, n);
    }
    size_t at = sizeof(int32_t) * LLMC_HEADER_INTS, k = 0;
    for (int id = 0; id < n; id++) {
        const char *why = NULL;
        size_t l = at < len ? buf[at] : 0;
        if (at >= len)
            why = "truncated";
        else if (l == 0)
            why = "has length 0";
        else if (at + 1 + l > len)
            why = "truncated";
        if (why) {
            knob_free(off);
            knob_free(bytes);
            knob_free(buf);
            if (why[0] == 't')
                return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated at byte %zu in token %d of %d", path, len, id, n);
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: token %d %s (byte %zu)", path, id, why, at);
        }
        off[id] = k;
        memcpy(bytes + k, buf + at + 1, l);
        k += l;
        at += 1 + l;
    }
    off[n] = k;
    if (at != len) {
        knob_free(off);
        knob_free(bytes);
        knob_free(buf);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: %zu bytes after the last of %d tokens", path, len - at, n);
    }
    knob_free(buf);
    return knob_tok_new_pieces(t, KNOB_TOK_PIECES, n, bytes, off, eot, err);
}
