/* cmd_generate.c: the four commands that use a trained GPT, all through the KV-cache inference of
 * src/models/gpt_infer.c and a model opened with knob_gpt_open (knob checkpoints, Hugging Face
 * GPT-2 folders, llm.c .bin files):
 *   knob generate MODEL --prompt TEXT   continue a text (temperature, top-k, top-p, stop strings),
 *                                       streamed to stdout as tokens arrive
 *   knob score MODEL FILE               mean next-token cross-entropy and perplexity of a text, sliding
 *                                       the context window over texts longer than it
 *   knob next MODEL TEXT                the most likely next tokens and how temperature reshapes them
 *   knob chat MODEL                     a conversation on stdin, one line a turn, the oldest turns
 *                                       dropped when the context fills
 * Streaming holds back bytes that could be the start of a stop string or an incomplete UTF-8
 * character, so what is printed is always final and valid.
 *
 * Not here: sampling and the model (src/models/gpt_infer.c), tokenizers (src/text/). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------------
 * The model */

typedef struct model {
    knob_params P;
    knob_gpt_config c;
    knob_tokenizer *tok;
    knob_gpt_infer *inf;
    float *probs;   /* (V) */
    int *idx;       /* (V) */
    char *desc;
    int eot;
} model;

static void model_close(model *m)
{
    knob_gpt_infer_free(m->inf);
    knob_tok_free(m->tok);
    knob_params_free(&m->P);
    knob_free(m->probs);
    knob_free(m->idx);
    knob_free(m->desc);
    memset(m, 0, sizeof *m);
}

static knob_status model_open(model *m, const char *path, knob_err *err)
{
    memset(m, 0, sizeof *m);
    knob_params_init(&m->P);
    knob_status s = knob_gpt_open(path, &m->P, &m->c, &m->desc, NULL, err);
    if (s)
        return s;
    if (!m->desc || !m->desc[0]) {
        model_close(m);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: the model does not name its tokenizer", path);
    }
    if ((s = knob_tok_from_desc(&m->tok, m->desc, err)) != KNOB_OK) {
        model_close(m);
        return s;
    }
    if (knob_tok_vocab_size(m->tok) > m->c.vocab_size) {
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: the tokenizer has %d ids but the model only %d", path,
                      knob_tok_vocab_size(m->tok), m->c.vocab_size);
        model_close(m);
        return s;
    }
    m->eot = knob_tok_eot(m->tok);
    m->probs = knob_malloc((size_t)m->c.vocab_size * sizeof *m->probs);
    m->idx = knob_malloc((size_t)m->c.vocab_size * sizeof *m->idx);
    if (!m->probs || !m->idx) {
        model_close(m);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    }
    if ((s = knob_gpt_infer_new(&m->inf, &m->P, &m->c, err)) != KNOB_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        model_close(m);
        return knob_fail(err, s, "%s: %s", path, msg);
    }
    return KNOB_OK;
}

/* Feeds ids, keeping the last block_size of them when there are more (a note on stderr). */
static knob_status feed(model *m, const int32_t *ids, size_t n, const float **logits, int quiet, knob_err *err)
{
    size_t T = (size_t)m->c.block_size, room = T - (size_t)knob_gpt_infer_len(m->inf);
    if (n > room) {
        if (!quiet)
            fprintf(stderr, "knob: note: the text has %zu tokens; the model sees the last %zu (its context)\n", n, T);
        if (n >= T) {
            knob_gpt_infer_reset(m->inf);
            ids += n - T;
            n = T;
        } else {
            knob_status s = knob_gpt_infer_drop(m->inf, (int)(n - room), NULL, err);
            if (s)
                return s;
        }
    }
    for (size_t i = 0; i < n; i++) {
        knob_status s = knob_gpt_infer_step(m->inf, ids[i], logits, err);
        if (s)
            return s;
    }
    return KNOB_OK;
}

/* The first token when there is no text: <|endoftext|> when the tokenizer has it, else a newline. */
static knob_status start_token(model *m, int32_t *tok, knob_err *err)
{
    if (m->eot >= 0) {
        *tok = m->eot;
        return KNOB_OK;
    }
    int32_t *ids;
    size_t n;
    knob_status s = knob_tok_encode(m->tok, "\n", 1, 0, &ids, &n, err);
    if (s || n != 1) {
        knob_free(ids);
        return knob_fail(err, KNOB_ERR_USAGE, "the prompt is empty and the tokenizer has neither <|endoftext|> nor a "
                         "newline token; give --prompt TEXT");
    }
    *tok = ids[0];
    knob_free(ids);
    return KNOB_OK;
}

/* "\n", "\t", "\\" in flag values */
static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1]) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = knob_malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* ------------------------------------------------------------------------------------------------
 * Generation with streaming */

typedef struct stream {
    char *buf;            /* generated bytes */
    size_t len, cap, printed;
    FILE *out;            /* NULL: do not print */
    const char *stop;     /* NULL or a non-empty stop string */
} stream;

static int stream_put(stream *st, const char *p, size_t n)
{
    if (st->len + n + 1 > st->cap) {
        size_t c = st->cap ? 2 * st->cap : 256;
        while (c < st->len + n + 1)
            c *= 2;
        char *b = knob_realloc(st->buf, c);
        if (!b)
            return 0;
        st->buf = b;
        st->cap = c;
    }
    memcpy(st->buf + st->len, p, n);
    st->len += n;
    st->buf[st->len] = '\0';
    return 1;
}

static long find(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m && i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return (long)i;
    return -1;
}

/* prints what can no longer change: not a possible start of the stop string, no partial UTF-8 */
static void stream_flush(stream *st, int final)
{
    if (!st->out)
        return;
    size_t safe = st->len;
    if (!final && st->stop) {
        size_t hold = strlen(st->stop) - 1;
        safe = st->len > hold ? st->len - hold : 0;
    }
    if (safe <= st->printed)
        return;
    size_t n = final ? safe - st->printed : knob_utf8_complete(st->buf + st->printed, safe - st->printed);
    fwrite(st->buf + st->printed, 1, n, st->out);
    fflush(st->out);
    st->printed += n;
}

/* Samples up to max_tokens after the tokens fed so far (logits: the last step's). Stops at the
 * stop string (not printed), at <|endoftext|>, or at max_tokens. A full context drops its oldest
 * half. *reason: "length", "stop" or "eot". */
static knob_status generate(model *m, const float *logits, int max_tokens, const knob_sampler *sp, knob_rng *r,
                            stream *st, int *n_gen, const char **reason, knob_err *err)
{
    *n_gen = 0;
    *reason = "length";
    while (*n_gen < max_tokens) {
        int tok = knob_sample(logits, m->c.vocab_size, sp, r, m->probs, m->idx);
        if (tok == m->eot) {
            *reason = "eot";
            break;
        }
        size_t n;
        const char *piece = knob_tok_piece(m->tok, tok, &n);
        if (!piece)
            piece = "", n = 0;   /* an id of the padded vocabulary: nothing to print */
        size_t before = st->len;
        if (!stream_put(st, piece, n))
            return knob_fail(err, KNOB_ERR_NOMEM, "generate: out of memory");
        (*n_gen)++;
        if (st->stop) {
            size_t from = before >= strlen(st->stop) ? before - strlen(st->stop) + 1 : 0;
            long at = find(st->buf + from, st->len - from, st->stop);
            if (at >= 0) {
                st->len = from + (size_t)at;
                st->buf[st->len] = '\0';
                *reason = "stop";
                break;
            }
        }
        stream_flush(st, 0);
        if (*n_gen == max_tokens)
            break;
        if (knob_gpt_infer_len(m->inf) == m->c.block_size) {
            knob_status s = knob_gpt_infer_drop(m->inf, m->c.block_size / 2, NULL, err);
            if (s)
                return s;
        }
        knob_status s = knob_gpt_infer_step(m->inf, tok, &logits, err);
        if (s)
            return s;
    }
    stream_flush(st, 1);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * knob generate */

knob_status cmd_generate(int argc, char **argv, knob_err *err)
{
    const char *prompt = "", *stop = NULL;
    int max_tokens = 200, top_k = 0, json = 0;
    float temperature = 0.8f, top_p = 1.0f;
    uint64_t seed = 42;
    const arg_def args[] = {
        {"prompt", ARG_STRING, &prompt, "TEXT", 0, 0, NULL, "text to continue (empty: start from scratch)"},
        {"max-tokens", ARG_INT, &max_tokens, "N", 1, 1000000, NULL, "tokens to generate at most"},
        {"temperature", ARG_FLOAT, &temperature, "T", 0, 100, NULL, "0: always the most likely token; higher: more random"},
        {"top-k", ARG_INT, &top_k, "K", 0, 1 << 20, NULL, "sample among the K most likely tokens (0: all)"},
        {"top-p", ARG_FLOAT, &top_p, "P", 0.001, 1, NULL, "sample among the fewest tokens holding probability P (1: all)"},
        {"stop", ARG_STRING, &stop, "TEXT", 0, 0, NULL, "stop before this text (\\n for a newline)"},
        {"seed", ARG_U64, &seed, "N", 0, 1.8446744073709552e19, NULL, "seed for sampling"},
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print one JSON object instead of streaming"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "generate", "knob generate MODEL [--prompt TEXT] [options]",
        "Continue --prompt with a GPT (a knob checkpoint, a Hugging Face GPT-2 folder or an llm.c .bin),\n"
        "one token at a time with a key/value cache, streamed to stdout. --temperature 0 is greedy.",
        args, 1, 1,
    };
    char *pos[1];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    char *stop_s = stop ? dup_str(stop) : NULL;
    if (stop && !stop_s)
        return knob_fail(err, KNOB_ERR_NOMEM, "generate: out of memory");
    if (stop_s)
        unescape(stop_s);
    model m;
    if ((s = model_open(&m, pos[0], err)) != KNOB_OK) {
        knob_free(stop_s);
        return s;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    stream st = {.out = json ? NULL : stdout, .stop = stop_s && stop_s[0] ? stop_s : NULL};
    const float *logits = NULL;
    int n_gen = 0;
    const char *reason = "length";
    double t0 = 0, secs = 0;
    if ((s = knob_tok_encode(m.tok, prompt, strlen(prompt), 1, &ids, &n, err)) != KNOB_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        s = knob_fail(err, s, "--prompt: %s", msg);
        goto done;
    }
    if (n == 0) {
        int32_t first;
        if ((s = start_token(&m, &first, err)) != KNOB_OK)
            goto done;
        s = feed(&m, &first, 1, &logits, 0, err);
    } else {
        s = feed(&m, ids, n, &logits, json, err);
    }
    if (s)
        goto done;
    if (!json) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    knob_rng r;
    knob_rng_seed(&r, seed);
    knob_sampler sp = {.temperature = temperature, .top_k = top_k, .top_p = top_p};
    t0 = now_s();
    s = generate(&m, logits, max_tokens, &sp, &r, &st, &n_gen, &reason, err);
    secs = now_s() - t0;
    if (s)
        goto done;
    if (json) {
        printf("{\"prompt\":");
        cli_json_str(stdout, prompt);
        printf(",\"text\":");
        cli_json_str(stdout, st.buf ? st.buf : "");
        printf(",\"prompt_tokens\":%zu,\"tokens\":%d,\"finish\":\"%s\",\"tokens_per_s\":%.1f}\n", n, n_gen, reason,
               n_gen / fmax(secs, 1e-9));
    } else {
        printf("\n");
        if (cli_is_tty())
            fprintf(stderr, "(%d tokens, %.1f tokens/s, %s)\n", n_gen, n_gen / fmax(secs, 1e-9), reason);
    }
done:
    knob_free(st.buf);
    knob_free(ids);
    knob_free(stop_s);
    model_close(&m);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * knob score */

knob_status cmd_score(int argc, char **argv, knob_err *err)
{
    int json = 0;
    const arg_def args[] = {
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print one JSON object"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "score", "knob score MODEL FILE [--json]",
        "How well a GPT predicts a text: the mean cross-entropy of each next token given the ones before\n"
        "(nats per token; lower is better) and the perplexity e^loss. Texts longer than the context are\n"
        "scored with a sliding window: when the context fills, its older half is dropped.",
        args, 2, 2,
    };
    char *pos[2];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    model m;
    if ((s = model_open(&m, pos[0], err)) != KNOB_OK)
        return s;
    unsigned char *text = NULL;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    if ((s = knob_read_file(pos[1], &text, &len, err)))
        goto done;
    if ((s = knob_tok_encode(m.tok, (const char *)text, len, 1, &ids, &n, err))) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        s = knob_fail(err, s, "%s: %s", pos[1], msg);
        goto done;
    }
    if (n < 2) {
        s = knob_fail(err, KNOB_ERR_USAGE, "%s: %zu token%s; scoring needs at least 2", pos[1], n, n == 1 ? "" : "s");
        goto done;
    }
    double t0 = now_s(), nll = 0;
    const float *logits;
    int V = m.c.vocab_size, T = m.c.block_size;
    if ((s = knob_gpt_infer_step(m.inf, ids[0], &logits, err)))
        goto done;
    for (size_t i = 1; i < n; i++) {
        /* -log softmax(logits)[ids[i]], in double */
        double mx = logits[0], sum = 0;
        for (int v = 1; v < V; v++)
            mx = fmax(mx, logits[v]);
        for (int v = 0; v < V; v++)
            sum += exp((double)logits[v] - mx);
        nll += log(sum) - ((double)logits[ids[i]] - mx);
        if (i + 1 == n)
            break;
        if (knob_gpt_infer_len(m.inf) == T && (s = knob_gpt_infer_drop(m.inf, T / 2, NULL, err)))
            goto done;
        if ((s = knob_gpt_infer_step(m.inf, ids[i], &logits, err)))
            goto done;
    }
    double secs = now_s() - t0, loss = nll / (double)(n - 1), bpb = nll / log(2.0) / (double)len;
    if (json) {
        printf("{\"file\":");
        cli_json_str(stdout, pos[1]);
        printf(",\"bytes\":%zu,\"tokens\":%zu,\"scored\":%zu,\"loss\":%.6f,\"perplexity\":%.6g,\"bits_per_byte\":%.6f,"
               "\"context\":%d,\"seconds\":%.3f}\n", len, n, n - 1, loss, exp(loss), bpb, T, secs);
    } else {
        printf("%s: %zu bytes, %zu tokens, %zu scored with a context of %d.\n", pos[1], len, n, n - 1, T);
        printf("cross-entropy %.4f nats/token, perplexity %.3f, %.4f bits/byte (%.1f s)\n", loss, exp(loss), bpb, secs);
    }
done:
    knob_free(ids);
    knob_free(text);
    model_close(&m);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * knob next */

/* a piece as a quoted, escaped string: ' the', '\n', '\xe2' */
static void piece_str(char *buf, size_t size, const char *p, size_t n)
{
    size_t j = 0;
    buf[j++] = '\'';
    for (size_t i = 0; i < n && j + 6 < size; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n')
            j += (size_t)snprintf(buf + j, size - j, "\\n");
        else if (c == '\t')
            j += (size_t)snprintf(buf + j, size - j, "\\t");
        else if (c == '\'' || c == '\\')
            j += (size_t)snprintf(buf + j, size - j, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            j += (size_t)snprintf(buf + j, size - j, "\\x%02x", c);
        else
            buf[j++] = (char)c;
    }
    buf[j++] = '\'';
    buf[j] = '\0';
}

knob_status cmd_next(int argc, char **argv, knob_err *err)
{
    int k = 10, json = 0;
    const arg_def args[] = {
        {"top", ARG_INT, &k, "K", 1, 1000, NULL, "how many tokens to list"},
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print one JSON object"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "next", "knob next MODEL TEXT [--top K] [--json]",
        "The model's view of what comes after TEXT: the K most likely next tokens with their probability,\n"
        "and what sampling at temperature 0.5 and 2 would make of them (low T sharpens, high T flattens).",
        args, 2, 2,
    };
    char *pos[2];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    model m;
    if ((s = model_open(&m, pos[0], err)) != KNOB_OK)
        return s;
    int V = m.c.vocab_size;
    int32_t *ids = NULL;
    size_t n = 0;
    float *p5 = knob_malloc((size_t)V * sizeof *p5), *p2 = knob_malloc((size_t)V * sizeof *p2);
    const float *logits = NULL;
    if (!p5 || !p2) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "next: out of memory");
        goto done;
    }
    if ((s = knob_tok_encode(m.tok, pos[1], strlen(pos[1]), 1, &ids, &n, err))) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        s = knob_fail(err, s, "TEXT: %s", msg);
        goto done;
    }
    if (n == 0) {
        int32_t first;
        if ((s = start_token(&m, &first, err)) || (s = feed(&m, &first, 1, &logits, 0, err)))
            goto done;
    } else if ((s = feed(&m, ids, n, &logits, json, err))) {
        goto done;
    }
    knob_softmax_temp(logits, V, 0.5f, p5);
    knob_softmax_temp(logits, V, 2.0f, p2);
    knob_sampler top = {.temperature = 1.0f, .top_k = k < V ? k : V, .top_p = 1.0f};
    int kept = knob_sample_probs(logits, V, &top, m.probs, m.idx);   /* the kept ids: idx[V-1], idx[V-2], ... */
    knob_softmax_temp(logits, V, 1.0f, m.probs);
    if (json) {
        printf("{\"text\":");
        cli_json_str(stdout, pos[1]);
        printf(",\"tokens\":%zu,\"next\":[", n);
    } else {
        printf("After %zu token%s, the next token is (probabilities at temperature 0.5, 1 and 2):\n\n", n,
               n == 1 ? "" : "s");
        printf("rank  %-20s %8s  %8s  %8s  %8s\n", "token", "id", "T=0.5", "T=1", "T=2");
    }
    double shown = 0;
    for (int r = 0; r < kept; r++) {
        int id = m.idx[V - 1 - r];
        size_t pl = 0;
        const char *pc = knob_tok_piece(m.tok, id, &pl);
        char piece[160];
        piece_str(piece, sizeof piece, pc ? pc : "", pc ? pl : 0);
        shown += m.probs[id];
        if (json) {
            char raw[128];
            snprintf(raw, sizeof raw, "%.*s", (int)(pl < 100 ? pl : 100), pc ? pc : "");
            printf("%s{\"id\":%d,\"piece\":", r ? "," : "", id);
            cli_json_str(stdout, raw);
            printf(",\"p_t0.5\":%.6g,\"p_t1\":%.6g,\"p_t2\":%.6g}", (double)p5[id], (double)m.probs[id], (double)p2[id]);
        } else {
            printf("%4d  %-20s %8d  %8.4f  %8.4f  %8.4f\n", r + 1, piece, id, (double)p5[id], (double)m.probs[id],
                   (double)p2[id]);
        }
    }
    if (json)
        printf("]}\n");
    else
        printf("\nThese %d tokens hold %.1f%% of the probability at T=1 (the vocabulary has %d).\n", kept, 100 * shown, V);
done:
    knob_free(p5);
    knob_free(p2);
    knob_free(ids);
    model_close(&m);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * knob chat */

typedef struct turns {
    int32_t *tok;    /* all turns' tokens, oldest first */
    size_t n, cap;
    int *len;        /* (n_turns) */
    int n_turns, cap_turns;
} turns;

static int turns_add(turns *h, const int32_t *ids, size_t n, int new_turn)
{
    if (h->n + n > h->cap) {
        size_t c = h->cap ? 2 * h->cap : 1024;
        while (c < h->n + n)
            c *= 2;
        int32_t *t = knob_realloc(h->tok, c * sizeof *t);
        if (!t)
            return 0;
        h->tok = t;
        h->cap = c;
    }
    if (new_turn) {
        if (h->n_turns == h->cap_turns) {
            int c = h->cap_turns ? 2 * h->cap_turns : 64;
            int *l = knob_realloc(h->len, (size_t)c * sizeof *l);
            if (!l)
                return 0;
            h->len = l;
            h->cap_turns = c;
        }
        h->len[h->n_turns++] = 0;
    }
    memcpy(h->tok + h->n, ids, n * sizeof *ids);
    h->n += n;
    h->len[h->n_turns - 1] += (int)n;
    return 1;
}

/* Drops the oldest turns (and, if the newest alone is too long, its first tokens) so that the rest
 * fits in budget; returns whether anything was dropped. */
static int turns_trim(turns *h, int budget)
{
    int skip, first = knob_chat_trim(h->len, h->n_turns, budget, &skip);
    if (first == 0 && skip == 0)
        return 0;
    size_t drop = (size_t)skip;
    for (int i = 0; i < first; i++)
        drop += (size_t)h->len[i];
    memmove(h->tok, h->tok + drop, (h->n - drop) * sizeof *h->tok);
    h->n -= drop;
    memmove(h->len, h->len + first, (size_t)(h->n_turns - first) * sizeof *h->len);
    h->n_turns -= first;
    h->len[0] -= skip;
    return 1;
}

static knob_status encode_append(model *m, turns *h, const char *text, int new_turn, knob_err *err)
{
    int32_t *ids;
    size_t n;
    knob_status s = knob_tok_encode(m->tok, text, strlen(text), 0, &ids, &n, err);
    if (s)
        return s;
    int ok = turns_add(h, ids, n, new_turn);
    knob_free(ids);
    return ok ? KNOB_OK : knob_fail(err, KNOB_ERR_NOMEM, "chat: out of memory");
}

knob_status cmd_chat(int argc, char **argv, knob_err *err)
{
    const char *user = "You: ", *bot = "Bot: ";
    int max_tokens = 0, top_k = 0;
    float temperature = 0.8f, top_p = 0.95f;
    uint64_t seed = 42;
    const arg_def args[] = {
        {"user", ARG_STRING, &user, "TEXT", 0, 0, NULL, "what starts your turns in the transcript"},
        {"bot", ARG_STRING, &bot, "TEXT", 0, 0, NULL, "what starts the model's turns"},
        {"max-tokens", ARG_INT, &max_tokens, "N", 0, 1000000, NULL, "tokens per reply at most (0: half the context)"},
        {"temperature", ARG_FLOAT, &temperature, "T", 0, 100, NULL, "sampling temperature (0: greedy)"},
        {"top-k", ARG_INT, &top_k, "K", 0, 1 << 20, NULL, "sample among the K most likely tokens (0: all)"},
        {"top-p", ARG_FLOAT, &top_p, "P", 0.001, 1, NULL, "nucleus sampling mass"},
        {"seed", ARG_U64, &seed, "N", 0, 1.8446744073709552e19, NULL, "seed for sampling"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "chat", "knob chat MODEL [options]",
        "Talk with a GPT: each line on stdin is a turn. The conversation is kept as a transcript\n"
        "(\"You: ...\" / \"Bot: ...\") and the model continues it until the end of its line. When the\n"
        "transcript outgrows the context, the oldest turns are dropped. A line /reset forgets everything.\n"
        "Works with a pipe too: printf 'Hello\\nHow are you?\\n' | knob chat MODEL",
        args, 1, 1,
    };
    char *pos[1];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    model m;
    if ((s = model_open(&m, pos[0], err)) != KNOB_OK)
        return s;
    int T = m.c.block_size;
    if (max_tokens == 0)
        max_tokens = T / 2;
    turns h = {0};
    stream st = {.out = stdout, .stop = "\n"};
    char *line = NULL;
    size_t cap = 0;
    if (max_tokens >= T) {
        s = knob_fail(err, KNOB_ERR_USAGE, "knob chat: --max-tokens %d leaves no room for the conversation in a "
                      "context of %d tokens", max_tokens, T);
        goto done;
    }
    knob_rng r;
    knob_rng_seed(&r, seed);
    knob_sampler sp = {.temperature = temperature, .top_k = top_k, .top_p = top_p};
    int tty = cli_is_tty();
    size_t fed = 0;   /* tokens of h in the cache */
    for (;;) {
        if (tty)
            fprintf(stderr, "%s", user), fflush(stderr);
        ssize_t got = getline(&line, &cap, stdin);
        if (got < 0)
            break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (strcmp(line, "/reset") == 0) {
            h.n = 0;
            h.n_turns = 0;
            fed = 0;
            knob_gpt_infer_reset(m.inf);
            printf("(forgotten)\n");
            fflush(stdout);
            continue;
        }
        /* this turn: "You: <line>\nBot: "; the reply follows, up to its newline */
        size_t need = strlen(user) + (size_t)got + strlen(bot) + 2;
        char *turn = knob_malloc(need + 1);
        if (!turn) {
            s = knob_fail(err, KNOB_ERR_NOMEM, "chat: out of memory");
            goto done;
        }
        snprintf(turn, need + 1, "%s%s\n%s", user, line, bot);
        s = encode_append(&m, &h, turn, 1, err);
        knob_free(turn);
        if (s == KNOB_ERR_NOMEM)
            goto done;
        if (s) {   /* a character the model does not know: say so, keep talking */
            fprintf(stderr, "knob: note: %s; line ignored\n", err->msg);
            memset(err, 0, sizeof *err);
            s = KNOB_OK;
            continue;
        }
        if (turns_trim(&h, T - max_tokens)) {
            knob_gpt_infer_reset(m.inf);
            fed = 0;
        }
        const float *logits = NULL;
        if ((s = feed(&m, h.tok + fed, h.n - fed, &logits, 1, err)))
            goto done;
        fed = h.n;
        if (!tty)   /* a piped conversation reads as a transcript */
            printf("%s%s\n", user, line);
        fputs(bot, stdout);
        st.len = st.printed = 0;
        int n_gen;
        const char *reason;
        if ((s = generate(&m, logits, max_tokens, &sp, &r, &st, &n_gen, &reason, err)))
            goto done;
        printf("\n");
        fflush(stdout);
        /* the reply and its newline join the transcript; the cache is rebuilt from it next turn */
        char *reply = knob_malloc(st.len + 2);
        if (!reply) {
            s = knob_fail(err, KNOB_ERR_NOMEM, "chat: out of memory");
            goto done;
        }
        memcpy(reply, st.buf ? st.buf : "", st.len);
        memcpy(reply + st.len, "\n", 2);
        s = encode_append(&m, &h, reply, 0, err);
        knob_free(reply);
        if (s)
            goto done;
        knob_gpt_infer_reset(m.inf);   /* sampled tokens may differ from the reply's re-encoding */
        fed = 0;
        if (turns_trim(&h, T - max_tokens))
            fed = 0;
    }
done:
    free(line);   /* getline's buffer comes from the C library */
    knob_free(st.buf);
    knob_free(h.tok);
    knob_free(h.len);
    model_close(&m);
    return s;
}
