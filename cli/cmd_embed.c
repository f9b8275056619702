/* cmd_embed.c: looking inside a GPT.
 *
 * `knob embed MODEL WORD...`: each word's token embedding (the wte row; the mean of its rows when
 * the tokenizer cuts the word into several tokens), its nearest tokens by cosine similarity, and
 * DIR/embed.svg: the words and their nearest tokens projected on the first two principal axes.
 *
 * `knob attention MODEL TEXT`: runs TEXT through the model with the KV-cache inference capturing
 * every layer's and head's attention probabilities, prints per head where the last token looks
 * and how much each head attends to the previous token and to the first one, and writes heat maps:
 * DIR/attention.svg (all layers x heads) and DIR/attention_layer<L>.svg (one layer, token labels).
 *
 * Numerics (cosine, PCA) live in src/models/embed.c; the model in src/models/gpt_infer.c. */
#include "cli.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Shared: opening a model with its tokenizer; token labels */

typedef struct {
    knob_params P;
    knob_gpt_config c;
    char *desc;
    knob_tokenizer *tok;
} model;

static void model_free(model *m)
{
    knob_tok_free(m->tok);
    knob_free(m->desc);
    knob_params_free(&m->P);
}

static knob_status model_open(model *m, const char *path, knob_err *err)
{
    memset(m, 0, sizeof *m);
    knob_status s = knob_gpt_open(path, &m->P, &m->c, &m->desc, NULL, err);
    if (!s && (s = knob_tok_from_desc(&m->tok, m->desc, err)))
        model_free(m);
    return s;
}

/* Encodes text; every id must be inside the model's vocabulary. *ids knob_malloc'd. */
static knob_status encode(const model *m, const char *text, int32_t **ids, size_t *n, knob_err *err)
{
    knob_status s = knob_tok_encode(m->tok, text, strlen(text), 0, ids, n, err);
    for (size_t i = 0; !s && i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= m->c.vocab_size) {
            s = knob_fail(err, KNOB_ERR_USAGE, "'%.64s' has token %d, outside the model's vocabulary of %d",
                          text, (int)(*ids)[i], m->c.vocab_size);
            knob_free(*ids);
            *ids = NULL;
        }
    return s;
}

/* A token's bytes as a printable label: valid UTF-8 kept, a space as the open-box sign, newline and
 * tab as \n \t, other control or invalid bytes as \xNN. */
static const char *label(const knob_tokenizer *t, int id, char *buf, size_t cap)
{
    size_t len = 0, o = 0;
    const unsigned char *s = (const unsigned char *)knob_tok_piece(t, id, &len);
    buf[0] = 0;
    for (size_t i = 0; s && i < len && o + 8 < cap;) {
        unsigned char c = s[i];
        size_t want = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 && c >= 0xc2 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 && c < 0xf5 ? 4 : 0;
        int ok = want > 0 && i + want <= len;
        for (size_t k = 1; ok && k < want; k++)
            ok = (s[i + k] & 0xc0) == 0x80;
        if (c == ' ') {
            o += (size_t)snprintf(buf + o, cap - o, "\xe2\x90\xa3");
        } else if (c == '\n' || c == '\t') {
            o += (size_t)snprintf(buf + o, cap - o, c == '\n' ? "\\n" : "\\t");
        } else if (!ok || c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
            want = 1;
        } else {
            memcpy(buf + o, s + i, want);
            o += want;
            buf[o] = 0;
        }
        i += want ? want : 1;
    }
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
 * knob embed */

typedef struct {
    const char *text;    /* word or token label */
    int is_word;
} point_info;

static knob_status write_embed_svg(const char *path, const float *xy, const point_info *info, int n,
                                   const float *var, knob_err *err)
{
    double *x = knob_malloc((size_t)n * 2 * sizeof *x), *y = x + n;
    if (!x)
        return knob_fail(err, KNOB_ERR_NOMEM, "embed: out of memory");
    for (int i = 0; i < n; i++) {
        x[i] = xy[2 * i];
        y[i] = xy[2 * i + 1];
    }
    double xlo, xhi, ylo, yhi;
    knob_range(x, n, &xlo, &xhi);
    knob_range(y, n, &ylo, &yhi);
    char title[160], xl[64], yl[64];
    snprintf(title, sizeof title, "Token embeddings on their first two principal axes (%.0f%% + %.0f%% of the variance)",
             100.0 * var[0], 100.0 * var[1]);
    snprintf(xl, sizeof xl, "principal axis 1");
    snprintf(yl, sizeof yl, "principal axis 2");
    knob_chart ch = {.left = 70, .top = 40, .width = 780, .height = 520, .xmin = xlo, .xmax = xhi, .ymin = ylo,
                     .ymax = yhi, .title = title, .xlabel = xl, .ylabel = yl};
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s) {
        knob_free(x);
        return s;
    }
    knob_svg_begin(a.f, 900, 620);
    knob_chart_axes(a.f, &ch);
    for (int pass = 0; pass < 2; pass++)   /* neighbours first, words on top */
        for (int i = 0; i < n; i++) {
            if (info[i].is_word != pass)
                continue;
            knob_chart_points(a.f, &ch, &x[i], &y[i], 1, pass ? "#c0392b" : "#7f8c8d", 0);
            double px = ch.left + (x[i] - xlo) / (xhi - xlo) * ch.width;
            double py = ch.top + ch.height - (y[i] - ylo) / (yhi - ylo) * ch.height;
            knob_svg_text(a.f, px + 6, py - 5, "start", pass ? 15 : 11, info[i].text);
        }
    knob_svg_end(a.f);
    knob_free(x);
    return knob_atomic_commit(&a, err);
}

knob_status cmd_embed(int argc, char **argv, knob_err *err)
{
    int top = 8, plot_k = 3, no_space = 0;
    const char *out = "out";
    const arg_def args[] = {
        {"top", ARG_INT, &top, "K", 1, 1000, NULL, "nearest tokens listed per word"},
        {"plot-neighbours", ARG_INT, &plot_k, "K", 0, 20, NULL, "nearest tokens of each word drawn in the plot"},
        {"no-space", ARG_BOOL, &no_space, NULL, 0, 0, NULL,
         "BPE: look words up as written (default: with a leading space, as words inside a sentence are)"},
        {"out", ARG_STRING, &out, "DIR", 0, 0, NULL, "folder for embed.svg"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "embed", "knob embed MODEL WORD... [options]",
        "Each WORD's token embedding (a row of wte; the mean of its rows when it is several tokens), the\n"
        "tokens nearest to it by cosine similarity, and DIR/embed.svg: the words and their nearest tokens\n"
        "projected on their first two principal axes. MODEL: any GPT file knob opens (knob, HF, llm.c).",
        args, 2, 64,
    };
    char *pos[64];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    model m;
    if ((s = model_open(&m, pos[0], err)))
        return s;
    int n_words = n_pos - 1, C = m.c.n_embd, V = m.c.vocab_size;
    const float *E = knob_params_find(&m.P, "wte.weight")->data;   /* (V, C) */
    int space = !no_space && knob_tok_kind_of(m.tok) == KNOB_TOK_BPE;
    int max_pts = n_words * (1 + plot_k);
    float *X = knob_malloc((size_t)max_pts * (size_t)C * sizeof *X);
    float *xy = knob_malloc((size_t)max_pts * 2 * sizeof *xy);
    int *nb = knob_malloc((size_t)top * sizeof *nb);
    float *sims = knob_malloc((size_t)top * sizeof *sims);
    point_info *info = knob_calloc((size_t)max_pts, sizeof *info);
    char (*labels)[96] = knob_malloc((size_t)max_pts * sizeof *labels);
    if (!X || !xy || !nb || !sims || !info || !labels)
        s = knob_fail(err, KNOB_ERR_NOMEM, "embed: out of memory");
    int n_pts = 0;
    printf("%s: %d tokens x %d dimensions (wte); tokenizer %s (%d ids)\n", pos[0], V, C,
           knob_tok_kind_name(knob_tok_kind_of(m.tok)), knob_tok_vocab_size(m.tok));
    for (int w = 0; w < n_words && !s; w++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s", space ? " " : "", pos[1 + w]);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if ((s = encode(&m, text, &ids, &n_ids, err)))
            break;
        if (n_ids == 0) {
            knob_free(ids);
            s = knob_fail(err, KNOB_ERR_USAGE, "knob embed: word %d is empty", w + 1);
            break;
        }
        float *v = X + (size_t)n_pts * C;   /* the word's vector: mean of its token rows */
        memset(v, 0, (size_t)C * sizeof *v);
        for (size_t i = 0; i < n_ids; i++)
            for (int c = 0; c < C; c++)
                v[c] += E[(size_t)ids[i] * C + c] / (float)n_ids;
        char lb[96];
        printf("\n%s", pos[1 + w]);
        if (n_ids == 1) {
            printf(" (token %d '%s')", (int)ids[0], label(m.tok, ids[0], lb, sizeof lb));
        } else {
            printf(" (%zu tokens:", n_ids);
            for (size_t i = 0; i < n_ids; i++)
                printf(" '%s'", label(m.tok, ids[i], lb, sizeof lb));
            printf("; their mean)");
        }
        printf(", nearest by cosine:\n");
        int skip[64], n_skip = n_ids < 64 ? (int)n_ids : 64;
        for (int i = 0; i < n_skip; i++)
            skip[i] = ids[i];
        knob_free(ids);
        snprintf(labels[n_pts], sizeof labels[n_pts], "%s", pos[1 + w]);
        info[n_pts] = (point_info){labels[n_pts], 1};
        n_pts++;
        int n_rows = knob_tok_vocab_size(m.tok) < V ? knob_tok_vocab_size(m.tok) : V;   /* rows the tokenizer can name */
        int got = knob_cosine_top(E, n_rows, C, v, skip, n_skip, top, nb, sims);
        for (int i = 0; i < got; i++) {
            printf("  %2d. %+.4f  %s\n", i + 1, (double)sims[i], label(m.tok, nb[i], lb, sizeof lb));
            int dup = 0;   /* a neighbour already drawn (another word, or a shared neighbour) */
            for (int j = 0; j < n_pts && !dup; j++)
                dup = strcmp(labels[j], label(m.tok, nb[i], lb, sizeof lb)) == 0;
            if (i < plot_k && !dup) {
                memcpy(X + (size_t)n_pts * C, E + (size_t)nb[i] * C, (size_t)C * sizeof *X);
                label(m.tok, nb[i], labels[n_pts], sizeof labels[n_pts]);
                info[n_pts] = (point_info){labels[n_pts], 0};
                n_pts++;
            }
        }
    }
    float var[2] = {0, 0};
    char path[4096];
    snprintf(path, sizeof path, "%s/embed.svg", out);
    if (!s && (s = knob_pca2(X, n_pts, C, xy, var, err)) == KNOB_OK && (s = knob_mkdirs(out, err)) == KNOB_OK &&
        (s = write_embed_svg(path, xy, info, n_pts, var, err)) == KNOB_OK)
        printf("\nwrote %s (%d point%s; axes hold %.0f%% and %.0f%% of their variance)\n", path, n_pts,
               n_pts == 1 ? "" : "s", 100.0 * var[0], 100.0 * var[1]);
    knob_free(X);
    knob_free(xy);
    knob_free(nb);
    knob_free(sims);
    knob_free(info);
    knob_free(labels);
    model_free(&m);
    return s;
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
    model m;
    if ((s = model_open(&m, pos[0], err)))
        return s;
    int32_t *ids = NULL;
    size_t n = 0;
    const knob_gpt_config *c = &m.c;
    int L = c->n_layer, NH = c->n_head, T = c->block_size;
    s = encode(&m, pos[1], &ids, &n, err);
    if (!s && n == 0)
        s = knob_fail(err, KNOB_ERR_USAGE, "knob attention: TEXT is empty");
    if (!s && n > (size_t)T)
        s = knob_fail(err, KNOB_ERR_USAGE, "knob attention: TEXT is %zu tokens; the model's context holds %d", n, T);
    size_t elems = (size_t)L * (size_t)NH * (size_t)T * (size_t)T;   /* at most 2^8 * 2^10 * 2^16 * 2^16 */
    float *buf = NULL;
    char (*labels)[64] = NULL;
    knob_gpt_infer *inf = NULL;
    if (!s && elems > ((size_t)1 << 30))
        s = knob_fail(err, KNOB_ERR_USAGE, "knob attention: capturing %d layers x %d heads x %d x %d needs %zu MB; too big",
                      L, NH, T, T, elems / (1 << 18));
    if (!s && (!(buf = knob_calloc(elems, sizeof *buf)) || !(labels = knob_malloc(n * sizeof *labels))))
        s = knob_fail(err, KNOB_ERR_NOMEM, "knob attention: out of memory for %zu attention weights", elems);
    if (!s)
        s = knob_gpt_infer_new(&inf, &m.P, c, err);
    if (!s)
        knob_gpt_infer_capture_attention(inf, buf);
    for (size_t i = 0; i < n && !s; i++) {
        const float *logits;
        s = knob_gpt_infer_step(inf, ids[i], &logits, err);
        label(m.tok, ids[i], labels[i], sizeof labels[i]);
    }
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
    knob_gpt_infer_free(inf);
    knob_free(buf);
    knob_free(labels);
    knob_free(ids);
    model_free(&m);
    return s;
}
