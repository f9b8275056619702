/* cmd_embed.c: `knob embed MODEL WORD...`: each word's token embedding (the wte row; the mean of
 * its rows when the tokenizer cuts the word into several tokens), its nearest tokens by cosine
 * similarity, and DIR/embed.svg: the words and their nearest tokens projected on the first two
 * principal axes.
 *
 * Not here: numerics (cosine, PCA: src/models/embed.c), the model (src/models/lm.c), the piece
 * escaper (src/text/piece.c), knob attention (cmd_attention.c). */
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
    knob_lm *lm;
    if ((s = cli_check_out_dir(out, "--out", err)) || (s = knob_lm_open(&lm, pos[0], err)))
        return s;
    const knob_tokenizer *tok = knob_lm_tokenizer(lm);
    int n_words = n_pos - 1, C = knob_lm_config(lm)->n_embd, V = knob_lm_config(lm)->vocab_size;
    const float *E = knob_lm_wte(lm);   /* (V, C) */
    int space = !no_space && knob_tok_kind_of(tok) == KNOB_TOK_BPE;
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
    /* the tokenizer's name as knob_tok_describe gives it ("gpt2", "byte", "bpe:DIR"); a char
     * tokenizer's description lists its characters, so only its kind is shown */
    for (int w = 0; w < n_words && !s; w++) {   /* every word is checked before anything is printed */
        char text[512];
        snprintf(text, sizeof text, "%s%s", space ? " " : "", pos[1 + w]);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if ((s = knob_lm_encode(lm, text, strlen(text), 0, &ids, &n_ids, err)))
            s = knob_err_prefix(err, "knob embed: word %d '%.64s'", w + 1, pos[1 + w]);
        else if (n_ids == 0)
            s = knob_fail(err, KNOB_ERR_USAGE, "knob embed: word %d is empty", w + 1);
        knob_free(ids);
    }
    const char *desc = knob_lm_tok_desc(lm);
    if (!s)
        printf("%s: %d tokens x %d dimensions (wte); tokenizer %s (%d ids)\n", pos[0], V, C,
               strncmp(desc, "char:", 5) == 0 ? "char" : desc, knob_tok_vocab_size(tok));
    for (int w = 0; w < n_words && !s; w++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s", space ? " " : "", pos[1 + w]);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if ((s = knob_lm_encode(lm, text, strlen(text), 0, &ids, &n_ids, err)))
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
            printf(" (token %d '%s')", (int)ids[0], label(tok, ids[0], lb, sizeof lb));
        } else {
            printf(" (%zu tokens:", n_ids);
            for (size_t i = 0; i < n_ids; i++)
                printf(" '%s'", label(tok, ids[i], lb, sizeof lb));
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
        int n_rows = knob_tok_vocab_size(tok) < V ? knob_tok_vocab_size(tok) : V;   /* rows the tokenizer can name */
        int got = knob_cosine_top(E, n_rows, C, v, skip, n_skip, top, nb, sims);
        for (int i = 0; i < got; i++) {
            printf("  %2d. %+.4f  %s\n", i + 1, (double)sims[i], label(tok, nb[i], lb, sizeof lb));
            int dup = 0;   /* a neighbour already drawn (another word, or a shared neighbour) */
            for (int j = 0; j < n_pts && !dup; j++)
                dup = strcmp(labels[j], label(tok, nb[i], lb, sizeof lb)) == 0;
            if (i < plot_k && !dup) {
                memcpy(X + (size_t)n_pts * C, E + (size_t)nb[i] * C, (size_t)C * sizeof *X);
                label(tok, nb[i], labels[n_pts], sizeof labels[n_pts]);
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
    knob_lm_free(lm);
    return s;
}

