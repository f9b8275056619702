/* cmd_tokenize.c: `knob tokenize [FILE]`: text -> token ids, and back with --decode.
 *
 * Reads FILE (stdin when absent or "-", or the --text string) and prints one token per line as
 * id<TAB>piece, the piece quoted and escaped so that spaces, control characters and bytes that are
 * not whole UTF-8 characters show ("\x0a" style for the latter). --ids prints only the ids, space
 * separated, on one line; --json one object with the counts and the ids. --decode reads ids
 * (separated by spaces, commas or newlines) and writes the bytes they stand for, unchanged.
 *
 * --tokenizer: gpt2 (default), byte, bpe:DIR (a trained BPE: DIR/encoder.json, DIR/vocab.bpe), a
 * char:"..." description, or llmc:FILE (an llm.c tokenizer file; decode only). "<|endoftext|>" in
 * the text is ordinary text unless --allow-special makes it the end-of-text id.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Reads a whole stream (stdin) into a knob_malloc'd buffer. */
static knob_status read_stream(FILE *f, const char *name, char **out, size_t *len, knob_err *err)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = knob_malloc(cap);
    if (!buf)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", name);
    for (;;) {
        if (n == cap) {
            char *b = knob_realloc(buf, cap * 2);
            if (!b) {
                knob_free(buf);
                return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory after %zu bytes", name, n);
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        knob_free(buf);
        return knob_fail(err, KNOB_ERR_IO, "%s: read failed: %s", name, strerror(errno));
    }
    *out = buf;
    *len = n;
    return KNOB_OK;
}

static knob_status read_input(const char *path, const char *text, char **out, size_t *len, knob_err *err)
{
    if (text) {
        *len = strlen(text);
        *out = knob_malloc(*len + 1);
        if (!*out)
            return knob_fail(err, KNOB_ERR_NOMEM, "out of memory");
        memcpy(*out, text, *len + 1);
        return KNOB_OK;
    }
    if (!path || strcmp(path, "-") == 0)
        return read_stream(stdin, "stdin", out, len, err);
    unsigned char *b;
    knob_status s = knob_read_file(path, &b, len, err);
    *out = (char *)b;
    return s;
}

static knob_status open_tokenizer(const char *name, knob_tokenizer **t, knob_err *err)
{
    knob_status s = strncmp(name, "llmc:", 5) == 0 ? knob_tok_read_llmc_pieces(t, name + 5, err)
                                                   : knob_tok_from_desc(t, name, err);
    return s ? knob_err_prefix(err, "--tokenizer") : KNOB_OK;
}

/* A piece as a quoted string (src/text/piece.c): printable text and whole UTF-8 characters as they
 * are; quotes, backslashes and control characters escaped; other bytes as \xNN. */
static void put_piece(FILE *f, const char *p, size_t n)
{
    char small[512];
    size_t need = knob_piece_escape(small, sizeof small, p, n, KNOB_PIECE_DQUOTED);
    char *buf = need < sizeof small ? small : knob_malloc(need + 1);
    if (!buf) {   /* out of memory: the cut copy rather than nothing */
        fputs(small, f);
        return;
    }
    if (buf != small)
        knob_piece_escape(buf, need + 1, p, n, KNOB_PIECE_DQUOTED);
    fwrite(buf, 1, need, f);
    if (buf != small)
        knob_free(buf);
}

/* --decode: ids separated by whitespace or commas (brackets allowed, as in a JSON list). */
static knob_status decode(const knob_tokenizer *t, const char *name, const char *in, size_t n, knob_err *err)
{
    int32_t *ids = knob_malloc((n / 2 + 1) * sizeof *ids);
    if (!ids)
        return knob_fail(err, KNOB_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        char c = in[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '[' || c == ']') {
            i++;
            continue;
        }
        if (c < '0' || c > '9') {
            knob_free(ids);
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: byte %zu: expected a token id, found '%c'", name, i,
                             c >= 0x20 && c < 0x7f ? c : '?');
        }
        long v = 0;
        size_t start = i;
        while (i < n && in[i] >= '0' && in[i] <= '9') {
            if (v > 100000000) {
                knob_free(ids);
                return knob_fail(err, KNOB_ERR_FORMAT, "%s: byte %zu: token id too large", name, start);
            }
            v = v * 10 + (in[i++] - '0');
        }
        ids[k++] = (int32_t)v;
    }
    char *text;
    size_t len;
    knob_status s = knob_tok_decode(t, ids, k, &text, &len, err);
    knob_free(ids);
    if (s) {
        knob_err inner = *err;
        return knob_fail(err, s, "%s: %s", name, inner.msg);
    }
    fwrite(text, 1, len, stdout);
    knob_free(text);
    return KNOB_OK;
}

knob_status cmd_tokenize(int argc, char **argv, knob_err *err)
{
    const char *tok_name = "gpt2", *text = NULL;
    int ids_only = 0, allow_special = 0, do_decode = 0, json = 0, help = 0, n_pos = 0;
    char *pos[1] = {NULL};
    const arg_def args[] = {
        { "tokenizer", ARG_STRING, &tok_name, "NAME", 0, 0, NULL,
          "gpt2, byte, bpe:DIR (DIR/encoder.json + DIR/vocab.bpe), char:\"...\", or llmc:FILE (decode only)" },
        { "text", ARG_STRING, &text, "TEXT", 0, 0, NULL, "tokenize this text instead of FILE or stdin" },
        { "ids", ARG_BOOL, &ids_only, NULL, 0, 0, NULL, "print only the ids, space-separated, on one line" },
        { "json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print {\"tokenizer\", \"n_bytes\", \"n_tokens\", \"ids\"}" },
        { "allow-special", ARG_BOOL, &allow_special, NULL, 0, 0, NULL,
          "read <|endoftext|> in the text as the end-of-text token (else it is ordinary text)" },
        { "decode", ARG_BOOL, &do_decode, NULL, 0, 0, NULL, "read token ids and write the text they stand for" },
        { NULL, ARG_BOOL, NULL, NULL, 0, 0, NULL, NULL },
    };
    const cli_spec spec = {
        "tokenize", "knob tokenize [FILE] [--tokenizer NAME] [--ids | --json] [--allow-special] [--decode]",
        "Splits text into tokens and prints one per line as id<TAB>\"piece\" (pieces escaped: \\n, \\t,\n"
        "\\xNN for bytes that are not whole UTF-8 characters). Reads FILE, or stdin when there is none.\n"
        "The default tokenizer is GPT-2's byte-level BPE, which gives GPT-2's own ids; every byte string\n"
        "round-trips (invalid UTF-8 is kept as raw bytes). --decode turns ids back into text.",
        args, 0, 1,
    };
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s)
        return s;
    if (help)
        return KNOB_OK;
    if (text && n_pos)
        return knob_fail(err, KNOB_ERR_USAGE, "knob tokenize: give FILE or --text, not both");
    if (ids_only && json)
        return knob_fail(err, KNOB_ERR_USAGE, "knob tokenize: --ids and --json exclude each other");
    if (do_decode && (json || ids_only || allow_special))
        return knob_fail(err, KNOB_ERR_USAGE,
                         "knob tokenize: --decode prints text; it takes no --ids, --json or --allow-special");
    knob_tokenizer *t;
    if ((s = open_tokenizer(tok_name, &t, err)))
        return s;
    char *in = NULL;
    size_t n = 0;
    if ((s = read_input(n_pos ? pos[0] : NULL, text, &in, &n, err))) {
        knob_tok_free(t);
        return s;
    }
    const char *source = text ? "--text" : n_pos && strcmp(pos[0], "-") ? pos[0] : "stdin";
    if (do_decode) {
        s = decode(t, source, in, n, err);
        knob_free(in);
        knob_tok_free(t);
        return s;
    }
    int32_t *ids;
    size_t n_ids;
    s = knob_tok_encode(t, in, n, allow_special, &ids, &n_ids, err);
    knob_free(in);
    if (s) {
        knob_tok_free(t);
        return knob_err_prefix(err, "%.256s", source);
    }
    if (ids_only) {
        for (size_t i = 0; i < n_ids; i++)
            printf(i ? " %d" : "%d", (int)ids[i]);
        printf("\n");
    } else if (json) {
        printf("{\"tokenizer\": ");
        cli_json_str(stdout, tok_name);
        printf(", \"n_bytes\": %zu, \"n_tokens\": %zu, \"ids\": [", n, n_ids);
        for (size_t i = 0; i < n_ids; i++)
            printf(i ? ", %d" : "%d", (int)ids[i]);
        printf("]}\n");
    } else {
        for (size_t i = 0; i < n_ids; i++) {
            size_t l;
            const char *p = knob_tok_piece(t, ids[i], &l);
            printf("%d\t", (int)ids[i]);
            put_piece(stdout, p, l);
            putchar('\n');
        }
    }
    if (cli_is_tty() && !json)
        fprintf(stderr, "%zu tokens from %zu bytes\n", n_ids, n);
    knob_free(ids);
    knob_tok_free(t);
    return KNOB_OK;
}
