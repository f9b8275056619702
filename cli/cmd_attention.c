/* cmd_attention.c: `knob attention MODEL TEXT`: runs TEXT through the model in one pass capturing
 * every layer's and head's attention probabilities, prints per head where the last token looks and
 * how much each head attends to the previous token and to the first one, and writes heat maps:
 * DIR/attention.svg (all layers x heads) and DIR/attention_layer<L>.svg (one layer, token labels).
 *
 * Not here: the model (src/models/lm.c), the piece escaper (src/text/piece.c). */
#include "cli.h"

#include <math.h>
#include <string.h>

/* A token's bytes as a printable label (src/text/piece.c): valid UTF-8 kept, a space as the
 * open-box sign, newline and tab as \n \t, other control or invalid bytes as \xNN. */
static const char *label(const knob_tokenizer *t, int id, char *buf, size_t cap)
{
    size_t len = 0;
    const char *p = knob_tok_piece(t, id, &len);
    knob_piece_escape(buf, cap, p ? p : "", p ? len : 0, KNOB_PIECE_LABEL);
    return buf;
}

/* s, then spaces up to width characters (UTF-8 aware) */
static void print_padded(const char *s, int width)
{
    int w = 0;
    for (const char *p = s; *p; p++)
        w += ((unsigned char)*p & 0xc0) != 0x80;
    fputs(s, stdout);
    for (; w < width; w++)
        fputc(' ', stdout);
}

/* ------------------------------------------------------------------------------------------------
 * knob attention */

/* white (0) to dark blue (1); sqrt so that small weights still show */
static void heat_color(float p, char *buf, size_t cap)
{
    double t = sqrt(p < 0 ? 0 : p > 1 ? 1 : (double)p);
    int r = (int)lround(255 - t * (255 - 8)), g = (int)lround(255 - t * (255 - 48)), b = (int)lround(255 - t * (255 - 107));
    snprintf(buf, cap, "#%02x%02x%02x", r, g, b);
}

/* One n x n map of att (rows: query positions; T: row stride) at (x, y), cells of size cs. */
static void heat_map(FILE *f, const float *att, int n, int T, double x, double y, double cs)
{
    char col[16];
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" stroke=\"#bbb\"/>\n", x, y,
            n * cs, n * cs);
    for (int q = 0; q < n; q++)
        for (int k = 0; k <= q; k++) {
            float p = att[(size_t)q * T + k];
            if (p < 0.005f)
                continue;
            heat_color(p, col, sizeof col);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>\n", x + k * cs,
                    y + q * cs, cs, cs, col);
        }
}

static knob_status write_grid_svg(const char *path, const float *buf, const knob_gpt_config *c, int n, knob_err *err)
{
    int L = c->n_layer, NH = c->n_head, T = c->block_size;
    double cs = n >= 60 ? 2 : 120.0 / n, map = cs * n, gap = 18, left = 60, top = 50;
    int W = (int)(left + NH * (map + gap) + 10), H = (int)(top + L * (map + gap) + 10);
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    knob_svg_begin(a.f, W, H);
    knob_svg_text(a.f, left, 24, "start", 15, "Attention probabilities: rows = query position, columns = key position");
    char t[32];
    for (int h = 0; h < NH; h++) {
        snprintf(t, sizeof t, "head %d", h);
        knob_svg_text(a.f, left + h * (map + gap) + map / 2, top - 6, "middle", 11, t);
    }
    for (int l = 0; l < L; l++) {
        snprintf(t, sizeof t, "layer %d", l);
        knob_svg_text(a.f, left - 6, top + l * (map + gap) + map / 2, "end", 11, t);
        for (int h = 0; h < NH; h++)
            heat_map(a.f, buf + ((size_t)l * NH + h) * (size_t)T * T, n, T, left + h * (map + gap),
                     top + l * (map + gap), cs);
    }
    knob_svg_end(a.f);
    return knob_atomic_commit(&a, err);
}

static knob_status write_layer_svg(const char *path, const float *buf, const knob_gpt_config *c, int l, int n,
                                   char (*labels)[64], knob_err *err)
{
    int NH = c->n_head, T = c->block_size;
    double cs = n > 40 ? 8 : 16, map = cs * n, gap = 30, left = 110, top = 110;
    int W = (int)(left + NH * (map + gap) + 10), H = (int)(top + map + 20);
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    knob_svg_begin(a.f, W, H);
    char t[96];
    snprintf(t, sizeof t, "Layer %d attention, %d heads (row: the token attending; column: the token attended to)",
             l, NH);
    knob_svg_text(a.f, 10, 20, "start", 14, t);
    for (int h = 0; h < NH; h++) {
        double x0 = left + h * (map + gap);
        snprintf(t, sizeof t, "head %d", h);
        knob_svg_text(a.f, x0 + map / 2, 38, "middle", 12, t);
        heat_map(a.f, buf + ((size_t)l * NH + h) * (size_t)T * T, n, T, x0, top, cs);
        for (int i = 0; i < n; i++) {   /* column labels, rotated */
            double x = x0 + (i + 0.7) * cs, y = top - 4;
            fprintf(a.f, "<g transform=\"rotate(-60 %.1f %.1f)\">", x, y);
            knob_svg_text(a.f, x, y, "start", cs > 10 ? 10 : 7, labels[i]);
            fputs("</g>\n", a.f);
        }
        if (h == 0)
            for (int i = 0; i < n; i++)
                knob_svg_text(a.f, x0 - 4, top + (i + 0.75) * cs, "end", cs > 10 ? 10 : 7, labels[i]);
    }
    knob_svg_end(a.f);
    return knob_atomic_commit(&a, err);
}

knob_status cmd_attention(int argc, char **argv, knob_err *err)
{
    const char *out = "out";
    int layers_svg = 1;
    const arg_def args[] = {
        {"out", ARG_STRING, &out, "DIR", 0, 0, NULL, "folder for attention.svg and attention_layer<L>.svg"},
        {"per-layer", ARG_INT, &layers_svg, "0|1", 0, 1, NULL, "also write one labelled SVG per layer"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "attention", "knob attention MODEL TEXT [--out DIR]",
        "Run TEXT through the model and show every layer's and head's attention: which earlier tokens each\n"
        "token draws on. Prints, per head, where the last token looks most and the share of attention\n"
        "on the previous token and on the first; writes heat maps to DIR/attention.svg (all heads) and\n"
        "DIR/attention_layer<L>.svg (one layer, with token labels).",
        args, 2, 2,
    };
    char *pos[2];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    knob_lm *lm;
    if ((s = cli_check_out_dir(out, "--out", err)) || (s = knob_lm_open(&lm, pos[0], err)))
        return s;
    const knob_tokenizer *tok = knob_lm_tokenizer(lm);
    int32_t *ids = NULL;
    size_t n = 0;
    const knob_gpt_config *c = knob_lm_config(lm);
    int L = c->n_layer, NH = c->n_head, T = c->block_size;
    s = knob_lm_encode(lm, pos[1], strlen(pos[1]), 0, &ids, &n, err);
    if (!s && n == 0)
        s = knob_fail(err, KNOB_ERR_USAGE, "knob attention: TEXT is empty");
    if (!s && n > (size_t)T)
        s = knob_fail(err, KNOB_ERR_USAGE, "knob attention: TEXT is %zu tokens; the model's context holds %d", n, T);
    size_t elems = (size_t)L * (size_t)NH * (size_t)T * (size_t)T;   /* at most 2^8 * 2^10 * 2^16 * 2^16 */
    float *buf = NULL;
    char (*labels)[64] = NULL;
    knob_lm_seq *seq = NULL;
    if (!s && elems > ((size_t)1 << 30))
        s = knob_fail(err, KNOB_ERR_USAGE, "knob attention: capturing %d layers x %d heads x %d x %d needs %zu MB; too big",
                      L, NH, T, T, elems / (1 << 18));
    if (!s && (!(buf = knob_calloc(elems, sizeof *buf)) || !(labels = knob_malloc(n * sizeof *labels))))
        s = knob_fail(err, KNOB_ERR_NOMEM, "knob attention: out of memory for %zu attention weights", elems);
    if (!s)
        s = knob_lm_seq_new(lm, &seq, err);
    if (!s) {   /* the whole text in one pass */
        knob_lm_capture_attention(seq, buf);
        s = knob_lm_feed(seq, ids, n, err);
    }
    for (size_t i = 0; i < n && !s; i++)
        label(tok, ids[i], labels[i], sizeof labels[i]);
    if (!s) {
        printf("%s: %zu tokens:", pos[1], n);
        for (size_t i = 0; i < n; i++)
            printf(" %s", labels[i]);
        printf("\n\nlayer head  last token looks most at     prev-token  first-token  (mean share of attention)\n");
        for (int l = 0; l < L; l++)
            for (int h = 0; h < NH; h++) {
                const float *A = buf + ((size_t)l * NH + h) * (size_t)T * T;
                int q = (int)n - 1, best = 0;
                for (int k = 1; k <= q; k++)
                    if (A[(size_t)q * T + k] > A[(size_t)q * T + best])
                        best = k;
                double prev = 0, first = 0;
                for (int t = 1; t < (int)n; t++) {
                    prev += A[(size_t)t * T + t - 1] / (double)(n - 1);
                    first += A[(size_t)t * T] / (double)(n - 1);
                }
                char who[96];
                snprintf(who, sizeof who, "%s (%d) %.2f", labels[best], best, (double)A[(size_t)q * T + best]);
                printf("%5d %4d  ", l, h);
                print_padded(who, 28);
                printf(" %10.2f %12.2f\n", n > 1 ? prev : 0.0, n > 1 ? first : 0.0);
            }
    }
    char path[4096];
    if (!s && !(s = knob_mkdirs(out, err))) {
        snprintf(path, sizeof path, "%s/attention.svg", out);
        s = write_grid_svg(path, buf, c, (int)n, err);
        for (int l = 0; l < L && !s && layers_svg; l++) {
            snprintf(path, sizeof path, "%s/attention_layer%d.svg", out, l);
            s = write_layer_svg(path, buf, c, l, (int)n, labels, err);
        }
        if (!s)
            printf("\nwrote %s/attention.svg%s\n", out, layers_svg ? " and one attention_layer<L>.svg per layer" : "");
    }
    knob_lm_seq_free(seq);
    knob_free(buf);
    knob_free(labels);
    knob_free(ids);
    knob_lm_free(lm);
    return s;
}
