/* cmd_inspect.c: `knob inspect FILE [--json]`: what is inside a safetensors file.
 *
 * The table lists each tensor (name, dtype, shape, element count, bytes) in file order, then the
 * total parameter count and the __metadata__ pairs, values cut at 200 characters. --json prints the
 * same facts as one JSON object, nothing cut, for scripts:
 *   {"file": ..., "tensors": [{"name", "dtype", "shape", "offsets"}], "n_params": ..., "metadata": {...}}
 *
 * knob_st_open validates the whole file first, so everything printed here is already checked; its
 * errors (which name the file and the cause) are passed through unchanged. Names and values come
 * from the file, so the table shows their control characters as '?' or a space, and the JSON
 * escapes them.
 */
#include "cli.h"

#include <string.h>

#define META_VALUE_MAX 200   /* characters of a metadata value the table shows */

/* ------------------------------------------------------------------------------------------------
 * Text helpers */

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Characters (UTF-8 code points) in s: what the terminal shows, for alignment. */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Prints at most max characters of s, control characters as a space (tab, newline) or '?';
 * "..." when cut. Returns the characters printed. */
static size_t put_clean(FILE *f, const char *s, size_t max)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int starts_char = (c & 0xc0) != 0x80;
        if (starts_char && n == max) {
            fputs("...", f);
            return n + 3;
        }
        n += starts_char;
        if (c == '\t' || c == '\n' || c == '\r')
            c = ' ';
        else if (c < 0x20 || c == 0x7f)
            c = '?';
        fputc(c, f);
    }
    return n;
}

static void put_padded(FILE *f, const char *s, size_t width)
{
    for (size_t n = put_clean(f, s, (size_t)-1); n < width; n++)
        fputc(' ', f);
}


/* ------------------------------------------------------------------------------------------------
 * Tensor facts (knob_st_open checked that products do not overflow) */

static unsigned long long entry_elems(const knob_st_entry *e)
{
    unsigned long long n = 1;
    for (int d = 0; d < e->n_dims; d++)
        n *= (unsigned long long)e->shape[d];
    return n;
}

static unsigned long long total_params(const knob_st *st)
{
    unsigned long long n = 0;
    for (int i = 0; i < st->n; i++)
        n += entry_elems(&st->e[i]);
    return n;
}

/* "(2, 3)"; "()" for a scalar. */
static void shape_str(const knob_st_entry *e, char *buf, size_t size)
{
    size_t j = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < e->n_dims && j < size; d++)
        j += (size_t)snprintf(buf + j, size - j, "%s%lld", d ? ", " : "", (long long)e->shape[d]);
    if (j < size)
        snprintf(buf + j, size - j, ")");
}

/* " (124.4M)" for big counts, "" below a thousand. */
static void human_count(unsigned long long n, char *buf, size_t size)
{
    static const char unit[] = "kMGTP";
    double v = (double)n;
    int u = -1;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u < 0)
        buf[0] = '\0';
    else
        snprintf(buf, size, " (%.1f%c)", v, unit[u]);
}

/* ------------------------------------------------------------------------------------------------
 * Table */

static void print_tensors(const knob_st *st, FILE *f)
{
    size_t w_name = 4, w_dtype = 5, w_shape = 5, w_elems = 8, w_bytes = 5;
    char shape[256], num[32];
    for (int i = 0; i < st->n; i++) {
        const knob_st_entry *e = &st->e[i];
        shape_str(e, shape, sizeof shape);
        w_name = max_size(w_name, text_width(e->name));
        w_dtype = max_size(w_dtype, text_width(e->dtype_name));
        w_shape = max_size(w_shape, strlen(shape));
        w_elems = max_size(w_elems, (size_t)snprintf(num, sizeof num, "%llu", entry_elems(e)));
        w_bytes = max_size(w_bytes, (size_t)snprintf(num, sizeof num, "%zu", e->end - e->begin));
    }
    fprintf(f, "%-*s  %-*s  %-*s  %*s  %*s\n", (int)w_name, "name", (int)w_dtype, "dtype",
            (int)w_shape, "shape", (int)w_elems, "elements", (int)w_bytes, "bytes");
    for (int i = 0; i < st->n; i++) {
        const knob_st_entry *e = &st->e[i];
        shape_str(e, shape, sizeof shape);
        put_padded(f, e->name, w_name);
        fputs("  ", f);
        put_padded(f, e->dtype_name, w_dtype);
        fprintf(f, "  %-*s  %*llu  %*zu\n", (int)w_shape, shape, (int)w_elems, entry_elems(e),
                (int)w_bytes, e->end - e->begin);
    }
}

static void print_metadata(const knob_st *st, FILE *f)
{
    if (st->n_meta == 0) {
        fprintf(f, "no metadata\n");
        return;
    }
    size_t w_key = 0;
    for (int i = 0; i < st->n_meta; i++)
        w_key = max_size(w_key, text_width(st->meta[i].key));
    w_key = w_key > 32 ? 32 : w_key;   /* one long key should not push every value off the screen */
    fprintf(f, "metadata (%d):\n", st->n_meta);
    for (int i = 0; i < st->n_meta; i++) {
        fputs("  ", f);
        put_padded(f, st->meta[i].key, w_key);
        fputs("  ", f);
        put_clean(f, st->meta[i].value, META_VALUE_MAX);
        fputc('\n', f);
    }
}

static void print_table(const knob_st *st, FILE *f)
{
    print_tensors(st, f);
    unsigned long long n_params = total_params(st);
    char human[32];
    human_count(n_params, human, sizeof human);
    fprintf(f, "\n%d tensor%s, %llu parameters%s, %zu bytes of data\n\n", st->n, st->n == 1 ? "" : "s",
            n_params, human, st->data_len);
    print_metadata(st, f);
}

/* ------------------------------------------------------------------------------------------------
 * JSON */

static void print_json_tensor(const knob_st_entry *e, FILE *f)
{
    fputs("{\"name\": ", f);
    cli_json_str(f, e->name);
    fputs(", \"dtype\": ", f);
    cli_json_str(f, e->dtype_name);
    fputs(", \"shape\": [", f);
    for (int d = 0; d < e->n_dims; d++)
        fprintf(f, "%s%lld", d ? ", " : "", (long long)e->shape[d]);
    fprintf(f, "], \"offsets\": [%zu, %zu]}", e->begin, e->end);
}

static void print_json(const knob_st *st, FILE *f)
{
    fputs("{\n  \"file\": ", f);
    cli_json_str(f, st->path);
    fputs(",\n  \"tensors\": [", f);
    for (int i = 0; i < st->n; i++) {
        fputs(i ? ",\n    " : "\n    ", f);
        print_json_tensor(&st->e[i], f);
    }
    fputs(st->n ? "\n  ],\n" : "],\n", f);
    fprintf(f, "  \"n_params\": %llu,\n  \"metadata\": {", total_params(st));
    for (int i = 0; i < st->n_meta; i++) {
        fputs(i ? ",\n    " : "\n    ", f);
        cli_json_str(f, st->meta[i].key);
        fputs(": ", f);
        cli_json_str(f, st->meta[i].value);
    }
    fputs(st->n_meta ? "\n  }\n}\n" : "}\n}\n", f);
}

/* ------------------------------------------------------------------------------------------------
 * The command */

knob_status cmd_inspect(int argc, char **argv, knob_err *err)
{
    int json = 0, help = 0, n_pos = 0;
    char *pos[1];
    const arg_def args[] = {
        { "json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print one JSON object (nothing cut) instead of a table" },
        { NULL, ARG_BOOL, NULL, NULL, 0, 0, NULL, NULL },
    };
    const cli_spec spec = {
        "inspect", "knob inspect FILE [--json]",
        "Lists the tensors in a safetensors file (name, dtype, shape, elements, bytes), the total\n"
        "parameter count and the __metadata__ keys and values. The file is fully validated first.",
        args, 1, 1,
    };
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s)
        return s;
    if (help)
        return KNOB_OK;
    knob_st st;
    if ((s = knob_st_open(&st, pos[0], err)))
        return s;
    if (json)
        print_json(&st, stdout);
    else
        print_table(&st, stdout);
    knob_st_close(&st);
    return KNOB_OK;
}
