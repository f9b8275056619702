/* piece.c: a token's bytes made readable, the one escaper behind knob next, attention, embed and
 * tokenize. A piece is any bytes (a byte-level BPE token can hold half a UTF-8 character), so:
 * whole UTF-8 characters from U+00A0 up and printable ASCII stay as they are; newline, tab and
 * carriage return become \n \t \r; other control characters (C0, DEL, C1) and bytes that are not a
 * whole character become \xNN; the quote and the backslash are escaped in the quoted styles; the
 * label style shows a space as the open-box sign (U+2423).
 *
 * Not here: JSON strings (cli/output.c), the tokenizers (tokenizer.c, bpe.c). */
#include "knob_internal.h"

#include <stdio.h>
#include <string.h>

size_t knob_piece_escape(char *buf, size_t cap, const char *p, size_t n, knob_piece_style style)
{
    const unsigned char *u = (const unsigned char *)p;
    char quote = style == KNOB_PIECE_QUOTED ? '\'' : style == KNOB_PIECE_DQUOTED ? '"' : 0;
    size_t tail = quote ? 2 : 1;   /* room kept for the closing quote and the NUL */
    size_t need = 0, wrote = 0;    /* the whole length; what fits in buf */
    int full = cap < tail + (quote ? 1 : 0);
    char tmp[8];
    if (quote) {
        if (!full)
            buf[wrote++] = quote;
        need++;
    }
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t len = 1, w;
        const char *src = tmp;
        if (quote && (c == (unsigned char)quote || c == '\\')) {
            w = (size_t)snprintf(tmp, sizeof tmp, "\\%c", c);
        } else if (c == '\n' || c == '\t' || c == '\r') {
            w = (size_t)snprintf(tmp, sizeof tmp, "\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
        } else if (c == ' ' && !quote) {
            w = (size_t)snprintf(tmp, sizeof tmp, "\xe2\x90\xa3");
        } else if (c >= 0x20 && c < 0x7f) {
            tmp[0] = (char)c;
            w = 1;
        } else {
            uint32_t cp = 0;
            size_t l = (size_t)knob_utf8_decode(u + i, n - i, &cp);
            if (l && cp >= 0xa0) {
                src = p + i;
                w = len = l;
            } else {
                w = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
            }
        }
        if (!full && wrote + w + tail <= cap) {
            memcpy(buf + wrote, src, w);
            wrote += w;
        } else {
            full = 1;
        }
        need += w;
        i += len;
    }
    if (quote) {
        if (cap >= wrote + 2)
            buf[wrote++] = quote;
        need++;
    }
    if (cap)
        buf[KNOB_MIN(wrote, cap - 1)] = '\0';
    return need;
}
