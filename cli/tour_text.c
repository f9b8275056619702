/* tour_text.c: chapters 11 and 12 of `knob tour`: counting letters and words (n-gram models of the
 * fortunes, src/text/ngram.c), then tokens and embeddings (GPT-2's byte-level BPE, a BPE learned
 * from the fortunes by src/text/bpe_train.c, and the character embeddings of a small GPT laid out
 * by PCA, src/models/embed.c). */
#include "tour.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int is_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Words of 2+ letters in s, and how many of them the word model has seen (as a 1-gram). */
static void real_words(const knob_ngram *words, const char *s, int *n_words, int *n_real)
{
    *n_words = *n_real = 0;
    char w[64];
    for (const char *p = s; *p;) {
        if (!is_letter((unsigned char)*p)) {
            p++;
            continue;
        }
        const char *q = p;
        while (is_letter((unsigned char)*q))
            q++;
        size_t n = (size_t)(q - p);
        if (n >= 2 && n < sizeof w && !((unsigned char)*q >= 0x80 || *q == '\'' || *q == '-') &&
            !(p > s && ((unsigned char)p[-1] >= 0x80 || p[-1] == '\'' || p[-1] == '-'))) {
            memcpy(w, p, n);
            w[n] = '\0';
            uint64_t count = 0;
            (*n_words)++;
            if (knob_ngram_count(words, w, &count, NULL) == KNOB_OK && count > 0)
                (*n_real)++;
        }
        p = q;
    }
}

/* A unit for a table: newline as \n, tab as \t, space as '_'. */
static void unit_text(const char *u, size_t n, char *buf, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 3 < cap; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c == '\n' || c == '\t') {
            buf[k++] = '\\';
            buf[k++] = c == '\n' ? 'n' : 't';
        } else if (c == ' ')
            buf[k++] = '_';
        else if (c < 0x20)
            buf[k++] = '?';
        else
            buf[k++] = (char)c;
    }
    buf[k] = '\0';
}

/* The most likely next units after context at orders 1..n_max, as a text table. */
static void probs_table(const knob_ngram *m, const char *context, const char *unit, char *buf, size_t cap)
{
    knob_ngram_next top[8];
    size_t used = (size_t)snprintf(buf, cap, "most likely next %s after \"%s\" (probability, count):\n", unit, context);
    for (int n = 1; n <= knob_ngram_n_max(m) && used < cap; n++) {
        uint64_t total = 0;
        int order = 0;
        int got = knob_ngram_top(m, n, context, top, 8, &total, &order);
        used += (size_t)snprintf(buf + used, cap - used, "n=%d%s:", n, order < n ? " (backed off)" : "");
        for (int i = 0; i < got && used < cap; i++) {
            size_t len;
            char u[48];
            const char *p = knob_ngram_unit(m, top[i].id, &len);
            unit_text(p, len, u, sizeof u);
            used += (size_t)snprintf(buf + used, cap - used, "  %s %.3f", u, top[i].prob);
        }
        if (used < cap)
            used += (size_t)snprintf(buf + used, cap - used, "\n");
    }
}

static knob_status counting_svg(const char *path, int n_max, const double *real_pct, const double *distinct_l,
                                const double *distinct_w, knob_err *err)
{
    double x[KNOB_NGRAM_MAX];
    for (int i = 0; i < n_max; i++)
        x[i] = i + 1;
    double hi = 1;
    for (int i = 0; i < n_max; i++)
        hi = fmax(hi, fmax(distinct_l[i], distinct_w[i]));
    knob_chart a = {.left = 70, .top = 50, .width = 340, .height = 300, .xmin = 0.5, .xmax = n_max + 0.5, .ymin = 0,
                    .ymax = 100, .title = "Letter samples: share of real words", .xlabel = "n (letters of context + 1)",
                    .ylabel = "words found in the fortunes (%)"};
    knob_chart b = {.left = 540, .top = 50, .width = 340, .height = 300, .xmin = 0.5, .xmax = n_max + 0.5, .ymin = 1,
                    .ymax = pow(10, ceil(log10(hi)) + 1), .logy = 1, .title = "Distinct n-grams counted",
                    .xlabel = "n (units)", .ylabel = "distinct n-grams (log scale)"};
    knob_atomic at;
    knob_status s = knob_atomic_open(&at, path, err);
    if (s)
        return s;
    knob_svg_begin(at.f, 920, 420);
    knob_chart_axes(at.f, &a);
    knob_chart_line(at.f, &a, x, real_pct, n_max, "#8e44ad", 0);
    knob_chart_points(at.f, &a, x, real_pct, n_max, "#8e44ad", 0);
    knob_chart_axes(at.f, &b);
    knob_chart_line(at.f, &b, x, distinct_l, n_max, "#e67e22", 0);
    knob_chart_points(at.f, &b, x, distinct_l, n_max, "#e67e22", 0);
    knob_chart_line(at.f, &b, x, distinct_w, n_max, "#2471a3", 0);
    knob_chart_points(at.f, &b, x, distinct_w, n_max, "#2471a3", 0);
    const char *labels[2] = {"letter n-grams", "word n-grams"}, *colors[2] = {"#e67e22", "#2471a3"};
    knob_chart_legend(at.f, &b, 2, labels, colors);
    knob_svg_text(at.f, 70, 405, "start", 12, "Left: of the words (2+ letters) in each letter-level sample, the share "
                                               "that occur in the fortunes. Right: how many different n-grams there are.");
    knob_svg_end(at.f);
    return knob_atomic_commit(&at, err);
}

knob_status tour_ch_counting(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t), n_max = 5;
    tour_say(t, "Before any neural net: a language model can be a table of counts. Count, in the 2.8 MB of "
                "fortunes, how often each letter follows each run of n-1 letters; then write text by drawing each "
                "next letter with the probability the counts give. At n = 1 the letters are drawn by frequency "
                "alone: noise. Each extra letter of context makes the text more like English, and by n = 5 most "
                "words are real; the same with whole words as units gives grammatical-looking phrases, and soon "
                "copies of whole fortunes.");
    char *text = NULL;
    size_t len = 0;
    knob_ngram *lm = NULL, *wm = NULL;
    char *sample = NULL;
    knob_status s = tour_read_fortunes(&text, &len, err);
    if (s || (s = knob_ngram_new(&lm, n_max, KNOB_NGRAM_LETTER, err)) ||
        (s = knob_ngram_new(&wm, quick ? 3 : n_max, KNOB_NGRAM_WORD, err)) ||
        (s = knob_ngram_add_fortunes(lm, text, len, err)) || (s = knob_ngram_add_fortunes(wm, text, len, err)) ||
        (s = knob_ngram_build(lm, err)) || (s = knob_ngram_build(wm, err)))
        goto done;
    int wn = knob_ngram_n_max(wm);
    tour_number(t, "letters counted", "%zu (%d distinct)", knob_ngram_n_tokens(lm), knob_ngram_vocab_size(lm));
    tour_number(t, "words counted", "%zu (%d distinct)", knob_ngram_n_tokens(wm), knob_ngram_vocab_size(wm));
    double real_pct[KNOB_NGRAM_MAX], dl[KNOB_NGRAM_MAX], dw[KNOB_NGRAM_MAX];
    knob_rng r;
    tour_heading(t, "Letters, n = 1 to %d", n_max);
    for (int n = 1; n <= n_max; n++) {
        knob_rng_seed(&r, tour_seed(t) + (uint64_t)n);
        if ((s = knob_ngram_sample(lm, n, quick ? 120 : 200, "\n", &r, &sample, err)))
            goto done;
        int nw, nr;
        real_words(wm, sample, &nw, &nr);
        real_pct[n - 1] = nw ? 100.0 * nr / nw : 0;
        dl[n - 1] = (double)knob_ngram_n_distinct(lm, n);
        dw[n - 1] = n <= wn ? (double)knob_ngram_n_distinct(wm, n) : NAN;
        char head[64];
        snprintf(head, sizeof head, "n=%d (%.0f%% real words):\n", n, real_pct[n - 1]);
        size_t hl = strlen(head), sl = strlen(sample);
        char *block = knob_malloc(hl + sl + 1);
        if (!block) {
            s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
            goto done;
        }
        memcpy(block, head, hl);
        memcpy(block + hl, sample, sl + 1);
        for (char *p = block + hl; *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\n')
                *p = ' ';
        tour_pre(t, block);
        knob_free(block);
        knob_free(sample);
        sample = NULL;
        char name[64];
        snprintf(name, sizeof name, "letters, n=%d: real words in the sample", n);
        tour_number(t, name, "%d of %d (%.0f%%)", nr, nw, real_pct[n - 1]);
    }
    tour_heading(t, "Words, n = 1 to %d", wn);
    char all[8192];
    size_t used = 0;
    for (int n = 1; n <= wn; n++) {
        knob_rng_seed(&r, tour_seed(t) + 100 + (uint64_t)n);
        if ((s = knob_ngram_sample(wm, n, quick ? 20 : 30, ".", &r, &sample, err)))
            goto done;
        for (char *p = sample; *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = ' ';
        if (used < sizeof all)
            used += (size_t)snprintf(all + used, sizeof all - used, "n=%d: %s\n", n, sample);
        knob_free(sample);
        sample = NULL;
    }
    tour_pre(t, all);
    tour_heading(t, "The probability table of a context");
    probs_table(lm, "of th", "letter", all, sizeof all);
    tour_pre(t, all);
    probs_table(wm, "the meaning of", "word", all, sizeof all);
    tour_pre(t, all);
    char path[4096];
    if ((s = counting_svg(tour_path(t, "ngrams.svg", path), n_max, real_pct, dl, dw, err)))
        goto done;
    tour_picture(t, "ngrams.svg", "Left: the share of real words in letter-level samples, by n. Right: the number "
                                  "of distinct n-grams of letters and of words, by n (log scale).");
    tour_say(t, "The share of real words in the letter samples goes from %.0f%% at n = 1 to %.0f%% at n = %d. The "
                "price is on the right: %.3g distinct letter %d-grams and %.3g distinct word %d-grams must be "
                "stored, and most contexts of a longer n were seen once or never, so the model can only copy "
                "or back off. A neural net replaces the table by a function that generalises between contexts.",
             real_pct[0], real_pct[n_max - 1], n_max, dl[n_max - 1], n_max, dw[wn - 1], wn);
done:
    knob_free(sample);
    knob_ngram_free(lm);
    knob_ngram_free(wm);
    knob_free(text);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Chapter 12: tokens and embeddings */

/* "piece(id) piece(id) ..." for text under tok, and the number of tokens. */
static knob_status pieces(const knob_tokenizer *tok, const char *text, char *buf, size_t cap, size_t *n_ids,
                          knob_err *err)
{
    int32_t *ids = NULL;
    knob_status s = knob_tok_encode(tok, text, strlen(text), 0, &ids, n_ids, err);
    if (s)
        return s;
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < *n_ids && used < cap; i++) {
        size_t pl = 0;
        const char *p = knob_tok_piece(tok, ids[i], &pl);
        char e[96];
        knob_piece_escape(e, sizeof e, p ? p : "", p ? pl : 0, KNOB_PIECE_QUOTED);
        used += (size_t)snprintf(buf + used, cap - used, "%s%s=%d", i ? " " : "", e, ids[i]);
    }
    knob_free(ids);
    return KNOB_OK;
}

static const char *char_class(const char *p, size_t n, int *k)
{
    static const char *const names[5] = {"vowel", "consonant", "capital", "digit", "punctuation, space, other"};
    unsigned char c = n == 1 ? (unsigned char)p[0] : 0;
    *k = c && strchr("aeiouy", c) ? 0 : (c >= 'a' && c <= 'z') ? 1 : (c >= 'A' && c <= 'Z') ? 2 : (c >= '0' && c <= '9') ? 3 : 4;
    return names[*k];
}

static knob_status embed_svg(const char *path, const knob_tokenizer *tok, const int *ids, const float *xy, int V,
                             const float *var, knob_err *err)
{
    static const char *const colors[5] = {"#c0392b", "#2471a3", "#27ae60", "#e67e22", "#7f8c8d"};
    double x[512], y[512];
    int n = V < 512 ? V : 512;
    for (int i = 0; i < n; i++) {
        x[i] = xy[2 * i];
        y[i] = xy[2 * i + 1];
    }
    double x0, x1, y0, y1;
    knob_range(x, n, &x0, &x1);
    knob_range(y, n, &y0, &y1);
    char xl[96], yl[96];
    snprintf(xl, sizeof xl, "first principal axis (%.0f%% of the variance)", 100 * (double)var[0]);
    snprintf(yl, sizeof yl, "second principal axis (%.0f%%)", 100 * (double)var[1]);
    knob_chart c = {.left = 80, .top = 50, .width = 640, .height = 480, .xmin = x0, .xmax = x1, .ymin = y0, .ymax = y1,
                    .title = "Character embeddings of a small GPT, projected to 2-D", .xlabel = xl, .ylabel = yl};
    knob_atomic at;
    knob_status s = knob_atomic_open(&at, path, err);
    if (s)
        return s;
    knob_svg_begin(at.f, 780, 600);
    knob_chart_axes(at.f, &c);
    for (int i = 0; i < n; i++) {
        size_t pl = 0;
        const char *p = knob_tok_piece(tok, ids[i], &pl);
        int k;
        char_class(p ? p : "", p ? pl : 0, &k);
        char lab[32];
        knob_piece_escape(lab, sizeof lab, p ? p : "", p ? pl : 0, KNOB_PIECE_LABEL);
        double px = c.left + (x[i] - x0) / (x1 - x0) * c.width, py = c.top + (y1 - y[i]) / (y1 - y0) * c.height;
        fprintf(at.f, "<g fill=\"%s\">", colors[k]);
        knob_svg_text(at.f, px, py + 4, "middle", 12, lab);
        fputs("</g>\n", at.f);
    }
    const char *labels[5] = {"vowel", "consonant", "capital letter", "digit", "punctuation, space, other"};
    knob_chart_legend(at.f, &c, 5, labels, colors);
    knob_svg_text(at.f, 80, 585, "start", 12, "Each character is drawn where its learned vector falls; characters "
                                                "the model uses alike end up close together.");
    knob_svg_end(at.f);
    return knob_atomic_commit(&at, err);
}

knob_status tour_ch_tokens(tour_ctx *t, knob_err *err)
{
    int quick = tour_quick(t);
    char buf[4096], path[4096], bpe_dir[4096];
    tour_say(t, "A model reads numbers, not letters. A tokenizer cuts text into pieces from a fixed vocabulary and "
                "gives each an id. GPT-2's tokenizer has 50,257 pieces learned by byte-pair encoding (BPE): start "
                "from the 256 bytes and repeatedly merge the most frequent adjacent pair. Common words become one "
                "token; rare words, other scripts and emoji are spelled out in several.");
    knob_tokenizer *g2 = NULL, *fb = NULL, *by = NULL;
    knob_bpe_trainer *bt = NULL;
    char *text = NULL;
    size_t len = 0, n;
    knob_lm *lm = NULL;
    float *xy = NULL;
    knob_status s = knob_tok_load_gpt2(&g2, err);
    if (s)
        return s;
    const char *examples[3] = {"Hello world! It's a beautiful day.", "日本語を話します。", "I like it 👍🏽"};
    tour_heading(t, "GPT-2's pieces (piece=id)");
    for (int i = 0; i < 3; i++) {
        char line[2048];
        if ((s = pieces(g2, examples[i], line, sizeof line, &n, err)))
            goto done;
        snprintf(buf, sizeof buf, "%s\n  -> %zu tokens for %zu bytes: %s", examples[i], n, strlen(examples[i]), line);
        tour_pre(t, buf);
        char name[96];
        snprintf(name, sizeof name, "GPT-2 tokens for \"%s\"", examples[i]);
        tour_number(t, name, "%zu (%zu bytes)", n, strlen(examples[i]));
    }
    tour_say(t, "The English sentence is almost a token a word, with the space joined to the word after it. Each "
                "Japanese character takes one to three tokens and the thumbs-up with its skin tone several, "
                "because GPT-2 saw little of them: the byte-level vocabulary can spell anything, but only "
                "frequent text gets short.");

    /* a BPE learned here */
    int vocab = quick ? 600 : 2000;
    knob_bpe_stats bs;
    double t0 = knob_now();
    snprintf(bpe_dir, sizeof bpe_dir, "%s/bpe", tour_dir(t));
    if ((s = tour_read_fortunes(&text, &len, err)) || (s = knob_bpe_trainer_new(&bt, err)) ||
        (s = knob_bpe_trainer_add(bt, text, quick ? (len < 400000 ? len : 400000) : len, err)) ||
        (s = knob_mkdirs(bpe_dir, err)) || (s = knob_bpe_trainer_save(bt, vocab, bpe_dir, &bs, err)))
        goto done;
    double bpe_s = knob_now() - t0;
    char enc[4096 + 16], voc[4096 + 16];
    snprintf(enc, sizeof enc, "%s/encoder.json", bpe_dir);
    snprintf(voc, sizeof voc, "%s/vocab.bpe", bpe_dir);
    if ((s = knob_tok_load_bpe(&fb, enc, voc, err)) || (s = knob_tok_new_byte(&by, err)))
        goto done;
    tour_heading(t, "A BPE learned from the fortunes");
    tour_number(t, "fortune BPE: merges learned", "%d (vocabulary %d) in %.1f s from %zu bytes", bs.n_merges,
                bs.vocab_size, bpe_s, bs.n_bytes);
    const char *sentence = "The fortune cookie said: you will write a compiler.";
    size_t nb = 0, ng = 0, nf = 0;
    char line[2048];
    if ((s = pieces(by, sentence, line, sizeof line, &nb, err)) || (s = pieces(g2, sentence, line, sizeof line, &ng, err)) ||
        (s = pieces(fb, sentence, line, sizeof line, &nf, err)))
        goto done;
    snprintf(buf, sizeof buf, "%s\n  fortune BPE -> %zu tokens: %s", sentence, nf, line);
    tour_pre(t, buf);
    tour_number(t, "tokens for the sentence: bytes / GPT-2 / fortune BPE", "%zu / %zu / %zu", nb, ng, nf);
    tour_say(t, "Learned in %.1f s from the fortunes alone, %d merges shorten the sentence from %zu bytes to %zu "
                "tokens; GPT-2's 50,000 merges, learned from 40 GB of web text, make it %zu. A bigger vocabulary "
                "means fewer tokens to read, and a bigger embedding table to learn.",
             bpe_s, bs.n_merges, nb, nf, ng);

    /* embeddings of a trained model */
    tour_heading(t, "Embeddings: what a model learns about its tokens");
    double secs = tour_budget(t) * (quick ? 0.4 : 0.5);
    tour_say(t, "Every token id has a vector of numbers (its embedding) that the model learns with everything "
                "else. To see them, this chapter trains a small character-level GPT on the fortunes for %.0f "
                "seconds and draws each character's vector projected onto the two directions along which the "
                "vectors vary most (principal component analysis).", secs);
    char ckpt[4096];
    if ((s = tour_train_fortune_gpt(t, secs, 1, tour_path(t, "small-gpt.safetensors", ckpt), err)) ||
        (s = knob_lm_open(&lm, ckpt, err)))
        goto done;
    const knob_gpt_config *c = knob_lm_config(lm);
    int V = c->vocab_size, C = c->n_embd, n_shown = 0;
    const float *E = knob_lm_wte(lm);
    /* the printable ASCII characters only: the rare ones (accents, control bytes) would crowd the map */
    xy = knob_malloc((size_t)V * (2 + C) * sizeof *xy + (size_t)V * sizeof(int));
    if (!xy) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "tour: out of memory");
        goto done;
    }
    float *sub = xy + (size_t)V * 2;
    int *shown = (int *)(void *)(sub + (size_t)V * C);
    for (int i = 0; i < V; i++) {
        size_t pl = 0;
        const char *p = knob_tok_piece(knob_lm_tokenizer(lm), i, &pl);
        if (p && pl == 1 && p[0] > 0x20 && p[0] < 0x7f) {
            memcpy(sub + (size_t)n_shown * C, E + (size_t)i * C, (size_t)C * sizeof *sub);
            shown[n_shown++] = i;
        }
    }
    float var[2];
    if ((s = knob_pca2(sub, n_shown, C, xy, var, err)) ||
        (s = embed_svg(tour_path(t, "embeddings.svg", path), knob_lm_tokenizer(lm), shown, xy, n_shown, var, err)))
        goto done;
    char cap[256];
    snprintf(cap, sizeof cap, "The embeddings of the %d printable characters other than space, projected on "
                              "their two principal axes, coloured by kind.", n_shown);
    tour_picture(t, "embeddings.svg", cap);
    const char *probe[4] = {"a", "e", "T", "7"};
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < 4; i++) {
        int32_t *id = NULL;
        size_t ni = 0;
        if ((s = knob_lm_encode(lm, probe[i], 1, 0, &id, &ni, err)))
            goto done;
        int ids[5], skip = id[0];
        float sims[5];
        int k = knob_cosine_top(E, V, C, E + (size_t)id[0] * C, &skip, 1, 5, ids, sims);
        knob_free(id);
        used += (size_t)snprintf(buf + used, sizeof buf - used, "nearest to '%s':", probe[i]);
        for (int j = 0; j < k && used < sizeof buf; j++) {
            size_t pl = 0;
            const char *p = knob_tok_piece(knob_lm_tokenizer(lm), ids[j], &pl);
            char e[32];
            knob_piece_escape(e, sizeof e, p ? p : "", p ? pl : 0, KNOB_PIECE_QUOTED);
            used += (size_t)snprintf(buf + used, sizeof buf - used, "  %s %.2f", e, (double)sims[j]);
        }
        if (used < sizeof buf)
            used += (size_t)snprintf(buf + used, sizeof buf - used, "\n");
    }
    tour_pre(t, buf);
    tour_say(t, "The numbers are cosine similarities (1: the same direction). The two axes of the map hold %.0f%% "
                "and %.0f%% of the variance. Where the colours cluster, the model has discovered kinds of "
                "characters (vowels, digits, capitals) from how they are used, without being told; in a large "
                "model the same happens to words and meanings.", 100 * (double)var[0], 100 * (double)var[1]);
done:
    knob_free(xy);
    knob_lm_free(lm);
    knob_bpe_trainer_free(bt);
    knob_free(text);
    knob_tok_free(g2);
    knob_tok_free(fb);
    knob_tok_free(by);
    return s;
}
