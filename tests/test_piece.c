/* test_piece.c: the token-piece escaper (src/text/piece.c), by hand: each style on spaces, control
 * characters, quotes, whole and partial UTF-8 characters, and a buffer too small. */
#include "test.h"

static const char *esc(const char *p, size_t n, knob_piece_style st)
{
    static char buf[128];
    size_t need = knob_piece_escape(buf, sizeof buf, p, n, st);
    CHECK(need == strlen(buf));
    return buf;
}

TEST(piece_escape_styles)
{
    CHECK(strcmp(esc(" the", 4, KNOB_PIECE_QUOTED), "' the'") == 0);
    CHECK(strcmp(esc("\n", 1, KNOB_PIECE_QUOTED), "'\\n'") == 0);
    CHECK(strcmp(esc("\xe2", 1, KNOB_PIECE_QUOTED), "'\\xe2'") == 0);             /* half a character */
    CHECK(strcmp(esc("\xe2\x82\xac!", 4, KNOB_PIECE_QUOTED), "'\xe2\x82\xac!'") == 0);   /* a whole one */
    CHECK(strcmp(esc("it's\\", 5, KNOB_PIECE_QUOTED), "'it\\'s\\\\'") == 0);
    CHECK(strcmp(esc("\"a\"\t\r", 5, KNOB_PIECE_DQUOTED), "\"\\\"a\\\"\\t\\r\"") == 0);
    CHECK(strcmp(esc("'", 1, KNOB_PIECE_DQUOTED), "\"'\"") == 0);
    CHECK(strcmp(esc("\x01\x7f\xc2\x85", 4, KNOB_PIECE_DQUOTED), "\"\\x01\\x7f\\xc2\\x85\"") == 0);   /* C0, DEL, C1 */
    CHECK(strcmp(esc("\0", 1, KNOB_PIECE_DQUOTED), "\"\\x00\"") == 0);
    CHECK(strcmp(esc(" a b", 4, KNOB_PIECE_LABEL), "\xe2\x90\xa3" "a" "\xe2\x90\xa3" "b") == 0);
    CHECK(strcmp(esc("\n\xff", 2, KNOB_PIECE_LABEL), "\\n\\xff") == 0);
    CHECK(strcmp(esc("", 0, KNOB_PIECE_QUOTED), "''") == 0);
}

TEST(piece_escape_cuts_at_a_whole_escape)
{
    char buf[8];
    /* 'ab\ncd' needs 9 bytes; 8 keep the quote, "ab", the whole \n, the closing quote, NUL */
    size_t need = knob_piece_escape(buf, sizeof buf, "ab\ncd", 5, KNOB_PIECE_QUOTED);
    CHECK(need == 8);
    CHECK(strcmp(buf, "'ab\\nc'") == 0);
    need = knob_piece_escape(buf, 6, "ab\ncd", 5, KNOB_PIECE_QUOTED);
    CHECK(need == 8 && strcmp(buf, "'ab'") == 0);   /* \n no longer fits with the closing quote */
    need = knob_piece_escape(buf, 1, "abc", 3, KNOB_PIECE_LABEL);
    CHECK(need == 3 && buf[0] == '\0');
    CHECK(knob_piece_escape(NULL, 0, "abc", 3, KNOB_PIECE_DQUOTED) == 5);
}
