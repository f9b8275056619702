/* tour_gpt.c: chapters 13, 14 and 15 of `knob tour`: a GPT trained on the fortunes for the time the
 * tour gives it (its loss curve, what it writes, its attention over one sentence), the same model
 * at three temperatures, and what models a thousand and a million times larger would cost on this
 * machine at the speed measured here (knob_gpt_cost_of, src/models/gpt.c). The training is
 * src/models/gpt_train.c; generation and attention capture src/models/lm.c. */
#include "tour.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORTUNES "/usr/share/games/fortunes"
#define SENTENCE "The cat sat on the mat."

/* ------------------------------------------------------------------------------------------------
 * Training a GPT on the fortunes (chapter 13, and chapter 14 when 13 has not run) */

typedef struct curve {
    double *x, *y;
    long n, cap;
} curve;

static int curve_push(curve *c, double x, double y)
{
    if (c->n == c->cap) {
        long cap = c->cap ? 2 * c->cap : 256;
        double *nx = knob_realloc(c->x, (size_t)cap * sizeof *nx);
        if (!nx)
            return 0;
        c->x = nx;
        double *ny = knob_realloc(c->y, (size_t)cap * sizeof *ny);
        if (!ny)
            return 0;
        c->y = ny;
        c->cap = cap;
    }
    c->x[c->n] = x;
    c->y[c->n] = y;
    c->n++;
    return 1;
}

static void curve_free(curve *c)
{
    knob_free(c->x);
    knob_free(c->y);
    memset(c, 0, sizeof *c);
}

typedef struct gpt_view {
    tour_ctx *t;
    curve train, val;
    int oom;
    double first_val;
} gpt_view;

static void on_event(const knob_gpt_event *e, void *ctx)
{
    gpt_view *v = ctx;
    if (e->kind == KNOB_GPT_EV_EVAL) {
        if (!curve_push(&v->val, (double)e->step.step, (double)e->val_loss))
            v->oom = 1;
        if (v->val.n == 1)
            v->first_val = e->val_loss;
        return;
    }
    if (e->kind != KNOB_GPT_EV_STEP)
        return;
    if (!e->step.skipped && !curve_push(&v->train, (double)e->step.step, (double)e->step.loss))
        v->oom = 1;
    tour_progress(v->t, "step %ld/%ld  loss %.3f  %.0f tokens/s  %.0f s left", e->step.step, e->steps,
                  (double)e->step.loss, e->tok_s, e->eta);
}

typedef struct gpt_result {
    knob_gpt_train_config cfg;
    knob_gpt_run_result run;
    size_t n_train, n_val, len;
    int n_files;
    double tokens_per_step;
} gpt_result;

/* Trains a char-level GPT on the fortunes for `seconds` into ckpt (small: a smaller model). */
static knob_status train_gpt(tour_ctx *t, double seconds, int small, const char *ckpt, gpt_view *v, gpt_result *res,
                             knob_err *err)
{
    char **files = NULL, *text = NULL, *desc = NULL, cache[4096];
    int n_files = 0, cached = 0;
    size_t len = 0, n_tok = 0;
    uint16_t *tok = NULL;
    knob_tokenizer *tk = NULL;
    knob_gpt_trainer *tr = NULL;
    const char *corpus[1] = {FORTUNES};
    knob_status s = knob_corpus_files(corpus, 1, &files, &n_files, err);
    if (s || (s = knob_corpus_read(files, n_files, &text, &len, err)) ||
        (s = knob_tok_new_char(&tk, text, len, err)) || (s = knob_tok_describe(tk, &desc, err)) ||
        (s = knob_corpus_tokens(tour_path(t, "tokens.bin", cache), files, n_files, text, len, tk, desc, &tok, &n_tok,
                                &cached, err)))
        goto done;
    knob_gpt_train_config c;
    knob_gpt_train_config_default(&c);   /* 4 layers, 4 heads, C 128, context 64 */
    c.batch = 16;   /* half the default batch: twice the steps in the same time, which a short run needs */
    if (small) {
        c.model.n_layer = 2;
        c.model.n_head = 2;
        c.model.n_embd = 64;
        c.model.block_size = 32;
        c.batch = 16;
    }
    c.model.vocab_size = knob_tok_vocab_size(tk);
    c.seq_len = c.model.block_size;
    c.seed = tour_seed(t);
    c.val_frac = 0.05f;
    size_t n_val = (size_t)((double)n_tok * c.val_frac), n_train = n_tok - n_val;
    if ((s = knob_gpt_trainer_new(&tr, &c, tok, n_train, tok + n_train, n_val, err)) ||
        (s = knob_gpt_trainer_set_corpus(tr, files, n_files, text, len, err)))
        goto done;
    knob_gpt_run run = {.eval_every = small ? 40 : 100, .eval_batches = 4, .ckpt_every = 1000000000,
                        .time_limit = seconds, .ckpt_path = ckpt, .tok_desc = desc};
    if ((s = knob_gpt_trainer_run(tr, &run, on_event, v, &res->run, err)))
        goto done;
    if (v->oom) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory keeping the loss curve");
        goto done;
    }
    res->cfg = c;
    res->n_train = n_train;
    res->n_val = n_val;
    res->len = len;
    res->n_files = n_files;
    res->tokens_per_step = (double)c.batch * c.seq_len * c.accum;
done:
    knob_gpt_trainer_free(tr);
    knob_tok_free(tk);
    knob_free(tok);
    knob_free(desc);
    knob_free(text);
    knob_corpus_files_free(files, n_files);
    return s;
}

knob_status tour_train_fortune_gpt(tour_ctx *t, double seconds, int small, const char *ckpt, knob_err *err)
{
    gpt_view v = {.t = t};
    gpt_result r;
    knob_status s = train_gpt(t, seconds, small, ckpt, &v, &r, err);
    curve_free(&v.train);
    curve_free(&v.val);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Pictures */

static knob_status loss_svg(const char *path, const gpt_view *v, const char *title, knob_err *err)
{
    if (v->train.n == 0)
        return knob_fail(err, KNOB_ERR_NUMERIC, "%s: no training step was run", path);
    long n = v->train.n;
    double *smooth = knob_malloc((size_t)n * sizeof *smooth);
    if (!smooth)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    double acc = 0;
    for (long i = 0; i < n; i++) {   /* a running mean over 20 steps: the trend under the batch noise */
        acc += v->train.y[i];
        if (i >= 20)
            acc -= v->train.y[i - 20];
        smooth[i] = acc / (double)(i + 1 < 20 ? i + 1 : 20);
    }
    double lo, hi;
    knob_range(v->train.y, (int)n, &lo, &hi);
    for (long i = 0; i < v->val.n; i++) {
        lo = fmin(lo, v->val.y[i]);
        hi = fmax(hi, v->val.y[i]);
    }
    knob_chart ch = {.left = 80, .top = 50, .width = 600, .height = 330, .xmin = 0, .xmax = v->train.x[n - 1],
                     .ymin = fmax(0, lo - 0.1), .ymax = hi + 0.1, .title = title, .xlabel = "optimizer step",
                     .ylabel = "loss (nats per character)"};
    if (!(ch.xmax > ch.xmin))
        ch.xmax = ch.xmin + 1;
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (!s) {
        knob_svg_begin(a.f, 740, 440);
        knob_chart_axes(a.f, &ch);
        knob_chart_line(a.f, &ch, v->train.x, v->train.y, (int)n, "#aed6f1", 0);
        knob_chart_line(a.f, &ch, v->train.x, smooth, (int)n, "#2471a3", 0);
        if (v->val.n) {
            knob_chart_line(a.f, &ch, v->val.x, v->val.y, (int)v->val.n, "#c0392b", 0);
            knob_chart_points(a.f, &ch, v->val.x, v->val.y, (int)v->val.n, "#c0392b", 0);
        }
        const char *labels[3] = {"training batch", "training, mean of 20 steps", "validation (held-out fortunes)"};
        const char *colors[3] = {"#aed6f1", "#2471a3", "#c0392b"};
        knob_chart_legend_at(a.f, ch.left + ch.width - 228, ch.top + 8, 220, v->val.n ? 3 : 2, labels, colors, NULL);
        knob_svg_text(a.f, 80, 428, "start", 12, "A loss of ln(V) is a uniform guess over the characters; "
                                                   "each nat less is the model being e times surer.");
        knob_svg_end(a.f);
        s = knob_atomic_commit(&a, err);
    }
    knob_free(smooth);
    return s;
}

/* white (0) to dark blue (1), on a square-root scale so that small weights still show */
static void heat_color(double p, char *buf, size_t cap)
{
    double t = sqrt(p < 0 ? 0 : p > 1 ? 1 : p);
    snprintf(buf, cap, "#%02x%02x%02x", (int)lround(255 - t * 247), (int)lround(255 - t * 207),
             (int)lround(255 - t * 148));
}

static void svg_label(FILE *f, double x, double y, const char *anchor, int size, const char *text, double rotate)
{
    if (rotate != 0)
        fprintf(f, "<g transform=\"rotate(%.0f %.1f %.1f)\">", rotate, x, y);
    knob_svg_text(f, x, y, anchor, size, text);
    if (rotate != 0)
        fputs("</g>\n", f);
}

/* Every layer and head's attention over the n tokens (labels), one labelled map each, and a scale. */
static knob_status attention_svg(const char *path, const float *att, const knob_gpt_config *c, int n,
                                 char (*labels)[16], knob_err *err)
{
    int L = c->n_layer, NH = c->n_head, T = c->block_size;
    double cs = 8, map = cs * n, gapx = 44, gapy = 56, left = 70, top = 90;
    int W = (int)(left + NH * (map + gapx) + 20), H = (int)(top + L * (map + gapy) + 70);
    if (W < 700)
        W = 700;
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    FILE *f = a.f;
    knob_svg_begin(f, W, H);
    knob_svg_text(f, 10, 22, "start", 15, "Attention of the tour's GPT reading \"" SENTENCE "\"");
    knob_svg_text(f, 10, 42, "start", 12, "row: the character attending (query); column: the character it reads "
                                          "(key); only earlier characters can be read");
    char col[16], t[64];
    for (int l = 0; l < L; l++)
        for (int h = 0; h < NH; h++) {
            double x0 = left + h * (map + gapx), y0 = top + l * (map + gapy);
            snprintf(t, sizeof t, "layer %d, head %d", l, h);
            knob_svg_text(f, x0 + map / 2, y0 - 16, "middle", 11, t);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" stroke=\"#999\"/>\n",
                    x0, y0, map, map);
            const float *m = att + ((size_t)l * NH + h) * (size_t)T * T;
            for (int q = 0; q < n; q++)
                for (int k = 0; k <= q; k++) {
                    double p = m[(size_t)q * T + k];
                    if (p < 0.004)
                        continue;
                    heat_color(p, col, sizeof col);
                    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
                            x0 + k * cs, y0 + q * cs, cs, cs, col);
                }
            for (int i = 0; i < n; i++) {
                svg_label(f, x0 + (i + 0.5) * cs, y0 - 3, "middle", 7, labels[i], 0);
                if (h == 0)
                    svg_label(f, x0 - 3, y0 + (i + 0.8) * cs, "end", 7, labels[i], 0);
            }
        }
    /* the colour scale */
    double sx = left, sy = H - 40, sw = 240, sh = 12;
    knob_svg_text(f, sx, sy - 6, "start", 11, "attention weight (share of the reading; each row sums to 1)");
    for (int i = 0; i < 48; i++) {
        heat_color((i + 0.5) / 48.0, col, sizeof col);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"/>\n", sx + i * sw / 48, sy,
                sw / 48 + 0.3, sh, col);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", sx, sy,
            sw, sh);
    const double ticks[4] = {0, 0.1, 0.5, 1};
    for (int i = 0; i < 4; i++) {
        snprintf(t, sizeof t, "%g", ticks[i]);
        knob_svg_text(f, sx + sqrt(ticks[i]) * sw, sy + sh + 12, "middle", 10, t);
    }
    knob_svg_text(f, sx + sw + 12, sy + sh, "start", 10, "(square-root scale)");
    knob_svg_end(f);
    return knob_atomic_commit(&a, err);
}

/* ------------------------------------------------------------------------------------------------
 * Words: how much of what the model writes is English */

static int is_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Whether word (n letters, any case) occurs as a whole word in text. */
static int word_in(const char *text, size_t len, const char *word, size_t n)
{
    for (size_t i = 0; i + n <= len; i++) {
        if ((i > 0 && is_letter((unsigned char)text[i - 1])) || (i + n < len && is_letter((unsigned char)text[i + n])))
            continue;
        size_t j = 0;
        while (j < n && (text[i + j] | 0x20) == (word[j] | 0x20))
            j++;
        if (j == n)
            return 1;
    }
    return 0;
}

/* Counts the words (runs of 2+ letters) of s and how many occur in the corpus text. */
static void count_words(const char *s, const char *text, size_t len, int *n_words, int *n_real)
{
    *n_words = *n_real = 0;
    for (const char *p = s; *p;) {
        if (!is_letter((unsigned char)*p)) {
            p++;
            continue;
        }
        const char *q = p;
        while (is_letter((unsigned char)*q))
            q++;
        if (q - p >= 2 && !(*q && (unsigned char)*q >= 0x80)) {
            (*n_words)++;
            *n_real += word_in(text, len, p, (size_t)(q - p));
        }
        p = q;
    }
}

/* A block of generated text shown on one screen: control characters as spaces except newlines. */
static void tidy(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\n')
            *s = ' ';
}

static knob_status generate(knob_lm *lm, const char *prompt, float temperature, int max_tokens, uint64_t seed,
                            char **out, knob_err *err)
{
    knob_lm_seq *q = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    knob_rng r;
    knob_rng_seed(&r, seed);
    knob_lm_gen_result res;
    knob_status s = knob_lm_seq_new(lm, &q, err);
    if (s || (s = knob_lm_encode(lm, prompt, strlen(prompt), 0, &ids, &n, err)) || (s = knob_lm_feed(q, ids, n, err)))
        goto done;
    knob_lm_gen g = {.max_tokens = max_tokens, .sampler = {temperature, 0, 1.0f}, .rng = &r};
    if ((s = knob_lm_generate(q, &g, &res, err)))
        goto done;
    size_t pl = strlen(prompt);
    *out = knob_malloc(pl + res.len + 1);
    if (!*out) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
        goto done;
    }
    memcpy(*out, prompt, pl);
    memcpy(*out + pl, res.text, res.len + 1);
    tidy(*out);
done:
    knob_free(ids);
    knob_lm_seq_free(q);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 13: a GPT */

/* Share of attention on the previous token and on the first, averaged over query positions 1.. */
static void head_stats(const float *m, int n, int T, double *prev, double *first)
{
    *prev = *first = 0;
    for (int q = 1; q < n; q++) {
        *prev += m[(size_t)q * T + q - 1];
        *first += m[(size_t)q * T];
    }
    *prev /= n - 1;
    *first /= n - 1;
}

knob_status tour_ch_gpt(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t);
    double train_s = tour_budget(t) * (quick ? 0.6 : 0.85);
    char ckpt[4096], path[4096];
    tour_path(t, "gpt.safetensors", ckpt);
    tour_say(t, "This is the idea behind ChatGPT, small enough to watch: a GPT (a stack of transformer blocks: "
                "attention, then a small neural net, each with a shortcut around it) learns to predict the next "
                "character of the fortune files, about 2.8 MB of jokes, quotes and poems. Nobody tells it what a "
                "word is. It trains here for %.0f seconds; the loss it reports is how surprised it is by the next "
                "character of text it has not trained on.", train_s);
    gpt_view v = {.t = t};
    gpt_result r;
    memset(&r, 0, sizeof r);
    knob_status s = train_gpt(t, train_s, quick, ckpt, &v, &r, err);
    knob_lm *lm = NULL;
    float *att = NULL;
    char *text = NULL, *sample = NULL;
    size_t len = 0;
    if (s)
        goto done;
    const knob_gpt_config *c = &r.cfg.model;
    knob_gpt_cost cost;
    knob_gpt_config at_seq = *c;
    at_seq.block_size = r.cfg.seq_len;
    knob_gpt_cost_of(&at_seq, &cost);
    double flops_s = r.run.tok_s * cost.flops_train;
    tour_set_gpt(t, ckpt, r.run.tok_s, flops_s);
    double uniform = log((double)c->vocab_size);
    tour_number(t, "model", "%d layers, %d heads, width %d, context %d characters", c->n_layer, c->n_head, c->n_embd,
                c->block_size);
    tour_number(t, "parameters (knobs)", "%.0f", cost.n_params);
    tour_number(t, "characters in the vocabulary", "%d", c->vocab_size);
    tour_number(t, "training / held-out characters", "%zu / %zu", r.n_train, r.n_val);
    tour_number(t, "optimizer steps in the time given", "%ld (%.0f characters each)", r.run.steps_done,
                r.tokens_per_step);
    tour_number(t, "training speed", "%.0f characters/s = %.2f GFLOP/s", r.run.tok_s, flops_s / 1e9);
    tour_number(t, "loss of a uniform guess, ln(V)", "%.3f nats", uniform);
    if (v.val.n) {
        tour_number(t, "held-out loss at the first check", "%.3f nats (step %.0f)", v.first_val, v.val.x[0]);
        tour_number(t, "held-out loss at the end", "%.3f nats (perplexity %.2f)", (double)r.run.val_loss,
                    exp((double)r.run.val_loss));
    }
    if ((s = loss_svg(tour_path(t, "loss.svg", path), &v, "A GPT learning the fortunes: loss by step", err)))
        goto done;
    tour_picture(t, "loss.svg", "Training and held-out loss by optimizer step. The held-out loss is measured on "
                                "fortunes the model never trains on, so its fall is learning, not memorising.");
    tour_say(t, "The loss started near %.2f nats, the loss of guessing uniformly among %d characters, and ended at "
                "%.2f: the model now gives the right next character a probability of about %.0f%% on average "
                "(e to the minus loss, as a geometric mean).", uniform, c->vocab_size, (double)r.run.val_loss,
             100 * exp(-(double)r.run.val_loss));

    /* what it writes */
    if ((s = knob_lm_open(&lm, ckpt, err)) || (s = tour_read_fortunes(&text, &len, err)) ||
        (s = generate(lm, "The ", 0.8f, quick ? 120 : 300, tour_seed(t), &sample, err)))
        goto done;
    tour_heading(t, "What it writes");
    tour_pre(t, sample);
    int n_words = 0, n_real = 0;
    count_words(sample, text, len, &n_words, &n_real);
    tour_number(t, "words it wrote (2+ letters)", "%d", n_words);
    tour_number(t, "of them English words found in the fortunes", "%d (%.0f%%)", n_real,
                n_words ? 100.0 * n_real / n_words : 0);
    double frac = n_words ? (double)n_real / n_words : 0;
    tour_say(t, "Sampled at temperature 0.8 after the prompt \"The \". Of the %d words it wrote, %d (%.0f%%) are "
                "real words that occur in the fortunes. %s It has seen the text for %ld steps and was never told "
                "what a word or a space is.",
             n_words, n_real, 100 * frac,
             frac >= 0.7 ? "From characters alone it has learned to spell most of what it writes; the grammar is "
                           "still loose and the rest are its own inventions."
             : frac >= 0.4 ? "It has learned the short common words and the rhythm of words and spaces; the "
                             "longer words are still its own inventions."
                           : quick ? "So far it has learned mostly which characters are common and where spaces "
                                     "go; the full tour gives it more time, and the words come."
                                   : "So far it has learned mostly which characters are common and where spaces "
                                     "go: its time bought few steps at the speed above. A faster or quieter "
                                     "machine gets more steps in the same time, and the words come.",
             r.run.steps_done);

    /* attention over one sentence */
    const knob_gpt_config *lc = knob_lm_config(lm);
    size_t att_n = (size_t)lc->n_layer * lc->n_head * lc->block_size * lc->block_size;
    att = knob_calloc(att_n, sizeof *att);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    knob_lm_seq *q = NULL;
    if (!att) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
        goto done;
    }
    if ((s = knob_lm_encode(lm, SENTENCE, strlen(SENTENCE), 0, &ids, &n_ids, err)) || (s = knob_lm_seq_new(lm, &q, err)))
        goto att_done;
    if ((int)n_ids > lc->block_size)
        n_ids = (size_t)lc->block_size;
    knob_lm_capture_attention(q, att);
    if ((s = knob_lm_feed(q, ids, n_ids, err)))
        goto att_done;
    char (*labels)[16] = knob_malloc(n_ids * sizeof *labels);
    if (!labels) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
        goto att_done;
    }
    for (size_t i = 0; i < n_ids; i++) {
        size_t pl = 0;
        const char *p = knob_tok_piece(knob_lm_tokenizer(lm), ids[i], &pl);
        knob_piece_escape(labels[i], sizeof labels[i], p ? p : "", p ? pl : 0, KNOB_PIECE_LABEL);
    }
    s = attention_svg(tour_path(t, "attention.svg", path), att, lc, (int)n_ids, labels, err);
    knob_free(labels);
    if (s)
        goto att_done;
    tour_picture(t, "attention.svg", "Where each character of the sentence looks, in every layer and head. Dark "
                                     "cells are where the attention goes.");
    int best_l = 0, best_h = 0;
    double best_prev = -1, best_first = 0;
    for (int l = 0; l < lc->n_layer; l++)
        for (int h = 0; h < lc->n_head; h++) {
            double prev, first;
            head_stats(att + ((size_t)l * lc->n_head + h) * lc->block_size * lc->block_size, (int)n_ids,
                       lc->block_size, &prev, &first);
            if (prev > best_prev) {
                best_prev = prev;
                best_first = first;
                best_l = l;
                best_h = h;
            }
        }
    tour_number(t, "head that most reads the previous character", "layer %d, head %d: %.0f%% of its attention",
                best_l, best_h, 100 * best_prev);
    tour_say(t, "Attention is how a character gathers what came before it. Each map is one head: a row is a "
                "character of \"%s\" and its dark cells are the earlier characters it reads. A head that looks "
                "one step back draws a dark line just left of the diagonal: here layer %d, head %d puts %.0f%% of "
                "its attention on the previous character (and %.0f%% on the first). The other heads spread their "
                "reading differently: compare where their dark cells fall.", SENTENCE, best_l, best_h, 100 * best_prev,
             100 * best_first);
att_done:
    knob_lm_seq_free(q);
    knob_free(ids);
done:
    knob_free(att);
    knob_free(sample);
    knob_free(text);
    knob_lm_free(lm);
    curve_free(&v.train);
    curve_free(&v.val);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 14: temperature */

/* Bars: the k most likely next characters' probabilities at three temperatures. */
static knob_status temp_svg(const char *path, const knob_tokenizer *tok, const int *top, int k, const float *probs,
                            int V, const float *temps, const char *prompt, knob_err *err)
{
    static const char *const colors[3] = {"#2471a3", "#27ae60", "#e67e22"};
    double hi = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < k; j++)
            hi = fmax(hi, 100.0 * probs[(size_t)i * V + top[j]]);
    char title[160];
    snprintf(title, sizeof title, "Next character after \"%.60s\" at three temperatures", prompt);
    knob_chart c = {.left = 80, .top = 50, .width = 620, .height = 320, .xmin = 0.5, .xmax = k + 0.5, .ymin = 0,
                    .ymax = ceil(hi / 10) * 10, .title = title,
                    .xlabel = "rank of the next character (1: the most likely)",
                    .ylabel = "probability (%)"};
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    knob_svg_begin(a.f, 760, 480);
    knob_chart_axes(a.f, &c);
    knob_svg_text(a.f, c.left - 8, c.top + c.height + 62, "end", 12, "character:");
    for (int j = 0; j < k; j++) {
        for (int i = 0; i < 3; i++) {
            double p = 100.0 * probs[(size_t)i * V + top[j]], w = c.width / k / 4;
            double x = c.left + (j + 0.5) * c.width / k + (i - 1.5) * w, h = p / c.ymax * c.height;   /* rank j+1 */
            fprintf(a.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x,
                    c.top + c.height - h, w, h, colors[i]);
        }
        size_t pl = 0;
        const char *p = knob_tok_piece(tok, top[j], &pl);
        char lab[32];
        knob_piece_escape(lab, sizeof lab, p ? p : "", p ? pl : 0, KNOB_PIECE_QUOTED);
        knob_svg_text(a.f, c.left + (j + 0.5) * c.width / k, c.top + c.height + 62, "middle", 13, lab);
    }
    char l0[32], l1[32], l2[32];
    snprintf(l0, sizeof l0, "temperature %.1f", (double)temps[0]);
    snprintf(l1, sizeof l1, "temperature %.1f", (double)temps[1]);
    snprintf(l2, sizeof l2, "temperature %.1f", (double)temps[2]);
    const char *labels[3] = {l0, l1, l2};
    knob_chart_legend(a.f, &c, 3, labels, (const char *const *)colors);
    knob_svg_text(a.f, 80, 468, "start", 12, "' ' is a space. Low temperature sharpens the distribution, high "
                                               "temperature flattens it.");
    knob_svg_end(a.f);
    return knob_atomic_commit(&a, err);
}

knob_status tour_ch_temperature(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t);
    char own[4096];
    const char *ckpt = tour_gpt_path(t);
    knob_status s;
    tour_say(t, "A language model does not write text; it gives a probability to every possible next token, and "
                "a sampler picks one. Temperature reshapes those probabilities before the pick: logits divided by "
                "a temperature below 1 make the likely tokens likelier (at 0, always the most likely one), above 1 "
                "flatten them towards a uniform guess.");
    if (!ckpt) {
        tour_say(t, "Chapter 13 has not run in this tour, so this chapter first trains a small GPT of its own on the "
                    "fortunes for %.0f seconds.", tour_budget(t) * 0.5);
        if ((s = tour_train_fortune_gpt(t, tour_budget(t) * 0.5, 1, tour_path(t, "gpt.safetensors", own), err)))
            return s;
        ckpt = own;
    }
    knob_lm *lm = NULL;
    knob_lm_seq *q = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    float *probs = NULL;
    int *top = NULL, *scratch = NULL;
    char *text = NULL;
    const char *prompt = "The meaning of life is";
    if ((s = knob_lm_open(&lm, ckpt, err)))
        return s;
    const float temps[3] = {0.0f, 0.8f, 1.2f};
    double real[3];
    char *corpus = NULL;
    size_t corpus_len = 0;
    if ((s = tour_read_fortunes(&corpus, &corpus_len, err)))
        goto done;
    for (int i = 0; i < 3; i++) {
        if ((s = generate(lm, "The ", temps[i], quick ? 100 : 240, tour_seed(t), &text, err))) {
            knob_free(corpus);
            goto done;
        }
        int nw = 0, nr = 0;
        count_words(text, corpus, corpus_len, &nw, &nr);
        real[i] = nw ? 100.0 * nr / nw : 0;
        tour_heading(t, "Temperature %.1f%s", (double)temps[i], temps[i] == 0 ? " (always the most likely)" : "");
        tour_pre(t, text);
        char name[64];
        snprintf(name, sizeof name, "temperature %.1f: real words", (double)temps[i]);
        tour_number(t, name, "%d of %d (%.0f%%)", nr, nw, real[i]);
        knob_free(text);
        text = NULL;
    }
    knob_free(corpus);
    int V = knob_lm_config(lm)->vocab_size;
    probs = knob_malloc((size_t)V * 3 * sizeof *probs);
    top = knob_malloc(10 * sizeof *top);
    scratch = knob_malloc((size_t)V * sizeof *scratch);
    if (!probs || !top || !scratch) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
        goto done;
    }
    if ((s = knob_lm_seq_new(lm, &q, err)) || (s = knob_lm_encode(lm, prompt, strlen(prompt), 0, &ids, &n, err)) ||
        (s = knob_lm_feed(q, ids, n, err)))
        goto done;
    const float *logits = knob_lm_logits(q);
    const float pt[3] = {0.5f, 1.0f, 2.0f};
    for (int i = 0; i < 3; i++)
        knob_softmax_temp(logits, V, pt[i], probs + (size_t)i * V);
    int k = knob_top_tokens(logits, V, 10, top, scratch);
    char table[2048], piece[32];
    size_t used = (size_t)snprintf(table, sizeof table, "next after \"%s\"   T=0.5    T=1.0    T=2.0\n", prompt);
    for (int j = 0; j < k && used < sizeof table; j++) {
        size_t pl = 0;
        const char *p = knob_tok_piece(knob_lm_tokenizer(lm), top[j], &pl);
        knob_piece_escape(piece, sizeof piece, p ? p : "", p ? pl : 0, KNOB_PIECE_QUOTED);
        used += (size_t)snprintf(table + used, sizeof table - used, "  %-24s %6.1f%%  %6.1f%%  %6.1f%%\n", piece,
                                 100.0 * probs[top[j]], 100.0 * probs[(size_t)V + top[j]],
                                 100.0 * probs[2 * (size_t)V + top[j]]);
    }
    tour_heading(t, "The next-character probabilities after \"%s\"", prompt);
    tour_pre(t, table);
    char path[4096];
    if ((s = temp_svg(tour_path(t, "next-char.svg", path), knob_lm_tokenizer(lm), top, k, probs, V, pt, prompt, err)))
        goto done;
    tour_picture(t, "next-char.svg", "The model's probabilities for the next character at temperatures 0.5, 1 and "
                                     "2: the same logits, divided by the temperature before the softmax.");
    tour_number(t, "most likely next character at T=1", "%.1f%%", 100.0 * probs[(size_t)V + top[0]]);
    tour_number(t, "the same at T=0.5 and T=2", "%.1f%% and %.1f%%", 100.0 * probs[top[0]],
                100.0 * probs[2 * (size_t)V + top[0]]);
    tour_say(t, "At temperature 0 the text is the single most likely path, which tends to fall into a loop. Of the "
                "words written, %.0f%% are real at temperature 0, %.0f%% at 0.8 and %.0f%% at 1.2: %s The table is the "
                "same model's distribution after \"%s\": the top choice has %.1f%% at temperature 1, %.1f%% at 0.5 "
                "and %.1f%% at 2. ChatGPT's temperature setting is the same knob.",
             real[0], real[1], real[2],
             real[2] < real[1] ? "the rarer characters a higher temperature picks break words."
                               : "here the model is still too young for the temperature to change that much.",
             prompt, 100.0 * probs[(size_t)V + top[0]], 100.0 * probs[top[0]], 100.0 * probs[2 * (size_t)V + top[0]]);
done:
    knob_free(text);
    knob_free(probs);
    knob_free(top);
    knob_free(scratch);
    knob_free(ids);
    knob_lm_seq_free(q);
    knob_lm_free(lm);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 15: 175 billion knobs */

static void fmt_big(char *buf, size_t n, double v, const char *unit)
{
    const char *pre[] = {"", " thousand", " million", " billion", " trillion", " quadrillion", " quintillion",
                         " sextillion"};
    int i = 0;
    while (fabs(v) >= 1000 && i < 7) {
        v /= 1000;
        i++;
    }
    snprintf(buf, n, "%.3g%s%s%s", v, pre[i], unit[0] ? " " : "", unit);
}

static void fmt_bytes(char *buf, size_t n, double b)
{
    const char *u[] = {"B", "KB", "MB", "GB", "TB", "PB"};
    int i = 0;
    while (b >= 1000 && i < 5) {
        b /= 1000;
        i++;
    }
    snprintf(buf, n, "%.3g %s", b, u[i]);
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (!(s >= 0) || !isfinite(s))
        snprintf(buf, n, "unknown");
    else if (s < 1e-3)
        snprintf(buf, n, "%.3g microseconds", s * 1e6);
    else if (s < 1)
        snprintf(buf, n, "%.3g milliseconds", s * 1e3);
    else if (s < 120)
        snprintf(buf, n, "%.1f seconds", s);
    else if (s < 7200)
        snprintf(buf, n, "%.1f minutes", s / 60);
    else if (s < 172800)
        snprintf(buf, n, "%.1f hours", s / 3600);
    else if (s < 3.15576e7 * 2)
        snprintf(buf, n, "%.0f days", s / 86400);
    else
        fmt_big(buf, n, s / 3.15576e7, "years");
}

knob_status tour_ch_scale(tour_ctx *t, knob_err *err)
{
    (void)err;
    const char *names[3] = {"the tour's GPT", "GPT-2 small (124M)", "a GPT-3-size model (175B)"};
    knob_gpt_train_config d;
    knob_gpt_train_config_default(&d);
    knob_gpt_config cfg[3] = {
        d.model,
        {.n_layer = 12, .n_head = 12, .n_embd = 768, .block_size = 1024, .vocab_size = 50257, .bias = 1},
        {.n_layer = 96, .n_head = 96, .n_embd = 12288, .block_size = 2048, .vocab_size = 50257, .bias = 1},
    };
    if (tour_quick(t)) {   /* chapter 13's quick model */
        cfg[0].n_layer = 2;
        cfg[0].n_head = 2;
        cfg[0].n_embd = 64;
        cfg[0].block_size = 32;
    }
    knob_lm *lm = NULL;
    knob_err e2;
    if (tour_gpt_path(t) && knob_lm_open(&lm, tour_gpt_path(t), &e2) == KNOB_OK) {
        cfg[0] = *knob_lm_config(lm);
        knob_lm_free(lm);
    } else {
        cfg[0].vocab_size = 100;   /* about the characters of the fortunes */
    }
    double flops_s = tour_gpt_flops_per_s(t);
    int measured = flops_s > 0;
    if (!measured) {   /* chapter 13 did not run: measure a few steps of a small model now */
        knob_gpt_train_config c = d;
        c.model = cfg[0];
        c.model.vocab_size = 64;
        c.seq_len = c.model.block_size;
        c.batch = 8;
        c.steps = 6;
        c.warmup = 0;
        size_t n = 20000;
        uint16_t *ids = knob_malloc(n * sizeof *ids);
        knob_gpt_trainer *tr = NULL;
        knob_status s = ids ? KNOB_OK : knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
        knob_rng r;
        knob_rng_seed(&r, tour_seed(t));
        for (size_t i = 0; ids && i < n; i++)
            ids[i] = (uint16_t)knob_rng_below(&r, 64);
        if (!s)
            s = knob_gpt_trainer_new(&tr, &c, ids, n, NULL, 0, err);
        knob_gpt_step_info info;
        for (int i = 0; !s && i < 2; i++)   /* warm-up steps, not timed */
            s = knob_gpt_trainer_step(tr, &info, err);
        double t0 = knob_now();
        for (int i = 0; !s && i < 4; i++)
            s = knob_gpt_trainer_step(tr, &info, err);
        double dt = knob_now() - t0;
        knob_gpt_trainer_free(tr);
        knob_free(ids);
        if (s)
            return s;
        knob_gpt_cost k;
        knob_gpt_cost_of(&c.model, &k);
        flops_s = 4.0 * c.batch * c.seq_len * k.flops_train / dt;
    }
    tour_say(t, "How far is the GPT of chapter 13 from ChatGPT? knob computes each model's size from its config: "
                "the number of knobs (parameters), the memory to hold them, and the arithmetic of training, about "
                "6 floating-point operations per parameter per token (2 for the forward pass, 4 for the backward) "
                "plus attention's share. Then it divides by the speed this machine reached %s: %.2f billion "
                "operations a second.", measured ? "in chapter 13" : "in a few steps just now", flops_s / 1e9);
    /* tokens the large ones were trained on, as published: GPT-3's 300 billion; for GPT-2 small,
     * 10 billion (the size of open reproductions' runs) */
    const double tokens[3] = {0, 10e9, 300e9};
    char table[4096], a[64], b[64], c2[64], e[64], f[64];
    size_t used = (size_t)snprintf(table, sizeof table, "%-26s %16s %12s %14s %16s\n", "model", "parameters",
                                   "weights", "training state", "FLOPs per token");
    knob_gpt_cost k[3];
    for (int i = 0; i < 3; i++) {
        knob_gpt_cost_of(&cfg[i], &k[i]);
        fmt_big(a, sizeof a, k[i].n_params, "");
        fmt_bytes(b, sizeof b, k[i].bytes_weights);
        fmt_bytes(c2, sizeof c2, k[i].bytes_train);
        fmt_big(e, sizeof e, k[i].flops_train, "");
        if (used < sizeof table)
            used += (size_t)snprintf(table + used, sizeof table - used, "%-26s %16s %12s %14s %16s\n", names[i], a, b,
                                     c2, e);
    }
    tour_pre(t, table);
    for (int i = 0; i < 3; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s: config", names[i]);
        tour_number(t, name, "%d layers, %d heads, width %d, context %d, vocabulary %d", cfg[i].n_layer, cfg[i].n_head,
                    cfg[i].n_embd, cfg[i].block_size, cfg[i].vocab_size);
        snprintf(name, sizeof name, "%s: parameters", names[i]);
        tour_number(t, name, "%.0f", k[i].n_params);
        snprintf(name, sizeof name, "%s: memory for training", names[i]);
        fmt_bytes(a, sizeof a, k[i].bytes_train);
        tour_number(t, name, "%s (weights, gradients, two Adam moments, float32)", a);
        double s_token = k[i].flops_train / flops_s;
        snprintf(name, sizeof name, "%s: training one token here", names[i]);
        fmt_time(a, sizeof a, s_token);
        tour_number(t, name, "%s", a);
        if (tokens[i] > 0) {
            fmt_big(b, sizeof b, tokens[i], "tokens");
            snprintf(name, sizeof name, "%s: training on %s here", names[i], b);
            fmt_time(f, sizeof f, s_token * tokens[i]);
            tour_number(t, name, "%s", f);
        }
    }
    fmt_time(a, sizeof a, k[2].flops_train / flops_s * tokens[2]);
    fmt_time(b, sizeof b, k[1].flops_train / flops_s * tokens[1]);
    tour_say(t, "GPT-2 small has %.0f times the knobs of the tour's GPT and GPT-3 %.0f times; training a token "
                "costs them proportionally more. On this machine GPT-2 small on 10 billion tokens would take %s, and "
                "a 175-billion-parameter model on the 300 billion tokens GPT-3 was trained on would take %s; its "
                "training state alone (%.1f TB) would fill %.0f accelerators of 80 GB. That is why such "
                "models are trained on thousands of accelerators at once, each hundreds of times faster than two "
                "CPU cores; the ideas are the ones in this tour.",
             k[1].n_params / k[0].n_params, k[2].n_params / k[0].n_params, b, a, k[2].bytes_train / 1e12,
             ceil(k[2].bytes_train / 80e9));
    return KNOB_OK;
}
